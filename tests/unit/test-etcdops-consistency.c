// SPDX-License-Identifier: MIT
/*
 * Unit tests of the consistency comparison, on replies recorded from real etcd 3.4.23 members:
 * the gateway's status JSON of a 3-member cluster, their HashKV gRPC replies at revision 4, a
 * HashKV reply of another cluster holding other data at the same revision (a divergent
 * member), one taken after compacting to revision 3, and the error a compacted-away revision
 * gets (grpc-status 11, "etcdserver: mvcc: required revision has been compacted").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kha/etcd-grpc.h"
#include "kha/etcdops.h"
#include "kha/banned.h"

/* clang-format off */
/* status of member 0 */
static const char status_0[] = "{\"header\": {\"cluster_id\": \"4246735291718545684\", \"member_id\": \"14050784939832191354\", \"revision\": \"4\", \"raft_term\": \"2\"}, \"version\": \"3.4.23\", \"dbSize\": \"20480\", \"leader\": \"2719428247364743319\", \"raftIndex\": \"11\", \"raftTerm\": \"2\", \"raftAppliedIndex\": \"11\", \"dbSizeInUse\": \"16384\"}";
static const uint8_t hashkv_0[] = {0x0a, 0x19, 0x08, 0x94, 0xe2, 0xfe, 0xaf, 0xf6, 0xe7, 0xdb, 0xf7, 0x3a, 0x10, 0xfa, 0xd2, 0xec, 0x90, 0xd6, 0xce, 0x9a, 0xff, 0xc2, 0x01, 0x18, 0x04, 0x20, 0x02, 0x10, 0xdc, 0xa7, 0xc3, 0xd6, 0x05, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
/* status of member 1 */
static const char status_1[] = "{\"header\": {\"cluster_id\": \"4246735291718545684\", \"member_id\": \"2719428247364743319\", \"revision\": \"4\", \"raft_term\": \"2\"}, \"version\": \"3.4.23\", \"dbSize\": \"45056\", \"leader\": \"2719428247364743319\", \"raftIndex\": \"11\", \"raftTerm\": \"2\", \"raftAppliedIndex\": \"11\", \"dbSizeInUse\": \"45056\"}";
static const uint8_t hashkv_1[] = {0x0a, 0x18, 0x08, 0x94, 0xe2, 0xfe, 0xaf, 0xf6, 0xe7, 0xdb, 0xf7, 0x3a, 0x10, 0x97, 0xe1, 0xda, 0xa2, 0xd3, 0xb2, 0xd6, 0xde, 0x25, 0x18, 0x04, 0x20, 0x02, 0x10, 0xdc, 0xa7, 0xc3, 0xd6, 0x05, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
/* status of member 2 */
static const char status_2[] = "{\"header\": {\"cluster_id\": \"4246735291718545684\", \"member_id\": \"4698923016767211153\", \"revision\": \"4\", \"raft_term\": \"2\"}, \"version\": \"3.4.23\", \"dbSize\": \"45056\", \"leader\": \"2719428247364743319\", \"raftIndex\": \"11\", \"raftTerm\": \"2\", \"raftAppliedIndex\": \"11\", \"dbSizeInUse\": \"45056\"}";
static const uint8_t hashkv_2[] = {0x0a, 0x18, 0x08, 0x94, 0xe2, 0xfe, 0xaf, 0xf6, 0xe7, 0xdb, 0xf7, 0x3a, 0x10, 0x91, 0x8d, 0xc4, 0xca, 0xe7, 0xb2, 0xfb, 0x9a, 0x41, 0x18, 0x04, 0x20, 0x02, 0x10, 0xdc, 0xa7, 0xc3, 0xd6, 0x05, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
static const uint8_t hashkv_other_data[] = {0x0a, 0x1a, 0x08, 0xcf, 0xbc, 0xee, 0xe9, 0xa6, 0xbc, 0x87, 0xb2, 0xe5, 0x01, 0x10, 0xa3, 0x88, 0xa4, 0xb0, 0x80, 0xb6, 0xcf, 0x82, 0xee, 0x01, 0x18, 0x04, 0x20, 0x02, 0x10, 0xe5, 0xf6, 0x99, 0xcd, 0x0a, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
/* HashKV at revision 2 after compacting to 3:
HTTP/2 200 
content-type: application/grpc
grpc-status: 11
grpc-message: etcdserver: mvcc: required revision has been compacted */
static const uint8_t hashkv_compacted_3[] = {0x0a, 0x19, 0x08, 0x94, 0xe2, 0xfe, 0xaf, 0xf6, 0xe7, 0xdb, 0xf7, 0x3a, 0x10, 0xfa, 0xd2, 0xec, 0x90, 0xd6, 0xce, 0x9a, 0xff, 0xc2, 0x01, 0x18, 0x04, 0x20, 0x02, 0x10, 0xdc, 0xa7, 0xc3, 0xd6, 0x05, 0x18, 0x03};

/* clang-format on */

static const char *const statuses[] = {status_0, status_1, status_2};
static const uint8_t *const hashes[] = {hashkv_0, hashkv_1, hashkv_2};
static const size_t hash_lens[] = {sizeof(hashkv_0), sizeof(hashkv_1), sizeof(hashkv_2)};

/* A member from a recorded status and HashKV reply. */
static void member_from(struct kha_etcdops_consistency_member *m, const char *status,
			const uint8_t *hash, size_t hash_len)
{
	struct kha_etcd_status st = {};
	struct kha_pb_hash_kv h;
	struct kha_diag d = {};

	memset(m, 0, sizeof(*m));
	assert_int_equal(kha_etcd_decode_status(status, strlen(status), &st, &d), 0);
	m->id = st.header.member_id;
	snprintf(m->name, sizeof(m->name), "m%llx", (unsigned long long)(m->id & 0xfff));
	snprintf(m->endpoint, sizeof(m->endpoint), "http://127.0.0.1:%llu",
		 (unsigned long long)(m->id % 60000));
	m->reachable = true;
	m->revision = st.header.revision;
	kha_etcd_status_release(&st);
	assert_int_equal(kha_pb_decode_hash_kv(hash, hash_len, &h), 0);
	m->hash = h.hash;
	m->compact_revision = h.compact_revision;
	m->hash_revision = h.hash_revision;
}

static void cluster(struct kha_etcdops_consistency_report *r,
		    struct kha_etcdops_consistency_member *m)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < 3; i++)
		member_from(&m[i], statuses[i], hashes[i], hash_lens[i]);
	r->members = m;
	r->n_members = 3;
	r->revision = 4;
}

static void test_recorded_replies_decode(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(m[i].revision, 4);
		assert_int_equal(m[i].compact_revision, -1); /* never compacted */
		assert_int_equal(m[i].hash_revision, 0);     /* etcd 3.4 does not send it */
		assert_int_equal(m[i].hash, m[0].hash);
	}
}

static void test_consistent_cluster(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_CONSISTENT);
	assert_int_equal(kha_etcdops_consistency_suspect(&r), 0); /* a stale alarm: no suspect */
	assert_int_equal(r.compared, 3);
	assert_int_equal(r.agreeing, 3);
	assert_int_equal(r.hash, m[0].hash);
	assert_int_equal(r.compact_revision, -1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(m[i].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_OK);
	assert_non_null(strstr(r.summary, "consistent: 3/3"));
}

static void test_divergent_member(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;
	char name[64];

	(void)state;
	cluster(&r, m);
	/* member 2 answers with the hash of other data at the same revision */
	member_from(&m[2], status_2, hashkv_other_data, sizeof(hashkv_other_data));
	snprintf(name, sizeof(name), "%s", m[2].name);
	assert_int_not_equal(m[2].hash, m[0].hash);
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_DIVERGED);
	assert_int_equal(m[2].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED);
	assert_int_equal(m[0].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_OK);
	assert_int_equal(m[1].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_OK);
	assert_int_equal(r.agreeing, 2);
	assert_int_equal(r.hash, m[0].hash);
	assert_non_null(strstr(r.summary, name));
	assert_non_null(strstr(r.summary, "differs from the other 2 members"));
	/* the member an unnamed CORRUPT alarm is about */
	assert_int_equal(kha_etcdops_consistency_suspect(&r), m[2].id);
}

static void test_two_members_disagree_without_majority(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	m[2].reachable = false;
	member_from(&m[1], status_1, hashkv_other_data, sizeof(hashkv_other_data));
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_DIVERGED);
	assert_int_equal(m[0].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED);
	assert_int_equal(m[1].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_DIVERGED);
	assert_int_equal(m[2].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE);
	assert_non_null(strstr(r.summary, "no majority"));
	assert_int_equal(kha_etcdops_consistency_suspect(&r), 0); /* no one to blame */
}

static void test_compacted_away_member(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	/* the recorded error: grpc-status 11 (OutOfRange) */
	m[1].hash_r = kha_etcd_errno_from_grpc(11);
	snprintf(m[1].error, sizeof(m[1].error),
		 "etcdserver: mvcc: required revision has been compacted (gRPC OutOfRange)");
	assert_int_equal(m[1].hash_r, -ERANGE);
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_INCOMPLETE);
	assert_int_equal(m[1].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_ERROR);
	assert_int_equal(r.agreeing, 2);
	assert_non_null(strstr(r.summary, "not checked"));
	assert_non_null(strstr(r.summary, m[1].name));
}

static void test_compact_revision_moved(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	/* member 0 already applied a compaction to revision 3, the others not yet */
	member_from(&m[0], status_0, hashkv_compacted_3, sizeof(hashkv_compacted_3));
	assert_int_equal(m[0].compact_revision, 3);
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_RETRY);
	for (int i = 0; i < 3; i++)
		assert_int_equal(m[i].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_NOT_COMPARED);
	/* once all applied it, they compare again (same data: same hash) */
	for (int i = 1; i < 3; i++)
		member_from(&m[i], statuses[i], hashkv_compacted_3, sizeof(hashkv_compacted_3));
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_CONSISTENT);
	assert_int_equal(r.compact_revision, 3);
}

static void test_unreachable_members(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	m[0].reachable = false;
	snprintf(m[0].error, sizeof(m[0].error), "connection refused");
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_INCOMPLETE);
	assert_int_equal(m[0].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_UNREACHABLE);
	assert_non_null(strstr(r.summary, "2/3 members agree"));
	/* the member the operator stopped, the others agreeing: that one */
	assert_int_equal(kha_etcdops_consistency_suspect(&r), m[0].id);
	m[1].reachable = false;
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(kha_etcdops_consistency_suspect(&r), 0); /* one agreeing is no majority */
	for (int i = 0; i < 3; i++)
		m[i].reachable = false;
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_UNKNOWN);
	assert_int_equal(r.compared, 0);
}

static void test_hash_of_another_revision(void **state)
{
	struct kha_etcdops_consistency_member m[3];
	struct kha_etcdops_consistency_report r;

	(void)state;
	cluster(&r, m);
	/* etcd >= 3.5 says which revision it hashed: it must be the one asked */
	m[0].hash_revision = 4;
	m[1].hash_revision = 5;
	kha_etcdops_consistency_compare(&r);
	assert_int_equal(m[0].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_OK);
	assert_int_equal(m[1].state, KHA_ETCDOPS_CONSISTENCY_MEMBER_ERROR);
	assert_non_null(strstr(m[1].error, "hashed revision 5 instead of 4"));
	assert_int_equal(r.verdict, KHA_ETCDOPS_CONSISTENCY_INCOMPLETE);
	assert_string_equal(kha_etcdops_consistency_verdict_name(r.verdict), "incomplete");
	assert_string_equal(kha_etcdops_consistency_state_name(m[1].state), "error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recorded_replies_decode),
		cmocka_unit_test(test_consistent_cluster),
		cmocka_unit_test(test_divergent_member),
		cmocka_unit_test(test_two_members_disagree_without_majority),
		cmocka_unit_test(test_compacted_away_member),
		cmocka_unit_test(test_compact_revision_moved),
		cmocka_unit_test(test_unreachable_members),
		cmocka_unit_test(test_hash_of_another_revision),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
