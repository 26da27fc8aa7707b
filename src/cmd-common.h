/* SPDX-License-Identifier: MIT */
/*
 * What the command front ends share (src/ only): the help of a subcommand table, usage errors,
 * JSON on stdout, stopping on SIGINT/SIGTERM. Each helper does what several src/cmd-*.c did alike.
 */
#ifndef KHA_CMD_COMMON_H
#define KHA_CMD_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "kha/common.h"

/*
 * The start of every subcommand table: without a SUBCOMMAND, prints usage on stderr and
 * returns 64; for -h, --help or help, prints it on stdout and returns 0. Returns -1 when
 * argv[1] is the caller's to look up.
 */
int cmd_usage_or_help(int argc, char **argv, void (*usage)(FILE *out));
/* Prints "kha CMD SUB: MESSAGE (run 'kha CMD SUB --help')" on stderr; returns 64 (usage). */
int cmd_usage_error(const char *cmd, const char *sub, const char *fmt, ...) KHA_PRINTF(3, 4);

/*
 * The row of a subcommand table (n rows of size bytes, each beginning with its const char *name)
 * whose name is name; NULL after printing "kha CMD: unknown subcommand 'NAME' (run 'kha CMD
 * --help')" on stderr (cmd: "etcd member").
 */
const void *cmd_sub_find(const char *cmd, const void *rows, size_t n, size_t size,
			 const char *name);
#define CMD_SUB_FIND(cmd, rows, name)                                                 \
	((const __typeof__((rows)[0]) *)cmd_sub_find(cmd, rows, KHA_ARRAY_SIZE(rows), \
						     sizeof((rows)[0]), name))

/* A subcommand that parses its own argv (argv[0] its whole name: see cmd_sub_argv). */
struct cmd_sub {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary; /* its line in the command's help; NULL: hidden (test hooks) */
};

/*
 * A command that is only a table of subcommands: cmd_usage_or_help, then the subcommand
 * argv[1] names, run with cmd_sub_argv; its exit code, or 64 for an unknown one.
 */
int cmd_sub_run(const char *cmd, const struct cmd_sub *subs, size_t n, void (*usage)(FILE *out),
		int argc, char **argv);

/*
 * The argv a command hands to its subcommand (argv + 1), with argv[1] named after the whole
 * command ("kha etcd" + "status" -> "kha etcd status"), so that getopt's own messages say
 * which command they are about. The names live in a static pool (a few levels deep at most);
 * when it is full, argv[1] is left as it is.
 */
char **cmd_sub_argv(char **argv);

/*
 * Writes o indented, in its key order, and a newline on stdout; takes o (NULL: an allocation
 * failed). Returns 0, -ENOMEM for NULL, or -EIO when it could not be written.
 */
int cmd_print_json(json_t *o);
/*
 * With -o json, a failure still prints a JSON document on stdout, so that a script always has
 * one to parse: {"verdict": "error", "exit_code": CODE, "error": MESSAGE, "command": WHO}.
 * The one-line message goes to stderr as well (the caller prints it). Returns exit_code.
 */
int cmd_print_json_error(const char *who, int exit_code, const char *message);
/*
 * A failure of a report command: prints "WHO: MESSAGE" on stderr and, with json, the JSON
 * document of cmd_print_json_error on stdout. Returns exit_code.
 */
int cmd_fail(const char *who, bool json, int exit_code, const char *fmt, ...) KHA_PRINTF(4, 5);
/* A JSON string of id in hex (how etcd's tools print member and cluster ids); NULL on ENOMEM. */
json_t *cmd_json_hex(uint64_t id);
/* A JSON array of the n strings of v; NULL on ENOMEM. */
json_t *cmd_json_strings(char *const *v, size_t n);

/*
 * The front of `kha DAEMON status`: parses [--metrics-addr ADDR] [-o table|json] (default_addr
 * without the flag) and GETs http://ADDR/status. Returns -1 with the answer in *ret_root (the
 * caller decrefs it; NULL or any JSON when the daemon answered something else: check its shape)
 * and -o json in *ret_json; otherwise it printed the help (returns 0) or the error itself
 * (returns 64 for a bad flag, 69 when nothing answers).
 */
int cmd_status_fetch(const char *cmd, int argc, char **argv, const char *default_addr,
		     void (*usage)(FILE *out), json_t **ret_root, bool *ret_json);
/* The Flags: lines of `kha DAEMON status`, for its usage(). */
void cmd_status_help(FILE *out);

/*
 * A wait that reports progress politely: on a terminal, one stderr line rewritten in place
 * with the elapsed time; otherwise (logs, pipes) the first message at once, then at most one
 * line every 5 s, each with the elapsed time. cmd_progress_done ends the terminal line.
 */
struct cmd_progress {
	uint64_t start_us, last_us;
	bool tty, shown;
};
void cmd_progress_say(struct cmd_progress *p, const char *who, const char *text);
void cmd_progress_done(struct cmd_progress *p);

/* The signal (SIGINT or SIGTERM) that asked to stop, once cmd_catch_signals() ran; else 0. */
extern volatile sig_atomic_t cmd_interrupted;
/* SIGINT and SIGTERM set cmd_interrupted from now on (and interrupt blocking calls). */
void cmd_catch_signals(void);

/*
 * Blocks SIGINT and SIGTERM and returns a non-blocking signalfd that reads them (a run's stop
 * fd); the previous mask goes to *ret_oldmask. -errno on failure, with the mask restored.
 * Processes started afterwards inherit the blocked mask unless they reset it. The caller
 * closes the fd and restores *ret_oldmask when done.
 */
int cmd_stop_signalfd(sigset_t *ret_oldmask);
/* Drains a signalfd from cmd_stop_signalfd(): the last signal read, or 0. */
int cmd_stop_signal(int fd);
/* Raises the soft limit of open files to the hard one (each probe in flight holds a socket). */
void cmd_raise_fd_limit(void);

#endif
