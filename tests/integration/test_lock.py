# SPDX-License-Identifier: MIT
"""kha lock on a real 3-member etcd cluster: N slots never exceeded (flock detector and
intervals), first come first served, a crashed holder's slot freed after the TTL, --status,
the safety gates (window, backup, etcd health), a slot lost while COMMAND runs, bad input."""
import json
import os
import signal
import time

import pytest

from conftest import run_kha
from kha_testlib.process import deadline
from kha_testlib.elect import Procs, Recorder, pid_alive, wait_until
from kha_testlib.etcd import etcd3, etcd_cluster  # noqa: F401 (fixtures)
from kha_testlib.partition import Partition, netns  # noqa: F401 (fixture)


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def lock_args(cluster, name, ident, rec, *extra, slots=1, ttl="2s", hold=0.0, gate=None,
              flags=None):
    return ["lock", *(flags or cluster.client_flags()), "--lock", name, "--slots", str(slots),
            "--id", ident, "--ttl", ttl, "--grace", "1s", *extra, "--",
            *rec.command(hold, gate)]


def status(cluster, name, *extra):
    p = run_kha("lock", "status", "--lock", name, *cluster.client_flags(), "-o", "json",
                *extra)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_five_contenders_two_slots_first_come_first_served(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec", slots=2)
    # the children hold their slots until the test opens the gate, so that every contender has
    # queued before anyone leaves (a fixed hold time lets a holder finish before a contender
    # slow to start on a loaded machine has even queued: then the order tested is the
    # machine's). The TTL is not what this test is about: long enough that no lease of a kha
    # starved by the load runs out.
    gate = tmp_path / "gate"
    khas = []
    for i in range(5):
        khas.append(procs.start(lock_args(etcd3, "upgrade", f"n{i}", rec, slots=2, ttl="10s",
                                          gate=gate), f"n{i}"))
        # arrival order is the order the keys were created: the next one starts once this
        # one's key is there
        want = [f"n{k}" for k in range(i + 1)]
        wait_until(lambda: [c["id"] for c in status(etcd3, "upgrade")["contenders"]] == want,
                   deadline(10), f"n{i} to queue", diag=procs.logs)
    # the first two keys hold (both children run at once), the three others wait in order
    wait_until(lambda: len(rec.starts()) == 2, deadline(5), "the two holders' children",
               diag=procs.logs)
    st = status(etcd3, "upgrade")
    assert [c["state"] for c in st["contenders"]] == ["holder"] * 2 + ["waiter"] * 3, st
    assert sorted(e["id"] for e in rec.running()) == ["n0", "n1"], rec.dump()
    # the fencing token is each key's create revision (docs/lock.md): in arrival order
    tokens = [c["fencing_token"] for c in st["contenders"]]
    assert tokens == sorted(tokens) and len(set(tokens)) == 5, tokens
    gate.touch()
    for k in khas:
        assert k.wait(deadline(30)) == 0, k.log()
    rec.assert_safe(max_concurrent=2)
    iv = {i[2]: i for i in rec.intervals()}
    assert [int(iv[f"n{i}"][4]) for i in range(5)] == tokens
    # first come, first served with 2 slots: n<j> is among the first two keys (so may start)
    # only once j-1 of those before it are done. Two granted at the same moment (n2 and n3 as
    # n0 and n1 end together) may start their children in either order.
    for j in range(2, 5):
        start = iv[f"n{j}"][0]
        done = sum(1 for i in range(j) if iv[f"n{i}"][1] is not None and
                   iv[f"n{i}"][1] < start)
        assert done >= j - 1, (f"n{j} started with only {done} of n0..n{j - 1} done",
                               rec.dump())
    # every slot was released
    assert status(etcd3, "upgrade")["contenders"] == []


def test_crashed_holder_frees_its_slot_after_the_ttl(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    from conftest import free_port
    port = free_port()
    h = procs.start(lock_args(etcd3, "reboot", "holder", rec, "--metrics-addr",
                              f"127.0.0.1:{port}"), "holder")
    wait_until(lambda: len(rec.starts()) == 1, 15, "the holder to run", diag=procs.logs)
    w = procs.start(lock_args(etcd3, "reboot", "waiter", rec), "waiter")
    wait_until(lambda: len(status(etcd3, "reboot")["contenders"]) == 2, 10, "the waiter", diag=procs.logs)
    st = status(etcd3, "reboot")
    assert [c["id"] for c in st["contenders"]] == ["holder", "waiter"]
    assert [c["state"] for c in st["contenders"]] == ["holder", "waiter"]
    assert st["holders"] == 1
    for c in st["contenders"]:
        assert 0 <= c["ttl_seconds"] <= 2 and c["since"].endswith("Z") and c["slots"] == 1
        # the fencing token is the key's create revision: the waiter's is the larger
        assert c["fencing_token"] == c["create_revision"] > 0
    assert st["contenders"][0]["fencing_token"] < st["contenders"][1]["fencing_token"]
    # the old --status flag is the same report
    table = run_kha("lock", "--status", "--lock", "reboot", *etcd3.client_flags())
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["POS", "STATE", "ID", "TOKEN", "SINCE", "TTL", "KEY"]
    assert lines[1].split()[:4] == ["1", "holder", "holder",
                                    str(st["contenders"][0]["fencing_token"])]
    assert lines[2].split()[:3] == ["2", "waiter", "waiter"]

    # lock words in the logs and the metrics: a waiter waits for a holder
    assert "msg=waiting lock=reboot id=waiter holder=holder" in w.log(), w.log()
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    assert "\nkha_lock_is_holder{" in metrics and "kha_lock_is_leader{" in metrics
    held = [line for line in metrics.splitlines() if line.startswith("kha_lock_is_holder{")]
    assert len(held) == 1 and held[0].endswith(" 1"), held

    child = rec.starts()[0]
    t_kill = time.monotonic_ns()
    h.signal(signal.SIGKILL)
    wait_until(lambda: not pid_alive(child["pid"]), 5, "the crashed holder's child to die", diag=procs.logs)
    rec.note_dead(child["pid"])
    wait_until(lambda: len(rec.starts()) == 2, 8, "the waiter to get the slot", diag=procs.logs)
    took = (rec.starts()[1]["t"] - t_kill) / 1e9
    assert took <= deadline(2), f"the slot was freed {took:.2f}s after the crash (TTL 2s)"
    rec.assert_safe()
    w.signal(signal.SIGTERM)
    assert w.wait(10) == 0
    assert "msg=released lock=reboot id=waiter" in w.log()
    assert status(etcd3, "reboot")["contenders"] == []


def test_window_gate_holds_the_slot_without_running(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    hour = (time.localtime().tm_hour + 2) % 24
    closed = f"{hour:02d}:00-{hour:02d}:30"
    k = procs.start(lock_args(etcd3, "win", "a", rec, "--window", closed, "--gate-interval",
                              "200ms"), "a")
    wait_until(lambda: "outside the maintenance window" in k.log(), 10, "the closed gate", diag=procs.logs)
    assert rec.starts() == []
    st = status(etcd3, "win")
    assert [c["state"] for c in st["contenders"]] == ["holder"]
    k.signal(signal.SIGTERM)
    assert k.wait(10) == 0
    assert rec.starts() == []
    # an open window lets it run
    k = procs.start(lock_args(etcd3, "win", "b", rec, "--window", "00:00-24:00", hold=0.1),
                    "b")
    assert k.wait(15) == 0
    assert [e["id"] for e in rec.starts()] == ["b"]


def test_backup_gate_waits_for_a_fresh_verified_snapshot(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    backups = tmp_path / "backups"
    backups.mkdir()
    # a real snapshot, but two days old
    old = backups / "snapshot-old.db"
    etcd3.etcdctl("snapshot", "save", str(old), members=[0])
    two_days = time.time() - 2 * 86400
    os.utime(old, (two_days, two_days))
    # fresh files that are not snapshots: empty, and garbage
    (backups / "empty.db").write_bytes(b"")
    (backups / "garbage.db").write_bytes(b"x" * 4096)
    k = procs.start(lock_args(etcd3, "bk", "a", rec, "--require-backup-within", "24h",
                              str(backups), "--gate-interval", "200ms", hold=0.1), "a")
    wait_until(lambda: "no verified backup newer than 24h" in k.log(), 10,
               "the closed backup gate", diag=procs.logs)
    assert rec.starts() == []
    etcd3.etcdctl("snapshot", "save", str(backups / "snapshot-new.db"), members=[1])
    assert k.wait(15) == 0, k.log()
    assert len(rec.starts()) == 1


def test_etcd_health_gate(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    etcd3.kill(2)
    etcd3.wait_healthy()   # the other two agree on a leader
    flags = ["--endpoints", ",".join(m.client_url for m in etcd3.members[:2]),
             *etcd3.tls_flags()]
    k = procs.start(lock_args(etcd3, "hl", "a", rec, "--require-etcd-healthy",
                              "--gate-interval", "300ms", "--dial-timeout", "300ms",
                              hold=0.1, flags=flags), "a")
    wait_until(lambda: "etcd is not healthy: 2/3 members up" in k.log(), 15, "the closed gate", diag=procs.logs)
    assert rec.starts() == []
    etcd3.start(2)
    assert k.wait(30) == 0, k.log()
    assert len(rec.starts()) == 1


def test_slot_lost_while_running_stops_command_and_exits_69(netns, etcd_cluster, procs,
                                                             tmp_path):
    """The holder reaches etcd only through 127.0.0.2, which nftables then drops for real
    (kha_testlib.partition): its keep-alives are lost, the slot with them."""
    etcd3 = etcd_cluster(members=3, tls=True, aliases=("127.0.0.2",))
    rec = Recorder(tmp_path / "rec")
    with Partition("127.0.0.2") as partition:
        flags = ["--endpoints", etcd3.member(0).alias_urls[0], *etcd3.tls_flags(),
                 "--dial-timeout", "500ms"]
        k = procs.start(lock_args(etcd3, "lost", "a", rec, ttl="3s", flags=flags), "a")
        wait_until(lambda: len(rec.starts()) == 1, 15, "the holder to run", diag=procs.logs)
        partition.cut()
        assert k.wait(15) == 69, k.log()
        assert any(e["ev"] == "stop" for e in rec.events())
        assert "slot was lost" in k.log()


def test_bad_input(etcd3, tmp_path):
    marker = tmp_path / "ran"
    cmd = ["--", "sh", "-c", f"touch {marker}"]
    flags = etcd3.client_flags()
    cases = [
        (["lock", *flags, *cmd], 64, "--lock is required"),
        (["lock", *flags, "--lock", "x"], 64, "no COMMAND"),
        (["lock", *flags, "--lock", "x", "--slots", "0", *cmd], 64, "--slots"),
        (["lock", *flags, "--lock", "x", "--window", "Mon 25:00-26:00", *cmd], 64, "--window"),
        (["lock", *flags, "--lock", "x", "--require-backup-within", "24h"], 64, "DURATION DIR"),
        (["lock", *flags, "--lock", "x", "--nope", *cmd], 64, "bad flag"),
        (["lock", *flags, "--lock", "x", "--ttl", "2562047h", *cmd], 64,
         "--ttl: at most 9000000000s"),
        (["lock", "--endpoints", "https://127.0.0.1:1", *etcd3.tls_flags(), "--lock", "x",
          "--dial-timeout", "300ms", *cmd], 69, "etcd"),
        (["lock", "serve", *flags, "--lock", "x", "--listen", "nowhere"], 64, "--listen"),
        # the word users type first is a subcommand, not COMMAND
        (["lock", "status", *flags], 64, "kha lock status: --lock is required "
                                         "(run 'kha lock status --help')"),
        (["lock", "status", *flags, "--lock", "x", "extra"], 64, "unexpected argument 'extra'"),
    ]
    for args, code, text in cases:
        p = run_kha(*args, timeout=30)
        assert p.returncode == code, f"{args}: {p.returncode} {p.stderr}"
        assert text in p.stderr, f"{args}: {p.stderr}"
    assert not marker.exists()
    # an unreachable cluster with -o json: the error is a JSON document on stdout
    p = run_kha("lock", "status", "--lock", "x", "--endpoints", "127.0.0.1:1", "-o", "json")
    err = json.loads(p.stdout)
    assert p.returncode == 69 and err == {"verdict": "error", "exit_code": 69,
                                          "error": err["error"], "command": "kha lock status"}
    assert "127.0.0.1:1" in err["error"] and "kha lock status: etcd" in p.stderr
    # each subcommand has its own help
    assert run_kha("lock", "status", "--help").stdout.startswith("Usage: kha lock status")
    assert run_kha("lock", "serve", "--help").stdout.startswith("Usage: kha lock serve")
    assert run_kha("elect", "status", "--help").stdout.startswith("Usage: kha elect status")


def test_sighup_reloads_the_config_and_still_reaches_command(etcd3, procs, tmp_path):
    """kha lock reads its --config again on SIGHUP (log settings apply at once; a changed lock
    setting is named as needing a restart) and still passes SIGHUP on to COMMAND."""
    cfg = tmp_path / "lock.yaml"
    cfg.write_text("log-level: info\nslots: 1\n")
    marker, ready = tmp_path / "hups", tmp_path / "ready"
    script = (f"trap 'echo hup >> {marker}' HUP; touch {ready}; "
              "while :; do sleep 0.05; done")
    k = procs.start(["lock", *etcd3.client_flags(), "--config", cfg, "--lock", "hup",
                     "--id", "a", "--ttl", "2s", "--", "sh", "-c", script], "a")
    wait_until(ready.exists, 10, "COMMAND running", diag=procs.logs)
    cfg.write_text("log-format: json\nslots: 2\n")
    k.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in k.log() and marker.exists(), 10,
               "kha reloaded and COMMAND got SIGHUP", diag=procs.logs)
    assert 'msg="configuration keys not applied until a restart" keys=lock' in k.log()
    # JSON from the reload on
    lines = [json.loads(x) for x in k.log().splitlines() if x.startswith("{")]
    assert lines and lines[0]["msg"] == "configuration reloaded", lines
    k.signal(signal.SIGTERM)
    assert k.wait(10) == 0
