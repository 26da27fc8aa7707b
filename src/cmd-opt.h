/* SPDX-License-Identifier: MIT */
/*
 * One declarative option table per command, in the manner of git's parse-options and tmux's
 * cmd_entry: each flag is written once (long name, short letter, value placeholder, help line,
 * what it sets), and the same table gives getopt_long its option array and short options,
 * applies the values (from the command line, and for a daemon from its --config file through
 * kha_args) and prints the Flags: section of the help. Flags several commands share are tables
 * of their own (etcdctl's connection flags) or macros over the command's struct (the daemon
 * flags), written once here.
 */
#ifndef KHA_CMD_OPT_H
#define KHA_CMD_OPT_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kha/config.h"
#include "kha/diag.h"

enum cmd_opt_kind {
	CMD_OPT_END = 0,
	CMD_OPT_CALL,	   /* the command's handler gets (val, arg) */
	CMD_OPT_BOOL,	   /* sets the bool at off */
	CMD_OPT_STRING,	   /* the value, borrowed from argv, into the const char * at off
			     * (command lines only: a config file's values do not outlive it) */
	CMD_OPT_DURATION,  /* a positive duration ("30s") into the uint64_t at off, in us */
	CMD_OPT_DURATION0, /* the same, 0 allowed */
	CMD_OPT_UINT,	   /* a whole number in [min, max] into the unsigned at off */
	CMD_OPT_STRDUP,	   /* a copy of the value into the char * at off (freed, then owned) */
	CMD_OPT_OUTPUT,	   /* table|json into the bool at off (true: json) */
	CMD_OPT_ETCD, /* one of etcdctl's flags (val KHA_ETCD_OPT_*): the kha_etcd_config at off */
	CMD_OPT_ADDR, /* host:port into the char[size] at off; "off" or "" clears it */
	CMD_OPT_LOG_LEVEL,  /* debug|info|warn|error into the enum kha_log_level at off */
	CMD_OPT_LOG_FORMAT, /* logfmt|json into the enum kha_log_format at off */
	CMD_OPT_CONFIG,	    /* --config FILE: read by kha_args before the flags */
	CMD_OPT_HELP,	    /* -h, --help */
	CMD_OPT_NAMED,	    /* named gets (target + off, the flag's name, value): flags a library
			* applies by name (kha drill's scenario) */
	CMD_OPT_INCLUDE,    /* the entries of include, their offsets counted from off */
	CMD_OPT_INCLUDE_HIDDEN, /* the same, taken but left out of the help (another use's flags) */
	CMD_OPT_TITLE,		/* not a flag: a heading in the help ("Health tracks:"), in help */
	CMD_OPT_STOP_AT_OPERAND, /* not a flag: the first operand ends the flags (getopt's "+"),
				  * so that a COMMAND's own flags stay its own */
};

struct cmd_opt {
	enum cmd_opt_kind kind;
	const char *name; /* without "--" */
	int short_name;	  /* 'o', or 0 */
	const char *arg;  /* the value's placeholder in the help ("DURATION"); NULL: no value */
	const char *help; /* '\n' starts a continuation line; NULL: left out of the help */
	int val;	  /* CMD_OPT_CALL, CMD_OPT_ETCD: what the handler gets */
	size_t off;	  /* where the value goes in the command's options struct */
	size_t size;	  /* CMD_OPT_ADDR: the buffer's size */
	const struct cmd_opt *include;
	uint64_t min, max; /* CMD_OPT_UINT */
	int (*named)(void *at, const char *name, const char *arg, struct kha_diag *d);
};

/* etcdctl's connection flags, relative to a struct kha_etcd_config (include them at its offset). */
extern const struct cmd_opt cmd_opts_etcd[];

#define CMD_OPT_INCLUDE_ETCD(type, field)                                                       \
	{                                                                                       \
		.kind = CMD_OPT_INCLUDE, .include = cmd_opts_etcd, .off = offsetof(type, field) \
	}
#define CMD_OPT_OUTPUT_ENTRY(type, field, text)                                                 \
	{                                                                                       \
		CMD_OPT_OUTPUT, "output", 'o', "table|json", text, 0, offsetof(type, field), 0, \
			NULL                                                                    \
	}
#define CMD_OPT_HELP_ENTRY                                                  \
	{                                                                   \
		CMD_OPT_HELP, "help", 'h', NULL, "this help", 0, 0, 0, NULL \
	}
#define CMD_OPT_TITLE_ENTRY(text)                                 \
	{                                                         \
		CMD_OPT_TITLE, NULL, 0, NULL, text, 0, 0, 0, NULL \
	}

/* --config FILE, for a command that reads its flags from a file too (cmd_opts_args) */
#define CMD_OPT_CONFIG_ENTRY                                                                     \
	{                                                                                        \
		CMD_OPT_CONFIG, "config", 0, "FILE",                                             \
			"YAML file of these flags (keys = flag names; flags win)", 0, 0, 0, NULL \
	}

/* Entries by kind: a flag of the command's handler; a typed flag into field of type. */
#define CMD_OPT_CALL_ENTRY(n, a, v, h)                                         \
	{                                                                      \
		.kind = CMD_OPT_CALL, .name = n, .arg = a, .help = h, .val = v \
	}
#define CMD_OPT_TYPED_ENTRY(k, type, n, a, field, h)                                    \
	{                                                                               \
		.kind = k, .name = n, .arg = a, .help = h, .off = offsetof(type, field) \
	}
#define CMD_OPT_UINT_ENTRY(type, n, field, lo, hi, h)                   \
	{                                                               \
		.kind = CMD_OPT_UINT, .name = n, .arg = "N", .help = h, \
		.off = offsetof(type, field), .min = lo, .max = hi      \
	}

/* --log-level and --log-format, into the enum kha_log_level and kha_log_format of type */
#define CMD_OPTS_LOG(type, level_field, format_field)                                         \
	{CMD_OPT_LOG_LEVEL,                                                                   \
	 "log-level",                                                                         \
	 0,                                                                                   \
	 "LEVEL",                                                                             \
	 "debug, info (default), warn, error",                                                \
	 0,                                                                                   \
	 offsetof(type, level_field),                                                         \
	 0,                                                                                   \
	 NULL},                                                                               \
	{                                                                                     \
		CMD_OPT_LOG_FORMAT, "log-format", 0, "FORMAT", "logfmt (default) or json", 0, \
			offsetof(type, format_field), 0, NULL                                 \
	}

/*
 * The flags every daemon takes, written once: --metrics-addr (its default in the help),
 * --log-level, --log-format, --config.
 */
#define CMD_OPTS_DAEMON(type, addr_field, default_addr, level_field, format_field)             \
	{CMD_OPT_ADDR,                                                                         \
	 "metrics-addr",                                                                       \
	 0,                                                                                    \
	 "ADDR",                                                                               \
	 "/metrics, /healthz, /readyz, /status (default\n" default_addr "; \"off\" disables)", \
	 0,                                                                                    \
	 offsetof(type, addr_field),                                                           \
	 sizeof(((type *)0)->addr_field),                                                      \
	 NULL},                                                                                \
		CMD_OPTS_LOG(type, level_field, format_field), CMD_OPT_CONFIG_ENTRY

/* A CMD_OPT_CALL handler: applies val to target; 0 or -errno with d saying why. */
typedef int (*cmd_opt_call_fn)(void *target, int val, const char *arg, struct kha_diag *d);

#define CMD_OPT_MAX 64

/* A table made ready for getopt_long (flattened, each entry with its val). */
struct cmd_opts {
	struct option longopts[CMD_OPT_MAX + 1];
	const struct cmd_opt *opt[CMD_OPT_MAX];
	size_t base[CMD_OPT_MAX]; /* the offset of the table opt[i] came from */
	bool seen[CMD_OPT_MAX];	  /* opt[i] was applied (from the command line or --config) */
	size_t n;
	char shortopts[32];
	int config_val; /* the val of --config, or 0 */
	cmd_opt_call_fn call;
	void *target; /* the options struct the values go to */
};

/* Flattens table (a programmer's error, asserted: more than CMD_OPT_MAX flags). */
void cmd_opts_build(struct cmd_opts *o, const struct cmd_opt *table, cmd_opt_call_fn call,
		    void *target);
/*
 * Applies one flag (val as getopt_long returned it) to o->target. A kha_opt_apply_fn for
 * kha_args (userdata: the struct cmd_opts). 0 or -errno with d naming the flag.
 */
int cmd_opts_apply(void *userdata, int val, const char *arg, struct kha_diag *d);
/* Whether the flag --name was applied through o (cmd_opts_apply), given a value or not. */
bool cmd_opts_seen(const struct cmd_opts *o, const char *name);
/* The struct kha_args of a daemon: --config first, then the flags, through cmd_opts_apply. */
struct kha_args cmd_opts_args(struct cmd_opts *o);
/* kha_args_scan() with table: true for -h/--help; *ret_config gets --config's value or NULL. */
bool cmd_opts_scan(const struct cmd_opt *table, int argc, char **argv, const char **ret_config);
/*
 * A daemon's configuration into target: src's --config file, then its flags, through table
 * (kha_args_reapply). The same call reads it again on SIGHUP, into a fresh target.
 */
int cmd_opts_reapply(const struct cmd_opt *table, cmd_opt_call_fn call, void *target,
		     const struct kha_args_source *src, struct kha_diag *d) KHA_WUR;

/*
 * Parses argv (argv[0] the command's name) into target. Returns -1 to go on, with optind at the
 * first operand, or the exit code: 0 after printing help(stdout) for -h/--help, KHA_EXIT_USAGE
 * after printing why on stderr: getopt's own line for an unknown flag or a missing value, then
 * "Run 'WHO --help' for the flags."; "WHO: --flag: why" for a bad value.
 */
int cmd_opts_parse(const struct cmd_opt *table, cmd_opt_call_fn call, void *target, const char *who,
		   void (*help)(FILE *out), int argc, char **argv);

/* The Flags: lines of the help: "  -o, --output table|json   report format", column 28. */
void cmd_opts_help(FILE *out, const struct cmd_opt *table);

#endif
