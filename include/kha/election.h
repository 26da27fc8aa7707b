/* SPDX-License-Identifier: MIT */
/*
 * Leader election and counting semaphores with fencing: the engines behind `kha elect` and
 * `kha lock`. docs/internals/election.md states the invariants.
 *
 * On etcd, both use the keys of etcd's clientv3/concurrency package (what `etcdctl elect` uses):
 * a contender puts `<name>/<lease id in lowercase hex>` attached to its lease, with a txn
 * "create_revision == 0 -> put, else get"; contenders are ordered by create revision. An
 * election is a semaphore of one slot: the key with the lowest create revision leads. With N
 * slots the N lowest hold the semaphore. A waiter watches for the deletion of the key just
 * before its own (one slot) or of any key of the prefix (N slots), then looks again. The
 * leader's create revision is its fencing token.
 *
 * On Kubernetes, elections use a coordination.k8s.io/v1 Lease with client-go's leaderelection
 * rules (kha_elect_lease_decide below), so kha shares a Lease with client-go processes.
 *
 * Fencing: the run engine keeps the lease alive from its own thread and stops COMMAND (SIGTERM,
 * then SIGKILL) once no renewal has succeeded for the renew deadline, counted from the START of
 * the last successful renewal request, and kills it at the latest `margin` before the lease can
 * have expired. The deadline is enforced from the main thread's timer, so no hung request can
 * delay it (struct kha_elect_fence holds the arithmetic).
 *
 * Threads: kha_elect_run() creates its own threads (lease keep-alive, campaign) each with its
 * own client; everything else here is plain functions for one thread.
 */
#ifndef KHA_ELECTION_H
#define KHA_ELECTION_H

#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <time.h>
#include <jansson.h>

#include "kha/common.h"
#include "kha/diag.h"
#include "kha/etcd.h"
#include "kha/kube.h"
#include "kha/net.h"

/* ---- fencing arithmetic (pure; the fake clock drives it in tests) -------------------------- */

struct kha_elect_fence {
	uint64_t ttl_us; /* lease TTL: the server may expire it this long after a renewal */
	uint64_t renew_deadline_us; /* stop COMMAND once no renewal succeeded for this long */
	uint64_t grace_us;	    /* SIGTERM -> SIGKILL, when the lease leaves time for it */
	uint64_t margin_us;	    /* SIGKILL this long before the earliest possible expiry */
	uint64_t last_renew_us; /* start of the last successful renewal (kha_now_us), 0 = none */
};

/* The timers of an election as its flags give them (0: not given). */
struct kha_elect_timers {
	uint64_t ttl_us;	    /* --ttl: the lease's TTL (a Lease's leaseDurationSeconds) */
	uint64_t renew_deadline_us; /* --renew-deadline: stop COMMAND after no renewal this long */
	uint64_t retry_period_us;   /* --retry-period: a Lease's renew/acquire period */
};

/*
 * Fills in the timers not given and checks them together. On etcd: TTL 10s, renew deadline
 * TTL*2/3, no retry period (the lease is renewed every TTL/3). On a Kubernetes Lease, client-go's
 * defaults: TTL 15s, renew deadline min(10s, TTL*2/3), retry period min(2s, deadline/2). Then
 * kha_elect_check_ttl, the deadline below the TTL and, on a Lease, the retry period below the
 * deadline. Returns 0, or -EINVAL with d naming the flag at fault.
 */
int kha_elect_timers_derive(struct kha_elect_timers *t, bool kube_lease,
			    struct kha_diag *d) KHA_WUR;

/*
 * Sets the durations (margin: a tenth of the TTL, at least 50 ms) and forgets renewals.
 * Returns 0, or -EINVAL with the reason in d when renew_deadline_us is not below ttl_us or
 * either is 0.
 */
int kha_elect_fence_init(struct kha_elect_fence *f, uint64_t ttl_us, uint64_t renew_deadline_us,
			 uint64_t grace_us, struct kha_diag *d) KHA_WUR;
/* Records a successful renewal whose request STARTED at started_us (keeps the latest). */
void kha_elect_fence_renewed(struct kha_elect_fence *f, uint64_t started_us);
/* Forgets every renewal (a new lease, or the lease was lost). */
void kha_elect_fence_reset(struct kha_elect_fence *f);
/* Whether COMMAND may run at now: a renewal started less than the renew deadline ago. */
bool kha_elect_fence_ok(const struct kha_elect_fence *f, uint64_t now_us);
/* When COMMAND must be stopped (last renewal + renew deadline); 0 when never renewed. */
uint64_t kha_elect_fence_deadline(const struct kha_elect_fence *f);
/* The earliest time the server may expire the lease (last renewal + TTL); 0 when none. */
uint64_t kha_elect_fence_expiry(const struct kha_elect_fence *f);
/*
 * When to send SIGKILL after SIGTERM was sent at term_us: term_us + grace, but never later than
 * expiry - margin (never earlier than term_us).
 */
uint64_t kha_elect_fence_kill_at(const struct kha_elect_fence *f, uint64_t term_us);
/*
 * A request timeout for a call made at now: max_us, shortened to the time left before the
 * renew deadline (at least min_us, so a request can still reach the server). With no renewal
 * yet, max_us.
 */
uint64_t kha_elect_fence_call_timeout(const struct kha_elect_fence *f, uint64_t now_us,
				      uint64_t max_us, uint64_t min_us);

/* ---- candidates on etcd (pure) -------------------------------------------------------------- */

/* Writes "<name>/<lease in lowercase hex>" into buf. Returns the length, or -ENAMETOOLONG. */
int kha_elect_key(char *buf, size_t size, const char *name, int64_t lease) KHA_WUR;

struct kha_lock_sem_position {
	size_t n;	/* keys under the prefix */
	size_t rank;	/* keys created before mine (0 = first) */
	long mine;	/* index of my key in the input, -1 when absent */
	long pred;	/* index of the key created just before mine, -1 when none */
	long first;	/* index of the key with the lowest create revision, -1 when none */
	int64_t my_rev; /* my key's create revision */
};

/*
 * Where my_key stands among kvs (any order; the keys under one prefix). Returns 0, or -ENOENT
 * when my_key is not among them (then only n and first are set).
 */
int kha_lock_sem_position(const struct kha_etcd_kv *kvs, size_t n, const char *my_key,
			  struct kha_lock_sem_position *ret) KHA_WUR;
/* Fills order[0..n) with the indexes of kvs sorted by create revision (ties by key). */
void kha_lock_sem_order(const struct kha_etcd_kv *kvs, size_t n, size_t *order);

/* ---- maintenance windows (pure) ------------------------------------------------------------- */

/*
 * Grammar (docs/lock.md):  WINDOWS := WINDOW (";" WINDOW)*
 *   WINDOW := [DAYS " "] HH:MM "-" HH:MM      DAYS := DAYSPEC ("," DAYSPEC)*
 *   DAYSPEC := DAY | DAY ".." DAY            DAY := Mon|Tue|Wed|Thu|Fri|Sat|Sun (any case)
 * Times are local; "24:00" may end a window; an end before the start crosses midnight (the
 * window belongs to the day it starts on). No DAYS = every day. "Fri..Mon" wraps the week.
 */
#define KHA_LOCK_WINDOW_MAX 16
struct kha_lock_window {
	uint8_t days;	    /* bit 0 = Sunday ... bit 6 = Saturday (struct tm's tm_wday) */
	uint16_t start_min; /* minutes since midnight, 0..1439 */
	uint16_t end_min;   /* 1..1440; <= start_min: ends the next day */
};
struct kha_lock_window_set {
	struct kha_lock_window w[KHA_LOCK_WINDOW_MAX];
	size_t n;
};

/* Returns 0, or -EINVAL with what is wrong and where in d. */
int kha_lock_window_parse(const char *s, struct kha_lock_window_set *ret,
			  struct kha_diag *d) KHA_WUR;
/* Whether the local time tm (wday, hour, min) is inside one of the windows. */
bool kha_lock_window_contains(const struct kha_lock_window_set *ws, const struct tm *tm);

/* ---- FleetLock request bodies (pure; fuzzed) ------------------------------------------------ */

#define KHA_FLEETLOCK_ID_MAX	256
#define KHA_FLEETLOCK_GROUP_MAX 64
struct kha_fleetlock_params {
	char id[KHA_FLEETLOCK_ID_MAX];	     /* non-empty */
	char group[KHA_FLEETLOCK_GROUP_MAX]; /* non-empty, [a-zA-Z0-9.-]+ */
};

/*
 * Parses {"client_params": {"id": "...", "group": "..."}} (other members are ignored). Returns
 * 0, or -EBADMSG with the reason in d (not JSON, no client_params, id or group missing, empty,
 * not a string, too long, a group outside [a-zA-Z0-9.-]).
 */
int kha_fleetlock_parse(const char *body, size_t len, struct kha_fleetlock_params *ret,
			struct kha_diag *d) KHA_WUR;
/* Whether group is a group name: 1 to KHA_FLEETLOCK_GROUP_MAX - 1 bytes of [a-zA-Z0-9.-]. */
bool kha_fleetlock_group_valid(const char *group);

/* ---- Kubernetes Lease rules (pure): client-go's tryAcquireOrRenew ----------------------------- */

struct kha_elect_lease_elector {
	char id[256];	    /* our holderIdentity */
	int32_t duration_s; /* leaseDurationSeconds we write */
	struct kha_kube_lease observed;
	bool have_observed;
	uint64_t
		observed_us; /* kha_now_us() when `observed` last changed (client-go observedTime) */
};

enum kha_elect_lease_action {
	KHA_ELECT_LEASE_WAIT, /* held by another holder whose lease has not expired by our clock */
	KHA_ELECT_LEASE_CREATE, /* no Lease yet: create *ret */
	KHA_ELECT_LEASE_UPDATE, /* take over or renew: update *ret (it carries the resource version) */
};

/* Initialises an elector for id with leaseDurationSeconds duration_s. */
void kha_elect_lease_elector_init(struct kha_elect_lease_elector *e, const char *id,
				  int32_t duration_s);
/* Whether the last observed record names us as the holder (client-go IsLeader). */
bool kha_elect_lease_elector_is_holder(const struct kha_elect_lease_elector *e);
/*
 * One step of client-go's tryAcquireOrRenew: current is the Lease just read (NULL when it does
 * not exist), now_us the monotonic clock, wall_us the wall clock for the record's times.
 * Updates the observed record and time when current differs from it. Returns what to do and
 * fills *ret with the record to write (namespace/name copied from current or left to the
 * caller for a create). A holder whose observed record is ours renews at once; another
 * candidate waits while holderIdentity is set and observed_us + leaseDurationSeconds (of the
 * record; ours when unset) has not passed.
 */
enum kha_elect_lease_action kha_elect_lease_decide(struct kha_elect_lease_elector *e,
						   const struct kha_kube_lease *current,
						   uint64_t now_us, int64_t wall_us,
						   struct kha_kube_lease *ret);
/* Records what we wrote successfully (the stored lease the server returned). */
void kha_elect_lease_elector_written(struct kha_elect_lease_elector *e,
				     const struct kha_kube_lease *stored, uint64_t now_us);
/*
 * The record that releases the lease, as client-go's ReleaseOnCancel writes it: holder empty,
 * leaseDurationSeconds 1, acquire and renew time now, transitions kept. Returns false when we
 * are not the holder (nothing to release).
 */
bool kha_elect_lease_release_record(const struct kha_elect_lease_elector *e, int64_t wall_us,
				    struct kha_kube_lease *ret);

/* ---- the run engine: `kha elect -- COMMAND` and `kha lock -- COMMAND` ------------------------ */

enum kha_elect_restart {
	KHA_ELECT_RESTART_NO,	      /* COMMAND's exit ends kha (resign, exit with its status) */
	KHA_ELECT_RESTART_ON_FAILURE, /* restart after a non-zero exit, while still leading */
	KHA_ELECT_RESTART_ALWAYS,
};
/* Parses "no|on-failure|always". */
int kha_elect_restart_parse(const char *s, enum kha_elect_restart *ret) KHA_WUR;
/* "no", "on-failure" or "always". */
const char *kha_elect_restart_name(enum kha_elect_restart r);

/*
 * The TTL limits of the two kinds of lease, checked before any request: etcd refuses a lease
 * TTL over 9,000,000,000 s (its MaxLeaseTTL) and needs whole seconds, at least 1; a Kubernetes
 * Lease's leaseDurationSeconds is an int32. Returns 0, or -EINVAL with diag naming --ttl and
 * the limit.
 */
#define KHA_ETCD_LEASE_MAX_TTL_S 9000000000ULL
#define KHA_KUBE_LEASE_MAX_TTL_S 2147483647ULL
int kha_elect_check_ttl(uint64_t ttl_us, bool kube_lease, struct kha_diag *d) KHA_WUR;

/*
 * A gate checked before COMMAND starts (and before a FleetLock slot is granted): returns 0 when
 * open, 1 when closed (reason filled, e.g. "outside the maintenance window"), or a negative
 * errno when it could not be checked (reason filled; treated as closed). Called from a worker
 * thread; must be thread-safe.
 */
typedef int (*kha_elect_gate_fn)(void *userdata, char *reason, size_t size);

/* Counters for metrics, updated by the engine (relaxed atomics: any thread may read them). */
struct kha_elect_stats {
	atomic_int is_leader;		  /* 1 while COMMAND may run (slot held and gates open) */
	atomic_uint_fast64_t transitions; /* times leadership was gained or lost */
	atomic_uint_fast64_t renew_failures; /* failed keep-alives / Lease renewals */
	atomic_uint_fast64_t acquire_us;     /* time from campaign start to leadership, last one */
	atomic_uint_fast64_t fenced;	     /* COMMAND stopped because renewals failed */
	atomic_uint_fast64_t child_starts;
	atomic_uint_fast64_t reloads, reload_failures; /* SIGHUP reloads of kha's configuration */
};

/*
 * Serves the stats as Prometheus metrics (plus /healthz and /readyz) on addr from a thread of
 * its own (an event loop with lib/core's httpd). prefix names the families ("kha_elect" or
 * "kha_lock"): <prefix>_is_leader, <prefix>_transitions_total, <prefix>_renew_failures_total,
 * <prefix>_acquire_duration_seconds, <prefix>_fenced_total, <prefix>_command_starts_total, each
 * labelled name="...",id="...". Borrowed strings and stats must outlive the server. Returns 0,
 * or a negative errno (bad address -EINVAL, in use -EADDRINUSE) with d set.
 */
struct kha_elect_metrics;
int kha_elect_metrics_start(const char *addr, const char *prefix, const char *name, const char *id,
			    const struct kha_elect_stats *stats, struct kha_elect_metrics **ret,
			    struct kha_diag *d) KHA_WUR;
/* The bound port (for addr ":0"). */
uint16_t kha_elect_metrics_port(const struct kha_elect_metrics *m);

/* Stops the server and frees it; NULL is a no-op. */
void kha_elect_metrics_stop(struct kha_elect_metrics *m);

/* What a SIGHUP reload may change in a running kha elect / kha lock: the rest needs a restart. */
struct kha_elect_reloaded {
	enum kha_elect_restart restart;
	uint64_t backoff_initial_us;
	uint64_t backoff_max_us;
};

/*
 * Reads the configuration again (SIGHUP), as at start, into *ret (pre-filled with the running
 * values). Returns 0, or a negative errno with d set: the running configuration is kept.
 */
typedef int (*kha_elect_reload_fn)(void *userdata, struct kha_elect_reloaded *ret,
				   struct kha_diag *d);

struct kha_elect_opts {
	const char *name; /* election / lock name: the etcd key prefix is name + "/" */
	const char *id;	  /* this contender's identity */
	/* The value stored under our key; NULL = id (as `etcdctl elect NAME id` proposes). */
	const char *value;
	size_t slots; /* 1 = an election; N = a semaphore of N slots */

	uint64_t ttl_us;	    /* lease TTL (etcd: rounded up to whole seconds) */
	uint64_t renew_deadline_us; /* 0 = ttl * 2/3 */
	uint64_t renew_interval_us; /* keep-alive period; 0 = ttl / 3 (kube: the retry period) */
	uint64_t grace_us;	    /* SIGTERM -> SIGKILL when stopping COMMAND */

	const char *const *argv; /* COMMAND, NULL-terminated */
	const char *env_name;	 /* variable naming the election for COMMAND ("KHA_ELECTION") */
	enum kha_elect_restart restart;
	uint64_t backoff_initial_us; /* restart back-off: doubles per quick failure, capped */
	uint64_t backoff_max_us;
	/* After COMMAND was stopped because leadership was lost: exit (status 69) instead of
	 * campaigning again (kha lock). */
	bool exit_on_loss;

	kha_elect_gate_fn gate; /* optional */
	void *gate_userdata;
	uint64_t gate_interval_us; /* how often a closed gate is checked again (0 = 5 s) */

	/* backend: etcd unless kube is set */
	const struct kha_etcd_config *etcd;
	const struct kha_kube_config *kube;
	const char *lease_namespace;
	const char *lease_name;

	struct kha_elect_stats *stats; /* optional */
	const char *what;	       /* "election" or "lock", for logs */

	/* optional: SIGHUP, besides being passed on to COMMAND, reloads kha's configuration */
	kha_elect_reload_fn reload;
	void *reload_userdata;
};

/* ---- the run loop's decisions (pure; lib/election/step.c, the fake clock drives it) ------- */

/*
 * kha_elect_run's main loop is a short loop around kha_elect_step(), in the manner of
 * lib/vrrp/fsm.c: each pass gathers what the backend threads, the signals and COMMAND's guard
 * say (an observation), asks the step what to do, performs it (signals, spawn, logs, metrics)
 * and sleeps until the step's deadline or the next event. Every decision (fencing, SIGTERM then
 * SIGKILL, exit on loss, restart with back-off) is made here, from the state and the clock.
 */
enum kha_elect_stop {
	KHA_ELECT_STOP_NONE,
	KHA_ELECT_STOP_LOST,	/* leadership lost (key deleted, lease expired, Lease taken) */
	KHA_ELECT_STOP_FENCED,	/* no renewal within the renew deadline */
	KHA_ELECT_STOP_EXITING, /* SIGTERM/SIGINT */
};

struct kha_elect_step_state {
	struct kha_elect_fence fence;
	uint64_t fence_gen; /* the session the fence's renewals belong to */
	uint64_t seen_gen;
	bool was_leading;
	bool exiting;  /* SIGTERM/SIGINT seen: stop COMMAND, then quit */
	bool finished; /* COMMAND is done for good (restart "no", a loss with exit_on_loss) */
	/* COMMAND, as far as the decisions go */
	bool running;
	enum kha_elect_stop stopping; /* KHA_ELECT_STOP_NONE while it runs normally */
	uint64_t kill_us;	      /* when SIGKILL follows the SIGTERM */
	bool killed;
	uint64_t child_gen; /* the session it was started for */
	uint64_t started_us;
	/* restarts: the policy is o's at start, then what a SIGHUP reload says */
	struct kha_elect_reloaded policy;
	uint64_t restart_at_us; /* 0 = none pending */
	uint64_t backoff_us;
	int status; /* the exit status kha_elect_run returns */
};

/* Checks o's durations (as kha_elect_run does) and sets up st. 0 or -EINVAL with d. */
int kha_elect_step_init(struct kha_elect_step_state *st, const struct kha_elect_opts *o,
			struct kha_diag *d) KHA_WUR;

struct kha_elect_observation {
	uint64_t gen;		/* the current session (0: none yet) */
	bool leading;		/* the session holds a slot, its gates are open, it is not lost */
	uint64_t last_renew_us; /* start of the session's last successful renewal (0: none) */
	bool exit_requested;	/* a SIGTERM or SIGINT arrived */
	bool child_exited;	/* COMMAND's guard exited (considered only while running) */
	int child_status;	/* its wait status */
};

enum {
	KHA_ELECT_DO_ACQUIRED = 1u << 0,  /* log: the slot was gained (count a transition) */
	KHA_ELECT_DO_LOST = 1u << 1,	  /* log: the slot was lost (count a transition) */
	KHA_ELECT_DO_TERM = 1u << 2,	  /* SIGTERM COMMAND's group; stop says why */
	KHA_ELECT_DO_KILL = 1u << 3,	  /* SIGKILL COMMAND's group (late: it ignored SIGTERM) */
	KHA_ELECT_DO_LOSE = 1u << 4,	  /* fenced: give the session up */
	KHA_ELECT_DO_REAP = 1u << 5,	  /* COMMAND exited: log it, release it */
	KHA_ELECT_DO_LOSS_EXIT = 1u << 6, /* log: quitting because the slot was lost */
	KHA_ELECT_DO_RESTART = 1u << 7,	  /* log: COMMAND restarts in restart_in_us */
	KHA_ELECT_DO_START = 1u << 8,	  /* start COMMAND for the session (then report failure) */
	KHA_ELECT_DO_QUIT = 1u << 9,	  /* leave the loop; status is st->status */
};

struct kha_elect_actions {
	unsigned todo;		  /* KHA_ELECT_DO_* */
	enum kha_elect_stop stop; /* why TERM or KILL */
	bool kill_late;		  /* KILL because the grace ran out after SIGTERM */
	uint64_t restart_in_us;
	bool leader_ok;	  /* for the is_leader metric: leading with a valid fence */
	uint64_t next_us; /* call again at the latest then (UINT64_MAX: on the next event) */
};

/* One pass of the decisions at now. Pure. */
void kha_elect_step(struct kha_elect_step_state *st, const struct kha_elect_opts *o,
		    const struct kha_elect_observation *obs, uint64_t now,
		    struct kha_elect_actions *ret);
/* The START of the last step failed: COMMAND is not running, kha_elect_run ends with 69. */
void kha_elect_step_start_failed(struct kha_elect_step_state *st);

/*
 * Runs the engine until SIGTERM/SIGINT (blocked in every thread by this call and read through a
 * signalfd), COMMAND's own end (restart "no"), or a loss with exit_on_loss. COMMAND runs only
 * while we hold a slot and the fence is valid; it gets KHA_FENCING_TOKEN (etcd: our key's
 * create revision; kube: leaseTransitions), KHA_ID and env_name=name in its environment, dies
 * with kha (PR_SET_PDEATHSIG) and leads its own process group. On the way out COMMAND is
 * stopped first, then we resign (etcd: delete our key, revoke the lease; kube: release as
 * client-go does), so a standby takes over at once.
 *
 * Returns 0 and the exit status to use in *ret_status (COMMAND's status when it ended by itself,
 * 128+signal when killed, 0 after SIGTERM/SIGINT, 69 after a loss with exit_on_loss), or a
 * negative errno when the backend could not be reached at start (nothing was run) with d set.
 * On return SIGTERM, SIGINT and SIGHUP stay blocked in the calling thread: the caller is on its
 * way out, and a stop asked twice must not kill it by the default action after the resignation.
 */
int kha_elect_run(const struct kha_elect_opts *o, int *ret_status, struct kha_diag *d) KHA_WUR;

/*
 * kha_elect_run() with o->stats served on metrics_addr (NULL: not served) as <prefix>_*
 * families labelled o->name and o->id. Returns as kha_elect_run(), or the error of
 * kha_elect_metrics_start() (nothing ran), d saying which.
 */
int kha_elect_run_served(const struct kha_elect_opts *o, const char *metrics_addr,
			 const char *prefix, int *ret_status, struct kha_diag *d) KHA_WUR;

/* ---- observing an election ------------------------------------------------------------------ */

struct kha_elect_leader {
	bool present;
	char *id;	       /* owned: the leader's value (its --id, or etcdctl's proposal) */
	char *key;	       /* owned: "<name>/<lease hex>", or "namespace/name" of a Lease */
	int64_t token;	       /* create revision (etcd) or leaseTransitions (kube) */
	int64_t lease;	       /* etcd lease id; 0 for kube */
	int64_t ttl_s;	       /* remaining lease TTL (etcd), lease duration (kube); -1 unknown */
	int64_t renew_wall_us; /* kube: renewTime; 0 otherwise */
};
void kha_elect_leader_release(struct kha_elect_leader *l);

/* The current leader of election name (present false when nobody leads). */
int kha_elect_leader_get(struct kha_etcd *c, const char *name, struct kha_elect_leader *ret,
			 struct kha_diag *d) KHA_WUR;
int kha_elect_kube_leader_get(struct kha_kube_client *c, const char *namespace, const char *name,
			      struct kha_elect_leader *ret, struct kha_diag *d) KHA_WUR;

/* Called with the leader at start and at each change (borrowed; valid during the call). Return
 * 0 to go on, anything else stops kha_elect_observe with that value. */
typedef int (*kha_elect_observe_fn)(void *userdata, const struct kha_elect_leader *l);

/*
 * Reports the leader of election name, then every change, until cancel is set (returns 0),
 * the callback stops it, or etcd fails for longer than a retry (negative errno). A broken watch
 * is re-established (from the last revision seen) with back-off.
 */
int kha_elect_observe(struct kha_etcd *c, const char *name, const volatile sig_atomic_t *cancel,
		      kha_elect_observe_fn fn, void *userdata, struct kha_diag *d) KHA_WUR;

/* ---- lock status ---------------------------------------------------------------------------- */

struct kha_lock_entry {
	char *key; /* owned */
	char *id;  /* owned: from the value (JSON {"id":...} or plain text) */
	int64_t create_revision;
	int64_t lease;	       /* 0 = none (FleetLock holder) */
	int64_t ttl_s;	       /* remaining lease TTL, -1 when none or unknown */
	int64_t since_wall_us; /* when it queued (from the value), 0 unknown */
	size_t slots;	       /* the slot count this contender uses (0 unknown) */
	size_t position;       /* 1-based, by create revision */
	bool holder;
	bool fleetlock; /* taken through `kha lock serve` */
};

struct kha_lock_status {
	struct kha_lock_entry *entries; /* owned, in queue order */
	size_t n;
	size_t holders;
	int64_t revision;
};
void kha_lock_status_release(struct kha_lock_status *s);

/*
 * Reads lock name: every contender in queue order, each a holder when fewer keys than its slot
 * count (slots_override when non-zero, else the one it recorded, else 1) are before it. TTLs
 * come from one lease time-to-live call per contender.
 */
int kha_lock_status_get(struct kha_etcd *c, const char *name, size_t slots_override,
			struct kha_lock_status *ret, struct kha_diag *d) KHA_WUR;

/*
 * Rendering of a status, for `kha lock status` and `kha elect status`: one contender as a JSON
 * object (position, state, id, key, create_revision, fencing_token = create_revision, lease,
 * ttl_seconds, since, slots, fleetlock; docs/lock.md), the queue as a JSON array (NULL on
 * ENOMEM; the caller owns both), and a table with one line per contender on out.
 */
json_t *kha_lock_entry_json(const struct kha_lock_entry *e);
json_t *kha_lock_status_json(const struct kha_lock_status *st);
void kha_lock_status_print(FILE *out, const struct kha_lock_status *st, int64_t now_wall_us);

/* The JSON value a contender of lock name stores (owned string, NULL on ENOMEM). */
char *kha_lock_value(const char *id, size_t slots, int64_t since_wall_us, bool fleetlock);
/* Decodes such a value (or plain text: the id). Fills *ret's id, since, slots, fleetlock. */
int kha_lock_value_decode(const char *value, size_t len, struct kha_lock_entry *ret) KHA_WUR;

/* ---- lock gates (kha lock --window / --require-etcd-healthy / --require-backup-within) ---- */

struct kha_lock_gates {
	const struct kha_lock_window_set *window; /* NULL: any time */
	bool require_etcd_healthy;		  /* every member answers, a leader, no alarm */
	const struct kha_etcd_config *etcd;	  /* for the health check */
	uint64_t backup_max_age_us;		  /* 0: no backup requirement */
	const char *backup_dir;
};

/*
 * A kha_elect_gate_fn over struct kha_lock_gates (userdata): checks the window (local time),
 * then the backup directory (a snapshot modified within the max age that verifies, newest first:
 * kha_backup_scan_dir and kha_backup_verify_cached), then etcd's health (kha_etcd_cluster_report). Returns 0
 * when all pass, 1 with the first closed gate's reason, or a negative errno (reason filled).
 * Thread-safe.
 */
int kha_lock_gates_check(void *gates, char *reason, size_t size);
/* Like kha_lock_gates_check, also naming the gate ("window", "backup", "etcd_health"). */
int kha_lock_gates_check_named(const struct kha_lock_gates *g, const char **ret_gate, char *reason,
			       size_t size);

/* ---- FleetLock server ------------------------------------------------------------------------ */

/* What kha lock serve answered, by operation and outcome (atomic: the metrics thread reads). */
enum kha_fleetlock_op {
	KHA_FLEETLOCK_OP_PRE_REBOOT,
	KHA_FLEETLOCK_OP_STEADY_STATE,
	KHA_FLEETLOCK_OP_STATUS,
	KHA_FLEETLOCK_OP_OTHER, /* unknown paths, bad requests */
	KHA_FLEETLOCK_NOPS,
};
enum kha_fleetlock_outcome {
	KHA_FLEETLOCK_OK,      /* 2xx: granted, released, status */
	KHA_FLEETLOCK_REFUSED, /* 4xx: semaphore full, gate closed, bad request */
	KHA_FLEETLOCK_FAILED,  /* 5xx: etcd unreachable, internal */
	KHA_FLEETLOCK_NOUTCOMES,
};
struct kha_fleetlock_stats {
	atomic_uint_fast64_t requests[KHA_FLEETLOCK_NOPS][KHA_FLEETLOCK_NOUTCOMES];
};

struct kha_fleetlock_opts {
	const char *listen; /* "127.0.0.1:8080" */
	const char *lock;   /* group "default" uses this lock; group G uses "<lock>.<G>" */
	size_t slots;
	const struct kha_etcd_config *etcd;
	const struct kha_lock_gates *gates; /* optional: checked before a slot is granted */
	uint64_t pending_ttl_us;	    /* lease of a not-yet-granted key (0 = 10 s) */
	struct kha_fleetlock_stats *stats;  /* counted per answer; required with metrics_addr */
	/* optional: /metrics (kha_lock_fleetlock_requests_total{name,op,result}), /healthz and
	 * /readyz on this address, served by the same loop */
	const char *metrics_addr;
	/* HTTPS instead of HTTP when tls_cert is set (PEM chain and key); with tls_client_ca,
	 * clients must present a certificate of that CA */
	const char *tls_cert, *tls_key, *tls_client_ca;
	/* Listening off loopback without client certificates is refused unless this is set (then
	 * a warning is logged): anyone who reaches the port could release any node's slot. */
	bool insecure_no_client_certs;
	/* The groups clients may name (each a lock of its own: at most n_groups * slots permanent
	 * keys); none: only "default". */
	const char *const *groups;
	size_t n_groups;
	/* Which ids a client certificate may take and release; NULL: the certificate's own names
	 * (its subject CN or a DNS SAN). Unused without client certificates. */
	const struct kha_fleetlock_idmap *idmap;
	/* Called on SIGHUP, on the server's loop thread (where the checks run too): it may change
	 * groups, n_groups and idmap of the caller's own opts. Returns 0, or -errno with d saying
	 * why (the running configuration is kept). NULL: SIGHUP is ignored. */
	int (*reload)(void *userdata, struct kha_diag *d);
	void *reload_userdata;
};

/*
 * The --client-ids file: one line per certificate name, "NAME ID [ID...]" (blank-separated; '#'
 * starts a comment): a client whose verified certificate carries NAME (as its subject CN or a
 * DNS SAN) may take and release those ids, and no other.
 */
#define KHA_FLEETLOCK_IDMAP_IDS 64 /* ids on one line */
#define KHA_FLEETLOCK_GROUPS	32 /* --group at most this many times */
struct kha_fleetlock_idmap_entry {
	char *name;
	char **ids;
	size_t n_ids;
};
struct kha_fleetlock_idmap {
	struct kha_fleetlock_idmap_entry *entries;
	size_t n;
};
/* Reads path into *ret. Returns 0, or -errno with "FILE:LINE: what" in d (-EINVAL, -ENOENT...). */
int kha_fleetlock_idmap_load(const char *path, struct kha_fleetlock_idmap *ret,
			     struct kha_diag *d) KHA_WUR;
void kha_fleetlock_idmap_release(struct kha_fleetlock_idmap *m);
/*
 * Whether a client with certificate peer may take or release id: without a verified
 * certificate (no client certificates are asked for) always; else as o->idmap says, or, without
 * one, when id is one of the certificate's names.
 */
bool kha_fleetlock_id_allowed(const struct kha_fleetlock_opts *o,
			      const struct kha_httpd_tls_peer *peer, const char *id);

/* Outcome of one FleetLock operation: an HTTP status and the FleetLock error (kind/value). */
struct kha_fleetlock_result {
	int status; /* 200 on success */
	char kind[64];
	char value[384];
};

/* Fills *ret: status, kind and the formatted value. */
void kha_fleetlock_result_set(struct kha_fleetlock_result *ret, int status, const char *kind,
			      const char *fmt, ...) KHA_PRINTF(4, 5);

/* The lock a group maps to (writes into buf). Returns buf. */
const char *kha_fleetlock_lock_name(char *buf, size_t size, const char *lock, const char *group);

/*
 * RecursiveLock: grants id a slot of lock (idempotent: a holder gets 200 again), else
 * 409 failed_lock_semaphore_full (or a closed gate's kind). etcd failures give 503.
 */
void kha_fleetlock_pre_reboot(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
			      const struct kha_fleetlock_params *p,
			      struct kha_fleetlock_result *ret);
/* UnlockIfHeld: releases id's slot (200 whether it held one or not). */
void kha_fleetlock_steady_state(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
				const struct kha_fleetlock_params *p,
				struct kha_fleetlock_result *ret);

/*
 * Checks one FleetLock request (method, path, the fleet-lock-protocol header value or NULL, body,
 * the client's verified certificate or NULL): then whether its group is configured (403
 * group_not_allowed) and its certificate may use its id (403 id_not_allowed). Returns true with
 * the client's parameters in *ret_params when the operation may run; else false with the
 * answer (status, kind, value) in *ret.
 */
bool kha_fleetlock_check(const struct kha_fleetlock_opts *o, const char *method, const char *path,
			 const char *protocol_header, const char *body, size_t body_len,
			 const struct kha_httpd_tls_peer *peer,
			 struct kha_fleetlock_params *ret_params, struct kha_fleetlock_result *ret);
/* kha_fleetlock_check(), then the operation on c. Fills *ret. */
void kha_fleetlock_handle(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
			  const char *method, const char *path, const char *protocol_header,
			  const char *body, size_t body_len, struct kha_fleetlock_result *ret);

/*
 * Serves FleetLock on o->listen (POST /v1/pre-reboot and /v1/steady-state, GET /v1/status, plus
 * /healthz and /readyz) with the admin HTTP server of kha/httpd.h until SIGTERM or SIGINT (which
 * it blocks in the calling thread and takes through its loop, with SIGHUP for o->reload): one
 * deadline for the TLS
 * handshake and the request, bodies up to 64 KiB, the etcd operations on a pool of worker
 * threads. Returns 0 when stopped, or a negative errno when it could not start (d says why:
 * a flag name first).
 */
int kha_fleetlock_serve(const struct kha_fleetlock_opts *o, struct kha_diag *d) KHA_WUR;

#endif
