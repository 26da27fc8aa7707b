// SPDX-License-Identifier: MIT
/*
 * kha elect: run COMMAND only while leader (etcd election compatible with `etcdctl elect`, or a
 * Kubernetes Lease shared with client-go processes); --leader and --observe read an election.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/config.h"
#include "kha/election.h"
#include "kha/kube.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/proc.h"
#include "kha/banned.h"

enum {
	OPT_ID = 0x100,
	OPT_TTL,
	OPT_RESTART,
};

struct opts {
	struct kha_etcd_config etcd;
	char *election, *id, *lease_namespace, *lease_name, *kubeconfig, *context;
	char metrics_addr[128]; /* "" = not served */
	struct kha_elect_timers timers;
	uint64_t grace_us;
	uint64_t restart_delay_us, restart_delay_max_us;
	enum kha_elect_restart restart;
	bool leader, observe, status, json;
	enum kha_log_level level;
	enum kha_log_format format;
};

#define CALL(n, a, v, h)     CMD_OPT_CALL_ENTRY(n, a, v, h)
#define TYPED(k, n, a, f, h) CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, f, h)
#define DUR(n, f, h)	     TYPED(CMD_OPT_DURATION, n, "DURATION", f, h)
#define INCLUDE(k, table)                   \
	{                                   \
		.kind = k, .include = table \
	}

static const struct cmd_opt election_option[] = {
	TYPED(CMD_OPT_STRDUP, "election", "NAME", election,
	      "election name (etcd key prefix NAME/; required on etcd)"),
	{},
};

/* what only a campaign uses: `status`, --leader and --observe take them and ignore them */
static const struct cmd_opt campaign_options[] = {
	CALL("id", "ID", OPT_ID,
	     "our identity and proposal (default: the host name;\nwith a Lease: HOSTNAME_<random>)"),
	CALL("ttl", "DURATION", OPT_TTL,
	     "lease TTL (default 10s; Lease: leaseDurationSeconds,\ndefault 15s; alias "
	     "--lease-duration)"),
	CALL("lease-duration", "DURATION", OPT_TTL, NULL),
	DUR("renew-deadline", timers.renew_deadline_us,
	    "stop COMMAND when no renewal succeeded for this long\n(default TTL*2/3; Lease: 10s)"),
	DUR("retry-period", timers.retry_period_us, "Lease: renew/acquire period (default 2s)"),
	TYPED(CMD_OPT_DURATION0, "grace", "DURATION", grace_us,
	      "SIGTERM -> SIGKILL when stopping COMMAND (default 5s)"),
	CALL("restart", "no|on-failure|always", OPT_RESTART,
	     "when COMMAND exits by itself (default no: resign\nand exit with its status)"),
	DUR("restart-delay", restart_delay_us, "first restart back-off, doubling (default 1s)"),
	DUR("restart-delay-max", restart_delay_max_us, "back-off cap (default 30s)"),
	TYPED(CMD_OPT_BOOL, "leader", NULL, leader,
	      "print the current leader and exit (0: a leader, 1: none)"),
	TYPED(CMD_OPT_BOOL, "observe", NULL, observe,
	      "print the leader and every change until interrupted"),
	{},
};

static const struct cmd_opt kube_options[] = {
	TYPED(CMD_OPT_STRDUP, "lease-namespace", "NS", lease_namespace,
	      "Kubernetes Lease backend: namespace (default: the\nkubeconfig context's)"),
	TYPED(CMD_OPT_STRDUP, "lease-name", "NAME", lease_name,
	      "Kubernetes Lease backend: Lease name"),
	TYPED(CMD_OPT_STRDUP, "kubeconfig", "FILE", kubeconfig,
	      "(default $KUBECONFIG, then in-cluster)"),
	TYPED(CMD_OPT_STRDUP, "context", "NAME", context, "kubeconfig context"),
	{},
};

static const struct cmd_opt daemon_options[] = {
	{CMD_OPT_ADDR, "metrics-addr", 0, "ADDR",
	 "serve /metrics (Prometheus), /healthz, /readyz\n(e.g. 127.0.0.1:9464; off by default)", 0,
	 offsetof(struct opts, metrics_addr), sizeof(((struct opts *)0)->metrics_addr), NULL},
	CMD_OPTS_LOG(struct opts, level, format),
	{},
};

static const struct cmd_opt options[] = {
	{.kind = CMD_OPT_STOP_AT_OPERAND},
	INCLUDE(CMD_OPT_INCLUDE, election_option),
	INCLUDE(CMD_OPT_INCLUDE, campaign_options),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json, "--leader/--observe format (JSON: docs/elect.md)"),
	INCLUDE(CMD_OPT_INCLUDE, kube_options),
	INCLUDE(CMD_OPT_INCLUDE, daemon_options),
	CMD_OPT_CONFIG_ENTRY,
	CMD_OPT_INCLUDE_ETCD(struct opts, etcd),
	CMD_OPT_HELP_ENTRY,
	{},
};

/* `kha elect status`: the same flags (one --config serves both), the readers' in the help */
static const struct cmd_opt status_options[] = {
	INCLUDE(CMD_OPT_INCLUDE, election_option),
	INCLUDE(CMD_OPT_INCLUDE, kube_options),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json,
			     "format (JSON: docs/elect.md; an error is a JSON\ndocument too)"),
	CMD_OPT_INCLUDE_ETCD(struct opts, etcd),
	CMD_OPT_CONFIG_ENTRY,
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, campaign_options),
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, daemon_options),
	CMD_OPT_HELP_ENTRY,
	{},
};

#undef CALL
#undef TYPED
#undef DUR
#undef INCLUDE

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha elect --election NAME [--id ID] [flags] -- COMMAND [ARGS...]\n"
		"       kha elect status --election NAME [-o table|json]\n"
		"       kha elect --leader --election NAME [-o table|json]\n"
		"       kha elect --observe --election NAME [-o table|json]\n\n"
		"Runs COMMAND only while this process leads election NAME. On etcd the election\n"
		"is etcd's own (clientv3/concurrency, what `etcdctl elect NAME` uses), so kha and\n"
		"etcdctl contend in one election. With --lease-name it is a Kubernetes Lease with\n"
		"client-go's leader-election rules instead (shared with kube-controller-manager\n"
		"style processes).\n\n"
		"Fencing: the lease is renewed every TTL/3; when no renewal succeeded for the renew\n"
		"deadline, COMMAND gets SIGTERM (SIGKILL after --grace, or earlier so that it is gone\n"
		"before the lease can expire). COMMAND gets KHA_FENCING_TOKEN (etcd: the create\n"
		"revision of our key; Lease: leaseTransitions), KHA_ELECTION and KHA_ID, runs in its\n"
		"own process group and is killed if kha dies. On SIGTERM/SIGINT kha stops COMMAND\n"
		"and resigns, so a standby takes over at once; SIGHUP is passed on to COMMAND and\n"
		"reloads kha's own --config (restart policy, logs).\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\nExit codes: COMMAND's status when it ends by itself (128+N when killed by signal\n"
		"N), 0 after SIGTERM/SIGINT, 64 usage, 69 etcd / API server unreachable at start,\n"
		"78 unusable TLS files or kubeconfig, 65 not an etcd gateway; --leader: 0 or 1.\n\n"
		"Examples:\n"
		"  kha elect --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379 --cacert ca.crt \\\n"
		"      --cert c.crt --key c.key --election scheduler --id master-1 --ttl 10s \\\n"
		"      -- /usr/local/bin/kube-scheduler --config /etc/kubernetes/scheduler.yaml\n"
		"  kha elect status --election scheduler --endpoints https://10.0.0.1:2379 ...\n"
		"  kha elect --kubeconfig admin.conf --lease-namespace kube-system \\\n"
		"      --lease-name my-controller --id master-1 -- my-controller\n");
}

static void usage_status(FILE *out)
{
	fprintf(out,
		"Usage: kha elect status --election NAME [-o table|json] [etcd flags]\n"
		"       kha elect status --lease-name NAME [--lease-namespace NS] [-o table|json]\n\n"
		"Who leads the election and who waits: on etcd, every candidate in queue order\n"
		"(the lowest create revision leads), with its id, fencing token (the create\n"
		"revision of its key), lease and remaining TTL; with a Kubernetes Lease, the\n"
		"holder, its fencing token (leaseTransitions), lease duration and last renewal\n"
		"(a Lease has no queue). Reads only.\n\n"
		"Flags:\n");
	cmd_opts_help(out, status_options);
	fprintf(out,
		"\nExit codes: 0 a leader, 1 no leader, 69 etcd / API server unreachable, 78\n"
		"unusable TLS files or kubeconfig, 64 usage.\n\n"
		"Example:\n"
		"  kha elect status --election scheduler --endpoints https://10.0.0.1:2379 \\\n"
		"      --cacert ca.crt --cert c.crt --key c.key -o json\n");
}

static void opts_release(struct opts *o)
{
	kha_etcd_config_release(&o->etcd);
	free(o->election);
	free(o->id);
	free(o->lease_namespace);
	free(o->lease_name);
	free(o->kubeconfig);
	free(o->context);
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;

	switch (val) {
	case OPT_ID:
		if (!arg[0])
			return kha_diag_set(d, EINVAL, "the id is empty");
		return kha_opt_set_str(&o->id, arg, d);
	case OPT_TTL: /* and its alias --lease-duration (messages name --ttl, the first) */
		return kha_opt_set_duration(&o->timers.ttl_us, arg, false, d);
	default: /* OPT_RESTART */
		if (kha_elect_restart_parse(arg, &o->restart) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not no, on-failure or always", arg);
		return 0;
	}
}

/* ---- --leader / --observe ------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static json_t *leader_json(const struct kha_elect_leader *l)
{
	char lease[32];

	if (!l->present)
		return json_null();
	snprintf(lease, sizeof(lease), "%" PRIx64, (uint64_t)l->lease);
	return json_pack("{s:s,s:s,s:I,s:s,s:I}", "id", l->id, "key", l->key, "fencing_token",
			 (json_int_t)l->token, "lease", lease, "ttl_seconds", (json_int_t)l->ttl_s);
}

static void print_json_line(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
	fflush(stdout);
}

static void print_leader(const struct opts *o, const struct kha_elect_leader *l)
{
	if (o->json) {
		json_t *j = json_pack("{s:s,s:o}", "election",
				      o->lease_name ? o->lease_name : o->election, "leader",
				      leader_json(l));

		print_json_line(j);
		return;
	}
	if (!l->present) {
		printf("no leader\n");
		return;
	}
	printf("%-24s %-10s %-18s %-6s %s\n", "LEADER", "TOKEN", "LEASE", "TTL", "KEY");
	{
		char lease[32], ttl[16];

		snprintf(lease, sizeof(lease), "%" PRIx64, (uint64_t)l->lease);
		snprintf(ttl, sizeof(ttl), l->ttl_s >= 0 ? "%" PRId64 "s" : "-", l->ttl_s);
		printf("%-24s %-10" PRId64 " %-18s %-6s %s\n", KHA_TERM(l->id), l->token,
		       l->lease ? lease : "-", ttl, KHA_TERM(l->key));
	}
}

struct observer {
	const struct opts *o;
};

static int on_change(void *userdata, const struct kha_elect_leader *l)
{
	struct observer *ob = userdata;
	char ts[KHA_KUBE_MICROTIME_SIZE];

	kha_kube_microtime_format(ts, sizeof(ts), (int64_t)kha_wall_us());
	if (ob->o->json) {
		json_t *j = json_pack("{s:s,s:s,s:o}", "time", ts, "election",
				      ob->o->lease_name ? ob->o->lease_name : ob->o->election,
				      "leader", leader_json(l));

		print_json_line(j);
		return 0;
	}
	if (l->present)
		printf("%s leader=%s fencing_token=%" PRId64 " key=%s\n", ts, KHA_TERM(l->id),
		       l->token, KHA_TERM(l->key));
	else
		printf("%s leader=none\n", ts);
	fflush(stdout);
	return 0;
}

static bool same(const struct kha_elect_leader *a, const struct kha_elect_leader *b)
{
	if (a->present != b->present)
		return false;
	return !a->present || (strcmp(a->id, b->id) == 0 && a->token == b->token);
}

static int kube_read(const struct opts *o, const struct kha_kube_config *kc)
{
	kha_auto(kha_kube_client_freep) struct kha_kube_client *c = NULL;
	struct kha_elect_leader last = {.present = false};
	struct observer ob = {.o = o};
	struct kha_diag d = {};
	const char *ns = o->lease_namespace ? o->lease_namespace : kc->namespace;
	bool first = true;
	int r;

	r = kha_kube_client_new(kc, &c, &d);
	if (r < 0) {
		fprintf(stderr, "kha elect: %s\n", d.msg);
		return KHA_EXIT_CONFIG;
	}
	kha_kube_client_set_timeouts(c, 0, 10 * KHA_USEC_PER_SEC);
	catch_signals();
	while (!interrupted) {
		struct kha_elect_leader l;

		kha_diag_clear(&d);
		r = kha_elect_kube_leader_get(c, ns, o->lease_name, &l, &d);
		if (r < 0 && first) {
			fprintf(stderr, "kha elect: %s\n", d.msg);
			if (o->json)
				cmd_print_json_error("kha elect", kha_exit_from_errno(r), d.msg);
			return kha_exit_from_errno(r);
		}
		if (r == 0 && o->leader) {
			print_leader(o, &l);
			r = l.present ? KHA_EXIT_OK : KHA_EXIT_DEGRADED;
			kha_elect_leader_release(&l);
			return r;
		}
		if (r == 0 && (first || !same(&l, &last))) {
			kha_elect_leader_release(&last);
			last = l;
			on_change(&ob, &last);
		} else if (r == 0) {
			kha_elect_leader_release(&l);
		}
		first = false;
		(void)kha_sleep_us(o->timers.retry_period_us ? o->timers.retry_period_us
							     : KHA_USEC_PER_SEC,
				   &interrupted);
	}
	kha_elect_leader_release(&last);
	return KHA_EXIT_OK;
}

/* kha elect status on etcd: the leader, then every candidate in queue order. */
static int etcd_status(const struct opts *o, struct kha_etcd *c)
{
	struct kha_lock_status st = {0};
	struct kha_diag d = {};
	int r;

	r = kha_lock_status_get(c, o->election, 1, &st, &d);
	if (r < 0) {
		fprintf(stderr, "kha elect status: %s\n", d.msg);
		if (o->json)
			cmd_print_json_error("kha elect status", kha_exit_from_errno(r), d.msg);
		return kha_exit_from_errno(r);
	}
	if (o->json) {
		json_t *arr = kha_lock_status_json(&st);
		json_t *leader = st.n && st.entries[0].holder ? kha_lock_entry_json(&st.entries[0])
							      : json_null();
		json_t *root = arr && leader
				       ? json_pack("{s:s,s:I,s:O,s:o}", "election", o->election,
						   "revision", (json_int_t)st.revision, "leader",
						   leader, "candidates", arr)
				       : NULL;

		json_decref(leader);
		r = cmd_print_json(root);
	} else {
		if (st.n && st.entries[0].holder)
			printf("election %s: leader %s, fencing token %" PRId64 ", %zu waiting\n\n",
			       o->election, st.entries[0].id, st.entries[0].create_revision,
			       st.n - 1);
		else
			printf("election %s: no leader\n\n", o->election);
		kha_lock_status_print(stdout, &st, (int64_t)kha_wall_us());
		r = 0;
	}
	r = r < 0			   ? kha_exit_from_errno(r)
	    : st.n && st.entries[0].holder ? KHA_EXIT_OK
					   : KHA_EXIT_DEGRADED;
	kha_lock_status_release(&st);
	return r;
}

static int etcd_read(const struct opts *o)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct observer ob = {.o = o};
	struct kha_diag d = {};
	int r;

	r = kha_etcd_new(&o->etcd, &c, &d);
	if (r < 0) {
		fprintf(stderr, "kha elect: %s\n", d.msg);
		if (o->json)
			cmd_print_json_error("kha elect", kha_exit_from_errno(r), d.msg);
		return kha_exit_from_errno(r);
	}
	if (o->status)
		return etcd_status(o, c);
	if (o->leader) {
		struct kha_elect_leader l;

		r = kha_elect_leader_get(c, o->election, &l, &d);
		if (r < 0) {
			fprintf(stderr, "kha elect: %s\n", d.msg);
			if (o->json)
				cmd_print_json_error("kha elect", kha_exit_from_errno(r), d.msg);
			return kha_exit_from_errno(r);
		}
		print_leader(o, &l);
		r = l.present ? KHA_EXIT_OK : KHA_EXIT_DEGRADED;
		kha_elect_leader_release(&l);
		return r;
	}
	catch_signals();
	r = kha_elect_observe(c, o->election, &interrupted, on_change, &ob, &d);
	if (r < 0) {
		fprintf(stderr, "kha elect: %s\n", d.msg);
		return kha_exit_from_errno(r);
	}
	return KHA_EXIT_OK;
}

/* ---- main ----------------------------------------------------------------------------------- */

static char *default_id(bool kube)
{
	char host[256] = "localhost";
	char *id = NULL;

	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	if (!kube)
		return strdup(host);
	/* client-go style: a restarted process is a new candidate */
	srandom((unsigned)(kha_now_us() ^ (uint64_t)getpid()));
	if (asprintf(&id, "%s_%08lx", host, (unsigned long)random()) < 0)
		return NULL;
	return id;
}

/* What a SIGHUP reads again: the same sources, through the same option handler. */
struct reload_ctx {
	struct kha_args_source src;
	const struct opts *running;
};

static bool same_str(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static int reload(void *userdata, struct kha_elect_reloaded *ret, struct kha_diag *d)
{
	const struct reload_ctx *rc = userdata;
	const struct opts *run = rc->running;
	struct opts o = {.restart = run->restart,
			 .restart_delay_us = run->restart_delay_us,
			 .restart_delay_max_us = run->restart_delay_max_us,
			 .level = KHA_LOG_INFO,
			 .format = KHA_LOG_LOGFMT};
	char kept[128] = "";
	int r = -EINVAL;

	if (kha_etcd_config_init(&o.etcd) < 0 || kha_etcd_config_from_env(&o.etcd, d) < 0 ||
	    cmd_opts_reapply(options, apply, &o, &rc->src, d) != 0)
		goto out;
	if (!same_str(o.election, run->election) || !same_str(o.lease_name, run->lease_name))
		snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), " election");
	if (o.id && !same_str(o.id, run->id))
		snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), " id");
	if ((o.timers.ttl_us && o.timers.ttl_us != run->timers.ttl_us) ||
	    (o.timers.renew_deadline_us &&
	     o.timers.renew_deadline_us != run->timers.renew_deadline_us))
		snprintf(kept + strlen(kept), sizeof(kept) - strlen(kept), " ttl");
	if (kept[0])
		kha_warn("configuration keys not applied until a restart", "keys=%s",
			 KHA_LOGQ(kept + 1));
	kha_log_setup(o.level, o.format);
	ret->restart = o.restart;
	ret->backoff_initial_us = o.restart_delay_us;
	ret->backoff_max_us = o.restart_delay_max_us;
	r = 0;
out:
	opts_release(&o);
	return r;
}

/*
 * What the flags must say together, and the timers derived from --ttl. Returns 0, or
 * KHA_EXIT_USAGE after printing why.
 */
static int check_flags(struct opts *o, bool kube, int argc, char **argv)
{
	struct kha_diag d = {};

#define USAGE(...)                                              \
	do {                                                    \
		fprintf(stderr, "kha elect: " __VA_ARGS__);     \
		fprintf(stderr, " (run 'kha elect --help')\n"); \
		return KHA_EXIT_USAGE;                          \
	} while (0)

	if (o->leader && o->observe)
		USAGE("%s", o->status ? "status and --observe exclude each other"
				      : "--leader and --observe exclude each other");
	if (!kube && (!o->election || !o->election[0]))
		USAGE("%s",
		      o->election ? "--election: the name is empty" : "--election is required");
	if (kube && o->lease_name[0] == '\0')
		USAGE("--lease-name: the name is empty");
	if (o->leader || o->observe) {
		if (optind < argc)
			USAGE("%s", o->status ? "status takes no COMMAND"
					      : "--leader and --observe take no COMMAND");
	} else if (optind >= argc) {
		USAGE("no COMMAND given: kha elect [flags] -- COMMAND [ARGS...]");
	} else {
		kha_autofree char *path = NULL;

		if (kha_proc_find_program(argv[optind], &path) < 0)
			USAGE("COMMAND '%s' not found or not executable", argv[optind]);
	}
	if (kha_elect_timers_derive(&o->timers, kube, &d) < 0)
		USAGE("%s", d.msg);
#undef USAGE
	return 0;
}

/* Campaigns and runs COMMAND (argv) while leader; returns the exit code. */
static int campaign(struct opts *o, struct kha_kube_config *kc, struct reload_ctx *rc, char **argv)
{
	bool kube = o->lease_name != NULL;
	struct kha_elect_stats stats = {0};
	struct kha_diag d = {};
	int r, status = 0;
	const struct kha_elect_opts eo = {
		.name = kube ? o->lease_name : o->election,
		.id = o->id,
		.slots = 1,
		.ttl_us = o->timers.ttl_us,
		.renew_deadline_us = o->timers.renew_deadline_us,
		.renew_interval_us = kube ? o->timers.retry_period_us : 0,
		.grace_us = o->grace_us,
		.argv = (const char *const *)argv,
		.env_name = "KHA_ELECTION",
		.restart = o->restart,
		.backoff_initial_us = o->restart_delay_us,
		.backoff_max_us = o->restart_delay_max_us,
		.etcd = &o->etcd,
		.kube = kc,
		.lease_namespace =
			kube ? (o->lease_namespace ? o->lease_namespace : kc->namespace) : NULL,
		.lease_name = o->lease_name,
		.stats = &stats,
		.what = "election",
		.reload = reload,
		.reload_userdata = rc,
	};

	r = kha_elect_run_served(&eo, o->metrics_addr[0] ? o->metrics_addr : NULL, "kha_elect",
				 &status, &d);
	if (r < 0) {
		fprintf(stderr, "kha elect: %s\n", d.msg);
		return kha_exit_from_errno(r);
	}
	return status;
}

int cmd_elect_main(int argc, char **argv)
{
	struct opts o = {.restart = KHA_ELECT_RESTART_NO,
			 .level = KHA_LOG_INFO,
			 .format = KHA_LOG_LOGFMT,
			 .grace_us = 5 * KHA_USEC_PER_SEC};
	kha_auto(kha_kube_config_freep) struct kha_kube_config *kc = NULL;
	struct kha_diag d = {};
	struct reload_ctx rc = {.src = {.argc = argc, .argv = argv}, .running = &o};
	const struct cmd_opt *table = options;
	void (*help)(FILE * out) = usage;
	bool kube;
	int r, code;

	if (argc >= 2 && strcmp(argv[1], "status") == 0) {
		/* `status` as etcd, proxy and vip have it: --leader with the queue */
		o.status = o.leader = true;
		table = status_options;
		help = usage_status;
		argc--;
		argv++;
		rc.src.argc = argc;
		rc.src.argv = argv;
	}
	if (kha_etcd_config_init(&o.etcd) < 0)
		return KHA_EXIT_SOFTWARE;
	/* the config file first, so that flags override it (COMMAND's flags stay its own) */
	if (cmd_opts_scan(table, argc, argv, &rc.src.config)) {
		help(stdout);
		opts_release(&o);
		return KHA_EXIT_OK;
	}
	if (kha_etcd_config_from_env(&o.etcd, &d) < 0) {
		fprintf(stderr, "kha elect: %s\n", d.msg);
		opts_release(&o);
		return KHA_EXIT_USAGE;
	}
	code = cmd_opts_reapply(table, apply, &o, &rc.src, &d);
	if (code != 0) {
		fprintf(stderr, "kha elect: %s%s\n", d.msg,
			code == KHA_EXIT_USAGE ? " (run 'kha elect --help')" : "");
		opts_release(&o);
		return code;
	}
	kha_log_setup(o.level, o.format);
	kube = o.lease_name != NULL;
	code = check_flags(&o, kube, argc, argv);
	if (code == 0 && kube) {
		struct kha_kube_load_opts lo = {.kubeconfig = o.kubeconfig, .context = o.context};

		r = kha_kube_config_load(&lo, &kc, &d);
		if (r < 0) {
			fprintf(stderr, "kha elect: %s\n", d.msg);
			code = r == -ENOENT || r == -EACCES || r == -EINVAL ? KHA_EXIT_CONFIG
									    : KHA_EXIT_SOFTWARE;
		}
	}
	if (code == 0 && !o.leader && !o.observe && !o.id) {
		o.id = default_id(kube);
		code = o.id ? 0 : KHA_EXIT_SOFTWARE;
	}
	if (code == 0 && (o.leader || o.observe))
		code = kube ? kube_read(&o, kc) : etcd_read(&o);
	else if (code == 0)
		code = campaign(&o, kc, &rc, argv + optind);
	opts_release(&o);
	return code;
}
