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
#include "kha/backup.h"
#include "kha/config.h"
#include "kha/etcd.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DEFAULT_METRICS_ADDR KHA_BACKUP_DEFAULT_METRICS_ADDR

enum {
	OPT_DIR = 0x100,
	OPT_EVERY,
	OPT_KEEP_LAST,
	OPT_KEEP_DAILY,
	OPT_COMPRESS,
	OPT_LEVEL,
	OPT_METRICS_ADDR,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_CONFIG,
	OPT_ONCE,
	OPT_TIMEOUT,
	OPT_STALL_TIMEOUT,
	OPT_RETRY_MAX,
	OPT_TRANSPORT,
};

static const struct option longopts[] = {
	KHA_ETCD_LONGOPTS,
	{"dir", required_argument, NULL, OPT_DIR},
	{"every", required_argument, NULL, OPT_EVERY},
	{"keep-last", required_argument, NULL, OPT_KEEP_LAST},
	{"keep-daily", required_argument, NULL, OPT_KEEP_DAILY},
	{"compress", no_argument, NULL, OPT_COMPRESS},
	{"level", required_argument, NULL, OPT_LEVEL},
	{"metrics-addr", required_argument, NULL, OPT_METRICS_ADDR},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"once", no_argument, NULL, OPT_ONCE},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT},
	{"retry-max", required_argument, NULL, OPT_RETRY_MAX},
	{"transport", required_argument, NULL, OPT_TRANSPORT},
	{"help", no_argument, NULL, 'h'},
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
		"Flags:\n" KHA_ETCD_OPTIONS_HELP
		"  --dir DIR                 where the backups go (created 0700 when missing)\n"
		"  --every DURATION          interval between backups (default 30m)\n"
		"  --keep-last N             the N newest backups are kept (default 24, min 1)\n"
		"  --keep-daily N            plus the newest of each of N days (default 7)\n"
		"  --compress                zstd-compress the backups (.db.zst)\n"
		"  --level N                 zstd level (default 3)\n"
		"  --retry-max DURATION      longest wait between retries (default: --every, at\n"
		"                            most 5m)\n"
		"  --timeout DURATION        limit of one snapshot transfer (default none)\n"
		"  --stall-timeout DURATION  a transfer with no byte for this long fails (30s)\n"
		"  --transport auto|grpc|gateway  how snapshots are streamed (default auto)\n"
		"  --once                    take one backup, prune, and exit (0 or the error)\n"
		"  --metrics-addr ADDR       /metrics, /healthz, /readyz, /status (default\n"
		"                            " DEFAULT_METRICS_ADDR "; \"off\" disables)\n"
		"  --log-level LEVEL         debug, info (default), warn, error\n"
		"  --log-format FORMAT       logfmt (default) or json\n"
		"  --config FILE             YAML with the same keys as the flags (flags win)\n"
		"  -h, --help                this help\n\n"
		"/healthz answers 503 when the last successful backup is older than two\n"
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

static int apply(void *userdata, int val, const char *arg, struct kha_diag *d)
{
	struct kha_backup_daemon_opts *o = userdata;
	uint64_t v;

	switch (val) {
	case OPT_DIR:
		free(o->dir);
		o->dir = strdup(arg);
		return o->dir ? 0 : kha_diag_set(d, ENOMEM, "out of memory");
	case OPT_EVERY:
	case OPT_TIMEOUT:
	case OPT_STALL_TIMEOUT:
	case OPT_RETRY_MAX:
		if (kha_parse_duration_us(arg, &v) < 0 || !v)
			return kha_diag_set(d, EINVAL, "'%s' is not a positive duration (e.g. 30m)",
					    arg);
		if (val == OPT_EVERY)
			o->every_us = v;
		else if (val == OPT_TIMEOUT)
			o->timeout_us = v;
		else if (val == OPT_STALL_TIMEOUT)
			o->stall_us = v;
		else
			o->retry_max_us = v;
		return 0;
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
	case OPT_COMPRESS:
		o->compress = true;
		return 0;
	case OPT_LEVEL:
		if (kha_parse_u64(arg, 1, 19, &v) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not 1 to 19", arg);
		o->level = (int)v;
		return 0;
	case OPT_METRICS_ADDR:
		if (strcmp(arg, "off") == 0 || !*arg) {
			o->metrics_addr[0] = '\0';
			return 0;
		}
		if (strlen(arg) >= sizeof(o->metrics_addr))
			return kha_diag_set(d, EINVAL, "address too long");
		snprintf(o->metrics_addr, sizeof(o->metrics_addr), "%s", arg);
		return 0;
	case OPT_LOG_LEVEL:
		return kha_opt_set_log_level(&o->log_level, arg, d);
	case OPT_LOG_FORMAT:
		return kha_opt_set_log_format(&o->log_format, arg, d);
	case OPT_ONCE:
		o->once = true;
		return 0;
	case OPT_TRANSPORT:
		if (kha_snapshot_transport_parse(arg, &o->transport) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not auto, grpc or gateway", arg);
		return 0;
	default:
		return kha_etcd_config_apply_opt(&o->cfg, val, arg, d);
	}
}

/*
 * The config file (when given), then the flags over it. Returns 0, an exit code, or -1 when
 * help was printed. *ret_config (may be NULL) gets the --config path (borrowed from argv).
 */
static int parse(int argc, char **argv, struct kha_backup_daemon_opts *o, const char **ret_config)
{
	const struct kha_args a = {.shortopts = "h",
				   .longopts = longopts,
				   .config_val = OPT_CONFIG,
				   .apply = apply,
				   .userdata = o};
	const char *config = NULL;
	struct kha_diag d = {};
	int code;

	if (opts_init(o, &d) < 0) {
		fprintf(stderr, "kha etcd backup: %s\n", d.msg);
		return KHA_EXIT_USAGE;
	}
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
