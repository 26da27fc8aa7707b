// SPDX-License-Identifier: MIT
/*
 * The SVG timeline of a drill, for a person with a browser: a band of probe results coloured by
 * outcome over time, the latency of successful probes as a line (logarithmic or linear axis),
 * outage windows shaded, commands as labelled vertical lines, a title and a legend.
 *
 * Both the band and the line work per pixel column, so the file stays small for any drill
 * length: a column is red if any probe in it failed, else green if any succeeded, else grey if
 * slots were missed; the line follows the slowest successful probe of each column.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "drill-internal.h"
#include "kha/banned.h"

#define COLOR_OK      "#2ca02c"
#define COLOR_FAIL    "#d62728"
#define COLOR_MISSED  "#9e9e9e"
#define COLOR_LINE    "#1f77b4"
#define COLOR_FAULT   "#d62728"
#define COLOR_RECOVER "#2ca02c"
#define COLOR_OTHER   "#7f7f7f"
#define MAX_WINDOWS   500

enum col_state { COL_EMPTY, COL_MISSED, COL_OK, COL_FAIL };

struct geom {
	double x0, x1; /* plot area, pixels */
	double band_y, band_h;
	double lat_y0, lat_y1; /* latency area: top, bottom */
	uint64_t span_us;
	bool linear;
	double lat_min, lat_max; /* ms, axis range */
};

static void xml_text(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&apos;", out);
			break;
		default:
			/* control characters are not allowed in XML 1.0 */
			if (c < 0x20 && c != '\t' && c != '\n')
				fputc(' ', out);
			else
				fputc(c, out);
		}
	}
}

static double x_of(const struct geom *g, uint64_t t_us)
{
	if (!g->span_us)
		return g->x0;
	if (t_us > g->span_us)
		t_us = g->span_us;
	return g->x0 + (g->x1 - g->x0) * (double)t_us / (double)g->span_us;
}

static double y_of(const struct geom *g, double ms)
{
	double f;

	if (g->linear) {
		f = (ms - g->lat_min) / (g->lat_max - g->lat_min);
	} else {
		ms = KHA_MAX(ms, g->lat_min);
		f = (log10(ms) - log10(g->lat_min)) / (log10(g->lat_max) - log10(g->lat_min));
	}
	f = KHA_MAX(0.0, KHA_MIN(1.0, f));
	return g->lat_y1 - f * (g->lat_y1 - g->lat_y0);
}

/* 1, 2 or 5 times a power of ten, so that range / step gives about `want` ticks. */
static double nice_step(double range, int want)
{
	double raw = range / want, p, m;

	if (raw <= 0)
		return 1;
	p = pow(10, floor(log10(raw)));
	m = raw / p;
	return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt_ms(char *buf, size_t size, double ms)
{
	if (ms >= 1000)
		snprintf(buf, size, "%.4gs", ms / 1000);
	else
		snprintf(buf, size, "%.4gms", ms);
}

static void latency_range(const struct kha_drill_report *r, struct geom *g)
{
	double lo = INFINITY, hi = 0;

	for (size_t i = 0; i < r->n_probes; i++) {
		if (r->probes[i].result != KHA_DRILL_PROBE_OK)
			continue;
		double v = (double)r->probes[i].latency_us / 1000.0;
		lo = KHA_MIN(lo, v);
		hi = KHA_MAX(hi, v);
	}
	if (hi <= 0) {
		lo = 0.1;
		hi = (double)r->timeout_us / 1000.0;
	}
	if (g->linear) {
		double step = nice_step(hi, 5);
		g->lat_min = 0;
		g->lat_max = KHA_MAX(step, ceil(hi / step) * step);
	} else {
		g->lat_min = pow(10, floor(log10(KHA_MAX(lo, 0.01))));
		g->lat_max = pow(10, ceil(log10(KHA_MAX(hi, g->lat_min * 10))));
		if (g->lat_max <= g->lat_min)
			g->lat_max = g->lat_min * 10;
	}
}

static void draw_axes(FILE *out, const struct geom *g)
{
	double span_s = (double)g->span_us / 1e6, step = nice_step(span_s, 10);
	char label[32];

	fprintf(out, "<g class=\"axes\" font-size=\"11\" fill=\"#333\">\n");
	/* time axis */
	fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
		g->x0, g->lat_y1, g->x1, g->lat_y1);
	for (double t = 0; t <= span_s + step / 1000; t += step) {
		double x = x_of(g, (uint64_t)llround(t * 1e6));
		fprintf(out,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
			"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%gs</text>\n",
			x, g->lat_y1, x, g->lat_y1 + 4, x, g->lat_y1 + 16, t);
	}
	fprintf(out,
		"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">time since the start "
		"of the drill</text>\n",
		(g->x0 + g->x1) / 2, g->lat_y1 + 32);
	/* latency axis */
	fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
		g->x0, g->lat_y0, g->x0, g->lat_y1);
	if (g->linear) {
		double s = nice_step(g->lat_max - g->lat_min, 5);
		for (double v = g->lat_min; v <= g->lat_max + s / 1000; v += s) {
			double y = y_of(g, v);
			fmt_ms(label, sizeof(label), v);
			fprintf(out,
				"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
				"stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
				"text-anchor=\"end\">%s</text>\n",
				g->x0, y, g->x1, y, g->x0 - 4, y + 4, label);
		}
	} else {
		double decades = log10(g->lat_max / g->lat_min);
		for (double dec = g->lat_min; dec <= g->lat_max * 1.001; dec *= 10) {
			/* 1-2-5 ticks when few decades are shown, one per decade otherwise */
			for (int m = 0; m < (decades <= 3 ? 3 : 1); m++) {
				double v = dec * (m == 0 ? 1 : m == 1 ? 2 : 5);
				double y;
				if (v > g->lat_max * 1.001)
					break;
				y = y_of(g, v);
				fmt_ms(label, sizeof(label), v);
				fprintf(out,
					"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
					"stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%.1f\" "
					"text-anchor=\"end\">%s</text>\n",
					g->x0, y, g->x1, y, g->x0 - 4, y + 4, label);
			}
		}
	}
	fprintf(out,
		"<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\">"
		"latency of successful probes (%s scale)</text>\n",
		g->x0 - 52, (g->lat_y0 + g->lat_y1) / 2, g->linear ? "linear" : "log");
	fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">probes</text>\n", g->x0 - 4,
		g->band_y + g->band_h / 2 + 4);
	fprintf(out, "</g>\n");
}

static void draw_band(FILE *out, const struct kha_drill_report *r, const struct geom *g,
		      unsigned cols)
{
	static const char *const colors[] = {
		[COL_MISSED] = COLOR_MISSED, [COL_OK] = COLOR_OK, [COL_FAIL] = COLOR_FAIL};
	static const char *const classes[] = {
		[COL_MISSED] = "band-missed", [COL_OK] = "band-ok", [COL_FAIL] = "band-fail"};
	unsigned char *state = calloc(cols, 1);
	unsigned start = 0;

	if (!state)
		return;
	for (size_t i = 0; i < r->n_probes; i++) {
		const struct kha_drill_probe *p = &r->probes[i];
		unsigned c =
			g->span_us ? (unsigned)((double)p->t_us * cols / (double)g->span_us) : 0;
		enum col_state s;

		if (p->result == KHA_DRILL_PROBE_CANCELLED)
			continue;
		c = KHA_MIN(c, cols - 1);
		s = p->result == KHA_DRILL_PROBE_OK	  ? COL_OK
		    : p->result == KHA_DRILL_PROBE_MISSED ? COL_MISSED
							  : COL_FAIL;
		if (s > state[c])
			state[c] = (unsigned char)s;
	}
	/* a column without any slot (low rates) continues its left neighbour */
	for (unsigned c = 1; c < cols; c++)
		if (state[c] == COL_EMPTY)
			state[c] = state[c - 1];
	fprintf(out, "<g class=\"band\">\n");
	for (unsigned c = 1; c <= cols; c++) {
		double x, w;
		if (c < cols && state[c] == state[start])
			continue;
		if (state[start] != COL_EMPTY) {
			x = g->x0 + (g->x1 - g->x0) * start / cols;
			w = (g->x1 - g->x0) * (c - start) / cols;
			fprintf(out,
				"<rect class=\"%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
				"height=\"%.1f\" fill=\"%s\"/>\n",
				classes[state[start]], x, g->band_y, w, g->band_h,
				colors[state[start]]);
		}
		start = c;
	}
	fprintf(out, "</g>\n");
	free(state);
}

static void draw_latency(FILE *out, const struct kha_drill_report *r, const struct geom *g,
			 unsigned cols)
{
	double *worst = malloc(sizeof(*worst) * cols);
	unsigned char *failed = calloc(cols, 1);
	bool pen = false;

	if (!worst || !failed) {
		free(worst);
		free(failed);
		return;
	}
	for (unsigned c = 0; c < cols; c++)
		worst[c] = -1;
	for (size_t i = 0; i < r->n_probes; i++) {
		const struct kha_drill_probe *p = &r->probes[i];
		unsigned c =
			g->span_us ? (unsigned)((double)p->t_us * cols / (double)g->span_us) : 0;

		c = KHA_MIN(c, cols - 1);
		if (p->result == KHA_DRILL_PROBE_OK)
			worst[c] = KHA_MAX(worst[c], (double)p->latency_us / 1000.0);
		else if (kha_drill_result_failed(p->result))
			failed[c] = 1;
	}
	fprintf(out,
		"<path class=\"latency\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" "
		"d=\"",
		COLOR_LINE);
	for (unsigned c = 0; c < cols; c++) {
		double x = g->x0 + (g->x1 - g->x0) * (c + 0.5) / cols;
		if (worst[c] < 0) {
			/* the line breaks where probes failed, not where there was no probe */
			if (failed[c])
				pen = false;
			continue;
		}
		fprintf(out, "%s%.2f %.2f ", pen ? "L" : "M", x, y_of(g, worst[c]));
		pen = true;
	}
	fprintf(out, "\"/>\n");
	free(worst);
	free(failed);
}

static void draw_windows(FILE *out, const struct kha_drill_report *r, const struct geom *g)
{
	struct kha_drill_window *ws = calloc(MAX_WINDOWS, sizeof(*ws));
	size_t n;
	char a[32];

	if (!ws)
		return;
	n = kha_drill_find_windows(r->probes, r->n_probes, r->stats.marks.end_us, ws, MAX_WINDOWS);
	fprintf(out, "<g class=\"outages\">\n");
	for (size_t i = 0; i < KHA_MIN(n, (size_t)MAX_WINDOWS); i++) {
		double x = x_of(g, ws[i].start_us), x2 = x_of(g, ws[i].end_us);
		fmt_ms(a, sizeof(a), (double)(ws[i].end_us - ws[i].start_us) / 1000.0);
		fprintf(out,
			"<rect class=\"outage\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
			"height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.12\"><title>outage %s "
			"(%zu failed probe%s)</title></rect>\n",
			x, g->lat_y0, KHA_MAX(x2 - x, 0.5), g->lat_y1 - g->lat_y0, COLOR_FAIL, a,
			ws[i].failed, ws[i].failed == 1 ? "" : "s");
	}
	fprintf(out, "</g>\n");
	free(ws);
}

static void marker(FILE *out, const struct geom *g, uint64_t t, const char *cls, const char *color,
		   const char *label, unsigned index)
{
	double x = x_of(g, t);
	double ly = g->lat_y0 + 12 + (index % 4) * 13;

	fprintf(out,
		"<g class=\"marker %s\"><line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
		"stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>"
		"<text x=\"%.2f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\">",
		cls, x, g->band_y - 4, x, g->lat_y1, color, x + 3, ly, color);
	xml_text(out, label);
	fprintf(out, "</text></g>\n");
}

static void draw_markers(FILE *out, const struct kha_drill_report *r, const struct geom *g)
{
	unsigned idx = 0;
	char label[300];

	fprintf(out, "<g class=\"markers\">\n");
	for (size_t i = 0; i < r->n_steps; i++) {
		const struct kha_drill_step_result *st = &r->steps[i];
		const char *cls = "step", *color = COLOR_OTHER;

		if (st->started_us == KHA_DRILL_NONE)
			continue;
		if (st->kind == KHA_DRILL_STEP_FAULT || st->kind == KHA_DRILL_STEP_STOP) {
			cls = "fault";
			color = COLOR_FAULT;
		} else if (st->kind == KHA_DRILL_STEP_RECOVER || st->kind == KHA_DRILL_STEP_START) {
			cls = "recover";
			color = COLOR_RECOVER;
		}
		snprintf(label, sizeof(label), "%s%s", st->name,
			 st->state == KHA_DRILL_STEP_SUCCEEDED ||
					 st->state == KHA_DRILL_STEP_RUNNING
				 ? ""
				 : " (failed)");
		marker(out, g, st->started_us, cls, color, label, idx++);
	}
	for (size_t i = 0; i < r->n_nodes; i++) {
		if (r->nodes[i].healthy_us == KHA_DRILL_NONE)
			continue;
		snprintf(label, sizeof(label), "%s healthy", r->nodes[i].name);
		marker(out, g, r->nodes[i].healthy_us, "recover", COLOR_RECOVER, label, idx++);
	}
	fprintf(out, "</g>\n");
}

static void legend_item(FILE *out, double *x, double y, const char *cls, const char *shape,
			const char *label)
{
	fprintf(out, "<g class=\"legend-item %s\">%s<text x=\"%.1f\" y=\"%.1f\">%s</text></g>\n",
		cls, shape, *x + 16, y + 9, label);
	*x += 16 + 7.0 * (double)strlen(label) + 18;
}

static void draw_legend(FILE *out, const struct geom *g, double y)
{
	char shape[256];
	double x = g->x0;

	fprintf(out, "<g class=\"legend\" font-size=\"11\" fill=\"#333\">\n");
	snprintf(shape, sizeof(shape),
		 "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"" COLOR_OK "\"/>",
		 x, y);
	legend_item(out, &x, y, "ok", shape, "probe succeeded");
	snprintf(shape, sizeof(shape),
		 "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"" COLOR_FAIL "\"/>",
		 x, y);
	legend_item(out, &x, y, "fail", shape, "probe failed");
	snprintf(shape, sizeof(shape),
		 "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"" COLOR_MISSED
		 "\"/>",
		 x, y);
	legend_item(out, &x, y, "missed", shape, "slot missed");
	snprintf(shape, sizeof(shape),
		 "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_LINE
		 "\" stroke-width=\"2\"/>",
		 x, y + 5, x + 12, y + 5);
	legend_item(out, &x, y, "latency", shape, "slowest successful probe per pixel");
	snprintf(shape, sizeof(shape),
		 "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_FAULT
		 "\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"/>",
		 x + 6, y - 1, x + 6, y + 11);
	legend_item(out, &x, y, "fault", shape, "fault");
	snprintf(shape, sizeof(shape),
		 "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_RECOVER
		 "\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"/>",
		 x + 6, y - 1, x + 6, y + 11);
	legend_item(out, &x, y, "recover", shape, "recovery");
	fprintf(out, "</g>\n");
}

int kha_drill_svg_write(FILE *out, const struct kha_drill_report *r,
			const struct kha_drill_svg_opts *opts)
{
	const struct kha_drill_stats *s = &r->stats;
	unsigned width = opts && opts->width ? opts->width : 1000;
	unsigned height = opts && opts->height ? opts->height : 480;
	struct geom g = {.linear = opts && opts->linear};
	unsigned cols;
	char title[600], sub[300], longest[32] = "none";

	width = KHA_MAX(width, 400u);
	height = KHA_MAX(height, 300u);
	g.x0 = 80;
	g.x1 = width - 20.0;
	g.band_y = 62;
	g.band_h = 22;
	g.lat_y0 = 100;
	g.lat_y1 = height - 80.0;
	g.span_us = KHA_MAX(r->elapsed_us, s->marks.end_us == KHA_DRILL_NONE ? 0 : s->marks.end_us);
	if (r->n_probes)
		g.span_us = KHA_MAX(g.span_us, r->probes[r->n_probes - 1].t_us + r->interval_us);
	cols = (unsigned)(g.x1 - g.x0);
	latency_range(r, &g);

	if (opts && opts->title)
		snprintf(title, sizeof(title), "%s", opts->title);
	else
		snprintf(title, sizeof(title), "kha drill: %s", r->target);
	if (s->longest.start_us != KHA_DRILL_NONE)
		fmt_ms(longest, sizeof(longest),
		       (double)(s->longest.end_us - s->longest.start_us) / 1000);
	if (s->sent)
		snprintf(sub, sizeof(sub),
			 "availability %.3f%%, %zu of %zu probes failed, longest outage %s, %u "
			 "probes/s%s",
			 s->availability, s->failed, s->sent, longest, r->rate,
			 r->interrupted ? ", INTERRUPTED" : "");
	else
		snprintf(sub, sizeof(sub), "no probe sent%s",
			 r->interrupted ? ", INTERRUPTED" : "");

	fprintf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
		"viewBox=\"0 0 %u %u\" font-family=\"sans-serif\">\n<title>",
		width, height, width, height);
	xml_text(out, title);
	fprintf(out, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(out,
		"<text class=\"title\" x=\"%.1f\" y=\"24\" font-size=\"16\" "
		"font-weight=\"bold\">",
		g.x0);
	xml_text(out, title);
	fprintf(out,
		"</text>\n<text class=\"subtitle\" x=\"%.1f\" y=\"44\" font-size=\"12\" "
		"fill=\"#555\">",
		g.x0);
	xml_text(out, sub);
	fprintf(out, "</text>\n");

	draw_windows(out, r, &g);
	draw_axes(out, &g);
	draw_band(out, r, &g, cols);
	draw_latency(out, r, &g, cols);
	draw_markers(out, r, &g);
	draw_legend(out, &g, height - 24.0);
	fprintf(out, "</svg>\n");
	return ferror(out) ? -EIO : 0;
}
