// SPDX-License-Identifier: MIT
/*
 * Active health checks, on the control thread's event loop: libcurl's multi interface driven
 * by our loop (curl_multi_socket_action from io sources and one timer) for HTTP and HTTPS, and a
 * plain non-blocking connect for TCP. Nothing here blocks, and nothing runs on the data path's
 * threads. Each backend has one easy handle, reused from check to check, so that with HTTPS the
 * TLS connection is kept alive: a check then costs the master one small request, not a
 * handshake (docs/internals/proxy.md has the numbers).
 */
#include <string.h>
#include <sys/socket.h>

#include "proxy-internal.h"
#include "kha/http-curl.h"
#include "kha/log.h"
#include "kha/banned.h"

struct checker {
	struct kha_proxy *p;
	struct backend *b;
	struct kha_loop_source *timer;
	CURL *easy;
	bool running;
	uint64_t started_us;
	int fd; /* tcp checks */
	struct kha_loop_source *io, *deadline;
	char url[KHA_PROXY_ADDR_MAX + 300];
	char errbuf[CURL_ERROR_SIZE];
};

static void schedule(struct checker *chk);

static const char *const cause_names[CAUSE_N] = {
	[CAUSE_NONE] = "none",
	[CAUSE_TLS_TRUST] = "tls-trust",
	[CAUSE_CACERT_FILE] = "check-cacert",
	[CAUSE_CLIENT_CERT] = "client-certificate",
	[CAUSE_HTTP_AUTH] = "http-auth",
};

static const char *const cause_actions[CAUSE_N] = {
	[CAUSE_NONE] = "",
	[CAUSE_TLS_TRUST] = "give --check-cacert FILE (the CA that signed the backends' "
			    "certificates) or, to skip verification, --check-insecure",
	[CAUSE_CACERT_FILE] = "give --check-cacert a readable PEM file of CA certificates",
	[CAUSE_CLIENT_CERT] = "give --check-cert FILE and --check-key FILE of a client the "
			      "backends accept",
	[CAUSE_HTTP_AUTH] = "let anonymous clients read --check-path (kube-apiserver: "
			    "--anonymous-auth=true, its default) or give --check-cert/--check-key "
			    "of an authorised client",
};

/* cause_actions in a few words, for the /readyz reason */
static const char *const cause_short[CAUSE_N] = {
	[CAUSE_NONE] = "",
	[CAUSE_TLS_TRUST] = "give --check-cacert FILE or --check-insecure",
	[CAUSE_CACERT_FILE] = "--check-cacert cannot be read",
	[CAUSE_CLIENT_CERT] = "give --check-cert and --check-key",
	[CAUSE_HTTP_AUTH] = "open --check-path to anonymous clients or give --check-cert",
};

bool kha_proxy__checks_problem(const struct kha_proxy *p, bool detail, char *buf, size_t size)
{
	for (const struct backend *b = p->backends; b; b = b->next) {
		if (b->removed || b->cause == CAUSE_NONE)
			continue;
		if (detail)
			snprintf(buf, size,
				 "health checks fail for a configuration reason (%s: %s): %s",
				 cause_names[b->cause], b->last_detail, cause_actions[b->cause]);
		else
			snprintf(buf, size, "checks fail for a configuration reason (%s): %s",
				 cause_names[b->cause], cause_short[b->cause]);
		return true;
	}
	return false;
}

/* Logs a configuration cause at error level the first time it appears (again once cleared). */
static void note_cause(struct checker *chk, enum check_cause cause, const char *detail)
{
	struct kha_proxy *p = chk->p;
	unsigned seen = 0;

	chk->b->cause = cause;
	for (const struct backend *b = p->backends; b; b = b->next)
		if (!b->removed && b->cause != CAUSE_NONE)
			seen |= 1u << b->cause;
	p->causes_logged &= seen;
	if (cause == CAUSE_NONE || (p->causes_logged & (1u << cause)))
		return;
	p->causes_logged |= 1u << cause;
	kha_error("health checks fail for a configuration reason, not because of the backend",
		  "backend=%s cause=%s detail=%s action=%s", KHA_LOGQ(chk->b->name),
		  cause_names[cause], KHA_LOGQ(detail), KHA_LOGQ(cause_actions[cause]));
}

/*
 * What a check's result says about kha's configuration (fail: lib/net's reading of a failed
 * transfer). *ret_answered: the backend itself answered (a certificate, an alert, an HTTP
 * status), so it is not frozen or gone.
 */
static enum check_cause classify(CURLcode res, long code, enum kha_http_fail fail,
				 bool *ret_answered)
{
	*ret_answered = res == CURLE_OK;
	if (res == CURLE_OK)
		return code == 401 || code == 403 ? CAUSE_HTTP_AUTH : CAUSE_NONE;
	switch (fail) {
	case KHA_HTTP_FAIL_TLS_VERIFY:
		*ret_answered = true;
		return CAUSE_TLS_TRUST;
	case KHA_HTTP_FAIL_CA_FILE:
		return CAUSE_CACERT_FILE;
	case KHA_HTTP_FAIL_TLS_FILES:
		return CAUSE_CLIENT_CERT;
	case KHA_HTTP_FAIL_TLS_CLIENT:
		*ret_answered = true;
		return CAUSE_CLIENT_CERT;
	default:
		return CAUSE_NONE;
	}
}

static void finish(struct checker *chk, enum kha_proxy_event ev, const char *detail)
{
	struct backend *b = chk->b;
	uint64_t now = kha_now_us();

	chk->running = false;
	b->checks_total++;
	b->last_check_us = now;
	b->last_latency_s = (double)(now - chk->started_us) / 1e6;
	kha_histogram_observe(&b->check_latency, b->last_latency_s);
	snprintf(b->last_result, sizeof(b->last_result), "%s",
		 ev == KHA_PROXY_EV_CHECK_OK	      ? "ok"
		 : ev == KHA_PROXY_EV_CHECK_NOT_READY ? "not-ready"
						      : "failed");
	snprintf(b->last_detail, sizeof(b->last_detail), "%s", detail);
	if (ev != KHA_PROXY_EV_CHECK_OK)
		b->check_failures++;
	else
		__atomic_store_n(&b->failing, 0, __ATOMIC_RELAXED);
	kha_proxy__health_event(b, ev, detail);
	schedule(chk);
}

static void schedule(struct checker *chk)
{
	const struct kha_proxy_config *cfg = &chk->p->cfg;
	struct backend *b = chk->b;
	uint64_t delay;

	if (chk->running)
		return;
	if (b->health.check_now) {
		b->health.check_now = false;
		delay = 0;
	} else if (kha_proxy_health_transitioning(&b->health)) {
		delay = cfg->check_fast_interval_us;
	} else {
		delay = cfg->check_interval_us;
	}
	kha_loop_timer_set(chk->timer, delay, 0);
}

/* ---- TCP ---- */

static void tcp_done(struct checker *chk, int err)
{
	char detail[128];

	kha_loop_source_remove(chk->io);
	kha_loop_source_remove(chk->deadline);
	chk->io = chk->deadline = NULL;
	if (chk->fd >= 0) {
		close(chk->fd);
		chk->fd = -1;
	}
	if (err)
		snprintf(detail, sizeof(detail), "connect: %s", strerror(err));
	else
		snprintf(detail, sizeof(detail), "connected");
	finish(chk, err ? KHA_PROXY_EV_CHECK_FAILED : KHA_PROXY_EV_CHECK_OK, detail);
}

static void tcp_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct checker *chk = userdata;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)src;
	(void)events;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	tcp_done(chk, err);
}

static void tcp_deadline(struct kha_loop_source *src, void *userdata)
{
	(void)src;
	tcp_done(userdata, ETIMEDOUT);
}

static void tcp_start(struct checker *chk)
{
	struct backend *b = chk->b;
	int r;

	chk->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (chk->fd < 0) {
		tcp_done(chk, errno);
		return;
	}
	r = connect(chk->fd, (struct sockaddr *)&b->addr, b->addrlen);
	if (r < 0 && errno != EINPROGRESS) {
		tcp_done(chk, errno);
		return;
	}
	if (kha_loop_add_io(chk->p->loop, chk->fd, EPOLLOUT, 0, tcp_io, chk, &chk->io) < 0 ||
	    kha_loop_add_timer(chk->p->loop, chk->p->cfg.check_timeout_us, 0, tcp_deadline, chk,
			       &chk->deadline) < 0)
		tcp_done(chk, ENOMEM);
}

/* ---- HTTP(S) through curl multi ---- */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

static void process_done(struct kha_proxy *p)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(p->multi, &left))) {
		struct checker *chk = NULL;
		CURL *e = msg->easy_handle;
		CURLcode res = msg->data.result;
		long code = 0;
		char detail[KHA_DIAG_MAX];
		struct kha_http_failure f = {};
		struct kha_diag d = {};
		enum check_cause cause;
		bool answered;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&chk);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
		curl_multi_remove_handle(p->multi, e);
		if (res != CURLE_OK) {
			uint64_t t = p->cfg.check_timeout_us;

			kha_ignore(kha_http_curl_error(e, res, chk->errbuf, t, t, &f, &d));
		}
		cause = classify(res, code, f.fail, &answered);
		if (answered) /* alive: the last resort may choose it again */
			__atomic_store_n(&chk->b->failing, 0, __ATOMIC_RELAXED);
		if (res == CURLE_OK)
			snprintf(detail, sizeof(detail), "HTTP %ld", code);
		else
			snprintf(detail, sizeof(detail), "%s", d.msg);
		/* a timeout or a refused connect says nothing about the configuration: the cause
		 * found before stands until a check gets an answer */
		if (cause != CAUSE_NONE || answered)
			note_cause(chk, cause, detail);
		finish(chk,
		       res != CURLE_OK ? KHA_PROXY_EV_CHECK_FAILED
		       : code == 200   ? KHA_PROXY_EV_CHECK_OK
				       : KHA_PROXY_EV_CHECK_NOT_READY,
		       detail);
	}
}

static void curl_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_proxy *p = userdata;
	int flags = 0, running;

	(void)src;
	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(p->multi, fd, flags, &running);
	process_done(p);
}

static void curl_timeout(struct kha_loop_source *src, void *userdata)
{
	struct kha_proxy *p = userdata;
	int running;

	(void)src;
	curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	process_done(p);
}

static int curl_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct kha_proxy *p = userp;
	struct kha_loop_source *src = socketp;
	uint32_t events = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		kha_loop_source_remove(src);
		curl_multi_assign(p->multi, s, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (src)
		return kha_loop_io_set_events(src, events) < 0 ? -1 : 0;
	if (kha_loop_add_io(p->loop, s, events, 0, curl_io, p, &src) < 0)
		return -1;
	curl_multi_assign(p->multi, s, src);
	return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct kha_proxy *p = userp;

	(void)m;
	if (timeout_ms < 0)
		kha_loop_timer_stop(p->curl_timer);
	else
		kha_loop_timer_set(p->curl_timer, (uint64_t)timeout_ms * KHA_USEC_PER_MSEC, 0);
	return 0;
}

static int easy_setup(struct checker *chk)
{
	const struct kha_proxy_config *cfg = &chk->p->cfg;
	bool https = cfg->check == KHA_PROXY_CHECK_HTTPS;
	struct kha_http_tls tls = {
		.cacert = cfg->check_cacert,
		.cert = cfg->check_cert,
		.key = cfg->check_key,
		.insecure = cfg->check_insecure,
	};
	struct kha_http_easy_opts eo = {
		.user_agent = "kha-proxy-check",
		.errbuf = chk->errbuf,
		.connect_timeout_us = KHA_MAX(cfg->check_timeout_us, KHA_USEC_PER_MSEC),
		.timeout_us = KHA_MAX(cfg->check_timeout_us, KHA_USEC_PER_MSEC),
		.tls = https ? &tls : NULL,
		.proxy = "", /* never through an environment proxy */
	};
	CURL *e = curl_easy_init();

	if (!e)
		return -ENOMEM;
	if (kha_http_easy_setup(e, &eo, NULL) < 0) {
		curl_easy_cleanup(e);
		return -EINVAL;
	}
	snprintf(chk->url, sizeof(chk->url), "%s://%s%s", https ? "https" : "http", chk->b->name,
		 cfg->check_path);
	curl_easy_setopt(e, CURLOPT_URL, chk->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, chk);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	chk->easy = e;
	return 0;
}

/* ---- lifecycle ---- */

static void start_check(struct kha_loop_source *src, void *userdata)
{
	struct checker *chk = userdata;

	(void)src;
	if (chk->running)
		return;
	chk->running = true;
	chk->started_us = kha_now_us();
	chk->errbuf[0] = '\0';
	if (chk->p->cfg.check == KHA_PROXY_CHECK_TCP) {
		tcp_start(chk);
		return;
	}
	if (curl_multi_add_handle(chk->p->multi, chk->easy) != CURLM_OK)
		finish(chk, KHA_PROXY_EV_CHECK_FAILED, "cannot start the check");
}

int kha_proxy__checker_start(struct backend *b)
{
	struct checker *chk = calloc(1, sizeof(*chk));
	int r;

	if (!chk)
		return -ENOMEM;
	chk->p = b->p;
	chk->b = b;
	chk->fd = -1;
	if (b->p->cfg.check != KHA_PROXY_CHECK_TCP && (r = easy_setup(chk)) < 0)
		goto fail;
	/* the first check right away: a backend is assumed up until it says otherwise */
	r = kha_loop_add_timer(b->p->loop, 0, 0, start_check, chk, &chk->timer);
	if (r < 0)
		goto fail;
	b->chk = chk;
	return 0;
fail:
	if (chk->easy)
		curl_easy_cleanup(chk->easy);
	free(chk);
	return r;
}

void kha_proxy__checker_stop(struct backend *b)
{
	struct checker *chk = b->chk;

	if (!chk)
		return;
	kha_loop_source_remove(chk->timer);
	kha_loop_source_remove(chk->io);
	kha_loop_source_remove(chk->deadline);
	if (chk->fd >= 0)
		close(chk->fd);
	if (chk->easy) {
		if (chk->running)
			curl_multi_remove_handle(chk->p->multi, chk->easy);
		curl_easy_cleanup(chk->easy);
	}
	free(chk);
	b->chk = NULL;
}

void kha_proxy__checker_now(struct backend *b)
{
	struct checker *chk = b->chk;

	if (chk && !chk->running) {
		b->health.check_now = false;
		kha_loop_timer_set(chk->timer, 0, 0);
	}
}

int kha_proxy__checks_init(struct kha_proxy *p, struct kha_diag *d)
{
	int r;

	r = kha_loop_add_timer(p->loop, 0, 0, curl_timeout, p, &p->curl_timer);
	if (r < 0)
		return kha_diag_set(d, -r, "out of memory");
	kha_loop_timer_stop(p->curl_timer);
	if (p->cfg.check == KHA_PROXY_CHECK_TCP)
		return 0;
	return kha_proxy__checks_need_curl(p, d);
}

int kha_proxy__checks_need_curl(struct kha_proxy *p, struct kha_diag *d)
{
	if (p->multi)
		return 0;
	if (kha_http_global_init(d) < 0)
		return -ENOMEM;
	p->multi = curl_multi_init();
	if (!p->multi)
		return kha_diag_set(d, ENOMEM, "cannot initialise libcurl");
	curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
	curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
	return 0;
}

void kha_proxy__checks_release(struct kha_proxy *p)
{
	if (p->multi) {
		curl_multi_cleanup(p->multi);
		p->multi = NULL;
	}
}
