// SPDX-License-Identifier: MIT
/*
 * kha lab: flags, help and printing of the HA design on one machine (lib/lab). Each
 * subcommand is a row of subs[]: its option table (the flags it takes and its help's Flags:
 * lines), its help text and its function.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd-common.h"
#include "cmd-opt.h"
#include "commands.h"
#include "kha/diag.h"
#include "kha/file.h"
#include "kha/lab.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DEFAULT_DIR	   "lab"
#define DEFAULT_TIMEOUT_US (60 * KHA_USEC_PER_SEC)
#define DEFAULT_GRACE_US   (10 * KHA_USEC_PER_SEC)
#define DRILL_READY_US	   (30 * KHA_USEC_PER_SEC)
#define LOG_TAIL_LINES	   20
#define STR(x)		   #x
#define XSTR(x)		   STR(x)

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha lab SUBCOMMAND [--dir DIR] [flags]\n\n"
		"The HA design on this machine, with real processes, in DIR (default ./lab):\n"
		"3 masters, each an etcd member (TLS, client certificates) and a kha elect that\n"
		"runs the scheduled kha etcd backup only while it leads (so exactly one master\n"
		"takes backups); and a node whose kha proxy is the entry point in front of the\n"
		"masters. No kube-apiserver here: the entry fronts the members' etcd client API.\n"
		"Break it, watch it, repair it, measure it.\n\n"
		"Subcommands:\n"
		"  up             create the PKI, start everything, wait until ready\n"
		"  status         every process, health, the entry, the leader (exit 0/1/2)\n"
		"  stop-member    stop a master's processes (SIGTERM; --kill: SIGKILL)\n"
		"  start-member   restart a stopped master on its data\n"
		"  freeze-member  SIGSTOP a master's processes (a hung machine)\n"
		"  thaw-member    SIGCONT them\n"
		"  stop-process   stop one process of a master (kube-apiserver, ...)\n"
		"  stop-host      stop a load balancer (or the node) of a Kubernetes lab\n"
		"  start-host     start it again\n"
		"  wait           wait until the lab is ready\n"
		"  drill          write through the entry while masters are killed and frozen\n"
		"  down           stop exactly what the lab started and remove DIR\n"
		"  exec           run a command inside a host of a Kubernetes lab\n"
		"  kubeconfig     print the admin kubeconfig of an entry of a Kubernetes lab\n\n"
		"Example:\n"
		"  kha lab up && kha lab status\n"
		"  kha lab drill --report drill.json --svg drill.svg\n"
		"  kha lab stop-member --leader --kill && kha lab status; kha lab start-member --all\n"
		"  kha lab down\n\n"
		"Run 'kha lab SUBCOMMAND --help' for its flags. See docs/lab.md.\n");
}

/* "kha lab SUB: MESSAGE (run 'kha lab SUB --help')"; returns 64 */
#define usage_error(sub, ...) cmd_usage_error("lab", sub, __VA_ARGS__)

enum {
	OPT_MEMBERS = 0x100,
	OPT_TIMEOUT,
	OPT_GRACE,
	OPT_KILL,
	OPT_K8S_BIN,
	OPT_LE_LEASE,
	OPT_LE_RENEW,
	OPT_LE_RETRY,
	OPT_LEADER,
	OPT_FOLLOWER,
	OPT_RAFT_LEADER,
	OPT_LEASE_HOLDER,
	OPT_VIP_HOLDER,
	OPT_ALL,
	OPT_RATE,
	OPT_FAULTS,
	OPT_SLO,
	OPT_ROLLING_TIME,
	OPT_WATCH_TIMEOUT,
	OPT_MIN_AVAILABILITY,
	OPT_BASELINE,
	OPT_PERIOD,
	OPT_DOWN,
};

/* the subcommands of one row of subs[] that share a function */
enum op { OP_NONE, OP_STOP, OP_START, OP_FREEZE, OP_THAW };

/* how a fault command picks its master or host */
enum pick {
	PICK_NAME = -1, /* an operand names it */
	PICK_LEADER = KHA_LAB_PICK_LEADER,
	PICK_FOLLOWER = KHA_LAB_PICK_FOLLOWER,
	PICK_RAFT_LEADER = KHA_LAB_PICK_RAFT_LEADER,
	PICK_ALL,	   /* --all: every master or host that needs it */
	PICK_LEASE_HOLDER, /* --lease-holder COMPONENT */
	PICK_VIP_HOLDER,   /* --vip-holder */
};

struct sub;

/* The flags of every subcommand (each takes its own; the defaults are set in cmd_lab_main). */
struct opts {
	const struct sub *sub;
	const char *dir; /* NULL until parsed: not given */
	bool dir_given;	 /* the hints repeat --dir then */
	bool json;
	uint64_t timeout_us, grace_us;
	bool kill;
	enum pick pick;
	const char *component; /* --lease-holder */
	/* up */
	struct kha_lab_up_opts up;
	bool kubernetes;
	const char *le_flag; /* a --leader-elect-* flag given */
	/* drill */
	struct kha_lab_drill_opts drill;
	struct kha_lab_k8s_drill_opts k8s_drill;
	const char *report, *svg;
	bool details;
	/* kubeconfig */
	const char *entry;
};

struct sub {
	const char *name;
	const struct cmd_opt *options; /* its flags (and its help's) */
	/* what it parses, when it takes a sibling's flags too to refuse them by name (NULL:
	 * options) */
	const struct cmd_opt *parse;
	const char *synopsis; /* the help before its flags */
	const char *epilog;   /* the help after them: exit codes, examples */
	int (*run)(struct opts *o, int argc, char **argv);
	enum op op;
};

/* ---- flags -------------------------------------------------------------------------------- */

#define CALL(n, a, v, h)                                                       \
	{                                                                      \
		.kind = CMD_OPT_CALL, .name = n, .arg = a, .help = h, .val = v \
	}
#define TYPED(k, n, a, field, h) CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, field, h)
#define INCLUDE(t)                                    \
	{                                             \
		.kind = CMD_OPT_INCLUDE, .include = t \
	}
#define INCLUDE_HIDDEN(t)                                    \
	{                                                    \
		.kind = CMD_OPT_INCLUDE_HIDDEN, .include = t \
	}

/* what every subcommand takes */
static const struct cmd_opt common_options[] = {
	TYPED(CMD_OPT_STRING, "dir", "DIR", dir, "lab directory (default ./lab)"),
	{},
};
#define F_COMMON INCLUDE(common_options)
#define F_OUTPUT                                                             \
	CMD_OPT_OUTPUT_ENTRY(struct opts, json,                              \
			     "table (default) or json (an error is a JSON\n" \
			     "document too)")
#define F_GRACE CALL("grace", "D", OPT_GRACE, "SIGKILL after this long (default 10s)")
#define F_KILL	CALL("kill", NULL, OPT_KILL, "SIGKILL at once, like a power cut")
#define F_PICKS                                                                              \
	CALL("leader", NULL, OPT_LEADER, "the master whose kha elect leads the backups"),    \
		CALL("follower", NULL, OPT_FOLLOWER, "a running master that does not lead"), \
		CALL("raft-leader", NULL, OPT_RAFT_LEADER,                                   \
		     "the master whose etcd member is the Raft leader")
#define F_TIMEOUT(h) CALL("timeout", "D", OPT_TIMEOUT, h)

static const struct cmd_opt up_options[] = {
	F_COMMON,
	CALL("members", "N", OPT_MEMBERS,
	     "masters (etcd members), 1 to " XSTR(KHA_LAB_MAX_MASTERS) " (default 3)"),
	F_TIMEOUT("how long to wait until ready (default 60s)"),
	TYPED(CMD_OPT_STRING, "etcd", "PATH", up.etcd_bin, "etcd binary (default: etcd on PATH)"),
	TYPED(CMD_OPT_STRING, "kha", "PATH", up.kha_bin,
	      "kha binary for the companions (default: this one)"),
	TYPED(CMD_OPT_BOOL, "no-proxy", NULL, up.no_proxy, "no node entry point (no kha proxy)"),
	TYPED(CMD_OPT_BOOL, "no-elect", NULL, up.no_elect,
	      "no kha elect and no backups on the masters"),
	TYPED(CMD_OPT_BOOL, "kubernetes", NULL, kubernetes,
	      "the real control plane, each host a network namespace\n(root)"),
	CALL("k8s-bin", "DIR", OPT_K8S_BIN,
	     "its programs (implies --kubernetes; default\n$KHA_K8S_BIN)"),
	CALL("leader-elect-lease-duration", "D", OPT_LE_LEASE,
	     "kube-controller-manager's and kube-scheduler's\n(default 15s)"),
	CALL("leader-elect-renew-deadline", "D", OPT_LE_RENEW, "theirs too (default 10s)"),
	CALL("leader-elect-retry-period", "D", OPT_LE_RETRY, "theirs too (default 2s)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt status_options[] = {F_COMMON, F_OUTPUT, CMD_OPT_HELP_ENTRY, {}};

static const struct cmd_opt stop_member_options[] = {F_COMMON,		 F_PICKS, F_GRACE, F_KILL,
						     CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt start_member_options[] = {
	F_COMMON,
	CALL("all", NULL, OPT_ALL, "every master that has a stopped process"),
	F_TIMEOUT("how long to wait for its etcd to answer\n(default 60s)"),
	CMD_OPT_HELP_ENTRY,
	{},
};
static const struct cmd_opt freeze_member_options[] = {F_COMMON, F_PICKS, CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt thaw_member_options[] = {
	F_COMMON,
	CALL("all", NULL, OPT_ALL, "every frozen master"),
	CMD_OPT_HELP_ENTRY,
	{},
};
/* what the member subcommands parse: each other's flags too, refused by name */
static const struct cmd_opt member_options[] = {
	INCLUDE(stop_member_options),
	INCLUDE_HIDDEN(start_member_options),
	{},
};

static const struct cmd_opt stop_process_options[] = {
	F_COMMON,
	F_PICKS,
	CALL("lease-holder", "COMPONENT", OPT_LEASE_HOLDER,
	     "the master whose COMPONENT holds its Lease in\nkube-system (and PROCESS is "
	     "COMPONENT)"),
	F_GRACE,
	F_KILL,
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt stop_host_options[] = {
	F_COMMON,
	CALL("vip-holder", NULL, OPT_VIP_HOLDER, "the load balancer holding the VIP"),
	F_GRACE,
	F_KILL,
	CMD_OPT_HELP_ENTRY,
	{},
};
static const struct cmd_opt start_host_options[] = {
	F_COMMON,
	CALL("all", NULL, OPT_ALL, "every load balancer and the node"),
	CMD_OPT_HELP_ENTRY,
	{},
};
static const struct cmd_opt host_options[] = {
	INCLUDE(stop_host_options),
	INCLUDE_HIDDEN(start_host_options),
	{},
};

static const struct cmd_opt wait_options[] = {
	F_COMMON,
	F_TIMEOUT("how long to wait (default 60s)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt drill_options[] = {
	F_COMMON,
	TYPED(CMD_OPT_STRING, "report", "FILE", report,
	      "JSON report (schema kha.lab.drill/v1, docs/lab.md)"),
	TYPED(CMD_OPT_STRING, "svg", "FILE", svg,
	      "SVG timeline of the writes and the faults (a\nKubernetes lab: also FILE-vip.svg)"),
	CALL("rate", "N", OPT_RATE, "requests per second, 1 to 1000 (default 50;\nKubernetes: 20)"),
	CALL("min-availability", "PCT", OPT_MIN_AVAILABILITY,
	     "floor for the entry's availability (default 90)"),
	TYPED(CMD_OPT_BOOL, "details", NULL, details,
	      "also print lib/drill's summary (latency, phases)"),
	CALL("baseline", "D", OPT_BASELINE,
	     "steady writes before the first fault (4s;\nKubernetes: 5s)"),
	CALL("period", "D", OPT_PERIOD, "from one fault to the next (18s; Kubernetes: 40s)"),
	CALL("down", "D", OPT_DOWN, "from a fault to its recovery (6s; Kubernetes: 8s)"),
	CALL("faults", "LIST", OPT_FAULTS, "Kubernetes: the faults to run (default all)"),
	CALL("rolling-time", "D", OPT_ROLLING_TIME,
	     "Kubernetes: time given to the rolling restart\n(default 150s)"),
	CALL("slo", "PCT", OPT_SLO, "Kubernetes: availability per entry and fault\n(default 90)"),
	CALL("watch-timeout", "D", OPT_WATCH_TIMEOUT,
	     "Kubernetes: the watches' timeoutSeconds (default 60s)"),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json,
			     "json: the JSON report on stdout instead of the\n"
			     "summary"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt down_options[] = {
	F_COMMON,
	F_GRACE,
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt exec_options[] = {
	{.kind = CMD_OPT_STOP_AT_OPERAND}, /* COMMAND's flags are its own */
	F_COMMON,
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt kubeconfig_options[] = {
	F_COMMON,
	TYPED(CMD_OPT_STRING, "entry", "node|vip|mN", entry, "which entry (default node)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

/* The name of the flag that applies val, for the messages ("--rate"). */
static const char *flag_name(const struct cmd_opt *t, int val)
{
	for (; t->kind != CMD_OPT_END; t++) {
		const char *n = NULL;

		if (t->kind == CMD_OPT_INCLUDE || t->kind == CMD_OPT_INCLUDE_HIDDEN)
			n = flag_name(t->include, val);
		else if (t->kind == CMD_OPT_CALL && t->val == val)
			n = t->name;
		if (n)
			return n;
	}
	return NULL;
}

/* the flags any subcommand takes, to name one */
static const struct cmd_opt all_calls[] = {
	INCLUDE_HIDDEN(up_options),	      INCLUDE_HIDDEN(member_options),
	INCLUDE_HIDDEN(stop_process_options), INCLUDE_HIDDEN(host_options),
	INCLUDE_HIDDEN(drill_options),	      {},
};

static int set_duration(uint64_t *dst, int val, const char *arg, struct kha_diag *d)
{
	if (kha_parse_duration_us(arg, dst) < 0)
		return kha_diag_set(d, EINVAL, "--%s '%s': expected a duration like 500ms, 30s, 1m",
				    flag_name(all_calls, val), arg);
	return 0;
}

/* a duration from min_us to max_us (text: "1s to 1h"), into dst and dst2 (if not NULL) */
static int set_range(uint64_t *dst, uint64_t *dst2, int val, const char *arg, uint64_t min_us,
		     uint64_t max_us, const char *text, struct kha_diag *d)
{
	uint64_t v;
	int r = set_duration(&v, val, arg, d);

	if (r < 0)
		return r;
	if (v < min_us || v > max_us)
		return kha_diag_set(d, EINVAL, "'%s': expected %s", arg, text);
	*dst = v;
	if (dst2)
		*dst2 = v;
	return 0;
}

static int set_percent(double *dst, int val, const char *arg, struct kha_diag *d)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 0 && v <= 100))
		return kha_diag_set(d, EINVAL, "--%s '%s': expected a percentage from 0 to 100",
				    flag_name(all_calls, val), arg);
	*dst = v;
	return 0;
}

/* --members, --k8s-bin, --leader-elect-* */
static int apply_up(struct opts *o, int val, const char *arg, struct kha_diag *d)
{
	struct kha_lab_leader_elect *le = &o->up.leader_elect;
	uint64_t v, *dst;
	int r;

	switch (val) {
	case OPT_MEMBERS:
		if (kha_parse_u64(arg, 1, KHA_LAB_MAX_MASTERS, &v) < 0)
			return kha_diag_set(d, EINVAL,
					    "--members '%s': expected 1 to %d (3 or 5 for a real "
					    "quorum)",
					    arg, KHA_LAB_MAX_MASTERS);
		o->up.members = (unsigned)v;
		return 0;
	case OPT_K8S_BIN:
		o->kubernetes = true;
		o->up.k8s_bin = arg;
		return 0;
	}
	dst = val == OPT_LE_LEASE   ? &le->lease_duration_us
	      : val == OPT_LE_RENEW ? &le->renew_deadline_us
				    : &le->retry_period_us;
	r = set_duration(dst, val, arg, d);
	if (r < 0)
		return r;
	if (!*dst)
		return kha_diag_set(d, EINVAL, "--%s '%s': must be above 0",
				    flag_name(all_calls, val), arg);
	o->le_flag = val == OPT_LE_LEASE   ? "--leader-elect-lease-duration"
		     : val == OPT_LE_RENEW ? "--leader-elect-renew-deadline"
					   : "--leader-elect-retry-period";
	return 0;
}

/* --rate, --faults, --slo, --min-availability and the drill's durations */
static int apply_drill(struct opts *o, int val, const char *arg, struct kha_diag *d)
{
	struct kha_lab_drill_opts *e = &o->drill;
	struct kha_lab_k8s_drill_opts *k = &o->k8s_drill;
	uint64_t v;

	switch (val) {
	case OPT_RATE:
		if (kha_parse_u64(arg, 1, 1000, &v) < 0)
			return kha_diag_set(d, EINVAL,
					    "--rate '%s': expected 1 to 1000 writes per second",
					    arg);
		e->rate = k->rate = (uint32_t)v;
		return 0;
	case OPT_FAULTS:
		if (kha_lab_k8s_fault_parse(arg, &k->faults) < 0)
			return kha_diag_set(d, EINVAL,
					    "--faults '%s': expected a comma list of kill-master, "
					    "freeze-master, stop-apiserver, kill-cm-leader, "
					    "kill-etcd-leader, kill-lb, rolling (or all)",
					    arg);
		return 0;
	case OPT_SLO:
		return set_percent(&k->slo, val, arg, d);
	case OPT_MIN_AVAILABILITY:
		return set_percent(&e->min_availability, val, arg, d);
	case OPT_ROLLING_TIME:
		return set_range(&k->rolling_us, NULL, val, arg, KHA_USEC_PER_SEC,
				 3600 * KHA_USEC_PER_SEC, "1s to 1h", d);
	case OPT_WATCH_TIMEOUT:
		return set_range(&k->watch_timeout_us, NULL, val, arg, KHA_USEC_PER_SEC,
				 3600 * KHA_USEC_PER_SEC, "1s to 1h", d);
	case OPT_BASELINE:
		return set_range(&e->baseline_us, &k->baseline_us, val, arg, KHA_USEC_PER_SEC,
				 600 * KHA_USEC_PER_SEC, "1s to 10m", d);
	case OPT_PERIOD:
		return set_range(&e->period_us, &k->period_us, val, arg, KHA_USEC_PER_SEC,
				 600 * KHA_USEC_PER_SEC, "1s to 10m", d);
	default: /* OPT_DOWN */
		return set_range(&e->down_us, &k->down_us, val, arg, KHA_USEC_PER_SEC,
				 600 * KHA_USEC_PER_SEC, "1s to 10m", d);
	}
}

/* whether the member or host flag val applies to o's subcommand: 0, or why not */
static int flag_applies(const struct opts *o, int val, struct kha_diag *d)
{
	const char *sub = o->sub->name;
	bool host = strstr(sub, "-host") != NULL, process = strcmp(sub, "stop-process") == 0;
	enum op op = o->sub->op;

	switch (val) {
	case OPT_GRACE:
	case OPT_KILL:
	case OPT_VIP_HOLDER:
		if (host && op != OP_STOP)
			return kha_diag_set(d, EINVAL, "that is a flag of stop-host");
		if (!host && !process && op != OP_STOP && val != OPT_VIP_HOLDER)
			return kha_diag_set(d, EINVAL, "--%s is a flag of stop-member",
					    val == OPT_KILL ? "kill" : "grace");
		return 0;
	case OPT_TIMEOUT:
		if (op != OP_NONE && op != OP_START)
			return kha_diag_set(d, EINVAL, "--timeout is a flag of start-member");
		return 0;
	case OPT_ALL:
		if (op == OP_STOP || op == OP_FREEZE)
			return kha_diag_set(d, EINVAL, "--all: not for %s%s", sub,
					    host ? "" : " (use 'kha lab down')");
		return 0;
	case OPT_LEADER:
	case OPT_FOLLOWER:
	case OPT_RAFT_LEADER:
		if (op == OP_START || op == OP_THAW)
			return kha_diag_set(d, EINVAL, "--%s: name the master, or --all",
					    flag_name(all_calls, val));
		return 0;
	}
	return 0;
}

/* --leader, --follower, --raft-leader, --lease-holder, --vip-holder, --all: one at most */
static int set_pick(struct opts *o, int val, const char *arg, struct kha_diag *d)
{
	if (o->pick != PICK_NAME && o->pick != PICK_ALL && val != OPT_ALL && val != OPT_VIP_HOLDER)
		return kha_diag_set(d, EINVAL, "give one of %s",
				    strcmp(o->sub->name, "stop-process") == 0
					    ? "MASTER, --leader, --follower, --raft-leader, "
					      "--lease-holder"
					    : "NAME, --leader, --follower, --raft-leader");
	o->pick = val == OPT_LEADER	    ? PICK_LEADER
		  : val == OPT_FOLLOWER	    ? PICK_FOLLOWER
		  : val == OPT_RAFT_LEADER  ? PICK_RAFT_LEADER
		  : val == OPT_LEASE_HOLDER ? PICK_LEASE_HOLDER
		  : val == OPT_VIP_HOLDER   ? PICK_VIP_HOLDER
					    : PICK_ALL;
	if (val == OPT_LEASE_HOLDER)
		o->component = arg;
	return 0;
}

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;
	int r;

	if (val == OPT_MEMBERS || val == OPT_K8S_BIN || val == OPT_LE_LEASE ||
	    val == OPT_LE_RENEW || val == OPT_LE_RETRY)
		return apply_up(o, val, arg, d);
	if (val >= OPT_RATE)
		return apply_drill(o, val, arg, d);
	r = flag_applies(o, val, d);
	if (r < 0)
		return r;
	switch (val) {
	case OPT_TIMEOUT:
		return set_duration(&o->timeout_us, val, arg, d);
	case OPT_GRACE:
		return set_duration(&o->grace_us, val, arg, d);
	case OPT_KILL:
		o->kill = true;
		return 0;
	default: /* a pick */
		return set_pick(o, val, arg, d);
	}
}

/* ---- shared ------------------------------------------------------------------------------- */

/* Maps a lab error to an exit code and prints the one line. */
static int fail(const char *sub, int err, const struct kha_diag *d)
{
	int code;

	switch (-err) {
	case EINVAL:
	case EEXIST:
	case ENOTEMPTY:
		code = KHA_EXIT_USAGE;
		break;
	case ENOENT:
	case ETIMEDOUT:
	case ECHILD:
		code = KHA_EXIT_UNAVAILABLE;
		break;
	case EBUSY:
		code = KHA_EXIT_SOFTWARE;
		break;
	default:
		code = kha_exit_from_errno(err);
	}
	fprintf(stderr, "kha lab %s: %s\n", sub, d->msg[0] ? d->msg : strerror(-err));
	return code;
}

static void print_log_tail(const char *path)
{
	kha_autofree char *tail = kha_lab_log_tail(path, LOG_TAIL_LINES);

	if (!tail)
		return;
	fprintf(stderr, "--- last lines of %s ---\n%s%s--- end of %s ---\n", path,
		*tail ? tail : "(empty)", "\n", path);
}

/* " --dir DIR" when the user gave one, for the hints we print. */
static const char *dir_hint(const struct opts *o, char *buf, size_t size)
{
	if (!o->dir_given)
		return "";
	snprintf(buf, size, " --dir %s", o->dir);
	return buf;
}

static int load(const struct opts *o, bool lock, struct kha_lab **ret)
{
	struct kha_diag d = {0};
	char hint[512], who[64];
	int r = kha_lab_load(o->dir, lock, ret, &d);

	snprintf(who, sizeof(who), "kha lab %s", o->sub->name);
	if (r == -ENOENT)
		return cmd_fail(who, o->json, KHA_EXIT_UNAVAILABLE,
				"no lab in %s (start one with 'kha lab up%s')", o->dir,
				dir_hint(o, hint, sizeof(hint)));
	if (r < 0) {
		int code = fail(o->sub->name, r, &d);

		/* -o json: a document to parse, errors included */
		return o->json ? cmd_print_json_error(who, code, d.msg[0] ? d.msg : strerror(-r))
			       : code;
	}
	return 0;
}

/* the master an operand names: NULL after the usage error */
static struct kha_lab_master *named_master(const struct opts *o, struct kha_lab *lab,
					   const char *name)
{
	struct kha_lab_master *m = NULL;
	struct kha_diag d = {0};

	if (kha_lab_master_named(lab, name, &m, &d) < 0)
		usage_error(o->sub->name, "%s", d.msg);
	return m;
}

/* the master o picks (a name, a role, a Lease's holder): NULL after the error, *code set */
static struct kha_lab_master *picked_master(const struct opts *o, struct kha_lab *lab,
					    const char *name, int *code)
{
	struct kha_lab_master *m = NULL;
	struct kha_diag d = {0};
	int r;

	*code = KHA_EXIT_USAGE;
	if (o->pick == PICK_NAME)
		return named_master(o, lab, name);
	if (o->pick == PICK_LEASE_HOLDER)
		r = kha_lab_lease_holder_master(lab, o->component, &m, &d);
	else
		r = kha_lab_pick_master(lab, (enum kha_lab_pick)o->pick, KHA_LAB_LEADER_TIMEOUT_US,
					&m, &d);
	if (r < 0)
		*code = fail(o->sub->name, r, &d);
	return m;
}

/* ---- up ----------------------------------------------------------------------------------- */

static void print_reach(const struct opts *o, const struct kha_lab *lab)
{
	kha_autofree char *eps = kha_lab_endpoints(lab);
	char hint[512];
	const char *dh = dir_hint(o, hint, sizeof(hint));

	if (lab->node.entry_url) {
		printf("\nThe node's entry point: %s (kha proxy, TCP; TLS goes through to the\n"
		       "members). No kube-apiserver exists here, so it fronts the etcd members' client\n"
		       "API; in front of real masters the same proxy runs with --backend MASTER:6443\n"
		       "(one per master) and its default check GET /readyz:\n"
		       "  kha proxy --listen 127.0.0.1:7443 --backend 10.0.0.11:6443 --backend \\\n"
		       "      10.0.0.12:6443 --backend 10.0.0.13:6443 --check-cacert ca.crt\n"
		       "Through the entry:\n"
		       "  etcdctl --endpoints %s --cacert %s --cert %s --key %s put k v\n"
		       "  kha proxy status --metrics-addr %s\n",
		       lab->node.entry_url, lab->node.entry_url, lab->ca_cert, lab->client_cert,
		       lab->client_key, lab->node.metrics_addr);
	}
	printf("\nReach the members (TLS with client certificates):\n"
	       "  . %s/env && etcdctl member list -w table\n"
	       "  kha etcd status --endpoints %s --cacert %s --cert %s --key %s\n"
	       "Break it and watch:\n"
	       "  kha lab drill%s --svg lab-drill.svg\n"
	       "  kha lab stop-member %s%s && kha lab status%s\n"
	       "Tear it down:\n"
	       "  kha lab down%s\n",
	       o->dir, eps ? eps : "", lab->ca_cert, lab->client_cert, lab->client_key, dh,
	       lab->election ? "--leader --kill" : lab->masters[0].name, dh, dh, dh);
}

static void print_reach_k8s(const struct opts *o, const struct kha_lab *lab)
{
	char hint[512];
	const char *dh = dir_hint(o, hint, sizeof(hint));

	printf("\nEntries (each host is a network namespace; run commands inside the lab):\n"
	       "  node: its kha proxy on %s (discovery from default/kubernetes)\n",
	       lab->node.entry_url);
	if (lab->n_lbs)
		printf("  vip:  %s, held by kha vip on lb1/lb2, each with a kha proxy\n",
		       lab->lbs[0].entry_url);
	for (size_t i = 0; i < lab->n_masters; i++)
		printf("  %s:   its own kube-apiserver on https://%s:6443\n", lab->masters[i].name,
		       lab->masters[i].address);
	printf("Next:\n"
	       "  kha lab exec%s node -- kubectl get nodes\n"
	       "  kha lab exec%s lb1 -- kubectl get --raw /readyz\n"
	       "  kha lab exec%s node -- kubectl get lease -n kube-system\n"
	       "  kha lab kubeconfig%s --entry vip\n"
	       "  kha lab stop-member%s --leader --kill && kha lab status%s\n"
	       "  kha lab down%s\n",
	       dh, dh, dh, dh, dh, dh, dh);
}

static void print_procs(const char *owner, const struct kha_lab_proc *procs, size_t n)
{
	for (size_t j = 0; j < n; j++)
		printf("%-6s %-23s %-8d %s\n", owner, procs[j].name, (int)procs[j].pid,
		       procs[j].log_path);
}

/* what kha lab up prints once the lab is ready: the leader, the members, how to reach them */
static void up_print(const struct opts *o, const struct kha_lab *lab)
{
	kha_autofree char *leader = NULL;

	if (lab->election)
		kha_ignore(kha_lab_leader(lab, KHA_LAB_LEADER_TIMEOUT_US, &leader, NULL));
	if (lab->k8s_bin)
		printf("kha lab: %zu masters (etcd, kube-apiserver, kube-controller-manager, "
		       "kube-scheduler) ready in %s",
		       lab->n_masters, lab->dir);
	else
		printf("kha lab: %zu etcd members healthy in %s", lab->n_masters, lab->dir);
	if (lab->node.entry_url)
		printf("; entry point %s ready", lab->node.entry_url);
	if (lab->election)
		printf("; %s leads election %s (takes the backups)", leader ? leader : "nobody",
		       lab->election);
	printf("\n\n%-6s %-23s %-8s %s\n", "OWNER", "PROC", "PID", "LOG");
	for (size_t i = 0; i < lab->n_masters; i++)
		print_procs(lab->masters[i].name, lab->masters[i].procs, lab->masters[i].n_procs);
	print_procs("node", lab->node.procs, lab->node.n_procs);
	for (size_t i = 0; i < lab->n_lbs; i++)
		print_procs(lab->lbs[i].name, lab->lbs[i].procs, lab->lbs[i].n_procs);
	if (lab->k8s_bin)
		print_reach_k8s(o, lab);
	else
		print_reach(o, lab);
}

/* kha lab up's flags taken together (and KHA_K8S_BIN for --kubernetes): 0, or the exit code
 * of a usage error */
static int up_check(struct opts *o)
{
	struct kha_diag d = {0};

	if (o->le_flag && !o->kubernetes)
		return usage_error("up",
				   "%s needs --kubernetes (it sets the controller-manager's "
				   "and the scheduler's)",
				   o->le_flag);
	if (kha_lab_leader_elect_check(&o->up.leader_elect, &d) < 0)
		return usage_error("up", "%s", d.msg);
	if (o->kubernetes && !o->up.k8s_bin) {
		o->up.k8s_bin = getenv("KHA_K8S_BIN");
		if (!o->up.k8s_bin || !*o->up.k8s_bin)
			return usage_error("up",
					   "--kubernetes needs the programs: --k8s-bin DIR or "
					   "KHA_K8S_BIN=DIR (make k8s builds them and prints DIR)");
	}
	return 0;
}

static int cmd_up(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *failed_log = NULL;
	struct kha_diag d = {0};
	char hint[512];
	int r;

	if (optind < argc)
		return usage_error("up", "unexpected argument '%s'", argv[optind]);
	o->up.timeout_us = o->timeout_us;
	r = up_check(o);
	if (r)
		return r;
	o->up.dir = o->dir;
	r = kha_lab_up(&o->up, &lab, &failed_log, &d);
	if (r < 0) {
		int code = fail("up", r, &d);

		if (failed_log)
			print_log_tail(failed_log);
		if (r == -ETIMEDOUT || r == -ECHILD)
			fprintf(stderr,
				"kha lab up: stopped what was started; logs kept in %s "
				"(remove with 'kha lab down%s')\n",
				o->dir, dir_hint(o, hint, sizeof(hint)));
		return code;
	}
	up_print(o, lab);
	return KHA_EXIT_OK;
}

/* ---- status, wait, down, kubeconfig, exec ------------------------------------------------- */

static int cmd_status(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_live lv;
	int r;

	if (optind < argc)
		return usage_error("status", "unexpected argument '%s'", argv[optind]);
	r = load(o, false, &lab);
	if (r)
		return r;
	kha_lab_live_check(lab, &lv);
	if (o->json) {
		kha_autofree char *text = kha_lab_status_json(lab, &lv);

		if (text)
			printf("%s\n", text);
	} else {
		kha_lab_status_print(stdout, lab, &lv);
	}
	kha_lab_live_release(&lv);
	return lv.code;
}

static int cmd_wait(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	uint64_t t0 = kha_now_us();
	struct kha_diag d = {0};
	char took[32];
	int r;

	if (optind < argc)
		return usage_error("wait", "unexpected argument '%s'", argv[optind]);
	r = load(o, false, &lab);
	if (r)
		return r;
	r = kha_lab_wait_ready(lab, o->timeout_us, &d);
	if (r < 0)
		return fail("wait", r, &d);
	printf("all %zu members healthy%s (waited %s)\n", lab->n_masters,
	       lab->node.entry_url ? ", the entry point ready" : "",
	       kha_format_duration(took, sizeof(took), (kha_now_us() - t0) / 1000 * 1000));
	return KHA_EXIT_OK;
}

static int cmd_down(struct opts *o, int argc, char **argv)
{
	struct kha_diag d = {0};
	unsigned stopped = 0;
	int r;

	if (optind < argc)
		return usage_error("down", "unexpected argument '%s'", argv[optind]);
	r = kha_lab_down(o->dir, o->grace_us, &stopped, &d);
	if (r < 0)
		return fail("down", r, &d);
	printf("lab in %s is down (%u process%s stopped, directory removed)\n", o->dir, stopped,
	       stopped == 1 ? "" : "es");
	return KHA_EXIT_OK;
}

static int cmd_kubeconfig(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *path = NULL, *text = NULL;
	struct kha_diag d = {0};
	size_t len;
	int r;

	if (optind < argc)
		return usage_error("kubeconfig", "unexpected argument '%s'", argv[optind]);
	r = load(o, false, &lab);
	if (r)
		return r;
	r = kha_lab_kubeconfig(lab, o->entry ? o->entry : "node", &path, &d);
	if (r == 0)
		r = kha_file_read_all(path, 1 << 20, &text, &len, &d);
	if (r < 0)
		return fail("kubeconfig", r, &d);
	fwrite(text, 1, len, stdout);
	return KHA_EXIT_OK;
}

/* kha lab exec HOST -- CMD...: CMD inside the host (lib/lab sets its namespace and env) */
static int cmd_exec(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_diag d = {0};
	const char *host;
	int r;

	if (optind >= argc)
		return usage_error("exec", "which host? (node, lb1, lb2, m1, ...)");
	host = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc)
		return usage_error("exec", "no COMMAND to run in %s", host);
	r = load(o, false, &lab);
	if (r)
		return r;
	r = kha_lab_exec_enter(lab, host, &d);
	if (r == -EINVAL)
		return usage_error("exec", "%s", d.msg);
	if (r < 0)
		return fail("exec", r, &d);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "kha lab exec: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

/* ---- members, processes, hosts ------------------------------------------------------------ */

/* "etcd pid 123, elect pid 456" of m's running processes, into buf. */
static const char *pids_text(const struct kha_lab_master *m, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t j = 0; j < m->n_procs; j++) {
		size_t used = strlen(buf);

		if (m->procs[j].pid > 0)
			snprintf(buf + used, size - used, "%s%s pid %d", used ? ", " : "",
				 m->procs[j].name, (int)m->procs[j].pid);
	}
	return buf;
}

/* how many of m's processes run */
static size_t master_running(const struct kha_lab_master *m)
{
	size_t n = 0;

	for (size_t j = 0; j < m->n_procs; j++)
		n += kha_lab_proc_running(&m->procs[j]);
	return n;
}

static int start_one(const struct opts *o, struct kha_lab *lab, struct kha_lab_master *m)
{
	struct kha_lab_proc *etcd = kha_lab_master_proc(m, KHA_LAB_PROC_ETCD);
	struct kha_diag d = {0};
	char pids[256];
	int r;

	if (master_running(m) == m->n_procs) {
		printf("%s is already running (%s)\n", m->name, pids_text(m, pids, sizeof(pids)));
		return KHA_EXIT_OK;
	}
	r = kha_lab_master_start(lab, m, o->timeout_us, &d);
	if (r < 0) {
		int code = fail(o->sub->name, r, &d);

		if (etcd && (r == -ECHILD || r == -ETIMEDOUT))
			print_log_tail(etcd->log_path);
		return code;
	}
	printf("%s started (%s), answering on %s\n", m->name, pids_text(m, pids, sizeof(pids)),
	       m->client_url);
	return KHA_EXIT_OK;
}

static int stop_one(const struct opts *o, struct kha_lab *lab, struct kha_lab_master *m)
{
	struct kha_diag d = {0};
	char pids[256];
	int r;

	if (!master_running(m)) {
		printf("%s is not running\n", m->name);
		/* record it as stopped, in case it died on its own */
		r = kha_lab_master_stop(lab, m, 0, &d);
		return r < 0 ? fail(o->sub->name, r, &d) : KHA_EXIT_OK;
	}
	pids_text(m, pids, sizeof(pids));
	r = kha_lab_master_stop(lab, m, o->kill ? 0 : o->grace_us, &d);
	if (r < 0)
		return fail(o->sub->name, r, &d);
	printf("%s stopped (%s: %s)\n", m->name, pids,
	       o->kill ? "SIGKILL to them and everything they started" : "SIGTERM");
	return KHA_EXIT_OK;
}

static int freeze_one(const struct opts *o, struct kha_lab *lab, struct kha_lab_master *m,
		      bool freeze)
{
	struct kha_diag d = {0};
	char pids[256];
	int r;

	if (!master_running(m)) {
		printf("%s is not running: nothing to %s\n", m->name, freeze ? "freeze" : "thaw");
		return freeze ? KHA_EXIT_UNAVAILABLE : KHA_EXIT_OK;
	}
	pids_text(m, pids, sizeof(pids));
	r = kha_lab_master_freeze(lab, m, freeze, &d);
	if (r < 0)
		return fail(o->sub->name, r, &d);
	printf("%s %s (%s: %s to them and everything they started)\n", m->name,
	       freeze ? "frozen" : "thawed", pids, freeze ? "SIGSTOP" : "SIGCONT");
	return KHA_EXIT_OK;
}

/* start-member --all, thaw-member --all: every master that needs it, in order, until one fails */
static int member_all(const struct opts *o, struct kha_lab *lab)
{
	int code = KHA_EXIT_OK;
	bool any = false;

	for (size_t i = 0; i < lab->n_masters && code == KHA_EXIT_OK; i++) {
		struct kha_lab_master *x = &lab->masters[i];

		if (o->sub->op == OP_START && master_running(x) < x->n_procs) {
			code = start_one(o, lab, x);
			any = true;
		} else if (o->sub->op == OP_THAW && x->frozen) {
			code = freeze_one(o, lab, x, false);
			any = true;
		}
	}
	if (!any)
		printf("every master is %s\n", o->sub->op == OP_START ? "running" : "thawed");
	return code;
}

static int cmd_member(struct opts *o, int argc, char **argv)
{
	const char *sub = o->sub->name;
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *m;
	bool picked = o->pick != PICK_NAME;
	int r, code;

	if (optind < argc && picked)
		return usage_error(sub, "give either a master's name or --%s",
				   o->pick == PICK_ALL	    ? "all"
				   : o->pick == PICK_LEADER ? "leader"
							    : "follower");
	if (optind >= argc && !picked)
		return usage_error(sub, "which master? (e.g. 'kha lab %s m1'%s)", sub,
				   o->sub->op == OP_START || o->sub->op == OP_THAW
					   ? " or --all"
					   : " or --leader");
	if (optind + 1 < argc)
		return usage_error(sub, "unexpected argument '%s'", argv[optind + 1]);
	r = load(o, true, &lab);
	if (r)
		return r;
	if (o->pick == PICK_ALL)
		return member_all(o, lab);
	m = picked_master(o, lab, argv[optind], &code);
	if (!m)
		return code;
	switch (o->sub->op) {
	case OP_STOP:
		return stop_one(o, lab, m);
	case OP_START:
		return start_one(o, lab, m);
	default:
		return freeze_one(o, lab, m, o->sub->op == OP_FREEZE);
	}
}

static int cmd_stop_process(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_lab_master *m;
	struct kha_lab_proc *p = NULL;
	struct kha_diag d = {0};
	const char *pname;
	int r, code, want_args = (o->pick == PICK_NAME) + (o->component == NULL);
	pid_t pid;

	if (argc - optind != want_args)
		return usage_error("stop-process", "%s",
				   want_args == 2   ? "give MASTER and PROCESS"
				   : want_args == 1 ? "give the PROCESS"
						    : "no argument with --lease-holder");
	pname = o->component ? o->component : argv[argc - 1];
	r = load(o, true, &lab);
	if (r)
		return r;
	m = picked_master(o, lab, argv[optind], &code);
	if (!m)
		return code;
	for (size_t i = 0; i < m->n_procs && !p; i++)
		if (strcmp(m->procs[i].name, pname) == 0)
			p = &m->procs[i];
	if (!p)
		return usage_error("stop-process", "%s runs no process '%s'", m->name, pname);
	pid = p->pid;
	if (!kha_lab_proc_running(p)) {
		printf("%s %s is not running\n", m->name, p->name);
		return KHA_EXIT_OK;
	}
	r = kha_lab_proc_stop(lab, p, o->kill ? 0 : o->grace_us, &d);
	if (r < 0)
		return fail("stop-process", r, &d);
	printf("%s %s stopped (pid %d: %s)\n", m->name, p->name, (int)pid,
	       o->kill ? "SIGKILL" : "SIGTERM");
	return KHA_EXIT_OK;
}

/* stops or starts host h; 0 or the exit code */
static int host_one(const struct opts *o, struct kha_lab *lab, struct kha_lab_node *h)
{
	struct kha_diag d = {0};
	bool running = false;
	int r;

	for (size_t j = 0; j < h->n_procs; j++)
		running |= kha_lab_proc_running(&h->procs[j]);
	if (o->sub->op == OP_STOP) {
		r = kha_lab_host_stop(lab, h, o->kill ? 0 : o->grace_us, &d);
		if (r < 0)
			return fail(o->sub->name, r, &d);
		printf("%s stopped (%s)\n", h->name,
		       !running	 ? "it was not running"
		       : o->kill ? "SIGKILL"
				 : "SIGTERM");
		return 0;
	}
	r = kha_lab_host_start(lab, h, &d);
	if (r < 0)
		return fail(o->sub->name, r, &d);
	printf("%s %s\n", h->name, running ? "was running" : "started");
	return 0;
}

static int cmd_host(struct opts *o, int argc, char **argv)
{
	const char *sub = o->sub->name;
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	kha_autofree char *holder = NULL;
	struct kha_diag d = {0};
	bool all = o->pick == PICK_ALL, vip = o->pick == PICK_VIP_HOLDER;
	int r;

	if (argc - optind != (vip || all ? 0 : 1))
		return usage_error(sub, "which host? (e.g. 'kha lab %s lb1')", sub);
	r = load(o, true, &lab);
	if (r)
		return r;
	if (vip) {
		r = kha_lab_vip_holder(lab, &holder, &d);
		if (r < 0)
			return fail(sub, r, &d);
		if (!holder) {
			fprintf(stderr, "kha lab stop-host: no load balancer holds the VIP\n");
			return KHA_EXIT_UNAVAILABLE;
		}
	}
	for (size_t i = 0; i < (all ? lab->n_lbs + 1 : 1); i++) {
		struct kha_lab_node *h = all ? (i < lab->n_lbs ? &lab->lbs[i] : &lab->node)
					     : kha_lab_find_host(lab, vip ? holder : argv[optind]);

		if (!h)
			return usage_error(sub, "no host '%s' (lb1, lb2, node)", argv[optind]);
		r = host_one(o, lab, h);
		if (r)
			return r;
	}
	return KHA_EXIT_OK;
}

/* ---- drill -------------------------------------------------------------------------------- */

static int drill_on_stop(void *userdata)
{
	return cmd_stop_signal(*(int *)userdata);
}

static void drill_on_progress(void *userdata, const char *line)
{
	(void)userdata;
	fprintf(stderr, "%s\n", line);
}

/* Writes text to path atomically; prints the error. Returns 0 or an exit code. */
static int write_output(const char *what, const char *path, const char *text, size_t len)
{
	struct kha_diag d = {0};

	if (kha_file_write_atomic(path, text, len, 0644, &d) < 0) {
		fprintf(stderr, "kha lab drill: %s (check the %s path)\n", d.msg, what);
		return KHA_EXIT_IOERR;
	}
	return 0;
}

/* the JSON report to --report: 0 or the exit code */
static int write_report(const char *report, char *json)
{
	int code;

	if (!json) {
		fprintf(stderr, "kha lab drill: cannot build the report: out of memory\n");
		return KHA_EXIT_SOFTWARE;
	}
	code = write_output("--report", report, json, strlen(json));
	free(json);
	if (code)
		return code;
	printf("report: %s\n", report);
	return 0;
}

/* one SVG timeline to path, drawn by draw(f, rep, e): 0 or the exit code */
static int write_svg(const char *path, int (*draw)(FILE *, const void *, int), const void *rep,
		     int e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = path ? open_memstream(&buf, &len) : NULL;
	int code;

	if (!f || draw(f, rep, e) < 0 || fclose(f) != 0) {
		free(buf);
		fprintf(stderr, "kha lab drill: cannot build the SVG: out of memory\n");
		return KHA_EXIT_SOFTWARE;
	}
	code = write_output("--svg", path, buf, len);
	free(buf);
	return code;
}

static int draw_etcd(FILE *f, const void *rep, int e)
{
	(void)e;
	return kha_lab_drill_svg(f, rep);
}

static int draw_k8s(FILE *f, const void *rep, int e)
{
	return kha_lab_k8s_drill_svg(f, rep, (enum kha_lab_entry)e);
}

/* kha lab drill on a Kubernetes lab: runs it, prints it, writes the report and one SVG per
 * entry (FILE.svg for the node, FILE-vip.svg for the VIP). */
static int drill_k8s(const struct opts *o, const struct kha_lab *lab)
{
	kha_auto(kha_lab_k8s_drill_report_freep) struct kha_lab_k8s_drill_report *rep = NULL;
	struct kha_diag d = {0};
	int r, code = 0;

	fprintf(stderr,
		"kha lab drill: Kubernetes API writes, reads and a watch through %s and %s; "
		"faults follow\n",
		lab->node.entry_url, lab->lbs[0].entry_url);
	r = kha_lab_k8s_drill(lab, lab->kha_bin, &o->k8s_drill, &rep, &d);
	if (r < 0)
		return fail("drill", r, &d);
	if (o->json) {
		kha_autofree char *text = kha_lab_k8s_drill_json(rep);

		if (text)
			printf("%s\n", text);
	} else {
		for (int e = 0; o->details && e < KHA_LAB_ENTRIES; e++)
			for (int k = 0; k < 2; k++)
				if (rep->drill[e][k]) {
					kha_ignore(
						kha_drill_report_print(stdout, rep->drill[e][k]));
					printf("\n");
				}
		kha_ignore(kha_lab_k8s_drill_print(stdout, rep));
	}
	fflush(stdout);
	if (o->report)
		code = write_report(o->report, kha_lab_k8s_drill_json(rep));
	for (int e = 0; !code && o->svg && e < KHA_LAB_ENTRIES; e++) {
		kha_autofree char *path = kha_lab_k8s_drill_svg_path(o->svg, e);

		code = write_svg(path, draw_k8s, rep, e);
		if (!code)
			printf("timeline (%s): %s (open it in a browser)\n", kha_lab_entry_name(e),
			       path);
	}
	return code ? code : kha_lab_k8s_drill_exit_code(rep);
}

/* kha lab drill on a lab without Kubernetes */
static int drill_etcd(const struct opts *o, const struct kha_lab *lab)
{
	kha_auto(kha_lab_drill_report_freep) struct kha_lab_drill_report *rep = NULL;
	struct kha_diag d = {0};
	int r, code = 0;

	fprintf(stderr, "kha lab drill: writing through %s; faults follow (about %.0fs)\n",
		lab->node.entry_url, (double)kha_lab_drill_length_us(&o->drill) / 1e6);
	r = kha_lab_drill(lab, lab->kha_bin, &o->drill, &rep, &d);
	if (r < 0)
		return fail("drill", r, &d);
	if (o->json) {
		kha_autofree char *text = kha_lab_drill_json(rep);

		if (text)
			printf("%s\n", text);
	} else {
		if (o->details) {
			kha_ignore(kha_drill_report_print(stdout, rep->drill));
			printf("\n");
		}
		kha_ignore(kha_lab_drill_print(stdout, rep));
	}
	fflush(stdout);
	if (o->report)
		code = write_report(o->report, kha_lab_drill_json(rep));
	if (!code && o->svg) {
		code = write_svg(o->svg, draw_etcd, rep, 0);
		if (!code)
			printf("timeline: %s (open it in a browser)\n", o->svg);
	}
	return code ? code : kha_lab_drill_exit_code(rep);
}

/* whether this lab can be drilled with these options: 0, or the exit code */
static int drill_check(const struct opts *o, const struct kha_lab *lab)
{
	const struct kha_lab_k8s_drill_opts *ko = &o->k8s_drill;

	if (!lab->node.entry_url)
		return usage_error("drill",
				   "the lab in %s has no entry point (made with --no-proxy): "
				   "nothing to write through",
				   o->dir);
	if (!lab->kha_bin || access(lab->kha_bin, X_OK) < 0) {
		fprintf(stderr, "kha lab drill: %s: cannot run the kha the lab was made with\n",
			lab->kha_bin ? lab->kha_bin : "(none)");
		return KHA_EXIT_UNAVAILABLE;
	}
	if (!lab->k8s_bin && (ko->faults || ko->slo >= 0 || ko->rolling_us || ko->watch_timeout_us))
		return usage_error("drill", "--faults, --slo, --rolling-time and --watch-timeout "
					    "are for a Kubernetes lab (kha lab up --kubernetes)");
	return 0;
}

static int cmd_drill(struct opts *o, int argc, char **argv)
{
	kha_auto(kha_lab_freep) struct kha_lab *lab = NULL;
	struct kha_diag d = {0};
	sigset_t oldmask;
	int r, code, sfd;

	if (optind < argc)
		return usage_error("drill", "unexpected argument '%s'", argv[optind]);
	r = load(o, false, &lab);
	if (r)
		return r;
	r = drill_check(o, lab);
	if (r)
		return r;
	fprintf(stderr, "kha lab drill: waiting until the lab is ready...\n");
	r = kha_lab_wait_ready(lab, DRILL_READY_US, &d);
	if (r < 0)
		return cmd_fail("kha lab drill", o->json, KHA_EXIT_UNAVAILABLE,
				"the lab in %s is not ready: %s (see 'kha lab status')", o->dir,
				d.msg);
	/* each write in flight holds a socket */
	cmd_raise_fd_limit();
	/* SIGINT/SIGTERM stop the drill through a signalfd (the faults are undone first); the
	 * fault commands and our watcher thread get the mask as it is now */
	sfd = cmd_stop_signalfd(&oldmask);
	if (sfd < 0) {
		fprintf(stderr, "kha lab drill: signalfd: %s\n", strerror(-sfd));
		return KHA_EXIT_SOFTWARE;
	}
	o->drill.stop_fd = o->k8s_drill.stop_fd = sfd;
	o->drill.on_stop = o->k8s_drill.on_stop = drill_on_stop;
	o->drill.on_progress = o->k8s_drill.on_progress = drill_on_progress;
	o->drill.userdata = o->k8s_drill.userdata = &sfd;
	code = lab->k8s_bin ? drill_k8s(o, lab) : drill_etcd(o, lab);
	close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return code;
}

/* ---- the subcommands ---------------------------------------------------------------------- */

static const struct sub subs[] = {
	{"up", up_options, NULL,
	 "Usage: kha lab up [--dir DIR] [--members N] [--timeout D] [--etcd PATH]\n"
	 "                  [--kha PATH] [--no-proxy] [--no-elect]\n"
	 "                  [--kubernetes [--k8s-bin DIR]\n"
	 "                   [--leader-elect-lease-duration D]\n"
	 "                   [--leader-elect-renew-deadline D]\n"
	 "                   [--leader-elect-retry-period D]]\n\n"
	 "With --kubernetes (root): the real control plane, as kubeadm's stacked\n"
	 "etcd HA topology, each host a network namespace on a lab bridge: every\n"
	 "master runs etcd 3.6, kube-apiserver, kube-controller-manager and\n"
	 "kube-scheduler (--leader-elect) and kha elect with the backups; a node\n"
	 "runs the node-local kha proxy (127.0.0.1:7443, discovery from\n"
	 "default/kubernetes); two load-balancer hosts run kha proxy and kha vip\n"
	 "(the VIP is the controlPlaneEndpoint). PKI and kubeconfigs by kubeadm's\n"
	 "phases. The programs come from --k8s-bin DIR or $KHA_K8S_BIN (make k8s\n"
	 "builds them). Each master is a Node with its control plane as static\n"
	 "pods: manifests in DIR/mN/manifests, mirror pods in kube-system. The\n"
	 "--leader-elect-* options set kube-controller-manager's and\n"
	 "kube-scheduler's (default 15s, 10s, 2s, client-go's; lease > renew\n"
	 "deadline > retry period). Then: kha lab exec node -- kubectl get nodes\n\n"
	 "Without it: the etcd-only lab on loopback, described next.\n"
	 "Creates a CA and certificates (members: serverAuth+clientAuth, SANs\n"
	 "127.0.0.1 and localhost; a client certificate for the tools), starts N\n"
	 "etcd members on free loopback ports with TLS and --client-cert-auth\n"
	 "for clients and peers and waits until they are healthy; then starts\n"
	 "each master's kha elect (election " KHA_LAB_ELECTION ", TTL 3s), which runs\n"
	 "'kha etcd backup --every 5s --keep-last 5' into DIR/backups/MASTER only\n"
	 "while it leads, and the node's kha proxy in front of the members\n"
	 "(HTTPS checks of etcd's /health with the client certificate). Every\n"
	 "process is detached and recorded in DIR/lab.json; DIR/env is for\n"
	 "etcdctl. Waits until the proxy is ready and a master leads. Refuses a\n"
	 "DIR that already holds a lab.\n\n",
	 "Exit codes: 0 up and ready; 64 usage or DIR taken; 69 etcd missing\n"
	 "or not ready in time (the failing process's log is shown).\n\n"
	 "Example:\n  kha lab up --members 3 && . lab/env && etcdctl endpoint health\n",
	 cmd_up, OP_NONE},
	{"status", status_options, NULL,
	 "Usage: kha lab status [--dir DIR] [-o json]\n\n"
	 "Shows every process of every master and of the node: PID, whether it\n"
	 "still runs (checked by PID and start time) or is frozen; each etcd\n"
	 "member's health over TLS and how the node's proxy sees it; which\n"
	 "master leads the backup election; whether the entry point is ready.\n\n",
	 "Exit codes: 0 everything healthy; 1 degraded (a member or a companion\n"
	 "down, or nobody leads: it works, one more failure hurts); 2 critical\n"
	 "(a majority of members unhealthy: quorum lost; or the entry point is\n"
	 "not ready); 69 no lab in DIR.\n\n"
	 "Example:\n  kha lab status -o json\n",
	 cmd_status, OP_NONE},
	{"stop-member", stop_member_options, member_options,
	 "Usage: kha lab stop-member (NAME | --leader | --follower | --raft-leader)\n"
	 "                           [--dir DIR]\n"
	 "                           [--grace D] [--kill]\n\n"
	 "Stops every process of a master (etcd, kha elect and the backup it runs):\n"
	 "SIGTERM, then SIGKILL if still running after --grace (default 10s);\n"
	 "--kill sends SIGKILL to all of them at once, like a power cut. --leader\n"
	 "picks the master whose kha elect leads the backup election (in a lab made\n"
	 "with --no-elect: etcd's Raft leader), --follower a running master that\n"
	 "does not, --raft-leader the master whose etcd member is the Raft leader.\n"
	 "Only processes the lab started, and what\n"
	 "they started, are signalled (PID and start time checked).\n\n",
	 "Example:\n  kha lab stop-member --leader --kill\n", cmd_member, OP_STOP},
	{"start-member", start_member_options, member_options,
	 "Usage: kha lab start-member (NAME | --all) [--dir DIR] [--timeout D]\n\n"
	 "Restarts a stopped master on its data: its etcd member (--initial-cluster-\n"
	 "state existing) and, once it answers on its client URL, its kha elect\n"
	 "(default --timeout 60s). Alone it may still lack a quorum: 'kha lab wait'\n"
	 "waits for health. Starting a running master does nothing. --all starts\n"
	 "every master that has a stopped process.\n\n",
	 "Example:\n  kha lab start-member m2\n", cmd_member, OP_START},
	{"freeze-member", freeze_member_options, member_options,
	 "Usage: kha lab freeze-member (NAME | --leader | --follower | --raft-leader)\n"
	 "                             [--dir DIR]\n\n"
	 "Sends SIGSTOP to every process of a master and everything they started:\n"
	 "a hung machine. Its ports still accept connections that nobody serves,\n"
	 "its leases stop being renewed. 'kha lab thaw-member' resumes it.\n\n",
	 "Example:\n  kha lab freeze-member m3 && sleep 5 && kha lab thaw-member m3\n", cmd_member,
	 OP_FREEZE},
	{"thaw-member", thaw_member_options, member_options,
	 "Usage: kha lab thaw-member (NAME | --all) [--dir DIR]\n\n"
	 "Sends SIGCONT to every process of a master (--all: of every frozen one).\n\n",
	 "Example:\n  kha lab thaw-member --all\n", cmd_member, OP_THAW},
	{"stop-process", stop_process_options, NULL,
	 "Usage: kha lab stop-process (MASTER | --leader | --follower |\n"
	 "                            --raft-leader) PROCESS [--kill] [--grace D]\n"
	 "       kha lab stop-process --lease-holder COMPONENT [--kill] [--grace D]\n"
	 "                            [--dir DIR]\n\n"
	 "Stops one process of a master (etcd, kube-apiserver,\n"
	 "kube-controller-manager, kube-scheduler, elect) and what it started:\n"
	 "SIGTERM, SIGKILL after --grace (default 10s); --kill: SIGKILL at once.\n"
	 "A kube-apiserver stopped with SIGTERM turns its /readyz unready for\n"
	 "--shutdown-delay-duration before it closes its listener. --lease-holder\n"
	 "picks the master whose COMPONENT holds its Lease in kube-system (read\n"
	 "through the node's entry) and stops that COMPONENT. 'kha lab start-member\n"
	 "--all' starts it again.\n\n",
	 "Example:\n  kha lab stop-process --lease-holder kube-controller-manager --kill\n"
	 "  kha lab stop-process m2 kube-apiserver && kha lab start-member m2\n",
	 cmd_stop_process, OP_STOP},
	{"stop-host", stop_host_options, host_options,
	 "Usage: kha lab stop-host (NAME | --vip-holder) [--kill] [--grace D] [--dir DIR]\n\n"
	 "Stops every process of a host of a Kubernetes lab that is not a master\n"
	 "(lb1, lb2: kha proxy and kha vip; node: its kha proxy), SIGTERM then\n"
	 "SIGKILL after --grace (default 10s), --kill: SIGKILL at once (a power\n"
	 "cut). --vip-holder picks the load balancer holding the VIP.\n"
	 "start-host starts them again.\n\n",
	 "Example:\n  kha lab stop-host --vip-holder --kill; kha lab start-host --all\n", cmd_host,
	 OP_STOP},
	{"start-host", start_host_options, host_options,
	 "Usage: kha lab start-host (NAME | --all) [--dir DIR]\n\n"
	 "Starts every process of a host of a Kubernetes lab that is not a master\n"
	 "(lb1, lb2: kha proxy and kha vip; node: its kha proxy) again, after\n"
	 "stop-host. --all: every load balancer and the node.\n\n",
	 "Example:\n  kha lab stop-host --vip-holder --kill; kha lab start-host --all\n", cmd_host,
	 OP_START},
	{"wait", wait_options, NULL,
	 "Usage: kha lab wait [--dir DIR] [--timeout D]\n\n"
	 "Waits until the lab is ready: every member healthy, every process\n"
	 "running, the node's proxy ready, a master leading the backup election\n"
	 "(default --timeout 60s).\n\n",
	 "Exit codes: 0 ready; 69 a process is stopped or not ready in time.\n\n"
	 "Example:\n  kha lab start-member m1 && kha lab wait --timeout 30s\n",
	 cmd_wait, OP_NONE},
	{"drill", drill_options, NULL,
	 "Usage: kha lab drill [--dir DIR] [--report FILE.json] [--svg FILE.svg]\n"
	 "                     [--rate N] [--min-availability PCT] [--details]\n"
	 "                     [--baseline D] [--period D] [--down D] [-o json]\n\n"
	 "Writes to etcd through the node's entry point (kha proxy) at --rate per\n"
	 "second (default 50, a new TLS connection each) while three faults hit\n"
	 "the masters, one after the other, each followed by its recovery and a\n"
	 "settle period:\n"
	 "  1. kill-follower    SIGKILL every process of a master that does not\n"
	 "                      lead the backup election (etcd, kha elect, the\n"
	 "                      backup); restart it\n"
	 "  2. kill-leader      the same to the master that leads; restart it\n"
	 "  3. freeze-follower  SIGSTOP every process of a master that does not\n"
	 "                      lead; SIGCONT it\n"
	 "Timeline: --baseline (4s) of steady writes, then a fault every --period\n"
	 "(18s), each undone after --down (6s): about a minute in all. Afterwards\n"
	 "every write is read back from the members. Per fault it reports the\n"
	 "entry's availability and longest outage, the acknowledged writes lost\n"
	 "(must be 0), the election handover time (kill to a new leader seen),\n"
	 "and whether backups went on (by another master when the leader died);\n"
	 "overall, whether two masters ever took backups in one leadership term.\n"
	 "(A lab without Kubernetes: the entry fronts the members' etcd API.)\n\n"
	 "On a Kubernetes lab (kha lab up --kubernetes) the clients are Kubernetes\n"
	 "API clients, through each entry at once (the node's kha proxy and the\n"
	 "VIP): ConfigMap creates listed back afterwards, GETs, and a watch whose\n"
	 "reconnects are timed, at --rate each (default 20/s). The faults (each\n"
	 "undone after --down, 8s; one every --period, 40s; --faults picks some):\n"
	 "  kill-master, freeze-master   a master that does not lead the backups\n"
	 "  stop-apiserver     SIGTERM one kube-apiserver (graceful: drained)\n"
	 "  kill-cm-leader     SIGKILL the controller-manager holding its Lease\n"
	 "  kill-etcd-leader   SIGKILL every process of etcd's Raft leader's host\n"
	 "  kill-lb            SIGKILL the load balancer holding the VIP\n"
	 "  rolling            every master restarted in turn under kha lock\n"
	 "                     (--rolling-time, default 150s)\n"
	 "Per fault and entry: availability of writes and reads, longest outage,\n"
	 "lost writes (must be 0), watch reconnect time, the controller-manager's\n"
	 "Lease handover (from its acquireTime), backups, the verdict against\n"
	 "--slo (default 90, per entry and fault). --watch-timeout: the watches'\n"
	 "timeoutSeconds (default 60s).\n\n",
	 "Exit codes: 0 every invariant held; 1 availability under the floor, or\n"
	 "no new leader / no new backup after a fault; 2 acknowledged writes lost\n"
	 "or two backup takers in one term; 3 a fault command failed; 69 no lab in\n"
	 "DIR, or the lab not ready, or the writes not verifiable; 74 a file could\n"
	 "not be written; 130 interrupted (the faults are undone first).\n\n"
	 "Example:\n  kha lab up && kha lab drill --svg lab-drill.svg; kha lab down\n",
	 cmd_drill, OP_NONE},
	{"down", down_options, NULL,
	 "Usage: kha lab down [--dir DIR] [--grace D]\n\n"
	 "Stops exactly the processes the lab started (recorded PIDs, checked\n"
	 "by start time: a recycled PID is never signalled) and what they\n"
	 "started, waits for them, then removes DIR. etcd members get SIGKILL\n"
	 "(their data goes next); other processes SIGTERM (and SIGCONT when\n"
	 "frozen), then SIGKILL after --grace (default 10s). Processes that\n"
	 "already died are fine; no lab in DIR is fine too. A DIR without\n"
	 "lab.json is never removed.\n\n",
	 "Example:\n  kha lab down --dir lab\n", cmd_down, OP_NONE},
	{"exec", exec_options, NULL,
	 "Usage: kha lab exec [--dir DIR] HOST -- COMMAND [ARG...]\n\n"
	 "Runs COMMAND inside a host of a Kubernetes lab (its network namespace):\n"
	 "node, lb1, lb2, m1, m2, ... with KUBECONFIG set to the admin kubeconfig\n"
	 "of that host's entry (node: its kha proxy; lbN: the VIP; mN: its own\n"
	 "apiserver) and the lab's kubectl, etcdctl, ... first on PATH. Exits\n"
	 "with COMMAND's exit code.\n\n",
	 "Example:\n  kha lab exec node -- kubectl get nodes\n"
	 "  kha lab exec m1 -- etcdctl --endpoints https://127.0.0.1:2379 ...\n",
	 cmd_exec, OP_NONE},
	{"kubeconfig", kubeconfig_options, NULL,
	 "Usage: kha lab kubeconfig [--dir DIR] [--entry node|vip|mN]\n\n"
	 "Prints the admin kubeconfig of a Kubernetes lab for one entry: node\n"
	 "(the node's kha proxy, the default), vip (the load balancers' VIP) or\n"
	 "a master's own apiserver. Its addresses are inside the lab's network\n"
	 "namespaces: use it there ('kha lab exec' sets it for you).\n\n",
	 "Example:\n  kha lab kubeconfig --entry vip > vip.conf\n", cmd_kubeconfig, OP_NONE},
};

/* The subcommand being parsed, for its help (cmd_opts_parse's help takes only the stream). */
static const struct sub *help_sub;

static void sub_help(FILE *out)
{
	fputs(help_sub->synopsis, out);
	fprintf(out, "Flags:\n");
	cmd_opts_help(out, help_sub->options);
	fprintf(out, "\n%s", help_sub->epilog);
}

int cmd_lab_main(int argc, char **argv)
{
	int code = cmd_usage_or_help(argc, argv, usage);
	const struct sub *s;
	struct opts o = {
		.timeout_us = DEFAULT_TIMEOUT_US,
		.grace_us = DEFAULT_GRACE_US,
		.pick = PICK_NAME,
		.up = {.members = 3},
		.drill = {.min_availability = -1, .stop_fd = -1},
		.k8s_drill = {.slo = -1, .stop_fd = -1},
	};
	char who[48];
	char **sub_argv;

	if (code >= 0)
		return code;
	s = CMD_SUB_FIND("lab", subs, argv[1]);
	if (!s)
		return KHA_EXIT_USAGE;
	o.sub = help_sub = s;
	snprintf(who, sizeof(who), "kha lab %s", s->name);
	sub_argv = cmd_sub_argv(argv);
	code = cmd_opts_parse(s->parse ? s->parse : s->options, apply, &o, who, sub_help, argc - 1,
			      sub_argv);
	if (code >= 0)
		return code;
	o.dir_given = o.dir != NULL;
	if (!o.dir)
		o.dir = DEFAULT_DIR;
	return s->run(&o, argc - 1, sub_argv);
}
