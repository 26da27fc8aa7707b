// SPDX-License-Identifier: MIT
/*
 * Decoders of the Kubernetes objects the audit reads (Deployment, PodDisruptionBudget, Pod and
 * their lists): pure, strict about types (a wrong type is -EBADMSG naming the field), lenient
 * about absence (the API omits empty fields).
 */
#include <stdio.h>
#include <string.h>

#include "kha/audit.h"
#include "kha/json.h"
#include "kha/banned.h"

/* ---- labels -------------------------------------------------------------------------------- */

void kha_audit_labels_release(struct kha_audit_labels *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	*l = (struct kha_audit_labels){};
}

const char *kha_audit_labels_get(const struct kha_audit_labels *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].key, key) == 0)
			return l->items[i].value;
	return NULL;
}

bool kha_audit_labels_match(const struct kha_audit_labels *sel,
			    const struct kha_audit_labels *labels)
{
	for (size_t i = 0; i < sel->n; i++) {
		const char *v = kha_audit_labels_get(labels, sel->items[i].key);

		if (!v || strcmp(v, sel->items[i].value) != 0)
			return false;
	}
	return true;
}

static int bad(struct kha_diag *d, const char *what, const char *why)
{
	return kha_diag_set(d, EBADMSG, "%s %s", what, why);
}

/* obj (a map of strings, or absent/null) into *ret */
static int labels_decode(const json_t *obj, const char *what, struct kha_audit_labels *ret,
			 struct kha_diag *d)
{
	const char *key;
	json_t *v;
	size_t n;

	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return bad(d, what, "is not an object");
	n = json_object_size(obj);
	if (!n)
		return 0;
	ret->items = calloc(n, sizeof(*ret->items));
	if (!ret->items)
		return kha_diag_set(d, ENOMEM, "out of memory");
	json_object_foreach ((json_t *)obj, key, v) {
		struct kha_audit_label *l = &ret->items[ret->n];

		if (!json_is_string(v))
			return kha_diag_set(d, EBADMSG, "%s: label '%s' is not a string", what,
					    key);
		l->key = strdup(key);
		l->value = strdup(json_string_value(v));
		ret->n++;
		if (!l->key || !l->value)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	return 0;
}

/* a LabelSelector: matchLabels, and whether matchExpressions says more */
static int selector_decode(const json_t *sel, const char *what, struct kha_audit_labels *ret,
			   bool *ret_has_expressions, struct kha_diag *d)
{
	json_t *ml, *me;
	char w[64];

	if (!sel || json_is_null(sel))
		return 0;
	if (!json_is_object(sel))
		return bad(d, what, "is not an object");
	ml = json_object_get(sel, "matchLabels");
	me = json_object_get(sel, "matchExpressions");
	if (me && !json_is_null(me) && !json_is_array(me))
		return bad(d, what, "matchExpressions is not an array");
	*ret_has_expressions = json_is_array(me) && json_array_size(me) > 0;
	snprintf(w, sizeof(w), "%s.matchLabels", what);
	return labels_decode(ml, w, ret, d);
}

/* a path of objects: each step must be an object when present; NULL when any is absent */
static int walk(const json_t *obj, const char *const *path, size_t n, json_t **ret,
		struct kha_diag *d)
{
	json_t *cur = (json_t *)obj;

	for (size_t i = 0; i < n; i++) {
		json_t *next = json_object_get(cur, path[i]);

		if (!next || json_is_null(next)) {
			*ret = NULL;
			return 0;
		}
		if (!json_is_object(next))
			return kha_diag_set(d, EBADMSG, "field '%s' is not an object", path[i]);
		cur = next;
	}
	*ret = cur;
	return 0;
}

static int str_field(const json_t *obj, const char *name, char **ret, struct kha_diag *d)
{
	json_t *v = obj ? json_object_get(obj, name) : NULL;

	if (v && !json_is_null(v) && !json_is_string(v))
		return kha_diag_set(d, EBADMSG, "field '%s' is not a string", name);
	*ret = strdup(json_is_string(v) ? json_string_value(v) : "");
	return *ret ? 0 : kha_diag_set(d, ENOMEM, "out of memory");
}

static int int_field(const json_t *obj, const char *name, int64_t *ret, struct kha_diag *d)
{
	json_t *v = obj ? json_object_get(obj, name) : NULL;

	if (!v || json_is_null(v)) {
		*ret = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return kha_diag_set(d, EBADMSG, "field '%s' is not an integer", name);
	*ret = json_integer_value(v);
	return 0;
}

/* IntOrString: 1 or "50%" */
static int int_or_string(const json_t *obj, const char *name, char *buf, size_t size,
			 struct kha_diag *d)
{
	json_t *v = obj ? json_object_get(obj, name) : NULL;

	buf[0] = '\0';
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v))
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_string(v) && strlen(json_string_value(v)) < size &&
		 json_string_value(v)[0])
		snprintf(buf, size, "%s", json_string_value(v));
	else
		return kha_diag_set(d, EBADMSG, "field '%s' is not an integer or a short string",
				    name);
	return 0;
}

static int metadata_decode(const json_t *obj, char **ret_name, char **ret_ns, struct kha_diag *d)
{
	static const char *const md_path[] = {"metadata"};
	json_t *md = NULL;
	int r;

	if (!json_is_object(obj))
		return kha_diag_set(d, EBADMSG, "not an object");
	r = walk(obj, md_path, 1, &md, d);
	if (r < 0)
		return r;
	if (!md)
		return kha_diag_set(d, EBADMSG, "no metadata");
	r = str_field(md, "name", ret_name, d);
	if (r < 0)
		return r;
	if (!(*ret_name)[0])
		return kha_diag_set(d, EBADMSG, "no metadata.name");
	return str_field(md, "namespace", ret_ns, d);
}

static int push_str(char ***v, size_t *n, const char *s)
{
	if (KHA_RESIZE(*v, *n + 1) < 0)
		return -ENOMEM;
	(*v)[*n] = strdup(s);
	if (!(*v)[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- Deployment ---------------------------------------------------------------------------- */

void kha_audit_deployment_release(struct kha_audit_deployment *dep)
{
	if (!dep)
		return;
	free(dep->name);
	free(dep->namespace);
	kha_audit_labels_release(&dep->selector);
	kha_audit_labels_release(&dep->template_labels);
	free_strv(dep->anti_affinity_topology_keys, dep->n_anti_affinity_topology_keys);
	free_strv(dep->spread_topology_keys, dep->n_spread_topology_keys);
	*dep = (struct kha_audit_deployment){};
}

/* the topologyKey of each term of an anti-affinity list (plain or weighted) */
static int anti_affinity_terms(const json_t *list, bool weighted, struct kha_audit_deployment *dep,
			       bool *ret_any, struct kha_diag *d)
{
	size_t i;
	json_t *t;

	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return kha_diag_set(d, EBADMSG, "podAntiAffinity: a term list is not an array");
	json_array_foreach (list, i, t) {
		json_t *term = weighted ? json_object_get(t, "podAffinityTerm") : t;
		json_t *key;

		if (!json_is_object(term))
			return kha_diag_set(d, EBADMSG,
					    "podAntiAffinity: term %zu is not an object", i);
		key = json_object_get(term, "topologyKey");
		if (key && !json_is_string(key))
			return kha_diag_set(d, EBADMSG,
					    "podAntiAffinity: topologyKey is not a "
					    "string");
		*ret_any = true;
		if (push_str(&dep->anti_affinity_topology_keys, &dep->n_anti_affinity_topology_keys,
			     key ? json_string_value(key) : "") < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	return 0;
}

int kha_audit_deployment_from_json(const json_t *obj, struct kha_audit_deployment *ret,
				   struct kha_diag *d)
{
	static const char *const spec_path[] = {"spec"};
	static const char *const status_path[] = {"status"};
	static const char *const tmpl_md_path[] = {"spec", "template", "metadata"};
	static const char *const pod_spec_path[] = {"spec", "template", "spec"};
	static const char *const anti_path[] = {"affinity", "podAntiAffinity"};
	struct kha_audit_deployment dep = {};
	json_t *spec = NULL, *status = NULL, *tmd = NULL, *pspec = NULL, *anti = NULL, *v;
	int r;

	r = metadata_decode(obj, &dep.name, &dep.namespace, d);
	if (r < 0)
		goto fail;
	if ((r = walk(obj, spec_path, 1, &spec, d)) < 0 ||
	    (r = walk(obj, status_path, 1, &status, d)) < 0 ||
	    (r = walk(obj, tmpl_md_path, 3, &tmd, d)) < 0 ||
	    (r = walk(obj, pod_spec_path, 3, &pspec, d)) < 0)
		goto fail;
	if (pspec && (r = walk(pspec, anti_path, 2, &anti, d)) < 0)
		goto fail;
	v = spec ? json_object_get(spec, "replicas") : NULL;
	if (!v || json_is_null(v))
		dep.replicas = 1; /* the API's default */
	else if ((r = int_field(spec, "replicas", &dep.replicas, d)) < 0)
		goto fail;
	if ((r = int_field(status, "readyReplicas", &dep.ready_replicas, d)) < 0 ||
	    (r = int_field(status, "availableReplicas", &dep.available_replicas, d)) < 0)
		goto fail;
	if (spec && (r = selector_decode(json_object_get(spec, "selector"), "spec.selector",
					 &dep.selector, &dep.selector_has_expressions, d)) < 0)
		goto fail;
	if (tmd &&
	    (r = labels_decode(json_object_get(tmd, "labels"), "spec.template.metadata.labels",
			       &dep.template_labels, d)) < 0)
		goto fail;
	if (anti) {
		if ((r = anti_affinity_terms(
			     json_object_get(anti,
					     "requiredDuringSchedulingIgnoredDuringExecution"),
			     false, &dep, &dep.anti_affinity_required, d)) < 0 ||
		    (r = anti_affinity_terms(
			     json_object_get(anti,
					     "preferredDuringSchedulingIgnoredDuringExecution"),
			     true, &dep, &dep.anti_affinity_preferred, d)) < 0)
			goto fail;
	}
	v = pspec ? json_object_get(pspec, "topologySpreadConstraints") : NULL;
	if (v && !json_is_null(v)) {
		size_t i;
		json_t *c;

		if (!json_is_array(v)) {
			r = kha_diag_set(d, EBADMSG, "topologySpreadConstraints is not an array");
			goto fail;
		}
		json_array_foreach (v, i, c) {
			json_t *key = json_object_get(c, "topologyKey");

			if (!json_is_object(c) || !json_is_string(key)) {
				r = kha_diag_set(d, EBADMSG,
						 "topologySpreadConstraints[%zu]: no topologyKey",
						 i);
				goto fail;
			}
			if (push_str(&dep.spread_topology_keys, &dep.n_spread_topology_keys,
				     json_string_value(key)) < 0) {
				r = kha_diag_set(d, ENOMEM, "out of memory");
				goto fail;
			}
		}
	}
	*ret = dep;
	return 0;
fail:
	kha_diag_prefix(d, "Deployment");
	kha_audit_deployment_release(&dep);
	return r;
}

int kha_audit_deployment_decode(const char *text, size_t len, struct kha_audit_deployment *ret,
				struct kha_diag *d)
{
	json_t *j = NULL;
	int r = kha_json_parse(text, len, &j, d);

	if (r < 0)
		return r;
	r = kha_audit_deployment_from_json(j, ret, d);
	json_decref(j);
	return r;
}

/* the items array of a List, or -EBADMSG */
static int list_items(const json_t *obj, const char *kind, json_t **ret, struct kha_diag *d)
{
	json_t *items;

	if (!json_is_object(obj))
		return kha_diag_set(d, EBADMSG, "%s: not an object", kind);
	items = json_object_get(obj, "items");
	if (!items || json_is_null(items)) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_array(items))
		return kha_diag_set(d, EBADMSG, "%s: field 'items' is not an array", kind);
	*ret = items;
	return 0;
}

/* One kind of List: how to decode one of its items into, and release one from, an array. */
struct list_kind {
	const char *kind; /* "PodList" */
	size_t item_size;
	int (*decode)(const json_t *obj, void *item, struct kha_diag *d);
	void (*release)(void *item);
};

static void list_release(const struct list_kind *k, void *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		k->release((char *)items + i * k->item_size);
	free(items);
}

/* Decodes the items of obj into a new array (NULL and 0 when it has none). */
static int list_decode(const struct list_kind *k, const json_t *obj, void **ret_items,
		       size_t *ret_n, struct kha_diag *d)
{
	json_t *items = NULL, *it;
	size_t i, n = 0;
	char *arr;
	int r;

	*ret_items = NULL;
	*ret_n = 0;
	r = list_items(obj, k->kind, &items, d);
	if (r < 0 || !items)
		return r;
	arr = calloc(json_array_size(items) + 1, k->item_size);
	if (!arr)
		return kha_diag_set(d, ENOMEM, "out of memory");
	json_array_foreach (items, i, it) {
		r = k->decode(it, arr + n * k->item_size, d);
		if (r < 0) {
			kha_diag_prefix(d, "items[%zu]", i);
			list_release(k, arr, n);
			return r;
		}
		n++;
	}
	*ret_items = arr;
	*ret_n = n;
	return 0;
}

static int deployment_item(const json_t *obj, void *item, struct kha_diag *d)
{
	return kha_audit_deployment_from_json(obj, item, d);
}

static void deployment_item_release(void *item)
{
	kha_audit_deployment_release(item);
}

static const struct list_kind deployment_list = {"DeploymentList",
						 sizeof(struct kha_audit_deployment),
						 deployment_item, deployment_item_release};

void kha_audit_deployment_list_release(struct kha_audit_deployment_list *l)
{
	if (!l)
		return;
	list_release(&deployment_list, l->items, l->n);
	*l = (struct kha_audit_deployment_list){};
}

int kha_audit_deployment_list_from_json(const json_t *obj, struct kha_audit_deployment_list *ret,
					struct kha_diag *d)
{
	void *items;
	int r = list_decode(&deployment_list, obj, &items, &ret->n, d);

	ret->items = items;
	return r;
}

/* ---- PodDisruptionBudget ------------------------------------------------------------------- */

static void pdb_release(void *item)
{
	struct kha_audit_pdb *p = item;

	free(p->name);
	free(p->namespace);
	kha_audit_labels_release(&p->selector);
}

static int pdb_decode(const json_t *obj, void *item, struct kha_diag *d);

static const struct list_kind pdb_list = {"PodDisruptionBudgetList", sizeof(struct kha_audit_pdb),
					  pdb_decode, pdb_release};

void kha_audit_pdb_list_release(struct kha_audit_pdb_list *l)
{
	if (!l)
		return;
	list_release(&pdb_list, l->items, l->n);
	*l = (struct kha_audit_pdb_list){};
}

static int pdb_decode(const json_t *obj, void *item, struct kha_diag *d)
{
	struct kha_audit_pdb *ret = item;
	static const char *const spec_path[] = {"spec"};
	static const char *const status_path[] = {"status"};
	struct kha_audit_pdb p = {};
	json_t *spec = NULL, *status = NULL, *sel;
	int r;

	if ((r = metadata_decode(obj, &p.name, &p.namespace, d)) < 0 ||
	    (r = walk(obj, spec_path, 1, &spec, d)) < 0 ||
	    (r = walk(obj, status_path, 1, &status, d)) < 0)
		goto fail;
	sel = spec ? json_object_get(spec, "selector") : NULL;
	p.selector_null = !sel || json_is_null(sel);
	if ((r = selector_decode(sel, "spec.selector", &p.selector, &p.selector_has_expressions,
				 d)) < 0 ||
	    (r = int_or_string(spec, "minAvailable", p.min_available, sizeof(p.min_available), d)) <
		    0 ||
	    (r = int_or_string(spec, "maxUnavailable", p.max_unavailable, sizeof(p.max_unavailable),
			       d)) < 0 ||
	    (r = int_field(status, "disruptionsAllowed", &p.disruptions_allowed, d)) < 0 ||
	    (r = int_field(status, "currentHealthy", &p.current_healthy, d)) < 0 ||
	    (r = int_field(status, "desiredHealthy", &p.desired_healthy, d)) < 0 ||
	    (r = int_field(status, "expectedPods", &p.expected_pods, d)) < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	kha_diag_prefix(d, "PodDisruptionBudget");
	pdb_release(&p);
	return r;
}

int kha_audit_pdb_list_from_json(const json_t *obj, struct kha_audit_pdb_list *ret,
				 struct kha_diag *d)
{
	void *items;
	int r = list_decode(&pdb_list, obj, &items, &ret->n, d);

	ret->items = items;
	return r;
}

int kha_audit_pdb_list_decode(const char *text, size_t len, struct kha_audit_pdb_list *ret,
			      struct kha_diag *d)
{
	json_t *j = NULL;
	int r = kha_json_parse(text, len, &j, d);

	if (r < 0)
		return r;
	r = kha_audit_pdb_list_from_json(j, ret, d);
	json_decref(j);
	return r;
}

/* ---- Pod ----------------------------------------------------------------------------------- */

static void pod_release(void *item)
{
	struct kha_audit_pod *p = item;

	free(p->name);
	free(p->namespace);
	free(p->node);
	free(p->phase);
	free(p->etcd_servers);
}

/* The flags of interest in one command-line word w (and next, for "--flag value"). */
static int pod_flag(struct kha_audit_pod *p, const char *w, const char *next, bool *ret_used_next)
{
	static const char le[] = "--leader-elect", es[] = "--etcd-servers";
	const size_t nle = sizeof(le) - 1, nes = sizeof(es) - 1;
	const char *v = NULL;

	*ret_used_next = false;
	if (strncmp(w, le, nle) == 0 && (!w[nle] || w[nle] == '=')) {
		v = w[nle] ? w + nle + 1 : "true";
		p->leader_elect = strcmp(v, "false") == 0 || strcmp(v, "0") == 0 ? 0 : 1;
		return 0;
	}
	if (strncmp(w, es, nes) != 0)
		return 0;
	if (w[nes] == '=') {
		v = w + nes + 1;
	} else if (!w[nes] && next) {
		v = next;
		*ret_used_next = true;
	}
	if (!v)
		return 0;
	free(p->etcd_servers);
	p->etcd_servers = strdup(v);
	return p->etcd_servers ? 0 : -ENOMEM;
}

/* spec.containers[0].command and args: the flags pod_flag looks for. */
static int pod_flags(const json_t *spec, struct kha_audit_pod *p, struct kha_diag *d)
{
	static const char *const lists[] = {"command", "args"};
	json_t *containers = spec ? json_object_get(spec, "containers") : NULL, *c;

	p->leader_elect = -1;
	if (!containers || json_is_null(containers))
		return 0;
	if (!json_is_array(containers))
		return kha_diag_set(d, EBADMSG, "spec.containers is not an array");
	c = json_array_get(containers, 0);
	if (!c)
		return 0;
	if (!json_is_object(c))
		return kha_diag_set(d, EBADMSG, "spec.containers[0] is not an object");
	for (size_t k = 0; k < KHA_ARRAY_SIZE(lists); k++) {
		json_t *a = json_object_get(c, lists[k]);
		size_t n = json_is_array(a) ? json_array_size(a) : 0;

		if (a && !json_is_null(a) && !json_is_array(a))
			return kha_diag_set(d, EBADMSG, "spec.containers[0].%s is not an array",
					    lists[k]);
		for (size_t i = 0; i < n; i++) {
			const char *w = json_string_value(json_array_get(a, i));
			const char *next =
				i + 1 < n ? json_string_value(json_array_get(a, i + 1)) : NULL;
			bool used = false;

			if (!w)
				return kha_diag_set(d, EBADMSG,
						    "spec.containers[0].%s[%zu] is not a string",
						    lists[k], i);
			if (pod_flag(p, w, next, &used) < 0)
				return kha_diag_set(d, ENOMEM, "out of memory");
			i += used;
		}
	}
	return 0;
}

static int pod_decode(const json_t *obj, void *item, struct kha_diag *d);

static const struct list_kind pod_list = {"PodList", sizeof(struct kha_audit_pod), pod_decode,
					  pod_release};

void kha_audit_pod_list_release(struct kha_audit_pod_list *l)
{
	if (!l)
		return;
	list_release(&pod_list, l->items, l->n);
	*l = (struct kha_audit_pod_list){};
}

static int pod_decode(const json_t *obj, void *item, struct kha_diag *d)
{
	struct kha_audit_pod *ret = item;
	static const char *const spec_path[] = {"spec"};
	static const char *const status_path[] = {"status"};
	struct kha_audit_pod p = {};
	json_t *spec = NULL, *status = NULL, *conds, *c, *dt;
	size_t i;
	int r;

	if ((r = metadata_decode(obj, &p.name, &p.namespace, d)) < 0 ||
	    (r = walk(obj, spec_path, 1, &spec, d)) < 0 ||
	    (r = walk(obj, status_path, 1, &status, d)) < 0 ||
	    (r = str_field(spec, "nodeName", &p.node, d)) < 0 ||
	    (r = str_field(status, "phase", &p.phase, d)) < 0 || (r = pod_flags(spec, &p, d)) < 0)
		goto fail;
	dt = json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp");
	p.terminating = dt && !json_is_null(dt);
	conds = status ? json_object_get(status, "conditions") : NULL;
	if (conds && !json_is_null(conds) && !json_is_array(conds)) {
		r = kha_diag_set(d, EBADMSG, "status.conditions is not an array");
		goto fail;
	}
	json_array_foreach (conds, i, c) {
		json_t *type = json_object_get(c, "type"), *st = json_object_get(c, "status");

		if (!json_is_object(c) || !json_is_string(type) || !json_is_string(st)) {
			r = kha_diag_set(d, EBADMSG, "status.conditions[%zu] has no type or status",
					 i);
			goto fail;
		}
		if (strcmp(json_string_value(type), "Ready") == 0)
			p.ready = strcmp(json_string_value(st), "True") == 0;
	}
	*ret = p;
	return 0;
fail:
	kha_diag_prefix(d, "Pod");
	pod_release(&p);
	return r;
}

int kha_audit_pod_list_from_json(const json_t *obj, struct kha_audit_pod_list *ret,
				 struct kha_diag *d)
{
	void *items;
	int r = list_decode(&pod_list, obj, &items, &ret->n, d);

	ret->items = items;
	return r;
}

int kha_audit_pod_list_decode(const char *text, size_t len, struct kha_audit_pod_list *ret,
			      struct kha_diag *d)
{
	json_t *j = NULL;
	int r = kha_json_parse(text, len, &j, d);

	if (r < 0)
		return r;
	r = kha_audit_pod_list_from_json(j, ret, d);
	json_decref(j);
	return r;
}
