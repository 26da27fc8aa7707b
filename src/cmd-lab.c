// SPDX-License-Identifier: MIT
/* kha lab: the HA design on one machine, with real etcd members on loopback. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "kha/diag.h"
#include "kha/lab.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DEFAULT_DIR	   "lab"
#define DEFAULT_TIMEOUT_US (60 * KHA_USEC_PER_SEC)
#define DEFAULT_GRACE_US   (10 * KHA_USEC_PER_SEC)
#define STATUS_TIMEOUT_US  (2 * KHA_USEC_PER_SEC)
#define LOG_TAIL_LINES	   20

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha lab SUBCOMMAND [--dir DIR] [flags]\n\n"
		"The HA design on this machine, with real processes: N etcd members on loopback\n"
		"ports with TLS and client certificates, in DIR (default ./lab). Break it, watch\n"
		"it, repair it.\n\n"
		"Subcommands:\n"
		"  up            create the PKI, start the members, wait until healthy\n"
		"  status        members, PIDs, running or not, health (exit 0/1/2)\n"
		"  stop-member   stop one member (SIGTERM, SIGKILL after --grace; --kill)\n"
		"  start-member  restart a stopped member on its data\n"
		"  wait          wait until every member is healthy\n"
		"  down          stop exactly what the lab started and remove DIR\n\n"
		"Example:\n"
		"  kha lab up && . lab/env && etcdctl member list -w table\n"
		"  kha lab stop-member m1 && kha lab status; kha lab start-member m1\n"
		"  kha lab down\n\n"
		"Run 'kha lab SUBCOMMAND --help' for its flags. See docs/lab.md.\n");
}

static int usage_error(const char *sub, const char *fmt, ...) KHA_PRINTF(2, 3);
static int usage_error(const char *sub, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kha lab %s: ", sub);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (run 'kha lab %s --help')\n", sub);
	return KHA_EXIT_USAGE;
}

/* Maps a lab error to an exit code and prints the one line. */
static int fail(const char *sub, int err, const struct kha_diag *d)
{
	int code;

	switch (-err) {
	case EINVAL:
	case EEXIST:
	case ENOTEMPTY:
		code = KHA_EXIT_USAGE;
		break;
	case ENOENT:
	case ETIMEDOUT:
	case ECHILD:
		code = KHA_EXIT_UNAVAILABLE;
		break;
	case EBUSY:
		code = KHA_EXIT_SOFTWARE;
		break;
	default:
		code = kha_exit_from_errno(err);
	}
	fprintf(stderr, "kha lab %s: %s\n", sub, d->msg[0] ? d->msg : strerror(-err));
	return code;
}

static void print_log_tail(const char *path)
{
	kha_autofree char *tail = kha_lab_log_tail(path, LOG_TAIL_LINES);

	if (!tail)
		return;
	fprintf(stderr, "--- last lines of %s ---\n%s%s--- end of %s ---\n", path,
		*tail ? tail : "(empty)", "\n", path);
}

/* Flags every subcommand shares. */
struct common {
	const char *sub;
	const char *dir;
	bool dir_given;
	bool json;
};

enum {
	OPT_DIR = 0x100,
	OPT_MEMBERS,
	OPT_TIMEOUT,
	OPT_GRACE,
	OPT_KILL,
	OPT_ETCD,
};

static int parse_duration(const char *sub, const char *flag, const char *arg, uint64_t *us)
{
	if (kha_parse_duration_us(arg, us) < 0)
		return usage_error(sub, "%s '%s': expected a duration like 500ms, 30s, 1m", flag,
				   arg);
	return 0;
}

/* Handles the shared flags; returns 1 when consumed, 0 when not one of them, else an exit code
 * (negated, so that 0 stays free). */
static int common_flag(struct common *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_DIR:
		c->dir = arg;
		c->dir_given = true;
		return 1;
	case 'o':
		if (strcmp(arg, "json") == 0)
			c->json = true;
		else if (strcmp(arg, "table") == 0 || strcmp(arg, "text") == 0)
			c->json = false;
		else
			return -usage_error(c->sub, "unknown output format '%s' (table or json)",
					    arg);
		return 1;
	default:
		return 0;
	}
}

/* " --dir DIR" when the user gave one, for the hints we print. */
static const char *dir_hint(const struct common *c, char *buf, size_t size)
{
	if (!c->dir_given)
		return "";
	snprintf(buf, size, " --dir %s", c->dir);
	return buf;
}

static int load(const struct common *c, bool lock, struct kha_lab **ret)
{
	struct kha_diag d = {0};
	char hint[512];
	int r = kha_lab_load(c->dir, lock, ret, &d);

	if (r == -ENOENT) {
		fprintf(stderr, "kha lab %s: no lab in %s (start one with 'kha lab up%s')\n",
			c->sub, c->dir, dir_hint(c, hint, sizeof(hint)));
		return KHA_EXIT_UNAVAILABLE;
	}
	if (r < 0)
		return fail(c->sub, r, &d);
	return 0;
}

static struct kha_lab_master *find_member(const struct common *c, struct kha_lab *lab,
					  const char *name)
{
	struct kha_lab_master *m = kha_lab_find_master(lab, name);
	char names[256] = "";

	if (m)
		return m;
	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(names);

		snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
			 lab->masters[i].name);
	}
	usage_error(c->sub, "no member '%s' in %s (members: %s)", name, c->dir, names);
	return NULL;
}

static void print_reach(const struct common *c, const struct kha_lab *lab)
{
	kha_autofree char *eps = kha_lab_endpoints(lab);
	char hint[512];
	const char *dh = dir_hint(c, hint, sizeof(hint));

	printf("\nReach it (TLS with client certificates):\n"
	       "  . %s/env && etcdctl member list -w table\n"
	       "  kha etcd status --endpoints %s --cacert %s --cert %s --key %s\n"
	       "Break it and watch:\n"
	       "  kha lab stop-member %s%s && kha lab status%s\n"
	       "Tear it down:\n"
	       "  kha lab down%s\n",
	       c->dir, eps ? eps : "", lab->ca_cert, lab->client_cert, lab->client_key,
	       lab->masters[0].name, dh, dh, dh);
}

static void print_members(const struct kha_lab *lab)
{
	printf("%-5s %-8s %-26s %-26s %s\n", "NAME", "PID", "CLIENT URL", "PEER URL", "LOG");
	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];

		printf("%-5s %-8d %-26s %-26s %s\n", m->name, (int)m->procs[0].pid, m->client_url,
		       m->peer_url, m->procs[0].log_path);
	}
}

static int cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"members", required_argument, NULL, OPT_MEMBERS},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"etcd", required_argument, NULL, OPT_ETCD},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "up", .dir = DEFAULT_DIR};
	struct kha_lab_up_opts o = {.members = 3, .timeout_us = DEFAULT_TIMEOUT_US};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *failed_log = NULL;
	struct kha_diag d = {0};
	uint64_t v;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_flag(&c, opt, optarg);
		if (r < 0)
			return -r;
		if (r)
			continue;
		switch (opt) {
		case OPT_MEMBERS:
			if (kha_parse_u64(optarg, 1, KHA_LAB_MAX_MASTERS, &v) < 0)
				return usage_error("up",
						   "--members '%s': expected 1 to %d (3 or 5 "
						   "for a real quorum)",
						   optarg, KHA_LAB_MAX_MASTERS);
			o.members = (unsigned)v;
			break;
		case OPT_TIMEOUT:
			if (parse_duration("up", "--timeout", optarg, &o.timeout_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_ETCD:
			o.etcd_bin = optarg;
			break;
		case 'h':
			printf("Usage: kha lab up [--dir DIR] [--members N] [--timeout D] "
			       "[--etcd PATH]\n\n"
			       "Creates a CA and certificates (members: serverAuth+clientAuth, SANs\n"
			       "127.0.0.1 and localhost; a client certificate for the tools), starts N\n"
			       "etcd members on free loopback ports with TLS and --client-cert-auth\n"
			       "for clients and peers, detached so they outlive this command, records\n"
			       "them in DIR/lab.json, writes DIR/env for etcdctl, and waits until every\n"
			       "member is healthy. Refuses a DIR that already holds a lab.\n\n"
			       "  --dir DIR      lab directory (default ./lab)\n"
			       "  --members N    etcd members, 1 to %d (default 3)\n"
			       "  --timeout D    how long to wait for health (default 60s)\n"
			       "  --etcd PATH    etcd binary (default: etcd on PATH)\n\n"
			       "Exit codes: 0 up and healthy; 64 usage or DIR taken; 69 etcd missing\n"
			       "or not healthy in time (the failing member's log is shown).\n\n"
			       "Example:\n  kha lab up --members 3 && . lab/env && etcdctl endpoint "
			       "health\n",
			       KHA_LAB_MAX_MASTERS);
			return KHA_EXIT_OK;
		default:
			return usage_error("up", "bad flag");
		}
	}
	if (optind < argc)
		return usage_error("up", "unexpected argument '%s'", argv[optind]);
	o.dir = c.dir;
	r = kha_lab_up(&o, &lab, &failed_log, &d);
	if (r < 0) {
		int code = fail("up", r, &d);

		if (failed_log)
			print_log_tail(failed_log);
		if (r == -ETIMEDOUT || r == -ECHILD) {
			char hint[512];

			fprintf(stderr,
				"kha lab up: stopped what was started; logs kept in %s "
				"(remove with 'kha lab down%s')\n",
				c.dir, dir_hint(&c, hint, sizeof(hint)));
		}
		return code;
	}
	printf("kha lab: %zu etcd members healthy in %s\n\n", lab->n_masters, lab->dir);
	print_members(lab);
	print_reach(&c, lab);
	return KHA_EXIT_OK;
}

static const char *health_text(int h)
{
	return h > 0 ? "healthy" : h == 0 ? "unhealthy" : "unreachable";
}

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const verdicts[] = {"healthy", "degraded", "critical"};
	struct common c = {.sub = "status", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	int health[KHA_LAB_MAX_MASTERS];
	bool running[KHA_LAB_MAX_MASTERS];
	size_t n_healthy = 0, n_running = 0;
	int opt, r, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		r = common_flag(&c, opt, optarg);
		if (r < 0)
			return -r;
		if (r)
			continue;
		if (opt == 'h') {
			printf("Usage: kha lab status [--dir DIR] [-o json]\n\n"
			       "Shows each member: PID, whether that process still runs (checked by\n"
			       "PID and start time), its health over TLS, its URLs.\n\n"
			       "Exit codes: 0 every member healthy; 1 degraded (some member down, the\n"
			       "quorum holds); 2 critical (a majority is not healthy: quorum lost);\n"
			       "69 no lab in DIR.\n\n"
			       "Example:\n  kha lab status -o json\n");
			return KHA_EXIT_OK;
		}
		return usage_error("status", "bad flag");
	}
	if (optind < argc)
		return usage_error("status", "unexpected argument '%s'", argv[optind]);
	r = load(&c, false, &lab);
	if (r)
		return r;
	kha_lab_health(lab, STATUS_TIMEOUT_US, health);
	for (size_t i = 0; i < lab->n_masters; i++) {
		running[i] = kha_lab_proc_running(&lab->masters[i].procs[0]);
		n_running += running[i];
		n_healthy += health[i] == 1;
	}
	code = n_healthy == lab->n_masters	? KHA_EXIT_OK
	       : n_healthy > lab->n_masters / 2 ? KHA_EXIT_DEGRADED
						: KHA_EXIT_CRITICAL;
	if (c.json) {
		kha_autofree char *eps = kha_lab_endpoints(lab);
		json_t *masters = json_array(), *root;
		char *text;

		for (size_t i = 0; i < lab->n_masters; i++) {
			const struct kha_lab_master *m = &lab->masters[i];
			json_t *procs = json_array();

			for (size_t j = 0; j < m->n_procs; j++) {
				const struct kha_lab_proc *p = &m->procs[j];

				json_array_append_new(procs,
						      json_pack("{s:s, s:I, s:b, s:s}", "name",
								p->name, "pid", (json_int_t)p->pid,
								"running", kha_lab_proc_running(p),
								"log", p->log_path));
			}
			json_array_append_new(
				masters,
				json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "name", m->name,
					  "client_url", m->client_url, "peer_url", m->peer_url,
					  "data_dir", m->data_dir, "health", health_text(health[i]),
					  "running", running[i], "processes", procs));
		}
		root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o}", "dir",
				 lab->dir, "endpoints", eps ? eps : "", "ca_cert", lab->ca_cert,
				 "client_cert", lab->client_cert, "client_key", lab->client_key,
				 "members", (json_int_t)lab->n_masters, "running",
				 (json_int_t)n_running, "healthy", (json_int_t)n_healthy, "status",
				 verdicts[code], "masters", masters);
		text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(root);
		return code;
	}
	printf("lab %s: %zu members, %zu running, %zu healthy: %s\n\n", lab->dir, lab->n_masters,
	       n_running, n_healthy, verdicts[code]);
	printf("%-5s %-8s %-8s %-12s %-26s %s\n", "NAME", "PID", "PROCESS", "HEALTH", "CLIENT URL",
	       "PEER URL");
	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];
		char pid[16] = "-";

		if (m->procs[0].pid > 0)
			snprintf(pid, sizeof(pid), "%d", (int)m->procs[0].pid);
		printf("%-5s %-8s %-8s %-12s %-26s %s\n", m->name, pid,
		       running[i] ? "running" : "stopped", health_text(health[i]), m->client_url,
		       m->peer_url);
	}
	return code;
}

static int cmd_member(int argc, char **argv, bool start)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"kill", no_argument, NULL, OPT_KILL},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = start ? "start-member" : "stop-member", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *m;
	struct kha_lab_proc *etcd;
	uint64_t grace_us = DEFAULT_GRACE_US, timeout_us = DEFAULT_TIMEOUT_US;
	struct kha_diag d = {0};
	bool kill = false;
	pid_t old_pid;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_flag(&c, opt, optarg);
		if (r < 0)
			return -r;
		if (r)
			continue;
		switch (opt) {
		case OPT_GRACE:
			if (start)
				return usage_error(c.sub, "--grace is a flag of stop-member");
			if (parse_duration(c.sub, "--grace", optarg, &grace_us))
				return KHA_EXIT_USAGE;
			break;
		case OPT_KILL:
			if (start)
				return usage_error(c.sub, "--kill is a flag of stop-member");
			kill = true;
			break;
		case OPT_TIMEOUT:
			if (!start)
				return usage_error(c.sub, "--timeout is a flag of start-member");
			if (parse_duration(c.sub, "--timeout", optarg, &timeout_us))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			if (start)
				printf("Usage: kha lab start-member NAME [--dir DIR] [--timeout D]\n\n"
				       "Restarts a stopped member on its data dir (--initial-cluster-"
				       "state\nexisting) and waits until it answers on its client URL "
				       "(default\n--timeout 60s). Alone it may still lack a quorum: 'kha "
				       "lab wait'\nwaits for health. Starting a running member does "
				       "nothing.\n\nExample:\n  kha lab start-member m2\n");
			else
				printf("Usage: kha lab stop-member NAME [--dir DIR] [--grace D] "
				       "[--kill]\n\n"
				       "Stops a member: SIGTERM, then SIGKILL if it still runs after "
				       "--grace\n(default 10s); --kill sends SIGKILL at once, like a "
				       "crash. Only the\nprocess the lab started is signalled (PID and "
				       "start time checked).\n\nExample:\n  kha lab stop-member m1 "
				       "--kill\n");
			return KHA_EXIT_OK;
		default:
			return usage_error(c.sub, "bad flag");
		}
	}
	if (optind >= argc)
		return usage_error(c.sub, "which member? (e.g. 'kha lab %s m1')", c.sub);
	if (optind + 1 < argc)
		return usage_error(c.sub, "unexpected argument '%s'", argv[optind + 1]);
	r = load(&c, true, &lab);
	if (r)
		return r;
	m = find_member(&c, lab, argv[optind]);
	if (!m)
		return KHA_EXIT_USAGE;
	etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);
	if (start) {
		if (etcd && kha_lab_proc_running(etcd)) {
			printf("%s is already running (pid %d)\n", m->name, (int)etcd->pid);
			return KHA_EXIT_OK;
		}
		r = kha_lab_master_start(lab, m, timeout_us, &d);
		if (r < 0) {
			int code = fail(c.sub, r, &d);

			if (etcd && (r == -ECHILD || r == -ETIMEDOUT))
				print_log_tail(etcd->log_path);
			return code;
		}
		printf("%s started (pid %d), answering on %s\n", m->name, etcd ? (int)etcd->pid : 0,
		       m->client_url);
		return KHA_EXIT_OK;
	}
	if (!etcd || !kha_lab_proc_running(etcd)) {
		printf("%s is not running\n", m->name);
		/* record it as stopped, in case it died on its own */
		r = kha_lab_master_stop(lab, m, 0, &d);
		return r < 0 ? fail(c.sub, r, &d) : KHA_EXIT_OK;
	}
	old_pid = etcd->pid;
	r = kha_lab_master_stop(lab, m, kill ? 0 : grace_us, &d);
	if (r < 0)
		return fail(c.sub, r, &d);
	printf("%s stopped (pid %d, %s)\n", m->name, (int)old_pid, kill ? "SIGKILL" : "SIGTERM");
	return KHA_EXIT_OK;
}

static int cmd_wait(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "wait", .dir = DEFAULT_DIR};
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *failed = NULL;
	uint64_t timeout_us = DEFAULT_TIMEOUT_US, t0 = kha_now_us();
	struct kha_diag d = {0};
	char took[32];
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_flag(&c, opt, optarg);
		if (r < 0)
			return -r;
		if (r)
			continue;
		switch (opt) {
		case OPT_TIMEOUT:
			if (parse_duration("wait", "--timeout", optarg, &timeout_us))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha lab wait [--dir DIR] [--timeout D]\n\n"
			       "Waits until every member reports healthy (default --timeout 60s).\n"
			       "Exit codes: 0 healthy; 69 a member is stopped or not healthy in "
			       "time.\n\nExample:\n  kha lab start-member m1 && kha lab wait "
			       "--timeout 30s\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("wait", "bad flag");
		}
	}
	if (optind < argc)
		return usage_error("wait", "unexpected argument '%s'", argv[optind]);
	r = load(&c, false, &lab);
	if (r)
		return r;
	r = kha_lab_wait_healthy(lab, timeout_us, &failed, &d);
	if (r < 0)
		return fail("wait", r, &d);
	printf("all %zu members healthy (waited %s)\n", lab->n_masters,
	       kha_format_duration(took, sizeof(took), (kha_now_us() - t0) / 1000 * 1000));
	return KHA_EXIT_OK;
}

static int cmd_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, OPT_DIR},
		{"grace", required_argument, NULL, OPT_GRACE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct common c = {.sub = "down", .dir = DEFAULT_DIR};
	uint64_t grace_us = DEFAULT_GRACE_US;
	struct kha_diag d = {0};
	unsigned stopped = 0;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		r = common_flag(&c, opt, optarg);
		if (r < 0)
			return -r;
		if (r)
			continue;
		switch (opt) {
		case OPT_GRACE:
			if (parse_duration("down", "--grace", optarg, &grace_us))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha lab down [--dir DIR] [--grace D]\n\n"
			       "Stops exactly the processes the lab started (recorded PIDs, checked\n"
			       "by start time: a recycled PID is never signalled), waits for them,\n"
			       "then removes DIR. etcd members get SIGKILL (their data goes next);\n"
			       "other processes SIGTERM, then SIGKILL after --grace (default 10s).\n"
			       "Members that already died are fine; no lab in DIR is fine too. A DIR\n"
			       "without lab.json is never removed.\n\nExample:\n  kha lab down --dir lab\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("down", "bad flag");
		}
	}
	if (optind < argc)
		return usage_error("down", "unexpected argument '%s'", argv[optind]);
	r = kha_lab_down(c.dir, grace_us, &stopped, &d);
	if (r < 0)
		return fail("down", r, &d);
	printf("lab in %s is down (%u process%s stopped, directory removed)\n", c.dir, stopped,
	       stopped == 1 ? "" : "es");
	return KHA_EXIT_OK;
}

int cmd_lab_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return KHA_EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return KHA_EXIT_OK;
	}
	if (strcmp(argv[1], "up") == 0)
		return cmd_up(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "stop-member") == 0)
		return cmd_member(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "start-member") == 0)
		return cmd_member(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "wait") == 0)
		return cmd_wait(argc - 1, argv + 1);
	if (strcmp(argv[1], "down") == 0)
		return cmd_down(argc - 1, argv + 1);
	fprintf(stderr, "kha lab: unknown subcommand '%s' (run 'kha lab --help')\n", argv[1]);
	return KHA_EXIT_USAGE;
}
