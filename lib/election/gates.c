// SPDX-License-Identifier: MIT
/* Safety gates of kha lock: maintenance window, a recent backup, a healthy etcd cluster. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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
	if (kha_window_contains(g->window, &tm))
		return 0;
	snprintf(reason, size, "outside the maintenance window (local time %02d:%02d)", tm.tm_hour,
		 tm.tm_min);
	return 1;
}

static int check_backup(const struct kha_lock_gates *g, char *reason, size_t size)
{
	struct dirent *de;
	DIR *dir;
	int64_t newest = -1, now = (int64_t)time(NULL);
	char age[32], max[32];
	int dfd;

	if (!g->backup_max_age_us)
		return 0;
	dfd = open(g->backup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int err = errno;

		snprintf(reason, size, "backup directory %s: %s", g->backup_dir, strerror(err));
		return err == ENOENT ? 1 : -err;
	}
	dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		snprintf(reason, size, "backup directory %s: %s", g->backup_dir, strerror(errno));
		return -EIO;
	}
	while ((de = readdir(dir))) {
		struct stat st;
		size_t len = strlen(de->d_name);

		/* dot files and temporaries of atomic writes are not backups */
		if (de->d_name[0] == '.' ||
		    (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) ||
		    (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0))
			continue;
		if (fstatat(dfd, de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
			continue;
		if ((int64_t)st.st_mtime > newest)
			newest = (int64_t)st.st_mtime;
	}
	closedir(dir);
	kha_format_duration(max, sizeof(max), g->backup_max_age_us);
	if (newest < 0) {
		snprintf(reason, size, "no backup in %s (need one newer than %s)", g->backup_dir,
			 max);
		return 1;
	}
	if (now - newest > (int64_t)(g->backup_max_age_us / KHA_USEC_PER_SEC)) {
		kha_format_duration(age, sizeof(age), (uint64_t)(now - newest) * KHA_USEC_PER_SEC);
		snprintf(reason, size, "newest backup in %s is %s old (need one newer than %s)",
			 g->backup_dir, age, max);
		return 1;
	}
	return 0;
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
