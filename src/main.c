// SPDX-License-Identifier: MIT
/* kha: the command table (as git.c and tmux's cmd.c): name -> cmd_<name>_main(). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd-common.h"
#include "commands.h"
#include "kha/common.h"
#include "kha/banned.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"etcd", cmd_etcd_main,
	 "etcd cluster operations: status, check, member, alarm, snapshot, backup, defrag"},
	{"proxy", cmd_proxy_main, "L4 load balancer for kube-apiservers, node-local or external"},
	{"vip", cmd_vip_main, "floating virtual IP by VRRP"},
	{"bgp", cmd_bgp_main, "announce the apiserver address by BGP (ECMP, BFD)"},
	{"elect", cmd_elect_main, "run a command only while holding leadership"},
	{"lock", cmd_lock_main, "N-slot semaphore on etcd for rolling reboots and upgrades"},
	{"certs", cmd_certs_main, "PKI with the right SANs"},
	{"audit", cmd_audit_main, "find every single point of failure in a cluster"},
	{"drill", cmd_drill_main, "break things for real and measure the outage"},
	{"lab", cmd_lab_main, "the whole HA design on one machine, with real etcd"},
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: kha COMMAND [SUBCOMMAND] [flags]\n\n"
		     "kha removes the single points of failure of a Kubernetes control plane.\n\n"
		     "Commands:\n");
	for (size_t i = 0; i < KHA_ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-7s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\nRun 'kha COMMAND --help' for the flags of a command, for example:\n"
		"  kha etcd status --endpoints https://10.0.0.1:2379 --cacert ca.crt\n"
		"\nExit codes: 0 healthy, 1 degraded, 2 critical, 64 usage, 65 bad data,\n"
		"69 service unreachable, 70 internal error, 74 I/O error, 78 bad configuration.\n");
}

int main(int argc, char **argv)
{
	int r;

	/* a peer closing a socket must be an error return, never a silent death */
	signal(SIGPIPE, SIG_IGN);
	r = cmd_usage_or_help(argc, argv, usage);
	if (r >= 0)
		return r;
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("kha %s\n", KHA_VERSION);
		return KHA_EXIT_OK;
	}
	for (size_t i = 0; i < KHA_ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].main(argc - 1, cmd_sub_argv(argv));
	fprintf(stderr, "kha: unknown command '%s' (run 'kha --help' for the list)\n", argv[1]);
	return KHA_EXIT_USAGE;
}
