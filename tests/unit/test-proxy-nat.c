// SPDX-License-Identifier: MIT
/*
 * Unit tests of kha proxy --mode nat's pure parts: the plan (which backends own which numbers),
 * the nftables batch it becomes (decoded back with libnftnl) and the acknowledgement parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <cmocka.h>

#include "../../lib/proxy/nat-internal.h"
#include "kha/banned.h"

static struct kha_proxy_nat_cand cand(const char *ip, uint16_t port, uint32_t w,
				      enum kha_proxy_state st)
{
	struct kha_proxy_nat_cand c = {.port = port, .weight = w, .state = st};

	assert_int_equal(inet_pton(AF_INET, ip, &c.addr), 1);
	return c;
}

static struct kha_proxy_nat_spec spec_for(bool prerouting)
{
	struct kha_proxy_nat_spec s = {.port = 443, .prerouting = prerouting, .hash_seed = 7};

	snprintf(s.table, sizeof(s.table), "kha-test");
	assert_int_equal(inet_pton(AF_INET, "169.254.20.1", &s.entry), 1);
	return s;
}

/* ---- the plan ---- */

static void test_plan_reduces_weights_by_their_gcd(void **state)
{
	struct kha_proxy_nat_cand c[] = {
		cand("10.0.0.1", 6443, 2, KHA_PROXY_UP),
		cand("10.0.0.2", 6443, 4, KHA_PROXY_UP),
		cand("10.0.0.3", 6443, 6, KHA_PROXY_UP),
	};
	struct kha_proxy_nat_plan p;

	(void)state;
	kha_proxy__nat_plan(c, 3, KHA_PROXY_RANDOM, &p);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.slots, 6);
	assert_int_equal(p.t[0].weight, 1);
	assert_int_equal(p.t[1].weight, 2);
	assert_int_equal(p.t[2].weight, 3);
	assert_int_equal(p.t[2].port, 6443);
	assert_int_equal(p.t[2].addr.s_addr, c[2].addr.s_addr);
}

static void test_plan_takes_the_best_tier_only(void **state)
{
	struct kha_proxy_nat_cand c[] = {
		cand("10.0.0.1", 6443, 1, KHA_PROXY_SUSPECT),
		cand("10.0.0.2", 6443, 1, KHA_PROXY_UP),
		cand("10.0.0.3", 6443, 1, KHA_PROXY_DOWN),
		cand("10.0.0.4", 6443, 1, KHA_PROXY_UP),
	};
	struct kha_proxy_nat_plan p;

	(void)state;
	kha_proxy__nat_plan(c, 4, KHA_PROXY_RANDOM, &p);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.t[0].addr.s_addr, c[1].addr.s_addr);
	assert_int_equal(p.t[1].addr.s_addr, c[3].addr.s_addr);
	/* nobody up: the suspect one; all down: all of them (last resort, as user space) */
	c[1].state = c[3].state = KHA_PROXY_DRAINING;
	kha_proxy__nat_plan(c, 4, KHA_PROXY_RANDOM, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.t[0].addr.s_addr, c[0].addr.s_addr);
	for (int i = 0; i < 4; i++)
		c[i].state = KHA_PROXY_DOWN;
	kha_proxy__nat_plan(c, 4, KHA_PROXY_RANDOM, &p);
	assert_int_equal(p.n, 4);
	assert_int_equal(p.slots, 4);
	/* weight 0 (an IPv6 backend) is never in the table; none at all: an empty plan */
	for (int i = 0; i < 4; i++)
		c[i].weight = 0;
	kha_proxy__nat_plan(c, 4, KHA_PROXY_RANDOM, &p);
	assert_int_equal(p.n, 0);
	assert_int_equal(p.slots, 0);
}

static void test_plan_scales_large_weight_sums(void **state)
{
	struct kha_proxy_nat_cand c[KHA_PROXY_NAT_TARGETS_MAX];
	struct kha_proxy_nat_plan p, q;

	(void)state;
	for (int i = 0; i < 40; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.1.%d", i + 1);
		c[i] = cand(ip, 6443, i == 0 ? 1 : 256 - (uint32_t)i, KHA_PROXY_UP);
	}
	kha_proxy__nat_plan(c, 40, KHA_PROXY_ROUNDROBIN, &p);
	assert_int_equal(p.n, 40);
	assert_true(p.slots <= KHA_PROXY_NAT_SLOTS_MAX + KHA_PROXY_NAT_TARGETS_MAX);
	assert_int_equal(p.t[0].weight, 1); /* never scaled away */
	assert_true(p.t[1].weight > p.t[39].weight);
	kha_proxy__nat_plan(c, 40, KHA_PROXY_ROUNDROBIN, &q);
	assert_true(kha_proxy__nat_plan_equal(&p, &q));
	kha_proxy__nat_plan(c, 40, KHA_PROXY_RANDOM, &q);
	assert_false(kha_proxy__nat_plan_equal(&p, &q));
}

/* ---- the batch, decoded back ---- */

struct decoded {
	unsigned msgs[64];
	size_t nmsgs;
	uint32_t keys[64];
	uint8_t data[64][8];
	size_t nelems;
	char chains[4][16];
	size_t nchains;
	int prios[4];
	char rule_chain[4][16];
	char rule_exprs[4][256]; /* expression names, space separated */
	uint32_t modulus, ng_type, hash_seed;
	size_t nrules;
};

/* the value inside a NFTA_SET_ELEM_KEY or _DATA nest (NFTA_DATA_VALUE) */
static const void *data_value(const struct nlattr *nest, uint16_t *ret_len)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, nest)
	{
		if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) {
			*ret_len = mnl_attr_get_payload_len(a);
			return mnl_attr_get_payload(a);
		}
	}
	return NULL;
}

/* decoded with libmnl: the elements are what the kernel will read */
static void decode_elems(const struct nlmsghdr *nlh, struct decoded *d)
{
	const struct nlattr *list, *el, *a;

	mnl_attr_for_each(list, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(list) == NFTA_SET_ELEM_LIST_SET)
			assert_string_equal(mnl_attr_get_str(list), "backends");
		if (mnl_attr_get_type(list) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(el, list)
		{
			bool key = false, val = false;
			assert_true(d->nelems < 64);
			mnl_attr_for_each_nested(a, el)
			{
				uint16_t len = 0;
				const void *v = data_value(a, &len);
				if (mnl_attr_get_type(a) == NFTA_SET_ELEM_KEY) {
					assert_int_equal(len, 4);
					memcpy(&d->keys[d->nelems], v, 4);
					key = true;
				} else if (mnl_attr_get_type(a) == NFTA_SET_ELEM_DATA) {
					assert_int_equal(len, 8);
					memcpy(d->data[d->nelems], v, 8);
					val = true;
				}
			}
			assert_true(key && val);
			d->nelems++;
		}
	}
}

static int expr_cb(struct nftnl_expr *e, void *data)
{
	struct decoded *d = data;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	char *s = d->rule_exprs[d->nrules];

	snprintf(s + strlen(s), 256 - strlen(s), "%s%s", s[0] ? " " : "", name);
	if (strcmp(name, "numgen") == 0) {
		d->modulus = nftnl_expr_get_u32(e, NFTNL_EXPR_NG_MODULUS);
		d->ng_type = nftnl_expr_get_u32(e, NFTNL_EXPR_NG_TYPE);
	} else if (strcmp(name, "hash") == 0) {
		d->modulus = nftnl_expr_get_u32(e, NFTNL_EXPR_HASH_MODULUS);
		d->hash_seed = nftnl_expr_get_u32(e, NFTNL_EXPR_HASH_SEED);
	} else if (strcmp(name, "nat") == 0) {
		assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE), NFT_NAT_DNAT);
		assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN), NFT_REG32_00);
		assert_int_equal(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN), NFT_REG32_01);
	} else if (strcmp(name, "lookup") == 0) {
		assert_string_equal(nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET), "backends");
	}
	return 0;
}

static void decode(const char *buf, size_t len, struct decoded *d)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;

	memset(d, 0, sizeof(*d));
	while (len >= sizeof(*nlh) && nlh->nlmsg_len <= len) {
		unsigned type = nlh->nlmsg_type;
		assert_true(d->nmsgs < 64);
		d->msgs[d->nmsgs++] = type;
		if (type == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM)) {
			decode_elems(nlh, d);
		} else if (type == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWCHAIN)) {
			struct nftnl_chain *c = nftnl_chain_alloc();
			assert_int_equal(nftnl_chain_nlmsg_parse(nlh, c), 0);
			snprintf(d->chains[d->nchains], 16, "%s",
				 nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
			d->prios[d->nchains++] = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
			nftnl_chain_free(c);
		} else if (type == (NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE)) {
			struct nftnl_rule *r = nftnl_rule_alloc();
			assert_int_equal(nftnl_rule_nlmsg_parse(nlh, r), 0);
			snprintf(d->rule_chain[d->nrules], 16, "%s",
				 nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
			nftnl_expr_foreach(r, expr_cb, d);
			d->nrules++;
			nftnl_rule_free(r);
		}
		len -= NLMSG_ALIGN(nlh->nlmsg_len);
		nlh = (const struct nlmsghdr *)((const char *)nlh + NLMSG_ALIGN(nlh->nlmsg_len));
	}
	assert_int_equal(len, 0);
}

#define NFT(t) (NFNL_SUBSYS_NFTABLES << 8 | (t))

static void test_batch_replaces_the_table_in_one_transaction(void **state)
{
	struct kha_proxy_nat_cand c[] = {
		cand("10.0.0.1", 6443, 1, KHA_PROXY_UP),
		cand("10.0.0.2", 7443, 2, KHA_PROXY_UP),
	};
	struct kha_proxy_nat_spec spec = spec_for(false);
	struct kha_proxy_nat_plan p;
	struct decoded d;
	char *buf = NULL;
	unsigned nacks;
	int len;

	(void)state;
	kha_proxy__nat_plan(c, 2, KHA_PROXY_RANDOM, &p);
	len = kha_proxy__nat_batch(&spec, &p, false, 100, &buf, &nacks);
	assert_true(len > 0);
	decode(buf, (size_t)len, &d);
	/* begin, add + delete + add table, two chains, map, elements, two rules, end */
	assert_int_equal(d.nmsgs, 11);
	assert_int_equal(d.msgs[0], NFNL_MSG_BATCH_BEGIN);
	assert_int_equal(d.msgs[1], NFT(NFT_MSG_NEWTABLE));
	assert_int_equal(d.msgs[2], NFT(NFT_MSG_DELTABLE));
	assert_int_equal(d.msgs[3], NFT(NFT_MSG_NEWTABLE));
	assert_int_equal(d.msgs[6], NFT(NFT_MSG_NEWSET));
	assert_int_equal(d.msgs[7], NFT(NFT_MSG_NEWSETELEM));
	assert_int_equal(d.msgs[10], NFNL_MSG_BATCH_END);
	assert_int_equal(nacks, 9);
	/* sequence numbers run from 100, one per message */
	assert_int_equal(((struct nlmsghdr *)buf)->nlmsg_seq, 100);
	assert_int_equal(d.nchains, 2);
	assert_string_equal(d.chains[0], "output");
	assert_int_equal(d.prios[0], NF_IP_PRI_NAT_DST);
	assert_string_equal(d.chains[1], "postrouting");
	assert_int_equal(d.prios[1], NF_IP_PRI_NAT_SRC);
	/* weights 1:2 -> slot 0 to the first backend, slots 1 and 2 to the second */
	assert_int_equal(d.nelems, 3);
	for (size_t i = 0; i < 3; i++) {
		uint16_t port;
		assert_int_equal(d.keys[i], i);
		memcpy(&port, d.data[i] + 4, 2);
		assert_int_equal(ntohs(port), i == 0 ? 6443 : 7443);
		assert_memory_equal(d.data[i], &c[i == 0 ? 0 : 1].addr.s_addr, 4);
	}
	assert_int_equal(d.nrules, 2);
	assert_string_equal(d.rule_chain[0], "output");
	assert_string_equal(d.rule_exprs[0], "payload cmp meta cmp payload cmp numgen lookup nat");
	assert_int_equal(d.modulus, 3);
	assert_int_equal(d.ng_type, NFT_NG_RANDOM);
	assert_string_equal(d.rule_chain[1], "postrouting");
	assert_string_equal(d.rule_exprs[1], "ct cmp ct cmp masq");
	free(buf);
}

static void test_batch_prerouting_roundrobin_and_source_hash(void **state)
{
	struct kha_proxy_nat_cand c[] = {
		cand("10.0.0.1", 6443, 3, KHA_PROXY_UP),
		cand("10.0.0.2", 6443, 3, KHA_PROXY_UP),
	};
	struct kha_proxy_nat_spec spec = spec_for(true);
	struct kha_proxy_nat_plan p;
	struct decoded d;
	char *buf = NULL;
	unsigned nacks;
	int len;

	(void)state;
	kha_proxy__nat_plan(c, 2, KHA_PROXY_ROUNDROBIN, &p);
	len = kha_proxy__nat_batch(&spec, &p, false, 1, &buf, &nacks);
	assert_true(len > 0);
	decode(buf, (size_t)len, &d);
	free(buf);
	assert_int_equal(d.nchains, 3);
	assert_string_equal(d.chains[1], "prerouting");
	assert_int_equal(d.nrules, 3);
	assert_string_equal(d.rule_chain[1], "prerouting");
	assert_int_equal(d.ng_type, NFT_NG_INCREMENTAL);
	assert_int_equal(d.modulus, 2); /* 3:3 is 1:1 */
	assert_int_equal(d.nelems, 2);

	kha_proxy__nat_plan(c, 2, KHA_PROXY_SOURCE, &p);
	len = kha_proxy__nat_batch(&spec, &p, false, 1, &buf, &nacks);
	assert_true(len > 0);
	decode(buf, (size_t)len, &d);
	free(buf);
	assert_string_equal(d.rule_exprs[0],
			    "payload cmp meta cmp payload cmp payload hash lookup nat");
	assert_int_equal(d.hash_seed, 7);
	assert_int_equal(d.modulus, 2);
}

static void test_batch_without_backends_and_removal(void **state)
{
	struct kha_proxy_nat_spec spec = spec_for(false);
	struct kha_proxy_nat_plan p;
	struct decoded d;
	char *buf = NULL;
	unsigned nacks;
	int len;

	(void)state;
	kha_proxy__nat_plan(NULL, 0, KHA_PROXY_RANDOM, &p);
	len = kha_proxy__nat_batch(&spec, &p, false, 1, &buf, &nacks);
	assert_true(len > 0);
	decode(buf, (size_t)len, &d);
	free(buf);
	assert_int_equal(d.nelems, 0);
	assert_int_equal(d.nrules, 1); /* only the masquerade: no DNAT, the entry refuses */
	len = kha_proxy__nat_batch(&spec, NULL, true, 1, &buf, &nacks);
	assert_true(len > 0);
	decode(buf, (size_t)len, &d);
	free(buf);
	assert_int_equal(d.nmsgs, 4);
	assert_int_equal(d.msgs[2], NFT(NFT_MSG_DELTABLE));
	assert_int_equal(nacks, 2);
}

static void test_batch_splits_many_elements(void **state)
{
	struct kha_proxy_nat_cand c[] = {
		cand("10.0.0.1", 6443, 255, KHA_PROXY_UP),
		cand("10.0.0.2", 6443, 256, KHA_PROXY_UP),
	};
	struct kha_proxy_nat_spec spec = spec_for(false);
	struct kha_proxy_nat_plan p;
	const struct nlmsghdr *nlh;
	char *buf = NULL;
	unsigned nacks, elem_msgs = 0;
	int len;

	(void)state;
	kha_proxy__nat_plan(c, 2, KHA_PROXY_RANDOM, &p);
	assert_int_equal(p.slots, 511);
	len = kha_proxy__nat_batch(&spec, &p, false, 1, &buf, &nacks);
	assert_true(len > 0);
	for (nlh = (const struct nlmsghdr *)buf; (const char *)nlh < buf + len;
	     nlh = (const struct nlmsghdr *)((const char *)nlh + NLMSG_ALIGN(nlh->nlmsg_len)))
		elem_msgs += nlh->nlmsg_type == NFT(NFT_MSG_NEWSETELEM);
	assert_int_equal(elem_msgs, 2);
	free(buf);
}

/* ---- acknowledgements ---- */

static size_t put_ack(char *at, uint32_t seq, int error, uint16_t req_type)
{
	struct nlmsghdr h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct nlmsgerr)),
			     .nlmsg_type = NLMSG_ERROR,
			     .nlmsg_seq = seq};
	struct nlmsgerr e = {.error = error};

	e.msg.nlmsg_type = req_type;
	e.msg.nlmsg_seq = seq;
	memcpy(at, &h, sizeof(h));
	memcpy(at + NLMSG_HDRLEN, &e, sizeof(e));
	return NLMSG_ALIGN(h.nlmsg_len);
}

static void test_acks_count_and_name_the_failure(void **state)
{
	char buf[512] = {};
	size_t len = 0;
	struct kha_proxy_nat_acks a = {};

	(void)state;
	len += put_ack(buf + len, 10, 0, NFT(NFT_MSG_NEWTABLE));
	len += put_ack(buf + len, 99, -ENOENT, NFT(NFT_MSG_NEWRULE)); /* not ours */
	len += put_ack(buf + len, 11, -EOPNOTSUPP, NFT(NFT_MSG_NEWRULE));
	len += put_ack(buf + len, 12, -EINVAL, NFT(NFT_MSG_NEWSET));
	assert_int_equal(kha_proxy__nat_parse_acks(buf, len, 10, 20, &a), 0);
	assert_int_equal(a.acked, 3);
	assert_int_equal(a.error, -EOPNOTSUPP);
	assert_int_equal(a.err_seq, 11);
	assert_string_equal(a.where, "rule");
	/* truncated or lying lengths are malformed */
	assert_int_equal(kha_proxy__nat_parse_acks(buf, 10, 10, 20, &a), -EBADMSG);
	((struct nlmsghdr *)buf)->nlmsg_len = 4000;
	assert_int_equal(kha_proxy__nat_parse_acks(buf, len, 10, 20, &a), -EBADMSG);
	((struct nlmsghdr *)buf)->nlmsg_len = NLMSG_HDRLEN + 2;
	((struct nlmsghdr *)buf)->nlmsg_type = NLMSG_ERROR;
	assert_int_equal(kha_proxy__nat_parse_acks(buf, len, 10, 20, &a), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_reduces_weights_by_their_gcd),
		cmocka_unit_test(test_plan_takes_the_best_tier_only),
		cmocka_unit_test(test_plan_scales_large_weight_sums),
		cmocka_unit_test(test_batch_replaces_the_table_in_one_transaction),
		cmocka_unit_test(test_batch_prerouting_roundrobin_and_source_hash),
		cmocka_unit_test(test_batch_without_backends_and_removal),
		cmocka_unit_test(test_batch_splits_many_elements),
		cmocka_unit_test(test_acks_count_and_name_the_failure),
	};
	return cmocka_run_group_tests_name("proxy-nat", tests, NULL, NULL);
}
