// SPDX-License-Identifier: MIT
/* Prometheus metrics of kha elect / kha lock, served by a kha_httpd_thread. */
#include <stdio.h>
#include <string.h>

#include "kha/election.h"
#include "kha/httpd.h"
#include "kha/metrics.h"
#include "kha/banned.h"

struct kha_elect_metrics {
	struct kha_httpd_thread *server;
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

	bool lock = strcmp(m->prefix, "kha_lock") == 0;
	double holds = atomic_load_explicit(&s->is_leader, memory_order_relaxed);

	/* a lock has holders, an election a leader; kha_lock_is_leader is the old name */
	if (lock)
		family(out, m, "is_holder", "1 while this process holds a slot and may run COMMAND",
		       KHA_METRIC_GAUGE, holds);
	family(out, m, "is_leader",
	       lock ? "Deprecated: kha_lock_is_holder"
		    : "1 while this process leads and may run COMMAND",
	       KHA_METRIC_GAUGE, holds);
	family(out, m, "transitions_total",
	       lock ? "Slot acquired or lost" : "Leadership gained or lost", KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->transitions, memory_order_relaxed));
	family(out, m, "renew_failures_total", "Failed lease keep-alives or Lease renewals",
	       KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->renew_failures, memory_order_relaxed));
	family(out, m, "acquire_duration_seconds",
	       lock ? "Time from joining the queue to holding a slot"
		    : "Time from the start of the last campaign to leadership",
	       KHA_METRIC_GAUGE,
	       (double)atomic_load_explicit(&s->acquire_us, memory_order_relaxed) / 1e6);
	family(out, m, "fenced_total", "COMMAND stopped because renewals failed",
	       KHA_METRIC_COUNTER, (double)atomic_load_explicit(&s->fenced, memory_order_relaxed));
	family(out, m, "command_starts_total", "COMMAND started", KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->child_starts, memory_order_relaxed));
	family(out, m, "config_reloads_total", "Configuration reloads on SIGHUP that applied",
	       KHA_METRIC_COUNTER, (double)atomic_load_explicit(&s->reloads, memory_order_relaxed));
	family(out, m, "config_reload_failures_total",
	       "Configuration reloads on SIGHUP that failed (the running one was kept)",
	       KHA_METRIC_COUNTER,
	       (double)atomic_load_explicit(&s->reload_failures, memory_order_relaxed));
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
	r = kha_httpd_thread_start(addr, collect, m, &m->server, d);
	if (r < 0) {
		free(m);
		return r;
	}
	*ret = m;
	return 0;
}

uint16_t kha_elect_metrics_port(const struct kha_elect_metrics *m)
{
	return kha_httpd_thread_port(m->server);
}

void kha_elect_metrics_stop(struct kha_elect_metrics *m)
{
	if (!m)
		return;
	kha_httpd_thread_stop(m->server);
	free(m);
}

int kha_elect_run_served(const struct kha_elect_opts *o, const char *metrics_addr,
			 const char *prefix, int *ret_status, struct kha_diag *d)
{
	struct kha_elect_metrics *m = NULL;
	int r;

	if (metrics_addr) {
		r = kha_elect_metrics_start(metrics_addr, prefix, o->name, o->id, o->stats, &m, d);
		if (r < 0)
			return r;
	}
	r = kha_elect_run(o, ret_status, d);
	kha_elect_metrics_stop(m);
	return r;
}
