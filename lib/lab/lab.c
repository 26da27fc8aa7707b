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

/* ---- small helpers ---- */

/* A growable NULL-terminated argv of owned strings. */
struct strv {
	char **v;
	size_t n;
	bool oom;
};

static void strv_add(struct strv *s, const char *fmt, ...) KHA_PRINTF(2, 3);
static void strv_add(struct strv *s, const char *fmt, ...)
{
	char **nv, *str = NULL;
	va_list ap;
	int r;

	if (s->oom)
		return;
	va_start(ap, fmt);
	r = vasprintf(&str, fmt, ap);
	va_end(ap);
	nv = r < 0 ? NULL : realloc(s->v, (s->n + 2) * sizeof(*s->v));
	if (!nv) {
		if (r >= 0)
			free(str);
		s->oom = true;
		return;
	}
	s->v = nv;
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

static void strv_release(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct strv){0};
}

static int sleep_us(uint64_t us)
{
	struct timespec ts = {.tv_sec = (time_t)(us / KHA_USEC_PER_SEC),
			      .tv_nsec = (long)(us % KHA_USEC_PER_SEC) * 1000};

	return nanosleep(&ts, NULL);
}

/* Ports free right now on 127.0.0.1: all bound at once (so distinct), then released. */
static int pick_ports(uint16_t *ports, size_t n, struct kha_diag *d)
{
	int fds[2 * KHA_LAB_MAX_MASTERS];
	int r = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(sa);

		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
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
	kha_autofree char *path = lab_path(lab->dir, LAB_ENV);
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
		     struct strv *s)
{
	char cluster[2048] = "";

	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(cluster);

		snprintf(cluster + used, sizeof(cluster) - used, "%s%s=%s", i ? "," : "",
			 lab->masters[i].name, lab->masters[i].peer_url);
	}
	strv_add(s, "%s", lab->etcd_bin);
	strv_add(s, "--name=%s", m->name);
	strv_add(s, "--data-dir=%s", m->data_dir);
	strv_add(s, "--listen-client-urls=%s", m->client_url);
	strv_add(s, "--advertise-client-urls=%s", m->client_url);
	strv_add(s, "--listen-peer-urls=%s", m->peer_url);
	strv_add(s, "--initial-advertise-peer-urls=%s", m->peer_url);
	strv_add(s, "--initial-cluster=%s", cluster);
	strv_add(s, "--initial-cluster-state=%s", state_new ? "new" : "existing");
	strv_add(s, "--initial-cluster-token=%s", lab->token);
	strv_add(s, "--cert-file=%s", m->cert);
	strv_add(s, "--key-file=%s", m->key);
	strv_add(s, "--trusted-ca-file=%s", lab->ca_cert);
	strv_add(s, "--client-cert-auth");
	strv_add(s, "--peer-cert-file=%s", m->cert);
	strv_add(s, "--peer-key-file=%s", m->key);
	strv_add(s, "--peer-trusted-ca-file=%s", lab->ca_cert);
	strv_add(s, "--peer-client-cert-auth");
	strv_add(s, "--logger=zap");
	strv_add(s, "--log-outputs=stderr");
	return s->oom ? -ENOMEM : 0;
}

static int spawn_proc(const struct kha_lab *lab, const struct kha_lab_master *m,
		      struct kha_lab_proc *p, bool state_new, struct kha_diag *d)
{
	struct strv argv = {0};
	struct kha_proc proc;
	struct kha_proc_spawn_opts o = {
		.log_path = p->log_path, .cwd = lab->dir, .new_session = true};
	int r;

	switch (p->kind) {
	case KHA_LAB_PROC_ETCD:
		r = etcd_argv(lab, m, state_new, &argv);
		break;
	default:
		r = -EINVAL;
	}
	if (r < 0) {
		strv_release(&argv);
		return kha_diag_set(d, r, "%s: cannot build the command line", m->name);
	}
	o.argv = (const char *const *)argv.v;
	r = kha_proc_spawn(&o, &proc, d);
	strv_release(&argv);
	if (r < 0) {
		kha_diag_prefix(d, "%s %s", m->name, p->name);
		return r;
	}
	p->pid = proc.pid;
	p->start_time = proc.start_time;
	/* not waited for here: it outlives us, and init reaps it after we exit */
	kha_proc_release(&proc);
	return 0;
}

/*
 * Stops the given recorded processes together: SIGTERM to all, wait, SIGKILL the rest, wait.
 * With kill_etcd, etcd members get SIGKILL at once: 'lab down' deletes their data next, etcd is
 * crash-safe, and a graceful stop of a whole cluster costs etcd's leader-transfer timeout (7 s)
 * for nothing. Marks each as stopped (pid 0) once gone. Returns how many were running, or
 * -EBUSY when one survived SIGKILL.
 */
static int stop_procs(struct kha_lab_proc **procs, size_t n, uint64_t grace_us, bool kill_etcd,
		      struct kha_diag *d)
{
	struct kha_proc live[KHA_LAB_MAX_MASTERS * 4];
	uint64_t grace[KHA_LAB_MAX_MASTERS * 4];
	bool on[KHA_LAB_MAX_MASTERS * 4] = {0};
	uint64_t t0, deadline;
	int running = 0, r = 0;

	n = KHA_MIN(n, KHA_ARRAY_SIZE(live));
	for (size_t i = 0; i < n; i++) {
		grace[i] = kill_etcd && procs[i]->kind == KHA_LAB_PROC_ETCD ? 0 : grace_us;
		if (procs[i]->pid > 0 &&
		    kha_proc_attach(procs[i]->pid, procs[i]->start_time, true, &live[i]) == 0) {
			on[i] = true;
			running++;
			kha_ignore(kha_proc_signal(&live[i], grace[i] ? SIGTERM : SIGKILL));
		}
	}
	t0 = kha_now_us();
	for (size_t i = 0; i < n; i++) {
		uint64_t now = kha_now_us();

		deadline = t0 + (grace[i] ? grace[i] : KILL_WAIT_US);
		if (on[i] && kha_proc_wait(&live[i], deadline > now ? deadline - now : 0) < 0 &&
		    grace[i])
			kha_ignore(kha_proc_signal(&live[i], SIGKILL));
	}
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
	for (size_t i = 0; i < n; i++)
		if (!kha_lab_proc_running(procs[i]))
			procs[i]->pid = 0;
	return r < 0 ? r : running;
}

static int stop_all(struct kha_lab *lab, uint64_t grace_us, bool kill_etcd, struct kha_diag *d)
{
	struct kha_lab_proc *procs[KHA_LAB_MAX_MASTERS * 4];
	size_t n = 0;

	for (size_t i = 0; i < lab->n_masters; i++)
		for (size_t j = 0; j < lab->masters[i].n_procs && n < KHA_ARRAY_SIZE(procs); j++)
			procs[n++] = &lab->masters[i].procs[j];
	return stop_procs(procs, n, grace_us, kill_etcd, d);
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
	kha_autofree char *pki = lab_path(lab->dir, "pki");
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

/* Fills lab with N masters (names, ports, paths) and one etcd process each. */
static int plan(struct kha_lab *lab, unsigned n, struct kha_diag *d)
{
	uint16_t ports[2 * KHA_LAB_MAX_MASTERS];
	bool oom = false;
	int r;

	r = pick_ports(ports, 2 * (size_t)n, d);
	if (r < 0)
		return r;
	lab->masters = calloc(n, sizeof(*lab->masters));
	if (!lab->masters)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		struct kha_lab_master *m = &lab->masters[i];
		struct kha_lab_proc *p;

		lab->n_masters++;
		m->client_port = ports[2 * (size_t)i];
		m->peer_port = ports[2 * (size_t)i + 1];
		oom |= asprintf(&m->name, "m%u", i + 1) < 0;
		oom |= asprintf(&m->client_url, "https://127.0.0.1:%u", m->client_port) < 0;
		oom |= asprintf(&m->peer_url, "https://127.0.0.1:%u", m->peer_port) < 0;
		oom |= asprintf(&m->data_dir, "%s/m%u.etcd", lab->dir, i + 1) < 0;
		oom |= asprintf(&m->cert, "%s/pki/m%u.crt", lab->dir, i + 1) < 0;
		oom |= asprintf(&m->key, "%s/pki/m%u.key", lab->dir, i + 1) < 0;
		m->procs = calloc(1, sizeof(*m->procs));
		if (oom || !m->procs)
			return kha_diag_set(d, ENOMEM, "out of memory");
		m->n_procs = 1;
		p = &m->procs[0];
		p->kind = KHA_LAB_PROC_ETCD;
		p->name = strdup("etcd");
		oom |= asprintf(&p->log_path, "%s/m%u.log", lab->dir, i + 1) < 0;
		if (oom || !p->name)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	return 0;
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
	kha_autofree char *json = lab_path(dir, LAB_JSON);
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

int kha_lab_up(const struct kha_lab_up_opts *o, struct kha_lab **ret, char **failed_log,
	       struct kha_diag *d)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *failed = NULL;
	sigset_t block, old;
	struct stat st;
	int r;

	if (o->members < 1 || o->members > KHA_LAB_MAX_MASTERS)
		return kha_diag_set(d, EINVAL, "--members %u: a lab has 1 to %d members",
				    o->members, KHA_LAB_MAX_MASTERS);
	lab = lab_new();
	if (!lab)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_proc_find_program(o->etcd_bin ? o->etcd_bin : "etcd", &lab->etcd_bin);
	if (r == -ENOENT)
		return kha_diag_set(
			d, ENOENT, "%s not found%s (install Debian's etcd-server package)",
			o->etcd_bin ? o->etcd_bin : "etcd", o->etcd_bin ? "" : " on PATH");
	if (r < 0)
		return kha_diag_set(d, r, "looking for etcd: %s", strerror(-r));

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
	r = lab_lock(lab, lab->dir, d);
	if (r < 0)
		return r;
	/* another 'lab up' may have won the race for the directory while we waited */
	r = check_dir_free(lab->dir, d);
	if (r < 0)
		return r;

	lab->ca_cert = lab_path(lab->dir, "pki/ca.crt");
	lab->client_cert = lab_path(lab->dir, "pki/client.crt");
	lab->client_key = lab_path(lab->dir, "pki/client.key");
	if (!lab->ca_cert || !lab->client_cert || !lab->client_key || new_token(lab) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = plan(lab, o->members, d);
	if (r == 0)
		r = make_pki(lab, d);
	if (r == 0)
		r = kha_lab_save(lab, d);
	if (r < 0)
		goto fail_clean;

	/* a Ctrl-C now would leave members running that lab.json does not know about */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (size_t i = 0; r == 0 && i < lab->n_masters; i++)
		for (size_t j = 0; r == 0 && j < lab->masters[i].n_procs; j++)
			r = spawn_proc(lab, &lab->masters[i], &lab->masters[i].procs[j], true, d);
	if (r == 0)
		r = kha_lab_save(lab, d);
	if (r < 0) {
		kha_ignore(stop_all(lab, 0, true, NULL));
		sigprocmask(SIG_SETMASK, &old, NULL);
		goto fail_clean;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);

	r = write_env(lab, d);
	if (r == 0)
		r = kha_lab_wait_healthy(lab, o->timeout_us, &failed, d);
	if (r < 0) {
		/* keep the directory and its logs for 'kha lab down' */
		if (failed && failed_log) {
			struct kha_lab_proc *p = kha_lab_master_proc(failed, KHA_LAB_PROC_ETCD);

			*failed_log = p ? strdup(p->log_path) : NULL;
		}
		kha_ignore(stop_all(lab, FAIL_STOP_GRACE_US, true, NULL));
		kha_ignore(kha_lab_save(lab, NULL));
		return r;
	}
	*ret = KHA_TAKE_PTR(lab);
	return 0;

fail_clean:
	/* nothing runs and nothing worth keeping was written: leave no half-made lab behind */
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
			(void)sleep_us(POLL_INTERVAL_US - (kha_now_us() - start));
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
	s = kha_lab_save(lab, r < 0 ? NULL : d);
	return r < 0 ? r : s;
}

int kha_lab_master_start(struct kha_lab *lab, struct kha_lab_master *m, uint64_t timeout_us,
			 struct kha_diag *d)
{
	uint64_t deadline = kha_now_us() + timeout_us;
	struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);
	bool want[KHA_LAB_MAX_MASTERS] = {0};
	int health[KHA_LAB_MAX_MASTERS];
	sigset_t block, old;
	int r = 0;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	for (size_t j = 0; r == 0 && j < m->n_procs; j++)
		if (!kha_lab_proc_running(&m->procs[j]))
			r = spawn_proc(lab, m, &m->procs[j], false, d);
	if (r == 0)
		r = kha_lab_save(lab, d);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r < 0 || !etcd)
		return r;

	want[m - lab->masters] = true;
	for (;;) {
		uint64_t now = kha_now_us();

		if (!kha_lab_proc_running(etcd))
			return kha_diag_set(d, ECHILD, "%s: etcd exited at once (see %s)", m->name,
					    etcd->log_path);
		lab_health(
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
		(void)sleep_us(POLL_INTERVAL_US);
	}
}

int kha_lab_down(const char *dir, uint64_t grace_us, unsigned *ret_stopped, struct kha_diag *d)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *json = lab_path(dir, LAB_JSON);
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
