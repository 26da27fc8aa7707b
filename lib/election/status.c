// SPDX-License-Identifier: MIT
/* A lock's (or an etcd election's) queue as a table and as JSON: `kha lock status`, `kha elect
 * status`. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "kha/election.h"
#include "kha/kube.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

json_t *kha_lock_entry_json(const struct kha_lock_entry *e)
{
	char lease[32], since[KHA_KUBE_MICROTIME_SIZE];

	snprintf(lease, sizeof(lease), "%" PRIx64, (uint64_t)e->lease);
	kha_kube_microtime_format(since, sizeof(since), e->since_wall_us);
	return json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:o,s:o,s:o,s:I,s:b}", "position",
			 (json_int_t)e->position, "state", e->holder ? "holder" : "waiter", "id",
			 e->id, "key", e->key, "create_revision", (json_int_t)e->create_revision,
			 "fencing_token", (json_int_t)e->create_revision, "lease",
			 e->lease ? json_string(lease) : json_null(), "ttl_seconds",
			 e->ttl_s >= 0 ? json_integer(e->ttl_s) : json_null(), "since",
			 e->since_wall_us ? json_string(since) : json_null(), "slots",
			 (json_int_t)e->slots, "fleetlock", e->fleetlock);
}

json_t *kha_lock_status_json(const struct kha_lock_status *st)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < st->n && arr; i++) {
		json_t *j = kha_lock_entry_json(&st->entries[i]);

		if (!j || json_array_append_new(arr, j) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

void kha_lock_status_print(FILE *out, const struct kha_lock_status *st, int64_t now_wall_us)
{
	int w = 16;

	for (size_t i = 0; i < st->n; i++)
		w = KHA_MAX(w, (int)strlen(KHA_TERM(st->entries[i].id)));
	fprintf(out, "%-4s %-7s %-*s %-10s %-30s %-6s %s\n", "POS", "STATE", w, "ID", "TOKEN",
		"SINCE", "TTL", "KEY");
	for (size_t i = 0; i < st->n; i++) {
		const struct kha_lock_entry *e = &st->entries[i];
		char since[80] = "-", ttl[16] = "-", ago[32];

		if (e->since_wall_us) {
			char ts[KHA_KUBE_MICROTIME_SIZE];
			uint64_t age = now_wall_us > e->since_wall_us
					       ? (uint64_t)(now_wall_us - e->since_wall_us)
					       : 0;

			kha_kube_microtime_format(ts, sizeof(ts), e->since_wall_us);
			ts[19] = '\0'; /* to the second */
			kha_format_duration(ago, sizeof(ago),
					    age / KHA_USEC_PER_SEC * KHA_USEC_PER_SEC);
			snprintf(since, sizeof(since), "%sZ (%s ago)", ts, ago);
		}
		if (e->ttl_s >= 0)
			snprintf(ttl, sizeof(ttl), "%" PRId64 "s", e->ttl_s);
		else if (!e->lease)
			snprintf(ttl, sizeof(ttl), "none");
		fprintf(out, "%-4zu %-7s %-*s %-10" PRId64 " %-30s %-6s %s\n", e->position,
			e->holder ? "holder" : "waiter", w, KHA_TERM(e->id), e->create_revision,
			since, ttl, KHA_TERM(e->key));
	}
	if (!st->n)
		fprintf(out, "(no holder, no waiter)\n");
}
