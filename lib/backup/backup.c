// SPDX-License-Identifier: MIT
/*
 * Scheduled backups: names, retention (pure), pruning, back-off and the health rule. The
 * daemon around them (timer, metrics, /healthz) is src/cmd-etcd-backup.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kha/backup.h"
#include "kha/banned.h"

#define DAY_S 86400

int kha_backup_name(char *buf, size_t size, int64_t unix_s, int64_t revision, bool compressed)
{
	time_t t = (time_t)unix_s;
	struct tm tm;
	int n;

	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	n = snprintf(buf, size, "etcd-%04d%02d%02dT%02d%02d%02dZ-rev%" PRId64 ".db%s",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     revision, compressed ? ".zst" : "");
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int num(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

int kha_backup_parse_name(const char *name, int64_t *ret_unix_s, int64_t *ret_revision,
			  bool *ret_compressed)
{
	/* etcd-YYYYMMDDTHHMMSSZ-revN.db[.zst] */
	const char *p = name, *end;
	struct tm tm = {};
	int64_t rev = 0;
	time_t t;

	if (strncmp(p, "etcd-", 5) != 0)
		return -EINVAL;
	p += 5;
	if (!digits(p, 8) || p[8] != 'T' || !digits(p + 9, 6) || p[15] != 'Z' || p[16] != '-' ||
	    strncmp(p + 17, "rev", 3) != 0)
		return -EINVAL;
	tm.tm_year = num(p, 4) - 1900;
	tm.tm_mon = num(p + 4, 2) - 1;
	tm.tm_mday = num(p + 6, 2);
	tm.tm_hour = num(p + 9, 2);
	tm.tm_min = num(p + 11, 2);
	tm.tm_sec = num(p + 13, 2);
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	p += 20;
	end = p;
	while (*end >= '0' && *end <= '9') {
		if (rev > (INT64_MAX - 9) / 10)
			return -EINVAL;
		rev = rev * 10 + (*end - '0');
		end++;
	}
	if (end == p)
		return -EINVAL;
	if (strcmp(end, ".db") == 0) {
		if (ret_compressed)
			*ret_compressed = false;
	} else if (strcmp(end, ".db.zst") == 0) {
		if (ret_compressed)
			*ret_compressed = true;
	} else {
		return -EINVAL;
	}
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	if (ret_unix_s)
		*ret_unix_s = (int64_t)t;
	if (ret_revision)
		*ret_revision = rev;
	return 0;
}

/* ---- retention ---------------------------------------------------------------------------- */

static int64_t day_of(int64_t unix_s)
{
	return unix_s >= 0 ? unix_s / DAY_S : -((-unix_s + DAY_S - 1) / DAY_S);
}

/* Newer first: time, then revision; the index breaks ties so the order is total. */
static bool newer(const struct kha_backup_entry *e, size_t a, size_t b)
{
	if (e[a].unix_s != e[b].unix_s)
		return e[a].unix_s > e[b].unix_s;
	if (e[a].revision != e[b].revision)
		return e[a].revision > e[b].revision;
	return a < b;
}

size_t kha_backup_retention(const struct kha_backup_entry *e, size_t n,
			    const struct kha_retention *policy, bool *keep)
{
	size_t keep_last = KHA_MAX(policy->keep_last, (size_t)1), days = 0, kept = 0;
	size_t *order;
	int64_t last_day = 0;
	bool have_day = false;

	for (size_t i = 0; i < n; i++)
		keep[i] = false;
	if (!n)
		return 0;
	order = malloc(n * sizeof(*order));
	if (!order) {
		/* no memory to decide: keep everything, delete nothing */
		for (size_t i = 0; i < n; i++)
			keep[i] = true;
		return n;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	/* insertion sort: backup directories hold tens to hundreds of files */
	for (size_t i = 1; i < n; i++) {
		size_t v = order[i], j = i;
		while (j > 0 && newer(e, v, order[j - 1])) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		int64_t day = day_of(e[i].unix_s);

		if (k < keep_last)
			keep[i] = true;
		if (!have_day || day != last_day) {
			/* the newest backup of a day not seen yet */
			have_day = true;
			last_day = day;
			if (days < policy->keep_daily) {
				keep[i] = true;
				days++;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		kept += keep[i];
	free(order);
	return kept;
}

/* ---- the directory ------------------------------------------------------------------------ */

void kha_backup_list_release(struct kha_backup_list *l)
{
	if (!l)
		return;
	free(l->files);
	memset(l, 0, sizeof(*l));
}

static int by_name_time(const void *a, const void *b)
{
	const struct kha_backup_file *x = a, *y = b;

	if (x->unix_s != y->unix_s)
		return x->unix_s > y->unix_s ? -1 : 1;
	if (x->revision != y->revision)
		return x->revision > y->revision ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int by_mtime(const void *a, const void *b)
{
	const struct kha_backup_file *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Dot files and the temporaries of atomic writes (ours are dot files too) are no snapshots. */
static bool is_temporary(const char *name)
{
	size_t len = strlen(name);

	return name[0] == '.' || (len > 4 && strcmp(name + len - 4, ".tmp") == 0) ||
	       (len > 5 && strcmp(name + len - 5, ".part") == 0);
}

/*
 * The one directory listing: named_only lists kha's backups (what pruning may delete: regular
 * files, symlinks not followed), else every snapshot candidate (symlinks followed, non-empty).
 */
static int list_dir(const char *dir, bool named_only, struct kha_backup_list *ret,
		    struct kha_diag *d)
{
	struct kha_backup_list l = {};
	size_t cap = 0;
	struct dirent *de;
	DIR *dp;
	int dfd;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int r = -errno;
		return kha_diag_set(d, r, "%s: %s", dir, strerror(-r));
	}
	dp = fdopendir(dfd);
	if (!dp) {
		int r = -errno;
		close(dfd);
		return kha_diag_set(d, r, "%s: %s", dir, strerror(-r));
	}
	while ((de = readdir(dp))) {
		struct kha_backup_file f = {};
		struct stat st;

		if (strlen(de->d_name) >= sizeof(f.name))
			continue;
		f.named = kha_backup_parse_name(de->d_name, &f.unix_s, &f.revision,
						&f.compressed) == 0;
		if (named_only ? !f.named : is_temporary(de->d_name))
			continue;
		if (fstatat(dfd, de->d_name, &st, named_only ? AT_SYMLINK_NOFOLLOW : 0) < 0 ||
		    !S_ISREG(st.st_mode) || (!named_only && st.st_size <= 0))
			continue;
		snprintf(f.name, sizeof(f.name), "%s", de->d_name);
		f.size = (uint64_t)st.st_size;
		f.mtime = st.st_mtim;
		if (KHA_GROW(l.files, cap, l.n + 1) < 0) {
			closedir(dp);
			kha_backup_list_release(&l);
			return kha_diag_set(d, ENOMEM, "out of memory");
		}
		l.files[l.n++] = f;
	}
	closedir(dp);
	if (l.n)
		qsort(l.files, l.n, sizeof(*l.files), named_only ? by_name_time : by_mtime);
	*ret = l;
	return 0;
}

int kha_backup_list_dir(const char *dir, struct kha_backup_list *ret, struct kha_diag *d)
{
	return list_dir(dir, true, ret, d);
}

int kha_backup_scan_dir(const char *dir, struct kha_backup_list *ret, struct kha_diag *d)
{
	return list_dir(dir, false, ret, d);
}

/* Verification results per (path, size, mtime): a snapshot is read once, not at every check. */
#define VERIFIED_CACHE 32
struct verified {
	char path[PATH_MAX];
	uint64_t size;
	struct timespec mtime;
	int result;
	struct kha_snapshot_info info;
	char why[KHA_DIAG_MAX];
};
static struct verified verified[VERIFIED_CACHE];
static size_t verified_next;
static pthread_mutex_t verified_mu = PTHREAD_MUTEX_INITIALIZER;

int kha_backup_verify_cached(const char *dir, const struct kha_backup_file *f,
			     struct kha_snapshot_info *ret, struct kha_diag *d)
{
	struct kha_snapshot_info info = {};
	struct kha_diag vd = {};
	char path[PATH_MAX];
	struct verified *v;
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, f->name) >= sizeof(path))
		return kha_diag_set(d, ENAMETOOLONG, "%s/%s: path too long", dir, f->name);
	pthread_mutex_lock(&verified_mu);
	for (size_t i = 0; i < VERIFIED_CACHE; i++) {
		v = &verified[i];
		if (strcmp(v->path, path) == 0 && v->size == f->size &&
		    v->mtime.tv_sec == f->mtime.tv_sec && v->mtime.tv_nsec == f->mtime.tv_nsec) {
			r = v->result;
			info = v->info;
			snprintf(vd.msg, sizeof(vd.msg), "%s", v->why);
			pthread_mutex_unlock(&verified_mu);
			goto out;
		}
	}
	/* verified under the lock: two checks of one new file read it once */
	r = kha_snapshot_verify_file(path, false, &info, &vd);
	v = &verified[verified_next++ % VERIFIED_CACHE];
	snprintf(v->path, sizeof(v->path), "%s", path);
	v->size = f->size;
	v->mtime = f->mtime;
	v->result = r;
	v->info = info;
	snprintf(v->why, sizeof(v->why), "%s", vd.msg);
	pthread_mutex_unlock(&verified_mu);
out:
	if (r < 0)
		return kha_diag_set(d, -r, "%s", vd.msg);
	if (ret)
		*ret = info;
	return r;
}

int kha_backup_prune(const char *dir, const struct kha_retention *policy, size_t *ret_deleted,
		     struct kha_diag *d)
{
	struct kha_backup_list l = {};
	struct kha_backup_entry *e = NULL;
	bool *keep = NULL;
	size_t deleted = 0;
	int dfd = -1, r;

	if (ret_deleted)
		*ret_deleted = 0;
	r = kha_backup_list_dir(dir, &l, d);
	if (r < 0)
		return r;
	if (!l.n)
		goto out;
	e = calloc(l.n, sizeof(*e));
	keep = calloc(l.n, sizeof(*keep));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!e || !keep || dfd < 0) {
		r = dfd < 0 ? -errno : -ENOMEM;
		kha_diag_set(d, r, "%s: %s", dir, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < l.n; i++)
		e[i] = (struct kha_backup_entry){.unix_s = l.files[i].unix_s,
						 .revision = l.files[i].revision};
	kha_backup_retention(e, l.n, policy, keep);
	for (size_t i = 0; i < l.n; i++) {
		if (keep[i])
			continue;
		if (unlinkat(dfd, l.files[i].name, 0) < 0 && errno != ENOENT) {
			if (r == 0) {
				r = -errno;
				kha_diag_set(d, r, "%s/%s: %s", dir, l.files[i].name, strerror(-r));
			}
			continue;
		}
		deleted++;
	}
	if (deleted)
		(void)fsync(dfd);
out:
	if (dfd >= 0)
		close(dfd);
	free(e);
	free(keep);
	kha_backup_list_release(&l);
	if (ret_deleted)
		*ret_deleted = deleted;
	return r;
}

size_t kha_backup_clean_temps(const char *dir)
{
	struct dirent *de;
	size_t removed = 0;
	DIR *dp;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return 0;
	dp = fdopendir(dfd);
	if (!dp) {
		close(dfd);
		return 0;
	}
	while ((de = readdir(dp))) {
		const char *tmp = strstr(de->d_name, ".tmp.");
		char name[KHA_BACKUP_NAME_MAX + 8];

		/* ".<backup name>.tmp.XXXXXX", as struct kha_atomic_file names them */
		if (de->d_name[0] != '.' || !tmp || (size_t)(tmp - de->d_name) >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(tmp - de->d_name - 1), de->d_name + 1);
		if (kha_backup_parse_name(name, NULL, NULL, NULL) < 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dp);
	return removed;
}

/* ---- schedule and health ------------------------------------------------------------------- */

uint64_t kha_backup_retry_delay(uint64_t base_us, uint64_t cap_us, unsigned failures)
{
	uint64_t d = base_us ? base_us : KHA_USEC_PER_SEC;

	for (unsigned i = 1; i < failures && (!cap_us || d < cap_us); i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	return cap_us && d > cap_us ? cap_us : d;
}

bool kha_backup_healthy(uint64_t last_success_us, uint64_t started_us, uint64_t now_us,
			uint64_t interval_us)
{
	uint64_t since = last_success_us ? last_success_us : started_us;

	return now_us < since || now_us - since <= 2 * interval_us;
}

/* ---- one backup ----------------------------------------------------------------------------- */

struct namer {
	const char *dir;
	bool compress;
	int64_t unix_s;
};

static int name_backup(void *userdata, const struct kha_snapshot_info *info, char *buf, size_t size)
{
	const struct namer *n = userdata;
	char name[KHA_BACKUP_NAME_MAX];
	int r = kha_backup_name(name, sizeof(name), n->unix_s, info->revision, n->compress);

	if (r < 0)
		return r;
	r = snprintf(buf, size, "%s/%s", n->dir, name);
	return r < 0 || (size_t)r >= size ? -ENAMETOOLONG : 0;
}

static bool try_next(int r)
{
	/* the member could not be asked: another one may answer */
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ENETUNREACH ||
	       r == -ECONNRESET || r == -EAGAIN || r == -EPROTONOSUPPORT || r == -EPROTO;
}

int kha_backup_once(const struct kha_backup_opts *o, struct kha_backup_result *ret,
		    struct kha_diag *d)
{
	struct kha_backup_result res = {};
	struct namer n = {.dir = o->dir, .compress = o->compress};
	char provisional[4096], name[KHA_BACKUP_NAME_MAX];
	struct kha_diag pd = {};
	size_t n_eps = o->cfg->n_endpoints;
	int r = -EINVAL;

	if (!n_eps)
		return kha_diag_set(d, EINVAL, "no etcd endpoint given (--endpoints)");
	n.unix_s = (int64_t)(kha_wall_us() / KHA_USEC_PER_SEC);
	/* the provisional name carries no revision yet: the snapshot tells it */
	r = kha_backup_name(name, sizeof(name), n.unix_s, 0, o->compress);
	if (r < 0 || snprintf(provisional, sizeof(provisional), "%s/%s", o->dir, name) >=
			     (int)sizeof(provisional))
		return kha_diag_set(d, ENAMETOOLONG, "%s: path too long", o->dir);
	kha_backup_clean_temps(o->dir);
	for (size_t i = 0; i < n_eps; i++) {
		struct kha_snapshot_save_opts so = {
			.cfg = o->cfg,
			.endpoint = o->cfg->endpoints[i],
			.path = provisional,
			.name_fn = name_backup,
			.name_userdata = &n,
			.transport = o->transport,
			.compress = o->compress,
			.compress_level = o->compress_level,
			.timeout_us = o->timeout_us,
			.stall_us = o->stall_us,
			.cancel = o->cancel,
		};
		struct kha_diag sd = {};

		r = kha_snapshot_save(&so, &res.save, &sd);
		if (r == 0)
			break;
		if (i == 0 || !try_next(r))
			kha_diag_set(&pd, r, "%s", sd.msg);
		else
			kha_diag_append(&pd, "; %s", sd.msg);
		if (!try_next(r))
			break;
	}
	if (r < 0)
		return kha_diag_set(d, r, "%s", pd.msg);
	r = kha_backup_prune(o->dir, &o->retention, &res.pruned, &pd);
	if (r < 0)
		snprintf(res.prune_error, sizeof(res.prune_error), "%s", pd.msg);
	{
		struct kha_backup_list l = {};
		if (kha_backup_list_dir(o->dir, &l, NULL) == 0)
			res.kept = l.n;
		kha_backup_list_release(&l);
	}
	*ret = res;
	return 0;
}
