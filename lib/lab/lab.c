// SPDX-License-Identifier: MIT
/* The lab's life cycle: up, start and stop of masters, down (see include/kha/lab.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "kha/certs.h"
#include "kha/file.h"
#include "kha/lab.h"
#include "kha/proc.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define CERT_DAYS	   365
#define POLL_INTERVAL_US   (100 * KHA_USEC_PER_MSEC)
#define HEALTH_TIMEOUT_US  (2 * KHA_USEC_PER_SEC)
#define KILL_WAIT_US	   (5 * KHA_USEC_PER_SEC)
#define FAIL_STOP_GRACE_US (2 * KHA_USEC_PER_SEC)
#define PROXY_READY_US	   (200 * KHA_USEC_PER_MSEC)
#define LEADER_READ_US	   (1 * KHA_USEC_PER_SEC)
/* every process of a lab, recorded ones: masters' and the node's */
#define MAX_LAB_PROCS (5 * KHA_LAB_MAX_MASTERS + 1 + 2 * KHA_LAB_LBS)

/* Timings of the companions: quick enough that the drill sees handovers in seconds. */
#define BACKUP_EVERY	 "5s"
#define BACKUP_KEEP_LAST "5"

/* ---- small helpers ---- */

void kha_lab__strv_add(struct kha_lab__strv *s, const char *fmt, ...)
{
	char *str = NULL;
	va_list ap;
	int r;

	if (s->oom)
		return;
	va_start(ap, fmt);
	r = vasprintf(&str, fmt, ap);
	va_end(ap);
	if (r < 0 || KHA_RESIZE(s->v, s->n + 2) < 0) { /* room for the NULL that ends it */
		if (r >= 0)
			free(str);
		s->oom = true;
		return;
	}
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

void kha_lab__strv_release(struct kha_lab__strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct kha_lab__strv){0};
}

/*
 * Ports free right now on 127.0.0.1: all bound at once (so distinct), then released; the
 * processes bind them a moment later. Chosen at random below the kernel's ephemeral range
 * (32768 and up by default), where nothing else asks the kernel for "any free port" and so
 * cannot be handed one of ours in between; the kernel's choice only when that range is full.
 */
#define MAX_PORTS     (3 * KHA_LAB_MAX_MASTERS + 2)
#define PORT_LOW      20000
#define PORT_SPAN     12000
#define PORT_ATTEMPTS 64
static int bind_port(int fd, uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	return bind(fd, (struct sockaddr *)&sa, sizeof(sa));
}

static int pick_ports(uint16_t *ports, size_t n, struct kha_diag *d)
{
	int fds[MAX_PORTS];
	int r = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(sa);
		bool bound = false;

		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		for (int k = 0; fds[i] >= 0 && !bound && k < PORT_ATTEMPTS; k++) {
			uint32_t rnd = 0;

			if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
				break;
			bound = bind_port(fds[i], (uint16_t)(PORT_LOW + rnd % PORT_SPAN)) == 0;
		}
		if (fds[i] < 0 ||
		    (!bound && bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0) ||
		    getsockname(fds[i], (struct sockaddr *)&sa, &len) < 0) {
			r = kha_diag_set(d, errno, "cannot find a free port on 127.0.0.1: %s",
					 strerror(errno));
			if (fds[i] >= 0)
				close(fds[i]);
			break;
		}
		ports[i] = ntohs(sa.sin_port);
	}
	while (i > 0)
		close(fds[--i]);
	return r;
}

/* Appends s to buf as a single-quoted shell word. */
static void shell_quote(char *buf, size_t size, const char *s)
{
	size_t used = strlen(buf);

	snprintf(buf + used, size - used, "'");
	for (; *s; s++) {
		used = strlen(buf);
		if (*s == '\'')
			snprintf(buf + used, size - used, "'\\''");
		else
			snprintf(buf + used, size - used, "%c", *s);
	}
	used = strlen(buf);
	snprintf(buf + used, size - used, "'");
}

static int write_env(const struct kha_lab *lab, struct kha_diag *d)
{
	kha_autofree char *path = kha_lab__path(lab->dir, LAB_ENV);
	kha_autofree char *eps = kha_lab_endpoints(lab);
	char text[8192] = "";
	const struct {
		const char *name, *value;
	} vars[] = {
		{"ETCDCTL_ENDPOINTS", eps},
		{"ETCDCTL_CACERT", lab->ca_cert},
		{"ETCDCTL_CERT", lab->client_cert},
		{"ETCDCTL_KEY", lab->client_key},
	};

	if (!path || !eps)
		return kha_diag_set(d, ENOMEM, "out of memory");
	snprintf(text, sizeof(text),
		 "# kha lab in %s: '. %s/env', then etcdctl talks to it over TLS\n"
		 "export ETCDCTL_API=3\n",
		 lab->dir, lab->dir);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(vars); i++) {
		size_t used = strlen(text);

		snprintf(text + used, sizeof(text) - used, "export %s=", vars[i].name);
		shell_quote(text, sizeof(text), vars[i].value);
		used = strlen(text);
		snprintf(text + used, sizeof(text) - used, "\n");
	}
	return kha_file_write_atomic(path, text, strlen(text), 0644, d);
}

/* ---- processes ---- */

/* The etcd command line of master m; state_new for the first start of a new cluster. */
static int etcd_argv(const struct kha_lab *lab, const struct kha_lab_master *m, bool state_new,
		     struct kha_lab__strv *s)
{
	char cluster[2048] = "";

	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(cluster);

		snprintf(cluster + used, sizeof(cluster) - used, "%s%s=%s", i ? "," : "",
			 lab->masters[i].name, lab->masters[i].peer_url);
	}
	kha_lab__strv_add(s, "%s", lab->etcd_bin);
	kha_lab__strv_add(s, "--name=%s", m->name);
	kha_lab__strv_add(s, "--data-dir=%s", m->data_dir);
	kha_lab__strv_add(s, "--listen-client-urls=%s", m->client_url);
	kha_lab__strv_add(s, "--advertise-client-urls=%s", m->client_url);
	kha_lab__strv_add(s, "--listen-peer-urls=%s", m->peer_url);
	kha_lab__strv_add(s, "--initial-advertise-peer-urls=%s", m->peer_url);
	kha_lab__strv_add(s, "--initial-cluster=%s", cluster);
	kha_lab__strv_add(s, "--initial-cluster-state=%s", state_new ? "new" : "existing");
	kha_lab__strv_add(s, "--initial-cluster-token=%s", lab->token);
	kha_lab__strv_add(s, "--cert-file=%s", m->cert);
	kha_lab__strv_add(s, "--key-file=%s", m->key);
	kha_lab__strv_add(s, "--trusted-ca-file=%s", lab->ca_cert);
	kha_lab__strv_add(s, "--client-cert-auth");
	kha_lab__strv_add(s, "--peer-cert-file=%s", m->cert);
	kha_lab__strv_add(s, "--peer-key-file=%s", m->key);
	kha_lab__strv_add(s, "--peer-trusted-ca-file=%s", lab->ca_cert);
	kha_lab__strv_add(s, "--peer-client-cert-auth");
	kha_lab__strv_add(s, "--logger=zap");
	kha_lab__strv_add(s, "--log-outputs=stderr");
	return s->oom ? -ENOMEM : 0;
}

/* The client URLs with m's own member first: each master's companions prefer their local etcd,
 * as a static pod talks to the etcd of its own machine, and fail over to the others. */
static void endpoints_from(const struct kha_lab *lab, const struct kha_lab_master *m, char *buf,
			   size_t size)
{
	snprintf(buf, size, "%s", m->client_url);
	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(buf);

		if (&lab->masters[i] != m)
			snprintf(buf + used, size - used, ",%s", lab->masters[i].client_url);
	}
}

/*
 * A master's kha elect: campaigns in the lab's election as the master's name and, while it
 * leads, runs a scheduled kha etcd backup into the master's own backup directory (so the
 * directory a snapshot lands in names the master that took it).
 */
static int elect_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
		      struct kha_lab__strv *s)
{
	char eps[2048];

	endpoints_from(lab, m, eps, sizeof(eps));
	kha_lab__strv_add(s, "%s", lab->kha_bin);
	kha_lab__strv_add(s, "elect");
	kha_lab__strv_add(s, "--endpoints=%s", eps);
	kha_lab__strv_add(s, "--cacert=%s", lab->ca_cert);
	kha_lab__strv_add(s, "--cert=%s", m->cert);
	kha_lab__strv_add(s, "--key=%s", m->key);
	kha_lab__strv_add(s, "--election=%s", lab->election);
	kha_lab__strv_add(s, "--id=%s", m->name);
	kha_lab__strv_add(s, "--ttl=%ds", LAB_ELECT_TTL_S);
	kha_lab__strv_add(s, "--restart=always");
	kha_lab__strv_add(s, "--");
	kha_lab__strv_add(s, "%s", lab->kha_bin);
	kha_lab__strv_add(s, "etcd");
	kha_lab__strv_add(s, "backup");
	kha_lab__strv_add(s, "--endpoints=%s", eps);
	kha_lab__strv_add(s, "--cacert=%s", lab->ca_cert);
	kha_lab__strv_add(s, "--cert=%s", m->cert);
	kha_lab__strv_add(s, "--key=%s", m->key);
	kha_lab__strv_add(s, "--dir=%s", m->backup_dir);
	kha_lab__strv_add(s, "--every=%s", BACKUP_EVERY);
	kha_lab__strv_add(s, "--keep-last=%s", BACKUP_KEEP_LAST);
	kha_lab__strv_add(s, "--metrics-addr=127.0.0.1:%u", m->backup_metrics_port);
	return s->oom ? -ENOMEM : 0;
}

/*
 * The node's kha proxy in front of the members' client ports. No kube-apiserver exists here, so
 * its backends are the members and its HTTPS check is etcd's GET /health with the lab's client
 * certificate; on real masters the same command has --backend MASTER:6443 and the default
 * /readyz check. Faster checks than the defaults, so that the drill's faults show in seconds.
 */
static int proxy_argv(const struct kha_lab *lab, struct kha_lab__strv *s)
{
	kha_lab__strv_add(s, "%s", lab->kha_bin);
	kha_lab__strv_add(s, "proxy");
	kha_lab__strv_add(s, "--listen=127.0.0.1:%u", lab->node.entry_port);
	for (size_t i = 0; i < lab->n_masters; i++)
		kha_lab__strv_add(s, "--backend=127.0.0.1:%u", lab->masters[i].client_port);
	kha_lab__strv_add(s, "--check=https");
	kha_lab__strv_add(s, "--check-path=/health");
	kha_lab__strv_add(s, "--check-cacert=%s", lab->ca_cert);
	kha_lab__strv_add(s, "--check-cert=%s", lab->client_cert);
	kha_lab__strv_add(s, "--check-key=%s", lab->client_key);
	kha_lab__strv_add(s, "--check-interval=%dms", LAB_PROXY_CHECK_MS);
	kha_lab__strv_add(s, "--check-fast-interval=%dms", LAB_PROXY_FAST_MS);
	kha_lab__strv_add(s, "--check-timeout=500ms");
	kha_lab__strv_add(s, "--check-fall=%d", LAB_PROXY_FALL);
	kha_lab__strv_add(s, "--connect-timeout=500ms");
	kha_lab__strv_add(s, "--first-byte-timeout=%dms", LAB_PROXY_FIRST_BYTE_MS);
	kha_lab__strv_add(s, "--drain-timeout=1s");
	kha_lab__strv_add(s, "--metrics-addr=%s", lab->node.metrics_addr);
	return s->oom ? -ENOMEM : 0;
}

int kha_lab__proc_argv(const struct kha_lab *lab, const struct kha_lab_master *m,
		       const struct kha_lab_node *h, const struct kha_lab_proc *p, bool state_new,
		       struct kha_lab__strv *argv)
{
	switch (p->kind) {
	case KHA_LAB_PROC_ETCD:
		return m ? etcd_argv(lab, m, state_new, argv) : -EINVAL;
	case KHA_LAB_PROC_ELECT:
		return m && lab->kha_bin && lab->election ? elect_argv(lab, m, argv) : -EINVAL;
	case KHA_LAB_PROC_PROXY:
		if (lab->k8s_bin)
			return kha_lab__k8s_argv(lab, NULL, h, p, argv);
		return lab->kha_bin && lab->node.entry_url ? proxy_argv(lab, argv) : -EINVAL;
	default:
		return lab->k8s_bin ? kha_lab__k8s_argv(lab, m, h, p, argv) : -EINVAL;
	}
}

/*
 * Starts p (of master m, or of host h: the node or a load balancer) detached, and records it.
 * In a Kubernetes lab it runs in its host's network namespace (`ip netns exec` execs it: the
 * PID recorded is the program's).
 */
static int spawn_proc(const struct kha_lab *lab, const struct kha_lab_master *m,
		      const struct kha_lab_node *h, struct kha_lab_proc *p, bool state_new,
		      struct kha_diag *d)
{
	struct kha_lab__strv argv = {0};
	struct kha_proc proc;
	struct kha_proc_spawn_opts o = {
		.log_path = p->log_path, .cwd = lab->dir, .new_session = true};
	const char *owner = m ? m->name : h->name ? h->name : "node";
	const char *netns = m ? m->netns : h->netns;
	int r;

	if (netns) {
		/* its host: the network namespace and a hostname of its own (leader election
		 * identities of the controller-manager and the scheduler start with it); each
		 * step execs the next, so the PID recorded is the program's */
		kha_lab__strv_add(&argv, "ip");
		kha_lab__strv_add(&argv, "netns");
		kha_lab__strv_add(&argv, "exec");
		kha_lab__strv_add(&argv, "%s", netns);
		kha_lab__strv_add(&argv, "unshare");
		kha_lab__strv_add(&argv, "--uts");
		kha_lab__strv_add(&argv, "/bin/sh");
		kha_lab__strv_add(&argv, "-c");
		kha_lab__strv_add(&argv, "hostname \"$0\" && exec \"$@\"");
		kha_lab__strv_add(&argv, "%s", owner);
	}
	r = kha_lab__proc_argv(lab, m, h, p, state_new, &argv);
	if (r < 0) {
		kha_lab__strv_release(&argv);
		return kha_diag_set(d, r, "%s %s: cannot build the command line", owner, p->name);
	}
	o.argv = (const char *const *)argv.v;
	r = kha_proc_spawn(&o, &proc, d);
	kha_lab__strv_release(&argv);
	if (r < 0) {
		kha_diag_prefix(d, "%s %s", owner, p->name);
		return r;
	}
	p->pid = proc.pid;
	p->start_time = proc.start_time;
	/* not waited for here: it outlives us, and init reaps it after we exit */
	kha_proc_release(&proc);
	return 0;
}

/*
 * Stops the given recorded processes and their descendants together. Each gets SIGTERM (and
 * SIGCONT, in case it is frozen), SIGKILL if still there after grace_us; with grace_us 0 the
 * process and its descendants get SIGKILL at once, like a power cut. With kill_etcd, etcd
 * members get SIGKILL at once: 'lab down' deletes their data next, etcd is crash-safe, and a
 * graceful stop of a whole cluster costs etcd's leader-transfer timeout (7 s) for nothing.
 * Descendants still there once their process is gone get SIGKILL. Marks each recorded process
 * as stopped (pid 0) once gone. Returns how many were running, or -EBUSY when one survived
 * SIGKILL.
 */
static int stop_procs(struct kha_lab_proc **procs, size_t n, uint64_t grace_us, bool kill_etcd,
		      struct kha_diag *d)
{
	struct kha_proc live[MAX_LAB_PROCS], kids[4 * MAX_LAB_PROCS];
	size_t kid_root[4 * MAX_LAB_PROCS], n_kids = 0;
	uint64_t grace[MAX_LAB_PROCS];
	bool on[MAX_LAB_PROCS] = {0};
	uint64_t t0, deadline;
	int running = 0, r = 0;

	n = KHA_MIN(n, KHA_ARRAY_SIZE(live));
	/* everything is found before the first signal: a killed parent's orphans are not its
	 * children any more */
	for (size_t i = 0; i < n; i++) {
		size_t k0 = n_kids;

		grace[i] = kill_etcd && procs[i]->kind == KHA_LAB_PROC_ETCD ? 0 : grace_us;
		if (procs[i]->pid <= 0 ||
		    kha_proc_attach(procs[i]->pid, procs[i]->start_time, true, &live[i]) < 0)
			continue;
		on[i] = true;
		running++;
		n_kids += kha_lab__descendants(procs[i]->pid, procs[i]->start_time, kids + n_kids,
					       KHA_ARRAY_SIZE(kids) - n_kids);
		for (size_t k = k0; k < n_kids; k++)
			kid_root[k] = i;
	}
	for (size_t i = 0; i < n; i++) {
		if (!on[i])
			continue;
		kha_ignore(kha_proc_signal(&live[i], grace[i] ? SIGTERM : SIGKILL));
		if (grace[i])
			kha_ignore(kha_proc_signal(&live[i], SIGCONT));
		for (size_t k = 0; k < n_kids; k++)
			if (kid_root[k] == i)
				kha_ignore(kha_proc_signal(&kids[k], grace[i] ? SIGCONT : SIGKILL));
	}
	t0 = kha_now_us();
	for (size_t i = 0; i < n; i++) {
		uint64_t now = kha_now_us();

		deadline = t0 + (grace[i] ? grace[i] : KILL_WAIT_US);
		if (on[i] && kha_proc_wait(&live[i], deadline > now ? deadline - now : 0) < 0 &&
		    grace[i])
			kha_ignore(kha_proc_signal(&live[i], SIGKILL));
	}
	for (size_t k = 0; k < n_kids; k++)
		kha_ignore(kha_proc_signal(&kids[k], SIGKILL));
	deadline = kha_now_us() + KILL_WAIT_US;
	for (size_t i = 0; i < n; i++) {
		uint64_t now = kha_now_us();

		if (!on[i])
			continue;
		if (kha_proc_wait(&live[i], deadline > now ? deadline - now : 0) < 0)
			r = kha_diag_set(d, EBUSY, "%s (pid %d) survived SIGKILL", procs[i]->name,
					 (int)procs[i]->pid);
		kha_proc_release(&live[i]);
	}
	for (size_t k = 0; k < n_kids; k++) {
		uint64_t now = kha_now_us();

		if (kha_proc_wait(&kids[k], deadline > now ? deadline - now : 0) < 0)
			r = kha_diag_set(d, EBUSY, "pid %d (started by %s) survived SIGKILL",
					 (int)kids[k].pid, procs[kid_root[k]]->name);
	}
	kha_lab__release_procs(kids, n_kids);
	for (size_t i = 0; i < n; i++)
		if (!kha_lab_proc_running(procs[i]))
			procs[i]->pid = 0;
	return r < 0 ? r : running;
}

/* Every recorded process of the lab: the masters' then the node's. */
static size_t all_procs(struct kha_lab *lab, struct kha_lab_proc **procs, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < lab->n_masters; i++)
		for (size_t j = 0; j < lab->masters[i].n_procs && n < max; j++)
			procs[n++] = &lab->masters[i].procs[j];
	for (size_t j = 0; j < lab->node.n_procs && n < max; j++)
		procs[n++] = &lab->node.procs[j];
	for (size_t i = 0; i < lab->n_lbs; i++)
		for (size_t j = 0; j < lab->lbs[i].n_procs && n < max; j++)
			procs[n++] = &lab->lbs[i].procs[j];
	return n;
}

static int stop_all(struct kha_lab *lab, uint64_t grace_us, bool kill_etcd, struct kha_diag *d)
{
	struct kha_lab_proc *procs[MAX_LAB_PROCS];
	size_t n = all_procs(lab, procs, KHA_ARRAY_SIZE(procs));
	int r = stop_procs(procs, n, grace_us, kill_etcd, d);

	for (size_t i = 0; r >= 0 && i < lab->n_masters; i++)
		lab->masters[i].frozen = false;
	return r;
}

/* ---- up ---- */

/* True when path is a directory holding nothing, or only an entry named ignore. */
static bool dir_is_empty(const char *path, const char *ignore)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!dir)
		return false;
	while (empty && (de = readdir(dir)))
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			(ignore && strcmp(de->d_name, ignore) == 0);
	closedir(dir);
	return empty;
}

static int make_pki(struct kha_lab *lab, struct kha_diag *d)
{
	static const char *const sans[] = {"127.0.0.1", "localhost"};
	kha_autofree char *pki = kha_lab__path(lab->dir, "pki");
	struct kha_cert ca = {0};
	int r;

	if (!pki)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_file_mkdir_p(pki, 0700, d);
	if (r == 0)
		r = kha_certs_create_ca("kha-lab-ca", CERT_DAYS, &ca, d);
	if (r == 0)
		r = kha_certs_save_ca(&ca, pki, d);
	for (size_t i = 0; r == 0 && i < lab->n_masters; i++) {
		struct kha_lab_master *m = &lab->masters[i];
		struct kha_cert_request req = {.cn = m->name,
					       .sans = sans,
					       .n_sans = KHA_ARRAY_SIZE(sans),
					       .usage = KHA_CERT_SERVER | KHA_CERT_CLIENT,
					       .days = CERT_DAYS};
		struct kha_cert leaf = {0};

		r = kha_certs_issue(&ca, &req, &leaf, d);
		if (r == 0)
			r = kha_certs_save(&leaf, m->cert, m->key, d);
		kha_cert_release(&leaf);
	}
	if (r == 0) {
		struct kha_cert_request req = {
			.cn = "kha-lab-client", .usage = KHA_CERT_CLIENT, .days = CERT_DAYS};
		struct kha_cert leaf = {0};

		r = kha_certs_issue(&ca, &req, &leaf, d);
		if (r == 0)
			r = kha_certs_save(&leaf, lab->client_cert, lab->client_key, d);
		kha_cert_release(&leaf);
	}
	kha_cert_release(&ca);
	return r;
}

static bool add_proc(struct kha_lab_proc **procs, size_t *n, enum kha_lab_proc_kind kind,
		     const char *name, const char *dir)
{
	struct kha_lab_proc *p = &(*procs)[(*n)++];

	p->kind = kind;
	p->name = strdup(name);
	return p->name && asprintf(&p->log_path, "%s/%s.log", dir, name) >= 0;
}

/*
 * Fills lab with N masters (names, ports, paths), each with its etcd member and, with an
 * election, its kha elect; and the node with its kha proxy when with_proxy.
 */
static int plan(struct kha_lab *lab, unsigned n, bool with_proxy, struct kha_diag *d)
{
	uint16_t ports[MAX_PORTS];
	size_t per = lab->election ? 3 : 2, used = per * n + (with_proxy ? 2 : 0);
	bool oom = false;
	int r;

	r = pick_ports(ports, used, d);
	if (r < 0)
		return r;
	lab->masters = calloc(n, sizeof(*lab->masters));
	if (!lab->masters)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		struct kha_lab_master *m = &lab->masters[i];
		kha_autofree char *dir = NULL;

		lab->n_masters++;
		m->client_port = ports[per * i];
		m->peer_port = ports[per * i + 1];
		oom |= asprintf(&m->name, "m%u", i + 1) < 0;
		oom |= asprintf(&dir, "%s/m%u", lab->dir, i + 1) < 0;
		oom |= asprintf(&m->client_url, "https://127.0.0.1:%u", m->client_port) < 0;
		oom |= asprintf(&m->peer_url, "https://127.0.0.1:%u", m->peer_port) < 0;
		oom |= asprintf(&m->data_dir, "%s/m%u/data", lab->dir, i + 1) < 0;
		oom |= asprintf(&m->cert, "%s/pki/m%u.crt", lab->dir, i + 1) < 0;
		oom |= asprintf(&m->key, "%s/pki/m%u.key", lab->dir, i + 1) < 0;
		m->procs = calloc(2, sizeof(*m->procs));
		if (oom || !m->procs ||
		    !add_proc(&m->procs, &m->n_procs, KHA_LAB_PROC_ETCD, "etcd", dir))
			return kha_diag_set(d, ENOMEM, "out of memory");
		if (!lab->election)
			continue;
		m->backup_metrics_port = ports[per * i + 2];
		if (asprintf(&m->backup_dir, "%s/backups/m%u", lab->dir, i + 1) < 0 ||
		    !add_proc(&m->procs, &m->n_procs, KHA_LAB_PROC_ELECT, "elect", dir))
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (with_proxy) {
		struct kha_lab_node *nd = &lab->node;
		kha_autofree char *dir = kha_lab__path(lab->dir, "node");

		nd->entry_port = ports[per * n];
		nd->metrics_port = ports[per * n + 1];
		nd->procs = calloc(1, sizeof(*nd->procs));
		if (!dir || !nd->procs ||
		    asprintf(&nd->entry_url, "https://127.0.0.1:%u", nd->entry_port) < 0 ||
		    asprintf(&nd->metrics_addr, "127.0.0.1:%u", nd->metrics_port) < 0 ||
		    !add_proc(&nd->procs, &nd->n_procs, KHA_LAB_PROC_PROXY, "proxy", dir))
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	return 0;
}

/* The directories the processes write into: DIR/<master>, DIR/backups/<master>, DIR/node. */
static int make_dirs(const struct kha_lab *lab, struct kha_diag *d)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];
		kha_autofree char *dir = kha_lab__path(lab->dir, m->name);

		if (!dir)
			return kha_diag_set(d, ENOMEM, "out of memory");
		r = kha_file_mkdir_p(dir, 0755, d);
		if (r == 0 && m->backup_dir)
			r = kha_file_mkdir_p(m->backup_dir, 0755, d);
	}
	if (r == 0 && lab->node.entry_url) {
		kha_autofree char *dir = kha_lab__path(lab->dir, "node");

		r = dir ? kha_file_mkdir_p(dir, 0755, d) : kha_diag_set(d, ENOMEM, "out of memory");
	}
	for (size_t i = 0; r == 0 && i < lab->n_lbs; i++) {
		kha_autofree char *dir = kha_lab__path(lab->dir, lab->lbs[i].name);

		r = dir ? kha_file_mkdir_p(dir, 0755, d) : kha_diag_set(d, ENOMEM, "out of memory");
	}
	return r;
}

static int new_token(struct kha_lab *lab)
{
	uint32_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)kha_wall_us() ^ (uint32_t)getpid();
	return asprintf(&lab->token, "kha-lab-%08x", rnd) < 0 ? -ENOMEM : 0;
}

/* Refuses a DIR holding a lab (running or not) or anything else. */
static int check_dir_free(const char *dir, struct kha_diag *d)
{
	kha_autofree char *json = kha_lab__path(dir, LAB_JSON);
	struct kha_lab *lab = NULL;
	unsigned running = 0;

	if (!json)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (access(json, F_OK) == 0) {
		if (kha_lab_load(dir, false, &lab, NULL) == 0) {
			for (size_t i = 0; i < lab->n_masters; i++)
				for (size_t j = 0; j < lab->masters[i].n_procs; j++)
					running += kha_lab_proc_running(&lab->masters[i].procs[j]);
			kha_lab_free(lab);
		}
		if (running)
			return kha_diag_set(d, EEXIST,
					    "a lab is already running in %s (%u processes; see "
					    "'kha lab status', or 'kha lab down' first)",
					    dir, running);
		return kha_diag_set(d, EEXIST,
				    "a stopped lab is in %s (run 'kha lab down' to remove it, or "
				    "'kha lab start-member' to restart its members)",
				    dir);
	}
	if (!dir_is_empty(dir, LAB_LOCK))
		return kha_diag_set(d, ENOTEMPTY,
				    "%s exists and is not a lab (not empty, no %s): choose another "
				    "--dir",
				    dir, LAB_JSON);
	return 0;
}

static void block_signals(sigset_t *old)
{
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, old);
}

/*
 * Spawns the processes of the phase that are not running: the etcd members (etcd_phase), or
 * the companions (kha elect of every master, the node's proxy); then saves lab.json. Signals
 * are held off meanwhile: a Ctrl-C now would leave processes running that lab.json does not
 * know about.
 */
/* Records the lab after spawning: lab.json is saved either way, the spawn's error wins. */
static int save_after_spawn(struct kha_lab *lab, int r, struct kha_diag *d)
{
	if (r == 0)
		return kha_lab_save(lab, d);
	kha_ignore(kha_lab_save(lab, NULL));
	return r;
}

static int spawn_phase(struct kha_lab *lab, bool etcd_phase, bool state_new, struct kha_diag *d)
{
	sigset_t old;
	int r = 0;

	block_signals(&old);
	for (size_t i = 0; r == 0 && i < lab->n_masters; i++) {
		struct kha_lab_master *m = &lab->masters[i];

		for (size_t j = 0; r == 0 && j < m->n_procs; j++)
			if ((m->procs[j].kind == KHA_LAB_PROC_ETCD) == etcd_phase &&
			    !kha_lab_proc_running(&m->procs[j]))
				r = spawn_proc(lab, m, NULL, &m->procs[j], state_new, d);
	}
	for (size_t j = 0; r == 0 && !etcd_phase && j < lab->node.n_procs; j++)
		if (!kha_lab_proc_running(&lab->node.procs[j]))
			r = spawn_proc(lab, NULL, &lab->node, &lab->node.procs[j], state_new, d);
	for (size_t i = 0; r == 0 && !etcd_phase && i < lab->n_lbs; i++)
		for (size_t j = 0; r == 0 && j < lab->lbs[i].n_procs; j++)
			if (!kha_lab_proc_running(&lab->lbs[i].procs[j]))
				r = spawn_proc(lab, NULL, &lab->lbs[i], &lab->lbs[i].procs[j],
					       state_new, d);
	r = save_after_spawn(lab, r, d);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* The kha binary for the companions: the one given, or our own executable. */
static int find_kha(const char *given, char **ret, struct kha_diag *d)
{
	char buf[4096];
	ssize_t n;
	int r;

	if (given) {
		r = kha_proc_find_program(given, ret);
		if (r == -ENOENT)
			return kha_diag_set(d, ENOENT, "%s not found (the kha binary for the lab)",
					    given);
		return r < 0 ? kha_diag_set(d, r, "looking for %s: %s", given, strerror(-r)) : 0;
	}
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return kha_diag_set(d, errno ? errno : ENOENT,
				    "cannot find our own executable in /proc/self/exe: %s",
				    strerror(errno ? errno : ENOENT));
	buf[n] = '\0';
	*ret = strdup(buf);
	return *ret ? 0 : kha_diag_set(d, ENOMEM, "out of memory");
}

/* A Kubernetes lab: the programs' directory, its etcd (3.6) unless one was given; root. */
static int find_k8s(const struct kha_lab_up_opts *o, struct kha_lab *lab, struct kha_diag *d)
{
	static const char *const progs[] = {"kube-apiserver", "kube-controller-manager",
					    "kube-scheduler", "kubeadm",
					    "kubectl",	      "etcd"};
	char path[4096];

	if (geteuid() != 0)
		return kha_diag_set(
			d, EPERM, "a Kubernetes lab needs root (its hosts are network namespaces)");
	lab->k8s_bin = realpath(o->k8s_bin, NULL);
	if (!lab->k8s_bin)
		return kha_diag_set(d, ENOENT,
				    "%s: %s (the directory of kube-apiserver, kubeadm, kubectl, "
				    "etcd...: scripts/k8s.sh builds them)",
				    o->k8s_bin, strerror(errno));
	for (size_t i = 0; i < KHA_ARRAY_SIZE(progs); i++) {
		snprintf(path, sizeof(path), "%s/%s", lab->k8s_bin, progs[i]);
		if (access(path, X_OK) < 0)
			return kha_diag_set(d, ENOENT,
					    "%s is missing (scripts/k8s.sh builds every program "
					    "the lab needs)",
					    path);
	}
	if (o->etcd_bin)
		return 0;
	snprintf(path, sizeof(path), "%s/etcd", lab->k8s_bin);
	lab->etcd_bin = strdup(path);
	return lab->etcd_bin ? 0 : kha_diag_set(d, ENOMEM, "out of memory");
}

/* kha lab up's first step: the programs the lab runs (Kubernetes', etcd, kha) and its election */
static int find_programs(const struct kha_lab_up_opts *o, struct kha_lab *lab, struct kha_diag *d)
{
	int r;

	if (o->k8s_bin) {
		r = find_k8s(o, lab, d);
		if (r < 0)
			return r;
	}
	if (lab->etcd_bin)
		r = 0;
	else
		r = kha_proc_find_program(o->etcd_bin ? o->etcd_bin : "etcd", &lab->etcd_bin);
	if (r == -ENOENT)
		return kha_diag_set(
			d, ENOENT, "%s not found%s (install Debian's etcd-server package)",
			o->etcd_bin ? o->etcd_bin : "etcd", o->etcd_bin ? "" : " on PATH");
	if (r < 0)
		return kha_diag_set(d, r, "looking for etcd: %s", strerror(-r));
	if (!o->no_proxy || !o->no_elect) {
		r = find_kha(o->kha_bin, &lab->kha_bin, d);
		if (r < 0)
			return r;
	}
	if (!o->no_elect && !(lab->election = strdup(KHA_LAB_ELECTION)))
		return kha_diag_set(d, ENOMEM, "out of memory");
	return 0;
}

int kha_lab_up(const struct kha_lab_up_opts *o, struct kha_lab **ret, char **failed_log,
	       struct kha_diag *d)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *failed = NULL;
	struct kha_lab_proc *failed_proc = NULL;
	uint64_t deadline = kha_now_us() + o->timeout_us;
	struct stat st;
	int r;

	if (o->members < 1 || o->members > KHA_LAB_MAX_MASTERS)
		return kha_diag_set(d, EINVAL, "--members %u: a lab has 1 to %d members",
				    o->members, KHA_LAB_MAX_MASTERS);
	lab = kha_lab__new();
	if (!lab)
		return kha_diag_set(d, ENOMEM, "out of memory");
	lab->leader_elect = o->leader_elect;
	r = kha_lab_leader_elect_check(&lab->leader_elect, d);
	if (r < 0)
		return r;
	r = find_programs(o, lab, d);
	if (r < 0)
		return r;

	if (stat(o->dir, &st) == 0) {
		r = check_dir_free(o->dir, d);
		if (r < 0)
			return r;
	}
	r = kha_file_mkdir_p(o->dir, 0755, d);
	if (r < 0)
		return r;
	lab->dir = realpath(o->dir, NULL);
	if (!lab->dir)
		return kha_diag_set(d, errno, "%s: %s", o->dir, strerror(errno));
	r = kha_lab__lock(lab, lab->dir, d);
	if (r < 0)
		return r;
	/* another 'lab up' may have won the race for the directory while we waited */
	r = check_dir_free(lab->dir, d);
	if (r < 0)
		return r;

	lab->ca_cert = kha_lab__path(lab->dir, "pki/ca.crt");
	lab->client_cert = kha_lab__path(lab->dir, "pki/client.crt");
	lab->client_key = kha_lab__path(lab->dir, "pki/client.key");
	if (!lab->ca_cert || !lab->client_cert || !lab->client_key || new_token(lab) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (lab->k8s_bin) {
		r = kha_lab__k8s_plan(lab, o->members, !o->no_proxy, d);
		if (r == 0)
			r = make_dirs(lab, d);
		/* saved before the network exists, so that 'down' can always remove it */
		if (r == 0)
			r = kha_lab_save(lab, d);
		if (r == 0)
			r = kha_lab__k8s_net_create(lab, d);
		if (r == 0)
			r = kha_lab__k8s_pki(lab, d);
		if (r == 0)
			r = kha_lab_enter(lab, d);
	} else {
		r = plan(lab, o->members, !o->no_proxy, d);
		if (r == 0)
			r = make_pki(lab, d);
		if (r == 0)
			r = make_dirs(lab, d);
		if (r == 0)
			r = kha_lab_save(lab, d);
	}
	if (r < 0)
		goto fail_clean;

	/* etcd first: kha elect and kha etcd backup give up when no member answers at start */
	r = spawn_phase(lab, true, true, d);
	if (r < 0) {
		kha_ignore(stop_all(lab, 0, true, NULL));
		goto fail_clean;
	}
	r = write_env(lab, d);
	if (r == 0)
		r = kha_lab_wait_healthy(lab, o->timeout_us, &failed, d);
	if (r == 0)
		r = spawn_phase(lab, false, true, d);
	if (r == 0) {
		uint64_t now = kha_now_us();

		r = kha_lab__wait_ready(lab, deadline > now ? deadline - now : 0, &failed_proc, d);
	}
	if (r == 0 && lab->k8s_bin)
		r = kha_lab__k8s_bootstrap(lab, d);
	if (r < 0) {
		/* keep the directory and its logs for 'kha lab down' */
		if (failed && !failed_proc)
			failed_proc = kha_lab_master_proc(failed, KHA_LAB_PROC_ETCD);
		if (failed_proc && failed_log)
			*failed_log = strdup(failed_proc->log_path);
		kha_ignore(stop_all(lab, FAIL_STOP_GRACE_US, true, NULL));
		kha_ignore(kha_lab_save(lab, NULL));
		return r;
	}
	*ret = KHA_TAKE_PTR(lab);
	return 0;

fail_clean:
	/* nothing runs and nothing worth keeping was written: leave no half-made lab behind */
	kha_lab__k8s_net_delete(lab);
	kha_ignore(kha_file_remove_tree(lab->dir, NULL));
	return r;
}

/* ---- wait, start, stop, down ---- */

int kha_lab_wait_healthy(struct kha_lab *lab, uint64_t timeout_us,
			 struct kha_lab_master **ret_failed, struct kha_diag *d)
{
	uint64_t deadline = kha_now_us() + timeout_us;
	int health[KHA_LAB_MAX_MASTERS];

	for (;;) {
		uint64_t start = kha_now_us(), left;
		size_t bad = lab->n_masters;

		for (size_t i = 0; i < lab->n_masters; i++) {
			struct kha_lab_master *m = &lab->masters[i];
			struct kha_lab_proc *p = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);

			if (p && !kha_lab_proc_running(p)) {
				if (ret_failed)
					*ret_failed = m;
				if (!p->pid)
					return kha_diag_set(d, ECHILD,
							    "%s is stopped (start it with 'kha lab "
							    "start-member %s')",
							    m->name, m->name);
				return kha_diag_set(d, ECHILD, "%s: etcd exited (see %s)", m->name,
						    p->log_path);
			}
		}
		left = deadline > start ? deadline - start : 0;
		kha_lab_health(lab,
			       KHA_MIN(KHA_MAX(left, 100 * KHA_USEC_PER_MSEC), HEALTH_TIMEOUT_US),
			       health);
		for (size_t i = 0; i < lab->n_masters && bad == lab->n_masters; i++)
			if (health[i] != 1)
				bad = i;
		if (bad == lab->n_masters)
			return 0;
		if (kha_now_us() >= deadline) {
			if (ret_failed)
				*ret_failed = &lab->masters[bad];
			return kha_diag_set(d, ETIMEDOUT, "%s (%s) not healthy after %llus: %s",
					    lab->masters[bad].name, lab->masters[bad].client_url,
					    (unsigned long long)(timeout_us / KHA_USEC_PER_SEC),
					    health[bad] < 0 ? "not answering" : "no quorum");
		}
		if (kha_now_us() - start < POLL_INTERVAL_US)
			(void)kha_sleep_us(POLL_INTERVAL_US - (kha_now_us() - start), NULL);
	}
}

int kha_lab_master_stop(struct kha_lab *lab, struct kha_lab_master *m, uint64_t grace_us,
			struct kha_diag *d)
{
	struct kha_lab_proc *procs[8];
	size_t n = KHA_MIN(m->n_procs, KHA_ARRAY_SIZE(procs));
	int r, s;

	for (size_t i = 0; i < n; i++)
		procs[i] = &m->procs[i];
	r = stop_procs(procs, n, grace_us, false, d);
	if (r >= 0)
		m->frozen = false;
	s = kha_lab_save(lab, r < 0 ? NULL : d);
	return r < 0 ? r : s;
}

int kha_lab_master_freeze(struct kha_lab *lab, struct kha_lab_master *m, bool freeze,
			  struct kha_diag *d)
{
	struct kha_proc roots[8], kids[LAB_MAX_DESCENDANTS];
	size_t n_roots = 0, n_kids = 0;
	int sig = freeze ? SIGSTOP : SIGCONT;

	for (size_t i = 0; i < m->n_procs && n_roots < KHA_ARRAY_SIZE(roots); i++)
		if (m->procs[i].pid > 0 && kha_proc_attach(m->procs[i].pid, m->procs[i].start_time,
							   false, &roots[n_roots]) == 0)
			n_roots++;
	if (!n_roots)
		return kha_diag_set(d, ESRCH, "%s: none of its processes runs", m->name);
	/* the recorded processes first, so they start nothing new; then what they started, looked
	 * up again afterwards in case something was forked in between */
	for (size_t i = 0; i < n_roots; i++)
		kha_ignore(kha_proc_signal(&roots[i], sig));
	for (int pass = 0; pass < (freeze ? 2 : 1); pass++) {
		for (size_t i = 0; i < n_roots; i++) {
			size_t k0 = n_kids;

			n_kids +=
				kha_lab__descendants(roots[i].pid, roots[i].start_time,
						     kids + n_kids, KHA_ARRAY_SIZE(kids) - n_kids);
			for (size_t k = k0; k < n_kids; k++)
				kha_ignore(kha_proc_signal(&kids[k], sig));
		}
	}
	kha_lab__release_procs(kids, n_kids);
	kha_lab__release_procs(roots, n_roots);
	m->frozen = freeze;
	return kha_lab_save(lab, d);
}

/* Stops procs (see stop_procs) and records the lab: 0 or the first error. */
static int stop_save(struct kha_lab *lab, struct kha_lab_proc **procs, size_t n, uint64_t grace_us,
		     struct kha_diag *d)
{
	int r = stop_procs(procs, n, grace_us, false, d), s;

	s = kha_lab_save(lab, r < 0 ? NULL : d);
	return r < 0 ? r : s;
}

int kha_lab_proc_stop(struct kha_lab *lab, struct kha_lab_proc *p, uint64_t grace_us,
		      struct kha_diag *d)
{
	return stop_save(lab, &p, 1, grace_us, d);
}

struct kha_lab_node *kha_lab_find_host(struct kha_lab *lab, const char *name)
{
	if (lab->node.name && strcmp(lab->node.name, name) == 0)
		return &lab->node;
	for (size_t i = 0; i < lab->n_lbs; i++)
		if (strcmp(lab->lbs[i].name, name) == 0)
			return &lab->lbs[i];
	return NULL;
}

int kha_lab_host_stop(struct kha_lab *lab, struct kha_lab_node *h, uint64_t grace_us,
		      struct kha_diag *d)
{
	struct kha_lab_proc *procs[4];
	size_t n = KHA_MIN(h->n_procs, KHA_ARRAY_SIZE(procs));

	for (size_t i = 0; i < n; i++)
		procs[i] = &h->procs[i];
	return stop_save(lab, procs, n, grace_us, d);
}

int kha_lab_host_start(struct kha_lab *lab, struct kha_lab_node *h, struct kha_diag *d)
{
	sigset_t old;
	int r = 0;

	block_signals(&old);
	for (size_t j = 0; r == 0 && j < h->n_procs; j++)
		if (!kha_lab_proc_running(&h->procs[j]))
			r = spawn_proc(lab, NULL, h, &h->procs[j], false, d);
	r = save_after_spawn(lab, r, d);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* Waits until m's etcd member answers on its client URL (healthy or not). */
static int wait_answering(struct kha_lab *lab, struct kha_lab_master *m, uint64_t deadline,
			  uint64_t timeout_us, struct kha_diag *d)
{
	struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);
	bool want[KHA_LAB_MAX_MASTERS] = {0};
	int health[KHA_LAB_MAX_MASTERS];

	want[m - lab->masters] = true;
	for (;;) {
		uint64_t now = kha_now_us();

		if (!kha_lab_proc_running(etcd))
			return kha_diag_set(d, ECHILD, "%s: etcd exited at once (see %s)", m->name,
					    etcd->log_path);
		kha_lab__health(
			lab, want,
			KHA_MIN(KHA_MAX(deadline - KHA_MIN(now, deadline), 100 * KHA_USEC_PER_MSEC),
				HEALTH_TIMEOUT_US),
			health);
		if (health[m - lab->masters] >= 0)
			return 0;
		if (kha_now_us() >= deadline)
			return kha_diag_set(
				d, ETIMEDOUT, "%s: etcd not answering on %s after %llus", m->name,
				m->client_url, (unsigned long long)(timeout_us / KHA_USEC_PER_SEC));
		(void)kha_sleep_us(POLL_INTERVAL_US, NULL);
	}
}

int kha_lab_master_start(struct kha_lab *lab, struct kha_lab_master *m, uint64_t timeout_us,
			 struct kha_diag *d)
{
	uint64_t deadline = kha_now_us() + timeout_us;
	struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);
	sigset_t old;
	int r = 0;

	for (int phase = 0; r == 0 && phase < 2; phase++) {
		block_signals(&old);
		for (size_t j = 0; r == 0 && j < m->n_procs; j++)
			if ((m->procs[j].kind == KHA_LAB_PROC_ETCD) == (phase == 0) &&
			    !kha_lab_proc_running(&m->procs[j]))
				r = spawn_proc(lab, m, NULL, &m->procs[j], false, d);
		r = save_after_spawn(lab, r, d);
		sigprocmask(SIG_SETMASK, &old, NULL);
		/* the companions give up when no member answers at start: etcd first */
		if (r == 0 && phase == 0 && etcd)
			r = wait_answering(lab, m, deadline, timeout_us, d);
	}
	return r;
}

int kha_lab__wait_ready(struct kha_lab *lab, uint64_t timeout_us, struct kha_lab_proc **ret_failed,
			struct kha_diag *d)
{
	uint64_t deadline = kha_now_us() + timeout_us;
	struct kha_lab_master *failed = NULL;
	struct kha_lab_proc *proxy = kha_lab_node_proxy(lab);
	char url[128], k8s_what[256] = "";
	int r;

	r = kha_lab_wait_healthy(lab, timeout_us, &failed, d);
	if (r < 0) {
		if (failed && ret_failed)
			*ret_failed = kha_lab_master_proc(failed, KHA_LAB_PROC_ETCD);
		return r;
	}
	if (proxy)
		snprintf(url, sizeof(url), "http://%s/readyz", lab->node.metrics_addr);
	for (;;) {
		struct kha_lab_proc *procs[MAX_LAB_PROCS];
		size_t n = all_procs(lab, procs, KHA_ARRAY_SIZE(procs));
		kha_autofree char *leader = NULL;
		bool ready, led = !lab->election;

		for (size_t i = 0; i < n; i++) {
			if (kha_lab_proc_running(procs[i]))
				continue;
			if (ret_failed)
				*ret_failed = procs[i];
			if (!procs[i]->pid)
				return kha_diag_set(d, ECHILD,
						    "%s is stopped (see 'kha lab status')",
						    procs[i]->log_path);
			return kha_diag_set(d, ECHILD, "a process exited (see %s)",
					    procs[i]->log_path);
		}
		ready = !proxy || kha_lab__http_get(url, PROXY_READY_US, NULL) == 200;
		if (!led)
			led = kha_lab_leader(lab, LEADER_READ_US, &leader, NULL) == 0 && leader;
		if (ready && led &&
		    (!lab->k8s_bin || kha_lab__k8s_ready(lab, k8s_what, sizeof(k8s_what))))
			return 0;
		if (kha_now_us() >= deadline) {
			if (ready && led)
				return kha_diag_set(
					d, ETIMEDOUT, "not ready after %llus: %s",
					(unsigned long long)(timeout_us / KHA_USEC_PER_SEC),
					k8s_what);
			if (!ready) {
				if (ret_failed)
					*ret_failed = proxy;
				return kha_diag_set(
					d, ETIMEDOUT,
					"the node's kha proxy is not ready after %llus "
					"(no member passes its checks; see %s)",
					(unsigned long long)(timeout_us / KHA_USEC_PER_SEC),
					proxy->log_path);
			}
			if (ret_failed && lab->n_masters)
				*ret_failed =
					kha_lab_master_proc(&lab->masters[0], KHA_LAB_PROC_ELECT);
			return kha_diag_set(d, ETIMEDOUT,
					    "no master leads election %s after %llus (see the "
					    "elect.log of each master)",
					    lab->election,
					    (unsigned long long)(timeout_us / KHA_USEC_PER_SEC));
		}
		(void)kha_sleep_us(POLL_INTERVAL_US, NULL);
	}
}

int kha_lab_wait_ready(struct kha_lab *lab, uint64_t timeout_us, struct kha_diag *d)
{
	return kha_lab__wait_ready(lab, timeout_us, NULL, d);
}

int kha_lab_down(const char *dir, uint64_t grace_us, unsigned *ret_stopped, struct kha_diag *d)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *json = kha_lab__path(dir, LAB_JSON);
	struct stat st;
	int r;

	if (!json)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (ret_stopped)
		*ret_stopped = 0;
	if (lstat(dir, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return kha_diag_set(d, errno, "%s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode) || access(json, F_OK) < 0) {
		if (S_ISDIR(st.st_mode) && dir_is_empty(dir, NULL)) {
			if (rmdir(dir) < 0 && errno != ENOENT)
				return kha_diag_set(d, errno, "%s: rmdir: %s", dir,
						    strerror(errno));
			return 0;
		}
		return kha_diag_set(d, ENOTEMPTY, "%s is not a lab (no %s): not removing it", dir,
				    LAB_JSON);
	}
	r = kha_lab_load(dir, true, &lab, d);
	if (r == -ENOENT) /* a concurrent 'lab down' finished first */
		return 0;
	if (r < 0)
		return r;
	r = stop_all(lab, grace_us, true, d);
	if (r < 0) {
		kha_ignore(kha_lab_save(lab, NULL));
		return r;
	}
	if (ret_stopped)
		*ret_stopped = (unsigned)r;
	kha_lab__k8s_net_delete(lab);
	return kha_file_remove_tree(lab->dir, d);
}

char *kha_lab_log_tail(const char *path, unsigned max_lines)
{
	kha_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[16384];
	struct stat st;
	ssize_t n;
	char *p;
	unsigned lines = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	if (st.st_size > (off_t)sizeof(buf) - 1 &&
	    lseek(fd, st.st_size - (off_t)sizeof(buf) + 1, SEEK_SET) < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		*--p = '\0';
	while (p > buf) {
		if (p[-1] == '\n' && ++lines == max_lines)
			break;
		p--;
	}
	return strdup(p);
}
