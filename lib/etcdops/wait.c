// SPDX-License-Identifier: MIT
/*
 * The one cancellable wait every poll of lib/etcdops goes through (kha_etcdops_wait): poll, say
 * how far it got, sleep with kha_sleep_us (so a cancel flag ends it within 50 ms), until done,
 * failed or past the deadline.
 */
#include <errno.h>

#include "kha/etcdops.h"
#include "kha/banned.h"

int kha_etcdops_wait(uint64_t deadline_us, uint64_t interval_us,
		     const volatile sig_atomic_t *cancel, kha_etcdops_poll_fn poll, void *userdata,
		     kha_etcdops_member_progress_fn progress, void *progress_userdata)
{
	for (;;) {
		char text[512] = "";
		int r = poll(userdata, text, sizeof(text));

		if (r != 0)
			return r;
		if (kha_now_us() >= deadline_us)
			return -ETIMEDOUT;
		if (text[0] && progress)
			progress(progress_userdata, text);
		if (kha_sleep_us(interval_us, cancel) < 0)
			return -ECANCELED;
	}
}
