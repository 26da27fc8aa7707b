// SPDX-License-Identifier: MIT
/*
 * Discovery of the apiservers: list the EndpointSlices of a service, then watch them from the
 * list's resourceVersion, keeping one contribution per slice (keyed by slice name) and
 * delivering the merged set whenever it changes. See docs/internals/kube-client.md.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "kha/log.h"
#include "kube-internal.h"
#include "kha/banned.h"

struct disc {
	struct kha_kube_client *c;
	struct kha_kube_discovery_opts o; /* defaults filled in */
	int stop_fd;
	char *list_path;
	struct kha_kube__slice *slices; /* the current contribution of each slice */
	size_t n_slices;
	char *rv;
	struct kha_kube_endpoint_set last;
	bool delivered;
	unsigned watch_events;
	uint64_t rnd;
	struct kha_diag *d; /* of the watch in progress */
};

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static char *query_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

static void fill_defaults(const struct kha_kube_discovery_opts *in,
			  struct kha_kube_discovery_opts *o)
{
	*o = *in;
	if (!o->namespace)
		o->namespace = "default";
	if (!o->service)
		o->service = "kubernetes";
	if (!o->port_name)
		o->port_name = "https";
	if (!o->watch_timeout_s)
		o->watch_timeout_s = 300;
	if (!o->backoff_initial_us)
		o->backoff_initial_us = 500 * KHA_USEC_PER_MSEC;
	if (!o->backoff_max_us)
		o->backoff_max_us = 30 * KHA_USEC_PER_SEC;
}

static int make_list_path(const struct kha_kube_discovery_opts *o, char **ret)
{
	kha_autofree char *ns = query_escape(o->namespace);
	kha_autofree char *sel = NULL, *esel = NULL;

	if (!ns || asprintf(&sel, "kubernetes.io/service-name=%s", o->service) < 0)
		return -ENOMEM;
	esel = query_escape(sel);
	if (!esel ||
	    asprintf(ret, "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices?labelSelector=%s",
		     ns, esel) < 0)
		return -ENOMEM;
	return 0;
}

static void slices_clear(struct disc *s)
{
	for (size_t i = 0; i < s->n_slices; i++)
		kha_kube__slice_release(&s->slices[i]);
	free(s->slices);
	s->slices = NULL;
	s->n_slices = 0;
}

/* Takes *sl: replaces the contribution of the slice of that name, or adds it. */
static int slices_put(struct disc *s, struct kha_kube__slice *sl)
{
	for (size_t i = 0; i < s->n_slices; i++) {
		if (strcmp(s->slices[i].name, sl->name) == 0) {
			kha_kube__slice_release(&s->slices[i]);
			s->slices[i] = *sl;
			return 0;
		}
	}
	if (KHA_RESIZE(s->slices, s->n_slices + 1) < 0) {
		kha_kube__slice_release(sl);
		return -ENOMEM;
	}
	s->slices[s->n_slices++] = *sl;
	return 0;
}

static void slices_remove(struct disc *s, const char *name)
{
	for (size_t i = 0; i < s->n_slices; i++) {
		if (strcmp(s->slices[i].name, name) == 0) {
			kha_kube__slice_release(&s->slices[i]);
			s->slices[i] = s->slices[--s->n_slices];
			return;
		}
	}
}

static int set_rv(struct disc *s, const char *rv)
{
	char *n;

	if (!rv || !rv[0])
		return 0;
	n = strdup(rv);
	if (!n)
		return -ENOMEM;
	free(s->rv);
	s->rv = n;
	return 0;
}

/* Merges the contributions; delivers the set if it changed (or if force). */
static int deliver(struct disc *s, bool force)
{
	struct kha_kube_endpoint_set set;
	int r = kha_kube__endpoints_merge(s->slices, s->n_slices, s->rv, &set);

	if (r < 0)
		return r;
	if (!force && s->delivered && kha_kube_endpoint_set_equal(&set, &s->last)) {
		/* same backends: only the version moved */
		free(s->last.resource_version);
		s->last.resource_version = KHA_TAKE_PTR(set.resource_version);
		kha_kube_endpoint_set_release(&set);
		return 0;
	}
	kha_debug("kube endpoints", "n=%zu slices=%zu rv=%s", set.n_endpoints, set.n_slices,
		  KHA_LOGQ(s->rv ? s->rv : ""));
	kha_kube_endpoint_set_release(&s->last);
	s->last = set;
	s->delivered = true;
	s->o.on_set(&s->last, s->o.userdata);
	return 0;
}

/*
 * Lists the slices. The first list may be served from the apiserver's watch cache
 * (resourceVersion=0: cheap when every node lists at once, possibly a little stale, which the
 * watch from its version then corrects); after a 410 the list must be consistent (from etcd).
 */
static int do_list(struct disc *s, bool consistent, struct kha_diag *d)
{
	struct kha_kube__slice_list l = {};
	kha_autofree char *path = NULL;
	json_t *root = NULL;
	int r;

	if (asprintf(&path, "%s%s", s->list_path, consistent ? "" : "&resourceVersion=0") < 0) {
		path = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	r = kha_kube_request(s->c, "GET", path, NULL, &root, d);
	if (r < 0)
		return r;
	r = kha_kube__slice_list_decode_json(root, s->o.port_name, &l, d);
	json_decref(root);
	if (r < 0) {
		kha_diag_prefix(d, "kube %s: list EndpointSlices", kha_kube_client_server(s->c));
		return r;
	}
	slices_clear(s);
	s->slices = KHA_TAKE_PTR(l.slices);
	s->n_slices = l.n_slices;
	l.n_slices = 0;
	r = set_rv(s, l.resource_version);
	kha_kube__slice_list_release(&l);
	if (r < 0)
		return kha_diag_set(d, r, "out of memory");
	return deliver(s, !s->delivered);
}

static int on_event(enum kha_kube_event_type type, json_t *obj, void *userdata)
{
	struct disc *s = userdata;
	struct kha_kube__slice sl;
	const char *rv = NULL;
	int r;

	s->watch_events++;
	if (type == KHA_KUBE_EVENT_BOOKMARK) {
		if (kha_kube__object_rv(obj, &rv) < 0)
			return kha_diag_set(s->d, EBADMSG, "watch: BOOKMARK without a version");
		return set_rv(s, rv);
	}
	r = kha_kube__slice_decode(obj, s->o.port_name, &sl, s->d);
	if (r < 0) {
		kha_diag_prefix(s->d, "watch %s event", kha_kube_event_type_name(type));
		return r;
	}
	if (set_rv(s, sl.resource_version) < 0) {
		kha_kube__slice_release(&sl);
		return -ENOMEM;
	}
	if (type == KHA_KUBE_EVENT_DELETED) {
		slices_remove(s, sl.name);
		kha_kube__slice_release(&sl);
	} else {
		r = slices_put(s, &sl);
		if (r < 0)
			return r;
	}
	return deliver(s, false);
}

static int do_watch(struct disc *s, struct kha_diag *d)
{
	kha_autofree char *erv = query_escape(s->rv ? s->rv : "");
	kha_autofree char *path = NULL;

	if (!erv || asprintf(&path, "%s&allowWatchBookmarks=true&resourceVersion=%s", s->list_path,
			     erv) < 0) {
		path = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	s->watch_events = 0;
	return kha_kube_watch(s->c, path, s->o.watch_timeout_s, on_event, s, d);
}

static uint32_t next_rnd(struct disc *s)
{
	/* xorshift64*: jitter only, no need for more */
	s->rnd ^= s->rnd >> 12;
	s->rnd ^= s->rnd << 25;
	s->rnd ^= s->rnd >> 27;
	return (uint32_t)((s->rnd * 2685821657736338717ULL) >> 32);
}

/* Sleeps us or until stop_fd is readable. Returns true when stopped. */
static bool sleep_or_stop(int stop_fd, uint64_t us)
{
	uint64_t end = kha_now_us() + us;

	for (;;) {
		struct pollfd p = {.fd = stop_fd, .events = POLLIN};
		uint64_t now = kha_now_us();
		int r;

		if (now >= end)
			return false;
		r = poll(&p, 1, (int)KHA_MIN((end - now + 999) / 1000, (uint64_t)60000));
		if (r > 0)
			return true;
	}
}

static bool stopped(int stop_fd)
{
	struct pollfd p = {.fd = stop_fd, .events = POLLIN};

	return poll(&p, 1, 0) > 0;
}

int kha_kube_discovery_run(struct kha_kube_client *c, const struct kha_kube_discovery_opts *opts,
			   int stop_fd, struct kha_diag *d)
{
	struct disc s = {.c = c, .stop_fd = stop_fd};
	struct kha_kube__backoff bo;
	bool need_list = true;
	unsigned gone_in_a_row = 0;
	int r, old_stop_fd;

	if (!opts || !opts->on_set || stop_fd < 0)
		return kha_diag_set(d, EINVAL, "discovery: on_set and a stop fd are required");
	fill_defaults(opts, &s.o);
	if (make_list_path(&s.o, &s.list_path) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	bo = (struct kha_kube__backoff){.initial_us = s.o.backoff_initial_us,
					.max_us = s.o.backoff_max_us};
	if (getrandom(&s.rnd, sizeof(s.rnd), GRND_NONBLOCK) != sizeof(s.rnd) || !s.rnd)
		s.rnd = kha_now_us() | 1;
	old_stop_fd = kha_kube__client_stop_fd(c);
	kha_kube_client_set_stop_fd(c, stop_fd);

	while (!stopped(stop_fd)) {
		struct kha_diag err = {};
		uint64_t started = kha_now_us(), delay;

		if (need_list) {
			r = do_list(&s, gone_in_a_row > 0, &err);
			if (r == 0) {
				need_list = false;
				kha_kube__backoff_reset(&bo);
				continue;
			}
		} else {
			s.d = &err;
			r = do_watch(&s, &err);
			s.d = NULL;
			if (r == -ESTALE) {
				/* 410 Gone: that version is compacted away. Relist, at once unless
				 * it keeps happening. */
				need_list = true;
				if (++gone_in_a_row == 1)
					continue;
			} else {
				gone_in_a_row = 0;
				if (r == -EBADMSG)
					need_list = true;
				if (r >= 0 || s.watch_events)
					kha_kube__backoff_reset(&bo);
				/* the server ended the watch: go on from the last version, unless
				 * it ended at once with nothing in it (do not spin) */
				if (r >= 0 &&
				    (s.watch_events || kha_now_us() - started > KHA_USEC_PER_SEC))
					continue;
			}
		}
		if (r == -ECANCELED)
			break;
		delay = kha_kube__backoff_next(&bo, next_rnd(&s));
		if (r < 0 && s.o.on_error)
			s.o.on_error(r, err.msg, delay, s.o.userdata);
		kha_debug("kube discovery retry", "err=%d delay_us=%llu", r,
			  (unsigned long long)delay);
		if (sleep_or_stop(stop_fd, delay))
			break;
	}
	kha_kube_client_set_stop_fd(c, old_stop_fd);
	slices_clear(&s);
	kha_kube_endpoint_set_release(&s.last);
	free(s.rv);
	free(s.list_path);
	return 0;
}

int kha_kube_endpoints_list(struct kha_kube_client *c, const struct kha_kube_discovery_opts *opts,
			    struct kha_kube_endpoint_set *ret, struct kha_diag *d)
{
	static const struct kha_kube_discovery_opts none = {};
	struct kha_kube_discovery_opts o;
	struct kha_kube__slice_list l = {};
	kha_autofree char *path = NULL;
	json_t *root = NULL;
	int r;

	fill_defaults(opts ? opts : &none, &o);
	if (make_list_path(&o, &path) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_kube_request(c, "GET", path, NULL, &root, d);
	if (r < 0)
		return r;
	r = kha_kube__slice_list_decode_json(root, o.port_name, &l, d);
	json_decref(root);
	if (r < 0) {
		kha_diag_prefix(d, "kube %s: list EndpointSlices", kha_kube_client_server(c));
		return r;
	}
	r = kha_kube__endpoints_merge(l.slices, l.n_slices, l.resource_version, ret);
	kha_kube__slice_list_release(&l);
	return r < 0 ? kha_diag_set(d, r, "out of memory") : 0;
}
