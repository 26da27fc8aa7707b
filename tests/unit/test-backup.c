// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/backup's wire and file formats: gRPC frames, the protobuf messages of the
 * snapshot and HashKV streams, the gateway's snapshot lines, and the bbolt checker on
 * databases built here byte by byte (valid ones and every kind of damage it must catch).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "kha/backup.h"
#include "kha/banned.h"

/* ---- gRPC frames ---------------------------------------------------------------------------- */

struct collected {
	size_t n;
	size_t lens[16];
	uint8_t first[16];
	int stop_at; /* 1-based message index to stop at, 0 = never */
};

static int collect(void *userdata, const uint8_t *msg, size_t len)
{
	struct collected *c = userdata;

	if (c->n < 16) {
		c->lens[c->n] = len;
		c->first[c->n] = len ? msg[0] : 0;
	}
	c->n++;
	return c->stop_at && (int)c->n == c->stop_at ? 42 : 0;
}

static size_t frame(uint8_t *out, const uint8_t *msg, uint32_t len)
{
	out[0] = 0;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
	if (len)
		memcpy(out + 5, msg, len);
	return 5 + len;
}

static size_t three_frames(uint8_t *buf)
{
	static const uint8_t a[] = {1, 2, 3}, b[300] = {7};
	size_t n = 0;

	n += frame(buf + n, a, sizeof(a));
	n += frame(buf + n, NULL, 0);
	n += frame(buf + n, b, sizeof(b));
	return n;
}

static void test_grpc_reader_reassembles_any_split(void **state)
{
	uint8_t buf[512];
	size_t n = three_frames(buf);

	(void)state;
	for (size_t piece = 1; piece <= n; piece++) {
		struct kha_grpc_reader r = {};
		struct collected c = {};

		for (size_t off = 0; off < n; off += piece)
			assert_int_equal(kha_grpc_reader_feed(&r, buf + off,
							      KHA_MIN(piece, n - off), collect, &c),
					 0);
		assert_int_equal(c.n, 3);
		assert_int_equal(c.lens[0], 3);
		assert_int_equal(c.first[0], 1);
		assert_int_equal(c.lens[1], 0);
		assert_int_equal(c.lens[2], 300);
		assert_int_equal(c.first[2], 7);
		assert_true(kha_grpc_reader_idle(&r));
		assert_int_equal(r.messages, 3);
		kha_grpc_reader_release(&r);
	}
}

static void test_grpc_reader_reports_cut_and_bad_frames(void **state)
{
	uint8_t buf[512];
	size_t n = three_frames(buf);
	struct kha_grpc_reader r = {};
	struct collected c = {};
	uint8_t comp[] = {1, 0, 0, 0, 1, 9};
	uint8_t huge[] = {0, 0x7f, 0xff, 0xff, 0xff};

	(void)state;
	assert_int_equal(kha_grpc_reader_feed(&r, buf, n - 10, collect, &c), 0);
	assert_false(kha_grpc_reader_idle(&r)); /* the stream was cut inside a message */
	kha_grpc_reader_release(&r);

	assert_int_equal(kha_grpc_reader_feed(&r, comp, sizeof(comp), collect, &c), -EBADMSG);
	kha_grpc_reader_release(&r);
	assert_int_equal(kha_grpc_reader_feed(&r, huge, sizeof(huge), collect, &c), -EMSGSIZE);
	kha_grpc_reader_release(&r);

	/* a callback's value stops the reader */
	c = (struct collected){.stop_at = 2};
	assert_int_equal(kha_grpc_reader_feed(&r, buf, n, collect, &c), 42);
	assert_int_equal(c.n, 2);
	kha_grpc_reader_release(&r);
}

/* ---- protobuf ------------------------------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static size_t put_header(uint8_t *p, uint64_t cluster, uint64_t member, int64_t rev)
{
	uint8_t h[64];
	size_t n = 0, o = 0;

	h[n++] = 0x08;
	n += put_varint(h + n, cluster);
	h[n++] = 0x10;
	n += put_varint(h + n, member);
	h[n++] = 0x18;
	n += put_varint(h + n, (uint64_t)rev);
	h[n++] = 0x20;
	n += put_varint(h + n, 7);
	p[o++] = 0x0a; /* field 1, bytes */
	o += put_varint(p + o, n);
	memcpy(p + o, h, n);
	return o + n;
}

static void test_pb_snapshot_response(void **state)
{
	uint8_t msg[256], blob[40];
	struct kha_snapshot_chunk c;
	size_t n;

	(void)state;
	memset(blob, 0xab, sizeof(blob));
	n = put_header(msg, 111, 222, 333);
	msg[n++] = 0x10; /* remaining_bytes */
	n += put_varint(msg + n, 1ULL << 40);
	msg[n++] = 0x1a; /* blob */
	n += put_varint(msg + n, sizeof(blob));
	memcpy(msg + n, blob, sizeof(blob));
	n += sizeof(blob);
	msg[n++] = 0x22; /* version = 4 (etcd 3.6), skipped */
	msg[n++] = 6;
	memcpy(msg + n, "3.6.0", 6);
	n += 6;
	assert_int_equal(kha_snapshot_decode_pb(msg, n, &c), 0);
	assert_int_equal(c.header.cluster_id, 111);
	assert_int_equal(c.header.member_id, 222);
	assert_int_equal(c.header.revision, 333);
	assert_int_equal(c.header.raft_term, 7);
	assert_int_equal(c.remaining_bytes, 1ULL << 40);
	assert_int_equal(c.blob_len, sizeof(blob));
	assert_memory_equal(c.blob, blob, sizeof(blob));

	/* etcd 3.4's messages: a blob only; an empty message is an empty chunk */
	assert_int_equal(kha_snapshot_decode_pb(msg, 0, &c), 0);
	assert_int_equal(c.blob_len, 0);

	/* truncated anywhere: malformed, never a read past the end */
	for (size_t cut = 1; cut < n - 7; cut++) {
		int r = kha_snapshot_decode_pb(msg, cut, &c);
		assert_true(r == -EBADMSG || r == 0);
	}
	/* a known field with the wrong wire type */
	msg[0] = 0x18; /* field 3 as varint */
	msg[1] = 1;
	assert_int_equal(kha_snapshot_decode_pb(msg, 2, &c), -EBADMSG);
	/* an over-long varint */
	{
		uint8_t v[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
		assert_int_equal(kha_snapshot_decode_pb(v, sizeof(v), &c), -EBADMSG);
	}
	/* a group wire type */
	{
		uint8_t g[] = {0x0b};
		assert_int_equal(kha_snapshot_decode_pb(g, sizeof(g), &c), -EBADMSG);
	}
}

static void test_pb_hash_kv_response(void **state)
{
	uint8_t msg[128];
	struct kha_hash_kv_pb h;
	size_t n;

	(void)state;
	n = put_header(msg, 1, 2, 500);
	msg[n++] = 0x10;
	n += put_varint(msg + n, 0xdeadbeef);
	msg[n++] = 0x18; /* compact_revision -1 (never compacted): ten bytes */
	n += put_varint(msg + n, (uint64_t)-1);
	msg[n++] = 0x20;
	n += put_varint(msg + n, 500);
	assert_int_equal(kha_hash_kv_decode_pb(msg, n, &h), 0);
	assert_int_equal(h.hash, 0xdeadbeef);
	assert_int_equal(h.compact_revision, -1);
	assert_int_equal(h.hash_revision, 500);
	assert_int_equal(h.header.revision, 500);
	/* hash wider than 32 bits */
	n = 0;
	msg[n++] = 0x10;
	n += put_varint(msg + n, 1ULL << 33);
	assert_int_equal(kha_hash_kv_decode_pb(msg, n, &h), -EBADMSG);
}

/* ---- gateway lines -------------------------------------------------------------------------- */

static void test_gateway_line_fast_and_slow_paths(void **state)
{
	static const struct {
		const char *line;
		const char *data;
		uint64_t remaining;
	} ok[] = {
		{"{\"result\":{\"remaining_bytes\":\"4096\",\"blob\":\"aGVsbG8=\"}}", "hello",
		 4096},
		{"{\"result\":{\"header\":{\"cluster_id\":\"1\"},\"remaining_bytes\":\"12\","
		 "\"blob\":\"aGk=\"}}",
		 "hi", 12},
		{"{\"result\":{\"blob\":\"YWJj\"}}", "abc", 0},
		/* other spellings go through jansson */
		{"{\"result\":{\"blob\":\"YWJj\",\"remaining_bytes\":\"7\"}}", "abc", 7},
		{"{\"result\":{\"remaining_bytes\":7,\"blob\":\"YWJj\"}}", "abc", 7},
		{"{\"result\":{\"remainingBytes\":\"7\",\"blob\":\"YWJj\"}}", "abc", 7},
		{" {\"result\": {\"blob\": \"YWJj\"}}", "abc", 0},
		{"{\"result\":{\"blob\":\"YW\\/j\"}}", "ao\xe3", 0},
	};
	static const char *const bad[] = {
		"{\"result\":{\"blob\":\"YWJ\"}}",
		"{\"result\":{\"blob\":\"Y WJj\"}}",
		"{\"result\":{\"blob\":\"YWJj=\"}}",
		"{\"result\":{\"blob\":\"=YWJ\"}}",
		"{\"result\":{\"blob\":5}}",
		"not json",
		"{\"result\":{\"remaining_bytes\":\"99999999999999999999999\",\"blob\":\"YWJj\"}}",
	};
	uint8_t out[256];
	struct kha_diag d = {};
	uint64_t rem;
	size_t n;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(ok); i++) {
		const char *l = ok[i].line;
		assert_int_equal(kha_snapshot_decode_gateway_line(l, strlen(l), out, sizeof(out),
								  &n, &rem, &d),
				 0);
		assert_int_equal(n, strlen(ok[i].data));
		assert_memory_equal(out, ok[i].data, n);
		assert_int_equal(rem, ok[i].remaining);
	}
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_snapshot_decode_gateway_line(bad[i], strlen(bad[i]), out,
								  sizeof(out), &n, &rem, &d),
				 -EBADMSG);
		assert_false(kha_diag_empty(&d));
	}
}

static void test_gateway_line_error_maps_grpc_code(void **state)
{
	const char *l = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: "
			"no leader\",\"http_status\":\"Service Unavailable\"}}";
	uint8_t out[256];
	struct kha_diag d = {};
	uint64_t rem;
	size_t n;

	(void)state;
	assert_int_equal(
		kha_snapshot_decode_gateway_line(l, strlen(l), out, sizeof(out), &n, &rem, &d),
		-EAGAIN);
	assert_non_null(strstr(d.msg, "no leader"));
}

/* ---- bbolt ---------------------------------------------------------------------------------- */

#define PS	    4096
#define NPAGES	    6
#define NO_FREELIST UINT64_MAX

static void le16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void page_header(uint8_t *p, uint64_t id, uint16_t flags, uint16_t count, uint32_t overflow)
{
	le64_put(p, id);
	le16_put(p + 8, flags);
	le16_put(p + 10, count);
	le32_put(p + 12, overflow);
}

static void meta_page(uint8_t *db, uint64_t id, uint64_t root, uint64_t freelist, uint64_t pgid,
		      uint64_t txid)
{
	uint8_t *p = db + id * PS, *m = p + 16;
	uint64_t h = 14695981039346656037ULL;

	page_header(p, id, 0x04, 0, 0);
	le32_put(m, 0xED0CDAED);
	le32_put(m + 4, 2);
	le32_put(m + 8, PS);
	le32_put(m + 12, 0);
	le64_put(m + 16, root);
	le64_put(m + 24, 0);
	le64_put(m + 32, freelist);
	le64_put(m + 40, pgid);
	le64_put(m + 48, txid);
	for (int i = 0; i < 56; i++) {
		h ^= m[i];
		h *= 1099511628211ULL;
	}
	le64_put(m + 56, h);
}

struct elem {
	uint32_t flags;
	const void *key;
	size_t klen;
	const void *val;
	size_t vlen;
};

/* Writes a leaf page (or an inline one when id is 0) at p; returns its used length. */
static size_t leaf_page(uint8_t *p, uint64_t id, const struct elem *e, size_t n)
{
	size_t data = 16 + n * 16;

	page_header(p, id, 0x02, (uint16_t)n, 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t *el = p + 16 + i * 16;
		le32_put(el, e[i].flags);
		le32_put(el + 4, (uint32_t)(data - (16 + i * 16)));
		le32_put(el + 8, (uint32_t)e[i].klen);
		le32_put(el + 12, (uint32_t)e[i].vlen);
		memcpy(p + data, e[i].key, e[i].klen);
		memcpy(p + data + e[i].klen, e[i].val, e[i].vlen);
		data += e[i].klen + e[i].vlen;
	}
	return data;
}

static void rev_key(uint8_t *k, uint64_t main)
{
	for (int i = 0; i < 8; i++)
		k[i] = (uint8_t)(main >> (56 - 8 * i));
	k[8] = '_';
	memset(k + 9, 0, 8);
}

struct test_db {
	uint8_t db[NPAGES * PS];
	uint8_t keys[3][17];
	uint8_t inline_meta[256];
	size_t inline_len;
	uint8_t bucket_key[16];
};

/*
 * pages: 0/1 meta, 2 freelist [5], 3 root leaf {"key" -> page 4, "meta" -> inline bucket
 * {"consistent_index": 8 bytes}}, 4 leaf with revisions 1..3, 5 free.
 */
static void build_db(struct test_db *t, bool with_freelist)
{
	uint8_t *db = t->db;
	uint8_t ci[8] = {0, 0, 0, 0, 0, 0, 0, 9};
	struct elem inner[] = {{0, "consistent_index", 16, ci, 8}};
	struct elem revs[3];
	struct elem root[2];

	memset(t, 0, sizeof(*t));
	meta_page(db, 0, 3, with_freelist ? 2 : NO_FREELIST, NPAGES, 10);
	meta_page(db, 1, 3, with_freelist ? 2 : NO_FREELIST, NPAGES, 9);
	page_header(db + 2 * PS, 2, 0x10, with_freelist ? 1 : 0, 0);
	le64_put(db + 2 * PS + 16, 5);
	for (int i = 0; i < 3; i++) {
		rev_key(t->keys[i], (uint64_t)i + 1);
		revs[i] = (struct elem){0, t->keys[i], 17, i == 1 ? "two" : "v", i == 1 ? 3 : 1};
	}
	leaf_page(db + 4 * PS, 4, revs, 3);
	/* the inline bucket: header (root 0, sequence 0) + a leaf page */
	t->inline_len = 16 + leaf_page(t->inline_meta + 16, 0, inner, 1);
	le64_put(t->bucket_key, 4); /* "key" bucket: root page 4 */
	root[0] = (struct elem){1, "key", 3, t->bucket_key, 16};
	root[1] = (struct elem){1, "meta", 4, t->inline_meta, t->inline_len};
	leaf_page(db + 3 * PS, 3, root, 2);
	page_header(db + 5 * PS, 5, 0x02, 0, 0);
}

static uint32_t crc32c_bitwise(uint32_t c, const void *data, size_t n)
{
	const uint8_t *p = data;

	c = ~c;
	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void test_bolt_valid_database(void **state)
{
	struct test_db *t = malloc(sizeof(*t));
	struct kha_snapshot_info info;
	struct kha_diag d = {};
	uint8_t ci[8] = {0, 0, 0, 0, 0, 0, 0, 9};
	uint32_t crc = 0;

	(void)state;
	for (int fl = 0; fl < 2; fl++) {
		build_db(t, fl);
		assert_int_equal(kha_snapshot_check_db(t->db, sizeof(t->db), &info, &d), 0);
		assert_int_equal(info.pages, NPAGES);
		assert_int_equal(info.page_size, PS);
		assert_int_equal(info.txid, 10);
		assert_int_equal(info.buckets, 2);
		assert_int_equal(info.total_keys, 4);
		assert_int_equal(info.revisions, 3);
		assert_int_equal(info.revision, 3);
	}
	/* etcdctl's hash: CRC-32C over bucket name, keys and values in order */
	crc = crc32c_bitwise(crc, "key", 3);
	for (int i = 0; i < 3; i++) {
		crc = crc32c_bitwise(crc, t->keys[i], 17);
		crc = crc32c_bitwise(crc, i == 1 ? "two" : "v", i == 1 ? 3 : 1);
	}
	crc = crc32c_bitwise(crc, "meta", 4);
	crc = crc32c_bitwise(crc, "consistent_index", 16);
	crc = crc32c_bitwise(crc, ci, 8);
	assert_int_equal(info.hash, crc);
	/* a longer file than the meta says is fine (bbolt grows files ahead) */
	free(t);
}

static void test_bolt_falls_back_to_the_other_meta(void **state)
{
	struct test_db *t = malloc(sizeof(*t));
	struct kha_snapshot_info info;
	struct kha_diag d = {};

	(void)state;
	build_db(t, true);
	t->db[16 + 20] ^= 1; /* meta 0's checksum no longer matches */
	assert_int_equal(kha_snapshot_check_db(t->db, sizeof(t->db), &info, &d), 0);
	assert_int_equal(info.txid, 9);
	t->db[PS + 16] ^= 1; /* and meta 1's magic */
	assert_int_equal(kha_snapshot_check_db(t->db, sizeof(t->db), &info, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "both meta pages are invalid"));
	free(t);
}

typedef void (*damage_fn)(struct test_db *t);

static void damage_truncate(struct test_db *t)
{
	(void)t;
}

static void damage_magic(struct test_db *t)
{
	memset(t->db + 16, 0, 4);
	memset(t->db + PS + 16, 0, 4);
}

static void damage_page_id(struct test_db *t)
{
	le64_put(t->db + 4 * PS, 77);
}

static void damage_double_reference(struct test_db *t)
{
	le64_put(t->bucket_key, 3); /* "key" bucket's root is the root page itself */
	memcpy(t->db + 3 * PS + 16 + 32 + 3, t->bucket_key, 8);
}

static void damage_order(struct test_db *t)
{
	uint8_t *p = t->db + 4 * PS;
	size_t k0 = 16 + 3 * 16; /* the first key's bytes */
	p[k0 + 7] = 9;		 /* revision 9 before 2 and 3 */
}

static void damage_element_bounds(struct test_db *t)
{
	le32_put(t->db + 4 * PS + 16 + 4, PS); /* first element's key 4 KiB away */
}

static void damage_unreachable(struct test_db *t)
{
	le16_put(t->db + 2 * PS + 10, 0); /* page 5 no longer listed as free */
}

static void damage_free_and_used(struct test_db *t)
{
	le64_put(t->db + 2 * PS + 16, 4); /* page 4 is in use, listed as free */
	le16_put(t->db + 5 * PS + 8, 0x02);
}

static void damage_page_kind(struct test_db *t)
{
	le16_put(t->db + 4 * PS + 8, 0x10);
}

static void damage_count(struct test_db *t)
{
	le16_put(t->db + 4 * PS + 10, 300);
}

static void damage_plain_root_key(struct test_db *t)
{
	le32_put(t->db + 3 * PS + 16, 0); /* "key" is no longer flagged as a bucket */
}

static void damage_out_of_bounds(struct test_db *t)
{
	le64_put(t->bucket_key, 99);
	memcpy(t->db + 3 * PS + 16 + 32 + 3, t->bucket_key, 8);
}

static void test_bolt_finds_damage(void **state)
{
	static const struct {
		damage_fn fn;
		size_t len;
		const char *needle;
	} cases[] = {
		{damage_truncate, 5 * PS, "truncated"},
		{damage_magic, NPAGES * PS, "not a bbolt database"},
		{damage_page_id, NPAGES * PS, "page 4: header names page 77"},
		{damage_double_reference, NPAGES * PS, "referenced twice"},
		{damage_order, NPAGES * PS, "keys out of order"},
		{damage_element_bounds, NPAGES * PS, "outside the page"},
		{damage_unreachable, NPAGES * PS, "page 5: unreachable and not free"},
		{damage_free_and_used, NPAGES * PS, "page 4: in use and free"},
		{damage_page_kind, NPAGES * PS, "neither a branch nor a leaf"},
		{damage_count, NPAGES * PS, "elements overflow the page"},
		{damage_plain_root_key, NPAGES * PS, "a plain key in the root bucket"},
		{damage_out_of_bounds, NPAGES * PS, "page 99: out of bounds"},
	};
	struct test_db *t = malloc(sizeof(*t));
	struct kha_snapshot_info info;
	struct kha_diag d;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(cases); i++) {
		build_db(t, true);
		cases[i].fn(t);
		kha_diag_clear(&d);
		assert_int_equal(kha_snapshot_check_db(t->db, cases[i].len, &info, &d), -EBADMSG);
		if (!strstr(d.msg, cases[i].needle))
			fail_msg("case %zu: '%s' lacks '%s'", i, d.msg, cases[i].needle);
	}
	free(t);
}

static void test_verify_buffer_checks_the_hash(void **state)
{
	size_t len = NPAGES * PS + 32;
	uint8_t *buf = malloc(len);
	struct test_db *t = malloc(sizeof(*t));
	struct kha_snapshot_info info;
	struct kha_diag d = {};
	unsigned int dlen;

	(void)state;
	build_db(t, true);
	memcpy(buf, t->db, NPAGES * PS);
	assert_int_equal(EVP_Digest(buf, NPAGES * PS, buf + NPAGES * PS, &dlen, EVP_sha256(), NULL),
			 1);
	assert_int_equal(kha_snapshot_verify_buffer(buf, len, false, &info, &d), 0);
	assert_true(info.has_hash);
	assert_int_equal(info.db_size, NPAGES * PS);
	buf[100] ^= 1;
	assert_int_equal(kha_snapshot_verify_buffer(buf, len, false, &info, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "SHA-256 mismatch"));
	buf[100] ^= 1;
	/* without the hash: refused unless allowed */
	assert_int_equal(kha_snapshot_verify_buffer(buf, len - 32, false, &info, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "no integrity hash"));
	assert_int_equal(kha_snapshot_verify_buffer(buf, len - 32, true, &info, &d), 0);
	assert_false(info.has_hash);
	assert_int_equal(kha_snapshot_verify_buffer(buf, 0, true, &info, &d), -EBADMSG);
	free(t);
	free(buf);
}

static void test_restore_argv(void **state)
{
	struct kha_restore_opts o = {
		.data_dir = "/var/lib/etcd-new",
		.name = "m1",
		.initial_cluster = "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380",
		.initial_advertise_peer_urls = "https://10.0.0.1:2380",
		.initial_cluster_token = "new-1",
		.bump_revision = KHA_RESTORE_DEFAULT_BUMP,
	};
	struct kha_restore_tool utl = {
		.path = "/usr/bin/etcdutl", .etcdutl = true, .can_bump = true};
	struct kha_restore_tool ctl = {.path = "/usr/bin/etcdctl"};
	static const char *const want_utl[] = {
		"/usr/bin/etcdutl",
		"snapshot",
		"restore",
		"/b/s.db",
		"--data-dir",
		"/var/lib/etcd-new",
		"--name",
		"m1",
		"--initial-cluster",
		"m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380",
		"--initial-advertise-peer-urls",
		"https://10.0.0.1:2380",
		"--initial-cluster-token",
		"new-1",
		"--bump-revision",
		"1000000000",
		"--mark-compacted",
		NULL,
	};
	char **argv = NULL;
	size_t i;

	(void)state;
	assert_int_equal(kha_restore_argv(&o, &utl, "/b/s.db", &argv), 0);
	for (i = 0; want_utl[i]; i++)
		assert_string_equal(argv[i], want_utl[i]);
	assert_null(argv[i]);
	kha_restore_argv_free(argv);
	/* etcdctl 3.4: no bump flags; a WAL dir and a db without hash */
	o.wal_dir = "/wal";
	o.allow_no_hash = true;
	o.initial_cluster_token = NULL;
	assert_int_equal(kha_restore_argv(&o, &ctl, "/b/s.db", &argv), 0);
	for (i = 0; argv[i]; i++) {
		assert_string_not_equal(argv[i], "--bump-revision");
		assert_string_not_equal(argv[i], "--initial-cluster-token");
	}
	assert_string_equal(argv[6], "--wal-dir");
	assert_string_equal(argv[7], "/wal");
	assert_string_equal(argv[i - 1], "--skip-hash-check");
	kha_restore_argv_free(argv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grpc_reader_reassembles_any_split),
		cmocka_unit_test(test_grpc_reader_reports_cut_and_bad_frames),
		cmocka_unit_test(test_pb_snapshot_response),
		cmocka_unit_test(test_pb_hash_kv_response),
		cmocka_unit_test(test_gateway_line_fast_and_slow_paths),
		cmocka_unit_test(test_gateway_line_error_maps_grpc_code),
		cmocka_unit_test(test_bolt_valid_database),
		cmocka_unit_test(test_bolt_falls_back_to_the_other_meta),
		cmocka_unit_test(test_bolt_finds_damage),
		cmocka_unit_test(test_verify_buffer_checks_the_hash),
		cmocka_unit_test(test_restore_argv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
