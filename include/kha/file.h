/* SPDX-License-Identifier: MIT */
/*
 * Files written so that a reader (or a crash) never sees half of them: the data goes to a
 * temporary file in the target's directory (created O_EXCL|O_CLOEXEC with the final mode from
 * the start, so a private key is never readable by others), is fsync'ed, renamed over the
 * target, and the directory is fsync'ed so the rename itself survives a power cut. On any
 * failure the temporary file is removed and the target is left exactly as it was.
 *
 * Two forms: kha_file_write_atomic() for data already in memory, and struct kha_atomic_file
 * for streams (snapshots, downloads): _open, _write as many times as needed, then _commit or
 * _abort. Plus a bounded kha_file_read_all() and the directory helpers the lab needs.
 */
#ifndef KHA_FILE_H
#define KHA_FILE_H

#include <sys/types.h>

#include "kha/diag.h"

/*
 * A file being written atomically. Embed it (no heap struct); between a successful _open and
 * _commit/_abort it owns fd and both paths. fd may be handed to other writers (write(2),
 * sendfile, a decompressor) as long as the file is then finished through _commit or _abort.
 */
struct kha_atomic_file {
	int fd;		/* the temporary file, -1 when closed */
	char *path;	/* the target */
	char *tmp_path; /* the temporary file, next to the target */
	mode_t mode;
};

/*
 * Creates the temporary file for path with the given mode (the umask does not apply: 0600 means
 * 0600). Returns 0, or a negative errno (-ENOENT: no such directory, -EACCES, -EISDIR: path is a
 * directory, ...) with diag naming the path.
 */
int kha_atomic_file_open(struct kha_atomic_file *f, const char *path, mode_t mode,
			 struct kha_diag *d) KHA_WUR;
/* Appends len bytes (retrying short writes and EINTR). Returns 0 or a negative errno. */
int kha_atomic_file_write(struct kha_atomic_file *f, const void *data, size_t len,
			  struct kha_diag *d) KHA_WUR;
/*
 * fsyncs, closes, renames over the target and fsyncs the directory. On failure the temporary
 * file is removed. Either way f is released afterwards (no _abort needed). Returns 0 or a
 * negative errno.
 */
int kha_atomic_file_commit(struct kha_atomic_file *f, struct kha_diag *d) KHA_WUR;
/* Closes and removes the temporary file; the target is untouched. Safe on a released f. */
void kha_atomic_file_abort(struct kha_atomic_file *f);

/* The whole dance for data in memory: open, write, commit. Returns 0 or a negative errno. */
int kha_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			  struct kha_diag *d) KHA_WUR;

/*
 * Reads a whole regular file of at most max bytes into a new buffer (the caller frees it with
 * free()), NUL-terminated for convenience (the NUL is not counted in *ret_len). Returns 0,
 * -EFBIG when the file is larger than max, or another negative errno, with diag naming the path.
 */
int kha_file_read_all(const char *path, size_t max, char **ret_buf, size_t *ret_len,
		      struct kha_diag *d) KHA_WUR;

/* Creates path and its missing parents (mkdir -p) with mode. Returns 0 or a negative errno. */
int kha_file_mkdir_p(const char *path, mode_t mode, struct kha_diag *d) KHA_WUR;

/*
 * Removes path recursively (rm -rf) without following symbolic links. A missing path is not an
 * error (returns 0), so callers can be idempotent. Returns 0 or a negative errno.
 */
int kha_file_remove_tree(const char *path, struct kha_diag *d) KHA_WUR;

#endif
