// SPDX-License-Identifier: MIT
/*
 * Membership operations around the guards: finding members, checking peer URLs, the flags a
 * new member starts with, and the waits (started, caught up, promoted) of a safe change.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kha/etcdops.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define POLL_US (500 * KHA_USEC_PER_MSEC)

int kha_etcdops_member_find(const struct kha_etcd_cluster_report *rep, const char *name_or_id,
			    struct kha_diag *d)
{
	long found = -1;
	char list[256] = "";
	size_t o = 0;
	char *end;
	unsigned long long id;

	for (size_t i = 0; i < rep->n_members; i++) {
		if (strcmp(rep->members[i].member.name, name_or_id) == 0) {
			if (found >= 0)
				return kha_diag_set(d, EEXIST,
						    "two members are named '%s': use the id",
						    name_or_id);
			found = (long)i;
		}
	}
	if (found >= 0)
		return (int)found;
	errno = 0;
	id = strtoull(name_or_id, &end, 16);
	if (*name_or_id && !*end && errno == 0) {
		for (size_t i = 0; i < rep->n_members; i++)
			if (rep->members[i].member.id == id)
				return (int)i;
	}
	for (size_t i = 0; i < rep->n_members && o < sizeof(list); i++) {
		const struct kha_etcd_member *m = &rep->members[i].member;
		if (m->name[0])
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s (%" PRIx64 ")",
					      i ? ", " : "", m->name, m->id);
		else
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%sunstarted %" PRIx64,
					      i ? ", " : "", m->id);
	}
	return kha_diag_set(d, ENOENT, "no member named or with id '%s' (members: %s)", name_or_id,
			    list);
}

static void name_key(char *buf, size_t size, uint64_t id)
{
	snprintf(buf, size, KHA_ETCDOPS_MEMBER_NAME_PREFIX "%" PRIx64, id);
}

int kha_etcdops_member_name_record(struct kha_etcd *c, uint64_t id, const char *name,
				   struct kha_diag *d)
{
	char key[64];
	struct kha_etcd_put_req req = {.key = key, .value = name};

	name_key(key, sizeof(key), id);
	return kha_etcd_put(c, &req, NULL, d);
}

int kha_etcdops_member_name_forget(struct kha_etcd *c, uint64_t id, struct kha_diag *d)
{
	char key[64];
	struct kha_etcd_delete_req req = {.r = {.key = key}};

	name_key(key, sizeof(key), id);
	return kha_etcd_delete(c, &req, NULL, d);
}

int kha_etcdops_member_name_lookup(struct kha_etcd *c, const struct kha_etcd_cluster_report *rep,
				   const char *name, struct kha_diag *d)
{
	for (size_t i = 0; i < rep->n_members; i++) {
		const struct kha_etcd_member *m = &rep->members[i].member;
		struct kha_etcd_kv kv = {};
		char key[64];
		bool match;
		int r;

		if (m->name[0])
			continue;
		name_key(key, sizeof(key), m->id);
		r = kha_etcd_get(c, key, &kv, d);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		match = strcmp(kv.value, name) == 0;
		kha_etcd_kv_release(&kv);
		if (match)
			return (int)i;
	}
	return -ENOENT;
}

int kha_etcdops_member_check_peer_url(const char *url, struct kha_diag *d)
{
	const char *host, *port, *p;

	if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		return kha_diag_set(d, EINVAL, "peer URL '%s': must start with http:// or https://",
				    url);
	if (*host == '[') {
		p = strchr(host, ']');
		if (!p || p == host + 1)
			return kha_diag_set(d, EINVAL, "peer URL '%s': malformed IPv6 address",
					    url);
		port = p + 1;
	} else {
		port = strchr(host, ':');
		if (!port || port == host)
			return kha_diag_set(d, EINVAL, "peer URL '%s': needs host:port", url);
		for (p = host; p < port; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
				return kha_diag_set(d, EINVAL, "peer URL '%s': bad host name", url);
	}
	if (*port != ':' || !port[1])
		return kha_diag_set(d, EINVAL, "peer URL '%s': needs a port", url);
	for (p = port + 1; *p; p++) {
		if (*p == '/' && !p[1])
			break;
		if (*p < '0' || *p > '9')
			return kha_diag_set(d, EINVAL,
					    "peer URL '%s': a port number and nothing after it",
					    url);
	}
	{
		unsigned long v = strtoul(port + 1, NULL, 10);
		if (v == 0 || v > 65535)
			return kha_diag_set(d, EINVAL, "peer URL '%s': port out of range", url);
	}
	return 0;
}

void kha_etcdops_member_start_release(struct kha_etcdops_member_start *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->initial_cluster);
	free(s->initial_advertise_peer_urls);
	memset(s, 0, sizeof(*s));
}

/* Appends "sep" + s to *buf (a malloc'd string). */
static int append(char **buf, size_t *len, const char *sep, const char *s)
{
	size_t add = strlen(sep) + strlen(s);
	char *p = realloc(*buf, *len + add + 1);

	if (!p)
		return -ENOMEM;
	snprintf(p + *len, add + 1, "%s%s", sep, s);
	*buf = p;
	*len += add;
	return 0;
}

int kha_etcdops_member_start_flags(const struct kha_etcd_member_list *members, uint64_t new_id,
				   const char *new_name, struct kha_etcdops_member_start *ret)
{
	struct kha_etcdops_member_start s = {};
	size_t clen = 0, plen = 0;
	bool found = false;
	int r = 0;

	s.name = strdup(new_name);
	s.initial_cluster = strdup("");
	s.initial_advertise_peer_urls = strdup("");
	if (!s.name || !s.initial_cluster || !s.initial_advertise_peer_urls)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < members->n_members; i++) {
		const struct kha_etcd_member *m = &members->members[i];
		bool self = m->id == new_id;
		const char *name = self ? new_name : m->name;

		found |= self;
		for (size_t u = 0; r == 0 && u < m->n_peer_urls; u++) {
			char entry[1024];

			snprintf(entry, sizeof(entry), "%s=%s", name, m->peer_urls[u]);
			r = append(&s.initial_cluster, &clen, clen ? "," : "", entry);
			if (r == 0 && self)
				r = append(&s.initial_advertise_peer_urls, &plen, plen ? "," : "",
					   m->peer_urls[u]);
		}
	}
	if (r == 0 && !found)
		r = -ENOENT;
	if (r < 0) {
		kha_etcdops_member_start_release(&s);
		return r;
	}
	*ret = s;
	return 0;
}

/* ---- waits -------------------------------------------------------------------------------- */

static void KHA_PRINTF(3, 4)
	progress(kha_etcdops_member_progress_fn fn, void *userdata, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fn(userdata, buf);
}

static uint64_t leader_index(const struct kha_etcd_cluster_report *rep)
{
	if (rep->health.leader_index >= 0 && rep->members[rep->health.leader_index].reachable)
		return rep->members[rep->health.leader_index].status.raft_index;
	return 0;
}

struct started {
	const struct kha_etcd_config *cfg;
	uint64_t id, lag;
	kha_etcdops_member_progress_fn fn;
	void *userdata;
	char last[256];
	struct kha_diag *d;
};

/* One look at member s->id: 1 started (and caught up), 0 not yet (s->last says why), -ENOENT. */
static int started_poll(void *userdata, char *text, size_t size)
{
	struct started *s = userdata;
	struct kha_etcd_cluster_report rep = {};
	const struct kha_etcd_member_report *m = NULL;
	struct kha_diag rd = {};
	int r = kha_etcd_cluster_report(s->cfg, 0, 0, &rep, &rd);

	for (size_t i = 0; r == 0 && i < rep.n_members; i++)
		if (rep.members[i].member.id == s->id)
			m = &rep.members[i];
	if (r < 0) {
		snprintf(s->last, sizeof(s->last), "cluster: %s", rd.msg);
	} else if (!m) {
		r = kha_diag_set(s->d, ENOENT, "member %" PRIx64 " was removed meanwhile", s->id);
	} else if (!m->member.name[0]) {
		snprintf(s->last, sizeof(s->last), "not started yet");
	} else if (!m->reachable) {
		snprintf(s->last, sizeof(s->last), "started, not answering: %s",
			 m->error ? m->error : "?");
	} else {
		uint64_t li = leader_index(&rep), mi = m->status.raft_index;

		if (!m->member.is_learner || (li && mi + s->lag >= li)) {
			progress(s->fn, s->userdata,
				 "%s started, raft index %" PRIu64 " (leader %" PRIu64 ")",
				 m->member.name, mi, li);
			r = 1;
		} else {
			snprintf(s->last, sizeof(s->last),
				 "%s catching up: raft index %" PRIu64 " of %" PRIu64,
				 m->member.name, mi, li);
		}
	}
	kha_etcd_cluster_report_release(&rep);
	if (r == 0)
		snprintf(text, size, "waiting for member %" PRIx64 ": %s", s->id, s->last);
	return r < 0 && r != -ENOENT ? 0 : r; /* an unanswered report: try again */
}

int kha_etcdops_member_wait_started(const struct kha_etcd_config *cfg, uint64_t id, uint64_t lag,
				    uint64_t timeout_us, const volatile sig_atomic_t *cancel,
				    kha_etcdops_member_progress_fn fn, void *userdata,
				    struct kha_diag *d)
{
	struct started s = {.cfg = cfg,
			    .id = id,
			    .lag = lag,
			    .fn = fn,
			    .userdata = userdata,
			    .last = "no answer yet",
			    .d = d};
	char dur[32];
	int r = kha_etcdops_wait(kha_now_us() + timeout_us, POLL_US, cancel, started_poll, &s, fn,
				 userdata);

	if (r == -ETIMEDOUT)
		return kha_diag_set(d, ETIMEDOUT, "member %" PRIx64 " not ready within %s: %s", id,
				    kha_format_duration(dur, sizeof(dur), timeout_us), s.last);
	if (r == -ECANCELED)
		return kha_diag_set(d, ECANCELED, "interrupted");
	return r < 0 ? r : 0;
}

struct promotion {
	const struct kha_etcd_config *cfg;
	struct kha_etcd *c;
	uint64_t id;
	char where[160];
	struct kha_diag pd;
};

/* One promote: 1 done, 0 not in sync yet (text says how far behind), or etcd's refusal. */
static int promote_poll(void *userdata, char *text, size_t size)
{
	struct promotion *p = userdata;
	struct kha_etcd_cluster_report rep = {};
	int r;

	kha_diag_clear(&p->pd);
	r = kha_etcd_member_promote(p->c, p->id, NULL, &p->pd);
	if (r == 0)
		return 1;
	if (r != -EPERM && r != -EAGAIN && r != -ETIMEDOUT)
		return r;
	/* not in sync yet: say how far behind it is */
	p->where[0] = '\0';
	if (kha_etcd_cluster_report(p->cfg, 0, 0, &rep, NULL) == 0) {
		for (size_t i = 0; i < rep.n_members; i++) {
			const struct kha_etcd_member_report *m = &rep.members[i];
			if (m->member.id == p->id && m->reachable)
				snprintf(p->where, sizeof(p->where),
					 ": raft index %" PRIu64 " of the leader's %" PRIu64,
					 m->status.raft_index, leader_index(&rep));
		}
	}
	kha_etcd_cluster_report_release(&rep);
	snprintf(text, size, "learner %" PRIx64 " not in sync yet%s (%s)", p->id, p->where,
		 p->pd.msg);
	return 0;
}

int kha_etcdops_member_promote_wait(const struct kha_etcd_config *cfg, uint64_t id,
				    uint64_t timeout_us, const volatile sig_atomic_t *cancel,
				    kha_etcdops_member_progress_fn fn, void *userdata,
				    struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct promotion p = {.cfg = cfg, .id = id};
	char dur[32];
	int r;

	r = kha_etcd_new(cfg, &c, d);
	if (r < 0)
		return r;
	p.c = c;
	r = kha_etcdops_wait(kha_now_us() + timeout_us, POLL_US, cancel, promote_poll, &p, fn,
			     userdata);
	if (r == -ETIMEDOUT)
		return kha_diag_set(
			d, ETIMEDOUT, "learner %" PRIx64 " still not promotable after %s%s: %s", id,
			kha_format_duration(dur, sizeof(dur), timeout_us), p.where, p.pd.msg);
	if (r == -ECANCELED)
		return kha_diag_set(d, ECANCELED, "interrupted");
	if (r < 0)
		kha_diag_set(d, -r, "%s", p.pd.msg);
	return r < 0 ? r : 0;
}
