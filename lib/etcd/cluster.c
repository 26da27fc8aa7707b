// SPDX-License-Identifier: MIT
/*
 * The cluster report: every endpoint and then every member probed in parallel, one thread and
 * one client per probe, so a dead member costs its own timeout and nothing more.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kha/etcd.h"
#include "kha/banned.h"

struct probe {
	const struct kha_etcd_config *cfg; /* shared, read-only */
	const char *const *urls;	   /* borrowed */
	size_t n_urls;
	uint64_t timeout_us;
	bool want_members;
	/* results */
	char *endpoint; /* the URL asked last (normalised) */
	int status_r;
	struct kha_etcd_status status;
	struct kha_diag status_d;
	int members_r;
	struct kha_etcd_member_list members;
	struct kha_diag members_d;
	size_t owner; /* phase 2: index of the member report */
	pthread_t thread;
	bool started;
};

static void *probe_run(void *arg)
{
	struct probe *p = arg;
	struct kha_etcd_config cfg = *p->cfg;
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;

	cfg.endpoints = (char **)p->urls;
	cfg.n_endpoints = p->n_urls;
	cfg.command_timeout_us = p->timeout_us;
	p->members_r = -EAGAIN;
	p->status_r = kha_etcd_new(&cfg, &c, &p->status_d);
	if (p->status_r < 0)
		return NULL;
	p->status_r = kha_etcd_status(c, &p->status, &p->status_d);
	p->endpoint = strdup(kha_etcd_endpoint(c));
	/* the member list only from an endpoint that answered its status */
	if (p->want_members && p->status_r == 0)
		p->members_r = kha_etcd_member_list(c, &p->members, &p->members_d);
	return NULL;
}

static void probes_run(struct probe *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i].started = pthread_create(&p[i].thread, NULL, probe_run, &p[i]) == 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i].started)
			pthread_join(p[i].thread, NULL);
		else
			probe_run(&p[i]);
	}
}

static void probes_free(struct probe *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].endpoint);
		kha_etcd_status_release(&p[i].status);
		kha_etcd_member_list_release(&p[i].members);
	}
	free(p);
}

static void member_report_release(struct kha_etcd_member_report *m)
{
	kha_etcd_member_release(&m->member);
	free(m->endpoint);
	free(m->error);
	kha_etcd_status_release(&m->status);
	for (size_t i = 0; i < m->n_errors; i++)
		free(m->errors[i]);
	free(m->errors);
	memset(m, 0, sizeof(*m));
}

void kha_etcd_cluster_report_release(struct kha_etcd_cluster_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_members; i++)
		member_report_release(&r->members[i]);
	free(r->members);
	free(r->members_from);
	kha_etcd_health_release(&r->health);
	memset(r, 0, sizeof(*r));
}

/* The probe's error without its "etcd <url>: " prefix (the report shows the URL apart). */
static char *error_text(const struct probe *p)
{
	const char *msg = p->status_d.msg;
	char prefix[1100];

	if (p->endpoint) {
		snprintf(prefix, sizeof(prefix), "etcd %s: ", p->endpoint);
		if (strncmp(msg, prefix, strlen(prefix)) == 0)
			msg += strlen(prefix);
	}
	return strdup(*msg ? msg : "no answer");
}

/* Moves a successful probe's status into the member's report. */
static int take_status(struct kha_etcd_member_report *m, struct probe *p)
{
	m->reachable = true;
	m->status = p->status;
	memset(&p->status, 0, sizeof(p->status));
	m->endpoint = p->endpoint ? strdup(p->endpoint) : NULL;
	return p->endpoint && !m->endpoint ? -ENOMEM : 0;
}

static int take_error(struct kha_etcd_member_report *m, const struct probe *p)
{
	m->reachable = false;
	m->error = error_text(p);
	m->endpoint = p->endpoint ? strdup(p->endpoint) : NULL;
	return !m->error || (p->endpoint && !m->endpoint) ? -ENOMEM : 0;
}

static bool has_url(const struct kha_etcd_member *m, const char *url)
{
	size_t ulen = strlen(url);

	for (size_t i = 0; url && i < m->n_client_urls; i++) {
		size_t len = strlen(m->client_urls[i]);
		while (len && m->client_urls[i][len - 1] == '/')
			len--;
		if (len == ulen && strncmp(m->client_urls[i], url, len) == 0)
			return true;
	}
	return false;
}

static struct kha_etcd_member_report *find_report(struct kha_etcd_cluster_report *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_members; i++)
		if (r->members[i].member.id == id)
			return &r->members[i];
	return NULL;
}

/* Sorts the status errors of every reachable member: alarms, "no leader", the rest. */
static int collect_errors(struct kha_etcd_cluster_report *r)
{
	for (size_t i = 0; i < r->n_members; i++) {
		struct kha_etcd_member_report *m = &r->members[i];

		if (!m->reachable)
			continue;
		for (size_t e = 0; e < m->status.n_errors; e++) {
			const char *err = m->status.errors[e];
			struct kha_etcd_alarm a;

			if (kha_etcd_alarm_from_status_error(err, &a) == 0 &&
			    (a.member_id == 0 || !find_report(r, a.member_id))) {
				/*
				 * on no member, or on one removed since (the alarm outlives it):
				 * not charged to the member that reports it
				 */
				if (a.type == KHA_ETCD_ALARM_NOSPACE)
					r->alarm_nospace_unnamed = true;
				else
					r->alarm_corrupt_unnamed = true;
				continue;
			}
			if (kha_etcd_alarm_from_status_error(err, &a) == 0) {
				struct kha_etcd_member_report *t = find_report(r, a.member_id);

				if (a.type == KHA_ETCD_ALARM_NOSPACE)
					t->alarm_nospace = true;
				else
					t->alarm_corrupt = true;
				continue;
			}
			if (strstr(err, "no leader"))
				continue; /* the leader field says it already */
			if (KHA_RESIZE(m->errors, m->n_errors + 1) < 0)
				return -ENOMEM;
			m->errors[m->n_errors] = strdup(err);
			if (!m->errors[m->n_errors])
				return -ENOMEM;
			m->n_errors++;
		}
	}
	return 0;
}

static int assess(struct kha_etcd_cluster_report *r, uint64_t lag_threshold)
{
	struct kha_etcd_member_health *h = calloc(r->n_members ? r->n_members : 1, sizeof(*h));
	int ret;

	if (!h)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_members; i++) {
		const struct kha_etcd_member_report *m = &r->members[i];

		h[i] = (struct kha_etcd_member_health){
			.id = m->member.id,
			.name = m->member.name,
			.is_learner = m->member.is_learner,
			.reachable = m->reachable,
			.error = m->error,
			.leader = m->reachable ? m->status.leader : 0,
			.raft_index = m->status.raft_index,
			.raft_applied_index = m->status.raft_applied_index,
			.alarm_nospace = m->alarm_nospace,
			.alarm_corrupt = m->alarm_corrupt,
			.errors = (const char *const *)m->errors,
			.n_errors = m->n_errors,
		};
	}
	ret = kha_etcd_health_assess(h, r->n_members, lag_threshold, &r->health);
	free(h);
	if (ret == 0 && r->alarm_corrupt_unnamed)
		ret = kha_etcd_health_add_unnamed_alarm(&r->health, KHA_ETCD_ALARM_CORRUPT);
	if (ret == 0 && r->alarm_nospace_unnamed)
		ret = kha_etcd_health_add_unnamed_alarm(&r->health, KHA_ETCD_ALARM_NOSPACE);
	return ret;
}

static int by_name(const void *a, const void *b)
{
	const struct kha_etcd_member *x = &((const struct kha_etcd_member_report *)a)->member;
	const struct kha_etcd_member *y = &((const struct kha_etcd_member_report *)b)->member;
	int c;

	if (!x->name[0] != !y->name[0])
		return x->name[0] ? -1 : 1;
	c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

int kha_etcd_cluster_report(const struct kha_etcd_config *cfg, uint64_t member_timeout_us,
			    uint64_t lag_threshold, struct kha_etcd_cluster_report *ret,
			    struct kha_diag *d)
{
	struct kha_etcd_cluster_report rep = {};
	struct probe *p1 = NULL, *p2 = NULL;
	size_t n1 = cfg->n_endpoints, n2 = 0, chosen = SIZE_MAX;
	struct kha_etcd_member_list *list;
	int r = -ENOMEM;

	memset(ret, 0, sizeof(*ret));
	if (!n1)
		return kha_diag_set(d, EINVAL, "no etcd endpoint given (--endpoints)");
	if (!member_timeout_us)
		member_timeout_us = cfg->command_timeout_us ? cfg->command_timeout_us
							    : KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US;
	p1 = calloc(n1, sizeof(*p1));
	if (!p1)
		goto nomem;
	for (size_t i = 0; i < n1; i++)
		p1[i] = (struct probe){
			.cfg = cfg,
			.urls = (const char *const *)&cfg->endpoints[i],
			.n_urls = 1,
			.timeout_us = member_timeout_us,
			.want_members = true,
		};
	probes_run(p1, n1);
	for (size_t i = 0; i < n1 && chosen == SIZE_MAX; i++)
		if (p1[i].members_r == 0)
			chosen = i;
	if (chosen == SIZE_MAX) {
		bool st = p1[0].status_r < 0;

		const char *first = st ? p1[0].status_d.msg : p1[0].members_d.msg;
		bool same = true;

		r = st ? p1[0].status_r : p1[0].members_r;
		kha_diag_set(d, r, "%s", first);
		/* a local cause (an unreadable --cacert) fails every endpoint alike: one error */
		for (size_t i = 1; i < n1 && same; i++)
			same = strcmp(p1[i].status_r < 0 ? p1[i].status_d.msg : p1[i].members_d.msg,
				      first) == 0;
		if (n1 > 1 && !same)
			kha_diag_append(d, " (and %zu more endpoint%s failed)", n1 - 1,
					n1 > 2 ? "s" : "");
		goto out;
	}

	list = &p1[chosen].members;
	rep.cluster_id = list->header.cluster_id;
	rep.members_from = strdup(p1[chosen].endpoint ? p1[chosen].endpoint : "");
	rep.members = calloc(list->n_members ? list->n_members : 1, sizeof(*rep.members));
	p2 = calloc(list->n_members ? list->n_members : 1, sizeof(*p2));
	if (!rep.members_from || !rep.members || !p2)
		goto nomem;
	for (size_t i = 0; i < list->n_members; i++) {
		struct kha_etcd_member_report *m = &rep.members[i];
		struct probe *known = NULL, *tried = NULL;

		m->member = list->members[i];
		memset(&list->members[i], 0, sizeof(list->members[i]));
		rep.n_members = i + 1;
		for (size_t j = 0; j < n1; j++) {
			if (p1[j].status_r == 0 && p1[j].status.header.member_id == m->member.id &&
			    !known)
				known = &p1[j];
			if (p1[j].status_r < 0 && p1[j].endpoint && !tried &&
			    has_url(&m->member, p1[j].endpoint))
				tried = &p1[j];
		}
		if (known) {
			if (take_status(m, known) < 0)
				goto nomem;
		} else if (tried) {
			if (take_error(m, tried) < 0)
				goto nomem;
		} else if (!m->member.n_client_urls) {
			m->error = strdup("not started yet (no client URLs)");
			if (!m->error)
				goto nomem;
		} else {
			p2[n2++] = (struct probe){
				.cfg = cfg,
				.urls = (const char *const *)m->member.client_urls,
				.n_urls = m->member.n_client_urls,
				.timeout_us = member_timeout_us,
				.want_members = false,
				.owner = i,
			};
		}
	}
	probes_run(p2, n2);
	for (size_t i = 0; i < n2; i++) {
		struct kha_etcd_member_report *m = &rep.members[p2[i].owner];

		if ((p2[i].status_r == 0 ? take_status(m, &p2[i]) : take_error(m, &p2[i])) < 0)
			goto nomem;
	}
	/* reports list members by name (etcd lists them by id), the unstarted last */
	qsort(rep.members, rep.n_members, sizeof(*rep.members), by_name);
	if (collect_errors(&rep) < 0 || assess(&rep, lag_threshold) < 0)
		goto nomem;
	*ret = rep;
	memset(&rep, 0, sizeof(rep));
	r = 0;
	goto out;
nomem:
	r = kha_diag_set(d, ENOMEM, "out of memory");
out:
	kha_etcd_cluster_report_release(&rep);
	probes_free(p1, n1);
	probes_free(p2, n2);
	return r;
}
