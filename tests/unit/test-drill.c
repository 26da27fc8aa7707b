// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/drill: schedule arithmetic, outage windows, percentiles, phases, the
 * scenario parser and checks, the verdict, the JSON report and the SVG writer, all on
 * synthetic probe series (no network, no clock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "kha/drill.h"
#include "kha/banned.h"

#define MS(x) ((uint64_t)(x)*KHA_USEC_PER_MSEC)

/* A series at `rate` probes/s: pattern[i] is 'o' ok, 'x' failed (refused), 'm' missed. */
static struct kha_drill_probe *series(const char *pattern, uint32_t rate, uint32_t latency_us,
				      size_t *ret_n)
{
	size_t n = strlen(pattern);
	struct kha_drill_probe *p = calloc(n ? n : 1, sizeof(*p));

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		p[i].t_us = kha_drill_slot_due_us(rate, i);
		p[i].latency_us = latency_us;
		p[i].result = pattern[i] == 'o'	  ? KHA_DRILL_PROBE_OK
			      : pattern[i] == 'm' ? KHA_DRILL_PROBE_MISSED
			      : pattern[i] == 'c' ? KHA_DRILL_PROBE_CANCELLED
						  : KHA_DRILL_PROBE_REFUSED;
		p[i].status = p[i].result == KHA_DRILL_PROBE_OK ? 200 : 0;
	}
	*ret_n = n;
	return p;
}

static const struct kha_drill_marks no_marks = {KHA_DRILL_NONE, KHA_DRILL_NONE, KHA_DRILL_NONE};

/* ---------------------------------------------------------------------------------------- */

static void test_slot_due_has_no_drift(void **state)
{
	(void)state;
	assert_int_equal(kha_drill_slot_due_us(200, 0), 0);
	assert_int_equal(kha_drill_slot_due_us(200, 1), 5000);
	/* 3/s does not divide a second: slots stay exact, no accumulated rounding */
	assert_int_equal(kha_drill_slot_due_us(3, 1), 333333);
	assert_int_equal(kha_drill_slot_due_us(3, 3), 1000000);
	assert_int_equal(kha_drill_slot_due_us(3, 3000000), 1000000ULL * 1000000);
	assert_int_equal(kha_drill_slot_due_us(7, 7 * 3600), 3600ULL * 1000000);
}

static void test_slot_decide_counts_missed_slots(void **state)
{
	(void)state;
	/* 100/s: slot 10 is due at 100ms */
	assert_int_equal(kha_drill_slot_decide(100, 10, MS(99), 0, 10), KHA_DRILL_SLOT_WAIT);
	assert_int_equal(kha_drill_slot_decide(100, 10, MS(100), 0, 10), KHA_DRILL_SLOT_SEND);
	/* late by less than one interval: still sent */
	assert_int_equal(kha_drill_slot_decide(100, 10, MS(109), 0, 10), KHA_DRILL_SLOT_SEND);
	/* late by more than one interval: missed, not sent in a burst */
	assert_int_equal(kha_drill_slot_decide(100, 10, MS(111), 0, 10), KHA_DRILL_SLOT_MISS);
	/* too many in flight: missed */
	assert_int_equal(kha_drill_slot_decide(100, 10, MS(100), 10, 10), KHA_DRILL_SLOT_MISS);
	/* at high rates the lateness allowed has a floor of 5ms (poll granularity) */
	assert_int_equal(kha_drill_slot_decide(10000, 100, MS(10) + 4000, 0, 100),
			 KHA_DRILL_SLOT_SEND);
	assert_int_equal(kha_drill_slot_decide(10000, 100, MS(10) + 6000, 0, 100),
			 KHA_DRILL_SLOT_MISS);
}

static void test_slot_decide_simulated_stall(void **state)
{
	/* a prober that stalls 100ms at 200/s: the slots of the stall are missed, the rest sent */
	uint64_t slot = 0, sent = 0, missed = 0;

	(void)state;
	for (uint64_t now = 0; now <= MS(1000); now += 1000) {
		if (now > MS(300) && now < MS(400))
			continue; /* stalled: the loop did not run */
		for (;;) {
			enum kha_drill_slot_action a =
				kha_drill_slot_decide(200, slot, now, 0, 100);
			if (a == KHA_DRILL_SLOT_WAIT)
				break;
			if (a == KHA_DRILL_SLOT_SEND)
				sent++;
			else
				missed++;
			slot++;
		}
	}
	assert_int_equal(sent + missed, slot);
	assert_int_equal(slot, 201);
	/* slots due in (300ms, 395ms) are more than one interval late when the loop resumes */
	assert_in_range(missed, 18, 20);
}

static void test_percentile_nearest_rank(void **state)
{
	uint32_t v[100];

	(void)state;
	for (int i = 0; i < 100; i++)
		v[i] = (uint32_t)(i + 1);
	assert_int_equal(kha_drill_percentile(v, 100, 50), 50);
	assert_int_equal(kha_drill_percentile(v, 100, 99), 99);
	assert_int_equal(kha_drill_percentile(v, 100, 100), 100);
	assert_int_equal(kha_drill_percentile(v, 1, 99), 1);
	assert_int_equal(kha_drill_percentile(v, 0, 50), 0);
	/* 10 samples: p99 is the largest, p50 the fifth */
	assert_int_equal(kha_drill_percentile(v, 10, 99), 10);
	assert_int_equal(kha_drill_percentile(v, 10, 50), 5);
}

static void test_windows_found_and_measured(void **state)
{
	struct kha_drill_window w[4];
	struct kha_drill_probe *p;
	size_t n, count;

	(void)state;
	/* 100/s: fails from slot 3 to 6, recovers at 7; fails again at 9 until the end */
	p = series("oooxxxxooxx", 100, 500, &n);
	count = kha_drill_find_windows(p, n, MS(110), w, 4);
	assert_int_equal(count, 2);
	assert_int_equal(w[0].start_us, MS(30));
	assert_int_equal(w[0].end_us, MS(70));
	assert_int_equal(w[0].failed, 4);
	assert_false(w[0].open);
	assert_int_equal(w[1].start_us, MS(90));
	assert_int_equal(w[1].end_us, MS(110));
	assert_true(w[1].open);
	/* more windows than room: all counted, only max written */
	assert_int_equal(kha_drill_find_windows(p, n, MS(110), w, 1), 2);
	assert_int_equal(kha_drill_find_windows(p, n, MS(110), NULL, 0), 2);
	free(p);

	p = series("oooo", 100, 500, &n);
	assert_int_equal(kha_drill_find_windows(p, n, MS(40), w, 4), 0);
	free(p);
	assert_int_equal(kha_drill_find_windows(NULL, 0, 0, w, 4), 0);
}

static void test_windows_ignore_missed_slots(void **state)
{
	struct kha_drill_window w[4];
	struct kha_drill_probe *p;
	size_t n;

	(void)state;
	/* a missed slot inside an outage neither ends nor splits it; one between successes
	 * opens nothing */
	p = series("ooxxmxxoomoo", 100, 500, &n);
	assert_int_equal(kha_drill_find_windows(p, n, MS(120), w, 4), 1);
	assert_int_equal(w[0].start_us, MS(20));
	assert_int_equal(w[0].end_us, MS(70));
	assert_int_equal(w[0].failed, 4);
	free(p);
}

static void test_analyze_counts_and_availability(void **state)
{
	struct kha_drill_marks m = no_marks;
	struct kha_drill_stats s;
	struct kha_drill_probe *p;
	size_t n;

	(void)state;
	p = series("ooooxxooomoc", 100, 1000, &n);
	m.end_us = MS(120);
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.slots, 11); /* the cancelled probe is not a slot */
	assert_int_equal(s.sent, 10);
	assert_int_equal(s.ok, 8);
	assert_int_equal(s.failed, 2);
	assert_int_equal(s.missed, 1);
	assert_int_equal(s.by_result[KHA_DRILL_PROBE_REFUSED], 2);
	assert_int_equal(s.by_result[KHA_DRILL_PROBE_CANCELLED], 1);
	assert_float_equal(s.availability, 80.0, 1e-9);
	assert_int_equal(s.n_windows, 1);
	assert_int_equal(s.longest.start_us, MS(40));
	assert_int_equal(s.longest.end_us, MS(60));
	assert_int_equal(s.outage_total_us, MS(20));
	/* no fault: everything is "before" */
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].sent, 10);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].start_us, KHA_DRILL_NONE);
	assert_int_equal(s.first_failure_us, KHA_DRILL_NONE);
	free(p);

	/* nothing sent: availability 0, no window */
	p = series("mmm", 100, 0, &n);
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.sent, 0);
	assert_int_equal(s.missed, 3);
	assert_float_equal(s.availability, 0.0, 1e-9);
	assert_int_equal(s.longest.start_us, KHA_DRILL_NONE);
	free(p);
}

static void test_analyze_phases_split_on_fault_and_recovery(void **state)
{
	struct kha_drill_marks m = {.fault_us = MS(30), .recover_us = MS(70), .end_us = MS(100)};
	struct kha_drill_stats s;
	struct kha_drill_probe *p;
	size_t n;

	(void)state;
	/* 100/s, slots at 0..90ms: before = 0,10,20; during = 30..60; after = 70..90 */
	p = series("oooxxxoooo", 100, 0, &n);
	for (size_t i = 0; i < n; i++)
		p[i].latency_us = (uint32_t)(100 * (i + 1)); /* 100us, 200us, ... */
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].start_us, 0);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].end_us, MS(30));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].sent, 3);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].latency.count, 3);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].latency.p50_us, 200);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].latency.max_us, 300);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].start_us, MS(30));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].end_us, MS(70));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].sent, 4);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].failed, 3);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].latency.count, 1);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].latency.p99_us, 700);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_AFTER].start_us, MS(70));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_AFTER].end_us, MS(100));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_AFTER].sent, 3);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_AFTER].latency.p50_us, 900);
	assert_int_equal(s.latency.count, 7);
	assert_int_equal(s.latency.max_us, 1000);
	/* fault at 30ms, first failure at 30ms, first success after the last failure at 60ms */
	assert_int_equal(s.first_failure_us, MS(30));
	assert_int_equal(s.recovered_us, MS(60));
	free(p);

	/* a fault without a recovery: "during" runs to the end, no "after" */
	m = (struct kha_drill_marks){
		.fault_us = MS(30), .recover_us = KHA_DRILL_NONE, .end_us = MS(100)};
	p = series("oooxxxxxxx", 100, 100, &n);
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].end_us, MS(100));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_AFTER].start_us, KHA_DRILL_NONE);
	assert_int_equal(s.recovered_us, KHA_DRILL_NONE);
	assert_true(s.longest.open);
	assert_int_equal(s.longest.end_us, MS(100));
	free(p);
}

static void test_analyze_failure_in_flight_at_fault(void **state)
{
	struct kha_drill_marks m = {.fault_us = MS(25), .recover_us = MS(60), .end_us = MS(100)};
	struct kha_drill_stats s;
	struct kha_drill_probe *p;
	size_t n;

	(void)state;
	/* the probe sent at 20ms was in flight at the fault (25ms) and failed at 520ms: it counts
	 * at the fault instant; a failure long before the fault does not */
	p = series("oxoxxooooo", 100, 500, &n);
	p[1].latency_us = 1000; /* failed at 11ms, before the fault */
	p[2].result = KHA_DRILL_PROBE_TIMEOUT;
	p[2].latency_us = MS(500);
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.first_failure_us, MS(25));
	assert_int_equal(s.recovered_us, MS(50));
	assert_int_equal(s.n_windows, 1);
	assert_int_equal(s.longest.start_us, MS(10));
	free(p);

	/* no failure after the fault at all */
	p = series("oxoooooooo", 100, 500, &n);
	p[1].latency_us = 100;
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.first_failure_us, KHA_DRILL_NONE);
	assert_int_equal(s.recovered_us, KHA_DRILL_NONE);
	free(p);
}

static void test_place_by_transfer_end(void **state)
{
	struct kha_drill_probe p = {};

	(void)state;
	/* queued at 150ms, the transfer (2ms by curl) seen done at 212ms: it began at 210ms */
	kha_drill_place(&p, MS(150), 0, MS(212), MS(2));
	assert_int_equal(p.t_us, MS(210));
	assert_int_equal(p.latency_us, MS(2));
	/* no measure: from queued to done */
	kha_drill_place(&p, MS(150), 0, MS(212), 0);
	assert_int_equal(p.t_us, MS(150));
	assert_int_equal(p.latency_us, MS(62));
	/* a measure longer than queued to done (another clock): never before it was queued */
	kha_drill_place(&p, MS(150), 0, MS(160), MS(20));
	assert_int_equal(p.t_us, MS(150));
	assert_int_equal(p.latency_us, MS(10));
	/* done before queued cannot be: no negative latency */
	kha_drill_place(&p, MS(150), 0, MS(140), MS(2));
	assert_int_equal(p.t_us, MS(150));
	assert_int_equal(p.latency_us, 0);
	/* the socket opened at 180ms, the 2ms transfer seen done at 212ms (the prober was busy
	 * with other probes): it began at 180ms, when the target could first see it, and ended
	 * within its own measure */
	kha_drill_place(&p, MS(150), MS(180), MS(212), MS(2));
	assert_int_equal(p.t_us, MS(180));
	assert_int_equal(p.latency_us, MS(2));
	/* seen done at once: from the opening to done */
	kha_drill_place(&p, MS(150), MS(180), MS(181), MS(2));
	assert_int_equal(p.t_us, MS(180));
	assert_int_equal(p.latency_us, MS(1));
	/* an opening outside queued .. done (cannot be): placed as without one */
	kha_drill_place(&p, MS(150), MS(100), MS(212), MS(2));
	assert_int_equal(p.t_us, MS(210));
	assert_int_equal(p.latency_us, MS(2));
}

static void test_analyze_places_late_transfers_in_their_phase(void **state)
{
	/* the target refused from 200ms to 300ms (the fault and the recovery); a busy prober
	 * queued every slot on time, but curl began each transfer 60ms later and took 2ms */
	struct kha_drill_marks m = {.fault_us = MS(200), .recover_us = MS(300), .end_us = MS(400)};
	struct kha_drill_probe p[34] = {};
	struct kha_drill_stats s;
	size_t n = sizeof(p) / sizeof(p[0]);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		uint64_t queued = kha_drill_slot_due_us(100, i), began = queued + MS(60);

		kha_drill_place(&p[i], queued, 0, began + MS(2), MS(2));
		p[i].result = began >= MS(200) && began < MS(300) ? KHA_DRILL_PROBE_REFUSED
								  : KHA_DRILL_PROBE_OK;
	}
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.failed, 10);
	/* no refusal placed before the refusals began, none in the phase before the fault */
	assert_int_equal(s.n_windows, 1);
	assert_int_equal(s.longest.start_us, MS(200));
	assert_int_equal(s.longest.end_us, MS(300));
	assert_int_equal(s.first_failure_us, MS(200));
	assert_int_equal(s.recovered_us, MS(300));
	assert_int_equal(s.phases[KHA_DRILL_PHASE_BEFORE].failed, 0);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].failed, 10);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_DURING].ok, 0);
	assert_int_equal(s.phases[KHA_DRILL_PHASE_AFTER].failed, 0);
}

static void test_windows_follow_time_not_slot_order(void **state)
{
	struct kha_drill_probe *p;
	struct kha_drill_window w[2];
	size_t n;

	(void)state;
	/* a failed slot whose transfer began after the next slot's (successful) one: in time, the
	 * success came first, so the window runs from the failure to the next success in time (the
	 * probe at 30 ms), never ending before it starts nor holding a success inside */
	p = series("oxoo", 100, 500, &n);
	p[1].t_us = MS(25);
	p[2].t_us = MS(22);
	assert_int_equal(kha_drill_find_windows(p, n, MS(40), w, 2), 1);
	assert_int_equal(w[0].start_us, MS(25));
	assert_int_equal(w[0].end_us, MS(30));
	assert_int_equal(w[0].failed, 1);
	free(p);
}

static void test_analyze_fault_times_follow_time_not_slot_order(void **state)
{
	struct kha_drill_marks m = {.fault_us = MS(15), .recover_us = MS(60), .end_us = MS(100)};
	struct kha_drill_stats s;
	struct kha_drill_probe *p;
	size_t n;

	(void)state;
	/* slots 2 and 3 failed, their transfers placed swapped in time (slot 3 began at 29 ms,
	 * slot 2 at 31 ms); slot 4 succeeded at 33 ms, slot 5 began before it (32.5 ms) and
	 * succeeded too. The first failure and the recovery are the outage window's edges: the
	 * earliest failure in time (29 ms), the first success after the last one in time (32.5 ms,
	 * although slot 4 comes first) */
	p = series("ooxxoooooo", 100, 500, &n);
	p[2].t_us = 31000;
	p[3].t_us = 29000;
	p[4].t_us = 33000;
	p[5].t_us = 32500;
	assert_int_equal(kha_drill_analyze(p, n, &m, &s), 0);
	assert_int_equal(s.n_windows, 1);
	assert_int_equal(s.longest.start_us, 29000);
	assert_int_equal(s.longest.end_us, 32500);
	assert_int_equal(s.first_failure_us, s.longest.start_us);
	assert_int_equal(s.recovered_us, s.longest.end_us);
	free(p);
}

/* ---------------------------------------------------------------------------------------- */

static void test_expect_status_lists(void **state)
{
	uint64_t bm[8] = {};

	(void)state;
	assert_true(kha_drill_status_expected(bm, 200));
	assert_true(kha_drill_status_expected(bm, 299));
	assert_false(kha_drill_status_expected(bm, 301));
	assert_int_equal(kha_drill_parse_expect_status("200,401", bm), 0);
	assert_true(kha_drill_status_expected(bm, 401));
	assert_false(kha_drill_status_expected(bm, 204));
	assert_int_equal(kha_drill_parse_expect_status("200-204, 3xx", bm), 0);
	assert_true(kha_drill_status_expected(bm, 204));
	assert_true(kha_drill_status_expected(bm, 399));
	assert_false(kha_drill_status_expected(bm, 205));
	assert_false(kha_drill_status_expected(bm, 600));
	assert_false(kha_drill_status_expected(bm, 99));
	assert_int_equal(kha_drill_parse_expect_status("599", bm), 0);
	assert_true(kha_drill_status_expected(bm, 599));
	static const char *const bad[] = {"",	     "abc",  "2x",  "600",    "99",
					  "204-200", "200,", "6xx", "200 201"};
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		assert_int_equal(kha_drill_parse_expect_status(bad[i], bm), -EINVAL);
}

static const char good_yaml[] = "# a drill\n"
				"target: https://127.0.0.1:6443/readyz\n"
				"rate: 150\n"
				"duration: 20s\n"
				"timeout: 500ms\n"
				"keepalive: true\n"
				"expect-status: 200,401\n"
				"slo: 99.5\n"
				"steps:\n"
				"  - {at: 12s, run: \"kill -CONT 42\", name: thaw, kind: recover}\n"
				"  - at: 2s\n"
				"    run: kill -STOP 42\n"
				"    name: freeze\n"
				"    kind: fault\n"
				"    timeout: 5s\n"
				"  - {at: 12s, run: \"echo check\"}\n";

static void test_scenario_parse_full(void **state)
{
	struct kha_drill_scenario sc;
	struct kha_diag d = {};

	(void)state;
	kha_drill_scenario_init(&sc);
	assert_int_equal(kha_drill_scenario_parse(&sc, good_yaml, strlen(good_yaml), "t.yaml", &d),
			 0);
	assert_string_equal(sc.target, "https://127.0.0.1:6443/readyz");
	assert_int_equal(sc.rate, 150);
	assert_int_equal(sc.duration_us, 20 * KHA_USEC_PER_SEC);
	assert_int_equal(sc.timeout_us, MS(500));
	assert_true(sc.keepalive);
	assert_true(kha_drill_status_expected(sc.expect_status, 401));
	assert_float_equal(sc.slo_percent, 99.5, 1e-9);
	assert_int_equal(sc.n_steps, 3);
	assert_int_equal(kha_drill_scenario_check(&sc, &d), 0);
	/* sorted by time, stable for equal times */
	assert_string_equal(sc.steps[0].name, "freeze");
	assert_int_equal(sc.steps[0].kind, KHA_DRILL_STEP_FAULT);
	assert_int_equal(sc.steps[0].timeout_us, 5 * KHA_USEC_PER_SEC);
	assert_string_equal(sc.steps[1].name, "thaw");
	assert_int_equal(sc.steps[1].kind, KHA_DRILL_STEP_RECOVER);
	assert_string_equal(sc.steps[2].name, "action");
	assert_string_equal(sc.steps[2].run, "echo check");
	kha_drill_scenario_release(&sc);
}

static void test_scenario_parse_rolling_list(void **state)
{
	static const char y[] = "target: tcp://127.0.0.1:6443\n"
				"rolling: [m1, m2, \"10.0.0.3\"]\n"
				"stop: ssh {node} systemctl stop kubelet\n"
				"start: ssh {node} systemctl start kubelet\n"
				"healthy: curl -fsk https://{node}:6443/readyz\n"
				"healthy-timeout: 90s\n"
				"down-time: 2s\n";
	struct kha_drill_scenario sc;
	struct kha_diag d = {};

	(void)state;
	kha_drill_scenario_init(&sc);
	assert_int_equal(kha_drill_scenario_parse(&sc, y, strlen(y), "r.yaml", &d), 0);
	assert_int_equal(sc.n_nodes, 3);
	assert_string_equal(sc.nodes[2], "10.0.0.3");
	assert_int_equal(sc.healthy_timeout_us, 90 * KHA_USEC_PER_SEC);
	assert_int_equal(sc.down_us, 2 * KHA_USEC_PER_SEC);
	assert_int_equal(kha_drill_scenario_check(&sc, &d), 0);
	/* the rolling starts after a tenth of the drill by default (60s: 6s) */
	assert_int_equal(sc.fault_at_us, 6 * KHA_USEC_PER_SEC);
	/* the command line replaces the list */
	assert_int_equal(kha_drill_scenario_set(&sc, "rolling", "a, b", &d), 0);
	assert_int_equal(sc.n_nodes, 2);
	assert_string_equal(sc.nodes[1], "b");
	kha_drill_scenario_release(&sc);
}

static void expect_parse_error(const char *yaml, const char *needle)
{
	struct kha_drill_scenario sc;
	struct kha_diag d = {};
	int r;

	kha_drill_scenario_init(&sc);
	r = kha_drill_scenario_parse(&sc, yaml, strlen(yaml), "bad.yaml", &d);
	if (r != -EBADMSG || !strstr(d.msg, needle))
		fail_msg("yaml <<%s>>: got %d '%s', wanted '%s'", yaml, r, d.msg, needle);
	kha_drill_scenario_release(&sc);
}

static void test_scenario_errors_name_the_line(void **state)
{
	(void)state;
	expect_parse_error("target: http://a/\nrate: [1\n", "bad.yaml:");
	expect_parse_error("target: http://a/\nrate: fast\n", "bad.yaml:2: rate: expected probes");
	expect_parse_error("target: http://a/\n\nfrobnicate: 1\n",
			   "bad.yaml:3: unknown key 'frobnicate'");
	expect_parse_error("steps:\n  - {at: 1s}\n", "bad.yaml:2: step without 'run'");
	expect_parse_error("steps:\n  - {run: x}\n", "bad.yaml:2: step without 'at'");
	expect_parse_error("steps:\n  - at: 1s\n    run: x\n    kind: explode\n",
			   "bad.yaml:4: step kind: expected fault, recover or action");
	expect_parse_error("steps:\n  - at: soon\n    run: x\n", "bad.yaml:2: step at:");
	expect_parse_error("steps:\n  - {at: 1s, run: x, when: now}\n", "unknown step key 'when'");
	expect_parse_error("steps: 3\n", "bad.yaml:1: steps: expected a list");
	expect_parse_error("- a\n- b\n", "bad.yaml:1: expected a mapping");
	expect_parse_error("duration: 10parsecs\n", "bad.yaml:1: duration: expected a duration");
	expect_parse_error("rolling: [a, \"b;rm -rf /\"]\n", "node 'b;rm -rf /'");
	expect_parse_error("target: {a: b}\n", "bad.yaml:1: target: expected a single value");
	expect_parse_error("key: [unterminated\n", "malformed YAML");
}

static void test_scenario_empty_file_sets_nothing(void **state)
{
	struct kha_drill_scenario sc;
	struct kha_diag d = {};

	(void)state;
	kha_drill_scenario_init(&sc);
	assert_int_equal(kha_drill_scenario_parse(&sc, "", 0, "e.yaml", &d), 0);
	assert_int_equal(kha_drill_scenario_parse(&sc, "# nothing\n", 10, "e.yaml", &d), 0);
	assert_null(sc.target);
	assert_int_equal(sc.rate, KHA_DRILL_DEFAULT_RATE);
	kha_drill_scenario_release(&sc);
}

static int check_with(const char *const *kv, struct kha_diag *d)
{
	struct kha_drill_scenario sc;
	int r = 0;

	kha_drill_scenario_init(&sc);
	for (; *kv && r == 0; kv += 2)
		r = kha_drill_scenario_set(&sc, kv[0], kv[1], d);
	if (r == 0)
		r = kha_drill_scenario_check(&sc, d);
	kha_drill_scenario_release(&sc);
	return r;
}

static void test_scenario_check_rejects_bad_setups(void **state)
{
	static const struct {
		const char *kv[16];
		const char *needle;
	} cases[] = {
		{{NULL}, "no target"},
		{{"target", "ftp://x/", NULL}, "not a URL kha drill probes"},
		{{"target", "http://[::1/", NULL}, "does not parse"},
		{{"target", "http://127.0.0.1:99999/", NULL}, "does not parse"},
		{{"target", "tcp://127.0.0.1", NULL}, "tcp://HOST:PORT"},
		{{"target", "tcp://127.0.0.1:80/x", NULL}, "tcp://HOST:PORT"},
		{{"target", "http://a/", "fault", "true", NULL}, "without --fault-at"},
		{{"target", "http://a/", "recover-at", "2s", NULL}, "without --recover"},
		{{"target", "http://a/", "duration", "2s", "fault-at", "3s", "fault", "x", NULL},
		 "not before the end"},
		{{"target", "http://a/", "rolling", "a,b", "start", "x", NULL}, "needs --stop"},
		{{"target", "http://a/", "rolling", "a", "stop", "x", "start", "y", "fault-at",
		  "1s", "fault", "z", NULL},
		 "cannot be combined"},
		{{"target", "http://a/", "healthy", "x", NULL}, "only makes sense with --rolling"},
		{{"target", "http://a/", "key", "/dev/null", NULL}, "without --cert"},
		{{"target", "http://a/", "cacert", "/nonexistent/ca.crt", NULL}, "cannot read"},
		{{"target", "tcp://a:2379", "write", "true", NULL}, "not tcp://"},
		{{"target", "http://a:2379", "write", "true", "endpoints", "ftp://x", NULL},
		 "endpoints"},
		{{"target", "http://a:2379", "endpoints", "http://b:2379", NULL},
		 "only makes sense with --write"},
	};
	struct kha_diag d;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(cases); i++) {
		kha_diag_clear(&d);
		int r = check_with(cases[i].kv, &d);
		if (r >= 0 || !strstr(d.msg, cases[i].needle))
			fail_msg("case %zu: got %d '%s', wanted '%s'", i, r, d.msg,
				 cases[i].needle);
	}
}

static void test_scenario_set_validates_values(void **state)
{
	struct kha_drill_scenario sc;
	struct kha_diag d = {};

	(void)state;
	kha_drill_scenario_init(&sc);
	assert_int_equal(kha_drill_scenario_set(&sc, "nonsense", "1", &d), -ENOENT);
	assert_int_equal(kha_drill_scenario_set(&sc, "rate", "0", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "rate", "100001", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "rate", "12", &d), 0);
	assert_int_equal(sc.rate, 12);
	assert_int_equal(kha_drill_scenario_set(&sc, "slo", "101", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "slo", "99.9%", &d), 0);
	assert_float_equal(sc.slo_percent, 99.9, 1e-9);
	assert_int_equal(kha_drill_scenario_set(&sc, "timeout", "0s", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "insecure", NULL, &d), 0);
	assert_true(sc.insecure);
	assert_int_equal(kha_drill_scenario_set(&sc, "insecure", "false", &d), 0);
	assert_false(sc.insecure);
	assert_int_equal(kha_drill_scenario_set(&sc, "insecure", "maybe", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "rolling", "a,a", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "rolling", ",", &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "target", "", &d), -EINVAL);
	kha_drill_scenario_release(&sc);
}

/* ---------------------------------------------------------------------------------------- */

/* A report as kha_drill_run would leave it, from a pattern. */
static struct kha_drill_report *fake_report(const char *pattern, const char *target)
{
	struct kha_drill_report *r = calloc(1, sizeof(*r));
	struct kha_drill_marks m = {.fault_us = MS(300), .recover_us = MS(700), .end_us = 0};

	assert_non_null(r);
	r->target = strdup(target);
	r->rate = 100;
	r->interval_us = MS(10);
	r->timeout_us = MS(1000);
	r->duration_us = strlen(pattern) * MS(10);
	r->elapsed_us = r->duration_us;
	r->slo_percent = -1;
	r->started_wall_us = 1700000000ULL * KHA_USEC_PER_SEC;
	r->probes = series(pattern, 100, 800, &r->n_probes);
	for (size_t i = 0; i < r->n_probes; i++)
		r->probes[i].latency_us = (uint32_t)(300 + 37 * (i % 13));
	m.end_us = r->duration_us;
	assert_int_equal(kha_drill_analyze(r->probes, r->n_probes, &m, &r->stats), 0);
	snprintf(r->error_samples[KHA_DRILL_PROBE_REFUSED], sizeof(r->error_samples[0]),
		 "Couldn't connect <to> \"server\"");
	r->steps = calloc(2, sizeof(*r->steps));
	r->n_steps = 2;
	r->steps[0] = (struct kha_drill_step_result){.name = strdup("freeze & <stop>"),
						     .run = strdup("kill -STOP 1"),
						     .kind = KHA_DRILL_STEP_FAULT,
						     .state = KHA_DRILL_STEP_SUCCEEDED,
						     .at_us = MS(300),
						     .started_us = MS(300),
						     .ended_us = MS(302),
						     .exit_code = 0,
						     .output = strdup("bytes \x01\xff and text\n"),
						     .output_bytes = 20};
	r->steps[1] = (struct kha_drill_step_result){.name = strdup("thaw"),
						     .run = strdup("kill -CONT 1"),
						     .kind = KHA_DRILL_STEP_RECOVER,
						     .state = KHA_DRILL_STEP_FAILED,
						     .at_us = MS(700),
						     .started_us = MS(700),
						     .ended_us = MS(705),
						     .exit_code = 2,
						     .output = strdup("no such process\n"),
						     .output_bytes = 16};
	return r;
}

static const char pattern[] = "oooooooooooooooooooooooooooooooxxxxxxxxxxxxxxxxxxxxxxxmxxxx"
			      "oooooooooooooooooooooooooooooooooooooooo";

static void test_verdict_and_exit_codes(void **state)
{
	struct kha_drill_report *r = fake_report(pattern, "http://x/");

	(void)state;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_OK);
	assert_int_equal(kha_drill_verdict_exit_code(r), 0);
	r->slo_percent = 99.9;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_SLO_MISSED);
	assert_int_equal(kha_drill_verdict_exit_code(r), 1);
	r->slo_percent = 50;
	assert_int_equal(kha_drill_verdict_exit_code(r), 0);
	r->rolling = true;
	assert_int_equal(kha_drill_verdict_exit_code(r), KHA_DRILL_EXIT_ROLLING_STOPPED);
	r->rolling_completed = true;
	assert_int_equal(kha_drill_verdict_exit_code(r), 0);
	r->aborted = true;
	assert_int_equal(kha_drill_verdict_exit_code(r), KHA_DRILL_EXIT_STEP_FAILED);
	r->interrupted = true;
	r->interrupt_signal = 15;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_INTERRUPTED);
	assert_int_equal(kha_drill_verdict_exit_code(r), 143);
	/* write mode: a failed read-back ranks below the rest, a lost write above everything */
	r->writes.enabled = true;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_INTERRUPTED);
	r->interrupted = r->aborted = false;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_WRITES_UNVERIFIED);
	assert_int_equal(kha_drill_verdict_exit_code(r), 69);
	r->writes.verified = true;
	assert_int_equal(kha_drill_verdict_exit_code(r), 0);
	r->writes.lost = 1;
	r->interrupted = true;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_WRITES_LOST);
	assert_int_equal(kha_drill_verdict_exit_code(r), 2);
	kha_drill_report_free(r);
}

static void test_nothing_succeeded_and_the_floor(void **state)
{
	struct kha_drill_report *r = fake_report("xxxxxxxxxxmxxxx", "https://127.0.0.1:1/");
	struct kha_drill_report *low = fake_report("ooxxxxxxxxxxxxxxxxxxx", "http://x/");
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	(void)state;
	/* no --slo and not one probe succeeded: a failure of its own, not "ok" */
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_NOTHING_SUCCEEDED);
	assert_int_equal(kha_drill_verdict_exit_code(r), KHA_DRILL_EXIT_NOTHING);
	assert_string_equal(kha_drill_verdict_name(KHA_DRILL_VERDICT_NOTHING_SUCCEEDED),
			    "nothing_succeeded");
	out = open_memstream(&text, &size);
	assert_int_equal(kha_drill_report_print(out, r), 0);
	fclose(out);
	assert_non_null(strstr(text, "NOTHING SUCCEEDED: not one probe succeeded"));
	assert_non_null(strstr(text, "verdict       nothing_succeeded (exit 5)"));
	free(text);
	/* with --slo the missed SLO is the verdict */
	r->slo_percent = 99;
	assert_int_equal(kha_drill_verdict_exit_code(r), KHA_EXIT_DEGRADED);
	/* write mode: probes fine, not one write acknowledged */
	r->slo_percent = -1;
	r->stats.ok = r->stats.sent;
	r->writes = (struct kha_drill_writes){.enabled = true, .verified = true, .failed = 10};
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_NOTHING_SUCCEEDED);
	r->writes.acked = 1;
	assert_int_equal(kha_drill_report_verdict(r), KHA_DRILL_VERDICT_OK);

	/* under the floor without --slo: exit 0, but said loudly */
	assert_true(kha_drill_report_under_floor(low));
	assert_int_equal(kha_drill_verdict_exit_code(low), 0);
	out = open_memstream(&text, &size);
	assert_int_equal(kha_drill_report_print(out, low), 0);
	fclose(out);
	assert_non_null(strstr(text, "WARNING       availability 9.524% is under 90%"));
	free(text);
	text = kha_drill_report_json(low, false);
	assert_non_null(strstr(text, "\"under_floor\": true"));
	free(text);
	low->slo_percent = 5;
	assert_false(kha_drill_report_under_floor(low));
	kha_drill_report_free(low);
	kha_drill_report_free(r);
}

static void test_report_json_writes(void **state)
{
	struct kha_drill_report *r = fake_report(pattern, "https://127.0.0.1:2379");
	json_t *j, *w;
	char *text;

	(void)state;
	r->writes = (struct kha_drill_writes){.enabled = true,
					      .prefix = strdup("/p/"),
					      .endpoints = strdup("https://e:2379"),
					      .acked = 71,
					      .unknown = 27,
					      .verified = true,
					      .found = 80,
					      .lost = 2,
					      .unknown_applied = 11,
					      .unknown_missing = 16,
					      .cleaned = true};
	r->writes.lost_slots = calloc(2, sizeof(uint64_t));
	r->writes.lost_slots[0] = 4;
	r->writes.lost_slots[1] = 9;
	r->writes.n_lost_slots = 2;
	text = kha_drill_report_json(r, false);
	j = json_loads(text, 0, NULL);
	assert_non_null(j);
	w = json_object_get(j, "writes");
	assert_int_equal(json_integer_value(json_object_get(w, "lost")), 2);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(w, "lost_keys"), 1)), 9);
	assert_string_equal(json_string_value(json_object_get(w, "prefix")), "/p/");
	assert_true(json_is_null(json_object_get(w, "error")));
	assert_string_equal(json_string_value(json_object_get(j, "verdict")), "writes_lost");
	json_decref(j);
	free(text);
	kha_drill_report_free(r);
}

static void test_report_json_round_trips(void **state)
{
	struct kha_drill_report *r = fake_report(pattern, "http://x/");
	json_error_t err;
	char *text;
	json_t *j, *longest, *steps;

	(void)state;
	r->slo_percent = 99.9;
	text = kha_drill_report_json(r, true);
	assert_non_null(text);
	j = json_loads(text, 0, &err);
	if (!j)
		fail_msg("invalid JSON: %s: %s", err.text, text);
	assert_string_equal(json_string_value(json_object_get(j, "schema")), "kha.drill.report/v1");
	assert_string_equal(json_string_value(json_object_get(j, "verdict")), "slo_missed");
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 1);
	assert_true(json_is_false(json_object_get(j, "slo_met")));
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(j, "probes"), "missed")), 1);
	longest = json_object_get(json_object_get(j, "outage"), "longest");
	assert_float_equal(json_real_value(json_object_get(longest, "start_ms")), 310.0, 1e-6);
	assert_float_equal(json_real_value(json_object_get(longest, "end_ms")), 590.0, 1e-6);
	assert_float_equal(json_real_value(json_object_get(json_object_get(j, "fault"),
							   "time_to_first_failure_ms")),
			   10.0, 1e-6);
	assert_non_null(json_object_get(json_object_get(j, "phases"), "during"));
	steps = json_object_get(j, "steps");
	assert_int_equal(json_array_size(steps), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(steps, 1), "result")),
			    "failed");
	assert_int_equal(json_array_size(json_object_get(j, "probe_list")), strlen(pattern));
	assert_true(json_is_null(json_object_get(j, "rolling")));
	json_decref(j);
	free(text);
	kha_drill_report_free(r);
}

/*
 * A small XML well-formedness check: balanced, properly nested tags, quoted attributes, no raw
 * '<' or '&' in text outside entities. Returns the number of elements named `name` with the
 * given class attribute substring (or all of that name when cls is NULL), or -1 when broken.
 */
static int xml_count(const char *s, const char *name, const char *cls)
{
	const char *stack[64];
	size_t depth = 0;
	int count = 0;

	while (*s) {
		if (*s == '&') {
			if (strncmp(s, "&amp;", 5) && strncmp(s, "&lt;", 4) &&
			    strncmp(s, "&gt;", 4) && strncmp(s, "&quot;", 6) &&
			    strncmp(s, "&apos;", 6))
				return -1;
			s++;
			continue;
		}
		if (*s != '<') {
			if (*s == '>')
				return -1;
			s++;
			continue;
		}
		if (s[1] == '?') {
			s = strstr(s, "?>");
			if (!s)
				return -1;
			s += 2;
			continue;
		}
		if (s[1] == '/') {
			size_t n = strcspn(s + 2, ">");
			if (!depth || strncmp(stack[depth - 1], s + 2, n) != 0 ||
			    (stack[depth - 1][n] != ' ' && stack[depth - 1][n] != '>' &&
			     stack[depth - 1][n] != '/'))
				return -1;
			depth--;
			s += 2 + n + 1;
			continue;
		}
		/* a start tag: attributes are name="value" with no raw < inside */
		const char *tag = s + 1, *p = tag;
		bool in_quote = false;
		while (*p && (in_quote || *p != '>')) {
			if (*p == '"')
				in_quote = !in_quote;
			else if (*p == '<')
				return -1;
			p++;
		}
		if (!*p)
			return -1;
		size_t nlen = strcspn(tag, " />");
		if (strlen(name) == nlen && strncmp(tag, name, nlen) == 0) {
			char want[128];
			snprintf(want, sizeof(want), "class=\"%s", cls ? cls : "");
			const char *c = strstr(tag, "class=\"");
			/* the class list starts with cls, as a whole word */
			if (!cls || (c && c < p && strncmp(c, want, strlen(want)) == 0 &&
				     (c[strlen(want)] == '"' || c[strlen(want)] == ' ')))
				count++;
		}
		if (p[-1] != '/') {
			if (depth == KHA_ARRAY_SIZE(stack))
				return -1;
			stack[depth++] = tag;
		}
		s = p + 1;
	}
	return depth == 0 ? count : -1;
}

static char *svg_of(const struct kha_drill_report *r, bool linear)
{
	struct kha_drill_svg_opts o = {.linear = linear};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(kha_drill_svg_write(f, r, &o), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_svg_is_well_formed(void **state)
{
	struct kha_drill_report *r = fake_report(pattern, "https://a&b<c>/\"q\"");
	char *svg;

	(void)state;
	for (int linear = 0; linear < 2; linear++) {
		svg = svg_of(r, linear);
		assert_int_equal(xml_count(svg, "svg", NULL), 1);
		assert_int_equal(xml_count(svg, "rect", "band-ok"), 2);
		/* the missed slot inside the outage shows grey, splitting the red */
		assert_int_equal(xml_count(svg, "rect", "band-fail"), 2);
		assert_int_equal(xml_count(svg, "rect", "band-missed"), 1);
		assert_int_equal(xml_count(svg, "path", "latency"), 1);
		assert_int_equal(xml_count(svg, "g", "marker fault"), 1);
		assert_int_equal(xml_count(svg, "g", "marker recover"), 1);
		assert_int_equal(xml_count(svg, "rect", "outage"), 1);
		assert_int_equal(xml_count(svg, "g", "legend"), 1);
		assert_non_null(strstr(svg, "freeze &amp; &lt;stop&gt;"));
		assert_non_null(strstr(svg, "https://a&amp;b&lt;c&gt;/&quot;q&quot;"));
		assert_non_null(strstr(svg, linear ? "linear scale" : "log scale"));
		/* the latency line breaks at the outage: two pen-down moves */
		const char *d = strstr(svg, "class=\"latency\"");
		assert_non_null(d);
		d = strstr(d, " d=\"");
		int moves = 0;
		for (const char *c = d + 4; *c && *c != '"'; c++)
			moves += *c == 'M';
		assert_int_equal(moves, 2);
		free(svg);
	}
	kha_drill_report_free(r);
}

static void test_svg_of_empty_report(void **state)
{
	struct kha_drill_report *r = fake_report("", "tcp://127.0.0.1:1");
	char *svg;

	(void)state;
	r->interrupted = true;
	svg = svg_of(r, false);
	assert_true(xml_count(svg, "svg", NULL) == 1);
	assert_int_equal(xml_count(svg, "rect", "band-ok"), 0);
	assert_non_null(strstr(svg, "no probe sent, INTERRUPTED"));
	free(svg);
	kha_drill_report_free(r);
}

static void test_report_print_mentions_essentials(void **state)
{
	struct kha_drill_report *r = fake_report(pattern, "http://x/");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	r->slo_percent = 99;
	assert_int_equal(kha_drill_report_print(f, r), 0);
	fclose(f);
	assert_non_null(strstr(buf, "availability  72.449%"));
	assert_non_null(strstr(buf, "SLO 99%: MISSED"));
	assert_non_null(strstr(buf, "longest 280ms from 310ms to 590ms"));
	assert_non_null(strstr(buf, "verdict       slo_missed (exit 1)"));
	assert_non_null(strstr(buf, "no such process"));
	free(buf);
	kha_drill_report_free(r);
}

/* ---- Kubernetes mode ---- */

static void test_kube_list_decode_reads_values(void **state)
{
	const char *page = "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":"
			   "{\"resourceVersion\":\"42\",\"continue\":\"tok\"},\"items\":["
			   "{\"metadata\":{\"name\":\"p-w0000000000\"},\"data\":{\"seq\":\"0\"}},"
			   "{\"metadata\":{\"name\":\"p-w0000000002\"},\"data\":{\"seq\":\"7\"}},"
			   "{\"metadata\":{\"name\":\"p-w0000000003\"}},"
			   "{\"metadata\":{\"name\":\"p-w0000000004\"},\"data\":{\"seq\":\"-1\"}},"
			   "{\"metadata\":{\"name\":\"p-w0000000009\"},\"data\":{\"seq\":\"9\"}},"
			   "{\"metadata\":{\"name\":\"other\"},\"data\":{\"seq\":\"1\"}},"
			   "{\"metadata\":{\"name\":\"p-wx\"}}]}";
	uint64_t values[5] = {KHA_DRILL_NONE, KHA_DRILL_NONE, KHA_DRILL_NONE, KHA_DRILL_NONE,
			      KHA_DRILL_NONE};
	size_t found = 0, foreign = 0;
	char *cont = NULL;

	(void)state;
	assert_int_equal(kha_drill_kube_list_decode(page, strlen(page), "p-w", values, 5, &found,
						    &foreign, &cont, NULL),
			 0);
	assert_true(values[0] == 0);
	assert_true(values[1] == KHA_DRILL_NONE);     /* absent */
	assert_true(values[2] == 7);		      /* an update's value */
	assert_true(values[3] == KHA_DRILL_KUBE_BAD); /* no data at all */
	assert_true(values[4] == KHA_DRILL_KUBE_BAD); /* not a slot number */
	assert_int_equal(found, 4);
	assert_int_equal(foreign, 3); /* slot 9 beyond n, a foreign name, a non-number */
	assert_string_equal(cont, "tok");
	free(cont);
}

static void test_kube_list_decode_last_page_and_errors(void **state)
{
	const char *last = "{\"metadata\":{\"continue\":\"\"},\"items\":null}";
	const char *bad[] = {
		"[]",
		"{\"items\":{}}",
		"{\"items\":[{\"metadata\":{}}]}",
		"{\"items\":[1]}",
		"{\"items\":[",
		"",
	};
	uint64_t values[2] = {KHA_DRILL_NONE, KHA_DRILL_NONE};
	size_t found = 0, foreign = 0;
	char *cont = (char *)"untouched";
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_drill_kube_list_decode(last, strlen(last), "p", values, 2, &found,
						    &foreign, &cont, NULL),
			 0);
	assert_null(cont);
	assert_int_equal(found + foreign, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_drill_kube_list_decode(bad[i], strlen(bad[i]), "p", values, 2,
							    &found, &foreign, &cont, &d),
				 -EBADMSG);
		assert_true(d.msg[0] != '\0');
	}
}

/* A report of n write slots with the given results and statuses (the rest missed). */
static struct kha_drill_report *kube_writes(size_t n, const uint8_t *results,
					    const uint16_t *statuses)
{
	struct kha_drill_report *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->probes = calloc(n, sizeof(*r->probes));
	assert_non_null(r->probes);
	r->n_probes = n;
	for (size_t i = 0; i < n; i++) {
		r->probes[i].result = results[i];
		r->probes[i].status = statuses[i];
	}
	return r;
}

#define N  KHA_DRILL_NONE
#define OK KHA_DRILL_PROBE_OK
#define ST KHA_DRILL_PROBE_STATUS
#define TO KHA_DRILL_PROBE_TIMEOUT
#define RF KHA_DRILL_PROBE_REFUSED

static void test_kube_writes_check_updates_kept(void **state)
{
	/* slot: 0 create A, 1 update A, 2 create C, 3 update C, 4 create E, 5 update A (409),
	 * 6 create G (refused), 7 update C (timeout, applied), 8 create I (timeout, missing) */
	const uint64_t targets[] = {0, 0, 2, 2, 4, 0, 6, 2, 8};
	const uint8_t res[] = {OK, OK, OK, OK, OK, ST, RF, TO, TO};
	const uint16_t st[] = {201, 200, 201, 200, 201, 409, 0, 0, 0};
	uint64_t values[9] = {1, N, 7, N, 4, N, N, N, N};
	struct kha_drill_report *r = kube_writes(9, res, st);

	(void)state;
	kha_drill_kube_writes_check(r, targets, 9, values, 3, 0);
	assert_true(r->writes.verified);
	assert_int_equal(r->writes.acked, 5);
	assert_int_equal(r->writes.failed, 2); /* the conflict and the refused create */
	assert_int_equal(r->writes.unknown, 2);
	assert_int_equal(r->writes.lost, 0);
	assert_int_equal(r->writes.unknown_applied, 1);
	assert_int_equal(r->writes.unknown_missing, 1);
	assert_int_equal(r->writes.unexpected, 0);
	assert_int_equal(r->kube.updates, 4);
	assert_int_equal(r->kube.updates_acked, 2);
	assert_int_equal(r->kube.updates_conflicts, 1);
	assert_int_equal(r->kube.updates_lost, 0);
	kha_drill_report_free(r);
}

static void test_kube_writes_check_lost_update(void **state)
{
	/* A's acknowledged update (slot 1) rolled back to the create's value; C gone entirely;
	 * E holds a value never written to it; G holds a failed create's value */
	const uint64_t targets[] = {0, 0, 2, 2, 4, N, 6};
	const uint8_t res[] = {OK, OK, OK, OK, OK, KHA_DRILL_PROBE_MISSED, RF};
	const uint16_t st[] = {201, 200, 201, 200, 201, 0, 0};
	uint64_t values[7] = {0, N, N, N, 3, N, 6};
	struct kha_drill_report *r = kube_writes(7, res, st);

	(void)state;
	kha_drill_kube_writes_check(r, targets, 7, values, 3, 1);
	assert_int_equal(r->writes.acked, 5);
	/* the update of A, C's create and update, E's create (its value is C's) */
	assert_int_equal(r->writes.lost, 4);
	assert_int_equal(r->writes.n_lost_slots, 4);
	assert_int_equal(r->writes.lost_slots[0], 1);
	assert_int_equal(r->writes.lost_slots[1], 2);
	assert_int_equal(r->writes.lost_slots[2], 3);
	assert_int_equal(r->writes.lost_slots[3], 4);
	assert_int_equal(r->kube.updates, 2);
	assert_int_equal(r->kube.updates_lost, 2);
	/* the foreign item, E's stranger value, G's failed create showing */
	assert_int_equal(r->writes.unexpected, 3);
	kha_drill_report_free(r);
}

#undef N
#undef OK
#undef ST
#undef TO
#undef RF

static void test_kube_watch_longest_gap(void **state)
{
	struct kha_drill_watch_gap gaps[] = {
		{.broke_us = MS(1000), .back_us = MS(1400)},
		{.broke_us = MS(2000), .back_us = MS(9000), .clean = true}, /* timeoutSeconds */
		{.broke_us = MS(10000), .back_us = MS(11200)},
		{.broke_us = MS(20000), .back_us = KHA_DRILL_NONE}, /* open to the end */
	};
	struct kha_drill_kube k = {.gaps = gaps, .n_gaps = 3};

	(void)state;
	assert_int_equal(kha_drill_watch_longest_gap(&k, MS(30000)), MS(1200));
	k.n_gaps = 4;
	assert_int_equal(kha_drill_watch_longest_gap(&k, MS(30000)), MS(10000));
	k.n_gaps = 0;
	assert_int_equal(kha_drill_watch_longest_gap(&k, MS(30000)), 0);
}

static void test_kube_scenario_checks(void **state)
{
	struct kha_drill_scenario sc;
	struct kha_diag d = {};

	(void)state;
	kha_drill_scenario_init(&sc);
	assert_int_equal(kha_drill_scenario_set(&sc, "namespace", "x", NULL), 0);
	assert_int_equal(kha_drill_scenario_set(&sc, "target", "https://127.0.0.1:6443", NULL), 0);
	assert_int_equal(kha_drill_scenario_check(&sc, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "only makes sense with --kube"));
	assert_int_equal(kha_drill_scenario_set(&sc, "kube", NULL, NULL), 0);
	assert_int_equal(kha_drill_scenario_set(&sc, "namespace", "Bad_NS", NULL), 0);
	kha_diag_clear(&d);
	assert_int_equal(kha_drill_scenario_check(&sc, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "namespace"));
	assert_int_equal(kha_drill_scenario_set(&sc, "namespace", "kha-drill", NULL), 0);
	assert_int_equal(kha_drill_scenario_set(&sc, "write", NULL, NULL), 0);
	assert_int_equal(kha_drill_scenario_set(&sc, "watch-timeout", "10s", NULL), 0);
	assert_int_equal(sc.watch_timeout_us, 10 * KHA_USEC_PER_SEC);
	kha_diag_clear(&d);
	assert_int_equal(kha_drill_scenario_check(&sc, &d), 0);
	kha_drill_scenario_release(&sc);

	/* no target and no kubeconfig to take it from */
	kha_drill_scenario_init(&sc);
	assert_int_equal(kha_drill_scenario_set(&sc, "kube", NULL, NULL), 0);
	assert_int_equal(kha_drill_scenario_check(&sc, &d), -EINVAL);
	assert_int_equal(kha_drill_scenario_set(&sc, "kubeconfig", "/nonexistent/kc", NULL), 0);
	kha_diag_clear(&d);
	assert_true(kha_drill_scenario_check(&sc, &d) < 0);
	assert_non_null(strstr(d.msg, "kubeconfig"));
	kha_drill_scenario_release(&sc);
}

static void test_report_json_kube(void **state)
{
	struct kha_drill_report *r = fake_report(pattern, "https://127.0.0.1:7443");
	json_t *j, *w, *g;
	char *text;

	(void)state;
	r->kube = (struct kha_drill_kube){.enabled = true,
					  .namespace = strdup("default"),
					  .object = strdup("kha-drill-1-2"),
					  .label = strdup("kha-drill=1-2"),
					  .watch = true,
					  .watch_first_us = MS(20),
					  .watch_requests = 3,
					  .watch_events = 3,
					  .n_gaps = 2};
	r->kube.gaps = calloc(2, sizeof(*r->kube.gaps));
	r->kube.gaps[0] = (struct kha_drill_watch_gap){.broke_us = MS(100), .back_us = MS(350)};
	r->kube.gaps[1] =
		(struct kha_drill_watch_gap){.broke_us = MS(500), .back_us = KHA_DRILL_NONE};
	r->kube.longest_gap_us = MS(250);
	text = kha_drill_report_json(r, false);
	j = json_loads(text, 0, NULL);
	assert_non_null(j);
	w = json_object_get(json_object_get(j, "kube"), "watch");
	assert_int_equal(json_integer_value(json_object_get(w, "breaks")), 2);
	assert_true(json_real_value(json_object_get(w, "longest_reconnect_ms")) == 250.0);
	g = json_object_get(w, "list");
	assert_true(json_real_value(json_object_get(json_array_get(g, 0), "reconnect_ms")) ==
		    250.0);
	assert_true(json_is_null(json_object_get(json_array_get(g, 1), "reconnect_ms")));
	json_decref(j);
	free(text);
	kha_drill_report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_due_has_no_drift),
		cmocka_unit_test(test_slot_decide_counts_missed_slots),
		cmocka_unit_test(test_slot_decide_simulated_stall),
		cmocka_unit_test(test_percentile_nearest_rank),
		cmocka_unit_test(test_windows_found_and_measured),
		cmocka_unit_test(test_windows_ignore_missed_slots),
		cmocka_unit_test(test_analyze_counts_and_availability),
		cmocka_unit_test(test_analyze_phases_split_on_fault_and_recovery),
		cmocka_unit_test(test_analyze_failure_in_flight_at_fault),
		cmocka_unit_test(test_place_by_transfer_end),
		cmocka_unit_test(test_analyze_places_late_transfers_in_their_phase),
		cmocka_unit_test(test_windows_follow_time_not_slot_order),
		cmocka_unit_test(test_analyze_fault_times_follow_time_not_slot_order),
		cmocka_unit_test(test_expect_status_lists),
		cmocka_unit_test(test_scenario_parse_full),
		cmocka_unit_test(test_scenario_parse_rolling_list),
		cmocka_unit_test(test_scenario_errors_name_the_line),
		cmocka_unit_test(test_scenario_empty_file_sets_nothing),
		cmocka_unit_test(test_scenario_check_rejects_bad_setups),
		cmocka_unit_test(test_scenario_set_validates_values),
		cmocka_unit_test(test_verdict_and_exit_codes),
		cmocka_unit_test(test_report_json_round_trips),
		cmocka_unit_test(test_nothing_succeeded_and_the_floor),
		cmocka_unit_test(test_report_json_writes),
		cmocka_unit_test(test_svg_is_well_formed),
		cmocka_unit_test(test_svg_of_empty_report),
		cmocka_unit_test(test_report_print_mentions_essentials),
		cmocka_unit_test(test_kube_list_decode_reads_values),
		cmocka_unit_test(test_kube_list_decode_last_page_and_errors),
		cmocka_unit_test(test_kube_writes_check_updates_kept),
		cmocka_unit_test(test_kube_writes_check_lost_update),
		cmocka_unit_test(test_kube_watch_longest_gap),
		cmocka_unit_test(test_kube_scenario_checks),
		cmocka_unit_test(test_report_json_kube),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
