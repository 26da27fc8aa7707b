// SPDX-License-Identifier: MIT
/* kha etcd check consistency: the members' KV hashes compared at one common revision. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
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
	uint64_t timeout_us;
	bool json;
};

static const struct cmd_opt options[] = {
	CMD_OPT_INCLUDE_ETCD(struct opts, cfg),
	{CMD_OPT_DURATION, "timeout", 0, "DURATION",
	 "per-member limit of each probe (default: --command-timeout;\nHashKV reads the whole "
	 "keyspace: large databases need\nmore)",
	 0, offsetof(struct opts, timeout_us), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct opts, json,
			     "report format (default table; JSON: docs/etcd-ops.md)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd check consistency [flags]\n\n"
		"Compares the members' data: asks every member for its status, takes the lowest\n"
		"current revision among them (one every member has), then asks every member for\n"
		"HashKV at that revision (over etcd's gRPC API: the 3.4 gateway lacks it) and\n"
		"compares the hashes of members at the same compact revision. A member whose hash\n"
		"differs from the majority's has diverged: etcd's own corruption checks are off by\n"
		"default, so it would go on serving its data. A compaction racing the check is\n"
		"retried.\n\n"
		"Flags:\n");
	cmd_opts_help(out, options);
	fprintf(out,
		"\nExit codes: 0 consistent, 1 incomplete (the members that answered agree, some could\n"
		"not be checked), 2 diverged, 69 no member reachable, 78 TLS files or trust, 64 "
		"usage.\n\n"
		"Example:\n"
		"  kha etcd check consistency --endpoints https://10.0.0.1:2379 --cacert ca.crt "
		"--cert c.crt --key c.key\n");
}

static int print_json(const struct kha_etcdops_consistency_report *r)
{
	json_t *members = json_array();

	for (size_t i = 0; members && i < r->n_members; i++) {
		const struct kha_etcdops_consistency_member *m = &r->members[i];
		bool hashed = m->reachable && m->hash_r == 0;

		json_array_append_new(
			members,
			json_pack("{s:o, s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:o, s:s, s:o}", "id",
				  cmd_json_hex(m->id), "name", m->name, "endpoint", m->endpoint,
				  "is_learner", m->is_learner, "reachable", m->reachable,
				  "revision",
				  m->reachable ? json_integer(m->revision) : json_null(), "hash",
				  hashed ? json_integer(m->hash) : json_null(), "compact_revision",
				  hashed ? json_integer(m->compact_revision) : json_null(),
				  "hash_revision",
				  hashed && m->hash_revision ? json_integer(m->hash_revision)
							     : json_null(),
				  "state", kha_etcdops_consistency_state_name(m->state), "error",
				  m->error[0] ? json_string(m->error) : json_null()));
	}
	return cmd_print_json(json_pack("{s:s, s:s, s:I, s:I, s:o, s:i, s:i, s:i, s:o}", "verdict",
					kha_etcdops_consistency_verdict_name(r->verdict), "summary",
					r->summary, "revision", (json_int_t)r->revision,
					"compact_revision", (json_int_t)r->compact_revision, "hash",
					r->agreeing ? json_integer(r->hash) : json_null(),
					"compared", (int)r->compared, "agreeing", (int)r->agreeing,
					"attempts", (int)r->attempts, "members", members));
}

static void print_table(const struct kha_etcdops_consistency_report *r)
{
	size_t wn = 4, we = 8;

	for (size_t i = 0; i < r->n_members; i++) {
		wn = KHA_MAX(wn, strlen(r->members[i].name[0] ? r->members[i].name : "-"));
		we = KHA_MAX(we, strlen(r->members[i].endpoint));
	}
	if (r->compact_revision > 0)
		printf("Revision %" PRId64 ", compacted up to %" PRId64 ":\n\n", r->revision,
		       r->compact_revision);
	else
		printf("Revision %" PRId64 " (never compacted):\n\n", r->revision);
	printf("%-*s  %-16s  %-*s  %-10s  %-8s  %s\n", (int)wn, "NAME", "ID", (int)we, "ENDPOINT",
	       "REVISION", "HASH", "STATE");
	for (size_t i = 0; i < r->n_members; i++) {
		const struct kha_etcdops_consistency_member *m = &r->members[i];
		char id[24], rev[24], hash[16];

		snprintf(id, sizeof(id), "%" PRIx64, m->id);
		if (m->reachable)
			snprintf(rev, sizeof(rev), "%" PRId64, m->revision);
		else
			snprintf(rev, sizeof(rev), "-");
		if (m->reachable && m->hash_r == 0)
			snprintf(hash, sizeof(hash), "%08x", m->hash);
		else
			snprintf(hash, sizeof(hash), "-");
		printf("%-*s  %-16s  %-*s  %-10s  %-8s  %s%s%s\n", (int)wn,
		       m->name[0] ? m->name : "-", id, (int)we, m->endpoint, rev, hash,
		       kha_etcdops_consistency_state_name(m->state), m->error[0] ? ": " : "",
		       m->error);
	}
	printf("\n%s\n", r->summary);
}

static int consistency(int argc, char **argv)
{
	struct opts o = {};
	struct kha_etcdops_consistency_report rep = {};
	struct kha_diag d = {};
	int r, code = KHA_EXIT_USAGE;

	r = cmd_etcd_config_start("check consistency", &o.cfg);
	if (r) {
		code = r;
		goto out;
	}
	r = cmd_opts_parse(options, NULL, &o, "kha etcd check consistency", usage, argc, argv);
	if (r >= 0) {
		code = r;
		goto out;
	}
	if (optind < argc) {
		fprintf(stderr, "kha etcd check consistency: unexpected argument '%s'\n",
			argv[optind]);
		goto out;
	}
	r = kha_etcdops_consistency_check(&o.cfg, o.timeout_us, &rep, &d);
	if (r < 0) {
		code = cmd_fail("kha etcd check consistency", o.json, cmd_etcd_exit_code(r, &d),
				"%s", d.msg);
		goto out;
	}
	if (o.json) {
		if (print_json(&rep) < 0) {
			code = KHA_EXIT_IOERR;
			goto out;
		}
	} else {
		print_table(&rep);
	}
	switch (rep.verdict) {
	case KHA_ETCDOPS_CONSISTENCY_CONSISTENT:
		code = KHA_EXIT_OK;
		break;
	case KHA_ETCDOPS_CONSISTENCY_DIVERGED:
		code = KHA_EXIT_CRITICAL;
		break;
	case KHA_ETCDOPS_CONSISTENCY_UNKNOWN:
		code = KHA_EXIT_UNAVAILABLE;
		break;
	default:
		code = KHA_EXIT_DEGRADED;
		break;
	}
out:
	kha_etcdops_consistency_report_release(&rep);
	kha_etcd_config_release(&o.cfg);
	return code;
}

int cmd_etcd_check_main(int argc, char **argv)
{
	int code = cmd_usage_or_help(argc, argv, usage);

	if (code >= 0)
		return code;
	if (strcmp(argv[1], "consistency") == 0)
		return consistency(argc - 1, cmd_sub_argv(argv));
	fprintf(stderr, "kha etcd check: unknown check '%s' (run 'kha etcd check --help')\n",
		argv[1]);
	return KHA_EXIT_USAGE;
}
