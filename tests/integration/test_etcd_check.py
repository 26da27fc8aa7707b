# SPDX-License-Identifier: MIT
"""kha etcd check consistency on real etcd 3.4 members: a healthy cluster under write load and
compactions passes (the common revision is one every member has, above the compaction); a
dead member makes the check incomplete (exit 1); a member whose data diverged for real (its
database changed on disk) is named; bad input. Ties and compacted-away members are covered by
tests/unit/test-etcdops-consistency.c on recorded replies."""
import base64
import json
import os
import threading

from conftest import run_kha
from kha_testlib.process import deadline, wait_for
from kha_testlib.etcd import _free_port, etcd3, etcd_cluster  # noqa: F401
from kha_testlib.etcdops import b64, fill_keys, _post


def check(c, *args):
    p = run_kha("etcd", "check", "consistency", "-o", "json", *c.client_flags(), *args)
    assert p.stdout, p.stderr
    return p, json.loads(p.stdout)


def test_a_member_whose_data_diverged_is_named(etcd_cluster):
    """One value in member 2's database is changed on disk while it is stopped, as a bad disk
    would: bbolt has no page checksums and etcd 3.4 does not check at start (its corruption
    checks are off by default), so member 2 comes back and serves the changed value. The check
    must name it, and only it."""
    c = etcd_cluster(members=3, tls=False)
    fill_keys(c, 50)
    before, after = b"value-before-0123456789", b"VALUE-AFTER!-0123456789"
    _post(c.member(0).client_url + "/v3/kv/put", {"key": b64("diverge/x"),
                                                   "value": base64.b64encode(before).decode()})
    p, rep = check(c)
    assert p.returncode == 0 and rep["verdict"] == "consistent", p.stdout
    c.stop(2)  # graceful: its backend is committed to the file
    db = os.path.join(c.member(2).data_dir, "member", "snap", "db")
    raw = open(db, "rb").read()
    assert before in raw
    with open(db, "wb") as f:
        f.write(raw.replace(before, after))  # same length: only the value changes
    c.start(2)
    got = c.gateway("/v3/kv/range", {"key": b64("diverge/x"), "serializable": True}, member=2)
    assert base64.b64decode(got["kvs"][0]["value"]) == after, "member 2 serves its own disk"
    p, rep = check(c)
    assert p.returncode == 2, p.stdout + p.stderr
    assert rep["verdict"] == "diverged" and rep["agreeing"] == 2 and rep["compared"] == 3
    states = {m["name"]: m["state"] for m in rep["members"]}
    assert states == {"etcd-0": "ok", "etcd-1": "ok", "etcd-2": "diverged"}, rep
    assert "etcd-2" in rep["summary"] and "etcd-0" not in rep["summary"]
    assert "kha etcd member replace" in rep["summary"]  # what to do next
    # the human report says the same
    p = run_kha("etcd", "check", "consistency", *c.client_flags())
    assert p.returncode == 2 and "etcd-2" in p.stdout + p.stderr


def test_etcd_34_corrupt_alarm_naming_no_member_is_critical(etcd_cluster):
    """etcd 3.4's periodic corruption check (off by default: --experimental-corrupt-check-time)
    raises CORRUPT on member 0 when a member's data differ, so the status error names no
    member ("alarm:CORRUPT "). kha etcd status and kha audit must call the cluster critical
    (they read it as no alarm before) and blame no member; the consistency check, which the
    audit's fix runs, names the member that differs."""
    c = etcd_cluster(members=3, tls=False, extra_args=("--experimental-corrupt-check-time=1s",))
    before, after = b"value-before-0123456789", b"VALUE-AFTER!-0123456789"
    _post(c.member(0).client_url + "/v3/kv/put", {"key": b64("diverge/x"),
                                                   "value": base64.b64encode(before).decode()})
    # member 2 applies the put on its own time: wait until it serves it before stopping it
    wait_for(lambda: c.gateway("/v3/kv/range", {"key": b64("diverge/x"), "serializable": True},
                               member=2).get("kvs"), deadline(5), "member 2 to apply the put")
    c.stop(2)
    db = os.path.join(c.member(2).data_dir, "member", "snap", "db")
    raw = open(db, "rb").read()
    assert before in raw
    with open(db, "wb") as f:
        f.write(raw.replace(before, after))
    c.start(2)

    def raised():
        p = run_kha("etcd", "status", "-o", "json", *c.client_flags())
        return (p, json.loads(p.stdout)) if "CORRUPT" in p.stdout else None
    # the leader runs the check every second: it raises the alarm within a few periods
    p, st = wait_for(raised, deadline(5), "the CORRUPT alarm in kha etcd status")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "CORRUPT alarm active (no member named)" in st["summary"], st
    p = run_kha("audit", "-o", "json", *c.client_flags(), env={
        k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")
        and k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")})
    assert p.returncode == 2, p.stdout + p.stderr
    alarms = [f for f in json.loads(p.stdout)["findings"] if f["check"] == "etcd-alarms"]
    assert len(alarms) == 1 and alarms[0]["severity"] == "critical", alarms
    assert "naming no member" in alarms[0]["finding"]
    assert alarms[0]["fix"] == "kha etcd check consistency"
    # the fix as printed (with this cluster's endpoints) names the member that differs
    p, rep = check(c)
    assert p.returncode == 2 and rep["verdict"] == "diverged", p.stdout
    assert {m["name"]: m["state"] for m in rep["members"]}["etcd-2"] == "diverged", rep


class Writer(threading.Thread):
    """Puts keys into the cluster until stopped (write load during the checks)."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop = threading.Event()
        self.count = 0
        self.error = None

    def run(self):
        url = self.c.member(0).client_url + "/v3/kv/put"
        ctx = self.c.ssl_context() if self.c.tls else None
        try:
            while not self.stop.is_set():
                _post(url, {"key": b64(f"load/{self.count % 50}"), "value": b64("x" * 64)},
                      ctx)
                self.count += 1
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.error = e


def test_consistent_under_write_load_and_compaction(etcd3):
    c = etcd3
    fill_keys(c, 500)
    w = Writer(c)
    w.start()
    try:
        for i in range(4):
            if i == 2:
                # compact just below the current revision while the writes go on
                rev = int(c.status(0)["header"]["revision"])
                c.gateway("/v3/kv/compaction", {"revision": str(rev - 5)})
            p, rep = check(c)
            assert p.returncode == 0, (p.stdout, p.stderr)
            assert rep["verdict"] == "consistent" and rep["agreeing"] == 3
            assert all(m["state"] == "ok" for m in rep["members"])
            assert len({m["hash"] for m in rep["members"]}) == 1
            # the common revision is one every member had
            assert all(m["revision"] >= rep["revision"] for m in rep["members"])
            if i >= 2:
                assert rep["compact_revision"] >= rev - 5
                assert rep["revision"] > rep["compact_revision"]
    finally:
        w.stop.set()
        w.join(10)
    assert w.error is None and w.count > 0
    p = run_kha("etcd", "check", "consistency", *c.client_flags())
    assert p.returncode == 0 and "consistent: 3/3 members" in p.stdout, p.stdout


def test_dead_member_makes_the_check_incomplete(etcd3):
    c = etcd3
    fill_keys(c, 100)
    c.kill(1)
    p, rep = check(c)
    assert p.returncode == 1, p.stdout
    assert rep["verdict"] == "incomplete" and rep["agreeing"] == 2
    states = {m["name"]: m["state"] for m in rep["members"]}
    assert states == {"etcd-0": "ok", "etcd-1": "unreachable", "etcd-2": "ok"}
    assert "etcd-1" in rep["summary"]


def test_check_bad_input(etcd_cluster):
    assert run_kha("etcd", "check").returncode == 64
    assert run_kha("etcd", "check", "everything").returncode == 64
    p = run_kha("etcd", "check", "consistency", "--help")
    assert p.returncode == 0 and "Example:" in p.stdout
    p = run_kha("etcd", "check", "consistency", "--endpoints",
                f"http://127.0.0.1:{_free_port()}", "--dial-timeout", "500ms")
    assert p.returncode == 69, p.stderr
    c = etcd_cluster(members=1, tls=True)
    p = run_kha("etcd", "check", "consistency", "--endpoints", c.endpoints, "--cacert", c.ca)
    assert p.returncode == 78 and "--cert" in p.stderr, p.stderr  # no client certificate


def test_right_after_a_compaction_at_the_current_revision(etcd3):
    """An operator compacts a quiet cluster at its current revision (before a defrag), then
    checks: etcd hashes no revision at or before its compaction, so the members are compared
    at their current revision, which they share; the header shows the compaction. (It used to
    say "unknown: no member could be checked", exit 69, under "(never compacted)".)"""
    c = etcd3
    fill_keys(c, 50)
    rev = int(c.status(0)["header"]["revision"])
    c.gateway("/v3/kv/compaction", {"revision": str(rev), "physical": True})
    p, rep = check(c)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert rep["verdict"] == "consistent" and rep["agreeing"] == 3, rep
    assert rep["revision"] == rev and rep["compact_revision"] == rev, rep
    assert len({m["hash"] for m in rep["members"]}) == 1
    p = run_kha("etcd", "check", "consistency", *c.client_flags())
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"Revision {rev}, compacted up to {rev}:" in p.stdout, p.stdout
    assert "consistent: 3/3 members" in p.stdout, p.stdout
