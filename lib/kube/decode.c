// SPDX-License-Identifier: MIT
/*
 * Pure decoders and encoders of the API's JSON: Status, watch events, times, EndpointSlices and
 * their merge into a backend set, Leases. No I/O here; everything is unit-tested and fuzzed.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kube-internal.h"
#include "kha/banned.h"

/* ---- helpers ---- */

static json_t *load_json(const char *text, size_t len, struct kha_diag *d)
{
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!root)
		kha_diag_set(d, EBADMSG, "invalid JSON at line %d column %d: %s", jerr.line,
			     jerr.column, jerr.text);
	return root;
}

/* Copies a JSON string into a fixed buffer; too long is an error. */
static int copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		return -EBADMSG;
	memcpy(dst, src, n + 1);
	return 0;
}

/* A string member or NULL if absent or null; -EBADMSG through *bad if of another type. */
static const char *opt_string(const json_t *obj, const char *key, bool *bad)
{
	const json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

/* ---- Status ---- */

int kha_kube__status_from_json(const json_t *root, struct kha_kube_status *ret)
{
	const json_t *code;
	const char *reason, *message;
	bool bad = false;

	if (!json_is_object(root))
		return -EBADMSG;
	code = json_object_get(root, "code");
	reason = opt_string(root, "reason", &bad);
	message = opt_string(root, "message", &bad);
	if (bad || (code && !json_is_integer(code)))
		return -EBADMSG;
	if (!code && !reason && !message)
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	if (code && json_integer_value(code) >= 0 && json_integer_value(code) < 1000)
		ret->code = (int)json_integer_value(code);
	snprintf(ret->reason, sizeof(ret->reason), "%s", reason ? reason : "");
	snprintf(ret->message, sizeof(ret->message), "%s", message ? message : "");
	return 0;
}

int kha_kube_status_decode(const char *text, size_t len, struct kha_kube_status *ret,
			   struct kha_diag *d)
{
	json_t *root = load_json(text, len, d);
	int r;

	if (!root)
		return -EBADMSG;
	r = kha_kube__status_from_json(root, ret);
	json_decref(root);
	if (r < 0)
		return kha_diag_set(d, EBADMSG, "not a Status object");
	return 0;
}

int kha_kube_errno_from_status(const struct kha_kube_status *st)
{
	switch (st->code) {
	case 400:
	case 422:
		return -EINVAL;
	case 401:
		return -EACCES;
	case 403:
		return -EPERM;
	case 404:
		return -ENOENT;
	case 409:
		return strcmp(st->reason, "AlreadyExists") == 0 ? -EEXIST : -EAGAIN;
	case 410:
		return -ESTALE;
	case 504:
		return -ETIMEDOUT;
	case 429:
		return -EBUSY;
	default:
		if (st->code >= 500 && st->code < 600)
			return -EBUSY;
		/* a Status without a code: trust its reason */
		if (strcmp(st->reason, "Expired") == 0 || strcmp(st->reason, "Gone") == 0)
			return -ESTALE;
		return -EPROTO;
	}
}

/* ---- watch events ---- */

static const char *const event_names[] = {
	[KHA_KUBE_EVENT_ADDED] = "ADDED",     [KHA_KUBE_EVENT_MODIFIED] = "MODIFIED",
	[KHA_KUBE_EVENT_DELETED] = "DELETED", [KHA_KUBE_EVENT_BOOKMARK] = "BOOKMARK",
	[KHA_KUBE_EVENT_ERROR] = "ERROR",
};

const char *kha_kube_event_type_name(enum kha_kube_event_type type)
{
	return (size_t)type < KHA_ARRAY_SIZE(event_names) ? event_names[type] : "?";
}

int kha_kube_watch_event_decode(const char *text, size_t len, enum kha_kube_event_type *ret_type,
				json_t **ret_object, struct kha_diag *d)
{
	json_t *root = load_json(text, len, d), *obj;
	const char *type;
	size_t i;

	if (!root)
		return -EBADMSG;
	if (!json_is_object(root) || !json_is_string(json_object_get(root, "type"))) {
		json_decref(root);
		return kha_diag_set(d, EBADMSG, "watch event without a type");
	}
	type = json_string_value(json_object_get(root, "type"));
	for (i = 0; i < KHA_ARRAY_SIZE(event_names); i++)
		if (strcmp(type, event_names[i]) == 0)
			break;
	obj = json_object_get(root, "object");
	if (i == KHA_ARRAY_SIZE(event_names) || !json_is_object(obj)) {
		kha_diag_set(d, EBADMSG, "watch event: %s",
			     i == KHA_ARRAY_SIZE(event_names) ? "unknown type" : "no object");
		json_decref(root);
		return -EBADMSG;
	}
	*ret_type = (enum kha_kube_event_type)i;
	*ret_object = json_incref(obj);
	json_decref(root);
	return 0;
}

/* ---- times ---- */

static int digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

int kha_kube_time_parse(const char *s, int64_t *ret_us)
{
	struct tm tm = {};
	int year, mon, day, hh, mm, ss, oh = 0, om = 0, sign = 0;
	int64_t frac_us = 0, scale = 100000, t;
	const char *p = s;

	if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &mon) < 0 || *p++ != '-' ||
	    digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't') || !*p++ ||
	    digits(&p, 2, &hh) < 0 || *p++ != ':' || digits(&p, 2, &mm) < 0 || *p++ != ':' ||
	    digits(&p, 2, &ss) < 0)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (int n = 0; *p >= '0' && *p <= '9'; p++, n++) {
			if (n >= 9)
				return -EINVAL;
			frac_us += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 || oh > 23 ||
		    om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p || mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
		return -EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = (int64_t)timegm(&tm);
	if (tm.tm_mday != day && ss != 60) /* 31 February */
		return -EINVAL;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*ret_us = t * (int64_t)KHA_USEC_PER_SEC + frac_us;
	return 0;
}

const char *kha_kube_microtime_format(char *buf, size_t size, int64_t us)
{
	int64_t sec = us / (int64_t)KHA_USEC_PER_SEC, frac = us % (int64_t)KHA_USEC_PER_SEC;
	struct tm tm;
	time_t t;

	if (frac < 0) {
		frac += KHA_USEC_PER_SEC;
		sec--;
	}
	t = (time_t)sec;
	if (size)
		buf[0] = '\0';
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
		return buf;
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
	return buf;
}

/* ---- EndpointSlices ---- */

void kha_kube__slice_release(struct kha_kube__slice *s)
{
	free(s->name);
	free(s->resource_version);
	free(s->endpoints);
	memset(s, 0, sizeof(*s));
}

void kha_kube__slice_list_release(struct kha_kube__slice_list *l)
{
	for (size_t i = 0; i < l->n_slices; i++)
		kha_kube__slice_release(&l->slices[i]);
	free(l->slices);
	free(l->resource_version);
	memset(l, 0, sizeof(*l));
}

int kha_kube__object_rv(const json_t *obj, const char **ret_rv)
{
	const json_t *rv = json_object_get(json_object_get(obj, "metadata"), "resourceVersion");

	if (!json_is_string(rv))
		return -EBADMSG;
	*ret_rv = json_string_value(rv);
	return 0;
}

/* An optional boolean: nil (absent or null) gives def. */
static int opt_bool(const json_t *obj, const char *key, bool def, bool *ret)
{
	const json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		*ret = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return -EBADMSG;
	*ret = json_is_true(v);
	return 0;
}

/* Selects the port: the TCP port named want, else the only TCP port. Returns 0 (none) or it. */
static int select_port(const json_t *ports, const char *want, struct kha_diag *d)
{
	size_t i, n_tcp = 0;
	const json_t *p;
	json_int_t only = 0;

	if (!ports || json_is_null(ports))
		return 0;
	if (!json_is_array(ports))
		return kha_diag_set(d, EBADMSG, "ports: not a list");
	json_array_foreach (ports, i, p) {
		const json_t *num = json_object_get(p, "port");
		bool bad = false;
		const char *name = opt_string(p, "name", &bad);
		const char *proto = opt_string(p, "protocol", &bad);

		if (!json_is_object(p) || bad)
			return kha_diag_set(d, EBADMSG, "ports[%zu]: wrong types", i);
		if (proto && strcmp(proto, "TCP") != 0)
			continue;
		if (!num || json_is_null(num))
			continue; /* nil port: "all ports", meaningless for a backend */
		if (!json_is_integer(num) || json_integer_value(num) < 1 ||
		    json_integer_value(num) > 65535)
			return kha_diag_set(d, EBADMSG, "ports[%zu].port: not a port number", i);
		if (strcmp(name ? name : "", want) == 0)
			return (int)json_integer_value(num);
		n_tcp++;
		only = json_integer_value(num);
	}
	return n_tcp == 1 ? (int)only : 0;
}

static int add_endpoint(struct kha_kube__slice *s, size_t *cap, int family, const char *addr,
			int port, bool ready, bool serving, bool terminating)
{
	unsigned char bin[sizeof(struct in6_addr)];
	struct kha_kube_endpoint *e;

	if (inet_pton(family, addr, bin) != 1)
		return 0; /* an address not of the slice's type: not usable, skip it */
	if (KHA_GROW(s->endpoints, *cap, s->n_endpoints + 1) < 0)
		return -ENOMEM;
	e = &s->endpoints[s->n_endpoints++];
	memset(e, 0, sizeof(*e));
	inet_ntop(family, bin, e->ip, sizeof(e->ip));
	e->port = (uint16_t)port;
	snprintf(e->addr, sizeof(e->addr), family == AF_INET6 ? "[%s]:%d" : "%s:%d", e->ip, port);
	e->ready = ready;
	e->serving = serving;
	e->terminating = terminating;
	return 0;
}

int kha_kube__slice_decode(const json_t *obj, const char *port_name, struct kha_kube__slice *ret,
			   struct kha_diag *d)
{
	struct kha_kube__slice s = {};
	const json_t *meta = json_object_get(obj, "metadata"), *eps, *ep;
	const char *name, *rv, *type;
	bool bad = false;
	size_t i, cap = 0;
	int family = 0, port, r = -EBADMSG;

	if (!json_is_object(obj) || !json_is_object(meta))
		return kha_diag_set(d, EBADMSG, "EndpointSlice without metadata");
	name = opt_string(meta, "name", &bad);
	rv = opt_string(meta, "resourceVersion", &bad);
	type = opt_string(obj, "addressType", &bad);
	if (bad || !name || !name[0])
		return kha_diag_set(d, EBADMSG, "EndpointSlice without a name");
	s.name = strdup(name);
	s.resource_version = strdup(rv ? rv : "");
	if (!s.name || !s.resource_version) {
		r = -ENOMEM;
		goto fail;
	}
	if (type && strcmp(type, "IPv4") == 0)
		family = AF_INET;
	else if (type && strcmp(type, "IPv6") == 0)
		family = AF_INET6;
	port = select_port(json_object_get(obj, "ports"), port_name, d);
	if (port < 0) {
		kha_diag_prefix(d, "EndpointSlice %s", name);
		goto fail;
	}
	eps = json_object_get(obj, "endpoints");
	if (eps && !json_is_null(eps) && !json_is_array(eps)) {
		kha_diag_set(d, EBADMSG, "EndpointSlice %s: endpoints: not a list", name);
		goto fail;
	}
	/* FQDN slices (deprecated) and slices without the port add nothing by design */
	s.skipped = family == 0 || port == 0;
	json_array_foreach (eps, i, ep) {
		const json_t *addrs = json_object_get(ep, "addresses"), *a, *cond;
		bool ready, serving, terminating;
		size_t j;

		cond = json_object_get(ep, "conditions");
		if (!json_is_object(ep) || !json_is_array(addrs) ||
		    (cond && !json_is_null(cond) && !json_is_object(cond)) ||
		    opt_bool(cond, "ready", true, &ready) < 0 ||
		    opt_bool(cond, "serving", ready, &serving) < 0 ||
		    opt_bool(cond, "terminating", false, &terminating) < 0) {
			kha_diag_set(d, EBADMSG, "EndpointSlice %s: endpoints[%zu]: wrong types",
				     name, i);
			goto fail;
		}
		json_array_foreach (addrs, j, a) {
			if (!json_is_string(a)) {
				kha_diag_set(
					d, EBADMSG,
					"EndpointSlice %s: endpoints[%zu].addresses[%zu]: not a "
					"string",
					name, i, j);
				goto fail;
			}
			if (s.skipped)
				continue;
			r = add_endpoint(&s, &cap, family, json_string_value(a), port, ready,
					 serving, terminating);
			if (r < 0)
				goto fail;
			r = -EBADMSG;
		}
	}
	*ret = s;
	return 0;
fail:
	kha_kube__slice_release(&s);
	return r == -ENOMEM ? kha_diag_set(d, ENOMEM, "out of memory") : r;
}

int kha_kube__slice_list_decode_json(const json_t *root, const char *port_name,
				     struct kha_kube__slice_list *ret, struct kha_diag *d)
{
	struct kha_kube__slice_list l = {};
	const json_t *items, *it;
	const char *rv;
	size_t i;
	int r;

	if (!json_is_object(root) || kha_kube__object_rv(root, &rv) < 0)
		return kha_diag_set(d, EBADMSG,
				    "EndpointSliceList without metadata.resourceVersion");
	items = json_object_get(root, "items");
	if (items && !json_is_null(items) && !json_is_array(items))
		return kha_diag_set(d, EBADMSG, "EndpointSliceList: items: not a list");
	l.resource_version = strdup(rv);
	if (!l.resource_version)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (json_array_size(items)) {
		l.slices = calloc(json_array_size(items), sizeof(*l.slices));
		if (!l.slices) {
			kha_kube__slice_list_release(&l);
			return kha_diag_set(d, ENOMEM, "out of memory");
		}
	}
	json_array_foreach (items, i, it) {
		r = kha_kube__slice_decode(it, port_name, &l.slices[l.n_slices], d);
		if (r < 0) {
			kha_kube__slice_list_release(&l);
			return r;
		}
		l.n_slices++;
	}
	*ret = l;
	return 0;
}

int kha_kube__slice_list_decode(const char *text, size_t len, const char *port_name,
				struct kha_kube__slice_list *ret, struct kha_diag *d)
{
	json_t *root = load_json(text, len, d);
	int r;

	if (!root)
		return -EBADMSG;
	r = kha_kube__slice_list_decode_json(root, port_name, ret, d);
	json_decref(root);
	return r;
}

/* ---- the backend set ---- */

static int endpoint_cmp(const void *pa, const void *pb)
{
	const struct kha_kube_endpoint *a = pa, *b = pb;
	unsigned char ba[16] = {}, bb[16] = {};
	bool a6 = strchr(a->ip, ':') != NULL, b6 = strchr(b->ip, ':') != NULL;
	int c;

	if (a6 != b6)
		return a6 ? 1 : -1;
	kha_ignore(inet_pton(a6 ? AF_INET6 : AF_INET, a->ip, ba));
	kha_ignore(inet_pton(b6 ? AF_INET6 : AF_INET, b->ip, bb));
	c = memcmp(ba, bb, sizeof(ba));
	if (c)
		return c;
	return (int)a->port - (int)b->port;
}

void kha_kube_endpoint_set_release(struct kha_kube_endpoint_set *set)
{
	if (!set)
		return;
	free(set->endpoints);
	free(set->resource_version);
	memset(set, 0, sizeof(*set));
}

int kha_kube_endpoint_set_copy(const struct kha_kube_endpoint_set *set,
			       struct kha_kube_endpoint_set *ret)
{
	struct kha_kube_endpoint_set c = *set;

	c.endpoints = NULL;
	c.resource_version = NULL;
	if (set->n_endpoints) {
		c.endpoints = calloc(set->n_endpoints, sizeof(*c.endpoints));
		if (!c.endpoints)
			return -ENOMEM;
		memcpy(c.endpoints, set->endpoints, set->n_endpoints * sizeof(*c.endpoints));
	}
	if (set->resource_version) {
		c.resource_version = strdup(set->resource_version);
		if (!c.resource_version) {
			free(c.endpoints);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

bool kha_kube_endpoint_set_equal(const struct kha_kube_endpoint_set *a,
				 const struct kha_kube_endpoint_set *b)
{
	if (a->n_endpoints != b->n_endpoints || a->empty != b->empty ||
	    a->serving_fallback != b->serving_fallback || a->n_slices != b->n_slices)
		return false;
	for (size_t i = 0; i < a->n_endpoints; i++) {
		const struct kha_kube_endpoint *x = &a->endpoints[i], *y = &b->endpoints[i];

		if (strcmp(x->addr, y->addr) != 0 || x->ready != y->ready ||
		    x->serving != y->serving || x->terminating != y->terminating)
			return false;
	}
	return true;
}

int kha_kube__endpoints_merge(const struct kha_kube__slice *slices, size_t n, const char *rv,
			      struct kha_kube_endpoint_set *ret)
{
	struct kha_kube_endpoint_set set = {.n_slices = n};
	size_t total = 0, n_ready = 0, n_serving = 0, i, j, out;

	for (i = 0; i < n; i++)
		total += slices[i].n_endpoints;
	if (total) {
		set.endpoints = calloc(total, sizeof(*set.endpoints));
		if (!set.endpoints)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < slices[i].n_endpoints; j++) {
			const struct kha_kube_endpoint *e = &slices[i].endpoints[j];

			n_ready += e->ready;
			n_serving += e->serving;
		}
	}
	set.serving_fallback = n_ready == 0 && n_serving > 0;
	for (i = 0; i < n; i++) {
		for (j = 0; j < slices[i].n_endpoints; j++) {
			const struct kha_kube_endpoint *e = &slices[i].endpoints[j];

			if (set.serving_fallback ? e->serving : e->ready)
				set.endpoints[set.n_endpoints++] = *e;
		}
	}
	if (set.n_endpoints)
		qsort(set.endpoints, set.n_endpoints, sizeof(*set.endpoints), endpoint_cmp);
	/* the same address in two slices (while slices are rebalanced): keep one */
	for (i = 0, out = 0; i < set.n_endpoints; i++) {
		if (out && endpoint_cmp(&set.endpoints[out - 1], &set.endpoints[i]) == 0) {
			struct kha_kube_endpoint *k = &set.endpoints[out - 1];

			k->ready |= set.endpoints[i].ready;
			k->serving |= set.endpoints[i].serving;
			k->terminating &= set.endpoints[i].terminating;
			continue;
		}
		set.endpoints[out++] = set.endpoints[i];
	}
	set.n_endpoints = out;
	set.empty = out == 0;
	if (rv) {
		set.resource_version = strdup(rv);
		if (!set.resource_version) {
			free(set.endpoints);
			return -ENOMEM;
		}
	}
	*ret = set;
	return 0;
}

/* ---- back-off ---- */

void kha_kube__backoff_reset(struct kha_kube__backoff *b)
{
	b->cur_us = 0;
}

uint64_t kha_kube__backoff_next(struct kha_kube__backoff *b, uint32_t rnd)
{
	uint64_t half;

	if (b->cur_us == 0)
		b->cur_us = b->initial_us ? b->initial_us : 1;
	else
		b->cur_us = b->cur_us > b->max_us / 2 ? b->max_us : b->cur_us * 2;
	if (b->cur_us > b->max_us)
		b->cur_us = b->max_us;
	half = b->cur_us / 2;
	return half + (half ? (uint64_t)rnd % (half + 1) : 0) + (b->cur_us & 1);
}

/* ---- Leases ---- */

static int lease_time(const json_t *spec, const char *key, int64_t *ret, struct kha_diag *d)
{
	bool bad = false;
	const char *s = opt_string(spec, key, &bad);

	*ret = 0;
	if (bad || (s && kha_kube_time_parse(s, ret) < 0))
		return kha_diag_set(d, EBADMSG, "Lease: spec.%s: not an RFC 3339 time", key);
	return 0;
}

static int lease_int(const json_t *spec, const char *key, int32_t *ret, struct kha_diag *d)
{
	const json_t *v = json_object_get(spec, key);

	*ret = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
		return kha_diag_set(d, EBADMSG, "Lease: spec.%s: not a 32-bit count", key);
	*ret = (int32_t)json_integer_value(v);
	return 0;
}

int kha_kube__lease_from_json(const json_t *root, struct kha_kube_lease *ret, struct kha_diag *d)
{
	struct kha_kube_lease l = {};
	const json_t *meta = json_object_get(root, "metadata"),
		     *spec = json_object_get(root, "spec");
	const char *ns, *name, *rv, *holder;
	bool bad = false;

	if (!json_is_object(root) || !json_is_object(meta))
		return kha_diag_set(d, EBADMSG, "Lease without metadata");
	if (spec && !json_is_null(spec) && !json_is_object(spec))
		return kha_diag_set(d, EBADMSG, "Lease: spec: not an object");
	ns = opt_string(meta, "namespace", &bad);
	name = opt_string(meta, "name", &bad);
	rv = opt_string(meta, "resourceVersion", &bad);
	holder = opt_string(spec, "holderIdentity", &bad);
	if (bad || !name)
		return kha_diag_set(d, EBADMSG, "Lease: metadata: no name or wrong types");
	if (copy_str(l.namespace, sizeof(l.namespace), ns ? ns : "") < 0 ||
	    copy_str(l.name, sizeof(l.name), name) < 0 ||
	    copy_str(l.resource_version, sizeof(l.resource_version), rv ? rv : "") < 0)
		return kha_diag_set(d, EBADMSG, "Lease: metadata: name or version too long");
	if (copy_str(l.holder_identity, sizeof(l.holder_identity), holder ? holder : "") < 0)
		return kha_diag_set(d, EBADMSG, "Lease: spec.holderIdentity: longer than %zu bytes",
				    sizeof(l.holder_identity) - 1);
	if (lease_int(spec, "leaseDurationSeconds", &l.lease_duration_s, d) < 0 ||
	    lease_int(spec, "leaseTransitions", &l.lease_transitions, d) < 0 ||
	    lease_time(spec, "acquireTime", &l.acquire_time_us, d) < 0 ||
	    lease_time(spec, "renewTime", &l.renew_time_us, d) < 0)
		return -EBADMSG;
	*ret = l;
	return 0;
}

int kha_kube_lease_decode(const char *text, size_t len, struct kha_kube_lease *ret,
			  struct kha_diag *d)
{
	json_t *root = load_json(text, len, d);
	int r;

	if (!root)
		return -EBADMSG;
	r = kha_kube__lease_from_json(root, ret, d);
	json_decref(root);
	return r;
}

json_t *kha_kube__lease_to_json(const struct kha_kube_lease *l)
{
	char at[KHA_KUBE_MICROTIME_SIZE], rt[KHA_KUBE_MICROTIME_SIZE];
	json_t *meta = json_object(), *spec = json_object();
	json_t *root = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "coordination.k8s.io/v1",
				 "kind", "Lease", "metadata", meta, "spec", spec);
	bool fail = false;

	if (!root)
		return NULL; /* json_pack's "o" stole meta and spec even on failure */
	fail |= json_object_set_new(meta, "name", json_string(l->name)) < 0;
	if (l->namespace[0])
		fail |= json_object_set_new(meta, "namespace", json_string(l->namespace)) < 0;
	if (l->resource_version[0])
		fail |= json_object_set_new(meta, "resourceVersion",
					    json_string(l->resource_version)) < 0;
	/* an empty holder is written out: that is how a holder releases the lease */
	fail |= json_object_set_new(spec, "holderIdentity", json_string(l->holder_identity)) < 0;
	if (l->lease_duration_s > 0)
		fail |= json_object_set_new(spec, "leaseDurationSeconds",
					    json_integer(l->lease_duration_s)) < 0;
	if (l->acquire_time_us)
		fail |= json_object_set_new(spec, "acquireTime",
					    json_string(kha_kube_microtime_format(
						    at, sizeof(at), l->acquire_time_us))) < 0;
	if (l->renew_time_us)
		fail |= json_object_set_new(spec, "renewTime",
					    json_string(kha_kube_microtime_format(
						    rt, sizeof(rt), l->renew_time_us))) < 0;
	fail |= json_object_set_new(spec, "leaseTransitions", json_integer(l->lease_transitions)) <
		0;
	if (fail) {
		json_decref(root);
		return NULL;
	}
	return root;
}

char *kha_kube_lease_encode(const struct kha_kube_lease *l)
{
	json_t *root = kha_kube__lease_to_json(l);
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;

	json_decref(root);
	return text;
}
