/* SPDX-License-Identifier: MIT */
/*
 * `kha etcd` subcommands: one src/cmd-etcd-<name>.c each, listed in the table of cmd-etcd.c.
 * Adding one = its file, its line here, its entry in the table, its name in src/meson.build.
 */
#ifndef KHA_CMD_ETCD_H
#define KHA_CMD_ETCD_H

#include <stdbool.h>

#include "kha/diag.h"
#include "kha/etcd.h"

int cmd_etcd_status_main(int argc, char **argv);
int cmd_etcd_snapshot_main(int argc, char **argv);
int cmd_etcd_member_main(int argc, char **argv);
int cmd_etcd_backup_main(int argc, char **argv);
int cmd_etcd_check_main(int argc, char **argv);
int cmd_etcd_defrag_main(int argc, char **argv);
int cmd_etcd_alarm_main(int argc, char **argv);

/*
 * What the subcommands share (in cmd-etcd.c). name is the subcommand as the messages say it,
 * "kha etcd NAME: ...": "status", "snapshot save", "member add".
 */

/*
 * Sets cfg's defaults, then applies the ETCDCTL_* variables (before the flags, so that flags
 * win). Returns 0, or an exit code after printing why; cfg is to be released either way.
 */
int cmd_etcd_config_start(const char *name, struct kha_etcd_config *cfg);
/*
 * The exit code of a failed request (r a negative errno, d its diag): kha_exit_from_errno's,
 * except that what it cannot place (but ENOMEM) is a member that did not answer (69), and an
 * unknown member name (kha_etcdops_member_find) a usage error (64).
 */
int cmd_etcd_exit_code(int r, const struct kha_diag *d);

#endif
