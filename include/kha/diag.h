/* SPDX-License-Identifier: MIT */
/*
 * Diagnostics: the human detail of a failure, filled by the layer that failed, so that the top
 * prints one precise line ("etcd https://127.0.0.1:2379: TLS handshake failed: ... (check
 * --cacert)"). Every function accepts a NULL diag and then does nothing.
 */
#ifndef KHA_DIAG_H
#define KHA_DIAG_H

#include "kha/common.h"

#define KHA_DIAG_MAX 512

struct kha_diag {
	char msg[KHA_DIAG_MAX];
};

/* Replaces the message. Returns -err (negative) when err > 0, else err, for `return kha_diag_set(...)`. */
int kha_diag_set(struct kha_diag *d, int err, const char *fmt, ...) KHA_PRINTF(3, 4);
/* Prepends "context: " to the current message (or sets it when empty). */
void kha_diag_prefix(struct kha_diag *d, const char *fmt, ...) KHA_PRINTF(2, 3);
/* Appends text to the message, e.g. " (check --cacert)". */
void kha_diag_append(struct kha_diag *d, const char *fmt, ...) KHA_PRINTF(2, 3);
void kha_diag_clear(struct kha_diag *d);
bool kha_diag_empty(const struct kha_diag *d);

#endif
