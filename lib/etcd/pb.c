// SPDX-License-Identifier: MIT
/*
 * The wire formats of the snapshot and HashKV streams, decoded by hand: gRPC framing, the few
 * protobuf messages involved, and the gateway's JSON lines. Pure functions over untrusted
 * bytes (a broken or hostile endpoint), fuzzed by fuzz/fuzz-snapshot.c.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <openssl/evp.h>

#include "kha/etcd-grpc.h"
#include "kha/json.h"
#include "kha/banned.h"

/* ---- gRPC frames -------------------------------------------------------------------------- */

void kha_grpc_reader_release(struct kha_grpc_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

bool kha_grpc_reader_idle(const struct kha_grpc_reader *r)
{
	return r->head_len == 0;
}

static int start_message(struct kha_grpc_reader *r)
{
	if (r->head[0] != 0)
		return -EBADMSG; /* compressed: we never offered an encoding */
	r->need = (uint32_t)r->head[1] << 24 | (uint32_t)r->head[2] << 16 |
		  (uint32_t)r->head[3] << 8 | r->head[4];
	if (r->need > KHA_GRPC_MAX_MESSAGE)
		return -EMSGSIZE;
	r->len = 0;
	return 0;
}

int kha_grpc_reader_feed(struct kha_grpc_reader *r, const uint8_t *data, size_t len,
			 kha_grpc_message_fn fn, void *userdata)
{
	while (len) {
		size_t n;
		int ret;

		if (r->head_len < 5) {
			n = KHA_MIN(len, 5 - r->head_len);
			memcpy(r->head + r->head_len, data, n);
			r->head_len += n;
			data += n;
			len -= n;
			if (r->head_len < 5)
				return 0;
			ret = start_message(r);
			if (ret < 0)
				return ret;
		}
		if (r->len == 0 && len >= r->need) {
			/* the whole message is in this piece: no copy */
			ret = fn(userdata, data, r->need);
			data += r->need;
			len -= r->need;
		} else {
			n = KHA_MIN(len, r->need - r->len);
			if (KHA_GROW(r->buf, r->cap, r->need) < 0)
				return -ENOMEM;
			if (n)
				memcpy(r->buf + r->len, data, n);
			r->len += n;
			data += n;
			len -= n;
			if (r->len < r->need)
				return 0;
			ret = fn(userdata, r->buf, r->need);
		}
		r->head_len = 0;
		r->len = 0;
		r->messages++;
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- protobuf ----------------------------------------------------------------------------- */

static int varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (*pos >= len)
			return -EBADMSG;
		b = p[(*pos)++];
		if (shift == 63 && b > 1)
			return -EBADMSG;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

int kha_pb_next(const uint8_t *msg, size_t len, size_t *pos, uint32_t *ret_field, int *ret_wire,
		uint64_t *ret_varint, const uint8_t **ret_bytes, size_t *ret_len)
{
	uint64_t key, v = 0;

	if (*pos >= len)
		return 0;
	if (varint(msg, len, pos, &key) < 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
		return -EBADMSG;
	*ret_field = (uint32_t)(key >> 3);
	*ret_wire = (int)(key & 7);
	*ret_bytes = NULL;
	*ret_len = 0;
	switch (key & 7) {
	case 0:
		if (varint(msg, len, pos, &v) < 0)
			return -EBADMSG;
		break;
	case 1:
		if (len - *pos < 8)
			return -EBADMSG;
		for (int i = 7; i >= 0; i--)
			v = v << 8 | msg[*pos + (size_t)i];
		*pos += 8;
		break;
	case 5:
		if (len - *pos < 4)
			return -EBADMSG;
		for (int i = 3; i >= 0; i--)
			v = v << 8 | msg[*pos + (size_t)i];
		*pos += 4;
		break;
	case 2:
		if (varint(msg, len, pos, &v) < 0 || v > len - *pos)
			return -EBADMSG;
		*ret_bytes = msg + *pos;
		*ret_len = (size_t)v;
		*pos += (size_t)v;
		break;
	default:
		return -EBADMSG; /* groups (3, 4) and reserved types */
	}
	*ret_varint = v;
	return 1;
}

/*
 * The messages we read are flat lists of varint and length-delimited fields: one table per
 * message says where each known field goes, and one loop fills the struct.
 */
enum pb_kind {
	PB_U64,	   /* varint into a uint64_t */
	PB_I64,	   /* varint into an int64_t */
	PB_U32,	   /* varint into a uint32_t; larger values are malformed */
	PB_HEADER, /* an embedded ResponseHeader into a struct kha_etcd_header */
	PB_BYTES,  /* bytes: a pointer into the message at off, its length (size_t) at len_off */
};

struct pb_field {
	uint32_t num;
	enum pb_kind kind;
	size_t off, len_off;
};

/*
 * Fills out (zeroed by the caller) from msg by the table fields[0..n). Unknown fields are
 * skipped; a known field with the wrong wire type is skipped too when lenient, else malformed.
 */
static int pb_decode_fields(const uint8_t *msg, size_t len, const struct pb_field *fields, size_t n,
			    bool lenient, void *out)
{
	size_t pos = 0;
	const uint8_t *b;
	size_t blen;
	uint64_t v;
	uint32_t f;
	int wire, r;

	while ((r = kha_pb_next(msg, len, &pos, &f, &wire, &v, &b, &blen)) > 0) {
		const struct pb_field *fd = NULL;
		char *at;

		for (size_t i = 0; i < n && !fd; i++)
			if (fields[i].num == f)
				fd = &fields[i];
		if (!fd)
			continue;
		if (wire != (fd->kind == PB_HEADER || fd->kind == PB_BYTES ? 2 : 0)) {
			if (lenient)
				continue;
			return -EBADMSG;
		}
		at = (char *)out + fd->off;
		switch (fd->kind) {
		case PB_U64:
			memcpy(at, &v, sizeof(v));
			break;
		case PB_I64: {
			int64_t i = (int64_t)v;
			memcpy(at, &i, sizeof(i));
			break;
		}
		case PB_U32: {
			uint32_t u = (uint32_t)v;
			if (v > UINT32_MAX)
				return -EBADMSG;
			memcpy(at, &u, sizeof(u));
			break;
		}
		case PB_HEADER:
			if (kha_pb_decode_header(b, blen, (struct kha_etcd_header *)(void *)at) < 0)
				return -EBADMSG;
			break;
		case PB_BYTES:
			memcpy(at, &b, sizeof(b));
			memcpy((char *)out + fd->len_off, &blen, sizeof(blen));
			break;
		}
	}
	return r;
}

#define PB_FIELD(num, kind, type, member)                \
	{                                                \
		(num), (kind), offsetof(type, member), 0 \
	}

int kha_pb_decode_header(const uint8_t *msg, size_t len, struct kha_etcd_header *ret)
{
	static const struct pb_field fields[] = {
		PB_FIELD(1, PB_U64, struct kha_etcd_header, cluster_id),
		PB_FIELD(2, PB_U64, struct kha_etcd_header, member_id),
		PB_FIELD(3, PB_I64, struct kha_etcd_header, revision),
		PB_FIELD(4, PB_U64, struct kha_etcd_header, raft_term),
	};
	struct kha_etcd_header h = {};
	int r = pb_decode_fields(msg, len, fields, KHA_ARRAY_SIZE(fields), true, &h);

	if (r < 0)
		return r;
	*ret = h;
	return 0;
}

int kha_pb_decode_snapshot(const uint8_t *msg, size_t len, struct kha_pb_snapshot_chunk *ret)
{
	/* unknown fields (3.6's version = 4) are skipped */
	static const struct pb_field fields[] = {
		PB_FIELD(1, PB_HEADER, struct kha_pb_snapshot_chunk, header),
		PB_FIELD(2, PB_U64, struct kha_pb_snapshot_chunk, remaining_bytes),
		{3, PB_BYTES, offsetof(struct kha_pb_snapshot_chunk, blob),
		 offsetof(struct kha_pb_snapshot_chunk, blob_len)},
	};
	struct kha_pb_snapshot_chunk c = {};
	int r = pb_decode_fields(msg, len, fields, KHA_ARRAY_SIZE(fields), false, &c);

	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

int kha_pb_decode_hash_kv(const uint8_t *msg, size_t len, struct kha_pb_hash_kv *ret)
{
	static const struct pb_field fields[] = {
		PB_FIELD(1, PB_HEADER, struct kha_pb_hash_kv, header),
		PB_FIELD(2, PB_U32, struct kha_pb_hash_kv, hash),
		PB_FIELD(3, PB_I64, struct kha_pb_hash_kv, compact_revision),
		PB_FIELD(4, PB_I64, struct kha_pb_hash_kv, hash_revision),
	};
	struct kha_pb_hash_kv h = {};
	int r = pb_decode_fields(msg, len, fields, KHA_ARRAY_SIZE(fields), false, &h);

	if (r < 0)
		return r;
	*ret = h;
	return 0;
}

/* ---- gateway lines ------------------------------------------------------------------------ */

/* Finds needle in [p, end) (needles are short literals). */
static const char *find(const char *p, const char *end, const char *needle)
{
	size_t n = strlen(needle);

	while (p && end - p >= (ptrdiff_t)n) {
		const char *q = memchr(p, needle[0], (size_t)(end - p) - n + 1);
		if (!q)
			return NULL;
		if (memcmp(q, needle, n) == 0)
			return q;
		p = q + 1;
	}
	return NULL;
}

/* 1 for the 64 characters of the standard alphabet (a table: this runs over every byte) */
static const uint8_t b64_ok[256] = {
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1,
	['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
	['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['+'] = 1, ['/'] = 1,
};

/* Strict padded base64 of s[0..n) into out; returns the decoded length or -EBADMSG. */
static ssize_t b64_decode(const char *s, size_t n, uint8_t *out, size_t out_cap)
{
	size_t pad = 0;
	int got;

	if (n % 4 || n > (size_t)INT_MAX || n / 4 * 3 > out_cap)
		return -EBADMSG;
	if (n == 0)
		return 0;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	/* EVP_DecodeBlock trims blanks and accepts '=' in odd places: reject them first */
	{
		unsigned bad = 0;

		/* no early exit: a branch-free loop the compiler vectorizes */
		for (size_t i = 0; i < n - pad; i++)
			bad |= b64_ok[(unsigned char)s[i]] ^ 1u;
		if (bad)
			return -EBADMSG;
	}
	got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (got < 0 || (size_t)got != n / 4 * 3)
		return -EBADMSG;
	return (ssize_t)((size_t)got - pad);
}

/* The slow path: any valid JSON spelling, through the etcd decoder (jansson). */
static int decode_slow(const char *line, size_t len, uint8_t *out, size_t out_cap, size_t *ret_len,
		       uint64_t *ret_remaining, struct kha_diag *d)
{
	kha_autofree char *blob = NULL;
	size_t n = 0;
	uint64_t rem = 0;
	int r;

	r = kha_etcd_decode_snapshot(line, len, &blob, &n, &rem, d);
	if (r < 0)
		return r;
	if (n > out_cap)
		return kha_diag_set(d, EBADMSG, "snapshot line: blob larger than its line");
	if (n)
		memcpy(out, blob, n);
	*ret_len = n;
	*ret_remaining = rem;
	return 0;
}

int kha_etcd_decode_snapshot_line(const char *line, size_t len, uint8_t *out, size_t out_cap,
				  size_t *ret_len, uint64_t *ret_remaining, struct kha_diag *d)
{
	const char *end = line + len, *p, *q, *blob_end;
	uint64_t rem = 0;
	ssize_t n;

	/*
	 * The fast path only for the exact shape the gateway writes:
	 *   {"result":{["header":{...},]["remaining_bytes":"N",]"blob":"BASE64"}}
	 * where the blob is the last field; anything else takes the slow path.
	 */
	if (len < 12 || memcmp(line, "{\"result\":{", 11) != 0 || find(line, end, "\\"))
		return decode_slow(line, len, out, out_cap, ret_len, ret_remaining, d);
	p = find(line, end, "\"blob\":\"");
	if (!p)
		return decode_slow(line, len, out, out_cap, ret_len, ret_remaining, d);
	p += 8;
	blob_end = memchr(p, '"', (size_t)(end - p));
	if (!blob_end || end - blob_end != 3 || memcmp(blob_end, "\"}}", 3) != 0)
		return decode_slow(line, len, out, out_cap, ret_len, ret_remaining, d);
	if (find(line, p, "remainingBytes"))
		return decode_slow(line, len, out, out_cap, ret_len, ret_remaining, d);
	q = find(line, p, "\"remaining_bytes\":");
	if (q) {
		q += 18;
		if (q < p && *q == '"')
			q++;
		if (q >= p || *q < '0' || *q > '9')
			return decode_slow(line, len, out, out_cap, ret_len, ret_remaining, d);
		for (; q < p && *q >= '0' && *q <= '9'; q++) {
			if (rem > (UINT64_MAX - 9) / 10)
				return kha_diag_set(d, EBADMSG,
						    "snapshot line: remaining_bytes out of range");
			rem = rem * 10 + (uint64_t)(*q - '0');
		}
	}
	n = b64_decode(p, (size_t)(blob_end - p), out, out_cap);
	if (n < 0)
		return kha_diag_set(d, EBADMSG, "snapshot line: field 'blob' is not valid base64");
	*ret_len = (size_t)n;
	*ret_remaining = rem;
	return 0;
}
