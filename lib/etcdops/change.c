// SPDX-License-Identifier: MIT
/*
 * Membership changes as kha etcd member runs them: the settled cluster a change starts from,
 * add and remove with their retries, and the look-up of an answer that was lost.
 *
 * Why the retries: etcd refuses a change until its leader has been connected to every voting
 * member for 5 s ("unhealthy cluster", its strict reconfiguration check, e.g. just after a
 * member started); and a proposal forwarded to a leader that just died or stepped down is
 * dropped without a word, so a lost answer says nothing about whether the change was applied:
 * the member list does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kha/etcdops.h"
#include "kha/banned.h"

#define POLL_US		   (500 * KHA_USEC_PER_MSEC)
#define LEADER_POLL_US	   (300 * KHA_USEC_PER_MSEC)
#define UNHEALTHY_RETRY_US (15 * KHA_USEC_PER_SEC)
#define AMBIGUOUS_US	   (3 * KHA_USEC_PER_SEC)
#define CHANGE_ATTEMPTS	   3
#define LEADER_WAIT_US	   (10 * KHA_USEC_PER_SEC)

static void KHA_PRINTF(2, 3) note(const struct kha_etcdops_change *ch, const char *fmt, ...)
{
	char buf[KHA_DIAG_MAX + 128];
	va_list ap;

	if (!ch->note)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ch->note(ch->userdata, buf);
}

static void progress_done(const struct kha_etcdops_change *ch)
{
	if (ch->progress)
		ch->progress(ch->userdata, NULL);
}

static bool cancelled(const struct kha_etcdops_change *ch)
{
	return ch->cancel && *ch->cancel;
}

static bool live_leader(const struct kha_etcd_cluster_report *rep)
{
	long i = rep->health.leader_index;

	return rep->health.leader && i >= 0 && rep->members[i].reachable;
}

/* ---- the cluster a change starts from ------------------------------------------------------ */

struct settle {
	const struct kha_etcdops_change *ch;
	bool need_leader;
	uint64_t end;
	bool said;
	struct kha_etcd_cluster_report *rep;
	struct kha_diag *d;
};

static int settle_poll(void *userdata, char *text, size_t size)
{
	struct settle *s = userdata;
	int r = kha_etcd_cluster_report(s->ch->cfg, 0, 0, s->rep, s->d);

	(void)text;
	(void)size;
	if (r < 0)
		return r;
	if (!s->need_leader || live_leader(s->rep) || !s->rep->health.quorum_ok ||
	    kha_now_us() >= s->end)
		return 1;
	if (!s->said)
		note(s->ch, "no live leader yet (an election is due): waiting");
	s->said = true;
	kha_etcd_cluster_report_release(s->rep);
	return 0;
}

int kha_etcdops_change_report(const struct kha_etcdops_change *ch, bool need_leader,
			      struct kha_etcd_cluster_report *ret, struct kha_diag *d)
{
	struct settle s = {.ch = ch,
			   .need_leader = need_leader,
			   .end = kha_now_us() + LEADER_WAIT_US,
			   .rep = ret,
			   .d = d};
	int r = kha_etcdops_wait(UINT64_MAX, LEADER_POLL_US, ch->cancel, settle_poll, &s, NULL,
				 NULL);

	if (r == -ECANCELED)
		return kha_diag_set(d, ECANCELED, "interrupted");
	return r < 0 ? r : 0;
}

/* Waits (up to LEADER_WAIT_US) until the members agree on a live, listed leader. */
static void wait_live_leader(const struct kha_etcdops_change *ch)
{
	struct kha_etcd_cluster_report rep = {};

	if (kha_etcdops_change_report(ch, true, &rep, NULL) == 0)
		kha_etcd_cluster_report_release(&rep);
}

/* ---- names --------------------------------------------------------------------------------- */

int kha_etcdops_change_find(const struct kha_etcdops_change *ch,
			    const struct kha_etcd_cluster_report *rep, const char *name_or_id,
			    struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_diag ld = {};
	int idx = kha_etcdops_member_find(rep, name_or_id, d), found;

	if (idx != -ENOENT || kha_etcd_new(ch->cfg, &c, &ld) < 0)
		return idx;
	found = kha_etcdops_member_name_lookup(c, rep, name_or_id, &ld);
	if (found < 0)
		return idx;
	kha_diag_clear(d);
	return found;
}

bool kha_etcdops_change_unstarted_learner(const struct kha_etcd_cluster_report *rep)
{
	for (size_t i = 0; i < rep->n_members; i++)
		if (rep->members[i].member.is_learner && !rep->members[i].member.name[0])
			return true;
	return false;
}

struct find_wait {
	const struct kha_etcdops_change *ch;
	const char *name_or_id;
	struct kha_etcd_cluster_report *rep;
	struct kha_diag *d;
	bool first;
	int idx;
};

static int find_poll(void *userdata, char *text, size_t size)
{
	struct find_wait *f = userdata;

	if (!f->first) {
		int r;

		kha_etcd_cluster_report_release(f->rep);
		r = kha_etcdops_change_report(f->ch, true, f->rep, f->d);
		if (r < 0)
			return r;
	}
	f->first = false;
	f->idx = kha_etcdops_change_find(f->ch, f->rep, f->name_or_id, f->d);
	if (f->idx != -ENOENT || !kha_etcdops_change_unstarted_learner(f->rep))
		return 1;
	snprintf(text, size,
		 "no member of this name yet, and a learner has not started: "
		 "waiting for it to start");
	return 0;
}

int kha_etcdops_change_find_wait(const struct kha_etcdops_change *ch, const char *name_or_id,
				 uint64_t deadline_us, struct kha_etcd_cluster_report *rep,
				 struct kha_diag *d)
{
	struct find_wait f = {
		.ch = ch, .name_or_id = name_or_id, .rep = rep, .d = d, .first = true};
	int r = kha_etcdops_wait(deadline_us, POLL_US, ch->cancel, find_poll, &f, ch->progress,
				 ch->userdata);

	progress_done(ch);
	if (r == -ECANCELED)
		return kha_diag_set(d, ECANCELED, "interrupted");
	return r > 0 || r == -ETIMEDOUT ? f.idx : r;
}

int kha_etcdops_change_name(const struct kha_etcdops_change *ch, uint64_t id, const char *name,
			    struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	int r = kha_etcd_new(ch->cfg, &c, d);

	if (r < 0)
		return r;
	return name ? kha_etcdops_member_name_record(c, id, name, d)
		    : kha_etcdops_member_name_forget(c, id, d);
}

/* ---- one try of a change, and the look-up of a lost answer ---------------------------------- */

struct attempt {
	const struct kha_etcdops_change *ch;
	struct kha_etcd *c;
	bool remove;
	uint64_t id; /* remove */
	const char *const *peer_urls;
	size_t n_peer_urls;
	bool learner;
	struct kha_etcd_member *member;
	struct kha_etcd_member_list *list;
	int r;
	struct kha_diag d;
};

static int attempt_poll(void *userdata, char *text, size_t size)
{
	struct attempt *a = userdata;

	kha_diag_clear(&a->d);
	if (a->remove)
		a->r = kha_etcd_member_remove(a->c, a->id, NULL, &a->d);
	else
		a->r = kha_etcd_member_add(a->c, a->peer_urls, a->n_peer_urls, a->learner,
					   a->member, a->list, &a->d);
	if (a->r == 0)
		return 1;
	if (a->r != -EAGAIN || !strstr(a->d.msg, "unhealthy cluster"))
		return a->r;
	snprintf(text, size, "etcd says the cluster is not settled yet (%s): retrying", a->d.msg);
	return 0;
}

/* The change, retried while etcd says "unhealthy cluster": 0, or the error in a->r and a->d. */
static int try_change(struct attempt *a)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;

	a->r = kha_etcd_new(a->ch->cfg, &c, &a->d);
	if (a->r < 0)
		return a->r;
	a->c = c;
	kha_ignore(kha_etcdops_wait(kha_now_us() + UNHEALTHY_RETRY_US, POLL_US, a->ch->cancel,
				    attempt_poll, a, a->ch->progress, a->ch->userdata));
	progress_done(a->ch);
	a->c = NULL;
	return a->r;
}

/*
 * Outcomes after which the change may or may not have been applied: no answer, or etcd's
 * "request timed out" / "leader changed" (Unavailable).
 */
static bool ambiguous(int r, const struct kha_diag *d)
{
	return r == -ETIMEDOUT || r == -ECONNRESET || r == -ECANCELED ||
	       (r == -EAGAIN && !strstr(d->msg, "unhealthy cluster"));
}

struct look {
	const struct kha_etcdops_change *ch;
	uint64_t id;
	const char *peer_url;
	bool want_present;
	struct kha_etcd_member_list *list;
	long found;
};

static long find_in_list(const struct kha_etcd_member_list *list, uint64_t id, const char *peer_url)
{
	for (size_t i = 0; i < list->n_members; i++) {
		const struct kha_etcd_member *m = &list->members[i];

		if (!peer_url && m->id == id)
			return (long)i;
		for (size_t u = 0; peer_url && u < m->n_peer_urls; u++)
			if (strcmp(m->peer_urls[u], peer_url) == 0)
				return (long)i;
	}
	return -1;
}

static int look_poll(void *userdata, char *text, size_t size)
{
	struct look *l = userdata;
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;

	(void)text;
	(void)size;
	kha_etcd_member_list_release(l->list);
	l->found = -1;
	if (kha_etcd_new(l->ch->cfg, &c, NULL) == 0 &&
	    kha_etcd_member_list(c, l->list, NULL) == 0) {
		l->found = find_in_list(l->list, l->id, l->peer_url);
		if ((l->found >= 0) == l->want_present)
			return 1;
	}
	return 0;
}

/*
 * Whether a change whose answer was lost was applied after all: the index in *list of the
 * member that has peer_url (add), or of id (remove), polling up to AMBIGUOUS_US until it is
 * present (want_present) or gone; -1 when absent.
 */
static long look_for(const struct kha_etcdops_change *ch, uint64_t id, const char *peer_url,
		     bool want_present, struct kha_etcd_member_list *list)
{
	struct look l = {.ch = ch,
			 .id = id,
			 .peer_url = peer_url,
			 .want_present = want_present,
			 .list = list,
			 .found = -1};
	int r = kha_etcdops_wait(kha_now_us() + AMBIGUOUS_US, POLL_US, ch->cancel, look_poll, &l,
				 NULL, NULL);

	return r > 0 || !want_present ? l.found : -1;
}

/* ---- add and remove ------------------------------------------------------------------------- */

static int take_found(struct kha_etcd_member_list *list, long i, const char *name,
		      struct kha_etcd_member *ret_member,
		      struct kha_etcdops_member_start *ret_start, struct kha_diag *d)
{
	int r = kha_etcdops_member_start_flags(list, list->members[i].id, name, ret_start);

	*ret_member = list->members[i];
	memset(&list->members[i], 0, sizeof(list->members[i]));
	kha_etcd_member_list_release(list);
	return r < 0 ? kha_diag_set(d, EBADMSG, "the member list lacks the new member") : 0;
}

int kha_etcdops_change_add(const struct kha_etcdops_change *ch, const char *const *peer_urls,
			   size_t n_peer_urls, const char *name, bool learner,
			   struct kha_etcd_member *ret_member,
			   struct kha_etcdops_member_start *ret_start, struct kha_diag *d)
{
	struct kha_etcd_member_list list = {};
	struct attempt a = {.ch = ch,
			    .peer_urls = peer_urls,
			    .n_peer_urls = n_peer_urls,
			    .learner = learner,
			    .member = ret_member,
			    .list = &list};
	int r = 0;

	for (int attempt = 1; attempt <= CHANGE_ATTEMPTS; attempt++) {
		long i;

		r = try_change(&a);
		if (r == 0)
			break;
		/* lost, or already applied by an earlier attempt ("Peer URLs already exists") */
		if (!ambiguous(r, &a.d) && !(attempt > 1 && strstr(a.d.msg, "already exists")))
			break;
		i = look_for(ch, 0, peer_urls[0], true, &list);
		if (i >= 0) {
			note(ch,
			     "the answer was lost (%s), but the member list shows the new member: "
			     "it was added",
			     a.d.msg);
			return take_found(&list, i, name, ret_member, ret_start, d);
		}
		kha_etcd_member_list_release(&list);
		if (attempt == CHANGE_ATTEMPTS || cancelled(ch))
			break;
		note(ch, "not applied (%s): retrying", a.d.msg);
		wait_live_leader(ch);
	}
	if (r < 0) {
		kha_diag_set(d, -r, "%s", a.d.msg);
		return r;
	}
	r = kha_etcdops_member_start_flags(&list, ret_member->id, name, ret_start);
	kha_etcd_member_list_release(&list);
	if (r < 0)
		return kha_diag_set(d, EBADMSG, "the member list lacks the new member");
	return 0;
}

int kha_etcdops_change_remove(const struct kha_etcdops_change *ch, uint64_t id, struct kha_diag *d)
{
	struct attempt a = {.ch = ch, .remove = true, .id = id};
	int r = 0;

	for (int attempt = 1; attempt <= CHANGE_ATTEMPTS; attempt++) {
		struct kha_etcd_member_list list = {};
		long i;

		r = try_change(&a);
		if (r == 0)
			return 0;
		/* an earlier attempt was applied after all */
		if (r == -ENOENT && attempt > 1)
			return 0;
		if (!ambiguous(r, &a.d))
			break;
		i = look_for(ch, id, NULL, false, &list);
		kha_etcd_member_list_release(&list);
		if (i < 0) {
			note(ch,
			     "the answer was lost (%s), but the member is gone from the list: it "
			     "was removed",
			     a.d.msg);
			return 0;
		}
		if (attempt == CHANGE_ATTEMPTS || cancelled(ch))
			break;
		note(ch, "not applied (%s): retrying", a.d.msg);
		wait_live_leader(ch);
	}
	kha_diag_set(d, -r, "%s", a.d.msg);
	return r;
}
