/* SPDX-License-Identifier: MIT */
/*
 * Backend specifications for kha proxy: who exists (membership), never whether it is healthy.
 *
 * A spec is an address and a weight. On the command line: `ADDR[,weight=N]`, for example
 * `10.0.0.11:6443` or `10.0.0.12:6443,weight=2`. In a backends file (and in the state file, which
 * has the same format) a YAML list whose items are such strings or mappings:
 *
 *   - 10.0.0.11:6443
 *   - 10.0.0.12:6443,weight=2
 *   - address: 10.0.0.13:6443
 *     weight: 3
 *
 * or a mapping with that list under the key `backends`. Weights are 1..256 (default 1); weight 0
 * is rejected (remove the entry instead). Addresses are host:port, [v6]:port or a name:port.
 */
#ifndef KHA_PROXY_BACKENDS_H
#define KHA_PROXY_BACKENDS_H

#include "kha/common.h"
#include "kha/diag.h"

#define KHA_PROXY_ADDR_MAX   256
#define KHA_PROXY_WEIGHT_MAX 256
/* a backends file larger than this is refused (a list of masters is a few hundred bytes) */
#define KHA_PROXY_BACKENDS_FILE_MAX (1024 * 1024)

struct kha_proxy_spec {
	char addr[KHA_PROXY_ADDR_MAX];
	uint32_t weight;
};

/* A growable list; owner frees with kha_proxy_spec_list_release(). */
struct kha_proxy_spec_list {
	struct kha_proxy_spec *v;
	size_t n, cap;
};

/* Parses `ADDR[,weight=N]`. Returns 0 or -EINVAL with d saying what is wrong. */
int kha_proxy_spec_parse(const char *s, struct kha_proxy_spec *ret, struct kha_diag *d) KHA_WUR;
/* Appends spec; an address already present is replaced (the last one wins). */
int kha_proxy_spec_list_add(struct kha_proxy_spec_list *l,
			    const struct kha_proxy_spec *spec) KHA_WUR;
int kha_proxy_spec_list_copy(struct kha_proxy_spec_list *dst,
			     const struct kha_proxy_spec_list *src) KHA_WUR;
bool kha_proxy_spec_list_equal(const struct kha_proxy_spec_list *a,
			       const struct kha_proxy_spec_list *b);
void kha_proxy_spec_list_release(struct kha_proxy_spec_list *l);

/*
 * Parses backends-file content (data, len; name is used in messages). On success *ret holds
 * the entries (possibly none: an empty file is an empty list). Returns 0 or -EINVAL with d
 * naming the line.
 */
int kha_proxy_backends_parse(const char *data, size_t len, const char *name,
			     struct kha_proxy_spec_list *ret, struct kha_diag *d) KHA_WUR;
/* Reads and parses a backends file. -ENOENT/-EACCES when unreadable, -EFBIG when too large. */
int kha_proxy_backends_load(const char *path, struct kha_proxy_spec_list *ret,
			    struct kha_diag *d) KHA_WUR;
/* Writes the list atomically (temporary file, fsync, rename, fsync of the directory). */
int kha_proxy_backends_save(const char *path, const struct kha_proxy_spec_list *l,
			    struct kha_diag *d) KHA_WUR;

#endif
