// SPDX-License-Identifier: MIT
/*
 * kube-probe: a tests-only driver of lib/kube (never installed). The integration tests
 * (tests/integration/test_kube*.py) run it against the stand-in API server to exercise
 * kubeconfig loading, TLS, discovery and leases end to end without the proxy or elect.
 * Output is JSON lines on stdout; errors are one line on stderr and an exit code from
 * kha_exit_from_errno().
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

#include "kha/kube.h"
#include "kha/parse.h"
#include "kha/banned.h"

static const char usage[] =
	"Usage: kube-probe [--kubeconfig FILE] [--context NAME] [--serviceaccount-dir DIR]\n"
	"                  [--server URL [--tls-server-name NAME]] [--timeout DUR]\n"
	"                  [--connect-timeout DUR] COMMAND [ARGS]\n"
	"Commands:\n"
	"  config                                 print the loaded configuration\n"
	"  get PATH                               GET PATH, print the JSON reply\n"
	"  request METHOD PATH [JSON]             any request, print {status, body}\n"
	"  endpoints                              list default/kubernetes's backend set once\n"
	"  discover [--watch-timeout SECONDS] [--backoff-initial DUR] [--backoff-max DUR]\n"
	"           [--namespace NS] [--service NAME] [--port-name NAME]\n"
	"                                         print each set, until SIGTERM/SIGINT\n"
	"  lease-get NS NAME\n"
	"  lease-create NS NAME HOLDER DURATION_S\n"
	"  lease-update NS NAME HOLDER DURATION_S RESOURCE_VERSION [TRANSITIONS]\n"
	"Example: kube-probe --kubeconfig admin.conf discover --watch-timeout 5\n";

static int fail(int r, const struct kha_diag *d, const char *what)
{
	fprintf(stderr, "kube-probe: %s: %s\n", what, d->msg[0] ? d->msg : strerror(-r));
	return kha_exit_from_errno(r);
}

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

static json_t *set_json(const struct kha_kube_endpoint_set *set)
{
	json_t *eps = json_array(), *o;

	for (size_t i = 0; i < set->n_endpoints; i++) {
		const struct kha_kube_endpoint *e = &set->endpoints[i];

		json_array_append_new(eps, json_pack("{s:s, s:s, s:i, s:b, s:b, s:b}", "addr",
						     e->addr, "ip", e->ip, "port", e->port, "ready",
						     e->ready, "serving", e->serving, "terminating",
						     e->terminating));
	}
	o = json_pack("{s:s, s:o, s:b, s:b, s:i, s:s}", "event", "set", "endpoints", eps, "empty",
		      set->empty, "serving_fallback", set->serving_fallback, "slices",
		      (int)set->n_slices, "resourceVersion",
		      set->resource_version ? set->resource_version : "");
	return o;
}

static void on_set(const struct kha_kube_endpoint_set *set, void *userdata)
{
	(void)userdata;
	print_json(set_json(set));
}

static void on_error(int err, const char *msg, uint64_t retry_in_us, void *userdata)
{
	(void)userdata;
	print_json(json_pack("{s:s, s:s, s:s, s:I}", "event", "error", "errno",
			     strerrorname_np(-err) ? strerrorname_np(-err) : "?", "message", msg,
			     "retry_in_ms", (json_int_t)(retry_in_us / 1000)));
}

struct runner {
	struct kha_kube_client *c;
	struct kha_kube_discovery_opts opts;
	int stop_fd;
	int r;
	struct kha_diag d;
};

static void *discovery_thread(void *p)
{
	struct runner *run = p;

	run->r = kha_kube_discovery_run(run->c, &run->opts, run->stop_fd, &run->d);
	return NULL;
}

static int cmd_discover(struct kha_kube_client *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"watch-timeout", required_argument, NULL, 'w'},
		{"backoff-initial", required_argument, NULL, 'i'},
		{"backoff-max", required_argument, NULL, 'm'},
		{"namespace", required_argument, NULL, 'n'},
		{"service", required_argument, NULL, 's'},
		{"port-name", required_argument, NULL, 'p'},
		{},
	};
	struct runner run = {.c = c};
	pthread_t th;
	sigset_t set;
	uint64_t v;
	int opt, sig;

	run.opts.on_set = on_set;
	run.opts.on_error = on_error;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			if (kha_parse_u64(optarg, 1, 3600, &v) < 0)
				return KHA_EXIT_USAGE;
			run.opts.watch_timeout_s = (unsigned)v;
			break;
		case 'i':
			if (kha_parse_duration_us(optarg, &run.opts.backoff_initial_us) < 0)
				return KHA_EXIT_USAGE;
			break;
		case 'm':
			if (kha_parse_duration_us(optarg, &run.opts.backoff_max_us) < 0)
				return KHA_EXIT_USAGE;
			break;
		case 'n':
			run.opts.namespace = optarg;
			break;
		case 's':
			run.opts.service = optarg;
			break;
		case 'p':
			run.opts.port_name = optarg;
			break;
		default:
			return KHA_EXIT_USAGE;
		}
	}
	run.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (run.stop_fd < 0)
		return KHA_EXIT_SOFTWARE;
	/* the signals come to this thread only; the discovery thread is stopped by the fd */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&th, NULL, discovery_thread, &run) != 0)
		return KHA_EXIT_SOFTWARE;
	sigwait(&set, &sig);
	v = 1;
	kha_ignore(write(run.stop_fd, &v, sizeof(v)));
	pthread_join(th, NULL);
	close(run.stop_fd);
	if (run.r < 0)
		return fail(run.r, &run.d, "discover");
	print_json(json_pack("{s:s}", "event", "stopped"));
	return 0;
}

static json_t *lease_json(const struct kha_kube_lease *l)
{
	char at[KHA_KUBE_MICROTIME_SIZE], rt[KHA_KUBE_MICROTIME_SIZE];

	return json_pack(
		"{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:i}", "namespace", l->namespace, "name",
		l->name, "resourceVersion", l->resource_version, "holderIdentity",
		l->holder_identity, "leaseDurationSeconds", (int)l->lease_duration_s, "acquireTime",
		l->acquire_time_us ? kha_kube_microtime_format(at, sizeof(at), l->acquire_time_us)
				   : "",
		"renewTime",
		l->renew_time_us ? kha_kube_microtime_format(rt, sizeof(rt), l->renew_time_us) : "",
		"leaseTransitions", (int)l->lease_transitions);
}

static int fill_lease(struct kha_kube_lease *l, char **argv, const char *rv,
		      const char *transitions)
{
	uint64_t dur, tr = 0;

	if (kha_parse_u64(argv[3], 1, 86400, &dur) < 0 ||
	    (transitions && kha_parse_u64(transitions, 0, INT32_MAX, &tr) < 0))
		return -EINVAL;
	snprintf(l->namespace, sizeof(l->namespace), "%s", argv[0]);
	snprintf(l->name, sizeof(l->name), "%s", argv[1]);
	snprintf(l->holder_identity, sizeof(l->holder_identity), "%s", argv[2]);
	snprintf(l->resource_version, sizeof(l->resource_version), "%s", rv ? rv : "");
	l->lease_duration_s = (int32_t)dur;
	l->renew_time_us = (int64_t)kha_wall_us();
	l->acquire_time_us = l->renew_time_us;
	l->lease_transitions = (int32_t)tr;
	return 0;
}

static int cmd_lease(struct kha_kube_client *c, const char *cmd, int argc, char **argv)
{
	struct kha_kube_lease l = {};
	struct kha_diag d = {};
	int r;

	if (strcmp(cmd, "lease-get") == 0 && argc == 2)
		r = kha_kube_lease_get(c, argv[0], argv[1], &l, &d);
	else if (strcmp(cmd, "lease-create") == 0 && argc == 4)
		r = fill_lease(&l, argv, NULL, NULL) ?: kha_kube_lease_create(c, &l, &l, &d);
	else if (strcmp(cmd, "lease-update") == 0 && (argc == 5 || argc == 6))
		r = fill_lease(&l, argv, argv[4], argc == 6 ? argv[5] : NULL)
			    ?: kha_kube_lease_update(c, &l, &l, &d);
	else
		return KHA_EXIT_USAGE;
	if (r < 0)
		return fail(r, &d, cmd);
	print_json(lease_json(&l));
	return 0;
}

static int cmd_config(const struct kha_kube_config *cfg)
{
	print_json(json_pack("{s:s, s:s?, s:s, s:s, s:s?, s:b, s:s, s:s}", "source", cfg->source,
			     "context", cfg->context, "namespace", cfg->namespace, "server",
			     cfg->server, "tls_server_name", cfg->tls_server_name, "insecure",
			     cfg->insecure_skip_tls_verify, "ca",
			     cfg->ca_data.data ? "data"
			     : cfg->ca_file    ? cfg->ca_file
					       : "system",
			     "auth",
			     cfg->cert_data.data ? "cert-data"
			     : cfg->cert_file	 ? "cert-file"
			     : cfg->token	 ? "token"
			     : cfg->token_file	 ? "token-file"
						 : "none"));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kubeconfig", required_argument, NULL, 'k'},
		{"context", required_argument, NULL, 'x'},
		{"serviceaccount-dir", required_argument, NULL, 'a'},
		{"server", required_argument, NULL, 's'},
		{"tls-server-name", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"connect-timeout", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	kha_auto(kha_kube_config_freep) struct kha_kube_config *cfg = NULL;
	kha_auto(kha_kube_client_freep) struct kha_kube_client *c = NULL;
	struct kha_kube_load_opts load = {};
	const char *server = NULL, *tls_name = NULL, *cmd;
	uint64_t timeout_us = 0, connect_us = 0;
	struct kha_diag d = {};
	int opt, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			load.kubeconfig = optarg;
			break;
		case 'x':
			load.context = optarg;
			break;
		case 'a':
			load.serviceaccount_dir = optarg;
			break;
		case 's':
			server = optarg;
			break;
		case 'n':
			tls_name = optarg;
			break;
		case 't':
			if (kha_parse_duration_us(optarg, &timeout_us) < 0)
				return KHA_EXIT_USAGE;
			break;
		case 'c':
			if (kha_parse_duration_us(optarg, &connect_us) < 0)
				return KHA_EXIT_USAGE;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return KHA_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return KHA_EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	r = kha_kube_config_load(&load, &cfg, &d);
	if (r < 0)
		return fail(r, &d, "load");
	if (strcmp(cmd, "config") == 0)
		return cmd_config(cfg);
	r = kha_kube_client_new(cfg, &c, &d);
	if (r == 0 && server)
		r = kha_kube_client_set_server(c, server, tls_name, &d);
	if (r < 0)
		return fail(r, &d, "client");
	kha_kube_client_set_timeouts(c, connect_us, timeout_us);
	if (strcmp(cmd, "get") == 0 && argc == 1) {
		json_t *body = NULL;

		r = kha_kube_request(c, "GET", argv[0], NULL, &body, &d);
		if (r < 0)
			return fail(r, &d, "get");
		print_json(body);
		return 0;
	}
	if (strcmp(cmd, "request") == 0 && (argc == 2 || argc == 3)) {
		json_t *req = NULL, *body = NULL;

		if (argc == 3) {
			req = json_loads(argv[2], JSON_DECODE_ANY, NULL);
			if (!req)
				return KHA_EXIT_USAGE;
		}
		r = kha_kube_request(c, argv[0], argv[1], req, &body, &d);
		json_decref(req);
		if (r < 0)
			return fail(r, &d, "request");
		print_json(json_pack("{s:i, s:o}", "status", r, "body", body));
		return 0;
	}
	if (strcmp(cmd, "endpoints") == 0 && argc == 0) {
		struct kha_kube_endpoint_set set = {};

		r = kha_kube_endpoints_list(c, NULL, &set, &d);
		if (r < 0)
			return fail(r, &d, "endpoints");
		print_json(set_json(&set));
		kha_kube_endpoint_set_release(&set);
		return 0;
	}
	if (strcmp(cmd, "discover") == 0)
		return cmd_discover(c, argc + 1, argv - 1);
	if (strncmp(cmd, "lease-", 6) == 0)
		return cmd_lease(c, cmd, argc, argv);
	fputs(usage, stderr);
	return KHA_EXIT_USAGE;
}
