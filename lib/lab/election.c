// SPDX-License-Identifier: MIT
/*
 * Who leads the lab's election. kha elect uses etcd's own election keys (clientv3/concurrency,
 * as `etcdctl elect`): every candidate puts "<election>/<lease id in hex>" with its id as the
 * value, attached to its lease; the key with the lowest create revision leads. Reading them is
 * one linearizable range over the prefix.
 */
#include <stdio.h>
#include <string.h>

#include "kha/etcd.h"
#include "lab-internal.h"
#include "kha/banned.h"

int kha_lab__etcd_client(const struct kha_lab *lab, uint64_t timeout_us, struct kha_etcd **ret,
			 struct kha_diag *d)
{
	kha_autofree char *eps = kha_lab_endpoints(lab);
	struct kha_etcd_config cfg = {0};
	int r;

	if (!eps)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_etcd_config_init(&cfg);
	if (r == 0)
		r = kha_etcd_config_set_endpoints(&cfg, eps, d);
	if (r == 0 &&
	    (!(cfg.cacert = strdup(lab->ca_cert)) || !(cfg.cert = strdup(lab->client_cert)) ||
	     !(cfg.key = strdup(lab->client_key))))
		r = kha_diag_set(d, ENOMEM, "out of memory");
	/* a dead member costs a refused connect; a frozen one the dial timeout: keep it short */
	cfg.dial_timeout_us = KHA_MIN(timeout_us, 300 * KHA_USEC_PER_MSEC);
	cfg.command_timeout_us = timeout_us;
	if (r == 0)
		r = kha_etcd_new(&cfg, ret, d);
	kha_etcd_config_release(&cfg);
	return r;
}

int kha_lab__leader_read(struct kha_etcd *c, const char *election, char **ret_leader,
			 struct kha_diag *d)
{
	struct kha_etcd_range_result res = {0};
	char prefix[256];
	const struct kha_etcd_kv *best = NULL;
	int r;

	snprintf(prefix, sizeof(prefix), "%s/", election);
	r = kha_etcd_range(c, &(struct kha_etcd_range_req){.r = {.key = prefix, .prefix = true}},
			   &res, d);
	if (r < 0)
		return r;
	for (size_t i = 0; i < res.n_kvs; i++)
		if (!best || res.kvs[i].create_revision < best->create_revision)
			best = &res.kvs[i];
	*ret_leader = NULL;
	if (best && !(*ret_leader = strndup(best->value, best->value_len)))
		r = kha_diag_set(d, ENOMEM, "out of memory");
	kha_etcd_range_result_release(&res);
	return r;
}

int kha_lab_leader(const struct kha_lab *lab, uint64_t timeout_us, char **ret_leader,
		   struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	int r;

	if (!lab->election)
		return kha_diag_set(d, ENOENT,
				    "the lab in %s runs no election (made with --no-elect)",
				    lab->dir);
	r = kha_lab__etcd_client(lab, timeout_us, &c, d);
	if (r == 0)
		r = kha_lab__leader_read(c, lab->election, ret_leader, d);
	return r;
}

int kha_lab_leader_lease_ttl(const struct kha_lab *lab, uint64_t timeout_us, const char *leader,
			     int64_t *ret_ttl_s)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_etcd_range_result res = {0};
	struct kha_etcd_lease_ttl ttl = {0};
	char prefix[256];
	int r;

	*ret_ttl_s = -1;
	if (!lab->election)
		return -ENOENT;
	r = kha_lab__etcd_client(lab, timeout_us, &c, NULL);
	if (r < 0)
		return r;
	snprintf(prefix, sizeof(prefix), "%s/", lab->election);
	r = kha_etcd_range(c, &(struct kha_etcd_range_req){.r = {.key = prefix, .prefix = true}},
			   &res, NULL);
	for (size_t i = 0; r == 0 && i < res.n_kvs; i++) {
		const struct kha_etcd_kv *kv = &res.kvs[i];

		if (kv->lease && strlen(leader) == kv->value_len &&
		    memcmp(kv->value, leader, kv->value_len) == 0) {
			r = kha_etcd_lease_time_to_live(c, kv->lease, false, &ttl, NULL);
			if (r == 0)
				*ret_ttl_s = ttl.ttl;
			kha_etcd_lease_ttl_release(&ttl);
			break;
		}
	}
	kha_etcd_range_result_release(&res);
	return r < 0 ? r : 0;
}

int kha_lab__raft_leader_read(struct kha_etcd *c, char **ret_leader, struct kha_diag *d)
{
	struct kha_etcd_member_list ml = {0};
	struct kha_etcd_status st = {0};
	int r;

	*ret_leader = NULL;
	r = kha_etcd_status(c, &st, d);
	if (r == 0 && st.leader)
		r = kha_etcd_member_list(c, &ml, d);
	for (size_t i = 0; r == 0 && i < ml.n_members; i++)
		if (ml.members[i].id == st.leader && ml.members[i].name[0] &&
		    !(*ret_leader = strdup(ml.members[i].name)))
			r = kha_diag_set(d, ENOMEM, "out of memory");
	kha_etcd_member_list_release(&ml);
	kha_etcd_status_release(&st);
	return r;
}

int kha_lab_raft_leader(const struct kha_lab *lab, uint64_t timeout_us, char **ret_leader,
			struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	int r;

	*ret_leader = NULL;
	r = kha_lab__etcd_client(lab, timeout_us, &c, d);
	if (r == 0)
		r = kha_lab__raft_leader_read(c, ret_leader, d);
	return r;
}

int kha_lab_leading_master(const struct kha_lab *lab, uint64_t timeout_us, char **ret_leader,
			   struct kha_diag *d)
{
	if (lab->election)
		return kha_lab_leader(lab, timeout_us, ret_leader, d);
	return kha_lab_raft_leader(lab, timeout_us, ret_leader, d);
}
