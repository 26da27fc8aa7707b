// SPDX-License-Identifier: MIT
/*
 * Fuzzes the BFD receive path: a UDP payload from anyone on the link, decoded with the checks of
 * RFC 5880 6.8.6 and fed to a session. A decoded packet encodes back to its first 24 bytes (but
 * the length byte and the bits we never send), and the session stays in a valid state.
 */
#include <stdlib.h>
#include <string.h>

#include "kha/bgp.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_bfd_packet p, q;
	struct kha_bfd_fsm b;
	uint8_t out[KHA_BFD_LEN];
	uint64_t now = 1000;

	if (kha_bfd_decode(data, size, &p) < 0)
		return 0;
	if (p.version != 1 || p.detect_mult == 0 || p.my_disc == 0 || p.length < KHA_BFD_LEN ||
	    p.length > size || p.auth || p.multipoint)
		abort();
	if (kha_bfd_encode(&p, out, sizeof(out)) != KHA_BFD_LEN)
		abort();
	if (out[0] != data[0] || (out[1] | 0x04 | 0x01) != (data[1] | 0x04 | 0x01) ||
	    memcmp(out + 4, data + 4, 20) != 0)
		abort();
	kha_bfd_fsm_init(&b, 0x11223344, 100000, 100000, 3, now);
	for (int i = 0; i < 3; i++) {
		(void)kha_bfd_fsm_rx(&b, now, &p);
		(void)kha_bfd_fsm_tick(&b, now += 50000);
		kha_bfd_fsm_packet(&b, now, &q);
		if (b.state > KHA_BFD_UP || q.my_disc != 0x11223344 || (q.poll && q.final))
			abort();
	}
	return 0;
}
