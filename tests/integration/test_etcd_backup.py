# SPDX-License-Identifier: MIT
"""kha etcd backup against a real etcd member: backups every second, named after time and
revision, each one a verified snapshot; retention keeps exactly what the policy says (old days
included); etcd stopped -> retries, /healthz 503; etcd back -> backups resume, /healthz 200;
SIGTERM stops it; bad input gets clear errors."""
import calendar
import json
import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, kha_bin, run_kha
from kha_testlib.etcd import etcd_cluster  # noqa: F401
from kha_testlib.etcdops import fill_keys, poll, read_prefix, restore_and_serve, snapshot_status
from kha_testlib.process import Daemon, stop_all

NAME = re.compile(r"^etcd-(\d{8}T\d{6}Z)-rev(\d+)\.db(\.zst)?$")


class Backup(Daemon):
    """A kha etcd backup daemon run by the harness (stopped gracefully and checked)."""

    def __init__(self, args, tmp_path):
        self.port = free_port()
        super().__init__([kha_bin(), "etcd", "backup", *args,
                          "--metrics-addr", f"127.0.0.1:{self.port}"],
                         tmp_path / f"backup-{self.port}.log", name="kha etcd backup")

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, OSError):
            return None, ""

    def metric(self, name):
        status, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self, sig=signal.SIGTERM):
        self.stop_signal = sig
        return super().stop()


@pytest.fixture
def daemons(tmp_path):
    made = []

    def start(*args):
        d = Backup(args, tmp_path)
        made.append(d)
        return d
    yield start
    stop_all(made)


def backups(d):
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if NAME.match(f))


def test_backup_loop_retention_outage_and_health(etcd_cluster, daemons, tmp_path):
    c = etcd_cluster(members=1, tls=True)
    data = fill_keys(c, 300)
    d = str(tmp_path / "backups")
    # old backups of earlier days (copies of a real snapshot), and a killed save's leftover
    os.makedirs(d)
    seed = str(tmp_path / "seed.db")
    p = run_kha("etcd", "snapshot", "save", seed, *c.client_flags())
    assert p.returncode == 0, p.stderr
    old = []
    midnight = int(time.time()) // 86400 * 86400
    for days_ago in (1, 2, 2, 5, 9):
        t = time.gmtime(midnight - days_ago * 86400 + 12 * 3600 - len(old) * 60)
        name = time.strftime("etcd-%Y%m%dT%H%M%SZ", t) + f"-rev{len(old) + 1}.db"
        shutil.copy(seed, os.path.join(d, name))
        old.append(name)
    leftover = ".etcd-20200101T000000Z-rev0.db.tmp.Xyz123"
    open(os.path.join(d, leftover), "w").close()
    open(os.path.join(d, "README"), "w").close()

    began = int(time.time())  # the names and the metric have whole seconds
    b = daemons("--dir", d, "--every", "1s", "--keep-last", "3", "--keep-daily", "3",
                *c.client_flags())
    poll(lambda: (b.metric("kha_etcd_backup_success_total") or 0) >= 4, 30, "4 backups")
    # retention: the 3 newest (today) + the newest of each of the 2 most recent earlier days
    # that have backups (yesterday, 2 days ago); 5 and 9 days ago are gone
    # (polled: a new backup is renamed into place a moment before pruning runs)
    expect_old = {old[0], max(old[1:3])}

    def retained():
        names = backups(d)
        today = [n for n in names if n not in old]
        return len(today) == 3 and set(names) - set(today) == expect_old and today

    # pruning goes on while the test reads them (a backup a second, the oldest of today's
    # removed): each is read through a hard link taken right after the listing
    held = tmp_path / "held"

    def hold_retained():
        today = retained()
        if not today:
            return None
        shutil.rmtree(held, ignore_errors=True)
        os.makedirs(held)
        try:
            for n in today:
                os.link(os.path.join(d, n), held / n)
        except FileNotFoundError:
            return None  # pruned between the listing and the link: list again
        return today
    today = poll(hold_retained, 10, "retention to settle")
    assert "README" in os.listdir(d)
    # the killed save's leftover is gone (the save under way may have a file of its own)
    assert not os.path.exists(os.path.join(d, leftover))
    # each backup is a verified real snapshot whose name says its revision
    rev = snapshot_status(seed)["revision"]
    for n in today:
        m = NAME.match(n)
        assert int(m.group(2)) == rev
        stamp = calendar.timegm(time.strptime(m.group(1), "%Y%m%dT%H%M%SZ"))
        assert began <= stamp <= time.time(), (n, began)  # made by this daemon, now
        st = snapshot_status(str(held / n))
        assert st["revision"] == rev
    status, text = b.get("/healthz")
    assert status == 200 and text.startswith("ok"), text
    assert b.metric("kha_etcd_backup_last_revision") == rev
    assert b.metric("kha_etcd_backup_failures_total") == 0
    assert b.metric("kha_etcd_backup_last_size_bytes") > 0
    assert began <= b.metric("kha_etcd_backup_last_success_timestamp_seconds") <= time.time()

    # etcd down: retries (logged), never exits; /healthz fails after 2 intervals
    c.stop(0)
    poll(lambda: b.get("/healthz")[0] == 503, 20, "/healthz to fail")
    status, text = b.get("/healthz")
    assert "older than 2 intervals" in text and "connection refused" in text, text
    fails = b.metric("kha_etcd_backup_failures_total")
    assert fails >= 1 and b.metric("kha_etcd_backup_consecutive_failures") >= 1
    assert b.proc.poll() is None
    assert "backup failed" in b.log() and "retry_in=" in b.log()
    st = json.loads(b.get("/status")[1])
    assert not st["healthy"] and st["consecutive_failures"] >= 1

    # etcd back: backups resume, health recovers, the new data is in them
    c.start(0)
    after = fill_keys(c, 10, prefix="after/")
    poll(lambda: b.get("/healthz")[0] == 200, 30, "/healthz to recover")
    assert b.metric("kha_etcd_backup_consecutive_failures") == 0
    poll(lambda: int(NAME.match(backups(d)[-1]).group(2)) > rev, 20, "a backup of the new data")
    poll(retained, 10, "retention to settle")

    assert b.stop() == 0
    assert retained()
    assert "stopping" in b.log()
    # the newest backup, restored by etcd's own tool into a fresh member, holds every key
    e, url = restore_and_serve(tmp_path, os.path.join(d, backups(d)[-1]))
    with e:
        assert read_prefix(url, "k/") == data and read_prefix(url, "after/") == after


def test_backup_once_compressed_and_failover(etcd_cluster, tmp_path):
    c = etcd_cluster(members=3, tls=False)
    fill_keys(c, 100)
    d = str(tmp_path / "b")
    c.kill(0)  # the first endpoint is dead: the next one gives the snapshot
    p = run_kha("etcd", "backup", "--once", "--dir", d, "--compress", *c.client_flags(),
                "--metrics-addr", "off", "--dial-timeout", "1s")
    assert p.returncode == 0, p.stderr
    names = backups(d)
    assert len(names) == 1 and names[0].endswith(".db.zst"), names
    assert c.member(1).client_url in p.stderr or c.member(2).client_url in p.stderr
    v = run_kha("etcd", "snapshot", "verify", os.path.join(d, names[0]), "-o", "json")
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout)["snapshot"]["compressed"]
    # every endpoint dead: --once fails with the reason
    c.kill(1)
    c.kill(2)
    p = run_kha("etcd", "backup", "--once", "--dir", d, *c.client_flags(),
                "--metrics-addr", "off", "--dial-timeout", "500ms")
    assert p.returncode == 69, p.stderr
    assert "connection refused" in p.stderr
    # --once makes no retry, so it announces none (it used to log "retry_in=1s")
    assert "retry" not in p.stderr and "level=error msg=\"backup failed\"" in p.stderr, p.stderr
    assert backups(d) == names


def test_backup_bad_input(tmp_path):
    assert run_kha("etcd", "backup").returncode == 64
    p = run_kha("etcd", "backup", "--dir", str(tmp_path), "--every", "soon")
    assert p.returncode == 64 and "--every" in p.stderr
    p = run_kha("etcd", "backup", "--dir", str(tmp_path), "--keep-last", "0")
    assert p.returncode == 64 and "--keep-last" in p.stderr
    f = tmp_path / "file"
    f.write_text("x")
    p = run_kha("etcd", "backup", "--dir", str(f), "--once")
    assert p.returncode == 74 and "not a directory" in p.stderr, p.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dir: /nonexistent\nbogus: 1\n")
    p = run_kha("etcd", "backup", "--config", str(cfg))
    assert p.returncode == 78 and "bogus" in p.stderr, p.stderr
    p = run_kha("etcd", "backup", "--help")
    assert p.returncode == 0 and "kha elect" in p.stdout and "Example:" in p.stdout
    # the metrics port taken
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        p = run_kha("etcd", "backup", "--dir", str(tmp_path / "x"), "--metrics-addr",
                    f"127.0.0.1:{s.getsockname()[1]}", timeout=10)
        assert p.returncode == 78 and "--metrics-addr" in p.stderr, p.stderr
    finally:
        s.close()


def test_backup_config_file_and_sighup(etcd_cluster, daemons, tmp_path):
    c = etcd_cluster(members=1, tls=False)
    d = str(tmp_path / "b")
    cfg = tmp_path / "backup.yaml"
    cfg.write_text(f"dir: {d}\nevery: 1s\nkeep-last: 5\nkeep-daily: 0\n"
                   f"endpoints: {c.endpoints}\n")
    b = daemons("--config", str(cfg))
    poll(lambda: len(backups(d)) >= 4, 30, "4 backups")
    # fewer kept after a reload
    cfg.write_text(f"dir: {d}\nevery: 1s\nkeep-last: 2\nkeep-daily: 0\n"
                   f"endpoints: {c.endpoints}\n")
    b.proc.send_signal(signal.SIGHUP)
    poll(lambda: "config reloaded" in b.log(), 10, "the reload")
    poll(lambda: len(backups(d)) == 2, 20, "pruning to 2")
    assert b.stop(signal.SIGINT) == 0
