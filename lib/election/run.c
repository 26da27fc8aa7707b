// SPDX-License-Identifier: MIT
/*
 * The run engine's main thread: signals, COMMAND, and fencing. Backend threads (run-etcd.c,
 * run-kube.c) report sessions, leadership and renewals through struct engine; this thread
 * decides, from those and its own clock alone, whether COMMAND may run. No network call ever
 * happens here while COMMAND runs, so nothing can delay the fence.
 */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>

#include "election-internal.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

int kha_elect_restart_parse(const char *s, enum kha_elect_restart *ret)
{
	if (strcmp(s, "no") == 0 || strcmp(s, "never") == 0)
		*ret = KHA_ELECT_RESTART_NO;
	else if (strcmp(s, "on-failure") == 0)
		*ret = KHA_ELECT_RESTART_ON_FAILURE;
	else if (strcmp(s, "always") == 0)
		*ret = KHA_ELECT_RESTART_ALWAYS;
	else
		return -EINVAL;
	return 0;
}

/* ---- shared state --------------------------------------------------------------------------- */

void kha_election__wake_main(struct engine *e)
{
	uint64_t one = 1;
	ssize_t n = write(e->wake_fd, &one, sizeof(one));

	(void)n;
}

void kha_election__changed_locked(struct engine *e)
{
	pthread_cond_broadcast(&e->cond);
	kha_election__wake_main(e);
}

bool kha_election__wait_locked(struct engine *e, uint64_t until_us)
{
	struct timespec ts;
	uint64_t now_mono = kha_now_us(), left;

	if (e->stop)
		return true;
	if (until_us <= now_mono)
		return false;
	left = until_us - now_mono;
	/* the condition variable uses CLOCK_MONOTONIC, as kha_now_us does */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(left / KHA_USEC_PER_SEC);
	ts.tv_nsec += (long)(left % KHA_USEC_PER_SEC) * 1000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&e->cond, &e->mu, &ts);
	return e->stop;
}

bool kha_election__session_over_locked(const struct engine *e, uint64_t gen)
{
	return e->stop || e->lost || e->gen != gen;
}

void kha_election__sleep(struct engine *e, uint64_t gen, uint64_t until_us)
{
	pthread_mutex_lock(&e->mu);
	while (!kha_election__session_over_locked(e, gen) && kha_now_us() < until_us)
		kha_election__wait_locked(e, until_us);
	pthread_mutex_unlock(&e->mu);
}

void kha_election__lose_locked(struct engine *e, uint64_t gen, const char *why)
{
	if (gen != e->gen || e->lost)
		return;
	e->lost = true;
	e->leading = false;
	e->cancel = 1;
	kha_debug("session lost", "gen=%" PRIu64 " why=\"%s\"", gen, why);
	kha_election__changed_locked(e);
}

void kha_election__renewed_locked(struct engine *e, uint64_t gen, uint64_t started_us)
{
	if (gen != e->gen || e->lost)
		return;
	if (started_us > e->last_renew_us)
		e->last_renew_us = started_us;
	kha_election__changed_locked(e);
}

/* ---- COMMAND -------------------------------------------------------------------------------- */

enum stop_reason {
	STOP_NONE,
	STOP_LOST,    /* leadership lost (key deleted, lease expired, Lease taken) */
	STOP_FENCED,  /* no renewal within the renew deadline */
	STOP_EXITING, /* SIGTERM/SIGINT */
};

struct child {
	struct kha_proc p;
	bool running;
	enum stop_reason stopping; /* STOP_NONE while running normally */
	uint64_t term_us, kill_us;
	bool killed;
	uint64_t gen;
	int64_t token;
	uint64_t started_us;
};

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return KHA_EXIT_SOFTWARE;
}

static void status_text(char *buf, size_t size, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit=%d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "signal=%d", WTERMSIG(status));
	else
		snprintf(buf, size, "status=%d", status);
}

/*
 * Signals COMMAND's process group (the guard leads it). Safe without identity checks: the guard
 * is our child and is not reaped before child_exited() says so, so its id cannot have been
 * recycled. (kha_proc_signal is not used: it reaps a child it finds exited, which would hide
 * the exit from child_exited and let the group id be reused.)
 */
static int signal_group(struct child *ch, int sig)
{
	if (ch->p.exit_status != -1)
		return -ESRCH;
	if (kill(-ch->p.pid, sig) < 0)
		return -errno;
	return 0;
}

/*
 * Whether COMMAND's guard has exited; if so, SIGKILLs what is left of its process group (while
 * the unreaped guard still pins the group id, so no recycled id can be hit) and reaps it.
 */
static bool child_exited(struct child *ch)
{
	siginfo_t si = {0};

	if (ch->p.exit_status != -1)
		return true;
	if (waitid(P_PID, (id_t)ch->p.pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD; /* reaped behind our back: gone all the same */
	if (si.si_pid != ch->p.pid)
		return false;
	(void)kill(-ch->p.pid, SIGKILL);
	return kha_proc_wait(&ch->p, KHA_USEC_PER_SEC) == 0;
}

static int start_child(struct engine *e, struct child *ch, uint64_t gen, int64_t token)
{
	const struct kha_elect_opts *o = e->o;
	char tok[64], id[512], name[1200];
	const char *env[] = {tok, id, name, NULL};
	struct kha_diag d = {};
	int r;

	snprintf(tok, sizeof(tok), "KHA_FENCING_TOKEN=%" PRId64, token);
	snprintf(id, sizeof(id), "KHA_ID=%s", o->id);
	snprintf(name, sizeof(name), "%s=%s", o->env_name ? o->env_name : "KHA_ELECTION", o->name);
	r = kha_election__spawn(o->argv, env, &ch->p, &d);
	if (r < 0) {
		kha_error("cannot start COMMAND", "error=\"%s\"", d.msg);
		return r;
	}
	ch->running = true;
	ch->stopping = STOP_NONE;
	ch->killed = false;
	ch->gen = gen;
	ch->token = token;
	ch->started_us = kha_now_us();
	if (o->stats)
		atomic_fetch_add_explicit(&o->stats->child_starts, 1, memory_order_relaxed);
	kha_info("COMMAND started", "%s=%s pid=%d fencing_token=%" PRId64, o->what, o->name,
		 (int)ch->p.pid, token);
	return 0;
}

static void stop_child(struct engine *e, struct child *ch, const struct kha_fence *f,
		       enum stop_reason why)
{
	uint64_t now = kha_now_us();
	int r;

	if (!ch->running || ch->stopping != STOP_NONE)
		return;
	ch->stopping = why;
	ch->term_us = now;
	/* after a loss the lease may expire any moment: the fence bounds the grace */
	ch->kill_us = kha_fence_kill_at(f, now);
	if (why == STOP_EXITING && !kha_fence_ok(f, now))
		ch->kill_us = now;
	r = signal_group(ch, ch->kill_us > now ? SIGTERM : SIGKILL);
	ch->killed = ch->kill_us <= now;
	if (r < 0 && r != -ESRCH)
		kha_warn("cannot signal COMMAND", "pid=%d error=\"%s\"", (int)ch->p.pid,
			 strerror(-r));
	(void)e;
}

/* ---- the main loop -------------------------------------------------------------------------- */

struct snapshot {
	uint64_t gen;
	bool leading, lost, up;
	int64_t token;
	uint64_t last_renew_us;
	int fatal;
	char leader[256];
	char waiting_for[512];
};

static void take_snapshot(struct engine *e, struct snapshot *s)
{
	pthread_mutex_lock(&e->mu);
	s->gen = e->gen;
	s->leading = e->leading && !e->lost;
	s->lost = e->lost;
	s->up = e->up;
	s->token = e->token;
	s->last_renew_us = e->last_renew_us;
	s->fatal = e->fatal;
	memcpy(s->leader, e->leader, sizeof(s->leader));
	memcpy(s->waiting_for, e->waiting_for, sizeof(s->waiting_for));
	pthread_mutex_unlock(&e->mu);
}

static int setup_signals(sigset_t *old)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	/* blocked before any thread exists, so every thread inherits the mask */
	if (pthread_sigmask(SIG_BLOCK, &set, old) != 0)
		return -EINVAL;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	return fd;
}

static void stop_workers(struct engine *e)
{
	uint64_t one = 1;
	ssize_t n;

	pthread_mutex_lock(&e->mu);
	e->stop = true;
	e->cancel = 1;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
	n = write(e->stop_fd, &one, sizeof(one));
	(void)n;
}

static void join_workers(struct engine *e)
{
	for (size_t i = 0; i < e->n_threads; i++)
		pthread_join(e->threads[i], NULL);
	e->n_threads = 0;
}

static void set_leader_stat(const struct kha_elect_opts *o, bool on)
{
	if (o->stats)
		atomic_store_explicit(&o->stats->is_leader, on ? 1 : 0, memory_order_relaxed);
}

static void drain(int fd)
{
	uint64_t v;
	ssize_t n;

	do {
		n = read(fd, &v, sizeof(v));
	} while (n > 0);
}

int kha_elect_run(const struct kha_elect_opts *o, int *ret_status, struct kha_diag *d)
{
	struct engine e = {.o = o, .wake_fd = -1, .stop_fd = -1};
	struct child ch = {.running = false};
	struct kha_fence fence;
	pthread_condattr_t ca;
	sigset_t oldmask;
	kha_autoclose int sfd = -1;
	uint64_t restart_at = 0, backoff, fence_gen = 0, seen_gen = 0;
	bool exiting = false, finished = false, was_leading = false;
	char last_wait[512] = "";
	int status = 0, r;

	if (!o->name || !o->name[0])
		return kha_diag_set(d, EINVAL, "the %s name is empty", o->what);
	if (!o->argv || !o->argv[0])
		return kha_diag_set(d, EINVAL, "no COMMAND given");
	e.ttl_us = o->ttl_us;
	e.renew_deadline_us = o->renew_deadline_us ? o->renew_deadline_us : o->ttl_us * 2 / 3;
	e.interval_us = o->renew_interval_us ? o->renew_interval_us : o->ttl_us / 3;
	r = kha_fence_init(&fence, e.ttl_us, e.renew_deadline_us, o->grace_us, d);
	if (r < 0)
		return r;
	if (e.interval_us >= e.renew_deadline_us)
		return kha_diag_set(d, EINVAL,
				    "the renew interval must be shorter than the renew deadline");
	backoff = o->backoff_initial_us ? o->backoff_initial_us : KHA_USEC_PER_SEC;

	sfd = setup_signals(&oldmask);
	if (sfd < 0)
		return kha_diag_set(d, -sfd, "signalfd: %s", strerror(-sfd));
	e.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	e.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&e.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (e.wake_fd < 0 || e.stop_fd < 0) {
		r = kha_diag_set(d, errno, "eventfd: %s", strerror(errno));
		goto out;
	}

	r = o->kube ? kha_election__kube_start(&e, d) : kha_election__etcd_start(&e, d);
	if (r < 0)
		goto out;

	for (;;) {
		struct pollfd pfds[3] = {
			{.fd = sfd, .events = POLLIN},
			{.fd = e.wake_fd, .events = POLLIN},
			{.fd = -1, .events = POLLIN},
		};
		struct snapshot s;
		uint64_t now, next = UINT64_MAX;
		struct timespec ts, *tsp = NULL;

		take_snapshot(&e, &s);
		now = kha_now_us();
		if (s.fatal && !s.up) {
			r = kha_diag_set(d, s.fatal, "%s", e.fatal_diag.msg);
			stop_workers(&e);
			goto out;
		}
		if (s.gen != fence_gen) {
			kha_fence_reset(&fence);
			fence_gen = s.gen;
		}
		kha_fence_renewed(&fence, s.last_renew_us);

		/* ---- logs of state changes ---- */
		if (s.leading && (!was_leading || s.gen != seen_gen)) {
			kha_info("acquired", "%s=%s id=%s fencing_token=%" PRId64, o->what, o->name,
				 o->id, s.token);
			if (o->stats)
				atomic_fetch_add_explicit(&o->stats->transitions, 1,
							  memory_order_relaxed);
			last_wait[0] = '\0';
		} else if (!s.leading && was_leading) {
			kha_warn("lost", "%s=%s id=%s", o->what, o->name, o->id);
			if (o->stats)
				atomic_fetch_add_explicit(&o->stats->transitions, 1,
							  memory_order_relaxed);
		}
		if (!s.leading && s.up && s.waiting_for[0] && strcmp(s.waiting_for, last_wait) &&
		    strcmp(s.waiting_for, "campaigning") != 0) {
			kha_info("waiting", "%s=%s id=%s leader=\"%s\" reason=\"%s\"", o->what,
				 o->name, o->id, s.leader, s.waiting_for);
			memcpy(last_wait, s.waiting_for, sizeof(last_wait));
		}
		was_leading = s.leading;
		seen_gen = s.gen;
		set_leader_stat(o, s.leading && kha_fence_ok(&fence, now));

		/* ---- COMMAND ---- */
		if (ch.running && ch.stopping == STOP_NONE) {
			if (exiting) {
				stop_child(&e, &ch, &fence, STOP_EXITING);
			} else if (!s.leading || s.gen != ch.gen) {
				kha_warn("stopping COMMAND: leadership lost", "%s=%s pid=%d",
					 o->what, o->name, (int)ch.p.pid);
				stop_child(&e, &ch, &fence, STOP_LOST);
			} else if (!kha_fence_ok(&fence, now)) {
				char a[32];

				kha_error("fenced: no renewal within the renew deadline, stopping "
					  "COMMAND before the lease can expire",
					  "%s=%s pid=%d renew_deadline=%s", o->what, o->name,
					  (int)ch.p.pid,
					  kha_format_duration(a, sizeof(a), e.renew_deadline_us));
				if (o->stats)
					atomic_fetch_add_explicit(&o->stats->fenced, 1,
								  memory_order_relaxed);
				stop_child(&e, &ch, &fence, STOP_FENCED);
				pthread_mutex_lock(&e.mu);
				kha_election__lose_locked(&e, s.gen, "fenced");
				pthread_mutex_unlock(&e.mu);
			}
		}
		if (ch.running && ch.stopping != STOP_NONE && !ch.killed && now >= ch.kill_us) {
			kha_warn("COMMAND did not stop in time, SIGKILL", "pid=%d", (int)ch.p.pid);
			kha_ignore(signal_group(&ch, SIGKILL));
			ch.killed = true;
		}
		if (ch.running && child_exited(&ch)) {
			char st[32];
			enum stop_reason why = ch.stopping;
			uint64_t ran = now - ch.started_us;

			status_text(st, sizeof(st), ch.p.exit_status);
			kha_info("COMMAND exited", "%s=%s pid=%d %s", o->what, o->name,
				 (int)ch.p.pid, st);
			status = status_to_exit(ch.p.exit_status);
			kha_proc_release(&ch.p);
			ch.running = false;
			if (why == STOP_EXITING) {
				status = 0;
			} else if ((why == STOP_LOST || why == STOP_FENCED) && o->exit_on_loss) {
				status = KHA_EXIT_UNAVAILABLE;
				kha_error("COMMAND was stopped because the slot was lost", "%s=%s",
					  o->what, o->name);
				finished = true;
			} else if (why == STOP_NONE) {
				bool again =
					o->restart == KHA_ELECT_RESTART_ALWAYS ||
					(o->restart == KHA_ELECT_RESTART_ON_FAILURE && status != 0);

				if (!again) {
					finished = true;
				} else {
					uint64_t cap = o->backoff_max_us ? o->backoff_max_us
									 : 30 * KHA_USEC_PER_SEC;
					char b[32];

					if (ran >= cap)
						backoff = o->backoff_initial_us
								  ? o->backoff_initial_us
								  : KHA_USEC_PER_SEC;
					restart_at = now + backoff;
					kha_info("restarting COMMAND", "in=%s",
						 kha_format_duration(b, sizeof(b), backoff));
					backoff = KHA_MIN(backoff * 2, cap);
				}
			}
		}
		if (exiting && !ch.running)
			break;
		if (finished && !ch.running)
			break;
		if (!ch.running && !exiting && !finished && s.leading &&
		    kha_fence_ok(&fence, now) && (!restart_at || now >= restart_at)) {
			restart_at = 0;
			if (start_child(&e, &ch, s.gen, s.token) < 0) {
				status = KHA_EXIT_UNAVAILABLE;
				finished = true;
				break;
			}
		}
		if (!s.leading)
			restart_at = 0;

		/* ---- wait ---- */
		if (ch.running && ch.stopping == STOP_NONE && kha_fence_deadline(&fence))
			next = kha_fence_deadline(&fence);
		if (ch.running && ch.stopping != STOP_NONE && !ch.killed)
			next = KHA_MIN(next, ch.kill_us);
		if (ch.running && ch.killed)
			next = KHA_MIN(next, now + 10 * KHA_USEC_PER_MSEC);
		if (restart_at)
			next = KHA_MIN(next, restart_at);
		if (ch.running && ch.p.pidfd < 0)
			next = KHA_MIN(next, now + 20 * KHA_USEC_PER_MSEC);
		if (next != UINT64_MAX) {
			uint64_t left = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(left / KHA_USEC_PER_SEC);
			ts.tv_nsec = (long)(left % KHA_USEC_PER_SEC) * 1000;
			tsp = &ts;
		}
		if (ch.running && ch.p.pidfd >= 0)
			pfds[2].fd = ch.p.pidfd;
		r = ppoll(pfds, 3, tsp, NULL);
		if (r < 0 && errno != EINTR) {
			r = kha_diag_set(d, errno, "ppoll: %s", strerror(errno));
			break;
		}
		if (pfds[1].revents)
			drain(e.wake_fd);
		if (pfds[0].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
					if (!exiting)
						kha_info("stopping", "signal=%s",
							 si.ssi_signo == SIGTERM ? "SIGTERM"
										 : "SIGINT");
					exiting = true;
				} else if (si.ssi_signo == SIGHUP && ch.running) {
					/* a reload is COMMAND's business: systemd's ExecReload
					 * reaches it through kha */
					if (signal_group(&ch, SIGHUP) == 0)
						kha_info("SIGHUP forwarded to COMMAND", "pid=%d",
							 (int)ch.p.pid);
				}
			}
		}
	}
	if (exiting && !finished)
		status = 0;
	set_leader_stat(o, false);
	/* COMMAND is gone: now give the slot away at once */
	stop_workers(&e);
	if (!o->kube)
		kha_election__etcd_resign(&e);
	*ret_status = status;
	r = 0;
out:
	stop_workers(&e);
	join_workers(&e);
	kha_election__etcd_free(&e);
	if (ch.running) {
		/* only on an internal error: never leave COMMAND behind */
		kha_ignore(kha_proc_stop(&ch.p, 0, KHA_USEC_PER_SEC, NULL));
		kha_proc_release(&ch.p);
	}
	pthread_cond_destroy(&e.cond);
	pthread_mutex_destroy(&e.mu);
	if (e.wake_fd >= 0)
		close(e.wake_fd);
	if (e.stop_fd >= 0)
		close(e.stop_fd);
	{
		/* a second SIGTERM must not kill us with the default action once unblocked */
		struct signalfd_siginfo si;

		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			;
	}
	pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	return r;
}
