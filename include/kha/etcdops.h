/* SPDX-License-Identifier: MIT */
/*
 * etcd operations on a running cluster (lib/etcdops; docs/etcd-ops.md):
 *
 *   guards        pure rules deciding whether a membership change is safe for quorum
 *   members       finding members, the flags a new member starts with, waiting for a new
 *                 member to start and a learner to be promoted
 *   changes       add and remove with their retries and look-ups of lost answers, the
 *                 settled cluster a change starts from, the one cancellable wait
 *   alarms        disarming alarms as etcdctl does, and saying what remains
 *   replace       the steps of a member's replacement, in the order the cluster allows
 *   consistency   the members' HashKV compared at one common revision
 *   defrag        one member at a time, the leader last, waiting for health in between
 *
 * Conventions as in the rest of kha: negative errno returns with a struct kha_diag naming what
 * failed; result structs own their strings and are released with their _release function
 * (which accepts a zeroed struct); the library never prints and never exits.
 */
#ifndef KHA_ETCDOPS_H
#define KHA_ETCDOPS_H

#include <signal.h>
#include "kha/common.h"
#include "kha/diag.h"
#include "kha/etcd.h"

/* ==== membership guards (pure) ============================================================= */

/*
 * Whether a membership change is safe, decided from what the cluster looks like right now.
 * Every refusal names its rule and the way out; a refusal marked forceable may be overridden
 * (--force), the others never (etcd would refuse them, or they make no sense).
 *
 * Fault tolerance t = voters up - quorum, quorum = voters / 2 + 1 (learners do not vote);
 * t < 0 means quorum is lost. A member that was added but has not started yet counts as a
 * voter that is down: that is why adding a voting member is the dangerous moment.
 */
struct kha_etcdops_guard_member {
	uint64_t id;
	const char *name; /* "" while not started */
	bool is_learner;
	bool reachable;
	uint64_t raft_index; /* 0 = unknown */
	const char *const *peer_urls;
	size_t n_peer_urls;
};

struct kha_etcdops_guard_cluster {
	const struct kha_etcdops_guard_member *members;
	size_t n_members;
	uint64_t leader;	/* the agreed leader, 0 = none */
	bool alarm;		/* a NOSPACE or CORRUPT alarm is active (any of the three below) */
	bool nospace;		/* a NOSPACE alarm is active */
	uint64_t corrupt;	/* the member a CORRUPT alarm names (etcd 3.5+), 0 = none */
	bool corrupt_unnamed;	/* a CORRUPT alarm names no member (etcd 3.4's periodic check) */
	uint64_t suspect;	/* with corrupt_unnamed: the one member the consistency check
				 * blames (kha_etcdops_consistency_suspect), 0 = unknown */
	uint64_t lag_threshold; /* raft entries behind the leader that count as lagging; 0 = 1000 */
};

enum kha_etcdops_guard_op {
	KHA_ETCDOPS_GUARD_ADD,	       /* a voting member */
	KHA_ETCDOPS_GUARD_ADD_LEARNER, /* a learner (does not vote, does not change quorum) */
	KHA_ETCDOPS_GUARD_REMOVE,
	KHA_ETCDOPS_GUARD_PROMOTE,
	/*
	 * The repair of a CORRUPT alarm: target (stopped) is removed, the alarm disarmed, then
	 * name/peer_urls added as a learner. The one change allowed while a CORRUPT alarm is
	 * active, and only for the member it names (or, for an alarm naming none, the suspect).
	 */
	KHA_ETCDOPS_GUARD_REPAIR,
};

struct kha_etcdops_guard_request {
	enum kha_etcdops_guard_op op;
	const char *name; /* ADD*, REPAIR: the new member's name */
	const char *const *peer_urls;
	size_t n_peer_urls;
	uint64_t target; /* REMOVE, PROMOTE, REPAIR: the member's id */
};

struct kha_etcdops_guard_verdict {
	bool allowed;
	bool forceable;	   /* when refused: --force may override it */
	char rule[32];	   /* the rule that refused ("quorum-loss", ...), "" when allowed */
	char reason[640];  /* why, with the way out */
	char warning[384]; /* allowed, but worth saying; "" when nothing */
	size_t voters_before, voters_after;
	size_t up_before, up_after;
	size_t quorum_before, quorum_after;
	int tolerance_before, tolerance_after; /* negative: quorum lost */
};

/*
 * Decides req against c. Rules, in order (docs/etcd-ops.md):
 *   unknown-member   REMOVE/PROMOTE of an id that is not a member (not forceable)
 *   not-a-learner    PROMOTE of a voter (not forceable)
 *   name-taken       ADD with a name a member already has (not forceable)
 *   peer-url-taken   ADD with a peer URL a member already has (not forceable)
 *   no-leader        no agreed leader: membership changes go through raft
 *   quorum-lost      the cluster has already lost quorum
 *   alarm            ADD while a NOSPACE/CORRUPT alarm is active; REPAIR of a member other
 *                    than the one a CORRUPT alarm names, or while NOSPACE is active
 *   not-corrupt      REPAIR without a CORRUPT alarm (not forceable)
 *   corrupt-unknown  REPAIR while a CORRUPT alarm names no member and no suspect is known
 *                    (not forceable: run kha etcd check consistency)
 *   corrupt-running  REPAIR of a member that still answers: stop it first (not forceable)
 *   pending-member   ADD while a member is unstarted or a learner waits for promotion
 *   learner-down     PROMOTE of a learner that does not answer
 *   quorum-loss      the change leaves fewer voters up than the new quorum
 *   fault-tolerance  ADD (voting) lowers the failures tolerated until the new member runs
 *   member-down      ADD while a voter is down: etcd's strict reconfiguration check refuses
 *                    every add then (remove the dead member first)
 *   leader-lagging   REMOVE of the leader while another voter is down or lagging
 * REPAIR then applies the rules of REMOVE (the new member comes as a learner, once the alarm
 * is gone, under the rules of ADD_LEARNER).
 * Returns 0 (the decision is in *ret), -EINVAL for a bad request.
 */
int kha_etcdops_guard_check(const struct kha_etcdops_guard_cluster *c,
			    const struct kha_etcdops_guard_request *req,
			    struct kha_etcdops_guard_verdict *ret) KHA_WUR;

/*
 * A guard view of a cluster report: members[] must hold rep->n_members entries (its strings
 * are borrowed from rep). A leader that is not a listed member that answers (the others still
 * name a dead or removed leader until they elect another) counts as no leader.
 */
void kha_etcdops_guard_from_report(const struct kha_etcd_cluster_report *rep,
				   struct kha_etcdops_guard_member *members,
				   struct kha_etcdops_guard_cluster *ret);

/* The fault tolerance of voters with up of them answering (negative: quorum lost). */
int kha_etcdops_guard_tolerance(size_t voters, size_t up);

/*
 * kha_etcdops_guard_check on the view of rep (kha_etcdops_guard_from_report) with suspect as
 * its suspect (0 = none). Returns 0 (the decision in *ret), -ENOMEM or -EINVAL.
 */
int kha_etcdops_guard_check_report(const struct kha_etcd_cluster_report *rep, uint64_t suspect,
				   const struct kha_etcdops_guard_request *req,
				   struct kha_etcdops_guard_verdict *ret) KHA_WUR;

/* Whether rep shows an active alarm: NOSPACE or CORRUPT, on a member or naming none. */
bool kha_etcdops_guard_report_alarm(const struct kha_etcd_cluster_report *rep);

/* ==== membership operations ================================================================ */

/*
 * Finds a member by name, else by id (hex, as etcdctl prints it). Returns its index in
 * rep->members, -ENOENT (diag lists the members) or -EEXIST when the name is ambiguous.
 */
int kha_etcdops_member_find(const struct kha_etcd_cluster_report *rep, const char *name_or_id,
			    struct kha_diag *d) KHA_WUR;

/*
 * Checks a peer URL given on the command line: http or https, a host and a port, nothing
 * after the port. Returns 0 or -EINVAL with the reason in the diag.
 */
int kha_etcdops_member_check_peer_url(const char *url, struct kha_diag *d) KHA_WUR;

/*
 * What a new member must be started with (etcd's flags): --name, --initial-cluster with every
 * member's peer URLs (the new one under its name), --initial-cluster-state existing,
 * --initial-advertise-peer-urls. members is the list returned by the add.
 */
struct kha_etcdops_member_start {
	char *name;
	char *initial_cluster;
	char *initial_advertise_peer_urls;
};
int kha_etcdops_member_start_flags(const struct kha_etcd_member_list *members, uint64_t new_id,
				   const char *new_name,
				   struct kha_etcdops_member_start *ret) KHA_WUR;
void kha_etcdops_member_start_release(struct kha_etcdops_member_start *s);

/*
 * etcd learns a member's name only when it starts, so `kha etcd member add NAME` records NAME
 * under KHA_ETCDOPS_MEMBER_NAME_PREFIX<id hex> (a key beside Kubernetes' /registry/), and a member that
 * has not started yet can be promoted or removed by the name it was added with.
 * record and forget: 0 or a negative errno (callers treat a failure as a warning).
 * lookup: the index in rep->members of the unstarted member recorded as name, or -ENOENT.
 */
#define KHA_ETCDOPS_MEMBER_NAME_PREFIX "kha/member-names/"
int kha_etcdops_member_name_record(struct kha_etcd *c, uint64_t id, const char *name,
				   struct kha_diag *d) KHA_WUR;
int kha_etcdops_member_name_forget(struct kha_etcd *c, uint64_t id, struct kha_diag *d) KHA_WUR;
int kha_etcdops_member_name_lookup(struct kha_etcd *c, const struct kha_etcd_cluster_report *rep,
				   const char *name, struct kha_diag *d) KHA_WUR;

/* Progress of a wait, for the command to print (a sentence, no newline). */
typedef void (*kha_etcdops_member_progress_fn)(void *userdata, const char *text);

/*
 * Waits until member id has started (it has a name and answers its status) and, for a
 * learner, until its raft index is within lag of the leader's. Polls every 500 ms; returns
 * 0, -ETIMEDOUT, -ECANCELED or -ENOENT (removed meanwhile).
 */
int kha_etcdops_member_wait_started(const struct kha_etcd_config *cfg, uint64_t id, uint64_t lag,
				    uint64_t timeout_us, const volatile sig_atomic_t *cancel,
				    kha_etcdops_member_progress_fn fn, void *userdata,
				    struct kha_diag *d) KHA_WUR;

/*
 * Promotes learner id, retrying while etcd refuses because it has not caught up with the
 * leader ("can only promote a learner member which is in sync with leader"), until
 * timeout_us. Returns 0, -ETIMEDOUT (diag: how far behind), -ECANCELED or the error.
 */
int kha_etcdops_member_promote_wait(const struct kha_etcd_config *cfg, uint64_t id,
				    uint64_t timeout_us, const volatile sig_atomic_t *cancel,
				    kha_etcdops_member_progress_fn fn, void *userdata,
				    struct kha_diag *d) KHA_WUR;

/* ==== membership changes (change.c, wait.c): what kha etcd member add|remove|replace runs ==== */

/*
 * The one wait of lib/etcdops: calls poll until it answers done (> 0) or failed (< 0); between
 * calls, hands the text poll left (when not empty) to progress and sleeps interval_us with
 * kha_sleep_us, so cancel ends the wait within 50 ms. Returns poll's answer, -ETIMEDOUT when
 * deadline_us (kha_now_us()) passed with poll still saying not yet, or -ECANCELED.
 */
typedef int (*kha_etcdops_poll_fn)(void *userdata, char *text, size_t size);
int kha_etcdops_wait(uint64_t deadline_us, uint64_t interval_us,
		     const volatile sig_atomic_t *cancel, kha_etcdops_poll_fn poll, void *userdata,
		     kha_etcdops_member_progress_fn progress, void *progress_userdata) KHA_WUR;

/*
 * A membership change in progress: the cluster it talks to, the caller's cancel flag (may be
 * NULL), and how it speaks: progress is the state of a wait, rewritten in place by the caller
 * (text NULL: the wait is over, end the line); note is a line of its own ("not applied (...):
 * retrying"). Both may be NULL.
 */
struct kha_etcdops_change {
	const struct kha_etcd_config *cfg;
	const volatile sig_atomic_t *cancel;
	kha_etcdops_member_progress_fn progress;
	kha_etcdops_member_progress_fn note;
	void *userdata;
};

/*
 * The cluster as it is now, for a change: right after the leader died the others still name it
 * for a second or two, so with need_leader it waits (up to 10 s, while quorum holds) until the
 * members agree on a live leader, and says so once; after that the guards decide. Returns 0
 * with *ret filled (also when the wait ran out), or the error of the report.
 */
int kha_etcdops_change_report(const struct kha_etcdops_change *ch, bool need_leader,
			      struct kha_etcd_cluster_report *ret, struct kha_diag *d) KHA_WUR;

/*
 * kha_etcdops_member_find, then the name a member that has not started was added with (etcd
 * knows names from the start on; kha_etcdops_change_add records them). Returns the index in
 * rep->members or the error of kha_etcdops_member_find.
 */
int kha_etcdops_change_find(const struct kha_etcdops_change *ch,
			    const struct kha_etcd_cluster_report *rep, const char *name_or_id,
			    struct kha_diag *d) KHA_WUR;

/*
 * While no member is named name_or_id but a learner has not started yet (added by another tool:
 * its name shows once it starts), waits until deadline_us, polling every 500 ms. Takes and
 * refills *rep. Returns the index as kha_etcdops_change_find, -ECANCELED, or the report's error
 * (*rep then released).
 */
int kha_etcdops_change_find_wait(const struct kha_etcdops_change *ch, const char *name_or_id,
				 uint64_t deadline_us, struct kha_etcd_cluster_report *rep,
				 struct kha_diag *d) KHA_WUR;
/* Whether rep has a learner that has not started (it has no name yet). */
bool kha_etcdops_change_unstarted_learner(const struct kha_etcd_cluster_report *rep);

/*
 * Records (name) or forgets (NULL) the name member id was added with (see
 * kha_etcdops_member_name_record). 0 or a negative errno; callers treat a failure as a note.
 */
int kha_etcdops_change_name(const struct kha_etcdops_change *ch, uint64_t id, const char *name,
			    struct kha_diag *d) KHA_WUR;

/*
 * Adds a member with peer_urls (a learner when learner), named name in *ret_start (the flags
 * it must start with); *ret_member gets its entry. etcd's "unhealthy cluster" refusal (its
 * leader has not seen every voter for 5 s) is retried for 15 s with progress; an answer that
 * was lost (timeout, reset, "leader changed") is looked up in the member list before it
 * counts as a failure, and the change is tried 3 times, waiting for a live leader in between.
 * Returns 0, -EBADMSG when the member list lacks the new member, or the error of the add.
 */
int kha_etcdops_change_add(const struct kha_etcdops_change *ch, const char *const *peer_urls,
			   size_t n_peer_urls, const char *name, bool learner,
			   struct kha_etcd_member *ret_member,
			   struct kha_etcdops_member_start *ret_start, struct kha_diag *d) KHA_WUR;

/* Removes member id with the retries of kha_etcdops_change_add. Returns 0 or the error. */
int kha_etcdops_change_remove(const struct kha_etcdops_change *ch, uint64_t id,
			      struct kha_diag *d) KHA_WUR;

/* ==== alarms (alarm.c): kha etcd alarm, and the disarm of a CORRUPT repair ================ */

/* Which alarms: of one type (NONE: any), on one member (by_member; member 0: naming none). */
struct kha_etcdops_alarm_filter {
	enum kha_etcd_alarm_type type;
	bool by_member;
	uint64_t member;
};
bool kha_etcdops_alarm_matches(const struct kha_etcdops_alarm_filter *f,
			       const struct kha_etcd_alarm *a);

/*
 * Lists the active alarms, disarms each that f matches (etcd's Maintenance Alarm DEACTIVATE
 * with the alarm's member and type), then lists again. *ret_disarmed gets the alarms
 * disarmed (also on failure: what was done before it), *ret_remaining the alarms active
 * after (on success); release both. Returns 0 or the error of the call that failed.
 */
int kha_etcdops_alarm_disarm(const struct kha_etcd_config *cfg,
			     const struct kha_etcdops_alarm_filter *f,
			     struct kha_etcd_alarm_list *ret_disarmed,
			     struct kha_etcd_alarm_list *ret_remaining, struct kha_diag *d) KHA_WUR;

/* ==== replacing a member (replace.c): kha etcd member replace ============================= */

/*
 * The ways a replacement goes (docs/etcd-ops.md "Replacing a member"):
 *   LEARNER_FIRST  OLD answers: add NEW as a learner, wait until it has started and caught
 *                  up, promote it, remove OLD; the failures tolerated never drop
 *   REMOVE_FIRST   OLD does not answer: remove it first (etcd adds no member while a voter is
 *                  unreachable, and a dead voter already costs the failure it would tolerate),
 *                  then add, wait, promote
 *   REPAIR         an alarm is active and the guard allows the repair of the CORRUPT alarm on
 *                  OLD (stopped): remove OLD, disarm the alarm and check that none remains,
 *                  then add, wait, promote
 */
enum kha_etcdops_replace_order {
	KHA_ETCDOPS_REPLACE_LEARNER_FIRST,
	KHA_ETCDOPS_REPLACE_REMOVE_FIRST,
	KHA_ETCDOPS_REPLACE_REPAIR,
};
/* "learner-first", "remove-first", "repair-corrupt" (the JSON report's "order"). */
const char *kha_etcdops_replace_order_name(enum kha_etcdops_replace_order o);

/* Where a replacement is: its steps, and the stages before and after them. */
enum kha_etcdops_replace_stage {
	KHA_ETCDOPS_REPLACE_PLAN,	    /* the cluster read, OLD found, the plan (no step) */
	KHA_ETCDOPS_REPLACE_REMOVE_DOWN,    /* OLD, down, removed first (guarded as a remove) */
	KHA_ETCDOPS_REPLACE_REMOVE_CORRUPT, /* OLD, stopped, removed (under the repair's guard) */
	KHA_ETCDOPS_REPLACE_DISARM,	    /* the CORRUPT alarm disarmed; none may remain */
	KHA_ETCDOPS_REPLACE_ADD,	    /* NEW added as a learner (guarded as an add) */
	KHA_ETCDOPS_REPLACE_WAIT,	    /* NEW started and caught up with the leader */
	KHA_ETCDOPS_REPLACE_PROMOTE,	    /* NEW promoted to a voter */
	KHA_ETCDOPS_REPLACE_REMOVE_OLD,	    /* OLD removed last (guarded as a remove) */
	KHA_ETCDOPS_REPLACE_DONE,	    /* the cluster read after the change (no step) */
};

#define KHA_ETCDOPS_REPLACE_MAX_STEPS 5

/* What a replacement will do, decided from the cluster before it starts. */
struct kha_etcdops_replace_plan {
	enum kha_etcdops_replace_order order;
	enum kha_etcdops_replace_stage steps[KHA_ETCDOPS_REPLACE_MAX_STEPS];
	int n_steps;
	uint64_t old_id;
	bool named;   /* a CORRUPT alarm names OLD (etcd 3.5+); else it names no member */
	bool guarded; /* an alarm is active: verdict is the repair's (KHA_ETCDOPS_GUARD_REPAIR) */
	bool refused; /* it refused, and force does not override it: no step at all */
	bool forced;  /* it refused, force overrode it: the order OLD's state gives, 4 steps */
	struct kha_etcdops_guard_verdict verdict;
};

struct kha_etcdops_replace_result;

/*
 * A step begins (step 1..steps; text such as "promoting etcd-4...", no newline), or, with
 * step 0, a line of detail under the current step or the plan ("  disarmed; no alarm
 * remains."). The ADD step is said once the learner is added: r->added and r->start are set.
 */
typedef void (*kha_etcdops_replace_step_fn)(void *userdata, int step, int steps, const char *text,
					    const struct kha_etcdops_replace_result *r);
/* A guard's verdict as it is reached: allowed (maybe with a warning), forced, or refused. */
typedef void (*kha_etcdops_replace_guard_fn)(void *userdata,
					     const struct kha_etcdops_guard_verdict *v);

struct kha_etcdops_replace_request {
	/* the cluster, the cancel flag, and how a wait (progress) and a note speak */
	const struct kha_etcdops_change *ch;
	const char *old;	      /* OLD: its name or hex id */
	const char *name;	      /* NEW's name */
	const char *const *peer_urls; /* NEW's peer URLs */
	size_t n_peer_urls;
	bool force;		     /* a forceable refusal is overridden (still said via guard) */
	uint64_t start_timeout_us;   /* NEW started and caught up */
	uint64_t promote_timeout_us; /* etcd accepts the promotion */
	kha_etcdops_replace_step_fn step;   /* may be NULL; called with ch->userdata */
	kha_etcdops_replace_guard_fn guard; /* may be NULL; called with ch->userdata */
};

struct kha_etcdops_replace_result {
	struct kha_etcdops_replace_plan plan;
	enum kha_etcdops_replace_stage stage;  /* reached; on failure, the one that failed */
	bool refused;			       /* a guard refused: said through guard, no change */
	char old[128];			       /* OLD's name, or its id in hex */
	struct kha_etcd_member added;	       /* NEW once added (id 0 before) */
	struct kha_etcdops_member_start start; /* the flags NEW must start with */
	struct kha_etcd_alarm_list disarmed;   /* REPAIR: the alarms disarmed */
	struct kha_etcd_alarm_list remaining;  /* REPAIR: alarms active after the disarm */
	struct kha_etcdops_guard_verdict verdict; /* the last guard's */
	enum kha_etcd_verdict health;		  /* DONE: the cluster after */
	char summary[256];			  /* DONE: its one-line summary */
};
void kha_etcdops_replace_result_release(struct kha_etcdops_replace_result *r);

/*
 * The plan (pure): rep is the cluster as it is now, old_idx OLD's index in rep->members,
 * suspect the member the consistency check blames for a CORRUPT alarm naming none (0 =
 * unknown). OLD answering: learner first, else remove first; with an alarm active, the guard
 * of KHA_ETCDOPS_GUARD_REPAIR (req's name and peer URLs) decides: allowed, the repair;
 * refused, nothing (unless forceable and req->force: the usual order). Returns 0 with *ret
 * filled, -EINVAL (old_idx out of rep) or -ENOMEM.
 */
int kha_etcdops_replace_plan(const struct kha_etcd_cluster_report *rep, size_t old_idx,
			     uint64_t suspect, const struct kha_etcdops_replace_request *req,
			     struct kha_etcdops_replace_plan *ret) KHA_WUR;

/*
 * Replaces member req->old by a learner named req->name, promoted once caught up: reads the
 * cluster (waiting for a live leader), finds OLD, runs the consistency check when a CORRUPT
 * alarm names no member, plans, then runs the plan's steps, each change guarded on the
 * cluster as it is then (kha_etcdops_change_*), saying each step through req->step, each
 * verdict through req->guard. Returns 0 (ret->stage DONE), -EPERM when a guard refused
 * (ret->refused), -EBUSY when alarms remain after the disarm (ret->remaining), or the error of
 * ret->stage (-ECANCELED when ch->cancel was set); *ret holds what was done either way
 * (release it).
 */
int kha_etcdops_replace(const struct kha_etcdops_replace_request *req,
			struct kha_etcdops_replace_result *ret, struct kha_diag *d) KHA_WUR;

/* ==== consistency: the members' KV hashes at one revision ================================= */

enum kha_etcdops_consistency_state {
	KHA_ETCDOPS_CONSISTENCY_MEMBER_OK,	    /* in the agreeing majority */
	KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED,    /* its hash differs from the majority's */
	KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE, /* no status */
	KHA_ETCDOPS_CONSISTENCY_MEMBER_ERROR, /* HashKV failed (compacted meanwhile, timeout...) */
	KHA_ETCDOPS_CONSISTENCY_MEMBER_NOT_COMPARED, /* answered, but for another compact revision */
};
const char *kha_etcdops_consistency_state_name(enum kha_etcdops_consistency_state s);

struct kha_etcdops_consistency_member {
	uint64_t id;
	char name[64];
	char endpoint[256];
	bool is_learner;
	bool reachable;	  /* its status answered */
	int64_t revision; /* its current revision (status header) */
	int hash_r;	  /* 0 = HashKV answered, else the errno */
	char error[256];
	uint32_t hash;
	int64_t compact_revision;
	int64_t hash_revision; /* 0 when the member does not say (etcd < 3.5.?) */
	enum kha_etcdops_consistency_state state; /* set by kha_etcdops_consistency_compare */
};

enum kha_etcdops_consistency_verdict {
	KHA_ETCDOPS_CONSISTENCY_CONSISTENT, /* every member answered the same hash (exit 0) */
	KHA_ETCDOPS_CONSISTENCY_INCOMPLETE, /* those that answered agree; some could not be checked (1) */
	KHA_ETCDOPS_CONSISTENCY_RETRY, /* compaction moved between the probes: not comparable (1) */
	KHA_ETCDOPS_CONSISTENCY_DIVERGED, /* a member's data differs (exit 2) */
	KHA_ETCDOPS_CONSISTENCY_UNKNOWN,  /* no member could be checked */
};
const char *kha_etcdops_consistency_verdict_name(enum kha_etcdops_consistency_verdict v);

struct kha_etcdops_consistency_report {
	int64_t revision;				/* the common revision compared */
	int64_t compact_revision;			/* of the compared members */
	struct kha_etcdops_consistency_member *members; /* owned */
	size_t n_members;
	enum kha_etcdops_consistency_verdict verdict;
	size_t compared;   /* members whose hash was compared */
	size_t agreeing;   /* in the majority */
	uint32_t hash;	   /* the majority's hash (valid when agreeing > 0) */
	unsigned attempts; /* probes made (compaction can force a retry) */
	char summary[384];
};
void kha_etcdops_consistency_report_release(struct kha_etcdops_consistency_report *r);

/*
 * The comparison (pure): members that answered HashKV for the same compact revision (and,
 * when they say, for revision itself) are grouped by hash; the largest group, when strictly
 * larger than every other, is the majority and the rest diverge; a tie diverges everyone.
 * Different compact revisions among the answers give KHA_ETCDOPS_CONSISTENCY_RETRY. Sets each
 * member's state, and the report's verdict, counts, hash and summary; r->members and
 * r->revision must be set.
 */
void kha_etcdops_consistency_compare(struct kha_etcdops_consistency_report *r);

/*
 * The member a CORRUPT alarm that names no member (etcd 3.4) is about, from a compared
 * report (pure): the only diverged member when at least two others agree; or, when every
 * member that answered agrees (two at least) and exactly one could not be reached, that one
 * (the operator stopped the member the check had named). 0 when no single member is to blame.
 */
uint64_t kha_etcdops_consistency_suspect(const struct kha_etcdops_consistency_report *r);

/*
 * The whole check: every member's status in parallel, the lowest current revision among the
 * members that answered as the common revision, then HashKV at that revision on every member
 * in parallel (over gRPC), then the comparison. A compaction racing the probes is retried (3
 * attempts). member_timeout_us bounds each probe (0 = the command timeout). Returns 0 with
 * the verdict in *ret, or the error when the member list could not be had at all.
 */
int kha_etcdops_consistency_check(const struct kha_etcd_config *cfg, uint64_t member_timeout_us,
				  struct kha_etcdops_consistency_report *ret,
				  struct kha_diag *d) KHA_WUR;

/* ==== rolling defragmentation =============================================================== */

/*
 * The order members are defragmented in: learners, then followers, the leader last (its
 * defragmentation stalls the member that drives the writes; done last, a hiccup there is
 * the only one). Pure: fills order[0..rep->n_members) with indexes into rep->members.
 */
void kha_etcdops_defrag_order(const struct kha_etcd_cluster_report *rep, size_t *order);

/*
 * Whether the cluster is fit for the next member's defragmentation: every member answers,
 * quorum holds and the members agree on a leader (alarms do not count: NOSPACE is what
 * defragmentation cures). Pure; reason (may be NULL) says why not.
 */
bool kha_etcdops_defrag_cluster_ready(const struct kha_etcd_cluster_report *rep, char *reason,
				      size_t size);

struct kha_etcdops_defrag_member {
	uint64_t id;
	char name[64];
	char endpoint[256];
	bool is_leader;
	bool is_learner;
	bool done;
	int r; /* 0, or why it failed */
	char error[256];
	int64_t size_before, size_after; /* db_size */
	int64_t in_use_before, in_use_after;
	uint64_t duration_us; /* the defragmentation itself */
	uint64_t settle_us;   /* waiting for the cluster to be ready again */
};

struct kha_etcdops_defrag_report {
	struct kha_etcdops_defrag_member
		*members; /* owned, in the order they were (to be) processed */
	size_t n_members;
	int64_t reclaimed;  /* sum of size_before - size_after of the members done */
	bool nospace_alarm; /* a NOSPACE alarm was active before: disarm it now */
};
void kha_etcdops_defrag_report_release(struct kha_etcdops_defrag_report *r);

typedef void (*kha_etcdops_defrag_progress_fn)(void *userdata,
					       const struct kha_etcdops_defrag_member *m,
					       const char *what);

struct kha_etcdops_defrag_opts {
	const struct kha_etcd_config *cfg;
	const char *member;	    /* only this member (name or hex id); NULL = all, rolling */
	uint64_t defrag_timeout_us; /* one member's defragmentation (0 = 5 min) */
	uint64_t settle_timeout_us; /* the cluster ready again after it (0 = 1 min) */
	bool force;		    /* start even when the cluster is not ready */
	const volatile sig_atomic_t *cancel;
	kha_etcdops_defrag_progress_fn progress;
	void *userdata;
};

/*
 * Defragments the members one at a time in kha_etcdops_defrag_order, checking that the cluster is
 * ready before each and waiting (up to settle_timeout_us) until it is again after each; stops
 * at the first failure. Returns 0 when every member was done, -EAGAIN when the cluster was not
 * ready at the start (diag says why; nothing done), -ETIMEDOUT when it did not settle, or the
 * member's error; *ret holds what was done either way (release it).
 */
int kha_etcdops_defrag_rolling(const struct kha_etcdops_defrag_opts *o,
			       struct kha_etcdops_defrag_report *ret, struct kha_diag *d) KHA_WUR;

#endif
