// SPDX-License-Identifier: MIT
/*
 * Fuzzes the FleetLock request-body parser (what `kha lock serve` reads from any client), and
 * with a leading '#' byte the maintenance-window grammar (from flags and config files).
 */
#include <stdlib.h>
#include <string.h>

#include "kha/election.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_fleetlock_params p;
	struct kha_diag d = {};

	if (size > 0 && data[0] == '#') {
		struct kha_lock_window_set ws;
		char *s = strndup((const char *)data + 1, size - 1);

		if (s && kha_lock_window_parse(s, &ws, &d) == 0) {
			struct tm tm = {0};

			for (int day = 0; day < 7; day++) {
				tm.tm_wday = day;
				tm.tm_hour = (int)(size % 24);
				tm.tm_min = (int)(size % 60);
				(void)kha_lock_window_contains(&ws, &tm);
			}
		}
		free(s);
		return 0;
	}
	if (kha_fleetlock_parse((const char *)data, size, &p, &d) == 0) {
		/* a success must be well-formed */
		if (!p.id[0] || !p.group[0] || strlen(p.id) >= sizeof(p.id))
			abort();
	}
	return 0;
}
