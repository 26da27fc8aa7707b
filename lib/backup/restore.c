// SPDX-License-Identifier: MIT
/*
 * Restore: never by hand. etcd's own tool (etcdutl, or etcdctl on 3.4) rewrites the member
 * and cluster ids and the raft state; kha verifies the snapshot first, decompresses it when
 * needed, runs the tool and checks what it wrote.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kha/backup.h"
#include "kha/file.h"
#include "kha/proc.h"
#include "kha/banned.h"

#define TOOL_TIMEOUT_US (10 * 60 * KHA_USEC_PER_SEC)
#define HELP_TIMEOUT_US (10 * KHA_USEC_PER_SEC)

/* Runs argv with its output into log_path; returns its exit code or a negative errno. */
static int run_tool(const char *const *argv, const char *log_path, uint64_t timeout_us,
		    struct kha_diag *d)
{
	static const char *const env[] = {"ETCDCTL_API=3", NULL};
	struct kha_proc_spawn_opts so = {.argv = argv, .env_add = env, .log_path = log_path};
	struct kha_proc p;
	int r;

	r = kha_proc_spawn(&so, &p, d);
	if (r < 0)
		return r;
	r = kha_proc_wait(&p, timeout_us);
	if (r == -ETIMEDOUT) {
		kha_ignore(kha_proc_stop(&p, 0, 5 * KHA_USEC_PER_SEC, NULL));
		kha_proc_release(&p);
		return kha_diag_set(d, ETIMEDOUT, "%s did not finish in time", argv[0]);
	}
	r = p.exit_status;
	kha_proc_release(&p);
	if (r < 0)
		return kha_diag_set(d, EIO, "%s: no exit status", argv[0]);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128 + (WIFSIGNALED(r) ? WTERMSIG(r) : 0);
}

/* The last size-1 bytes of a file, NUL-terminated, as one printable line per line. */
static void tail_of(const char *path, char *buf, size_t size)
{
	kha_autofree char *text = NULL;
	size_t len = 0, start;

	buf[0] = '\0';
	if (kha_file_read_all(path, 1 << 20, &text, &len, NULL) < 0)
		return;
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	start = len >= size ? len - size + 1 : 0;
	snprintf(buf, size, "%.*s", (int)(len - start), text + start);
}

int kha_restore_check_member(const struct kha_restore_opts *o, struct kha_diag *d)
{
	size_t nl = strlen(o->name), ul = strcspn(o->initial_advertise_peer_urls, ",");

	for (const char *p = o->initial_cluster; p && *p;) {
		size_t el = strcspn(p, ",");

		if (el == nl + 1 + ul && strncmp(p, o->name, nl) == 0 && p[nl] == '=' &&
		    strncmp(p + nl + 1, o->initial_advertise_peer_urls, ul) == 0)
			return 0;
		p = p[el] ? p + el + 1 : NULL;
	}
	return kha_diag_set(d, EINVAL, "--initial-cluster must list %s=%.*s (this member)", o->name,
			    (int)ul, o->initial_advertise_peer_urls);
}

int kha_restore_find_tool(const char *path, struct kha_restore_tool *ret, struct kha_diag *d)
{
	struct kha_restore_tool t = {};
	kha_autofree char *found = NULL, *help = NULL, *copy = NULL;
	char tmpl[] = "/tmp/kha-restore-help.XXXXXX";
	size_t len = 0;
	int fd, r;

	if (path) {
		r = kha_proc_find_program(path, &found);
		if (r < 0)
			return kha_diag_set(d, ENOENT, "--tool %s: not found or not executable",
					    path);
	} else if (kha_proc_find_program("etcdutl", &found) < 0 &&
		   kha_proc_find_program("etcdctl", &found) < 0) {
		return kha_diag_set(
			d, ENOENT,
			"neither etcdutl nor etcdctl is installed (Debian: etcd-client; "
			"or --tool PATH)");
	}
	snprintf(t.path, sizeof(t.path), "%s", found);
	copy = strdup(found);
	if (!copy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	t.etcdutl = strstr(basename(copy), "etcdutl") != NULL;
	/* what it can do: its help says */
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0) {
		const char *const argv[] = {t.path, "snapshot", "restore", "--help", NULL};

		close(fd);
		r = run_tool(argv, tmpl, HELP_TIMEOUT_US, NULL);
		if (r >= 0 && kha_file_read_all(tmpl, 1 << 20, &help, &len, NULL) == 0)
			t.can_bump =
				strstr(help, "--bump-revision") && strstr(help, "--mark-compacted");
		(void)unlink(tmpl);
	}
	*ret = t;
	return 0;
}

void kha_restore_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

int kha_restore_argv(const struct kha_restore_opts *o, const struct kha_restore_tool *tool,
		     const char *file, char ***ret_argv)
{
	char bump[32];
	const char *v[32];
	size_t n = 0;
	char **argv;

	v[n++] = tool->path;
	v[n++] = "snapshot";
	v[n++] = "restore";
	v[n++] = file;
	v[n++] = "--data-dir";
	v[n++] = o->data_dir;
	if (o->wal_dir) {
		v[n++] = "--wal-dir";
		v[n++] = o->wal_dir;
	}
	v[n++] = "--name";
	v[n++] = o->name;
	v[n++] = "--initial-cluster";
	v[n++] = o->initial_cluster;
	v[n++] = "--initial-advertise-peer-urls";
	v[n++] = o->initial_advertise_peer_urls;
	if (o->initial_cluster_token) {
		v[n++] = "--initial-cluster-token";
		v[n++] = o->initial_cluster_token;
	}
	if (o->bump_revision > 0 && tool->can_bump) {
		snprintf(bump, sizeof(bump), "%lld", (long long)o->bump_revision);
		v[n++] = "--bump-revision";
		v[n++] = bump;
		v[n++] = "--mark-compacted";
	}
	if (o->allow_no_hash)
		v[n++] = "--skip-hash-check";
	argv = calloc(n + 1, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		argv[i] = strdup(v[i] ? v[i] : "");
		if (!argv[i]) {
			kha_restore_argv_free(argv);
			return -ENOMEM;
		}
	}
	*ret_argv = argv;
	return 0;
}

/* Absent, or an empty directory (etcd's tools refuse an existing one: removed first). */
static int check_data_dir(const char *dir, bool *ret_empty_existing, struct kha_diag *d)
{
	struct dirent *de;
	struct stat st;
	DIR *dp;

	*ret_empty_existing = false;
	if (stat(dir, &st) < 0)
		return errno == ENOENT ? 0 : kha_diag_set(d, errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return kha_diag_set(d, EEXIST, "--data-dir %s exists and is not a directory", dir);
	dp = opendir(dir);
	if (!dp)
		return kha_diag_set(d, errno, "%s: %s", dir, strerror(errno));
	while ((de = readdir(dp))) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			closedir(dp);
			return kha_diag_set(
				d, EEXIST,
				"--data-dir %s is not empty: restoring never overwrites "
				"a data dir (move it away first)",
				dir);
		}
	}
	closedir(dp);
	*ret_empty_existing = true;
	return 0;
}

/* The revision of the database the tool wrote (member/snap/db). */
static int64_t restored_revision(const char *data_dir)
{
	kha_autofree char *db = NULL;
	struct kha_snapshot_info info;
	struct stat st;
	int64_t rev = -1;
	void *map;
	int fd;

	if (asprintf(&db, "%s/member/snap/db", data_dir) < 0) {
		db = NULL;
		return -1;
	}
	fd = open(db, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map != MAP_FAILED) {
			if (kha_snapshot_check_db(map, (size_t)st.st_size, &info, NULL) == 0)
				rev = info.revision;
			munmap(map, (size_t)st.st_size);
		}
	}
	close(fd);
	return rev;
}

int kha_restore(const struct kha_restore_opts *o, const struct kha_restore_tool *tool,
		struct kha_restore_result *ret, struct kha_diag *d)
{
	struct kha_restore_result res = {.tool = *tool};
	kha_autofree char *parent = NULL, *tmpdir = NULL, *plain = NULL, *log = NULL;
	char **argv = NULL;
	const char *file = o->snapshot;
	bool empty_existing = false, ran = false;
	int r, status;

	if (!o->snapshot || !o->data_dir || !o->name || !o->initial_cluster ||
	    !o->initial_advertise_peer_urls)
		return kha_diag_set(d, EINVAL,
				    "restore needs the snapshot, --data-dir, --name, "
				    "--initial-cluster and --initial-advertise-peer-urls");
	r = kha_snapshot_verify_file(o->snapshot, o->allow_no_hash, &res.snapshot, d);
	if (r < 0) {
		if (r == -EBADMSG)
			kha_diag_prefix(d, "refusing to restore a corrupt snapshot");
		return r;
	}
	r = check_data_dir(o->data_dir, &empty_existing, d);
	if (r < 0)
		return r;
	/* a scratch directory for the decompressed copy and the tool's output */
	if (o->tmp_dir) {
		parent = strdup(o->tmp_dir);
	} else {
		kha_autofree char *copy = strdup(o->data_dir);
		parent = copy ? strdup(dirname(copy)) : NULL;
	}
	if (!parent)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_file_mkdir_p(parent, 0700, d);
	if (r < 0)
		return r;
	if (asprintf(&tmpdir, "%s/.kha-restore.XXXXXX", parent) < 0) {
		tmpdir = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (!mkdtemp(tmpdir)) {
		r = -errno;
		kha_diag_set(d, r, "%s: cannot create a scratch directory: %s", parent,
			     strerror(-r));
		free(tmpdir);
		tmpdir = NULL;
		return r;
	}
	if (asprintf(&log, "%s/tool.log", tmpdir) < 0) {
		log = NULL;
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto out;
	}
	if (res.snapshot.compressed) {
		int fd;

		if (asprintf(&plain, "%s/snapshot.db", tmpdir) < 0) {
			plain = NULL;
			r = kha_diag_set(d, ENOMEM, "out of memory");
			goto out;
		}
		fd = open(plain, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			r = kha_diag_set(d, errno, "%s: %s", plain, strerror(errno));
			goto out;
		}
		r = kha_snapshot_decompress(o->snapshot, fd, NULL, d);
		close(fd);
		if (r < 0)
			goto out;
		file = plain;
	}
	/* etcd's tools refuse an existing data dir, even an empty one */
	if (empty_existing && rmdir(o->data_dir) < 0) {
		r = kha_diag_set(d, errno, "%s: %s", o->data_dir, strerror(errno));
		goto out;
	}
	r = kha_restore_argv(o, tool, file, &argv);
	if (r < 0) {
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto out;
	}
	ran = true;
	status = run_tool((const char *const *)argv, log, TOOL_TIMEOUT_US, d);
	tail_of(log, res.output, sizeof(res.output));
	if (status < 0) {
		r = status;
		goto out;
	}
	if (status != 0) {
		r = kha_diag_set(d, EIO, "%s snapshot restore failed (exit %d): %s", tool->path,
				 status, res.output[0] ? res.output : "no output");
		goto out;
	}
	res.bumped = o->bump_revision > 0 && tool->can_bump;
	res.restored_revision = restored_revision(o->data_dir);
	if (res.restored_revision < 0) {
		r = kha_diag_set(d, EIO, "%s: the restored member's database is missing or invalid",
				 o->data_dir);
		goto out;
	}
	ran = false; /* success: the data dir stays */
	*ret = res;
	r = 0;
out:
	kha_restore_argv_free(argv);
	if (ran) {
		/* a failed restore leaves no half data dir behind (it was absent or empty) */
		struct kha_diag ignored = {};
		kha_ignore(kha_file_remove_tree(o->data_dir, &ignored));
	}
	if (tmpdir) {
		struct kha_diag ignored = {};
		kha_ignore(kha_file_remove_tree(tmpdir, &ignored));
	}
	return r;
}
