// SPDX-License-Identifier: MIT
/*
 * client-go's leaderelection rules on a coordination.k8s.io/v1 Lease (tryAcquireOrRenew and
 * release), as pure functions over the record read and the local clocks.
 */
#include <stdio.h>
#include <string.h>

#include "kha/election.h"
#include "kha/banned.h"

void kha_elect_lease_elector_init(struct kha_elect_lease_elector *e, const char *id,
				  int32_t duration_s)
{
	*e = (struct kha_elect_lease_elector){.duration_s = duration_s};
	snprintf(e->id, sizeof(e->id), "%s", id);
}

bool kha_elect_lease_elector_is_holder(const struct kha_elect_lease_elector *e)
{
	return e->have_observed && strcmp(e->observed.holder_identity, e->id) == 0;
}

/* The LeaderElectionRecord part of a Lease (what client-go compares). */
static bool same_record(const struct kha_kube_lease *a, const struct kha_kube_lease *b)
{
	return strcmp(a->holder_identity, b->holder_identity) == 0 &&
	       a->lease_duration_s == b->lease_duration_s &&
	       a->acquire_time_us == b->acquire_time_us && a->renew_time_us == b->renew_time_us &&
	       a->lease_transitions == b->lease_transitions;
}

static void observe(struct kha_elect_lease_elector *e, const struct kha_kube_lease *l,
		    uint64_t now_us)
{
	if (!e->have_observed || !same_record(&e->observed, l)) {
		e->observed = *l;
		e->observed_us = now_us;
		e->have_observed = true;
	} else {
		/* same record: keep the time, take the newer resource version */
		memcpy(e->observed.resource_version, l->resource_version,
		       sizeof(e->observed.resource_version));
	}
}

enum kha_elect_lease_action kha_elect_lease_decide(struct kha_elect_lease_elector *e,
						   const struct kha_kube_lease *current,
						   uint64_t now_us, int64_t wall_us,
						   struct kha_kube_lease *ret)
{
	struct kha_kube_lease rec = {0};
	int32_t dur;

	snprintf(rec.holder_identity, sizeof(rec.holder_identity), "%s", e->id);
	rec.lease_duration_s = e->duration_s;
	rec.acquire_time_us = wall_us;
	rec.renew_time_us = wall_us;
	if (!current) {
		*ret = rec;
		return KHA_ELECT_LEASE_CREATE;
	}
	observe(e, current, now_us);
	dur = current->lease_duration_s > 0 ? current->lease_duration_s : e->duration_s;
	if (current->holder_identity[0] && !kha_elect_lease_elector_is_holder(e) &&
	    e->observed_us + (uint64_t)dur * KHA_USEC_PER_SEC > now_us)
		return KHA_ELECT_LEASE_WAIT;
	memcpy(rec.namespace, current->namespace, sizeof(rec.namespace));
	memcpy(rec.name, current->name, sizeof(rec.name));
	memcpy(rec.resource_version, current->resource_version, sizeof(rec.resource_version));
	if (kha_elect_lease_elector_is_holder(e)) {
		rec.acquire_time_us = current->acquire_time_us;
		rec.lease_transitions = current->lease_transitions;
	} else {
		rec.lease_transitions = current->lease_transitions + 1;
	}
	*ret = rec;
	return KHA_ELECT_LEASE_UPDATE;
}

void kha_elect_lease_elector_written(struct kha_elect_lease_elector *e,
				     const struct kha_kube_lease *stored, uint64_t now_us)
{
	e->observed = *stored;
	e->observed_us = now_us;
	e->have_observed = true;
}

bool kha_elect_lease_release_record(const struct kha_elect_lease_elector *e, int64_t wall_us,
				    struct kha_kube_lease *ret)
{
	struct kha_kube_lease rec = {0};

	if (!kha_elect_lease_elector_is_holder(e))
		return false;
	memcpy(rec.namespace, e->observed.namespace, sizeof(rec.namespace));
	memcpy(rec.name, e->observed.name, sizeof(rec.name));
	memcpy(rec.resource_version, e->observed.resource_version, sizeof(rec.resource_version));
	rec.lease_duration_s = 1;
	rec.acquire_time_us = wall_us;
	rec.renew_time_us = wall_us;
	rec.lease_transitions = e->observed.lease_transitions;
	*ret = rec;
	return true;
}
