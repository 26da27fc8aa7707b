/* SPDX-License-Identifier: MIT */
/* lib/drill internals shared between its files; not part of the public API. */
#ifndef KHA_DRILL_INTERNAL_H
#define KHA_DRILL_INTERNAL_H

#include <sys/types.h>
#include "kha/drill.h"

/* "scheme://host[:port]" of a URL (new string), NULL when it does not parse or on ENOMEM. */
char *kha_drill__url_base(const char *url);

/*
 * Write mode. kha_drill__write_url: the URL puts go to (new string). kha_drill__write_body: the JSON body
 * of the put of slot `slot` (new string). kha_drill__verify_writes: reads the keys back and fills
 * r->writes (never fails: a failed read-back is recorded as unverified).
 */
char *kha_drill__write_url(const char *target);
char *kha_drill__write_body(const char *prefix, uint64_t slot);
void kha_drill__verify_writes(const struct kha_drill_scenario *sc, struct kha_drill_report *r);
/* What became of a write, by its probe's result (kha_drill__write_outcome). */
enum {
	KHA_DRILL__OUT_NOT_SENT,
	KHA_DRILL__OUT_ACKED,	/* acknowledged: must be there */
	KHA_DRILL__OUT_FAILED,	/* never reached the server, or refused by it: must not be */
	KHA_DRILL__OUT_UNKNOWN, /* timeouts, resets, error statuses, cancelled in flight */
};
int kha_drill__write_outcome(uint8_t result);
/* How many lost slots a report lists. */
#define KHA_DRILL_MAX_LOST_LISTED 100
/* Counts the writes by outcome (acked, failed, unknown) into r->writes. */
void kha_drill__writes_tally(struct kha_drill_report *r);
/*
 * Compares what was read back (present[slot]: 0 absent, 1 with its value, 2 another value) with
 * the outcome of each write: fills lost, unknown_applied/missing, unexpected; sets verified.
 */
void kha_drill__writes_compare(struct kha_drill_report *r, const unsigned char *present,
			       size_t found, size_t foreign);

/*
 * Kubernetes mode (kube.c). kha_drill__kube_prepare: loads the credentials, creates the probed
 * ConfigMap, fills r->kube and the probe URL (*ret_url, new string); *ret_ctx is freed by
 * kha_drill__kube_finish. kha_drill__kube_tls: sets the credentials on a probe's easy handle.
 * kha_drill__kube_watch_start/stop: the watch thread (times relative to t0). kha_drill__kube_finish: reads the writes back, deletes what the drill made.
 */
struct drill_kube;
int kha_drill__kube_prepare(const struct kha_drill_scenario *sc, struct kha_drill_report *r,
			    struct drill_kube **ret_ctx, char **ret_url, struct kha_diag *d);
struct kha_http_tls;
void kha_drill__kube_tls(const struct drill_kube *k, struct kha_http_tls *ret);
/* The kubeconfig's bearer token, NULL when it has none. */
const char *kha_drill__kube_token(const struct drill_kube *k);
int kha_drill__kube_watch_start(struct drill_kube *k, uint64_t t0);
void kha_drill__kube_watch_stop(struct drill_kube *k, struct kha_drill_report *r, uint64_t end_us);
/*
 * The write of slot `slot` (write mode): a create, or an update of an object whose last write
 * was acknowledged (see kube.c). *ret_url and *ret_body are new strings; *ret_put tells a PUT
 * from a POST. kha_drill__kube_write_done: its answer (status 0: none; body: the reply, may be
 * NULL), from which the object's next resourceVersion is learnt.
 */
int kha_drill__kube_write(struct drill_kube *k, uint64_t slot, char **ret_url, char **ret_body,
			  bool *ret_put);
void kha_drill__kube_write_done(struct drill_kube *k, uint64_t slot, long status, const char *body,
				size_t len);
void kha_drill__kube_finish(struct drill_kube *k, const struct kha_drill_scenario *sc,
			    struct kha_drill_report *r);
void kha_drill__kube_free(struct drill_kube *k);

/*
 * A shell command run by the drill: /bin/sh -c CMD in its own process group, stdin from
 * /dev/null, stdout and stderr merged into a pipe the drill reads without blocking, no other
 * descriptor (probes' sockets included). Completion
 * is the exit of the shell, not the end of its output: a command that leaves a daemon behind
 * holding the pipe still completes.
 */
struct drill_proc {
	pid_t pid; /* 0: not running */
	int pidfd; /* readable when it exits; -1 if the kernel lacks pidfd_open */
	int outfd; /* read end of the output pipe, -1 once closed */
	char *out; /* first KHA_DRILL_OUTPUT_MAX bytes, NUL-terminated */
	size_t out_len, out_total;
	uint64_t started_us, deadline_us; /* absolute kha_now_us() */
	bool exited, timed_out, killed;
	int wstatus;
};

/* Starts cmd. Returns 0 or a negative errno. */
int kha_drill__proc_spawn(struct drill_proc *p, const char *cmd, uint64_t timeout_us);
/* Reads available output; reaps the shell if it exited. Returns true once it has exited. */
bool kha_drill__proc_poll(struct drill_proc *p);
/* Sends sig to the process group. */
void kha_drill__proc_signal(struct drill_proc *p, int sig);
/* Kills the group (SIGKILL) and reaps the shell, blocking briefly; for cleanup. */
void kha_drill__proc_kill_wait(struct drill_proc *p);
/* Frees what the proc holds; ret_output receives its output if non-NULL. */
void kha_drill__proc_release(struct drill_proc *p, char **ret_output);

#endif
