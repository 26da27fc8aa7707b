/* SPDX-License-Identifier: MIT */
/*
 * Daemon configuration files: YAML mappings whose keys are the long flag names of the command
 * ("listen: 127.0.0.1:7443", "backend: [a:6443, b:6443]"). The file is applied through the same
 * handler as the command line, so a flag and its config key can never disagree.
 */
#ifndef KHA_CONFIG_H
#define KHA_CONFIG_H

#include <getopt.h>
#include "kha/diag.h"

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

#endif
