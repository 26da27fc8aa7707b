// SPDX-License-Identifier: MIT
/* kha proxy: flags, help and wiring of the apiserver load balancer (lib/proxy). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <jansson.h>

#include "cmd-common.h"
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
	OPT_BACKENDS_FILE,
	OPT_STATE_FILE,
	OPT_KUBECONFIG,
	OPT_CONFIG,
	OPT_BALANCE,
	OPT_WORKERS,
	OPT_RETRIES,
	OPT_CONNECT_TIMEOUT,
	OPT_FIRST_BYTE_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_DRAIN_TIMEOUT,
	OPT_TCP_USER_TIMEOUT,
	OPT_KEEPALIVE_IDLE,
	OPT_KEEPALIVE_INTERVAL,
	OPT_KEEPALIVE_COUNT,
	OPT_CLIENT_KEEPALIVE_IDLE,
	OPT_MAX_CONNS,
	OPT_CHECK,
	OPT_CHECK_PATH,
	OPT_CHECK_INTERVAL,
	OPT_CHECK_FAST_INTERVAL,
	OPT_CHECK_TIMEOUT,
	OPT_CHECK_FALL,
	OPT_CHECK_RISE,
	OPT_CHECK_CACERT,
	OPT_CHECK_CERT,
	OPT_CHECK_KEY,
	OPT_CHECK_INSECURE,
	OPT_CLOSE_ON_DEAD,
	OPT_METRICS_ADDR,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_MODE,
	OPT_NAT_PREROUTING,
	OPT_NAT_NAME,
};

static const struct option longopts[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"backend", required_argument, NULL, OPT_BACKEND},
	{"backends-file", required_argument, NULL, OPT_BACKENDS_FILE},
	{"state-file", required_argument, NULL, OPT_STATE_FILE},
	{"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"balance", required_argument, NULL, OPT_BALANCE},
	{"workers", required_argument, NULL, OPT_WORKERS},
	{"retries", required_argument, NULL, OPT_RETRIES},
	{"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"first-byte-timeout", required_argument, NULL, OPT_FIRST_BYTE_TIMEOUT},
	{"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	{"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
	{"tcp-user-timeout", required_argument, NULL, OPT_TCP_USER_TIMEOUT},
	{"keepalive-idle", required_argument, NULL, OPT_KEEPALIVE_IDLE},
	{"keepalive-interval", required_argument, NULL, OPT_KEEPALIVE_INTERVAL},
	{"keepalive-count", required_argument, NULL, OPT_KEEPALIVE_COUNT},
	{"client-keepalive-idle", required_argument, NULL, OPT_CLIENT_KEEPALIVE_IDLE},
	{"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	{"check", required_argument, NULL, OPT_CHECK},
	{"check-path", required_argument, NULL, OPT_CHECK_PATH},
	{"check-interval", required_argument, NULL, OPT_CHECK_INTERVAL},
	{"check-fast-interval", required_argument, NULL, OPT_CHECK_FAST_INTERVAL},
	{"check-timeout", required_argument, NULL, OPT_CHECK_TIMEOUT},
	{"check-fall", required_argument, NULL, OPT_CHECK_FALL},
	{"check-rise", required_argument, NULL, OPT_CHECK_RISE},
	{"check-cacert", required_argument, NULL, OPT_CHECK_CACERT},
	{"check-cert", required_argument, NULL, OPT_CHECK_CERT},
	{"check-key", required_argument, NULL, OPT_CHECK_KEY},
	{"check-insecure", no_argument, NULL, OPT_CHECK_INSECURE},
	{"close-on-dead", required_argument, NULL, OPT_CLOSE_ON_DEAD},
	{"metrics-addr", required_argument, NULL, OPT_METRICS_ADDR},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	{"mode", required_argument, NULL, OPT_MODE},
	{"nat-prerouting", no_argument, NULL, OPT_NAT_PREROUTING},
	{"nat-name", required_argument, NULL, OPT_NAT_NAME},
	{"help", no_argument, NULL, 'h'},
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
		"\n"
		"Mode:\n"
		"  --mode MODE               userspace (default): kha accepts and copies, retries\n"
		"                            and replays first bytes; nat: an nftables table DNATs\n"
		"                            the listen address (a dedicated IPv4 address kha puts\n"
		"                            on a dummy interface, never 127.0.0.1) to a healthy\n"
		"                            backend per connection, at the kernel's speed; needs\n"
		"                            CAP_NET_ADMIN; checks default to 500ms/700ms, fall 2\n"
		"  --nat-prerouting          NAT mode: also DNAT traffic forwarded from pods\n"
		"  --nat-name NAME           NAT mode: nftables table and dummy interface\n"
		"                            (default kha-proxy)\n"
		"Membership:\n"
		"  --listen ADDR             address to accept clients on (host:port)\n"
		"  --backend ADDR[,weight=N] a backend (repeat); static seeds, used whenever the\n"
		"                            backends file and discovery give none\n"
		"  --backends-file FILE      YAML list of backends, re-read on SIGHUP and on change\n"
		"  --kubeconfig FILE         discover the apiservers from the EndpointSlices of\n"
		"                            service default/kubernetes (may point at this proxy)\n"
		"  --state-file FILE         last discovered backends, used at the next start\n"
		"  --config FILE             YAML file of these flags (keys = flag names)\n"
		"Balancing and failover:\n"
		"  --balance MODE            leastconn (default) or roundrobin (both weighted);\n"
		"                            NAT mode: random (default), roundrobin or source\n"
		"  --retries N               further backends one connection may try (default 3)\n"
		"  --connect-timeout DURATION\n"
		"                            connect timeout per backend (default 1s)\n"
		"  --first-byte-timeout DURATION\n"
		"                            wait for the backend's first byte, then replay the\n"
		"                            client's first 16 KiB elsewhere (default 1s; 0: off)\n"
		"  --idle-timeout DURATION   close idle connections (default 0: never)\n"
		"  --drain-timeout DURATION  on SIGTERM, wait this long for connections (default 30s)\n"
		"  --close-on-dead BOOL      close a dead backend's connections (default true)\n"
		"  --tcp-user-timeout DURATION\n"
		"                            backend sockets: unacknowledged data limit (default 10s)\n"
		"  --keepalive-idle DURATION backend sockets: TCP keep-alive idle (default 5s; 0: off)\n"
		"  --keepalive-interval DURATION\n"
		"                            keep-alive probe interval (default 2s)\n"
		"  --keepalive-count N       keep-alive probes (default 3)\n"
		"  --client-keepalive-idle DURATION\n"
		"                            client sockets: TCP keep-alive idle, same interval\n"
		"                            and count (default 30s; 0: off)\n"
		"  --max-conns N             client connections at once; more wait in the backlog\n"
		"                            (default: (descriptor limit - reserve) / 2)\n"
		"  --workers N               data-path threads, SO_REUSEPORT (default 1)\n"
		"Health checks:\n"
		"  --check KIND              https (default), http or tcp\n"
		"  --check-path PATH         HTTP path (default /readyz; 200 = ready)\n"
		"  --check-interval DURATION between checks (default 5s)\n"
		"  --check-fast-interval DURATION\n"
		"                            between checks while a state change is pending (500ms)\n"
		"  --check-timeout DURATION  per check (default 2s)\n"
		"  --check-fall N            failures before down/draining (default 3)\n"
		"  --check-rise N            successes before up again (default 2)\n"
		"  --check-cacert FILE       CA to verify the backends' certificates\n"
		"  --check-cert FILE, --check-key FILE  client certificate for the checks\n"
		"  --check-insecure          do not verify the backends' certificates\n"
		"Operations:\n"
		"  --metrics-addr ADDR       /metrics, /healthz, /readyz, /status (default\n"
		"                            127.0.0.1:9443; \"off\" disables)\n"
		"  --log-level LEVEL         debug, info (default), warn, error\n"
		"  --log-format FORMAT       logfmt (default) or json\n"
		"\n"
		"Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads --config and the backends\n"
		"file without dropping a connection (listen, workers, metrics-addr, kubeconfig\n"
		"need a restart).\n"
		"Exit codes: 0 stopped cleanly, 64 bad flags, 65 bad backends file, 77 NAT mode\n"
		"without CAP_NET_ADMIN, 78 bad configuration (unreadable file, address in use).\n");
}

struct opts {
	struct kha_proxy_config cfg;
	char *kubeconfig;
	enum kha_log_level level;
	enum kha_log_format format;
};

static int apply(void *userdata, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = userdata;
	struct kha_proxy_config *c = &o->cfg;
	struct kha_proxy_spec spec;
	bool b;
	int r;

	switch (val) {
	case OPT_LISTEN:
		return kha_opt_set_addr(c->listen, sizeof(c->listen), arg, d);
	case OPT_BACKEND:
		r = kha_proxy_spec_parse(arg, &spec, d);
		return r < 0 ? r : kha_proxy_spec_list_add(&c->seeds, &spec);
	case OPT_BACKENDS_FILE:
		return kha_opt_set_str(&c->backends_file, arg, d);
	case OPT_STATE_FILE:
		return kha_opt_set_str(&c->state_file, arg, d);
	case OPT_KUBECONFIG:
		return kha_opt_set_str(&o->kubeconfig, arg, d);
	case OPT_BALANCE:
		if (strcmp(arg, "leastconn") == 0)
			c->balance = KHA_PROXY_LEASTCONN;
		else if (strcmp(arg, "roundrobin") == 0)
			c->balance = KHA_PROXY_ROUNDROBIN;
		else if (strcmp(arg, "random") == 0)
			c->balance = KHA_PROXY_RANDOM;
		else if (strcmp(arg, "source") == 0)
			c->balance = KHA_PROXY_SOURCE;
		else
			return kha_diag_set(
				d, EINVAL, "'%s': expected leastconn, roundrobin, random or source",
				arg);
		return 0;
	case OPT_MODE:
		if (strcmp(arg, "userspace") == 0)
			c->mode = KHA_PROXY_MODE_USERSPACE;
		else if (strcmp(arg, "nat") == 0)
			c->mode = KHA_PROXY_MODE_NAT;
		else
			return kha_diag_set(d, EINVAL, "'%s': expected userspace or nat", arg);
		return 0;
	case OPT_NAT_PREROUTING:
		c->nat_prerouting = true;
		return 0;
	case OPT_NAT_NAME:
		if (!*arg || strlen(arg) >= sizeof(c->nat_name))
			return kha_diag_set(d, EINVAL, "'%s': expected 1 to %zu characters", arg,
					    sizeof(c->nat_name) - 1);
		snprintf(c->nat_name, sizeof(c->nat_name), "%s", arg);
		return 0;
	case OPT_WORKERS:
		return kha_opt_set_uint(&c->workers, arg, 1, KHA_PROXY_MAX_WORKERS, d);
	case OPT_RETRIES:
		return kha_opt_set_uint(&c->retries, arg, 0, 16, d);
	case OPT_CONNECT_TIMEOUT:
		return kha_opt_set_duration(&c->connect_timeout_us, arg, false, d);
	case OPT_FIRST_BYTE_TIMEOUT:
		return kha_opt_set_duration(&c->first_byte_timeout_us, arg, true, d);
	case OPT_IDLE_TIMEOUT:
		return kha_opt_set_duration(&c->idle_timeout_us, arg, true, d);
	case OPT_DRAIN_TIMEOUT:
		return kha_opt_set_duration(&c->drain_timeout_us, arg, true, d);
	case OPT_TCP_USER_TIMEOUT:
		return kha_opt_set_duration(&c->tcp_user_timeout_us, arg, true, d);
	case OPT_KEEPALIVE_IDLE:
		return kha_opt_set_duration(&c->keepalive_idle_us, arg, true, d);
	case OPT_KEEPALIVE_INTERVAL:
		return kha_opt_set_duration(&c->keepalive_interval_us, arg, false, d);
	case OPT_KEEPALIVE_COUNT:
		return kha_opt_set_uint(&c->keepalive_count, arg, 1, 100, d);
	case OPT_CLIENT_KEEPALIVE_IDLE:
		return kha_opt_set_duration(&c->client_keepalive_idle_us, arg, true, d);
	case OPT_MAX_CONNS:
		return kha_opt_set_uint(&c->max_conns, arg, 1, 1u << 30, d);
	case OPT_CHECK:
		if (strcmp(arg, "https") == 0)
			c->check = KHA_PROXY_CHECK_HTTPS;
		else if (strcmp(arg, "http") == 0)
			c->check = KHA_PROXY_CHECK_HTTP;
		else if (strcmp(arg, "tcp") == 0)
			c->check = KHA_PROXY_CHECK_TCP;
		else
			return kha_diag_set(d, EINVAL, "'%s': expected https, http or tcp", arg);
		return 0;
	case OPT_CHECK_PATH:
		if (arg[0] != '/' || strlen(arg) >= sizeof(c->check_path))
			return kha_diag_set(d, EINVAL, "'%s': expected a path such as /readyz",
					    arg);
		snprintf(c->check_path, sizeof(c->check_path), "%s", arg);
		return 0;
	case OPT_CHECK_INTERVAL:
		return kha_opt_set_duration(&c->check_interval_us, arg, false, d);
	case OPT_CHECK_FAST_INTERVAL:
		return kha_opt_set_duration(&c->check_fast_interval_us, arg, false, d);
	case OPT_CHECK_TIMEOUT:
		return kha_opt_set_duration(&c->check_timeout_us, arg, false, d);
	case OPT_CHECK_FALL:
		return kha_opt_set_uint(&c->fall, arg, 1, 100, d);
	case OPT_CHECK_RISE:
		return kha_opt_set_uint(&c->rise, arg, 1, 100, d);
	case OPT_CHECK_CACERT:
		return kha_opt_set_str(&c->check_cacert, arg, d);
	case OPT_CHECK_CERT:
		return kha_opt_set_str(&c->check_cert, arg, d);
	case OPT_CHECK_KEY:
		return kha_opt_set_str(&c->check_key, arg, d);
	case OPT_CHECK_INSECURE:
		c->check_insecure = true;
		return 0;
	case OPT_CLOSE_ON_DEAD:
		if (kha_parse_bool(arg, &b) < 0)
			return kha_diag_set(d, EINVAL, "'%s': expected true or false", arg);
		c->close_on_dead = b;
		return 0;
	case OPT_METRICS_ADDR:
		if (strcmp(arg, "off") == 0 || !*arg) {
			c->metrics_addr[0] = '\0';
			return 0;
		}
		return kha_opt_set_addr(c->metrics_addr, sizeof(c->metrics_addr), arg, d);
	case OPT_LOG_LEVEL:
		return kha_opt_set_log_level(&o->level, arg, d);
	case OPT_LOG_FORMAT:
		return kha_opt_set_log_format(&o->format, arg, d);
	}
	return -EINVAL;
}

static void opts_release(struct opts *o)
{
	kha_proxy_config_release(&o->cfg);
	free(o->kubeconfig);
	o->kubeconfig = NULL;
}

/* ---- kha proxy status ---- */

static int status_main(int argc, char **argv)
{
	static const struct option sopts[] = {
		{"metrics-addr", required_argument, NULL, 'm'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *addr = "127.0.0.1:9443", *output = "table";
	struct kha_diag d = {};
	json_t *root = NULL, *backends, *b;
	char url[KHA_PROXY_ADDR_MAX + 16];
	size_t i, up = 0, total = 0;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", sopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			addr = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			printf("Usage: kha proxy status [--metrics-addr ADDR] [-o table|json]\n\n"
			       "Shows the backends of a running kha proxy: state, last check,\n"
			       "connections. Exit 0 all up, 1 some down, 2 none up, 69 unreachable.\n\n"
			       "Example:\n  kha proxy status --metrics-addr 127.0.0.1:9443 -o json\n");
			return KHA_EXIT_OK;
		default:
			fprintf(stderr,
				"kha proxy status: bad flag (run 'kha proxy status --help')\n");
			return KHA_EXIT_USAGE;
		}
	}
	if (optind < argc || (strcmp(output, "json") != 0 && strcmp(output, "table") != 0)) {
		fprintf(stderr,
			"kha proxy status: expected -o table or -o json and no arguments\n");
		return KHA_EXIT_USAGE;
	}
	snprintf(url, sizeof(url), "http://%s/status", addr);
	r = kha_http_get_json(url, 3 * KHA_USEC_PER_SEC, &root, &d);
	if (r < 0 && r != -EBADMSG) {
		return cmd_fail(
			"kha proxy status", strcmp(output, "json") == 0, KHA_EXIT_UNAVAILABLE,
			"%s: %s (is kha proxy running with --metrics-addr %s?)", url, d.msg, addr);
	}
	backends = root ? json_object_get(root, "backends") : NULL;
	if (!json_is_array(backends)) {
		json_decref(root);
		return cmd_fail("kha proxy status", strcmp(output, "json") == 0, KHA_EXIT_DATAERR,
				"%s: unexpected answer (not a kha proxy?)", addr);
	}
	json_array_foreach (backends, i, b) {
		if (json_is_true(json_object_get(b, "removed")))
			continue;
		total++;
		up += strcmp(json_string_value(json_object_get(b, "state")) ?: "", "up") == 0;
	}
	if (strcmp(output, "json") == 0) {
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

/* Two fds per proxied connection: take every fd the hard limit allows (as nginx and HAProxy do). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		kha_ignore(setrlimit(RLIMIT_NOFILE, &rl));
	}
}

static const struct kha_args args_spec = {
	.shortopts = "h",
	.longopts = longopts,
	.config_val = OPT_CONFIG,
	.apply = apply,
};

/* What a SIGHUP reads again: the same --config file and the same flags, over the defaults. */
struct reload_ctx {
	struct kha_args_source src;
	const char *kubeconfig; /* the one in use: discovery is not restarted by a reload */
};

static int reload(void *userdata, struct kha_proxy_config *cfg, struct kha_diag *d)
{
	const struct reload_ctx *rc = userdata;
	struct opts o = {.cfg = *cfg, .level = KHA_LOG_INFO, .format = KHA_LOG_LOGFMT};

	if (kha_args_reapply(&args_spec, &o, &rc->src, d) != 0) {
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
	if (kha_args_scan(&args_spec, argc, argv, &rc.src.config)) {
		usage(stdout);
		return KHA_EXIT_OK;
	}
	kha_proxy_config_init(&o.cfg);
	code = kha_args_reapply(&args_spec, &o, &rc.src, &d);
	if (code == 0 && o.cfg.mode != KHA_PROXY_MODE_USERSPACE) {
		/* the mode's defaults under the flags, whatever their order */
		enum kha_proxy_mode mode = o.cfg.mode;
		opts_release(&o);
		kha_proxy_config_init_mode(&o.cfg, mode);
		code = kha_args_reapply(&args_spec, &o, &rc.src, &d);
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
	raise_fd_limit();
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
