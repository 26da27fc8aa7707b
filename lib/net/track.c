// SPDX-License-Identifier: MIT
/*
 * Health tracks: a thread runs the blocking HTTP checks one after the other, then sleeps for the
 * interval on a condition variable (so that a stop wakes it at once); each result is posted to
 * the owner's loop, where the fall/rise counting and the callback run. Only the loop thread
 * touches struct track; the thread reads the immutable URLs and the stop flag.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kha/http.h"
#include "kha/log.h"
#include "kha/loop.h"
#include "kha/track.h"
#include "kha/banned.h"

struct track {
	char *url; /* owned */
	bool up;
	unsigned fails, oks; /* consecutive */
	char detail[128];
};

struct kha_http_tracks {
	struct kha_loop *loop;
	struct track *tracks;
	size_t n;
	uint64_t interval_us, timeout_us;
	unsigned fall, rise;
	char *cacert; /* owned; NULL: the system store */
	kha_http_tracks_change_fn fn;
	void *userdata;
	bool stopping;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	volatile sig_atomic_t stop;
};

struct result {
	struct kha_http_tracks *t;
	size_t i;
	bool ok;
	char detail[128];
};

int kha_http_tracks_new(struct kha_loop *loop, const struct kha_http_tracks_config *cfg,
			kha_http_tracks_change_fn fn, void *userdata, struct kha_http_tracks **ret)
{
	struct kha_http_tracks *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->tracks = calloc(cfg->n ? cfg->n : 1, sizeof(*t->tracks));
	if (!t->tracks) {
		free(t);
		return -ENOMEM;
	}
	t->loop = loop;
	t->interval_us = cfg->interval_us;
	t->timeout_us = cfg->timeout_us;
	t->fall = cfg->fall ? cfg->fall : 1;
	t->rise = cfg->rise ? cfg->rise : 1;
	t->fn = fn;
	t->userdata = userdata;
	if (cfg->cacert && !(t->cacert = strdup(cfg->cacert))) {
		free(t->tracks);
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	for (size_t i = 0; i < cfg->n; i++, t->n++) {
		t->tracks[i].url = strdup(cfg->urls[i]);
		if (!t->tracks[i].url) {
			kha_http_tracks_free(t);
			return -ENOMEM;
		}
		t->tracks[i].up = true; /* as keepalived: a track passes until it fails */
		snprintf(t->tracks[i].detail, sizeof(t->tracks[i].detail), "not checked yet");
	}
	*ret = t;
	return 0;
}

static void on_result(struct kha_loop *loop, void *userdata)
{
	struct result *r = userdata;
	struct kha_http_tracks *t = r->t;
	struct track *k = &t->tracks[r->i];
	bool was_up = k->up;

	(void)loop;
	if (t->stopping) {
		free(r);
		return;
	}
	snprintf(k->detail, sizeof(k->detail), "%s", r->detail);
	if (r->ok) {
		k->fails = 0;
		if (!k->up && ++k->oks >= t->rise)
			k->up = true;
	} else {
		k->oks = 0;
		if (k->up && ++k->fails >= t->fall)
			k->up = false;
	}
	if (k->up != was_up) {
		kha_log(k->up ? KHA_LOG_INFO : KHA_LOG_WARN, k->up ? "track up" : "track down",
			"url=%s detail=%s", KHA_LOGQ(k->url), KHA_LOGQ(k->detail));
		if (t->fn)
			t->fn(t->userdata, r->i, k->up);
	}
	free(r);
}

static void *track_main(void *arg)
{
	struct kha_http_tracks *t = arg;
	struct kha_http_options ho = {.connect_timeout_us = t->timeout_us, .cacert = t->cacert};
	struct kha_http *h = NULL;
	struct kha_diag d = {};

	if (kha_http_new(&ho, &h, &d) < 0) {
		char q[KHA_DIAG_MAX + 8];

		kha_error("health tracks cannot run", "error=%s",
			  kha_log_quote(q, sizeof(q), d.msg));
		return NULL;
	}
	while (!t->stop) {
		struct timespec until;
		uint64_t wake;

		for (size_t i = 0; i < t->n && !t->stop; i++) {
			struct kha_http_request req = {.method = "GET",
						       .url = t->tracks[i].url,
						       .timeout_us = t->timeout_us,
						       .max_body = 64 * 1024,
						       .cancel = &t->stop};
			struct kha_http_response resp = {};
			struct result *r = calloc(1, sizeof(*r));
			int rc;

			kha_diag_clear(&d);
			rc = kha_http_do(h, &req, &resp, &d);
			if (r) {
				r->t = t;
				r->i = i;
				r->ok = rc == 0 && resp.status == 200;
				if (rc < 0)
					snprintf(r->detail, sizeof(r->detail), "%s", d.msg);
				else
					snprintf(r->detail, sizeof(r->detail), "HTTP %ld",
						 resp.status);
				if (kha_loop_post(t->loop, on_result, r) < 0)
					free(r);
			}
			kha_http_response_release(&resp);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		wake = (uint64_t)until.tv_nsec / 1000 + t->interval_us;
		until.tv_sec += (time_t)(wake / KHA_USEC_PER_SEC);
		until.tv_nsec = (long)(wake % KHA_USEC_PER_SEC) * 1000;
		pthread_mutex_lock(&t->lock);
		if (!t->stop)
			pthread_cond_timedwait(&t->cond, &t->lock, &until);
		pthread_mutex_unlock(&t->lock);
	}
	kha_http_free(h);
	return NULL;
}

int kha_http_tracks_start(struct kha_http_tracks *t)
{
	int r;

	if (!t->n || t->running)
		return 0;
	r = -pthread_create(&t->thread, NULL, track_main, t);
	if (r == 0)
		t->running = true;
	return r;
}

void kha_http_tracks_stop(struct kha_http_tracks *t)
{
	if (t)
		t->stopping = true;
}

void kha_http_tracks_free(struct kha_http_tracks *t)
{
	if (!t)
		return;
	if (t->running) {
		pthread_mutex_lock(&t->lock);
		t->stop = 1;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
		/* results the thread posted after the loop stopped */
		t->stopping = true;
		kha_ignore(kha_loop_run_once(t->loop, 0));
	}
	for (size_t i = 0; i < t->n; i++)
		free(t->tracks[i].url);
	free(t->tracks);
	free(t->cacert);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

bool kha_http_tracks_all_up(const struct kha_http_tracks *t)
{
	for (size_t i = 0; t && i < t->n; i++)
		if (!t->tracks[i].up)
			return false;
	return true;
}

size_t kha_http_tracks_count(const struct kha_http_tracks *t)
{
	return t ? t->n : 0;
}

const char *kha_http_tracks_url(const struct kha_http_tracks *t, size_t i)
{
	return t->tracks[i].url;
}

bool kha_http_tracks_up(const struct kha_http_tracks *t, size_t i)
{
	return t->tracks[i].up;
}

const char *kha_http_tracks_detail(const struct kha_http_tracks *t, size_t i)
{
	return t->tracks[i].detail;
}
