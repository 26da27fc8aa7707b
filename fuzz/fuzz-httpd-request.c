// SPDX-License-Identifier: MIT
/*
 * Fuzzes the admin HTTP server's request parser (kha_httpd_parse_request) and its header lookup
 * (kha_httpd_header), as the server and the FleetLock routes of kha lock serve use them.
 */
#include <string.h>

#include "kha/httpd.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"content-length", "fleet-lock-protocol", "host", ""};
	struct kha_httpd_request req;
	char value[64];
	int r;

	/* the server hands the parser at most its buffer, in growing prefixes */
	if (size > KHA_HTTPD_MAX_REQUEST)
		size = KHA_HTTPD_MAX_REQUEST;
	for (size_t len = 0; len <= size; len += 1 + len / 2) {
		r = kha_httpd_parse_request((const char *)data, len, &req);
		if (r > 0) {
			if ((size_t)r > len || req.head_len != (size_t)r ||
			    strnlen(req.path, sizeof(req.path)) == sizeof(req.path))
				__builtin_trap();
			break;
		}
		if (r < 0)
			break;
	}
	r = kha_httpd_parse_request((const char *)data, size, &req);
	if (r > 0) {
		for (size_t i = 0; i < KHA_ARRAY_SIZE(names); i++) {
			int n = kha_httpd_header(&req, names[i], value, sizeof(value));

			if (n >= 0 &&
			    strnlen(value, sizeof(value)) != KHA_MIN((size_t)n, sizeof(value) - 1))
				__builtin_trap();
		}
		/* a parsed length is one the server would wait for: never beyond the bound */
		if (req.content_length > (1ull << 40))
			__builtin_trap();
	}
	return 0;
}
