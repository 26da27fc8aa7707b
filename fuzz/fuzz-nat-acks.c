// SPDX-License-Identifier: MIT
/*
 * Fuzzes the parser of the kernel's netlink replies in kha proxy --mode nat (acknowledgements of
 * nftables batches and rtnetlink requests): any datagram must parse or be refused as malformed,
 * and what it counts must stay within the messages it holds.
 */
#include <stdlib.h>
#include <string.h>

#include "../lib/proxy/nat-internal.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_proxy_nat_acks a = {};
	int r;

	r = kha_proxy__nat_parse_acks(data, size, 1, 1000, &a);
	if (r != 0 && r != -EBADMSG)
		abort();
	/* an acknowledgement takes at least 36 bytes */
	if (a.acked > size / 36)
		abort();
	if (a.error && (a.error > 0 || a.error < -4095 || !a.where[0]))
		abort();
	if (!a.error && a.where[0])
		abort();
	return 0;
}
