// SPDX-License-Identifier: MIT
/*
 * kha-etcd-selftest (a test-only program, never installed): runs every call of the etcd client
 * against a real cluster, under a scratch key prefix, and checks each result. The integration
 * tests drive it (tests/integration/test_etcd_client.py). It lives outside the kha binary
 * because it writes to, compacts and adds/removes a learner in the cluster it is pointed at.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmd-opt.h"
#include "kha/backup.h"
#include "kha/etcd.h"
#include "kha/banned.h"

struct selftest {
	struct kha_etcd *c;
	struct kha_diag d;
	char prefix[96];
	const char *peer_url;
	const char *snapshot_path;
	int steps;
};

static int KHA_PRINTF(2, 3) failed(struct selftest *t, const char *fmt, ...)
{
	va_list ap;

	printf("FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("%s%s\n", t->d.msg[0] ? ": " : "", t->d.msg);
	return -1;
}

#define CHECK(cond, ...)                               \
	do {                                           \
		if (!(cond))                           \
			return failed(t, __VA_ARGS__); \
	} while (0)

static void ok(struct selftest *t, const char *step)
{
	t->steps++;
	printf("ok %s\n", step);
	kha_diag_clear(&t->d);
}

static const char *key(struct selftest *t, const char *suffix)
{
	static char buf[4][160];
	static int n;
	char *b = buf[n++ % 4];

	snprintf(b, sizeof(buf[0]), "%s%s", t->prefix, suffix);
	return b;
}

static int put(struct selftest *t, const char *k, const char *v)
{
	struct kha_etcd_put_req req = {.key = k, .value = v};

	return kha_etcd_put(t->c, &req, NULL, &t->d);
}

static int64_t revision(struct selftest *t)
{
	struct kha_etcd_status s = {};
	int64_t rev = -1;

	if (kha_etcd_status(t->c, &s, &t->d) == 0)
		rev = s.header.revision;
	kha_etcd_status_release(&s);
	return rev;
}

static int kv_steps(struct selftest *t)
{
	struct kha_etcd_put_req p2 = {.key = key(t, "a"), .value = "v2", .prev_kv = true};
	struct kha_etcd_put_req bin = {.key = key(t, "b"), .value = "x\0y", .value_len = 3};
	struct kha_etcd_put_result pr = {};
	struct kha_etcd_range_result rr = {};
	struct kha_etcd_range_req q = {.r = {.key = t->prefix, .prefix = true}};
	struct kha_etcd_kv kv = {};
	int64_t rev1;
	int r;

	CHECK(put(t, key(t, "a"), "v1") == 0, "put");
	rev1 = revision(t);
	r = kha_etcd_put(t->c, &p2, &pr, &t->d);
	CHECK(r == 0 && pr.has_prev_kv && strcmp(pr.prev_kv.value, "v1") == 0 &&
		      pr.header.revision == rev1 + 1,
	      "put with prev_kv");
	kha_etcd_put_result_release(&pr);
	ok(t, "put");

	r = kha_etcd_get(t->c, key(t, "a"), &kv, &t->d);
	CHECK(r == 0 && strcmp(kv.value, "v2") == 0 && kv.version == 2 && kv.lease == 0, "get");
	kha_etcd_kv_release(&kv);
	r = kha_etcd_get(t->c, key(t, "missing"), &kv, &t->d);
	CHECK(r == -ENOENT, "get of a missing key gave %d", r);
	kha_diag_clear(&t->d);
	CHECK(kha_etcd_put(t->c, &bin, NULL, &t->d) == 0, "put binary");
	r = kha_etcd_get(t->c, key(t, "b"), &kv, &t->d);
	CHECK(r == 0 && kv.value_len == 3 && memcmp(kv.value, "x\0y", 3) == 0, "binary value");
	kha_etcd_kv_release(&kv);
	ok(t, "get");

	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.n_kvs == 2 && rr.count == 2 && !rr.more &&
		      strcmp(rr.kvs[0].key, key(t, "a")) == 0,
	      "range prefix");
	kha_etcd_range_result_release(&rr);
	q.limit = 1;
	q.keys_only = true;
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.n_kvs == 1 && rr.more && rr.count == 2 && rr.kvs[0].value_len == 0,
	      "range limit keys_only");
	kha_etcd_range_result_release(&rr);
	q.limit = 0;
	q.keys_only = false;
	q.count_only = true;
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.n_kvs == 0 && rr.count == 2, "range count_only");
	kha_etcd_range_result_release(&rr);
	q = (struct kha_etcd_range_req){.r.key = key(t, "a"), .revision = rev1};
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.n_kvs == 1 && strcmp(rr.kvs[0].value, "v1") == 0, "range at revision");
	kha_etcd_range_result_release(&rr);
	q = (struct kha_etcd_range_req){.r = {.key = key(t, "a"), .range_end = key(t, "b")}};
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.n_kvs == 1, "range [a, b)");
	kha_etcd_range_result_release(&rr);
	q = (struct kha_etcd_range_req){.r = {.key = key(t, "b"), .from_key = true},
					.serializable = true};
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.n_kvs >= 1 && strcmp(rr.kvs[0].key, key(t, "b")) == 0,
	      "range from key, serializable");
	kha_etcd_range_result_release(&rr);
	q = (struct kha_etcd_range_req){.r.key = key(t, "a"), .revision = 1LL << 60};
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == -ERANGE && strstr(t->d.msg, "future revision"), "future revision gave %d", r);
	ok(t, "range");
	return 0;
}

static int txn_steps(struct selftest *t)
{
	struct kha_etcd_compare cmp = {
		.target = KHA_ETCD_CMP_VALUE,
		.op = KHA_ETCD_CMP_EQUAL,
		.r.key = key(t, "a"),
		.value = "v2",
	};
	struct kha_etcd_op then[] = {
		{.type = KHA_ETCD_OP_PUT, .put = {.key = key(t, "c"), .value = "t"}},
		{.type = KHA_ETCD_OP_RANGE, .range = {.r.key = key(t, "a")}},
	};
	struct kha_etcd_op els[] = {
		{.type = KHA_ETCD_OP_DELETE, .del = {.r.key = key(t, "c"), .prev_kv = true}},
	};
	struct kha_etcd_txn_req req = {&cmp, 1, then, 2, els, 1};
	struct kha_etcd_txn_result res = {};
	int r;

	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && res.succeeded && res.n_responses == 2 &&
		      res.responses[0].type == KHA_ETCD_OP_PUT &&
		      res.responses[1].type == KHA_ETCD_OP_RANGE &&
		      res.responses[1].range.n_kvs == 1 &&
		      strcmp(res.responses[1].range.kvs[0].value, "v2") == 0,
	      "txn value == v2");
	kha_etcd_txn_result_release(&res);

	cmp = (struct kha_etcd_compare){.target = KHA_ETCD_CMP_VERSION,
					.op = KHA_ETCD_CMP_GREATER,
					.r.key = key(t, "a"),
					.number = 10};
	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && !res.succeeded && res.n_responses == 1 &&
		      res.responses[0].type == KHA_ETCD_OP_DELETE &&
		      res.responses[0].del.deleted == 1 &&
		      strcmp(res.responses[0].del.prev_kvs[0].value, "t") == 0,
	      "txn version > 10 takes the failure branch");
	kha_etcd_txn_result_release(&res);

	/* create-if-absent, as locks and elections do it */
	cmp = (struct kha_etcd_compare){.target = KHA_ETCD_CMP_CREATE_REVISION,
					.op = KHA_ETCD_CMP_EQUAL,
					.r.key = key(t, "new"),
					.number = 0};
	then[0].put.key = key(t, "new");
	req = (struct kha_etcd_txn_req){&cmp, 1, then, 1, NULL, 0};
	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && res.succeeded, "txn create_revision == 0 (absent key)");
	kha_etcd_txn_result_release(&res);
	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && !res.succeeded && res.n_responses == 0, "txn on an existing key");
	kha_etcd_txn_result_release(&res);

	cmp = (struct kha_etcd_compare){.target = KHA_ETCD_CMP_MOD_REVISION,
					.op = KHA_ETCD_CMP_LESS,
					.r.key = key(t, "a"),
					.number = INT64_MAX};
	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && res.succeeded, "txn mod_revision < max");
	kha_etcd_txn_result_release(&res);
	cmp = (struct kha_etcd_compare){.target = KHA_ETCD_CMP_LEASE,
					.op = KHA_ETCD_CMP_EQUAL,
					.r.key = key(t, "a"),
					.number = 0};
	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && res.succeeded, "txn lease == 0");
	kha_etcd_txn_result_release(&res);
	cmp = (struct kha_etcd_compare){.target = KHA_ETCD_CMP_VALUE,
					.op = KHA_ETCD_CMP_NOT_EQUAL,
					.r.key = key(t, "a"),
					.value = "v2"};
	r = kha_etcd_txn(t->c, &req, &res, &t->d);
	CHECK(r == 0 && !res.succeeded, "txn value != v2");
	kha_etcd_txn_result_release(&res);
	ok(t, "txn");
	return 0;
}

static int delete_steps(struct selftest *t)
{
	struct kha_etcd_delete_req req = {.r = {.key = t->prefix, .prefix = true}, .prev_kv = true};
	struct kha_etcd_delete_result res = {};
	struct kha_etcd_range_req q = {.r = {.key = t->prefix, .prefix = true}, .count_only = true};
	struct kha_etcd_range_result rr = {};
	int r;

	r = kha_etcd_delete(t->c, &req, &res, &t->d);
	CHECK(r == 0 && res.deleted == 3 && res.n_prev_kvs == 3, "delete prefix (%lld deleted)",
	      (long long)res.deleted);
	kha_etcd_delete_result_release(&res);
	r = kha_etcd_range(t->c, &q, &rr, &t->d);
	CHECK(r == 0 && rr.count == 0, "range after delete");
	kha_etcd_range_result_release(&rr);
	ok(t, "delete");
	return 0;
}

static int lease_steps(struct selftest *t)
{
	struct kha_etcd_lease_ttl l = {};
	struct kha_etcd_put_req p = {.key = key(t, "l"), .value = "leased"};
	struct kha_etcd_kv kv = {};
	int64_t id = 0, ttl = 0, id2 = 0;
	int r;

	r = kha_etcd_lease_grant(t->c, 10, 0, &id, &ttl, &t->d);
	CHECK(r == 0 && id != 0 && ttl == 10, "lease grant");
	p.lease = id;
	CHECK(kha_etcd_put(t->c, &p, NULL, &t->d) == 0, "put with lease");
	r = kha_etcd_lease_time_to_live(t->c, id, true, &l, &t->d);
	CHECK(r == 0 && l.id == id && l.granted_ttl == 10 && l.ttl > 0 && l.ttl <= 10 &&
		      l.n_keys == 1 && strcmp(l.keys[0].data, key(t, "l")) == 0,
	      "lease time to live");
	kha_etcd_lease_ttl_release(&l);
	r = kha_etcd_lease_keepalive_once(t->c, id, &ttl, &t->d);
	CHECK(r == 0 && ttl == 10, "lease keepalive");
	r = kha_etcd_get(t->c, key(t, "l"), &kv, &t->d);
	CHECK(r == 0 && kv.lease == id, "key carries the lease");
	kha_etcd_kv_release(&kv);
	CHECK(kha_etcd_lease_revoke(t->c, id, &t->d) == 0, "lease revoke");
	r = kha_etcd_get(t->c, key(t, "l"), &kv, &t->d);
	CHECK(r == -ENOENT, "the revoked lease's key is gone (%d)", r);
	kha_diag_clear(&t->d);
	r = kha_etcd_lease_keepalive_once(t->c, id, &ttl, &t->d);
	CHECK(r == 0 && ttl == 0, "keepalive of a revoked lease gives ttl 0");
	r = kha_etcd_lease_revoke(t->c, id, &t->d);
	CHECK(r == -ENOENT && strstr(t->d.msg, "lease not found"), "revoke twice gave %d", r);
	kha_diag_clear(&t->d);
	r = kha_etcd_lease_time_to_live(t->c, id, false, &l, &t->d);
	CHECK(r == 0 && l.ttl == -1, "time to live of a revoked lease");
	kha_etcd_lease_ttl_release(&l);
	r = kha_etcd_lease_grant(t->c, 5, id + 1, &id2, NULL, &t->d);
	CHECK(r == 0 && id2 == id + 1, "lease grant with an id");
	CHECK(kha_etcd_lease_revoke(t->c, id2, &t->d) == 0, "lease revoke");
	ok(t, "lease");
	return 0;
}

struct watch_seen {
	int responses;
	int events;
	enum kha_etcd_event_type types[8];
	bool prev_kv_on_second;
	int64_t compact_revision;
	volatile sig_atomic_t *cancel;
};

static int on_watch(void *userdata, const struct kha_etcd_watch_response *w)
{
	struct watch_seen *s = userdata;

	s->responses++;
	if (w->canceled)
		s->compact_revision = w->compact_revision;
	for (size_t i = 0; i < w->n_events && s->events < 8; i++) {
		if (s->events == 1)
			s->prev_kv_on_second = w->events[i].has_prev_kv &&
					       strcmp(w->events[i].prev_kv.value, "1") == 0;
		s->types[s->events++] = w->events[i].type;
	}
	if (s->cancel && w->created)
		*s->cancel = 1; /* ends the watch at the next progress check */
	return s->events >= 3 ? 42 : 0;
}

static int watch_steps(struct selftest *t)
{
	struct watch_seen seen = {};
	volatile sig_atomic_t cancel = 0;
	struct kha_etcd_watch_req req = {
		.r.key = key(t, "w"),
		.prev_kv = true,
		.timeout_us = 5 * KHA_USEC_PER_SEC,
	};
	uint64_t start;
	int64_t rev0 = revision(t);
	int r;

	CHECK(rev0 > 0, "revision");
	CHECK(put(t, key(t, "w"), "1") == 0 && put(t, key(t, "w"), "2") == 0, "put");
	{
		struct kha_etcd_delete_req del = {.r.key = key(t, "w")};
		CHECK(kha_etcd_delete(t->c, &del, NULL, &t->d) == 0, "delete");
	}
	req.start_revision = rev0 + 1;
	r = kha_etcd_watch(t->c, &req, on_watch, &seen, &t->d);
	CHECK(r == 42 && seen.events == 3 && seen.types[0] == KHA_ETCD_EVENT_PUT &&
		      seen.types[1] == KHA_ETCD_EVENT_PUT &&
		      seen.types[2] == KHA_ETCD_EVENT_DELETE && seen.prev_kv_on_second,
	      "watch history (r=%d, %d events)", r, seen.events);
	ok(t, "watch");

	/* a quiet key: the deadline ends it */
	memset(&seen, 0, sizeof(seen));
	req = (struct kha_etcd_watch_req){.r.key = key(t, "quiet"), .timeout_us = 300000};
	start = kha_now_us();
	r = kha_etcd_watch(t->c, &req, on_watch, &seen, &t->d);
	CHECK(r == -ETIMEDOUT && seen.responses == 1 && kha_now_us() - start < 2500000,
	      "watch deadline (r=%d)", r);
	kha_diag_clear(&t->d);
	ok(t, "watch deadline");

	/* the cancel flag ends it */
	memset(&seen, 0, sizeof(seen));
	seen.cancel = &cancel;
	req = (struct kha_etcd_watch_req){.r.key = key(t, "quiet"), .cancel = &cancel};
	start = kha_now_us();
	r = kha_etcd_watch(t->c, &req, on_watch, &seen, &t->d);
	CHECK(r == -ECANCELED && kha_now_us() - start < 3000000, "watch cancel flag (r=%d)", r);
	kha_diag_clear(&t->d);
	ok(t, "watch cancel");

	/* a compacted start revision */
	CHECK(kha_etcd_compact(t->c, revision(t), true, &t->d) == 0, "compact");
	memset(&seen, 0, sizeof(seen));
	req = (struct kha_etcd_watch_req){
		.r.key = key(t, "w"), .start_revision = rev0 + 1, .timeout_us = 5000000};
	r = kha_etcd_watch(t->c, &req, on_watch, &seen, &t->d);
	CHECK(r == -ERANGE && seen.compact_revision > rev0 && strstr(t->d.msg, "compacted"),
	      "watch from a compacted revision (r=%d)", r);
	kha_diag_clear(&t->d);
	r = kha_etcd_compact(t->c, rev0, false, &t->d);
	CHECK(r == -ERANGE, "compact again gave %d", r);
	kha_diag_clear(&t->d);
	ok(t, "watch compacted");
	return 0;
}

static int member_steps(struct selftest *t)
{
	struct kha_etcd_member_list l = {}, after = {};
	/* released however a step fails, so that its message is the report, not a leak */
	kha_auto(kha_etcd_member_release) struct kha_etcd_member m = {};
	const char *urls[] = {t->peer_url};
	uint64_t deadline = kha_now_us() + 20 * KHA_USEC_PER_SEC;
	size_t n;
	int r;

	r = kha_etcd_member_list(t->c, &l, &t->d);
	CHECK(r == 0 && l.n_members >= 1 && l.members[0].id && l.members[0].n_peer_urls,
	      "member list");
	n = l.n_members;
	kha_etcd_member_list_release(&l);
	ok(t, "member list");
	if (!t->peer_url)
		return 0;
	/* etcd refuses membership changes until every member has been up a few seconds */
	while ((r = kha_etcd_member_add(t->c, urls, 1, true, &m, &l, &t->d)) == -EAGAIN &&
	       kha_now_us() < deadline)
		usleep(300000);
	CHECK(r == 0 && m.id && m.is_learner && l.n_members == n + 1 &&
		      strcmp(m.peer_urls[0], t->peer_url) == 0,
	      "member add --learner");
	kha_etcd_member_list_release(&l);
	r = kha_etcd_member_promote(t->c, m.id, NULL, &t->d);
	CHECK(r == -EPERM && strstr(t->d.msg, "FailedPrecondition"),
	      "promote of a learner that never started gave %d", r);
	kha_diag_clear(&t->d);
	r = kha_etcd_member_remove(t->c, m.id, &after, &t->d);
	CHECK(r == 0 && after.n_members == n, "member remove");
	kha_etcd_member_list_release(&after);
	r = kha_etcd_member_remove(t->c, m.id, NULL, &t->d);
	CHECK(r == -ENOENT, "remove twice gave %d", r);
	kha_diag_clear(&t->d);
	ok(t, "member add/promote/remove");
	return 0;
}

static int maintenance_steps(struct selftest *t, const struct kha_etcd_config *cfg)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *one = NULL;
	struct kha_etcd_status s = {};
	struct kha_etcd_alarm_list al = {};
	struct kha_etcd_hash_kv hk = {};
	struct kha_etcd_header h;
	struct kha_snapshot_save_opts so = {
		.cfg = cfg,
		.path = t->snapshot_path,
		.transport = KHA_SNAPSHOT_GATEWAY,
		.timeout_us = 30 * KHA_USEC_PER_SEC,
	};
	struct kha_snapshot_save_result res = {};
	uint32_t hash = 0;
	bool gateway_has_hash_kv;
	int r;

	r = kha_etcd_status(t->c, &s, &t->d);
	CHECK(r == 0 && s.version[0] == '3' && s.leader && s.db_size > 0 && s.raft_index > 0,
	      "status");
	/* etcd 3.4's gateway does not map HashKV (kha_etcd_hash_kv says so); later ones do */
	gateway_has_hash_kv = strncmp(s.version, "3.4.", 4) != 0;
	kha_etcd_status_release(&s);
	r = kha_etcd_alarm_list(t->c, &al, &t->d);
	CHECK(r == 0 && al.n_alarms == 0, "alarm list");
	kha_etcd_alarm_list_release(&al);
	CHECK(kha_etcd_alarm_disarm(t->c, 0, KHA_ETCD_ALARM_NONE, &t->d) == 0, "alarm disarm");
	r = kha_etcd_hash(t->c, &hash, &h, &t->d);
	CHECK(r == 0 && h.revision > 0, "hash");
	r = kha_etcd_hash_kv(t->c, 0, &hk, &t->d);
	if (gateway_has_hash_kv)
		CHECK(r == 0 && hk.header.revision > 0, "hash kv gave %d", r);
	else
		CHECK(r == -EOPNOTSUPP, "hash kv on etcd 3.4 gave %d, not -EOPNOTSUPP", r);
	kha_diag_clear(&t->d);
	r = kha_etcd_new_endpoint(cfg, kha_etcd_endpoint(t->c), &one, &t->d);
	CHECK(r == 0 && kha_etcd_defragment(one, &t->d) == 0, "defragment");
	ok(t, "maintenance");

	if (!t->snapshot_path)
		return 0;
	/* lib/backup's save over the gateway, from the member that answered: kha's one snapshot path */
	so.endpoint = kha_etcd_endpoint(t->c);
	r = kha_snapshot_save(&so, &res, &t->d);
	CHECK(r == 0 && res.transport == KHA_SNAPSHOT_GATEWAY && res.info.file_size > 32,
	      "snapshot (%llu bytes)", (unsigned long long)res.info.file_size);
	ok(t, "snapshot");
	return 0;
}

/* The selftest's flags: etcdctl's connection flags from the commands' own table, and two more. */
struct selftest_opts {
	struct kha_etcd_config cfg;
	const char *peer_url, *snapshot_path;
};

static const struct cmd_opt options[] = {
	CMD_OPT_INCLUDE_ETCD(struct selftest_opts, cfg),
	CMD_OPT_TYPED_ENTRY(CMD_OPT_STRING, struct selftest_opts, "peer-url", "URL", peer_url,
			    "add and remove a learner with this peer URL"),
	CMD_OPT_TYPED_ENTRY(CMD_OPT_STRING, struct selftest_opts, "snapshot", "FILE", snapshot_path,
			    "save a snapshot through the gateway to FILE"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd selftest [etcd flags] [--peer-url URL] [--snapshot FILE]\n\n"
		"Exercises every etcd client call against a scratch cluster (writes, compacts,\n"
		"adds and removes a learner with --peer-url). For tests only.\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
}

int main(int argc, char **argv)
{
	struct selftest_opts o = {};
	struct selftest t = {};
	int code, r = -1;

	if (kha_etcd_config_init(&o.cfg) < 0 || kha_etcd_config_from_env(&o.cfg, &t.d) < 0) {
		fprintf(stderr, "kha-etcd-selftest: %s\n", t.d.msg);
		kha_etcd_config_release(&o.cfg);
		return KHA_EXIT_USAGE;
	}
	code = cmd_opts_parse(options, NULL, &o, "kha-etcd-selftest", usage, argc, argv);
	if (code >= 0) {
		kha_etcd_config_release(&o.cfg);
		return code;
	}
	t.peer_url = o.peer_url;
	t.snapshot_path = o.snapshot_path;
	snprintf(t.prefix, sizeof(t.prefix), "/kha-selftest/%ld-%llu/", (long)getpid(),
		 (unsigned long long)kha_now_us());
	if (kha_etcd_new(&o.cfg, &t.c, &t.d) < 0) {
		fprintf(stderr, "kha-etcd-selftest: %s\n", t.d.msg);
		kha_etcd_config_release(&o.cfg);
		return kha_exit_from_errno(-EINVAL);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("prefix %s\n", t.prefix);
	if (kv_steps(&t) == 0 && txn_steps(&t) == 0 && delete_steps(&t) == 0 &&
	    lease_steps(&t) == 0 && watch_steps(&t) == 0 && member_steps(&t) == 0 &&
	    maintenance_steps(&t, &o.cfg) == 0) {
		/* a marker for the test to read back with etcdctl */
		r = put(&t, key(&t, "marker"), "kha");
		if (r < 0)
			failed(&t, "marker");
		else
			printf("selftest: %d steps ok, endpoint %s\n", t.steps,
			       kha_etcd_endpoint(t.c));
	}
	kha_etcd_free(t.c);
	kha_etcd_config_release(&o.cfg);
	return r == 0 ? KHA_EXIT_OK : KHA_EXIT_DEGRADED;
}
