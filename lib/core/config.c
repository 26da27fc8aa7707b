// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "kha/config.h"
#include "kha/parse.h"

static const struct option *find_opt(const struct option *opts, const char *name)
{
	for (; opts->name; opts++)
		if (strcmp(opts->name, name) == 0)
			return opts;
	return NULL;
}

static int apply_one(const char *path, const yaml_event_t *ev, const struct option *opt,
		     kha_opt_apply_fn apply, void *userdata, struct kha_diag *d)
{
	const char *value = (const char *)ev->data.scalar.value;
	size_t line = ev->start_mark.line + 1;
	bool on;
	int r;

	if (opt->has_arg == no_argument) {
		if (kha_parse_bool(value, &on) < 0)
			return kha_diag_set(d, EINVAL,
					    "%s:%zu: %s: expected true or false, got '%s'", path,
					    line, opt->name, value);
		if (!on)
			return 0;
		value = NULL;
	}
	kha_diag_clear(d);
	r = apply(userdata, opt->val, value, d);
	if (r < 0) {
		if (kha_diag_empty(d))
			kha_diag_set(d, r, "invalid value '%s'", value ? value : "true");
		kha_diag_prefix(d, "%s:%zu: %s", path, line, opt->name);
	}
	return r;
}

int kha_config_load(const char *path, const struct option *longopts, kha_opt_apply_fn apply,
		    void *userdata, struct kha_diag *d)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct stat st;
	FILE *f;
	const struct option *key = NULL;
	int depth = 0, r = 0;
	bool in_seq = false, done = false;

	f = fopen(path, "re");
	if (!f)
		return kha_diag_set(d, errno, "cannot read config %s: %s", path, strerror(errno));
	/* a directory opens, then reads as what libyaml calls an "input error" */
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return kha_diag_set(d, EISDIR,
				    "cannot read config %s: is a directory (give a YAML file)",
				    path);
	}
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	yaml_parser_set_input_file(&parser, f);
	while (!done && r == 0) {
		if (!yaml_parser_parse(&parser, &ev)) {
			r = kha_diag_set(d, EINVAL, "%s:%zu: malformed YAML: %s", path,
					 parser.problem_mark.line + 1,
					 parser.problem ? parser.problem : "parse error");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_MAPPING_START_EVENT:
			if (++depth > 1)
				r = kha_diag_set(d, EINVAL,
						 "%s:%zu: nested mappings are not allowed", path,
						 ev.start_mark.line + 1);
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		case YAML_SEQUENCE_START_EVENT:
			if (!key || in_seq)
				r = kha_diag_set(d, EINVAL, "%s:%zu: unexpected list", path,
						 ev.start_mark.line + 1);
			in_seq = true;
			break;
		case YAML_SEQUENCE_END_EVENT:
			in_seq = false;
			key = NULL;
			break;
		case YAML_SCALAR_EVENT:
			if (depth != 1) {
				/* an empty document is fine, a bare scalar is not */
				r = kha_diag_set(d, EINVAL,
						 "%s:%zu: expected a mapping of flag names", path,
						 ev.start_mark.line + 1);
			} else if (!key) {
				key = find_opt(longopts, (const char *)ev.data.scalar.value);
				if (!key || strcmp(key->name, "config") == 0 ||
				    strcmp(key->name, "help") == 0)
					r = kha_diag_set(d, EINVAL, "%s:%zu: unknown key '%s'",
							 path, ev.start_mark.line + 1,
							 (const char *)ev.data.scalar.value);
			} else {
				r = apply_one(path, &ev, key, apply, userdata, d);
				if (!in_seq)
					key = NULL;
			}
			break;
		case YAML_ALIAS_EVENT:
			r = kha_diag_set(d, EINVAL, "%s:%zu: YAML aliases are not supported", path,
					 ev.start_mark.line + 1);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return r;
}

/* ---- the command line of a daemon ---- */

bool kha_args_scan(const struct kha_args *a, int argc, char **argv, const char **config)
{
	bool help = false;
	int c;

	*config = NULL;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, a->shortopts, a->longopts, NULL)) != -1) {
		if (c == 'h')
			help = true;
		else if (c == a->config_val)
			*config = optarg;
	}
	opterr = 1;
	optind = 1;
	return help;
}

const char *kha_args_name(const struct option *longopts, int val)
{
	for (const struct option *o = longopts; o->name; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

int kha_args_apply(const struct kha_args *a, const char *config, int argc, char **argv,
		   struct kha_diag *d)
{
	int c, r;

	if (config && kha_config_load(config, a->longopts, a->apply, a->userdata, d) < 0)
		return KHA_EXIT_CONFIG;
	opterr = 0; /* getopt's own message would not say what to do next: d does */
	optind = 1;
	while ((c = getopt_long(argc, argv, a->shortopts, a->longopts, NULL)) != -1) {
		if (c == a->config_val || c == 'h')
			continue;
		if (c == '?' || c == ':') {
			const struct option *o = NULL;
			for (const struct option *k = a->longopts; optopt && k->name && !o; k++)
				if (k->val == optopt)
					o = k;
			if (o && o->has_arg == required_argument)
				kha_diag_set(d, EINVAL, "bad flag: --%s needs a value", o->name);
			else if (o && o->has_arg == no_argument &&
				 strncmp(argv[optind - 1], "--", 2) == 0)
				/* "--flag=value" of a flag without one */
				kha_diag_set(d, EINVAL, "bad flag: --%s takes no value", o->name);
			else if (optopt > 0 && optopt <= 0xff)
				kha_diag_set(d, EINVAL, "bad flag '-%c'", optopt);
			else
				kha_diag_set(d, EINVAL, "bad flag '%s'", argv[optind - 1]);
			opterr = 1;
			return KHA_EXIT_USAGE;
		}
		kha_diag_clear(d);
		r = a->apply(a->userdata, c, optarg, d);
		if (r < 0) {
			if (kha_diag_empty(d))
				kha_diag_set(d, -r, "invalid value '%s'", optarg ? optarg : "");
			if (strncmp(d->msg, "--", 2) != 0)
				kha_diag_prefix(d, "--%s", kha_args_name(a->longopts, c));
			opterr = 1;
			return KHA_EXIT_USAGE;
		}
	}
	opterr = 1;
	return 0;
}

int kha_args_reapply(const struct kha_args *a, void *userdata, const struct kha_args_source *src,
		     struct kha_diag *d)
{
	struct kha_args copy = *a;

	copy.userdata = userdata;
	return kha_args_apply(&copy, src->config, src->argc, src->argv, d);
}

/* ---- value setters ---- */

int kha_opt_set_str(char **dst, const char *arg, struct kha_diag *d)
{
	char *s = strdup(arg ? arg : "");

	if (!s)
		return kha_diag_set(d, ENOMEM, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

int kha_opt_set_duration(uint64_t *dst, const char *arg, bool zero_ok, struct kha_diag *d)
{
	uint64_t us;

	if (!arg || kha_parse_duration_us(arg, &us) < 0 || (!zero_ok && us == 0))
		return kha_diag_set(d, EINVAL, "'%s' is not a %sduration (e.g. 500ms, 2s, 1m30s)",
				    arg ? arg : "", zero_ok ? "" : "positive ");
	*dst = us;
	return 0;
}

int kha_opt_set_uint(unsigned *dst, const char *arg, uint64_t min, uint64_t max, struct kha_diag *d)
{
	uint64_t v;

	if (!arg || kha_parse_u64(arg, min, max, &v) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not a number in %llu..%llu", arg ? arg : "",
				    (unsigned long long)min, (unsigned long long)max);
	*dst = (unsigned)v;
	return 0;
}

int kha_opt_set_addr(char *dst, size_t size, const char *arg, struct kha_diag *d)
{
	if (!arg || strlen(arg) >= size)
		return kha_diag_set(d, EINVAL, "address '%s' is too long", arg ? arg : "");
	snprintf(dst, size, "%s", arg);
	return 0;
}

int kha_opt_set_log_level(enum kha_log_level *dst, const char *arg, struct kha_diag *d)
{
	if (!arg || kha_log_parse_level(arg, dst) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not debug, info, warn or error",
				    arg ? arg : "");
	return 0;
}

int kha_opt_set_log_format(enum kha_log_format *dst, const char *arg, struct kha_diag *d)
{
	if (!arg || kha_log_parse_format(arg, dst) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not logfmt or json", arg ? arg : "");
	return 0;
}

int kha_opt_set_output(bool *json, const char *arg, struct kha_diag *d)
{
	if (!arg || kha_parse_output(arg, json) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not table or json", arg ? arg : "");
	return 0;
}
