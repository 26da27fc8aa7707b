// SPDX-License-Identifier: MIT
/* Fuzzes the backends-file parser (kha_proxy_backends_parse), which reads operator files. */
#include <string.h>

#include "kha/proxy-backends.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_proxy_spec_list l = {};
	struct kha_diag d = {};

	if (kha_proxy_backends_parse((const char *)data, size, "fuzz", &l, &d) == 0) {
		for (size_t i = 0; i < l.n; i++)
			if (l.v[i].weight < 1 || l.v[i].weight > KHA_PROXY_WEIGHT_MAX ||
			    strnlen(l.v[i].addr, sizeof(l.v[i].addr)) == sizeof(l.v[i].addr))
				__builtin_trap();
	}
	kha_proxy_spec_list_release(&l);
	return 0;
}
