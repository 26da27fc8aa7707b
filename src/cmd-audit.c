// SPDX-License-Identifier: MIT
/* kha audit: flags, help and wiring of the single-point-of-failure audit (lib/audit). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "cmd-opt.h"
#include "commands.h"
#include "kha/audit.h"
#include "kha/config.h"
#include "kha/etcd.h"
#include "kha/file.h"
#include "kha/http.h"
#include "kha/kube.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define MAX_APISERVERS 32

enum {
	OPT_DNS = 0x100,
	OPT_ENTRY,
	OPT_APISERVER,
	OPT_PROXY,
	OPT_BGP,
};

struct opts {
	struct kha_etcd_config etcd;
	bool etcd_given;
	char *kubeconfig;
	char *context;
	char *dns;
	char *entry;
	char *apiservers[MAX_APISERVERS];
	size_t n_apiservers;
	char *proxies[MAX_APISERVERS];
	size_t n_proxies;
	char *bgps[MAX_APISERVERS];
	size_t n_bgps;
	char *backup_dir;
	uint64_t backup_max_age_us;
	char *fix_out;
	uint64_t timeout_us;
	bool json;
};

#define CALL(n, a, v, h)     CMD_OPT_CALL_ENTRY(n, a, v, h)
#define TYPED(k, n, a, f, h) CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, f, h)

static const struct cmd_opt options[] = {
	CMD_OPT_TITLE_ENTRY("etcd:"),
	CMD_OPT_INCLUDE_ETCD(struct opts, etcd),
	TYPED(CMD_OPT_STRDUP, "backup-dir", "DIR", backup_dir,
	      "directory of etcd snapshots (kha etcd backup --dir)"),
	TYPED(CMD_OPT_DURATION, "backup-max-age", "DURATION", backup_max_age_us,
	      "the newest verified snapshot may be this old (default 24h)"),
	CMD_OPT_TITLE_ENTRY("Kubernetes:"),
	TYPED(CMD_OPT_STRDUP, "kubeconfig", "FILE", kubeconfig,
	      "kubeconfig (default $KUBECONFIG, then in-cluster)"),
	TYPED(CMD_OPT_STRDUP, "context", "NAME", context, "its context (default: current-context)"),
	CALL("dns", "NAMESPACE/NAME", OPT_DNS,
	     "the cluster DNS Deployment (default kube-system/coredns;\nabsent: label "
	     "k8s-app=kube-dns in that namespace)"),
	CMD_OPT_TITLE_ENTRY("Entry point:"),
	CALL("entry", "HOST:PORT", OPT_ENTRY,
	     "the address nodes reach the apiservers at: a VIP, a\nload balancer, or "
	     "127.0.0.1:7443 (node-local kha proxy)"),
	CALL("apiserver", "HOST:PORT", OPT_APISERVER,
	     "an apiserver whose certificate must carry the entry too\n(repeat)"),
	CALL("proxy", "HOST:PORT", OPT_PROXY,
	     "the --metrics-addr of a kha proxy (repeat): it must know\nmore than one master, and "
	     "all of them up"),
	CALL("bgp", "HOST:PORT", OPT_BGP,
	     "the --metrics-addr of the kha bgp of a master (repeat,\none per master): the service "
	     "address must be announced\nby more than one master, each with its routers up"),
	CMD_OPT_TITLE_ENTRY("Output:"),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json,
			     "report format (default table; JSON schema\nkha.audit.report/v1, "
			     "docs/audit.md)"),
	TYPED(CMD_OPT_STRDUP, "fix-out", "DIR", fix_out,
	      "write each fix (manifest or commands) to DIR/<file>"),
	TYPED(CMD_OPT_DURATION, "timeout", "DURATION", timeout_us, "per probe (default 5s)"),
	CMD_OPT_CONFIG_ENTRY,
	CMD_OPT_HELP_ENTRY,
	{},
};

#undef CALL
#undef TYPED

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha audit [flags]\n\n"
		"Finds the single points of failure of a cluster and prints each with its fix. It\n"
		"only reads. Each source is optional: what is given is audited, the rest is\n"
		"reported as skipped.\n\n"
		"  etcd        member count (1 critical, even warning), members down, learners,\n"
		"              alarms; with --backup-dir, the newest snapshot is recent and verifies\n"
		"  Kubernetes  apiservers behind default/kubernetes, cluster DNS (replicas,\n"
		"              anti-affinity, PodDisruptionBudget), kube-controller-manager and\n"
		"              kube-scheduler (leader Lease renewed, 2+ instances), the\n"
		"              kubeconfig's server (a single master instead of the entry)\n"
		"  entry       the certificate presented at --entry (and at each --apiserver)\n"
		"              carries the entry host in its SANs; each --proxy (a kha proxy's\n"
		"              admin address) knows several masters and sees them up; the\n"
		"              BGP entry (--bgp) is announced by several masters\n\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\nExit codes: 0 nothing above ok, 1 warnings, 2 a critical finding, 64 usage,\n"
		"69 nothing reachable, 74 cannot write --fix-out, 78 unreadable kubeconfig or TLS "
		"files.\n\n"
		"Examples:\n"
		"  kha audit --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379 \\\n"
		"      --cacert /etc/kubernetes/pki/etcd/ca.crt \\\n"
		"      --cert /etc/kubernetes/pki/apiserver-etcd-client.crt \\\n"
		"      --key /etc/kubernetes/pki/apiserver-etcd-client.key \\\n"
		"      --backup-dir /var/backups/etcd --kubeconfig /etc/kubernetes/admin.conf \\\n"
		"      --entry 10.0.0.100:6443 --apiserver 10.0.0.1:6443 --apiserver 10.0.0.2:6443\n"
		"  kha audit --kubeconfig ~/.kube/config -o json --fix-out fixes/\n");
}

static void opts_release(struct opts *o)
{
	kha_etcd_config_release(&o->etcd);
	free(o->kubeconfig);
	free(o->context);
	free(o->dns);
	free(o->entry);
	for (size_t i = 0; i < o->n_apiservers; i++)
		free(o->apiservers[i]);
	for (size_t i = 0; i < o->n_proxies; i++)
		free(o->proxies[i]);
	for (size_t i = 0; i < o->n_bgps; i++)
		free(o->bgps[i]);
	free(o->backup_dir);
	free(o->fix_out);
}

static int set_hostport(char **dst, const char *arg, struct kha_diag *d)
{
	char host[256];
	uint16_t port;

	if (kha_audit_split_hostport(arg, host, sizeof(host), &port) < 0)
		return kha_diag_set(d, EINVAL,
				    "'%s' is not HOST:PORT (e.g. 10.0.0.100:6443, [fd00::1]:6443)",
				    arg);
	return kha_opt_set_str(dst, arg, d);
}

/* A repeatable HOST:PORT flag: one more into v[*n]. */
static int add_hostport(char **v, size_t *n, const char *arg, struct kha_diag *d)
{
	if (*n == MAX_APISERVERS)
		return kha_diag_set(d, EINVAL, "at most %d", MAX_APISERVERS);
	if (set_hostport(&v[*n], arg, d) < 0)
		return -EINVAL;
	(*n)++;
	return 0;
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;
	const char *slash = strchr(arg, '/');
	char ns[64];

	switch (val) {
	case OPT_ENTRY:
		return set_hostport(&o->entry, arg, d);
	case OPT_APISERVER:
		return add_hostport(o->apiservers, &o->n_apiservers, arg, d);
	case OPT_PROXY:
		return add_hostport(o->proxies, &o->n_proxies, arg, d);
	case OPT_BGP:
		return add_hostport(o->bgps, &o->n_bgps, arg, d);
	default: /* OPT_DNS */
		if (!slash || (size_t)(slash - arg) >= sizeof(ns))
			return kha_diag_set(d, EINVAL, "'%s' is not NAMESPACE/NAME", arg);
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - arg), arg);
		if (!kha_kube_name_valid(ns, 63) || !kha_kube_name_valid(slash + 1, 253))
			return kha_diag_set(d, EINVAL,
					    "'%s' is not NAMESPACE/NAME (lower case letters, "
					    "digits, '-' and '.')",
					    arg);
		return kha_opt_set_str(&o->dns, arg, d);
	}
}

/* ---- sources ------------------------------------------------------------------------------- */

struct sources {
	json_t *obj; /* name -> {status, detail} */
	size_t given, reachable;
};

static void source_set(struct sources *s, const char *name, const char *status, const char *detail)
{
	json_object_set_new(
		s->obj, name,
		json_pack("{s:s, s:s}", "status", status, "detail", detail ? detail : ""));
}

/* source: the key in "sources"; check: the finding's */
static int skipped(struct kha_audit_report *r, struct sources *s, const char *source,
		   const char *check, const char *why)
{
	char finding[256];

	snprintf(finding, sizeof(finding), "not audited: %s", why);
	source_set(s, source, "skipped", why);
	return kha_audit_add(r, check, "", KHA_AUDIT_SKIPPED, finding, NULL, NULL, NULL);
}

static int unreachable(struct kha_audit_report *r, struct sources *s, const char *name,
		       const char *msg, const char *fix)
{
	char finding[KHA_DIAG_MAX + 32];

	fprintf(stderr, "kha audit: %s\n", msg);
	snprintf(finding, sizeof(finding), "unreachable: %s", msg);
	source_set(s, name, "unreachable", msg);
	return kha_audit_add(r, name, "", KHA_AUDIT_CRITICAL, finding, fix, NULL, NULL);
}

static int audit_etcd(struct opts *o, struct kha_audit_report *r, struct sources *s)
{
	struct kha_etcd_cluster_report rep = {};
	struct kha_diag d = {};
	int ret;

	s->given++;
	ret = kha_etcd_cluster_report(&o->etcd, o->timeout_us, 0, &rep, &d);
	if (ret < 0) {
		char msg[KHA_DIAG_MAX];

		snprintf(msg, sizeof(msg), "%s", d.msg[0] ? d.msg : strerror(-ret));
		kha_etcd_cluster_report_release(&rep);
		return unreachable(r, s, "etcd", msg,
				   "check --endpoints and the TLS flags (kha etcd status shows "
				   "each member)");
	}
	s->reachable++;
	source_set(s, "etcd", "audited", rep.members_from);
	ret = kha_audit_check_etcd(&rep, r);
	kha_etcd_cluster_report_release(&rep);
	return ret;
}

static int audit_kube(struct opts *o, struct kha_kube_config *cfg, struct kha_audit_report *r,
		      struct sources *s, struct kha_kube_endpoint_set *found)
{
	struct kha_kube_client *c = NULL;
	struct kha_diag d = {};
	int ret;

	s->given++;
	ret = kha_kube_client_new(cfg, &c, &d);
	if (ret < 0)
		return unreachable(r, s, "kubernetes", d.msg, "check the kubeconfig's server");
	kha_kube_client_set_timeouts(c, KHA_MIN(o->timeout_us, 10 * KHA_USEC_PER_SEC),
				     o->timeout_us);
	ret = kha_audit_collect_kube(c, o->entry, o->dns, r, found, &d);
	if (ret < 0 && ret != -ENOMEM) {
		ret = unreachable(r, s, "kubernetes", d.msg,
				  "check the kubeconfig (server, CA, credentials) and that the API "
				  "answers: kubectl get --raw /readyz");
	} else if (ret == 0) {
		s->reachable++;
		source_set(s, "kubernetes", "audited", kha_kube_client_server(c));
	}
	kha_kube_client_free(c);
	return ret;
}

static int audit_cert(const struct opts *o, const char *check, const char *addr,
		      const char *entry_host, struct kha_audit_report *r, bool *ret_reached)
{
	struct kha_diag d = {};
	X509 *cert = NULL;
	int ret;

	ret = kha_audit_fetch_cert(addr, NULL, o->timeout_us, &cert, &d);
	*ret_reached = ret == 0;
	ret = kha_audit_check_cert(check, addr, cert, ret < 0 ? d.msg : NULL, entry_host, r);
	X509_free(cert);
	return ret;
}

/* Each --proxy: GET http://ADDR/status (kha proxy's admin endpoint, loopback by default). */
static int audit_proxies(const struct opts *o, struct kha_audit_report *r, struct sources *s)
{
	char addrs[1024] = "";
	size_t reached = 0, n;
	int ret = 0;

	for (size_t i = 0; ret >= 0 && i < o->n_proxies; i++) {
		char url[300];
		struct kha_diag d = {};
		json_t *root = NULL;
		int got;

		s->given++;
		snprintf(url, sizeof(url), "http://%s/status", o->proxies[i]);
		got = kha_http_get_json(url, o->timeout_us, &root, &d);
		/* an answer that is not JSON: reached, but not a kha proxy */
		ret = kha_audit_check_proxy(o->proxies[i], root,
					    got < 0 && got != -EBADMSG ? d.msg : NULL, r);
		if (got == 0 || got == -EBADMSG) {
			s->reachable++;
			reached++;
		}
		json_decref(root);
		n = strlen(addrs);
		snprintf(addrs + n, sizeof(addrs) - n, "%s%s", n ? "," : "", o->proxies[i]);
	}
	source_set(s, "proxy", reached ? "audited" : "unreachable", addrs);
	return ret;
}

/* The --bgp speakers: GET http://ADDR/status of each, then one verdict over all of them. */
static int audit_bgp(const struct opts *o, struct kha_audit_report *r, struct sources *s)
{
	json_t *roots[MAX_APISERVERS] = {0};
	char errs[MAX_APISERVERS][KHA_DIAG_MAX];
	const char *errp[MAX_APISERVERS] = {0};
	char addrs[1024] = "";
	size_t reached = 0, n;
	int ret;

	for (size_t i = 0; i < o->n_bgps; i++) {
		char url[300];
		struct kha_diag d = {};
		int got;

		s->given++;
		snprintf(url, sizeof(url), "http://%s/status", o->bgps[i]);
		got = kha_http_get_json(url, o->timeout_us, &roots[i], &d);
		snprintf(errs[i], sizeof(errs[i]), "%s", d.msg);
		errp[i] = got < 0 && got != -EBADMSG ? errs[i] : NULL;
		if (!errp[i]) {
			s->reachable++;
			reached++;
		}
		n = strlen(addrs);
		snprintf(addrs + n, sizeof(addrs) - n, "%s%s", n ? "," : "", o->bgps[i]);
	}
	ret = kha_audit_check_bgp((const char *const *)o->bgps, roots, errp, o->n_bgps, r);
	for (size_t i = 0; i < o->n_bgps; i++)
		json_decref(roots[i]);
	source_set(s, "bgp", reached ? "audited" : "unreachable", addrs);
	return ret;
}

static bool listed(const struct opts *o, const char *addr)
{
	for (size_t i = 0; i < o->n_apiservers; i++)
		if (strcmp(o->apiservers[i], addr) == 0)
			return true;
	return strcmp(o->entry, addr) == 0;
}

/*
 * The apiservers Kubernetes lists behind default/kubernetes, not named with --apiserver: their
 * certificates too must carry the entry. One that cannot be reached from here (the audit may run
 * outside the masters' network) is skipped, not a finding: --apiserver makes it required.
 */
static int audit_discovered(const struct opts *o, const struct kha_kube_endpoint_set *found,
			    const char *entry_host, struct kha_audit_report *r)
{
	uint64_t timeout = KHA_MIN(o->timeout_us, 2 * KHA_USEC_PER_SEC);
	int ret = 0;

	for (size_t i = 0; ret >= 0 && i < found->n_endpoints; i++) {
		const char *addr = found->endpoints[i].addr;
		struct kha_diag d = {};
		X509 *cert = NULL;
		char finding[KHA_DIAG_MAX + 128];

		if (listed(o, addr))
			continue;
		if (kha_audit_fetch_cert(addr, NULL, timeout, &cert, &d) < 0) {
			snprintf(finding, sizeof(finding),
				 "not reachable from here: %s (found behind default/kubernetes)",
				 d.msg);
			ret = kha_audit_add(r, "apiserver-san", addr, KHA_AUDIT_SKIPPED, finding,
					    NULL, NULL, NULL);
			continue;
		}
		ret = kha_audit_check_cert("apiserver-san", addr, cert, NULL, entry_host, r);
		X509_free(cert);
	}
	return ret;
}

static int audit_entry(const struct opts *o, const struct kha_kube_endpoint_set *found,
		       struct kha_audit_report *r, struct sources *s)
{
	char host[256];
	uint16_t port;
	bool reached;
	int ret;

	s->given++;
	if (kha_audit_split_hostport(o->entry, host, sizeof(host), &port) < 0)
		return -EINVAL; /* checked when parsed */
	ret = audit_cert(o, "entry-san", o->entry, host, r, &reached);
	if (reached) {
		s->reachable++;
		source_set(s, "entry", "audited", o->entry);
	} else {
		source_set(s, "entry", "unreachable", r->findings[r->n_findings - 1].finding);
		fprintf(stderr, "kha audit: %s\n", r->findings[r->n_findings - 1].finding);
	}
	for (size_t i = 0; ret >= 0 && i < o->n_apiservers; i++)
		ret = audit_cert(o, "apiserver-san", o->apiservers[i], host, r, &reached);
	if (ret >= 0)
		ret = audit_discovered(o, found, host, r);
	return ret;
}

/* ---- output -------------------------------------------------------------------------------- */

/* The next line of at most width characters of *text (broken at a space), advancing it. */
static int wrap_line(const char **text, size_t width, char *buf, size_t size)
{
	const char *t = *text;
	size_t len = strlen(t), cut;

	if (!len) {
		buf[0] = '\0';
		return 0;
	}
	cut = len <= width ? len : width;
	if (len > width) {
		size_t sp = cut;

		while (sp > 0 && t[sp] != ' ')
			sp--;
		if (sp > width / 3)
			cut = sp;
		else /* a long word (a path): let it overflow the column rather than split it */
			cut += strcspn(t + cut, " ");
	}
	snprintf(buf, size, "%.*s", (int)cut, t);
	t += cut;
	while (*t == ' ')
		t++;
	*text = t;
	return 1;
}

static void print_table(const struct kha_audit_report *r, const char *fix_out)
{
	size_t wc = strlen("CHECK"), counts[4], nfiles = 0;
	const size_t wf = 58, wx = 62;

	for (size_t i = 0; i < r->n_findings; i++)
		wc = KHA_MAX(wc, strlen(r->findings[i].check));
	printf("%-*s  %-8s  %-*s  %s\n", (int)wc, "CHECK", "SEVERITY", (int)wf, "FINDING", "FIX");
	for (size_t i = 0; i < r->n_findings; i++) {
		const struct kha_audit_finding *f = &r->findings[i];
		const char *ft = f->finding, *xt = f->fix;
		char fl[512], xl[512];
		bool first = true;

		while (first || *ft || *xt) {
			int a = wrap_line(&ft, wf, fl, sizeof(fl));
			int b = wrap_line(&xt, wx, xl, sizeof(xl));

			if (!first && !a && !b)
				break;
			if (!b && !first) /* nothing in the last column: no trailing blanks */
				printf("%-*s  %-8s  %s\n", (int)wc, "", "", fl);
			else
				printf("%-*s  %-8s  %-*s  %s\n", (int)wc, first ? f->check : "",
				       first ? kha_audit_severity_name(f->severity) : "", (int)wf,
				       fl, b ? xl : "-");
			first = false;
		}
		nfiles += f->fix_file != NULL;
	}
	kha_audit_count(r, counts);
	printf("\n%s: %zu critical, %zu warning, %zu ok, %zu skipped\n",
	       kha_audit_severity_name(kha_audit_verdict(r)), counts[KHA_AUDIT_CRITICAL],
	       counts[KHA_AUDIT_WARNING], counts[KHA_AUDIT_OK], counts[KHA_AUDIT_SKIPPED]);
	if (nfiles && fix_out)
		printf("%zu fix%s written to %s/\n", nfiles, nfiles == 1 ? "" : "es", fix_out);
	else if (nfiles)
		printf("%zu %s: -o json shows %s, --fix-out DIR writes %s\n", nfiles,
		       nfiles == 1 ? "fix comes as a file" : "fixes come as files",
		       nfiles == 1 ? "it" : "them", nfiles == 1 ? "it" : "them");
}

static int write_fixes(const struct kha_audit_report *r, const char *dir)
{
	struct kha_diag d = {};

	if (kha_file_mkdir_p(dir, 0755, &d) < 0) {
		fprintf(stderr, "kha audit: --fix-out: %s\n", d.msg);
		return KHA_EXIT_IOERR;
	}
	for (size_t i = 0; i < r->n_findings; i++) {
		const struct kha_audit_finding *f = &r->findings[i];
		char path[4096];

		if (!f->fix_file || !f->fix_content)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, f->fix_file) >=
			    sizeof(path) ||
		    kha_file_write_atomic(path, f->fix_content, strlen(f->fix_content), 0644, &d) <
			    0) {
			fprintf(stderr, "kha audit: --fix-out: %s\n",
				d.msg[0] ? d.msg : "path too long");
			return KHA_EXIT_IOERR;
		}
	}
	return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static bool readable_or_unset(const char *flag, const char *path)
{
	if (!path || access(path, R_OK) == 0)
		return true;
	fprintf(stderr, "kha audit: %s %s: %s\n", flag, path, strerror(errno));
	return false;
}

/*
 * The command line (the config file first, the flags over it) and what it must say together.
 * Returns 0, -1 after the help, or an exit code after printing why.
 */
static int parse(int argc, char **argv, struct opts *o, bool *ret_kube_wanted)
{
	struct cmd_opts opts;
	struct kha_args a;
	const char *config = NULL;
	struct kha_diag d = {};
	bool kube_wanted;
	int code;

	cmd_opts_build(&opts, options, apply, o);
	a = cmd_opts_args(&opts);
	if (kha_args_scan(&a, argc, argv, &config)) {
		usage(stdout);
		return -1;
	}
	if (kha_etcd_config_init(&o->etcd) < 0)
		return KHA_EXIT_SOFTWARE;
	if (kha_etcd_config_from_env(&o->etcd, &d) < 0) {
		fprintf(stderr, "kha audit: %s\n", d.msg);
		return KHA_EXIT_USAGE;
	}
	code = kha_args_apply(&a, config, argc, argv, &d);
	if (code != 0) {
		fprintf(stderr, "kha audit: %s%s\n", d.msg,
			code == KHA_EXIT_USAGE ? " (run 'kha audit --help')" : "");
		return code;
	}
	o->etcd_given = cmd_opts_seen(&opts, "endpoints") ||
			(getenv("ETCDCTL_ENDPOINTS") && getenv("ETCDCTL_ENDPOINTS")[0]);
	if (optind < argc) {
		fprintf(stderr, "kha audit: unexpected argument '%s' (run 'kha audit --help')\n",
			argv[optind]);
		return KHA_EXIT_USAGE;
	}
	if (o->n_apiservers && !o->entry) {
		fprintf(stderr, "kha audit: --apiserver needs --entry: the SAN checked is the "
				"entry's host (run 'kha audit --help')\n");
		return KHA_EXIT_USAGE;
	}
	kube_wanted = o->kubeconfig || (getenv("KUBECONFIG") && getenv("KUBECONFIG")[0]) ||
		      getenv("KUBERNETES_SERVICE_HOST");
	if (!o->etcd_given && !kube_wanted && !o->entry && !o->backup_dir && !o->n_proxies &&
	    !o->n_bgps) {
		fprintf(stderr,
			"kha audit: nothing to audit: give --endpoints, --kubeconfig, "
			"--entry, --proxy, --bgp or --backup-dir (run 'kha audit --help')\n");
		return KHA_EXIT_USAGE;
	}
	/* configuration problems first, before any probe: one line, exit 78 */
	if (o->etcd_given && (!readable_or_unset("--cacert", o->etcd.cacert) ||
			      !readable_or_unset("--cert", o->etcd.cert) ||
			      !readable_or_unset("--key", o->etcd.key)))
		return KHA_EXIT_CONFIG;
	*ret_kube_wanted = kube_wanted;
	return 0;
}

/* Every source given, in order; what was not given is a finding that says so. */
static int collect(struct opts *o, struct kha_kube_config *kcfg, struct kha_audit_report *r,
		   struct sources *s, struct kha_kube_endpoint_set *found)
{
	int ret = o->etcd_given
			  ? audit_etcd(o, r, s)
			  : skipped(r, s, "etcd", "etcd", "no --endpoints (or ETCDCTL_ENDPOINTS)");

	if (ret >= 0 && o->backup_dir) {
		ret = kha_audit_collect_backup(o->backup_dir, o->backup_max_age_us, r);
		source_set(s, "backup", "audited", o->backup_dir);
	} else if (ret >= 0) {
		ret = skipped(r, s, "backup", "etcd-backup", "no --backup-dir");
	}
	if (ret >= 0)
		ret = kcfg ? audit_kube(o, kcfg, r, s, found)
			   : skipped(r, s, "kubernetes", "kubernetes",
				     "no --kubeconfig (or KUBECONFIG)");
	if (ret >= 0)
		ret = o->entry ? audit_entry(o, found, r, s)
			       : skipped(r, s, "entry", "entry", "no --entry");
	if (ret >= 0 && o->n_proxies)
		ret = audit_proxies(o, r, s);
	if (ret >= 0 && o->n_bgps)
		ret = audit_bgp(o, r, s);
	return ret;
}

/* The fixes, then the report on stdout; returns the exit code. */
static int report(const struct opts *o, struct kha_audit_report *r, const struct sources *s)
{
	int code;

	if (o->fix_out) {
		code = write_fixes(r, o->fix_out);
		if (code)
			return code;
	}
	if (o->json) {
		json_t *j = kha_audit_report_json(r, s->obj);

		if (!j || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
			json_decref(j);
			fprintf(stderr, "kha audit: cannot write the report\n");
			return KHA_EXIT_IOERR;
		}
		printf("\n");
		json_decref(j);
	} else {
		print_table(r, o->fix_out);
	}
	code = kha_audit_exit_code(r);
	/* every source given was out of reach (a backup directory is always readable or not) */
	if (s->given && !s->reachable && !o->backup_dir)
		code = KHA_EXIT_UNAVAILABLE;
	return code;
}

int cmd_audit_main(int argc, char **argv)
{
	struct opts o = {.backup_max_age_us = 24 * 3600 * KHA_USEC_PER_SEC,
			 .timeout_us = 5 * KHA_USEC_PER_SEC};
	struct kha_audit_report r = {};
	struct kha_kube_endpoint_set found = {}; /* the apiservers Kubernetes lists */
	struct sources s = {};
	struct kha_kube_config *kcfg = NULL;
	struct kha_diag d = {};
	bool kube_wanted = false;
	int code = parse(argc, argv, &o, &kube_wanted), ret;

	if (code) {
		opts_release(&o);
		return code < 0 ? KHA_EXIT_OK : code;
	}
	if (kube_wanted) {
		struct kha_kube_load_opts lo = {.kubeconfig = o.kubeconfig, .context = o.context};

		ret = kha_kube_config_load(&lo, &kcfg, &d);
		if (ret < 0) {
			fprintf(stderr, "kha audit: %s\n", d.msg[0] ? d.msg : strerror(-ret));
			opts_release(&o);
			return ret == -ENOMEM ? KHA_EXIT_SOFTWARE : KHA_EXIT_CONFIG;
		}
	}
	s.obj = json_object();
	ret = s.obj ? collect(&o, kcfg, &r, &s, &found) : -ENOMEM;
	kha_kube_config_free(kcfg);
	if (ret < 0) {
		fprintf(stderr, "kha audit: %s\n", strerror(-ret));
		code = KHA_EXIT_SOFTWARE;
	} else {
		code = report(&o, &r, &s);
	}
	if (fflush(stdout) != 0 && code < KHA_EXIT_USAGE)
		code = KHA_EXIT_IOERR;
	json_decref(s.obj);
	kha_audit_report_release(&r);
	kha_kube_endpoint_set_release(&found);
	opts_release(&o);
	return code;
}
