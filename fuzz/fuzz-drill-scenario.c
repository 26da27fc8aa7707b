// SPDX-License-Identifier: MIT
/* Fuzzes the drill scenario parser (kha_drill_scenario_parse) and the check that follows it. */
#include <stdint.h>
#include <stdlib.h>

#include "kha/drill.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_drill_scenario sc;
	struct kha_diag d = {};

	kha_drill_scenario_init(&sc);
	if (kha_drill_scenario_parse(&sc, (const char *)data, size, "fuzz", &d) == 0) {
		/* check() must not touch files named by untrusted input beyond access() */
		kha_ignore(kha_drill_scenario_check(&sc, &d));
	}
	kha_drill_scenario_release(&sc);
	return 0;
}
