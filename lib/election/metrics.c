// SPDX-License-Identifier: MIT
/* Prometheus metrics of kha elect / kha lock, served from a thread with its own event loop. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "kha/election.h"
#include "kha/httpd.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/banned.h"

struct kha_elect_metrics {
	struct kha_loop *loop;
	struct kha_httpd *httpd;
	struct kha_metrics *metrics;
	pthread_t thread;
	bool running;
	const char *prefix;
	char labels[512];
	const struct kha_elect_stats *stats;
};

static void family(FILE *out, const struct kha_elect_metrics *m, const char *suffix,
		   const char *help, enum kha_metric_type type, double value)
{
	char name[128];

	snprintf(name, sizeof(name), "%s_%s", m->prefix, suffix);
	kha_metrics_write_header(out, name, help, type);
	kha_metrics_write_sample(out, name, m->labels, value);
}

static void collect(FILE *out, void *userdata)
{
	const struct kha_elect_metrics *m = userdata;
	const struct kha_elect_stats *s = m->stats;

	family(out, m, "is_leader", "1 while this process holds the slot and may run COMMAND",
	       KHA_METRIC_GAUGE, atomic_load_explicit(&s->is_leader, memory_order_relaxed));
	family(out, m, "transitions_total", "Leadership gained or lost", KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->transitions, memory_order_relaxed));
	family(out, m, "renew_failures_total", "Failed lease keep-alives or Lease renewals",
	       KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->renew_failures, memory_order_relaxed));
	family(out, m, "acquire_duration_seconds",
	       "Time from the start of the last campaign to leadership", KHA_METRIC_GAUGE,
	       (double)atomic_load_explicit(&s->acquire_us, memory_order_relaxed) / 1e6);
	family(out, m, "fenced_total", "COMMAND stopped because renewals failed",
	       KHA_METRIC_COUNTER, (double)atomic_load_explicit(&s->fenced, memory_order_relaxed));
	family(out, m, "command_starts_total", "COMMAND started", KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->child_starts, memory_order_relaxed));
}

static void *run(void *arg)
{
	struct kha_elect_metrics *m = arg;

	kha_ignore(kha_loop_run(m->loop));
	return NULL;
}

static void quit(struct kha_loop *loop, void *userdata)
{
	(void)userdata;
	kha_loop_quit(loop, 0);
}

int kha_elect_metrics_start(const char *addr, const char *prefix, const char *name, const char *id,
			    const struct kha_elect_stats *stats, struct kha_elect_metrics **ret,
			    struct kha_diag *d)
{
	struct kha_elect_metrics *m = calloc(1, sizeof(*m));
	char n[256], i[256];
	int r;

	if (!m)
		return kha_diag_set(d, ENOMEM, "out of memory");
	m->prefix = prefix;
	m->stats = stats;
	snprintf(m->labels, sizeof(m->labels), "name=\"%s\",id=\"%s\"",
		 kha_metrics_escape(n, sizeof(n), name), kha_metrics_escape(i, sizeof(i), id));
	r = kha_loop_new(&m->loop);
	if (r < 0) {
		kha_diag_set(d, r, "event loop: %s", strerror(-r));
		goto fail;
	}
	r = kha_metrics_new(&m->metrics);
	if (r == 0)
		r = kha_metrics_add_collector(m->metrics, collect, m);
	if (r < 0) {
		kha_diag_set(d, r, "metrics: %s", strerror(-r));
		goto fail;
	}
	r = kha_httpd_new(m->loop, addr, m->metrics, d, &m->httpd);
	if (r < 0) {
		kha_diag_prefix(d, "--metrics-addr");
		goto fail;
	}
	{
		/* signals are for the main thread: the new thread starts with all blocked */
		sigset_t all, old;
		int e;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		e = pthread_create(&m->thread, NULL, run, m);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (e != 0) {
			r = kha_diag_set(d, EAGAIN, "cannot create a thread");
			goto fail;
		}
	}
	m->running = true;
	*ret = m;
	return 0;
fail:
	kha_elect_metrics_stop(m);
	return r;
}

uint16_t kha_elect_metrics_port(const struct kha_elect_metrics *m)
{
	return kha_httpd_port(m->httpd);
}

void kha_elect_metrics_stop(struct kha_elect_metrics *m)
{
	if (!m)
		return;
	if (m->running) {
		if (kha_loop_post(m->loop, quit, NULL) == 0)
			pthread_join(m->thread, NULL);
		else
			pthread_detach(m->thread);
	}
	kha_httpd_free(m->httpd);
	kha_loop_free(m->loop);
	kha_metrics_free(m->metrics);
	free(m);
}
