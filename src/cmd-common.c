// SPDX-License-Identifier: MIT
/* What the command front ends share: see cmd-common.h. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "kha/common.h"
#include "kha/http.h"
#include "kha/parse.h"
#include "kha/banned.h"

int cmd_usage_or_help(int argc, char **argv, void (*usage)(FILE *out))
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
	return -1;
}

char **cmd_sub_argv(char **argv)
{
	static char pool[4][128];
	static size_t used;

	if (argv[0] && argv[1] && used < KHA_ARRAY_SIZE(pool)) {
		/* the program itself is "kha", whatever path it was started by */
		const char *parent = used ? argv[0] : "kha";

		snprintf(pool[used], sizeof(pool[used]), "%s %s", parent, argv[1]);
		argv[1] = pool[used++];
	}
	return argv + 1;
}

int cmd_usage_error(const char *cmd, const char *sub, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kha %s %s: ", cmd, sub);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (run 'kha %s %s --help')\n", cmd, sub);
	return KHA_EXIT_USAGE;
}

int cmd_print_json(json_t *o)
{
	int r;

	if (!o)
		return -ENOMEM;
	r = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("\n");
	json_decref(o);
	return r < 0 ? -EIO : 0;
}

int cmd_print_json_error(const char *who, int exit_code, const char *message)
{
	kha_ignore(cmd_print_json(json_pack("{s:s, s:i, s:s, s:s}", "verdict", "error", "exit_code",
					    exit_code, "error", message ? message : "", "command",
					    who)));
	fflush(stdout);
	return exit_code;
}

int cmd_fail(const char *who, bool json, int exit_code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", who, msg);
	if (json)
		cmd_print_json_error(who, exit_code, msg);
	return exit_code;
}

#define PROGRESS_EVERY_US (5 * KHA_USEC_PER_SEC)

void cmd_progress_say(struct cmd_progress *p, const char *who, const char *text)
{
	uint64_t now = kha_now_us();
	char el[32];

	if (!p->start_us) {
		p->start_us = now;
		p->tty = isatty(STDERR_FILENO);
	}
	if (!p->tty && p->shown && now - p->last_us < PROGRESS_EVERY_US)
		return;
	kha_format_duration(el, sizeof(el),
			    (now - p->start_us) / KHA_USEC_PER_SEC * KHA_USEC_PER_SEC);
	fprintf(stderr, "%s%s: %s (waiting for %s)%s", p->tty ? "\r\033[K" : "", who, text, el,
		p->tty ? "" : "\n");
	fflush(stderr);
	p->last_us = now;
	p->shown = true;
}

void cmd_progress_done(struct cmd_progress *p)
{
	if (p->tty && p->shown)
		fprintf(stderr, "\n");
	*p = (struct cmd_progress){};
}

json_t *cmd_json_hex(uint64_t id)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIx64, id);
	return json_string(buf);
}

json_t *cmd_json_strings(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

volatile sig_atomic_t cmd_interrupted;

static void on_signal(int sig)
{
	cmd_interrupted = sig;
}

void cmd_catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cmd_stop_signalfd(sigset_t *ret_oldmask)
{
	sigset_t mask;
	int fd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, ret_oldmask);
	fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		int err = errno;

		sigprocmask(SIG_SETMASK, ret_oldmask, NULL);
		return -err;
	}
	return fd;
}

int cmd_stop_signal(int fd)
{
	struct signalfd_siginfo si;
	int sig = 0;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		sig = (int)si.ssi_signo;
	return sig;
}

void cmd_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		kha_ignore(setrlimit(RLIMIT_NOFILE, &rl));
	}
}

struct status_opts {
	char addr[128];
	bool json;
};

static const struct cmd_opt status_table[] = {
	{CMD_OPT_ADDR, "metrics-addr", 0, "ADDR",
	 "where the daemon serves /status: its\n--metrics-addr (default: that flag's default)", 0,
	 offsetof(struct status_opts, addr), sizeof(((struct status_opts *)0)->addr), NULL},
	CMD_OPT_OUTPUT_ENTRY(struct status_opts, json, "report format"),
	CMD_OPT_HELP_ENTRY,
	{},
};

void cmd_status_help(FILE *out)
{
	cmd_opts_help(out, status_table);
}

const void *cmd_sub_find(const char *cmd, const void *rows, size_t n, size_t size, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		const void *row = (const char *)rows + i * size;
		const char *row_name;

		memcpy(&row_name, row, sizeof(row_name));
		if (strcmp(row_name, name) == 0)
			return row;
	}
	fprintf(stderr, "kha %s: unknown subcommand '%s' (run 'kha %s --help')\n", cmd, name, cmd);
	return NULL;
}

int cmd_sub_run(const char *cmd, const struct cmd_sub *subs, size_t n, void (*usage)(FILE *out),
		int argc, char **argv)
{
	int code = cmd_usage_or_help(argc, argv, usage);
	const struct cmd_sub *s;

	if (code >= 0)
		return code;
	s = cmd_sub_find(cmd, subs, n, sizeof(*subs), argv[1]);
	return s ? s->main(argc - 1, cmd_sub_argv(argv)) : KHA_EXIT_USAGE;
}

int cmd_status_fetch(const char *cmd, int argc, char **argv, const char *default_addr,
		     void (*usage)(FILE *out), json_t **ret_root, bool *ret_json)
{
	struct status_opts o = {};
	struct kha_diag d = {};
	char url[160], who[64];
	int r;

	snprintf(who, sizeof(who), "kha %s status", cmd);
	snprintf(o.addr, sizeof(o.addr), "%s", default_addr);
	r = cmd_opts_parse(status_table, NULL, &o, who, usage, argc, argv);
	*ret_json = o.json;
	if (r >= 0)
		return r;
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", who, argv[optind]);
		return KHA_EXIT_USAGE;
	}
	if (!o.addr[0]) {
		fprintf(stderr, "%s: --metrics-addr: the daemon's admin address is needed\n", who);
		return KHA_EXIT_USAGE;
	}
	snprintf(url, sizeof(url), "http://%s/status", o.addr);
	*ret_root = NULL;
	r = kha_http_get_json(url, 3 * KHA_USEC_PER_SEC, ret_root, &d);
	if (r < 0 && r != -EBADMSG)
		return cmd_fail(who, o.json, KHA_EXIT_UNAVAILABLE,
				"%s: %s (is kha %s running with --metrics-addr %s?)", url, d.msg,
				cmd, o.addr);
	return -1;
}
