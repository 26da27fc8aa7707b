// SPDX-License-Identifier: MIT
/*
 * FleetLock (Zincati's reboot-coordination protocol) on the etcd semaphore of kha lock.
 *
 * A FleetLock holder is a key "<lock>/fleetlock:<id>" WITHOUT a lease: the client reboots while
 * holding it, so it must outlive every connection and this server; only steady-state (or an
 * operator) removes it. A pre-reboot first puts the key on a short lease of its own ("pending"),
 * reads the queue, and either makes the key permanent (put with lease 0 keeps its create
 * revision, so its place) when it is among the first N, or deletes it: a crash in between
 * leaves only a key that expires with its lease.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <limits.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kha/election.h"
#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define PENDING_TTL_US	  (10 * KHA_USEC_PER_SEC)
#define MAX_HEAD	  16384
#define MAX_BODY	  65536
#define MAX_CONNECTIONS	  32
#define REQUEST_TIMEOUT_S 5

const char *kha_fleetlock_lock_name(char *buf, size_t size, const char *lock, const char *group)
{
	if (strcmp(group, "default") == 0)
		snprintf(buf, size, "%s", lock);
	else
		snprintf(buf, size, "%s.%s", lock, group);
	return buf;
}

static void result(struct kha_fleetlock_result *ret, int status, const char *kind, const char *fmt,
		   ...) KHA_PRINTF(4, 5);
static void result(struct kha_fleetlock_result *ret, int status, const char *kind, const char *fmt,
		   ...)
{
	va_list ap;

	ret->status = status;
	snprintf(ret->kind, sizeof(ret->kind), "%s", kind);
	va_start(ap, fmt);
	vsnprintf(ret->value, sizeof(ret->value), fmt, ap);
	va_end(ap);
}

/* "<lock>/fleetlock:<id>", id bytes outside [A-Za-z0-9._-] as %XX. */
static int holder_key(char *buf, size_t size, const char *lock, const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o;
	int n = snprintf(buf, size, "%s/fleetlock:", lock);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	o = (size_t)n;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';

		if (o + 4 >= size)
			return -ENAMETOOLONG;
		if (plain) {
			buf[o++] = (char)*p;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 15];
		}
	}
	buf[o] = '\0';
	return 0;
}

static void etcd_failed(struct kha_fleetlock_result *ret, const struct kha_diag *d)
{
	result(ret, 503, "failed_etcd", "etcd: %s", d->msg);
}

/* Deletes key if it still has create revision rev. */
static void delete_if(struct kha_etcd *c, const char *key, int64_t rev)
{
	struct kha_etcd_compare cmp = {.target = KHA_ETCD_CMP_CREATE_REVISION,
				       .op = KHA_ETCD_CMP_EQUAL,
				       .r = {.key = key},
				       .number = rev};
	struct kha_etcd_op del = {.type = KHA_ETCD_OP_DELETE, .del = {.r = {.key = key}}};
	struct kha_etcd_txn_req req = {
		.compare = &cmp, .n_compare = 1, .success = &del, .n_success = 1};
	struct kha_etcd_txn_result res = {};

	kha_ignore(kha_etcd_txn(c, &req, &res, NULL));
	kha_etcd_txn_result_release(&res);
}

void kha_fleetlock_pre_reboot(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
			      const struct kha_fleetlock_params *p,
			      struct kha_fleetlock_result *ret)
{
	char lock[512], key[1400], prefix[520];
	struct kha_etcd_range_result rr = {};
	struct kha_etcd_txn_result tr = {};
	struct kha_etcd_kv cur = {};
	struct kha_sem_position pos;
	struct kha_diag d = {};
	kha_autofree char *value = NULL;
	int64_t lease = 0, my_rev;
	uint64_t pending = o->pending_ttl_us ? o->pending_ttl_us : PENDING_TTL_US;
	int r;

	kha_fleetlock_lock_name(lock, sizeof(lock), o->lock, p->group);
	snprintf(prefix, sizeof(prefix), "%s/", lock);
	if (holder_key(key, sizeof(key), lock, p->id) < 0) {
		result(ret, 400, "bad_request_body", "client_params.id is too long");
		return;
	}
	/* already a holder? (recursive lock) */
	r = kha_etcd_get(c, key, &cur, &d);
	if (r == 0) {
		bool permanent = cur.lease == 0;

		kha_etcd_kv_release(&cur);
		if (permanent) {
			result(ret, 200, "lock_held", "%s already holds a slot of %s", p->id, lock);
			return;
		}
		result(ret, 409, "failed_lock_pending",
		       "another request of %s for %s is in progress; retry", p->id, lock);
		return;
	}
	if (r != -ENOENT) {
		etcd_failed(ret, &d);
		return;
	}
	value = kha_lock_value(p->id, o->slots, (int64_t)kha_wall_us(), true);
	if (!value) {
		result(ret, 500, "failed_internal", "out of memory");
		return;
	}
	kha_diag_clear(&d);
	r = kha_etcd_lease_grant(c, (int64_t)((pending + KHA_USEC_PER_SEC - 1) / KHA_USEC_PER_SEC),
				 0, &lease, NULL, &d);
	if (r < 0) {
		etcd_failed(ret, &d);
		return;
	}
	{
		struct kha_etcd_compare cmp = {.target = KHA_ETCD_CMP_CREATE_REVISION,
					       .op = KHA_ETCD_CMP_EQUAL,
					       .r = {.key = key},
					       .number = 0};
		struct kha_etcd_op put = {.type = KHA_ETCD_OP_PUT,
					  .put = {.key = key, .value = value, .lease = lease}};
		struct kha_etcd_txn_req req = {
			.compare = &cmp, .n_compare = 1, .success = &put, .n_success = 1};

		kha_diag_clear(&d);
		r = kha_etcd_txn(c, &req, &tr, &d);
		if (r < 0) {
			etcd_failed(ret, &d);
			goto out;
		}
		if (!tr.succeeded) {
			result(ret, 409, "failed_lock_pending",
			       "another request of %s for %s is in progress; retry", p->id, lock);
			goto out;
		}
		my_rev = tr.header.revision;
	}
	kha_diag_clear(&d);
	{
		struct kha_etcd_range_req rq = {.r = {.key = prefix, .prefix = true}};

		r = kha_etcd_range(c, &rq, &rr, &d);
	}
	if (r < 0) {
		etcd_failed(ret, &d);
		delete_if(c, key, my_rev);
		goto out;
	}
	if (kha_sem_position(rr.kvs, rr.n_kvs, key, &pos) < 0) {
		result(ret, 409, "failed_lock_pending", "the request was withdrawn; retry");
		goto out;
	}
	if (pos.rank >= o->slots) {
		result(ret, 409, "failed_lock_semaphore_full",
		       "semaphore %s is full: all %zu slot(s) are locked already", lock, o->slots);
		delete_if(c, key, my_rev);
		goto out;
	}
	if (o->gates) {
		const char *gate = NULL;
		char reason[400];

		r = kha_lock_gates_check_named(o->gates, &gate, reason, sizeof(reason));
		if (r != 0) {
			char kind[64];

			snprintf(kind, sizeof(kind), "failed_gate_%s", gate ? gate : "unknown");
			result(ret, 409, kind, "%s", reason);
			delete_if(c, key, my_rev);
			goto out;
		}
	}
	{
		/* keep the place (create revision), drop the lease: the slot now outlives us */
		struct kha_etcd_compare cmp = {.target = KHA_ETCD_CMP_CREATE_REVISION,
					       .op = KHA_ETCD_CMP_EQUAL,
					       .r = {.key = key},
					       .number = my_rev};
		struct kha_etcd_op put = {.type = KHA_ETCD_OP_PUT,
					  .put = {.key = key, .value = value, .lease = 0}};
		struct kha_etcd_txn_req req = {
			.compare = &cmp, .n_compare = 1, .success = &put, .n_success = 1};

		kha_etcd_txn_result_release(&tr);
		kha_diag_clear(&d);
		r = kha_etcd_txn(c, &req, &tr, &d);
		if (r < 0) {
			etcd_failed(ret, &d);
			delete_if(c, key, my_rev);
			goto out;
		}
		if (!tr.succeeded) {
			result(ret, 409, "failed_lock_pending", "the request was withdrawn; retry");
			goto out;
		}
	}
	kha_info("fleetlock: slot granted", "lock=%s id=%s position=%zu", lock, p->id,
		 pos.rank + 1);
	result(ret, 200, "lock_granted", "%s holds slot %zu of %zu of %s", p->id, pos.rank + 1,
	       o->slots, lock);
out:
	if (lease)
		kha_ignore(kha_etcd_lease_revoke(c, lease, NULL));
	kha_etcd_range_result_release(&rr);
	kha_etcd_txn_result_release(&tr);
}

void kha_fleetlock_steady_state(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
				const struct kha_fleetlock_params *p,
				struct kha_fleetlock_result *ret)
{
	struct kha_etcd_delete_result dr = {};
	char lock[512], key[1400];
	struct kha_diag d = {};
	struct kha_etcd_delete_req req;
	int r;

	kha_fleetlock_lock_name(lock, sizeof(lock), o->lock, p->group);
	if (holder_key(key, sizeof(key), lock, p->id) < 0) {
		result(ret, 400, "bad_request_body", "client_params.id is too long");
		return;
	}
	req = (struct kha_etcd_delete_req){.r = {.key = key}};
	r = kha_etcd_delete(c, &req, &dr, &d);
	if (r < 0) {
		etcd_failed(ret, &d);
		return;
	}
	if (dr.deleted)
		kha_info("fleetlock: slot released", "lock=%s id=%s", lock, p->id);
	result(ret, 200, "lock_released", "%s holds no slot of %s", p->id, lock);
	kha_etcd_delete_result_release(&dr);
}

void kha_fleetlock_handle(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
			  const char *method, const char *path, const char *protocol_header,
			  const char *body, size_t body_len, struct kha_fleetlock_result *ret)
{
	struct kha_fleetlock_params p;
	struct kha_diag d = {};
	bool pre = strcmp(path, "/v1/pre-reboot") == 0;

	if (!pre && strcmp(path, "/v1/steady-state") != 0) {
		result(ret, 404, "not_found",
		       "no such endpoint %s (FleetLock serves "
		       "/v1/pre-reboot and /v1/steady-state)",
		       path);
		return;
	}
	if (strcmp(method, "POST") != 0) {
		result(ret, 405, "method_not_allowed", "%s needs POST", path);
		return;
	}
	if (!protocol_header) {
		result(ret, 400, "missing_fleet_lock_protocol_header",
		       "the fleet-lock-protocol: true header is required");
		return;
	}
	if (strcmp(protocol_header, "true") != 0) {
		result(ret, 400, "bad_fleet_lock_protocol_header",
		       "the fleet-lock-protocol header must be 'true'");
		return;
	}
	if (kha_fleetlock_parse(body, body_len, &p, &d) < 0) {
		result(ret, 400, "bad_request_body", "%s", d.msg);
		return;
	}
	if (pre)
		kha_fleetlock_pre_reboot(c, o, &p, ret);
	else
		kha_fleetlock_steady_state(c, o, &p, ret);
}

/* ---- HTTP server ------------------------------------------------------------------------------ */

/*
 * One thread per connection, joinable: a finished thread puts itself on `done` and the accept loop
 * joins it, so that no thread is still running (its thread-local state, OpenSSL's among it, not
 * yet freed) when kha_fleetlock_serve() returns. `active` counts threads not yet joined.
 */
struct server {
	const struct kha_fleetlock_opts *o;
	SSL_CTX *tls; /* NULL: plain HTTP */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	size_t active;
	pthread_t done[MAX_CONNECTIONS];
	size_t ndone;
};

struct conn {
	struct server *s;
	int fd;
};

/* Where an answer goes, and what it was (for the metrics). */
struct reply {
	int fd;
	SSL *ssl;   /* NULL: plain HTTP */
	int status; /* 0: nothing answered */
	enum kha_fleetlock_op op;
};

/* recv()/SSL_read(): > 0 bytes, <= 0 closed, timed out or failed */
static ssize_t conn_recv(struct reply *rp, char *buf, size_t len)
{
	int n;

	if (!rp->ssl)
		return recv(rp->fd, buf, len, 0);
	n = SSL_read(rp->ssl, buf, (int)KHA_MIN(len, (size_t)INT_MAX));
	return n > 0 ? n : -1;
}

static void send_all(struct reply *rp, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = rp->ssl ? SSL_write(rp->ssl, buf, (int)KHA_MIN(len, (size_t)INT_MAX))
				    : send(rp->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && !rp->ssl && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void respond(struct reply *rp, int status, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, kha_httpd_reason(status), strlen(body));

	rp->status = status;
	send_all(rp, head, (size_t)n);
	send_all(rp, body, strlen(body));
}

static void respond_result(struct reply *rp, const struct kha_fleetlock_result *res)
{
	json_t *o = json_object();
	char *text = NULL;

	if (o && json_object_set_new(o, "kind", json_string(res->kind)) == 0 &&
	    json_object_set_new(o, "value", json_string(res->value)) == 0)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	respond(rp, res->status, text ? text : "{}");
	free(text);
}

static void status_json(struct reply *rp, const struct kha_fleetlock_opts *o, struct kha_etcd *c)
{
	struct kha_lock_status st = {0};
	struct kha_diag d = {};
	json_t *root = json_object(), *arr = json_array();
	char *text = NULL;

	if (kha_lock_status_get(c, o->lock, o->slots, &st, &d) < 0) {
		struct kha_fleetlock_result res;

		result(&res, 503, "failed_etcd", "etcd: %s", d.msg);
		respond_result(rp, &res);
		json_decref(root);
		json_decref(arr);
		return;
	}
	for (size_t i = 0; i < st.n && root && arr; i++) {
		json_t *e = json_pack("{s:s,s:s,s:I,s:b,s:b}", "id", st.entries[i].id, "key",
				      st.entries[i].key, "position",
				      (json_int_t)st.entries[i].position, "holder",
				      st.entries[i].holder, "fleetlock", st.entries[i].fleetlock);
		json_array_append_new(arr, e);
	}
	if (root && arr && json_object_set_new(root, "lock", json_string(o->lock)) == 0 &&
	    json_object_set_new(root, "slots", json_integer((json_int_t)o->slots)) == 0 &&
	    json_object_set(root, "contenders", arr) == 0)
		text = json_dumps(root, JSON_COMPACT);
	json_decref(arr);
	json_decref(root);
	respond(rp, 200, text ? text : "{}");
	free(text);
	kha_lock_status_release(&st);
}

/* Finds a header's value in the head (case-insensitive name); copies it trimmed into buf. */
static bool find_header(const char *head, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);
	const char *line = strstr(head, "\r\n");

	while (line && line[2] != '\r' && line[2] != '\0') {
		const char *p = line + 2, *end = strstr(p, "\r\n");

		if (!end)
			break;
		if ((size_t)(end - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			const char *v = p + nlen + 1;
			size_t len;

			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			len = (size_t)(end - v);
			while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			if (len >= size)
				len = size - 1;
			memcpy(buf, v, len);
			buf[len] = '\0';
			return true;
		}
		line = end;
	}
	return false;
}

static void serve_conn(struct server *s, struct reply *rp)
{
	kha_autofree char *buf = malloc(MAX_HEAD + MAX_BODY + 1);
	char method[16], path[512], proto[64], clen[32], te[64];
	struct kha_fleetlock_result res;
	size_t len = 0, head_len = 0, body_len = 0;
	uint64_t content_length = 0;
	char *end = NULL;
	bool have_proto;
	uint64_t deadline = kha_now_us() + REQUEST_TIMEOUT_S * KHA_USEC_PER_SEC;

	if (!buf)
		return;
	while (!end) {
		ssize_t n;

		if (kha_now_us() > deadline)
			return; /* a trickling client: the whole request gets 5 s */
		if (len >= MAX_HEAD) {
			result(&res, 431, "bad_request", "request head larger than %d bytes",
			       MAX_HEAD);
			respond_result(rp, &res);
			return;
		}
		n = conn_recv(rp, buf + len, MAX_HEAD - len);
		if (n <= 0)
			return; /* closed or timed out before a whole head */
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	head_len = (size_t)(end - buf) + 4;
	end[2] = '\0'; /* the head ends with its last header's CRLF */
	if (sscanf(buf, "%15s %511s", method, path) != 2) {
		result(&res, 400, "bad_request", "malformed request line");
		respond_result(rp, &res);
		return;
	}
	{
		char *q = strchr(path, '?');

		if (q)
			*q = '\0';
	}
	rp->op = strcmp(path, "/v1/pre-reboot") == 0	 ? KHA_FLEETLOCK_OP_PRE_REBOOT
		 : strcmp(path, "/v1/steady-state") == 0 ? KHA_FLEETLOCK_OP_STEADY_STATE
		 : strcmp(path, "/v1/status") == 0	 ? KHA_FLEETLOCK_OP_STATUS
							 : KHA_FLEETLOCK_OP_OTHER;
	have_proto = find_header(buf, "fleet-lock-protocol", proto, sizeof(proto));
	if (find_header(buf, "Transfer-Encoding", te, sizeof(te))) {
		result(&res, 411, "bad_request",
		       "chunked bodies are not supported; send "
		       "Content-Length");
		respond_result(rp, &res);
		return;
	}
	if (find_header(buf, "Content-Length", clen, sizeof(clen)) &&
	    kha_parse_u64(clen, 0, UINT64_MAX, &content_length) < 0) {
		result(&res, 400, "bad_request", "bad Content-Length");
		respond_result(rp, &res);
		return;
	}
	if (content_length > MAX_BODY) {
		result(&res, 413, "bad_request_body", "body larger than %d bytes", MAX_BODY);
		respond_result(rp, &res);
		return;
	}
	/* the body: what came with the head, then the rest */
	body_len = len - head_len;
	memmove(buf, buf + head_len, body_len);
	while (body_len < content_length) {
		ssize_t n = kha_now_us() > deadline ? -1
						    : conn_recv(rp, buf + body_len,
								(size_t)content_length - body_len);

		if (n <= 0) {
			result(&res, 408, "bad_request", "the body did not arrive in time");
			respond_result(rp, &res);
			return;
		}
		body_len += (size_t)n;
	}
	body_len = (size_t)content_length;
	buf[body_len] = '\0';
	{
		kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
		struct kha_diag d = {};

		if (strcmp(method, "GET") == 0 && strcmp(path, "/healthz") == 0) {
			respond(rp, 200, "{\"status\":\"ok\"}");
			return;
		}
		if (kha_etcd_new(s->o->etcd, &c, &d) < 0) {
			result(&res, 500, "failed_internal", "%s", d.msg);
			respond_result(rp, &res);
			return;
		}
		if (strcmp(method, "GET") == 0 && strcmp(path, "/v1/status") == 0) {
			status_json(rp, s->o, c);
			return;
		}
		kha_fleetlock_handle(c, s->o, method, path, have_proto ? proto : NULL, buf,
				     body_len, &res);
		respond_result(rp, &res);
	}
}

static void count(const struct kha_fleetlock_opts *o, const struct reply *rp)
{
	enum kha_fleetlock_outcome out = rp->status >= 500   ? KHA_FLEETLOCK_FAILED
					 : rp->status >= 400 ? KHA_FLEETLOCK_REFUSED
							     : KHA_FLEETLOCK_OK;

	if (o->stats && rp->status)
		atomic_fetch_add_explicit(&o->stats->requests[rp->op][out], 1,
					  memory_order_relaxed);
}

static void *conn_thread(void *arg)
{
	struct conn *cn = arg;
	struct server *s = cn->s;

	struct reply rp = {.fd = cn->fd, .op = KHA_FLEETLOCK_OP_OTHER};
	struct timeval tv = {.tv_sec = REQUEST_TIMEOUT_S};

	/* the handshake and the whole request share these bounds: a silent client costs a thread
	 * for REQUEST_TIMEOUT_S at most */
	(void)setsockopt(cn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(cn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!s->tls) {
		serve_conn(s, &rp);
	} else if ((rp.ssl = SSL_new(s->tls)) && SSL_set_fd(rp.ssl, cn->fd) == 1 &&
		   SSL_accept(rp.ssl) == 1) {
		serve_conn(s, &rp);
		SSL_shutdown(rp.ssl);
	} else {
		char e[160];
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		kha_debug("fleetlock: TLS handshake failed", "error=\"%s\"", e);
	}
	SSL_free(rp.ssl);
	ERR_clear_error();
	count(s->o, &rp);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&s->mu);
	s->done[s->ndone++] = pthread_self(); /* ndone <= active <= MAX_CONNECTIONS */
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Joins the finished connection threads; with wait_all, every thread. */
static void reap(struct server *s, bool wait_all)
{
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->ndone) {
			pthread_t t = s->done[--s->ndone];
			pthread_mutex_unlock(&s->mu);
			pthread_join(t, NULL);
			pthread_mutex_lock(&s->mu);
			s->active--;
		}
		if (!wait_all || !s->active)
			break;
		pthread_cond_wait(&s->cond, &s->mu);
	}
	pthread_mutex_unlock(&s->mu);
}

/* The server's TLS context: its certificate and key, and the CA of the clients when given. */
static int tls_setup(const struct kha_fleetlock_opts *o, SSL_CTX **ret, struct kha_diag *d)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char e[200] = "";

	if (!ctx)
		return kha_diag_set(d, ENOMEM, "out of memory");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		SSL_CTX_free(ctx);
		return kha_diag_set(d, EINVAL, "--serve-cert %s: not a usable certificate (%s)",
				    o->tls_cert, e);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		SSL_CTX_free(ctx);
		return kha_diag_set(d, EINVAL,
				    "--serve-key %s: not the private key of --serve-cert (%s)",
				    o->tls_key, e);
	}
	if (o->tls_client_ca) {
		if (SSL_CTX_load_verify_locations(ctx, o->tls_client_ca, NULL) != 1) {
			ERR_error_string_n(ERR_get_error(), e, sizeof(e));
			SSL_CTX_free(ctx);
			return kha_diag_set(d, EINVAL, "--serve-client-ca %s: not a CA bundle (%s)",
					    o->tls_client_ca, e);
		}
		/* only nodes with a certificate of this CA may take or release a slot */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	ERR_clear_error();
	*ret = ctx;
	return 0;
}

int kha_fleetlock_serve(const struct kha_fleetlock_opts *o, const volatile sig_atomic_t *stop,
			struct kha_diag *d)
{
	struct server s = {.o = o};
	struct sockaddr_storage ss;
	socklen_t sslen;
	kha_autoclose int lfd = -1;
	int one = 1;
	char addr[80];

	if (kha_resolve_hostport(o->listen, &ss, &sslen) < 0)
		return kha_diag_set(d, EINVAL, "--listen %s: not an address (host:port)",
				    o->listen);
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0)
		return kha_diag_set(d, errno, "socket: %s", strerror(errno));
	(void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (o->tls_cert && tls_setup(o, &s.tls, d) < 0)
		return -EINVAL;
	if (bind(lfd, (struct sockaddr *)&ss, sslen) < 0 || listen(lfd, 64) < 0) {
		int e = errno;
		SSL_CTX_free(s.tls);
		return kha_diag_set(d, e, "listen on %s: %s", o->listen, strerror(e));
	}
	{
		struct sockaddr_storage bound;
		socklen_t blen = sizeof(bound);

		if (getsockname(lfd, (struct sockaddr *)&bound, &blen) == 0)
			kha_format_sockaddr(addr, sizeof(addr), (struct sockaddr *)&bound);
		else
			snprintf(addr, sizeof(addr), "%s", o->listen);
	}
	kha_info("fleetlock: listening", "addr=%s lock=%s slots=%zu tls=%s", addr, o->lock,
		 o->slots,
		 !s.tls		    ? "off"
		 : o->tls_client_ca ? "client-certificates"
				    : "on");
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cond, NULL);
	while (!*stop) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		struct conn *cn;
		pthread_t t;
		int fd;

		reap(&s, false);
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&s.mu);
		if (s.active >= MAX_CONNECTIONS) {
			struct reply rp = {.fd = fd, .op = KHA_FLEETLOCK_OP_OTHER};

			pthread_mutex_unlock(&s.mu);
			respond(&rp, 503,
				"{\"kind\":\"failed_busy\",\"value\":\"too many requests\"}");
			count(o, &rp);
			close(fd);
			continue;
		}
		s.active++;
		pthread_mutex_unlock(&s.mu);
		cn = malloc(sizeof(*cn));
		if (cn) {
			cn->s = &s;
			cn->fd = fd;
		}
		if (!cn || pthread_create(&t, NULL, conn_thread, cn) != 0) {
			free(cn);
			close(fd);
			pthread_mutex_lock(&s.mu);
			s.active--;
			pthread_mutex_unlock(&s.mu);
		}
	}
	/* let the requests in flight finish (each is bounded by its timeouts) */
	reap(&s, true);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.mu);
	SSL_CTX_free(s.tls);
	kha_info("fleetlock: stopped", "addr=%s", addr);
	return 0;
}
