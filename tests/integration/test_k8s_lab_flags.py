# SPDX-License-Identifier: MIT
"""The Kubernetes lab's static pods: what a kubelet does with kubeadm's manifests, without a
container runtime (docs/lab.md). Each master's control plane is written as kubeadm-shaped
manifests (DIR/mN/manifests) whose command lines are the processes the lab runs, the master
is a Node with kubeadm's control-plane taint, and each manifest is published as a mirror pod,
so `kha audit` reads the real control plane's flags from the real API.

The tests share the session's lab (xdist group "k8s") and leave it as they found it.
"""
import hashlib
import json
import os

import pytest
import yaml

from conftest import kha_bin, run_kha
from kha_testlib.k8s import WORKERS

pytestmark = [pytest.mark.xdist_group("k8s")]

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
PROC_KIND = {"etcd": "etcd", "kube-apiserver": "kube-apiserver",
             "kube-controller-manager": "kube-controller-manager",
             "kube-scheduler": "kube-scheduler"}


def audit_json(k8s):
    r = k8s.exec("node", kha_bin(), "audit", "-o", "json", check=False, timeout=120)
    assert r.returncode in (0, 1, 2), r.stderr
    return r, json.loads(r.stdout)["findings"]


def finding(findings, check):
    got = [f for f in findings if f["check"] == check]
    assert len(got) == 1, (check, findings)
    return got[0]


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def test_manifests_are_the_command_lines_the_lab_runs(k8s):
    """One source of truth: each manifest's command is the argv of the running process (etcd
    restarted by another test says --initial-cluster-state=existing, not new: that flag
    aside), and its mirror pod carries the manifest's hash as the kubelet computes none other."""
    with open(os.path.join(k8s.dir, "lab.json")) as f:
        state = json.load(f)
    for m in state["masters"]:
        procs = {p["kind"]: p for p in m["processes"]}
        for comp in COMPONENTS:
            path = os.path.join(k8s.dir, m["name"], "manifests", f"{comp}.yaml")
            with open(path, "rb") as f:
                text = f.read()
            pod = yaml.safe_load(text)
            assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == "kube-system"
            assert pod["metadata"]["labels"] == {"component": comp, "tier": "control-plane"}
            command = pod["spec"]["containers"][0]["command"]
            pid = procs[PROC_KIND[comp]]["pid"]
            assert pid, f"{m['name']} {comp} is not running"

            def no_state(argv):
                return [a for a in argv if not a.startswith("--initial-cluster-state=")]
            assert no_state(cmdline(pid)) == no_state(command), (m["name"], comp)
            mirror = k8s.kubectl_json("get", "pod", "-n", "kube-system",
                                      f"{comp}-{m['name']}")
            ann = mirror["metadata"]["annotations"]
            assert ann["kubernetes.io/config.mirror"] == hashlib.md5(text).hexdigest()
            assert ann["kubernetes.io/config.source"] == "file"
            assert mirror["spec"]["nodeName"] == m["name"]
            assert mirror["spec"]["containers"][0]["command"] == command
            owner = mirror["metadata"]["ownerReferences"]
            assert [(o["kind"], o["name"]) for o in owner] == [("Node", m["name"])]


def test_kubectl_lists_the_control_plane_pods(k8s):
    want = {f"{c}-{m}" for c in COMPONENTS for m in k8s.masters}
    out = k8s.exec("node", "kubectl", "--request-timeout=20s", "get", "pods", "-n",
                   "kube-system").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert want <= set(rows), out
    for name in want:
        assert rows[name][1:3] == ["1/1", "Running"], out
    pods = k8s.kubectl_json("get", "pods", "-n", "kube-system", "-l", "tier=control-plane")
    assert sorted(p["metadata"]["name"] for p in pods["items"]) == sorted(want)
    # the masters are Nodes with kubeadm's taint: the scheduler keeps ordinary pods off them
    for m in k8s.masters:
        node = k8s.kubectl_json("get", "node", m)
        assert "node-role.kubernetes.io/control-plane" in node["metadata"]["labels"]
        assert {"key": "node-role.kubernetes.io/control-plane",
                "effect": "NoSchedule"} in node["spec"]["taints"]


def test_audit_reads_the_control_plane_flags(k8s):
    """The lab's control plane as kubeadm runs it: --leader-elect on every controller-manager
    and scheduler, every apiserver listing every etcd member (its own first): all ok, in the
    JSON report and the table."""
    n = len(k8s.masters)
    _, findings = audit_json(k8s)
    for comp, check in (("kube-controller-manager", "controller-manager-leader-elect"),
                        ("kube-scheduler", "scheduler-leader-elect")):
        f = finding(findings, check)
        assert f["severity"] == "ok", f
        assert f["finding"] == f"every {comp} elects a leader ({n} copies)", f
    f = finding(findings, "apiserver-etcd-servers")
    assert f["severity"] == "ok", f
    assert f"each kube-apiserver ({n})" in f["finding"], f
    for check in ("controller-manager-instances", "scheduler-instances"):
        f = finding(findings, check)
        assert f["severity"] == "ok", f
        for m in k8s.masters:
            assert f"@{m}" in f["finding"], f
    r = k8s.exec("node", kha_bin(), "audit", check=False, timeout=120)
    rows = [line for line in r.stdout.splitlines()
            if line.split() and line.split()[0] in ("controller-manager-leader-elect",
                                                    "scheduler-leader-elect",
                                                    "apiserver-etcd-servers")]
    assert len(rows) == 3, r.stdout
    assert all(" ok " in f" {row} " for row in rows), r.stdout


def test_audit_flags_a_scheduler_without_leader_election(k8s):
    """A fourth kube-scheduler static pod, on a worker, with --leader-elect=false: the audit
    turns critical and names it. Removed again whatever happens."""
    worker = WORKERS[0]
    name = f"kube-scheduler-{worker}"
    node = k8s.kubectl_json("get", "node", worker)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "kube-system",
                        "labels": {"component": "kube-scheduler", "tier": "control-plane"},
                        "annotations": {"kubernetes.io/config.mirror": "0" * 32,
                                        "kubernetes.io/config.hash": "0" * 32,
                                        "kubernetes.io/config.source": "file"},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                             "name": worker,
                                             "uid": node["metadata"]["uid"]}]},
           "spec": {"nodeName": worker, "hostNetwork": True,
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                    "containers": [{"name": "kube-scheduler",
                                    "image": "registry.k8s.io/kube-scheduler:v0",
                                    "command": ["kube-scheduler", "--leader-elect=false"]}]}}
    k8s.kubectl("create", "-f", "-", input=json.dumps(pod))
    try:
        r, findings = audit_json(k8s)
        f = finding(findings, "scheduler-leader-elect")
        assert f["severity"] == "critical", f
        assert f"{name}@{worker}" in f["finding"], f
        assert "--leader-elect=true" in f["fix"], f
        assert r.returncode == 2
        # the controller-manager's are untouched
        assert finding(findings, "controller-manager-leader-elect")["severity"] == "ok"
    finally:
        k8s.kubectl("delete", "pod", "-n", "kube-system", name, "--grace-period=0", "--force",
                    "--wait=true")
    _, findings = audit_json(k8s)
    assert finding(findings, "scheduler-leader-elect")["severity"] == "ok"


def test_lab_status_shows_the_leader_election_timings(k8s):
    """kha lab up without the leader-election options: client-go's defaults, in lab.json
    and in kha lab status."""
    with open(os.path.join(k8s.dir, "lab.json")) as f:
        le = json.load(f)["kubernetes"]["leader_elect"]
    assert le == {"lease_duration": "15s", "renew_deadline": "10s", "retry_period": "2s"}
    r = run_kha("lab", "status", "--dir", k8s.dir, timeout=60)
    assert ("kube-scheduler leader election: lease 15s, renew deadline 10s, retry period 2s"
            in r.stdout), r.stdout
    r = run_kha("lab", "status", "--dir", k8s.dir, "-o", "json", timeout=60)
    assert json.loads(r.stdout)["leader_elect"] == le, r.stdout
    # client-go's defaults: the command lines carry none of the flags, as kubeadm's do not
    for m in k8s.masters:
        for comp in ("kube-controller-manager", "kube-scheduler"):
            with open(os.path.join(k8s.dir, m, "manifests", f"{comp}.yaml")) as f:
                command = yaml.safe_load(f)["spec"]["containers"][0]["command"]
            assert "--leader-elect=true" in command
            assert not [a for a in command if a.startswith("--leader-elect-")], command


@pytest.mark.parametrize("args, words", [
    (["--leader-elect-lease-duration", "10s", "--leader-elect-renew-deadline", "10s"],
     "--leader-elect-renew-deadline 10s must be shorter than --leader-elect-lease-duration 10s"),
    (["--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "3s"],
     "--leader-elect-retry-period 3s must be shorter than --leader-elect-renew-deadline 3s"),
    (["--leader-elect-lease-duration", "5s"],
     "--leader-elect-renew-deadline 10s must be shorter than --leader-elect-lease-duration 5s"),
    (["--leader-elect-retry-period", "0s"], "--leader-elect-retry-period '0s': must be above 0"),
    (["--leader-elect-lease-duration", "soon"], "--leader-elect-lease-duration"),
])
def test_lab_up_rejects_bad_leader_election_timings(tmp_path, args, words):
    """Checked before anything is made: one line naming the option, exit 64, no lab left."""
    r = run_kha("lab", "up", "--kubernetes", "--dir", tmp_path / "lab", *args)
    assert r.returncode == 64, (r.returncode, r.stderr)
    assert words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "lab").exists()


def test_leader_election_timings_need_kubernetes(tmp_path):
    r = run_kha("lab", "up", "--dir", tmp_path / "lab", "--leader-elect-lease-duration", "4s")
    assert r.returncode == 64, r.stderr
    assert "--leader-elect-lease-duration needs --kubernetes" in r.stderr, r.stderr
