// SPDX-License-Identifier: MIT
/*
 * The analysis of a probe series: schedule arithmetic, outage windows, percentiles, phases.
 * Pure functions over arrays; the prober (run.c) and the unit tests feed them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kha/drill.h"
#include "kha/banned.h"

static const char *const result_names[KHA_DRILL_PROBE__MAX] = {
	[KHA_DRILL_PROBE_OK] = "ok",	       [KHA_DRILL_PROBE_STATUS] = "http_status",
	[KHA_DRILL_PROBE_REFUSED] = "refused", [KHA_DRILL_PROBE_TIMEOUT] = "timeout",
	[KHA_DRILL_PROBE_RESET] = "reset",     [KHA_DRILL_PROBE_TLS] = "tls",
	[KHA_DRILL_PROBE_RESOLVE] = "resolve", [KHA_DRILL_PROBE_ERROR] = "error",
	[KHA_DRILL_PROBE_MISSED] = "missed",   [KHA_DRILL_PROBE_CANCELLED] = "cancelled",
};

const char *kha_drill_result_name(enum kha_drill_result r)
{
	return (unsigned)r < KHA_DRILL_PROBE__MAX ? result_names[r] : "unknown";
}

const char *kha_drill_phase_name(enum kha_drill_phase_id id)
{
	static const char *const names[KHA_DRILL_PHASES] = {"before", "during", "after"};
	return (unsigned)id < KHA_DRILL_PHASES ? names[id] : "unknown";
}

uint64_t kha_drill_slot_due_us(uint32_t rate, uint64_t slot)
{
	/* exact for any realistic drill: slot * 1e6 overflows only past 1.8e13 slots */
	return rate ? slot * KHA_USEC_PER_SEC / rate : 0;
}

void kha_drill_place(struct kha_drill_probe *p, uint64_t queued_us, uint64_t opened_us,
		     uint64_t done_us, uint64_t transfer_us)
{
	uint64_t start = queued_us;

	done_us = KHA_MAX(done_us, queued_us);
	if (opened_us >= queued_us && opened_us <= done_us) {
		/* seen done late by a busy prober: it still ended within its own measure */
		if (transfer_us > 0 && done_us - opened_us > transfer_us)
			done_us = opened_us + transfer_us;
		start = opened_us;
	} else if (transfer_us > 0 && done_us - queued_us > transfer_us) {
		start = done_us - transfer_us;
	}
	p->t_us = start;
	p->latency_us = (uint32_t)KHA_MIN(done_us - start, UINT32_MAX);
}

enum kha_drill_slot_action kha_drill_slot_decide(uint32_t rate, uint64_t slot, uint64_t now_us,
						 size_t inflight, size_t max_inflight)
{
	uint64_t due = kha_drill_slot_due_us(rate, slot);
	uint64_t interval = rate ? KHA_USEC_PER_SEC / rate : KHA_USEC_PER_SEC;
	uint64_t late_limit = KHA_MAX(interval, 5 * KHA_USEC_PER_MSEC);

	if (now_us < due)
		return KHA_DRILL_SLOT_WAIT;
	if (now_us - due > late_limit || inflight >= max_inflight)
		return KHA_DRILL_SLOT_MISS;
	return KHA_DRILL_SLOT_SEND;
}

uint64_t kha_drill_percentile(const uint32_t *sorted, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	if (p <= 0)
		return sorted[0];
	rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static bool counted(uint8_t result)
{
	return result != KHA_DRILL_PROBE_MISSED && result != KHA_DRILL_PROBE_CANCELLED;
}

struct placed {
	uint64_t t_us;
	size_t i;
};

static int cmp_placed(const void *a, const void *b)
{
	const struct placed *x = a, *y = b;

	if (x->t_us != y->t_us)
		return (x->t_us > y->t_us) - (x->t_us < y->t_us);
	return (x->i > y->i) - (x->i < y->i);
}

/* Windows are runs of failed probes in time order. Probes are placed by their transfers' begin
 * (kha_drill_place), so probes of close slots may be swapped in time: the run is taken over the
 * probes sorted by time (slot order breaks ties; without memory for the order, slot order). */
size_t kha_drill_find_windows(const struct kha_drill_probe *p, size_t n, uint64_t end_us,
			      struct kha_drill_window *out, size_t max)
{
	struct kha_drill_window w = {};
	bool open = false;
	size_t count = 0;
	struct placed *order = n ? malloc(n * sizeof(*order)) : NULL;

	if (order) {
		for (size_t k = 0; k < n; k++)
			order[k] = (struct placed){.t_us = p[k].t_us, .i = k};
		qsort(order, n, sizeof(*order), cmp_placed);
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = order ? order[k].i : k;

		if (!counted(p[i].result))
			continue;
		if (kha_drill_result_failed(p[i].result)) {
			if (!open) {
				open = true;
				w = (struct kha_drill_window){.start_us = p[i].t_us};
			}
			w.failed++;
		} else if (open) {
			/* sorted by time: the guard only matters without the order */
			w.end_us = KHA_MAX(p[i].t_us, w.start_us);
			if (out && count < max)
				out[count] = w;
			count++;
			open = false;
		}
	}
	if (open) {
		w.end_us = KHA_MAX(end_us, w.start_us);
		w.open = true;
		if (out && count < max)
			out[count] = w;
		count++;
	}
	free(order);
	return count;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static void latency_of(uint32_t *lat, size_t n, struct kha_drill_latency *ret)
{
	qsort(lat, n, sizeof(*lat), cmp_u32);
	ret->count = n;
	ret->p50_us = kha_drill_percentile(lat, n, 50);
	ret->p99_us = kha_drill_percentile(lat, n, 99);
	ret->max_us = n ? lat[n - 1] : 0;
}

static enum kha_drill_phase_id phase_of(const struct kha_drill_marks *m, uint64_t t)
{
	if (m->fault_us == KHA_DRILL_NONE || t < m->fault_us)
		return KHA_DRILL_PHASE_BEFORE;
	if (m->recover_us == KHA_DRILL_NONE || m->recover_us < m->fault_us || t < m->recover_us)
		return KHA_DRILL_PHASE_DURING;
	return KHA_DRILL_PHASE_AFTER;
}

static void phase_bounds(const struct kha_drill_marks *m, struct kha_drill_stats *s)
{
	uint64_t end = m->end_us;
	bool has_recover = m->fault_us != KHA_DRILL_NONE && m->recover_us != KHA_DRILL_NONE &&
			   m->recover_us >= m->fault_us;

	for (int i = 0; i < KHA_DRILL_PHASES; i++)
		s->phases[i].start_us = s->phases[i].end_us = KHA_DRILL_NONE;
	s->phases[KHA_DRILL_PHASE_BEFORE].start_us = 0;
	if (m->fault_us == KHA_DRILL_NONE) {
		s->phases[KHA_DRILL_PHASE_BEFORE].end_us = end;
		return;
	}
	s->phases[KHA_DRILL_PHASE_BEFORE].end_us = m->fault_us;
	s->phases[KHA_DRILL_PHASE_DURING].start_us = m->fault_us;
	if (!has_recover) {
		s->phases[KHA_DRILL_PHASE_DURING].end_us = KHA_MAX(end, m->fault_us);
		return;
	}
	s->phases[KHA_DRILL_PHASE_DURING].end_us = m->recover_us;
	s->phases[KHA_DRILL_PHASE_AFTER].start_us = m->recover_us;
	s->phases[KHA_DRILL_PHASE_AFTER].end_us = KHA_MAX(end, m->recover_us);
}

int kha_drill_analyze(const struct kha_drill_probe *p, size_t n, const struct kha_drill_marks *m,
		      struct kha_drill_stats *ret)
{
	struct kha_drill_stats s = {.marks = *m};
	uint32_t *all = NULL, *per[KHA_DRILL_PHASES] = {};
	size_t n_all = 0, n_per[KHA_DRILL_PHASES] = {};
	/* the last failure after the fault, in time order (time, then slot: as the windows) */
	struct placed last_fail = {.i = SIZE_MAX};
	int r = -ENOMEM;

	all = malloc(sizeof(*all) * (n ? n : 1));
	for (int i = 0; i < KHA_DRILL_PHASES; i++) {
		per[i] = malloc(sizeof(*per[i]) * (n ? n : 1));
		if (!per[i])
			goto out;
	}
	if (!all)
		goto out;

	s.first_failure_us = s.recovered_us = KHA_DRILL_NONE;
	s.longest.start_us = s.longest.end_us = KHA_DRILL_NONE;
	phase_bounds(m, &s);

	for (size_t i = 0; i < n; i++) {
		uint8_t res =
			p[i].result < KHA_DRILL_PROBE__MAX ? p[i].result : KHA_DRILL_PROBE_ERROR;
		enum kha_drill_phase_id ph = phase_of(m, p[i].t_us);

		s.by_result[res]++;
		if (res == KHA_DRILL_PROBE_CANCELLED)
			continue;
		s.slots++;
		if (res == KHA_DRILL_PROBE_MISSED) {
			s.missed++;
			s.phases[ph].missed++;
			continue;
		}
		s.sent++;
		s.phases[ph].sent++;
		if (res == KHA_DRILL_PROBE_OK) {
			s.ok++;
			s.phases[ph].ok++;
			all[n_all++] = p[i].latency_us;
			per[ph][n_per[ph]++] = p[i].latency_us;
			continue;
		}
		s.failed++;
		s.phases[ph].failed++;
		/* a probe in flight when the fault began and failed after it counts too. Probes of
		 * close slots may be swapped in time (kha_drill_place): the first failure and the
		 * recovery go by time, as the outage windows do, not by slot */
		if (m->fault_us != KHA_DRILL_NONE && p[i].t_us + p[i].latency_us >= m->fault_us) {
			struct placed at = {.t_us = p[i].t_us, .i = i};

			s.first_failure_us =
				KHA_MIN(s.first_failure_us, KHA_MAX(p[i].t_us, m->fault_us));
			if (last_fail.i == SIZE_MAX || cmp_placed(&at, &last_fail) > 0)
				last_fail = at;
		}
	}
	if (last_fail.i != SIZE_MAX) {
		/* the first successful probe after the last failure, in time order */
		struct placed first_ok = {.i = SIZE_MAX};

		for (size_t i = 0; i < n; i++) {
			struct placed at = {.t_us = p[i].t_us, .i = i};

			if (p[i].result == KHA_DRILL_PROBE_OK && cmp_placed(&at, &last_fail) > 0 &&
			    (first_ok.i == SIZE_MAX || cmp_placed(&at, &first_ok) < 0))
				first_ok = at;
		}
		if (first_ok.i != SIZE_MAX)
			s.recovered_us = KHA_MAX(first_ok.t_us, m->fault_us);
	}
	s.availability = s.sent ? 100.0 * (double)s.ok / (double)s.sent : 0.0;

	s.n_windows = 0;
	{
		struct kha_drill_window w;
		size_t total = kha_drill_find_windows(p, n, m->end_us, NULL, 0);
		struct kha_drill_window *ws = malloc(sizeof(*ws) * (total ? total : 1));

		if (!ws)
			goto out;
		kha_drill_find_windows(p, n, m->end_us, ws, total);
		s.n_windows = total;
		for (size_t i = 0; i < total; i++) {
			w = ws[i];
			s.outage_total_us += w.end_us - w.start_us;
			if (s.longest.start_us == KHA_DRILL_NONE ||
			    w.end_us - w.start_us > s.longest.end_us - s.longest.start_us)
				s.longest = w;
		}
		free(ws);
	}

	latency_of(all, n_all, &s.latency);
	for (int i = 0; i < KHA_DRILL_PHASES; i++)
		latency_of(per[i], n_per[i], &s.phases[i].latency);
	*ret = s;
	r = 0;
out:
	free(all);
	for (int i = 0; i < KHA_DRILL_PHASES; i++)
		free(per[i]);
	return r;
}
