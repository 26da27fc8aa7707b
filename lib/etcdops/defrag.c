// SPDX-License-Identifier: MIT
/*
 * Rolling defragmentation: a member being defragmented stops applying entries until it is
 * done (its backend is rewritten under a lock), so members go one at a time, the cluster must
 * be whole before each and be whole again after each, and the leader goes last.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kha/etcdops.h"
#include "kha/banned.h"

#define DEFAULT_DEFRAG_US (5 * 60 * KHA_USEC_PER_SEC)
#define DEFAULT_SETTLE_US (60 * KHA_USEC_PER_SEC)
#define POLL_US		  (300 * KHA_USEC_PER_MSEC)

static int rank(const struct kha_etcd_cluster_report *rep, size_t i)
{
	const struct kha_etcd_member_report *m = &rep->members[i];

	if (rep->health.leader && m->member.id == rep->health.leader)
		return 2;
	return m->member.is_learner ? 0 : 1;
}

void kha_etcdops_defrag_order(const struct kha_etcd_cluster_report *rep, size_t *order)
{
	size_t k = 0;

	/* stable: member list order within each rank */
	for (int r = 0; r <= 2; r++)
		for (size_t i = 0; i < rep->n_members; i++)
			if (rank(rep, i) == r)
				order[k++] = i;
}

bool kha_etcdops_defrag_cluster_ready(const struct kha_etcd_cluster_report *rep, char *reason,
				      size_t size)
{
	char buf[256];

	if (!reason) {
		reason = buf;
		size = sizeof(buf);
	}
	reason[0] = '\0';
	for (size_t i = 0; i < rep->n_members; i++) {
		const struct kha_etcd_member_report *m = &rep->members[i];

		if (!m->reachable) {
			snprintf(reason, size, "member %s does not answer (%s)",
				 m->member.name[0] ? m->member.name : "(unstarted)",
				 m->error ? m->error : "no answer");
			return false;
		}
	}
	if (!rep->health.quorum_ok) {
		snprintf(reason, size, "quorum is lost");
		return false;
	}
	if (!rep->health.leader) {
		snprintf(reason, size, "the members do not agree on a leader");
		return false;
	}
	return true;
}

void kha_etcdops_defrag_report_release(struct kha_etcdops_defrag_report *r)
{
	if (!r)
		return;
	free(r->members);
	memset(r, 0, sizeof(*r));
}

static void say(const struct kha_etcdops_defrag_opts *o, const struct kha_etcdops_defrag_member *m,
		const char *what)
{
	if (o->progress)
		o->progress(o->userdata, m, what);
}

struct settling {
	const struct kha_etcdops_defrag_opts *o;
	char *why;
	size_t size;
};

static int settle_poll(void *userdata, char *text, size_t size)
{
	struct settling *s = userdata;
	struct kha_etcd_cluster_report rep = {};
	struct kha_diag d = {};
	bool ready = false;

	(void)text;
	(void)size;
	if (kha_etcd_cluster_report(s->o->cfg, 0, 0, &rep, &d) == 0)
		ready = kha_etcdops_defrag_cluster_ready(&rep, s->why, s->size);
	else
		snprintf(s->why, s->size, "%s", d.msg);
	kha_etcd_cluster_report_release(&rep);
	return ready;
}

/* Waits until the cluster is ready again; returns 0, -ETIMEDOUT or -ECANCELED. */
static int settle(const struct kha_etcdops_defrag_opts *o, uint64_t timeout_us, char *why,
		  size_t size)
{
	struct settling s = {.o = o, .why = why, .size = size};
	int r = kha_etcdops_wait(kha_now_us() + timeout_us, POLL_US, o->cancel, settle_poll, &s,
				 NULL, NULL);

	return r > 0 ? 0 : r;
}

static int member_status(const struct kha_etcdops_defrag_opts *o, const char *endpoint,
			 struct kha_etcd_status *st, struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	int r = kha_etcd_new_endpoint(o->cfg, endpoint, &c, d);

	return r < 0 ? r : kha_etcd_status(c, st, d);
}

static int defrag_one(const struct kha_etcdops_defrag_opts *o, struct kha_etcdops_defrag_member *m,
		      struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_etcd_status st = {};
	uint64_t t0;
	int r;

	r = member_status(o, m->endpoint, &st, d);
	if (r < 0)
		return r;
	m->size_before = st.db_size;
	m->in_use_before = st.db_size_in_use;
	kha_etcd_status_release(&st);
	say(o, m, "defragmenting");
	r = kha_etcd_new_endpoint(o->cfg, m->endpoint, &c, d);
	if (r < 0)
		return r;
	kha_etcd_set_command_timeout(c, o->defrag_timeout_us ? o->defrag_timeout_us
							     : DEFAULT_DEFRAG_US);
	t0 = kha_now_us();
	r = kha_etcd_defragment(c, d);
	m->duration_us = kha_now_us() - t0;
	if (r < 0)
		return r;
	r = member_status(o, m->endpoint, &st, d);
	if (r < 0)
		return r;
	m->size_after = st.db_size;
	m->in_use_after = st.db_size_in_use;
	kha_etcd_status_release(&st);
	m->done = true;
	return 0;
}

int kha_etcdops_defrag_rolling(const struct kha_etcdops_defrag_opts *o,
			       struct kha_etcdops_defrag_report *ret, struct kha_diag *d)
{
	struct kha_etcd_cluster_report rep = {};
	struct kha_etcdops_defrag_report out = {};
	size_t *order = NULL;
	char why[384];
	long only = -1;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = kha_etcd_cluster_report(o->cfg, 0, 0, &rep, d);
	if (r < 0)
		return r;
	if (o->member) {
		r = kha_etcdops_member_find(&rep, o->member, d);
		if (r < 0)
			goto out;
		only = r;
	}
	if (!kha_etcdops_defrag_cluster_ready(&rep, why, sizeof(why)) && !o->force) {
		r = kha_diag_set(d, EAGAIN, "the cluster is not ready: %s", why);
		goto out;
	}
	order = calloc(rep.n_members ? rep.n_members : 1, sizeof(*order));
	out.members = calloc(rep.n_members ? rep.n_members : 1, sizeof(*out.members));
	if (!order || !out.members) {
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto out;
	}
	kha_etcdops_defrag_order(&rep, order);
	for (size_t k = 0; k < rep.n_members; k++) {
		const struct kha_etcd_member_report *mr = &rep.members[order[k]];
		struct kha_etcdops_defrag_member *m;

		if (only >= 0 && order[k] != (size_t)only)
			continue;
		m = &out.members[out.n_members++];
		m->id = mr->member.id;
		m->is_learner = mr->member.is_learner;
		m->is_leader = rep.health.leader && mr->member.id == rep.health.leader;
		snprintf(m->name, sizeof(m->name), "%s", mr->member.name);
		snprintf(m->endpoint, sizeof(m->endpoint), "%s",
			 mr->endpoint
				 ? mr->endpoint
				 : (mr->member.n_client_urls ? mr->member.client_urls[0] : ""));
		if (mr->alarm_nospace)
			out.nospace_alarm = true;
	}
	for (size_t k = 0; k < out.n_members; k++) {
		struct kha_etcdops_defrag_member *m = &out.members[k];
		struct kha_diag md = {};
		uint64_t t0;

		if (o->cancel && *o->cancel) {
			r = kha_diag_set(d, ECANCELED, "interrupted before %s", m->name);
			goto out;
		}
		if (k > 0 || o->force) {
			/* whole again before the next member (the first was checked above) */
			r = settle(o, 0, why, sizeof(why));
			if (r < 0 && !o->force) {
				r = kha_diag_set(d, EAGAIN, "not defragmenting %s: %s", m->name,
						 why);
				goto out;
			}
		}
		r = defrag_one(o, m, &md);
		if (r < 0) {
			m->r = r;
			snprintf(m->error, sizeof(m->error), "%s", md.msg);
			r = kha_diag_set(d, r, "%s: %s", m->name, md.msg);
			goto out;
		}
		out.reclaimed += m->size_before - m->size_after;
		say(o, m, "waiting for the cluster");
		t0 = kha_now_us();
		r = settle(o, o->settle_timeout_us ? o->settle_timeout_us : DEFAULT_SETTLE_US, why,
			   sizeof(why));
		m->settle_us = kha_now_us() - t0;
		if (r == -ECANCELED) {
			r = kha_diag_set(d, ECANCELED, "interrupted after %s", m->name);
			goto out;
		}
		if (r < 0) {
			r = kha_diag_set(d, ETIMEDOUT,
					 "after defragmenting %s the cluster did not settle: %s",
					 m->name, why);
			goto out;
		}
		say(o, m, "done");
	}
	r = 0;
out:
	free(order);
	kha_etcd_cluster_report_release(&rep);
	*ret = out;
	return r;
}
