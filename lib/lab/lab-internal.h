/* SPDX-License-Identifier: MIT */
/* Shared between the files of lib/lab only. */
#ifndef KHA_LAB_INTERNAL_H
#define KHA_LAB_INTERNAL_H

#include "kha/lab.h"
#include <pthread.h>
#include <jansson.h>

#include "kha/proc.h"

#define LAB_JSON "lab.json"
#define LAB_LOCK "lab.lock"
#define LAB_ENV	 "env"

struct kha_lab *kha_lab__new(void);

/* A growable NULL-terminated argv of owned strings; oom is sticky (checked once at the end). */
struct kha_lab__strv {
	char **v;
	size_t n;
	bool oom;
};
void kha_lab__strv_add(struct kha_lab__strv *s, const char *fmt, ...) KHA_PRINTF(2, 3);
void kha_lab__strv_release(struct kha_lab__strv *s);
/* "dir/name" as a new string, NULL on ENOMEM. */
char *kha_lab__path(const char *dir, const char *name);
/* Takes DIR/lab.lock (flock, waits); the fd goes to lab->lock_fd. */
int kha_lab__lock(struct kha_lab *lab, const char *dir, struct kha_diag *d);

/*
 * Health of the members selected by want (NULL: all), in parallel; see kha_lab_health.
 * Entries not selected are left untouched.
 */
void kha_lab__health(const struct kha_lab *lab, const bool *want, uint64_t timeout_us, int *ret);

/*
 * The descendants of the process (pid, start_time), not itself, each attached (pidfd held,
 * identity checked by start time) into out; returns how many. Release them with
 * kha_lab__release_procs.
 */
#define LAB_MAX_DESCENDANTS 32
size_t kha_lab__descendants(pid_t pid, uint64_t start_time, struct kha_proc *out, size_t max);
void kha_lab__release_procs(struct kha_proc *procs, size_t n);

/*
 * GET url (plain HTTP on loopback) within timeout_us. Returns the HTTP status, or -1 when
 * nothing answered; with ret_body, the body (at most 256 KiB, NUL-terminated, free() it) or
 * NULL.
 */
long kha_lab__http_get(const char *url, uint64_t timeout_us, char **ret_body);

/* ---- k8s.c: the Kubernetes lab ---- */
/* Plans masters (etcd + control plane + elect), the node and the load balancers. */
int kha_lab__k8s_plan(struct kha_lab *lab, unsigned n, bool with_proxy, struct kha_diag *d);
/* Creates the namespaces, the switch and the links; deletes them (whatever exists). */
int kha_lab__k8s_net_create(const struct kha_lab *lab, struct kha_diag *d);
void kha_lab__k8s_net_delete(const struct kha_lab *lab);
/* kubeadm's PKI per master, the components' kubeconfigs, one admin kubeconfig per entry. */
int kha_lab__k8s_pki(struct kha_lab *lab, struct kha_diag *d);
/* The command line of a control-plane process, or of a host's kha proxy or kha vip. */
int kha_lab__k8s_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
		      const struct kha_lab_node *h, const struct kha_lab_proc *p,
		      struct kha_lab__strv *s);
/*
 * The command line of process p (of master m, or of host h), as the lab spawns it inside its
 * host (lab.c; etcd's with --initial-cluster-state new or existing): the one builder, which the
 * static pod manifests (k8s.c) are made from too.
 */
int kha_lab__proc_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
		       const struct kha_lab_node *h, const struct kha_lab_proc *p, bool state_new,
		       struct kha_lab__strv *argv);
/* 1 when every apiserver and both entries are ready; else 0 and what is not, in what. */
int kha_lab__k8s_ready(const struct kha_lab *lab, char *what, size_t size);
struct kha_kube_client;
/* The master of a Lease holder identity ("m1_3f2a..."): its host part, into buf. */
void kha_lab__identity_master(const char *identity, char *buf, size_t size);
/* A client for the lab's API with kubeconfig name (in DIR/kubeconfig: "node.conf"...), to
 * server (NULL: the kubeconfig's); timeouts of a second (five per request). */
int kha_lab__k8s_client(const struct kha_lab *lab, const char *name, const char *server,
			struct kha_kube_client **ret, struct kha_diag *d);
/*
 * What kubeadm init and the masters' kubelets do once the API answers: admin.conf's group bound
 * to cluster-admin; each master's static pod manifests written (DIR/mN/manifests), the master
 * registered as a Node and each manifest published as its mirror pod.
 */
int kha_lab__k8s_bootstrap(const struct kha_lab *lab, struct kha_diag *d);

/* kha_lab_wait_ready; *ret_failed (if not NULL) names the process at fault. */
int kha_lab__wait_ready(struct kha_lab *lab, uint64_t timeout_us, struct kha_lab_proc **ret_failed,
			struct kha_diag *d);

struct kha_etcd;
/* An etcd client over every member, with the lab's client certificate and timeout_us per call
 * (dial at most 300 ms, so a frozen member costs little). */
int kha_lab__etcd_client(const struct kha_lab *lab, uint64_t timeout_us, struct kha_etcd **ret,
			 struct kha_diag *d);
/* The leader's id in election (see kha_lab_leader) through client c. */
int kha_lab__leader_read(struct kha_etcd *c, const char *election, char **ret_leader,
			 struct kha_diag *d);

/* The master whose etcd member leads Raft (see kha_lab_raft_leader) through client c. */
int kha_lab__raft_leader_read(struct kha_etcd *c, char **ret_leader, struct kha_diag *d);

/* The lab's timers that the drills' summaries explain their figures with (lab.c sets them). */
#define LAB_ELECT_TTL_S		3    /* kha elect --ttl of the backup election */
#define LAB_ETCD_ELECTION_MS	1000 /* etcd's default --election-timeout */
#define LAB_PROXY_CHECK_MS	1000 /* kha proxy --check-interval */
#define LAB_PROXY_FAST_MS	250  /* --check-fast-interval, once a check failed */
#define LAB_PROXY_FALL		2    /* --check-fall */
#define LAB_PROXY_FIRST_BYTE_MS 500  /* --first-byte-timeout */

/* What the drill saw as each fault started: the leader then, and etcd's Raft leader. */
struct kha_lab__drill_obs {
	char fault_leader[KHA_LAB_FAULTS][KHA_LAB_NAME_MAX];
	bool fault_leader_known[KHA_LAB_FAULTS];
	char fault_raft_leader[KHA_LAB_FAULTS][KHA_LAB_NAME_MAX];
	bool fault_raft_known[KHA_LAB_FAULTS];
};
/*
 * The drills' watcher thread (drill.c): polls the backup election (every 100 ms) and the backup
 * directories (every 250 ms), and calls extra (if set) at the same pace from its thread.
 * Progress lines go to o->on_progress. on_event/on_stop are lib/drill hooks (userdata: the
 * watcher) that stamp t0 and note the leader at each fault.
 */
struct kha_lab__seen {
	char **names;
	size_t n;
};

struct kha_lab__watcher {
	const struct kha_lab *lab;
	const struct kha_lab_drill_opts *o;
	void (*extra)(struct kha_lab__watcher *w); /* NULL: none */
	void *extra_data;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	/* under mu: */
	struct kha_lab_term *terms; /* start_us on the monotonic clock until the drill ends */
	size_t n_terms;
	struct kha_lab_snapshot *snaps; /* t_us unset until the drill ends */
	size_t n_snaps;
	char leader[KHA_LAB_NAME_MAX]; /* the last observed */
	bool leader_known;
	char raft_leader[KHA_LAB_NAME_MAX]; /* the last observed Raft leader (every second) */
	bool raft_known;
	/* the drill thread's: */
	uint64_t t0; /* the drill's t0 on the monotonic clock, 0 until the first event */
	struct kha_lab__drill_obs obs; /* the leader seen as each fault started */
	/* the watcher's own: */
	struct kha_lab__seen seen[KHA_LAB_MAX_MASTERS];
};
int kha_lab__watcher_start(struct kha_lab__watcher *w);
void kha_lab__watcher_stop(struct kha_lab__watcher *w);
void kha_lab__watcher_release(struct kha_lab__watcher *w);
void kha_lab__watcher_on_event(void *userdata, const struct kha_drill_event *ev);
int kha_lab__watcher_on_stop(void *userdata);
void kha_lab__watcher_progress(const struct kha_lab__watcher *w, const char *fmt, ...)
	KHA_PRINTF(2, 3);

/* The drills' report helpers (drill.c): "; "-separated problems appended to buf; a time in
 * milliseconds or null (KHA_DRILL_NONE); a string or null (NULL or ""); "250ms", "1.50s", "-". */
void kha_lab__append(char *buf, size_t size, const char *fmt, ...) KHA_PRINTF(3, 4);
json_t *kha_lab__ms_or_null(uint64_t us);
json_t *kha_lab__str_or_null(const char *s);
const char *kha_lab__dur(char *buf, size_t size, uint64_t us);
/* A summary's "why" line under a figure: the reason in one line, then the section of
 * docs/lab.md that explains it at length ("handover", "outage", "unknown-writes"). */
void kha_lab__why(FILE *out, const char *section, const char *fmt, ...) KHA_PRINTF(3, 4);
/* A marker on a drill's SVG timeline (a Lease or an election changing hands) at at_us; name is
 * owned by the step from now on. */
void kha_lab__marker_step(struct kha_drill_step_result *st, char *name, uint64_t at_us);

/*
 * The analysis of a drill that ran: r->drill (probes, steps, writes, stats), r->terms and
 * r->snapshots (drill times, snapshots in any order) in; r->faults, r->conflicts and
 * r->max_takers_per_term out. Pure: no clock, no I/O (unit tests feed it made-up drills).
 */
void kha_lab__drill_analyze(const struct kha_lab *lab, const struct kha_lab__drill_obs *obs,
			    struct kha_lab_drill_report *r);

#endif
