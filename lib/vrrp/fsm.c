// SPDX-License-Identifier: MIT
/*
 * The VRRP state machine of RFC 5798 6.4, clock-injected. Every input returns the actions the
 * caller performs (in the bit order of enum kha_vrrp_action); the deadlines are absolute.
 * Fault is ours (keepalived has the same): out of the election while a health track fails.
 */
#include <arpa/inet.h>
#include <string.h>

#include "kha/vrrp.h"
#include "kha/banned.h"

uint64_t kha_vrrp_skew_us(uint8_t priority, uint64_t master_adver_interval_us)
{
	return ((256 - (uint64_t)priority) * master_adver_interval_us) / 256;
}

uint64_t kha_vrrp_master_down_us(uint8_t priority, uint64_t master_adver_interval_us)
{
	return 3 * master_adver_interval_us + kha_vrrp_skew_us(priority, master_adver_interval_us);
}

void kha_vrrp_fsm_init(struct kha_vrrp_fsm *f, const struct kha_vrrp_fsm_config *cfg)
{
	memset(f, 0, sizeof(*f));
	f->cfg = *cfg;
	f->state = KHA_VRRP_STATE_INIT;
	f->master_adver_interval_us = cfg->adver_interval_us;
}

static unsigned set_state(struct kha_vrrp_fsm *f, enum kha_vrrp_state s)
{
	if (f->state == s)
		return 0;
	f->state = s;
	return KHA_VRRP_ACT_STATE;
}

/* Deadlines are never 0 (0 means "not running"), even on a fake clock starting at 0. */
static uint64_t deadline(uint64_t now, uint64_t delay)
{
	return now + delay ? now + delay : 1;
}

static unsigned become_master(struct kha_vrrp_fsm *f, uint64_t now)
{
	f->down_at_us = 0;
	f->adver_at_us = deadline(now, f->cfg.adver_interval_us);
	f->master = f->cfg.primary;
	f->master_priority = f->cfg.priority;
	return set_state(f, KHA_VRRP_STATE_MASTER) | KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_VIP_ADD;
}

static unsigned become_backup(struct kha_vrrp_fsm *f, uint64_t now)
{
	f->adver_at_us = 0;
	f->down_at_us = deadline(
		now, kha_vrrp_master_down_us(f->cfg.priority, f->master_adver_interval_us));
	return set_state(f, KHA_VRRP_STATE_BACKUP);
}

unsigned kha_vrrp_fsm_start(struct kha_vrrp_fsm *f, uint64_t now)
{
	if (f->state != KHA_VRRP_STATE_INIT && f->state != KHA_VRRP_STATE_FAULT)
		return 0;
	if (f->cfg.priority == KHA_VRRP_PRIO_OWNER)
		return become_master(f, now);
	f->master_adver_interval_us = f->cfg.adver_interval_us;
	f->master = 0;
	f->master_priority = 0;
	return become_backup(f, now);
}

/* Leaving Master for Initialize or Fault: tell the others at once, drop the VIP. */
static unsigned leave(struct kha_vrrp_fsm *f, enum kha_vrrp_state to)
{
	unsigned act = 0;

	if (f->state == KHA_VRRP_STATE_MASTER) {
		act = KHA_VRRP_ACT_ADVERT_STOP | KHA_VRRP_ACT_VIP_DEL;
		f->master = 0;
		f->master_priority = 0;
	}
	f->adver_at_us = 0;
	f->down_at_us = 0;
	return act | set_state(f, to);
}

unsigned kha_vrrp_fsm_stop(struct kha_vrrp_fsm *f, uint64_t now)
{
	(void)now;
	return leave(f, KHA_VRRP_STATE_INIT);
}

unsigned kha_vrrp_fsm_fault(struct kha_vrrp_fsm *f, uint64_t now)
{
	(void)now;
	if (f->state == KHA_VRRP_STATE_INIT || f->state == KHA_VRRP_STATE_FAULT)
		return 0;
	return leave(f, KHA_VRRP_STATE_FAULT);
}

unsigned kha_vrrp_fsm_recover(struct kha_vrrp_fsm *f, uint64_t now)
{
	if (f->state != KHA_VRRP_STATE_FAULT)
		return 0;
	return kha_vrrp_fsm_start(f, now);
}

/* Whether the sender (priority, address) outranks us: priority first, then the address. */
static bool outranks(const struct kha_vrrp_fsm *f, uint32_t src, uint8_t priority)
{
	if (priority != f->cfg.priority)
		return priority > f->cfg.priority;
	return ntohl(src) > ntohl(f->cfg.primary);
}

unsigned kha_vrrp_fsm_advert(struct kha_vrrp_fsm *f, uint64_t now, uint32_t src, uint8_t priority,
			     uint64_t interval_us)
{
	switch (f->state) {
	case KHA_VRRP_STATE_BACKUP:
		if (priority == KHA_VRRP_PRIO_STOP) {
			/* the master stops: take over after Skew_Time only */
			f->down_at_us =
				deadline(now, kha_vrrp_skew_us(f->cfg.priority,
							       f->master_adver_interval_us));
			if (f->master == src)
				f->master = 0;
			return 0;
		}
		if (f->cfg.preempt && priority < f->cfg.priority)
			return 0; /* a lower master: let Master_Down_Timer run out and preempt */
		f->master = src;
		f->master_priority = priority;
		f->master_adver_interval_us = interval_us;
		f->down_at_us =
			deadline(now, kha_vrrp_master_down_us(f->cfg.priority, interval_us));
		return 0;
	case KHA_VRRP_STATE_MASTER:
		if (priority == KHA_VRRP_PRIO_STOP) {
			f->adver_at_us = deadline(now, f->cfg.adver_interval_us);
			return KHA_VRRP_ACT_ADVERT;
		}
		if (!outranks(f, src, priority)) {
			/* another master, which will yield on our advert: win the neighbours'
			 * ARP caches back now, not when they expire */
			f->adver_at_us = deadline(now, f->cfg.adver_interval_us);
			return KHA_VRRP_ACT_ADVERT | KHA_VRRP_ACT_ANNOUNCE;
		}
		f->master = src;
		f->master_priority = priority;
		f->master_adver_interval_us = interval_us;
		return become_backup(f, now) | KHA_VRRP_ACT_VIP_DEL;
	case KHA_VRRP_STATE_FAULT:
		if (priority != KHA_VRRP_PRIO_STOP) {
			f->master = src;
			f->master_priority = priority;
		}
		return 0;
	default:
		return 0;
	}
}

unsigned kha_vrrp_fsm_tick(struct kha_vrrp_fsm *f, uint64_t now)
{
	switch (f->state) {
	case KHA_VRRP_STATE_BACKUP:
		if (f->down_at_us && now >= f->down_at_us)
			return become_master(f, now);
		return 0;
	case KHA_VRRP_STATE_MASTER:
		if (f->adver_at_us && now >= f->adver_at_us) {
			f->adver_at_us = deadline(now, f->cfg.adver_interval_us);
			return KHA_VRRP_ACT_ADVERT;
		}
		return 0;
	default:
		return 0;
	}
}

uint64_t kha_vrrp_fsm_next_us(const struct kha_vrrp_fsm *f)
{
	if (f->down_at_us && f->adver_at_us)
		return KHA_MIN(f->down_at_us, f->adver_at_us);
	return f->down_at_us ? f->down_at_us : f->adver_at_us;
}

const char *kha_vrrp_state_name(enum kha_vrrp_state s)
{
	static const char *const names[KHA_VRRP_STATE__MAX] = {
		[KHA_VRRP_STATE_INIT] = "INIT",
		[KHA_VRRP_STATE_BACKUP] = "BACKUP",
		[KHA_VRRP_STATE_MASTER] = "MASTER",
		[KHA_VRRP_STATE_FAULT] = "FAULT",
	};
	return (unsigned)s < KHA_VRRP_STATE__MAX ? names[s] : "?";
}
