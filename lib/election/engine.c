// SPDX-License-Identifier: MIT
/*
 * The engine's shared state (struct engine, election-internal.h): the helpers the main thread
 * (run.c) and the backend threads (run-etcd.c, run-kube.c) both use to wait, wake each other
 * and report sessions. Every function named _locked is called with e->mu held.
 */
#include <inttypes.h>
#include <time.h>

#include "election-internal.h"
#include "kha/log.h"
#include "kha/banned.h"

void kha_elect__wake_main(struct engine *e)
{
	uint64_t one = 1;
	ssize_t n = write(e->wake_fd, &one, sizeof(one));

	(void)n;
}

void kha_elect__changed_locked(struct engine *e)
{
	pthread_cond_broadcast(&e->cond);
	kha_elect__wake_main(e);
}

bool kha_elect__wait_locked(struct engine *e, uint64_t until_us)
{
	struct timespec ts;
	uint64_t now_mono = kha_now_us(), left;

	if (e->stop)
		return true;
	if (until_us <= now_mono)
		return false;
	left = until_us - now_mono;
	/* the condition variable uses CLOCK_MONOTONIC, as kha_now_us does */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(left / KHA_USEC_PER_SEC);
	ts.tv_nsec += (long)(left % KHA_USEC_PER_SEC) * 1000;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&e->cond, &e->mu, &ts);
	return e->stop;
}

bool kha_elect__session_over_locked(const struct engine *e, uint64_t gen)
{
	return e->stop || e->lost || e->gen != gen;
}

void kha_elect__sleep(struct engine *e, uint64_t gen, uint64_t until_us)
{
	pthread_mutex_lock(&e->mu);
	while (!kha_elect__session_over_locked(e, gen) && kha_now_us() < until_us)
		kha_elect__wait_locked(e, until_us);
	pthread_mutex_unlock(&e->mu);
}

void kha_elect__lose_locked(struct engine *e, uint64_t gen, const char *why)
{
	if (gen != e->gen || e->lost)
		return;
	e->lost = true;
	e->leading = false;
	e->cancel = 1;
	kha_debug("session lost", "gen=%" PRIu64 " why=\"%s\"", gen, why);
	kha_elect__changed_locked(e);
}

void kha_elect__renewed_locked(struct engine *e, uint64_t gen, uint64_t started_us)
{
	if (gen != e->gen || e->lost)
		return;
	if (started_us > e->last_renew_us)
		e->last_renew_us = started_us;
	kha_elect__changed_locked(e);
}
