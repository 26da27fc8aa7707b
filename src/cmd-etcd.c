// SPDX-License-Identifier: MIT
/*
 * kha etcd: the subcommand table (each subcommand lives in src/cmd-etcd-<name>.c), and what
 * the subcommands share (declared in cmd-etcd.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd-common.h"
#include "cmd-etcd.h"
#include "commands.h"
#include "kha/common.h"
#include "kha/banned.h"

static const struct cmd_sub subcommands[] = {
	{"status", cmd_etcd_status_main,
	 "every member's health and a cluster verdict (exit 0/1/2)"},
	{"alarm", cmd_etcd_alarm_main, "list or disarm the NOSPACE and CORRUPT alarms"},
	{"backup", cmd_etcd_backup_main,
	 "daemon: verified snapshots on a schedule, retention, /metrics and /healthz"},
	{"check", cmd_etcd_check_main,
	 "consistency: the members' KV hashes at one revision (exit 0/1/2)"},
	{"defrag", cmd_etcd_defrag_main,
	 "rolling defragmentation: one member at a time, the leader last"},
	{"member", cmd_etcd_member_main,
	 "list, add, remove, promote, replace members, guarded against quorum loss"},
	{"snapshot", cmd_etcd_snapshot_main,
	 "save (verified, atomic), verify or restore a snapshot"},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd SUBCOMMAND [flags]\n\n"
		"etcd cluster operations, over etcd's JSON gateway (gRPC for snapshots and hashes),\n"
		"etcd 3.4 to 3.6.\n\n"
		"Subcommands:\n");
	for (size_t i = 0; i < KHA_ARRAY_SIZE(subcommands); i++)
		if (subcommands[i].summary)
			fprintf(out, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(out, "\nEvery subcommand takes etcdctl's connection flags (--endpoints, --cacert, "
		     "--cert, --key,\n--dial-timeout, --command-timeout) and ETCDCTL_* variables.\n"
		     "Run 'kha etcd SUBCOMMAND --help' for its flags, for example:\n"
		     "  kha etcd status --endpoints https://10.0.0.1:2379 --cacert ca.crt "
		     "--cert client.crt --key client.key\n");
}

int cmd_etcd_main(int argc, char **argv)
{
	return cmd_sub_run("etcd", subcommands, KHA_ARRAY_SIZE(subcommands), usage, argc, argv);
}

int cmd_etcd_config_start(const char *name, struct kha_etcd_config *cfg)
{
	struct kha_diag d = {};

	if (kha_etcd_config_init(cfg) < 0)
		return KHA_EXIT_SOFTWARE;
	if (kha_etcd_config_from_env(cfg, &d) < 0) {
		fprintf(stderr, "kha etcd %s: %s\n", name, d.msg);
		return KHA_EXIT_USAGE;
	}
	return 0;
}

int cmd_etcd_exit_code(int r, const struct kha_diag *d)
{
	int code = kha_exit_from_errno(r);

	/* whatever the transport said, an unanswered probe means "unavailable" */
	if (code == KHA_EXIT_SOFTWARE && r != -ENOMEM)
		code = KHA_EXIT_UNAVAILABLE;
	if (r == -ENOENT && strstr(d->msg, "no member named"))
		code = KHA_EXIT_USAGE;
	return code;
}
