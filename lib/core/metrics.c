// SPDX-License-Identifier: MIT
/* Prometheus text exposition: registered series and scrape-time collectors. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kha/metrics.h"
#include "kha/banned.h"

struct kha_metric {
	enum kha_metric_type type;
	char *name;
	char *help;
	char *labels;
	uint64_t counter; /* relaxed atomics */
	double gauge;	  /* stored as bits through __atomic on uint64_t */
	struct kha_histogram hist;
	pthread_mutex_t hist_lock;
	struct kha_metric *next;
};

struct collector {
	kha_metrics_collect_fn fn;
	void *userdata;
	struct collector *next;
};

struct kha_metrics {
	pthread_mutex_t lock; /* guards the lists, not the values */
	struct kha_metric *series, *series_tail;
	struct collector *collectors, *collectors_tail;
};

/* ---- histograms ---- */

int kha_histogram_init(struct kha_histogram *h, const double *bounds, size_t nbounds)
{
	memset(h, 0, sizeof(*h));
	h->counts = calloc(nbounds + 1, sizeof(*h->counts));
	if (!h->counts)
		return -ENOMEM;
	h->bounds = bounds;
	h->nbounds = nbounds;
	return 0;
}

void kha_histogram_release(struct kha_histogram *h)
{
	free(h->counts);
	h->counts = NULL;
}

void kha_histogram_observe(struct kha_histogram *h, double value)
{
	size_t i = 0;

	while (i < h->nbounds && value > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += value;
}

void kha_histogram_merge(struct kha_histogram *dst, const struct kha_histogram *src)
{
	for (size_t i = 0; i <= dst->nbounds && i <= src->nbounds; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
}

/* ---- registry ---- */

int kha_metrics_new(struct kha_metrics **ret)
{
	struct kha_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*ret = m;
	return 0;
}

void kha_metrics_free(struct kha_metrics *m)
{
	if (!m)
		return;
	while (m->series) {
		struct kha_metric *s = m->series;
		m->series = s->next;
		free(s->name);
		free(s->help);
		free(s->labels);
		kha_histogram_release(&s->hist);
		pthread_mutex_destroy(&s->hist_lock);
		free(s);
	}
	while (m->collectors) {
		struct collector *c = m->collectors;
		m->collectors = c->next;
		free(c);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int kha_metrics_add_collector(struct kha_metrics *m, kha_metrics_collect_fn fn, void *userdata)
{
	struct collector *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->userdata = userdata;
	pthread_mutex_lock(&m->lock);
	if (m->collectors_tail)
		m->collectors_tail->next = c;
	else
		m->collectors = c;
	m->collectors_tail = c;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

int kha_metrics_register(struct kha_metrics *m, enum kha_metric_type type, const char *name,
			 const char *help, const char *labels, const double *bounds, size_t nbounds,
			 struct kha_metric **ret)
{
	struct kha_metric *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->type = type;
	s->name = strdup(name);
	s->help = strdup(help ? help : "");
	s->labels = labels && *labels ? strdup(labels) : NULL;
	pthread_mutex_init(&s->hist_lock, NULL);
	if (!s->name || !s->help || (labels && *labels && !s->labels) ||
	    (type == KHA_METRIC_HISTOGRAM && kha_histogram_init(&s->hist, bounds, nbounds) < 0)) {
		free(s->name);
		free(s->help);
		free(s->labels);
		pthread_mutex_destroy(&s->hist_lock);
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_lock(&m->lock);
	if (m->series_tail)
		m->series_tail->next = s;
	else
		m->series = s;
	m->series_tail = s;
	pthread_mutex_unlock(&m->lock);
	*ret = s;
	return 0;
}

void kha_metric_add(struct kha_metric *s, uint64_t n)
{
	if (s->type == KHA_METRIC_GAUGE) {
		double old, val;
		__atomic_load(&s->gauge, &old, __ATOMIC_RELAXED);
		do {
			val = old + (double)n;
		} while (!__atomic_compare_exchange(&s->gauge, &old, &val, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED));
		return;
	}
	__atomic_fetch_add(&s->counter, n, __ATOMIC_RELAXED);
}

void kha_metric_set(struct kha_metric *s, double value)
{
	__atomic_store(&s->gauge, &value, __ATOMIC_RELAXED);
}

void kha_metric_observe(struct kha_metric *s, double value)
{
	pthread_mutex_lock(&s->hist_lock);
	kha_histogram_observe(&s->hist, value);
	pthread_mutex_unlock(&s->hist_lock);
}

/* ---- writers ---- */

static const char *type_name(enum kha_metric_type t)
{
	switch (t) {
	case KHA_METRIC_COUNTER:
		return "counter";
	case KHA_METRIC_GAUGE:
		return "gauge";
	case KHA_METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

void kha_metrics_write_header(FILE *out, const char *name, const char *help,
			      enum kha_metric_type type)
{
	fprintf(out, "# HELP %s ", name);
	/* HELP escapes only backslash and newline */
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	fprintf(out, "\n# TYPE %s %s\n", name, type_name(type));
}

/* The shortest %g form that reads back as the same double (0.1, not 0.10000000000000001). */
static const char *shortest(char *buf, size_t size, double v)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

static void write_value(FILE *out, double v)
{
	char buf[32];

	if (isnan(v))
		fputs("NaN", out);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", out);
	else if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v)
		fprintf(out, "%lld", (long long)v);
	else
		fputs(shortest(buf, sizeof(buf), v), out);
}

void kha_metrics_write_sample(FILE *out, const char *name, const char *labels, double value)
{
	if (labels && *labels)
		fprintf(out, "%s{%s} ", name, labels);
	else
		fprintf(out, "%s ", name);
	write_value(out, value);
	fputc('\n', out);
}

static void write_u64_sample(FILE *out, const char *name, const char *labels, uint64_t value)
{
	if (labels && *labels)
		fprintf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
	else
		fprintf(out, "%s %llu\n", name, (unsigned long long)value);
}

void kha_metrics_write_histogram(FILE *out, const char *name, const char *labels,
				 const struct kha_histogram *h)
{
	const char *sep = labels && *labels ? "," : "";
	uint64_t cum = 0;

	for (size_t i = 0; i <= h->nbounds; i++) {
		cum += h->counts[i];
		fprintf(out, "%s_bucket{%s%sle=\"", name, labels ? labels : "", sep);
		if (i < h->nbounds)
			write_value(out, h->bounds[i]);
		else
			fputs("+Inf", out);
		fprintf(out, "\"} %llu\n", (unsigned long long)cum);
	}
	fprintf(out, "%s_sum", name);
	if (*sep)
		fprintf(out, "{%s}", labels);
	fputc(' ', out);
	write_value(out, h->sum);
	fputc('\n', out);
	fprintf(out, "%s_count", name);
	if (*sep)
		fprintf(out, "{%s}", labels);
	fprintf(out, " %llu\n", (unsigned long long)h->count);
}

const char *kha_metrics_escape(char *buf, size_t size, const char *value)
{
	size_t o = 0;

	if (!size)
		return buf;
	for (const char *p = value; *p && o + 1 < size; p++) {
		const char *rep = NULL;
		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '"')
			rep = "\\\"";
		else if (*p == '\n')
			rep = "\\n";
		if (rep) {
			if (o + 2 >= size)
				break;
			buf[o++] = rep[0];
			buf[o++] = rep[1];
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	return buf;
}

static void write_series(FILE *out, struct kha_metric *s)
{
	if (s->type == KHA_METRIC_COUNTER) {
		write_u64_sample(out, s->name, s->labels,
				 __atomic_load_n(&s->counter, __ATOMIC_RELAXED));
	} else if (s->type == KHA_METRIC_GAUGE) {
		double v;
		__atomic_load(&s->gauge, &v, __ATOMIC_RELAXED);
		kha_metrics_write_sample(out, s->name, s->labels, v);
	} else {
		pthread_mutex_lock(&s->hist_lock);
		kha_metrics_write_histogram(out, s->name, s->labels, &s->hist);
		pthread_mutex_unlock(&s->hist_lock);
	}
}

int kha_metrics_render(struct kha_metrics *m, char **ret_text, size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	if (!out)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	for (struct kha_metric *s = m->series; s; s = s->next) {
		bool first = true;
		for (struct kha_metric *o = m->series; o != s && first; o = o->next)
			first = strcmp(o->name, s->name) != 0;
		if (!first)
			continue; /* written with the first series of its family */
		kha_metrics_write_header(out, s->name, s->help, s->type);
		for (struct kha_metric *o = s; o; o = o->next)
			if (strcmp(o->name, s->name) == 0)
				write_series(out, o);
	}
	for (struct collector *c = m->collectors; c; c = c->next)
		c->fn(out, c->userdata);
	pthread_mutex_unlock(&m->lock);
	if (fclose(out) != 0) {
		free(text);
		return -ENOMEM;
	}
	*ret_text = text;
	if (ret_len)
		*ret_len = len;
	return 0;
}
