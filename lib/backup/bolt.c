// SPDX-License-Identifier: MIT
/*
 * A read-only checker of etcd's backend database, a bbolt file, written from the format (no
 * bbolt code): pages of page_size bytes, each with a 16-byte header (id u64, flags u16, count
 * u16, overflow u32); pages 0 and 1 hold the meta (magic 0xED0CDAED, version 2, page size,
 * root bucket, freelist page, high water mark, txid, FNV-1a checksum); branch pages hold
 * (pos u32, ksize u32, child u64) elements, leaf pages (flags u32, pos u32, ksize u32,
 * vsize u32) elements whose key and value sit pos bytes after the element; a leaf element
 * flagged as a bucket holds (root u64, sequence u64), and root 0 means the bucket's single
 * leaf page follows inline in the value.
 *
 * Besides checking, it computes what `etcdctl snapshot status` prints: CRC-32C (Castagnoli)
 * over every top-level bucket's name, keys and values in order, the entry count, and the
 * highest revision of the "key" bucket (keys are 8-byte big-endian main revisions, '_', sub
 * revision). Every offset is bounds-checked: the input is untrusted (fuzzed).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kha/backup.h"
#include "kha/banned.h"

#define PAGE_HEADER	 16
#define ELEMENT_SIZE	 16
#define FLAG_BRANCH	 0x01
#define FLAG_LEAF	 0x02
#define FLAG_META	 0x04
#define FLAG_FREELIST	 0x10
#define BUCKET_LEAF	 0x01
#define BOLT_MAGIC	 0xED0CDAEDu
#define BOLT_VERSION	 2
#define NO_FREELIST	 UINT64_MAX
#define MAX_TREE_DEPTH	 64
#define MAX_BUCKET_DEPTH 16
#define META_SUM_LEN	 56

/* ---- CRC-32C -------------------------------------------------------------------------------- */

static uint32_t crc_table[8][256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^
					  crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Slicing-by-8 on the inverted register. */
static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= c;
		c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
		    crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
		    crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
		    crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	uint64_t c64 = c;

	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c64 = __builtin_ia32_crc32di(c64, w);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

static uint32_t (*crc_fn)(uint32_t, const uint8_t *, size_t);
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_select(void)
{
	crc_init();
	crc_fn = crc_soft;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		crc_fn = crc_hw;
#endif
}

/* ---- little-endian reads ---------------------------------------------------------------------- */

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- meta ----------------------------------------------------------------------------------- */

struct meta {
	uint32_t page_size;
	uint64_t root;
	uint64_t freelist;
	uint64_t pgid;
	uint64_t txid;
};

static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Reads the meta of the page at off; returns a reason on failure, NULL when valid. */
static const char *read_meta(const uint8_t *db, size_t len, size_t off, struct meta *m)
{
	const uint8_t *p, *mp;

	if (off > len || len - off < PAGE_HEADER + 64)
		return "truncated";
	p = db + off;
	mp = p + PAGE_HEADER;
	if (!(le16(p + 8) & FLAG_META))
		return "not a meta page";
	if (le32(mp) != BOLT_MAGIC)
		return "bad magic (not a bbolt database)";
	if (le32(mp + 4) != BOLT_VERSION)
		return "unsupported bbolt version";
	if (fnv1a64(mp, META_SUM_LEN) != le64(mp + META_SUM_LEN))
		return "checksum mismatch";
	m->page_size = le32(mp + 8);
	m->root = le64(mp + 16);
	m->freelist = le64(mp + 32);
	m->pgid = le64(mp + 40);
	m->txid = le64(mp + 48);
	if (m->page_size < 512 || m->page_size > (1u << 20) || (m->page_size & (m->page_size - 1)))
		return "invalid page size";
	return NULL;
}

/* ---- the walk ------------------------------------------------------------------------------- */

enum bucket_kind {
	BUCKET_ROOT,	 /* holds the top-level buckets */
	BUCKET_TOPLEVEL, /* hashed and counted, like etcdctl */
	BUCKET_NESTED,	 /* checked only */
};

struct bucket {
	enum bucket_kind kind;
	bool is_key; /* etcd's "key" bucket: keys are revisions */
	int nesting;
	const uint8_t *prev_key; /* ordering across the whole bucket */
	size_t prev_len;
	bool has_prev;
};

struct walk {
	const uint8_t *db;
	size_t len;
	uint32_t ps;
	uint64_t npages;
	uint8_t *seen; /* bitmap of pages reached */
	struct kha_snapshot_info *info;
	struct kha_diag *d;
	uint32_t crc; /* inverted register */
};

static bool bit(const uint8_t *map, uint64_t i)
{
	return map[i >> 3] & (1u << (i & 7));
}

static void set_bit(uint8_t *map, uint64_t i)
{
	map[i >> 3] |= (uint8_t)(1u << (i & 7));
}

static void hash(struct walk *w, const uint8_t *p, size_t n)
{
	w->crc = crc_fn(w->crc, p, n);
}

static int walk_page(struct walk *w, uint64_t pgid, int depth, struct bucket *b);
static int walk_elements(struct walk *w, const uint8_t *page, size_t span, const char *where,
			 int depth, struct bucket *b);

static int key_order(struct walk *w, struct bucket *b, const uint8_t *k, size_t klen,
		     const char *where)
{
	if (b->has_prev) {
		size_t n = KHA_MIN(b->prev_len, klen);
		int c = memcmp(b->prev_key, k, n);
		if (c > 0 || (c == 0 && b->prev_len >= klen))
			return kha_diag_set(w->d, EBADMSG, "%s: keys out of order", where);
	}
	b->prev_key = k;
	b->prev_len = klen;
	b->has_prev = true;
	return 0;
}

/* A bucket stored as a leaf value: its own tree, or an inline page. */
static int walk_bucket_value(struct walk *w, const uint8_t *v, size_t vlen, const char *where,
			     struct bucket *child)
{
	uint64_t root;

	if (vlen < 16)
		return kha_diag_set(w->d, EBADMSG, "%s: bucket header truncated", where);
	if (child->nesting > MAX_BUCKET_DEPTH)
		return kha_diag_set(w->d, EBADMSG, "%s: buckets nested too deep", where);
	root = le64(v);
	if (root == 0) {
		/* inline bucket: a leaf page inside the value */
		if (vlen - 16 < PAGE_HEADER)
			return kha_diag_set(w->d, EBADMSG, "%s: inline bucket truncated", where);
		if (!(le16(v + 16 + 8) & FLAG_LEAF))
			return kha_diag_set(w->d, EBADMSG, "%s: inline bucket is not a leaf",
					    where);
		return walk_elements(w, v + 16, vlen - 16, where, 0, child);
	}
	return walk_page(w, root, 0, child);
}

static int leaf_element(struct walk *w, struct bucket *b, uint32_t flags, const uint8_t *k,
			size_t klen, const uint8_t *v, size_t vlen, const char *where)
{
	struct bucket child = {.nesting = b->nesting + 1, .kind = BUCKET_NESTED};
	int r;

	r = key_order(w, b, k, klen, where);
	if (r < 0)
		return r;
	switch (b->kind) {
	case BUCKET_ROOT:
		if (!(flags & BUCKET_LEAF))
			return kha_diag_set(w->d, EBADMSG, "%s: a plain key in the root bucket",
					    where);
		w->info->buckets++;
		hash(w, k, klen);
		child.kind = BUCKET_TOPLEVEL;
		child.is_key = klen == 3 && memcmp(k, "key", 3) == 0;
		return walk_bucket_value(w, v, vlen, where, &child);
	case BUCKET_TOPLEVEL:
		w->info->total_keys++;
		hash(w, k, klen);
		if (b->is_key) {
			w->info->revisions++;
			if (klen >= 8)
				w->info->revision = (int64_t)be64(k);
		}
		if (flags & BUCKET_LEAF)
			return walk_bucket_value(w, v, vlen, where, &child);
		hash(w, v, vlen);
		return 0;
	case BUCKET_NESTED:
		if (flags & BUCKET_LEAF)
			return walk_bucket_value(w, v, vlen, where, &child);
		return 0;
	}
	return 0;
}

/* The elements of a branch or leaf page of span bytes (a page with its overflow, or inline). */
static int walk_elements(struct walk *w, const uint8_t *page, size_t span, const char *where,
			 int depth, struct bucket *b)
{
	uint16_t flags = le16(page + 8), count = le16(page + 10);
	const uint8_t *prev = NULL;
	size_t prev_len = 0;
	int r;

	if ((uint64_t)PAGE_HEADER + (uint64_t)count * ELEMENT_SIZE > span)
		return kha_diag_set(w->d, EBADMSG, "%s: %u elements overflow the page", where,
				    count);
	if (flags & FLAG_BRANCH) {
		if (count == 0)
			return kha_diag_set(w->d, EBADMSG, "%s: empty branch page", where);
		for (uint16_t i = 0; i < count; i++) {
			size_t off = PAGE_HEADER + (size_t)i * ELEMENT_SIZE;
			uint64_t pos = le32(page + off), ksize = le32(page + off + 4);
			uint64_t child = le64(page + off + 8);

			if (off + pos + ksize > span)
				return kha_diag_set(w->d, EBADMSG,
						    "%s: element %u lies outside the page", where,
						    i);
			if (prev) {
				size_t n = KHA_MIN(prev_len, ksize);
				int c = memcmp(prev, page + off + pos, n);
				if (c > 0 || (c == 0 && prev_len >= ksize))
					return kha_diag_set(w->d, EBADMSG,
							    "%s: branch keys out of order", where);
			}
			prev = page + off + pos;
			prev_len = ksize;
			r = walk_page(w, child, depth + 1, b);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (!(flags & FLAG_LEAF))
		return kha_diag_set(w->d, EBADMSG,
				    "%s: neither a branch nor a leaf page (flags 0x%x)", where,
				    flags);
	for (uint16_t i = 0; i < count; i++) {
		size_t off = PAGE_HEADER + (size_t)i * ELEMENT_SIZE;
		uint32_t eflags = le32(page + off);
		uint64_t pos = le32(page + off + 4), ksize = le32(page + off + 8);
		uint64_t vsize = le32(page + off + 12);

		if (off + pos + ksize + vsize > span)
			return kha_diag_set(w->d, EBADMSG, "%s: element %u lies outside the page",
					    where, i);
		r = leaf_element(w, b, eflags, page + off + pos, (size_t)ksize,
				 page + off + pos + ksize, (size_t)vsize, where);
		if (r < 0)
			return r;
	}
	return 0;
}

static int walk_page(struct walk *w, uint64_t pgid, int depth, struct bucket *b)
{
	const uint8_t *p;
	uint64_t overflow;
	char where[48];

	snprintf(where, sizeof(where), "page %llu", (unsigned long long)pgid);
	if (depth > MAX_TREE_DEPTH)
		return kha_diag_set(w->d, EBADMSG, "%s: tree deeper than %d levels (a cycle?)",
				    where, MAX_TREE_DEPTH);
	if (pgid < 2 || pgid >= w->npages)
		return kha_diag_set(w->d, EBADMSG,
				    "%s: out of bounds (the database has %llu pages)", where,
				    (unsigned long long)w->npages);
	p = w->db + pgid * w->ps;
	if (le64(p) != pgid)
		return kha_diag_set(w->d, EBADMSG, "%s: header names page %llu", where,
				    (unsigned long long)le64(p));
	overflow = le32(p + 12);
	if (overflow >= w->npages - pgid)
		return kha_diag_set(w->d, EBADMSG, "%s: overflow of %llu pages runs past the end",
				    where, (unsigned long long)overflow);
	for (uint64_t i = pgid; i <= pgid + overflow; i++) {
		if (bit(w->seen, i))
			return kha_diag_set(w->d, EBADMSG, "page %llu: referenced twice",
					    (unsigned long long)i);
		set_bit(w->seen, i);
	}
	return walk_elements(w, p, (size_t)((overflow + 1) * w->ps), where, depth, b);
}

/* When the freelist is stored: every page is either reachable or free, never both. */
static int check_freelist(struct walk *w, uint64_t pgid)
{
	kha_autofree uint8_t *freed = NULL;
	const uint8_t *p, *ids;
	uint64_t count, overflow;
	size_t span;

	if (pgid < 2 || pgid >= w->npages)
		return kha_diag_set(w->d, EBADMSG, "freelist page %llu: out of bounds",
				    (unsigned long long)pgid);
	p = w->db + pgid * w->ps;
	if (!(le16(p + 8) & FLAG_FREELIST))
		return kha_diag_set(w->d, EBADMSG, "freelist page %llu: not a freelist page",
				    (unsigned long long)pgid);
	overflow = le32(p + 12);
	if (overflow >= w->npages - pgid)
		return kha_diag_set(w->d, EBADMSG, "freelist page %llu: runs past the end",
				    (unsigned long long)pgid);
	for (uint64_t i = pgid; i <= pgid + overflow; i++) {
		if (bit(w->seen, i))
			return kha_diag_set(w->d, EBADMSG, "page %llu: referenced twice",
					    (unsigned long long)i);
		set_bit(w->seen, i);
	}
	span = (size_t)((overflow + 1) * w->ps);
	count = le16(p + 10);
	ids = p + PAGE_HEADER;
	if (count == 0xffff) {
		count = le64(ids);
		ids += 8;
	}
	if (count > (span - (size_t)(ids - p)) / 8)
		return kha_diag_set(w->d, EBADMSG, "freelist page %llu: %llu ids overflow it",
				    (unsigned long long)pgid, (unsigned long long)count);
	freed = calloc((size_t)(w->npages / 8 + 1), 1);
	if (!freed)
		return kha_diag_set(w->d, ENOMEM, "out of memory");
	for (uint64_t i = 0; i < count; i++) {
		uint64_t id = le64(ids + i * 8);
		if (id < 2 || id >= w->npages)
			return kha_diag_set(w->d, EBADMSG, "freelist: page %llu out of bounds",
					    (unsigned long long)id);
		if (bit(w->seen, id))
			return kha_diag_set(w->d, EBADMSG, "page %llu: in use and free",
					    (unsigned long long)id);
		set_bit(freed, id);
	}
	for (uint64_t i = 2; i < w->npages; i++)
		if (!bit(w->seen, i) && !bit(freed, i))
			return kha_diag_set(w->d, EBADMSG, "page %llu: unreachable and not free",
					    (unsigned long long)i);
	return 0;
}

int kha_snapshot_check_db(const uint8_t *db, size_t len, struct kha_snapshot_info *ret,
			  struct kha_diag *d)
{
	struct kha_snapshot_info info = {};
	struct meta m0 = {}, m1 = {}, *m;
	const char *e0, *e1;
	struct bucket root = {.kind = BUCKET_ROOT};
	struct walk w = {.db = db, .len = len, .info = &info, .d = d, .crc = 0xffffffffu};
	int r;

	pthread_once(&crc_once, crc_select);
	e0 = read_meta(db, len, 0, &m0);
	e1 = read_meta(db, len, e0 ? 4096 : m0.page_size, &m1);
	if (e0 && e1) {
		if (len < PAGE_HEADER + 64 || le32(db + PAGE_HEADER) != BOLT_MAGIC)
			return kha_diag_set(d, EBADMSG,
					    "not a bbolt database (no meta page with its magic)");
		return kha_diag_set(d, EBADMSG,
				    "both meta pages are invalid (page 0: %s; page 1: %s)", e0, e1);
	}
	if (!e0 && !e1 && m0.page_size != m1.page_size)
		return kha_diag_set(d, EBADMSG, "the meta pages disagree about the page size");
	m = e0 ? &m1 : e1 ? &m0 : (m1.txid > m0.txid ? &m1 : &m0);
	w.ps = m->page_size;
	w.npages = m->pgid;
	info.db_size = len;
	info.page_size = m->page_size;
	info.pages = m->pgid;
	info.txid = m->txid;
	if (w.npages < 3 || w.npages > len / w.ps)
		return kha_diag_set(
			d, EBADMSG,
			"truncated: the meta page counts %llu pages of %u bytes, the file holds %zu "
			"bytes",
			(unsigned long long)w.npages, w.ps, len);
	w.seen = calloc((size_t)(w.npages / 8 + 1), 1);
	if (!w.seen)
		return kha_diag_set(d, ENOMEM, "out of memory");
	set_bit(w.seen, 0);
	set_bit(w.seen, 1);
	r = walk_page(&w, m->root, 0, &root);
	if (r == 0 && m->freelist != NO_FREELIST)
		r = check_freelist(&w, m->freelist);
	free(w.seen);
	if (r < 0)
		return r;
	info.hash = w.crc ^ 0xffffffffu;
	*ret = info;
	return 0;
}
