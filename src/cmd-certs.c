// SPDX-License-Identifier: MIT
/* kha certs: a CA, certificates with the right SANs, and the check that they are there. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "cmd-common.h"
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

static int parse_output(const char *sub, const char *arg, bool *json)
{
	if (kha_parse_output(arg, json) < 0)
		return usage_error(sub, "unknown output format '%s' (table or json)", arg);
	return 0;
}

static int parse_days(const char *sub, const char *arg, unsigned *days)
{
	uint64_t v;

	if (kha_parse_u64(arg, 1, 36500, &v) < 0)
		return usage_error(sub, "--days '%s': expected a number of days from 1 to 36500",
				   arg);
	*days = (unsigned)v;
	return 0;
}

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

static int cmd_ca(int argc, char **argv)
{
	static const struct option opts[] = {
		{"dir", required_argument, NULL, 'd'},
		{"cn", required_argument, NULL, 'n'},
		{"days", required_argument, NULL, 'D'},
		{"force", no_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *dir = NULL, *cn = "kha-ca";
	kha_autofree char *crt = NULL, *key = NULL;
	struct kha_cert ca = {0};
	struct kha_cert_info info = {0};
	struct kha_diag d = {0};
	unsigned days = 3650;
	bool force = false, json = false;
	char na[32];
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			cn = optarg;
			break;
		case 'D':
			if (parse_days("ca", optarg, &days))
				return KHA_EXIT_USAGE;
			break;
		case 'f':
			force = true;
			break;
		case 'o':
			if (parse_output("ca", optarg, &json))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha certs ca --dir DIR [--cn NAME] [--days N] [--force] "
			       "[-o json]\n\n"
			       "Creates a CA: a new ECDSA P-256 key and a self-signed certificate\n"
			       "(CA:TRUE, keyCertSign), written to DIR/ca.crt (0644) and DIR/ca.key\n"
			       "(0600). An existing DIR/ca.key is never replaced without --force.\n\n"
			       "  --dir DIR     where to write (created if missing)\n"
			       "  --cn NAME     subject common name (default kha-ca)\n"
			       "  --days N      validity in days (default 3650)\n"
			       "  --force       replace an existing CA\n"
			       "  -o, --output  table (default) or json\n\n"
			       "Example:\n  kha certs ca --dir pki --cn my-cluster-ca --days 3650\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("ca", "%s", "bad flag");
		}
	}
	if (optind < argc)
		return usage_error("ca", "unexpected argument '%s'", argv[optind]);
	if (!dir)
		return usage_error("ca", "%s", "--dir is required");
	if (asprintf(&crt, "%s/%s", dir, KHA_CERTS_CA_CERT) < 0 ||
	    asprintf(&key, "%s/%s", dir, KHA_CERTS_CA_KEY) < 0)
		return KHA_EXIT_SOFTWARE;
	r = check_absent("ca", key, force, "use --force to replace it");
	if (r)
		return r;
	r = kha_file_mkdir_p(dir, 0755, &d);
	if (r == 0)
		r = kha_certs_create_ca(cn, days, &ca, &d);
	if (r == 0)
		r = kha_certs_save_ca(&ca, dir, &d);
	if (r == 0)
		r = kha_certs_inspect(ca.x509, &info, &d);
	kha_cert_release(&ca);
	if (r < 0)
		return fail("ca", json, r, &d, NULL);
	if (json) {
		print_written_json(&info, crt, key);
	} else {
		printf("CA %s written: %s (key %s, mode 0600), expires %s\n", info.subject, crt,
		       key, kha_certs_format_time(na, sizeof(na), info.not_after));
	}
	kha_cert_info_release(&info);
	return KHA_EXIT_OK;
}

static int cmd_issue(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ca-dir", required_argument, NULL, 'c'}, {"name", required_argument, NULL, 'n'},
		{"san", required_argument, NULL, 's'},	  {"server", no_argument, NULL, 'S'},
		{"client", no_argument, NULL, 'C'},	  {"out-dir", required_argument, NULL, 'O'},
		{"days", required_argument, NULL, 'D'},	  {"force", no_argument, NULL, 'f'},
		{"renew", no_argument, NULL, 'R'},	  {"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},	  {0},
	};
	const char *ca_dir = NULL, *name = NULL, *out_dir = NULL;
	char crt_bak[4096] = "", key_bak[4096] = "";
	bool renew = false;
	const char *sans[MAX_SANS];
	kha_autofree char *crt = NULL, *key = NULL;
	struct kha_cert ca = {0}, leaf = {0};
	struct kha_cert_request req = {.sans = sans, .days = 365};
	struct kha_cert_info info = {0};
	struct kha_diag d = {0};
	bool force = false, json = false;
	char na[32];
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ca_dir = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 's':
			if (req.n_sans == MAX_SANS)
				return usage_error("issue", "more than %d SANs", MAX_SANS);
			sans[req.n_sans++] = optarg;
			break;
		case 'S':
			req.usage |= KHA_CERT_SERVER;
			break;
		case 'C':
			req.usage |= KHA_CERT_CLIENT;
			break;
		case 'O':
			out_dir = optarg;
			break;
		case 'D':
			if (parse_days("issue", optarg, &req.days))
				return KHA_EXIT_USAGE;
			break;
		case 'f':
			force = true;
			break;
		case 'R':
			renew = true;
			break;
		case 'o':
			if (parse_output("issue", optarg, &json))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha certs issue --ca-dir DIR --name NAME [--san ADDR]... "
			       "[--server] [--client]\n"
			       "                      --out-dir DIR [--days N] [--renew|--force] [-o json]\n\n"
			       "Issues a certificate signed by the CA in --ca-dir (ca.crt, ca.key):\n"
			       "OUT/NAME.crt (0644) and OUT/NAME.key (0600), ECDSA P-256.\n\n"
			       "  --ca-dir DIR   the CA made by 'kha certs ca'\n"
			       "  --name NAME    subject common name and file name\n"
			       "  --san ADDR     an IP address or DNS name clients dial (repeat it);\n"
			       "                 'IP:' and 'DNS:' prefixes are accepted\n"
			       "  --server       extended key usage serverAuth\n"
			       "  --client       extended key usage clientAuth (etcd members need\n"
			       "                 both: the etcd gateway dials the member with it)\n"
			       "  --out-dir DIR  where to write (created if missing)\n"
			       "  --days N       validity in days (default 365, capped at the CA's)\n"
			       "  --renew        renew in place: copy an existing NAME.crt and NAME.key\n"
			       "                 to NAME.crt.bak-TIME and NAME.key.bak-TIME (same modes),\n"
			       "                 then replace them (what kha audit's fixes use)\n"
			       "  --force        replace an existing NAME.key, keeping no copy\n"
			       "  -o, --output   table (default) or json\n\n"
			       "Examples:\n"
			       "  kha certs issue --ca-dir pki --name etcd-1 --san 10.0.0.1 \\\n"
			       "      --san 127.0.0.1 --san localhost --server --client --out-dir pki\n"
			       "  kha certs issue --ca-dir pki --name apiserver --san 10.0.0.100 \\\n"
			       "      --san 127.0.0.1 --san localhost --san kubernetes.default.svc \\\n"
			       "      --server --out-dir pki\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("issue", "%s", "bad flag");
		}
	}
	if (optind < argc)
		return usage_error("issue", "unexpected argument '%s'", argv[optind]);
	if (!ca_dir || !name || !out_dir)
		return usage_error("issue", "%s", "--ca-dir, --name and --out-dir are required");
	if (!*name || strchr(name, '/') || name[0] == '.')
		return usage_error("issue", "--name '%s': not usable as a file name", name);
	if (!req.usage)
		return usage_error("issue", "%s",
				   "give --server, --client or both (etcd members need both)");
	req.cn = name;
	if (asprintf(&crt, "%s/%s.crt", out_dir, name) < 0 ||
	    asprintf(&key, "%s/%s.key", out_dir, name) < 0)
		return KHA_EXIT_SOFTWARE;
	if (renew && force)
		return usage_error("issue", "%s", "--renew and --force exclude each other");
	r = check_absent("issue", key, force || renew,
			 "use --renew to keep a copy and replace it, or --force");
	if (r)
		return r;
	r = kha_certs_load_ca(ca_dir, &ca, &d);
	if (r < 0)
		return fail("issue", json, r, &d, "(create one with 'kha certs ca --dir DIR')");
	r = kha_certs_issue(&ca, &req, &leaf, &d);
	kha_cert_release(&ca);
	if (r == -EINVAL)
		return usage_error("issue", "%s", d.msg);
	if (r == 0)
		r = kha_file_mkdir_p(out_dir, 0755, &d);
	/* the old pair is copied aside before anything is replaced */
	if (r == 0 && renew)
		r = kha_certs_backup_pair(crt, key, crt_bak, key_bak, sizeof(crt_bak), &d);
	if (r == 0)
		r = kha_certs_save(&leaf, crt, key, &d);
	if (r == 0)
		r = kha_certs_inspect(leaf.x509, &info, &d);
	kha_cert_release(&leaf);
	if (r < 0)
		return fail("issue", json, r, &d, NULL);
	if (json) {
		json_t *j = info_json(&info);

		json_object_set_new(j, "cert", json_string(crt));
		json_object_set_new(j, "key", json_string(key));
		if (renew)
			json_object_set_new(
				j, "backup",
				json_pack("{s:o, s:o}", "cert",
					  crt_bak[0] ? json_string(crt_bak) : json_null(), "key",
					  key_bak[0] ? json_string(key_bak) : json_null()));
		kha_ignore(cmd_print_json(j));
	} else {
		printf("issued %s (key %s, mode 0600)\n  subject %s, issuer %s\n  usage   %s\n"
		       "  SANs    ",
		       crt, key, info.subject, info.issuer, usage_text(info.usage));
		print_sans(stdout, &info);
		printf("  expires %s\n", kha_certs_format_time(na, sizeof(na), info.not_after));
		if (crt_bak[0] || key_bak[0])
			printf("  old pair kept as %s and %s\n", crt_bak[0] ? crt_bak : "-",
			       key_bak[0] ? key_bak : "-");
	}
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

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cert", required_argument, NULL, 'c'},
		{"san", required_argument, NULL, 's'},
		{"cacert", required_argument, NULL, 'a'},
		{"ca", required_argument, NULL, 'A'}, /* deprecated: --cacert, as every command */
		{"warn-days", required_argument, NULL, 'w'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cert_path = NULL, *ca_path = NULL;
	const char *sans[MAX_SANS];
	size_t n_sans = 0;
	struct kha_cert cert = {0}, ca = {0};
	struct kha_cert_info info = {0};
	struct kha_diag d = {0};
	struct kha_certs_check_result res = {0};
	unsigned warn_days = 30;
	bool json = false;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cert_path = optarg;
			break;
		case 's':
			if (n_sans == MAX_SANS)
				return usage_error("check", "more than %d SANs", MAX_SANS);
			sans[n_sans++] = optarg;
			break;
		case 'A':
			fprintf(stderr,
				"kha certs check: note: --ca is deprecated, use --cacert\n");
			ca_path = optarg;
			break;
		case 'a':
			ca_path = optarg;
			break;
		case 'w': {
			uint64_t v;

			if (kha_parse_u64(optarg, 0, 36500, &v) < 0)
				return usage_error("check", "--warn-days '%s': expected 0 to 36500",
						   optarg);
			warn_days = (unsigned)v;
			break;
		}
		case 'o':
			if (parse_output("check", optarg, &json))
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			printf("Usage: kha certs check --cert FILE [--san ADDR]... [--cacert FILE]\n"
			       "                      [--warn-days N] [-o json]\n\n"
			       "Shows a certificate (subject, SANs, usages, expiry) and checks it:\n"
			       "every --san ADDR must be in its SANs (an IP in any form, or a DNS\n"
			       "name), it must be valid now, and with --cacert it must be signed by it.\n"
			       "The apiserver's certificate must carry its entry address: the VIP, the\n"
			       "load balancer's address, or 127.0.0.1 and localhost behind a\n"
			       "node-local proxy, or clients fail TLS verification.\n\n"
			       "  --cert FILE      PEM certificate\n"
			       "  --san ADDR       an address clients dial (repeat it)\n"
			       "  --cacert FILE    verify the chain against this CA certificate\n"
			       "                   (--ca, its old name, still works)\n"
			       "  --warn-days N    expiring within N days is degraded (default 30)\n"
			       "  -o, --output     table (default) or json\n\n"
			       "Exit codes: 0 ok; 1 expires within --warn-days; 2 a SAN is missing,\n"
			       "the certificate is expired or not yet valid, or the chain does not\n"
			       "verify; 65 not a certificate; 64 usage.\n\n"
			       "Example:\n"
			       "  kha certs check --cert pki/apiserver.crt --san 10.0.0.100 "
			       "--san 127.0.0.1\n");
			return KHA_EXIT_OK;
		default:
			return usage_error("check", "%s", "bad flag");
		}
	}
	if (optind < argc)
		return usage_error("check", "unexpected argument '%s'", argv[optind]);
	if (!cert_path)
		return usage_error("check", "%s", "--cert is required");
	r = kha_certs_load(cert_path, NULL, &cert, &d);
	if (r == 0)
		r = kha_certs_inspect(cert.x509, &info, &d);
	if (r == 0 && ca_path)
		r = kha_certs_load(ca_path, NULL, &ca, &d);
	if (r == 0) {
		const struct kha_certs_check_request req = {.sans = sans,
							    .n_sans = n_sans,
							    .warn_days = warn_days,
							    .now = (int64_t)time(NULL),
							    .ca = ca_path ? &ca : NULL,
							    .ca_name = ca_path};

		r = kha_certs_check(&cert, &info, &req, &res);
	}
	kha_cert_release(&cert);
	kha_cert_release(&ca);
	if (r == 0)
		r = json ? print_check_json(cert_path, &info, sans, n_sans, &res)
			 : print_check(cert_path, &info, sans, n_sans, &res);
	else
		r = fail("check", json, r, &d, NULL);
	kha_certs_check_release(&res);
	kha_cert_info_release(&info);
	return r;
}

int cmd_certs_main(int argc, char **argv)
{
	int code = cmd_usage_or_help(argc, argv, usage);

	if (code >= 0)
		return code;
	if (strcmp(argv[1], "ca") == 0)
		return cmd_ca(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "issue") == 0)
		return cmd_issue(argc - 1, cmd_sub_argv(argv));
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, cmd_sub_argv(argv));
	fprintf(stderr, "kha certs: unknown subcommand '%s' (run 'kha certs --help')\n", argv[1]);
	return KHA_EXIT_USAGE;
}
