// SPDX-License-Identifier: MIT
/*
 * kha lab drill (see include/kha/lab.h): lib/drill writes through the node's entry point and
 * runs the fault commands; a watcher thread of ours polls the election (every 100 ms) and the
 * backup directories (every 250 ms) meanwhile; afterwards both are cut into one window per
 * fault and checked.
 *
 * Clocks: lib/drill reports times relative to its t0 on the monotonic clock; its events carry
 * the elapsed time, so t0 = now - elapsed at the first event. Leadership terms are stamped on
 * the monotonic clock and moved to drill time with that t0. Snapshots are stamped by their
 * modification time (the wall clock) and moved with the report's started_wall_us.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "kha/etcd.h"
#include "kha/lab.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define DEFAULT_RATE	    50
#define DEFAULT_BASELINE_US (4 * KHA_USEC_PER_SEC)
#define DEFAULT_DOWN_US	    (6 * KHA_USEC_PER_SEC)
#define DEFAULT_PERIOD_US   (18 * KHA_USEC_PER_SEC)
#define DEFAULT_TIMEOUT_US  (2 * KHA_USEC_PER_SEC)
#define DEFAULT_FLOOR	    90.0
#define STEP_TIMEOUT_US	    (45 * KHA_USEC_PER_SEC)
#define LEADER_POLL_US	    (100 * KHA_USEC_PER_MSEC)
#define LEADER_CALL_US	    (1 * KHA_USEC_PER_SEC)
#define FILES_POLL_US	    (250 * KHA_USEC_PER_MSEC)
#define RAFT_POLL_US	    (1 * KHA_USEC_PER_SEC)
/* a snapshot counts for a term this close to it: polling and file times are not exact */
#define TERM_SLACK_US	   (1 * KHA_USEC_PER_SEC)
#define READY_AFTER_US	   (30 * KHA_USEC_PER_SEC)
#define MAX_TERMS	   1024
#define MAX_SNAPSHOTS	   1024
#define MAX_SEEN_PER_TAKER 4096

static const struct {
	const char *name, *recover, *fault_args, *recover_args, *what;
} faults[KHA_LAB_FAULTS] = {
	[KHA_LAB_FAULT_KILL_FOLLOWER] = {"kill-follower", "restart-follower",
					 "stop-member --kill --follower", "start-member --all",
					 "SIGKILL every process of a master that does not lead"},
	[KHA_LAB_FAULT_KILL_LEADER] = {"kill-leader", "restart-leader",
				       "stop-member --kill --leader", "start-member --all",
				       "SIGKILL every process of the master that leads"},
	[KHA_LAB_FAULT_FREEZE] = {"freeze-follower", "thaw-follower", "freeze-member --follower",
				  "thaw-member --all",
				  "SIGSTOP every process of a master that does not lead"},
};

const char *kha_lab_fault_name(enum kha_lab_fault_kind k)
{
	return (unsigned)k < KHA_LAB_FAULTS ? faults[k].name : "?";
}

/* ---- the watcher thread ---- */

void kha_lab__watcher_progress(const struct kha_lab__watcher *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!w->o->on_progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	w->o->on_progress(w->o->userdata, line);
}

static double rel_s(const struct kha_lab__watcher *w, uint64_t mono)
{
	return w->t0 && mono >= w->t0 ? (double)(mono - w->t0) / 1e6 : 0.0;
}

static void observe_leader(struct kha_lab__watcher *w, struct kha_etcd *c)
{
	kha_autofree char *leader = NULL;
	uint64_t now;
	bool changed;

	if (kha_lab__leader_read(c, w->lab->election, &leader, NULL) < 0)
		return; /* no answer (an election in etcd itself): keep the last observation */
	now = kha_now_us();
	pthread_mutex_lock(&w->mu);
	changed = !w->leader_known || strcmp(w->leader, leader ? leader : "") != 0;
	if (changed && w->n_terms < MAX_TERMS) {
		if (KHA_RESIZE(w->terms, w->n_terms + 1) == 0) {
			w->terms[w->n_terms].start_us = now;
			snprintf(w->terms[w->n_terms].leader, KHA_LAB_NAME_MAX, "%s",
				 leader ? leader : "");
			w->n_terms++;
		}
	}
	snprintf(w->leader, sizeof(w->leader), "%s", leader ? leader : "");
	w->leader_known = true;
	pthread_mutex_unlock(&w->mu);
	if (changed && w->t0)
		kha_lab__watcher_progress(
			w, "%7.2fs  election: %s", rel_s(w, now),
			leader ? leader : "nobody leads (the lease of the last leader runs out)");
}

/* Which master's member leads Raft: the summary explains a kill's outage by it. */
static void observe_raft(struct kha_lab__watcher *w, struct kha_etcd *c)
{
	kha_autofree char *leader = NULL;

	if (kha_lab__raft_leader_read(c, &leader, NULL) < 0 || !leader)
		return; /* no answer, or an election under way: keep the last observation */
	pthread_mutex_lock(&w->mu);
	snprintf(w->raft_leader, sizeof(w->raft_leader), "%s", leader);
	w->raft_known = true;
	pthread_mutex_unlock(&w->mu);
}

/* A snapshot file, not a temporary one of a backup in progress. */
static bool snapshot_name(const char *name)
{
	return name[0] != '.' && !strstr(name, ".tmp") && !strstr(name, ".part") &&
	       !strstr(name, ".partial");
}

static bool seen_has(const struct kha_lab__seen *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

static void seen_add(struct kha_lab__seen *s, const char *name)
{
	if (s->n >= MAX_SEEN_PER_TAKER || KHA_RESIZE(s->names, s->n + 1) < 0)
		return;
	s->names[s->n] = strdup(name);
	if (s->names[s->n])
		s->n++;
}

/* New files in every master's backup directory; record lists them (else: only remembered). */
static void scan_backups(struct kha_lab__watcher *w, bool record)
{
	for (size_t i = 0; i < w->lab->n_masters && i < KHA_LAB_MAX_MASTERS; i++) {
		const struct kha_lab_master *m = &w->lab->masters[i];
		DIR *dir = m->backup_dir ? opendir(m->backup_dir) : NULL;
		struct dirent *de;

		if (!dir)
			continue;
		while ((de = readdir(dir))) {
			char path[4096];
			struct stat st;
			struct kha_lab_snapshot *ns;

			if (!snapshot_name(de->d_name) || seen_has(&w->seen[i], de->d_name))
				continue;
			snprintf(path, sizeof(path), "%s/%s", m->backup_dir, de->d_name);
			if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			seen_add(&w->seen[i], de->d_name);
			if (!record)
				continue;
			pthread_mutex_lock(&w->mu);
			if (w->n_snaps < MAX_SNAPSHOTS &&
			    KHA_RESIZE(w->snaps, w->n_snaps + 1) == 0) {
				ns = &w->snaps[w->n_snaps++];
				*ns = (struct kha_lab_snapshot){
					.wall_us = (int64_t)st.st_mtim.tv_sec * 1000000 +
						   st.st_mtim.tv_nsec / 1000};
				snprintf(ns->taker, sizeof(ns->taker), "%s", m->name);
				snprintf(ns->file, sizeof(ns->file), "%s", de->d_name);
			}
			pthread_mutex_unlock(&w->mu);
			if (w->t0)
				kha_lab__watcher_progress(w, "%7.2fs  backup: %s took %s",
							  rel_s(w, kha_now_us()), m->name,
							  de->d_name);
		}
		closedir(dir);
	}
}

static void *watch(void *userdata)
{
	struct kha_lab__watcher *w = userdata;
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	uint64_t next_leader = 0, next_files = 0, next_raft = 0;

	if (kha_lab__etcd_client(w->lab, LEADER_CALL_US, &c, NULL) < 0)
		c = NULL;
	for (;;) {
		uint64_t now = kha_now_us(), next;
		struct timespec ts;

		pthread_mutex_lock(&w->mu);
		if (w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		pthread_mutex_unlock(&w->mu);
		if (c && now >= next_leader) {
			if (w->lab->election)
				observe_leader(w, c);
			next_leader = now + LEADER_POLL_US;
		}
		if (c && now >= next_raft) {
			observe_raft(w, c);
			next_raft = now + RAFT_POLL_US;
		}
		if (now >= next_files) {
			scan_backups(w, true);
			if (w->extra)
				w->extra(w);
			next_files = now + FILES_POLL_US;
		}
		next = c ? KHA_MIN(KHA_MIN(next_leader, next_raft), next_files) : next_files;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = kha_now_us();
		if (next > now) {
			uint64_t ns = (uint64_t)ts.tv_nsec + (next - now) * 1000;

			ts.tv_sec += (time_t)(ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_mutex_lock(&w->mu);
			if (!w->stop)
				pthread_cond_timedwait(&w->cv, &w->mu, &ts);
			pthread_mutex_unlock(&w->mu);
		}
	}
	return NULL;
}

int kha_lab__watcher_start(struct kha_lab__watcher *w)
{
	pthread_condattr_t ca;
	int r;

	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	scan_backups(w, false); /* snapshots from before the drill are not its business */
	r = pthread_create(&w->thread, NULL, watch, w);
	return -r;
}

void kha_lab__watcher_stop(struct kha_lab__watcher *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
}

void kha_lab__watcher_release(struct kha_lab__watcher *w)
{
	for (size_t i = 0; i < KHA_LAB_MAX_MASTERS; i++) {
		for (size_t j = 0; j < w->seen[i].n; j++)
			free(w->seen[i].names[j]);
		free(w->seen[i].names);
	}
	free(w->terms);
	free(w->snaps);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

/* ---- the drill thread's hooks ---- */

static int fault_index(const char *step_name, bool *ret_recover)
{
	for (int i = 0; i < KHA_LAB_FAULTS; i++) {
		if (strcmp(step_name, faults[i].name) == 0) {
			*ret_recover = false;
			return i;
		}
		if (strcmp(step_name, faults[i].recover) == 0) {
			*ret_recover = true;
			return i;
		}
	}
	return -1;
}

void kha_lab__watcher_on_event(void *userdata, const struct kha_drill_event *ev)
{
	struct kha_lab__watcher *w = userdata;
	const struct kha_drill_step_result *st = ev->step;
	bool recover = false;
	int i;

	if (!w->t0) {
		char leader[KHA_LAB_NAME_MAX] = "";
		bool known;

		w->t0 = kha_now_us() - ev->elapsed_us;
		pthread_mutex_lock(&w->mu);
		known = w->leader_known;
		snprintf(leader, sizeof(leader), "%s", w->leader);
		pthread_mutex_unlock(&w->mu);
		if (w->lab->election)
			kha_lab__watcher_progress(w, "%7.2fs  election: %s",
						  (double)ev->elapsed_us / 1e6,
						  !known    ? "not read yet"
						  : *leader ? leader
							    : "nobody leads");
	}
	if (ev->type == KHA_DRILL_EVENT_ABORT) {
		kha_lab__watcher_progress(w, "%7.2fs  drill stops early: %s",
					  (double)ev->elapsed_us / 1e6,
					  ev->message ? ev->message : "");
		return;
	}
	if (!st || (ev->type != KHA_DRILL_EVENT_STEP_START && ev->type != KHA_DRILL_EVENT_STEP_END))
		return;
	i = fault_index(st->name, &recover);
	if (ev->type == KHA_DRILL_EVENT_STEP_START) {
		if (i >= 0 && !recover) {
			pthread_mutex_lock(&w->mu);
			w->obs.fault_leader_known[i] = w->leader_known;
			snprintf(w->obs.fault_leader[i], KHA_LAB_NAME_MAX, "%s", w->leader);
			w->obs.fault_raft_known[i] = w->raft_known;
			snprintf(w->obs.fault_raft_leader[i], KHA_LAB_NAME_MAX, "%s",
				 w->raft_leader);
			pthread_mutex_unlock(&w->mu);
		}
		kha_lab__watcher_progress(
			w, "%7.2fs  %s %s: %s", (double)ev->elapsed_us / 1e6,
			kha_drill_step_kind_name(st->kind), st->name,
			i >= 0 ? (recover ? faults[i].recover_args : faults[i].what) : st->run);
		return;
	}
	{
		char out[160];
		size_t n;

		snprintf(out, sizeof(out), "%s", st->output ? st->output : "");
		n = strcspn(out, "\n");
		out[n] = '\0';
		kha_lab__watcher_progress(w, "%7.2fs  %s %s %s%s%s", (double)ev->elapsed_us / 1e6,
					  st->name, kha_drill_step_state_name(st->state),
					  *out ? "(" : "", out, *out ? ")" : "");
	}
}

int kha_lab__watcher_on_stop(void *userdata)
{
	struct kha_lab__watcher *w = userdata;

	return w->o->on_stop ? w->o->on_stop(w->o->userdata) : 0;
}

/* ---- analysis ---- */

/* The step named name that started (a recovery run early because the drill stopped counts). */
static const struct kha_drill_step_result *find_step(const struct kha_drill_report *r,
						     const char *name)
{
	for (size_t i = 0; i < r->n_steps; i++)
		if (strcmp(r->steps[i].name, name) == 0 && r->steps[i].started_us != KHA_DRILL_NONE)
			return &r->steps[i];
	return NULL;
}

static bool step_succeeded(const struct kha_drill_report *r, const char *name)
{
	for (size_t i = 0; i < r->n_steps; i++)
		if (strcmp(r->steps[i].name, name) == 0 &&
		    r->steps[i].started_us != KHA_DRILL_NONE &&
		    r->steps[i].state != KHA_DRILL_STEP_SUCCEEDED)
			return false;
	return find_step(r, name) != NULL;
}

/* The victim a fault command names: its output starts with the master's name. */
static void victim_of(const struct kha_lab *lab, const struct kha_drill_step_result *st, char *buf,
		      size_t size)
{
	size_t n;

	buf[0] = '\0';
	if (!st || !st->output)
		return;
	n = strcspn(st->output, " :\n");
	for (size_t i = 0; i < lab->n_masters; i++)
		if (strlen(lab->masters[i].name) == n &&
		    strncmp(st->output, lab->masters[i].name, n) == 0)
			snprintf(buf, size, "%s", lab->masters[i].name);
}

/* The leader observed at drill time t ("" nobody; NULL before the first observation). */
static const char *leader_at(const struct kha_lab_drill_report *r, uint64_t t)
{
	const char *l = NULL;

	for (size_t i = 0; i < r->n_terms && r->terms[i].start_us <= t; i++)
		l = r->terms[i].leader;
	return l;
}

static void analyze_fault(const struct kha_lab *lab, const struct kha_lab__drill_obs *obs,
			  struct kha_lab_drill_report *r, int k)
{
	struct kha_lab_fault_result *f = &r->faults[k];
	const struct kha_drill_report *dr = r->drill;
	const struct kha_drill_step_result *fs = find_step(dr, faults[k].name);
	const struct kha_drill_step_result *rs = find_step(dr, faults[k].recover);
	const struct kha_drill_step_result *next =
		k + 1 < KHA_LAB_FAULTS ? find_step(dr, faults[k + 1].name) : NULL;
	uint64_t probing_end =
		dr->stats.marks.end_us != KHA_DRILL_NONE ? dr->stats.marks.end_us : dr->elapsed_us;
	size_t a = 0, b;
	const char *l;

	f->kind = (enum kha_lab_fault_kind)k;
	f->handover_us = KHA_DRILL_NONE;
	f->backup_after_us = KHA_DRILL_NONE;
	f->recover_us = rs ? rs->started_us : KHA_DRILL_NONE;
	if (!fs)
		return;
	f->ran = true;
	f->step_ok = step_succeeded(dr, faults[k].name) && step_succeeded(dr, faults[k].recover);
	f->fault_us = fs->started_us;
	f->end_us = next ? next->started_us : probing_end;
	if (f->end_us < f->fault_us)
		f->end_us = f->fault_us;
	victim_of(lab, fs, f->victim, sizeof(f->victim));

	/* the writes sent in [fault, end) */
	while (a < dr->n_probes && dr->probes[a].t_us < f->fault_us)
		a++;
	for (b = a; b < dr->n_probes && dr->probes[b].t_us < f->end_us; b++) {
		uint8_t res = dr->probes[b].result;

		if (res == KHA_DRILL_PROBE_MISSED || res == KHA_DRILL_PROBE_CANCELLED)
			continue;
		f->sent++;
		f->ok += res == KHA_DRILL_PROBE_OK;
		f->failed += kha_drill_result_failed(res);
	}
	f->availability = f->sent ? 100.0 * (double)f->ok / (double)f->sent : 0.0;
	if (b > a) {
		size_t nw = kha_drill_find_windows(dr->probes + a, b - a, f->end_us, NULL, 0);
		struct kha_drill_window *wins = nw ? calloc(nw, sizeof(*wins)) : NULL;

		if (wins) {
			kha_drill_find_windows(dr->probes + a, b - a, f->end_us, wins, nw);
			for (size_t i = 0; i < nw; i++)
				f->longest_outage_us = KHA_MAX(f->longest_outage_us,
							       wins[i].end_us - wins[i].start_us);
			free(wins);
		}
	}
	for (size_t i = 0; i < dr->writes.n_lost_slots; i++) {
		uint64_t slot = dr->writes.lost_slots[i];

		if (slot < dr->n_probes && dr->probes[slot].t_us >= f->fault_us &&
		    dr->probes[slot].t_us < f->end_us)
			f->lost++;
	}

	f->raft_known = obs->fault_raft_known[k];
	f->victim_led_raft =
		f->raft_known && f->victim[0] && strcmp(f->victim, obs->fault_raft_leader[k]) == 0;
	if (!r->election)
		return;
	if (obs->fault_leader_known[k])
		snprintf(f->leader_before, sizeof(f->leader_before), "%s", obs->fault_leader[k]);
	f->victim_led = f->victim[0] && strcmp(f->victim, f->leader_before) == 0;
	f->handover_needed = f->victim_led;
	l = leader_at(r, f->end_us);
	snprintf(f->leader_after, sizeof(f->leader_after), "%s", l ? l : "");
	if (f->victim_led)
		for (size_t i = 0; i < r->n_terms; i++)
			if (r->terms[i].start_us >= f->fault_us &&
			    r->terms[i].start_us < f->end_us && r->terms[i].leader[0] &&
			    strcmp(r->terms[i].leader, f->victim) != 0) {
				f->handover_us = r->terms[i].start_us - f->fault_us;
				break;
			}
	for (size_t i = 0; i < r->n_snapshots; i++) {
		const struct kha_lab_snapshot *s = &r->snapshots[i];

		if (s->t_us <= f->fault_us || s->t_us >= f->end_us + TERM_SLACK_US)
			continue;
		/* a leader that dies is killed some time after the fault begins (the command
		 * runs meanwhile): its own last snapshots say nothing of whether backups go on */
		if (f->victim_led && strcmp(s->taker, f->victim) == 0)
			continue;
		f->backup_after_us = s->t_us - f->fault_us;
		snprintf(f->backup_taker, sizeof(f->backup_taker), "%s", s->taker);
		break;
	}
	f->backups_ok = f->backup_after_us != KHA_DRILL_NONE;
}

/* True when taker led at some instant of [t - slack, t + slack]. */
static bool led_near(const struct kha_lab_drill_report *r, const char *taker, uint64_t t)
{
	uint64_t lo = t > TERM_SLACK_US ? t - TERM_SLACK_US : 0, hi = t + TERM_SLACK_US;

	for (size_t i = 0; i < r->n_terms; i++) {
		uint64_t start = r->terms[i].start_us;
		uint64_t end = i + 1 < r->n_terms ? r->terms[i + 1].start_us : UINT64_MAX;

		if (start <= hi && end >= lo && strcmp(r->terms[i].leader, taker) == 0)
			return true;
	}
	return false;
}

static int cmp_snap(const void *a, const void *b)
{
	const struct kha_lab_snapshot *x = a, *y = b;

	return x->wall_us < y->wall_us ? -1 : x->wall_us > y->wall_us;
}

static void analyze_backups(struct kha_lab_drill_report *r)
{
	if (r->n_snapshots > 1) /* qsort of NULL, even for 0 elements, is undefined */
		qsort(r->snapshots, r->n_snapshots, sizeof(*r->snapshots), cmp_snap);
	for (size_t i = 0; i < r->n_snapshots; i++) {
		struct kha_lab_snapshot *s = &r->snapshots[i];

		s->conflict = r->n_terms && s->t_us + TERM_SLACK_US >= r->terms[0].start_us &&
			      !led_near(r, s->taker, s->t_us);
		r->conflicts += s->conflict;
	}
	/* distinct takers within each term, its edges (the slack) left out */
	for (size_t i = 0; i < r->n_terms; i++) {
		uint64_t lo = r->terms[i].start_us + TERM_SLACK_US;
		uint64_t hi = i + 1 < r->n_terms ? r->terms[i + 1].start_us : UINT64_MAX;
		char takers[KHA_LAB_MAX_MASTERS][KHA_LAB_NAME_MAX];
		unsigned n = 0;

		if (hi != UINT64_MAX)
			hi = hi > TERM_SLACK_US ? hi - TERM_SLACK_US : 0;
		for (size_t j = 0; j < r->n_snapshots; j++) {
			const struct kha_lab_snapshot *s = &r->snapshots[j];
			bool known = false;

			if (s->t_us < lo || s->t_us >= hi)
				continue;
			for (unsigned t = 0; t < n; t++)
				known |= strcmp(takers[t], s->taker) == 0;
			if (!known && n < KHA_LAB_MAX_MASTERS)
				snprintf(takers[n++], KHA_LAB_NAME_MAX, "%s", s->taker);
		}
		r->max_takers_per_term = KHA_MAX(r->max_takers_per_term, n);
	}
}

void kha_lab__drill_analyze(const struct kha_lab *lab, const struct kha_lab__drill_obs *obs,
			    struct kha_lab_drill_report *r)
{
	if (r->election)
		analyze_backups(r);
	for (int k = 0; k < KHA_LAB_FAULTS; k++)
		analyze_fault(lab, obs, r, k);
}

/* ---- running it ---- */

static int add_steps(struct kha_drill_scenario *sc, const struct kha_lab *lab, const char *kha,
		     const struct kha_lab_drill_opts *o, struct kha_diag *d)
{
	int r = 0;

	for (int k = 0; r == 0 && k < KHA_LAB_FAULTS; k++) {
		uint64_t at = o->baseline_us + (uint64_t)k * o->period_us;
		kha_autofree char *fault = NULL, *recover = NULL;

		if (asprintf(&fault, "'%s' lab %s --dir '%s'", kha, faults[k].fault_args,
			     lab->dir) < 0 ||
		    asprintf(&recover, "'%s' lab %s --dir '%s'", kha, faults[k].recover_args,
			     lab->dir) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_FAULT, at, faults[k].name, fault,
						STEP_TIMEOUT_US, d);
		if (r == 0)
			r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_RECOVER, at + o->down_us,
							faults[k].recover, recover, STEP_TIMEOUT_US,
							d);
	}
	return r;
}

static int build_scenario(struct kha_drill_scenario *sc, const struct kha_lab *lab, const char *kha,
			  const struct kha_lab_drill_opts *o, struct kha_diag *d)
{
	if (!(sc->target = strdup(lab->node.entry_url)) || !(sc->cacert = strdup(lab->ca_cert)) ||
	    !(sc->cert = strdup(lab->client_cert)) || !(sc->key = strdup(lab->client_key)) ||
	    !(sc->endpoints = kha_lab_endpoints(lab)))
		return kha_diag_set(d, ENOMEM, "out of memory");
	sc->write = true;
	sc->rate = o->rate;
	sc->timeout_us = o->timeout_us;
	sc->duration_us = o->baseline_us + KHA_LAB_FAULTS * o->period_us;
	return add_steps(sc, lab, kha, o, d);
}

/* Quotes in paths would break the commands' shell words; the lab's paths never have one. */
static bool shell_safe(const char *s)
{
	return !strchr(s, '\'');
}

uint64_t kha_lab_drill_length_us(const struct kha_lab_drill_opts *o)
{
	return (o->baseline_us ? o->baseline_us : DEFAULT_BASELINE_US) +
	       KHA_LAB_FAULTS * (o->period_us ? o->period_us : DEFAULT_PERIOD_US);
}

int kha_lab_drill(const struct kha_lab *lab, const char *kha, const struct kha_lab_drill_opts *opts,
		  struct kha_lab_drill_report **ret, struct kha_diag *d)
{
	struct kha_lab_drill_opts o = *opts;
	struct kha_drill_scenario sc;
	struct kha_lab__watcher w = {.lab = lab, .o = &o};
	struct kha_drill_hooks hooks = {.stop_fd = opts->stop_fd,
					.on_stop = kha_lab__watcher_on_stop,
					.on_event = kha_lab__watcher_on_event,
					.userdata = &w};
	kha_auto(kha_lab_drill_report_freep) struct kha_lab_drill_report *r = NULL;
	int res;

	if (!lab->node.entry_url)
		return kha_diag_set(d, EINVAL,
				    "the lab in %s has no entry point (made with --no-proxy): "
				    "nothing to write through",
				    lab->dir);
	if (!shell_safe(kha) || !shell_safe(lab->dir))
		return kha_diag_set(d, EINVAL, "a quote in the path of kha or of the lab: %s",
				    lab->dir);
	o.rate = o.rate ? o.rate : DEFAULT_RATE;
	o.baseline_us = o.baseline_us ? o.baseline_us : DEFAULT_BASELINE_US;
	o.down_us = o.down_us ? o.down_us : DEFAULT_DOWN_US;
	o.period_us = o.period_us ? o.period_us : DEFAULT_PERIOD_US;
	o.timeout_us = o.timeout_us ? o.timeout_us : DEFAULT_TIMEOUT_US;
	o.min_availability = o.min_availability < 0 ? DEFAULT_FLOOR : o.min_availability;
	if (o.down_us >= o.period_us)
		return kha_diag_set(d, EINVAL,
				    "a fault must end (%" PRIu64
				    " ms) before the next begins (%" PRIu64 " ms)",
				    o.down_us / 1000, o.period_us / 1000);

	r = calloc(1, sizeof(*r));
	if (!r)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r->election = lab->election != NULL;
	r->min_availability = o.min_availability;
	snprintf(r->entry, sizeof(r->entry), "%s", lab->node.entry_url);

	kha_drill_scenario_init(&sc);
	res = build_scenario(&sc, lab, kha, &o, d);
	if (res == 0)
		res = kha_drill_scenario_check(&sc, d);
	if (res < 0) {
		kha_drill_scenario_release(&sc);
		return res;
	}
	res = kha_lab__watcher_start(&w);
	if (res < 0) {
		kha_drill_scenario_release(&sc);
		kha_lab__watcher_release(&w);
		return kha_diag_set(d, -res, "cannot start the watcher thread: %s", strerror(-res));
	}
	res = kha_drill_run(&sc, &hooks, &r->drill, d);
	kha_lab__watcher_stop(&w);
	kha_drill_scenario_release(&sc);
	if (res < 0) {
		kha_lab__watcher_release(&w);
		return res;
	}

	/* to drill time */
	if (!w.t0)
		w.t0 = kha_now_us() - r->drill->elapsed_us;
	r->terms = KHA_TAKE_PTR(w.terms);
	r->n_terms = w.n_terms;
	for (size_t i = 0; i < r->n_terms; i++)
		r->terms[i].start_us =
			r->terms[i].start_us > w.t0 ? r->terms[i].start_us - w.t0 : 0;
	r->snapshots = KHA_TAKE_PTR(w.snaps);
	r->n_snapshots = w.n_snaps;
	for (size_t i = 0; i < r->n_snapshots; i++) {
		int64_t t = r->snapshots[i].wall_us - (int64_t)r->drill->started_wall_us;

		r->snapshots[i].t_us = t > 0 ? (uint64_t)t : 0;
	}
	kha_lab__drill_analyze(lab, &w.obs, r);
	kha_lab__watcher_release(&w);

	if (!r->drill->interrupted) {
		struct kha_lab *fresh = NULL;

		kha_lab__watcher_progress(&w,
					  "         the drill is over: is the lab ready again?");
		if (kha_lab_load(lab->dir, false, &fresh, NULL) == 0) {
			r->healthy_after = kha_lab_wait_ready(fresh, READY_AFTER_US, NULL) == 0;
			kha_lab_free(fresh);
		}
	}
	*ret = KHA_TAKE_PTR(r);
	return 0;
}

void kha_lab_drill_report_free(struct kha_lab_drill_report *r)
{
	if (!r)
		return;
	kha_drill_report_free(r->drill);
	free(r->terms);
	free(r->snapshots);
	free(r);
}

/* ---- verdict and output ---- */

static size_t overall_sent(const struct kha_lab_drill_report *r)
{
	return r->drill->stats.sent;
}

static bool availability_low(const struct kha_lab_drill_report *r)
{
	return !overall_sent(r) || r->drill->stats.availability < r->min_availability;
}

static bool expectation_missed(const struct kha_lab_drill_report *r)
{
	if (availability_low(r) || !r->healthy_after)
		return true;
	for (int k = 0; r->election && k < KHA_LAB_FAULTS; k++) {
		const struct kha_lab_fault_result *f = &r->faults[k];

		if (!f->ran || !f->backups_ok ||
		    (f->handover_needed && f->handover_us == KHA_DRILL_NONE))
			return true;
	}
	return false;
}

int kha_lab_drill_exit_code(const struct kha_lab_drill_report *r)
{
	const struct kha_drill_report *dr = r->drill;

	if (dr->writes.lost || r->conflicts || r->max_takers_per_term > 1)
		return 2;
	if (dr->interrupted)
		return 128 + dr->interrupt_signal;
	if (dr->step_failed || dr->aborted)
		return KHA_DRILL_EXIT_STEP_FAILED;
	if (!dr->writes.verified)
		return KHA_EXIT_UNAVAILABLE;
	return expectation_missed(r) ? 1 : 0;
}

void kha_lab__append(char *buf, size_t size, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used >= size - 1)
		return;
	if (used)
		snprintf(buf + used, size - used, "; ");
	used = strlen(buf);
	va_start(ap, fmt);
	vsnprintf(buf + used, size - used, fmt, ap);
	va_end(ap);
}

void kha_lab_drill_problems(const struct kha_lab_drill_report *r, char *buf, size_t size)
{
	const struct kha_drill_report *dr = r->drill;

	buf[0] = '\0';
	if (dr->writes.lost)
		kha_lab__append(buf, size, "%zu acknowledged writes lost", dr->writes.lost);
	if (r->conflicts)
		kha_lab__append(buf, size, "%zu snapshots taken by a master that did not lead",
				r->conflicts);
	if (r->max_takers_per_term > 1)
		kha_lab__append(buf, size, "%u backup takers within one leadership term",
				r->max_takers_per_term);
	if (dr->interrupted)
		kha_lab__append(buf, size, "interrupted by signal %d", dr->interrupt_signal);
	if (dr->step_failed || dr->aborted)
		kha_lab__append(buf, size, "a fault command failed%s%s",
				dr->abort_reason[0] ? ": " : "", dr->abort_reason);
	if (!dr->writes.verified)
		kha_lab__append(buf, size, "the writes could not be read back: %s",
				dr->writes.error);
	if (availability_low(r))
		kha_lab__append(buf, size, "availability %.2f%% under the floor of %.1f%%",
				dr->stats.availability, r->min_availability);
	for (int k = 0; r->election && k < KHA_LAB_FAULTS; k++) {
		const struct kha_lab_fault_result *f = &r->faults[k];

		if (!f->ran)
			kha_lab__append(buf, size, "%s did not run", faults[k].name);
		else if (f->handover_needed && f->handover_us == KHA_DRILL_NONE)
			kha_lab__append(buf, size, "%s: no new leader was seen", faults[k].name);
		if (f->ran && !f->backups_ok)
			kha_lab__append(buf, size, "%s: backups did not go on%s", faults[k].name,
					f->victim_led ? " on another master" : "");
	}
	if (!dr->interrupted && !r->healthy_after)
		kha_lab__append(buf, size, "the lab was not ready again after the drill");
}

json_t *kha_lab__ms_or_null(uint64_t us)
{
	return us == KHA_DRILL_NONE ? json_null() : json_real((double)us / 1000.0);
}

json_t *kha_lab__str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *fault_json(const struct kha_lab_drill_report *r,
			  const struct kha_lab_fault_result *f)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(faults[f->kind].name));
	json_object_set_new(o, "what", json_string(faults[f->kind].what));
	json_object_set_new(o, "ran", json_boolean(f->ran));
	json_object_set_new(o, "commands_ok", json_boolean(f->step_ok));
	json_object_set_new(o, "victim", kha_lab__str_or_null(f->victim));
	json_object_set_new(o, "fault_at_ms",
			    f->ran ? kha_lab__ms_or_null(f->fault_us) : json_null());
	json_object_set_new(o, "recover_at_ms", kha_lab__ms_or_null(f->recover_us));
	json_object_set_new(o, "end_ms", f->ran ? kha_lab__ms_or_null(f->end_us) : json_null());
	json_object_set_new(o, "writes",
			    json_pack("{s:I, s:I, s:I}", "sent", (json_int_t)f->sent, "ok",
				      (json_int_t)f->ok, "failed", (json_int_t)f->failed));
	json_object_set_new(o, "availability_percent",
			    f->sent ? json_real(f->availability) : json_null());
	json_object_set_new(o, "longest_outage_ms", json_real((double)f->longest_outage_us / 1e3));
	json_object_set_new(o, "lost_acknowledged_writes", json_integer((json_int_t)f->lost));
	json_object_set_new(o, "victim_led_raft",
			    f->raft_known ? json_boolean(f->victim_led_raft) : json_null());
	if (r->election) {
		json_object_set_new(o, "victim_led", json_boolean(f->victim_led));
		json_object_set_new(o, "leader_before", kha_lab__str_or_null(f->leader_before));
		json_object_set_new(o, "leader_after", kha_lab__str_or_null(f->leader_after));
		json_object_set_new(o, "handover_needed", json_boolean(f->handover_needed));
		json_object_set_new(o, "handover_ms", kha_lab__ms_or_null(f->handover_us));
		json_object_set_new(o, "backup",
				    json_pack("{s:b, s:o, s:o}", "continued", f->backups_ok,
					      "after_ms", kha_lab__ms_or_null(f->backup_after_us),
					      "taker", kha_lab__str_or_null(f->backup_taker)));
	}
	return o;
}

char *kha_lab_drill_json(const struct kha_lab_drill_report *r)
{
	kha_autofree char *drill_text = kha_drill_report_json(r->drill, false);
	json_t *root = json_object(), *fl = json_array(), *drill;
	char problems[1024];
	char *text;

	if (!drill_text || !root || !fl) {
		json_decref(root);
		json_decref(fl);
		return NULL;
	}
	drill = json_loads(drill_text, 0, NULL);
	kha_lab_drill_problems(r, problems, sizeof(problems));
	json_object_set_new(root, "schema", json_string("kha.lab.drill/v1"));
	json_object_set_new(root, "entry", json_string(r->entry));
	json_object_set_new(root, "entry_fronts",
			    json_string("the etcd members' client API (the lab has no "
					"kube-apiserver)"));
	json_object_set_new(root, "exit_code", json_integer(kha_lab_drill_exit_code(r)));
	json_object_set_new(root, "verdict",
			    json_string(kha_lab_drill_exit_code(r) == 0 ? "passed" : "failed"));
	/* the old name of verdict, kept for scripts */
	json_object_set_new(root, "passed", json_boolean(kha_lab_drill_exit_code(r) == 0));
	json_object_set_new(root, "problems", json_string(problems));
	json_object_set_new(root, "min_availability_percent", json_real(r->min_availability));
	json_object_set_new(root, "availability_percent",
			    overall_sent(r) ? json_real(r->drill->stats.availability)
					    : json_null());
	json_object_set_new(root, "lost_acknowledged_writes",
			    json_integer((json_int_t)r->drill->writes.lost));
	for (int k = 0; k < KHA_LAB_FAULTS; k++)
		json_array_append_new(fl, fault_json(r, &r->faults[k]));
	json_object_set_new(root, "faults", fl);
	if (r->election) {
		json_t *terms = json_array(), *snaps = json_array();

		for (size_t i = 0; i < r->n_terms; i++)
			json_array_append_new(
				terms, json_pack("{s:f, s:o}", "start_ms",
						 (double)r->terms[i].start_us / 1e3, "leader",
						 kha_lab__str_or_null(r->terms[i].leader)));
		for (size_t i = 0; i < r->n_snapshots; i++) {
			const struct kha_lab_snapshot *s = &r->snapshots[i];

			json_array_append_new(snaps,
					      json_pack("{s:f, s:I, s:s, s:s, s:b}", "t_ms",
							(double)s->t_us / 1e3, "mtime_unix_us",
							(json_int_t)s->wall_us, "taker", s->taker,
							"file", s->file, "conflict", s->conflict));
		}
		json_object_set_new(
			root, "election",
			json_pack("{s:s, s:o}", "name", KHA_LAB_ELECTION, "terms", terms));
		json_object_set_new(root, "backups",
				    json_pack("{s:o, s:I, s:i}", "snapshots", snaps, "conflicts",
					      (json_int_t)r->conflicts, "max_takers_per_term",
					      (int)r->max_takers_per_term));
	} else {
		json_object_set_new(root, "election", json_null());
		json_object_set_new(root, "backups", json_null());
	}
	json_object_set_new(root, "healthy_after", json_boolean(r->healthy_after));
	json_object_set_new(root, "drill", drill ? drill : json_null());
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}

void kha_lab__marker_step(struct kha_drill_step_result *st, char *name, uint64_t at_us)
{
	*st = (struct kha_drill_step_result){
		.name = name,
		.kind = KHA_DRILL_STEP_ACTION,
		.state = KHA_DRILL_STEP_SUCCEEDED,
		.at_us = KHA_DRILL_NONE,
		.started_us = at_us,
		.ended_us = at_us,
	};
}

const char *kha_lab__dur(char *buf, size_t size, uint64_t us)
{
	if (us == KHA_DRILL_NONE)
		snprintf(buf, size, "-");
	else if (us < KHA_USEC_PER_SEC)
		snprintf(buf, size, "%.0fms", (double)us / 1e3);
	else
		snprintf(buf, size, "%.2fs", (double)us / 1e6);
	return buf;
}

void kha_lab__why(FILE *out, const char *section, const char *fmt, ...)
{
	va_list ap;

	fputs("  why         ", out);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fprintf(out, " (docs/lab.md#%s)\n", section);
}

/* Why the entry's writes failed for a while in the window of fault f. */
static void why_outage(FILE *out, const struct kha_lab_fault_result *f)
{
	if (!f->longest_outage_us)
		return;
	if (f->kind == KHA_LAB_FAULT_FREEZE)
		kha_lab__why(
			out, "outage",
			"the frozen member accepts connections nobody answers: the entry replays "
			"them after %dms (first-byte timeout)%s",
			LAB_PROXY_FIRST_BYTE_MS,
			f->victim_led_raft ? "; it led Raft, so writes waited for a new leader"
					   : "");
	else if (f->victim_led_raft)
		kha_lab__why(
			out, "outage",
			"the victim led etcd's Raft: writes wait until another member is elected "
			"(election timeout %dms, then a vote)",
			LAB_ETCD_ELECTION_MS);
	else
		kha_lab__why(
			out, "outage",
			"writes in flight to the killed member get no reply; new connections to "
			"it are refused and retried on another member at once");
}

static void print_fault(FILE *out, const struct kha_lab_drill_report *r, int k)
{
	const struct kha_lab_fault_result *f = &r->faults[k];
	char b1[32], b2[32], b3[32];

	fprintf(out, "\nfault %d  %s: %s\n", k + 1, faults[k].name, faults[k].what);
	if (!f->ran) {
		fprintf(out, "  not run (the drill stopped before it)\n");
		return;
	}
	fprintf(out, "  victim      %s at %s, %s at %s%s%s\n", f->victim[0] ? f->victim : "?",
		kha_lab__dur(b1, sizeof(b1), f->fault_us),
		k == KHA_LAB_FAULT_FREEZE ? "thawed" : "restarted",
		kha_lab__dur(b2, sizeof(b2), f->recover_us),
		f->victim_led_raft ? " (its etcd member led Raft)" : "",
		f->step_ok ? "" : "  (A COMMAND FAILED)");
	fprintf(out, "  entry       %.2f%% of %zu writes ok until %s; longest outage %s\n",
		f->availability, f->sent, kha_lab__dur(b3, sizeof(b3), f->end_us),
		f->longest_outage_us ? kha_lab__dur(b1, sizeof(b1), f->longest_outage_us) : "none");
	why_outage(out, f);
	fprintf(out, "  writes      %zu acknowledged writes lost%s\n", f->lost,
		f->lost ? "  <-- MUST BE 0" : "");
	if (!r->election)
		return;
	if (f->handover_needed)
		fprintf(out, "  election    %s led and died: %s\n", f->victim,
			f->handover_us != KHA_DRILL_NONE
				? (snprintf(b1, sizeof(b1), "%s took over after %s",
					    f->leader_after,
					    kha_lab__dur(b2, sizeof(b2), f->handover_us)),
				   b1)
				: "NO NEW LEADER SEEN");
	if (f->handover_needed && f->victim_led_raft)
		kha_lab__why(
			out, "handover",
			"its lease (TTL %ds) outlived it: etcd's new Raft leader renews every lease "
			"for the TTL plus an election timeout (%dms), once elected",
			LAB_ELECT_TTL_S, LAB_ETCD_ELECTION_MS);
	else if (f->handover_needed)
		kha_lab__why(
			out, "handover",
			"a standby takes over once the dead leader's lease runs out: up to its TTL "
			"(%ds) after its last renewal",
			LAB_ELECT_TTL_S);
	else if (strcmp(f->leader_before, f->leader_after) == 0)
		fprintf(out, "  election    %s kept the lead (the victim did not lead)\n",
			f->leader_before[0] ? f->leader_before : "nobody");
	else
		fprintf(out,
			"  election    the victim did not lead, yet the lead moved: %s -> %s (a leader "
			"fences itself when its lease renewals stall, e.g. while etcd elects a new "
			"Raft leader)\n",
			f->leader_before[0] ? f->leader_before : "nobody",
			f->leader_after[0] ? f->leader_after : "nobody");
	if (f->backup_after_us != KHA_DRILL_NONE)
		fprintf(out, "  backups     went on: %s took a snapshot %s after the fault%s\n",
			f->backup_taker, kha_lab__dur(b1, sizeof(b1), f->backup_after_us),
			f->victim_led ? " (another master, as it must be)" : "");
	else
		fprintf(out, "  backups     NO SNAPSHOT %safter the fault\n",
			f->victim_led ? "by another master " : "");
}

int kha_lab_drill_print(FILE *out, const struct kha_lab_drill_report *r)
{
	const struct kha_drill_report *dr = r->drill;
	const struct kha_drill_writes *wr = &dr->writes;
	char problems[1024], b1[32];
	int code = kha_lab_drill_exit_code(r);

	fprintf(out,
		"kha lab drill: %u writes/s through the node's kha proxy %s for %.1fs\n"
		"(the lab has no kube-apiserver: the entry point fronts the etcd members' client "
		"API)\n",
		dr->rate, r->entry, (double)dr->elapsed_us / 1e6);
	for (int k = 0; k < KHA_LAB_FAULTS; k++)
		print_fault(out, r, k);
	fprintf(out, "\noverall\n");
	fprintf(out,
		"  entry       %.3f%% of %zu writes ok (floor %.1f%%); %zu outage%s, longest %s\n",
		dr->stats.availability, dr->stats.sent, r->min_availability, dr->stats.n_windows,
		dr->stats.n_windows == 1 ? "" : "s",
		dr->stats.longest.start_us == KHA_DRILL_NONE
			? "none"
			: kha_lab__dur(b1, sizeof(b1),
				       dr->stats.longest.end_us - dr->stats.longest.start_us));
	if (wr->verified)
		fprintf(out,
			"  writes      %zu acknowledged, %zu lost; %zu failed before reaching etcd, "
			"%zu unknown (%zu of them applied); read back from the members\n",
			wr->acked, wr->lost, wr->failed, wr->unknown, wr->unknown_applied);
	else
		fprintf(out, "  writes      NOT VERIFIED: %s\n", wr->error);
	if (wr->verified && wr->unknown)
		kha_lab__why(
			out, "unknown-writes",
			"unknown = sent, but no reply came; read back afterwards, applied or not; "
			"none counts as lost (only acknowledged writes can be)");
	if (r->election) {
		fprintf(out, "  election    %zu leadership term%s observed:", r->n_terms,
			r->n_terms == 1 ? "" : "s");
		for (size_t i = 0; i < r->n_terms && i < 12; i++)
			fprintf(out, "%s%s", i ? " -> " : " ",
				r->terms[i].leader[0] ? r->terms[i].leader : "(none)");
		fprintf(out, "\n  backups     %zu snapshots;", r->n_snapshots);
		if (r->conflicts || r->max_takers_per_term > 1)
			fprintf(out,
				" TWO TAKERS AT ONCE: %zu snapshots by a master that did not "
				"lead\n",
				r->conflicts);
		else
			fprintf(out, " never two takers in one term (each snapshot by the leader "
				     "of its time)\n");
	}
	fprintf(out, "  lab         %s\n",
		r->healthy_after ? "ready again after the drill (members healthy, proxy ready, a "
				   "leader)"
				 : "NOT READY after the drill");
	kha_lab_drill_problems(r, problems, sizeof(problems));
	fprintf(out, "\nverdict: %s%s%s (exit %d)\n", code == 0 ? "PASSED" : "FAILED",
		code == 0 ? ": every invariant held" : ": ", problems, code);
	return ferror(out) ? -EIO : 0;
}

int kha_lab_drill_svg(FILE *out, const struct kha_lab_drill_report *r)
{
	struct kha_drill_report copy = *r->drill;
	struct kha_drill_svg_opts so = {0};
	char title[256];
	size_t n = r->drill->n_steps;
	int res;

	snprintf(title, sizeof(title),
		 "kha lab drill: etcd writes through the node's kha proxy (%.2f%% ok, %zu lost)",
		 r->drill->stats.availability, r->drill->writes.lost);
	so.title = title;
	/* the election's changes as markers next to the faults (a shallow copy of the report:
	 * only the added markers are ours to free) */
	copy.steps = calloc(n + r->n_terms, sizeof(*copy.steps));
	if (!copy.steps)
		return -ENOMEM;
	if (n)
		memcpy(copy.steps, r->drill->steps, n * sizeof(*copy.steps));
	for (size_t i = 1; i < r->n_terms; i++) {
		struct kha_drill_step_result *st = &copy.steps[copy.n_steps];
		char *name = NULL;

		if (asprintf(&name, "%s leads",
			     r->terms[i].leader[0] ? r->terms[i].leader : "nobody") < 0)
			break;
		kha_lab__marker_step(st, name, r->terms[i].start_us);
		copy.n_steps++;
	}
	res = kha_drill_svg_write(out, &copy, &so);
	for (size_t i = n; i < copy.n_steps; i++)
		free(copy.steps[i].name);
	free(copy.steps);
	return res;
}
