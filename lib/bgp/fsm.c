// SPDX-License-Identifier: MIT
/*
 * The BGP session state machine of RFC 4271 8.2, clock-injected: every event returns the actions
 * the caller performs (in the bit order of enum kha_bgp_action); deadlines are absolute.
 *
 * Choices within the RFC (its optional session attributes, 8.1.1):
 *   - AutomaticStart with DampPeerOscillations: a session that ends with an error goes to Idle
 *     and starts again by itself after IdleHoldTime, doubled on each error in a row (1 s, 2 s,
 *     4 s ... up to idle_hold_max); reaching Established resets it.
 *   - Active and passive at once: after a failed connection attempt the session waits in Active
 *     (listening) and tries again when ConnectRetryTimer expires, ConnectRetryTime doubling on
 *     each failure up to connect_retry_max. A passive session never leaves Active by itself.
 *   - No DelayOpen, no collision detection here: the speaker resolves collisions (6.8) before
 *     it hands the machine a connection.
 */
#include <string.h>

#include "kha/bgp.h"
#include "kha/banned.h"

/* RFC 4271 8.2.2: "a large value" for the HoldTimer before the peer's OPEN; 4 minutes */
#define OPEN_HOLD_US (240 * KHA_USEC_PER_SEC)

void kha_bgp_fsm_init(struct kha_bgp_fsm *f, const struct kha_bgp_fsm_config *cfg)
{
	memset(f, 0, sizeof(*f));
	f->cfg = *cfg;
	if (!f->cfg.connect_retry_us)
		f->cfg.connect_retry_us = 5 * KHA_USEC_PER_SEC;
	if (f->cfg.connect_retry_max_us < f->cfg.connect_retry_us)
		f->cfg.connect_retry_max_us =
			KHA_MAX(60 * KHA_USEC_PER_SEC, f->cfg.connect_retry_us);
	if (!f->cfg.idle_hold_us)
		f->cfg.idle_hold_us = KHA_USEC_PER_SEC;
	if (f->cfg.idle_hold_max_us < f->cfg.idle_hold_us)
		f->cfg.idle_hold_max_us = KHA_MAX(60 * KHA_USEC_PER_SEC, f->cfg.idle_hold_us);
	f->state = KHA_BGP_IDLE;
	f->retry_us = f->cfg.connect_retry_us;
}

static uint64_t deadline(uint64_t now, uint64_t delay)
{
	return now + delay ? now + delay : 1;
}

static unsigned set_state(struct kha_bgp_fsm *f, enum kha_bgp_state s)
{
	if (f->state == s)
		return 0;
	f->state = s;
	return KHA_BGP_ACT_STATE;
}

static void stop_timers(struct kha_bgp_fsm *f)
{
	f->connect_retry_at_us = 0;
	f->hold_at_us = 0;
	f->keepalive_at_us = 0;
	f->idle_hold_at_us = 0;
}

/* Whether a TCP connection exists in this state (so a NOTIFICATION can be sent). */
static bool connected(const struct kha_bgp_fsm *f)
{
	return f->state == KHA_BGP_OPENSENT || f->state == KHA_BGP_OPENCONFIRM ||
	       f->state == KHA_BGP_ESTABLISHED;
}

/* Connect (we dial) or Active (we wait), with ConnectRetryTimer running. */
static unsigned connect_or_wait(struct kha_bgp_fsm *f, uint64_t now)
{
	stop_timers(f);
	if (f->cfg.passive)
		return set_state(f, KHA_BGP_ACTIVE);
	f->connect_retry_at_us = deadline(now, f->retry_us);
	return set_state(f, KHA_BGP_CONNECT) | KHA_BGP_ACT_CONNECT;
}

unsigned kha_bgp_fsm_start(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->state != KHA_BGP_IDLE)
		return 0;
	f->started = true;
	f->retry_us = f->cfg.connect_retry_us;
	return connect_or_wait(f, now);
}

/* To Idle after an error: the session starts again after IdleHoldTime (doubling). */
static unsigned to_idle_after_error(struct kha_bgp_fsm *f, uint64_t now)
{
	uint64_t hold = f->cfg.idle_hold_us;

	stop_timers(f);
	for (unsigned i = 0; i < f->errors && hold < f->cfg.idle_hold_max_us; i++)
		hold *= 2;
	hold = KHA_MIN(hold, f->cfg.idle_hold_max_us);
	if (f->errors < 32)
		f->errors++;
	if (f->started)
		f->idle_hold_at_us = deadline(now, hold);
	return set_state(f, KHA_BGP_IDLE);
}

unsigned kha_bgp_fsm_stop(struct kha_bgp_fsm *f, uint64_t now, uint8_t cease_subcode)
{
	unsigned act = 0;

	(void)now;
	if (connected(f)) {
		memset(&f->notify_out, 0, sizeof(f->notify_out));
		f->notify_out.code = KHA_BGP_ERR_CEASE;
		f->notify_out.subcode = cease_subcode;
		act |= KHA_BGP_ACT_SEND_NOTIFY;
	}
	if (f->state != KHA_BGP_IDLE)
		act |= KHA_BGP_ACT_CLOSE;
	f->started = false;
	f->errors = 0;
	stop_timers(f);
	return act | set_state(f, KHA_BGP_IDLE);
}

unsigned kha_bgp_fsm_tcp_up(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->state != KHA_BGP_CONNECT && f->state != KHA_BGP_ACTIVE)
		return 0;
	stop_timers(f);
	f->hold_at_us = deadline(now, OPEN_HOLD_US);
	return set_state(f, KHA_BGP_OPENSENT) | KHA_BGP_ACT_SEND_OPEN;
}

unsigned kha_bgp_fsm_tcp_replace(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->state != KHA_BGP_OPENSENT && f->state != KHA_BGP_OPENCONFIRM)
		return kha_bgp_fsm_tcp_up(f, now);
	stop_timers(f);
	f->hold_at_us = deadline(now, OPEN_HOLD_US);
	return set_state(f, KHA_BGP_OPENSENT) | KHA_BGP_ACT_SEND_OPEN;
}

unsigned kha_bgp_fsm_tcp_fail(struct kha_bgp_fsm *f, uint64_t now)
{
	switch (f->state) {
	case KHA_BGP_CONNECT:
		/* wait in Active for the peer to dial, try again later, a little later each time */
		f->retry_us = KHA_MIN(f->retry_us * 2, f->cfg.connect_retry_max_us);
		stop_timers(f);
		f->connect_retry_at_us = deadline(now, f->retry_us);
		return set_state(f, KHA_BGP_ACTIVE) | KHA_BGP_ACT_CLOSE;
	case KHA_BGP_OPENSENT:
		/* 8.2.2 OpenSent, Event 18: close, restart ConnectRetryTimer, Active */
		stop_timers(f);
		if (!f->cfg.passive)
			f->connect_retry_at_us = deadline(now, f->retry_us);
		return set_state(f, KHA_BGP_ACTIVE) | KHA_BGP_ACT_CLOSE;
	case KHA_BGP_OPENCONFIRM:
	case KHA_BGP_ESTABLISHED:
		return to_idle_after_error(f, now) | KHA_BGP_ACT_CLOSE;
	default:
		return 0;
	}
}

/* An event that has no place in the current state (RFC 6608 subcodes). */
static unsigned fsm_error(struct kha_bgp_fsm *f, uint64_t now)
{
	static const uint8_t sub[KHA_BGP_STATE__MAX] = {
		[KHA_BGP_OPENSENT] = KHA_BGP_FSM_IN_OPENSENT,
		[KHA_BGP_OPENCONFIRM] = KHA_BGP_FSM_IN_OPENCONFIRM,
		[KHA_BGP_ESTABLISHED] = KHA_BGP_FSM_IN_ESTABLISHED,
	};
	struct kha_bgp_notify n = {.code = KHA_BGP_ERR_FSM, .subcode = sub[f->state]};

	return kha_bgp_fsm_error(f, now, &n);
}

unsigned kha_bgp_fsm_open(struct kha_bgp_fsm *f, uint64_t now, uint16_t peer_hold_s)
{
	uint64_t hold_s;

	if (f->state != KHA_BGP_OPENSENT)
		return fsm_error(f, now);
	/* 4.2: the smaller of both; 0 means no keepalives and no hold timer */
	hold_s = KHA_MIN((uint64_t)peer_hold_s, (uint64_t)f->cfg.hold_time_s);
	f->hold_us = hold_s * KHA_USEC_PER_SEC;
	f->keepalive_us = f->hold_us ? f->hold_us / 3 : 0;
	if (f->hold_us && f->cfg.keepalive_us && f->cfg.keepalive_us < f->keepalive_us)
		f->keepalive_us = f->cfg.keepalive_us;
	stop_timers(f);
	if (f->hold_us) {
		f->hold_at_us = deadline(now, f->hold_us);
		f->keepalive_at_us = deadline(now, f->keepalive_us);
	}
	return set_state(f, KHA_BGP_OPENCONFIRM) | KHA_BGP_ACT_SEND_KEEPALIVE;
}

static void restart_hold(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->hold_us)
		f->hold_at_us = deadline(now, f->hold_us);
}

unsigned kha_bgp_fsm_keepalive(struct kha_bgp_fsm *f, uint64_t now)
{
	switch (f->state) {
	case KHA_BGP_OPENCONFIRM:
		restart_hold(f, now);
		f->errors = 0;
		f->retry_us = f->cfg.connect_retry_us;
		return set_state(f, KHA_BGP_ESTABLISHED) | KHA_BGP_ACT_ANNOUNCE;
	case KHA_BGP_ESTABLISHED:
		restart_hold(f, now);
		return 0;
	default:
		return fsm_error(f, now);
	}
}

unsigned kha_bgp_fsm_update(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->state != KHA_BGP_ESTABLISHED)
		return fsm_error(f, now);
	restart_hold(f, now);
	return 0;
}

unsigned kha_bgp_fsm_notification(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->state == KHA_BGP_IDLE)
		return 0;
	return to_idle_after_error(f, now) | KHA_BGP_ACT_CLOSE;
}

unsigned kha_bgp_fsm_error(struct kha_bgp_fsm *f, uint64_t now, const struct kha_bgp_notify *err)
{
	unsigned act = 0;

	if (f->state == KHA_BGP_IDLE)
		return 0;
	if (connected(f)) {
		f->notify_out = *err;
		act |= KHA_BGP_ACT_SEND_NOTIFY;
	}
	return act | to_idle_after_error(f, now) | KHA_BGP_ACT_CLOSE;
}

unsigned kha_bgp_fsm_bfd_down(struct kha_bgp_fsm *f, uint64_t now)
{
	/* RFC 9384: Cease, BFD Down */
	struct kha_bgp_notify n = {.code = KHA_BGP_ERR_CEASE, .subcode = KHA_BGP_CEASE_BFD_DOWN};

	if (f->state != KHA_BGP_OPENCONFIRM && f->state != KHA_BGP_ESTABLISHED)
		return 0;
	return kha_bgp_fsm_error(f, now, &n);
}

unsigned kha_bgp_fsm_tick(struct kha_bgp_fsm *f, uint64_t now)
{
	if (f->idle_hold_at_us && now >= f->idle_hold_at_us) {
		f->idle_hold_at_us = 0;
		if (f->state == KHA_BGP_IDLE && f->started)
			return connect_or_wait(f, now);
	}
	if (f->hold_at_us && now >= f->hold_at_us && connected(f)) {
		struct kha_bgp_notify n = {.code = KHA_BGP_ERR_HOLD};

		return kha_bgp_fsm_error(f, now, &n);
	}
	if (f->connect_retry_at_us && now >= f->connect_retry_at_us) {
		f->connect_retry_at_us = 0;
		if (f->state == KHA_BGP_CONNECT) {
			/* the attempt hangs: drop it and dial again */
			f->retry_us = KHA_MIN(f->retry_us * 2, f->cfg.connect_retry_max_us);
			f->connect_retry_at_us = deadline(now, f->retry_us);
			return KHA_BGP_ACT_CLOSE | KHA_BGP_ACT_CONNECT;
		}
		if (f->state == KHA_BGP_ACTIVE && !f->cfg.passive) {
			f->connect_retry_at_us = deadline(now, f->retry_us);
			return set_state(f, KHA_BGP_CONNECT) | KHA_BGP_ACT_CONNECT;
		}
	}
	if (f->keepalive_at_us && now >= f->keepalive_at_us &&
	    (f->state == KHA_BGP_OPENCONFIRM || f->state == KHA_BGP_ESTABLISHED)) {
		f->keepalive_at_us = deadline(now, f->keepalive_us);
		return KHA_BGP_ACT_SEND_KEEPALIVE;
	}
	return 0;
}

uint64_t kha_bgp_fsm_next_us(const struct kha_bgp_fsm *f)
{
	uint64_t t[] = {f->connect_retry_at_us, f->hold_at_us, f->keepalive_at_us,
			f->idle_hold_at_us};
	uint64_t next = 0;

	for (size_t i = 0; i < KHA_ARRAY_SIZE(t); i++)
		if (t[i] && (!next || t[i] < next))
			next = t[i];
	return next;
}

const char *kha_bgp_state_name(enum kha_bgp_state s)
{
	static const char *const names[KHA_BGP_STATE__MAX] = {
		[KHA_BGP_IDLE] = "Idle",
		[KHA_BGP_CONNECT] = "Connect",
		[KHA_BGP_ACTIVE] = "Active",
		[KHA_BGP_OPENSENT] = "OpenSent",
		[KHA_BGP_OPENCONFIRM] = "OpenConfirm",
		[KHA_BGP_ESTABLISHED] = "Established",
	};
	return (unsigned)s < KHA_BGP_STATE__MAX ? names[s] : "?";
}
