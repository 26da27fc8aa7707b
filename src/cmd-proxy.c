// SPDX-License-Identifier: MIT
/* kha proxy: flags, help and wiring of the apiserver load balancer (lib/proxy). */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/config.h"
#include "kha/http.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/proxy.h"
#include "kha/banned.h"

enum {
	OPT_LISTEN = 256,
	OPT_BACKEND,
	OPT_BALANCE,
	OPT_CHECK,
	OPT_CHECK_PATH,
	OPT_CLOSE_ON_DEAD,
	OPT_MODE,
	OPT_NAT_NAME,
};

struct opts {
	struct kha_proxy_config cfg;
	char *kubeconfig;
	enum kha_log_level level;
	enum kha_log_format format;
};

static int apply(void *target, int val, const char *arg, struct kha_diag *d);

#define CALL(n, a, v, h)      CMD_OPT_CALL_ENTRY(n, a, v, h)
#define TYPED(k, n, a, f, h)  CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, f, h)
#define DUR(n, f, h)	      TYPED(CMD_OPT_DURATION, n, "DURATION", cfg.f, h)
#define DUR0(n, f, h)	      TYPED(CMD_OPT_DURATION0, n, "DURATION", cfg.f, h)
#define STR(n, a, f, h)	      TYPED(CMD_OPT_STRDUP, n, a, f, h)
#define UINT(n, f, lo, hi, h) CMD_OPT_UINT_ENTRY(struct opts, n, cfg.f, lo, hi, h)

static const struct cmd_opt options[] = {
	CMD_OPT_TITLE_ENTRY("Mode:"),
	CALL("mode", "MODE", OPT_MODE,
	     "userspace (default): kha accepts and copies, retries\nand replays first bytes; nat: an "
	     "nftables table DNATs\nthe listen address (a dedicated IPv4 address kha puts\non a "
	     "dummy interface, never 127.0.0.1) to a healthy\nbackend per connection, at the "
	     "kernel's speed; needs\nCAP_NET_ADMIN; checks default to 500ms/700ms, fall 2"),
	TYPED(CMD_OPT_BOOL, "nat-prerouting", NULL, cfg.nat_prerouting,
	      "NAT mode: also DNAT traffic forwarded from pods"),
	CALL("nat-name", "NAME", OPT_NAT_NAME,
	     "NAT mode: nftables table and dummy interface\n(default kha-proxy)"),
	CMD_OPT_TITLE_ENTRY("Membership:"),
	CALL("listen", "ADDR", OPT_LISTEN, "address to accept clients on (host:port)"),
	CALL("backend", "ADDR[,weight=N]", OPT_BACKEND,
	     "a backend (repeat); static seeds, used whenever the\nbackends file and discovery "
	     "give none"),
	STR("backends-file", "FILE", cfg.backends_file,
	    "YAML list of backends, re-read on SIGHUP and on change"),
	STR("kubeconfig", "FILE", kubeconfig,
	    "discover the apiservers from the EndpointSlices of\nservice default/kubernetes (may "
	    "point at this proxy)"),
	STR("state-file", "FILE", cfg.state_file,
	    "last discovered backends, used at the next start"),
	CMD_OPT_TITLE_ENTRY("Balancing and failover:"),
	CALL("balance", "MODE", OPT_BALANCE,
	     "leastconn (default) or roundrobin (both weighted);\nNAT mode: random (default), "
	     "roundrobin or source"),
	UINT("retries", retries, 0, 16, "further backends one connection may try (default 3)"),
	DUR("connect-timeout", connect_timeout_us, "connect timeout per backend (default 1s)"),
	DUR0("first-byte-timeout", first_byte_timeout_us,
	     "wait for the backend's first byte, then replay the\nclient's first 16 KiB elsewhere "
	     "(default 1s; 0: off)"),
	DUR0("idle-timeout", idle_timeout_us, "close idle connections (default 0: never)"),
	DUR0("drain-timeout", drain_timeout_us,
	     "on SIGTERM, wait this long for connections (default 30s)"),
	CALL("close-on-dead", "BOOL", OPT_CLOSE_ON_DEAD,
	     "close a dead backend's connections (default true)"),
	DUR0("tcp-user-timeout", tcp_user_timeout_us,
	     "backend sockets: unacknowledged data limit (default 10s)"),
	DUR0("keepalive-idle", keepalive_idle_us,
	     "backend sockets: TCP keep-alive idle (default 5s; 0: off)"),
	DUR("keepalive-interval", keepalive_interval_us, "keep-alive probe interval (default 2s)"),
	UINT("keepalive-count", keepalive_count, 1, 100, "keep-alive probes (default 3)"),
	DUR0("client-keepalive-idle", client_keepalive_idle_us,
	     "client sockets: TCP keep-alive idle, same interval\nand count (default 30s; 0: off)"),
	UINT("max-conns", max_conns, 1, 1u << 30,
	     "client connections at once; more wait in the backlog\n(default: (descriptor limit - "
	     "reserve) / 2)"),
	UINT("workers", workers, 1, KHA_PROXY_MAX_WORKERS,
	     "data-path threads, SO_REUSEPORT (default 1)"),
	CMD_OPT_TITLE_ENTRY("Health checks:"),
	CALL("check", "KIND", OPT_CHECK, "https (default), http or tcp"),
	CALL("check-path", "PATH", OPT_CHECK_PATH, "HTTP path (default /readyz; 200 = ready)"),
	DUR("check-interval", check_interval_us, "between checks (default 5s)"),
	DUR("check-fast-interval", check_fast_interval_us,
	    "between checks while a state change is pending (500ms)"),
	DUR("check-timeout", check_timeout_us, "per check (default 2s)"),
	UINT("check-fall", fall, 1, 100, "failures before down/draining (default 3)"),
	UINT("check-rise", rise, 1, 100, "successes before up again (default 2)"),
	STR("check-cacert", "FILE", cfg.check_cacert, "CA to verify the backends' certificates"),
	STR("check-cert", "FILE", cfg.check_cert, "client certificate for the checks"),
	STR("check-key", "FILE", cfg.check_key, "its private key"),
	TYPED(CMD_OPT_BOOL, "check-insecure", NULL, cfg.check_insecure,
	      "do not verify the backends' certificates"),
	CMD_OPT_TITLE_ENTRY("Operations:"),
	CMD_OPTS_DAEMON(struct opts, cfg.metrics_addr, "127.0.0.1:9443", level, format),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha proxy --listen ADDR --backend ADDR[,weight=N]... [flags]\n"
		"       kha proxy status [--metrics-addr ADDR] [-o table|json]\n"
		"\n"
		"TCP load balancer for kube-apiservers: one address for every node, whichever\n"
		"masters are alive. Failed connects and silent backends are retried on the next\n"
		"backend (the client's first bytes are replayed), dead backends' connections are\n"
		"closed so watches reconnect at once. See docs/proxy.md.\n"
		"\n"
		"Example (node-local, kubelet's kubeconfig points at https://127.0.0.1:7443):\n"
		"  kha proxy --listen 127.0.0.1:7443 --backend 10.0.0.11:6443 \\\n"
		"      --backend 10.0.0.12:6443 --backend 10.0.0.13:6443 \\\n"
		"      --check-cacert /etc/kubernetes/pki/ca.crt\n"
		"\n"
		"Example (NAT mode: the kernel balances, kha keeps its table; needs CAP_NET_ADMIN):\n"
		"  kha proxy --mode nat --listen 169.254.20.1:443 --backend 10.0.0.11:6443 \\\n"
		"      --backend 10.0.0.12:6443 --backend 10.0.0.13:6443 \\\n"
		"      --check-cacert /etc/kubernetes/pki/ca.crt\n"
		"\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\n"
		"Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads --config and the backends\n"
		"file without dropping a connection (listen, workers, metrics-addr, kubeconfig\n"
		"need a restart).\n"
		"Exit codes: 0 stopped cleanly, 64 bad flags, 65 bad backends file, 77 NAT mode\n"
		"without CAP_NET_ADMIN, 78 bad configuration (unreadable file, address in use).\n");
}

static int set_enum(int *dst, const char *arg, const char *const *names, size_t n,
		    const char *expected, struct kha_diag *d)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(arg, names[i]) == 0) {
			*dst = (int)i;
			return 0;
		}
	return kha_diag_set(d, EINVAL, "'%s': expected %s", arg, expected);
}

/* The flags whose values need more than a setter of the table. */
static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	static const char *const balance[] = {
		[KHA_PROXY_LEASTCONN] = "leastconn",
		[KHA_PROXY_ROUNDROBIN] = "roundrobin",
		[KHA_PROXY_RANDOM] = "random",
		[KHA_PROXY_SOURCE] = "source",
	};
	static const char *const mode[] = {
		[KHA_PROXY_MODE_USERSPACE] = "userspace", [KHA_PROXY_MODE_NAT] = "nat"};
	static const char *const check[] = {[KHA_PROXY_CHECK_HTTPS] = "https",
					    [KHA_PROXY_CHECK_HTTP] = "http",
					    [KHA_PROXY_CHECK_TCP] = "tcp"};
	struct kha_proxy_config *c = &((struct opts *)target)->cfg;
	struct kha_proxy_spec spec;
	int v = 0, r;
	bool b;

	switch (val) {
	case OPT_LISTEN:
		return kha_opt_set_addr(c->listen, sizeof(c->listen), arg, d);
	case OPT_BACKEND:
		r = kha_proxy_spec_parse(arg, &spec, d);
		return r < 0 ? r : kha_proxy_spec_list_add(&c->seeds, &spec);
	case OPT_BALANCE:
		r = set_enum(&v, arg, balance, KHA_ARRAY_SIZE(balance),
			     "leastconn, roundrobin, random or source", d);
		c->balance = r == 0 ? (enum kha_proxy_balance)v : c->balance;
		return r;
	case OPT_MODE:
		r = set_enum(&v, arg, mode, KHA_ARRAY_SIZE(mode), "userspace or nat", d);
		c->mode = r == 0 ? (enum kha_proxy_mode)v : c->mode;
		return r;
	case OPT_CHECK:
		r = set_enum(&v, arg, check, KHA_ARRAY_SIZE(check), "https, http or tcp", d);
		c->check = r == 0 ? (enum kha_proxy_check)v : c->check;
		return r;
	case OPT_NAT_NAME:
		if (!*arg || strlen(arg) >= sizeof(c->nat_name))
			return kha_diag_set(d, EINVAL, "'%s': expected 1 to %zu characters", arg,
					    sizeof(c->nat_name) - 1);
		snprintf(c->nat_name, sizeof(c->nat_name), "%s", arg);
		return 0;
	case OPT_CHECK_PATH:
		if (arg[0] != '/' || strlen(arg) >= sizeof(c->check_path))
			return kha_diag_set(d, EINVAL, "'%s': expected a path such as /readyz",
					    arg);
		snprintf(c->check_path, sizeof(c->check_path), "%s", arg);
		return 0;
	default: /* OPT_CLOSE_ON_DEAD */
		if (kha_parse_bool(arg, &b) < 0)
			return kha_diag_set(d, EINVAL, "'%s': expected true or false", arg);
		c->close_on_dead = b;
		return 0;
	}
}

static void opts_release(struct opts *o)
{
	kha_proxy_config_release(&o->cfg);
	free(o->kubeconfig);
	o->kubeconfig = NULL;
}

/* ---- kha proxy status ---- */

static void status_usage(FILE *out)
{
	fprintf(out, "Usage: kha proxy status [--metrics-addr ADDR] [-o table|json]\n\n"
		     "Shows the backends of a running kha proxy: state, last check,\n"
		     "connections, read from its /status endpoint (127.0.0.1:9443 unless\n"
		     "--metrics-addr says otherwise).\n"
		     "Exit 0 all up, 1 some down, 2 none up, 69 unreachable, 64 usage.\n\n"
		     "Flags:\n");
	cmd_status_help(out);
	fprintf(out, "\nExample:\n  kha proxy status --metrics-addr 127.0.0.1:9443 -o json\n");
}

static int status_main(int argc, char **argv)
{
	json_t *root = NULL, *backends, *b;
	size_t i, up = 0, total = 0;
	bool json = false;
	int r;

	r = cmd_status_fetch("proxy", argc, argv, "127.0.0.1:9443", status_usage, &root, &json);
	if (r >= 0)
		return r;
	backends = root ? json_object_get(root, "backends") : NULL;
	if (!json_is_array(backends)) {
		json_decref(root);
		return cmd_fail("kha proxy status", json, KHA_EXIT_DATAERR,
				"unexpected answer (not a kha proxy?)");
	}
	json_array_foreach (backends, i, b) {
		if (json_is_true(json_object_get(b, "removed")))
			continue;
		total++;
		up += strcmp(json_string_value(json_object_get(b, "state")) ?: "", "up") == 0;
	}
	if (json) {
		json_dumpf(root, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		int w = 7, ws = 6;

		/* widths from the data; LAST CHECK last and whole: it is the diagnosis */
		json_array_foreach (backends, i, b) {
			w = KHA_MAX(w, (int)strlen(json_string_value(json_object_get(b, "address"))
							   ?: "?"));
			ws = KHA_MAX(ws, (int)strlen(json_string_value(json_object_get(b, "source"))
							     ?: ""));
		}
		printf("%-*s  %-9s %-6s %-7s %-9s %-10s %-*s  %s\n", w, "BACKEND", "STATE",
		       "WEIGHT", "ACTIVE", "TOTAL", "LATENCY", ws, "SOURCE", "LAST CHECK");
		json_array_foreach (backends, i, b) {
			json_t *lc = json_object_get(b, "last_check");
			char lat[32];

			snprintf(lat, sizeof(lat), "%.1fms",
				 json_real_value(json_object_get(lc, "latency_ms")));
			printf("%-*s  %-9s %-6lld %-7lld %-9lld %-10s %-*s  %s (%s)\n", w,
			       KHA_TERM(json_string_value(json_object_get(b, "address")) ?: "?"),
			       KHA_TERM(json_string_value(json_object_get(b, "state")) ?: "?"),
			       (long long)json_integer_value(json_object_get(b, "weight")),
			       (long long)json_integer_value(
				       json_object_get(b, "active_connections")),
			       (long long)json_integer_value(
				       json_object_get(b, "connections_total")),
			       lat, ws,
			       KHA_TERM(json_string_value(json_object_get(b, "source")) ?: ""),
			       KHA_TERM(json_string_value(json_object_get(lc, "result")) ?: "?"),
			       KHA_TERM(json_string_value(json_object_get(lc, "detail")) ?: ""));
		}
		printf("\n%zu of %zu backends up; %s\n", up, total,
		       json_is_true(json_object_get(root, "ready")) ? "ready" : "NOT ready");
		if (json_string_value(json_object_get(root, "check_problem")))
			printf("error: %s\n",
			       KHA_TERM(json_string_value(json_object_get(root, "check_problem"))));
		if (json_is_object(json_object_get(root, "nat"))) {
			json_t *nat = json_object_get(root, "nat");
			printf("NAT mode: table %s, %zu backends in it (%lld slots), %lld writes, "
			       "%lld failed\n",
			       KHA_TERM(json_string_value(json_object_get(nat, "table")) ?: "?"),
			       json_array_size(json_object_get(nat, "targets")),
			       (long long)json_integer_value(json_object_get(nat, "slots")),
			       (long long)json_integer_value(json_object_get(nat, "commits")),
			       (long long)json_integer_value(
				       json_object_get(nat, "commit_failures")));
		}
	}
	json_decref(root);
	if (up == total)
		return KHA_EXIT_OK;
	return up ? KHA_EXIT_DEGRADED : KHA_EXIT_CRITICAL;
}

/* ---- the daemon ---- */

/* What a SIGHUP reads again: the same --config file and the same flags, over the defaults. */
struct reload_ctx {
	struct kha_args_source src;
	const char *kubeconfig; /* the one in use: discovery is not restarted by a reload */
};

static int reload(void *userdata, struct kha_proxy_config *cfg, struct kha_diag *d)
{
	const struct reload_ctx *rc = userdata;
	struct opts o = {.cfg = *cfg, .level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};

	if (cmd_opts_reapply(options, apply, &o, &rc->src, d) != 0) {
		opts_release(&o);
		return -EINVAL;
	}
	if (!((!o.kubeconfig && !rc->kubeconfig) ||
	      (o.kubeconfig && rc->kubeconfig && strcmp(o.kubeconfig, rc->kubeconfig) == 0)))
		kha_warn("configuration keys not applied until a restart", "keys=kubeconfig");
	kha_log_setup(o.level, o.format);
	free(o.kubeconfig);
	*cfg = o.cfg;
	return 0;
}

int cmd_proxy_main(int argc, char **argv)
{
	struct opts o = {.level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};
	struct kha_diag d = {};
	struct kha_proxy *p = NULL;
	struct kha_proxy_discovery *disc = NULL;
	struct reload_ctx rc = {.src = {.argc = argc, .argv = argv}};
	int r, code;

	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, cmd_sub_argv(argv));
	if (cmd_opts_scan(options, argc, argv, &rc.src.config)) {
		usage(stdout);
		return KHA_EXIT_OK;
	}
	kha_proxy_config_init(&o.cfg);
	code = cmd_opts_reapply(options, apply, &o, &rc.src, &d);
	if (code == 0 && o.cfg.mode != KHA_PROXY_MODE_USERSPACE) {
		/* the mode's defaults under the flags, whatever their order */
		enum kha_proxy_mode mode = o.cfg.mode;
		opts_release(&o);
		kha_proxy_config_init_mode(&o.cfg, mode);
		code = cmd_opts_reapply(options, apply, &o, &rc.src, &d);
	}
	if (code != 0) {
		fprintf(stderr, "kha proxy: %s%s\n", d.msg,
			code == KHA_EXIT_USAGE ? " (run 'kha proxy --help')" : "");
		opts_release(&o);
		return code;
	}
	if (optind < argc) {
		fprintf(stderr, "kha proxy: unexpected argument '%s' (run 'kha proxy --help')\n",
			argv[optind]);
		opts_release(&o);
		return KHA_EXIT_USAGE;
	}
	kha_log_setup(o.level, o.format);
	kha_diag_clear(&d);
	r = 0;
	if (o.kubeconfig) {
		r = kha_proxy_discovery_new(o.kubeconfig, &d, &disc);
		if (r < 0) {
			kha_diag_prefix(&d, "--kubeconfig");
			r = r == -EINVAL ? -EBADMSG : r; /* bad kubeconfig content: bad data */
		}
	}
	if (r == 0)
		r = kha_proxy_new(&o.cfg, &d, &p);
	if (r == 0)
		kha_proxy_set_reload(p, reload, &rc);
	if (r == 0 && disc) {
		r = kha_proxy_discovery_start(disc, p, &d);
		if (r < 0)
			kha_proxy_free(p);
	}
	if (r < 0)
		kha_proxy_discovery_stop(disc);
	if (r < 0) {
		opts_release(&o);
		fprintf(stderr, "kha proxy: %s\n", d.msg[0] ? d.msg : strerror(-r));
		if (r == -EINVAL)
			return KHA_EXIT_USAGE;
		if (r == -EBADMSG)
			return KHA_EXIT_DATAERR;
		if (r == -EPERM)
			return KHA_EXIT_NOPERM;
		code = kha_exit_from_errno(r);
		return code == KHA_EXIT_SOFTWARE || code == KHA_EXIT_IOERR ? KHA_EXIT_CONFIG : code;
	}
	/* two fds per proxied connection: every fd the hard limit allows (as nginx does) */
	cmd_raise_fd_limit();
	rc.kubeconfig = o.kubeconfig;
	r = kha_proxy_run(p);
	kha_proxy_discovery_stop(disc);
	kha_proxy_free(p);
	opts_release(&o);
	if (r < 0) {
		fprintf(stderr, "kha proxy: %s\n", strerror(-r));
		return KHA_EXIT_SOFTWARE;
	}
	return KHA_EXIT_OK;
}
