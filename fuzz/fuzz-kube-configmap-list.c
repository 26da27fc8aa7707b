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
	unsigned char present[64];
	size_t found = 0, foreign = 0;
	char *cont = NULL;
	struct kha_diag d = {};

	memset(present, 0, sizeof(present));
	if (kha_drill_kube_list_decode((const char *)data, size, "kha-drill-1-w", present,
				       sizeof(present), &found, &foreign, &cont, &d) == 0)
		free(cont);
	return 0;
}
