/* SPDX-License-Identifier: MIT */
/*
 * HTTP client over libcurl: one request at a time per client, with TLS (verification always on),
 * a connect timeout and a total timeout, keep-alive across requests, and a streaming mode that
 * hands the body over line by line (JSON-lines streams such as etcd's watch and snapshot).
 *
 * Threads: a struct kha_http is used by one thread at a time; make one per thread. libcurl's
 * global initialisation runs once, on the first kha_http_new().
 *
 * Errors: a transport failure returns a negative errno, sets resp->fail to what went wrong and
 * writes a short human text into the diag ("connection refused", "TLS handshake failed:
 * certificate signed by unknown CA"). The diag names neither the URL nor a flag: the caller
 * knows which endpoint it asked and which of its flags would fix it (kha_http_fail_hint helps),
 * and prefixes/appends them. An HTTP answer of any status is a success of this layer.
 */
#ifndef KHA_HTTP_H
#define KHA_HTTP_H

#include <signal.h>
#include <jansson.h>

#include "kha/common.h"
#include "kha/diag.h"

struct kha_http_options {
	const char *cacert; /* PEM CA bundle for the server; NULL = the system store (copied) */
	const char *cert;   /* client certificate, PEM; NULL = none (copied) */
	const char *key;    /* its private key, PEM; NULL = in cert (copied) */
	uint64_t connect_timeout_us; /* TCP connect + TLS handshake; 0 = 2 s */
};

/* What failed, so callers can add their own hint ("check --cacert"). */
enum kha_http_fail {
	KHA_HTTP_FAIL_NONE,
	KHA_HTTP_FAIL_RESOLVE,	       /* host name did not resolve */
	KHA_HTTP_FAIL_CONNECT,	       /* refused, unreachable */
	KHA_HTTP_FAIL_CONNECT_TIMEOUT, /* no connection (or no TLS handshake) within the timeout */
	KHA_HTTP_FAIL_CA_FILE,	       /* CA file unusable */
	KHA_HTTP_FAIL_TLS_FILES,       /* client certificate or key file unusable */
	KHA_HTTP_FAIL_TLS_VERIFY,      /* server certificate not trusted or not for this host */
	KHA_HTTP_FAIL_TLS_CLIENT,      /* server rejected our client certificate (or wanted one) */
	KHA_HTTP_FAIL_TLS,     /* any other handshake failure (e.g. peer speaks plain HTTP) */
	KHA_HTTP_FAIL_TIMEOUT, /* connected, but no complete answer within the timeout */
	KHA_HTTP_FAIL_IO,      /* connection reset or closed mid-answer */
	KHA_HTTP_FAIL_TOO_BIG, /* answer larger than max_body / a line longer than max_line */
	KHA_HTTP_FAIL_ABORTED, /* the line callback or the cancel flag stopped it */
	KHA_HTTP_FAIL_OTHER,
};

struct kha_http_request {
	const char *method;	     /* NULL = "POST" when body is set, else "GET" */
	const char *url;	     /* borrowed */
	const char *body;	     /* borrowed; NULL = no body */
	size_t body_len;	     /* 0 with a body = strlen(body) */
	const char *content_type;    /* NULL = "application/json" */
	uint64_t timeout_us;	     /* whole exchange; 0 = no limit (streams with a cancel flag) */
	uint64_t connect_timeout_us; /* 0 = the client's */
	size_t max_body;	     /* largest body or stream line accepted; 0 = 256 MiB */
	/* Checked at each of curl's progress calls (several a second, even when idle): non-zero
	 * stops the transfer with -ECANCELED. */
	const volatile sig_atomic_t *cancel;
};

struct kha_http_response {
	long status; /* HTTP status; 0 when no answer came */
	char *body;  /* owned, NUL-terminated; for a 2xx stream, only the last partial line */
	size_t body_len;
	/*
	 * Whether the request may have reached the server. False means it certainly did not
	 * (resolve, connect or TLS handshake failed): retrying elsewhere is safe.
	 */
	bool sent;
	enum kha_http_fail fail;
	/* KHA_HTTP_FAIL_CONNECT_TIMEOUT only: TCP connected, the TLS handshake did not finish */
	bool tls_stalled;
};

struct kha_http;

/* Creates a client. Checks that the TLS files are readable (-ENOENT/-EACCES, diag). */
int kha_http_new(const struct kha_http_options *opts, struct kha_http **ret,
		 struct kha_diag *d) KHA_WUR;
void kha_http_free(struct kha_http *h);
KHA_DEFINE_CLEANUP(struct kha_http *, kha_http_free)

/* Frees the body and zeroes the response (safe on a zeroed or released response). */
void kha_http_response_release(struct kha_http_response *resp);

/*
 * Performs one request and collects the whole body into resp (which the caller zeroes first
 * and always releases). Returns 0 when an answer arrived, whatever its status; on a transport
 * failure a negative errno (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EPROTO, -EACCES for a
 * certificate problem, -ENOENT for an unreadable TLS file, -ECONNRESET, -EFBIG) with resp->fail,
 * resp->sent and the diag set.
 */
int kha_http_do(struct kha_http *h, const struct kha_http_request *req,
		struct kha_http_response *resp, struct kha_diag *d) KHA_WUR;

/*
 * One GET of url (a kha admin endpoint such as http://127.0.0.1:9443/status) within timeout_us:
 * the body of a 200 answer parsed as JSON into *ret (json_decref() it). Returns 0, a transport
 * error as kha_http_do(), -EPROTO for another status or -EBADMSG for a body that is not JSON,
 * with d saying which.
 */
int kha_http_get_json(const char *url, uint64_t timeout_us, json_t **ret,
		      struct kha_diag *d) KHA_WUR;

/*
 * Called for each line of a 2xx streamed body, without its '\n' (a final unterminated line is
 * delivered too; empty lines are skipped). line is NUL-terminated and valid only during the
 * call. Return 0 to continue; anything else stops the transfer and becomes the return value
 * of kha_http_stream.
 */
typedef int (*kha_http_line_fn)(void *userdata, char *line, size_t len);

/*
 * Like kha_http_do, but a 2xx body is delivered line by line to fn as it arrives. A non-2xx
 * body is collected into resp->body instead (for the caller to decode the error). Returns 0
 * when the server ended the stream, the callback's non-zero value when it stopped it, or a
 * negative errno on a transport failure (a deadline or the cancel flag gives -ETIMEDOUT or
 * -ECANCELED).
 */
int kha_http_stream(struct kha_http *h, const struct kha_http_request *req, kha_http_line_fn fn,
		    void *userdata, struct kha_http_response *resp, struct kha_diag *d) KHA_WUR;

/*
 * The caller's flag that would fix a failure, for a "(check --cacert)" hint: e.g.
 * kha_http_fail_hint(KHA_HTTP_FAIL_TLS_VERIFY, &names) returns names->cacert. NULL when no
 * flag helps (or the name is NULL).
 */
struct kha_http_flag_names {
	const char *cacert;	     /* "--cacert" */
	const char *cert;	     /* "--cert/--key" */
	const char *connect_timeout; /* "--dial-timeout" */
	const char *timeout;	     /* "--command-timeout" */
	const char *endpoint;	     /* "--endpoints" */
};
const char *kha_http_fail_hint(enum kha_http_fail fail, const struct kha_http_flag_names *names);

#endif
