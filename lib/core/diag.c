// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kha/diag.h"

int kha_diag_set(struct kha_diag *d, int err, const char *fmt, ...)
{
	va_list ap;

	if (d) {
		va_start(ap, fmt);
		vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
		va_end(ap);
	}
	return err > 0 ? -err : err;
}

void kha_diag_prefix(struct kha_diag *d, const char *fmt, ...)
{
	char prefix[KHA_DIAG_MAX], old[KHA_DIAG_MAX];
	va_list ap;

	if (!d)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (!d->msg[0]) {
		snprintf(d->msg, sizeof(d->msg), "%s", prefix);
		return;
	}
	memcpy(old, d->msg, sizeof(old));
	snprintf(d->msg, sizeof(d->msg), "%s: %s", prefix, old);
}

void kha_diag_append(struct kha_diag *d, const char *fmt, ...)
{
	size_t len;
	va_list ap;

	if (!d)
		return;
	len = strlen(d->msg);
	if (len >= sizeof(d->msg) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(d->msg + len, sizeof(d->msg) - len, fmt, ap);
	va_end(ap);
}

void kha_diag_clear(struct kha_diag *d)
{
	if (d)
		d->msg[0] = '\0';
}

bool kha_diag_empty(const struct kha_diag *d)
{
	return !d || !d->msg[0];
}
