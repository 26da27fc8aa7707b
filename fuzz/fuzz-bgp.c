// SPDX-License-Identifier: MIT
/*
 * Fuzzes what a BGP peer sends over TCP: a byte stream framed into messages, each decoded (both
 * with 2-octet and 4-octet AS paths) and, for an OPEN, checked as the speaker does. Every error
 * must carry a NOTIFICATION code of RFC 4271 4.5 (or RFC 7313's), and a decoded OPEN must encode
 * back into an OPEN that decodes to the same capabilities.
 */
#include <stdlib.h>
#include <string.h>

#include "kha/bgp.h"
#include "kha/banned.h"

static void check_error(const struct kha_bgp_notify *e)
{
	if (e->code < KHA_BGP_ERR_HEADER || e->code > KHA_BGP_ERR_ROUTE_REFRESH ||
	    e->data_len > sizeof(e->data))
		abort();
	if (!kha_bgp_error_name(e->code) || !kha_bgp_suberror_name(e->code, e->subcode))
		abort();
}

static void check_open(const struct kha_bgp_open *o)
{
	struct kha_bgp_open_rules rules = {.peer_as = 65001, .local_id = 0x01020304, .ibgp = true};
	struct kha_bgp_notify e;
	struct kha_bgp_open back = *o;
	struct kha_bgp_msg m;
	uint8_t buf[KHA_BGP_MAX_LEN];
	int n;

	if (kha_bgp_open_check(o, &rules, &e) < 0)
		check_error(&e);
	if (!back.cap_as4 && back.as > 0xffff)
		abort();
	n = kha_bgp_encode_open(&back, buf, sizeof(buf));
	if (n < 0)
		abort();
	if (kha_bgp_decode(buf, (size_t)n, true, &m, &e) < 0 || m.type != KHA_BGP_OPEN)
		abort();
	if (m.open.as != o->as || m.open.hold_time != o->hold_time || m.open.id != o->id ||
	    m.open.cap_as4 != o->cap_as4 || m.open.cap_ipv4 != o->cap_ipv4 ||
	    m.open.cap_ipv6 != o->cap_ipv6 || m.open.cap_route_refresh != o->cap_route_refresh)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct kha_bgp_notify e;
		struct kha_bgp_msg m;
		int n = kha_bgp_frame(data + off, size - off, &e);

		if (n < 0) {
			check_error(&e);
			return 0;
		}
		if (n == 0)
			return 0;
		if (n < KHA_BGP_HDR_LEN || n > KHA_BGP_MAX_LEN || (size_t)n > size - off)
			abort();
		for (int as4 = 0; as4 < 2; as4++) {
			if (kha_bgp_decode(data + off, (size_t)n, as4, &m, &e) < 0) {
				check_error(&e);
				continue;
			}
			if (m.type != data[off + 18] || m.len != n)
				abort();
			if (m.type == KHA_BGP_OPEN)
				check_open(&m.open);
			if (m.type == KHA_BGP_UPDATE && m.update.ncommunities > KHA_BGP_MAX_LEN / 4)
				abort();
		}
		off += (size_t)n;
	}
	return 0;
}
