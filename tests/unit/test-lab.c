// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/lab's drill analysis (lab_drill_analyze): made-up drills with their probes,
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
	struct lab_drill_obs obs;
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
	lab_drill_analyze(&f->lab, &f->obs, f->r);
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

static void test_drill_json_and_summary(void **state)
{
	struct fixture *f = *state;
	json_t *root, *faults;
	char *text, *buf = NULL;
	size_t len = 0;
	FILE *out;

	analyze(f);
	text = kha_lab_drill_json(f->r);
	assert_non_null(text);
	root = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "schema")), "kha.lab.drill/v1");
	assert_true(json_is_true(json_object_get(root, "passed")));
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

	out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(kha_lab_drill_print(out, f->r), 0);
	fclose(out);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_drill_clean_run_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drill_outage_counts_in_its_fault, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drill_lost_write_is_found_in_its_fault, setup,
						teardown),
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
