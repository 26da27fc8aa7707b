// SPDX-License-Identifier: MIT
/*
 * The drill itself: one thread, one libcurl multi handle. Probes are scheduled by absolute
 * time (slot k at t0 + k/rate), each a separate easy handle with its own deadline; fault and
 * recovery commands and the rolling restart's commands run as child processes whose output
 * pipes and pidfds are polled by curl_multi_poll() together with curl's sockets and the
 * caller's stop fd. See docs/internals/drill.md for the invariants.
 */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "kha/http-curl.h"
#include "kha/log.h"
#include "drill-internal.h"
#include "kha/banned.h"

#define KILL_GRACE_US (1 * KHA_USEC_PER_SEC)
/* without pidfd_open the exit of a command is noticed by polling this often */
#define REAP_POLL_US (20 * KHA_USEC_PER_MSEC)
#define MAX_SLOTS    20000000ULL
#define REPLY_MAX    (64 * 1024)

struct drill;

struct probe {
	struct drill *dr;
	CURL *easy;
	uint64_t slot;
	uint64_t sent_us;   /* absolute: queued */
	uint64_t opened_us; /* absolute: its socket opened (0: none, a reused connection) */
	size_t idx;	    /* in dr->inflight */
	char errbuf[CURL_ERROR_SIZE];
	/* a Kubernetes write's reply (its resourceVersion is the next update's): the first
	 * REPLY_MAX bytes */
	char *reply;
	size_t reply_len;
};

/* A command in flight: a step (step < SIZE_MAX, index in report->steps) or a health check. */
struct running {
	struct drill_proc proc;
	size_t step;
	uint64_t term_sent_us; /* absolute, 0: none */
};

enum roll_phase {
	ROLL_WAIT,
	ROLL_STOPPING,
	ROLL_DOWN,
	ROLL_STARTING,
	ROLL_CHECKING,
	ROLL_CHECK_WAIT,
	ROLL_DONE,
};

struct drill {
	const struct kha_drill_scenario *sc;
	const struct kha_drill_hooks *hooks;
	struct kha_drill_report *r;
	CURLM *multi;
	char *url;
	bool tcp;
	bool write;		    /* write mode: puts to url with a body */
	struct curl_slist *headers; /* write mode: Content-Type */
	struct drill_kube *kube;    /* Kubernetes mode */
	uint64_t t0;

	size_t cap;	    /* of r->probes */
	uint64_t next_slot; /* next slot to schedule */
	uint64_t end_slot;  /* slots before it belong to --duration */
	bool probing_done;
	uint64_t probing_end_us; /* relative */
	struct probe **inflight;
	size_t n_inflight, max_inflight;
	size_t ok, failed, missed;

	size_t next_step; /* next scenario step (= report step) to start */
	bool fault_started;
	struct running **procs;
	size_t n_procs;

	enum roll_phase roll;
	size_t node;
	uint64_t roll_until_us;	  /* relative: end of the down time or of the wait between checks */
	uint64_t health_deadline; /* relative */
	struct running *check;	  /* the health check in flight */
	bool roll_start_pending;  /* stopped while the node was down: start it, check nothing */

	int stop_level; /* 0 running, 1 stopping (finish what runs), 2 stopping hard */
	bool dirty;	/* something changed: loop again without sleeping */
	int err;	/* fatal error (-ENOMEM) */

	uint64_t next_tick_us; /* relative */
	uint64_t live_outage_start, live_last_slot;
};

static uint64_t rel_now(const struct drill *dr)
{
	return kha_now_us() - dr->t0;
}

static void emit(struct drill *dr, enum kha_drill_event_type type,
		 const struct kha_drill_step_result *step, const struct kha_drill_node_result *node,
		 const char *message)
{
	uint64_t now = rel_now(dr);
	struct kha_drill_event ev = {
		.type = type,
		.elapsed_us = now,
		.ok = dr->ok,
		.failed = dr->failed,
		.missed = dr->missed,
		.outage_us = dr->live_outage_start == KHA_DRILL_NONE
				     ? 0
				     : now - KHA_MIN(now, dr->live_outage_start),
		.step = step,
		.node = node,
		.message = message,
	};

	if (dr->hooks && dr->hooks->on_event)
		dr->hooks->on_event(dr->hooks->userdata, &ev);
}

/* ---------------------------------------------------------------------------------------- */
/* Probes */

static int grow_probes(struct drill *dr, uint64_t slot)
{
	if (slot < dr->cap)
		return 0;
	if (slot >= MAX_SLOTS)
		return -E2BIG;
	return KHA_GROW(dr->r->probes, dr->cap, (size_t)slot + 1024);
}

static void record(struct drill *dr, uint64_t slot, uint64_t t_us, uint64_t latency_us, long status,
		   enum kha_drill_result res)
{
	struct kha_drill_probe *p = &dr->r->probes[slot];

	p->t_us = t_us;
	p->latency_us = (uint32_t)KHA_MIN(latency_us, UINT32_MAX);
	p->status = (uint16_t)(status >= 0 && status < 1000 ? status : 0);
	p->result = (uint8_t)res;
	if (slot + 1 > dr->r->n_probes)
		dr->r->n_probes = slot + 1;
	if (res == KHA_DRILL_PROBE_MISSED) {
		dr->missed++;
		return;
	}
	if (res == KHA_DRILL_PROBE_CANCELLED)
		return;
	if (res == KHA_DRILL_PROBE_OK)
		dr->ok++;
	else
		dr->failed++;
	/* the live view follows the newest slot answered */
	if (dr->live_last_slot == KHA_DRILL_NONE || slot >= dr->live_last_slot) {
		dr->live_last_slot = slot;
		if (res == KHA_DRILL_PROBE_OK)
			dr->live_outage_start = KHA_DRILL_NONE;
		else if (dr->live_outage_start == KHA_DRILL_NONE)
			dr->live_outage_start = t_us;
	}
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

/* Keeps the first REPLY_MAX bytes of a reply (the rest is read and dropped). */
static size_t keep_reply(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct probe *pr = userdata;
	size_t n = size * nmemb, take = KHA_MIN(n, REPLY_MAX - pr->reply_len);

	if (take && KHA_RESIZE(pr->reply, pr->reply_len + take + 1) == 0) {
		memcpy(pr->reply + pr->reply_len, ptr, take);
		pr->reply_len += take;
		pr->reply[pr->reply_len] = '\0';
	}
	return n;
}

/* libcurl opened the probe's socket, right before its connect: the earliest instant the target
 * can have seen it (the first socket, if libcurl tries more than one address) */
static int socket_opened(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
	struct probe *pr = userdata;

	(void)fd;
	if (purpose == CURLSOCKTYPE_IPCXN && !pr->opened_us)
		pr->opened_us = kha_now_us();
	return CURL_SOCKOPT_OK;
}

static int start_probe(struct drill *dr, uint64_t slot, uint64_t now_abs)
{
	const struct kha_drill_scenario *sc = dr->sc;
	struct probe *pr = calloc(1, sizeof(*pr));
	struct kha_http_tls tls = {
		.cacert = sc->cacert, .cert = sc->cert, .key = sc->key, .insecure = sc->insecure};
	const char *token = dr->kube ? kha_drill__kube_token(dr->kube) : NULL;
	struct kha_http_easy_opts eo = {
		.user_agent = "kha-drill",
		.errbuf = pr ? pr->errbuf : NULL,
		.connect_timeout_us = sc->timeout_us,
		.timeout_us = sc->timeout_us,
		.tls = &tls,
		.proxy = "",
	};
	CURL *e;

	if (!pr)
		return -ENOMEM;
	if (dr->kube)
		kha_drill__kube_tls(dr->kube, &tls);
	e = curl_easy_init();
	if (!e) {
		free(pr);
		return -ENOMEM;
	}
	pr->dr = dr;
	pr->easy = e;
	pr->slot = slot;
	/* a probe of one given address: never through a proxy */
	if (kha_http_easy_setup(e, &eo, NULL) < 0) {
		curl_easy_cleanup(e);
		free(pr);
		return -EINVAL;
	}
	curl_easy_setopt(e, CURLOPT_URL, dr->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, pr);
	if (token) {
		curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, token);
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	if (dr->write) {
		char *body = NULL, *url = NULL;
		bool put = false;

		if (dr->kube) {
			if (kha_drill__kube_write(dr->kube, slot, &url, &body, &put) < 0)
				body = NULL;
		} else {
			body = kha_drill__write_body(dr->r->writes.prefix, slot);
		}
		if (!body) {
			curl_easy_cleanup(e);
			free(pr);
			return -ENOMEM;
		}
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, dr->headers);
		if (url) {
			/* an update goes to the object, a create to the collection */
			curl_easy_setopt(e, CURLOPT_URL, url);
			if (put)
				curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
			curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_reply);
			curl_easy_setopt(e, CURLOPT_WRITEDATA, pr);
		}
		free(body);
		free(url);
	}
	if (dr->tcp)
		curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	if (!sc->keepalive || dr->tcp) {
		/* what a restarting kubelet or a new client sees: new TCP, full TLS handshake */
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	}
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, socket_opened);
	curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, pr);
	pr->sent_us = now_abs;
	pr->idx = dr->n_inflight;
	dr->inflight[dr->n_inflight++] = pr;
	if (curl_multi_add_handle(dr->multi, e) != CURLM_OK) {
		dr->n_inflight--;
		curl_easy_cleanup(e);
		free(pr);
		return -ENOMEM;
	}
	return 0;
}

static void drop_probe(struct drill *dr, struct probe *pr)
{
	struct probe *last = dr->inflight[--dr->n_inflight];

	dr->inflight[pr->idx] = last;
	last->idx = pr->idx;
	curl_multi_remove_handle(dr->multi, pr->easy);
	curl_easy_cleanup(pr->easy);
	free(pr->reply);
	free(pr);
}

/* The probe's result; a failure's phrase (the shared libcurl mapping) goes into d. */
static enum kha_drill_result classify(struct drill *dr, CURL *e, CURLcode rc, const char *errbuf,
				      long *ret_status, struct kha_diag *d)
{
	struct kha_http_failure f;
	long status = 0;
	int err;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	if (rc == CURLE_OK) {
		if (dr->write && dr->kube) /* 201 Created: stored in etcd */
			return status == 201 || status == 200 ? KHA_DRILL_PROBE_OK
							      : KHA_DRILL_PROBE_STATUS;
		if (dr->write) /* the gateway answers 200 only for a committed put */
			return status == 200 ? KHA_DRILL_PROBE_OK : KHA_DRILL_PROBE_STATUS;
		if (dr->tcp || kha_drill_status_expected(dr->sc->expect_status, status))
			return KHA_DRILL_PROBE_OK;
		return KHA_DRILL_PROBE_STATUS;
	}
	err = kha_http_curl_error(e, rc, errbuf, dr->sc->timeout_us, dr->sc->timeout_us, &f, d);
	switch (f.fail) {
	case KHA_HTTP_FAIL_TIMEOUT:
	case KHA_HTTP_FAIL_CONNECT_TIMEOUT:
		return KHA_DRILL_PROBE_TIMEOUT;
	case KHA_HTTP_FAIL_CONNECT:
		/* the shared mapping's word: libcurl may lose the errno of a refused connect
		 * (COULDNT_CONNECT with none), which it calls refused, as the summary then says */
		if (err == -ECONNREFUSED)
			return KHA_DRILL_PROBE_REFUSED;
		if (f.os_errno == ETIMEDOUT)
			return KHA_DRILL_PROBE_TIMEOUT;
		/* the kernel completed the handshake from the listen queue, then the target closed
		 * its listener and reset it before libcurl saw the connect finish */
		if (f.os_errno == ECONNRESET)
			return KHA_DRILL_PROBE_RESET;
		return KHA_DRILL_PROBE_ERROR;
	case KHA_HTTP_FAIL_RESOLVE:
		return KHA_DRILL_PROBE_RESOLVE;
	case KHA_HTTP_FAIL_IO:
		return KHA_DRILL_PROBE_RESET;
	case KHA_HTTP_FAIL_TLS:
	case KHA_HTTP_FAIL_TLS_VERIFY:
	case KHA_HTTP_FAIL_TLS_CLIENT:
	case KHA_HTTP_FAIL_CA_FILE:
	case KHA_HTTP_FAIL_TLS_FILES:
		/* a peer dying in the middle of the handshake is a reset, not a TLS problem */
		if (rc == CURLE_SSL_CONNECT_ERROR &&
		    (f.os_errno == ECONNRESET || f.os_errno == EPIPE))
			return KHA_DRILL_PROBE_RESET;
		return KHA_DRILL_PROBE_TLS;
	default:
		return KHA_DRILL_PROBE_ERROR;
	}
}

static void finish_probe(struct drill *dr, struct probe *pr, CURLcode rc, uint64_t done_abs)
{
	struct kha_drill_report *r = dr->r;
	curl_off_t total_us = 0;
	struct kha_drill_probe placed = {};
	long status = 0;
	struct kha_diag d = {};
	enum kha_drill_result res = classify(dr, pr->easy, rc, pr->errbuf, &status, &d);

	/* curl's own measure excludes the time this loop spent on other probes, and its transfer
	 * may have begun well after it was queued: it is placed to end when it was seen done */
	if (curl_easy_getinfo(pr->easy, CURLINFO_TOTAL_TIME_T, &total_us) != CURLE_OK ||
	    total_us < 0)
		total_us = 0;
	kha_drill_place(&placed, pr->sent_us - dr->t0, pr->opened_us ? pr->opened_us - dr->t0 : 0,
			done_abs - dr->t0, (uint64_t)total_us);
	record(dr, pr->slot, placed.t_us, placed.latency_us, status, res);
	if (dr->write && dr->kube)
		kha_drill__kube_write_done(dr->kube, pr->slot, rc == CURLE_OK ? status : 0,
					   pr->reply, pr->reply_len);
	if (res != KHA_DRILL_PROBE_OK && !r->error_samples[res][0]) {
		if (res == KHA_DRILL_PROBE_STATUS)
			snprintf(r->error_samples[res], sizeof(r->error_samples[res]),
				 "HTTP status %ld", status);
		else
			snprintf(r->error_samples[res], sizeof(r->error_samples[res]), "%s",
				 d.msg[0] ? d.msg : curl_easy_strerror(rc));
	}
	drop_probe(dr, pr);
}

static void drain_done(struct drill *dr)
{
	CURLMsg *msg;
	int left;
	/* the transfers listed here ended before this instant, as close to it as can be seen */
	uint64_t done_abs = kha_now_us();

	while ((msg = curl_multi_info_read(dr->multi, &left))) {
		struct probe *pr = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&pr);
		if (pr)
			finish_probe(dr, pr, msg->data.result, done_abs);
		dr->dirty = true;
	}
}

static bool rolling_active(const struct drill *dr)
{
	return dr->sc->n_nodes && dr->roll != ROLL_DONE;
}

static void end_probing(struct drill *dr, uint64_t now)
{
	if (dr->probing_done)
		return;
	dr->probing_done = true;
	/* a schedule that ran out ends with its last slot's interval; a stop ends now */
	dr->probing_end_us =
		dr->stop_level ? now
			       : KHA_MAX(now, kha_drill_slot_due_us(dr->sc->rate, dr->next_slot));
	if (dr->stop_level) {
		/* interrupted: what is in flight never completed, it is not counted */
		while (dr->n_inflight) {
			struct probe *pr = dr->inflight[dr->n_inflight - 1];
			record(dr, pr->slot, pr->sent_us - dr->t0, 0, 0, KHA_DRILL_PROBE_CANCELLED);
			drop_probe(dr, pr);
		}
	}
}

static void schedule(struct drill *dr)
{
	const uint32_t rate = dr->sc->rate;

	if (dr->probing_done)
		return;
	for (;;) {
		uint64_t now_abs = kha_now_us(), now = now_abs - dr->t0;
		uint64_t due = kha_drill_slot_due_us(rate, dr->next_slot);
		enum kha_drill_slot_action act;
		int r;

		if (dr->stop_level || (dr->next_slot >= dr->end_slot && !rolling_active(dr))) {
			end_probing(dr, now);
			return;
		}
		act = kha_drill_slot_decide(rate, dr->next_slot, now, dr->n_inflight,
					    dr->max_inflight);
		if (act == KHA_DRILL_SLOT_WAIT)
			return;
		r = grow_probes(dr, dr->next_slot);
		if (r == 0 && act == KHA_DRILL_SLOT_SEND) {
			r = start_probe(dr, dr->next_slot, now_abs);
			if (r == 0)
				dr->r->stats.max_send_lag_us =
					KHA_MAX(dr->r->stats.max_send_lag_us, now - due);
		}
		if (r == 0 && act == KHA_DRILL_SLOT_MISS)
			record(dr, dr->next_slot, due, 0, 0, KHA_DRILL_PROBE_MISSED);
		if (r < 0) {
			dr->err = r;
			end_probing(dr, now);
			return;
		}
		dr->next_slot++;
	}
}

/* ---------------------------------------------------------------------------------------- */
/* Commands */

static void abort_drill(struct drill *dr, const char *fmt, ...) KHA_PRINTF(2, 3);

static struct running *spawn(struct drill *dr, const char *cmd, uint64_t timeout_us, size_t step,
			     int *ret_err)
{
	struct running *run = calloc(1, sizeof(*run));
	int r;

	*ret_err = -ENOMEM;
	if (!run)
		return NULL;
	if (KHA_RESIZE(dr->procs, dr->n_procs + 1) < 0) {
		free(run);
		return NULL;
	}
	r = kha_drill__proc_spawn(&run->proc, cmd, timeout_us);
	if (r < 0) {
		*ret_err = r;
		free(run);
		return NULL;
	}
	run->step = step;
	dr->procs[dr->n_procs++] = run;
	dr->dirty = true;
	*ret_err = 0;
	return run;
}

/* Starts report step i; returns false when it could not be started (then it has ended). */
static bool start_step(struct drill *dr, size_t i, uint64_t timeout_us)
{
	struct kha_drill_step_result *st = &dr->r->steps[i];
	int err;

	st->state = KHA_DRILL_STEP_RUNNING;
	st->started_us = rel_now(dr);
	if (st->kind == KHA_DRILL_STEP_FAULT || st->kind == KHA_DRILL_STEP_STOP) {
		dr->fault_started = true;
		if (dr->r->stats.marks.fault_us == KHA_DRILL_NONE)
			dr->r->stats.marks.fault_us = st->started_us;
	}
	if (st->kind == KHA_DRILL_STEP_RECOVER && dr->r->stats.marks.fault_us != KHA_DRILL_NONE)
		dr->r->stats.marks.recover_us = st->started_us;
	emit(dr, KHA_DRILL_EVENT_STEP_START, st, NULL, NULL);
	if (spawn(dr, st->run, timeout_us, i, &err))
		return true;
	st->state = KHA_DRILL_STEP_SPAWN_FAILED;
	st->ended_us = rel_now(dr);
	free(st->output);
	st->output = strdup(strerror(-err));
	dr->r->step_failed = true;
	emit(dr, KHA_DRILL_EVENT_STEP_END, st, NULL, NULL);
	return false;
}

static int add_report_step(struct drill *dr, enum kha_drill_step_kind kind, const char *name,
			   const char *run, const char *node, size_t *ret_index)
{
	struct kha_drill_report *r = dr->r;
	struct kha_drill_step_result *st;

	if (KHA_RESIZE(r->steps, r->n_steps + 1) < 0)
		return -ENOMEM;
	st = &r->steps[r->n_steps];
	*st = (struct kha_drill_step_result){
		.name = strdup(name),
		.run = strdup(run),
		.node = node ? strdup(node) : NULL,
		.kind = kind,
		.state = KHA_DRILL_STEP_NOT_RUN,
		.at_us = KHA_DRILL_NONE,
		.started_us = KHA_DRILL_NONE,
		.ended_us = KHA_DRILL_NONE,
		.exit_code = -1,
	};
	if (!st->name || !st->run || (node && !st->node)) {
		free(st->name);
		free(st->run);
		free(st->node);
		return -ENOMEM;
	}
	*ret_index = r->n_steps++;
	return 0;
}

/* "{node}" in tmpl replaced by node; NULL on -ENOMEM. */
static char *subst_node(const char *tmpl, const char *node)
{
	size_t n = 0, len = strlen(node);
	const char *p;
	char *out, *o;

	for (p = tmpl; (p = strstr(p, "{node}")); p += 6)
		n++;
	out = malloc(strlen(tmpl) + n * len + 1);
	if (!out)
		return NULL;
	for (o = out, p = tmpl; *p;) {
		if (strncmp(p, "{node}", 6) == 0) {
			memcpy(o, node, len);
			o += len;
			p += 6;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static void node_changed(struct drill *dr, enum kha_drill_node_state state)
{
	struct kha_drill_node_result *n = &dr->r->nodes[dr->node];

	n->state = state;
	dr->dirty = true;
	emit(dr, KHA_DRILL_EVENT_NODE, NULL, n, NULL);
}

/* Runs the rolling stop/start command of the current node; false if it could not start. */
static bool roll_command(struct drill *dr, enum kha_drill_step_kind kind, bool on_abort)
{
	const char *node = dr->r->nodes[dr->node].name;
	const char *tmpl = kind == KHA_DRILL_STEP_STOP ? dr->sc->stop : dr->sc->start;
	char name[256];
	char *cmd = subst_node(tmpl, node);
	size_t idx;
	bool ok;
	int r;

	if (!cmd) {
		dr->err = -ENOMEM;
		return false;
	}
	snprintf(name, sizeof(name), "%s %s", kha_drill_step_kind_name(kind), node);
	r = add_report_step(dr, kind, name, cmd, node, &idx);
	free(cmd);
	if (r < 0) {
		dr->err = r;
		return false;
	}
	dr->r->steps[idx].on_abort = on_abort;
	ok = start_step(dr, idx, dr->sc->step_timeout_us);
	/* the same instant as the step's, so that marks and nodes agree exactly */
	if (kind == KHA_DRILL_STEP_STOP)
		dr->r->nodes[dr->node].stop_us = dr->r->steps[idx].started_us;
	else
		dr->r->nodes[dr->node].start_us = dr->r->steps[idx].started_us;
	return ok;
}

static void roll_fail(struct drill *dr, enum kha_drill_node_state state)
{
	node_changed(dr, state);
	dr->roll = ROLL_DONE;
}

static void roll_begin_node(struct drill *dr)
{
	if (dr->node >= dr->sc->n_nodes) {
		dr->roll = ROLL_DONE;
		dr->r->rolling_completed = true;
		dr->r->stats.marks.recover_us = dr->r->nodes[dr->sc->n_nodes - 1].healthy_us;
		dr->dirty = true;
		return;
	}
	dr->roll = ROLL_STOPPING;
	node_changed(dr, KHA_DRILL_NODE_STOPPING);
	if (!roll_command(dr, KHA_DRILL_STEP_STOP, false))
		roll_fail(dr, KHA_DRILL_NODE_FAILED);
}

static void roll_start(struct drill *dr, bool on_abort)
{
	dr->roll = ROLL_STARTING;
	node_changed(dr, KHA_DRILL_NODE_STARTING);
	if (!roll_command(dr, KHA_DRILL_STEP_START, on_abort))
		roll_fail(dr, KHA_DRILL_NODE_FAILED);
}

static void roll_healthy(struct drill *dr)
{
	dr->r->nodes[dr->node].healthy_us = rel_now(dr);
	node_changed(dr, KHA_DRILL_NODE_HEALTHY);
	dr->node++;
	roll_begin_node(dr);
}

static void roll_check(struct drill *dr, uint64_t now)
{
	struct kha_drill_node_result *n = &dr->r->nodes[dr->node];
	uint64_t left = dr->health_deadline > now ? dr->health_deadline - now : 0;
	char *cmd;
	int err;

	if (left == 0) {
		roll_fail(dr, KHA_DRILL_NODE_UNHEALTHY);
		return;
	}
	cmd = subst_node(dr->sc->healthy, n->name);
	if (!cmd) {
		dr->err = -ENOMEM;
		roll_fail(dr, KHA_DRILL_NODE_FAILED);
		return;
	}
	n->checks++;
	dr->check = spawn(dr, cmd, KHA_MIN(left, dr->sc->step_timeout_us), SIZE_MAX, &err);
	free(cmd);
	if (!dr->check) {
		free(n->last_check_output);
		n->last_check_output = strdup(strerror(-err));
		roll_fail(dr, KHA_DRILL_NODE_UNHEALTHY);
		return;
	}
	dr->roll = ROLL_CHECKING;
}

static void roll_advance(struct drill *dr, uint64_t now)
{
	switch (dr->roll) {
	case ROLL_WAIT:
		if (dr->stop_level) {
			dr->roll = ROLL_DONE;
		} else if (now >= dr->sc->fault_at_us) {
			dr->node = 0;
			roll_begin_node(dr);
		}
		break;
	case ROLL_DOWN:
		if (dr->stop_level || now >= dr->roll_until_us)
			roll_start(dr, dr->stop_level != 0);
		break;
	case ROLL_CHECK_WAIT:
		if (dr->stop_level)
			roll_fail(dr, KHA_DRILL_NODE_ABORTED);
		else if (now >= dr->roll_until_us)
			roll_check(dr, now);
		break;
	default:
		break;
	}
}

/* A rolling command or health check ended. */
static void roll_proc_done(struct drill *dr, const struct kha_drill_step_result *st, bool ok,
			   int wstatus, char *check_output)
{
	struct kha_drill_node_result *n;
	uint64_t now = rel_now(dr);

	if (dr->roll == ROLL_DONE || dr->node >= dr->sc->n_nodes) {
		/* stopped hard: the node was marked already */
		if (!st)
			dr->check = NULL;
		free(check_output);
		return;
	}
	n = &dr->r->nodes[dr->node];
	if (!st) {
		/* a health check */
		dr->check = NULL;
		free(n->last_check_output);
		n->last_check_output = check_output;
		n->last_check_exit = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
		if (dr->stop_level)
			roll_fail(dr, KHA_DRILL_NODE_ABORTED);
		else if (ok)
			roll_healthy(dr);
		else if (now >= dr->health_deadline)
			roll_fail(dr, KHA_DRILL_NODE_UNHEALTHY);
		else {
			dr->roll = ROLL_CHECK_WAIT;
			dr->roll_until_us = now + dr->sc->healthy_interval_us;
		}
		return;
	}
	free(check_output);
	if (!ok) {
		roll_fail(dr, KHA_DRILL_NODE_FAILED);
		return;
	}
	if (st->kind == KHA_DRILL_STEP_STOP) {
		if (dr->stop_level) {
			roll_start(dr, true);
		} else if (dr->sc->down_us) {
			dr->roll = ROLL_DOWN;
			dr->roll_until_us = now + dr->sc->down_us;
			node_changed(dr, KHA_DRILL_NODE_DOWN);
		} else {
			roll_start(dr, false);
		}
		return;
	}
	/* the start command succeeded */
	if (dr->stop_level) {
		roll_fail(dr, KHA_DRILL_NODE_ABORTED);
	} else if (dr->sc->healthy) {
		node_changed(dr, KHA_DRILL_NODE_CHECKING);
		dr->health_deadline = now + dr->sc->healthy_timeout_us;
		roll_check(dr, now);
	} else {
		roll_healthy(dr);
	}
}

static void proc_done(struct drill *dr, size_t pi)
{
	struct running *run = dr->procs[pi];
	struct drill_proc *p = &run->proc;
	int ws = p->wstatus;
	bool ok = !p->timed_out && !p->killed && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
	struct kha_drill_step_result *st = run->step == SIZE_MAX ? NULL : &dr->r->steps[run->step];
	bool rolling = dr->sc->n_nodes > 0;
	char why[300] = "";
	char *output = NULL;

	dr->procs[pi] = dr->procs[--dr->n_procs];
	dr->dirty = true;
	if (st) {
		st->ended_us = rel_now(dr);
		st->exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
		st->signal = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
		st->output_bytes = p->out_total;
		st->state = ok		   ? KHA_DRILL_STEP_SUCCEEDED
			    : p->killed	   ? KHA_DRILL_STEP_KILLED
			    : p->timed_out ? KHA_DRILL_STEP_TIMED_OUT
					   : KHA_DRILL_STEP_FAILED;
		if (!ok) {
			dr->r->step_failed = true;
			if (st->state == KHA_DRILL_STEP_TIMED_OUT)
				snprintf(why, sizeof(why), "step '%s' timed out", st->name);
			else if (st->signal)
				snprintf(why, sizeof(why), "step '%s' was killed by signal %d",
					 st->name, st->signal);
			else
				snprintf(why, sizeof(why), "step '%s' failed with exit code %d",
					 st->name, st->exit_code);
		}
	}
	kha_drill__proc_release(p, &output);
	free(run);
	if (st) {
		free(st->output);
		st->output = output;
		output = NULL;
		emit(dr, KHA_DRILL_EVENT_STEP_END, st, NULL, NULL);
	}
	if (rolling && (!st || st->kind == KHA_DRILL_STEP_STOP || st->kind == KHA_DRILL_STEP_START))
		roll_proc_done(dr, st, ok, ws, output); /* may move dr->r->steps: st is stale */
	else
		free(output);
	if (why[0] && !rolling && !dr->sc->keep_going)
		abort_drill(dr, "%s", why);
}

static void poll_procs(struct drill *dr)
{
	for (size_t i = 0; i < dr->n_procs;) {
		struct running *run = dr->procs[i];
		struct drill_proc *p = &run->proc;
		uint64_t now = kha_now_us();

		if (kha_drill__proc_poll(p)) {
			/* what proc_done does shifts the array: look at slot i again */
			proc_done(dr, i);
			continue;
		}
		if (p->deadline_us != KHA_DRILL_NONE && now >= p->deadline_us && !p->timed_out) {
			p->timed_out = true;
			run->term_sent_us = now;
			kha_drill__proc_signal(p, SIGTERM);
		} else if (run->term_sent_us && now >= run->term_sent_us + KILL_GRACE_US) {
			kha_drill__proc_signal(p, SIGKILL);
		}
		i++;
	}
}

static void start_due_steps(struct drill *dr, uint64_t now)
{
	const struct kha_drill_scenario *sc = dr->sc;

	while (!dr->stop_level && dr->next_step < sc->n_steps &&
	       sc->steps[dr->next_step].at_us <= now) {
		const struct kha_drill_step *s = &sc->steps[dr->next_step];
		size_t i = dr->next_step++;

		if (!start_step(dr, i, s->timeout_us ? s->timeout_us : sc->step_timeout_us) &&
		    !sc->keep_going)
			abort_drill(dr, "step '%s' could not be started", s->name);
	}
}

static bool step_running(const struct drill *dr)
{
	for (size_t i = 0; i < dr->n_procs; i++)
		if (dr->procs[i]->step != SIZE_MAX)
			return true;
	return false;
}

/* Stopping: once no step runs any more, run the recoveries the faults made call for. */
static void run_abort_recoveries(struct drill *dr)
{
	const struct kha_drill_scenario *sc = dr->sc;

	if (dr->stop_level != 1 || !dr->fault_started || step_running(dr))
		return;
	while (dr->next_step < sc->n_steps) {
		size_t i = dr->next_step++;
		const struct kha_drill_step *s = &sc->steps[i];

		if (s->kind != KHA_DRILL_STEP_RECOVER)
			continue;
		dr->r->steps[i].on_abort = true;
		if (start_step(dr, i, s->timeout_us ? s->timeout_us : sc->step_timeout_us))
			return; /* one at a time */
	}
}

static void begin_stop(struct drill *dr)
{
	uint64_t now = rel_now(dr);

	dr->stop_level = 1;
	end_probing(dr, now);
	/* a recovery runs only if a fault was made; otherwise nothing more runs */
	if (!dr->fault_started)
		dr->next_step = dr->sc->n_steps;
	if (dr->check)
		kha_drill__proc_signal(&dr->check->proc, SIGTERM);
	dr->dirty = true;
}

static void abort_drill(struct drill *dr, const char *fmt, ...)
{
	va_list ap;

	if (dr->stop_level)
		return;
	dr->r->aborted = true;
	va_start(ap, fmt);
	vsnprintf(dr->r->abort_reason, sizeof(dr->r->abort_reason), fmt, ap);
	va_end(ap);
	emit(dr, KHA_DRILL_EVENT_ABORT, NULL, NULL, dr->r->abort_reason);
	begin_stop(dr);
}

static void hard_stop(struct drill *dr)
{
	dr->stop_level = 2;
	dr->next_step = dr->sc->n_steps;
	for (size_t i = 0; i < dr->n_procs; i++) {
		dr->procs[i]->proc.killed = true;
		kha_drill__proc_signal(&dr->procs[i]->proc, SIGKILL);
	}
	if (dr->roll != ROLL_DONE && dr->r->nodes && dr->node < dr->sc->n_nodes) {
		dr->roll = ROLL_DONE;
		node_changed(dr, KHA_DRILL_NODE_ABORTED);
	}
	dr->dirty = true;
}

static void handle_stop_fd(struct drill *dr)
{
	int v;

	if (!dr->hooks || !dr->hooks->on_stop)
		return;
	v = dr->hooks->on_stop(dr->hooks->userdata);
	if (v <= 0)
		return;
	if (dr->stop_level == 0) {
		dr->r->interrupted = true;
		dr->r->interrupt_signal = v;
		snprintf(dr->r->abort_reason, sizeof(dr->r->abort_reason), "interrupted");
		emit(dr, KHA_DRILL_EVENT_ABORT, NULL, NULL,
		     dr->n_procs || dr->fault_started
			     ? "interrupted: finishing the commands running and the recoveries due "
			       "(interrupt again to kill them)"
			     : "interrupted");
		begin_stop(dr);
	} else if (dr->stop_level == 1) {
		emit(dr, KHA_DRILL_EVENT_ABORT, NULL, NULL,
		     "interrupted again: killing the commands still running");
		hard_stop(dr);
	}
}

/* ---------------------------------------------------------------------------------------- */

static bool finished(const struct drill *dr)
{
	if (!dr->probing_done || dr->n_inflight || dr->n_procs || rolling_active(dr))
		return false;
	if (dr->stop_level == 1 && dr->fault_started) {
		for (size_t i = dr->next_step; i < dr->sc->n_steps; i++)
			if (dr->sc->steps[i].kind == KHA_DRILL_STEP_RECOVER)
				return false;
	}
	return dr->stop_level || dr->next_step >= dr->sc->n_steps;
}

static uint64_t next_wakeup(const struct drill *dr, uint64_t now)
{
	uint64_t t = dr->next_tick_us;

	if (dr->dirty)
		return now;
	if (!dr->probing_done)
		t = KHA_MIN(t, kha_drill_slot_due_us(dr->sc->rate, dr->next_slot));
	if (!dr->stop_level && dr->next_step < dr->sc->n_steps)
		t = KHA_MIN(t, dr->sc->steps[dr->next_step].at_us);
	if (dr->roll == ROLL_WAIT)
		t = KHA_MIN(t, dr->sc->fault_at_us);
	if (dr->roll == ROLL_DOWN || dr->roll == ROLL_CHECK_WAIT)
		t = KHA_MIN(t, dr->roll_until_us);
	for (size_t i = 0; i < dr->n_procs; i++) {
		const struct running *run = dr->procs[i];
		if (run->proc.pidfd < 0)
			t = KHA_MIN(t, now + REAP_POLL_US);
		if (run->proc.deadline_us != KHA_DRILL_NONE)
			t = KHA_MIN(t, run->proc.deadline_us - dr->t0);
		if (run->term_sent_us)
			t = KHA_MIN(t, run->term_sent_us + KILL_GRACE_US - dr->t0);
	}
	return t;
}

static int loop(struct drill *dr)
{
	struct curl_waitfd *fds = NULL;
	size_t fds_cap = 0;
	int r = 0;

	for (;;) {
		uint64_t now, wake;
		size_t nfds = 0;
		int running, timeout_ms;
		CURLMcode mc;

		dr->dirty = false;
		now = rel_now(dr);
		start_due_steps(dr, now);
		run_abort_recoveries(dr);
		if (dr->sc->n_nodes)
			roll_advance(dr, now);
		schedule(dr);
		mc = curl_multi_perform(dr->multi, &running);
		if (mc != CURLM_OK) {
			r = -EIO;
			break;
		}
		drain_done(dr);
		poll_procs(dr);
		if (dr->err) {
			r = dr->err;
			break;
		}
		now = rel_now(dr);
		if (now >= dr->next_tick_us) {
			emit(dr, KHA_DRILL_EVENT_TICK, NULL, NULL, NULL);
			dr->next_tick_us = (now / KHA_USEC_PER_SEC + 1) * KHA_USEC_PER_SEC;
		}
		if (finished(dr))
			break;

		/* everything to watch besides curl's own sockets */
		if (KHA_GROW(fds, fds_cap, 1 + 2 * dr->n_procs) < 0) {
			r = -ENOMEM;
			break;
		}
		if (dr->hooks && dr->hooks->stop_fd >= 0)
			fds[nfds++] = (struct curl_waitfd){.fd = dr->hooks->stop_fd,
							   .events = CURL_WAIT_POLLIN};
		for (size_t i = 0; i < dr->n_procs; i++) {
			const struct drill_proc *p = &dr->procs[i]->proc;
			if (p->outfd >= 0)
				fds[nfds++] = (struct curl_waitfd){.fd = p->outfd,
								   .events = CURL_WAIT_POLLIN};
			if (p->pidfd >= 0)
				fds[nfds++] = (struct curl_waitfd){.fd = p->pidfd,
								   .events = CURL_WAIT_POLLIN};
		}
		wake = next_wakeup(dr, now);
		timeout_ms = wake <= now ? 0 : (int)KHA_MIN((wake - now + 999) / 1000, 1000);
		mc = curl_multi_poll(dr->multi, fds, (unsigned)nfds, timeout_ms, NULL);
		if (mc != CURLM_OK) {
			r = -EIO;
			break;
		}
		if (nfds && dr->hooks && dr->hooks->stop_fd >= 0 && fds[0].revents)
			handle_stop_fd(dr);
	}
	free(fds);
	return r;
}

static void cleanup(struct drill *dr)
{
	while (dr->n_inflight)
		drop_probe(dr, dr->inflight[dr->n_inflight - 1]);
	for (size_t i = 0; i < dr->n_procs; i++) {
		kha_drill__proc_kill_wait(&dr->procs[i]->proc);
		kha_drill__proc_release(&dr->procs[i]->proc, NULL);
		free(dr->procs[i]);
	}
	free(dr->procs);
	free(dr->inflight);
	if (dr->multi)
		curl_multi_cleanup(dr->multi);
	curl_slist_free_all(dr->headers);
	free(dr->url);
	kha_drill__kube_free(dr->kube);
	dr->kube = NULL;
}

void kha_drill_report_free(struct kha_drill_report *r)
{
	if (!r)
		return;
	free(r->target);
	free(r->probes);
	for (size_t i = 0; i < r->n_steps; i++) {
		free(r->steps[i].name);
		free(r->steps[i].run);
		free(r->steps[i].node);
		free(r->steps[i].output);
	}
	free(r->steps);
	for (size_t i = 0; i < r->n_nodes; i++) {
		free(r->nodes[i].name);
		free(r->nodes[i].last_check_output);
	}
	free(r->nodes);
	free(r->writes.prefix);
	free(r->writes.endpoints);
	free(r->writes.lost_slots);
	free(r->kube.namespace);
	free(r->kube.object);
	free(r->kube.label);
	free(r->kube.gaps);
	free(r);
}

static int init_report(struct drill *dr)
{
	const struct kha_drill_scenario *sc = dr->sc;
	struct kha_drill_report *r = calloc(1, sizeof(*r));
	size_t idx;

	if (!r)
		return -ENOMEM;
	dr->r = r;
	r->target = strdup(sc->target);
	if (!r->target)
		return -ENOMEM;
	r->kind = dr->tcp ? KHA_DRILL_TARGET_TCP : KHA_DRILL_TARGET_HTTP;
	r->rate = sc->rate;
	r->interval_us = KHA_USEC_PER_SEC / sc->rate;
	r->timeout_us = sc->timeout_us;
	r->duration_us = sc->duration_us;
	r->keepalive = sc->keepalive && !dr->tcp;
	r->rolling = sc->n_nodes > 0;
	r->slo_percent = sc->slo_percent;
	if (sc->write) {
		char prefix[128];

		r->writes.enabled = true;
		if (sc->write_prefix)
			r->writes.prefix = strdup(sc->write_prefix);
		else {
			snprintf(prefix, sizeof(prefix), "/kha-drill/%llu-%ld/",
				 (unsigned long long)(kha_wall_us() / KHA_USEC_PER_SEC),
				 (long)getpid());
			r->writes.prefix = strdup(prefix);
		}
		if (!r->writes.prefix)
			return -ENOMEM;
	}
	r->stats.marks = (struct kha_drill_marks){KHA_DRILL_NONE, KHA_DRILL_NONE, KHA_DRILL_NONE};
	for (size_t i = 0; i < sc->n_steps; i++) {
		if (add_report_step(dr, sc->steps[i].kind, sc->steps[i].name, sc->steps[i].run,
				    NULL, &idx) < 0)
			return -ENOMEM;
		r->steps[idx].at_us = sc->steps[i].at_us;
	}
	if (sc->n_nodes) {
		r->nodes = calloc(sc->n_nodes, sizeof(*r->nodes));
		if (!r->nodes)
			return -ENOMEM;
		r->n_nodes = sc->n_nodes;
		for (size_t i = 0; i < sc->n_nodes; i++) {
			r->nodes[i] = (struct kha_drill_node_result){
				.name = strdup(sc->nodes[i]),
				.stop_us = KHA_DRILL_NONE,
				.start_us = KHA_DRILL_NONE,
				.healthy_us = KHA_DRILL_NONE,
				.last_check_exit = -1,
			};
			if (!r->nodes[i].name)
				return -ENOMEM;
		}
	}
	return 0;
}

static size_t inflight_limit(const struct kha_drill_scenario *sc)
{
	struct rlimit rl;
	uint64_t need = (uint64_t)sc->rate * sc->timeout_us / KHA_USEC_PER_SEC;
	uint64_t limit = 10000;

	need += need / 4 + 16;
	/* every probe holds a socket: stay under the descriptor limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		limit = rl.rlim_cur > 128 ? rl.rlim_cur - 96 : 32;
	return (size_t)KHA_MIN(need, KHA_MIN(limit, 10000));
}

int kha_drill_run(const struct kha_drill_scenario *sc, const struct kha_drill_hooks *hooks,
		  struct kha_drill_report **ret_report, struct kha_diag *d)
{
	struct drill dr = {
		.sc = sc,
		.hooks = hooks,
		.roll = sc->n_nodes ? ROLL_WAIT : ROLL_DONE,
		.live_outage_start = KHA_DRILL_NONE,
		.live_last_slot = KHA_DRILL_NONE,
	};
	uint64_t slots;
	int r;

	if (!sc->target || !sc->rate)
		return kha_diag_set(d, EINVAL,
				    "scenario not checked (call kha_drill_scenario_check)");
	slots = (sc->duration_us * sc->rate + KHA_USEC_PER_SEC - 1) / KHA_USEC_PER_SEC;
	if (slots > MAX_SLOTS)
		return kha_diag_set(d, EINVAL,
				    "rate x duration is %llu probes, more than %llu (lower one)",
				    (unsigned long long)slots, MAX_SLOTS);
	r = kha_http_global_init(d);
	if (r < 0)
		return r;
	dr.tcp = strncmp(sc->target, "tcp://", 6) == 0;
	dr.write = sc->write && !dr.tcp;
	if (sc->kube) {
		dr.headers = curl_slist_append(NULL, "Content-Type: application/json");
		dr.headers = dr.headers ? curl_slist_append(dr.headers, "Accept: application/json")
					: NULL;
	} else if (dr.write) {
		dr.url = kha_drill__write_url(sc->target);
		dr.headers = curl_slist_append(NULL, "Content-Type: application/json");
	} else if (dr.tcp) {
		size_t n = strlen(sc->target) + 16;
		dr.url = malloc(n);
		if (dr.url)
			snprintf(dr.url, n, "http://%s/", sc->target + 6);
	} else {
		dr.url = strdup(sc->target);
	}
	dr.end_slot = slots;
	dr.max_inflight = inflight_limit(sc);
	dr.inflight = calloc(dr.max_inflight, sizeof(*dr.inflight));
	dr.multi = curl_multi_init();
	r = -ENOMEM;
	if ((!dr.url && !sc->kube) || !dr.inflight || !dr.multi || (dr.write && !dr.headers) ||
	    init_report(&dr) < 0 || grow_probes(&dr, slots ? slots - 1 : 0) < 0) {
		kha_diag_set(d, ENOMEM, "out of memory");
		goto fail;
	}
	curl_multi_setopt(dr.multi, CURLMOPT_MAXCONNECTS, (long)dr.max_inflight);
	if (sc->kube) {
		r = kha_drill__kube_prepare(sc, dr.r, &dr.kube, &dr.url, d);
		if (r < 0)
			goto fail;
	}

	dr.t0 = kha_now_us();
	dr.r->started_wall_us = kha_wall_us();
	dr.r->t0_us = dr.t0;
	if (dr.kube && dr.r->kube.watch) {
		r = kha_drill__kube_watch_start(dr.kube, dr.t0);
		if (r < 0) {
			kha_diag_set(d, -r, "cannot start the watch: %s", strerror(-r));
			goto fail;
		}
	}
	dr.next_tick_us = KHA_USEC_PER_SEC;
	kha_debug("drill started", "target=%s rate=%u max_inflight=%zu", KHA_LOGQ(sc->target),
		  sc->rate, dr.max_inflight);
	r = loop(&dr);
	kha_drill__kube_watch_stop(dr.kube, dr.r,
				   dr.probing_done ? dr.probing_end_us : rel_now(&dr));
	if (r < 0) {
		kha_diag_set(d, -r, "drill failed: %s", strerror(-r));
		goto fail;
	}
	dr.r->elapsed_us = rel_now(&dr);
	dr.r->stats.marks.end_us = dr.probing_end_us;
	{
		struct kha_drill_marks m = dr.r->stats.marks;
		uint64_t lag = dr.r->stats.max_send_lag_us;
		r = kha_drill_analyze(dr.r->probes, dr.r->n_probes, &m, &dr.r->stats);
		dr.r->stats.max_send_lag_us = lag;
	}
	if (r < 0) {
		kha_diag_set(d, ENOMEM, "out of memory");
		goto fail;
	}
	if (dr.kube)
		kha_drill__kube_finish(dr.kube, sc, dr.r);
	cleanup(&dr);
	if (dr.write && !sc->kube)
		kha_drill__verify_writes(sc, dr.r);
	*ret_report = dr.r;
	return 0;
fail:
	cleanup(&dr);
	kha_drill_report_free(dr.r);
	return r;
}
