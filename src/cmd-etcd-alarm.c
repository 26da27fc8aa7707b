// SPDX-License-Identifier: MIT
/*
 * kha etcd alarm list|disarm: the cluster's NOSPACE and CORRUPT alarms, as etcdctl alarm does
 * (disarm: each matching alarm deactivated, then the list read again to say what remains).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-etcd.h"
#include "cmd-opt.h"
#include "kha/etcdops.h"
#include "kha/etcd.h"
#include "kha/log.h"
#include "kha/banned.h"

struct opts {
	const char *sub;
	char who[32]; /* "kha etcd alarm SUB" */
	struct kha_etcd_config cfg;
	bool json;
	const char *member; /* --member NAME|ID */
	const char *alarm;  /* --alarm CORRUPT|NOSPACE */
};

static const struct cmd_opt list_options[] = {
	CMD_OPT_INCLUDE_ETCD(struct opts, cfg),
	CMD_OPT_OUTPUT_ENTRY(struct opts, json, "report format (default table)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static const struct cmd_opt disarm_options[] = {
	CMD_OPT_INCLUDE_ETCD(struct opts, cfg),
	{CMD_OPT_STRING, "member", 0, "NAME|ID",
	 "only the alarms on this member (a name, or an id in hex;\n0: the alarms naming no "
	 "member)",
	 0, offsetof(struct opts, member), 0, NULL},
	{CMD_OPT_STRING, "alarm", 0, "CORRUPT|NOSPACE", "only alarms of this type", 0,
	 offsetof(struct opts, alarm), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct opts, json, "report format (default table)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd alarm list|disarm [flags]\n\n"
		"  list     the active alarms: NOSPACE (the database reached its quota: only reads\n"
		"           and deletes) and CORRUPT (a member's data differs from the others')\n"
		"  disarm   deactivate alarms, once their cause is gone\n\n"
		"What clears each (docs/etcd-ops.md \"Alarms\"):\n"
		"  NOSPACE  free space (kha etcd defrag, after a compaction), then\n"
		"           kha etcd alarm disarm --alarm NOSPACE\n"
		"  CORRUPT  stop the member it names, then kha etcd member replace NAME --name NEW\n"
		"           --peer-urls URL: it removes the member, disarms the alarm, adds the new\n"
		"           one (disarming alone would let the member go on serving its copy)\n\n"
		"Example:\n"
		"  kha etcd alarm list --endpoints https://10.0.0.1:2379 --cacert ca.crt "
		"--cert c.crt --key c.key\n");
}

static const char *help_sub;

static void sub_usage(FILE *out)
{
	if (strcmp(help_sub, "list") == 0)
		fprintf(out,
			"Usage: kha etcd alarm list [flags]\n\n"
			"Lists the active alarms with the member each names (etcd 3.4 raises\n"
			"CORRUPT on no member: kha etcd check consistency names the member that\n"
			"differs).\n\nFlags:\n");
	else
		fprintf(out,
			"Usage: kha etcd alarm disarm [--member NAME|ID] [--alarm CORRUPT|NOSPACE] "
			"[flags]\n\n"
			"Deactivates the active alarms that match (all of them without a flag), then\n"
			"lists the alarms again: an alarm whose cause remains comes back (NOSPACE at\n"
			"the next write while the database is still over its quota). Disarm NOSPACE\n"
			"after freeing space (kha etcd defrag). A CORRUPT alarm's repair is kha etcd\n"
			"member replace, which disarms it itself.\n\nFlags:\n");
	cmd_opts_help(out, strcmp(help_sub, "list") == 0 ? list_options : disarm_options);
	if (strcmp(help_sub, "list") == 0)
		fprintf(out, "\nExit codes: 0 listed (alarms or not), 64 usage, 65 bad reply, 69 "
			     "unreachable,\n78 TLS files or trust.\n\n"
			     "Example:\n  kha etcd alarm list --endpoints https://10.0.0.1:2379 "
			     "--cacert ca.crt --cert c.crt --key c.key\n");
	else
		fprintf(out, "\nExit codes: 0 no matching alarm remains, 2 a matching alarm came "
			     "back after the\ndisarm, 64 usage or unknown member, 65 bad reply, 69 "
			     "unreachable, 78 TLS files\nor trust.\n\n"
			     "Example:\n  kha etcd alarm disarm --alarm NOSPACE --endpoints "
			     "https://10.0.0.1:2379 --cacert ca.crt\n");
}

/* The member list, for names; a failure leaves it empty (ids are shown then). */
static void members_of(const struct opts *o, struct kha_etcd_member_list *ret)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;

	if (kha_etcd_new(&o->cfg, &c, NULL) < 0 || kha_etcd_member_list(c, ret, NULL) < 0)
		kha_etcd_member_list_release(ret);
}

/* The name of member id: "" for 0 (no member), "(removed)" when not a member any more. */
static const char *member_name(const struct kha_etcd_member_list *l, uint64_t id)
{
	if (!id)
		return "";
	for (size_t i = 0; i < l->n_members; i++)
		if (l->members[i].id == id)
			return l->members[i].name[0] ? l->members[i].name : "(unstarted)";
	return "(removed)";
}

static json_t *alarms_json(const struct kha_etcd_alarm_list *a,
			   const struct kha_etcd_member_list *l)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < a->n_alarms; i++)
		json_array_append_new(arr,
				      json_pack("{s:o, s:s, s:s}", "member_id",
						cmd_json_hex(a->alarms[i].member_id), "member",
						member_name(l, a->alarms[i].member_id), "alarm",
						kha_etcd_alarm_name(a->alarms[i].type)));
	return arr;
}

static void print_table(const struct kha_etcd_alarm_list *a, const struct kha_etcd_member_list *l)
{
	size_t w = 6;

	for (size_t i = 0; i < a->n_alarms; i++)
		w = KHA_MAX(w, strlen(member_name(l, a->alarms[i].member_id)));
	printf("%-*s  %-16s  %s\n", (int)w, "MEMBER", "ID", "ALARM");
	for (size_t i = 0; i < a->n_alarms; i++) {
		const struct kha_etcd_alarm *x = &a->alarms[i];
		char id[24];

		snprintf(id, sizeof(id), "%" PRIx64, x->member_id);
		printf("%-*s  %-16s  %s\n", (int)w,
		       x->member_id ? KHA_TERM(member_name(l, x->member_id)) : "(none)", id,
		       kha_etcd_alarm_name(x->type));
	}
}

static int dump(json_t *j)
{
	int r = cmd_print_json(j);

	return r == -ENOMEM ? KHA_EXIT_SOFTWARE : r < 0 ? KHA_EXIT_IOERR : KHA_EXIT_OK;
}

static int cmd_list(struct opts *o)
{
	kha_auto(kha_etcd_freep) struct kha_etcd *c = NULL;
	struct kha_etcd_alarm_list a = {};
	struct kha_etcd_member_list l = {};
	struct kha_diag d = {};
	int r = kha_etcd_new(&o->cfg, &c, &d), code;

	if (r == 0)
		r = kha_etcd_alarm_list(c, &a, &d);
	if (r < 0)
		return cmd_fail(o->who, o->json, cmd_etcd_exit_code(r, &d), "%s", d.msg);
	members_of(o, &l);
	if (o->json) {
		code = dump(json_pack("{s:s, s:i, s:o}", "verdict",
				      a.n_alarms ? "critical" : "healthy", "count", (int)a.n_alarms,
				      "alarms", alarms_json(&a, &l)));
	} else {
		if (a.n_alarms)
			print_table(&a, &l);
		else
			printf("no alarm is active\n");
		code = KHA_EXIT_OK;
	}
	kha_etcd_alarm_list_release(&a);
	kha_etcd_member_list_release(&l);
	return code;
}

/* --member and --alarm into f. Returns 0, or the exit code after saying what was wrong. */
static int filter(const struct opts *o, const struct kha_etcd_member_list *l,
		  struct kha_etcdops_alarm_filter *f)
{
	if (o->alarm) {
		if (strcasecmp(o->alarm, "CORRUPT") == 0)
			f->type = KHA_ETCD_ALARM_CORRUPT;
		else if (strcasecmp(o->alarm, "NOSPACE") == 0)
			f->type = KHA_ETCD_ALARM_NOSPACE;
		else
			return cmd_fail(o->who, o->json, KHA_EXIT_USAGE,
					"--alarm '%s': expected CORRUPT or NOSPACE", o->alarm);
	}
	if (o->member) {
		char *end;
		unsigned long long id;

		f->by_member = true;
		for (size_t i = 0; i < l->n_members; i++)
			if (strcmp(l->members[i].name, o->member) == 0) {
				f->member = l->members[i].id;
				return 0;
			}
		/* an id need not be a member any more: an alarm outlives its member's removal */
		errno = 0;
		id = strtoull(o->member, &end, 16);
		if (!*o->member || *end || errno)
			return cmd_fail(o->who, o->json, KHA_EXIT_USAGE,
					"--member '%s': no member of this name, and not an id in "
					"hex (kha etcd alarm list shows the members alarms name)",
					o->member);
		f->member = id;
	}
	return 0;
}

static int cmd_disarm(struct opts *o)
{
	struct kha_etcdops_alarm_filter f = {};
	struct kha_etcd_alarm_list done = {}, left = {};
	struct kha_etcd_member_list l = {};
	struct kha_diag d = {};
	size_t again = 0;
	int r, code;

	members_of(o, &l);
	code = filter(o, &l, &f);
	if (code) {
		kha_etcd_member_list_release(&l);
		return code;
	}
	r = kha_etcdops_alarm_disarm(&o->cfg, &f, &done, &left, &d);
	if (r < 0) {
		code = cmd_fail(o->who, o->json, cmd_etcd_exit_code(r, &d), "%s%s", d.msg,
				done.n_alarms ? " (some alarms were disarmed before: kha etcd "
						"alarm list)"
					      : "");
		goto out;
	}
	for (size_t i = 0; i < left.n_alarms; i++)
		again += kha_etcdops_alarm_matches(&f, &left.alarms[i]);
	code = again ? KHA_EXIT_CRITICAL : KHA_EXIT_OK;
	if (o->json) {
		int c2 = dump(json_pack(
			"{s:s, s:o, s:o}", "verdict", left.n_alarms ? "critical" : "healthy",
			"disarmed", alarms_json(&done, &l), "remaining", alarms_json(&left, &l)));
		code = c2 ? c2 : code;
		goto out;
	}
	if (!done.n_alarms)
		printf("no matching alarm is active: nothing to disarm\n");
	for (size_t i = 0; i < done.n_alarms; i++) {
		uint64_t id = done.alarms[i].member_id;

		if (id)
			printf("disarmed %s on %s (%" PRIx64 ")\n",
			       kha_etcd_alarm_name(done.alarms[i].type),
			       KHA_TERM(member_name(&l, id)), id);
		else
			printf("disarmed %s (naming no member)\n",
			       kha_etcd_alarm_name(done.alarms[i].type));
	}
	if (left.n_alarms) {
		printf("\nstill active:\n");
		print_table(&left, &l);
		if (again)
			fprintf(stderr,
				"%s: an alarm came back: its cause remains (NOSPACE: free space "
				"first with kha etcd defrag; CORRUPT: kha etcd member replace of "
				"the member it names)\n",
				o->who);
	} else {
		printf("no alarm remains\n");
	}
out:
	kha_etcd_alarm_list_release(&done);
	kha_etcd_alarm_list_release(&left);
	kha_etcd_member_list_release(&l);
	return code;
}

int cmd_etcd_alarm_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		const struct cmd_opt *options;
		int (*fn)(struct opts *o);
	} subs[] = {
		{"list", list_options, cmd_list},
		{"disarm", disarm_options, cmd_disarm},
	};
	struct opts o = {};
	int code = cmd_usage_or_help(argc, argv, usage);
	const __typeof__(subs[0]) *s;

	if (code >= 0)
		return code;
	s = CMD_SUB_FIND("etcd alarm", subs, argv[1]);
	if (!s)
		return KHA_EXIT_USAGE;
	o.sub = help_sub = s->name;
	snprintf(o.who, sizeof(o.who), "kha etcd alarm %s", o.sub);
	code = cmd_etcd_config_start(o.who + strlen("kha etcd "), &o.cfg);
	if (code == 0) {
		code = cmd_opts_parse(s->options, NULL, &o, o.who, sub_usage, argc - 1,
				      cmd_sub_argv(argv));
		if (code < 0 && optind < argc - 1)
			code = cmd_usage_error("etcd alarm", o.sub, "unexpected argument '%s'",
					       argv[optind + 1]);
		else if (code < 0)
			code = s->fn(&o);
	}
	kha_etcd_config_release(&o.cfg);
	return code;
}
