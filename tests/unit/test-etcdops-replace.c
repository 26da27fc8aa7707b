// SPDX-License-Identifier: MIT
/*
 * Unit tests of a member's replacement: the plan (which order, which steps, which refusals) on
 * cluster reports built member by member, and each order run against a small model of a
 * cluster through the table of calls, checking the sequence of calls and what is said.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "etcdops-internal.h"
#include "kha/banned.h"

/* ---- the plan (pure) ---------------------------------------------------------------------- */

/*
 * A report from a compact description, as test-etcdops-guard.c builds them: one char per
 * member, 'U' voter up, 'D' voter down, 'L' learner up; member i has id 0x100 + i, name "m<i>",
 * peer URL http://10.0.0.<i>:2380; the first voter up is the leader.
 */
struct report {
	struct kha_etcd_member_report m[8];
	char names[8][8], urls[8][32];
	char *url_ptr[8];
	struct kha_etcd_cluster_report rep;
};

static void report_of(struct report *r, const char *desc)
{
	size_t n = strlen(desc);

	memset(r, 0, sizeof(*r));
	r->rep.health.leader_index = -1;
	for (size_t i = 0; i < n; i++) {
		struct kha_etcd_member_report *m = &r->m[i];

		snprintf(r->names[i], sizeof(r->names[i]), "m%zu", i);
		snprintf(r->urls[i], sizeof(r->urls[i]), "http://10.0.0.%zu:2380", i);
		r->url_ptr[i] = r->urls[i];
		m->member.id = 0x100 + i;
		m->member.name = r->names[i];
		m->member.peer_urls = &r->url_ptr[i];
		m->member.n_peer_urls = 1;
		m->member.is_learner = desc[i] == 'L';
		m->reachable = desc[i] == 'U' || desc[i] == 'L';
		m->status.raft_index = m->reachable ? 5000 : 0;
		if (!r->rep.health.leader && desc[i] == 'U') {
			r->rep.health.leader = m->member.id;
			r->rep.health.leader_index = (long)i;
		}
	}
	r->rep.members = r->m;
	r->rep.n_members = n;
	r->rep.health.quorum_ok = true;
}

static const char *const new_urls[] = {"http://10.0.0.9:2380"};

static struct kha_etcdops_replace_request request(bool force)
{
	return (struct kha_etcdops_replace_request){
		.old = "m1", .name = "m9", .peer_urls = new_urls, .n_peer_urls = 1, .force = force};
}

static struct kha_etcdops_replace_plan plan_of(const struct report *r, size_t old, uint64_t suspect,
					       bool force)
{
	struct kha_etcdops_replace_request req = request(force);
	struct kha_etcdops_replace_plan p;

	assert_int_equal(kha_etcdops_replace_plan(&r->rep, old, suspect, &req, &p), 0);
	return p;
}

static void expect_steps(const struct kha_etcdops_replace_plan *p, int n, ...)
{
	va_list ap;

	assert_int_equal(p->n_steps, n);
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(p->steps[i], va_arg(ap, int));
	va_end(ap);
}

static void test_plan_learner_first_when_old_answers(void **state)
{
	struct report r;
	struct kha_etcdops_replace_plan p;

	(void)state;
	report_of(&r, "UUU");
	p = plan_of(&r, 1, 0, false);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_LEARNER_FIRST);
	assert_string_equal(kha_etcdops_replace_order_name(p.order), "learner-first");
	assert_int_equal(p.old_id, 0x101);
	assert_false(p.guarded || p.refused || p.forced || p.named);
	expect_steps(&p, 4, KHA_ETCDOPS_REPLACE_ADD, KHA_ETCDOPS_REPLACE_WAIT,
		     KHA_ETCDOPS_REPLACE_PROMOTE, KHA_ETCDOPS_REPLACE_REMOVE_OLD);
	/* a learner that answers is replaced the same way */
	report_of(&r, "UUUL");
	p = plan_of(&r, 3, 0, false);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_LEARNER_FIRST);
}

static void test_plan_remove_first_when_old_is_down(void **state)
{
	struct report r;
	struct kha_etcdops_replace_plan p;

	(void)state;
	report_of(&r, "UUD");
	p = plan_of(&r, 2, 0, false);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_REMOVE_FIRST);
	assert_string_equal(kha_etcdops_replace_order_name(p.order), "remove-first");
	assert_int_equal(p.old_id, 0x102);
	assert_false(p.guarded || p.refused);
	expect_steps(&p, 4, KHA_ETCDOPS_REPLACE_REMOVE_DOWN, KHA_ETCDOPS_REPLACE_ADD,
		     KHA_ETCDOPS_REPLACE_WAIT, KHA_ETCDOPS_REPLACE_PROMOTE);
	/* the plan does not judge quorum: the guard of each step does, when it comes */
	report_of(&r, "UDD");
	p = plan_of(&r, 2, 0, false);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_REMOVE_FIRST);
}

static void test_plan_repair_of_a_corrupt_member(void **state)
{
	struct report r;
	struct kha_etcdops_replace_plan p;

	(void)state;
	/* etcd 3.5+: the alarm names the member, stopped */
	report_of(&r, "UUD");
	r.m[2].alarm_corrupt = true;
	p = plan_of(&r, 2, 0, false);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_REPAIR);
	assert_string_equal(kha_etcdops_replace_order_name(p.order), "repair-corrupt");
	assert_true(p.guarded && p.named && p.verdict.allowed);
	assert_false(p.refused || p.forced);
	assert_int_equal(p.verdict.voters_after, 2); /* the rules of a remove */
	expect_steps(&p, 5, KHA_ETCDOPS_REPLACE_REMOVE_CORRUPT, KHA_ETCDOPS_REPLACE_DISARM,
		     KHA_ETCDOPS_REPLACE_ADD, KHA_ETCDOPS_REPLACE_WAIT,
		     KHA_ETCDOPS_REPLACE_PROMOTE);
	/* etcd 3.4: the alarm names no member; the suspect of the consistency check is OLD */
	report_of(&r, "UUD");
	r.rep.alarm_corrupt_unnamed = true;
	p = plan_of(&r, 2, 0x102, false);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_REPAIR);
	assert_false(p.named);
	assert_int_equal(p.n_steps, 5);
}

static void expect_plan_refused(const struct kha_etcdops_replace_plan *p, const char *rule)
{
	assert_true(p->guarded && p->refused);
	assert_false(p->forced || p->verdict.allowed);
	assert_string_equal(p->verdict.rule, rule);
	assert_int_equal(p->n_steps, 0);
}

static void test_plan_refusals(void **state)
{
	struct kha_etcdops_replace_request req = request(false);
	struct kha_etcdops_replace_plan p;
	struct report r;

	(void)state;
	/* the corrupt member still answers: stop it first, --force or not */
	report_of(&r, "UUU");
	r.m[2].alarm_corrupt = true;
	expect_plan_refused((p = plan_of(&r, 2, 0, false), &p), "corrupt-running");
	expect_plan_refused((p = plan_of(&r, 2, 0, true), &p), "corrupt-running");
	/* an alarm naming no member, and no suspect: run the consistency check first */
	report_of(&r, "UUD");
	r.rep.alarm_corrupt_unnamed = true;
	expect_plan_refused((p = plan_of(&r, 2, 0, false), &p), "corrupt-unknown");
	assert_non_null(strstr(p.verdict.reason, "kha etcd check consistency"));
	/* another member than the one the alarm is about: refused, forceable */
	report_of(&r, "UUD");
	r.m[2].alarm_corrupt = true;
	expect_plan_refused((p = plan_of(&r, 1, 0, false), &p), "alarm");
	assert_true(p.verdict.forceable);
	/* forced: the usual order, OLD answering, 4 steps */
	p = plan_of(&r, 1, 0, true);
	assert_true(p.guarded && p.forced);
	assert_false(p.refused);
	assert_int_equal(p.order, KHA_ETCDOPS_REPLACE_LEARNER_FIRST);
	assert_int_equal(p.n_steps, 4);
	/* a NOSPACE alarm is cured by defragmentation, not by a replacement */
	report_of(&r, "UUD");
	r.m[2].alarm_corrupt = true;
	r.rep.alarm_nospace_unnamed = true;
	expect_plan_refused((p = plan_of(&r, 2, 0, false), &p), "alarm");
	/* removing the corrupt member must keep quorum */
	report_of(&r, "UDD");
	r.m[2].alarm_corrupt = true;
	expect_plan_refused((p = plan_of(&r, 2, 0, false), &p), "quorum-loss");
	/* OLD outside the report */
	assert_int_equal(kha_etcdops_replace_plan(&r.rep, 3, 0, &req, &p), -EINVAL);
	assert_int_equal(kha_etcdops_replace_plan(NULL, 0, 0, &req, &p), -EINVAL);
}

/* ---- the steps, against a model of a cluster ----------------------------------------------- */

struct fake_member {
	uint64_t id;
	char name[16];
	bool learner, up, corrupt;
};

struct fake {
	struct fake_member m[8];
	size_t n;
	bool corrupt_unnamed;
	uint64_t next_id;
	char new_name[16];
	const char *fail; /* the call that fails with fail_r */
	int fail_r;
	bool keep_alarm; /* the disarm leaves a NOSPACE alarm */
	char calls[512];
	char said[4096];
	int progress_done;
};

/* Members as report_of describes them ('U', 'D', 'L'), and 'l' a learner down. */
static void model(struct fake *f, const char *desc)
{
	memset(f, 0, sizeof(*f));
	f->n = strlen(desc);
	f->next_id = 0x200;
	for (size_t i = 0; i < f->n; i++) {
		f->m[i].id = 0x100 + i;
		snprintf(f->m[i].name, sizeof(f->m[i].name), "m%zu", i);
		f->m[i].learner = desc[i] == 'L' || desc[i] == 'l';
		f->m[i].up = desc[i] == 'U' || desc[i] == 'L';
	}
}

static void KHA_PRINTF(2, 3) append(char *buf, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, 4096 - n, fmt, ap);
	va_end(ap);
}

/* Records the call; returns its failure when it is the one that fails. */
static int call(struct fake *f, const char *what, struct kha_diag *d)
{
	size_t n = strlen(f->calls);

	snprintf(f->calls + n, sizeof(f->calls) - n, "%s%s", n ? " " : "", what);
	if (f->fail && strcmp(f->fail, what) == 0)
		return kha_diag_set(d, -f->fail_r, "%s failed", what);
	return 0;
}

static long find_id(const struct fake *f, uint64_t id)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->m[i].id == id)
			return (long)i;
	return -1;
}

static char **urls_of(uint64_t id)
{
	char **u = calloc(1, sizeof(*u));
	char url[64];

	snprintf(url, sizeof(url), "http://10.0.%u.%u:2380", (unsigned)(id >> 8),
		 (unsigned)(id & 0xff));
	u[0] = strdup(url);
	return u;
}

static int fake_report(void *ctx, const struct kha_etcdops_change *ch, bool need_leader,
		       struct kha_etcd_cluster_report *ret, struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, need_leader ? "report" : "status", d);

	(void)ch;
	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	ret->members = calloc(f->n, sizeof(*ret->members));
	ret->n_members = f->n;
	ret->health.leader_index = -1;
	for (size_t i = 0; i < f->n; i++) {
		struct kha_etcd_member_report *m = &ret->members[i];

		m->member.id = f->m[i].id;
		m->member.name = strdup(f->m[i].name);
		m->member.peer_urls = urls_of(f->m[i].id);
		m->member.n_peer_urls = 1;
		m->member.is_learner = f->m[i].learner;
		m->reachable = f->m[i].up;
		m->status.raft_index = f->m[i].up ? 5000 : 0;
		m->alarm_corrupt = f->m[i].corrupt;
		if (!ret->health.leader && f->m[i].up && !f->m[i].learner) {
			ret->health.leader = f->m[i].id;
			ret->health.leader_index = (long)i;
		}
	}
	ret->alarm_corrupt_unnamed = f->corrupt_unnamed;
	ret->health.quorum_ok = true;
	snprintf(ret->health.summary, sizeof(ret->health.summary), "fake: %zu members", f->n);
	return 0;
}

static int fake_find(void *ctx, const struct kha_etcdops_change *ch,
		     const struct kha_etcd_cluster_report *rep, const char *name_or_id,
		     struct kha_diag *d)
{
	int r = call(ctx, "find", d);

	(void)ch;
	if (r < 0)
		return r;
	for (size_t i = 0; i < rep->n_members; i++)
		if (strcmp(rep->members[i].member.name, name_or_id) == 0)
			return (int)i;
	return kha_diag_set(d, ENOENT, "no member named or with id '%s'", name_or_id);
}

static int fake_consistency(void *ctx, const struct kha_etcdops_change *ch,
			    struct kha_etcdops_consistency_report *ret, struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, "consistency", d);

	(void)ch;
	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	ret->members = calloc(f->n, sizeof(*ret->members));
	ret->n_members = f->n;
	for (size_t i = 0; i < f->n; i++) {
		ret->members[i].id = f->m[i].id;
		snprintf(ret->members[i].name, sizeof(ret->members[i].name), "%s", f->m[i].name);
		ret->members[i].state = f->m[i].up ? KHA_ETCDOPS_CONSISTENCY_MEMBER_OK
						   : KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE;
		ret->agreeing += f->m[i].up;
	}
	ret->verdict = KHA_ETCDOPS_CONSISTENCY_INCOMPLETE;
	snprintf(ret->summary, sizeof(ret->summary), "incomplete: one member not compared");
	return 0;
}

static int fake_remove(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
		       struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, "remove", d);
	long i = find_id(f, id);

	(void)ch;
	if (r < 0)
		return r;
	assert_true(i >= 0);
	memmove(&f->m[i], &f->m[i + 1], (f->n - (size_t)i - 1) * sizeof(f->m[0]));
	f->n--;
	return 0;
}

static int fake_add(void *ctx, const struct kha_etcdops_change *ch, const char *const *peer_urls,
		    size_t n_peer_urls, const char *name, struct kha_etcd_member *ret_member,
		    struct kha_etcdops_member_start *ret_start, struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, "add", d);

	(void)ch;
	if (r < 0)
		return r;
	assert_int_equal(n_peer_urls, 1);
	assert_string_equal(peer_urls[0], new_urls[0]);
	/* added, not started: a learner with no name yet */
	f->m[f->n++] = (struct fake_member){.id = f->next_id, .learner = true};
	snprintf(f->new_name, sizeof(f->new_name), "%s", name);
	*ret_member = (struct kha_etcd_member){.id = f->next_id,
					       .name = strdup(""),
					       .peer_urls = urls_of(f->next_id),
					       .n_peer_urls = 1,
					       .is_learner = true};
	*ret_start = (struct kha_etcdops_member_start){
		.name = strdup(name),
		.initial_cluster = strdup("m0=http://10.0.0.0:2380"),
		.initial_advertise_peer_urls = strdup(peer_urls[0]),
	};
	f->next_id++;
	return 0;
}

static int fake_name(void *ctx, const struct kha_etcdops_change *ch, uint64_t id, const char *name,
		     struct kha_diag *d)
{
	(void)ch;
	(void)id;
	return call(ctx, name ? "name" : "forget", d);
}

static int fake_disarm(void *ctx, const struct kha_etcdops_change *ch,
		       const struct kha_etcdops_alarm_filter *flt,
		       struct kha_etcd_alarm_list *ret_disarmed,
		       struct kha_etcd_alarm_list *ret_remaining, struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, "disarm", d);

	(void)ch;
	if (r < 0)
		return r;
	assert_int_equal(flt->type, KHA_ETCD_ALARM_CORRUPT);
	assert_true(flt->by_member);
	ret_disarmed->alarms = calloc(1, sizeof(*ret_disarmed->alarms));
	ret_disarmed->alarms[0] = (struct kha_etcd_alarm){flt->member, KHA_ETCD_ALARM_CORRUPT};
	ret_disarmed->n_alarms = 1;
	f->corrupt_unnamed = false;
	for (size_t i = 0; i < f->n; i++)
		f->m[i].corrupt = false;
	if (f->keep_alarm) {
		ret_remaining->alarms = calloc(1, sizeof(*ret_remaining->alarms));
		ret_remaining->alarms[0] = (struct kha_etcd_alarm){0x100, KHA_ETCD_ALARM_NOSPACE};
		ret_remaining->n_alarms = 1;
	}
	return 0;
}

static int fake_wait_started(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
			     uint64_t timeout_us, struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, "wait", d);
	long i = find_id(f, id);

	(void)ch;
	assert_int_equal(timeout_us, 600 * KHA_USEC_PER_SEC);
	if (r < 0)
		return r;
	assert_true(i >= 0);
	f->m[i].up = true;
	snprintf(f->m[i].name, sizeof(f->m[i].name), "%s", f->new_name);
	return 0;
}

static int fake_promote(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
			uint64_t timeout_us, struct kha_diag *d)
{
	struct fake *f = ctx;
	int r = call(f, "promote", d);
	long i = find_id(f, id);

	(void)ch;
	assert_int_equal(timeout_us, 120 * KHA_USEC_PER_SEC);
	if (r < 0)
		return r;
	assert_true(i >= 0 && f->m[i].learner && f->m[i].up);
	f->m[i].learner = false;
	return 0;
}

static const struct kha_etcdops__replace_ops fake_ops = {
	.report = fake_report,
	.find = fake_find,
	.consistency = fake_consistency,
	.remove = fake_remove,
	.add = fake_add,
	.name = fake_name,
	.disarm = fake_disarm,
	.wait_started = fake_wait_started,
	.promote = fake_promote,
};

static void on_step(void *userdata, int step, int steps, const char *text,
		    const struct kha_etcdops_replace_result *r)
{
	struct fake *f = userdata;

	if (step)
		append(f->said, "%d/%d %s\n", step, steps, text);
	else
		append(f->said, "%s\n", text);
	/* the new member's flags are there to print when its step is said */
	if (step && r->stage == KHA_ETCDOPS_REPLACE_ADD)
		assert_string_equal(r->start.name, "m9");
}

static void on_guard(void *userdata, const struct kha_etcdops_guard_verdict *v)
{
	append(((struct fake *)userdata)->said, "guard %s\n", v->allowed ? "allowed" : v->rule);
}

static void on_progress(void *userdata, const char *text)
{
	if (!text)
		((struct fake *)userdata)->progress_done++;
}

static void on_note(void *userdata, const char *text)
{
	append(((struct fake *)userdata)->said, "note %s\n", text);
}

/* Replaces old by m9 in the model; returns kha_etcdops_replace's answer, *ret filled. */
static int run(struct fake *f, const char *old, bool force, struct kha_etcdops_replace_result *ret)
{
	struct kha_etcdops_change ch = {.progress = on_progress, .note = on_note, .userdata = f};
	struct kha_etcdops_replace_request req = request(force);
	struct kha_diag d = {};

	req.ch = &ch;
	req.old = old;
	req.start_timeout_us = 600 * KHA_USEC_PER_SEC;
	req.promote_timeout_us = 120 * KHA_USEC_PER_SEC;
	req.step = on_step;
	req.guard = on_guard;
	return kha_etcdops__replace_run(&req, &fake_ops, f, ret, &d);
}

static bool said(const struct fake *f, const char *text)
{
	if (strstr(f->said, text))
		return true;
	print_error("not said: %s\nsaid:\n%s", text, f->said);
	return false;
}

static void test_run_learner_first(void **state)
{
	struct kha_etcdops_replace_result r;
	struct fake f;

	(void)state;
	model(&f, "UUU");
	assert_int_equal(run(&f, "m1", false, &r), 0);
	/* NEW added, started, promoted, and only then OLD removed, each change guarded first */
	assert_string_equal(f.calls,
			    "report find report add name wait promote report remove forget report");
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_DONE);
	assert_int_equal(r.plan.order, KHA_ETCDOPS_REPLACE_LEARNER_FIRST);
	assert_string_equal(r.old, "m1");
	assert_int_equal(r.plan.old_id, 0x101);
	assert_int_equal(r.added.id, 0x200);
	assert_string_equal(r.start.name, "m9");
	assert_int_equal(r.disarmed.n_alarms, 0);
	assert_true(r.verdict.allowed); /* the last guard: OLD's removal, 4 voters -> 3 */
	assert_int_equal(r.verdict.voters_after, 3);
	assert_string_equal(r.summary, "fake: 3 members");
	assert_true(said(&f, "guard allowed\n1/4 m9 added as a learner (id 200), replacing m1.\n"
			     "2/4 waiting for m9 to start and catch up...\n"
			     "3/4 promoting m9...\n4/4 removing m1...\nguard allowed\n"));
	assert_int_equal(f.progress_done, 2); /* after each wait */
	kha_etcdops_replace_result_release(&r);
}

static void test_run_remove_first(void **state)
{
	struct kha_etcdops_replace_result r;
	struct fake f;

	(void)state;
	model(&f, "UUD");
	assert_int_equal(run(&f, "m2", false, &r), 0);
	assert_string_equal(f.calls,
			    "report find report remove forget report add name wait promote report");
	assert_int_equal(r.plan.order, KHA_ETCDOPS_REPLACE_REMOVE_FIRST);
	assert_true(said(&f, "1/4 m2 is down: removing it first (etcd adds no member while a "
			     "voter is unreachable)...\nguard allowed\nguard allowed\n"
			     "2/4 m9 added as a learner (id 200), replacing m2.\n"));
	assert_true(said(&f, "4/4 promoting m9...\n"));
	assert_int_equal(f.n, 3);
	assert_false(f.m[2].learner);
	kha_etcdops_replace_result_release(&r);
}

static void test_run_repair(void **state)
{
	struct kha_etcdops_replace_result r;
	struct fake f;

	(void)state;
	/* etcd 3.5+: the alarm names m2, stopped; the repair's guard is its removal's */
	model(&f, "UUD");
	f.m[2].corrupt = true;
	assert_int_equal(run(&f, "m2", false, &r), 0);
	assert_string_equal(f.calls, "report find remove forget disarm status report add name "
				     "wait promote report");
	assert_int_equal(r.plan.order, KHA_ETCDOPS_REPLACE_REPAIR);
	assert_int_equal(r.disarmed.n_alarms, 1);
	assert_int_equal(r.disarmed.alarms[0].member_id, 0x102);
	assert_true(said(&f, "guard allowed\n"
			     "1/5 m2 carries the CORRUPT alarm and is stopped: removing it...\n"
			     "2/5 disarming the CORRUPT alarm...\n  disarmed; no alarm remains.\n"
			     "guard allowed\n3/5 m9 added as a learner (id 200), replacing m2.\n"));
	assert_true(said(&f, "5/5 promoting m9...\n"));
	kha_etcdops_replace_result_release(&r);

	/* etcd 3.4: the alarm names no member: the consistency check names the suspect */
	model(&f, "UUD");
	f.corrupt_unnamed = true;
	assert_int_equal(run(&f, "m2", false, &r), 0);
	assert_string_equal(f.calls, "report find consistency remove forget disarm status report "
				     "add name wait promote report");
	assert_int_equal(r.disarmed.alarms[0].member_id, 0); /* the alarm on no member */
	assert_true(said(&f, "The CORRUPT alarm names no member (etcd 3.4): comparing the "
			     "members' data (kha etcd check consistency)...\n"
			     "  incomplete: one member not compared\n"
			     "  so the alarm is about m2 (the one member that differs or, stopped, "
			     "could not be compared)\nguard allowed\n1/5 m2 carries"));
	kha_etcdops_replace_result_release(&r);
}

static void test_run_refusals_change_nothing(void **state)
{
	struct kha_etcdops_replace_result r;
	struct fake f;

	(void)state;
	/* the plan refuses: the corrupt member still runs */
	model(&f, "UUU");
	f.m[2].corrupt = true;
	assert_int_equal(run(&f, "m2", true, &r), -EPERM);
	assert_true(r.refused);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_PLAN);
	assert_string_equal(f.calls, "report find");
	assert_string_equal(f.said, "guard corrupt-running\n");
	kha_etcdops_replace_result_release(&r);

	/* the first step's guard refuses: a learner has not started yet */
	model(&f, "UUUl");
	assert_int_equal(run(&f, "m1", false, &r), -EPERM);
	assert_true(r.refused);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_ADD);
	assert_string_equal(r.verdict.rule, "pending-member");
	assert_string_equal(f.calls, "report find report");
	assert_int_equal(r.added.id, 0);
	kha_etcdops_replace_result_release(&r);

	/* another member than the corrupt one, forced: said, then the usual order */
	model(&f, "UUD");
	f.m[2].corrupt = true;
	assert_int_equal(run(&f, "m1", false, &r), -EPERM);
	assert_string_equal(f.calls, "report find");
	kha_etcdops_replace_result_release(&r);
	model(&f, "UUD");
	f.m[2].corrupt = true;
	assert_int_equal(run(&f, "m1", true, &r), 0);
	assert_true(r.plan.forced);
	assert_false(r.refused);
	assert_int_equal(r.plan.order, KHA_ETCDOPS_REPLACE_LEARNER_FIRST);
	assert_string_equal(f.calls,
			    "report find report add name wait promote report remove forget report");
	assert_true(said(&f, "guard alarm\nguard alarm\n1/4 m9 added"));
	kha_etcdops_replace_result_release(&r);

	/* OLD is no member */
	model(&f, "UUU");
	assert_int_equal(run(&f, "nobody", false, &r), -ENOENT);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_PLAN);
	assert_false(r.refused);
	kha_etcdops_replace_result_release(&r);
}

static void test_run_stops_at_the_step_that_failed(void **state)
{
	struct kha_etcdops_replace_result r;
	struct fake f;

	(void)state;
	/* NEW never started: stopped at the wait, OLD (down) gone, NEW a learner */
	model(&f, "UUD");
	f.fail = "wait";
	f.fail_r = -ETIMEDOUT;
	assert_int_equal(run(&f, "m2", false, &r), -ETIMEDOUT);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_WAIT);
	assert_int_equal(r.added.id, 0x200);
	assert_string_equal(f.calls, "report find report remove forget report add name wait");
	assert_int_equal(f.progress_done, 1);
	kha_etcdops_replace_result_release(&r);

	/* the promotion failed: OLD (alive) stays */
	model(&f, "UUU");
	f.fail = "promote";
	f.fail_r = -ECANCELED;
	assert_int_equal(run(&f, "m1", false, &r), -ECANCELED);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_PROMOTE);
	assert_string_equal(f.calls, "report find report add name wait promote");
	assert_int_equal(find_id(&f, 0x101), 1);
	kha_etcdops_replace_result_release(&r);

	/* the name could not be recorded: a note, the replacement goes on */
	model(&f, "UUU");
	f.fail = "name";
	f.fail_r = -EIO;
	assert_int_equal(run(&f, "m1", false, &r), 0);
	assert_true(said(&f, "note note: could not record the name m9 under "
			     "kha/member-names/ (name failed): until it starts, name it by its "
			     "id 200\n"));
	kha_etcdops_replace_result_release(&r);

	/* alarms remain after the disarm: stopped there, with what remains */
	model(&f, "UUD");
	f.m[2].corrupt = true;
	f.keep_alarm = true;
	assert_int_equal(run(&f, "m2", false, &r), -EBUSY);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_DISARM);
	assert_int_equal(r.remaining.n_alarms, 1);
	assert_int_equal(r.remaining.alarms[0].type, KHA_ETCD_ALARM_NOSPACE);
	assert_string_equal(f.calls, "report find remove forget disarm");
	kha_etcdops_replace_result_release(&r);

	/* the cluster cannot be read at all */
	model(&f, "UUU");
	f.fail = "report";
	f.fail_r = -ECONNREFUSED;
	assert_int_equal(run(&f, "m1", false, &r), -ECONNREFUSED);
	assert_int_equal(r.stage, KHA_ETCDOPS_REPLACE_PLAN);
	kha_etcdops_replace_result_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_learner_first_when_old_answers),
		cmocka_unit_test(test_plan_remove_first_when_old_is_down),
		cmocka_unit_test(test_plan_repair_of_a_corrupt_member),
		cmocka_unit_test(test_plan_refusals),
		cmocka_unit_test(test_run_learner_first),
		cmocka_unit_test(test_run_remove_first),
		cmocka_unit_test(test_run_repair),
		cmocka_unit_test(test_run_refusals_change_nothing),
		cmocka_unit_test(test_run_stops_at_the_step_that_failed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
