// SPDX-License-Identifier: MIT
/*
 * The backup daemon (kha etcd backup): verified snapshots on a schedule, pruning by retention,
 * retrying with capped back-off while etcd is down, with Prometheus metrics and a /healthz that
 * fails when the last success is older than two intervals.
 *
 * Threads: the caller's thread runs the event loop (timer, signals, admin HTTP server); one
 * worker thread takes the snapshots (blocking network and disk I/O) when the loop asks it to
 * and posts each result back to the loop. State is owned by the loop thread; the worker only
 * reads the options (under the mutex, since SIGHUP may replace them).
 *
 * The decisions (when the next attempt is due, whether the daemon is healthy) are the pure
 * kha_backup_schedule_*() functions at the top; the rest performs them.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "kha/backup.h"
#include "kha/file.h"
#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/parse.h"
#include "kha/banned.h"

/* ---- the schedule (pure) --------------------------------------------------------------------- */

static uint64_t retry_max(const struct kha_backup_schedule *s)
{
	return s->retry_max_us ? s->retry_max_us : KHA_MIN(s->every_us, KHA_BACKUP_RETRY_CAP_US);
}

uint64_t kha_backup_schedule_done(struct kha_backup_schedule *s, bool ok, uint64_t attempt_us,
				  uint64_t *ret_delay_us)
{
	uint64_t now = kha_now_us(), next;

	if (ok) {
		s->failures = 0;
		s->successes++;
		s->last_success_us = now;
		/* fixed rate: the next one an interval after this one started */
		next = attempt_us + s->every_us;
	} else {
		s->failures++;
		next = now +
		       kha_backup_retry_delay(KHA_BACKUP_RETRY_BASE_US, retry_max(s), s->failures);
		if (next < now) /* an uncapped delay overflowed */
			next = UINT64_MAX;
	}
	if (ret_delay_us)
		*ret_delay_us = next > now ? next - now : 0;
	return next;
}

bool kha_backup_schedule_health(const struct kha_backup_schedule *s, const char *last_error,
				char *reason, size_t size)
{
	uint64_t now = kha_now_us();
	bool ok = kha_backup_healthy(s->last_success_us, s->started_us, now, s->every_us);
	char age[32], lim[32];

	kha_format_duration(lim, sizeof(lim), 2 * s->every_us);
	if (s->last_success_us)
		snprintf(reason, size, "last backup %s ago%s%s",
			 kha_format_duration(age, sizeof(age),
					     (now - s->last_success_us) / KHA_USEC_PER_SEC *
						     KHA_USEC_PER_SEC),
			 ok ? "" : ", older than 2 intervals = ", ok ? "" : lim);
	else
		snprintf(reason, size, "no backup yet%s%s", ok ? "" : " after ", ok ? "" : lim);
	if (!ok && last_error && last_error[0]) {
		size_t n = strlen(reason);
		snprintf(reason + n, size - n, "; last error: %s", last_error);
	}
	return ok;
}

/* ---- options --------------------------------------------------------------------------------- */

int kha_backup_daemon_opts_init(struct kha_backup_daemon_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->every_us = KHA_BACKUP_DEFAULT_EVERY_US;
	o->retention = (struct kha_retention){.keep_last = 24, .keep_daily = 7};
	o->log_level = KHA_LOG_INFO;
	o->log_format = KHA_LOG_LOGFMT;
	snprintf(o->metrics_addr, sizeof(o->metrics_addr), "%s", KHA_BACKUP_DEFAULT_METRICS_ADDR);
	return kha_etcd_config_init(&o->cfg) < 0 ? -ENOMEM : 0;
}

void kha_backup_daemon_opts_release(struct kha_backup_daemon_opts *o)
{
	kha_etcd_config_release(&o->cfg);
	free(o->dir);
	memset(o, 0, sizeof(*o));
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
	struct kha_backup_daemon_opts *o; /* guarded by lock (SIGHUP swaps it) */
	const char *config;
	kha_backup_reload_fn reload;
	void *reload_userdata;
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
	struct kha_backup_schedule sched;
	uint64_t last_success_wall_us;
	char last_error[KHA_DIAG_MAX];
	char last_file[256];
	int64_t last_revision;
	uint64_t last_size;
	int exit_code; /* once */
};

static void on_result(struct kha_loop *loop, void *userdata);

/* What one backup needs, copied under the lock so SIGHUP can replace the options meanwhile. */
struct job {
	struct kha_etcd_config cfg;
	struct kha_backup_opts bo;
	char *dir;
};

static int job_take(struct job *j, const struct kha_backup_daemon_opts *o,
		    const volatile sig_atomic_t *cancel)
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

/* Waits for a request; false when the worker must exit. Takes the job under the lock. */
static bool worker_wait(struct daemon *dm, struct job *job, int *ret_taken)
{
	pthread_mutex_lock(&dm->lock);
	while (!dm->run && !dm->stopping)
		pthread_cond_wait(&dm->cond, &dm->lock);
	if (dm->stopping) {
		pthread_mutex_unlock(&dm->lock);
		return false;
	}
	dm->run = false;
	*ret_taken = job_take(job, dm->o, &dm->cancel);
	pthread_mutex_unlock(&dm->lock);
	return true;
}

static void *worker_main(void *arg)
{
	struct daemon *dm = arg;
	struct job job;
	int taken;

	while (worker_wait(dm, &job, &taken)) {
		struct outcome *out = calloc(1, sizeof(*out));
		struct kha_diag d = {};

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
	return NULL;
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

static void record_success(struct daemon *dm, const struct outcome *out)
{
	const struct kha_backup_result *res = &out->res;
	const char *path = res->save.path, *base = strrchr(path, '/');
	char q[KHA_DIAG_MAX + 64], dur[32], size[32], qsize[40];

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
		 kha_snapshot_transport_name(res->save.transport), KHA_LOGQ(res->save.endpoint),
		 res->pruned, res->kept);
	if (res->prune_error[0])
		kha_warn("pruning failed", "error=%s",
			 kha_log_quote(q, sizeof(q), res->prune_error));
	dm->exit_code = KHA_EXIT_OK;
}

static void record_failure(struct daemon *dm, const struct outcome *out, uint64_t delay)
{
	char q[KHA_DIAG_MAX + 64], dur[32];

	snprintf(dm->last_error, sizeof(dm->last_error), "%s", out->error);
	kha_metric_add(dm->m_failures, 1);
	kha_metric_set(dm->m_consecutive, dm->sched.failures);
	dm->exit_code = out->r == -ECANCELED ? 128 + SIGTERM : kha_exit_from_errno(out->r);
	if (out->r != -ECANCELED && dm->o->once) /* no retry follows: no "retry_in" */
		kha_error("backup failed", "error=%s", kha_log_quote(q, sizeof(q), out->error));
	else if (out->r != -ECANCELED)
		kha_warn("backup failed", "error=%s failures=%u retry_in=%s",
			 kha_log_quote(q, sizeof(q), out->error), dm->sched.failures,
			 kha_format_duration(dur, sizeof(dur), delay));
}

static void on_result(struct kha_loop *loop, void *userdata)
{
	struct outcome *out = userdata;
	struct daemon *dm = out->dm;
	uint64_t delay;

	(void)loop;
	dm->busy = false;
	dm->sched.every_us = dm->o->every_us;
	dm->sched.retry_max_us = dm->o->retry_max_us;
	kha_backup_schedule_done(&dm->sched, out->r == 0, out->started_us, &delay);
	if (out->r == 0)
		record_success(dm, out);
	else
		record_failure(dm, out, delay);
	kha_metric_set(dm->m_up, kha_backup_healthy(dm->sched.last_success_us, dm->sched.started_us,
						    kha_now_us(), dm->o->every_us));
	free(out);
	if (dm->o->once) {
		kha_loop_quit(dm->loop, 0);
		return;
	}
	kha_loop_timer_set(dm->timer, delay, 0);
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

/* SIGHUP: the configuration read again through the caller, swapped in when it is good. */
static void reload(struct daemon *dm)
{
	struct kha_backup_daemon_opts *fresh;
	char q[KHA_DIAG_MAX + 8];
	struct kha_diag d = {};
	int code;

	if (!dm->config || !dm->reload) {
		kha_info("SIGHUP: no --config to re-read", "%s", "");
		return;
	}
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return;
	code = dm->reload(dm->reload_userdata, fresh);
	if (code == 0 && prepare_dir(fresh->dir, &d) < 0) {
		kha_warn("SIGHUP: config not reloaded", "error=%s",
			 kha_log_quote(q, sizeof(q), d.msg));
		code = KHA_EXIT_IOERR;
	} else if (code != 0) {
		kha_warn("SIGHUP: config not reloaded", "config=%s", KHA_LOGQ(dm->config));
	}
	if (code != 0) {
		kha_backup_daemon_opts_release(fresh);
		free(fresh);
		return;
	}
	/* the metrics address and log settings stay as started */
	pthread_mutex_lock(&dm->lock);
	kha_backup_daemon_opts_release(dm->o);
	free(dm->o);
	dm->o = fresh;
	pthread_mutex_unlock(&dm->lock);
	kha_log_setup(fresh->log_level, fresh->log_format);
	kha_info("config reloaded", "config=%s every_us=%" PRIu64 " keep_last=%zu keep_daily=%zu",
		 KHA_LOGQ(dm->config), fresh->every_us, fresh->retention.keep_last,
		 fresh->retention.keep_daily);
}

static void on_signal(struct kha_loop_source *src, int signo, void *userdata)
{
	struct daemon *dm = userdata;

	(void)src;
	if (signo == SIGHUP) {
		reload(dm);
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
	bool ok;

	dm->sched.every_us = dm->o->every_us;
	ok = kha_backup_schedule_health(&dm->sched, dm->last_error, reason, size);
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
		      (json_int_t)dm->sched.successes, "consecutive_failures",
		      (json_int_t)dm->sched.failures, "last_file", dm->last_file, "last_revision",
		      (json_int_t)dm->last_revision, "last_success_unix",
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

/* The loop, its signals and timer, the metrics and the admin server: an exit code or 0. */
static int setup(struct daemon *dm, struct kha_diag *d)
{
	const struct kha_backup_daemon_opts *o = dm->o;
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};

	/* signals through the loop's signalfd: blocked in every thread, the worker (created
	 * later) included */
	if (kha_loop_new(&dm->loop) < 0 || kha_metrics_new(&dm->metrics) < 0 ||
	    register_metrics(dm) < 0 ||
	    kha_loop_add_signals(dm->loop, sigs, KHA_ARRAY_SIZE(sigs), on_signal, dm) < 0 ||
	    kha_loop_add_timer(dm->loop, 0, 0, on_timer, dm, &dm->timer) < 0) {
		kha_diag_set(d, ENOMEM, "cannot set up the event loop");
		return KHA_EXIT_SOFTWARE;
	}
	if (o->metrics_addr[0] && !o->once) {
		struct kha_diag hd = {};

		if (kha_httpd_new(dm->loop, o->metrics_addr, dm->metrics, &hd, &dm->httpd) < 0) {
			kha_diag_set(d, EINVAL, "--metrics-addr %s: %s", o->metrics_addr, hd.msg);
			return KHA_EXIT_CONFIG;
		}
		if (kha_httpd_route(dm->httpd, "/healthz", on_healthz, dm) < 0 ||
		    kha_httpd_route(dm->httpd, "/status", on_status, dm) < 0) {
			kha_diag_set(d, ENOMEM, "out of memory");
			return KHA_EXIT_SOFTWARE;
		}
		kha_httpd_set_ready(dm->httpd, on_ready, dm);
	}
	return 0;
}

static void log_started(const struct kha_backup_daemon_opts *o)
{
	char every[32];

	kha_info("started",
		 "dir=%s every=%s keep_last=%zu keep_daily=%zu compress=%s metrics=%s "
		 "endpoints=%zu",
		 KHA_LOGQ(o->dir), kha_format_duration(every, sizeof(every), o->every_us),
		 o->retention.keep_last, o->retention.keep_daily, o->compress ? "yes" : "no",
		 KHA_LOGQ(o->metrics_addr[0] && !o->once ? o->metrics_addr : "off"),
		 o->cfg.n_endpoints);
}

static void teardown(struct daemon *dm)
{
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
	pthread_mutex_destroy(&dm->lock);
	pthread_cond_destroy(&dm->cond);
	if (dm->o) {
		kha_backup_daemon_opts_release(dm->o);
		free(dm->o);
	}
}

int kha_backup_daemon_run(struct kha_backup_daemon_opts *o, const char *config,
			  kha_backup_reload_fn reload_fn, void *userdata, struct kha_diag *d)
{
	struct daemon dm = {
		.config = config,
		.reload = reload_fn,
		.reload_userdata = userdata,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
		.exit_code = KHA_EXIT_SOFTWARE,
	};
	int r, code;

	dm.o = malloc(sizeof(*dm.o));
	if (!dm.o) {
		kha_backup_daemon_opts_release(o);
		kha_diag_set(d, ENOMEM, "out of memory");
		return KHA_EXIT_SOFTWARE;
	}
	*dm.o = *o;
	memset(o, 0, sizeof(*o));
	r = prepare_dir(dm.o->dir, d);
	if (r < 0) {
		code = kha_exit_from_errno(r);
		code = code == KHA_EXIT_SOFTWARE ? KHA_EXIT_IOERR : code;
		goto out;
	}
	code = setup(&dm, d);
	if (code != 0)
		goto out;
	dm.sched.started_us = kha_now_us();
	dm.sched.every_us = dm.o->every_us;
	if (pthread_create(&dm.worker, NULL, worker_main, &dm) != 0) {
		kha_diag_set(d, EAGAIN, "cannot start the worker thread");
		code = KHA_EXIT_SOFTWARE;
		goto out;
	}
	dm.worker_started = true;
	log_started(dm.o);
	kha_loop_run(dm.loop);
	/* dm.o, not o: SIGHUP may have replaced the options */
	code = dm.o->once ? dm.exit_code : KHA_EXIT_OK;
out:
	teardown(&dm);
	return code;
}
