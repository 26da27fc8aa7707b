/* SPDX-License-Identifier: MIT */
/*
 * etcd's native gRPC API (lib/etcd), just what the snapshot and HashKV streams need: gRPC
 * over HTTP/2 through libcurl, a reader of gRPC frames and a protobuf field walker with the
 * decoders of the few etcdserverpb messages kha reads. The JSON gateway (kha/etcd.h) serves
 * everything else; etcd 3.4's gateway does not serve HashKV, and its snapshot stream is base64.
 *
 * Conventions as in kha/etcd.h: negative errno returns with a struct kha_diag naming what
 * failed; the decoders are pure (the fuzz target drives them).
 */
#ifndef KHA_ETCD_GRPC_H
#define KHA_ETCD_GRPC_H

#include <signal.h>
#include "kha/common.h"
#include "kha/diag.h"
#include "kha/etcd.h"

/*
 * A gRPC stream is a sequence of frames: 1 byte compressed flag, 4 bytes big-endian length, the
 * message. The reader reassembles messages from arbitrary pieces of the byte stream and hands
 * each whole message to a callback (zero-copy when the message lies in one piece). Pure.
 */
#define KHA_GRPC_MAX_MESSAGE (16u << 20)

struct kha_grpc_reader {
	uint8_t head[5];
	size_t head_len;
	uint32_t need; /* length of the message being read */
	uint8_t *buf;  /* owned: a message split across pieces */
	size_t len, cap;
	size_t messages; /* whole messages delivered */
};

/* Called with each whole message; return 0 to continue, anything else stops the reader. */
typedef int (*kha_grpc_message_fn)(void *userdata, const uint8_t *msg, size_t len);

/*
 * Feeds len bytes. Returns 0, the callback's non-zero value, -EBADMSG for a compressed frame
 * (never asked for) or -EMSGSIZE for a message over KHA_GRPC_MAX_MESSAGE, or -ENOMEM.
 */
int kha_grpc_reader_feed(struct kha_grpc_reader *r, const uint8_t *data, size_t len,
			 kha_grpc_message_fn fn, void *userdata) KHA_WUR;
/* True when no partial frame is pending (a stream that ends otherwise was cut). */
bool kha_grpc_reader_idle(const struct kha_grpc_reader *r);
void kha_grpc_reader_release(struct kha_grpc_reader *r);

/*
 * Walks the fields of one protobuf message. For each field, *ret_field, *ret_wire (0 varint,
 * 1 fixed64, 2 bytes, 5 fixed32) and either *ret_varint (wire 0, 1, 5) or *ret_bytes and *ret_len
 * (wire 2, pointing into msg) are set. Returns 1 for a field, 0 at the end, -EBADMSG for a
 * malformed message. *pos is the cursor (start at 0). Pure.
 */
int kha_pb_next(const uint8_t *msg, size_t len, size_t *pos, uint32_t *ret_field, int *ret_wire,
		uint64_t *ret_varint, const uint8_t **ret_bytes, size_t *ret_len) KHA_WUR;

/* Decodes an etcdserverpb.ResponseHeader. Returns 0 or -EBADMSG. */
int kha_pb_decode_header(const uint8_t *msg, size_t len, struct kha_etcd_header *ret) KHA_WUR;

/* One message of the snapshot stream (etcdserverpb.SnapshotResponse); blob points into msg. */
struct kha_pb_snapshot_chunk {
	struct kha_etcd_header header; /* zero when absent (etcd 3.4 sends none) */
	uint64_t remaining_bytes;
	const uint8_t *blob;
	size_t blob_len;
};
int kha_pb_decode_snapshot(const uint8_t *msg, size_t len,
			   struct kha_pb_snapshot_chunk *ret) KHA_WUR;

/*
 * One line of the gateway's snapshot stream ({"result":{"remaining_bytes":"..","blob":".."}}),
 * scanned without a JSON tree: the base64 blob is decoded straight into out (out_cap must be
 * at least 3/4 of the line length). Lines the scanner does not recognise (escapes, other field
 * orders) go through jansson instead, so any valid line is accepted. An {"error":..} line
 * returns the mapped gRPC errno with the message in the diag. Returns 0 or -EBADMSG.
 */
int kha_etcd_decode_snapshot_line(const char *line, size_t len, uint8_t *out, size_t out_cap,
				  size_t *ret_len, uint64_t *ret_remaining,
				  struct kha_diag *d) KHA_WUR;

/* HashKV reply (etcdserverpb.HashKVResponse); hash_revision is 0 before etcd 3.5.? */
struct kha_pb_hash_kv {
	struct kha_etcd_header header;
	uint32_t hash;
	int64_t compact_revision;
	int64_t hash_revision;
};
int kha_pb_decode_hash_kv(const uint8_t *msg, size_t len, struct kha_pb_hash_kv *ret) KHA_WUR;

/*
 * A unary or server-streaming gRPC call to one endpoint (http:// = HTTP/2 with prior
 * knowledge, https:// = HTTP/2 negotiated by ALPN), with cfg's TLS files and dial timeout.
 * req/req_len is the encoded request message (framed here). Each response message goes to fn.
 *
 * Returns 0 when the call ended with grpc-status 0, the callback's non-zero value, or:
 *   -EPROTONOSUPPORT  the endpoint does not speak gRPC over HTTP/2 here (no HTTP/2, not HTTP
 *                     200, not application/grpc): a caller may fall back to the gateway;
 *   the errno of a non-zero grpc-status (as kha_etcd_errno_from_grpc), message in the diag;
 *   -ECONNREFUSED, -ETIMEDOUT, -EACCES (TLS trust), -ECONNRESET (cut mid-stream), ...
 * *ret_received (may be NULL) counts the response bytes, so a caller can tell a failure before
 * any data from one in the middle. timeout_us bounds the whole call (0 = none), stall_us the
 * time without any received byte (0 = none); cancel (may be NULL) ends it within ~100 ms.
 */
struct kha_grpc_call {
	const struct kha_etcd_config *cfg; /* TLS files, dial timeout */
	const char *endpoint;		   /* "https://10.0.0.1:2379" */
	const char *method;		   /* "/etcdserverpb.Maintenance/Snapshot" */
	const uint8_t *req;
	size_t req_len;
	uint64_t timeout_us;
	uint64_t stall_us;
	const volatile sig_atomic_t *cancel;
	kha_grpc_message_fn fn;
	void *userdata;
};
int kha_grpc_call(const struct kha_grpc_call *call, uint64_t *ret_received,
		  struct kha_diag *d) KHA_WUR;

/*
 * HashKV of the member behind endpoint at revision (0 = latest), over gRPC: etcd 3.4's
 * gateway does not serve HashKV. Errors as kha_grpc_call (-ERANGE: the revision is compacted
 * or in the future).
 */
int kha_etcd_hash_kv_grpc(const struct kha_etcd_config *cfg, const char *endpoint, int64_t revision,
			  uint64_t timeout_us, struct kha_pb_hash_kv *ret,
			  struct kha_diag *d) KHA_WUR;

#endif
