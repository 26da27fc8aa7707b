// SPDX-License-Identifier: MIT
/*
 * Ordering of contenders (the keys under one prefix, by create revision) and the value a lock
 * contender stores.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "kha/election.h"
#include "kha/json.h"
#include "kha/kube.h"
#include "kha/banned.h"

int kha_elect_key(char *buf, size_t size, const char *name, int64_t lease)
{
	/* clientv3/concurrency: fmt.Sprintf("%s%x", pfx+"/", leaseID) */
	int n = snprintf(buf, size, "%s/%" PRIx64, name, (uint64_t)lease);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

/* Whether a sorts before b: lower create revision, then key bytes. */
static bool before(const struct kha_etcd_kv *a, const struct kha_etcd_kv *b)
{
	size_t n;
	int c;

	if (a->create_revision != b->create_revision)
		return a->create_revision < b->create_revision;
	n = KHA_MIN(a->key_len, b->key_len);
	c = memcmp(a->key, b->key, n);
	return c < 0 || (c == 0 && a->key_len < b->key_len);
}

void kha_lock_sem_order(const struct kha_etcd_kv *kvs, size_t n, size_t *order)
{
	/* insertion sort: a handful of contenders */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;

		order[i] = i;
		while (j > 0 && before(&kvs[i], &kvs[order[j - 1]])) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
}

int kha_lock_sem_position(const struct kha_etcd_kv *kvs, size_t n, const char *my_key,
			  struct kha_lock_sem_position *ret)
{
	struct kha_lock_sem_position p = {.n = n, .mine = -1, .pred = -1, .first = -1};
	size_t klen = strlen(my_key);

	for (size_t i = 0; i < n; i++) {
		if (p.first < 0 || before(&kvs[i], &kvs[p.first]))
			p.first = (long)i;
		if (kvs[i].key_len == klen && memcmp(kvs[i].key, my_key, klen) == 0)
			p.mine = (long)i;
	}
	if (p.mine < 0) {
		*ret = p;
		return -ENOENT;
	}
	p.my_rev = kvs[p.mine].create_revision;
	for (size_t i = 0; i < n; i++) {
		if ((long)i == p.mine || !before(&kvs[i], &kvs[p.mine]))
			continue;
		p.rank++;
		if (p.pred < 0 || before(&kvs[p.pred], &kvs[i]))
			p.pred = (long)i;
	}
	*ret = p;
	return 0;
}

char *kha_lock_value(const char *id, size_t slots, int64_t since_wall_us, bool fleetlock)
{
	char since[KHA_KUBE_MICROTIME_SIZE];
	json_t *o = json_object();
	char *s = NULL;

	if (!o)
		return NULL;
	kha_kube_microtime_format(since, sizeof(since), since_wall_us);
	if (json_object_set_new(o, "id", json_string(id)) == 0 &&
	    json_object_set_new(o, "slots", json_integer((json_int_t)slots)) == 0 &&
	    json_object_set_new(o, "since", json_string(since)) == 0 &&
	    (!fleetlock || json_object_set_new(o, "fleetlock", json_true()) == 0))
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int kha_lock_value_decode(const char *value, size_t len, struct kha_lock_entry *ret)
{
	json_t *o = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
	const char *id = NULL;

	ret->since_wall_us = 0;
	ret->slots = 0;
	ret->fleetlock = false;
	if (o && json_is_object(o) && json_is_string(json_object_get(o, "id"))) {
		json_t *slots = json_object_get(o, "slots");
		const char *since = json_string_value(json_object_get(o, "since"));
		int64_t us;

		id = json_string_value(json_object_get(o, "id"));
		if (json_is_integer(slots) && json_integer_value(slots) > 0)
			ret->slots = (size_t)json_integer_value(slots);
		if (since && kha_kube_time_parse(since, &us) == 0)
			ret->since_wall_us = us;
		ret->fleetlock = json_is_true(json_object_get(o, "fleetlock"));
		ret->id = strdup(id);
	} else {
		ret->id = strndup(value, len);
	}
	json_decref(o);
	return ret->id ? 0 : -ENOMEM;
}
