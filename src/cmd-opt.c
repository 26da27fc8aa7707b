// SPDX-License-Identifier: MIT
/* The option tables of the commands: see cmd-opt.h. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "cmd-opt.h"
#include "kha/etcd.h"
#include "kha/parse.h"
#include "kha/banned.h"

/* the val of a flag the table applies itself (no handler, no short letter): this + its index */
#define AUTO_VAL 0x10000
/* the help column */
#define HELP_COL 28

const struct cmd_opt cmd_opts_etcd[] = {
	{CMD_OPT_ETCD, "endpoints", 0, "URLS",
	 "etcd client URLs, comma-separated\n(default 127.0.0.1:2379: https:// with --cacert or "
	 "--cert,\nelse http://; env ETCDCTL_ENDPOINTS)",
	 KHA_ETCD_OPT_ENDPOINTS, 0, 0, NULL},
	{CMD_OPT_ETCD, "cacert", 0, "FILE", "CA bundle that signed the etcd server certificates",
	 KHA_ETCD_OPT_CACERT, 0, 0, NULL},
	{CMD_OPT_ETCD, "cert", 0, "FILE", "client certificate for --client-cert-auth clusters",
	 KHA_ETCD_OPT_CERT, 0, 0, NULL},
	{CMD_OPT_ETCD, "key", 0, "FILE", "private key of --cert", KHA_ETCD_OPT_KEY, 0, 0, NULL},
	{CMD_OPT_ETCD, "dial-timeout", 0, "DURATION",
	 "connect + TLS handshake timeout (default 2s)", KHA_ETCD_OPT_DIAL_TIMEOUT, 0, 0, NULL},
	{CMD_OPT_ETCD, "command-timeout", 0, "DURATION",
	 "timeout of each request (default 5s)\n(env ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY,\n"
	 "ETCDCTL_DIAL_TIMEOUT, ETCDCTL_COMMAND_TIMEOUT)",
	 KHA_ETCD_OPT_COMMAND_TIMEOUT, 0, 0, NULL},
	{},
};

static void add(struct cmd_opts *o, const struct cmd_opt *t, size_t base)
{
	for (; t->kind != CMD_OPT_END; t++) {
		struct option *lo;
		int val;

		if (t->kind == CMD_OPT_INCLUDE || t->kind == CMD_OPT_INCLUDE_HIDDEN) {
			add(o, t->include, base + t->off);
			continue;
		}
		if (t->kind == CMD_OPT_STOP_AT_OPERAND) {
			size_t len = strlen(o->shortopts);

			assert(len + 2 <= sizeof(o->shortopts));
			memmove(o->shortopts + 1, o->shortopts, len + 1);
			o->shortopts[0] = '+';
			continue;
		}
		if (t->kind == CMD_OPT_TITLE)
			continue;
		assert(o->n < CMD_OPT_MAX);
		if (t->short_name)
			val = t->short_name;
		else if (t->kind == CMD_OPT_CALL || t->kind == CMD_OPT_ETCD)
			val = t->val;
		else
			val = AUTO_VAL + (int)o->n;
		lo = &o->longopts[o->n];
		*lo = (struct option){t->name, t->arg ? required_argument : no_argument, NULL, val};
		if (t->kind == CMD_OPT_CONFIG)
			o->config_val = val;
		if (t->short_name) {
			size_t len = strlen(o->shortopts);

			assert(len + 3 <= sizeof(o->shortopts));
			o->shortopts[len] = (char)t->short_name;
			if (t->arg)
				o->shortopts[len + 1] = ':';
		}
		o->opt[o->n] = t;
		o->base[o->n++] = base;
	}
}

void cmd_opts_build(struct cmd_opts *o, const struct cmd_opt *table, cmd_opt_call_fn call,
		    void *target)
{
	memset(o, 0, sizeof(*o));
	o->call = call;
	o->target = target;
	add(o, table, 0);
}

struct kha_args cmd_opts_args(struct cmd_opts *o)
{
	return (struct kha_args){.shortopts = o->shortopts,
				 .longopts = o->longopts,
				 .config_val = o->config_val,
				 .apply = cmd_opts_apply,
				 .userdata = o};
}

bool cmd_opts_scan(const struct cmd_opt *table, int argc, char **argv, const char **ret_config)
{
	struct cmd_opts o;
	struct kha_args a;

	cmd_opts_build(&o, table, NULL, NULL);
	a = cmd_opts_args(&o);
	return kha_args_scan(&a, argc, argv, ret_config);
}

int cmd_opts_reapply(const struct cmd_opt *table, cmd_opt_call_fn call, void *target,
		     const struct kha_args_source *src, struct kha_diag *d)
{
	struct cmd_opts o;
	struct kha_args a;

	cmd_opts_build(&o, table, call, target);
	a = cmd_opts_args(&o);
	return kha_args_reapply(&a, &o, src, d);
}

bool cmd_opts_seen(const struct cmd_opts *o, const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (o->seen[i] && strcmp(o->longopts[i].name, name) == 0)
			return true;
	return false;
}

int cmd_opts_apply(void *userdata, int val, const char *arg, struct kha_diag *d)
{
	struct cmd_opts *o = userdata;
	const struct cmd_opt *t = NULL;
	char *at = NULL;

	for (size_t i = 0; i < o->n; i++) {
		if (o->longopts[i].val != val)
			continue;
		o->seen[i] = true; /* and its aliases (handler flags of the same val) */
		if (!t) {
			t = o->opt[i];
			at = (char *)o->target + o->base[i] + t->off;
		}
	}
	if (!t)
		return kha_diag_set(d, EINVAL, "unknown flag");
	switch (t->kind) {
	case CMD_OPT_CALL:
		return o->call(o->target, val, arg, d);
	case CMD_OPT_NAMED:
		return t->named(at, t->name, arg, d);
	case CMD_OPT_BOOL:
		*(bool *)at = true;
		return 0;
	case CMD_OPT_STRING:
		*(const char **)at = arg;
		return 0;
	case CMD_OPT_DURATION:
	case CMD_OPT_DURATION0:
		return kha_opt_set_duration((uint64_t *)at, arg, t->kind == CMD_OPT_DURATION0, d);
	case CMD_OPT_UINT:
		return kha_opt_set_uint((unsigned *)at, arg, t->min, t->max, d);
	case CMD_OPT_STRDUP:
		return kha_opt_set_str((char **)at, arg, d);
	case CMD_OPT_OUTPUT:
		return kha_opt_set_output((bool *)at, arg, d);
	case CMD_OPT_ETCD:
		return kha_etcd_config_apply_opt((struct kha_etcd_config *)at, val, arg, d);
	case CMD_OPT_ADDR:
		if (!*arg || strcmp(arg, "off") == 0) {
			*at = '\0';
			return 0;
		}
		return kha_opt_set_addr(at, t->size, arg, d);
	case CMD_OPT_LOG_LEVEL:
		return kha_opt_set_log_level((enum kha_log_level *)at, arg, d);
	case CMD_OPT_LOG_FORMAT:
		return kha_opt_set_log_format((enum kha_log_format *)at, arg, d);
	default: /* --config and --help: read before the flags */
		return 0;
	}
}

int cmd_opts_parse(const struct cmd_opt *table, cmd_opt_call_fn call, void *target, const char *who,
		   void (*help)(FILE *out), int argc, char **argv)
{
	struct cmd_opts o;
	int c;

	cmd_opts_build(&o, table, call, target);
	optind = 1;
	while ((c = getopt_long(argc, argv, o.shortopts, o.longopts, NULL)) != -1) {
		struct kha_diag d = {};

		if (c == 'h') {
			help(stdout);
			return KHA_EXIT_OK;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr, "Run '%s --help' for the flags.\n", who);
			return KHA_EXIT_USAGE;
		}
		if (cmd_opts_apply(&o, c, optarg, &d) < 0) {
			if (strncmp(d.msg, "--", 2) != 0)
				kha_diag_prefix(&d, "--%s", kha_args_name(o.longopts, c));
			fprintf(stderr, "%s: %s\n", who, d.msg);
			return KHA_EXIT_USAGE;
		}
	}
	return -1;
}

static void help_one(FILE *out, const struct cmd_opt *t)
{
	char left[96];
	const char *h = t->help, *nl;
	int n;

	if (t->short_name)
		n = snprintf(left, sizeof(left), "  -%c, --%s%s%s", t->short_name, t->name,
			     t->arg ? " " : "", t->arg ? t->arg : "");
	else
		n = snprintf(left, sizeof(left), "  --%s%s%s", t->name, t->arg ? " " : "",
			     t->arg ? t->arg : "");
	fprintf(out, n < HELP_COL ? "%-*s" : "%*s  ", HELP_COL, left);
	for (;; h = nl + 1) {
		nl = strchr(h, '\n');
		fprintf(out, "%.*s\n", nl ? (int)(nl - h) : (int)strlen(h), h);
		if (!nl)
			break;
		fprintf(out, "%*s", HELP_COL, "");
	}
}

void cmd_opts_help(FILE *out, const struct cmd_opt *table)
{
	for (const struct cmd_opt *t = table; t->kind != CMD_OPT_END; t++) {
		if (t->kind == CMD_OPT_INCLUDE)
			cmd_opts_help(out, t->include);
		else if (t->kind == CMD_OPT_TITLE)
			fprintf(out, "%s\n", t->help);
		else if (t->help)
			help_one(out, t);
	}
}
