// SPDX-License-Identifier: MIT
/*
 * Fuzzes the decoders of untrusted API replies: the input is tried as an EndpointSliceList, as
 * a Status, as a Lease, and line by line as watch events whose objects go through the
 * EndpointSlice decoder and the merge into a backend set.
 */
#include <string.h>

#include "kube-internal.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct kha_kube__slice_list l = {};
	struct kha_kube_endpoint_set set = {};
	struct kha_kube__slice slices[8] = {};
	struct kha_kube_status st;
	struct kha_kube_lease lease;
	struct kha_diag d = {};
	size_t n = 0, start = 0;

	if (kha_kube__slice_list_decode(text, size, "https", &l, &d) == 0) {
		if (kha_kube__endpoints_merge(l.slices, l.n_slices, l.resource_version, &set) == 0)
			kha_kube_endpoint_set_release(&set);
		kha_kube__slice_list_release(&l);
	}
	kha_ignore(kha_kube_status_decode(text, size, &st, &d));
	if (kha_kube_lease_decode(text, size, &lease, &d) == 0) {
		char *enc = kha_kube_lease_encode(&lease);

		free(enc);
	}
	while (start < size) {
		const char *nl = memchr(text + start, '\n', size - start);
		size_t len = nl ? (size_t)(nl - (text + start)) : size - start;
		enum kha_kube_event_type type;
		json_t *obj = NULL;

		if (kha_kube_watch_event_decode(text + start, len, &type, &obj, &d) == 0) {
			const char *rv;

			if (type == KHA_KUBE_EVENT_ERROR) {
				if (kha_kube__status_from_json(obj, &st) == 0)
					kha_ignore(kha_kube_errno_from_status(&st));
			} else if (type == KHA_KUBE_EVENT_BOOKMARK) {
				kha_ignore(kha_kube__object_rv(obj, &rv));
			} else if (n < KHA_ARRAY_SIZE(slices) &&
				   kha_kube__slice_decode(obj, "https", &slices[n], &d) == 0) {
				n++;
			}
			json_decref(obj);
		}
		start += len + 1;
	}
	if (kha_kube__endpoints_merge(slices, n, "1", &set) == 0)
		kha_kube_endpoint_set_release(&set);
	for (size_t i = 0; i < n; i++)
		kha_kube__slice_release(&slices[i]);
	return 0;
}
