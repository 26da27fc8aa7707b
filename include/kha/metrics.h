/* SPDX-License-Identifier: MIT */
/*
 * Prometheus text exposition (format 0.0.4).
 *
 * Two ways to publish, both rendered by kha_metrics_render():
 * - registered series (kha_metrics_counter/gauge/histogram): one object per series with its
 *   labels fixed at registration; updates are relaxed atomics, safe from any thread. Good for a
 *   daemon's handful of numbers.
 * - collectors (kha_metrics_add_collector): a callback that writes whole families at scrape
 *   time with the kha_metrics_write_* helpers. The hot path keeps plain per-worker uint64
 *   counters of its own and the collector sums them, so an increment costs one add and no
 *   shared cache line (what the proxy does).
 *
 * Labels are given preformatted, without braces: `backend="10.0.0.1:6443",state="up"`; values
 * pass through kha_metrics_escape() first when they are not known to be safe.
 * Ownership: the registry owns its series; name/help/labels strings are copied.
 */
#ifndef KHA_METRICS_H
#define KHA_METRICS_H

#include <stdio.h>
#include "kha/common.h"

enum kha_metric_type {
	KHA_METRIC_COUNTER,
	KHA_METRIC_GAUGE,
	KHA_METRIC_HISTOGRAM,
};

struct kha_metrics;
struct kha_metric;

/*
 * A histogram: cumulative buckets with upper bounds (ascending, +Inf implied). Not thread-safe:
 * keep one per thread and merge them at scrape time, or use the registered kind.
 */
struct kha_histogram {
	size_t nbounds;
	const double *bounds; /* borrowed, must outlive the histogram */
	uint64_t *counts;     /* nbounds + 1 (the last one is +Inf), not cumulative */
	uint64_t count;
	double sum;
};

int kha_histogram_init(struct kha_histogram *h, const double *bounds, size_t nbounds) KHA_WUR;
void kha_histogram_release(struct kha_histogram *h);
void kha_histogram_observe(struct kha_histogram *h, double value);
/* Adds src's observations into dst (same bounds). */
void kha_histogram_merge(struct kha_histogram *dst, const struct kha_histogram *src);

typedef void (*kha_metrics_collect_fn)(FILE *out, void *userdata);

int kha_metrics_new(struct kha_metrics **ret) KHA_WUR;
void kha_metrics_free(struct kha_metrics *m);

/* Calls fn at every render, in registration order, after the registered series. */
int kha_metrics_add_collector(struct kha_metrics *m, kha_metrics_collect_fn fn,
			      void *userdata) KHA_WUR;

/*
 * Registers one series. Series of the same name share one HELP/TYPE header (the first help
 * wins). labels may be NULL. For histograms, bounds/nbounds give the buckets (borrowed).
 * The returned series belongs to the registry.
 */
int kha_metrics_register(struct kha_metrics *m, enum kha_metric_type type, const char *name,
			 const char *help, const char *labels, const double *bounds, size_t nbounds,
			 struct kha_metric **ret) KHA_WUR;
/* Counter: adds n. Gauge: adds n too (use set for absolute values). Thread-safe. */
void kha_metric_add(struct kha_metric *s, uint64_t n);
/* Gauge: sets the value. Thread-safe. */
void kha_metric_set(struct kha_metric *s, double value);
/* Histogram: records one observation. Thread-safe (serialised per series). */
void kha_metric_observe(struct kha_metric *s, double value);

/* Renders the whole exposition into a malloc'd NUL-terminated string (caller frees). */
int kha_metrics_render(struct kha_metrics *m, char **ret_text, size_t *ret_len) KHA_WUR;

/* Helpers for collectors. */
void kha_metrics_write_header(FILE *out, const char *name, const char *help,
			      enum kha_metric_type type);
void kha_metrics_write_sample(FILE *out, const char *name, const char *labels, double value);
/* Writes name_bucket{...,le=".."}, name_sum and name_count. */
void kha_metrics_write_histogram(FILE *out, const char *name, const char *labels,
				 const struct kha_histogram *h);
/* Escapes a label value (\\, \", \n) into buf; returns buf (truncated to size). */
const char *kha_metrics_escape(char *buf, size_t size, const char *value);

#endif
