// SPDX-License-Identifier: MIT
/*
 * Which master or host a fault command of kha lab acts on: by name, by role (the election's
 * leader, a follower, etcd's Raft leader, a Lease's holder), and entering a host of a
 * Kubernetes lab to run a command there (kha lab exec).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab-internal.h"
#include "kha/banned.h"

int kha_lab_master_named(struct kha_lab *lab, const char *name, struct kha_lab_master **ret,
			 struct kha_diag *d)
{
	char names[256] = "";

	*ret = kha_lab_find_master(lab, name);
	if (*ret)
		return 0;
	for (size_t i = 0; i < lab->n_masters; i++) {
		size_t used = strlen(names);

		snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
			 lab->masters[i].name);
	}
	return kha_diag_set(d, EINVAL, "no member '%s' in %s (members: %s)", name, lab->dir, names);
}

/* the last running master, not frozen, that is not leader (NULL: none) */
static struct kha_lab_master *follower(struct kha_lab *lab, const char *leader)
{
	for (size_t i = lab->n_masters; i-- > 0;) {
		struct kha_lab_master *m = &lab->masters[i];
		struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);

		if (m->frozen || !etcd || !kha_lab_proc_running(etcd))
			continue;
		if (!leader || strcmp(leader, m->name) != 0)
			return m;
	}
	return NULL;
}

int kha_lab_pick_master(struct kha_lab *lab, enum kha_lab_pick pick, uint64_t timeout_us,
			struct kha_lab_master **ret, struct kha_diag *d)
{
	kha_autofree char *leader = NULL;
	int r;

	*ret = NULL;
	if (pick == KHA_LAB_PICK_RAFT_LEADER)
		r = kha_lab_raft_leader(lab, timeout_us, &leader, d);
	else
		r = kha_lab_leading_master(lab, timeout_us, &leader, d);
	if (r < 0)
		return r;
	if (pick == KHA_LAB_PICK_FOLLOWER) {
		*ret = follower(lab, leader);
		if (!*ret)
			return kha_diag_set(d, ENOENT, "no running master that does not lead%s%s",
					    leader ? ": only " : "", leader ? leader : "");
		return 0;
	}
	*ret = leader ? kha_lab_find_master(lab, leader) : NULL;
	if (!*ret)
		return kha_diag_set(d, ENOENT, "nobody leads %s right now%s%s%s",
				    lab->election ? lab->election : "etcd (no Raft leader)",
				    leader ? " (the leader is '" : "", leader ? leader : "",
				    leader ? "', not a master of the lab)" : "");
	return 0;
}

int kha_lab_lease_holder_master(struct kha_lab *lab, const char *component,
				struct kha_lab_master **ret, struct kha_diag *d)
{
	char holder[256] = "";
	size_t n;

	*ret = NULL;
	if (kha_lab_lease_holder(lab, component, holder, sizeof(holder)) < 0)
		return kha_diag_set(d, ENOENT,
				    "cannot read the Lease kube-system/%s through the node's entry",
				    component);
	/* the identity is "<host>_<uuid>", the host a master's name */
	n = strcspn(holder, "_");
	holder[n] = '\0';
	*ret = n ? kha_lab_find_master(lab, holder) : NULL;
	if (!*ret)
		return kha_diag_set(d, ENOENT, "nobody holds the Lease of %s%s%s", component,
				    n ? " among the masters: " : "", holder);
	return 0;
}

const char *kha_lab_host_entry(const char *host)
{
	return strncmp(host, "lb", 2) == 0 ? "vip" : host;
}

int kha_lab_exec_enter(const struct kha_lab *lab, const char *host, struct kha_diag *d)
{
	const char *netns = kha_lab_host_netns(lab, host);
	kha_autofree char *kubeconfig = NULL, *path = NULL;
	char nspath[128];
	int fd, r;

	if (!lab->k8s_bin)
		return kha_diag_set(d, ENOENT,
				    "the lab runs no Kubernetes (made without --kubernetes): no "
				    "hosts");
	if (!netns)
		return kha_diag_set(d, EINVAL, "no host '%s' in %s (node, lb1..lb%zu, m1..m%zu)",
				    host, lab->dir, lab->n_lbs, lab->n_masters);
	r = kha_lab_kubeconfig(lab, kha_lab_host_entry(host), &kubeconfig, d);
	if (r < 0)
		return r;
	snprintf(nspath, sizeof(nspath), "/run/netns/%s", netns);
	fd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		kha_diag_set(d, -r, "cannot enter %s's namespace %s: %s", host, netns,
			     strerror(-r));
		return -EHOSTUNREACH; /* the host is not reachable: 69, whatever the cause */
	}
	close(fd);
	if (asprintf(&path, "%s:%s", lab->k8s_bin,
		     getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin") < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (setenv("KUBECONFIG", kubeconfig, 1) < 0 || setenv("PATH", path, 1) < 0 ||
	    setenv("KHA_LAB_HOST", host, 1) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return 0;
}
