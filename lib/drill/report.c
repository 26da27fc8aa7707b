// SPDX-License-Identifier: MIT
/* The drill's verdict and its report: JSON (schema in docs/drill.md) and the human summary. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "drill-internal.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define JSON_MAX_WINDOWS 100

const char *kha_drill_step_state_name(enum kha_drill_step_state s)
{
	switch (s) {
	case KHA_DRILL_STEP_NOT_RUN:
		return "not_run";
	case KHA_DRILL_STEP_RUNNING:
		return "running";
	case KHA_DRILL_STEP_SUCCEEDED:
		return "ok";
	case KHA_DRILL_STEP_FAILED:
		return "failed";
	case KHA_DRILL_STEP_TIMED_OUT:
		return "timed_out";
	case KHA_DRILL_STEP_SPAWN_FAILED:
		return "spawn_failed";
	case KHA_DRILL_STEP_KILLED:
		return "killed";
	}
	return "unknown";
}

const char *kha_drill_node_state_name(enum kha_drill_node_state s)
{
	switch (s) {
	case KHA_DRILL_NODE_UNTOUCHED:
		return "untouched";
	case KHA_DRILL_NODE_STOPPING:
		return "stopping";
	case KHA_DRILL_NODE_DOWN:
		return "down";
	case KHA_DRILL_NODE_STARTING:
		return "starting";
	case KHA_DRILL_NODE_CHECKING:
		return "checking";
	case KHA_DRILL_NODE_HEALTHY:
		return "healthy";
	case KHA_DRILL_NODE_UNHEALTHY:
		return "unhealthy";
	case KHA_DRILL_NODE_FAILED:
		return "failed";
	case KHA_DRILL_NODE_ABORTED:
		return "aborted";
	}
	return "unknown";
}

const char *kha_drill_verdict_name(enum kha_drill_verdict v)
{
	switch (v) {
	case KHA_DRILL_VERDICT_OK:
		return "ok";
	case KHA_DRILL_VERDICT_SLO_MISSED:
		return "slo_missed";
	case KHA_DRILL_VERDICT_WRITES_LOST:
		return "writes_lost";
	case KHA_DRILL_VERDICT_WRITES_UNVERIFIED:
		return "writes_unverified";
	case KHA_DRILL_VERDICT_STEP_FAILED:
		return "step_failed";
	case KHA_DRILL_VERDICT_ROLLING_STOPPED:
		return "rolling_stopped";
	case KHA_DRILL_VERDICT_INTERRUPTED:
		return "interrupted";
	case KHA_DRILL_VERDICT_NOTHING_SUCCEEDED:
		return "nothing_succeeded";
	}
	return "unknown";
}

static bool slo_met(const struct kha_drill_report *r)
{
	return r->slo_percent < 0 || (r->stats.sent > 0 && r->stats.availability >= r->slo_percent);
}

/* Not one probe answered, or (write mode) not one write was acknowledged: the drill measured
 * a target it never reached (wrong port, wrong CA), which must not read as a pass. */
static bool nothing_succeeded(const struct kha_drill_report *r)
{
	if (r->stats.sent > 0 && r->stats.ok == 0)
		return true;
	return r->writes.enabled && r->writes.acked == 0 &&
	       r->writes.failed + r->writes.unknown > 0;
}

bool kha_drill_report_under_floor(const struct kha_drill_report *r)
{
	return r->slo_percent < 0 && r->stats.sent > 0 &&
	       r->stats.availability < KHA_DRILL_AVAILABILITY_FLOOR;
}

enum kha_drill_verdict kha_drill_report_verdict(const struct kha_drill_report *r)
{
	/* losing acknowledged data outranks everything, even an interruption */
	if (r->writes.enabled && r->writes.verified && r->writes.lost > 0)
		return KHA_DRILL_VERDICT_WRITES_LOST;
	if (r->interrupted)
		return KHA_DRILL_VERDICT_INTERRUPTED;
	if (r->aborted)
		return KHA_DRILL_VERDICT_STEP_FAILED;
	if (r->rolling && !r->rolling_completed)
		return KHA_DRILL_VERDICT_ROLLING_STOPPED;
	if (r->writes.enabled && !r->writes.verified)
		return KHA_DRILL_VERDICT_WRITES_UNVERIFIED;
	if (!slo_met(r))
		return KHA_DRILL_VERDICT_SLO_MISSED;
	if (nothing_succeeded(r))
		return KHA_DRILL_VERDICT_NOTHING_SUCCEEDED;
	return KHA_DRILL_VERDICT_OK;
}

int kha_drill_verdict_exit_code(const struct kha_drill_report *r)
{
	switch (kha_drill_report_verdict(r)) {
	case KHA_DRILL_VERDICT_OK:
		return KHA_EXIT_OK;
	case KHA_DRILL_VERDICT_SLO_MISSED:
		return KHA_EXIT_DEGRADED;
	case KHA_DRILL_VERDICT_WRITES_LOST:
		return KHA_EXIT_CRITICAL;
	case KHA_DRILL_VERDICT_WRITES_UNVERIFIED:
		return KHA_EXIT_UNAVAILABLE;
	case KHA_DRILL_VERDICT_STEP_FAILED:
		return KHA_DRILL_EXIT_STEP_FAILED;
	case KHA_DRILL_VERDICT_ROLLING_STOPPED:
		return KHA_DRILL_EXIT_ROLLING_STOPPED;
	case KHA_DRILL_VERDICT_NOTHING_SUCCEEDED:
		return KHA_DRILL_EXIT_NOTHING;
	case KHA_DRILL_VERDICT_INTERRUPTED:
		return r->interrupt_signal > 0 && r->interrupt_signal < 64
			       ? 128 + r->interrupt_signal
			       : 130;
	}
	return KHA_EXIT_SOFTWARE;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON */

static json_t *ms(uint64_t us)
{
	if (us == KHA_DRILL_NONE)
		return json_null();
	return json_real(round((double)us / 1000.0 * 1000.0) / 1000.0);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* Command output is arbitrary bytes: keep it valid UTF-8 for JSON. */
static json_t *text(const char *s)
{
	json_t *j;
	char *copy;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	copy = strdup(s);
	if (!copy)
		return json_null();
	for (unsigned char *p = (unsigned char *)copy; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j ? j : json_null();
}

static json_t *latency_json(const struct kha_drill_latency *l)
{
	return json_pack("{s:I, s:o, s:o, s:o}", "count", (json_int_t)l->count, "p50",
			 l->count ? ms(l->p50_us) : json_null(), "p99",
			 l->count ? ms(l->p99_us) : json_null(), "max",
			 l->count ? ms(l->max_us) : json_null());
}

static json_t *window_json(const struct kha_drill_window *w)
{
	return json_pack("{s:o, s:o, s:o, s:I, s:b}", "start_ms", ms(w->start_us), "end_ms",
			 ms(w->end_us), "duration_ms", ms(w->end_us - w->start_us), "failed",
			 (json_int_t)w->failed, "open", w->open);
}

static json_t *phase_json(const struct kha_drill_phase *p)
{
	if (p->start_us == KHA_DRILL_NONE)
		return json_null();
	return json_pack("{s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o}", "start_ms", ms(p->start_us),
			 "end_ms", ms(p->end_us), "sent", (json_int_t)p->sent, "ok",
			 (json_int_t)p->ok, "failed", (json_int_t)p->failed, "missed",
			 (json_int_t)p->missed, "availability_percent",
			 p->sent ? json_real(100.0 * (double)p->ok / (double)p->sent) : json_null(),
			 "latency_ms", latency_json(&p->latency));
}

static json_t *probes_json(const struct kha_drill_report *r)
{
	const struct kha_drill_stats *s = &r->stats;
	json_t *results = json_object(), *samples = json_object();

	for (int i = 0; i < KHA_DRILL_PROBE__MAX; i++) {
		json_object_set_new(results, kha_drill_result_name(i),
				    json_integer((json_int_t)s->by_result[i]));
		if (r->error_samples[i][0])
			json_object_set_new(samples, kha_drill_result_name(i),
					    text(r->error_samples[i]));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "slots",
			 (json_int_t)s->slots, "sent", (json_int_t)s->sent, "ok", (json_int_t)s->ok,
			 "failed", (json_int_t)s->failed, "missed", (json_int_t)s->missed,
			 "availability_percent", s->sent ? json_real(s->availability) : json_null(),
			 "max_send_lag_ms", ms(s->max_send_lag_us), "results", results,
			 "error_samples", samples);
}

static json_t *outage_json(const struct kha_drill_report *r)
{
	const struct kha_drill_stats *s = &r->stats;
	struct kha_drill_window ws[JSON_MAX_WINDOWS];
	size_t n = kha_drill_find_windows(r->probes, r->n_probes, s->marks.end_us, ws,
					  JSON_MAX_WINDOWS);
	json_t *list = json_array();

	for (size_t i = 0; i < KHA_MIN(n, (size_t)JSON_MAX_WINDOWS); i++)
		json_array_append_new(list, window_json(&ws[i]));
	return json_pack("{s:I, s:o, s:o, s:o}", "windows", (json_int_t)s->n_windows, "total_ms",
			 ms(s->outage_total_us), "longest",
			 s->longest.start_us == KHA_DRILL_NONE ? json_null()
							       : window_json(&s->longest),
			 "list", list);
}

static json_t *fault_json(const struct kha_drill_stats *s)
{
	const struct kha_drill_marks *m = &s->marks;
	bool failed = s->first_failure_us != KHA_DRILL_NONE;

	return json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:b}", "fault_at_ms", ms(m->fault_us), "recover_at_ms",
		ms(m->recover_us), "end_ms", ms(m->end_us), "time_to_first_failure_ms",
		failed ? ms(s->first_failure_us - m->fault_us) : json_null(), "time_to_recovery_ms",
		failed && s->recovered_us != KHA_DRILL_NONE ? ms(s->recovered_us - m->fault_us)
							    : json_null(),
		"recovered", !failed || s->recovered_us != KHA_DRILL_NONE);
}

static json_t *steps_json(const struct kha_drill_report *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->n_steps; i++) {
		const struct kha_drill_step_result *st = &r->steps[i];
		bool ended = st->started_us != KHA_DRILL_NONE && st->ended_us != KHA_DRILL_NONE;
		json_t *o = json_pack(
			"{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:b, s:o, s:b}",
			"name", st->name, "kind", kha_drill_step_kind_name(st->kind), "run",
			text(st->run), "node", str_or_null(st->node), "at_ms", ms(st->at_us),
			"started_ms", ms(st->started_us), "ended_ms", ms(st->ended_us),
			"duration_ms", ended ? ms(st->ended_us - st->started_us) : json_null(),
			"result", kha_drill_step_state_name(st->state), "exit_code",
			st->exit_code >= 0 ? json_integer(st->exit_code) : json_null(), "signal",
			st->signal ? json_integer(st->signal) : json_null(), "on_abort",
			st->on_abort, "output", text(st->output ? st->output : ""),
			"output_truncated", st->output_bytes > KHA_DRILL_OUTPUT_MAX);
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *rolling_json(const struct kha_drill_report *r)
{
	const char *stopped_at = NULL;
	json_t *nodes;

	if (!r->rolling)
		return json_null();
	nodes = json_array();
	for (size_t i = 0; i < r->n_nodes; i++) {
		const struct kha_drill_node_result *n = &r->nodes[i];
		if (!stopped_at && !r->rolling_completed && n->state != KHA_DRILL_NODE_HEALTHY &&
		    n->state != KHA_DRILL_NODE_UNTOUCHED)
			stopped_at = n->name;
		json_array_append_new(
			nodes, json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:o, s:o}", "name",
					 n->name, "state", kha_drill_node_state_name(n->state),
					 "stop_ms", ms(n->stop_us), "start_ms", ms(n->start_us),
					 "healthy_ms", ms(n->healthy_us), "checks",
					 (json_int_t)n->checks, "last_check_exit",
					 n->last_check_exit >= 0 ? json_integer(n->last_check_exit)
								 : json_null(),
					 "last_check_output", text(n->last_check_output)));
	}
	return json_pack("{s:b, s:o, s:o}", "completed", r->rolling_completed, "stopped_at",
			 str_or_null(stopped_at), "nodes", nodes);
}

static json_t *writes_json(const struct kha_drill_writes *w)
{
	json_t *lost = json_array();

	if (!w->enabled) {
		json_decref(lost);
		return json_null();
	}
	for (size_t i = 0; i < w->n_lost_slots; i++)
		json_array_append_new(lost, json_integer((json_int_t)w->lost_slots[i]));
	return json_pack("{s:o, s:o, s:I, s:I, s:I, s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:b, "
			 "s:o}",
			 "prefix", text(w->prefix), "endpoints", text(w->endpoints), "acked",
			 (json_int_t)w->acked, "failed", (json_int_t)w->failed, "unknown",
			 (json_int_t)w->unknown, "verified", w->verified, "error",
			 w->error[0] ? text(w->error) : json_null(), "found", (json_int_t)w->found,
			 "lost", (json_int_t)w->lost, "unknown_applied",
			 (json_int_t)w->unknown_applied, "unknown_missing",
			 (json_int_t)w->unknown_missing, "unexpected", (json_int_t)w->unexpected,
			 "lost_keys", lost, "cleaned", w->cleaned, "cleanup_error",
			 w->cleanup_error[0] ? text(w->cleanup_error) : json_null());
}

static json_t *kube_json(const struct kha_drill_report *r)
{
	const struct kha_drill_kube *k = &r->kube;
	json_t *gaps, *watch, *updates;

	if (!k->enabled)
		return json_null();
	gaps = json_array();
	for (size_t i = 0; i < k->n_gaps; i++) {
		const struct kha_drill_watch_gap *g = &k->gaps[i];

		json_array_append_new(
			gaps, json_pack("{s:o, s:o, s:o, s:b, s:o}", "broke_ms", ms(g->broke_us),
					"back_ms", ms(g->back_us), "reconnect_ms",
					g->back_us == KHA_DRILL_NONE ? json_null()
								     : ms(g->back_us - g->broke_us),
					"clean", g->clean, "error", text(g->error)));
	}
	watch = k->watch ? json_pack("{s:o, s:I, s:I, s:I, s:I, s:o, s:o}", "first_event_ms",
				     ms(k->watch_first_us), "requests",
				     (json_int_t)k->watch_requests, "events",
				     (json_int_t)k->watch_events, "breaks", (json_int_t)k->n_gaps,
				     "breaks_not_listed", (json_int_t)k->n_gaps_dropped,
				     "longest_reconnect_ms", ms(k->longest_gap_us), "list", gaps)
			 : (json_decref(gaps), json_null());
	updates = r->writes.enabled
			  ? json_pack("{s:I, s:I, s:I, s:I}", "sent", (json_int_t)k->updates,
				      "acked", (json_int_t)k->updates_acked, "conflicts",
				      (json_int_t)k->updates_conflicts, "lost",
				      (json_int_t)k->updates_lost)
			  : json_null();
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", "namespace", text(k->namespace), "object",
			 text(k->object), "label", text(k->label), "watch", watch, "updates",
			 updates);
}

static void format_rfc3339(char *buf, size_t size, uint64_t wall_us)
{
	time_t secs = (time_t)(wall_us / KHA_USEC_PER_SEC);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(wall_us % KHA_USEC_PER_SEC));
}

char *kha_drill_report_json(const struct kha_drill_report *r, bool with_probes)
{
	const struct kha_drill_stats *s = &r->stats;
	enum kha_drill_verdict v = kha_drill_report_verdict(r);
	json_t *root, *phases = json_object();
	char started[64];
	char *out;

	format_rfc3339(started, sizeof(started), r->started_wall_us);
	for (int i = 0; i < KHA_DRILL_PHASES; i++)
		json_object_set_new(phases, kha_drill_phase_name(i), phase_json(&s->phases[i]));
	root = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:o, s:o, s:b, s:s, s:i, s:b, s:o, "
		"s:b, s:o, s:o, s:o}",
		"schema", "kha.drill.report/v1", "target", r->target, "target_kind",
		r->kind == KHA_DRILL_TARGET_TCP ? "tcp" : "http", "mode",
		r->rolling ? "rolling" : "steps", "started_at", started, "started_at_unix_us",
		(json_int_t)r->started_wall_us, "duration_ms", ms(r->duration_us), "elapsed_ms",
		ms(r->elapsed_us), "rate", (json_int_t)r->rate, "interval_ms", ms(r->interval_us),
		"timeout_ms", ms(r->timeout_us), "keepalive", r->keepalive, "verdict",
		kha_drill_verdict_name(v), "exit_code", kha_drill_verdict_exit_code(r),
		"interrupted", r->interrupted, "signal",
		r->interrupted ? json_integer(r->interrupt_signal) : json_null(), "aborted",
		r->aborted, "abort_reason",
		r->abort_reason[0] ? text(r->abort_reason) : json_null(), "slo_percent",
		r->slo_percent >= 0 ? json_real(r->slo_percent) : json_null(), "slo_met",
		r->slo_percent >= 0 ? json_boolean(slo_met(r)) : json_null());
	if (!root) {
		json_decref(phases);
		return NULL;
	}
	json_object_set_new(root, "step_failed", json_boolean(r->step_failed));
	json_object_set_new(root, "under_floor", json_boolean(kha_drill_report_under_floor(r)));
	json_object_set_new(root, "probes", probes_json(r));
	json_object_set_new(root, "outage", outage_json(r));
	json_object_set_new(root, "fault", fault_json(s));
	json_object_set_new(root, "latency_ms", latency_json(&s->latency));
	json_object_set_new(root, "phases", phases);
	json_object_set_new(root, "steps", steps_json(r));
	json_object_set_new(root, "rolling", rolling_json(r));
	json_object_set_new(root, "writes", writes_json(&r->writes));
	json_object_set_new(root, "kube", kube_json(r));
	if (with_probes) {
		json_t *list = json_array();
		for (size_t i = 0; i < r->n_probes; i++) {
			const struct kha_drill_probe *p = &r->probes[i];
			json_array_append_new(
				list, json_pack("[o, o, s, i]", ms(p->t_us), ms(p->latency_us),
						kha_drill_result_name(p->result), (int)p->status));
		}
		json_object_set_new(root, "probe_list", list);
	}
	out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	json_decref(root);
	return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Human summary */

static const char *dur(char *buf, size_t size, uint64_t us)
{
	if (us == KHA_DRILL_NONE)
		snprintf(buf, size, "-");
	else if (us < 10 * KHA_USEC_PER_MSEC)
		snprintf(buf, size, "%.2fms", (double)us / 1000.0);
	else if (us < KHA_USEC_PER_SEC)
		snprintf(buf, size, "%.0fms", (double)us / 1000.0);
	else if (us < 600 * KHA_USEC_PER_SEC)
		snprintf(buf, size, "%.3fs", (double)us / 1e6);
	else
		snprintf(buf, size, "%.0fs", (double)us / 1e6);
	return buf;
}

static void print_latency(FILE *out, const char *name, const struct kha_drill_latency *l)
{
	char a[32], b[32], c[32];

	if (!l->count) {
		fprintf(out, "    %-8s %9s %9s %9s  (no successful probe)\n", name, "-", "-", "-");
		return;
	}
	fprintf(out, "    %-8s %9s %9s %9s  (%zu probe%s)\n", name, dur(a, sizeof(a), l->p50_us),
		dur(b, sizeof(b), l->p99_us), dur(c, sizeof(c), l->max_us), l->count,
		l->count == 1 ? "" : "s");
}

/* The first line of a command's output, for the table. */
static void first_line(char *buf, size_t size, const char *s)
{
	size_t n = 0;

	if (!s)
		s = "";
	while (s[n] && s[n] != '\n' && n + 1 < size)
		n++;
	memcpy(buf, s, n);
	buf[n] = '\0';
}

/* the commands the drill ran, and the nodes of a rolling restart */
static void print_steps(FILE *out, const struct kha_drill_report *r)
{
	char a[32];

	if (r->n_steps)
		fprintf(out, "  commands\n");
	for (size_t i = 0; i < r->n_steps; i++) {
		const struct kha_drill_step_result *st = &r->steps[i];
		char line[100];

		first_line(line, sizeof(line), st->output);
		fprintf(out, "    %-8s %-16s at %-9s %-12s", kha_drill_step_kind_name(st->kind),
			st->name, dur(a, sizeof(a), st->started_us),
			kha_drill_step_state_name(st->state));
		if (st->exit_code > 0)
			fprintf(out, " exit %d", st->exit_code);
		if (st->signal)
			fprintf(out, " signal %d", st->signal);
		if (st->on_abort)
			fprintf(out, " (run on abort)");
		if (line[0] && st->state != KHA_DRILL_STEP_SUCCEEDED)
			fprintf(out, ": %s", line);
		fprintf(out, "\n");
	}
	if (r->rolling) {
		fprintf(out, "  rolling       %s\n",
			r->rolling_completed ? "completed" : "STOPPED before the end");
		for (size_t i = 0; i < r->n_nodes; i++) {
			const struct kha_drill_node_result *n = &r->nodes[i];
			fprintf(out, "    %-16s %-10s", n->name,
				kha_drill_node_state_name(n->state));
			if (n->healthy_us != KHA_DRILL_NONE && n->stop_us != KHA_DRILL_NONE)
				fprintf(out, " down to healthy %s",
					dur(a, sizeof(a), n->healthy_us - n->stop_us));
			if (n->checks)
				fprintf(out, " (%u health check%s)", n->checks,
					n->checks == 1 ? "" : "s");
			fprintf(out, "\n");
		}
	}
}

/* write mode's outcome (the writes read back), and the Kubernetes watch's breaks */
static void print_writes(FILE *out, const struct kha_drill_report *r)
{
	char a[32];

	if (r->writes.enabled) {
		const struct kha_drill_writes *w = &r->writes;
		fprintf(out, "  writes        %zu acknowledged, %zu failed, %zu unknown outcome\n",
			w->acked, w->failed, w->unknown);
		if (r->kube.enabled)
			fprintf(out,
				"    of which ConfigMap updates: %zu sent, %zu acknowledged, %zu "
				"conflicts (409, not applied)\n",
				r->kube.updates, r->kube.updates_acked, r->kube.updates_conflicts);
		if (!w->verified)
			fprintf(out, "    NOT VERIFIED: %s\n", w->error);
		else
			fprintf(out,
				"    read back from %s: %zu LOST acknowledged write%s%s, %zu of the "
				"unknown applied, %zu unexpected%s\n",
				w->endpoints, w->lost, w->lost == 1 ? "" : "s",
				r->kube.enabled && r->kube.updates_lost ? " (updates among them)"
									: "",
				w->unknown_applied, w->unexpected,
				w->cleaned ? "; keys deleted" : "");
		if (w->n_lost_slots) {
			fprintf(out, "    lost: %s", w->prefix);
			for (size_t i = 0; i < w->n_lost_slots && i < 10; i++)
				fprintf(out, "%s%010llu", i ? ", " : "",
					(unsigned long long)w->lost_slots[i]);
			fprintf(out, "%s\n", w->lost > 10 ? ", ..." : "");
		}
		if (w->cleanup_error[0])
			fprintf(out, "    keys not deleted: %s\n", w->cleanup_error);
	}
	if (r->kube.enabled && r->kube.watch) {
		const struct kha_drill_kube *k = &r->kube;
		size_t unclean = 0, open = 0;

		for (size_t i = 0; i < k->n_gaps; i++) {
			unclean += !k->gaps[i].clean;
			open += k->gaps[i].back_us == KHA_DRILL_NONE;
		}
		fprintf(out, "  watch         %s/%s: ", k->namespace, k->object);
		if (k->watch_first_us == KHA_DRILL_NONE)
			fprintf(out, "NEVER ESTABLISHED\n");
		else
			fprintf(out,
				"%zu break%s (%zu by the server's timeout), longest reconnect %s%s, "
				"%zu requests\n",
				k->n_gaps, k->n_gaps == 1 ? "" : "s", k->n_gaps - unclean,
				unclean ? dur(a, sizeof(a), k->longest_gap_us) : "-",
				open ? " (STILL BROKEN at the end)" : "", k->watch_requests);
	}
}

int kha_drill_report_print(FILE *out, const struct kha_drill_report *r)
{
	const struct kha_drill_stats *s = &r->stats;
	enum kha_drill_verdict v = kha_drill_report_verdict(r);
	char a[32], b[32], c[32], e[32];
	bool any_fail = false;

	/* the planned length as given ("3s"); the measured one only when it differs visibly
	 * (commands or a rolling outlasting it, an interruption) */
	kha_format_duration(b, sizeof(b), r->duration_us);
	if (r->elapsed_us + KHA_USEC_PER_SEC < r->duration_us ||
	    r->elapsed_us > r->duration_us + KHA_USEC_PER_SEC)
		snprintf(b + strlen(b), sizeof(b) - strlen(b), ", ran %s",
			 dur(a, sizeof(a), r->elapsed_us));
	fprintf(out, "kha drill: %s, %u probes/s for %s (%s)\n", r->target, r->rate, b,
		r->kind == KHA_DRILL_TARGET_TCP ? "TCP connect per probe"
		: r->keepalive			? "kept-alive connections"
						: "new connection per probe");
	fprintf(out, "  probes        %zu sent, %zu ok, %zu failed", s->sent, s->ok, s->failed);
	for (int i = 1; i < KHA_DRILL_PROBE_MISSED; i++) {
		if (!s->by_result[i])
			continue;
		fprintf(out, "%s%s %zu", any_fail ? ", " : " (", kha_drill_result_name(i),
			s->by_result[i]);
		any_fail = true;
	}
	fprintf(out, "%s, %zu missed slots (max send lag %s)\n", any_fail ? ")" : "", s->missed,
		dur(a, sizeof(a), s->max_send_lag_us));
	if (s->sent)
		fprintf(out, "  availability  %.3f%%", s->availability);
	else
		fprintf(out, "  availability  - (no probe sent)");
	if (r->slo_percent >= 0)
		fprintf(out, "  (SLO %g%%: %s)", r->slo_percent, slo_met(r) ? "met" : "MISSED");
	fprintf(out, "\n");
	if (s->longest.start_us == KHA_DRILL_NONE) {
		fprintf(out, "  outage        none\n");
	} else {
		fprintf(out,
			"  outage        %zu window%s, %s in total; longest %s from %s to %s%s\n",
			s->n_windows, s->n_windows == 1 ? "" : "s",
			dur(a, sizeof(a), s->outage_total_us),
			dur(b, sizeof(b), s->longest.end_us - s->longest.start_us),
			dur(c, sizeof(c), s->longest.start_us),
			dur(e, sizeof(e), s->longest.end_us),
			s->longest.open ? " (still failing at the end)" : "");
	}
	if (s->marks.fault_us != KHA_DRILL_NONE) {
		fprintf(out, "  fault         at %s", dur(a, sizeof(a), s->marks.fault_us));
		if (s->first_failure_us == KHA_DRILL_NONE)
			fprintf(out, ": no failure seen after it");
		else
			fprintf(out, ": first failure after %s, %s",
				dur(b, sizeof(b), s->first_failure_us - s->marks.fault_us),
				s->recovered_us == KHA_DRILL_NONE ? "NOT recovered by the end"
								  : "full recovery after ");
		if (s->first_failure_us != KHA_DRILL_NONE && s->recovered_us != KHA_DRILL_NONE)
			fprintf(out, "%s", dur(c, sizeof(c), s->recovered_us - s->marks.fault_us));
		if (s->marks.recover_us != KHA_DRILL_NONE)
			fprintf(out, " (recovery at %s)", dur(a, sizeof(a), s->marks.recover_us));
		fprintf(out, "\n");
	}
	fprintf(out, "  latency       %9s %9s %9s  (successful probes)\n", "p50", "p99", "max");
	if (s->marks.fault_us == KHA_DRILL_NONE) {
		print_latency(out, "all", &s->latency);
	} else {
		for (int i = 0; i < KHA_DRILL_PHASES; i++)
			if (s->phases[i].start_us != KHA_DRILL_NONE)
				print_latency(out, kha_drill_phase_name(i), &s->phases[i].latency);
	}
	for (int i = 1; i < KHA_DRILL_PROBE_MISSED; i++)
		if (r->error_samples[i][0])
			fprintf(out, "  first %-7s %s\n", kha_drill_result_name(i),
				r->error_samples[i]);
	print_steps(out, r);
	print_writes(out, r);
	if (r->abort_reason[0])
		fprintf(out, "  stopped early %s\n", r->abort_reason);
	if (v == KHA_DRILL_VERDICT_NOTHING_SUCCEEDED)
		fprintf(out,
			"  NOTHING SUCCEEDED: not one %s, so the drill proves nothing; check the "
			"target's address and port, and --cacert for https (first errors above)\n",
			r->writes.enabled ? "write was acknowledged" : "probe succeeded");
	else if (kha_drill_report_under_floor(r))
		fprintf(out,
			"  WARNING       availability %.3f%% is under %g%%; without --slo this "
			"still exits 0 (give --slo PERCENT to make it fail)\n",
			r->stats.availability, KHA_DRILL_AVAILABILITY_FLOOR);
	fprintf(out, "  verdict       %s (exit %d)\n", kha_drill_verdict_name(v),
		kha_drill_verdict_exit_code(r));
	return ferror(out) ? -EIO : 0;
}
