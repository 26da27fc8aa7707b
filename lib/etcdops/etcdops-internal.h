/* SPDX-License-Identifier: MIT */
/* lib/etcdops's internal header: what its files share and its unit tests reach. */
#ifndef KHA_ETCDOPS_INTERNAL_H
#define KHA_ETCDOPS_INTERNAL_H

#include "kha/etcdops.h"

/*
 * The calls a replacement makes (replace.c), so that a unit test can run each order against a
 * cluster it describes and check the sequence. ctx is the table's own; ch the request's. Each
 * has the contract of the function the real table calls:
 *   report        kha_etcdops_change_report
 *   find          kha_etcdops_change_find
 *   consistency   kha_etcdops_consistency_check (member timeout 0)
 *   remove, add   kha_etcdops_change_remove, kha_etcdops_change_add
 *   name          kha_etcdops_change_name
 *   disarm        kha_etcdops_alarm_disarm
 *   wait_started  kha_etcdops_member_wait_started (lag 1000)
 *   promote       kha_etcdops_member_promote_wait
 */
struct kha_etcdops__replace_ops {
	int (*report)(void *ctx, const struct kha_etcdops_change *ch, bool need_leader,
		      struct kha_etcd_cluster_report *ret, struct kha_diag *d);
	int (*find)(void *ctx, const struct kha_etcdops_change *ch,
		    const struct kha_etcd_cluster_report *rep, const char *name_or_id,
		    struct kha_diag *d);
	int (*consistency)(void *ctx, const struct kha_etcdops_change *ch,
			   struct kha_etcdops_consistency_report *ret, struct kha_diag *d);
	int (*remove)(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
		      struct kha_diag *d);
	int (*add)(void *ctx, const struct kha_etcdops_change *ch, const char *const *peer_urls,
		   size_t n_peer_urls, const char *name, struct kha_etcd_member *ret_member,
		   struct kha_etcdops_member_start *ret_start, struct kha_diag *d);
	int (*name)(void *ctx, const struct kha_etcdops_change *ch, uint64_t id, const char *name,
		    struct kha_diag *d);
	int (*disarm)(void *ctx, const struct kha_etcdops_change *ch,
		      const struct kha_etcdops_alarm_filter *f,
		      struct kha_etcd_alarm_list *ret_disarmed,
		      struct kha_etcd_alarm_list *ret_remaining, struct kha_diag *d);
	int (*wait_started)(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
			    uint64_t timeout_us, struct kha_diag *d);
	int (*promote)(void *ctx, const struct kha_etcdops_change *ch, uint64_t id,
		       uint64_t timeout_us, struct kha_diag *d);
};

/* kha_etcdops_replace through ops (kha_etcdops_replace passes the real calls). */
int kha_etcdops__replace_run(const struct kha_etcdops_replace_request *req,
			     const struct kha_etcdops__replace_ops *ops, void *ctx,
			     struct kha_etcdops_replace_result *ret, struct kha_diag *d) KHA_WUR;

#endif
