# SPDX-License-Identifier: MIT
"""kha elect with the Kubernetes Lease backend, against the stand-in API server (real TLS,
resourceVersion conflicts answered 409 as the API does): one leader among two candidates,
client-go's record fields, takeover after the lease duration when the leader is SIGKILLed,
release on SIGTERM (holderIdentity cleared, leaseDurationSeconds 1), a foreign holder
appearing (conflict) fences the leader at once."""
import json
import signal
import time

import pytest

from conftest import run_kha
from kha_testlib.process import deadline
from kha_testlib.elect import Procs, Recorder, pid_alive, wait_until
from kha_testlib.kubeapi import KubeAPI, TestPKI

LEASE = "3s"


@pytest.fixture
def api(tmp_path):
    pki = TestPKI(tmp_path / "pki")
    with KubeAPI(pki) as a:
        a.kubeconfig = a.write_kubeconfig(tmp_path / "kubeconfig", auth="token",
                                          namespace="kube-system")
        yield a


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def args(api, ident, rec, *extra):
    return ["elect", "--kubeconfig", api.kubeconfig, "--lease-name", "ctl", "--id", ident,
            "--ttl", LEASE, "--renew-deadline", "2s", "--retry-period", "300ms", "--grace", "1s",
            *extra, "--", *rec.command()]


def spec(api):
    obj = api.get_lease("kube-system", "ctl")
    return obj["spec"] if obj else None


def test_two_candidates_one_leader_and_client_go_fields(api, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    a = procs.start(args(api, "cand-a", rec), "a")
    wait_until(lambda: len(rec.starts()) == 1, 10, "a leader", diag=procs.logs)
    b = procs.start(args(api, "cand-b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 10, "b to wait", diag=procs.logs)
    s1 = spec(api)
    assert s1["holderIdentity"] == "cand-a"
    assert s1["leaseDurationSeconds"] == 3
    assert s1["leaseTransitions"] == 0
    assert rec.starts()[0]["token"] == "0"   # the fencing token is leaseTransitions
    wait_until(lambda: spec(api)["renewTime"] != s1["renewTime"], 5, "a renewal", diag=procs.logs)
    s2 = spec(api)
    assert s2["acquireTime"] == s1["acquireTime"], "a renewal keeps acquireTime"
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        assert len(rec.running()) == 1
        time.sleep(0.05)
    p = run_kha("elect", "--leader", "--kubeconfig", api.kubeconfig, "--lease-name", "ctl",
                "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["leader"]["id"] == "cand-a"

    # graceful stop: released as client-go's ReleaseOnCancel does, taken over at once
    t = time.monotonic_ns()
    a.signal(signal.SIGTERM)
    assert a.wait(10) == 0
    assert "msg=released" in a.log()
    wait_until(lambda: len(rec.starts()) == 2, 5, "b to take over", diag=procs.logs)
    took = (rec.starts()[1]["t"] - t) / 1e9
    # before the 3 s lease could have lapsed: the release, not the expiry, let b in
    assert took < 3.0, f"takeover after release took {took:.2f}s (lease 3s)"
    s3 = spec(api)
    assert s3["holderIdentity"] == "cand-b" and s3["leaseTransitions"] == 1
    assert rec.starts()[1]["token"] == "1"
    rec.assert_safe()
    assert b.alive()


def test_sigkilled_leader_is_replaced_after_the_lease_duration(api, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    a = procs.start(args(api, "cand-a", rec), "a")
    wait_until(lambda: len(rec.starts()) == 1, 10, "a leader", diag=procs.logs)
    b = procs.start(args(api, "cand-b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 10, "b to wait", diag=procs.logs)
    child = rec.starts()[0]
    t = time.monotonic_ns()
    a.signal(signal.SIGKILL)
    wait_until(lambda: not pid_alive(child["pid"]), 5, "a's child to die with it", diag=procs.logs)
    rec.note_dead(child["pid"])
    wait_until(lambda: len(rec.starts()) == 2, 10, "b to take over", diag=procs.logs)
    took = (rec.starts()[1]["t"] - t) / 1e9
    assert 2.0 <= took <= deadline(3 + 0.3), f"takeover {took:.2f}s after SIGKILL (lease 3s)"
    assert spec(api)["holderIdentity"] == "cand-b"
    rec.assert_safe()


def test_foreign_holder_fences_the_leader(api, procs, tmp_path):
    """Another client takes the Lease (its write makes ours conflict): the leader stops its
    child at its next renewal; the standby waits for the intruder's lease to expire."""
    rec = Recorder(tmp_path / "rec")
    a = procs.start(args(api, "cand-a", rec), "a")
    wait_until(lambda: len(rec.starts()) == 1, 10, "a leader", diag=procs.logs)
    b = procs.start(args(api, "cand-b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 10, "b to wait", diag=procs.logs)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    cur = spec(api)
    api.put_lease("kube-system", "ctl", {"holderIdentity": "intruder", "leaseDurationSeconds": 3,
                                         "acquireTime": now, "renewTime": now,
                                         "leaseTransitions": cur["leaseTransitions"] + 1})
    wait_until(lambda: any(e["ev"] == "stop" for e in rec.events()), 3,
               "a to stop its child", diag=procs.logs)
    assert "stopping COMMAND: leadership lost" in a.log()
    # nobody renews the intruder's lease: after 3 s one candidate takes it
    wait_until(lambda: len(rec.starts()) == 2, 10, "a candidate to take over from the intruder", diag=procs.logs)
    assert spec(api)["holderIdentity"] in ("cand-a", "cand-b")
    assert spec(api)["leaseTransitions"] == cur["leaseTransitions"] + 2
    rec.assert_safe()


def test_concurrent_creation_conflicts_leave_one_leader(api, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    cands = [procs.start(args(api, f"c{i}", rec), f"c{i}") for i in range(3)]
    wait_until(lambda: len(rec.starts()) == 1, 10, "a leader", diag=procs.logs)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        assert len(rec.running()) <= 1, rec.dump()
        time.sleep(0.05)
    assert len(rec.starts()) == 1
    assert spec(api)["holderIdentity"] == rec.starts()[0]["id"]
    assert all(c.alive() for c in cands)


def test_bad_kubeconfig_and_unreachable_api(api, tmp_path):
    marker = tmp_path / "ran"
    cmd = ["--", "sh", "-c", f"touch {marker}"]
    p = run_kha("elect", "--kubeconfig", str(tmp_path / "missing"), "--lease-name", "x", *cmd)
    assert p.returncode == 78, p.stderr
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: 5\n")
    p = run_kha("elect", "--kubeconfig", str(bad), "--lease-name", "x", *cmd)
    assert p.returncode == 78, p.stderr
    down = api.write_kubeconfig(tmp_path / "down.kubeconfig", server="https://127.0.0.1:1")
    p = run_kha("elect", "--kubeconfig", down, "--lease-name", "x", *cmd)
    assert p.returncode == 69, p.stderr
    p = run_kha("elect", "--kubeconfig", api.kubeconfig, "--lease-name", "x",
                "--retry-period", "20s", *cmd)
    assert p.returncode == 64 and "--retry-period" in p.stderr, p.stderr
    assert not marker.exists()
