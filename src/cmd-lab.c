// SPDX-License-Identifier: MIT
/* kha lab: the HA design on one machine, with real etcd members on loopback. */
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd-common.h"
#include "commands.h"
#include "kha/diag.h"
#include "kha/file.h"
#include "kha/lab.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DEFAULT_DIR	   "lab"
#define DEFAULT_TIMEOUT_US (60 * KHA_USEC_PER_SEC)
#define DEFAULT_GRACE_US   (10 * KHA_USEC_PER_SEC)
#define STATUS_TIMEOUT_US  (2 * KHA_USEC_PER_SEC)
#define LEADER_TIMEOUT_US  (2 * KHA_USEC_PER_SEC)
#define DRILL_READY_US	   (30 * KHA_USEC_PER_SEC)
#define LOG_TAIL_LINES	   20

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha lab SUBCOMMAND [--dir DIR] [flags]\n\n"
		"The HA design on this machine, with real processes, in DIR (default ./lab):\n"
		"3 masters, each an etcd member (TLS, client certificates) and a kha elect that\n"
		"runs the scheduled kha etcd backup only while it leads (so exactly one master\n"
		"takes backups); and a node whose kha proxy is the entry point in front of the\n"
		"masters. No kube-apiserver here: the entry fronts the members' etcd client API.\n"
		"Break it, watch it, repair it, measure it.\n\n"
		"Subcommands:\n"
		"  up             create the PKI, start everything, wait until ready\n"
		"  status         every process, health, the entry, the leader (exit 0/1/2)\n"
		"  stop-member    stop a master's processes (SIGTERM; --kill: SIGKILL)\n"
		"  start-member   restart a stopped master on its data\n"
		"  freeze-member  SIGSTOP a master's processes (a hung machine)\n"
		"  thaw-member    SIGCONT them\n"
		"  stop-process   stop one process of a master (kube-apiserver, ...)\n"
		"  stop-host      stop a load balancer (or the node) of a Kubernetes lab\n"
		"  start-host     start it again\n"
		"  wait           wait until the lab is ready\n"
		"  drill          write through the entry while masters are killed and frozen\n"
		"  down           stop exactly what the lab started and remove DIR\n"
		"  exec           run a command inside a host of a Kubernetes lab\n"
		"  kubeconfig     print the admin kubeconfig of an entry of a Kubernetes lab\n\n"
		"Example:\n"
		"  kha lab up && kha lab status\n"
		"  kha lab drill --report drill.json --svg drill.svg\n"
		"  kha lab stop-member --leader --kill && kha lab status; kha lab start-member --all\n"
		"  kha lab down\n\n"
		"Run 'kha lab SUBCOMMAND --help' for its flags. See docs/lab.md.\n");
}

/* "kha lab SUB: MESSAGE (run 'kha lab SUB --help')"; returns 64 */
#define usage_error(sub, ...) cmd_usage_error("lab", sub, __VA_ARGS__)

/* Maps a lab error to an exit code and prints the one line. */
static int fail(const char *sub, int err, const struct kha_diag *d)
{
	int code;

	switch (-err) {
	case EINVAL:
	case EEXIST:
	case ENOTEMPTY:
		code = KHA_EXIT_USAGE;
		break;
	case ENOENT:
	case ETIMEDOUT:
	case ECHILD:
		code = KHA_EXIT_UNAVAILABLE;
		break;
	case EBUSY:
		code = KHA_EXIT_SOFTWARE;
		break;
	default:
		code = kha_exit_from_errno(err);
	}
	fprintf(stderr, "kha lab %s: %s\n", sub, d->msg[0] ? d->msg : strerror(-err));
	return code;
}

static void print_log_tail(const char *path)
{
	kha_autofree char *tail = kha_lab_log_tail(path, LOG_TAIL_LINES);

	if (!tail)
		return;
	fprintf(stderr, "--- last lines of %s ---\n%s%s--- end of %s ---\n", path,
		*tail ? tail : "(empty)", "\n", path);
}

/* Flags every subcommand shares. */
struct common {
	const char *sub;
	const char *dir;
	bool dir_given;
	bool json;
};

enum {
	OPT_DIR = 0x100,
	OPT_MEMBERS,
	OPT_TIMEOUT,
	OPT_GRACE,
	OPT_KILL,
	OPT_ETCD,
	OPT_KHA,
	OPT_NO_PROXY,
	OPT_NO_ELECT,
	OPT_LEADER,
	OPT_FOLLOWER,
	OPT_ALL,
	OPT_RATE,
	OPT_REPORT,
	OPT_SVG,
	OPT_MIN_AVAILABILITY,
	OPT_BASELINE,
	OPT_PERIOD,
	OPT_DOWN,
	OPT_DETAILS,
	OPT_KUBERNETES,
	OPT_K8S_BIN,
	OPT_ENTRY,
	OPT_RAFT_LEADER,
	OPT_LEASE_HOLDER,
	OPT_VIP_HOLDER,
	OPT_FAULTS,
	OPT_ROLLING_TIME,
	OPT_SLO,
	OPT_WATCH_TIMEOUT,
	OPT_LE_LEASE,
	OPT_LE_RENEW,
	OPT_LE_RETRY,
};

static int parse_duration(const char *sub, const char *flag, const char *arg, uint64_t *us)
{
	if (kha_parse_duration_us(arg, us) < 0)
		return usage_error(sub, "%s '%s': expected a duration like 500ms, 30s, 1m", flag,
				   arg);
	return 0;
}

/*
 * getopt_long over a subcommand's flags, the shared ones (--dir, -o) handled here. Returns the
 * next other flag, or -1 at the end of the flags or on a bad shared flag: *code is then its
 * exit code, else 0.
 */
static int next_flag(struct common *c, int argc, char **argv, const char *shortopts,
		     const struct option *opts, int *code)
{
	int opt;

	*code = 0;
	while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (opt) {
		case OPT_DIR:
			c->dir = optarg;
			c->dir_given = true;
			break;
		case 'o':
			if (kha_parse_output(optarg, &c->json) < 0) {
				*code = usage_error(c->sub,
						    "unknown output format '%s' (table or json)",
						    optarg);
				return -1;
			}
			break;
		default:
			return opt;
		}
	}
	return -1;
}

/* " --dir DIR" when the user gave one, for the hints we print. */
static const char *dir_hint(const struct common *c, char *buf, size_t size)
{
	if (!c->dir_given)
		return "";
	snprintf(buf, size, " --dir %s", c->dir);
	return buf;
}

static int load(const struct common *c, bool lock, struct kha_lab **ret)
{
	struct kha_diag d = {0};
	char hint[512], who[64];
	int r = kha_lab_load(c->dir, lock, ret, &d);

	snprintf(who, sizeof(who), "kha lab %s", c->sub);
	if (r == -ENOENT)
		return cmd_fail(who, c->json, KHA_EXIT_UNAVAILABLE,
				"no lab in %s (start one with 'kha lab up%s')", c->dir,
				dir_hint(c, hint, sizeof(hint)));
	if (r < 0) {
		int code = fail(c->sub, r, &d);

		/* -o json: a document to parse, errors included */
		return c->json ? cmd_print_json_error(who, code, d.msg[0] ? d.msg : strerror(-r))
			       : code;
	}
	return 0;
}

static struct kha_lab_master *find_member(const struct common *c, struct kha_lab *lab,
					  const char *name)
{
	struct kha_lab_master *m = kha_lab_find_master(lab, name);
	char names[256] = "";

	if (m)
		return m;
	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(names);

		snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
			 lab->masters[i].name);
	}
	usage_error(c->sub, "no member '%s' in %s (members: %s)", name, c->dir, names);
	return NULL;
}

static void print_reach(const struct common *c, const struct kha_lab *lab)
{
	kha_autofree char *eps = kha_lab_endpoints(lab);
	char hint[512];
	const char *dh = dir_hint(c, hint, sizeof(hint));

	if (lab->node.entry_url) {
		printf("\nThe node's entry point: %s (kha proxy, TCP; TLS goes through to the\n"
		       "members). No kube-apiserver exists here, so it fronts the etcd members' client\n"
		       "API; in front of real masters the same proxy runs with --backend MASTER:6443\n"
		       "(one per master) and its default check GET /readyz:\n"
		       "  kha proxy --listen 127.0.0.1:7443 --backend 10.0.0.11:6443 --backend \\\n"
		       "      10.0.0.12:6443 --backend 10.0.0.13:6443 --check-cacert ca.crt\n"
		       "Through the entry:\n"
		       "  etcdctl --endpoints %s --cacert %s --cert %s --key %s put k v\n"
		       "  kha proxy status --metrics-addr %s\n",
		       lab->node.entry_url, lab->node.entry_url, lab->ca_cert, lab->client_cert,
		       lab->client_key, lab->node.metrics_addr);
	}
	printf("\nReach the members (TLS with client certificates):\n"
	       "  . %s/env && etcdctl member list -w table\n"
	       "  kha etcd status --endpoints %s --cacert %s --cert %s --key %s\n"
	       "Break it and watch:\n"
	       "  kha lab drill%s --svg lab-drill.svg\n"
	       "  kha lab stop-member %s%s && kha lab status%s\n"
	       "Tear it down:\n"
	       "  kha lab down%s\n",
	       c->dir, eps ? eps : "", lab->ca_cert, lab->client_cert, lab->client_key, dh,
	       lab->election ? "--leader --kill" : lab->masters[0].name, dh, dh, dh);
}

static void print_reach_k8s(const struct common *c, const struct kha_lab *lab)
{
	char hint[512];
	const char *dh = dir_hint(c, hint, sizeof(hint));

	printf("\nEntries (each host is a network namespace; run commands inside the lab):\n"
	       "  node: its kha proxy on %s (discovery from default/kubernetes)\n",
	       lab->node.entry_url);
	if (lab->n_lbs)
		printf("  vip:  %s, held by kha vip on lb1/lb2, each with a kha proxy\n",
		       lab->lbs[0].entry_url);
	for (size_t i = 0; i < lab->n_masters; i++)
		printf("  %s:   its own kube-apiserver on https://%s:6443\n", lab->masters[i].name,
		       lab->masters[i].address);
	printf("Next:\n"
	       "  kha lab exec%s node -- kubectl get nodes\n"
	       "  kha lab exec%s lb1 -- kubectl get --raw /readyz\n"
	       "  kha lab exec%s node -- kubectl get lease -n kube-system\n"
	       "  kha lab kubeconfig%s --entry vip\n"
	       "  kha lab stop-member%s --leader --kill && kha lab status%s\n"
	       "  kha lab down%s\n",
	       dh, dh, dh, dh, dh, dh, dh);
}

static void print_procs(const char *owner, const struct kha_lab_proc *procs, size_t n)
{
	for (size_t j = 0; j < n; j++)
		printf("%-6s %-23s %-8d %s\n", owner, procs[j].name, (int)procs[j].pid,
		       procs[j].log_path);
}

static void print_members(const struct kha_lab *lab)
{
	printf("%-6s %-23s %-8s %s\n", "OWNER", "PROC", "PID", "LOG");
	for (size_t i = 0; i < lab->n_masters; i++)
		print_procs(lab->masters[i].name, lab->masters[i].procs, lab->masters[i].n_procs);
	print_procs("node", lab->node.procs, lab->node.n_procs);
	for (size_t i = 0; i < lab->n_lbs; i++)
		print_procs(lab->lbs[i].name, lab->lbs[i].procs, lab->lbs[i].n_procs);
}

/* The host an entry belongs to in `kha lab exec`: node -> node, lbN -> vip, mN -> mN. */
static const char *entry_of_host(const char *host)
{
	return strncmp(host, "lb", 2) == 0 ? "vip" : host;
}

static int cmd_kubeconfig(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"entry", required_argument, NULL, OPT_ENTRY},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "kubeconfig", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *path = NULL, *text = NULL;
	const char *entry = "node";
	struct kha_diag d = {0};
	size_t len;
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_ENTRY:
			entry = optarg;
			break;
		case 'h':
			printf("Usage: kha lab kubeconfig [--dir DIR] [--entry node|vip|mN]\n\n"
			       "Prints the admin kubeconfig of a Kubernetes lab for one entry: node\n"
			       "(the node's kha proxy, the default), vip (the load balancers' VIP) or\n"
			       "a master's own apiserver. Its addresses are inside the lab's network\n"
			       "namespaces: use it there ('kha lab exec' sets it for you).\n\n"
			       "Example:\n  kha lab kubeconfig --entry vip > vip.conf\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("kubeconfig", "bad flag");
		}
	}
	if (r)
		return r;
	if (optind < argc)
		return usage_error("kubeconfig", "unexpected argument '%s'", argv[optind]);
	r = load(&c, false, &lab);
	if (r)
		return r;
	r = kha_lab_kubeconfig(lab, entry, &path, &d);
	if (r == 0)
		r = kha_file_read_all(path, 1 << 20, &text, &len, &d);
	if (r < 0)
		return fail("kubeconfig", r, &d);
	fwrite(text, 1, len, stdout);
	return KHA_EXIT_OK;
}

/*
 * kha lab exec HOST -- CMD...: CMD inside the host's network namespace, KUBECONFIG set to the
 * admin kubeconfig of the host's entry and the lab's Kubernetes programs first on PATH.
 */
static int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "exec", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *kubeconfig = NULL, *path = NULL;
	const char *host, *netns;
	struct kha_diag d = {0};
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "+h", opts, &r)) != -1) {
		switch (opt) {
		case 'h':
			printf("Usage: kha lab exec [--dir DIR] HOST -- COMMAND [ARG...]\n\n"
			       "Runs COMMAND inside a host of a Kubernetes lab (its network namespace):\n"
			       "node, lb1, lb2, m1, m2, ... with KUBECONFIG set to the admin kubeconfig\n"
			       "of that host's entry (node: its kha proxy; lbN: the VIP; mN: its own\n"
			       "apiserver) and the lab's kubectl, etcdctl, ... first on PATH. Exits\n"
			       "with COMMAND's exit code.\n\n"
			       "Example:\n  kha lab exec node -- kubectl get nodes\n"
			       "  kha lab exec m1 -- etcdctl --endpoints https://127.0.0.1:2379 ...\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("exec", "bad flag");
		}
	}
	if (r)
		return r;
	if (optind >= argc)
		return usage_error("exec", "which host? (node, lb1, lb2, m1, ...)");
	host = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc)
		return usage_error("exec", "no COMMAND to run in %s", host);
	r = load(&c, false, &lab);
	if (r)
		return r;
	netns = kha_lab_host_netns(lab, host);
	if (!lab->k8s_bin || !netns) {
		if (!lab->k8s_bin)
			return fail("exec", -ENOENT,
				    &(struct kha_diag){.msg = "the lab runs no Kubernetes (made "
							      "without --kubernetes): no hosts"});
		return usage_error("exec", "no host '%s' in %s (node, lb1..lb%zu, m1..m%zu)", host,
				   c.dir, lab->n_lbs, lab->n_masters);
	}
	r = kha_lab_kubeconfig(lab, entry_of_host(host), &kubeconfig, &d);
	if (r < 0)
		return fail("exec", r, &d);
	{
		char nspath[128];
		int fd;

		snprintf(nspath, sizeof(nspath), "/run/netns/%s", netns);
		fd = open(nspath, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
			fprintf(stderr, "kha lab exec: cannot enter %s's namespace %s: %s\n", host,
				netns, strerror(errno));
			return KHA_EXIT_UNAVAILABLE;
		}
		close(fd);
	}
	if (asprintf(&path, "%s:%s", lab->k8s_bin,
		     getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin") < 0)
		return KHA_EXIT_SOFTWARE;
	setenv("KUBECONFIG", kubeconfig, 1);
	setenv("PATH", path, 1);
	setenv("KHA_LAB_HOST", host, 1);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "kha lab exec: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

/* kha lab up --help */
static void up_usage(void)
{
	printf("Usage: kha lab up [--dir DIR] [--members N] [--timeout D] "
	       "[--etcd PATH]\n"
	       "                  [--kha PATH] [--no-proxy] [--no-elect]\n"
	       "                  [--kubernetes [--k8s-bin DIR]\n"
	       "                   [--leader-elect-lease-duration D]\n"
	       "                   [--leader-elect-renew-deadline D]\n"
	       "                   [--leader-elect-retry-period D]]\n\n"
	       "With --kubernetes (root): the real control plane, as kubeadm's stacked\n"
	       "etcd HA topology, each host a network namespace on a lab bridge: every\n"
	       "master runs etcd 3.6, kube-apiserver, kube-controller-manager and\n"
	       "kube-scheduler (--leader-elect) and kha elect with the backups; a node\n"
	       "runs the node-local kha proxy (127.0.0.1:7443, discovery from\n"
	       "default/kubernetes); two load-balancer hosts run kha proxy and kha vip\n"
	       "(the VIP is the controlPlaneEndpoint). PKI and kubeconfigs by kubeadm's\n"
	       "phases. The programs come from --k8s-bin DIR or $KHA_K8S_BIN (make k8s\n"
	       "builds them). Each master is a Node with its control plane as static\n"
	       "pods: manifests in DIR/mN/manifests, mirror pods in kube-system. The\n"
	       "--leader-elect-* options set kube-controller-manager's and\n"
	       "kube-scheduler's (default 15s, 10s, 2s, client-go's; lease > renew\n"
	       "deadline > retry period). Then: kha lab exec node -- kubectl get nodes\n\n"
	       "Without it: the etcd-only lab on loopback, described next.\n"
	       "Creates a CA and certificates (members: serverAuth+clientAuth, SANs\n"
	       "127.0.0.1 and localhost; a client certificate for the tools), starts N\n"
	       "etcd members on free loopback ports with TLS and --client-cert-auth\n"
	       "for clients and peers and waits until they are healthy; then starts\n"
	       "each master's kha elect (election %s, TTL 3s), which runs\n"
	       "'kha etcd backup --every 5s --keep-last 5' into DIR/backups/MASTER only\n"
	       "while it leads, and the node's kha proxy in front of the members\n"
	       "(HTTPS checks of etcd's /health with the client certificate). Every\n"
	       "process is detached and recorded in DIR/lab.json; DIR/env is for\n"
	       "etcdctl. Waits until the proxy is ready and a master leads. Refuses a\n"
	       "DIR that already holds a lab.\n\n"
	       "  --dir DIR      lab directory (default ./lab)\n"
	       "  --members N    masters (etcd members), 1 to %d (default 3)\n"
	       "  --timeout D    how long to wait until ready (default 60s)\n"
	       "  --etcd PATH    etcd binary (default: etcd on PATH)\n"
	       "  --kha PATH     kha binary for the companions (default: this one)\n"
	       "  --no-proxy     no node entry point (no kha proxy)\n"
	       "  --no-elect     no kha elect and no backups on the masters\n\n"
	       "Exit codes: 0 up and ready; 64 usage or DIR taken; 69 etcd missing\n"
	       "or not ready in time (the failing process's log is shown).\n\n"
	       "Example:\n  kha lab up --members 3 && . lab/env && etcdctl endpoint "
	       "health\n",
	       KHA_LAB_ELECTION, KHA_LAB_MAX_MASTERS);
}

/* what kha lab up prints once the lab is ready: the leader, the members, how to reach them */
static void up_print(const struct common *c, const struct kha_lab *lab)
{
	kha_autofree char *leader = NULL;

	if (lab->election)
		kha_ignore(kha_lab_leader(lab, LEADER_TIMEOUT_US, &leader, NULL));
	if (lab->k8s_bin)
		printf("kha lab: %zu masters (etcd, kube-apiserver, kube-controller-manager, "
		       "kube-scheduler) ready in %s",
		       lab->n_masters, lab->dir);
	else
		printf("kha lab: %zu etcd members healthy in %s", lab->n_masters, lab->dir);
	if (lab->node.entry_url)
		printf("; entry point %s ready", lab->node.entry_url);
	if (lab->election)
		printf("; %s leads election %s (takes the backups)", leader ? leader : "nobody",
		       lab->election);
	printf("\n\n");
	print_members(lab);
	if (lab->k8s_bin)
		print_reach_k8s(c, lab);
	else
		print_reach(c, lab);
}

/* kha lab up's flags taken together (and KHA_K8S_BIN for --kubernetes): 0, or the exit code
 * of a usage error */
static int up_check(struct kha_lab_up_opts *o, const char *le_flag, bool kubernetes)
{
	struct kha_diag d = {0};

	if (le_flag && !kubernetes)
		return usage_error("up",
				   "%s needs --kubernetes (it sets the controller-manager's "
				   "and the scheduler's)",
				   le_flag);
	if (kha_lab_leader_elect_check(&o->leader_elect, &d) < 0)
		return usage_error("up", "%s", d.msg);
	if (kubernetes && !o->k8s_bin) {
		o->k8s_bin = getenv("KHA_K8S_BIN");
		if (!o->k8s_bin || !*o->k8s_bin)
			return usage_error("up",
					   "--kubernetes needs the programs: --k8s-bin DIR or "
					   "KHA_K8S_BIN=DIR (make k8s builds them and prints DIR)");
	}
	return 0;
}

static int cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"members", required_argument, NULL, OPT_MEMBERS},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"etcd", required_argument, NULL, OPT_ETCD},
		{"kha", required_argument, NULL, OPT_KHA},
		{"no-proxy", no_argument, NULL, OPT_NO_PROXY},
		{"no-elect", no_argument, NULL, OPT_NO_ELECT},
		{"kubernetes", no_argument, NULL, OPT_KUBERNETES},
		{"k8s-bin", required_argument, NULL, OPT_K8S_BIN},
		{"leader-elect-lease-duration", required_argument, NULL, OPT_LE_LEASE},
		{"leader-elect-renew-deadline", required_argument, NULL, OPT_LE_RENEW},
		{"leader-elect-retry-period", required_argument, NULL, OPT_LE_RETRY},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "up", .dir = DEFAULT_DIR};
	const char *le_flag = NULL;
	bool kubernetes = false;
	struct kha_lab_up_opts o = {.members = 3, .timeout_us = DEFAULT_TIMEOUT_US};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *failed_log = NULL;
	struct kha_diag d = {0};
	uint64_t v;
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_MEMBERS:
			if (kha_parse_u64(optarg, 1, KHA_LAB_MAX_MASTERS, &v) < 0)
				return usage_error("up",
						   "--members '%s': expected 1 to %d (3 or 5 "
						   "for a real quorum)",
						   optarg, KHA_LAB_MAX_MASTERS);
			o.members = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			if (parse_duration("up", "--timeout", optarg, &o.timeout_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_ETCD:
			o.etcd_bin = optarg;
			break;
		case OPT_KHA:
			o.kha_bin = optarg;
			break;
		case OPT_NO_PROXY:
			o.no_proxy = true;
			break;
		case OPT_NO_ELECT:
			o.no_elect = true;
			break;
		case OPT_KUBERNETES:
			kubernetes = true;
			break;
		case OPT_K8S_BIN:
			kubernetes = true;
			o.k8s_bin = optarg;
			break;
		case OPT_LE_LEASE:
		case OPT_LE_RENEW:
		case OPT_LE_RETRY: {
			uint64_t *dst = opt == OPT_LE_LEASE   ? &o.leader_elect.lease_duration_us
					: opt == OPT_LE_RENEW ? &o.leader_elect.renew_deadline_us
							      : &o.leader_elect.retry_period_us;

			le_flag = opt == OPT_LE_LEASE	? "--leader-elect-lease-duration"
				  : opt == OPT_LE_RENEW ? "--leader-elect-renew-deadline"
							: "--leader-elect-retry-period";
			if (parse_duration("up", le_flag, optarg, dst))
				return KHA_EXIT_USAGE;
			if (!*dst)
				return usage_error("up", "%s '%s': must be above 0", le_flag,
						   optarg);
			break;
		}
		case 'h':
			up_usage();
			return KHA_EXIT_OK;
		default:
			return usage_error("up", "bad flag");
		}
	}
	if (r)
		return r;
	if (optind < argc)
		return usage_error("up", "unexpected argument '%s'", argv[optind]);
	o.dir = c.dir;
	r = up_check(&o, le_flag, kubernetes);
	if (r)
		return r;
	r = kha_lab_up(&o, &lab, &failed_log, &d);
	if (r < 0) {
		int code = fail("up", r, &d);

		if (failed_log)
			print_log_tail(failed_log);
		if (r == -ETIMEDOUT || r == -ECHILD) {
			char hint[512];

			fprintf(stderr,
				"kha lab up: stopped what was started; logs kept in %s "
				"(remove with 'kha lab down%s')\n",
				c.dir, dir_hint(&c, hint, sizeof(hint)));
		}
		return code;
	}
	up_print(&c, lab);
	return KHA_EXIT_OK;
}

static const char *health_text(int h)
{
	return h > 0 ? "healthy" : h == 0 ? "unhealthy" : "unreachable";
}

/* The lab's state, checked live: health, processes, the entry's view, the leader. */
struct live {
	int health[KHA_LAB_MAX_MASTERS];
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
	int code;
};

static void live_check_k8s(struct kha_lab *lab, struct live *lv)
{
	for (size_t i = 0; i < lab->n_masters; i++) {
		char base[64];

		snprintf(base, sizeof(base), "https://%s:6443", lab->masters[i].address);
		lv->api_ready[i] = kha_lab_apiserver_ready(lab, base);
		lv->n_api_ready += lv->api_ready[i];
	}
	kha_ignore(kha_lab_lease_holder(lab, "kube-controller-manager", lv->cm_holder,
					sizeof(lv->cm_holder)));
	kha_ignore(kha_lab_lease_holder(lab, "kube-scheduler", lv->sched_holder,
					sizeof(lv->sched_holder)));
	lv->vip_ready = lab->n_lbs && kha_lab_apiserver_ready(lab, lab->lbs[0].entry_url);
}

/* LEADER when the Lease holder's identity ("m1_<uuid>") names master m. */
static const char *lease_role(const char *holder, const struct kha_lab_master *m, bool on)
{
	size_t n = strlen(m->name);

	if (!on)
		return "-";
	if (!holder[0])
		return "unknown";
	return strncmp(holder, m->name, n) == 0 && holder[n] == '_' ? "LEADER" : "standby";
}

static void live_check(struct kha_lab *lab, struct live *lv)
{
	struct kha_lab_proc *proxy = kha_lab_node_proxy(lab);
	int worst;

	kha_lab_health(lab, STATUS_TIMEOUT_US, lv->health);
	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];

		lv->running[i] = true;
		for (size_t j = 0; j < m->n_procs; j++)
			lv->running[i] &= kha_lab_proc_running(&m->procs[j]);
		lv->n_running += lv->running[i];
		lv->n_healthy += lv->health[i] == 1;
	}
	lv->proxy_running = proxy && kha_lab_proc_running(proxy);
	if (proxy)
		kha_lab_entry_status(lab, STATUS_TIMEOUT_US, &lv->entry);
	if (lab->election)
		lv->leader_known = kha_lab_leader(lab, LEADER_TIMEOUT_US, &lv->leader, NULL) == 0;
	if (lv->leader) {
		struct kha_lab_master *lm = kha_lab_find_master(lab, lv->leader);
		struct kha_lab_proc *el = lm ? kha_lab_master_proc(lm, KHA_LAB_PROC_ELECT) : NULL;

		lv->leader_gone = el && (!kha_lab_proc_running(el) || lm->frozen);
		lv->leader_ttl_s = -1;
		if (lv->leader_gone)
			kha_ignore(kha_lab_leader_lease_ttl(lab, LEADER_TIMEOUT_US, lv->leader,
							    &lv->leader_ttl_s));
	}
	if (lab->k8s_bin)
		live_check_k8s(lab, lv);
	worst = lv->n_healthy == lab->n_masters	     ? KHA_EXIT_OK
		: lv->n_healthy > lab->n_masters / 2 ? KHA_EXIT_DEGRADED
						     : KHA_EXIT_CRITICAL;
	/* a companion down: it works, but a guarantee is gone (no backups, no failover) */
	if (worst == KHA_EXIT_OK &&
	    (lv->n_running < lab->n_masters || (lab->election && !lv->leader)))
		worst = KHA_EXIT_DEGRADED;
	/* a Kubernetes lab: an apiserver or a leader missing costs a guarantee */
	if (worst == KHA_EXIT_OK && lab->k8s_bin &&
	    (lv->n_api_ready < lab->n_masters || !lv->cm_holder[0] || !lv->sched_holder[0]))
		worst = KHA_EXIT_DEGRADED;
	/* no entry point: the node cannot reach the masters at all */
	if (proxy && (!lv->proxy_running || !lv->entry.ready))
		worst = KHA_EXIT_CRITICAL;
	if (lab->k8s_bin && (lv->n_api_ready == 0 || (lab->n_lbs && !lv->vip_ready)))
		worst = KHA_EXIT_CRITICAL;
	lv->code = worst;
}

static const char *elect_role(const struct kha_lab *lab, const struct live *lv,
			      const struct kha_lab_master *m, bool running)
{
	if (!running)
		return "-";
	if (!lv->leader_known)
		return "unknown";
	return lv->leader && strcmp(lv->leader, m->name) == 0 ? "LEADER" : "standby";
}

/* Whether m's kha elect runs its backup now (it has descendants). */
static bool backup_running(struct kha_lab_master *m)
{
	struct kha_lab_proc *el = kha_lab_master_proc(m, KHA_LAB_PROC_ELECT);

	return el && kha_lab_proc_running(el) && kha_lab_proc_descendants(el) > 0;
}

static json_t *procs_json(const struct kha_lab_proc *procs, size_t n)
{
	json_t *a = json_array();

	for (size_t j = 0; j < n; j++)
		json_array_append_new(
			a, json_pack("{s:s, s:s, s:I, s:b, s:s}", "name", procs[j].name, "kind",
				     procs[j].name, "pid", (json_int_t)procs[j].pid, "running",
				     kha_lab_proc_running(&procs[j]), "log", procs[j].log_path));
	return a;
}

static void status_json(struct kha_lab *lab, const struct live *lv)
{
	static const char *const verdicts[] = {"healthy", "degraded", "critical"};
	kha_autofree char *eps = kha_lab_endpoints(lab);
	json_t *masters = json_array(), *root;

	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];
		struct kha_lab_proc *etcd =
			kha_lab_master_proc((struct kha_lab_master *)m, KHA_LAB_PROC_ETCD);
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "name", m->name,
				      "client_url", m->client_url, "peer_url", m->peer_url,
				      "data_dir", m->data_dir, "health", health_text(lv->health[i]),
				      "running", lv->running[i], "etcd_running",
				      etcd && kha_lab_proc_running(etcd), "frozen", m->frozen);

		if (lab->node.entry_url)
			json_object_set_new(o, "entry_state",
					    lv->entry.state[i][0] ? json_string(lv->entry.state[i])
								  : json_null());
		if (m->backup_dir) {
			json_object_set_new(o, "backup_dir", json_string(m->backup_dir));
			json_object_set_new(
				o, "leader",
				json_boolean(lv->leader && strcmp(lv->leader, m->name) == 0));
			json_object_set_new(
				o, "backup_running",
				json_boolean(backup_running((struct kha_lab_master *)m)));
		}
		json_object_set_new(o, "processes", procs_json(m->procs, m->n_procs));
		json_array_append_new(masters, o);
	}
	root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o}", "dir", lab->dir,
			 "endpoints", eps ? eps : "", "ca_cert", lab->ca_cert, "client_cert",
			 lab->client_cert, "client_key", lab->client_key, "members",
			 (json_int_t)lab->n_masters, "running", (json_int_t)lv->n_running,
			 "healthy", (json_int_t)lv->n_healthy, "verdict", verdicts[lv->code],
			 "masters", masters);
	/* the old name of verdict, kept for scripts */
	json_object_set_new(root, "status", json_string(verdicts[lv->code]));
	if (lab->node.entry_url)
		json_object_set_new(
			root, "node",
			json_pack("{s:s, s:s, s:b, s:b, s:b, s:I, s:o}", "entry_url",
				  lab->node.entry_url, "metrics_addr", lab->node.metrics_addr,
				  "running", lv->proxy_running, "answered", lv->entry.answered,
				  "ready", lv->entry.ready, "backends_up", (json_int_t)lv->entry.up,
				  "processes", procs_json(lab->node.procs, lab->node.n_procs)));
	else
		json_object_set_new(root, "node", json_null());
	if (lab->election)
		json_object_set_new(root, "election",
				    json_pack("{s:s, s:o, s:b}", "name", lab->election, "leader",
					      lv->leader ? json_string(lv->leader) : json_null(),
					      "readable", lv->leader_known));
	else
		json_object_set_new(root, "election", json_null());
	if (lab->k8s_bin) {
		const struct kha_lab_leader_elect *le = &lab->leader_elect;
		char a[32], b[32], c[32];

		json_object_set_new(
			root, "leader_elect",
			json_pack("{s:s, s:s, s:s}", "lease_duration",
				  kha_format_duration(a, sizeof(a), le->lease_duration_us),
				  "renew_deadline",
				  kha_format_duration(b, sizeof(b), le->renew_deadline_us),
				  "retry_period",
				  kha_format_duration(c, sizeof(c), le->retry_period_us)));
	}
	kha_ignore(cmd_print_json(root));
}

/* How the entry sees master i; "up" for a process that is not serving is news not yet seen. */
static const char *entry_text(const struct live *lv, size_t i, bool serving)
{
	const char *st = lv->entry.state[i];

	if (!st[0])
		return "?";
	if (!serving && strcmp(st, "up") == 0)
		return "still up: its checks have not noticed yet";
	return st;
}

/* one row of the status table: process p of master i */
static void status_master_row(const struct kha_lab *lab, const struct live *lv, size_t i,
			      const struct kha_lab_proc *p)
{
	const struct kha_lab_master *m = &lab->masters[i];
	bool on = kha_lab_proc_running(p);
	char pid[16] = "-", detail[256];
	const char *state = !on ? "stopped" : m->frozen ? "FROZEN" : "running";

	if (p->pid > 0)
		snprintf(pid, sizeof(pid), "%d", (int)p->pid);
	if (p->kind == KHA_LAB_PROC_APISERVER) {
		printf("%-6s %-23s %-8s %-8s %-12s https://%s:6443  (entry: %s)\n", m->name,
		       p->name, pid, state, lv->api_ready[i] ? "ready" : "NOT READY", m->address,
		       entry_text(lv, i, on && !m->frozen));
	} else if (p->kind == KHA_LAB_PROC_CONTROLLER_MANAGER ||
		   p->kind == KHA_LAB_PROC_SCHEDULER) {
		const char *holder =
			p->kind == KHA_LAB_PROC_SCHEDULER ? lv->sched_holder : lv->cm_holder;

		printf("%-6s %-23s %-8s %-8s %-12s Lease kube-system/%s\n", m->name, p->name, pid,
		       state, lease_role(holder, m, on), p->name);
	} else if (p->kind == KHA_LAB_PROC_ETCD) {
		snprintf(detail, sizeof(detail), "%s", m->client_url);
		if (lab->node.entry_url)
			snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
				 "  (entry: %s)", entry_text(lv, i, on && !m->frozen));
		printf("%-6s %-23s %-8s %-8s %-12s %s\n", m->name, p->name, pid, state,
		       health_text(lv->health[i]), detail);
	} else if (lv->leader_gone && lv->leader && strcmp(lv->leader, m->name) == 0) {
		/* stopped or frozen without resigning: still the leader on record */
		if (lv->leader_ttl_s >= 0)
			snprintf(detail, sizeof(detail),
				 "stopped, still on record: its election lease expires "
				 "in %llds",
				 (long long)lv->leader_ttl_s);
		else
			snprintf(detail, sizeof(detail),
				 "stopped, still on record until its election lease "
				 "expires");
		printf("%-6s %-23s %-8s %-8s %-12s %s -> %s\n", m->name, p->name, pid, state,
		       "LEADER", detail, m->backup_dir);
	} else {
		const char *role = elect_role(lab, lv, m, on);

		bool leads = strcmp(role, "LEADER") == 0;

		snprintf(detail, sizeof(detail), "%s",
			 !leads			       ? "waits to take over the backups"
			 : kha_lab_proc_descendants(p) ? "runs kha etcd backup"
						       : "leads; its backup is not running (yet)");
		printf("%-6s %-23s %-8s %-8s %-12s %s -> %s\n", m->name, p->name, pid, state, role,
		       detail, m->backup_dir);
	}
}

static void status_table(struct kha_lab *lab, const struct live *lv)
{
	static const char *const verdicts[] = {"healthy", "degraded", "critical"};

	printf("lab %s: %zu masters, %zu running, %zu etcd members healthy", lab->dir,
	       lab->n_masters, lv->n_running, lv->n_healthy);
	if (lab->election)
		printf("; backup leader: %s", !lv->leader_known ? "unknown (etcd did not answer)"
					      : lv->leader	? lv->leader
								: "nobody");
	if (lv->leader_gone) {
		/* it did not resign: the standbys wait for its election lease to run out */
		if (lv->leader_ttl_s >= 0)
			printf(" (stopped: its election lease expires in %llds, then a standby "
			       "takes over)",
			       (long long)lv->leader_ttl_s);
		else
			printf(" (stopped: its election lease is running out)");
	}
	printf("\nverdict: %s (exit %d)\n\n", verdicts[lv->code], lv->code);
	printf("%-6s %-23s %-8s %-8s %-12s %s\n", "OWNER", "PROC", "PID", "STATE", "HEALTH",
	       "DETAIL");
	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];

		for (size_t j = 0; j < m->n_procs; j++)
			status_master_row(lab, lv, i, &m->procs[j]);
	}
	for (size_t j = 0; j < lab->node.n_procs; j++) {
		const struct kha_lab_proc *p = &lab->node.procs[j];
		char pid[16] = "-";

		if (p->pid > 0)
			snprintf(pid, sizeof(pid), "%d", (int)p->pid);
		printf("%-6s %-23s %-8s %-8s %-12s %s -> %u of %zu masters up\n", "node", p->name,
		       pid, lv->proxy_running ? "running" : "stopped",
		       !lv->entry.answered ? "unreachable"
		       : lv->entry.ready   ? "ready"
					   : "NOT READY",
		       lab->node.entry_url, lv->entry.up, lab->n_masters);
	}
	for (size_t i = 0; i < lab->n_lbs; i++) {
		for (size_t j = 0; j < lab->lbs[i].n_procs; j++) {
			const struct kha_lab_proc *p = &lab->lbs[i].procs[j];
			char pid[16] = "-";

			if (p->pid > 0)
				snprintf(pid, sizeof(pid), "%d", (int)p->pid);
			printf("%-6s %-23s %-8s %-8s %-12s %s\n", lab->lbs[i].name, p->name, pid,
			       kha_lab_proc_running(p) ? "running" : "stopped", "-",
			       p->kind == KHA_LAB_PROC_VIP ? lab->vip : lab->lbs[i].entry_url);
		}
	}
	if (lab->n_lbs)
		printf("\nThe VIP entry %s: %s\n", lab->lbs[0].entry_url,
		       lv->vip_ready ? "ready (reaches a ready apiserver)" : "NOT READY");
	if (lab->k8s_bin) {
		const struct kha_lab_leader_elect *le = &lab->leader_elect;
		char a[32], b[32], c[32];

		printf("kube-controller-manager and kube-scheduler leader election: lease %s, "
		       "renew deadline %s, retry period %s\n",
		       kha_format_duration(a, sizeof(a), le->lease_duration_us),
		       kha_format_duration(b, sizeof(b), le->renew_deadline_us),
		       kha_format_duration(c, sizeof(c), le->retry_period_us));
	}
	if (lab->node.entry_url && !lab->k8s_bin)
		printf("\nThe entry point fronts the etcd members' client API (no kube-apiserver in "
		       "the lab).\n");
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "status", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct live lv = {0};
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "ho:", opts, &r)) != -1) {
		if (opt == 'h') {
			printf("Usage: kha lab status [--dir DIR] [-o json]\n\n"
			       "Shows every process of every master and of the node: PID, whether it\n"
			       "still runs (checked by PID and start time) or is frozen; each etcd\n"
			       "member's health over TLS and how the node's proxy sees it; which\n"
			       "master leads the backup election; whether the entry point is ready.\n\n"
			       "Exit codes: 0 everything healthy; 1 degraded (a member or a companion\n"
			       "down, or nobody leads: it works, one more failure hurts); 2 critical\n"
			       "(a majority of members unhealthy: quorum lost; or the entry point is\n"
			       "not ready); 69 no lab in DIR.\n\n"
			       "Example:\n  kha lab status -o json\n");
			return KHA_EXIT_OK;
		}
		return usage_error("status", "bad flag");
	}
	if (r)
		return r;
	if (optind < argc)
		return usage_error("status", "unexpected argument '%s'", argv[optind]);
	r = load(&c, false, &lab);
	if (r)
		return r;
	live_check(lab, &lv);
	if (c.json)
		status_json(lab, &lv);
	else
		status_table(lab, &lv);
	free(lv.leader);
	return lv.code;
}

/* How a member subcommand picks its master. */
enum pick {
	PICK_NAME,
	PICK_LEADER,	  /* the master whose kha elect leads */
	PICK_FOLLOWER,	  /* a running master that does not lead (the last one) */
	PICK_RAFT_LEADER, /* the master whose etcd member is the Raft leader */
	PICK_ALL,	  /* every master that needs it */
};

/* Resolves --leader / --follower to a master; prints the error and sets *code on failure. */
static struct kha_lab_master *pick_master(const struct common *c, struct kha_lab *lab,
					  enum pick pick, int *code)
{
	kha_autofree char *leader = NULL;
	struct kha_diag d = {0};
	int r;

	*code = KHA_EXIT_OK;
	if (pick == PICK_RAFT_LEADER)
		r = kha_lab_raft_leader(lab, LEADER_TIMEOUT_US, &leader, &d);
	else
		r = kha_lab_leading_master(lab, LEADER_TIMEOUT_US, &leader, &d);
	if (r < 0) {
		*code = fail(c->sub, r, &d);
		return NULL;
	}
	if (pick == PICK_LEADER || pick == PICK_RAFT_LEADER) {
		struct kha_lab_master *m = leader ? kha_lab_find_master(lab, leader) : NULL;

		if (!m) {
			fprintf(stderr, "kha lab %s: nobody leads %s right now%s%s%s\n", c->sub,
				lab->election ? lab->election : "etcd (no Raft leader)",
				leader ? " (the leader is '" : "", leader ? leader : "",
				leader ? "', not a master of the lab)" : "");
			*code = KHA_EXIT_UNAVAILABLE;
		}
		return m;
	}
	for (size_t i = lab->n_masters; i-- > 0;) {
		struct kha_lab_master *m = &lab->masters[i];
		struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);

		if (m->frozen || !etcd || !kha_lab_proc_running(etcd))
			continue;
		if (!leader || strcmp(leader, m->name) != 0)
			return m;
	}
	fprintf(stderr, "kha lab %s: no running master that does not lead%s%s\n", c->sub,
		leader ? ": only " : "", leader ? leader : "");
	*code = KHA_EXIT_UNAVAILABLE;
	return NULL;
}

/* "etcd pid 123, elect pid 456" of m's running processes, into buf. */
static const char *pids_text(const struct kha_lab_master *m, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t j = 0; j < m->n_procs; j++) {
		size_t used = strlen(buf);

		if (m->procs[j].pid > 0)
			snprintf(buf + used, size - used, "%s%s pid %d", used ? ", " : "",
				 m->procs[j].name, (int)m->procs[j].pid);
	}
	return buf;
}

static bool master_running(const struct kha_lab_master *m)
{
	for (size_t j = 0; j < m->n_procs; j++)
		if (!kha_lab_proc_running(&m->procs[j]))
			return false;
	return true;
}

static bool master_any_running(const struct kha_lab_master *m)
{
	for (size_t j = 0; j < m->n_procs; j++)
		if (kha_lab_proc_running(&m->procs[j]))
			return true;
	return false;
}

static int start_one(const struct common *c, struct kha_lab *lab, struct kha_lab_master *m,
		     uint64_t timeout_us)
{
	struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);
	struct kha_diag d = {0};
	char pids[256];
	int r;

	if (master_running(m)) {
		printf("%s is already running (%s)\n", m->name, pids_text(m, pids, sizeof(pids)));
		return KHA_EXIT_OK;
	}
	r = kha_lab_master_start(lab, m, timeout_us, &d);
	if (r < 0) {
		int code = fail(c->sub, r, &d);

		if (etcd && (r == -ECHILD || r == -ETIMEDOUT))
			print_log_tail(etcd->log_path);
		return code;
	}
	printf("%s started (%s), answering on %s\n", m->name, pids_text(m, pids, sizeof(pids)),
	       m->client_url);
	return KHA_EXIT_OK;
}

static int stop_one(const struct common *c, struct kha_lab *lab, struct kha_lab_master *m,
		    uint64_t grace_us, bool kill)
{
	struct kha_diag d = {0};
	char pids[256];
	int r;

	if (!master_any_running(m)) {
		printf("%s is not running\n", m->name);
		/* record it as stopped, in case it died on its own */
		r = kha_lab_master_stop(lab, m, 0, &d);
		return r < 0 ? fail(c->sub, r, &d) : KHA_EXIT_OK;
	}
	pids_text(m, pids, sizeof(pids));
	r = kha_lab_master_stop(lab, m, kill ? 0 : grace_us, &d);
	if (r < 0)
		return fail(c->sub, r, &d);
	printf("%s stopped (%s: %s)\n", m->name, pids,
	       kill ? "SIGKILL to them and everything they started" : "SIGTERM");
	return KHA_EXIT_OK;
}

static int freeze_one(const struct common *c, struct kha_lab *lab, struct kha_lab_master *m,
		      bool freeze)
{
	struct kha_diag d = {0};
	char pids[256];
	int r;

	if (!master_any_running(m)) {
		printf("%s is not running: nothing to %s\n", m->name, freeze ? "freeze" : "thaw");
		return freeze ? KHA_EXIT_UNAVAILABLE : KHA_EXIT_OK;
	}
	pids_text(m, pids, sizeof(pids));
	r = kha_lab_master_freeze(lab, m, freeze, &d);
	if (r < 0)
		return fail(c->sub, r, &d);
	printf("%s %s (%s: %s to them and everything they started)\n", m->name,
	       freeze ? "frozen" : "thawed", pids, freeze ? "SIGSTOP" : "SIGCONT");
	return KHA_EXIT_OK;
}

enum member_op { OP_STOP, OP_START, OP_FREEZE, OP_THAW };

static void member_help(enum member_op op)
{
	switch (op) {
	case OP_START:
		printf("Usage: kha lab start-member (NAME | --all) [--dir DIR] [--timeout D]\n\n"
		       "Restarts a stopped master on its data: its etcd member (--initial-cluster-\n"
		       "state existing) and, once it answers on its client URL, its kha elect\n"
		       "(default --timeout 60s). Alone it may still lack a quorum: 'kha lab wait'\n"
		       "waits for health. Starting a running master does nothing. --all starts\n"
		       "every master that has a stopped process.\n\n"
		       "Example:\n  kha lab start-member m2\n");
		return;
	case OP_STOP:
		printf("Usage: kha lab stop-member (NAME | --leader | --follower | --raft-leader)\n"
		       "                           [--dir DIR]\n"
		       "                           [--grace D] [--kill]\n\n"
		       "Stops every process of a master (etcd, kha elect and the backup it runs):\n"
		       "SIGTERM, then SIGKILL if still running after --grace (default 10s);\n"
		       "--kill sends SIGKILL to all of them at once, like a power cut. --leader\n"
		       "picks the master whose kha elect leads the backup election (in a lab made\n"
		       "with --no-elect: etcd's Raft leader), --follower a running master that\n"
		       "does not, --raft-leader the master whose etcd member is the Raft leader.\n"
		       "Only processes the lab started, and what\n"
		       "they started, are signalled (PID and start time checked).\n\n"
		       "Example:\n  kha lab stop-member --leader --kill\n");
		return;
	case OP_FREEZE:
		printf("Usage: kha lab freeze-member (NAME | --leader | --follower | --raft-leader)\n"
		       "                             [--dir DIR]\n\n"
		       "Sends SIGSTOP to every process of a master and everything they started:\n"
		       "a hung machine. Its ports still accept connections that nobody serves,\n"
		       "its leases stop being renewed. 'kha lab thaw-member' resumes it.\n\n"
		       "Example:\n  kha lab freeze-member m3 && sleep 5 && kha lab thaw-member m3\n");
		return;
	case OP_THAW:
		printf("Usage: kha lab thaw-member (NAME | --all) [--dir DIR]\n\n"
		       "Sends SIGCONT to every process of a master (--all: of every frozen one).\n\n"
		       "Example:\n  kha lab thaw-member --all\n");
		return;
	}
}

/* start-member --all, thaw-member --all: every master that needs it, in order, until one fails */
static int member_all(const struct common *c, struct kha_lab *lab, enum member_op op,
		      uint64_t timeout_us)
{
	int code = KHA_EXIT_OK;
	bool any = false;

	for (size_t i = 0; i < lab->n_masters && code == KHA_EXIT_OK; i++) {
		struct kha_lab_master *x = &lab->masters[i];

		if (op == OP_START && !master_running(x)) {
			code = start_one(c, lab, x, timeout_us);
			any = true;
		} else if (op == OP_THAW && x->frozen) {
			code = freeze_one(c, lab, x, false);
			any = true;
		}
	}
	if (!any)
		printf("every master is %s\n", op == OP_START ? "running" : "thawed");
	return code;
}

static int cmd_member(int argc, char **argv, enum member_op op)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"kill", no_argument, NULL, OPT_KILL},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"leader", no_argument, NULL, OPT_LEADER},
		{"follower", no_argument, NULL, OPT_FOLLOWER},
		{"raft-leader", no_argument, NULL, OPT_RAFT_LEADER},
		{"all", no_argument, NULL, OPT_ALL},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const subs[] = {"stop-member", "start-member", "freeze-member",
					   "thaw-member"};
	struct common c = {.sub = subs[op], .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *m = NULL;
	uint64_t grace_us = DEFAULT_GRACE_US, timeout_us = DEFAULT_TIMEOUT_US;
	enum pick pick = PICK_NAME;
	bool kill = false, picked = false;
	int opt, r, code = KHA_EXIT_OK;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_GRACE:
		case OPT_KILL:
			if (op != OP_STOP)
				return usage_error(c.sub, "--%s is a flag of stop-member",
						   opt == OPT_KILL ? "kill" : "grace");
			if (opt == OPT_KILL)
				kill = true;
			else if (parse_duration(c.sub, "--grace", optarg, &grace_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_TIMEOUT:
			if (op != OP_START)
				return usage_error(c.sub, "--timeout is a flag of start-member");
			if (parse_duration(c.sub, "--timeout", optarg, &timeout_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_LEADER:
		case OPT_FOLLOWER:
		case OPT_RAFT_LEADER:
			if (op == OP_START || op == OP_THAW)
				return usage_error(c.sub, "--%s: name the master, or --all",
						   opt == OPT_LEADER	 ? "leader"
						   : opt == OPT_FOLLOWER ? "follower"
									 : "raft-leader");
			if (picked)
				return usage_error(c.sub, "give one of NAME, --leader, --follower, "
							  "--raft-leader");
			pick = opt == OPT_LEADER     ? PICK_LEADER
			       : opt == OPT_FOLLOWER ? PICK_FOLLOWER
						     : PICK_RAFT_LEADER;
			picked = true;
			break;
		case OPT_ALL:
			if (op == OP_STOP || op == OP_FREEZE)
				return usage_error(c.sub, "--all: not for %s (use 'kha lab down')",
						   c.sub);
			pick = PICK_ALL;
			picked = true;
			break;
		case 'h':
			member_help(op);
			return KHA_EXIT_OK;
		default:
			return usage_error(c.sub, "bad flag");
		}
	}
	if (r)
		return r;
	if (optind < argc && picked)
		return usage_error(c.sub, "give either a master's name or --%s",
				   pick == PICK_ALL	 ? "all"
				   : pick == PICK_LEADER ? "leader"
							 : "follower");
	if (optind >= argc && !picked)
		return usage_error(c.sub, "which master? (e.g. 'kha lab %s m1'%s)", c.sub,
				   op == OP_START || op == OP_THAW ? " or --all" : " or --leader");
	if (optind + 1 < argc)
		return usage_error(c.sub, "unexpected argument '%s'", argv[optind + 1]);
	r = load(&c, true, &lab);
	if (r)
		return r;
	if (pick == PICK_NAME) {
		m = find_member(&c, lab, argv[optind]);
		if (!m)
			return KHA_EXIT_USAGE;
	} else if (pick != PICK_ALL) {
		m = pick_master(&c, lab, pick, &code);
		if (!m)
			return code;
	}
	if (pick == PICK_ALL)
		return member_all(&c, lab, op, timeout_us);
	switch (op) {
	case OP_STOP:
		return stop_one(&c, lab, m, grace_us, kill);
	case OP_START:
		return start_one(&c, lab, m, timeout_us);
	case OP_FREEZE:
	case OP_THAW:
		return freeze_one(&c, lab, m, op == OP_FREEZE);
	}
	return KHA_EXIT_SOFTWARE;
}

/* ---- one process, one host ---- */

/* kha lab stop-process --help */
static void stop_process_usage(void)
{
	printf("Usage: kha lab stop-process (MASTER | --leader | --follower |\n"
	       "                            --raft-leader) PROCESS [--kill] [--grace D]\n"
	       "       kha lab stop-process --lease-holder COMPONENT [--kill] [--grace D]\n"
	       "                            [--dir DIR]\n\n"
	       "Stops one process of a master (etcd, kube-apiserver,\n"
	       "kube-controller-manager, kube-scheduler, elect) and what it started:\n"
	       "SIGTERM, SIGKILL after --grace (default 10s); --kill: SIGKILL at once.\n"
	       "A kube-apiserver stopped with SIGTERM turns its /readyz unready for\n"
	       "--shutdown-delay-duration before it closes its listener. --lease-holder\n"
	       "picks the master whose COMPONENT holds its Lease in kube-system (read\n"
	       "through the node's entry) and stops that COMPONENT. 'kha lab start-member\n"
	       "--all' starts it again.\n\n"
	       "Example:\n  kha lab stop-process --lease-holder kube-controller-manager --kill\n"
	       "  kha lab stop-process m2 kube-apiserver && kha lab start-member m2\n");
}

/* the master whose COMPONENT holds its Lease in kube-system, read through the node's entry;
 * NULL (said on stderr) when it cannot be read or nobody among the masters holds it */
static struct kha_lab_master *lease_holder_master(struct kha_lab *lab, const char *component)
{
	struct kha_lab_master *m;
	char holder[256] = "";
	size_t n;

	if (kha_lab_lease_holder(lab, component, holder, sizeof(holder)) < 0) {
		fprintf(stderr,
			"kha lab stop-process: cannot read the Lease kube-system/%s through "
			"the node's entry\n",
			component);
		return NULL;
	}
	/* the identity is "<host>_<uuid>", the host a master's name */
	n = strcspn(holder, "_");
	holder[n] = '\0';
	m = n ? kha_lab_find_master(lab, holder) : NULL;
	if (!m)
		fprintf(stderr, "kha lab stop-process: nobody holds the Lease of %s%s%s\n",
			component, n ? " among the masters: " : "", holder);
	return m;
}

static int cmd_stop_process(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"kill", no_argument, NULL, OPT_KILL},
		{"leader", no_argument, NULL, OPT_LEADER},
		{"follower", no_argument, NULL, OPT_FOLLOWER},
		{"raft-leader", no_argument, NULL, OPT_RAFT_LEADER},
		{"lease-holder", required_argument, NULL, OPT_LEASE_HOLDER},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "stop-process", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *m = NULL;
	struct kha_lab_proc *p = NULL;
	const char *component = NULL, *pname;
	uint64_t grace_us = DEFAULT_GRACE_US;
	enum pick pick = PICK_NAME;
	struct kha_diag d = {0};
	bool kill = false;
	int opt, r, code = 0, want_args;
	pid_t pid;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_KILL:
			kill = true;
			break;
		case OPT_GRACE:
			if (parse_duration(c.sub, "--grace", optarg, &grace_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_LEADER:
		case OPT_FOLLOWER:
		case OPT_RAFT_LEADER:
		case OPT_LEASE_HOLDER:
			if (pick != PICK_NAME)
				return usage_error(c.sub,
						   "give one of MASTER, --leader, --follower, "
						   "--raft-leader, --lease-holder");
			pick = opt == OPT_LEADER	? PICK_LEADER
			       : opt == OPT_FOLLOWER	? PICK_FOLLOWER
			       : opt == OPT_RAFT_LEADER ? PICK_RAFT_LEADER
							: PICK_ALL; /* the Lease's holder */
			if (opt == OPT_LEASE_HOLDER)
				component = optarg;
			break;
		case 'h':
			stop_process_usage();
			return KHA_EXIT_OK;
		default:
			return usage_error(c.sub, "bad flag");
		}
	}
	if (r)
		return r;
	want_args = (pick == PICK_NAME) + (component == NULL);
	if (argc - optind != want_args)
		return usage_error(c.sub, "%s",
				   want_args == 2   ? "give MASTER and PROCESS"
				   : want_args == 1 ? "give the PROCESS"
						    : "no argument with --lease-holder");
	pname = component ? component : argv[argc - 1];
	r = load(&c, true, &lab);
	if (r)
		return r;
	if (pick == PICK_NAME) {
		m = find_member(&c, lab, argv[optind]);
		if (!m)
			return KHA_EXIT_USAGE;
	} else if (component) {
		m = lease_holder_master(lab, component);
		if (!m)
			return KHA_EXIT_UNAVAILABLE;
	} else {
		m = pick_master(&c, lab, pick, &code);
		if (!m)
			return code;
	}
	for (size_t i = 0; i < m->n_procs && !p; i++)
		if (strcmp(m->procs[i].name, pname) == 0)
			p = &m->procs[i];
	if (!p)
		return usage_error(c.sub, "%s runs no process '%s'", m->name, pname);
	pid = p->pid;
	if (!kha_lab_proc_running(p)) {
		printf("%s %s is not running\n", m->name, p->name);
		return KHA_EXIT_OK;
	}
	r = kha_lab_proc_stop(lab, p, kill ? 0 : grace_us, &d);
	if (r < 0)
		return fail(c.sub, r, &d);
	printf("%s %s stopped (pid %d: %s)\n", m->name, p->name, (int)pid,
	       kill ? "SIGKILL" : "SIGTERM");
	return KHA_EXIT_OK;
}

static int cmd_host(int argc, char **argv, bool stop)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"kill", no_argument, NULL, OPT_KILL},
		{"vip-holder", no_argument, NULL, OPT_VIP_HOLDER},
		{"all", no_argument, NULL, OPT_ALL},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = stop ? "stop-host" : "start-host", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *holder = NULL;
	uint64_t grace_us = DEFAULT_GRACE_US;
	struct kha_diag d = {0};
	bool kill = false, vip = false, all = false;
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_KILL:
		case OPT_GRACE:
		case OPT_VIP_HOLDER:
			if (!stop)
				return usage_error(c.sub, "that is a flag of stop-host");
			if (opt == OPT_KILL)
				kill = true;
			else if (opt == OPT_VIP_HOLDER)
				vip = true;
			else if (parse_duration(c.sub, "--grace", optarg, &grace_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_ALL:
			if (stop)
				return usage_error(c.sub, "--all: not for stop-host");
			all = true;
			break;
		case 'h':
			printf("Usage: kha lab stop-host (NAME | --vip-holder) [--kill] [--grace D]\n"
			       "       kha lab start-host (NAME | --all)       [--dir DIR]\n\n"
			       "Stops every process of a host of a Kubernetes lab that is not a master\n"
			       "(lb1, lb2: kha proxy and kha vip; node: its kha proxy), SIGTERM then\n"
			       "SIGKILL after --grace (default 10s), --kill: SIGKILL at once (a power\n"
			       "cut). --vip-holder picks the load balancer holding the VIP.\n"
			       "start-host starts them again.\n\n"
			       "Example:\n  kha lab stop-host --vip-holder --kill; kha lab start-host --all\n");
			return KHA_EXIT_OK;
		default:
			return usage_error(c.sub, "bad flag");
		}
	}
	if (r)
		return r;
	if (argc - optind != (vip || all ? 0 : 1))
		return usage_error(c.sub, "which host? (e.g. 'kha lab %s lb1')", c.sub);
	r = load(&c, true, &lab);
	if (r)
		return r;
	if (vip) {
		r = kha_lab_vip_holder(lab, &holder, &d);
		if (r < 0)
			return fail(c.sub, r, &d);
		if (!holder) {
			fprintf(stderr, "kha lab stop-host: no load balancer holds the VIP\n");
			return KHA_EXIT_UNAVAILABLE;
		}
	}
	for (size_t i = 0; i < (all ? lab->n_lbs + 1 : 1); i++) {
		struct kha_lab_node *h = all ? (i < lab->n_lbs ? &lab->lbs[i] : &lab->node)
					     : kha_lab_find_host(lab, vip ? holder : argv[optind]);
		bool running = false;

		if (!h)
			return usage_error(c.sub, "no host '%s' (lb1, lb2, node)", argv[optind]);
		for (size_t j = 0; j < h->n_procs; j++)
			running |= kha_lab_proc_running(&h->procs[j]);
		if (stop) {
			r = kha_lab_host_stop(lab, h, kill ? 0 : grace_us, &d);
			if (r < 0)
				return fail(c.sub, r, &d);
			printf("%s stopped (%s)\n", h->name,
			       !running ? "it was not running"
			       : kill	? "SIGKILL"
					: "SIGTERM");
			continue;
		}
		r = kha_lab_host_start(lab, h, &d);
		if (r < 0)
			return fail(c.sub, r, &d);
		printf("%s %s\n", h->name, running ? "was running" : "started");
	}
	return KHA_EXIT_OK;
}

static int cmd_wait(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "wait", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	uint64_t timeout_us = DEFAULT_TIMEOUT_US, t0 = kha_now_us();
	struct kha_diag d = {0};
	char took[32];
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_TIMEOUT:
			if (parse_duration("wait", "--timeout", optarg, &timeout_us))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha lab wait [--dir DIR] [--timeout D]\n\n"
			       "Waits until the lab is ready: every member healthy, every process\n"
			       "running, the node's proxy ready, a master leading the backup election\n"
			       "(default --timeout 60s).\n"
			       "Exit codes: 0 ready; 69 a process is stopped or not ready in "
			       "time.\n\nExample:\n  kha lab start-member m1 && kha lab wait "
			       "--timeout 30s\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("wait", "bad flag");
		}
	}
	if (r)
		return r;
	if (optind < argc)
		return usage_error("wait", "unexpected argument '%s'", argv[optind]);
	r = load(&c, false, &lab);
	if (r)
		return r;
	r = kha_lab_wait_ready(lab, timeout_us, &d);
	if (r < 0)
		return fail("wait", r, &d);
	printf("all %zu members healthy%s (waited %s)\n", lab->n_masters,
	       lab->node.entry_url ? ", the entry point ready" : "",
	       kha_format_duration(took, sizeof(took), (kha_now_us() - t0) / 1000 * 1000));
	return KHA_EXIT_OK;
}

/* ---- drill ---- */

static int drill_on_stop(void *userdata)
{
	return cmd_stop_signal(*(int *)userdata);
}

static void drill_on_progress(void *userdata, const char *line)
{
	(void)userdata;
	fprintf(stderr, "%s\n", line);
}

/* Writes text to path atomically; prints the error. Returns 0 or an exit code. */
static int write_output(const char *what, const char *path, const char *text, size_t len)
{
	struct kha_diag d = {0};

	if (kha_file_write_atomic(path, text, len, 0644, &d) < 0) {
		fprintf(stderr, "kha lab drill: %s (check the %s path)\n", d.msg, what);
		return KHA_EXIT_IOERR;
	}
	return 0;
}

static int drill_outputs(const struct kha_lab_drill_report *r, const char *report, const char *svg)
{
	int code = 0;

	if (report) {
		kha_autofree char *json = kha_lab_drill_json(r);

		if (!json) {
			fprintf(stderr, "kha lab drill: cannot build the report: out of memory\n");
			return KHA_EXIT_SOFTWARE;
		}
		code = write_output("--report", report, json, strlen(json));
		if (code)
			return code;
		printf("report: %s\n", report);
	}
	if (svg) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		if (!f || kha_lab_drill_svg(f, r) < 0 || fclose(f) != 0) {
			free(buf);
			fprintf(stderr, "kha lab drill: cannot build the SVG: out of memory\n");
			return KHA_EXIT_SOFTWARE;
		}
		code = write_output("--svg", svg, buf, len);
		free(buf);
		if (code)
			return code;
		printf("timeline: %s (open it in a browser)\n", svg);
	}
	return 0;
}

/* kha lab drill on a Kubernetes lab: runs it, prints it, writes the report and one SVG per
 * entry (FILE.svg for the node, FILE-vip.svg for the VIP). */
static int drill_k8s(const struct kha_lab *lab, const struct kha_lab_k8s_drill_opts *ko, bool json,
		     bool details, const char *report, const char *svg)
{
	kha_auto(kha_lab_k8s_drill_report_freep) struct kha_lab_k8s_drill_report *rep = NULL;
	struct kha_diag d = {0};
	int r, code = 0;

	fprintf(stderr,
		"kha lab drill: Kubernetes API writes, reads and a watch through %s and %s; "
		"faults follow\n",
		lab->node.entry_url, lab->lbs[0].entry_url);
	r = kha_lab_k8s_drill(lab, lab->kha_bin, ko, &rep, &d);
	if (r < 0)
		return fail("drill", r, &d);
	if (json) {
		kha_autofree char *text = kha_lab_k8s_drill_json(rep);

		if (text)
			printf("%s\n", text);
	} else {
		for (int e = 0; details && e < KHA_LAB_ENTRIES; e++)
			for (int k = 0; k < 2; k++)
				if (rep->drill[e][k]) {
					kha_ignore(
						kha_drill_report_print(stdout, rep->drill[e][k]));
					printf("\n");
				}
		kha_ignore(kha_lab_k8s_drill_print(stdout, rep));
	}
	fflush(stdout);
	if (report) {
		kha_autofree char *text = kha_lab_k8s_drill_json(rep);

		code = text ? write_output("--report", report, text, strlen(text))
			    : KHA_EXIT_SOFTWARE;
		if (code)
			return code;
		printf("report: %s\n", report);
	}
	for (int e = 0; svg && e < KHA_LAB_ENTRIES; e++) {
		kha_autofree char *path = NULL;
		char *buf = NULL;
		size_t len = 0, n = strlen(svg);
		FILE *f;

		if (e == KHA_LAB_ENTRY_NODE)
			path = strdup(svg);
		else if (asprintf(&path, "%.*s-%s.svg",
				  (int)(n > 4 && strcmp(svg + n - 4, ".svg") == 0 ? n - 4 : n), svg,
				  kha_lab_entry_name(e)) < 0)
			path = NULL;
		f = path ? open_memstream(&buf, &len) : NULL;
		if (!f || kha_lab_k8s_drill_svg(f, rep, e) < 0 || fclose(f) != 0) {
			free(buf);
			fprintf(stderr, "kha lab drill: cannot build the SVG: out of memory\n");
			return KHA_EXIT_SOFTWARE;
		}
		code = write_output("--svg", path, buf, len);
		free(buf);
		if (code)
			return code;
		printf("timeline (%s): %s (open it in a browser)\n", kha_lab_entry_name(e), path);
	}
	return kha_lab_k8s_drill_exit_code(rep);
}

static bool parse_percent(const char *s, double *ret)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= 100))
		return false;
	*ret = v;
	return true;
}

/* whether this lab can be drilled with these options: 0, or the exit code */
static int drill_check(const struct common *c, const struct kha_lab *lab,
		       const struct kha_lab_k8s_drill_opts *ko)
{
	if (!lab->node.entry_url)
		return usage_error("drill",
				   "the lab in %s has no entry point (made with --no-proxy): "
				   "nothing to write through",
				   c->dir);
	if (!lab->kha_bin || access(lab->kha_bin, X_OK) < 0) {
		fprintf(stderr, "kha lab drill: %s: cannot run the kha the lab was made with\n",
			lab->kha_bin ? lab->kha_bin : "(none)");
		return KHA_EXIT_UNAVAILABLE;
	}
	if (!lab->k8s_bin && (ko->faults || ko->slo >= 0 || ko->rolling_us || ko->watch_timeout_us))
		return usage_error("drill", "--faults, --slo, --rolling-time and --watch-timeout "
					    "are for a Kubernetes lab (kha lab up --kubernetes)");
	return 0;
}

/* kha lab drill --help */
static void drill_usage(void)
{
	printf("Usage: kha lab drill [--dir DIR] [--report FILE.json] [--svg FILE.svg]\n"
	       "                     [--rate N] [--min-availability PCT] [--details]\n"
	       "                     [--baseline D] [--period D] [--down D] [-o json]\n\n"
	       "Writes to etcd through the node's entry point (kha proxy) at --rate per\n"
	       "second (default 50, a new TLS connection each) while three faults hit\n"
	       "the masters, one after the other, each followed by its recovery and a\n"
	       "settle period:\n"
	       "  1. kill-follower    SIGKILL every process of a master that does not\n"
	       "                      lead the backup election (etcd, kha elect, the\n"
	       "                      backup); restart it\n"
	       "  2. kill-leader      the same to the master that leads; restart it\n"
	       "  3. freeze-follower  SIGSTOP every process of a master that does not\n"
	       "                      lead; SIGCONT it\n"
	       "Timeline: --baseline (4s) of steady writes, then a fault every --period\n"
	       "(18s), each undone after --down (6s): about a minute in all. Afterwards\n"
	       "every write is read back from the members. Per fault it reports the\n"
	       "entry's availability and longest outage, the acknowledged writes lost\n"
	       "(must be 0), the election handover time (kill to a new leader seen),\n"
	       "and whether backups went on (by another master when the leader died);\n"
	       "overall, whether two masters ever took backups in one leadership term.\n"
	       "(A lab without Kubernetes: the entry fronts the members' etcd API.)\n\n"
	       "On a Kubernetes lab (kha lab up --kubernetes) the clients are Kubernetes\n"
	       "API clients, through each entry at once (the node's kha proxy and the\n"
	       "VIP): ConfigMap creates listed back afterwards, GETs, and a watch whose\n"
	       "reconnects are timed, at --rate each (default 20/s). The faults (each\n"
	       "undone after --down, 8s; one every --period, 40s; --faults picks some):\n"
	       "  kill-master, freeze-master   a master that does not lead the backups\n"
	       "  stop-apiserver     SIGTERM one kube-apiserver (graceful: drained)\n"
	       "  kill-cm-leader     SIGKILL the controller-manager holding its Lease\n"
	       "  kill-etcd-leader   SIGKILL every process of etcd's Raft leader's host\n"
	       "  kill-lb            SIGKILL the load balancer holding the VIP\n"
	       "  rolling            every master restarted in turn under kha lock\n"
	       "                     (--rolling-time, default 150s)\n"
	       "Per fault and entry: availability of writes and reads, longest outage,\n"
	       "lost writes (must be 0), watch reconnect time, the controller-manager's\n"
	       "Lease handover (from its acquireTime), backups, the verdict against\n"
	       "--slo (default 90, per entry and fault). --watch-timeout: the watches'\n"
	       "timeoutSeconds (default 60s).\n\n"
	       "  --report FILE         JSON report (schema kha.lab.drill/v1, docs/lab.md)\n"
	       "  --svg FILE            SVG timeline of the writes and the faults\n"
	       "  --min-availability P  floor for the entry's availability (default 90)\n"
	       "  --details             also print lib/drill's summary (latency, phases)\n"
	       "  -o json               the JSON report on stdout instead of the summary\n\n"
	       "Exit codes: 0 every invariant held; 1 availability under the floor, or\n"
	       "no new leader / no new backup after a fault; 2 acknowledged writes lost\n"
	       "or two backup takers in one term; 3 a fault command failed; 69 no lab in\n"
	       "DIR, or the lab not ready, or the writes not verifiable; 74 a file could\n"
	       "not be written; 130 interrupted (the faults are undone first).\n\n"
	       "Example:\n  kha lab up && kha lab drill --svg lab-drill.svg; kha lab down\n");
}

/* one flag of kha lab drill that sets the drill's options (both kinds of lab):
 * 0, or the exit code of a usage error */
static int drill_flag(int opt, const char *arg, struct kha_lab_drill_opts *o,
		      struct kha_lab_k8s_drill_opts *ko)
{
	double pct;
	uint64_t v;

	switch (opt) {
	case OPT_RATE:
		if (kha_parse_u64(arg, 1, 1000, &v) < 0)
			return usage_error("drill",
					   "--rate '%s': expected 1 to 1000 writes "
					   "per second",
					   arg);
		o->rate = (uint32_t)v;
		ko->rate = (uint32_t)v;
		return 0;
	case OPT_FAULTS:
		if (kha_lab_k8s_fault_parse(arg, &ko->faults) < 0)
			return usage_error("drill",
					   "--faults '%s': expected a comma list of "
					   "kill-master, freeze-master, stop-apiserver, "
					   "kill-cm-leader, kill-etcd-leader, kill-lb, rolling "
					   "(or all)",
					   arg);
		return 0;
	case OPT_SLO:
		if (!parse_percent(arg, &pct))
			return usage_error("drill",
					   "--slo '%s': expected a percentage from 0 to 100", arg);
		ko->slo = pct;
		return 0;
	case OPT_ROLLING_TIME:
	case OPT_WATCH_TIMEOUT:
		if (parse_duration("drill",
				   opt == OPT_ROLLING_TIME ? "--rolling-time" : "--watch-timeout",
				   arg, &v))
			return KHA_EXIT_USAGE;
		if (v < KHA_USEC_PER_SEC || v > 3600 * KHA_USEC_PER_SEC)
			return usage_error("drill", "'%s': expected 1s to 1h", arg);
		*(opt == OPT_ROLLING_TIME ? &ko->rolling_us : &ko->watch_timeout_us) = v;
		return 0;
	case OPT_MIN_AVAILABILITY:
		if (!parse_percent(arg, &pct))
			return usage_error("drill",
					   "--min-availability '%s': expected a percentage "
					   "from 0 to 100",
					   arg);
		o->min_availability = pct;
		return 0;
	case OPT_BASELINE:
	case OPT_PERIOD:
	case OPT_DOWN:
		if (parse_duration("drill",
				   opt == OPT_BASELINE ? "--baseline"
				   : opt == OPT_PERIOD ? "--period"
						       : "--down",
				   arg, &v))
			return KHA_EXIT_USAGE;
		if (v < KHA_USEC_PER_SEC || v > 600 * KHA_USEC_PER_SEC)
			return usage_error("drill", "'%s': expected 1s to 10m", arg);
		*(opt == OPT_BASELINE ? &o->baseline_us
		  : opt == OPT_PERIOD ? &o->period_us
				      : &o->down_us) = v;
		*(opt == OPT_BASELINE ? &ko->baseline_us
		  : opt == OPT_PERIOD ? &ko->period_us
				      : &ko->down_us) = v;
		return 0;
	}
	return KHA_EXIT_SOFTWARE;
}

/* the report of a drill of a lab without Kubernetes: on stdout, then to the files; the exit
 * code */
static int drill_etcd_report(const struct kha_lab_drill_report *rep, bool json, bool details,
			     const char *report, const char *svg)
{
	int code;

	if (json) {
		kha_autofree char *text = kha_lab_drill_json(rep);

		if (text)
			printf("%s\n", text);
	} else {
		if (details) {
			kha_ignore(kha_drill_report_print(stdout, rep->drill));
			printf("\n");
		}
		kha_ignore(kha_lab_drill_print(stdout, rep));
	}
	fflush(stdout);
	code = drill_outputs(rep, report, svg);
	return code ? code : kha_lab_drill_exit_code(rep);
}

static int cmd_drill(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"rate", required_argument, NULL, OPT_RATE},
		{"report", required_argument, NULL, OPT_REPORT},
		{"svg", required_argument, NULL, OPT_SVG},
		{"min-availability", required_argument, NULL, OPT_MIN_AVAILABILITY},
		{"baseline", required_argument, NULL, OPT_BASELINE},
		{"period", required_argument, NULL, OPT_PERIOD},
		{"down", required_argument, NULL, OPT_DOWN},
		{"details", no_argument, NULL, OPT_DETAILS},
		{"faults", required_argument, NULL, OPT_FAULTS},
		{"rolling-time", required_argument, NULL, OPT_ROLLING_TIME},
		{"slo", required_argument, NULL, OPT_SLO},
		{"watch-timeout", required_argument, NULL, OPT_WATCH_TIMEOUT},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "drill", .dir = DEFAULT_DIR};
	struct kha_lab_k8s_drill_opts ko = {.slo = -1, .stop_fd = -1};
	struct kha_lab_drill_opts o = {.min_availability = -1, .stop_fd = -1};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_auto(kha_lab_drill_report_freep) struct kha_lab_drill_report *rep = NULL;
	const char *report = NULL, *svg = NULL;
	struct kha_diag d = {0};
	bool details = false;
	sigset_t oldmask;
	int opt, r, code, sfd;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "ho:", opts, &r)) != -1) {
		switch (opt) {
		case OPT_REPORT:
			report = optarg;
			break;
		case OPT_SVG:
			svg = optarg;
			break;
		case OPT_DETAILS:
			details = true;
			break;
		case OPT_RATE:
		case OPT_FAULTS:
		case OPT_SLO:
		case OPT_ROLLING_TIME:
		case OPT_WATCH_TIMEOUT:
		case OPT_MIN_AVAILABILITY:
		case OPT_BASELINE:
		case OPT_PERIOD:
		case OPT_DOWN:
			r = drill_flag(opt, optarg, &o, &ko);
			if (r)
				return r;
			break;
		case 'h':
			drill_usage();
			return KHA_EXIT_OK;
		default:
			return usage_error("drill", "bad flag");
		}
	}
	if (r)
		return r;
	if (optind < argc)
		return usage_error("drill", "unexpected argument '%s'", argv[optind]);
	r = load(&c, false, &lab);
	if (r)
		return r;
	r = drill_check(&c, lab, &ko);
	if (r)
		return r;
	fprintf(stderr, "kha lab drill: waiting until the lab is ready...\n");
	r = kha_lab_wait_ready(lab, DRILL_READY_US, &d);
	if (r < 0)
		return cmd_fail("kha lab drill", c.json, KHA_EXIT_UNAVAILABLE,
				"the lab in %s is not ready: %s (see 'kha lab status')", c.dir,
				d.msg);
	/* each write in flight holds a socket */
	cmd_raise_fd_limit();
	/* SIGINT/SIGTERM stop the drill through a signalfd (the faults are undone first); the
	 * fault commands and our watcher thread get the mask as it is now */
	sfd = cmd_stop_signalfd(&oldmask);
	if (sfd < 0) {
		fprintf(stderr, "kha lab drill: signalfd: %s\n", strerror(-sfd));
		return KHA_EXIT_SOFTWARE;
	}
	o.stop_fd = sfd;
	o.on_stop = drill_on_stop;
	o.on_progress = drill_on_progress;
	o.userdata = &sfd;
	if (lab->k8s_bin) {
		ko.stop_fd = sfd;
		ko.on_stop = drill_on_stop;
		ko.on_progress = drill_on_progress;
		ko.userdata = &sfd;
		code = drill_k8s(lab, &ko, c.json, details, report, svg);
		close(sfd);
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		return code;
	}
	fprintf(stderr, "kha lab drill: writing through %s; faults follow (about %.0fs)\n",
		lab->node.entry_url,
		(double)((o.baseline_us ? o.baseline_us : 4 * KHA_USEC_PER_SEC) +
			 3 * (o.period_us ? o.period_us : 18 * KHA_USEC_PER_SEC)) /
			1e6);
	r = kha_lab_drill(lab, lab->kha_bin, &o, &rep, &d);
	close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	if (r < 0)
		return fail("drill", r, &d);
	return drill_etcd_report(rep, c.json, details, report, svg);
}

static int cmd_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "down", .dir = DEFAULT_DIR};
	uint64_t grace_us = DEFAULT_GRACE_US;
	struct kha_diag d = {0};
	unsigned stopped = 0;
	int opt, r;

	optind = 0;
	while ((opt = next_flag(&c, argc, argv, "h", opts, &r)) != -1) {
		switch (opt) {
		case OPT_GRACE:
			if (parse_duration("down", "--grace", optarg, &grace_us))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha lab down [--dir DIR] [--grace D]\n\n"
			       "Stops exactly the processes the lab started (recorded PIDs, checked\n"
			       "by start time: a recycled PID is never signalled) and what they\n"
			       "started, waits for them, then removes DIR. etcd members get SIGKILL\n"
			       "(their data goes next); other processes SIGTERM (and SIGCONT when\n"
			       "frozen), then SIGKILL after --grace (default 10s). Processes that\n"
			       "already died are fine; no lab in DIR is fine too. A DIR without\n"
			       "lab.json is never removed.\n\nExample:\n  kha lab down --dir lab\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("down", "bad flag");
		}
	}
	if (r)
		return r;
	if (optind < argc)
		return usage_error("down", "unexpected argument '%s'", argv[optind]);
	r = kha_lab_down(c.dir, grace_us, &stopped, &d);
	if (r < 0)
		return fail("down", r, &d);
	printf("lab in %s is down (%u process%s stopped, directory removed)\n", c.dir, stopped,
	       stopped == 1 ? "" : "es");
	return KHA_EXIT_OK;
}

int cmd_lab_main(int argc, char **argv)
{
	int code = cmd_usage_or_help(argc, argv, usage);

	if (code >= 0)
		return code;
	if (strcmp(argv[1], "up") == 0)
		return cmd_up(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "stop-member") == 0)
		return cmd_member(argc - 1, argv + 1, OP_STOP);
	if (strcmp(argv[1], "start-member") == 0)
		return cmd_member(argc - 1, argv + 1, OP_START);
	if (strcmp(argv[1], "freeze-member") == 0)
		return cmd_member(argc - 1, argv + 1, OP_FREEZE);
	if (strcmp(argv[1], "thaw-member") == 0)
		return cmd_member(argc - 1, argv + 1, OP_THAW);
	if (strcmp(argv[1], "wait") == 0)
		return cmd_wait(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "stop-process") == 0)
		return cmd_stop_process(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "stop-host") == 0)
		return cmd_host(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "start-host") == 0)
		return cmd_host(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "drill") == 0)
		return cmd_drill(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "down") == 0)
		return cmd_down(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "exec") == 0)
		return cmd_exec(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "kubeconfig") == 0)
		return cmd_kubeconfig(argc - 1, cmd_sub_argv(argv));
	fprintf(stderr, "kha lab: unknown subcommand '%s' (run 'kha lab --help')\n", argv[1]);
	return KHA_EXIT_USAGE;
}
