// SPDX-License-Identifier: MIT
/* Reading elections and locks: the leader, its changes, the queue of a lock. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kha/election.h"
#include "kha/banned.h"

void kha_elect_leader_release(struct kha_elect_leader *l)
{
	free(l->id);
	free(l->key);
	*l = (struct kha_elect_leader){0};
}

static int lease_ttl(struct kha_etcd *c, int64_t lease, int64_t *ret)
{
	struct kha_etcd_lease_ttl t = {};
	int r;

	*ret = -1;
	if (!lease)
		return 0;
	r = kha_etcd_lease_time_to_live(c, lease, false, &t, NULL);
	if (r == 0)
		*ret = t.ttl;
	kha_etcd_lease_ttl_release(&t);
	return 0;
}

static int prefix_of(char *buf, size_t size, const char *name, struct kha_diag *d)
{
	if (!name || !name[0])
		return kha_diag_set(d, EINVAL, "the election name is empty");
	if ((size_t)snprintf(buf, size, "%s/", name) >= size)
		return kha_diag_set(d, ENAMETOOLONG, "the election name is too long");
	return 0;
}

/* The leader among rr's kvs (present false when there is none). */
static int leader_from(struct kha_etcd *c, const struct kha_etcd_range_result *rr,
		       struct kha_elect_leader *ret)
{
	struct kha_lock_sem_position pos;
	const struct kha_etcd_kv *kv;

	*ret = (struct kha_elect_leader){.ttl_s = -1};
	kha_ignore(kha_lock_sem_position(rr->kvs, rr->n_kvs, "", &pos));
	if (pos.first < 0)
		return 0;
	kv = &rr->kvs[pos.first];
	ret->present = true;
	ret->id = strndup(kv->value, kv->value_len);
	ret->key = strndup(kv->key, kv->key_len);
	ret->token = kv->create_revision;
	ret->lease = kv->lease;
	if (!ret->id || !ret->key) {
		kha_elect_leader_release(ret);
		return -ENOMEM;
	}
	return c ? lease_ttl(c, kv->lease, &ret->ttl_s) : 0;
}

static int read_prefix(struct kha_etcd *c, const char *prefix, struct kha_etcd_range_result *ret,
		       struct kha_diag *d)
{
	struct kha_etcd_range_req req = {.r = {.key = prefix, .prefix = true}};

	return kha_etcd_range(c, &req, ret, d);
}

int kha_elect_leader_get(struct kha_etcd *c, const char *name, struct kha_elect_leader *ret,
			 struct kha_diag *d)
{
	struct kha_etcd_range_result rr = {};
	char prefix[1024];
	int r;

	r = prefix_of(prefix, sizeof(prefix), name, d);
	if (r < 0)
		return r;
	r = read_prefix(c, prefix, &rr, d);
	if (r == 0)
		r = leader_from(c, &rr, ret);
	kha_etcd_range_result_release(&rr);
	return r;
}

int kha_elect_kube_leader_get(struct kha_kube_client *c, const char *namespace, const char *name,
			      struct kha_elect_leader *ret, struct kha_diag *d)
{
	struct kha_kube_lease l;
	int r;

	*ret = (struct kha_elect_leader){.ttl_s = -1};
	r = kha_kube_lease_get(c, namespace, name, &l, d);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (!l.holder_identity[0])
		return 0;
	ret->present = true;
	ret->id = strdup(l.holder_identity);
	if (asprintf(&ret->key, "%s/%s", namespace, name) < 0)
		ret->key = NULL;
	ret->token = l.lease_transitions;
	ret->ttl_s = l.lease_duration_s;
	ret->renew_wall_us = l.renew_time_us;
	if (!ret->id || !ret->key) {
		kha_elect_leader_release(ret);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	return 0;
}

static bool same_leader(const struct kha_elect_leader *a, const struct kha_elect_leader *b)
{
	if (a->present != b->present)
		return false;
	if (!a->present)
		return true;
	return strcmp(a->key, b->key) == 0 && strcmp(a->id, b->id) == 0 && a->token == b->token;
}

static int on_any(void *userdata, const struct kha_etcd_watch_response *resp)
{
	int64_t *rev = userdata;

	if (resp->n_events) {
		*rev = resp->header.revision;
		return 1;
	}
	return 0;
}

int kha_elect_observe(struct kha_etcd *c, const char *name, const volatile sig_atomic_t *cancel,
		      kha_elect_observe_fn fn, void *userdata, struct kha_diag *d)
{
	struct kha_elect_leader last = {.present = false};
	uint64_t backoff = 200 * KHA_USEC_PER_MSEC;
	bool first = true, reported = false;
	char prefix[1024];
	int r;

	r = prefix_of(prefix, sizeof(prefix), name, d);
	if (r < 0)
		return r;
	while (!*cancel) {
		struct kha_etcd_range_result rr = {};
		struct kha_elect_leader cur;
		int64_t rev, seen = 0;

		kha_diag_clear(d);
		r = read_prefix(c, prefix, &rr, d);
		if (r < 0) {
			kha_etcd_range_result_release(&rr);
			if (first)
				break;
			kha_ignore(kha_sleep_us(backoff, cancel));
			backoff = KHA_MIN(backoff * 2, 5 * KHA_USEC_PER_SEC);
			continue;
		}
		first = false;
		backoff = 200 * KHA_USEC_PER_MSEC;
		rev = rr.header.revision;
		r = leader_from(c, &rr, &cur);
		kha_etcd_range_result_release(&rr);
		if (r < 0) {
			r = kha_diag_set(d, -r, "out of memory");
			break;
		}
		if (!reported || !same_leader(&cur, &last)) {
			reported = true;
			kha_elect_leader_release(&last);
			last = cur;
			r = fn(userdata, &last);
			if (r != 0)
				break;
		} else {
			kha_elect_leader_release(&cur);
		}
		{
			struct kha_etcd_watch_req req = {
				.r = {.key = prefix, .prefix = true},
				.start_revision = rev + 1,
				.timeout_us = 30 * KHA_USEC_PER_SEC,
				.cancel = cancel,
			};

			r = kha_etcd_watch(c, &req, on_any, &seen, NULL);
			(void)r;
		}
		r = 0;
	}
	kha_elect_leader_release(&last);
	return r;
}

/* ---- lock status ------------------------------------------------------------------------------ */

void kha_lock_status_release(struct kha_lock_status *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->entries[i].key);
		free(s->entries[i].id);
	}
	free(s->entries);
	*s = (struct kha_lock_status){0};
}

int kha_lock_status_get(struct kha_etcd *c, const char *name, size_t slots_override,
			struct kha_lock_status *ret, struct kha_diag *d)
{
	struct kha_etcd_range_result rr = {};
	struct kha_lock_status s = {0};
	kha_autofree size_t *order = NULL;
	char prefix[1024];
	int r;

	r = prefix_of(prefix, sizeof(prefix), name, d);
	if (r < 0)
		return r;
	r = read_prefix(c, prefix, &rr, d);
	if (r < 0)
		goto out;
	s.revision = rr.header.revision;
	order = calloc(rr.n_kvs ? rr.n_kvs : 1, sizeof(*order));
	s.entries = calloc(rr.n_kvs ? rr.n_kvs : 1, sizeof(*s.entries));
	if (!order || !s.entries) {
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto out;
	}
	kha_lock_sem_order(rr.kvs, rr.n_kvs, order);
	for (size_t i = 0; i < rr.n_kvs; i++) {
		const struct kha_etcd_kv *kv = &rr.kvs[order[i]];
		struct kha_lock_entry *en = &s.entries[s.n];
		size_t slots;

		en->key = strndup(kv->key, kv->key_len);
		if (!en->key || kha_lock_value_decode(kv->value, kv->value_len, en) < 0) {
			free(en->key);
			en->key = NULL;
			r = kha_diag_set(d, ENOMEM, "out of memory");
			goto out;
		}
		s.n++;
		en->create_revision = kv->create_revision;
		en->lease = kv->lease;
		en->position = i + 1;
		slots = slots_override ? slots_override : (en->slots ? en->slots : 1);
		en->holder = i < slots;
		if (en->holder)
			s.holders++;
		(void)lease_ttl(c, kv->lease, &en->ttl_s);
	}
	*ret = s;
	s = (struct kha_lock_status){0};
	r = 0;
out:
	kha_lock_status_release(&s);
	kha_etcd_range_result_release(&rr);
	return r;
}
