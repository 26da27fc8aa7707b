# SPDX-License-Identifier: MIT
"""kha lab against real etcd members (TLS for clients and peers, client certificates), the
node's kha proxy and each master's kha elect + kha etcd backup: up, etcdctl through DIR/env and
through the entry point, status verdicts, stop/start/freeze/thaw of masters (all their
processes), down, refusals, failures. The drill is in test_lab_drill.py. Every test's finalizer
runs `kha lab down` and, as a last resort, kills the recorded PIDs and their descendants."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import assert_no_sanitizer_report, kha_bin, run_kha
from kha_testlib.lab import (assert_logs_clean, etcdctl, lab_cleanup, lab_pids, master_pids,
                             proc_alive, proc_state, read_env, read_state, recorded_procs,
                             wait_for)
from kha_testlib.process import deadline


@pytest.fixture
def lab_dir(tmp_path):
    d = str(tmp_path / "lab")
    yield d
    lab_cleanup(d)


def up(lab_dir, *extra, timeout=90):
    p = run_kha("lab", "up", "--dir", lab_dir, *extra, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p


def status(lab_dir):
    p = run_kha("lab", "status", "--dir", lab_dir, "-o", "json")
    return p.returncode, json.loads(p.stdout)


def member_pid(lab_dir, name):
    for master, proc, pid, start in recorded_procs(lab_dir):
        if master == name and proc == "etcd":
            return pid, start
    raise AssertionError(f"{name} not in lab.json")


def health_by_endpoint(lab_dir):
    """{client URL: True/False} from `etcdctl endpoint health` over every endpoint."""
    p = etcdctl(lab_dir, "endpoint", "health", "--dial-timeout=2s", "--command-timeout=3s")
    out = p.stdout + p.stderr
    result = {}
    for url in read_env(lab_dir)["ETCDCTL_ENDPOINTS"].split(","):
        line = next((ln for ln in out.splitlines() if ln.startswith(url + " ")), "")
        result[url] = "is healthy" in line
    return result


# `kha lab status` gives each member's health probe 2 s, and a member starved on a loaded
# machine may miss heartbeats and call an election (etcd's 1 s election timeout): a verdict right
# after a change may be one member short for that long (`kha lab wait` saw them all healthy once)
SETTLE = deadline(2 + 1)


def settled(lab_dir, want):
    """(code, status) once `kha lab status` exits with `want`, else None (for wait_for)."""
    code, st = status(lab_dir)
    return (code, st) if code == want else None


def leader(lab_dir):
    """The master the status names as the backup election's leader (None: nobody)."""
    _, st = status(lab_dir)
    return st["election"]["leader"]


def test_lab_up_stop_start_down(lab_dir):
    p = up(lab_dir)
    assert "3 etcd members healthy" in p.stdout
    assert "kha etcd status --endpoints https://127.0.0.1:" in p.stdout
    # the entry point, said plainly to front etcd, and how the same command fronts apiservers
    assert "entry point https://127.0.0.1:" in p.stdout
    assert "No kube-apiserver exists here" in p.stdout
    assert "--backend 10.0.0.11:6443" in p.stdout and "/readyz" in p.stdout
    state = read_state(lab_dir)
    assert [m["name"] for m in state["masters"]] == ["m1", "m2", "m3"]
    assert [[p["kind"] for p in m["processes"]] for m in state["masters"]] == \
        [["etcd", "elect"]] * 3
    assert [p["kind"] for p in state["node"]["processes"]] == ["proxy"]
    assert state["election"] == "lab-backup"
    procs = {(o, n): (pid, st) for o, n, pid, st in recorded_procs(lab_dir)}
    assert len(procs) == 7
    assert all(proc_alive(pid, st) for pid, st in procs.values())
    # logs in DIR/<owner>/<proc>.log
    for (owner, name) in procs:
        assert os.path.exists(os.path.join(lab_dir, owner, name + ".log")), (owner, name)
    # detached: each leads its own session, so it outlives 'kha lab up'
    assert all(os.getsid(pid) == pid for pid, _ in procs.values())
    assert oct(os.stat(os.path.join(lab_dir, "pki", "m1.key")).st_mode & 0o777) == "0o600"

    # etcdctl through the env file, real TLS with the client certificate, every member
    env = read_env(lab_dir)
    assert env["ETCDCTL_API"] == "3"
    assert len(env["ETCDCTL_ENDPOINTS"].split(",")) == 3
    assert set(health_by_endpoint(lab_dir).values()) == {True}
    members = etcdctl(lab_dir, "member", "list")
    assert members.returncode == 0, members.stderr
    assert all(f", {n}, https://127.0.0.1:" in members.stdout for n in ("m1", "m2", "m3"))
    # without the client certificate the members refuse
    bare = subprocess.run(["etcdctl", "--endpoints", env["ETCDCTL_ENDPOINTS"].split(",")[0],
                           "--cacert", env["ETCDCTL_CACERT"], "--dial-timeout=1s",
                           "--command-timeout=2s", "endpoint", "health"],
                          capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("ETCDCTL_")})
    assert bare.returncode != 0
    # through the node's entry point (TLS passes through the proxy to a member)
    entry = state["node"]["entry_url"]
    w = etcdctl(lab_dir, "put", "kha-lab-entry", "through the proxy", endpoints=entry)
    assert w.returncode == 0, w.stderr

    code, st = status(lab_dir)
    assert code == 0 and st["verdict"] == st["status"] == "healthy" and st["healthy"] == 3
    assert [m["processes"][0]["pid"] for m in st["masters"]] == [procs[(n, "etcd")][0]
                                                                  for n in ("m1", "m2", "m3")]
    assert st["node"]["ready"] is True and st["node"]["backends_up"] == 3
    assert st["election"]["leader"] in ("m1", "m2", "m3")

    # a second lab in the same directory is refused; the running one is untouched
    again = run_kha("lab", "up", "--dir", lab_dir)
    assert again.returncode == 64
    assert "already running" in again.stderr
    assert all(proc_alive(pid, st) for pid, st in procs.values())

    # unknown member: usage error naming the members
    bad = run_kha("lab", "stop-member", "m9", "--dir", lab_dir)
    assert bad.returncode == 64
    assert "m9" in bad.stderr and "m1, m2, m3" in bad.stderr

    # one master down: every process of it (elect's backup included), degraded
    m1_pids = master_pids(lab_dir, "m1")
    assert len(m1_pids) >= 2
    p = run_kha("lab", "stop-member", "m1", "--dir", lab_dir, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("m1 stopped")
    assert not any(proc_alive(pid, st) for pid, st in m1_pids)
    code, st = wait_for(lambda: settled(lab_dir, 1), SETTLE, what="the status degraded",
                        interval=0.2)
    assert st["verdict"] == "degraded"
    assert st["masters"][0]["running"] is False and st["masters"][0]["health"] == "unreachable"
    health = health_by_endpoint(lab_dir)
    assert [health[m["client_url"]] for m in st["masters"]] == [False, True, True]
    # the proxy notices: m1's backend is no longer up
    wait_for(lambda: status(lab_dir)[1]["masters"][0]["entry_state"] in ("down", "suspect"),
             20, what="the proxy marking m1 down")

    # a second one, killed like a crash: quorum lost, critical
    m2_pids = master_pids(lab_dir, "m2")
    p = run_kha("lab", "stop-member", "m2", "--kill", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    assert "SIGKILL" in p.stdout
    assert not any(proc_alive(pid, st) for pid, st in m2_pids)
    code, st = status(lab_dir)
    assert code == 2 and st["verdict"] == "critical" and st["running"] == 1
    assert proc_alive(*procs[("m3", "etcd")])

    # back on their data dirs
    for name in ("m1", "m2"):
        p = run_kha("lab", "start-member", name, "--dir", lab_dir, timeout=90)
        assert p.returncode == 0, p.stderr
    p = run_kha("lab", "wait", "--dir", lab_dir, "--timeout", "60s", timeout=90)
    assert p.returncode == 0, p.stderr
    code, st = wait_for(lambda: settled(lab_dir, 0), SETTLE, what="the status healthy",
                        interval=0.2)
    assert st["healthy"] == 3, st
    new_procs = {(o, n): (pid, st) for o, n, pid, st in recorded_procs(lab_dir)}
    assert new_procs[("m3", "etcd")] == procs[("m3", "etcd")]
    assert new_procs[("m1", "etcd")] != procs[("m1", "etcd")]
    assert new_procs[("m1", "elect")] != procs[("m1", "elect")]
    # same cluster, same members: a write through one is read back through another
    w = etcdctl(lab_dir, "put", "kha-lab-test", "survived")
    assert w.returncode == 0, w.stderr
    r = etcdctl(lab_dir, "get", "kha-lab-test", "--print-value-only",
                endpoints=st["masters"][0]["client_url"])
    assert r.stdout.strip() == "survived", r.stderr
    r = etcdctl(lab_dir, "get", "kha-lab-entry", "--print-value-only",
                endpoints=st["masters"][1]["client_url"])
    assert r.stdout.strip() == "through the proxy", r.stderr
    assert set(health_by_endpoint(lab_dir).values()) == {True}

    # down: exactly these processes (and what they started) gone, directory gone; twice is fine
    # the leader's backup, at least (after the quorum came back, the leader may first wait
    # for the lease of its own previous key to run out)
    everything = wait_for(lambda: len(lab_pids(lab_dir)) > len(new_procs) and lab_pids(lab_dir),
                          20, what="the leader running its backup")
    assert_logs_clean(lab_dir)
    p = run_kha("lab", "down", "--dir", lab_dir, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "7 processes stopped" in p.stdout
    assert not any(proc_alive(pid, st) for pid, st in everything)
    assert not os.path.exists(lab_dir)
    p = run_kha("lab", "down", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    p = run_kha("lab", "status", "--dir", lab_dir)
    assert p.returncode == 69 and "no lab" in p.stderr


def test_lab_status_freeze_and_leader(lab_dir):
    """status shows the proxy and the leader; freeze-member stops every process of a master
    (state T) and the election moves away from a frozen leader; --leader picks the leader."""
    up(lab_dir)
    p = run_kha("lab", "status", "--dir", lab_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "node   proxy" in p.stdout and "ready" in p.stdout and "3 of 3 masters up" in p.stdout
    assert "\nverdict: healthy (exit 0)\n" in p.stdout, p.stdout
    first = leader(lab_dir)
    assert first in ("m1", "m2", "m3")
    assert f"backup leader: {first}" in p.stdout
    # the lab reads the election as kha elect itself does
    env = read_env(lab_dir)
    e = run_kha("elect", "--leader", "--election", "lab-backup", "-o", "json", "--endpoints",
                env["ETCDCTL_ENDPOINTS"], "--cacert", env["ETCDCTL_CACERT"], "--cert",
                env["ETCDCTL_CERT"], "--key", env["ETCDCTL_KEY"])
    assert e.returncode == 0, e.stderr
    assert json.loads(e.stdout)["leader"]["id"] == first
    assert any(line.startswith(first) and "LEADER" in line for line in p.stdout.splitlines())

    # freeze the leader: every process of it stopped (T), the election moves, status says so
    frozen = master_pids(lab_dir, first)
    assert len(frozen) >= 3  # etcd, elect and what elect runs
    p = run_kha("lab", "freeze-member", "--leader", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{first} frozen")
    assert all(proc_state(pid) in ("T", "t") for pid, _ in frozen)
    second = wait_for(lambda: (leader(lab_dir) or first) != first and leader(lab_dir),
                      20, interval=0.25, what="a new leader while the old one is frozen")
    p = run_kha("lab", "status", "--dir", lab_dir)
    assert p.returncode == 1 and "FROZEN" in p.stdout, p.stdout
    assert "\nverdict: degraded (exit 1)\n" in p.stdout, p.stdout
    p = run_kha("lab", "thaw-member", "--all", "--dir", lab_dir)
    assert p.returncode == 0 and p.stdout.startswith(f"{first} thawed"), p.stdout + p.stderr
    assert all(proc_state(pid) not in ("T", "t") for pid, _ in frozen if proc_alive(pid))
    assert read_state(lab_dir)["masters"][int(first[1:]) - 1]["frozen"] is False

    # stop-member --leader --kill hits the current leader, all of its processes at once
    wait_for(lambda: leader(lab_dir), 20, what="a leader")
    victim = leader(lab_dir)
    victim_pids = master_pids(lab_dir, victim)
    p = run_kha("lab", "stop-member", "--leader", "--kill", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{victim} stopped")
    assert not any(proc_alive(pid, st) for pid, st in victim_pids)
    # right after: the dead leader did not resign, so it is still on record until its lease
    # (TTL 3 s) runs out; status says what is pending instead of calling it a leader
    p = run_kha("lab", "status", "--dir", lab_dir)
    if f"backup leader: {victim}" in p.stdout:
        assert "(stopped: its election lease expires in" in p.stdout or \
            "(stopped: its election lease is running out)" in p.stdout, p.stdout
        row = [line for line in p.stdout.splitlines()
               if line.startswith(victim) and " elect " in line]
        assert row and "LEADER" in row[0] and "stopped, still on record" in row[0], p.stdout
    wait_for(lambda: leader(lab_dir) not in (None, victim), 20, interval=0.25,
             what="a new leader after the leader was killed")
    p = run_kha("lab", "start-member", "--all", "--dir", lab_dir, timeout=90)
    assert p.returncode == 0 and p.stdout.startswith(f"{victim} started"), p.stdout + p.stderr
    p = run_kha("lab", "wait", "--dir", lab_dir, "--timeout", "60s", timeout=90)
    assert p.returncode == 0, p.stderr
    code, st = status(lab_dir)
    assert code == 0 and st["node"]["ready"], st
    assert second  # the handover happened above
    assert_logs_clean(lab_dir)


def test_lab_down_after_member_killed_by_test(lab_dir):
    up(lab_dir, "--no-proxy", "--no-elect")
    procs = recorded_procs(lab_dir)
    assert len(procs) == 3
    victim = procs[1]
    os.kill(victim[2], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc_alive(victim[2], victim[3]) and time.monotonic() < deadline:
        time.sleep(0.02)
    p = run_kha("lab", "down", "--dir", lab_dir, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "2 processes stopped" in p.stdout
    assert not any(proc_alive(pid, st) for _, _, pid, st in procs)
    assert not os.path.exists(lab_dir)


def test_lab_down_never_signals_a_recycled_pid(lab_dir, tmp_path):
    """lab.json names a live process whose start time differs (the PID was reused): down must
    leave it alone, and still remove the lab."""
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        os.makedirs(lab_dir)
        pki = os.path.join(lab_dir, "pki")
        state = {
            "version": 1, "dir": lab_dir, "etcd": "/usr/bin/etcd", "token": "t",
            "ca_cert": pki + "/ca.crt", "client_cert": pki + "/client.crt",
            "client_key": pki + "/client.key",
            "masters": [{
                "name": "m1", "client_port": 1, "peer_port": 2,
                "client_url": "https://127.0.0.1:1", "peer_url": "https://127.0.0.1:2",
                "data_dir": lab_dir + "/m1.etcd", "cert": pki + "/m1.crt",
                "key": pki + "/m1.key",
                "processes": [{"name": "etcd", "kind": "etcd", "pid": bystander.pid,
                               "start_time": 1, "log": lab_dir + "/m1.log"}],
            }],
        }
        with open(os.path.join(lab_dir, "lab.json"), "w") as f:
            json.dump(state, f)
        p = run_kha("lab", "status", "--dir", lab_dir, "-o", "json")
        assert json.loads(p.stdout)["masters"][0]["running"] is False
        p = run_kha("lab", "stop-member", "m1", "--kill", "--dir", lab_dir)
        assert p.returncode == 0 and "not running" in p.stdout
        p = run_kha("lab", "down", "--dir", lab_dir)
        assert p.returncode == 0, p.stderr
        assert "0 processes stopped" in p.stdout
        assert bystander.poll() is None
        assert not os.path.exists(lab_dir)
    finally:
        bystander.kill()
        bystander.wait()


def test_lab_up_failure_stops_and_shows_log(lab_dir, tmp_path):
    """A member that never becomes healthy: up times out, stops it, shows its log, exits 69."""
    pidfile = tmp_path / "fake.pid"
    fake = tmp_path / "fake-etcd"
    fake.write_text(f"#!/bin/sh\necho \"fake etcd $1 cannot serve\"\necho $$ > {pidfile}\n"
                    "exec sleep 60\n")
    fake.chmod(0o755)
    p = run_kha("lab", "up", "--dir", lab_dir, "--members", "1", "--etcd", str(fake),
                "--timeout", "1s", timeout=60)
    assert p.returncode == 69
    assert "not healthy after 1s" in p.stderr
    assert "fake etcd --name=m1 cannot serve" in p.stderr  # the tail of the log
    pid = int(pidfile.read_text())
    assert not proc_alive(pid)
    assert read_state(lab_dir)["masters"][0]["processes"][0]["pid"] == 0
    # the logs stay for reading; down removes them
    assert os.path.exists(os.path.join(lab_dir, "m1", "etcd.log"))
    again = run_kha("lab", "up", "--dir", lab_dir)
    assert again.returncode == 64 and "stopped lab" in again.stderr
    p = run_kha("lab", "down", "--dir", lab_dir)
    assert p.returncode == 0 and not os.path.exists(lab_dir)


def test_lab_drill_refuses_a_lab_without_entry(lab_dir):
    """A lab made without the node's proxy has nothing to write through (a hand-made state:
    no process needs to run for the refusal)."""
    os.makedirs(lab_dir)
    pki = os.path.join(lab_dir, "pki")
    state = {
        "version": 2, "dir": lab_dir, "etcd": "/usr/bin/etcd", "token": "t",
        "ca_cert": pki + "/ca.crt", "client_cert": pki + "/client.crt",
        "client_key": pki + "/client.key",
        "masters": [{
            "name": "m1", "client_port": 1, "peer_port": 2,
            "client_url": "https://127.0.0.1:1", "peer_url": "https://127.0.0.1:2",
            "data_dir": lab_dir + "/m1/data", "cert": pki + "/m1.crt", "key": pki + "/m1.key",
            "processes": [{"name": "etcd", "kind": "etcd", "pid": 0, "start_time": 0,
                           "log": lab_dir + "/m1/etcd.log"}],
        }],
    }
    with open(os.path.join(lab_dir, "lab.json"), "w") as f:
        json.dump(state, f)
    p = run_kha("lab", "drill", "--dir", lab_dir)
    assert p.returncode == 64 and "no entry point" in p.stderr, p.stderr
    p = run_kha("lab", "freeze-member", "m1", "--dir", lab_dir)
    assert p.returncode == 69 and "not running" in p.stdout
    p = run_kha("lab", "stop-member", "--leader", "--dir", lab_dir)
    assert p.returncode != 0
    p = run_kha("lab", "status", "--dir", lab_dir, "-o", "json")
    assert p.returncode == 2 and json.loads(p.stdout)["node"] is None


def test_lab_bad_input(lab_dir, tmp_path):
    for members in ("0", "8", "three"):
        p = run_kha("lab", "up", "--dir", lab_dir, "--members", members)
        assert p.returncode == 64, members
        assert "--members" in p.stderr
    assert not os.path.exists(lab_dir)
    p = run_kha("lab", "up", "--dir", lab_dir, "--etcd", str(tmp_path / "no-such-etcd"))
    assert p.returncode == 69 and "not found" in p.stderr
    p = run_kha("lab", "stop-member", "--dir", lab_dir)
    assert p.returncode == 64
    p = run_kha("lab", "start-member", "m1", "--dir", lab_dir)
    assert p.returncode == 69 and "no lab" in p.stderr
    p = run_kha("lab", "frobnicate")
    assert p.returncode == 64
    # lab drill: no lab, bad flags
    p = run_kha("lab", "drill", "--dir", lab_dir)
    assert p.returncode == 69 and "no lab in" in p.stderr, p.stderr
    for flags in (["--rate", "0"], ["--rate", "x"], ["--min-availability", "101"],
                  ["--period", "0s"], ["--svg"], ["extra"]):
        p = run_kha("lab", "drill", "--dir", lab_dir, *flags)
        assert p.returncode == 64, flags
    p = run_kha("lab", "drill", "--help")
    assert p.returncode == 0 and "kill-leader" in p.stdout and "Example" in p.stdout
    # picking a master: a name or a selector, not both; selectors where they make sense
    for args in (["stop-member", "m1", "--leader"], ["stop-member", "--all"],
                 ["freeze-member", "--all"], ["start-member", "--leader"],
                 ["thaw-member", "--follower"], ["freeze-member"],
                 ["start-member", "m1", "--kill"]):
        p = run_kha("lab", *args, "--dir", lab_dir)
        assert p.returncode == 64, args
    p = run_kha("lab", "up", "--help")
    assert p.returncode == 0 and "Example" in p.stdout
    # a directory that is not a lab is neither used nor removed
    other = tmp_path / "precious"
    other.mkdir()
    (other / "file").write_text("keep me")
    p = run_kha("lab", "up", "--dir", other)
    assert p.returncode == 64 and "not a lab" in p.stderr
    p = run_kha("lab", "down", "--dir", other)
    assert p.returncode == 64 and "not removing" in p.stderr
    assert (other / "file").read_text() == "keep me"


def test_lab_drill_interrupted_undoes_its_fault(lab_dir, tmp_path):
    """Ctrl-C in the middle of a fault: the drill stops writing, runs the recoveries due (the
    killed master is restarted), writes its report, exits 130; the lab is whole again."""
    up(lab_dir)
    report = tmp_path / "drill.json"
    drill = subprocess.Popen([kha_bin(), "lab", "drill", "--dir", lab_dir, "--baseline", "1s",
                              "--rate", "20", "--report", str(report)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    try:
        err = ""
        deadline = time.monotonic() + 60
        while "kill-follower ok" not in err:
            line = drill.stderr.readline()
            assert line and time.monotonic() < deadline, err
            err += line
        victim = re.search(r"kill-follower ok \((m\d) stopped", err).group(1)
        assert not master_pids(lab_dir, victim)  # every process of it is gone
        drill.send_signal(signal.SIGINT)
        out, rest = drill.communicate(timeout=120)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait()
    assert drill.returncode == 130, out + err + rest
    assert_no_sanitizer_report(err + rest, "kha lab drill")
    assert "restart-follower ok" in rest and "interrupted" in out
    r = json.loads(report.read_text())
    assert r["drill"]["interrupted"] is True and r["exit_code"] == 130
    assert r["faults"][0]["victim"] == victim and r["faults"][0]["commands_ok"] is True
    assert r["faults"][1]["ran"] is False
    p = run_kha("lab", "wait", "--dir", lab_dir, "--timeout", "60s", timeout=90)
    assert p.returncode == 0, p.stderr
    code, st = status(lab_dir)
    assert code == 0 and st["running"] == 3, st
