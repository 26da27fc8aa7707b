// SPDX-License-Identifier: MIT
/* Fuzzes the YAML config loader (kha_config_load) with arbitrary file contents. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kha/config.h"
#include "kha/banned.h"

static int apply(void *userdata, int val, const char *arg, struct kha_diag *d)
{
	(void)userdata;
	(void)d;
	return (val == 'b' && arg && arg[0] == '!') ? -EINVAL : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"backend", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},
		{},
	};
	char path[] = "/tmp/kha-fuzz-config-XXXXXX";
	struct kha_diag d = {};
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size)
		kha_ignore(kha_config_load(path, opts, apply, NULL, &d));
	close(fd);
	unlink(path);
	return 0;
}
