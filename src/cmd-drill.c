// SPDX-License-Identifier: MIT
/* kha drill: flags, help, signals, progress and output; the drill itself is lib/drill. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/common.h"
#include "kha/config.h"
#include "kha/drill.h"
#include "kha/file.h"
#include "kha/log.h"
#include "kha/banned.h"

enum {
	OPT_SVG_SCALE = 0x100,
};

/* The scenario (lib/drill's, its flags applied by name) and the command's own flags. */
struct opts {
	struct kha_drill_scenario sc;
	bool json_out, with_probes, no_progress, linear;
	enum kha_log_level level;
};

static int scenario_set(void *sc, const char *name, const char *arg, struct kha_diag *d)
{
	return kha_drill_scenario_set(sc, name, arg, d);
}

/* a flag of the scenario: lib/drill knows it by name */
#define SC(n, a, h)                                                     \
	{                                                               \
		.kind = CMD_OPT_NAMED, .name = n, .arg = a, .help = h,  \
		.off = offsetof(struct opts, sc), .named = scenario_set \
	}
#define TYPED(k, n, a, f, h) CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, f, h)

static const struct cmd_opt options[] = {
	{.kind = CMD_OPT_STOP_AT_OPERAND},
	CMD_OPT_TITLE_ENTRY("Probing:"),
	SC("target", "URL", "https://HOST:PORT/readyz, http://..., or tcp://HOST:PORT"),
	SC("cacert", "FILE", "CA bundle that signed the target's certificate"),
	SC("cert", "FILE", "client certificate"),
	SC("key", "FILE", "private key of --cert"),
	SC("insecure", NULL, "skip TLS verification"),
	SC("rate", "N", "probes per second (default 200)"),
	SC("duration", "DURATION", "length of the drill (default 60s)"),
	SC("timeout", "DURATION", "deadline of each probe (default 1s)"),
	SC("expect-status", "LIST", "HTTP statuses that count as success (default 2xx)"),
	SC("keepalive", NULL, "reuse connections instead of one per probe"),
	CMD_OPT_TITLE_ENTRY(
		"Faults (each command runs as /bin/sh -c CMD in its own process group):"),
	SC("fault-at", "DURATION",
	   "run --fault this long into the drill; with --rolling:\nwhen the rolling starts "
	   "(default a tenth of --duration)"),
	SC("fault", "CMD", "break something"),
	SC("recover-at", "DURATION", "run --recover this long into the drill"),
	SC("recover", "CMD", "repair it"),
	{.kind = CMD_OPT_CONFIG,
	 .name = "scenario",
	 .arg = "FILE",
	 .help = "YAML: these flags as keys (flags win), plus\nsteps: [{at: 10s, run: CMD, name: N, "
		 "kind: fault}, ...]"},
	SC("step-timeout", "DURATION", "kill a command running longer (default 60s)"),
	SC("keep-going", NULL, "a failed command does not stop the drill"),
	CMD_OPT_TITLE_ENTRY("Rolling restart rehearsal:"),
	SC("rolling", "A,B,C",
	   "the nodes, one after the other: --stop, --down-time,\n--start, "
	   "then --healthy"),
	SC("stop", "\"CMD {node}\"", "stops a node ({node}: its name)"),
	SC("start", "\"CMD {node}\"", "starts it again"),
	SC("healthy", "\"CMD {node}\"", "polled until it exits 0 before the next node"),
	SC("healthy-timeout", "DURATION",
	   "give up on a node (and the rest) after DURATION\n(default 60s)"),
	SC("healthy-interval", "DURATION", "between health checks (default 500ms)"),
	SC("down-time", "DURATION", "keep each node down this long (default 0s)"),
	CMD_OPT_TITLE_ENTRY("Output:"),
	SC("report", "FILE", "JSON report (schema kha.drill.report/v1, docs/drill.md)"),
	TYPED(CMD_OPT_BOOL, "report-probes", NULL, with_probes,
	      "include every probe in the JSON report"),
	SC("svg", "FILE", "SVG timeline"),
	CMD_OPT_CALL_ENTRY("svg-scale", "log|linear", OPT_SVG_SCALE,
			   "the SVG's latency axis (default log)"),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json_out,
			     "what to print on stdout (default table: the summary)"),
	SC("slo", "PERCENT", "exit 1 when availability is under it"),
	TYPED(CMD_OPT_BOOL, "no-progress", NULL, no_progress,
	      "no live status line (shown only on a terminal anyway)"),
	TYPED(CMD_OPT_LOG_LEVEL, "log-level", "LEVEL", level, "debug, info (default), warn, error"),
	CMD_OPT_TITLE_ENTRY("etcd write mode:"),
	SC("write", NULL,
	   "each probe puts a sequence-numbered key through the\ntarget (an etcd client URL); "
	   "afterwards every\nacknowledged write must be readable from the cluster"),
	SC("endpoints", "URLS", "where to read them back (default: the target)"),
	SC("write-prefix", "P", "key prefix (default /kha-drill/<time>-<pid>/)"),
	SC("keep-keys", NULL, "do not delete the keys after the check"),
	SC("readback-timeout", "DURATION", "keep retrying the read-back this long (default 15s)"),
	CMD_OPT_TITLE_ENTRY("Kubernetes mode (probes are API requests through the entry):"),
	SC("kube", NULL,
	   "the target is a kube-apiserver or an entry in front of\nit; each probe GETs a "
	   "ConfigMap the drill creates, or\nwith --write creates one ConfigMap (acknowledged = "
	   "201),\nall listed back afterwards through --endpoints URL"),
	SC("kubeconfig", "FILE", "credentials and CA (and the target, when not given)"),
	SC("namespace", "NS", "where the ConfigMaps go (default default)"),
	SC("watch-timeout", "DURATION",
	   "a watch on the probed object is kept open and its\nreconnects measured; "
	   "timeoutSeconds of each (default 60s)"),
	SC("no-watch", NULL, "no watch"),
	CMD_OPT_HELP_ENTRY,
	{},
};

#undef SC
#undef TYPED

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha drill --target URL [flags]\n"
		"\n"
		"Breaks things for real and measures what users would have seen: probes the entry\n"
		"at a fixed rate (a new connection per probe unless --keepalive), runs fault and\n"
		"recovery commands at given instants, and reports availability, outage windows,\n"
		"time to the first failure and to full recovery, and latency before, during and\n"
		"after the fault.\n"
		"\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\n"
		"Example:\n"
		"  kha drill --target https://10.0.0.10:6443/readyz --cacert ca.crt --rate 200 \\\n"
		"      --duration 60s --fault-at 10s --fault 'ssh master1 systemctl stop "
		"kube-apiserver' \\\n"
		"      --recover-at 30s --recover 'ssh master1 systemctl start kube-apiserver' \\\n"
		"      --slo 99.9 --report drill.json --svg drill.svg\n"
		"  kha drill --kube --write --kubeconfig /etc/kubernetes/admin.conf --rate 50 \\\n"
		"      --fault-at 10s --fault 'ssh master1 systemctl kill -s KILL kube-apiserver'\n"
		"\n"
		"Exit codes: 0 ok, 1 availability under --slo, 2 acknowledged writes lost,\n"
		"3 a command failed (drill stopped), 69 writes could not be read back,\n"
		"4 rolling stopped (a node failed or never became healthy), 5 nothing succeeded\n"
		"(no probe answered, no write acknowledged: the drill proves nothing), 128+N "
		"interrupted by\n"
		"signal N (the report is still written), 64 usage, 65 bad scenario file, 74 cannot\n"
		"write a report, 78 unreadable file.\n");
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;

	(void)val; /* OPT_SVG_SCALE */
	if (strcmp(arg, "linear") != 0 && strcmp(arg, "log") != 0)
		return kha_diag_set(d, EINVAL, "expected log or linear, got '%s'", arg);
	o->linear = strcmp(arg, "linear") == 0;
	return 0;
}

struct ui {
	bool progress;
	bool line_shown;
	int sfd;
};

static int on_stop(void *userdata)
{
	return cmd_stop_signal(((struct ui *)userdata)->sfd);
}

static void clear_line(struct ui *ui)
{
	if (ui->line_shown) {
		fputs("\r\033[K", stderr);
		ui->line_shown = false;
	}
}

static void on_event(void *userdata, const struct kha_drill_event *ev)
{
	struct ui *ui = userdata;
	char q[512], t[32];
	const struct kha_drill_step_result *st = ev->step;

	snprintf(t, sizeof(t), "%.3fs", (double)ev->elapsed_us / 1e6);
	switch (ev->type) {
	case KHA_DRILL_EVENT_TICK:
		if (!ui->progress)
			return;
		fprintf(stderr, "\r\033[K%s  ok %zu  failed %zu  missed %zu  ", t, ev->ok,
			ev->failed, ev->missed);
		if (ev->outage_us)
			fprintf(stderr, "OUTAGE for %.1fs", (double)ev->outage_us / 1e6);
		else
			fprintf(stderr, "up");
		ui->line_shown = true;
		return;
	case KHA_DRILL_EVENT_STEP_START:
		clear_line(ui);
		kha_info("command started", "t=%s kind=%s name=%s run=%s", t,
			 kha_drill_step_kind_name(st->kind), KHA_LOGQ(st->name),
			 kha_log_quote(q, sizeof(q), st->run));
		return;
	case KHA_DRILL_EVENT_STEP_END:
		clear_line(ui);
		kha_log(st->state == KHA_DRILL_STEP_SUCCEEDED ? KHA_LOG_INFO : KHA_LOG_WARN,
			"command ended", "t=%s name=%s result=%s exit=%d output=%s", t,
			KHA_LOGQ(st->name), kha_drill_step_state_name(st->state), st->exit_code,
			kha_log_quote(q, sizeof(q), st->output ? st->output : ""));
		return;
	case KHA_DRILL_EVENT_NODE:
		clear_line(ui);
		kha_log(ev->node->state == KHA_DRILL_NODE_UNHEALTHY ||
					ev->node->state == KHA_DRILL_NODE_FAILED
				? KHA_LOG_WARN
				: KHA_LOG_INFO,
			"node", "t=%s node=%s state=%s", t, KHA_LOGQ(ev->node->name),
			kha_drill_node_state_name(ev->node->state));
		return;
	case KHA_DRILL_EVENT_ABORT:
		clear_line(ui);
		kha_warn("drill stopping early", "t=%s reason=%s", t,
			 kha_log_quote(q, sizeof(q), ev->message));
		return;
	}
}

static int write_outputs(const struct kha_drill_report *r, const struct kha_drill_scenario *sc,
			 bool with_probes, bool linear)
{
	struct kha_diag d = {};
	int r2 = 0;

	if (sc->report_path) {
		char *json = kha_drill_report_json(r, with_probes);
		if (!json) {
			fprintf(stderr, "kha drill: cannot build the JSON report: out of memory\n");
			return KHA_EXIT_SOFTWARE;
		}
		r2 = kha_file_write_atomic(sc->report_path, json, strlen(json), 0644, &d);
		free(json);
		if (r2 < 0) {
			fprintf(stderr, "kha drill: %s (check the --report path)\n", d.msg);
			return KHA_EXIT_IOERR;
		}
	}
	if (sc->svg_path) {
		struct kha_drill_svg_opts o = {.linear = linear};
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		if (!f || kha_drill_svg_write(f, r, &o) < 0 || fclose(f) != 0) {
			if (f && buf)
				free(buf);
			fprintf(stderr,
				"kha drill: cannot build the SVG timeline: out of memory\n");
			return KHA_EXIT_SOFTWARE;
		}
		r2 = kha_file_write_atomic(sc->svg_path, buf, len, 0644, &d);
		free(buf);
		if (r2 < 0) {
			fprintf(stderr, "kha drill: %s (check the --svg path)\n", d.msg);
			return KHA_EXIT_IOERR;
		}
	}
	return 0;
}

/* Runs the drill, stopped by SIGINT/SIGTERM, and writes its report; returns the exit code. */
static int drill(const struct kha_drill_scenario *sc, const struct opts *f)
{
	struct kha_drill_report *report = NULL;
	struct kha_diag d = {};
	struct ui ui = {};
	sigset_t oldmask;
	int sfd, r, rc;

	/* SIGINT/SIGTERM stop the drill through a signalfd; the commands get a clean mask */
	sfd = cmd_stop_signalfd(&oldmask);
	if (sfd < 0) {
		fprintf(stderr, "kha drill: signalfd: %s\n", strerror(-sfd));
		return KHA_EXIT_SOFTWARE;
	}
	cmd_raise_fd_limit(); /* each probe in flight holds a socket */
	ui.progress = !f->no_progress && isatty(STDERR_FILENO);
	ui.sfd = sfd;
	{
		struct kha_drill_hooks hooks = {
			.stop_fd = sfd,
			.on_stop = on_stop,
			.on_event = on_event,
			.userdata = &ui,
		};
		r = kha_drill_run(sc, &hooks, &report, &d);
	}
	clear_line(&ui);
	if (r < 0) {
		fprintf(stderr, "kha drill: %s\n", d.msg);
		rc = kha_exit_from_errno(r);
		goto out;
	}
	if (f->json_out) {
		char *json = kha_drill_report_json(report, f->with_probes);
		if (json) {
			fputs(json, stdout);
			fputc('\n', stdout);
			free(json);
		}
	} else {
		kha_ignore(kha_drill_report_print(stdout, report));
	}
	fflush(stdout);
	rc = write_outputs(report, sc, f->with_probes, f->linear);
	if (rc == 0)
		rc = kha_drill_verdict_exit_code(report);
out:
	kha_drill_report_free(report);
	close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return rc;
}

int cmd_drill_main(int argc, char **argv)
{
	struct opts o = {.level = KHA_LOG_INFO};
	struct cmd_opts opts;
	struct kha_args a;
	struct kha_diag d = {};
	const char *scenario = NULL;
	int r;

	/* the scenario file first, so that flags can override what it says */
	cmd_opts_build(&opts, options, apply, &o);
	a = cmd_opts_args(&opts);
	if (kha_args_scan(&a, argc, argv, &scenario)) {
		usage(stdout);
		return KHA_EXIT_OK;
	}
	kha_drill_scenario_init(&o.sc);
	r = scenario ? kha_drill_scenario_load(&o.sc, scenario, &d) : 0;
	if (r < 0) {
		fprintf(stderr, "kha drill: %s\n", d.msg);
		kha_drill_scenario_release(&o.sc);
		return r == -EBADMSG ? KHA_EXIT_DATAERR : kha_exit_from_errno(r);
	}
	r = kha_args_apply(&a, NULL, argc, argv, &d); /* the scenario is lib/drill's to read */
	if (r == 0 && optind < argc) {
		kha_diag_set(&d, EINVAL, "unexpected argument '%s'", argv[optind]);
		r = KHA_EXIT_USAGE;
	}
	if (r) {
		fprintf(stderr, "kha drill: %s (run 'kha drill --help')\n", d.msg);
		kha_drill_scenario_release(&o.sc);
		return r;
	}
	kha_log_setup(o.level, KHA_LOG_LOGFMT);
	r = kha_drill_scenario_check(&o.sc, &d);
	if (r < 0) {
		fprintf(stderr, "kha drill: %s\n", d.msg);
		kha_drill_scenario_release(&o.sc);
		return kha_exit_from_errno(r);
	}
	r = drill(&o.sc, &o);
	kha_drill_scenario_release(&o.sc);
	return r;
}
