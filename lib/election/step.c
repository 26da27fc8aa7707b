// SPDX-License-Identifier: MIT
/*
 * The decisions of kha_elect_run's main loop as a pure function of (state, observation, now),
 * in the manner of lib/vrrp/fsm.c. Invariants it keeps:
 *
 *   - COMMAND runs only for the current session, while it leads and the fence is valid (a
 *     renewal started less than the renew deadline ago). A new session starts with no renewal.
 *   - Once COMMAND is told to stop, SIGKILL follows at the latest a margin before the lease can
 *     expire on the server (kha_elect_fence_kill_at), so two COMMANDs never run at once; when exiting
 *     without a valid fence, at once.
 *   - A fenced session is given up (DO_LOSE): the backend starts a new one, never trusts the
 *     old lease again.
 *   - Restarts (restart on-failure/always) wait a back-off that doubles per quick exit, capped,
 *     and resets after a run at least as long as the cap; leaving the lead cancels a pending
 *     restart. The policy is st->policy: o's at start, replaced by a SIGHUP reload.
 */
#include <sys/wait.h>

#include "kha/election.h"
#include "kha/banned.h"

#define DEFAULT_BACKOFF_US     KHA_USEC_PER_SEC
#define DEFAULT_BACKOFF_MAX_US (30 * KHA_USEC_PER_SEC)
#define KILLED_POLL_US	       (10 * KHA_USEC_PER_MSEC)

int kha_elect_step_init(struct kha_elect_step_state *st, const struct kha_elect_opts *o,
			struct kha_diag *d)
{
	uint64_t deadline = o->renew_deadline_us ? o->renew_deadline_us : o->ttl_us * 2 / 3;
	uint64_t interval = o->renew_interval_us ? o->renew_interval_us : o->ttl_us / 3;
	int r;

	*st = (struct kha_elect_step_state){0};
	r = kha_elect_fence_init(&st->fence, o->ttl_us, deadline, o->grace_us, d);
	if (r < 0)
		return r;
	if (interval >= deadline)
		return kha_diag_set(d, EINVAL,
				    "the renew interval must be shorter than the renew deadline");
	st->policy = (struct kha_elect_reloaded){.restart = o->restart,
						 .backoff_initial_us = o->backoff_initial_us,
						 .backoff_max_us = o->backoff_max_us};
	st->backoff_us = o->backoff_initial_us ? o->backoff_initial_us : DEFAULT_BACKOFF_US;
	return 0;
}

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return KHA_EXIT_SOFTWARE;
}

static void stop(struct kha_elect_step_state *st, enum kha_elect_stop why, uint64_t now,
		 struct kha_elect_actions *a)
{
	st->stopping = why;
	/* after a loss the lease may expire any moment: the fence bounds the grace */
	st->kill_us = kha_elect_fence_kill_at(&st->fence, now);
	if (why == KHA_ELECT_STOP_EXITING && !kha_elect_fence_ok(&st->fence, now))
		st->kill_us = now;
	st->killed = st->kill_us <= now;
	a->todo |= st->killed ? KHA_ELECT_DO_KILL : KHA_ELECT_DO_TERM;
	a->stop = why;
}

static void exited(struct kha_elect_step_state *st, const struct kha_elect_opts *o, int wstatus,
		   uint64_t now, struct kha_elect_actions *a)
{
	enum kha_elect_stop why = st->stopping;

	a->todo |= KHA_ELECT_DO_REAP;
	st->status = status_to_exit(wstatus);
	st->running = false;
	if (why == KHA_ELECT_STOP_EXITING) {
		st->status = 0;
	} else if (why != KHA_ELECT_STOP_NONE && o->exit_on_loss) {
		st->status = KHA_EXIT_UNAVAILABLE;
		st->finished = true;
		a->todo |= KHA_ELECT_DO_LOSS_EXIT;
	} else if (why == KHA_ELECT_STOP_NONE) {
		const struct kha_elect_reloaded *p = &st->policy;
		bool again = p->restart == KHA_ELECT_RESTART_ALWAYS ||
			     (p->restart == KHA_ELECT_RESTART_ON_FAILURE && st->status != 0);
		uint64_t cap = p->backoff_max_us ? p->backoff_max_us : DEFAULT_BACKOFF_MAX_US;

		if (!again) {
			st->finished = true;
			return;
		}
		/* a run as long as the cap was no quick failure: start the back-off over */
		if (now - st->started_us >= cap)
			st->backoff_us =
				p->backoff_initial_us ? p->backoff_initial_us : DEFAULT_BACKOFF_US;
		st->restart_at_us = now + st->backoff_us;
		a->restart_in_us = st->backoff_us;
		a->todo |= KHA_ELECT_DO_RESTART;
		st->backoff_us = KHA_MIN(st->backoff_us * 2, cap);
	}
}

void kha_elect_step(struct kha_elect_step_state *st, const struct kha_elect_opts *o,
		    const struct kha_elect_observation *obs, uint64_t now,
		    struct kha_elect_actions *ret)
{
	struct kha_elect_actions a = {.next_us = UINT64_MAX};
	uint64_t deadline;

	if (obs->exit_requested)
		st->exiting = true;
	if (obs->gen != st->fence_gen) {
		kha_elect_fence_reset(&st->fence);
		st->fence_gen = obs->gen;
	}
	kha_elect_fence_renewed(&st->fence, obs->last_renew_us);

	if (obs->leading && (!st->was_leading || obs->gen != st->seen_gen))
		a.todo |= KHA_ELECT_DO_ACQUIRED;
	else if (!obs->leading && st->was_leading)
		a.todo |= KHA_ELECT_DO_LOST;
	st->was_leading = obs->leading;
	st->seen_gen = obs->gen;
	a.leader_ok = obs->leading && kha_elect_fence_ok(&st->fence, now);

	/* ---- COMMAND ---- */
	if (st->running && st->stopping == KHA_ELECT_STOP_NONE) {
		if (st->exiting) {
			stop(st, KHA_ELECT_STOP_EXITING, now, &a);
		} else if (!obs->leading || obs->gen != st->child_gen) {
			stop(st, KHA_ELECT_STOP_LOST, now, &a);
		} else if (!kha_elect_fence_ok(&st->fence, now)) {
			stop(st, KHA_ELECT_STOP_FENCED, now, &a);
			a.todo |= KHA_ELECT_DO_LOSE;
		}
	}
	if (st->running && st->stopping != KHA_ELECT_STOP_NONE && !st->killed &&
	    now >= st->kill_us) {
		a.todo |= KHA_ELECT_DO_KILL;
		a.stop = st->stopping;
		a.kill_late = true;
		st->killed = true;
	}
	if (st->running && obs->child_exited)
		exited(st, o, obs->child_status, now, &a);
	if ((st->exiting || st->finished) && !st->running) {
		if (st->exiting && !st->finished)
			st->status = 0;
		a.todo |= KHA_ELECT_DO_QUIT;
		*ret = a;
		return;
	}
	if (!st->running && obs->leading && kha_elect_fence_ok(&st->fence, now) &&
	    (!st->restart_at_us || now >= st->restart_at_us)) {
		st->restart_at_us = 0;
		st->running = true;
		st->stopping = KHA_ELECT_STOP_NONE;
		st->killed = false;
		st->child_gen = obs->gen;
		st->started_us = now;
		a.todo |= KHA_ELECT_DO_START;
	}
	if (!obs->leading)
		st->restart_at_us = 0;

	/* ---- when to look again ---- */
	deadline = kha_elect_fence_deadline(&st->fence);
	if (st->running && st->stopping == KHA_ELECT_STOP_NONE && deadline)
		a.next_us = deadline;
	if (st->running && st->stopping != KHA_ELECT_STOP_NONE && !st->killed)
		a.next_us = KHA_MIN(a.next_us, st->kill_us);
	if (st->running && st->killed)
		a.next_us = KHA_MIN(a.next_us, now + KILLED_POLL_US);
	if (st->restart_at_us)
		a.next_us = KHA_MIN(a.next_us, st->restart_at_us);
	*ret = a;
}

void kha_elect_step_start_failed(struct kha_elect_step_state *st)
{
	st->running = false;
	st->status = KHA_EXIT_UNAVAILABLE;
	st->finished = true;
}
