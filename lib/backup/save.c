// SPDX-License-Identifier: MIT
/*
 * kha_snapshot_save: one member's snapshot into a file that is either complete and verified
 * or absent. The bytes go to a temporary file next to the target as they arrive (the SHA-256
 * is computed on the way, the last 32 bytes held back until they are compared), the bbolt
 * database is then checked through a mapping of the temporary file, compressed when asked,
 * and only then renamed into place.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "kha/backup.h"
#include "kha/etcd-grpc.h"
#include "kha/file.h"
#include "kha/http.h"
#include "kha/banned.h"

#define DEFAULT_STALL_US   (30 * KHA_USEC_PER_SEC)
#define GATEWAY_DEFAULT_US (3600 * KHA_USEC_PER_SEC)
#define PROGRESS_EVERY_US  (100 * KHA_USEC_PER_MSEC)
#define DEFAULT_ZSTD_LEVEL 3
#define SINK_BUF	   (1u << 20)

const char *kha_snapshot_transport_name(enum kha_snapshot_transport t)
{
	switch (t) {
	case KHA_SNAPSHOT_AUTO:
		return "auto";
	case KHA_SNAPSHOT_GRPC:
		return "grpc";
	case KHA_SNAPSHOT_GATEWAY:
		return "gateway";
	}
	return "?";
}

int kha_snapshot_transport_parse(const char *s, enum kha_snapshot_transport *ret)
{
	for (int t = KHA_SNAPSHOT_AUTO; t <= KHA_SNAPSHOT_GATEWAY; t++) {
		if (strcmp(s, kha_snapshot_transport_name(t)) == 0) {
			*ret = t;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- the sink: hash, hold back the last 32 bytes, write ------------------------------------ */

struct sink {
	struct kha_atomic_file *file;
	EVP_MD_CTX *sha;
	uint8_t tail[KHA_SNAPSHOT_HASH_LEN];
	size_t tail_len;
	uint64_t written;   /* bytes written to the file (the database so far) */
	uint64_t total;	    /* expected bytes for the progress (0 = unknown) */
	uint64_t announced; /* bytes the member announced, hash included (0 = not yet) */
	int sink_err;	    /* the sink failed (its diag is set): not a transport error */
	uint64_t last_progress;
	const struct kha_snapshot_save_opts *o;
	const char *endpoint;
	struct kha_diag *d;
	uint8_t *buf; /* SINK_BUF bytes waiting to be written */
	size_t buf_len;
	uint8_t *line_buf; /* gateway: decoded blob */
	size_t line_cap;
};

/* Writes the buffered bytes to the file. */
static int sink_flush(struct sink *s)
{
	int r;

	if (!s->buf_len)
		return 0;
	r = kha_atomic_file_write(s->file, s->buf, s->buf_len, s->d);
	s->buf_len = 0;
	if (r < 0)
		s->sink_err = r;
	return r;
}

/* Hashes and writes database bytes, through a 1 MiB buffer (fewer syscalls than messages). */
static int sink_write(struct sink *s, const uint8_t *p, size_t n)
{
	int r;

	if (!n)
		return 0;
	if (EVP_DigestUpdate(s->sha, p, n) != 1)
		return kha_diag_set(s->d, ENOMEM, "SHA-256 failed");
	s->written += n;
	if (s->buf_len + n > SINK_BUF) {
		r = sink_flush(s);
		if (r < 0)
			return r;
	}
	if (n >= SINK_BUF) {
		r = kha_atomic_file_write(s->file, p, n, s->d);
		if (r < 0)
			s->sink_err = r;
		return r;
	}
	memcpy(s->buf + s->buf_len, p, n);
	s->buf_len += n;
	return 0;
}

static void sink_progress(struct sink *s, bool force)
{
	uint64_t now;

	if (!s->o->progress)
		return;
	now = kha_now_us();
	if (!force && now - s->last_progress < PROGRESS_EVERY_US)
		return;
	s->last_progress = now;
	s->o->progress(s->o->progress_userdata, s->written + s->tail_len, s->total);
}

/* One piece of the snapshot, with the remaining byte count the member announced after it. */
static int sink_chunk(struct sink *s, const uint8_t *blob, size_t n, uint64_t remaining)
{
	int r;

	if (s->o->cancel && *s->o->cancel) {
		s->sink_err = kha_diag_set(s->d, ECANCELED, "interrupted");
		return s->sink_err;
	}
	if (s->announced == 0 && remaining) {
		/* the first piece: what it holds, what is left of the database, the hash */
		s->announced = s->written + s->tail_len + n + remaining + KHA_SNAPSHOT_HASH_LEN;
		s->total = s->announced;
	}
	if (n == 0) {
		sink_progress(s, false);
		return 0;
	}
	if (s->tail_len + n > KHA_SNAPSHOT_HASH_LEN) {
		size_t out = s->tail_len + n - KHA_SNAPSHOT_HASH_LEN;
		size_t from_tail = KHA_MIN(out, s->tail_len), keep;

		r = sink_write(s, s->tail, from_tail);
		if (r < 0)
			return r;
		memmove(s->tail, s->tail + from_tail, s->tail_len - from_tail);
		s->tail_len -= from_tail;
		r = sink_write(s, blob, out - from_tail);
		if (r < 0)
			return r;
		keep = n - (out - from_tail);
		memcpy(s->tail + s->tail_len, blob + (out - from_tail), keep);
		s->tail_len += keep;
	} else {
		memcpy(s->tail + s->tail_len, blob, n);
		s->tail_len += n;
	}
	/* etcd sends the database with remaining_bytes counting down to 0, then the hash */
	sink_progress(s, false);
	return 0;
}

/* After the stream: the held-back bytes must be the SHA-256 of everything before them. */
static int sink_finish(struct sink *s)
{
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (s->tail_len < KHA_SNAPSHOT_HASH_LEN || s->written == 0)
		return kha_diag_set(s->d, EBADMSG,
				    "etcd %s: snapshot: the stream ended after %llu bytes, without "
				    "its hash",
				    s->endpoint, (unsigned long long)(s->written + s->tail_len));
	if (s->announced && s->written + s->tail_len != s->announced)
		return kha_diag_set(s->d, EBADMSG,
				    "etcd %s: snapshot: got %llu bytes, the member announced %llu",
				    s->endpoint, (unsigned long long)(s->written + s->tail_len),
				    (unsigned long long)s->announced);
	if (EVP_DigestFinal_ex(s->sha, digest, &dlen) != 1 || dlen != KHA_SNAPSHOT_HASH_LEN)
		return kha_diag_set(s->d, ENOMEM, "SHA-256 failed");
	if (memcmp(digest, s->tail, KHA_SNAPSHOT_HASH_LEN) != 0)
		return kha_diag_set(s->d, EBADMSG,
				    "etcd %s: snapshot: SHA-256 mismatch (corrupted in transit or "
				    "on the member)",
				    s->endpoint);
	/* the checked hash is part of the file, as in etcdctl's */
	if (sink_flush(s) < 0)
		return s->sink_err;
	if (kha_atomic_file_write(s->file, s->tail, KHA_SNAPSHOT_HASH_LEN, s->d) < 0)
		return -EIO;
	sink_progress(s, true);
	return 0;
}

static int sink_reset(struct sink *s)
{
	if (ftruncate(s->file->fd, 0) < 0 || lseek(s->file->fd, 0, SEEK_SET) < 0) {
		int err = errno;
		return kha_diag_set(s->d, err, "%s: %s", s->file->tmp_path, strerror(err));
	}
	s->written = s->announced = 0;
	s->tail_len = 0;
	s->buf_len = 0;
	s->sink_err = 0;
	if (EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1)
		return kha_diag_set(s->d, ENOMEM, "SHA-256 failed");
	return 0;
}

/* ---- transports --------------------------------------------------------------------------- */

static int on_grpc_message(void *userdata, const uint8_t *msg, size_t len)
{
	struct sink *s = userdata;
	struct kha_pb_snapshot_chunk c;
	int r;

	if (kha_pb_decode_snapshot(msg, len, &c) < 0) {
		s->sink_err = kha_diag_set(s->d, EBADMSG, "etcd %s: snapshot: malformed message",
					   s->endpoint);
		return s->sink_err;
	}
	r = sink_chunk(s, c.blob, c.blob_len, c.remaining_bytes);
	return r;
}

static int stream_grpc(struct sink *s, uint64_t *ret_received, struct kha_diag *d)
{
	const struct kha_snapshot_save_opts *o = s->o;
	struct kha_grpc_call call = {
		.cfg = o->cfg,
		.endpoint = s->endpoint,
		.method = "/etcdserverpb.Maintenance/Snapshot",
		.timeout_us = o->timeout_us,
		.stall_us = o->stall_us ? o->stall_us : DEFAULT_STALL_US,
		.cancel = o->cancel,
		.fn = on_grpc_message,
		.userdata = s,
	};
	int r;

	r = kha_grpc_call(&call, ret_received, d);
	if (r < 0 && r != -ECANCELED && !s->sink_err)
		kha_diag_prefix(d, "etcd %s: snapshot", s->endpoint);
	return r;
}

static int on_gateway_line(void *userdata, char *line, size_t len)
{
	struct sink *s = userdata;
	uint64_t remaining = 0;
	size_t n = 0;
	int r;

	if (KHA_GROW(s->line_buf, s->line_cap, len) < 0)
		return kha_diag_set(s->d, ENOMEM, "out of memory");
	r = kha_etcd_decode_snapshot_line(line, len, s->line_buf, s->line_cap, &n, &remaining,
					  s->d);
	if (r < 0) {
		kha_diag_prefix(s->d, "etcd %s: snapshot", s->endpoint);
		s->sink_err = r;
		return r;
	}
	return sink_chunk(s, s->line_buf, n, remaining);
}

static int stream_gateway(struct sink *s, struct kha_diag *d)
{
	const struct kha_snapshot_save_opts *o = s->o;
	const struct kha_etcd_config *cfg = o->cfg;
	struct kha_http_options ho = {
		.cacert = cfg->cacert,
		.cert = cfg->cert,
		.key = cfg->key,
		.connect_timeout_us = cfg->dial_timeout_us,
	};
	kha_auto(kha_http_freep) struct kha_http *h = NULL;
	struct kha_http_response resp = {};
	kha_autofree char *url = NULL;
	struct kha_diag hd = {};
	struct kha_etcd_error e;
	int r;

	if (asprintf(&url, "%s/v3/maintenance/snapshot", s->endpoint) < 0) {
		url = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = kha_http_new(&ho, &h, d);
	if (r < 0)
		return r;
	{
		struct kha_http_request req = {
			.url = url,
			.body = "{}",
			.timeout_us = o->timeout_us ? o->timeout_us : GATEWAY_DEFAULT_US,
			.max_body = 64u << 20,
			.cancel = o->cancel,
		};
		r = kha_http_stream(h, &req, on_gateway_line, s, &resp, &hd);
	}
	if (r > 0 || (r < 0 && resp.fail == KHA_HTTP_FAIL_NONE)) {
		/* our line callback stopped it: s->d (== d) holds the reason */
	} else if (r < 0 && resp.fail == KHA_HTTP_FAIL_ABORTED) {
		r = kha_diag_set(d, ECANCELED, "interrupted");
	} else if (r < 0) {
		r = kha_diag_set(d, r, "etcd %s: snapshot (gateway): %s", s->endpoint, hd.msg);
	} else if (resp.status < 200 || resp.status >= 300) {
		if (resp.body && kha_etcd_decode_error(resp.body, resp.body_len, &e) == 0)
			r = kha_diag_set(d, kha_etcd_errno_from_grpc(e.grpc_code),
					 "etcd %s: snapshot: %s (gRPC %s)", s->endpoint, e.message,
					 kha_etcd_grpc_code_name(e.grpc_code));
		else
			r = kha_diag_set(d, EPROTO,
					 "etcd %s: snapshot: HTTP %ld: not an etcd gateway?",
					 s->endpoint, resp.status);
	}
	kha_http_response_release(&resp);
	return r;
}

/* ---- compression -------------------------------------------------------------------------- */

static int compress_into(const uint8_t *data, size_t len, int level, struct kha_atomic_file *out,
			 struct kha_diag *d)
{
	size_t cap = ZSTD_CStreamOutSize();
	kha_autofree uint8_t *buf = malloc(cap);
	ZSTD_CCtx *z = ZSTD_createCCtx();
	ZSTD_inBuffer in = {data, len, 0};
	int r = 0;

	if (!buf || !z) {
		ZSTD_freeCCtx(z);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1);
	/* both cores when libzstd has threads (Debian's has); ignored otherwise */
	ZSTD_CCtx_setParameter(z, ZSTD_c_nbWorkers, 2);
	ZSTD_CCtx_setPledgedSrcSize(z, len);
	for (;;) {
		ZSTD_outBuffer ob = {buf, cap, 0};
		size_t left = ZSTD_compressStream2(z, &ob, &in, ZSTD_e_end);

		if (ZSTD_isError(left)) {
			r = kha_diag_set(d, EIO, "zstd: %s", ZSTD_getErrorName(left));
			break;
		}
		if (ob.pos) {
			r = kha_atomic_file_write(out, buf, ob.pos, d);
			if (r < 0)
				break;
		}
		if (left == 0)
			break;
	}
	ZSTD_freeCCtx(z);
	return r;
}

/* ---- save --------------------------------------------------------------------------------- */

static char *normalize_endpoint(const struct kha_etcd_config *cfg, const char *ep)
{
	size_t len = strlen(ep);
	char *s = NULL;

	while (len && ep[len - 1] == '/')
		len--;
	if (strstr(ep, "://"))
		return strndup(ep, len);
	if (asprintf(&s, "%s%.*s", cfg->cacert || cfg->cert ? "https://" : "http://", (int)len,
		     ep) < 0)
		return NULL;
	return s;
}

static bool unreachable(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ENETUNREACH ||
	       r == -EACCES || r == -ENOENT;
}

/* The member's status first: its revision for the report, its size for the progress. */
static int member_status(const struct kha_snapshot_save_opts *o, const char *ep,
			 struct kha_snapshot_save_result *res, uint64_t *ret_db_size,
			 struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_etcd_status st = {};
	int r;

	r = kha_etcd_new_endpoint(o->cfg, ep, &c, d);
	if (r < 0)
		return r;
	r = kha_etcd_status(c, &st, d);
	if (r < 0)
		return r;
	res->header = st.header;
	snprintf(res->version, sizeof(res->version), "%s", st.version ? st.version : "");
	*ret_db_size = st.db_size > 0 ? (uint64_t)st.db_size : 0;
	kha_etcd_status_release(&st);
	return 0;
}

static int set_target(struct kha_atomic_file *f, const char *path, struct kha_diag *d)
{
	char *p = strdup(path);

	if (!p)
		return kha_diag_set(d, ENOMEM, "out of memory");
	free(f->path);
	f->path = p;
	return 0;
}

/*
 * The whole stream into the sink, its hash checked: gRPC, or the gateway when asked, or when
 * the endpoint refused gRPC before any byte (auto; res->fallback says why). Returns 0 or a
 * negative errno.
 */
static int stream(struct sink *s, uint64_t db_size, struct kha_snapshot_save_result *res,
		  struct kha_diag *d)
{
	const struct kha_snapshot_save_opts *o = s->o;
	uint64_t received = 0;
	int r = 0;

	res->transport =
		o->transport == KHA_SNAPSHOT_GATEWAY ? KHA_SNAPSHOT_GATEWAY : KHA_SNAPSHOT_GRPC;
	if (res->transport == KHA_SNAPSHOT_GRPC) {
		r = stream_grpc(s, &received, d);
		if (r == -EPROTONOSUPPORT && o->transport == KHA_SNAPSHOT_AUTO && received == 0) {
			snprintf(res->fallback, sizeof(res->fallback), "%s", d ? d->msg : "");
			res->transport = KHA_SNAPSHOT_GATEWAY;
			r = sink_reset(s);
			if (r == 0)
				s->total = db_size ? db_size + KHA_SNAPSHOT_HASH_LEN : 0;
			if (d)
				kha_diag_clear(d);
		}
	}
	if (res->transport == KHA_SNAPSHOT_GATEWAY && r == 0)
		r = stream_gateway(s, d);
	if (r == 0)
		r = sink_finish(s);
	return r > 0 ? -EPROTO : r;
}

/*
 * The bbolt structure of what was written (len bytes of raw, the hash included), through a
 * mapping left in *ret_map for the compression. Fills res->info.
 */
static int verify_written(struct kha_atomic_file *raw, size_t len, const char *ep,
			  struct kha_snapshot_save_result *res, void **ret_map, struct kha_diag *d)
{
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, raw->fd, 0);
	int r;

	if (map == MAP_FAILED)
		return kha_diag_set(d, errno, "%s: mmap: %s", raw->tmp_path, strerror(errno));
	*ret_map = map;
	r = kha_snapshot_check_db(map, len - KHA_SNAPSHOT_HASH_LEN, &res->info, d);
	if (r < 0) {
		kha_diag_prefix(d, "etcd %s: snapshot: database", ep);
		return r;
	}
	res->info.has_hash = true;
	res->info.file_size = len;
	return 0;
}

static int cancelled(const struct kha_snapshot_save_opts *o, struct kha_diag *d)
{
	return o->cancel && *o->cancel ? kha_diag_set(d, ECANCELED, "interrupted") : 0;
}

/*
 * The verified file into place at final_path: compressed into packed from the mapping, or raw
 * renamed. Unmaps *map (set to MAP_FAILED). On failure the caller aborts both files.
 */
static int commit(const struct kha_snapshot_save_opts *o, struct kha_atomic_file *raw,
		  struct kha_atomic_file *packed, void **map, size_t map_len,
		  const char *final_path, struct kha_snapshot_save_result *res, struct kha_diag *d)
{
	uint64_t t0 = kha_now_us();
	struct stat st;
	int r;

	if (!o->compress) {
		munmap(*map, map_len);
		*map = MAP_FAILED;
		r = set_target(raw, final_path, d);
		return r < 0 ? r : kha_atomic_file_commit(raw, d);
	}
	r = kha_atomic_file_open(packed, final_path, o->mode ? o->mode : 0600, d);
	if (r < 0)
		return r;
	r = compress_into(*map, map_len, o->compress_level ? o->compress_level : DEFAULT_ZSTD_LEVEL,
			  packed, d);
	if (r < 0)
		return r;
	if (fstat(packed->fd, &st) == 0)
		res->info.file_size = (uint64_t)st.st_size;
	res->info.compressed = true;
	munmap(*map, map_len);
	*map = MAP_FAILED;
	r = cancelled(o, d);
	if (r < 0)
		return r;
	r = kha_atomic_file_commit(packed, d);
	kha_atomic_file_abort(raw);
	if (r < 0)
		return r;
	res->compress_us = kha_now_us() - t0;
	return 0;
}

int kha_snapshot_save(const struct kha_snapshot_save_opts *o, struct kha_snapshot_save_result *ret,
		      struct kha_diag *d)
{
	struct kha_snapshot_save_result res = {};
	struct kha_atomic_file raw = {.fd = -1}, packed = {.fd = -1};
	struct sink s = {.o = o, .d = d, .file = &raw};
	kha_autofree char *ep = NULL;
	struct kha_diag sd = {};
	uint64_t t0 = kha_now_us(), t1, db_size = 0;
	char final_path[4096];
	void *map = MAP_FAILED;
	size_t map_len = 0;
	int r;

	if (!o->cfg || (!o->endpoint && !o->cfg->n_endpoints))
		return kha_diag_set(d, EINVAL, "no etcd endpoint given (--endpoints)");
	if (!o->path || !*o->path)
		return kha_diag_set(d, EINVAL, "no snapshot file given");
	ep = normalize_endpoint(o->cfg, o->endpoint ? o->endpoint : o->cfg->endpoints[0]);
	if (!ep)
		return kha_diag_set(d, ENOMEM, "out of memory");
	snprintf(res.endpoint, sizeof(res.endpoint), "%s", ep);
	s.endpoint = ep;

	r = member_status(o, ep, &res, &db_size, &sd);
	if (r < 0 && unreachable(r))
		return kha_diag_set(d, r, "%s", sd.msg);
	/* else: the gateway may be broken (see DESIGN.md) while gRPC works; go on without it */
	if (db_size)
		s.total = db_size + KHA_SNAPSHOT_HASH_LEN;

	r = kha_atomic_file_open(&raw, o->path, o->mode ? o->mode : 0600, d);
	if (r < 0)
		return r;
	s.sha = EVP_MD_CTX_new();
	s.buf = malloc(SINK_BUF);
	if (!s.sha || !s.buf || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1) {
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto fail;
	}

	r = stream(&s, db_size, &res, d);
	if (r < 0)
		goto fail;
	t1 = kha_now_us();
	res.stream_us = t1 - t0;

	map_len = (size_t)(s.written + KHA_SNAPSHOT_HASH_LEN);
	r = verify_written(&raw, map_len, ep, &res, &map, d);
	if (r < 0)
		goto fail;
	res.verify_us = kha_now_us() - t1;

	snprintf(final_path, sizeof(final_path), "%s", o->path);
	if (o->name_fn) {
		r = o->name_fn(o->name_userdata, &res.info, final_path, sizeof(final_path));
		if (r < 0) {
			r = kha_diag_set(d, r, "cannot name the snapshot file");
			goto fail;
		}
	}
	r = cancelled(o, d);
	if (r < 0)
		goto fail;
	r = commit(o, &raw, &packed, &map, map_len, final_path, &res, d);
	if (r < 0)
		goto fail;
	snprintf(res.path, sizeof(res.path), "%s", final_path);
	res.total_us = kha_now_us() - t0;
	EVP_MD_CTX_free(s.sha);
	free(s.line_buf);
	free(s.buf);
	*ret = res;
	return 0;

fail:
	if (map != MAP_FAILED)
		munmap(map, map_len);
	kha_atomic_file_abort(&packed);
	kha_atomic_file_abort(&raw);
	EVP_MD_CTX_free(s.sha);
	free(s.line_buf);
	free(s.buf);
	return r;
}
