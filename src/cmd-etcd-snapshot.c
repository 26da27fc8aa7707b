// SPDX-License-Identifier: MIT
/* kha etcd snapshot save|verify|restore: verified snapshots, restored by etcd's own tool. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cmd-common.h"
#include "cmd-etcd.h"
#include "cmd-opt.h"
#include "kha/backup.h"
#include "kha/etcd.h"
#include "kha/parse.h"
#include "kha/banned.h"

enum {
	OPT_TRANSPORT = 0x100,
	OPT_LEVEL,
	OPT_BUMP_REVISION,
	OPT_NO_BUMP,
};

/*
 * Parses a subcommand's flags and its one FILE operand (missing: "missing the FILE to what").
 * Returns -1 to go on with *ret_file set, or the exit code (0 after the help).
 */
static int parse(const char *sub, const struct cmd_opt *table, cmd_opt_call_fn call, void *o,
		 void (*help)(FILE *out), const char *what, int argc, char **argv,
		 const char **ret_file)
{
	char who[48];
	int r;

	snprintf(who, sizeof(who), "kha etcd snapshot %s", sub);
	r = cmd_opts_parse(table, call, o, who, help, argc, argv);
	if (r >= 0)
		return r;
	if (optind != argc - 1) {
		fprintf(stderr, "%s: %s%s (run '%s --help')\n", who,
			optind >= argc ? "missing the " : "expected one FILE",
			optind >= argc ? what : "", who);
		return KHA_EXIT_USAGE;
	}
	*ret_file = argv[optind];
	return -1;
}

static int exit_code(int r)
{
	switch (-r) {
	case EPROTONOSUPPORT:
		return KHA_EXIT_UNAVAILABLE;
	case EMSGSIZE:
		return KHA_EXIT_DATAERR;
	default:
		return kha_exit_from_errno(r);
	}
}

static const char *size_text(char *buf, size_t n, uint64_t bytes)
{
	return kha_format_size(buf, n, bytes);
}

/* ---- save --------------------------------------------------------------------------------- */

struct save_opts {
	struct kha_etcd_config cfg;
	struct kha_snapshot_save_opts run;
	bool json;
};

static int save_apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct kha_snapshot_save_opts *o = &((struct save_opts *)target)->run;
	uint64_t v;

	if (val == OPT_LEVEL) {
		if (kha_parse_u64(arg, 1, 19, &v) < 0)
			return kha_diag_set(d, EINVAL, "'%s' is not 1 to 19", arg);
		o->compress_level = (int)v;
		return 0;
	}
	if (kha_snapshot_transport_parse(arg, &o->transport) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not auto, grpc or gateway", arg);
	return 0;
}

static const struct cmd_opt save_options[] = {
	CMD_OPT_INCLUDE_ETCD(struct save_opts, cfg),
	{CMD_OPT_BOOL, "compress", 0, NULL,
	 "zstd-compress the file (name it FILE.zst; verify and\nrestore detect compression by its "
	 "magic)",
	 0, offsetof(struct save_opts, run.compress), 0, NULL},
	{CMD_OPT_CALL, "level", 0, "N", "zstd level (default 3)", OPT_LEVEL, 0, 0, NULL},
	{CMD_OPT_CALL, "transport", 0, "auto|grpc|gateway",
	 "how to stream (default auto: gRPC, else gateway)", OPT_TRANSPORT, 0, 0, NULL},
	{CMD_OPT_DURATION, "timeout", 0, "DURATION", "limit for the whole transfer (default none)",
	 0, offsetof(struct save_opts, run.timeout_us), 0, NULL},
	{CMD_OPT_DURATION, "stall-timeout", 0, "DURATION",
	 "fail when no byte arrives for this long (default 30s)", 0,
	 offsetof(struct save_opts, run.stall_us), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct save_opts, json,
			     "report format (default table; JSON: docs/etcd-ops.md)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void save_usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd snapshot save FILE [flags]\n\n"
		"Streams a snapshot from ONE member (the first of --endpoints: a snapshot is per\n"
		"member) over etcd's native gRPC stream (the JSON gateway when the member does not\n"
		"speak gRPC here), checks the SHA-256 etcd appends while streaming, verifies the\n"
		"bbolt database, and only then renames the file into place: an interrupted or\n"
		"failed save leaves no FILE (the temporary file is '.FILE.tmp.XXXXXX' next to it;\n"
		"after a SIGKILL it stays there and is never FILE). The file is a real etcd\n"
		"snapshot: `etcdctl snapshot status` and `etcdctl snapshot restore` accept it.\n\n"
		"Flags:\n");
	cmd_opts_help(out, save_options);
	fprintf(out,
		"\nProgress (bytes, rate) is shown on stderr when it is a terminal. SIGINT/SIGTERM\n"
		"abort the save and remove the temporary file.\n\n"
		"Exit codes: 0 saved and verified, 65 corrupt stream or database, 69 member\n"
		"unreachable, 74 I/O error (disk full, FILE is a directory), 78 TLS files or trust,\n"
		"64 usage, 130/143 interrupted.\n\n"
		"Example:\n"
		"  kha etcd snapshot save /var/backups/etcd.db --endpoints https://10.0.0.1:2379 \\\n"
		"      --cacert /etc/etcd/ca.crt --cert /etc/etcd/client.crt "
		"--key /etc/etcd/client.key\n");
}

struct progress {
	bool tty;
	uint64_t start;
	bool shown;
};

static void on_progress(void *userdata, uint64_t received, uint64_t total)
{
	struct progress *p = userdata;
	double secs = (double)(kha_now_us() - p->start) / 1e6;
	char a[32], b[32], rate[32];

	if (!p->tty)
		return;
	kha_format_size(rate, sizeof(rate), secs > 0 ? (uint64_t)((double)received / secs) : 0);
	if (total)
		fprintf(stderr, "\r\033[K  %s / %s  %3.0f%%  %s/s",
			size_text(a, sizeof(a), received), size_text(b, sizeof(b), total),
			100.0 * (double)received / (double)total, rate);
	else
		fprintf(stderr, "\r\033[K  %s  %s/s", size_text(a, sizeof(a), received), rate);
	p->shown = true;
}

static double mib_per_s(uint64_t bytes, uint64_t us)
{
	return us ? (double)bytes / (1024.0 * 1024.0) / ((double)us / 1e6) : 0;
}

static void print_save(const struct kha_snapshot_save_result *res)
{
	const struct kha_snapshot_info *i = &res->info;
	char a[32], b[32], dur[32], dur2[32];

	printf("Snapshot saved: %s\n", res->path);
	printf("  member     %s", res->endpoint);
	if (res->header.member_id)
		printf(" (id %" PRIx64 "%s%s)", res->header.member_id,
		       res->version[0] ? ", etcd " : "", res->version);
	printf("\n");
	printf("  size       %s (%" PRIu64 " bytes: database + 32-byte SHA-256)",
	       size_text(a, sizeof(a), i->db_size + KHA_SNAPSHOT_HASH_LEN),
	       i->db_size + KHA_SNAPSHOT_HASH_LEN);
	if (i->compressed)
		printf(", %s compressed (zstd)", size_text(b, sizeof(b), i->file_size));
	printf("\n");
	printf("  integrity  SHA-256 OK, bbolt structure OK (%" PRIu64 " pages of %u bytes)\n",
	       i->pages, i->page_size);
	printf("  revision   %" PRId64, i->revision);
	if (res->header.revision)
		printf(" (member status before the snapshot: %" PRId64 ")", res->header.revision);
	printf("\n");
	printf("  keys       %" PRIu64 " entries in %" PRIu64 " buckets (%" PRIu64
	       " revisions in \"key\"), hash %08x\n",
	       i->total_keys, i->buckets, i->revisions, i->hash);
	printf("  transport  %s%s%s%s\n", kha_snapshot_transport_name(res->transport),
	       res->fallback[0] ? " (gRPC unavailable: " : "", res->fallback,
	       res->fallback[0] ? ")" : "");
	printf("  duration   %s (stream %s, %.1f MiB/s)\n",
	       kha_format_duration(dur, sizeof(dur), res->total_us),
	       kha_format_duration(dur2, sizeof(dur2), res->stream_us),
	       mib_per_s(i->db_size + KHA_SNAPSHOT_HASH_LEN, res->stream_us));
}

static json_t *info_json(const struct kha_snapshot_info *i)
{
	return json_pack("{s:I, s:I, s:b, s:b, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "size",
			 (json_int_t)(i->db_size + (i->has_hash ? KHA_SNAPSHOT_HASH_LEN : 0)),
			 "file_size", (json_int_t)i->file_size, "compressed", i->compressed,
			 "has_hash", i->has_hash, "page_size", (int)i->page_size, "pages",
			 (json_int_t)i->pages, "txid", (json_int_t)i->txid, "revision",
			 (json_int_t)i->revision, "total_keys", (json_int_t)i->total_keys,
			 "revisions", (json_int_t)i->revisions, "buckets", (json_int_t)i->buckets,
			 "hash", (json_int_t)i->hash);
}

static int print_save_json(const struct kha_snapshot_save_result *res)
{
	char id[24];

	snprintf(id, sizeof(id), "%" PRIx64, res->header.member_id);
	return cmd_print_json(json_pack(
		"{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:I, s:I, s:I, s:I}", "path", res->path,
		"endpoint", res->endpoint, "member_id", id, "version", res->version,
		"header_revision", (json_int_t)res->header.revision, "transport",
		kha_snapshot_transport_name(res->transport), "fallback", res->fallback, "snapshot",
		info_json(&res->info), "stream_us", (json_int_t)res->stream_us, "verify_us",
		(json_int_t)res->verify_us, "compress_us", (json_int_t)res->compress_us, "total_us",
		(json_int_t)res->total_us));
}

static int cmd_save(int argc, char **argv)
{
	struct save_opts so = {.run = {.cancel = &cmd_interrupted}};
	struct kha_snapshot_save_opts *o = &so.run;
	struct kha_snapshot_save_result res = {};
	struct progress prog = {.tty = isatty(STDERR_FILENO) == 1};
	struct kha_diag d = {};
	int r, code;

	o->cfg = &so.cfg;
	code = cmd_etcd_config_start("snapshot save", &so.cfg);
	if (code == 0)
		code = parse("save", save_options, save_apply, &so, save_usage, "FILE to write",
			     argc, argv, &o->path);
	if (code >= 0)
		goto out;
	if (so.cfg.n_endpoints > 1)
		fprintf(stderr,
			"kha etcd snapshot save: note: a snapshot is per member: streaming from %s "
			"only\n",
			so.cfg.endpoints[0]);
	cmd_catch_signals();
	prog.start = kha_now_us();
	o->progress = on_progress;
	o->progress_userdata = &prog;
	r = kha_snapshot_save(o, &res, &d);
	if (prog.shown)
		fprintf(stderr, "\r\033[K");
	if (r < 0) {
		if (r == -ECANCELED && cmd_interrupted) {
			fprintf(stderr,
				"kha etcd snapshot save: interrupted by %s: no snapshot written "
				"(%s untouched)\n",
				strsignal(cmd_interrupted), o->path);
			code = 128 + cmd_interrupted;
		} else {
			code = cmd_fail("kha etcd snapshot save", so.json, exit_code(r), "%s: %s",
					o->path, d.msg);
		}
		goto out;
	}
	if (so.json)
		code = print_save_json(&res) < 0 ? KHA_EXIT_IOERR : KHA_EXIT_OK;
	else {
		print_save(&res);
		code = KHA_EXIT_OK;
	}
out:
	kha_etcd_config_release(&so.cfg);
	return code;
}

/* ---- verify ------------------------------------------------------------------------------- */

struct verify_opts {
	bool allow_no_hash, json;
};

static const struct cmd_opt verify_options[] = {
	{CMD_OPT_BOOL, "allow-no-hash", 0, NULL,
	 "accept a database without the appended hash (a db\nfile copied from a data dir): "
	 "structure only",
	 0, offsetof(struct verify_opts, allow_no_hash), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct verify_opts, json, "report format (default table)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void verify_usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd snapshot verify FILE [flags]\n\n"
		"Checks a snapshot file: the SHA-256 etcd appends (the last 32 bytes), then the\n"
		"bbolt database (meta pages, every page reachable from the root in bounds and\n"
		"referenced once, keys in order, the freelist when stored) and prints what\n"
		"`etcdctl snapshot status` prints (hash, revision, total keys). zstd-compressed\n"
		"files are detected by their magic.\n\n"
		"Flags:\n");
	cmd_opts_help(out, verify_options);
	fprintf(out,
		"\nExit codes: 0 valid, 65 corrupt (or no hash), 74 unreadable, 64 usage.\n\n"
		"Example:\n"
		"  kha etcd snapshot verify /var/backups/etcd-20261127T054000Z-rev12345.db.zst\n");
}

static int cmd_verify(int argc, char **argv)
{
	struct verify_opts o = {};
	struct kha_snapshot_info i = {};
	struct kha_diag d = {};
	const char *path = NULL;
	char a[32], b[32];
	int r = parse("verify", verify_options, NULL, &o, verify_usage, "FILE to check", argc, argv,
		      &path);

	if (r >= 0)
		return r;
	r = kha_snapshot_verify_file(path, o.allow_no_hash, &i, &d);
	if (r < 0) {
		int code = r == -EBADMSG ? KHA_EXIT_DATAERR : exit_code(r);

		if (o.json)
			kha_ignore(cmd_print_json(json_pack("{s:s, s:b, s:s}", "path", path, "ok",
							    0, "error", d.msg)));
		if (r == -EBADMSG)
			fprintf(stderr, "kha etcd snapshot verify: CORRUPT: %s\n", d.msg);
		else
			fprintf(stderr, "kha etcd snapshot verify: %s\n", d.msg);
		return code;
	}
	if (o.json)
		return cmd_print_json(json_pack("{s:s, s:b, s:o}", "path", path, "ok", 1,
						"snapshot", info_json(&i))) < 0
			       ? KHA_EXIT_IOERR
			       : KHA_EXIT_OK;
	printf("%s: OK\n", path);
	printf("  format     bbolt database%s%s\n", i.has_hash ? " + SHA-256" : " (no hash)",
	       i.compressed ? ", zstd-compressed" : "");
	printf("  size       %s", size_text(a, sizeof(a), i.file_size));
	if (i.compressed)
		printf(" on disk, %s decompressed",
		       size_text(b, sizeof(b),
				 i.db_size + (i.has_hash ? KHA_SNAPSHOT_HASH_LEN : 0)));
	printf("\n");
	printf("  integrity  %s, bbolt structure OK (%" PRIu64 " pages of %u bytes, txid %" PRIu64
	       ")\n",
	       i.has_hash ? "SHA-256 OK" : "no hash to check", i.pages, i.page_size, i.txid);
	printf("  revision   %" PRId64 "\n", i.revision);
	printf("  keys       %" PRIu64 " entries in %" PRIu64 " buckets (%" PRIu64
	       " revisions in \"key\"), hash %08x\n",
	       i.total_keys, i.buckets, i.revisions, i.hash);
	return KHA_EXIT_OK;
}

/* ---- the subcommand table ------------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "Usage: kha etcd snapshot save|verify|restore [flags]\n\n"
		     "  save FILE       stream a verified snapshot from one member, atomically\n"
		     "  verify FILE     check the appended SHA-256 and the bbolt structure\n"
		     "  restore FILE    restore into a new data dir with etcd's own tool\n\n"
		     "Run 'kha etcd snapshot SUBCOMMAND --help' for its flags, for example:\n"
		     "  kha etcd snapshot save /var/backups/etcd.db --endpoints "
		     "https://10.0.0.1:2379 --cacert ca.crt\n");
}

int cmd_etcd_snapshot_restore(int argc, char **argv);

int cmd_etcd_snapshot_main(int argc, char **argv)
{
	static const struct cmd_sub subs[] = {
		{"save", cmd_save, NULL},
		{"verify", cmd_verify, NULL},
		{"status", cmd_verify, NULL}, /* etcdctl's name for it */
		{"restore", cmd_etcd_snapshot_restore, NULL},
	};

	return cmd_sub_run("etcd snapshot", subs, KHA_ARRAY_SIZE(subs), usage, argc, argv);
}

/* ---- restore ------------------------------------------------------------------------------ */

struct restore_opts {
	struct kha_restore_opts run;
	const char *tool;
	bool json;
};

static int restore_apply(void *target, int val, const char *arg, struct kha_diag *d)
{
	struct kha_restore_opts *o = &((struct restore_opts *)target)->run;
	uint64_t v;

	if (val == OPT_NO_BUMP) {
		o->bump_revision = 0;
		return 0;
	}
	if (kha_parse_u64(arg, 1, INT64_MAX / 2, &v) < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not a positive number", arg);
	o->bump_revision = (int64_t)v;
	return 0;
}

#define ROFF(field) offsetof(struct restore_opts, run.field)

static const struct cmd_opt restore_options[] = {
	{CMD_OPT_STRING, "data-dir", 0, "DIR",
	 "the new member's data dir (must not exist, or be empty)", 0, ROFF(data_dir), 0, NULL},
	{CMD_OPT_STRING, "wal-dir", 0, "DIR", "a separate WAL dir (default inside --data-dir)", 0,
	 ROFF(wal_dir), 0, NULL},
	{CMD_OPT_STRING, "name", 0, "NAME", "the member's name", 0, ROFF(name), 0, NULL},
	{CMD_OPT_STRING, "initial-cluster", 0, "LIST",
	 "every member of the new cluster, NAME=PEER-URL,...", 0, ROFF(initial_cluster), 0, NULL},
	{CMD_OPT_STRING, "initial-advertise-peer-urls", 0, "URL", "this member's peer URL(s)", 0,
	 ROFF(initial_advertise_peer_urls), 0, NULL},
	{CMD_OPT_STRING, "initial-cluster-token", 0, "T",
	 "the new cluster's token (default etcd-cluster; use a\nnew one, so the old members cannot "
	 "join it)",
	 0, ROFF(initial_cluster_token), 0, NULL},
	{CMD_OPT_CALL, "bump-revision", 0, "N", "how far to bump the revision (default 1000000000)",
	 OPT_BUMP_REVISION, 0, 0, NULL},
	{CMD_OPT_CALL, "no-bump", 0, NULL, "keep the revision as in the snapshot", OPT_NO_BUMP, 0,
	 0, NULL},
	{CMD_OPT_BOOL, "allow-no-hash", 0, NULL, "restore a db file without the appended hash", 0,
	 ROFF(allow_no_hash), 0, NULL},
	{CMD_OPT_STRING, "tool", 0, "PATH", "etcdutl or etcdctl to use (default: etcdutl, etcdctl)",
	 0, offsetof(struct restore_opts, tool), 0, NULL},
	CMD_OPT_OUTPUT_ENTRY(struct restore_opts, json, "report format (default table)"),
	CMD_OPT_HELP_ENTRY,
	{},
};

static void restore_usage(FILE *out)
{
	fprintf(out,
		"Usage: kha etcd snapshot restore FILE --data-dir DIR --name NAME\n"
		"       --initial-cluster NAME=URL,... --initial-advertise-peer-urls URL [flags]\n\n"
		"Restores a snapshot into a new data dir for one member of a new cluster, with\n"
		"etcd's own tool (etcdutl when installed, else `etcdctl snapshot restore`), after\n"
		"verifying the file (SHA-256 and bbolt; a corrupt snapshot is refused) and\n"
		"decompressing it when it is zstd. Run it on every member with the same FILE,\n"
		"--initial-cluster and --initial-cluster-token and the member's own --name and\n"
		"--initial-advertise-peer-urls (docs/disaster-recovery.md).\n\n"
		"Safe for Kubernetes by default: with a tool that can (etcdutl 3.5.10+), the\n"
		"revision is bumped by 1000000000 and marked compacted, so every watcher re-lists\n"
		"instead of waiting for revisions it already saw. etcdctl 3.4 cannot: kha says so\n"
		"and the docs give the manual procedure.\n\n"
		"Flags:\n");
	cmd_opts_help(out, restore_options);
	fprintf(out,
		"\nExit codes: 0 restored, 65 corrupt snapshot, 74 the data dir exists or the tool\n"
		"failed, 78 no tool, 64 usage.\n\n"
		"Example:\n"
		"  kha etcd snapshot restore /var/backups/etcd-20261127T054000Z-rev12345.db.zst \\\n"
		"      --data-dir /var/lib/etcd-restored --name m1 \\\n"
		"      --initial-cluster m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,"
		"m3=https://10.0.0.3:2380 \\\n"
		"      --initial-advertise-peer-urls https://10.0.0.1:2380 "
		"--initial-cluster-token etcd-restored-1\n");
}

/* What restore did, on stdout (and its warning on stderr); returns the exit code. */
static int print_restored(const struct restore_opts *ro, const struct kha_restore_tool *tool,
			  const struct kha_restore_result *res)
{
	const struct kha_restore_opts *o = &ro->run;

	if (ro->json)
		return cmd_print_json(
			       json_pack("{s:s, s:o, s:s, s:s, s:b, s:b, s:I, s:I, s:s}", "path",
					 o->snapshot, "snapshot", info_json(&res->snapshot),
					 "data_dir", o->data_dir, "tool", tool->path, "can_bump",
					 tool->can_bump, "bumped", res->bumped, "bump_revision",
					 (json_int_t)(res->bumped ? o->bump_revision : 0),
					 "restored_revision", (json_int_t)res->restored_revision,
					 "name", o->name)) < 0
			       ? KHA_EXIT_IOERR
			       : KHA_EXIT_OK;
	printf("Verified %s: SHA-256 %s, bbolt OK, revision %" PRId64 ", %" PRIu64 " entries%s.\n",
	       o->snapshot, res->snapshot.has_hash ? "OK" : "absent (--allow-no-hash)",
	       res->snapshot.revision, res->snapshot.total_keys,
	       res->snapshot.compressed ? " (zstd, decompressed for the tool)" : "");
	printf("Restored member %s into %s with %s.\n", o->name, o->data_dir, tool->path);
	if (res->bumped)
		printf("Revision bumped by %lld and marked compacted (now %" PRId64
		       "): Kubernetes watchers re-list instead of waiting.\n",
		       (long long)o->bump_revision, res->restored_revision);
	else if (o->bump_revision > 0)
		fprintf(stderr,
			"kha etcd snapshot restore: WARNING: %s cannot bump the revision or mark it "
			"compacted (etcdutl 3.5.10+ can): the restored revision is %" PRId64
			", possibly lower than what Kubernetes clients have seen. Before starting "
			"the kube-apiservers, follow docs/disaster-recovery.md (\"Kubernetes after a "
			"restore without --bump-revision\").\n",
			tool->path, res->restored_revision);
	printf("Start it with: etcd --name %s --data-dir %s --initial-cluster %s "
	       "--initial-advertise-peer-urls %s%s%s (plus its listen, advertise and TLS flags; "
	       "--initial-cluster-state is ignored for a restored data dir).\n",
	       o->name, o->data_dir, o->initial_cluster, o->initial_advertise_peer_urls,
	       o->initial_cluster_token ? " --initial-cluster-token " : "",
	       o->initial_cluster_token ? o->initial_cluster_token : "");
	return KHA_EXIT_OK;
}

int cmd_etcd_snapshot_restore(int argc, char **argv)
{
	struct restore_opts ro = {.run = {.bump_revision = KHA_RESTORE_DEFAULT_BUMP}};
	struct kha_restore_opts *o = &ro.run;
	struct kha_restore_tool tool = {};
	struct kha_restore_result res = {};
	struct kha_diag d = {};
	int r = parse("restore", restore_options, restore_apply, &ro, restore_usage,
		      "snapshot FILE", argc, argv, &o->snapshot);

	if (r >= 0)
		return r;
	if (!o->data_dir || !o->name || !o->initial_cluster || !o->initial_advertise_peer_urls) {
		fprintf(stderr,
			"kha etcd snapshot restore: --data-dir, --name, --initial-cluster and "
			"--initial-advertise-peer-urls are required\n");
		return KHA_EXIT_USAGE;
	}
	if (kha_restore_check_member(o, &d) < 0) {
		fprintf(stderr, "kha etcd snapshot restore: %s\n", d.msg);
		return KHA_EXIT_USAGE;
	}
	r = kha_restore_find_tool(ro.tool, &tool, &d);
	if (r < 0) {
		fprintf(stderr, "kha etcd snapshot restore: %s\n", d.msg);
		return KHA_EXIT_CONFIG;
	}
	r = kha_restore(o, &tool, &res, &d);
	if (r < 0) {
		fprintf(stderr, "kha etcd snapshot restore: %s\n", d.msg);
		return r == -EEXIST || r == -EIO ? KHA_EXIT_IOERR : exit_code(r);
	}
	return print_restored(&ro, &tool, &res);
}
