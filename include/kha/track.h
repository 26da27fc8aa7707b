/* SPDX-License-Identifier: MIT */
/*
 * Health tracks of a daemon (kha vip, kha bgp): HTTP GETs of a few URLs on a thread of their own,
 * 200 = healthy, with keepalived's fall/rise counting; results are handed to the daemon's loop
 * thread, which alone reads and changes the state.
 *
 * A track passes until it fails (as keepalived): `fall` failures in a row mark it down, `rise`
 * successes in a row up again. Every change is logged once ("track down"/"track up", the URL
 * quoted) and reported to the owner's callback on the loop thread.
 *
 * Ownership: the set copies the URLs; kha_http_tracks_free() stops and joins the thread, then runs
 * the loop once so that results posted meanwhile are released (call it before freeing the loop).
 */
#ifndef KHA_TRACK_H
#define KHA_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kha/common.h"

struct kha_loop;
struct kha_http_tracks;

struct kha_http_tracks_config {
	const char *const *urls;
	size_t n;
	uint64_t interval_us; /* between rounds of checks */
	uint64_t timeout_us;  /* per check */
	unsigned fall, rise;
	const char *cacert; /* PEM CA bundle for https:// tracks; NULL = the system store */
};

/* Called on the loop thread when track i changed (kha_http_tracks_all_up() tells the verdict). */
typedef void (*kha_http_tracks_change_fn)(void *userdata, size_t i, bool up);

/* A set of n tracks reporting to loop; nothing runs before kha_http_tracks_start(). 0/-ENOMEM. */
int kha_http_tracks_new(struct kha_loop *loop, const struct kha_http_tracks_config *cfg,
			kha_http_tracks_change_fn fn, void *userdata,
			struct kha_http_tracks **ret) KHA_WUR;
/* Starts the checking thread (none when n is 0). 0 or -errno. */
int kha_http_tracks_start(struct kha_http_tracks *t) KHA_WUR;
/* From now on results change nothing (a daemon that stops). */
void kha_http_tracks_stop(struct kha_http_tracks *t);
void kha_http_tracks_free(struct kha_http_tracks *t);

/* Whether every track passes (true for an empty or NULL set). */
bool kha_http_tracks_all_up(const struct kha_http_tracks *t);
size_t kha_http_tracks_count(const struct kha_http_tracks *t);
const char *kha_http_tracks_url(const struct kha_http_tracks *t, size_t i);
bool kha_http_tracks_up(const struct kha_http_tracks *t, size_t i);
/* "HTTP 200", the error of the last check, or "not checked yet". */
const char *kha_http_tracks_detail(const struct kha_http_tracks *t, size_t i);

#endif
