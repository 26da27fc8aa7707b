// SPDX-License-Identifier: MIT
/*
 * The verdict on a certificate (kha certs check) and the SAN test kha audit applies to the
 * certificate an apiserver presents: one home for "does it carry this address" and "is it
 * valid now", so the command and the audit cannot disagree.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kha/certs.h"
#include "kha/common.h"
#include "kha/banned.h"

bool kha_certs_has_san(X509 *cert, const char *addr)
{
	struct kha_cert_info info = {};
	bool found;

	if (!cert || !addr || !*addr || kha_certs_inspect(cert, &info, NULL) < 0)
		return false;
	found = kha_cert_info_has_san(&info, addr);
	kha_cert_info_release(&info);
	return found;
}

const char *kha_certs_format_time(char *buf, size_t size, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "%lld", (long long)t);
	return buf;
}

static void KHA_PRINTF(4, 5)
	problem(struct kha_certs_check_result *res, enum kha_certs_verdict level, bool missing_san,
		const char *fmt, ...)
{
	struct kha_certs_problem *p = &res->problems[res->n_problems++];
	va_list ap;

	p->level = level;
	p->missing_san = missing_san;
	va_start(ap, fmt);
	vsnprintf(p->text, sizeof(p->text), fmt, ap);
	va_end(ap);
	if (level > res->verdict)
		res->verdict = level;
}

/* Expired, not yet valid, or expiring within warn_days: at most one problem. */
static void check_validity(const struct kha_cert_info *info,
			   const struct kha_certs_check_request *req,
			   struct kha_certs_check_result *res)
{
	char when[32];

	if (info->not_after <= req->now)
		problem(res, KHA_CERTS_CRITICAL, false, "expired on %s",
			kha_certs_format_time(when, sizeof(when), info->not_after));
	else if (info->not_before > req->now)
		problem(res, KHA_CERTS_CRITICAL, false, "not valid before %s",
			kha_certs_format_time(when, sizeof(when), info->not_before));
	else if (info->not_after - req->now < (int64_t)req->warn_days * 86400)
		problem(res, KHA_CERTS_DEGRADED, false, "expires on %s, within %u days",
			kha_certs_format_time(when, sizeof(when), info->not_after), req->warn_days);
}

int kha_certs_check(const struct kha_cert *cert, const struct kha_cert_info *info,
		    const struct kha_certs_check_request *req, struct kha_certs_check_result *ret)
{
	struct kha_certs_check_result res = {.chain = -1};

	/* every SAN, the validity and the chain: at most n_sans + 2 problems */
	res.problems = calloc(req->n_sans + 2, sizeof(*res.problems));
	res.present = calloc(req->n_sans ? req->n_sans : 1, sizeof(*res.present));
	if (!res.problems || !res.present) {
		kha_certs_check_release(&res);
		return -ENOMEM;
	}
	for (size_t i = 0; i < req->n_sans; i++) {
		res.present[i] = kha_cert_info_has_san(info, req->sans[i]);
		if (!res.present[i])
			problem(&res, KHA_CERTS_CRITICAL, true,
				"SAN %s missing: clients dialling %s will fail TLS verification",
				req->sans[i], req->sans[i]);
	}
	check_validity(info, req, &res);
	if (req->ca) {
		struct kha_diag d = {};

		res.chain = kha_certs_verify(req->ca, cert->x509, &d) == 0;
		if (!res.chain)
			problem(&res, KHA_CERTS_CRITICAL, false, "not verified by %s: %s",
				req->ca_name ? req->ca_name : "the CA", d.msg);
	}
	*ret = res;
	return 0;
}

void kha_certs_check_release(struct kha_certs_check_result *r)
{
	free(r->problems);
	free(r->present);
	memset(r, 0, sizeof(*r));
}

const char *kha_certs_verdict_name(enum kha_certs_verdict v)
{
	static const char *const names[] = {"ok", "degraded", "critical"};

	return (unsigned)v < KHA_ARRAY_SIZE(names) ? names[v] : "?";
}
