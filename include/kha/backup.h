/* SPDX-License-Identifier: MIT */
/*
 * Snapshots and backups of etcd, the only stateful part of the control plane (lib/backup):
 *
 *   snapshots     streamed from one member over etcd's native gRPC (HTTP/2 through libcurl)
 *                 or the JSON gateway, checked while streaming (the SHA-256 etcd appends),
 *                 written atomically, the bbolt structure verified, optionally zstd-compressed;
 *                 verification of snapshot files; restore through etcd's own tool
 *   backups       the naming of scheduled snapshots, retention (a pure function), back-off and
 *                 the health rule of the backup daemon; the daemon itself (kha etcd backup)
 *
 * The operations on a running cluster (membership, consistency, defragmentation) are in
 * kha/etcdops.h; the gRPC transport the snapshot stream uses is in kha/etcd-grpc.h.
 *
 * Conventions as in the rest of kha: negative errno returns with a struct kha_diag naming what
 * failed; result structs own their strings and are released with their _release function
 * (which accepts a zeroed struct); the library never prints and never exits.
 */
#ifndef KHA_BACKUP_H
#define KHA_BACKUP_H

#include <signal.h>
#include <sys/types.h>
#include <time.h>
#include "kha/common.h"
#include "kha/diag.h"
#include "kha/etcd.h"
#include "kha/log.h"

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
	char name[256];
	bool named;	  /* the name is a backup name as above (only such files are pruned) */
	int64_t unix_s;	  /* from the name (named files) */
	int64_t revision; /* from the name (named files) */
	bool compressed;  /* from the name (named files) */
	uint64_t size;
	struct timespec mtime;
};

struct kha_backup_list {
	struct kha_backup_file *files; /* owned, newest first */
	size_t n;
};
void kha_backup_list_release(struct kha_backup_list *l);

/* The backups in dir (regular files named as above), newest first by their names. */
int kha_backup_list_dir(const char *dir, struct kha_backup_list *ret, struct kha_diag *d) KHA_WUR;

/*
 * Every snapshot candidate in dir, whatever its name (an operator's `etcdctl snapshot save`
 * counts as much as kha's backups): non-empty regular files, symlinks followed, dot files and
 * the temporaries of atomic writes (*.tmp, *.part) left aside; newest modification first
 * (named files also get their name's fields). What kha lock's backup gate and kha audit read.
 * Returns 0, or the errno of the directory (-ENOENT, -ENOTDIR, -EACCES...) or -ENOMEM with
 * the diag saying what.
 */
int kha_backup_scan_dir(const char *dir, struct kha_backup_list *ret, struct kha_diag *d) KHA_WUR;

/*
 * kha_snapshot_verify_file(dir/f->name, allow_no_hash false), once per version of the file:
 * the result (and the diag's text) is remembered per (path, size, mtime) in a small
 * process-wide table, so a daemon that checks a directory every few seconds reads a big
 * snapshot once. Thread-safe. Returns as kha_snapshot_verify_file.
 */
int kha_backup_verify_cached(const char *dir, const struct kha_backup_file *f,
			     struct kha_snapshot_info *ret, struct kha_diag *d) KHA_WUR;

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

/* ==== the backup daemon (daemon.c) ========================================================= */

#define KHA_BACKUP_DEFAULT_EVERY_US	(30 * 60 * KHA_USEC_PER_SEC)
#define KHA_BACKUP_DEFAULT_METRICS_ADDR "127.0.0.1:9479"
#define KHA_BACKUP_RETRY_BASE_US	(1 * KHA_USEC_PER_SEC)
/* the longest wait between retries when retry_max_us is 0: the interval, at most 5 minutes */
#define KHA_BACKUP_RETRY_CAP_US (5 * 60 * KHA_USEC_PER_SEC)

/*
 * The schedule of the daemon, a pure record of what happened: fixed rate after a success (the
 * next backup an interval after the last one started), capped exponential back-off after a
 * failure. Times are kha_now_us() (the fake clock in unit tests).
 */
struct kha_backup_schedule {
	uint64_t every_us;
	uint64_t retry_max_us;	  /* 0: min(every_us, KHA_BACKUP_RETRY_CAP_US) */
	uint64_t started_us;	  /* when the daemon started */
	uint64_t last_success_us; /* when the last success ended; 0 = none yet */
	uint64_t successes;
	unsigned failures; /* consecutive */
};

/*
 * Records an attempt that began at attempt_us and ends now, successful or not. Returns the
 * time (kha_now_us()) at which the next attempt is due; *ret_delay_us (may be NULL) receives
 * the wait from now (0 when already due).
 */
uint64_t kha_backup_schedule_done(struct kha_backup_schedule *s, bool ok, uint64_t attempt_us,
				  uint64_t *ret_delay_us);
/*
 * kha_backup_healthy() now, with the reason in reason ("last backup 5m0s ago", "no backup
 * yet after 1h0m0s"; last_error (may be NULL or "") appended when unhealthy).
 */
bool kha_backup_schedule_health(const struct kha_backup_schedule *s, const char *last_error,
				char *reason, size_t size);

/* What `kha etcd backup` runs with: the flags and config keys of the command. */
struct kha_backup_daemon_opts {
	struct kha_etcd_config cfg;
	char *dir; /* owned */
	uint64_t every_us;
	struct kha_retention retention;
	bool compress;
	int level;
	char metrics_addr[128]; /* "" = no admin server */
	enum kha_log_level log_level;
	enum kha_log_format log_format;
	bool once;
	uint64_t timeout_us;
	uint64_t stall_us;
	uint64_t retry_max_us; /* 0: the schedule's default */
	enum kha_snapshot_transport transport;
};

/* The defaults (every 30m, keep 24 + 7 daily, the default admin address); -ENOMEM. */
int kha_backup_daemon_opts_init(struct kha_backup_daemon_opts *o) KHA_WUR;
void kha_backup_daemon_opts_release(struct kha_backup_daemon_opts *o);

/*
 * Fills fresh (zeroed) with the configuration read again on SIGHUP: 0, or nonzero when it
 * could not (the daemon keeps its options; the callee said why). fresh is released by the
 * daemon either way.
 */
typedef int (*kha_backup_reload_fn)(void *userdata, struct kha_backup_daemon_opts *fresh);

/*
 * Runs the daemon in the foreground until SIGTERM or SIGINT (or after one backup with once):
 * an event loop with the timer, the signals and the admin server (/metrics, /healthz,
 * /readyz, /status on metrics_addr), and one worker thread that takes the snapshots. SIGHUP
 * calls reload when config (the --config path, borrowed) is not NULL. Takes what o owns (o is
 * zeroed). Returns the exit code: with once, the backup's (128 + signal when stopped); else 0
 * after a stop; on a failure to start KHA_EXIT_IOERR (the directory), KHA_EXIT_CONFIG (the
 * admin address) or KHA_EXIT_SOFTWARE, with d saying why.
 */
int kha_backup_daemon_run(struct kha_backup_daemon_opts *o, const char *config,
			  kha_backup_reload_fn reload, void *userdata, struct kha_diag *d) KHA_WUR;

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
 * Whether the member being restored (name, its first initial_advertise_peer_urls) is listed in
 * initial_cluster as NAME=URL, as etcd requires (pure). 0, or -EINVAL with the diag saying
 * which entry is missing.
 */
int kha_restore_check_member(const struct kha_restore_opts *o, struct kha_diag *d) KHA_WUR;

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
