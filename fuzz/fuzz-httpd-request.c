// SPDX-License-Identifier: MIT
/* Fuzzes the admin HTTP server's request parser (kha_httpd_parse_request). */
#include <string.h>

#include "kha/httpd.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_httpd_request req;
	int r;

	/* the server hands the parser at most its buffer, in growing prefixes */
	if (size > KHA_HTTPD_MAX_REQUEST)
		size = KHA_HTTPD_MAX_REQUEST;
	for (size_t len = 0; len <= size; len += 1 + len / 2) {
		r = kha_httpd_parse_request((const char *)data, len, &req);
		if (r > 0) {
			if ((size_t)r > len ||
			    strnlen(req.path, sizeof(req.path)) == sizeof(req.path))
				__builtin_trap();
			break;
		}
		if (r < 0)
			break;
	}
	kha_ignore(kha_httpd_parse_request((const char *)data, size, &req));
	return 0;
}
