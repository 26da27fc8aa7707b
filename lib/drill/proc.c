// SPDX-License-Identifier: MIT
/* Child processes of a drill: spawn, collect output, reap, kill by process group. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "kha/proc.h"
#include "drill-internal.h"
#include "kha/banned.h"

int kha_drill__proc_spawn(struct drill_proc *p, const char *cmd, uint64_t timeout_us)
{
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	/* own process group (so the whole command can be killed); kha_proc_spawn gives it
	 * /dev/null as stdin, fds 0-2 only and a clean signal state */
	struct kha_proc_spawn_opts o = {.argv = argv, .new_group = true};
	struct kha_proc kp;
	int pipefd[2];
	int r;

	*p = (struct drill_proc){.pidfd = -1, .outfd = -1};
	p->out = calloc(1, KHA_DRILL_OUTPUT_MAX + 1);
	if (!p->out)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		free(p->out);
		p->out = NULL;
		return r;
	}
	/* the child's end must block: commands do not expect a non-blocking stdout */
	if (fcntl(pipefd[1], F_SETFL, 0) < 0) {
		r = -errno;
		goto fail;
	}
	o.out_fd = pipefd[1];
	r = kha_proc_spawn(&o, &kp, NULL);
	if (r < 0)
		goto fail;
	close(pipefd[1]);
	p->pid = kp.pid;
	p->pidfd = KHA_TAKE_FD(kp.pidfd); /* the rest of kp owns nothing */
	p->outfd = pipefd[0];
	p->started_us = kha_now_us();
	p->deadline_us = timeout_us ? p->started_us + timeout_us : KHA_DRILL_NONE;
	return 0;
fail:
	close(pipefd[0]);
	close(pipefd[1]);
	free(p->out);
	*p = (struct drill_proc){.pidfd = -1, .outfd = -1};
	return r;
}

static void read_output(struct drill_proc *p)
{
	char buf[4096];

	/* bounded, so a command flooding its output cannot starve the prober */
	for (int i = 0; i < 64 && p->outfd >= 0; i++) {
		ssize_t n = read(p->outfd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return; /* EAGAIN: nothing more for now */
		if (n == 0) {
			close(p->outfd);
			p->outfd = -1;
			return;
		}
		if (p->out_len < KHA_DRILL_OUTPUT_MAX) {
			size_t keep = KHA_MIN((size_t)n, KHA_DRILL_OUTPUT_MAX - p->out_len);
			memcpy(p->out + p->out_len, buf, keep);
			p->out_len += keep;
			p->out[p->out_len] = '\0';
		}
		p->out_total += (size_t)n;
	}
}

bool kha_drill__proc_poll(struct drill_proc *p)
{
	int st;
	pid_t w;

	read_output(p);
	if (p->exited || p->pid <= 0)
		return true;
	w = waitpid(p->pid, &st, WNOHANG);
	if (w == p->pid || (w < 0 && errno == ECHILD)) {
		p->exited = true;
		p->wstatus = w == p->pid ? st : 0;
		/* what the shell wrote before exiting is in the pipe already */
		read_output(p);
		if (p->outfd >= 0) {
			/* a background child may keep the pipe open: stop reading it */
			close(p->outfd);
			p->outfd = -1;
		}
		return true;
	}
	return false;
}

void kha_drill__proc_signal(struct drill_proc *p, int sig)
{
	if (p->pid > 0 && !p->exited)
		kill(-p->pid, sig);
}

void kha_drill__proc_kill_wait(struct drill_proc *p)
{
	if (p->pid <= 0 || p->exited)
		return;
	kill(-p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
	for (;;) {
		int st;
		pid_t w = waitpid(p->pid, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		p->exited = true;
		p->wstatus = w == p->pid ? st : 0;
		break;
	}
	read_output(p);
}

void kha_drill__proc_release(struct drill_proc *p, char **ret_output)
{
	if (p->outfd >= 0)
		close(p->outfd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (ret_output)
		*ret_output = p->out;
	else
		free(p->out);
	*p = (struct drill_proc){.pidfd = -1, .outfd = -1};
}
