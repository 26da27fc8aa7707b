// SPDX-License-Identifier: MIT
/*
 * kha etcd member replace: which order the steps go in (kha_etcdops_replace_plan, pure, from
 * the cluster report and its alarms) and the steps themselves (kha_etcdops_replace), each
 * change guarded again on the cluster as it is at that moment.
 *
 * Invariants:
 * - OLD is removed before NEW is added only when it is down (etcd adds no member while a voter
 *   is unreachable) or when it is the stopped carrier of a CORRUPT alarm (the repair); a live
 *   OLD goes last, so the failures tolerated never drop.
 * - The repair is planned only when the REPAIR guard allows it; a forced refusal goes the
 *   usual way; the learner added after the disarm waits until no member shows an alarm, so
 *   that its own guard sees the cluster as it then is.
 * - Every call to the cluster goes through a table (etcdops-internal.h): the unit tests run
 *   each order against a cluster they describe and check the sequence of calls.
 * - The library says what it does (req->step, req->guard, ch->note, ch->progress) and never
 *   prints; how a stopped replacement is finished by hand is the command's to say, from
 *   ret->stage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "etcdops-internal.h"
#include "kha/banned.h"

#define CAUGHT_UP_LAG  1000 /* raft entries behind the leader that count as caught up */
#define ALARM_CLEAR_US (10 * KHA_USEC_PER_SEC)
#define ALARM_POLL_US  (200 * KHA_USEC_PER_MSEC)

static const char *const order_names[] = {
	[KHA_ETCDOPS_REPLACE_LEARNER_FIRST] = "learner-first",
	[KHA_ETCDOPS_REPLACE_REMOVE_FIRST] = "remove-first",
	[KHA_ETCDOPS_REPLACE_REPAIR] = "repair-corrupt",
};

/* The steps of each order, ended by KHA_ETCDOPS_REPLACE_PLAN (0). */
static const enum kha_etcdops_replace_stage order_steps[][KHA_ETCDOPS_REPLACE_MAX_STEPS] = {
	[KHA_ETCDOPS_REPLACE_LEARNER_FIRST] = {KHA_ETCDOPS_REPLACE_ADD, KHA_ETCDOPS_REPLACE_WAIT,
					       KHA_ETCDOPS_REPLACE_PROMOTE,
					       KHA_ETCDOPS_REPLACE_REMOVE_OLD},
	[KHA_ETCDOPS_REPLACE_REMOVE_FIRST] = {KHA_ETCDOPS_REPLACE_REMOVE_DOWN,
					      KHA_ETCDOPS_REPLACE_ADD, KHA_ETCDOPS_REPLACE_WAIT,
					      KHA_ETCDOPS_REPLACE_PROMOTE},
	[KHA_ETCDOPS_REPLACE_REPAIR] = {KHA_ETCDOPS_REPLACE_REMOVE_CORRUPT,
					KHA_ETCDOPS_REPLACE_DISARM, KHA_ETCDOPS_REPLACE_ADD,
					KHA_ETCDOPS_REPLACE_WAIT, KHA_ETCDOPS_REPLACE_PROMOTE},
};

const char *kha_etcdops_replace_order_name(enum kha_etcdops_replace_order o)
{
	return (size_t)o < KHA_ARRAY_SIZE(order_names) ? order_names[o] : "unknown";
}

void kha_etcdops_replace_result_release(struct kha_etcdops_replace_result *r)
{
	if (!r)
		return;
	kha_etcd_member_release(&r->added);
	kha_etcdops_member_start_release(&r->start);
	kha_etcd_alarm_list_release(&r->disarmed);
	kha_etcd_alarm_list_release(&r->remaining);
	memset(r, 0, sizeof(*r));
}

/* ---- the plan (pure) ---------------------------------------------------------------------- */

int kha_etcdops_replace_plan(const struct kha_etcd_cluster_report *rep, size_t old_idx,
			     uint64_t suspect, const struct kha_etcdops_replace_request *req,
			     struct kha_etcdops_replace_plan *ret)
{
	struct kha_etcdops_replace_plan p = {};
	const struct kha_etcd_member_report *old;

	if (!rep || !req || old_idx >= rep->n_members)
		return -EINVAL;
	old = &rep->members[old_idx];
	p.old_id = old->member.id;
	p.named = old->alarm_corrupt;
	p.order = old->reachable ? KHA_ETCDOPS_REPLACE_LEARNER_FIRST
				 : KHA_ETCDOPS_REPLACE_REMOVE_FIRST;
	p.guarded = kha_etcdops_guard_report_alarm(rep);
	if (p.guarded) {
		/* with an alarm active, only the repair of a CORRUPT alarm may change members */
		struct kha_etcdops_guard_request g = {
			.op = KHA_ETCDOPS_GUARD_REPAIR,
			.name = req->name,
			.peer_urls = req->peer_urls,
			.n_peer_urls = req->n_peer_urls,
			.target = p.old_id,
		};
		int r = kha_etcdops_guard_check_report(rep, suspect, &g, &p.verdict);

		if (r < 0)
			return r;
		if (p.verdict.allowed)
			p.order = KHA_ETCDOPS_REPLACE_REPAIR;
		else if (req->force && p.verdict.forceable)
			p.forced = true;
		else
			p.refused = true;
	}
	for (int i = 0; !p.refused && i < KHA_ETCDOPS_REPLACE_MAX_STEPS; i++) {
		if (order_steps[p.order][i] == KHA_ETCDOPS_REPLACE_PLAN)
			break;
		p.steps[p.n_steps++] = order_steps[p.order][i];
	}
	*ret = p;
	return 0;
}

/* ---- the steps ---------------------------------------------------------------------------- */

struct run {
	const struct kha_etcdops_replace_request *req;
	const struct kha_etcdops_change *ch;
	const struct kha_etcdops__replace_ops *ops;
	void *ctx;
	struct kha_etcdops_replace_result *res;
	struct kha_diag *d;
	uint64_t suspect; /* the member an alarm naming none is about, 0 = unknown */
	int step;	  /* the last step said */
};

/* The next step (next), or a line of detail under it (step 0), said through req->step. */
static void KHA_PRINTF(3, 4) say(struct run *rn, bool next, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (next)
		rn->step++;
	if (rn->req->step)
		rn->req->step(rn->ch->userdata, next ? rn->step : 0, rn->res->plan.n_steps, text,
			      rn->res);
}

static void KHA_PRINTF(2, 3) note(struct run *rn, const char *fmt, ...)
{
	char text[KHA_DIAG_MAX + 256];
	va_list ap;

	if (!rn->ch->note)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	rn->ch->note(rn->ch->userdata, text);
}

/* A wait is over: the command ends its progress line. */
static void progress_done(struct run *rn)
{
	if (rn->ch->progress)
		rn->ch->progress(rn->ch->userdata, NULL);
}

/* Says v; 0 when the change may go on (allowed, or refused and forced), else -EPERM. */
static int decide(struct run *rn, const struct kha_etcdops_guard_verdict *v, bool refused)
{
	rn->res->verdict = *v;
	if (rn->req->guard)
		rn->req->guard(rn->ch->userdata, v);
	if (!refused)
		return 0;
	rn->res->refused = true;
	return kha_diag_set(rn->d, EPERM, "refused (%s): %s", v->rule, v->reason);
}

/* Guards g on the cluster as it is now. 0 to go on, -EPERM refused, or the report's error. */
static int guard_now(struct run *rn, const struct kha_etcdops_guard_request *g)
{
	struct kha_etcd_cluster_report rep = {};
	struct kha_etcdops_guard_verdict v;
	int r = rn->ops->report(rn->ctx, rn->ch, true, &rep, rn->d);

	if (r < 0)
		return r;
	r = kha_etcdops_guard_check_report(&rep, rn->suspect, g, &v);
	kha_etcd_cluster_report_release(&rep);
	if (r < 0)
		return kha_diag_set(rn->d, -r, "the guard could not decide");
	return decide(rn, &v, !v.allowed && !(rn->req->force && v.forceable));
}

/* Removes member id and forgets the name it was added with (a failure there is no matter). */
static int remove_member(struct run *rn, uint64_t id)
{
	struct kha_diag nd = {};
	int r = rn->ops->remove(rn->ctx, rn->ch, id, rn->d);

	if (r == 0)
		kha_ignore(rn->ops->name(rn->ctx, rn->ch, id, NULL, &nd));
	return r;
}

static int remove_guarded(struct run *rn)
{
	struct kha_etcdops_guard_request g = {.op = KHA_ETCDOPS_GUARD_REMOVE,
					      .target = rn->res->plan.old_id};
	int r = guard_now(rn, &g);

	return r < 0 ? r : remove_member(rn, g.target);
}

/* Guards and adds NEW as a learner, records its name, then says the step (with its id). */
static int add_new(struct run *rn)
{
	const struct kha_etcdops_replace_request *req = rn->req;
	struct kha_etcdops_replace_result *res = rn->res;
	struct kha_etcdops_guard_request g = {
		.op = KHA_ETCDOPS_GUARD_ADD_LEARNER,
		.name = req->name,
		.peer_urls = req->peer_urls,
		.n_peer_urls = req->n_peer_urls,
	};
	struct kha_diag nd = {};
	int r = guard_now(rn, &g);

	if (r == 0)
		r = rn->ops->add(rn->ctx, rn->ch, req->peer_urls, req->n_peer_urls, req->name,
				 &res->added, &res->start, rn->d);
	if (r < 0)
		return r;
	if (rn->ops->name(rn->ctx, rn->ch, res->added.id, req->name, &nd) < 0)
		note(rn,
		     "note: could not record the name %s under " KHA_ETCDOPS_MEMBER_NAME_PREFIX
		     " (%s): until it starts, name it by its id %" PRIx64,
		     req->name, nd.msg, res->added.id);
	say(rn, true, "%s added as a learner (id %" PRIx64 "), replacing %s.", req->name,
	    res->added.id, res->old);
	return 0;
}

static int no_alarm_poll(void *userdata, char *text, size_t size)
{
	struct run *rn = userdata;
	struct kha_etcd_cluster_report rep = {};
	bool alarm;

	(void)text;
	(void)size;
	if (rn->ops->report(rn->ctx, rn->ch, false, &rep, NULL) < 0)
		return 0;
	alarm = kha_etcdops_guard_report_alarm(&rep);
	kha_etcd_cluster_report_release(&rep);
	return alarm ? 0 : 1;
}

/*
 * Disarms the CORRUPT alarm on OLD (or on no member: etcd 3.4), checks that none remains,
 * then waits (up to ALARM_CLEAR_US) until no member's status shows one: the alarm list goes
 * through raft, and a lagging follower updates its copy a moment later.
 */
static int disarm(struct run *rn)
{
	struct kha_etcdops_replace_result *res = rn->res;
	struct kha_etcdops_alarm_filter f = {.type = KHA_ETCD_ALARM_CORRUPT,
					     .by_member = true,
					     .member = res->plan.named ? res->plan.old_id : 0};
	int r = rn->ops->disarm(rn->ctx, rn->ch, &f, &res->disarmed, &res->remaining, rn->d);

	if (r < 0)
		return r;
	if (res->remaining.n_alarms)
		return kha_diag_set(rn->d, EBUSY, "alarms remain after the disarm");
	say(rn, false, "  disarmed; no alarm remains.");
	kha_ignore(kha_etcdops_wait(kha_now_us() + ALARM_CLEAR_US, ALARM_POLL_US, rn->ch->cancel,
				    no_alarm_poll, rn, NULL, NULL));
	return 0;
}

static int run_step(struct run *rn, enum kha_etcdops_replace_stage stage)
{
	struct kha_etcdops_replace_result *res = rn->res;
	const char *name = rn->req->name;
	int r;

	res->stage = stage;
	switch (stage) {
	case KHA_ETCDOPS_REPLACE_REMOVE_DOWN:
		say(rn, true,
		    "%s is down: removing it first (etcd adds no member while a voter is "
		    "unreachable)...",
		    res->old);
		return remove_guarded(rn);
	case KHA_ETCDOPS_REPLACE_REMOVE_CORRUPT:
		/* the repair's guard, in the plan, was this remove's */
		say(rn, true, "%s carries the CORRUPT alarm and is stopped: removing it...",
		    res->old);
		return remove_member(rn, res->plan.old_id);
	case KHA_ETCDOPS_REPLACE_DISARM:
		say(rn, true, "disarming the CORRUPT alarm...");
		return disarm(rn);
	case KHA_ETCDOPS_REPLACE_ADD:
		return add_new(rn);
	case KHA_ETCDOPS_REPLACE_WAIT:
		say(rn, true, "waiting for %s to start and catch up...", name);
		r = rn->ops->wait_started(rn->ctx, rn->ch, res->added.id, rn->req->start_timeout_us,
					  rn->d);
		progress_done(rn);
		return r;
	case KHA_ETCDOPS_REPLACE_PROMOTE:
		say(rn, true, "promoting %s...", name);
		r = rn->ops->promote(rn->ctx, rn->ch, res->added.id, rn->req->promote_timeout_us,
				     rn->d);
		progress_done(rn);
		return r;
	case KHA_ETCDOPS_REPLACE_REMOVE_OLD:
		say(rn, true, "removing %s...", res->old);
		return remove_guarded(rn);
	default:
		return kha_diag_set(rn->d, EINVAL, "no such step (%d)", (int)stage);
	}
}

/* ---- before and after the steps ----------------------------------------------------------- */

/*
 * etcd 3.4 raises CORRUPT on no member: the member it is about is the one kha etcd check
 * consistency blames (kha_etcdops_consistency_suspect). Sets rn->suspect; says what it found.
 */
static void find_suspect(struct run *rn)
{
	struct kha_etcdops_consistency_report cr = {};
	struct kha_diag cd = {};

	say(rn, false,
	    "The CORRUPT alarm names no member (etcd 3.4): comparing the members' data (kha etcd "
	    "check consistency)...");
	if (rn->ops->consistency(rn->ctx, rn->ch, &cr, &cd) < 0) {
		note(rn, "the consistency check failed: %s", cd.msg);
		kha_etcdops_consistency_report_release(&cr);
		return;
	}
	rn->suspect = kha_etcdops_consistency_suspect(&cr);
	say(rn, false, "  %s", cr.summary);
	for (size_t i = 0; rn->suspect && i < cr.n_members; i++)
		if (cr.members[i].id == rn->suspect)
			say(rn, false,
			    "  so the alarm is about %s (the one member that differs or, stopped, "
			    "could not be compared)",
			    cr.members[i].name[0] ? cr.members[i].name : "an unnamed member");
	kha_etcdops_consistency_report_release(&cr);
}

/* The cluster now, OLD in it, the plan; a refused repair is said and ends here (-EPERM). */
static int plan(struct run *rn)
{
	struct kha_etcdops_replace_result *res = rn->res;
	struct kha_etcd_cluster_report rep = {};
	int r = rn->ops->report(rn->ctx, rn->ch, true, &rep, rn->d), idx;
	const struct kha_etcd_member *m;

	if (r < 0)
		return r;
	idx = rn->ops->find(rn->ctx, rn->ch, &rep, rn->req->old, rn->d);
	if (idx < 0) {
		kha_etcd_cluster_report_release(&rep);
		return idx;
	}
	m = &rep.members[idx].member;
	if (m->name && m->name[0])
		snprintf(res->old, sizeof(res->old), "%s", m->name);
	else
		snprintf(res->old, sizeof(res->old), "%" PRIx64, m->id);
	if (rep.alarm_corrupt_unnamed)
		find_suspect(rn);
	r = kha_etcdops_replace_plan(&rep, (size_t)idx, rn->suspect, rn->req, &res->plan);
	kha_etcd_cluster_report_release(&rep);
	if (r < 0)
		return kha_diag_set(rn->d, -r, "the guard could not decide");
	return res->plan.guarded ? decide(rn, &res->plan.verdict, res->plan.refused) : 0;
}

/* The cluster after the change, for the closing line. */
static int done(struct run *rn)
{
	struct kha_etcdops_replace_result *res = rn->res;
	struct kha_etcd_cluster_report rep = {};
	int r;

	res->stage = KHA_ETCDOPS_REPLACE_DONE;
	r = rn->ops->report(rn->ctx, rn->ch, true, &rep, rn->d);
	if (r < 0)
		return r;
	res->health = rep.health.verdict;
	snprintf(res->summary, sizeof(res->summary), "%s", rep.health.summary);
	kha_etcd_cluster_report_release(&rep);
	return 0;
}

int kha_etcdops__replace_run(const struct kha_etcdops_replace_request *req,
			     const struct kha_etcdops__replace_ops *ops, void *ctx,
			     struct kha_etcdops_replace_result *ret, struct kha_diag *d)
{
	struct run rn = {.req = req, .ch = req->ch, .ops = ops, .ctx = ctx, .res = ret, .d = d};
	int r;

	*ret = (struct kha_etcdops_replace_result){.stage = KHA_ETCDOPS_REPLACE_PLAN};
	r = plan(&rn);
	for (int i = 0; r == 0 && i < ret->plan.n_steps; i++)
		r = run_step(&rn, ret->plan.steps[i]);
	return r < 0 ? r : done(&rn);
}

/* ---- the real calls ----------------------------------------------------------------------- */

static int real_report(void *ctx, const struct kha_etcdops_change *ch, bool need_leader,
		       struct kha_etcd_cluster_report *ret, struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_change_report(ch, need_leader, ret, d);
}

static int real_find(void *ctx, const struct kha_etcdops_change *ch,
		     const struct kha_etcd_cluster_report *rep, const char *name_or_id,
		     struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_change_find(ch, rep, name_or_id, d);
}

static int real_consistency(void *ctx, const struct kha_etcdops_change *ch,
			    struct kha_etcdops_consistency_report *ret, struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_consistency_check(ch->cfg, 0, ret, d);
}

static int real_remove(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
		       struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_change_remove(ch, id, d);
}

static int real_add(void *ctx, const struct kha_etcdops_change *ch, const char *const *peer_urls,
		    size_t n_peer_urls, const char *name, struct kha_etcd_member *ret_member,
		    struct kha_etcdops_member_start *ret_start, struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_change_add(ch, peer_urls, n_peer_urls, name, true, ret_member, ret_start,
				      d);
}

static int real_name(void *ctx, const struct kha_etcdops_change *ch, uint64_t id, const char *name,
		     struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_change_name(ch, id, name, d);
}

static int real_disarm(void *ctx, const struct kha_etcdops_change *ch,
		       const struct kha_etcdops_alarm_filter *f,
		       struct kha_etcd_alarm_list *ret_disarmed,
		       struct kha_etcd_alarm_list *ret_remaining, struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_alarm_disarm(ch->cfg, f, ret_disarmed, ret_remaining, d);
}

static int real_wait_started(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
			     uint64_t timeout_us, struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_member_wait_started(ch->cfg, id, CAUGHT_UP_LAG, timeout_us, ch->cancel,
					       ch->progress, ch->userdata, d);
}

static int real_promote(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
			uint64_t timeout_us, struct kha_diag *d)
{
	(void)ctx;
	return kha_etcdops_member_promote_wait(ch->cfg, id, timeout_us, ch->cancel, ch->progress,
					       ch->userdata, d);
}

static const struct kha_etcdops__replace_ops real_ops = {
	.report = real_report,
	.find = real_find,
	.consistency = real_consistency,
	.remove = real_remove,
	.add = real_add,
	.name = real_name,
	.disarm = real_disarm,
	.wait_started = real_wait_started,
	.promote = real_promote,
};

int kha_etcdops_replace(const struct kha_etcdops_replace_request *req,
			struct kha_etcdops_replace_result *ret, struct kha_diag *d)
{
	return kha_etcdops__replace_run(req, &real_ops, NULL, ret, d);
}
