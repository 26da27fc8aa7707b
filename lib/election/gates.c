// SPDX-License-Identifier: MIT
/* Safety gates of kha lock: maintenance window, a recent backup, a healthy etcd cluster. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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

/* Verification results, per (path, size, mtime): a snapshot is verified once. */
#define CACHE_SIZE 32
struct verified {
	char path[PATH_MAX];
	off_t size;
	struct timespec mtime;
	int result;
	char why[200];
};
static struct verified cache[CACHE_SIZE];
static size_t cache_next;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

struct candidate {
	char name[256];
	struct stat st;
};

static int by_mtime_desc(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->st.st_mtim.tv_sec != y->st.st_mtim.tv_sec)
		return x->st.st_mtim.tv_sec < y->st.st_mtim.tv_sec ? 1 : -1;
	if (x->st.st_mtim.tv_nsec != y->st.st_mtim.tv_nsec)
		return x->st.st_mtim.tv_nsec < y->st.st_mtim.tv_nsec ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Under cache_mu: the cached or fresh verification of path. */
static int verify_cached(const struct kha_lock_gates *g, const char *path, const struct stat *st,
			 char *why, size_t size)
{
	struct kha_diag d = {};
	struct verified *v;
	int r;

	for (size_t i = 0; i < CACHE_SIZE; i++) {
		v = &cache[i];
		if (strcmp(v->path, path) == 0 && v->size == st->st_size &&
		    v->mtime.tv_sec == st->st_mtim.tv_sec &&
		    v->mtime.tv_nsec == st->st_mtim.tv_nsec) {
			snprintf(why, size, "%s", v->why);
			return v->result;
		}
	}
	r = g->verify_backup(path, &d);
	v = &cache[cache_next++ % CACHE_SIZE];
	snprintf(v->path, sizeof(v->path), "%s", path);
	v->size = st->st_size;
	v->mtime = st->st_mtim;
	v->result = r;
	snprintf(v->why, sizeof(v->why), "%s", d.msg);
	snprintf(why, size, "%s", d.msg);
	return r;
}

static int check_backup(const struct kha_lock_gates *g, char *reason, size_t size)
{
	struct candidate *c = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;
	int64_t now = (int64_t)time(NULL), max_age;
	char max[32], why[200] = "";
	int dfd, r = 1;

	if (!g->backup_max_age_us)
		return 0;
	max_age = (int64_t)(g->backup_max_age_us / KHA_USEC_PER_SEC);
	kha_format_duration(max, sizeof(max), g->backup_max_age_us);
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
		    (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0) ||
		    len >= sizeof(c->name))
			continue;
		if (fstatat(dfd, de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
			continue;
		if (now - (int64_t)st.st_mtime > max_age)
			continue;
		if (n == cap) {
			struct candidate *nc = realloc(c, (cap ? cap * 2 : 16) * sizeof(*c));

			if (!nc) {
				r = -ENOMEM;
				snprintf(reason, size, "out of memory");
				goto out;
			}
			c = nc;
			cap = cap ? cap * 2 : 16;
		}
		memcpy(c[n].name, de->d_name, len + 1);
		c[n].st = st;
		n++;
	}
	if (n == 0) {
		snprintf(reason, size, "no backup newer than %s in %s", max, g->backup_dir);
		goto out;
	}
	if (!g->verify_backup) {
		r = 0;
		goto out;
	}
	qsort(c, n, sizeof(*c), by_mtime_desc);
	pthread_mutex_lock(&cache_mu);
	for (size_t i = 0; i < n && r != 0; i++) {
		char path[PATH_MAX], w[200];

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", g->backup_dir, c[i].name) >=
		    sizeof(path))
			continue;
		if (verify_cached(g, path, &c[i].st, w, sizeof(w)) == 0)
			r = 0;
		else if (!why[0])
			snprintf(why, sizeof(why), "%s", w);
	}
	pthread_mutex_unlock(&cache_mu);
	if (r != 0)
		snprintf(reason, size, "no verified backup newer than %s in %s (newest: %s)", max,
			 g->backup_dir, why);
out:
	closedir(dir);
	free(c);
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
