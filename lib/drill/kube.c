// SPDX-License-Identifier: MIT
/*
 * Kubernetes mode: probes are API requests through the entry with the client certificate (or
 * token) of a kubeconfig. A GET of a ConfigMap the drill creates first, or with --write
 * ConfigMap writes: even slots create one (PREFIX<slot>, data.seq = slot, acknowledged by 201),
 * odd slots update one created earlier (a PUT with data.seq = slot and the resourceVersion of
 * its last acknowledged write, acknowledged by 200; 409 Conflict: not applied), or create one
 * when no object is free (none acknowledged yet, or each has a write in flight). Writes to one
 * object are therefore a chain, one at a time, in slot order: after the drill each object must
 * hold the value of its last acknowledged write or of a later one.
 *
 * The prober of run.c sends them like any probe; this file prepares the credentials and the
 * object, chooses each write and learns the resourceVersion from each acknowledgement, keeps a
 * watch on the object open in a thread of its own (each break and the first event of the watch
 * that replaced it are recorded: the reconnect time a controller would see), and afterwards
 * lists the writes back through the API (a quorum read: no resourceVersion), checks them
 * (kha_drill_kube_writes_check) and deletes everything the drill made.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <curl/curl.h>

#include "kha/http-curl.h"
#include "kha/kube.h"
#include "drill-internal.h"
#include "kha/banned.h"

#define READBACK_RETRY_US (500 * KHA_USEC_PER_MSEC)
#define REQUEST_US	  (10 * KHA_USEC_PER_SEC)
#define PAGE		  500
/* a watch that failed before delivering anything is tried again after this */
#define WATCH_RETRY_US (100 * KHA_USEC_PER_MSEC)
#define LABEL	       "kha-drill"
#define WRITE_LABEL    "kha-drill-write"

struct drill_kube {
	struct kha_kube_config *cfg; /* the probes' credentials */
	struct kha_kube_client *client;
	char *base;	  /* scheme://host:port of the target */
	char *run_id;	  /* label value of everything this drill makes */
	char *prefix;	  /* names of the writes */
	const char *ns;	  /* r->kube.namespace */
	const char *obj;  /* r->kube.object */
	bool made_object; /* the probed ConfigMap is ours to delete */

	/* the writes (the prober's thread only) */
	uint64_t *targets; /* per slot: the create slot of the object it wrote (KHA_DRILL_NONE) */
	size_t n_targets;
	char **rvs; /* per create slot: resourceVersion of its last acknowledged write */
	/* FIFO of create slots with a known resourceVersion and no write in flight: each
	 * acknowledged write adds one, so n_targets bounds free_tail, and it never wraps */
	uint64_t *free_objs;
	size_t free_head, free_tail;

	/* the watch thread */
	struct kha_kube_client *wclient;
	pthread_t thread;
	bool started;
	int stop_fd;
	unsigned timeout_s;
	uint64_t connect_us;
	uint64_t t0;
	pthread_mutex_t mu;
	/* under mu: */
	bool up;
	uint64_t first_us;
	size_t requests, events, dropped;
	struct kha_drill_watch_gap *gaps;
	size_t n_gaps;
};

/* ---- the list decoder (pure) ---- */

/* data.seq as a slot number: decimal, below 2^63; else KHA_DRILL_KUBE_BAD. */
static uint64_t seq_value(const char *seq)
{
	unsigned long long v;
	char *e = NULL;

	if (!seq || seq[0] < '0' || seq[0] > '9' || strlen(seq) > 19)
		return KHA_DRILL_KUBE_BAD;
	errno = 0;
	v = strtoull(seq, &e, 10);
	if (errno || !e || *e || v >= (1ULL << 63))
		return KHA_DRILL_KUBE_BAD;
	return v;
}

static int decode_list(json_t *root, const char *prefix, uint64_t *values, size_t n,
		       size_t *ret_found, size_t *ret_foreign, char **ret_continue,
		       struct kha_diag *d)
{
	size_t plen = strlen(prefix), found = 0, foreign = 0, i;
	json_t *items, *item, *meta, *cont;
	char *next = NULL;

	if (!json_is_object(root))
		return kha_diag_set(d, EBADMSG, "the list is not a JSON object");
	items = json_object_get(root, "items");
	if (items && !json_is_array(items) && !json_is_null(items))
		return kha_diag_set(d, EBADMSG, "the list's items is not an array");
	json_array_foreach (items, i, item) {
		const char *name;
		json_t *data;
		char *e = NULL;
		unsigned long long slot;

		meta = json_object_get(item, "metadata");
		name = json_string_value(json_object_get(meta, "name"));
		if (!name)
			return kha_diag_set(d, EBADMSG, "item %zu of the list has no metadata.name",
					    i);
		if (strncmp(name, prefix, plen) != 0 || name[plen] < '0' || name[plen] > '9' ||
		    strlen(name + plen) > 20) {
			foreign++;
			continue;
		}
		slot = strtoull(name + plen, &e, 10);
		if (!e || *e || slot >= n) {
			foreign++;
			continue;
		}
		data = json_object_get(item, "data");
		values[slot] = seq_value(json_string_value(json_object_get(data, "seq")));
		found++;
	}
	meta = json_object_get(root, "metadata");
	cont = json_object_get(meta, "continue");
	if (json_is_string(cont) && *json_string_value(cont)) {
		next = strdup(json_string_value(cont));
		if (!next)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	*ret_found += found;
	*ret_foreign += foreign;
	*ret_continue = next;
	return 0;
}

int kha_drill_kube_list_decode(const char *text, size_t len, const char *prefix, uint64_t *values,
			       size_t n, size_t *ret_found, size_t *ret_foreign,
			       char **ret_continue, struct kha_diag *d)
{
	json_error_t err;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	int r;

	if (!root)
		return kha_diag_set(d, EBADMSG, "the list is not JSON: %s (line %d)", err.text,
				    err.line);
	r = decode_list(root, prefix, values, n, ret_found, ret_foreign, ret_continue, d);
	json_decref(root);
	return r;
}

/* ---- the write check (pure) ---- */

/* A write's outcome: a 409 Conflict was answered by the apiserver without applying it. */
static int write_outcome(const struct kha_drill_probe *p)
{
	if (p->result == KHA_DRILL_PROBE_STATUS && p->status == 409)
		return KHA_DRILL__OUT_FAILED;
	return kha_drill__write_outcome(p->result);
}

/* Whether the value v read back from the object created at slot c is a write to it. */
static bool value_of(const uint64_t *targets, size_t n_targets, uint64_t c, uint64_t v)
{
	return v < n_targets && targets[v] == c;
}

void kha_drill_kube_writes_check(struct kha_drill_report *r, const uint64_t *targets,
				 size_t n_targets, const uint64_t *values, size_t found,
				 size_t foreign)
{
	struct kha_drill_writes *w = &r->writes;
	struct kha_drill_kube *k = &r->kube;

	w->enabled = true;
	w->acked = w->failed = w->unknown = 0;
	w->verified = true;
	w->found = found;
	w->unexpected = foreign;
	w->lost = w->unknown_applied = w->unknown_missing = 0;
	w->n_lost_slots = 0;
	k->updates = k->updates_acked = k->updates_conflicts = k->updates_lost = 0;
	for (size_t s = 0; s < r->n_probes; s++) {
		uint64_t t = s < n_targets ? targets[s] : KHA_DRILL_NONE;
		int o = t == KHA_DRILL_NONE ? KHA_DRILL__OUT_NOT_SENT
					    : write_outcome(&r->probes[s]);
		uint64_t v = t < r->n_probes ? values[t] : KHA_DRILL_NONE;
		bool update = t != KHA_DRILL_NONE && t != s;
		/* the object holds this write, or a later one of its chain */
		bool held = v != KHA_DRILL_NONE && v >= s && value_of(targets, n_targets, t, v);

		if (t == s && v != KHA_DRILL_NONE && !value_of(targets, n_targets, t, v))
			w->unexpected++; /* an object holding what was never written to it */
		if (update && o != KHA_DRILL__OUT_NOT_SENT)
			k->updates++;
		switch (o) {
		case KHA_DRILL__OUT_ACKED:
			w->acked++;
			k->updates_acked += update;
			if (held)
				break;
			if (w->n_lost_slots < KHA_DRILL_MAX_LOST_LISTED &&
			    KHA_RESIZE(w->lost_slots, w->n_lost_slots + 1) == 0)
				w->lost_slots[w->n_lost_slots++] = s;
			w->lost++;
			k->updates_lost += update;
			break;
		case KHA_DRILL__OUT_FAILED:
			w->failed++;
			k->updates_conflicts += update && r->probes[s].status == 409;
			w->unexpected += v == s; /* a write that failed shows */
			break;
		case KHA_DRILL__OUT_UNKNOWN:
			w->unknown++;
			if (v == s)
				w->unknown_applied++;
			else
				w->unknown_missing++;
			break;
		default:
			break;
		}
	}
}

uint64_t kha_drill_watch_longest_gap(const struct kha_drill_kube *k, uint64_t end_us)
{
	uint64_t longest = 0;

	for (size_t i = 0; i < k->n_gaps; i++) {
		const struct kha_drill_watch_gap *g = &k->gaps[i];
		uint64_t back = g->back_us == KHA_DRILL_NONE ? end_us : g->back_us;

		if (!g->clean && back > g->broke_us)
			longest = KHA_MAX(longest, back - g->broke_us);
	}
	return longest;
}

/* ---- credentials and the probed object ---- */

static atomic_uint drills_started;

static int set_file(char **file, struct kha_kube_blob *blob, const char *path)
{
	char *copy = strdup(path);

	if (!copy)
		return -ENOMEM;
	free(*file);
	*file = copy;
	free(blob->data);
	*blob = (struct kha_kube_blob){0};
	return 0;
}

static int load_config(const struct kha_drill_scenario *sc, const char *base,
		       struct kha_kube_config **ret, struct kha_diag *d)
{
	kha_auto(kha_kube_config_freep) struct kha_kube_config *cfg = NULL;
	int r = 0;

	if (sc->kubeconfig) {
		struct kha_kube_load_opts lo = {.kubeconfig = sc->kubeconfig};

		r = kha_kube_config_load(&lo, &cfg, d);
		if (r < 0) {
			kha_diag_prefix(d, "kubeconfig");
			return r;
		}
	} else {
		cfg = calloc(1, sizeof(*cfg));
		if (!cfg || !(cfg->server = strdup(base)) || !(cfg->namespace = strdup("default")))
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (sc->cacert)
		r = set_file(&cfg->ca_file, &cfg->ca_data, sc->cacert);
	if (r == 0 && sc->cert)
		r = set_file(&cfg->cert_file, &cfg->cert_data, sc->cert);
	if (r == 0 && sc->key)
		r = set_file(&cfg->key_file, &cfg->key_data, sc->key);
	if (r < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	cfg->insecure_skip_tls_verify |= sc->insecure;
	*ret = KHA_TAKE_PTR(cfg);
	return 0;
}

static int new_client(const struct drill_kube *k, uint64_t connect_us, struct kha_kube_client **ret,
		      struct kha_diag *d)
{
	struct kha_kube_client *c = NULL;
	int r = kha_kube_client_new(k->cfg, &c, d);

	if (r == 0)
		r = kha_kube_client_set_server(c, k->base, NULL, d);
	if (r < 0) {
		kha_kube_client_free(c);
		return r;
	}
	kha_kube_client_set_timeouts(c, connect_us, REQUEST_US);
	*ret = c;
	return 0;
}

static json_t *configmap(const char *name, const char *label, const char *value, const char *key,
			 const char *data)
{
	return json_pack("{s:s, s:s, s:{s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
			 "ConfigMap", "metadata", "name", name, "labels", label, value, "data", key,
			 data);
}

static json_t *write_object(const struct drill_kube *k, uint64_t object, uint64_t slot,
			    const char *rv)
{
	char name[256], seq[24];
	json_t *o;

	snprintf(name, sizeof(name), "%s%010" PRIu64, k->prefix, object);
	snprintf(seq, sizeof(seq), "%" PRIu64, slot);
	o = configmap(name, WRITE_LABEL, k->run_id, "seq", seq);
	if (o && rv &&
	    json_object_set_new(json_object_get(o, "metadata"), "resourceVersion",
				json_string(rv)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int kha_drill__kube_write(struct drill_kube *k, uint64_t slot, char **ret_url, char **ret_body,
			  bool *ret_put)
{
	uint64_t object = slot;
	json_t *o;
	int r;

	if (slot >= k->n_targets) {
		size_t n = KHA_MAX((size_t)slot + 1, 2 * k->n_targets);

		if (KHA_RESIZE(k->targets, n) < 0 || KHA_RESIZE(k->rvs, n) < 0 ||
		    KHA_RESIZE(k->free_objs, n) < 0)
			return -ENOMEM;
		for (size_t i = k->n_targets; i < n; i++) {
			k->targets[i] = KHA_DRILL_NONE;
			k->rvs[i] = NULL;
		}
		k->n_targets = n;
	}
	/* odd slots update the object that has waited longest, when one is free */
	if (slot % 2 && k->free_head < k->free_tail)
		object = k->free_objs[k->free_head++];
	o = write_object(k, object, slot, object != slot ? k->rvs[object] : NULL);
	*ret_body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!*ret_body)
		return -ENOMEM;
	if (object != slot)
		r = asprintf(ret_url, "%s/api/v1/namespaces/%s/configmaps/%s%010" PRIu64, k->base,
			     k->ns, k->prefix, object);
	else
		r = asprintf(ret_url, "%s/api/v1/namespaces/%s/configmaps", k->base, k->ns);
	if (r < 0) {
		free(*ret_body);
		*ret_body = NULL;
		return -ENOMEM;
	}
	k->targets[slot] = object;
	*ret_put = object != slot;
	return 0;
}

void kha_drill__kube_write_done(struct drill_kube *k, uint64_t slot, long status, const char *body,
				size_t len)
{
	uint64_t object = slot < k->n_targets ? k->targets[slot] : KHA_DRILL_NONE;
	json_t *root = NULL;
	const char *rv = NULL;

	if (object == KHA_DRILL_NONE)
		return;
	free(k->rvs[object]);
	k->rvs[object] = NULL;
	/* acknowledged: the object's next write goes with the version this one made; anything
	 * else leaves its state unknown (or taken by another writer): it gets no more writes */
	if ((status == 200 || status == 201) && body)
		root = json_loadb(body, len, 0, NULL);
	rv = json_string_value(
		json_object_get(json_object_get(root, "metadata"), "resourceVersion"));
	if (rv && *rv && k->free_tail < k->n_targets && (k->rvs[object] = strdup(rv)))
		k->free_objs[k->free_tail++] = object;
	json_decref(root);
}

int kha_drill__kube_prepare(const struct kha_drill_scenario *sc, struct kha_drill_report *r,
			    struct drill_kube **ret_ctx, char **ret_url, struct kha_diag *d)
{
	struct drill_kube *k = calloc(1, sizeof(*k));
	struct kha_drill_kube *rk = &r->kube;
	char *url = NULL;
	json_t *obj;
	int res;

	if (!k)
		return kha_diag_set(d, ENOMEM, "out of memory");
	k->stop_fd = -1;
	pthread_mutex_init(&k->mu, NULL);
	*ret_ctx = k;
	k->base = kha_drill__url_base(sc->target);
	if (!k->base)
		return kha_diag_set(d, EINVAL, "target: '%s' does not parse as a URL", sc->target);
	res = load_config(sc, k->base, &k->cfg, d);
	if (res < 0)
		return res;
	rk->enabled = true;
	rk->watch = !sc->no_watch;
	rk->watch_first_us = KHA_DRILL_NONE;
	/* unique among the drills of this process too (kha lab drill runs four at once) */
	if (asprintf(&k->run_id, "%llu-%ld-%u",
		     (unsigned long long)(kha_wall_us() / KHA_USEC_PER_SEC), (long)getpid(),
		     atomic_fetch_add(&drills_started, 1)) < 0 ||
	    !(rk->namespace = strdup(sc->namespace ? sc->namespace : "default")) ||
	    asprintf(&rk->object, "kha-drill-%s", k->run_id) < 0 ||
	    asprintf(&rk->label, LABEL "=%s", k->run_id) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	k->ns = rk->namespace;
	k->obj = rk->object;
	if (sc->write) {
		if (sc->write_prefix)
			k->prefix = strdup(sc->write_prefix);
		else if (asprintf(&k->prefix, "kha-drill-%s-w", k->run_id) < 0)
			k->prefix = NULL;
		free(r->writes.prefix);
		r->writes.prefix = k->prefix ? strdup(k->prefix) : NULL;
		if (!k->prefix || !r->writes.prefix)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	k->timeout_s = (unsigned)KHA_MAX(sc->watch_timeout_us / KHA_USEC_PER_SEC, 1);
	k->connect_us = sc->timeout_us;
	res = new_client(k, KHA_MAX(sc->timeout_us, KHA_USEC_PER_SEC), &k->client, d);
	if (res < 0)
		return res;
	/* the object GET probes read and the watch follows */
	obj = configmap(k->obj, LABEL, k->run_id, "probe", "kha drill");
	if (!obj)
		return kha_diag_set(d, ENOMEM, "out of memory");
	{
		char path[512];

		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", k->ns);
		res = kha_kube_request(k->client, "POST", path, obj, NULL, d);
		json_decref(obj);
		if (res < 0 && res != -EEXIST) {
			kha_diag_prefix(d, "creating the probed ConfigMap %s/%s", k->ns, k->obj);
			return res;
		}
		k->made_object = res >= 0;
		if (sc->write)
			res = asprintf(&url, "%s%s", k->base, path);
		else
			res = asprintf(&url, "%s%s/%s", k->base, path, k->obj);
	}
	if (res < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	*ret_url = url;
	return 0;
}

void kha_drill__kube_tls(const struct drill_kube *k, struct kha_http_tls *ret)
{
	const struct kha_kube_config *c = k->cfg;

	/* the data is the config's, which outlives every probe */
	*ret = (struct kha_http_tls){
		.cacert = c->ca_file,
		.cert = c->cert_file,
		.key = c->key_file,
		.ca_data = c->ca_data.data,
		.ca_len = c->ca_data.len,
		.cert_data = c->cert_data.data,
		.cert_len = c->cert_data.len,
		.key_data = c->key_data.data,
		.key_len = c->key_data.len,
		.insecure = c->insecure_skip_tls_verify,
	};
}

const char *kha_drill__kube_token(const struct drill_kube *k)
{
	return k->cfg->token;
}

/* ---- the watch ---- */

static uint64_t rel(const struct drill_kube *k)
{
	return kha_now_us() - k->t0;
}

static int on_watch_event(enum kha_kube_event_type type, json_t *object, void *userdata)
{
	struct drill_kube *k = userdata;
	uint64_t now = rel(k);

	(void)type;
	(void)object;
	pthread_mutex_lock(&k->mu);
	k->events++;
	if (!k->up) {
		k->up = true;
		if (k->first_us == KHA_DRILL_NONE)
			k->first_us = now;
		if (k->n_gaps && k->gaps[k->n_gaps - 1].back_us == KHA_DRILL_NONE)
			k->gaps[k->n_gaps - 1].back_us = now;
	}
	pthread_mutex_unlock(&k->mu);
	return 0;
}

static void watch_broke(struct drill_kube *k, int rc, const char *msg)
{
	struct kha_drill_watch_gap *g;

	pthread_mutex_lock(&k->mu);
	if (k->up) {
		k->up = false;
		if (k->n_gaps >= KHA_DRILL_MAX_WATCH_GAPS) {
			k->dropped++;
		} else if (KHA_RESIZE(k->gaps, k->n_gaps + 1) == 0) {
			g = &k->gaps[k->n_gaps++];
			*g = (struct kha_drill_watch_gap){
				.broke_us = rel(k), .back_us = KHA_DRILL_NONE, .clean = rc == 0};
			snprintf(g->error, sizeof(g->error), "%s",
				 rc == 0 ? "the server ended the watch (timeoutSeconds)" : msg);
		}
	}
	pthread_mutex_unlock(&k->mu);
}

static void *watch_main(void *userdata)
{
	struct drill_kube *k = userdata;
	char path[512];

	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/%s/configmaps?fieldSelector=metadata.name%%3D%s", k->ns,
		 k->obj);
	for (;;) {
		struct kha_diag d = {};
		struct pollfd pfd = {.fd = k->stop_fd, .events = POLLIN};
		bool was_up;
		int rc;

		pthread_mutex_lock(&k->mu);
		k->requests++;
		pthread_mutex_unlock(&k->mu);
		/* no resourceVersion: the server starts with the object as ADDED, so the first
		 * event is the instant the watch works again */
		rc = kha_kube_watch(k->wclient, path, k->timeout_s, on_watch_event, k, &d);
		if (rc == -ECANCELED || poll(&pfd, 1, 0) > 0)
			break;
		pthread_mutex_lock(&k->mu);
		was_up = k->up;
		pthread_mutex_unlock(&k->mu);
		watch_broke(k, rc, d.msg[0] ? d.msg : strerror(-rc));
		if (!was_up && poll(&pfd, 1, (int)(WATCH_RETRY_US / 1000)) > 0)
			break;
	}
	return NULL;
}

int kha_drill__kube_watch_start(struct drill_kube *k, uint64_t t0)
{
	int r;

	k->t0 = t0;
	k->first_us = KHA_DRILL_NONE;
	k->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (k->stop_fd < 0)
		return -errno;
	r = new_client(k, k->connect_us, &k->wclient, NULL);
	if (r < 0)
		return r;
	kha_kube_client_set_stop_fd(k->wclient, k->stop_fd);
	r = pthread_create(&k->thread, NULL, watch_main, k);
	if (r)
		return -r;
	k->started = true;
	return 0;
}

void kha_drill__kube_watch_stop(struct drill_kube *k, struct kha_drill_report *r, uint64_t end_us)
{
	struct kha_drill_kube *rk = &r->kube;
	uint64_t one = 1;

	if (!k || !k->started)
		return;
	if (write(k->stop_fd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: the thread is woken anyway */
	}
	pthread_join(k->thread, NULL);
	k->started = false;
	rk->watch_first_us = k->first_us;
	rk->watch_requests = k->requests;
	rk->watch_events = k->events;
	rk->gaps = KHA_TAKE_PTR(k->gaps);
	rk->n_gaps = k->n_gaps;
	rk->n_gaps_dropped = k->dropped;
	k->n_gaps = 0;
	rk->longest_gap_us = kha_drill_watch_longest_gap(rk, end_us);
}

/* ---- read-back and cleanup ---- */

static int list_page(struct drill_kube *k, const char *cont, uint64_t *values, size_t n,
		     size_t *found, size_t *foreign, char **ret_next, struct kha_diag *d)
{
	char path[1024];
	char *esc = cont ? curl_easy_escape(NULL, cont, 0) : NULL;
	json_t *body = NULL;
	int r;

	if (cont && !esc)
		return kha_diag_set(d, ENOMEM, "out of memory");
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/%s/configmaps?labelSelector=" WRITE_LABEL
		 "%%3D%s&limit=%d%s%s",
		 k->ns, k->run_id, PAGE, esc ? "&continue=" : "", esc ? esc : "");
	curl_free(esc);
	r = kha_kube_request(k->client, "GET", path, NULL, &body, d);
	if (r >= 0)
		r = decode_list(body, k->prefix, values, n, found, foreign, ret_next, d);
	json_decref(body);
	return r;
}

static int read_back(struct drill_kube *k, uint64_t *values, size_t n, size_t *ret_found,
		     size_t *ret_foreign, struct kha_diag *d)
{
	char *cont = NULL;
	int r;

	*ret_found = *ret_foreign = 0;
	for (;;) {
		char *next = NULL;

		r = list_page(k, cont, values, n, ret_found, ret_foreign, &next, d);
		free(cont);
		cont = next;
		if (r < 0 || !cont)
			break;
	}
	free(cont);
	return r;
}

static void delete_all(struct drill_kube *k, struct kha_drill_report *r, bool keep_writes)
{
	struct kha_diag d = {};
	char path[512];
	int rc = 0;

	if (!keep_writes && k->prefix) {
		snprintf(path, sizeof(path),
			 "/api/v1/namespaces/%s/configmaps?labelSelector=" WRITE_LABEL "%%3D%s",
			 k->ns, k->run_id);
		rc = kha_kube_request(k->client, "DELETE", path, NULL, NULL, &d);
		if (rc < 0)
			snprintf(r->writes.cleanup_error, sizeof(r->writes.cleanup_error), "%s",
				 d.msg);
		else
			r->writes.cleaned = true;
	}
	if (k->made_object) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", k->ns, k->obj);
		kha_diag_clear(&d);
		if (kha_kube_request(k->client, "DELETE", path, NULL, NULL, &d) < 0 &&
		    !r->writes.cleanup_error[0])
			snprintf(r->writes.cleanup_error, sizeof(r->writes.cleanup_error), "%s",
				 d.msg);
	}
}

void kha_drill__kube_finish(struct drill_kube *k, const struct kha_drill_scenario *sc,
			    struct kha_drill_report *r)
{
	struct kha_drill_writes *w = &r->writes;
	uint64_t *values;
	uint64_t deadline = kha_now_us() + sc->readback_timeout_us;
	size_t found = 0, foreign = 0, n = r->n_probes ? r->n_probes : 1;
	struct kha_diag d = {};
	int rc;

	if (!k || !k->client)
		return;
	if (!sc->write) {
		delete_all(k, r, true);
		return;
	}
	kha_drill__writes_tally(r);
	free(w->endpoints);
	w->endpoints = kha_drill__url_base(sc->endpoints ? sc->endpoints : k->base);
	if (sc->endpoints && kha_kube_client_set_server(k->client, w->endpoints, NULL, &d) < 0) {
		snprintf(w->error, sizeof(w->error), "%s", d.msg);
		return;
	}
	values = calloc(n, sizeof(*values));
	if (!values) {
		snprintf(w->error, sizeof(w->error), "out of memory");
		return;
	}
	/* a master may still be coming back after the last fault: retry for a while */
	for (;;) {
		for (size_t i = 0; i < n; i++)
			values[i] = KHA_DRILL_NONE;
		kha_diag_clear(&d);
		rc = read_back(k, values, r->n_probes, &found, &foreign, &d);
		if (rc == 0 || rc == -ENOMEM || rc == -EBADMSG ||
		    kha_now_us() + READBACK_RETRY_US >= deadline)
			break;
		kha_ignore(kha_sleep_us(READBACK_RETRY_US, NULL));
	}
	if (rc < 0)
		snprintf(w->error, sizeof(w->error), "%s", d.msg[0] ? d.msg : strerror(-rc));
	else
		kha_drill_kube_writes_check(r, k->targets, k->n_targets, values, found, foreign);
	free(values);
	delete_all(k, r, sc->keep_keys);
}

void kha_drill__kube_free(struct drill_kube *k)
{
	if (!k)
		return;
	kha_kube_client_free(k->client);
	kha_kube_client_free(k->wclient);
	kha_kube_config_free(k->cfg);
	if (k->stop_fd >= 0)
		close(k->stop_fd);
	free(k->gaps);
	for (size_t i = 0; i < k->n_targets; i++)
		free(k->rvs[i]);
	free(k->rvs);
	free(k->targets);
	free(k->free_objs);
	free(k->base);
	free(k->run_id);
	free(k->prefix);
	pthread_mutex_destroy(&k->mu);
	free(k);
}
