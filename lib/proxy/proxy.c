// SPDX-License-Identifier: MIT
/*
 * kha proxy, the control thread: membership (seeds, backends file, discovery, state file),
 * health decisions, publication to the workers, admin endpoints, signals, graceful stop.
 */
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <jansson.h>

#include "nat-internal.h"
#include "proxy-internal.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					0.1,   0.25,   0.5,   1,    2.5,   5};

void kha_proxy_config_init(struct kha_proxy_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->metrics_addr, sizeof(c->metrics_addr), "127.0.0.1:9443");
	c->balance = KHA_PROXY_LEASTCONN;
	c->workers = 1;
	c->retries = 3;
	c->connect_timeout_us = 1 * KHA_USEC_PER_SEC;
	c->first_byte_timeout_us = 1 * KHA_USEC_PER_SEC;
	c->replay_max = 16 * 1024;
	c->drain_timeout_us = 30 * KHA_USEC_PER_SEC;
	c->tcp_user_timeout_us = 10 * KHA_USEC_PER_SEC;
	c->keepalive_idle_us = 5 * KHA_USEC_PER_SEC;
	c->keepalive_interval_us = 2 * KHA_USEC_PER_SEC;
	c->keepalive_count = 3;
	c->client_keepalive_idle_us = 30 * KHA_USEC_PER_SEC;
	c->check = KHA_PROXY_CHECK_HTTPS;
	snprintf(c->check_path, sizeof(c->check_path), "/readyz");
	c->check_interval_us = 5 * KHA_USEC_PER_SEC;
	c->check_fast_interval_us = 500 * KHA_USEC_PER_MSEC;
	c->check_timeout_us = 2 * KHA_USEC_PER_SEC;
	c->fall = 3;
	c->rise = 2;
	c->close_on_dead = true;
	snprintf(c->nat_name, sizeof(c->nat_name), "kha-proxy");
}

void kha_proxy_config_init_mode(struct kha_proxy_config *c, enum kha_proxy_mode mode)
{
	kha_proxy_config_init(c);
	c->mode = mode;
	if (mode != KHA_PROXY_MODE_NAT)
		return;
	/* worst case for a frozen backend: interval + timeout = 1.2 s to the first failure */
	c->balance = KHA_PROXY_RANDOM;
	c->check_interval_us = 500 * KHA_USEC_PER_MSEC;
	c->check_fast_interval_us = 200 * KHA_USEC_PER_MSEC;
	c->check_timeout_us = 700 * KHA_USEC_PER_MSEC;
	c->fall = 2;
}

void kha_proxy_config_release(struct kha_proxy_config *c)
{
	kha_proxy_spec_list_release(&c->seeds);
	free(c->backends_file);
	free(c->state_file);
	free(c->check_cacert);
	free(c->check_cert);
	free(c->check_key);
	c->backends_file = c->state_file = c->check_cacert = c->check_cert = c->check_key = NULL;
}

static int config_copy(struct kha_proxy_config *dst, const struct kha_proxy_config *src)
{
	*dst = *src;
	dst->seeds = (struct kha_proxy_spec_list){};
	dst->backends_file = src->backends_file ? strdup(src->backends_file) : NULL;
	dst->state_file = src->state_file ? strdup(src->state_file) : NULL;
	dst->check_cacert = src->check_cacert ? strdup(src->check_cacert) : NULL;
	dst->check_cert = src->check_cert ? strdup(src->check_cert) : NULL;
	dst->check_key = src->check_key ? strdup(src->check_key) : NULL;
	if ((src->backends_file && !dst->backends_file) || (src->state_file && !dst->state_file) ||
	    (src->check_cacert && !dst->check_cacert) || (src->check_cert && !dst->check_cert) ||
	    (src->check_key && !dst->check_key) ||
	    kha_proxy_spec_list_copy(&dst->seeds, &src->seeds) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- backends and tables ---- */

void kha_proxy__backend_unref(struct backend *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	kha_histogram_release(&b->check_latency);
	free(b->ws);
	free(b);
}

void kha_proxy__table_unref(struct table *t)
{
	if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < t->n; i++)
		kha_proxy__backend_unref(t->b[i]);
	free(t);
}

static struct backend *backend_find(struct kha_proxy *p, const char *name)
{
	for (struct backend *b = p->backends; b; b = b->next)
		if (!b->removed && strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

static int backend_new(struct kha_proxy *p, const struct kha_proxy_spec *spec, unsigned origin,
		       struct backend **ret)
{
	struct backend *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return -ENOMEM;
	r = kha_resolve_hostport(spec->addr, &b->addr, &b->addrlen);
	if (r < 0) {
		free(b);
		return r;
	}
	/* NAT mode has no worker: one row that stays zero */
	b->ws = aligned_alloc(CACHELINE, (p->nworkers ? p->nworkers : 1) * sizeof(*b->ws));
	if (!b->ws || kha_histogram_init(&b->check_latency, latency_bounds,
					 KHA_ARRAY_SIZE(latency_bounds)) < 0) {
		free(b->ws);
		free(b);
		return -ENOMEM;
	}
	memset(b->ws, 0, (p->nworkers ? p->nworkers : 1) * sizeof(*b->ws));
	b->refs = 1; /* the control list's */
	b->p = p;
	b->nworkers = p->nworkers;
	snprintf(b->name, sizeof(b->name), "%s", spec->addr);
	b->weight = spec->weight;
	b->origin = origin;
	kha_proxy_health_init(&b->health, p->cfg.fall, p->cfg.rise);
	b->state = b->health.state;
	b->state_since_us = kha_now_us();
	snprintf(b->last_result, sizeof(b->last_result), "none");
	r = kha_proxy__checker_start(b);
	if (r < 0) {
		kha_proxy__backend_unref(b);
		return r;
	}
	b->next = p->backends;
	p->backends = b;
	*ret = b;
	return 0;
}

/* Frees removed backends nobody uses any more (only the control list holds them). */
static void backends_gc(struct kha_proxy *p)
{
	struct backend **pp = &p->backends;

	while (*pp) {
		struct backend *b = *pp;
		if (b->removed && __atomic_load_n(&b->refs, __ATOMIC_ACQUIRE) == 1) {
			*pp = b->next;
			kha_proxy__backend_unref(b);
		} else {
			pp = &b->next;
		}
	}
}

static void publish(struct kha_proxy *p)
{
	size_t n = 0, i = 0;
	struct table *t;

	for (struct backend *b = p->backends; b; b = b->next)
		n += !b->removed;
	t = calloc(1, sizeof(*t) + n * sizeof(t->b[0]));
	if (!t) {
		kha_error("cannot publish the backend set", "error=%s", "out of memory");
		return;
	}
	t->refs = 1;
	t->n = n;
	/* the list is newest first: publish in the order backends were added */
	for (struct backend *b = p->backends; b; b = b->next) {
		if (b->removed)
			continue;
		__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
		t->b[n - 1 - i++] = b;
	}
	for (unsigned k = 0; k < p->nworkers; k++) {
		struct worker *w = &p->workers[k];
		if (!w->started) {
			/* the thread is not running yet: hand the table over directly */
			struct kha_proxy_candidate *cand = calloc(n ? n : 1, sizeof(*cand));
			if (!cand)
				continue;
			free(w->cand);
			w->cand = cand;
			__atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
			if (w->table)
				kha_proxy__table_unref(w->table);
			w->table = t;
		} else if (kha_proxy__worker_post_table(w, t) < 0) {
			kha_error("cannot publish the backend set", "worker=%u", k);
		}
	}
	if (p->table)
		kha_proxy__table_unref(p->table);
	p->table = t;
	backends_gc(p);
	if (p->nat)
		kha_proxy__nat_publish(p);
}

/*
 * Makes the live backends match file ∪ discovered (or the seeds when that is empty): new ones
 * are created and checked at once, missing ones are retired (no new connection; their
 * established connections finish), remaining ones keep their state and connections.
 */
static void sync_membership(struct kha_proxy *p, const char *why)
{
	struct kha_proxy_spec_list want = {};
	unsigned *origin = NULL;
	bool changed = false;
	size_t nlive = 0;

	for (size_t i = 0; i < p->file_specs.n; i++)
		if (kha_proxy_spec_list_add(&want, &p->file_specs.v[i]) < 0)
			goto oom;
	for (size_t i = 0; i < p->disc_specs.n; i++)
		if (kha_proxy_spec_list_add(&want, &p->disc_specs.v[i]) < 0)
			goto oom;
	if (want.n == 0 && kha_proxy_spec_list_copy(&want, &p->cfg.seeds) < 0)
		goto oom;
	origin = calloc(want.n ? want.n : 1, sizeof(*origin));
	if (!origin)
		goto oom;
	for (size_t i = 0; i < want.n; i++) {
		for (size_t k = 0; k < p->file_specs.n; k++)
			if (strcmp(p->file_specs.v[k].addr, want.v[i].addr) == 0)
				origin[i] |= ORIGIN_FILE;
		for (size_t k = 0; k < p->disc_specs.n; k++)
			if (strcmp(p->disc_specs.v[k].addr, want.v[i].addr) == 0)
				origin[i] |= ORIGIN_DISCOVERED;
		if (!origin[i])
			origin[i] = ORIGIN_SEED;
	}
	/* retire those not wanted */
	for (struct backend *b = p->backends; b; b = b->next) {
		bool keep = false;
		if (b->removed)
			continue;
		for (size_t i = 0; i < want.n && !keep; i++)
			keep = strcmp(want.v[i].addr, b->name) == 0;
		if (!keep) {
			b->removed = true;
			kha_proxy__checker_stop(b);
			changed = true;
			kha_info("backend removed", "backend=%s reason=%s active=%u",
				 KHA_LOGQ(b->name), why,
				 __atomic_load_n(&b->active, __ATOMIC_RELAXED));
		}
	}
	for (size_t i = 0; i < want.n; i++) {
		struct backend *b = backend_find(p, want.v[i].addr);
		int r;
		if (b) {
			if (b->weight != want.v[i].weight) {
				__atomic_store_n(&b->weight, want.v[i].weight, __ATOMIC_RELAXED);
				changed = true;
			}
			b->origin = origin[i];
			nlive++;
			continue;
		}
		r = backend_new(p, &want.v[i], origin[i], &b);
		if (r < 0) {
			kha_warn("backend ignored", "backend=%s error=%s", KHA_LOGQ(want.v[i].addr),
				 KHA_LOGQ(r == -EHOSTUNREACH ? "cannot resolve" : strerror(-r)));
			continue;
		}
		nlive++;
		changed = true;
		kha_info("backend added", "backend=%s weight=%u reason=%s", KHA_LOGQ(b->name),
			 b->weight, why);
	}
	if (changed || !p->table)
		publish(p);
	if (nlive == 0)
		kha_warn("no usable backend", "reason=%s", why);
	free(origin);
	kha_proxy_spec_list_release(&want);
	return;
oom:
	free(origin);
	kha_proxy_spec_list_release(&want);
	kha_error("cannot update backends", "error=%s", "out of memory");
}

/* ---- health ---- */

void kha_proxy__health_event(struct backend *b, enum kha_proxy_event ev, const char *why)
{
	struct kha_proxy *p = b->p;
	enum kha_proxy_state old = b->health.state;
	char q[256];

	if (b->removed)
		return;
	if (kha_proxy_health_apply(&b->health, ev)) {
		enum kha_proxy_state now = b->health.state;
		__atomic_store_n(&b->state, (int)now, __ATOMIC_RELEASE);
		b->state_since_us = kha_now_us();
		/* losing a backend is worth a warning; the rest is information */
		kha_log(now == KHA_PROXY_DOWN ? KHA_LOG_WARN : KHA_LOG_INFO,
			"backend state changed", "backend=%s from=%s to=%s reason=%s",
			KHA_LOGQ(b->name), kha_proxy_state_name(old), kha_proxy_state_name(now),
			kha_log_quote(q, sizeof(q), why));
		if (now == KHA_PROXY_DOWN && p->cfg.close_on_dead)
			for (unsigned k = 0; k < p->nworkers; k++)
				kha_ignore(kha_proxy__worker_post_close_backend(&p->workers[k], b));
		if (p->nat)
			kha_proxy__nat_state_changed(p, b);
	}
	if (b->health.check_now)
		kha_proxy__checker_now(b);
}

static void on_passive(struct kha_loop *loop, void *userdata)
{
	struct backend *b = userdata;
	uint32_t n;

	(void)loop;
	if (b->p->closing) {
		kha_proxy__backend_unref(b);
		return;
	}
	__atomic_store_n(&b->passive_posted, 0, __ATOMIC_RELEASE);
	n = __atomic_exchange_n(&b->passive_pending, 0, __ATOMIC_ACQ_REL);
	if (n)
		kha_proxy__health_event(b, KHA_PROXY_EV_PASSIVE,
					"connect failed, reset or no first byte in time");
	kha_proxy__backend_unref(b);
}

void kha_proxy__report_passive(struct worker *w, struct backend *b)
{
	__atomic_store_n(&b->failing, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&b->passive_pending, 1, __ATOMIC_ACQ_REL);
	if (__atomic_exchange_n(&b->passive_posted, 1, __ATOMIC_ACQ_REL))
		return; /* one notification in flight is enough: it reads the count */
	__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
	if (kha_loop_post(w->p->loop, on_passive, b) < 0) {
		__atomic_store_n(&b->passive_posted, 0, __ATOMIC_RELEASE);
		kha_proxy__backend_unref(b);
	}
}

/* ---- stop ---- */

static void finish_stop(struct kha_proxy *p)
{
	for (unsigned k = 0; k < p->nworkers; k++)
		kha_ignore(kha_proxy__worker_post_stop(&p->workers[k]));
	kha_loop_quit(p->loop, 0);
}

static void on_worker_drained(struct kha_loop *loop, void *userdata)
{
	struct kha_proxy *p = userdata;

	(void)loop;
	if (p->closing)
		return;
	if (++p->drained_workers == p->nworkers) {
		kha_info("drained", "connections=%d", 0);
		finish_stop(p);
	}
}

void kha_proxy__report_drained(struct worker *w)
{
	if (w->drained_reported)
		return;
	w->drained_reported = true;
	kha_ignore(kha_loop_post(w->p->loop, on_worker_drained, w->p));
}

static void drain_timeout(struct kha_loop_source *src, void *userdata)
{
	struct kha_proxy *p = userdata;

	(void)src;
	kha_info("drain timeout, closing remaining connections", "drained_workers=%u",
		 p->drained_workers);
	finish_stop(p);
}

static void begin_drain(struct kha_proxy *p, const char *why)
{
	char d[32];

	if (p->draining) {
		kha_info("second stop request, closing now", "reason=%s", why);
		finish_stop(p);
		return;
	}
	p->draining = true;
	if (p->nat) {
		/* established connections live in conntrack, not in kha: nothing to drain */
		kha_info("stopping", "reason=%s", why);
		finish_stop(p);
		return;
	}
	kha_info("stopping: no new connections, draining", "reason=%s drain_timeout=%s", why,
		 kha_format_duration(d, sizeof(d), p->cfg.drain_timeout_us));
	for (unsigned k = 0; k < p->nworkers; k++)
		kha_ignore(kha_proxy__worker_post_drain(&p->workers[k]));
	if (kha_loop_add_timer(p->loop, p->cfg.drain_timeout_us, 0, drain_timeout, p,
			       &p->drain_timer) < 0)
		finish_stop(p);
}

static void on_stop_request(struct kha_loop *loop, void *userdata)
{
	struct kha_proxy *p = userdata;

	(void)loop;
	if (!p->closing)
		begin_drain(p, "stop requested");
}

void kha_proxy_stop(struct kha_proxy *p)
{
	kha_ignore(kha_loop_post(p->loop, on_stop_request, p));
}

static int validate(const struct kha_proxy_config *c, struct kha_diag *d);

/* ---- membership sources ---- */

static void reload_file(struct kha_proxy *p, const char *why)
{
	struct kha_proxy_spec_list l = {};
	struct kha_diag d = {};
	char q[KHA_DIAG_MAX + 8];

	if (!p->cfg.backends_file)
		return;
	if (kha_proxy_backends_load(p->cfg.backends_file, &l, &d) < 0) {
		kha_error("backends file not applied, keeping the current backends",
			  "reason=%s error=%s", why, kha_log_quote(q, sizeof(q), d.msg));
		return;
	}
	p->reloads++;
	if (kha_proxy_spec_list_equal(&l, &p->file_specs)) {
		kha_proxy_spec_list_release(&l);
		return;
	}
	kha_proxy_spec_list_release(&p->file_specs);
	p->file_specs = l;
	kha_info("backends file applied", "file=%s backends=%zu reason=%s",
		 KHA_LOGQ(p->cfg.backends_file), p->file_specs.n, why);
	sync_membership(p, why);
}

static void unwatch_file(struct kha_proxy *p)
{
	kha_loop_source_remove(p->inotify_src);
	kha_loop_source_remove(p->reload_timer);
	p->inotify_src = p->reload_timer = NULL;
	if (p->inotify_fd >= 0)
		close(p->inotify_fd);
	p->inotify_fd = -1;
	free(p->file_dir);
	free(p->file_base);
	p->file_dir = p->file_base = NULL;
}

static int watch_file(struct kha_proxy *p, struct kha_diag *d);

static void append(char *buf, size_t size, const char *word)
{
	size_t n = strlen(buf);

	snprintf(buf + n, size - n, "%s", word);
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* A new backends file path: read it (keeping the current set if it cannot be read), watch it. */
static void switch_file(struct kha_proxy *p)
{
	struct kha_diag d = {};
	char q[KHA_DIAG_MAX + 8];

	unwatch_file(p);
	if (!p->cfg.backends_file) {
		kha_proxy_spec_list_release(&p->file_specs);
		p->have_file = false;
		return;
	}
	p->have_file = true;
	reload_file(p, "reload");
	if (watch_file(p, &d) < 0)
		kha_error("backends file not watched: changes need a SIGHUP", "error=%s",
			  kha_log_quote(q, sizeof(q), d.msg));
}

int kha_proxy_reconfigure(struct kha_proxy *p, const struct kha_proxy_config *cfg,
			  struct kha_diag *d)
{
	struct kha_proxy_config c;
	char kept[64] = "";
	bool file_changed;
	int r;

	r = validate(cfg, d);
	if (r < 0)
		return r;
	if (cfg->check != KHA_PROXY_CHECK_TCP) {
		r = kha_proxy__checks_need_curl(p, d);
		if (r < 0)
			return r;
	}
	if (config_copy(&c, cfg) < 0) {
		kha_proxy_config_release(&c);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	/* what a running proxy cannot change: kept, with a warning */
	if (strcmp(c.listen, p->cfg.listen) != 0) {
		memcpy(c.listen, p->cfg.listen, sizeof(c.listen));
		append(kept, sizeof(kept), " listen");
	}
	if (c.workers != p->cfg.workers) {
		c.workers = p->cfg.workers;
		append(kept, sizeof(kept), " workers");
	}
	if (strcmp(c.metrics_addr, p->cfg.metrics_addr) != 0) {
		memcpy(c.metrics_addr, p->cfg.metrics_addr, sizeof(c.metrics_addr));
		append(kept, sizeof(kept), " metrics-addr");
	}
	if (c.mode != p->cfg.mode || c.nat_prerouting != p->cfg.nat_prerouting ||
	    strcmp(c.nat_name, p->cfg.nat_name) != 0) {
		c.mode = p->cfg.mode;
		c.nat_prerouting = p->cfg.nat_prerouting;
		memcpy(c.nat_name, p->cfg.nat_name, sizeof(c.nat_name));
		append(kept, sizeof(kept), " mode/nat");
	}
	if (kept[0])
		kha_warn("configuration keys not applied until a restart", "keys=\"%s\"", kept + 1);
	file_changed = !str_eq(c.backends_file, p->cfg.backends_file);
	kha_proxy_config_release(&p->cfg);
	p->cfg = c;

	/* the data path: each worker takes its copy at its next loop turn */
	for (unsigned k = 0; k < p->nworkers; k++) {
		struct worker *w = &p->workers[k];
		struct dpconf dp;
		kha_proxy__dpconf_from(&dp, &p->cfg);
		if (!w->started)
			w->dp = dp;
		else if (kha_proxy__worker_post_dpconf(w, &dp) < 0)
			kha_error("data path settings not applied", "worker=%u", k);
	}
	/* checks: new settings, the certificate files read again, every backend checked now */
	for (struct backend *b = p->backends; b; b = b->next) {
		if (b->removed)
			continue;
		b->health.fall = p->cfg.fall;
		b->health.rise = p->cfg.rise;
		kha_proxy__checker_stop(b);
		r = kha_proxy__checker_start(b);
		if (r < 0)
			kha_error("health checks not restarted", "backend=%s error=\"%s\"",
				  KHA_LOGQ(b->name), strerror(-r));
	}
	/* membership: seeds, the backends file */
	if (file_changed)
		switch_file(p);
	else
		reload_file(p, "SIGHUP");
	sync_membership(p, "reload");
	if (p->nat) /* the balancing may have changed */
		kha_proxy__nat_publish(p);
	return 0;
}

void kha_proxy_set_reload(struct kha_proxy *p, kha_proxy_reload_fn fn, void *userdata)
{
	p->reload_fn = fn;
	p->reload_userdata = userdata;
}

static void reload_config(struct kha_proxy *p)
{
	struct kha_proxy_config cfg;
	struct kha_diag d = {};
	char q[KHA_DIAG_MAX + 8];
	int r;

	kha_proxy_config_init_mode(&cfg, p->cfg.mode);
	r = p->reload_fn(p->reload_userdata, &cfg, &d);
	if (r == 0)
		r = kha_proxy_reconfigure(p, &cfg, &d);
	kha_proxy_config_release(&cfg);
	if (r < 0) {
		p->config_reload_failures++;
		kha_error("configuration not reloaded, keeping the running one", "error=%s",
			  kha_log_quote(q, sizeof(q), d.msg));
		return;
	}
	p->config_reloads++;
	kha_info("configuration reloaded", "backends=%zu", p->table ? p->table->n : (size_t)0);
}

static void on_signal(struct kha_loop_source *src, int signo, void *userdata)
{
	struct kha_proxy *p = userdata;

	(void)src;
	if (signo == SIGHUP && p->reload_fn)
		reload_config(p);
	else if (signo == SIGHUP)
		reload_file(p, "SIGHUP");
	else
		begin_drain(p, signo == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void reload_timer(struct kha_loop_source *src, void *userdata)
{
	(void)src;
	reload_file(userdata, "file-changed");
}

static void on_inotify(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_proxy *p = userdata;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)src;
	(void)events;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *ptr = buf; ptr < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)ptr;
			if (ev->len && strcmp(ev->name, p->file_base) == 0)
				kha_loop_timer_set(p->reload_timer, 50 * KHA_USEC_PER_MSEC, 0);
			ptr += sizeof(*ev) + ev->len;
		}
	}
}

static int watch_file(struct kha_proxy *p, struct kha_diag *d)
{
	char *tmp1 = strdup(p->cfg.backends_file), *tmp2 = strdup(p->cfg.backends_file);
	int r = -ENOMEM;

	if (!tmp1 || !tmp2)
		goto out;
	p->file_dir = strdup(dirname(tmp1));
	p->file_base = strdup(basename(tmp2));
	if (!p->file_dir || !p->file_base)
		goto out;
	p->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (p->inotify_fd < 0 || inotify_add_watch(p->inotify_fd, p->file_dir,
						   IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE |
							   IN_DELETE | IN_MOVED_FROM) < 0) {
		r = kha_diag_set(d, errno, "cannot watch %s: %s", p->file_dir, strerror(errno));
		goto out;
	}
	r = kha_loop_add_io(p->loop, p->inotify_fd, EPOLLIN, 0, on_inotify, p, &p->inotify_src);
	if (r == 0)
		r = kha_loop_add_timer(p->loop, 0, 0, reload_timer, p, &p->reload_timer);
	if (r == 0)
		kha_loop_timer_stop(p->reload_timer);
out:
	free(tmp1);
	free(tmp2);
	return r;
}

static void on_discovered(struct kha_loop *loop, void *userdata)
{
	struct kha_proxy *p = userdata;
	struct kha_proxy_spec_list l;
	struct kha_diag d = {};

	(void)loop;
	pthread_mutex_lock(&p->disc_lock);
	l = p->disc_pending;
	p->disc_pending = (struct kha_proxy_spec_list){};
	p->disc_posted = false;
	pthread_mutex_unlock(&p->disc_lock);
	if (p->closing) {
		kha_proxy_spec_list_release(&l);
		return;
	}
	if (p->have_disc && kha_proxy_spec_list_equal(&l, &p->disc_specs)) {
		kha_proxy_spec_list_release(&l);
		return;
	}
	kha_proxy_spec_list_release(&p->disc_specs);
	p->disc_specs = l;
	p->have_disc = true;
	kha_info("discovered backends", "backends=%zu", l.n);
	if (p->cfg.state_file && l.n > 0 &&
	    kha_proxy_backends_save(p->cfg.state_file, &p->disc_specs, &d) < 0)
		kha_warn("cannot save the state file", "error=%s", KHA_LOGQ(d.msg));
	sync_membership(p, "discovery");
}

int kha_proxy_set_discovered(struct kha_proxy *p, const struct kha_proxy_spec *specs, size_t n)
{
	struct kha_proxy_spec_list l = {};
	bool post;

	for (size_t i = 0; i < n; i++) {
		if (kha_proxy_spec_list_add(&l, &specs[i]) < 0) {
			kha_proxy_spec_list_release(&l);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&p->disc_lock);
	kha_proxy_spec_list_release(&p->disc_pending);
	p->disc_pending = l;
	post = !p->disc_posted;
	p->disc_posted = true;
	pthread_mutex_unlock(&p->disc_lock);
	if (post && kha_loop_post(p->loop, on_discovered, p) < 0) {
		pthread_mutex_lock(&p->disc_lock);
		p->disc_posted = false;
		pthread_mutex_unlock(&p->disc_lock);
		return -ENOMEM;
	}
	return 0;
}

/* ---- admin: metrics, readiness, status ---- */

struct sums {
	struct wstats t;
	uint32_t active;
};

static void sum_backend(const struct backend *b, struct sums *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned k = 0; k < b->nworkers; k++) {
		const struct wstats *w = &b->ws[k];
		s->t.conns_total += STAT_GET(w->conns_total);
		s->t.bytes_in += STAT_GET(w->bytes_in);
		s->t.bytes_out += STAT_GET(w->bytes_out);
		s->t.connect_failures += STAT_GET(w->connect_failures);
		s->t.first_byte_timeouts += STAT_GET(w->first_byte_timeouts);
		s->t.retries += STAT_GET(w->retries);
		s->t.replays += STAT_GET(w->replays);
		s->t.dead_closed += STAT_GET(w->dead_closed);
	}
	s->active = __atomic_load_n(&b->active, __ATOMIC_RELAXED);
}

static void sum_proxy(const struct kha_proxy *p, struct pstats *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned k = 0; k < p->nworkers; k++) {
		const struct pstats *w = &p->workers[k].stats;
		s->accepted += STAT_GET(w->accepted);
		s->failed += STAT_GET(w->failed);
		s->active += STAT_GET(w->active);
		s->idle_closed += STAT_GET(w->idle_closed);
		s->accept_pauses += STAT_GET(w->accept_pauses);
		s->limit_pauses += STAT_GET(w->limit_pauses);
		s->keepalive_closed += STAT_GET(w->keepalive_closed);
	}
}

static bool is_ready(struct kha_proxy *p)
{
	if (p->draining)
		return false;
	for (struct backend *b = p->backends; b; b = b->next)
		if (!b->removed && b->health.state == KHA_PROXY_UP)
			return true;
	return false;
}

static bool ready_cb(void *userdata, char *reason, size_t size)
{
	struct kha_proxy *p = userdata;

	char why[200];

	if (is_ready(p))
		return true;
	if (p->draining)
		snprintf(reason, size, "stopping");
	else if (kha_proxy__checks_problem(p, false, why, sizeof(why)))
		snprintf(reason, size, "no backend is up: %s", why);
	else
		snprintf(reason, size, "no backend is up");
	return false;
}

#define BACKEND_COUNTER(mname, mhelp, field)                                        \
	do {                                                                        \
		kha_metrics_write_header(out, mname, mhelp, KHA_METRIC_COUNTER);    \
		i = 0;                                                              \
		for (struct backend *b = p->backends; b; b = b->next, i++) {        \
			snprintf(lbl, sizeof(lbl), "backend=\"%s\"",                \
				 kha_metrics_escape(esc, sizeof(esc), b->name));    \
			kha_metrics_write_sample(out, mname, lbl, (double)(field)); \
		}                                                                   \
	} while (0)

/* The per-backend series; s[i] holds the sums of the i-th backend of the list. */
static void write_backend_metrics(FILE *out, struct kha_proxy *p, const struct sums *s)
{
	char lbl[KHA_PROXY_ADDR_MAX * 2 + 64], esc[KHA_PROXY_ADDR_MAX * 2];
	size_t i;

	kha_metrics_write_header(out, "kha_proxy_backend_up",
				 "Whether the backend receives new connections (state up).",
				 KHA_METRIC_GAUGE);
	for (struct backend *b = p->backends; b; b = b->next) {
		snprintf(lbl, sizeof(lbl), "backend=\"%s\"",
			 kha_metrics_escape(esc, sizeof(esc), b->name));
		kha_metrics_write_sample(out, "kha_proxy_backend_up", lbl,
					 !b->removed && b->health.state == KHA_PROXY_UP);
	}
	kha_metrics_write_header(out, "kha_proxy_backend_state",
				 "Health state of the backend: 1 for the current one.",
				 KHA_METRIC_GAUGE);
	for (struct backend *b = p->backends; b; b = b->next) {
		for (int st = 0; st < KHA_PROXY_NSTATES; st++) {
			snprintf(lbl, sizeof(lbl), "backend=\"%s\",state=\"%s\"",
				 kha_metrics_escape(esc, sizeof(esc), b->name),
				 kha_proxy_state_name((enum kha_proxy_state)st));
			kha_metrics_write_sample(out, "kha_proxy_backend_state", lbl,
						 !b->removed && (int)b->health.state == st);
		}
	}
	kha_metrics_write_header(out, "kha_proxy_backend_active_connections",
				 "Client connections currently proxied to the backend.",
				 KHA_METRIC_GAUGE);
	i = 0;
	for (struct backend *b = p->backends; b; b = b->next, i++) {
		snprintf(lbl, sizeof(lbl), "backend=\"%s\"",
			 kha_metrics_escape(esc, sizeof(esc), b->name));
		kha_metrics_write_sample(out, "kha_proxy_backend_active_connections", lbl,
					 s[i].active);
	}
	BACKEND_COUNTER("kha_proxy_backend_connections_total",
			"Connections opened to the backend (including failed attempts).",
			s[i].t.conns_total);
	BACKEND_COUNTER("kha_proxy_backend_received_bytes_total",
			"Bytes received from the backend and sent to clients.", s[i].t.bytes_in);
	BACKEND_COUNTER("kha_proxy_backend_sent_bytes_total",
			"Bytes received from clients and sent to the backend.", s[i].t.bytes_out);
	BACKEND_COUNTER("kha_proxy_backend_connect_failures_total",
			"Connects to the backend that failed or timed out.",
			s[i].t.connect_failures);
	BACKEND_COUNTER(
		"kha_proxy_backend_first_byte_timeouts_total",
		"Connections on which the backend sent nothing within the first-byte timeout.",
		s[i].t.first_byte_timeouts);
	BACKEND_COUNTER("kha_proxy_backend_retries_total",
			"Client connections moved from this backend to another before it answered.",
			s[i].t.retries);
	BACKEND_COUNTER("kha_proxy_backend_replays_total",
			"Retries that replayed the client's first bytes to another backend.",
			s[i].t.replays);
	BACKEND_COUNTER("kha_proxy_backend_dead_closed_total",
			"Established connections closed because the backend was declared dead.",
			s[i].t.dead_closed);
	BACKEND_COUNTER("kha_proxy_backend_checks_total", "Active health checks run.",
			b->checks_total);
	BACKEND_COUNTER("kha_proxy_backend_check_failures_total",
			"Active health checks that failed or were not ready.", b->check_failures);
	kha_metrics_write_header(out, "kha_proxy_backend_check_duration_seconds",
				 "Duration of the active health checks.", KHA_METRIC_HISTOGRAM);
	for (struct backend *b = p->backends; b; b = b->next) {
		snprintf(lbl, sizeof(lbl), "backend=\"%s\"",
			 kha_metrics_escape(esc, sizeof(esc), b->name));
		kha_metrics_write_histogram(out, "kha_proxy_backend_check_duration_seconds", lbl,
					    &b->check_latency);
	}
}

/* The proxy-wide series. */
static void write_proxy_metrics(FILE *out, struct kha_proxy *p)
{
	struct pstats ps;

	sum_proxy(p, &ps);
	kha_metrics_write_header(out, "kha_proxy_accepted_connections_total",
				 "Client connections accepted.", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_accepted_connections_total", NULL,
				 (double)ps.accepted);
	kha_metrics_write_header(out, "kha_proxy_failed_connections_total",
				 "Client connections closed because no backend could serve them.",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_failed_connections_total", NULL,
				 (double)ps.failed);
	kha_metrics_write_header(out, "kha_proxy_idle_closed_total",
				 "Client connections closed by the idle timeout.",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_idle_closed_total", NULL, (double)ps.idle_closed);
	kha_metrics_write_header(
		out, "kha_proxy_accept_pauses_total",
		"Times accepting paused for 100ms: out of file descriptors or memory "
		"(raise LimitNOFILE).",
		KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_accept_pauses_total", NULL,
				 (double)ps.accept_pauses);
	kha_metrics_write_header(out, "kha_proxy_max_connections",
				 "Client connections served at once (--max-conns, by default from "
				 "the descriptor limit); more wait in the listen backlog.",
				 KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_proxy_max_connections", NULL,
				 (double)kha_proxy_max_conns(&p->cfg));
	kha_metrics_write_header(
		out, "kha_proxy_max_connections_reached_total",
		"Times accepting paused because --max-conns connections were open.",
		KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_max_connections_reached_total", NULL,
				 (double)ps.limit_pauses);
	kha_metrics_write_header(out, "kha_proxy_client_keepalive_closed_total",
				 "Client connections closed because TCP keep-alive probes went "
				 "unanswered (the client vanished).",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_client_keepalive_closed_total", NULL,
				 (double)ps.keepalive_closed);
	kha_metrics_write_header(out, "kha_proxy_active_connections",
				 "Client connections open now.", KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_proxy_active_connections", NULL, (double)ps.active);
	kha_metrics_write_header(out, "kha_proxy_ready", "1 while at least one backend is up.",
				 KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_proxy_ready", NULL, is_ready(p));
	kha_metrics_write_header(out, "kha_proxy_draining", "1 while stopping.", KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_proxy_draining", NULL, p->draining);
	kha_metrics_write_header(out, "kha_proxy_backends_file_reloads_total",
				 "Backends file reads (SIGHUP or change).", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_backends_file_reloads_total", NULL,
				 (double)p->reloads);
	kha_metrics_write_header(out, "kha_proxy_config_reloads_total",
				 "Configuration reloads on SIGHUP, by result.", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_config_reloads_total", "result=\"ok\"",
				 (double)p->config_reloads);
	kha_metrics_write_sample(out, "kha_proxy_config_reloads_total", "result=\"failed\"",
				 (double)p->config_reload_failures);
	kha_metrics_write_header(out, "kha_proxy_workers", "Data-path worker threads.",
				 KHA_METRIC_GAUGE);
	kha_metrics_write_sample(out, "kha_proxy_workers", NULL, p->nworkers);
}

static void collect(FILE *out, void *userdata)
{
	struct kha_proxy *p = userdata;
	char lbl[64];
	struct sums *s;
	size_t n = 0, i;
	unsigned count[KHA_PROXY_NSTATES] = {};

	backends_gc(p);
	for (struct backend *b = p->backends; b; b = b->next)
		n++;
	s = calloc(n ? n : 1, sizeof(*s));
	if (!s)
		return;
	i = 0;
	for (struct backend *b = p->backends; b; b = b->next, i++) {
		sum_backend(b, &s[i]);
		if (!b->removed)
			count[b->health.state]++;
	}
	write_backend_metrics(out, p, s);
	kha_metrics_write_header(out, "kha_proxy_backends", "Backends by health state.",
				 KHA_METRIC_GAUGE);
	for (int st = 0; st < KHA_PROXY_NSTATES; st++) {
		snprintf(lbl, sizeof(lbl), "state=\"%s\"",
			 kha_proxy_state_name((enum kha_proxy_state)st));
		kha_metrics_write_sample(out, "kha_proxy_backends", lbl, count[st]);
	}
	write_proxy_metrics(out, p);
	free(s);
}

static const char *origin_name(unsigned o)
{
	if (o & ORIGIN_FILE)
		return (o & ORIGIN_DISCOVERED) ? "file+discovered" : "file";
	if (o & ORIGIN_DISCOVERED)
		return "discovered";
	return "seed";
}

static void status_route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
			 void *userdata)
{
	struct kha_proxy *p = userdata;
	uint64_t now = kha_now_us();
	json_t *root, *arr = json_array();
	struct pstats ps;
	char *text;

	(void)req;
	backends_gc(p);
	sum_proxy(p, &ps);
	/* oldest first, the order backends were added */
	for (struct backend *b = p->backends; b; b = b->next) {
		struct sums s;
		json_t *o;
		sum_backend(b, &s);
		o = json_pack(
			"{s:s, s:I, s:s, s:b, s:s, s:f, s:{s:s, s:s, s:f, s:f}, s:I, s:I, s:I, "
			"s:I, s:I, s:I, s:I, s:I, s:I}",
			"address", b->name, "weight", (json_int_t)b->weight, "state",
			b->removed ? "removed" : kha_proxy_state_name(b->health.state), "removed",
			b->removed, "source", origin_name(b->origin), "state_age_seconds",
			(double)(now - b->state_since_us) / 1e6, "last_check", "result",
			b->last_result, "detail", b->last_detail, "latency_ms",
			b->last_latency_s * 1e3, "age_seconds",
			b->last_check_us ? (double)(now - b->last_check_us) / 1e6 : -1.0,
			"active_connections", (json_int_t)s.active, "connections_total",
			(json_int_t)s.t.conns_total, "received_bytes", (json_int_t)s.t.bytes_in,
			"sent_bytes", (json_int_t)s.t.bytes_out, "connect_failures",
			(json_int_t)s.t.connect_failures, "first_byte_timeouts",
			(json_int_t)s.t.first_byte_timeouts, "retries", (json_int_t)s.t.retries,
			"replays", (json_int_t)s.t.replays, "checks_failed",
			(json_int_t)b->check_failures);
		if (o)
			json_array_insert_new(arr, 0, o);
	}
	root = json_pack("{s:i, s:s, s:b, s:b, s:I, s:{s:I, s:I, s:I}, s:o}", "version", 1,
			 "listen", p->cfg.listen, "ready", is_ready(p), "draining", p->draining,
			 "workers", (json_int_t)p->nworkers, "connections", "active",
			 (json_int_t)ps.active, "accepted", (json_int_t)ps.accepted, "failed",
			 (json_int_t)ps.failed, "backends", arr);
	if (root) {
		char problem[600];

		json_object_set_new(root, "check_problem",
				    kha_proxy__checks_problem(p, true, problem, sizeof(problem))
					    ? json_string(problem)
					    : json_null());
	}
	if (root)
		json_object_set_new(root, "mode", json_string(p->nat ? "nat" : "userspace"));
	if (root && p->nat)
		json_object_set_new(root, "nat", kha_proxy__nat_status(p));
	text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	json_decref(root);
	if (!text) {
		resp->status = 500;
		fputs("cannot build the status\n", resp->body);
		return;
	}
	resp->content_type = "application/json";
	fprintf(resp->body, "%s\n", text);
	free(text);
}

/* ---- lifecycle ---- */

static int validate(const struct kha_proxy_config *c, struct kha_diag *d)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (!c->listen[0])
		return kha_diag_set(d, EINVAL, "no listen address (give --listen host:port)");
	if (kha_parse_sockaddr(c->listen, &ss, &len) < 0)
		return kha_diag_set(d, EINVAL, "listen address '%s': expected host:port",
				    c->listen);
	if (c->seeds.n == 0 && !c->backends_file && !c->state_file)
		return kha_diag_set(
			d, EINVAL,
			"no backends (give --backend ADDR, repeated, or --backends-file)");
	if (c->workers < 1 || c->workers > KHA_PROXY_MAX_WORKERS)
		return kha_diag_set(d, EINVAL, "--workers must be 1..%d", KHA_PROXY_MAX_WORKERS);
	if (c->fall < 1 || c->rise < 1)
		return kha_diag_set(d, EINVAL, "--check-fall and --check-rise must be at least 1");
	if (!c->connect_timeout_us || !c->check_interval_us || !c->check_timeout_us ||
	    !c->check_fast_interval_us)
		return kha_diag_set(d, EINVAL, "timeouts and intervals must be positive");
	if (c->check != KHA_PROXY_CHECK_TCP && c->check_path[0] != '/')
		return kha_diag_set(d, EINVAL, "--check-path must start with '/'");
	if (c->mode == KHA_PROXY_MODE_NAT) {
		int r = kha_proxy__nat_validate(c, d);
		if (r < 0)
			return r;
	} else if (c->balance == KHA_PROXY_RANDOM || c->balance == KHA_PROXY_SOURCE) {
		return kha_diag_set(d, EINVAL,
				    "--balance random and source need --mode nat (user space: "
				    "leastconn or roundrobin)");
	}
	if (c->mode == KHA_PROXY_MODE_NAT && c->balance == KHA_PROXY_LEASTCONN)
		return kha_diag_set(d, EINVAL,
				    "--mode nat cannot balance by least connections (the kernel "
				    "keeps no count): use random, roundrobin or source");
	if (c->check_cacert && access(c->check_cacert, R_OK) < 0)
		return kha_diag_set(d, errno, "--check-cacert %s: %s", c->check_cacert,
				    strerror(errno));
	if (c->check_cert && access(c->check_cert, R_OK) < 0)
		return kha_diag_set(d, errno, "--check-cert %s: %s", c->check_cert,
				    strerror(errno));
	if (c->check_key && access(c->check_key, R_OK) < 0)
		return kha_diag_set(d, errno, "--check-key %s: %s", c->check_key, strerror(errno));
	if (!!c->check_cert != !!c->check_key)
		return kha_diag_set(d, EINVAL, "--check-cert and --check-key go together");
	return 0;
}

static int block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The backends file and the last known backends (the state file); -EINVAL when none at all. */
static int load_backends(struct kha_proxy *p, struct kha_diag *d)
{
	int r;

	if (p->cfg.backends_file) {
		r = kha_proxy_backends_load(p->cfg.backends_file, &p->file_specs, d);
		if (r == -ENOENT && p->cfg.seeds.n > 0) {
			kha_warn("backends file missing, using the seeds until it appears",
				 "file=%s", KHA_LOGQ(p->cfg.backends_file));
		} else if (r < 0) {
			return r;
		}
		p->have_file = true;
	}
	if (p->cfg.state_file) {
		struct kha_diag sd = {};
		r = kha_proxy_backends_load(p->cfg.state_file, &p->disc_specs, &sd);
		if (r == 0 && p->disc_specs.n > 0) {
			p->have_disc = true;
			kha_info("last known backends loaded", "file=%s backends=%zu",
				 KHA_LOGQ(p->cfg.state_file), p->disc_specs.n);
		} else if (r < 0 && r != -ENOENT) {
			kha_warn("state file ignored", "error=%s", KHA_LOGQ(sd.msg));
		}
	}
	if (p->cfg.seeds.n == 0 && p->file_specs.n == 0 && p->disc_specs.n == 0 &&
	    !p->cfg.backends_file)
		return kha_diag_set(d, EINVAL, "no backends (state file %s is empty)",
				    p->cfg.state_file);
	return 0;
}

/* The metrics registry and, with --metrics-addr, the admin server (/metrics, /status...). */
static int admin_new(struct kha_proxy *p, struct kha_diag *d)
{
	int r;

	r = kha_metrics_new(&p->metrics);
	if (r == 0)
		r = kha_metrics_add_collector(p->metrics, collect, p);
	if (r < 0) {
		kha_diag_set(d, ENOMEM, "out of memory");
		return r;
	}
	if (p->cfg.metrics_addr[0]) {
		r = kha_httpd_new(p->loop, p->cfg.metrics_addr, p->metrics, d, &p->httpd);
		if (r < 0) {
			kha_diag_prefix(d, "--metrics-addr");
			return r;
		}
		if (kha_httpd_route(p->httpd, "/status", status_route, p) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		kha_httpd_set_ready(p->httpd, ready_cb, p);
	}
	return 0;
}

int kha_proxy_new(const struct kha_proxy_config *cfg, struct kha_diag *d, struct kha_proxy **ret)
{
	struct kha_proxy *p;
	int r;

	r = validate(cfg, d);
	if (r < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (!p)
		return kha_diag_set(d, ENOMEM, "out of memory");
	p->inotify_fd = -1;
	pthread_mutex_init(&p->disc_lock, NULL);
	p->started_us = kha_now_us();
	r = config_copy(&p->cfg, cfg);
	if (r < 0) {
		kha_diag_set(d, ENOMEM, "out of memory");
		goto fail;
	}
	p->nworkers = cfg->mode == KHA_PROXY_MODE_NAT ? 0 : cfg->workers;
	p->workers = calloc(p->nworkers ? p->nworkers : 1, sizeof(*p->workers));
	if (!p->workers) {
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned k = 0; k < p->nworkers; k++)
		p->workers[k].lfd = -1;
	r = block_signals();
	if (r == 0)
		r = kha_loop_new(&p->loop);
	if (r < 0) {
		kha_diag_set(d, -r, "cannot create the event loop: %s", strerror(-r));
		goto fail;
	}
	/* files first: a bad file must fail before any socket is bound */
	r = load_backends(p, d);
	if (r < 0)
		goto fail;
	for (unsigned k = 0; k < p->nworkers; k++) {
		int fd = kha_proxy__worker_listen(&p->cfg, p->nworkers > 1, d);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		r = kha_proxy__worker_init(&p->workers[k], p, k, fd);
		if (r < 0) {
			close(fd);
			kha_diag_set(d, -r, "cannot start worker %u: %s", k, strerror(-r));
			goto fail;
		}
	}
	r = admin_new(p, d);
	if (r < 0)
		goto fail;
	if (p->cfg.mode == KHA_PROXY_MODE_NAT) {
		r = kha_proxy__nat_new(p, d, &p->nat);
		if (r == 0)
			r = kha_proxy__nat_metrics(p);
		if (r < 0)
			goto fail;
	}
	r = kha_proxy__checks_init(p, d);
	if (r < 0)
		goto fail;
	if (p->cfg.backends_file) {
		r = watch_file(p, d);
		if (r < 0)
			goto fail;
	}
	sync_membership(p, "start");
	if (p->nat) {
		r = kha_proxy__nat_started(p, d);
		if (r < 0)
			goto fail;
	}
	*ret = p;
	return 0;
fail:
	kha_proxy_free(p);
	return r < 0 ? r : -EINVAL;
}

int kha_proxy_run(struct kha_proxy *p)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	char addrs[1024] = "";
	size_t off = 0;
	int r;

	r = kha_loop_add_signals(p->loop, sigs, KHA_ARRAY_SIZE(sigs), on_signal, p);
	if (r < 0)
		return r;
	for (unsigned k = 0; k < p->nworkers; k++) {
		struct worker *w = &p->workers[k];
		r = -pthread_create(&w->thread, NULL, kha_proxy__worker_main, w);
		if (r < 0) {
			for (unsigned j = 0; j < k; j++)
				kha_ignore(kha_proxy__worker_post_stop(&p->workers[j]));
			for (unsigned j = 0; j < k; j++)
				pthread_join(p->workers[j].thread, NULL);
			return r;
		}
		w->started = true;
	}
	for (size_t i = 0; p->table && i < p->table->n && off < sizeof(addrs) - 1; i++)
		off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s", i ? "," : "",
					p->table->b[i]->name);
	kha_info("kha proxy started", "listen=%s backends=%s workers=%u max_conns=%u metrics=%s",
		 KHA_LOGQ(p->cfg.listen), KHA_LOGQ(addrs), p->nworkers,
		 kha_proxy_max_conns(&p->cfg),
		 KHA_LOGQ(p->cfg.metrics_addr[0] ? p->cfg.metrics_addr : "off"));
	r = kha_loop_run(p->loop);
	for (unsigned k = 0; k < p->nworkers; k++) {
		pthread_join(p->workers[k].thread, NULL);
		p->workers[k].started = false;
	}
	kha_info("kha proxy stopped", "connections_left=%d", 0);
	return r;
}

void kha_proxy_free(struct kha_proxy *p)
{
	if (!p)
		return;
	p->closing = true;
	if (p->workers) {
		for (unsigned k = 0; k < p->nworkers; k++) {
			if (p->workers[k].p)
				kha_proxy__worker_release(&p->workers[k]);
			else if (p->workers[k].lfd >= 0)
				close(p->workers[k].lfd);
		}
	}
	if (p->loop) /* notifications from the workers hold backend refs */
		kha_ignore(kha_loop_run_once(p->loop, 0));
	for (struct backend *b = p->backends; b; b = b->next)
		kha_proxy__checker_stop(b);
	if (p->table)
		kha_proxy__table_unref(p->table);
	while (p->backends) {
		struct backend *b = p->backends;
		p->backends = b->next;
		kha_proxy__backend_unref(b);
	}
	kha_proxy__nat_free(p->nat);
	kha_httpd_free(p->httpd);
	kha_metrics_free(p->metrics);
	kha_proxy__checks_release(p);
	kha_loop_free(p->loop);
	if (p->inotify_fd >= 0)
		close(p->inotify_fd);
	free(p->file_dir);
	free(p->file_base);
	free(p->workers);
	kha_proxy_spec_list_release(&p->file_specs);
	kha_proxy_spec_list_release(&p->disc_specs);
	kha_proxy_spec_list_release(&p->disc_pending);
	pthread_mutex_destroy(&p->disc_lock);
	kha_proxy_config_release(&p->cfg);
	free(p);
}
