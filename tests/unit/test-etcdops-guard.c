// SPDX-License-Identifier: MIT
/* Unit tests of the membership guards: every rule, on clusters described member by member. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kha/etcdops.h"
#include "kha/banned.h"

/*
 * A cluster from a compact description: one char per member, 'U' voter up, 'D' voter down,
 * 'L' learner up, 'l' learner down, 'u' added but not started. The first voter is the leader
 * unless no_leader. Member i has id 0x100 + i, name "m<i>", peer URL http://10.0.0.<i>:2380.
 */
struct fixture {
	struct kha_etcdops_guard_member m[8];
	char names[8][8];
	char urls[8][32];
	const char *url_ptr[8];
	struct kha_etcdops_guard_cluster c;
};

static void build(struct fixture *f, const char *desc, bool no_leader)
{
	size_t n = strlen(desc);

	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < n; i++) {
		struct kha_etcdops_guard_member *m = &f->m[i];
		char k = desc[i];

		snprintf(f->names[i], sizeof(f->names[i]), "m%zu", i);
		snprintf(f->urls[i], sizeof(f->urls[i]), "http://10.0.0.%zu:2380", i);
		f->url_ptr[i] = f->urls[i];
		m->id = 0x100 + i;
		m->name = k == 'u' ? "" : f->names[i];
		m->is_learner = k == 'L' || k == 'l' || k == 'u';
		m->reachable = k == 'U' || k == 'L';
		m->raft_index = m->reachable ? 5000 : 0;
		m->peer_urls = &f->url_ptr[i];
		m->n_peer_urls = 1;
		if (!no_leader && !f->c.leader && k == 'U')
			f->c.leader = m->id;
	}
	f->c.members = f->m;
	f->c.n_members = n;
}

static struct kha_etcdops_guard_verdict check(struct fixture *f, enum kha_etcdops_guard_op op,
					      uint64_t target, const char *name, const char *url)
{
	const char *urls[1] = {url ? url : "http://10.0.0.99:2380"};
	struct kha_etcdops_guard_request req = {
		.op = op,
		.name = name ? name : "new",
		.peer_urls = urls,
		.n_peer_urls = 1,
		.target = target,
	};
	struct kha_etcdops_guard_verdict v;

	assert_int_equal(kha_etcdops_guard_check(&f->c, &req, &v), 0);
	return v;
}

static void expect_refused(const struct kha_etcdops_guard_verdict *v, const char *rule,
			   bool forceable)
{
	if (v->allowed)
		fail_msg("expected a refusal by %s, got allowed", rule);
	if (strcmp(v->rule, rule) != 0)
		fail_msg("expected rule %s, got %s: %s", rule, v->rule, v->reason);
	assert_int_equal(v->forceable, forceable);
	assert_true(strlen(v->reason) > 20);
}

static void expect_allowed(const struct kha_etcdops_guard_verdict *v)
{
	if (!v->allowed)
		fail_msg("refused by %s: %s", v->rule, v->reason);
	assert_string_equal(v->rule, "");
}

static void test_tolerance(void **state)
{
	(void)state;
	assert_int_equal(kha_etcdops_guard_tolerance(1, 1), 0);
	assert_int_equal(kha_etcdops_guard_tolerance(2, 2), 0);
	assert_int_equal(kha_etcdops_guard_tolerance(3, 3), 1);
	assert_int_equal(kha_etcdops_guard_tolerance(3, 2), 0);
	assert_int_equal(kha_etcdops_guard_tolerance(3, 1), -1);
	assert_int_equal(kha_etcdops_guard_tolerance(4, 4), 1);
	assert_int_equal(kha_etcdops_guard_tolerance(5, 5), 2);
	assert_int_equal(kha_etcdops_guard_tolerance(5, 2), -1);
}

static void test_add_voter_to_odd_cluster_lowers_tolerance(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL);
	expect_refused(&v, "fault-tolerance", true);
	assert_int_equal(v.tolerance_before, 1);
	assert_int_equal(v.tolerance_after, 0);
	assert_int_equal(v.quorum_after, 3);
	assert_non_null(strstr(v.reason, "--learner"));
	/* a learner first is the safe way */
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, 1);
	assert_int_equal(v.quorum_after, 2);
}

static void test_add_voter_to_single_member_loses_quorum(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "U", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL);
	expect_refused(&v, "quorum-loss", true);
	assert_int_equal(v.tolerance_after, -1);
	expect_allowed((v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL), &v));
}

static void test_add_voter_to_even_cluster_keeps_tolerance(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUUU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_before, 1);
	assert_int_equal(v.tolerance_after, 1);
	assert_string_equal(v.warning, "");
	build(&f, "UU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, 0);
}

static void test_add_to_degraded_cluster(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUD", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL);
	expect_refused(&v, "quorum-loss", true);
	assert_non_null(strstr(v.reason, "no quorum"));
	/* a learner would not change quorum, but etcd refuses every add while a voter is down */
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_refused(&v, "member-down", true);
	assert_non_null(strstr(v.reason, "voter m2 is down"));
	/* four voters, one down: a fifth keeps quorum and tolerance, still refused by etcd */
	build(&f, "UUUD", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL), &v), "member-down",
		       true);
	build(&f, "UDD", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_refused(&v, "quorum-lost", true);
}

static void test_add_refuses_taken_names_and_urls(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, "m1", NULL);
	expect_refused(&v, "name-taken", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, "HTTP://10.0.0.2:2380/");
	expect_refused(&v, "peer-url-taken", false);
	assert_non_null(strstr(v.reason, "m2"));
}

static void test_add_waits_for_pending_members(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUUu", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_refused(&v, "pending-member", true);
	assert_non_null(strstr(v.reason, "103"));
	build(&f, "UUUL", false);
	v = check(&f, KHA_ETCDOPS_GUARD_ADD, 0, NULL, NULL);
	expect_refused(&v, "pending-member", true);
	assert_non_null(strstr(v.reason, "promote m3"));
}

static void test_no_leader_and_alarms_block_changes(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", true);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL), &v),
		       "no-leader", true);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x101, NULL, NULL), &v),
		       "no-leader", true);
	build(&f, "UUU", false);
	f.c.alarm = true;
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL), &v), "alarm",
		       true);
}

/*
 * A CORRUPT alarm: the replacement of the member it names (stopped) is the repair and is
 * allowed without --force; every other change stays refused, with the repair in the reason.
 */
static void test_corrupt_alarm_allows_only_its_repair(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUD", false);
	f.c.alarm = true;
	f.c.corrupt = 0x102; /* etcd 3.6 names m2 */
	v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", NULL);
	assert_true(v.allowed);
	assert_int_equal(v.voters_after, 2); /* the rules of a remove */
	assert_int_equal(v.tolerance_before, 0);
	assert_int_equal(v.tolerance_after, 0);
	/* every other change: refused, naming the repair */
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_refused(&v, "alarm", true);
	assert_non_null(strstr(v.reason, "kha etcd member replace m2 --name NEW"));
	assert_non_null(strstr(v.reason, "stop the etcd of m2"));
	v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x101, "m9", NULL);
	expect_refused(&v, "alarm", true);
	assert_non_null(strstr(v.reason, "on m2, not m1"));
	/* the member it names still runs: stop it first, --force or not */
	build(&f, "UUU", false);
	f.c.alarm = true;
	f.c.corrupt = 0x102;
	v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", NULL);
	expect_refused(&v, "corrupt-running", false);
	assert_non_null(strstr(v.reason, "m2 still runs: stop its etcd first"));
	/* the new member's name and peer URL: free among the others (the old one's may be reused) */
	build(&f, "UUD", false);
	f.c.alarm = true;
	f.c.corrupt = 0x102;
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m1", NULL), &v),
		       "name-taken", false);
	expect_refused(
		(v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", "http://10.0.0.0:2380"), &v),
		"peer-url-taken", false);
	assert_true(
		check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m2", "http://10.0.0.2:2380").allowed);
	/* removing it must keep quorum: with m1 down too, no */
	build(&f, "UDD", false);
	f.c.alarm = true;
	f.c.corrupt = 0x102;
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", NULL), &v),
		       "quorum-loss", true);
	/* NOSPACE as well: that one first */
	build(&f, "UUD", false);
	f.c.alarm = f.c.nospace = true;
	f.c.corrupt = 0x102;
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", NULL), &v), "alarm",
		       true);
	assert_non_null(strstr(v.reason, "kha etcd alarm disarm --alarm NOSPACE"));
	/* no CORRUPT alarm: not a repair */
	build(&f, "UUD", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", NULL), &v),
		       "not-corrupt", false);
	/* NOSPACE alone: the way out is defrag and disarm */
	build(&f, "UUU", false);
	f.c.alarm = f.c.nospace = true;
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_refused(&v, "alarm", true);
	assert_non_null(strstr(v.reason, "kha etcd defrag"));
}

/* etcd 3.4 raises CORRUPT on member 0: the repair is of the consistency check's suspect. */
static void test_unnamed_corrupt_alarm_repairs_the_suspect(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UDU", false);
	f.c.alarm = f.c.corrupt_unnamed = true;
	v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x101, "m9", NULL);
	expect_refused(&v, "corrupt-unknown", false);
	assert_non_null(strstr(v.reason, "kha etcd check consistency"));
	v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, NULL, NULL);
	expect_refused(&v, "alarm", true);
	assert_non_null(strstr(v.reason, "kha etcd check consistency"));
	f.c.suspect = 0x101;
	assert_true(check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x101, "m9", NULL).allowed);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REPAIR, 0x102, "m9", NULL), &v), "alarm",
		       true);
	assert_non_null(strstr(v.reason, "on m1, not m2"));
}

static void test_remove_follower(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x102, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, 0);
	assert_non_null(strstr(v.warning, "can lose 0 members (was 1)"));
	build(&f, "UUUUU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x104, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, 1);
	assert_int_equal(v.voters_after, 4);
}

static void test_remove_in_degraded_cluster(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUD", false);
	/* removing the dead member is the recovery: allowed */
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x102, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.voters_after, 2);
	assert_int_equal(v.up_after, 2);
	assert_int_equal(v.tolerance_after, 0);
	assert_non_null(strstr(v.warning, "2 voting members"));
	/* removing a second, live member loses quorum */
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x101, NULL, NULL);
	expect_refused(&v, "quorum-loss", true);
	assert_int_equal(v.tolerance_after, -1);
	assert_non_null(strstr(v.reason, "removing m1 loses quorum"));
	/* five members, two down: any live one would cost quorum */
	build(&f, "UUUDD", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x101, NULL, NULL), &v),
		       "quorum-loss", true);
	expect_allowed((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x104, NULL, NULL), &v));
}

static void test_remove_leader_with_lagging_or_down_follower(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", false);
	f.m[2].raft_index = 1000; /* 4000 behind the leader m0 */
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x100, NULL, NULL);
	expect_refused(&v, "leader-lagging", true);
	assert_non_null(strstr(v.reason, "lags 4000"));
	f.c.lag_threshold = 5000;
	expect_allowed((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x100, NULL, NULL), &v));
	/* a follower may be removed whatever the others' lag */
	f.c.lag_threshold = 0;
	expect_allowed((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x101, NULL, NULL), &v));
	build(&f, "UUUUD", false);
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x100, NULL, NULL);
	expect_refused(&v, "leader-lagging", true);
	assert_non_null(strstr(v.reason, "m4 is down"));
}

static void test_remove_learner_and_last_member(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUDl", false);
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x103, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, v.tolerance_before);
	build(&f, "U", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x100, NULL, NULL), &v),
		       "last-member", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x999, NULL, NULL), &v),
		       "unknown-member", false);
}

static void test_promote(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUUL", false);
	v = check(&f, KHA_ETCDOPS_GUARD_PROMOTE, 0x103, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.voters_after, 4);
	assert_int_equal(v.tolerance_after, 1);
	assert_non_null(strstr(v.warning, "4 voting members"));
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_PROMOTE, 0x101, NULL, NULL), &v),
		       "not-a-learner", false);
	build(&f, "UUUl", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_PROMOTE, 0x103, NULL, NULL), &v),
		       "learner-down", true);
	build(&f, "UUUu", false);
	v = check(&f, KHA_ETCDOPS_GUARD_PROMOTE, 0x103, NULL, NULL);
	expect_refused(&v, "learner-down", true);
	assert_non_null(strstr(v.reason, "has not started"));
}

/* Replacing a live member of three: learner, promote, remove the old one: tolerance stays 1
 * at every step (4 voters can lose 1 too). */
static void test_replace_live_member_keeps_tolerance(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", false);
	expect_allowed((v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, "m3", NULL), &v));
	assert_int_equal(v.tolerance_after, 1);
	build(&f, "UUUL", false);
	v = check(&f, KHA_ETCDOPS_GUARD_PROMOTE, 0x103, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, 1);
	build(&f, "UUUU", false);
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x102, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_after, 1);
}

/* Replacing a dead member of three: remove it first (etcd refuses adds meanwhile), then a
 * learner, then promote: tolerance never drops below what the dead member already cost. */
static void test_replace_dead_member_removes_first(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUD", false);
	expect_refused((v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, "m3", NULL), &v),
		       "member-down", true);
	v = check(&f, KHA_ETCDOPS_GUARD_REMOVE, 0x102, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.tolerance_before, 0);
	assert_int_equal(v.tolerance_after, 0);
	build(&f, "UU", false);
	expect_allowed((v = check(&f, KHA_ETCDOPS_GUARD_ADD_LEARNER, 0, "m3", NULL), &v));
	build(&f, "UUL", false);
	v = check(&f, KHA_ETCDOPS_GUARD_PROMOTE, 0x102, NULL, NULL);
	expect_allowed(&v);
	assert_int_equal(v.voters_after, 3);
	assert_int_equal(v.tolerance_after, 1);
}

static void test_bad_requests(void **state)
{
	struct fixture f;
	struct kha_etcdops_guard_request req = {.op = KHA_ETCDOPS_GUARD_ADD};
	struct kha_etcdops_guard_verdict v;

	(void)state;
	build(&f, "UUU", false);
	assert_int_equal(kha_etcdops_guard_check(&f.c, &req, &v), -EINVAL); /* no peer URL */
	req.op = (enum kha_etcdops_guard_op)42;
	assert_int_equal(kha_etcdops_guard_check(&f.c, &req, &v), -EINVAL);
	assert_int_equal(kha_etcdops_guard_check(NULL, &req, &v), -EINVAL);
}

static void test_from_report(void **state)
{
	char *peer[] = {"http://a:2380"};
	struct kha_etcd_member_report members[2] = {
		{.member = {.id = 1, .name = "a", .peer_urls = peer, .n_peer_urls = 1},
		 .reachable = true,
		 .status = {.raft_index = 77}},
		{.member = {.id = 2, .name = "b", .is_learner = true}, .alarm_corrupt = true},
	};
	struct kha_etcd_cluster_report rep = {.members = members, .n_members = 2};
	struct kha_etcdops_guard_member g[2];
	struct kha_etcdops_guard_cluster c;

	(void)state;
	rep.health.leader = 1;
	rep.health.leader_index = 0;
	kha_etcdops_guard_from_report(&rep, g, &c);
	assert_int_equal(c.n_members, 2);
	assert_int_equal(c.leader, 1);
	assert_true(c.alarm);
	assert_int_equal(c.corrupt, 2);
	assert_false(c.nospace || c.corrupt_unnamed);
	assert_int_equal(g[0].raft_index, 77);
	assert_true(g[0].reachable);
	assert_string_equal(g[0].peer_urls[0], "http://a:2380");
	assert_true(g[1].is_learner);
	assert_false(g[1].reachable);
	/* the members still name a leader that died: no leader until they elect another */
	members[0].reachable = false;
	kha_etcdops_guard_from_report(&rep, g, &c);
	assert_int_equal(c.leader, 0);
	members[0].reachable = true;
	rep.health.leader_index = -1; /* a leader outside the member list: just removed */
	kha_etcdops_guard_from_report(&rep, g, &c);
	assert_int_equal(c.leader, 0);
}

/* ---- rolling defragmentation: order and readiness ----------------------------------------- */

static void report_of(struct kha_etcd_cluster_report *rep, struct kha_etcd_member_report *m,
		      const char *desc, size_t leader)
{
	static char names[8][8];
	size_t n = strlen(desc);

	memset(rep, 0, sizeof(*rep));
	memset(m, 0, n * sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "m%zu", i);
		m[i].member.id = 0x100 + i;
		m[i].member.name = names[i];
		m[i].member.is_learner = desc[i] == 'L' || desc[i] == 'l';
		m[i].reachable = desc[i] == 'U' || desc[i] == 'L';
	}
	rep->members = m;
	rep->n_members = n;
	rep->health.leader = leader < n ? 0x100 + leader : 0;
	rep->health.quorum_ok = true;
}

static void test_defrag_order_leader_last(void **state)
{
	struct kha_etcd_member_report m[5];
	struct kha_etcd_cluster_report rep;
	size_t order[5];

	(void)state;
	report_of(&rep, m, "UUUUL", 1);
	kha_etcdops_defrag_order(&rep, order);
	assert_int_equal(order[0], 4); /* the learner first */
	assert_int_equal(order[1], 0);
	assert_int_equal(order[2], 2);
	assert_int_equal(order[3], 3);
	assert_int_equal(order[4], 1); /* the leader last */
	report_of(&rep, m, "UUU", 99);
	kha_etcdops_defrag_order(&rep, order);
	assert_int_equal(order[0], 0);
	assert_int_equal(order[2], 2);
}

static void test_defrag_needs_a_whole_cluster(void **state)
{
	struct kha_etcd_member_report m[3];
	struct kha_etcd_cluster_report rep;
	char why[256];

	(void)state;
	report_of(&rep, m, "UUU", 0);
	assert_true(kha_etcdops_defrag_cluster_ready(&rep, why, sizeof(why)));
	m[0].alarm_nospace = true; /* the reason to defragment, not a reason to refuse */
	assert_true(kha_etcdops_defrag_cluster_ready(&rep, NULL, 0));
	report_of(&rep, m, "UUD", 0);
	assert_false(kha_etcdops_defrag_cluster_ready(&rep, why, sizeof(why)));
	assert_non_null(strstr(why, "m2 does not answer"));
	report_of(&rep, m, "UUU", 99);
	assert_false(kha_etcdops_defrag_cluster_ready(&rep, why, sizeof(why)));
	assert_non_null(strstr(why, "leader"));
	report_of(&rep, m, "UUU", 0);
	rep.health.quorum_ok = false;
	assert_false(kha_etcdops_defrag_cluster_ready(&rep, why, sizeof(why)));
}

/* ---- the one wait of lib/etcdops ----------------------------------------------------------- */

struct polls {
	int calls, done_at, fail_at;
	char said[8][64];
	int n_said;
};

static int count_poll(void *userdata, char *text, size_t size)
{
	struct polls *p = userdata;

	p->calls++;
	if (p->fail_at && p->calls == p->fail_at)
		return -EPROTO;
	if (p->done_at && p->calls == p->done_at)
		return 7;
	snprintf(text, size, "not yet %d", p->calls);
	return 0;
}

static void record(void *userdata, const char *text)
{
	struct polls *p = userdata;

	if (p->n_said < 8)
		snprintf(p->said[p->n_said++], sizeof(p->said[0]), "%s", text);
}

static void test_wait_polls_until_done_fails_times_out_or_is_cancelled(void **state)
{
	uint64_t far = kha_now_us() + 60 * KHA_USEC_PER_SEC;
	volatile sig_atomic_t cancel = 0;
	struct polls p = {.done_at = 3};

	(void)state;
	/* done on the third poll: its answer, and the two "not yet" texts as progress */
	assert_int_equal(kha_etcdops_wait(far, 1000, &cancel, count_poll, &p, record, &p), 7);
	assert_int_equal(p.calls, 3);
	assert_int_equal(p.n_said, 2);
	assert_string_equal(p.said[1], "not yet 2");
	/* a failure ends the wait with it */
	p = (struct polls){.fail_at = 2};
	assert_int_equal(kha_etcdops_wait(far, 1000, NULL, count_poll, &p, NULL, NULL), -EPROTO);
	/* a deadline already passed: one poll, then -ETIMEDOUT, no sleep */
	p = (struct polls){0};
	assert_int_equal(kha_etcdops_wait(kha_now_us(), 1000, NULL, count_poll, &p, record, &p),
			 -ETIMEDOUT);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.n_said, 0);
	/* the cancel flag ends the sleep: a 30 s interval returns after one poll */
	p = (struct polls){0};
	cancel = 1;
	assert_int_equal(
		kha_etcdops_wait(far, 30 * KHA_USEC_PER_SEC, &cancel, count_poll, &p, NULL, NULL),
		-ECANCELED);
	assert_int_equal(p.calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tolerance),
		cmocka_unit_test(test_wait_polls_until_done_fails_times_out_or_is_cancelled),
		cmocka_unit_test(test_add_voter_to_odd_cluster_lowers_tolerance),
		cmocka_unit_test(test_add_voter_to_single_member_loses_quorum),
		cmocka_unit_test(test_add_voter_to_even_cluster_keeps_tolerance),
		cmocka_unit_test(test_add_to_degraded_cluster),
		cmocka_unit_test(test_add_refuses_taken_names_and_urls),
		cmocka_unit_test(test_add_waits_for_pending_members),
		cmocka_unit_test(test_no_leader_and_alarms_block_changes),
		cmocka_unit_test(test_corrupt_alarm_allows_only_its_repair),
		cmocka_unit_test(test_unnamed_corrupt_alarm_repairs_the_suspect),
		cmocka_unit_test(test_remove_follower),
		cmocka_unit_test(test_remove_in_degraded_cluster),
		cmocka_unit_test(test_remove_leader_with_lagging_or_down_follower),
		cmocka_unit_test(test_remove_learner_and_last_member),
		cmocka_unit_test(test_promote),
		cmocka_unit_test(test_replace_live_member_keeps_tolerance),
		cmocka_unit_test(test_replace_dead_member_removes_first),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_from_report),
		cmocka_unit_test(test_defrag_order_leader_last),
		cmocka_unit_test(test_defrag_needs_a_whole_cluster),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
