// SPDX-License-Identifier: MIT
/* Unit tests of lib/core/proc.c: spawn, logs, environment, liveness, stop with escalation, and
 * the guard against signalling a recycled PID. Children are /bin/sh and sleep, stopped by every
 * test (a teardown kills what a failed assertion left behind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "kha/file.h"
#include "kha/proc.h"
#include "kha/banned.h"

struct fixture {
	char dir[64];
	char log[128];
	struct kha_proc p;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kha-test-proc-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->log, sizeof(f->log), "%s/child.log", f->dir);
	kha_proc_init(&f->p);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->p.pid > 0 && kha_proc_alive(&f->p))
		kha_ignore(kha_proc_stop(&f->p, 0, 5 * KHA_USEC_PER_SEC, NULL));
	kha_proc_release(&f->p);
	kha_ignore(kha_file_remove_tree(f->dir, NULL));
	free(f);
	return 0;
}

__attribute__((noinline)) static char *read_log(struct fixture *f)
{
	char *buf = NULL;
	size_t len;

	assert_int_equal(kha_file_read_all(f->log, 1 << 20, &buf, &len, NULL), 0);
	return buf;
}

/* Waits (bounded) until the child's log contains s: the child is then past its setup. */
static void wait_log(struct fixture *f, const char *s)
{
	uint64_t deadline = kha_now_us() + 5 * KHA_USEC_PER_SEC;

	while (kha_now_us() < deadline) {
		kha_autofree char *buf = NULL;
		size_t len;

		if (kha_file_read_all(f->log, 1 << 20, &buf, &len, NULL) == 0 && strstr(buf, s))
			return;
		usleep(5000);
	}
	fail_msg("child log never showed '%s'", s);
}

static void test_spawn_logs_and_exit_status(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .log_path = f->log};
	kha_autofree char *log = NULL;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	assert_true(f->p.pid > 0);
	assert_true(f->p.child);
	assert_int_equal(kha_proc_wait(&f->p, 5 * KHA_USEC_PER_SEC), 0);
	assert_true(WIFEXITED(f->p.exit_status));
	assert_int_equal(WEXITSTATUS(f->p.exit_status), 3);
	assert_false(kha_proc_alive(&f->p));
	log = read_log(f);
	assert_non_null(strstr(log, "out\n"));
	assert_non_null(strstr(log, "err\n"));
}

static void test_spawn_environment_cwd_and_signals(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {
		"sh", "-c",
		"echo X=$KHA_TEST_X HOME=$HOME PWD=$(pwd); grep SigIgn /proc/self/status", NULL};
	const char *env[] = {"KHA_TEST_X=42", "HOME=/nowhere", NULL};
	struct kha_proc_spawn_opts o = {
		.argv = argv, .env_add = env, .log_path = f->log, .cwd = f->dir};
	kha_autofree char *log = NULL, *want = NULL;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	unsigned long long ign;
	const char *p;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	signal(SIGPIPE, old);
	assert_int_equal(kha_proc_wait(&f->p, 5 * KHA_USEC_PER_SEC), 0);
	log = read_log(f);
	assert_true(asprintf(&want, "X=42 HOME=/nowhere PWD=%s\n", f->dir) > 0);
	assert_non_null(strstr(log, want));
	/* our ignored SIGPIPE must not be inherited */
	p = strstr(log, "SigIgn:");
	assert_non_null(p);
	ign = strtoull(p + 7, NULL, 16);
	assert_int_equal(ign & (1ULL << (SIGPIPE - 1)), 0);
}

static void test_spawn_missing_program(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"kha-no-such-program", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv};
	struct kha_diag d = {0};
	char *path = NULL;

	assert_int_equal(kha_proc_spawn(&o, &f->p, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "kha-no-such-program"));
	assert_int_equal(kha_proc_find_program("kha-no-such-program", &path), -ENOENT);
	assert_int_equal(kha_proc_find_program("sh", &path), 0);
	assert_non_null(strstr(path, "/sh"));
	free(path);
}

static void test_spawn_does_not_leak_fds(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"sleep", "30", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .log_path = f->log};
	char probe[160], path[64], link[PATH_MAX], target[PATH_MAX + 64];
	int n_log = 0, leaky;
	struct dirent *de;
	DIR *dir;

	/* an fd opened without O_CLOEXEC (by a library, a harness) must stay ours all the same */
	snprintf(probe, sizeof(probe), "%s/probe", f->dir);
	leaky = open(probe, O_WRONLY | O_CREAT, 0600);
	assert_true(leaky > 2);
	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	close(leaky);
	/* the dynamic loader may still be opening libraries: look for ours, not for a count */
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)f->p.pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((de = readdir(dir))) {
		ssize_t len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(target, sizeof(target), "%s/%s", path, de->d_name);
		len = readlink(target, link, sizeof(link) - 1);
		if (len < 0)
			continue; /* closed meanwhile */
		link[len] = '\0';
		assert_string_not_equal(link, probe);
		if (strcmp(link, f->log) == 0) {
			assert_true(strcmp(de->d_name, "1") == 0 || strcmp(de->d_name, "2") == 0);
			n_log++;
		}
		if (strcmp(de->d_name, "0") == 0)
			assert_string_equal(link, "/dev/null");
	}
	closedir(dir);
	assert_int_equal(n_log, 2);
	assert_int_equal(kha_proc_stop(&f->p, KHA_USEC_PER_SEC, KHA_USEC_PER_SEC, NULL), 0);
}

static void test_new_session_alive_and_stop(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"sleep", "30", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .new_session = true};
	uint64_t start;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	assert_int_equal(getsid(f->p.pid), f->p.pid);
	assert_true(f->p.group);
	assert_true(kha_proc_alive(&f->p));
	assert_int_equal(kha_proc_read_start_time(f->p.pid, &start), 0);
	assert_int_equal(start, f->p.start_time);
	assert_int_equal(kha_proc_wait(&f->p, 20 * KHA_USEC_PER_MSEC), -ETIMEDOUT);
	assert_int_equal(kha_proc_stop(&f->p, 5 * KHA_USEC_PER_SEC, KHA_USEC_PER_SEC, NULL), 0);
	assert_false(kha_proc_alive(&f->p));
	assert_true(WIFSIGNALED(f->p.exit_status));
	assert_int_equal(WTERMSIG(f->p.exit_status), SIGTERM);
	assert_int_equal(kha_proc_read_start_time(f->p.pid, &start), -ESRCH);
	/* stopping what is gone is fine */
	assert_int_equal(kha_proc_stop(&f->p, KHA_USEC_PER_SEC, KHA_USEC_PER_SEC, NULL), 0);
	assert_int_equal(kha_proc_signal(&f->p, SIGTERM), -ESRCH);
}

static void test_new_group_writes_to_a_pipe(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .new_group = true};
	char buf[64] = "";
	size_t len = 0;
	ssize_t n;
	int pipefd[2];

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	o.out_fd = pipefd[1];
	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	close(pipefd[1]);
	assert_true(f->p.group);
	/* its own group, still in our session */
	assert_int_equal(getpgid(f->p.pid), f->p.pid);
	assert_int_equal(getsid(f->p.pid), getsid(0));
	while ((n = read(pipefd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(pipefd[0]);
	assert_string_equal(buf, "out\nerr\n");
	assert_int_equal(kha_proc_wait(&f->p, 5 * KHA_USEC_PER_SEC), 0);
	assert_true(WIFEXITED(f->p.exit_status));
}

static void test_stop_escalates_to_sigkill(void **state)
{
	struct fixture *f = *state;
	/* ignores SIGTERM, as a wedged daemon would; sleep inherits the ignored disposition */
	const char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; sleep 30", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .log_path = f->log, .new_session = true};
	uint64_t t0;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	wait_log(f, "ready");
	t0 = kha_now_us();
	assert_int_equal(kha_proc_stop(&f->p, 200 * KHA_USEC_PER_MSEC, KHA_USEC_PER_SEC, NULL), 0);
	assert_true(kha_now_us() - t0 >= 200 * KHA_USEC_PER_MSEC);
	assert_true(WIFSIGNALED(f->p.exit_status));
	assert_int_equal(WTERMSIG(f->p.exit_status), SIGKILL);
}

static void test_recycled_pid_is_never_signalled(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"sleep", "30", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv};
	struct kha_proc stale, other;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	/* a state file recorded this PID for a process that started at another time: the PID
	 * now belongs to someone else */
	assert_int_equal(kha_proc_attach(f->p.pid, f->p.start_time + 1, false, &other), -ESRCH);
	kha_proc_init(&stale);
	stale.pid = f->p.pid;
	stale.start_time = f->p.start_time + 1;
	assert_false(kha_proc_alive(&stale));
	assert_int_equal(kha_proc_signal(&stale, SIGKILL), -ESRCH);
	assert_int_equal(kha_proc_stop(&stale, 0, KHA_USEC_PER_SEC, NULL), 0);
	assert_int_equal(kha_proc_wait(&f->p, 50 * KHA_USEC_PER_MSEC), -ETIMEDOUT);
	assert_true(kha_proc_alive(&f->p));
	assert_int_equal(kha_proc_attach(-1, 0, false, &other), -EINVAL);
}

static void test_attach_stops_a_recorded_process(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"sleep", "30", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv, .new_session = true};
	struct kha_proc rec;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	/* as another kha invocation would, from the recorded PID and start time */
	assert_int_equal(kha_proc_attach(f->p.pid, f->p.start_time, true, &rec), 0);
	assert_false(rec.child);
	assert_true(kha_proc_alive(&rec));
	assert_int_equal(kha_proc_stop(&rec, 5 * KHA_USEC_PER_SEC, KHA_USEC_PER_SEC, NULL), 0);
	/* gone for the stranger's view even though only our child handle can reap it */
	assert_false(kha_proc_alive(&rec));
	kha_proc_release(&rec);
	assert_int_equal(kha_proc_wait(&f->p, KHA_USEC_PER_SEC), 0);
	assert_int_equal(WTERMSIG(f->p.exit_status), SIGTERM);
	assert_int_equal(kha_proc_attach(f->p.pid, f->p.start_time, true, &rec), -ESRCH);
}

static void test_attach_without_pidfd_falls_back_to_proc(void **state)
{
	struct fixture *f = *state;
	const char *argv[] = {"sleep", "30", NULL};
	struct kha_proc_spawn_opts o = {.argv = argv};
	struct kha_proc rec;

	assert_int_equal(kha_proc_spawn(&o, &f->p, NULL), 0);
	assert_int_equal(kha_proc_attach(f->p.pid, f->p.start_time, false, &rec), 0);
	/* as on a kernel without pidfds: identity checked through /proc each time */
	kha_proc_release(&rec);
	assert_true(kha_proc_alive(&rec));
	assert_int_equal(kha_proc_stop(&rec, KHA_USEC_PER_SEC, KHA_USEC_PER_SEC, NULL), 0);
	assert_false(kha_proc_alive(&rec)); /* a zombie counts as exited */
	assert_int_equal(kha_proc_wait(&f->p, KHA_USEC_PER_SEC), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_spawn_logs_and_exit_status),
		T(test_spawn_environment_cwd_and_signals),
		T(test_spawn_missing_program),
		T(test_spawn_does_not_leak_fds),
		T(test_new_session_alive_and_stop),
		T(test_new_group_writes_to_a_pipe),
		T(test_stop_escalates_to_sigkill),
		T(test_recycled_pid_is_never_signalled),
		T(test_attach_stops_a_recorded_process),
		T(test_attach_without_pidfd_falls_back_to_proc),
	};
#undef T
	return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
