// SPDX-License-Identifier: MIT
/* Unit tests of kha proxy's pure parts: health state machine, balancer, backend specs/files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kha/proxy-backends.h"
#include "kha/proxy-health.h"
#include "kha/banned.h"

/* ---- health state machine ---- */

static void test_health_fall_to_down_and_rise_back(void **state)
{
	struct kha_proxy_health h;

	(void)state;
	kha_proxy_health_init(&h, 3, 2);
	assert_int_equal(h.state, KHA_PROXY_UP);
	/* the first failure already stops new connections (suspect), the fall-th is dead */
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_FAILED));
	assert_int_equal(h.state, KHA_PROXY_SUSPECT);
	assert_true(kha_proxy_health_transitioning(&h));
	assert_false(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_FAILED));
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_FAILED));
	assert_int_equal(h.state, KHA_PROXY_DOWN);
	assert_false(kha_proxy_health_transitioning(&h));
	/* rise: one success is not enough, two are */
	assert_false(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_true(kha_proxy_health_transitioning(&h));
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_int_equal(h.state, KHA_PROXY_UP);
	/* a failure in the middle of the rise restarts it */
	for (int i = 0; i < 3; i++)
		kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_FAILED));
	assert_int_equal(h.state, KHA_PROXY_DOWN);
	kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_FAILED));
	kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_int_equal(h.state, KHA_PROXY_DOWN);
	kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_int_equal(h.state, KHA_PROXY_UP);
}

static void test_health_suspect_recovers_on_one_success(void **state)
{
	struct kha_proxy_health h;

	(void)state;
	kha_proxy_health_init(&h, 3, 2);
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_PASSIVE));
	assert_int_equal(h.state, KHA_PROXY_SUSPECT);
	assert_true(h.check_now);
	h.check_now = false;
	/* passive failures alone never make a backend dead */
	for (int i = 0; i < 10; i++)
		kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_PASSIVE));
	assert_int_equal(h.state, KHA_PROXY_SUSPECT);
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_int_equal(h.state, KHA_PROXY_UP);
}

static void test_health_not_ready_drains(void **state)
{
	struct kha_proxy_health h;

	(void)state;
	kha_proxy_health_init(&h, 2, 2);
	assert_false(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_NOT_READY));
	assert_int_equal(h.state, KHA_PROXY_UP);
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_NOT_READY));
	assert_int_equal(h.state, KHA_PROXY_DRAINING);
	/* a draining backend that stops answering is dead */
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_FAILED));
	assert_int_equal(h.state, KHA_PROXY_DOWN);
	/* a dead backend answering "not ready" is alive but not ready */
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_NOT_READY));
	assert_int_equal(h.state, KHA_PROXY_DRAINING);
	/* passive failures do not touch draining or down backends */
	assert_false(kha_proxy_health_apply(&h, KHA_PROXY_EV_PASSIVE));
	assert_false(h.check_now);
	kha_ignore(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_true(kha_proxy_health_apply(&h, KHA_PROXY_EV_CHECK_OK));
	assert_int_equal(h.state, KHA_PROXY_UP);
	assert_string_equal(kha_proxy_state_name(KHA_PROXY_DRAINING), "draining");
}

/* ---- balancer ---- */

static void test_balance_leastconn_weighted(void **state)
{
	struct kha_proxy_candidate c[3] = {
		{.state = KHA_PROXY_UP, .weight = 1, .active = 4},
		{.state = KHA_PROXY_UP, .weight = 2, .active = 6},
		{.state = KHA_PROXY_UP, .weight = 1, .active = 2},
	};
	unsigned cursor = 0;

	(void)state;
	/* 4/1, 6/2 = 3, 2/1: the third */
	assert_int_equal(kha_proxy_balance_pick(c, 3, KHA_PROXY_LEASTCONN, &cursor), 2);
	c[2].active = 5;
	assert_int_equal(kha_proxy_balance_pick(c, 3, KHA_PROXY_LEASTCONN, &cursor), 1);
	/* weight 0 is never chosen */
	c[1].weight = 0;
	assert_int_equal(kha_proxy_balance_pick(c, 3, KHA_PROXY_LEASTCONN, &cursor), 0);
}

static void test_balance_ties_rotate(void **state)
{
	struct kha_proxy_candidate c[3] = {
		{.state = KHA_PROXY_UP, .weight = 1},
		{.state = KHA_PROXY_UP, .weight = 1},
		{.state = KHA_PROXY_UP, .weight = 1},
	};
	unsigned cursor = 0;
	int seen[3] = {};

	(void)state;
	for (int i = 0; i < 3; i++)
		seen[kha_proxy_balance_pick(c, 3, KHA_PROXY_LEASTCONN, &cursor)]++;
	assert_int_equal(seen[0], 1);
	assert_int_equal(seen[1], 1);
	assert_int_equal(seen[2], 1);
}

static void test_balance_tiers_and_exclusion(void **state)
{
	struct kha_proxy_candidate c[4] = {
		{.state = KHA_PROXY_DOWN, .weight = 1},
		{.state = KHA_PROXY_SUSPECT, .weight = 1},
		{.state = KHA_PROXY_UP, .weight = 1, .active = 100},
		{.state = KHA_PROXY_DRAINING, .weight = 1},
	};
	unsigned cursor = 0;

	(void)state;
	/* up wins whatever its load */
	assert_int_equal(kha_proxy_balance_pick(c, 4, KHA_PROXY_LEASTCONN, &cursor), 2);
	/* tried already: the next tier */
	c[2].excluded = true;
	assert_int_equal(kha_proxy_balance_pick(c, 4, KHA_PROXY_LEASTCONN, &cursor), 1);
	c[1].excluded = true;
	assert_int_equal(kha_proxy_balance_pick(c, 4, KHA_PROXY_ROUNDROBIN, &cursor), 3);
	c[3].excluded = true;
	assert_int_equal(kha_proxy_balance_pick(c, 4, KHA_PROXY_LEASTCONN, &cursor), 0);
	c[0].excluded = true;
	assert_int_equal(kha_proxy_balance_pick(c, 4, KHA_PROXY_LEASTCONN, &cursor), -1);
	assert_int_equal(kha_proxy_balance_pick(c, 0, KHA_PROXY_LEASTCONN, &cursor), -1);
}

/* Last resort (every backend down): one whose first byte timed out is chosen only after the
 * others, in both modes; in the UP tier `failing` changes nothing (SUSPECT does that job). */
static void test_balance_last_resort_puts_failing_last(void **state)
{
	struct kha_proxy_candidate c[3] = {
		{.state = KHA_PROXY_DOWN, .weight = 1, .failing = true},
		{.state = KHA_PROXY_DOWN, .weight = 1, .active = 50},
		{.state = KHA_PROXY_DOWN, .weight = 1, .active = 60},
	};
	struct kha_proxy_candidate u[2] = {
		{.state = KHA_PROXY_UP, .weight = 1, .failing = true},
		{.state = KHA_PROXY_UP, .weight = 1, .active = 5},
	};
	unsigned cursor = 0;

	(void)state;
	for (int i = 0; i < 20; i++) {
		int k = kha_proxy_balance_pick(
			c, 3, i % 2 ? KHA_PROXY_LEASTCONN : KHA_PROXY_ROUNDROBIN, &cursor);
		assert_true(k == 1 || k == 2);
	}
	c[1].excluded = c[2].excluded = true;
	assert_int_equal(kha_proxy_balance_pick(c, 3, KHA_PROXY_LEASTCONN, &cursor), 0);
	/* a failing DRAINING one still comes before a DOWN one */
	c[0].state = KHA_PROXY_DRAINING;
	c[1].excluded = c[2].excluded = false;
	assert_int_equal(kha_proxy_balance_pick(c, 3, KHA_PROXY_LEASTCONN, &cursor), 0);
	assert_int_equal(kha_proxy_balance_pick(u, 2, KHA_PROXY_LEASTCONN, &cursor), 0);
}

static void test_balance_roundrobin_follows_weights(void **state)
{
	struct kha_proxy_candidate c[3] = {
		{.state = KHA_PROXY_UP, .weight = 5},
		{.state = KHA_PROXY_UP, .weight = 1},
		{.state = KHA_PROXY_UP, .weight = 1},
	};
	unsigned cursor = 0;
	int seen[3] = {}, run = 0, max_run = 0, last = -1;

	(void)state;
	for (int i = 0; i < 70; i++) {
		int k = kha_proxy_balance_pick(c, 3, KHA_PROXY_ROUNDROBIN, &cursor);
		seen[k]++;
		run = k == last ? run + 1 : 1;
		max_run = KHA_MAX(max_run, run);
		last = k;
	}
	assert_int_equal(seen[0], 50);
	assert_int_equal(seen[1], 10);
	assert_int_equal(seen[2], 10);
	/* smooth: the heavy backend never gets its whole share in one burst */
	assert_true(max_run < 5);
}

/* ---- specs and files ---- */

static void test_spec_parse(void **state)
{
	struct kha_proxy_spec s;
	struct kha_diag d = {};
	static const char *const bad[] = {
		"",
		"10.0.0.1",
		"10.0.0.1:",
		"10.0.0.1:0",
		"10.0.0.1:70000",
		":6443",
		"10.0.0.1:6443,weight=0",
		"10.0.0.1:6443,weight=x",
		"10.0.0.1:6443,w=2",
		"a b:1",
		"[::1:6443",
		"::1:6443",
	};

	(void)state;
	assert_int_equal(kha_proxy_spec_parse("10.0.0.11:6443", &s, &d), 0);
	assert_string_equal(s.addr, "10.0.0.11:6443");
	assert_int_equal(s.weight, 1);
	assert_int_equal(kha_proxy_spec_parse("[fd00::1]:6443,weight=7", &s, &d), 0);
	assert_string_equal(s.addr, "[fd00::1]:6443");
	assert_int_equal(s.weight, 7);
	assert_int_equal(kha_proxy_spec_parse("master-1.example:6443", &s, &d), 0);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_proxy_spec_parse(bad[i], &s, &d), -EINVAL);
		assert_false(kha_diag_empty(&d));
	}
}

static void test_backends_file_formats(void **state)
{
	const char *mixed = "# masters\n"
			    "- 10.0.0.11:6443\n"
			    "- 10.0.0.12:6443,weight=2\n"
			    "- address: 10.0.0.13:6443\n"
			    "  weight: 3\n"
			    "- 10.0.0.11:6443,weight=4\n"; /* a duplicate: the last wins */
	const char *mapping = "backends:\n  - 10.0.0.1:6443\n";
	struct kha_proxy_spec_list l = {};
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_proxy_backends_parse(mixed, strlen(mixed), "f", &l, &d), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].addr, "10.0.0.11:6443");
	assert_int_equal(l.v[0].weight, 4);
	assert_int_equal(l.v[1].weight, 2);
	assert_string_equal(l.v[2].addr, "10.0.0.13:6443");
	assert_int_equal(l.v[2].weight, 3);
	assert_int_equal(kha_proxy_backends_parse(mapping, strlen(mapping), "f", &l, &d), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(kha_proxy_backends_parse("", 0, "f", &l, &d), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(kha_proxy_backends_parse("[]\n", 3, "f", &l, &d), 0);
	assert_int_equal(l.n, 0);
	kha_proxy_spec_list_release(&l);
}

static void test_backends_file_errors_name_the_line(void **state)
{
	static const struct {
		const char *text, *expect;
	} bad[] = {
		{"- 10.0.0.1:6443\n- nope\n", "f:2"},
		{"- address: 10.0.0.1:6443\n  weight: 0\n", "f:2: weight '0'"},
		{"- address: 10.0.0.1:6443\n  port: 1\n", "unknown key 'port'"},
		{"- weight: 2\n", "entry without an address"},
		{"listen: x\n", "f:1"},
		{"- [a, b]\n", "expected an address"},
		{"- 10.0.0.1:6443\n- \"unterminated\n", "malformed YAML"},
		{"just a string\n", "expected a list"},
	};
	struct kha_proxy_spec_list l = {};
	struct kha_diag d = {};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(
			kha_proxy_backends_parse(bad[i].text, strlen(bad[i].text), "f", &l, &d),
			-EINVAL);
		if (!strstr(d.msg, bad[i].expect))
			fail_msg("'%s': got '%s'", bad[i].text, d.msg);
		assert_int_equal(l.n, 0);
	}
}

static void test_backends_file_save_and_load_round_trip(void **state)
{
	char dir[] = "/tmp/kha-test-proxy-XXXXXX", path[64];
	struct kha_proxy_spec_list l = {}, back = {};
	struct kha_proxy_spec s;
	struct kha_diag d = {};

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.yaml", dir);
	assert_int_equal(kha_proxy_spec_parse("10.0.0.1:6443,weight=3", &s, &d), 0);
	assert_int_equal(kha_proxy_spec_list_add(&l, &s), 0);
	assert_int_equal(kha_proxy_spec_parse("[fd00::2]:6443", &s, &d), 0);
	assert_int_equal(kha_proxy_spec_list_add(&l, &s), 0);
	assert_int_equal(kha_proxy_backends_save(path, &l, &d), 0);
	assert_int_equal(kha_proxy_backends_load(path, &back, &d), 0);
	assert_true(kha_proxy_spec_list_equal(&l, &back));
	unlink(path);
	assert_int_equal(kha_proxy_backends_load(path, &back, &d), -ENOENT);
	assert_int_equal(rmdir(dir), 0);
	kha_proxy_spec_list_release(&l);
	kha_proxy_spec_list_release(&back);
}

/*
 * --state-file in a directory others can write: a symbolic link planted at the name of the old
 * temporary file (<path>.tmp.<pid>) or at the state file itself never makes the proxy write
 * through it (the file used to be opened O_CREAT|O_TRUNC, following the link).
 */
static void test_backends_file_save_follows_no_symlink(void **state)
{
	char dir[] = "/tmp/kha-test-proxy-XXXXXX", path[80], tmp[120], victim[80], buf[64] = {0};
	struct kha_proxy_spec_list l = {}, back = {};
	struct kha_proxy_spec s;
	struct kha_diag d = {};
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.yaml", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	f = fopen(victim, "we");
	assert_non_null(f);
	fputs("precious\n", f);
	fclose(f);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(kha_proxy_spec_parse("10.0.0.1:6443", &s, &d), 0);
	assert_int_equal(kha_proxy_spec_list_add(&l, &s), 0);
	assert_int_equal(kha_proxy_backends_save(path, &l, &d), 0);
	f = fopen(victim, "re");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "precious\n");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(kha_proxy_backends_load(path, &back, &d), 0);
	assert_true(kha_proxy_spec_list_equal(&l, &back));
	/* the state file itself a link: replaced by a file, the target untouched */
	unlink(path);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(kha_proxy_backends_save(path, &l, &d), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 9);
	unlink(path);
	unlink(tmp);
	unlink(victim);
	assert_int_equal(rmdir(dir), 0);
	kha_proxy_spec_list_release(&l);
	kha_proxy_spec_list_release(&back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_fall_to_down_and_rise_back),
		cmocka_unit_test(test_health_suspect_recovers_on_one_success),
		cmocka_unit_test(test_health_not_ready_drains),
		cmocka_unit_test(test_balance_leastconn_weighted),
		cmocka_unit_test(test_balance_ties_rotate),
		cmocka_unit_test(test_balance_tiers_and_exclusion),
		cmocka_unit_test(test_balance_roundrobin_follows_weights),
		cmocka_unit_test(test_balance_last_resort_puts_failing_last),
		cmocka_unit_test(test_spec_parse),
		cmocka_unit_test(test_backends_file_formats),
		cmocka_unit_test(test_backends_file_errors_name_the_line),
		cmocka_unit_test(test_backends_file_save_and_load_round_trip),
		cmocka_unit_test(test_backends_file_save_follows_no_symlink),
	};
	return cmocka_run_group_tests_name("proxy", tests, NULL, NULL);
}
