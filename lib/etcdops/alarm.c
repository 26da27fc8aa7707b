// SPDX-License-Identifier: MIT
/*
 * Alarms: listing them, and disarming some of them as etcdctl alarm disarm does (list, then
 * deactivate each, since etcd deactivates one (member, type) pair per request), then listing
 * again so the caller says what remains rather than assuming the disarm took.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kha/etcdops.h"
#include "kha/banned.h"

bool kha_etcdops_alarm_matches(const struct kha_etcdops_alarm_filter *f,
			       const struct kha_etcd_alarm *a)
{
	if (f->type != KHA_ETCD_ALARM_NONE && a->type != f->type)
		return false;
	return !f->by_member || a->member_id == f->member;
}

/* Appends a to l (an owned array). */
static int append(struct kha_etcd_alarm_list *l, const struct kha_etcd_alarm *a)
{
	if (KHA_RESIZE(l->alarms, l->n_alarms + 1) < 0)
		return -ENOMEM;
	l->alarms[l->n_alarms++] = *a;
	return 0;
}

int kha_etcdops_alarm_disarm(const struct kha_etcd_config *cfg,
			     const struct kha_etcdops_alarm_filter *f,
			     struct kha_etcd_alarm_list *ret_disarmed,
			     struct kha_etcd_alarm_list *ret_remaining, struct kha_diag *d)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_etcd_alarm_list before = {}, done = {};
	int r = kha_etcd_new(cfg, &c, d);

	if (r < 0)
		return r;
	r = kha_etcd_alarm_list(c, &before, d);
	for (size_t i = 0; r == 0 && i < before.n_alarms; i++) {
		const struct kha_etcd_alarm *a = &before.alarms[i];

		if (!kha_etcdops_alarm_matches(f, a))
			continue;
		r = kha_etcd_alarm_disarm(c, a->member_id, a->type, d);
		if (r == 0 && append(&done, a) < 0)
			r = kha_diag_set(d, ENOMEM, "out of memory");
	}
	kha_etcd_alarm_list_release(&before);
	if (r == 0)
		r = kha_etcd_alarm_list(c, ret_remaining, d);
	/* on failure too: what was disarmed before it is still said */
	*ret_disarmed = done;
	return r;
}
