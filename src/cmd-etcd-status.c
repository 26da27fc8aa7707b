// SPDX-License-Identifier: MIT
/* kha etcd status: every member's status in parallel, a table or JSON, and a verdict. */
#include <errno.h>
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

enum {
	OPT_LAG_THRESHOLD = 0x100,
};

struct status_opts {
	struct kha_etcd_config cfg;
	bool json;
	uint64_t lag_threshold;
	uint64_t timeout_us;
	bool deep;
};

static int apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct status_opts *o = target;

	(void)val; /* OPT_LAG_THRESHOLD */
	if (kha_parse_u64(arg, 1, UINT64_MAX / 2, &o->lag_threshold) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not a positive number", arg);
	return 0;
}

static const struct cmd_opt options[] = {
	CMD_OPT_INCLUDE_ETCD(struct status_opts, cfg),
	CMD_OPT_OUTPUT_ENTRY(struct status_opts, json,
			     "report format (default table; JSON: docs/etcd.md)"),
	{CMD_OPT_DURATION, "timeout", 0, "DURATION",
	 "per-member status timeout (default: --command-timeout)", 0,
	 offsetof(struct status_opts, timeout_us), 0, NULL},
	{CMD_OPT_CALL, "lag-threshold", 0, "N",
	 "raft entries a member may lag before a warning (default 1000)", OPT_LAG_THRESHOLD, 0, 0,
	 NULL},
	{CMD_OPT_BOOL, "deep", 0, NULL,
	 "also compare the members' KV hashes at one revision\n(kha etcd check consistency): "
	 "divergence is critical",
	 0, offsetof(struct status_opts, deep), 0, NULL},
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd status [flags]\n\n"
		"Lists the members (from the first endpoint that answers), asks every member for\n"
		"its status in parallel at its own client URLs, and prints a table and a verdict:\n"
		"  healthy: 3/3 members up, leader etcd-1, can lose 1 member\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\nExit codes: 0 healthy, 1 degraded, 2 critical (quorum lost, no leader, alarm),\n"
		"69 no endpoint reachable, 78 TLS trust or files (--cacert/--cert/--key),\n"
		"65 an endpoint that is not an etcd gateway, 64 usage.\n\n"
		"Example:\n"
		"  kha etcd status --endpoints https://10.0.0.1:2379,https://10.0.0.2:2379 \\\n"
		"      --cacert /etc/etcd/ca.crt --cert /etc/etcd/client.crt "
		"--key /etc/etcd/client.key\n");
}

/* Returns 0 to go on, an exit code, or 1000 after the help (exit 0). */
static int parse_args(int argc, char **argv, struct status_opts *o)
{
	int r = cmd_etcd_config_start("status", &o->cfg);

	if (r)
		return r;
	r = cmd_opts_parse(options, apply, o, "kha etcd status", usage, argc, argv);
	if (r == 0)
		return KHA_EXIT_OK + 1000; /* stop: help printed */
	if (r > 0)
		return r;
	if (optind < argc) {
		fprintf(stderr,
			"kha etcd status: unexpected argument '%s' (run 'kha etcd status "
			"--help')\n",
			argv[optind]);
		return KHA_EXIT_USAGE;
	}
	return 0;
}

/* ---- table -------------------------------------------------------------------------------- */

enum {
	COL_NAME,
	COL_ID,
	COL_ENDPOINT,
	COL_UP,
	COL_VERSION,
	COL_DB,
	COL_IN_USE,
	COL_LEADER,
	COL_TERM,
	COL_INDEX,
	COL_APPLIED,
	COL_ALARMS,
	COL_ERRORS,
	N_COLS,
};

static const char *const headers[N_COLS] = {
	"NAME",	  "ID",	  "ENDPOINT", "UP",	 "VERSION", "DB SIZE", "IN USE",
	"LEADER", "TERM", "INDEX",    "APPLIED", "ALARMS",  "ERRORS",
};

static const char *alarms_text(char *buf, size_t size, const struct kha_etcd_member_report *m)
{
	snprintf(buf, size, "%s%s%s", m->alarm_nospace ? "NOSPACE" : "",
		 m->alarm_nospace && m->alarm_corrupt ? "," : "",
		 m->alarm_corrupt ? "CORRUPT" : "");
	return buf[0] ? buf : "-";
}

static void errors_text(char *buf, size_t size, const struct kha_etcd_member_report *m)
{
	size_t o = 0;

	buf[0] = '\0';
	if (!m->reachable) {
		snprintf(buf, size, "%s", m->error ? m->error : "no answer");
		return;
	}
	for (size_t i = 0; i < m->n_errors && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? "; " : "", m->errors[i]);
	if (!buf[0])
		snprintf(buf, size, "-");
}

static void print_table(const struct kha_etcd_cluster_report *rep)
{
	size_t n = rep->n_members, w[N_COLS];
	char(*cells)[N_COLS][160] = calloc(n ? n : 1, sizeof(*cells));

	if (!cells) {
		printf("%s\n", rep->health.summary);
		return;
	}
	for (size_t c = 0; c < N_COLS; c++)
		w[c] = strlen(headers[c]);
	for (size_t i = 0; i < n; i++) {
		const struct kha_etcd_member_report *m = &rep->members[i];
		const struct kha_etcd_status *s = &m->status;
		char(*row)[160] = cells[i];
		char a[64], b[64];

		snprintf(row[COL_NAME], 160, "%s",
			 m->member.name[0] ? m->member.name : "(unstarted)");
		snprintf(row[COL_ID], 160, "%" PRIx64 "%s", m->member.id,
			 m->member.is_learner ? " (learner)" : "");
		snprintf(row[COL_ENDPOINT], 160, "%s",
			 m->endpoint ? m->endpoint
				     : (m->member.n_client_urls ? m->member.client_urls[0] : "-"));
		snprintf(row[COL_UP], 160, "%s", m->reachable ? "yes" : "NO");
		if (m->reachable) {
			snprintf(row[COL_VERSION], 160, "%s", s->version);
			snprintf(row[COL_DB], 160, "%s",
				 kha_format_size(a, sizeof(a), (uint64_t)s->db_size));
			snprintf(row[COL_IN_USE], 160, "%s",
				 s->db_size_in_use ? kha_format_size(b, sizeof(b),
								     (uint64_t)s->db_size_in_use)
						   : "-");
			snprintf(row[COL_LEADER], 160, "%s",
				 s->leader == m->member.id ? "*" : (s->leader ? "" : "none"));
			snprintf(row[COL_TERM], 160, "%" PRIu64, s->raft_term);
			snprintf(row[COL_INDEX], 160, "%" PRIu64, s->raft_index);
			if (s->raft_applied_index)
				snprintf(row[COL_APPLIED], 160, "%" PRIu64, s->raft_applied_index);
			else
				snprintf(row[COL_APPLIED], 160, "-");
		} else {
			for (size_t c = COL_VERSION; c <= COL_APPLIED; c++)
				snprintf(row[c], 160, "-");
		}
		snprintf(row[COL_ALARMS], 160, "%s", alarms_text(a, sizeof(a), m));
		errors_text(row[COL_ERRORS], 160, m);
		for (size_t c = 0; c < N_COLS; c++)
			w[c] = KHA_MAX(w[c], strlen(row[c]));
	}
	for (size_t c = 0; c < N_COLS; c++)
		printf("%-*s%s", c + 1 < N_COLS ? (int)w[c] : 0, headers[c],
		       c + 1 < N_COLS ? "  " : "\n");
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < N_COLS; c++)
			printf("%-*s%s", c + 1 < N_COLS ? (int)w[c] : 0, KHA_TERM(cells[i][c]),
			       c + 1 < N_COLS ? "  " : "\n");
	free(cells);
	if (rep->health.n_warnings)
		printf("\n");
	for (size_t i = 0; i < rep->health.n_warnings; i++)
		printf("warning: %s\n", KHA_TERM(rep->health.warnings[i]));
	printf("\n%s\n", KHA_TERM(rep->health.summary));
}

/* ---- JSON (schema: docs/etcd.md) ---------------------------------------------------------- */

static json_t *member_json(const struct kha_etcd_member_report *m)
{
	const struct kha_etcd_status *s = &m->status;
	json_t *alarms = json_array();
	bool up = m->reachable;

	if (m->alarm_nospace)
		json_array_append_new(alarms, json_string("NOSPACE"));
	if (m->alarm_corrupt)
		json_array_append_new(alarms, json_string("CORRUPT"));
	return json_pack(
		"{s:o, s:s, s:o, s:o, s:b, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
		"s:o, s:o}",
		"id", cmd_json_hex(m->member.id), "name", m->member.name, "peer_urls",
		cmd_json_strings(m->member.peer_urls, m->member.n_peer_urls), "client_urls",
		cmd_json_strings(m->member.client_urls, m->member.n_client_urls), "is_learner",
		m->member.is_learner, "endpoint",
		m->endpoint ? json_string(m->endpoint) : json_null(), "reachable", up, "error",
		m->error ? json_string(m->error) : json_null(), "version",
		up ? json_string(s->version) : json_null(), "db_size",
		up ? json_integer(s->db_size) : json_null(), "db_size_in_use",
		up && s->db_size_in_use ? json_integer(s->db_size_in_use) : json_null(),
		"is_leader",
		up ? json_boolean(s->leader && s->leader == m->member.id) : json_null(), "leader",
		up && s->leader ? cmd_json_hex(s->leader) : json_null(), "raft_term",
		up ? json_integer((json_int_t)s->raft_term) : json_null(), "raft_index",
		up ? json_integer((json_int_t)s->raft_index) : json_null(), "raft_applied_index",
		up && s->raft_applied_index ? json_integer((json_int_t)s->raft_applied_index)
					    : json_null(),
		"alarms", alarms, "errors", cmd_json_strings(m->errors, m->n_errors));
}

static json_t *consistency_json(const struct kha_etcdops_consistency_report *c)
{
	if (!c)
		return json_null();
	return json_pack("{s:s, s:I, s:i, s:i, s:s}", "verdict",
			 kha_etcdops_consistency_verdict_name(c->verdict), "revision",
			 (json_int_t)c->revision, "compared", (json_int_t)c->compared, "agreeing",
			 (json_int_t)c->agreeing, "summary", c->summary);
}

/* deep: the consistency check of --deep, or NULL (then "consistency" is null) */
static int print_json(const struct kha_etcd_cluster_report *rep,
		      const struct kha_etcdops_consistency_report *deep)
{
	const struct kha_etcd_health *h = &rep->health;
	json_t *members = json_array(), *leader = json_null();

	for (size_t i = 0; members && i < rep->n_members; i++)
		json_array_append_new(members, member_json(&rep->members[i]));
	if (h->leader) {
		const char *name =
			h->leader_index >= 0 ? rep->members[h->leader_index].member.name : "";
		json_decref(leader);
		leader = json_pack("{s:o, s:s}", "id", cmd_json_hex(h->leader), "name", name);
	}
	return cmd_print_json(json_pack(
		"{s:s, s:s, s:o, s:s, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:o, s:o, s:o, s:o}",
		"verdict", kha_etcd_verdict_name(h->verdict), "summary", h->summary, "cluster_id",
		cmd_json_hex(rep->cluster_id), "members_from", rep->members_from, "voters",
		(json_int_t)h->voters, "voters_up", (json_int_t)h->voters_up, "learners",
		(json_int_t)h->learners, "learners_up", (json_int_t)h->learners_up, "quorum",
		(json_int_t)h->quorum, "quorum_ok", h->quorum_ok, "can_lose",
		(json_int_t)h->can_lose, "leader", leader, "warnings",
		cmd_json_strings(h->warnings, h->n_warnings), "members", members, "consistency",
		consistency_json(deep)));
}

int cmd_etcd_status_main(int argc, char **argv)
{
	struct status_opts o = {};
	struct kha_etcd_cluster_report rep = {};
	struct kha_etcdops_consistency_report deep = {};
	struct kha_diag d = {};
	int r, code;

	r = parse_args(argc, argv, &o);
	if (r) {
		kha_etcd_config_release(&o.cfg);
		return r >= 1000 ? r - 1000 : r;
	}
	r = kha_etcd_cluster_report(&o.cfg, o.timeout_us, o.lag_threshold, &rep, &d);
	if (r < 0) {
		kha_etcd_config_release(&o.cfg);
		return cmd_fail("kha etcd status", o.json, cmd_etcd_exit_code(r, &d), "%s", d.msg);
	}
	/* --deep: a member whose data diverged is as bad as a lost quorum (corruption spreads
	 * through snapshots); a check that could not complete only degrades */
	if (o.deep) {
		kha_diag_clear(&d);
		if (kha_etcdops_consistency_check(&o.cfg, o.timeout_us, &deep, &d) < 0) {
			snprintf(deep.summary, sizeof(deep.summary), "not checked: %s", d.msg);
			deep.verdict = KHA_ETCDOPS_CONSISTENCY_UNKNOWN;
		}
	}
	kha_etcd_config_release(&o.cfg);
	if (o.json) {
		if (print_json(&rep, o.deep ? &deep : NULL) < 0) {
			kha_etcd_cluster_report_release(&rep);
			kha_etcdops_consistency_report_release(&deep);
			fprintf(stderr, "kha etcd status: cannot write the report\n");
			return KHA_EXIT_IOERR;
		}
	} else {
		print_table(&rep);
		if (o.deep)
			printf("consistency: %s\n", deep.summary);
	}
	switch (rep.health.verdict) {
	case KHA_ETCD_HEALTHY:
		code = KHA_EXIT_OK;
		break;
	case KHA_ETCD_DEGRADED:
		code = KHA_EXIT_DEGRADED;
		break;
	default:
		code = KHA_EXIT_CRITICAL;
		break;
	}
	if (o.deep && deep.verdict == KHA_ETCDOPS_CONSISTENCY_DIVERGED)
		code = KHA_EXIT_CRITICAL;
	else if (o.deep && deep.verdict != KHA_ETCDOPS_CONSISTENCY_CONSISTENT &&
		 code == KHA_EXIT_OK)
		code = KHA_EXIT_DEGRADED;
	kha_etcdops_consistency_report_release(&deep);
	kha_etcd_cluster_report_release(&rep);
	return code;
}
