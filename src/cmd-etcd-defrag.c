// SPDX-License-Identifier: MIT
/* kha etcd defrag --rolling: one member at a time, the leader last, health checked between. */
#include <inttypes.h>
#include <stdio.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-etcd.h"
#include "cmd-opt.h"
#include "kha/etcdops.h"
#include "kha/etcd.h"
#include "kha/parse.h"
#include "kha/banned.h"

struct opts {
	struct kha_etcd_config cfg;
	struct kha_etcdops_defrag_opts run;
	bool rolling; /* the only mode: the flag says so */
	bool json;
};

static const struct cmd_opt options[] = {
	CMD_OPT_INCLUDE_ETCD(struct opts, cfg),
	{CMD_OPT_BOOL, "rolling", 0, NULL, "every member, one at a time (the default)", 0,
	 offsetof(struct opts, rolling), 0, NULL},
	{CMD_OPT_STRING, "member", 0, "NAME|ID", "only this member", 0,
	 offsetof(struct opts, run.member), 0, NULL},
	{CMD_OPT_DURATION, "timeout", 0, "DURATION",
	 "limit of one member's defragmentation (default 5m)", 0,
	 offsetof(struct opts, run.defrag_timeout_us), 0, NULL},
	{CMD_OPT_DURATION, "settle-timeout", 0, "DURATION",
	 "wait this long for the cluster after each (1m)", 0,
	 offsetof(struct opts, run.settle_timeout_us), 0, NULL},
	{CMD_OPT_BOOL, "force", 0, NULL, "start even when the cluster is not whole", 0,
	 offsetof(struct opts, run.force), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct opts, json, "report format (default table)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd defrag [--rolling] [--member NAME|ID] [flags]\n\n"
		"Defragments the members one at a time (rolling, the default): learners, then\n"
		"followers, the leader last. Before each member every member must answer, quorum\n"
		"hold and a leader be agreed; after each, kha waits until that is true again. A\n"
		"member being defragmented stops applying writes until it is done, so two at once\n"
		"could cost quorum. Reports each member's database size before and after.\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\nExit codes: 0 done, 1 refused (the cluster is not whole; nothing done), 69 a member\n"
		"failed or the cluster did not settle (the members after it were not touched), 64\n"
		"usage, 78 TLS files or trust.\n\n"
		"Example:\n"
		"  kha etcd defrag --rolling --endpoints https://10.0.0.1:2379 --cacert ca.crt "
		"--cert c.crt --key c.key\n");
}

static void on_progress(void *userdata, const struct kha_etcdops_defrag_member *m, const char *what)
{
	(void)userdata;
	fprintf(stderr, "kha etcd defrag: %s%s: %s\n", m->name[0] ? m->name : m->endpoint,
		m->is_leader ? " (leader)" : "", what);
}

static const char *role(const struct kha_etcdops_defrag_member *m)
{
	return m->is_leader ? "leader" : m->is_learner ? "learner" : "follower";
}

static void print_table(const struct kha_etcdops_defrag_report *rep)
{
	char a[32], b[32], c[32], dur[32];

	printf("%-16s  %-8s  %-10s  %-10s  %-10s  %s\n", "MEMBER", "ROLE", "BEFORE", "AFTER",
	       "RECLAIMED", "DURATION");
	for (size_t i = 0; i < rep->n_members; i++) {
		const struct kha_etcdops_defrag_member *m = &rep->members[i];

		if (!m->done) {
			printf("%-16s  %-8s  %s\n", m->name, role(m), m->r ? m->error : "not done");
			continue;
		}
		printf("%-16s  %-8s  %-10s  %-10s  %-10s  %s\n", m->name, role(m),
		       kha_format_size(a, sizeof(a), (uint64_t)m->size_before),
		       kha_format_size(b, sizeof(b), (uint64_t)m->size_after),
		       kha_format_size(c, sizeof(c),
				       m->size_before > m->size_after
					       ? (uint64_t)(m->size_before - m->size_after)
					       : 0),
		       kha_format_duration(dur, sizeof(dur), m->duration_us));
	}
	printf("\nreclaimed %s in total\n",
	       kha_format_size(a, sizeof(a), rep->reclaimed > 0 ? (uint64_t)rep->reclaimed : 0));
	if (rep->nospace_alarm)
		printf("note: a NOSPACE alarm was active: disarm it now that space is free "
		       "(kha etcd alarm disarm --alarm NOSPACE)\n");
}

static int print_json(const struct kha_etcdops_defrag_report *rep, const char *error)
{
	json_t *members = json_array();
	char id[24];

	for (size_t i = 0; members && i < rep->n_members; i++) {
		const struct kha_etcdops_defrag_member *m = &rep->members[i];

		snprintf(id, sizeof(id), "%" PRIx64, m->id);
		json_array_append_new(
			members,
			json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
				  "id", id, "name", m->name, "endpoint", m->endpoint, "role",
				  role(m), "done", m->done, "size_before",
				  (json_int_t)m->size_before, "size_after",
				  (json_int_t)m->size_after, "in_use_before",
				  (json_int_t)m->in_use_before, "in_use_after",
				  (json_int_t)m->in_use_after, "duration_us",
				  (json_int_t)m->duration_us, "settle_us", (json_int_t)m->settle_us,
				  "error", m->error[0] ? json_string(m->error) : json_null()));
	}
	return cmd_print_json(json_pack("{s:b, s:o, s:I, s:b, s:o}", "ok", error == NULL, "error",
					error ? json_string(error) : json_null(), "reclaimed",
					(json_int_t)rep->reclaimed, "nospace_alarm",
					rep->nospace_alarm, "members", members));
}

int cmd_etcd_defrag_main(int argc, char **argv)
{
	struct opts o = {.run = {.cancel = &cmd_interrupted, .progress = on_progress}};
	struct kha_etcdops_defrag_report rep = {};
	struct kha_diag d = {};
	int r, code = KHA_EXIT_USAGE;

	o.run.cfg = &o.cfg;
	r = cmd_etcd_config_start("defrag", &o.cfg);
	if (r) {
		code = r;
		goto out;
	}
	r = cmd_opts_parse(options, NULL, &o, "kha etcd defrag", usage, argc, argv);
	if (r >= 0) {
		code = r;
		goto out;
	}
	if (optind < argc) {
		fprintf(stderr,
			"kha etcd defrag: unexpected argument '%s' (run 'kha etcd defrag "
			"--help')\n",
			argv[optind]);
		goto out;
	}
	cmd_catch_signals();
	r = kha_etcdops_defrag_rolling(&o.run, &rep, &d);
	if (r < 0) {
		if (r == -EAGAIN && rep.n_members == 0) {
			fprintf(stderr, "kha etcd defrag: refused: %s (--force to do it anyway)\n",
				d.msg);
			code = 1;
		} else if (r == -ECANCELED && cmd_interrupted) {
			fprintf(stderr, "kha etcd defrag: %s\n", d.msg);
			code = 128 + cmd_interrupted;
		} else {
			fprintf(stderr, "kha etcd defrag: %s\n", d.msg);
			code = cmd_etcd_exit_code(r, &d);
		}
		if (rep.n_members) {
			if (o.json)
				kha_ignore(print_json(&rep, d.msg));
			else
				print_table(&rep);
		} else if (o.json) {
			cmd_print_json_error("kha etcd defrag", code, d.msg);
		}
		goto out;
	}
	if (o.json)
		code = print_json(&rep, NULL) < 0 ? KHA_EXIT_IOERR : KHA_EXIT_OK;
	else {
		print_table(&rep);
		code = KHA_EXIT_OK;
	}
out:
	kha_etcdops_defrag_report_release(&rep);
	kha_etcd_config_release(&o.cfg);
	return code;
}
