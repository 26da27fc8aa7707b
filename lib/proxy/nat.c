// SPDX-License-Identifier: MIT
/*
 * kha proxy --mode nat: the entry address is DNAT'ed by the kernel (nftables) to one healthy
 * backend per new connection; kha keeps the table in step with membership and health.
 *
 * Invariants (docs/internals/proxy.md, "NAT mode"):
 * - the table `spec.table` (family ip) is kha's alone and always written whole, in one nftables
 *   transaction (add table, delete table, add table and its content): a leftover table from a
 *   killed kha is replaced, never duplicated, and a packet sees the old or the new rules;
 * - only the control thread touches the sockets; every write is acknowledged (or its error
 *   logged) before the next one, so the installed plan (`cur`) is what the kernel holds;
 * - the dummy interface carries the entry address; it is created (or adopted, when a killed kha
 *   left it) at start and deleted at exit, with the table.
 */
#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/inet_diag.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "nat-internal.h"
#include "proxy-int.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

/* nft's datatype numbers (TYPE_BITS 6 per concatenated type), so `nft list` prints the map */
#define NFT_TYPE_INTEGER      4
#define NFT_TYPE_IPADDR	      7
#define NFT_TYPE_INET_SERVICE 13
#define NFT_TYPE_CONCAT(a, b) (((a) << 6) | (b))

#define MAP_NAME	    "backends"
#define MAP_ID		    1
#define ELEMS_PER_MSG	    256
#define NAT_REPLY_TIMEOUT_S 5

/* ---- the plan ---- */

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
	if (b->cap - b->len < need) {
		size_t cap = b->cap * 2 + need;
		char *nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = true;
			return NULL;
		}
		b->buf = nb;
		b->cap = cap;
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

/* ---- glue ---- */

struct kha_proxy_nat {
	struct kha_proxy_nat_spec spec;
	struct mnl_socket *nft, *rt;
	uint32_t seq;
	int ifindex;
	char ifname[IFNAMSIZ], label[IFNAMSIZ];
	bool link_ours, addr_ours;
	bool installed;
	struct kha_proxy_nat_plan cur;
	uint64_t commits, commit_failures, ct_deleted, sockets_aborted;
	char last_error[KHA_DIAG_MAX];
};

int kha_proxy__nat_validate(const struct kha_proxy_config *cfg, struct kha_diag *d)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

	if (kha_parse_sockaddr(cfg->listen, &ss, &len) < 0 || ss.ss_family != AF_INET)
		return kha_diag_set(
			d, EINVAL, "--mode nat: listen address '%s': expected an IPv4 address:port",
			cfg->listen);
	if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127 || sin->sin_addr.s_addr == INADDR_ANY)
		return kha_diag_set(
			d, EINVAL,
			"--mode nat: listen address '%s' must be a dedicated address (such as "
			"169.254.20.1:443), not loopback or 0.0.0.0: see docs/proxy.md",
			cfg->listen);
	if (!ntohs(sin->sin_port))
		return kha_diag_set(d, EINVAL, "--mode nat: listen address '%s' needs a port",
				    cfg->listen);
	if (!cfg->nat_name[0] || strlen(cfg->nat_name) >= IFNAMSIZ ||
	    strspn(cfg->nat_name, "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
		    strlen(cfg->nat_name))
		return kha_diag_set(d, EINVAL,
				    "--nat-name '%s': expected 1-15 characters of a-z 0-9 - _",
				    cfg->nat_name);
	return 0;
}

static bool have_net_admin(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3] = {};

	if (syscall(SYS_capget, &h, c) < 0)
		return true; /* cannot tell: let the kernel say */
	return c[CAP_NET_ADMIN / 32].effective & (1U << (CAP_NET_ADMIN % 32));
}

static int perm_error(struct kha_diag *d, const char *what)
{
	return kha_diag_set(d, EPERM,
			    "--mode nat needs CAP_NET_ADMIN (%s was refused): run as root or grant "
			    "the capability (see docs/proxy.md)",
			    what);
}

/* Sends len bytes of requests with seq in [first, last] and waits for nacks replies. */
static int nl_exchange(struct mnl_socket *nl, const void *buf, size_t len, uint32_t first,
		       uint32_t last, unsigned nacks, struct kha_proxy_nat_acks *acks)
{
	char rbuf[16384] __attribute__((aligned(8)));
	int fd = mnl_socket_get_fd(nl);

	memset(acks, 0, sizeof(*acks));
	if (len > 100000) {
		int sz = (int)len * 2;
		kha_ignore(setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)));
	}
	if (mnl_socket_sendto(nl, buf, len) < 0)
		return -errno;
	while (acks->acked < nacks && !acks->error) {
		ssize_t n = recv(fd, rbuf, sizeof(rbuf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (kha_proxy__nat_parse_acks(rbuf, (size_t)n, first, last, acks) < 0)
			return -EBADMSG;
	}
	/* after an error the kernel may still answer the other requests: drop those replies */
	while (acks->error && recv(fd, rbuf, sizeof(rbuf), MSG_DONTWAIT) > 0)
		;
	return acks->error;
}

static int rt_request(struct kha_proxy_nat *nat, struct nlmsghdr *nlh,
		      struct kha_proxy_nat_acks *acks)
{
	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = ++nat->seq;
	return nl_exchange(nat->rt, nlh, nlh->nlmsg_len, nlh->nlmsg_seq, nlh->nlmsg_seq, 1, acks);
}

/* the entry address, /32, on nat->ifindex with nat->label: added or removed */
static int addr_request(struct kha_proxy_nat *nat, uint16_t type, struct kha_proxy_nat_acks *acks)
{
	char buf[256] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_EXCL : 0;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 32;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)nat->ifindex;
	mnl_attr_put_u32(nlh, IFA_LOCAL, nat->spec.entry.s_addr);
	mnl_attr_put_u32(nlh, IFA_ADDRESS, nat->spec.entry.s_addr);
	mnl_attr_put_strz(nlh, IFA_LABEL, nat->label);
	return rt_request(nat, nlh, acks);
}

static int link_create(struct kha_proxy_nat *nat, struct kha_diag *d)
{
	char buf[512] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *nest;
	struct kha_proxy_nat_acks acks;
	int r;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, nat->spec.table);
	nest = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "dummy");
	mnl_attr_nest_end(nlh, nest);
	r = rt_request(nat, nlh, &acks);
	if (r == -EPERM)
		return perm_error(d, "creating an interface");
	if (r == -EOPNOTSUPP) {
		/* a kernel without dummy interfaces: the address goes on lo, labelled as ours */
		snprintf(nat->ifname, sizeof(nat->ifname), "lo");
		snprintf(nat->label, sizeof(nat->label), "lo:%.12s", nat->spec.table);
		kha_info("no dummy interfaces in this kernel, the entry address goes on lo",
			 "label=%s", nat->label);
	} else if (r < 0 && r != -EEXIST) {
		return kha_diag_set(d, -r, "cannot create the dummy interface %s: %s",
				    nat->spec.table, strerror(-r));
	} else {
		if (r == -EEXIST)
			kha_info("adopting the dummy interface a previous kha left", "interface=%s",
				 nat->spec.table);
		nat->link_ours = true;
		snprintf(nat->ifname, sizeof(nat->ifname), "%s", nat->spec.table);
		snprintf(nat->label, sizeof(nat->label), "%s", nat->spec.table);
	}
	nat->ifindex = (int)if_nametoindex(nat->ifname);
	if (!nat->ifindex)
		return kha_diag_set(d, errno, "interface %s: %s", nat->ifname, strerror(errno));
	/* up (an adopted one may have been set down) */
	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = nat->ifindex;
	ifi->ifi_flags = IFF_UP;
	ifi->ifi_change = IFF_UP;
	r = rt_request(nat, nlh, &acks);
	if (r < 0)
		return kha_diag_set(d, -r, "cannot set interface %s up: %s", nat->ifname,
				    strerror(-r));
	r = addr_request(nat, RTM_NEWADDR, &acks);
	if (r < 0 && r != -EEXIST)
		return kha_diag_set(d, -r, "cannot add the entry address to %s: %s", nat->ifname,
				    strerror(-r));
	nat->addr_ours = true;
	return 0;
}

static void link_delete(struct kha_proxy_nat *nat)
{
	char buf[256] __attribute__((aligned(8))) = {};
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct kha_proxy_nat_acks acks;
	int r;

	nlh->nlmsg_type = RTM_DELLINK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = nat->ifindex;
	r = rt_request(nat, nlh, &acks);
	if (r < 0 && r != -ENODEV)
		kha_error("cannot remove the dummy interface", "interface=%s error=\"%s\"",
			  nat->ifname, strerror(-r));
}

static int commit(struct kha_proxy_nat *nat, const struct kha_proxy_nat_plan *plan, bool del_only,
		  struct kha_diag *d)
{
	struct kha_proxy_nat_acks acks;
	char *buf = NULL;
	unsigned nacks;
	uint32_t first = nat->seq + 1;
	int len, r;

	len = kha_proxy__nat_batch(&nat->spec, plan, del_only, first, &buf, &nacks);
	if (len < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	nat->seq = first + nacks + 1;
	r = nl_exchange(nat->nft, buf, (size_t)len, first, nat->seq, nacks, &acks);
	free(buf);
	if (r == -EPERM)
		return perm_error(d, "writing an nftables table");
	if (r < 0 && acks.error)
		return kha_diag_set(d, -r, "nftables %s refused: %s", acks.where, strerror(-r));
	if (r < 0)
		return kha_diag_set(d, -r, "nftables: %s", strerror(-r));
	return 0;
}

int kha_proxy__nat_new(struct kha_proxy *p, struct kha_diag *d, struct kha_proxy_nat **ret)
{
	struct kha_proxy_nat *nat;
	struct sockaddr_storage ss;
	socklen_t len;
	struct timeval tv = {.tv_sec = NAT_REPLY_TIMEOUT_S};
	int one = 1, r;

	if (!have_net_admin())
		return perm_error(d, "the capability check");
	nat = calloc(1, sizeof(*nat));
	if (!nat)
		return kha_diag_set(d, ENOMEM, "out of memory");
	snprintf(nat->spec.table, sizeof(nat->spec.table), "%s", p->cfg.nat_name);
	kha_ignore(kha_parse_sockaddr(p->cfg.listen, &ss, &len)); /* validated */
	nat->spec.entry = ((struct sockaddr_in *)&ss)->sin_addr;
	nat->spec.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	nat->spec.prerouting = p->cfg.nat_prerouting;
	if (getrandom(&nat->spec.hash_seed, sizeof(nat->spec.hash_seed), 0) < 0)
		nat->spec.hash_seed = (uint32_t)kha_now_us();
	nat->seq = (uint32_t)time(NULL);
	nat->nft = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	nat->rt = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nat->nft || !nat->rt || mnl_socket_bind(nat->nft, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_bind(nat->rt, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = kha_diag_set(d, errno, "netlink: %s", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		int fd = mnl_socket_get_fd(i ? nat->rt : nat->nft);
		kha_ignore(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
		kha_ignore(setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)));
	}
	r = link_create(nat, d);
	if (r < 0)
		goto fail;
	*ret = nat;
	return 0;
fail:
	kha_proxy__nat_free(nat);
	return r;
}

int kha_proxy__nat_started(struct kha_proxy *p, struct kha_diag *d)
{
	if (p->nat->installed)
		return 0;
	if (!p->nat->commit_failures) /* nothing was written: publish never ran */
		return kha_diag_set(d, EIO, "--mode nat: the nftables table was not written");
	return kha_diag_set(d, EIO, "--mode nat: cannot write the nftables table: %s",
			    p->nat->last_error);
}

void kha_proxy__nat_free(struct kha_proxy_nat *nat)
{
	struct kha_diag d = {};

	if (!nat)
		return;
	if (nat->installed) {
		if (commit(nat, NULL, true, &d) < 0)
			kha_error("cannot remove the nftables table", "table=%s error=\"%s\"",
				  nat->spec.table, d.msg);
		else
			kha_info("nftables table removed", "table=%s", nat->spec.table);
	}
	if (nat->link_ours) {
		link_delete(nat);
	} else if (nat->addr_ours) {
		struct kha_proxy_nat_acks acks;
		int r = addr_request(nat, RTM_DELADDR, &acks);
		if (r < 0 && r != -EADDRNOTAVAIL)
			kha_error("cannot remove the entry address", "interface=%s error=\"%s\"",
				  nat->ifname, strerror(-r));
	}
	if (nat->nft)
		mnl_socket_close(nat->nft);
	if (nat->rt)
		mnl_socket_close(nat->rt);
	free(nat);
}

static void format_plan(const struct kha_proxy_nat_plan *plan, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < plan->n && off < size; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &plan->t[i].addr, a, sizeof(a));
		off += (size_t)snprintf(buf + off, size - off, "%s%s:%u*%u", i ? "," : "", a,
					plan->t[i].port, plan->t[i].weight);
	}
}

void kha_proxy__nat_publish(struct kha_proxy *p)
{
	struct kha_proxy_nat *nat = p->nat;
	struct kha_proxy_nat_cand *c;
	struct kha_proxy_nat_plan *plan;
	struct kha_diag d = {};
	size_t n = 0, i = 0, skipped = 0;
	char q[KHA_DIAG_MAX + 8], desc[1024];

	for (struct backend *b = p->backends; b; b = b->next)
		n += !b->removed;
	c = calloc(n ? n : 1, sizeof(*c));
	plan = malloc(sizeof(*plan));
	if (!c || !plan) {
		kha_error("cannot update the nftables table", "error=%s", "out of memory");
		goto out;
	}
	/* oldest first, as the user-space table */
	for (struct backend *b = p->backends; b; b = b->next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
		struct kha_proxy_nat_cand *x;
		if (b->removed)
			continue;
		x = &c[n - 1 - i++];
		if (b->addr.ss_family != AF_INET) {
			x->weight = 0; /* an IPv6 backend cannot be reached from an ip table */
			skipped++;
			continue;
		}
		x->addr = sin->sin_addr;
		x->port = ntohs(sin->sin_port);
		x->weight = b->weight;
		x->state = b->health.state;
	}
	kha_proxy__nat_plan(c, n, p->cfg.balance, plan);
	if (nat->installed && kha_proxy__nat_plan_equal(plan, &nat->cur))
		goto out;
	format_plan(plan, desc, sizeof(desc));
	if (skipped)
		kha_warn("IPv6 backends left out: NAT mode balances an IPv4 entry to IPv4 backends",
			 "backends=%zu", skipped);
	if (commit(nat, plan, false, &d) < 0) {
		nat->commit_failures++;
		snprintf(nat->last_error, sizeof(nat->last_error), "%s", d.msg);
		kha_error("nftables table not updated, the previous one stays",
			  "table=%s backends=\"%s\" error=%s", nat->spec.table, desc,
			  kha_log_quote(q, sizeof(q), d.msg));
		goto out;
	}
	nat->commits++;
	nat->cur = *plan;
	if (!nat->installed)
		kha_info("nftables table installed", "table=%s entry=%s backends=\"%s\"",
			 nat->spec.table, p->cfg.listen, desc);
	else
		kha_info("nftables table updated", "table=%s backends=\"%s\"", nat->spec.table,
			 desc);
	nat->installed = true;
out:
	free(c);
	free(plan);
}

/* conntrack: deletes the entries of connections to the entry that were sent to one backend */
struct ct_client {
	uint32_t addr; /* the client's side of the original tuple, network order */
	uint16_t port;
};

struct ct_cut {
	struct nfct_handle *del;
	const struct kha_proxy_nat_spec *spec;
	struct in_addr addr;
	uint16_t port; /* network order */
	unsigned n;
	struct ct_client *clients; /* of the deleted entries, for the local sockets */
	size_t nclients, cap;
};

static int ct_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
	struct ct_cut *c = data;

	(void)type;
	if (nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO) != IPPROTO_TCP ||
	    nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST) != c->spec->entry.s_addr ||
	    nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST) != htons(c->spec->port) ||
	    nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC) != c->addr.s_addr ||
	    nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC) != c->port)
		return NFCT_CB_CONTINUE;
	if (nfct_query(c->del, NFCT_Q_DESTROY, ct) != 0)
		return NFCT_CB_CONTINUE;
	c->n++;
	if (c->nclients == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct ct_client *nc = realloc(c->clients, cap * sizeof(*nc));
		if (!nc)
			return NFCT_CB_CONTINUE; /* the entry is gone: the client learns at its next packet */
		c->clients = nc;
		c->cap = cap;
	}
	c->clients[c->nclients].addr = nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_SRC);
	c->clients[c->nclients].port = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC);
	c->nclients++;
	return NFCT_CB_CONTINUE;
}

/*
 * The clients of this node among them (the output hook's) are sockets here: SOCK_DESTROY aborts
 * each (ECONNABORTED to its reader, a reset to its peer), so an idle watch learns at once
 * instead of at its next packet. A pod's connection is not found here (-ENOENT): its next packet
 * meets the deleted conntrack entry and a reset. Returns the number aborted.
 */
static unsigned abort_local_sockets(struct kha_proxy_nat *nat, const struct ct_cut *c)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	struct timeval tv = {.tv_sec = NAT_REPLY_TIMEOUT_S};
	unsigned n = 0;
	int one = 1;

	if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		kha_warn("cannot abort local connections", "error=\"%s\"", strerror(errno));
		goto out;
	}
	kha_ignore(setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	kha_ignore(
		setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)));
	for (size_t i = 0; i < c->nclients; i++) {
		char buf[256] __attribute__((aligned(8))) = {};
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct inet_diag_req_v2 *req;
		struct kha_proxy_nat_acks acks;
		int r;

		nlh->nlmsg_type = SOCK_DESTROY;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
		nlh->nlmsg_seq = ++nat->seq;
		req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
		req->sdiag_family = AF_INET;
		req->sdiag_protocol = IPPROTO_TCP;
		req->idiag_states = ~0U;
		req->id.idiag_sport = c->clients[i].port;
		req->id.idiag_dport = htons(nat->spec.port);
		req->id.idiag_src[0] = c->clients[i].addr;
		req->id.idiag_dst[0] = nat->spec.entry.s_addr;
		req->id.idiag_cookie[0] = req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
		r = nl_exchange(nl, nlh, nlh->nlmsg_len, nlh->nlmsg_seq, nlh->nlmsg_seq, 1, &acks);
		if (r == 0)
			n++;
		else if (r != -ENOENT)
			kha_debug("local connection not aborted", "error=\"%s\"", strerror(-r));
	}
out:
	if (nl)
		mnl_socket_close(nl);
	return n;
}

static void cut_conntrack(struct kha_proxy *p, struct backend *b)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
	struct ct_cut c = {.spec = &p->nat->spec, .addr = sin->sin_addr, .port = sin->sin_port};
	struct nfct_handle *dump;
	uint32_t family = AF_INET;
	unsigned aborted;
	int r;

	if (b->addr.ss_family != AF_INET)
		return;
	dump = nfct_open(CONNTRACK, 0);
	c.del = nfct_open(CONNTRACK, 0);
	if (!dump || !c.del) {
		kha_error("cannot cut the backend's connections", "backend=%s error=\"%s\"",
			  b->name, strerror(errno));
		goto out;
	}
	nfct_callback_register(dump, NFCT_T_ALL, ct_cb, &c);
	r = nfct_query(dump, NFCT_Q_DUMP, &family);
	if (r < 0)
		kha_error("cannot list conntrack entries", "backend=%s error=\"%s\"", b->name,
			  strerror(errno));
	p->nat->ct_deleted += c.n;
	aborted = c.nclients ? abort_local_sockets(p->nat, &c) : 0;
	p->nat->sockets_aborted += aborted;
	kha_info("backend's connections cut", "backend=%s conntrack_entries=%u local_aborted=%u",
		 b->name, c.n, aborted);
out:
	free(c.clients);
	if (dump)
		nfct_close(dump);
	if (c.del)
		nfct_close(c.del);
}

void kha_proxy__nat_state_changed(struct kha_proxy *p, struct backend *b)
{
	kha_proxy__nat_publish(p);
	if (b->health.state == KHA_PROXY_DOWN && p->cfg.close_on_dead)
		cut_conntrack(p, b);
}

json_t *kha_proxy__nat_status(struct kha_proxy *p)
{
	const struct kha_proxy_nat *nat = p->nat;
	json_t *arr = json_array(), *o;

	for (size_t i = 0; arr && i < nat->cur.n; i++) {
		char a[INET_ADDRSTRLEN + 8];
		inet_ntop(AF_INET, &nat->cur.t[i].addr, a, INET_ADDRSTRLEN);
		snprintf(a + strlen(a), sizeof(a) - strlen(a), ":%u", nat->cur.t[i].port);
		json_array_append_new(arr, json_pack("{s:s, s:I}", "address", a, "slots",
						     (json_int_t)nat->cur.t[i].weight));
	}
	o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:o}", "table",
		      nat->spec.table, "interface", nat->ifname, "address_label", nat->label,
		      "prerouting", nat->spec.prerouting, "installed", nat->installed, "slots",
		      (json_int_t)nat->cur.slots, "commits", (json_int_t)nat->commits,
		      "commit_failures", (json_int_t)nat->commit_failures, "conntrack_deleted",
		      (json_int_t)nat->ct_deleted, "local_connections_aborted",
		      (json_int_t)nat->sockets_aborted, "targets", arr ? arr : json_array());
	return o;
}

static void collect(FILE *out, void *userdata)
{
	struct kha_proxy *p = userdata;
	const struct kha_proxy_nat *nat = p->nat;
	char lbl[KHA_PROXY_ADDR_MAX * 2 + 64], esc[KHA_PROXY_ADDR_MAX * 2];

	if (!nat)
		return;
	kha_metrics_write_header(out, "kha_proxy_nat_table_updates_total",
				 "Writes of the nftables table, by result.", KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_table_updates_total", "result=\"ok\"",
				 (double)nat->commits);
	kha_metrics_write_sample(out, "kha_proxy_nat_table_updates_total", "result=\"failed\"",
				 (double)nat->commit_failures);
	kha_metrics_write_header(out, "kha_proxy_nat_conntrack_deleted_total",
				 "Conntrack entries of dead backends deleted (their clients get a "
				 "reset at their next packet).",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_conntrack_deleted_total", NULL,
				 (double)nat->ct_deleted);
	kha_metrics_write_header(out, "kha_proxy_nat_local_connections_aborted_total",
				 "Of those, connections of this node's own clients aborted at once "
				 "(SOCK_DESTROY).",
				 KHA_METRIC_COUNTER);
	kha_metrics_write_sample(out, "kha_proxy_nat_local_connections_aborted_total", NULL,
				 (double)nat->sockets_aborted);
	kha_metrics_write_header(out, "kha_proxy_nat_backend_slots",
				 "Numbers of the DNAT map that lead to the backend (0: not in the "
				 "table).",
				 KHA_METRIC_GAUGE);
	for (struct backend *b = p->backends; b; b = b->next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
		uint32_t slots = 0;
		if (b->removed)
			continue;
		for (size_t i = 0; b->addr.ss_family == AF_INET && i < nat->cur.n; i++)
			if (nat->cur.t[i].addr.s_addr == sin->sin_addr.s_addr &&
			    nat->cur.t[i].port == ntohs(sin->sin_port))
				slots = nat->cur.t[i].weight;
		snprintf(lbl, sizeof(lbl), "backend=\"%s\"",
			 kha_metrics_escape(esc, sizeof(esc), b->name));
		kha_metrics_write_sample(out, "kha_proxy_nat_backend_slots", lbl, slots);
	}
}

int kha_proxy__nat_metrics(struct kha_proxy *p)
{
	return kha_metrics_add_collector(p->metrics, collect, p);
}
