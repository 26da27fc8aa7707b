// SPDX-License-Identifier: MIT
/* lib/audit: the decisions (findings from decoded objects) and the Kubernetes object decoders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/x509.h>

#include "kha/audit.h"
#include "kha/certs.h"
#include "kha/file.h"
#include "kha/banned.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static char *corpus(const char *name, size_t *len)
{
	char path[1024], *buf = NULL;
	struct kha_diag d = {};

	snprintf(path, sizeof(path), "%s/%s", KHA_AUDIT_CORPUS, name);
	assert_int_equal(kha_file_read_all(path, 1 << 20, &buf, len, &d), 0);
	return buf;
}

/* The only finding of check in r (fails when there is none or more than one). */
static const struct kha_audit_finding *one(const struct kha_audit_report *r, const char *check)
{
	const struct kha_audit_finding *f = NULL;

	for (size_t i = 0; i < r->n_findings; i++) {
		if (strcmp(r->findings[i].check, check) != 0)
			continue;
		if (f)
			fail_msg("two findings for %s", check);
		f = &r->findings[i];
	}
	if (!f)
		fail_msg("no finding for %s", check);
	/* what is worth a warning is worth saying how to fix */
	if (f->severity >= KHA_AUDIT_WARNING)
		assert_true(f->fix && f->fix[0]);
	return f;
}

static size_t count(const struct kha_audit_report *r, const char *check)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_findings; i++)
		n += strcmp(r->findings[i].check, check) == 0;
	return n;
}

/* ---- report -------------------------------------------------------------------------------- */

static void test_report_verdict_and_exit_code(void **state)
{
	struct kha_audit_report r = {};

	(void)state;
	assert_int_equal(kha_audit_exit_code(&r), 0);
	assert_int_equal(kha_audit_add(&r, "a", NULL, KHA_AUDIT_SKIPPED, "x", NULL, NULL, NULL), 0);
	assert_int_equal(kha_audit_verdict(&r), KHA_AUDIT_OK); /* skipped counts as ok */
	assert_int_equal(kha_audit_exit_code(&r), 0);
	assert_int_equal(kha_audit_add(&r, "b", "s", KHA_AUDIT_WARNING, "y", "f", NULL, NULL), 0);
	assert_int_equal(kha_audit_exit_code(&r), 1);
	assert_int_equal(kha_audit_add(&r, "c", "s", KHA_AUDIT_CRITICAL, "z", "f", NULL, NULL), 0);
	assert_int_equal(kha_audit_exit_code(&r), 2);
	assert_string_equal(kha_audit_severity_name(kha_audit_verdict(&r)), "critical");
	kha_audit_report_release(&r);
	kha_audit_report_release(&r); /* a released report is a zeroed one */
}

static void test_report_fix_files_unique_and_never_paths(void **state)
{
	struct kha_audit_report r = {};

	(void)state;
	assert_int_equal(kha_audit_add(&r, "a", "", KHA_AUDIT_WARNING, "x", "f", "fix.yaml", "1"),
			 0);
	assert_int_equal(kha_audit_add(&r, "a", "", KHA_AUDIT_WARNING, "x", "f", "fix.yaml", "2"),
			 0);
	assert_int_equal(kha_audit_add(&r, "a", "", KHA_AUDIT_WARNING, "x", "f", "fix.yaml", "3"),
			 0);
	assert_int_equal(kha_audit_add(&r, "a", "", KHA_AUDIT_WARNING, "x", "f", "../evil", "4"),
			 0);
	assert_string_equal(r.findings[0].fix_file, "fix.yaml");
	assert_string_equal(r.findings[1].fix_file, "fix-2.yaml");
	assert_string_equal(r.findings[2].fix_file, "fix-3.yaml");
	assert_null(r.findings[3].fix_file);
	assert_null(r.findings[3].fix_content);
	kha_audit_report_release(&r);
}

static void test_report_json_schema(void **state)
{
	struct kha_audit_report r = {};
	json_t *src = json_pack("{s:{s:s, s:s}}", "etcd", "status", "audited", "detail", "x");
	json_t *j, *f;

	(void)state;
	assert_int_equal(kha_audit_add(&r, "dns-pdb", "kube-system/coredns", KHA_AUDIT_WARNING,
				       "no PDB", "kubectl apply -f dns-pdb.yaml", "dns-pdb.yaml",
				       "kind: PodDisruptionBudget\n"),
			 0);
	assert_int_equal(
		kha_audit_add(&r, "etcd", NULL, KHA_AUDIT_SKIPPED, "not audited", NULL, NULL, NULL),
		0);
	j = kha_audit_report_json(&r, src);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "schema")), "kha.audit.report/v1");
	assert_string_equal(json_string_value(json_object_get(j, "verdict")), "warning");
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(j, "counts"), "warning")), 1);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(j, "counts"), "skipped")), 1);
	assert_true(json_is_object(json_object_get(json_object_get(j, "sources"), "etcd")));
	f = json_array_get(json_object_get(j, "findings"), 0);
	assert_string_equal(json_string_value(json_object_get(f, "check")), "dns-pdb");
	assert_string_equal(json_string_value(json_object_get(f, "severity")), "warning");
	assert_string_equal(json_string_value(json_object_get(f, "fix_file")), "dns-pdb.yaml");
	f = json_array_get(json_object_get(j, "findings"), 1);
	assert_true(json_is_null(json_object_get(f, "fix_file")));
	assert_true(json_is_null(json_object_get(f, "fix_content")));
	assert_string_equal(json_string_value(json_object_get(f, "subject")), "");
	json_decref(j);
	json_decref(src);
	kha_audit_report_release(&r);
	/* no sources: an empty object */
	j = kha_audit_report_json(&r, NULL);
	assert_true(json_is_object(json_object_get(j, "sources")));
	json_decref(j);
}

/* ---- etcd ---------------------------------------------------------------------------------- */

static char *names[] = {"etcd-0", "etcd-1", "etcd-2", "etcd-3", "etcd-4"};
static char *urls[] = {"https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379",
		       "https://10.0.0.4:2379", "https://10.0.0.5:2379"};

/* n members, all up, leader 1; the members are borrowed static data (never released) */
static void cluster(struct kha_etcd_cluster_report *cr, struct kha_etcd_member_report *m, size_t n)
{
	memset(cr, 0, sizeof(*cr));
	memset(m, 0, n * sizeof(*m));
	for (size_t i = 0; i < n; i++) {
		m[i].member.id = i + 1;
		m[i].member.name = names[i];
		m[i].member.client_urls = &urls[i];
		m[i].member.n_client_urls = 1;
		m[i].endpoint = urls[i];
		m[i].reachable = true;
		m[i].status.leader = 1;
	}
	cr->members = m;
	cr->n_members = n;
	cr->members_from = urls[0];
}

static void down(struct kha_etcd_member_report *m)
{
	static char err[] = "connection refused";

	m->reachable = false;
	m->error = err;
	m->status.leader = 0;
}

static void test_etcd_single_member_is_critical(void **state)
{
	struct kha_etcd_cluster_report cr;
	struct kha_etcd_member_report m[1];
	struct kha_audit_report r = {};
	const struct kha_audit_finding *f;

	(void)state;
	cluster(&cr, m, 1);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	f = one(&r, "etcd-members");
	assert_int_equal(f->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(f->finding, "1 voting member"));
	assert_string_equal(f->fix_file, "etcd-grow.sh");
	assert_non_null(strstr(f->fix_content, "kha etcd member add etcd-2 --learner"));
	assert_non_null(strstr(f->fix_content, "--endpoints https://10.0.0.1:2379"));
	assert_int_equal(one(&r, "etcd-health")->severity, KHA_AUDIT_OK);
	assert_int_equal(one(&r, "etcd-alarms")->severity, KHA_AUDIT_OK);
	assert_int_equal(kha_audit_exit_code(&r), 2);
	kha_audit_report_release(&r);
}

static void test_etcd_even_count_warns_odd_is_ok(void **state)
{
	struct kha_etcd_cluster_report cr;
	struct kha_etcd_member_report m[5];
	struct kha_audit_report r = {};

	(void)state;
	cluster(&cr, m, 2);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(one(&r, "etcd-members")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	cluster(&cr, m, 4);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(one(&r, "etcd-members")->severity, KHA_AUDIT_WARNING);
	assert_non_null(strstr(one(&r, "etcd-members")->finding, "survives losing 1"));
	kha_audit_report_release(&r);
	cluster(&cr, m, 3);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(one(&r, "etcd-members")->severity, KHA_AUDIT_OK);
	assert_int_equal(kha_audit_exit_code(&r), 0);
	kha_audit_report_release(&r);
	cluster(&cr, m, 5);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(kha_audit_exit_code(&r), 0);
	kha_audit_report_release(&r);
}

static void test_etcd_member_down_and_quorum_lost(void **state)
{
	struct kha_etcd_cluster_report cr;
	struct kha_etcd_member_report m[3];
	struct kha_audit_report r = {};
	const struct kha_audit_finding *f;

	(void)state;
	cluster(&cr, m, 3);
	down(&m[2]);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	f = one(&r, "etcd-health");
	assert_int_equal(f->severity, KHA_AUDIT_WARNING);
	assert_non_null(strstr(f->finding, "etcd-2"));
	assert_non_null(strstr(f->finding, "connection refused"));
	assert_string_equal(f->subject, "https://10.0.0.3:2379");
	assert_int_equal(kha_audit_exit_code(&r), 1);
	kha_audit_report_release(&r);

	down(&m[1]);
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(count(&r, "etcd-health"), 3); /* quorum lost + two members down */
	assert_non_null(strstr(r.findings[1].finding, "quorum lost"));
	assert_int_equal(r.findings[1].severity, KHA_AUDIT_CRITICAL);
	assert_int_equal(kha_audit_exit_code(&r), 2);
	kha_audit_report_release(&r);
}

static void test_etcd_leader_disagreement_learner_alarms(void **state)
{
	struct kha_etcd_cluster_report cr;
	struct kha_etcd_member_report m[4];
	struct kha_audit_report r = {};

	(void)state;
	cluster(&cr, m, 3);
	m[1].status.leader = 2;
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(one(&r, "etcd-health")->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "etcd-health")->finding, "leader"));
	kha_audit_report_release(&r);

	cluster(&cr, m, 4);
	m[3].member.is_learner = true;
	m[0].alarm_nospace = true;
	m[2].alarm_corrupt = true;
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(one(&r, "etcd-members")->severity, KHA_AUDIT_OK); /* 3 voters */
	assert_int_equal(one(&r, "etcd-learners")->severity, KHA_AUDIT_WARNING);
	assert_non_null(strstr(one(&r, "etcd-learners")->fix, "kha etcd member promote etcd-3"));
	assert_int_equal(count(&r, "etcd-alarms"), 2);
	for (size_t i = 0; i < r.n_findings; i++)
		if (strcmp(r.findings[i].check, "etcd-alarms") == 0)
			assert_int_equal(r.findings[i].severity, KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);

	/* etcd 3.4's CORRUPT on member 0: one critical finding for the cluster, no member blamed */
	cluster(&cr, m, 3);
	cr.alarm_corrupt_unnamed = true;
	assert_int_equal(kha_audit_check_etcd(&cr, &r), 0);
	assert_int_equal(one(&r, "etcd-alarms")->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "etcd-alarms")->finding, "naming no member"));
	assert_string_equal(one(&r, "etcd-alarms")->fix, "kha etcd check consistency");
	assert_int_equal(kha_audit_exit_code(&r), 2);
	kha_audit_report_release(&r);
}

/* ---- backups ------------------------------------------------------------------------------- */

static void test_backup_rules(void **state)
{
	struct kha_audit_report r = {};
	struct kha_audit_backup_file f[2] = {};
	const int64_t now = 1700000000;
	const uint64_t day = 24 * 3600 * KHA_USEC_PER_SEC;

	(void)state;
	assert_int_equal(
		kha_audit_check_backup("/b", "No such file or directory", NULL, 0, now, day, &r),
		0);
	assert_int_equal(one(&r, "etcd-backup")->severity, KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);

	assert_int_equal(kha_audit_check_backup("/b", NULL, NULL, 0, now, day, &r), 0);
	assert_int_equal(one(&r, "etcd-backup")->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "etcd-backup")->fix, "kha etcd backup --dir /b"));
	kha_audit_report_release(&r);

	snprintf(f[0].name, sizeof(f[0].name), "new.db");
	f[0].mtime_s = now - 3600;
	f[0].verified = f[0].checked = true;
	f[0].revision = 42;
	assert_int_equal(kha_audit_check_backup("/b", NULL, f, 1, now, day, &r), 0);
	assert_int_equal(one(&r, "etcd-backup")->severity, KHA_AUDIT_OK);
	assert_non_null(strstr(one(&r, "etcd-backup")->finding, "revision 42"));
	kha_audit_report_release(&r);

	f[0].mtime_s = now - 2 * 24 * 3600; /* older than allowed */
	assert_int_equal(kha_audit_check_backup("/b", NULL, f, 1, now, day, &r), 0);
	assert_int_equal(one(&r, "etcd-backup")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	f[0].mtime_s = now - 5 * 24 * 3600; /* more than four times older */
	assert_int_equal(kha_audit_check_backup("/b", NULL, f, 1, now, day, &r), 0);
	assert_int_equal(one(&r, "etcd-backup")->severity, KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);

	/* the newest is broken, an older recent one verifies */
	f[1] = f[0];
	f[1].mtime_s = now - 7200;
	f[0] = (struct kha_audit_backup_file){.mtime_s = now - 60, .checked = true};
	snprintf(f[0].name, sizeof(f[0].name), "broken.db");
	snprintf(f[0].reason, sizeof(f[0].reason), "SHA-256 mismatch");
	assert_int_equal(kha_audit_check_backup("/b", NULL, f, 2, now, day, &r), 0);
	assert_int_equal(count(&r, "etcd-backup"), 2);
	assert_int_equal(r.findings[0].severity, KHA_AUDIT_WARNING);
	assert_non_null(strstr(r.findings[0].finding, "SHA-256 mismatch"));
	assert_int_equal(r.findings[1].severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);

	/* nothing verifies */
	f[1].verified = false;
	assert_int_equal(kha_audit_check_backup("/b", NULL, f, 2, now, day, &r), 0);
	assert_int_equal(one(&r, "etcd-backup")->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "etcd-backup")->finding, "broken.db"));
	kha_audit_report_release(&r);
}

/* ---- decoders ------------------------------------------------------------------------------ */

static void test_decode_deployment(void **state)
{
	struct kha_audit_deployment dep = {};
	struct kha_diag d = {};
	size_t len;
	char *text = corpus("deployment-coredns.json", &len);

	(void)state;
	assert_int_equal(kha_audit_deployment_decode(text, len, &dep, &d), 0);
	assert_string_equal(dep.name, "coredns");
	assert_string_equal(dep.namespace, "kube-system");
	assert_int_equal(dep.replicas, 2);
	assert_int_equal(dep.ready_replicas, 2);
	assert_int_equal(dep.available_replicas, 2);
	assert_string_equal(kha_audit_labels_get(&dep.selector, "k8s-app"), "kube-dns");
	assert_string_equal(kha_audit_labels_get(&dep.template_labels, "k8s-app"), "kube-dns");
	assert_false(dep.anti_affinity_required);
	assert_true(dep.anti_affinity_preferred);
	assert_int_equal(dep.n_anti_affinity_topology_keys, 1);
	assert_string_equal(dep.anti_affinity_topology_keys[0], "kubernetes.io/hostname");
	assert_int_equal(dep.n_spread_topology_keys, 0);
	kha_audit_deployment_release(&dep);
	free(text);

	/* absent replicas: the API's default of 1 */
	text = strdup("{\"metadata\":{\"name\":\"x\",\"namespace\":\"n\"},\"spec\":{}}");
	assert_int_equal(kha_audit_deployment_decode(text, strlen(text), &dep, &d), 0);
	assert_int_equal(dep.replicas, 1);
	assert_int_equal(dep.selector.n, 0);
	kha_audit_deployment_release(&dep);
	free(text);
}

static void test_decode_deployment_rejects_bad_types(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"metadata\":{\"name\":\"\"}}",
		"{\"metadata\":{\"name\":3}}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":[]}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"selector\":{\"matchLabels\":{\"a\":1}}}}",
		("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"template\":{\"spec\":{"
		 "\"topologySpreadConstraints\":[{}]}}}}"),
		"not json",
	};
	struct kha_audit_deployment dep = {};
	struct kha_diag d = {};
	size_t len;
	char *text;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		kha_diag_clear(&d);
		assert_int_equal(kha_audit_deployment_decode(bad[i], strlen(bad[i]), &dep, &d),
				 -EBADMSG);
		assert_false(kha_diag_empty(&d));
	}
	text = corpus("bad-replicas.json", &len);
	assert_int_equal(kha_audit_deployment_decode(text, len, &dep, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "replicas"));
	free(text);
	text = corpus("bad-topology.json", &len);
	assert_int_equal(kha_audit_deployment_decode(text, len, &dep, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "topologyKey"));
	free(text);
}

static void test_decode_deployment_list(void **state)
{
	struct kha_audit_deployment_list l = {};
	struct kha_diag d = {};
	json_t *j;
	size_t len;
	char *text = corpus("deployment-list-single.json", &len);

	(void)state;
	j = json_loadb(text, len, 0, NULL);
	assert_non_null(j);
	assert_int_equal(kha_audit_deployment_list_from_json(j, &l, &d), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.items[0].name, "kube-dns");
	assert_int_equal(l.items[0].replicas, 1);
	assert_int_equal(l.items[0].n_spread_topology_keys, 1);
	assert_string_equal(l.items[0].spread_topology_keys[0], "topology.kubernetes.io/zone");
	kha_audit_deployment_list_release(&l);
	json_decref(j);
	free(text);
}

static void test_decode_pdb_list(void **state)
{
	struct kha_audit_pdb_list l = {};
	struct kha_diag d = {};
	size_t len;
	char *text = corpus("pdb-list.json", &len);

	(void)state;
	assert_int_equal(kha_audit_pdb_list_decode(text, len, &l, &d), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].name, "coredns");
	assert_string_equal(l.items[0].min_available, "1");
	assert_string_equal(l.items[0].max_unavailable, "");
	assert_string_equal(kha_audit_labels_get(&l.items[0].selector, "k8s-app"), "kube-dns");
	assert_int_equal(l.items[0].disruptions_allowed, 1);
	assert_int_equal(l.items[0].expected_pods, 2);
	assert_false(l.items[0].selector_null);
	assert_string_equal(l.items[1].max_unavailable, "0%");
	assert_true(l.items[1].selector_has_expressions);
	assert_true(l.items[2].selector_null);
	kha_audit_pdb_list_release(&l);
	free(text);

	text = strdup(
		"{\"items\":[{\"metadata\":{\"name\":\"p\"},\"spec\":{\"minAvailable\":[]}}]}");
	assert_int_equal(kha_audit_pdb_list_decode(text, strlen(text), &l, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "minAvailable"));
	free(text);
	text = strdup("{\"items\":null}");
	assert_int_equal(kha_audit_pdb_list_decode(text, strlen(text), &l, &d), 0);
	assert_int_equal(l.n, 0);
	free(text);
}

static void test_decode_pod_list(void **state)
{
	struct kha_audit_pod_list l = {};
	struct kha_diag d = {};
	size_t len;
	char *text = corpus("pod-list.json", &len);

	(void)state;
	assert_int_equal(kha_audit_pod_list_decode(text, len, &l, &d), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].name, "kube-scheduler-m1");
	assert_string_equal(l.items[0].node, "m1");
	assert_string_equal(l.items[0].phase, "Running");
	assert_true(l.items[0].ready);
	assert_false(l.items[0].terminating);
	assert_false(l.items[1].ready);
	assert_true(l.items[1].terminating);
	assert_string_equal(l.items[2].node, "");
	assert_false(l.items[2].ready);
	kha_audit_pod_list_release(&l);
	free(text);

	text = corpus("bad-condition.json", &len);
	assert_int_equal(kha_audit_pod_list_decode(text, len, &l, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "conditions"));
	free(text);
}

/* ---- Kubernetes decisions ------------------------------------------------------------------ */

static void endpoints(struct kha_kube_endpoint_set *set, struct kha_kube_endpoint *e, size_t n)
{
	memset(set, 0, sizeof(*set));
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		snprintf(e[i].ip, sizeof(e[i].ip), "10.0.0.%zu", i + 1);
		snprintf(e[i].addr, sizeof(e[i].addr), "10.0.0.%zu:6443", i + 1);
		e[i].port = 6443;
		e[i].ready = e[i].serving = true;
	}
	set->endpoints = e;
	set->n_endpoints = n;
}

static void test_apiservers(void **state)
{
	struct kha_kube_endpoint_set set;
	struct kha_kube_endpoint e[3];
	struct kha_audit_report r = {};

	(void)state;
	endpoints(&set, e, 1);
	assert_int_equal(kha_audit_check_apiservers(&set, NULL, &r), 0);
	assert_int_equal(one(&r, "apiserver-endpoints")->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "apiserver-endpoints")->finding, "10.0.0.1:6443"));
	kha_audit_report_release(&r);
	endpoints(&set, e, 0);
	assert_int_equal(kha_audit_check_apiservers(&set, NULL, &r), 0);
	assert_int_equal(one(&r, "apiserver-endpoints")->severity, KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);
	endpoints(&set, e, 3);
	assert_int_equal(kha_audit_check_apiservers(&set, NULL, &r), 0);
	assert_int_equal(one(&r, "apiserver-endpoints")->severity, KHA_AUDIT_OK);
	assert_non_null(strstr(one(&r, "apiserver-endpoints")->finding, "10.0.0.3:6443"));
	kha_audit_report_release(&r);
	assert_int_equal(kha_audit_check_apiservers(NULL, "403 Forbidden", &r), 0);
	assert_int_equal(one(&r, "apiserver-endpoints")->severity, KHA_AUDIT_SKIPPED);
	kha_audit_report_release(&r);
}

static void test_kubeconfig_server(void **state)
{
	struct kha_kube_endpoint_set set;
	struct kha_kube_endpoint e[3];
	struct kha_audit_report r = {};
	const struct kha_audit_finding *f;

	(void)state;
	endpoints(&set, e, 3);
	/* the entry itself */
	assert_int_equal(kha_audit_check_kubeconfig_server("https://10.0.0.100:6443",
							   "10.0.0.100:6443", &set, &r),
			 0);
	assert_int_equal(one(&r, "kubeconfig-server")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);
	/* one master's address instead of the entry */
	assert_int_equal(kha_audit_check_kubeconfig_server("https://10.0.0.2:6443/",
							   "10.0.0.100:6443", &set, &r),
			 0);
	f = one(&r, "kubeconfig-server");
	assert_int_equal(f->severity, KHA_AUDIT_WARNING);
	assert_non_null(strstr(f->finding, "single master"));
	assert_non_null(strstr(f->fix, "--server=https://10.0.0.100:6443"));
	assert_string_equal(f->fix_file, "kubeconfig-server.sh");
	kha_audit_report_release(&r);
	/* another address, not the entry */
	assert_int_equal(kha_audit_check_kubeconfig_server("https://lb.example:443",
							   "10.0.0.100:6443", &set, &r),
			 0);
	assert_int_equal(one(&r, "kubeconfig-server")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	/* no entry: a master's own address is a warning, anything else ok */
	assert_int_equal(kha_audit_check_kubeconfig_server("https://10.0.0.3:6443", NULL, &set, &r),
			 0);
	assert_int_equal(one(&r, "kubeconfig-server")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	assert_int_equal(
		kha_audit_check_kubeconfig_server("https://127.0.0.1:7443", NULL, &set, &r), 0);
	assert_int_equal(one(&r, "kubeconfig-server")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);
	/* IPv6, default port */
	assert_int_equal(
		kha_audit_check_kubeconfig_server("https://[fd00::1]", "[fd00:0::1]:443", NULL, &r),
		0);
	assert_int_equal(one(&r, "kubeconfig-server")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);
}

static void dns_fixture(struct kha_audit_deployment *dep)
{
	struct kha_diag d = {};
	size_t len;
	char *text = corpus("deployment-coredns.json", &len);

	assert_int_equal(kha_audit_deployment_decode(text, len, dep, &d), 0);
	free(text);
}

static void test_dns_healthy(void **state)
{
	struct kha_audit_deployment dep = {};
	struct kha_audit_pdb_list pdbs = {};
	struct kha_audit_report r = {};
	struct kha_diag d = {};
	size_t len;
	char *text = corpus("pdb-list.json", &len);

	(void)state;
	dns_fixture(&dep);
	assert_int_equal(kha_audit_pdb_list_decode(text, len, &pdbs, &d), 0);
	assert_int_equal(kha_audit_check_dns(NULL, &dep, NULL, &pdbs, &r), 0);
	assert_int_equal(one(&r, "dns-replicas")->severity, KHA_AUDIT_OK);
	assert_int_equal(one(&r, "dns-spread")->severity, KHA_AUDIT_OK);
	assert_int_equal(one(&r, "dns-pdb")->severity, KHA_AUDIT_OK);
	assert_non_null(strstr(one(&r, "dns-pdb")->finding, "kube-system/coredns"));
	assert_int_equal(kha_audit_exit_code(&r), 0);
	kha_audit_report_release(&r);
	kha_audit_pdb_list_release(&pdbs);
	kha_audit_deployment_release(&dep);
	free(text);
}

static void test_dns_single_replica_no_spread_no_pdb(void **state)
{
	struct kha_audit_deployment dep = {};
	struct kha_audit_pdb_list none = {};
	struct kha_audit_report r = {};
	const struct kha_audit_finding *f;

	(void)state;
	dns_fixture(&dep);
	dep.replicas = 1;
	dep.anti_affinity_preferred = false;
	assert_int_equal(kha_audit_check_dns(NULL, &dep, NULL, &none, &r), 0);
	f = one(&r, "dns-replicas");
	assert_int_equal(f->severity, KHA_AUDIT_CRITICAL);
	assert_string_equal(f->fix, "kubectl -n kube-system scale deployment/coredns --replicas=2");
	assert_string_equal(f->fix_file, "dns-scale.sh");
	f = one(&r, "dns-spread");
	assert_int_equal(f->severity, KHA_AUDIT_WARNING);
	assert_string_equal(f->fix_file, "dns-anti-affinity.yaml");
	assert_non_null(strstr(f->fix_content, "podAntiAffinity:"));
	assert_non_null(strstr(f->fix_content, "topologyKey: kubernetes.io/hostname"));
	assert_non_null(strstr(f->fix_content, "\"k8s-app\": \"kube-dns\""));
	assert_non_null(strstr(f->fix, "kubectl -n kube-system patch deployment coredns"));
	f = one(&r, "dns-pdb");
	assert_int_equal(f->severity, KHA_AUDIT_WARNING);
	assert_string_equal(f->fix_file, "dns-pdb.yaml");
	assert_non_null(strstr(f->fix_content, "kind: PodDisruptionBudget"));
	assert_non_null(strstr(f->fix_content, "apiVersion: policy/v1"));
	assert_non_null(strstr(f->fix_content, "minAvailable: 1"));
	assert_non_null(strstr(f->fix_content, "namespace: kube-system"));
	assert_non_null(strstr(f->fix_content, "      \"k8s-app\": \"kube-dns\"\n"));
	assert_int_equal(kha_audit_exit_code(&r), 2);
	kha_audit_report_release(&r);

	/* PDBs unknown: skipped, not a warning */
	assert_int_equal(kha_audit_check_dns(NULL, &dep, NULL, NULL, &r), 0);
	assert_int_equal(one(&r, "dns-pdb")->severity, KHA_AUDIT_SKIPPED);
	kha_audit_report_release(&r);
	/* not found at all */
	assert_int_equal(kha_audit_check_dns(NULL, NULL, NULL, NULL, &r), 0);
	assert_int_equal(one(&r, "dns-replicas")->severity, KHA_AUDIT_WARNING);
	assert_string_equal(one(&r, "dns-replicas")->subject, "kube-system/coredns");
	kha_audit_report_release(&r);
	/* looked for under another name (--dns): that name is reported */
	assert_int_equal(kha_audit_check_dns("dns/kube-dns", NULL, NULL, NULL, &r), 0);
	assert_string_equal(one(&r, "dns-replicas")->subject, "dns/kube-dns");
	assert_non_null(strstr(one(&r, "dns-replicas")->finding,
			       "(dns/kube-dns, or label k8s-app=kube-dns in namespace dns)"));
	kha_audit_report_release(&r);
	kha_audit_deployment_release(&dep);
}

static void test_dns_pods_on_one_node_and_blocking_pdb(void **state)
{
	static const char pods_json[] =
		"{\"items\":[{\"metadata\":{\"name\":\"coredns-a\"},\"spec\":{\"nodeName\":\"w1\"},"
		"\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}},"
		"{\"metadata\":{\"name\":\"coredns-b\"},\"spec\":{\"nodeName\":\"w1\"},"
		"\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}]}";
	static const char pdb_json[] =
		"{\"items\":[{\"metadata\":{\"name\":\"dns\",\"namespace\":\"kube-system\"},"
		"\"spec\":{\"minAvailable\":2,\"selector\":{\"matchLabels\":{\"k8s-app\":"
		"\"kube-dns\"}}}}]}";
	struct kha_audit_deployment dep = {};
	struct kha_audit_pod_list pods = {};
	struct kha_audit_pdb_list pdbs = {};
	struct kha_audit_report r = {};
	struct kha_diag d = {};
	const struct kha_audit_finding *f = NULL;

	(void)state;
	dns_fixture(&dep);
	assert_int_equal(kha_audit_pod_list_decode(pods_json, strlen(pods_json), &pods, &d), 0);
	assert_int_equal(kha_audit_pdb_list_decode(pdb_json, strlen(pdb_json), &pdbs, &d), 0);
	assert_int_equal(kha_audit_check_dns(NULL, &dep, &pods, &pdbs, &r), 0);
	assert_int_equal(count(&r, "dns-spread"), 2);
	for (size_t i = 0; i < r.n_findings; i++)
		if (strcmp(r.findings[i].check, "dns-spread") == 0 &&
		    r.findings[i].severity == KHA_AUDIT_WARNING)
			f = &r.findings[i];
	assert_non_null(f);
	assert_non_null(strstr(f->finding, "node w1"));
	f = one(&r, "dns-pdb");
	assert_int_equal(f->severity, KHA_AUDIT_WARNING);
	assert_non_null(strstr(f->finding, "allows no disruption"));
	assert_non_null(strstr(f->fix, "maxUnavailable\":1"));
	kha_audit_report_release(&r);
	kha_audit_pod_list_release(&pods);
	kha_audit_pdb_list_release(&pdbs);
	kha_audit_deployment_release(&dep);
}

static void test_control_plane_flags_from_static_pods(void **state)
{
	struct kha_audit_pod_list pods = {};
	struct kha_audit_report r = {};
	struct kha_diag d = {};
	const struct kha_audit_finding *f;
	size_t len;
	char *text = corpus("pod-list-static.json", &len);

	(void)state;
	assert_int_equal(kha_audit_pod_list_decode(text, len, &pods, &d), 0);
	free(text);
	assert_int_equal(pods.n, 4);
	/* "--flag=value" and "--flag value" (in args), the bare boolean, absent flags */
	assert_string_equal(pods.items[0].etcd_servers, "https://10.0.0.21:2379");
	assert_string_equal(pods.items[1].etcd_servers, "https://10.0.0.21:2379");
	assert_int_equal(pods.items[0].leader_elect, -1);
	assert_int_equal(pods.items[2].leader_elect, 0);
	assert_int_equal(pods.items[3].leader_elect, 1);
	assert_null(pods.items[2].etcd_servers);

	/* both apiservers through the same single remote member: that member is the SPOF */
	struct kha_audit_pod_list api = {.items = pods.items, .n = 2};
	assert_int_equal(kha_audit_check_flags("apiserver", "kube-apiserver", &api, &r), 0);
	f = one(&r, "apiserver-etcd-servers");
	assert_int_equal(f->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(f->finding, "https://10.0.0.21:2379"));
	kha_audit_report_release(&r);
	/* one of them lists every member: the other is a warning */
	free(pods.items[1].etcd_servers);
	pods.items[1].etcd_servers = strdup("https://10.0.0.21:2379,https://10.0.0.22:2379");
	assert_int_equal(kha_audit_check_flags("apiserver", "kube-apiserver", &api, &r), 0);
	assert_int_equal(one(&r, "apiserver-etcd-servers")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	/* kubeadm's stacked etcd: each its own master's member on loopback */
	free(pods.items[0].etcd_servers);
	pods.items[0].etcd_servers = strdup("https://127.0.0.1:2379");
	assert_int_equal(kha_audit_check_flags("apiserver", "kube-apiserver", &api, &r), 0);
	assert_int_equal(one(&r, "apiserver-etcd-servers")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);

	/* a controller-manager with --leader-elect=false */
	struct kha_audit_pod_list cm = {.items = pods.items + 2, .n = 1};
	assert_int_equal(
		kha_audit_check_flags("controller-manager", "kube-controller-manager", &cm, &r), 0);
	f = one(&r, "controller-manager-leader-elect");
	assert_int_equal(f->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(f->finding, "kube-controller-manager-m1@m1"));
	kha_audit_report_release(&r);
	struct kha_audit_pod_list sc = {.items = pods.items + 3, .n = 1};
	assert_int_equal(kha_audit_check_flags("scheduler", "kube-scheduler", &sc, &r), 0);
	assert_int_equal(one(&r, "scheduler-leader-elect")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);
	/* not run as pods: nothing to say */
	struct kha_audit_pod_list none = {0};
	assert_int_equal(kha_audit_check_flags("scheduler", "kube-scheduler", &none, &r), 0);
	assert_int_equal(r.n_findings, 0);
	kha_audit_report_release(&r);
	kha_audit_pod_list_release(&pods);
}

static void test_component_leader_and_instances(void **state)
{
	struct kha_kube_lease lease;
	struct kha_audit_pod_list pods = {};
	struct kha_audit_report r = {};
	struct kha_diag d = {};
	const struct kha_audit_finding *f;
	int64_t renew;
	size_t len;
	char *text = corpus("lease.json", &len);

	(void)state;
	assert_int_equal(kha_kube_lease_decode(text, len, &lease, &d), 0);
	free(text);
	renew = lease.renew_time_us;
	text = corpus("pod-list.json", &len);
	assert_int_equal(kha_audit_pod_list_decode(text, len, &pods, &d), 0);
	free(text);

	/* renewed 3 s ago; 2 instances not terminating (one unscheduled, not ready) */
	assert_int_equal(kha_audit_check_component("scheduler", "kube-scheduler", &lease, NULL,
						   &pods, NULL, renew + 3 * 1000000, &r),
			 0);
	f = one(&r, "scheduler-leader");
	assert_int_equal(f->severity, KHA_AUDIT_OK);
	assert_non_null(strstr(f->finding, "m1_6f3b0c2e"));
	f = one(&r, "scheduler-instances");
	assert_int_equal(f->severity, KHA_AUDIT_WARNING); /* the standby is not ready */
	assert_non_null(strstr(f->finding, "2 instances (1 ready)"));
	kha_audit_report_release(&r);

	/* not renewed for a minute: the leader is gone and nobody took over */
	assert_int_equal(kha_audit_check_component("scheduler", "kube-scheduler", &lease, NULL,
						   &pods, NULL, renew + 60 * 1000000LL, &r),
			 0);
	assert_int_equal(one(&r, "scheduler-leader")->severity, KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);

	/* one instance only */
	pods.items[2].terminating = true;
	assert_int_equal(kha_audit_check_component("controller-manager", "kube-controller-manager",
						   NULL, NULL, &pods, NULL, renew, &r),
			 0);
	assert_int_equal(one(&r, "controller-manager-leader")->severity, KHA_AUDIT_CRITICAL);
	f = one(&r, "controller-manager-instances");
	assert_int_equal(f->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(f->finding, "kube-scheduler-m1"));
	kha_audit_report_release(&r);

	/* two ready */
	pods.items[2].terminating = false;
	pods.items[2].ready = true;
	assert_int_equal(kha_audit_check_component("scheduler", "kube-scheduler", &lease, NULL,
						   &pods, NULL, renew, &r),
			 0);
	assert_int_equal(one(&r, "scheduler-instances")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);

	/* nothing found as pods; unreadable lease */
	pods.n = 0;
	assert_int_equal(kha_audit_check_component("scheduler", "kube-scheduler", NULL, "403",
						   &pods, NULL, renew, &r),
			 0);
	assert_int_equal(one(&r, "scheduler-leader")->severity, KHA_AUDIT_SKIPPED);
	assert_int_equal(one(&r, "scheduler-instances")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	pods.n = 3;
	kha_audit_pod_list_release(&pods);
}

/* ---- the entry's certificate --------------------------------------------------------------- */

static enum kha_audit_severity proxy_verdict(const char *body, const char *err,
					     struct kha_audit_report *r)
{
	json_t *root = body ? json_loads(body, 0, NULL) : NULL; /* NULL too when not JSON */

	kha_audit_report_release(r);
	assert_int_equal(kha_audit_check_proxy("127.0.0.1:9443", root, err, r), 0);
	json_decref(root);
	return one(r, "proxy-backends")->severity;
}

static enum kha_audit_severity bgp_verdict(const char *const *bodies, size_t n,
					   struct kha_audit_report *r)
{
	const char *addrs[3] = {"10.0.0.11:9445", "10.0.0.12:9445", "10.0.0.13:9445"};
	const char *errs[3] = {NULL, NULL, NULL};
	json_t *roots[3] = {NULL, NULL, NULL};

	kha_audit_report_release(r);
	for (size_t i = 0; i < n; i++) {
		roots[i] = bodies[i] ? json_loads(bodies[i], 0, NULL) : NULL;
		errs[i] = bodies[i] ? NULL : "connection refused";
	}
	assert_int_equal(kha_audit_check_bgp(addrs, roots, errs, n, r), 0);
	for (size_t i = 0; i < n; i++)
		json_decref(roots[i]);
	return one(r, "bgp-announce")->severity;
}

static void test_bgp_entry(void **state)
{
	struct kha_audit_report r = {0};
#define SPK(ann, st)                                                                  \
	"{\"announcing\":" ann ",\"announce\":[\"10.96.0.1/32\"],\"peers\":["         \
	"{\"address\":\"10.0.0.1\",\"state\":\"" st "\",\"announced_ipv4\":" ann "}," \
	"{\"address\":\"10.0.0.2\",\"state\":\"Established\",\"announced_ipv4\":" ann "}]}"
	const char *all[3] = {SPK("true", "Established"), SPK("true", "Established"),
			      SPK("true", "Established")};
	const char *one_left[3] = {SPK("true", "Established"), SPK("false", "Established"), NULL};
	const char *two[3] = {SPK("true", "Active"), SPK("true", "Established"),
			      SPK("false", "Established")};

	(void)state;
	assert_int_equal(bgp_verdict(all, 3, &r), KHA_AUDIT_OK);
	assert_int_equal(kha_audit_verdict(&r), KHA_AUDIT_OK);
	/* one master announcing, one withdrawn, one unreachable: the entry hangs on one */
	assert_int_equal(bgp_verdict(one_left, 3, &r), KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "bgp-announce")->finding, "one master only (10.0.0.11"));
	/* two of three announce (one with a router down): a warning each */
	assert_int_equal(bgp_verdict(two, 3, &r), KHA_AUDIT_WARNING);
	assert_non_null(strstr(one(&r, "bgp-announce")->finding, "not by 10.0.0.13:9445"));
	/* a single speaker given: one master, critical */
	assert_int_equal(bgp_verdict(all, 1, &r), KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);
#undef SPK
}

static void test_proxy_backends(void **state)
{
	struct kha_audit_report r = {0};
#define B(n, st) "{\"address\":\"10.0.0." #n ":6443\",\"state\":\"" st "\",\"removed\":false}"

	(void)state;
	assert_int_equal(proxy_verdict("{\"ready\":true,\"draining\":false,\"backends\":[" B(
					       1, "up") "," B(2, "up") "," B(3, "up") "]}",
				       NULL, &r),
			 KHA_AUDIT_OK);
	/* one of three down: degraded, named */
	assert_int_equal(
		proxy_verdict("{\"backends\":[" B(1, "up") "," B(2, "down") "," B(3, "up") "]}",
			      NULL, &r),
		KHA_AUDIT_WARNING);
	assert_non_null(strstr(one(&r, "proxy-backends")->finding, "10.0.0.2:6443 (down)"));
#undef B
	/* a single master known: the entry falls with it */
	assert_int_equal(proxy_verdict("{\"backends\":[{\"address\":\"a:1\",\"state\":\"up\"},"
				       "{\"address\":\"b:1\",\"state\":\"up\",\"removed\":true}]}",
				       NULL, &r),
			 KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(one(&r, "proxy-backends")->finding, "one master only"));
	assert_non_null(strstr(one(&r, "proxy-backends")->fix, "--backend"));
	assert_int_equal(proxy_verdict("{\"backends\":[{\"address\":\"a:1\",\"state\":\"down\"},"
				       "{\"address\":\"b:1\",\"state\":\"draining\"}],"
				       "\"draining\":true}",
				       NULL, &r),
			 KHA_AUDIT_CRITICAL);
	assert_int_equal(one(&r, "proxy-draining")->severity, KHA_AUDIT_WARNING);
	/* unreachable, not a proxy, garbage */
	assert_int_equal(proxy_verdict(NULL, "connection refused", &r), KHA_AUDIT_CRITICAL);
	assert_int_equal(proxy_verdict("{\"backends\":{}}", NULL, &r), KHA_AUDIT_CRITICAL);
	assert_int_equal(proxy_verdict("\x01not json", NULL, &r), KHA_AUDIT_CRITICAL);
	assert_int_equal(proxy_verdict("{\"backends\":[]}", NULL, &r), KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);
}

static void test_split_hostport(void **state)
{
	char host[64];
	uint16_t port;

	(void)state;
	assert_int_equal(kha_audit_split_hostport("10.0.0.1:6443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(port, 6443);
	assert_int_equal(kha_audit_split_hostport("[fd00::1]:7443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "fd00::1");
	assert_int_equal(kha_audit_split_hostport("api.example.com:443", host, sizeof(host), &port),
			 0);
	assert_string_equal(host, "api.example.com");
	static const char *const bad[] = {"",		"host",	   "host:",	   ":6443",
					  "h:0",	"h:65536", "fd00::1:6443", "[fd00::1]",
					  "[nothex]:1", "a b:1",   "h:12x"};
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		assert_int_equal(kha_audit_split_hostport(bad[i], host, sizeof(host), &port),
				 -EINVAL);
	assert_int_equal(kha_audit_split_hostport("a-very-long-host-name:1", host, 8, &port),
			 -EINVAL);
}

static X509 *issue(const char *const *sans, size_t n)
{
	struct kha_cert ca = {}, leaf = {};
	struct kha_cert_request req = {.cn = "kube-apiserver",
				       .sans = sans,
				       .n_sans = n,
				       .usage = KHA_CERT_SERVER,
				       .days = 1};
	struct kha_diag d = {};
	X509 *x;

	assert_int_equal(kha_certs_create_ca("test-ca", 1, &ca, &d), 0);
	assert_int_equal(kha_certs_issue(&ca, &req, &leaf, &d), 0);
	x = leaf.x509;
	leaf.x509 = NULL;
	kha_cert_release(&leaf);
	kha_cert_release(&ca);
	return x;
}

static void test_cert_san_check(void **state)
{
	static const char *const sans[] = {"10.0.0.1", "127.0.0.1", "localhost", "fd00::1",
					   "*.example.com"};
	struct kha_audit_report r = {};
	const struct kha_audit_finding *f;
	X509 *x = issue(sans, KHA_ARRAY_SIZE(sans));

	(void)state;
	assert_true(kha_certs_has_san(x, "10.0.0.1"));
	assert_true(kha_certs_has_san(x, "fd00:0:0::1"));
	assert_true(kha_certs_has_san(x, "localhost"));
	assert_true(kha_certs_has_san(x, "api.example.com"));
	assert_false(kha_certs_has_san(x, "a.b.example.com"));
	assert_false(kha_certs_has_san(x, "10.0.0.100"));
	assert_false(kha_certs_has_san(x, "kube-apiserver")); /* the CN does not count */
	assert_false(kha_certs_has_san(x, ""));

	assert_int_equal(
		kha_audit_check_cert("entry-san", "10.0.0.1:6443", x, NULL, "10.0.0.1", &r), 0);
	assert_int_equal(one(&r, "entry-san")->severity, KHA_AUDIT_OK);
	kha_audit_report_release(&r);

	assert_int_equal(
		kha_audit_check_cert("entry-san", "10.0.0.100:6443", x, NULL, "10.0.0.100", &r), 0);
	f = one(&r, "entry-san");
	assert_int_equal(f->severity, KHA_AUDIT_CRITICAL);
	assert_non_null(strstr(f->finding, "does not carry the entry 10.0.0.100"));
	/* the reissue keeps the SANs it has and adds the entry */
	assert_non_null(strstr(f->fix, "kha certs issue --ca-dir /etc/kubernetes/pki --name "
				       "apiserver --san 10.0.0.1 --san 127.0.0.1 --san fd00::1 "
				       "--san localhost --san *.example.com --san 10.0.0.100 "
				       "--server --out-dir /etc/kubernetes/pki"));
	assert_non_null(strstr(f->fix_content, "certSANs:"));
	assert_non_null(strstr(f->fix_content, "- \"10.0.0.100\""));
	assert_string_equal(f->fix_file, "entry-san-10.0.0.100_6443.sh");
	kha_audit_report_release(&r);

	assert_int_equal(kha_audit_check_cert("apiserver-san", "10.0.0.2:6443", NULL, "refused",
					      "10.0.0.100", &r),
			 0);
	assert_int_equal(one(&r, "apiserver-san")->severity, KHA_AUDIT_WARNING);
	kha_audit_report_release(&r);
	assert_int_equal(kha_audit_check_cert("entry-san", "10.0.0.100:6443", NULL, "refused",
					      "10.0.0.100", &r),
			 0);
	assert_int_equal(one(&r, "entry-san")->severity, KHA_AUDIT_CRITICAL);
	kha_audit_report_release(&r);
	X509_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_verdict_and_exit_code),
		cmocka_unit_test(test_report_fix_files_unique_and_never_paths),
		cmocka_unit_test(test_report_json_schema),
		cmocka_unit_test(test_etcd_single_member_is_critical),
		cmocka_unit_test(test_etcd_even_count_warns_odd_is_ok),
		cmocka_unit_test(test_etcd_member_down_and_quorum_lost),
		cmocka_unit_test(test_etcd_leader_disagreement_learner_alarms),
		cmocka_unit_test(test_backup_rules),
		cmocka_unit_test(test_decode_deployment),
		cmocka_unit_test(test_decode_deployment_rejects_bad_types),
		cmocka_unit_test(test_decode_deployment_list),
		cmocka_unit_test(test_decode_pdb_list),
		cmocka_unit_test(test_decode_pod_list),
		cmocka_unit_test(test_apiservers),
		cmocka_unit_test(test_kubeconfig_server),
		cmocka_unit_test(test_dns_healthy),
		cmocka_unit_test(test_dns_single_replica_no_spread_no_pdb),
		cmocka_unit_test(test_dns_pods_on_one_node_and_blocking_pdb),
		cmocka_unit_test(test_component_leader_and_instances),
		cmocka_unit_test(test_control_plane_flags_from_static_pods),
		cmocka_unit_test(test_proxy_backends),
		cmocka_unit_test(test_bgp_entry),
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test(test_cert_san_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
