/* SPDX-License-Identifier: MIT */
/* The command table's entry points: one per src/cmd-<name>.c. */
#ifndef KHA_COMMANDS_H
#define KHA_COMMANDS_H

int cmd_etcd_main(int argc, char **argv);
int cmd_lock_main(int argc, char **argv);
int cmd_proxy_main(int argc, char **argv);
int cmd_vip_main(int argc, char **argv);
int cmd_bgp_main(int argc, char **argv);
int cmd_elect_main(int argc, char **argv);
int cmd_certs_main(int argc, char **argv);
int cmd_audit_main(int argc, char **argv);
int cmd_drill_main(int argc, char **argv);
int cmd_lab_main(int argc, char **argv);

#endif
