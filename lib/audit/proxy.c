// SPDX-License-Identifier: MIT
/* proxy-backends: what a running kha proxy sees of the masters behind the entry (its /status). */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "kha/audit.h"
#include "kha/banned.h"

#define FIX_BACKENDS                                                                             \
	"give kha proxy every master: --backend ADDR:6443 once per master, a backends file, or " \
	"--kubeconfig discovery (docs/proxy.md)"

int kha_audit_check_proxy(const char *addr, const json_t *root, const char *err,
			  struct kha_audit_report *r)
{
	char finding[768], down[384] = "";
	const json_t *backends, *b;
	size_t i, live = 0, up = 0, dlen = 0;
	const char *one = NULL;
	int ret;

	if (err) {
		snprintf(finding, sizeof(finding), "kha proxy at %s does not answer: %s", addr,
			 err);
		return kha_audit_add(r, "proxy-backends", addr, KHA_AUDIT_CRITICAL, finding,
				     "check that kha proxy runs with --metrics-addr at this "
				     "address: kha proxy status --metrics-addr ADDR",
				     NULL, NULL);
	}
	backends = root ? json_object_get(root, "backends") : NULL;
	if (!json_is_array(backends)) {
		snprintf(finding, sizeof(finding),
			 "%s/status is not a kha proxy status (no backends list)", addr);
		return kha_audit_add(r, "proxy-backends", addr, KHA_AUDIT_CRITICAL, finding,
				     "give --proxy the --metrics-addr of a kha proxy", NULL, NULL);
	}
	json_array_foreach (backends, i, b) {
		const char *a = json_string_value(json_object_get(b, "address"));
		const char *st = json_string_value(json_object_get(b, "state"));

		if (json_is_true(json_object_get(b, "removed")) || !a || !st)
			continue;
		live++;
		one = a;
		if (strcmp(st, "up") == 0) {
			up++;
		} else if (dlen < sizeof(down) - 1) {
			int n = snprintf(down + dlen, sizeof(down) - dlen, "%s%s (%s)",
					 dlen ? ", " : "", a, st);
			dlen = n > 0 ? KHA_MIN(dlen + (size_t)n, sizeof(down) - 1) : dlen;
		}
	}
	if (live == 0) {
		snprintf(finding, sizeof(finding), "kha proxy at %s has no backend", addr);
		ret = kha_audit_add(r, "proxy-backends", addr, KHA_AUDIT_CRITICAL, finding,
				    FIX_BACKENDS, NULL, NULL);
	} else if (live == 1) {
		snprintf(finding, sizeof(finding),
			 "kha proxy at %s knows one master only (%s): the entry is down with it",
			 addr, one);
		ret = kha_audit_add(r, "proxy-backends", addr, KHA_AUDIT_CRITICAL, finding,
				    FIX_BACKENDS, NULL, NULL);
	} else if (up == 0) {
		snprintf(finding, sizeof(finding),
			 "kha proxy at %s: none of its %zu masters is up: %s", addr, live, down);
		ret = kha_audit_add(
			r, "proxy-backends", addr, KHA_AUDIT_CRITICAL, finding,
			"bring the masters back; kha proxy status shows each one's last "
			"check",
			NULL, NULL);
	} else if (up < live) {
		snprintf(finding, sizeof(finding),
			 "kha proxy at %s: %zu of %zu masters up; down: %s", addr, up, live, down);
		ret = kha_audit_add(r, "proxy-backends", addr, KHA_AUDIT_WARNING, finding,
				    "bring the masters that are down back (kha proxy status shows "
				    "why each failed its check)",
				    NULL, NULL);
	} else {
		snprintf(finding, sizeof(finding), "kha proxy at %s: all %zu masters up", addr,
			 live);
		ret = kha_audit_add(r, "proxy-backends", addr, KHA_AUDIT_OK, finding, NULL, NULL,
				    NULL);
	}
	if (ret == 0 && json_is_true(json_object_get(root, "draining"))) {
		snprintf(finding, sizeof(finding), "kha proxy at %s is stopping (draining)", addr);
		ret = kha_audit_add(r, "proxy-draining", addr, KHA_AUDIT_WARNING, finding,
				    "a node whose proxy stops loses the apiservers: restart it",
				    NULL, NULL);
	}
	return ret;
}
