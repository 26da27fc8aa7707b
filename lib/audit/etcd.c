// SPDX-License-Identifier: MIT
/* Audit of etcd: members, quorum, learners, alarms (pure), and the backups (a directory). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kha/audit.h"
#include "kha/backup.h"
#include "kha/parse.h"
#include "kha/banned.h"

static const char *member_name(const struct kha_etcd_member_report *m, char *buf, size_t size)
{
	if (m->member.name && m->member.name[0])
		return m->member.name;
	snprintf(buf, size, "%" PRIx64 " (unstarted)", m->member.id);
	return buf;
}

static const char *member_endpoint(const struct kha_etcd_member_report *m)
{
	if (m->endpoint)
		return m->endpoint;
	return m->member.n_client_urls ? m->member.client_urls[0] : "";
}

static int check_members(const struct kha_etcd_cluster_report *cr, size_t voters,
			 struct kha_audit_report *r)
{
	const char *ep = cr->members_from ? cr->members_from : "URL";
	char finding[512], fix[512], content[2048];

	if (voters <= 1) {
		snprintf(
			finding, sizeof(finding),
			"%zu voting member%s: losing %s (its machine, its disk) loses the cluster's "
			"whole state",
			voters, voters == 1 ? "" : "s", voters == 1 ? "it" : "one");
		snprintf(fix, sizeof(fix),
			 "grow to 3 members, one at a time: kha etcd member add NAME --learner "
			 "--peer-urls https://HOST:2380, start it, kha etcd member promote NAME");
		snprintf(content, sizeof(content),
			 "# Grow etcd to 3 members, one at a time (docs/etcd-ops.md). Add the\n"
			 "# connection flags you use (--cacert, --cert, --key) to every command.\n"
			 "kha etcd member add etcd-2 --learner --peer-urls https://HOST2:2380 "
			 "--endpoints %s\n"
			 "# start etcd on HOST2 with the flags printed above, then:\n"
			 "kha etcd member promote etcd-2 --endpoints %s\n"
			 "kha etcd member add etcd-3 --learner --peer-urls https://HOST3:2380 "
			 "--endpoints %s\n"
			 "# start etcd on HOST3 with the flags printed above, then:\n"
			 "kha etcd member promote etcd-3 --endpoints %s\n",
			 ep, ep, ep, ep);
		return kha_audit_add(r, "etcd-members", ep, KHA_AUDIT_CRITICAL, finding, fix,
				     "etcd-grow.sh", content);
	}
	if (voters % 2 == 0) {
		snprintf(
			finding, sizeof(finding),
			"%zu voting members: quorum is %zu, so it survives losing %zu, no more than "
			"%zu members would; an even count only adds a machine that can fail",
			voters, voters / 2 + 1, (voters - 1) / 2, voters - 1);
		snprintf(fix, sizeof(fix),
			 "make the count odd: add a member (kha etcd member add NAME --learner "
			 "--peer-urls URL, then promote it) or remove one (kha etcd member remove "
			 "NAME)");
		return kha_audit_add(r, "etcd-members", ep, KHA_AUDIT_WARNING, finding, fix, NULL,
				     NULL);
	}
	snprintf(finding, sizeof(finding), "%zu voting members: quorum %zu, survives losing %zu",
		 voters, voters / 2 + 1, (voters - 1) / 2);
	return kha_audit_add(r, "etcd-members", ep, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

/* etcd-health: quorum, each voter down, the leader */
static int check_health(const struct kha_etcd_cluster_report *cr, size_t voters, size_t up,
			size_t quorum, bool leader_agreed, struct kha_audit_report *r)
{
	char finding[768], fix[512], name[64];
	size_t down_added = 0;
	int ret;

	if (up < quorum) {
		snprintf(finding, sizeof(finding),
			 "quorum lost: %zu of %zu voting members answer, %zu needed: every write "
			 "fails, the apiservers cannot work",
			 up, voters, quorum);
		ret = kha_audit_add(r, "etcd-health", cr->members_from, KHA_AUDIT_CRITICAL, finding,
				    "bring the stopped members back (systemctl start etcd on "
				    "them); if their data is lost, restore from a snapshot "
				    "(docs/disaster-recovery.md)",
				    NULL, NULL);
		if (ret < 0)
			return ret;
	} else if (!leader_agreed) {
		ret = kha_audit_add(
			r, "etcd-health", cr->members_from, KHA_AUDIT_CRITICAL,
			"the members that answer do not agree on a leader: writes stall "
			"until one is elected",
			"check the network between the members and their logs (kha etcd "
			"status shows what each member reports)",
			NULL, NULL);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < cr->n_members; i++) {
		const struct kha_etcd_member_report *m = &cr->members[i];

		if (m->reachable)
			continue;
		snprintf(finding, sizeof(finding), "%s %s does not answer at %s: %s",
			 m->member.is_learner ? "learner" : "member",
			 member_name(m, name, sizeof(name)), member_endpoint(m),
			 m->error ? m->error : "no answer");
		if (!m->member.name || !m->member.name[0])
			snprintf(fix, sizeof(fix),
				 "start it with --initial-cluster-state existing, or remove it: "
				 "kha etcd member remove %" PRIx64,
				 m->member.id);
		else
			snprintf(
				fix, sizeof(fix),
				"start it again (systemctl start etcd on its machine); if its "
				"machine is gone, replace it: kha etcd member replace %s --name NEW "
				"--peer-urls URL",
				m->member.name);
		ret = kha_audit_add(r, "etcd-health", member_endpoint(m),
				    up < quorum ? KHA_AUDIT_CRITICAL : KHA_AUDIT_WARNING, finding,
				    fix, NULL, NULL);
		if (ret < 0)
			return ret;
		down_added++;
	}
	if (up >= quorum && leader_agreed && !down_added) {
		snprintf(finding, sizeof(finding), "all %zu members answer and agree on the leader",
			 cr->n_members);
		ret = kha_audit_add(r, "etcd-health", cr->members_from, KHA_AUDIT_OK, finding, NULL,
				    NULL, NULL);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* etcd-learners: each learner, which neither votes nor lets another member join */
static int check_learners(const struct kha_etcd_cluster_report *cr, struct kha_audit_report *r)
{
	char finding[768], fix[512], name[64];
	int ret;

	for (size_t i = 0; i < cr->n_members; i++) {
		const struct kha_etcd_member_report *m = &cr->members[i];

		if (!m->member.is_learner)
			continue;
		snprintf(
			finding, sizeof(finding),
			"member %s is a learner: it does not vote and adds no fault tolerance, and "
			"while it waits no other member can be added",
			member_name(m, name, sizeof(name)));
		snprintf(fix, sizeof(fix),
			 "promote it once it is in sync (kha etcd member promote %s), or remove it",
			 m->member.name && m->member.name[0] ? m->member.name : name);
		ret = kha_audit_add(r, "etcd-learners", member_endpoint(m), KHA_AUDIT_WARNING,
				    finding, fix, NULL, NULL);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* what a NOSPACE alarm asks for, on a member or naming none */
#define NOSPACE_FIX                                                                         \
	"compact and defragment (kha etcd defrag), raise --quota-backend-bytes if needed, " \
	"then disarm the alarm: kha etcd alarm disarm --alarm NOSPACE"

/* etcd-alarms: NOSPACE and CORRUPT, on a member or naming none (etcd 3.4's CORRUPT) */
static int check_alarms(const struct kha_etcd_cluster_report *cr, struct kha_audit_report *r)
{
	char finding[768], fix[512], name[64];
	bool any_alarm = false;
	int ret;

	for (size_t i = 0; i < cr->n_members; i++) {
		const struct kha_etcd_member_report *m = &cr->members[i];

		if (m->alarm_nospace) {
			any_alarm = true;
			snprintf(finding, sizeof(finding),
				 "NOSPACE alarm on %s: the cluster accepts only reads and deletes",
				 member_name(m, name, sizeof(name)));
			ret = kha_audit_add(r, "etcd-alarms", member_endpoint(m),
					    KHA_AUDIT_CRITICAL, finding, NOSPACE_FIX, NULL, NULL);
			if (ret < 0)
				return ret;
		}
		if (m->alarm_corrupt) {
			any_alarm = true;
			snprintf(finding, sizeof(finding),
				 "CORRUPT alarm on %s: its data differs from the others'",
				 member_name(m, name, sizeof(name)));
			snprintf(
				fix, sizeof(fix),
				"stop the etcd of %s (it serves the corrupt copy), then replace it "
				"with a fresh member (docs/etcd-ops.md): kha etcd member replace %s "
				"--name NEW --peer-urls URL",
				member_name(m, name, sizeof(name)),
				member_name(m, name, sizeof(name)));
			ret = kha_audit_add(r, "etcd-alarms", member_endpoint(m),
					    KHA_AUDIT_CRITICAL, finding, fix, NULL, NULL);
			if (ret < 0)
				return ret;
		}
	}
	if (cr->alarm_corrupt_unnamed) {
		/* etcd 3.4's periodic check raises it on member 0: which member differs is for
		 * the consistency check to say */
		any_alarm = true;
		ret = kha_audit_add(
			r, "etcd-alarms", cr->members_from, KHA_AUDIT_CRITICAL,
			"CORRUPT alarm naming no member: the members' data differ and the "
			"cluster refuses writes",
			"kha etcd check consistency", NULL, NULL);
		if (ret < 0)
			return ret;
	}
	if (cr->alarm_nospace_unnamed) {
		any_alarm = true;
		ret = kha_audit_add(
			r, "etcd-alarms", cr->members_from, KHA_AUDIT_CRITICAL,
			"NOSPACE alarm naming no member: the cluster accepts only reads "
			"and deletes",
			NOSPACE_FIX, NULL, NULL);
		if (ret < 0)
			return ret;
	}
	if (!any_alarm) {
		ret = kha_audit_add(r, "etcd-alarms", cr->members_from, KHA_AUDIT_OK,
				    "no NOSPACE or CORRUPT alarm", NULL, NULL, NULL);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int kha_audit_check_etcd(const struct kha_etcd_cluster_report *cr, struct kha_audit_report *r)
{
	size_t voters = 0, up = 0, quorum;
	uint64_t leader = 0;
	bool leader_agreed = true;
	int ret;

	for (size_t i = 0; i < cr->n_members; i++) {
		const struct kha_etcd_member_report *m = &cr->members[i];

		if (m->member.is_learner)
			continue;
		voters++;
		if (!m->reachable)
			continue;
		up++;
		if (!m->status.leader || (leader && m->status.leader != leader))
			leader_agreed = false;
		if (m->status.leader)
			leader = m->status.leader;
	}
	if (!up)
		leader_agreed = false;
	quorum = voters / 2 + 1;
	ret = check_members(cr, voters, r);
	if (ret < 0)
		return ret;

	ret = check_health(cr, voters, up, quorum, leader_agreed, r);
	if (ret < 0)
		return ret;
	ret = check_learners(cr, r);
	if (ret < 0)
		return ret;
	return check_alarms(cr, r);
}

/* ---- backups ------------------------------------------------------------------------------- */

static const char *age_text(char *buf, size_t size, int64_t now_s, int64_t then_s)
{
	int64_t age = now_s > then_s ? now_s - then_s : 0;

	return kha_format_duration(buf, size, (uint64_t)age * KHA_USEC_PER_SEC);
}

int kha_audit_check_backup(const char *dir, const char *dir_error,
			   const struct kha_audit_backup_file *files, size_t n, int64_t now_s,
			   uint64_t max_age_us, struct kha_audit_report *r)
{
	const struct kha_audit_backup_file *verified = NULL, *newest = n ? &files[0] : NULL;
	char finding[768], fix[512], max[32], age[32];
	int64_t max_age_s = (int64_t)(max_age_us / KHA_USEC_PER_SEC);
	enum kha_audit_severity sev;
	int ret;

	kha_format_duration(max, sizeof(max), max_age_us);
	snprintf(
		fix, sizeof(fix),
		"take verified snapshots on a schedule: kha etcd backup --dir %s --every 1h (under "
		"kha elect on every master); now: kha etcd snapshot save %s/etcd-manual.db",
		dir, dir);
	if (dir_error) {
		snprintf(finding, sizeof(finding), "backup directory %s: %s", dir, dir_error);
		return kha_audit_add(r, "etcd-backup", dir, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	for (size_t i = 0; i < n && !verified; i++)
		if (files[i].verified)
			verified = &files[i];
	if (!newest) {
		snprintf(finding, sizeof(finding),
			 "no snapshot in %s: a lost quorum or a bad write cannot be undone", dir);
		return kha_audit_add(r, "etcd-backup", dir, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	if (!verified) {
		snprintf(finding, sizeof(finding), "no snapshot in %s verifies (newest %s: %s)",
			 dir, newest->name, newest->reason[0] ? newest->reason : "not checked");
		return kha_audit_add(r, "etcd-backup", dir, KHA_AUDIT_CRITICAL, finding, fix, NULL,
				     NULL);
	}
	if (verified != newest) {
		snprintf(finding, sizeof(finding),
			 "the newest file in %s, %s, is not a valid snapshot: %s", dir,
			 newest->name, newest->reason[0] ? newest->reason : "not checked");
		ret = kha_audit_add(r, "etcd-backup", newest->name, KHA_AUDIT_WARNING, finding,
				    "find out why the last backup broke (disk full? killed "
				    "mid-write?) and remove the file; kha etcd backup writes "
				    "atomically and verifies every snapshot",
				    NULL, NULL);
		if (ret < 0)
			return ret;
	}
	age_text(age, sizeof(age), now_s, verified->mtime_s);
	if (now_s - verified->mtime_s > max_age_s) {
		sev = now_s - verified->mtime_s > 4 * max_age_s ? KHA_AUDIT_CRITICAL
								: KHA_AUDIT_WARNING;
		snprintf(finding, sizeof(finding),
			 "the newest verified snapshot, %s, is %s old (allowed: %s): restoring "
			 "it loses every change since",
			 verified->name, age, max);
		return kha_audit_add(r, "etcd-backup", dir, sev, finding, fix, NULL, NULL);
	}
	if (verified->revision)
		snprintf(finding, sizeof(finding),
			 "newest snapshot %s is %s old (allowed %s), verifies, revision %" PRId64,
			 verified->name, age, max, verified->revision);
	else
		snprintf(finding, sizeof(finding),
			 "newest snapshot %s is %s old (allowed %s) and verifies", verified->name,
			 age, max);
	return kha_audit_add(r, "etcd-backup", dir, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
}

#define MAX_VERIFY 8

int kha_audit_collect_backup(const char *dir, uint64_t max_age_us, struct kha_audit_report *r)
{
	struct kha_audit_backup_file *files = NULL;
	struct kha_backup_list l = {};
	struct kha_diag d = {};
	int ret;

	ret = kha_backup_scan_dir(dir, &l, &d);
	if (ret == -ENOMEM)
		return ret;
	if (ret < 0)
		return kha_audit_check_backup(dir, strerror(-ret), NULL, 0, (int64_t)time(NULL),
					      max_age_us, r);
	if (l.n) {
		files = calloc(l.n, sizeof(*files));
		if (!files) {
			kha_backup_list_release(&l);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < l.n; i++) {
		files[i].mtime_s = (int64_t)l.files[i].mtime.tv_sec;
		snprintf(files[i].name, sizeof(files[i].name), "%s", l.files[i].name);
	}
	for (size_t i = 0; i < l.n && i < MAX_VERIFY; i++) {
		struct kha_snapshot_info info = {};
		struct kha_diag vd = {};

		files[i].checked = true;
		if (kha_backup_verify_cached(dir, &l.files[i], &info, &vd) == 0) {
			files[i].verified = true;
			files[i].revision = info.revision;
			break;
		}
		snprintf(files[i].reason, sizeof(files[i].reason), "%s",
			 vd.msg[0] ? vd.msg : "does not verify");
	}
	ret = kha_audit_check_backup(dir, NULL, files, l.n, (int64_t)time(NULL), max_age_us, r);
	kha_backup_list_release(&l);
	free(files);
	return ret;
}
