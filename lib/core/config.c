// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <string.h>
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
	FILE *f;
	const struct option *key = NULL;
	int depth = 0, r = 0;
	bool in_seq = false, done = false;

	f = fopen(path, "re");
	if (!f)
		return kha_diag_set(d, errno, "cannot read config %s: %s", path, strerror(errno));
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
