/* SPDX-License-Identifier: MIT */
/*
 * Child processes: spawn, identify, signal, wait, stop.
 *
 * A process is identified by its PID *and* its start time (field 22 of /proc/PID/stat, in clock
 * ticks since boot), recorded at spawn. PIDs are recycled; the pair is not. Every function that
 * sends a signal first checks the pair, and where the kernel offers a pidfd (Linux >= 5.3) holds
 * it, so that a PID reused by an unrelated process is never signalled, even by a lab state file
 * that outlived its processes by days.
 *
 * Processes may be our children (kha_proc_spawn) or strangers recorded earlier (kha_proc_attach,
 * e.g. from a state file written by another kha invocation). Waiting works for both: our
 * children are reaped with waitpid (and their exit status reported), strangers are watched
 * through their pidfd or, without one, by polling /proc every few milliseconds.
 */
#ifndef KHA_PROC_H
#define KHA_PROC_H

#include <sys/types.h>

#include "kha/diag.h"

struct kha_proc {
	uint64_t start_time; /* /proc/PID/stat starttime, clock ticks since boot */
	pid_t pid;	     /* 0 when unset */
	int pidfd;	     /* -1 when unavailable; owned, closed by kha_proc_release */
	int exit_status;     /* waitpid() status once a child was reaped, else -1 */
	bool child;	     /* spawned by this process: we reap it */
	bool group;	     /* leads its own process group: signals go to the whole group */
};

/* Initializes an empty proc (pid 0, pidfd -1), e.g. before a failed spawn or attach. */
void kha_proc_init(struct kha_proc *p);
/* Closes the pidfd. Does not signal or wait: the process, if any, keeps running. */
void kha_proc_release(struct kha_proc *p);

struct kha_proc_spawn_opts {
	/* argv[0] is a path, or a name looked up in $PATH; NULL-terminated. Required. */
	const char *const *argv;
	/* "NAME=value" entries added to the inherited environment (replacing an existing NAME). */
	const char *const *env_add;
	/* stdout and stderr are appended to this file (created 0644); NULL: inherited. */
	const char *log_path;
	/* > 0: stdout and stderr go to this descriptor instead (a pipe the caller reads). */
	int out_fd;
	/* working directory of the child; NULL: ours. */
	const char *cwd;
	/* setsid(): a new session and process group, detached from our terminal, so the child
	 * outlives us and a Ctrl-C in our terminal does not reach it. */
	bool new_session;
	/* A new process group only (setpgid), still in our session: killed as a group by the
	 * caller, reached by a Ctrl-C of our terminal only through us. */
	bool new_group;
};

/*
 * Starts a process. stdin is /dev/null; signal dispositions and the signal mask are reset to the
 * defaults (kha ignores SIGPIPE, the child must not inherit that); the child gets fds 0, 1 and 2
 * only (every other fd is closed, even one opened without O_CLOEXEC). On success fills *ret (a child, with its start time and
 * pidfd) and returns 0. Returns -ENOENT when argv[0] is not found, -EACCES when it cannot be
 * executed, other negative errnos, with diag naming the program or the log file.
 */
int kha_proc_spawn(const struct kha_proc_spawn_opts *o, struct kha_proc *ret,
		   struct kha_diag *d) KHA_WUR;

/*
 * Reads the start time of pid from /proc/PID/stat. Returns 0, or -ESRCH when there is no such
 * process or it already exited (a zombie counts as exited).
 */
int kha_proc_read_start_time(pid_t pid, uint64_t *ret_start_time) KHA_WUR;

/*
 * Finds a process recorded earlier: succeeds only when pid is alive and started at start_time.
 * group says whether it leads its own process group (as spawned with new_session). Returns 0 and
 * fills *ret (not a child), -ESRCH when the process is gone or the PID now belongs to another
 * process, -EINVAL for pid <= 0.
 */
int kha_proc_attach(pid_t pid, uint64_t start_time, bool group, struct kha_proc *ret) KHA_WUR;

/* True while the process runs (not a zombie) and is still the one identified by its start time. */
bool kha_proc_alive(struct kha_proc *p);

/*
 * Sends sig to the process (and to its process group when p->group) after checking its
 * identity. Returns 0, -ESRCH when it is gone (or the PID was recycled), or a negative errno.
 */
int kha_proc_signal(struct kha_proc *p, int sig) KHA_WUR;

/*
 * Waits until the process has exited, at most timeout_us (0: just check). A child is reaped and
 * its status stored in p->exit_status. Returns 0 when gone, -ETIMEDOUT when still running.
 */
int kha_proc_wait(struct kha_proc *p, uint64_t timeout_us) KHA_WUR;

/*
 * Stops the process: SIGTERM, then SIGKILL when it has not exited after grace_us (grace_us 0:
 * SIGKILL at once), then waits for it (kill_wait_us at most after SIGKILL). Returns 0 when it is
 * gone (including when it already was), -ETIMEDOUT when even SIGKILL did not end it in time
 * (a process stuck in the kernel), or a negative errno.
 */
int kha_proc_stop(struct kha_proc *p, uint64_t grace_us, uint64_t kill_wait_us,
		  struct kha_diag *d) KHA_WUR;

/*
 * Finds a program as execvp would: a name with a slash is checked as is, else each $PATH entry
 * is tried. Returns 0 and a new string (free() it) with the path, -ENOENT when not found.
 */
int kha_proc_find_program(const char *name, char **ret_path) KHA_WUR;

/*
 * The inherited environment (environ) with the "KEY=value" entries of env_add (NULL-terminated,
 * may be NULL) added, replacing inherited entries of the same key. Returns a calloc'ed array
 * the caller frees (the strings are borrowed from environ and env_add), or NULL on ENOMEM.
 */
char **kha_proc_merge_env(const char *const *env_add);

#endif
