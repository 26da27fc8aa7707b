/* SPDX-License-Identifier: MIT */
/*
 * The two pure decisions of kha proxy, kept apart so unit tests can drive them:
 *
 * 1. The health state machine of one backend, fed by active checks and by passive signals from
 *    the data path:
 *
 *      UP --check failed / passive failure--> SUSPECT --ok--> UP
 *      UP, SUSPECT --`fall` consecutive non-200 answers--> DRAINING  (alive, not ready)
 *      any --`fall` consecutive failed checks (timeout, refused, TLS error)--> DOWN (dead)
 *      DRAINING, DOWN --`rise` consecutive ok--> UP
 *
 *    SUSPECT receives no new connection while an UP backend exists; a passive failure asks for
 *    an immediate check (check_now) and, while a transition is pending, checks run at the fast
 *    interval. Passive failures never make a backend DOWN on their own: only checks do, since
 *    DOWN closes the backend's established connections.
 *
 * 2. The balancer's choice among candidates: the best tier that has a candidate not yet tried
 *    (UP, then SUSPECT, then DRAINING, then DOWN as a last resort: a backend may have recovered
 *    before its checks say so, and connect-time retry covers the rest), then least connections
 *    relative to weight (ties rotate) or smooth weighted round-robin within that tier. In the
 *    last-resort tiers (DRAINING, DOWN: checks say nothing useful, for example when they fail
 *    for a configuration reason) a backend whose connect or first byte failed since it last
 *    answered (`failing`) comes after the others, so a frozen backend is not fed again until
 *    it answers or every other one fails too.
 */
#ifndef KHA_PROXY_HEALTH_H
#define KHA_PROXY_HEALTH_H

#include "kha/common.h"

enum kha_proxy_state {
	KHA_PROXY_UP,
	KHA_PROXY_SUSPECT,
	KHA_PROXY_DRAINING,
	KHA_PROXY_DOWN,
	KHA_PROXY_NSTATES,
};

enum kha_proxy_event {
	KHA_PROXY_EV_CHECK_OK,	      /* check passed (HTTP 200, or TCP connected) */
	KHA_PROXY_EV_CHECK_NOT_READY, /* the backend answered, but not 200 */
	KHA_PROXY_EV_CHECK_FAILED,    /* timeout, refused, reset, TLS failure */
	KHA_PROXY_EV_PASSIVE,	      /* data path: connect failed/timed out, no first byte */
};

struct kha_proxy_health {
	enum kha_proxy_state state;
	unsigned fall, rise;
	unsigned ok_run, fail_run; /* consecutive results of the current kind */
	bool check_now;		   /* set by the machine: run a check immediately */
};

void kha_proxy_health_init(struct kha_proxy_health *h, unsigned fall, unsigned rise);
/* Applies ev; returns true when the state changed. */
bool kha_proxy_health_apply(struct kha_proxy_health *h, enum kha_proxy_event ev);
/* Whether a state change is pending (checks should run at the fast interval). */
bool kha_proxy_health_transitioning(const struct kha_proxy_health *h);
const char *kha_proxy_state_name(enum kha_proxy_state s);

enum kha_proxy_balance {
	KHA_PROXY_LEASTCONN,
	KHA_PROXY_ROUNDROBIN,
	KHA_PROXY_RANDOM, /* --mode nat only: numgen random */
	KHA_PROXY_SOURCE, /* --mode nat only: hash of the client's address */
};

struct kha_proxy_candidate {
	enum kha_proxy_state state;
	uint32_t weight; /* 0: never chosen */
	uint32_t active; /* established + connecting connections */
	bool excluded;	 /* already tried for this client connection */
	bool failing;	 /* connect or first byte failed since it last answered */
	int64_t current; /* smooth weighted round-robin state, kept between picks */
};

/*
 * Picks a candidate; returns its index, or -1 when every candidate is excluded (or weight 0).
 * *cursor rotates ties (leastconn) and must persist between calls.
 */
int kha_proxy_balance_pick(struct kha_proxy_candidate *c, size_t n, enum kha_proxy_balance mode,
			   unsigned *cursor);

#endif
