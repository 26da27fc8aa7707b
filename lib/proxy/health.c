// SPDX-License-Identifier: MIT
/* The health state machine and the balancer (see include/kha/proxy-health.h). */
#include "kha/proxy-health.h"
#include "kha/banned.h"

static const char *const state_names[] = {"up", "suspect", "draining", "down"};

const char *kha_proxy_state_name(enum kha_proxy_state s)
{
	return s < KHA_PROXY_NSTATES ? state_names[s] : "unknown";
}

void kha_proxy_health_init(struct kha_proxy_health *h, unsigned fall, unsigned rise)
{
	h->state = KHA_PROXY_UP;
	h->fall = fall ? fall : 1;
	h->rise = rise ? rise : 1;
	h->ok_run = h->fail_run = 0;
	h->check_now = false;
}

bool kha_proxy_health_apply(struct kha_proxy_health *h, enum kha_proxy_event ev)
{
	enum kha_proxy_state old = h->state;

	switch (ev) {
	case KHA_PROXY_EV_CHECK_OK:
		h->fail_run = 0;
		h->ok_run++;
		if (h->state == KHA_PROXY_SUSPECT || h->ok_run >= h->rise)
			h->state = KHA_PROXY_UP;
		break;
	case KHA_PROXY_EV_CHECK_NOT_READY:
		h->ok_run = 0;
		h->fail_run++;
		if (h->state == KHA_PROXY_DOWN)
			h->state = KHA_PROXY_DRAINING; /* alive again, not ready yet */
		else if (h->fail_run >= h->fall)
			h->state = KHA_PROXY_DRAINING;
		break;
	case KHA_PROXY_EV_CHECK_FAILED:
		h->ok_run = 0;
		h->fail_run++;
		if (h->fail_run >= h->fall)
			h->state = KHA_PROXY_DOWN;
		else if (h->state == KHA_PROXY_UP)
			h->state = KHA_PROXY_SUSPECT;
		break;
	case KHA_PROXY_EV_PASSIVE:
		if (h->state == KHA_PROXY_DOWN || h->state == KHA_PROXY_DRAINING)
			break; /* no new connection goes there anyway */
		h->ok_run = 0;
		h->state = KHA_PROXY_SUSPECT;
		h->check_now = true;
		break;
	}
	return h->state != old;
}

bool kha_proxy_health_transitioning(const struct kha_proxy_health *h)
{
	switch (h->state) {
	case KHA_PROXY_UP:
		return h->fail_run > 0;
	case KHA_PROXY_SUSPECT:
		return true;
	case KHA_PROXY_DRAINING:
		return h->ok_run > 0 || h->fail_run > 0;
	default:
		return h->ok_run > 0;
	}
}

/* a / wa < b / wb without division */
static bool less_loaded(const struct kha_proxy_candidate *a, const struct kha_proxy_candidate *b)
{
	return (uint64_t)a->active * b->weight < (uint64_t)b->active * a->weight;
}

/* The tier of a candidate: its state, and in the last-resort states whether it is failing. */
static unsigned tier_of(const struct kha_proxy_candidate *c)
{
	return (unsigned)c->state * 2 + (c->state >= KHA_PROXY_DRAINING && c->failing);
}

int kha_proxy_balance_pick(struct kha_proxy_candidate *c, size_t n, enum kha_proxy_balance mode,
			   unsigned *cursor)
{
	unsigned tier = KHA_PROXY_NSTATES * 2;
	int best = -1;
	int64_t total = 0;

	for (size_t i = 0; i < n; i++)
		if (!c[i].excluded && c[i].weight > 0 && tier_of(&c[i]) < tier)
			tier = tier_of(&c[i]);
	if (tier == KHA_PROXY_NSTATES * 2)
		return -1;
	if (mode == KHA_PROXY_ROUNDROBIN) {
		for (size_t i = 0; i < n; i++) {
			if (c[i].excluded || c[i].weight == 0 || tier_of(&c[i]) != tier)
				continue;
			c[i].current += c[i].weight;
			total += c[i].weight;
			if (best < 0 || c[i].current > c[best].current)
				best = (int)i;
		}
		c[best].current -= total;
		return best;
	}
	/* leastconn: scan from the rotating cursor so equal loads spread */
	for (size_t k = 0; k < n; k++) {
		size_t i = (*cursor + k) % n;
		if (c[i].excluded || c[i].weight == 0 || tier_of(&c[i]) != tier)
			continue;
		if (best < 0 || less_loaded(&c[i], &c[best]))
			best = (int)i;
	}
	(*cursor)++;
	return best;
}
