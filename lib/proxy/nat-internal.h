/* SPDX-License-Identifier: MIT */
/*
 * kha proxy --mode nat: the kernel's data path (nftables DNAT), managed by the control thread.
 * See docs/internals/proxy.md ("NAT mode") for the table kha writes and its invariants.
 *
 * Two layers:
 * - pure (unit-tested, fuzzed): the plan (which backends, with which share of the numbers a
 *   numgen/hash expression draws), the batch of nftables messages that installs it, and the
 *   parser of the kernel's acknowledgements;
 * - the glue (control thread only): netlink sockets, the dummy interface, conntrack.
 */
#ifndef KHA_PROXY_NAT_INTERNAL_H
#define KHA_PROXY_NAT_INTERNAL_H

#include <netinet/in.h>
#include <jansson.h>

#include "kha/proxy.h"

/* a plan never has more numbers than this: weights are scaled down to fit */
#define KHA_PROXY_NAT_SLOTS_MAX	  4096
#define KHA_PROXY_NAT_TARGETS_MAX 256

struct kha_proxy_nat_target {
	struct in_addr addr; /* network order */
	uint16_t port;	     /* host order */
	uint32_t weight;     /* after reduction: the number of slots it owns */
};

/* What the table does: entry -> one of targets, chosen by balance. */
struct kha_proxy_nat_plan {
	enum kha_proxy_balance balance; /* RANDOM, ROUNDROBIN (numgen inc) or SOURCE (jhash) */
	size_t n;
	struct kha_proxy_nat_target t[KHA_PROXY_NAT_TARGETS_MAX];
	uint32_t slots; /* sum of the reduced weights: the modulus */
};

/* The fixed part of the table: where it lives and what it matches. */
struct kha_proxy_nat_spec {
	char table[16];
	struct in_addr entry; /* network order */
	uint16_t port;	      /* host order */
	bool prerouting;
	uint32_t hash_seed; /* for SOURCE: kept for the process' life, so affinity survives */
};

/* A candidate for the plan: its address, weight and health. */
struct kha_proxy_nat_cand {
	struct in_addr addr;
	uint16_t port;
	uint32_t weight;
	enum kha_proxy_state state;
};

/*
 * The plan for candidates c[0..n): the best health tier present (up, then suspect, draining,
 * down: the same tiers as the user-space balancer, without retries there is no "try the next"),
 * weights divided by their greatest common divisor, then scaled down proportionally (each at
 * least 1) if their sum exceeds KHA_PROXY_NAT_SLOTS_MAX. More than KHA_PROXY_NAT_TARGETS_MAX
 * candidates in the tier: the first ones. No candidate: ret->n == 0 (the table then has no rule:
 * connections to the entry are refused). Fills *ret completely.
 */
void kha_proxy__nat_plan(const struct kha_proxy_nat_cand *c, size_t n,
			 enum kha_proxy_balance balance, struct kha_proxy_nat_plan *ret);
bool kha_proxy__nat_plan_equal(const struct kha_proxy_nat_plan *a,
			       const struct kha_proxy_nat_plan *b);

/*
 * Builds the nftables batch that replaces table spec->table by the one for plan (begin, add
 * table, delete table, add table, chains, map, elements, rules, end: one transaction, so a
 * leftover table is replaced and a packet sees either the old or the new table, never none).
 * Sequence numbers start at seq; every message but begin/end asks for an acknowledgement.
 * Returns the length (> 0) with *ret_buf malloc'd (the caller frees it) and *ret_nacks the
 * number of acknowledgements to expect, or -ENOMEM. del_only: just add + delete (removal).
 */
int kha_proxy__nat_batch(const struct kha_proxy_nat_spec *spec,
			 const struct kha_proxy_nat_plan *plan, bool del_only, uint32_t seq,
			 char **ret_buf, unsigned *ret_nacks) KHA_WUR;

/* What the acknowledgements of a batch said so far. */
struct kha_proxy_nat_acks {
	unsigned acked;	  /* acknowledgements (positive or not) with seq in [first, last] */
	int error;	  /* the first error (negative errno), 0: none */
	uint32_t err_seq; /* its sequence number */
	char where[32];	  /* the message type of the failed request ("chain", "rule" ...) */
};

/*
 * Parses one datagram of netlink replies to a batch whose messages carry sequence numbers
 * [first, last] and accumulates them in *acks. Returns 0, or -EBADMSG for a malformed datagram
 * (truncated header, length beyond the buffer, error message too short).
 */
int kha_proxy__nat_parse_acks(const void *buf, size_t len, uint32_t first, uint32_t last,
			      struct kha_proxy_nat_acks *acks) KHA_WUR;

/* ---- glue: control thread (proxy.c calls these only in NAT mode) ---- */
struct backend;
struct kha_proxy_nat;

/* Validates the NAT part of a configuration (entry address, name). 0 or -EINVAL with d. */
int kha_proxy__nat_validate(const struct kha_proxy_config *cfg, struct kha_diag *d) KHA_WUR;
/*
 * Opens the netlink sockets, creates the dummy interface with the entry address and installs
 * an empty table (replacing a leftover one), so that permissions fail first and clearly.
 * -EPERM without CAP_NET_ADMIN, with d saying so.
 */
int kha_proxy__nat_new(struct kha_proxy *p, struct kha_diag *d, struct kha_proxy_nat **ret) KHA_WUR;
/* After the first publish: 0 when the table is in the kernel, else -EIO with d saying why. */
int kha_proxy__nat_started(struct kha_proxy *p, struct kha_diag *d) KHA_WUR;
/* Writes the table for the current backends and states if it differs from the installed one. */
void kha_proxy__nat_publish(struct kha_proxy *p);
/* A backend changed state: republish; on DOWN (with close_on_dead) cut its conntrack entries. */
void kha_proxy__nat_state_changed(struct kha_proxy *p, struct backend *b);
/* Removes the table and the dummy interface, closes everything. NULL is a no-op. */
void kha_proxy__nat_free(struct kha_proxy_nat *nat);
/* Adds the kha_proxy_nat_* metrics to p->metrics. 0 or -ENOMEM. */
int kha_proxy__nat_metrics(struct kha_proxy *p) KHA_WUR;
/* The "nat" object of /status (new reference), or NULL. */
json_t *kha_proxy__nat_status(struct kha_proxy *p);

#endif
