# SPDX-License-Identifier: MIT
"""kha audit end to end: real etcd members (1 member, 3 members, one stopped), real snapshots in
a backup directory, the real control plane of the shared lab (conftest's k8s: kube-apiserver,
controller-manager, scheduler, RBAC) with Deployments, PodDisruptionBudgets and ServiceAccounts
each test makes in a namespace of its own, and real TLS servers whose certificates do or do not
carry the entry address; the JSON schema, --fix-out, exit codes and bad input. The stand-in
Kubernetes API (kha_testlib/kubeapi.py) remains for what the shared control plane cannot be put
into (each such test says why)."""
import datetime
import json
import os
import shlex
import subprocess

import pytest
import yaml

from conftest import free_port, run_kha
from kha_testlib.etcd import etcd3, etcd_cluster  # noqa: F401 (fixtures)
from kha_testlib.k8s import wait_until, write_kubeconfig
from kha_testlib.kubeapi import KubeAPI, TestPKI
from kha_testlib.pki import make_ca

EXIT_OK, EXIT_DEGRADED, EXIT_CRITICAL = 0, 1, 2
EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_CONFIG = 64, 69, 78
SEVERITIES = {"ok", "warning", "critical", "skipped"}


def clean_env():
    """The environment without the variables that would add sources to the audit."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("ETCDCTL_") and k not in ("KUBECONFIG",
                                                          "KUBERNETES_SERVICE_HOST")}


def audit(*args, timeout=60):
    return run_kha("audit", *args, timeout=timeout, env=clean_env())


def audit_json(*args, timeout=60):
    p = audit("-o", "json", *args, timeout=timeout)
    assert p.stdout, p.stderr
    rep = json.loads(p.stdout)
    check_schema(rep)
    return p, rep


def check_schema(rep):
    """kha.audit.report/v1 as docs/audit.md documents it."""
    assert rep["schema"] == "kha.audit.report/v1"
    assert list(rep) == ["schema", "verdict", "counts", "sources", "findings"]
    assert rep["verdict"] in ("ok", "warning", "critical")
    assert set(rep["counts"]) == {"ok", "warning", "critical", "skipped"}
    for name, src in rep["sources"].items():
        assert name in ("etcd", "backup", "kubernetes", "entry", "proxy", "bgp")
        assert src["status"] in ("audited", "skipped", "unreachable")
        assert isinstance(src["detail"], str)
    n = {s: 0 for s in SEVERITIES}
    for f in rep["findings"]:
        assert list(f) == ["check", "subject", "severity", "finding", "fix", "fix_file",
                           "fix_content"]
        assert f["severity"] in SEVERITIES
        assert isinstance(f["check"], str) and f["check"]
        assert isinstance(f["subject"], str) and isinstance(f["fix"], str)
        assert isinstance(f["finding"], str) and f["finding"]
        assert (f["fix_file"] is None) == (f["fix_content"] is None)
        if f["fix_file"]:
            assert "/" not in f["fix_file"]
        if f["severity"] in ("warning", "critical"):
            assert f["fix"], f
        n[f["severity"]] += 1
    assert rep["counts"] == n
    worst = "critical" if n["critical"] else "warning" if n["warning"] else "ok"
    assert rep["verdict"] == worst


def findings(rep, check):
    return [f for f in rep["findings"] if f["check"] == check]


def only(rep, check):
    fs = findings(rep, check)
    assert len(fs) == 1, (check, rep["findings"])
    return fs[0]


def severities(rep):
    return {f["check"]: f["severity"] for f in rep["findings"]}


# ---- etcd -------------------------------------------------------------------------------------

def test_etcd_single_member_is_critical(etcd_cluster):
    c = etcd_cluster(members=1, tls=False)
    p, rep = audit_json(*c.client_flags())
    assert p.returncode == EXIT_CRITICAL, p.stderr
    f = only(rep, "etcd-members")
    assert f["severity"] == "critical"
    assert "1 voting member" in f["finding"]
    assert f["fix_file"] == "etcd-grow.sh"
    assert "kha etcd member add etcd-2 --learner" in f["fix_content"]
    assert only(rep, "etcd-health")["severity"] == "ok"
    assert only(rep, "etcd-alarms")["severity"] == "ok"
    assert rep["sources"]["etcd"]["status"] == "audited"
    for src in ("backup", "kubernetes", "entry"):
        assert rep["sources"][src]["status"] == "skipped"
    assert only(rep, "kubernetes")["severity"] == "skipped"


def test_etcd_three_members_ok_then_one_stopped(etcd3):
    c = etcd3
    p, rep = audit_json(*c.client_flags())
    assert p.returncode == EXIT_OK, (p.stderr, rep)
    assert only(rep, "etcd-members")["severity"] == "ok"
    assert "3 voting members" in only(rep, "etcd-members")["finding"]
    assert only(rep, "etcd-health")["severity"] == "ok"

    c.stop(2)
    p, rep = audit_json(*c.client_flags())
    assert p.returncode == EXIT_DEGRADED, (p.stderr, rep)
    f = only(rep, "etcd-health")
    assert f["severity"] == "warning"
    assert "etcd-2" in f["finding"] and "does not answer" in f["finding"]
    assert f["subject"] == c.member(2).client_url
    assert "systemctl start etcd" in f["fix"]

    # the table says the same
    p = audit(*c.client_flags())
    assert p.returncode == EXIT_DEGRADED
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "SEVERITY", "FINDING", "FIX"]
    assert any(line.startswith("etcd-health") and "warning" in line for line in lines)
    assert "warning: 0 critical, 1 warning" in p.stdout


def snapshot(c, path):
    p = run_kha("etcd", "snapshot", "save", path, *c.client_flags(), timeout=60)
    assert p.returncode == 0, p.stderr


def test_backup_directory(etcd_cluster, tmp_path):
    c = etcd_cluster(members=1, tls=False)
    backups = tmp_path / "backups"
    backups.mkdir()

    # empty: critical
    p, rep = audit_json("--backup-dir", backups)
    assert p.returncode == EXIT_CRITICAL
    assert "no snapshot" in only(rep, "etcd-backup")["finding"]
    assert rep["sources"]["backup"]["status"] == "audited"

    # a fresh, verified snapshot
    snapshot(c, str(backups / "etcd-1.db"))
    p, rep = audit_json("--backup-dir", backups, "--backup-max-age", "1h")
    assert p.returncode == EXIT_OK, rep
    f = only(rep, "etcd-backup")
    assert f["severity"] == "ok" and "etcd-1.db" in f["finding"] and "verifies" in f["finding"]

    # too old
    old = (datetime.datetime.now() - datetime.timedelta(hours=2)).timestamp()
    os.utime(backups / "etcd-1.db", (old, old))
    p, rep = audit_json("--backup-dir", backups, "--backup-max-age", "1h")
    assert p.returncode == EXIT_DEGRADED
    assert "old" in only(rep, "etcd-backup")["finding"]
    p, rep = audit_json("--backup-dir", backups, "--backup-max-age", "20m")
    assert p.returncode == EXIT_CRITICAL  # more than four times the allowed age

    # a newer file that is not a snapshot: warned about, the older one still counts
    (backups / "etcd-2.db").write_bytes(b"\0" * 8192)
    p, rep = audit_json("--backup-dir", backups, "--backup-max-age", "3h")
    assert p.returncode == EXIT_DEGRADED
    fs = findings(rep, "etcd-backup")
    assert [f["severity"] for f in fs] == ["warning", "ok"]
    assert "etcd-2.db" in fs[0]["finding"]

    # temporaries are not backups
    (backups / ".etcd-3.db.tmp.x").write_bytes(b"x")
    p, rep = audit_json("--backup-dir", backups, "--backup-max-age", "3h")
    assert len(findings(rep, "etcd-backup")) == 2

    # missing directory
    p, rep = audit_json("--backup-dir", tmp_path / "nope")
    assert p.returncode == EXIT_CRITICAL
    assert "No such file" in only(rep, "etcd-backup")["finding"]


# ---- Kubernetes -------------------------------------------------------------------------------
# Against the real kube-apiserver of the shared lab (conftest's k8s): each test audits from the
# node host (its KUBECONFIG: the node's kha proxy, https://127.0.0.1:7443) a cluster DNS of its
# own, in a namespace of its own, named with --dns; the apiservers, Leases and control-plane
# pods are the lab's own.

K8S = pytest.mark.xdist_group("k8s")
NODE_ENTRY = "127.0.0.1:7443"
DNS_LABELS = {"k8s-app": "kube-dns"}


def lab_audit(k8s, *args, host="node"):
    """kha audit -o json inside a lab host; a probe may take long on a loaded machine."""
    p = k8s.kha("audit", "-o", "json", "--timeout", "15s", *args, host=host, timeout=240)
    assert p.stdout, p.stderr
    rep = json.loads(p.stdout)
    check_schema(rep)
    assert p.returncode == {"ok": EXIT_OK, "warning": EXIT_DEGRADED,
                            "critical": EXIT_CRITICAL}[rep["verdict"]], (p.stderr, rep)
    return p, rep


def check_instances(k8s, rep):
    """kube-controller-manager and kube-scheduler instances as the lab shows them: their mirror
    pods when it publishes them (as kubelets do), else none (a warning)."""
    for check, component in (("controller-manager-instances", "kube-controller-manager"),
                             ("scheduler-instances", "kube-scheduler")):
        f = only(rep, check)
        pods = k8s.kubectl_json("get", "pods", "-n", "kube-system", "-l",
                                f"component={component}")["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in live if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in p["status"].get("conditions", []))]
        if len(live) >= 2:
            assert f"{len(live)} instances ({len(ready)} ready)" in f["finding"], f
            assert f["severity"] == ("ok" if len(ready) >= 2 else "warning"), f
        elif live:
            assert f["severity"] == "critical", f
        else:
            assert f["severity"] == "warning" and "no pod with label" in f["finding"], f


class ClusterDNS:
    """A cluster DNS Deployment of the test's own in namespace ns (kha audit --dns ref). No
    kubelet runs in the lab: the pods the real scheduler binds are reported running by the
    test (K8sLab.run_scheduled_pods)."""

    def __init__(self, k8s, ns):
        self.k8s, self.ns = k8s, ns
        self.ref = f"{ns}/coredns"

    def deploy(self, name="coredns", replicas=2, anti_affinity="required", spread=False,
               node=None):
        spec = {"containers": [{"name": "coredns",
                                "image": "registry.k8s.io/coredns/coredns:v1.12.0"}]}
        term = {"topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": DNS_LABELS}}
        if anti_affinity == "required":
            spec["affinity"] = {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term]}}
        elif anti_affinity == "preferred":
            spec["affinity"] = {"podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": term}]}}
        if spread:
            spec["topologySpreadConstraints"] = [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": DNS_LABELS}}]
        if node:
            spec["nodeSelector"] = {"kubernetes.io/hostname": node}
        obj = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": self.ns, "labels": DNS_LABELS},
               "spec": {"replicas": replicas, "selector": {"matchLabels": DNS_LABELS},
                        "template": {"metadata": {"labels": DNS_LABELS}, "spec": spec}}}
        self.k8s.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def pdb(self, name="coredns", **spec):
        obj = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": name, "namespace": self.ns},
               "spec": {**spec, "selector": {"matchLabels": DNS_LABELS}}}
        self.k8s.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def finish_terminating(self):
        """What the kubelets would do for the pods being deleted: confirm their end (a
        forced delete), so that they leave the API."""
        pods = self.k8s.kubectl_json("get", "pods", "-n", self.ns, "-l", "k8s-app=kube-dns")
        gone = [p["metadata"]["name"] for p in pods["items"]
                if p["metadata"].get("deletionTimestamp")]
        if gone:
            self.k8s.kubectl("delete", "pods", "-n", self.ns, *gone, "--force",
                             "--grace-period=0", "--ignore-not-found", check=False)

    def ready(self, name="coredns", finish_terminating=False):
        """Waits until the Deployment's replicas are bound, reported running, and counted
        ready by the real controllers (and, with finish_terminating, the replaced pods gone);
        returns the live pods."""
        def done():
            if finish_terminating:
                self.finish_terminating()
            live = self.k8s.run_scheduled_pods(self.ns, "k8s-app=kube-dns")
            d = self.k8s.kubectl_json("get", "deployment", "-n", self.ns, name)
            want, st = d["spec"]["replicas"], d.get("status", {})
            if (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and
                    st.get("readyReplicas", 0) == want == st.get("updatedReplicas", 0) and
                    len(live) == want and all(p["spec"].get("nodeName") for p in live)):
                return live
            return None
        return wait_until(done, 120, f"{self.ns}/{name} ready")


@pytest.fixture
def dns(k8s):
    with k8s.namespace("kha-audit") as ns:
        yield ClusterDNS(k8s, ns)


def healthy_dns(dns):
    dns.deploy(replicas=2, anti_affinity="required")
    dns.pdb(minAvailable=1)
    return dns.ready()


@K8S
def test_kube_healthy_cluster_is_ok(k8s, dns):
    """Three apiservers behind default/kubernetes, the kubeconfig through the node's kha
    proxy, two DNS replicas the real scheduler put on two workers (required anti-affinity)
    under a PodDisruptionBudget, controller-manager and scheduler Leases renewed."""
    pods = healthy_dns(dns)
    assert len({p["spec"]["nodeName"] for p in pods}) == 2
    k8s.wait_masters_listed()
    p, rep = lab_audit(k8s, "--dns", dns.ref)
    sev = severities(rep)
    for check in ("apiserver-endpoints", "kubeconfig-server", "dns-replicas", "dns-spread",
                  "dns-pdb", "controller-manager-leader", "scheduler-leader"):
        assert sev[check] == "ok", (check, rep["findings"])
    f = only(rep, "apiserver-endpoints")["finding"]
    assert f"{len(k8s.masters)} apiservers" in f
    assert all(f"{k8s.address[m]}:6443" in f for m in k8s.masters), f
    assert only(rep, "dns-replicas")["subject"] == dns.ref
    assert "2 cluster DNS replicas, all ready" in only(rep, "dns-replicas")["finding"]
    assert "required pod anti-affinity" in only(rep, "dns-spread")["finding"]
    assert f"{dns.ns}/coredns covers" in only(rep, "dns-pdb")["finding"]
    for component in ("kube-controller-manager", "kube-scheduler"):
        holder = k8s.kubectl_json("get", "lease", "-n", "kube-system",
                                  component)["spec"]["holderIdentity"]
        check = component.removeprefix("kube-") + "-leader"
        assert f"led by {holder}" in only(rep, check)["finding"]
    check_instances(k8s, rep)
    assert rep["sources"]["kubernetes"] == {"status": "audited",
                                            "detail": f"https://{NODE_ENTRY}"}


@K8S
def test_deployed_rbac_covers_every_request(k8s, dns, tmp_path):
    """deploy/kha-audit.yaml's ClusterRole under the real RBAC authorizer, bound to a service
    account of the test (its token from the TokenRequest API): the audit reads all it needs
    (the same findings as the admin's, nothing skipped). Without any one of its rules a check
    is skipped, the rest still audited: the role grants nothing that is not read."""
    healthy_dns(dns)
    manifest = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "kha-audit.yaml")
    with open(manifest) as f:
        rules = next(d for d in yaml.safe_load_all(f) if d["kind"] == "ClusterRole")["rules"]
    name = dns.ns            # unique, for the cluster-wide role and binding
    token = k8s.service_account_token(dns.ns, "kha-audit")
    kc = write_kubeconfig(tmp_path / "sa.conf", f"https://{NODE_ENTRY}", ca=k8s.ca,
                          auth="token", token=token)

    def put_role(rules):
        k8s.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name}, "rules": rules}))

    def sa_audit():
        return lab_audit(k8s, "--kubeconfig", kc, "--dns", dns.ref)[1]

    def kube_severities(rep):        # the sources not given (etcd, ...) left aside
        return {f["check"]: f["severity"] for f in rep["findings"]
                if not f["finding"].startswith("not audited: ")}

    put_role(rules)
    try:
        k8s.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                    f"--serviceaccount={dns.ns}:kha-audit")
        _, admin = lab_audit(k8s, "--dns", dns.ref)
        want = kube_severities(admin)
        assert "skipped" not in want.values(), admin["findings"]
        # the authorizer follows the binding through its informers: allowed within moments
        wait_until(lambda: kube_severities(sa_audit()) == want, 30,
                   "the service account's audit to match the admin's")
        for i, rule in enumerate(rules):
            put_role(rules[:i] + rules[i + 1:])

            def skipped():
                rep = sa_audit()
                assert rep["sources"]["kubernetes"]["status"] == "audited", rep
                return "skipped" in kube_severities(rep).values() and rep
            rep = wait_until(skipped, 30, f"a check skipped without {rule['resources']}")
            if rule["resources"] == ["endpointslices"]:
                # 403 on one object: that check skipped, the others audited as before
                f = only(rep, "apiserver-endpoints")
                assert f["severity"] == "skipped" and "forbidden" in f["finding"].lower(), f
                assert only(rep, "dns-replicas")["severity"] == "ok"
    finally:
        k8s.kubectl("delete", "clusterrolebinding", name, "--ignore-not-found", check=False)
        k8s.kubectl("delete", "clusterrole", name, "--ignore-not-found", check=False)


@K8S
def test_kube_dns_single_replica_and_the_fixes_work(k8s, dns, tmp_path):
    """One DNS replica, no anti-affinity, no PodDisruptionBudget: flagged, with fixes naming
    the Deployment given with --dns; the fixes, applied to the real API as written, satisfy
    the next audit."""
    dns.deploy(replicas=1, anti_affinity=None)
    dns.ready()
    fixes = tmp_path / "fixes"
    p, rep = lab_audit(k8s, "--dns", dns.ref, "--fix-out", fixes)
    assert p.returncode == EXIT_CRITICAL
    sev = severities(rep)
    assert (sev["dns-replicas"], sev["dns-spread"], sev["dns-pdb"]) == \
        ("critical", "warning", "warning")
    assert only(rep, "dns-replicas")["fix"] == \
        f"kubectl -n {dns.ns} scale deployment/coredns --replicas=2"
    # --fix-out wrote every fix that comes as a file, as the report names them
    written = sorted(os.listdir(fixes))
    assert written == sorted(f["fix_file"] for f in rep["findings"] if f["fix_file"])
    assert {"dns-scale.sh", "dns-anti-affinity.yaml", "dns-pdb.yaml"} <= set(written)
    pdb = yaml.safe_load((fixes / "dns-pdb.yaml").read_text())
    assert pdb == {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": "coredns", "namespace": dns.ns},
                   "spec": {"minAvailable": 1, "selector": {"matchLabels": DNS_LABELS}}}
    patch = yaml.safe_load((fixes / "dns-anti-affinity.yaml").read_text())
    term = patch["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname",
                                       "labelSelector": {"matchLabels": DNS_LABELS}}
    # as an operator would: the script and the manifest, from the node, on the real API
    k8s.exec("node", "bash", "-eu", fixes / "dns-scale.sh")
    k8s.kubectl("apply", "-f", fixes / "dns-pdb.yaml")
    dns.ready()
    p, rep = lab_audit(k8s, "--dns", dns.ref)
    sev = severities(rep)
    assert sev["dns-pdb"] == "ok" and sev["dns-replicas"] == "ok", rep["findings"]


@K8S
def test_kube_dns_found_by_label_and_on_one_node(k8s, dns):
    """--dns NS/coredns that does not exist: the Deployment labelled k8s-app=kube-dns in NS
    (here kube-dns, as older clusters name it), whose replicas a node selector pins to one
    worker despite its topology spread constraint; a PodDisruptionBudget that allows no
    disruption (the real disruption controller computes it)."""
    dns.deploy(name="kube-dns", replicas=2, anti_affinity=None, spread=True, node="worker-1")
    dns.pdb(maxUnavailable=0)
    dns.ready("kube-dns")
    p, rep = lab_audit(k8s, "--dns", dns.ref)
    assert only(rep, "dns-replicas")["subject"] == f"{dns.ns}/kube-dns"
    assert only(rep, "dns-replicas")["severity"] == "ok"
    spread = findings(rep, "dns-spread")
    assert [f["severity"] for f in spread] == ["ok", "warning"], spread
    assert "topology spread constraints" in spread[0]["finding"]
    assert spread[1]["subject"] == "worker-1" and "all 2 cluster DNS pods" in spread[1]["finding"]
    f = only(rep, "dns-pdb")
    assert f["severity"] == "warning" and "allows no disruption" in f["finding"], f

    # no cluster DNS at all: said, naming what was looked for
    k8s.kubectl("delete", "deployment", "-n", dns.ns, "kube-dns")
    p, rep = lab_audit(k8s, "--dns", dns.ref)
    f = only(rep, "dns-replicas")
    assert f["severity"] == "warning" and f["subject"] == dns.ref
    assert f"no cluster DNS Deployment found ({dns.ref}, or label k8s-app=kube-dns in " \
        f"namespace {dns.ns})" in f["finding"]


@K8S
def test_kube_dns_on_one_node_and_the_printed_fix_spreads_it(k8s, dns):
    """Two DNS replicas with preferred anti-affinity land on one worker while the others are
    cordoned; uncordoned, the pods stay put and the audit warns, printing a rollout restart.
    That fix, run as printed in a shell on the node, has the real scheduler place the new pods
    on two workers, and the warning is gone."""
    others = ("worker-2", "worker-3")
    k8s.kubectl("cordon", *others)
    try:
        dns.deploy(replicas=2, anti_affinity="preferred")
        pods = dns.ready()
        assert {p["spec"]["nodeName"] for p in pods} == {"worker-1"}, pods
    finally:
        k8s.kubectl("uncordon", *others)
    p, rep = lab_audit(k8s, "--dns", dns.ref)
    spread = findings(rep, "dns-spread")
    assert [f["severity"] for f in spread] == ["ok", "warning"], spread
    f = spread[1]
    assert f["subject"] == "worker-1" and "all 2 cluster DNS pods" in f["finding"], f
    assert f["fix"] == f"kubectl -n {dns.ns} rollout restart deployment/coredns", f

    k8s.exec("node", "sh", "-c", f["fix"])
    pods = dns.ready(finish_terminating=True)
    assert len({p["spec"]["nodeName"] for p in pods}) == 2, pods
    p, rep = lab_audit(k8s, "--dns", dns.ref)
    spread = findings(rep, "dns-spread")
    assert [f["severity"] for f in spread] == ["ok"], spread
    assert "preferred pod anti-affinity" in spread[0]["finding"]


@K8S
def test_kubeconfig_pointing_at_one_master(k8s, dns):
    """A kubeconfig naming m1's own address (the real apiservers behind default/kubernetes
    include it): a single point of failure; with --entry, the fix points it at the entry."""
    healthy_dns(dns)
    k8s.wait_masters_listed()
    m1 = f"{k8s.address['m1']}:6443"
    p, rep = lab_audit(k8s, "--kubeconfig", k8s.kubeconfig("m1"), "--dns", dns.ref)
    f = only(rep, "kubeconfig-server")
    assert f["severity"] == "warning" and "single master" in f["finding"], f
    assert f["subject"] == m1

    p, rep = lab_audit(k8s, "--kubeconfig", k8s.kubeconfig("m1"), "--dns", dns.ref,
                       "--entry", NODE_ENTRY)
    f = only(rep, "kubeconfig-server")
    assert f["severity"] == "warning", f
    assert f"--server=https://{NODE_ENTRY}" in f["fix"]
    assert f["fix_file"] == "kubeconfig-server.sh"

    # the node's kubeconfig goes through the entry
    p, rep = lab_audit(k8s, "--dns", dns.ref, "--entry", NODE_ENTRY)
    assert only(rep, "kubeconfig-server")["severity"] == "ok"


def test_kube_unreachable(tmp_path):
    """The only source given does not answer: exit 69, one line on stderr."""
    ca, _ = make_ca(tmp_path / "ca")
    kc = write_kubeconfig(tmp_path / "down.kubeconfig", f"https://127.0.0.1:{free_port()}",
                          ca=ca, auth="token", token="x")
    p, rep = audit_json("--kubeconfig", kc)
    assert p.returncode == EXIT_UNAVAILABLE
    assert rep["sources"]["kubernetes"]["status"] == "unreachable"
    assert only(rep, "kubernetes")["severity"] == "critical"
    assert p.stderr.count("\n") == 1 and "kha audit:" in p.stderr


# The stand-in API (kha_testlib/kubeapi.py), for the cases the real server cannot produce.

def microtime(delta_s=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(api, name, holder, renewed_ago_s=1.0, duration=15):
    api.put_lease("kube-system", name, {
        "holderIdentity": holder, "leaseDurationSeconds": duration,
        "acquireTime": microtime(-3600), "renewTime": microtime(-renewed_ago_s),
        "leaseTransitions": 2})


def healthy_cluster(api):
    """What a highly available kubeadm cluster looks like through the stand-in API (for the
    tests that need certificates or states the shared real control plane cannot have)."""
    # loopback addresses: with --entry, the audit dials the apiservers it finds here
    api.set_slice("kubernetes", ["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    api.put_deployment("coredns", replicas=2)
    api.put_pdb("coredns", {"k8s-app": "kube-dns"})
    api.put_pod("coredns-5d78c9869d-a", {"k8s-app": "kube-dns"}, "worker-1")
    api.put_pod("coredns-5d78c9869d-b", {"k8s-app": "kube-dns"}, "worker-2")
    for comp in ("kube-controller-manager", "kube-scheduler"):
        lease(api, comp, f"m1_{comp}")
        for i in (1, 2, 3):
            api.put_pod(f"{comp}-m{i}", {"component": comp, "tier": "control-plane"}, f"m{i}")
    # other pods that must not be counted
    api.put_pod("kube-apiserver-m1", {"component": "kube-apiserver"}, "m1")
    api.put_pod("web-1", {"app": "web"}, "worker-1", namespace="default")


@pytest.fixture
def kubeapi(tmp_path):
    pki = TestPKI(tmp_path / "pki")
    with KubeAPI(pki) as api:
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        yield api


def test_kube_single_points_of_failure(kubeapi, tmp_path):
    # stand-in: a stale controller-manager Lease, one controller instance and one apiserver at once, which the shared real control plane cannot be put into
    api = kubeapi
    api.set_slice("kubernetes", ["10.0.0.1"])
    api.put_deployment("coredns", replicas=2)
    api.put_pdb("coredns", {"k8s-app": "kube-dns"})
    lease(api, "kube-controller-manager", "m1_abc", renewed_ago_s=300)   # stale
    api.put_pod("kube-controller-manager-m1", {"component": "kube-controller-manager"}, "m1")
    lease(api, "kube-scheduler", "m1_def")
    api.put_pod("kube-scheduler-m1", {"component": "kube-scheduler"}, "m1")
    api.put_pod("kube-scheduler-m2", {"component": "kube-scheduler"}, "m2", ready=False)
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    assert p.returncode == EXIT_CRITICAL, p.stderr
    sev = severities(rep)
    assert sev["apiserver-endpoints"] == "critical"
    assert "one apiserver" in only(rep, "apiserver-endpoints")["finding"]
    assert sev["controller-manager-leader"] == "critical"
    assert "stopped" in only(rep, "controller-manager-leader")["finding"]
    assert sev["controller-manager-instances"] == "critical"
    assert sev["scheduler-leader"] == "ok"
    assert sev["scheduler-instances"] == "warning"   # the standby is not ready
    assert sev["dns-replicas"] == "ok"


# ---- the entry's certificate -----------------------------------------------------------------

def run_printed_cert_fixes(tmp_path, finding, entry_host):
    """Runs the fix an operator would paste, and the fix file, on a master's pki directory as
    kubeadm leaves it (a CA, and an apiserver pair with the SANs the finding's certificate has,
    without the entry): each must work as printed, renewing the pair in place with the old one
    kept aside."""
    from conftest import kha_bin
    for n, script in enumerate((finding["fix"].split(", then restart")[0].split(": ", 1)[1],
                                finding["fix_content"])):
        master_pki = tmp_path / f"etc-{n}" / "kubernetes" / "pki"
        assert run_kha("certs", "ca", "--dir", master_pki).returncode == 0
        assert run_kha("certs", "issue", "--ca-dir", master_pki, "--name", "apiserver", "--san",
                       "master-1", "--san", "10.0.0.1", "--server", "--out-dir",
                       master_pki).returncode == 0
        old_crt = (master_pki / "apiserver.crt").read_bytes()
        old_key = (master_pki / "apiserver.key").read_bytes()
        # the paths of the script, pointed at this directory; "kha" is the binary under test
        text = script.replace("/etc/kubernetes/pki", str(master_pki))
        p = subprocess.run(["bash", "-euc", text], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PATH=os.path.dirname(kha_bin()) + ":" +
                                    os.environ["PATH"]))
        assert p.returncode == 0, (text, p.stdout, p.stderr)
        # the new pair carries the entry and what the old one had; the old pair is kept
        p = run_kha("certs", "check", "--cert", master_pki / "apiserver.crt", "--san",
                    entry_host, "--san", "master-1", "--san", "10.0.0.1", "--cacert",
                    master_pki / "ca.crt")
        assert p.returncode == 0, p.stdout + p.stderr
        baks = sorted(x.name for x in master_pki.iterdir() if ".bak-" in x.name)
        assert len(baks) == 2 and baks[0].startswith("apiserver.crt.bak-"), baks
        assert (master_pki / baks[0]).read_bytes() == old_crt
        assert (master_pki / baks[1]).read_bytes() == old_key
        assert os.stat(master_pki / baks[1]).st_mode & 0o777 == 0o600
        assert os.stat(master_pki / "apiserver.key").st_mode & 0o777 == 0o600
        assert (master_pki / "apiserver.key").read_bytes() != old_key


def test_entry_san(tmp_path):
    # stand-in: TLS servers with certificates of chosen SANs (kubeadm fixes the lab's; the real-apiserver case runs in test_k8s_lab.py)
    good_pki = TestPKI(tmp_path / "good")  # SANs: localhost, 127.0.0.1, ::1, kubernetes...
    bad_pki = TestPKI(tmp_path / "bad", server_sans=("DNS:master-1", "IP:10.0.0.1"))
    with KubeAPI(good_pki) as good, KubeAPI(bad_pki) as bad:
        entry = f"127.0.0.1:{good.port}"
        p, rep = audit_json("--entry", entry)
        assert p.returncode == EXIT_OK, (p.stderr, rep)
        f = only(rep, "entry-san")
        assert f["severity"] == "ok" and f["subject"] == entry
        assert rep["sources"]["entry"]["status"] == "audited"

        # a DNS name as the entry, checked against the DNS SANs
        p, rep = audit_json("--entry", f"localhost:{good.port}")
        assert only(rep, "entry-san")["severity"] == "ok"

        # the entry's certificate lacks it
        bad_entry = f"127.0.0.1:{bad.port}"
        p, rep = audit_json("--entry", bad_entry)
        assert p.returncode == EXIT_CRITICAL
        f = only(rep, "entry-san")
        assert f["severity"] == "critical"
        assert "does not carry the entry 127.0.0.1" in f["finding"]
        assert ("kha certs issue --ca-dir /etc/kubernetes/pki --name apiserver --san 10.0.0.1 "
                "--san master-1 --san 127.0.0.1 --server") in f["fix"]
        assert "certSANs:" in f["fix_content"]
        run_printed_cert_fixes(tmp_path, f, "127.0.0.1")

        # an apiserver behind a good entry, whose own certificate lacks the entry
        p, rep = audit_json("--entry", entry, "--apiserver", bad_entry, "--apiserver", entry)
        assert p.returncode == EXIT_CRITICAL
        sans = findings(rep, "apiserver-san")
        assert [(f["subject"], f["severity"]) for f in sans] == [(bad_entry, "critical"),
                                                                  (entry, "ok")]


def test_discovered_apiservers_certificates(kubeapi, tmp_path):
    # stand-in: apiservers behind default/kubernetes with certificates of chosen SANs on loopback
    """With --kubeconfig and --entry, every apiserver behind default/kubernetes must carry the
    entry too: one whose certificate lacks it is critical; one out of reach is skipped (the
    audit may run outside the masters' network), unless named with --apiserver."""
    api = kubeapi
    healthy_cluster(api)
    bad_pki = TestPKI(tmp_path / "bad", server_sans=("DNS:master-2", "IP:10.0.0.2"))
    with KubeAPI(bad_pki) as bad:
        gone = free_port()
        for name, port in (("kubernetes", api.port), ("kubernetes-bad", bad.port),
                           ("kubernetes-gone", gone)):
            api.set_slice(name, ["127.0.0.1"], port=port)
        entry = f"127.0.0.1:{api.port}"
        p, rep = audit_json("--kubeconfig", api.kubeconfig, "--entry", entry)
        assert p.returncode == EXIT_CRITICAL, (p.stderr, rep)
        sev = {f["subject"]: f["severity"] for f in findings(rep, "apiserver-san")}
        assert sev == {f"127.0.0.1:{bad.port}": "critical", f"127.0.0.1:{gone}": "skipped"}
        assert "--san master-2" in next(f["fix"] for f in findings(rep, "apiserver-san")
                                         if f["severity"] == "critical")
        # named with --apiserver, the unreachable one is required: a warning, checked once
        p, rep = audit_json("--kubeconfig", api.kubeconfig, "--entry", entry, "--apiserver",
                            f"127.0.0.1:{gone}")
        sev = [(f["subject"], f["severity"]) for f in findings(rep, "apiserver-san")]
        assert sorted(sev) == sorted([(f"127.0.0.1:{gone}", "warning"),
                                      (f"127.0.0.1:{bad.port}", "critical")])


def test_entry_san_fix_reissues_a_working_certificate(tmp_path):
    # stand-in: a server restarted on the reissued certificate within the test, which a real apiserver of the shared lab cannot be
    """The kha certs command the audit proposes, run against a real CA, yields a certificate
    the next audit accepts."""
    ca_dir = tmp_path / "ca"
    assert run_kha("certs", "ca", "--dir", ca_dir).returncode == 0
    out = tmp_path / "out"
    p = run_kha("certs", "issue", "--ca-dir", ca_dir, "--name", "apiserver", "--san",
                "10.0.0.1", "--server", "--out-dir", out)
    assert p.returncode == 0, p.stderr
    pki = TestPKI(tmp_path / "pki")
    pki.server_cert, pki.server_key = str(out / "apiserver.crt"), str(out / "apiserver.key")
    with KubeAPI(pki) as api:
        entry = f"127.0.0.1:{api.port}"
        p, rep = audit_json("--entry", entry)
        f = only(rep, "entry-san")
        assert f["severity"] == "critical"
    cmd = shlex.split(f["fix"].split("reissue it with the entry: ")[1].split(", then")[0])
    assert cmd[:3] == ["kha", "certs", "issue"]
    # as printed (it renews in place: no --force to add), with the test's directories
    cmd = [str(ca_dir) if a == "/etc/kubernetes/pki" else a for a in cmd[3:]]
    cmd[cmd.index("--out-dir") + 1] = str(out)
    p = run_kha("certs", "issue", *cmd)
    assert p.returncode == 0, p.stderr
    with KubeAPI(pki) as api:
        p, rep = audit_json("--entry", f"127.0.0.1:{api.port}")
        assert only(rep, "entry-san")["severity"] == "ok"
        assert p.returncode == EXIT_OK


def test_entry_not_tls(tmp_path):
    port = free_port()
    srv = subprocess.Popen(["/usr/bin/python3", "-c",
                            "import socket,sys\n"
                            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
                            "socket.SO_REUSEADDR, 1)\n"
                            f"s.bind(('127.0.0.1', {port})); s.listen(8)\n"
                            "print('ready', flush=True)\n"
                            "while True:\n"
                            "    c, _ = s.accept(); c.recv(1024); "
                            "c.sendall(b'HTTP/1.0 400 Bad\\r\\n\\r\\n'); c.close()\n"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        p, rep = audit_json("--entry", f"127.0.0.1:{port}", "--timeout", "3s")
        assert p.returncode == EXIT_UNAVAILABLE
        f = only(rep, "entry-san")
        assert f["severity"] == "critical" and "TLS handshake failed" in f["finding"]
    finally:
        srv.kill()
        srv.wait()


# ---- everything together, nothing reachable, bad input ---------------------------------------

def test_node_proxy_backends(tmp_path):
    """A real kha proxy in front of real TLS backends: what it sees of the masters."""
    from kha_testlib.backends import Backend, ProxyProc, make_pki, wait_for
    from kha_testlib.process import stop_all
    from conftest import kha_bin
    pki = make_pki(tmp_path / "pki")
    bs = [Backend("tls", f"b{i}", pki) for i in range(2)]
    procs = []
    try:
        for b in bs:
            b.start()

        def proxy(*backends):
            args = [a for b in backends for a in ("--backend", b.addr)]
            p = ProxyProc(kha_bin(), [*args, "--check-cacert", pki["ca"], "--check-interval",
                                      "200ms", "--check-fast-interval", "100ms",
                                      "--check-timeout", "300ms", "--check-fall", "2"],
                          tmp_path).start()
            procs.append(p)
            return p
        two = proxy(*bs)
        wait_for(lambda: all(x["state"] == "up" and x["last_check"]["result"] == "ok"
                             for x in two.status()["backends"]), 10, "both up")
        p, rep = audit_json("--proxy", two.metrics)
        assert p.returncode == EXIT_OK, p.stderr
        assert only(rep, "proxy-backends")["severity"] == "ok"
        assert rep["sources"]["proxy"]["status"] == "audited"
        # one master stops answering: degraded, and named
        bs[1].close()
        wait_for(lambda: any(x["state"] == "down" for x in two.status()["backends"]), 10,
                 "b1 down")
        p, rep = audit_json("--proxy", two.metrics)
        assert p.returncode == EXIT_DEGRADED, p.stderr
        assert bs[1].addr in only(rep, "proxy-backends")["finding"]
        # a proxy that knows one master only is itself the single point of failure
        one = proxy(bs[0])
        p, rep = audit_json("--proxy", one.metrics)
        assert p.returncode == EXIT_CRITICAL, p.stderr
        assert "--backend" in only(rep, "proxy-backends")["fix"]
        # nothing answers there
        p = audit("--proxy", f"127.0.0.1:{free_port()}")
        assert p.returncode == EXIT_UNAVAILABLE, p.stderr
    finally:
        try:
            stop_all(procs)  # gracefully, checked (exit code, sanitizer report)
        finally:
            for b in bs:
                b.close()


@K8S
def test_all_sources_together(k8s, dns, tmp_path):
    """From a master, as docs/audit.md suggests: the lab's etcd members (TLS, client
    certificates), a fresh snapshot, the API through the VIP, the VIP as the entry; every
    apiserver found behind default/kubernetes is dialled and its certificate checked."""
    healthy_dns(dns)
    k8s.wait_masters_listed()
    pki = os.path.join(k8s.dir, "m1", "pki")
    etcd = ["--endpoints", ",".join(m["client_url"] for m in k8s.state["masters"]),
            "--cacert", f"{pki}/etcd/ca.crt", "--cert", f"{pki}/apiserver-etcd-client.crt",
            "--key", f"{pki}/apiserver-etcd-client.key"]
    backups = tmp_path / "b"
    backups.mkdir()
    r = k8s.kha("etcd", "snapshot", "save", backups / "etcd-now.db", *etcd, host="m1")
    assert r.returncode == 0, r.stderr
    vip = f"{k8s.vip}:6443"
    p, rep = lab_audit(k8s, *etcd, "--backup-dir", backups, "--kubeconfig",
                       k8s.kubeconfig("vip"), "--entry", vip, "--dns", dns.ref, host="m1")
    assert {s["status"] for s in rep["sources"].values()} == {"audited"}, rep["sources"]
    assert set(rep["sources"]) == {"etcd", "backup", "kubernetes", "entry"}
    assert rep["sources"]["kubernetes"]["detail"] == f"https://{vip}"
    assert f"{len(k8s.masters)} voting members" in only(rep, "etcd-members")["finding"]
    # the apiservers found behind default/kubernetes were dialled and checked too
    assert sorted(f["subject"] for f in findings(rep, "apiserver-san")) == \
        sorted(f"{k8s.address[m]}:6443" for m in k8s.masters)
    check_instances(k8s, rep)
    not_ok = [f for f in rep["findings"] if f["severity"] != "ok" and
              not f["check"].endswith("-instances")]
    assert not_ok == [], not_ok


@K8S
def test_one_source_down_others_audited(k8s, dns):
    healthy_dns(dns)
    # port 1 of the node host's loopback: nothing listens there
    p, rep = lab_audit(k8s, "--endpoints", "http://127.0.0.1:1", "--dial-timeout", "1s",
                       "--dns", dns.ref)
    assert p.returncode == EXIT_CRITICAL
    assert rep["sources"]["etcd"]["status"] == "unreachable"
    assert rep["sources"]["kubernetes"]["status"] == "audited"
    f = only(rep, "etcd")
    assert f["severity"] == "critical" and f["finding"].startswith("unreachable: ")
    assert only(rep, "dns-replicas")["severity"] == "ok"
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("kha audit: ")


@K8S
def test_config_file(k8s, dns, tmp_path):
    healthy_dns(dns)
    k8s.wait_masters_listed()
    m1 = f"{k8s.address['m1']}:6443"
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(f"kubeconfig: {k8s.kubeconfig('node')}\nentry: {NODE_ENTRY}\n"
                   f"apiserver: [{m1}]\ndns: {dns.ref}\ntimeout: 15s\noutput: json\n")
    p = k8s.kha("audit", "--config", cfg, timeout=240)
    assert p.returncode in (EXIT_OK, EXIT_DEGRADED), p.stderr
    rep = json.loads(p.stdout)
    check_schema(rep)
    assert only(rep, "dns-replicas")["subject"] == dns.ref
    # m1, named, is checked once; the others found behind default/kubernetes as well
    sev = {f["subject"]: f["severity"] for f in findings(rep, "apiserver-san")}
    assert sev == {f"{k8s.address[m]}:6443": "ok" for m in k8s.masters}, sev
    assert only(rep, "entry-san")["severity"] == "ok"
    # a flag wins over its key
    p = k8s.kha("audit", "--config", cfg, "-o", "table", timeout=240)
    assert p.stdout.startswith("CHECK")
    cfg.write_text("entry: nonsense\n")
    p = audit("--config", cfg)
    assert p.returncode == EXIT_CONFIG and "is not HOST:PORT" in p.stderr   # a bad file: 78


def test_nothing_reachable(tmp_path):
    p, rep = audit_json("--endpoints", f"http://127.0.0.1:{free_port()}", "--entry",
                        f"127.0.0.1:{free_port()}", "--dial-timeout", "1s")
    assert p.returncode == EXIT_UNAVAILABLE
    assert rep["sources"]["etcd"]["status"] == "unreachable"
    assert rep["sources"]["entry"]["status"] == "unreachable"
    assert len(p.stderr.splitlines()) == 2


@pytest.mark.parametrize("args, code, words", [
    ([], EXIT_USAGE, "nothing to audit"),
    (["--entry", "10.0.0.1"], EXIT_USAGE, "--entry: '10.0.0.1' is not HOST:PORT"),
    (["--entry", "fd00::1:6443"], EXIT_USAGE, "is not HOST:PORT"),
    (["--entry", "10.0.0.1:99999"], EXIT_USAGE, "is not HOST:PORT"),
    (["--apiserver", "10.0.0.1:6443"], EXIT_USAGE, "--apiserver needs --entry"),
    (["--entry", "10.0.0.1:6443", "-o", "yaml"], EXIT_USAGE, "--output"),
    (["--entry", "10.0.0.1:6443", "--timeout", "soon"], EXIT_USAGE, "--timeout"),
    (["--entry", "10.0.0.1:6443", "extra"], EXIT_USAGE, "unexpected argument"),
    (["--bogus"], EXIT_USAGE, "bad flag"),
    (["--entry", "10.0.0.1:6443", "--dns", "coredns"], EXIT_USAGE,
     "--dns: 'coredns' is not NAMESPACE/NAME"),
    (["--entry", "10.0.0.1:6443", "--dns", "kube-system/CoreDNS"], EXIT_USAGE,
     "is not NAMESPACE/NAME"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], EXIT_CONFIG, "/nonexistent/kubeconfig"),
    (["--endpoints", "https://127.0.0.1:2379", "--cacert", "/nonexistent/ca.crt"], EXIT_CONFIG,
     "--cacert /nonexistent/ca.crt"),
])
def test_bad_input(args, code, words):
    p = audit(*args)
    assert p.returncode == code, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert words in p.stderr


def test_unreadable_kubeconfig_content(tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters: [oops\n")
    p = audit("--kubeconfig", kc)
    assert p.returncode == EXIT_CONFIG
    assert len(p.stderr.splitlines()) == 1 and str(kc) in p.stderr


def test_help():
    p = audit("--help")
    assert p.returncode == 0
    assert "Usage: kha audit" in p.stdout and "Examples:" in p.stdout
    assert "--fix-out DIR" in p.stdout and "kha.audit.report/v1" in p.stdout
