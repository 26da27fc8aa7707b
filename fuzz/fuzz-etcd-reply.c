// SPDX-License-Identifier: MIT
/*
 * Fuzzes the etcd gateway reply decoders: every decoder gets the same input, since a hostile
 * or broken endpoint can send any reply to any request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kha/etcd.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	struct kha_diag d = {};
	struct kha_etcd_error e;
	struct kha_etcd_status st = {};
	struct kha_etcd_member_list ml = {};
	struct kha_etcd_member m = {};
	struct kha_etcd_range_result rr = {};
	struct kha_etcd_put_result pr = {};
	struct kha_etcd_delete_result dr = {};
	struct kha_etcd_txn_result tr = {};
	struct kha_etcd_lease_ttl lt = {};
	struct kha_etcd_watch_response w = {};
	struct kha_etcd_alarm_list al = {};
	struct kha_etcd_hash_kv hk;
	struct kha_etcd_header h;
	struct kha_etcd_alarm a;
	int64_t id, ttl;
	char *blob = NULL, *s;
	size_t blen;
	uint64_t rem;

	kha_ignore(kha_etcd_decode_error(t, size, &e));
	if (kha_etcd_decode_status(t, size, &st, &d) == 0) {
		for (size_t i = 0; i < st.n_errors; i++)
			kha_ignore(kha_etcd_alarm_from_status_error(st.errors[i], &a));
		kha_etcd_status_release(&st);
	}
	if (kha_etcd_decode_member_list(t, size, &ml, &d) == 0)
		kha_etcd_member_list_release(&ml);
	ml = (struct kha_etcd_member_list){};
	if (kha_etcd_decode_member_add(t, size, &m, &ml, &d) == 0) {
		kha_etcd_member_release(&m);
		kha_etcd_member_list_release(&ml);
	}
	if (kha_etcd_decode_range(t, size, &rr, &d) == 0)
		kha_etcd_range_result_release(&rr);
	if (kha_etcd_decode_put(t, size, &pr, &d) == 0)
		kha_etcd_put_result_release(&pr);
	if (kha_etcd_decode_delete(t, size, &dr, &d) == 0)
		kha_etcd_delete_result_release(&dr);
	if (kha_etcd_decode_txn(t, size, &tr, &d) == 0)
		kha_etcd_txn_result_release(&tr);
	kha_ignore(kha_etcd_decode_lease(t, size, &id, &ttl, &d));
	if (kha_etcd_decode_lease_ttl(t, size, &lt, &d) == 0)
		kha_etcd_lease_ttl_release(&lt);
	if (kha_etcd_decode_watch(t, size, &w, &d) == 0)
		kha_etcd_watch_response_release(&w);
	if (kha_etcd_decode_alarms(t, size, &al, &d) == 0)
		kha_etcd_alarm_list_release(&al);
	kha_ignore(kha_etcd_decode_hash_kv(t, size, &hk, &d));
	kha_ignore(kha_etcd_decode_header(t, size, &h, &d));
	if (kha_etcd_decode_snapshot(t, size, &blob, &blen, &rem, &d) == 0)
		free(blob);
	/* the status error parser takes C strings */
	s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
		kha_ignore(kha_etcd_alarm_from_status_error(s, &a));
		free(s);
	}
	return 0;
}
