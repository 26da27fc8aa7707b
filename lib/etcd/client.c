// SPDX-License-Identifier: MIT
/*
 * The etcd client: endpoint failover, the /v3 -> /v3beta probe, error mapping, request
 * encoding. Replies are decoded by decode.c.
 */
#include <stdio.h>
#include <string.h>

#include "kha/etcd.h"
#include "kha/http.h"
#include "kha/json.h"
#include "kha/parse.h"
#include "etcd-internal.h"
#include "kha/banned.h"

struct kha_etcd {
	struct kha_http *http;
	char **endpoints;
	size_t n_endpoints;
	size_t current;
	const char *api; /* "/v3" or "/v3beta" */
	uint64_t dial_timeout_us;
	uint64_t command_timeout_us;
	uint64_t cfg_command_timeout_us;
};

const struct kha_http_flag_names kha_etcd__flag_names = {
	.cacert = "--cacert",
	.cert = "--cert/--key",
	.connect_timeout = "--dial-timeout",
	.timeout = "--command-timeout",
	.endpoint = "--endpoints",
};

void kha_etcd_free(struct kha_etcd *c)
{
	if (!c)
		return;
	kha_http_free(c->http);
	for (size_t i = 0; i < c->n_endpoints; i++)
		free(c->endpoints[i]);
	free(c->endpoints);
	free(c);
}

/* "host:port" becomes a URL: https when TLS files are configured, like etcdctl. */
static char *normalize_endpoint(const char *ep, bool tls)
{
	size_t len = strlen(ep);
	char *s;

	while (len && ep[len - 1] == '/')
		len--;
	if (strstr(ep, "://"))
		return strndup(ep, len);
	s = malloc(len + sizeof("https://"));
	if (s)
		snprintf(s, len + sizeof("https://"), "%s%.*s", tls ? "https://" : "http://",
			 (int)len, ep);
	return s;
}

static int client_new(const struct kha_etcd_config *cfg, const char *const *eps, size_t n,
		      struct kha_etcd **ret, struct kha_diag *d)
{
	struct kha_http_options ho = {
		.cacert = cfg->cacert,
		.cert = cfg->cert,
		.key = cfg->key,
		.connect_timeout_us = cfg->dial_timeout_us,
	};
	bool tls = cfg->cacert || cfg->cert;
	struct kha_etcd *c;
	int r;

	if (!n)
		return kha_diag_set(d, EINVAL, "no etcd endpoint given (--endpoints)");
	c = calloc(1, sizeof(*c));
	if (!c)
		return kha_diag_set(d, ENOMEM, "out of memory");
	c->endpoints = calloc(n, sizeof(char *));
	if (!c->endpoints) {
		free(c);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		c->endpoints[i] = normalize_endpoint(eps[i], tls);
		if (!c->endpoints[i]) {
			kha_etcd_free(c);
			return kha_diag_set(d, ENOMEM, "out of memory");
		}
		c->n_endpoints = i + 1;
	}
	r = kha_http_new(&ho, &c->http, d);
	if (r < 0) {
		kha_etcd_free(c);
		if (r == -ENOENT || r == -EACCES)
			kha_diag_append(d, " (check --cacert/--cert/--key)");
		return r;
	}
	c->api = "/v3";
	c->dial_timeout_us =
		cfg->dial_timeout_us ? cfg->dial_timeout_us : KHA_ETCD_DEFAULT_DIAL_TIMEOUT_US;
	c->cfg_command_timeout_us = cfg->command_timeout_us ? cfg->command_timeout_us
							    : KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US;
	c->command_timeout_us = c->cfg_command_timeout_us;
	*ret = c;
	return 0;
}

int kha_etcd_new(const struct kha_etcd_config *cfg, struct kha_etcd **ret, struct kha_diag *d)
{
	return client_new(cfg, (const char *const *)cfg->endpoints, cfg->n_endpoints, ret, d);
}

int kha_etcd_new_endpoint(const struct kha_etcd_config *cfg, const char *endpoint,
			  struct kha_etcd **ret, struct kha_diag *d)
{
	return client_new(cfg, &endpoint, 1, ret, d);
}

const char *kha_etcd_endpoint(const struct kha_etcd *c)
{
	return c->endpoints[c->current];
}

void kha_etcd_set_command_timeout(struct kha_etcd *c, uint64_t timeout_us)
{
	c->command_timeout_us = timeout_us ? timeout_us : c->cfg_command_timeout_us;
}

/* ---- transport ---------------------------------------------------------------------------- */

struct call {
	const char *path; /* "/kv/range" */
	const char *body;
	kha_http_line_fn line_fn; /* streams */
	void *userdata;
	uint64_t timeout_us; /* 0 = the command timeout */
	bool no_timeout;     /* streams bounded by a cancel flag only */
	const volatile sig_atomic_t *cancel;
	size_t answered; /* index of the endpoint that answered */
};

static bool looks_like_json(const char *s)
{
	while (s && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
		s++;
	return s && *s == '{';
}

/* A printable excerpt of a body, for "HTTP 502 from ...: <excerpt>". */
static const char *excerpt(char *buf, size_t size, const char *body)
{
	size_t o = 0;

	for (; body && *body && o + 4 < size; body++) {
		unsigned char ch = (unsigned char)*body;
		if (ch == '\n' || ch == '\r' || ch == '\t')
			ch = ' ';
		if (ch < 0x20 || ch >= 0x7f)
			ch = '?';
		if (ch == ' ' && o && buf[o - 1] == ' ')
			continue;
		buf[o++] = (char)ch;
	}
	while (o && buf[o - 1] == ' ')
		o--;
	if (body && *body) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static int answer_error(const char *ep, const char *url, const struct kha_http_response *resp,
			struct kha_diag *d)
{
	struct kha_etcd_error e;
	char ex[96], prefix[320];

	if (resp->body && kha_etcd_decode_error(resp->body, resp->body_len, &e) == 0) {
		snprintf(prefix, sizeof(prefix), "etcd %s: ", ep);
		return kha_etcd_error_diag(&e, prefix, d);
	}
	if (resp->status == 400 && resp->body &&
	    strstr(resp->body, "HTTP request to an HTTPS server"))
		return kha_diag_set(
			d, EPROTO, "etcd %s: the endpoint speaks TLS (use https:// in --endpoints)",
			ep);
	return kha_diag_set(d, EPROTO, "etcd %s: HTTP %ld from %s: not an etcd gateway? (%s)", ep,
			    resp->status, url, excerpt(ex, sizeof(ex), resp->body));
}

static void add_hint(struct kha_diag *d, enum kha_http_fail f, const char *ep)
{
	const char *hint = kha_http_fail_hint(f, &kha_etcd__flag_names);

	if (hint)
		kha_diag_append(d, " (check %s)", hint);
	else if (f == KHA_HTTP_FAIL_IO && strncmp(ep, "http://", 7) == 0)
		/* a TLS-only etcd hangs up on plain HTTP without a word */
		kha_diag_append(d, " (if the endpoint speaks TLS, use https://)");
}

/*
 * Sends one request with failover. Returns 0 with a 2xx answer in resp (body for unary calls),
 * a stream callback's non-zero value, or a negative errno with the diag naming the endpoint.
 */
static int call(struct kha_etcd *c, struct call *cl, struct kha_http_response *resp,
		struct kha_diag *d)
{
	uint64_t timeout = cl->timeout_us ? cl->timeout_us : c->command_timeout_us;
	uint64_t deadline = cl->no_timeout ? 0 : kha_now_us() + timeout;
	char unreachable[KHA_DIAG_MAX] = "";
	int first_err = 0;
	char url[2048];

	for (size_t i = 0; i < c->n_endpoints; i++) {
		size_t idx = (c->current + i) % c->n_endpoints;
		const char *ep = c->endpoints[idx];
		bool probed_beta = false;
		struct kha_diag hd = {};
		int r;

	again:
		kha_http_response_release(resp);
		kha_diag_clear(&hd);
		{
			uint64_t now = kha_now_us(), remaining = 0;
			struct kha_http_request req = {
				.url = url,
				.body = cl->body ? cl->body : "{}",
				.cancel = cl->cancel,
				/* unary replies; stream lines (snapshot chunks) keep the default */
				.max_body = cl->line_fn ? 0 : KHA_ETCD_MAX_REPLY,
			};

			if (deadline) {
				if (now >= deadline) {
					char dur[32];

					r = kha_diag_set(
						&hd, ETIMEDOUT, "no answer within %s",
						kha_format_duration(dur, sizeof(dur), timeout));
					add_hint(&hd, KHA_HTTP_FAIL_TIMEOUT, ep);
					goto failed;
				}
				remaining = deadline - now;
			}
			req.timeout_us = remaining;
			req.connect_timeout_us = c->dial_timeout_us;
			if (remaining && remaining < req.connect_timeout_us)
				req.connect_timeout_us = remaining;
			snprintf(url, sizeof(url), "%s%s%s", ep, c->api, cl->path);
			if (cl->line_fn)
				r = kha_http_stream(c->http, &req, cl->line_fn, cl->userdata, resp,
						    &hd);
			else
				r = kha_http_do(c->http, &req, resp, &hd);
		}
		if (r < 0 && (resp->fail == KHA_HTTP_FAIL_TIMEOUT ||
			      resp->fail == KHA_HTTP_FAIL_CONNECT_TIMEOUT)) {
			/* name the configured timeout, not what remained of it */
			char dur[32];
			bool connect = resp->fail == KHA_HTTP_FAIL_CONNECT_TIMEOUT &&
				       (cl->no_timeout || c->dial_timeout_us < timeout);

			kha_format_duration(dur, sizeof(dur),
					    connect ? c->dial_timeout_us : timeout);
			if (connect && resp->tls_stalled)
				kha_diag_set(&hd, ETIMEDOUT,
					     "TCP connected, but no TLS handshake within %s (a "
					     "frozen server, or one that does not speak TLS?)",
					     dur);
			else if (connect)
				kha_diag_set(&hd, ETIMEDOUT, "no connection within %s: timed out",
					     dur);
			else
				kha_diag_set(&hd, ETIMEDOUT, "no answer within %s", dur);
			resp->fail =
				connect ? KHA_HTTP_FAIL_CONNECT_TIMEOUT : KHA_HTTP_FAIL_TIMEOUT;
		}
		if (r != 0 && resp->fail == KHA_HTTP_FAIL_NONE) {
			/* a stream callback stopped it; its diag is set */
			c->current = idx;
			cl->answered = idx;
			return r;
		}
		if (r < 0 && !resp->sent) {
			/* never reached this endpoint: the next one may do better */
			size_t len = strlen(unreachable);

			add_hint(&hd, resp->tls_stalled ? KHA_HTTP_FAIL_NONE : resp->fail, ep);
			if (!first_err)
				first_err = r;
			snprintf(unreachable + len, sizeof(unreachable) - len, "%s%s: %s",
				 len ? "; " : "", ep, hd.msg);
			continue;
		}
		c->current = idx;
		cl->answered = idx;
		if (r < 0) {
			add_hint(&hd, resp->tls_stalled ? KHA_HTTP_FAIL_NONE : resp->fail, ep);
			goto failed;
		}
		if (resp->status == 404 && !looks_like_json(resp->body) && !probed_beta &&
		    strcmp(c->api, "/v3") == 0) {
			/* etcd 3.3 and older serve the gateway under /v3beta only */
			probed_beta = true;
			c->api = "/v3beta";
			goto again;
		}
		if (resp->status >= 200 && resp->status < 300)
			return 0;
		if (probed_beta && resp->status == 404 && !looks_like_json(resp->body)) {
			c->api = "/v3";
			snprintf(url, sizeof(url), "%s%s%s", ep, c->api, cl->path);
		}
		return answer_error(ep, url, resp, d);
	failed:
		return kha_diag_set(d, r, "etcd %s: %s", ep, hd.msg);
	}
	if (c->n_endpoints == 1)
		return kha_diag_set(d, first_err, "etcd %s", unreachable);
	return kha_diag_set(d, first_err, "etcd: no endpoint reachable: %s", unreachable);
}

/* A unary call: body (consumed) -> 2xx reply text in resp->body. */
static int unary(struct kha_etcd *c, const char *path, json_t *body, struct kha_http_response *resp,
		 struct kha_diag *d)
{
	struct call cl = {.path = path};
	char *text;
	int r;

	if (!body)
		return kha_diag_set(d, ENOMEM, "out of memory");
	text = kha_json_dumps(body);
	json_decref(body);
	if (!text)
		return kha_diag_set(d, ENOMEM, "out of memory");
	cl.body = text;
	r = call(c, &cl, resp, d);
	free(text);
	return r;
}

/* Prefixes a decoder's failure with the endpoint that answered. */
static int decoded(struct kha_etcd *c, int r, struct kha_diag *d)
{
	if (r < 0)
		kha_diag_prefix(d, "etcd %s", kha_etcd_endpoint(c));
	return r;
}

/* ---- request encoding --------------------------------------------------------------------- */

/* Sets "key" and "range_end" of a key range. */
static int set_range(json_t *o, const struct kha_etcd_key_range *kr)
{
	const char *key = kr->key ? kr->key : "";
	size_t klen = kr->key_len ? kr->key_len : strlen(key);
	static const char zero = '\0';
	int r;

	if (klen == 0 && (kr->prefix || kr->from_key)) {
		/* every key: ["\0", "\0") as etcdctl sends it */
		r = kha_json_set_base64(o, "key", &zero, 1);
		return r < 0 ? r : kha_json_set_base64(o, "range_end", &zero, 1);
	}
	r = kha_json_set_base64(o, "key", key, klen);
	if (r < 0)
		return r;
	if (kr->prefix) {
		kha_autofree char *end = malloc(klen);
		size_t n = klen;

		if (!end)
			return -ENOMEM;
		memcpy(end, key, klen);
		while (n && (unsigned char)end[n - 1] == 0xff)
			n--;
		if (!n)
			return kha_json_set_base64(o, "range_end", &zero, 1);
		end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
		return kha_json_set_base64(o, "range_end", end, n);
	}
	if (kr->from_key)
		return kha_json_set_base64(o, "range_end", &zero, 1);
	if (kr->range_end) {
		size_t elen = kr->range_end_len ? kr->range_end_len : strlen(kr->range_end);
		return kha_json_set_base64(o, "range_end", kr->range_end, elen);
	}
	return 0;
}

static int set_i64(json_t *o, const char *name, int64_t v)
{
	return v ? kha_json_set(o, name, kha_json_i64_string(v)) : 0;
}

static int set_true(json_t *o, const char *name, bool v)
{
	return v ? kha_json_set(o, name, json_true()) : 0;
}

static json_t *range_json(const struct kha_etcd_range_req *req)
{
	json_t *o = json_object();

	if (!o || set_range(o, &req->r) < 0 || set_i64(o, "limit", req->limit) < 0 ||
	    set_i64(o, "revision", req->revision) < 0 ||
	    set_true(o, "keys_only", req->keys_only) < 0 ||
	    set_true(o, "count_only", req->count_only) < 0 ||
	    set_true(o, "serializable", req->serializable) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *put_json(const struct kha_etcd_put_req *req)
{
	const char *value = req->value ? req->value : "";
	size_t vlen = req->value_len ? req->value_len : strlen(value);
	size_t klen = req->key_len ? req->key_len : strlen(req->key ? req->key : "");
	json_t *o = json_object();

	if (!o || kha_json_set_base64(o, "key", req->key ? req->key : "", klen) < 0 ||
	    (vlen && kha_json_set_base64(o, "value", value, vlen) < 0) ||
	    set_i64(o, "lease", req->lease) < 0 || set_true(o, "prev_kv", req->prev_kv) < 0 ||
	    set_true(o, "ignore_value", req->ignore_value) < 0 ||
	    set_true(o, "ignore_lease", req->ignore_lease) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *delete_json(const struct kha_etcd_delete_req *req)
{
	json_t *o = json_object();

	if (!o || set_range(o, &req->r) < 0 || set_true(o, "prev_kv", req->prev_kv) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *op_json(const struct kha_etcd_op *op)
{
	json_t *o = json_object(), *inner = NULL;
	const char *name = NULL;

	switch (op->type) {
	case KHA_ETCD_OP_RANGE:
		inner = range_json(&op->range);
		name = "request_range";
		break;
	case KHA_ETCD_OP_PUT:
		inner = put_json(&op->put);
		name = "request_put";
		break;
	case KHA_ETCD_OP_DELETE:
		inner = delete_json(&op->del);
		name = "request_delete_range";
		break;
	}
	if (!o || !name || kha_json_set(o, name, inner) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *compare_json(const struct kha_etcd_compare *cmp)
{
	static const char *const targets[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
	static const char *const fields[] = {"version", "create_revision", "mod_revision", "value",
					     "lease"};
	static const char *const ops[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
	json_t *o = json_object();
	int r;

	if (!o || (unsigned)cmp->target >= KHA_ARRAY_SIZE(targets) ||
	    (unsigned)cmp->op >= KHA_ARRAY_SIZE(ops))
		goto fail;
	r = set_range(o, &cmp->r);
	if (r == 0)
		r = kha_json_set(o, "target", json_string(targets[cmp->target]));
	if (r == 0)
		r = kha_json_set(o, "result", json_string(ops[cmp->op]));
	if (r == 0 && cmp->target == KHA_ETCD_CMP_VALUE) {
		const char *v = cmp->value ? cmp->value : "";
		r = kha_json_set_base64(o, "value", v, cmp->value_len ? cmp->value_len : strlen(v));
	} else if (r == 0) {
		/* always sent, even 0: it selects the comparison's oneof */
		r = kha_json_set(o, fields[cmp->target], kha_json_i64_string(cmp->number));
	}
	if (r < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *ops_json(const struct kha_etcd_op *ops, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		json_t *o = op_json(&ops[i]);
		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* ---- KV ----------------------------------------------------------------------------------- */

int kha_etcd_range(struct kha_etcd *c, const struct kha_etcd_range_req *req,
		   struct kha_etcd_range_result *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	int r;

	r = unary(c, "/kv/range", range_json(req), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_range(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_get(struct kha_etcd *c, const char *key, struct kha_etcd_kv *ret, struct kha_diag *d)
{
	struct kha_etcd_range_req req = {.r.key = key};
	struct kha_etcd_range_result res = {};
	int r;

	r = kha_etcd_range(c, &req, &res, d);
	if (r < 0)
		return r;
	if (res.n_kvs == 0) {
		kha_etcd_range_result_release(&res);
		return kha_diag_set(d, ENOENT, "etcd %s: key '%s' not found", kha_etcd_endpoint(c),
				    key);
	}
	*ret = res.kvs[0];
	memset(&res.kvs[0], 0, sizeof(res.kvs[0]));
	kha_etcd_range_result_release(&res);
	return 0;
}

int kha_etcd_put(struct kha_etcd *c, const struct kha_etcd_put_req *req,
		 struct kha_etcd_put_result *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_put_result res = {};
	int r;

	r = unary(c, "/kv/put", put_json(req), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_put(resp.body, resp.body_len, &res, d), d);
	kha_http_response_release(&resp);
	if (r == 0 && ret)
		*ret = res;
	else
		kha_etcd_put_result_release(&res);
	return r;
}

int kha_etcd_delete(struct kha_etcd *c, const struct kha_etcd_delete_req *req,
		    struct kha_etcd_delete_result *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_delete_result res = {};
	int r;

	r = unary(c, "/kv/deleterange", delete_json(req), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_delete(resp.body, resp.body_len, &res, d), d);
	kha_http_response_release(&resp);
	if (r == 0 && ret)
		*ret = res;
	else
		kha_etcd_delete_result_release(&res);
	return r;
}

int kha_etcd_txn(struct kha_etcd *c, const struct kha_etcd_txn_req *req,
		 struct kha_etcd_txn_result *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	json_t *o = json_object(), *cmps = json_array();
	int r;

	for (size_t i = 0; cmps && i < req->n_compare; i++) {
		json_t *cj = compare_json(&req->compare[i]);
		if (!cj || json_array_append_new(cmps, cj) < 0) {
			json_decref(cmps);
			cmps = NULL;
		}
	}
	if (!o || kha_json_set(o, "compare", cmps) < 0 ||
	    kha_json_set(o, "success", ops_json(req->success, req->n_success)) < 0 ||
	    kha_json_set(o, "failure", ops_json(req->failure, req->n_failure)) < 0) {
		json_decref(o);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = unary(c, "/kv/txn", o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_txn(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_compact(struct kha_etcd *c, int64_t revision, bool physical, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_header h;
	json_t *o = json_object();
	int r;

	if (!o || set_i64(o, "revision", revision) < 0 || set_true(o, "physical", physical) < 0) {
		json_decref(o);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = unary(c, "/kv/compaction", o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_header(resp.body, resp.body_len, &h, d), d);
	kha_http_response_release(&resp);
	return r;
}

/* ---- leases ------------------------------------------------------------------------------- */

static json_t *id_json(const char *name, int64_t id)
{
	json_t *o = json_object();

	if (o && kha_json_set(o, name, kha_json_i64_string(id)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int kha_etcd_lease_grant(struct kha_etcd *c, int64_t ttl_s, int64_t id, int64_t *ret_id,
			 int64_t *ret_ttl, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	json_t *o = json_object();
	int r;

	if (!o || kha_json_set(o, "TTL", kha_json_i64_string(ttl_s)) < 0 ||
	    set_i64(o, "ID", id) < 0) {
		json_decref(o);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = unary(c, "/lease/grant", o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_lease(resp.body, resp.body_len, ret_id, ret_ttl, d),
			    d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_lease_keepalive_once(struct kha_etcd *c, int64_t id, int64_t *ret_ttl,
				  struct kha_diag *d)
{
	struct kha_http_response resp = {};
	int r;

	r = unary(c, "/lease/keepalive", id_json("ID", id), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_lease(resp.body, resp.body_len, NULL, ret_ttl, d),
			    d);
	kha_http_response_release(&resp);
	if (r == -ENOENT) {
		/* etcd 3.4 answers TTL 0 for an unknown lease, later versions NotFound: same thing */
		kha_diag_clear(d);
		*ret_ttl = 0;
		r = 0;
	}
	return r;
}

int kha_etcd_lease_revoke(struct kha_etcd *c, int64_t id, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_header h;
	int r;

	r = unary(c, "/lease/revoke", id_json("ID", id), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_header(resp.body, resp.body_len, &h, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_lease_time_to_live(struct kha_etcd *c, int64_t id, bool keys,
				struct kha_etcd_lease_ttl *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	json_t *o = id_json("ID", id);
	int r;

	if (o && set_true(o, "keys", keys) < 0) {
		json_decref(o);
		o = NULL;
	}
	r = unary(c, "/lease/timetolive", o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_lease_ttl(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

/* ---- watch -------------------------------------------------------------------------------- */

struct watch_ctx {
	struct kha_etcd *c;
	kha_etcd_watch_fn fn;
	void *userdata;
	struct kha_diag *d;
};

static int on_watch_line(void *userdata, char *line, size_t len)
{
	struct watch_ctx *w = userdata;
	struct kha_etcd_watch_response resp = {};
	int r;

	r = kha_etcd_decode_watch(line, len, &resp, w->d);
	if (r < 0) {
		kha_diag_prefix(w->d, "etcd %s: watch", kha_etcd_endpoint(w->c));
		return r;
	}
	r = w->fn(w->userdata, &resp);
	if (r == 0 && resp.canceled) {
		if (resp.compact_revision > 0)
			r = kha_diag_set(w->d, ERANGE,
					 "etcd %s: watch: the start revision was compacted "
					 "(oldest available: %lld)",
					 kha_etcd_endpoint(w->c), (long long)resp.compact_revision);
		else
			r = kha_diag_set(w->d, ECANCELED,
					 "etcd %s: watch canceled by the server%s%s",
					 kha_etcd_endpoint(w->c), resp.cancel_reason[0] ? ": " : "",
					 resp.cancel_reason);
	}
	kha_etcd_watch_response_release(&resp);
	return r;
}

int kha_etcd_watch(struct kha_etcd *c, const struct kha_etcd_watch_req *req, kha_etcd_watch_fn fn,
		   void *userdata, struct kha_diag *d)
{
	struct watch_ctx w = {.c = c, .fn = fn, .userdata = userdata, .d = d};
	struct kha_http_response resp = {};
	struct call cl = {
		.path = "/watch",
		.line_fn = on_watch_line,
		.userdata = &w,
		.timeout_us = req->timeout_us,
		.no_timeout = req->timeout_us == 0,
		.cancel = req->cancel,
	};
	json_t *o = json_object(), *cr = json_object(), *filters = json_array();
	kha_autofree char *body = NULL;
	char dur[32];
	bool sent;
	int r;

	if (!o || !cr || !filters || set_range(cr, &req->r) < 0 ||
	    set_i64(cr, "start_revision", req->start_revision) < 0 ||
	    set_true(cr, "prev_kv", req->prev_kv) < 0 ||
	    set_true(cr, "progress_notify", req->progress_notify) < 0 ||
	    (req->no_put && json_array_append_new(filters, json_string("NOPUT")) < 0) ||
	    (req->no_delete && json_array_append_new(filters, json_string("NODELETE")) < 0) ||
	    kha_json_set(cr, "filters", json_incref(filters)) < 0 ||
	    kha_json_set(o, "create_request", json_incref(cr)) < 0 || !(body = kha_json_dumps(o))) {
		json_decref(o);
		json_decref(cr);
		json_decref(filters);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	json_decref(o);
	json_decref(cr);
	json_decref(filters);
	cl.body = body;
	r = call(c, &cl, &resp, d);
	sent = resp.sent;
	kha_http_response_release(&resp);
	if (r == -ETIMEDOUT && req->timeout_us && sent)
		return kha_diag_set(d, ETIMEDOUT, "etcd %s: watch reached its deadline (%s)",
				    kha_etcd_endpoint(c),
				    kha_format_duration(dur, sizeof(dur), req->timeout_us));
	if (r == 0)
		return kha_diag_set(d, ECONNRESET, "etcd %s: the watch stream ended",
				    kha_etcd_endpoint(c));
	return r;
}

/* ---- cluster ------------------------------------------------------------------------------ */

int kha_etcd_member_list(struct kha_etcd *c, struct kha_etcd_member_list *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	int r;

	r = unary(c, "/cluster/member/list", json_object(), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_member_list(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_member_add(struct kha_etcd *c, const char *const *peer_urls, size_t n_peer_urls,
			bool is_learner, struct kha_etcd_member *ret_member,
			struct kha_etcd_member_list *ret_list, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	json_t *o = json_object(), *urls = json_array();
	int r;

	for (size_t i = 0; urls && i < n_peer_urls; i++) {
		if (json_array_append_new(urls, json_string(peer_urls[i])) < 0) {
			json_decref(urls);
			urls = NULL;
		}
	}
	if (!o || kha_json_set(o, "peerURLs", urls) < 0 ||
	    set_true(o, "isLearner", is_learner) < 0) {
		json_decref(o);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = unary(c, "/cluster/member/add", o, &resp, d);
	if (r == 0)
		r = decoded(c,
			    kha_etcd_decode_member_add(resp.body, resp.body_len, ret_member,
						       ret_list, d),
			    d);
	kha_http_response_release(&resp);
	return r;
}

static int member_call(struct kha_etcd *c, const char *path, uint64_t id,
		       struct kha_etcd_member_list *ret_list, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_member_list l = {};
	json_t *o = json_object();
	int r;

	if (o && kha_json_set(o, "ID", kha_json_u64_string(id)) < 0) {
		json_decref(o);
		o = NULL;
	}
	r = unary(c, path, o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_member_list(resp.body, resp.body_len, &l, d), d);
	kha_http_response_release(&resp);
	if (r == 0 && ret_list)
		*ret_list = l;
	else
		kha_etcd_member_list_release(&l);
	return r;
}

int kha_etcd_member_remove(struct kha_etcd *c, uint64_t id, struct kha_etcd_member_list *ret_list,
			   struct kha_diag *d)
{
	return member_call(c, "/cluster/member/remove", id, ret_list, d);
}

int kha_etcd_member_promote(struct kha_etcd *c, uint64_t id, struct kha_etcd_member_list *ret_list,
			    struct kha_diag *d)
{
	return member_call(c, "/cluster/member/promote", id, ret_list, d);
}

/* ---- maintenance -------------------------------------------------------------------------- */

int kha_etcd_status(struct kha_etcd *c, struct kha_etcd_status *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	int r;

	r = unary(c, "/maintenance/status", json_object(), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_status(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_alarm_list(struct kha_etcd *c, struct kha_etcd_alarm_list *ret, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	json_t *o = json_object();
	int r;

	if (o && kha_json_set(o, "action", json_string("GET")) < 0) {
		json_decref(o);
		o = NULL;
	}
	r = unary(c, "/maintenance/alarm", o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_alarms(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_alarm_disarm(struct kha_etcd *c, uint64_t member_id, enum kha_etcd_alarm_type type,
			  struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_alarm_list l = {};
	json_t *o = json_object();
	int r;

	if (!o || kha_json_set(o, "action", json_string("DEACTIVATE")) < 0 ||
	    (member_id && kha_json_set(o, "memberID", kha_json_u64_string(member_id)) < 0) ||
	    (type != KHA_ETCD_ALARM_NONE &&
	     kha_json_set(o, "alarm", json_string(kha_etcd_alarm_name(type))) < 0)) {
		json_decref(o);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = unary(c, "/maintenance/alarm", o, &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_alarms(resp.body, resp.body_len, &l, d), d);
	kha_etcd_alarm_list_release(&l);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_defragment(struct kha_etcd *c, struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_header h;
	int r;

	r = unary(c, "/maintenance/defragment", json_object(), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_header(resp.body, resp.body_len, &h, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_hash_kv(struct kha_etcd *c, int64_t revision, struct kha_etcd_hash_kv *ret,
		     struct kha_diag *d)
{
	struct kha_http_response resp = {};
	json_t *o = json_object();
	int r;

	if (o && set_i64(o, "revision", revision) < 0) {
		json_decref(o);
		o = NULL;
	}
	r = unary(c, "/maintenance/hashkv", o, &resp, d);
	if (r == -EPROTO && resp.status == 404)
		r = kha_diag_set(d, EOPNOTSUPP,
				 "etcd %s: HashKV is not served by this etcd's gateway (etcd 3.4)",
				 kha_etcd_endpoint(c));
	if (r == 0)
		r = decoded(c, kha_etcd_decode_hash_kv(resp.body, resp.body_len, ret, d), d);
	kha_http_response_release(&resp);
	return r;
}

int kha_etcd_hash(struct kha_etcd *c, uint32_t *ret_hash, struct kha_etcd_header *ret_header,
		  struct kha_diag *d)
{
	struct kha_http_response resp = {};
	struct kha_etcd_hash_kv h = {};
	int r;

	r = unary(c, "/maintenance/hash", json_object(), &resp, d);
	if (r == 0)
		r = decoded(c, kha_etcd_decode_hash_kv(resp.body, resp.body_len, &h, d), d);
	kha_http_response_release(&resp);
	if (r == 0) {
		if (ret_hash)
			*ret_hash = h.hash;
		if (ret_header)
			*ret_header = h.header;
	}
	return r;
}
