/* SPDX-License-Identifier: MIT */
/*
 * The lab: the HA design on one machine, with real processes on loopback ports.
 *
 * A lab lives in one directory (DIR) and is described by DIR/lab.json, written atomically after
 * every change. Its model is a list of *masters*, each a list of *processes*: today a master is
 * one etcd member; the full lab adds its companions (kha elect, kha etcd backup, kha proxy) as
 * more processes of the same master, so that stopping a master stops all of them.
 *
 * Layout of DIR:
 *   lab.json          the state (schema in docs/lab.md)
 *   lab.lock          flock'ed by every command that changes the lab
 *   env               ETCDCTL_* exports: `. DIR/env; etcdctl member list`
 *   pki/              ca.crt ca.key, <master>.crt/.key (serverAuth+clientAuth), client.crt/.key
 *   <master>.etcd/    the member's data dir
 *   <master>.log      the member's stdout and stderr
 *
 * Processes are started detached (own session), so they outlive the kha command that started
 * them, and are recorded with PID and start time: kha only ever signals a process whose start
 * time still matches (include/kha/proc.h), so a stale lab.json cannot hit a recycled PID.
 *
 * The library neither prints nor exits; errors are negative errnos with a diag:
 *   -EINVAL bad request (unknown master, member count out of range), -EEXIST a lab is already
 *   there, -ENOTEMPTY DIR exists and is not a lab, -ENOENT no lab in DIR (or etcd not found),
 *   -EBADMSG lab.json unreadable, -ETIMEDOUT not healthy in time, -ECHILD a process exited.
 */
#ifndef KHA_LAB_H
#define KHA_LAB_H

#include <sys/types.h>

#include "kha/diag.h"

#define KHA_LAB_MAX_MASTERS 7

enum kha_lab_proc_kind {
	KHA_LAB_PROC_ETCD, /* the etcd member of the master */
};

struct kha_lab_proc {
	char *name; /* unique within its master: "etcd" */
	enum kha_lab_proc_kind kind;
	char *log_path;
	pid_t pid;	     /* 0: not running (never started, or stopped by kha) */
	uint64_t start_time; /* /proc/PID/stat start time recorded at spawn */
};

struct kha_lab_master {
	char *name; /* "m1" .. "mN" */
	uint16_t client_port;
	uint16_t peer_port;
	char *client_url; /* https://127.0.0.1:PORT */
	char *peer_url;
	char *data_dir;
	char *cert; /* member certificate and key, serverAuth + clientAuth */
	char *key;
	struct kha_lab_proc *procs;
	size_t n_procs;
};

/* A loaded lab. Owns everything it points to; kha_lab_free() releases it (and its lock). */
struct kha_lab {
	char *dir; /* absolute */
	char *etcd_bin;
	char *token; /* --initial-cluster-token */
	char *ca_cert;
	char *client_cert; /* for tools: etcdctl, kha etcd */
	char *client_key;
	struct kha_lab_master *masters;
	size_t n_masters;
	int lock_fd; /* -1 when not locked */
};

void kha_lab_free(struct kha_lab *lab);
KHA_DEFINE_CLEANUP(struct kha_lab *, kha_lab_free)

struct kha_lab_up_opts {
	const char *dir;      /* created if missing; must be empty or absent */
	unsigned members;     /* 1 .. KHA_LAB_MAX_MASTERS */
	const char *etcd_bin; /* NULL: "etcd" on $PATH */
	uint64_t timeout_us;  /* how long to wait for a healthy cluster */
};

/*
 * Creates a lab: the PKI, N etcd members on free loopback ports with TLS and client
 * certificate authentication for clients and peers, DIR/lab.json and DIR/env; then waits until
 * every member reports healthy. On failure everything it started is stopped again (the directory
 * with the logs stays: kha_lab_down removes it) and, when a member was at fault, *failed_log (if
 * not NULL) receives a new string with that member's log path (free() it).
 * Returns 0 and the lab (locked) in *ret, or a negative errno (see above).
 */
int kha_lab_up(const struct kha_lab_up_opts *o, struct kha_lab **ret, char **failed_log,
	       struct kha_diag *d) KHA_WUR;

/*
 * Loads DIR/lab.json; with lock, first takes DIR/lab.lock (waiting for another kha command that
 * holds it). Returns 0, -ENOENT when DIR holds no lab, -EBADMSG when lab.json is malformed.
 */
int kha_lab_load(const char *dir, bool lock, struct kha_lab **ret, struct kha_diag *d) KHA_WUR;
/* Writes lab.json atomically. */
int kha_lab_save(const struct kha_lab *lab, struct kha_diag *d) KHA_WUR;

/* The master named name, or NULL. */
struct kha_lab_master *kha_lab_find_master(struct kha_lab *lab, const char *name);
/* The first process of kind in m, or NULL. */
struct kha_lab_proc *kha_lab_master_proc(struct kha_lab_master *m, enum kha_lab_proc_kind kind);
/* True when the recorded process is alive and still the one started (PID + start time). */
bool kha_lab_proc_running(const struct kha_lab_proc *p);

/*
 * Health of every master's etcd member, checked in parallel over TLS with the client
 * certificate (GET /health). ret_health[i] is 1 healthy, 0 answering but unhealthy (no leader,
 * no quorum), -1 not answering. Never takes longer than timeout_us.
 */
void kha_lab_health(const struct kha_lab *lab, uint64_t timeout_us, int *ret_health);

/*
 * Waits until every member reports healthy, polling. Returns 0, -ETIMEDOUT, or -ECHILD when a
 * member's process exited meanwhile (*ret_failed, if not NULL, then points to its master; on
 * -ETIMEDOUT to the first unhealthy one).
 */
int kha_lab_wait_healthy(struct kha_lab *lab, uint64_t timeout_us,
			 struct kha_lab_master **ret_failed, struct kha_diag *d) KHA_WUR;

/*
 * Stops every process of master m: SIGTERM, SIGKILL after grace_us (0: SIGKILL at once), waits
 * for them, and records them as stopped in lab.json. Stopping a stopped master is a no-op.
 * Returns 0 or a negative errno.
 */
int kha_lab_master_stop(struct kha_lab *lab, struct kha_lab_master *m, uint64_t grace_us,
			struct kha_diag *d) KHA_WUR;

/*
 * Starts the processes of m that are not running, on their existing data
 * (--initial-cluster-state existing), records them, and waits at most timeout_us until the etcd
 * member answers on its client URL (healthy or not: alone it may have no quorum). Returns 0,
 * -ECHILD when it exited at once (see its log), -ETIMEDOUT, or a negative errno.
 */
int kha_lab_master_start(struct kha_lab *lab, struct kha_lab_master *m, uint64_t timeout_us,
			 struct kha_diag *d) KHA_WUR;

/*
 * Stops every recorded process of the lab in DIR (exactly those: PID verified by start time),
 * waits for them, then removes DIR. etcd members get SIGKILL at once (their data is deleted
 * next, etcd is crash-safe, and stopping a whole cluster gracefully only waits out etcd's
 * leader-transfer timeout); other processes get SIGTERM, then SIGKILL after grace_us. Idempotent: no DIR is success.
 * Refuses (-ENOTEMPTY) to remove a directory that holds no lab.json. Returns 0 or a negative
 * errno; *ret_stopped (if not NULL) receives how many processes were running.
 */
int kha_lab_down(const char *dir, uint64_t grace_us, unsigned *ret_stopped,
		 struct kha_diag *d) KHA_WUR;

/* The etcd endpoints as a comma-separated list of client URLs (new string, free() it). */
char *kha_lab_endpoints(const struct kha_lab *lab);

/* The last lines (at most max_lines) of a log file, as a new string; NULL when unreadable. */
char *kha_lab_log_tail(const char *path, unsigned max_lines);

#endif
