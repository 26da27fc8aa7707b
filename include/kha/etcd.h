/* SPDX-License-Identifier: MIT */
/*
 * etcd v3 client over the JSON gRPC gateway (POST /v3/<service>/<method>; /v3beta/ is tried
 * when /v3/ answers 404). Supports etcd 3.4, 3.5 and 3.6.
 *
 * Calls block, each bounded by the command timeout (connect by the dial timeout). A client is
 * used by one thread at a time: make one per thread (kha_etcd_new is cheap; connections are
 * kept alive inside a client). Endpoint failover: a request that could not reach an endpoint
 * (refused, unreachable, TLS handshake failed, connect timeout) goes to the next endpoint; a
 * request that got an answer, even an error, is never sent elsewhere. The client then sticks
 * to the endpoint that answered.
 *
 * Keys and values are bytes: every key/value field below has a length and is also
 * NUL-terminated (one byte past the length) so text keys can be used as C strings. Request
 * structs borrow everything; result structs own everything and are released with their
 * _release function (which also accepts a zeroed struct, so `struct x r = {}` + release on
 * every path is always safe).
 *
 * Errors: negative errno with the diag naming the endpoint, e.g.
 *   "etcd https://127.0.0.1:2379: TLS handshake failed: certificate signed by unknown CA
 *    (check --cacert)"
 * gRPC codes from etcd map to errno: NotFound -ENOENT, AlreadyExists -EEXIST,
 * InvalidArgument -EINVAL, FailedPrecondition -EPERM, OutOfRange -ERANGE (compacted or future
 * revision), ResourceExhausted -ENOSPC, PermissionDenied/Unauthenticated -EACCES,
 * Unavailable -EAGAIN, DeadlineExceeded -ETIMEDOUT, Canceled/Aborted -ECANCELED,
 * Unimplemented -EOPNOTSUPP, others -EPROTO. A malformed reply is -EBADMSG, a non-gateway
 * answer (404 page, HTML) -EPROTO.
 *
 * Decoders: every reply is decoded by a pure function (kha_etcd_decode_*: JSON text -> struct)
 * that the client uses and that tests and fuzzers call directly.
 */
#ifndef KHA_ETCD_H
#define KHA_ETCD_H

#include <getopt.h>
#include <signal.h>
#include "kha/common.h"
#include "kha/diag.h"

/* ---- configuration: etcdctl's flags and environment ------------------------------------- */

#define KHA_ETCD_DEFAULT_ENDPOINT	    "http://127.0.0.1:2379"
#define KHA_ETCD_DEFAULT_TLS_ENDPOINT	    "https://127.0.0.1:2379"
#define KHA_ETCD_DEFAULT_DIAL_TIMEOUT_US    (2 * KHA_USEC_PER_SEC)
#define KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US (5 * KHA_USEC_PER_SEC)

/*
 * What kha accepts from a server that claims to be etcd; more is refused as a malformed reply
 * (-EBADMSG, -EFBIG for the size) with a message naming the limit. etcd itself recommends at
 * most 7 members; its requests are limited to 1.5 MiB by default.
 */
#define KHA_ETCD_MAX_MEMBERS 128	 /* members of a cluster */
#define KHA_ETCD_MAX_ITEMS   100000	 /* keys, events, responses, alarms in one reply */
#define KHA_ETCD_MAX_STRINGS 64		 /* URLs of one member, errors of one status */
#define KHA_ETCD_MAX_REPLY   (64u << 20) /* bytes of one unary reply */

struct kha_etcd_config {
	char **endpoints; /* owned; URLs ("https://10.0.0.1:2379"); host:port without a scheme
			     becomes https:// when a TLS flag is set, else http:// */
	size_t n_endpoints;
	char *cacert; /* owned paths, NULL = unset (system CAs, no client certificate) */
	char *cert;
	char *key;
	uint64_t dial_timeout_us;    /* connect + TLS handshake, per endpoint */
	uint64_t command_timeout_us; /* a whole call */
	bool endpoints_default;	     /* no --endpoints given: the default becomes https:// once
					--cacert or --cert is set, as etcdctl's does */
};

/* Option values of the shared etcd flags (above any short option or command-local value). */
enum {
	KHA_ETCD_OPT_ENDPOINTS = 0x4500,
	KHA_ETCD_OPT_CACERT,
	KHA_ETCD_OPT_CERT,
	KHA_ETCD_OPT_KEY,
	KHA_ETCD_OPT_DIAL_TIMEOUT,
	KHA_ETCD_OPT_COMMAND_TIMEOUT,
	KHA_ETCD_OPT_LAST = KHA_ETCD_OPT_COMMAND_TIMEOUT,
};

/*
 * Sets defaults: one endpoint http://127.0.0.1:2379 (https:// once --cacert or --cert is applied
 * through kha_etcd_config_apply_opt), 2 s dial, 5 s command.
 */
int kha_etcd_config_init(struct kha_etcd_config *cfg) KHA_WUR;
void kha_etcd_config_release(struct kha_etcd_config *cfg);
/* Copies src into a zeroed dst (so a thread can own its own config). */
int kha_etcd_config_copy(struct kha_etcd_config *dst, const struct kha_etcd_config *src) KHA_WUR;
/* Replaces the endpoints with a comma-separated list; -EINVAL for an empty list or a scheme
 * other than http/https. */
int kha_etcd_config_set_endpoints(struct kha_etcd_config *cfg, const char *list,
				  struct kha_diag *d) KHA_WUR;
/*
 * Applies the ETCDCTL_* environment variables that are set (call it before parsing flags so
 * flags win). -EINVAL with "ETCDCTL_DIAL_TIMEOUT: ..." in the diag on a bad value.
 */
int kha_etcd_config_from_env(struct kha_etcd_config *cfg, struct kha_diag *d) KHA_WUR;
/*
 * Applies one shared flag (val KHA_ETCD_OPT_*, arg its value; the commands' table of these
 * flags, names and help, is cmd_opts_etcd in src/cmd-opt.c). Returns 0, -EINVAL on a
 * bad value (diag "--dial-timeout: ..."), or -ENOENT ("unknown option") when val is not an etcd
 * flag (so an option handler can end with it as its default: branch).
 */
int kha_etcd_config_apply_opt(struct kha_etcd_config *cfg, int val, const char *arg,
			      struct kha_diag *d) KHA_WUR;

/* ---- the client --------------------------------------------------------------------------- */

struct kha_etcd;

/* Creates a client over cfg's endpoints (cfg is copied). -ENOENT/-EACCES for unreadable TLS
 * files, -EINVAL for a bad endpoint, with the diag set. No network traffic happens here. */
int kha_etcd_new(const struct kha_etcd_config *cfg, struct kha_etcd **ret,
		 struct kha_diag *d) KHA_WUR;
/* Same TLS settings and timeouts as cfg, but talking to this one endpoint only (per-member
 * status, defragment, hash checks). */
int kha_etcd_new_endpoint(const struct kha_etcd_config *cfg, const char *endpoint,
			  struct kha_etcd **ret, struct kha_diag *d) KHA_WUR;
void kha_etcd_free(struct kha_etcd *c);
KHA_DEFINE_CLEANUP(struct kha_etcd *, kha_etcd_free)
/* The endpoint the next call goes to first (the last that answered). Borrowed. */
const char *kha_etcd_endpoint(const struct kha_etcd *c);
/* Changes the timeout of the following calls (0 = the config's). */
void kha_etcd_set_command_timeout(struct kha_etcd *c, uint64_t timeout_us);

/* ---- shared result types ------------------------------------------------------------------ */

struct kha_etcd_header {
	uint64_t cluster_id;
	uint64_t member_id;
	int64_t revision;
	uint64_t raft_term;
};

struct kha_etcd_kv {
	char *key; /* owned, NUL-terminated past key_len */
	size_t key_len;
	char *value; /* owned, NUL-terminated past value_len; "" for keys_only */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;
	int64_t lease; /* 0 = none */
};
void kha_etcd_kv_release(struct kha_etcd_kv *kv);

/* ---- KV ----------------------------------------------------------------------------------- */

/*
 * A key range. key_len 0 means strlen(key). range_end NULL = the single key; prefix = every key
 * starting with key; from_key = every key >= key. At most one of range_end/prefix/from_key.
 */
struct kha_etcd_key_range {
	const char *key;
	size_t key_len;
	const char *range_end;
	size_t range_end_len;
	bool prefix;
	bool from_key;
};

struct kha_etcd_range_req {
	struct kha_etcd_key_range r;
	int64_t limit;	  /* 0 = no limit */
	int64_t revision; /* 0 = latest */
	bool keys_only;
	bool count_only;
	bool serializable; /* answer from the member's local state (no quorum read) */
};

struct kha_etcd_range_result {
	struct kha_etcd_header header;
	struct kha_etcd_kv *kvs; /* owned array */
	size_t n_kvs;
	bool more;
	int64_t count;
};
void kha_etcd_range_result_release(struct kha_etcd_range_result *r);

int kha_etcd_range(struct kha_etcd *c, const struct kha_etcd_range_req *req,
		   struct kha_etcd_range_result *ret, struct kha_diag *d) KHA_WUR;
/* One key's current kv into *ret (owned; release it); -ENOENT when absent. */
int kha_etcd_get(struct kha_etcd *c, const char *key, struct kha_etcd_kv *ret,
		 struct kha_diag *d) KHA_WUR;

struct kha_etcd_put_req {
	const char *key;
	size_t key_len; /* 0 = strlen */
	const char *value;
	size_t value_len; /* 0 = strlen (value NULL = empty) */
	int64_t lease;	  /* 0 = none */
	bool prev_kv;
	bool ignore_value; /* keep the current value (update the lease only) */
	bool ignore_lease;
};

struct kha_etcd_put_result {
	struct kha_etcd_header header;
	bool has_prev_kv;
	struct kha_etcd_kv prev_kv;
};
void kha_etcd_put_result_release(struct kha_etcd_put_result *r);

/* ret may be NULL. */
int kha_etcd_put(struct kha_etcd *c, const struct kha_etcd_put_req *req,
		 struct kha_etcd_put_result *ret, struct kha_diag *d) KHA_WUR;

struct kha_etcd_delete_req {
	struct kha_etcd_key_range r;
	bool prev_kv;
};

struct kha_etcd_delete_result {
	struct kha_etcd_header header;
	int64_t deleted;
	struct kha_etcd_kv *prev_kvs; /* owned array */
	size_t n_prev_kvs;
};
void kha_etcd_delete_result_release(struct kha_etcd_delete_result *r);

/* ret may be NULL. */
int kha_etcd_delete(struct kha_etcd *c, const struct kha_etcd_delete_req *req,
		    struct kha_etcd_delete_result *ret, struct kha_diag *d) KHA_WUR;

/* ---- transactions ------------------------------------------------------------------------- */

enum kha_etcd_cmp_target {
	KHA_ETCD_CMP_VERSION,
	KHA_ETCD_CMP_CREATE_REVISION,
	KHA_ETCD_CMP_MOD_REVISION,
	KHA_ETCD_CMP_VALUE,
	KHA_ETCD_CMP_LEASE,
};

enum kha_etcd_cmp_op {
	KHA_ETCD_CMP_EQUAL,
	KHA_ETCD_CMP_GREATER,
	KHA_ETCD_CMP_LESS,
	KHA_ETCD_CMP_NOT_EQUAL,
};

struct kha_etcd_compare {
	enum kha_etcd_cmp_target target;
	enum kha_etcd_cmp_op op;
	struct kha_etcd_key_range r; /* usually a single key */
	int64_t number;		     /* version, create/mod revision or lease */
	const char *value;	     /* for KHA_ETCD_CMP_VALUE */
	size_t value_len;	     /* 0 = strlen */
};

enum kha_etcd_op_type {
	KHA_ETCD_OP_RANGE,
	KHA_ETCD_OP_PUT,
	KHA_ETCD_OP_DELETE,
};

struct kha_etcd_op {
	enum kha_etcd_op_type type;
	union {
		struct kha_etcd_range_req range;
		struct kha_etcd_put_req put;
		struct kha_etcd_delete_req del;
	};
};

struct kha_etcd_txn_req {
	const struct kha_etcd_compare *compare;
	size_t n_compare;
	const struct kha_etcd_op *success;
	size_t n_success;
	const struct kha_etcd_op *failure;
	size_t n_failure;
};

struct kha_etcd_op_result {
	enum kha_etcd_op_type type;
	union {
		struct kha_etcd_range_result range;
		struct kha_etcd_put_result put;
		struct kha_etcd_delete_result del;
	};
};

struct kha_etcd_txn_result {
	struct kha_etcd_header header;
	bool succeeded;
	struct kha_etcd_op_result *responses; /* owned array, one per op of the branch taken */
	size_t n_responses;
};
void kha_etcd_txn_result_release(struct kha_etcd_txn_result *r);

int kha_etcd_txn(struct kha_etcd *c, const struct kha_etcd_txn_req *req,
		 struct kha_etcd_txn_result *ret, struct kha_diag *d) KHA_WUR;

/* Compacts the history up to revision (physical: wait until it is applied on disk). */
int kha_etcd_compact(struct kha_etcd *c, int64_t revision, bool physical,
		     struct kha_diag *d) KHA_WUR;

/* ---- leases ------------------------------------------------------------------------------- */

/* Grants a lease of ttl_s seconds (id 0 = chosen by etcd). ret_id/ret_ttl may be NULL. */
int kha_etcd_lease_grant(struct kha_etcd *c, int64_t ttl_s, int64_t id, int64_t *ret_id,
			 int64_t *ret_ttl, struct kha_diag *d) KHA_WUR;
/*
 * Renews the lease once (the gateway answers one keep-alive per request: a keep-alive loop
 * calls this every TTL/3). *ret_ttl is the new TTL in seconds, 0 when the lease has expired or
 * does not exist.
 */
int kha_etcd_lease_keepalive_once(struct kha_etcd *c, int64_t id, int64_t *ret_ttl,
				  struct kha_diag *d) KHA_WUR;
/* Revokes the lease and deletes its keys; -ENOENT when it does not exist. */
int kha_etcd_lease_revoke(struct kha_etcd *c, int64_t id, struct kha_diag *d) KHA_WUR;

struct kha_etcd_bytes {
	char *data; /* owned, NUL-terminated past len */
	size_t len;
};

struct kha_etcd_lease_ttl {
	struct kha_etcd_header header;
	int64_t id;
	int64_t ttl; /* remaining seconds; -1 when expired or unknown */
	int64_t granted_ttl;
	struct kha_etcd_bytes *keys; /* owned array (only when asked for) */
	size_t n_keys;
};
void kha_etcd_lease_ttl_release(struct kha_etcd_lease_ttl *r);

int kha_etcd_lease_time_to_live(struct kha_etcd *c, int64_t id, bool keys,
				struct kha_etcd_lease_ttl *ret, struct kha_diag *d) KHA_WUR;

/* ---- watch (streaming) -------------------------------------------------------------------- */

enum kha_etcd_event_type {
	KHA_ETCD_EVENT_PUT,
	KHA_ETCD_EVENT_DELETE,
};

struct kha_etcd_event {
	enum kha_etcd_event_type type;
	struct kha_etcd_kv kv; /* for DELETE only key and mod_revision are set */
	bool has_prev_kv;
	struct kha_etcd_kv prev_kv;
};

struct kha_etcd_watch_response {
	struct kha_etcd_header header;
	int64_t watch_id;
	bool created;		       /* the watch is established (no events yet) */
	bool canceled;		       /* the server ended the watch (see compact_revision) */
	int64_t compact_revision;      /* > 0: start_revision was compacted; restart from here */
	char *cancel_reason;	       /* owned, "" when none */
	struct kha_etcd_event *events; /* owned array */
	size_t n_events;
};
void kha_etcd_watch_response_release(struct kha_etcd_watch_response *r);

struct kha_etcd_watch_req {
	struct kha_etcd_key_range r;
	int64_t start_revision; /* 0 = from now */
	bool prev_kv;
	bool progress_notify;
	bool no_put;
	bool no_delete;
	uint64_t timeout_us; /* deadline of the whole watch; 0 = none (then use cancel) */
	const volatile sig_atomic_t *cancel; /* non-zero ends the watch within about a second */
};

/*
 * Called for each response of the watch stream, the "created" one included. Borrowed
 * response, valid during the call. Return 0 to keep watching; anything else ends the watch
 * and is returned by kha_etcd_watch.
 */
typedef int (*kha_etcd_watch_fn)(void *userdata, const struct kha_etcd_watch_response *resp);

/*
 * Watches until the callback stops it (its value is returned), the timeout expires
 * (-ETIMEDOUT), the cancel flag is set (-ECANCELED), the server cancels the watch (-ERANGE when
 * compacted, after the callback saw the response with compact_revision; else -ECANCELED) or the
 * stream fails (negative errno). Never runs longer than timeout_us when it is set.
 */
int kha_etcd_watch(struct kha_etcd *c, const struct kha_etcd_watch_req *req, kha_etcd_watch_fn fn,
		   void *userdata, struct kha_diag *d) KHA_WUR;

/* ---- cluster ------------------------------------------------------------------------------ */

struct kha_etcd_member {
	uint64_t id;
	char *name; /* owned; "" for a member added but not started yet */
	char **peer_urls;
	size_t n_peer_urls;
	char **client_urls; /* owned; empty until the member has started */
	size_t n_client_urls;
	bool is_learner;
};
void kha_etcd_member_release(struct kha_etcd_member *m);

struct kha_etcd_member_list {
	struct kha_etcd_header header;
	struct kha_etcd_member *members; /* owned array */
	size_t n_members;
};
void kha_etcd_member_list_release(struct kha_etcd_member_list *l);

int kha_etcd_member_list(struct kha_etcd *c, struct kha_etcd_member_list *ret,
			 struct kha_diag *d) KHA_WUR;
/* Adds a member; ret_member and ret_list may be NULL. */
int kha_etcd_member_add(struct kha_etcd *c, const char *const *peer_urls, size_t n_peer_urls,
			bool is_learner, struct kha_etcd_member *ret_member,
			struct kha_etcd_member_list *ret_list, struct kha_diag *d) KHA_WUR;
/* -ENOENT for an unknown member; ret_list may be NULL. */
int kha_etcd_member_remove(struct kha_etcd *c, uint64_t id, struct kha_etcd_member_list *ret_list,
			   struct kha_diag *d) KHA_WUR;
/* Promotes a learner (-EPERM while it is not in sync with the leader). ret_list may be NULL. */
int kha_etcd_member_promote(struct kha_etcd *c, uint64_t id, struct kha_etcd_member_list *ret_list,
			    struct kha_diag *d) KHA_WUR;

/* ---- maintenance -------------------------------------------------------------------------- */

struct kha_etcd_status {
	struct kha_etcd_header header; /* header.member_id: the member that answered */
	char *version;		       /* owned, "3.4.23" */
	int64_t db_size;
	int64_t db_size_in_use; /* 0 when the member does not report it */
	uint64_t leader;	/* member id of the leader it knows, 0 = none */
	uint64_t raft_index;
	uint64_t raft_term;
	uint64_t raft_applied_index; /* 0 when the member does not report it */
	char **errors;		     /* owned; e.g. "etcdserver: no leader",
					"memberID:123 alarm:NOSPACE " */
	size_t n_errors;
	bool is_learner;
};
void kha_etcd_status_release(struct kha_etcd_status *s);

/* Status of the member behind the client's current endpoint. */
int kha_etcd_status(struct kha_etcd *c, struct kha_etcd_status *ret, struct kha_diag *d) KHA_WUR;

enum kha_etcd_alarm_type {
	KHA_ETCD_ALARM_NONE,
	KHA_ETCD_ALARM_NOSPACE,
	KHA_ETCD_ALARM_CORRUPT,
};
const char *kha_etcd_alarm_name(enum kha_etcd_alarm_type t);

struct kha_etcd_alarm {
	uint64_t member_id;
	enum kha_etcd_alarm_type type;
};

struct kha_etcd_alarm_list {
	struct kha_etcd_header header;
	struct kha_etcd_alarm *alarms; /* owned array */
	size_t n_alarms;
};
void kha_etcd_alarm_list_release(struct kha_etcd_alarm_list *l);

/* Active alarms of the cluster (goes through raft: needs quorum). */
int kha_etcd_alarm_list(struct kha_etcd *c, struct kha_etcd_alarm_list *ret,
			struct kha_diag *d) KHA_WUR;
/* Disarms one alarm (member_id 0 and type NONE = all). */
int kha_etcd_alarm_disarm(struct kha_etcd *c, uint64_t member_id, enum kha_etcd_alarm_type type,
			  struct kha_diag *d) KHA_WUR;

/*
 * Parses an alarm out of a status error string ("memberID:123 alarm:NOSPACE "). Returns 0 and
 * fills ret, or -ENOENT when the string is not an alarm.
 */
int kha_etcd_alarm_from_status_error(const char *s, struct kha_etcd_alarm *ret) KHA_WUR;

/* Defragments the member behind the client's current endpoint (use kha_etcd_new_endpoint). */
int kha_etcd_defragment(struct kha_etcd *c, struct kha_diag *d) KHA_WUR;

struct kha_etcd_hash_kv {
	struct kha_etcd_header header;
	uint32_t hash;
	int64_t compact_revision;
};
/*
 * HashKV of the keyspace up to revision (0 = latest) on the current endpoint. -EOPNOTSUPP when
 * the gateway does not expose it (etcd 3.4 maps only Hash, see kha_etcd_hash).
 */
int kha_etcd_hash_kv(struct kha_etcd *c, int64_t revision, struct kha_etcd_hash_kv *ret,
		     struct kha_diag *d) KHA_WUR;
/* Hash of the whole backend of the current endpoint's member (every etcd version). */
int kha_etcd_hash(struct kha_etcd *c, uint32_t *ret_hash, struct kha_etcd_header *ret_header,
		  struct kha_diag *d) KHA_WUR;

/*
 * Snapshots are not streamed here: kha_snapshot_save (kha/backup.h) streams one over gRPC or
 * this gateway, checks its SHA-256 and writes it atomically.
 */

/* ---- health verdict (pure; used by `kha etcd status`, audit, drill) ----------------------- */

/* What one member looks like, as seen by status probes. Borrowed strings. */
struct kha_etcd_member_health {
	uint64_t id;
	const char *name;	     /* "" when unknown/unstarted */
	bool is_learner;	     /* learners do not count toward quorum */
	bool reachable;		     /* its status answered */
	const char *error;	     /* why not reachable (NULL when reachable) */
	uint64_t leader;	     /* leader id it reports, 0 = none */
	uint64_t raft_index;	     /* committed index it reports */
	uint64_t raft_applied_index; /* 0 = not reported */
	bool alarm_nospace;	     /* an active NOSPACE alarm on this member */
	bool alarm_corrupt;	     /* an active CORRUPT alarm on this member */
	const char *const
		*errors; /* other status errors it reports (not alarms, not "no leader") */
	size_t n_errors;
};

enum kha_etcd_verdict {
	KHA_ETCD_HEALTHY,  /* exit 0 */
	KHA_ETCD_DEGRADED, /* exit 1: works, but one more failure hurts, or a warning */
	KHA_ETCD_CRITICAL, /* exit 2: quorum lost, no leader, corrupt or out of space */
};
const char *kha_etcd_verdict_name(enum kha_etcd_verdict v);

struct kha_etcd_health {
	enum kha_etcd_verdict verdict;
	size_t members;	  /* all members, learners included */
	size_t voters;	  /* non-learners */
	size_t voters_up; /* reachable non-learners */
	size_t learners;
	size_t learners_up;
	size_t quorum;	   /* voters / 2 + 1 */
	bool quorum_ok;	   /* voters_up >= quorum */
	int can_lose;	   /* voter failures still tolerated (0 when quorum is lost) */
	uint64_t leader;   /* the leader the reachable members agree on, 0 = none/disagreement */
	long leader_index; /* its index in the input, -1 when unknown or not a member */
	char **warnings;   /* owned, one sentence each */
	size_t n_warnings;
	char summary[256]; /* "healthy: 3/3 members up, leader etcd-1, can lose 1 member" */
};
void kha_etcd_health_release(struct kha_etcd_health *h);

/*
 * Assesses a cluster from its members' states. lag_threshold: a reachable member whose raft
 * index is more than this behind the highest is flagged (0 = 1000). Rules (docs/etcd.md):
 * quorum lost, no agreed leader, a CORRUPT or NOSPACE alarm -> critical; a voter down, an even
 * voter count, a single voter, members disagreeing about the leader, raft lag, a learner down,
 * a member reporting errors -> degraded; else healthy. Returns 0 or -ENOMEM.
 */
int kha_etcd_health_assess(const struct kha_etcd_member_health *members, size_t n,
			   uint64_t lag_threshold, struct kha_etcd_health *ret) KHA_WUR;
/*
 * An alarm that names no member (etcd 3.4's periodic corruption check raises CORRUPT on
 * member 0): h becomes critical, with a warning and a summary that say so. Returns 0 or
 * -ENOMEM.
 */
int kha_etcd_health_add_unnamed_alarm(struct kha_etcd_health *h,
				      enum kha_etcd_alarm_type type) KHA_WUR;

/* ---- cluster report: every member probed in parallel (kha etcd status, audit, drill) ------- */

struct kha_etcd_member_report {
	struct kha_etcd_member member; /* from the member list (owned) */
	char *endpoint;		       /* owned: the URL that answered or was tried; NULL = none */
	bool reachable;		       /* its status answered */
	char *error;		       /* owned: why not, NULL when reachable */
	struct kha_etcd_status status; /* valid when reachable (owned) */
	bool alarm_nospace;	       /* alarms raised on this member (from any member's status) */
	bool alarm_corrupt;
	char **errors; /* owned: its status errors other than alarms and "no leader" */
	size_t n_errors;
};

struct kha_etcd_cluster_report {
	uint64_t cluster_id;
	char *members_from;			/* owned: the endpoint whose member list is used */
	struct kha_etcd_member_report *members; /* owned array, by name (unstarted last, by id) */
	size_t n_members;
	struct kha_etcd_health health;
	bool alarm_nospace_unnamed; /* alarms raised on no member (member 0: etcd 3.4's */
	bool alarm_corrupt_unnamed; /* periodic corruption check) or on a member removed since,
				     * from any member's status */
};
void kha_etcd_cluster_report_release(struct kha_etcd_cluster_report *r);

/*
 * Asks every configured endpoint for its status and the member list, then every member not
 * heard from yet at its own client URLs (with cfg's TLS settings), all in parallel threads,
 * each member bounded by member_timeout_us (0 = the command timeout; connects by the dial
 * timeout). Then assesses the health (lag_threshold as kha_etcd_health_assess). Returns 0 when
 * a member list was obtained (the verdict is in ret->health), or the first endpoint's error
 * when no endpoint gave one (-ECONNREFUSED, -ETIMEDOUT, -EACCES for TLS trust, -EPROTO for a
 * non-etcd endpoint, -EBADMSG for a malformed reply), with the diag set.
 */
int kha_etcd_cluster_report(const struct kha_etcd_config *cfg, uint64_t member_timeout_us,
			    uint64_t lag_threshold, struct kha_etcd_cluster_report *ret,
			    struct kha_diag *d) KHA_WUR;

/* ---- decoders (pure: JSON text of a gateway reply -> struct) ------------------------------ */

/* A gRPC error as the gateway writes it: {"error":"..","code":N,"message":".."} (etcd 3.4),
 * {"code":N,"message":".."} (3.5 and later), or a stream's {"error":{"grpc_code":N,...}}. */
struct kha_etcd_error {
	int grpc_code;
	char message[256];
};
/* Returns 0 when text is such an error object, -EBADMSG when it is not. */
int kha_etcd_decode_error(const char *text, size_t len, struct kha_etcd_error *ret) KHA_WUR;
/* The errno for a gRPC status code (table above) and the code's name ("Unavailable"). */
int kha_etcd_errno_from_grpc(int code);
const char *kha_etcd_grpc_code_name(int code);
/*
 * What to do next about an error etcd answered with (its message, "etcdserver: unhealthy
 * cluster"): a clause to print after it, or NULL when there is nothing useful to say.
 */
const char *kha_etcd_error_hint(const char *message);
/* "etcd said (gRPC Name): next step", the one line of a decoded error, into d. Returns the errno. */
int kha_etcd_error_diag(const struct kha_etcd_error *e, const char *prefix, struct kha_diag *d);

/*
 * Each decodes one reply (or one stream line for watch/snapshot/keepalive, with or without the
 * {"result": ...} wrapper) into *ret. ret must be zeroed; on failure it is left released.
 * Returns 0, -EBADMSG with what was wrong in the diag ("field 'kvs' is not an array"), or for a
 * stream {"error": ...} line the mapped gRPC errno.
 */
int kha_etcd_decode_status(const char *text, size_t len, struct kha_etcd_status *ret,
			   struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_member_list(const char *text, size_t len, struct kha_etcd_member_list *ret,
				struct kha_diag *d) KHA_WUR;
/* member add: the new member (ret_member, may be NULL) and the list (ret_list, may be NULL). */
int kha_etcd_decode_member_add(const char *text, size_t len, struct kha_etcd_member *ret_member,
			       struct kha_etcd_member_list *ret_list, struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_range(const char *text, size_t len, struct kha_etcd_range_result *ret,
			  struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_put(const char *text, size_t len, struct kha_etcd_put_result *ret,
			struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_delete(const char *text, size_t len, struct kha_etcd_delete_result *ret,
			   struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_txn(const char *text, size_t len, struct kha_etcd_txn_result *ret,
			struct kha_diag *d) KHA_WUR;
/* lease grant / keepalive / revoke: id and ttl (ttl 0 when absent, i.e. expired). */
int kha_etcd_decode_lease(const char *text, size_t len, int64_t *ret_id, int64_t *ret_ttl,
			  struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_lease_ttl(const char *text, size_t len, struct kha_etcd_lease_ttl *ret,
			      struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_watch(const char *text, size_t len, struct kha_etcd_watch_response *ret,
			  struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_alarms(const char *text, size_t len, struct kha_etcd_alarm_list *ret,
			   struct kha_diag *d) KHA_WUR;
int kha_etcd_decode_hash_kv(const char *text, size_t len, struct kha_etcd_hash_kv *ret,
			    struct kha_diag *d) KHA_WUR;
/* A snapshot line: *ret_blob (owned) and its length, *ret_remaining (0 when absent). */
int kha_etcd_decode_snapshot(const char *text, size_t len, char **ret_blob, size_t *ret_len,
			     uint64_t *ret_remaining, struct kha_diag *d) KHA_WUR;
/* Any reply's header (absent = zeroes). */
int kha_etcd_decode_header(const char *text, size_t len, struct kha_etcd_header *ret,
			   struct kha_diag *d) KHA_WUR;

#endif
