/* SPDX-License-Identifier: MIT */
/*
 * The run engine's shared state, between the main thread (COMMAND and fencing) and the backend
 * threads (etcd: campaign + keep-alive; kube: one Lease thread). One mutex guards it; workers
 * sleep on the condition variable (CLOCK_MONOTONIC) and wake the main thread through an eventfd.
 *
 * A "session" (gen) is one lease (etcd) or one leadership term (kube). The main thread only runs
 * COMMAND for the current gen while `leading` and the fence is valid; when a session is lost
 * (fenced by the main thread, expired lease, our key deleted) `lost` is set and the workers
 * start a new gen.
 */
#ifndef KHA_ELECTION_INTERNAL_H
#define KHA_ELECTION_INTERNAL_H

#include <pthread.h>

#include "kha/election.h"
#include "kha/proc.h"

struct engine {
	const struct kha_elect_opts *o;
	uint64_t ttl_us, renew_deadline_us, interval_us;

	pthread_mutex_t mu;
	pthread_cond_t cond; /* broadcast on every change below */
	int wake_fd;	     /* eventfd: wakes the main thread */

	/* ---- guarded by mu ---- */
	uint64_t gen;		/* current session, 0 = none yet */
	int64_t lease;		/* etcd lease of gen (0 for kube) */
	char key[1024];		/* etcd: our key of gen, "" until put */
	bool leading;		/* gen holds a slot and its gates are open */
	int64_t token;		/* fencing token of gen */
	uint64_t last_renew_us; /* start of gen's last successful renewal */
	uint64_t ka_next_us;	/* etcd: next keep-alive */
	bool lost;		/* gen is over: stop COMMAND, start a new session */
	char leader[256];	/* the current leader's id as last seen ("" unknown) */
	char waiting_for[512];	/* why we do not lead ("" when leading) */
	int fatal;		/* a worker's error before the first session: kha_elect_run fails */
	struct kha_diag fatal_diag;
	bool up;   /* the first session was established */
	bool stop; /* main: shut down */

	/* aborts etcd watches (set with lost or stop, reset for a new session) */
	volatile sig_atomic_t cancel;
	int stop_fd; /* eventfd, readable once stop is set (kube requests) */

	pthread_t threads[2];
	size_t n_threads;
	struct kha_etcd *clients[3]; /* etcd: campaign's unary calls, keep-alive's, campaign's
				       watches (a stream's connection is not reused) */
};

/* Wakes the main thread (any thread). */
void kha_elect__wake_main(struct engine *e);
/* Under mu: broadcast and wake the main thread. */
void kha_elect__changed_locked(struct engine *e);
/*
 * Under mu: sleeps until `until_us` (kha_now_us clock), a broadcast, or stop. Returns whether
 * stop is set.
 */
bool kha_elect__wait_locked(struct engine *e, uint64_t until_us);
/* Sleeps (not holding mu) until until_us or until the session gen is over or stop. */
void kha_elect__sleep(struct engine *e, uint64_t gen, uint64_t until_us);
/* Under mu: whether gen is over (stop, lost, or a newer gen). */
bool kha_elect__session_over_locked(const struct engine *e, uint64_t gen);
/* Under mu: marks gen lost (no-op for an older gen) and aborts watches. */
void kha_elect__lose_locked(struct engine *e, uint64_t gen, const char *why);
/* Under mu: a renewal of gen that started at started_us succeeded. */
void kha_elect__renewed_locked(struct engine *e, uint64_t gen, uint64_t started_us);

/* A backend of the engine: etcd (run-etcd.c) or a Kubernetes Lease (run-kube.c). */
struct kha_elect__backend {
	/* starts its threads (main thread, before the loop) */
	int (*start)(struct engine *e, struct kha_diag *d);
	/* gives the slot away at once, after COMMAND stopped (main thread); NULL: the threads
	 * do it as they stop */
	void (*resign)(struct engine *e);
	/* frees what start made, after the threads were joined; NULL: nothing */
	void (*free)(struct engine *e);
};
extern const struct kha_elect__backend kha_elect__etcd_backend;
extern const struct kha_elect__backend kha_elect__kube_backend;

/*
 * Starts COMMAND: its own session and process group, SIGKILL when kha dies
 * (PR_SET_PDEATHSIG), stdin /dev/null, the signal mask and dispositions reset, env_add
 * added to the environment. Returns 0 and fills *ret (a child of ours), or -ENOENT/-EACCES
 * (not found, not executable: d names it), another negative errno.
 */
int kha_elect__spawn(const char *const *argv, const char *const *env_add, struct kha_proc *ret,
		     struct kha_diag *d);

#endif
