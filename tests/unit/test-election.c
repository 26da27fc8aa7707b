// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/election: the fencing arithmetic on the fake clock, candidate ordering,
 * the maintenance-window grammar, FleetLock bodies and routing, client-go's Lease rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <utime.h>

#include "kha/election.h"
#include "kha/file.h"
#include "fake-clock.h"
#include "kha/banned.h"

#define MS KHA_USEC_PER_MSEC
#define S  KHA_USEC_PER_SEC

/* ---- fencing -------------------------------------------------------------------------------- */

static void test_fence_rejects_deadline_not_below_ttl(void **state)
{
	struct kha_elect_fence f;
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_elect_fence_init(&f, 10 * S, 10 * S, 0, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "shorter than the TTL"));
	assert_int_equal(kha_elect_fence_init(&f, 10 * S, 12 * S, 0, NULL), -EINVAL);
	assert_int_equal(kha_elect_fence_init(&f, 0, 0, 0, NULL), -EINVAL);
	assert_int_equal(kha_elect_fence_init(&f, 10 * S, 6 * S, 0, NULL), 0);
}

static void test_fence_counts_from_the_renewal_start(void **state)
{
	struct kha_elect_fence f;
	uint64_t started;

	(void)state;
	assert_int_equal(kha_elect_fence_init(&f, 3 * S, 2 * S, 5 * S, NULL), 0);
	assert_false(kha_elect_fence_ok(&f, kha_now_us())); /* never renewed: never ok */
	assert_int_equal(kha_elect_fence_deadline(&f), 0);

	/* a keep-alive starts now and is answered 900 ms later: the clock runs from its start */
	started = kha_now_us();
	fake_now += 900 * MS;
	kha_elect_fence_renewed(&f, started);
	assert_int_equal(kha_elect_fence_deadline(&f), started + 2 * S);
	assert_int_equal(kha_elect_fence_expiry(&f), started + 3 * S);
	fake_now = started + 2 * S - 1;
	assert_true(kha_elect_fence_ok(&f, kha_now_us()));
	fake_now = started + 2 * S;
	assert_false(kha_elect_fence_ok(&f, kha_now_us()));

	/* an older renewal answered late never moves the deadline back */
	kha_elect_fence_renewed(&f, started - S);
	assert_int_equal(kha_elect_fence_deadline(&f), started + 2 * S);
	kha_elect_fence_renewed(&f, started + S);
	assert_int_equal(kha_elect_fence_deadline(&f), started + 3 * S);
	kha_elect_fence_reset(&f);
	assert_false(kha_elect_fence_ok(&f, kha_now_us()));
}

static void test_fence_kill_before_expiry(void **state)
{
	struct kha_elect_fence f;
	uint64_t t0 = kha_now_us(), term, kill;

	(void)state;
	/* TTL 3 s, renew deadline 2 s, grace 5 s: the grace cannot be honoured */
	assert_int_equal(kha_elect_fence_init(&f, 3 * S, 2 * S, 5 * S, NULL), 0);
	kha_elect_fence_renewed(&f, t0);
	term = kha_elect_fence_deadline(&f);
	kill = kha_elect_fence_kill_at(&f, term);
	assert_true(kill > term);
	assert_true(kill + f.margin_us <= kha_elect_fence_expiry(&f));
	assert_int_equal(f.margin_us, 300 * MS);

	/* a short grace is honoured */
	assert_int_equal(kha_elect_fence_init(&f, 3 * S, 2 * S, 100 * MS, NULL), 0);
	kha_elect_fence_renewed(&f, t0);
	assert_int_equal(kha_elect_fence_kill_at(&f, t0 + 2 * S), t0 + 2 * S + 100 * MS);

	/* SIGTERM after the expiry already passed: SIGKILL at once */
	assert_int_equal(kha_elect_fence_kill_at(&f, t0 + 10 * S), t0 + 10 * S);

	/* a tiny gap between deadline and TTL: the margin shrinks to fit */
	assert_int_equal(kha_elect_fence_init(&f, 2 * S, 1900 * MS, S, NULL), 0);
	assert_true(f.margin_us <= 100 * MS);
}

static void test_fence_call_timeout_within_budget(void **state)
{
	struct kha_elect_fence f;
	uint64_t t0 = kha_now_us();

	(void)state;
	assert_int_equal(kha_elect_fence_init(&f, 10 * S, 6 * S, 0, NULL), 0);
	/* no renewal yet: the configured timeout */
	assert_int_equal(kha_elect_fence_call_timeout(&f, t0, 5 * S, 100 * MS), 5 * S);
	kha_elect_fence_renewed(&f, t0);
	assert_int_equal(kha_elect_fence_call_timeout(&f, t0, 5 * S, 100 * MS), 5 * S);
	assert_int_equal(kha_elect_fence_call_timeout(&f, t0 + 4 * S, 5 * S, 100 * MS), 2 * S);
	assert_int_equal(kha_elect_fence_call_timeout(&f, t0 + 6 * S, 5 * S, 100 * MS), 100 * MS);
}

/* ---- candidates ----------------------------------------------------------------------------- */

static struct kha_etcd_kv kv(const char *key, int64_t rev)
{
	return (struct kha_etcd_kv){.key = (char *)key,
				    .key_len = strlen(key),
				    .value = (char *)"v",
				    .value_len = 1,
				    .create_revision = rev};
}

static void test_elect_key_is_etcdctl_format(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(kha_elect_key(buf, sizeof(buf), "myelect", 0x2040a21b9d129905LL), 24);
	assert_string_equal(buf, "myelect/2040a21b9d129905");
	assert_int_equal(kha_elect_key(buf, sizeof(buf), "e", 0x7), 3);
	assert_string_equal(buf, "e/7");
	assert_int_equal(kha_elect_key(buf, 8, "toolongname", 1), -ENAMETOOLONG);
}

static void test_sem_position_orders_by_create_revision(void **state)
{
	/* key names sort differently from creation order on purpose */
	struct kha_etcd_kv kvs[] = {kv("e/c", 7), kv("e/a", 12), kv("e/b", 5), kv("e/d", 9)};
	struct kha_lock_sem_position p;
	size_t order[4];

	(void)state;
	assert_int_equal(kha_lock_sem_position(kvs, 4, "e/b", &p), 0);
	assert_int_equal(p.rank, 0);
	assert_int_equal(p.pred, -1);
	assert_int_equal(p.first, 2);

	assert_int_equal(kha_lock_sem_position(kvs, 4, "e/a", &p), 0);
	assert_int_equal(p.rank, 3);
	assert_int_equal(p.pred, 3); /* e/d, created at 9, just before 12 */
	assert_int_equal(p.my_rev, 12);

	assert_int_equal(kha_lock_sem_position(kvs, 4, "e/d", &p), 0);
	assert_int_equal(p.rank, 2);
	assert_int_equal(p.pred, 0);

	assert_int_equal(kha_lock_sem_position(kvs, 4, "e/zz", &p), -ENOENT);
	assert_int_equal(p.first, 2);
	assert_int_equal(p.mine, -1);
	assert_int_equal(kha_lock_sem_position(kvs, 0, "e/a", &p), -ENOENT);
	assert_int_equal(p.first, -1);

	kha_lock_sem_order(kvs, 4, order);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 0);
	assert_int_equal(order[2], 3);
	assert_int_equal(order[3], 1);
}

static void test_lock_value_round_trip(void **state)
{
	struct kha_lock_entry e = {0};
	char *v = kha_lock_value("node \"a\"", 2, 1700000000123456LL, true);

	(void)state;
	assert_non_null(v);
	assert_int_equal(kha_lock_value_decode(v, strlen(v), &e), 0);
	assert_string_equal(e.id, "node \"a\"");
	assert_int_equal(e.slots, 2);
	assert_int_equal(e.since_wall_us, 1700000000123456LL);
	assert_true(e.fleetlock);
	free(e.id);
	free(v);
	/* an etcdctl proposal is plain text */
	assert_int_equal(kha_lock_value_decode("plain", 5, &e), 0);
	assert_string_equal(e.id, "plain");
	assert_int_equal(e.slots, 0);
	free(e.id);
}

static void test_restart_policy_parse(void **state)
{
	enum kha_elect_restart r;

	(void)state;
	assert_int_equal(kha_elect_restart_parse("no", &r), 0);
	assert_int_equal(r, KHA_ELECT_RESTART_NO);
	assert_int_equal(kha_elect_restart_parse("on-failure", &r), 0);
	assert_int_equal(r, KHA_ELECT_RESTART_ON_FAILURE);
	assert_int_equal(kha_elect_restart_parse("always", &r), 0);
	assert_int_equal(r, KHA_ELECT_RESTART_ALWAYS);
	assert_int_equal(kha_elect_restart_parse("sometimes", &r), -EINVAL);
}

static void test_timers_default_from_the_ttl(void **state)
{
	struct kha_elect_timers t = {0};
	struct kha_diag d = {};

	(void)state;
	/* etcd: 10s, deadline 2/3 of it, no retry period */
	assert_int_equal(kha_elect_timers_derive(&t, false, &d), 0);
	assert_int_equal(t.ttl_us, 10 * S);
	assert_int_equal(t.renew_deadline_us, 10 * S * 2 / 3);
	assert_int_equal(t.retry_period_us, 0);
	/* a Lease: client-go's 15s / 10s / 2s */
	t = (struct kha_elect_timers){0};
	assert_int_equal(kha_elect_timers_derive(&t, true, &d), 0);
	assert_int_equal(t.ttl_us, 15 * S);
	assert_int_equal(t.renew_deadline_us, 10 * S);
	assert_int_equal(t.retry_period_us, 2 * S);
	/* a short Lease: the deadline and the period shrink with the TTL */
	t = (struct kha_elect_timers){.ttl_us = 3 * S};
	assert_int_equal(kha_elect_timers_derive(&t, true, &d), 0);
	assert_int_equal(t.renew_deadline_us, 2 * S);
	assert_int_equal(t.retry_period_us, 1 * S);
	/* what was given is kept */
	t = (struct kha_elect_timers){.ttl_us = 4 * S, .renew_deadline_us = 3 * S};
	assert_int_equal(kha_elect_timers_derive(&t, false, &d), 0);
	assert_int_equal(t.renew_deadline_us, 3 * S);
}

static void test_timers_rejected_together_name_the_flag(void **state)
{
	struct kha_elect_timers t = {.ttl_us = 10 * S, .renew_deadline_us = 10 * S};
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_elect_timers_derive(&t, false, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "--renew-deadline must be shorter than --ttl"));
	t = (struct kha_elect_timers){.ttl_us = 500 * MS};
	assert_int_equal(kha_elect_timers_derive(&t, false, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "--ttl: etcd leases are whole seconds"));
	/* a Lease takes sub-second TTLs, but its retry period must come before the deadline */
	t = (struct kha_elect_timers){.ttl_us = 500 * MS};
	assert_int_equal(kha_elect_timers_derive(&t, true, &d), 0);
	t = (struct kha_elect_timers){.ttl_us = 15 * S, .retry_period_us = 10 * S};
	assert_int_equal(kha_elect_timers_derive(&t, true, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "--retry-period must be shorter than --renew-deadline"));
}

/* ---- windows -------------------------------------------------------------------------------- */

static struct tm at(int wday, int hour, int min)
{
	struct tm tm = {0};

	tm.tm_wday = wday;
	tm.tm_hour = hour;
	tm.tm_min = min;
	return tm;
}

static bool in(const struct kha_lock_window_set *ws, int wday, int hour, int min)
{
	struct tm tm = at(wday, hour, min);

	return kha_lock_window_contains(ws, &tm);
}

static void test_window_weekdays(void **state)
{
	struct kha_lock_window_set ws;

	(void)state;
	assert_int_equal(kha_lock_window_parse("Mon..Fri 02:00-05:00", &ws, NULL), 0);
	assert_int_equal(ws.n, 1);
	assert_int_equal(ws.w[0].days, 0x3e);
	assert_true(in(&ws, 1, 2, 0));
	assert_true(in(&ws, 5, 4, 59));
	assert_false(in(&ws, 5, 5, 0)); /* the end is excluded */
	assert_false(in(&ws, 1, 1, 59));
	assert_false(in(&ws, 6, 3, 0)); /* Saturday */
	assert_false(in(&ws, 0, 3, 0)); /* Sunday */
}

static void test_window_midnight_and_week_wrap(void **state)
{
	struct kha_lock_window_set ws;

	(void)state;
	/* Fri..Mon wraps the week; 22:00-06:00 crosses midnight and belongs to its start day */
	assert_int_equal(kha_lock_window_parse("fri..mon 22:00-06:00", &ws, NULL), 0);
	assert_int_equal(ws.w[0].days, (1 << 5) | (1 << 6) | (1 << 0) | (1 << 1));
	assert_true(in(&ws, 5, 23, 0));	 /* Friday evening */
	assert_true(in(&ws, 6, 5, 0));	 /* Saturday morning (Friday's window) */
	assert_true(in(&ws, 2, 5, 59));	 /* Tuesday morning: Monday's window */
	assert_false(in(&ws, 2, 23, 0)); /* Tuesday evening */
	assert_false(in(&ws, 5, 5, 0));	 /* Friday morning: Thursday has no window */

	assert_int_equal(kha_lock_window_parse("Sat,Sun 00:00-24:00; 12:00-12:30", &ws, NULL), 0);
	assert_int_equal(ws.n, 2);
	assert_true(in(&ws, 6, 0, 0));
	assert_true(in(&ws, 0, 23, 59));
	assert_true(in(&ws, 3, 12, 15)); /* no days: every day */
	assert_false(in(&ws, 3, 12, 30));
}

static void test_window_errors_name_the_place(void **state)
{
	static const char *const bad[] = {
		"",
		"Mon",
		"Mon 02:00",
		"Mon 02:00-",
		"Xyz 02:00-03:00",
		"25:00-26:00",
		"02:60-03:00",
		"24:00-01:00",
		"02:00-02:00",
		"Mon02:00-03:00",
		"Mon..Fri",
		"2:00-3:00",
		"02:00-03:00;",
		"02:00-03:00 x",
		"Monday 02:00-03:00",
	};
	struct kha_lock_window_set ws;
	struct kha_diag d = {};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_lock_window_parse(bad[i], &ws, &d), -EINVAL);
		assert_non_null(strstr(d.msg, "offset"));
	}
}

/* ---- FleetLock ------------------------------------------------------------------------------ */

static void test_fleetlock_parse_accepts_zincati_bodies(void **state)
{
	static const char body[] =
		"{\"client_params\":{\"group\":\"default\",\"id\":\"c988d2509fdf4cdcbed39037c56406fb\"}}";
	struct kha_fleetlock_params p;

	(void)state;
	assert_int_equal(kha_fleetlock_parse(body, strlen(body), &p, NULL), 0);
	assert_string_equal(p.id, "c988d2509fdf4cdcbed39037c56406fb");
	assert_string_equal(p.group, "default");
}

static void test_fleetlock_parse_rejects_with_reason(void **state)
{
	static const struct {
		const char *body;
		const char *why;
	} bad[] = {
		{"", "empty"},
		{"{", "not JSON"},
		{"[]", "not a JSON object"},
		{"{}", "client_params is missing"},
		{"{\"client_params\":1}", "not an object"},
		{"{\"client_params\":{\"group\":\"default\"}}", "id is missing"},
		{"{\"client_params\":{\"id\":\"\",\"group\":\"default\"}}", "id is empty"},
		{"{\"client_params\":{\"id\":7,\"group\":\"default\"}}", "id is not a string"},
		{"{\"client_params\":{\"id\":\"a\"}}", "group is missing"},
		{"{\"client_params\":{\"id\":\"a\",\"group\":\"a b\"}}", "outside"},
		{"{\"client_params\":{\"id\":\"a\\nb\",\"group\":\"x\"}}", "control character"},
		{"{\"client_params\":{\"id\":\"a\\u0000b\",\"group\":\"x\"}}", "NUL"},
	};
	struct kha_fleetlock_params p;
	struct kha_diag d = {};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_fleetlock_parse(bad[i].body, strlen(bad[i].body), &p, &d),
				 -EBADMSG);
		if (!strstr(d.msg, bad[i].why))
			fail_msg("body %s: reason '%s' lacks '%s'", bad[i].body, d.msg, bad[i].why);
	}
}

static void test_fleetlock_handle_checks_before_etcd(void **state)
{
	static const char body[] = "{\"client_params\":{\"id\":\"n1\",\"group\":\"default\"}}";
	struct kha_fleetlock_opts o = {.lock = "reboot", .slots = 1};
	struct kha_fleetlock_result res;

	(void)state;
	/* the etcd client is NULL: none of these may reach etcd */
	kha_fleetlock_handle(NULL, &o, "POST", "/v1/pre-reboot", NULL, body, strlen(body), &res);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.kind, "missing_fleet_lock_protocol_header");
	kha_fleetlock_handle(NULL, &o, "POST", "/v1/pre-reboot", "false", body, strlen(body), &res);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.kind, "bad_fleet_lock_protocol_header");
	kha_fleetlock_handle(NULL, &o, "POST", "/v1/steady-state", "true", "{", 1, &res);
	assert_int_equal(res.status, 400);
	assert_string_equal(res.kind, "bad_request_body");
	assert_non_null(strstr(res.value, "not JSON"));
	kha_fleetlock_handle(NULL, &o, "GET", "/v1/pre-reboot", "true", body, strlen(body), &res);
	assert_int_equal(res.status, 405);
	kha_fleetlock_handle(NULL, &o, "POST", "/v2/pre-reboot", "true", body, strlen(body), &res);
	assert_int_equal(res.status, 404);
}

static void test_fleetlock_binds_ids_and_groups(void **state)
{
	static const char body[] = "{\"client_params\":{\"id\":\"n1\",\"group\":\"default\"}}";
	static const char workers[] = "{\"client_params\":{\"id\":\"n1\",\"group\":\"workers\"}}";
	const char *const groups[] = {"workers"};
	struct kha_fleetlock_opts o = {.lock = "reboot", .slots = 1};
	struct kha_httpd_tls_peer n1 = {.verified = true, .n = 2, .names = {"n1", "n1.example"}};
	struct kha_httpd_tls_peer n2 = {.verified = true, .n = 1, .names = {"n2"}};
	struct kha_fleetlock_params p;
	struct kha_fleetlock_result res;
	struct kha_fleetlock_idmap map = {};
	struct kha_diag d = {};
	char path[] = "/tmp/kha-test-idmap-XXXXXX";
	int fd;

	(void)state;
	/* only "default" without --group; only the listed ones with it */
	assert_true(kha_fleetlock_check(&o, "POST", "/v1/pre-reboot", "true", body, strlen(body),
					NULL, &p, &res));
	assert_false(kha_fleetlock_check(&o, "POST", "/v1/pre-reboot", "true", workers,
					 strlen(workers), NULL, &p, &res));
	assert_int_equal(res.status, 403);
	assert_string_equal(res.kind, "group_not_allowed");
	o.groups = groups;
	o.n_groups = 1;
	assert_true(kha_fleetlock_check(&o, "POST", "/v1/pre-reboot", "true", workers,
					strlen(workers), NULL, &p, &res));
	assert_false(kha_fleetlock_check(&o, "POST", "/v1/pre-reboot", "true", body, strlen(body),
					 NULL, &p, &res));
	/* the id is one of the certificate's names */
	assert_true(kha_fleetlock_check(&o, "POST", "/v1/steady-state", "true", workers,
					strlen(workers), &n1, &p, &res));
	assert_false(kha_fleetlock_check(&o, "POST", "/v1/steady-state", "true", workers,
					 strlen(workers), &n2, &p, &res));
	assert_int_equal(res.status, 403);
	assert_string_equal(res.kind, "id_not_allowed");
	assert_non_null(strstr(res.value, "n2"));
	/* or, with a map, the ids listed for one of its names, and no other */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "# certificate name, then ids\n\n n2 n1  m-1 # two\nn3 x\n", 53),
			 53);
	close(fd);
	assert_int_equal(kha_fleetlock_idmap_load(path, &map, &d), 0);
	assert_int_equal(map.n, 2);
	o.idmap = &map;
	assert_true(kha_fleetlock_id_allowed(&o, &n2, "n1"));
	assert_true(kha_fleetlock_id_allowed(&o, &n2, "m-1"));
	assert_false(kha_fleetlock_id_allowed(&o, &n2, "n2"));
	assert_false(kha_fleetlock_id_allowed(&o, &n1, "n1"));
	assert_true(kha_fleetlock_id_allowed(&o, NULL, "anything")); /* no client certificates */
	kha_fleetlock_idmap_release(&map);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(write(fd, "n2 a\nlonely\n", 12), 12);
	close(fd);
	assert_int_equal(kha_fleetlock_idmap_load(path, &map, &d), -EINVAL);
	assert_non_null(strstr(d.msg, ":2: 'lonely' names no id"));
	unlink(path);
	assert_int_equal(kha_fleetlock_idmap_load(path, &map, &d), -ENOENT);
	assert_true(kha_fleetlock_group_valid("a.b-1"));
	assert_false(kha_fleetlock_group_valid(""));
	assert_false(kha_fleetlock_group_valid("a b"));
}

static void test_fleetlock_groups_map_to_locks(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(kha_fleetlock_lock_name(buf, sizeof(buf), "reboot", "default"),
			    "reboot");
	assert_string_equal(kha_fleetlock_lock_name(buf, sizeof(buf), "reboot", "workers"),
			    "reboot.workers");
}

/* ---- Lease rules (client-go) ---------------------------------------------------------------- */

static struct kha_kube_lease lease(const char *holder, int32_t dur, int32_t transitions,
				   const char *rv, int64_t renew)
{
	struct kha_kube_lease l = {0};

	snprintf(l.namespace, sizeof(l.namespace), "kube-system");
	snprintf(l.name, sizeof(l.name), "kha");
	snprintf(l.holder_identity, sizeof(l.holder_identity), "%s", holder);
	snprintf(l.resource_version, sizeof(l.resource_version), "%s", rv);
	l.lease_duration_s = dur;
	l.lease_transitions = transitions;
	l.acquire_time_us = 1000;
	l.renew_time_us = renew;
	return l;
}

static void test_lease_create_when_absent(void **state)
{
	struct kha_elect_lease_elector e;
	struct kha_kube_lease rec;

	(void)state;
	kha_elect_lease_elector_init(&e, "a", 15);
	assert_int_equal(kha_elect_lease_decide(&e, NULL, kha_now_us(), 5000, &rec),
			 KHA_ELECT_LEASE_CREATE);
	assert_string_equal(rec.holder_identity, "a");
	assert_int_equal(rec.lease_duration_s, 15);
	assert_int_equal(rec.acquire_time_us, 5000);
	assert_int_equal(rec.renew_time_us, 5000);
	assert_int_equal(rec.lease_transitions, 0);
}

static void test_lease_takeover_waits_for_observed_expiry(void **state)
{
	struct kha_elect_lease_elector e;
	struct kha_kube_lease cur = lease("b", 15, 4, "10", 111), rec;

	(void)state;
	kha_elect_lease_elector_init(&e, "a", 15);
	/* the record's renewTime is ancient by the wall clock: irrelevant, only our own
	 * observation time counts (clocks of different machines are not compared) */
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 999999999, &rec),
			 KHA_ELECT_LEASE_WAIT);
	fake_now += 14 * S;
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 999999999, &rec),
			 KHA_ELECT_LEASE_WAIT);
	/* b renews: a new record restarts our observation */
	cur = lease("b", 15, 4, "11", 222);
	fake_now += 2 * S;
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 999999999, &rec),
			 KHA_ELECT_LEASE_WAIT);
	fake_now += 15 * S - 1;
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 999999999, &rec),
			 KHA_ELECT_LEASE_WAIT);
	/* 15 s with no change: take it, conditional on the version we saw */
	fake_now += 1;
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 999999999, &rec),
			 KHA_ELECT_LEASE_UPDATE);
	assert_string_equal(rec.holder_identity, "a");
	assert_string_equal(rec.resource_version, "11");
	assert_int_equal(rec.lease_transitions, 5);
	assert_int_equal(rec.acquire_time_us, 999999999);
	assert_string_equal(rec.namespace, "kube-system");
	assert_string_equal(rec.name, "kha");
}

static void test_lease_uses_the_record_duration(void **state)
{
	struct kha_elect_lease_elector e;
	struct kha_kube_lease cur = lease("b", 1, 2, "5", 1), rec;

	(void)state;
	kha_elect_lease_elector_init(&e, "a", 15);
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 7, &rec),
			 KHA_ELECT_LEASE_WAIT);
	fake_now += S;
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 7, &rec),
			 KHA_ELECT_LEASE_UPDATE);
}

static void test_lease_released_is_free_at_once(void **state)
{
	struct kha_elect_lease_elector e;
	struct kha_kube_lease cur = lease("", 1, 3, "9", 1), rec;

	(void)state;
	kha_elect_lease_elector_init(&e, "a", 15);
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 7, &rec),
			 KHA_ELECT_LEASE_UPDATE);
	assert_int_equal(rec.lease_transitions, 4);
	assert_int_equal(rec.lease_duration_s, 15);
}

static void test_lease_holder_renews_and_releases(void **state)
{
	struct kha_elect_lease_elector e;
	struct kha_kube_lease cur = lease("a", 15, 3, "20", 1), rec;

	(void)state;
	kha_elect_lease_elector_init(&e, "a", 15);
	/* a restarted holder with the same identity renews at once (client-go IsLeader) */
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 50, &rec),
			 KHA_ELECT_LEASE_UPDATE);
	assert_int_equal(rec.lease_transitions, 3);
	assert_int_equal(rec.acquire_time_us, 1000);
	assert_int_equal(rec.renew_time_us, 50);
	rec.renew_time_us = 50;
	snprintf(rec.resource_version, sizeof(rec.resource_version), "21");
	kha_elect_lease_elector_written(&e, &rec, kha_now_us());
	assert_true(kha_elect_lease_elector_is_holder(&e));
	assert_true(kha_elect_lease_release_record(&e, 77, &rec));
	assert_string_equal(rec.holder_identity, "");
	assert_int_equal(rec.lease_duration_s, 1);
	assert_int_equal(rec.lease_transitions, 3);
	assert_int_equal(rec.renew_time_us, 77);
	assert_int_equal(rec.acquire_time_us, 77);
	assert_string_equal(rec.resource_version, "21");

	/* another holder took it: we are not the holder, nothing to release */
	cur = lease("b", 15, 4, "30", 2);
	assert_int_equal(kha_elect_lease_decide(&e, &cur, kha_now_us(), 60, &rec),
			 KHA_ELECT_LEASE_WAIT);
	assert_false(kha_elect_lease_elector_is_holder(&e));
	assert_false(kha_elect_lease_release_record(&e, 80, &rec));
}

/* ---- backup gate ---------------------------------------------------------------------------- */

static void put_file(const char *dir, const char *name, const char *content, time_t mtime)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	if (mtime) {
		struct utimbuf t = {.actime = mtime, .modtime = mtime};

		assert_int_equal(utime(path, &t), 0);
	}
}

/* A real snapshot (recorded from an etcd member for the fuzz corpus), written as dir/name. */
static void put_snapshot(const char *dir, const char *name, time_t mtime)
{
	kha_autofree char *data = NULL;
	size_t len = 0;
	char path[512];

	assert_int_equal(
		kha_file_read_all(KHA_SNAPSHOT_CORPUS "/small.db", 1 << 20, &data, &len, NULL), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(kha_file_write_atomic(path, data, len, 0600, NULL), 0);
	if (mtime) {
		struct utimbuf t = {.actime = mtime, .modtime = mtime};

		assert_int_equal(utime(path, &t), 0);
	}
}

static void test_backup_gate_needs_a_recent_verified_file(void **state)
{
	char dir[] = "/tmp/kha-test-gate-XXXXXX", reason[512];
	struct kha_lock_gates g = {.backup_max_age_us = 3600 * S};
	const char *gate;
	time_t now = time(NULL);

	(void)state;
	assert_non_null(mkdtemp(dir));
	g.backup_dir = dir;
	assert_int_equal(kha_lock_gates_check_named(&g, &gate, reason, sizeof(reason)), 1);
	assert_string_equal(gate, "backup");
	assert_non_null(strstr(reason, "no backup newer than 1h"));

	put_snapshot(dir, "old.db", now - 7200); /* good, but too old */
	put_file(dir, "empty.db", "", 0);
	put_snapshot(dir, ".hidden.db", 0);
	put_snapshot(dir, "x.db.tmp", 0);
	put_file(dir, "junk.db", "junk", 0);
	assert_int_equal(kha_lock_gates_check_named(&g, &gate, reason, sizeof(reason)), 1);
	assert_non_null(strstr(reason, "no verified backup"));
	assert_non_null(strstr(reason, "junk.db: no integrity hash")); /* the only candidate */

	put_snapshot(dir, "snap.db", now - 60);
	assert_int_equal(kha_lock_gates_check_named(&g, &gate, reason, sizeof(reason)), 0);
	assert_null(gate);
	assert_int_equal(kha_lock_gates_check(&g, reason, sizeof(reason)), 0);

	assert_int_equal(kha_file_remove_tree(dir, NULL), 0);
}

/* ---- the run loop's decisions (kha_elect_step on the fake clock) ---------------------------- */

#define EXIT_STATUS(code) ((code) << 8) /* a wait status: exited with code */
#define KILLED_BY(sig)	  (sig)		/* a wait status: killed by sig */

static const char *const step_argv[] = {"true", NULL};

static struct kha_elect_opts step_opts(void)
{
	return (struct kha_elect_opts){.name = "x",
				       .id = "a",
				       .ttl_us = 3 * S,
				       .renew_deadline_us = 2 * S,
				       .grace_us = 5 * S,
				       .argv = step_argv,
				       .backoff_initial_us = S,
				       .backoff_max_us = 4 * S};
}

/* One step at the fake clock's now. */
static struct kha_elect_actions step(struct kha_elect_step_state *st,
				     const struct kha_elect_opts *o,
				     const struct kha_elect_observation *obs)
{
	struct kha_elect_actions a;

	kha_elect_step(st, o, obs, kha_now_us(), &a);
	return a;
}

static void test_step_fences_command_before_the_lease_can_expire(void **state)
{
	struct kha_elect_opts o = step_opts();
	struct kha_elect_step_state st;
	uint64_t t0 = kha_now_us();
	struct kha_elect_observation obs = {.gen = 1, .leading = true, .last_renew_us = t0};
	struct kha_elect_actions a;

	(void)state;
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_ACQUIRED);
	assert_true(a.todo & KHA_ELECT_DO_START);
	assert_true(a.leader_ok);
	assert_int_equal(a.next_us, t0 + 2 * S); /* the renew deadline */

	fake_now = t0 + S; /* no renewal since t0: still within the deadline */
	a = step(&st, &o, &obs);
	assert_int_equal(a.todo, 0);
	assert_int_equal(a.next_us, t0 + 2 * S);

	fake_now = t0 + 2 * S; /* the deadline: SIGTERM, give the session up */
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_TERM);
	assert_true(a.todo & KHA_ELECT_DO_LOSE);
	assert_int_equal(a.stop, KHA_ELECT_STOP_FENCED);
	assert_false(a.leader_ok);
	/* SIGKILL a margin before the lease can expire (t0 + 3 s), not after the 5 s grace */
	assert_int_equal(a.next_us, t0 + 3 * S - st.fence.margin_us);
	assert_true(a.next_us < t0 + 3 * S);

	fake_now = a.next_us - 1;
	a = step(&st, &o, &obs);
	assert_false(a.todo & KHA_ELECT_DO_KILL);
	fake_now = t0 + 3 * S - st.fence.margin_us;
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_KILL);
	assert_true(a.kill_late);

	/* it dies; the lost session never restarts it, even if it is still reported leading */
	obs.child_exited = true;
	obs.child_status = KILLED_BY(9);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_REAP);
	assert_false(a.todo & KHA_ELECT_DO_START);
	assert_int_equal(st.status, 128 + 9);

	/* a new session with a fresh renewal runs it again */
	obs = (struct kha_elect_observation){.gen = 2, .leading = true, .last_renew_us = fake_now};
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_ACQUIRED);
	assert_true(a.todo & KHA_ELECT_DO_START);
}

static void test_step_new_session_or_loss_stops_command(void **state)
{
	struct kha_elect_opts o = step_opts();
	struct kha_elect_step_state st;
	uint64_t t0 = kha_now_us();
	struct kha_elect_observation obs = {.gen = 1, .leading = true, .last_renew_us = t0};
	struct kha_elect_actions a;

	(void)state;
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	/* another session, not renewed yet: COMMAND of session 1 must stop */
	obs.gen = 2;
	obs.last_renew_us = 0;
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_TERM);
	assert_int_equal(a.stop, KHA_ELECT_STOP_LOST);
	assert_false(a.todo & KHA_ELECT_DO_LOSE); /* the backend already moved on */
	/* the new session has no renewal: no expiry known, the grace applies */
	assert_int_equal(st.kill_us, t0 + 5 * S);

	/* without exit_on_loss it campaigns on: the status is COMMAND's, no quit */
	obs = (struct kha_elect_observation){
		.gen = 2, .leading = false, .child_exited = true, .child_status = KILLED_BY(15)};
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_LOST);
	assert_true(a.todo & KHA_ELECT_DO_REAP);
	assert_false(a.todo & (KHA_ELECT_DO_QUIT | KHA_ELECT_DO_START));

	/* with exit_on_loss (kha lock) the loss ends kha with 69 */
	o.exit_on_loss = true;
	obs = (struct kha_elect_observation){.gen = 3, .leading = true, .last_renew_us = fake_now};
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	obs.leading = false;
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_TERM);
	obs.child_exited = true;
	obs.child_status = EXIT_STATUS(0);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_LOSS_EXIT);
	assert_true(a.todo & KHA_ELECT_DO_QUIT);
	assert_int_equal(st.status, KHA_EXIT_UNAVAILABLE);
}

static void test_step_restart_backs_off(void **state)
{
	struct kha_elect_opts o = step_opts();
	struct kha_elect_step_state st;
	struct kha_elect_observation obs = {.gen = 1, .leading = true};
	struct kha_elect_actions a;
	const uint64_t waits[] = {S, 2 * S, 4 * S, 4 * S}; /* doubling, capped at 4 s */

	(void)state;
	o.restart = KHA_ELECT_RESTART_ON_FAILURE;
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(waits); i++) {
		obs.last_renew_us = kha_now_us(); /* renewals keep coming */
		obs.child_exited = false;
		a = step(&st, &o, &obs);
		assert_true(a.todo & KHA_ELECT_DO_START);
		fake_now += 100 * MS; /* a quick failure */
		obs.last_renew_us = kha_now_us();
		obs.child_exited = true;
		obs.child_status = EXIT_STATUS(1);
		a = step(&st, &o, &obs);
		assert_true(a.todo & KHA_ELECT_DO_RESTART);
		assert_int_equal(a.restart_in_us, waits[i]);
		assert_int_equal(a.next_us, kha_now_us() + waits[i]);
		obs.child_exited = false;
		fake_now += waits[i] - 1;
		a = step(&st, &o, &obs);
		assert_false(a.todo & KHA_ELECT_DO_START); /* not before its time */
		fake_now += 1;
	}
	/* a run as long as the cap starts the back-off over */
	obs.last_renew_us = kha_now_us();
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	for (int i = 0; i < 5; i++) { /* 5 s, renewed every second */
		fake_now += S;
		obs.last_renew_us = kha_now_us();
		a = step(&st, &o, &obs);
		assert_int_equal(a.todo, 0);
	}
	obs.child_exited = true;
	a = step(&st, &o, &obs);
	assert_int_equal(a.restart_in_us, S);
	/* a SIGHUP reload replaces the policy: "no" now ends kha on the next exit */
	obs.child_exited = false;
	fake_now += S;
	obs.last_renew_us = kha_now_us();
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	st.policy.restart = KHA_ELECT_RESTART_NO;
	obs.child_exited = true;
	obs.child_status = EXIT_STATUS(1);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_QUIT);
	assert_int_equal(st.status, 1);
	st.policy.restart = KHA_ELECT_RESTART_ON_FAILURE;
	st.finished = false;
	/* a clean exit with on-failure ends it, with COMMAND's status */
	obs.child_exited = false;
	fake_now += S;
	obs.last_renew_us = kha_now_us();
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	obs.child_exited = true;
	obs.child_status = EXIT_STATUS(0);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_QUIT);
	assert_int_equal(st.status, 0);
}

static void test_step_sigterm_stops_command_then_quits(void **state)
{
	struct kha_elect_opts o = step_opts();
	struct kha_elect_step_state st;
	uint64_t t0 = kha_now_us();
	struct kha_elect_observation obs = {.gen = 1, .leading = true, .last_renew_us = t0};
	struct kha_elect_actions a;

	(void)state;
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	obs.exit_requested = true;
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_TERM);
	assert_int_equal(a.stop, KHA_ELECT_STOP_EXITING);
	assert_int_equal(a.next_us, t0 + 3 * S - st.fence.margin_us);
	obs.child_exited = true;
	obs.child_status = KILLED_BY(15);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_QUIT);
	assert_int_equal(st.status, 0); /* asked to stop: a clean exit */

	/* exiting with a fence no longer valid: SIGKILL at once */
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	obs = (struct kha_elect_observation){.gen = 1, .leading = true, .last_renew_us = t0};
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	fake_now = t0 + 2 * S + 1; /* fenced at this very step too */
	obs.exit_requested = true;
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_KILL);
	assert_false(a.kill_late);
	/* restart "no": COMMAND's own end is kha's, with its status */
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	obs = (struct kha_elect_observation){.gen = 1, .leading = true, .last_renew_us = fake_now};
	a = step(&st, &o, &obs);
	obs.child_exited = true;
	obs.child_status = EXIT_STATUS(3);
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_QUIT);
	assert_int_equal(st.status, 3);
	/* a failed start ends kha with 69 */
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), 0);
	obs = (struct kha_elect_observation){.gen = 1, .leading = true, .last_renew_us = fake_now};
	a = step(&st, &o, &obs);
	assert_true(a.todo & KHA_ELECT_DO_START);
	kha_elect_step_start_failed(&st);
	assert_int_equal(st.status, KHA_EXIT_UNAVAILABLE);
	/* bad durations are refused as kha_elect_run refuses them */
	o.renew_interval_us = 2 * S;
	assert_int_equal(kha_elect_step_init(&st, &o, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fence_rejects_deadline_not_below_ttl,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_fence_counts_from_the_renewal_start,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_fence_kill_before_expiry, fake_clock_setup,
						fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_fence_call_timeout_within_budget,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(
			test_step_fences_command_before_the_lease_can_expire, fake_clock_setup,
			fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_step_new_session_or_loss_stops_command,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_step_restart_backs_off, fake_clock_setup,
						fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_step_sigterm_stops_command_then_quits,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test(test_elect_key_is_etcdctl_format),
		cmocka_unit_test(test_sem_position_orders_by_create_revision),
		cmocka_unit_test(test_lock_value_round_trip),
		cmocka_unit_test(test_restart_policy_parse),
		cmocka_unit_test(test_timers_default_from_the_ttl),
		cmocka_unit_test(test_timers_rejected_together_name_the_flag),
		cmocka_unit_test(test_window_weekdays),
		cmocka_unit_test(test_window_midnight_and_week_wrap),
		cmocka_unit_test(test_window_errors_name_the_place),
		cmocka_unit_test(test_fleetlock_parse_accepts_zincati_bodies),
		cmocka_unit_test(test_fleetlock_parse_rejects_with_reason),
		cmocka_unit_test(test_fleetlock_handle_checks_before_etcd),
		cmocka_unit_test(test_fleetlock_groups_map_to_locks),
		cmocka_unit_test(test_fleetlock_binds_ids_and_groups),
		cmocka_unit_test_setup_teardown(test_lease_create_when_absent, fake_clock_setup,
						fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_lease_takeover_waits_for_observed_expiry,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_lease_uses_the_record_duration,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_lease_released_is_free_at_once,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_lease_holder_renews_and_releases,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test(test_backup_gate_needs_a_recent_verified_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
