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

int kha_elect_check_ttl(uint64_t ttl_us, bool kube_lease, struct kha_diag *d)
{
	uint64_t max_s = kube_lease ? KHA_KUBE_LEASE_MAX_TTL_S : KHA_ETCD_LEASE_MAX_TTL_S;
	/* the TTL sent is rounded up to whole seconds */
	uint64_t s = ttl_us / KHA_USEC_PER_SEC + (ttl_us % KHA_USEC_PER_SEC != 0);

	if (!kube_lease && ttl_us < KHA_USEC_PER_SEC)
		return kha_diag_set(d, EINVAL, "--ttl: etcd leases are whole seconds, at least 1s");
	if (s > max_s)
		return kha_diag_set(d, EINVAL, "--ttl: at most %" PRIu64 "s (%s), not %" PRIu64 "s",
				    max_s,
				    kube_lease ? "a Lease's leaseDurationSeconds is an int32"
					       : "the longest lease etcd grants",
				    s);
	return 0;
}

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

const char *kha_elect_restart_name(enum kha_elect_restart r)
{
	return r == KHA_ELECT_RESTART_ALWAYS	   ? "always"
	       : r == KHA_ELECT_RESTART_ON_FAILURE ? "on-failure"
						   : "no";
}

/* ---- COMMAND -------------------------------------------------------------------------------- */

/* COMMAND's guard; whether it runs and why it stops is the step's (st.running...). */
struct child {
	struct kha_proc p;
};

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

static int start_child(struct engine *e, struct child *ch, int64_t token)
{
	const struct kha_elect_opts *o = e->o;
	char tok[64], id[512], name[1200];
	const char *env[] = {tok, id, name, NULL};
	struct kha_diag d = {};
	int r;

	snprintf(tok, sizeof(tok), "KHA_FENCING_TOKEN=%" PRId64, token);
	snprintf(id, sizeof(id), "KHA_ID=%s", o->id);
	snprintf(name, sizeof(name), "%s=%s", o->env_name ? o->env_name : "KHA_ELECTION", o->name);
	r = kha_elect__spawn(o->argv, env, &ch->p, &d);
	if (r < 0) {
		kha_error("cannot start COMMAND", "error=%s", KHA_LOGQ(d.msg));
		return r;
	}
	if (o->stats)
		atomic_fetch_add_explicit(&o->stats->child_starts, 1, memory_order_relaxed);
	kha_info("COMMAND started", "%s=%s pid=%d fencing_token=%" PRId64, o->what,
		 KHA_LOGQ(o->name), (int)ch->p.pid, token);
	return 0;
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

/* Performs what the step decided about COMMAND (signals, logs, metrics, the session). */
static void perform_stop(struct engine *e, struct child *ch, const struct kha_elect_step_state *st,
			 const struct kha_elect_actions *a, uint64_t gen)
{
	const struct kha_elect_opts *o = e->o;
	int r;

	if (!(a->todo & (KHA_ELECT_DO_TERM | KHA_ELECT_DO_KILL)))
		return;
	if (a->kill_late) {
		kha_warn("COMMAND did not stop in time, SIGKILL", "pid=%d", (int)ch->p.pid);
	} else if (a->stop == KHA_ELECT_STOP_LOST) {
		kha_warn("stopping COMMAND: leadership lost", "%s=%s pid=%d", o->what,
			 KHA_LOGQ(o->name), (int)ch->p.pid);
	} else if (a->stop == KHA_ELECT_STOP_FENCED) {
		char t[32];

		kha_error("fenced: no renewal within the renew deadline, stopping COMMAND before "
			  "the lease can expire",
			  "%s=%s pid=%d renew_deadline=%s", o->what, KHA_LOGQ(o->name),
			  (int)ch->p.pid,
			  kha_format_duration(t, sizeof(t), st->fence.renew_deadline_us));
		if (o->stats)
			atomic_fetch_add_explicit(&o->stats->fenced, 1, memory_order_relaxed);
	}
	r = signal_group(ch, a->todo & KHA_ELECT_DO_KILL ? SIGKILL : SIGTERM);
	if (r < 0 && r != -ESRCH && !a->kill_late)
		kha_warn("cannot signal COMMAND", "pid=%d error=\"%s\"", (int)ch->p.pid,
			 strerror(-r));
	if (a->todo & KHA_ELECT_DO_LOSE) {
		pthread_mutex_lock(&e->mu);
		kha_elect__lose_locked(e, gen, "fenced");
		pthread_mutex_unlock(&e->mu);
	}
}

/* Logs the state changes the step reported, once each. */
static void log_changes(const struct kha_elect_opts *o, const struct snapshot *s,
			const struct kha_elect_actions *a, char *last_wait, size_t size)
{
	if (a->todo & KHA_ELECT_DO_ACQUIRED) {
		kha_info("acquired", "%s=%s id=%s fencing_token=%" PRId64, o->what,
			 KHA_LOGQ(o->name), KHA_LOGQ(o->id), s->token);
		last_wait[0] = '\0';
	} else if (a->todo & KHA_ELECT_DO_LOST) {
		kha_warn("lost", "%s=%s id=%s", o->what, KHA_LOGQ(o->name), KHA_LOGQ(o->id));
	}
	if (o->stats && (a->todo & (KHA_ELECT_DO_ACQUIRED | KHA_ELECT_DO_LOST)))
		atomic_fetch_add_explicit(&o->stats->transitions, 1, memory_order_relaxed);
	if (!s->leading && s->up && s->waiting_for[0] && strcmp(s->waiting_for, last_wait) &&
	    strcmp(s->waiting_for, "campaigning") != 0) {
		/* a lock has holders, an election a leader */
		kha_info("waiting", "%s=%s id=%s %s=%s reason=%s", o->what, KHA_LOGQ(o->name),
			 KHA_LOGQ(o->id), strcmp(o->what, "lock") == 0 ? "holder" : "leader",
			 KHA_LOGQ(s->leader), KHA_LOGQ(s->waiting_for));
		snprintf(last_wait, size, "%s", s->waiting_for);
	}
}

/* SIGHUP: kha's own configuration read again; on failure the running one is kept. */
static void reload(const struct kha_elect_opts *o, struct kha_elect_reloaded *live)
{
	struct kha_elect_reloaded fresh = *live;
	struct kha_diag d = {};
	char a[32], b[32];

	if (o->reload(o->reload_userdata, &fresh, &d) < 0) {
		kha_error("configuration not reloaded, keeping the running one", "error=%s",
			  KHA_LOGQ(d.msg));
		if (o->stats)
			atomic_fetch_add_explicit(&o->stats->reload_failures, 1,
						  memory_order_relaxed);
		return;
	}
	*live = fresh;
	if (o->stats)
		atomic_fetch_add_explicit(&o->stats->reloads, 1, memory_order_relaxed);
	if (o->exit_on_loss) /* kha lock: COMMAND is never restarted */
		kha_info("configuration reloaded", "%s", "");
	else
		kha_info("configuration reloaded",
			 "restart=%s restart_delay=%s restart_delay_max=%s",
			 kha_elect_restart_name(live->restart),
			 kha_format_duration(a, sizeof(a), live->backoff_initial_us),
			 kha_format_duration(b, sizeof(b), live->backoff_max_us));
}

/*
 * Reads the signals; returns whether SIGTERM or SIGINT arrived. SIGHUP goes to COMMAND and
 * reloads kha's own configuration (the step's restart policy).
 */
static bool read_signals(int sfd, const struct kha_elect_opts *o, struct child *ch,
			 struct kha_elect_step_state *st)
{
	bool running = st->running, exiting = st->exiting;
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (!exiting && !stop)
				kha_info("stopping", "signal=%s",
					 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			stop = true;
		} else if (si.ssi_signo == SIGHUP) {
			/* COMMAND reloads too: systemd's ExecReload reaches it through kha */
			if (running && signal_group(ch, SIGHUP) == 0)
				kha_info("SIGHUP forwarded to COMMAND", "pid=%d", (int)ch->p.pid);
			if (o->reload)
				reload(o, &st->policy);
		}
	}
	return stop;
}

/*
 * One pass of the main loop: observe (the sessions' snapshot, the guard's exit), decide
 * (kha_elect_step), perform. Returns 0 with the deadline of the next pass in *ret_next_us, 1
 * to leave the loop (st->status says how), or a negative errno when the backend failed
 * before its first session.
 */
static int pass(struct engine *e, struct child *ch, struct kha_elect_step_state *st,
		bool exit_requested, char *last_wait, size_t size, uint64_t *ret_next_us,
		struct kha_diag *d)
{
	const struct kha_elect_opts *o = e->o;
	struct kha_elect_observation obs;
	struct kha_elect_actions a;
	struct snapshot s;
	uint64_t now;

	take_snapshot(e, &s);
	if (s.fatal && !s.up)
		return kha_diag_set(d, s.fatal, "%s", e->fatal_diag.msg);
	now = kha_now_us();
	obs = (struct kha_elect_observation){
		.gen = s.gen,
		.leading = s.leading,
		.last_renew_us = s.last_renew_us,
		.exit_requested = exit_requested,
		.child_exited = st->running && child_exited(ch),
	};
	obs.child_status = ch->p.exit_status;
	kha_elect_step(st, o, &obs, now, &a);

	log_changes(o, &s, &a, last_wait, size);
	set_leader_stat(o, a.leader_ok);
	perform_stop(e, ch, st, &a, s.gen);
	if (a.todo & KHA_ELECT_DO_REAP) {
		char stx[32];

		status_text(stx, sizeof(stx), ch->p.exit_status);
		kha_info("COMMAND exited", "%s=%s pid=%d %s", o->what, KHA_LOGQ(o->name),
			 (int)ch->p.pid, stx);
		kha_proc_release(&ch->p);
	}
	if (a.todo & KHA_ELECT_DO_LOSS_EXIT)
		kha_error("COMMAND was stopped because the slot was lost", "%s=%s", o->what,
			  KHA_LOGQ(o->name));
	if (a.todo & KHA_ELECT_DO_RESTART) {
		char b[32];

		kha_info("restarting COMMAND", "in=%s",
			 kha_format_duration(b, sizeof(b), a.restart_in_us));
	}
	if (a.todo & KHA_ELECT_DO_QUIT)
		return 1;
	if ((a.todo & KHA_ELECT_DO_START) && start_child(e, ch, s.token) < 0) {
		kha_elect_step_start_failed(st);
		return 1;
	}
	*ret_next_us = a.next_us;
	/* without a pidfd, the guard's exit is noticed by looking */
	if (st->running && ch->p.pidfd < 0)
		*ret_next_us = KHA_MIN(*ret_next_us, now + 20 * KHA_USEC_PER_MSEC);
	return 0;
}

/*
 * Sleeps until next_us (UINT64_MAX: no deadline), a signal, a backend's wake-up or the guard's
 * exit. Returns 0, or a negative errno when ppoll failed (d says so).
 */
static int wait_events(struct engine *e, int sfd, struct child *ch, struct kha_elect_step_state *st,
		       uint64_t next_us, bool *exit_requested, struct kha_diag *d)
{
	struct pollfd pfds[3] = {
		{.fd = sfd, .events = POLLIN},
		{.fd = e->wake_fd, .events = POLLIN},
		{.fd = st->running && ch->p.pidfd >= 0 ? ch->p.pidfd : -1, .events = POLLIN},
	};
	struct timespec ts, *tsp = NULL;
	uint64_t now = kha_now_us();

	if (next_us != UINT64_MAX) {
		uint64_t left = next_us > now ? next_us - now : 0;

		ts.tv_sec = (time_t)(left / KHA_USEC_PER_SEC);
		ts.tv_nsec = (long)(left % KHA_USEC_PER_SEC) * 1000;
		tsp = &ts;
	}
	if (ppoll(pfds, 3, tsp, NULL) < 0 && errno != EINTR)
		return kha_diag_set(d, errno, "ppoll: %s", strerror(errno));
	if (pfds[1].revents)
		drain(e->wake_fd);
	if (pfds[0].revents && read_signals(sfd, e->o, ch, st))
		*exit_requested = true;
	return 0;
}

int kha_elect_run(const struct kha_elect_opts *o, int *ret_status, struct kha_diag *d)
{
	const struct kha_elect__backend *be =
		o->kube ? &kha_elect__kube_backend : &kha_elect__etcd_backend;
	struct engine e = {.o = o, .wake_fd = -1, .stop_fd = -1};
	struct child ch = {};
	struct kha_elect_step_state st;
	pthread_condattr_t ca;
	sigset_t oldmask;
	kha_autoclose int sfd = -1;
	bool exit_requested = false;
	char last_wait[512] = "";
	int r;

	if (!o->name || !o->name[0])
		return kha_diag_set(d, EINVAL, "the %s name is empty", o->what);
	if (!o->argv || !o->argv[0])
		return kha_diag_set(d, EINVAL, "no COMMAND given");
	r = kha_elect_step_init(&st, o, d);
	if (r < 0)
		return r;
	e.ttl_us = o->ttl_us;
	e.renew_deadline_us = st.fence.renew_deadline_us;
	e.interval_us = o->renew_interval_us ? o->renew_interval_us : o->ttl_us / 3;

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

	r = be->start(&e, d);
	if (r < 0)
		goto out;

	for (;;) {
		uint64_t next = UINT64_MAX;

		r = pass(&e, &ch, &st, exit_requested, last_wait, sizeof(last_wait), &next, d);
		if (r < 0) {
			stop_workers(&e);
			goto out;
		}
		if (r > 0 || wait_events(&e, sfd, &ch, &st, next, &exit_requested, d) < 0)
			break;
	}
	set_leader_stat(o, false);
	/* COMMAND is gone: now give the slot away at once */
	stop_workers(&e);
	if (be->resign)
		be->resign(&e);
	*ret_status = st.status;
	r = 0;
out:
	stop_workers(&e);
	join_workers(&e);
	if (be->free)
		be->free(&e);
	if (st.running && ch.p.pid > 0) {
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
		/*
		 * A stop asked again (SIGTERM, SIGINT) or a SIGHUP, while COMMAND stopped and we
		 * resigned or at any later moment, must not kill us with the default action once
		 * unblocked: the caller exits next. They stay blocked (and pending ones are read).
		 */
		struct signalfd_siginfo si;
		sigset_t keep = oldmask;

		sigaddset(&keep, SIGTERM);
		sigaddset(&keep, SIGINT);
		sigaddset(&keep, SIGHUP);
		pthread_sigmask(SIG_SETMASK, &keep, NULL);
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			;
	}
	return r;
}
