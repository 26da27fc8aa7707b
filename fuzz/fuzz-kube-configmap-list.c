// SPDX-License-Identifier: MIT
/*
 * Fuzzes the decoder of the ConfigMapList pages kha drill reads its Kubernetes writes back
 * from (kha_drill_kube_list_decode): an apiserver's reply, or whatever sits in its place.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kha/drill.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t values[64];
	size_t found = 0, foreign = 0;
	char *cont = NULL;
	struct kha_diag d = {};

	for (size_t i = 0; i < 64; i++)
		values[i] = KHA_DRILL_NONE;
	if (kha_drill_kube_list_decode((const char *)data, size, "kha-drill-1-w", values, 64,
				       &found, &foreign, &cont, &d) == 0) {
		/* every value read is a slot number or the bad marker, never a stray */
		for (size_t i = 0; i < 64; i++)
			if (values[i] != KHA_DRILL_NONE && values[i] != KHA_DRILL_KUBE_BAD &&
			    values[i] >= (1ULL << 63))
				abort();
		free(cont);
	}
	return 0;
}
