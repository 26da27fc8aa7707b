// SPDX-License-Identifier: MIT
/*
 * Fuzzes the decoders of the Kubernetes objects kha audit reads (untrusted API replies): the
 * input is tried as a Deployment, a DeploymentList, a PodDisruptionBudgetList, a PodList and a
 * Lease, and whatever decodes goes through the decisions that use it.
 */
#include "kha/audit.h"
#include "kha/json.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct kha_audit_deployment dep = {};
	struct kha_audit_deployment_list deps = {};
	struct kha_audit_pdb_list pdbs = {};
	struct kha_audit_pod_list pods = {};
	struct kha_audit_report r = {};
	struct kha_kube_lease lease;
	struct kha_diag d = {};
	bool have_dep, have_pdbs, have_pods, have_lease;
	json_t *j = NULL;

	have_dep = kha_audit_deployment_decode(text, size, &dep, &d) == 0;
	have_pdbs = kha_audit_pdb_list_decode(text, size, &pdbs, &d) == 0;
	have_pods = kha_audit_pod_list_decode(text, size, &pods, &d) == 0;
	have_lease = kha_kube_lease_decode(text, size, &lease, &d) == 0;
	if (kha_json_parse(text, size, &j, &d) == 0) {
		if (kha_audit_deployment_list_from_json(j, &deps, &d) == 0 && deps.n)
			kha_ignore(kha_audit_check_dns(NULL, &deps.items[0], NULL, NULL, &r));
		json_decref(j);
	}
	if (have_dep)
		kha_ignore(kha_audit_check_dns(NULL, &dep, have_pods ? &pods : NULL,
					       have_pdbs ? &pdbs : NULL, &r));
	kha_ignore(kha_audit_check_component("scheduler", "kube-scheduler",
					     have_lease ? &lease : NULL, NULL,
					     have_pods ? &pods : NULL, NULL, 1700000000000000, &r));
	json_decref(kha_audit_report_json(&r, NULL));
	kha_audit_report_release(&r);
	kha_audit_deployment_release(&dep);
	kha_audit_deployment_list_release(&deps);
	kha_audit_pdb_list_release(&pdbs);
	kha_audit_pod_list_release(&pods);
	return 0;
}
