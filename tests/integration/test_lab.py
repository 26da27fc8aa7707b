# SPDX-License-Identifier: MIT
"""kha lab against real etcd members (TLS for clients and peers, client certificates): up,
etcdctl through DIR/env, status verdicts, stop/start of members, down, refusals, failures.
Every test's finalizer runs `kha lab down` and, as a last resort, kills the recorded PIDs."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import run_kha
from kha_testlib.lab import (etcdctl, lab_cleanup, proc_alive, read_env, read_state,
                             recorded_procs)


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


def test_lab_up_stop_start_down(lab_dir):
    p = up(lab_dir)
    assert "3 etcd members healthy" in p.stdout
    assert "kha etcd status --endpoints https://127.0.0.1:" in p.stdout
    state = read_state(lab_dir)
    assert [m["name"] for m in state["masters"]] == ["m1", "m2", "m3"]
    pids = {m: (pid, st) for m, _, pid, st in recorded_procs(lab_dir)}
    assert all(proc_alive(pid, st) for pid, st in pids.values())
    # detached: each member leads its own session, so it outlives 'kha lab up'
    assert all(os.getsid(pid) == pid for pid, _ in pids.values())
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

    code, st = status(lab_dir)
    assert code == 0 and st["status"] == "healthy" and st["healthy"] == 3
    assert [m["processes"][0]["pid"] for m in st["masters"]] == [pids[n][0]
                                                                  for n in ("m1", "m2", "m3")]

    # a second lab in the same directory is refused; the running one is untouched
    again = run_kha("lab", "up", "--dir", lab_dir)
    assert again.returncode == 64
    assert "already running" in again.stderr
    assert all(proc_alive(pid, st) for pid, st in pids.values())

    # unknown member: usage error naming the members
    bad = run_kha("lab", "stop-member", "m9", "--dir", lab_dir)
    assert bad.returncode == 64
    assert "m9" in bad.stderr and "m1, m2, m3" in bad.stderr

    # one member down: degraded
    p = run_kha("lab", "stop-member", "m1", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    assert not proc_alive(*pids["m1"])
    code, st = status(lab_dir)
    assert code == 1 and st["status"] == "degraded"
    assert st["masters"][0]["running"] is False and st["masters"][0]["health"] == "unreachable"
    health = health_by_endpoint(lab_dir)
    assert [health[m["client_url"]] for m in st["masters"]] == [False, True, True]

    # a second one, killed like a crash: quorum lost, critical
    p = run_kha("lab", "stop-member", "m2", "--kill", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    assert "SIGKILL" in p.stdout
    assert not proc_alive(*pids["m2"])
    code, st = status(lab_dir)
    assert code == 2 and st["status"] == "critical" and st["running"] == 1
    assert proc_alive(*pids["m3"])

    # back on their data dirs
    for name in ("m1", "m2"):
        p = run_kha("lab", "start-member", name, "--dir", lab_dir, timeout=90)
        assert p.returncode == 0, p.stderr
    p = run_kha("lab", "wait", "--dir", lab_dir, "--timeout", "60s", timeout=90)
    assert p.returncode == 0, p.stderr
    code, st = status(lab_dir)
    assert code == 0 and st["healthy"] == 3
    new_pids = {m: (pid, st) for m, _, pid, st in recorded_procs(lab_dir)}
    assert new_pids["m3"] == pids["m3"] and new_pids["m1"] != pids["m1"]
    # same cluster, same members: a write through one is read back through another
    w = etcdctl(lab_dir, "put", "kha-lab-test", "survived")
    assert w.returncode == 0, w.stderr
    r = etcdctl(lab_dir, "get", "kha-lab-test", "--print-value-only",
                endpoints=st["masters"][0]["client_url"])
    assert r.stdout.strip() == "survived", r.stderr
    assert set(health_by_endpoint(lab_dir).values()) == {True}

    # down: exactly these processes gone, directory gone; twice is fine
    p = run_kha("lab", "down", "--dir", lab_dir, timeout=60)
    assert p.returncode == 0, p.stderr
    assert not any(proc_alive(pid, st) for pid, st in new_pids.values())
    assert not os.path.exists(lab_dir)
    p = run_kha("lab", "down", "--dir", lab_dir)
    assert p.returncode == 0, p.stderr
    p = run_kha("lab", "status", "--dir", lab_dir)
    assert p.returncode == 69 and "no lab" in p.stderr


def test_lab_down_after_member_killed_by_test(lab_dir):
    up(lab_dir)
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
    assert os.path.exists(os.path.join(lab_dir, "m1.log"))
    again = run_kha("lab", "up", "--dir", lab_dir)
    assert again.returncode == 64 and "stopped lab" in again.stderr
    p = run_kha("lab", "down", "--dir", lab_dir)
    assert p.returncode == 0 and not os.path.exists(lab_dir)


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
