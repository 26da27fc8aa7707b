// SPDX-License-Identifier: MIT
/*
 * The Kubernetes lab: the real control plane, laid out as kubeadm's stacked-etcd HA topology,
 * each host in a network namespace of its own on one lab bridge.
 *
 *   <net>-sw     the switch: bridge br0, one veth port per host (nothing else)
 *   <net>-mN     master N, <subnet>.1N: etcd (3.6), kube-apiserver, kube-controller-manager,
 *                kube-scheduler (both --leader-elect), kha elect running kha etcd backup
 *   <net>-lbN    load-balancer host N, <subnet>.2N: kha proxy on :6443 + kha vip holding the VIP
 *   <net>-node   a node, <subnet>.50: the node-local kha proxy on 127.0.0.1:7443
 *
 * Nothing is in the machine's own namespace: every kha lab command enters the node's namespace
 * (kha_lab_enter) before it talks to the lab, so traffic to lab addresses never leaves through
 * the machine's default route. kube-apiserver refuses loopback addresses in the endpoints of
 * default/kubernetes, which is why the masters need addresses of their own at all.
 *
 * The PKI and the kubeconfigs are kubeadm's, made by its phases (`kubeadm init phase certs`,
 * `kubeadm init phase kubeconfig`), one certificate directory per master with the shared CAs
 * copied first, as `kubeadm join --control-plane` has them: the lab runs on the PKI users have.
 * The component flags are those of kubeadm's static pod manifests; once the API answers, the
 * lab writes those manifests from the same command lines, registers each master as a Node and
 * publishes each manifest as its mirror pod: what a kubelet does, without a container runtime
 * (the processes stay the lab's own).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "kha/etcd.h"
#include "kha/file.h"
#include "kha/http.h"
#include "kha/json.h"
#include "kha/kube.h"
#include "kha/lab.h"
#include "kha/parse.h"
#include "kha/proc.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define SUBNET		"10.77.0"
#define SERVICE_CIDR	"10.96.0.0/12"
#define CLUSTER_NAME	"kha-lab"
#define APISERVER_PORT	6443
#define NODE_ENTRY_PORT 7443
#define ADMIN_PORT	9090 /* kha proxy's /metrics, /readyz on each host's loopback */
#define BACKUP_ADMIN	9101 /* kha etcd backup's, on each master's loopback */
#define VIP_HOST	100
#define VRID		51
#define RUN_TIMEOUT_US	(60 * KHA_USEC_PER_SEC)
#define READY_GET_US	(1 * KHA_USEC_PER_SEC)
#define POLL_US		(200 * KHA_USEC_PER_MSEC)
#define MAX_TEXT	(64 * 1024)

/* ---- running tools (ip, kubeadm) ---- */

/* Runs argv to completion, output appended to DIR/setup.log. 0, or -EIO naming the command. */
static int run(const struct kha_lab *lab, const char *const *argv, struct kha_diag *d)
{
	kha_autofree char *log = kha_lab__path(lab->dir, "setup.log");
	struct kha_proc_spawn_opts o = {.argv = argv, .log_path = log, .cwd = lab->dir};
	struct kha_proc p;
	int r;

	if (!log)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_proc_spawn(&o, &p, d);
	if (r < 0)
		return r;
	r = kha_proc_wait(&p, RUN_TIMEOUT_US);
	if (r == -ETIMEDOUT) {
		kha_ignore(kha_proc_stop(&p, 0, KHA_USEC_PER_SEC, NULL));
		kha_proc_release(&p);
		return kha_diag_set(d, ETIMEDOUT, "'%s %s' did not finish in %llus (see %s)",
				    argv[0], argv[1] ? argv[1] : "",
				    (unsigned long long)(RUN_TIMEOUT_US / KHA_USEC_PER_SEC), log);
	}
	kha_proc_release(&p);
	if (r < 0 || !WIFEXITED(p.exit_status) || WEXITSTATUS(p.exit_status) != 0)
		return kha_diag_set(d, EIO, "'%s %s %s' failed (see %s)", argv[0],
				    argv[1] ? argv[1] : "", argv[1] && argv[2] ? argv[2] : "", log);
	return 0;
}

#define RUN(lab, d, ...) run(lab, (const char *const[]){__VA_ARGS__, NULL}, d)

/* ---- the plan ---- */

static bool add_host_proc(struct kha_lab_proc *procs, size_t *n, enum kha_lab_proc_kind kind,
			  const char *name, const char *dir)
{
	struct kha_lab_proc *p = &procs[(*n)++];

	p->kind = kind;
	p->name = strdup(name);
	return p->name && asprintf(&p->log_path, "%s/%s.log", dir, name) >= 0;
}

static int plan_node(struct kha_lab *lab, struct kha_lab_node *h, const char *name, unsigned host,
		     bool lb)
{
	kha_autofree char *dir = kha_lab__path(lab->dir, name);
	bool ok;

	h->procs = calloc(2, sizeof(*h->procs));
	ok = dir && h->procs && (h->name = strdup(name)) &&
	     asprintf(&h->netns, "%s-%s", lab->net, name) >= 0 &&
	     asprintf(&h->address, "%s.%u", lab->subnet, host) >= 0;
	h->entry_port = lb ? APISERVER_PORT : NODE_ENTRY_PORT;
	h->metrics_port = ADMIN_PORT;
	ok = ok && asprintf(&h->entry_url, "https://%s:%u", lb ? lab->vip : "127.0.0.1",
			    h->entry_port) >= 0;
	ok = ok && asprintf(&h->metrics_addr, "127.0.0.1:%u", ADMIN_PORT) >= 0;
	ok = ok && add_host_proc(h->procs, &h->n_procs, KHA_LAB_PROC_PROXY, "proxy", dir);
	if (ok && lb)
		ok = add_host_proc(h->procs, &h->n_procs, KHA_LAB_PROC_VIP, "vip", dir);
	return ok ? 0 : -ENOMEM;
}

int kha_lab__k8s_plan(struct kha_lab *lab, unsigned n, bool with_proxy, struct kha_diag *d)
{
	static const struct {
		enum kha_lab_proc_kind kind;
		const char *name;
	} cp[] = {
		{KHA_LAB_PROC_APISERVER, "kube-apiserver"},
		{KHA_LAB_PROC_CONTROLLER_MANAGER, "kube-controller-manager"},
		{KHA_LAB_PROC_SCHEDULER, "kube-scheduler"},
	};
	bool oom = false;

	if (asprintf(&lab->net, "kl%.8s", lab->token + strlen("kha-lab-")) < 0 ||
	    !(lab->subnet = strdup(SUBNET)) ||
	    asprintf(&lab->vip, "%s.%u", lab->subnet, VIP_HOST) < 0 ||
	    !(lab->kube_ca = kha_lab__path(lab->dir, "m1/pki/ca.crt")))
		return kha_diag_set(d, ENOMEM, "out of memory");
	/* etcd clients (health, elect, backup, drill read-back) use kubeadm's etcd PKI */
	free(lab->ca_cert);
	free(lab->client_cert);
	free(lab->client_key);
	lab->ca_cert = kha_lab__path(lab->dir, "m1/pki/etcd/ca.crt");
	lab->client_cert = kha_lab__path(lab->dir, "m1/pki/apiserver-etcd-client.crt");
	lab->client_key = kha_lab__path(lab->dir, "m1/pki/apiserver-etcd-client.key");
	lab->masters = calloc(n, sizeof(*lab->masters));
	if (!lab->ca_cert || !lab->client_cert || !lab->client_key || !lab->masters)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		struct kha_lab_master *m = &lab->masters[i];
		kha_autofree char *dir = NULL;

		lab->n_masters++;
		m->client_port = 2379;
		m->peer_port = 2380;
		oom |= asprintf(&m->name, "m%u", i + 1) < 0;
		oom |= asprintf(&dir, "%s/m%u", lab->dir, i + 1) < 0;
		oom |= asprintf(&m->netns, "%s-m%u", lab->net, i + 1) < 0;
		oom |= asprintf(&m->address, "%s.%u", lab->subnet, 11 + i) < 0;
		if (oom)
			return kha_diag_set(d, ENOMEM, "out of memory");
		oom |= asprintf(&m->client_url, "https://%s:2379", m->address) < 0;
		oom |= asprintf(&m->peer_url, "https://%s:2380", m->address) < 0;
		oom |= asprintf(&m->data_dir, "%s/data", dir) < 0;
		/* kubeadm's etcd server certificate carries serverAuth and clientAuth */
		oom |= asprintf(&m->cert, "%s/pki/etcd/server.crt", dir) < 0;
		oom |= asprintf(&m->key, "%s/pki/etcd/server.key", dir) < 0;
		m->procs = calloc(5, sizeof(*m->procs));
		if (oom || !m->procs ||
		    !add_host_proc(m->procs, &m->n_procs, KHA_LAB_PROC_ETCD, "etcd", dir))
			return kha_diag_set(d, ENOMEM, "out of memory");
		for (size_t k = 0; k < KHA_ARRAY_SIZE(cp); k++)
			if (!add_host_proc(m->procs, &m->n_procs, cp[k].kind, cp[k].name, dir))
				return kha_diag_set(d, ENOMEM, "out of memory");
		if (!lab->election)
			continue;
		m->backup_metrics_port = BACKUP_ADMIN;
		if (asprintf(&m->backup_dir, "%s/backups/m%u", lab->dir, i + 1) < 0 ||
		    !add_host_proc(m->procs, &m->n_procs, KHA_LAB_PROC_ELECT, "elect", dir))
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (plan_node(lab, &lab->node, "node", 50, false) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (!with_proxy)
		return 0;
	lab->lbs = calloc(KHA_LAB_LBS, sizeof(*lab->lbs));
	if (!lab->lbs)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (unsigned i = 0; i < KHA_LAB_LBS; i++) {
		char name[8];

		snprintf(name, sizeof(name), "lb%u", i + 1);
		lab->n_lbs++;
		if (plan_node(lab, &lab->lbs[i], name, 21 + i, true) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	return 0;
}

/* ---- the network ---- */

/* Every host of the lab: masters, then the node and the load balancers (name, ns, address). */
static size_t hosts(const struct kha_lab *lab, const char **names, const char **netns,
		    const char **addrs, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < lab->n_masters && n < max; i++, n++) {
		names[n] = lab->masters[i].name;
		netns[n] = lab->masters[i].netns;
		addrs[n] = lab->masters[i].address;
	}
	if (lab->node.netns && n < max) {
		names[n] = lab->node.name;
		netns[n] = lab->node.netns;
		addrs[n++] = lab->node.address;
	}
	for (size_t i = 0; i < lab->n_lbs && n < max; i++, n++) {
		names[n] = lab->lbs[i].name;
		netns[n] = lab->lbs[i].netns;
		addrs[n] = lab->lbs[i].address;
	}
	return n;
}

#define MAX_HOSTS (KHA_LAB_MAX_MASTERS + 1 + KHA_LAB_LBS)

int kha_lab__k8s_net_create(const struct kha_lab *lab, struct kha_diag *d)
{
	const char *names[MAX_HOSTS], *netns[MAX_HOSTS], *addrs[MAX_HOSTS];
	size_t n = hosts(lab, names, netns, addrs, MAX_HOSTS);
	kha_autofree char *sw = NULL;
	int r;

	if (asprintf(&sw, "%s-sw", lab->net) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = RUN(lab, d, "ip", "netns", "add", sw);
	if (r == 0)
		r = RUN(lab, d, "ip", "-n", sw, "link", "add", "br0", "type", "bridge");
	if (r == 0)
		r = RUN(lab, d, "ip", "-n", sw, "link", "set", "br0", "up");
	for (size_t i = 0; r == 0 && i < n; i++) {
		char port[16], cidr[32];

		snprintf(port, sizeof(port), "p-%s", names[i]);
		snprintf(cidr, sizeof(cidr), "%s/24", addrs[i]);
		r = RUN(lab, d, "ip", "netns", "add", netns[i]);
		if (r == 0)
			r = RUN(lab, d, "ip", "-n", netns[i], "link", "set", "lo", "up");
		/* created in the switch, its peer straight into the host: nothing in ours */
		if (r == 0)
			r = RUN(lab, d, "ip", "-n", sw, "link", "add", port, "type", "veth", "peer",
				"name", "eth0", "netns", netns[i]);
		if (r == 0)
			r = RUN(lab, d, "ip", "-n", sw, "link", "set", port, "master", "br0", "up");
		if (r == 0)
			r = RUN(lab, d, "ip", "-n", netns[i], "addr", "add", cidr, "dev", "eth0");
		if (r == 0)
			r = RUN(lab, d, "ip", "-n", netns[i], "link", "set", "eth0", "up");
	}
	if (r < 0)
		kha_diag_prefix(d, "creating the lab network");
	return r;
}

void kha_lab__k8s_net_delete(const struct kha_lab *lab)
{
	const char *names[MAX_HOSTS], *netns[MAX_HOSTS], *addrs[MAX_HOSTS];
	size_t n;
	char sw[64];

	if (!lab->net)
		return;
	n = hosts(lab, names, netns, addrs, MAX_HOSTS);
	for (size_t i = 0; i < n; i++) {
		char path[128];

		snprintf(path, sizeof(path), "/run/netns/%s", netns[i]);
		if (access(path, F_OK) == 0)
			kha_ignore(RUN(lab, NULL, "ip", "netns", "delete", netns[i]));
	}
	snprintf(sw, sizeof(sw), "/run/netns/%s-sw", lab->net);
	if (access(sw, F_OK) == 0)
		kha_ignore(RUN(lab, NULL, "ip", "netns", "delete", sw + strlen("/run/netns/")));
}

int kha_lab_enter(const struct kha_lab *lab, struct kha_diag *d)
{
	char path[128];
	int fd, r = 0;

	if (!lab->node.netns)
		return 0;
	snprintf(path, sizeof(path), "/run/netns/%s", lab->node.netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kha_diag_set(d, errno,
				    "cannot enter the lab's node namespace %s: %s (the lab network "
				    "is gone: 'kha lab down', then 'kha lab up')",
				    lab->node.netns, strerror(errno));
	if (setns(fd, CLONE_NEWNET) < 0)
		r = kha_diag_set(d, errno, "cannot enter the lab's node namespace %s: %s%s",
				 lab->node.netns, strerror(errno),
				 errno == EPERM ? " (a Kubernetes lab needs root)" : "");
	close(fd);
	return r;
}

const char *kha_lab_host_netns(const struct kha_lab *lab, const char *host)
{
	const char *names[MAX_HOSTS], *netns[MAX_HOSTS], *addrs[MAX_HOSTS];
	size_t n = hosts(lab, names, netns, addrs, MAX_HOSTS);

	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], host) == 0)
			return netns[i];
	return NULL;
}

/* ---- the PKI and kubeconfigs, by kubeadm ---- */

static int write_text(const char *path, const char *text, mode_t mode, struct kha_diag *d)
{
	return kha_file_write_atomic(path, text, strlen(text), mode, d);
}

static int copy_file(const char *from, const char *to, mode_t mode, struct kha_diag *d)
{
	kha_autofree char *buf = NULL;
	size_t len;
	int r = kha_file_read_all(from, MAX_TEXT, &buf, &len, d);

	return r < 0 ? r : kha_file_write_atomic(to, buf, len, mode, d);
}

/* kubeadm's configuration for master m: its address, the lab's endpoint and SANs. */
static int kubeadm_config(const struct kha_lab *lab, const struct kha_lab_master *m,
			  const char *version, const char *path, struct kha_diag *d)
{
	char sans[512] = "";
	kha_autofree char *text = NULL;

	/* the VIP (controlPlaneEndpoint) and the master's own address kubeadm adds itself; the
	 * node-local entry and, for a certificate that survives a master changing hosts, every
	 * master */
	snprintf(sans, sizeof(sans), "[\"127.0.0.1\", \"localhost\", \"%s\"", lab->vip);
	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(sans);

		snprintf(sans + used, sizeof(sans) - used, ", \"%s\"", lab->masters[i].address);
	}
	snprintf(sans + strlen(sans), sizeof(sans) - strlen(sans), "]");
	if (asprintf(
		    &text,
		    "# made by kha lab up: kubeadm's phases make this master's PKI and kubeconfigs\n"
		    "apiVersion: kubeadm.k8s.io/v1beta4\n"
		    "kind: InitConfiguration\n"
		    "localAPIEndpoint:\n"
		    "  advertiseAddress: %s\n"
		    "  bindPort: %d\n"
		    "nodeRegistration:\n"
		    "  name: %s\n"
		    "  criSocket: unix:///var/run/containerd/containerd.sock\n"
		    "---\n"
		    "apiVersion: kubeadm.k8s.io/v1beta4\n"
		    "kind: ClusterConfiguration\n"
		    "kubernetesVersion: %s\n"
		    "clusterName: %s\n"
		    "controlPlaneEndpoint: \"%s:%d\"\n"
		    "certificatesDir: %s/%s/pki\n"
		    "apiServer:\n"
		    "  certSANs: %s\n"
		    "networking:\n"
		    "  serviceSubnet: %s\n",
		    m->address, APISERVER_PORT, m->name, version, CLUSTER_NAME, lab->vip,
		    APISERVER_PORT, lab->dir, m->name, sans, SERVICE_CIDR) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return write_text(path, text, 0644, d);
}

/* The shared CA material a joining control-plane node receives (kubeadm's list). */
static const struct {
	const char *name;
	mode_t mode;
} shared_ca[] = {
	{"ca.crt", 0644},
	{"ca.key", 0600},
	{"sa.key", 0600},
	{"sa.pub", 0644},
	{"front-proxy-ca.crt", 0644},
	{"front-proxy-ca.key", 0600},
	{"etcd/ca.crt", 0644},
	{"etcd/ca.key", 0600},
};

/* kubeadm's version ("v1.37.2"), the one its configuration must name. */
static int kubeadm_version(const struct kha_lab *lab, char *buf, size_t size, struct kha_diag *d)
{
	kha_autofree char *kubeadm = NULL, *out = kha_lab__path(lab->dir, "kubeadm-version");
	kha_autofree char *text = NULL;
	struct kha_proc_spawn_opts o = {0};
	struct kha_proc p;
	size_t len;
	int r;

	if (asprintf(&kubeadm, "%s/kubeadm", lab->k8s_bin) < 0 || !out)
		return kha_diag_set(d, ENOMEM, "out of memory");
	o.argv = (const char *const[]){kubeadm, "version", "-o", "short", NULL};
	o.log_path = out;
	r = kha_proc_spawn(&o, &p, d);
	if (r < 0)
		return r;
	r = kha_proc_wait(&p, RUN_TIMEOUT_US);
	kha_proc_release(&p);
	if (r < 0 || !WIFEXITED(p.exit_status) || WEXITSTATUS(p.exit_status) != 0)
		return kha_diag_set(d, EIO, "%s version failed", kubeadm);
	r = kha_file_read_all(out, 256, &text, &len, d);
	unlink(out);
	if (r < 0)
		return r;
	text[strcspn(text, "\r\n")] = '\0';
	if (text[0] != 'v')
		return kha_diag_set(d, EIO, "%s version says %s", kubeadm, text);
	snprintf(buf, size, "%s", text);
	return 0;
}

/* A copy of kubeconfig from with its cluster's server set to server (mode 0600). */
static int kubeconfig_for(const char *from, const char *to, const char *server, struct kha_diag *d)
{
	kha_autofree char *buf = NULL, *out = NULL;
	const char *line, *end;
	size_t len;
	int r = kha_file_read_all(from, MAX_TEXT, &buf, &len, d);

	if (r < 0)
		return r;
	line = strstr(buf, "    server: ");
	if (!line)
		return kha_diag_set(d, EBADMSG, "%s: no server line (not kubeadm's kubeconfig?)",
				    from);
	end = strchr(line, '\n');
	if (!end)
		return kha_diag_set(d, EBADMSG, "%s: truncated", from);
	if (asprintf(&out, "%.*s    server: %s%s", (int)(line - buf), buf, server, end) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return write_text(to, out, 0600, d);
}

int kha_lab__k8s_pki(struct kha_lab *lab, struct kha_diag *d)
{
	kha_autofree char *kubeadm = NULL, *kcdir = kha_lab__path(lab->dir, "kubeconfig");
	char version[64];
	int r;

	if (asprintf(&kubeadm, "%s/kubeadm", lab->k8s_bin) < 0 || !kcdir)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kubeadm_version(lab, version, sizeof(version), d);
	if (r == 0)
		r = kha_file_mkdir_p(kcdir, 0700, d);
	for (size_t i = 0; r == 0 && i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];
		kha_autofree char *dir = kha_lab__path(lab->dir, m->name), *cfg = NULL, *pki = NULL;
		kha_autofree char *etcd = NULL;

		if (!dir || asprintf(&cfg, "%s/kubeadm.yaml", dir) < 0 ||
		    asprintf(&pki, "%s/pki", dir) < 0 || asprintf(&etcd, "%s/pki/etcd", dir) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		r = kha_file_mkdir_p(etcd, 0700, d);
		if (r == 0)
			r = kubeadm_config(lab, m, version, cfg, d);
		/* the others join: the shared CAs first, as kubeadm join --control-plane has them */
		for (size_t k = 0; r == 0 && i > 0 && k < KHA_ARRAY_SIZE(shared_ca); k++) {
			char from[4096], to[4096];

			snprintf(from, sizeof(from), "%s/m1/pki/%s", lab->dir, shared_ca[k].name);
			snprintf(to, sizeof(to), "%s/%s", pki, shared_ca[k].name);
			r = copy_file(from, to, shared_ca[k].mode, d);
		}
		if (r == 0)
			r = RUN(lab, d, kubeadm, "init", "phase", "certs", "all", "--config", cfg);
		if (r == 0)
			r = RUN(lab, d, kubeadm, "init", "phase", "kubeconfig",
				"controller-manager", "--config", cfg, "--kubeconfig-dir", dir);
		if (r == 0)
			r = RUN(lab, d, kubeadm, "init", "phase", "kubeconfig", "scheduler",
				"--config", cfg, "--kubeconfig-dir", dir);
		if (r == 0 && i == 0)
			r = RUN(lab, d, kubeadm, "init", "phase", "kubeconfig", "admin", "--config",
				cfg, "--kubeconfig-dir", kcdir);
		/* system:masters, to bind admin.conf's group as kubeadm init does */
		if (r == 0 && i == 0)
			r = RUN(lab, d, kubeadm, "init", "phase", "kubeconfig", "super-admin",
				"--config", cfg, "--kubeconfig-dir", kcdir);
	}
	if (r < 0) {
		kha_diag_prefix(d, "kubeadm");
		return r;
	}
	/* one admin kubeconfig per entry: node (its kha proxy), vip, each master's own */
	{
		kha_autofree char *admin = kha_lab__path(kcdir, "admin.conf");
		char to[4096], server[128];

		if (!admin)
			return kha_diag_set(d, ENOMEM, "out of memory");
		snprintf(to, sizeof(to), "%s/node.conf", kcdir);
		snprintf(server, sizeof(server), "https://127.0.0.1:%d", NODE_ENTRY_PORT);
		r = kubeconfig_for(admin, to, server, d);
		snprintf(to, sizeof(to), "%s/vip.conf", kcdir);
		snprintf(server, sizeof(server), "https://%s:%d", lab->vip, APISERVER_PORT);
		if (r == 0)
			r = kubeconfig_for(admin, to, server, d);
		for (size_t i = 0; r == 0 && i < lab->n_masters; i++) {
			snprintf(to, sizeof(to), "%s/%s.conf", kcdir, lab->masters[i].name);
			snprintf(server, sizeof(server), "https://%s:%d", lab->masters[i].address,
				 APISERVER_PORT);
			r = kubeconfig_for(admin, to, server, d);
		}
	}
	return r;
}

int kha_lab_kubeconfig(const struct kha_lab *lab, const char *entry, char **ret_path,
		       struct kha_diag *d)
{
	bool known = strcmp(entry, "node") == 0 || strcmp(entry, "vip") == 0;

	if (!lab->k8s_bin)
		return kha_diag_set(d, ENOENT,
				    "the lab in %s runs no Kubernetes (made without --kubernetes)",
				    lab->dir);
	for (size_t i = 0; !known && i < lab->n_masters; i++)
		known = strcmp(entry, lab->masters[i].name) == 0;
	if (!known || (strcmp(entry, "vip") == 0 && !lab->n_lbs))
		return kha_diag_set(d, EINVAL, "unknown entry %s: node, %sm1..m%zu", entry,
				    lab->n_lbs ? "vip, " : "", lab->n_masters);
	if (asprintf(ret_path, "%s/kubeconfig/%s.conf", lab->dir, entry) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return 0;
}

/* ---- the command lines ---- */

static void apiserver_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
			   struct kha_lab__strv *s)
{
	char etcd[1024];
	const char *dir = lab->dir, *n = m->name;

	/* its own member first, then the others: all of them, so it outlives its local etcd */
	snprintf(etcd, sizeof(etcd), "%s", m->client_url);
	for (size_t i = 0; i < lab->n_masters; i++)
		if (&lab->masters[i] != m)
			snprintf(etcd + strlen(etcd), sizeof(etcd) - strlen(etcd), ",%s",
				 lab->masters[i].client_url);
	kha_lab__strv_add(s, "%s/kube-apiserver", lab->k8s_bin);
	kha_lab__strv_add(s, "--advertise-address=%s", m->address);
	kha_lab__strv_add(s, "--secure-port=%d", APISERVER_PORT);
	kha_lab__strv_add(s, "--allow-privileged=true");
	kha_lab__strv_add(s, "--authorization-mode=Node,RBAC");
	kha_lab__strv_add(s, "--client-ca-file=%s/%s/pki/ca.crt", dir, n);
	kha_lab__strv_add(s, "--enable-admission-plugins=NodeRestriction");
	kha_lab__strv_add(s, "--etcd-cafile=%s/%s/pki/etcd/ca.crt", dir, n);
	kha_lab__strv_add(s, "--etcd-certfile=%s/%s/pki/apiserver-etcd-client.crt", dir, n);
	kha_lab__strv_add(s, "--etcd-keyfile=%s/%s/pki/apiserver-etcd-client.key", dir, n);
	kha_lab__strv_add(s, "--etcd-servers=%s", etcd);
	kha_lab__strv_add(s, "--kubelet-client-certificate=%s/%s/pki/apiserver-kubelet-client.crt",
			  dir, n);
	kha_lab__strv_add(s, "--kubelet-client-key=%s/%s/pki/apiserver-kubelet-client.key", dir, n);
	kha_lab__strv_add(s, "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname");
	kha_lab__strv_add(s, "--proxy-client-cert-file=%s/%s/pki/front-proxy-client.crt", dir, n);
	kha_lab__strv_add(s, "--proxy-client-key-file=%s/%s/pki/front-proxy-client.key", dir, n);
	kha_lab__strv_add(s, "--requestheader-allowed-names=front-proxy-client");
	kha_lab__strv_add(s, "--requestheader-client-ca-file=%s/%s/pki/front-proxy-ca.crt", dir, n);
	kha_lab__strv_add(s, "--requestheader-extra-headers-prefix=X-Remote-Extra-");
	kha_lab__strv_add(s, "--requestheader-group-headers=X-Remote-Group");
	kha_lab__strv_add(s, "--requestheader-username-headers=X-Remote-User");
	kha_lab__strv_add(s,
			  "--service-account-issuer=https://kubernetes.default.svc.cluster.local");
	kha_lab__strv_add(s, "--service-account-key-file=%s/%s/pki/sa.pub", dir, n);
	kha_lab__strv_add(s, "--service-account-signing-key-file=%s/%s/pki/sa.key", dir, n);
	kha_lab__strv_add(s, "--service-cluster-ip-range=%s", SERVICE_CIDR);
	kha_lab__strv_add(s, "--tls-cert-file=%s/%s/pki/apiserver.crt", dir, n);
	kha_lab__strv_add(s, "--tls-private-key-file=%s/%s/pki/apiserver.key", dir, n);
	/* default/kubernetes lists exactly the live masters (the default, said out loud) */
	kha_lab__strv_add(s, "--endpoint-reconciler-type=lease");
	/* a graceful stop first turns /readyz unready, so entries drain it before it closes */
	kha_lab__strv_add(s, "--shutdown-delay-duration=3s");
	kha_lab__strv_add(s, "--shutdown-send-retry-after=true");
}

static void controller_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
			    bool scheduler, struct kha_lab__strv *s)
{
	const char *dir = lab->dir, *n = m->name;
	const char *conf = scheduler ? "scheduler.conf" : "controller-manager.conf";
	const struct kha_lab_leader_elect *le = &lab->leader_elect;

	kha_lab__strv_add(s, "%s/%s", lab->k8s_bin,
			  scheduler ? "kube-scheduler" : "kube-controller-manager");
	kha_lab__strv_add(s, "--kubeconfig=%s/%s/%s", dir, n, conf);
	kha_lab__strv_add(s, "--authentication-kubeconfig=%s/%s/%s", dir, n, conf);
	kha_lab__strv_add(s, "--authorization-kubeconfig=%s/%s/%s", dir, n, conf);
	kha_lab__strv_add(s, "--bind-address=127.0.0.1");
	kha_lab__strv_add(s, "--leader-elect=true");
	/* kubeadm's command line leaves client-go's timings alone: so does the lab, unless told */
	if (le->lease_duration_us != KHA_LAB_LEASE_DURATION_US ||
	    le->renew_deadline_us != KHA_LAB_RENEW_DEADLINE_US ||
	    le->retry_period_us != KHA_LAB_RETRY_PERIOD_US) {
		char v[32];

		kha_lab__strv_add(s, "--leader-elect-lease-duration=%s",
				  kha_format_duration(v, sizeof(v), le->lease_duration_us));
		kha_lab__strv_add(s, "--leader-elect-renew-deadline=%s",
				  kha_format_duration(v, sizeof(v), le->renew_deadline_us));
		kha_lab__strv_add(s, "--leader-elect-retry-period=%s",
				  kha_format_duration(v, sizeof(v), le->retry_period_us));
	}
	if (scheduler)
		return;
	kha_lab__strv_add(s, "--client-ca-file=%s/%s/pki/ca.crt", dir, n);
	kha_lab__strv_add(s, "--cluster-name=%s", CLUSTER_NAME);
	kha_lab__strv_add(s, "--cluster-signing-cert-file=%s/%s/pki/ca.crt", dir, n);
	kha_lab__strv_add(s, "--cluster-signing-key-file=%s/%s/pki/ca.key", dir, n);
	kha_lab__strv_add(s, "--controllers=*,bootstrapsigner,tokencleaner");
	kha_lab__strv_add(s, "--requestheader-client-ca-file=%s/%s/pki/front-proxy-ca.crt", dir, n);
	kha_lab__strv_add(s, "--root-ca-file=%s/%s/pki/ca.crt", dir, n);
	kha_lab__strv_add(s, "--service-account-private-key-file=%s/%s/pki/sa.key", dir, n);
	kha_lab__strv_add(s, "--use-service-account-credentials=true");
	/* no kubelet runs in the lab: its Node objects never send heartbeats, so the node
	 * lifecycle controller is told to wait an hour before it calls them unreachable */
	kha_lab__strv_add(s, "--node-monitor-grace-period=1h");
}

int kha_lab_leader_elect_check(struct kha_lab_leader_elect *le, struct kha_diag *d)
{
	char a[32], b[32];

	if (!le->lease_duration_us)
		le->lease_duration_us = KHA_LAB_LEASE_DURATION_US;
	if (!le->renew_deadline_us)
		le->renew_deadline_us = KHA_LAB_RENEW_DEADLINE_US;
	if (!le->retry_period_us)
		le->retry_period_us = KHA_LAB_RETRY_PERIOD_US;
	/* what kube-controller-manager and kube-scheduler refuse to start with */
	if (le->renew_deadline_us >= le->lease_duration_us)
		return kha_diag_set(d, EINVAL,
				    "--leader-elect-renew-deadline %s must be shorter than "
				    "--leader-elect-lease-duration %s",
				    kha_format_duration(a, sizeof(a), le->renew_deadline_us),
				    kha_format_duration(b, sizeof(b), le->lease_duration_us));
	if (le->retry_period_us >= le->renew_deadline_us)
		return kha_diag_set(d, EINVAL,
				    "--leader-elect-retry-period %s must be shorter than "
				    "--leader-elect-renew-deadline %s",
				    kha_format_duration(a, sizeof(a), le->retry_period_us),
				    kha_format_duration(b, sizeof(b), le->renew_deadline_us));
	return 0;
}

/* kha proxy in front of the apiservers: the node-local one, or a load balancer's on :6443. */
static void proxy_argv(const struct kha_lab *lab, const struct kha_lab_node *h,
		       struct kha_lab__strv *s)
{
	bool lb = h != &lab->node;

	kha_lab__strv_add(s, "%s", lab->kha_bin);
	kha_lab__strv_add(s, "proxy");
	if (lb)
		kha_lab__strv_add(s, "--listen=0.0.0.0:%u", h->entry_port);
	else
		kha_lab__strv_add(s, "--listen=127.0.0.1:%u", h->entry_port);
	for (size_t i = 0; i < lab->n_masters; i++)
		kha_lab__strv_add(s, "--backend=%s:%d", lab->masters[i].address, APISERVER_PORT);
	kha_lab__strv_add(s, "--check-cacert=%s",
			  lab->kube_ca); /* GET /readyz, the default check */
	if (!lb) {
		/* discovery from default/kubernetes, through itself: the seeds carry the first
		 * connection (docs/proxy.md) */
		kha_lab__strv_add(s, "--kubeconfig=%s/kubeconfig/node.conf", lab->dir);
		kha_lab__strv_add(s, "--state-file=%s/node/backends.yaml", lab->dir);
	}
	kha_lab__strv_add(s, "--check-interval=1s");
	kha_lab__strv_add(s, "--check-fast-interval=250ms");
	kha_lab__strv_add(s, "--check-timeout=500ms");
	kha_lab__strv_add(s, "--check-fall=2");
	kha_lab__strv_add(s, "--connect-timeout=500ms");
	kha_lab__strv_add(s, "--drain-timeout=1s");
	kha_lab__strv_add(s, "--metrics-addr=%s", h->metrics_addr);
}

static void vip_argv(const struct kha_lab *lab, const struct kha_lab_node *h,
		     struct kha_lab__strv *s)
{
	unsigned prio = 150 - 50 * (unsigned)(h - lab->lbs);

	kha_lab__strv_add(s, "%s", lab->kha_bin);
	kha_lab__strv_add(s, "vip");
	kha_lab__strv_add(s, "--interface=eth0");
	kha_lab__strv_add(s, "--vip=%s/24", lab->vip);
	kha_lab__strv_add(s, "--vrid=%d", VRID);
	kha_lab__strv_add(s, "--priority=%u", prio);
	kha_lab__strv_add(s, "--advert-interval=100ms");
	/* the VIP goes where a proxy has an apiserver to send to */
	kha_lab__strv_add(s, "--track-url=http://%s/readyz", h->metrics_addr);
	kha_lab__strv_add(s, "--track-interval=250ms");
	kha_lab__strv_add(s, "--metrics-addr=127.0.0.1:9444");
}

int kha_lab__k8s_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
		      const struct kha_lab_node *h, const struct kha_lab_proc *p,
		      struct kha_lab__strv *s)
{
	switch (p->kind) {
	case KHA_LAB_PROC_APISERVER:
		if (!m)
			return -EINVAL;
		apiserver_argv(lab, m, s);
		break;
	case KHA_LAB_PROC_CONTROLLER_MANAGER:
	case KHA_LAB_PROC_SCHEDULER:
		if (!m)
			return -EINVAL;
		controller_argv(lab, m, p->kind == KHA_LAB_PROC_SCHEDULER, s);
		break;
	case KHA_LAB_PROC_PROXY:
		if (!h || !lab->kha_bin)
			return -EINVAL;
		proxy_argv(lab, h, s);
		break;
	case KHA_LAB_PROC_VIP:
		if (!h || !lab->kha_bin || h == &lab->node)
			return -EINVAL;
		vip_argv(lab, h, s);
		break;
	default:
		return -EINVAL;
	}
	return s->oom ? -ENOMEM : 0;
}

/* ---- readiness ---- */

/* GET url with the Kubernetes CA: the HTTP status, or 0 when nothing answered. */
static long kube_get(struct kha_http *h, const char *url)
{
	struct kha_http_request req = {.url = url, .timeout_us = READY_GET_US};
	struct kha_http_response resp = {0};
	long status = 0;

	if (kha_http_do(h, &req, &resp, NULL) == 0)
		status = resp.status;
	kha_http_response_release(&resp);
	return status;
}

int kha_lab__k8s_ready(const struct kha_lab *lab, char *what, size_t size)
{
	struct kha_http_options ho = {.cacert = lab->kube_ca,
				      .connect_timeout_us = READY_GET_US / 2};
	kha_auto(kha_http_freep) struct kha_http *h = NULL;
	char url[128];

	if (kha_http_new(&ho, &h, NULL) < 0) {
		snprintf(what, size, "cannot read the Kubernetes CA %s", lab->kube_ca);
		return 0;
	}
	for (size_t i = 0; i < lab->n_masters; i++) {
		snprintf(url, sizeof(url), "https://%s:%d/readyz", lab->masters[i].address,
			 APISERVER_PORT);
		if (kube_get(h, url) != 200) {
			snprintf(what, size, "%s's kube-apiserver is not ready (see %s/%s/%s)",
				 lab->masters[i].name, lab->dir, lab->masters[i].name,
				 "kube-apiserver.log");
			return 0;
		}
	}
	snprintf(url, sizeof(url), "%s/readyz", lab->node.entry_url);
	if (lab->node.entry_url && kube_get(h, url) != 200) {
		snprintf(what, size, "the node's entry %s does not reach a ready apiserver",
			 lab->node.entry_url);
		return 0;
	}
	if (lab->n_lbs) {
		snprintf(url, sizeof(url), "%s/readyz", lab->lbs[0].entry_url);
		if (kube_get(h, url) != 200) {
			snprintf(
				what, size,
				"the VIP entry %s does not answer (see %s/lb1/vip.log and proxy.log)",
				lab->lbs[0].entry_url, lab->dir);
			return 0;
		}
	}
	return 1;
}

/* ---- the API ---- */

/* A client for the lab's API with kubeconfig name (in DIR/kubeconfig), to server (NULL: its). */
int kha_lab__k8s_client(const struct kha_lab *lab, const char *name, const char *server,
			struct kha_kube_client **ret, struct kha_diag *d)
{
	kha_autofree char *path = NULL;
	kha_auto(kha_kube_config_freep) struct kha_kube_config *cfg = NULL;
	struct kha_kube_load_opts lo = {0};
	int r;

	if (asprintf(&path, "%s/kubeconfig/%s", lab->dir, name) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	lo.kubeconfig = path;
	r = kha_kube_config_load(&lo, &cfg, d);
	if (r == 0)
		r = kha_kube_client_new(cfg, ret, d);
	if (r == 0 && server)
		r = kha_kube_client_set_server(*ret, server, NULL, d);
	if (r == 0)
		kha_kube_client_set_timeouts(*ret, READY_GET_US, 5 * READY_GET_US);
	return r;
}

/* ---- static pods: what a kubelet does with kubeadm's manifests, without a runtime ---- */

/* The lab's control-plane processes as kubeadm's static pods: kind, component, CPU request. */
static const struct {
	enum kha_lab_proc_kind kind;
	const char *component;
	const char *cpu;
} static_pods[] = {
	{KHA_LAB_PROC_ETCD, "etcd", "100m"},
	{KHA_LAB_PROC_APISERVER, "kube-apiserver", "250m"},
	{KHA_LAB_PROC_CONTROLLER_MANAGER, "kube-controller-manager", "200m"},
	{KHA_LAB_PROC_SCHEDULER, "kube-scheduler", "100m"},
};

#define MANIFEST_DIR	 "manifests"
#define PUBLISH_ATTEMPTS 3
#define NODE_ROLE	 "node-role.kubernetes.io/control-plane"

/* Whether YAML would read the plain scalar s as something other than a string. */
static bool yaml_needs_quotes(const char *s)
{
	static const char *const words[] = {"true", "false", "yes", "no", "on",
					    "off",  "null",  "~",   "y",  "n"};
	char *end;

	if (!s[0])
		return true;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(words); i++)
		if (strcasecmp(s, words[i]) == 0)
			return true;
	(void)strtod(s, &end);
	return *end == '\0';
}

static int emit_scalar(yaml_emitter_t *e, const char *text, bool quote)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(
		    &ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), !quote, 1,
		    quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE))
		return -ENOMEM;
	return yaml_emitter_emit(e, &ev) ? 0 : -EIO;
}

/* v as YAML block nodes (objects in their order, strings quoted where YAML would retype them). */
static int emit_json(yaml_emitter_t *e, const json_t *v)
{
	yaml_event_t ev;
	const char *key;
	json_t *item;
	size_t i;
	char num[32];
	int r = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(e, &ev))
			return -EIO;
		json_object_foreach ((json_t *)v, key, item) {
			r = emit_scalar(e, key, yaml_needs_quotes(key));
			if (r == 0)
				r = emit_json(e, item);
			if (r < 0)
				return r;
		}
		if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
			return -EIO;
		return 0;
	case JSON_ARRAY:
		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(e, &ev))
			return -EIO;
		json_array_foreach (v, i, item) {
			r = emit_json(e, item);
			if (r < 0)
				return r;
		}
		if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev))
			return -EIO;
		return 0;
	case JSON_STRING:
		return emit_scalar(e, json_string_value(v),
				   yaml_needs_quotes(json_string_value(v)));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(e, num, false);
	case JSON_TRUE:
	case JSON_FALSE:
		return emit_scalar(e, json_is_true(v) ? "true" : "false", false);
	default:
		return emit_scalar(e, "null", false);
	}
}

/* obj as one YAML document (a manifest as kubeadm writes it), written to path (0600). */
static int write_yaml(const char *path, const json_t *obj, struct kha_diag *d)
{
	kha_autofree char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	yaml_emitter_t e;
	yaml_event_t ev;
	int r = 0;

	if (!f)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (!yaml_emitter_initialize(&e)) {
		fclose(f);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	yaml_emitter_set_output_file(&e, f);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
	    !yaml_emitter_emit(&e, &ev) ||
	    !yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(&e, &ev))
		r = -EIO;
	if (r == 0)
		r = emit_json(&e, obj);
	if (r == 0 && (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&e, &ev) ||
		       !yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&e, &ev)))
		r = -EIO;
	yaml_emitter_delete(&e);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0)
		return kha_diag_set(d, -r, "%s: cannot write YAML", path);
	return kha_file_write_atomic(path, text, len, 0600, d);
}

/* The kubelet's config hash of a static pod: an MD5 of its manifest, in hex (32 digits). */
static int manifest_hash(const char *path, char hex[33], struct kha_diag *d)
{
	kha_autofree char *buf = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	size_t len;
	int r = kha_file_read_all(path, MAX_TEXT, &buf, &len, d);

	if (r < 0)
		return r;
	if (EVP_Digest(buf, len, md, &md_len, EVP_md5(), NULL) != 1 || md_len != 16)
		return kha_diag_set(d, EIO, "%s: cannot hash it", path);
	for (unsigned i = 0; i < md_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/*
 * The static pod of process p of master m, as kubeadm's manifest has it: command = exactly the
 * argv the lab spawns (kha_lab__proc_argv, the one builder), labels component and tier, host
 * network, priority class system-node-critical, the lab's folders as hostPath volumes.
 */
static json_t *static_pod(const struct kha_lab *lab, const struct kha_lab_master *m,
			  const struct kha_lab_proc *p, size_t k, const char *image)
{
	struct kha_lab__strv argv = {0};
	json_t *pod, *cmd, *ann;

	if (kha_lab__proc_argv(lab, m, NULL, p, true, &argv) < 0) {
		kha_lab__strv_release(&argv);
		return NULL;
	}
	cmd = json_array();
	for (size_t i = 0; cmd && i < argv.n; i++)
		if (json_array_append_new(cmd, json_string(argv.v[i])) < 0)
			json_decref(cmd), cmd = NULL;
	kha_lab__strv_release(&argv);
	ann = json_object();
	if (ann && p->kind == KHA_LAB_PROC_APISERVER) {
		char ep[64];

		snprintf(ep, sizeof(ep), "%s:%d", m->address, APISERVER_PORT);
		kha_ignore(kha_json_set(
			ann, "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint",
			json_string(ep)));
	} else if (ann && p->kind == KHA_LAB_PROC_ETCD) {
		kha_ignore(kha_json_set(ann, "kubeadm.kubernetes.io/etcd.advertise-client-urls",
					json_string(m->client_url)));
	}
	if (!cmd || !ann) {
		json_decref(cmd);
		json_decref(ann);
		return NULL;
	}
	if (!json_object_size(ann)) /* kubeadm writes none on the controller-manager, scheduler */
		json_decref(ann), ann = NULL;
	pod = json_pack(
		"{s:s, s:s, s:{s:o*, s:{s:s, s:s}, s:s, s:s}, s:{s:[{s:o, s:s, s:s, s:s, s:{s:{s:s}}, "
		"s:[{s:s, s:s}, {s:s, s:s, s:b}]}], s:b, s:s, s:{s:{s:s}}, "
		"s:[{s:{s:s, s:s}, s:s}, {s:{s:s, s:s}, s:s}]}, s:{}}",
		"apiVersion", "v1", "kind", "Pod", "metadata", "annotations", ann, "labels",
		"component", static_pods[k].component, "tier", "control-plane", "name",
		static_pods[k].component, "namespace", "kube-system", "spec", "containers",
		"command", cmd, "image", image, "imagePullPolicy", "IfNotPresent", "name",
		static_pods[k].component, "resources", "requests", "cpu", static_pods[k].cpu,
		"volumeMounts", "mountPath", lab->dir, "name", "lab", "mountPath", lab->k8s_bin,
		"name", "k8s-bin", "readOnly", 1, "hostNetwork", 1, "priorityClassName",
		"system-node-critical", "securityContext", "seccompProfile", "type",
		"RuntimeDefault", "volumes", "hostPath", "path", lab->dir, "type", "Directory",
		"name", "lab", "hostPath", "path", lab->k8s_bin, "type", "Directory", "name",
		"k8s-bin", "status");
	return pod;
}

/*
 * The mirror pod of a static pod, as the kubelet makes it: named <component>-<node>, bound to
 * the node, tolerating every NoExecute taint, with the kubelet's annotations (the config hash,
 * repeated as kubernetes.io/config.mirror, which is what makes the apiserver treat it as a
 * mirror pod) and an owner reference to its Node. The apiserver refuses a mirror pod that names
 * a service account or mounts secrets, config maps or projected volumes: a static pod uses
 * none.
 */
static json_t *mirror_pod(const json_t *pod, const char *node, const char *node_uid,
			  const char *hash, const char *seen)
{
	json_t *mp = json_deep_copy(pod), *meta, *spec, *ann, *tol;
	char name[128];

	if (!mp)
		return NULL;
	meta = json_object_get(mp, "metadata");
	spec = json_object_get(mp, "spec");
	ann = json_object_get(meta, "annotations");
	if (!ann && kha_json_set(meta, "annotations", (ann = json_object())) < 0) {
		json_decref(mp);
		return NULL;
	}
	json_object_del(mp, "status");
	snprintf(name, sizeof(name), "%s-%s", json_string_value(json_object_get(meta, "name")),
		 node);
	tol = json_pack("[{s:s, s:s}]", "operator", "Exists", "effect", "NoExecute");
	if (kha_json_set(meta, "name", json_string(name)) < 0 ||
	    kha_json_set(ann, "kubernetes.io/config.hash", json_string(hash)) < 0 ||
	    kha_json_set(ann, "kubernetes.io/config.mirror", json_string(hash)) < 0 ||
	    kha_json_set(ann, "kubernetes.io/config.seen", json_string(seen)) < 0 ||
	    kha_json_set(ann, "kubernetes.io/config.source", json_string("file")) < 0 ||
	    kha_json_set(meta, "ownerReferences",
			 json_pack("[{s:s, s:s, s:s, s:s}]", "apiVersion", "v1", "kind", "Node",
				   "name", node, "uid", node_uid)) < 0 ||
	    kha_json_set(spec, "nodeName", json_string(node)) < 0 || !tol ||
	    kha_json_set(spec, "tolerations", tol) < 0) {
		json_decref(mp);
		return NULL;
	}
	return mp;
}

/* PATCHes the status subresource of path with status (taken), as a kubelet reports it. */
static int patch_status(struct kha_kube_client *c, const char *path, json_t *status,
			struct kha_diag *d)
{
	char url[256];
	json_t *body = status ? json_pack("{s:o}", "status", status) : NULL;
	int r;

	if (!body)
		return kha_diag_set(d, ENOMEM, "out of memory");
	snprintf(url, sizeof(url), "%s/status", path);
	r = kha_kube_request(c, "PATCH", url, body, NULL, d);
	json_decref(body);
	return r < 0 ? r : 0;
}

/*
 * Registers master m as a Node as kubeadm's kubelet does (label and NoSchedule taint of the
 * control plane, so ordinary pods stay off it), reported Ready with its address. Its uid (for
 * the mirror pods' owner reference) goes to uid.
 */
static int register_master(struct kha_kube_client *c, const struct kha_lab_master *m,
			   const char *now, char *uid, size_t size, struct kha_diag *d)
{
	char path[128];
	json_t *node, *reply = NULL, *status;
	int r;

	node = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s, s:s}}, s:{s:[{s:s, s:s}]}}",
			 "apiVersion", "v1", "kind", "Node", "metadata", "name", m->name, "labels",
			 "kubernetes.io/hostname", m->name, "kubernetes.io/os", "linux", NODE_ROLE,
			 "", "node.kubernetes.io/exclude-from-external-load-balancers", "", "spec",
			 "taints", "key", NODE_ROLE, "effect", "NoSchedule");
	if (!node)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_kube_request(c, "POST", "/api/v1/nodes", node, &reply, d);
	json_decref(node);
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", m->name);
	if (r == -EEXIST)
		r = kha_kube_request(c, "GET", path, NULL, &reply, d);
	if (r < 0) {
		json_decref(reply);
		return r;
	}
	snprintf(uid, size, "%s",
		 json_string_value(json_object_get(json_object_get(reply, "metadata"), "uid"))
			 ?: "");
	json_decref(reply);
	if (!uid[0])
		return kha_diag_set(d, EBADMSG, "Node %s has no uid", m->name);
	status =
		json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s}], s:[{s:s, s:s}, {s:s, s:s}], "
			  "s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}",
			  "conditions", "type", "Ready", "status", "True", "reason", "KubeletReady",
			  "message", "registered by the kha lab with its static pods (no kubelet)",
			  "lastHeartbeatTime", now, "lastTransitionTime", now, "addresses", "type",
			  "InternalIP", "address", m->address, "type", "Hostname", "address",
			  m->name, "capacity", "cpu", "2", "memory", "4Gi", "pods", "110",
			  "allocatable", "cpu", "2", "memory", "4Gi", "pods", "110");
	return patch_status(c, path, status, d);
}

/* Publishes the mirror pod of the manifest at path, and reports it running as a kubelet does. */
static int publish_mirror(struct kha_kube_client *c, const struct kha_lab_master *m,
			  const char *component, const json_t *pod, const char *path,
			  const char *node_uid, const char *now, struct kha_diag *d)
{
	char hash[33], url[256], name[128];
	json_t *mp, *status;
	const char *image;
	int r = manifest_hash(path, hash, d);

	if (r < 0)
		return r;
	mp = mirror_pod(pod, m->name, node_uid, hash, now);
	if (!mp)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_kube_request(c, "POST", "/api/v1/namespaces/kube-system/pods", mp, NULL, d);
	snprintf(name, sizeof(name), "%s-%s", component, m->name);
	image = json_string_value(json_object_get(
		json_array_get(json_object_get(json_object_get(mp, "spec"), "containers"), 0),
		"image"));
	snprintf(url, sizeof(url), "/api/v1/namespaces/kube-system/pods/%s", name);
	status = r < 0 && r != -EEXIST
			 ? NULL
			 : json_pack("{s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}, "
				     "{s:s, s:s, s:s}], s:s, s:[{s:s}], s:s, s:[{s:s}], s:s, "
				     "s:[{s:s, s:s, s:s, s:b, s:b, s:i, s:{s:{s:s}}}]}",
				     "phase", "Running", "conditions", "type", "Initialized",
				     "status", "True", "lastTransitionTime", now, "type", "Ready",
				     "status", "True", "lastTransitionTime", now, "type",
				     "ContainersReady", "status", "True", "lastTransitionTime", now,
				     "type", "PodScheduled", "status", "True", "lastTransitionTime",
				     now, "hostIP", m->address, "hostIPs", "ip", m->address,
				     "podIP", m->address, "podIPs", "ip", m->address, "startTime",
				     now, "containerStatuses", "name", component, "image", image,
				     "imageID", "", "ready", 1, "started", 1, "restartCount", 0,
				     "state", "running", "startedAt", now);
	if (r == -EEXIST || r > 0) /* the HTTP status of a success */
		r = 0;
	if (r == 0)
		r = status ? patch_status(c, url, status, d)
			   : kha_diag_set(d, ENOMEM, "out of memory");
	json_decref(mp);
	if (r < 0)
		kha_diag_prefix(d, "mirror pod kube-system/%s", name);
	return r;
}

/* The versions the images are tagged with: the apiserver's (GET /version) and etcd's. */
static int versions(const struct kha_lab *lab, struct kha_kube_client *c, char *k8s,
		    size_t k8s_size, char *etcd, size_t etcd_size, struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *e = NULL;
	struct kha_etcd_status st = {0};
	json_t *reply = NULL;
	int r = kha_kube_request(c, "GET", "/version", NULL, &reply, d);

	if (r < 0)
		return r;
	snprintf(k8s, k8s_size, "%s",
		 json_string_value(json_object_get(reply, "gitVersion")) ?: "");
	json_decref(reply);
	r = kha_lab__etcd_client(lab, 5 * READY_GET_US, &e, d);
	if (r == 0)
		r = kha_etcd_status(e, &st, d);
	if (r < 0)
		return r;
	snprintf(etcd, etcd_size, "%s", st.version ? st.version : "");
	kha_etcd_status_release(&st);
	return k8s[0] && etcd[0] ? 0 : kha_diag_set(d, EBADMSG, "no version from the API or etcd");
}

/*
 * What a kubelet does on each master with the static pod manifests kubeadm writes: the lab
 * writes them (DIR/mN/manifests/<component>.yaml, from the argv it spawns), registers the
 * master as a Node and publishes each manifest as a mirror pod in kube-system, reported
 * running. No container runtime is involved: the processes are the lab's own.
 */
static int publish_static_pods(const struct kha_lab *lab, struct kha_kube_client *c,
			       struct kha_diag *d)
{
	char k8s[64], etcd[64], now[64];
	int r = versions(lab, c, k8s, sizeof(k8s), etcd, sizeof(etcd), d);

	kha_kube_microtime_format(now, sizeof(now), (int64_t)kha_wall_us());
	for (size_t i = 0; r == 0 && i < lab->n_masters; i++) {
		struct kha_lab_master *m = &lab->masters[i];
		kha_autofree char *dir = NULL;
		char uid[64];

		if (asprintf(&dir, "%s/%s/%s", lab->dir, m->name, MANIFEST_DIR) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		r = kha_file_mkdir_p(dir, 0700, d);
		if (r == 0)
			r = register_master(c, m, now, uid, sizeof(uid), d);
		for (size_t k = 0; r == 0 && k < KHA_ARRAY_SIZE(static_pods); k++) {
			const struct kha_lab_proc *p = kha_lab_master_proc(m, static_pods[k].kind);
			char image[128], path[4096];
			json_t *pod;

			if (!p)
				continue;
			if (p->kind == KHA_LAB_PROC_ETCD)
				snprintf(image, sizeof(image), "registry.k8s.io/etcd:%s-0", etcd);
			else
				snprintf(image, sizeof(image), "registry.k8s.io/%s:%s",
					 static_pods[k].component, k8s);
			snprintf(path, sizeof(path), "%s/%s.yaml", dir, static_pods[k].component);
			pod = static_pod(lab, m, p, k, image);
			if (!pod)
				return kha_diag_set(d, ENOMEM, "out of memory");
			r = write_yaml(path, pod, d);
			if (r == 0)
				r = publish_mirror(c, m, static_pods[k].component, pod, path, uid,
						   now, d);
			json_decref(pod);
		}
		if (r < 0)
			kha_diag_prefix(d, "%s's static pods", m->name);
	}
	return r;
}

int kha_lab__k8s_bootstrap(const struct kha_lab *lab, struct kha_diag *d)
{
	kha_auto(kha_kube_client_freep) struct kha_kube_client *c = NULL;
	char server[64];
	json_t *crb;
	int r;

	/* straight to m1: the entries may still be settling */
	snprintf(server, sizeof(server), "https://%s:%d", lab->masters[0].address, APISERVER_PORT);
	r = kha_lab__k8s_client(lab, "super-admin.conf", server, &c, d);
	if (r < 0)
		return r;
	crb = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:s}]}", "apiVersion",
			"rbac.authorization.k8s.io/v1", "kind", "ClusterRoleBinding", "metadata",
			"name", "kubeadm:cluster-admins", "roleRef", "apiGroup",
			"rbac.authorization.k8s.io", "kind", "ClusterRole", "name", "cluster-admin",
			"subjects", "apiGroup", "rbac.authorization.k8s.io", "kind", "Group",
			"name", "kubeadm:cluster-admins");
	if (!crb)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_kube_request(c, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
			     crb, NULL, d);
	json_decref(crb);
	if (r == -EEXIST)
		r = 0;
	/* some thirty requests to an API that has just come up on loaded cores: a slow answer
	 * is tried again (every step is idempotent: what exists is kept) */
	kha_kube_client_set_timeouts(c, 5 * READY_GET_US, 30 * READY_GET_US);
	for (unsigned attempt = 1; r >= 0; attempt++) {
		r = publish_static_pods(lab, c, d);
		if (r >= 0 || r == -ENOMEM || attempt == PUBLISH_ATTEMPTS)
			break;
		kha_ignore(kha_sleep_us(KHA_USEC_PER_SEC, NULL));
		kha_diag_clear(d);
	}
	return r < 0 ? r : 0;
}

int kha_lab_lease_holder(const struct kha_lab *lab, const char *name, char *buf, size_t size)
{
	kha_auto(kha_kube_client_freep) struct kha_kube_client *c = NULL;
	struct kha_kube_lease lease;

	buf[0] = '\0';
	if (kha_lab__k8s_client(lab, "node.conf", NULL, &c, NULL) < 0 ||
	    kha_kube_lease_get(c, "kube-system", name, &lease, NULL) < 0)
		return -1;
	snprintf(buf, size, "%s", lease.holder_identity);
	return 0;
}

int kha_lab_apiserver_ready(const struct kha_lab *lab, const char *base)
{
	struct kha_http_options ho = {.cacert = lab->kube_ca,
				      .connect_timeout_us = READY_GET_US / 2};
	kha_auto(kha_http_freep) struct kha_http *h = NULL;
	char url[128];

	if (kha_http_new(&ho, &h, NULL) < 0)
		return 0;
	snprintf(url, sizeof(url), "%s/readyz", base);
	return kube_get(h, url) == 200;
}
