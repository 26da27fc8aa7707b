// SPDX-License-Identifier: MIT
/* The findings of an audit: a growing list, its verdict, its JSON form. */
#include <stdio.h>
#include <string.h>

#include "kha/audit.h"
#include "kha/banned.h"

const char *kha_audit_severity_name(enum kha_audit_severity s)
{
	switch (s) {
	case KHA_AUDIT_OK:
		return "ok";
	case KHA_AUDIT_SKIPPED:
		return "skipped";
	case KHA_AUDIT_WARNING:
		return "warning";
	case KHA_AUDIT_CRITICAL:
		return "critical";
	}
	return "?";
}

static void finding_release(struct kha_audit_finding *f)
{
	free(f->check);
	free(f->subject);
	free(f->finding);
	free(f->fix);
	free(f->fix_file);
	free(f->fix_content);
}

void kha_audit_report_release(struct kha_audit_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_findings; i++)
		finding_release(&r->findings[i]);
	free(r->findings);
	*r = (struct kha_audit_report){};
}

static bool file_name_taken(const struct kha_audit_report *r, const char *name)
{
	for (size_t i = 0; i < r->n_findings; i++)
		if (r->findings[i].fix_file && strcmp(r->findings[i].fix_file, name) == 0)
			return true;
	return false;
}

/* name, or name with "-N" before its extension when a fix of the report already has it */
static char *unique_file_name(const struct kha_audit_report *r, const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t stem = dot && dot != name ? (size_t)(dot - name) : strlen(name);
	size_t size = strlen(name) + 16;
	char *buf = malloc(size);

	if (!buf)
		return NULL;
	snprintf(buf, size, "%s", name);
	for (unsigned n = 2; file_name_taken(r, buf) && n < 100000; n++)
		snprintf(buf, size, "%.*s-%u%s", (int)stem, name, n, name + stem);
	return buf;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *c;

	if (!s)
		return NULL;
	c = strdup(s);
	if (!c)
		*oom = true;
	return c;
}

int kha_audit_add(struct kha_audit_report *r, const char *check, const char *subject,
		  enum kha_audit_severity sev, const char *finding, const char *fix,
		  const char *fix_file, const char *fix_content)
{
	struct kha_audit_finding f = {.severity = sev};
	bool oom = false;

	if (KHA_GROW(r->findings, r->cap, r->n_findings + 1) < 0)
		return -ENOMEM;
	if (fix_file && (!fix_file[0] || strchr(fix_file, '/')))
		fix_file = NULL; /* never a path: --fix-out writes inside its directory only */
	f.check = dup_or_null(check ? check : "", &oom);
	f.subject = dup_or_null(subject ? subject : "", &oom);
	f.finding = dup_or_null(finding ? finding : "", &oom);
	f.fix = dup_or_null(fix ? fix : "", &oom);
	if (fix_file && fix_content) {
		f.fix_file = unique_file_name(r, fix_file);
		oom |= !f.fix_file;
		f.fix_content = dup_or_null(fix_content, &oom);
	}
	if (oom) {
		finding_release(&f);
		return -ENOMEM;
	}
	r->findings[r->n_findings++] = f;
	return 0;
}

enum kha_audit_severity kha_audit_verdict(const struct kha_audit_report *r)
{
	enum kha_audit_severity v = KHA_AUDIT_OK;

	for (size_t i = 0; i < r->n_findings; i++)
		if (r->findings[i].severity > v)
			v = r->findings[i].severity;
	return v == KHA_AUDIT_SKIPPED ? KHA_AUDIT_OK : v;
}

int kha_audit_exit_code(const struct kha_audit_report *r)
{
	switch (kha_audit_verdict(r)) {
	case KHA_AUDIT_CRITICAL:
		return KHA_EXIT_CRITICAL;
	case KHA_AUDIT_WARNING:
		return KHA_EXIT_DEGRADED;
	default:
		return KHA_EXIT_OK;
	}
}

void kha_audit_count(const struct kha_audit_report *r, size_t counts[4])
{
	memset(counts, 0, 4 * sizeof(counts[0]));
	for (size_t i = 0; i < r->n_findings; i++)
		counts[r->findings[i].severity]++;
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *kha_audit_report_json(const struct kha_audit_report *r, const json_t *sources)
{
	json_t *findings = json_array(), *empty = json_object(), *o;
	size_t counts[4];

	if (!findings || !empty) {
		json_decref(findings);
		json_decref(empty);
		return NULL;
	}
	for (size_t i = 0; i < r->n_findings; i++) {
		const struct kha_audit_finding *f = &r->findings[i];
		json_t *jf = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "check", f->check,
				       "subject", f->subject, "severity",
				       kha_audit_severity_name(f->severity), "finding", f->finding,
				       "fix", f->fix, "fix_file", string_or_null(f->fix_file),
				       "fix_content", string_or_null(f->fix_content));

		if (!jf || json_array_append_new(findings, jf) < 0) {
			json_decref(findings);
			json_decref(empty);
			return NULL;
		}
	}
	kha_audit_count(r, counts);
	/* "O" takes a reference of its own: the borrowed sources stay the caller's */
	o = json_pack("{s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:O, s:o}", "schema", KHA_AUDIT_SCHEMA,
		      "verdict", kha_audit_severity_name(kha_audit_verdict(r)), "counts", "ok",
		      (json_int_t)counts[KHA_AUDIT_OK], "warning",
		      (json_int_t)counts[KHA_AUDIT_WARNING], "critical",
		      (json_int_t)counts[KHA_AUDIT_CRITICAL], "skipped",
		      (json_int_t)counts[KHA_AUDIT_SKIPPED], "sources",
		      sources ? (json_t *)sources : empty, "findings", findings);
	json_decref(empty);
	return o;
}
