# SPDX-License-Identifier: MIT
"""etcd's alarms on real clusters of both release lines, and the fixes kha prints for them,
run as printed (with this cluster's values put in for NEW, URL and the connection flags):

- CORRUPT, raised for real by etcd's periodic corruption check after a member's database was
  changed on disk while it was stopped. etcd 3.6 names the member; 3.4 names none (member 0),
  so its fix goes through kha etcd check consistency. The fix (stop the member, then kha etcd
  member replace) must leave no alarm, the new member started and voting, the data consistent
  and the cluster healthy; every other change stays refused meanwhile.
- NOSPACE (a tiny --quota-backend-bytes): freed, then kha etcd alarm disarm as printed.
- etcd's refusals (3.6 answers {"code","message"}) reported as what etcd said, with a next step.
"""
import base64
import json
import os
import re
import shlex

import pytest

from conftest import run_kha
from kha_testlib.etcd import _free_port, etcd_cluster, etcd_version  # noqa: F401 (fixtures)
from kha_testlib.etcdops import b64, fill_keys, new_members, poll, run_replace  # noqa: F401
from kha_testlib.process import deadline, wait_for

# the periodic corruption check, every second (off by default); 3.6 renamed the flag
CORRUPT_CHECK = {"3.4": "--experimental-corrupt-check-time=1s", "3.6": "--corrupt-check-time=1s"}
# membership changes commit through raft: on a loaded test machine 5 s can be short
SLOW = ["--command-timeout", "15s"]
REPLACE = re.compile(r"kha etcd member replace \S+ --name NEW --peer-urls URL")


def clean_env():
    """The environment without a cluster of the machine's own (kha audit reads it)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")
            and k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}


def kha_json(*args, timeout=60):
    p = run_kha(*args, "-o", "json", timeout=timeout)
    assert p.stdout, (p.returncode, p.stderr)
    return p, json.loads(p.stdout)


def alarms(c):
    p, rep = kha_json("etcd", "alarm", "list", *c.client_flags())
    assert p.returncode == 0, p.stderr
    assert rep["count"] == len(rep["alarms"])
    return rep["alarms"]


def corrupt_on_disk(c, i):
    """Changes one value in member i's database while it is stopped, as a bad disk would
    (bbolt has no page checksums; the same length keeps the file valid), then starts it."""
    before, after = b"value-before-0123456789", b"VALUE-AFTER!-0123456789"
    c.gateway("/v3/kv/put", {"key": b64("diverge/x"), "value": b64(before)})
    # member i applies the put on its own time: wait until it serves it before stopping it
    wait_for(lambda: c.gateway("/v3/kv/range", {"key": b64("diverge/x"), "serializable": True},
                               member=i).get("kvs"), deadline(5), f"member {i} to apply the put")
    c.stop(i)  # graceful: its backend is committed to the file
    db = os.path.join(c.member(i).data_dir, "member", "snap", "db")
    with open(db, "rb") as f:
        raw = f.read()
    assert before in raw
    with open(db, "wb") as f:
        f.write(raw.replace(before, after))
    c.start(i)


def test_corrupt_alarm_is_repaired_by_the_printed_fix(etcd_version, etcd_cluster, new_members):
    c = etcd_cluster(members=3, tls=True, extra_args=(CORRUPT_CHECK[etcd_version],))
    flags = c.client_flags()
    data = fill_keys(c, 50)
    corrupt_on_disk(c, 2)
    # the leader compares the members' hashes every second: the alarm comes within a few
    raised = poll(lambda: alarms(c) or None, deadline(10), "a CORRUPT alarm")
    ids = {m["name"]: m["id"] for m in kha_json("etcd", "member", "list", *flags)[1]["members"]}
    if etcd_version == "3.6":
        assert raised == [{"member_id": ids["etcd-2"], "member": "etcd-2", "alarm": "CORRUPT"}]
    else:
        assert raised == [{"member_id": "0", "member": "", "alarm": "CORRUPT"}]
    p = run_kha("etcd", "alarm", "list", *flags)
    assert p.returncode == 0 and "CORRUPT" in p.stdout, p.stdout + p.stderr

    # the audit's fix (3.4: through the consistency check, which names the member)
    p = run_kha("audit", "-o", "json", *flags, env=clean_env(), timeout=60)
    assert p.returncode == 2, p.stdout + p.stderr
    found = [f for f in json.loads(p.stdout)["findings"] if f["check"] == "etcd-alarms"]
    assert len(found) == 1 and found[0]["severity"] == "critical", found
    fix = found[0]["fix"]
    if etcd_version == "3.4":
        assert fix == "kha etcd check consistency"
        p, rep = kha_json(*shlex.split(fix)[1:], *flags)
        assert p.returncode == 2 and rep["verdict"] == "diverged", rep
        fix = rep["summary"]
    else:
        # kha etcd status prints the same repair
        p, st = kha_json("etcd", "status", *flags)
        assert p.returncode == 2, p.stderr
        assert any(REPLACE.search(w) and "etcd-2" in w for w in st["warnings"]), st
    assert "stop" in fix and "etcd-2" in fix, fix
    printed = REPLACE.search(fix).group(0)
    assert printed.startswith("kha etcd member replace etcd-2 "), fix

    # every other change is refused while the alarm is active, and the refusal names the way
    new = new_members(c, "etcd-new")
    p = run_kha("etcd", "member", "add", "etcd-x", "--learner", "--peer-urls",
                f"https://127.0.0.1:{_free_port()}", *flags, *SLOW)
    assert p.returncode == 1 and "refused (alarm)" in p.stderr, p.stderr
    assert ("kha etcd member replace etcd-2" if etcd_version == "3.6"
            else "kha etcd check consistency") in p.stderr, p.stderr

    argv = [*shlex.split(printed.replace("NEW", new.name).replace("URL", new.peer_url))[1:],
            *flags, *SLOW]
    # pasted while the member still runs: refused, saying to stop it (nothing changed)
    p = run_kha(*argv, timeout=120)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "refused (corrupt-running)" in p.stderr and "etcd-2 still runs" in p.stderr
    assert sorted(ids) == sorted(m["name"] for m in
                                 kha_json("etcd", "member", "list", *flags)[1]["members"])

    # as the fix says: stop its etcd, then the command
    c.stop(2)
    p = run_replace(argv, new)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Step 1/5: etcd-2 carries the CORRUPT alarm and is stopped: removing it" in p.stdout
    assert "Step 2/5: disarming the CORRUPT alarm" in p.stdout
    assert "disarmed; no alarm remains" in p.stdout
    assert "Step 4/5: waiting for etcd-new to start and catch up" in p.stdout
    assert "Step 5/5: promoting etcd-new" in p.stdout
    if etcd_version == "3.4":
        assert "so the alarm is about etcd-2" in p.stdout, p.stdout
    assert "Done: etcd-new replaced etcd-2 (removed first, CORRUPT alarm disarmed)" in p.stdout

    # no alarm; the new member runs and votes; the data agree; the cluster is healthy
    assert alarms(c) == []
    assert new.proc.running, new.proc.log_tail()
    members = {m["name"]: m for m in kha_json("etcd", "member", "list", *flags)[1]["members"]}
    assert sorted(members) == ["etcd-0", "etcd-1", "etcd-new"], members
    assert not members["etcd-new"]["is_learner"] and members["etcd-new"]["reachable"]
    p, rep = kha_json("etcd", "check", "consistency", *flags)
    assert p.returncode == 0 and rep["verdict"] == "consistent", rep
    assert rep["agreeing"] == 3

    def healthy():
        p, st = kha_json("etcd", "status", *flags)
        return (p.returncode == 0 and st["verdict"] == "healthy" and st["voters_up"] == 3
                and not st["warnings"]) or None
    poll(healthy, deadline(15), "kha etcd status healthy")
    # it serves the data, and writes are taken again
    got = c.gateway("/v3/kv/range", {"key": b64("k/"), "range_end": b64("k0"),
                                     "count_only": True}, member=0)
    assert int(got["count"]) == len(data)
    c.gateway("/v3/kv/put", {"key": b64("after/repair"), "value": b64("ok")})


@pytest.mark.parametrize("etcd_version", ["3.6"], indirect=True)
def test_by_hand_an_alarm_on_a_removed_member_blames_no_one(etcd_version, etcd_cluster):
    """The repair by hand: stop the member, remove it, then (not yet) disarm. The alarm still
    names the removed member; kha etcd status must not charge it to the member that reports
    it, and what it says next (check consistency, then disarm) must work."""
    c = etcd_cluster(members=3, tls=True, extra_args=(CORRUPT_CHECK[etcd_version],))
    flags = c.client_flags()
    corrupt_on_disk(c, 2)
    raised = poll(lambda: alarms(c) or None, deadline(10), "a CORRUPT alarm")
    assert [a["member"] for a in raised] == ["etcd-2"], raised
    c.stop(2)
    p = run_kha("etcd", "member", "remove", "etcd-2", *flags, *SLOW)
    assert p.returncode == 0, p.stderr
    p, st = kha_json("etcd", "status", *flags)
    assert p.returncode == 2, st
    assert all(m["alarms"] == [] for m in st["members"]), st  # no healthy member blamed
    assert st["summary"].endswith("CORRUPT alarm active (no member named)"), st
    assert any("kha etcd alarm disarm --alarm CORRUPT" in w for w in st["warnings"]), st
    assert [(a["member"], a["alarm"]) for a in alarms(c)] == [("(removed)", "CORRUPT")]
    p = run_kha("etcd", "member", "add", "etcd-x", "--learner", "--peer-urls",
                f"https://127.0.0.1:{_free_port()}", *flags, *SLOW)
    assert p.returncode == 1 and "refused (alarm)" in p.stderr, p.stderr
    assert "kha etcd check consistency" in p.stderr
    p, rep = kha_json("etcd", "check", "consistency", *flags)
    assert p.returncode == 0 and rep["verdict"] == "consistent", rep
    p = run_kha("etcd", "alarm", "disarm", "--alarm", "CORRUPT", *flags)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "disarmed CORRUPT on (removed)" in p.stdout and "no alarm remains" in p.stdout
    p, st = kha_json("etcd", "status", *flags)
    assert "alarm" not in st["summary"] and p.returncode != 2, st


def test_nospace_alarm_is_cleared_by_the_printed_fix(etcd_cluster):
    c = etcd_cluster(members=1, tls=False, extra_args=["--quota-backend-bytes", "65536"])
    flags = c.client_flags()
    value = base64.b64encode(b"x" * 4096).decode()
    for i in range(400):
        try:
            c.gateway("/v3/kv/put", {"key": b64(f"/big/{i}"), "value": value})
        except Exception:  # the gateway answers an HTTP error once the quota is hit
            break
    own_id = format(int(c.status(0)["header"]["member_id"]), "x")
    assert alarms(c) == [{"member_id": own_id, "member": "etcd-0", "alarm": "NOSPACE"}]
    p = run_kha("audit", "-o", "json", *flags, env=clean_env(), timeout=60)
    found = [f for f in json.loads(p.stdout)["findings"] if f["check"] == "etcd-alarms"]
    assert len(found) == 1 and "NOSPACE" in found[0]["finding"], found
    fix = found[0]["fix"]
    assert "kha etcd defrag" in fix and "etcdctl" not in fix, fix
    disarm = fix.split("then disarm the alarm: ", 1)[1]
    assert disarm == "kha etcd alarm disarm --alarm NOSPACE", fix
    # the fix: free space (delete, compact, defragment), then disarm as printed
    c.gateway("/v3/kv/deleterange", {"key": b64("/big/"), "range_end": b64("/big0")})
    rev = int(c.status(0)["header"]["revision"])
    c.gateway("/v3/kv/compaction", {"revision": str(rev), "physical": True})
    p = run_kha("etcd", "defrag", *flags, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run_kha(*shlex.split(disarm)[1:], *flags)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "disarmed NOSPACE on etcd-0" in p.stdout and "no alarm remains" in p.stdout
    assert alarms(c) == []
    c.gateway("/v3/kv/put", {"key": b64("after"), "value": b64("ok")})
    p, st = kha_json("etcd", "status", *flags)
    assert "alarm" not in st["summary"], st
    # nothing left to disarm: said, exit 0, and -o json a document
    p, rep = kha_json("etcd", "alarm", "disarm", *flags)
    assert p.returncode == 0 and rep["disarmed"] == [] and rep["remaining"] == [], rep
    assert rep["verdict"] == "healthy"


def test_etcd_refusals_say_what_etcd_said(etcd_version, etcd_cluster):
    """A forced add while a voter is down: etcd refuses it ("unhealthy cluster"; 3.6 answers
    {"code":14,"message":...} without the "error" key of 3.4). kha must say so, with the next
    step, not "not an etcd gateway?"."""
    c = etcd_cluster(members=3, tls=True)
    c.kill(2)
    p = run_kha("etcd", "member", "add", "etcd-x", "--learner", "--peer-urls",
                f"https://127.0.0.1:{_free_port()}", "--force", *c.client_flags(), *SLOW,
                timeout=120)
    assert p.returncode == 69, (p.returncode, p.stderr)
    assert "etcdserver: unhealthy cluster (gRPC Unavailable)" in p.stderr, p.stderr
    assert "start the members that are down or remove them" in p.stderr, p.stderr
    assert "not an etcd gateway" not in p.stderr
    # a member that is not there: what etcd said, exit 64 as for an unknown name
    p = run_kha("etcd", "member", "remove", "0123456789abcdef", *c.client_flags())
    assert p.returncode == 64, p.stderr


def test_alarm_bad_input(etcd_cluster):
    c = etcd_cluster(members=1, tls=False)
    flags = c.client_flags()
    assert run_kha("etcd", "alarm").returncode == 64
    assert run_kha("etcd", "alarm", "raise").returncode == 64
    for sub in ("list", "disarm"):
        p = run_kha("etcd", "alarm", sub, "--help")
        assert p.returncode == 0 and "Example:" in p.stdout and "Exit codes" in p.stdout
    p = run_kha("etcd", "alarm", "disarm", "--alarm", "FULL", *flags)
    assert p.returncode == 64 and "--alarm 'FULL'" in p.stderr, p.stderr
    p, rep = kha_json("etcd", "alarm", "disarm", "--member", "no-such-member", *flags)
    assert p.returncode == 64 and rep["verdict"] == "error", rep
    assert "--member 'no-such-member'" in p.stderr
    p = run_kha("etcd", "alarm", "list", "extra", *flags)
    assert p.returncode == 64 and "unexpected argument 'extra'" in p.stderr, p.stderr
    p = run_kha("etcd", "alarm", "list", *flags)
    assert p.returncode == 0 and p.stdout == "no alarm is active\n", p.stdout
    p, rep = kha_json("etcd", "alarm", "list", "--endpoints", f"http://127.0.0.1:{_free_port()}",
                      "--dial-timeout", "500ms")
    assert p.returncode == 69 and rep["verdict"] == "error", rep
