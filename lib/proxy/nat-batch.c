// SPDX-License-Identifier: MIT
/*
 * kha proxy --mode nat, the pure part: the plan (which backends own which slots), the nftables
 * batch that installs it (libnftnl builds the messages) and the parser of the kernel's
 * acknowledgements. No I/O: unit-tested (tests/unit/test-proxy-nat.c) and fuzzed
 * (fuzz/fuzz-nat-acks.c). The glue that sends them is nat.c.
 */
#include <arpa/inet.h>
#include <string.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <linux/rtnetlink.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "nat-internal.h"
#include "kha/banned.h"

/* nft's datatype numbers (TYPE_BITS 6 per concatenated type), so `nft list` prints the map */
#define NFT_TYPE_INTEGER      4
#define NFT_TYPE_IPADDR	      7
#define NFT_TYPE_INET_SERVICE 13
#define NFT_TYPE_CONCAT(a, b) (((a) << 6) | (b))

#define MAP_NAME      "backends"
#define MAP_ID	      1
#define ELEMS_PER_MSG 256

static uint32_t gcd(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

void kha_proxy__nat_plan(const struct kha_proxy_nat_cand *c, size_t n,
			 enum kha_proxy_balance balance, struct kha_proxy_nat_plan *ret)
{
	enum kha_proxy_state tier = KHA_PROXY_NSTATES;
	uint32_t g = 0, sum = 0;

	memset(ret, 0, sizeof(*ret));
	ret->balance = balance;
	for (size_t i = 0; i < n; i++)
		if (c[i].weight > 0 && c[i].state < tier)
			tier = c[i].state;
	for (size_t i = 0; i < n && ret->n < KHA_PROXY_NAT_TARGETS_MAX; i++) {
		if (c[i].weight == 0 || c[i].state != tier)
			continue;
		ret->t[ret->n].addr = c[i].addr;
		ret->t[ret->n].port = c[i].port;
		ret->t[ret->n].weight = c[i].weight;
		g = gcd(g, c[i].weight);
		ret->n++;
	}
	for (size_t i = 0; i < ret->n; i++) {
		ret->t[i].weight /= g;
		sum += ret->t[i].weight;
	}
	if (sum > KHA_PROXY_NAT_SLOTS_MAX) {
		uint32_t scaled = 0;
		for (size_t i = 0; i < ret->n; i++) {
			uint64_t w = (uint64_t)ret->t[i].weight * KHA_PROXY_NAT_SLOTS_MAX / sum;
			ret->t[i].weight = w ? (uint32_t)w : 1;
			scaled += ret->t[i].weight;
		}
		sum = scaled;
	}
	ret->slots = sum;
}

bool kha_proxy__nat_plan_equal(const struct kha_proxy_nat_plan *a,
			       const struct kha_proxy_nat_plan *b)
{
	if (a->balance != b->balance || a->n != b->n || a->slots != b->slots)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->t[i].addr.s_addr != b->t[i].addr.s_addr || a->t[i].port != b->t[i].port ||
		    a->t[i].weight != b->t[i].weight)
			return false;
	return true;
}

/* ---- the batch ---- */

struct batch {
	char *buf;
	size_t len, cap;
	uint32_t seq;
	unsigned nacks;
	bool oom;
};

/* room for one more message of up to need bytes, at buf + len */
static char *batch_room(struct batch *b, size_t need)
{
	if (b->oom)
		return NULL;
	if (KHA_GROW(b->buf, b->cap, b->len + need) < 0) {
		b->oom = true;
		return NULL;
	}
	memset(b->buf + b->len, 0, need);
	return b->buf + b->len;
}

static void batch_close(struct batch *b, const struct nlmsghdr *nlh)
{
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
}

static struct nlmsghdr *batch_msg(struct batch *b, uint16_t type, uint16_t flags, size_t need)
{
	char *at = batch_room(b, need);

	if (!at)
		return NULL;
	b->nacks++;
	return nftnl_nlmsg_build_hdr(at, type, NFPROTO_IPV4, flags | NLM_F_ACK, b->seq++);
}

static void put_table(struct batch *b, const char *name, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, name) < 0 ||
	    !(nlh = batch_msg(b, type, flags, 1024))) {
		b->oom = true;
	} else {
		nftnl_table_nlmsg_build_payload(nlh, t);
		batch_close(b, nlh);
	}
	nftnl_table_free(t);
}

static void put_chain(struct batch *b, const char *table, const char *name, uint32_t hook,
		      int32_t prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "nat") < 0 ||
	    !(nlh = batch_msg(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, 1024))) {
		b->oom = true;
	} else {
		nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
		nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
		nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
		nftnl_chain_nlmsg_build_payload(nlh, c);
		batch_close(b, nlh);
	}
	nftnl_chain_free(c);
}

static struct nftnl_set *map_new(const char *table)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return NULL;
	if (nftnl_set_set_str(s, NFTNL_SET_TABLE, table) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, MAP_NAME) < 0) {
		nftnl_set_free(s);
		return NULL;
	}
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_IPV4);
	nftnl_set_set_u32(s, NFTNL_SET_ID, MAP_ID);
	return s;
}

/* map `backends`: slot number (host-order u32) -> ipv4_addr . inet_service */
static void put_map(struct batch *b, const struct kha_proxy_nat_spec *spec,
		    const struct kha_proxy_nat_plan *plan)
{
	struct nftnl_set *s = map_new(spec->table);
	struct nlmsghdr *nlh;
	uint32_t slot = 0;
	size_t i = 0, used = 0;

	if (!s || !(nlh = batch_msg(b, NFT_MSG_NEWSET, NLM_F_CREATE, 1024))) {
		b->oom = true;
		nftnl_set_free(s);
		return;
	}
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_MAP);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, NFT_TYPE_INTEGER);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, sizeof(uint32_t));
	nftnl_set_set_u32(s, NFTNL_SET_DATA_TYPE,
			  NFT_TYPE_CONCAT(NFT_TYPE_IPADDR, NFT_TYPE_INET_SERVICE));
	nftnl_set_set_u32(s, NFTNL_SET_DATA_LEN, 8);
	nftnl_set_nlmsg_build_payload(nlh, s);
	batch_close(b, nlh);
	nftnl_set_free(s);

	/* the elements, ELEMS_PER_MSG per message: backend i owns weight consecutive slots */
	while (slot < plan->slots && !b->oom) {
		struct nftnl_set *es = map_new(spec->table);
		unsigned k = 0;

		if (!es) {
			b->oom = true;
			return;
		}
		for (; k < ELEMS_PER_MSG && slot < plan->slots; k++, slot++) {
			const struct kha_proxy_nat_target *t = &plan->t[i];
			struct nftnl_set_elem *e = nftnl_set_elem_alloc();
			uint8_t data[8] = {};
			uint16_t port = htons(t->port);

			if (!e) {
				b->oom = true;
				break;
			}
			memcpy(data, &t->addr.s_addr, 4);
			memcpy(data + 4, &port, 2);
			if (nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &slot, sizeof(slot)) < 0 ||
			    nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, data, sizeof(data)) < 0) {
				nftnl_set_elem_free(e);
				b->oom = true;
				break;
			}
			nftnl_set_elem_add(es, e);
			if (++used == t->weight) {
				i++;
				used = 0;
			}
		}
		nlh = b->oom ? NULL
			     : batch_msg(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, 4096 + k * 128);
		if (nlh) {
			nftnl_set_elems_nlmsg_build_payload(nlh, es);
			batch_close(b, nlh);
		}
		nftnl_set_free(es);
	}
}

/* expression helpers: each returns false when out of memory */
static bool expr_add(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return false;
	nftnl_rule_add_expr(r, e);
	return true;
}

static bool add_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	}
	return expr_add(r, e);
}

static bool add_cmp_eq(struct nftnl_rule *r, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
		if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0) {
			nftnl_expr_free(e);
			e = NULL;
		}
	}
	return expr_add(r, e);
}

static bool add_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return expr_add(r, e);
}

static bool add_ct(struct nftnl_rule *r, uint32_t key, uint8_t dir)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, dir);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	return expr_add(r, e);
}

/* ip daddr ENTRY meta l4proto tcp th dport PORT */
static bool add_match_entry(struct nftnl_rule *r, const struct kha_proxy_nat_spec *spec)
{
	uint8_t tcp = IPPROTO_TCP;
	uint16_t port = htons(spec->port);

	return add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4) &&
	       add_cmp_eq(r, &spec->entry.s_addr, 4) && add_meta(r, NFT_META_L4PROTO) &&
	       add_cmp_eq(r, &tcp, 1) && add_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) &&
	       add_cmp_eq(r, &port, 2);
}

/* ... dnat to (numgen random|inc mod N | jhash ip saddr mod N) map @backends */
static bool add_dnat(struct nftnl_rule *r, const struct kha_proxy_nat_spec *spec,
		     const struct kha_proxy_nat_plan *plan)
{
	struct nftnl_expr *e;

	if (plan->balance == KHA_PROXY_SOURCE) {
		if (!add_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4))
			return false;
		e = nftnl_expr_alloc("hash");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_TYPE, NFT_HASH_JENKINS);
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_SREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_DREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_LEN, 4);
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_MODULUS, plan->slots);
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_SEED, spec->hash_seed);
			nftnl_expr_set_u32(e, NFTNL_EXPR_HASH_OFFSET, 0);
		}
	} else {
		e = nftnl_expr_alloc("numgen");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE,
					   plan->balance == KHA_PROXY_ROUNDROBIN
						   ? NFT_NG_INCREMENTAL
						   : NFT_NG_RANDOM);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, plan->slots);
			nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, 0);
		}
	}
	if (!expr_add(r, e))
		return false;
	e = nftnl_expr_alloc("lookup");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, MAP_NAME);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, MAP_ID);
	}
	if (!expr_add(r, e))
		return false;
	/* the map's value fills two 32-bit registers: the address, then the port */
	e = nftnl_expr_alloc("nat");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG32_00);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG32_01);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS,
				   NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
	}
	return expr_add(r, e);
}

/* ct original ip daddr ENTRY ct original proto-dst PORT masquerade */
static bool add_masq(struct nftnl_rule *r, const struct kha_proxy_nat_spec *spec)
{
	uint16_t port = htons(spec->port);

	return add_ct(r, NFT_CT_DST, IP_CT_DIR_ORIGINAL) && add_cmp_eq(r, &spec->entry.s_addr, 4) &&
	       add_ct(r, NFT_CT_PROTO_DST, IP_CT_DIR_ORIGINAL) && add_cmp_eq(r, &port, 2) &&
	       expr_add(r, nftnl_expr_alloc("masq"));
}

enum rule_kind { RULE_DNAT, RULE_MASQ };

static void put_rule(struct batch *b, const struct kha_proxy_nat_spec *spec,
		     const struct kha_proxy_nat_plan *plan, const char *chain, enum rule_kind kind)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	bool ok;

	if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, spec->table) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain) < 0) {
		b->oom = true;
		nftnl_rule_free(r);
		return;
	}
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_IPV4);
	if (kind == RULE_DNAT)
		ok = add_match_entry(r, spec) && add_dnat(r, spec, plan);
	else
		ok = add_masq(r, spec);
	nlh = ok ? batch_msg(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, 4096) : NULL;
	if (nlh) {
		nftnl_rule_nlmsg_build_payload(nlh, r);
		batch_close(b, nlh);
	} else {
		b->oom = true;
	}
	nftnl_rule_free(r);
}

int kha_proxy__nat_batch(const struct kha_proxy_nat_spec *spec,
			 const struct kha_proxy_nat_plan *plan, bool del_only, uint32_t seq,
			 char **ret_buf, unsigned *ret_nacks)
{
	struct batch b = {.seq = seq};
	char *at;

	at = batch_room(&b, 64);
	if (at) {
		batch_close(&b, nftnl_batch_begin(at, b.seq++));
	}
	/* add (a no-op when it exists) then delete: the delete never fails for a missing table */
	put_table(&b, spec->table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	put_table(&b, spec->table, NFT_MSG_DELTABLE, 0);
	if (!del_only) {
		put_table(&b, spec->table, NFT_MSG_NEWTABLE, NLM_F_CREATE);
		put_chain(&b, spec->table, "output", NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST);
		if (spec->prerouting)
			put_chain(&b, spec->table, "prerouting", NF_INET_PRE_ROUTING,
				  NF_IP_PRI_NAT_DST);
		put_chain(&b, spec->table, "postrouting", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC);
		if (plan && plan->n > 0) {
			put_map(&b, spec, plan);
			put_rule(&b, spec, plan, "output", RULE_DNAT);
			if (spec->prerouting)
				put_rule(&b, spec, plan, "prerouting", RULE_DNAT);
		}
		put_rule(&b, spec, plan, "postrouting", RULE_MASQ);
	}
	at = batch_room(&b, 64);
	if (at)
		batch_close(&b, nftnl_batch_end(at, b.seq++));
	if (b.oom) {
		free(b.buf);
		return -ENOMEM;
	}
	*ret_buf = b.buf;
	*ret_nacks = b.nacks;
	return (int)b.len;
}

/* ---- acknowledgements ---- */

static const char *request_name(uint16_t type)
{
	if (type == NFNL_MSG_BATCH_BEGIN || type == NFNL_MSG_BATCH_END)
		return "batch";
	if (type >> 8 == NFNL_SUBSYS_NFTABLES) {
		switch (type & 0xff) {
		case NFT_MSG_NEWTABLE:
			return "table";
		case NFT_MSG_DELTABLE:
			return "table removal";
		case NFT_MSG_NEWCHAIN:
			return "chain";
		case NFT_MSG_NEWSET:
			return "map";
		case NFT_MSG_NEWSETELEM:
			return "map element";
		case NFT_MSG_NEWRULE:
			return "rule";
		}
	}
	switch (type) {
	case RTM_NEWLINK:
	case RTM_DELLINK:
		return "interface";
	case RTM_NEWADDR:
		return "address";
	}
	return "request";
}

int kha_proxy__nat_parse_acks(const void *buf, size_t len, uint32_t first, uint32_t last,
			      struct kha_proxy_nat_acks *acks)
{
	const uint8_t *p = buf;

	while (len > 0) {
		struct nlmsghdr h;
		struct nlmsgerr e;
		size_t step;

		if (len < sizeof(h))
			return -EBADMSG;
		memcpy(&h, p, sizeof(h));
		if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len)
			return -EBADMSG;
		if (h.nlmsg_type == NLMSG_ERROR) {
			if (h.nlmsg_len < NLMSG_LENGTH(sizeof(e)))
				return -EBADMSG;
			memcpy(&e, p + NLMSG_HDRLEN, sizeof(e));
			if (e.error > 0 || e.error < -4095)
				return -EBADMSG;
			if (h.nlmsg_seq >= first && h.nlmsg_seq <= last) {
				acks->acked++;
				if (e.error && !acks->error) {
					acks->error = e.error;
					acks->err_seq = h.nlmsg_seq;
					snprintf(acks->where, sizeof(acks->where), "%s",
						 request_name(e.msg.nlmsg_type));
				}
			}
		}
		step = NLMSG_ALIGN(h.nlmsg_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}
