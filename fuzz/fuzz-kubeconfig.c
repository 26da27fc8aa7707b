// SPDX-License-Identifier: MIT
/*
 * Fuzzes the kubeconfig parser (YAML walk, base64 and PEM checks of inline data) with arbitrary
 * file contents; relative paths resolve against a directory that does not exist.
 */
#include "kha/kube.h"
#include "kha/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kha_kube_config *cfg = NULL;
	struct kha_diag d = {};

	if (kha_kube_config_parse((const char *)data, size, "/nonexistent-kha-fuzz/config", NULL,
				  &cfg, &d) == 0)
		kha_kube_config_free(cfg);
	cfg = NULL;
	if (kha_kube_config_parse((const char *)data, size, NULL, "other", &cfg, &d) == 0)
		kha_kube_config_free(cfg);
	return 0;
}
