// SPDX-License-Identifier: MIT
/*
 * kha lab status: the lab's state checked live (processes, etcd health, the entry's view, the
 * election, and in a Kubernetes lab the apiservers and the kube-system Leases), its verdict,
 * and the two ways it is shown (the table, the JSON document).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "lab-internal.h"
#include "kha/parse.h"
#include "kha/banned.h"

static const char *health_text(int h)
{
	return h > 0 ? "healthy" : h == 0 ? "unhealthy" : "unreachable";
}

static void live_check_k8s(struct kha_lab *lab, struct kha_lab_live *lv)
{
	for (size_t i = 0; i < lab->n_masters; i++) {
		char base[64];

		snprintf(base, sizeof(base), "https://%s:6443", lab->masters[i].address);
		lv->api_ready[i] = kha_lab_apiserver_ready(lab, base);
		lv->n_api_ready += lv->api_ready[i];
	}
	kha_ignore(kha_lab_lease_holder(lab, "kube-controller-manager", lv->cm_holder,
					sizeof(lv->cm_holder)));
	kha_ignore(kha_lab_lease_holder(lab, "kube-scheduler", lv->sched_holder,
					sizeof(lv->sched_holder)));
	lv->vip_ready = lab->n_lbs && kha_lab_apiserver_ready(lab, lab->lbs[0].entry_url);
}

/* LEADER when the Lease holder's identity ("m1_<uuid>") names master m. */
static const char *lease_role(const char *holder, const struct kha_lab_master *m, bool on)
{
	size_t n = strlen(m->name);

	if (!on)
		return "-";
	if (!holder[0])
		return "unknown";
	return strncmp(holder, m->name, n) == 0 && holder[n] == '_' ? "LEADER" : "standby";
}

int kha_lab_live_verdict(struct kha_lab *lab, const struct kha_lab_live *lv)
{
	int worst = lv->n_healthy == lab->n_masters	 ? KHA_EXIT_OK
		    : lv->n_healthy > lab->n_masters / 2 ? KHA_EXIT_DEGRADED
							 : KHA_EXIT_CRITICAL;

	/* a companion down: it works, but a guarantee is gone (no backups, no failover) */
	if (worst == KHA_EXIT_OK &&
	    (lv->n_running < lab->n_masters || (lab->election && !lv->leader)))
		worst = KHA_EXIT_DEGRADED;
	/* a Kubernetes lab: an apiserver or a leader missing costs a guarantee */
	if (worst == KHA_EXIT_OK && lab->k8s_bin &&
	    (lv->n_api_ready < lab->n_masters || !lv->cm_holder[0] || !lv->sched_holder[0]))
		worst = KHA_EXIT_DEGRADED;
	/* no entry point: the node cannot reach the masters at all */
	if (kha_lab_node_proxy(lab) && (!lv->proxy_running || !lv->entry.ready))
		worst = KHA_EXIT_CRITICAL;
	if (lab->k8s_bin && (lv->n_api_ready == 0 || (lab->n_lbs && !lv->vip_ready)))
		worst = KHA_EXIT_CRITICAL;
	return worst;
}

void kha_lab_live_check(struct kha_lab *lab, struct kha_lab_live *lv)
{
	struct kha_lab_proc *proxy = kha_lab_node_proxy(lab);

	memset(lv, 0, sizeof(*lv));
	kha_lab_health(lab, KHA_LAB_STATUS_TIMEOUT_US, lv->health);
	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];

		lv->running[i] = true;
		for (size_t j = 0; j < m->n_procs; j++)
			lv->running[i] &= kha_lab_proc_running(&m->procs[j]);
		lv->n_running += lv->running[i];
		lv->n_healthy += lv->health[i] == 1;
	}
	lv->proxy_running = proxy && kha_lab_proc_running(proxy);
	if (proxy)
		kha_lab_entry_status(lab, KHA_LAB_STATUS_TIMEOUT_US, &lv->entry);
	if (lab->election)
		lv->leader_known =
			kha_lab_leader(lab, KHA_LAB_LEADER_TIMEOUT_US, &lv->leader, NULL) == 0;
	if (lv->leader) {
		struct kha_lab_master *lm = kha_lab_find_master(lab, lv->leader);
		struct kha_lab_proc *el = lm ? kha_lab_master_proc(lm, KHA_LAB_PROC_ELECT) : NULL;

		lv->leader_gone = el && (!kha_lab_proc_running(el) || lm->frozen);
		lv->leader_ttl_s = -1;
		if (lv->leader_gone)
			kha_ignore(kha_lab_leader_lease_ttl(lab, KHA_LAB_LEADER_TIMEOUT_US,
							    lv->leader, &lv->leader_ttl_s));
	}
	if (lab->k8s_bin)
		live_check_k8s(lab, lv);
	lv->code = kha_lab_live_verdict(lab, lv);
}

static const char *elect_role(const struct kha_lab *lab, const struct kha_lab_live *lv,
			      const struct kha_lab_master *m, bool running)
{
	if (!running)
		return "-";
	if (!lv->leader_known)
		return "unknown";
	return lv->leader && strcmp(lv->leader, m->name) == 0 ? "LEADER" : "standby";
}

/* Whether m's kha elect runs its backup now (it has descendants). */
static bool backup_running(struct kha_lab_master *m)
{
	struct kha_lab_proc *el = kha_lab_master_proc(m, KHA_LAB_PROC_ELECT);

	return el && kha_lab_proc_running(el) && kha_lab_proc_descendants(el) > 0;
}

static json_t *procs_json(const struct kha_lab_proc *procs, size_t n)
{
	json_t *a = json_array();

	for (size_t j = 0; j < n; j++)
		json_array_append_new(
			a, json_pack("{s:s, s:s, s:I, s:b, s:s}", "name", procs[j].name, "kind",
				     procs[j].name, "pid", (json_int_t)procs[j].pid, "running",
				     kha_lab_proc_running(&procs[j]), "log", procs[j].log_path));
	return a;
}

char *kha_lab_status_json(struct kha_lab *lab, const struct kha_lab_live *lv)
{
	static const char *const verdicts[] = {"healthy", "degraded", "critical"};
	kha_autofree char *eps = kha_lab_endpoints(lab);
	json_t *masters = json_array(), *root;
	char *text;

	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];
		struct kha_lab_proc *etcd =
			kha_lab_master_proc((struct kha_lab_master *)m, KHA_LAB_PROC_ETCD);
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b}", "name", m->name,
				      "client_url", m->client_url, "peer_url", m->peer_url,
				      "data_dir", m->data_dir, "health", health_text(lv->health[i]),
				      "running", lv->running[i], "etcd_running",
				      etcd && kha_lab_proc_running(etcd), "frozen", m->frozen);

		if (lab->node.entry_url)
			json_object_set_new(o, "entry_state",
					    lv->entry.state[i][0] ? json_string(lv->entry.state[i])
								  : json_null());
		if (m->backup_dir) {
			json_object_set_new(o, "backup_dir", json_string(m->backup_dir));
			json_object_set_new(
				o, "leader",
				json_boolean(lv->leader && strcmp(lv->leader, m->name) == 0));
			json_object_set_new(
				o, "backup_running",
				json_boolean(backup_running((struct kha_lab_master *)m)));
		}
		json_object_set_new(o, "processes", procs_json(m->procs, m->n_procs));
		json_array_append_new(masters, o);
	}
	root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o}", "dir", lab->dir,
			 "endpoints", eps ? eps : "", "ca_cert", lab->ca_cert, "client_cert",
			 lab->client_cert, "client_key", lab->client_key, "members",
			 (json_int_t)lab->n_masters, "running", (json_int_t)lv->n_running,
			 "healthy", (json_int_t)lv->n_healthy, "verdict", verdicts[lv->code],
			 "masters", masters);
	/* the old name of verdict, kept for scripts */
	json_object_set_new(root, "status", json_string(verdicts[lv->code]));
	if (lab->node.entry_url)
		json_object_set_new(
			root, "node",
			json_pack("{s:s, s:s, s:b, s:b, s:b, s:I, s:o}", "entry_url",
				  lab->node.entry_url, "metrics_addr", lab->node.metrics_addr,
				  "running", lv->proxy_running, "answered", lv->entry.answered,
				  "ready", lv->entry.ready, "backends_up", (json_int_t)lv->entry.up,
				  "processes", procs_json(lab->node.procs, lab->node.n_procs)));
	else
		json_object_set_new(root, "node", json_null());
	if (lab->election)
		json_object_set_new(root, "election",
				    json_pack("{s:s, s:o, s:b}", "name", lab->election, "leader",
					      lv->leader ? json_string(lv->leader) : json_null(),
					      "readable", lv->leader_known));
	else
		json_object_set_new(root, "election", json_null());
	if (lab->k8s_bin) {
		const struct kha_lab_leader_elect *le = &lab->leader_elect;
		char a[32], b[32], c[32];

		json_object_set_new(
			root, "leader_elect",
			json_pack("{s:s, s:s, s:s}", "lease_duration",
				  kha_format_duration(a, sizeof(a), le->lease_duration_us),
				  "renew_deadline",
				  kha_format_duration(b, sizeof(b), le->renew_deadline_us),
				  "retry_period",
				  kha_format_duration(c, sizeof(c), le->retry_period_us)));
	}
	if (!root)
		return NULL;
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}

/* How the entry sees master i; "up" for a process that is not serving is news not yet seen. */
static const char *entry_text(const struct kha_lab_live *lv, size_t i, bool serving)
{
	const char *st = lv->entry.state[i];

	if (!st[0])
		return "?";
	if (!serving && strcmp(st, "up") == 0)
		return "still up: its checks have not noticed yet";
	return st;
}

/* one row of the status table: process p of master i */
static void status_master_row(FILE *out, const struct kha_lab *lab, const struct kha_lab_live *lv,
			      size_t i, const struct kha_lab_proc *p)
{
	const struct kha_lab_master *m = &lab->masters[i];
	bool on = kha_lab_proc_running(p);
	char pid[16] = "-", detail[256];
	const char *state = !on ? "stopped" : m->frozen ? "FROZEN" : "running";

	if (p->pid > 0)
		snprintf(pid, sizeof(pid), "%d", (int)p->pid);
	if (p->kind == KHA_LAB_PROC_APISERVER) {
		fprintf(out, "%-6s %-23s %-8s %-8s %-12s https://%s:6443  (entry: %s)\n", m->name,
			p->name, pid, state, lv->api_ready[i] ? "ready" : "NOT READY", m->address,
			entry_text(lv, i, on && !m->frozen));
	} else if (p->kind == KHA_LAB_PROC_CONTROLLER_MANAGER ||
		   p->kind == KHA_LAB_PROC_SCHEDULER) {
		const char *holder =
			p->kind == KHA_LAB_PROC_SCHEDULER ? lv->sched_holder : lv->cm_holder;

		fprintf(out, "%-6s %-23s %-8s %-8s %-12s Lease kube-system/%s\n", m->name, p->name,
			pid, state, lease_role(holder, m, on), p->name);
	} else if (p->kind == KHA_LAB_PROC_ETCD) {
		snprintf(detail, sizeof(detail), "%s", m->client_url);
		if (lab->node.entry_url)
			snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
				 "  (entry: %s)", entry_text(lv, i, on && !m->frozen));
		fprintf(out, "%-6s %-23s %-8s %-8s %-12s %s\n", m->name, p->name, pid, state,
			health_text(lv->health[i]), detail);
	} else if (lv->leader_gone && lv->leader && strcmp(lv->leader, m->name) == 0) {
		/* stopped or frozen without resigning: still the leader on record */
		if (lv->leader_ttl_s >= 0)
			snprintf(detail, sizeof(detail),
				 "stopped, still on record: its election lease expires "
				 "in %llds",
				 (long long)lv->leader_ttl_s);
		else
			snprintf(detail, sizeof(detail),
				 "stopped, still on record until its election lease "
				 "expires");
		fprintf(out, "%-6s %-23s %-8s %-8s %-12s %s -> %s\n", m->name, p->name, pid, state,
			"LEADER", detail, m->backup_dir);
	} else {
		const char *role = elect_role(lab, lv, m, on);

		bool leads = strcmp(role, "LEADER") == 0;

		snprintf(detail, sizeof(detail), "%s",
			 !leads			       ? "waits to take over the backups"
			 : kha_lab_proc_descendants(p) ? "runs kha etcd backup"
						       : "leads; its backup is not running (yet)");
		fprintf(out, "%-6s %-23s %-8s %-8s %-12s %s -> %s\n", m->name, p->name, pid, state,
			role, detail, m->backup_dir);
	}
}

void kha_lab_status_print(FILE *out, struct kha_lab *lab, const struct kha_lab_live *lv)
{
	static const char *const verdicts[] = {"healthy", "degraded", "critical"};

	fprintf(out, "lab %s: %zu masters, %zu running, %zu etcd members healthy", lab->dir,
		lab->n_masters, lv->n_running, lv->n_healthy);
	if (lab->election)
		fprintf(out, "; backup leader: %s",
			!lv->leader_known ? "unknown (etcd did not answer)"
			: lv->leader	  ? lv->leader
					  : "nobody");
	if (lv->leader_gone) {
		/* it did not resign: the standbys wait for its election lease to run out */
		if (lv->leader_ttl_s >= 0)
			fprintf(out,
				" (stopped: its election lease expires in %llds, then a standby "
				"takes over)",
				(long long)lv->leader_ttl_s);
		else
			fprintf(out, " (stopped: its election lease is running out)");
	}
	fprintf(out, "\nverdict: %s (exit %d)\n\n", verdicts[lv->code], lv->code);
	fprintf(out, "%-6s %-23s %-8s %-8s %-12s %s\n", "OWNER", "PROC", "PID", "STATE", "HEALTH",
		"DETAIL");
	for (size_t i = 0; i < lab->n_masters; i++) {
		const struct kha_lab_master *m = &lab->masters[i];

		for (size_t j = 0; j < m->n_procs; j++)
			status_master_row(out, lab, lv, i, &m->procs[j]);
	}
	for (size_t j = 0; j < lab->node.n_procs; j++) {
		const struct kha_lab_proc *p = &lab->node.procs[j];
		char pid[16] = "-";

		if (p->pid > 0)
			snprintf(pid, sizeof(pid), "%d", (int)p->pid);
		fprintf(out, "%-6s %-23s %-8s %-8s %-12s %s -> %u of %zu masters up\n", "node",
			p->name, pid, lv->proxy_running ? "running" : "stopped",
			!lv->entry.answered ? "unreachable"
			: lv->entry.ready   ? "ready"
					    : "NOT READY",
			lab->node.entry_url, lv->entry.up, lab->n_masters);
	}
	for (size_t i = 0; i < lab->n_lbs; i++) {
		for (size_t j = 0; j < lab->lbs[i].n_procs; j++) {
			const struct kha_lab_proc *p = &lab->lbs[i].procs[j];
			char pid[16] = "-";

			if (p->pid > 0)
				snprintf(pid, sizeof(pid), "%d", (int)p->pid);
			fprintf(out, "%-6s %-23s %-8s %-8s %-12s %s\n", lab->lbs[i].name, p->name,
				pid, kha_lab_proc_running(p) ? "running" : "stopped", "-",
				p->kind == KHA_LAB_PROC_VIP ? lab->vip : lab->lbs[i].entry_url);
		}
	}
	if (lab->n_lbs)
		fprintf(out, "\nThe VIP entry %s: %s\n", lab->lbs[0].entry_url,
			lv->vip_ready ? "ready (reaches a ready apiserver)" : "NOT READY");
	if (lab->k8s_bin) {
		const struct kha_lab_leader_elect *le = &lab->leader_elect;
		char a[32], b[32], c[32];

		fprintf(out,
			"kube-controller-manager and kube-scheduler leader election: lease %s, "
			"renew deadline %s, retry period %s\n",
			kha_format_duration(a, sizeof(a), le->lease_duration_us),
			kha_format_duration(b, sizeof(b), le->renew_deadline_us),
			kha_format_duration(c, sizeof(c), le->retry_period_us));
	}
	if (lab->node.entry_url && !lab->k8s_bin)
		fprintf(out,
			"\nThe entry point fronts the etcd members' client API (no kube-apiserver in "
			"the lab).\n");
}

void kha_lab_live_release(struct kha_lab_live *lv)
{
	free(lv->leader);
	lv->leader = NULL;
}
