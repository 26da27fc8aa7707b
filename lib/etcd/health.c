// SPDX-License-Identifier: MIT
/*
 * The health verdict of an etcd cluster from its members' statuses: a pure function, so every
 * combination of members up, learners, leaders and alarms is unit-tested.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kha/etcd.h"
#include "kha/banned.h"

#define DEFAULT_LAG_THRESHOLD 1000

const char *kha_etcd_verdict_name(enum kha_etcd_verdict v)
{
	switch (v) {
	case KHA_ETCD_HEALTHY:
		return "healthy";
	case KHA_ETCD_DEGRADED:
		return "degraded";
	default:
		return "critical";
	}
}

void kha_etcd_health_release(struct kha_etcd_health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_warnings; i++)
		free(h->warnings[i]);
	free(h->warnings);
	memset(h, 0, sizeof(*h));
}

static int KHA_PRINTF(2, 3) warn(struct kha_etcd_health *h, const char *fmt, ...)
{
	char buf[512], *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s = strdup(buf);
	if (!s || KHA_RESIZE(h->warnings, h->n_warnings + 1) < 0) {
		free(s);
		return -ENOMEM;
	}
	h->warnings[h->n_warnings++] = s;
	return 0;
}

/* "etcd-1", or the hex id for an unnamed member, as etcdctl prints ids. */
static const char *member_label(char *buf, size_t size, const struct kha_etcd_member_health *m)
{
	if (m->name && *m->name)
		snprintf(buf, size, "%s", m->name);
	else
		snprintf(buf, size, "%llx", (unsigned long long)m->id);
	return buf;
}

static long find_member(const struct kha_etcd_member_health *m, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].id == id)
			return (long)i;
	return -1;
}

#define TRYW(expr)                  \
	do {                        \
		if ((expr) < 0)     \
			goto nomem; \
	} while (0)

/* The leader most reachable members report (0 when none does); counts disagreements. */
static uint64_t agreed_leader(const struct kha_etcd_member_health *m, size_t n, size_t *ret_kinds)
{
	uint64_t best = 0;
	size_t best_votes = 0, kinds = 0;

	for (size_t i = 0; i < n; i++) {
		size_t votes = 0;
		bool seen = false;

		if (!m[i].reachable || !m[i].leader)
			continue;
		for (size_t j = 0; j < i; j++)
			if (m[j].reachable && m[j].leader == m[i].leader)
				seen = true;
		if (seen)
			continue;
		kinds++;
		for (size_t j = 0; j < n; j++)
			if (m[j].reachable && m[j].leader == m[i].leader)
				votes++;
		/* on a tie, prefer the member that says it leads itself */
		if (votes > best_votes ||
		    (votes == best_votes && find_member(m, n, m[i].leader) >= 0 &&
		     m[find_member(m, n, m[i].leader)].leader == m[i].leader)) {
			best = m[i].leader;
			best_votes = votes;
		}
	}
	*ret_kinds = kinds;
	return best;
}

/* Members down, and who leads: the warnings into h, h->leader and h->leader_index. */
static int assess_leader(struct kha_etcd_health *h, const struct kha_etcd_member_health *m,
			 size_t n)
{
	size_t leader_kinds = 0;
	char label[128];

	for (size_t i = 0; i < n; i++) {
		if (m[i].reachable)
			continue;
		member_label(label, sizeof(label), &m[i]);
		TRYW(warn(h, "%s %s is down: %s", m[i].is_learner ? "learner" : "member", label,
			  m[i].error && *m[i].error ? m[i].error : "no answer"));
	}
	h->leader = agreed_leader(m, n, &leader_kinds);
	if (h->leader)
		h->leader_index = find_member(m, n, h->leader);
	if (leader_kinds > 1) {
		TRYW(warn(h, "members disagree about the leader (%zu different leaders reported)",
			  leader_kinds));
	}
	for (size_t i = 0; h->leader && i < n; i++) {
		if (m[i].reachable && !m[i].leader)
			TRYW(warn(h, "member %s has no leader",
				  member_label(label, sizeof(label), &m[i])));
	}
	if (h->leader && h->leader_index < 0)
		TRYW(warn(h, "the leader %llx is not in the member list",
			  (unsigned long long)h->leader));
	else if (h->leader && !m[h->leader_index].reachable)
		TRYW(warn(h, "the reported leader %s does not answer (election pending?)",
			  member_label(label, sizeof(label), &m[h->leader_index])));
	return 0;
nomem:
	return -ENOMEM;
}

/* Alarms, lag and reported errors of each member, then the cluster's shape, into h. */
static int assess_members(struct kha_etcd_health *h, const struct kha_etcd_member_health *m,
			  size_t n, uint64_t lag_threshold, uint64_t max_index, bool *corrupt,
			  bool *nospace)
{
	char label[128];

	for (size_t i = 0; i < n; i++) {
		member_label(label, sizeof(label), &m[i]);
		if (m[i].alarm_corrupt) {
			*corrupt = true;
			TRYW(warn(h,
				  "member %s has a CORRUPT alarm: its data differs from the "
				  "others (stop its etcd, then: kha etcd member replace %s --name "
				  "NEW --peer-urls URL)",
				  label, label));
		}
		if (m[i].alarm_nospace) {
			*nospace = true;
			TRYW(warn(h,
				  "member %s has a NOSPACE alarm: the cluster refuses writes "
				  "(kha etcd defrag, then kha etcd alarm disarm --alarm NOSPACE)",
				  label));
		}
		if (!m[i].reachable)
			continue;
		if (max_index - m[i].raft_index > lag_threshold)
			TRYW(warn(h, "member %s is %llu raft entries behind", label,
				  (unsigned long long)(max_index - m[i].raft_index)));
		else if (m[i].raft_applied_index && m[i].raft_index > m[i].raft_applied_index &&
			 m[i].raft_index - m[i].raft_applied_index > lag_threshold)
			TRYW(warn(h, "member %s has %llu committed entries not yet applied", label,
				  (unsigned long long)(m[i].raft_index - m[i].raft_applied_index)));
		for (size_t e = 0; e < m[i].n_errors; e++)
			TRYW(warn(h, "member %s reports: %s", label, m[i].errors[e]));
	}
	if (h->voters == 1)
		TRYW(warn(h, "a single voting member: any failure stops the cluster "
			     "(run 3 or 5 members)"));
	else if (h->voters && h->voters % 2 == 0)
		TRYW(warn(h,
			  "%zu voting members: an even count tolerates no more failures than %zu "
			  "(use an odd count)",
			  h->voters, h->voters - 1));
	return 0;
nomem:
	return -ENOMEM;
}

/* The verdict and the one-line summary of h. */
static void summarize(struct kha_etcd_health *h, const struct kha_etcd_member_health *m,
		      bool corrupt, bool nospace)
{
	char lbuf[128], more[64] = "";

	if (!h->quorum_ok || !h->leader || corrupt || nospace)
		h->verdict = KHA_ETCD_CRITICAL;
	else if (h->voters_up < h->voters || h->n_warnings || h->can_lose < 1)
		h->verdict = KHA_ETCD_DEGRADED;
	else
		h->verdict = KHA_ETCD_HEALTHY;

	if (h->learners)
		snprintf(more, sizeof(more), " + %zu/%zu learner%s", h->learners_up, h->learners,
			 h->learners == 1 ? "" : "s");
	if (h->leader_index >= 0)
		member_label(lbuf, sizeof(lbuf), &m[h->leader_index]);
	else
		snprintf(lbuf, sizeof(lbuf), "%llx", (unsigned long long)h->leader);

	if (!h->voters)
		snprintf(h->summary, sizeof(h->summary), "critical: no voting member");
	else if (!h->quorum_ok)
		snprintf(h->summary, sizeof(h->summary),
			 "critical: %zu/%zu members up%s, quorum lost", h->voters_up, h->voters,
			 more);
	else if (!h->leader)
		snprintf(h->summary, sizeof(h->summary),
			 "critical: %zu/%zu members up%s, no leader", h->voters_up, h->voters,
			 more);
	else if (corrupt || nospace)
		snprintf(h->summary, sizeof(h->summary),
			 "critical: %zu/%zu members up%s, leader %s, "
			 "%s alarm active",
			 h->voters_up, h->voters, more, lbuf, corrupt ? "CORRUPT" : "NOSPACE");
	else if (h->voters_up < h->voters)
		snprintf(h->summary, sizeof(h->summary),
			 "%s: %zu/%zu members up%s, quorum holds, can lose %d more",
			 kha_etcd_verdict_name(h->verdict), h->voters_up, h->voters, more,
			 h->can_lose);
	else
		snprintf(h->summary, sizeof(h->summary),
			 "%s: %zu/%zu members up%s, leader %s, can lose %d member%s",
			 kha_etcd_verdict_name(h->verdict), h->voters_up, h->voters, more, lbuf,
			 h->can_lose, h->can_lose == 1 ? "" : "s");
}

int kha_etcd_health_assess(const struct kha_etcd_member_health *m, size_t n, uint64_t lag_threshold,
			   struct kha_etcd_health *ret)
{
	struct kha_etcd_health h = {.leader_index = -1};
	bool nospace = false, corrupt = false;
	uint64_t max_index = 0;

	if (!lag_threshold)
		lag_threshold = DEFAULT_LAG_THRESHOLD;
	h.members = n;
	for (size_t i = 0; i < n; i++) {
		if (m[i].is_learner) {
			h.learners++;
			h.learners_up += m[i].reachable;
		} else {
			h.voters++;
			h.voters_up += m[i].reachable;
		}
		if (m[i].reachable && m[i].raft_index > max_index)
			max_index = m[i].raft_index;
	}
	h.quorum = h.voters / 2 + 1;
	h.quorum_ok = h.voters > 0 && h.voters_up >= h.quorum;
	h.can_lose = h.quorum_ok ? (int)(h.voters_up - h.quorum) : 0;

	if (assess_leader(&h, m, n) < 0 ||
	    assess_members(&h, m, n, lag_threshold, max_index, &corrupt, &nospace) < 0) {
		kha_etcd_health_release(&h);
		return -ENOMEM;
	}
	summarize(&h, m, corrupt, nospace);
	*ret = h;
	return 0;
}

int kha_etcd_health_add_unnamed_alarm(struct kha_etcd_health *h, enum kha_etcd_alarm_type type)
{
	bool corrupt = type == KHA_ETCD_ALARM_CORRUPT;

	TRYW(warn(h, corrupt ? "a CORRUPT alarm names no member of the cluster: the members' "
			       "data differ (kha etcd check consistency names the member that "
			       "differs; when they all agree, that member was removed already: "
			       "kha etcd alarm disarm --alarm CORRUPT)"
			     : "a NOSPACE alarm names no member: the cluster refuses writes "
			       "(kha etcd defrag, then kha etcd alarm disarm --alarm NOSPACE)"));
	if (h->verdict != KHA_ETCD_CRITICAL || !strstr(h->summary, " alarm active")) {
		char was[sizeof(h->summary)];

		snprintf(was, sizeof(was), "%s", h->summary);
		/* "critical: <the counts>, CORRUPT alarm active (no member named)" */
		snprintf(h->summary, sizeof(h->summary),
			 "critical: %s, %s alarm active (no member named)",
			 strchr(was, ':') ? strchr(was, ':') + 2 : was,
			 corrupt ? "CORRUPT" : "NOSPACE");
	}
	h->verdict = KHA_ETCD_CRITICAL;
	return 0;
nomem:
	return -ENOMEM;
}
