// SPDX-License-Identifier: MIT
/*
 * FleetLock (Zincati's reboot-coordination protocol) on the etcd semaphore of kha lock.
 *
 * A FleetLock holder is a key "<lock>/fleetlock:<id>" WITHOUT a lease: the client reboots while
 * holding it, so it must outlive every connection and this server; only steady-state (or an
 * operator) removes it. A pre-reboot first puts the key on a short lease of its own ("pending"),
 * reads the queue, and either makes the key permanent (put with lease 0 keeps its create
 * revision, so its place) when it is among the first N, or deletes it: a crash in between
 * leaves only a key that expires with its lease.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kha/election.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define PENDING_TTL_US (10 * KHA_USEC_PER_SEC)

const char *kha_fleetlock_lock_name(char *buf, size_t size, const char *lock, const char *group)
{
	if (strcmp(group, "default") == 0)
		snprintf(buf, size, "%s", lock);
	else
		snprintf(buf, size, "%s.%s", lock, group);
	return buf;
}

void kha_fleetlock_result_set(struct kha_fleetlock_result *ret, int status, const char *kind,
			      const char *fmt, ...)
{
	va_list ap;

	ret->status = status;
	snprintf(ret->kind, sizeof(ret->kind), "%s", kind);
	va_start(ap, fmt);
	vsnprintf(ret->value, sizeof(ret->value), fmt, ap);
	va_end(ap);
}

/* "<lock>/fleetlock:<id>", id bytes outside [A-Za-z0-9._-] as %XX. */
static int holder_key(char *buf, size_t size, const char *lock, const char *id)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o;
	int n = snprintf(buf, size, "%s/fleetlock:", lock);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	o = (size_t)n;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';

		if (o + 4 >= size)
			return -ENAMETOOLONG;
		if (plain) {
			buf[o++] = (char)*p;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 15];
		}
	}
	buf[o] = '\0';
	return 0;
}

static void etcd_failed(struct kha_fleetlock_result *ret, const struct kha_diag *d)
{
	kha_fleetlock_result_set(ret, 503, "failed_etcd", "etcd: %s", d->msg);
}

/* Deletes key if it still has create revision rev. */
static void delete_if(struct kha_etcd *c, const char *key, int64_t rev)
{
	struct kha_etcd_compare cmp = {.target = KHA_ETCD_CMP_CREATE_REVISION,
				       .op = KHA_ETCD_CMP_EQUAL,
				       .r = {.key = key},
				       .number = rev};
	struct kha_etcd_op del = {.type = KHA_ETCD_OP_DELETE, .del = {.r = {.key = key}}};
	struct kha_etcd_txn_req req = {
		.compare = &cmp, .n_compare = 1, .success = &del, .n_success = 1};
	struct kha_etcd_txn_result res = {};

	kha_ignore(kha_etcd_txn(c, &req, &res, NULL));
	kha_etcd_txn_result_release(&res);
}

/*
 * Puts value on key (under lease, 0: none) if key's create revision is rev (0: key absent).
 * res is released first, then holds the answer (res->succeeded). 0 or a negative errno.
 */
static int put_if_created_at(struct kha_etcd *c, const char *key, const char *value, int64_t lease,
			     int64_t rev, struct kha_etcd_txn_result *res, struct kha_diag *d)
{
	struct kha_etcd_compare cmp = {.target = KHA_ETCD_CMP_CREATE_REVISION,
				       .op = KHA_ETCD_CMP_EQUAL,
				       .r = {.key = key},
				       .number = rev};
	struct kha_etcd_op put = {.type = KHA_ETCD_OP_PUT,
				  .put = {.key = key, .value = value, .lease = lease}};
	struct kha_etcd_txn_req req = {
		.compare = &cmp, .n_compare = 1, .success = &put, .n_success = 1};

	kha_etcd_txn_result_release(res);
	kha_diag_clear(d);
	return kha_etcd_txn(c, &req, res, d);
}

/* Whether p->id already holds key or is asking for it: true when *ret says so. */
static bool already_asked(struct kha_etcd *c, const char *key, const char *lock,
			  const struct kha_fleetlock_params *p, struct kha_fleetlock_result *ret)
{
	struct kha_etcd_kv cur = {};
	struct kha_diag d = {};
	int r = kha_etcd_get(c, key, &cur, &d);
	bool permanent;

	if (r == -ENOENT)
		return false;
	if (r < 0) {
		etcd_failed(ret, &d);
		return true;
	}
	permanent = cur.lease == 0;
	kha_etcd_kv_release(&cur);
	if (permanent)
		kha_fleetlock_result_set(ret, 200, "lock_held", "%s already holds a slot of %s",
					 p->id, lock);
	else
		kha_fleetlock_result_set(ret, 409, "failed_lock_pending",
					 "another request of %s for %s is in progress; retry",
					 p->id, lock);
	return true;
}

/* Whether a gate of o is closed: true when *ret says which. */
static bool gate_closed(const struct kha_fleetlock_opts *o, struct kha_fleetlock_result *ret)
{
	const char *gate = NULL;
	char reason[400], kind[64];

	if (!o->gates || kha_lock_gates_check_named(o->gates, &gate, reason, sizeof(reason)) == 0)
		return false;
	snprintf(kind, sizeof(kind), "failed_gate_%s", gate ? gate : "unknown");
	kha_fleetlock_result_set(ret, 409, kind, "%s", reason);
	return true;
}

void kha_fleetlock_pre_reboot(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
			      const struct kha_fleetlock_params *p,
			      struct kha_fleetlock_result *ret)
{
	char lock[512], key[1400], prefix[520];
	struct kha_etcd_range_result rr = {};
	struct kha_etcd_txn_result tr = {};
	struct kha_lock_sem_position pos;
	struct kha_diag d = {};
	kha_autofree char *value = NULL;
	int64_t lease = 0, my_rev;
	uint64_t pending = o->pending_ttl_us ? o->pending_ttl_us : PENDING_TTL_US;
	int r;

	kha_fleetlock_lock_name(lock, sizeof(lock), o->lock, p->group);
	snprintf(prefix, sizeof(prefix), "%s/", lock);
	if (holder_key(key, sizeof(key), lock, p->id) < 0) {
		kha_fleetlock_result_set(ret, 400, "bad_request_body",
					 "client_params.id is too long");
		return;
	}
	/* already a holder? (recursive lock) */
	if (already_asked(c, key, lock, p, ret))
		return;
	value = kha_lock_value(p->id, o->slots, (int64_t)kha_wall_us(), true);
	if (!value) {
		kha_fleetlock_result_set(ret, 500, "failed_internal", "out of memory");
		return;
	}
	kha_diag_clear(&d);
	r = kha_etcd_lease_grant(c, (int64_t)((pending + KHA_USEC_PER_SEC - 1) / KHA_USEC_PER_SEC),
				 0, &lease, NULL, &d);
	if (r < 0) {
		etcd_failed(ret, &d);
		return;
	}
	/* a pending key, under a short lease: a crashed request leaves nothing behind */
	r = put_if_created_at(c, key, value, lease, 0, &tr, &d);
	if (r < 0) {
		etcd_failed(ret, &d);
		goto out;
	}
	if (!tr.succeeded) {
		kha_fleetlock_result_set(ret, 409, "failed_lock_pending",
					 "another request of %s for %s is in progress; retry",
					 p->id, lock);
		goto out;
	}
	my_rev = tr.header.revision;
	kha_diag_clear(&d);
	{
		struct kha_etcd_range_req rq = {.r = {.key = prefix, .prefix = true}};

		r = kha_etcd_range(c, &rq, &rr, &d);
	}
	if (r < 0) {
		etcd_failed(ret, &d);
		delete_if(c, key, my_rev);
		goto out;
	}
	if (kha_lock_sem_position(rr.kvs, rr.n_kvs, key, &pos) < 0) {
		kha_fleetlock_result_set(ret, 409, "failed_lock_pending",
					 "the request was withdrawn; retry");
		goto out;
	}
	if (pos.rank >= o->slots) {
		kha_fleetlock_result_set(ret, 409, "failed_lock_semaphore_full",
					 "semaphore %s is full: all %zu slot(s) are locked already",
					 lock, o->slots);
		delete_if(c, key, my_rev);
		goto out;
	}
	if (gate_closed(o, ret)) {
		delete_if(c, key, my_rev);
		goto out;
	}
	/* keep the place (create revision), drop the lease: the slot now outlives us */
	r = put_if_created_at(c, key, value, 0, my_rev, &tr, &d);
	if (r < 0) {
		etcd_failed(ret, &d);
		delete_if(c, key, my_rev);
		goto out;
	}
	if (!tr.succeeded) {
		kha_fleetlock_result_set(ret, 409, "failed_lock_pending",
					 "the request was withdrawn; retry");
		goto out;
	}
	{
		char ql[600], qi[KHA_FLEETLOCK_ID_MAX * 4 + 3];

		kha_info("fleetlock: slot granted", "lock=%s id=%s position=%zu",
			 kha_log_quote(ql, sizeof(ql), lock), kha_log_quote(qi, sizeof(qi), p->id),
			 pos.rank + 1);
	}
	kha_fleetlock_result_set(ret, 200, "lock_granted", "%s holds slot %zu of %zu of %s", p->id,
				 pos.rank + 1, o->slots, lock);
out:
	if (lease)
		kha_ignore(kha_etcd_lease_revoke(c, lease, NULL));
	kha_etcd_range_result_release(&rr);
	kha_etcd_txn_result_release(&tr);
}

void kha_fleetlock_steady_state(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
				const struct kha_fleetlock_params *p,
				struct kha_fleetlock_result *ret)
{
	struct kha_etcd_delete_result dr = {};
	char lock[512], key[1400];
	struct kha_diag d = {};
	struct kha_etcd_delete_req req;
	int r;

	kha_fleetlock_lock_name(lock, sizeof(lock), o->lock, p->group);
	if (holder_key(key, sizeof(key), lock, p->id) < 0) {
		kha_fleetlock_result_set(ret, 400, "bad_request_body",
					 "client_params.id is too long");
		return;
	}
	req = (struct kha_etcd_delete_req){.r = {.key = key}};
	r = kha_etcd_delete(c, &req, &dr, &d);
	if (r < 0) {
		etcd_failed(ret, &d);
		return;
	}
	if (dr.deleted) {
		char ql[600], qi[KHA_FLEETLOCK_ID_MAX * 4 + 3];

		kha_info("fleetlock: slot released", "lock=%s id=%s",
			 kha_log_quote(ql, sizeof(ql), lock), kha_log_quote(qi, sizeof(qi), p->id));
	}
	kha_fleetlock_result_set(ret, 200, "lock_released", "%s holds no slot of %s", p->id, lock);
	kha_etcd_delete_result_release(&dr);
}

/* ---- who may do what ---- */

static bool group_allowed(const struct kha_fleetlock_opts *o, const char *group)
{
	if (!o->n_groups)
		return strcmp(group, "default") == 0;
	for (size_t i = 0; i < o->n_groups; i++)
		if (strcmp(o->groups[i], group) == 0)
			return true;
	return false;
}

bool kha_fleetlock_id_allowed(const struct kha_fleetlock_opts *o,
			      const struct kha_httpd_tls_peer *peer, const char *id)
{
	if (!peer || !peer->verified)
		return true;
	if (!o->idmap)
		return kha_httpd_tls_peer_has_name(peer, id);
	for (size_t i = 0; i < o->idmap->n; i++) {
		const struct kha_fleetlock_idmap_entry *e = &o->idmap->entries[i];

		if (!kha_httpd_tls_peer_has_name(peer, e->name))
			continue;
		for (size_t k = 0; k < e->n_ids; k++)
			if (strcmp(e->ids[k], id) == 0)
				return true;
	}
	return false;
}

void kha_fleetlock_idmap_release(struct kha_fleetlock_idmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		for (size_t k = 0; k < m->entries[i].n_ids; k++)
			free(m->entries[i].ids[k]);
		free(m->entries[i].ids);
		free(m->entries[i].name);
	}
	free(m->entries);
	memset(m, 0, sizeof(*m));
}

/* Adds one line's words (words[0] the certificate name) to m. */
static int idmap_add(struct kha_fleetlock_idmap *m, char **words, size_t n)
{
	struct kha_fleetlock_idmap_entry *e;

	if (KHA_RESIZE(m->entries, m->n + 1) < 0)
		return -ENOMEM;
	e = &m->entries[m->n];
	memset(e, 0, sizeof(*e));
	e->ids = calloc(n - 1, sizeof(*e->ids));
	e->name = strdup(words[0]);
	m->n++;
	if (!e->ids || !e->name)
		return -ENOMEM;
	for (size_t i = 1; i < n; i++) {
		e->ids[i - 1] = strdup(words[i]);
		if (!e->ids[i - 1])
			return -ENOMEM;
		e->n_ids++;
	}
	return 0;
}

int kha_fleetlock_idmap_load(const char *path, struct kha_fleetlock_idmap *ret, struct kha_diag *d)
{
	struct kha_fleetlock_idmap m = {};
	kha_autofree char *line = NULL;
	size_t cap = 0, lineno = 0;
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) >= 0) {
		char *words[1 + KHA_FLEETLOCK_IDMAP_IDS], *save = NULL, *w;
		size_t n = 0;

		lineno++;
		if (strchr(line, '#'))
			*strchr(line, '#') = '\0';
		for (w = strtok_r(line, " \t\r\n", &save); w;
		     w = strtok_r(NULL, " \t\r\n", &save)) {
			if (n == KHA_ARRAY_SIZE(words)) {
				r = kha_diag_set(d, EINVAL, "%s:%zu: more than %d ids", path,
						 lineno, KHA_FLEETLOCK_IDMAP_IDS);
				goto out;
			}
			if (strlen(w) >= KHA_FLEETLOCK_ID_MAX) {
				r = kha_diag_set(d, EINVAL, "%s:%zu: a name longer than %d bytes",
						 path, lineno, KHA_FLEETLOCK_ID_MAX - 1);
				goto out;
			}
			words[n++] = w;
		}
		if (n == 0)
			continue;
		if (n == 1) {
			r = kha_diag_set(
				d, EINVAL,
				"%s:%zu: '%s' names no id (expected: CERTIFICATE-NAME ID...)", path,
				lineno, words[0]);
			goto out;
		}
		r = idmap_add(&m, words, n);
		if (r < 0) {
			kha_diag_set(d, -r, "out of memory");
			goto out;
		}
	}
	if (ferror(f))
		r = kha_diag_set(d, EIO, "%s: read error", path);
out:
	fclose(f);
	if (r < 0) {
		kha_fleetlock_idmap_release(&m);
		return r;
	}
	*ret = m;
	return 0;
}

bool kha_fleetlock_check(const struct kha_fleetlock_opts *o, const char *method, const char *path,
			 const char *protocol_header, const char *body, size_t body_len,
			 const struct kha_httpd_tls_peer *peer,
			 struct kha_fleetlock_params *ret_params, struct kha_fleetlock_result *ret)
{
	struct kha_diag d = {};
	if (strcmp(path, "/v1/pre-reboot") != 0 && strcmp(path, "/v1/steady-state") != 0) {
		kha_fleetlock_result_set(ret, 404, "not_found",
					 "no such endpoint %s (FleetLock serves "
					 "/v1/pre-reboot and /v1/steady-state)",
					 path);
		return false;
	}
	if (strcmp(method, "POST") != 0) {
		kha_fleetlock_result_set(ret, 405, "method_not_allowed", "%s needs POST", path);
		return false;
	}
	if (!protocol_header) {
		kha_fleetlock_result_set(ret, 400, "missing_fleet_lock_protocol_header",
					 "the fleet-lock-protocol: true header is required");
		return false;
	}
	if (strcmp(protocol_header, "true") != 0) {
		kha_fleetlock_result_set(ret, 400, "bad_fleet_lock_protocol_header",
					 "the fleet-lock-protocol header must be 'true' (once)");
		return false;
	}
	if (kha_fleetlock_parse(body, body_len, ret_params, &d) < 0) {
		kha_fleetlock_result_set(ret, 400, "bad_request_body", "%s", d.msg);
		return false;
	}
	if (!group_allowed(o, ret_params->group)) {
		kha_fleetlock_result_set(ret, 403, "group_not_allowed",
					 "group '%s' is not served here (kha lock serve --group)",
					 ret_params->group);
		return false;
	}
	if (!kha_fleetlock_id_allowed(o, peer, ret_params->id)) {
		kha_fleetlock_result_set(
			ret, 403, "id_not_allowed",
			"the client certificate (%s) may not use id '%s' (its id must "
			"be one of its names, or listed for it in --client-ids)",
			peer->n ? peer->names[0] : "no usable name", ret_params->id);
		return false;
	}
	return true;
}

void kha_fleetlock_handle(struct kha_etcd *c, const struct kha_fleetlock_opts *o,
			  const char *method, const char *path, const char *protocol_header,
			  const char *body, size_t body_len, struct kha_fleetlock_result *ret)
{
	struct kha_fleetlock_params p;

	if (!kha_fleetlock_check(o, method, path, protocol_header, body, body_len, NULL, &p, ret))
		return;
	if (strcmp(path, "/v1/pre-reboot") == 0)
		kha_fleetlock_pre_reboot(c, o, &p, ret);
	else
		kha_fleetlock_steady_state(c, o, &p, ret);
}
