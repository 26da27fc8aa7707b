// SPDX-License-Identifier: MIT
/*
 * COMMAND's processes: like kha_proc_spawn, but COMMAND runs under a small guard process that
 * kills COMMAND's whole process group when kha dies (PR_SET_PDEATHSIG), so a SIGKILLed kha
 * cannot leave COMMAND running while a standby's starts. Only async-signal-safe calls happen
 * after fork (the engine has other threads).
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "election-internal.h"
#include "kha/proc.h"
#include "kha/banned.h"

static void child_fail(int fd, int err)
{
	ssize_t w = write(fd, &err, sizeof(err));

	(void)w;
	_exit(127);
}

/* COMMAND itself, forked by the guard: only async-signal-safe calls. */
static void command_exec(const char *path, char *const *argv, char *const *env, pid_t guard,
			 int errfd)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int fd;

	/* if the guard is SIGKILLed, COMMAND goes with it */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(errfd, errno);
	if (getppid() != guard)
		_exit(127);
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, 0) < 0)
		child_fail(errfd, errno);
#ifdef SYS_close_range
	/* fds inherited without O_CLOEXEC (a test harness's pipe) must not pin anything; keep
	 * errfd (CLOEXEC) open so an exec failure can be reported */
	if (errfd > 3)
		(void)syscall(SYS_close_range, 3, errfd - 1, 0);
	(void)syscall(SYS_close_range, errfd + 1, ~0U, 0);
#endif
	execve(path, argv, env);
	child_fail(errfd, errno);
}

/*
 * The guard, forked by kha: leads a new session and process group that COMMAND joins, and
 * SIGKILLs that whole group when kha dies (PR_SET_PDEATHSIG), so no process of COMMAND's can
 * outlive a killed kha. Signals kha sends to the group reach COMMAND; the guard only waits and
 * exits with COMMAND's status. Only async-signal-safe calls (kha has other threads).
 */
static void guard_run(const char *path, char *const *argv, char *const *env, pid_t parent,
		      int errfd)
{
	sigset_t all;
	pid_t cmd, self;

	sigfillset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	if (setsid() < 0)
		child_fail(errfd, errno);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2) < 0)
		child_fail(errfd, errno);
	/* kha may have died before prctl: then nobody would tell us */
	if (getppid() != parent)
		_exit(127);
	self = getpid();
	/* _Fork: no atfork handlers, no locks inherited from kha's other threads */
	cmd = _Fork();
	if (cmd < 0)
		child_fail(errfd, errno);
	if (cmd == 0)
		command_exec(path, argv, env, self, errfd);
	close(errfd);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si), status;

		if (sig == SIGUSR2 && getppid() != parent) {
			/* kha is gone: so is everything it started */
			kill(0, SIGKILL);
			_exit(137);
		}
		if (sig != SIGCHLD || waitpid(cmd, &status, WNOHANG) != cmd)
			continue; /* signals for the group reached COMMAND too */
		if (WIFEXITED(status))
			_exit(WEXITSTATUS(status));
		if (WIFSIGNALED(status)) {
			/* die the same way, so kha reports the signal */
			struct sigaction dfl = {.sa_handler = SIG_DFL};
			sigset_t one;

			sig = WTERMSIG(status);
			(void)sigaction(sig, &dfl, NULL);
			sigemptyset(&one);
			sigaddset(&one, sig);
			kill(self, sig);
			(void)sigprocmask(SIG_UNBLOCK, &one, NULL);
			_exit(128 + sig);
		}
	}
}

int kha_elect__spawn(const char *const *argv, const char *const *env_add, struct kha_proc *ret,
		     struct kha_diag *d)
{
	kha_autofree char *path = NULL;
	kha_autofree char **env = NULL;
	pid_t parent = getpid(), pid;
	int pfd[2], err = 0, r;
	struct kha_proc p;
	ssize_t n;

	if (!argv || !argv[0] || !argv[0][0])
		return kha_diag_set(d, EINVAL, "no command given");
	r = kha_proc_find_program(argv[0], &path);
	if (r == -ENOMEM)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (r < 0)
		return kha_diag_set(d, ENOENT, "%s: program not found (or not executable)",
				    argv[0]);
	env = kha_proc_merge_env(env_add);
	if (!env)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return kha_diag_set(d, errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(pfd[0]);
		close(pfd[1]);
		return kha_diag_set(d, err, "fork: %s", strerror(err));
	}
	if (pid == 0) {
		close(pfd[0]);
		guard_run(path, (char *const *)argv, env, parent, pfd[1]);
	}
	close(pfd[1]);
	{
		/* EOF once COMMAND exec'd; bounded, so a stuck guard cannot hang kha */
		struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
		int pr;

		do {
			pr = poll(&pf, 1, 10000);
		} while (pr < 0 && errno == EINTR);
		if (pr <= 0) {
			int status;

			close(pfd[0]);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return kha_diag_set(d, ETIMEDOUT, "cannot start %s: no exec within 10s",
					    argv[0]);
		}
	}
	do {
		n = read(pfd[0], &err, sizeof(err));
	} while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(err)) {
		int status;

		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return kha_diag_set(d, err, "cannot start %s: %s", argv[0], strerror(err));
	}
	kha_proc_init(&p);
	p.pid = pid;
	p.child = true;
	p.group = true;
	if (kha_proc_read_start_time(pid, &p.start_time) < 0)
		p.start_time = 0;
#ifdef SYS_pidfd_open
	p.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p.pidfd >= 0)
		(void)fcntl(p.pidfd, F_SETFD, FD_CLOEXEC);
#endif
	*ret = p;
	return 0;
}
