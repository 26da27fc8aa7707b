# SPDX-License-Identifier: MIT
"""kha drill and kha lab drill on a real Kubernetes control plane (kha_testlib/k8s.py).

The probes are Kubernetes API requests through the lab's entries (the node's kha proxy, the
VIP) with kubeadm's admin certificate; the faults are kha lab subcommands acting on the real
processes (a graceful kube-apiserver stop, the controller-manager holding its Lease killed, the
load balancer holding the VIP killed). The drills are kept short (low rates, short periods):
what is asserted is what the design guarantees, not timings (those are in docs/lab.md).
"""
import json
import os
import shlex

import pytest

from conftest import assert_no_sanitizer_report, kha_bin, run_kha

# the session's real control plane (conftest's k8s fixture); each test leaves it ready
pytestmark = [pytest.mark.xdist_group("k8s")]


def ready(k8s):
    """Waits until the lab is ready. A controller-manager or scheduler that lost its Lease
    exits, maybe only seconds after its apiserver came back (a kubelet would restart it): start
    what is not running and wait again, as the drill's recoveries do."""
    r = None
    for _ in range(4):
        r = run_kha("lab", "wait", "--dir", k8s.dir, "--timeout", "60s", timeout=90)
        if r.returncode == 0:
            return
        run_kha("lab", "start-member", "--all", "--dir", k8s.dir, timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr


def test_kube_drill_drains_a_gracefully_stopped_apiserver(k8s):
    """kha drill --kube through the node's kha proxy: ConfigMap creates and updates, each on a
    new TLS connection, while m3's kube-apiserver gets SIGTERM (its /readyz turns unready for
    --shutdown-delay-duration before it closes): the entry drains it with no failed
    request, and every acknowledged create is listed back."""
    ready(k8s)
    kha = kha_bin()
    d = shlex.quote(k8s.dir)
    cmd = (f"{kha} drill --kube --write --kubeconfig \"$KUBECONFIG\" --rate 10 --duration 14s "
           f"--timeout 3s --no-progress -o json "
           f"--fault-at 3s --fault '{kha} lab stop-process --dir {d} m3 kube-apiserver' "
           f"--recover-at 10s --recover '{kha} lab start-member --dir {d} m3'")
    p = k8s.exec("node", "sh", "-c", cmd, timeout=180, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout)
    steps = {s["name"]: s for s in r["steps"]}
    assert steps["fault"]["result"] == "ok"
    assert "m3 kube-apiserver stopped" in steps["fault"]["output"]
    assert "SIGTERM" in steps["fault"]["output"]
    w = r["writes"]
    assert w["verified"], w["error"]
    assert w["lost"] == 0
    assert w["acked"] > 0 and w["acked"] == r["probes"]["ok"]
    # the writes are creates and updates (PUTs with the resourceVersion of the last write):
    # every acknowledged update's value was read back, and none met a conflict
    u = r["kube"]["updates"]
    assert u["acked"] > 0 and u["acked"] == u["sent"], u
    assert u["lost"] == 0 and u["conflicts"] == 0, u
    # drained: not one request failed, before, during or after the stop
    assert r["probes"]["failed"] == 0, r["probes"]["error_samples"]
    assert r["kube"]["namespace"] == "default"
    assert w["cleaned"]
    ready(k8s)


def test_kube_drill_watch_and_reads_through_the_vip(k8s):
    """GETs and a watch through the VIP; the server ends each watch at --watch-timeout and the
    drill counts that as a clean break, reconnecting at once."""
    ready(k8s)
    cmd = (f"{kha_bin()} drill --kube --kubeconfig \"$KUBECONFIG\" --rate 5 --duration 6s "
           f"--watch-timeout 2s --no-progress -o json")
    p = k8s.exec("lb1", "sh", "-c", cmd, timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["target"].startswith(f"https://{k8s.vip}:6443")
    assert r["probes"]["failed"] == 0
    watch = r["kube"]["watch"]
    assert watch["first_event_ms"] is not None
    assert watch["breaks"] >= 1 and all(g["clean"] for g in watch["list"])
    assert watch["requests"] >= watch["breaks"]
    # the probed ConfigMap is gone again
    out = k8s.kubectl("get", "configmaps", "-o", "name").stdout
    assert r["kube"]["object"] not in out


def test_lab_drill_on_the_real_control_plane(k8s, tmp_path):
    """kha lab drill with three faults, shortened: no acknowledged write lost through either
    entry, each fault had its effect (the stopped apiserver, the Lease handed over to another
    controller-manager, the load balancer that held the VIP killed), backups went on."""
    ready(k8s)
    report = tmp_path / "drill.json"
    svg = tmp_path / "drill.svg"
    r = run_kha("lab", "drill", "--dir", k8s.dir, "--faults",
                "stop-apiserver,kill-cm-leader,kill-lb", "--baseline", "3s", "--period", "24s",
                "--down", "6s", "--rate", "8", "--report", report, "--svg", svg, timeout=600)
    assert_no_sanitizer_report(r.stderr, "kha lab drill")
    # 0 passed; 1 an entry under the SLO on a loaded machine: reported, not a broken invariant
    assert r.returncode in (0, 1), r.stdout + r.stderr
    rep = json.loads(report.read_text())
    assert rep["schema"] == "kha.lab.k8s-drill/v1"
    assert rep["lost_acknowledged_writes"] == 0
    for e in ("node", "vip"):
        w = rep["drills"][e + "_writes"]["writes"]
        assert w["verified"], w["error"]
        assert w["lost"] == 0 and w["acked"] > 0
    faults = {f["name"]: f for f in rep["faults"]}
    assert set(faults) == {"stop-apiserver", "kill-cm-leader", "kill-lb"}
    for f in faults.values():
        assert f["ran"] and f["commands_ok"], f
        for e in ("node", "vip"):
            assert f[e]["writes"]["sent"] > 0 and f[e]["reads"]["sent"] > 0
            assert f[e]["lost_acknowledged_writes"] == 0
        assert f["backup"]["continued"], f
    assert faults["stop-apiserver"]["victim"] in k8s.masters
    cm = faults["kill-cm-leader"]["controller_manager_lease"]
    assert faults["kill-cm-leader"]["victim"] == cm["holder_before"]
    assert cm["holder_after"] and cm["holder_after"] != cm["holder_before"]
    assert cm["handover_ms"] is not None and cm["handover_ms"] > 0
    assert faults["kill-lb"]["victim"] in ("lb1", "lb2")
    assert rep["leases"]["kube-controller-manager"]["lease_duration_s"] == 15
    assert rep["healthy_after"]
    text = svg.read_text()
    assert text.startswith("<svg") or text.startswith("<?xml")
    assert os.path.exists(str(svg)[:-4] + "-vip.svg")
    assert "verdict:" in r.stdout
    assert rep["verdict"] == ("passed" if r.returncode == 0 else "failed")
    # the summary explains the handover beside it, and where docs/lab.md says more
    assert ("the Lease leaseDuration (15s) after it last saw the holder renew, at a try "
            "(every 2s + up to 120% jitter): 15-19s (docs/lab.md#handover)") in r.stdout, \
        r.stdout
    if faults["stop-apiserver"]["controller_manager_lease"]["handover_ms"] is not None:
        assert "its holder lost its apiserver: the Lease ran out leaseDuration (15s)" in r.stdout
    ready(k8s)


def test_lab_fault_subcommands_refuse_bad_input(k8s):
    r = run_kha("lab", "stop-process", "--dir", k8s.dir, "m1", "nosuch")
    assert r.returncode == 64 and "runs no process 'nosuch'" in r.stderr
    r = run_kha("lab", "stop-host", "--dir", k8s.dir, "lb9")
    assert r.returncode == 64 and "no host 'lb9'" in r.stderr
    r = run_kha("lab", "drill", "--dir", k8s.dir, "--faults", "kill-everything")
    assert r.returncode == 64 and "--faults" in r.stderr
    r = run_kha("lab", "stop-process", "--dir", k8s.dir, "--lease-holder",
                "kube-scheduler", "extra")
    assert r.returncode == 64
