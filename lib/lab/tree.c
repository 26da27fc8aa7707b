// SPDX-License-Identifier: MIT
/*
 * The descendants of a lab process, found through /proc at the moment they are needed: kha
 * elect runs `kha etcd backup` under a guard process in a session of its own, so neither the
 * process group nor the session of the recorded process reaches it. A descendant is identified
 * like a recorded process, by PID and start time (a child never starts before its parent), and
 * attached through a pidfd before it is signalled.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "kha/lab.h"
#include "kha/proc.h"
#include "lab-internal.h"
#include "kha/banned.h"

struct pinfo {
	pid_t pid, ppid;
	uint64_t start_time;
};

/* Parses /proc/PID/stat: ppid and start time of a live (not zombie) process. */
static bool read_stat(pid_t pid, struct pinfo *ret)
{
	char path[64], buf[1024];
	const char *p;
	unsigned long long start = 0;
	char state = 0;
	int ppid = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			 "%*d %*d %llu",
			 &state, &ppid, &start) != 3)
		return false;
	if (state == 'Z' || state == 'X' || state == 'x')
		return false;
	ret->pid = pid;
	ret->ppid = ppid;
	ret->start_time = start;
	return true;
}

/* Every live process, as a new array (free() it); NULL when /proc cannot be read. */
static struct pinfo *scan(size_t *ret_n)
{
	struct pinfo *all = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir = opendir("/proc");

	if (!dir)
		return NULL;
	while ((de = readdir(dir))) {
		char *end;
		long pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid > INT32_MAX)
			continue;
		if (KHA_GROW(all, cap, n + 1) < 0) {
			free(all);
			closedir(dir);
			return NULL;
		}
		if (read_stat((pid_t)pid, &all[n]))
			n++;
	}
	closedir(dir);
	*ret_n = n;
	return all;
}

size_t kha_lab__descendants(pid_t pid, uint64_t start_time, struct kha_proc *out, size_t max)
{
	struct pinfo tree[LAB_MAX_DESCENDANTS + 1];
	size_t n_all = 0, n_tree = 1, n_out = 0;
	struct pinfo *all = scan(&n_all);
	bool grew = true;

	if (!all)
		return 0;
	tree[0] = (struct pinfo){.pid = pid, .start_time = start_time};
	/* a fixed point: the list is not sorted by parent, so repeat until nothing is added */
	while (grew && n_tree < KHA_ARRAY_SIZE(tree)) {
		grew = false;
		for (size_t i = 0; i < n_all && n_tree < KHA_ARRAY_SIZE(tree); i++) {
			bool known = false, child = false;

			for (size_t j = 0; j < n_tree; j++) {
				known |= tree[j].pid == all[i].pid;
				child |= tree[j].pid == all[i].ppid &&
					 all[i].start_time >= tree[j].start_time;
			}
			if (child && !known) {
				tree[n_tree++] = all[i];
				grew = true;
			}
		}
	}
	free(all);
	for (size_t j = 1; j < n_tree && n_out < max; j++)
		if (kha_proc_attach(tree[j].pid, tree[j].start_time, false, &out[n_out]) == 0)
			n_out++;
	return n_out;
}

void kha_lab__release_procs(struct kha_proc *procs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kha_proc_release(&procs[i]);
}

size_t kha_lab_proc_descendants(const struct kha_lab_proc *p)
{
	struct kha_proc kids[LAB_MAX_DESCENDANTS];
	size_t n;

	if (p->pid <= 0)
		return 0;
	n = kha_lab__descendants(p->pid, p->start_time, kids, KHA_ARRAY_SIZE(kids));
	kha_lab__release_procs(kids, n);
	return n;
}
