// SPDX-License-Identifier: MIT
/* Child processes identified by PID and start time (see include/kha/proc.h). */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "kha/proc.h"
#include "kha/banned.h"

extern char **environ;

/* Polling interval when no pidfd is available. */
#define POLL_INTERVAL_US (5 * KHA_USEC_PER_MSEC)

static int sys_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

void kha_proc_init(struct kha_proc *p)
{
	*p = (struct kha_proc){.pidfd = -1, .exit_status = -1};
}

void kha_proc_release(struct kha_proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

/*
 * Reads the state letter and start time of pid. The command name (field 2) may hold spaces and
 * parentheses, so fields are counted after the last ')'.
 */
static int read_stat(pid_t pid, char *ret_state, uint64_t *ret_start)
{
	char path[64], buf[1024];
	kha_autoclose int fd = -1;
	unsigned long long start;
	ssize_t n;
	char *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n == 0 ? -ESRCH : (errno == ESRCH ? -ESRCH : -errno);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EBADMSG;
	*ret_state = p[2];
	/* p + 2 is field 3 (state); starttime is field 22 */
	p += 2;
	for (field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EBADMSG;
		p++;
	}
	errno = 0;
	start = strtoull(p, NULL, 10);
	if (errno)
		return -EBADMSG;
	*ret_start = start;
	return 0;
}

static bool state_exited(char state)
{
	return state == 'Z' || state == 'X' || state == 'x';
}

int kha_proc_read_start_time(pid_t pid, uint64_t *ret_start_time)
{
	uint64_t start;
	char state;
	int r;

	if (pid <= 0)
		return -EINVAL;
	r = read_stat(pid, &state, &start);
	if (r < 0)
		return r;
	if (state_exited(state))
		return -ESRCH;
	*ret_start_time = start;
	return 0;
}

/* True when the pidfd says the process has exited. */
static bool pidfd_exited(int pidfd)
{
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

	return poll(&pfd, 1, 0) > 0;
}

/* Reaps a child if it has exited. Returns true when it is gone. */
static bool reap(struct kha_proc *p)
{
	int status;
	pid_t r;

	if (p->exit_status != -1)
		return true;
	do {
		r = waitpid(p->pid, &status, WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r == p->pid) {
		p->exit_status = status;
		return true;
	}
	/* ECHILD: reaped elsewhere (SIGCHLD ignored, a signal handler): gone all the same */
	return r < 0 && errno == ECHILD;
}

int kha_proc_attach(pid_t pid, uint64_t start_time, bool group, struct kha_proc *ret)
{
	struct kha_proc p;
	uint64_t start;
	int r;

	if (pid <= 0)
		return -EINVAL;
	kha_proc_init(&p);
	p.pid = pid;
	p.start_time = start_time;
	p.group = group;
	/* open the pidfd first, then check identity: the fd then refers to the right process */
	p.pidfd = sys_pidfd_open(pid);
	if (p.pidfd < 0 && errno == ESRCH)
		return -ESRCH;
	r = kha_proc_read_start_time(pid, &start);
	if (r < 0 || start != start_time || (p.pidfd >= 0 && pidfd_exited(p.pidfd))) {
		kha_proc_release(&p);
		return r < 0 && r != -ESRCH ? r : -ESRCH;
	}
	*ret = p;
	return 0;
}

bool kha_proc_alive(struct kha_proc *p)
{
	uint64_t start;

	if (p->pid <= 0)
		return false;
	if (p->child)
		return !reap(p);
	if (p->pidfd >= 0)
		return !pidfd_exited(p->pidfd);
	return kha_proc_read_start_time(p->pid, &start) == 0 && start == p->start_time;
}

int kha_proc_signal(struct kha_proc *p, int sig)
{
	if (!kha_proc_alive(p))
		return -ESRCH;
	if (p->group) {
		/* the leader is alive and verified, so its PID is still this group's id */
		if (kill(-p->pid, sig) == 0)
			return 0;
		if (errno != ESRCH)
			return -errno;
	}
	if (p->pidfd >= 0) {
		if (sys_pidfd_send_signal(p->pidfd, sig) == 0)
			return 0;
		if (errno != ENOSYS)
			return -errno;
	}
	/* a child cannot be recycled before we reap it; others were checked just above */
	if (kill(p->pid, sig) < 0)
		return -errno;
	return 0;
}

int kha_proc_wait(struct kha_proc *p, uint64_t timeout_us)
{
	uint64_t deadline = kha_now_us() + timeout_us;

	for (;;) {
		uint64_t now, left;

		if (!kha_proc_alive(p))
			return 0;
		now = kha_now_us();
		if (now >= deadline)
			return -ETIMEDOUT;
		left = deadline - now;
		if (p->pidfd >= 0) {
			struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
			uint64_t ms = (left + 999) / 1000;

			/* readable once the process exits (for a child: once it is a zombie) */
			(void)poll(&pfd, 1, (int)KHA_MIN(ms, 60000));
		} else {
			kha_ignore(kha_sleep_us(KHA_MIN(left, POLL_INTERVAL_US), NULL));
		}
	}
}

int kha_proc_stop(struct kha_proc *p, uint64_t grace_us, uint64_t kill_wait_us, struct kha_diag *d)
{
	int r;

	if (grace_us > 0) {
		r = kha_proc_signal(p, SIGTERM);
		if (r == -ESRCH)
			return 0;
		if (r < 0)
			return kha_diag_set(d, r, "pid %d: SIGTERM: %s", (int)p->pid, strerror(-r));
		if (kha_proc_wait(p, grace_us) == 0)
			return 0;
	}
	r = kha_proc_signal(p, SIGKILL);
	if (r == -ESRCH)
		return 0;
	if (r < 0)
		return kha_diag_set(d, r, "pid %d: SIGKILL: %s", (int)p->pid, strerror(-r));
	if (kha_proc_wait(p, kill_wait_us) < 0)
		return kha_diag_set(d, ETIMEDOUT, "pid %d: still running after SIGKILL",
				    (int)p->pid);
	return 0;
}

int kha_proc_find_program(const char *name, char **ret_path)
{
	const char *path = getenv("PATH");
	struct stat st;

	if (!name || !*name)
		return -EINVAL;
	if (strchr(name, '/')) {
		if (stat(name, &st) < 0 || !S_ISREG(st.st_mode) || access(name, X_OK) < 0)
			return -ENOENT;
		*ret_path = strdup(name);
		return *ret_path ? 0 : -ENOMEM;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchrnul(path, ':');
		kha_autofree char *cand = NULL;
		int len = (int)(end - path);

		/* an empty PATH entry means the current directory */
		if (asprintf(&cand, "%.*s/%s", len ? len : 1, len ? path : ".", name) < 0)
			return -ENOMEM;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
			*ret_path = KHA_TAKE_PTR(cand);
			return 0;
		}
		path = *end ? end + 1 : end;
	}
	return -ENOENT;
}

char **kha_proc_merge_env(const char *const *env_add)
{
	size_t n_env = 0, n_add = 0, n = 0;
	char **env;

	while (environ && environ[n_env])
		n_env++;
	while (env_add && env_add[n_add])
		n_add++;
	env = calloc(n_env + n_add + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n_env; i++) {
		size_t klen = strcspn(environ[i], "=");
		bool replaced = false;

		for (size_t j = 0; j < n_add && !replaced; j++)
			replaced = strncmp(env_add[j], environ[i], klen) == 0 &&
				   env_add[j][klen] == '=';
		if (!replaced)
			env[n++] = environ[i];
	}
	for (size_t j = 0; j < n_add; j++)
		env[n++] = (char *)env_add[j];
	env[n] = NULL;
	return env;
}

int kha_proc_spawn(const struct kha_proc_spawn_opts *o, struct kha_proc *ret, struct kha_diag *d)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	kha_autoclose int logfd = -1;
	kha_autofree char **env = NULL;
	int outfd;
	sigset_t all, none;
	struct kha_proc p;
	uint64_t start = 0;
	char state;
	short flags;
	pid_t pid;
	int r;

	if (!o->argv || !o->argv[0])
		return kha_diag_set(d, EINVAL, "spawn: no program given");
	if (o->log_path) {
		logfd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY,
			     0644);
		if (logfd < 0)
			return kha_diag_set(d, errno, "%s: cannot open the log file: %s",
					    o->log_path, strerror(errno));
	}
	env = kha_proc_merge_env(o->env_add);
	if (!env)
		return kha_diag_set(d, ENOMEM, "spawn %s: out of memory", o->argv[0]);

	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return kha_diag_set(d, r, "spawn %s: %s", o->argv[0], strerror(r));
	r = posix_spawnattr_init(&attr);
	if (r) {
		posix_spawn_file_actions_destroy(&fa);
		return kha_diag_set(d, r, "spawn %s: %s", o->argv[0], strerror(r));
	}
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	outfd = o->out_fd > 0 ? o->out_fd : logfd;
	if (!r && outfd >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, outfd, 1);
	if (!r && outfd >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, outfd, 2);
	/* the fds we inherited without O_CLOEXEC (a test harness's pipe) must not pin anything */
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!r && o->cwd)
		r = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	sigfillset(&all);
	sigemptyset(&none);
	flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	if (o->new_session)
		flags |= POSIX_SPAWN_SETSID;
	else if (o->new_group)
		flags |= POSIX_SPAWN_SETPGROUP; /* group 0: the child's own pid */
	if (!r)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	if (!r)
		r = posix_spawnattr_setflags(&attr, flags);
	if (!r)
		r = posix_spawnp(&pid, o->argv[0], &fa, &attr, (char *const *)o->argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		if (r == ENOENT)
			return kha_diag_set(d, r, "%s: program not found", o->argv[0]);
		return kha_diag_set(d, r, "cannot start %s: %s", o->argv[0], strerror(r));
	}

	kha_proc_init(&p);
	p.pid = pid;
	p.child = true;
	p.group = o->new_session || o->new_group;
	/* our un-reaped child cannot be recycled, so these two are race-free */
	if (read_stat(pid, &state, &start) == 0)
		p.start_time = start;
	p.pidfd = sys_pidfd_open(pid);
	*ret = p;
	return 0;
}
