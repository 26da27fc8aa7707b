# SPDX-License-Identifier: MIT
"""kha elect with the Kubernetes Lease backend against the real kube-apiserver of the lab
(conftest's session fixture k8s): real optimistic concurrency (resourceVersion, 409), real
MicroTime validation, the record fields client-go writes. Every kha elect runs inside the lab's
node host (`kha lab exec node`), through the node's kha proxy.

Covered: one leader among candidates and client-go's fields; release on SIGTERM and takeover at
once; takeover after the lease duration when the leader is SIGKILLed; a foreign holder's write
fences the leader; creation races leave one leader; bad kubeconfig, unreachable API, bad flags.
"""
import json
import signal
import time

import pytest

from conftest import kha_bin, run_kha
from kha_testlib.elect import Procs, Recorder, pid_alive, wait_until

pytestmark = [pytest.mark.xdist_group("k8s")]

LEASE = "3s"


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


@pytest.fixture
def lease(k8s, request):
    """A Lease name of this test's own in namespace default, deleted afterwards."""
    name = "kha-" + request.node.name.replace("_", "-")[5:45].strip("-")
    k8s.kubectl("delete", "lease", "-n", "default", name, "--ignore-not-found")
    yield name
    k8s.kubectl("delete", "lease", "-n", "default", name, "--ignore-not-found")


def args(k8s, lease, ident, rec, *extra):
    """kha elect inside the node host (KUBECONFIG: the node's entry), as KhaProc's arguments."""
    return ["lab", "exec", "--dir", k8s.dir, "node", "--", kha_bin(), "elect",
            "--lease-namespace", "default", "--lease-name", lease, "--id", ident,
            "--ttl", LEASE, "--renew-deadline", "2s", "--retry-period", "300ms", "--grace", "1s",
            *extra, "--", *rec.command()]


def spec(k8s, lease):
    r = k8s.kubectl("get", "lease", "-n", "default", lease, "-o", "json", check=False)
    return json.loads(r.stdout)["spec"] if r.returncode == 0 else None


def test_two_candidates_one_leader_and_client_go_fields(k8s, lease, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    a = procs.start(args(k8s, lease, "cand-a", rec), "a")
    wait_until(lambda: len(rec.starts()) == 1, 20, "a leader", diag=procs.logs)
    b = procs.start(args(k8s, lease, "cand-b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 20, "b to wait", diag=procs.logs)
    s1 = spec(k8s, lease)
    assert s1["holderIdentity"] == "cand-a"
    assert s1["leaseDurationSeconds"] == 3
    assert s1.get("leaseTransitions", 0) == 0
    assert rec.starts()[0]["token"] == "0"  # the fencing token is leaseTransitions
    # the real API accepted our MicroTime (it rejects a malformed one with 400)
    assert s1["renewTime"].endswith("Z") and "." in s1["renewTime"]
    wait_until(lambda: spec(k8s, lease)["renewTime"] != s1["renewTime"], 10, "a renewal",
               diag=procs.logs)
    assert spec(k8s, lease)["acquireTime"] == s1["acquireTime"], "a renewal keeps acquireTime"
    assert len(rec.running()) == 1
    r = k8s.exec("node", kha_bin(), "elect", "--leader", "--lease-namespace", "default",
                 "--lease-name", lease, "-o", "json")
    assert json.loads(r.stdout)["leader"]["id"] == "cand-a"

    # graceful stop: released as client-go's ReleaseOnCancel does, taken over at once
    a.signal(signal.SIGTERM)
    assert a.wait(20) == 0
    assert "msg=released" in a.log()
    # b retries every 300 ms: well inside the 3 s the lease would otherwise have run
    wait_until(lambda: len(rec.starts()) == 2, 3, "b to take over after the release",
               diag=procs.logs)
    s3 = spec(k8s, lease)
    assert s3["holderIdentity"] == "cand-b" and s3["leaseTransitions"] == 1
    assert rec.starts()[1]["token"] == "1"
    rec.assert_safe()
    assert b.alive()


def test_sigkilled_leader_is_replaced_after_the_lease_duration(k8s, lease, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    a = procs.start(args(k8s, lease, "cand-a", rec), "a")
    wait_until(lambda: len(rec.starts()) == 1, 20, "a leader", diag=procs.logs)
    b = procs.start(args(k8s, lease, "cand-b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 20, "b to wait", diag=procs.logs)
    child = rec.starts()[0]
    renewed = spec(k8s, lease)["renewTime"]
    t = time.monotonic_ns()
    a.signal(signal.SIGKILL)
    wait_until(lambda: not pid_alive(child["pid"]), 10, "a's child to die with it",
               diag=procs.logs)
    rec.note_dead(child["pid"])
    wait_until(lambda: len(rec.starts()) == 2, 20, "b to take over", diag=procs.logs)
    took = (rec.starts()[1]["t"] - t) / 1e9
    # never before the lease (3 s after a's last renewal, which is at most 2 s old) ran out
    assert took >= 3 - 2.0, f"takeover {took:.2f}s after SIGKILL, before the lease expired"
    s = spec(k8s, lease)
    assert s["holderIdentity"] == "cand-b" and s["renewTime"] != renewed
    rec.assert_safe()


def test_foreign_holder_fences_the_leader(k8s, lease, procs, tmp_path):
    """Another client takes the Lease through the real API (its write moves resourceVersion, so
    our next renewal gets 409): the leader stops its child; after the intruder's lease runs out
    a candidate takes it back."""
    rec = Recorder(tmp_path / "rec")
    a = procs.start(args(k8s, lease, "cand-a", rec), "a")
    wait_until(lambda: len(rec.starts()) == 1, 20, "a leader", diag=procs.logs)
    b = procs.start(args(k8s, lease, "cand-b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 20, "b to wait", diag=procs.logs)
    # a merge patch carries no resourceVersion: the API applies it over whatever is stored,
    # and moves resourceVersion, so the leader's next renewal (a PUT with the version it read)
    # gets 409 Conflict
    transitions = spec(k8s, lease).get("leaseTransitions", 0)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    k8s.kubectl("patch", "lease", "-n", "default", lease, "--type=merge", "-p", json.dumps(
        {"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 3, "acquireTime": now,
                  "renewTime": now, "leaseTransitions": transitions + 1}}))
    wait_until(lambda: any(e["ev"] == "stop" for e in rec.events()), 10,
               "a to stop its child", diag=procs.logs)
    assert "leadership lost" in a.log(), a.log()
    wait_until(lambda: len(rec.starts()) == 2, 20, "a candidate to take over from the intruder",
               diag=procs.logs)
    s = spec(k8s, lease)
    assert s["holderIdentity"] in ("cand-a", "cand-b")
    assert s["leaseTransitions"] == transitions + 2
    rec.assert_safe()


def test_concurrent_creation_conflicts_leave_one_leader(k8s, lease, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    cands = [procs.start(args(k8s, lease, f"c{i}", rec), f"c{i}") for i in range(3)]
    wait_until(lambda: len(rec.starts()) == 1, 20, "a leader", diag=procs.logs)
    # the losers' creates got 409 AlreadyExists from the real API and they wait: over one
    # lease duration nobody else starts
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert len(rec.running()) <= 1, rec.dump()
        time.sleep(0.05)
    assert len(rec.starts()) == 1
    assert spec(k8s, lease)["holderIdentity"] == rec.starts()[0]["id"]
    assert all(c.alive() for c in cands)


def test_bad_kubeconfig_and_unreachable_api(k8s, tmp_path):
    marker = tmp_path / "ran"
    cmd = ["--", "sh", "-c", f"touch {marker}"]
    p = run_kha("elect", "--kubeconfig", str(tmp_path / "missing"), "--lease-name", "x", *cmd)
    assert p.returncode == 78, p.stderr
    bad = tmp_path / "bad.kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: 5\n")
    p = run_kha("elect", "--kubeconfig", str(bad), "--lease-name", "x", *cmd)
    assert p.returncode == 78, p.stderr
    # the lab's own kubeconfig, to a port nothing listens on, from inside the node host
    text = run_kha("lab", "kubeconfig", "--dir", k8s.dir, "--entry", "node").stdout
    down = tmp_path / "down.kubeconfig"
    down.write_text(text.replace("https://127.0.0.1:7443", "https://127.0.0.1:1"))
    p = k8s.exec("node", kha_bin(), "elect", "--kubeconfig", down, "--lease-name", "x", *cmd,
                 check=False)
    assert p.returncode == 69, p.stderr
    p = k8s.exec("node", kha_bin(), "elect", "--lease-name", "x", "--retry-period", "20s", *cmd,
                 check=False)
    assert p.returncode == 64 and "--retry-period" in p.stderr, p.stderr
    assert not marker.exists()
