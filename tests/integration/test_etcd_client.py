# SPDX-License-Identifier: MIT
"""The etcd client end to end: kha-etcd-selftest (a test-only program) runs every client call
(KV, txn, leases, watch, members, maintenance, snapshot) against real clusters, and the results
are cross-checked with etcdctl."""
import os
import subprocess

from conftest import assert_no_sanitizer_report, free_port, tool_bin
from kha_testlib.etcd import ETCDCTL, etcd3, etcd_cluster  # noqa: F401 (fixtures)


def selftest(cluster, tmp_path, endpoints):
    snap = tmp_path / "kha.db"
    args = ["--endpoints", endpoints, *cluster.tls_flags(),
            "--peer-url", f"{'https' if cluster.tls else 'http'}://127.0.0.1:{free_port()}",
            "--snapshot", str(snap)]
    p = subprocess.run([tool_bin("kha-etcd-selftest"), *map(str, args)], capture_output=True,
                       text=True, timeout=90, stdin=subprocess.DEVNULL)
    # the failed step's message first: a step that fails may leave a report behind it
    assert p.returncode == 0, p.stdout + p.stderr
    assert_no_sanitizer_report(p.stderr, "kha-etcd-selftest")
    assert "FAIL" not in p.stdout
    prefix = p.stdout.splitlines()[0].split()[1]
    return p, prefix, snap


def check_snapshot(snap, tmp_path):
    # etcdctl reads it as a snapshot, and restore checks its appended sha256
    assert os.stat(snap).st_mode & 0o777 == 0o600
    st = subprocess.run([ETCDCTL, "snapshot", "status", str(snap), "-w", "json"],
                        capture_output=True, text=True, timeout=30,
                        env=dict(os.environ, ETCDCTL_API="3"))
    assert st.returncode == 0, st.stderr
    restore = subprocess.run([ETCDCTL, "snapshot", "restore", str(snap), "--data-dir",
                              str(tmp_path / "restored")], capture_output=True, text=True,
                             timeout=30, env=dict(os.environ, ETCDCTL_API="3"))
    assert restore.returncode == 0, restore.stderr


def test_client_calls_over_tls_with_failover(etcd3, tmp_path):
    c = etcd3
    # a dead endpoint first: every call must fail over to the next one
    p, prefix, snap = selftest(c, tmp_path, "https://127.0.0.1:1," + c.endpoints)
    for step in ("put", "get", "range", "txn", "delete", "lease", "watch", "watch deadline",
                 "watch cancel", "watch compacted", "member list", "member add/promote/remove",
                 "maintenance", "snapshot"):
        assert f"ok {step}\n" in p.stdout, p.stdout
    assert "endpoint https://127.0.0.1:1\n" not in p.stdout
    # what kha wrote, etcdctl reads
    got = c.etcdctl("get", prefix + "marker", "--print-value-only")
    assert got.stdout.strip() == "kha"
    members = c.etcdctl("member", "list").stdout
    assert members.count("started") == 3 and "unstarted" not in members
    check_snapshot(snap, tmp_path)


def test_client_calls_over_plain_http(etcd_cluster, tmp_path):
    c = etcd_cluster(members=1, tls=False)
    p, prefix, snap = selftest(c, tmp_path, c.endpoints)
    assert c.etcdctl("get", prefix + "marker", "--print-value-only").stdout.strip() == "kha"
    check_snapshot(snap, tmp_path)
