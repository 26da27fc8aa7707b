# SPDX-License-Identifier: MIT
"""kha audit end to end: real etcd members (1 member, 3 members, one stopped), real snapshots in
a backup directory, the stand-in Kubernetes API (kha_testlib/kubeapi.py) serving real-shaped
EndpointSlices, Deployments, PodDisruptionBudgets, Pods and Leases, and real TLS servers whose
certificates do or do not carry the entry address; the JSON schema, --fix-out, exit codes and
bad input."""
import datetime
import json
import os
import shlex
import subprocess

import pytest
import yaml

from conftest import free_port, run_kha
from kha_testlib.etcd import etcd3, etcd_cluster  # noqa: F401 (fixtures)
from kha_testlib.kubeapi import KubeAPI, TestPKI

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

def microtime(delta_s=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(api, name, holder, renewed_ago_s=1.0, duration=15):
    api.put_lease("kube-system", name, {
        "holderIdentity": holder, "leaseDurationSeconds": duration,
        "acquireTime": microtime(-3600), "renewTime": microtime(-renewed_ago_s),
        "leaseTransitions": 2})


def healthy_cluster(api):
    """What a highly available kubeadm cluster looks like through the API."""
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


def test_kube_healthy_cluster_is_ok(kubeapi):
    # stand-in: Deployments, PDBs, Pods and Leases in shapes chosen per case (the real-API audit runs in test_k8s_lab.py)
    api = kubeapi
    healthy_cluster(api)
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    assert p.returncode == EXIT_OK, (p.stderr, rep)
    sev = severities(rep)
    for check in ("apiserver-endpoints", "kubeconfig-server", "dns-replicas", "dns-spread",
                  "dns-pdb", "controller-manager-leader", "controller-manager-instances",
                  "scheduler-leader", "scheduler-instances"):
        assert sev[check] == "ok", (check, rep["findings"])
    assert "3 apiservers" in only(rep, "apiserver-endpoints")["finding"]
    assert "3 instances (3 ready)" in only(rep, "scheduler-instances")["finding"]
    assert "m1_kube-scheduler" in only(rep, "scheduler-leader")["finding"]
    assert rep["sources"]["kubernetes"] == {"status": "audited", "detail": api.url}
    # reads only
    assert {r["method"] for r in api.requests} == {"GET"}
    paths = {r["path"] for r in api.requests}
    assert "/apis/apps/v1/namespaces/kube-system/deployments/coredns" in paths
    assert "/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets" in paths
    assert "/api/v1/namespaces/kube-system/pods" in paths


def test_deployed_rbac_covers_every_request(kubeapi):
    # stand-in: the server's request log lists every request the audit made
    """deploy/kha-audit.yaml's ClusterRole grants exactly what a full audit reads (GET of
    objects and lists): a request outside it would be a skipped check in a real cluster."""
    import re
    healthy_cluster(kubeapi)
    p, _ = audit_json("--kubeconfig", kubeapi.kubeconfig)
    assert p.returncode == EXIT_OK, p.stderr
    manifest = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "kha-audit.yaml")
    with open(manifest) as f:
        docs = list(yaml.safe_load_all(f))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {(g, r) for rule in role["rules"] if set(rule["verbs"]) >= {"get", "list"}
               for g in rule["apiGroups"] for r in rule["resources"]}
    used = set()
    for r in kubeapi.requests:
        m = re.match(r"^/(?:api/v1|apis/([^/]+)/[^/]+)(?:/namespaces/[^/]+)?/([a-z]+)(?:/[^/]+)?$",
                     r["path"])
        assert m, r["path"]
        used.add((m.group(1) or "", m.group(2)))
    assert used and used <= granted, used - granted
    assert {x for _, x in granted} == {x for _, x in used}, "the role grants more than is read"


def test_kube_single_points_of_failure(kubeapi, tmp_path):
    # stand-in: a stale Lease, one controller instance and one-node DNS at once, which the real control plane cannot be put into on demand
    api = kubeapi
    api.set_slice("kubernetes", ["10.0.0.1"])
    api.put_deployment("coredns", replicas=1, anti_affinity=None)
    api.put_pod("coredns-5d78c9869d-a", {"k8s-app": "kube-dns"}, "m1")
    lease(api, "kube-controller-manager", "m1_abc", renewed_ago_s=300)   # stale
    api.put_pod("kube-controller-manager-m1", {"component": "kube-controller-manager"}, "m1")
    lease(api, "kube-scheduler", "m1_def")
    api.put_pod("kube-scheduler-m1", {"component": "kube-scheduler"}, "m1")
    api.put_pod("kube-scheduler-m2", {"component": "kube-scheduler"}, "m2", ready=False)
    fixes = tmp_path / "fixes"
    p, rep = audit_json("--kubeconfig", api.kubeconfig, "--fix-out", fixes)
    assert p.returncode == EXIT_CRITICAL, p.stderr
    sev = severities(rep)
    assert sev["apiserver-endpoints"] == "critical"
    assert sev["dns-replicas"] == "critical"
    assert sev["dns-spread"] == "warning"
    assert sev["dns-pdb"] == "warning"
    assert sev["controller-manager-leader"] == "critical"
    assert "stopped" in only(rep, "controller-manager-leader")["finding"]
    assert sev["controller-manager-instances"] == "critical"
    assert sev["scheduler-leader"] == "ok"
    assert sev["scheduler-instances"] == "warning"   # the standby is not ready

    scale = only(rep, "dns-replicas")
    assert scale["fix"] == "kubectl -n kube-system scale deployment/coredns --replicas=2"
    # --fix-out wrote every fix that comes as a file, as the report names them
    written = sorted(os.listdir(fixes))
    assert written == sorted(f["fix_file"] for f in rep["findings"] if f["fix_file"])
    assert {"dns-scale.sh", "dns-anti-affinity.yaml", "dns-pdb.yaml"} <= set(written)
    pdb = yaml.safe_load((fixes / "dns-pdb.yaml").read_text())
    assert pdb == {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": "coredns", "namespace": "kube-system"},
                   "spec": {"minAvailable": 1,
                            "selector": {"matchLabels": {"k8s-app": "kube-dns"}}}}
    patch = yaml.safe_load((fixes / "dns-anti-affinity.yaml").read_text())
    term = patch["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname",
                                       "labelSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    assert "--replicas=2" in (fixes / "dns-scale.sh").read_text()

    # the PDB the fix proposes, applied, satisfies the audit (and so do 2 spread replicas)
    api.put_object({"kind": "PodDisruptionBudget", **pdb})
    api.put_deployment("coredns", replicas=2)
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    sev = severities(rep)
    assert sev["dns-pdb"] == "ok" and sev["dns-replicas"] == "ok"


def test_kube_dns_found_by_label_and_on_one_node(kubeapi):
    # stand-in: DNS pods bound to one node with chosen labels, without a scheduler deciding
    api = kubeapi
    healthy_cluster(api)
    api.delete_object("Deployment", "kube-system", "coredns")
    api.put_deployment("kube-dns", replicas=2, anti_affinity=None, spread=True)
    api.put_pod("coredns-5d78c9869d-b", {"k8s-app": "kube-dns"}, "worker-1")  # both on one node
    api.put_pdb("coredns", {"k8s-app": "kube-dns"}, max_unavailable=0, disruptions_allowed=0)
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    assert p.returncode == EXIT_DEGRADED, rep
    assert only(rep, "dns-replicas")["subject"] == "kube-system/kube-dns"
    spread = findings(rep, "dns-spread")
    assert [f["severity"] for f in spread] == ["ok", "warning"]
    assert "worker-1" in spread[1]["finding"]
    f = only(rep, "dns-pdb")
    assert f["severity"] == "warning" and "allows no disruption" in f["finding"]

    # no cluster DNS at all
    api.delete_object("Deployment", "kube-system", "kube-dns")
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    assert "no cluster DNS Deployment" in only(rep, "dns-replicas")["finding"]


def test_kubeconfig_pointing_at_one_master(kubeapi, tmp_path):
    # stand-in: default/kubernetes listing chosen addresses (the real reconciler lists only live apiservers)
    api = kubeapi
    healthy_cluster(api)
    # the apiserver registers 127.0.0.1, the very address the kubeconfig names
    # (loopback only: with --entry, the audit dials the apiservers it finds)
    api.set_slice("kubernetes", ["127.0.0.1", "127.0.0.2", "127.0.0.3"], port=api.port)
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    assert p.returncode == EXIT_DEGRADED
    f = only(rep, "kubeconfig-server")
    assert f["severity"] == "warning" and "single master" in f["finding"]

    # with the entry given, a server that is not the entry is a warning with the exact fix
    entry = f"127.0.0.2:{free_port()}"
    p, rep = audit_json("--kubeconfig", api.kubeconfig, "--entry", entry)
    f = only(rep, "kubeconfig-server")
    assert f["severity"] == "warning"
    assert f"--server=https://{entry}" in f["fix"]
    assert f["fix_file"] == "kubeconfig-server.sh"

    # a kubeconfig through the entry (here: the API's own address)
    p, rep = audit_json("--kubeconfig", api.kubeconfig, "--entry", f"127.0.0.1:{api.port}")
    assert only(rep, "kubeconfig-server")["severity"] == "ok"


def test_kube_unreachable_and_forbidden(kubeapi, tmp_path):
    # stand-in: 403 on chosen paths and a server that goes away between requests
    api = kubeapi
    healthy_cluster(api)
    port = free_port()
    kc = api.write_kubeconfig(tmp_path / "down.kubeconfig", server=f"https://127.0.0.1:{port}")
    p, rep = audit_json("--kubeconfig", kc)
    assert p.returncode == EXIT_UNAVAILABLE   # the only source given did not answer
    assert rep["sources"]["kubernetes"]["status"] == "unreachable"
    assert only(rep, "kubernetes")["severity"] == "critical"
    assert p.stderr.count("\n") == 1 and "kha audit:" in p.stderr

    # the API answers, but not this object: that check is skipped, the rest audited
    api.fail_next_requests(1, 403, "Forbidden")
    p, rep = audit_json("--kubeconfig", api.kubeconfig)
    assert only(rep, "apiserver-endpoints")["severity"] == "skipped"
    assert only(rep, "dns-replicas")["severity"] == "ok"
    assert p.returncode == EXIT_OK


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


def test_all_sources_together(etcd3, kubeapi, tmp_path):
    # stand-in: a Kubernetes source on loopback beside a real etcd and TLS servers (the real control plane needs namespaces)
    api = kubeapi
    healthy_cluster(api)
    backups = tmp_path / "b"
    backups.mkdir()
    snapshot(etcd3, str(backups / "etcd-now.db"))
    with KubeAPI(TestPKI(tmp_path / "m2")) as m2, KubeAPI(TestPKI(tmp_path / "m3")) as m3:
        # three apiservers on loopback: the API itself (the entry) and two more
        for name, port in (("kubernetes", api.port), ("kubernetes-m2", m2.port),
                           ("kubernetes-m3", m3.port)):
            api.set_slice(name, ["127.0.0.1"], port=port)
        p, rep = audit_json(*etcd3.client_flags(), "--backup-dir", backups, "--kubeconfig",
                            api.kubeconfig, "--entry", f"127.0.0.1:{api.port}")
    assert p.returncode == EXIT_OK, (p.stderr, rep["findings"])
    # the two apiservers found behind default/kubernetes were dialled and checked too
    assert sorted(f["subject"] for f in findings(rep, "apiserver-san")) == \
        sorted([f"127.0.0.1:{m2.port}", f"127.0.0.1:{m3.port}"])
    assert rep["verdict"] == "ok" and rep["counts"]["skipped"] == 0
    assert {s["status"] for s in rep["sources"].values()} == {"audited"}
    assert set(rep["sources"]) == {"etcd", "backup", "kubernetes", "entry"}


def test_one_source_down_others_audited(kubeapi, tmp_path):
    # stand-in: an API that stops while etcd stays
    api = kubeapi
    healthy_cluster(api)
    p, rep = audit_json("--endpoints", f"http://127.0.0.1:{free_port()}", "--dial-timeout",
                        "1s", "--kubeconfig", api.kubeconfig)
    assert p.returncode == EXIT_CRITICAL
    assert rep["sources"]["etcd"]["status"] == "unreachable"
    assert rep["sources"]["kubernetes"]["status"] == "audited"
    f = only(rep, "etcd")
    assert f["severity"] == "critical" and f["finding"].startswith("unreachable: ")
    assert only(rep, "dns-replicas")["severity"] == "ok"
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith("kha audit: ")


def test_config_file(kubeapi, tmp_path):
    # stand-in: only the --config handling is under test; a loopback API answers
    api = kubeapi
    healthy_cluster(api)
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(f"kubeconfig: {api.kubeconfig}\nentry: 127.0.0.1:{api.port}\n"
                   f"apiserver: [127.0.0.1:{api.port}]\noutput: json\n")
    p = audit("--config", cfg)
    assert p.returncode == EXIT_OK, p.stderr
    rep = json.loads(p.stdout)
    check_schema(rep)
    sev = {f["subject"]: f["severity"] for f in findings(rep, "apiserver-san")}
    assert sev[f"127.0.0.1:{api.port}"] == "ok"
    # the apiservers found behind default/kubernetes do not answer here: skipped, not findings
    assert sorted(k for k, v in sev.items() if v == "skipped") == \
        [f"127.0.0.{i}:6443" for i in (11, 12, 13)]
    # a flag wins over its key
    p = audit("--config", cfg, "-o", "table")
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
