// SPDX-License-Identifier: MIT
/*
 * BFD control packets (RFC 5880 4.1) and the asynchronous-mode session of RFC 5880 6.2/6.8,
 * clock-injected as the BGP machine: every input returns the actions to perform.
 *
 * kha takes the Active role (6.1) and never uses Demand mode, Echo or authentication. While the
 * session is not Up it sends once a second (6.8.3); once Up it switches to the configured rate
 * and runs a Poll Sequence (6.5) so that the peer acknowledges the new timers.
 */
#include <string.h>

#include "kha/bgp.h"
#include "bgp-internal.h"
#include "kha/banned.h"

int kha_bfd_encode(const struct kha_bfd_packet *p, uint8_t *buf, size_t size)
{
	if (size < KHA_BFD_LEN)
		return -ENOBUFS;
	buf[0] = (uint8_t)(KHA_BFD_VERSION << 5 | (p->diag & 0x1f));
	buf[1] = (uint8_t)((p->state & 3) << 6 | (p->poll ? 0x20 : 0) | (p->final ? 0x10 : 0) |
			   (p->cpi ? 0x08 : 0) | (p->demand ? 0x02 : 0));
	buf[2] = p->detect_mult;
	buf[3] = KHA_BFD_LEN;
	kha_bgp__put32(buf + 4, p->my_disc);
	kha_bgp__put32(buf + 8, p->your_disc);
	kha_bgp__put32(buf + 12, p->desired_min_tx_us);
	kha_bgp__put32(buf + 16, p->required_min_rx_us);
	kha_bgp__put32(buf + 20, p->required_min_echo_rx_us);
	return KHA_BFD_LEN;
}

int kha_bfd_decode(const uint8_t *buf, size_t len, struct kha_bfd_packet *ret)
{
	struct kha_bfd_packet p = {};

	if (len < KHA_BFD_LEN)
		return -EMSGSIZE;
	p.version = buf[0] >> 5;
	p.diag = buf[0] & 0x1f;
	p.state = buf[1] >> 6;
	p.poll = buf[1] & 0x20;
	p.final = buf[1] & 0x10;
	p.cpi = buf[1] & 0x08;
	p.auth = buf[1] & 0x04;
	p.demand = buf[1] & 0x02;
	p.multipoint = buf[1] & 0x01;
	p.detect_mult = buf[2];
	p.length = buf[3];
	p.my_disc = kha_bgp__get32(buf + 4);
	p.your_disc = kha_bgp__get32(buf + 8);
	p.desired_min_tx_us = kha_bgp__get32(buf + 12);
	p.required_min_rx_us = kha_bgp__get32(buf + 16);
	p.required_min_echo_rx_us = kha_bgp__get32(buf + 20);
	/* RFC 5880 6.8.6, in its order */
	if (p.version != KHA_BFD_VERSION)
		return -EBADMSG;
	if (p.length < (p.auth ? 26 : KHA_BFD_LEN) || p.length > len)
		return -EMSGSIZE;
	if (p.detect_mult == 0 || p.multipoint || p.my_disc == 0)
		return -EBADMSG;
	if (p.your_disc == 0 && p.state != KHA_BFD_DOWN && p.state != KHA_BFD_ADMIN_DOWN)
		return -EBADMSG;
	if (p.auth)
		return -EPROTONOSUPPORT;
	*ret = p;
	return 0;
}

static uint64_t deadline(uint64_t now, uint64_t delay)
{
	return now + delay ? now + delay : 1;
}

/* 6.8.7: the interval between packets, reduced by a random 0-25% (10-25% when mult is 1). */
static uint64_t tx_delay(struct kha_bfd_fsm *b)
{
	uint64_t iv = KHA_MAX(b->tx_interval_us, b->remote_min_rx_us);
	unsigned pct;

	b->jitter_seed = b->jitter_seed * 1103515245u + 12345u;
	pct = (b->jitter_seed >> 16) % 26; /* 0..25 */
	if (b->detect_mult == 1 && pct < 10)
		pct = 10;
	return iv - iv * pct / 100;
}

void kha_bfd_fsm_init(struct kha_bfd_fsm *b, uint32_t local_disc, uint64_t desired_min_tx_us,
		      uint64_t required_min_rx_us, uint8_t detect_mult, uint64_t now)
{
	memset(b, 0, sizeof(*b));
	b->local_disc = local_disc;
	b->state = KHA_BFD_DOWN;
	b->remote_state = KHA_BFD_DOWN;
	b->detect_mult = detect_mult;
	b->desired_min_tx_us = desired_min_tx_us;
	b->required_min_rx_us = required_min_rx_us;
	b->remote_min_rx_us = 1; /* 6.8.1: bfd.RemoteMinRxInterval starts at 1 */
	b->tx_interval_us = KHA_MAX(desired_min_tx_us, (uint64_t)KHA_BFD_SLOW_TX_US);
	b->jitter_seed = local_disc;
	b->tx_at_us = deadline(now, 0);
}

uint64_t kha_bfd_detect_us(const struct kha_bfd_fsm *b)
{
	if (!b->remote_detect_mult)
		return 0;
	return b->remote_detect_mult * KHA_MAX(b->required_min_rx_us, b->remote_desired_min_tx_us);
}

static unsigned set_state(struct kha_bfd_fsm *b, enum kha_bfd_state s, uint8_t diag, uint64_t now)
{
	if (b->state == s)
		return 0;
	b->state = s;
	b->diag = diag;
	if (s == KHA_BFD_UP) {
		/* now the configured rate, announced by a Poll Sequence (6.8.3) */
		b->tx_interval_us = b->desired_min_tx_us;
		b->poll = true;
	} else {
		b->tx_interval_us = KHA_MAX(b->desired_min_tx_us, (uint64_t)KHA_BFD_SLOW_TX_US);
		b->poll = false;
	}
	/* a state change is told at once */
	b->tx_at_us = deadline(now, 0);
	return KHA_BFD_ACT_STATE | KHA_BFD_ACT_SEND;
}

unsigned kha_bfd_fsm_rx(struct kha_bfd_fsm *b, uint64_t now, const struct kha_bfd_packet *p)
{
	unsigned act = 0;

	if (p->your_disc && p->your_disc != b->local_disc)
		return 0;
	/* 6.8.6 selects a session without Your Discriminator by the other fields: once Up, a
	 * packet from another remote discriminator is another session of that peer (FRR may run
	 * two for a while), not ours telling us it went down. A peer that really restarted is
	 * seen by the detection time. */
	if (!p->your_disc && b->state == KHA_BFD_UP && b->remote_disc &&
	    p->my_disc != b->remote_disc)
		return 0;
	b->remote_disc = p->my_disc;
	b->remote_state = p->state;
	b->remote_detect_mult = p->detect_mult;
	b->remote_min_rx_us = p->required_min_rx_us;
	b->remote_desired_min_tx_us = p->desired_min_tx_us;
	if (p->final)
		b->poll = false;
	if (b->state == KHA_BFD_ADMIN_DOWN)
		return 0;
	if (p->state == KHA_BFD_ADMIN_DOWN) {
		if (b->state != KHA_BFD_DOWN)
			act |= set_state(b, KHA_BFD_DOWN, KHA_BFD_DIAG_NEIGHBOR_DOWN, now);
	} else if (b->state == KHA_BFD_DOWN) {
		if (p->state == KHA_BFD_DOWN)
			act |= set_state(b, KHA_BFD_INIT, KHA_BFD_DIAG_NONE, now);
		else if (p->state == KHA_BFD_INIT)
			act |= set_state(b, KHA_BFD_UP, KHA_BFD_DIAG_NONE, now);
	} else if (b->state == KHA_BFD_INIT) {
		if (p->state == KHA_BFD_INIT || p->state == KHA_BFD_UP)
			act |= set_state(b, KHA_BFD_UP, KHA_BFD_DIAG_NONE, now);
	} else if (p->state == KHA_BFD_DOWN) { /* Up */
		act |= set_state(b, KHA_BFD_DOWN, KHA_BFD_DIAG_NEIGHBOR_DOWN, now);
	}
	if (p->poll) {
		/* 6.5: answer a Poll with a Final at once */
		b->final_pending = true;
		b->tx_at_us = deadline(now, 0);
		act |= KHA_BFD_ACT_SEND;
	}
	/* the peer does not want packets any more (6.8.3): stop until it asks again */
	if (b->remote_min_rx_us == 0)
		b->tx_at_us = 0;
	else if (!b->tx_at_us)
		b->tx_at_us = deadline(now, 0);
	b->detect_at_us = deadline(now, kha_bfd_detect_us(b));
	return act;
}

unsigned kha_bfd_fsm_tick(struct kha_bfd_fsm *b, uint64_t now)
{
	unsigned act = 0;

	if (b->detect_at_us && now >= b->detect_at_us) {
		b->detect_at_us = 0;
		if (b->state == KHA_BFD_INIT || b->state == KHA_BFD_UP) {
			act |= set_state(b, KHA_BFD_DOWN, KHA_BFD_DIAG_EXPIRED, now);
			b->remote_disc = 0; /* 6.8.1 */
			b->remote_state = KHA_BFD_DOWN;
			b->remote_min_rx_us = 1;
		}
	}
	if (b->tx_at_us && now >= b->tx_at_us && b->state != KHA_BFD_ADMIN_DOWN)
		act |= KHA_BFD_ACT_SEND;
	return act;
}

unsigned kha_bfd_fsm_admin_down(struct kha_bfd_fsm *b, uint64_t now)
{
	(void)now;
	if (b->state == KHA_BFD_ADMIN_DOWN)
		return 0;
	b->state = KHA_BFD_ADMIN_DOWN;
	b->diag = KHA_BFD_DIAG_ADMIN_DOWN;
	b->detect_at_us = 0;
	b->tx_at_us = 0;
	b->poll = false;
	return KHA_BFD_ACT_STATE | KHA_BFD_ACT_SEND;
}

void kha_bfd_fsm_packet(struct kha_bfd_fsm *b, uint64_t now, struct kha_bfd_packet *ret)
{
	struct kha_bfd_packet p = {
		.version = KHA_BFD_VERSION,
		.diag = b->diag,
		.state = (uint8_t)b->state,
		.poll = b->poll && !b->final_pending, /* never both in one packet (6.5) */
		.final = b->final_pending,
		.detect_mult = b->detect_mult,
		.length = KHA_BFD_LEN,
		.my_disc = b->local_disc,
		.your_disc = b->remote_disc,
		.desired_min_tx_us = (uint32_t)KHA_MIN(b->tx_interval_us, UINT32_MAX),
		.required_min_rx_us = (uint32_t)KHA_MIN(b->required_min_rx_us, UINT32_MAX),
	};
	b->final_pending = false;
	if (b->state != KHA_BFD_ADMIN_DOWN && b->remote_min_rx_us)
		b->tx_at_us = deadline(now, tx_delay(b));
	*ret = p;
}

uint64_t kha_bfd_fsm_next_us(const struct kha_bfd_fsm *b)
{
	if (b->tx_at_us && b->detect_at_us)
		return KHA_MIN(b->tx_at_us, b->detect_at_us);
	return b->tx_at_us ? b->tx_at_us : b->detect_at_us;
}

const char *kha_bfd_state_name(enum kha_bfd_state s)
{
	static const char *const names[] = {"AdminDown", "Down", "Init", "Up"};

	return (unsigned)s < KHA_ARRAY_SIZE(names) ? names[s] : "?";
}
