// SPDX-License-Identifier: MIT
/* Unit tests of lib/vrrp's pure parts: packets, receive checks, ARP frames, the state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "kha/vrrp.h"
#include "kha/banned.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* ---- packets ---- */

/* An advertisement computed independently (RFC 1071 over pseudo-header + message). */
static const uint8_t known[] = {0x31, 0x33, 0x64, 0x01, 0x00, 0x64,
				0x06, 0x22, 0xc0, 0xa8, 0x01, 0x64};

static void test_packet_encode_known_answer(void **state)
{
	struct kha_vrrp_packet p = {.version = 3,
				    .type = 1,
				    .vrid = 51,
				    .priority = 100,
				    .count = 1,
				    .max_adver_int_cs = 100};
	uint8_t buf[64];

	(void)state;
	p.addrs[0] = ip("192.168.1.100");
	assert_int_equal(
		kha_vrrp_encode(&p, ip("192.168.1.1"), htonl(KHA_VRRP_GROUP), buf, sizeof(buf)),
		sizeof(known));
	assert_memory_equal(buf, known, sizeof(known));
	/* a buffer too small, too many addresses, an interval beyond 12 bits */
	assert_int_equal(kha_vrrp_encode(&p, 0, 0, buf, 11), -ENOBUFS);
	p.count = KHA_VRRP_MAX_ADDRS + 1;
	assert_int_equal(kha_vrrp_encode(&p, 0, 0, buf, sizeof(buf)), -EINVAL);
	p.count = 1;
	p.max_adver_int_cs = 4096;
	assert_int_equal(kha_vrrp_encode(&p, 0, 0, buf, sizeof(buf)), -EINVAL);
}

static void test_packet_decode_round_trip_and_errors(void **state)
{
	uint32_t src = ip("192.168.1.1"), dst = htonl(KHA_VRRP_GROUP);
	struct kha_vrrp_packet p;
	uint8_t buf[sizeof(known)];

	(void)state;
	assert_int_equal(kha_vrrp_decode(known, sizeof(known), src, dst, &p), 0);
	assert_int_equal(p.version, 3);
	assert_int_equal(p.type, 1);
	assert_int_equal(p.vrid, 51);
	assert_int_equal(p.priority, 100);
	assert_int_equal(p.count, 1);
	assert_int_equal(p.max_adver_int_cs, 100);
	assert_int_equal(p.addrs[0], ip("192.168.1.100"));
	/* the pseudo-header matters: another destination (unicast) fails the checksum */
	assert_int_equal(kha_vrrp_decode(known, sizeof(known), src, ip("192.168.1.2"), &p),
			 -EILSEQ);
	/* truncated header, truncated address list */
	assert_int_equal(kha_vrrp_decode(known, 7, src, dst, &p), -EMSGSIZE);
	assert_int_equal(kha_vrrp_decode(known, 11, src, dst, &p), -EMSGSIZE);
	/* version 2 */
	memcpy(buf, known, sizeof(buf));
	buf[0] = 0x21;
	assert_int_equal(kha_vrrp_decode(buf, sizeof(buf), src, dst, &p), -EPROTONOSUPPORT);
	/* a flipped bit anywhere fails the checksum */
	memcpy(buf, known, sizeof(buf));
	buf[9] ^= 0x10;
	assert_int_equal(kha_vrrp_decode(buf, sizeof(buf), src, dst, &p), -EILSEQ);
	/* type 2 and interval 0 are malformed, whatever their checksum */
	memcpy(buf, known, sizeof(buf));
	buf[0] = 0x32;
	assert_int_equal(kha_vrrp_decode(buf, sizeof(buf), src, dst, &p), -EBADMSG);
	assert_int_equal(kha_vrrp_drop_from_errno(-EBADMSG), KHA_VRRP_DROP_MALFORMED);
	assert_int_equal(kha_vrrp_drop_from_errno(-EILSEQ), KHA_VRRP_DROP_CHECKSUM);
	assert_int_equal(kha_vrrp_drop_from_errno(-EPROTONOSUPPORT), KHA_VRRP_DROP_VERSION);
	assert_string_equal(kha_vrrp_drop_name(KHA_VRRP_DROP_TTL), "ttl");
}

static size_t ipv4_wrap(uint8_t *out, const uint8_t *msg, size_t len, uint32_t src, uint32_t dst,
			uint8_t ttl)
{
	memset(out, 0, 20);
	out[0] = 0x45;
	out[2] = (uint8_t)((20 + len) >> 8);
	out[3] = (uint8_t)(20 + len);
	out[8] = ttl;
	out[9] = KHA_VRRP_PROTO;
	memcpy(out + 12, &src, 4);
	memcpy(out + 16, &dst, 4);
	memcpy(out + 20, msg, len);
	return 20 + len;
}

static void test_packet_decode_ipv4_and_rx_checks(void **state)
{
	uint32_t src = ip("192.168.1.1"), dst = htonl(KHA_VRRP_GROUP);
	uint32_t vip = ip("192.168.1.100"), other = ip("192.168.1.101");
	uint32_t peer = ip("192.168.1.1"), stranger = ip("192.168.1.9");
	struct kha_vrrp_rx_rules rules = {
		.vrid = 51, .self = ip("192.168.1.2"), .addrs = &vip, .naddrs = 1};
	struct kha_vrrp_ipv4 hdr;
	struct kha_vrrp_packet p;
	uint8_t dgram[64];
	size_t n = ipv4_wrap(dgram, known, sizeof(known), src, dst, 255);

	(void)state;
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n, &hdr, &p), 0);
	assert_int_equal(hdr.src, src);
	assert_int_equal(hdr.ttl, 255);
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_ACCEPT);
	/* trailing bytes beyond the IPv4 total length are ignored */
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n + 4, &hdr, &p), 0);
	/* TTL 254: it crossed a router */
	n = ipv4_wrap(dgram, known, sizeof(known), src, dst, 254);
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n, &hdr, &p), 0);
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_DROP_TTL);
	hdr.ttl = 255;
	/* another VRID, our own packet, an address list that differs */
	rules.vrid = 52;
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_DROP_VRID);
	rules.vrid = 51;
	rules.self = src;
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_DROP_SELF);
	rules.self = ip("192.168.1.2");
	rules.addrs = &other;
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_DROP_ADDRS);
	rules.addrs = &vip;
	/* unicast peers: only they are heard */
	rules.peers = &stranger;
	rules.npeers = 1;
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_DROP_PEER);
	rules.peers = &peer;
	assert_int_equal(kha_vrrp_rx_check(&rules, &hdr, &p), KHA_VRRP_ACCEPT);
	/* IPv4 header problems: short, not v4, wrong protocol, fragment, length beyond buffer */
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, 19, &hdr, &p), -EBADMSG);
	dgram[0] = 0x65;
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n, &hdr, &p), -EBADMSG);
	dgram[0] = 0x45;
	dgram[9] = 6;
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n, &hdr, &p), -EBADMSG);
	dgram[9] = KHA_VRRP_PROTO;
	dgram[6] = 0x20; /* more fragments */
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n, &hdr, &p), -EBADMSG);
	dgram[6] = 0;
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n - 1, &hdr, &p), -EMSGSIZE);
	dgram[0] = 0x4f; /* header length 60 > datagram */
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, n, &hdr, &p), -EBADMSG);
}

static void test_packet_garp_frame(void **state)
{
	const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
	uint32_t vip = ip("10.0.0.100");
	uint8_t f[KHA_VRRP_GARP_LEN];

	(void)state;
	assert_int_equal(kha_vrrp_garp_build(f, sizeof(f), mac, vip), KHA_VRRP_GARP_LEN);
	for (int i = 0; i < 6; i++)
		assert_int_equal(f[i], 0xff);
	assert_memory_equal(f + 6, mac, 6);
	assert_int_equal(f[12] << 8 | f[13], 0x0806);
	assert_int_equal(f[20] << 8 | f[21], 1); /* request */
	assert_memory_equal(f + 22, mac, 6);
	assert_memory_equal(f + 28, &vip, 4);
	assert_memory_equal(f + 38, &vip, 4);
	assert_int_equal(kha_vrrp_garp_build(f, 41, mac, vip), -ENOBUFS);
}

static void test_packet_parse_prefix(void **state)
{
	struct kha_diag d = {};
	uint32_t a;
	unsigned pfx;

	(void)state;
	assert_int_equal(kha_vrrp_parse_prefix("10.0.0.100/24", &a, &pfx, &d), 0);
	assert_int_equal(a, ip("10.0.0.100"));
	assert_int_equal(pfx, 24);
	assert_int_equal(kha_vrrp_parse_prefix("10.0.0.100", &a, &pfx, &d), 0);
	assert_int_equal(pfx, 32);
	const char *bad[] = {"",
			     "10.0.0/24",
			     "10.0.0.1/33",
			     "10.0.0.1/",
			     "10.0.0.1/-1",
			     "10.0.0.1/24x",
			     "fe80::1/64",
			     "0.0.0.0/0",
			     "224.0.0.18/32",
			     "127.0.0.1/8",
			     "nope"};
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_vrrp_parse_prefix(bad[i], &a, &pfx, &d), -EINVAL);
		assert_non_null(strstr(d.msg, "'"));
	}
}

/* ---- state machine ---- */

#define MS 1000ULL
#define S  1000000ULL

static struct kha_vrrp_fsm make(uint8_t prio, bool preempt, const char *primary)
{
	struct kha_vrrp_fsm f;
	struct kha_vrrp_fsm_config c = {.priority = prio,
					.adver_interval_us = 1 * S,
					.preempt = preempt,
					.primary = ip(primary)};

	kha_vrrp_fsm_init(&f, &c);
	return f;
}

static void test_fsm_timers_formulas(void **state)
{
	(void)state;
	/* RFC 5798 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256 */
	assert_int_equal(kha_vrrp_skew_us(100, 1 * S), 156 * S / 256);
	assert_int_equal(kha_vrrp_master_down_us(100, 1 * S), 3 * S + 156 * S / 256);
	assert_int_equal(kha_vrrp_master_down_us(254, 100 * MS), 300 * MS + 2 * 100 * MS / 256);
	/* a higher priority has a shorter skew: it wins the race when the master dies */
	assert_true(kha_vrrp_master_down_us(200, S) < kha_vrrp_master_down_us(100, S));
}

static void test_fsm_backup_takes_over_when_master_silent(void **state)
{
	struct kha_vrrp_fsm f = make(100, true, "10.0.0.2");
	uint64_t down = kha_vrrp_master_down_us(100, S);
	unsigned act;

	(void)state;
	assert_int_equal(f.state, KHA_VRRP_STATE_INIT);
	assert_int_equal(kha_vrrp_fsm_start(&f, 1000), KHA_VRRP_ACT_STATE);
	assert_int_equal(f.state, KHA_VRRP_STATE_BACKUP);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 1000 + down);
	/* a master's adverts keep restarting Master_Down_Timer */
	assert_int_equal(kha_vrrp_fsm_advert(&f, 1000 + 3 * S, ip("10.0.0.3"), 150, S), 0);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 1000 + 3 * S + down);
	assert_int_equal(f.master, ip("10.0.0.3"));
	assert_int_equal(kha_vrrp_fsm_tick(&f, 1000 + 3 * S + down - 1), 0);
	assert_int_equal(f.state, KHA_VRRP_STATE_BACKUP);
	/* silence: Master_Down_Interval later we are master */
	act = kha_vrrp_fsm_tick(&f, 1000 + 3 * S + down);
	assert_int_equal(act, KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_VIP_ADD);
	assert_int_equal(f.state, KHA_VRRP_STATE_MASTER);
	assert_int_equal(f.master, ip("10.0.0.2"));
	/* then an advert every Advertisement_Interval */
	uint64_t t = 1000 + 3 * S + down;
	assert_int_equal(kha_vrrp_fsm_next_us(&f), t + S);
	assert_int_equal(kha_vrrp_fsm_tick(&f, t + S - 1), 0);
	assert_int_equal(kha_vrrp_fsm_tick(&f, t + S), KHA_VRRP_ACT_ADVERT);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), t + 2 * S);
}

static void test_fsm_priority_zero_means_skew_time(void **state)
{
	struct kha_vrrp_fsm f = make(100, true, "10.0.0.2");

	(void)state;
	kha_ignore(kha_vrrp_fsm_start(&f, 0));
	kha_ignore(kha_vrrp_fsm_advert(&f, 10 * S, ip("10.0.0.3"), 150, S));
	assert_int_equal(kha_vrrp_fsm_advert(&f, 11 * S, ip("10.0.0.3"), 0, S), 0);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 11 * S + kha_vrrp_skew_us(100, S));
	assert_int_equal(kha_vrrp_fsm_tick(&f, 11 * S + kha_vrrp_skew_us(100, S)),
			 KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_VIP_ADD);
	/* as master, a priority 0 from someone else is answered at once */
	assert_int_equal(kha_vrrp_fsm_advert(&f, 12 * S, ip("10.0.0.4"), 0, S),
			 KHA_VRRP_ACT_ADVERT);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 13 * S);
}

static void test_fsm_graceful_stop_and_fault(void **state)
{
	struct kha_vrrp_fsm f = make(100, true, "10.0.0.2");

	(void)state;
	kha_ignore(kha_vrrp_fsm_start(&f, 0));
	kha_ignore(kha_vrrp_fsm_tick(&f, 10 * S));
	assert_int_equal(f.state, KHA_VRRP_STATE_MASTER);
	assert_int_equal(kha_vrrp_fsm_stop(&f, 11 * S),
			 KHA_VRRP_ACT_ADVERT_STOP | KHA_VRRP_ACT_VIP_DEL | KHA_VRRP_ACT_STATE);
	assert_int_equal(f.state, KHA_VRRP_STATE_INIT);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 0);
	/* a backup stops silently */
	kha_ignore(kha_vrrp_fsm_start(&f, 12 * S));
	assert_int_equal(kha_vrrp_fsm_stop(&f, 13 * S), KHA_VRRP_ACT_STATE);

	/* fault as master: priority 0, VIP removed, out of the election until recovery */
	kha_ignore(kha_vrrp_fsm_start(&f, 20 * S));
	kha_ignore(kha_vrrp_fsm_tick(&f, 30 * S));
	assert_int_equal(f.state, KHA_VRRP_STATE_MASTER);
	assert_int_equal(kha_vrrp_fsm_fault(&f, 31 * S),
			 KHA_VRRP_ACT_ADVERT_STOP | KHA_VRRP_ACT_VIP_DEL | KHA_VRRP_ACT_STATE);
	assert_int_equal(f.state, KHA_VRRP_STATE_FAULT);
	assert_int_equal(kha_vrrp_fsm_fault(&f, 31 * S), 0);
	assert_int_equal(kha_vrrp_fsm_tick(&f, 100 * S), 0);
	assert_int_equal(kha_vrrp_fsm_advert(&f, 100 * S, ip("10.0.0.3"), 50, S), 0);
	assert_int_equal(f.state, KHA_VRRP_STATE_FAULT);
	assert_int_equal(kha_vrrp_fsm_recover(&f, 101 * S), KHA_VRRP_ACT_STATE);
	assert_int_equal(f.state, KHA_VRRP_STATE_BACKUP);
	assert_int_equal(kha_vrrp_fsm_recover(&f, 101 * S), 0);
	/* fault as backup: silent */
	assert_int_equal(kha_vrrp_fsm_fault(&f, 102 * S), KHA_VRRP_ACT_STATE);
}

static void test_fsm_master_yields_to_higher_priority_or_address(void **state)
{
	struct kha_vrrp_fsm f = make(100, true, "10.0.0.2");
	unsigned act;

	(void)state;
	kha_ignore(kha_vrrp_fsm_start(&f, 0));
	kha_ignore(kha_vrrp_fsm_tick(&f, 10 * S));
	/* lower priority, or equal priority from a lower address: a second master (a healed
	 * partition): answered at once with an advert and gratuitous ARPs, and we stay master */
	assert_int_equal(kha_vrrp_fsm_advert(&f, 11 * S, ip("10.0.0.9"), 99, S),
			 KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_ANNOUNCE);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 12 * S);
	assert_int_equal(kha_vrrp_fsm_advert(&f, 11 * S, ip("10.0.0.1"), 100, S),
			 KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_ANNOUNCE);
	assert_int_equal(f.state, KHA_VRRP_STATE_MASTER);
	/* equal priority from a higher address: yield (compared as numbers, not bytes) */
	act = kha_vrrp_fsm_advert(&f, 12 * S, ip("10.0.1.1"), 100, 200 * MS);
	assert_int_equal(act, KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_VIP_DEL);
	assert_int_equal(f.state, KHA_VRRP_STATE_BACKUP);
	assert_int_equal(f.master, ip("10.0.1.1"));
	/* the master's interval is adopted (RFC 5798: Master_Adver_Interval) */
	assert_int_equal(f.master_adver_interval_us, 200 * MS);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), 12 * S + kha_vrrp_master_down_us(100, 200 * MS));

	/* a higher priority takes over from a master too */
	f = make(100, true, "10.0.0.2");
	kha_ignore(kha_vrrp_fsm_start(&f, 0));
	kha_ignore(kha_vrrp_fsm_tick(&f, 10 * S));
	assert_int_equal(kha_vrrp_fsm_advert(&f, 11 * S, ip("10.0.0.1"), 101, S),
			 KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_VIP_DEL);
}

static void test_fsm_preemption(void **state)
{
	struct kha_vrrp_fsm f = make(200, true, "10.0.0.2");
	uint64_t down = kha_vrrp_master_down_us(200, S);

	(void)state;
	/* preempt: a lower master's adverts are discarded, so we take over when the timer ends */
	kha_ignore(kha_vrrp_fsm_start(&f, 0));
	for (uint64_t t = S; t < down; t += S)
		assert_int_equal(kha_vrrp_fsm_advert(&f, t, ip("10.0.0.3"), 100, S), 0);
	assert_int_equal(kha_vrrp_fsm_next_us(&f), down);
	assert_int_equal(kha_vrrp_fsm_tick(&f, down),
			 KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_VIP_ADD);

	/* no preempt: a lower master is accepted and keeps the VIP */
	f = make(200, false, "10.0.0.2");
	kha_ignore(kha_vrrp_fsm_start(&f, 0));
	for (uint64_t t = S; t < 10 * S; t += S) {
		assert_int_equal(kha_vrrp_fsm_advert(&f, t, ip("10.0.0.3"), 100, S), 0);
		assert_int_equal(kha_vrrp_fsm_tick(&f, t), 0);
	}
	assert_int_equal(f.state, KHA_VRRP_STATE_BACKUP);
	assert_int_equal(f.master_priority, 100);
	/* ...until it stops */
	kha_ignore(kha_vrrp_fsm_advert(&f, 10 * S, ip("10.0.0.3"), 0, S));
	assert_int_equal(kha_vrrp_fsm_tick(&f, 10 * S + kha_vrrp_skew_us(200, S)),
			 KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_VIP_ADD);
}

static void test_fsm_owner_starts_as_master(void **state)
{
	struct kha_vrrp_fsm f = make(255, true, "10.0.0.2");

	(void)state;
	assert_int_equal(kha_vrrp_fsm_start(&f, 5),
			 KHA_VRRP_ACT_STATE | KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_VIP_ADD);
	assert_int_equal(f.state, KHA_VRRP_STATE_MASTER);
	assert_string_equal(kha_vrrp_state_name(f.state), "MASTER");
	assert_string_equal(kha_vrrp_state_name(KHA_VRRP_STATE_FAULT), "FAULT");
}

/*
 * One's complement has two zeros: a message whose checksum computes to 0x0000 verifies with
 * 0x0000 and 0xffff alike. Both are accepted; the encoder writes 0x0000 (a fuzz finding: the
 * round trip changed 0xffff into 0x0000; fuzz/corpus/vrrp/checksum-ffff.bin).
 */
static void test_packet_checksum_two_zeros(void **state)
{
	static const uint8_t dgram[] = {
		0x45, 0xc0, 0x00, 0x38, 0x00, 0x01, 0x00, 0x00, 0xff, 0x70, 0x19, 0xd9, 0xc0, 0xa8,
		0x00, 0x01, 0xe0, 0x00, 0x00, 0x12, 0x31, 0x33, 0x64, 0x07, 0x00, 0x64, 0xff, 0xff,
		0xc0, 0xa8, 0x00, 0x64, 0xc0, 0xa8, 0x00, 0x65, 0xc0, 0xa8, 0x00, 0x66, 0xc0, 0xa8,
		0x00, 0x67, 0xc0, 0xa8, 0x00, 0x68, 0xc0, 0xa8, 0x00, 0x69, 0xc0, 0xa8, 0x82, 0x0c};
	uint8_t copy[sizeof(dgram)], out[64];
	struct kha_vrrp_ipv4 ip;
	struct kha_vrrp_packet p;
	int n;

	(void)state;
	assert_int_equal(kha_vrrp_decode_ipv4(dgram, sizeof(dgram), &ip, &p), 0);
	assert_int_equal(p.count, 7);
	n = kha_vrrp_encode(&p, ip.src, ip.dst, out, sizeof(out));
	assert_int_equal(n, 36);
	assert_int_equal(out[6], 0x00);
	assert_int_equal(out[7], 0x00);
	assert_memory_equal(out + 8, dgram + 28, 28);
	/* the 0x0000 form decodes too */
	memcpy(copy, dgram, sizeof(dgram));
	copy[26] = copy[27] = 0;
	assert_int_equal(kha_vrrp_decode_ipv4(copy, sizeof(copy), &ip, &p), 0);
	/* and any other value does not */
	copy[27] = 1;
	assert_int_equal(kha_vrrp_decode_ipv4(copy, sizeof(copy), &ip, &p), -EILSEQ);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packet_encode_known_answer),
		cmocka_unit_test(test_packet_checksum_two_zeros),
		cmocka_unit_test(test_packet_decode_round_trip_and_errors),
		cmocka_unit_test(test_packet_decode_ipv4_and_rx_checks),
		cmocka_unit_test(test_packet_garp_frame),
		cmocka_unit_test(test_packet_parse_prefix),
		cmocka_unit_test(test_fsm_timers_formulas),
		cmocka_unit_test(test_fsm_backup_takes_over_when_master_silent),
		cmocka_unit_test(test_fsm_priority_zero_means_skew_time),
		cmocka_unit_test(test_fsm_graceful_stop_and_fault),
		cmocka_unit_test(test_fsm_master_yields_to_higher_priority_or_address),
		cmocka_unit_test(test_fsm_preemption),
		cmocka_unit_test(test_fsm_owner_starts_as_master),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
