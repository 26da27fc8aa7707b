/* SPDX-License-Identifier: MIT */
/*
 * Daemon configuration files: YAML mappings whose keys are the long flag names of the command
 * ("listen: 127.0.0.1:7443", "backend: [a:6443, b:6443]"). The file is applied through the same
 * handler as the command line, so a flag and its config key can never disagree.
 */
#ifndef KHA_CONFIG_H
#define KHA_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include "kha/diag.h"
#include "kha/log.h"

/* Applies one option: val is the struct option's val, arg its value (NULL for a flag). */
typedef int (*kha_opt_apply_fn)(void *userdata, int val, const char *arg, struct kha_diag *d);

/*
 * Reads the YAML file at path and calls apply for each key, in file order. A sequence value
 * calls apply once per element; a boolean flag (no_argument) set to true calls it with arg NULL,
 * false skips it. Keys not in longopts, nested mappings and malformed YAML are errors naming the
 * file and line. Returns 0, -ENOENT/-EACCES (unreadable), -EINVAL (bad content) or the
 * handler's error.
 */
int kha_config_load(const char *path, const struct option *longopts, kha_opt_apply_fn apply,
		    void *userdata, struct kha_diag *d) KHA_WUR;

/*
 * The command line of a daemon: `--config FILE` first, then every other flag over it, so a flag
 * always wins over its config key. The same pass runs again on a reload (SIGHUP), on a fresh
 * options struct, to produce the new configuration.
 */
struct kha_args {
	const char *shortopts; /* getopt_long's: "h", or "+h..." to stop at COMMAND */
	const struct option *longopts;
	int config_val; /* the val of --config in longopts */
	kha_opt_apply_fn apply;
	void *userdata;
};

/* Scans argv for -h/--help (returns true) and --config (*config: its value or NULL). */
bool kha_args_scan(const struct kha_args *a, int argc, char **argv, const char **config);

/*
 * Applies the config file (when not NULL), then every flag of argv but --config and -h.
 * Returns 0 with optind at the first operand, KHA_EXIT_CONFIG (the file: unreadable or bad) or
 * KHA_EXIT_USAGE (a bad flag or value), with d saying what and where ("--flag: ..."). Prints
 * nothing.
 */
int kha_args_apply(const struct kha_args *a, const char *config, int argc, char **argv,
		   struct kha_diag *d) KHA_WUR;

/* Where a daemon's configuration came from: read again, the same way, on a reload. */
struct kha_args_source {
	int argc;
	char **argv;
	const char *config; /* the --config path, or NULL */
};

/* kha_args_apply() of src with userdata in place of a->userdata (a fresh options struct). */
int kha_args_reapply(const struct kha_args *a, void *userdata, const struct kha_args_source *src,
		     struct kha_diag *d) KHA_WUR;

/* The long name of the option whose val is val ("?" if none). */
const char *kha_args_name(const struct option *longopts, int val);

/*
 * Value setters for apply handlers, each with a one-line error in d naming the bad value.
 * kha_opt_set_str: replaces *dst with a copy of arg (-ENOMEM). kha_opt_set_duration: "500ms",
 * "2s", "1m30s" (0 allowed when zero_ok). kha_opt_set_uint: a whole number in [min, max].
 * kha_opt_set_addr: a host:port string that fits size bytes.
 */
int kha_opt_set_str(char **dst, const char *arg, struct kha_diag *d) KHA_WUR;
int kha_opt_set_duration(uint64_t *dst, const char *arg, bool zero_ok, struct kha_diag *d) KHA_WUR;
int kha_opt_set_uint(unsigned *dst, const char *arg, uint64_t min, uint64_t max,
		     struct kha_diag *d) KHA_WUR;
int kha_opt_set_addr(char *dst, size_t size, const char *arg, struct kha_diag *d) KHA_WUR;
/* --log-level (debug|info|warn|error), --log-format (logfmt|json), -o (table|json) */
int kha_opt_set_log_level(enum kha_log_level *dst, const char *arg, struct kha_diag *d) KHA_WUR;
int kha_opt_set_log_format(enum kha_log_format *dst, const char *arg, struct kha_diag *d) KHA_WUR;
int kha_opt_set_output(bool *json, const char *arg, struct kha_diag *d) KHA_WUR;

#endif
