/* SPDX-License-Identifier: MIT */
/*
 * kha drill: break things for real and measure what users would have seen.
 *
 * A drill probes one entry (an HTTP(S) URL or a tcp://host:port) at a fixed rate, each probe
 * with a deadline and timestamped with kha_now_us(), while fault and recovery commands run at
 * given instants (or while a rolling restart walks the nodes one by one). The result is a
 * report: availability, outage windows, time from the fault to the first failure and to full
 * recovery, latency per phase.
 *
 * Programmatic use (kha lab drill does this):
 *
 *	struct kha_drill_scenario sc;
 *	struct kha_drill_report *r = NULL;
 *
 *	kha_drill_scenario_init(&sc);
 *	if (kha_drill_scenario_set(&sc, "target", "https://127.0.0.1:6443/readyz", &d) < 0) ...
 *	if (kha_drill_scenario_add_step(&sc, KHA_DRILL_STEP_FAULT, 2 * KHA_USEC_PER_SEC,
 *					"freeze", "kill -STOP 1234", 0, &d) < 0) ...
 *	if (kha_drill_scenario_check(&sc, &d) == 0 && kha_drill_run(&sc, NULL, &r, &d) == 0)
 *		... r->stats.availability, kha_drill_report_verdict(r) ...
 *	kha_drill_report_free(r);
 *	kha_drill_scenario_release(&sc);
 *
 * Times in the report are microseconds relative to the drill's start (its t0 on the monotonic
 * clock); KHA_DRILL_NONE marks "did not happen". The library never prints: the caller decides
 * what to show (kha_drill_report_print, kha_drill_report_json, kha_drill_svg_write).
 */
#ifndef KHA_DRILL_H
#define KHA_DRILL_H

#include <stdio.h>
#include "kha/diag.h"

#define KHA_DRILL_NONE UINT64_MAX

#define KHA_DRILL_DEFAULT_RATE		   200
#define KHA_DRILL_MAX_RATE		   100000
#define KHA_DRILL_DEFAULT_DURATION_US	   (60 * KHA_USEC_PER_SEC)
#define KHA_DRILL_MAX_DURATION_US	   (24 * 3600 * KHA_USEC_PER_SEC)
#define KHA_DRILL_DEFAULT_TIMEOUT_US	   (1 * KHA_USEC_PER_SEC)
#define KHA_DRILL_DEFAULT_STEP_TIMEOUT_US  (60 * KHA_USEC_PER_SEC)
#define KHA_DRILL_DEFAULT_HEALTHY_TIMEOUT  (60 * KHA_USEC_PER_SEC)
#define KHA_DRILL_DEFAULT_HEALTHY_INTERVAL (500 * KHA_USEC_PER_MSEC)
/* Output of each command kept in the report (the rest is counted, not kept). */
#define KHA_DRILL_OUTPUT_MAX (16 * 1024)

/* ---------------------------------------------------------------------------------------- */
/* Scenario: what to probe, what to break and when. */

enum kha_drill_target_kind {
	KHA_DRILL_TARGET_HTTP, /* http:// or https://: success is an expected HTTP status */
	KHA_DRILL_TARGET_TCP,  /* tcp://host:port: success is an established connection */
};

enum kha_drill_step_kind {
	KHA_DRILL_STEP_FAULT,	/* breaks something; the first one starts the "during" phase */
	KHA_DRILL_STEP_RECOVER, /* repairs; the last one starts the "after" phase */
	KHA_DRILL_STEP_ACTION,	/* anything else (a check, a log marker) */
	KHA_DRILL_STEP_STOP,	/* rolling mode: the stop command of a node */
	KHA_DRILL_STEP_START,	/* rolling mode: the start command of a node */
};

struct kha_drill_step {
	char *name; /* owned; defaults to the kind's name */
	char *run;  /* owned; run as /bin/sh -c RUN in its own process group */
	uint64_t at_us;
	uint64_t timeout_us; /* 0: the scenario's step_timeout_us */
	enum kha_drill_step_kind kind;
};

/*
 * Every field may be set directly, or by name through kha_drill_scenario_set() (the names are
 * the long flags of `kha drill` and the keys of a scenario file). Owned strings are freed by
 * kha_drill_scenario_release().
 */
struct kha_drill_scenario {
	char *target; /* URL; required */
	char *cacert, *cert, *key;
	bool insecure;	 /* skip TLS verification */
	bool keepalive;	 /* reuse connections (default: a new connection per probe) */
	bool keep_going; /* a failed step is reported, the drill goes on */
	uint32_t rate;	 /* probes per second */
	uint64_t duration_us, timeout_us, step_timeout_us;
	/* accepted HTTP statuses, bit (status - 100) of this bitmap; all zero means 2xx */
	uint64_t expect_status[8];
	double slo_percent; /* < 0: none */

	/* Shorthands of --fault-at/--fault/--recover-at/--recover; check() turns them into steps */
	char *fault, *recover;
	uint64_t fault_at_us, recover_at_us; /* KHA_DRILL_NONE when unset */

	struct kha_drill_step *steps; /* owned array */
	size_t n_steps;

	/* Rolling mode (n_nodes > 0): "{node}" in the commands is replaced by the node's name. */
	char **nodes; /* owned */
	size_t n_nodes;
	char *stop, *start, *healthy; /* healthy is optional */
	uint64_t healthy_timeout_us, healthy_interval_us;
	uint64_t down_us; /* time a node stays down between its stop and its start */

	/*
	 * Write mode (etcd): each probe is a put of a sequence-numbered key through the target
	 * (an etcd client URL: the gateway's /v3/kv/put is appended when it has no path), read
	 * back after the drill from endpoints (default: the target) with the same TLS files.
	 */
	bool write;
	char *endpoints;	      /* comma-separated etcd client URLs */
	char *write_prefix;	      /* default "/kha-drill/<unix seconds>-<pid>/" */
	bool keep_keys;		      /* do not delete the keys after the check */
	uint64_t readback_timeout_us; /* retry the read-back this long (default 15s) */

	/*
	 * Kubernetes mode: the target is a kube-apiserver (or an entry in front of it: a proxy,
	 * a VIP); probes are API requests with the client certificate (or token) and CA of
	 * `kubeconfig` (the flags --cacert/--cert/--key override it): a GET of a ConfigMap the
	 * drill creates in `namespace`, or with `write` ConfigMap creates and updates (one per
	 * probe, see lib/drill/kube.c), listed back afterwards through `endpoints` (default: the
	 * target). A watch on the probed
	 * object is kept open meanwhile and its reconnections are measured (unless no_watch).
	 */
	bool kube;
	char *kubeconfig;	   /* NULL: --cacert/--cert/--key only */
	char *namespace;	   /* default "default" */
	bool no_watch;		   /* no watch kept open */
	uint64_t watch_timeout_us; /* timeoutSeconds of each watch request (default 60s) */

	/* Outputs; the library does not write them, a scenario file may name them. */
	char *report_path, *svg_path;
};

void kha_drill_scenario_init(struct kha_drill_scenario *sc);
void kha_drill_scenario_release(struct kha_drill_scenario *sc);

/*
 * Sets one field by its flag name ("rate", "duration", "fault-at", "keepalive", "rolling"...):
 * value is the flag's argument, NULL (or "true"/"false") for a boolean flag. "rolling" takes a
 * comma-separated node list and replaces the current one; "expect-status" takes "2xx", "200",
 * "200-204" or a comma list of those. Returns 0, -ENOENT for an unknown name, -EINVAL with d
 * set for a bad value, -ENOMEM.
 */
int kha_drill_scenario_set(struct kha_drill_scenario *sc, const char *name, const char *value,
			   struct kha_diag *d) KHA_WUR;

/* Appends a step (strings are copied; name may be NULL). Returns 0 or -ENOMEM/-EINVAL. */
int kha_drill_scenario_add_step(struct kha_drill_scenario *sc, enum kha_drill_step_kind kind,
				uint64_t at_us, const char *name, const char *run,
				uint64_t timeout_us, struct kha_diag *d) KHA_WUR;

/*
 * Parses a scenario file's text (YAML: the flag names as keys plus "steps", a list of
 * {at, run, name, kind, timeout}) into sc, on top of what sc holds. name is used in messages,
 * which read "NAME:LINE: what is wrong". Returns 0 or -EBADMSG (bad content, d set), -ENOMEM.
 */
int kha_drill_scenario_parse(struct kha_drill_scenario *sc, const char *text, size_t len,
			     const char *name, struct kha_diag *d) KHA_WUR;
/* Reads the file at path and parses it. Returns as above, or -ENOENT/-EACCES/-EIO. */
int kha_drill_scenario_load(struct kha_drill_scenario *sc, const char *path,
			    struct kha_diag *d) KHA_WUR;

/*
 * Validates sc and completes it: folds the fault/recover shorthands into steps, sorts the
 * steps by time (stable), fills defaults. Call once before kha_drill_run(). Returns 0 or
 * -EINVAL with d naming the field ("target: ...").
 */
int kha_drill_scenario_check(struct kha_drill_scenario *sc, struct kha_diag *d) KHA_WUR;

/* Parses "2xx", "200,204", "200-299" into an expect_status bitmap. */
int kha_drill_parse_expect_status(const char *s, uint64_t ret_bitmap[8]) KHA_WUR;
bool kha_drill_status_expected(const uint64_t bitmap[8], long status);

/* ---------------------------------------------------------------------------------------- */
/* Probes and their analysis (pure functions, no clock, no I/O). */

enum kha_drill_result {
	KHA_DRILL_PROBE_OK,
	KHA_DRILL_PROBE_STATUS,	   /* an HTTP answer with an unexpected status */
	KHA_DRILL_PROBE_REFUSED,   /* connection refused */
	KHA_DRILL_PROBE_TIMEOUT,   /* the probe's deadline passed */
	KHA_DRILL_PROBE_RESET,	   /* connection reset, closed or empty reply */
	KHA_DRILL_PROBE_TLS,	   /* TLS handshake or verification failed */
	KHA_DRILL_PROBE_RESOLVE,   /* the host name did not resolve */
	KHA_DRILL_PROBE_ERROR,	   /* anything else */
	KHA_DRILL_PROBE_MISSED,	   /* the prober fell behind: the slot was never sent */
	KHA_DRILL_PROBE_CANCELLED, /* in flight when the drill was interrupted: not counted */
	KHA_DRILL_PROBE__MAX,
};

/* Lower-case name of a result ("ok", "refused", ...), as the JSON report spells it. */
const char *kha_drill_result_name(enum kha_drill_result r);
static inline bool kha_drill_result_failed(uint8_t r)
{
	return r != KHA_DRILL_PROBE_OK && r < KHA_DRILL_PROBE_MISSED;
}

/* One slot of the schedule: slot k is due at k * 1e6 / rate microseconds after t0. */
struct kha_drill_probe {
	uint64_t t_us;	     /* when its transfer began (missed: when it was due) */
	uint32_t latency_us; /* transfer begin to completion (success or failure) */
	uint16_t status;     /* HTTP status, 0 without an answer */
	uint8_t result;	     /* enum kha_drill_result */
};

/*
 * Places a finished probe on the timeline: it was queued at queued_us, its socket opened at
 * opened_us (0: unknown, as for a reused connection), it was seen done at done_us, and its
 * transfer took transfer_us by the HTTP library's own measure (0: unknown). The transfer may
 * begin well after it was queued (a busy prober), and be seen done well after it ended (the
 * prober busy with other probes). With the socket's opening known, it begins then (the target
 * cannot have seen it before) and lasts at most transfer_us. Without, it is placed to end when
 * it was seen done: t_us = done_us - transfer_us (never before queued_us), latency_us =
 * transfer_us; without a measure either, from queued_us to done_us. Sets t_us and latency_us.
 */
void kha_drill_place(struct kha_drill_probe *p, uint64_t queued_us, uint64_t opened_us,
		     uint64_t done_us, uint64_t transfer_us);

/* The instant slot k of a schedule at rate probes per second is due. */
uint64_t kha_drill_slot_due_us(uint32_t rate, uint64_t slot);

enum kha_drill_slot_action {
	KHA_DRILL_SLOT_WAIT, /* not due yet */
	KHA_DRILL_SLOT_SEND,
	KHA_DRILL_SLOT_MISS, /* too late (or too many probes in flight): count it as missed */
};
/*
 * What to do with slot `slot` at time now_us: a slot later than its due time by more than one
 * interval (at least 5 ms) is missed rather than sent, so a prober that falls behind shows up
 * as missed slots instead of a silently lower rate; so is a slot due while max_inflight probes
 * are in flight.
 */
enum kha_drill_slot_action kha_drill_slot_decide(uint32_t rate, uint64_t slot, uint64_t now_us,
						 size_t inflight, size_t max_inflight);

/* Nearest-rank percentile (0 < p <= 100) of an ascending array; 0 when n == 0. */
uint64_t kha_drill_percentile(const uint32_t *sorted, size_t n, double p);

/* A maximal run of failed probes: from the first failure to the next success (or end). */
struct kha_drill_window {
	uint64_t start_us, end_us;
	size_t failed; /* failed probes inside */
	bool open;     /* never recovered: end_us is the end of probing */
};

/*
 * Finds the outage windows of a probe series in slot order (missed and cancelled slots neither
 * open nor close a window). Writes up to max windows to out (may be NULL) and returns their
 * total number. end_us closes a window still open at the end.
 */
size_t kha_drill_find_windows(const struct kha_drill_probe *p, size_t n, uint64_t end_us,
			      struct kha_drill_window *out, size_t max);

struct kha_drill_latency {
	size_t count; /* successful probes measured */
	uint64_t p50_us, p99_us, max_us;
};

enum kha_drill_phase_id {
	KHA_DRILL_PHASE_BEFORE, /* [0, fault) */
	KHA_DRILL_PHASE_DURING, /* [fault, recovery) */
	KHA_DRILL_PHASE_AFTER,	/* [recovery, end] */
	KHA_DRILL_PHASES,
};
const char *kha_drill_phase_name(enum kha_drill_phase_id id);

struct kha_drill_phase {
	uint64_t start_us, end_us; /* KHA_DRILL_NONE when the phase did not happen */
	size_t sent, ok, failed, missed;
	struct kha_drill_latency latency;
};

/* The instants the analysis splits on (KHA_DRILL_NONE: did not happen). */
struct kha_drill_marks {
	uint64_t fault_us;   /* the first fault started */
	uint64_t recover_us; /* the last recovery started */
	uint64_t end_us;     /* probing stopped */
};

struct kha_drill_stats {
	size_t slots, sent, ok, failed, missed;
	size_t by_result[KHA_DRILL_PROBE__MAX];
	double availability; /* percent of sent probes that succeeded; 0 when none was sent */
	size_t n_windows;
	uint64_t outage_total_us;
	struct kha_drill_window longest; /* start_us == KHA_DRILL_NONE: no failure at all */
	struct kha_drill_marks marks;
	/* after the fault: the first failure (a probe in flight at the fault counts at the fault
	 * instant) and the first success after the last failure; KHA_DRILL_NONE when none */
	uint64_t first_failure_us, recovered_us;
	struct kha_drill_phase phases[KHA_DRILL_PHASES];
	struct kha_drill_latency latency; /* all successful probes */
	uint64_t max_send_lag_us;	  /* filled by the prober, not by the analysis */
};

/* Computes every statistic of a probe series. Returns 0 or -ENOMEM. */
int kha_drill_analyze(const struct kha_drill_probe *p, size_t n, const struct kha_drill_marks *m,
		      struct kha_drill_stats *ret) KHA_WUR;

/* ---------------------------------------------------------------------------------------- */
/* Running a drill. */

enum kha_drill_step_state {
	KHA_DRILL_STEP_NOT_RUN,
	KHA_DRILL_STEP_RUNNING,
	KHA_DRILL_STEP_SUCCEEDED,    /* exit status 0 */
	KHA_DRILL_STEP_FAILED,	     /* non-zero exit or killed by a signal */
	KHA_DRILL_STEP_TIMED_OUT,    /* killed at its timeout */
	KHA_DRILL_STEP_SPAWN_FAILED, /* could not be started */
	KHA_DRILL_STEP_KILLED,	     /* killed because the drill was stopped hard */
};
const char *kha_drill_step_state_name(enum kha_drill_step_state s);
const char *kha_drill_step_kind_name(enum kha_drill_step_kind k);

struct kha_drill_step_result {
	char *name, *run, *node; /* owned; node only in rolling mode */
	enum kha_drill_step_kind kind;
	enum kha_drill_step_state state;
	uint64_t at_us;		       /* planned (KHA_DRILL_NONE: run on demand) */
	uint64_t started_us, ended_us; /* KHA_DRILL_NONE when it did not */
	int exit_code;		       /* -1 when it did not exit normally */
	int signal;		       /* the signal that ended it, 0 if none */
	bool on_abort;		       /* a recovery run because the drill stopped early */
	char *output;		       /* owned, NUL-terminated: stdout and stderr merged */
	size_t output_bytes;	       /* everything it wrote, kept or not */
};

enum kha_drill_node_state {
	KHA_DRILL_NODE_UNTOUCHED,
	KHA_DRILL_NODE_STOPPING,
	KHA_DRILL_NODE_DOWN,
	KHA_DRILL_NODE_STARTING,
	KHA_DRILL_NODE_CHECKING,
	KHA_DRILL_NODE_HEALTHY,
	KHA_DRILL_NODE_UNHEALTHY, /* never healthy within the healthy timeout */
	KHA_DRILL_NODE_FAILED,	  /* its stop or start command failed */
	KHA_DRILL_NODE_ABORTED,	  /* the drill stopped while this node was in progress */
};
const char *kha_drill_node_state_name(enum kha_drill_node_state s);

struct kha_drill_node_result {
	char *name; /* owned */
	enum kha_drill_node_state state;
	uint64_t stop_us, start_us, healthy_us; /* when each began; KHA_DRILL_NONE if not */
	unsigned checks;			/* health checks run */
	int last_check_exit;			/* -1 when none exited */
	char *last_check_output;		/* owned, may be NULL */
};

/* The write check (write mode). Counts are of probes (slots). */
struct kha_drill_writes {
	bool enabled;
	char *prefix;	 /* owned */
	char *endpoints; /* owned: where the keys were read back */
	size_t acked;	 /* answered 200: must be in the cluster */
	size_t failed;	 /* never reached the server (refused, TLS, name): must not be */
	size_t unknown;	 /* sent, outcome unknown (timeout, reset, error status) */
	bool verified;	 /* the read-back succeeded */
	char error[256]; /* why it did not */
	size_t found;	 /* keys of this drill read back */
	size_t lost;	 /* acknowledged but missing or with another value: must be 0 */
	size_t unknown_applied, unknown_missing;
	size_t unexpected;    /* present but never acknowledged nor possibly applied */
	uint64_t *lost_slots; /* owned: the first lost sequence numbers (at most 100) */
	size_t n_lost_slots;
	bool cleaned; /* the keys were deleted after the check */
	char cleanup_error[256];
};

/*
 * A break of the watch (Kubernetes mode): from the end of a watch request that was delivering
 * events (an error, a reset, or the server ending it at timeoutSeconds) to the first event of
 * the watch that replaced it.
 */
struct kha_drill_watch_gap {
	uint64_t broke_us; /* drill time */
	uint64_t back_us;  /* drill time; KHA_DRILL_NONE: never came back */
	bool clean;	   /* the server ended it (timeoutSeconds), not an error */
	char error[120];   /* why it ended */
};

#define KHA_DRILL_MAX_WATCH_GAPS 200

/* Kubernetes mode's own results. */
struct kha_drill_kube {
	bool enabled;
	char *namespace;	 /* owned */
	char *object;		 /* owned: the ConfigMap GET probes read and the watch follows */
	char *label;		 /* owned: "kha-drill=<run id>", on every object this drill made */
	bool watch;		 /* a watch was kept open */
	uint64_t watch_first_us; /* first event of the first watch; KHA_DRILL_NONE: none */
	size_t watch_requests, watch_events;
	struct kha_drill_watch_gap *gaps; /* owned, in time order */
	size_t n_gaps;			  /* breaks (clean ones included) */
	size_t n_gaps_dropped;		  /* beyond KHA_DRILL_MAX_WATCH_GAPS */
	uint64_t longest_gap_us;	  /* of the unclean breaks (open ones to the end) */
	char setup_error[200];		  /* why the probed object could not be made */
	/* write mode: the updates among the writes (PUTs of an object created earlier) */
	size_t updates;		  /* sent */
	size_t updates_acked;	  /* answered 200 */
	size_t updates_conflicts; /* answered 409: not applied (counted as failed) */
	size_t updates_lost;	  /* acknowledged, then not found (counted in writes.lost) */
};

struct kha_drill_report {
	/* what ran (copied from the scenario) */
	char *target; /* owned */
	enum kha_drill_target_kind kind;
	uint32_t rate;
	uint64_t interval_us, timeout_us, duration_us;
	bool keepalive, rolling;
	double slo_percent;
	uint64_t started_wall_us; /* realtime clock at t0, microseconds since the epoch */
	uint64_t t0_us;		  /* t0 on kha_now_us()'s clock (to align drills run together) */
	uint64_t elapsed_us;	  /* t0 to the end of the drill */

	bool interrupted;	/* stopped by the caller (a signal) */
	int interrupt_signal;	/* the value on_stop returned */
	bool aborted;		/* stopped early by a failed step */
	char abort_reason[256]; /* why it stopped early, "" when it did not */
	bool step_failed;	/* some step did not succeed */

	struct kha_drill_probe *probes; /* owned, slot order */
	size_t n_probes;
	struct kha_drill_step_result *steps; /* owned, in the order they started */
	size_t n_steps;
	struct kha_drill_node_result *nodes; /* owned, rolling mode */
	size_t n_nodes;
	bool rolling_completed;
	/* one sample message per failure kind (curl's text), "" when none */
	char error_samples[KHA_DRILL_PROBE__MAX][160];

	struct kha_drill_writes writes;
	struct kha_drill_kube kube;
	struct kha_drill_stats stats;
};

void kha_drill_report_free(struct kha_drill_report *r);

enum kha_drill_event_type {
	KHA_DRILL_EVENT_TICK,	    /* once a second */
	KHA_DRILL_EVENT_STEP_START, /* step set */
	KHA_DRILL_EVENT_STEP_END,   /* step set */
	KHA_DRILL_EVENT_NODE,	    /* node set: its state changed */
	KHA_DRILL_EVENT_ABORT,	    /* message set: why the drill stops early */
};

struct kha_drill_event {
	enum kha_drill_event_type type;
	uint64_t elapsed_us;
	size_t ok, failed, missed; /* so far */
	uint64_t outage_us;	   /* length of the current outage, 0 when the target answers */
	const struct kha_drill_step_result *step;
	const struct kha_drill_node_result *node;
	const char *message;
};

struct kha_drill_hooks {
	/*
	 * A file descriptor polled during the drill (a signalfd for SIGINT/SIGTERM), or -1. When
	 * it is readable, on_stop() is called; it must drain it and return > 0 to stop the drill
	 * (the value is recorded as interrupt_signal) or 0 to go on. The first stop ends probing,
	 * runs no further fault, runs the recoveries of faults already made and waits for the
	 * commands still running; a second stop kills them and ends at once.
	 */
	int stop_fd;
	int (*on_stop)(void *userdata);
	/* Progress and command events; the pointers are valid during the call only. */
	void (*on_event)(void *userdata, const struct kha_drill_event *ev);
	void *userdata;
};

/*
 * Runs a drill described by a checked scenario (kha_drill_scenario_check), blocking until it
 * ends. hooks may be NULL. On return 0, *ret_report is a new report (free it with
 * kha_drill_report_free) even when the drill was interrupted or aborted; its verdict tells how
 * it went. Returns a negative errno (d set) only when the drill could not run at all.
 */
int kha_drill_run(const struct kha_drill_scenario *sc, const struct kha_drill_hooks *hooks,
		  struct kha_drill_report **ret_report, struct kha_diag *d) KHA_WUR;

/*
 * Kubernetes mode's read-back: decodes one page of a ConfigMapList (JSON text) holding the
 * drill's writes: an item named PREFIX<slot> (slot < n, decimal) sets values[slot] to its
 * data.seq (a decimal slot number; KHA_DRILL_KUBE_BAD when it is missing or not one); any
 * other item counts in *ret_foreign. *ret_found counts the items set. *ret_continue receives
 * metadata.continue (a new string, NULL when the list is complete). Returns 0 or -EBADMSG (d
 * set: not a list, items without names) or -ENOMEM.
 */
#define KHA_DRILL_KUBE_BAD (KHA_DRILL_NONE - 1)
int kha_drill_kube_list_decode(const char *text, size_t len, const char *prefix, uint64_t *values,
			       size_t n, size_t *ret_found, size_t *ret_foreign,
			       char **ret_continue, struct kha_diag *d) KHA_WUR;

/*
 * Kubernetes mode's write check. Slot s of r->probes wrote the object created at slot
 * targets[s] (s itself for a create, an earlier slot for an update; KHA_DRILL_NONE or
 * s >= n_targets: not sent) with data.seq = s. values[c] (r->n_probes of them) is what the
 * read-back found in the object created at slot c: KHA_DRILL_NONE when it is absent. Writes to
 * one object form a chain in slot order, so an acknowledged write is kept when its object
 * holds it or a later write of the chain, and lost otherwise (a missing object, an older
 * value); a 409 Conflict is a failed write. Fills r->writes (counts, lost, lost_slots,
 * unknown_applied/missing, unexpected, verified) and r->kube's update counts.
 */
void kha_drill_kube_writes_check(struct kha_drill_report *r, const uint64_t *targets,
				 size_t n_targets, const uint64_t *values, size_t found,
				 size_t foreign);

/* The longest unclean watch break of k (open breaks end at end_us). */
uint64_t kha_drill_watch_longest_gap(const struct kha_drill_kube *k, uint64_t end_us);

/* ---------------------------------------------------------------------------------------- */
/* Verdict and output. */

enum kha_drill_verdict {
	KHA_DRILL_VERDICT_OK,
	KHA_DRILL_VERDICT_SLO_MISSED,	     /* availability under the SLO */
	KHA_DRILL_VERDICT_WRITES_LOST,	     /* acknowledged writes missing after the drill */
	KHA_DRILL_VERDICT_WRITES_UNVERIFIED, /* write mode: the read-back failed */
	KHA_DRILL_VERDICT_STEP_FAILED,	     /* a fault/recovery command failed (no --keep-going) */
	KHA_DRILL_VERDICT_ROLLING_STOPPED,   /* a node failed or never became healthy */
	KHA_DRILL_VERDICT_INTERRUPTED,
	KHA_DRILL_VERDICT_NOTHING_SUCCEEDED, /* no probe (or no write) ever succeeded: proves nothing */
};
enum kha_drill_verdict kha_drill_report_verdict(const struct kha_drill_report *r);
const char *kha_drill_verdict_name(enum kha_drill_verdict v);

/*
 * Exit codes of `kha drill` beyond the common ones (0 ok, 1 SLO missed, 2 acknowledged writes
 * lost, 69 writes could not be read back).
 */
#define KHA_DRILL_EXIT_STEP_FAILED     3
#define KHA_DRILL_EXIT_ROLLING_STOPPED 4
#define KHA_DRILL_EXIT_NOTHING	       5
/*
 * Without --slo, availability under this floor is reported loudly (kha_drill_report_under_floor)
 * but does not change the exit code: the operator did not say what is acceptable.
 */
#define KHA_DRILL_AVAILABILITY_FLOOR 90.0
bool kha_drill_report_under_floor(const struct kha_drill_report *r);
/* Interrupted: 128 + the signal, as a shell reports it. */
int kha_drill_verdict_exit_code(const struct kha_drill_report *r);

/*
 * The report as JSON text (the schema "kha.drill.report/v1" of docs/drill.md), NUL-terminated,
 * owned by the caller (free()). with_probes adds every probe (large). NULL on -ENOMEM.
 */
char *kha_drill_report_json(const struct kha_drill_report *r, bool with_probes);

/* Writes the human summary to out. Returns 0 or -EIO. */
int kha_drill_report_print(FILE *out, const struct kha_drill_report *r) KHA_WUR;

struct kha_drill_svg_opts {
	unsigned width, height; /* 0: 1000 x 480 */
	bool linear;		/* latency on a linear axis (default logarithmic) */
	const char *title;	/* NULL: "kha drill: TARGET" */
};
/* Writes the SVG timeline to out. opts may be NULL. Returns 0 or -EIO/-ENOMEM. */
int kha_drill_svg_write(FILE *out, const struct kha_drill_report *r,
			const struct kha_drill_svg_opts *opts) KHA_WUR;

#endif
