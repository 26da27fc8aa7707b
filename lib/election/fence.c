// SPDX-License-Identifier: MIT
/* The fencing arithmetic: when COMMAND must stop so it never outlives the lease. */
#include "kha/election.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define MIN_MARGIN_US (50 * KHA_USEC_PER_MSEC)

int kha_elect_fence_init(struct kha_elect_fence *f, uint64_t ttl_us, uint64_t renew_deadline_us,
			 uint64_t grace_us, struct kha_diag *d)
{
	char a[32], b[32];

	if (!ttl_us || !renew_deadline_us)
		return kha_diag_set(d, EINVAL, "the TTL and the renew deadline must be positive");
	if (renew_deadline_us >= ttl_us)
		return kha_diag_set(
			d, EINVAL,
			"the renew deadline (%s) must be shorter than the TTL (%s): COMMAND "
			"must stop before the lease can expire",
			kha_format_duration(a, sizeof(a), renew_deadline_us),
			kha_format_duration(b, sizeof(b), ttl_us));
	*f = (struct kha_elect_fence){
		.ttl_us = ttl_us,
		.renew_deadline_us = renew_deadline_us,
		.grace_us = grace_us,
		.margin_us = KHA_MAX(ttl_us / 10, MIN_MARGIN_US),
	};
	/* the margin must leave the renew deadline in front of it */
	if (f->margin_us > ttl_us - renew_deadline_us)
		f->margin_us = (ttl_us - renew_deadline_us) / 2;
	return 0;
}

void kha_elect_fence_renewed(struct kha_elect_fence *f, uint64_t started_us)
{
	if (started_us > f->last_renew_us)
		f->last_renew_us = started_us;
}

void kha_elect_fence_reset(struct kha_elect_fence *f)
{
	f->last_renew_us = 0;
}

uint64_t kha_elect_fence_deadline(const struct kha_elect_fence *f)
{
	return f->last_renew_us ? f->last_renew_us + f->renew_deadline_us : 0;
}

uint64_t kha_elect_fence_expiry(const struct kha_elect_fence *f)
{
	return f->last_renew_us ? f->last_renew_us + f->ttl_us : 0;
}

bool kha_elect_fence_ok(const struct kha_elect_fence *f, uint64_t now_us)
{
	return f->last_renew_us && now_us < kha_elect_fence_deadline(f);
}

uint64_t kha_elect_fence_kill_at(const struct kha_elect_fence *f, uint64_t term_us)
{
	uint64_t at = term_us + f->grace_us, expiry = kha_elect_fence_expiry(f);

	if (expiry) {
		uint64_t latest = expiry > f->margin_us ? expiry - f->margin_us : 0;

		if (at > latest)
			at = latest;
	}
	return at < term_us ? term_us : at;
}

uint64_t kha_elect_fence_call_timeout(const struct kha_elect_fence *f, uint64_t now_us,
				      uint64_t max_us, uint64_t min_us)
{
	uint64_t deadline = kha_elect_fence_deadline(f), left;

	if (!deadline)
		return max_us;
	left = deadline > now_us ? deadline - now_us : 0;
	if (left < min_us)
		left = min_us;
	return KHA_MIN(left, max_us);
}

int kha_elect_timers_derive(struct kha_elect_timers *t, bool kube_lease, struct kha_diag *d)
{
	int r;

	if (!t->ttl_us)
		t->ttl_us = (kube_lease ? 15 : 10) * KHA_USEC_PER_SEC;
	if (!t->renew_deadline_us)
		t->renew_deadline_us = kube_lease
					       ? KHA_MIN(10 * KHA_USEC_PER_SEC, t->ttl_us * 2 / 3)
					       : t->ttl_us * 2 / 3;
	if (!t->retry_period_us && kube_lease)
		t->retry_period_us = KHA_MIN(2 * KHA_USEC_PER_SEC, t->renew_deadline_us / 2);
	r = kha_elect_check_ttl(t->ttl_us, kube_lease, d);
	if (r < 0)
		return r;
	if (t->renew_deadline_us >= t->ttl_us)
		return kha_diag_set(
			d, EINVAL,
			"--renew-deadline must be shorter than --ttl (COMMAND must stop "
			"before the lease can expire)");
	if (kube_lease && t->retry_period_us >= t->renew_deadline_us)
		return kha_diag_set(d, EINVAL,
				    "--retry-period must be shorter than --renew-deadline");
	return 0;
}
