// SPDX-License-Identifier: MIT
/*
 * kha lock: an N-slot semaphore on etcd for rolling reboots and upgrades: run COMMAND holding a
 * slot, list holders and waiters (--status), or serve the FleetLock protocol (serve).
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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
	OPT_SLOTS = 0x100,
	OPT_ID,
	OPT_WINDOW,
	OPT_REQUIRE_BACKUP_WITHIN,
	OPT_SERVE_CLIENT_CA,
	OPT_GROUP,
};

struct opts {
	struct kha_etcd_config etcd;
	char *lock, *id, *listen, *backup_dir, *metrics_addr;
	char *serve_cert, *serve_key, *serve_client_ca, *client_ids;
	char *groups[KHA_FLEETLOCK_GROUPS];
	size_t n_groups;
	bool insecure_no_client_certs;
	size_t slots;
	uint64_t ttl_us, renew_deadline_us, grace_us, gate_interval_us, backup_max_age_us;
	struct kha_lock_window_set window;
	bool has_window, require_etcd_healthy, status, json, slots_set;
	enum kha_log_level level;
	enum kha_log_format format;
	/* getopt state for the two-argument --require-backup-within */
	int argc;
	char **argv;
};

#define CALL(n, a, v, h)     CMD_OPT_CALL_ENTRY(n, a, v, h)
#define TYPED(k, n, a, f, h) CMD_OPT_TYPED_ENTRY(k, struct opts, n, a, f, h)
#define STR(n, a, f, h)	     TYPED(CMD_OPT_STRDUP, n, a, f, h)
#define DUR(n, f, h)	     TYPED(CMD_OPT_DURATION, n, "DURATION", f, h)
#define INCLUDE(k, table)                   \
	{                                   \
		.kind = k, .include = table \
	}

/* Every use of the lock takes every flag (one --config file serves all three); each help shows
 * its own and leaves the others out. */
static const struct cmd_opt lock_options[] = {
	STR("lock", "NAME", lock, "lock name (etcd key prefix NAME/); required"),
	CALL("slots", "N", OPT_SLOTS, "holders at once (default 1)"),
	{},
};

static const struct cmd_opt hold_options[] = {
	CALL("id", "ID", OPT_ID, "our identity (default: the host name)"),
	DUR("ttl", ttl_us, "lease TTL (default 30s)"),
	DUR("renew-deadline", renew_deadline_us,
	    "stop COMMAND when no keep-alive succeeded for this long\n(default TTL*2/3)"),
	TYPED(CMD_OPT_DURATION0, "grace", "DURATION", grace_us,
	      "SIGTERM -> SIGKILL when COMMAND must stop (default 10s)"),
	{},
};

static const struct cmd_opt gate_options[] = {
	CALL("window", "SPEC", OPT_WINDOW,
	     "run COMMAND / grant slots only inside these local-time\nwindows: \"Mon..Fri "
	     "02:00-05:00; Sat,Sun 00:00-24:00\"\n(grammar: docs/lock.md)"),
	TYPED(CMD_OPT_BOOL, "require-etcd-healthy", NULL, require_etcd_healthy,
	      "only while every etcd member answers, with a leader and\nno alarm"),
	CALL("require-backup-within", "DURATION DIR", OPT_REQUIRE_BACKUP_WITHIN,
	     "only while DIR holds an etcd snapshot newer\nthan DURATION that verifies (SHA-256, "
	     "bbolt structure;\ne.g. 24h /var/backups/etcd)"),
	DUR("gate-interval", gate_interval_us,
	    "how often closed gates are checked again (default 10s)"),
	{},
};

static const struct cmd_opt status_flag[] = {
	TYPED(CMD_OPT_BOOL, "status", NULL, status, "the same as `kha lock status`"),
	{},
};

static const struct cmd_opt serve_options[] = {
	STR("listen", "ADDR", listen, "address to listen on (default 127.0.0.1:3333)"),
	STR("serve-cert", "FILE", serve_cert,
	    "HTTPS with this certificate (PEM chain) and the key\nof --serve-key"),
	STR("serve-key", "FILE", serve_key, "the private key of --serve-cert"),
	STR("serve-cacert", "FILE", serve_client_ca,
	    "only clients with a certificate of this CA; a client\nmay then take and release only "
	    "the ids that are its\ncertificate's names (subject CN, DNS SANs)"),
	CALL("serve-client-ca", "FILE", OPT_SERVE_CLIENT_CA, NULL), /* deprecated --serve-cacert */
	STR("client-ids", "FILE", client_ids,
	    "which ids each certificate may use instead: lines\n\"CERT-NAME ID [ID...]\" "
	    "(docs/lock.md)"),
	CALL("group", "NAME", OPT_GROUP,
	     "a FleetLock group clients may name (repeat; default:\nonly \"default\"); group G is "
	     "lock NAME.G"),
	TYPED(CMD_OPT_BOOL, "insecure-no-client-certs", NULL, insecure_no_client_certs,
	      "allow listening off loopback without client\ncertificates (anyone who reaches the "
	      "port can then\nrelease any node's slot; logged as a warning)"),
	{},
};

static const struct cmd_opt daemon_options[] = {
	STR("metrics-addr", "ADDR", metrics_addr,
	    "/metrics (Prometheus), /healthz, /readyz (off by\ndefault): the slot and COMMAND; "
	    "with serve, FleetLock\nrequests by operation and result"),
	CMD_OPTS_LOG(struct opts, level, format),
	CMD_OPT_CONFIG_ENTRY,
	{},
};

static const struct cmd_opt options[] = {
	{.kind = CMD_OPT_STOP_AT_OPERAND},
	INCLUDE(CMD_OPT_INCLUDE, lock_options),
	INCLUDE(CMD_OPT_INCLUDE, hold_options),
	INCLUDE(CMD_OPT_INCLUDE, gate_options),
	INCLUDE(CMD_OPT_INCLUDE, status_flag),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json, "status format (JSON: docs/lock.md)"),
	INCLUDE(CMD_OPT_INCLUDE, daemon_options),
	CMD_OPT_INCLUDE_ETCD(struct opts, etcd),
	CMD_OPT_HELP_ENTRY,
	CMD_OPT_TITLE_ENTRY("\nServe flags (kha lock serve; see its --help):"),
	INCLUDE(CMD_OPT_INCLUDE, serve_options),
	{},
};

static const struct cmd_opt status_options[] = {
	{.kind = CMD_OPT_STOP_AT_OPERAND},
	STR("lock", "NAME", lock, "lock name; required"),
	CALL("slots", "N", OPT_SLOTS,
	     "count holders as if the lock had N slots (default: the\ncount each contender "
	     "recorded)"),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json,
			     "format (JSON: docs/lock.md; an error is a JSON\ndocument too)"),
	CMD_OPT_INCLUDE_ETCD(struct opts, etcd),
	CMD_OPT_HELP_ENTRY,
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, hold_options),
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, gate_options),
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, status_flag),
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, serve_options),
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, daemon_options),
	{},
};

static const struct cmd_opt serve_table[] = {
	{.kind = CMD_OPT_STOP_AT_OPERAND},
	INCLUDE(CMD_OPT_INCLUDE, lock_options),
	INCLUDE(CMD_OPT_INCLUDE, serve_options),
	INCLUDE(CMD_OPT_INCLUDE, gate_options),
	INCLUDE(CMD_OPT_INCLUDE, daemon_options),
	CMD_OPT_INCLUDE_ETCD(struct opts, etcd),
	CMD_OPT_HELP_ENTRY,
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, hold_options),
	INCLUDE(CMD_OPT_INCLUDE_HIDDEN, status_flag),
	{.kind = CMD_OPT_OUTPUT,
	 .name = "output",
	 .short_name = 'o',
	 .arg = "table|json",
	 .off = offsetof(struct opts, json)},
	{},
};

#undef CALL
#undef TYPED
#undef STR
#undef DUR
#undef INCLUDE

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha lock --lock NAME [--slots N] [--id ID] [flags] -- COMMAND [ARGS...]\n"
		"       kha lock status --lock NAME [-o table|json]\n"
		"       kha lock serve --listen ADDR --lock NAME [--slots N] [gates]\n\n"
		"A counting semaphore on etcd: at most N holders of lock NAME at once, served in\n"
		"arrival order. Each contender puts NAME/<lease hex> on its own lease (a crashed\n"
		"holder's slot frees itself after the TTL); the N keys with the lowest create\n"
		"revisions hold the slots. COMMAND runs while we hold a slot and the gates are open,\n"
		"then the slot is released. COMMAND is fenced like kha elect's: it is stopped before\n"
		"our lease could expire if etcd cannot be reached (kha then exits with 69).\n\n"
		"`kha lock serve` speaks FleetLock (POST /v1/pre-reboot, /v1/steady-state with\n"
		"header fleet-lock-protocol: true) on the same semaphore, for Zincati and other\n"
		"reboot agents; FleetLock slots have no lease: they last until steady-state.\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\nExit codes: COMMAND's status (128+N when killed by signal N), 0 after SIGTERM/\n"
		"SIGINT, 69 etcd unreachable at start or the slot lost while COMMAND ran, 64 usage,\n"
		"78 unusable TLS files or config.\n\n"
		"Examples:\n"
		"  kha lock --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert c.crt --key c.key \\\n"
		"      --lock master-upgrades --slots 1 --require-etcd-healthy \\\n"
		"      --require-backup-within 24h /var/backups/etcd -- /usr/local/sbin/upgrade-node\n"
		"  kha lock status --lock master-upgrades --endpoints https://10.0.0.1:2379 ...\n"
		"  kha lock serve --listen 0.0.0.0:3333 --lock reboots --slots 2 --endpoints ... \\\n"
		"      --serve-cert fleetlock.crt --serve-key fleetlock.key \\\n"
		"      --serve-cacert nodes-ca.crt --group default --group workers\n");
}

static void usage_status(FILE *out)
{
	fprintf(out,
		"Usage: kha lock status --lock NAME [--slots N] [-o table|json] [etcd flags]\n\n"
		"Who holds lock NAME and who waits, in queue order: position, holder or waiter,\n"
		"the contender's id, its fencing token (the create revision of its key: it only\n"
		"grows, so a resource can refuse an older holder), since when it queued, the\n"
		"remaining TTL of its lease (none: a FleetLock slot, held until steady-state)\n"
		"and its key. Reads only.\n\n"
		"Flags:\n");
	cmd_opts_help(out, status_options);
	fprintf(out,
		"\nExit codes: 0 read, 69 etcd unreachable, 78 unusable TLS files, 64 usage.\n\n"
		"Example:\n"
		"  kha lock status --lock master-upgrades --endpoints https://10.0.0.1:2379 \\\n"
		"      --cacert ca.crt --cert c.crt --key c.key -o json\n");
}

static void usage_serve(FILE *out)
{
	fprintf(out,
		"Usage: kha lock serve --lock NAME [--slots N] [--listen ADDR] [gates] [etcd flags]\n\n"
		"Serves the FleetLock protocol (POST /v1/pre-reboot and /v1/steady-state with the\n"
		"header fleet-lock-protocol: true) on lock NAME, for Zincati and other reboot\n"
		"agents. A FleetLock slot has no lease: it lasts until the node's steady-state.\n"
		"Stays in the foreground; SIGTERM/SIGINT stop it.\n\n"
		"Flags:\n");
	cmd_opts_help(out, serve_table);
	fprintf(out,
		"\nExit codes: 0 after SIGTERM/SIGINT, 64 usage, 69 etcd unreachable, 78 unusable\n"
		"TLS files or config.\n\n"
		"Example:\n"
		"  kha lock serve --listen 0.0.0.0:3333 --lock reboots --slots 2 \\\n"
		"      --serve-cert fleetlock.crt --serve-key fleetlock.key \\\n"
		"      --serve-cacert nodes-ca.crt --group default --group workers \\\n"
		"      --endpoints https://10.0.0.1:2379 ...\n");
}

static void opts_release(struct opts *o)
{
	kha_etcd_config_release(&o->etcd);
	free(o->lock);
	free(o->id);
	free(o->listen);
	free(o->backup_dir);
	free(o->metrics_addr);
	free(o->serve_cert);
	free(o->serve_key);
	free(o->serve_client_ca);
	free(o->client_ids);
	for (size_t i = 0; i < o->n_groups; i++)
		free(o->groups[i]);
}

/* "DURATION DIR" (one value, as in a config file) or DURATION with DIR as the next argument. */
static int set_backup(struct opts *o, const char *arg, struct kha_diag *d)
{
	const char *sp = strchr(arg, ' ');
	kha_autofree char *dur = NULL;
	const char *dir;

	if (sp) {
		dur = strndup(arg, (size_t)(sp - arg));
		dir = sp + 1;
		while (*dir == ' ')
			dir++;
	} else {
		dur = strdup(arg);
		if (!o->argv || optind >= o->argc || o->argv[optind][0] == '-')
			return kha_diag_set(d, EINVAL,
					    "needs two values: DURATION DIR (e.g. 24h "
					    "/var/backups/etcd)");
		dir = o->argv[optind++];
	}
	if (!dur)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (!*dir)
		return kha_diag_set(d, EINVAL, "the backup directory is empty");
	if (kha_opt_set_duration(&o->backup_max_age_us, dur, false, d) < 0)
		return -EINVAL;
	return kha_opt_set_str(&o->backup_dir, dir, d);
}

/* The flags of the handler: the ones the table cannot apply by their type. */
static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;
	uint64_t n;
	int r;

	switch (val) {
	case OPT_SLOTS:
		if (kha_parse_u64(arg, 1, 10000, &n) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not a number from 1 to 10000", arg);
		o->slots = (size_t)n;
		o->slots_set = true;
		return 0;
	case OPT_ID:
		if (!arg[0])
			return kha_diag_set(d, EINVAL, "the id is empty");
		return kha_opt_set_str(&o->id, arg, d);
	case OPT_WINDOW:
		r = kha_lock_window_parse(arg, &o->window, d);
		if (r < 0)
			return r;
		o->has_window = true;
		return 0;
	case OPT_REQUIRE_BACKUP_WITHIN:
		return set_backup(o, arg, d);
	case OPT_SERVE_CLIENT_CA: {
		static bool warned; /* once per process: a reload reads the config file again */

		if (!warned)
			fprintf(stderr, "kha lock: note: --serve-client-ca is deprecated, use "
					"--serve-cacert (the same CA, named as every command's)\n");
		warned = true;
		return kha_opt_set_str(&o->serve_client_ca, arg, d);
	}
	default: /* OPT_GROUP */
		if (!kha_fleetlock_group_valid(arg))
			return kha_diag_set(d, EINVAL, "'%s' is not a group name ([a-zA-Z0-9.-]+)",
					    arg);
		for (size_t i = 0; i < o->n_groups; i++)
			if (strcmp(o->groups[i], arg) == 0)
				return 0;
		if (o->n_groups == KHA_FLEETLOCK_GROUPS)
			return kha_diag_set(d, EINVAL, "at most %d groups", KHA_FLEETLOCK_GROUPS);
		o->groups[o->n_groups] = strdup(arg);
		if (!o->groups[o->n_groups])
			return kha_diag_set(d, ENOMEM, "out of memory");
		o->n_groups++;
		return 0;
	}
}

/* ---- status ------------------------------------------------------------------------------- */

static int print_status(const struct opts *o, const char *me)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_lock_status st = {0};
	struct kha_diag d = {};
	int r;

	r = kha_etcd_new(&o->etcd, &c, &d);
	if (r == 0)
		r = kha_lock_status_get(c, o->lock, o->slots_set ? o->slots : 0, &st, &d);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", me, d.msg);
		if (o->json)
			cmd_print_json_error(me, kha_exit_from_errno(r), d.msg);
		return kha_exit_from_errno(r);
	}
	if (o->json) {
		json_t *arr = kha_lock_status_json(&st);
		json_t *root = arr ? json_pack("{s:s,s:I,s:I,s:o}", "lock", o->lock, "revision",
					       (json_int_t)st.revision, "holders",
					       (json_int_t)st.holders, "contenders", arr)
				   : NULL;

		r = cmd_print_json(root);
	} else {
		kha_lock_status_print(stdout, &st, (int64_t)kha_wall_us());
		r = 0;
	}
	kha_lock_status_release(&st);
	return r < 0 ? kha_exit_from_errno(r) : KHA_EXIT_OK;
}

/* ---- serve ---------------------------------------------------------------------------------- */

/* What a SIGHUP of kha lock serve changes: the groups, the --client-ids file, the log settings. */
struct serve_reload {
	const struct cmd_opt *table;
	struct kha_args_source src;
	struct opts *running;
	struct kha_fleetlock_opts *fo;
	struct kha_fleetlock_idmap *idmap;
};

static int reload_read(const struct cmd_opt *table, const struct kha_args_source *src,
		       struct opts *o, struct kha_diag *d);
static void reload_apply_common(const struct opts *o, const struct opts *run);

static int serve_reload(void *userdata, struct kha_diag *d)
{
	struct serve_reload *sr = userdata;
	struct opts *run = sr->running;
	struct opts o = {.slots = 1,
			 .level = KHA_LOG_INFO,
			 .format = KHA_LOG_LOGFMT,
			 .argc = sr->src.argc,
			 .argv = sr->src.argv};
	struct kha_fleetlock_idmap map = {};
	char *groups[KHA_FLEETLOCK_GROUPS], *ids;
	size_t n;
	int r = -EINVAL;

	if (reload_read(sr->table, &sr->src, &o, d) < 0)
		goto out;
	if (o.client_ids && !run->serve_client_ca) {
		r = kha_diag_set(d, EINVAL, "--client-ids needs --serve-cacert");
		goto out;
	}
	if (o.client_ids) {
		r = kha_fleetlock_idmap_load(o.client_ids, &map, d);
		if (r < 0) {
			kha_diag_prefix(d, "--client-ids");
			goto out;
		}
	}
	/* swap the new groups and ids in; o then releases the old ones */
	memcpy(groups, run->groups, sizeof(groups));
	memcpy(run->groups, o.groups, sizeof(groups));
	memcpy(o.groups, groups, sizeof(groups));
	n = run->n_groups;
	run->n_groups = o.n_groups;
	o.n_groups = n;
	ids = run->client_ids;
	run->client_ids = o.client_ids;
	o.client_ids = ids;
	sr->fo->n_groups = run->n_groups;
	kha_fleetlock_idmap_release(sr->idmap);
	*sr->idmap = map;
	sr->fo->idmap = run->client_ids ? sr->idmap : NULL;
	reload_apply_common(&o, run);
	r = 0;
out:
	opts_release(&o);
	return r;
}

static int serve(struct opts *o, const struct kha_lock_gates *gates, struct serve_reload *sr)
{
	struct kha_fleetlock_stats stats = {0};
	struct kha_fleetlock_opts fo = {
		.listen = o->listen ? o->listen : "127.0.0.1:3333",
		.lock = o->lock,
		.slots = o->slots,
		.etcd = &o->etcd,
		.gates = gates,
		.stats = &stats,
		.metrics_addr = o->metrics_addr,
		.tls_cert = o->serve_cert,
		.tls_key = o->serve_key,
		.tls_client_ca = o->serve_client_ca,
		.insecure_no_client_certs = o->insecure_no_client_certs,
		.groups = (const char *const *)o->groups,
		.n_groups = o->n_groups,
		.reload = serve_reload,
		.reload_userdata = sr,
	};
	struct kha_fleetlock_idmap idmap = {};
	struct kha_diag d = {};
	int r;

	sr->running = o;
	sr->fo = &fo;
	sr->idmap = &idmap;

	if (!!o->serve_cert != !!o->serve_key || (o->serve_client_ca && !o->serve_cert)) {
		fprintf(stderr, "kha lock serve: --serve-cert and --serve-key go together, and "
				"--serve-cacert needs them (run 'kha lock serve --help')\n");
		return KHA_EXIT_USAGE;
	}
	if (o->client_ids && !o->serve_client_ca) {
		fprintf(stderr, "kha lock serve: --client-ids maps client certificates: it needs "
				"--serve-cacert (run 'kha lock serve --help')\n");
		return KHA_EXIT_USAGE;
	}
	if (o->client_ids) {
		r = kha_fleetlock_idmap_load(o->client_ids, &idmap, &d);
		if (r < 0) {
			fprintf(stderr, "kha lock serve: --client-ids %s\n", d.msg);
			return r == -ENOMEM ? KHA_EXIT_SOFTWARE : KHA_EXIT_CONFIG;
		}
		fo.idmap = &idmap;
	}
	r = kha_fleetlock_serve(&fo, &d);
	kha_fleetlock_idmap_release(&idmap);
	if (r < 0) {
		fprintf(stderr, "kha lock serve: %s\n", d.msg);
		if (r == -EINVAL)
			return strncmp(d.msg, "--serve-", 8) == 0 ? KHA_EXIT_CONFIG
								  : KHA_EXIT_USAGE;
		return kha_exit_from_errno(r);
	}
	return KHA_EXIT_OK;
}

/* ---- main ----------------------------------------------------------------------------------- */

/* Whether two optional strings are equal. */
static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Adds " key" to kept for each setting of o that differs from run and needs a restart. */
static void kept_keys(const struct opts *o, const struct opts *run, char *kept, size_t size)
{
#define KEPT(cond, key)                                                              \
	do {                                                                         \
		if (cond)                                                            \
			snprintf(kept + strlen(kept), size - strlen(kept), " " key); \
	} while (0)
	KEPT(!o->lock || !run->lock || strcmp(o->lock, run->lock) != 0 || o->slots != run->slots,
	     "lock");
	KEPT(o->ttl_us && o->ttl_us != run->ttl_us, "ttl");
	KEPT(o->has_window != run->has_window ||
		     o->require_etcd_healthy != run->require_etcd_healthy ||
		     o->backup_max_age_us != run->backup_max_age_us,
	     "gates");
	KEPT(!same(o->listen, run->listen) || !same(o->metrics_addr, run->metrics_addr), "listen");
	KEPT(!same(o->serve_cert, run->serve_cert) || !same(o->serve_key, run->serve_key) ||
		     !same(o->serve_client_ca, run->serve_client_ca) ||
		     o->insecure_no_client_certs != run->insecure_no_client_certs,
	     "tls");
#undef KEPT
}

/* Reads the configuration again into o (fresh, defaults set): the same sources, same handler. */
static int reload_read(const struct cmd_opt *table, const struct kha_args_source *src,
		       struct opts *o, struct kha_diag *d)
{
	if (kha_etcd_config_init(&o->etcd) < 0 || kha_etcd_config_from_env(&o->etcd, d) < 0 ||
	    cmd_opts_reapply(table, apply, o, src, d) != 0)
		return -EINVAL;
	return 0;
}

/* Logs the keys that need a restart and applies the log settings. */
static void reload_apply_common(const struct opts *o, const struct opts *run)
{
	char kept[160] = "";

	kept_keys(o, run, kept, sizeof(kept));
	if (kept[0])
		kha_warn("configuration keys not applied until a restart", "keys=%s",
			 KHA_LOGQ(kept + 1));
	kha_log_setup(o->level, o->format);
}

/*
 * What a SIGHUP reads again: the same sources, through the same option handler. The log
 * settings apply at once; the lock's own settings (name, slots, TTL, gates) need a restart
 * (a holder must not change the rules under its peers), and the log says which ones changed.
 */
struct reload_ctx {
	const struct cmd_opt *table;
	struct kha_args_source src;
	const struct opts *running;
};

static int reload(void *userdata, struct kha_elect_reloaded *ret, struct kha_diag *d)
{
	const struct reload_ctx *rc = userdata;
	const struct opts *run = rc->running;
	struct opts o = {.slots = 1,
			 .level = KHA_LOG_INFO,
			 .format = KHA_LOG_LOGFMT,
			 .argc = rc->src.argc,
			 .argv = rc->src.argv};
	int r = -EINVAL;

	(void)ret; /* kha lock never restarts COMMAND: nothing of the engine changes */
	if (reload_read(rc->table, &rc->src, &o, d) < 0)
		goto out;
	reload_apply_common(&o, run);
	r = 0;
out:
	opts_release(&o);
	return r;
}

/* A usage error of the command me: prints it and returns KHA_EXIT_USAGE. */
static int KHA_PRINTF(2, 3) usage_error(const char *me, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", me);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (run '%s --help')\n", me);
	return KHA_EXIT_USAGE;
}

/* What the flags and operands must say together: 0, or KHA_EXIT_USAGE after printing why. */
static int check_flags(const struct opts *o, bool serving, const char *me, int argc, char **argv)
{
	if (!o->lock || !o->lock[0])
		return usage_error(me, "%s",
				   o->lock ? "--lock: the name is empty" : "--lock is required");
	if (o->status && serving)
		return usage_error(me, "--status is not a serve flag");
	if (o->status || serving) {
		if (optind < argc)
			return usage_error(me, "unexpected argument '%s'", argv[optind]);
	} else if (optind >= argc) {
		return usage_error(me, "no COMMAND given: kha lock [flags] -- COMMAND [ARGS...]");
	} else {
		kha_autofree char *path = NULL;

		if (kha_proc_find_program(argv[optind], &path) < 0)
			return usage_error(me, "COMMAND '%s' not found or not executable",
					   argv[optind]);
	}
	return 0;
}

/* Takes a slot and runs COMMAND (argv) while holding it; returns the exit code. */
static int hold(struct opts *o, struct kha_lock_gates *gates, struct reload_ctx *rc, const char *me,
		char **argv)
{
	struct kha_elect_stats stats = {0};
	struct kha_diag d = {};
	kha_autofree char *value = NULL;
	int r, status = 0;

	/* kha elect's etcd derivation (renew deadline TTL*2/3, the same checks); a lock's own
	 * default TTL is 30 s, not 10 s (docs/lock.md) */
	struct kha_elect_timers t = {.ttl_us = o->ttl_us ? o->ttl_us : 30 * KHA_USEC_PER_SEC,
				     .renew_deadline_us = o->renew_deadline_us};

	if (kha_elect_timers_derive(&t, false, &d) < 0)
		return usage_error(me, "%s", d.msg);
	o->ttl_us = t.ttl_us;
	o->renew_deadline_us = t.renew_deadline_us;
	if (!o->id) {
		char host[256] = "localhost";

		if (gethostname(host, sizeof(host) - 1) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		o->id = strdup(host);
	}
	value = kha_lock_value(o->id ? o->id : "", o->slots, (int64_t)kha_wall_us(), false);
	if (!o->id || !value)
		return KHA_EXIT_SOFTWARE;
	const struct kha_elect_opts eo = {
		.name = o->lock,
		.id = o->id,
		.value = value,
		.slots = o->slots,
		.ttl_us = o->ttl_us,
		.renew_deadline_us = o->renew_deadline_us,
		.grace_us = o->grace_us,
		.argv = (const char *const *)argv,
		.env_name = "KHA_LOCK",
		.restart = KHA_ELECT_RESTART_NO,
		.exit_on_loss = true,
		.gate = (o->has_window || o->require_etcd_healthy || o->backup_max_age_us)
				? kha_lock_gates_check
				: NULL,
		.gate_userdata = gates,
		.gate_interval_us =
			o->gate_interval_us ? o->gate_interval_us : 10 * KHA_USEC_PER_SEC,
		.etcd = &o->etcd,
		.stats = &stats,
		.what = "lock",
		.reload = reload,
		.reload_userdata = rc,
	};
	r = kha_elect_run_served(&eo, o->metrics_addr, "kha_lock", &status, &d);
	if (r < 0) {
		fprintf(stderr, "kha lock: %s\n", d.msg);
		return kha_exit_from_errno(r);
	}
	return status;
}

int cmd_lock_main(int argc, char **argv)
{
	struct opts o = {.slots = 1,
			 .level = KHA_LOG_INFO,
			 .format = KHA_LOG_LOGFMT,
			 .grace_us = 10 * KHA_USEC_PER_SEC};
	struct kha_lock_gates gates = {0};
	struct kha_diag d = {};
	const struct cmd_opt *table = options;
	const char *me = "kha lock";
	void (*help)(FILE * out) = usage;
	struct reload_ctx rc = {.running = &o};
	bool serving = false;
	int code;

	if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
		serving = true;
		me = "kha lock serve";
		table = serve_table;
		help = usage_serve;
		argc--;
		argv++;
	} else if (argc >= 2 && strcmp(argv[1], "status") == 0) {
		o.status = true;
		me = "kha lock status";
		table = status_options;
		help = usage_status;
		argc--;
		argv++;
	}
	rc.table = table;
	rc.src = (struct kha_args_source){.argc = argc, .argv = argv};
	if (kha_etcd_config_init(&o.etcd) < 0)
		return KHA_EXIT_SOFTWARE;
	if (cmd_opts_scan(table, argc, argv, &rc.src.config)) {
		help(stdout);
		opts_release(&o);
		return KHA_EXIT_OK;
	}
	o.argc = argc;
	o.argv = argv;
	if (kha_etcd_config_from_env(&o.etcd, &d) < 0) {
		fprintf(stderr, "%s: %s\n", me, d.msg);
		opts_release(&o);
		return KHA_EXIT_USAGE;
	}
	code = cmd_opts_reapply(table, apply, &o, &rc.src, &d);
	if (code != 0) {
		fprintf(stderr, "%s: %s", me, d.msg);
		if (code == KHA_EXIT_USAGE)
			fprintf(stderr, " (run '%s --help')", me);
		fprintf(stderr, "\n");
		opts_release(&o);
		return code;
	}
	kha_log_setup(o.level, o.format);
	code = check_flags(&o, serving, me, argc, argv);
	gates = (struct kha_lock_gates){
		.window = o.has_window ? &o.window : NULL,
		.require_etcd_healthy = o.require_etcd_healthy,
		.etcd = &o.etcd,
		.backup_max_age_us = o.backup_max_age_us,
		.backup_dir = o.backup_dir,
	};
	if (code == 0 && o.status) {
		code = print_status(&o, me);
	} else if (code == 0 && serving) {
		struct serve_reload sr = {.table = table, .src = rc.src};

		code = serve(&o, &gates, &sr);
	} else if (code == 0) {
		code = hold(&o, &gates, &rc, me, argv + optind);
	}
	opts_release(&o);
	return code;
}
