// SPDX-License-Identifier: MIT
/* Unit tests of lib/bgp's pure parts: BGP messages, the session machine, BFD packets and sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "kha/bgp.h"
#include "kha/banned.h"

#define S KHA_USEC_PER_SEC

static struct kha_bgp_prefix prefix(const char *s)
{
	struct kha_bgp_prefix p;

	assert_int_equal(kha_bgp_parse_prefix(s, &p, NULL), 0);
	return p;
}

static struct kha_bgp_addr addr(const char *s)
{
	struct kha_bgp_addr a;

	assert_int_equal(kha_bgp_parse_addr(s, &a, NULL), 0);
	return a;
}

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* ---- OPEN ---- */

/* An OPEN written out by hand from RFC 4271 4.2, RFC 5492, 4760, 2918 and 6793. */
static const uint8_t open_known[] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x33, 0x01, /* header: length 51, OPEN */
	0x04, 0x5b, 0xa0, 0x00, 0x5a, 0x0a, 0x00, 0x00, 0x01, /* v4, AS_TRANS, hold 90, id */
	0x16, 0x02, 0x14,				      /* opt params 22: capabilities 20 */
	0x01, 0x04, 0x00, 0x01, 0x00, 0x01,		      /* MP IPv4 unicast */
	0x01, 0x04, 0x00, 0x02, 0x00, 0x01,		      /* MP IPv6 unicast */
	0x02, 0x00,					      /* route refresh */
	0x41, 0x04, 0x00, 0x01, 0x11, 0x70,		      /* 4-octet AS 70000 */
};

static void test_open_encode_known_answer_and_round_trip(void **state)
{
	struct kha_bgp_open o = {.as = 70000,
				 .hold_time = 90,
				 .id = ip4("10.0.0.1"),
				 .cap_as4 = true,
				 .cap_ipv4 = true,
				 .cap_ipv6 = true,
				 .cap_route_refresh = true};
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;
	uint8_t buf[128];

	(void)state;
	assert_int_equal(kha_bgp_encode_open(&o, buf, sizeof(buf)), sizeof(open_known));
	assert_memory_equal(buf, open_known, sizeof(open_known));
	assert_int_equal(kha_bgp_frame(buf, sizeof(open_known), &e), sizeof(open_known));
	assert_int_equal(kha_bgp_decode(buf, sizeof(open_known), true, &m, &e), 0);
	assert_int_equal(m.type, KHA_BGP_OPEN);
	assert_int_equal(m.open.as, 70000);
	assert_int_equal(m.open.my_as, KHA_BGP_AS_TRANS);
	assert_int_equal(m.open.hold_time, 90);
	assert_int_equal(m.open.id, ip4("10.0.0.1"));
	assert_true(m.open.cap_as4 && m.open.cap_ipv4 && m.open.cap_ipv6 && m.open.cap_mp);
	assert_true(m.open.cap_route_refresh);
	/* too small a buffer; a 4-octet AS without the capability */
	assert_int_equal(kha_bgp_encode_open(&o, buf, 40), -ENOBUFS);
	o.cap_as4 = false;
	assert_int_equal(kha_bgp_encode_open(&o, buf, sizeof(buf)), -EINVAL);
	/* a 2-octet speaker without capabilities: the AS is My AS */
	memset(&o, 0, sizeof(o));
	o.as = 65001;
	o.hold_time = 3;
	o.id = ip4("10.0.0.2");
	assert_int_equal(kha_bgp_encode_open(&o, buf, sizeof(buf)), KHA_BGP_OPEN_MIN);
	assert_int_equal(kha_bgp_decode(buf, KHA_BGP_OPEN_MIN, false, &m, &e), 0);
	assert_int_equal(m.open.as, 65001);
	assert_false(m.open.cap_mp);
}

static void test_open_decode_errors(void **state)
{
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;
	uint8_t buf[sizeof(open_known)];

	(void)state;
	/* version 3: Unsupported Version Number, data = 2 octets, the version we speak */
	memcpy(buf, open_known, sizeof(buf));
	buf[19] = 3;
	assert_int_equal(kha_bgp_decode(buf, sizeof(buf), true, &m, &e), -EBADMSG);
	assert_int_equal(e.code, KHA_BGP_ERR_OPEN);
	assert_int_equal(e.subcode, KHA_BGP_OPEN_BAD_VERSION);
	assert_int_equal(e.data_len, 2);
	assert_int_equal(e.data[1], 4);
	/* an optional parameter that is not Capabilities */
	memcpy(buf, open_known, sizeof(buf));
	buf[29] = 1;
	assert_int_equal(kha_bgp_decode(buf, sizeof(buf), true, &m, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_OPEN_BAD_OPT_PARAM);
	/* a capability running past its parameter */
	memcpy(buf, open_known, sizeof(buf));
	buf[30] = 0x15;
	assert_int_equal(kha_bgp_decode(buf, sizeof(buf), true, &m, &e), -EBADMSG);
	assert_int_equal(e.code, KHA_BGP_ERR_OPEN);
	/* the optional parameters length disagrees with the message length */
	memcpy(buf, open_known, sizeof(buf));
	buf[28] = 0x17;
	assert_int_equal(kha_bgp_decode(buf, sizeof(buf), true, &m, &e), -EBADMSG);
	/* an unknown capability is ignored (RFC 5492 3) */
	memcpy(buf, open_known, sizeof(buf));
	buf[43] = 0x46; /* route refresh -> an unknown code 70, length 0 */
	assert_int_equal(kha_bgp_decode(buf, sizeof(buf), true, &m, &e), 0);
	assert_int_equal(m.open.caps_unknown, 1);
	assert_false(m.open.cap_route_refresh);
}

static void test_open_check(void **state)
{
	struct kha_bgp_open o = {
		.version = 4, .as = 65001, .my_as = 65001, .hold_time = 90, .id = ip4("10.0.0.2")};
	struct kha_bgp_open_rules r = {.peer_as = 65001, .local_id = ip4("10.0.0.1"), .ibgp = true};
	struct kha_bgp_notify e;

	(void)state;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), 0);
	o.hold_time = 0; /* no keepalives at all is allowed */
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), 0);
	o.hold_time = 2;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_OPEN_BAD_HOLD);
	o.hold_time = 3;
	o.as = o.my_as = 65002;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_OPEN_BAD_PEER_AS);
	o.as = o.my_as = 65001;
	o.id = 0;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_OPEN_BAD_ID);
	/* our own identifier: wrong within an AS, allowed across (RFC 6286) */
	o.id = r.local_id;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), -EBADMSG);
	r.ibgp = false;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), 0);
	/* the 4-octet AS capability and My AS disagree for a small AS */
	o.cap_as4 = true;
	o.my_as = 65009;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), -EBADMSG);
	o.my_as = KHA_BGP_AS_TRANS;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), 0);
	r.peer_as = 0; /* any */
	o.as = 4200000000u;
	assert_int_equal(kha_bgp_open_check(&o, &r, &e), 0);
}

/* ---- framing, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH ---- */

static void test_frame_header_errors(void **state)
{
	struct kha_bgp_notify e;
	uint8_t buf[64];
	int n;

	(void)state;
	n = kha_bgp_encode_keepalive(buf, sizeof(buf));
	assert_int_equal(n, KHA_BGP_HDR_LEN);
	assert_int_equal(kha_bgp_frame(buf, 18, &e), 0); /* need more */
	assert_int_equal(kha_bgp_frame(buf, 19, &e), 19);
	buf[3] = 0xfe;
	assert_int_equal(kha_bgp_frame(buf, 19, &e), -EBADMSG);
	assert_int_equal(e.code, KHA_BGP_ERR_HEADER);
	assert_int_equal(e.subcode, KHA_BGP_HDR_NOT_SYNC);
	buf[3] = 0xff;
	buf[17] = 20; /* a KEEPALIVE of 20 bytes */
	assert_int_equal(kha_bgp_frame(buf, 20, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_HDR_BAD_LENGTH);
	assert_int_equal(e.data_len, 2);
	assert_int_equal(e.data[1], 20);
	buf[16] = 0x10;
	buf[17] = 0x01; /* 4097 */
	assert_int_equal(kha_bgp_frame(buf, 19, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_HDR_BAD_LENGTH);
	buf[16] = 0;
	buf[17] = 19;
	buf[18] = 9;
	assert_int_equal(kha_bgp_frame(buf, 19, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_HDR_BAD_TYPE);
	assert_int_equal(e.data[0], 9);
	/* an OPEN shorter than its fixed part */
	buf[17] = 28;
	buf[18] = KHA_BGP_OPEN;
	assert_int_equal(kha_bgp_frame(buf, 28, &e), -EBADMSG);
	assert_int_equal(e.subcode, KHA_BGP_HDR_BAD_LENGTH);
}

static void test_notification_and_route_refresh(void **state)
{
	struct kha_bgp_notify n = {.code = KHA_BGP_ERR_CEASE,
				   .subcode = KHA_BGP_CEASE_ADMIN_SHUTDOWN,
				   .data = {'b', 'y', 'e'},
				   .data_len = 3},
			      e;
	struct kha_bgp_msg m;
	uint8_t buf[64], rr[23];
	int len;

	(void)state;
	len = kha_bgp_encode_notification(&n, buf, sizeof(buf));
	assert_int_equal(len, 24);
	assert_int_equal(kha_bgp_decode(buf, (size_t)len, true, &m, &e), 0);
	assert_int_equal(m.notification.code, KHA_BGP_ERR_CEASE);
	assert_int_equal(m.notification.subcode, KHA_BGP_CEASE_ADMIN_SHUTDOWN);
	assert_int_equal(m.notification.data_len, 3);
	assert_string_equal(kha_bgp_error_name(6), "cease");
	assert_string_equal(kha_bgp_suberror_name(6, 2), "administrative shutdown");
	assert_string_equal(kha_bgp_suberror_name(6, 200), "unknown subcode");
	assert_string_equal(kha_bgp_error_name(99), "unknown error");
	/* ROUTE-REFRESH: 23 bytes; another length is RFC 7313's error */
	memset(rr, 0xff, 16);
	rr[16] = 0;
	rr[17] = 23;
	rr[18] = KHA_BGP_ROUTE_REFRESH;
	rr[19] = 0;
	rr[20] = 2;
	rr[21] = 0;
	rr[22] = 1;
	assert_int_equal(kha_bgp_decode(rr, 23, true, &m, &e), 0);
	assert_int_equal(m.refresh.afi, KHA_BGP_AFI_IPV6);
	assert_int_equal(m.refresh.safi, 1);
	rr[17] = 22;
	assert_int_equal(kha_bgp_decode(rr, 22, true, &m, &e), -EBADMSG);
	assert_int_equal(e.code, KHA_BGP_ERR_ROUTE_REFRESH);
	assert_int_equal(e.subcode, KHA_BGP_RR_BAD_LENGTH);
}

/* ---- UPDATE ---- */

static void test_update_announce_ipv4_ebgp(void **state)
{
	struct kha_bgp_prefix p = prefix("10.96.0.1/32");
	struct kha_bgp_attrs a = {.local_as = 65010,
				  .ebgp = true,
				  .as4 = true,
				  .next_hop = addr("10.0.0.11"),
				  .has_med = true,
				  .med = 7,
				  .communities = {0xfde80064, KHA_BGP_COMMUNITY_GRACEFUL_SHUTDOWN},
				  .ncommunities = 2};
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;
	uint8_t buf[256];
	char s[64];
	int n;

	(void)state;
	n = kha_bgp_encode_announce(&p, 1, &a, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(kha_bgp_decode(buf, (size_t)n, true, &m, &e), 0);
	assert_int_equal(m.type, KHA_BGP_UPDATE);
	assert_int_equal(m.update.nlri, 1);
	assert_int_equal(m.update.withdrawn, 0);
	assert_int_equal(m.update.first.len, 32);
	assert_string_equal(kha_bgp_addr_str(&m.update.first.addr, s, sizeof(s)), "10.96.0.1");
	assert_string_equal(kha_bgp_addr_str(&m.update.next_hop, s, sizeof(s)), "10.0.0.11");
	assert_int_equal(m.update.first_as, 65010);
	assert_int_equal(m.update.med, 7);
	assert_int_equal(m.update.ncommunities, 2);
	assert_int_equal(m.update.communities[1], KHA_BGP_COMMUNITY_GRACEFUL_SHUTDOWN);
	assert_false(m.update.attrs & (1u << 5)); /* no LOCAL_PREF across ASes */
	/* the same as a 2-octet session: 4 bytes shorter, the AS in 2 octets */
	a.as4 = false;
	assert_int_equal(kha_bgp_encode_announce(&p, 1, &a, buf, sizeof(buf)), n - 2);
	assert_int_equal(kha_bgp_decode(buf, (size_t)n - 2, false, &m, &e), 0);
	assert_int_equal(m.update.first_as, 65010);
	/* a 4-octet AS to a 2-octet session: AS_TRANS in AS_PATH, the real one in AS4_PATH */
	a.local_as = 4200000001u;
	n = kha_bgp_encode_announce(&p, 1, &a, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(kha_bgp_decode(buf, (size_t)n, false, &m, &e), 0);
	assert_int_equal(m.update.first_as, KHA_BGP_AS_TRANS);
	assert_true(m.update.attrs & (1u << 17));
	/* a next hop of the other family */
	a.next_hop = addr("fd00::1");
	assert_int_equal(kha_bgp_encode_announce(&p, 1, &a, buf, sizeof(buf)), -EINVAL);
}

static void test_update_announce_ipv6_ibgp_and_withdraw(void **state)
{
	struct kha_bgp_prefix p[2] = {prefix("fd00:96::1/128"), prefix("fd00:97::/64")};
	struct kha_bgp_attrs a = {
		.local_as = 65010, .as4 = true, .next_hop = addr("fd00::11"), .local_pref = 200};
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;
	uint8_t buf[256];
	char s[64];
	int n;

	(void)state;
	n = kha_bgp_encode_announce(p, 2, &a, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(kha_bgp_decode(buf, (size_t)n, true, &m, &e), 0);
	assert_int_equal(m.update.nlri, 0);
	assert_int_equal(m.update.mp_reach, 2);
	assert_int_equal(m.update.mp_reach_afi, KHA_BGP_AFI_IPV6);
	assert_int_equal(m.update.local_pref, 200);
	assert_int_equal(m.update.first_as, 0); /* empty AS_PATH within the AS */
	assert_string_equal(kha_bgp_addr_str(&m.update.next_hop, s, sizeof(s)), "fd00::11");
	assert_string_equal(kha_bgp_addr_str(&m.update.first.addr, s, sizeof(s)), "fd00:96::1");
	/* withdrawals */
	n = kha_bgp_encode_withdraw(p, 2, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(kha_bgp_decode(buf, (size_t)n, true, &m, &e), 0);
	assert_int_equal(m.update.mp_unreach, 2);
	assert_false(m.update.end_of_rib);
	p[0] = prefix("10.96.0.1/32");
	n = kha_bgp_encode_withdraw(p, 1, buf, sizeof(buf));
	assert_int_equal(n, KHA_BGP_HDR_LEN + 4 + 5);
	assert_int_equal(kha_bgp_decode(buf, (size_t)n, true, &m, &e), 0);
	assert_int_equal(m.update.withdrawn, 1);
	/* mixed families in one message */
	p[1] = prefix("fd00::/64");
	assert_int_equal(kha_bgp_encode_withdraw(p, 2, buf, sizeof(buf)), -EINVAL);
}

/* A minimal eBGP UPDATE for 10.1.0.0/16 built by hand, to break one thing at a time. */
static size_t update_fixture(uint8_t *b)
{
	static const uint8_t u[] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x2e, 0x02, /* length 46, UPDATE */
		0x00, 0x00,					      /* no withdrawn routes */
		0x00, 0x14,					      /* attributes: 20 */
		0x40, 0x01, 0x01, 0x00,				      /* ORIGIN IGP */
		0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfd, 0xe9, /* AS_PATH (65001) */
		0x40, 0x03, 0x04, 0x0a, 0x00, 0x00, 0x01,	      /* NEXT_HOP 10.0.0.1 */
		0x10, 0x0a, 0x01,				      /* 10.1.0.0/16 */
		0x00, 0x00, 0x00, 0x00, /* room for tests that grow it */
	};

	memcpy(b, u, sizeof(u));
	return 46;
}

static void expect_update_error(const uint8_t *b, size_t len, uint8_t subcode)
{
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;

	assert_int_equal(kha_bgp_decode(b, len, true, &m, &e), -EBADMSG);
	assert_int_equal(e.code, KHA_BGP_ERR_UPDATE);
	assert_int_equal(e.subcode, subcode);
}

static void test_update_decode_errors(void **state)
{
	struct kha_bgp_notify e;
	struct kha_bgp_msg m;
	uint8_t b[64];
	size_t n;

	(void)state;
	n = update_fixture(b);
	assert_int_equal(kha_bgp_decode(b, n, true, &m, &e), 0);
	assert_int_equal(m.update.nlri, 1);
	assert_int_equal(m.update.first_as, 65001);
	/* withdrawn routes length beyond the message */
	update_fixture(b);
	b[20] = 0x40;
	expect_update_error(b, n, KHA_BGP_UPD_MALFORMED_ATTRS);
	/* total attribute length beyond the message */
	update_fixture(b);
	b[22] = 0x30;
	expect_update_error(b, n, KHA_BGP_UPD_MALFORMED_ATTRS);
	/* ORIGIN flagged optional */
	update_fixture(b);
	b[23] = 0xc0;
	expect_update_error(b, n, KHA_BGP_UPD_ATTR_FLAGS);
	/* ORIGIN of length 2 */
	update_fixture(b);
	b[25] = 2;
	assert_int_equal(kha_bgp_decode(b, n, true, &m, &e), -EBADMSG);
	assert_int_equal(e.code, KHA_BGP_ERR_UPDATE);
	/* ORIGIN 3 */
	update_fixture(b);
	b[26] = 3;
	expect_update_error(b, n, KHA_BGP_UPD_BAD_ORIGIN);
	/* an AS_PATH segment of type 9 */
	update_fixture(b);
	b[30] = 9;
	expect_update_error(b, n, KHA_BGP_UPD_MALFORMED_AS_PATH);
	/* the same AS_PATH read as 2-octet: 2 ASes, fine */
	update_fixture(b);
	b[31] = 2;
	assert_int_equal(kha_bgp_decode(b, n, false, &m, &e), 0);
	/* NEXT_HOP 0.0.0.0 */
	update_fixture(b);
	b[39] = 0;
	b[42] = 0;
	expect_update_error(b, n, KHA_BGP_UPD_BAD_NEXT_HOP);
	/* NEXT_HOP missing: turn it into an unknown optional attribute (type 99) */
	update_fixture(b);
	b[36] = 0xc0;
	b[37] = 99;
	expect_update_error(b, n, KHA_BGP_UPD_MISSING_WELL_KNOWN);
	/* an unknown well-known attribute */
	update_fixture(b);
	b[36] = 0x40;
	b[37] = 99;
	expect_update_error(b, n, KHA_BGP_UPD_UNKNOWN_WELL_KNOWN);
	/* ORIGIN twice */
	update_fixture(b);
	b[28] = 1;
	expect_update_error(b, n, KHA_BGP_UPD_MALFORMED_ATTRS);
	/* a prefix length of 33 */
	update_fixture(b);
	b[43] = 33;
	expect_update_error(b, n, KHA_BGP_UPD_BAD_NETWORK);
	/* an NLRI that runs past the message */
	update_fixture(b);
	b[43] = 24;
	expect_update_error(b, n, KHA_BGP_UPD_BAD_NETWORK);
	/* End-of-RIB: an empty UPDATE */
	update_fixture(b);
	b[17] = 23;
	b[22] = 0;
	assert_int_equal(kha_bgp_decode(b, 23, true, &m, &e), 0);
	assert_true(m.update.end_of_rib);
}

static void test_parse_text(void **state)
{
	struct kha_bgp_prefix p;
	struct kha_diag d = {};
	uint32_t c;

	(void)state;
	assert_int_equal(kha_bgp_parse_prefix("10.96.0.1", &p, NULL), 0);
	assert_int_equal(p.len, 32);
	assert_int_equal(kha_bgp_parse_prefix("fd00::1", &p, NULL), 0);
	assert_int_equal(p.len, 128);
	assert_int_equal(kha_bgp_parse_prefix("10.96.0.0/16", &p, NULL), 0);
	assert_int_equal(kha_bgp_parse_prefix("10.96.0.1/16", &p, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "host bits"));
	assert_int_equal(kha_bgp_parse_prefix("10.96.0.1/33", &p, NULL), -EINVAL);
	assert_int_equal(kha_bgp_parse_prefix("nope/32", &p, NULL), -EINVAL);
	assert_int_equal(kha_bgp_parse_prefix("10.0.0.1/", &p, NULL), -EINVAL);
	assert_int_equal(kha_bgp_parse_community("65000:100", &c, NULL), 0);
	assert_int_equal(c, 0xfde80064);
	assert_int_equal(kha_bgp_parse_community("graceful-shutdown", &c, NULL), 0);
	assert_int_equal(c, 0xffff0000);
	assert_int_equal(kha_bgp_parse_community("4294967295", &c, NULL), 0);
	assert_int_equal(kha_bgp_parse_community("65536:1", &c, NULL), -EINVAL);
	assert_int_equal(kha_bgp_parse_community("1:-1", &c, NULL), -EINVAL);
	assert_int_equal(kha_bgp_parse_community("1:", &c, NULL), -EINVAL);
	assert_int_equal(kha_bgp_parse_community("x", &c, NULL), -EINVAL);
}

/* ---- session machine ---- */

static const struct kha_bgp_fsm_config fsm_cfg = {
	.hold_time_s = 9,
	.connect_retry_us = 2 * S,
	.connect_retry_max_us = 8 * S,
	.idle_hold_us = 1 * S,
	.idle_hold_max_us = 4 * S,
};

/* Drives a machine to Established at time t. */
static void establish(struct kha_bgp_fsm *f, uint64_t t, uint16_t peer_hold)
{
	assert_int_equal(kha_bgp_fsm_tcp_up(f, t), KHA_BGP_ACT_STATE | KHA_BGP_ACT_SEND_OPEN);
	assert_int_equal(f->state, KHA_BGP_OPENSENT);
	assert_int_equal(kha_bgp_fsm_open(f, t, peer_hold),
			 KHA_BGP_ACT_STATE | KHA_BGP_ACT_SEND_KEEPALIVE);
	assert_int_equal(f->state, KHA_BGP_OPENCONFIRM);
	assert_int_equal(kha_bgp_fsm_keepalive(f, t), KHA_BGP_ACT_STATE | KHA_BGP_ACT_ANNOUNCE);
	assert_int_equal(f->state, KHA_BGP_ESTABLISHED);
}

static void test_fsm_establish_keepalive_hold(void **state)
{
	struct kha_bgp_fsm f;
	uint64_t t = 100 * S;

	(void)state;
	kha_bgp_fsm_init(&f, &fsm_cfg);
	assert_int_equal(kha_bgp_fsm_next_us(&f), 0);
	assert_int_equal(kha_bgp_fsm_start(&f, t), KHA_BGP_ACT_STATE | KHA_BGP_ACT_CONNECT);
	assert_int_equal(f.state, KHA_BGP_CONNECT);
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + 2 * S);
	establish(&f, t, 90);
	/* the smaller hold time wins; keepalives every third of it */
	assert_int_equal(f.hold_us, 9 * S);
	assert_int_equal(f.keepalive_us, 3 * S);
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + 3 * S);
	assert_int_equal(kha_bgp_fsm_tick(&f, t + 3 * S), KHA_BGP_ACT_SEND_KEEPALIVE);
	/* a KEEPALIVE or an UPDATE restarts the hold timer */
	assert_int_equal(kha_bgp_fsm_keepalive(&f, t + 5 * S), 0);
	assert_int_equal(f.hold_at_us, t + 14 * S);
	assert_int_equal(kha_bgp_fsm_update(&f, t + 6 * S), 0);
	assert_int_equal(f.hold_at_us, t + 15 * S);
	/* silence: Hold Timer Expired, close, Idle, start again after IdleHoldTime */
	assert_int_equal(kha_bgp_fsm_tick(&f, t + 15 * S),
			 KHA_BGP_ACT_SEND_NOTIFY | KHA_BGP_ACT_CLOSE | KHA_BGP_ACT_STATE);
	assert_int_equal(f.notify_out.code, KHA_BGP_ERR_HOLD);
	assert_int_equal(f.state, KHA_BGP_IDLE);
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + 16 * S);
	assert_int_equal(kha_bgp_fsm_tick(&f, t + 16 * S), KHA_BGP_ACT_STATE | KHA_BGP_ACT_CONNECT);
	assert_int_equal(f.state, KHA_BGP_CONNECT);
}

static void test_fsm_hold_zero_means_no_timers(void **state)
{
	struct kha_bgp_fsm f;

	(void)state;
	kha_bgp_fsm_init(&f, &fsm_cfg);
	kha_ignore(kha_bgp_fsm_start(&f, S));
	establish(&f, S, 0);
	assert_int_equal(f.hold_us, 0);
	assert_int_equal(kha_bgp_fsm_next_us(&f), 0);
	assert_int_equal(kha_bgp_fsm_tick(&f, 1000 * S), 0);
	assert_int_equal(f.state, KHA_BGP_ESTABLISHED);
}

static void test_fsm_connect_back_off_and_idle_back_off(void **state)
{
	struct kha_bgp_fsm f;
	struct kha_bgp_notify n = {.code = KHA_BGP_ERR_UPDATE, .subcode = 1};
	uint64_t t = S;

	(void)state;
	kha_bgp_fsm_init(&f, &fsm_cfg);
	kha_ignore(kha_bgp_fsm_start(&f, t));
	/* refused: wait in Active, dial again after 4 s, then 8 s (the cap) */
	assert_int_equal(kha_bgp_fsm_tcp_fail(&f, t), KHA_BGP_ACT_STATE | KHA_BGP_ACT_CLOSE);
	assert_int_equal(f.state, KHA_BGP_ACTIVE);
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + 4 * S);
	t += 4 * S;
	assert_int_equal(kha_bgp_fsm_tick(&f, t), KHA_BGP_ACT_STATE | KHA_BGP_ACT_CONNECT);
	kha_ignore(kha_bgp_fsm_tcp_fail(&f, t));
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + 8 * S);
	t += 8 * S;
	kha_ignore(kha_bgp_fsm_tick(&f, t));
	kha_ignore(kha_bgp_fsm_tcp_fail(&f, t));
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + 8 * S);
	/* the peer dials us meanwhile (passive side): accepted in Active */
	establish(&f, t, 9);
	/* errors in a row: IdleHoldTime 1 s, 2 s, 4 s, 4 s */
	for (uint64_t want = 1; want <= 8; want *= 2) {
		assert_int_equal(kha_bgp_fsm_error(&f, t, &n),
				 KHA_BGP_ACT_SEND_NOTIFY | KHA_BGP_ACT_CLOSE | KHA_BGP_ACT_STATE);
		assert_int_equal(f.state, KHA_BGP_IDLE);
		assert_int_equal(kha_bgp_fsm_next_us(&f), t + KHA_MIN(want, 4) * S);
		t = kha_bgp_fsm_next_us(&f);
		assert_int_equal(kha_bgp_fsm_tick(&f, t), KHA_BGP_ACT_STATE | KHA_BGP_ACT_CONNECT);
		kha_ignore(kha_bgp_fsm_tcp_up(&f, t));
	}
	/* reaching Established resets it */
	kha_ignore(kha_bgp_fsm_open(&f, t, 9));
	kha_ignore(kha_bgp_fsm_keepalive(&f, t));
	assert_int_equal(f.errors, 0);
	kha_ignore(kha_bgp_fsm_notification(&f, t));
	assert_int_equal(kha_bgp_fsm_next_us(&f), t + S);
}

static void test_fsm_unexpected_messages_and_stop(void **state)
{
	struct kha_bgp_fsm f;
	struct kha_bgp_fsm_config c = fsm_cfg;

	(void)state;
	kha_bgp_fsm_init(&f, &fsm_cfg);
	kha_ignore(kha_bgp_fsm_start(&f, S));
	kha_ignore(kha_bgp_fsm_tcp_up(&f, S));
	/* a KEEPALIVE before the OPEN (RFC 6608) */
	assert_true(kha_bgp_fsm_keepalive(&f, S) & KHA_BGP_ACT_SEND_NOTIFY);
	assert_int_equal(f.notify_out.code, KHA_BGP_ERR_FSM);
	assert_int_equal(f.notify_out.subcode, KHA_BGP_FSM_IN_OPENSENT);
	/* an UPDATE in OpenConfirm */
	kha_ignore(kha_bgp_fsm_tick(&f, kha_bgp_fsm_next_us(&f)));
	kha_ignore(kha_bgp_fsm_tcp_up(&f, 3 * S));
	kha_ignore(kha_bgp_fsm_open(&f, 3 * S, 9));
	assert_true(kha_bgp_fsm_update(&f, 3 * S) & KHA_BGP_ACT_SEND_NOTIFY);
	assert_int_equal(f.notify_out.subcode, KHA_BGP_FSM_IN_OPENCONFIRM);
	/* a second OPEN once Established */
	kha_ignore(kha_bgp_fsm_tick(&f, kha_bgp_fsm_next_us(&f)));
	establish(&f, 10 * S, 9);
	assert_true(kha_bgp_fsm_open(&f, 10 * S, 9) & KHA_BGP_ACT_SEND_NOTIFY);
	assert_int_equal(f.notify_out.subcode, KHA_BGP_FSM_IN_ESTABLISHED);
	/* ManualStop of an Established session: Cease, Idle, and it stays there */
	kha_ignore(kha_bgp_fsm_tick(&f, kha_bgp_fsm_next_us(&f)));
	establish(&f, 20 * S, 9);
	assert_int_equal(kha_bgp_fsm_stop(&f, 20 * S, KHA_BGP_CEASE_ADMIN_SHUTDOWN),
			 KHA_BGP_ACT_SEND_NOTIFY | KHA_BGP_ACT_CLOSE | KHA_BGP_ACT_STATE);
	assert_int_equal(f.notify_out.code, KHA_BGP_ERR_CEASE);
	assert_int_equal(kha_bgp_fsm_next_us(&f), 0);
	/* BFD down: Cease/BFD Down (RFC 9384) */
	kha_ignore(kha_bgp_fsm_start(&f, 30 * S));
	establish(&f, 30 * S, 9);
	assert_true(kha_bgp_fsm_bfd_down(&f, 30 * S) & KHA_BGP_ACT_CLOSE);
	assert_int_equal(f.notify_out.subcode, KHA_BGP_CEASE_BFD_DOWN);
	/* a passive session waits in Active and never dials */
	c.passive = true;
	kha_bgp_fsm_init(&f, &c);
	assert_int_equal(kha_bgp_fsm_start(&f, S), KHA_BGP_ACT_STATE);
	assert_int_equal(f.state, KHA_BGP_ACTIVE);
	assert_int_equal(kha_bgp_fsm_next_us(&f), 0);
}

/* ---- BFD ---- */

static void test_bfd_packet(void **state)
{
	/* RFC 5880 4.1, written by hand: v1, diag 0, Up, P, mult 3, len 24, discs, 100 ms */
	static const uint8_t known[] = {0x20, 0xe0, 0x03, 0x18, 0x00, 0x00, 0x00, 0x01,
					0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x86, 0xa0,
					0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0x00, 0x00};
	struct kha_bfd_packet p = {.state = KHA_BFD_UP,
				   .poll = true,
				   .detect_mult = 3,
				   .my_disc = 1,
				   .your_disc = 2,
				   .desired_min_tx_us = 100000,
				   .required_min_rx_us = 100000},
			      q;
	uint8_t buf[32];

	(void)state;
	assert_int_equal(kha_bfd_encode(&p, buf, sizeof(buf)), KHA_BFD_LEN);
	assert_memory_equal(buf, known, sizeof(known));
	assert_int_equal(kha_bfd_encode(&p, buf, 10), -ENOBUFS);
	assert_int_equal(kha_bfd_decode(known, sizeof(known), &q), 0);
	assert_int_equal(q.state, KHA_BFD_UP);
	assert_true(q.poll);
	assert_int_equal(q.required_min_rx_us, 100000);
	assert_int_equal(kha_bfd_decode(known, 23, &q), -EMSGSIZE);
	memcpy(buf, known, sizeof(known));
	buf[0] = 0x40; /* version 2 */
	assert_int_equal(kha_bfd_decode(buf, 24, &q), -EBADMSG);
	memcpy(buf, known, sizeof(known));
	buf[2] = 0; /* detect mult 0 */
	assert_int_equal(kha_bfd_decode(buf, 24, &q), -EBADMSG);
	memcpy(buf, known, sizeof(known));
	buf[3] = 30; /* longer than the datagram */
	assert_int_equal(kha_bfd_decode(buf, 24, &q), -EMSGSIZE);
	memcpy(buf, known, sizeof(known));
	memset(buf + 8, 0, 4); /* Up without Your Discriminator */
	assert_int_equal(kha_bfd_decode(buf, 24, &q), -EBADMSG);
	buf[1] = 0x40; /* Down without it: fine */
	assert_int_equal(kha_bfd_decode(buf, 24, &q), 0);
	buf[1] = 0x41; /* multipoint */
	assert_int_equal(kha_bfd_decode(buf, 24, &q), -EBADMSG);
	memcpy(buf, known, sizeof(known));
	buf[1] |= 0x04; /* authentication: not supported */
	buf[3] = 26;
	assert_int_equal(kha_bfd_decode(buf, 28, &q), -EPROTONOSUPPORT);
}

static void test_bfd_session_up_poll_and_detection(void **state)
{
	struct kha_bfd_fsm b;
	struct kha_bfd_packet peer = {.version = 1,
				      .state = KHA_BFD_DOWN,
				      .detect_mult = 3,
				      .my_disc = 77,
				      .desired_min_tx_us = 1000000,
				      .required_min_rx_us = 100000},
			      out;
	uint64_t t = 10 * S;

	(void)state;
	kha_bfd_fsm_init(&b, 5, 100000, 100000, 3, t);
	assert_int_equal(kha_bfd_fsm_tick(&b, t), KHA_BFD_ACT_SEND);
	kha_bfd_fsm_packet(&b, t, &out);
	assert_int_equal(out.state, KHA_BFD_DOWN);
	assert_int_equal(out.desired_min_tx_us, 1000000); /* slow while not Up */
	/* next packet within 75-100% of 1 s */
	assert_true(b.tx_at_us >= t + 750000 && b.tx_at_us <= t + S);
	/* the three-way handshake: Down -> Init -> Up */
	assert_int_equal(kha_bfd_fsm_rx(&b, t, &peer), KHA_BFD_ACT_STATE | KHA_BFD_ACT_SEND);
	assert_int_equal(b.state, KHA_BFD_INIT);
	peer.state = KHA_BFD_UP;
	peer.your_disc = 5;
	assert_int_equal(kha_bfd_fsm_rx(&b, t, &peer), KHA_BFD_ACT_STATE | KHA_BFD_ACT_SEND);
	assert_int_equal(b.state, KHA_BFD_UP);
	/* Up: the fast rate, told by a Poll until the peer answers with a Final */
	kha_bfd_fsm_packet(&b, t, &out);
	assert_true(out.poll);
	assert_int_equal(out.desired_min_tx_us, 100000);
	assert_true(b.tx_at_us >= t + 75000 && b.tx_at_us <= t + 100000);
	peer.final = true;
	peer.desired_min_tx_us = 100000;
	assert_int_equal(kha_bfd_fsm_rx(&b, t, &peer), 0);
	kha_bfd_fsm_packet(&b, t, &out);
	assert_false(out.poll);
	/* detection time: remote mult 3 x max(our min rx, its min tx) */
	assert_int_equal(kha_bfd_detect_us(&b), 300000);
	assert_int_equal(b.detect_at_us, t + 300000);
	/* a Poll from the peer gets a Final at once */
	peer.final = false;
	peer.poll = true;
	assert_int_equal(kha_bfd_fsm_rx(&b, t + 50000, &peer), KHA_BFD_ACT_SEND);
	kha_bfd_fsm_packet(&b, t + 50000, &out);
	assert_true(out.final);
	assert_false(out.poll);
	/* once Up, a Down from another remote session without our discriminator is not ours */
	{
		struct kha_bfd_packet stray = peer;

		stray.state = KHA_BFD_DOWN;
		stray.your_disc = 0;
		stray.my_disc = 78;
		stray.poll = false;
		assert_int_equal(kha_bfd_fsm_rx(&b, t + 60000, &stray), 0);
		assert_int_equal(b.state, KHA_BFD_UP);
	}
	/* silence: Down with diag 1 after the detection time */
	assert_int_equal(kha_bfd_fsm_tick(&b, t + 349999) & KHA_BFD_ACT_STATE, 0);
	assert_int_equal(kha_bfd_fsm_tick(&b, t + 350000), KHA_BFD_ACT_STATE | KHA_BFD_ACT_SEND);
	assert_int_equal(b.state, KHA_BFD_DOWN);
	assert_int_equal(b.diag, KHA_BFD_DIAG_EXPIRED);
	assert_int_equal(b.remote_disc, 0);
	/* a packet for another session is not ours */
	peer.your_disc = 6;
	assert_int_equal(kha_bfd_fsm_rx(&b, t, &peer), 0);
	/* the peer says AdminDown: we go Down with diag 3 */
	peer.your_disc = 0;
	peer.poll = false;
	peer.state = KHA_BFD_DOWN;
	kha_ignore(kha_bfd_fsm_rx(&b, t, &peer));
	assert_int_equal(b.state, KHA_BFD_INIT);
	peer.state = KHA_BFD_ADMIN_DOWN;
	assert_true(kha_bfd_fsm_rx(&b, t, &peer) & KHA_BFD_ACT_STATE);
	assert_int_equal(b.state, KHA_BFD_DOWN);
	assert_int_equal(b.diag, KHA_BFD_DIAG_NEIGHBOR_DOWN);
	/* our stop */
	assert_int_equal(kha_bfd_fsm_admin_down(&b, t), KHA_BFD_ACT_STATE | KHA_BFD_ACT_SEND);
	kha_bfd_fsm_packet(&b, t, &out);
	assert_int_equal(out.state, KHA_BFD_ADMIN_DOWN);
	assert_int_equal(out.diag, KHA_BFD_DIAG_ADMIN_DOWN);
	assert_int_equal(kha_bfd_fsm_next_us(&b), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_encode_known_answer_and_round_trip),
		cmocka_unit_test(test_open_decode_errors),
		cmocka_unit_test(test_open_check),
		cmocka_unit_test(test_frame_header_errors),
		cmocka_unit_test(test_notification_and_route_refresh),
		cmocka_unit_test(test_update_announce_ipv4_ebgp),
		cmocka_unit_test(test_update_announce_ipv6_ibgp_and_withdraw),
		cmocka_unit_test(test_update_decode_errors),
		cmocka_unit_test(test_parse_text),
		cmocka_unit_test(test_fsm_establish_keepalive_hold),
		cmocka_unit_test(test_fsm_hold_zero_means_no_timers),
		cmocka_unit_test(test_fsm_connect_back_off_and_idle_back_off),
		cmocka_unit_test(test_fsm_unexpected_messages_and_stop),
		cmocka_unit_test(test_bfd_packet),
		cmocka_unit_test(test_bfd_session_up_poll_and_detection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
