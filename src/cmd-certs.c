// SPDX-License-Identifier: MIT
/* kha certs: a CA, certificates with the right SANs, and the check that they are there. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/certs.h"
#include "kha/diag.h"
#include "kha/file.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define MAX_SANS 64

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha certs SUBCOMMAND [flags]\n\n"
		"A small PKI for the control plane: the entry address of the apiserver (a VIP, a\n"
		"load balancer, 127.0.0.1 for a node-local proxy) must be in its certificate's\n"
		"SANs, and etcd members need certificates good for both server and client auth.\n\n"
		"Subcommands:\n"
		"  ca      create a CA (ECDSA P-256): DIR/ca.crt and DIR/ca.key (0600)\n"
		"  issue   issue a certificate signed by the CA, with SANs and usages\n"
		"  check   show a certificate and check that it carries the given SANs\n\n"
		"Examples:\n"
		"  kha certs ca --dir pki --cn my-cluster-ca\n"
		"  kha certs issue --ca-dir pki --name etcd-1 --san 10.0.0.1 --san localhost \\\n"
		"      --san 127.0.0.1 --server --client --out-dir pki\n"
		"  kha certs check --cert pki/apiserver.crt --san 10.0.0.100 --san 127.0.0.1\n\n"
		"Run 'kha certs SUBCOMMAND --help' for its flags. See docs/certs.md.\n");
}

/* Prints the failure (and with -o json its JSON document); returns the exit code. */
static int fail(const char *sub, bool json, int err, const struct kha_diag *d, const char *hint)
{
	char who[32];

	snprintf(who, sizeof(who), "kha certs %s", sub);
	return cmd_fail(who, json, kha_exit_from_errno(err), "%s%s%s",
			d->msg[0] ? d->msg : strerror(-err), hint ? " " : "", hint ? hint : "");
}

/* "kha certs SUB: MESSAGE (run 'kha certs SUB --help')"; returns 64 */
#define usage_error(sub, ...) cmd_usage_error("certs", sub, __VA_ARGS__)

static const char *usage_text(unsigned usage)
{
	switch (usage & (KHA_CERT_SERVER | KHA_CERT_CLIENT)) {
	case KHA_CERT_SERVER | KHA_CERT_CLIENT:
		return "serverAuth, clientAuth";
	case KHA_CERT_SERVER:
		return "serverAuth";
	case KHA_CERT_CLIENT:
		return "clientAuth";
	default:
		return "(none)";
	}
}

static json_t *usage_json(unsigned usage)
{
	json_t *a = json_array();

	if (usage & KHA_CERT_SERVER)
		json_array_append_new(a, json_string("serverAuth"));
	if (usage & KHA_CERT_CLIENT)
		json_array_append_new(a, json_string("clientAuth"));
	return a;
}

static void print_sans(FILE *out, const struct kha_cert_info *info)
{
	const char *sep = "";

	for (size_t i = 0; i < info->n_dns; i++, sep = ", ")
		fprintf(out, "%sDNS:%s", sep, info->dns[i]);
	for (size_t i = 0; i < info->n_ips; i++, sep = ", ")
		fprintf(out, "%sIP:%s", sep, info->ips[i]);
	if (!*sep)
		fprintf(out, "(none)");
	fprintf(out, "\n");
}

static json_t *info_json(const struct kha_cert_info *info)
{
	char nb[32], na[32];
	json_t *dns = json_array(), *ips = json_array();

	for (size_t i = 0; i < info->n_dns; i++)
		json_array_append_new(dns, json_string(info->dns[i]));
	for (size_t i = 0; i < info->n_ips; i++)
		json_array_append_new(ips, json_string(info->ips[i]));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:o, s:{s:o, s:o}}", "subject",
			 info->subject, "issuer", info->issuer, "serial", info->serial,
			 "not_before", kha_certs_format_time(nb, sizeof(nb), info->not_before),
			 "not_after", kha_certs_format_time(na, sizeof(na), info->not_after),
			 "days_left", (json_int_t)((info->not_after - (int64_t)time(NULL)) / 86400),
			 "is_ca", info->is_ca, "usage", usage_json(info->usage), "sans", "dns", dns,
			 "ip", ips);
}

/* The JSON of what ca and issue wrote: the certificate, and where it and its key are. */
static void print_written_json(const struct kha_cert_info *info, const char *crt, const char *key)
{
	json_t *j = info_json(info);

	json_object_set_new(j, "cert", json_string(crt));
	json_object_set_new(j, "key", json_string(key));
	kha_ignore(cmd_print_json(j));
}

/* Refuses to overwrite a private key unless forced: losing a CA key is not undoable. */
static int check_absent(const char *sub, const char *path, bool force, const char *how)
{
	struct stat st;

	if (force || stat(path, &st) < 0)
		return 0;
	fprintf(stderr, "kha certs %s: %s already exists (%s)\n", sub, path, how);
	return KHA_EXIT_USAGE; /* the disk is fine: the operator must ask for --force */
}

struct ca_opts {
	const char *dir, *cn;
	unsigned days;
	bool force, json;
};

enum { OPT_DAYS = 0x100, OPT_SAN, OPT_SERVER, OPT_CLIENT, OPT_CA_OLD, OPT_WARN_DAYS };

static int set_days(unsigned *days, const char *arg, struct kha_diag *d)
{
	uint64_t v;

	if (kha_parse_u64(arg, 1, 36500, &v) < 0)
		return kha_diag_set(d, EINVAL, "'%s': expected a number of days from 1 to 36500",
				    arg);
	*days = (unsigned)v;
	return 0;
}

static int ca_apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	(void)val; /* OPT_DAYS */
	return set_days(&((struct ca_opts *)target)->days, arg, d);
}

static const struct cmd_opt ca_options[] = {
	{CMD_OPT_STRING, "dir", 0, "DIR", "where to write (created if missing)", 0,
	 offsetof(struct ca_opts, dir), 0, NULL},
	{CMD_OPT_STRING, "cn", 0, "NAME", "subject common name (default kha-ca)", 0,
	 offsetof(struct ca_opts, cn), 0, NULL},
	{CMD_OPT_CALL, "days", 0, "N", "validity in days (default 3650)", OPT_DAYS, 0, 0, NULL},
	{CMD_OPT_BOOL, "force", 0, NULL, "replace an existing CA", 0,
	 offsetof(struct ca_opts, force), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct ca_opts, json, "table (default) or json"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void ca_usage(FILE *out)
{
	fprintf(out, "Usage: kha certs ca --dir DIR [--cn NAME] [--days N] [--force] [-o json]\n\n"
		     "Creates a CA: a new ECDSA P-256 key and a self-signed certificate\n"
		     "(CA:TRUE, keyCertSign), written to DIR/ca.crt (0644) and DIR/ca.key\n"
		     "(0600). An existing DIR/ca.key is never replaced without --force.\n\n");
	cmd_opts_help(out, ca_options);
	fprintf(out, "\nExample:\n  kha certs ca --dir pki --cn my-cluster-ca --days 3650\n");
}

/* Parses argv with table into o; returns -1 to go on, or the exit code (0 after the help). */
static int parse(const char *sub, const struct cmd_opt *table, cmd_opt_call_fn call, void *o,
		 void (*help)(FILE *out), int argc, char **argv)
{
	char who[32];
	int r;

	snprintf(who, sizeof(who), "kha certs %s", sub);
	r = cmd_opts_parse(table, call, o, who, help, argc, argv);
	if (r >= 0)
		return r;
	if (optind < argc)
		return usage_error(sub, "unexpected argument '%s'", argv[optind]);
	return -1;
}

static int cmd_ca(int argc, char **argv)
{
	struct ca_opts o = {.cn = "kha-ca", .days = 3650};
	kha_autofree char *crt = NULL, *key = NULL;
	struct kha_cert ca = {0};
	struct kha_cert_info info = {0};
	struct kha_diag d = {0};
	char na[32];
	int r = parse("ca", ca_options, ca_apply, &o, ca_usage, argc, argv);

	if (r >= 0)
		return r;
	if (!o.dir)
		return usage_error("ca", "%s", "--dir is required");
	if (asprintf(&crt, "%s/%s", o.dir, KHA_CERTS_CA_CERT) < 0 ||
	    asprintf(&key, "%s/%s", o.dir, KHA_CERTS_CA_KEY) < 0)
		return KHA_EXIT_SOFTWARE;
	r = check_absent("ca", key, o.force, "use --force to replace it");
	if (r)
		return r;
	r = kha_file_mkdir_p(o.dir, 0755, &d);
	if (r == 0)
		r = kha_certs_create_ca(o.cn, o.days, &ca, &d);
	if (r == 0)
		r = kha_certs_save_ca(&ca, o.dir, &d);
	if (r == 0)
		r = kha_certs_inspect(ca.x509, &info, &d);
	kha_cert_release(&ca);
	if (r < 0)
		return fail("ca", o.json, r, &d, NULL);
	if (o.json) {
		print_written_json(&info, crt, key);
	} else {
		printf("CA %s written: %s (key %s, mode 0600), expires %s\n", info.subject, crt,
		       key, kha_certs_format_time(na, sizeof(na), info.not_after));
	}
	kha_cert_info_release(&info);
	return KHA_EXIT_OK;
}

struct issue_opts {
	const char *ca_dir, *name, *out_dir;
	const char *sans[MAX_SANS];
	struct kha_cert_request req;
	bool force, renew, json;
};

static int issue_apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct issue_opts *o = target;

	switch (val) {
	case OPT_DAYS:
		return set_days(&o->req.days, arg, d);
	case OPT_SAN:
		if (o->req.n_sans == MAX_SANS)
			return kha_diag_set(d, EINVAL, "more than %d SANs", MAX_SANS);
		o->sans[o->req.n_sans++] = arg;
		return 0;
	default:
		o->req.usage |= val == OPT_SERVER ? KHA_CERT_SERVER : KHA_CERT_CLIENT;
		return 0;
	}
}

static const struct cmd_opt issue_options[] = {
	{CMD_OPT_STRING, "ca-dir", 0, "DIR", "the CA made by 'kha certs ca'", 0,
	 offsetof(struct issue_opts, ca_dir), 0, NULL},
	{CMD_OPT_STRING, "name", 0, "NAME", "subject common name and file name", 0,
	 offsetof(struct issue_opts, name), 0, NULL},
	{CMD_OPT_CALL, "san", 0, "ADDR",
	 "an IP address or DNS name clients dial (repeat it);\n'IP:' and 'DNS:' prefixes are "
	 "accepted",
	 OPT_SAN, 0, 0, NULL},
	{CMD_OPT_CALL, "server", 0, NULL, "extended key usage serverAuth", OPT_SERVER, 0, 0, NULL},
	{CMD_OPT_CALL, "client", 0, NULL,
	 "extended key usage clientAuth (etcd members need\nboth: the etcd gateway dials the "
	 "member with it)",
	 OPT_CLIENT, 0, 0, NULL},
	{CMD_OPT_STRING, "out-dir", 0, "DIR", "where to write (created if missing)", 0,
	 offsetof(struct issue_opts, out_dir), 0, NULL},
	{CMD_OPT_CALL, "days", 0, "N", "validity in days (default 365, capped at the CA's)",
	 OPT_DAYS, 0, 0, NULL},
	{CMD_OPT_BOOL, "renew", 0, NULL,
	 "renew in place: copy an existing NAME.crt and NAME.key\nto NAME.crt.bak-TIME and "
	 "NAME.key.bak-TIME (same modes),\nthen replace them (what kha audit's fixes use)",
	 0, offsetof(struct issue_opts, renew), 0, NULL},
	{CMD_OPT_BOOL, "force", 0, NULL, "replace an existing NAME.key, keeping no copy", 0,
	 offsetof(struct issue_opts, force), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct issue_opts, json, "table (default) or json"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void issue_usage(FILE *out)
{
	fprintf(out,
		"Usage: kha certs issue --ca-dir DIR --name NAME [--san ADDR]... [--server] "
		"[--client]\n"
		"                      --out-dir DIR [--days N] [--renew|--force] [-o json]\n\n"
		"Issues a certificate signed by the CA in --ca-dir (ca.crt, ca.key):\n"
		"OUT/NAME.crt (0644) and OUT/NAME.key (0600), ECDSA P-256.\n\n");
	cmd_opts_help(out, issue_options);
	fprintf(out, "\nExamples:\n"
		     "  kha certs issue --ca-dir pki --name etcd-1 --san 10.0.0.1 \\\n"
		     "      --san 127.0.0.1 --san localhost --server --client --out-dir pki\n"
		     "  kha certs issue --ca-dir pki --name apiserver --san 10.0.0.100 \\\n"
		     "      --san 127.0.0.1 --san localhost --san kubernetes.default.svc \\\n"
		     "      --server --out-dir pki\n");
}

/* What issue writes, on stdout: the certificate, where it went, and the old pair's copies. */
static void print_issued(const struct issue_opts *o, const struct kha_cert_info *info,
			 const char *crt, const char *key, const char *crt_bak, const char *key_bak)
{
	char na[32];

	if (o->json) {
		json_t *j = info_json(info);

		json_object_set_new(j, "cert", json_string(crt));
		json_object_set_new(j, "key", json_string(key));
		if (o->renew)
			json_object_set_new(
				j, "backup",
				json_pack("{s:o, s:o}", "cert",
					  crt_bak[0] ? json_string(crt_bak) : json_null(), "key",
					  key_bak[0] ? json_string(key_bak) : json_null()));
		kha_ignore(cmd_print_json(j));
		return;
	}
	printf("issued %s (key %s, mode 0600)\n  subject %s, issuer %s\n  usage   %s\n"
	       "  SANs    ",
	       crt, key, info->subject, info->issuer, usage_text(info->usage));
	print_sans(stdout, info);
	printf("  expires %s\n", kha_certs_format_time(na, sizeof(na), info->not_after));
	if (crt_bak[0] || key_bak[0])
		printf("  old pair kept as %s and %s\n", crt_bak[0] ? crt_bak : "-",
		       key_bak[0] ? key_bak : "-");
}

static int cmd_issue(int argc, char **argv)
{
	struct issue_opts o = {.req = {.days = 365}};
	char crt_bak[4096] = "", key_bak[4096] = "";
	kha_autofree char *crt = NULL, *key = NULL;
	struct kha_cert ca = {0}, leaf = {0};
	struct kha_cert_info info = {0};
	struct kha_diag d = {0};
	const char *name;
	int r;

	o.req.sans = o.sans;
	r = parse("issue", issue_options, issue_apply, &o, issue_usage, argc, argv);
	if (r >= 0)
		return r;
	name = o.name;
	if (!o.ca_dir || !name || !o.out_dir)
		return usage_error("issue", "%s", "--ca-dir, --name and --out-dir are required");
	if (!*name || strchr(name, '/') || name[0] == '.')
		return usage_error("issue", "--name '%s': not usable as a file name", name);
	if (!o.req.usage)
		return usage_error("issue", "%s",
				   "give --server, --client or both (etcd members need both)");
	o.req.cn = name;
	if (asprintf(&crt, "%s/%s.crt", o.out_dir, name) < 0 ||
	    asprintf(&key, "%s/%s.key", o.out_dir, name) < 0)
		return KHA_EXIT_SOFTWARE;
	if (o.renew && o.force)
		return usage_error("issue", "%s", "--renew and --force exclude each other");
	r = check_absent("issue", key, o.force || o.renew,
			 "use --renew to keep a copy and replace it, or --force");
	if (r)
		return r;
	r = kha_certs_load_ca(o.ca_dir, &ca, &d);
	if (r < 0)
		return fail("issue", o.json, r, &d, "(create one with 'kha certs ca --dir DIR')");
	r = kha_certs_issue(&ca, &o.req, &leaf, &d);
	kha_cert_release(&ca);
	if (r == -EINVAL)
		return usage_error("issue", "%s", d.msg);
	if (r == 0)
		r = kha_file_mkdir_p(o.out_dir, 0755, &d);
	/* the old pair is copied aside before anything is replaced */
	if (r == 0 && o.renew)
		r = kha_certs_backup_pair(crt, key, crt_bak, key_bak, sizeof(crt_bak), &d);
	if (r == 0)
		r = kha_certs_save(&leaf, crt, key, &d);
	if (r == 0)
		r = kha_certs_inspect(leaf.x509, &info, &d);
	kha_cert_release(&leaf);
	if (r < 0)
		return fail("issue", o.json, r, &d, NULL);
	print_issued(&o, &info, crt, key, crt_bak, key_bak);
	kha_cert_info_release(&info);
	return KHA_EXIT_OK;
}

/* -o json of kha certs check: what the certificate says, the checks, the verdict. */
static int print_check_json(const char *cert_path, const struct kha_cert_info *info,
			    const char *const *sans, size_t n_sans,
			    const struct kha_certs_check_result *res)
{
	json_t *j = info_json(info), *checks = json_array(), *problems = json_array();
	const char *verdict = kha_certs_verdict_name(res->verdict);

	for (size_t i = 0; i < n_sans; i++)
		json_array_append_new(checks, json_pack("{s:s, s:b}", "san", sans[i], "present",
							res->present[i]));
	for (size_t i = 0; i < res->n_problems; i++)
		json_array_append_new(problems, json_string(res->problems[i].text));
	json_object_set_new(j, "cert", json_string(cert_path));
	json_object_set_new(j, "checks", checks);
	json_object_set_new(j, "chain_verified",
			    res->chain < 0 ? json_null() : json_boolean(res->chain));
	json_object_set_new(j, "verdict", json_string(verdict));
	/* the old name of verdict, kept for scripts */
	json_object_set_new(j, "status", json_string(verdict));
	json_object_set_new(j, "problems", problems);
	kha_ignore(cmd_print_json(j));
	return (int)res->verdict;
}

/* The table of kha certs check on stdout, its problems on stderr. */
static int print_check(const char *cert_path, const struct kha_cert_info *info,
		       const char *const *sans, size_t n_sans,
		       const struct kha_certs_check_result *res)
{
	int64_t now = (int64_t)time(NULL);
	char nb[32], na[32];

	printf("certificate %s\n", cert_path);
	printf("  subject   %s\n  issuer    %s\n  serial    %s\n", info->subject, info->issuer,
	       info->serial);
	printf("  valid     %s .. %s", kha_certs_format_time(nb, sizeof(nb), info->not_before),
	       kha_certs_format_time(na, sizeof(na), info->not_after));
	if (info->not_after > now)
		printf(" (%lld days left)\n", (long long)((info->not_after - now) / 86400));
	else
		printf(" (EXPIRED)\n");
	printf("  CA        %s\n  usage     %s\n  SANs      ", info->is_ca ? "yes" : "no",
	       usage_text(info->usage));
	print_sans(stdout, info);
	for (size_t i = 0; i < n_sans; i++)
		printf("  %-9s %s %s\n", i == 0 ? "check" : "", sans[i],
		       res->present[i] ? "present" : "MISSING");
	if (res->chain >= 0)
		printf("  chain     %s\n", res->chain ? "verified by the CA" : "NOT verified");
	for (size_t i = 0; i < res->n_problems; i++)
		fprintf(stderr, "kha certs check: %s: %s%s\n", cert_path, res->problems[i].text,
			res->problems[i].missing_san ? " (reissue the certificate with that --san)"
						     : "");
	return (int)res->verdict;
}

struct check_opts {
	const char *cert, *cacert;
	const char *sans[MAX_SANS];
	size_t n_sans;
	unsigned warn_days;
	bool json;
};

static int check_apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct check_opts *o = target;
	uint64_t v;

	switch (val) {
	case OPT_SAN:
		if (o->n_sans == MAX_SANS)
			return kha_diag_set(d, EINVAL, "more than %d SANs", MAX_SANS);
		o->sans[o->n_sans++] = arg;
		return 0;
	case OPT_CA_OLD:
		fprintf(stderr, "kha certs check: note: --ca is deprecated, use --cacert\n");
		o->cacert = arg;
		return 0;
	default: /* OPT_WARN_DAYS */
		if (kha_parse_u64(arg, 0, 36500, &v) < 0)
			return kha_diag_set(d, EINVAL, "'%s': expected 0 to 36500", arg);
		o->warn_days = (unsigned)v;
		return 0;
	}
}

static const struct cmd_opt check_options[] = {
	{CMD_OPT_STRING, "cert", 0, "FILE", "PEM certificate", 0, offsetof(struct check_opts, cert),
	 0, NULL},
	{CMD_OPT_CALL, "san", 0, "ADDR", "an address clients dial (repeat it)", OPT_SAN, 0, 0,
	 NULL},
	{CMD_OPT_STRING, "cacert", 0, "FILE",
	 "verify the chain against this CA certificate\n(--ca, its old name, still works)", 0,
	 offsetof(struct check_opts, cacert), 0, NULL},
	/* deprecated: --cacert, as every command */
	{CMD_OPT_CALL, "ca", 0, "FILE", NULL, OPT_CA_OLD, 0, 0, NULL},
	{CMD_OPT_CALL, "warn-days", 0, "N", "expiring within N days is degraded (default 30)",
	 OPT_WARN_DAYS, 0, 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct check_opts, json, "table (default) or json"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void check_usage(FILE *out)
{
	fprintf(out, "Usage: kha certs check --cert FILE [--san ADDR]... [--cacert FILE]\n"
		     "                      [--warn-days N] [-o json]\n\n"
		     "Shows a certificate (subject, SANs, usages, expiry) and checks it:\n"
		     "every --san ADDR must be in its SANs (an IP in any form, or a DNS\n"
		     "name), it must be valid now, and with --cacert it must be signed by it.\n"
		     "The apiserver's certificate must carry its entry address: the VIP, the\n"
		     "load balancer's address, or 127.0.0.1 and localhost behind a\n"
		     "node-local proxy, or clients fail TLS verification.\n\n");
	cmd_opts_help(out, check_options);
	fprintf(out,
		"\nExit codes: 0 ok; 1 expires within --warn-days; 2 a SAN is missing,\n"
		"the certificate is expired or not yet valid, or the chain does not\n"
		"verify; 65 not a certificate; 64 usage.\n\n"
		"Example:\n"
		"  kha certs check --cert pki/apiserver.crt --san 10.0.0.100 --san 127.0.0.1\n");
}

static int cmd_check(int argc, char **argv)
{
	struct check_opts o = {.warn_days = 30};
	struct kha_cert cert = {0}, ca = {0};
	struct kha_cert_info info = {0};
	struct kha_diag d = {0};
	struct kha_certs_check_result res = {0};
	const char *cert_path, *ca_path;
	int r = parse("check", check_options, check_apply, &o, check_usage, argc, argv);

	if (r >= 0)
		return r;
	cert_path = o.cert;
	ca_path = o.cacert;
	if (!cert_path)
		return usage_error("check", "%s", "--cert is required");
	r = kha_certs_load(cert_path, NULL, &cert, &d);
	if (r == 0)
		r = kha_certs_inspect(cert.x509, &info, &d);
	if (r == 0 && ca_path)
		r = kha_certs_load(ca_path, NULL, &ca, &d);
	if (r == 0) {
		const struct kha_certs_check_request req = {.sans = o.sans,
							    .n_sans = o.n_sans,
							    .warn_days = o.warn_days,
							    .now = (int64_t)time(NULL),
							    .ca = ca_path ? &ca : NULL,
							    .ca_name = ca_path};

		r = kha_certs_check(&cert, &info, &req, &res);
	}
	kha_cert_release(&cert);
	kha_cert_release(&ca);
	if (r == 0)
		r = o.json ? print_check_json(cert_path, &info, o.sans, o.n_sans, &res)
			   : print_check(cert_path, &info, o.sans, o.n_sans, &res);
	else
		r = fail("check", o.json, r, &d, NULL);
	kha_certs_check_release(&res);
	kha_cert_info_release(&info);
	return r;
}

int cmd_certs_main(int argc, char **argv)
{
	static const struct cmd_sub subs[] = {
		{"ca", cmd_ca, NULL},
		{"issue", cmd_issue, NULL},
		{"check", cmd_check, NULL},
	};

	return cmd_sub_run("certs", subs, KHA_ARRAY_SIZE(subs), usage, argc, argv);
}
