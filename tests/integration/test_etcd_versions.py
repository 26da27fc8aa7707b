# SPDX-License-Identifier: MIT
"""kha etcd on both etcd release lines the project supports: Debian's 3.4 and the pinned 3.6
(scripts/k8s.sh builds etcd, etcdctl and etcdutl 3.6; KHA_K8S_BIN). The same commands against a
real 3-member TLS cluster of each; where the versions differ (restore with etcdutl and its
revision bump, learners, the version reported), the test says what each must do. The matrix is
in docs/etcd.md ("etcd versions").
"""
import json
import os
import subprocess
import time

import pytest

import kha_testlib.etcd as etcdlib
from conftest import run_kha
from kha_testlib.etcd import etcd_cluster, etcd_version  # noqa: F401 (fixtures)

@pytest.fixture
def cluster(etcd_version, etcd_cluster):
    return etcd_cluster(members=3, tls=True)


def kha_etcd(c, *args, timeout=60):
    return run_kha("etcd", *args, *c.client_flags(), timeout=timeout, env=dict(os.environ))


def test_status_reports_the_running_version(cluster, etcd_version):
    r = kha_etcd(cluster, "status", "-o", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    versions = {m["version"] for m in report["members"]}
    assert len(versions) == 1 and versions.pop().startswith(etcd_version + "."), report


def test_member_list_check_and_rolling_defrag(cluster, etcd_version):
    for i in range(20):
        cluster.etcdctl("put", f"k{i}", "v" * 100)
    r = kha_etcd(cluster, "member", "list", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["members"]) == 3
    r = kha_etcd(cluster, "check", "consistency")
    assert r.returncode == 0, r.stdout + r.stderr
    r = kha_etcd(cluster, "defrag", "--rolling", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_snapshot_save_restore_serves_the_data(cluster, etcd_version, tmp_path):
    for i in range(10):
        cluster.etcdctl("put", f"key{i}", f"value{i}")
    rev = int(json.loads(cluster.etcdctl("get", "key9", "-w", "json").stdout)["header"]
              ["revision"])
    snap = tmp_path / "snap.db"
    r = kha_etcd(cluster, "snapshot", "save", snap)
    assert r.returncode == 0, r.stderr
    data = tmp_path / "restored"
    peer = "http://127.0.0.1:1"  # never dialled: a one-member cluster
    r = run_kha("etcd", "snapshot", "restore", snap, "--data-dir", data, "--name", "r1",
                "--initial-cluster", f"r1={peer}", "--initial-advertise-peer-urls", peer,
                "--initial-cluster-token", "restored", "-o", "json", timeout=120,
                env=dict(os.environ))
    if etcd_version == "3.4":
        # etcdctl 3.4 cannot bump the revision: kha restores and says so (docs give the
        # manual procedure for Kubernetes)
        assert r.returncode == 0, r.stderr
        assert "etcdctl" in r.stdout + r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert "etcdutl" in r.stdout
    # the restored member serves the data
    port = etcdlib._free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([etcdlib.ETCD, "--name", "r1", "--data-dir", data,
                             "--listen-client-urls", url, "--advertise-client-urls", url,
                             "--listen-peer-urls", f"http://127.0.0.1:{etcdlib._free_port()}",
                             "--log-outputs", "stderr"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def get():
            p = subprocess.run([etcdlib.ETCDCTL, "--endpoints", url, "get", "key9", "-w",
                                "json"], capture_output=True, text=True, timeout=10)
            return json.loads(p.stdout) if p.returncode == 0 else None
        got = None
        deadline = time.monotonic() + 30
        while got is None and time.monotonic() < deadline:
            got = get()
            time.sleep(0.2)
        assert got and got["kvs"][0]["value"], got
        restored_rev = int(got["header"]["revision"])
        if etcd_version == "3.6":
            # etcdutl --bump-revision --mark-compacted: watchers re-list instead of waiting
            assert restored_rev >= rev + 1_000_000_000, (rev, restored_rev)
            # and the revisions before the bump are compacted away (a watch cannot go back)
            old = subprocess.run([etcdlib.ETCDCTL, "--endpoints", url, "get", "key9",
                                  "--rev", str(rev)], capture_output=True, text=True, timeout=10)
            assert old.returncode != 0 and "compacted" in old.stderr, old.stderr
        else:
            assert restored_rev == rev, (rev, restored_rev)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_kha_certs_pki_is_accepted_by_etcd_and_etcdctl(etcd_version, kha, tmp_path):
    """A CA, a member certificate (serverAuth + clientAuth) and a client certificate from kha
    certs: the real etcd serves TLS with client-certificate auth on them, etcdctl and kha talk
    to it."""
    pki = tmp_path / "pki"
    assert kha("certs", "ca", "--dir", pki).returncode == 0
    r = kha("certs", "issue", "--ca-dir", pki, "--name", "member", "--san", "127.0.0.1",
            "--server", "--client", "--out-dir", pki)
    assert r.returncode == 0, r.stderr
    r = kha("certs", "issue", "--ca-dir", pki, "--name", "client", "--client", "--out-dir", pki)
    assert r.returncode == 0, r.stderr
    port, peer = etcdlib._free_port(), etcdlib._free_port()
    url = f"https://127.0.0.1:{port}"
    proc = subprocess.Popen([etcdlib.ETCD, "--name", "m", "--data-dir", tmp_path / "data",
                             "--listen-client-urls", url, "--advertise-client-urls", url,
                             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-cluster", f"m=http://127.0.0.1:{peer}",
                             "--cert-file", pki / "member.crt", "--key-file", pki / "member.key",
                             "--trusted-ca-file", pki / "ca.crt", "--client-cert-auth",
                             "--log-outputs", "stderr"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        flags = ["--endpoints", url, "--cacert", pki / "ca.crt", "--cert", pki / "client.crt",
                 "--key", pki / "client.key"]
        deadline = time.monotonic() + 30
        while True:
            p = subprocess.run([etcdlib.ETCDCTL, *map(str, flags), "put", "k", "v"],
                               capture_output=True, text=True, timeout=15)
            if p.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert p.returncode == 0, p.stderr
        r = kha("etcd", "status", *flags, "-o", "json")
        # answered over kha's TLS with kha's client certificate; one member alone is
        # "degraded" by design (exit 1: one more failure loses the cluster)
        assert r.returncode == 1, r.stderr
        assert json.loads(r.stdout)["members"][0]["errors"] == []
        # without the client certificate the member refuses
        p = subprocess.run([etcdlib.ETCDCTL, "--endpoints", url, "--cacert", str(pki / "ca.crt"),
                            "--dial-timeout", "2s", "--command-timeout", "3s", "get", "k"],
                           capture_output=True, text=True, timeout=15)
        assert p.returncode != 0
    finally:
        proc.kill()
        proc.wait(timeout=10)
