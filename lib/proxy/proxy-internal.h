/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the control thread (proxy.c), the health checks (check.c) and the data
 * path (worker.c). See docs/internals/proxy.md for the invariants.
 *
 * Thread ownership:
 * - struct backend: created and mutated by the control thread; workers read `state` and
 *   `weight` (atomic loads), update `active` (atomic) and their own row of `ws` (one writer
 *   each, relaxed stores; the control thread sums the rows at scrape time). Lifetime by atomic
 *   refcount: the control list, every table and every connection hold one.
 * - struct table: immutable once published; refcounted.
 * - struct worker: its loop thread only, except `stats` (read by the control thread) and the
 *   fields set before the thread starts.
 */
#ifndef KHA_PROXY_INTERNAL_H
#define KHA_PROXY_INTERNAL_H

#include <pthread.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include "kha/httpd.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/proxy.h"

#define CACHELINE 64

/* counters of one worker for one backend (single writer) */
struct wstats {
	uint64_t conns_total;
	uint64_t bytes_in;  /* from the backend to clients */
	uint64_t bytes_out; /* from clients to the backend */
	uint64_t connect_failures;
	uint64_t first_byte_timeouts;
	uint64_t retries; /* client connections moved away from this backend */
	uint64_t replays; /* of which after bytes had been sent (first-byte replay) */
	uint64_t dead_closed;
} __attribute__((aligned(CACHELINE)));

/* counters of one worker for the whole proxy (single writer) */
struct pstats {
	uint64_t accepted;
	uint64_t failed; /* client connections closed without any backend answering */
	uint64_t active;
	uint64_t idle_closed;
	uint64_t accept_pauses;	   /* out of file descriptors or memory: accepting paused */
	uint64_t limit_pauses;	   /* at --max-conns: accepting paused */
	uint64_t keepalive_closed; /* clients gone silent, found by TCP keep-alive */
} __attribute__((aligned(CACHELINE)));

#define STAT_ADD(field, n) __atomic_store_n(&(field), (field) + (n), __ATOMIC_RELAXED)
#define STAT_GET(field)	   __atomic_load_n(&(field), __ATOMIC_RELAXED)

enum origin {
	ORIGIN_SEED = 1 << 0,
	ORIGIN_FILE = 1 << 1,
	ORIGIN_DISCOVERED = 1 << 2,
};

struct checker;
struct kha_proxy_nat;

/*
 * Why checks fail when the backend is fine and kha's configuration is not: logged at error level
 * once per cause (again after it has cleared), shown in /status and in the /readyz reason.
 */
enum check_cause {
	CAUSE_NONE,
	CAUSE_TLS_TRUST,   /* the backend's certificate is not trusted */
	CAUSE_CACERT_FILE, /* --check-cacert cannot be read */
	CAUSE_CLIENT_CERT, /* our client certificate is unusable, missing or refused */
	CAUSE_HTTP_AUTH,   /* 401/403: the check path is not open to the checks */
	CAUSE_N,
};

struct backend {
	int refs; /* atomic */
	char name[KHA_PROXY_ADDR_MAX];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint32_t weight;	  /* atomic */
	int state;		  /* atomic, enum kha_proxy_state */
	uint32_t active;	  /* atomic */
	uint32_t passive_pending; /* atomic: passive failures not yet seen by control */
	int failing; /* atomic: a connect or first byte failed since it last answered (workers set
		      * it; an answer on the data path or a check that reached it clears it) */
	int passive_posted; /* atomic: a notification is on its way to control */
	struct wstats *ws;  /* [nworkers] */
	unsigned nworkers;

	/* control thread only */
	struct kha_proxy *p;
	bool removed;
	unsigned origin;
	struct kha_proxy_health health;
	struct checker *chk;
	struct kha_histogram check_latency;
	uint64_t checks_total, check_failures;
	uint64_t last_check_us; /* monotonic time of the last result, 0: none */
	double last_latency_s;
	char last_result[16]; /* ok | not-ready | failed */
	char last_detail[160];
	enum check_cause cause; /* of the last check: a configuration reason, or CAUSE_NONE */
	uint64_t state_since_us;
	struct backend *next; /* control's list of every live backend object */
};

struct table {
	int refs; /* atomic */
	size_t n;
	struct backend *b[];
};

struct buf {
	struct buf *next;
	char data[];
};

struct conn;

/* What the data path reads of the configuration: each worker has its own copy, replaced by a
 * message when the configuration is reloaded. */
struct dpconf {
	enum kha_proxy_balance balance;
	unsigned retries;
	uint64_t connect_timeout_us;
	uint64_t first_byte_timeout_us;
	uint64_t idle_timeout_us;
	uint64_t tcp_user_timeout_us;
	uint64_t keepalive_idle_us, keepalive_interval_us;
	unsigned keepalive_count;
	uint64_t client_keepalive_idle_us;
	uint32_t max_conns; /* kha_proxy_max_conns() */
};

void kha_proxy__dpconf_from(struct dpconf *dp, const struct kha_proxy_config *cfg);

struct worker {
	struct kha_proxy *p;
	unsigned id;
	struct dpconf dp;
	pthread_t thread;
	bool started;
	struct kha_loop *loop;
	int lfd;
	struct kha_loop_source *lsrc, *sweep, *accept_timer;
	struct table *table;
	struct kha_proxy_candidate *cand; /* parallel to table->b */
	unsigned cursor;
	struct conn *conns; /* doubly linked */
	size_t nconns;
	struct buf *free_bufs;
	size_t nfree_bufs;
	bool draining;
	bool drained_reported;
	bool limit_paused; /* accepting paused at --max-conns: resumed when one of ours closes */
	struct pstats stats;
	struct wstats no_backend; /* where a starved connection's counters go (never read) */
};

struct kha_proxy {
	struct kha_proxy_config cfg;
	struct kha_loop *loop; /* control */
	struct kha_metrics *metrics;
	struct kha_httpd *httpd;
	struct worker *workers;
	unsigned nworkers;
	int listen_family;

	struct backend *backends; /* every live backend object (control) */
	struct table *table;	  /* current (control holds a ref) */
	struct kha_proxy_spec_list file_specs, disc_specs;
	bool have_file, have_disc;

	pthread_mutex_t disc_lock; /* guards disc_pending */
	struct kha_proxy_spec_list disc_pending;
	bool disc_posted;

	CURLM *multi;
	struct kha_loop_source *curl_timer;

	int inotify_fd;
	struct kha_loop_source *inotify_src, *reload_timer;
	char *file_dir, *file_base;

	bool draining;
	bool closing; /* kha_proxy_free() runs: late notifications only release what they hold */
	unsigned causes_logged; /* bit per enum check_cause already logged */
	uint32_t conns;		/* atomic: client connections of every worker (--max-conns) */
	unsigned drained_workers;
	struct kha_loop_source *drain_timer;
	uint64_t reloads;
	uint64_t config_reloads, config_reload_failures;
	struct kha_proxy_nat *nat; /* --mode nat: the kernel's data path (nat.c), else NULL */
	kha_proxy_reload_fn reload_fn;
	void *reload_userdata;
	uint64_t started_us;
};

/* backends and tables (proxy.c) */
void kha_proxy__backend_unref(struct backend *b);
void kha_proxy__table_unref(struct table *t);
/* from a worker: report a passive failure of b to the control thread */
void kha_proxy__report_passive(struct worker *w, struct backend *b);
/* from a worker: it has no connection left while draining */
void kha_proxy__report_drained(struct worker *w);

/* data path (worker.c) */
int kha_proxy__worker_init(struct worker *w, struct kha_proxy *p, unsigned id, int lfd);
void kha_proxy__worker_release(struct worker *w);
void *kha_proxy__worker_main(void *arg);
/* control -> worker messages, run through kha_loop_post */
int kha_proxy__worker_post_table(struct worker *w, struct table *t); /* takes a table ref */
int kha_proxy__worker_post_close_backend(struct worker *w, struct backend *b);
int kha_proxy__worker_post_drain(struct worker *w);
int kha_proxy__worker_post_stop(struct worker *w);
int kha_proxy__worker_post_dpconf(struct worker *w, const struct dpconf *dp);
/* a listening socket for the data path, bound to cfg->listen */
int kha_proxy__worker_listen(const struct kha_proxy_config *cfg, bool reuseport,
			     struct kha_diag *d);

/* health checks (check.c) */
int kha_proxy__checks_init(struct kha_proxy *p, struct kha_diag *d);
/* the libcurl multi handle of HTTP(S) checks, created on first need */
int kha_proxy__checks_need_curl(struct kha_proxy *p, struct kha_diag *d);
void kha_proxy__checks_release(struct kha_proxy *p);
int kha_proxy__checker_start(struct backend *b);
void kha_proxy__checker_stop(struct backend *b);
void kha_proxy__checker_now(struct backend *b);
/*
 * The configuration problem of the checks, if any backend's last check failed for one: writes
 * one line (the cause, what to do; with detail, also what the check saw) and returns true.
 */
bool kha_proxy__checks_problem(const struct kha_proxy *p, bool detail, char *buf, size_t size);
/* control: applies a health event to b, publishes the state, acts on DOWN */
void kha_proxy__health_event(struct backend *b, enum kha_proxy_event ev, const char *why);

#endif
