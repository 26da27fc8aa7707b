// SPDX-License-Identifier: MIT
/*
 * The HTTP side of the Kubernetes client, on libcurl directly (kept small on purpose): one easy
 * handle driven by one multi handle per client, so that connections are reused and a stop fd
 * can be polled together with the transfer's sockets (curl_multi_poll's extra fds) for a prompt
 * cancel from another thread.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>

#include "kha/http-curl.h"
#include "kha/log.h"
#include "kube-internal.h"
#include "kha/banned.h"

#define TOKEN_REFRESH_US (60 * KHA_USEC_PER_SEC)
#define WATCH_SLACK_S	 15

struct kha_kube_client {
	struct kha_kube_config *cfg;
	char *base_url;	  /* scheme://verify-host:port[/prefix], no trailing slash */
	char *display;	  /* the server for messages */
	char *connect_to; /* "::host:port" when connecting elsewhere than the URL says */
	struct curl_slist *connect_to_list;
	CURL *easy;
	CURLM *multi;
	uint64_t connect_timeout_us;
	uint64_t request_timeout_us;
	int stop_fd;
	char *token; /* the token file's content, re-read once a minute */
	uint64_t token_read_us;
	char errbuf[CURL_ERROR_SIZE];
};

/* What a transfer writes into: a whole body, or watch lines handed to a callback. */
struct sink {
	struct kha_kube_client *c;
	char *buf;
	size_t len, cap;
	/* watch mode */
	bool watch;
	kha_kube_watch_fn fn;
	void *userdata;
	int stop; /* why the write callback aborted (negative errno or fn's > 0) */
	struct kha_diag *d;
};

/* ---- config copy ---- */

static int dup_blob(const struct kha_kube_blob *src, struct kha_kube_blob *dst)
{
	if (!src->data)
		return 0;
	dst->data = malloc(src->len);
	if (!dst->data)
		return -ENOMEM;
	memcpy(dst->data, src->data, src->len);
	dst->len = src->len;
	return 0;
}

static int dup_opt(const char *s, char **ret)
{
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static struct kha_kube_config *config_dup(const struct kha_kube_config *s)
{
	struct kha_kube_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->insecure_skip_tls_verify = s->insecure_skip_tls_verify;
	if (dup_opt(s->source, &c->source) < 0 || dup_opt(s->context, &c->context) < 0 ||
	    dup_opt(s->namespace, &c->namespace) < 0 || dup_opt(s->server, &c->server) < 0 ||
	    dup_opt(s->tls_server_name, &c->tls_server_name) < 0 ||
	    dup_opt(s->ca_file, &c->ca_file) < 0 || dup_blob(&s->ca_data, &c->ca_data) < 0 ||
	    dup_opt(s->cert_file, &c->cert_file) < 0 ||
	    dup_blob(&s->cert_data, &c->cert_data) < 0 || dup_opt(s->key_file, &c->key_file) < 0 ||
	    dup_blob(&s->key_data, &c->key_data) < 0 || dup_opt(s->token, &c->token) < 0 ||
	    dup_opt(s->token_file, &c->token_file) < 0 ||
	    dup_opt(s->proxy_url, &c->proxy_url) < 0) {
		kha_kube_config_free(c);
		return NULL;
	}
	return c;
}

/* ---- server URL ---- */

struct url_parts {
	char *scheme, *host, *port, *path;
};

static void url_parts_release(struct url_parts *u)
{
	curl_free(u->scheme);
	curl_free(u->host);
	curl_free(u->port);
	curl_free(u->path);
}

static int url_split(const char *url, struct url_parts *ret)
{
	CURLU *u = curl_url();
	struct url_parts p = {};
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &p.scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &p.host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p.port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &p.path, 0) == CURLUE_OK &&
	    (strcmp(p.scheme, "https") == 0 || strcmp(p.scheme, "http") == 0))
		r = 0;
	curl_url_cleanup(u);
	if (r < 0) {
		url_parts_release(&p);
		return r;
	}
	/* "/" or "/prefix/" -> "" or "/prefix" */
	for (size_t n = strlen(p.path); n > 0 && p.path[n - 1] == '/'; n--)
		p.path[n - 1] = '\0';
	*ret = p;
	return 0;
}

/* A host for a URL or connect-to string: IPv6 literals in brackets. */
static const char *bracket(char *buf, size_t size, const char *host)
{
	if (strchr(host, ':') && host[0] != '[')
		snprintf(buf, size, "[%s]", host);
	else
		snprintf(buf, size, "%s", host);
	return buf;
}

/*
 * Points the client at connect_url (NULL: the kubeconfig's server) while the URL curl sees keeps
 * the name to verify (tls_name, else the kubeconfig's tls-server-name, else its server's host):
 * curl then sends that name as SNI, checks the certificate against it, and CURLOPT_CONNECT_TO
 * sends the TCP connection to the real address.
 */
static int set_target(struct kha_kube_client *c, const char *connect_url, const char *tls_name,
		      struct kha_diag *d)
{
	struct url_parts orig = {}, conn = {};
	char vh[300], ch[300];
	const char *verify;
	char *base = NULL, *display = NULL, *connect_to = NULL;
	struct curl_slist *list = NULL;
	int r;

	r = url_split(c->cfg->server, &orig);
	if (r < 0)
		return kha_diag_set(d, r, "kubeconfig %s: server '%s': not a usable URL",
				    c->cfg->source, c->cfg->server);
	r = url_split(connect_url ? connect_url : c->cfg->server, &conn);
	if (r < 0) {
		url_parts_release(&orig);
		return kha_diag_set(d, r, "server '%s': not an http(s) URL", connect_url);
	}
	verify = tls_name && tls_name[0]   ? tls_name
		 : c->cfg->tls_server_name ? c->cfg->tls_server_name
					   : orig.host;
	r = -ENOMEM;
	if (asprintf(&base, "%s://%s:%s%s", conn.scheme, bracket(vh, sizeof(vh), verify), conn.port,
		     connect_url && conn.path[0] ? conn.path : orig.path) < 0)
		base = NULL;
	if (asprintf(&display, "%s://%s:%s", conn.scheme, conn.host, conn.port) < 0)
		display = NULL;
	if (!base || !display)
		goto out;
	if (strcasecmp(bracket(vh, sizeof(vh), verify), conn.host) != 0) {
		/* empty HOST:PORT match every request of this handle */
		if (asprintf(&connect_to, "::%s:%s", bracket(ch, sizeof(ch), conn.host),
			     conn.port) < 0) {
			connect_to = NULL;
			goto out;
		}
		list = curl_slist_append(NULL, connect_to);
		if (!list)
			goto out;
	}
	free(c->base_url);
	free(c->display);
	free(c->connect_to);
	curl_slist_free_all(c->connect_to_list);
	c->base_url = KHA_TAKE_PTR(base);
	c->display = KHA_TAKE_PTR(display);
	c->connect_to = KHA_TAKE_PTR(connect_to);
	c->connect_to_list = KHA_TAKE_PTR(list);
	kha_debug("kube server", "url=%s connect_to=%s", KHA_LOGQ(c->base_url),
		  KHA_LOGQ(c->connect_to ? c->connect_to : "-"));
	r = 0;
out:
	free(base);
	free(display);
	free(connect_to);
	curl_slist_free_all(list);
	url_parts_release(&orig);
	url_parts_release(&conn);
	return r < 0 ? kha_diag_set(d, r, "out of memory") : 0;
}

int kha_kube_client_new(const struct kha_kube_config *cfg, struct kha_kube_client **ret,
			struct kha_diag *d)
{
	struct kha_kube_client *c;
	int r;

	r = kha_http_global_init(d);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return kha_diag_set(d, ENOMEM, "out of memory");
	c->stop_fd = -1;
	c->connect_timeout_us = 10 * KHA_USEC_PER_SEC;
	c->request_timeout_us = 30 * KHA_USEC_PER_SEC;
	c->cfg = config_dup(cfg);
	c->easy = curl_easy_init();
	c->multi = curl_multi_init();
	if (!c->cfg || !c->easy || !c->multi) {
		kha_kube_client_free(c);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = set_target(c, NULL, NULL, d);
	if (r < 0) {
		kha_kube_client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void kha_kube_client_free(struct kha_kube_client *c)
{
	if (!c)
		return;
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->easy)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->connect_to_list);
	free(c->connect_to);
	free(c->base_url);
	free(c->display);
	if (c->token)
		OPENSSL_cleanse(c->token, strlen(c->token));
	free(c->token);
	kha_kube_config_free(c->cfg);
	free(c);
}

int kha_kube_client_set_server(struct kha_kube_client *c, const char *url,
			       const char *tls_server_name, struct kha_diag *d)
{
	return set_target(c, url, url ? tls_server_name : NULL, d);
}

void kha_kube_client_set_timeouts(struct kha_kube_client *c, uint64_t connect_timeout_us,
				  uint64_t request_timeout_us)
{
	if (connect_timeout_us)
		c->connect_timeout_us = connect_timeout_us;
	if (request_timeout_us)
		c->request_timeout_us = request_timeout_us;
}

void kha_kube_client_set_stop_fd(struct kha_kube_client *c, int stop_fd)
{
	c->stop_fd = stop_fd;
}

int kha_kube__client_stop_fd(const struct kha_kube_client *c)
{
	return c->stop_fd;
}

const char *kha_kube_client_server(const struct kha_kube_client *c)
{
	return c->display;
}

const char *kha_kube_client_namespace(const struct kha_kube_client *c)
{
	return c->cfg->namespace ? c->cfg->namespace : "default";
}

static bool stop_requested(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

/* ---- credentials ---- */

static int bearer_token(struct kha_kube_client *c, const char **ret, struct kha_diag *d)
{
	char buf[16384];
	FILE *f;
	size_t n;
	char *tok;

	*ret = c->cfg->token;
	if (c->cfg->token || !c->cfg->token_file)
		return 0;
	if (c->token && kha_now_us() - c->token_read_us < TOKEN_REFRESH_US) {
		*ret = c->token;
		return 0;
	}
	f = fopen(c->cfg->token_file, "re");
	if (!f) {
		if (c->token) { /* keep the last one: the file may be being replaced */
			*ret = c->token;
			return 0;
		}
		return kha_diag_set(d, errno, "token file %s: %s", c->cfg->token_file,
				    strerror(errno));
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* trailing whitespace, as a file written by hand has */
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
		buf[--n] = '\0';
	if (n == 0 || strpbrk(buf, "\r\n"))
		return kha_diag_set(d, EINVAL, "token file %s: empty or several lines",
				    c->cfg->token_file);
	tok = strdup(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!tok)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (c->token)
		OPENSSL_cleanse(c->token, strlen(c->token));
	free(c->token);
	c->token = tok;
	c->token_read_us = kha_now_us();
	*ret = tok;
	return 0;
}

/* ---- transfers ---- */

static int sink_append(struct sink *s, const char *data, size_t len)
{
	if (s->len + len > KHA_KUBE_MAX_BODY)
		return -EFBIG;
	if (KHA_GROW(s->buf, s->cap, KHA_MAX(s->len + len + 1, (size_t)4096)) < 0)
		return -ENOMEM;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return 0;
}

/* Hands every complete line of the sink to the watch callback. */
static int watch_lines(struct sink *s)
{
	size_t start = 0;
	char *nl;
	int r = 0;

	while (r == 0 && (nl = memchr(s->buf + start, '\n', s->len - start))) {
		size_t len = (size_t)(nl - (s->buf + start));
		enum kha_kube_event_type type;
		json_t *obj = NULL;

		if (len == 0 || (len == 1 && s->buf[start] == '\r')) {
			start += len + 1;
			continue;
		}
		r = kha_kube_watch_event_decode(s->buf + start, len, &type, &obj, s->d);
		start += len + 1;
		if (r < 0) {
			kha_diag_prefix(s->d, "watch");
			break;
		}
		if (type == KHA_KUBE_EVENT_ERROR) {
			struct kha_kube_status st;

			if (kha_kube__status_from_json(obj, &st) < 0) {
				r = kha_diag_set(s->d, EBADMSG,
						 "watch: ERROR event without a Status");
			} else {
				r = kha_kube_errno_from_status(&st);
				kha_diag_set(s->d, r, "watch: ERROR %d %s: %s", st.code, st.reason,
					     st.message);
			}
		} else {
			r = s->fn(type, obj, s->userdata);
		}
		json_decref(obj);
	}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
	if (s->len)
		s->buf[s->len] = '\0';
	return r;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t len = size * nmemb;
	long code = 0;
	int r;

	if (s->watch) {
		curl_easy_getinfo(s->c->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code != 200)
			s->watch = false; /* an error reply: collect its Status */
	}
	r = sink_append(s, data, len);
	if (r == 0 && s->watch)
		r = watch_lines(s);
	if (r != 0) {
		s->stop = r;
		return 0; /* CURLE_WRITE_ERROR */
	}
	return len;
}

static struct curl_slist *add_header(struct curl_slist *h, bool *fail, const char *fmt, ...)
	KHA_PRINTF(3, 4);
static struct curl_slist *add_header(struct curl_slist *h, bool *fail, const char *fmt, ...)
{
	char line[16640];
	struct curl_slist *n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = curl_slist_append(h, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (!n)
		*fail = true;
	return n ? n : h;
}

#define SETOPT(opt, val) (cc = cc != CURLE_OK ? cc : curl_easy_setopt(e, opt, val))

/* What in the kubeconfig fixes a transport failure (kha_http_fail_hint). */
static const struct kha_http_flag_names kubeconfig_names = {
	.cacert = "certificate-authority and tls-server-name in the kubeconfig",
	.cert = "client-certificate and client-key in the kubeconfig",
	.endpoint = "server in the kubeconfig",
};

/* Maps a transfer failure to an errno and a message naming what to check. */
static int curl_error(struct kha_kube_client *c, CURLcode cc, uint64_t timeout_us,
		      struct kha_diag *d)
{
	struct kha_http_failure f;
	const char *hint;
	int r;

	r = kha_http_curl_error(c->easy, cc, c->errbuf, c->connect_timeout_us, timeout_us, &f, d);
	hint = kha_http_fail_hint(f.fail, &kubeconfig_names);
	if (hint)
		kha_diag_append(d, " (check %s)", hint);
	return r;
}

/* Runs the transfer set up on c->easy; polls stop_fd with curl's sockets. */
static int perform(struct kha_kube_client *c, CURLcode *ret_cc)
{
	struct curl_waitfd wfd = {.fd = c->stop_fd, .events = CURL_WAIT_POLLIN};
	CURLMsg *msg;
	int running = 1, left, r = 0;

	*ret_cc = CURLE_OK;
	if (stop_requested(c->stop_fd))
		return -ECANCELED;
	if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
		return -ENOMEM;
	for (;;) {
		if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
			r = -EIO;
			break;
		}
		if (!running)
			break;
		wfd.revents = 0;
		if (curl_multi_poll(c->multi, c->stop_fd >= 0 ? &wfd : NULL,
				    c->stop_fd >= 0 ? 1 : 0, 1000, NULL) != CURLM_OK) {
			r = -EIO;
			break;
		}
		if (wfd.revents || stop_requested(c->stop_fd)) {
			r = -ECANCELED;
			break;
		}
	}
	while ((msg = curl_multi_info_read(c->multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy)
			*ret_cc = msg->data.result;
	curl_multi_remove_handle(c->multi, c->easy);
	return r;
}

static const char *path_only(char *buf, size_t size, const char *path)
{
	snprintf(buf, size, "%.*s", (int)strcspn(path, "?"), path);
	return buf;
}

/* Turns a non-2xx reply into an errno and "404 NotFound: message". */
static int http_error(long code, const char *body, size_t len, struct kha_diag *d)
{
	struct kha_kube_status st = {};
	json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL;
	int err;

	if (root && kha_kube__status_from_json(root, &st) == 0) {
		if (st.code == 0)
			st.code = (int)code;
		json_decref(root);
		err = kha_kube_errno_from_status(&st);
		return kha_diag_set(d, err, "%d %s: %s", st.code, st.reason[0] ? st.reason : "-",
				    st.message[0] ? st.message : "(no message)");
	}
	json_decref(root);
	st.code = (int)code;
	err = kha_kube_errno_from_status(&st);
	return kha_diag_set(d, err, "HTTP %ld: %.*s", code, (int)strcspn(body ? body : "", "\r\n"),
			    body ? body : "");
}

static int do_request(struct kha_kube_client *c, const char *method, const char *path,
		      const json_t *body, struct sink *sink, uint64_t timeout_us, long *ret_code,
		      struct kha_diag *d)
{
	kha_autofree char *url = NULL, *payload = NULL;
	struct curl_slist *headers = NULL;
	const char *token = NULL;
	bool fail = false;
	const struct kha_kube_config *cfg = c->cfg;
	struct kha_http_tls tls = {
		.cacert = cfg->ca_file,
		.cert = cfg->cert_file,
		.key = cfg->key_file,
		.ca_data = cfg->ca_data.data,
		.ca_len = cfg->ca_data.len,
		.cert_data = cfg->cert_data.data,
		.cert_len = cfg->cert_data.len,
		.key_data = cfg->key_data.data,
		.key_len = cfg->key_data.len,
		.insecure = cfg->insecure_skip_tls_verify,
	};
	struct kha_http_easy_opts eo = {
		.errbuf = c->errbuf,
		.connect_timeout_us = c->connect_timeout_us,
		.timeout_us = timeout_us,
		.tls = &tls,
	};
	CURL *e = c->easy;
	CURLcode cc = CURLE_OK;
	long code = 0;
	int r;

	r = bearer_token(c, &token, d);
	if (r < 0)
		return r;
	if (asprintf(&url, "%s%s", c->base_url, path) < 0) {
		url = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload)
			return kha_diag_set(d, ENOMEM, "cannot encode the request body");
	}
	curl_easy_reset(e);
	headers = add_header(headers, &fail, "Accept: application/json");
	headers = add_header(headers, &fail, "User-Agent: kha");
	headers = add_header(headers, &fail, "Expect:");
	if (token)
		headers = add_header(headers, &fail, "Authorization: Bearer %s", token);
	if (body)
		headers = add_header(headers, &fail, "Content-Type: %s",
				     strcmp(method, "PATCH") != 0 ? "application/json"
				     : json_is_array(body)	  ? "application/json-patch+json"
								  : "application/merge-patch+json");
	if (fail) {
		curl_slist_free_all(headers);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	/* environment proxies are ignored: only the kubeconfig's proxy-url is used */
	eo.proxy = c->cfg->proxy_url ? c->cfg->proxy_url : "";
	r = kha_http_easy_setup(e, &eo, d);
	if (r < 0) {
		curl_slist_free_all(headers);
		return r;
	}
	SETOPT(CURLOPT_URL, url);
	SETOPT(CURLOPT_HTTPHEADER, headers);
	SETOPT(CURLOPT_CONNECT_TO, c->connect_to_list);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_TCP_KEEPIDLE, 30L);
	SETOPT(CURLOPT_TCP_KEEPINTVL, 10L);
	SETOPT(CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(CURLOPT_WRITEDATA, sink);
	if (strcmp(method, "GET") == 0) {
		SETOPT(CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(method, "POST") != 0)
			SETOPT(CURLOPT_CUSTOMREQUEST, method);
		if (payload) {
			SETOPT(CURLOPT_POSTFIELDS, payload);
			SETOPT(CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
		} else if (strcmp(method, "POST") == 0) {
			SETOPT(CURLOPT_POSTFIELDS, "");
		}
	}
	if (cc != CURLE_OK) {
		curl_slist_free_all(headers);
		return kha_diag_set(d, EINVAL, "libcurl option: %s", curl_easy_strerror(cc));
	}
	r = perform(c, &cc);
	curl_slist_free_all(headers);
	if (r == -ECANCELED)
		return kha_diag_set(d, ECANCELED, "stopped");
	if (r < 0)
		return kha_diag_set(d, r, "libcurl multi interface failed");
	if (cc == CURLE_WRITE_ERROR && sink->stop) {
		if (sink->stop == -EFBIG)
			return kha_diag_set(d, EFBIG, "reply larger than %u MiB",
					    KHA_KUBE_MAX_BODY >> 20);
		if (sink->stop == -ENOMEM)
			return kha_diag_set(d, ENOMEM, "out of memory");
		return sink->stop; /* the watch callback's or an ERROR event's; d already says */
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK && !(sink->watch && code == 200 && cc == CURLE_OPERATION_TIMEDOUT))
		return curl_error(c, cc, timeout_us, d);
	*ret_code = code;
	return 0;
}

int kha_kube_request(struct kha_kube_client *c, const char *method, const char *path,
		     const json_t *body, json_t **ret_body, struct kha_diag *d)
{
	struct sink sink = {.c = c, .d = d};
	char p[512];
	long code = 0;
	int r;

	kha_diag_clear(d);
	r = do_request(c, method, path, body, &sink, c->request_timeout_us, &code, d);
	if (r == 0 && (code < 200 || code > 299))
		r = http_error(code, sink.buf, sink.len, d);
	if (r == 0) {
		json_error_t jerr;
		json_t *root = sink.len ? json_loadb(sink.buf, sink.len, 0, &jerr) : json_null();

		if (!root) {
			r = kha_diag_set(d, EBADMSG, "reply is not JSON: %s", jerr.text);
		} else {
			r = (int)code;
			if (ret_body)
				*ret_body = root;
			else
				json_decref(root);
		}
	}
	free(sink.buf);
	if (r < 0)
		kha_diag_prefix(d, "kube %s: %s %s", c->display, method,
				path_only(p, sizeof(p), path));
	return r;
}

int kha_kube_watch(struct kha_kube_client *c, const char *path, unsigned timeout_s,
		   kha_kube_watch_fn fn, void *userdata, struct kha_diag *d)
{
	struct sink sink = {.c = c, .d = d, .watch = true, .fn = fn, .userdata = userdata};
	kha_autofree char *wpath = NULL;
	char p[512];
	long code = 0;
	int r;

	kha_diag_clear(d);
	if (timeout_s == 0)
		timeout_s = 300;
	if (asprintf(&wpath, "%s%swatch=1&timeoutSeconds=%u", path, strchr(path, '?') ? "&" : "?",
		     timeout_s) < 0) {
		wpath = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = do_request(c, "GET", wpath, NULL, &sink,
		       ((uint64_t)timeout_s + WATCH_SLACK_S) * KHA_USEC_PER_SEC, &code, d);
	if (r == 0 && code != 200)
		r = http_error(code, sink.buf, sink.len, d);
	/* a last line without its newline (the server closed mid-line) is dropped: incomplete */
	free(sink.buf);
	if (r < 0)
		kha_diag_prefix(d, "kube %s: watch %s", c->display, path_only(p, sizeof(p), path));
	return r;
}
