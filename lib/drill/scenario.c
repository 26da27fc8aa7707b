// SPDX-License-Identifier: MIT
/*
 * Scenarios: one setter by flag name shared by the command line, scenario files and callers,
 * the YAML scenario parser (libyaml's document API, so every error names its line), and the
 * check that completes a scenario before it runs.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <yaml.h>

#include "kha/drill.h"
#include "kha/etcd.h"
#include "kha/file.h"
#include "kha/kube.h"
#include "kha/parse.h"
#include "drill-internal.h"
#include "kha/banned.h"

#define SCENARIO_MAX_BYTES (1024 * 1024)
#define MAX_STEPS	   1000
#define MAX_NODES	   1000

void kha_drill_scenario_init(struct kha_drill_scenario *sc)
{
	*sc = (struct kha_drill_scenario){
		.rate = KHA_DRILL_DEFAULT_RATE,
		.duration_us = KHA_DRILL_DEFAULT_DURATION_US,
		.timeout_us = KHA_DRILL_DEFAULT_TIMEOUT_US,
		.step_timeout_us = KHA_DRILL_DEFAULT_STEP_TIMEOUT_US,
		.slo_percent = -1,
		.fault_at_us = KHA_DRILL_NONE,
		.recover_at_us = KHA_DRILL_NONE,
		.healthy_timeout_us = KHA_DRILL_DEFAULT_HEALTHY_TIMEOUT,
		.healthy_interval_us = KHA_DRILL_DEFAULT_HEALTHY_INTERVAL,
		.readback_timeout_us = 15 * KHA_USEC_PER_SEC,
		.watch_timeout_us = 60 * KHA_USEC_PER_SEC,
	};
}

static void free_nodes(struct kha_drill_scenario *sc)
{
	for (size_t i = 0; i < sc->n_nodes; i++)
		free(sc->nodes[i]);
	free(sc->nodes);
	sc->nodes = NULL;
	sc->n_nodes = 0;
}

void kha_drill_scenario_release(struct kha_drill_scenario *sc)
{
	if (!sc)
		return;
	free(sc->target);
	free(sc->cacert);
	free(sc->cert);
	free(sc->key);
	free(sc->fault);
	free(sc->recover);
	for (size_t i = 0; i < sc->n_steps; i++) {
		free(sc->steps[i].name);
		free(sc->steps[i].run);
	}
	free(sc->steps);
	free_nodes(sc);
	free(sc->stop);
	free(sc->start);
	free(sc->healthy);
	free(sc->endpoints);
	free(sc->write_prefix);
	free(sc->kubeconfig);
	free(sc->namespace);
	free(sc->report_path);
	free(sc->svg_path);
	kha_drill_scenario_init(sc);
}

static int set_str(char **field, const char *value, struct kha_diag *d)
{
	char *copy;

	if (!value || !*value)
		return kha_diag_set(d, EINVAL, "expected a non-empty value");
	copy = strdup(value);
	if (!copy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	free(*field);
	*field = copy;
	return 0;
}

static int set_bool(bool *field, const char *value, struct kha_diag *d)
{
	if (!value) {
		*field = true;
		return 0;
	}
	if (kha_parse_bool(value, field) < 0)
		return kha_diag_set(d, EINVAL, "expected true or false, got '%s'", value);
	return 0;
}

static int set_duration(uint64_t *field, const char *value, uint64_t min, uint64_t max,
			struct kha_diag *d)
{
	uint64_t us;
	char a[32], b[32];

	if (!value || kha_parse_duration_us(value, &us) < 0)
		return kha_diag_set(d, EINVAL,
				    "expected a duration such as 500ms, 2s or 1m30s, got '%s'",
				    value ? value : "");
	if (us < min || us > max)
		return kha_diag_set(d, EINVAL, "'%s' is out of range (%s to %s)", value,
				    kha_format_duration(a, sizeof(a), min),
				    kha_format_duration(b, sizeof(b), max));
	*field = us;
	return 0;
}

static bool node_name_ok(const char *s)
{
	if (!*s)
		return false;
	/* names are pasted into shell commands: keep them to host-name and address characters */
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-._:@[]", *s)))
			return false;
	return true;
}

static int set_nodes(struct kha_drill_scenario *sc, const char *value, struct kha_diag *d)
{
	char *copy, *save = NULL, *tok;
	char **nodes = NULL;
	size_t n = 0;
	int r = 0;

	if (!value || !*value)
		return kha_diag_set(d, EINVAL, "expected a comma-separated list of nodes");
	copy = strdup(value);
	if (!copy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		for (char *end = tok + strlen(tok); end > tok && end[-1] == ' ';)
			*--end = '\0';
		if (!node_name_ok(tok)) {
			r = kha_diag_set(
				d, EINVAL,
				"node '%s': names may hold letters, digits and -._:@[] only", tok);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (strcmp(nodes[i], tok) == 0) {
				r = kha_diag_set(d, EINVAL, "node '%s' is listed twice", tok);
				goto out;
			}
		}
		if (n >= MAX_NODES) {
			r = kha_diag_set(d, EINVAL, "too many nodes (at most %d)", MAX_NODES);
			goto out;
		}
		if (KHA_RESIZE(nodes, n + 1) < 0 || !(nodes[n] = strdup(tok))) {
			r = kha_diag_set(d, ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (n == 0) {
		r = kha_diag_set(d, EINVAL, "expected a comma-separated list of nodes");
		goto out;
	}
	free_nodes(sc);
	sc->nodes = KHA_TAKE_PTR(nodes);
	sc->n_nodes = n;
out:
	for (size_t i = 0; nodes && i < n; i++)
		free(nodes[i]);
	free(nodes);
	free(copy);
	return r;
}

bool kha_drill_status_expected(const uint64_t bitmap[8], long status)
{
	bool any = false;

	for (int i = 0; i < 8; i++)
		any |= bitmap[i] != 0;
	if (!any)
		return status >= 200 && status <= 299;
	if (status < 100 || status > 599)
		return false;
	return bitmap[(status - 100) / 64] & (1ULL << ((status - 100) % 64));
}

static int parse_status(const char *s, const char **end, long *ret)
{
	char *e;
	long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtol(s, &e, 10);
	if (v < 100 || v > 599)
		return -EINVAL;
	*end = e;
	*ret = v;
	return 0;
}

int kha_drill_parse_expect_status(const char *s, uint64_t ret_bitmap[8])
{
	uint64_t bm[8] = {};
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		long lo, hi;
		const char *e;

		while (*p == ' ')
			p++;
		if (p[0] >= '1' && p[0] <= '5' && (p[1] == 'x' || p[1] == 'X') &&
		    (p[2] == 'x' || p[2] == 'X')) {
			lo = (p[0] - '0') * 100;
			hi = lo + 99;
			p += 3;
		} else {
			if (parse_status(p, &e, &lo) < 0)
				return -EINVAL;
			p = e;
			hi = lo;
			if (*p == '-') {
				if (parse_status(p + 1, &e, &hi) < 0 || hi < lo)
					return -EINVAL;
				p = e;
			}
		}
		for (long v = lo; v <= hi; v++)
			bm[(v - 100) / 64] |= 1ULL << ((v - 100) % 64);
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (*p != ',')
			return -EINVAL;
		p++;
	}
	memcpy(ret_bitmap, bm, sizeof(bm));
	return 0;
}

static int set_rate(struct kha_drill_scenario *sc, const char *value, struct kha_diag *d)
{
	uint64_t v;

	if (!value || kha_parse_u64(value, 1, KHA_DRILL_MAX_RATE, &v) < 0)
		return kha_diag_set(d, EINVAL, "expected probes per second from 1 to %d, got '%s'",
				    KHA_DRILL_MAX_RATE, value ? value : "");
	sc->rate = (uint32_t)v;
	return 0;
}

static int set_slo(struct kha_drill_scenario *sc, const char *value, struct kha_diag *d)
{
	char *end;
	double v;

	if (!value || !*value)
		return kha_diag_set(d, EINVAL, "expected a percentage such as 99.9");
	v = strtod(value, &end);
	if (*end == '%')
		end++;
	if (*end || end == value || !(v >= 0 && v <= 100))
		return kha_diag_set(d, EINVAL, "expected a percentage from 0 to 100, got '%s'",
				    value);
	sc->slo_percent = v;
	return 0;
}

int kha_drill_scenario_set(struct kha_drill_scenario *sc, const char *name, const char *value,
			   struct kha_diag *d)
{
	const uint64_t max = KHA_DRILL_MAX_DURATION_US;

	if (strcmp(name, "target") == 0)
		return set_str(&sc->target, value, d);
	if (strcmp(name, "cacert") == 0)
		return set_str(&sc->cacert, value, d);
	if (strcmp(name, "cert") == 0)
		return set_str(&sc->cert, value, d);
	if (strcmp(name, "key") == 0)
		return set_str(&sc->key, value, d);
	if (strcmp(name, "insecure") == 0)
		return set_bool(&sc->insecure, value, d);
	if (strcmp(name, "keepalive") == 0)
		return set_bool(&sc->keepalive, value, d);
	if (strcmp(name, "keep-going") == 0)
		return set_bool(&sc->keep_going, value, d);
	if (strcmp(name, "rate") == 0)
		return set_rate(sc, value, d);
	if (strcmp(name, "duration") == 0)
		return set_duration(&sc->duration_us, value, KHA_USEC_PER_MSEC, max, d);
	if (strcmp(name, "timeout") == 0)
		return set_duration(&sc->timeout_us, value, KHA_USEC_PER_MSEC,
				    3600 * KHA_USEC_PER_SEC, d);
	if (strcmp(name, "step-timeout") == 0)
		return set_duration(&sc->step_timeout_us, value, KHA_USEC_PER_MSEC, max, d);
	if (strcmp(name, "expect-status") == 0) {
		if (!value || kha_drill_parse_expect_status(value, sc->expect_status) < 0)
			return kha_diag_set(d, EINVAL,
					    "expected HTTP statuses such as 2xx, 200, 200-204 or "
					    "200,401, got '%s'",
					    value ? value : "");
		return 0;
	}
	if (strcmp(name, "slo") == 0)
		return set_slo(sc, value, d);
	if (strcmp(name, "fault") == 0)
		return set_str(&sc->fault, value, d);
	if (strcmp(name, "recover") == 0)
		return set_str(&sc->recover, value, d);
	if (strcmp(name, "fault-at") == 0)
		return set_duration(&sc->fault_at_us, value, 0, max, d);
	if (strcmp(name, "recover-at") == 0)
		return set_duration(&sc->recover_at_us, value, 0, max, d);
	if (strcmp(name, "rolling") == 0)
		return set_nodes(sc, value, d);
	if (strcmp(name, "stop") == 0)
		return set_str(&sc->stop, value, d);
	if (strcmp(name, "start") == 0)
		return set_str(&sc->start, value, d);
	if (strcmp(name, "healthy") == 0)
		return set_str(&sc->healthy, value, d);
	if (strcmp(name, "healthy-timeout") == 0)
		return set_duration(&sc->healthy_timeout_us, value, KHA_USEC_PER_MSEC, max, d);
	if (strcmp(name, "healthy-interval") == 0)
		return set_duration(&sc->healthy_interval_us, value, KHA_USEC_PER_MSEC, max, d);
	if (strcmp(name, "down-time") == 0)
		return set_duration(&sc->down_us, value, 0, max, d);
	if (strcmp(name, "write") == 0)
		return set_bool(&sc->write, value, d);
	if (strcmp(name, "endpoints") == 0)
		return set_str(&sc->endpoints, value, d);
	if (strcmp(name, "write-prefix") == 0)
		return set_str(&sc->write_prefix, value, d);
	if (strcmp(name, "keep-keys") == 0)
		return set_bool(&sc->keep_keys, value, d);
	if (strcmp(name, "readback-timeout") == 0)
		return set_duration(&sc->readback_timeout_us, value, KHA_USEC_PER_MSEC, max, d);
	if (strcmp(name, "kube") == 0)
		return set_bool(&sc->kube, value, d);
	if (strcmp(name, "kubeconfig") == 0)
		return set_str(&sc->kubeconfig, value, d);
	if (strcmp(name, "namespace") == 0)
		return set_str(&sc->namespace, value, d);
	if (strcmp(name, "no-watch") == 0)
		return set_bool(&sc->no_watch, value, d);
	if (strcmp(name, "watch-timeout") == 0)
		return set_duration(&sc->watch_timeout_us, value, KHA_USEC_PER_SEC,
				    3600 * KHA_USEC_PER_SEC, d);
	if (strcmp(name, "report") == 0)
		return set_str(&sc->report_path, value, d);
	if (strcmp(name, "svg") == 0)
		return set_str(&sc->svg_path, value, d);
	return -ENOENT;
}

const char *kha_drill_step_kind_name(enum kha_drill_step_kind k)
{
	switch (k) {
	case KHA_DRILL_STEP_FAULT:
		return "fault";
	case KHA_DRILL_STEP_RECOVER:
		return "recover";
	case KHA_DRILL_STEP_ACTION:
		return "action";
	case KHA_DRILL_STEP_STOP:
		return "stop";
	case KHA_DRILL_STEP_START:
		return "start";
	}
	return "unknown";
}

static int parse_kind(const char *s, enum kha_drill_step_kind *ret)
{
	static const enum kha_drill_step_kind kinds[] = {
		KHA_DRILL_STEP_FAULT,
		KHA_DRILL_STEP_RECOVER,
		KHA_DRILL_STEP_ACTION,
	};
	for (size_t i = 0; i < KHA_ARRAY_SIZE(kinds); i++) {
		if (strcmp(s, kha_drill_step_kind_name(kinds[i])) == 0) {
			*ret = kinds[i];
			return 0;
		}
	}
	return -EINVAL;
}

int kha_drill_scenario_add_step(struct kha_drill_scenario *sc, enum kha_drill_step_kind kind,
				uint64_t at_us, const char *name, const char *run,
				uint64_t timeout_us, struct kha_diag *d)
{
	struct kha_drill_step *st;

	if (!run || !*run)
		return kha_diag_set(d, EINVAL, "a step needs a command to run");
	if (sc->n_steps >= MAX_STEPS)
		return kha_diag_set(d, EINVAL, "too many steps (at most %d)", MAX_STEPS);
	if (KHA_RESIZE(sc->steps, sc->n_steps + 1) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	st = &sc->steps[sc->n_steps];
	*st = (struct kha_drill_step){
		.name = strdup(name && *name ? name : kha_drill_step_kind_name(kind)),
		.run = strdup(run),
		.at_us = at_us,
		.timeout_us = timeout_us,
		.kind = kind,
	};
	if (!st->name || !st->run) {
		free(st->name);
		free(st->run);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	sc->n_steps++;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The YAML scenario file. */

struct yctx {
	yaml_document_t *doc;
	const char *name;
	struct kha_diag *d;
};

static size_t line_of(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

static int yerr(struct yctx *y, const yaml_node_t *n, const char *fmt, ...) KHA_PRINTF(3, 4);
static int yerr(struct yctx *y, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[KHA_DIAG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return kha_diag_set(y->d, EBADMSG, "%s:%zu: %s", y->name, line_of(n), msg);
}

static const char *scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A YAML list of scalars becomes "a,b,c" (node lists). */
static int join_list(struct yctx *y, const yaml_node_t *list, char **ret)
{
	size_t len = 1;
	char *buf;

	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++) {
		const yaml_node_t *e = yaml_document_get_node(y->doc, *it);
		if (!e || !scalar(e))
			return yerr(y, e ? e : list, "expected a list of names");
		len += e->data.scalar.length + 1;
	}
	buf = calloc(1, len);
	if (!buf)
		return kha_diag_set(y->d, ENOMEM, "out of memory");
	for (yaml_node_item_t *it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++) {
		const yaml_node_t *e = yaml_document_get_node(y->doc, *it);
		size_t used = strlen(buf);
		snprintf(buf + used, len - used, "%s%s", used ? "," : "", scalar(e));
	}
	*ret = buf;
	return 0;
}

static int parse_step(struct yctx *y, struct kha_drill_scenario *sc, const yaml_node_t *m)
{
	enum { AT, RUN, NAME, KIND, TIMEOUT, NKEYS };
	static const char *const keys[NKEYS] = {"at", "run", "name", "kind", "timeout"};
	const yaml_node_t *vals[NKEYS] = {};
	enum kha_drill_step_kind k = KHA_DRILL_STEP_ACTION;
	uint64_t at_us = 0, timeout_us = 0;
	const char *v;
	int r;

	if (m->type != YAML_MAPPING_NODE)
		return yerr(y, m, "a step must be a mapping such as {at: 10s, run: \"CMD\"}");
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *kn = yaml_document_get_node(y->doc, p->key);
		const yaml_node_t *vn = yaml_document_get_node(y->doc, p->value);
		const char *key = kn ? scalar(kn) : NULL;
		int i;

		if (!key)
			return yerr(y, kn ? kn : m, "step keys must be plain names");
		for (i = 0; i < NKEYS && strcmp(key, keys[i]) != 0; i++)
			;
		if (i == NKEYS)
			return yerr(y, kn,
				    "unknown step key '%s' (known: at, run, name, kind, timeout)",
				    key);
		if (!vn || !scalar(vn))
			return yerr(y, vn ? vn : kn, "step %s: expected a single value", key);
		vals[i] = vn;
	}
	if (!vals[AT])
		return yerr(y, m, "step without 'at' (when to run it, such as 10s)");
	if (!vals[RUN] || !*scalar(vals[RUN]))
		return yerr(y, vals[RUN] ? vals[RUN] : m, "step without 'run' (the command)");
	v = scalar(vals[AT]);
	if (kha_parse_duration_us(v, &at_us) < 0 || at_us > KHA_DRILL_MAX_DURATION_US)
		return yerr(y, vals[AT], "step at: expected a duration such as 10s, got '%s'", v);
	if (vals[TIMEOUT]) {
		v = scalar(vals[TIMEOUT]);
		if (kha_parse_duration_us(v, &timeout_us) < 0 || timeout_us == 0)
			return yerr(y, vals[TIMEOUT],
				    "step timeout: expected a duration such as 30s, got '%s'", v);
	}
	if (vals[KIND] && parse_kind(scalar(vals[KIND]), &k) < 0)
		return yerr(y, vals[KIND], "step kind: expected fault, recover or action, got '%s'",
			    scalar(vals[KIND]));
	r = kha_drill_scenario_add_step(sc, k, at_us, vals[NAME] ? scalar(vals[NAME]) : NULL,
					scalar(vals[RUN]), timeout_us, y->d);
	if (r < 0)
		kha_diag_prefix(y->d, "%s:%zu", y->name, line_of(m));
	return r == -EINVAL ? -EBADMSG : r;
}

static int parse_steps(struct yctx *y, struct kha_drill_scenario *sc, const yaml_node_t *v)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return yerr(y, v, "steps: expected a list of {at, run, name, kind}");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *m = yaml_document_get_node(y->doc, *it);
		int r;

		if (!m)
			return yerr(y, v, "steps: broken list");
		r = parse_step(y, sc, m);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_root(struct yctx *y, struct kha_drill_scenario *sc, const yaml_node_t *root)
{
	if (root->type != YAML_MAPPING_NODE)
		return yerr(y, root, "expected a mapping (target: ..., rate: ..., steps: [...])");
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *kn = yaml_document_get_node(y->doc, p->key);
		const yaml_node_t *vn = yaml_document_get_node(y->doc, p->value);
		const char *key = kn ? scalar(kn) : NULL;
		char *joined = NULL;
		const char *val;
		int r;

		if (!key || !vn)
			return yerr(y, kn ? kn : root, "keys must be plain names");
		if (strcmp(key, "steps") == 0) {
			r = parse_steps(y, sc, vn);
			if (r < 0)
				return r;
			continue;
		}
		if (strcmp(key, "rolling") == 0 && vn->type == YAML_SEQUENCE_NODE) {
			r = join_list(y, vn, &joined);
			if (r < 0)
				return r;
		} else if (vn->type != YAML_SCALAR_NODE) {
			return yerr(y, vn, "%s: expected a single value", key);
		}
		val = joined ? joined : scalar(vn);
		kha_diag_clear(y->d);
		r = kha_drill_scenario_set(sc, key, val, y->d);
		free(joined);
		if (r == -ENOENT)
			return yerr(y, kn, "unknown key '%s' (keys are the flags of kha drill)",
				    key);
		if (r < 0) {
			kha_diag_prefix(y->d, "%s:%zu: %s", y->name, line_of(vn), key);
			return r == -ENOMEM ? r : -EBADMSG;
		}
	}
	return 0;
}

int kha_drill_scenario_parse(struct kha_drill_scenario *sc, const char *text, size_t len,
			     const char *name, struct kha_diag *d)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	struct yctx y = {.doc = &doc, .name = name ? name : "scenario", .d = d};
	int r;

	if (len > SCENARIO_MAX_BYTES)
		return kha_diag_set(d, EBADMSG, "%s: larger than %d bytes", y.name,
				    SCENARIO_MAX_BYTES);
	if (!yaml_parser_initialize(&parser))
		return kha_diag_set(d, ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = kha_diag_set(
			d, EBADMSG, "%s:%zu: malformed YAML: %s%s%s", y.name,
			(parser.problem ? parser.problem_mark.line : parser.context_mark.line) + 1,
			parser.problem ? parser.problem : "parse error", parser.context ? " " : "",
			parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return r;
	}
	root = yaml_document_get_root_node(&doc);
	r = root ? parse_root(&y, sc, root) : 0; /* an empty file sets nothing */
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return r;
}

int kha_drill_scenario_load(struct kha_drill_scenario *sc, const char *path, struct kha_diag *d)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	r = kha_file_read_all(path, SCENARIO_MAX_BYTES, &text, &len, d);
	if (r < 0) {
		kha_diag_prefix(d, "cannot read scenario");
		return r == -EFBIG ? -EBADMSG : r;
	}
	r = kha_drill_scenario_parse(sc, text, len, path, d);
	free(text);
	return r;
}

/* ---------------------------------------------------------------------------------------- */

static int check_target(const char *target, struct kha_diag *d)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL, *port = NULL;
	int r = 0;

	if (strncmp(target, "tcp://", 6) == 0) {
		const char *hp = target + 6;
		const char *colon = strrchr(hp, ':');
		uint64_t v;

		if (!colon || colon == hp || strchr(hp, '/') ||
		    kha_parse_u64(colon + 1, 1, 65535, &v) < 0)
			return kha_diag_set(d, EINVAL,
					    "target: '%s' is not tcp://HOST:PORT (a port from 1 to "
					    "65535, no path)",
					    target);
		return 0;
	}
	if (strncmp(target, "http://", 7) != 0 && strncmp(target, "https://", 8) != 0)
		return kha_diag_set(d, EINVAL,
				    "target: '%s' is not a URL kha drill probes (http://, https:// "
				    "or tcp://HOST:PORT)",
				    target);
	u = curl_url();
	if (!u)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, target, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
		r = kha_diag_set(d, EINVAL, "target: '%s' does not parse as a URL", target);
	} else if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port) {
		uint64_t v;
		if (kha_parse_u64(port, 1, 65535, &v) < 0)
			r = kha_diag_set(d, EINVAL, "target: '%s': bad port '%s'", target, port);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

char *kha_drill__url_base(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;

	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		size_t n = strlen(scheme) + strlen(host) + 16;
		bool has_port = curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port;

		out = malloc(n);
		if (out)
			snprintf(out, n, "%s://%s%s%s", scheme, host, has_port ? ":" : "",
				 has_port ? port : "");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return out;
}

static int check_file(const char *what, const char *path, struct kha_diag *d)
{
	if (path && access(path, R_OK) < 0)
		return kha_diag_set(d, errno, "%s: cannot read %s: %s", what, path,
				    strerror(errno));
	return 0;
}

/* A DNS label (RFC 1123), what a namespace name must be. */
static bool dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

/* Kubernetes mode: the kubeconfig loads, the target defaults to its server. */
static int check_kube(struct kha_drill_scenario *sc, struct kha_diag *d)
{
	if (!sc->kube) {
		if (sc->kubeconfig || sc->namespace || sc->no_watch)
			return kha_diag_set(d, EINVAL, "%s: only makes sense with --kube",
					    sc->kubeconfig  ? "kubeconfig"
					    : sc->namespace ? "namespace"
							    : "no-watch");
		return 0;
	}
	if (sc->namespace && !dns_label(sc->namespace))
		return kha_diag_set(d, EINVAL,
				    "namespace: '%s' is not a namespace name (lower-case letters, "
				    "digits and '-', at most 63)",
				    sc->namespace);
	if (sc->kubeconfig) {
		struct kha_kube_load_opts lo = {.kubeconfig = sc->kubeconfig};
		kha_auto(kha_kube_config_freep) struct kha_kube_config *cfg = NULL;
		int r = kha_kube_config_load(&lo, &cfg, d);

		if (r < 0) {
			kha_diag_prefix(d, "kubeconfig");
			return r;
		}
		if (!sc->target && !(sc->target = strdup(cfg->server)))
			return kha_diag_set(d, ENOMEM, "out of memory");
	}
	if (sc->target && strncmp(sc->target, "tcp://", 6) == 0)
		return kha_diag_set(
			d, EINVAL,
			"kube: needs the apiserver's URL as --target (https://HOST:6443), "
			"not tcp://");
	return 0;
}

/* the options of write mode (--write, --endpoints, --write-prefix, --keep-keys) */
static int check_write(const struct kha_drill_scenario *sc, struct kha_diag *d)
{
	int r;

	if (sc->write && sc->kube) {
		char *base = kha_drill__url_base(sc->endpoints ? sc->endpoints : sc->target);

		if (!base)
			return kha_diag_set(d, EINVAL, "endpoints: '%s' does not parse as a URL",
					    sc->endpoints ? sc->endpoints : sc->target);
		free(base);
	} else if (sc->write) {
		struct kha_etcd_config cfg;
		char *base;

		if (strncmp(sc->target, "tcp://", 6) == 0)
			return kha_diag_set(d, EINVAL,
					    "write: needs an etcd client URL as --target "
					    "(https://HOST:2379), not tcp://");
		if (kha_etcd_config_init(&cfg) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		base = sc->endpoints ? NULL : kha_drill__url_base(sc->target);
		if (!sc->endpoints && !base) {
			kha_etcd_config_release(&cfg);
			return kha_diag_set(d, ENOMEM, "out of memory");
		}
		r = kha_etcd_config_set_endpoints(&cfg, sc->endpoints ? sc->endpoints : base, d);
		free(base);
		kha_etcd_config_release(&cfg);
		if (r < 0) {
			kha_diag_prefix(d, "endpoints");
			return r;
		}
	} else if (sc->endpoints || sc->write_prefix || sc->keep_keys) {
		return kha_diag_set(d, EINVAL, "%s: only makes sense with --write",
				    sc->endpoints      ? "endpoints"
				    : sc->write_prefix ? "write-prefix"
						       : "keep-keys");
	}
	return 0;
}

int kha_drill_scenario_check(struct kha_drill_scenario *sc, struct kha_diag *d)
{
	char a[32], b[32];
	int r;

	r = check_kube(sc, d);
	if (r < 0)
		return r;
	if (!sc->target)
		return kha_diag_set(d, EINVAL,
				    "no target (give --target URL, or target: in the "
				    "scenario)");
	r = check_target(sc->target, d);
	if (r < 0)
		return r;
	if (sc->rate < 1 || sc->rate > KHA_DRILL_MAX_RATE)
		return kha_diag_set(d, EINVAL, "rate: %u is out of range (1 to %d)", sc->rate,
				    KHA_DRILL_MAX_RATE);
	if (sc->duration_us < KHA_USEC_PER_MSEC || sc->duration_us > KHA_DRILL_MAX_DURATION_US)
		return kha_diag_set(d, EINVAL, "duration: out of range (1ms to 24h)");
	if (sc->timeout_us < KHA_USEC_PER_MSEC)
		return kha_diag_set(d, EINVAL, "timeout: must be at least 1ms");
	if (sc->step_timeout_us < KHA_USEC_PER_MSEC)
		return kha_diag_set(d, EINVAL, "step-timeout: must be at least 1ms");
	if ((r = check_file("cacert", sc->cacert, d)) < 0 ||
	    (r = check_file("cert", sc->cert, d)) < 0 || (r = check_file("key", sc->key, d)) < 0)
		return r;
	if (sc->key && !sc->cert)
		return kha_diag_set(d, EINVAL, "key: given without --cert");
	r = check_write(sc, d);
	if (r < 0)
		return r;

	/* the shorthands become steps */
	if ((sc->fault != NULL) != (sc->fault_at_us != KHA_DRILL_NONE) && !sc->n_nodes)
		return kha_diag_set(d, EINVAL, "%s",
				    sc->fault ? "fault: given without --fault-at"
					      : "fault-at: given without --fault");
	if ((sc->recover != NULL) != (sc->recover_at_us != KHA_DRILL_NONE))
		return kha_diag_set(d, EINVAL, "%s",
				    sc->recover ? "recover: given without --recover-at"
						: "recover-at: given without --recover");
	if (sc->n_nodes) {
		if (sc->fault || sc->recover || sc->n_steps)
			return kha_diag_set(d, EINVAL,
					    "rolling: cannot be combined with --fault, "
					    "--recover or scenario steps");
		if (!sc->stop || !sc->start)
			return kha_diag_set(
				d, EINVAL,
				"rolling: needs --stop \"CMD {node}\" and --start \"CMD "
				"{node}\"");
		/* rolling starts at fault-at, by default after a tenth of the drill (a baseline) */
		if (sc->fault_at_us == KHA_DRILL_NONE)
			sc->fault_at_us = KHA_MIN(sc->duration_us / 10, 10 * KHA_USEC_PER_SEC);
		if (sc->fault_at_us >= sc->duration_us)
			return kha_diag_set(d, EINVAL, "fault-at: %s is not before the end (%s)",
					    kha_format_duration(a, sizeof(a), sc->fault_at_us),
					    kha_format_duration(b, sizeof(b), sc->duration_us));
		return 0;
	}
	if (sc->stop || sc->start || sc->healthy)
		return kha_diag_set(d, EINVAL, "%s: only makes sense with --rolling NODES",
				    sc->stop	? "stop"
				    : sc->start ? "start"
						: "healthy");
	if (sc->fault) {
		r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_FAULT, sc->fault_at_us, "fault",
						sc->fault, 0, d);
		if (r < 0)
			return r;
		free(sc->fault);
		sc->fault = NULL;
		sc->fault_at_us = KHA_DRILL_NONE;
	}
	if (sc->recover) {
		r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_RECOVER, sc->recover_at_us,
						"recover", sc->recover, 0, d);
		if (r < 0)
			return r;
		free(sc->recover);
		sc->recover = NULL;
		sc->recover_at_us = KHA_DRILL_NONE;
	}
	/* insertion sort: stable and the lists are short */
	for (size_t i = 1; i < sc->n_steps; i++) {
		struct kha_drill_step t = sc->steps[i];
		size_t j = i;
		while (j > 0 && sc->steps[j - 1].at_us > t.at_us) {
			sc->steps[j] = sc->steps[j - 1];
			j--;
		}
		sc->steps[j] = t;
	}
	for (size_t i = 0; i < sc->n_steps; i++) {
		if (sc->steps[i].at_us >= sc->duration_us)
			return kha_diag_set(
				d, EINVAL,
				"step '%s' at %s is not before the end of the drill (%s)",
				sc->steps[i].name,
				kha_format_duration(a, sizeof(a), sc->steps[i].at_us),
				kha_format_duration(b, sizeof(b), sc->duration_us));
	}
	return 0;
}
