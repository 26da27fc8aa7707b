// SPDX-License-Identifier: MIT
/*
 * Fuzzes everything a snapshot brings in from the outside: a snapshot file (hash + bbolt, with
 * and without the hash; lib/backup), a gRPC stream of snapshot and HashKV messages (fed in two
 * pieces, so reassembly is exercised) and a gateway snapshot line (lib/etcd/pb.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kha/backup.h"
#include "kha/etcd-grpc.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_message(void *userdata, const uint8_t *msg, size_t len)
{
	struct kha_pb_snapshot_chunk c;
	struct kha_pb_hash_kv h;
	struct kha_etcd_header hd;

	(void)userdata;
	kha_ignore(kha_pb_decode_snapshot(msg, len, &c));
	kha_ignore(kha_pb_decode_hash_kv(msg, len, &h));
	kha_ignore(kha_pb_decode_header(msg, len, &hd));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_snapshot_info info;
	struct kha_grpc_reader r = {};
	struct kha_diag d = {};
	uint8_t *out;
	uint64_t rem;
	size_t n, half = size / 2;

	kha_ignore(kha_snapshot_verify_buffer(data, size, false, &info, &d));
	kha_ignore(kha_snapshot_check_db(data, size, &info, &d));
	if (kha_grpc_reader_feed(&r, data, half, on_message, NULL) == 0)
		kha_ignore(kha_grpc_reader_feed(&r, data + half, size - half, on_message, NULL));
	kha_grpc_reader_release(&r);
	on_message(NULL, data, size);
	out = malloc(size + 1);
	if (out) {
		kha_ignore(kha_etcd_decode_snapshot_line((const char *)data, size, out, size + 1,
							 &n, &rem, &d));
		free(out);
	}
	return 0;
}
