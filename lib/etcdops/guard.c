// SPDX-License-Identifier: MIT
/*
 * Membership guards: pure rules over a snapshot of the cluster's state, so every case (grow,
 * shrink, degraded, learners, leader lagging) is unit-tested without a cluster.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kha/etcdops.h"
#include "kha/banned.h"

#define DEFAULT_LAG 1000

int kha_etcdops_guard_tolerance(size_t voters, size_t up)
{
	return (int)up - (int)(voters / 2 + 1);
}

static const char *label(char *buf, size_t size, const struct kha_etcdops_guard_member *m)
{
	if (m->name && *m->name)
		snprintf(buf, size, "%s", m->name);
	else
		snprintf(buf, size, "%llx", (unsigned long long)m->id);
	return buf;
}

static const char *plural(int n)
{
	return n == 1 || n == -1 ? "" : "s";
}

static int KHA_PRINTF(4, 5) refuse(struct kha_etcdops_guard_verdict *v, const char *rule,
				   bool forceable, const char *fmt, ...)
{
	va_list ap;

	v->allowed = false;
	v->forceable = forceable;
	snprintf(v->rule, sizeof(v->rule), "%s", rule);
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	return 0;
}

static const struct kha_etcdops_guard_member *find(const struct kha_etcdops_guard_cluster *c,
						   uint64_t id)
{
	for (size_t i = 0; i < c->n_members; i++)
		if (c->members[i].id == id)
			return &c->members[i];
	return NULL;
}

static bool same_url(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la && a[la - 1] == '/')
		la--;
	while (lb && b[lb - 1] == '/')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/* "3 voters (quorum 2) can lose 1" */
static void describe(char *buf, size_t size, size_t voters, size_t up, int tol)
{
	if (tol < 0)
		snprintf(buf, size, "%zu voter%s with %zu up has no quorum (needs %zu)", voters,
			 voters == 1 ? "" : "s", up, voters / 2 + 1);
	else
		snprintf(buf, size, "%zu voter%s with %zu up (quorum %zu) can lose %d", voters,
			 voters == 1 ? "" : "s", up, voters / 2 + 1, tol);
}

/*
 * etcd's strict reconfiguration check (on by default) refuses to add any member, a learner
 * too, unless its leader has been connected to every voting member for 5 s: with a voter
 * down the add cannot succeed, so the dead member has to be removed first.
 */
static int check_voters_up(const struct kha_etcdops_guard_cluster *c,
			   struct kha_etcdops_guard_verdict *v)
{
	char l[64];

	for (size_t i = 0; i < c->n_members; i++) {
		const struct kha_etcdops_guard_member *m = &c->members[i];

		if (!m->is_learner && !m->reachable)
			return refuse(
				v, "member-down", true,
				"voter %s is down, and etcd refuses to add members (learners "
				"too) while a voting member is unreachable (strict "
				"reconfiguration check): remove it first (kha etcd member remove "
				"%s, or kha etcd member replace %s ... which does that), or "
				"bring it back",
				label(l, sizeof(l), m), label(l, sizeof(l), m),
				label(l, sizeof(l), m));
	}
	return 0;
}

/* The member a CORRUPT alarm blames: the one it names, else the consistency check's suspect. */
static uint64_t corrupt_member(const struct kha_etcdops_guard_cluster *c)
{
	return c->corrupt ? c->corrupt : c->corrupt_unnamed ? c->suspect : 0;
}

/* The "alarm" refusal, with the way out of the alarm that is active. */
static int refuse_alarm(const struct kha_etcdops_guard_cluster *c,
			struct kha_etcdops_guard_verdict *v)
{
	const struct kha_etcdops_guard_member *m = find(c, corrupt_member(c));
	char l[64];

	if (m)
		return refuse(
			v, "alarm", true,
			"a CORRUPT alarm is active on %s (its data differs from the others'): "
			"no other change while it is; the repair is to stop the etcd of %s, "
			"then `kha etcd member replace %s --name NEW --peer-urls URL`",
			label(l, sizeof(l), m), label(l, sizeof(l), m), label(l, sizeof(l), m));
	if (c->corrupt || c->corrupt_unnamed)
		return refuse(v, "alarm", true,
			      "a CORRUPT alarm is active: no other change while it is; `kha etcd "
			      "check consistency` names the member that differs: stop its etcd, "
			      "then `kha etcd member replace NAME --name NEW --peer-urls URL`");
	if (c->nospace)
		return refuse(v, "alarm", true,
			      "a NOSPACE alarm is active: free space first (`kha etcd defrag`), "
			      "then `kha etcd alarm disarm --alarm NOSPACE`");
	return refuse(v, "alarm", true,
		      "a NOSPACE or CORRUPT alarm is active: resolve it first (kha etcd alarm "
		      "list shows it)");
}

/*
 * name-taken, peer-url-taken: the new member's name and peer URLs against every member but
 * skip (the one a repair removes first: its name and URL may be reused).
 */
static int check_taken(const struct kha_etcdops_guard_cluster *c,
		       const struct kha_etcdops_guard_request *req, uint64_t skip,
		       struct kha_etcdops_guard_verdict *v)
{
	char l[64];

	for (size_t i = 0; i < c->n_members; i++) {
		const struct kha_etcdops_guard_member *m = &c->members[i];

		if (skip && m->id == skip)
			continue;
		if (req->name && *req->name && m->name && strcmp(m->name, req->name) == 0)
			return refuse(
				v, "name-taken", false,
				"a member is already named '%s' (id %llx): pick another name%s%s%s",
				req->name, (unsigned long long)m->id,
				skip ? "" : ", or replace it with `kha etcd member replace ",
				skip ? "" : req->name, skip ? "" : " --name NEW --peer-urls URL`");
		for (size_t j = 0; j < m->n_peer_urls; j++)
			for (size_t k = 0; k < req->n_peer_urls; k++)
				if (same_url(m->peer_urls[j], req->peer_urls[k]))
					return refuse(v, "peer-url-taken", false,
						      "peer URL %s already belongs to member %s: "
						      "every member needs its own",
						      req->peer_urls[k], label(l, sizeof(l), m));
	}
	return 0;
}

static int check_add(const struct kha_etcdops_guard_cluster *c,
		     const struct kha_etcdops_guard_request *req,
		     struct kha_etcdops_guard_verdict *v)
{
	bool learner = req->op == KHA_ETCDOPS_GUARD_ADD_LEARNER;
	char a[160], b[160], l[64];

	describe(a, sizeof(a), v->voters_before, v->up_before, v->tolerance_before);

	if (check_taken(c, req, 0, v) < 0 || !v->allowed)
		return 0;
	if (!c->leader)
		return refuse(v, "no-leader", true,
			      "the cluster has no leader: a membership change goes through raft "
			      "and cannot commit; restore quorum first");
	if (v->tolerance_before < 0)
		return refuse(v, "quorum-lost", true, "the cluster has lost quorum (%s)", a);
	if (c->alarm)
		return refuse_alarm(c, v);
	for (size_t i = 0; i < c->n_members; i++) {
		const struct kha_etcdops_guard_member *m = &c->members[i];

		if (!m->name || !*m->name)
			return refuse(
				v, "pending-member", true,
				"member %llx was added but has not started yet: start it (or "
				"remove it: kha etcd member remove %llx) before adding another",
				(unsigned long long)m->id, (unsigned long long)m->id);
		if (m->is_learner)
			return refuse(
				v, "pending-member", true,
				"learner %s is waiting to be promoted (etcd allows one learner "
				"at a time): kha etcd member promote %s, or remove it",
				label(l, sizeof(l), m), label(l, sizeof(l), m));
	}
	if (learner) {
		v->voters_after = v->voters_before;
		v->up_after = v->up_before;
		v->quorum_after = v->quorum_before;
		v->tolerance_after = v->tolerance_before;
		return check_voters_up(c, v);
	}
	/* the new voter counts from now on, but answers only once it has started */
	v->voters_after = v->voters_before + 1;
	v->up_after = v->up_before;
	v->quorum_after = v->voters_after / 2 + 1;
	v->tolerance_after = kha_etcdops_guard_tolerance(v->voters_after, v->up_after);
	describe(a, sizeof(a), v->voters_before, v->up_before, v->tolerance_before);
	describe(b, sizeof(b), v->voters_after, v->up_after, v->tolerance_after);
	if (v->tolerance_after < 0)
		return refuse(v, "quorum-loss", true,
			      "adding a voting member now loses quorum until it has started and "
			      "caught up: %s; with the new, not yet running member, %s. Add it as "
			      "a learner (--learner), start it, then `kha etcd member promote %s`",
			      a, b, req->name ? req->name : "NAME");
	if (v->tolerance_after < v->tolerance_before)
		return refuse(v, "fault-tolerance", true,
			      "adding a voting member lowers fault tolerance during the change: "
			      "now %s; until the new member runs and has caught up, %s (quorum "
			      "grows to %zu at once). Add it as a learner (--learner), start it, "
			      "then `kha etcd member promote %s`",
			      a, b, v->quorum_after, req->name ? req->name : "NAME");
	if (check_voters_up(c, v) < 0 || !v->allowed)
		return 0;
	if (v->voters_after % 2 == 0)
		snprintf(v->warning, sizeof(v->warning),
			 "%zu voting members tolerate no more failures than %zu, with a larger "
			 "quorum: add one more, or keep an odd count",
			 v->voters_after, v->voters_after - 1);
	return 0;
}

static int check_remove(const struct kha_etcdops_guard_cluster *c,
			const struct kha_etcdops_guard_member *t,
			struct kha_etcdops_guard_verdict *v)
{
	uint64_t lag = c->lag_threshold ? c->lag_threshold : DEFAULT_LAG;
	const struct kha_etcdops_guard_member *leader = c->leader ? find(c, c->leader) : NULL;
	char a[160], b[160], l[64], l2[64];

	if (!c->leader)
		return refuse(v, "no-leader", true,
			      "the cluster has no leader: a membership change goes through raft "
			      "and cannot commit; restore quorum first");
	if (t->is_learner) {
		/* learners do not vote: removing one never changes quorum */
		v->voters_after = v->voters_before;
		v->up_after = v->up_before;
		v->quorum_after = v->quorum_before;
		v->tolerance_after = v->tolerance_before;
		return 0;
	}
	if (v->voters_before == 1)
		return refuse(v, "last-member", false,
			      "%s is the only voting member: removing it would leave no cluster",
			      label(l, sizeof(l), t));
	v->voters_after = v->voters_before - 1;
	v->up_after = v->up_before - (t->reachable ? 1 : 0);
	v->quorum_after = v->voters_after / 2 + 1;
	v->tolerance_after = kha_etcdops_guard_tolerance(v->voters_after, v->up_after);
	describe(a, sizeof(a), v->voters_before, v->up_before, v->tolerance_before);
	describe(b, sizeof(b), v->voters_after, v->up_after, v->tolerance_after);
	if (v->tolerance_after < 0)
		return refuse(v, "quorum-loss", true,
			      "removing %s loses quorum: now %s; after, %s. Bring the members that "
			      "are down back first (or remove a member that is down instead)",
			      label(l, sizeof(l), t), a, b);
	if (leader && t->id == leader->id) {
		for (size_t i = 0; i < c->n_members; i++) {
			const struct kha_etcdops_guard_member *m = &c->members[i];

			if (m->id == t->id || m->is_learner)
				continue;
			if (!m->reachable)
				return refuse(
					v, "leader-lagging", true,
					"%s is the leader and voter %s is down: removing the "
					"leader forces an election among fewer members. Bring "
					"%s back first, or move the leadership away "
					"(etcdctl move-leader) and remove %s as a follower",
					label(l, sizeof(l), t), label(l2, sizeof(l2), m),
					label(l2, sizeof(l2), m), label(l, sizeof(l), t));
			if (t->raft_index && m->raft_index + lag < t->raft_index)
				return refuse(
					v, "leader-lagging", true,
					"%s is the leader and voter %s lags %llu raft entries behind it: "
					"removing the leader now forces an election that may pick a "
					"member still catching up. Wait until %s has caught up, or move "
					"the leadership away (etcdctl move-leader)",
					label(l, sizeof(l), t), label(l2, sizeof(l2), m),
					(unsigned long long)(t->raft_index - m->raft_index),
					label(l2, sizeof(l2), m));
		}
	}
	if (v->tolerance_after < v->tolerance_before)
		snprintf(v->warning, sizeof(v->warning),
			 "after removing %s the cluster can lose %d member%s (was %d)",
			 label(l, sizeof(l), t), v->tolerance_after, plural(v->tolerance_after),
			 v->tolerance_before);
	else if (v->voters_after % 2 == 0)
		snprintf(v->warning, sizeof(v->warning),
			 "%zu voting members tolerate no more failures than %zu", v->voters_after,
			 v->voters_after - 1);
	return 0;
}

static int check_promote(const struct kha_etcdops_guard_cluster *c,
			 const struct kha_etcdops_guard_member *t,
			 struct kha_etcdops_guard_verdict *v)
{
	char a[160], b[160], l[64];

	describe(a, sizeof(a), v->voters_before, v->up_before, v->tolerance_before);
	if (!t->is_learner)
		return refuse(v, "not-a-learner", false, "%s is already a voting member",
			      label(l, sizeof(l), t));
	if (!c->leader)
		return refuse(v, "no-leader", true,
			      "the cluster has no leader: a membership change goes through raft "
			      "and cannot commit; restore quorum first");
	if (v->tolerance_before < 0)
		return refuse(v, "quorum-lost", true, "the cluster has lost quorum (%s)", a);
	if (!t->reachable || !t->name || !*t->name)
		return refuse(v, "learner-down", true,
			      "learner %s %s: a voter that cannot vote raises the quorum for "
			      "nothing. Start it and let it catch up first",
			      label(l, sizeof(l), t),
			      t->name && *t->name ? "does not answer" : "has not started");
	v->voters_after = v->voters_before + 1;
	v->up_after = v->up_before + 1;
	v->quorum_after = v->voters_after / 2 + 1;
	v->tolerance_after = kha_etcdops_guard_tolerance(v->voters_after, v->up_after);
	describe(a, sizeof(a), v->voters_before, v->up_before, v->tolerance_before);
	describe(b, sizeof(b), v->voters_after, v->up_after, v->tolerance_after);
	if (v->tolerance_after < 0)
		return refuse(v, "quorum-loss", true,
			      "promoting %s loses quorum: now %s; after, %s",
			      label(l, sizeof(l), t), a, b);
	if (v->tolerance_after < v->tolerance_before)
		return refuse(v, "fault-tolerance", true,
			      "promoting %s lowers fault tolerance: now %s; after, %s",
			      label(l, sizeof(l), t), a, b);
	if (v->voters_after % 2 == 0)
		snprintf(v->warning, sizeof(v->warning),
			 "%zu voting members tolerate no more failures than %zu", v->voters_after,
			 v->voters_after - 1);
	return 0;
}

/*
 * The repair of a CORRUPT alarm: only of the member it blames, only once that member is
 * stopped (it would go on serving its copy; a removed member that still runs keeps trying to
 * talk to the others), then under the rules of a remove. The learner added after the disarm
 * is guarded again then, as any add.
 */
static int check_repair(const struct kha_etcdops_guard_cluster *c,
			const struct kha_etcdops_guard_member *t,
			const struct kha_etcdops_guard_request *req,
			struct kha_etcdops_guard_verdict *v)
{
	const struct kha_etcdops_guard_member *blamed = find(c, corrupt_member(c));
	char l[64], l2[64];

	if (!c->corrupt && !c->corrupt_unnamed)
		return refuse(v, "not-corrupt", false,
			      "no CORRUPT alarm is active: replace %s the usual way",
			      label(l, sizeof(l), t));
	if (!blamed && !c->corrupt)
		return refuse(v, "corrupt-unknown", false,
			      "the CORRUPT alarm names no member and the consistency check blames "
			      "no single one: run `kha etcd check consistency` (with every member "
			      "running) to find the member that differs (when it finds them all "
			      "consistent, the member that differed is gone already: `kha etcd "
			      "alarm disarm --alarm CORRUPT`)");
	if (!blamed || blamed->id != t->id)
		return blamed ? refuse(v, "alarm", true,
				       "the CORRUPT alarm is on %s, not %s: replace %s (stop its "
				       "etcd, then `kha etcd member replace %s --name NEW "
				       "--peer-urls URL`); no other change while the alarm is active",
				       label(l2, sizeof(l2), blamed), label(l, sizeof(l), t),
				       label(l2, sizeof(l2), blamed), label(l2, sizeof(l2), blamed))
			      : refuse_alarm(c, v);
	if (c->nospace)
		return refuse(
			v, "alarm", true,
			"a NOSPACE alarm is active too: free space first (`kha etcd defrag`), "
			"then `kha etcd alarm disarm --alarm NOSPACE`");
	if (t->reachable)
		return refuse(
			v, "corrupt-running", false,
			"%s still runs: stop its etcd first (systemctl stop etcd, or move its "
			"static pod manifest away), then run this again; it serves the "
			"corrupt copy until it stops",
			label(l, sizeof(l), t));
	if (check_taken(c, req, t->id, v) < 0 || !v->allowed)
		return 0;
	return check_remove(c, t, v);
}

int kha_etcdops_guard_check(const struct kha_etcdops_guard_cluster *c,
			    const struct kha_etcdops_guard_request *req,
			    struct kha_etcdops_guard_verdict *ret)
{
	struct kha_etcdops_guard_verdict v = {.allowed = true};
	const struct kha_etcdops_guard_member *t = NULL;
	int r;

	if (!c || !req || (c->n_members && !c->members))
		return -EINVAL;
	for (size_t i = 0; i < c->n_members; i++) {
		if (c->members[i].is_learner)
			continue;
		v.voters_before++;
		if (c->members[i].reachable)
			v.up_before++;
	}
	v.quorum_before = v.voters_before / 2 + 1;
	v.tolerance_before = kha_etcdops_guard_tolerance(v.voters_before, v.up_before);
	switch (req->op) {
	case KHA_ETCDOPS_GUARD_ADD:
	case KHA_ETCDOPS_GUARD_ADD_LEARNER:
		if (!req->n_peer_urls)
			return -EINVAL;
		r = check_add(c, req, &v);
		break;
	case KHA_ETCDOPS_GUARD_REMOVE:
	case KHA_ETCDOPS_GUARD_PROMOTE:
	case KHA_ETCDOPS_GUARD_REPAIR:
		if (req->op == KHA_ETCDOPS_GUARD_REPAIR && !req->n_peer_urls)
			return -EINVAL;
		t = find(c, req->target);
		if (!t) {
			r = refuse(&v, "unknown-member", false, "no member with id %llx",
				   (unsigned long long)req->target);
			break;
		}
		r = req->op == KHA_ETCDOPS_GUARD_REMOVE	   ? check_remove(c, t, &v)
		    : req->op == KHA_ETCDOPS_GUARD_PROMOTE ? check_promote(c, t, &v)
							   : check_repair(c, t, req, &v);
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
	if (!v.allowed) {
		/* the "after" numbers only mean something for an allowed change */
		v.warning[0] = '\0';
	}
	*ret = v;
	return 0;
}

void kha_etcdops_guard_from_report(const struct kha_etcd_cluster_report *rep,
				   struct kha_etcdops_guard_member *members,
				   struct kha_etcdops_guard_cluster *ret)
{
	*ret = (struct kha_etcdops_guard_cluster){
		.members = members,
		.n_members = rep->n_members,
		.leader = rep->health.leader,
	};
	/*
	 * Just after the leader died or was removed, the others still name it until they elect
	 * another: a change proposed then is forwarded to a dead leader and silently dropped
	 * (the request hangs until its timeout). A leader counts only while it is a member and
	 * answers.
	 */
	if (rep->health.leader_index < 0 || (size_t)rep->health.leader_index >= rep->n_members ||
	    !rep->members[rep->health.leader_index].reachable)
		ret->leader = 0;
	for (size_t i = 0; i < rep->n_members; i++) {
		const struct kha_etcd_member_report *m = &rep->members[i];

		members[i] = (struct kha_etcdops_guard_member){
			.id = m->member.id,
			.name = m->member.name,
			.is_learner = m->member.is_learner,
			.reachable = m->reachable,
			.raft_index = m->reachable ? m->status.raft_index : 0,
			.peer_urls = (const char *const *)m->member.peer_urls,
			.n_peer_urls = m->member.n_peer_urls,
		};
		if (m->alarm_nospace)
			ret->nospace = true;
		if (m->alarm_corrupt)
			ret->corrupt = m->member.id;
	}
	ret->nospace |= rep->alarm_nospace_unnamed;
	ret->corrupt_unnamed = rep->alarm_corrupt_unnamed;
	ret->alarm = ret->nospace || ret->corrupt || ret->corrupt_unnamed;
}

int kha_etcdops_guard_check_report(const struct kha_etcd_cluster_report *rep, uint64_t suspect,
				   const struct kha_etcdops_guard_request *req,
				   struct kha_etcdops_guard_verdict *ret)
{
	struct kha_etcdops_guard_member *members =
		calloc(rep->n_members ? rep->n_members : 1, sizeof(*members));
	struct kha_etcdops_guard_cluster c;
	int r;

	if (!members)
		return -ENOMEM;
	kha_etcdops_guard_from_report(rep, members, &c);
	c.suspect = suspect;
	r = kha_etcdops_guard_check(&c, req, ret);
	free(members);
	return r;
}

bool kha_etcdops_guard_report_alarm(const struct kha_etcd_cluster_report *rep)
{
	if (rep->alarm_corrupt_unnamed || rep->alarm_nospace_unnamed)
		return true;
	for (size_t i = 0; i < rep->n_members; i++)
		if (rep->members[i].alarm_corrupt || rep->members[i].alarm_nospace)
			return true;
	return false;
}
