// SPDX-License-Identifier: MIT
/*
 * kha lock serve: the FleetLock routes on the event-loop admin HTTP server (kha/httpd.h).
 *
 * The loop thread owns every connection: TLS handshakes, reading requests under one deadline,
 * checking them (method, header, body) and answering. An operation that needs etcd (pre-reboot,
 * steady-state, status) becomes a job for a small pool of worker threads, because etcd calls
 * block; the worker posts the answer back to the loop, which sends it (kha_httpd_finish). At most
 * MAX_JOBS jobs wait or run at once; beyond, 503 failed_busy. A stop closes every connection at
 * once; it waits only for the etcd calls in flight, each bounded by --command-timeout.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "kha/election.h"
#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/metrics.h"
#include "kha/net.h"
#include "kha/banned.h"

#define WORKERS	 4
#define MAX_JOBS 32
#define MAX_BODY 65536

struct server;

struct job {
	struct server *s;
	struct kha_httpd_pending *pending;
	enum kha_fleetlock_op op;
	struct kha_fleetlock_params p;
	int status;
	char *text; /* the JSON answer */
	struct job *next;
};

struct server {
	const struct kha_fleetlock_opts *o;
	struct kha_loop *loop;
	struct kha_httpd *http, *admin;
	struct kha_metrics *metrics;
	SSL_CTX *tls;
	bool loopback; /* the listener takes loopback connections only */
	pthread_t workers[WORKERS];
	size_t nworkers;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct job *head, *tail; /* queued, under mu */
	size_t jobs;		 /* queued or running, under mu */
	bool quit;		 /* under mu */
};

static void count(const struct kha_fleetlock_opts *o, enum kha_fleetlock_op op, int status)
{
	enum kha_fleetlock_outcome out = status >= 500	 ? KHA_FLEETLOCK_FAILED
					 : status >= 400 ? KHA_FLEETLOCK_REFUSED
							 : KHA_FLEETLOCK_OK;

	if (o->stats)
		atomic_fetch_add_explicit(&o->stats->requests[op][out], 1, memory_order_relaxed);
}

/* {"kind": ..., "value": ...}; owned string or NULL */
static char *result_json(const struct kha_fleetlock_result *res)
{
	json_t *o = json_pack("{s:s,s:s}", "kind", res->kind, "value", res->value);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

static char *status_json(const struct kha_fleetlock_opts *o, struct kha_etcd *c, int *ret_status)
{
	struct kha_lock_status st = {0};
	struct kha_diag d = {};
	json_t *root, *arr;
	char *text = NULL;

	if (kha_lock_status_get(c, o->lock, o->slots, &st, &d) < 0) {
		struct kha_fleetlock_result res = {.status = 503};

		snprintf(res.kind, sizeof(res.kind), "failed_etcd");
		snprintf(res.value, sizeof(res.value), "etcd: %s", d.msg);
		*ret_status = 503;
		return result_json(&res);
	}
	root = json_object();
	arr = json_array();
	for (size_t i = 0; i < st.n && root && arr; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:b,s:b}", "id",
						     st.entries[i].id, "key", st.entries[i].key,
						     "position", (json_int_t)st.entries[i].position,
						     "holder", st.entries[i].holder, "fleetlock",
						     st.entries[i].fleetlock));
	if (root && arr && json_object_set_new(root, "lock", json_string(o->lock)) == 0 &&
	    json_object_set_new(root, "slots", json_integer((json_int_t)o->slots)) == 0 &&
	    json_object_set(root, "contenders", arr) == 0)
		text = json_dumps(root, JSON_COMPACT);
	json_decref(arr);
	json_decref(root);
	kha_lock_status_release(&st);
	*ret_status = 200;
	return text;
}

/* ---- the worker pool (etcd calls block) ---- */

static void job_done(struct kha_loop *loop, void *userdata)
{
	struct job *j = userdata;
	const char *text = j->text ? j->text : "{}";

	(void)loop;
	count(j->s->o, j->op, j->status);
	kha_httpd_finish(j->pending, j->status, "application/json", text, strlen(text));
	free(j->text);
	free(j);
}

static void job_run(struct job *j)
{
	const struct kha_fleetlock_opts *o = j->s->o;
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_fleetlock_result res = {};
	struct kha_diag d = {};

	if (kha_etcd_new(o->etcd, &c, &d) < 0) {
		res.status = 500;
		snprintf(res.kind, sizeof(res.kind), "failed_internal");
		snprintf(res.value, sizeof(res.value), "%s", d.msg);
	} else if (j->op == KHA_FLEETLOCK_OP_STATUS) {
		j->text = status_json(o, c, &j->status);
		return;
	} else if (j->op == KHA_FLEETLOCK_OP_PRE_REBOOT) {
		kha_fleetlock_pre_reboot(c, o, &j->p, &res);
	} else {
		kha_fleetlock_steady_state(c, o, &j->p, &res);
	}
	j->status = res.status;
	j->text = result_json(&res);
}

static void *worker_main(void *arg)
{
	struct server *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct job *j;

		while (!s->head && !s->quit)
			pthread_cond_wait(&s->cond, &s->mu);
		if (s->quit)
			break;
		j = s->head;
		s->head = j->next;
		if (!s->head)
			s->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		job_run(j);
		/* the loop sends the answer; should the post fail (no memory), the connection
		 * ends at its handler deadline and the job is lost with it */
		if (kha_loop_post(s->loop, job_done, j) < 0) {
			free(j->text);
			free(j);
		}
		pthread_mutex_lock(&s->mu);
		s->jobs--;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Takes a place for a job; false when MAX_JOBS are waiting or running already. */
static bool job_reserve(struct server *s)
{
	bool ok;

	pthread_mutex_lock(&s->mu);
	ok = s->jobs < MAX_JOBS;
	if (ok)
		s->jobs++;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static void job_unreserve(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	s->jobs--;
	pthread_mutex_unlock(&s->mu);
}

/* Queues a job in the place job_reserve() took. */
static void job_queue(struct server *s, struct job *j)
{
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

/* ---- the routes (loop thread) ---- */

static void answer(struct kha_httpd_response *resp, const struct kha_fleetlock_opts *o,
		   enum kha_fleetlock_op op, const struct kha_fleetlock_result *res)
{
	kha_autofree char *text = result_json(res);

	resp->status = res->status;
	resp->content_type = "application/json";
	fputs(text ? text : "{}", resp->body);
	count(o, op, res->status);
}

static enum kha_fleetlock_op op_of(const char *path)
{
	return strcmp(path, "/v1/pre-reboot") == 0     ? KHA_FLEETLOCK_OP_PRE_REBOOT
	       : strcmp(path, "/v1/steady-state") == 0 ? KHA_FLEETLOCK_OP_STEADY_STATE
	       : strcmp(path, "/v1/status") == 0       ? KHA_FLEETLOCK_OP_STATUS
						       : KHA_FLEETLOCK_OP_OTHER;
}

static void route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
		  void *userdata)
{
	struct server *s = userdata;
	enum kha_fleetlock_op op = op_of(req->path);
	struct kha_fleetlock_result res = {};
	struct job *j;
	char proto[64];
	int r;

	if (op == KHA_FLEETLOCK_OP_STATUS && strcmp(req->method, "GET") != 0) {
		kha_fleetlock_result_set(&res, 405, "method_not_allowed", "/v1/status needs GET");
		answer(resp, s->o, op, &res);
		return;
	}
	/* who holds a slot is for the nodes (a verified certificate) or this host, not anyone */
	if (op == KHA_FLEETLOCK_OP_STATUS && !(req->peer && req->peer->verified) &&
	    !(s->loopback && !s->o->tls_client_ca)) {
		kha_fleetlock_result_set(&res, 403, "status_forbidden",
					 "/v1/status needs a client certificate (--serve-cacert); "
					 "kha lock --status reads the same from etcd");
		answer(resp, s->o, op, &res);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		kha_fleetlock_result_set(&res, 503, "failed_internal", "out of memory");
		answer(resp, s->o, op, &res);
		return;
	}
	j->s = s;
	j->op = op;
	if (op != KHA_FLEETLOCK_OP_STATUS) {
		r = kha_httpd_header(req, "fleet-lock-protocol", proto, sizeof(proto));
		if (!kha_fleetlock_check(s->o, req->method, req->path,
					 r == -EBADMSG ? ""
					 : r >= 0      ? proto
						       : NULL,
					 req->body, (size_t)req->content_length, req->peer, &j->p,
					 &res)) {
			free(j);
			answer(resp, s->o, op, &res);
			return;
		}
	}
	if (!job_reserve(s)) {
		free(j);
		kha_fleetlock_result_set(&res, 503, "failed_busy",
					 "too many requests in progress; retry");
		answer(resp, s->o, op, &res);
		return;
	}
	j->pending = kha_httpd_defer(resp);
	if (!j->pending) {
		job_unreserve(s);
		free(j);
		kha_fleetlock_result_set(&res, 503, "failed_internal", "out of memory");
		answer(resp, s->o, op, &res);
		return;
	}
	/* the worker finishes it through the loop, so never before we return */
	job_queue(s, j);
}

static void collect(FILE *out, void *userdata)
{
	static const char *const ops[] = {"pre-reboot", "steady-state", "status", "other"};
	static const char *const outcomes[] = {"ok", "refused", "failed"};
	const struct server *s = userdata;
	char name[256];

	kha_metrics_escape(name, sizeof(name), s->o->lock);
	kha_metrics_write_header(out, "kha_lock_fleetlock_requests_total",
				 "FleetLock requests answered, by operation and result (ok: 2xx, "
				 "refused: 4xx such as a full semaphore, failed: 5xx such as etcd "
				 "unreachable)",
				 KHA_METRIC_COUNTER);
	for (size_t op = 0; op < KHA_FLEETLOCK_NOPS; op++) {
		for (size_t r = 0; r < KHA_FLEETLOCK_NOUTCOMES; r++) {
			char labels[384];

			snprintf(labels, sizeof(labels), "name=\"%s\",op=\"%s\",result=\"%s\"",
				 name, ops[op], outcomes[r]);
			kha_metrics_write_sample(
				out, "kha_lock_fleetlock_requests_total", labels,
				(double)atomic_load_explicit(&s->o->stats->requests[op][r],
							     memory_order_relaxed));
		}
	}
}

static void on_hup(struct kha_loop_source *src, int signo, void *userdata)
{
	struct server *s = userdata;
	struct kha_diag d = {};

	(void)src;
	(void)signo;
	if (!s->o->reload)
		return;
	if (s->o->reload(s->o->reload_userdata, &d) < 0) {
		char q[300];

		kha_error("fleetlock: reload failed, the running configuration stays", "error=%s",
			  kha_log_quote(q, sizeof(q), d.msg));
		return;
	}
	kha_info("fleetlock: configuration reloaded", "groups=%zu client_ids=%s",
		 s->o->n_groups ? s->o->n_groups : 1, s->o->idmap ? "file" : "certificate-names");
}

static void on_stop(struct kha_loop_source *src, int signo, void *userdata)
{
	struct server *s = userdata;

	(void)src;
	kha_info("fleetlock: stopping", "signal=%s", signo == SIGINT ? "SIGINT" : "SIGTERM");
	kha_loop_quit(s->loop, 0);
}

/* ---- start and stop ---- */

static int start(struct server *s, struct kha_diag *d)
{
	static const int stops[] = {SIGTERM, SIGINT}, hups[] = {SIGHUP};
	const struct kha_fleetlock_opts *o = s->o;
	sigset_t all, old;
	int fd, r;

	r = kha_loop_new(&s->loop);
	if (r < 0)
		return kha_diag_set(d, -r, "event loop: %s", strerror(-r));
	if (o->tls_cert) {
		const struct kha_httpd_tls_config tc = {.cert = o->tls_cert,
							.key = o->tls_key,
							.client_ca = o->tls_client_ca,
							.cert_flag = "--serve-cert",
							.key_flag = "--serve-key",
							.client_ca_flag = "--serve-cacert"};
		r = kha_httpd_tls_ctx_new(&tc, &s->tls, d);
		if (r < 0)
			return r;
	}
	fd = kha_httpd_listen(o->listen, 128, KHA_HTTPD_LISTEN_RESOLVE, d);
	if (fd < 0) {
		kha_diag_prefix(d, "--listen");
		return fd;
	}
	s->loopback = kha_httpd_socket_is_loopback(fd);
	if (!s->loopback && !o->tls_client_ca) {
		if (!o->insecure_no_client_certs) {
			close(fd);
			return kha_diag_set(
				d, EINVAL,
				"--listen %s is reachable from other hosts, and without client "
				"certificates anyone who reaches it could release any node's slot: "
				"add --serve-cert, --serve-key and --serve-cacert (or, on a "
				"network you trust, --insecure-no-client-certs)",
				o->listen);
		}
		kha_warn("fleetlock: serving without client certificates off loopback "
			 "(--insecure-no-client-certs): anyone who reaches this port can take and "
			 "release any node's slot",
			 "addr=%s", o->listen);
	}
	r = kha_httpd_new_fd(s->loop, fd, NULL, &s->http);
	if (r == 0)
		r = kha_httpd_route_full(s->http, NULL, KHA_HTTPD_ANY, MAX_BODY, route, s);
	if (r < 0)
		return kha_diag_set(d, -r, "%s", strerror(-r));
	kha_httpd_set_tls(s->http, s->tls);
	if (o->metrics_addr) {
		r = kha_metrics_new(&s->metrics);
		if (r == 0)
			r = kha_metrics_add_collector(s->metrics, collect, s);
		if (r < 0)
			return kha_diag_set(d, -r, "%s", strerror(-r));
		r = kha_httpd_new(s->loop, o->metrics_addr, s->metrics, d, &s->admin);
		if (r < 0) {
			kha_diag_prefix(d, "--metrics-addr");
			return r;
		}
	}
	/* SIGTERM, SIGINT and SIGHUP through the loop; the workers block every signal */
	if (kha_loop_add_signals(s->loop, stops, KHA_ARRAY_SIZE(stops), on_stop, s) < 0 ||
	    kha_loop_add_signals(s->loop, hups, KHA_ARRAY_SIZE(hups), on_hup, s) < 0)
		return kha_diag_set(d, ENOMEM, "cannot watch SIGTERM");
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (; s->nworkers < WORKERS; s->nworkers++) {
		if (pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->nworkers)
		return kha_diag_set(d, EAGAIN, "cannot create a thread");
	return 0;
}

static void stop(struct server *s)
{
	/* every connection goes at once; the answers of jobs still running go nowhere */
	kha_httpd_free(s->http);
	kha_httpd_free(s->admin);
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	while (s->head) {
		struct job *j = s->head;

		s->head = j->next;
		kha_httpd_finish(j->pending, 503, "", "", 0); /* connection gone: frees */
		free(j);
	}
	s->tail = NULL;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (s->loop) {
		/* the answers the workers posted: each frees its job */
		while (kha_loop_run_once(s->loop, 0) > 0)
			;
		kha_loop_free(s->loop);
	}
	kha_metrics_free(s->metrics);
	SSL_CTX_free(s->tls);
}

int kha_fleetlock_serve(const struct kha_fleetlock_opts *o, struct kha_diag *d)
{
	struct server s = {.o = o};
	char addr[80];
	int r;

	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cond, NULL);
	r = start(&s, d);
	if (r == 0) {
		snprintf(addr, sizeof(addr), "%s", o->listen);
		kha_info("fleetlock: listening", "addr=%s port=%u lock=%s slots=%zu tls=%s", addr,
			 kha_httpd_port(s.http), o->lock, o->slots,
			 !s.tls		    ? "off"
			 : o->tls_client_ca ? "client-certificates"
					    : "on");
		r = kha_loop_run(s.loop);
		kha_info("fleetlock: stopped", "addr=%s", addr);
	}
	stop(&s);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.mu);
	return r;
}
