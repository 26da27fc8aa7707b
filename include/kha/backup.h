/* SPDX-License-Identifier: MIT */
/*
 * etcd operations that protect the only stateful part of the control plane (lib/backup):
 *
 *   snapshots     streamed from one member over etcd's native gRPC (HTTP/2 through libcurl)
 *                 or the JSON gateway, checked while streaming (the SHA-256 etcd appends),
 *                 written atomically, the bbolt structure verified, optionally zstd-compressed;
 *                 verification of snapshot files; restore through etcd's own tool
 *   backups       the naming of scheduled snapshots, retention (a pure function), back-off and
 *                 the health rule of the backup daemon
 *   guards        pure rules deciding whether a membership change is safe for quorum
 *   consistency   the members' HashKV compared at one common revision
 *   defrag        one member at a time, the leader last, waiting for health in between
 *
 * Conventions as in the rest of kha: negative errno returns with a struct kha_diag naming what
 * failed; result structs own their strings and are released with their _release function
 * (which accepts a zeroed struct); the library never prints and never exits.
 */
#ifndef KHA_BACKUP_H
#define KHA_BACKUP_H

#include <signal.h>
#include <sys/types.h>
#include "kha/common.h"
#include "kha/diag.h"
#include "kha/etcd.h"

/* ==== gRPC (HTTP/2) transport: just what the snapshot and HashKV streams need ============== */

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
struct kha_snapshot_chunk {
	struct kha_etcd_header header; /* zero when absent (etcd 3.4 sends none) */
	uint64_t remaining_bytes;
	const uint8_t *blob;
	size_t blob_len;
};
int kha_snapshot_decode_pb(const uint8_t *msg, size_t len, struct kha_snapshot_chunk *ret) KHA_WUR;

/*
 * One line of the gateway's snapshot stream ({"result":{"remaining_bytes":"..","blob":".."}}),
 * scanned without a JSON tree: the base64 blob is decoded straight into out (out_cap must be
 * at least 3/4 of the line length). Lines the scanner does not recognise (escapes, other field
 * orders) go through jansson instead, so any valid line is accepted. An {"error":..} line
 * returns the mapped gRPC errno with the message in the diag. Returns 0 or -EBADMSG.
 */
int kha_snapshot_decode_gateway_line(const char *line, size_t len, uint8_t *out, size_t out_cap,
				     size_t *ret_len, uint64_t *ret_remaining,
				     struct kha_diag *d) KHA_WUR;

/* HashKV reply (etcdserverpb.HashKVResponse); hash_revision is 0 before etcd 3.5.? */
struct kha_hash_kv_pb {
	struct kha_etcd_header header;
	uint32_t hash;
	int64_t compact_revision;
	int64_t hash_revision;
};
int kha_hash_kv_decode_pb(const uint8_t *msg, size_t len, struct kha_hash_kv_pb *ret) KHA_WUR;

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
			  uint64_t timeout_us, struct kha_hash_kv_pb *ret,
			  struct kha_diag *d) KHA_WUR;

/* ==== snapshot files ======================================================================= */

#define KHA_SNAPSHOT_HASH_LEN 32
/* zstd frame magic, little endian on disk: 28 b5 2f fd */
#define KHA_ZSTD_MAGIC 0xFD2FB528u

/*
 * What a snapshot file holds, as read from its bbolt database (the same numbers as
 * `etcdctl snapshot status`: hash is the CRC-32C of every bucket name, key and value,
 * revision the highest revision in the "key" bucket, total_keys the entries of every bucket).
 */
struct kha_snapshot_info {
	uint64_t db_size;   /* the bbolt database, without the hash */
	uint64_t file_size; /* on disk (the compressed size when compressed) */
	bool compressed;    /* zstd */
	bool has_hash;	    /* the 32-byte SHA-256 is appended */
	uint32_t page_size;
	uint64_t pages; /* high water mark of the database */
	uint64_t txid;	/* of the meta page in use */
	int64_t revision;
	uint64_t total_keys;
	uint64_t revisions; /* entries of the "key" bucket (every stored revision) */
	uint32_t hash;
	uint64_t buckets;
};

/*
 * Verifies the bbolt database in db[0..len) (no hash appended): both meta pages (magic,
 * version, checksum; the newest valid one is used), then every page reachable from the root
 * bucket: in bounds, of the right kind, referenced once, elements inside their page, keys in
 * order; and, when the freelist is stored, that every page is either reachable or free. Fills
 * info's database fields. Returns 0, -EBADMSG with the first problem in the diag ("page 17:
 * referenced twice"), or -ENOMEM. Pure (the fuzz target drives it).
 */
int kha_snapshot_check_db(const uint8_t *db, size_t len, struct kha_snapshot_info *ret,
			  struct kha_diag *d) KHA_WUR;

/*
 * Verifies a whole snapshot in memory: the appended SHA-256 (required unless allow_no_hash),
 * then the database. Returns 0 or -EBADMSG ("SHA-256 mismatch: ...", "no integrity hash ...").
 */
int kha_snapshot_verify_buffer(const uint8_t *data, size_t len, bool allow_no_hash,
			       struct kha_snapshot_info *ret, struct kha_diag *d) KHA_WUR;

/*
 * Verifies a snapshot file, plain or zstd-compressed (detected by its magic, whatever its
 * name; a compressed file is decompressed into an unlinked temporary file next to it, or in
 * $TMPDIR when that fails). Returns 0, -EBADMSG for a corrupt file (diag says what), -ENOENT,
 * -EISDIR, -EACCES, -EIO.
 */
int kha_snapshot_verify_file(const char *path, bool allow_no_hash, struct kha_snapshot_info *ret,
			     struct kha_diag *d) KHA_WUR;

/*
 * Writes the database of a snapshot file, decompressed when it is zstd (else copied), to
 * out_fd. *ret_compressed (may be NULL) says which. Returns 0, -EBADMSG for a corrupt zstd
 * stream, or an I/O errno (-ENOSPC...), with the diag naming the file.
 */
int kha_snapshot_decompress(const char *path, int out_fd, bool *ret_compressed,
			    struct kha_diag *d) KHA_WUR;

/* ==== snapshot save ======================================================================== */

enum kha_snapshot_transport {
	KHA_SNAPSHOT_AUTO,    /* gRPC, the gateway when the endpoint does not speak gRPC */
	KHA_SNAPSHOT_GRPC,    /* etcd's native stream: etcdctl's speed */
	KHA_SNAPSHOT_GATEWAY, /* the JSON gateway (base64 lines): about half the speed */
};
const char *kha_snapshot_transport_name(enum kha_snapshot_transport t);
/* "auto", "grpc", "gateway" -> enum; -EINVAL otherwise. */
int kha_snapshot_transport_parse(const char *s, enum kha_snapshot_transport *ret) KHA_WUR;

/* Progress while streaming: bytes so far and the expected total (0 while unknown). */
typedef void (*kha_snapshot_progress_fn)(void *userdata, uint64_t received, uint64_t total);

/*
 * Decides the final file name once the snapshot is verified (the backup loop puts the
 * revision into it). Writes a path into buf (same directory as the provisional one) and
 * returns 0, or a negative errno.
 */
typedef int (*kha_snapshot_name_fn)(void *userdata, const struct kha_snapshot_info *info, char *buf,
				    size_t size);

struct kha_snapshot_save_opts {
	const struct kha_etcd_config *cfg; /* TLS, timeouts; the member is endpoint, or else
					      cfg->endpoints[0] (a snapshot is per member) */
	const char *endpoint;
	const char *path; /* the target file (provisional when name_fn is set) */
	kha_snapshot_name_fn name_fn;
	void *name_userdata;
	enum kha_snapshot_transport transport;
	bool compress;	     /* zstd (the raw snapshot is verified first, then compressed) */
	int compress_level;  /* 0 = 3 */
	uint64_t timeout_us; /* the whole transfer; 0 = none */
	uint64_t stall_us;   /* no byte for this long fails the transfer; 0 = 30 s */
	mode_t mode;	     /* 0 = 0600: a snapshot holds every secret of the cluster */
	const volatile sig_atomic_t *cancel; /* non-zero aborts (-ECANCELED), no file left */
	kha_snapshot_progress_fn progress;   /* may be NULL; at most ~10 calls a second */
	void *progress_userdata;
};

struct kha_snapshot_save_result {
	struct kha_snapshot_info info;
	char path[4096]; /* the file written */
	enum kha_snapshot_transport transport;
	char endpoint[512];
	char fallback[256];	       /* why gRPC was not used ("" when it was, or not tried) */
	struct kha_etcd_header header; /* the member's status header taken before streaming
					  (revision 0 when the status failed) */
	char version[32];	       /* etcd version of the member ("" unknown) */
	uint64_t stream_us;	       /* streaming (and writing) */
	uint64_t verify_us;	       /* bbolt verification */
	uint64_t compress_us;
	uint64_t total_us;
};

/*
 * Streams a snapshot from one member into a temporary file next to the target (named
 * ".<target>.tmp.XXXXXX", never the target), checking the SHA-256 while streaming, then
 * verifies the bbolt database, optionally compresses, fsyncs and renames it into place.
 * Any failure, the cancel flag included, removes the temporary file: the target is then
 * untouched (an earlier file of that name stays as it was). Returns 0 and fills *ret, or:
 * -ECANCELED, -EBADMSG (hash mismatch, broken database, cut stream), -ENOSPC, -EISDIR,
 * -ENOENT (no such directory), connection errors (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET),
 * with the diag saying which member and what.
 */
int kha_snapshot_save(const struct kha_snapshot_save_opts *o, struct kha_snapshot_save_result *ret,
		      struct kha_diag *d) KHA_WUR;

/* ==== membership guards (pure) ============================================================= */

/*
 * Whether a membership change is safe, decided from what the cluster looks like right now.
 * Every refusal names its rule and the way out; a refusal marked forceable may be overridden
 * (--force), the others never (etcd would refuse them, or they make no sense).
 *
 * Fault tolerance t = voters up - quorum, quorum = voters / 2 + 1 (learners do not vote);
 * t < 0 means quorum is lost. A member that was added but has not started yet counts as a
 * voter that is down: that is why adding a voting member is the dangerous moment.
 */
struct kha_guard_member {
	uint64_t id;
	const char *name; /* "" while not started */
	bool is_learner;
	bool reachable;
	uint64_t raft_index; /* 0 = unknown */
	const char *const *peer_urls;
	size_t n_peer_urls;
};

struct kha_guard_cluster {
	const struct kha_guard_member *members;
	size_t n_members;
	uint64_t leader;	/* the agreed leader, 0 = none */
	bool alarm;		/* a NOSPACE or CORRUPT alarm is active */
	uint64_t lag_threshold; /* raft entries behind the leader that count as lagging; 0 = 1000 */
};

enum kha_guard_op {
	KHA_GUARD_ADD,	       /* a voting member */
	KHA_GUARD_ADD_LEARNER, /* a learner (does not vote, does not change quorum) */
	KHA_GUARD_REMOVE,
	KHA_GUARD_PROMOTE,
};

struct kha_guard_request {
	enum kha_guard_op op;
	const char *name; /* ADD*: the new member's name */
	const char *const *peer_urls;
	size_t n_peer_urls;
	uint64_t target; /* REMOVE, PROMOTE: the member's id */
};

struct kha_guard_verdict {
	bool allowed;
	bool forceable;	   /* when refused: --force may override it */
	char rule[32];	   /* the rule that refused ("quorum-loss", ...), "" when allowed */
	char reason[640];  /* why, with the way out */
	char warning[384]; /* allowed, but worth saying; "" when nothing */
	size_t voters_before, voters_after;
	size_t up_before, up_after;
	size_t quorum_before, quorum_after;
	int tolerance_before, tolerance_after; /* negative: quorum lost */
};

/*
 * Decides req against c. Rules, in order (docs/etcd-ops.md):
 *   unknown-member   REMOVE/PROMOTE of an id that is not a member (not forceable)
 *   not-a-learner    PROMOTE of a voter (not forceable)
 *   name-taken       ADD with a name a member already has (not forceable)
 *   peer-url-taken   ADD with a peer URL a member already has (not forceable)
 *   no-leader        no agreed leader: membership changes go through raft
 *   quorum-lost      the cluster has already lost quorum
 *   alarm            an active NOSPACE/CORRUPT alarm
 *   pending-member   ADD while a member is unstarted or a learner waits for promotion
 *   learner-down     PROMOTE of a learner that does not answer
 *   quorum-loss      the change leaves fewer voters up than the new quorum
 *   fault-tolerance  ADD (voting) lowers the failures tolerated until the new member runs
 *   member-down      ADD while a voter is down: etcd's strict reconfiguration check refuses
 *                    every add then (remove the dead member first)
 *   leader-lagging   REMOVE of the leader while another voter is down or lagging
 * Returns 0 (the decision is in *ret), -EINVAL for a bad request.
 */
int kha_guard_check(const struct kha_guard_cluster *c, const struct kha_guard_request *req,
		    struct kha_guard_verdict *ret) KHA_WUR;

/*
 * A guard view of a cluster report: members[] must hold rep->n_members entries (its strings
 * are borrowed from rep). A leader that is not a listed member that answers (the others still
 * name a dead or removed leader until they elect another) counts as no leader.
 */
void kha_guard_from_report(const struct kha_etcd_cluster_report *rep,
			   struct kha_guard_member *members, struct kha_guard_cluster *ret);

/* The fault tolerance of voters with up of them answering (negative: quorum lost). */
int kha_guard_tolerance(size_t voters, size_t up);

/* ==== membership operations ================================================================ */

/*
 * Finds a member by name, else by id (hex, as etcdctl prints it). Returns its index in
 * rep->members, -ENOENT (diag lists the members) or -EEXIST when the name is ambiguous.
 */
int kha_member_find(const struct kha_etcd_cluster_report *rep, const char *name_or_id,
		    struct kha_diag *d) KHA_WUR;

/*
 * Checks a peer URL given on the command line: http or https, a host and a port, nothing
 * after the port. Returns 0 or -EINVAL with the reason in the diag.
 */
int kha_member_check_peer_url(const char *url, struct kha_diag *d) KHA_WUR;

/*
 * What a new member must be started with (etcd's flags): --name, --initial-cluster with every
 * member's peer URLs (the new one under its name), --initial-cluster-state existing,
 * --initial-advertise-peer-urls. members is the list returned by the add.
 */
struct kha_member_start {
	char *name;
	char *initial_cluster;
	char *initial_advertise_peer_urls;
};
int kha_member_start_flags(const struct kha_etcd_member_list *members, uint64_t new_id,
			   const char *new_name, struct kha_member_start *ret) KHA_WUR;
void kha_member_start_release(struct kha_member_start *s);

/* Progress of a wait, for the command to print (a sentence, no newline). */
typedef void (*kha_member_progress_fn)(void *userdata, const char *text);

/*
 * Waits until member id has started (it has a name and answers its status) and, for a
 * learner, until its raft index is within lag of the leader's. Polls every 500 ms; returns
 * 0, -ETIMEDOUT, -ECANCELED or -ENOENT (removed meanwhile).
 */
int kha_member_wait_started(const struct kha_etcd_config *cfg, uint64_t id, uint64_t lag,
			    uint64_t timeout_us, const volatile sig_atomic_t *cancel,
			    kha_member_progress_fn fn, void *userdata, struct kha_diag *d) KHA_WUR;

/*
 * Promotes learner id, retrying while etcd refuses because it has not caught up with the
 * leader ("can only promote a learner member which is in sync with leader"), until
 * timeout_us. Returns 0, -ETIMEDOUT (diag: how far behind), -ECANCELED or the error.
 */
int kha_member_promote_wait(const struct kha_etcd_config *cfg, uint64_t id, uint64_t timeout_us,
			    const volatile sig_atomic_t *cancel, kha_member_progress_fn fn,
			    void *userdata, struct kha_diag *d) KHA_WUR;

/* ==== scheduled backups ==================================================================== */

/*
 * File names: "etcd-20261127T054000Z-rev12345.db" (UTC time of the snapshot, its revision),
 * ".zst" appended when compressed. Only files of this form are ever pruned.
 */
#define KHA_BACKUP_NAME_MAX 64
int kha_backup_name(char *buf, size_t size, int64_t unix_s, int64_t revision, bool compressed);
/* Parses a backup file name; -EINVAL when it is not one. */
int kha_backup_parse_name(const char *name, int64_t *ret_unix_s, int64_t *ret_revision,
			  bool *ret_compressed) KHA_WUR;

struct kha_backup_entry {
	int64_t unix_s;
	int64_t revision;
};

/*
 * Retention: keep the keep_last newest backups, plus the newest backup of each of the
 * keep_daily most recent UTC days that have a backup (days without one do not count, so a
 * pause in backups never eats the history). The newest backup is always kept (keep_last 0
 * counts as 1). Pure: fills keep[i] for e[i], entries in any order. Returns the number kept.
 */
struct kha_retention {
	size_t keep_last;
	size_t keep_daily;
};
size_t kha_backup_retention(const struct kha_backup_entry *e, size_t n,
			    const struct kha_retention *policy, bool *keep);

struct kha_backup_file {
	char name[KHA_BACKUP_NAME_MAX];
	int64_t unix_s;
	int64_t revision;
	bool compressed;
	uint64_t size;
};

struct kha_backup_list {
	struct kha_backup_file *files; /* owned, newest first */
	size_t n;
};
void kha_backup_list_release(struct kha_backup_list *l);

/* The backups in dir (files named as above), newest first. */
int kha_backup_list_dir(const char *dir, struct kha_backup_list *ret, struct kha_diag *d) KHA_WUR;

/*
 * Deletes the backups of dir the policy does not keep (and fsyncs dir). *ret_deleted (may be
 * NULL) receives the count. Returns 0 or a negative errno (the first unlink that failed).
 */
int kha_backup_prune(const char *dir, const struct kha_retention *policy, size_t *ret_deleted,
		     struct kha_diag *d) KHA_WUR;

/*
 * Removes temporary files a killed save left in dir (".etcd-*.tmp.*"). Returns how many were
 * removed.
 */
size_t kha_backup_clean_temps(const char *dir);

/* Delay before retry number failures (1 = the first): base doubled each time, capped. */
uint64_t kha_backup_retry_delay(uint64_t base_us, uint64_t cap_us, unsigned failures);

/*
 * The backup daemon's health rule: healthy while the last success is at most two intervals
 * old; before the first success, while the daemon has run for less than two intervals.
 * last_success_us 0 = none; times on one clock.
 */
bool kha_backup_healthy(uint64_t last_success_us, uint64_t started_us, uint64_t now_us,
			uint64_t interval_us);

struct kha_backup_opts {
	const struct kha_etcd_config *cfg; /* endpoints tried in order until one gives a snapshot */
	const char *dir;
	bool compress;
	int compress_level;
	enum kha_snapshot_transport transport;
	uint64_t timeout_us;
	uint64_t stall_us;
	struct kha_retention retention;
	const volatile sig_atomic_t *cancel;
};

struct kha_backup_result {
	struct kha_snapshot_save_result save;
	size_t pruned;
	size_t kept;
	char prune_error[256]; /* "" when pruning worked */
};

/*
 * One backup: a verified snapshot from the first endpoint that delivers one (an endpoint
 * that cannot be reached is skipped; a corrupt snapshot is an error) into dir, named after
 * its time and revision, then pruning. A pruning failure is reported in ret->prune_error but
 * does not fail the backup. Returns 0 or the snapshot's error.
 */
int kha_backup_once(const struct kha_backup_opts *o, struct kha_backup_result *ret,
		    struct kha_diag *d) KHA_WUR;

/* ==== consistency: the members' KV hashes at one revision ================================= */

enum kha_consistency_state {
	KHA_CONSISTENCY_MEMBER_OK,	     /* in the agreeing majority */
	KHA_CONSISTENCY_MEMBER_DIVERGED,     /* its hash differs from the majority's */
	KHA_CONSISTENCY_MEMBER_UNREACHABLE,  /* no status */
	KHA_CONSISTENCY_MEMBER_ERROR,	     /* HashKV failed (compacted meanwhile, timeout...) */
	KHA_CONSISTENCY_MEMBER_NOT_COMPARED, /* answered, but for another compact revision */
};
const char *kha_consistency_state_name(enum kha_consistency_state s);

struct kha_consistency_member {
	uint64_t id;
	char name[64];
	char endpoint[256];
	bool is_learner;
	bool reachable;	  /* its status answered */
	int64_t revision; /* its current revision (status header) */
	int hash_r;	  /* 0 = HashKV answered, else the errno */
	char error[256];
	uint32_t hash;
	int64_t compact_revision;
	int64_t hash_revision;		  /* 0 when the member does not say (etcd < 3.5.?) */
	enum kha_consistency_state state; /* set by kha_consistency_compare */
};

enum kha_consistency_verdict {
	KHA_CONSISTENT,		    /* every member answered the same hash (exit 0) */
	KHA_CONSISTENCY_INCOMPLETE, /* those that answered agree; some could not be checked (1) */
	KHA_CONSISTENCY_RETRY,	    /* compaction moved between the probes: not comparable (1) */
	KHA_CONSISTENCY_DIVERGED,   /* a member's data differs (exit 2) */
	KHA_CONSISTENCY_UNKNOWN,    /* no member could be checked */
};
const char *kha_consistency_verdict_name(enum kha_consistency_verdict v);

struct kha_consistency_report {
	int64_t revision;			/* the common revision compared */
	int64_t compact_revision;		/* of the compared members */
	struct kha_consistency_member *members; /* owned */
	size_t n_members;
	enum kha_consistency_verdict verdict;
	size_t compared;   /* members whose hash was compared */
	size_t agreeing;   /* in the majority */
	uint32_t hash;	   /* the majority's hash (valid when agreeing > 0) */
	unsigned attempts; /* probes made (compaction can force a retry) */
	char summary[384];
};
void kha_consistency_report_release(struct kha_consistency_report *r);

/*
 * The comparison (pure): members that answered HashKV for the same compact revision (and,
 * when they say, for revision itself) are grouped by hash; the largest group, when strictly
 * larger than every other, is the majority and the rest diverge; a tie diverges everyone.
 * Different compact revisions among the answers give KHA_CONSISTENCY_RETRY. Sets each
 * member's state, and the report's verdict, counts, hash and summary; r->members and
 * r->revision must be set.
 */
void kha_consistency_compare(struct kha_consistency_report *r);

/*
 * The whole check: every member's status in parallel, the lowest current revision among the
 * members that answered as the common revision, then HashKV at that revision on every member
 * in parallel (over gRPC), then the comparison. A compaction racing the probes is retried (3
 * attempts). member_timeout_us bounds each probe (0 = the command timeout). Returns 0 with
 * the verdict in *ret, or the error when the member list could not be had at all.
 */
int kha_consistency_check(const struct kha_etcd_config *cfg, uint64_t member_timeout_us,
			  struct kha_consistency_report *ret, struct kha_diag *d) KHA_WUR;

/* ==== rolling defragmentation =============================================================== */

/*
 * The order members are defragmented in: learners, then followers, the leader last (its
 * defragmentation stalls the member that drives the writes; done last, a hiccup there is
 * the only one). Pure: fills order[0..rep->n_members) with indexes into rep->members.
 */
void kha_defrag_order(const struct kha_etcd_cluster_report *rep, size_t *order);

/*
 * Whether the cluster is fit for the next member's defragmentation: every member answers,
 * quorum holds and the members agree on a leader (alarms do not count: NOSPACE is what
 * defragmentation cures). Pure; reason (may be NULL) says why not.
 */
bool kha_defrag_cluster_ready(const struct kha_etcd_cluster_report *rep, char *reason, size_t size);

struct kha_defrag_member {
	uint64_t id;
	char name[64];
	char endpoint[256];
	bool is_leader;
	bool is_learner;
	bool done;
	int r; /* 0, or why it failed */
	char error[256];
	int64_t size_before, size_after; /* db_size */
	int64_t in_use_before, in_use_after;
	uint64_t duration_us; /* the defragmentation itself */
	uint64_t settle_us;   /* waiting for the cluster to be ready again */
};

struct kha_defrag_report {
	struct kha_defrag_member *members; /* owned, in the order they were (to be) processed */
	size_t n_members;
	int64_t reclaimed;  /* sum of size_before - size_after of the members done */
	bool nospace_alarm; /* a NOSPACE alarm was active before: disarm it now */
};
void kha_defrag_report_release(struct kha_defrag_report *r);

typedef void (*kha_defrag_progress_fn)(void *userdata, const struct kha_defrag_member *m,
				       const char *what);

struct kha_defrag_opts {
	const struct kha_etcd_config *cfg;
	const char *member;	    /* only this member (name or hex id); NULL = all, rolling */
	uint64_t defrag_timeout_us; /* one member's defragmentation (0 = 5 min) */
	uint64_t settle_timeout_us; /* the cluster ready again after it (0 = 1 min) */
	bool force;		    /* start even when the cluster is not ready */
	const volatile sig_atomic_t *cancel;
	kha_defrag_progress_fn progress;
	void *userdata;
};

/*
 * Defragments the members one at a time in kha_defrag_order, checking that the cluster is
 * ready before each and waiting (up to settle_timeout_us) until it is again after each; stops
 * at the first failure. Returns 0 when every member was done, -EAGAIN when the cluster was not
 * ready at the start (diag says why; nothing done), -ETIMEDOUT when it did not settle, or the
 * member's error; *ret holds what was done either way (release it).
 */
int kha_defrag_rolling(const struct kha_defrag_opts *o, struct kha_defrag_report *ret,
		       struct kha_diag *d) KHA_WUR;

/* ==== restore through etcd's own tool ======================================================== */

/* Kubernetes' recommended bump: far above any revision a client can have seen. */
#define KHA_RESTORE_DEFAULT_BUMP 1000000000LL

struct kha_restore_tool {
	char path[1024];
	bool etcdutl;  /* etcdutl (3.5+), else etcdctl (ETCDCTL_API=3) */
	bool can_bump; /* --bump-revision and --mark-compacted exist (etcdutl 3.5.10+) */
};

/*
 * Finds etcd's restore tool: path when given (etcdutl or etcdctl, told by its name), else
 * etcdutl from $PATH, else etcdctl. Asks its `snapshot restore --help` whether it can bump
 * the revision. Returns 0, or -ENOENT when neither is installed.
 */
int kha_restore_find_tool(const char *path, struct kha_restore_tool *ret,
			  struct kha_diag *d) KHA_WUR;

struct kha_restore_opts {
	const char *snapshot; /* plain or zstd */
	const char *data_dir; /* must not exist (or be empty) */
	const char *wal_dir;  /* NULL = inside data_dir */
	const char *name;
	const char *initial_cluster;
	const char *initial_advertise_peer_urls;
	const char *initial_cluster_token; /* NULL = etcd's default, "etcd-cluster" */
	int64_t bump_revision;		   /* 0 = no bump; applied only when the tool can */
	bool allow_no_hash;		   /* a db file without the appended hash */
	const char *tmp_dir;		   /* for a decompressed copy; NULL = next to data_dir */
};

/*
 * The tool's command line (pure): argv[0] is tool->path, then "snapshot restore FILE" and the
 * flags; --bump-revision/--mark-compacted only when asked and tool->can_bump,
 * --skip-hash-check with allow_no_hash. *ret_argv is a NULL-terminated malloc'd array of
 * malloc'd strings (free with kha_restore_argv_free).
 */
int kha_restore_argv(const struct kha_restore_opts *o, const struct kha_restore_tool *tool,
		     const char *file, char ***ret_argv) KHA_WUR;
void kha_restore_argv_free(char **argv);

struct kha_restore_result {
	struct kha_snapshot_info snapshot; /* what was verified before restoring */
	struct kha_restore_tool tool;
	bool bumped;		   /* the revision was bumped and marked compacted */
	int64_t restored_revision; /* of the restored member's database */
	char output[1024];	   /* the tool's output (tail) */
};

/*
 * Verifies the snapshot (refusing a corrupt one: -EBADMSG), decompresses it when needed into
 * a temporary file, checks the data dir is absent or empty (-EEXIST), runs the tool (10 min at
 * most) and checks the database it wrote. Returns 0, -ENOENT (no tool), -EEXIST, -EBADMSG,
 * -EIO (the tool failed: its output is in ret->output and the diag).
 */
int kha_restore(const struct kha_restore_opts *o, const struct kha_restore_tool *tool,
		struct kha_restore_result *ret, struct kha_diag *d) KHA_WUR;

#endif
