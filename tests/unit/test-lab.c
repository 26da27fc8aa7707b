// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/lab's drill analysis (kha_lab__drill_analyze): made-up drills with their probes,
 * fault steps, leadership terms and snapshots go in, per-fault results and the invariants come
 * out. The integration test runs the real drill, where the invariants hold; here the checkers
 * must also catch what never happens there: two takers in one term, a lost write, no handover.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "kha/lab.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define S(x)   ((uint64_t)(x)*KHA_USEC_PER_SEC)
#define MS(x)  ((uint64_t)(x)*KHA_USEC_PER_MSEC)
#define RATE   10
#define END_US S(58)
/* the drill's t0 on the wall clock, for the snapshots' modification times */
#define WALL0 1700000000000000LL

static const char *const masters[] = {"m1", "m2", "m3"};

struct fixture {
	struct kha_lab lab;
	struct kha_lab_master m[3];
	struct kha_lab__drill_obs obs;
	struct kha_lab_drill_report *r;
};

static void add_step(struct kha_drill_report *d, const char *name, enum kha_drill_step_kind kind,
		     uint64_t at, const char *output)
{
	struct kha_drill_step_result *st;

	d->steps = realloc(d->steps, (d->n_steps + 1) * sizeof(*d->steps));
	assert_non_null(d->steps);
	st = &d->steps[d->n_steps++];
	*st = (struct kha_drill_step_result){
		.name = strdup(name),
		.run = strdup("true"),
		.kind = kind,
		.state = KHA_DRILL_STEP_SUCCEEDED,
		.at_us = at,
		.started_us = at,
		.ended_us = at + MS(50),
		.output = strdup(output),
	};
}

/*
 * The standard drill: writes at RATE/s for 58 s, all ok; kill-follower m3 at 4 s (restart
 * 10 s), kill-leader m1 at 22 s (restart 28 s), freeze-follower m3 at 40 s (thaw 46 s).
 * m1 leads until the kill; m2 from 25 s. A snapshot every 5 s by the leader of the time.
 */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct kha_drill_report *d;
	size_t n = END_US / (KHA_USEC_PER_SEC / RATE);

	assert_non_null(f);
	for (size_t i = 0; i < 3; i++)
		f->m[i].name = (char *)masters[i];
	f->lab.masters = f->m;
	f->lab.n_masters = 3;
	f->lab.election = (char *)KHA_LAB_ELECTION;
	f->r = calloc(1, sizeof(*f->r));
	d = f->r->drill = calloc(1, sizeof(*f->r->drill));
	assert_non_null(f->r);
	assert_non_null(d);
	f->r->election = true;
	f->r->min_availability = 90;
	f->r->healthy_after = true;
	d->target = strdup("https://127.0.0.1:1");
	d->rate = RATE;
	d->started_wall_us = WALL0;
	d->elapsed_us = END_US;
	d->probes = calloc(n, sizeof(*d->probes));
	d->n_probes = n;
	assert_non_null(d->probes);
	for (size_t i = 0; i < n; i++)
		d->probes[i] = (struct kha_drill_probe){.t_us = kha_drill_slot_due_us(RATE, i),
							.latency_us = 5000,
							.status = 200,
							.result = KHA_DRILL_PROBE_OK};
	d->writes.enabled = true;
	d->writes.verified = true;
	d->writes.acked = n;
	add_step(d, "kill-follower", KHA_DRILL_STEP_FAULT, S(4), "m3 stopped (...)\n");
	add_step(d, "restart-follower", KHA_DRILL_STEP_RECOVER, S(10), "m3 started (...)\n");
	add_step(d, "kill-leader", KHA_DRILL_STEP_FAULT, S(22), "m1 stopped (...)\n");
	add_step(d, "restart-leader", KHA_DRILL_STEP_RECOVER, S(28), "m1 started (...)\n");
	add_step(d, "freeze-follower", KHA_DRILL_STEP_FAULT, S(40), "m3 frozen (...)\n");
	add_step(d, "thaw-follower", KHA_DRILL_STEP_RECOVER, S(46), "m3 thawed (...)\n");

	f->r->terms = calloc(2, sizeof(*f->r->terms));
	assert_non_null(f->r->terms);
	f->r->terms[0] = (struct kha_lab_term){.start_us = 0, .leader = "m1"};
	f->r->terms[1] = (struct kha_lab_term){.start_us = S(25), .leader = "m2"};
	f->r->n_terms = 2;
	f->r->snapshots = calloc(16, sizeof(*f->r->snapshots));
	assert_non_null(f->r->snapshots);
	for (uint64_t t = 1; t < 58; t += 5) {
		struct kha_lab_snapshot *s = &f->r->snapshots[f->r->n_snapshots++];

		/* m1 until it died at 22 s, m2 from 26 s on */
		if (t > 22 && t < 26)
			t = 26;
		s->t_us = S(t);
		s->wall_us = WALL0 + (int64_t)S(t);
		snprintf(s->taker, sizeof(s->taker), "%s", t < 22 ? "m1" : "m2");
		snprintf(s->file, sizeof(s->file), "etcd-%02u.db", (unsigned)t);
	}
	for (int k = 0; k < KHA_LAB_FAULTS; k++) {
		f->obs.fault_leader_known[k] = true;
		snprintf(f->obs.fault_leader[k], KHA_LAB_NAME_MAX, "%s", k == 2 ? "m2" : "m1");
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	kha_lab_drill_report_free(f->r);
	free(f);
	return 0;
}

/* Recomputes the drill's stats (availability) and runs the analysis. */
static void analyze(struct fixture *f)
{
	struct kha_drill_report *d = f->r->drill;
	struct kha_drill_marks m = {.fault_us = S(4), .recover_us = S(46), .end_us = END_US};

	assert_int_equal(kha_drill_analyze(d->probes, d->n_probes, &m, &d->stats), 0);
	kha_lab__drill_analyze(&f->lab, &f->obs, f->r);
}

static void fail_probes(struct kha_drill_report *d, uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < d->n_probes; i++)
		if (d->probes[i].t_us >= from && d->probes[i].t_us < to) {
			d->probes[i].result = KHA_DRILL_PROBE_TIMEOUT;
			d->probes[i].status = 0;
		}
}

static void test_drill_clean_run_passes(void **state)
{
	struct fixture *f = *state;
	const struct kha_lab_fault_result *kf = &f->r->faults[KHA_LAB_FAULT_KILL_FOLLOWER];
	const struct kha_lab_fault_result *kl = &f->r->faults[KHA_LAB_FAULT_KILL_LEADER];
	const struct kha_lab_fault_result *fz = &f->r->faults[KHA_LAB_FAULT_FREEZE];
	char problems[512];

	analyze(f);
	/* windows: from each fault to the next one, the last to the end */
	assert_true(kf->ran && kf->step_ok);
	assert_int_equal(kf->fault_us, S(4));
	assert_int_equal(kf->recover_us, S(10));
	assert_int_equal(kf->end_us, S(22));
	assert_int_equal(kf->sent, 180);
	assert_int_equal(fz->end_us, END_US);
	assert_string_equal(kf->victim, "m3");
	assert_string_equal(kl->victim, "m1");
	/* the follower's death needs no handover; the leader's does: m2 seen at 25 s */
	assert_false(kf->victim_led);
	assert_false(kf->handover_needed);
	assert_int_equal(kf->handover_us, KHA_DRILL_NONE);
	assert_true(kl->victim_led && kl->handover_needed);
	assert_int_equal(kl->handover_us, S(3));
	assert_string_equal(kl->leader_after, "m2");
	/* backups went on, by another master after the leader died */
	assert_true(kf->backups_ok);
	assert_string_equal(kf->backup_taker, "m1");
	assert_int_equal(kf->backup_after_us, S(2));
	assert_true(kl->backups_ok);
	assert_string_equal(kl->backup_taker, "m2");
	assert_int_equal(kl->backup_after_us, S(4));
	assert_true(fz->backups_ok);
	assert_int_equal(f->r->conflicts, 0);
	assert_int_equal(f->r->max_takers_per_term, 1);
	assert_int_equal(kha_lab_drill_exit_code(f->r), 0);
	kha_lab_drill_problems(f->r, problems, sizeof(problems));
	assert_string_equal(problems, "");
}

static void test_drill_outage_counts_in_its_fault(void **state)
{
	struct fixture *f = *state;
	const struct kha_lab_fault_result *kl = &f->r->faults[KHA_LAB_FAULT_KILL_LEADER];

	fail_probes(f->r->drill, MS(22100), MS(23400));
	analyze(f);
	assert_int_equal(kl->failed, 13);
	assert_int_equal(kl->sent, 180);
	assert_int_equal(kl->longest_outage_us, MS(1300));
	assert_true(kl->availability > 92.7 && kl->availability < 92.8);
	assert_int_equal(f->r->faults[KHA_LAB_FAULT_KILL_FOLLOWER].longest_outage_us, 0);
	assert_int_equal(f->r->faults[KHA_LAB_FAULT_FREEZE].failed, 0);
	/* overall 97.8%: above the floor */
	assert_int_equal(kha_lab_drill_exit_code(f->r), 0);
	f->r->min_availability = 99;
	assert_int_equal(kha_lab_drill_exit_code(f->r), 1);
}

static void test_drill_lost_write_is_found_in_its_fault(void **state)
{
	struct fixture *f = *state;
	struct kha_drill_report *d = f->r->drill;
	char problems[512];

	d->writes.lost = 1;
	d->writes.lost_slots = calloc(1, sizeof(*d->writes.lost_slots));
	assert_non_null(d->writes.lost_slots);
	d->writes.lost_slots[0] = 455; /* 45.5 s: the freeze */
	d->writes.n_lost_slots = 1;
	analyze(f);
	assert_int_equal(f->r->faults[KHA_LAB_FAULT_FREEZE].lost, 1);
	assert_int_equal(f->r->faults[KHA_LAB_FAULT_KILL_LEADER].lost, 0);
	assert_int_equal(kha_lab_drill_exit_code(f->r), 2);
	kha_lab_drill_problems(f->r, problems, sizeof(problems));
	assert_non_null(strstr(problems, "1 acknowledged writes lost"));
}

/* The dying leader's command takes a while: the leader itself snapshots once more after the
 * fault began (seen under load: 2.3 s from the fault to the kill). Backups went on if another
 * master took one afterwards; the victim's own does not count, for or against. */
static void test_drill_dying_leaders_last_snapshot_does_not_count(void **state)
{
	struct fixture *f = *state;
	const struct kha_lab_fault_result *kl = &f->r->faults[KHA_LAB_FAULT_KILL_LEADER];
	struct kha_lab_snapshot *s = &f->r->snapshots[f->r->n_snapshots++];

	s->t_us = MS(22900); /* after the fault at 22 s, before m2's first at 26 s */
	s->wall_us = WALL0 + (int64_t)s->t_us;
	snprintf(s->taker, sizeof(s->taker), "m1");
	snprintf(s->file, sizeof(s->file), "etcd-22b.db");
	analyze(f);
	assert_true(kl->backups_ok);
	assert_string_equal(kl->backup_taker, "m2");
	assert_int_equal(kl->backup_after_us, S(4));
	assert_int_equal(kha_lab_drill_exit_code(f->r), 0);
}

/* A leader killed for real whose backups nobody took over: not ok. */
static void test_drill_no_snapshot_by_another_master_fails(void **state)
{
	struct fixture *f = *state;
	const struct kha_lab_fault_result *kl = &f->r->faults[KHA_LAB_FAULT_KILL_LEADER];
	char problems[512];

	for (size_t i = 0; i < f->r->n_snapshots; i++) /* m2 never takes one */
		if (strcmp(f->r->snapshots[i].taker, "m2") == 0)
			snprintf(f->r->snapshots[i].taker, sizeof(f->r->snapshots[i].taker), "m1");
	analyze(f);
	assert_false(kl->backups_ok);
	assert_int_equal(kl->backup_after_us, KHA_DRILL_NONE);
	assert_int_not_equal(kha_lab_drill_exit_code(f->r), 0);
	kha_lab_drill_problems(f->r, problems, sizeof(problems));
	assert_non_null(strstr(problems, "kill-leader: backups did not go on"));
}

static void test_drill_two_takers_in_one_term_is_caught(void **state)
{
	struct fixture *f = *state;
	struct kha_lab_snapshot *s = &f->r->snapshots[f->r->n_snapshots++];
	char problems[512];

	/* m3 takes one at 35 s while m2 leads (since 25 s): interleaved with m2's */
	s->t_us = S(35);
	s->wall_us = WALL0 + (int64_t)S(35);
	snprintf(s->taker, sizeof(s->taker), "m3");
	snprintf(s->file, sizeof(s->file), "etcd-35.db");
	analyze(f);
	assert_int_equal(f->r->conflicts, 1);
	assert_int_equal(f->r->max_takers_per_term, 2);
	assert_int_equal(kha_lab_drill_exit_code(f->r), 2);
	kha_lab_drill_problems(f->r, problems, sizeof(problems));
	assert_non_null(strstr(problems, "did not lead"));
	/* sorted by time: the odd one sits between m2's */
	for (size_t i = 1; i < f->r->n_snapshots; i++)
		assert_true(f->r->snapshots[i - 1].t_us <= f->r->snapshots[i].t_us);
}

static void test_drill_snapshot_at_a_term_change_is_not_a_conflict(void **state)
{
	struct fixture *f = *state;
	struct kha_lab_snapshot *s = &f->r->snapshots[f->r->n_snapshots++];

	/* m2 saved 400 ms before the poll saw it lead: within the slack */
	s->t_us = MS(24600);
	s->wall_us = WALL0 + (int64_t)MS(24600);
	snprintf(s->taker, sizeof(s->taker), "m2");
	analyze(f);
	assert_int_equal(f->r->conflicts, 0);
	assert_int_equal(f->r->max_takers_per_term, 1);
}

static void test_drill_no_handover_or_dead_leader_backup_fails(void **state)
{
	struct fixture *f = *state;
	const struct kha_lab_fault_result *kl = &f->r->faults[KHA_LAB_FAULT_KILL_LEADER];
	char problems[512];

	/* nobody took over, and the only snapshot after the kill is the dead leader's */
	f->r->n_terms = 1;
	f->r->n_snapshots = 0;
	{
		struct kha_lab_snapshot *s = &f->r->snapshots[f->r->n_snapshots++];

		s->t_us = S(23);
		s->wall_us = WALL0 + (int64_t)S(23);
		snprintf(s->taker, sizeof(s->taker), "m1");
	}
	analyze(f);
	assert_int_equal(kl->handover_us, KHA_DRILL_NONE);
	assert_false(kl->backups_ok);
	assert_int_equal(kha_lab_drill_exit_code(f->r), 1);
	kha_lab_drill_problems(f->r, problems, sizeof(problems));
	assert_non_null(strstr(problems, "kill-leader: no new leader was seen"));
	assert_non_null(strstr(problems, "kill-leader: backups did not go on on another master"));
}

static void test_drill_without_snapshots_or_terms(void **state)
{
	struct fixture *f = *state;
	char *json;

	free(f->r->snapshots);
	f->r->snapshots = NULL;
	f->r->n_snapshots = 0;
	free(f->r->terms);
	f->r->terms = NULL;
	f->r->n_terms = 0;
	analyze(f);
	for (int k = 0; k < KHA_LAB_FAULTS; k++)
		assert_false(f->r->faults[k].backups_ok);
	assert_int_equal(f->r->conflicts, 0);
	assert_int_equal(kha_lab_drill_exit_code(f->r), 1);
	json = kha_lab_drill_json(f->r);
	assert_non_null(json);
	free(json);
}

static void test_drill_failed_step_and_interrupt_win(void **state)
{
	struct fixture *f = *state;

	f->r->drill->steps[2].state = KHA_DRILL_STEP_FAILED;
	f->r->drill->step_failed = true;
	analyze(f);
	assert_false(f->r->faults[KHA_LAB_FAULT_KILL_LEADER].step_ok);
	assert_true(f->r->faults[KHA_LAB_FAULT_KILL_FOLLOWER].step_ok);
	assert_int_equal(kha_lab_drill_exit_code(f->r), KHA_DRILL_EXIT_STEP_FAILED);
	f->r->drill->interrupted = true;
	f->r->drill->interrupt_signal = 2;
	assert_int_equal(kha_lab_drill_exit_code(f->r), 130);
}

/* The drill's JSON report, parsed (the caller decrefs it). */
static json_t *report_json(const struct kha_lab_drill_report *r)
{
	char *text = kha_lab_drill_json(r);
	json_t *root;

	assert_non_null(text);
	root = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(root);
	return root;
}

/* The drill's summary as printed (the caller frees it). */
static char *summary(const struct kha_lab_drill_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	assert_int_equal(kha_lab_drill_print(out, r), 0);
	fclose(out);
	return buf;
}

static void test_drill_json_and_summary(void **state)
{
	struct fixture *f = *state;
	json_t *root, *faults;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	analyze(f);
	root = report_json(f->r);
	assert_string_equal(json_string_value(json_object_get(root, "schema")), "kha.lab.drill/v1");
	assert_string_equal(json_string_value(json_object_get(root, "verdict")), "passed");
	faults = json_object_get(root, "faults");
	assert_int_equal(json_array_size(faults), 3);
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(faults, 1), "leader_after")),
		"m2");
	assert_true(json_real_value(json_object_get(json_array_get(faults, 1), "handover_ms")) ==
		    3000.0);
	assert_int_equal(
		json_array_size(json_object_get(json_object_get(root, "backups"), "snapshots")),
		f->r->n_snapshots);
	assert_true(json_is_object(json_object_get(root, "drill")));
	json_decref(root);

	buf = summary(f->r);
	assert_non_null(strstr(buf, "m1 led and died: m2 took over after 3.00s"));
	assert_non_null(strstr(buf, "verdict: PASSED"));
	free(buf);

	buf = NULL;
	out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(kha_lab_drill_svg(out, f->r), 0);
	fclose(out);
	assert_non_null(strstr(buf, "m2 leads"));
	assert_non_null(strstr(buf, "kill-leader"));
	free(buf);
}

/* The summary explains its figures next to them: why an outage, a handover's length, unknown
 * writes; each line names the section of docs/lab.md that says more. */
static void test_drill_summary_explains_its_figures(void **state)
{
	struct fixture *f = *state;
	json_t *root, *faults;
	char *buf;

	/* m1 led the election and etcd's Raft when it was killed: 1.3 s of failed writes; m1's
	 * member did not lead Raft when m3 was killed; nothing known at the freeze */
	for (int k = 0; k < 2; k++) {
		f->obs.fault_raft_known[k] = true;
		snprintf(f->obs.fault_raft_leader[k], KHA_LAB_NAME_MAX, "m1");
	}
	fail_probes(f->r->drill, MS(22100), MS(23400));
	f->r->drill->writes.unknown = 13;
	f->r->drill->writes.unknown_applied = 5;
	analyze(f);
	assert_true(f->r->faults[KHA_LAB_FAULT_KILL_LEADER].victim_led_raft);
	assert_false(f->r->faults[KHA_LAB_FAULT_KILL_FOLLOWER].victim_led_raft);
	assert_false(f->r->faults[KHA_LAB_FAULT_FREEZE].raft_known);

	buf = summary(f->r);
	assert_non_null(
		strstr(buf, "m1 at 22.00s, restarted at 28.00s (its etcd member led Raft)"));
	assert_non_null(strstr(buf, "longest outage 1.30s\n  why         the victim led etcd's "
				    "Raft: writes wait until another member is elected (election "
				    "timeout 1000ms, then a vote) (docs/lab.md#outage)\n"));
	assert_non_null(strstr(buf, "m2 took over after 3.00s\n  why         its lease (TTL 3s) "
				    "outlived it"));
	assert_non_null(strstr(buf, "13 unknown (5 of them applied); read back from the members\n"
				    "  why         unknown = sent, but no reply came"));
	assert_non_null(strstr(buf, "(docs/lab.md#unknown-writes)"));
	/* no outage in the other faults: nothing to explain there */
	assert_ptr_equal(strstr(buf, "#outage"), strstr(strstr(buf, "fault 2"), "#outage"));
	assert_null(strstr(strstr(buf, "fault 3"), "#outage"));
	free(buf);

	root = report_json(f->r);
	faults = json_object_get(root, "faults");
	assert_true(json_is_false(json_object_get(json_array_get(faults, 0), "victim_led_raft")));
	assert_true(json_is_true(json_object_get(json_array_get(faults, 1), "victim_led_raft")));
	assert_true(json_is_null(json_object_get(json_array_get(faults, 2), "victim_led_raft")));
	json_decref(root);
}

/* A killed follower with an outage, when the victim did not lead Raft, and a handover within
 * the TTL: each said as it is. */
static void test_drill_summary_explains_a_plain_handover(void **state)
{
	struct fixture *f = *state;
	char *buf;

	for (int k = 0; k < KHA_LAB_FAULTS; k++) {
		f->obs.fault_raft_known[k] = true;
		snprintf(f->obs.fault_raft_leader[k], KHA_LAB_NAME_MAX, "m2");
	}
	fail_probes(f->r->drill, MS(4100), MS(4300));
	fail_probes(f->r->drill, MS(40100), MS(40700));
	analyze(f);
	buf = summary(f->r);
	assert_non_null(strstr(buf, "why         writes in flight to the killed member get no "
				    "reply"));
	assert_non_null(strstr(buf, "why         a standby takes over once the dead leader's lease "
				    "runs out: up to its TTL (3s) after its last renewal"));
	assert_non_null(strstr(buf, "why         the frozen member accepts connections nobody "
				    "answers: the entry replays them after 500ms"));
	assert_null(strstr(buf, "led Raft"));
	assert_null(strstr(buf, "#unknown-writes"));
	free(buf);
}

/* ---- the Kubernetes drill's analysis ---- */

/* A drill of n probes at RATE/s, all ok, started t0_us on the monotonic clock. */
static struct kha_drill_report *k8s_drill(uint64_t t0_us, size_t n, bool writes)
{
	struct kha_drill_report *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->probes = calloc(n, sizeof(*d->probes));
	assert_non_null(d->probes);
	d->n_probes = n;
	for (size_t i = 0; i < n; i++)
		d->probes[i] = (struct kha_drill_probe){.t_us = kha_drill_slot_due_us(RATE, i),
							.latency_us = 2000,
							.status = writes ? 201 : 200,
							.result = KHA_DRILL_PROBE_OK};
	d->t0_us = t0_us;
	d->started_wall_us = (uint64_t)WALL0;
	d->rate = RATE;
	d->stats.marks = (struct kha_drill_marks){KHA_DRILL_NONE, KHA_DRILL_NONE,
						  kha_drill_slot_due_us(RATE, n)};
	d->writes.enabled = writes;
	d->writes.verified = writes;
	d->kube.enabled = true;
	return d;
}

static void fail_range(struct kha_drill_report *d, uint64_t from, uint64_t to)
{
	for (size_t i = 0; i < d->n_probes; i++)
		if (d->probes[i].t_us >= from && d->probes[i].t_us < to) {
			d->probes[i].result = KHA_DRILL_PROBE_REFUSED;
			d->probes[i].status = 0;
		}
}

/*
 * stop-apiserver at 3 s (recovery 9 s), kill-cm-leader at 28 s (recovery 34 s), kill-lb at
 * 53 s (recovery 59 s), probing until 78 s. The VIP's drills started 200 ms after the node's.
 */
static struct kha_lab_k8s_drill_report *k8s_report(void)
{
	struct kha_lab_k8s_drill_report *r = calloc(1, sizeof(*r));
	struct kha_drill_report *m;

	assert_non_null(r);
	r->slo = 90;
	r->faults_mask = (1u << KHA_LAB_K8S_STOP_APISERVER) | (1u << KHA_LAB_K8S_KILL_CM_LEADER) |
			 (1u << KHA_LAB_K8S_KILL_LB);
	r->drill[KHA_LAB_ENTRY_NODE][0] = m = k8s_drill(S(100), 780, true);
	r->drill[KHA_LAB_ENTRY_NODE][1] = k8s_drill(S(100), 780, false);
	r->drill[KHA_LAB_ENTRY_VIP][0] = k8s_drill(S(100) + MS(200), 778, true);
	r->drill[KHA_LAB_ENTRY_VIP][1] = k8s_drill(S(100) + MS(200), 778, false);
	add_step(m, "stop-apiserver", KHA_DRILL_STEP_FAULT, S(3), "m3 kube-apiserver stopped");
	add_step(m, "start-apiserver", KHA_DRILL_STEP_RECOVER, S(9), "m3 started");
	add_step(m, "kill-cm-leader", KHA_DRILL_STEP_FAULT, S(28),
		 "m2 kube-controller-manager stopped");
	add_step(m, "restart-cm", KHA_DRILL_STEP_RECOVER, S(34), "m2 started");
	add_step(m, "kill-lb", KHA_DRILL_STEP_FAULT, S(53), "lb1 stopped (SIGKILL)");
	add_step(m, "restart-lb", KHA_DRILL_STEP_RECOVER, S(59), "lb1 started");
	/* the Lease: m2 from the start, m1 acquired it 17.2 s after the kill (seen 600 ms later) */
	r->cm_terms = calloc(2, sizeof(*r->cm_terms));
	assert_non_null(r->cm_terms);
	r->n_cm_terms = 2;
	r->cm_terms[0] =
		(struct kha_lab_lease_term){.seen_us = MS(100), .acquire_wall_us = WALL0 - S(300)};
	snprintf(r->cm_terms[0].holder, KHA_LAB_NAME_MAX, "m2");
	r->cm_terms[1] = (struct kha_lab_lease_term){.seen_us = S(28) + MS(17800),
						     .acquire_wall_us =
							     WALL0 + (int64_t)(S(28) + MS(17200))};
	snprintf(r->cm_terms[1].holder, KHA_LAB_NAME_MAX, "m1");
	r->cm_lease_duration_s = 15;
	/* a snapshot every 5 s */
	r->snapshots = calloc(16, sizeof(*r->snapshots));
	assert_non_null(r->snapshots);
	for (int i = 0; i < 16; i++) {
		r->snapshots[i].t_us = S(5) * (uint64_t)i + S(1);
		snprintf(r->snapshots[i].taker, KHA_LAB_NAME_MAX, "m1");
	}
	r->n_snapshots = 16;
	r->healthy_after = true;
	return r;
}

static void test_k8s_drill_clean_run_passes(void **state)
{
	struct kha_lab_k8s_drill_report *r = k8s_report();
	const struct kha_lab_k8s_fault_result *f;

	(void)state;
	kha_lab_k8s_drill_analyze(r);
	f = &r->faults[KHA_LAB_K8S_STOP_APISERVER];
	assert_true(f->ran && f->step_ok);
	assert_string_equal(f->victim, "m3");
	assert_int_equal(f->fault_us, S(3));
	assert_int_equal(f->end_us, S(28)); /* where the next fault starts */
	assert_int_equal(f->entry[KHA_LAB_ENTRY_NODE].writes_sent, 250);
	assert_true(f->entry[KHA_LAB_ENTRY_VIP].slo_met);
	assert_int_equal(f->entry[KHA_LAB_ENTRY_VIP].watch_reconnect_us, KHA_DRILL_NONE);
	f = &r->faults[KHA_LAB_K8S_KILL_CM_LEADER];
	assert_string_equal(f->cm_before, "m2");
	assert_string_equal(f->cm_after, "m1");
	/* from the Lease's acquireTime, not from when the poll saw it */
	assert_int_equal(f->cm_handover_us, MS(17200));
	assert_string_equal(r->faults[KHA_LAB_K8S_KILL_LB].victim, "lb1");
	assert_false(r->faults[KHA_LAB_K8S_KILL_MASTER].ran);
	assert_int_equal(kha_lab_k8s_drill_exit_code(r), 0);
	kha_lab_k8s_drill_report_free(r);
}

static void test_k8s_drill_windows_move_to_each_drills_time(void **state)
{
	struct kha_lab_k8s_drill_report *r = k8s_report();
	struct kha_drill_report *vip = r->drill[KHA_LAB_ENTRY_VIP][0];
	struct kha_drill_report *vr = r->drill[KHA_LAB_ENTRY_VIP][1];
	const struct kha_lab_k8s_entry_result *x;
	char problems[1024];

	(void)state;
	/* the VIP's writes fail from 53.3 s to 53.7 s of the node's time: 53.1 s to 53.5 s in
	 * theirs; a lost write there; the VIP's watch breaks at 53.2 s (its time) for 414 ms,
	 * and a clean break (timeoutSeconds) at 60 s does not count */
	fail_range(vip, MS(53100), MS(53500));
	vip->writes.lost = 1;
	vip->writes.lost_slots = calloc(1, sizeof(uint64_t));
	vip->writes.lost_slots[0] = 540; /* 54.0 s of its time */
	vip->writes.n_lost_slots = 1;
	vr->kube.gaps = calloc(2, sizeof(*vr->kube.gaps));
	vr->kube.gaps[0] =
		(struct kha_drill_watch_gap){.broke_us = MS(53200), .back_us = MS(53614)};
	vr->kube.gaps[1] = (struct kha_drill_watch_gap){
		.broke_us = S(60), .back_us = S(60) + MS(5), .clean = true};
	vr->kube.n_gaps = 2;
	kha_lab_k8s_drill_analyze(r);
	x = &r->faults[KHA_LAB_K8S_KILL_LB].entry[KHA_LAB_ENTRY_VIP];
	assert_int_equal(x->writes_sent - x->writes_ok, 4);
	assert_int_equal(x->writes_longest_us, MS(400));
	assert_int_equal(x->lost, 1);
	assert_int_equal(x->watch_breaks, 1);
	assert_int_equal(x->watch_reconnect_us, MS(414));
	/* the node's entry saw nothing of it, nor did the earlier faults */
	assert_int_equal(r->faults[KHA_LAB_K8S_KILL_LB].entry[KHA_LAB_ENTRY_NODE].writes_longest_us,
			 0);
	assert_int_equal(r->faults[KHA_LAB_K8S_KILL_CM_LEADER].entry[KHA_LAB_ENTRY_VIP].lost, 0);
	assert_int_equal(kha_lab_k8s_drill_exit_code(r), 2);
	kha_lab_k8s_drill_problems(r, problems, sizeof(problems));
	assert_non_null(strstr(problems, "1 acknowledged writes lost"));
	kha_lab_k8s_drill_report_free(r);
}

static void test_k8s_drill_slo_handover_and_backups(void **state)
{
	struct kha_lab_k8s_drill_report *r = k8s_report();
	char problems[1024];
	char *json;
	json_t *j, *f;

	(void)state;
	/* reads through the node fail for 4 s in stop-apiserver: 84% < 90% */
	fail_range(r->drill[KHA_LAB_ENTRY_NODE][1], S(4), S(8));
	/* no new Lease holder, and no snapshot after 50 s */
	r->n_cm_terms = 1;
	r->n_snapshots = 10;
	kha_lab_k8s_drill_analyze(r);
	assert_false(r->faults[KHA_LAB_K8S_STOP_APISERVER].entry[KHA_LAB_ENTRY_NODE].slo_met);
	assert_int_equal(r->faults[KHA_LAB_K8S_KILL_CM_LEADER].cm_handover_us, KHA_DRILL_NONE);
	assert_int_equal(r->faults[KHA_LAB_K8S_KILL_LB].backup_after_us, KHA_DRILL_NONE);
	assert_int_equal(kha_lab_k8s_drill_exit_code(r), 1);
	kha_lab_k8s_drill_problems(r, problems, sizeof(problems));
	assert_non_null(strstr(problems, "stop-apiserver: through node"));
	assert_non_null(strstr(problems, "kill-cm-leader: no new Lease holder"));
	assert_non_null(strstr(problems, "kill-lb: no backup"));
	json = kha_lab_k8s_drill_json(r);
	assert_non_null(json);
	j = json_loads(json, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "schema")),
			    "kha.lab.k8s-drill/v1");
	assert_int_equal(json_array_size(json_object_get(j, "faults")), 3);
	f = json_array_get(json_object_get(j, "faults"), 0);
	assert_false(json_is_true(json_object_get(json_object_get(f, "node"), "slo_met")));
	json_decref(j);
	free(json);
	kha_lab_k8s_drill_report_free(r);
}

static void test_k8s_drill_summary_explains_its_figures(void **state)
{
	struct kha_lab_k8s_drill_report *r = k8s_report();
	char *buf = NULL, *json;
	size_t len = 0;
	FILE *out;
	json_t *j;

	(void)state;
	fail_range(r->drill[KHA_LAB_ENTRY_VIP][0], MS(53100), MS(53500));
	r->drill[KHA_LAB_ENTRY_VIP][0]->writes.unknown = 2;
	kha_lab_k8s_drill_analyze(r);
	out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(kha_lab_k8s_drill_print(out, r), 0);
	fclose(out);
	assert_non_null(strstr(
		buf, "kube-controller-manager m2 -> m1, handed over after 17.20s\n"
		     "  why         a candidate takes the Lease leaseDuration (15s) after it last "
		     "saw the holder renew, at a try (every 2s + up to 120% jitter): 15-19s "
		     "(docs/lab.md#handover)\n"));
	assert_non_null(strstr(buf, "why         only through the VIP: the other load balancer"));
	assert_non_null(strstr(buf, "0 unknown (0 applied); listed back through the API\n"
				    "  vip "));
	assert_non_null(strstr(buf, "2 unknown (0 applied); listed back through the API\n"
				    "  why         unknown = sent"));
	/* stop-apiserver and kill-cm-leader lost nothing: no outage to explain there */
	assert_ptr_equal(strstr(buf, "#outage"), strstr(strstr(buf, "fault 3"), "#outage"));
	free(buf);
	json = kha_lab_k8s_drill_json(r);
	assert_non_null(json);
	j = json_loads(json, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "verdict")), "passed");
	json_decref(j);
	free(json);
	kha_lab_k8s_drill_report_free(r);
}

static void test_k8s_fault_list_parses(void **state)
{
	unsigned mask = 0;

	(void)state;
	assert_int_equal(kha_lab_k8s_fault_parse("kill-lb,stop-apiserver", &mask), 0);
	assert_int_equal(mask, (1u << KHA_LAB_K8S_KILL_LB) | (1u << KHA_LAB_K8S_STOP_APISERVER));
	assert_int_equal(kha_lab_k8s_fault_parse("all", &mask), 0);
	assert_int_equal(mask, (1u << KHA_LAB_K8S_FAULTS) - 1);
	assert_int_equal(kha_lab_k8s_fault_parse("kill-lb,nope", &mask), -EINVAL);
	assert_int_equal(kha_lab_k8s_fault_parse("", &mask), -EINVAL);
	assert_int_equal(kha_lab_k8s_fault_parse(",", &mask), -EINVAL);
	assert_string_equal(kha_lab_k8s_fault_name(KHA_LAB_K8S_ROLLING), "rolling");
}

/* kha lab status's verdict: quorum, companions, the entry, a Kubernetes lab's apiservers */
static void test_status_verdict(void **state)
{
	struct kha_lab_proc proxy = {.kind = KHA_LAB_PROC_PROXY};
	struct kha_lab lab = {.n_masters = 3, .election = (char *)"lab-backup"};
	struct kha_lab_live lv = {.n_healthy = 3, .n_running = 3, .leader = (char *)"m1"};

	(void)state;
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_OK);
	lv.leader = NULL; /* nobody takes the backups */
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_DEGRADED);
	lv.leader = (char *)"m1";
	lv.n_running = 2; /* a companion down */
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_DEGRADED);
	lv.n_healthy = 2; /* one member down: quorum holds */
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_DEGRADED);
	lv.n_healthy = 1; /* quorum lost */
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_CRITICAL);
	/* an entry point that is not ready is critical, whatever the members say */
	lv = (struct kha_lab_live){.n_healthy = 3, .n_running = 3, .leader = (char *)"m1"};
	lab.node.procs = &proxy;
	lab.node.n_procs = 1;
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_CRITICAL);
	lv.proxy_running = lv.entry.ready = true;
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_OK);
	/* a Kubernetes lab: an apiserver or a Lease holder missing degrades, none ready or
	 * the VIP not ready is critical */
	lab.k8s_bin = (char *)"bin";
	lab.n_lbs = 2;
	lv.n_api_ready = 3;
	lv.vip_ready = true;
	snprintf(lv.cm_holder, sizeof(lv.cm_holder), "m1_x");
	snprintf(lv.sched_holder, sizeof(lv.sched_holder), "m2_y");
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_OK);
	lv.sched_holder[0] = '\0';
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_DEGRADED);
	lv.n_api_ready = 0;
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_CRITICAL);
	lv.n_api_ready = 3;
	snprintf(lv.sched_holder, sizeof(lv.sched_holder), "m2_y");
	lv.vip_ready = false;
	assert_int_equal(kha_lab_live_verdict(&lab, &lv), KHA_EXIT_CRITICAL);
}

/* kha lab drill --svg FILE on a Kubernetes lab: FILE for the node, FILE-vip.svg for the VIP */
static void test_k8s_drill_svg_paths(void **state)
{
	char *p;

	(void)state;
	p = kha_lab_k8s_drill_svg_path("out/drill.svg", KHA_LAB_ENTRY_NODE);
	assert_string_equal(p, "out/drill.svg");
	free(p);
	p = kha_lab_k8s_drill_svg_path("out/drill.svg", KHA_LAB_ENTRY_VIP);
	assert_string_equal(p, "out/drill-vip.svg");
	free(p);
	p = kha_lab_k8s_drill_svg_path("timeline", KHA_LAB_ENTRY_VIP);
	assert_string_equal(p, "timeline-vip.svg");
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_drill_clean_run_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_outage_counts_in_its_fault, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drill_lost_write_is_found_in_its_fault, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_drill_dying_leaders_last_snapshot_does_not_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_no_snapshot_by_another_master_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_two_takers_in_one_term_is_caught, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_drill_snapshot_at_a_term_change_is_not_a_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_no_handover_or_dead_leader_backup_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_without_snapshots_or_terms, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drill_failed_step_and_interrupt_win, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drill_json_and_summary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_summary_explains_its_figures, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drill_summary_explains_a_plain_handover, setup,
						teardown),
		cmocka_unit_test(test_k8s_drill_clean_run_passes),
		cmocka_unit_test(test_k8s_drill_windows_move_to_each_drills_time),
		cmocka_unit_test(test_k8s_drill_slo_handover_and_backups),
		cmocka_unit_test(test_k8s_drill_summary_explains_its_figures),
		cmocka_unit_test(test_k8s_fault_list_parses),
		cmocka_unit_test(test_status_verdict),
		cmocka_unit_test(test_k8s_drill_svg_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
