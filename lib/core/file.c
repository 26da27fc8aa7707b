// SPDX-License-Identifier: MIT
/* Atomic file writes, bounded reads, mkdir -p and rm -rf (see include/kha/file.h). */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kha/file.h"
#include "kha/banned.h"

/* The directory part of path ("." when it has none), as a new string. */
static char *dir_of(const char *path)
{
	kha_autofree char *copy = strdup(path);

	if (!copy)
		return NULL;
	return strdup(dirname(copy));
}

static int fsync_dir(const char *path)
{
	kha_autofree char *dir = dir_of(path);
	kha_autoclose int fd = -1;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

static void release(struct kha_atomic_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->path);
	free(f->tmp_path);
	f->path = NULL;
	f->tmp_path = NULL;
}

int kha_atomic_file_open(struct kha_atomic_file *f, const char *path, mode_t mode,
			 struct kha_diag *d)
{
	kha_autofree char *dir = NULL, *copy = NULL;
	struct stat st;
	int r;

	*f = (struct kha_atomic_file){.fd = -1, .mode = mode};
	if (!path || !*path)
		return kha_diag_set(d, EINVAL, "empty file name");
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return kha_diag_set(d, EISDIR, "%s: is a directory", path);
	dir = dir_of(path);
	copy = strdup(path);
	f->path = strdup(path);
	if (!dir || !copy || !f->path) {
		release(f);
		return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
	}
	if (asprintf(&f->tmp_path, "%s/.%s.tmp.XXXXXX", dir, basename(copy)) < 0) {
		f->tmp_path = NULL;
		release(f);
		return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
	}
	/* mkostemp creates with O_EXCL and mode 0600: nobody else can open it meanwhile */
	f->fd = mkostemp(f->tmp_path, O_CLOEXEC);
	if (f->fd < 0) {
		r = -errno;
		kha_diag_set(d, r, "%s: cannot create a temporary file in %s: %s", path, dir,
			     strerror(-r));
		release(f);
		return r;
	}
	if (fchmod(f->fd, mode) < 0) {
		r = -errno;
		kha_diag_set(d, r, "%s: chmod %04o: %s", f->tmp_path, (unsigned)mode, strerror(-r));
		kha_atomic_file_abort(f);
		return r;
	}
	return 0;
}

int kha_atomic_file_write(struct kha_atomic_file *f, const void *data, size_t len,
			  struct kha_diag *d)
{
	const char *p = data;

	if (f->fd < 0)
		return kha_diag_set(d, EBADF, "atomic file not open");
	while (len > 0) {
		ssize_t n = write(f->fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kha_diag_set(d, errno, "%s: write: %s", f->path, strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int kha_atomic_file_commit(struct kha_atomic_file *f, struct kha_diag *d)
{
	int r, fd;

	if (f->fd < 0) {
		release(f);
		return kha_diag_set(d, EBADF, "atomic file not open");
	}
	if (fsync(f->fd) < 0) {
		r = -errno;
		kha_diag_set(d, r, "%s: fsync: %s", f->tmp_path, strerror(-r));
		kha_atomic_file_abort(f);
		return r;
	}
	fd = KHA_TAKE_FD(f->fd);
	if (close(fd) < 0 && errno != EINTR) {
		r = -errno;
		kha_diag_set(d, r, "%s: close: %s", f->tmp_path, strerror(-r));
		kha_atomic_file_abort(f);
		return r;
	}
	if (rename(f->tmp_path, f->path) < 0) {
		r = -errno;
		kha_diag_set(d, r, "%s: rename: %s", f->path, strerror(-r));
		kha_atomic_file_abort(f);
		return r;
	}
	r = fsync_dir(f->path);
	if (r < 0)
		kha_diag_set(d, r, "%s: fsync of the directory: %s", f->path, strerror(-r));
	release(f);
	return r;
}

void kha_atomic_file_abort(struct kha_atomic_file *f)
{
	if (f->tmp_path)
		(void)unlink(f->tmp_path);
	release(f);
}

int kha_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			  struct kha_diag *d)
{
	struct kha_atomic_file f;
	int r;

	r = kha_atomic_file_open(&f, path, mode, d);
	if (r < 0)
		return r;
	r = kha_atomic_file_write(&f, data, len, d);
	if (r < 0) {
		kha_atomic_file_abort(&f);
		return r;
	}
	return kha_atomic_file_commit(&f, d);
}

int kha_file_read_all(const char *path, size_t max, char **ret_buf, size_t *ret_len,
		      struct kha_diag *d)
{
	kha_autoclose int fd = -1;
	kha_autofree char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return kha_diag_set(d, EISDIR, "%s: is a directory", path);
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
		return kha_diag_set(d, EFBIG, "%s: larger than %zu bytes", path, max);
	/* st_size is a hint only (procfs says 0, the file may grow): read until EOF */
	cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			size_t ncap = cap * 2;
			char *nbuf;

			/* room for one byte more than max, to tell "exactly max" from "larger" */
			if (ncap > max + 2)
				ncap = max + 2;
			if (ncap <= len + 1)
				return kha_diag_set(d, EFBIG, "%s: larger than %zu bytes", path,
						    max);
			nbuf = realloc(buf, ncap);
			if (!nbuf)
				return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
			buf = nbuf;
			cap = ncap;
		}
		if (!buf) {
			buf = malloc(cap);
			if (!buf)
				return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return kha_diag_set(d, errno, "%s: read: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return kha_diag_set(d, EFBIG, "%s: larger than %zu bytes", path, max);
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
	}
	buf[len] = '\0';
	*ret_buf = KHA_TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

int kha_file_mkdir_p(const char *path, mode_t mode, struct kha_diag *d)
{
	kha_autofree char *copy = strdup(path);
	struct stat st;

	if (!copy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (char *p = copy + 1;; p++) {
		bool end = *p == '\0';

		if (!end && *p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			return kha_diag_set(d, errno, "%s: mkdir: %s", copy, strerror(errno));
		if (end)
			break;
		*p = '/';
	}
	if (stat(path, &st) < 0)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return kha_diag_set(d, ENOTDIR, "%s: exists and is not a directory", path);
	return 0;
}

/* Empties the directory open at dfd (which it closes); name is for messages. */
static int remove_contents(int dfd, const char *name, struct kha_diag *d)
{
	DIR *dir = fdopendir(dfd);
	struct dirent *de;
	int r = 0;

	if (!dir) {
		r = -errno;
		close(dfd);
		return kha_diag_set(d, r, "%s: %s", name, strerror(-r));
	}
	while (r == 0 && (errno = 0, de = readdir(dir))) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			r = kha_diag_set(d, errno, "%s/%s: unlink: %s", name, de->d_name,
					 strerror(errno));
			break;
		}
		sub = openat(dirfd(dir), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			r = kha_diag_set(d, errno, "%s/%s: %s", name, de->d_name, strerror(errno));
			break;
		}
		r = remove_contents(sub, de->d_name, d);
		if (r == 0 && unlinkat(dirfd(dir), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			r = kha_diag_set(d, errno, "%s/%s: rmdir: %s", name, de->d_name,
					 strerror(errno));
	}
	if (r == 0 && errno != 0)
		r = kha_diag_set(d, errno, "%s: readdir: %s", name, strerror(errno));
	closedir(dir);
	return r;
}

int kha_file_remove_tree(const char *path, struct kha_diag *d)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return kha_diag_set(d, errno, "%s: unlink: %s", path, strerror(errno));
		return 0;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	r = remove_contents(fd, path, d);
	if (r < 0)
		return r;
	if (rmdir(path) < 0 && errno != ENOENT)
		return kha_diag_set(d, errno, "%s: rmdir: %s", path, strerror(errno));
	return 0;
}
