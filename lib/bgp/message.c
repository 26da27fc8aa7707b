// SPDX-License-Identifier: MIT
/*
 * BGP-4 messages (RFC 4271 4) for a speaker that announces and never learns: OPEN with
 * capabilities (RFC 5492, 4760, 6793, 2918), UPDATE, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH.
 *
 * The decoder walks every field of what a peer sends with bounds checks against the message's
 * own length, and answers each defect with the NOTIFICATION code and subcode of RFC 4271 6.1-6.3
 * (the session-reset handling: kha keeps no route, so there is nothing to "treat as withdraw").
 * Nothing received is kept beyond the counters of struct kha_bgp_update.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kha/bgp.h"
#include "bgp-internal.h"
#include "kha/banned.h"

/* path attribute type codes (RFC 4271 5, 1997, 4760, 6793) */
enum {
	ATTR_ORIGIN = 1,
	ATTR_AS_PATH = 2,
	ATTR_NEXT_HOP = 3,
	ATTR_MED = 4,
	ATTR_LOCAL_PREF = 5,
	ATTR_ATOMIC_AGGREGATE = 6,
	ATTR_AGGREGATOR = 7,
	ATTR_COMMUNITIES = 8,
	ATTR_MP_REACH = 14,
	ATTR_MP_UNREACH = 15,
	ATTR_AS4_PATH = 17,
	ATTR_AS4_AGGREGATOR = 18,
};

/* attribute flags (RFC 4271 4.3) */
#define F_OPTIONAL   0x80
#define F_TRANSITIVE 0x40
#define F_PARTIAL    0x20
#define F_EXTENDED   0x10

/* capability codes */
enum {
	CAP_MP = 1,
	CAP_ROUTE_REFRESH = 2,
	CAP_AS4 = 65,
	CAP_ROUTE_REFRESH_OLD = 128,
};

/* Fills an error to send and returns -EBADMSG. */
static int fail(struct kha_bgp_notify *e, uint8_t code, uint8_t subcode, const uint8_t *data,
		size_t len)
{
	if (e) {
		memset(e, 0, sizeof(*e));
		e->code = code;
		e->subcode = subcode;
		e->data_len = KHA_MIN(len, sizeof(e->data));
		if (e->data_len)
			memcpy(e->data, data, e->data_len);
	}
	return -EBADMSG;
}

const char *kha_bgp_error_name(uint8_t code)
{
	static const char *const names[] = {
		[KHA_BGP_ERR_HEADER] = "message header error",
		[KHA_BGP_ERR_OPEN] = "OPEN message error",
		[KHA_BGP_ERR_UPDATE] = "UPDATE message error",
		[KHA_BGP_ERR_HOLD] = "hold timer expired",
		[KHA_BGP_ERR_FSM] = "finite state machine error",
		[KHA_BGP_ERR_CEASE] = "cease",
		[KHA_BGP_ERR_ROUTE_REFRESH] = "ROUTE-REFRESH message error",
	};
	return code < KHA_ARRAY_SIZE(names) && names[code] ? names[code] : "unknown error";
}

const char *kha_bgp_suberror_name(uint8_t code, uint8_t subcode)
{
	static const char *const header[] = {"unspecific", "connection not synchronized",
					     "bad message length", "bad message type"};
	static const char *const open[] = {"unspecific",
					   "unsupported version number",
					   "bad peer AS",
					   "bad BGP identifier",
					   "unsupported optional parameter",
					   "authentication failure",
					   "unacceptable hold time",
					   "unsupported capability"};
	static const char *const update[] = {"unspecific",
					     "malformed attribute list",
					     "unrecognized well-known attribute",
					     "missing well-known attribute",
					     "attribute flags error",
					     "attribute length error",
					     "invalid ORIGIN attribute",
					     "AS routing loop",
					     "invalid NEXT_HOP attribute",
					     "optional attribute error",
					     "invalid network field",
					     "malformed AS_PATH"};
	static const char *const fsm[] = {"unspecified", "unexpected message in OpenSent",
					  "unexpected message in OpenConfirm",
					  "unexpected message in Established"};
	static const char *const cease[] = {"unspecific",
					    "maximum number of prefixes reached",
					    "administrative shutdown",
					    "peer de-configured",
					    "administrative reset",
					    "connection rejected",
					    "other configuration change",
					    "connection collision resolution",
					    "out of resources",
					    "hard reset",
					    "BFD down"};
#define PICK(t) return subcode < KHA_ARRAY_SIZE(t) ? t[subcode] : "unknown subcode"
	switch (code) {
	case KHA_BGP_ERR_HEADER:
		PICK(header);
	case KHA_BGP_ERR_OPEN:
		PICK(open);
	case KHA_BGP_ERR_UPDATE:
		PICK(update);
	case KHA_BGP_ERR_FSM:
		PICK(fsm);
	case KHA_BGP_ERR_CEASE:
		PICK(cease);
	case KHA_BGP_ERR_ROUTE_REFRESH:
		return subcode == KHA_BGP_RR_BAD_LENGTH ? "invalid message length"
							: "unknown subcode";
	default:
		return subcode == 0 ? "unspecific" : "unknown subcode";
	}
#undef PICK
}

/* ---- framing (RFC 4271 6.1) ---- */

int kha_bgp_frame(const uint8_t *buf, size_t len, struct kha_bgp_notify *ret_err)
{
	static const size_t min_len[] = {
		[KHA_BGP_OPEN] = KHA_BGP_OPEN_MIN,
		[KHA_BGP_UPDATE] = KHA_BGP_HDR_LEN + 4,
		[KHA_BGP_NOTIFICATION] = KHA_BGP_HDR_LEN + 2,
		[KHA_BGP_KEEPALIVE] = KHA_BGP_HDR_LEN,
		[KHA_BGP_ROUTE_REFRESH] = KHA_BGP_HDR_LEN, /* its own error: RFC 7313 5 */
	};
	uint16_t mlen;
	uint8_t type;

	if (len < KHA_BGP_HDR_LEN)
		return 0;
	for (int i = 0; i < 16; i++)
		if (buf[i] != 0xff)
			return fail(ret_err, KHA_BGP_ERR_HEADER, KHA_BGP_HDR_NOT_SYNC, NULL, 0);
	mlen = kha_bgp__get16(buf + 16);
	type = buf[18];
	if (mlen < KHA_BGP_HDR_LEN || mlen > KHA_BGP_MAX_LEN)
		return fail(ret_err, KHA_BGP_ERR_HEADER, KHA_BGP_HDR_BAD_LENGTH, buf + 16, 2);
	if (type < KHA_BGP_OPEN || type > KHA_BGP_ROUTE_REFRESH)
		return fail(ret_err, KHA_BGP_ERR_HEADER, KHA_BGP_HDR_BAD_TYPE, buf + 18, 1);
	if (mlen < min_len[type] || (type == KHA_BGP_KEEPALIVE && mlen != KHA_BGP_HDR_LEN))
		return fail(ret_err, KHA_BGP_ERR_HEADER, KHA_BGP_HDR_BAD_LENGTH, buf + 16, 2);
	return len < mlen ? 0 : mlen;
}

/* ---- OPEN (RFC 4271 4.2, 6.2; RFC 5492) ---- */

static int decode_caps(const uint8_t *p, size_t len, struct kha_bgp_open *o,
		       struct kha_bgp_notify *e)
{
	while (len) {
		uint8_t code, clen;

		if (len < 2)
			return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
		code = p[0];
		clen = p[1];
		if ((size_t)clen + 2 > len)
			return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
		switch (code) {
		case CAP_MP:
			if (clen != 4)
				return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
			o->cap_mp = true;
			if (p[5] == KHA_BGP_SAFI_UNICAST) {
				if (kha_bgp__get16(p + 2) == KHA_BGP_AFI_IPV4)
					o->cap_ipv4 = true;
				else if (kha_bgp__get16(p + 2) == KHA_BGP_AFI_IPV6)
					o->cap_ipv6 = true;
			}
			break;
		case CAP_ROUTE_REFRESH:
		case CAP_ROUTE_REFRESH_OLD:
			if (clen != 0)
				return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
			o->cap_route_refresh = true;
			break;
		case CAP_AS4:
			if (clen != 4)
				return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
			o->cap_as4 = true;
			o->as = kha_bgp__get32(p + 2);
			break;
		default:
			o->caps_unknown++; /* RFC 5492 3: ignore what we do not know */
		}
		p += 2 + clen;
		len -= 2u + clen;
	}
	return 0;
}

static int decode_open(const uint8_t *buf, size_t len, struct kha_bgp_open *o,
		       struct kha_bgp_notify *e)
{
	static const uint8_t version[2] = {0, KHA_BGP_VERSION};
	const uint8_t *p = buf + KHA_BGP_HDR_LEN;
	size_t optlen;
	int r;

	memset(o, 0, sizeof(*o));
	o->version = p[0];
	if (o->version != KHA_BGP_VERSION)
		/* the data is the largest version we support (RFC 4271 6.2) */
		return fail(e, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_VERSION, version, 2);
	o->my_as = kha_bgp__get16(p + 1);
	o->hold_time = kha_bgp__get16(p + 3);
	memcpy(&o->id, p + 5, 4);
	optlen = p[9];
	if (KHA_BGP_OPEN_MIN + optlen != len)
		return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
	p += 10;
	while (optlen) {
		uint8_t type, plen;

		if (optlen < 2)
			return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
		type = p[0];
		plen = p[1];
		if ((size_t)plen + 2 > optlen)
			return fail(e, KHA_BGP_ERR_OPEN, 0, NULL, 0);
		if (type != 2) /* Capabilities is the only optional parameter left in use */
			return fail(e, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_OPT_PARAM, NULL, 0);
		r = decode_caps(p + 2, plen, o, e);
		if (r < 0)
			return r;
		p += 2 + plen;
		optlen -= 2u + plen;
	}
	if (!o->cap_as4)
		o->as = o->my_as;
	return 0;
}

int kha_bgp_open_check(const struct kha_bgp_open *o, const struct kha_bgp_open_rules *rules,
		       struct kha_bgp_notify *ret_err)
{
	uint8_t as2[2];

	if (o->version != KHA_BGP_VERSION) {
		static const uint8_t version[2] = {0, KHA_BGP_VERSION};

		return fail(ret_err, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_VERSION, version, 2);
	}
	kha_bgp__put16(as2, o->my_as);
	if (rules->peer_as && o->as != rules->peer_as)
		return fail(ret_err, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_PEER_AS, as2, 2);
	/* RFC 6793 4.2: a 2-octet field that disagrees with the capability, except AS_TRANS */
	if (o->cap_as4 && o->as <= 0xffff && o->my_as != o->as && o->my_as != KHA_BGP_AS_TRANS)
		return fail(ret_err, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_PEER_AS, as2, 2);
	if (o->hold_time == 1 || o->hold_time == 2)
		return fail(ret_err, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_HOLD, NULL, 0);
	/* RFC 6286 2.2: zero is never valid; the same as ours only matters within an AS */
	if (o->id == 0 || (rules->ibgp && o->id == rules->local_id))
		return fail(ret_err, KHA_BGP_ERR_OPEN, KHA_BGP_OPEN_BAD_ID, NULL, 0);
	return 0;
}

static int header(uint8_t *buf, size_t size, size_t len, uint8_t type)
{
	if (len > KHA_BGP_MAX_LEN)
		return -EINVAL;
	if (size < len)
		return -ENOBUFS;
	memset(buf, 0xff, 16);
	kha_bgp__put16(buf + 16, (uint16_t)len);
	buf[18] = type;
	return (int)len;
}

int kha_bgp_encode_open(const struct kha_bgp_open *o, uint8_t *buf, size_t size)
{
	uint8_t caps[64];
	size_t n = 0;
	int r;

	if (o->cap_ipv4) {
		const uint8_t c[] = {CAP_MP, 4, 0, KHA_BGP_AFI_IPV4, 0, KHA_BGP_SAFI_UNICAST};

		memcpy(caps + n, c, sizeof(c));
		n += sizeof(c);
	}
	if (o->cap_ipv6) {
		const uint8_t c[] = {CAP_MP, 4, 0, KHA_BGP_AFI_IPV6, 0, KHA_BGP_SAFI_UNICAST};

		memcpy(caps + n, c, sizeof(c));
		n += sizeof(c);
	}
	if (o->cap_route_refresh) {
		caps[n++] = CAP_ROUTE_REFRESH;
		caps[n++] = 0;
	}
	if (o->cap_as4) {
		caps[n++] = CAP_AS4;
		caps[n++] = 4;
		kha_bgp__put32(caps + n, o->as);
		n += 4;
	}
	if (!o->cap_as4 && o->as > 0xffff)
		return -EINVAL; /* a 4-octet AS cannot be said without the capability */
	r = header(buf, size, KHA_BGP_OPEN_MIN + (n ? n + 2 : 0), KHA_BGP_OPEN);
	if (r < 0)
		return r;
	buf[19] = KHA_BGP_VERSION;
	kha_bgp__put16(buf + 20, (uint16_t)(o->as > 0xffff ? KHA_BGP_AS_TRANS : o->as));
	kha_bgp__put16(buf + 22, o->hold_time);
	memcpy(buf + 24, &o->id, 4);
	buf[28] = (uint8_t)(n ? n + 2 : 0);
	if (n) {
		buf[29] = 2; /* Capabilities */
		buf[30] = (uint8_t)n;
		memcpy(buf + 31, caps, n);
	}
	return r;
}

int kha_bgp_encode_keepalive(uint8_t *buf, size_t size)
{
	return header(buf, size, KHA_BGP_HDR_LEN, KHA_BGP_KEEPALIVE);
}

int kha_bgp_encode_notification(const struct kha_bgp_notify *n, uint8_t *buf, size_t size)
{
	size_t dlen = KHA_MIN(n->data_len, sizeof(n->data));
	int r = header(buf, size, KHA_BGP_HDR_LEN + 2 + dlen, KHA_BGP_NOTIFICATION);

	if (r < 0)
		return r;
	buf[19] = n->code;
	buf[20] = n->subcode;
	memcpy(buf + 21, n->data, dlen);
	return r;
}

/* ---- UPDATE (RFC 4271 4.3, 6.3; RFC 4760) ---- */

static size_t prefix_bytes(uint8_t plen)
{
	return (plen + 7u) / 8;
}

/*
 * Walks a list of prefixes of family afi (1 or 2) in [p, p + len): counts them, keeps the first.
 * Returns the count or -1 when a length is beyond the family's or a prefix overruns the list.
 */
static int walk_prefixes(const uint8_t *p, size_t len, uint16_t afi, struct kha_bgp_prefix *first)
{
	unsigned max = afi == KHA_BGP_AFI_IPV6 ? 128 : 32;
	int n = 0;

	while (len) {
		uint8_t plen = p[0];
		size_t nb = prefix_bytes(plen);

		if (plen > max || nb + 1 > len)
			return -1;
		if (first && n == 0 && !first->addr.family) {
			first->addr.family = afi == KHA_BGP_AFI_IPV6 ? AF_INET6 : AF_INET;
			memset(first->addr.a, 0, sizeof(first->addr.a));
			memcpy(first->addr.a, p + 1, nb);
			first->len = plen;
		}
		p += nb + 1;
		len -= nb + 1;
		n++;
	}
	return n;
}

/* The expected flags (optional, transitive) of the attributes we know; 0xff: not known. */
static uint8_t known_flags(uint8_t type)
{
	switch (type) {
	case ATTR_ORIGIN:
	case ATTR_AS_PATH:
	case ATTR_NEXT_HOP:
	case ATTR_LOCAL_PREF:
	case ATTR_ATOMIC_AGGREGATE:
		return F_TRANSITIVE;
	case ATTR_MED:
	case ATTR_MP_REACH:
	case ATTR_MP_UNREACH:
		return F_OPTIONAL;
	case ATTR_AGGREGATOR:
	case ATTR_COMMUNITIES:
	case ATTR_AS4_PATH:
	case ATTR_AS4_AGGREGATOR:
		return F_OPTIONAL | F_TRANSITIVE;
	default:
		return 0xff;
	}
}

/* Checks an AS_PATH value: segments of type 1..4, count >= 1, each AS asize bytes. */
static bool as_path_ok(const uint8_t *p, size_t len, size_t asize, uint32_t *first_as)
{
	while (len) {
		size_t seg;

		if (len < 2 || p[0] < 1 || p[0] > 4 || p[1] == 0)
			return false;
		seg = 2 + (size_t)p[1] * asize;
		if (seg > len)
			return false;
		if (first_as && !*first_as)
			*first_as = asize == 4 ? kha_bgp__get32(p + 2) : kha_bgp__get16(p + 2);
		p += seg;
		len -= seg;
	}
	return true;
}

static int decode_attr(uint8_t flags, uint8_t type, const uint8_t *v, size_t vlen, bool as4,
		       const uint8_t *whole, size_t wlen, struct kha_bgp_update *u,
		       struct kha_bgp_notify *e)
{
	size_t expect = SIZE_MAX;
	uint16_t afi;
	int n;

	switch (type) {
	case ATTR_ORIGIN:
		expect = 1;
		break;
	case ATTR_NEXT_HOP:
	case ATTR_MED:
	case ATTR_LOCAL_PREF:
		expect = 4;
		break;
	case ATTR_ATOMIC_AGGREGATE:
		expect = 0;
		break;
	case ATTR_AGGREGATOR:
		expect = as4 ? 8 : 6;
		break;
	case ATTR_AS4_AGGREGATOR:
		expect = 8;
		break;
	}
	if ((expect != SIZE_MAX && vlen != expect) || (type == ATTR_COMMUNITIES && vlen % 4))
		return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_ATTR_LENGTH, whole, wlen);
	switch (type) {
	case ATTR_ORIGIN:
		if (v[0] > 2)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_BAD_ORIGIN, whole, wlen);
		u->origin = v[0];
		break;
	case ATTR_AS_PATH:
		if (!as_path_ok(v, vlen, as4 ? 4 : 2, &u->first_as))
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MALFORMED_AS_PATH, NULL, 0);
		break;
	case ATTR_AS4_PATH:
		/* RFC 6793 6: a malformed AS4_PATH is discarded, not a session error */
		if (!as_path_ok(v, vlen, 4, NULL))
			u->attrs &= ~(1u << ATTR_AS4_PATH);
		break;
	case ATTR_NEXT_HOP:
		u->next_hop.family = AF_INET;
		memset(u->next_hop.a, 0, sizeof(u->next_hop.a));
		memcpy(u->next_hop.a, v, 4);
		/* RFC 4271 6.3: syntactically incorrect: 0.0.0.0, or a multicast address */
		if (kha_bgp__get32(v) == 0 || (v[0] & 0xf0) == 0xe0)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_BAD_NEXT_HOP, whole, wlen);
		break;
	case ATTR_MED:
		u->med = kha_bgp__get32(v);
		break;
	case ATTR_LOCAL_PREF:
		u->local_pref = kha_bgp__get32(v);
		break;
	case ATTR_COMMUNITIES:
		for (size_t i = 0; i < vlen / 4; i++) {
			if (i < KHA_BGP_MAX_COMMUNITIES)
				u->communities[i] = kha_bgp__get32(v + 4 * i);
		}
		u->ncommunities = vlen / 4;
		break;
	case ATTR_MP_REACH: {
		size_t nhlen, off;

		if (vlen < 5)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_OPT_ATTR, whole, wlen);
		afi = kha_bgp__get16(v);
		nhlen = v[3];
		off = 4 + nhlen + 1; /* next hop, then one reserved octet (RFC 4760 3) */
		if (off > vlen)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_OPT_ATTR, whole, wlen);
		u->mp_reach_afi = afi;
		if (afi == KHA_BGP_AFI_IPV6 && (nhlen == 16 || nhlen == 32)) {
			u->next_hop.family = AF_INET6;
			memcpy(u->next_hop.a, v + 4, 16);
		} else if (afi == KHA_BGP_AFI_IPV4 && nhlen == 4) {
			u->next_hop.family = AF_INET;
			memset(u->next_hop.a, 0, sizeof(u->next_hop.a));
			memcpy(u->next_hop.a, v + 4, 4);
		}
		if ((afi == KHA_BGP_AFI_IPV4 || afi == KHA_BGP_AFI_IPV6) &&
		    v[2] == KHA_BGP_SAFI_UNICAST) {
			n = walk_prefixes(v + off, vlen - off, afi, &u->first);
			if (n < 0)
				return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_OPT_ATTR, whole,
					    wlen);
			u->mp_reach = (unsigned)n;
		}
		break;
	}
	case ATTR_MP_UNREACH:
		if (vlen < 3)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_OPT_ATTR, whole, wlen);
		afi = kha_bgp__get16(v);
		u->mp_unreach_afi = afi;
		if ((afi == KHA_BGP_AFI_IPV4 || afi == KHA_BGP_AFI_IPV6) &&
		    v[2] == KHA_BGP_SAFI_UNICAST) {
			n = walk_prefixes(v + 3, vlen - 3, afi, NULL);
			if (n < 0)
				return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_OPT_ATTR, whole,
					    wlen);
			u->mp_unreach = (unsigned)n;
		}
		break;
	}
	(void)flags;
	return 0;
}

static int decode_update(const uint8_t *buf, size_t len, bool as4, struct kha_bgp_update *u,
			 struct kha_bgp_notify *e)
{
	const uint8_t *p = buf + KHA_BGP_HDR_LEN, *end = buf + len, *a, *aend;
	size_t wlen, alen;
	uint32_t seen = 0;
	bool seen_hi[256] = {};
	int n;

	memset(u, 0, sizeof(*u));
	wlen = kha_bgp__get16(p);
	if (2 + wlen + 2 > (size_t)(end - p))
		return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MALFORMED_ATTRS, NULL, 0);
	n = walk_prefixes(p + 2, wlen, KHA_BGP_AFI_IPV4, NULL);
	if (n < 0)
		return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_BAD_NETWORK, NULL, 0);
	u->withdrawn = (unsigned)n;
	p += 2 + wlen;
	alen = kha_bgp__get16(p);
	p += 2;
	if (alen > (size_t)(end - p))
		return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MALFORMED_ATTRS, NULL, 0);
	a = p;
	aend = p + alen;
	while (a < aend) {
		uint8_t flags, type, want;
		size_t hlen, vlen;
		int r;

		if (aend - a < 3)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MALFORMED_ATTRS, NULL, 0);
		flags = a[0];
		type = a[1];
		hlen = flags & F_EXTENDED ? 4 : 3;
		if ((size_t)(aend - a) < hlen)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MALFORMED_ATTRS, NULL, 0);
		vlen = flags & F_EXTENDED ? kha_bgp__get16(a + 2) : a[2];
		if (vlen > (size_t)(aend - a) - hlen)
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_ATTR_LENGTH, NULL, 0);
		if (seen_hi[type]) /* RFC 4271 6.3: an attribute appears at most once */
			return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MALFORMED_ATTRS, NULL, 0);
		seen_hi[type] = true;
		want = known_flags(type);
		if (want == 0xff) {
			if (!(flags & F_OPTIONAL))
				return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_UNKNOWN_WELL_KNOWN,
					    a, hlen + vlen);
			/* an unknown optional attribute: passed over (we pass nothing on) */
		} else {
			/* the Partial bit may be set only on optional transitive attributes */
			if ((flags & (F_OPTIONAL | F_TRANSITIVE)) != want ||
			    ((flags & F_PARTIAL) && want != (F_OPTIONAL | F_TRANSITIVE)))
				return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_ATTR_FLAGS, a,
					    hlen + vlen);
			if (type < 32)
				seen |= 1u << type;
			u->attrs = seen;
			r = decode_attr(flags, type, a + hlen, vlen, as4, a, hlen + vlen, u, e);
			if (r < 0)
				return r;
			seen = u->attrs;
		}
		a += hlen + vlen;
	}
	u->attrs = seen;
	n = walk_prefixes(aend, (size_t)(end - aend), KHA_BGP_AFI_IPV4, &u->first);
	if (n < 0)
		return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_BAD_NETWORK, NULL, 0);
	u->nlri = (unsigned)n;
	if (u->nlri || u->mp_reach) {
		/* RFC 4271 6.3 and RFC 4760 3: what every announcement carries */
		static const uint8_t need[] = {ATTR_ORIGIN, ATTR_AS_PATH, ATTR_NEXT_HOP};

		for (size_t i = 0; i < KHA_ARRAY_SIZE(need); i++) {
			if (need[i] == ATTR_NEXT_HOP && !u->nlri)
				continue;
			if (!(seen & (1u << need[i])))
				return fail(e, KHA_BGP_ERR_UPDATE, KHA_BGP_UPD_MISSING_WELL_KNOWN,
					    &need[i], 1);
		}
	}
	u->end_of_rib = !u->withdrawn && !u->nlri && !u->mp_reach &&
			(alen == 0 || (seen == 1u << ATTR_MP_UNREACH && !u->mp_unreach));
	return 0;
}

int kha_bgp_decode(const uint8_t *buf, size_t len, bool as4, struct kha_bgp_msg *ret,
		   struct kha_bgp_notify *ret_err)
{
	struct kha_bgp_msg m = {};
	int r = kha_bgp_frame(buf, len, ret_err);

	if (r < 0)
		return r;
	if (r == 0 || (size_t)r != len)
		return fail(ret_err, KHA_BGP_ERR_HEADER, KHA_BGP_HDR_BAD_LENGTH, buf + 16, 2);
	m.type = buf[18];
	m.len = (uint16_t)len;
	switch (m.type) {
	case KHA_BGP_OPEN:
		r = decode_open(buf, len, &m.open, ret_err);
		break;
	case KHA_BGP_UPDATE:
		r = decode_update(buf, len, as4, &m.update, ret_err);
		break;
	case KHA_BGP_NOTIFICATION:
		m.notification.code = buf[19];
		m.notification.subcode = buf[20];
		m.notification.data_len = KHA_MIN(len - 21, sizeof(m.notification.data));
		memcpy(m.notification.data, buf + 21, m.notification.data_len);
		break;
	case KHA_BGP_ROUTE_REFRESH:
		if (len != KHA_BGP_HDR_LEN + 4)
			return fail(ret_err, KHA_BGP_ERR_ROUTE_REFRESH, KHA_BGP_RR_BAD_LENGTH, buf,
				    KHA_MIN(len, sizeof(ret_err->data)));
		m.refresh.afi = kha_bgp__get16(buf + 19);
		m.refresh.safi = buf[22];
		break;
	}
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}

static size_t put_prefixes(uint8_t *p, const struct kha_bgp_prefix *pf, size_t n)
{
	size_t off = 0;

	for (size_t i = 0; i < n; i++) {
		size_t nb = prefix_bytes(pf[i].len);

		p[off] = pf[i].len;
		memcpy(p + off + 1, pf[i].addr.a, nb);
		/* the bits beyond the length are zero on the wire */
		if (pf[i].len % 8)
			p[off + nb] &= (uint8_t)(0xff << (8 - pf[i].len % 8));
		off += nb + 1;
	}
	return off;
}

static size_t prefixes_size(const struct kha_bgp_prefix *pf, size_t n, int *ret_family)
{
	size_t sz = 0;

	*ret_family = n ? pf[0].addr.family : 0;
	for (size_t i = 0; i < n; i++) {
		unsigned max = pf[i].addr.family == AF_INET6 ? 128 : 32;

		if (pf[i].addr.family != *ret_family || pf[i].len > max)
			*ret_family = -1;
		sz += 1 + prefix_bytes(pf[i].len);
	}
	return sz;
}

/* Writes an attribute header; extended length when the value needs it. Returns its length. */
static size_t put_attr_hdr(uint8_t *p, uint8_t flags, uint8_t type, size_t vlen)
{
	if (vlen > 255) {
		p[0] = flags | F_EXTENDED;
		p[1] = type;
		kha_bgp__put16(p + 2, (uint16_t)vlen);
		return 4;
	}
	p[0] = flags;
	p[1] = type;
	p[2] = (uint8_t)vlen;
	return 3;
}

int kha_bgp_encode_announce(const struct kha_bgp_prefix *pf, size_t n,
			    const struct kha_bgp_attrs *at, uint8_t *buf, size_t size)
{
	uint8_t attrs[1024];
	size_t al = 0, plen, total;
	int family, r;
	bool trans = at->ebgp && !at->as4 && at->local_as > 0xffff;

	plen = prefixes_size(pf, n, &family);
	if (!n || family < 0 || at->next_hop.family != family ||
	    at->ncommunities > KHA_BGP_MAX_COMMUNITIES || plen > 512)
		return -EINVAL;
	/* ORIGIN IGP */
	al += put_attr_hdr(attrs + al, F_TRANSITIVE, ATTR_ORIGIN, 1);
	attrs[al++] = 0;
	/* AS_PATH: ours alone on eBGP (RFC 4271 5.1.2), empty within the AS */
	if (at->ebgp) {
		size_t asz = at->as4 ? 4 : 2;

		al += put_attr_hdr(attrs + al, F_TRANSITIVE, ATTR_AS_PATH, 2 + asz);
		attrs[al++] = 2; /* AS_SEQUENCE */
		attrs[al++] = 1;
		if (at->as4)
			kha_bgp__put32(attrs + al, at->local_as);
		else
			kha_bgp__put16(attrs + al,
				       (uint16_t)(trans ? KHA_BGP_AS_TRANS : at->local_as));
		al += asz;
	} else {
		al += put_attr_hdr(attrs + al, F_TRANSITIVE, ATTR_AS_PATH, 0);
	}
	if (family == AF_INET) {
		al += put_attr_hdr(attrs + al, F_TRANSITIVE, ATTR_NEXT_HOP, 4);
		memcpy(attrs + al, at->next_hop.a, 4);
		al += 4;
	}
	if (at->has_med) {
		al += put_attr_hdr(attrs + al, F_OPTIONAL, ATTR_MED, 4);
		kha_bgp__put32(attrs + al, at->med);
		al += 4;
	}
	if (!at->ebgp) {
		al += put_attr_hdr(attrs + al, F_TRANSITIVE, ATTR_LOCAL_PREF, 4);
		kha_bgp__put32(attrs + al, at->local_pref);
		al += 4;
	}
	if (at->ncommunities) {
		al += put_attr_hdr(attrs + al, F_OPTIONAL | F_TRANSITIVE, ATTR_COMMUNITIES,
				   4 * at->ncommunities);
		for (size_t i = 0; i < at->ncommunities; i++, al += 4)
			kha_bgp__put32(attrs + al, at->communities[i]);
	}
	if (family == AF_INET6) {
		/* RFC 2545 3: a global next hop of 16 octets */
		size_t vlen = 2 + 1 + 1 + 16 + 1 + plen;

		al += put_attr_hdr(attrs + al, F_OPTIONAL, ATTR_MP_REACH, vlen);
		kha_bgp__put16(attrs + al, KHA_BGP_AFI_IPV6);
		attrs[al + 2] = KHA_BGP_SAFI_UNICAST;
		attrs[al + 3] = 16;
		memcpy(attrs + al + 4, at->next_hop.a, 16);
		attrs[al + 20] = 0;
		al += 21;
		al += put_prefixes(attrs + al, pf, n);
	}
	if (trans) {
		/* RFC 6793 4.2.2: the real path for 4-octet speakers behind an old one */
		al += put_attr_hdr(attrs + al, F_OPTIONAL | F_TRANSITIVE, ATTR_AS4_PATH, 6);
		attrs[al++] = 2;
		attrs[al++] = 1;
		kha_bgp__put32(attrs + al, at->local_as);
		al += 4;
	}
	total = KHA_BGP_HDR_LEN + 2 + 2 + al + (family == AF_INET ? plen : 0);
	r = header(buf, size, total, KHA_BGP_UPDATE);
	if (r < 0)
		return r;
	kha_bgp__put16(buf + 19, 0);
	kha_bgp__put16(buf + 21, (uint16_t)al);
	memcpy(buf + 23, attrs, al);
	if (family == AF_INET)
		put_prefixes(buf + 23 + al, pf, n);
	return r;
}

int kha_bgp_encode_withdraw(const struct kha_bgp_prefix *pf, size_t n, uint8_t *buf, size_t size)
{
	size_t plen, total;
	int family, r;

	plen = prefixes_size(pf, n, &family);
	if (!n || family < 0 || plen > 1024)
		return -EINVAL;
	if (family == AF_INET) {
		total = KHA_BGP_HDR_LEN + 2 + plen + 2;
		r = header(buf, size, total, KHA_BGP_UPDATE);
		if (r < 0)
			return r;
		kha_bgp__put16(buf + 19, (uint16_t)plen);
		put_prefixes(buf + 21, pf, n);
		kha_bgp__put16(buf + 21 + plen, 0);
		return r;
	}
	{
		size_t vlen = 3 + plen, hl = vlen > 255 ? 4 : 3, off;

		total = KHA_BGP_HDR_LEN + 2 + 2 + hl + vlen;
		r = header(buf, size, total, KHA_BGP_UPDATE);
		if (r < 0)
			return r;
		kha_bgp__put16(buf + 19, 0);
		kha_bgp__put16(buf + 21, (uint16_t)(hl + vlen));
		off = 23 + put_attr_hdr(buf + 23, F_OPTIONAL, ATTR_MP_UNREACH, vlen);
		kha_bgp__put16(buf + off, KHA_BGP_AFI_IPV6);
		buf[off + 2] = KHA_BGP_SAFI_UNICAST;
		put_prefixes(buf + off + 3, pf, n);
		return r;
	}
}

/* ---- text ---- */

int kha_bgp_parse_addr(const char *s, struct kha_bgp_addr *ret, struct kha_diag *d)
{
	struct kha_bgp_addr a = {};

	if (inet_pton(AF_INET, s, a.a) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, a.a) == 1)
		a.family = AF_INET6;
	else
		return kha_diag_set(d, EINVAL, "'%s': expected an IPv4 or IPv6 address", s);
	*ret = a;
	return 0;
}

int kha_bgp_parse_prefix(const char *s, struct kha_bgp_prefix *ret, struct kha_diag *d)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	struct kha_bgp_prefix p = {};
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t len;
	unsigned max;

	if (n >= sizeof(host))
		return kha_diag_set(d, EINVAL, "'%s': expected ADDR/LEN", s);
	memcpy(host, s, n);
	host[n] = '\0';
	if (kha_bgp_parse_addr(host, &p.addr, NULL) < 0)
		return kha_diag_set(d, EINVAL, "'%s': expected ADDR/LEN (10.0.0.100/32)", s);
	max = p.addr.family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;

		errno = 0;
		len = strtoull(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || len > max)
			return kha_diag_set(d, EINVAL, "'%s': the length must be 0..%u", s, max);
	} else {
		len = max;
	}
	p.len = (uint8_t)len;
	for (unsigned bit = p.len; bit < max; bit++)
		if (p.addr.a[bit / 8] & (0x80 >> (bit % 8)))
			return kha_diag_set(d, EINVAL, "'%s': host bits set beyond /%u", s, p.len);
	*ret = p;
	return 0;
}

int kha_bgp_parse_community(const char *s, uint32_t *ret, struct kha_diag *d)
{
	static const struct {
		const char *name;
		uint32_t value;
	} names[] = {
		{"graceful-shutdown", KHA_BGP_COMMUNITY_GRACEFUL_SHUTDOWN},
		{"blackhole", 0xffff029a},
		{"no-export", 0xffffff01},
		{"no-advertise", 0xffffff02},
		{"no-export-subconfed", 0xffffff03},
	};
	unsigned long long hi, lo;
	char *end;

	for (size_t i = 0; i < KHA_ARRAY_SIZE(names); i++)
		if (strcmp(s, names[i].name) == 0) {
			*ret = names[i].value;
			return 0;
		}
	errno = 0;
	hi = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		goto bad;
	if (*end == ':') {
		const char *q = end + 1;

		lo = strtoull(q, &end, 10);
		if (errno || end == q || *end || *q == '-' || hi > 0xffff || lo > 0xffff)
			goto bad;
		*ret = (uint32_t)(hi << 16 | lo);
		return 0;
	}
	if (*end || hi > 0xffffffffull)
		goto bad;
	*ret = (uint32_t)hi;
	return 0;
bad:
	return kha_diag_set(d, EINVAL,
			    "'%s': expected a community ASN:VALUE (65000:100, each 0-65535), a "
			    "number or a well-known name (graceful-shutdown, no-export ...)",
			    s);
}

const char *kha_bgp_addr_str(const struct kha_bgp_addr *a, char *buf, size_t size)
{
	if (!a->family || !inet_ntop(a->family, a->a, buf, (socklen_t)size))
		snprintf(buf, size, "%s", "");
	return buf;
}

bool kha_bgp_addr_equal(const struct kha_bgp_addr *a, const struct kha_bgp_addr *b)
{
	return a->family == b->family && memcmp(a->a, b->a, a->family == AF_INET ? 4 : 16) == 0;
}
