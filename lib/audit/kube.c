// SPDX-License-Identifier: MIT
/*
 * Audit of the Kubernetes side: the apiservers behind default/kubernetes, the kubeconfig's
 * server, cluster DNS, and the leader-elected components. The kha_audit_check_* decisions are
 * pure; kha_audit_collect_kube() reads the objects (GETs only) and feeds them.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kha/audit.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DNS_DEFAULT "kube-system/coredns"

/* ---- small helpers -------------------------------------------------------------------------- */

/* A YAML (and JSON) double-quoted scalar of s, into buf. */
static const char *yaml_quote(char *buf, size_t size, const char *s)
{
	size_t o = 0;

	if (size < 3) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 7 < size; p++) {
		if (*p == '"' || *p == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", *p);
		} else {
			buf[o++] = (char)*p;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Whether s is safe inside single quotes of a shell command and a label selector. */
static bool plain_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-._/", *s)))
			return false;
	return true;
}

static bool same_ip(const char *a, const char *b)
{
	unsigned char x[16], y[16];

	if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
		return memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
		return memcmp(x, y, 16) == 0;
	return strcasecmp(a, b) == 0;
}

/* "https://host:port/prefix" -> host and port (443 when absent). Returns 0 or -EINVAL. */
static int url_hostport(const char *url, char *host, size_t size, uint16_t *port)
{
	const char *p = strstr(url, "://"), *end;
	char hp[300];

	p = p ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	if ((size_t)(end - p) >= sizeof(hp) || end == p)
		return -EINVAL;
	memcpy(hp, p, (size_t)(end - p));
	hp[end - p] = '\0';
	if (kha_audit_split_hostport(hp, host, size, port) == 0)
		return 0;
	/* no port: the scheme's */
	if (hp[0] == '[') {
		char *c = strchr(hp, ']');

		if (!c || c[1])
			return -EINVAL;
		*c = '\0';
		snprintf(host, size, "%s", hp + 1);
	} else {
		if (strchr(hp, ':'))
			return -EINVAL;
		snprintf(host, size, "%s", hp);
	}
	*port = strncmp(url, "http://", 7) == 0 ? 80 : 443;
	return 0;
}

static const char *format_hostport(char *buf, size_t size, const char *host, uint16_t port)
{
	if (strchr(host, ':'))
		snprintf(buf, size, "[%s]:%u", host, port);
	else
		snprintf(buf, size, "%s:%u", host, port);
	return buf;
}

/* ---- apiservers ----------------------------------------------------------------------------- */

int kha_audit_check_apiservers(const struct kha_kube_endpoint_set *set, const char *err,
			       struct kha_audit_report *r)
{
	char finding[1024];
	size_t o;

	if (!set) {
		snprintf(finding, sizeof(finding),
			 "cannot list the EndpointSlices of service default/kubernetes: %s",
			 err ? err : "unknown error");
		return kha_audit_add(r, "apiserver-endpoints", "default/kubernetes",
				     KHA_AUDIT_SKIPPED, finding,
				     "grant list on discovery.k8s.io endpointslices in namespace "
				     "default, or check yourself that 2+ apiservers run",
				     NULL, NULL);
	}
	if (set->n_endpoints == 0)
		return kha_audit_add(
			r, "apiserver-endpoints", "default/kubernetes", KHA_AUDIT_CRITICAL,
			"no ready apiserver behind service default/kubernetes: pods "
			"cannot reach the API",
			"check the apiservers (kubectl get --raw /readyz on each master) "
			"and their --advertise-address",
			NULL, NULL);
	if (set->n_endpoints == 1) {
		snprintf(finding, sizeof(finding),
			 "one apiserver behind service default/kubernetes (%s): when its master is "
			 "down or rebooting, nothing reaches the API",
			 set->endpoints[0].addr);
		return kha_audit_add(
			r, "apiserver-endpoints", "default/kubernetes", KHA_AUDIT_CRITICAL, finding,
			"run kube-apiserver on 2 or more masters (kubeadm join --control-plane), "
			"with --endpoint-reconciler-type=lease (the default) so each registers here",
			NULL, NULL);
	}
	o = (size_t)snprintf(finding, sizeof(finding),
			     "%zu apiservers behind default/kubernetes:", set->n_endpoints);
	for (size_t i = 0; i < set->n_endpoints && o < sizeof(finding); i++)
		o += (size_t)snprintf(finding + o, sizeof(finding) - o, "%s %s", i ? "," : "",
				      set->endpoints[i].addr);
	return kha_audit_add(r, "apiserver-endpoints", "default/kubernetes", KHA_AUDIT_OK, finding,
			     NULL, NULL, NULL);
}

int kha_audit_check_kubeconfig_server(const char *server, const char *entry,
				      const struct kha_kube_endpoint_set *set,
				      struct kha_audit_report *r)
{
	char host[256], ehost[256], hp[300], finding[768], fix[768], content[1024];
	uint16_t port, eport = 0;
	bool is_master = false;

	if (url_hostport(server, host, sizeof(host), &port) < 0) {
		snprintf(finding, sizeof(finding), "cannot read the kubeconfig's server '%s'",
			 server);
		return kha_audit_add(r, "kubeconfig-server", server, KHA_AUDIT_SKIPPED, finding,
				     NULL, NULL, NULL);
	}
	format_hostport(hp, sizeof(hp), host, port);
	for (size_t i = 0; set && i < set->n_endpoints; i++)
		if (same_ip(host, set->endpoints[i].ip))
			is_master = true;
	if (entry && kha_audit_split_hostport(entry, ehost, sizeof(ehost), &eport) < 0)
		entry = NULL;
	if (entry && same_ip(host, ehost) && port == eport) {
		snprintf(finding, sizeof(finding),
			 "the kubeconfig's server %s is the entry address", hp);
		return kha_audit_add(r, "kubeconfig-server", hp, KHA_AUDIT_OK, finding, NULL, NULL,
				     NULL);
	}
	if (!entry && !is_master) {
		snprintf(finding, sizeof(finding),
			 "the kubeconfig's server %s is not one of the apiservers' own addresses "
			 "(give --entry to check that it is the entry address)",
			 hp);
		return kha_audit_add(r, "kubeconfig-server", hp, KHA_AUDIT_OK, finding, NULL, NULL,
				     NULL);
	}
	if (is_master)
		snprintf(finding, sizeof(finding),
			 "the kubeconfig's server %s is a single master's own address%s%s: "
			 "everything using it fails when that master is down",
			 hp, entry ? ", not the entry " : "", entry ? entry : "");
	else
		snprintf(finding, sizeof(finding),
			 "the kubeconfig's server %s is not the entry address %s", hp, entry);
	if (entry) {
		char ehp[300];

		format_hostport(ehp, sizeof(ehp), ehost, eport);
		snprintf(
			fix, sizeof(fix),
			"point it at the entry: kubectl config set-cluster \"$(kubectl config view "
			"--minify -o jsonpath='{.clusters[0].name}')\" --server=https://%s",
			ehp);
		snprintf(content, sizeof(content),
			 "# Point this kubeconfig (and the kubelets' and controllers' ones, e.g.\n"
			 "# /etc/kubernetes/kubelet.conf) at the entry address instead of one "
			 "master.\n"
			 "kubectl config set-cluster \"$(kubectl config view --minify -o "
			 "jsonpath='{.clusters[0].name}')\" --server=https://%s\n",
			 ehp);
		return kha_audit_add(r, "kubeconfig-server", hp, KHA_AUDIT_WARNING, finding, fix,
				     "kubeconfig-server.sh", content);
	}
	return kha_audit_add(r, "kubeconfig-server", hp, KHA_AUDIT_WARNING, finding,
			     "point it at an entry address that survives a master: a VIP (kha "
			     "vip), a load balancer, or a node-local kha proxy (127.0.0.1:7443); "
			     "run kha audit --entry ADDR to check it",
			     NULL, NULL);
}

/* ---- cluster DNS ---------------------------------------------------------------------------- */

/* The labels selecting the deployment's pods, as YAML lines indented by indent. */
static void labels_yaml(char *buf, size_t size, const struct kha_audit_labels *l, int indent)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && o < size; i++) {
		char k[300], v[300];

		o += (size_t)snprintf(buf + o, size - o, "%*s%s: %s\n", indent, "",
				      yaml_quote(k, sizeof(k), l->items[i].key),
				      yaml_quote(v, sizeof(v), l->items[i].value));
	}
}

static const struct kha_audit_labels *pod_labels(const struct kha_audit_deployment *dep)
{
	return dep->selector.n ? &dep->selector : &dep->template_labels;
}

static int dns_replicas(const struct kha_audit_deployment *dep, const char *subject,
			struct kha_audit_report *r)
{
	char finding[512], fix[512], content[1024];

	if (dep->replicas < 2) {
		snprintf(finding, sizeof(finding),
			 "cluster DNS runs %" PRId64 " replica%s: the cluster's name resolution "
			 "stops whenever its node reboots, fails or is drained",
			 dep->replicas, dep->replicas == 1 ? "" : "s");
		snprintf(fix, sizeof(fix), "kubectl -n %s scale deployment/%s --replicas=2",
			 dep->namespace, dep->name);
		snprintf(content, sizeof(content),
			 "# Two DNS replicas or more, so one can be down.\n%s\n", fix);
		return kha_audit_add(r, "dns-replicas", subject, KHA_AUDIT_CRITICAL, finding, fix,
				     "dns-scale.sh", content);
	}
	if (dep->ready_replicas < dep->replicas) {
		snprintf(finding, sizeof(finding),
			 "%" PRId64 " of %" PRId64 " cluster DNS replicas are ready",
			 dep->ready_replicas, dep->replicas);
		snprintf(
			fix, sizeof(fix),
			"find out why: kubectl -n %s describe deployment/%s; kubectl -n %s get pods "
			"-o wide",
			dep->namespace, dep->name, dep->namespace);
		return kha_audit_add(r, "dns-replicas", subject,
				     dep->ready_replicas < 1 ? KHA_AUDIT_CRITICAL
							     : KHA_AUDIT_WARNING,
				     finding, fix, NULL, NULL);
	}
	snprintf(finding, sizeof(finding), "%" PRId64 " cluster DNS replicas, all ready",
		 dep->replicas);
	return kha_audit_add(r, "dns-replicas", subject, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

static int dns_spread(const struct kha_audit_deployment *dep, const struct kha_audit_pod_list *pods,
		      const char *subject, struct kha_audit_report *r)
{
	char finding[512], fix[512], content[2048], labels[1024];
	const char *node = NULL;
	size_t running = 0;
	bool one_node = true;
	int ret;

	if (!dep->anti_affinity_required && !dep->anti_affinity_preferred &&
	    !dep->n_spread_topology_keys) {
		snprintf(finding, sizeof(finding),
			 "cluster DNS has no pod anti-affinity and no topology spread constraint: "
			 "the scheduler may put every replica on one node");
		snprintf(fix, sizeof(fix),
			 "kubectl -n %s patch deployment %s --patch-file dns-anti-affinity.yaml",
			 dep->namespace, dep->name);
		labels_yaml(labels, sizeof(labels), pod_labels(dep), 20);
		snprintf(content, sizeof(content),
			 "# Keep the DNS replicas on different nodes (a strategic merge patch):\n"
			 "#   %s\n"
			 "spec:\n"
			 "  template:\n"
			 "    spec:\n"
			 "      affinity:\n"
			 "        podAntiAffinity:\n"
			 "          preferredDuringSchedulingIgnoredDuringExecution:\n"
			 "          - weight: 100\n"
			 "            podAffinityTerm:\n"
			 "              topologyKey: kubernetes.io/hostname\n"
			 "              labelSelector:\n"
			 "                matchLabels:\n"
			 "%s",
			 fix, labels);
		ret = kha_audit_add(r, "dns-spread", subject, KHA_AUDIT_WARNING, finding, fix,
				    "dns-anti-affinity.yaml", content);
	} else {
		snprintf(finding, sizeof(finding), "cluster DNS replicas are spread by %s%s%s",
			 dep->anti_affinity_required	? "required pod anti-affinity"
			 : dep->anti_affinity_preferred ? "preferred pod anti-affinity"
							: "",
			 (dep->anti_affinity_required || dep->anti_affinity_preferred) &&
					 dep->n_spread_topology_keys
				 ? " and "
				 : "",
			 dep->n_spread_topology_keys ? "topology spread constraints" : "");
		ret = kha_audit_add(r, "dns-spread", subject, KHA_AUDIT_OK, finding, NULL, NULL,
				    NULL);
	}
	if (ret < 0 || !pods)
		return ret;
	for (size_t i = 0; i < pods->n; i++) {
		const struct kha_audit_pod *p = &pods->items[i];

		if (p->terminating || !p->node[0])
			continue;
		running++;
		if (node && strcmp(node, p->node) != 0)
			one_node = false;
		node = p->node;
	}
	if (running >= 2 && one_node) {
		snprintf(finding, sizeof(finding),
			 "all %zu cluster DNS pods run on node %s: that node is a single point of "
			 "failure for DNS (restart the rollout once other nodes can take them)",
			 running, node);
		snprintf(fix, sizeof(fix), "kubectl -n %s rollout restart deployment/%s",
			 dep->namespace, dep->name);
		ret = kha_audit_add(r, "dns-spread", node, KHA_AUDIT_WARNING, finding, fix, NULL,
				    NULL);
	}
	return ret;
}

/* Whether a PDB lets no pod go at all (node drains then wait forever). */
static bool pdb_blocks(const struct kha_audit_pdb *p, int64_t replicas)
{
	uint64_t v;

	if (strcmp(p->max_unavailable, "0") == 0 || strcmp(p->max_unavailable, "0%") == 0)
		return true;
	if (strcmp(p->min_available, "100%") == 0)
		return true;
	if (p->min_available[0] && kha_parse_u64(p->min_available, 0, INT64_MAX, &v) == 0 &&
	    (int64_t)v >= replicas)
		return true;
	return false;
}

static int dns_pdb(const struct kha_audit_deployment *dep, const struct kha_audit_pdb_list *pdbs,
		   const char *subject, struct kha_audit_report *r)
{
	char finding[512], fix[512], content[2048], labels[1024], name[300];
	const struct kha_audit_pdb *match = NULL;

	if (!pdbs)
		return kha_audit_add(r, "dns-pdb", subject, KHA_AUDIT_SKIPPED,
				     "cannot list the PodDisruptionBudgets", NULL, NULL, NULL);
	for (size_t i = 0; i < pdbs->n && !match; i++) {
		const struct kha_audit_pdb *p = &pdbs->items[i];

		if (strcmp(p->namespace, dep->namespace) != 0 && p->namespace[0])
			continue;
		if (p->selector_null)
			continue; /* policy/v1: a null selector selects no pod */
		if (kha_audit_labels_match(&p->selector, &dep->template_labels))
			match = p;
	}
	if (!match) {
		snprintf(finding, sizeof(finding),
			 "no PodDisruptionBudget covers cluster DNS: a node drain may evict every "
			 "replica at once");
		snprintf(fix, sizeof(fix), "kubectl apply -f dns-pdb.yaml");
		labels_yaml(labels, sizeof(labels), pod_labels(dep), 6);
		snprintf(content, sizeof(content),
			 "# Keep at least one DNS replica through voluntary disruptions (drains):\n"
			 "#   kubectl apply -f dns-pdb.yaml\n"
			 "apiVersion: policy/v1\n"
			 "kind: PodDisruptionBudget\n"
			 "metadata:\n"
			 "  name: %s\n"
			 "  namespace: %s\n"
			 "spec:\n"
			 "  minAvailable: 1\n"
			 "  selector:\n"
			 "    matchLabels:\n"
			 "%s",
			 yaml_quote(name, sizeof(name), dep->name), dep->namespace, labels);
		return kha_audit_add(r, "dns-pdb", subject, KHA_AUDIT_WARNING, finding, fix,
				     "dns-pdb.yaml", content);
	}
	if (pdb_blocks(match, dep->replicas)) {
		snprintf(finding, sizeof(finding),
			 "PodDisruptionBudget %s/%s allows no disruption of cluster DNS "
			 "(minAvailable %s, maxUnavailable %s): node drains hang",
			 match->namespace, match->name,
			 match->min_available[0] ? match->min_available : "unset",
			 match->max_unavailable[0] ? match->max_unavailable : "unset");
		snprintf(fix, sizeof(fix),
			 "kubectl -n %s patch pdb %s --type=merge -p "
			 "'{\"spec\":{\"minAvailable\":null,\"maxUnavailable\":1}}'",
			 match->namespace, match->name);
		return kha_audit_add(r, "dns-pdb", subject, KHA_AUDIT_WARNING, finding, fix, NULL,
				     NULL);
	}
	snprintf(finding, sizeof(finding), "PodDisruptionBudget %s/%s covers cluster DNS",
		 match->namespace, match->name);
	return kha_audit_add(r, "dns-pdb", subject, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

int kha_audit_check_dns(const char *wanted, const struct kha_audit_deployment *dep,
			const struct kha_audit_pod_list *pods,
			const struct kha_audit_pdb_list *pdbs, struct kha_audit_report *r)
{
	char subject[600], finding[768], ns[300];
	int ret;

	if (!wanted)
		wanted = DNS_DEFAULT;
	if (!dep) {
		snprintf(ns, sizeof(ns), "%.*s", (int)strcspn(wanted, "/"), wanted);
		snprintf(finding, sizeof(finding),
			 "no cluster DNS Deployment found (%s, or label k8s-app=kube-dns in "
			 "namespace %s)",
			 wanted, ns);
		return kha_audit_add(
			r, "dns-replicas", wanted, KHA_AUDIT_WARNING, finding,
			"if cluster DNS runs under another name, give it with --dns "
			"NAMESPACE/NAME; if it runs as another kind, check that it has "
			"2+ replicas on different nodes and a PodDisruptionBudget",
			NULL, NULL);
	}
	snprintf(subject, sizeof(subject), "%s/%s", dep->namespace, dep->name);
	ret = dns_replicas(dep, subject, r);
	if (ret >= 0)
		ret = dns_spread(dep, pods, subject, r);
	if (ret >= 0)
		ret = dns_pdb(dep, pdbs, subject, r);
	return ret;
}

/* ---- controller-manager, scheduler ---------------------------------------------------------- */

static int component_leader(const char *id, const char *component,
			    const struct kha_kube_lease *lease, const char *lease_err,
			    int64_t now_us, struct kha_audit_report *r)
{
	char check[64], subject[128], finding[768], fix[512], age[32], dur[32];
	int64_t duration_us, age_us;

	snprintf(check, sizeof(check), "%s-leader", id);
	snprintf(subject, sizeof(subject), "kube-system/%s", component);
	if (lease_err) {
		snprintf(finding, sizeof(finding), "cannot read Lease %s: %s", subject, lease_err);
		return kha_audit_add(r, check, subject, KHA_AUDIT_SKIPPED, finding, NULL, NULL,
				     NULL);
	}
	snprintf(fix, sizeof(fix),
		 "run %s on every master with --leader-elect=true (the default); check its logs "
		 "(kubectl -n kube-system logs -l component=%s)",
		 component, component);
	if (!lease || !lease->holder_identity[0]) {
		snprintf(finding, sizeof(finding),
			 lease ? "Lease %s is held by nobody: no %s is leading"
			       : "no Lease %s: no %s holds leadership (not running, or running "
				 "with --leader-elect=false, where two copies would both act)",
			 subject, component);
		return kha_audit_add(r, check, subject, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	duration_us = (int64_t)(lease->lease_duration_s > 0 ? lease->lease_duration_s : 15) *
		      (int64_t)KHA_USEC_PER_SEC;
	age_us = now_us - (lease->renew_time_us ? lease->renew_time_us : lease->acquire_time_us);
	if (age_us < 0)
		age_us = 0;
	/* whole seconds: the API's renew times are the precision that matters */
	kha_format_duration(age, sizeof(age), (uint64_t)(age_us / 1000000) * KHA_USEC_PER_SEC);
	kha_format_duration(dur, sizeof(dur), (uint64_t)duration_us);
	/* a standby takes over once the lease expires (plus its retry period): twice the
	 * duration without a renewal means nobody is leading */
	if (!lease->renew_time_us && !lease->acquire_time_us) {
		snprintf(finding, sizeof(finding), "Lease %s (held by %s) has no renew time",
			 subject, lease->holder_identity);
		return kha_audit_add(r, check, subject, KHA_AUDIT_WARNING, finding, fix, NULL,
				     NULL);
	}
	if (age_us > 2 * duration_us) {
		snprintf(finding, sizeof(finding),
			 "the leader %s last renewed Lease %s %s ago (lease %s): it stopped and no "
			 "standby took over",
			 lease->holder_identity, subject, age, dur);
		return kha_audit_add(r, check, subject, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	snprintf(finding, sizeof(finding), "led by %s, renewed %s ago (lease %s)",
		 lease->holder_identity, age, dur);
	return kha_audit_add(r, check, subject, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

static int component_instances(const char *id, const char *component,
			       const struct kha_audit_pod_list *pods, const char *pods_err,
			       struct kha_audit_report *r)
{
	char check[64], subject[128], finding[768], fix[512];
	size_t n = 0, ready = 0, o;
	const struct kha_audit_pod *only = NULL;

	snprintf(check, sizeof(check), "%s-instances", id);
	snprintf(subject, sizeof(subject), "kube-system/component=%s", component);
	if (pods_err || !pods) {
		snprintf(finding, sizeof(finding),
			 "cannot list the pods with label component=%s: %s", component,
			 pods_err ? pods_err : "not read");
		return kha_audit_add(r, check, subject, KHA_AUDIT_SKIPPED, finding, NULL, NULL,
				     NULL);
	}
	for (size_t i = 0; i < pods->n; i++) {
		if (pods->items[i].terminating)
			continue;
		n++;
		ready += pods->items[i].ready;
		only = &pods->items[i];
	}
	snprintf(fix, sizeof(fix),
		 "run %s on every master (the static pod manifest "
		 "/etc/kubernetes/manifests/%s.yaml, as kubeadm join --control-plane installs it)",
		 component, component);
	if (n == 0) {
		snprintf(finding, sizeof(finding),
			 "no pod with label component=%s in kube-system: if it runs outside "
			 "Kubernetes (systemd), make sure 2 or more copies run",
			 component);
		return kha_audit_add(r, check, subject, KHA_AUDIT_WARNING, finding, fix, NULL,
				     NULL);
	}
	if (n == 1) {
		snprintf(finding, sizeof(finding),
			 "one %s (pod %s on node %s): while its master is down nothing %s",
			 component, only->name, only->node[0] ? only->node : "?",
			 strstr(component, "scheduler") ? "schedules new pods"
							: "reconciles (no replacement pods, no "
							  "node eviction)");
		return kha_audit_add(r, check, subject, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	o = (size_t)snprintf(finding, sizeof(finding), "%zu instances (%zu ready):", n, ready);
	for (size_t i = 0; i < pods->n && o < sizeof(finding); i++)
		if (!pods->items[i].terminating)
			o += (size_t)snprintf(finding + o, sizeof(finding) - o, "%s %s@%s",
					      o && finding[o - 1] != ':' ? "," : "",
					      pods->items[i].name,
					      pods->items[i].node[0] ? pods->items[i].node : "?");
	if (ready < 2) {
		snprintf(fix, sizeof(fix),
			 "find out why the standby is not ready: kubectl -n kube-system describe "
			 "pods -l component=%s",
			 component);
		return kha_audit_add(r, check, subject, KHA_AUDIT_WARNING, finding, fix, NULL,
				     NULL);
	}
	return kha_audit_add(r, check, subject, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

int kha_audit_check_component(const char *id, const char *component,
			      const struct kha_kube_lease *lease, const char *lease_err,
			      const struct kha_audit_pod_list *pods, const char *pods_err,
			      int64_t now_us, struct kha_audit_report *r)
{
	int ret = component_leader(id, component, lease, lease_err, now_us, r);

	return ret < 0 ? ret : component_instances(id, component, pods, pods_err, r);
}

/* ---- control-plane flags (from the mirror pods of kubeadm's static pods) ----------------- */

/* Whether every URL of a comma-separated list is on loopback; *ret_n gets their count. */
static bool etcd_urls_loopback(const char *list, size_t *ret_n)
{
	bool loop = true;
	size_t n = 0;

	for (const char *s = list; s && *s;) {
		const char *end = strchr(s, ','), *host = strstr(s, "://");
		size_t len = end ? (size_t)(end - s) : strlen(s);

		host = host && host < s + len ? host + 3 : s;
		if (len) {
			n++;
			loop &= strncmp(host, "127.", 4) == 0 ||
				strncmp(host, "localhost", 9) == 0 ||
				strncmp(host, "[::1]", 5) == 0;
		}
		s = end ? end + 1 : NULL;
	}
	*ret_n = n;
	return loop;
}

static int flags_leader_elect(const char *id, const char *component,
			      const struct kha_audit_pod_list *pods, struct kha_audit_report *r)
{
	char check[64], subject[128], finding[768], fix[512];
	size_t n = 0, off = 0;

	snprintf(check, sizeof(check), "%s-leader-elect", id);
	snprintf(subject, sizeof(subject), "kube-system/component=%s", component);
	finding[0] = '\0';
	for (size_t i = 0; i < pods->n; i++) {
		const struct kha_audit_pod *p = &pods->items[i];

		if (p->terminating)
			continue;
		n++;
		if (p->leader_elect == 0 && off < sizeof(finding))
			off += (size_t)snprintf(finding + off, sizeof(finding) - off, "%s%s@%s",
						off ? ", " : "", p->name,
						p->node[0] ? p->node : "?");
	}
	if (!n)
		return 0;
	if (off) {
		char list[512];

		snprintf(list, sizeof(list), "%s", finding);
		snprintf(finding, sizeof(finding),
			 "%s runs with --leader-elect=false (%s): with a second copy both act "
			 "(two controllers fighting over every object)",
			 component, list);
		snprintf(fix, sizeof(fix),
			 "set --leader-elect=true (the default) in "
			 "/etc/kubernetes/manifests/%s.yaml on that master",
			 component);
		return kha_audit_add(r, check, subject, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	snprintf(finding, sizeof(finding), "every %s elects a leader (%zu %s)", component, n,
		 n == 1 ? "copy" : "copies");
	return kha_audit_add(r, check, subject, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

static int flags_etcd_servers(const struct kha_audit_pod_list *pods, struct kha_audit_report *r)
{
	const char *check = "apiserver-etcd-servers",
		   *subject = "kube-system/component=kube-apiserver";
	const char *same = NULL;
	char finding[768], fix[512];
	size_t n = 0, single_remote = 0, given = 0;
	bool all_same = true;

	for (size_t i = 0; i < pods->n; i++) {
		const struct kha_audit_pod *p = &pods->items[i];
		size_t urls;

		if (p->terminating)
			continue;
		n++;
		if (!p->etcd_servers)
			continue;
		given++;
		if (etcd_urls_loopback(p->etcd_servers, &urls) || urls != 1) {
			all_same = false;
			continue;
		}
		single_remote++;
		if (same && strcmp(same, p->etcd_servers) != 0)
			all_same = false;
		same = p->etcd_servers;
	}
	if (!n || !given)
		return 0;
	snprintf(fix, sizeof(fix),
		 "list every etcd member in --etcd-servers (comma-separated) in "
		 "/etc/kubernetes/manifests/kube-apiserver.yaml on each master");
	if (single_remote == n && all_same && same) {
		snprintf(
			finding, sizeof(finding),
			"every kube-apiserver (%zu) reaches etcd through one member only (%s): when "
			"it fails, the whole API fails",
			n, same);
		return kha_audit_add(r, check, subject, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	if (single_remote) {
		snprintf(
			finding, sizeof(finding),
			"%zu of %zu kube-apiservers reach etcd through one remote member only: each "
			"fails with that member",
			single_remote, n);
		return kha_audit_add(r, check, subject, KHA_AUDIT_WARNING, finding, fix, NULL,
				     NULL);
	}
	snprintf(finding, sizeof(finding),
		 "each kube-apiserver (%zu) lists several etcd members, or its own master's "
		 "(stacked etcd)",
		 n);
	return kha_audit_add(r, check, subject, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

int kha_audit_check_flags(const char *id, const char *component,
			  const struct kha_audit_pod_list *pods, struct kha_audit_report *r)
{
	if (!pods)
		return 0;
	if (strcmp(component, "kube-apiserver") == 0)
		return flags_etcd_servers(pods, r);
	return flags_leader_elect(id, component, pods, r);
}

/* ---- collection ----------------------------------------------------------------------------- */

/* Errors that say the API itself could not be reached (as opposed to one object). */
static bool unreachable(int err)
{
	switch (err) {
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ECONNRESET:
	case -EPROTO:
	case -ECANCELED:
	case -EACCES:
	case -EBADMSG:
		return true;
	default:
		return false;
	}
}

/* "k=v,k2=v2" percent-escaped for a query; NULL when a label is not a plain token */
static char *selector_query(const struct kha_audit_labels *l)
{
	size_t size = 1, o = 0;
	char *s;

	for (size_t i = 0; i < l->n; i++) {
		if (!plain_token(l->items[i].key) ||
		    (l->items[i].value[0] && !plain_token(l->items[i].value)))
			return NULL;
		size += 3 * (strlen(l->items[i].key) + strlen(l->items[i].value)) + 6;
	}
	s = malloc(size);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < l->n; i++) {
		const char *parts[2] = {l->items[i].key, l->items[i].value};

		if (i)
			o += (size_t)snprintf(s + o, size - o, "%%2C");
		for (int k = 0; k < 2; k++) {
			for (const char *p = parts[k]; *p; p++)
				o += (size_t)(*p == '/' ? snprintf(s + o, size - o, "%%2F")
							: snprintf(s + o, size - o, "%c", *p));
			if (k == 0)
				o += (size_t)snprintf(s + o, size - o, "%%3D");
		}
	}
	return s;
}

static int get_json(struct kha_kube_client *c, const char *path, json_t **ret, char *err,
		    size_t size)
{
	struct kha_diag d = {};
	int r = kha_kube_request(c, "GET", path, NULL, ret, &d);

	if (r < 0)
		snprintf(err, size, "%s", d.msg[0] ? d.msg : strerror(-r));
	return r < 0 ? r : 0;
}

static int collect_dns(struct kha_kube_client *c, const char *wanted, struct kha_audit_report *r)
{
	struct kha_audit_deployment dep = {};
	struct kha_audit_deployment_list list = {};
	struct kha_audit_pod_list pods = {};
	struct kha_audit_pdb_list pdbs = {};
	const struct kha_audit_deployment *found = NULL;
	bool have_pods = false, have_pdbs = false;
	struct kha_diag d = {};
	char err[KHA_DIAG_MAX + 64], path[1024];
	json_t *j = NULL;
	size_t ns_len;
	int ret;

	if (!wanted)
		wanted = DNS_DEFAULT;
	ns_len = strcspn(wanted, "/");
	snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%.*s/deployments/%s", (int)ns_len,
		 wanted, wanted[ns_len] ? wanted + ns_len + 1 : "");
	ret = get_json(c, path, &j, err, sizeof(err));
	if (ret == 0) {
		ret = kha_audit_deployment_from_json(j, &dep, &d);
		json_decref(j);
		j = NULL;
		if (ret < 0)
			goto undecodable;
		found = &dep;
	} else if (ret == -ENOENT) {
		snprintf(
			path, sizeof(path),
			"/apis/apps/v1/namespaces/%.*s/deployments?labelSelector=k8s-app%%3Dkube-dns",
			(int)ns_len, wanted);
		ret = get_json(c, path, &j, err, sizeof(err));
		if (ret < 0)
			goto unreadable;
		ret = kha_audit_deployment_list_from_json(j, &list, &d);
		json_decref(j);
		j = NULL;
		if (ret < 0)
			goto undecodable;
		if (list.n)
			found = &list.items[0];
	} else {
		goto unreadable;
	}
	if (found) {
		kha_autofree char *sel = selector_query(pod_labels(found));

		if (sel &&
		    (size_t)snprintf(path, sizeof(path),
				     "/api/v1/namespaces/%s/pods?labelSelector=%s",
				     found->namespace, sel) < sizeof(path) &&
		    get_json(c, path, &j, err, sizeof(err)) == 0) {
			have_pods = kha_audit_pod_list_from_json(j, &pods, &d) == 0;
			json_decref(j);
			j = NULL;
		}
		snprintf(path, sizeof(path), "/apis/policy/v1/namespaces/%s/poddisruptionbudgets",
			 found->namespace);
		if (get_json(c, path, &j, err, sizeof(err)) == 0) {
			have_pdbs = kha_audit_pdb_list_from_json(j, &pdbs, &d) == 0;
			json_decref(j);
			j = NULL;
		}
	}
	ret = kha_audit_check_dns(wanted, found, have_pods ? &pods : NULL, have_pdbs ? &pdbs : NULL,
				  r);
	goto out;
undecodable:
	snprintf(err, sizeof(err), "%s", d.msg);
unreadable : {
	char finding[sizeof(err) + 64];

	snprintf(finding, sizeof(finding), "cannot read the cluster DNS Deployment: %s", err);
	ret = kha_audit_add(r, "dns-replicas", wanted, KHA_AUDIT_SKIPPED, finding, NULL, NULL,
			    NULL);
}
out:
	kha_audit_deployment_release(&dep);
	kha_audit_deployment_list_release(&list);
	kha_audit_pod_list_release(&pods);
	kha_audit_pdb_list_release(&pdbs);
	return ret;
}

static int collect_component(struct kha_kube_client *c, const char *id, const char *component,
			     struct kha_audit_report *r)
{
	struct kha_kube_lease lease = {};
	struct kha_audit_pod_list pods = {};
	struct kha_diag d = {};
	char lease_err[KHA_DIAG_MAX] = "", pods_err[KHA_DIAG_MAX + 64] = "", path[256];
	bool have_lease = false, have_pods = false;
	json_t *j = NULL;
	int ret;

	ret = kha_kube_lease_get(c, "kube-system", component, &lease, &d);
	if (ret == 0)
		have_lease = true;
	else if (ret != -ENOENT)
		snprintf(lease_err, sizeof(lease_err), "%s", d.msg[0] ? d.msg : strerror(-ret));
	snprintf(path, sizeof(path),
		 "/api/v1/namespaces/kube-system/pods?labelSelector=component%%3D%s", component);
	if (get_json(c, path, &j, pods_err, sizeof(pods_err)) == 0) {
		kha_diag_clear(&d);
		have_pods = kha_audit_pod_list_from_json(j, &pods, &d) == 0;
		if (!have_pods)
			snprintf(pods_err, sizeof(pods_err), "%s", d.msg);
		json_decref(j);
	}
	ret = kha_audit_check_component(id, component, have_lease ? &lease : NULL,
					lease_err[0] ? lease_err : NULL, have_pods ? &pods : NULL,
					have_pods ? NULL : pods_err, (int64_t)kha_wall_us(), r);
	if (ret >= 0 && id)
		ret = kha_audit_check_flags(id, component, have_pods ? &pods : NULL, r);
	kha_audit_pod_list_release(&pods);
	return ret;
}

/* The apiservers' static pods: their --etcd-servers (nothing reported when none is a pod). */
static int collect_apiserver_flags(struct kha_kube_client *c, struct kha_audit_report *r)
{
	struct kha_audit_pod_list pods = {};
	struct kha_diag d = {};
	char err[KHA_DIAG_MAX + 64] = "";
	json_t *j = NULL;
	int ret = 0;

	if (get_json(c,
		     "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver",
		     &j, err, sizeof(err)) < 0)
		return 0; /* the instance count comes from default/kubernetes; no flags to read */
	if (kha_audit_pod_list_from_json(j, &pods, &d) == 0)
		ret = kha_audit_check_flags("apiserver", "kube-apiserver", &pods, r);
	json_decref(j);
	kha_audit_pod_list_release(&pods);
	return ret;
}

int kha_audit_collect_kube(struct kha_kube_client *c, const char *entry, const char *dns,
			   struct kha_audit_report *r, struct kha_kube_endpoint_set *ret_apiservers,
			   struct kha_diag *d)
{
	struct kha_kube_endpoint_set set = {};
	struct kha_diag ed = {};
	int ret;

	ret = kha_kube_endpoints_list(c, NULL, &set, &ed);
	if (ret < 0 && unreachable(ret)) {
		kha_diag_set(d, -ret, "%s", ed.msg);
		return ret;
	}
	ret = kha_audit_check_apiservers(ret < 0 ? NULL : &set, ed.msg, r);
	if (ret >= 0)
		ret = kha_audit_check_kubeconfig_server(kha_kube_client_server(c), entry,
							set.n_endpoints ? &set : NULL, r);
	if (ret >= 0)
		ret = collect_dns(c, dns, r);
	if (ret >= 0)
		ret = collect_component(c, "controller-manager", "kube-controller-manager", r);
	if (ret >= 0)
		ret = collect_component(c, "scheduler", "kube-scheduler", r);
	if (ret >= 0)
		ret = collect_apiserver_flags(c, r);
	if (ret >= 0 && ret_apiservers) {
		*ret_apiservers = set;
		set = (struct kha_kube_endpoint_set){};
	}
	kha_kube_endpoint_set_release(&set);
	if (ret < 0)
		return kha_diag_set(d, -ret, "out of memory");
	return 0;
}
