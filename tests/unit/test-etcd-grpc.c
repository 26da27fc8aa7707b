// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/etcd's gRPC wire formats: gRPC frames, the protobuf messages of the
 * snapshot and HashKV streams, and the gateway's snapshot lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kha/etcd-grpc.h"
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
	struct kha_pb_snapshot_chunk c;
	size_t n, fields_end[3]; /* where each whole field ends: a valid shorter message */

	(void)state;
	memset(blob, 0xab, sizeof(blob));
	n = put_header(msg, 111, 222, 333);
	fields_end[0] = n;
	msg[n++] = 0x10; /* remaining_bytes */
	n += put_varint(msg + n, 1ULL << 40);
	fields_end[1] = n;
	msg[n++] = 0x1a; /* blob */
	n += put_varint(msg + n, sizeof(blob));
	memcpy(msg + n, blob, sizeof(blob));
	n += sizeof(blob);
	fields_end[2] = n;
	msg[n++] = 0x22; /* version = 4 (etcd 3.6), skipped */
	msg[n++] = 6;
	memcpy(msg + n, "3.6.0", 6);
	n += 6;
	assert_int_equal(kha_pb_decode_snapshot(msg, n, &c), 0);
	assert_int_equal(c.header.cluster_id, 111);
	assert_int_equal(c.header.member_id, 222);
	assert_int_equal(c.header.revision, 333);
	assert_int_equal(c.header.raft_term, 7);
	assert_int_equal(c.remaining_bytes, 1ULL << 40);
	assert_int_equal(c.blob_len, sizeof(blob));
	assert_memory_equal(c.blob, blob, sizeof(blob));

	/* etcd 3.4's messages: a blob only; an empty message is an empty chunk */
	assert_int_equal(kha_pb_decode_snapshot(msg, 0, &c), 0);
	assert_int_equal(c.blob_len, 0);

	/* truncated inside a field: malformed, never a read past the end; cut between two fields:
	 * a shorter message, which protobuf reads as valid */
	for (size_t cut = 1; cut < n - 7; cut++) {
		bool boundary =
			cut == fields_end[0] || cut == fields_end[1] || cut == fields_end[2];
		assert_int_equal(kha_pb_decode_snapshot(msg, cut, &c), boundary ? 0 : -EBADMSG);
	}
	/* a known field with the wrong wire type */
	msg[0] = 0x18; /* field 3 as varint */
	msg[1] = 1;
	assert_int_equal(kha_pb_decode_snapshot(msg, 2, &c), -EBADMSG);
	/* an over-long varint */
	{
		uint8_t v[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
		assert_int_equal(kha_pb_decode_snapshot(v, sizeof(v), &c), -EBADMSG);
	}
	/* a group wire type */
	{
		uint8_t g[] = {0x0b};
		assert_int_equal(kha_pb_decode_snapshot(g, sizeof(g), &c), -EBADMSG);
	}
}

static void test_pb_hash_kv_response(void **state)
{
	uint8_t msg[128];
	struct kha_pb_hash_kv h;
	size_t n;

	(void)state;
	n = put_header(msg, 1, 2, 500);
	msg[n++] = 0x10;
	n += put_varint(msg + n, 0xdeadbeef);
	msg[n++] = 0x18; /* compact_revision -1 (never compacted): ten bytes */
	n += put_varint(msg + n, (uint64_t)-1);
	msg[n++] = 0x20;
	n += put_varint(msg + n, 500);
	assert_int_equal(kha_pb_decode_hash_kv(msg, n, &h), 0);
	assert_int_equal(h.hash, 0xdeadbeef);
	assert_int_equal(h.compact_revision, -1);
	assert_int_equal(h.hash_revision, 500);
	assert_int_equal(h.header.revision, 500);
	/* hash wider than 32 bits */
	n = 0;
	msg[n++] = 0x10;
	n += put_varint(msg + n, 1ULL << 33);
	assert_int_equal(kha_pb_decode_hash_kv(msg, n, &h), -EBADMSG);
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
		assert_int_equal(
			kha_etcd_decode_snapshot_line(l, strlen(l), out, sizeof(out), &n, &rem, &d),
			0);
		assert_int_equal(n, strlen(ok[i].data));
		assert_memory_equal(out, ok[i].data, n);
		assert_int_equal(rem, ok[i].remaining);
	}
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_etcd_decode_snapshot_line(bad[i], strlen(bad[i]), out,
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
		kha_etcd_decode_snapshot_line(l, strlen(l), out, sizeof(out), &n, &rem, &d),
		-EAGAIN);
	assert_non_null(strstr(d.msg, "no leader"));
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
