// SPDX-License-Identifier: MIT
/*
 * Consistency check: etcd's own corruption checks are off by default, so a member whose data
 * silently diverged keeps serving it. HashKV at one revision that every member has, and not
 * compacted away, must give the same hash everywhere.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kha/etcd-grpc.h"
#include "kha/etcdops.h"
#include "kha/banned.h"

#define ATTEMPTS 3

const char *kha_etcdops_consistency_state_name(enum kha_etcdops_consistency_state s)
{
	switch (s) {
	case KHA_ETCDOPS_CONSISTENCY_MEMBER_OK:
		return "ok";
	case KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED:
		return "diverged";
	case KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE:
		return "unreachable";
	case KHA_ETCDOPS_CONSISTENCY_MEMBER_ERROR:
		return "error";
	case KHA_ETCDOPS_CONSISTENCY_MEMBER_NOT_COMPARED:
		return "not-compared";
	}
	return "?";
}

const char *kha_etcdops_consistency_verdict_name(enum kha_etcdops_consistency_verdict v)
{
	switch (v) {
	case KHA_ETCDOPS_CONSISTENCY_CONSISTENT:
		return "consistent";
	case KHA_ETCDOPS_CONSISTENCY_INCOMPLETE:
		return "incomplete";
	case KHA_ETCDOPS_CONSISTENCY_RETRY:
		return "retry";
	case KHA_ETCDOPS_CONSISTENCY_DIVERGED:
		return "diverged";
	case KHA_ETCDOPS_CONSISTENCY_UNKNOWN:
		return "unknown";
	}
	return "?";
}

void kha_etcdops_consistency_report_release(struct kha_etcdops_consistency_report *r)
{
	if (!r)
		return;
	free(r->members);
	memset(r, 0, sizeof(*r));
}

static const char *label(const struct kha_etcdops_consistency_member *m)
{
	return m->name[0] ? m->name : m->endpoint;
}

/* Appends the names of members in state s: " (etcd-1, etcd-2)". */
static void names_in(char *buf, size_t size, const struct kha_etcdops_consistency_report *r,
		     enum kha_etcdops_consistency_state s)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n_members && o + 1 < size; i++)
		if (r->members[i].state == s)
			o += (size_t)snprintf(buf + o, size - o, "%s%s", o ? ", " : "",
					      label(&r->members[i]));
}

/*
 * Who can be compared at all: each member OK, UNREACHABLE or ERROR (its hash failed, or is of
 * another revision); *ret_unchecked counts the last two. Returns false when the comparable
 * members answered for different compact revisions (not comparable: r says so).
 */
static bool classify(struct kha_etcdops_consistency_report *r, size_t *ret_unchecked)
{
	struct kha_etcdops_consistency_member *m = r->members;
	bool have_compact = false, compact_differs = false;
	int64_t compact = 0;

	*ret_unchecked = 0;
	for (size_t i = 0; i < r->n_members; i++) {
		if (!m[i].reachable) {
			m[i].state = KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE;
			(*ret_unchecked)++;
		} else if (m[i].hash_r != 0 ||
			   (m[i].hash_revision && m[i].hash_revision != r->revision)) {
			m[i].state = KHA_ETCDOPS_CONSISTENCY_MEMBER_ERROR;
			if (m[i].hash_r == 0)
				snprintf(m[i].error, sizeof(m[i].error),
					 "hashed revision %" PRId64 " instead of %" PRId64,
					 m[i].hash_revision, r->revision);
			(*ret_unchecked)++;
		} else {
			m[i].state = KHA_ETCDOPS_CONSISTENCY_MEMBER_OK;
			if (!have_compact) {
				compact = m[i].compact_revision;
				have_compact = true;
			} else if (m[i].compact_revision != compact) {
				compact_differs = true;
			}
		}
	}
	r->compact_revision = compact;
	if (!compact_differs)
		return true;
	for (size_t i = 0; i < r->n_members; i++)
		if (m[i].state == KHA_ETCDOPS_CONSISTENCY_MEMBER_OK)
			m[i].state = KHA_ETCDOPS_CONSISTENCY_MEMBER_NOT_COMPARED;
	r->verdict = KHA_ETCDOPS_CONSISTENCY_RETRY;
	snprintf(r->summary, sizeof(r->summary),
		 "not comparable: the members answered for different compact revisions "
		 "(a compaction was being applied); run the check again");
	return false;
}

/*
 * The largest group of equal hashes among the OK members: its hash in r->hash, r->compared and
 * r->agreeing, the others DIVERGED. Returns false when there is none (nothing compared, or a tie
 * between groups: every member DIVERGED), with r's verdict and summary said.
 */
static bool majority(struct kha_etcdops_consistency_report *r)
{
	struct kha_etcdops_consistency_member *m = r->members;
	size_t n = r->n_members, best = 0, best_count = 0;
	bool tie = false;

	for (size_t i = 0; i < n; i++) {
		size_t count = 0;

		if (m[i].state != KHA_ETCDOPS_CONSISTENCY_MEMBER_OK)
			continue;
		r->compared++;
		for (size_t j = 0; j < n; j++)
			if (m[j].state == KHA_ETCDOPS_CONSISTENCY_MEMBER_OK &&
			    m[j].hash == m[i].hash)
				count++;
		if (count > best_count) {
			best_count = count;
			best = i;
			tie = false;
		} else if (count == best_count && m[i].hash != m[best].hash) {
			tie = true;
		}
	}
	if (r->compared == 0) {
		r->verdict = KHA_ETCDOPS_CONSISTENCY_UNKNOWN;
		snprintf(r->summary, sizeof(r->summary),
			 "unknown: no member could be checked at revision %" PRId64, r->revision);
		return false;
	}
	if (tie) {
		for (size_t i = 0; i < n; i++)
			if (m[i].state == KHA_ETCDOPS_CONSISTENCY_MEMBER_OK)
				m[i].state = KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED;
		r->verdict = KHA_ETCDOPS_CONSISTENCY_DIVERGED;
		snprintf(r->summary, sizeof(r->summary),
			 "DIVERGED: the members disagree at revision %" PRId64
			 " and no majority tells which is right",
			 r->revision);
		return false;
	}
	r->hash = m[best].hash;
	for (size_t i = 0; i < n; i++) {
		if (m[i].state != KHA_ETCDOPS_CONSISTENCY_MEMBER_OK)
			continue;
		if (m[i].hash == r->hash)
			r->agreeing++;
		else
			m[i].state = KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED;
	}
	return true;
}

void kha_etcdops_consistency_compare(struct kha_etcdops_consistency_report *r)
{
	size_t n = r->n_members, unchecked;
	char who[256];

	r->compared = r->agreeing = 0;
	r->hash = 0;
	if (!classify(r, &unchecked) || !majority(r))
		return;
	if (r->agreeing < r->compared) {
		names_in(who, sizeof(who), r, KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED);
		r->verdict = KHA_ETCDOPS_CONSISTENCY_DIVERGED;
		if (r->compared - r->agreeing == 1)
			snprintf(r->summary, sizeof(r->summary),
				 "DIVERGED: %s differs from the other %zu member%s at revision "
				 "%" PRId64 " (stop its etcd, then: kha etcd member replace %s "
				 "--name NEW --peer-urls URL)",
				 who, r->agreeing, r->agreeing == 1 ? "" : "s", r->revision, who);
		else
			snprintf(r->summary, sizeof(r->summary),
				 "DIVERGED: %s differ from the other %zu member%s at revision "
				 "%" PRId64
				 " (replace them one at a time: stop one's etcd, then kha "
				 "etcd member replace NAME --name NEW --peer-urls URL)",
				 who, r->agreeing, r->agreeing == 1 ? "" : "s", r->revision);
		return;
	}
	if (unchecked) {
		char err[256];

		names_in(who, sizeof(who), r, KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE);
		names_in(err, sizeof(err), r, KHA_ETCDOPS_CONSISTENCY_MEMBER_ERROR);
		r->verdict = KHA_ETCDOPS_CONSISTENCY_INCOMPLETE;
		snprintf(r->summary, sizeof(r->summary),
			 "incomplete: %zu/%zu members agree at revision %" PRId64
			 "; not checked: %s%s%s",
			 r->agreeing, n, r->revision, who, who[0] && err[0] ? ", " : "", err);
		return;
	}
	r->verdict = KHA_ETCDOPS_CONSISTENCY_CONSISTENT;
	snprintf(r->summary, sizeof(r->summary),
		 "consistent: %zu/%zu members have the same data at revision %" PRId64
		 " (hash %08x)",
		 r->agreeing, n, r->revision, r->hash);
}

uint64_t kha_etcdops_consistency_suspect(const struct kha_etcdops_consistency_report *r)
{
	const struct kha_etcdops_consistency_member *diverged = NULL, *unreachable = NULL;
	size_t n_diverged = 0, n_unreachable = 0, n_other = 0;

	for (size_t i = 0; i < r->n_members; i++) {
		const struct kha_etcdops_consistency_member *m = &r->members[i];

		switch (m->state) {
		case KHA_ETCDOPS_CONSISTENCY_MEMBER_OK:
			break;
		case KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED:
			diverged = m;
			n_diverged++;
			break;
		case KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE:
			unreachable = m;
			n_unreachable++;
			break;
		default:
			n_other++;
			break;
		}
	}
	if (r->agreeing < 2)
		return 0;
	if (r->verdict == KHA_ETCDOPS_CONSISTENCY_DIVERGED && n_diverged == 1)
		return diverged->id;
	if (r->verdict == KHA_ETCDOPS_CONSISTENCY_INCOMPLETE && !n_diverged && !n_other &&
	    n_unreachable == 1)
		return unreachable->id;
	return 0;
}

/* ---- probes ---------------------------------------------------------------------------------- */

struct hash_probe {
	const struct kha_etcd_config *cfg;
	struct kha_etcdops_consistency_member *m;
	int64_t revision;
	uint64_t timeout_us;
	pthread_t thread;
	bool started;
};

static void *hash_run(void *arg)
{
	struct hash_probe *p = arg;
	struct kha_pb_hash_kv h = {};
	struct kha_diag d = {};
	const char *msg;

	p->m->hash_r =
		kha_etcd_hash_kv_grpc(p->cfg, p->m->endpoint, p->revision, p->timeout_us, &h, &d);
	if (p->m->hash_r == 0) {
		p->m->hash = h.hash;
		p->m->compact_revision = h.compact_revision;
		/* at revision 0 etcd hashes its current revision, the one its header carries
		 * (before 3.5.? the reply has no hash_revision) */
		p->m->hash_revision = h.hash_revision	 ? h.hash_revision
				      : p->revision == 0 ? h.header.revision
							 : 0;
		p->m->error[0] = '\0';
	} else {
		/* the endpoint is in its own column */
		msg = d.msg;
		if (strncmp(msg, "etcd ", 5) == 0 && strstr(msg, ": HashKV: "))
			msg = strstr(msg, ": HashKV: ") + 10;
		snprintf(p->m->error, sizeof(p->m->error), "%s", msg);
	}
	return NULL;
}

/* HashKV of every reachable member at revision (0: each one's current), in parallel. */
static void hash_all(const struct kha_etcd_config *cfg, struct kha_etcdops_consistency_report *out,
		     struct hash_probe *probes, int64_t revision, uint64_t timeout_us,
		     bool *ret_compacted)
{
	*ret_compacted = false;
	for (size_t i = 0; i < out->n_members; i++) {
		if (!out->members[i].reachable)
			continue;
		probes[i] = (struct hash_probe){.cfg = cfg,
						.m = &out->members[i],
						.revision = revision,
						.timeout_us = timeout_us};
		probes[i].started =
			pthread_create(&probes[i].thread, NULL, hash_run, &probes[i]) == 0;
		if (!probes[i].started)
			hash_run(&probes[i]);
	}
	for (size_t i = 0; i < out->n_members; i++) {
		if (probes[i].started)
			pthread_join(probes[i].thread, NULL);
		probes[i].started = false;
		if (out->members[i].reachable && out->members[i].hash_r == -ERANGE &&
		    strstr(out->members[i].error, "compacted"))
			*ret_compacted = true;
	}
}

static bool none_hashed(const struct kha_etcdops_consistency_report *r)
{
	for (size_t i = 0; i < r->n_members; i++)
		if (r->members[i].reachable && r->members[i].hash_r == 0)
			return false;
	return true;
}

static int64_t first_hashed_revision(const struct kha_etcdops_consistency_report *r)
{
	for (size_t i = 0; i < r->n_members; i++)
		if (r->members[i].reachable && r->members[i].hash_r == 0)
			return r->members[i].hash_revision;
	return r->revision;
}

/* Whether every member that answered hashed the same revision (else: a write came between). */
static bool same_hashed_revision(const struct kha_etcdops_consistency_report *r)
{
	int64_t first = first_hashed_revision(r);

	for (size_t i = 0; i < r->n_members; i++)
		if (r->members[i].reachable && r->members[i].hash_r == 0 &&
		    r->members[i].hash_revision != first)
			return false;
	return true;
}

static int one_attempt(const struct kha_etcd_config *cfg, uint64_t timeout_us,
		       struct kha_etcdops_consistency_report *out, bool *ret_compacted,
		       struct kha_diag *d)
{
	struct kha_etcd_cluster_report rep = {};
	struct hash_probe *probes = NULL;
	int64_t rev = 0;
	int r;

	*ret_compacted = false;
	r = kha_etcd_cluster_report(cfg, timeout_us, 0, &rep, d);
	if (r < 0)
		return r;
	out->members = calloc(rep.n_members ? rep.n_members : 1, sizeof(*out->members));
	probes = calloc(rep.n_members ? rep.n_members : 1, sizeof(*probes));
	if (!out->members || !probes) {
		free(probes);
		kha_etcd_cluster_report_release(&rep);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	out->n_members = rep.n_members;
	for (size_t i = 0; i < rep.n_members; i++) {
		const struct kha_etcd_member_report *mr = &rep.members[i];
		struct kha_etcdops_consistency_member *m = &out->members[i];

		m->id = mr->member.id;
		m->is_learner = mr->member.is_learner;
		snprintf(m->name, sizeof(m->name), "%s", mr->member.name);
		snprintf(m->endpoint, sizeof(m->endpoint), "%s",
			 mr->endpoint
				 ? mr->endpoint
				 : (mr->member.n_client_urls ? mr->member.client_urls[0] : ""));
		m->reachable = mr->reachable;
		if (!mr->reachable) {
			snprintf(m->error, sizeof(m->error), "%s",
				 mr->error ? mr->error : "no answer");
			continue;
		}
		m->revision = mr->status.header.revision;
		if (!rev || m->revision < rev)
			rev = m->revision;
	}
	kha_etcd_cluster_report_release(&rep);
	out->revision = rev;
	hash_all(cfg, out, probes, rev, timeout_us, ret_compacted);
	if (*ret_compacted && none_hashed(out)) {
		/*
		 * Compacted at the common revision itself (an operator compacts a quiet cluster at
		 * its current revision before a defrag): etcd hashes no revision at or before its
		 * compaction. Hash the current revision instead; when every member is at the same
		 * one the hashes compare exactly as well, and the replies carry the compaction.
		 */
		hash_all(cfg, out, probes, 0, timeout_us, ret_compacted);
		out->revision = first_hashed_revision(out);
		*ret_compacted = !same_hashed_revision(out);
	}
	free(probes);
	kha_etcdops_consistency_compare(out);
	return 0;
}

int kha_etcdops_consistency_check(const struct kha_etcd_config *cfg, uint64_t member_timeout_us,
				  struct kha_etcdops_consistency_report *ret, struct kha_diag *d)
{
	struct kha_etcdops_consistency_report rep = {};
	bool compacted = false;
	int r = 0;

	if (!member_timeout_us)
		member_timeout_us = cfg->command_timeout_us ? cfg->command_timeout_us
							    : KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US;
	for (unsigned a = 1; a <= ATTEMPTS; a++) {
		kha_etcdops_consistency_report_release(&rep);
		r = one_attempt(cfg, member_timeout_us, &rep, &compacted, d);
		rep.attempts = a;
		if (r < 0)
			break;
		/* a compaction overtook the common revision, or moved meanwhile: again */
		if (!compacted && rep.verdict != KHA_ETCDOPS_CONSISTENCY_RETRY)
			break;
	}
	if (r < 0) {
		kha_etcdops_consistency_report_release(&rep);
		return r;
	}
	*ret = rep;
	return 0;
}
