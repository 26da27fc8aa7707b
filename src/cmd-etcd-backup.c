// SPDX-License-Identifier: MIT
/*
 * kha etcd backup: the flags and help of the backup daemon; the daemon itself (schedule,
 * worker thread, signals, admin server, metrics) is kha_backup_daemon_run() in lib/backup.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd-etcd.h"
#include "cmd-opt.h"
#include "kha/backup.h"
#include "kha/config.h"
#include "kha/etcd.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

enum {
	OPT_DIR = 0x100,
	OPT_KEEP_LAST,
	OPT_KEEP_DAILY,
	OPT_LEVEL,
	OPT_TRANSPORT,
};

static int apply(void *target, int val, const char *arg, struct kha_diag *d);

#define OFF(field) offsetof(struct kha_backup_daemon_opts, field)

static const struct cmd_opt options[] = {
	CMD_OPT_INCLUDE_ETCD(struct kha_backup_daemon_opts, cfg),
	{CMD_OPT_CALL, "dir", 0, "DIR", "where the backups go (created 0700 when missing)", OPT_DIR,
	 0, 0, NULL},
	{CMD_OPT_DURATION, "every", 0, "DURATION", "interval between backups (default 30m)", 0,
	 OFF(every_us), 0, NULL},
	{CMD_OPT_CALL, "keep-last", 0, "N", "the N newest backups are kept (default 24, min 1)",
	 OPT_KEEP_LAST, 0, 0, NULL},
	{CMD_OPT_CALL, "keep-daily", 0, "N", "plus the newest of each of N days (default 7)",
	 OPT_KEEP_DAILY, 0, 0, NULL},
	{CMD_OPT_BOOL, "compress", 0, NULL, "zstd-compress the backups (.db.zst)", 0, OFF(compress),
	 0, NULL},
	{CMD_OPT_CALL, "level", 0, "N", "zstd level (default 3)", OPT_LEVEL, 0, 0, NULL},
	{CMD_OPT_DURATION, "retry-max", 0, "DURATION",
	 "longest wait between retries (default: --every, at\nmost 5m)", 0, OFF(retry_max_us), 0,
	 NULL},
	{CMD_OPT_DURATION, "timeout", 0, "DURATION",
	 "limit of one snapshot transfer (default none)", 0, OFF(timeout_us), 0, NULL},
	{CMD_OPT_DURATION, "stall-timeout", 0, "DURATION",
	 "a transfer with no byte for this long fails (30s)", 0, OFF(stall_us), 0, NULL},
	{CMD_OPT_CALL, "transport", 0, "auto|grpc|gateway",
	 "how snapshots are streamed (default auto)", OPT_TRANSPORT, 0, 0, NULL},
	{CMD_OPT_BOOL, "once", 0, NULL, "take one backup, prune, and exit (0 or the error)", 0,
	 OFF(once), 0, NULL},
	CMD_OPTS_DAEMON(struct kha_backup_daemon_opts, metrics_addr,
			KHA_BACKUP_DEFAULT_METRICS_ADDR, log_level, log_format),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd backup --dir DIR [--every 30m] [--keep-last 24] [--keep-daily 7] "
		"[flags]\n\n"
		"Stays in the foreground and takes a verified snapshot (see 'kha etcd snapshot\n"
		"save') every interval, from the first endpoint that answers, into DIR as\n"
		"etcd-<UTC time>-rev<revision>.db[.zst]; then prunes: the --keep-last newest plus\n"
		"the newest of each of the --keep-daily most recent days that have a backup (the\n"
		"newest backup is never deleted). While etcd is down it retries with a back-off\n"
		"doubling from 1s up to --retry-max, logs, and never exits.\n\n"
		"Run it on every master under kha elect, so exactly one takes the backups:\n"
		"  kha elect --election etcd-backup -- kha etcd backup --dir /var/backups/etcd ...\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\n/healthz answers 503 when the last successful backup is older than two\n"
		"intervals (or, before the first one, when the daemon has run for two intervals\n"
		"without one). Signals: SIGTERM/SIGINT stop (a snapshot in progress is aborted,\n"
		"its temporary file removed), SIGHUP re-reads --config.\n\n"
		"Example:\n"
		"  kha etcd backup --dir /var/backups/etcd --every 30m --keep-last 24 "
		"--keep-daily 7 --compress \\\n"
		"      --endpoints https://127.0.0.1:2379 --cacert /etc/etcd/ca.crt "
		"--cert /etc/etcd/client.crt --key /etc/etcd/client.key\n");
}

static int opts_init(struct kha_backup_daemon_opts *o, struct kha_diag *d)
{
	if (kha_backup_daemon_opts_init(o) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return kha_etcd_config_from_env(&o->cfg, d);
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct kha_backup_daemon_opts *o = target;
	uint64_t v;

	switch (val) {
	case OPT_DIR:
		return kha_opt_set_str(&o->dir, arg, d);
	case OPT_KEEP_LAST:
	case OPT_KEEP_DAILY:
		if (kha_parse_u64(arg, val == OPT_KEEP_LAST ? 1 : 0, 100000, &v) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not a count (%s to 100000)", arg,
					    val == OPT_KEEP_LAST ? "1" : "0");
		if (val == OPT_KEEP_LAST)
			o->retention.keep_last = (size_t)v;
		else
			o->retention.keep_daily = (size_t)v;
		return 0;
	case OPT_LEVEL:
		if (kha_parse_u64(arg, 1, 19, &v) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not 1 to 19", arg);
		o->level = (int)v;
		return 0;
	default: /* OPT_TRANSPORT */
		if (kha_snapshot_transport_parse(arg, &o->transport) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not auto, grpc or gateway", arg);
		return 0;
	}
}

/*
 * The config file (when given), then the flags over it. Returns 0, an exit code, or -1 when
 * help was printed. *ret_config (may be NULL) gets the --config path (borrowed from argv).
 */
static int parse(int argc, char **argv, struct kha_backup_daemon_opts *o, const char **ret_config)
{
	struct cmd_opts opts;
	struct kha_args a;
	const char *config = NULL;
	struct kha_diag d = {};
	int code;

	if (opts_init(o, &d) < 0) {
		fprintf(stderr, "kha etcd backup: %s\n", d.msg);
		return KHA_EXIT_USAGE;
	}
	cmd_opts_build(&opts, options, apply, o);
	a = cmd_opts_args(&opts);
	if (kha_args_scan(&a, argc, argv, &config)) {
		usage(stdout);
		return -1;
	}
	code = kha_args_apply(&a, config, argc, argv, &d);
	if (code != 0) {
		fprintf(stderr, "kha etcd backup: %s%s\n", d.msg,
			code == KHA_EXIT_USAGE ? " (run 'kha etcd backup --help')" : "");
		return code;
	}
	if (optind < argc) {
		fprintf(stderr,
			"kha etcd backup: unexpected argument '%s' (run 'kha etcd backup "
			"--help')\n",
			argv[optind]);
		return KHA_EXIT_USAGE;
	}
	if (!o->dir || !*o->dir) {
		fprintf(stderr, "kha etcd backup: --dir is required (run 'kha etcd backup "
				"--help')\n");
		return KHA_EXIT_USAGE;
	}
	if (ret_config)
		*ret_config = config;
	return 0;
}

/* SIGHUP: the same command line and --config file read again, as at the start. */
struct reload_args {
	int argc;
	char **argv;
};

static int reload(void *userdata, struct kha_backup_daemon_opts *fresh)
{
	const struct reload_args *ra = userdata;

	return parse(ra->argc, ra->argv, fresh, NULL);
}

int cmd_etcd_backup_main(int argc, char **argv)
{
	struct reload_args ra = {.argc = argc, .argv = argv};
	struct kha_backup_daemon_opts o;
	const char *config = NULL;
	struct kha_diag d = {};
	int code;

	code = parse(argc, argv, &o, &config);
	if (code != 0) {
		kha_backup_daemon_opts_release(&o);
		return code < 0 ? KHA_EXIT_OK : code;
	}
	kha_log_setup(o.log_level, o.log_format);
	code = kha_backup_daemon_run(&o, config, reload, &ra, &d);
	if (d.msg[0])
		fprintf(stderr, "kha etcd backup: %s\n", d.msg);
	return code;
}
