/* SPDX-License-Identifier: MIT */
/*
 * kha audit: finds the single points of failure of a cluster (lib/audit). It only reads: etcd's
 * members and alarms, a backup directory, the Kubernetes objects that make the control plane
 * highly available (the apiservers behind service default/kubernetes, cluster DNS, the leader
 * Leases and pods of kube-controller-manager and kube-scheduler), and the certificate presented
 * at the entry address. Each finding says what is wrong and how to fix it; where the fix is a
 * manifest or a command, its full text comes with it (ready to apply).
 *
 * Layers: the decisions (kha_audit_check_*) are pure functions from decoded objects to
 * findings, unit-tested; the decoders of the Kubernetes objects are pure too (and fuzzed); the
 * kha_audit_collect_* functions do the I/O and call both.
 *
 * Ownership: a struct kha_audit_report owns its findings and their strings; release it with
 * kha_audit_report_release() (a zeroed report is valid). Decoded objects own their strings and
 * are released with their _release function (zeroed structs are valid too).
 */
#ifndef KHA_AUDIT_H
#define KHA_AUDIT_H

#include <jansson.h>
#include <openssl/types.h>

#include "kha/common.h"
#include "kha/diag.h"
#include "kha/etcd.h"
#include "kha/kube.h"

/* ==== findings ============================================================================= */

/* In increasing order of gravity; skipped (not checked) counts as ok for the verdict. */
enum kha_audit_severity {
	KHA_AUDIT_OK,
	KHA_AUDIT_SKIPPED,
	KHA_AUDIT_WARNING,
	KHA_AUDIT_CRITICAL,
};
/* "ok", "skipped", "warning", "critical" */
const char *kha_audit_severity_name(enum kha_audit_severity s);

struct kha_audit_finding {
	char *check;   /* stable id: "etcd-members", "dns-replicas", "entry-san", ... */
	char *subject; /* what was looked at: "kube-system/coredns", "10.0.0.1:6443"; "" if none */
	enum kha_audit_severity severity;
	char *finding;	   /* one sentence: what was seen */
	char *fix;	   /* one line: what to do ("" when nothing) */
	char *fix_file;	   /* a file name for fix_content ("coredns-pdb.yaml"), NULL = none */
	char *fix_content; /* the manifest or commands, ready to apply; NULL = none */
};

struct kha_audit_report {
	struct kha_audit_finding *findings; /* owned, in the order they were added */
	size_t n_findings;
	size_t cap;
};

void kha_audit_report_release(struct kha_audit_report *r);

/*
 * Appends a finding; every string is copied (subject, fix, fix_file, fix_content may be NULL).
 * A fix_file is made unique within the report ("-2" before the extension) and must be a plain
 * file name (no '/'). Returns 0 or -ENOMEM.
 */
int kha_audit_add(struct kha_audit_report *r, const char *check, const char *subject,
		  enum kha_audit_severity sev, const char *finding, const char *fix,
		  const char *fix_file, const char *fix_content) KHA_WUR;

/* The gravest severity of the report (ok when empty; skipped counts as ok). */
enum kha_audit_severity kha_audit_verdict(const struct kha_audit_report *r);

/* The exit code of a report: 0 nothing above ok, 1 a warning, 2 a critical finding. */
int kha_audit_exit_code(const struct kha_audit_report *r);

/* Counts of each severity into counts[4] (indexed by enum kha_audit_severity). */
void kha_audit_count(const struct kha_audit_report *r, size_t counts[4]);

/* ==== etcd (pure) ========================================================================== */

/*
 * Findings about an etcd cluster from its report (kha_etcd_cluster_report): etcd-members (1
 * voter critical, an even count warning), etcd-health (quorum lost critical, a voter down
 * warning, no agreed leader critical), etcd-learners (a learner warning: it does not vote, a
 * stuck one blocks the next member add), etcd-alarms (NOSPACE or CORRUPT critical). Returns 0
 * or -ENOMEM.
 */
int kha_audit_check_etcd(const struct kha_etcd_cluster_report *cr,
			 struct kha_audit_report *r) KHA_WUR;

/* One snapshot file of a backup directory, as the collector saw it. */
struct kha_audit_backup_file {
	char name[256];
	int64_t mtime_s;  /* seconds since the epoch */
	bool verified;	  /* kha_snapshot_verify_file accepted it */
	bool checked;	  /* verification was attempted */
	char reason[256]; /* why it did not verify */
	int64_t revision; /* from the snapshot, 0 unknown */
};

/*
 * etcd-backup: files (newest first) of dir, now and the allowed age. No file, or none that
 * verifies: critical. The newest verified one older than max_age: warning (critical when older
 * than four times max_age). The newest file not verifying while an older one does: warning.
 * dir_error (NULL = none) reports a directory that could not be read: critical. Returns 0 or
 * -ENOMEM.
 */
int kha_audit_check_backup(const char *dir, const char *dir_error,
			   const struct kha_audit_backup_file *files, size_t n, int64_t now_s,
			   uint64_t max_age_us, struct kha_audit_report *r) KHA_WUR;

/* ==== Kubernetes objects (pure decoders, fuzzed) ========================================== */

struct kha_audit_label {
	char *key;
	char *value;
};

struct kha_audit_labels {
	struct kha_audit_label *items; /* owned */
	size_t n;
};
void kha_audit_labels_release(struct kha_audit_labels *l);
/* The value of key, NULL when absent. */
const char *kha_audit_labels_get(const struct kha_audit_labels *l, const char *key);
/* Whether every label of sel is in labels with the same value (an empty sel matches all). */
bool kha_audit_labels_match(const struct kha_audit_labels *sel,
			    const struct kha_audit_labels *labels);

/* apps/v1 Deployment: what decides whether it survives losing a node. */
struct kha_audit_deployment {
	char *name;
	char *namespace;
	int64_t replicas;	/* spec.replicas (absent: 1, the API's default) */
	int64_t ready_replicas; /* status.readyReplicas */
	int64_t available_replicas;
	struct kha_audit_labels selector;	 /* spec.selector.matchLabels */
	bool selector_has_expressions;		 /* spec.selector.matchExpressions non-empty */
	struct kha_audit_labels template_labels; /* spec.template.metadata.labels */
	bool anti_affinity_required; /* podAntiAffinity.requiredDuringScheduling... non-empty */
	bool anti_affinity_preferred;
	char **anti_affinity_topology_keys; /* owned: the topologyKey of every term */
	size_t n_anti_affinity_topology_keys;
	char **spread_topology_keys; /* owned: topologySpreadConstraints[].topologyKey */
	size_t n_spread_topology_keys;
};
void kha_audit_deployment_release(struct kha_audit_deployment *dep);

/* Decodes a Deployment. Returns 0 or -EBADMSG (not an object, wrong types, no name). */
int kha_audit_deployment_from_json(const json_t *obj, struct kha_audit_deployment *ret,
				   struct kha_diag *d) KHA_WUR;
int kha_audit_deployment_decode(const char *text, size_t len, struct kha_audit_deployment *ret,
				struct kha_diag *d) KHA_WUR;

/* Decodes a DeploymentList (items). Returns 0 or -EBADMSG. */
struct kha_audit_deployment_list {
	struct kha_audit_deployment *items; /* owned */
	size_t n;
};
void kha_audit_deployment_list_release(struct kha_audit_deployment_list *l);
int kha_audit_deployment_list_from_json(const json_t *obj, struct kha_audit_deployment_list *ret,
					struct kha_diag *d) KHA_WUR;

/* policy/v1 PodDisruptionBudget. An int-or-string is kept as text ("1", "50%"), "" unset. */
struct kha_audit_pdb {
	char *name;
	char *namespace;
	struct kha_audit_labels selector; /* spec.selector.matchLabels */
	bool selector_has_expressions;
	bool selector_null;	     /* spec.selector absent: selects no pod (policy/v1) */
	char min_available[32];	     /* "" when unset */
	char max_unavailable[32];    /* "" when unset */
	int64_t disruptions_allowed; /* status.disruptionsAllowed */
	int64_t current_healthy;
	int64_t desired_healthy;
	int64_t expected_pods;
};

struct kha_audit_pdb_list {
	struct kha_audit_pdb *items; /* owned */
	size_t n;
};
void kha_audit_pdb_list_release(struct kha_audit_pdb_list *l);

/* Decodes a PodDisruptionBudgetList. Returns 0 or -EBADMSG. */
int kha_audit_pdb_list_from_json(const json_t *obj, struct kha_audit_pdb_list *ret,
				 struct kha_diag *d) KHA_WUR;
int kha_audit_pdb_list_decode(const char *text, size_t len, struct kha_audit_pdb_list *ret,
			      struct kha_diag *d) KHA_WUR;

/* v1 Pod: where it runs and whether it is ready. */
struct kha_audit_pod {
	char *name;
	char *namespace;
	char *node;	  /* spec.nodeName, "" while unscheduled */
	char *phase;	  /* status.phase, "" when absent */
	bool ready;	  /* status.conditions[type=Ready].status == "True" */
	bool terminating; /* metadata.deletionTimestamp set */
	/* from its first container's command and args ("--flag=value" or "--flag value"), as a
	 * kubeadm static pod's mirror pod shows them: */
	int leader_elect;   /* --leader-elect: 1 true, 0 false, -1 not given (default true) */
	char *etcd_servers; /* --etcd-servers, NULL when not given */
};

struct kha_audit_pod_list {
	struct kha_audit_pod *items; /* owned */
	size_t n;
};
void kha_audit_pod_list_release(struct kha_audit_pod_list *l);

/* Decodes a PodList. Returns 0 or -EBADMSG. */
int kha_audit_pod_list_from_json(const json_t *obj, struct kha_audit_pod_list *ret,
				 struct kha_diag *d) KHA_WUR;
int kha_audit_pod_list_decode(const char *text, size_t len, struct kha_audit_pod_list *ret,
			      struct kha_diag *d) KHA_WUR;

/* ==== Kubernetes decisions (pure) ========================================================== */

/*
 * apiserver-endpoints: the addresses behind service default/kubernetes (each apiserver
 * registers itself there). None or one: critical. set NULL with err set: skipped (why).
 */
int kha_audit_check_apiservers(const struct kha_kube_endpoint_set *set, const char *err,
			       struct kha_audit_report *r) KHA_WUR;

/*
 * kubeconfig-server: server is the kubeconfig's URL ("https://10.0.0.1:6443"), entry the
 * --entry address (NULL: none given), set the apiservers (may be NULL). With an entry: a server
 * that is not the entry is a warning (it names a single master when it is one of set). Without:
 * a server that is one of the apiservers themselves is a warning. Returns 0 or -ENOMEM.
 */
int kha_audit_check_kubeconfig_server(const char *server, const char *entry,
				      const struct kha_kube_endpoint_set *set,
				      struct kha_audit_report *r) KHA_WUR;

/*
 * Cluster DNS: dns-replicas (fewer than 2 critical; fewer ready than wanted warning),
 * dns-spread (no pod anti-affinity and no topology spread constraint: warning; pods all on one
 * node: warning), dns-pdb (no PodDisruptionBudget selecting its pods: warning; one that allows
 * no disruption: warning, node drains hang). dep NULL: not found (warning: no cluster DNS
 * found, or it runs under another name), wanted the "NAMESPACE/NAME" looked for (NULL:
 * kube-system/coredns). pods (may be NULL) are the DNS pods; pdbs (may be NULL: skipped) those
 * of its namespace. The fixes carry a kubectl command or a manifest.
 */
int kha_audit_check_dns(const char *wanted, const struct kha_audit_deployment *dep,
			const struct kha_audit_pod_list *pods,
			const struct kha_audit_pdb_list *pdbs, struct kha_audit_report *r) KHA_WUR;

/*
 * kube-controller-manager / kube-scheduler (component): <id>-leader from its Lease (NULL:
 * none, critical: nothing holds leadership, or --leader-elect is off) renewed within its
 * duration (else critical: the leader stopped renewing and no standby took over) at now_us
 * (wall clock, µs since the epoch); <id>-instances from its pods (label component=NAME): one
 * critical, none found warning (not run as pods: count them yourself), standbys not ready
 * warning. id is the check prefix ("controller-manager", "scheduler"). pods NULL: skipped.
 */
int kha_audit_check_component(const char *id, const char *component,
			      const struct kha_kube_lease *lease, const char *lease_err,
			      const struct kha_audit_pod_list *pods, const char *pods_err,
			      int64_t now_us, struct kha_audit_report *r) KHA_WUR;

/*
 * The control-plane flags that decide whether a copy is a single point of failure, read from
 * the pods of component (kubeadm's static pods, through their mirror pods):
 * <id>-leader-elect for kube-controller-manager / kube-scheduler: a copy with
 * --leader-elect=false is critical (two copies would both act); apiserver-etcd-servers for
 * kube-apiserver: every copy reaching etcd through the same single non-loopback member is
 * critical (that member is the control plane's single point of failure), one copy doing so a
 * warning; a single loopback member (kubeadm's stacked etcd: each apiserver with its own
 * master's member) and several members are ok. No pods (not run as pods, or pods NULL): no
 * finding. id is the check prefix.
 */
int kha_audit_check_flags(const char *id, const char *component,
			  const struct kha_audit_pod_list *pods,
			  struct kha_audit_report *r) KHA_WUR;

/* ==== the entry point's certificate ======================================================== */

/*
 * Splits "host:port" / "[v6]:port" into host (no brackets) and port. Returns 0 or -EINVAL
 * (no port, port out of range, empty host, host too long).
 */
int kha_audit_split_hostport(const char *s, char *host, size_t host_size,
			     uint16_t *ret_port) KHA_WUR;

/*
 * entry-san / apiserver-san: the certificate addr presented (cert NULL: err says why it could
 * not be read, critical when the entry itself, warning otherwise) must carry entry_host. The
 * fix names the kha certs command that reissues it with the SANs it already has plus the
 * entry, and kubeadm's apiServer.certSANs. Returns 0 or -ENOMEM.
 */
int kha_audit_check_cert(const char *check, const char *addr, X509 *cert, const char *err,
			 const char *entry_host, struct kha_audit_report *r) KHA_WUR;

/*
 * Connects to addr ("host:port", names resolved) within timeout_us, makes a TLS handshake
 * without verifying the chain (the audit wants to see what is presented, trusted or not) and
 * returns the peer certificate in *ret (X509_free() it). sni: the server name to send (NULL:
 * the host when it is a name). Returns 0, -ETIMEDOUT, -ECONNREFUSED, -EPROTO (no TLS), ...
 */
int kha_audit_fetch_cert(const char *addr, const char *sni, uint64_t timeout_us, X509 **ret,
			 struct kha_diag *d) KHA_WUR;

/* ==== the node's kha proxy ================================================================= */

/*
 * proxy-backends: root is the /status JSON of the kha proxy whose admin address is addr (NULL,
 * with err saying why it could not be read: critical; not a kha proxy status: critical). No
 * backend or a single one: critical (the entry falls with that master); none up: critical;
 * some down: warning naming them; all up: ok. proxy-draining (warning) when it is stopping.
 * Returns 0 or -ENOMEM.
 */
int kha_audit_check_proxy(const char *addr, const json_t *root, const char *err,
			  struct kha_audit_report *r) KHA_WUR;

/* ==== the BGP entry (kha bgp on the masters) ============================================== */

/*
 * roots[i] is the /status JSON of the kha bgp whose admin address is addrs[i] (NULL with errs[i]
 * saying why it could not be read). bgp-sessions per speaker: unreachable, not a kha bgp, or no
 * session Established: critical; some sessions down, or a single router: warning. bgp-announce
 * per service address listed by any speaker: announced now (announcing, and sent to an
 * Established router) by none or by one master only: critical (the entry falls with that
 * master); by some but not all: warning naming them; by all: ok. Returns 0 or -ENOMEM.
 */
int kha_audit_check_bgp(const char *const *addrs, json_t *const *roots, const char *const *errs,
			size_t n, struct kha_audit_report *r) KHA_WUR;

/* ==== collection (I/O) ===================================================================== */

/*
 * The Kubernetes part: every check above against the API of c (GETs only), with entry the
 * --entry address or NULL and dns the cluster DNS Deployment as "NAMESPACE/NAME" (NULL:
 * kube-system/coredns; when it does not exist, the first Deployment of that namespace with
 * label k8s-app=kube-dns). Returns 0 when the API answered (findings added, failed individual
 * reads becoming skipped findings), or the error of the first request when the API could not
 * be reached at all (d says why; nothing added). ret_apiservers (may be NULL; released by the
 * caller) receives the apiservers found behind default/kubernetes.
 */
int kha_audit_collect_kube(struct kha_kube_client *c, const char *entry, const char *dns,
			   struct kha_audit_report *r, struct kha_kube_endpoint_set *ret_apiservers,
			   struct kha_diag *d) KHA_WUR;

/*
 * The backup part: lists the regular files of dir (dot files and temporaries left aside),
 * verifies the newest ones (newest first, until one verifies) and calls
 * kha_audit_check_backup(). Returns 0 or -ENOMEM.
 */
int kha_audit_collect_backup(const char *dir, uint64_t max_age_us,
			     struct kha_audit_report *r) KHA_WUR;

/* ==== output =============================================================================== */

/*
 * The JSON report, schema "kha.audit.report/v1" (docs/audit.md): schema, verdict, counts,
 * sources (name -> {"status": "audited|skipped|unreachable", "detail": "..."}), findings. The
 * sources object is borrowed (may be NULL). Returns a new reference or NULL (ENOMEM).
 */
json_t *kha_audit_report_json(const struct kha_audit_report *r, const json_t *sources);

#define KHA_AUDIT_SCHEMA "kha.audit.report/v1"

#endif
