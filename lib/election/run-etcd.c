// SPDX-License-Identifier: MIT
/*
 * The etcd backend of the run engine: a campaign thread (lease grant, the campaign txn, waiting
 * for the keys before ours, watching our own key) and a keep-alive thread (one keep-alive every
 * interval, from the start of the previous one). Each thread owns its etcd client.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "election-internal.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define BACKOFF_MIN_US	  (200 * KHA_USEC_PER_MSEC)
#define BACKOFF_MAX_US	  (5 * KHA_USEC_PER_SEC)
#define MIN_CALL_US	  (100 * KHA_USEC_PER_MSEC)
#define RESIGN_TIMEOUT_US (2 * KHA_USEC_PER_SEC)

static uint64_t cmd_timeout(const struct engine *e)
{
	uint64_t t = e->o->etcd->command_timeout_us;

	return t ? t : KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US;
}

/* The watch deadline: a silent stream (a partition) is re-established at least this often. */
static uint64_t watch_timeout(const struct engine *e)
{
	return KHA_MAX(2 * e->ttl_us, 5 * KHA_USEC_PER_SEC);
}

static int64_t ttl_seconds(const struct engine *e)
{
	return (int64_t)((e->ttl_us + KHA_USEC_PER_SEC - 1) / KHA_USEC_PER_SEC);
}

/* ---- keep-alive thread ----------------------------------------------------------------------- */

static void *keepalive_thread(void *arg)
{
	struct engine *e = arg;
	struct kha_etcd *c = e->clients[1];
	struct kha_diag d = {};
	uint64_t failures = 0;

	pthread_mutex_lock(&e->mu);
	for (;;) {
		uint64_t gen, start, retry_at, timeout;
		int64_t lease, ttl = 0;
		int r;

		if (e->stop)
			break;
		if (!e->gen || e->lost || !e->lease || kha_now_us() < e->ka_next_us) {
			kha_elect__wait_locked(e, e->gen && !e->lost && e->lease ? e->ka_next_us
										 : UINT64_MAX);
			continue;
		}
		gen = e->gen;
		lease = e->lease;
		pthread_mutex_unlock(&e->mu);

		start = kha_now_us();
		/* a hung request must leave room for the next attempt before the deadline */
		timeout = KHA_MAX(KHA_MIN(cmd_timeout(e), e->interval_us), MIN_CALL_US);
		kha_etcd_set_command_timeout(c, timeout);
		kha_diag_clear(&d);
		r = kha_etcd_lease_keepalive_once(c, lease, &ttl, &d);

		pthread_mutex_lock(&e->mu);
		if (gen != e->gen)
			continue;
		if (r == 0 && ttl > 0) {
			if (failures)
				kha_info("keep-alive recovered",
					 "lease=%" PRIx64 " failures=%" PRIu64, (uint64_t)lease,
					 failures);
			failures = 0;
			e->ka_next_us = start + e->interval_us;
			kha_elect__renewed_locked(e, gen, start);
		} else if (r == 0) {
			kha_warn("lease expired", "lease=%" PRIx64, (uint64_t)lease);
			kha_elect__lose_locked(e, gen, "lease expired");
		} else {
			failures++;
			if (e->o->stats)
				atomic_fetch_add_explicit(&e->o->stats->renew_failures, 1,
							  memory_order_relaxed);
			if (failures == 1 || failures % 10 == 0)
				kha_warn("keep-alive failed",
					 "lease=%" PRIx64 " failures=%" PRIu64 " error=%s",
					 (uint64_t)lease, failures, KHA_LOGQ(d.msg));
			retry_at =
				kha_now_us() + KHA_MIN(e->interval_us / 2, 250 * KHA_USEC_PER_MSEC);
			e->ka_next_us = retry_at;
		}
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- campaign thread ------------------------------------------------------------------------ */

struct watch_ctx {
	const char *key; /* the one key whose deletion we wait for; NULL = any key */
	bool deleted;
};

static int on_watch(void *userdata, const struct kha_etcd_watch_response *resp)
{
	struct watch_ctx *w = userdata;

	for (size_t i = 0; i < resp->n_events; i++) {
		const struct kha_etcd_event *ev = &resp->events[i];

		if (ev->type != KHA_ETCD_EVENT_DELETE)
			continue;
		if (!w->key || strcmp(ev->kv.key, w->key) == 0) {
			w->deleted = true;
			return 1;
		}
	}
	return 0;
}

/*
 * Waits for a deletion: of key (NULL: of any key under prefix) after revision rev. Returns 1
 * when seen, 0 on the deadline or a cancel, negative on errors.
 */
static int wait_delete(struct engine *e, struct kha_etcd *c, const char *prefix, const char *key,
		       int64_t rev, struct kha_diag *d)
{
	struct watch_ctx w = {.key = key};
	struct kha_etcd_watch_req req = {
		.r = {.key = key ? key : prefix, .prefix = key == NULL},
		.start_revision = rev + 1,
		.no_put = true,
		.timeout_us = watch_timeout(e),
		.cancel = &e->cancel,
	};
	int r = kha_etcd_watch(e->clients[2], &req, on_watch, &w, d);

	(void)c;
	if (w.deleted) {
		kha_debug("watched key deleted", "key=%s", KHA_LOGQ(key ? key : prefix));
		return 1;
	}
	if (r == -ETIMEDOUT || r == -ECANCELED || r == -ERANGE)
		return 0;
	return r < 0 ? r : 0;
}

static void set_waiting(struct engine *e, uint64_t gen, const char *leader, const char *why)
{
	pthread_mutex_lock(&e->mu);
	if (gen == e->gen) {
		bool changed = strcmp(e->waiting_for, why) != 0 || strcmp(e->leader, leader) != 0 ||
			       e->leading;

		snprintf(e->leader, sizeof(e->leader), "%s", leader);
		snprintf(e->waiting_for, sizeof(e->waiting_for), "%s", why);
		e->leading = false;
		if (changed)
			kha_elect__changed_locked(e);
	}
	pthread_mutex_unlock(&e->mu);
}

/*
 * Creates our key on lease unless it exists (a retried campaign on the same lease); its create
 * revision, our place in the queue and our fencing token, in *ret_rev. 0 or a negative errno.
 */
static int create_key(struct kha_etcd *c, const struct kha_elect_opts *o, const char *key,
		      int64_t lease, int64_t *ret_rev)
{
	const char *value = o->value ? o->value : o->id;
	struct kha_etcd_compare cmp = {
		.target = KHA_ETCD_CMP_CREATE_REVISION,
		.op = KHA_ETCD_CMP_EQUAL,
		.r = {.key = key},
		.number = 0,
	};
	struct kha_etcd_op put = {.type = KHA_ETCD_OP_PUT,
				  .put = {.key = key, .value = value, .lease = lease}};
	struct kha_etcd_op get = {.type = KHA_ETCD_OP_RANGE, .range = {.r = {.key = key}}};
	struct kha_etcd_txn_req req = {
		.compare = &cmp,
		.n_compare = 1,
		.success = &put,
		.n_success = 1,
		.failure = &get,
		.n_failure = 1,
	};
	struct kha_etcd_txn_result res = {};
	struct kha_diag d = {};
	int r;

	kha_etcd_set_command_timeout(c, 0);
	r = kha_etcd_txn(c, &req, &res, &d);
	if (r < 0)
		kha_warn("campaign failed", "%s=%s error=%s", o->what, KHA_LOGQ(o->name),
			 KHA_LOGQ(d.msg));
	else if (res.succeeded)
		*ret_rev = res.header.revision;
	else if (res.n_responses == 1 && res.responses[0].range.n_kvs == 1)
		*ret_rev = res.responses[0].range.kvs[0].create_revision;
	else
		r = -EBADMSG;
	kha_etcd_txn_result_release(&res);
	return r < 0 ? r : 0;
}

/* The id of the first holder (kvs[first]) into buf; "" when unknown. */
static void holder_id(const struct kha_etcd_range_result *rr, long first, char *buf, size_t size)
{
	/* a lock's value is JSON with the id; an election's is the id itself */
	struct kha_lock_entry le = {0};
	const struct kha_etcd_kv *fkv;

	buf[0] = '\0';
	if (first < 0)
		return;
	fkv = &rr->kvs[first];
	if (kha_lock_value_decode(fkv->value, fkv->value_len, &le) == 0)
		snprintf(buf, size, "%s", le.id);
	free(le.id);
}

/* We hold a slot in session gen: tell the main thread (once per session). */
static void became_holder(struct engine *e, uint64_t gen, int64_t my_rev, uint64_t started_us,
			  bool *acquired_logged)
{
	const struct kha_elect_opts *o = e->o;

	pthread_mutex_lock(&e->mu);
	if (gen == e->gen && !e->lost && !e->leading) {
		e->leading = true;
		e->token = my_rev;
		snprintf(e->leader, sizeof(e->leader), "%s", o->id);
		e->waiting_for[0] = '\0';
		if (!*acquired_logged && o->stats)
			atomic_store_explicit(&o->stats->acquire_us, kha_now_us() - started_us,
					      memory_order_relaxed);
		*acquired_logged = true;
		kha_elect__changed_locked(e);
	}
	pthread_mutex_unlock(&e->mu);
}

/* One campaign on lease: until the session is over. Returns 0 or a negative errno. */
static int campaign(struct engine *e, struct kha_etcd *c, uint64_t gen, int64_t lease,
		    uint64_t started_us)
{
	const struct kha_elect_opts *o = e->o;
	char key[1024], prefix[1024];
	struct kha_diag d = {};
	bool gates_open = o->gate == NULL, acquired_logged = false;
	char gate_reason[400] = "";
	int64_t my_rev;
	int r;

	if (kha_elect_key(key, sizeof(key), o->name, lease) < 0 ||
	    (size_t)snprintf(prefix, sizeof(prefix), "%s/", o->name) >= sizeof(prefix))
		return -ENAMETOOLONG;
	r = create_key(c, o, key, lease, &my_rev);
	if (r < 0)
		return r;
	pthread_mutex_lock(&e->mu);
	if (gen == e->gen)
		snprintf(e->key, sizeof(e->key), "%s", key);
	pthread_mutex_unlock(&e->mu);
	kha_debug("campaigning", "key=%s create_revision=%" PRId64, KHA_LOGQ(key), my_rev);

	for (;;) {
		struct kha_etcd_range_req rq = {.r = {.key = prefix, .prefix = true}};
		struct kha_etcd_range_result rr = {};
		struct kha_lock_sem_position pos;
		char leader[256], why[512];
		int64_t rev;

		pthread_mutex_lock(&e->mu);
		if (kha_elect__session_over_locked(e, gen)) {
			pthread_mutex_unlock(&e->mu);
			return 0;
		}
		pthread_mutex_unlock(&e->mu);

		kha_diag_clear(&d);
		kha_etcd_set_command_timeout(c, 0);
		r = kha_etcd_range(c, &rq, &rr, &d);
		if (r < 0) {
			kha_warn("cannot read the contenders", "%s=%s error=%s", o->what,
				 KHA_LOGQ(o->name), KHA_LOGQ(d.msg));
			kha_etcd_range_result_release(&rr);
			kha_elect__sleep(e, gen, kha_now_us() + BACKOFF_MIN_US * 2);
			continue;
		}
		rev = rr.header.revision;
		r = kha_lock_sem_position(rr.kvs, rr.n_kvs, key, &pos);
		holder_id(&rr, pos.first, leader, sizeof(leader));
		if (r < 0) {
			/* our key is gone: the lease expired, or someone deleted it */
			kha_etcd_range_result_release(&rr);
			kha_warn("our key disappeared", "%s=%s key=%s", o->what, KHA_LOGQ(o->name),
				 KHA_LOGQ(key));
			pthread_mutex_lock(&e->mu);
			kha_elect__lose_locked(e, gen, "key deleted");
			pthread_mutex_unlock(&e->mu);
			return 0;
		}
		if (pos.rank < o->slots && !gates_open) {
			char reason[400] = "";
			int g = o->gate(o->gate_userdata, reason, sizeof(reason));

			if (g == 0) {
				gates_open = true;
			} else {
				kha_etcd_range_result_release(&rr);
				if (strcmp(reason, gate_reason) != 0)
					snprintf(gate_reason, sizeof(gate_reason), "%s", reason);
				snprintf(why, sizeof(why), "slot held, gate closed: %s", reason);
				set_waiting(e, gen, leader, why);
				kha_elect__sleep(e, gen,
						 kha_now_us() + (o->gate_interval_us
									 ? o->gate_interval_us
									 : 5 * KHA_USEC_PER_SEC));
				continue;
			}
		}
		if (pos.rank < o->slots) {
			kha_etcd_range_result_release(&rr);
			became_holder(e, gen, my_rev, started_us, &acquired_logged);
			/* holders keep their place until their key goes: watch it */
			kha_diag_clear(&d);
			r = wait_delete(e, c, prefix, key, rev, &d);
			if (r < 0)
				kha_elect__sleep(e, gen, kha_now_us() + BACKOFF_MIN_US);
			continue;
		}
		if (o->slots == 1)
			snprintf(why, sizeof(why), "%zu contender(s) before us", pos.rank);
		else
			snprintf(why, sizeof(why), "position %zu, %zu slot(s)", pos.rank + 1,
				 o->slots);
		set_waiting(e, gen, leader, why);
		{
			/* one slot: the key just before ours, as etcd's concurrency package waits;
			 * N slots: any deletion may move us up */
			char *pred = o->slots == 1 && pos.pred >= 0 ? strdup(rr.kvs[pos.pred].key)
								    : NULL;

			kha_etcd_range_result_release(&rr);
			kha_diag_clear(&d);
			r = wait_delete(e, c, prefix, pred, rev, &d);
			free(pred);
		}
		if (r < 0) {
			kha_debug("watch failed", "error=%s", KHA_LOGQ(d.msg));
			kha_elect__sleep(e, gen, kha_now_us() + BACKOFF_MIN_US);
		}
	}
}

static void revoke_lease(struct kha_etcd *c, int64_t lease)
{
	struct kha_diag d = {};

	kha_etcd_set_command_timeout(c, RESIGN_TIMEOUT_US);
	if (kha_etcd_lease_revoke(c, lease, &d) < 0)
		kha_debug("revoke failed", "lease=%" PRIx64 " error=%s", (uint64_t)lease,
			  KHA_LOGQ(d.msg));
}

static void *campaign_thread(void *arg)
{
	struct engine *e = arg;
	struct kha_etcd *c = e->clients[0];
	uint64_t backoff = BACKOFF_MIN_US, started_us = kha_now_us();
	uint64_t startup_budget = KHA_MAX(2 * cmd_timeout(e), 10 * KHA_USEC_PER_SEC);
	struct kha_diag d = {};
	bool first = true;

	for (;;) {
		uint64_t start = kha_now_us(), gen;
		int64_t lease = 0, ttl = 0;
		int r;

		pthread_mutex_lock(&e->mu);
		if (e->stop) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		pthread_mutex_unlock(&e->mu);

		kha_diag_clear(&d);
		kha_etcd_set_command_timeout(c, 0);
		r = kha_etcd_lease_grant(c, ttl_seconds(e), 0, &lease, &ttl, &d);
		if (r < 0) {
			pthread_mutex_lock(&e->mu);
			/* at start, a refusal or a TLS problem is final, but an etcd that is slow
			 * or electing a leader (timeouts, Unavailable) gets a few more tries */
			if (first && ((r != -ETIMEDOUT && r != -EAGAIN) ||
				      kha_now_us() - started_us >= startup_budget)) {
				e->fatal = r;
				e->fatal_diag = d;
				kha_elect__changed_locked(e);
				pthread_mutex_unlock(&e->mu);
				break;
			}
			pthread_mutex_unlock(&e->mu);
			kha_warn("cannot grant a lease", "error=%s", KHA_LOGQ(d.msg));
			pthread_mutex_lock(&e->mu);
			kha_elect__wait_locked(e, kha_now_us() + backoff);
			pthread_mutex_unlock(&e->mu);
			backoff = KHA_MIN(backoff * 2, BACKOFF_MAX_US);
			continue;
		}
		backoff = BACKOFF_MIN_US;
		if (ttl > 0 && (uint64_t)ttl * KHA_USEC_PER_SEC < e->ttl_us)
			kha_warn("etcd granted a shorter TTL than asked", "ttl=%" PRId64 "s", ttl);
		pthread_mutex_lock(&e->mu);
		if (e->stop) {
			pthread_mutex_unlock(&e->mu);
			revoke_lease(c, lease);
			break;
		}
		gen = ++e->gen;
		e->lease = lease;
		e->key[0] = '\0';
		e->leading = false;
		e->lost = false;
		e->cancel = 0;
		e->token = 0;
		/* the grant is the first renewal: the lease runs from its request's start */
		e->last_renew_us = start;
		e->ka_next_us = start + e->interval_us;
		e->up = true;
		snprintf(e->waiting_for, sizeof(e->waiting_for), "campaigning");
		kha_elect__changed_locked(e);
		pthread_mutex_unlock(&e->mu);
		first = false;
		kha_debug("lease granted", "lease=%" PRIx64 " ttl=%" PRId64, (uint64_t)lease, ttl);

		r = campaign(e, c, gen, lease, start);

		pthread_mutex_lock(&e->mu);
		if (gen == e->gen) {
			e->leading = false;
			if (!e->lost)
				e->lost = true;
			kha_elect__changed_locked(e);
		}
		pthread_mutex_unlock(&e->mu);
		/* give our place away (main also resigns on stop; a second revoke is harmless) */
		revoke_lease(c, lease);
		if (r < 0) {
			pthread_mutex_lock(&e->mu);
			kha_elect__wait_locked(e, kha_now_us() + backoff);
			pthread_mutex_unlock(&e->mu);
			backoff = KHA_MIN(backoff * 2, BACKOFF_MAX_US);
		}
	}
	return NULL;
}

static int etcd_start(struct engine *e, struct kha_diag *d)
{
	int r;

	if (!e->o->etcd)
		return kha_diag_set(d, EINVAL, "no etcd configuration");
	/* clients first: unusable TLS files fail here, before anything runs */
	for (size_t i = 0; i < KHA_ARRAY_SIZE(e->clients); i++) {
		r = kha_etcd_new(e->o->etcd, &e->clients[i], d);
		if (r < 0)
			return r;
	}
	if (pthread_create(&e->threads[0], NULL, campaign_thread, e) != 0)
		return kha_diag_set(d, EAGAIN, "cannot create a thread");
	e->n_threads = 1;
	if (pthread_create(&e->threads[1], NULL, keepalive_thread, e) != 0)
		return kha_diag_set(d, EAGAIN, "cannot create a thread");
	e->n_threads = 2;
	return 0;
}

static void etcd_free(struct engine *e)
{
	for (size_t i = 0; i < KHA_ARRAY_SIZE(e->clients); i++) {
		kha_etcd_free(e->clients[i]);
		e->clients[i] = NULL;
	}
}

static void etcd_resign(struct engine *e)
{
	struct kha_etcd *c;
	struct kha_diag d = {};
	char key[sizeof(e->key)];
	int64_t lease;

	/* the keep-alive thread sleeps between renewals: stop it and reuse its client, whose
	 * connection is warm (a new TLS handshake would delay the handover) */
	if (e->n_threads == 2) {
		pthread_join(e->threads[1], NULL);
		e->n_threads = 1;
	}
	c = e->clients[1];
	pthread_mutex_lock(&e->mu);
	memcpy(key, e->key, sizeof(key));
	lease = e->lease;
	pthread_mutex_unlock(&e->mu);
	if (!lease || !c)
		return;
	kha_etcd_set_command_timeout(c, RESIGN_TIMEOUT_US);
	kha_debug("resigning", "key=%s", KHA_LOGQ(key));
	if (key[0]) {
		struct kha_etcd_delete_req del = {.r = {.key = key}};

		if (kha_etcd_delete(c, &del, NULL, &d) < 0)
			kha_warn("resign: cannot delete our key", "key=%s error=%s", KHA_LOGQ(key),
				 KHA_LOGQ(d.msg));
	}
	kha_diag_clear(&d);
	if (kha_etcd_lease_revoke(c, lease, &d) < 0 && !strstr(d.msg, "not found"))
		kha_debug("resign: revoke failed", "error=%s", KHA_LOGQ(d.msg));
	kha_info(strcmp(e->o->what, "lock") == 0 ? "released" : "resigned", "%s=%s id=%s",
		 e->o->what, KHA_LOGQ(e->o->name), KHA_LOGQ(e->o->id));
}

const struct kha_elect__backend kha_elect__etcd_backend = {
	.start = etcd_start,
	.resign = etcd_resign,
	.free = etcd_free,
};
