// SPDX-License-Identifier: MIT
/*
 * kha etcd backup: a foreground daemon taking verified snapshots on a schedule, pruning by
 * retention, retrying with capped back-off while etcd is down, with Prometheus metrics and a
 * /healthz that fails when the last success is older than two intervals.
 *
 * Threads: the main thread runs the event loop (timer, signals, admin HTTP server); one worker
 * thread takes the snapshots (blocking network and disk I/O) when the loop asks it to and
 * posts each result back to the loop. State is owned by the loop thread; the worker only
 * reads the options (under the mutex, since SIGHUP may replace them).
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>

#include "cmd-etcd.h"
#include "kha/backup.h"
#include "kha/config.h"
#include "kha/etcd.h"
#include "kha/file.h"
#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DEFAULT_METRICS_ADDR "127.0.0.1:9479"
#define DEFAULT_EVERY_US     (30 * 60 * KHA_USEC_PER_SEC)
#define DEFAULT_RETRY_US     (1 * KHA_USEC_PER_SEC)
#define MAX_RETRY_CAP_US     (5 * 60 * KHA_USEC_PER_SEC)

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

struct opts {
	struct kha_etcd_config cfg;
	char *dir;
	uint64_t every_us;
	struct kha_retention retention;
	bool compress;
	int level;
	char metrics_addr[128];
	enum kha_log_level log_level;
	enum kha_log_format log_format;
	bool once;
	uint64_t timeout_us;
	uint64_t stall_us;
	uint64_t retry_max_us;
	enum kha_snapshot_transport transport;
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

static void opts_release(struct opts *o)
{
	kha_etcd_config_release(&o->cfg);
	free(o->dir);
	memset(o, 0, sizeof(*o));
}

static int opts_init(struct opts *o, struct kha_diag *d)
{
	memset(o, 0, sizeof(*o));
	o->every_us = DEFAULT_EVERY_US;
	o->retention = (struct kha_retention){.keep_last = 24, .keep_daily = 7};
	o->log_level = KHA_LOG_INFO;
	o->log_format = KHA_LOG_LOGFMT;
	snprintf(o->metrics_addr, sizeof(o->metrics_addr), "%s", DEFAULT_METRICS_ADDR);
	if (kha_etcd_config_init(&o->cfg) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return kha_etcd_config_from_env(&o->cfg, d);
}

static int apply(void *userdata, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = userdata;
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
static int parse(int argc, char **argv, struct opts *o, const char **ret_config)
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
	if (!o->retry_max_us)
		o->retry_max_us = KHA_MIN(o->every_us, MAX_RETRY_CAP_US);
	if (ret_config)
		*ret_config = config;
	return 0;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

struct daemon;

struct outcome {
	struct daemon *dm;
	int r;
	char error[KHA_DIAG_MAX];
	struct kha_backup_result res;
	uint64_t started_us; /* when the attempt started (monotonic) */
	uint64_t duration_us;
};

struct daemon {
	struct opts *o; /* guarded by lock (SIGHUP swaps it) */
	int argc;
	char **argv;
	const char *config;
	struct kha_loop *loop;
	struct kha_loop_source *timer;
	struct kha_httpd *httpd;
	struct kha_metrics *metrics;
	struct kha_metric *m_last_success, *m_last_duration, *m_last_size, *m_last_revision;
	struct kha_metric *m_success, *m_failures, *m_pruned, *m_files, *m_consecutive;
	struct kha_metric *m_up;
	/* worker */
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool run;      /* a backup is requested */
	bool stopping; /* the worker must exit */
	volatile sig_atomic_t cancel;
	/* loop thread only */
	bool busy;
	uint64_t started_us;
	uint64_t last_success_us; /* monotonic, 0 = none yet */
	uint64_t last_success_wall_us;
	unsigned failures; /* consecutive */
	uint64_t successes;
	char last_error[KHA_DIAG_MAX];
	char last_file[256];
	int64_t last_revision;
	uint64_t last_size;
	int exit_code; /* --once */
};

static void on_result(struct kha_loop *loop, void *userdata);

/* What one backup needs, copied under the lock so SIGHUP can replace the options meanwhile. */
struct job {
	struct kha_etcd_config cfg;
	struct kha_backup_opts bo;
	char *dir;
};

static int job_take(struct job *j, const struct opts *o, const volatile sig_atomic_t *cancel)
{
	memset(j, 0, sizeof(*j));
	j->dir = strdup(o->dir);
	if (!j->dir || kha_etcd_config_copy(&j->cfg, &o->cfg) < 0) {
		free(j->dir);
		return -ENOMEM;
	}
	j->bo = (struct kha_backup_opts){
		.cfg = &j->cfg,
		.dir = j->dir,
		.compress = o->compress,
		.compress_level = o->level,
		.transport = o->transport,
		.timeout_us = o->timeout_us,
		.stall_us = o->stall_us,
		.retention = o->retention,
		.cancel = cancel,
	};
	return 0;
}

static void job_release(struct job *j)
{
	kha_etcd_config_release(&j->cfg);
	free(j->dir);
}

static void *worker_main(void *arg)
{
	struct daemon *dm = arg;

	for (;;) {
		struct outcome *out;
		struct kha_diag d = {};
		struct job job;
		int taken;

		pthread_mutex_lock(&dm->lock);
		while (!dm->run && !dm->stopping)
			pthread_cond_wait(&dm->cond, &dm->lock);
		if (dm->stopping) {
			pthread_mutex_unlock(&dm->lock);
			return NULL;
		}
		dm->run = false;
		taken = job_take(&job, dm->o, &dm->cancel);
		pthread_mutex_unlock(&dm->lock);

		out = calloc(1, sizeof(*out));
		if (out) {
			out->dm = dm;
			out->started_us = kha_now_us();
			if (taken < 0) {
				out->r = -ENOMEM;
				snprintf(out->error, sizeof(out->error), "out of memory");
			} else {
				out->r = kha_backup_once(&job.bo, &out->res, &d);
				snprintf(out->error, sizeof(out->error), "%s", d.msg);
			}
			out->duration_us = kha_now_us() - out->started_us;
		}
		if (taken == 0)
			job_release(&job);
		if (!out || kha_loop_post(dm->loop, on_result, out) < 0) {
			free(out);
			kha_error("cannot report a backup result", "error=%s", "out of memory");
		}
	}
}

static void request_backup(struct daemon *dm)
{
	if (dm->busy)
		return;
	dm->busy = true;
	pthread_mutex_lock(&dm->lock);
	dm->run = true;
	pthread_cond_signal(&dm->cond);
	pthread_mutex_unlock(&dm->lock);
}

static void on_timer(struct kha_loop_source *src, void *userdata)
{
	(void)src;
	request_backup(userdata);
}

static void on_result(struct kha_loop *loop, void *userdata)
{
	struct outcome *out = userdata;
	struct daemon *dm = out->dm;
	const struct kha_backup_result *res = &out->res;
	char q[KHA_DIAG_MAX + 64], dur[32], size[32], qsize[40];
	uint64_t next, now = kha_now_us();

	(void)loop;
	dm->busy = false;
	if (out->r == 0) {
		const char *path = res->save.path, *base = strrchr(path, '/');

		dm->failures = 0;
		dm->successes++;
		dm->last_success_us = out->started_us + out->duration_us;
		dm->last_success_wall_us = kha_wall_us();
		dm->last_revision = res->save.info.revision;
		dm->last_size = res->save.info.file_size;
		dm->last_error[0] = '\0';
		snprintf(dm->last_file, sizeof(dm->last_file), "%s", base ? base + 1 : path);
		kha_metric_set(dm->m_last_success, (double)dm->last_success_wall_us / 1e6);
		kha_metric_set(dm->m_last_duration, (double)out->duration_us / 1e6);
		kha_metric_set(dm->m_last_size, (double)dm->last_size);
		kha_metric_set(dm->m_last_revision, (double)dm->last_revision);
		kha_metric_add(dm->m_success, 1);
		kha_metric_add(dm->m_pruned, res->pruned);
		kha_metric_set(dm->m_files, (double)res->kept);
		kha_metric_set(dm->m_consecutive, 0);
		kha_info("backup saved",
			 "file=%s revision=%" PRId64 " size=%s duration=%s transport=%s member=%s "
			 "pruned=%zu kept=%zu",
			 KHA_LOGQ(dm->last_file), dm->last_revision,
			 kha_log_quote(qsize, sizeof(qsize),
				       kha_format_size(size, sizeof(size), dm->last_size)),
			 kha_format_duration(dur, sizeof(dur), out->duration_us),
			 kha_snapshot_transport_name(res->save.transport),
			 KHA_LOGQ(res->save.endpoint), res->pruned, res->kept);
		if (res->prune_error[0])
			kha_warn("pruning failed", "error=%s",
				 kha_log_quote(q, sizeof(q), res->prune_error));
		/* fixed rate: the next one an interval after this one started */
		next = out->started_us + dm->o->every_us;
		dm->exit_code = KHA_EXIT_OK;
	} else {
		uint64_t delay;

		dm->failures++;
		snprintf(dm->last_error, sizeof(dm->last_error), "%s", out->error);
		kha_metric_add(dm->m_failures, 1);
		kha_metric_set(dm->m_consecutive, dm->failures);
		delay = kha_backup_retry_delay(DEFAULT_RETRY_US, dm->o->retry_max_us, dm->failures);
		next = now + delay;
		dm->exit_code = out->r == -ECANCELED ? 128 + SIGTERM : kha_exit_from_errno(out->r);
		if (out->r != -ECANCELED && dm->o->once) /* no retry follows: no "retry_in" */
			kha_error("backup failed", "error=%s",
				  kha_log_quote(q, sizeof(q), out->error));
		else if (out->r != -ECANCELED)
			kha_warn("backup failed", "error=%s failures=%u retry_in=%s",
				 kha_log_quote(q, sizeof(q), out->error), dm->failures,
				 kha_format_duration(dur, sizeof(dur), delay));
	}
	kha_metric_set(dm->m_up, kha_backup_healthy(dm->last_success_us, dm->started_us, now,
						    dm->o->every_us));
	free(out);
	if (dm->o->once) {
		kha_loop_quit(dm->loop, 0);
		return;
	}
	kha_loop_timer_set(dm->timer, next > now ? next - now : 0, 0);
}

static int prepare_dir(const char *dir, struct kha_diag *d)
{
	struct stat st;
	int r;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return kha_diag_set(d, ENOTDIR, "--dir %s: not a directory", dir);
	} else {
		r = kha_file_mkdir_p(dir, 0700, d);
		if (r < 0)
			return r;
	}
	if (access(dir, W_OK) < 0) {
		r = -errno;
		return kha_diag_set(d, r, "--dir %s: %s", dir, strerror(-r));
	}
	return 0;
}

static void on_signal(struct kha_loop_source *src, int signo, void *userdata)
{
	struct daemon *dm = userdata;

	(void)src;
	if (signo == SIGHUP) {
		struct opts *fresh = calloc(1, sizeof(*fresh));
		char q[KHA_DIAG_MAX + 8];
		struct kha_diag d = {};
		int code;

		if (!dm->config) {
			kha_info("SIGHUP: no --config to re-read", "%s", "");
			free(fresh);
			return;
		}
		if (!fresh)
			return;
		code = parse(dm->argc, dm->argv, fresh, NULL);
		if (code == 0 && prepare_dir(fresh->dir, &d) < 0) {
			kha_warn("SIGHUP: config not reloaded", "error=%s",
				 kha_log_quote(q, sizeof(q), d.msg));
			code = KHA_EXIT_IOERR;
		} else if (code != 0) {
			kha_warn("SIGHUP: config not reloaded", "config=%s", KHA_LOGQ(dm->config));
		}
		if (code != 0) {
			opts_release(fresh);
			free(fresh);
			return;
		}
		/* the metrics address and log settings stay as started */
		pthread_mutex_lock(&dm->lock);
		opts_release(dm->o);
		free(dm->o);
		dm->o = fresh;
		pthread_mutex_unlock(&dm->lock);
		kha_log_setup(fresh->log_level, fresh->log_format);
		kha_info("config reloaded",
			 "config=%s every_us=%" PRIu64 " keep_last=%zu keep_daily=%zu",
			 KHA_LOGQ(dm->config), fresh->every_us, fresh->retention.keep_last,
			 fresh->retention.keep_daily);
		return;
	}
	kha_info("stopping", "signal=%s", signo == SIGINT ? "SIGINT" : "SIGTERM");
	dm->cancel = 1; /* a snapshot in progress aborts and removes its temporary file */
	dm->exit_code = 128 + signo;
	kha_loop_quit(dm->loop, 0);
}

/* ---- admin endpoints ------------------------------------------------------------------------- */

static bool is_healthy(struct daemon *dm, char *reason, size_t size)
{
	uint64_t now = kha_now_us();
	bool ok = kha_backup_healthy(dm->last_success_us, dm->started_us, now, dm->o->every_us);
	char age[32], lim[32];

	kha_format_duration(lim, sizeof(lim), 2 * dm->o->every_us);
	if (dm->last_success_us)
		snprintf(reason, size, "last backup %s ago%s%s",
			 kha_format_duration(age, sizeof(age),
					     (now - dm->last_success_us) / KHA_USEC_PER_SEC *
						     KHA_USEC_PER_SEC),
			 ok ? "" : ", older than 2 intervals = ", ok ? "" : lim);
	else
		snprintf(reason, size, "no backup yet%s%s", ok ? "" : " after ", ok ? "" : lim);
	if (!ok && dm->last_error[0]) {
		size_t n = strlen(reason);
		snprintf(reason + n, size - n, "; last error: %s", dm->last_error);
	}
	kha_metric_set(dm->m_up, ok);
	return ok;
}

static void on_healthz(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
		       void *userdata)
{
	char reason[KHA_DIAG_MAX + 128];
	bool ok = is_healthy(userdata, reason, sizeof(reason));

	(void)req;
	resp->status = ok ? 200 : 503;
	fprintf(resp->body, "%s: %s\n", ok ? "ok" : "unhealthy", reason);
}

static bool on_ready(void *userdata, char *reason, size_t size)
{
	return is_healthy(userdata, reason, size);
}

static void on_status(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
		      void *userdata)
{
	struct daemon *dm = userdata;
	char reason[KHA_DIAG_MAX + 128];
	bool ok = is_healthy(dm, reason, sizeof(reason));
	json_t *o;

	(void)req;
	o = json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:s, s:b}", "healthy", ok,
		      "reason", reason, "dir", dm->o->dir, "interval_seconds",
		      (json_int_t)(dm->o->every_us / KHA_USEC_PER_SEC), "successes",
		      (json_int_t)dm->successes, "consecutive_failures", (json_int_t)dm->failures,
		      "last_file", dm->last_file, "last_revision", (json_int_t)dm->last_revision,
		      "last_success_unix",
		      (json_int_t)(dm->last_success_wall_us / KHA_USEC_PER_SEC), "last_error",
		      dm->last_error, "busy", dm->busy);
	resp->content_type = "application/json";
	if (o) {
		json_dumpf(o, resp->body, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fprintf(resp->body, "\n");
		json_decref(o);
	} else {
		resp->status = 500;
	}
}

static int register_metrics(struct daemon *dm)
{
	static const struct {
		size_t off;
		enum kha_metric_type type;
		const char *name;
		const char *help;
	} defs[] = {
		{offsetof(struct daemon, m_last_success), KHA_METRIC_GAUGE,
		 "kha_etcd_backup_last_success_timestamp_seconds",
		 "Unix time of the last successful backup."},
		{offsetof(struct daemon, m_last_duration), KHA_METRIC_GAUGE,
		 "kha_etcd_backup_last_duration_seconds",
		 "Duration of the last successful backup."},
		{offsetof(struct daemon, m_last_size), KHA_METRIC_GAUGE,
		 "kha_etcd_backup_last_size_bytes", "Size on disk of the last backup."},
		{offsetof(struct daemon, m_last_revision), KHA_METRIC_GAUGE,
		 "kha_etcd_backup_last_revision", "etcd revision of the last backup."},
		{offsetof(struct daemon, m_success), KHA_METRIC_COUNTER,
		 "kha_etcd_backup_success_total", "Successful backups."},
		{offsetof(struct daemon, m_failures), KHA_METRIC_COUNTER,
		 "kha_etcd_backup_failures_total", "Failed backup attempts."},
		{offsetof(struct daemon, m_pruned), KHA_METRIC_COUNTER,
		 "kha_etcd_backup_pruned_total", "Backups deleted by retention."},
		{offsetof(struct daemon, m_files), KHA_METRIC_GAUGE, "kha_etcd_backup_files",
		 "Backups in the directory after the last pruning."},
		{offsetof(struct daemon, m_consecutive), KHA_METRIC_GAUGE,
		 "kha_etcd_backup_consecutive_failures", "Failed attempts since the last success."},
		{offsetof(struct daemon, m_up), KHA_METRIC_GAUGE, "kha_etcd_backup_healthy",
		 "1 when the last success is at most two intervals old."},
	};

	for (size_t i = 0; i < KHA_ARRAY_SIZE(defs); i++) {
		struct kha_metric **slot = (struct kha_metric **)((char *)dm + defs[i].off);
		int r = kha_metrics_register(dm->metrics, defs[i].type, defs[i].name, defs[i].help,
					     NULL, NULL, 0, slot);
		if (r < 0)
			return r;
	}
	kha_metric_set(dm->m_up, 1);
	return 0;
}

static int run(struct daemon *dm)
{
	struct opts *o = dm->o;
	struct kha_diag d = {};
	sigset_t mask;
	int r, code = KHA_EXIT_SOFTWARE;

	r = prepare_dir(o->dir, &d);
	if (r < 0) {
		fprintf(stderr, "kha etcd backup: %s\n", d.msg);
		return kha_exit_from_errno(r) == KHA_EXIT_SOFTWARE ? KHA_EXIT_IOERR
								   : kha_exit_from_errno(r);
	}
	/* signals through the loop's signalfd: blocked in every thread, the worker included */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if (kha_loop_new(&dm->loop) < 0 || kha_metrics_new(&dm->metrics) < 0 ||
	    register_metrics(dm) < 0 ||
	    kha_loop_add_signal(dm->loop, SIGTERM, on_signal, dm, NULL) < 0 ||
	    kha_loop_add_signal(dm->loop, SIGINT, on_signal, dm, NULL) < 0 ||
	    kha_loop_add_signal(dm->loop, SIGHUP, on_signal, dm, NULL) < 0 ||
	    kha_loop_add_timer(dm->loop, 0, 0, on_timer, dm, &dm->timer) < 0) {
		fprintf(stderr, "kha etcd backup: cannot set up the event loop\n");
		goto out;
	}
	if (o->metrics_addr[0] && !o->once) {
		r = kha_httpd_new(dm->loop, o->metrics_addr, dm->metrics, &d, &dm->httpd);
		if (r < 0) {
			fprintf(stderr, "kha etcd backup: --metrics-addr %s: %s\n", o->metrics_addr,
				d.msg);
			code = KHA_EXIT_CONFIG;
			goto out;
		}
		if (kha_httpd_route(dm->httpd, "/healthz", on_healthz, dm) < 0 ||
		    kha_httpd_route(dm->httpd, "/status", on_status, dm) < 0)
			goto out;
		kha_httpd_set_ready(dm->httpd, on_ready, dm);
	}
	dm->started_us = kha_now_us();
	if (pthread_create(&dm->worker, NULL, worker_main, dm) != 0) {
		fprintf(stderr, "kha etcd backup: cannot start the worker thread\n");
		goto out;
	}
	dm->worker_started = true;
	{
		char every[32];
		kha_info("started",
			 "dir=%s every=%s keep_last=%zu keep_daily=%zu compress=%s metrics=%s "
			 "endpoints=%zu",
			 KHA_LOGQ(o->dir), kha_format_duration(every, sizeof(every), o->every_us),
			 o->retention.keep_last, o->retention.keep_daily,
			 o->compress ? "yes" : "no",
			 KHA_LOGQ(o->metrics_addr[0] && !o->once ? o->metrics_addr : "off"),
			 o->cfg.n_endpoints);
	}
	kha_loop_run(dm->loop);
	/* dm->o, not o: SIGHUP may have replaced the options */
	code = dm->o->once ? dm->exit_code : KHA_EXIT_OK;
out:
	if (dm->worker_started) {
		pthread_mutex_lock(&dm->lock);
		dm->stopping = true;
		dm->cancel = 1;
		pthread_cond_signal(&dm->cond);
		pthread_mutex_unlock(&dm->lock);
		pthread_join(dm->worker, NULL);
		/* a result posted after the loop quit: free it */
		while (dm->loop && kha_loop_run_once(dm->loop, 0) > 0)
			;
	}
	kha_httpd_free(dm->httpd);
	kha_loop_free(dm->loop);
	kha_metrics_free(dm->metrics);
	return code;
}

int cmd_etcd_backup_main(int argc, char **argv)
{
	struct daemon dm = {
		.argc = argc,
		.argv = argv,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
		.exit_code = KHA_EXIT_SOFTWARE,
	};
	int code;

	dm.o = calloc(1, sizeof(*dm.o));
	if (!dm.o)
		return KHA_EXIT_SOFTWARE;
	code = parse(argc, argv, dm.o, &dm.config);
	if (code == 0) {
		kha_log_setup(dm.o->log_level, dm.o->log_format);
		code = run(&dm);
	} else if (code < 0) {
		code = KHA_EXIT_OK;
	}
	opts_release(dm.o);
	free(dm.o);
	return code;
}
