// SPDX-License-Identifier: MIT
/* The lab's state: DIR/lab.json (load, save, free, lookups) and its lock. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>

#include <jansson.h>

#include "kha/file.h"
#include "kha/parse.h"
#include "kha/lab.h"
#include "kha/proc.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define LAB_JSON_MAX (1 << 20)
#define SCHEMA_VERSION \
	3 /* 1: etcd only (no node, election, kha, backup fields); still read;
			  * 2: no Kubernetes (kubernetes, lbs, hosts' netns and address) */

static const char *const kind_names[] = {
	[KHA_LAB_PROC_ETCD] = "etcd",
	[KHA_LAB_PROC_ELECT] = "elect",
	[KHA_LAB_PROC_PROXY] = "proxy",
	[KHA_LAB_PROC_APISERVER] = "kube-apiserver",
	[KHA_LAB_PROC_CONTROLLER_MANAGER] = "kube-controller-manager",
	[KHA_LAB_PROC_SCHEDULER] = "kube-scheduler",
	[KHA_LAB_PROC_VIP] = "vip",
};

static void proc_release(struct kha_lab_proc *p)
{
	free(p->name);
	free(p->log_path);
}

static void master_release(struct kha_lab_master *m)
{
	free(m->name);
	free(m->client_url);
	free(m->peer_url);
	free(m->data_dir);
	free(m->cert);
	free(m->key);
	free(m->backup_dir);
	free(m->netns);
	free(m->address);
	for (size_t i = 0; i < m->n_procs; i++)
		proc_release(&m->procs[i]);
	free(m->procs);
}

static void node_release(struct kha_lab_node *n)
{
	free(n->entry_url);
	free(n->metrics_addr);
	free(n->name);
	free(n->netns);
	free(n->address);
	for (size_t i = 0; i < n->n_procs; i++)
		proc_release(&n->procs[i]);
	free(n->procs);
}

void kha_lab_free(struct kha_lab *lab)
{
	if (!lab)
		return;
	for (size_t i = 0; i < lab->n_masters; i++)
		master_release(&lab->masters[i]);
	free(lab->masters);
	node_release(&lab->node);
	for (size_t i = 0; i < lab->n_lbs; i++)
		node_release(&lab->lbs[i]);
	free(lab->lbs);
	free(lab->k8s_bin);
	free(lab->net);
	free(lab->subnet);
	free(lab->vip);
	free(lab->kube_ca);
	free(lab->kha_bin);
	free(lab->election);
	free(lab->dir);
	free(lab->etcd_bin);
	free(lab->token);
	free(lab->ca_cert);
	free(lab->client_cert);
	free(lab->client_key);
	if (lab->lock_fd >= 0)
		close(lab->lock_fd); /* releases the flock */
	free(lab);
}

struct kha_lab *kha_lab__new(void)
{
	struct kha_lab *lab = calloc(1, sizeof(*lab));

	if (lab)
		lab->lock_fd = -1;
	return lab;
}

char *kha_lab__path(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int kha_lab__lock(struct kha_lab *lab, const char *dir, struct kha_diag *d)
{
	kha_autofree char *path = kha_lab__path(dir, LAB_LOCK);
	int fd;

	if (!path)
		return kha_diag_set(d, ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;

			close(fd);
			return kha_diag_set(d, r, "%s: flock: %s", path, strerror(-r));
		}
	}
	lab->lock_fd = fd;
	return 0;
}

struct kha_lab_master *kha_lab_find_master(struct kha_lab *lab, const char *name)
{
	for (size_t i = 0; i < lab->n_masters; i++)
		if (strcmp(lab->masters[i].name, name) == 0)
			return &lab->masters[i];
	return NULL;
}

struct kha_lab_proc *kha_lab_master_proc(struct kha_lab_master *m, enum kha_lab_proc_kind kind)
{
	for (size_t i = 0; i < m->n_procs; i++)
		if (m->procs[i].kind == kind)
			return &m->procs[i];
	return NULL;
}

struct kha_lab_proc *kha_lab_node_proxy(struct kha_lab *lab)
{
	for (size_t i = 0; i < lab->node.n_procs; i++)
		if (lab->node.procs[i].kind == KHA_LAB_PROC_PROXY)
			return &lab->node.procs[i];
	return NULL;
}

bool kha_lab_proc_running(const struct kha_lab_proc *p)
{
	struct kha_proc proc;
	bool alive;

	if (p->pid <= 0)
		return false;
	if (kha_proc_attach(p->pid, p->start_time, true, &proc) < 0)
		return false;
	alive = kha_proc_alive(&proc);
	kha_proc_release(&proc);
	return alive;
}

char *kha_lab_endpoints(const struct kha_lab *lab)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < lab->n_masters; i++)
		len += strlen(lab->masters[i].client_url) + 1;
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(s);

		snprintf(s + used, len - used, "%s%s", i ? "," : "", lab->masters[i].client_url);
	}
	return s;
}

/* ---- lab.json ---- */

static json_t *proc_json(const struct kha_lab_proc *p)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", p->name, "kind", kind_names[p->kind],
			 "pid", (json_int_t)p->pid, "start_time", (json_int_t)p->start_time, "log",
			 p->log_path);
}

static json_t *procs_json(const struct kha_lab_proc *procs, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, proc_json(&procs[i]));
	return a;
}

static json_t *master_json(const struct kha_lab_master *m)
{
	json_t *o = json_pack("{s:s, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:b}", "name", m->name,
			      "client_port", (int)m->client_port, "peer_port", (int)m->peer_port,
			      "client_url", m->client_url, "peer_url", m->peer_url, "data_dir",
			      m->data_dir, "cert", m->cert, "key", m->key, "frozen", m->frozen);

	if (o && m->backup_dir) {
		json_object_set_new(o, "backup_dir", json_string(m->backup_dir));
		json_object_set_new(o, "backup_metrics_port", json_integer(m->backup_metrics_port));
	}
	if (o && m->netns) {
		json_object_set_new(o, "netns", json_string(m->netns));
		json_object_set_new(o, "address", json_string(m->address));
	}
	if (o)
		json_object_set_new(o, "processes", procs_json(m->procs, m->n_procs));
	return o;
}

static json_t *node_json(const struct kha_lab_node *n)
{
	json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:s, s:o}", "name", n->name ? n->name : "node",
			      "entry_port", (int)n->entry_port, "entry_url", n->entry_url,
			      "metrics_port", (int)n->metrics_port, "metrics_addr", n->metrics_addr,
			      "processes", procs_json(n->procs, n->n_procs));

	if (o && n->netns) {
		json_object_set_new(o, "netns", json_string(n->netns));
		json_object_set_new(o, "address", json_string(n->address));
	}
	return o;
}

int kha_lab_save(const struct kha_lab *lab, struct kha_diag *d)
{
	kha_autofree char *path = kha_lab__path(lab->dir, LAB_JSON);
	kha_autofree char *text = NULL;
	json_t *masters = json_array(), *root;

	if (!path || !masters) {
		json_decref(masters);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < lab->n_masters; i++)
		json_array_append_new(masters, master_json(&lab->masters[i]));
	root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "version", SCHEMA_VERSION,
			 "dir", lab->dir, "etcd", lab->etcd_bin, "token", lab->token, "ca_cert",
			 lab->ca_cert, "client_cert", lab->client_cert, "client_key",
			 lab->client_key, "masters", masters);
	if (root && lab->kha_bin)
		json_object_set_new(root, "kha", json_string(lab->kha_bin));
	if (root && lab->election)
		json_object_set_new(root, "election", json_string(lab->election));
	if (root && lab->node.entry_url)
		json_object_set_new(root, "node", node_json(&lab->node));
	if (root && lab->k8s_bin) {
		json_t *lbs = json_array();

		for (size_t i = 0; i < lab->n_lbs; i++)
			json_array_append_new(lbs, node_json(&lab->lbs[i]));
		const struct kha_lab_leader_elect *le = &lab->leader_elect;
		char lease[32], renew[32], retry[32];

		kha_format_duration(lease, sizeof(lease), le->lease_duration_us);
		kha_format_duration(renew, sizeof(renew), le->renew_deadline_us);
		kha_format_duration(retry, sizeof(retry), le->retry_period_us);
		json_object_set_new(root, "kubernetes",
				    json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s}}",
					      "bin", lab->k8s_bin, "net", lab->net, "subnet",
					      lab->subnet, "vip", lab->vip, "ca_cert", lab->kube_ca,
					      "lbs", lbs, "leader_elect", "lease_duration", lease,
					      "renew_deadline", renew, "retry_period", retry));
	}
	if (!root)
		return kha_diag_set(d, ENOMEM, "%s: cannot encode the state", path);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return kha_file_write_atomic(path, text, strlen(text), 0644, d);
}

/* kubernetes.leader_elect: durations as strings; absent (a lab made before it): defaults. */
static bool parse_leader_elect(const json_t *o, struct kha_lab_leader_elect *le)
{
	static const char *const keys[] = {"lease_duration", "renew_deadline", "retry_period"};
	uint64_t *dst[] = {&le->lease_duration_us, &le->renew_deadline_us, &le->retry_period_us};

	*le = (struct kha_lab_leader_elect){0};
	for (size_t i = 0; o && i < KHA_ARRAY_SIZE(keys); i++) {
		const char *v = json_string_value(json_object_get(o, keys[i]));

		if (!v || kha_parse_duration_us(v, dst[i]) < 0)
			return false;
	}
	return kha_lab_leader_elect_check(le, NULL) == 0;
}

/* strdup of a required string member; NULL (and *bad set) when missing. */
static char *get_str(json_t *o, const char *key, bool *bad)
{
	const char *s = json_string_value(json_object_get(o, key));
	char *copy;

	if (!s || !*s) {
		*bad = true;
		return NULL;
	}
	copy = strdup(s);
	if (!copy)
		*bad = true;
	return copy;
}

static uint64_t get_uint(json_t *o, const char *key, uint64_t max, bool *bad)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max) {
		*bad = true;
		return 0;
	}
	return (uint64_t)json_integer_value(v);
}

static bool parse_proc(json_t *o, struct kha_lab_proc *p)
{
	const char *kind = json_string_value(json_object_get(o, "kind"));
	bool bad = false, known = false;

	for (size_t k = 0; kind && k < KHA_ARRAY_SIZE(kind_names); k++) {
		if (strcmp(kind, kind_names[k]) == 0) {
			p->kind = (enum kha_lab_proc_kind)k;
			known = true;
		}
	}
	p->name = get_str(o, "name", &bad);
	p->log_path = get_str(o, "log", &bad);
	p->pid = (pid_t)get_uint(o, "pid", INT32_MAX, &bad);
	p->start_time = get_uint(o, "start_time", INT64_MAX, &bad);
	return known && !bad;
}

/* An optional string member: NULL when absent; *bad when present but not a string. */
static char *get_opt_str(json_t *o, const char *key, bool *bad)
{
	if (!json_object_get(o, key))
		return NULL;
	return get_str(o, key, bad);
}

static bool parse_procs(json_t *procs, bool allow_empty, struct kha_lab_proc **ret, size_t *ret_n)
{
	json_t *v;
	size_t i;

	if (!json_is_array(procs) || (!allow_empty && json_array_size(procs) == 0))
		return false;
	if (json_array_size(procs) == 0)
		return true;
	*ret = calloc(json_array_size(procs), sizeof(**ret));
	if (!*ret)
		return false;
	json_array_foreach (procs, i, v) {
		(*ret_n)++;
		if (!json_is_object(v) || !parse_proc(v, &(*ret)[i]))
			return false;
	}
	return true;
}

static bool parse_node(json_t *o, struct kha_lab_node *n)
{
	bool bad = false;

	n->entry_port = (uint16_t)get_uint(o, "entry_port", 65535, &bad);
	n->metrics_port = (uint16_t)get_uint(o, "metrics_port", 65535, &bad);
	n->entry_url = get_str(o, "entry_url", &bad);
	n->metrics_addr = get_str(o, "metrics_addr", &bad);
	n->name = get_opt_str(o, "name", &bad);
	n->netns = get_opt_str(o, "netns", &bad);
	n->address = get_opt_str(o, "address", &bad);
	return !bad && parse_procs(json_object_get(o, "processes"), true, &n->procs, &n->n_procs);
}

static bool parse_master(json_t *o, struct kha_lab_master *m)
{
	json_t *procs = json_object_get(o, "processes");
	bool bad = false;

	m->name = get_str(o, "name", &bad);
	m->client_port = (uint16_t)get_uint(o, "client_port", 65535, &bad);
	m->peer_port = (uint16_t)get_uint(o, "peer_port", 65535, &bad);
	m->client_url = get_str(o, "client_url", &bad);
	m->peer_url = get_str(o, "peer_url", &bad);
	m->data_dir = get_str(o, "data_dir", &bad);
	m->cert = get_str(o, "cert", &bad);
	m->key = get_str(o, "key", &bad);
	m->backup_dir = get_opt_str(o, "backup_dir", &bad);
	if (m->backup_dir)
		m->backup_metrics_port = (uint16_t)get_uint(o, "backup_metrics_port", 65535, &bad);
	m->frozen = json_is_true(json_object_get(o, "frozen"));
	m->netns = get_opt_str(o, "netns", &bad);
	m->address = get_opt_str(o, "address", &bad);
	if (bad)
		return false;
	return parse_procs(procs, false, &m->procs, &m->n_procs);
}

static int parse_lab(json_t *root, struct kha_lab *lab)
{
	json_t *masters = json_object_get(root, "masters"), *node, *k8s, *v;
	json_int_t version;
	bool bad = false;
	size_t i;

	if (!json_is_object(root))
		return -EBADMSG;
	version = json_integer_value(json_object_get(root, "version"));
	if (version < 1 || version > SCHEMA_VERSION)
		return -EBADMSG;
	lab->etcd_bin = get_str(root, "etcd", &bad);
	lab->token = get_str(root, "token", &bad);
	lab->ca_cert = get_str(root, "ca_cert", &bad);
	lab->client_cert = get_str(root, "client_cert", &bad);
	lab->client_key = get_str(root, "client_key", &bad);
	lab->kha_bin = get_opt_str(root, "kha", &bad);
	lab->election = get_opt_str(root, "election", &bad);
	node = json_object_get(root, "node");
	if (node && (!json_is_object(node) || !parse_node(node, &lab->node)))
		return -EBADMSG;
	k8s = json_object_get(root, "kubernetes");
	if (k8s) {
		json_t *lbs = json_object_get(k8s, "lbs");

		lab->k8s_bin = get_str(k8s, "bin", &bad);
		lab->net = get_str(k8s, "net", &bad);
		lab->subnet = get_str(k8s, "subnet", &bad);
		lab->vip = get_str(k8s, "vip", &bad);
		lab->kube_ca = get_str(k8s, "ca_cert", &bad);
		if (bad || !json_is_array(lbs) || json_array_size(lbs) > KHA_LAB_LBS ||
		    !parse_leader_elect(json_object_get(k8s, "leader_elect"), &lab->leader_elect))
			return -EBADMSG;
		lab->lbs = calloc(KHA_LAB_LBS, sizeof(*lab->lbs));
		if (!lab->lbs)
			return -ENOMEM;
		json_array_foreach (lbs, i, v) {
			lab->n_lbs++;
			if (!json_is_object(v) || !parse_node(v, &lab->lbs[i]))
				return -EBADMSG;
		}
	}
	if (bad || !json_is_array(masters) || json_array_size(masters) == 0 ||
	    json_array_size(masters) > KHA_LAB_MAX_MASTERS)
		return -EBADMSG;
	lab->masters = calloc(json_array_size(masters), sizeof(*lab->masters));
	if (!lab->masters)
		return -ENOMEM;
	json_array_foreach (masters, i, v) {
		lab->n_masters++;
		if (!json_is_object(v) || !parse_master(v, &lab->masters[i]))
			return -EBADMSG;
	}
	return 0;
}

int kha_lab_load(const char *dir, bool lock, struct kha_lab **ret, struct kha_diag *d)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = kha_lab__new();
	kha_autofree char *path = NULL, *text = NULL;
	json_error_t jerr;
	json_t *root;
	size_t len;
	int r;

	if (!lab)
		return kha_diag_set(d, ENOMEM, "out of memory");
	lab->dir = realpath(dir, NULL);
	if (!lab->dir) {
		if (errno == ENOENT || errno == ENOTDIR)
			return kha_diag_set(d, ENOENT, "no lab in %s", dir);
		return kha_diag_set(d, errno, "%s: %s", dir, strerror(errno));
	}
	path = kha_lab__path(lab->dir, LAB_JSON);
	if (!path)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (access(path, F_OK) < 0)
		return kha_diag_set(d, ENOENT, "no lab in %s (no %s)", dir, LAB_JSON);
	if (lock) {
		r = kha_lab__lock(lab, lab->dir, d);
		if (r < 0)
			return r;
	}
	r = kha_file_read_all(path, LAB_JSON_MAX, &text, &len, d);
	if (r == -ENOENT) /* removed by a 'lab down' that held the lock before us */
		return kha_diag_set(d, ENOENT, "no lab in %s", dir);
	if (r < 0)
		return r;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return kha_diag_set(d, EBADMSG, "%s: line %d: %s", path, jerr.line, jerr.text);
	r = parse_lab(root, lab);
	json_decref(root);
	if (r == -ENOMEM)
		return kha_diag_set(d, r, "out of memory");
	if (r < 0)
		return kha_diag_set(d, r, "%s: not a lab state this kha understands", path);
	/* a namespace gone (the machine rebooted) must not keep 'kha lab down' from cleaning up */
	r = kha_lab_enter(lab, d);
	if (r < 0 && r != -ENOENT)
		return r;
	*ret = KHA_TAKE_PTR(lab);
	return 0;
}
