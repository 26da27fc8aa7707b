// SPDX-License-Identifier: MIT
/*
 * Snapshot files: the appended SHA-256, the bbolt structure, zstd compression detected by its
 * magic. Files are mapped, not read, so a database of gigabytes costs page cache, not heap.
 */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "kha/backup.h"
#include "kha/banned.h"

int kha_snapshot_verify_buffer(const uint8_t *data, size_t len, bool allow_no_hash,
			       struct kha_snapshot_info *ret, struct kha_diag *d)
{
	struct kha_snapshot_info info = {};
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	size_t db_len = len;
	int r;

	if (len == 0)
		return kha_diag_set(d, EBADMSG, "empty file");
	if (len % 512 == KHA_SNAPSHOT_HASH_LEN) {
		db_len = len - KHA_SNAPSHOT_HASH_LEN;
		if (EVP_Digest(data, db_len, digest, &dlen, EVP_sha256(), NULL) != 1 ||
		    dlen != KHA_SNAPSHOT_HASH_LEN)
			return kha_diag_set(d, ENOMEM, "SHA-256 failed");
		if (memcmp(digest, data + db_len, KHA_SNAPSHOT_HASH_LEN) != 0)
			return kha_diag_set(
				d, EBADMSG,
				"SHA-256 mismatch: the database does not match the hash "
				"etcd appended (corrupted or truncated)");
		info.has_hash = true;
	} else if (!allow_no_hash) {
		return kha_diag_set(
			d, EBADMSG,
			"no integrity hash: %zu bytes is not a database plus its 32-byte SHA-256 "
			"(truncated? a db file copied from a data dir needs --allow-no-hash)",
			len);
	}
	r = kha_snapshot_check_db(data, db_len, &info, d);
	if (r < 0) {
		kha_diag_prefix(d, "database");
		return r;
	}
	info.has_hash = db_len != len;
	info.file_size = len;
	*ret = info;
	return 0;
}

static int read_magic(int fd, uint32_t *ret)
{
	uint8_t m[4];
	ssize_t n = pread(fd, m, sizeof(m), 0);

	if (n < 0)
		return -errno;
	if (n < 4) {
		*ret = 0;
		return 0;
	}
	*ret = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int open_input(const char *path, struct stat *st, struct kha_diag *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int r = -errno;
		return kha_diag_set(d, r, "%s: %s", path, strerror(-r));
	}
	if (fstat(fd, st) < 0) {
		int r = -errno;
		close(fd);
		return kha_diag_set(d, r, "%s: %s", path, strerror(-r));
	}
	if (S_ISDIR(st->st_mode)) {
		close(fd);
		return kha_diag_set(d, EISDIR, "%s: is a directory, not a snapshot file", path);
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return kha_diag_set(d, EINVAL, "%s: not a regular file", path);
	}
	return fd;
}

/* zstd stream from in_fd to out_fd. */
static int unzstd(int in_fd, int out_fd, const char *path, struct kha_diag *d)
{
	size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize(), last = 0;
	kha_autofree uint8_t *in = malloc(in_cap), *out = malloc(out_cap);
	ZSTD_DCtx *z = ZSTD_createDCtx();
	bool any = false;
	int r = 0;

	if (!in || !out || !z) {
		ZSTD_freeDCtx(z);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	for (;;) {
		ssize_t n = read(in_fd, in, in_cap);
		ZSTD_inBuffer ib = {in, 0, 0};

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			kha_diag_set(d, r, "%s: read: %s", path, strerror(-r));
			break;
		}
		if (n == 0) {
			if (!any || last != 0)
				r = kha_diag_set(d, EBADMSG,
						 "%s: the zstd stream is truncated (corrupt file)",
						 path);
			break;
		}
		any = true;
		ib.size = (size_t)n;
		while (ib.pos < ib.size) {
			ZSTD_outBuffer ob = {out, out_cap, 0};
			last = ZSTD_decompressStream(z, &ob, &ib);
			if (ZSTD_isError(last)) {
				r = kha_diag_set(d, EBADMSG, "%s: zstd: %s (corrupt file)", path,
						 ZSTD_getErrorName(last));
				goto out;
			}
			if (ob.pos) {
				r = write_all(out_fd, out, ob.pos);
				if (r < 0) {
					kha_diag_set(d, r, "decompressing %s: write: %s", path,
						     strerror(-r));
					goto out;
				}
			}
		}
	}
out:
	ZSTD_freeDCtx(z);
	return r;
}

int kha_snapshot_decompress(const char *path, int out_fd, bool *ret_compressed, struct kha_diag *d)
{
	kha_autoclose int fd = -1;
	struct stat st;
	uint32_t magic = 0;
	int r;

	fd = open_input(path, &st, d);
	if (fd < 0)
		return fd;
	r = read_magic(fd, &magic);
	if (r < 0)
		return kha_diag_set(d, r, "%s: read: %s", path, strerror(-r));
	if (ret_compressed)
		*ret_compressed = magic == KHA_ZSTD_MAGIC;
	if (magic == KHA_ZSTD_MAGIC)
		return unzstd(fd, out_fd, path, d);
	for (;;) {
		char buf[65536];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			return kha_diag_set(d, r, "%s: read: %s", path, strerror(-r));
		}
		if (n == 0)
			return 0;
		r = write_all(out_fd, buf, (size_t)n);
		if (r < 0)
			return kha_diag_set(d, r, "copying %s: write: %s", path, strerror(-r));
	}
}

/* An unlinked temporary file in dir (O_TMPFILE, else mkostemp + unlink). */
static int anon_tmp(const char *dir)
{
	kha_autofree char *tmpl = NULL;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	if (asprintf(&tmpl, "%s/.kha-verify.XXXXXX", dir) < 0) {
		tmpl = NULL;
		return -ENOMEM;
	}
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)unlink(tmpl);
	return fd;
}

static int verify_fd(int fd, size_t size, bool allow_no_hash, struct kha_snapshot_info *ret,
		     struct kha_diag *d)
{
	void *map;
	int r;

	if (size == 0)
		return kha_diag_set(d, EBADMSG, "empty file");
	map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		return kha_diag_set(d, r, "mmap: %s", strerror(-r));
	}
	(void)madvise(map, size, MADV_SEQUENTIAL);
	r = kha_snapshot_verify_buffer(map, size, allow_no_hash, ret, d);
	munmap(map, size);
	return r;
}

int kha_snapshot_verify_file(const char *path, bool allow_no_hash, struct kha_snapshot_info *ret,
			     struct kha_diag *d)
{
	kha_autoclose int fd = -1, tmp = -1;
	kha_autofree char *copy = NULL;
	struct stat st, tst;
	uint32_t magic = 0;
	int r;

	fd = open_input(path, &st, d);
	if (fd < 0)
		return fd;
	r = read_magic(fd, &magic);
	if (r < 0)
		return kha_diag_set(d, r, "%s: read: %s", path, strerror(-r));
	if (magic != KHA_ZSTD_MAGIC) {
		r = verify_fd(fd, (size_t)st.st_size, allow_no_hash, ret, d);
		if (r < 0)
			kha_diag_prefix(d, "%s", path);
		return r;
	}
	/* compressed: decompress next to the file (same filesystem as the backups), else $TMPDIR */
	copy = strdup(path);
	if (!copy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	tmp = anon_tmp(dirname(copy));
	if (tmp < 0) {
		const char *td = getenv("TMPDIR");
		tmp = anon_tmp(td && *td ? td : "/tmp");
	}
	if (tmp < 0)
		return kha_diag_set(d, tmp, "%s: no temporary file to decompress into: %s", path,
				    strerror(-tmp));
	r = unzstd(fd, tmp, path, d);
	if (r < 0)
		return r;
	if (fstat(tmp, &tst) < 0) {
		r = -errno;
		return kha_diag_set(d, r, "%s: %s", path, strerror(-r));
	}
	r = verify_fd(tmp, (size_t)tst.st_size, allow_no_hash, ret, d);
	if (r < 0) {
		kha_diag_prefix(d, "%s (decompressed)", path);
		return r;
	}
	ret->compressed = true;
	ret->file_size = (uint64_t)st.st_size;
	return 0;
}
