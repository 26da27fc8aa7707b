// SPDX-License-Identifier: MIT
/*
 * The Kubernetes Lease backend of the run engine: one thread running client-go's
 * acquire/renew loop (kha_elect_lease_decide) every retry period, and releasing the Lease as
 * client-go's ReleaseOnCancel does when kha stops. Optimistic concurrency (resourceVersion,
 * 409 Conflict) makes every write conditional on the record we decided from.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "election-internal.h"
#include "kha/log.h"
#include "kha/banned.h"

#define MIN_CALL_US (100 * KHA_USEC_PER_MSEC)
#define MAX_CALL_US (10 * KHA_USEC_PER_SEC)

/* client-go's wait.JitterUntil(..., RetryPeriod, JitterFactor 1.2, ...) while acquiring */
static uint64_t jittered(uint64_t period)
{
	return period + (uint64_t)((double)period * 1.2 * ((double)random() / RAND_MAX));
}

static void release(struct engine *e, struct kha_kube_client *c, struct kha_elect_lease_elector *el)
{
	struct kha_kube_lease rec, cur;
	struct kha_diag d = {};
	int r;

	kha_kube_client_set_stop_fd(c, -1);
	kha_kube_client_set_timeouts(c, 0, 2 * KHA_USEC_PER_SEC);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!kha_elect_lease_release_record(el, (int64_t)kha_wall_us(), &rec))
			return;
		kha_diag_clear(&d);
		r = kha_kube_lease_update(c, &rec, NULL, &d);
		if (r == 0) {
			kha_info("released", "lease=%s/%s id=%s", KHA_LOGQ(e->o->lease_namespace),
				 KHA_LOGQ(e->o->lease_name), KHA_LOGQ(e->o->id));
			return;
		}
		if (r != -EAGAIN)
			break;
		/* changed since we read it: still ours? */
		if (kha_kube_lease_get(c, e->o->lease_namespace, e->o->lease_name, &cur, &d) < 0)
			break;
		(void)kha_elect_lease_decide(el, &cur, kha_now_us(), (int64_t)kha_wall_us(), &rec);
	}
	kha_warn("cannot release the lease", "error=%s", KHA_LOGQ(d.msg));
}

/* The backend cannot start (bad credentials, a refusal): the main thread reports d and quits. */
static void set_fatal(struct engine *e, int r, const struct kha_diag *d)
{
	pthread_mutex_lock(&e->mu);
	e->fatal = r;
	e->fatal_diag = *d;
	kha_elect__changed_locked(e);
	pthread_mutex_unlock(&e->mu);
}

/*
 * One acquire-or-renew round of client-go's rules: read the Lease, decide, write it when the
 * rules say so. Returns the error of the last request (0 when none failed), and in *ret_ok
 * whether we wrote the record (we hold the Lease until stored's renewTime + its duration).
 */
static int lease_round(struct engine *e, struct kha_kube_client *c,
		       struct kha_elect_lease_elector *el, struct kha_kube_lease *stored,
		       bool *ret_ok, struct kha_diag *d)
{
	const struct kha_elect_opts *o = e->o;
	struct kha_kube_lease cur, rec;
	enum kha_elect_lease_action act;
	int r;

	*ret_ok = false;
	r = kha_kube_lease_get(c, o->lease_namespace, o->lease_name, &cur, d);
	if (r < 0 && r != -ENOENT)
		return r;
	act = kha_elect_lease_decide(el, r == 0 ? &cur : NULL, kha_now_us(), (int64_t)kha_wall_us(),
				     &rec);
	if (act == KHA_ELECT_LEASE_CREATE) {
		snprintf(rec.namespace, sizeof(rec.namespace), "%s", o->lease_namespace);
		snprintf(rec.name, sizeof(rec.name), "%s", o->lease_name);
		kha_diag_clear(d);
		r = kha_kube_lease_create(c, &rec, stored, d);
	} else if (act == KHA_ELECT_LEASE_UPDATE) {
		kha_diag_clear(d);
		r = kha_kube_lease_update(c, &rec, stored, d);
	} else {
		return 0;
	}
	*ret_ok = r == 0;
	if (*ret_ok)
		kha_elect_lease_elector_written(el, stored, kha_now_us());
	return r;
}

/* The timeout of this round's requests: while leading, none may outlive the renew deadline. */
static uint64_t call_timeout_locked(const struct engine *e, bool leading, uint64_t start)
{
	uint64_t dl = e->last_renew_us + e->renew_deadline_us, t;

	if (!leading || !e->last_renew_us)
		return MAX_CALL_US;
	t = dl > start ? dl - start : MIN_CALL_US;
	return KHA_MAX(KHA_MIN(t, MAX_CALL_US), MIN_CALL_US);
}

static void *kube_thread(void *arg)
{
	struct engine *e = arg;
	const struct kha_elect_opts *o = e->o;
	kha_auto(kha_kube_client_freep) struct kha_kube_client *c = NULL;
	struct kha_elect_lease_elector el;
	struct kha_diag d = {};
	bool first = true, leading = false;
	uint64_t gen = 0, campaign_start = kha_now_us(), failures = 0;

	if (kha_kube_client_new(o->kube, &c, &d) < 0) {
		set_fatal(e, -EINVAL, &d);
		return NULL;
	}
	kha_kube_client_set_stop_fd(c, e->stop_fd);
	kha_elect_lease_elector_init(
		&el, o->id, (int32_t)((e->ttl_us + KHA_USEC_PER_SEC - 1) / KHA_USEC_PER_SEC));
	srandom((unsigned)(kha_now_us() ^ (uint64_t)getpid()));

	pthread_mutex_lock(&e->mu);
	gen = ++e->gen;
	e->lost = false;
	pthread_mutex_unlock(&e->mu);

	for (;;) {
		struct kha_kube_lease stored;
		uint64_t start = kha_now_us(), timeout, next;
		bool ok;
		int r;

		pthread_mutex_lock(&e->mu);
		if (e->stop) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		if (e->lost || e->gen != gen) {
			/* fenced by the main thread: a new term starts (it may be ours again if
			 * the renewal now succeeds before anyone else takes the Lease) */
			gen = ++e->gen;
			e->lost = false;
			e->leading = false;
			e->last_renew_us = 0;
			leading = false;
			campaign_start = start;
			kha_elect__changed_locked(e);
		}
		timeout = call_timeout_locked(e, leading, start);
		pthread_mutex_unlock(&e->mu);

		kha_kube_client_set_timeouts(c, 0, timeout);
		kha_diag_clear(&d);
		r = lease_round(e, c, &el, &stored, &ok, &d);
		if (r == -ECANCELED)
			continue; /* stopping */
		/* at start, a refusal or a credential problem is final; a slow or overloaded
		 * API server (timeouts, 429/5xx) gets a few more tries */
		if (first && r < 0 && r != -EAGAIN && r != -EEXIST &&
		    ((r != -ETIMEDOUT && r != -EBUSY) ||
		     kha_now_us() - campaign_start >= 2 * MAX_CALL_US)) {
			set_fatal(e, r, &d);
			return NULL;
		}
		first = false;

		pthread_mutex_lock(&e->mu);
		e->up = true;
		if (el.have_observed)
			snprintf(e->leader, sizeof(e->leader), "%s", el.observed.holder_identity);
		if (ok && gen == e->gen && !e->lost) {
			if (!leading) {
				if (o->stats)
					atomic_store_explicit(&o->stats->acquire_us,
							      kha_now_us() - campaign_start,
							      memory_order_relaxed);
				e->token = stored.lease_transitions;
			}
			leading = true;
			e->leading = true;
			e->waiting_for[0] = '\0';
			failures = 0;
			kha_elect__renewed_locked(e, gen, start);
		} else if (!ok) {
			if (r < 0) {
				failures++;
				if (o->stats)
					atomic_fetch_add_explicit(&o->stats->renew_failures, 1,
								  memory_order_relaxed);
				if (failures == 1 || failures % 10 == 0)
					kha_warn("lease renewal failed",
						 "lease=%s/%s failures=%" PRIu64 " error=%s",
						 KHA_LOGQ(o->lease_namespace),
						 KHA_LOGQ(o->lease_name), failures,
						 KHA_LOGQ(d.msg));
			}
			if (leading && !kha_elect_lease_elector_is_holder(&el)) {
				/* someone else holds it now: we lost, whatever the deadline */
				kha_elect__lose_locked(e, gen, "lease taken");
				leading = false;
			} else if (!leading) {
				snprintf(e->waiting_for, sizeof(e->waiting_for), "%s",
					 r < 0 ? "lease unreachable"
					       : "lease held by another holder");
				kha_elect__changed_locked(e);
			}
		}
		next = start + (leading ? e->interval_us : jittered(e->interval_us));
		while (!e->stop && kha_now_us() < next)
			kha_elect__wait_locked(e, next);
		pthread_mutex_unlock(&e->mu);
	}
	release(e, c, &el);
	return NULL;
}

static int kube_start(struct engine *e, struct kha_diag *d)
{
	if (!e->o->lease_namespace || !e->o->lease_name)
		return kha_diag_set(d, EINVAL, "the Lease needs a namespace and a name");
	if (pthread_create(&e->threads[0], NULL, kube_thread, e) != 0)
		return kha_diag_set(d, EAGAIN, "cannot create a thread");
	e->n_threads = 1;
	return 0;
}

/* the Lease is released by its thread as it stops (as client-go's ReleaseOnCancel does) */
const struct kha_elect__backend kha_elect__kube_backend = {.start = kube_start};
