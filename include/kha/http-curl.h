/* SPDX-License-Identifier: MIT */
/*
 * The libcurl side of lib/net, for the modules that drive libcurl handles themselves (etcd's
 * gRPC stream, the Kubernetes client's multi handle, the drill's and the proxy's probes): the
 * one global initialisation, the one client setup of an easy handle (protocols, TLS, timeouts,
 * proxies) and the one mapping of a failed transfer to an errno and a diagnostic. Everyone
 * else uses the client of kha/http.h, which is built on the same three.
 */
#ifndef KHA_HTTP_CURL_H
#define KHA_HTTP_CURL_H

#include <curl/curl.h>

#include "kha/http.h"

/*
 * libcurl's global initialisation, once per process (thread-safe; never undone, since another
 * thread may still hold a handle). Every module calls it before its first curl_easy_init().
 * Returns 0 or -ENOMEM with the diag.
 */
int kha_http_global_init(struct kha_diag *d) KHA_WUR;

/*
 * TLS of a client. Verification is on unless insecure is set (an operator's explicit choice:
 * a kubeconfig's insecure-skip-tls-verify, a probe's --insecure). A CA given as a file or as
 * data is the only one trusted, never the system's store as well.
 */
struct kha_http_tls {
	const char *cacert; /* PEM CA bundle file; NULL = the system store */
	const char *cert;   /* client certificate file, PEM; NULL = none */
	const char *key;    /* its private key file, PEM; NULL = in cert */
	/* the same as PEM in memory (a kubeconfig's *-data); used instead of the file when set */
	const void *ca_data, *cert_data, *key_data;
	size_t ca_len, cert_len, key_len;
	bool insecure;
};

struct kha_http_easy_opts {
	const char *user_agent;		/* NULL = "kha" */
	char *errbuf;			/* CURL_ERROR_SIZE bytes (libcurl's detail), or NULL */
	uint64_t connect_timeout_us;	/* TCP connect + TLS handshake; 0 = libcurl's default */
	uint64_t timeout_us;		/* the whole transfer; 0 = none */
	const struct kha_http_tls *tls; /* NULL = verification against the system store */
	/*
	 * NULL: the environment's proxy, never for loopback (as Go's clients do); "": never a
	 * proxy (a probe of one given address); else this proxy URL (a kubeconfig's proxy-url).
	 */
	const char *proxy;
};

/*
 * Sets up a fresh (or curl_easy_reset) easy handle as every kha client is: http and https
 * only, no signals, TLS 1.2 at least, the TLS, timeout and proxy choices of o. The caller
 * then sets the URL, the method and its callbacks. Returns 0 or -EINVAL (an option libcurl
 * refused, named in the diag).
 */
int kha_http_easy_setup(CURL *e, const struct kha_http_easy_opts *o, struct kha_diag *d) KHA_WUR;

/* How a transfer failed, beside the errno. */
struct kha_http_failure {
	enum kha_http_fail fail;
	bool sent;	  /* the request may have reached the server (false: retrying is safe) */
	long os_errno;	  /* the system's errno behind it (CURLINFO_OS_ERRNO), 0 when none */
	bool tls_stalled; /* KHA_HTTP_FAIL_CONNECT_TIMEOUT: TCP connected, TLS never finished */
};

/*
 * Maps the failed transfer of e (rc != CURLE_OK; errbuf is its CURLOPT_ERRORBUFFER or NULL)
 * to a negative errno (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EACCES for a certificate
 * problem, -ENOENT for an unusable TLS file, -EPROTO, -ECONNRESET, -ECANCELED...), fills *ret
 * (may be NULL) and writes one human phrase into the diag ("connection refused", "TLS
 * handshake failed: certificate signed by unknown CA"). connect_timeout_us and timeout_us are
 * what the transfer was given, for the phrase of a timeout. The phrase names neither the URL
 * nor a flag: the caller prefixes what it asked and appends kha_http_fail_hint().
 */
int kha_http_curl_error(CURL *e, CURLcode rc, const char *errbuf, uint64_t connect_timeout_us,
			uint64_t timeout_us, struct kha_http_failure *ret,
			struct kha_diag *d) KHA_WUR;

#endif
