// SPDX-License-Identifier: MIT
/*
 * The BGP entry (kha bgp on every master): who announces the service address now, read from
 * each speaker's /status. An address that one master alone announces falls with that master.
 */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "kha/audit.h"
#include "kha/banned.h"

#define FIX_MASTERS                                                                            \
	"run kha bgp on every master with the same --announce, and bring back the ones whose " \
	"health tracks fail or whose sessions are down (kha bgp status on each; docs/bgp.md)"

/* Whether speaker root announces prefix now: announcing, and told an Established router. */
static bool announces(const json_t *root, const char *prefix)
{
	const json_t *ann = json_object_get(root, "announce"), *a, *peers, *p;
	bool listed = false, v6 = strchr(prefix, ':') != NULL;
	size_t i;

	json_array_foreach (ann, i, a)
		listed = listed ||
			 (json_string_value(a) && strcmp(json_string_value(a), prefix) == 0);
	if (!listed || !json_is_true(json_object_get(root, "announcing")))
		return false;
	peers = json_object_get(root, "peers");
	json_array_foreach (peers, i, p) {
		const char *st = json_string_value(json_object_get(p, "state"));

		if (st && strcmp(st, "Established") == 0 &&
		    json_is_true(json_object_get(p, v6 ? "announced_ipv6" : "announced_ipv4")))
			return true;
	}
	return false;
}

static void append(char *buf, size_t size, const char *s)
{
	size_t n = strlen(buf);

	if (n < size - 1)
		snprintf(buf + n, size - n, "%s%s", n ? ", " : "", s);
}

/* bgp-sessions of one speaker: no router Established is critical, one router a warning. */
static int check_sessions(const char *addr, const json_t *root, struct kha_audit_report *r)
{
	const json_t *peers = json_object_get(root, "peers"), *p;
	char finding[768], down[384] = "";
	size_t i, up = 0, n = json_array_size(peers);

	json_array_foreach (peers, i, p) {
		const char *st = json_string_value(json_object_get(p, "state"));
		const char *a = json_string_value(json_object_get(p, "address"));

		if (st && strcmp(st, "Established") == 0)
			up++;
		else
			append(down, sizeof(down), a ? a : "?");
	}
	if (up == 0) {
		snprintf(finding, sizeof(finding), "kha bgp at %s has no session Established (%s)",
			 addr, down[0] ? down : "no peer");
		return kha_audit_add(r, "bgp-sessions", addr, KHA_AUDIT_CRITICAL, finding,
				     "check the routers' side and kha bgp status (last error)",
				     NULL, NULL);
	}
	if (up < n) {
		snprintf(finding, sizeof(finding),
			 "kha bgp at %s: %zu of %zu sessions up; down: %s", addr, up, n, down);
		return kha_audit_add(
			r, "bgp-sessions", addr, KHA_AUDIT_WARNING, finding,
			"bring the sessions back (kha bgp status shows the last error)", NULL,
			NULL);
	}
	if (n == 1) {
		snprintf(finding, sizeof(finding),
			 "kha bgp at %s peers with one router only: the master is cut off with it",
			 addr);
		return kha_audit_add(r, "bgp-sessions", addr, KHA_AUDIT_WARNING, finding,
				     "peer with two routers (--peer once per router)", NULL, NULL);
	}
	snprintf(finding, sizeof(finding), "kha bgp at %s: all %zu sessions Established", addr, n);
	return kha_audit_add(r, "bgp-sessions", addr, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

int kha_audit_check_bgp(const char *const *addrs, json_t *const *roots, const char *const *errs,
			size_t n, struct kha_audit_report *r)
{
	char finding[1024];
	const char *prefixes[16];
	size_t nprefixes = 0, speakers = 0;
	int ret = 0;

	for (size_t i = 0; ret == 0 && i < n; i++) {
		const json_t *ann, *a;
		size_t k;

		if (errs[i]) {
			snprintf(finding, sizeof(finding), "kha bgp at %s does not answer: %s",
				 addrs[i], errs[i]);
			ret = kha_audit_add(r, "bgp-sessions", addrs[i], KHA_AUDIT_CRITICAL,
					    finding,
					    "check that kha bgp runs with --metrics-addr at this "
					    "address: kha bgp status --metrics-addr ADDR",
					    NULL, NULL);
			continue;
		}
		if (!json_is_array(json_object_get(roots[i], "peers"))) {
			snprintf(finding, sizeof(finding), "%s/status is not a kha bgp status",
				 addrs[i]);
			ret = kha_audit_add(r, "bgp-sessions", addrs[i], KHA_AUDIT_CRITICAL,
					    finding, "give --bgp the --metrics-addr of a kha bgp",
					    NULL, NULL);
			continue;
		}
		speakers++;
		ret = check_sessions(addrs[i], roots[i], r);
		ann = json_object_get(roots[i], "announce");
		json_array_foreach (ann, k, a) {
			const char *s = json_string_value(a);
			bool seen = false;

			for (size_t j = 0; s && j < nprefixes; j++)
				seen = seen || strcmp(prefixes[j], s) == 0;
			if (s && !seen && nprefixes < KHA_ARRAY_SIZE(prefixes))
				prefixes[nprefixes++] = s;
		}
	}
	/* bgp-announce per service address: how many masters carry it now */
	for (size_t j = 0; ret == 0 && j < nprefixes; j++) {
		char with[384] = "", without[384] = "";
		size_t count = 0;

		for (size_t i = 0; i < n; i++) {
			if (errs[i] || !json_is_array(json_object_get(roots[i], "peers")))
				continue;
			if (announces(roots[i], prefixes[j])) {
				count++;
				append(with, sizeof(with), addrs[i]);
			} else {
				append(without, sizeof(without), addrs[i]);
			}
		}
		if (count == 0) {
			snprintf(finding, sizeof(finding),
				 "%s is announced by none of the %zu masters audited: the entry is "
				 "down",
				 prefixes[j], speakers);
			ret = kha_audit_add(r, "bgp-announce", prefixes[j], KHA_AUDIT_CRITICAL,
					    finding, FIX_MASTERS, NULL, NULL);
		} else if (count == 1) {
			snprintf(
				finding, sizeof(finding),
				"%s is announced by one master only (%s): the entry falls with it%s%s",
				prefixes[j], with, without[0] ? "; not announcing: " : "", without);
			ret = kha_audit_add(r, "bgp-announce", prefixes[j], KHA_AUDIT_CRITICAL,
					    finding, FIX_MASTERS, NULL, NULL);
		} else if (without[0]) {
			snprintf(finding, sizeof(finding),
				 "%s is announced by %zu masters (%s); not by %s", prefixes[j],
				 count, with, without);
			ret = kha_audit_add(r, "bgp-announce", prefixes[j], KHA_AUDIT_WARNING,
					    finding, FIX_MASTERS, NULL, NULL);
		} else {
			snprintf(finding, sizeof(finding), "%s is announced by %zu masters (%s)",
				 prefixes[j], count, with);
			ret = kha_audit_add(r, "bgp-announce", prefixes[j], KHA_AUDIT_OK, finding,
					    NULL, NULL, NULL);
		}
	}
	return ret;
}
