// SPDX-License-Identifier: MIT
/*
 * HTTP over one libcurl easy handle per client. The handle is reset before each request (which
 * keeps its connection cache, so keep-alive connections are reused) and configured from
 * scratch, so no option of one request leaks into the next.
 */
#include <stdio.h>
#include <string.h>

#include "kha/http-curl.h"
#include "kha/json.h"
#include "kha/banned.h"

#define DEFAULT_CONNECT_TIMEOUT_US (2 * KHA_USEC_PER_SEC)
#define DEFAULT_MAX_BODY	   (256u << 20)

struct kha_http {
	CURL *curl;
	char *cacert, *cert, *key;
	uint64_t connect_timeout_us;
	char errbuf[CURL_ERROR_SIZE];
};

/* Per-transfer state shared with the libcurl callbacks. */
struct transfer {
	CURL *curl;
	const struct kha_http_request *req;
	struct kha_http_response *resp;
	size_t max_body;
	/* streaming */
	kha_http_line_fn line_fn;
	void *userdata;
	int mode; /* 0 undecided, 1 lines (2xx), 2 collect (error status or plain request) */
	int stop; /* the callback's non-zero return */
	bool too_big;
	bool cancelled;
	char *buf; /* collected body or pending partial line */
	size_t len, cap;
};

static int dup_opt(const char *s, char **ret)
{
	*ret = NULL;
	if (!s || !*s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int check_readable(const char *what, const char *path, struct kha_diag *d)
{
	if (path && access(path, R_OK) < 0) {
		int err = errno;
		return kha_diag_set(d, err == EACCES ? EACCES : ENOENT, "cannot read %s %s: %s",
				    what, path, strerror(err));
	}
	return 0;
}

int kha_http_new(const struct kha_http_options *opts, struct kha_http **ret, struct kha_diag *d)
{
	static const struct kha_http_options none = {};
	struct kha_http *h;
	int r;

	if (!opts)
		opts = &none;
	r = kha_http_global_init(d);
	if (r == 0)
		r = check_readable("CA file", opts->cacert, d);
	if (r == 0)
		r = check_readable("certificate", opts->cert, d);
	if (r == 0)
		r = check_readable("key", opts->key, d);
	if (r < 0)
		return r;
	h = calloc(1, sizeof(*h));
	if (!h)
		return kha_diag_set(d, ENOMEM, "out of memory");
	h->curl = curl_easy_init();
	if (!h->curl || dup_opt(opts->cacert, &h->cacert) < 0 ||
	    dup_opt(opts->cert, &h->cert) < 0 || dup_opt(opts->key, &h->key) < 0) {
		kha_http_free(h);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	h->connect_timeout_us =
		opts->connect_timeout_us ? opts->connect_timeout_us : DEFAULT_CONNECT_TIMEOUT_US;
	*ret = h;
	return 0;
}

void kha_http_free(struct kha_http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	free(h->cacert);
	free(h->cert);
	free(h->key);
	free(h);
}

void kha_http_response_release(struct kha_http_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

static int buf_append(struct transfer *t, const char *data, size_t n)
{
	if (KHA_GROW(t->buf, t->cap, KHA_MAX(t->len + n + 1, (size_t)4096)) < 0)
		return -ENOMEM;
	memcpy(t->buf + t->len, data, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return 0;
}

/* Delivers every complete line in t->buf; keeps the partial rest. */
static int deliver_lines(struct transfer *t)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(t->buf + start, '\n', t->len - start);
		size_t n;
		int r;

		if (!nl)
			break;
		n = (size_t)(nl - (t->buf + start));
		*nl = '\0';
		if (n && t->buf[start + n - 1] == '\r')
			t->buf[start + --n] = '\0';
		if (n) {
			r = t->line_fn(t->userdata, t->buf + start, n);
			if (r) {
				t->stop = r;
				return -1;
			}
		}
		start = (size_t)(nl - t->buf) + 1;
	}
	if (start) {
		memmove(t->buf, t->buf + start, t->len - start);
		t->len -= start;
		if (t->buf)
			t->buf[t->len] = '\0';
	}
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;

	if (t->mode == 0) {
		long status = 0;

		curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
		t->mode = (t->line_fn && status >= 200 && status < 300) ? 1 : 2;
	}
	if (t->len + n > t->max_body) {
		t->too_big = true;
		return 0;
	}
	if (buf_append(t, data, n) < 0)
		return 0;
	if (t->mode == 1 && deliver_lines(t) < 0)
		return 0;
	return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct transfer *t = userdata;

	if (t->req->cancel && *t->req->cancel) {
		t->cancelled = true;
		return 1;
	}
	return 0;
}

static uint64_t connect_timeout(const struct kha_http *h, const struct kha_http_request *req)
{
	return req->connect_timeout_us ? req->connect_timeout_us : h->connect_timeout_us;
}

static int setup(struct kha_http *h, const struct kha_http_request *req, struct transfer *t,
		 struct curl_slist **headers, struct kha_diag *d)
{
	struct kha_http_tls tls = {.cacert = h->cacert, .cert = h->cert, .key = h->key};
	struct kha_http_easy_opts eo = {
		.errbuf = h->errbuf,
		.connect_timeout_us = connect_timeout(h, req),
		.timeout_us = req->timeout_us,
		.tls = &tls,
	};
	CURL *c = h->curl;
	const char *method = req->method;
	char ct[128];
	struct curl_slist *l;
	bool ok = true;
	int r;

	curl_easy_reset(c);
	r = kha_http_easy_setup(c, &eo, d);
	if (r < 0)
		return r;
	if (!method)
		method = req->body ? "POST" : "GET";
	snprintf(ct, sizeof(ct), "Content-Type: %s",
		 req->content_type ? req->content_type : "application/json");
	l = curl_slist_append(NULL, "Expect:");
	if (l && req->body)
		l = curl_slist_append(l, ct) ? l : NULL;
	if (!l)
		return -ENOMEM;
	*headers = l;

#define SET(opt, val) ok = ok && curl_easy_setopt(c, opt, val) == CURLE_OK
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_HTTPHEADER, l);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_TCP_KEEPIDLE, 10L);
	SET(CURLOPT_TCP_KEEPINTVL, 5L);
	SET(CURLOPT_CUSTOMREQUEST, method);
	if (req->body) {
		SET(CURLOPT_POSTFIELDS, req->body);
		SET(CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(req->body_len ? req->body_len : strlen(req->body)));
	} else if (strcmp(method, "GET") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	}
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, t);
	SET(CURLOPT_NOPROGRESS, 0L);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, t);
#undef SET
	return ok ? 0 : kha_diag_set(d, EINVAL, "cannot set up the request to %s", req->url);
}

static int perform(struct kha_http *h, const struct kha_http_request *req, kha_http_line_fn fn,
		   void *userdata, struct kha_http_response *resp, struct kha_diag *d)
{
	struct transfer t = {
		.curl = h->curl,
		.req = req,
		.resp = resp,
		.max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY,
		.line_fn = fn,
		.userdata = userdata,
	};
	struct curl_slist *headers = NULL;
	CURLcode rc;
	int r;

	memset(resp, 0, sizeof(*resp));
	r = setup(h, req, &t, &headers, d);
	if (r < 0) {
		curl_slist_free_all(headers);
		resp->fail = KHA_HTTP_FAIL_OTHER;
		return r;
	}
	rc = curl_easy_perform(h->curl);
	curl_slist_free_all(headers);
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	/* unhook our stack-allocated state and the header list from the reused handle */
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, NULL);

	if (rc == CURLE_WRITE_ERROR && t.stop) {
		resp->sent = true;
		free(t.buf);
		return t.stop;
	}
	if (rc == CURLE_WRITE_ERROR && t.too_big) {
		resp->sent = true;
		resp->fail = KHA_HTTP_FAIL_TOO_BIG;
		free(t.buf);
		return kha_diag_set(d, EFBIG, "answer larger than %zu bytes", t.max_body);
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK && t.cancelled) {
		resp->sent = true;
		resp->fail = KHA_HTTP_FAIL_ABORTED;
		free(t.buf);
		return kha_diag_set(d, ECANCELED, "cancelled");
	}
	if (rc != CURLE_OK) {
		struct kha_http_failure f;

		r = kha_http_curl_error(h->curl, rc, h->errbuf, connect_timeout(h, req),
					req->timeout_us, &f, d);
		resp->fail = f.fail;
		resp->sent = f.sent;
		resp->tls_stalled = f.tls_stalled;
		free(t.buf);
		return r;
	}
	resp->sent = true;
	if (t.mode == 1 && t.len) {
		/* the last line had no newline */
		int s = t.line_fn(t.userdata, t.buf, t.len);
		free(t.buf);
		return s;
	}
	if (t.mode == 1) {
		free(t.buf);
		return 0;
	}
	if (!t.buf) {
		t.buf = strdup("");
		if (!t.buf)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	resp->body = t.buf;
	resp->body_len = t.len;
	return 0;
}

int kha_http_do(struct kha_http *h, const struct kha_http_request *req,
		struct kha_http_response *resp, struct kha_diag *d)
{
	return perform(h, req, NULL, NULL, resp, d);
}

int kha_http_get_json(const char *url, uint64_t timeout_us, json_t **ret, struct kha_diag *d)
{
	struct kha_http_options ho = {.connect_timeout_us =
					      KHA_MIN(timeout_us, 2 * KHA_USEC_PER_SEC)};
	struct kha_http_request req = {
		.method = "GET", .url = url, .timeout_us = timeout_us, .max_body = 1 << 20};
	struct kha_http_response resp = {};
	struct kha_http *h = NULL;
	int r;

	*ret = NULL;
	r = kha_http_new(&ho, &h, d);
	if (r == 0)
		r = kha_http_do(h, &req, &resp, d);
	kha_http_free(h);
	if (r == 0 && resp.status != 200)
		r = kha_diag_set(d, EPROTO, "HTTP %ld", resp.status);
	if (r == 0)
		r = kha_json_parse(resp.body, resp.body_len, ret, d);
	kha_http_response_release(&resp);
	return r;
}

int kha_http_stream(struct kha_http *h, const struct kha_http_request *req, kha_http_line_fn fn,
		    void *userdata, struct kha_http_response *resp, struct kha_diag *d)
{
	return perform(h, req, fn, userdata, resp, d);
}

const char *kha_http_fail_hint(enum kha_http_fail f, const struct kha_http_flag_names *names)
{
	if (!names)
		return NULL;
	switch (f) {
	case KHA_HTTP_FAIL_RESOLVE:
		return names->endpoint;
	case KHA_HTTP_FAIL_CONNECT_TIMEOUT:
		return names->connect_timeout;
	case KHA_HTTP_FAIL_TLS_VERIFY:
	case KHA_HTTP_FAIL_CA_FILE:
		return names->cacert;
	case KHA_HTTP_FAIL_TLS_FILES:
	case KHA_HTTP_FAIL_TLS_CLIENT:
		return names->cert;
	case KHA_HTTP_FAIL_TLS:
		return names->endpoint;
	case KHA_HTTP_FAIL_TIMEOUT:
		return names->timeout;
	default:
		return NULL;
	}
}
