/* SPDX-License-Identifier: MIT */
/*
 * lib/kube internals shared by its files, the unit tests and the fuzz targets (not by other
 * modules): EndpointSlice decoding into per-slice contributions, their merge into a backend set,
 * and the retry back-off. Internal symbols use the kha_kube__ prefix.
 */
#ifndef KHA_KUBE_INTERNAL_H
#define KHA_KUBE_INTERNAL_H

#include "kha/kube.h"

/* Upper bound of a reply or a watch line kha accepts. */
#define KHA_KUBE_MAX_BODY (64u << 20)

/*
 * What one EndpointSlice contributes to the set: its endpoints (every address of every endpoint
 * on the selected port, with their conditions), before the ready filter. skipped is set when the
 * slice holds nothing usable by design (FQDN address type, no matching port).
 */
struct kha_kube__slice {
	char *name;
	char *resource_version;
	struct kha_kube_endpoint *endpoints;
	size_t n_endpoints;
	bool skipped;
};

void kha_kube__slice_release(struct kha_kube__slice *s);

/*
 * Decodes one EndpointSlice object, keeping the port named port_name (or the only TCP port).
 * Returns 0 or -EBADMSG (wrong types, no name, a bad port).
 */
int kha_kube__slice_decode(const json_t *obj, const char *port_name, struct kha_kube__slice *ret,
			   struct kha_diag *d) KHA_WUR;

/* Just metadata.resourceVersion of an object (bookmarks). Returns 0 or -EBADMSG. */
int kha_kube__object_rv(const json_t *obj, const char **ret_rv) KHA_WUR;

struct kha_kube__slice_list {
	char *resource_version;
	struct kha_kube__slice *slices;
	size_t n_slices;
};

void kha_kube__slice_list_release(struct kha_kube__slice_list *l);

/* Decodes an EndpointSliceList. Returns 0 or -EBADMSG. */
int kha_kube__slice_list_decode(const char *text, size_t len, const char *port_name,
				struct kha_kube__slice_list *ret, struct kha_diag *d) KHA_WUR;
int kha_kube__slice_list_decode_json(const json_t *root, const char *port_name,
				     struct kha_kube__slice_list *ret, struct kha_diag *d) KHA_WUR;

/*
 * Merges the contributions of n slices into *ret (see struct kha_kube_endpoint_set); rv is
 * copied into it. Returns 0 or -ENOMEM.
 */
int kha_kube__endpoints_merge(const struct kha_kube__slice *slices, size_t n, const char *rv,
			      struct kha_kube_endpoint_set *ret) KHA_WUR;

/* Capped exponential back-off with jitter: each delay is drawn in [cur/2, cur]. */
struct kha_kube__backoff {
	uint64_t initial_us;
	uint64_t max_us;
	uint64_t cur_us; /* 0 before the first failure */
};

/* The delay before the next attempt; rnd is a random 32-bit value. */
uint64_t kha_kube__backoff_next(struct kha_kube__backoff *b, uint32_t rnd);
void kha_kube__backoff_reset(struct kha_kube__backoff *b);

/* Decodes a Status from a JSON value. Returns 0 or -EBADMSG. */
int kha_kube__status_from_json(const json_t *root, struct kha_kube_status *ret) KHA_WUR;
/* Decodes a Lease from a JSON value. Returns 0 or -EBADMSG. */
int kha_kube__lease_from_json(const json_t *root, struct kha_kube_lease *ret,
			      struct kha_diag *d) KHA_WUR;

/* Encodes a Lease as kha_kube_lease_encode() does. Returns a new reference or NULL (ENOMEM). */
json_t *kha_kube__lease_to_json(const struct kha_kube_lease *l);

/* The client's stop fd (-1: none). */
int kha_kube__client_stop_fd(const struct kha_kube_client *c);

/* Base64 (OpenSSL EVP; whitespace allowed). Returns 0, -EINVAL (not base64) or -ENOMEM. */
int kha_kube__base64_decode(const char *in, size_t len, struct kha_kube_blob *ret) KHA_WUR;

#endif
