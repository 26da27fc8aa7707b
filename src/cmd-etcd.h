/* SPDX-License-Identifier: MIT */
/*
 * `kha etcd` subcommands: one src/cmd-etcd-<name>.c each, listed in the table of cmd-etcd.c.
 * Adding one = its file, its line here, its entry in the table, its name in src/meson.build.
 */
#ifndef KHA_CMD_ETCD_H
#define KHA_CMD_ETCD_H

int cmd_etcd_status_main(int argc, char **argv);
int cmd_etcd_snapshot_main(int argc, char **argv);
int cmd_etcd_member_main(int argc, char **argv);
int cmd_etcd_backup_main(int argc, char **argv);
int cmd_etcd_check_main(int argc, char **argv);
int cmd_etcd_defrag_main(int argc, char **argv);

#endif
