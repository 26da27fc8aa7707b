// SPDX-License-Identifier: MIT
/* Safety gates of kha lock: maintenance window, a recent backup, a healthy etcd cluster. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kha/backup.h"
#include "kha/election.h"
#include "kha/parse.h"
#include "kha/banned.h"

static int check_window(const struct kha_lock_gates *g, char *reason, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	if (!g->window)
		return 0;
	if (!localtime_r(&now, &tm)) {
		snprintf(reason, size, "cannot read the local time");
		return -EINVAL;
	}
	if (kha_lock_window_contains(g->window, &tm))
		return 0;
	snprintf(reason, size, "outside the maintenance window (local time %02d:%02d)", tm.tm_hour,
		 tm.tm_min);
	return 1;
}

/* The newest snapshot in the directory modified within the max age that verifies. */
static int check_backup(const struct kha_lock_gates *g, char *reason, size_t size)
{
	struct kha_backup_list l = {};
	struct kha_diag d = {};
	int64_t now = (int64_t)time(NULL), max_age;
	char max[32], why[200] = "";
	size_t recent = 0;
	int r;

	if (!g->backup_max_age_us)
		return 0;
	max_age = (int64_t)(g->backup_max_age_us / KHA_USEC_PER_SEC);
	kha_format_duration(max, sizeof(max), g->backup_max_age_us);
	r = kha_backup_scan_dir(g->backup_dir, &l, &d);
	if (r < 0) {
		snprintf(reason, size, "backup directory %s: %s", g->backup_dir, strerror(-r));
		return r == -ENOENT ? 1 : r;
	}
	r = 1;
	for (size_t i = 0; i < l.n && r != 0; i++) {
		struct kha_diag vd = {};

		if (now - (int64_t)l.files[i].mtime.tv_sec > max_age)
			continue;
		recent++;
		if (kha_backup_verify_cached(g->backup_dir, &l.files[i], NULL, &vd) == 0)
			r = 0;
		else if (!why[0])
			snprintf(why, sizeof(why), "%s", vd.msg);
	}
	if (!recent)
		snprintf(reason, size, "no backup newer than %s in %s", max, g->backup_dir);
	else if (r != 0)
		snprintf(reason, size, "no verified backup newer than %s in %s (newest: %s)", max,
			 g->backup_dir, why);
	kha_backup_list_release(&l);
	return r;
}

static int check_etcd(const struct kha_lock_gates *g, char *reason, size_t size)
{
	struct kha_etcd_cluster_report rep = {};
	struct kha_diag d = {};
	size_t up = 0;
	int r;

	if (!g->require_etcd_healthy)
		return 0;
	r = kha_etcd_cluster_report(g->etcd, 0, 0, &rep, &d);
	if (r < 0) {
		snprintf(reason, size, "etcd health unknown: %s", d.msg);
		kha_etcd_cluster_report_release(&rep);
		return r;
	}
	for (size_t i = 0; i < rep.n_members; i++)
		up += rep.members[i].reachable;
	if (up < rep.n_members || !rep.health.leader || rep.health.verdict == KHA_ETCD_CRITICAL) {
		snprintf(reason, size, "etcd is not healthy: %zu/%zu members up; %s", up,
			 rep.n_members, rep.health.summary);
		r = 1;
	}
	kha_etcd_cluster_report_release(&rep);
	return r;
}

int kha_lock_gates_check_named(const struct kha_lock_gates *g, const char **ret_gate, char *reason,
			       size_t size)
{
	int r;

	reason[0] = '\0';
	*ret_gate = "window";
	r = check_window(g, reason, size);
	if (r != 0)
		return r;
	*ret_gate = "backup";
	r = check_backup(g, reason, size);
	if (r != 0)
		return r;
	*ret_gate = "etcd_health";
	r = check_etcd(g, reason, size);
	if (r != 0)
		return r;
	*ret_gate = NULL;
	return 0;
}

int kha_lock_gates_check(void *gates, char *reason, size_t size)
{
	const char *gate;

	return kha_lock_gates_check_named(gates, &gate, reason, size);
}
