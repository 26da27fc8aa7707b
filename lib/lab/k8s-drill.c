// SPDX-License-Identifier: MIT
/*
 * kha lab drill on a Kubernetes lab (see include/kha/lab.h): four lib/drill runs in Kubernetes
 * mode at once, writes and reads through each entry (the node's kha proxy, the VIP of the load
 * balancers). The node's write drill carries the fault and recovery commands (kha lab
 * subcommands, so they show in its report and SVG); the three others only probe, each in a
 * thread of its own, and are stopped with it. The watcher thread of drill.c polls the backup
 * election and directories, and here also the Leases of kube-controller-manager and
 * kube-scheduler (every 250 ms, through the node's entry).
 *
 * Clocks: every drill reports times relative to its own t0 (report->t0_us, on kha_now_us()'s
 * clock); the analysis moves a window of the node's write drill into another drill's time by
 * the difference of their t0. Lease terms are stamped on the same clock; acquireTime is the
 * API server's wall clock (the same machine), compared with started_wall_us.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "kha/file.h"
#include "kha/kube.h"
#include "kha/lab.h"
#include "kha/proc.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define DEFAULT_RATE	    20
#define DEFAULT_BASELINE_US (5 * KHA_USEC_PER_SEC)
#define DEFAULT_DOWN_US	    (8 * KHA_USEC_PER_SEC)
#define DEFAULT_PERIOD_US   (40 * KHA_USEC_PER_SEC)
#define DEFAULT_ROLLING_US  (150 * KHA_USEC_PER_SEC)
#define DEFAULT_TIMEOUT_US  (2 * KHA_USEC_PER_SEC)
#define DEFAULT_SLO	    90.0
#define STEP_TIMEOUT_US	    (180 * KHA_USEC_PER_SEC)
#define ROLLING_TIMEOUT_US  (600 * KHA_USEC_PER_SEC)
#define READY_AFTER_US	    (120 * KHA_USEC_PER_SEC)
#define LEASE_CALL_US	    (1 * KHA_USEC_PER_SEC)
#define SNAP_SLACK_US	    (1 * KHA_USEC_PER_SEC)
#define MAX_LEASE_TERMS	    256
#define UPGRADE_LOCK	    "kha-lab-upgrade"

static const struct {
	const char *name, *recover, *fault_args, *recover_args, *what;
} kfaults[KHA_LAB_K8S_FAULTS] = {
	[KHA_LAB_K8S_KILL_MASTER] =
		{"kill-master", "restart-master", "stop-member --kill --follower",
		 "start-member --all",
		 "SIGKILL every process of a master that does not lead the "
		 "backups (etcd, apiserver, controller-manager, scheduler, elect)"},
	[KHA_LAB_K8S_FREEZE_MASTER] = {"freeze-master", "thaw-master", "freeze-member --follower",
				       "thaw-member --all",
				       "SIGSTOP every process of a master that does not lead the "
				       "backups (a hung machine)"},
	[KHA_LAB_K8S_STOP_APISERVER] = {"stop-apiserver", "start-apiserver",
					"stop-process --follower kube-apiserver --grace 30s",
					"start-member --all",
					"SIGTERM one kube-apiserver: /readyz turns unready for "
					"--shutdown-delay-duration, then it stops (graceful)"},
	[KHA_LAB_K8S_KILL_CM_LEADER] =
		{"kill-cm-leader", "restart-cm",
		 "stop-process --lease-holder kube-controller-manager --kill", "start-member --all",
		 "SIGKILL the kube-controller-manager holding the Lease "
		 "kube-system/kube-controller-manager"},
	[KHA_LAB_K8S_KILL_ETCD_LEADER] = {"kill-etcd-leader", "restart-etcd-leader",
					  "stop-member --kill --raft-leader", "start-member --all",
					  "SIGKILL every process of the etcd Raft leader's master"},
	[KHA_LAB_K8S_KILL_LB] = {"kill-lb", "restart-lb", "stop-host --vip-holder --kill",
				 "start-host --all",
				 "SIGKILL kha proxy and kha vip of the load balancer holding the "
				 "VIP (the VIP moves)"},
	[KHA_LAB_K8S_ROLLING] = {"rolling", NULL, NULL, NULL,
				 "every master stopped (SIGTERM) and started again in turn under "
				 "kha lock, the lab ready again before the next (an upgrade)"},
};

const char *kha_lab_k8s_fault_name(enum kha_lab_k8s_fault k)
{
	return (unsigned)k < KHA_LAB_K8S_FAULTS ? kfaults[k].name : "?";
}

const char *kha_lab_entry_name(enum kha_lab_entry e)
{
	return e == KHA_LAB_ENTRY_NODE ? "node" : e == KHA_LAB_ENTRY_VIP ? "vip" : "?";
}

int kha_lab_k8s_fault_parse(const char *list, unsigned *ret_mask)
{
	unsigned mask = 0;
	const char *p = list;

	if (!list || !*list)
		return -EINVAL;
	if (strcmp(list, "all") == 0) {
		*ret_mask = (1u << KHA_LAB_K8S_FAULTS) - 1;
		return 0;
	}
	while (*p) {
		size_t n = strcspn(p, ",");
		int k;

		for (k = 0; k < KHA_LAB_K8S_FAULTS; k++)
			if (strlen(kfaults[k].name) == n && strncmp(p, kfaults[k].name, n) == 0)
				break;
		if (k == KHA_LAB_K8S_FAULTS)
			return -EINVAL;
		mask |= 1u << k;
		p += n;
		if (*p == ',')
			p++;
	}
	*ret_mask = mask;
	return mask ? 0 : -EINVAL;
}

/* ---- who holds what ---- */

/* The master of a holder identity ("m1_3f2a..."): the host part, before the '_'. */
void kha_lab__identity_master(const char *identity, char *buf, size_t size)
{
	size_t n = strcspn(identity, "_");

	snprintf(buf, size, "%.*s", (int)KHA_MIN(n, size - 1), identity);
}

int kha_lab_vip_holder(const struct kha_lab *lab, char **ret_host, struct kha_diag *d)
{
	*ret_host = NULL;
	if (!lab->vip)
		return kha_diag_set(d, EINVAL, "the lab in %s has no VIP", lab->dir);
	for (size_t i = 0; i < lab->n_lbs; i++) {
		kha_autofree char *out = NULL, *text = NULL;
		struct kha_proc_spawn_opts o = {0};
		struct kha_proc p;
		char to[64];
		size_t len = 0;
		int r;

		if (asprintf(&out, "%s/%s/vip-holder.out", lab->dir, lab->lbs[i].name) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		unlink(out);
		snprintf(to, sizeof(to), "%s/32", lab->vip);
		o.argv = (const char *const[]){
			"ip", "-n", lab->lbs[i].netns, "-o", "-4", "addr", "show", "to", to, NULL};
		o.log_path = out;
		r = kha_proc_spawn(&o, &p, d);
		if (r < 0)
			return r;
		r = kha_proc_wait(&p, 5 * KHA_USEC_PER_SEC);
		kha_proc_release(&p);
		if (r < 0)
			return kha_diag_set(d, -r, "ip -n %s addr show: %s", lab->lbs[i].netns,
					    strerror(-r));
		r = kha_file_read_all(out, 64 * 1024, &text, &len, NULL);
		unlink(out);
		if (r == 0 && len > 0 && strstr(text, lab->vip)) {
			*ret_host = strdup(lab->lbs[i].name);
			return *ret_host ? 0 : kha_diag_set(d, ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* ---- the Lease poller (runs in the watcher's thread) ---- */

struct leases {
	struct kha_kube_client *c;
	struct kha_lab_lease_term *terms[2];
	size_t n[2];
	int32_t cm_duration_s;
};

static const char *const lease_names[2] = {"kube-controller-manager", "kube-scheduler"};

static void poll_leases(struct kha_lab__watcher *w)
{
	struct leases *ls = w->extra_data;

	if (!ls->c && kha_lab__k8s_client(w->lab, "node.conf", NULL, &ls->c, NULL) < 0)
		return;
	for (int i = 0; i < 2; i++) {
		struct kha_kube_lease lease;
		char master[KHA_LAB_NAME_MAX] = "";
		struct kha_lab_lease_term *t;

		if (kha_kube_lease_get(ls->c, "kube-system", lease_names[i], &lease, NULL) < 0)
			continue; /* no answer: keep the last observation */
		if (lease.holder_identity[0])
			kha_lab__identity_master(lease.holder_identity, master, sizeof(master));
		if (i == 0 && lease.lease_duration_s)
			ls->cm_duration_s = lease.lease_duration_s;
		if (ls->n[i] && strcmp(ls->terms[i][ls->n[i] - 1].holder, master) == 0 &&
		    ls->terms[i][ls->n[i] - 1].acquire_wall_us == lease.acquire_time_us)
			continue;
		if (ls->n[i] >= MAX_LEASE_TERMS)
			continue;
		if (KHA_RESIZE(ls->terms[i], ls->n[i] + 1) < 0)
			continue;
		t = &ls->terms[i][ls->n[i]++];
		*t = (struct kha_lab_lease_term){.seen_us = kha_now_us(),
						 .acquire_wall_us = lease.acquire_time_us};
		snprintf(t->holder, sizeof(t->holder), "%s", master);
		if (w->t0)
			kha_lab__watcher_progress(w, "%7.2fs  lease %s: %s",
						  (t->seen_us - w->t0) / 1e6, lease_names[i],
						  *master ? master : "nobody");
	}
}

/* ---- the drills ---- */

struct prober {
	struct kha_drill_scenario sc;
	struct kha_drill_report *report;
	struct kha_diag d;
	int err;
	int stop_fd; /* eventfd: the node's write drill is over */
	pthread_t thread;
	bool started;
};

static int prober_on_stop(void *userdata)
{
	struct prober *p = userdata;
	uint64_t v;

	if (read(p->stop_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return SIGINT;
}

static void *prober_main(void *userdata)
{
	struct prober *p = userdata;
	struct kha_drill_hooks hooks = {
		.stop_fd = p->stop_fd, .on_stop = prober_on_stop, .userdata = p};

	p->err = kha_drill_run(&p->sc, &hooks, &p->report, &p->d);
	return NULL;
}

static bool shell_safe(const char *s)
{
	return !strchr(s, '\'');
}

static int add_steps(struct kha_drill_scenario *sc, const struct kha_lab *lab, const char *kha,
		     const struct kha_lab_k8s_drill_opts *o, uint64_t *ret_end, struct kha_diag *d)
{
	uint64_t at = o->baseline_us;
	int r = 0;

	for (int k = 0; r == 0 && k < KHA_LAB_K8S_FAULTS; k++) {
		kha_autofree char *fault = NULL, *recover = NULL;

		if (!(o->faults & (1u << k)))
			continue;
		if (k == KHA_LAB_K8S_ROLLING) {
			char names[128] = "";

			for (size_t i = 0; i < lab->n_masters; i++)
				snprintf(names + strlen(names), sizeof(names) - strlen(names),
					 "%s%s", i ? " " : "", lab->masters[i].name);
			if (asprintf(&fault,
				     ". '%s/env' && for m in %s; do '%s' lock --lock " UPGRADE_LOCK
				     " --id \"$m\" -- /bin/sh -c \"'%s' lab stop-member --dir '%s' "
				     "$m && '%s' lab start-member --dir '%s' $m && '%s' lab wait "
				     "--dir '%s' --timeout 120s\" || exit 1; echo \"$m upgraded\"; "
				     "done",
				     lab->dir, names, kha, kha, lab->dir, kha, lab->dir, kha,
				     lab->dir) < 0)
				return kha_diag_set(d, ENOMEM, "out of memory");
			r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_FAULT, at,
							kfaults[k].name, fault, ROLLING_TIMEOUT_US,
							d);
			at += o->rolling_us;
			continue;
		}
		/* the recovery is what a kubelet does for static pods: start what is not
		 * running, again if something exited meanwhile (a controller-manager or
		 * scheduler that lost its Lease exits), until the lab is ready */
		if (asprintf(&fault, "'%s' lab %s --dir '%s'", kha, kfaults[k].fault_args,
			     lab->dir) < 0 ||
		    asprintf(
			    &recover,
			    "'%s' lab %s --dir '%s' && for i in 1 2 3 4; do '%s' lab start-member "
			    "--all --dir '%s' >/dev/null && '%s' lab wait --dir '%s' --timeout 40s "
			    "&& exit 0; sleep 1; done; exit 1",
			    kha, kfaults[k].recover_args, lab->dir, kha, lab->dir, kha,
			    lab->dir) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_FAULT, at, kfaults[k].name,
						fault, STEP_TIMEOUT_US, d);
		if (r == 0)
			r = kha_drill_scenario_add_step(sc, KHA_DRILL_STEP_RECOVER, at + o->down_us,
							kfaults[k].recover, recover,
							STEP_TIMEOUT_US, d);
		at += o->period_us;
	}
	*ret_end = at;
	return r;
}

static int build(struct kha_drill_scenario *sc, const struct kha_lab *lab, enum kha_lab_entry e,
		 bool writes, const struct kha_lab_k8s_drill_opts *o, uint64_t duration_us,
		 struct kha_diag *d)
{
	kha_autofree char *kc = NULL;
	int r = kha_lab_kubeconfig(lab, kha_lab_entry_name(e), &kc, d);

	kha_drill_scenario_init(sc);
	if (r < 0)
		return r;
	sc->kube = true;
	sc->write = writes;
	sc->no_watch = writes;
	sc->rate = o->rate;
	sc->timeout_us = o->timeout_us;
	sc->duration_us = duration_us;
	sc->watch_timeout_us = o->watch_timeout_us;
	sc->readback_timeout_us = 60 * KHA_USEC_PER_SEC;
	sc->keep_going = true; /* a fault command that fails is reported; recoveries still run */
	if (!(sc->kubeconfig = strdup(kc)) || !(sc->namespace = strdup("default")))
		return kha_diag_set(d, ENOMEM, "out of memory");
	return 0;
}

static void opts_defaults(struct kha_lab_k8s_drill_opts *o)
{
	o->rate = o->rate ? o->rate : DEFAULT_RATE;
	o->baseline_us = o->baseline_us ? o->baseline_us : DEFAULT_BASELINE_US;
	o->down_us = o->down_us ? o->down_us : DEFAULT_DOWN_US;
	o->period_us = o->period_us ? o->period_us : DEFAULT_PERIOD_US;
	o->rolling_us = o->rolling_us ? o->rolling_us : DEFAULT_ROLLING_US;
	o->timeout_us = o->timeout_us ? o->timeout_us : DEFAULT_TIMEOUT_US;
	o->faults = o->faults ? o->faults : (1u << KHA_LAB_K8S_FAULTS) - 1;
	o->slo = o->slo < 0 ? DEFAULT_SLO : o->slo;
	o->watch_timeout_us = o->watch_timeout_us ? o->watch_timeout_us : 60 * KHA_USEC_PER_SEC;
}

/* the options checked and completed with their defaults: 0, or -EINVAL with d saying why */
static int drill_opts(const struct kha_lab *lab, const char *kha, struct kha_lab_k8s_drill_opts *o,
		      struct kha_diag *d)
{
	if (!lab->k8s_bin || !lab->n_lbs || !lab->node.entry_url)
		return kha_diag_set(d, EINVAL,
				    "the lab in %s is not a Kubernetes lab with both entries",
				    lab->dir);
	if (!shell_safe(kha) || !shell_safe(lab->dir))
		return kha_diag_set(d, EINVAL, "a quote in the path of kha or of the lab: %s",
				    lab->dir);
	opts_defaults(o);
	if (o->down_us >= o->period_us)
		return kha_diag_set(d, EINVAL,
				    "a fault must end (%" PRIu64
				    " ms) before the next begins (%" PRIu64 " ms)",
				    o->down_us / 1000, o->period_us / 1000);
	return 0;
}

static struct kha_lab_k8s_drill_report *report_new(const struct kha_lab *lab,
						   const struct kha_lab_k8s_drill_opts *o)
{
	struct kha_lab_k8s_drill_report *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->slo = o->slo;
	r->faults_mask = o->faults;
	snprintf(r->entry_url[KHA_LAB_ENTRY_NODE], sizeof(r->entry_url[0]), "%s",
		 lab->node.entry_url);
	snprintf(r->entry_url[KHA_LAB_ENTRY_VIP], sizeof(r->entry_url[0]), "%s",
		 lab->lbs[0].entry_url);
	return r;
}

/* the node's writes carry the fault steps; every prober's scenario lasts as long, and each
 * but the node's writes gets the eventfd that stops it early */
static int probers_build(struct prober pr[KHA_LAB_ENTRIES][2], const struct kha_lab *lab,
			 const char *kha, const struct kha_lab_k8s_drill_opts *o,
			 struct kha_diag *d)
{
	struct kha_drill_scenario *main_sc = &pr[KHA_LAB_ENTRY_NODE][0].sc;
	uint64_t end = 0;
	int res;

	/* the steps' end is the drill's length */
	kha_drill_scenario_init(main_sc);
	res = add_steps(main_sc, lab, kha, o, &end, d);
	kha_drill_scenario_release(main_sc);
	for (int e = 0; res == 0 && e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; res == 0 && k < 2; k++)
			res = build(&pr[e][k].sc, lab, e, k == 0, o, end, d);
	if (res == 0)
		res = add_steps(main_sc, lab, kha, o, &end, d);
	for (int e = 0; res == 0 && e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; res == 0 && k < 2; k++) {
			res = kha_drill_scenario_check(&pr[e][k].sc, d);
			if (res == 0 && !(e == KHA_LAB_ENTRY_NODE && k == 0)) {
				pr[e][k].stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
				if (pr[e][k].stop_fd < 0)
					res = kha_diag_set(d, errno, "eventfd: %s",
							   strerror(errno));
			}
		}
	return res;
}

/* the other probers in their threads, the node's writes (with the faults) in this one; an
 * early end of the node's stops the others. The result of the node's run. */
static int probers_run(struct prober pr[KHA_LAB_ENTRIES][2], const struct kha_drill_hooks *hooks,
		       struct kha_diag *d)
{
	struct prober *main_pr = &pr[KHA_LAB_ENTRY_NODE][0];
	int res;

	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++) {
			if (e == KHA_LAB_ENTRY_NODE && k == 0)
				continue;
			if (pthread_create(&pr[e][k].thread, NULL, prober_main, &pr[e][k]) == 0)
				pr[e][k].started = true;
		}
	res = kha_drill_run(&main_pr->sc, hooks, &main_pr->report, d);
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++) {
			uint64_t one = 1;

			if (!pr[e][k].started)
				continue;
			/* they end on their own at the same length; an early end stops them */
			if (res < 0 || main_pr->report->interrupted || main_pr->report->aborted)
				if (write(pr[e][k].stop_fd, &one, sizeof(one)) < 0) {
					/* the eventfd cannot overflow here */
				}
			pthread_join(pr[e][k].thread, NULL);
		}
	return res;
}

/* the Lease terms and backup snapshots the watcher saw, into r, on drill time (the node's
 * write drill) */
static void report_take_watched(struct kha_lab_k8s_drill_report *r, struct leases *ls,
				struct kha_lab__watcher *w)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0];
	uint64_t t0 = m->t0_us;
	struct kha_lab_lease_term **dst[2] = {&r->cm_terms, &r->sched_terms};
	size_t *ndst[2] = {&r->n_cm_terms, &r->n_sched_terms};

	for (int i = 0; i < 2; i++) {
		*dst[i] = KHA_TAKE_PTR(ls->terms[i]);
		*ndst[i] = ls->n[i];
		for (size_t j = 0; j < ls->n[i]; j++)
			(*dst[i])[j].seen_us =
				(*dst[i])[j].seen_us > t0 ? (*dst[i])[j].seen_us - t0 : 0;
	}
	r->cm_lease_duration_s = ls->cm_duration_s;
	r->snapshots = KHA_TAKE_PTR(w->snaps);
	r->n_snapshots = w->n_snaps;
	for (size_t i = 0; i < r->n_snapshots; i++) {
		int64_t t = r->snapshots[i].wall_us - (int64_t)m->started_wall_us;

		r->snapshots[i].t_us = t > 0 ? (uint64_t)t : 0;
	}
}

/* after the drill: what exited on its own since the last recovery is started again, as a
 * kubelet restarts a static pod, and named in the report; is the lab ready again? */
static void report_after(const struct kha_lab *lab, struct kha_lab_k8s_drill_report *r,
			 struct kha_lab__watcher *w)
{
	struct kha_lab *fresh = NULL;

	kha_lab__watcher_progress(w, "         the drill is over: is the lab ready again?");
	if (kha_lab_load(lab->dir, true, &fresh, NULL) < 0)
		return;
	for (size_t i = 0; i < fresh->n_masters; i++) {
		struct kha_lab_master *mm = &fresh->masters[i];
		bool any = false;

		for (size_t j = 0; j < mm->n_procs; j++) {
			size_t used = strlen(r->exited);

			if (!mm->procs[j].pid || kha_lab_proc_running(&mm->procs[j]))
				continue;
			any = true;
			snprintf(r->exited + used, sizeof(r->exited) - used, "%s%s/%s",
				 used ? ", " : "", mm->name, mm->procs[j].name);
		}
		if (any)
			kha_ignore(kha_lab_master_start(fresh, mm, READY_AFTER_US, NULL));
	}
	r->healthy_after = kha_lab_wait_ready(fresh, READY_AFTER_US, NULL) == 0;
	kha_lab_free(fresh);
}

/* releases the probers; a prober's own failure is the drill's when nothing else failed */
static void probers_release(struct prober pr[KHA_LAB_ENTRIES][2], int res, struct kha_diag *d)
{
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++) {
			if (!res && pr[e][k].err < 0 && !pr[e][k].report)
				kha_diag_set(d, -pr[e][k].err, "%s", pr[e][k].d.msg);
			kha_drill_report_free(pr[e][k].report);
			kha_drill_scenario_release(&pr[e][k].sc);
			if (pr[e][k].stop_fd >= 0)
				close(pr[e][k].stop_fd);
		}
}

int kha_lab_k8s_drill(const struct kha_lab *lab, const char *kha,
		      const struct kha_lab_k8s_drill_opts *opts,
		      struct kha_lab_k8s_drill_report **ret, struct kha_diag *d)
{
	struct kha_lab_k8s_drill_opts o = *opts;
	struct kha_lab_drill_opts wo = {.on_progress = opts->on_progress,
					.on_stop = opts->on_stop,
					.userdata = opts->userdata};
	struct leases ls = {0};
	struct kha_lab__watcher w = {.lab = lab, .o = &wo, .extra = poll_leases, .extra_data = &ls};
	kha_auto(kha_lab_k8s_drill_report_freep) struct kha_lab_k8s_drill_report *r = NULL;
	struct prober pr[KHA_LAB_ENTRIES][2];
	struct kha_drill_hooks hooks = {.stop_fd = opts->stop_fd,
					.on_stop = kha_lab__watcher_on_stop,
					.on_event = kha_lab__watcher_on_event,
					.userdata = &w};
	int res = drill_opts(lab, kha, &o, d);

	if (res < 0)
		return res;
	r = report_new(lab, &o);
	if (!r)
		return kha_diag_set(d, ENOMEM, "out of memory");
	memset(pr, 0, sizeof(pr));
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++)
			pr[e][k].stop_fd = -1;
	res = probers_build(pr, lab, kha, &o, d);
	if (res == 0) {
		res = kha_lab__watcher_start(&w);
		if (res < 0)
			kha_diag_set(d, -res, "cannot start the watcher thread: %s",
				     strerror(-res));
	}
	if (res < 0)
		goto out;
	res = probers_run(pr, &hooks, d);
	kha_lab__watcher_stop(&w);
	if (res < 0)
		goto out;
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++)
			r->drill[e][k] = KHA_TAKE_PTR(pr[e][k].report);
	report_take_watched(r, &ls, &w);
	kha_lab_k8s_drill_analyze(r);
	if (!r->drill[KHA_LAB_ENTRY_NODE][0]->interrupted)
		report_after(lab, r, &w);
	*ret = KHA_TAKE_PTR(r);
out:
	kha_lab__watcher_release(&w);
	kha_kube_client_free(ls.c);
	free(ls.terms[0]);
	free(ls.terms[1]);
	probers_release(pr, res, d);
	return res;
}

void kha_lab_k8s_drill_report_free(struct kha_lab_k8s_drill_report *r)
{
	if (!r)
		return;
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++)
			kha_drill_report_free(r->drill[e][k]);
	free(r->cm_terms);
	free(r->sched_terms);
	free(r->snapshots);
	free(r);
}

/* ---- analysis ---- */

static const struct kha_drill_step_result *find_step(const struct kha_drill_report *r,
						     const char *name)
{
	for (size_t i = 0; name && i < r->n_steps; i++)
		if (strcmp(r->steps[i].name, name) == 0 && r->steps[i].started_us != KHA_DRILL_NONE)
			return &r->steps[i];
	return NULL;
}

static bool step_ok(const struct kha_drill_step_result *st)
{
	return !st || st->state == KHA_DRILL_STEP_SUCCEEDED;
}

/* The probes of dr sent in [a, b) (dr's time): counts and the longest outage. */
static void window(const struct kha_drill_report *dr, uint64_t a, uint64_t b, size_t *ret_sent,
		   size_t *ret_ok, uint64_t *ret_longest)
{
	size_t i = 0, j, sent = 0, ok = 0;
	uint64_t longest = 0;

	while (i < dr->n_probes && dr->probes[i].t_us < a)
		i++;
	for (j = i; j < dr->n_probes && dr->probes[j].t_us < b; j++) {
		uint8_t res = dr->probes[j].result;

		if (res == KHA_DRILL_PROBE_MISSED || res == KHA_DRILL_PROBE_CANCELLED)
			continue;
		sent++;
		ok += res == KHA_DRILL_PROBE_OK;
	}
	if (j > i) {
		size_t nw = kha_drill_find_windows(dr->probes + i, j - i, b, NULL, 0);
		struct kha_drill_window *wins = nw ? calloc(nw, sizeof(*wins)) : NULL;

		if (wins) {
			kha_drill_find_windows(dr->probes + i, j - i, b, wins, nw);
			for (size_t k = 0; k < nw; k++)
				longest = KHA_MAX(longest, wins[k].end_us - wins[k].start_us);
			free(wins);
		}
	}
	*ret_sent = sent;
	*ret_ok = ok;
	*ret_longest = longest;
}

/* t (time of the node's write drill) in the time of dr. */
static uint64_t shift(const struct kha_drill_report *main, const struct kha_drill_report *dr,
		      uint64_t t)
{
	int64_t v = (int64_t)t + (int64_t)main->t0_us - (int64_t)dr->t0_us;

	return v > 0 ? (uint64_t)v : 0;
}

static void analyze_entry(const struct kha_lab_k8s_drill_report *r, enum kha_lab_entry e,
			  const struct kha_lab_k8s_fault_result *f,
			  struct kha_lab_k8s_entry_result *x)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0];
	const struct kha_drill_report *wr = r->drill[e][0], *rd = r->drill[e][1];

	x->watch_reconnect_us = KHA_DRILL_NONE;
	if (wr) {
		uint64_t a = shift(m, wr, f->fault_us), b = shift(m, wr, f->end_us);

		window(wr, a, b, &x->writes_sent, &x->writes_ok, &x->writes_longest_us);
		for (size_t i = 0; i < wr->writes.n_lost_slots; i++) {
			uint64_t s = wr->writes.lost_slots[i];

			if (s < wr->n_probes && wr->probes[s].t_us >= a && wr->probes[s].t_us < b)
				x->lost++;
		}
	}
	if (rd) {
		uint64_t a = shift(m, rd, f->fault_us), b = shift(m, rd, f->end_us);
		uint64_t end = rd->stats.marks.end_us != KHA_DRILL_NONE ? rd->stats.marks.end_us
									: rd->elapsed_us;

		window(rd, a, b, &x->reads_sent, &x->reads_ok, &x->reads_longest_us);
		for (size_t i = 0; i < rd->kube.n_gaps; i++) {
			const struct kha_drill_watch_gap *g = &rd->kube.gaps[i];
			uint64_t back = g->back_us == KHA_DRILL_NONE ? end : g->back_us;

			if (g->clean || g->broke_us < a || g->broke_us >= b)
				continue;
			x->watch_breaks++;
			if (x->watch_reconnect_us == KHA_DRILL_NONE ||
			    back - g->broke_us > x->watch_reconnect_us)
				x->watch_reconnect_us = back - g->broke_us;
		}
	}
	x->writes_availability =
		x->writes_sent ? 100.0 * (double)x->writes_ok / (double)x->writes_sent : 0.0;
	x->reads_availability =
		x->reads_sent ? 100.0 * (double)x->reads_ok / (double)x->reads_sent : 0.0;
	x->slo_met = x->writes_sent && x->reads_sent && x->writes_availability >= r->slo &&
		     x->reads_availability >= r->slo;
}

static const char *holder_at(const struct kha_lab_lease_term *t, size_t n, uint64_t at)
{
	const char *h = NULL;

	for (size_t i = 0; i < n && t[i].seen_us <= at; i++)
		h = t[i].holder;
	return h;
}

static void victim_of(const struct kha_drill_step_result *st, char *buf, size_t size)
{
	size_t n;

	buf[0] = '\0';
	if (!st || !st->output)
		return;
	n = strcspn(st->output, " :\n");
	if (n < size && n > 0 && n < 12)
		snprintf(buf, size, "%.*s", (int)n, st->output);
}

void kha_lab_k8s_drill_analyze(struct kha_lab_k8s_drill_report *r)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0];
	uint64_t probing_end;

	if (!m)
		return;
	probing_end =
		m->stats.marks.end_us != KHA_DRILL_NONE ? m->stats.marks.end_us : m->elapsed_us;
	for (int k = 0; k < KHA_LAB_K8S_FAULTS; k++) {
		struct kha_lab_k8s_fault_result *f = &r->faults[k];
		const struct kha_drill_step_result *fs = find_step(m, kfaults[k].name);
		const struct kha_drill_step_result *rs = find_step(m, kfaults[k].recover);
		const struct kha_drill_step_result *next = NULL;
		const char *h;

		*f = (struct kha_lab_k8s_fault_result){.kind = (enum kha_lab_k8s_fault)k,
						       .recover_us = KHA_DRILL_NONE,
						       .ready_us = KHA_DRILL_NONE,
						       .cm_handover_us = KHA_DRILL_NONE,
						       .backup_after_us = KHA_DRILL_NONE};
		if (!fs)
			continue;
		for (int j = k + 1; !next && j < KHA_LAB_K8S_FAULTS; j++)
			next = find_step(m, kfaults[j].name);
		f->ran = true;
		f->step_ok = step_ok(fs) && step_ok(rs);
		f->fault_us = fs->started_us;
		f->recover_us = rs ? rs->started_us : KHA_DRILL_NONE;
		/* the rolling restart has no recovery: the lab is ready when it ends */
		if (rs && rs->state == KHA_DRILL_STEP_SUCCEEDED)
			f->ready_us = rs->ended_us;
		else if (!kfaults[k].recover && fs->state == KHA_DRILL_STEP_SUCCEEDED)
			f->ready_us = fs->ended_us;
		f->end_us = next ? next->started_us : probing_end;
		if (f->end_us < f->fault_us)
			f->end_us = f->fault_us;
		victim_of(fs, f->victim, sizeof(f->victim));
		for (int e = 0; e < KHA_LAB_ENTRIES; e++)
			analyze_entry(r, e, f, &f->entry[e]);

		h = holder_at(r->cm_terms, r->n_cm_terms, f->fault_us);
		snprintf(f->cm_before, sizeof(f->cm_before), "%s", h ? h : "");
		h = holder_at(r->cm_terms, r->n_cm_terms, f->end_us);
		snprintf(f->cm_after, sizeof(f->cm_after), "%s", h ? h : "");
		h = holder_at(r->sched_terms, r->n_sched_terms, f->fault_us);
		snprintf(f->sched_before, sizeof(f->sched_before), "%s", h ? h : "");
		h = holder_at(r->sched_terms, r->n_sched_terms, f->end_us);
		snprintf(f->sched_after, sizeof(f->sched_after), "%s", h ? h : "");
		/* the handover: the first new holder in the window, timed by its acquireTime */
		for (size_t i = 0; i < r->n_cm_terms; i++) {
			const struct kha_lab_lease_term *t = &r->cm_terms[i];
			int64_t fault_wall = (int64_t)(m->started_wall_us + f->fault_us);

			if (t->seen_us <= f->fault_us || t->seen_us >= f->end_us || !t->holder[0] ||
			    strcmp(t->holder, f->cm_before) == 0)
				continue;
			if (t->acquire_wall_us > fault_wall)
				f->cm_handover_us = (uint64_t)(t->acquire_wall_us - fault_wall);
			else
				f->cm_handover_us = t->seen_us - f->fault_us;
			break;
		}
		for (size_t i = 0; i < r->n_snapshots; i++) {
			const struct kha_lab_snapshot *s = &r->snapshots[i];

			if (s->t_us <= f->fault_us || s->t_us >= f->end_us + SNAP_SLACK_US)
				continue;
			if (f->backup_after_us == KHA_DRILL_NONE ||
			    s->t_us - f->fault_us < f->backup_after_us) {
				f->backup_after_us = s->t_us - f->fault_us;
				snprintf(f->backup_taker, sizeof(f->backup_taker), "%s", s->taker);
			}
		}
	}
}

/* ---- verdict ---- */

static size_t lost_total(const struct kha_lab_k8s_drill_report *r)
{
	size_t n = 0;

	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		if (r->drill[e][0])
			n += r->drill[e][0]->writes.lost;
	return n;
}

static bool all_verified(const struct kha_lab_k8s_drill_report *r)
{
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		if (!r->drill[e][0] || !r->drill[e][0]->writes.verified)
			return false;
	return true;
}

static bool expectation_missed(const struct kha_lab_k8s_drill_report *r)
{
	if (!r->healthy_after)
		return true;
	for (int k = 0; k < KHA_LAB_K8S_FAULTS; k++) {
		const struct kha_lab_k8s_fault_result *f = &r->faults[k];

		if (!(r->faults_mask & (1u << k)))
			continue;
		if (!f->ran || f->backup_after_us == KHA_DRILL_NONE)
			return true;
		for (int e = 0; e < KHA_LAB_ENTRIES; e++)
			if (!f->entry[e].slo_met)
				return true;
		if (k == KHA_LAB_K8S_KILL_CM_LEADER && f->cm_handover_us == KHA_DRILL_NONE)
			return true;
	}
	return false;
}

int kha_lab_k8s_drill_exit_code(const struct kha_lab_k8s_drill_report *r)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0];

	if (lost_total(r))
		return 2;
	if (m->interrupted)
		return 128 + m->interrupt_signal;
	if (m->step_failed || m->aborted)
		return KHA_DRILL_EXIT_STEP_FAILED;
	if (!all_verified(r))
		return KHA_EXIT_UNAVAILABLE;
	return expectation_missed(r) ? 1 : 0;
}

void kha_lab_k8s_drill_problems(const struct kha_lab_k8s_drill_report *r, char *buf, size_t size)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0];

	buf[0] = '\0';
	if (lost_total(r))
		kha_lab__append(buf, size, "%zu acknowledged writes lost", lost_total(r));
	if (m->interrupted)
		kha_lab__append(buf, size, "interrupted by signal %d", m->interrupt_signal);
	if (m->step_failed || m->aborted)
		for (size_t i = 0; i < m->n_steps; i++)
			if (m->steps[i].started_us != KHA_DRILL_NONE &&
			    m->steps[i].state != KHA_DRILL_STEP_SUCCEEDED)
				kha_lab__append(buf, size, "command '%s' %s", m->steps[i].name,
						kha_drill_step_state_name(m->steps[i].state));
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		if (r->drill[e][0] && !r->drill[e][0]->writes.verified)
			kha_lab__append(buf, size,
					"the writes through %s could not be read back: %s",
					kha_lab_entry_name(e), r->drill[e][0]->writes.error);
	for (int k = 0; k < KHA_LAB_K8S_FAULTS; k++) {
		const struct kha_lab_k8s_fault_result *f = &r->faults[k];

		if (!(r->faults_mask & (1u << k)))
			continue;
		if (!f->ran) {
			kha_lab__append(buf, size, "%s did not run", kfaults[k].name);
			continue;
		}
		for (int e = 0; e < KHA_LAB_ENTRIES; e++)
			if (!f->entry[e].slo_met)
				kha_lab__append(
					buf, size,
					"%s: through %s %.2f%% of writes, %.2f%% of reads (SLO %.1f%%)",
					kfaults[k].name, kha_lab_entry_name(e),
					f->entry[e].writes_availability,
					f->entry[e].reads_availability, r->slo);
		if (k == KHA_LAB_K8S_KILL_CM_LEADER && f->cm_handover_us == KHA_DRILL_NONE)
			kha_lab__append(buf, size, "%s: no new Lease holder seen", kfaults[k].name);
		if (f->backup_after_us == KHA_DRILL_NONE)
			kha_lab__append(buf, size, "%s: no backup after the fault",
					kfaults[k].name);
	}
	if (!m->interrupted && !r->healthy_after)
		kha_lab__append(buf, size, "the lab was not ready again after the drill");
}

/* ---- output ---- */

static json_t *entry_json(const struct kha_lab_k8s_entry_result *x)
{
	return json_pack(
		"{s:{s:I, s:I, s:o, s:f}, s:{s:I, s:I, s:o, s:f}, s:I, s:{s:I, s:o}, s:b}",
		"writes", "sent", (json_int_t)x->writes_sent, "ok", (json_int_t)x->writes_ok,
		"availability_percent",
		x->writes_sent ? json_real(x->writes_availability) : json_null(),
		"longest_outage_ms", (double)x->writes_longest_us / 1e3, "reads", "sent",
		(json_int_t)x->reads_sent, "ok", (json_int_t)x->reads_ok, "availability_percent",
		x->reads_sent ? json_real(x->reads_availability) : json_null(), "longest_outage_ms",
		(double)x->reads_longest_us / 1e3, "lost_acknowledged_writes", (json_int_t)x->lost,
		"watch", "breaks", (json_int_t)x->watch_breaks, "longest_reconnect_ms",
		kha_lab__ms_or_null(x->watch_reconnect_us), "slo_met", x->slo_met);
}

static json_t *terms_json(const struct kha_lab_lease_term *t, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(
			a, json_pack("{s:f, s:o, s:o}", "seen_ms", (double)t[i].seen_us / 1e3,
				     "acquire_time_unix_us",
				     t[i].acquire_wall_us ? json_integer(t[i].acquire_wall_us)
							  : json_null(),
				     "holder", kha_lab__str_or_null(t[i].holder)));
	return a;
}

char *kha_lab_k8s_drill_json(const struct kha_lab_k8s_drill_report *r)
{
	json_t *root = json_object(), *fl = json_array(), *drills = json_object(), *snaps;
	char problems[2048];
	int code = kha_lab_k8s_drill_exit_code(r);
	char *text;

	kha_lab_k8s_drill_problems(r, problems, sizeof(problems));
	json_object_set_new(root, "schema", json_string("kha.lab.k8s-drill/v1"));
	json_object_set_new(
		root, "entries",
		json_pack("{s:s, s:s}", "node", r->entry_url[0], "vip", r->entry_url[1]));
	json_object_set_new(root, "exit_code", json_integer(code));
	json_object_set_new(root, "verdict", json_string(code == 0 ? "passed" : "failed"));
	/* the old name of verdict, kept for scripts */
	json_object_set_new(root, "passed", json_boolean(code == 0));
	json_object_set_new(root, "problems", json_string(problems));
	json_object_set_new(root, "slo_percent", json_real(r->slo));
	json_object_set_new(root, "lost_acknowledged_writes",
			    json_integer((json_int_t)lost_total(r)));
	for (int k = 0; k < KHA_LAB_K8S_FAULTS; k++) {
		const struct kha_lab_k8s_fault_result *f = &r->faults[k];
		json_t *o;

		if (!(r->faults_mask & (1u << k)))
			continue;
		o = json_pack("{s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:o}", "name", kfaults[k].name,
			      "what", kfaults[k].what, "ran", f->ran, "commands_ok", f->step_ok,
			      "victim", kha_lab__str_or_null(f->victim), "fault_at_ms",
			      f->ran ? kha_lab__ms_or_null(f->fault_us) : json_null(),
			      "recover_at_ms", kha_lab__ms_or_null(f->recover_us), "end_ms",
			      f->ran ? kha_lab__ms_or_null(f->end_us) : json_null());
		json_object_set_new(o, "node", entry_json(&f->entry[KHA_LAB_ENTRY_NODE]));
		json_object_set_new(o, "vip", entry_json(&f->entry[KHA_LAB_ENTRY_VIP]));
		json_object_set_new(o, "controller_manager_lease",
				    json_pack("{s:o, s:o, s:o}", "holder_before",
					      kha_lab__str_or_null(f->cm_before), "holder_after",
					      kha_lab__str_or_null(f->cm_after), "handover_ms",
					      kha_lab__ms_or_null(f->cm_handover_us)));
		json_object_set_new(o, "scheduler_lease",
				    json_pack("{s:o, s:o}", "holder_before",
					      kha_lab__str_or_null(f->sched_before), "holder_after",
					      kha_lab__str_or_null(f->sched_after)));
		json_object_set_new(o, "backup",
				    json_pack("{s:b, s:o, s:o}", "continued",
					      f->backup_after_us != KHA_DRILL_NONE, "after_ms",
					      kha_lab__ms_or_null(f->backup_after_us), "taker",
					      kha_lab__str_or_null(f->backup_taker)));
		json_array_append_new(fl, o);
	}
	json_object_set_new(root, "faults", fl);
	json_object_set_new(
		root, "leases",
		json_pack("{s:{s:o, s:o}, s:{s:o}}", "kube-controller-manager", "lease_duration_s",
			  r->cm_lease_duration_s ? json_integer(r->cm_lease_duration_s)
						 : json_null(),
			  "terms", terms_json(r->cm_terms, r->n_cm_terms), "kube-scheduler",
			  "terms", terms_json(r->sched_terms, r->n_sched_terms)));
	snaps = json_array();
	for (size_t i = 0; i < r->n_snapshots; i++)
		json_array_append_new(snaps, json_pack("{s:f, s:s, s:s}", "t_ms",
						       (double)r->snapshots[i].t_us / 1e3, "taker",
						       r->snapshots[i].taker, "file",
						       r->snapshots[i].file));
	json_object_set_new(root, "snapshots", snaps);
	json_object_set_new(root, "exited_after_recovery", json_string(r->exited));
	json_object_set_new(root, "healthy_after", json_boolean(r->healthy_after));
	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		for (int k = 0; k < 2; k++) {
			kha_autofree char *t =
				r->drill[e][k] ? kha_drill_report_json(r->drill[e][k], false)
					       : NULL;
			char name[32];

			snprintf(name, sizeof(name), "%s_%s", kha_lab_entry_name(e),
				 k ? "reads" : "writes");
			json_object_set_new(drills, name, t ? json_loads(t, 0, NULL) : json_null());
		}
	json_object_set_new(root, "drills", drills);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}

/* Why fault k's entries lost requests for a while (only when they did). */
static void why_outage(FILE *out, const struct kha_lab_k8s_fault_result *f, int k)
{
	bool outage = false;

	for (int e = 0; e < KHA_LAB_ENTRIES; e++)
		outage |= f->entry[e].writes_longest_us || f->entry[e].reads_longest_us;
	if (!outage)
		return;
	switch (k) {
	case KHA_LAB_K8S_KILL_ETCD_LEADER:
		kha_lab__why(
			out, "outage",
			"its etcd member led Raft: writes wait for a new leader (election timeout "
			"%dms, then a vote); requests in flight to its apiserver are reset",
			LAB_ETCD_ELECTION_MS);
		break;
	case KHA_LAB_K8S_KILL_MASTER:
		kha_lab__why(
			out, "outage",
			"requests in flight to its apiserver are reset; the entries take it out "
			"after %d failed checks (%dms apart, then %dms)",
			LAB_PROXY_FALL, LAB_PROXY_CHECK_MS, LAB_PROXY_FAST_MS);
		break;
	case KHA_LAB_K8S_FREEZE_MASTER:
		kha_lab__why(
			out, "outage",
			"its apiserver accepts connections nobody answers until %d checks time out "
			"(%dms apart, then %dms)",
			LAB_PROXY_FALL, LAB_PROXY_CHECK_MS, LAB_PROXY_FAST_MS);
		break;
	case KHA_LAB_K8S_KILL_LB:
		kha_lab__why(
			out, "outage",
			"only through the VIP: the other load balancer claims it after 3 missed "
			"advertisements (100ms apart); connections through the dead one are reset");
		break;
	default:
		kha_lab__why(
			out, "outage",
			"requests in flight to a stopping apiserver, and those sent before the "
			"entries saw its /readyz turn unready");
		break;
	}
}

/* fault k's victim, when it was undone and when the lab was ready again */
static void print_fault_times(FILE *out, const struct kha_lab_k8s_fault_result *f)
{
	char a[32], b[32];

	fprintf(out, "  victim      %s at %s%s%s%s\n", f->victim[0] ? f->victim : "?",
		kha_lab__dur(a, sizeof(a), f->fault_us),
		f->recover_us != KHA_DRILL_NONE ? ", recovery at " : "",
		f->recover_us != KHA_DRILL_NONE ? kha_lab__dur(b, sizeof(b), f->recover_us) : "",
		f->step_ok ? "" : "  (A COMMAND FAILED)");
	if (f->ready_us != KHA_DRILL_NONE)
		fprintf(out, "  ready       again at %s%s\n",
			kha_lab__dur(a, sizeof(a), f->ready_us),
			f->ready_us > f->end_us ? " (AFTER the next fault began: give it a "
						  "longer --period)"
						: "");
}

/* what each entry's clients saw during fault f */
static void print_fault_entries(FILE *out, const struct kha_lab_k8s_fault_result *f)
{
	char a[32], b[32], c[32];

	for (int e = 0; e < KHA_LAB_ENTRIES; e++) {
		const struct kha_lab_k8s_entry_result *x = &f->entry[e];

		fprintf(out,
			"  %-4s        writes %.2f%% of %zu (longest outage %s), reads %.2f%% "
			"of %zu (longest %s), watch %s, %zu lost%s\n",
			kha_lab_entry_name(e), x->writes_availability, x->writes_sent,
			x->writes_longest_us ? kha_lab__dur(a, sizeof(a), x->writes_longest_us)
					     : "none",
			x->reads_availability, x->reads_sent,
			x->reads_longest_us ? kha_lab__dur(b, sizeof(b), x->reads_longest_us)
					    : "none",
			x->watch_reconnect_us == KHA_DRILL_NONE
				? "unbroken"
				: (snprintf(c, sizeof(c), "back after %s",
					    kha_lab__dur(a, sizeof(a), x->watch_reconnect_us)),
				   c),
			x->lost, x->slo_met ? "" : "  <-- UNDER THE SLO");
	}
}

/* the Leases' handovers and the backups around fault k */
static void print_fault_leases(FILE *out, const struct kha_lab_k8s_drill_report *r,
			       const struct kha_lab_k8s_fault_result *f, int k)
{
	int lease_s = r->cm_lease_duration_s ? (int)r->cm_lease_duration_s : 15;
	char a[32];

	if (strcmp(f->cm_before, f->cm_after) != 0 || k == KHA_LAB_K8S_KILL_CM_LEADER)
		fprintf(out, "  lease       kube-controller-manager %s -> %s%s%s\n",
			f->cm_before[0] ? f->cm_before : "nobody",
			f->cm_after[0] ? f->cm_after : "nobody",
			f->cm_handover_us != KHA_DRILL_NONE ? ", handed over after " : "",
			f->cm_handover_us != KHA_DRILL_NONE
				? kha_lab__dur(a, sizeof(a), f->cm_handover_us)
				: "");
	if (f->cm_handover_us != KHA_DRILL_NONE && k == KHA_LAB_K8S_KILL_CM_LEADER)
		kha_lab__why(out, "handover",
			     "a candidate takes the Lease leaseDuration (%ds) after it last saw "
			     "the holder renew, at a try (every 2s + up to 120%% jitter): %d-%ds",
			     lease_s, lease_s, lease_s + 4);
	else if (f->cm_handover_us != KHA_DRILL_NONE)
		kha_lab__why(out, "handover",
			     "its holder lost its apiserver: the Lease ran out leaseDuration (%ds) "
			     "after it was last seen renewed (later than the fault), then a try",
			     lease_s);
	if (strcmp(f->sched_before, f->sched_after) != 0)
		fprintf(out, "  lease       kube-scheduler %s -> %s\n",
			f->sched_before[0] ? f->sched_before : "nobody",
			f->sched_after[0] ? f->sched_after : "nobody");
	if (f->backup_after_us != KHA_DRILL_NONE)
		fprintf(out, "  backups     went on: %s took a snapshot %s after the fault\n",
			f->backup_taker, kha_lab__dur(a, sizeof(a), f->backup_after_us));
	else
		fprintf(out, "  backups     NO SNAPSHOT after the fault\n");
}

/* the whole drill, per entry */
static void print_overall_entries(FILE *out, const struct kha_lab_k8s_drill_report *r)
{
	char a[32], b[32], c[32];

	for (int e = 0; e < KHA_LAB_ENTRIES; e++) {
		const struct kha_drill_report *w = r->drill[e][0], *rd = r->drill[e][1];

		if (!w || !rd)
			continue;
		fprintf(out,
			"  %-4s        writes %.3f%% of %zu (longest outage %s), reads %.3f%% of %zu "
			"(longest %s); watch: %zu break%s, longest reconnect %s\n",
			kha_lab_entry_name(e), w->stats.availability, w->stats.sent,
			w->stats.longest.start_us == KHA_DRILL_NONE
				? "none"
				: kha_lab__dur(a, sizeof(a),
					       w->stats.longest.end_us - w->stats.longest.start_us),
			rd->stats.availability, rd->stats.sent,
			rd->stats.longest.start_us == KHA_DRILL_NONE
				? "none"
				: kha_lab__dur(b, sizeof(b),
					       rd->stats.longest.end_us -
						       rd->stats.longest.start_us),
			rd->kube.n_gaps, rd->kube.n_gaps == 1 ? "" : "s",
			rd->kube.longest_gap_us
				? kha_lab__dur(c, sizeof(c), rd->kube.longest_gap_us)
				: "- (only the server's timeoutSeconds ends)");
		if (w->writes.verified)
			fprintf(out,
				"              %zu writes acknowledged, %zu lost; %zu failed, %zu "
				"unknown (%zu applied); listed back through the API\n",
				w->writes.acked, w->writes.lost, w->writes.failed,
				w->writes.unknown, w->writes.unknown_applied);
		if (w->writes.verified && w->writes.unknown)
			kha_lab__why(out, "unknown-writes",
				     "unknown = sent, but no reply came; listed back afterwards, "
				     "created or not; none counts as lost");
		else if (!w->writes.verified)
			fprintf(out, "              writes NOT VERIFIED: %s\n", w->writes.error);
	}
}

int kha_lab_k8s_drill_print(FILE *out, const struct kha_lab_k8s_drill_report *r)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0];
	char problems[2048];
	int code = kha_lab_k8s_drill_exit_code(r), n = 0;

	fprintf(out,
		"kha lab drill: Kubernetes API through each entry, %u requests/s of writes "
		"(ConfigMap creates) and %u of reads (GET + a watch) per entry, for %.1fs\n"
		"  node  %s (the node-local kha proxy)\n  vip   %s (kha proxy + kha vip on lb1/lb2)\n",
		m->rate, m->rate, (double)m->elapsed_us / 1e6, r->entry_url[0], r->entry_url[1]);
	for (int k = 0; k < KHA_LAB_K8S_FAULTS; k++) {
		const struct kha_lab_k8s_fault_result *f = &r->faults[k];

		if (!(r->faults_mask & (1u << k)))
			continue;
		fprintf(out, "\nfault %d  %s: %s\n", ++n, kfaults[k].name, kfaults[k].what);
		if (!f->ran) {
			fprintf(out, "  not run (the drill stopped before it)\n");
			continue;
		}
		print_fault_times(out, f);
		print_fault_entries(out, f);
		why_outage(out, f, k);
		print_fault_leases(out, r, f, k);
	}
	fprintf(out, "\noverall\n");
	print_overall_entries(out, r);
	fprintf(out,
		"  leases      kube-controller-manager: %zu holder change%s observed (leaseDuration "
		"%ds; client-go's defaults are 15s/10s/2s)\n",
		r->n_cm_terms ? r->n_cm_terms - 1 : 0, r->n_cm_terms == 2 ? "" : "s",
		(int)r->cm_lease_duration_s);
	fprintf(out, "  backups     %zu snapshots during the drill\n", r->n_snapshots);
	if (r->exited[0])
		fprintf(out,
			"  exited      %s (on their own, after the last recovery: started again, as "
			"a kubelet would)\n",
			r->exited);
	fprintf(out, "  lab         %s\n",
		r->healthy_after ? "ready again after the drill" : "NOT READY after the drill");
	kha_lab_k8s_drill_problems(r, problems, sizeof(problems));
	fprintf(out, "\nverdict: %s%s%s (exit %d)\n", code == 0 ? "PASSED" : "FAILED",
		code == 0 ? ": every invariant held" : ": ", problems, code);
	return ferror(out) ? -EIO : 0;
}

int kha_lab_k8s_drill_svg(FILE *out, const struct kha_lab_k8s_drill_report *r, enum kha_lab_entry e)
{
	const struct kha_drill_report *m = r->drill[KHA_LAB_ENTRY_NODE][0], *dr = r->drill[e][0];
	struct kha_drill_report copy;
	struct kha_drill_svg_opts so = {0};
	char title[256];
	size_t n;
	int res;

	if (!dr || !m)
		return -EINVAL;
	copy = *dr;
	n = m->n_steps;
	snprintf(title, sizeof(title),
		 "kha lab drill: ConfigMap creates through %s (%s), %.2f%% ok, %zu lost",
		 kha_lab_entry_name(e), r->entry_url[e], dr->stats.availability, dr->writes.lost);
	so.title = title;
	/* the node's commands, moved into this drill's time, and the Lease's holders */
	copy.steps = calloc(n + r->n_cm_terms + 1, sizeof(*copy.steps));
	if (!copy.steps)
		return -ENOMEM;
	copy.n_steps = 0;
	for (size_t i = 0; i < n; i++) {
		struct kha_drill_step_result *st = &copy.steps[copy.n_steps++];

		*st = m->steps[i];
		st->name = strdup(m->steps[i].name);
		if (st->started_us != KHA_DRILL_NONE)
			st->started_us = shift(m, dr, st->started_us);
		if (st->ended_us != KHA_DRILL_NONE)
			st->ended_us = shift(m, dr, st->ended_us);
	}
	for (size_t i = 1; i < r->n_cm_terms; i++) {
		struct kha_drill_step_result *st = &copy.steps[copy.n_steps];
		char *name = NULL;

		if (asprintf(&name, "cm lease: %s",
			     r->cm_terms[i].holder[0] ? r->cm_terms[i].holder : "nobody") < 0)
			break;
		kha_lab__marker_step(st, name, shift(m, dr, r->cm_terms[i].seen_us));
		copy.n_steps++;
	}
	res = kha_drill_svg_write(out, &copy, &so);
	for (size_t i = 0; i < copy.n_steps; i++)
		free(copy.steps[i].name);
	free(copy.steps);
	return res;
}

char *kha_lab_k8s_drill_svg_path(const char *svg, enum kha_lab_entry e)
{
	size_t n = strlen(svg);
	char *path = NULL;

	if (e == KHA_LAB_ENTRY_NODE)
		return strdup(svg);
	if (n > 4 && strcmp(svg + n - 4, ".svg") == 0)
		n -= 4;
	if (asprintf(&path, "%.*s-%s.svg", (int)n, svg, kha_lab_entry_name(e)) < 0)
		return NULL;
	return path;
}
