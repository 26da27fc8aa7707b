// SPDX-License-Identifier: MIT
/* kha drill: flags, help, signals, progress and output; the drill itself is lib/drill. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "commands.h"
#include "kha/common.h"
#include "kha/config.h"
#include "kha/drill.h"
#include "kha/file.h"
#include "kha/log.h"
#include "kha/banned.h"

enum {
	OPT_SCENARIO = 0x100,
	OPT_SVG_SCALE,
	OPT_REPORT_PROBES,
	OPT_NO_PROGRESS,
	OPT_LOG_LEVEL,
	OPT_LIB, /* everything from here is passed to kha_drill_scenario_set by name */
};

static const struct option longopts[] = {
	{"help", no_argument, NULL, 'h'},
	{"output", required_argument, NULL, 'o'},
	{"scenario", required_argument, NULL, OPT_SCENARIO},
	{"svg-scale", required_argument, NULL, OPT_SVG_SCALE},
	{"report-probes", no_argument, NULL, OPT_REPORT_PROBES},
	{"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"target", required_argument, NULL, OPT_LIB},
	{"cacert", required_argument, NULL, OPT_LIB},
	{"cert", required_argument, NULL, OPT_LIB},
	{"key", required_argument, NULL, OPT_LIB},
	{"insecure", no_argument, NULL, OPT_LIB},
	{"rate", required_argument, NULL, OPT_LIB},
	{"duration", required_argument, NULL, OPT_LIB},
	{"timeout", required_argument, NULL, OPT_LIB},
	{"expect-status", required_argument, NULL, OPT_LIB},
	{"keepalive", no_argument, NULL, OPT_LIB},
	{"fault-at", required_argument, NULL, OPT_LIB},
	{"fault", required_argument, NULL, OPT_LIB},
	{"recover-at", required_argument, NULL, OPT_LIB},
	{"recover", required_argument, NULL, OPT_LIB},
	{"step-timeout", required_argument, NULL, OPT_LIB},
	{"keep-going", no_argument, NULL, OPT_LIB},
	{"rolling", required_argument, NULL, OPT_LIB},
	{"stop", required_argument, NULL, OPT_LIB},
	{"start", required_argument, NULL, OPT_LIB},
	{"healthy", required_argument, NULL, OPT_LIB},
	{"healthy-timeout", required_argument, NULL, OPT_LIB},
	{"healthy-interval", required_argument, NULL, OPT_LIB},
	{"down-time", required_argument, NULL, OPT_LIB},
	{"write", no_argument, NULL, OPT_LIB},
	{"endpoints", required_argument, NULL, OPT_LIB},
	{"write-prefix", required_argument, NULL, OPT_LIB},
	{"keep-keys", no_argument, NULL, OPT_LIB},
	{"readback-timeout", required_argument, NULL, OPT_LIB},
	{"kube", no_argument, NULL, OPT_LIB},
	{"kubeconfig", required_argument, NULL, OPT_LIB},
	{"namespace", required_argument, NULL, OPT_LIB},
	{"no-watch", no_argument, NULL, OPT_LIB},
	{"watch-timeout", required_argument, NULL, OPT_LIB},
	{"report", required_argument, NULL, OPT_LIB},
	{"svg", required_argument, NULL, OPT_LIB},
	{"slo", required_argument, NULL, OPT_LIB},
	{},
};

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
		"\n"
		"Probing:\n"
		"  --target URL            https://HOST:PORT/readyz, http://..., or tcp://HOST:PORT\n"
		"  --cacert/--cert/--key F TLS files; --insecure skips verification\n"
		"  --rate N                probes per second (default 200)\n"
		"  --duration DURATION     length of the drill (default 60s)\n"
		"  --timeout DURATION      deadline of each probe (default 1s)\n"
		"  --expect-status LIST    HTTP statuses that count as success (default 2xx)\n"
		"  --keepalive             reuse connections instead of one per probe\n"
		"Faults (each command runs as /bin/sh -c CMD in its own process group):\n"
		"  --fault-at DURATION --fault CMD      break something DURATION into the drill\n"
		"  --recover-at DURATION --recover CMD  repair it then\n"
		"  --scenario FILE         YAML: these flags as keys, plus\n"
		"                          steps: [{at: 10s, run: CMD, name: N, kind: fault}, ...]\n"
		"  --step-timeout DURATION kill a command running longer (default 60s)\n"
		"  --keep-going            a failed command does not stop the drill\n"
		"Rolling restart rehearsal:\n"
		"  --rolling A,B,C --stop \"CMD {node}\" --start \"CMD {node}\"\n"
		"  --healthy \"CMD {node}\"  polled until it exits 0 before the next node\n"
		"  --healthy-timeout DURATION\n"
		"                          give up on a node (and the rest) after DURATION (default 60s)\n"
		"  --healthy-interval DURATION\n"
		"                          between health checks (default 500ms)\n"
		"  --down-time DURATION    keep each node down this long (default 0s)\n"
		"  --fault-at DURATION     when the rolling starts (default a tenth of --duration)\n"
		"Output:\n"
		"  --report FILE           JSON report (schema kha.drill.report/v1, docs/drill.md)\n"
		"  --report-probes         include every probe in the JSON report\n"
		"  --svg FILE              SVG timeline; --svg-scale log|linear (default log)\n"
		"  -o, --output table|json what to print on stdout (default table: the summary)\n"
		"  --slo PERCENT           exit 1 when availability is under it\n"
		"  --no-progress           no live status line (shown only on a terminal anyway)\n"
		"etcd write mode:\n"
		"  --write                 each probe puts a sequence-numbered key through the\n"
		"                          target (an etcd client URL); afterwards every\n"
		"                          acknowledged write must be readable from the cluster\n"
		"  --endpoints URLS        where to read them back (default: the target)\n"
		"  --write-prefix P        key prefix (default /kha-drill/<time>-<pid>/)\n"
		"  --keep-keys             do not delete the keys after the check\n"
		"  --readback-timeout DURATION\n"
		"                          keep retrying the read-back this long (default 15s)\n"
		"Kubernetes mode (probes are API requests through the entry):\n"
		"  --kube                  the target is a kube-apiserver or an entry in front of\n"
		"                          it; each probe GETs a ConfigMap the drill creates, or\n"
		"                          with --write creates one ConfigMap (acknowledged = 201),\n"
		"                          all listed back afterwards through --endpoints URL\n"
		"  --kubeconfig F          credentials and CA (and the target, when not given)\n"
		"  --namespace NS          where the ConfigMaps go (default default)\n"
		"  --watch-timeout DURATION a watch on the probed object is kept open and its\n"
		"                          reconnects measured; timeoutSeconds of each (default 60s)\n"
		"  --no-watch              no watch\n"
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
		"(no probe answered, no write acknowledged: the drill proves nothing), 128+N interrupted by\n"
		"signal N (the report is still written), 64 usage, 65 bad scenario file, 74 cannot\n"
		"write a report, 78 unreadable file.\n");
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

/* The flags of the command itself (the rest are the scenario's). */
struct flags {
	bool json_out, with_probes, no_progress, linear;
	enum kha_log_level level;
};

/*
 * Pass 2 of the command line: every flag, the scenario's over what its file said. Returns 0,
 * or KHA_EXIT_USAGE after printing why.
 */
static int parse_flags(int argc, char **argv, struct kha_drill_scenario *sc, struct flags *f)
{
	struct kha_diag d = {};
	int c, idx, r;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+ho:", longopts, &idx)) != -1) {
		switch (c) {
		case 'o':
			/* table|json as every report command; "text" is the old name */
			if (kha_opt_set_output(&f->json_out, optarg, &d) < 0) {
				fprintf(stderr, "kha drill: --output: %s\n", d.msg);
				return KHA_EXIT_USAGE;
			}
			break;
		case OPT_SCENARIO:
			break;
		case OPT_SVG_SCALE:
			if (strcmp(optarg, "linear") == 0) {
				f->linear = true;
			} else if (strcmp(optarg, "log") != 0) {
				fprintf(stderr,
					"kha drill: --svg-scale: expected log or linear, got '%s'\n",
					optarg);
				return KHA_EXIT_USAGE;
			}
			break;
		case OPT_REPORT_PROBES:
			f->with_probes = true;
			break;
		case OPT_NO_PROGRESS:
			f->no_progress = true;
			break;
		case OPT_LOG_LEVEL:
			if (kha_log_parse_level(optarg, &f->level) < 0) {
				fprintf(stderr,
					"kha drill: --log-level: expected debug, info, warn or "
					"error, got '%s'\n",
					optarg);
				return KHA_EXIT_USAGE;
			}
			break;
		case OPT_LIB:
			kha_diag_clear(&d);
			r = kha_drill_scenario_set(sc, longopts[idx].name, optarg, &d);
			if (r < 0) {
				fprintf(stderr, "kha drill: --%s: %s\n", longopts[idx].name, d.msg);
				return KHA_EXIT_USAGE;
			}
			break;
		case '?':
		default:
			if (optopt && optopt < 0x100)
				fprintf(stderr,
					"kha drill: unknown or incomplete flag '-%c' (run 'kha "
					"drill --help')\n",
					optopt);
			else
				fprintf(stderr,
					"kha drill: unknown flag or missing value in '%s' (run "
					"'kha drill --help')\n",
					argv[optind - 1]);
			return KHA_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kha drill: unexpected argument '%s' (run 'kha drill --help')\n",
			argv[optind]);
		return KHA_EXIT_USAGE;
	}
	return 0;
}

/* Runs the drill, stopped by SIGINT/SIGTERM, and writes its report; returns the exit code. */
static int drill(const struct kha_drill_scenario *sc, const struct flags *f)
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
	struct kha_drill_scenario sc;
	struct flags f = {.level = KHA_LOG_INFO};
	struct kha_diag d = {};
	const char *scenario = NULL;
	int c, idx, r;

	/* pass 1: help and the scenario file, so that flags can override what it says */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+ho:", longopts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return KHA_EXIT_OK;
		}
		if (c == OPT_SCENARIO)
			scenario = optarg;
	}
	kha_drill_scenario_init(&sc);
	r = scenario ? kha_drill_scenario_load(&sc, scenario, &d) : 0;
	if (r < 0) {
		fprintf(stderr, "kha drill: %s\n", d.msg);
		kha_drill_scenario_release(&sc);
		return r == -EBADMSG ? KHA_EXIT_DATAERR : kha_exit_from_errno(r);
	}
	r = parse_flags(argc, argv, &sc, &f);
	if (r) {
		kha_drill_scenario_release(&sc);
		return r;
	}
	kha_log_setup(f.level, KHA_LOG_LOGFMT);
	r = kha_drill_scenario_check(&sc, &d);
	if (r < 0) {
		fprintf(stderr, "kha drill: %s\n", d.msg);
		kha_drill_scenario_release(&sc);
		return kha_exit_from_errno(r);
	}
	r = drill(&sc, &f);
	kha_drill_scenario_release(&sc);
	return r;
}
