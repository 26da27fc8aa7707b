// SPDX-License-Identifier: MIT
/*
 * coordination.k8s.io/v1 Leases: get, create, and update with optimistic concurrency
 * (metadata.resourceVersion), the building blocks of leader election.
 */
#include <stdio.h>
#include <string.h>

#include "kube-internal.h"
#include "kha/banned.h"

bool kha_kube_name_valid(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '.'))
			return false;
	}
	return true;
}

static int lease_path(const char *ns, const char *name, char *buf, size_t size, struct kha_diag *d)
{
	if (!ns || !kha_kube_name_valid(ns, 63))
		return kha_diag_set(d, EINVAL, "lease: bad namespace '%s'", ns ? ns : "");
	if (name && !kha_kube_name_valid(name, 253))
		return kha_diag_set(d, EINVAL, "lease: bad name '%s'", name);
	snprintf(buf, size, "/apis/coordination.k8s.io/v1/namespaces/%s/leases%s%s", ns,
		 name ? "/" : "", name ? name : "");
	return 0;
}

/* Decodes a reply into *ret (may alias the request's lease). */
static int decode_reply(json_t *root, struct kha_kube_lease *ret, struct kha_diag *d)
{
	struct kha_kube_lease l;
	int r = kha_kube__lease_from_json(root, &l, d);

	json_decref(root);
	if (r < 0)
		return r;
	if (ret)
		*ret = l;
	return 0;
}

int kha_kube_lease_get(struct kha_kube_client *c, const char *namespace, const char *name,
		       struct kha_kube_lease *ret, struct kha_diag *d)
{
	char path[512];
	json_t *root = NULL;
	int r;

	r = lease_path(namespace, name, path, sizeof(path), d);
	if (r < 0)
		return r;
	r = kha_kube_request(c, "GET", path, NULL, &root, d);
	if (r < 0)
		return r;
	r = decode_reply(root, ret, d);
	if (r < 0)
		kha_diag_prefix(d, "kube %s: GET lease %s/%s", kha_kube_client_server(c), namespace,
				name);
	return r;
}

static int send_lease(struct kha_kube_client *c, const char *method,
		      const struct kha_kube_lease *lease, struct kha_kube_lease *ret,
		      struct kha_diag *d)
{
	char path[512];
	json_t *body, *root = NULL;
	int r;

	r = lease_path(lease->namespace, strcmp(method, "PUT") == 0 ? lease->name : NULL, path,
		       sizeof(path), d);
	if (r < 0)
		return r;
	if (!kha_kube_name_valid(lease->name, 253))
		return kha_diag_set(d, EINVAL, "lease: bad name '%s'", lease->name);
	body = kha_kube__lease_to_json(lease);
	if (!body)
		return kha_diag_set(d, EINVAL, "cannot encode the lease (not UTF-8?)");
	r = kha_kube_request(c, method, path, body, &root, d);
	json_decref(body);
	if (r < 0)
		return r;
	r = decode_reply(root, ret, d);
	if (r < 0)
		kha_diag_prefix(d, "kube %s: %s lease %s/%s", kha_kube_client_server(c), method,
				lease->namespace, lease->name);
	return r;
}

int kha_kube_lease_create(struct kha_kube_client *c, const struct kha_kube_lease *lease,
			  struct kha_kube_lease *ret, struct kha_diag *d)
{
	if (lease->resource_version[0])
		return kha_diag_set(d, EINVAL, "lease %s/%s: a new lease has no resource version",
				    lease->namespace, lease->name);
	return send_lease(c, "POST", lease, ret, d);
}

int kha_kube_lease_update(struct kha_kube_client *c, const struct kha_kube_lease *lease,
			  struct kha_kube_lease *ret, struct kha_diag *d)
{
	if (!lease->resource_version[0])
		return kha_diag_set(d, EINVAL,
				    "lease %s/%s: update needs the resource version it was read at",
				    lease->namespace, lease->name);
	return send_lease(c, "PUT", lease, ret, d);
}
