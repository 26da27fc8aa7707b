# SPDX-License-Identifier: MIT
"""kha against a real Kubernetes control plane: `kha lab up --kubernetes` (kha_testlib/k8s.py).

Real kube-apiserver, kube-controller-manager, kube-scheduler, kubeadm's PKI, kubectl and etcd
3.6 at the versions pinned in tools/; no stand-in server. The tests share one lab (xdist group
"k8s", the session fixture k8s) and each leaves it as it found it.
"""
import json
import signal
import subprocess

import pytest

from conftest import assert_no_sanitizer_report, kha_bin
from kha_testlib.k8s import WORKERS, wait_until

pytestmark = [pytest.mark.xdist_group("k8s"), pytest.mark.early]


def test_kubectl_works_through_every_entry(k8s):
    # node: its node-local kha proxy; lb1/lb2: the VIP (kha vip + kha proxy); mN: its own
    for host in ["node", "lb1", "lb2"] + k8s.masters:
        out = k8s.kubectl("get", "nodes", "-o", "name", host=host).stdout.split()
        # the masters are registered as Nodes too, as the lab publishes their static pods
        assert sorted(out) == sorted([f"node/{m}" for m in k8s.masters] +
                                     [f"node/{w}" for w in WORKERS]), host


def test_kubeconfig_names_each_entry(k8s, kha):
    for entry, server in [("node", "https://127.0.0.1:7443"),
                          ("vip", f"https://{k8s.vip}:6443"),
                          ("m2", f"https://{k8s.address['m2']}:6443")]:
        r = kha("lab", "kubeconfig", "--dir", k8s.dir, "--entry", entry)
        assert r.returncode == 0, r.stderr
        assert f"server: {server}\n" in r.stdout
    r = kha("lab", "kubeconfig", "--dir", k8s.dir, "--entry", "m9")
    assert r.returncode == 64
    assert "unknown entry m9" in r.stderr


def test_default_kubernetes_lists_exactly_the_masters(k8s):
    """The real endpoint reconciler (leases): what kha proxy's discovery follows. Another test
    of the session may have restarted a master just before: an apiserver re-registers itself
    within its lease reconcile interval, so the set converges to every master."""
    want = sorted(k8s.address[m] for m in k8s.masters)

    def listed():
        slices = k8s.kubectl_json("get", "endpointslices", "-n", "default", "-l",
                                  "kubernetes.io/service-name=kubernetes")["items"]
        addrs = sorted(a for s in slices for e in s.get("endpoints") or [] for a in
                       e["addresses"])
        return addrs if addrs == want else None
    wait_until(listed, 60, "default/kubernetes to list every master")


def test_node_proxy_discovers_the_masters_from_the_real_api(k8s):
    want = {f"{k8s.address[m]}:6443" for m in k8s.masters}

    def discovered():
        # inside the lab PATH starts with the Kubernetes programs: kha by its own path
        r = k8s.exec("node", kha_bin(), "proxy", "status", "--metrics-addr", "127.0.0.1:9090",
                     "-o", "json", check=False)
        if r.returncode != 0:
            return None
        st = json.loads(r.stdout)
        got = {b["address"]: b for b in st["backends"] if not b["removed"]}
        if set(got) == want and all("discovered" in got[a]["source"] and
                                    got[a]["state"] == "up" for a in want):
            return st
        return None
    st = wait_until(discovered, 60, "the node's kha proxy to discover all masters up")
    assert st["ready"] is True


def test_controller_manager_and_scheduler_each_have_one_leader(k8s):
    for name in ("kube-controller-manager", "kube-scheduler"):
        def held():
            lease = k8s.kubectl_json("get", "lease", "-n", "kube-system", name)
            return lease["spec"].get("holderIdentity")
        holder = wait_until(held, 60, f"a {name} leader")
        # the identity starts with the master's hostname: each lab host has its own
        assert holder.split("_")[0] in k8s.masters, holder


def test_audit_flags_single_dns_replica_and_its_fix_works(k8s, tmp_path):
    """kha audit against the real API: one DNS replica and no anti-affinity are flagged; the
    fixes it emits, applied with kubectl, make the real scheduler spread the replicas."""
    deploy = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                 "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                              "spec": {"containers": [{"name": "coredns",
                                                       "image": "registry.k8s.io/coredns/"
                                                                "coredns:v1.12.0"}]}}}}
    k8s.kubectl("apply", "-f", "-", input=json.dumps(deploy))
    fixes = tmp_path / "fixes"

    def audit():
        r = k8s.exec("node", kha_bin(), "audit", "-o", "json", "--fix-out", fixes,
                     check=False, timeout=120)
        assert r.returncode in (0, 1, 2), r.stderr
        return r, {f["check"]: f for f in json.loads(r.stdout)["findings"]}

    r, found = audit()
    assert found["dns-replicas"]["severity"] == "critical", found["dns-replicas"]
    assert found["dns-spread"]["severity"] == "warning", found["dns-spread"]
    assert r.returncode == 2
    # the fixes, as printed, from the node (kubectl through its kha proxy)
    k8s.kubectl("-n", "kube-system", "scale", "deployment/coredns", "--replicas=2")
    k8s.kubectl("-n", "kube-system", "patch", "deployment", "coredns", "--patch-file",
                fixes / "dns-anti-affinity.yaml")
    k8s.kubectl("apply", "-f", fixes / "dns-pdb.yaml")

    def spread():
        # the lab's workers have no kubelet: report the bound pods running, so that the
        # roll-out of the patched template replaces the old pods
        live = k8s.run_scheduled_pods("kube-system", "k8s-app=kube-dns")
        fixed = [p for p in live if p["spec"].get("affinity")]
        nodes = [p["spec"].get("nodeName") for p in fixed]
        if len(live) == 2 and len(fixed) == 2 and all(nodes) and len(set(nodes)) == 2:
            return nodes
        return None
    wait_until(spread, 90, "the scheduler to place two DNS replicas on different nodes")
    _, found = audit()
    for check in ("dns-replicas", "dns-spread", "dns-pdb"):
        assert found[check]["severity"] == "ok", found[check]


def test_elect_reads_the_real_control_plane_leases(k8s):
    """kha elect --leader on the Leases kube-controller-manager and kube-scheduler hold."""
    for name in ("kube-controller-manager", "kube-scheduler"):
        lease = k8s.kubectl_json("get", "lease", "-n", "kube-system", name)
        r = k8s.exec("node", kha_bin(), "elect", "--leader", "--election", name,
                     "--lease-namespace", "kube-system", "--lease-name", name, "-o", "json")
        got = json.loads(r.stdout)
        assert got["leader"]["id"] == lease["spec"]["holderIdentity"], (got, lease["spec"])


def test_elect_lease_backend_hands_over_on_the_real_api(k8s, tmp_path):
    """Two kha elect on one Lease through the node's entry: one runs COMMAND; SIGTERM of the
    leader resigns and the other takes over (real optimistic concurrency, real MicroTime)."""
    marks = {}
    procs = {}
    for who in ("a", "b"):
        marks[who] = tmp_path / f"{who}.leading"
        procs[who] = subprocess.Popen(
            [kha_bin(), "lab", "exec", "--dir", k8s.dir, "node", "--", kha_bin(), "elect",
             "--election", "kha-test", "--lease-namespace", "default", "--lease-name",
             "kha-test", "--id", who, "--ttl", "6s", "--renew-deadline", "4s",
             "--retry-period", "500ms", "--", "sh", "-c",
             f"touch {marks[who]}; exec sleep 600"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL)
    try:
        first = wait_until(lambda: [w for w in marks if marks[w].exists()], 60,
                           "one kha elect to lead")
        assert len(first) == 1, first
        leader = first[0]
        other = "b" if leader == "a" else "a"
        holder = k8s.kubectl_json("get", "lease", "-n", "default", "kha-test")["spec"]
        assert holder["holderIdentity"] == leader
        procs[leader].send_signal(signal.SIGTERM)
        out, err = procs[leader].communicate(timeout=30)
        assert procs[leader].returncode == 0, err
        assert_no_sanitizer_report(err, "kha elect")
        # it resigned: the other one takes over well before the 6 s lease would expire
        wait_until(marks[other].exists, 6, f"{other} to take over after the resignation")
        spec = k8s.kubectl_json("get", "lease", "-n", "default", "kha-test")["spec"]
        assert spec["holderIdentity"] == other
        assert spec["leaseTransitions"] >= 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for who, p in procs.items():
            _, err = p.communicate(timeout=30)
            assert_no_sanitizer_report(err, f"kha elect {who}")
        k8s.kubectl("delete", "lease", "-n", "default", "kha-test", "--ignore-not-found")


def test_audit_checks_each_entry_against_the_real_apiserver_certificates(k8s):
    """The VIP and the node-local address are in kubeadm's apiserver certificates (certSANs of
    the lab's kubeadm configuration): nothing to report. A load balancer's own address is not:
    kha audit says so, and kubectl through that address is refused exactly as predicted."""
    def audit(entry):
        # each apiserver named: one that does not answer in time is then a finding, not a
        # skip (the machine may be busy)
        named = [a for m in k8s.masters for a in ("--apiserver", f"{k8s.address[m]}:6443")]
        r = k8s.exec("node", kha_bin(), "audit", "--entry", entry, *named, "--timeout", "15s",
                     "-o", "json", check=False, timeout=180)
        assert r.returncode in (0, 1, 2), r.stderr
        return [f for f in json.loads(r.stdout)["findings"]
                if f["check"] in ("entry-san", "apiserver-san")]

    for entry in (f"{k8s.vip}:6443", "127.0.0.1:7443"):
        found = audit(entry)
        assert [f["check"] for f in found].count("apiserver-san") == len(k8s.masters), found
        assert all(f["severity"] == "ok" for f in found), (entry, found)
    lb1 = f"{k8s.address['lb1']}:6443"   # lb1's proxy listens on every address
    found = {f["check"]: f for f in audit(lb1) if f["check"] == "entry-san"}
    assert found["entry-san"]["severity"] == "critical", found
    r = k8s.kubectl("--server", f"https://{lb1}", "get", "nodes", check=False)
    assert r.returncode != 0
    assert "x509" in r.stderr and k8s.address["lb1"] in r.stderr, r.stderr


def test_kha_certs_client_certificate_is_accepted_by_the_real_apiserver(k8s, kha, tmp_path):
    """A client certificate kha certs issues from kubeadm's CA authenticates to the real
    kube-apiserver (kubectl auth whoami: the user is its common name)."""
    out = tmp_path / "certs"
    r = kha("certs", "issue", "--ca-dir", f"{k8s.dir}/m1/pki", "--name", "kha-certs-user",
            "--client", "--out-dir", out)
    assert r.returncode == 0, r.stderr
    r = k8s.kubectl("auth", "whoami", "-o", "json", "--client-certificate",
                    out / "kha-certs-user.crt", "--client-key", out / "kha-certs-user.key",
                    host="m1")
    assert json.loads(r.stdout)["status"]["userInfo"]["username"] == "kha-certs-user"
