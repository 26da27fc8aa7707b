// SPDX-License-Identifier: MIT
/*
 * A minimal gRPC client over libcurl's HTTP/2 (nghttp2): one call per easy handle, the request
 * message sent at once, response messages handed over as they arrive, the status read from the
 * trailers (or from the headers of a trailers-only answer). Enough for etcd's Snapshot stream
 * and HashKV; no compression, no metadata beyond what etcd needs.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kha/etcd-grpc.h"
#include "kha/http-curl.h"
#include "kha/parse.h"
#include "etcd-internal.h"
#include "kha/banned.h"

#define DEFAULT_DIAL_TIMEOUT_US (2 * KHA_USEC_PER_SEC)

struct grpc_state {
	const struct kha_grpc_call *call;
	CURL *curl;
	struct kha_grpc_reader reader;
	long http_status;
	bool content_type_grpc;
	bool have_status;
	int grpc_status;
	char grpc_message[256];
	int stop;	    /* the message callback's non-zero value, or a reader error */
	bool cancelled;	    /* the cancel flag */
	bool stalled;	    /* no byte for stall_us */
	uint64_t received;  /* response body bytes */
	uint64_t last_data; /* kha_now_us() of the last body byte */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* grpc-message is percent-encoded; decoded into a printable string. */
static void decode_message(char *out, size_t size, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < size; i++) {
		char c = s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		out[o++] = ((unsigned char)c < 0x20 || c == 0x7f) ? '?' : c;
	}
	out[o] = '\0';
}

/* "name: value\r\n" -> true and the value (trimmed) when the header is name. */
static bool header_is(const char *line, size_t n, const char *name, const char **ret_v,
		      size_t *ret_vlen)
{
	size_t nl = strlen(name);

	if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	line += nl + 1;
	n -= nl + 1;
	while (n && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n' || line[n - 1] == ' '))
		n--;
	*ret_v = line;
	*ret_vlen = n;
	return true;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct grpc_state *s = userdata;
	size_t n = size * nmemb, vlen;
	const char *v;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->http_status);
		return n;
	}
	if (header_is(data, n, "content-type", &v, &vlen))
		s->content_type_grpc = vlen >= 16 && strncasecmp(v, "application/grpc", 16) == 0;
	else if (header_is(data, n, "grpc-status", &v, &vlen)) {
		int st = 0;
		for (size_t i = 0; i < vlen && i < 4 && v[i] >= '0' && v[i] <= '9'; i++)
			st = st * 10 + (v[i] - '0');
		s->grpc_status = st;
		s->have_status = true;
	} else if (header_is(data, n, "grpc-message", &v, &vlen))
		decode_message(s->grpc_message, sizeof(s->grpc_message), v, vlen);
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct grpc_state *s = userdata;
	size_t n = size * nmemb;
	int r;

	if (s->http_status != 200 || !s->content_type_grpc) {
		/* not gRPC: an HTML page, a gateway 404; nothing to decode */
		s->stop = -EPROTONOSUPPORT;
		return 0;
	}
	s->received += n;
	s->last_data = kha_now_us();
	r = kha_grpc_reader_feed(&s->reader, (const uint8_t *)data, n, s->call->fn,
				 s->call->userdata);
	if (r) {
		s->stop = r;
		return 0;
	}
	return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct grpc_state *s = userdata;

	if (s->call->cancel && *s->call->cancel) {
		s->cancelled = true;
		return 1;
	}
	if (s->call->stall_us && kha_now_us() - s->last_data > s->call->stall_us) {
		s->stalled = true;
		return 1;
	}
	return 0;
}

static uint64_t dial_timeout(const struct kha_grpc_call *c)
{
	return c->cfg->dial_timeout_us ? c->cfg->dial_timeout_us : DEFAULT_DIAL_TIMEOUT_US;
}

/* A transport failure as errno + one human phrase (the caller names the endpoint). */
static int map_curl_error(struct grpc_state *s, CURLcode rc, const char *eb, struct kha_diag *d)
{
	const struct kha_grpc_call *c = s->call;
	struct kha_http_failure f;
	const char *hint;
	char dur[32];
	int r;

	/* HTTP/2 that breaks before any byte: not gRPC here (a caller may use the gateway) */
	if ((rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM || rc == CURLE_WEIRD_SERVER_REPLY) &&
	    s->received == 0)
		return kha_diag_set(d, EPROTONOSUPPORT, "no gRPC over HTTP/2 here: %s", eb);
	r = kha_http_curl_error(s->curl, rc, eb, dial_timeout(c), c->timeout_us, &f, d);
	if (f.fail == KHA_HTTP_FAIL_TIMEOUT)
		return kha_diag_set(d, ETIMEDOUT, "not finished within %s",
				    kha_format_duration(dur, sizeof(dur), c->timeout_us));
	if (f.fail == KHA_HTTP_FAIL_IO)
		kha_diag_append(d, " (after %llu bytes)", (unsigned long long)s->received);
	hint = kha_http_fail_hint(f.fail, &kha_etcd__flag_names);
	if (hint)
		kha_diag_append(d, " (check %s)", hint);
	return r;
}

static bool is_https(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0;
}

/*
 * What the call came to, from libcurl's code, what the callbacks saw and the gRPC status:
 * 0, or a negative errno with d saying why, most specific cause first.
 */
static int call_outcome(struct grpc_state *s, CURLcode rc, long httpver, const char *errbuf,
			struct kha_diag *d)
{
	char dur[32];

	if (s->cancelled)
		return kha_diag_set(d, ECANCELED, "interrupted");
	if (s->stalled)
		return kha_diag_set(d, ETIMEDOUT, "no data for %s (stalled after %llu bytes)",
				    kha_format_duration(dur, sizeof(dur), s->call->stall_us),
				    (unsigned long long)s->received);
	if (s->stop == -EPROTONOSUPPORT ||
	    (rc == CURLE_OK && (s->http_status != 200 || !s->content_type_grpc)))
		return kha_diag_set(d, EPROTONOSUPPORT, "no gRPC here (HTTP/%s %ld, %s)",
				    httpver == CURL_HTTP_VERSION_2_0 ? "2" : "1.x", s->http_status,
				    s->content_type_grpc ? "application/grpc"
							 : "not application/grpc");
	if (s->stop == -EBADMSG || s->stop == -EMSGSIZE)
		return kha_diag_set(d, EBADMSG, "malformed gRPC frame after %llu bytes",
				    (unsigned long long)s->received);
	if (s->stop == -ENOMEM)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (s->stop)
		return s->stop; /* the callback's value; its diag is set */
	if (rc != CURLE_OK && !(s->have_status && s->grpc_status != 0))
		return map_curl_error(s, rc, errbuf, d);
	if (!s->have_status)
		return kha_diag_set(d, ECONNRESET,
				    "the stream ended without a gRPC status after %llu "
				    "bytes",
				    (unsigned long long)s->received);
	if (s->grpc_status != 0)
		return kha_diag_set(d, kha_etcd_errno_from_grpc(s->grpc_status), "%s (gRPC %s)",
				    s->grpc_message[0] ? s->grpc_message : "error",
				    kha_etcd_grpc_code_name(s->grpc_status));
	if (!kha_grpc_reader_idle(&s->reader))
		return kha_diag_set(d, EBADMSG, "the stream ended inside a message");
	return 0;
}

/* The request as one gRPC frame (uncompressed, 4-byte big-endian length); NULL: no memory. */
static uint8_t *grpc_frame(const uint8_t *req, size_t len)
{
	uint8_t *frame = malloc(5 + len);

	if (!frame)
		return NULL;
	frame[0] = 0;
	frame[1] = (uint8_t)(len >> 24);
	frame[2] = (uint8_t)(len >> 16);
	frame[3] = (uint8_t)(len >> 8);
	frame[4] = (uint8_t)len;
	if (len)
		memcpy(frame + 5, req, len);
	return frame;
}

/* libcurl's options of a call on s->curl (set up already by kha_http_easy_setup). */
static void set_call_options(struct grpc_state *s, const char *url, const uint8_t *frame,
			     size_t frame_len, struct curl_slist *headers)
{
	CURL *h = s->curl;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
			 is_https(url) ? (long)CURL_HTTP_VERSION_2TLS
				       : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, frame);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)frame_len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
}

int kha_grpc_call(const struct kha_grpc_call *call, uint64_t *ret_received, struct kha_diag *d)
{
	struct grpc_state s = {.call = call, .grpc_status = -1};
	struct curl_slist *headers = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	const struct kha_etcd_config *cfg = call->cfg;
	struct kha_http_tls tls = {.cacert = cfg->cacert, .cert = cfg->cert, .key = cfg->key};
	struct kha_http_easy_opts eo = {
		.errbuf = errbuf,
		.connect_timeout_us = dial_timeout(call),
		.timeout_us = call->timeout_us,
		.tls = &tls,
	};
	kha_autofree uint8_t *frame = NULL;
	kha_autofree char *url = NULL;
	const char *ep = call->endpoint;
	size_t eplen = strlen(ep);
	long httpver = 0;
	CURLcode rc;
	int r;

	if (ret_received)
		*ret_received = 0;
	r = kha_http_global_init(d);
	if (r < 0)
		return r;
	if (call->req_len > KHA_GRPC_MAX_MESSAGE)
		return kha_diag_set(d, EMSGSIZE, "gRPC request too large");
	while (eplen && ep[eplen - 1] == '/')
		eplen--;
	if (asprintf(&url, "%.*s%s", (int)eplen, ep, call->method) < 0) {
		url = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (!strstr(url, "://"))
		return kha_diag_set(d, EINVAL, "endpoint %s has no http:// or https:// scheme", ep);
	frame = grpc_frame(call->req, call->req_len);
	if (!frame)
		return kha_diag_set(d, ENOMEM, "out of memory");

	s.curl = curl_easy_init();
	headers = curl_slist_append(headers, "Content-Type: application/grpc");
	if (headers)
		headers = curl_slist_append(headers, "TE: trailers");
	if (headers)
		headers = curl_slist_append(headers, "Expect:");
	if (!s.curl || !headers) {
		curl_slist_free_all(headers);
		if (s.curl)
			curl_easy_cleanup(s.curl);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = kha_http_easy_setup(s.curl, &eo, d);
	if (r < 0) {
		curl_slist_free_all(headers);
		curl_easy_cleanup(s.curl);
		return r;
	}
	set_call_options(&s, url, frame, 5 + call->req_len, headers);

	s.last_data = kha_now_us();
	rc = curl_easy_perform(s.curl);
	curl_easy_getinfo(s.curl, CURLINFO_HTTP_VERSION, &httpver);
	if (s.http_status == 0)
		curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &s.http_status);

	r = call_outcome(&s, rc, httpver, errbuf, d);
	if (ret_received)
		*ret_received = s.received;
	kha_grpc_reader_release(&s.reader);
	curl_slist_free_all(headers);
	curl_easy_cleanup(s.curl);
	return r;
}

/* ---- HashKV ------------------------------------------------------------------------------- */

struct hash_kv_ctx {
	struct kha_pb_hash_kv *ret;
	bool got;
	struct kha_diag *d;
};

static int on_hash_kv(void *userdata, const uint8_t *msg, size_t len)
{
	struct hash_kv_ctx *c = userdata;

	if (kha_pb_decode_hash_kv(msg, len, c->ret) < 0)
		return kha_diag_set(c->d, EBADMSG, "malformed HashKV reply");
	c->got = true;
	return 0;
}

int kha_etcd_hash_kv_grpc(const struct kha_etcd_config *cfg, const char *endpoint, int64_t revision,
			  uint64_t timeout_us, struct kha_pb_hash_kv *ret, struct kha_diag *d)
{
	struct kha_pb_hash_kv out = {};
	struct hash_kv_ctx c = {.ret = &out, .d = d};
	uint8_t req[11];
	size_t n = 0;
	struct kha_grpc_call call = {
		.cfg = cfg,
		.endpoint = endpoint,
		.method = "/etcdserverpb.Maintenance/HashKV",
		.req = req,
		.timeout_us = timeout_us ? timeout_us
					 : (cfg->command_timeout_us
						    ? cfg->command_timeout_us
						    : KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US),
		.fn = on_hash_kv,
		.userdata = &c,
	};
	int r;

	if (revision) {
		uint64_t v = (uint64_t)revision;

		req[n++] = 0x08; /* field 1, varint */
		while (v >= 0x80) {
			req[n++] = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		req[n++] = (uint8_t)v;
	}
	call.req_len = n;
	r = kha_grpc_call(&call, NULL, d);
	if (r == 0 && !c.got)
		r = kha_diag_set(d, EBADMSG, "empty HashKV reply");
	if (r < 0) {
		kha_diag_prefix(d, "etcd %s: HashKV", endpoint);
		return r;
	}
	*ret = out;
	return 0;
}
