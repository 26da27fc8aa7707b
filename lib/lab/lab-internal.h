/* SPDX-License-Identifier: MIT */
/* Shared between the files of lib/lab only. */
#ifndef KHA_LAB_INTERNAL_H
#define KHA_LAB_INTERNAL_H

#include "kha/lab.h"
#include "kha/proc.h"

#define LAB_JSON "lab.json"
#define LAB_LOCK "lab.lock"
#define LAB_ENV	 "env"

struct kha_lab *lab_new(void);

/* A growable NULL-terminated argv of owned strings; oom is sticky (checked once at the end). */
struct lab_strv {
	char **v;
	size_t n;
	bool oom;
};
void lab_strv_add(struct lab_strv *s, const char *fmt, ...) KHA_PRINTF(2, 3);
void lab_strv_release(struct lab_strv *s);
/* "dir/name" as a new string, NULL on ENOMEM. */
char *lab_path(const char *dir, const char *name);
/* Takes DIR/lab.lock (flock, waits); the fd goes to lab->lock_fd. */
int lab_lock(struct kha_lab *lab, const char *dir, struct kha_diag *d);

/*
 * Health of the members selected by want (NULL: all), in parallel; see kha_lab_health.
 * Entries not selected are left untouched.
 */
void lab_health(const struct kha_lab *lab, const bool *want, uint64_t timeout_us, int *ret);

/*
 * The descendants of the process (pid, start_time), not itself, each attached (pidfd held,
 * identity checked by start time) into out; returns how many. Release them with
 * lab_release_procs.
 */
#define LAB_MAX_DESCENDANTS 32
size_t lab_descendants(pid_t pid, uint64_t start_time, struct kha_proc *out, size_t max);
void lab_release_procs(struct kha_proc *procs, size_t n);

/*
 * GET url (plain HTTP on loopback) within timeout_us. Returns the HTTP status, or -1 when
 * nothing answered; with ret_body, the body (at most 256 KiB, NUL-terminated, free() it) or
 * NULL.
 */
long lab_http_get(const char *url, uint64_t timeout_us, char **ret_body);

/* ---- k8s.c: the Kubernetes lab ---- */
/* Plans masters (etcd + control plane + elect), the node and the load balancers. */
int lab_k8s_plan(struct kha_lab *lab, unsigned n, bool with_proxy, struct kha_diag *d);
/* Creates the namespaces, the switch and the links; deletes them (whatever exists). */
int lab_k8s_net_create(const struct kha_lab *lab, struct kha_diag *d);
void lab_k8s_net_delete(const struct kha_lab *lab);
/* kubeadm's PKI per master, the components' kubeconfigs, one admin kubeconfig per entry. */
int lab_k8s_pki(struct kha_lab *lab, struct kha_diag *d);
/* The command line of a control-plane process, or of a host's kha proxy or kha vip. */
int lab_k8s_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
		 const struct kha_lab_node *h, const struct kha_lab_proc *p, struct lab_strv *s);
/* 1 when every apiserver and both entries are ready; else 0 and what is not, in what. */
int lab_k8s_ready(const struct kha_lab *lab, char *what, size_t size);
/* What kubeadm init does once the API answers: admin.conf's group bound to cluster-admin. */
int lab_k8s_bootstrap(const struct kha_lab *lab, struct kha_diag *d);

/* kha_lab_wait_ready; *ret_failed (if not NULL) names the process at fault. */
int lab_wait_ready(struct kha_lab *lab, uint64_t timeout_us, struct kha_lab_proc **ret_failed,
		   struct kha_diag *d);

struct kha_etcd;
/* An etcd client over every member, with the lab's client certificate and timeout_us per call
 * (dial at most 300 ms, so a frozen member costs little). */
int lab_etcd_client(const struct kha_lab *lab, uint64_t timeout_us, struct kha_etcd **ret,
		    struct kha_diag *d);
/* The leader's id in election (see kha_lab_leader) through client c. */
int lab_leader_read(struct kha_etcd *c, const char *election, char **ret_leader,
		    struct kha_diag *d);

/* What the drill saw as each fault started: the leader then. */
struct lab_drill_obs {
	char fault_leader[KHA_LAB_FAULTS][KHA_LAB_NAME_MAX];
	bool fault_leader_known[KHA_LAB_FAULTS];
};
/*
 * The analysis of a drill that ran: r->drill (probes, steps, writes, stats), r->terms and
 * r->snapshots (drill times, snapshots in any order) in; r->faults, r->conflicts and
 * r->max_takers_per_term out. Pure: no clock, no I/O (unit tests feed it made-up drills).
 */
void lab_drill_analyze(const struct kha_lab *lab, const struct lab_drill_obs *obs,
		       struct kha_lab_drill_report *r);

#endif
