// SPDX-License-Identifier: MIT
/*
 * Fuzzes the VRRP receive path: what a raw IPPROTO_VRRP socket hands over from any host on the
 * segment (an IPv4 datagram), through decoding and the receive checks, and checks that a decoded
 * advertisement encodes back to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "kha/vrrp.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t vip = 0x6400a8c0; /* 192.168.0.100 */
	struct kha_vrrp_rx_rules rules = {
		.vrid = 51, .self = 0x0200a8c0, .addrs = &vip, .naddrs = 1};
	struct kha_vrrp_ipv4 ip = {};
	struct kha_vrrp_packet p;
	uint8_t out[KHA_VRRP_HDR_LEN + 4 * KHA_VRRP_MAX_ADDRS];
	int r, n;

	r = kha_vrrp_decode_ipv4(data, size, &ip, &p);
	if (r < 0) {
		if (kha_vrrp_drop_from_errno(r) == KHA_VRRP_ACCEPT)
			abort();
		return 0;
	}
	(void)kha_vrrp_drop_name(kha_vrrp_rx_check(&rules, &ip, &p));
	if (p.version != 3 || p.type != 1 || p.max_adver_int_cs == 0 || p.max_adver_int_cs > 4095)
		abort();
	/* a decoded advertisement with a list we kept whole encodes back to the same message */
	if (p.count <= KHA_VRRP_MAX_ADDRS) {
		size_t ihl = (size_t)(data[0] & 0x0f) * 4;

		n = kha_vrrp_encode(&p, ip.src, ip.dst, out, sizeof(out));
		if (n < 0)
			abort();
		const uint8_t *in = data + ihl;

		/* what we send verifies */
		if (kha_vrrp_checksum(out, (size_t)n, ip.src, ip.dst) != 0)
			abort();
		/*
		 * The same bytes, except for the two forms of a zero checksum: the sum verifies
		 * with 0x0000 and 0xffff alike, so both are accepted; the encoder writes what the
		 * RFC 1071 computation gives, 0x0000 (never 0xffff: the pseudo-header is not all
		 * zero). Reserved bits are not kept, so only compare when they were 0.
		 */
		if ((in[4] & 0xf0) == 0 && (size_t)n <= size - ihl &&
		    ((size_t)data[2] << 8 | data[3]) == ihl + (size_t)n &&
		    (memcmp(out, in, 6) != 0 || memcmp(out + 8, in + 8, (size_t)n - 8) != 0 ||
		     !((out[6] == in[6] && out[7] == in[7]) ||
		       (in[6] == 0xff && in[7] == 0xff && out[6] == 0 && out[7] == 0))))
			abort();
	}
	return 0;
}
