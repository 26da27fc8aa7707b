// SPDX-License-Identifier: MIT
/* FleetLock request bodies: {"client_params": {"id": "...", "group": "..."}}. */
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "kha/election.h"
#include "kha/banned.h"

static int get_string(const json_t *params, const char *name, char *buf, size_t size,
		      struct kha_diag *d)
{
	json_t *v = json_object_get(params, name);
	const char *s;
	size_t len;

	if (!v)
		return kha_diag_set(d, EBADMSG, "client_params.%s is missing", name);
	if (!json_is_string(v))
		return kha_diag_set(d, EBADMSG, "client_params.%s is not a string", name);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0)
		return kha_diag_set(d, EBADMSG, "client_params.%s is empty", name);
	if (len >= size)
		return kha_diag_set(d, EBADMSG, "client_params.%s is longer than %zu bytes", name,
				    size - 1);
	if (strlen(s) != len)
		return kha_diag_set(d, EBADMSG, "client_params.%s contains a NUL character", name);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return kha_diag_set(d, EBADMSG,
					    "client_params.%s contains a control character", name);
	memcpy(buf, s, len + 1);
	return 0;
}

int kha_fleetlock_parse(const char *body, size_t len, struct kha_fleetlock_params *ret,
			struct kha_diag *d)
{
	struct kha_fleetlock_params p;
	json_error_t err;
	json_t *root, *params;
	int r;

	if (!body || len == 0)
		return kha_diag_set(d, EBADMSG, "empty body (expected a JSON object)");
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!root)
		return kha_diag_set(d, EBADMSG, "body is not JSON: %s", err.text);
	params = json_object_get(root, "client_params");
	if (!json_is_object(root))
		r = kha_diag_set(d, EBADMSG, "body is not a JSON object");
	else if (!params)
		r = kha_diag_set(d, EBADMSG, "client_params is missing");
	else if (!json_is_object(params))
		r = kha_diag_set(d, EBADMSG, "client_params is not an object");
	else
		r = get_string(params, "id", p.id, sizeof(p.id), d);
	if (r == 0)
		r = get_string(params, "group", p.group, sizeof(p.group), d);
	json_decref(root);
	if (r < 0)
		return r;
	if (!kha_fleetlock_group_valid(p.group))
		return kha_diag_set(d, EBADMSG,
				    "client_params.group '%s' has characters outside [a-zA-Z0-9.-]",
				    p.group);
	*ret = p;
	return 0;
}

bool kha_fleetlock_group_valid(const char *group)
{
	size_t n = strlen(group);

	if (n == 0 || n >= KHA_FLEETLOCK_GROUP_MAX)
		return false;
	for (const char *g = group; *g; g++) {
		char ch = *g;

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}
