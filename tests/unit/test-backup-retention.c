// SPDX-License-Identifier: MIT
/*
 * Unit tests of scheduled backups: file names, retention (a pure function), pruning and the
 * cleanup of temporary files in a real directory, back-off and the health rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "kha/backup.h"
#include "kha/file.h"
#include "fake-clock.h"
#include "kha/banned.h"

#define DAY  86400
#define HOUR 3600
/* 2026-11-27T05:40:00Z */
#define T0 1795758000

static void test_name_round_trip(void **state)
{
	char buf[KHA_BACKUP_NAME_MAX];
	int64_t t, rev;
	bool z;

	(void)state;
	assert_int_equal(kha_backup_name(buf, sizeof(buf), T0, 12345, false), 0);
	assert_string_equal(buf, "etcd-20261127T054000Z-rev12345.db");
	assert_int_equal(kha_backup_parse_name(buf, &t, &rev, &z), 0);
	assert_int_equal(t, T0);
	assert_int_equal(rev, 12345);
	assert_false(z);
	assert_int_equal(kha_backup_name(buf, sizeof(buf), 0, 1, true), 0);
	assert_string_equal(buf, "etcd-19700101T000000Z-rev1.db.zst");
	assert_int_equal(kha_backup_parse_name(buf, &t, &rev, &z), 0);
	assert_int_equal(t, 0);
	assert_true(z);
	assert_int_equal(kha_backup_name(buf, 10, T0, 1, false), -ENAMETOOLONG);
}

static void test_name_rejects_other_files(void **state)
{
	static const char *const bad[] = {
		"etcd-20261127T054000Z-rev12345.db.tmp.abc123",
		".etcd-20261127T054000Z-rev12345.db.tmp.abc123",
		"etcd-20261127T054000Z-rev.db",
		"etcd-20261127T054000Z-rev12a.db",
		"etcd-20261127T054000-rev1.db",
		"etcd-20261327T054000Z-rev1.db",
		"etcd-20261127T254000Z-rev1.db",
		"etcd-2026112T054000Z-rev1.db",
		"etcd-20261127T054000Z-rev1.db.gz",
		"etcd-20261127T054000Z-rev99999999999999999999.db",
		"snapshot.db",
		"",
	};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		if (kha_backup_parse_name(bad[i], NULL, NULL, NULL) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
}

static size_t kept(const struct kha_backup_entry *e, size_t n, size_t last, size_t daily,
		   bool *keep)
{
	struct kha_retention p = {.keep_last = last, .keep_daily = daily};

	return kha_backup_retention(e, n, &p, keep);
}

static void test_retention_keep_last(void **state)
{
	struct kha_backup_entry e[10];
	bool keep[10];

	(void)state;
	/* one every 30 minutes, same day, given oldest first */
	for (int i = 0; i < 10; i++)
		e[i] = (struct kha_backup_entry){.unix_s = T0 + i * 1800, .revision = 100 + i};
	assert_int_equal(kept(e, 10, 3, 0, keep), 3);
	for (int i = 0; i < 10; i++)
		assert_int_equal(keep[i], i >= 7);
	/* keep_last 0 still keeps the newest */
	assert_int_equal(kept(e, 10, 0, 0, keep), 1);
	assert_true(keep[9]);
	/* more wanted than present: all */
	assert_int_equal(kept(e, 10, 24, 7, keep), 10);
	assert_int_equal(kept(e, 0, 3, 3, keep), 0);
}

static void test_retention_keep_daily(void **state)
{
	/* newest first: two today, three yesterday, none the day before, one 3 and 10 days ago */
	struct kha_backup_entry e[] = {
		{T0 + 2 * HOUR, 90},   {T0 + HOUR, 80}, {T0 - DAY + 2 * HOUR, 70},
		{T0 - DAY + HOUR, 60}, {T0 - DAY, 50},	{T0 - 3 * DAY, 40},
		{T0 - 10 * DAY, 30},
	};
	bool keep[KHA_ARRAY_SIZE(e)];
	const bool want3[] = {true, false, true, false, false, true, false};

	(void)state;
	/* keep-last 1 + 3 days with backups (today, yesterday, 3 days ago): the gap is skipped */
	assert_int_equal(kept(e, 7, 1, 3, keep), 3);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(keep[i], want3[i]);
	/* keep-last 2 overlaps today's newest: 4 kept */
	assert_int_equal(kept(e, 7, 2, 3, keep), 4);
	assert_true(keep[1]);
	/* every day */
	assert_int_equal(kept(e, 7, 1, 100, keep), 4);
	assert_true(keep[6]);
	assert_false(keep[4]);
}

static void test_retention_order_and_ties(void **state)
{
	/* shuffled input; same second, the higher revision is the newer */
	struct kha_backup_entry e[] = {
		{T0, 5},
		{T0 + 60, 7},
		{T0, 9},
		{T0 - 60, 1},
	};
	bool keep[4];

	(void)state;
	assert_int_equal(kept(e, 4, 2, 0, keep), 2);
	assert_true(keep[1]);
	assert_true(keep[2]);
	assert_false(keep[0]);
	assert_false(keep[3]);
	/* the daily pick is the newest of the day */
	assert_int_equal(kept(e, 4, 1, 1, keep), 1);
	assert_true(keep[1]);
	/* UTC day boundaries: 23:59:59 and 00:00:00 are different days */
	{
		int64_t midnight = T0 - (T0 % DAY);
		struct kha_backup_entry b[] = {{midnight, 2}, {midnight - 1, 1}};
		bool k[2];
		assert_int_equal(kept(b, 2, 1, 2, k), 2);
		/* before the epoch, days still split at midnight: -1 and -DAY are 1969-12-31 */
		struct kha_backup_entry c[] = {{-1, 2}, {-DAY, 1}, {-DAY - 1, 0}};
		bool kc[3];
		assert_int_equal(kept(c, 3, 1, 5, kc), 2);
		assert_true(kc[0]);
		assert_false(kc[1]);
		assert_true(kc[2]);
	}
}

static void test_retry_delay_and_health(void **state)
{
	uint64_t s = KHA_USEC_PER_SEC;

	(void)state;
	assert_int_equal(kha_backup_retry_delay(s, 60 * s, 1), s);
	assert_int_equal(kha_backup_retry_delay(s, 60 * s, 2), 2 * s);
	assert_int_equal(kha_backup_retry_delay(s, 60 * s, 4), 8 * s);
	assert_int_equal(kha_backup_retry_delay(s, 60 * s, 7), 60 * s);
	assert_int_equal(kha_backup_retry_delay(s, 60 * s, 1000), 60 * s);
	assert_int_equal(kha_backup_retry_delay(s, s / 2, 1), s / 2);
	assert_int_equal(kha_backup_retry_delay(0, 0, 3), 4 * s); /* no cap */
	assert_int_equal(kha_backup_retry_delay(s, 0, 64), UINT64_MAX);

	/* interval 10 s: healthy up to 20 s after the last success */
	assert_true(kha_backup_healthy(100 * s, 0, 120 * s, 10 * s));
	assert_false(kha_backup_healthy(100 * s, 0, 121 * s, 10 * s));
	/* before any success: counted from the start */
	assert_true(kha_backup_healthy(0, 50 * s, 65 * s, 10 * s));
	assert_false(kha_backup_healthy(0, 50 * s, 71 * s, 10 * s));
	assert_true(kha_backup_healthy(100 * s, 0, 99 * s, 10 * s));
}

/* The daemon's schedule: fixed rate after a success, capped back-off after failures. */
static void test_schedule_fixed_rate_and_back_off(void **state)
{
	const uint64_t s = KHA_USEC_PER_SEC;
	struct kha_backup_schedule sc = {.every_us = 60 * s};
	uint64_t attempt, delay, next;

	(void)state;
	sc.started_us = fake_now;
	/* a success that took 5 s: the next one an interval after this one started */
	attempt = fake_now;
	fake_now += 5 * s;
	next = kha_backup_schedule_done(&sc, true, attempt, &delay);
	assert_int_equal(next, attempt + 60 * s);
	assert_int_equal(delay, 55 * s);
	assert_int_equal(sc.successes, 1);
	assert_int_equal(sc.last_success_us, fake_now);

	/* failures: 1 s, 2 s, 4 s... capped by the interval (retry_max 0, interval < 5m) */
	for (unsigned i = 1; i <= 8; i++) {
		attempt = fake_now;
		fake_now += s;
		next = kha_backup_schedule_done(&sc, false, attempt, &delay);
		assert_int_equal(sc.failures, i);
		assert_int_equal(delay, KHA_MIN((uint64_t)1 << (i - 1), 60) * s);
		assert_int_equal(next, fake_now + delay);
	}
	/* a success resets the count; the last success stays the older one until then */
	attempt = fake_now;
	next = kha_backup_schedule_done(&sc, true, attempt, &delay);
	assert_int_equal(sc.failures, 0);
	assert_int_equal(sc.successes, 2);
	assert_int_equal(delay, 60 * s);

	/* an explicit --retry-max wins; a long interval is capped at 5 minutes */
	sc = (struct kha_backup_schedule){.every_us = 3600 * s, .retry_max_us = 3 * s};
	for (unsigned i = 0; i < 4; i++)
		kha_backup_schedule_done(&sc, false, fake_now, &delay);
	assert_int_equal(delay, 3 * s);
	sc.retry_max_us = 0;
	for (unsigned i = 0; i < 20; i++)
		kha_backup_schedule_done(&sc, false, fake_now, &delay);
	assert_int_equal(delay, KHA_BACKUP_RETRY_CAP_US);
	/* an attempt that lasted longer than the interval: due at once */
	sc = (struct kha_backup_schedule){.every_us = 10 * s};
	attempt = fake_now;
	fake_now += 15 * s;
	kha_backup_schedule_done(&sc, true, attempt, &delay);
	assert_int_equal(delay, 0);
}

/* What /healthz says, as time passes on the fake clock. */
static void test_schedule_health_reason(void **state)
{
	const uint64_t s = KHA_USEC_PER_SEC;
	struct kha_backup_schedule sc = {.every_us = 30 * 60 * s};
	char reason[256];

	(void)state;
	sc.started_us = fake_now;
	fake_now += 10 * s;
	assert_true(kha_backup_schedule_health(&sc, "refused", reason, sizeof(reason)));
	assert_string_equal(reason, "no backup yet");
	fake_now += 3600 * s;
	assert_false(kha_backup_schedule_health(&sc, "refused", reason, sizeof(reason)));
	assert_string_equal(reason, "no backup yet after 1h0m0s; last error: refused");
	assert_false(kha_backup_schedule_health(&sc, NULL, reason, sizeof(reason)));
	assert_string_equal(reason, "no backup yet after 1h0m0s");

	kha_backup_schedule_done(&sc, true, fake_now, NULL);
	fake_now += 5 * 60 * s + 700 * 1000; /* whole seconds only */
	assert_true(kha_backup_schedule_health(&sc, "", reason, sizeof(reason)));
	assert_string_equal(reason, "last backup 5m0s ago");
	fake_now += 3600 * s;
	assert_false(kha_backup_schedule_health(&sc, "timeout", reason, sizeof(reason)));
	assert_string_equal(reason, "last backup 1h5m0s ago, older than 2 intervals = 1h0m0s; "
				    "last error: timeout");
}

static void touch(const char *dir, const char *name)
{
	char path[512];
	struct kha_diag d = {};

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(kha_file_write_atomic(path, "x", 1, 0600, &d), 0);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static void test_prune_and_clean_a_directory(void **state)
{
	char dir[] = "/tmp/kha-test-backup.XXXXXX";
	struct kha_retention p = {.keep_last = 2, .keep_daily = 2};
	struct kha_backup_list l = {};
	struct kha_diag d = {};
	size_t deleted = 99;

	(void)state;
	assert_non_null(mkdtemp(dir));
	touch(dir, "etcd-20261127T054000Z-rev50.db");
	touch(dir, "etcd-20261127T050000Z-rev40.db.zst");
	touch(dir, "etcd-20261127T043000Z-rev30.db");
	touch(dir, "etcd-20261126T230000Z-rev20.db");
	touch(dir, "etcd-20261126T220000Z-rev10.db");
	touch(dir, "etcd-20261120T220000Z-rev5.db");
	touch(dir, "notes.txt");				 /* not ours: never touched */
	touch(dir, "etcd-latest.db");				 /* not ours either */
	touch(dir, ".etcd-20261127T060000Z-rev0.db.tmp.abcdef"); /* a killed save */
	touch(dir, ".notes.txt.tmp.abcdef");			 /* someone else's temporary */

	assert_int_equal(kha_backup_list_dir(dir, &l, &d), 0);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.files[0].name, "etcd-20261127T054000Z-rev50.db");
	assert_true(l.files[1].compressed);
	assert_int_equal(l.files[5].revision, 5);
	assert_int_equal(l.files[0].size, 1);
	kha_backup_list_release(&l);

	assert_int_equal(kha_backup_prune(dir, &p, &deleted, &d), 0);
	/* kept: the 2 newest (today), and the newest of yesterday */
	assert_int_equal(deleted, 3);
	assert_true(exists(dir, "etcd-20261127T054000Z-rev50.db"));
	assert_true(exists(dir, "etcd-20261127T050000Z-rev40.db.zst"));
	assert_false(exists(dir, "etcd-20261127T043000Z-rev30.db"));
	assert_true(exists(dir, "etcd-20261126T230000Z-rev20.db"));
	assert_false(exists(dir, "etcd-20261126T220000Z-rev10.db"));
	assert_false(exists(dir, "etcd-20261120T220000Z-rev5.db"));
	assert_true(exists(dir, "notes.txt"));
	assert_true(exists(dir, "etcd-latest.db"));

	assert_int_equal(kha_backup_clean_temps(dir), 1);
	assert_false(exists(dir, ".etcd-20261127T060000Z-rev0.db.tmp.abcdef"));
	assert_true(exists(dir, ".notes.txt.tmp.abcdef"));

	assert_int_equal(kha_file_remove_tree(dir, &d), 0);
	assert_int_equal(kha_backup_prune(dir, &p, &deleted, &d), -ENOENT);
	assert_int_equal(kha_backup_clean_temps(dir), 0);
}

/* A file of the given content and modification time (seconds since the epoch). */
static void put_at(const char *dir, const char *name, const void *data, size_t len, time_t mtime)
{
	struct timespec ts[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(kha_file_write_atomic(path, data, len, 0600, NULL), 0);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_scan_lists_every_snapshot_candidate(void **state)
{
	char dir[] = "/tmp/kha-test-backup.XXXXXX", path[512];
	struct kha_backup_list l = {};
	struct kha_diag d = {};

	(void)state;
	assert_non_null(mkdtemp(dir));
	put_at(dir, "etcd-20261127T054000Z-rev50.db", "x", 1, T0);
	put_at(dir, "manual.db", "x", 1, T0 + 60); /* an operator's etcdctl snapshot */
	put_at(dir, "older.db", "x", 1, T0 - 60);
	put_at(dir, "empty.db", "", 0, T0 + 120);
	put_at(dir, ".hidden.db", "x", 1, T0 + 120);
	put_at(dir, "x.db.tmp", "x", 1, T0 + 120);
	put_at(dir, "x.db.part", "x", 1, T0 + 120);
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/latest.db", dir);
	assert_int_equal(symlink("manual.db", path), 0); /* followed */

	assert_int_equal(kha_backup_scan_dir(dir, &l, &d), 0);
	assert_int_equal(l.n, 4);
	/* newest modification first; a tie goes by name */
	assert_string_equal(l.files[0].name, "latest.db");
	assert_string_equal(l.files[1].name, "manual.db");
	assert_false(l.files[1].named);
	assert_string_equal(l.files[2].name, "etcd-20261127T054000Z-rev50.db");
	assert_true(l.files[2].named);
	assert_int_equal(l.files[2].revision, 50);
	assert_int_equal(l.files[2].mtime.tv_sec, T0);
	assert_string_equal(l.files[3].name, "older.db");
	kha_backup_list_release(&l);

	/* kha's own listing (what pruning reads) keeps to its names and follows no link */
	assert_int_equal(kha_backup_list_dir(dir, &l, &d), 0);
	assert_int_equal(l.n, 1);
	kha_backup_list_release(&l);

	assert_int_equal(kha_file_remove_tree(dir, &d), 0);
	assert_int_equal(kha_backup_scan_dir(dir, &l, &d), -ENOENT);
	assert_non_null(strstr(d.msg, dir));
}

static void test_verification_is_cached_per_file_version(void **state)
{
	char dir[] = "/tmp/kha-test-backup.XXXXXX";
	kha_autofree char *snap = NULL;
	struct kha_snapshot_info info = {};
	struct kha_backup_list l = {};
	struct kha_diag d = {};
	size_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(
		kha_file_read_all(KHA_SNAPSHOT_CORPUS "/small.db", 1 << 20, &snap, &len, &d), 0);
	put_at(dir, "a.db", snap, len, T0);
	assert_int_equal(kha_backup_scan_dir(dir, &l, &d), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(kha_backup_verify_cached(dir, &l.files[0], &info, &d), 0);
	assert_int_equal(info.revision, 2);
	kha_backup_list_release(&l);

	/* damaged in place, same size and time: the remembered verdict stands (not re-read) */
	snap[len / 2] ^= 0xff;
	put_at(dir, "a.db", snap, len, T0);
	assert_int_equal(kha_backup_scan_dir(dir, &l, &d), 0);
	info.revision = 0;
	assert_int_equal(kha_backup_verify_cached(dir, &l.files[0], &info, &d), 0);
	assert_int_equal(info.revision, 2);
	kha_backup_list_release(&l);

	/* a new version (another time) is verified again */
	put_at(dir, "a.db", snap, len, T0 + 1);
	assert_int_equal(kha_backup_scan_dir(dir, &l, &d), 0);
	assert_int_equal(kha_backup_verify_cached(dir, &l.files[0], &info, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "a.db"));
	kha_backup_list_release(&l);

	assert_int_equal(kha_file_remove_tree(dir, &d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_round_trip),
		cmocka_unit_test(test_name_rejects_other_files),
		cmocka_unit_test(test_retention_keep_last),
		cmocka_unit_test(test_retention_keep_daily),
		cmocka_unit_test(test_retention_order_and_ties),
		cmocka_unit_test(test_retry_delay_and_health),
		cmocka_unit_test_setup_teardown(test_schedule_fixed_rate_and_back_off,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_schedule_health_reason, fake_clock_setup,
						fake_clock_teardown),
		cmocka_unit_test(test_prune_and_clean_a_directory),
		cmocka_unit_test(test_scan_lists_every_snapshot_candidate),
		cmocka_unit_test(test_verification_is_cached_per_file_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
