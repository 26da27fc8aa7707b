/* SPDX-License-Identifier: MIT */
/*
 * The lab: the HA design on one machine, with real processes on loopback ports.
 *
 * A lab lives in one directory (DIR) and is described by DIR/lab.json, written atomically after
 * every change. Its model is a list of *masters*, each a list of *processes*, plus one *node*:
 *   master mN: etcd (a member, TLS) and kha elect, which runs `kha etcd backup` only while it
 *              leads the election "lab-backup" (so exactly one master takes backups);
 *   node:      kha proxy, the node-local entry point in front of the masters. No kube-apiserver
 *              exists here, so the entry fronts the members' etcd client port instead.
 * Stopping, freezing or killing a master acts on all of its processes and their descendants
 * (the backup that kha elect runs is elect's grandchild, in its own session).
 *
 * Layout of DIR:
 *   lab.json          the state (schema in docs/lab.md)
 *   lab.lock          flock'ed by every command that changes the lab
 *   env               ETCDCTL_* exports: `. DIR/env; etcdctl member list`
 *   pki/              ca.crt ca.key, <master>.crt/.key (serverAuth+clientAuth), client.crt/.key
 *   <master>/         data/ (the member's data dir), etcd.log, elect.log (elect and backup)
 *   backups/<master>/ the snapshots that master took while it led the election
 *   node/proxy.log    the proxy's log
 *
 * Processes are started detached (own session), so they outlive the kha command that started
 * them, and are recorded with PID and start time: kha only ever signals a process whose start
 * time still matches (include/kha/proc.h), so a stale lab.json cannot hit a recycled PID.
 * Descendants (not recorded) are found through /proc at the moment of the signal, each checked
 * by its own start time.
 *
 * The library neither prints nor exits; errors are negative errnos with a diag:
 *   -EINVAL bad request (unknown master, member count out of range), -EEXIST a lab is already
 *   there, -ENOTEMPTY DIR exists and is not a lab, -ENOENT no lab in DIR (or etcd not found),
 *   -EBADMSG lab.json unreadable, -ETIMEDOUT not healthy in time, -ECHILD a process exited.
 */
#ifndef KHA_LAB_H
#define KHA_LAB_H

#include <stdio.h>
#include <sys/types.h>

#include "kha/diag.h"
#include "kha/drill.h"

#define KHA_LAB_MAX_MASTERS 7
/* The external load-balancer pair of a Kubernetes lab (kha proxy + kha vip each). */
#define KHA_LAB_LBS 2
/* The election the masters' kha elect contend in. */
#define KHA_LAB_ELECTION "lab-backup"

enum kha_lab_proc_kind {
	KHA_LAB_PROC_ETCD,  /* the etcd member of a master */
	KHA_LAB_PROC_ELECT, /* a master's kha elect, running kha etcd backup while it leads */
	KHA_LAB_PROC_PROXY, /* kha proxy: the node's entry point, or a load-balancer host's */
	/* a Kubernetes lab's masters also run the real control plane: */
	KHA_LAB_PROC_APISERVER,		 /* kube-apiserver */
	KHA_LAB_PROC_CONTROLLER_MANAGER, /* kube-controller-manager --leader-elect */
	KHA_LAB_PROC_SCHEDULER,		 /* kube-scheduler --leader-elect */
	KHA_LAB_PROC_VIP,		 /* a load-balancer host's kha vip (VRRP) */
};

struct kha_lab_proc {
	char *name; /* unique within its master: "etcd", "elect", "proxy" */
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
	char *backup_dir;	      /* DIR/backups/<name>; NULL without elect */
	uint16_t backup_metrics_port; /* kha etcd backup's /metrics; 0 without elect */
	bool frozen;		      /* its processes were SIGSTOPped by kha_lab_master_freeze */
	char *netns;		      /* its host's network namespace; NULL on loopback */
	char *address;		      /* its host's address on the lab network; NULL on loopback */
	struct kha_lab_proc *procs;
	size_t n_procs;
};

/*
 * The node (what a worker runs to reach the masters: its kha proxy), or a load-balancer host of
 * a Kubernetes lab (kha proxy in front of the apiservers + kha vip holding the lab's VIP).
 */
struct kha_lab_node {
	char *name;	       /* "node", "lb1", "lb2" */
	char *netns;	       /* its host's network namespace; NULL on loopback */
	char *address;	       /* its host's address on the lab network; NULL on loopback */
	uint16_t entry_port;   /* the proxy listens on 127.0.0.1:entry_port */
	uint16_t metrics_port; /* the proxy's /metrics, /readyz, /status */
	char *entry_url;       /* https://127.0.0.1:PORT, what clients use; NULL: no node */
	char *metrics_addr;    /* 127.0.0.1:PORT */
	struct kha_lab_proc *procs;
	size_t n_procs;
};

/*
 * The leader election timings of kube-controller-manager and kube-scheduler (their
 * --leader-elect-lease-duration, -renew-deadline, -retry-period); client-go's defaults are
 * 15s, 10s and 2s. A zero field means the default.
 */
#define KHA_LAB_LEASE_DURATION_US (15 * KHA_USEC_PER_SEC)
#define KHA_LAB_RENEW_DEADLINE_US (10 * KHA_USEC_PER_SEC)
#define KHA_LAB_RETRY_PERIOD_US	  (2 * KHA_USEC_PER_SEC)
struct kha_lab_leader_elect {
	uint64_t lease_duration_us;
	uint64_t renew_deadline_us;
	uint64_t retry_period_us;
};

/*
 * Fills the zero fields of le with client-go's defaults and checks what the components check:
 * lease duration > renew deadline > retry period > 0. Returns 0, or -EINVAL with a line naming
 * the options in d.
 */
int kha_lab_leader_elect_check(struct kha_lab_leader_elect *le, struct kha_diag *d) KHA_WUR;

/* A loaded lab. Owns everything it points to; kha_lab_free() releases it (and its lock). */
struct kha_lab {
	char *dir; /* absolute */
	char *etcd_bin;
	char *token; /* --initial-cluster-token */
	char *ca_cert;
	char *client_cert; /* for tools: etcdctl, kha etcd */
	char *client_key;
	char *kha_bin;	/* the kha that runs the companions; NULL for an etcd-only lab */
	char *election; /* KHA_LAB_ELECTION, NULL when the masters run no kha elect */
	struct kha_lab_master *masters;
	size_t n_masters;
	struct kha_lab_node node; /* node.entry_url NULL: no entry point */
	/* A Kubernetes lab (all NULL/0 for the etcd-only lab on loopback): */
	char *k8s_bin;		  /* the directory of kube-apiserver, kubectl, kubeadm, ... */
	char *net;		  /* prefix of its network namespaces ("<net>-m1", "<net>-sw") */
	char *subnet;		  /* "10.77.0": hosts are <subnet>.N/24 */
	char *vip;		  /* the load balancers' virtual IP, the controlPlaneEndpoint */
	char *kube_ca;		  /* the Kubernetes CA certificate (kubeadm's ca.crt) */
	struct kha_lab_node *lbs; /* the external load-balancer pair */
	size_t n_lbs;
	struct kha_lab_leader_elect leader_elect; /* the controller-manager's and scheduler's */
	int lock_fd;				  /* -1 when not locked */
};

void kha_lab_free(struct kha_lab *lab);
KHA_DEFINE_CLEANUP(struct kha_lab *, kha_lab_free)

struct kha_lab_up_opts {
	const char *dir;      /* created if missing; must be empty or absent */
	unsigned members;     /* 1 .. KHA_LAB_MAX_MASTERS */
	const char *etcd_bin; /* NULL: "etcd" on $PATH */
	const char *kha_bin;  /* NULL: this process's own executable (/proc/self/exe) */
	uint64_t timeout_us;  /* how long to wait for a healthy cluster */
	bool no_proxy;	      /* no node entry point */
	bool no_elect;	      /* masters run no kha elect (and so take no backups) */
	/* A Kubernetes lab: the directory of the real programs (scripts/k8s.sh builds them);
	 * NULL: the etcd-only lab on loopback. Needs root (network namespaces). */
	const char *k8s_bin;
	/* the controller-manager's and scheduler's leader election (zero: client-go's) */
	struct kha_lab_leader_elect leader_elect;
};

/*
 * Creates a lab: the PKI, N etcd members on free loopback ports with TLS and client
 * certificate authentication for clients and peers, DIR/lab.json and DIR/env; waits until
 * every member reports healthy; then starts the companions (each master's kha elect with its
 * backup, the node's kha proxy) and waits until the proxy is ready and the election has a
 * leader. On failure everything it started is stopped again (the directory
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
/* How many descendants the recorded process p has now (kha elect: its guard and backup). */
size_t kha_lab_proc_descendants(const struct kha_lab_proc *p);
/* The node's proxy process, or NULL when the lab has no entry point. */
struct kha_lab_proc *kha_lab_node_proxy(struct kha_lab *lab);
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
 * Stops every process of master m and their descendants: SIGTERM, SIGKILL after grace_us (0:
 * SIGKILL to all of them at once, like a power cut), waits for them, and records them as stopped
 * in lab.json. A frozen master is thawed after SIGTERM so it can act on it. Stopping a stopped
 * master is a no-op. Returns 0 or a negative errno.
 */
int kha_lab_master_stop(struct kha_lab *lab, struct kha_lab_master *m, uint64_t grace_us,
			struct kha_diag *d) KHA_WUR;

/*
 * Starts the processes of m that are not running, on their existing data
 * (--initial-cluster-state existing), records them: etcd first, and once the member answers
 * on its client URL (healthy or not: alone it may have no quorum; at most timeout_us) its kha
 * elect. Returns 0, -ECHILD when a process exited at once (see its log), -ETIMEDOUT, or a
 * negative errno.
 */
int kha_lab_master_start(struct kha_lab *lab, struct kha_lab_master *m, uint64_t timeout_us,
			 struct kha_diag *d) KHA_WUR;

/*
 * Stops one recorded process p of the lab (and its descendants) as kha_lab_master_stop does
 * (grace_us 0: SIGKILL at once) and records it. kha_lab_master_start starts it again.
 */
int kha_lab_proc_stop(struct kha_lab *lab, struct kha_lab_proc *p, uint64_t grace_us,
		      struct kha_diag *d) KHA_WUR;

/* The node or load-balancer host named name ("node", "lb1"), or NULL. */
struct kha_lab_node *kha_lab_find_host(struct kha_lab *lab, const char *name);
/* Stops every process of host h (grace_us 0: SIGKILL, a power cut) and records it. */
int kha_lab_host_stop(struct kha_lab *lab, struct kha_lab_node *h, uint64_t grace_us,
		      struct kha_diag *d) KHA_WUR;
/* Starts the processes of host h that are not running and records them. */
int kha_lab_host_start(struct kha_lab *lab, struct kha_lab_node *h, struct kha_diag *d) KHA_WUR;

/*
 * Freezes (SIGSTOP) or thaws (SIGCONT) every running process of m and their descendants, and
 * records it in lab.json. A frozen master looks like a hung machine: its sockets accept
 * connections that nobody serves. Returns 0, -ESRCH when none of its processes runs, or a
 * negative errno.
 */
int kha_lab_master_freeze(struct kha_lab *lab, struct kha_lab_master *m, bool freeze,
			  struct kha_diag *d) KHA_WUR;

/*
 * The current leader of the lab's election: the master whose kha elect holds it (etcd's
 * election keys under "lab-backup/", lowest create revision), read linearizably from any
 * member within timeout_us. Returns 0 with *ret_leader a new string (free() it) or NULL when
 * nobody leads; -ENOENT (d set) when the lab runs no election; another negative errno (d set)
 * when etcd could not answer.
 */
int kha_lab_leader(const struct kha_lab *lab, uint64_t timeout_us, char **ret_leader,
		   struct kha_diag *d) KHA_WUR;

/*
 * The remaining TTL, in seconds, of the election lease behind leader's key (what a standby
 * waits out when leader died without resigning) into *ret_ttl_s (-1: expired or unknown).
 * Returns 0 or a negative errno.
 */
int kha_lab_leader_lease_ttl(const struct kha_lab *lab, uint64_t timeout_us, const char *leader,
			     int64_t *ret_ttl_s) KHA_WUR;

/* The etcd member that is the Raft leader (its name, a new string), NULL when none is known. */
int kha_lab_raft_leader(const struct kha_lab *lab, uint64_t timeout_us, char **ret_leader,
			struct kha_diag *d) KHA_WUR;
/*
 * The master that "leads": of the lab's election, or in a lab without one, the Raft leader of
 * etcd (what `--leader` picks in kha lab stop-member and freeze-member).
 */
int kha_lab_leading_master(const struct kha_lab *lab, uint64_t timeout_us, char **ret_leader,
			   struct kha_diag *d) KHA_WUR;

/*
 * Waits until the lab is ready: every member healthy (kha_lab_wait_healthy), the node's proxy
 * ready (/readyz answers 200) and, with an election, a leader. Returns 0, -ETIMEDOUT or
 * -ECHILD (a process is not running; d names it) .
 */
int kha_lab_wait_ready(struct kha_lab *lab, uint64_t timeout_us, struct kha_diag *d) KHA_WUR;

/* What the node's proxy says about the masters (GET /status on its metrics address). */
struct kha_lab_entry_status {
	bool answered; /* the proxy answered */
	bool ready;    /* it has a backend up */
	/* per master, in lab order: "up", "suspect", "draining", "down", or "" when unknown */
	char state[KHA_LAB_MAX_MASTERS][12];
	unsigned up; /* backends up */
};
void kha_lab_entry_status(const struct kha_lab *lab, uint64_t timeout_us,
			  struct kha_lab_entry_status *ret);

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

/*
 * A Kubernetes lab's hosts live in network namespaces; kha talks to them from the node's, never
 * from the machine's own (where traffic to a lab address would leave through the default
 * route). Enters it (setns) for the calling thread and the threads it starts afterwards.
 * kha_lab_load and kha_lab_up do this; a no-op for the loopback lab. 0 or a negative errno.
 */
int kha_lab_enter(const struct kha_lab *lab, struct kha_diag *d) KHA_WUR;

/* The network namespace of a host ("m1", "node", "lb1"); NULL when unknown or on loopback. */
const char *kha_lab_host_netns(const struct kha_lab *lab, const char *host);

/*
 * The path of the admin kubeconfig of a Kubernetes lab for entry: "node" (through the node's
 * kha proxy), "vip" (through the load balancers' VIP) or a master's name (its own apiserver).
 * Returns 0 with a new string, -EINVAL for an unknown entry, -ENOENT for a lab without
 * Kubernetes (d says which).
 */
int kha_lab_kubeconfig(const struct kha_lab *lab, const char *entry, char **ret_path,
		       struct kha_diag *d) KHA_WUR;

/* A Kubernetes lab: 1 when GET base/readyz ("https://10.77.0.11:6443") answers 200, else 0. */
int kha_lab_apiserver_ready(const struct kha_lab *lab, const char *base);
/* The holder of Lease kube-system/name into buf ("" when free); -1 when unreadable. */
int kha_lab_lease_holder(const struct kha_lab *lab, const char *name, char *buf, size_t size);

/* The last lines (at most max_lines) of a log file, as a new string; NULL when unreadable. */
char *kha_lab_log_tail(const char *path, unsigned max_lines);

/* ---------------------------------------------------------------------------------------- */
/* kha lab status: the lab checked live, its verdict, and how it is shown (lib/lab/status.c). */

#define KHA_LAB_STATUS_TIMEOUT_US (2 * KHA_USEC_PER_SEC) /* each member's health, the entry */
#define KHA_LAB_LEADER_TIMEOUT_US (2 * KHA_USEC_PER_SEC) /* reading an election or Raft leader */

struct kha_lab_live {
	int health[KHA_LAB_MAX_MASTERS];   /* kha_lab_health */
	bool running[KHA_LAB_MAX_MASTERS]; /* every process of the master runs */
	struct kha_lab_entry_status entry;
	bool proxy_running;
	char *leader;	   /* NULL: nobody, or unknown */
	bool leader_known; /* the election could be read */
	/* the leader's kha elect is stopped or frozen: it holds the election until its lease
	 * runs out (it did not resign), leader_ttl_s from now (-1: unknown) */
	bool leader_gone;
	int64_t leader_ttl_s;
	size_t n_healthy, n_running;
	/* a Kubernetes lab */
	bool api_ready[KHA_LAB_MAX_MASTERS]; /* GET /readyz answered 200 */
	size_t n_api_ready;
	char cm_holder[256], sched_holder[256]; /* the kube-system Leases' holders */
	bool vip_ready;				/* the VIP entry reaches a ready apiserver */
	/* the verdict: KHA_EXIT_OK every guarantee holds; KHA_EXIT_DEGRADED it works but one
	 * more failure hurts (a member, a companion, a leader or an apiserver missing);
	 * KHA_EXIT_CRITICAL quorum lost, or an entry not ready */
	int code;
};
/* Checks the lab now (a few seconds at most: the timeouts above); release lv afterwards. */
void kha_lab_live_check(struct kha_lab *lab, struct kha_lab_live *lv);
/* The verdict (lv->code) of what kha_lab_live_check found. */
int kha_lab_live_verdict(struct kha_lab *lab, const struct kha_lab_live *lv);
void kha_lab_live_release(struct kha_lab_live *lv);
/* The status as JSON (docs/lab.md), indented, a new string; NULL on ENOMEM. */
char *kha_lab_status_json(struct kha_lab *lab, const struct kha_lab_live *lv);
/* The status table of `kha lab status`. */
void kha_lab_status_print(FILE *out, struct kha_lab *lab, const struct kha_lab_live *lv);

/* ---------------------------------------------------------------------------------------- */
/* Which master or host a fault command acts on (lib/lab/pick.c). */

/* The master named name: 0, or -EINVAL with d listing the masters there are. */
int kha_lab_master_named(struct kha_lab *lab, const char *name, struct kha_lab_master **ret,
			 struct kha_diag *d) KHA_WUR;

enum kha_lab_pick {
	KHA_LAB_PICK_LEADER,	  /* the master whose kha elect leads (else etcd's Raft leader) */
	KHA_LAB_PICK_FOLLOWER,	  /* the last running master, not frozen, that does not lead */
	KHA_LAB_PICK_RAFT_LEADER, /* the master whose etcd member is the Raft leader */
};
/*
 * The master pick names, read within timeout_us: 0; -ENOENT when there is none (nobody
 * leads, or every running master leads), d saying so; the error of reading the leader.
 */
int kha_lab_pick_master(struct kha_lab *lab, enum kha_lab_pick pick, uint64_t timeout_us,
			struct kha_lab_master **ret, struct kha_diag *d) KHA_WUR;
/*
 * The master whose component ("kube-controller-manager") holds its Lease in kube-system, read
 * through the node's entry (the holder's identity is "<master>_<uuid>"): 0, or -ENOENT when
 * the Lease cannot be read or no master holds it, d saying which.
 */
int kha_lab_lease_holder_master(struct kha_lab *lab, const char *component,
				struct kha_lab_master **ret, struct kha_diag *d) KHA_WUR;

/* The entry (kha_lab_kubeconfig) a host reaches the apiserver by: lbN -> vip, else the host. */
const char *kha_lab_host_entry(const char *host);
/*
 * For `kha lab exec HOST`: enters host's network namespace (this thread, and what it execs)
 * and sets KUBECONFIG to the admin kubeconfig of its entry, the lab's Kubernetes programs
 * first on PATH, and KHA_LAB_HOST. 0; -ENOENT for a lab without Kubernetes; -EINVAL for an
 * unknown host; -EHOSTUNREACH when the namespace cannot be entered; d says which.
 */
int kha_lab_exec_enter(const struct kha_lab *lab, const char *host, struct kha_diag *d) KHA_WUR;

/* ---------------------------------------------------------------------------------------- */
/*
 * The lab drill: writes through the node's entry point while masters are broken in sequence,
 * each fault followed by its recovery and a settle period:
 *   1. kill-follower  SIGKILL every process of a master that does not lead the election;
 *                     restart them
 *   2. kill-leader    SIGKILL every process of the master that leads it; restart them
 *   3. freeze         SIGSTOP every process of a master that does not lead it; SIGCONT
 * The faults are `kha lab stop-member|start-member|freeze-member|thaw-member` commands run by
 * lib/drill (so they appear in its report and SVG); the victims are chosen when each fault
 * starts (--follower, --leader). Meanwhile a thread of ours polls the election and the backup
 * directories, so the report says per fault: the entry's availability and longest outage, the
 * acknowledged writes lost (must be 0), the election handover time, and whether backups went
 * on (taken by another master when the leader was killed); and overall: whether two masters
 * ever took backups in the same leadership term.
 */

enum kha_lab_fault_kind {
	KHA_LAB_FAULT_KILL_FOLLOWER,
	KHA_LAB_FAULT_KILL_LEADER,
	KHA_LAB_FAULT_FREEZE,
	KHA_LAB_FAULTS,
};
/* The fault's name as the report and the SVG spell it ("kill-follower", ...); "?" if unknown. */
const char *kha_lab_fault_name(enum kha_lab_fault_kind k);

struct kha_lab_drill_opts {
	uint32_t rate;		 /* writes per second through the entry; 0: 50 */
	uint64_t baseline_us;	 /* before the first fault; 0: 4s */
	uint64_t down_us;	 /* from a fault to its recovery; 0: 6s */
	uint64_t period_us;	 /* from one fault to the next; 0: 18s */
	uint64_t timeout_us;	 /* deadline of each write; 0: 2s */
	double min_availability; /* the floor, percent; < 0: 90 */
	/* SIGINT/SIGTERM: as struct kha_drill_hooks (stop_fd -1: none) */
	int stop_fd;
	int (*on_stop)(void *userdata);
	/* One line of progress (a fault started, the leader changed...), from any thread. */
	void (*on_progress)(void *userdata, const char *line);
	void *userdata;
};

#define KHA_LAB_NAME_MAX 16

struct kha_lab_fault_result {
	enum kha_lab_fault_kind kind;
	bool ran;			       /* the fault command started */
	bool step_ok;			       /* the fault and its recovery succeeded */
	char victim[KHA_LAB_NAME_MAX];	       /* "" when unknown */
	bool victim_led;		       /* the victim led the election at the fault */
	bool raft_known;		       /* etcd's Raft leader at the fault was seen... */
	bool victim_led_raft;		       /* ...and it was the victim's member */
	uint64_t fault_us, recover_us, end_us; /* drill times; the window is [fault, end) */
	size_t sent, ok, failed;	       /* writes sent in the window */
	double availability;		       /* percent; 0 when none was sent */
	uint64_t longest_outage_us;	       /* 0: no failed write */
	size_t lost;			       /* acknowledged writes of the window lost */
	char leader_before[KHA_LAB_NAME_MAX], leader_after[KHA_LAB_NAME_MAX];
	uint64_t handover_us;	  /* fault to a new leader observed; KHA_DRILL_NONE: none */
	bool handover_needed;	  /* the victim led */
	uint64_t backup_after_us; /* fault to the next snapshot; KHA_DRILL_NONE: none */
	char backup_taker[KHA_LAB_NAME_MAX];
	bool backups_ok; /* a snapshot after the fault, by another master if the leader died */
};

/* A leadership term as observed by polling: from start_us, leader ("" = nobody). */
struct kha_lab_term {
	uint64_t start_us;
	char leader[KHA_LAB_NAME_MAX];
};

/* A snapshot file that appeared during the drill. */
struct kha_lab_snapshot {
	uint64_t t_us;	 /* its modification time, as drill time (may precede 0) */
	int64_t wall_us; /* the same, since the epoch */
	char taker[KHA_LAB_NAME_MAX];
	char file[96];
	bool conflict; /* its taker did not lead at that time (1 s of slack at term changes) */
};

struct kha_lab_drill_report {
	struct kha_drill_report *drill; /* owned: the probes, windows, steps, writes */
	char entry[96];			/* the URL written through */
	bool election;			/* the lab runs kha elect: terms and snapshots apply */
	double min_availability;
	struct kha_lab_fault_result faults[KHA_LAB_FAULTS];
	struct kha_lab_term *terms; /* owned */
	size_t n_terms;
	struct kha_lab_snapshot *snapshots; /* owned, in time order */
	size_t n_snapshots;
	size_t conflicts;	      /* snapshots taken by a master that did not lead */
	unsigned max_takers_per_term; /* distinct takers within one term: must be <= 1 */
	bool healthy_after;	      /* the lab was ready again after the drill */
};
/* Frees the report, lib/drill's report in it included. NULL is a no-op. */
void kha_lab_drill_report_free(struct kha_lab_drill_report *r);
KHA_DEFINE_CLEANUP(struct kha_lab_drill_report *, kha_lab_drill_report_free)

/* How long the faults of kha_lab_drill take with o (its defaults for zeros): baseline + 3 periods. */
uint64_t kha_lab_drill_length_us(const struct kha_lab_drill_opts *o);
/*
 * Runs the lab drill on a ready lab (kha_lab_wait_ready first; lab is not locked by us: the
 * fault commands lock it). kha is the binary the fault commands run. Blocks for the whole
 * drill (about baseline + 3 periods, plus the read-back). Returns 0 with a report (even when
 * the drill was interrupted or a fault failed: see kha_lab_drill_exit_code), -EINVAL when the
 * lab has no entry point, or a negative errno (d set) when it could not run.
 */
int kha_lab_drill(const struct kha_lab *lab, const char *kha, const struct kha_lab_drill_opts *o,
		  struct kha_lab_drill_report **ret, struct kha_diag *d) KHA_WUR;

/*
 * The verdict as an exit code: 0 every invariant held; 2 acknowledged writes lost or two
 * backup takers in one term; 128+N interrupted; 3 a fault command failed; 69 the writes could
 * not be read back; 1 availability under the floor, or no new leader / no new backup after a
 * fault. The first that applies, in this order.
 */
int kha_lab_drill_exit_code(const struct kha_lab_drill_report *r);
/* Short reasons for a non-zero verdict ("2 acknowledged writes lost; ..."), "" when none. */
void kha_lab_drill_problems(const struct kha_lab_drill_report *r, char *buf, size_t size);
/* The report as JSON (schema kha.lab.drill/v1, docs/lab.md), a new string; NULL on ENOMEM. */
char *kha_lab_drill_json(const struct kha_lab_drill_report *r);
/* The terminal summary: per fault and overall. Returns 0 or -EIO. */
int kha_lab_drill_print(FILE *out, const struct kha_lab_drill_report *r) KHA_WUR;
/* The SVG timeline (lib/drill's, with the lab's title). Returns 0 or -EIO/-ENOMEM. */
int kha_lab_drill_svg(FILE *out, const struct kha_lab_drill_report *r) KHA_WUR;

/* ---------------------------------------------------------------------------------------- */
/*
 * The drill of a Kubernetes lab (kha lab drill on a lab made with --kubernetes): through each
 * entry (the node's kha proxy, and the load balancers' VIP) one lib/drill in Kubernetes mode
 * creates ConfigMaps (writes, listed back afterwards) and another GETs a ConfigMap while a
 * watch on it stays open, all four at once, while faults hit the control plane one after the
 * other, each undone after a while:
 *   kill-master        SIGKILL every process of a master that does not lead the backups
 *   freeze-master      SIGSTOP every process of such a master; SIGCONT
 *   stop-apiserver     SIGTERM one kube-apiserver (graceful: /readyz turns unready during
 *                      --shutdown-delay-duration, the entries must drain it)
 *   kill-cm-leader     SIGKILL the kube-controller-manager holding the Lease
 *                      kube-system/kube-controller-manager (the handover is read from it)
 *   kill-etcd-leader   SIGKILL every process of the etcd Raft leader's master
 *   kill-lb            SIGKILL every process of the load balancer holding the VIP
 *   rolling            every master in turn stopped and started under `kha lock`, waiting
 *                      for the lab to be ready before the next, as an upgrade does
 * Meanwhile the Leases of kube-controller-manager and kube-scheduler, the backup election and
 * the backup directories are watched.
 */
enum kha_lab_k8s_fault {
	KHA_LAB_K8S_KILL_MASTER,
	KHA_LAB_K8S_FREEZE_MASTER,
	KHA_LAB_K8S_STOP_APISERVER,
	KHA_LAB_K8S_KILL_CM_LEADER,
	KHA_LAB_K8S_KILL_ETCD_LEADER,
	KHA_LAB_K8S_KILL_LB,
	KHA_LAB_K8S_ROLLING,
	KHA_LAB_K8S_FAULTS,
};
const char *kha_lab_k8s_fault_name(enum kha_lab_k8s_fault k);
/* "kill-lb,stop-apiserver" (or "all") into a bit mask of faults. 0 or -EINVAL. */
int kha_lab_k8s_fault_parse(const char *list, unsigned *ret_mask) KHA_WUR;

enum kha_lab_entry { KHA_LAB_ENTRY_NODE, KHA_LAB_ENTRY_VIP, KHA_LAB_ENTRIES };
const char *kha_lab_entry_name(enum kha_lab_entry e);

struct kha_lab_k8s_drill_opts {
	uint32_t rate;		   /* requests per second per entry, writes and reads each; 0: 20 */
	uint64_t baseline_us;	   /* before the first fault; 0: 5s */
	uint64_t down_us;	   /* from a fault to its recovery; 0: 8s */
	uint64_t period_us;	   /* from one fault to the next; 0: 40s */
	uint64_t rolling_us;	   /* time given to the rolling restart; 0: 150s */
	uint64_t timeout_us;	   /* deadline of each request; 0: 2s */
	unsigned faults;	   /* mask of 1 << kha_lab_k8s_fault; 0: all */
	double slo;		   /* availability per entry and fault, percent; < 0: 90 */
	uint64_t watch_timeout_us; /* timeoutSeconds of each watch; 0: 60s */
	int stop_fd;
	int (*on_stop)(void *userdata);
	void (*on_progress)(void *userdata, const char *line);
	void *userdata;
};

/* What one entry's clients saw during one fault's window. */
struct kha_lab_k8s_entry_result {
	size_t writes_sent, writes_ok;
	double writes_availability; /* percent; 0 when none was sent */
	uint64_t writes_longest_us; /* longest outage of the writes, 0: none */
	size_t reads_sent, reads_ok;
	double reads_availability;
	uint64_t reads_longest_us;
	size_t lost; /* acknowledged writes of the window lost */
	size_t watch_breaks;
	uint64_t watch_reconnect_us; /* longest reconnect of a break in the window; NONE: no
					break */
	bool slo_met;
};

/* A holder of a Lease as observed by polling it every 250 ms. */
struct kha_lab_lease_term {
	uint64_t seen_us;	       /* drill time it was first seen */
	int64_t acquire_wall_us;       /* spec.acquireTime, µs since the epoch; 0 unknown */
	char holder[KHA_LAB_NAME_MAX]; /* the master (the identity's host part), "" none */
};

struct kha_lab_k8s_fault_result {
	enum kha_lab_k8s_fault kind;
	bool ran, step_ok;
	char victim[KHA_LAB_NAME_MAX];
	uint64_t fault_us, recover_us, end_us; /* drill time of the node's write drill */
	uint64_t ready_us; /* the recovery ended: the lab was ready again; NONE: it did not */
	struct kha_lab_k8s_entry_result entry[KHA_LAB_ENTRIES];
	char cm_before[KHA_LAB_NAME_MAX], cm_after[KHA_LAB_NAME_MAX];
	uint64_t cm_handover_us; /* fault to the new holder's acquireTime; NONE: none */
	char sched_before[KHA_LAB_NAME_MAX], sched_after[KHA_LAB_NAME_MAX];
	uint64_t backup_after_us; /* fault to the next snapshot; NONE: none */
	char backup_taker[KHA_LAB_NAME_MAX];
};

struct kha_lab_k8s_drill_report {
	/* [entry][0]: the writes (they carry the fault steps for the node), [entry][1]: reads */
	struct kha_drill_report *drill[KHA_LAB_ENTRIES][2]; /* owned; NULL when not run */
	char entry_url[KHA_LAB_ENTRIES][96];
	double slo;
	unsigned faults_mask;
	struct kha_lab_k8s_fault_result faults[KHA_LAB_K8S_FAULTS];
	struct kha_lab_lease_term *cm_terms, *sched_terms; /* owned */
	size_t n_cm_terms, n_sched_terms;
	int32_t cm_lease_duration_s;	    /* as the Lease says; 0 unknown */
	struct kha_lab_snapshot *snapshots; /* owned */
	size_t n_snapshots;
	char exited
		[256]; /* "m3/kube-scheduler, ...": exited on their own after the last recovery */
	bool healthy_after;
};
void kha_lab_k8s_drill_report_free(struct kha_lab_k8s_drill_report *r);
KHA_DEFINE_CLEANUP(struct kha_lab_k8s_drill_report *, kha_lab_k8s_drill_report_free)

/*
 * Runs the drill on a ready Kubernetes lab (the calling thread in its node's namespace, as
 * kha_lab_load leaves it). Blocks for the whole drill. Returns 0 with a report (see
 * kha_lab_k8s_drill_exit_code), -EINVAL when the lab is not a Kubernetes lab with both entries,
 * or a negative errno (d set) when it could not run.
 */
int kha_lab_k8s_drill(const struct kha_lab *lab, const char *kha,
		      const struct kha_lab_k8s_drill_opts *o, struct kha_lab_k8s_drill_report **ret,
		      struct kha_diag *d) KHA_WUR;
/*
 * The analysis (pure: unit tests feed it made-up drills): the fault windows, per entry, the
 * Lease handovers, the backups.
 */
void kha_lab_k8s_drill_analyze(struct kha_lab_k8s_drill_report *r);
/*
 * 0 every invariant held; 2 acknowledged writes lost; 128+N interrupted; 3 a fault command
 * failed; 69 the writes could not be read back; 1 an entry under the SLO in a fault, a
 * controller-manager kill without a new Lease holder, a fault after which no backup was taken,
 * or the lab not ready afterwards. The first that applies, in this order.
 */
int kha_lab_k8s_drill_exit_code(const struct kha_lab_k8s_drill_report *r);
void kha_lab_k8s_drill_problems(const struct kha_lab_k8s_drill_report *r, char *buf, size_t size);
/* JSON (schema kha.lab.k8s-drill/v1, docs/lab.md), a new string; NULL on ENOMEM. */
char *kha_lab_k8s_drill_json(const struct kha_lab_k8s_drill_report *r);
int kha_lab_k8s_drill_print(FILE *out, const struct kha_lab_k8s_drill_report *r) KHA_WUR;
/* The SVG timeline of one entry's writes, faults and Lease holders. */
int kha_lab_k8s_drill_svg(FILE *out, const struct kha_lab_k8s_drill_report *r,
			  enum kha_lab_entry e) KHA_WUR;
/*
 * Where the SVG of entry e goes when the user asked for svg: svg itself for the node's entry,
 * "NAME-vip.svg" for the VIP (NAME: svg without its ".svg"). A new string; NULL on ENOMEM.
 */
char *kha_lab_k8s_drill_svg_path(const char *svg, enum kha_lab_entry e);

/* The load balancer holding the VIP (its name, a new string; NULL when none). */
int kha_lab_vip_holder(const struct kha_lab *lab, char **ret_host, struct kha_diag *d) KHA_WUR;

#endif
