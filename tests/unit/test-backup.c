// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/backup's file formats: the bbolt checker on databases built here byte by
 * byte (valid ones and every kind of damage it must catch), snapshot verification and the
 * restore tool's command line. (The gRPC and gateway stream formats: test-etcd-grpc.c.)
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

static void test_restore_member_in_initial_cluster(void **state)
{
	struct kha_restore_opts o = {.name = "m2",
				     .initial_cluster = "m1=https://a:2380,m2=https://b:2380",
				     .initial_advertise_peer_urls =
					     "https://b:2380,https://c:2380"};
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_restore_check_member(&o, &d), 0);
	o.initial_advertise_peer_urls = "https://a:2380"; /* m1's URL under m2's name */
	assert_int_equal(kha_restore_check_member(&o, &d), -EINVAL);
	assert_string_equal(d.msg, "--initial-cluster must list m2=https://a:2380 (this member)");
	o.initial_advertise_peer_urls = "https://b:238"; /* a prefix of the listed URL */
	assert_int_equal(kha_restore_check_member(&o, &d), -EINVAL);
	o.name = "m";
	o.initial_advertise_peer_urls = "https://b:2380";
	assert_int_equal(kha_restore_check_member(&o, &d), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bolt_valid_database),
		cmocka_unit_test(test_bolt_falls_back_to_the_other_meta),
		cmocka_unit_test(test_bolt_finds_damage),
		cmocka_unit_test(test_verify_buffer_checks_the_hash),
		cmocka_unit_test(test_restore_argv),
		cmocka_unit_test(test_restore_member_in_initial_cluster),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
