// SPDX-License-Identifier: MIT
/*
 * kha etcd member list|add|remove|promote|replace: membership changes that never cost quorum
 * unless --force says so (the guards are in lib/etcdops/guard.c, the steps of replace and
 * their order in lib/etcdops/replace.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-etcd.h"
#include "cmd-opt.h"
#include "kha/etcdops.h"
#include "kha/etcd.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define DEFAULT_PROMOTE_TIMEOUT_US (2 * 60 * KHA_USEC_PER_SEC)
#define DEFAULT_START_TIMEOUT_US   (10 * 60 * KHA_USEC_PER_SEC)
#define EXIT_REFUSED		   1

enum {
	OPT_PEER_URLS = 0x100,
	OPT_LEARNER,
	OPT_FORCE,
	OPT_TIMEOUT,
	OPT_NAME,
	OPT_START_TIMEOUT,
};

struct opts {
	const char *sub;
	char cmd[32]; /* "member SUB", for the shared messages */
	struct kha_etcd_config cfg;
	bool json;
	bool learner;
	bool force;
	char **peer_urls;
	size_t n_peer_urls;
	const char *name;
	uint64_t timeout_us;
	uint64_t start_timeout_us;
	const char *arg;	      /* the positional NAME|ID */
	struct cmd_progress progress; /* of the current wait */
	struct kha_etcdops_change ch; /* the change, speaking through on_progress and on_note */
};

static void opts_release(struct opts *o)
{
	kha_etcd_config_release(&o->cfg);
	for (size_t i = 0; i < o->n_peer_urls; i++)
		free(o->peer_urls[i]);
	free(o->peer_urls);
}

/* ---- help --------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd member list|add|remove|promote|replace [flags]\n\n"
		"  list                          members, roles, who answers, the leader\n"
		"  add NAME --peer-urls URL      add a member (--learner: a non-voting one)\n"
		"  remove NAME|ID                remove a member\n"
		"  promote NAME|ID               make a learner vote, once it has caught up\n"
		"  replace OLD --name NEW --peer-urls URL\n"
		"                                the safe sequence for a dead or retired member,\n"
		"                                and the repair of a CORRUPT alarm\n\n"
		"Every change is checked first against rules that keep quorum (run a subcommand\n"
		"with --help, and see docs/etcd-ops.md): a refused change names its rule and the\n"
		"way out, and exits 1 without changing anything; --force overrides the rules that\n"
		"may be overridden.\n\n"
		"Example:\n"
		"  kha etcd member add etcd-4 --learner --peer-urls https://10.0.0.4:2380 "
		"--endpoints https://10.0.0.1:2379 --cacert ca.crt\n");
}

/*
 * The flags of each subcommand, for its help; parse() reads them all (all_options) so that a
 * flag of another subcommand is named as such ("--learner does not apply to list").
 */
#define F_ETCD	 CMD_OPT_INCLUDE_ETCD(struct opts, cfg)
#define F_OUTPUT CMD_OPT_OUTPUT_ENTRY(struct opts, json, "report format (default table)")
#define F_PEER_URLS                                                                      \
	{                                                                                \
		CMD_OPT_CALL, "peer-urls", 0, "URL[,URL]", "the new member's peer URLs", \
			OPT_PEER_URLS, 0, 0, NULL                                        \
	}
#define F_LEARNER                                                                                \
	{                                                                                        \
		CMD_OPT_CALL, "learner", 0, NULL, "add a non-voting learner", OPT_LEARNER, 0, 0, \
			NULL                                                                     \
	}
#define F_NAME                                                                                 \
	{                                                                                      \
		CMD_OPT_CALL, "name", 0, "NAME", "the new member's name", OPT_NAME, 0, 0, NULL \
	}
#define F_START_TIMEOUT                                                                        \
	{                                                                                      \
		CMD_OPT_CALL, "start-timeout", 0, "DURATION",                                  \
			"wait this long for NEW to start (10m)", OPT_START_TIMEOUT, 0, 0, NULL \
	}
#define F_TIMEOUT                                                                                  \
	{                                                                                          \
		CMD_OPT_CALL, "timeout", 0, "DURATION",                                            \
			"wait this long for the learner to catch up (2m)", OPT_TIMEOUT, 0, 0, NULL \
	}
#define F_FORCE                                                                                    \
	{                                                                                          \
		CMD_OPT_CALL, "force", 0, NULL, "do it even when a rule refuses", OPT_FORCE, 0, 0, \
			NULL                                                                       \
	}

static const struct cmd_opt list_options[] = {F_ETCD, F_OUTPUT, CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt add_options[] = {F_ETCD,   F_PEER_URLS,	   F_LEARNER, F_FORCE,
					     F_OUTPUT, CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt remove_options[] = {F_ETCD, F_FORCE, F_OUTPUT, CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt promote_options[] = {
	F_ETCD, F_TIMEOUT, F_OUTPUT, CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt replace_options[] = {F_ETCD,	  F_PEER_URLS,	      F_NAME,
						 F_START_TIMEOUT, F_TIMEOUT,	      F_FORCE,
						 F_OUTPUT,	  CMD_OPT_HELP_ENTRY, {}};
static const struct cmd_opt all_options[] = {
	F_ETCD,	 F_PEER_URLS, F_LEARNER,	  F_NAME, F_START_TIMEOUT, F_TIMEOUT,
	F_FORCE, F_OUTPUT,    CMD_OPT_HELP_ENTRY, {}};

static void sub_usage(FILE *out, const char *sub)
{
	if (strcmp(sub, "list") == 0)
		fprintf(out, "Usage: kha etcd member list [flags]\n\n"
			     "Lists the members with their role (voter, learner), whether they "
			     "answer, and the leader.\n\n");
	else if (strcmp(sub, "add") == 0)
		fprintf(out,
			"Usage: kha etcd member add NAME --peer-urls URL[,URL] [--learner] "
			"[--force] [flags]\n\n"
			"Adds a member and prints the exact flags it must start with (--name,\n"
			"--initial-cluster, --initial-cluster-state existing,\n"
			"--initial-advertise-peer-urls). Refused when the cluster is not healthy\n"
			"enough, or when a voting member would lower the failures the cluster\n"
			"tolerates until it runs (3 -> 4 voters: quorum grows to 3 at once while only\n"
			"3 members vote: a single failure then stops the cluster). Add a learner\n"
			"instead (it does not vote, quorum does not change), start it, then promote\n"
			"it.\n\n");
	else if (strcmp(sub, "remove") == 0)
		fprintf(out,
			"Usage: kha etcd member remove NAME|ID [--force] [flags]\n\n"
			"Removes a member. Refused when fewer voters than the new quorum "
			"would be up,\nor when it is the leader while another voter is down or "
			"lagging.\n\n");
	else if (strcmp(sub, "promote") == 0)
		fprintf(out,
			"Usage: kha etcd member promote NAME|ID [--timeout DURATION] [flags]\n\n"
			"Promotes a learner to a voting member. etcd refuses until the learner is in\n"
			"sync with the leader: kha retries (showing how far behind it is) until\n"
			"--timeout (default 2m).\n\n");
	else
		fprintf(out,
			"Usage: kha etcd member replace OLD --name NEW --peer-urls URL [flags]\n\n"
			"Replaces member OLD by NEW without ever costing quorum. OLD alive (a planned\n"
			"replacement): learner first:\n"
			"  1. add NEW as a learner (it does not vote: quorum does not change) and\n"
			"     print the flags to start it with;\n"
			"  2. wait until NEW has started and caught up (--start-timeout, default 10m);\n"
			"  3. promote NEW (--timeout, default 2m);  4. remove OLD.\n"
			"Removing OLD first would leave 3 members with 2 voters (no failure\n"
			"tolerated) for the whole catch-up.\n"
			"OLD dead: remove it first, then steps 1-3. etcd refuses any member add, even\n"
			"a learner, while a voting member is unreachable (its strict reconfiguration\n"
			"check), and a dead voter already costs the failure it would tolerate:\n"
			"removing it loses nothing.\n"
			"OLD carries a CORRUPT alarm (its data differs from the others'): the repair,\n"
			"the one change allowed while the alarm is active. Stop OLD's etcd first\n"
			"(refused while it answers), then: remove OLD, disarm the CORRUPT alarm and\n"
			"check that no alarm remains, then steps 1-3. etcd 3.4 names no member in its\n"
			"alarm: OLD must then be the member kha etcd check consistency blames (replace\n"
			"runs that check and prints its summary).\n\n");
	fprintf(out, "Flags:\n");
	cmd_opts_help(out, strcmp(sub, "list") == 0	 ? list_options
			   : strcmp(sub, "add") == 0	 ? add_options
			   : strcmp(sub, "remove") == 0	 ? remove_options
			   : strcmp(sub, "promote") == 0 ? promote_options
							 : replace_options);
	fprintf(out, "\n"
		     "Exit codes: 0 done, 1 refused by a rule (nothing changed), 64 usage or "
		     "unknown member,\n65 bad reply, 69 unreachable or timed out, 78 TLS files "
		     "or trust.\n");
	if (strcmp(sub, "replace") == 0)
		fprintf(out, "Repairing a CORRUPT alarm: 2 OLD was removed and the alarm disarmed, "
			     "but an alarm\nremains (kha etcd alarm list).\n");
	fprintf(out, "\nExample:\n");
	if (strcmp(sub, "replace") == 0)
		fprintf(out, "  kha etcd member replace etcd-2 --name etcd-4 --peer-urls "
			     "https://10.0.0.4:2380 --endpoints https://10.0.0.1:2379\n");
	else if (strcmp(sub, "add") == 0)
		fprintf(out, "  kha etcd member add etcd-4 --learner --peer-urls "
			     "https://10.0.0.4:2380 --endpoints https://10.0.0.1:2379\n");
	else
		fprintf(out,
			"  kha etcd member %s%s --endpoints https://10.0.0.1:2379 "
			"--cacert ca.crt\n",
			sub, strcmp(sub, "list") == 0 ? "" : " etcd-2");
}

/* The help of the subcommand being parsed (cmd_opts_parse takes a help of one argument). */
static const char *help_sub;

static void help(FILE *out)
{
	sub_usage(out, help_sub);
}

/* ---- flags -------------------------------------------------------------------------------- */

static int add_peer_urls(struct opts *o, const char *list, struct kha_diag *d)
{
	kha_autofree char *copy = strdup(list);
	char *save = NULL, *tok;

	if (!copy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (kha_etcdops_member_check_peer_url(tok, d) < 0)
			return -EINVAL;
		if (KHA_RESIZE(o->peer_urls, o->n_peer_urls + 1) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		o->peer_urls[o->n_peer_urls] = strdup(tok);
		if (!o->peer_urls[o->n_peer_urls])
			return kha_diag_set(d, ENOMEM, "out of memory");
		o->n_peer_urls++;
	}
	if (!o->n_peer_urls)
		return kha_diag_set(d, EINVAL, "empty");
	return 0;
}

/* The flags of all_options, each refused where it does not apply. */
static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct opts *o = target;
	bool add = strcmp(o->sub, "add") == 0, replace = strcmp(o->sub, "replace") == 0;
	bool promote = strcmp(o->sub, "promote") == 0;
	uint64_t *dur = NULL;
	bool ok = true;

	switch (val) {
	case OPT_PEER_URLS:
		ok = add || replace;
		break;
	case OPT_LEARNER:
		ok = add;
		o->learner = true;
		break;
	case OPT_FORCE:
		ok = strcmp(o->sub, "list") != 0 && !promote;
		o->force = true;
		break;
	case OPT_NAME:
		ok = replace;
		o->name = arg;
		break;
	case OPT_TIMEOUT:
		ok = replace || promote;
		dur = &o->timeout_us;
		break;
	default: /* OPT_START_TIMEOUT */
		ok = replace;
		dur = &o->start_timeout_us;
		break;
	}
	if (!ok) {
		const struct cmd_opt *t = all_options;

		while (t->kind != CMD_OPT_CALL || t->val != val)
			t++;
		return kha_diag_set(d, EINVAL, "--%s does not apply to %s", t->name, o->sub);
	}
	if (val == OPT_PEER_URLS)
		return add_peer_urls(o, arg, d);
	if (dur && (kha_parse_duration_us(arg, dur) < 0 || !*dur))
		return kha_diag_set(d, EINVAL, "'%s' is not a positive duration (e.g. 5m)", arg);
	return 0;
}

/* Returns 0 to go on, or an exit code + 1000 (so 0 = help printed is distinguishable). */
static int parse(int argc, char **argv, struct opts *o)
{
	bool add = strcmp(o->sub, "add") == 0, replace = strcmp(o->sub, "replace") == 0;
	bool list = strcmp(o->sub, "list") == 0;
	char who[48];
	int code;

	o->timeout_us = DEFAULT_PROMOTE_TIMEOUT_US;
	o->start_timeout_us = DEFAULT_START_TIMEOUT_US;
	snprintf(o->cmd, sizeof(o->cmd), "member %s", o->sub);
	snprintf(who, sizeof(who), "kha etcd member %s", o->sub);
	code = cmd_etcd_config_start(o->cmd, &o->cfg);
	if (code)
		return 1000 + code;
	help_sub = o->sub;
	code = cmd_opts_parse(all_options, apply, o, who, help, argc, argv);
	if (code >= 0)
		return 1000 + code;
	if (list) {
		if (optind < argc) {
			fprintf(stderr, "kha etcd member list: unexpected argument '%s'\n",
				argv[optind]);
			return 1000 + KHA_EXIT_USAGE;
		}
		return 0;
	}
	if (optind != argc - 1) {
		fprintf(stderr,
			"kha etcd member %s: expected one %s (run 'kha etcd member %s --help')\n",
			o->sub, add ? "NAME" : "NAME|ID", o->sub);
		return 1000 + KHA_EXIT_USAGE;
	}
	o->arg = argv[optind];
	if ((add || replace) && !o->n_peer_urls) {
		fprintf(stderr, "kha etcd member %s: --peer-urls is required\n", o->sub);
		return 1000 + KHA_EXIT_USAGE;
	}
	if (replace && (!o->name || !*o->name)) {
		fprintf(stderr, "kha etcd member replace: --name NEW is required\n");
		return 1000 + KHA_EXIT_USAGE;
	}
	if (add && (!*o->arg || strchr(o->arg, '=') || strchr(o->arg, ','))) {
		fprintf(stderr, "kha etcd member add: '%s' is not a usable member name\n", o->arg);
		return 1000 + KHA_EXIT_USAGE;
	}
	return 0;
}

/* ---- shared ------------------------------------------------------------------------------- */

static int fail(const struct opts *o, int r, const struct kha_diag *d)
{
	char who[64];

	snprintf(who, sizeof(who), "kha etcd member %s", o->sub);
	return cmd_fail(who, o->json, cmd_etcd_exit_code(r, d), "%s", d->msg);
}

/* A wait's state, rewritten in place; NULL: the wait is over. */
static void on_progress(void *userdata, const char *text)
{
	struct opts *o = userdata;
	char who[64];

	if (!text) {
		cmd_progress_done(&o->progress);
		return;
	}
	snprintf(who, sizeof(who), "kha etcd member %s", o->sub);
	cmd_progress_say(&o->progress, who, text);
}

static void on_note(void *userdata, const char *text)
{
	const struct opts *o = userdata;

	fprintf(stderr, "kha etcd member %s: %s\n", o->sub, text);
}

/* The cluster as it is now; a change waits for a live leader first (kha_etcdops_change_report). */
static int report(struct opts *o, struct kha_etcd_cluster_report *rep)
{
	struct kha_diag d = {};
	int r = kha_etcdops_change_report(&o->ch, strcmp(o->sub, "list") != 0, rep, &d);

	return r < 0 ? fail(o, r, &d) : 0;
}

static const char *label(char *buf, size_t n, const struct kha_etcd_member *m)
{
	if (m->name[0])
		snprintf(buf, n, "%s", m->name);
	else
		snprintf(buf, n, "%" PRIx64, m->id);
	return buf;
}

/* The NAME column: "(unstarted)" as kha etcd status shows a member that never started. */
static const char *name_cell(char *buf, size_t n, const struct kha_etcd_member *m)
{
	snprintf(buf, n, "%s", m->name[0] ? m->name : "(unstarted)");
	return buf;
}

/*
 * Says a guard's verdict: the refusal, the override by --force, or a note. Returns 0 to
 * proceed or EXIT_REFUSED.
 */
static int guard_say(const struct opts *o, const struct kha_etcdops_guard_verdict *v)
{
	if (!v->allowed) {
		if (o->force && v->forceable) {
			fprintf(stderr,
				"kha etcd member %s: warning: --force overrides rule %s: %s\n",
				o->sub, v->rule, v->reason);
			return 0;
		}
		fprintf(stderr, "kha etcd member %s: refused (%s): %s%s\n", o->sub, v->rule,
			v->reason, v->forceable ? " (--force to do it anyway)" : "");
		return EXIT_REFUSED;
	}
	if (v->warning[0])
		fprintf(stderr, "kha etcd member %s: note: %s\n", o->sub, v->warning);
	return 0;
}

/* Runs the guard; prints a refusal or a warning. Returns 0 to proceed or an exit code. */
static int guard(const struct opts *o, const struct kha_etcd_cluster_report *rep,
		 const struct kha_etcdops_guard_request *req, struct kha_etcdops_guard_verdict *v)
{
	if (kha_etcdops_guard_check_report(rep, 0, req, v) < 0)
		return KHA_EXIT_SOFTWARE;
	return guard_say(o, v);
}

/* Runs the guard on the cluster as it is now. Returns 0 to proceed or an exit code. */
static int guard_now(struct opts *o, const struct kha_etcdops_guard_request *req,
		     struct kha_etcdops_guard_verdict *v)
{
	struct kha_etcd_cluster_report rep = {};
	int code = report(o, &rep);

	if (code)
		return code;
	code = guard(o, &rep, req, v);
	kha_etcd_cluster_report_release(&rep);
	return code;
}

/*
 * Runs the guard on a change of the member at idx of rep (kha_etcdops_member_find's answer, with d
 * saying why when negative): sets req->target, and its label in name. Releases rep. Returns 0
 * to proceed or an exit code.
 */
static int guard_member(struct opts *o, struct kha_etcd_cluster_report *rep, int idx,
			const struct kha_diag *d, struct kha_etcdops_guard_request *req,
			struct kha_etcdops_guard_verdict *v, char *name, size_t size)
{
	int code;

	if (idx < 0) {
		kha_etcd_cluster_report_release(rep);
		return fail(o, idx, d);
	}
	req->target = rep->members[idx].member.id;
	label(name, size, &rep->members[idx].member);
	code = guard(o, rep, req, v);
	kha_etcd_cluster_report_release(rep);
	return code;
}

/* Prints o (taken) as the JSON report; returns the exit code. */
static int dump(json_t *o)
{
	int r = cmd_print_json(o);

	return r == -ENOMEM ? KHA_EXIT_SOFTWARE : r < 0 ? KHA_EXIT_IOERR : KHA_EXIT_OK;
}

static json_t *guard_json(const struct kha_etcdops_guard_verdict *v)
{
	return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:s}", "voters_before",
			 (int)v->voters_before, "voters_after", (int)v->voters_after,
			 "quorum_before", (int)v->quorum_before, "quorum_after",
			 (int)v->quorum_after, "tolerance_before", v->tolerance_before,
			 "tolerance_after", v->tolerance_after, "warning", v->warning);
}

static int find_member(struct opts *o, const struct kha_etcd_cluster_report *rep,
		       struct kha_diag *d)
{
	return kha_etcdops_change_find(&o->ch, rep, o->arg, d);
}

/* Records (add) or forgets (remove) the name of member id; a failure is only a note. */
static void remember_name(struct opts *o, uint64_t id, const char *name)
{
	struct kha_diag d = {};
	int r = kha_etcdops_change_name(&o->ch, id, name, &d);

	if (r < 0 && name)
		fprintf(stderr,
			"kha etcd member %s: note: could not record the name %s under " KHA_ETCDOPS_MEMBER_NAME_PREFIX
			" (%s): until it starts, name it by its id %" PRIx64 "\n",
			o->sub, name, d.msg, id);
}

/* ---- list --------------------------------------------------------------------------------- */

static int cmd_list(struct opts *o)
{
	struct kha_etcd_cluster_report rep = {};
	int code = report(o, &rep);
	size_t w[3] = {4, 2, 9}; /* NAME, ID, PEER URLS */
	char buf[64];

	if (code)
		return code;
	if (o->json) {
		json_t *members = json_array();

		for (size_t i = 0; i < rep.n_members; i++) {
			const struct kha_etcd_member_report *m = &rep.members[i];
			json_array_append_new(
				members,
				json_pack("{s:o, s:s, s:b, s:b, s:b, s:b, s:o, s:o}", "id",
					  cmd_json_hex(m->member.id), "name", m->member.name,
					  "is_learner", m->member.is_learner, "started",
					  m->member.name[0] != 0, "reachable", m->reachable,
					  "is_leader",
					  rep.health.leader && rep.health.leader == m->member.id,
					  "peer_urls",
					  cmd_json_strings(m->member.peer_urls,
							   m->member.n_peer_urls),
					  "client_urls",
					  cmd_json_strings(m->member.client_urls,
							   m->member.n_client_urls)));
		}
		/* "verdict" as every report; "health" is its old name, kept for scripts */
		code = dump(json_pack(
			"{s:o, s:s, s:s, s:o}", "cluster_id", cmd_json_hex(rep.cluster_id),
			"verdict", kha_etcd_verdict_name(rep.health.verdict), "health",
			kha_etcd_verdict_name(rep.health.verdict), "members", members));
		kha_etcd_cluster_report_release(&rep);
		return code;
	}
	for (size_t i = 0; i < rep.n_members; i++) {
		const struct kha_etcd_member *m = &rep.members[i].member;
		w[0] = KHA_MAX(w[0], strlen(name_cell(buf, sizeof(buf), m)));
		size_t peers = 0;

		snprintf(buf, sizeof(buf), "%" PRIx64, m->id);
		w[1] = KHA_MAX(w[1], strlen(buf));
		for (size_t u = 0; u < m->n_peer_urls; u++)
			peers += strlen(m->peer_urls[u]) + (u ? 1 : 0);
		w[2] = KHA_MAX(w[2], peers);
	}
	printf("%-*s  %-*s  %-7s  %-9s  %-6s  %-*s  %s\n", (int)w[0], "NAME", (int)w[1], "ID",
	       "ROLE", "STATE", "LEADER", (int)w[2], "PEER URLS", "CLIENT URLS");
	for (size_t i = 0; i < rep.n_members; i++) {
		const struct kha_etcd_member_report *m = &rep.members[i];
		char id[24];

		snprintf(id, sizeof(id), "%" PRIx64, m->member.id);
		printf("%-*s  %-*s  %-7s  %-9s  %-6s  ", (int)w[0],
		       KHA_TERM(name_cell(buf, sizeof(buf), &m->member)), (int)w[1], id,
		       m->member.is_learner ? "learner" : "voter",
		       !m->member.name[0] ? "unstarted"
		       : m->reachable	  ? "up"
					  : "DOWN",
		       rep.health.leader == m->member.id ? "*" : "");
		size_t peers = 0;

		for (size_t u = 0; u < m->member.n_peer_urls; u++)
			peers += (size_t)printf("%s%s", u ? "," : "",
						KHA_TERM(m->member.peer_urls[u]));
		printf("%*s  ", (int)(w[2] - peers), "");
		for (size_t u = 0; u < m->member.n_client_urls; u++)
			printf("%s%s", u ? "," : "", KHA_TERM(m->member.client_urls[u]));
		printf("%s\n", m->member.n_client_urls ? "" : "-");
	}
	printf("\n%s\n", KHA_TERM(rep.health.summary));
	kha_etcd_cluster_report_release(&rep);
	return KHA_EXIT_OK;
}

/* ---- add ---------------------------------------------------------------------------------- */

static void print_start(FILE *out, const struct kha_etcdops_member_start *s, bool learner)
{
	fprintf(out,
		"Start it with these flags (plus its own --data-dir, --listen-*-urls,\n"
		"--advertise-client-urls and TLS flags):\n\n"
		"  --name %s \\\n  --initial-cluster %s \\\n"
		"  --initial-cluster-state existing \\\n"
		"  --initial-advertise-peer-urls %s\n\n"
		"or as environment variables:\n"
		"ETCD_NAME=\"%s\"\nETCD_INITIAL_CLUSTER=\"%s\"\n"
		"ETCD_INITIAL_ADVERTISE_PEER_URLS=\"%s\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
		s->name, s->initial_cluster, s->initial_advertise_peer_urls, s->name,
		s->initial_cluster, s->initial_advertise_peer_urls);
	if (learner)
		fprintf(out,
			"\nOnce it runs: kha etcd member promote %s (waits until it has caught up)\n",
			s->name);
	fflush(out);
}

static json_t *start_json(const struct kha_etcdops_member_start *s)
{
	return json_pack("{s:[s,s,s,s,s,s,s,s], s:{s:s, s:s, s:s, s:s}}", "flags", "--name",
			 s->name, "--initial-cluster", s->initial_cluster,
			 "--initial-cluster-state", "existing", "--initial-advertise-peer-urls",
			 s->initial_advertise_peer_urls, "env", "ETCD_NAME", s->name,
			 "ETCD_INITIAL_CLUSTER", s->initial_cluster,
			 "ETCD_INITIAL_ADVERTISE_PEER_URLS", s->initial_advertise_peer_urls,
			 "ETCD_INITIAL_CLUSTER_STATE", "existing");
}

/* Adds o->peer_urls as name; fills *ret_member and *ret_start. Returns 0 or an exit code. */
static int do_add(struct opts *o, const char *name, bool learner,
		  struct kha_etcd_member *ret_member, struct kha_etcdops_member_start *ret_start)
{
	struct kha_diag d = {};
	int r = kha_etcdops_change_add(&o->ch, (const char *const *)o->peer_urls, o->n_peer_urls,
				       name, learner, ret_member, ret_start, &d);

	return r < 0 ? fail(o, r, &d) : 0;
}

static int cmd_add(struct opts *o)
{
	struct kha_etcdops_guard_request req = {
		.op = o->learner ? KHA_ETCDOPS_GUARD_ADD_LEARNER : KHA_ETCDOPS_GUARD_ADD,
		.name = o->arg,
		.peer_urls = (const char *const *)o->peer_urls,
		.n_peer_urls = o->n_peer_urls,
	};
	struct kha_etcdops_guard_verdict v;
	struct kha_etcd_member m = {};
	struct kha_etcdops_member_start s = {};
	int code = guard_now(o, &req, &v);

	if (code)
		return code;
	code = do_add(o, o->arg, o->learner, &m, &s);
	if (code) {
		kha_etcd_member_release(&m);
		return code;
	}
	remember_name(o, m.id, o->arg);
	if (o->json) {
		code = dump(json_pack("{s:{s:o, s:s, s:b, s:o}, s:o, s:o}", "member", "id",
				      cmd_json_hex(m.id), "name", o->arg, "is_learner", o->learner,
				      "peer_urls", cmd_json_strings(m.peer_urls, m.n_peer_urls),
				      "start", start_json(&s), "guard", guard_json(&v)));
	} else {
		printf("Member %s added as a %s (id %" PRIx64 ").\n", o->arg,
		       o->learner ? "learner" : "voting member", m.id);
		print_start(stdout, &s, o->learner);
	}
	kha_etcd_member_release(&m);
	kha_etcdops_member_start_release(&s);
	return code;
}

/* ---- remove ------------------------------------------------------------------------------- */

static int remove_member(struct opts *o, uint64_t id)
{
	struct kha_diag d = {};
	int r = kha_etcdops_change_remove(&o->ch, id, &d);

	return r < 0 ? fail(o, r, &d) : 0;
}

static int cmd_remove(struct opts *o)
{
	struct kha_etcd_cluster_report rep = {};
	struct kha_etcdops_guard_request req = {.op = KHA_ETCDOPS_GUARD_REMOVE};
	struct kha_etcdops_guard_verdict v;
	struct kha_diag d = {};
	char name[128];
	int code = report(o, &rep), idx;

	if (code)
		return code;
	idx = find_member(o, &rep, &d);
	code = guard_member(o, &rep, idx, &d, &req, &v, name, sizeof(name));
	if (code)
		return code;
	code = remove_member(o, req.target);
	if (code)
		return code;
	remember_name(o, req.target, NULL);
	if (o->json)
		return dump(json_pack("{s:{s:o, s:s}, s:o}", "removed", "id",
				      cmd_json_hex(req.target), "name", name, "guard",
				      guard_json(&v)));
	printf("Member %s (id %" PRIx64 ") removed. The cluster: %zu voting member%s, can lose "
	       "%d.\n",
	       name, req.target, v.voters_after, v.voters_after == 1 ? "" : "s", v.tolerance_after);
	return KHA_EXIT_OK;
}

/* ---- promote ------------------------------------------------------------------------------ */

/* A promotion that failed: interrupted (the learner stays one), or the error. */
static int promote_failed(struct opts *o, int r, const struct kha_diag *d)
{
	if (r == -ECANCELED && cmd_interrupted) {
		fprintf(stderr, "kha etcd member %s: interrupted (the learner stays a learner)\n",
			o->sub);
		return 128 + cmd_interrupted;
	}
	return fail(o, r, d);
}

static int promote(struct opts *o, uint64_t id)
{
	struct kha_diag d = {};
	int r;

	r = kha_etcdops_member_promote_wait(&o->cfg, id, o->timeout_us, &cmd_interrupted,
					    on_progress, o, &d);
	cmd_progress_done(&o->progress);
	return r < 0 ? promote_failed(o, r, &d) : 0;
}

static int cmd_promote(struct opts *o)
{
	struct kha_etcd_cluster_report rep = {};
	struct kha_etcdops_guard_request req = {.op = KHA_ETCDOPS_GUARD_PROMOTE};
	struct kha_etcdops_guard_verdict v;
	struct kha_diag d = {};
	uint64_t end = kha_now_us() + o->timeout_us;
	char name[128];
	int code = report(o, &rep), idx;

	if (code)
		return code;
	cmd_catch_signals();
	/*
	 * A learner gets its name only once it has started. Added by kha, find_member knows it
	 * before: wait for it to start (with --timeout). Added by another tool, only an unnamed
	 * learner shows: wait for the name to appear.
	 */
	idx = find_member(o, &rep, &d);
	if (idx >= 0 && !rep.members[idx].member.name[0]) {
		uint64_t id = rep.members[idx].member.id;
		int r;

		kha_etcd_cluster_report_release(&rep);
		r = kha_etcdops_member_wait_started(&o->cfg, id, 1000, o->timeout_us,
						    &cmd_interrupted, on_progress, o, &d);
		cmd_progress_done(&o->progress);
		if (r == -ECANCELED && cmd_interrupted) {
			fprintf(stderr, "kha etcd member promote: interrupted\n");
			return 128 + cmd_interrupted;
		}
		if (r < 0)
			return cmd_fail("kha etcd member promote", o->json, KHA_EXIT_UNAVAILABLE,
					"%s: %s (start it with the flags `kha etcd member add` "
					"printed, then run promote again)",
					o->arg, d.msg);
		kha_diag_clear(&d);
		code = report(o, &rep);
		if (code)
			return code;
		idx = find_member(o, &rep, &d);
	}
	if (idx == -ENOENT)
		idx = kha_etcdops_change_find_wait(&o->ch, o->arg, end, &rep, &d);
	if (idx < 0 && idx != -ENOENT && idx != -EEXIST && !cmd_interrupted) {
		kha_etcd_cluster_report_release(&rep);
		return fail(o, idx, &d);
	}
	if (cmd_interrupted) {
		kha_etcd_cluster_report_release(&rep);
		fprintf(stderr, "kha etcd member promote: interrupted\n");
		return 128 + cmd_interrupted;
	}
	if (idx == -ENOENT && kha_etcdops_change_unstarted_learner(&rep)) {
		char dur[32];

		kha_etcd_cluster_report_release(&rep);
		return cmd_fail("kha etcd member promote", o->json, KHA_EXIT_UNAVAILABLE,
				"no member named %s has started within %s, and a learner has not "
				"started: start it (with the flags member add printed), or promote "
				"it by its id",
				o->arg, kha_format_duration(dur, sizeof(dur), o->timeout_us));
	}
	code = guard_member(o, &rep, idx, &d, &req, &v, name, sizeof(name));
	if (code)
		return code;
	code = promote(o, req.target);
	if (code)
		return code;
	if (o->json)
		return dump(json_pack("{s:{s:o, s:s}, s:o}", "promoted", "id",
				      cmd_json_hex(req.target), "name", name, "guard",
				      guard_json(&v)));
	printf("Member %s (id %" PRIx64 ") promoted to a voting member. The cluster: %zu voting "
	       "members, can lose %d.\n",
	       name, req.target, v.voters_after, v.tolerance_after);
	return KHA_EXIT_OK;
}

/* ---- replace ------------------------------------------------------------------------------ */

/* The steps: stdout, or stderr under -o json (stdout is the report). */
static FILE *replace_out(const struct opts *o)
{
	return o->json ? stderr : stdout;
}

/* A step of the replacement ("Step 2/4: ..."), or a line of detail (step 0). */
static void replace_step(void *userdata, int step, int steps, const char *text,
			 const struct kha_etcdops_replace_result *r)
{
	FILE *out = replace_out(userdata);

	if (step)
		fprintf(out, "Step %d/%d: ", step, steps);
	fprintf(out, "%s\n", text);
	if (step && r->stage == KHA_ETCDOPS_REPLACE_ADD) {
		print_start(out, &r->start, false);
		fprintf(out, "\n");
	}
	fflush(out);
}

static void replace_guard(void *userdata, const struct kha_etcdops_guard_verdict *v)
{
	kha_ignore(guard_say(userdata, v));
}

static json_t *alarms_json(const struct kha_etcd_alarm_list *l)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < l->n_alarms; i++)
		json_array_append_new(a, json_pack("{s:o, s:s}", "member_id",
						   cmd_json_hex(l->alarms[i].member_id), "alarm",
						   kha_etcd_alarm_name(l->alarms[i].type)));
	return a;
}

/* The disarm of a repair failed, or alarms remain after it: OLD is gone already. */
static int replace_disarm_failed(const struct opts *o, const struct kha_etcdops_replace_result *r,
				 int err, const struct kha_diag *d)
{
	char list[256] = "";
	size_t n = 0;

	if (!r->remaining.n_alarms)
		return cmd_fail("kha etcd member replace", o->json, cmd_etcd_exit_code(err, d),
				"%s was removed, but the disarm failed: %s (retry with 'kha etcd "
				"alarm disarm --alarm CORRUPT', then add %s with 'kha etcd member "
				"add %s --learner --peer-urls ...')",
				r->old, d->msg, o->name, o->name);
	for (size_t i = 0; i < r->remaining.n_alarms && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s on %" PRIx64, i ? ", " : "",
				      kha_etcd_alarm_name(r->remaining.alarms[i].type),
				      r->remaining.alarms[i].member_id);
	return cmd_fail("kha etcd member replace", o->json, KHA_EXIT_CRITICAL,
			"%s was removed and its CORRUPT alarm disarmed, but alarms remain "
			"(%s): the cluster still refuses writes. See 'kha etcd alarm list'; "
			"once none remains, add %s with 'kha etcd member add %s --learner "
			"--peer-urls ...'",
			r->old, list, o->name, o->name);
}

/* NEW did not start or catch up in time (or the wait was interrupted): it stays a learner. */
static int replace_wait_failed(const struct opts *o, const struct kha_etcdops_replace_result *r,
			       int err, const struct kha_diag *d, bool old_down)
{
	bool interrupted = err == -ECANCELED && cmd_interrupted;

	if (interrupted)
		fprintf(stderr, "kha etcd member replace: interrupted\n");
	else
		fprintf(stderr, "kha etcd member replace: %s\n", d->msg);
	fprintf(stderr,
		"kha etcd member replace: %s stays a learner%s: start it and run 'kha etcd "
		"member promote %s'%s%s%s, or undo with 'kha etcd member remove %" PRIx64 "'\n",
		o->name, old_down ? "" : " and the old member stays", o->name,
		old_down ? "" : ", then 'kha etcd member remove ", old_down ? "" : r->old,
		old_down ? "" : "'", r->added.id);
	return interrupted ? 128 + cmd_interrupted : kha_exit_from_errno(err);
}

/*
 * A replacement that stopped at r->stage: says why (a refusal was said already) and how to
 * finish by hand from there. Returns the exit code.
 */
static int replace_failed(struct opts *o, const struct kha_etcdops_replace_result *r, int err,
			  const struct kha_diag *d)
{
	bool old_down = r->plan.order != KHA_ETCDOPS_REPLACE_LEARNER_FIRST; /* OLD gone first */
	int code = r->refused ? EXIT_REFUSED : 0;

	switch (r->stage) {
	case KHA_ETCDOPS_REPLACE_DISARM:
		return replace_disarm_failed(o, r, err, d);
	case KHA_ETCDOPS_REPLACE_WAIT:
		return replace_wait_failed(o, r, err, d, old_down);
	case KHA_ETCDOPS_REPLACE_ADD:
		code = code ? code : fail(o, err, d);
		if (old_down)
			fprintf(stderr,
				"kha etcd member replace: %s was removed; add %s with 'kha etcd "
				"member add %s --learner --peer-urls ...'\n",
				r->old, o->name, o->name);
		return code;
	case KHA_ETCDOPS_REPLACE_PROMOTE:
		code = promote_failed(o, err, d);
		fprintf(stderr,
			"kha etcd member replace: %s is still a learner: retry 'kha etcd member "
			"promote %s'%s%s%s\n",
			o->name, o->name, old_down ? "" : ", then 'kha etcd member remove ",
			old_down ? "" : r->old, old_down ? "" : "'");
		return code;
	case KHA_ETCDOPS_REPLACE_REMOVE_OLD:
		code = code ? code : fail(o, err, d);
		fprintf(stderr,
			"kha etcd member replace: %s is a voting member now; %s was not removed: "
			"remove it once the rule allows ('kha etcd member remove %s')\n",
			o->name, r->old, r->old);
		return code;
	default: /* the plan, OLD's removal first, the closing report */
		return code ? code : fail(o, err, d);
	}
}

/* The closing report: the cluster after the replacement, as a table line or -o json. */
static int replace_done(const struct opts *o, const struct kha_etcdops_replace_result *r)
{
	if (o->json)
		return dump(json_pack("{s:{s:o, s:s}, s:{s:o, s:s}, s:s, s:o, s:o, s:s, s:s}",
				      "removed", "id", cmd_json_hex(r->plan.old_id), "name", r->old,
				      "added", "id", cmd_json_hex(r->added.id), "name", o->name,
				      "order", kha_etcdops_replace_order_name(r->plan.order),
				      "disarmed", alarms_json(&r->disarmed), "start",
				      start_json(&r->start), "summary", r->summary, "verdict",
				      kha_etcd_verdict_name(r->health)));
	printf("Done: %s replaced %s (%s). %s\n", o->name, r->old,
	       r->plan.order == KHA_ETCDOPS_REPLACE_REPAIR ? "removed first, CORRUPT alarm disarmed"
	       : r->plan.order == KHA_ETCDOPS_REPLACE_REMOVE_FIRST ? "removed first: it was down"
								   : "learner first",
	       r->summary);
	return KHA_EXIT_OK;
}

/* The steps and their order are lib/etcdops's (kha_etcdops_replace); this says them. */
static int cmd_replace(struct opts *o)
{
	struct kha_etcdops_replace_request req = {
		.ch = &o->ch,
		.old = o->arg,
		.name = o->name,
		.peer_urls = (const char *const *)o->peer_urls,
		.n_peer_urls = o->n_peer_urls,
		.force = o->force,
		.start_timeout_us = o->start_timeout_us,
		.promote_timeout_us = o->timeout_us,
		.step = replace_step,
		.guard = replace_guard,
	};
	struct kha_etcdops_replace_result r = {};
	struct kha_diag d = {};
	int err, code;

	cmd_catch_signals();
	err = kha_etcdops_replace(&req, &r, &d);
	code = err < 0 ? replace_failed(o, &r, err, &d) : replace_done(o, &r);
	kha_etcdops_replace_result_release(&r);
	return code;
}

int cmd_etcd_member_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct opts *o);
	} subs[] = {
		{"list", cmd_list},	  {"add", cmd_add},	    {"remove", cmd_remove},
		{"promote", cmd_promote}, {"replace", cmd_replace},
	};
	struct opts o = {};
	int code = cmd_usage_or_help(argc, argv, usage);
	const __typeof__(subs[0]) *s;

	if (code >= 0)
		return code;
	s = CMD_SUB_FIND("etcd member", subs, argv[1]);
	if (!s)
		return KHA_EXIT_USAGE;
	o.sub = s->name;
	o.ch = (struct kha_etcdops_change){.cfg = &o.cfg,
					   .cancel = &cmd_interrupted,
					   .progress = on_progress,
					   .note = on_note,
					   .userdata = &o};
	code = parse(argc - 1, cmd_sub_argv(argv), &o);
	if (code == 0)
		code = s->fn(&o);
	else
		code -= 1000;
	opts_release(&o);
	return code;
}
