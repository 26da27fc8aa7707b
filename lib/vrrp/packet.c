// SPDX-License-Identifier: MIT
/* VRRPv3 advertisements (RFC 5798 5.1), their checksum, the receive checks, gratuitous ARP. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kha/vrrp.h"
#include "kha/banned.h"

/* One's complement sum of 16-bit big-endian words, folded later. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t len)
{
	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

uint16_t kha_vrrp_checksum(const uint8_t *msg, size_t len, uint32_t src, uint32_t dst)
{
	uint8_t pseudo[12];
	uint32_t sum;

	memcpy(pseudo, &src, 4);
	memcpy(pseudo + 4, &dst, 4);
	pseudo[8] = 0;
	pseudo[9] = KHA_VRRP_PROTO;
	pseudo[10] = (uint8_t)(len >> 8);
	pseudo[11] = (uint8_t)len;
	sum = sum16(0, pseudo, sizeof(pseudo));
	sum = sum16(sum, msg, len);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int kha_vrrp_encode(const struct kha_vrrp_packet *p, uint32_t src, uint32_t dst, uint8_t *buf,
		    size_t size)
{
	size_t len = KHA_VRRP_HDR_LEN + 4u * p->count;
	uint16_t ck;

	if (p->count > KHA_VRRP_MAX_ADDRS || p->max_adver_int_cs > 0x0fff || p->version > 15 ||
	    p->type > 15)
		return -EINVAL;
	if (size < len)
		return -ENOBUFS;
	buf[0] = (uint8_t)(p->version << 4 | p->type);
	buf[1] = p->vrid;
	buf[2] = p->priority;
	buf[3] = p->count;
	buf[4] = (uint8_t)(p->max_adver_int_cs >> 8); /* the 4 reserved bits stay 0 */
	buf[5] = (uint8_t)p->max_adver_int_cs;
	buf[6] = 0;
	buf[7] = 0;
	for (unsigned i = 0; i < p->count; i++)
		memcpy(buf + KHA_VRRP_HDR_LEN + 4 * i, &p->addrs[i], 4);
	ck = kha_vrrp_checksum(buf, len, src, dst);
	buf[6] = (uint8_t)(ck >> 8);
	buf[7] = (uint8_t)ck;
	return (int)len;
}

int kha_vrrp_decode(const uint8_t *buf, size_t len, uint32_t src, uint32_t dst,
		    struct kha_vrrp_packet *ret)
{
	struct kha_vrrp_packet p = {};
	size_t need;

	if (len < KHA_VRRP_HDR_LEN)
		return -EMSGSIZE;
	p.version = buf[0] >> 4;
	p.type = buf[0] & 0x0f;
	p.vrid = buf[1];
	p.priority = buf[2];
	p.count = buf[3];
	p.max_adver_int_cs = (uint16_t)((buf[4] & 0x0f) << 8 | buf[5]);
	p.checksum = (uint16_t)(buf[6] << 8 | buf[7]);
	if (p.version != KHA_VRRP_VERSION)
		return -EPROTONOSUPPORT;
	need = KHA_VRRP_HDR_LEN + 4u * p.count;
	if (len < need)
		return -EMSGSIZE;
	if (p.type != KHA_VRRP_TYPE_ADVERT || p.max_adver_int_cs == 0)
		return -EBADMSG;
	/*
	 * The checksum covers the whole VRRP message as received (RFC 5798 5.2.8). Verifying by the
	 * sum accepts both forms of a zero checksum, 0x0000 and 0xffff (one's complement has two
	 * zeros; some stacks send 0xffff, as UDP must); kha_vrrp_encode() writes 0x0000.
	 */
	if (kha_vrrp_checksum(buf, len, src, dst) != 0)
		return -EILSEQ;
	for (unsigned i = 0; i < p.count && i < KHA_VRRP_MAX_ADDRS; i++)
		memcpy(&p.addrs[i], buf + KHA_VRRP_HDR_LEN + 4 * i, 4);
	*ret = p;
	return 0;
}

int kha_vrrp_decode_ipv4(const uint8_t *buf, size_t len, struct kha_vrrp_ipv4 *ret_ip,
			 struct kha_vrrp_packet *ret)
{
	size_t ihl, total;
	uint16_t frag;

	if (len < 20 || buf[0] >> 4 != 4)
		return -EBADMSG;
	ihl = (size_t)(buf[0] & 0x0f) * 4;
	total = (size_t)buf[2] << 8 | buf[3];
	if (ihl < 20 || ihl > len)
		return -EBADMSG;
	ret_ip->ttl = buf[8];
	memcpy(&ret_ip->src, buf + 12, 4);
	memcpy(&ret_ip->dst, buf + 16, 4);
	/* raw sockets hand over the datagram as sent; trust the smaller of both lengths */
	if (total < ihl || total > len)
		return -EMSGSIZE;
	frag = (uint16_t)(buf[6] << 8 | buf[7]);
	if (buf[9] != KHA_VRRP_PROTO || (frag & 0x3fff) != 0)
		return -EBADMSG;
	return kha_vrrp_decode(buf + ihl, total - ihl, ret_ip->src, ret_ip->dst, ret);
}

static const char *const drop_names[KHA_VRRP_DROP__MAX] = {
	[KHA_VRRP_ACCEPT] = "accepted",	     [KHA_VRRP_DROP_MALFORMED] = "malformed",
	[KHA_VRRP_DROP_VERSION] = "version", [KHA_VRRP_DROP_CHECKSUM] = "checksum",
	[KHA_VRRP_DROP_TTL] = "ttl",	     [KHA_VRRP_DROP_VRID] = "vrid",
	[KHA_VRRP_DROP_OWNER] = "owner",     [KHA_VRRP_DROP_SELF] = "self",
	[KHA_VRRP_DROP_PEER] = "peer",	     [KHA_VRRP_DROP_ADDRS] = "addresses",
};

const char *kha_vrrp_drop_name(enum kha_vrrp_drop why)
{
	return (unsigned)why < KHA_VRRP_DROP__MAX ? drop_names[why] : "?";
}

enum kha_vrrp_drop kha_vrrp_drop_from_errno(int err)
{
	switch (err) {
	case 0:
		return KHA_VRRP_ACCEPT;
	case -EPROTONOSUPPORT:
		return KHA_VRRP_DROP_VERSION;
	case -EILSEQ:
		return KHA_VRRP_DROP_CHECKSUM;
	default:
		return KHA_VRRP_DROP_MALFORMED;
	}
}

static bool has_addr(const uint32_t *list, size_t n, uint32_t a)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == a)
			return true;
	return false;
}

enum kha_vrrp_drop kha_vrrp_rx_check(const struct kha_vrrp_rx_rules *rules,
				     const struct kha_vrrp_ipv4 *ip,
				     const struct kha_vrrp_packet *p)
{
	size_t n = KHA_MIN((size_t)p->count, (size_t)KHA_VRRP_MAX_ADDRS);

	if (ip->ttl != KHA_VRRP_TTL)
		return KHA_VRRP_DROP_TTL;
	if (p->vrid != rules->vrid)
		return KHA_VRRP_DROP_VRID;
	if (ip->src == rules->self)
		return KHA_VRRP_DROP_SELF;
	if (rules->npeers && !has_addr(rules->peers, rules->npeers, ip->src))
		return KHA_VRRP_DROP_PEER;
	/* 7.1: MAY check the address list; keepalived drops on a mismatch, and so do we, so
	 * that two virtual routers configured for different VIPs never share a VRID silently */
	if (p->count != rules->naddrs)
		return KHA_VRRP_DROP_ADDRS;
	for (size_t i = 0; i < n; i++)
		if (!has_addr(rules->addrs, rules->naddrs, p->addrs[i]))
			return KHA_VRRP_DROP_ADDRS;
	return KHA_VRRP_ACCEPT;
}

int kha_vrrp_garp_build(uint8_t *buf, size_t size, const uint8_t mac[6], uint32_t ip)
{
	static const uint8_t arp_fixed[8] = {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01};

	if (size < KHA_VRRP_GARP_LEN)
		return -ENOBUFS;
	memset(buf, 0xff, 6); /* broadcast */
	memcpy(buf + 6, mac, 6);
	buf[12] = 0x08; /* ETH_P_ARP */
	buf[13] = 0x06;
	memcpy(buf + 14, arp_fixed, 8); /* Ethernet, IPv4, 6, 4, request */
	memcpy(buf + 22, mac, 6);	/* sender hardware address */
	memcpy(buf + 28, &ip, 4);	/* sender protocol address */
	memset(buf + 32, 0, 6);		/* target hardware address: unknown */
	memcpy(buf + 38, &ip, 4);	/* target protocol address: the same */
	return KHA_VRRP_GARP_LEN;
}

int kha_vrrp_parse_prefix(const char *s, uint32_t *ret_addr, unsigned *ret_prefix,
			  struct kha_diag *d)
{
	char host[INET_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long prefix = 32;
	struct in_addr a;

	if (n == 0 || n >= sizeof(host))
		goto bad;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1)
		goto bad;
	if (slash) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9')
			goto bad;
		prefix = strtoul(slash + 1, &end, 10);
		if (*end || prefix > 32)
			goto bad;
	}
	if (a.s_addr == 0 || (ntohl(a.s_addr) >> 28) == 0xe || ntohl(a.s_addr) == 0xffffffffu ||
	    (ntohl(a.s_addr) >> 24) == 127)
		return kha_diag_set(d, EINVAL,
				    "'%s': not a usable unicast address (any, loopback, multicast "
				    "or broadcast)",
				    s);
	*ret_addr = a.s_addr;
	*ret_prefix = (unsigned)prefix;
	return 0;
bad:
	return kha_diag_set(d, EINVAL,
			    "'%s': expected an IPv4 address with a prefix length, "
			    "such as 10.0.0.100/24",
			    s);
}
