# SPDX-License-Identifier: MIT
"""kha elect on a real 3-member etcd cluster (TLS, client certificates).

Safety is checked in every scenario by kha_testlib.elect.Recorder: each COMMAND logs its
interval and holds a flock, so two COMMANDs alive at once are detected by the kernel itself.
Scenarios: three candidates, leader SIGKILL and SIGTERM; a network partition of the leader
(nftables drops in the test's own network namespace); the death of the etcd member the leader talks to;
interoperation with `etcdctl elect` both ways; --leader/--observe; restart policies; bad input.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import kha_bin, run_kha
from kha_testlib.process import assert_stays, deadline, log_time
from kha_testlib.elect import Procs, Recorder, pid_alive, wait_until
from kha_testlib.etcd import ETCDCTL, etcd3, etcd_cluster  # noqa: F401 (fixtures)
from kha_testlib.partition import Partition, netns  # noqa: F401 (fixture)

TTL = 2.0


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def elect_args(cluster, name, ident, rec, *extra, ttl=TTL, endpoints=None, hold=0.0):
    flags = cluster.client_flags() if endpoints is None else \
        ["--endpoints", endpoints] + cluster.tls_flags()
    return [*["elect", *flags, "--election", name, "--id", ident, "--ttl", f"{ttl}s",
              "--grace", "1s", *extra], "--", *rec.command(hold)]


def leader_kha(rec, khas):
    """The KhaProc whose child runs now (exactly one must)."""
    running = rec.running()
    assert len(running) == 1, f"{len(running)} children running:\n{rec.dump()}"
    ident = running[0]["id"]
    return next(k for i, k in khas.items() if i == ident), running[0]


def stable_single_leader(rec, seconds=0.6):
    """Polls the running children for a while: always exactly one."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert len(rec.running()) == 1, rec.dump()
        time.sleep(0.03)


def etcd_key_exists(cluster, key, member):
    import base64
    r = cluster.gateway("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()},
                        member=member)
    return int(r.get("count", "0")) > 0


def etcd_keys_under(cluster, prefix, member=0):
    import base64
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    r = cluster.gateway("/v3/kv/range", {"key": base64.b64encode(prefix.encode()).decode(),
                                         "range_end": base64.b64encode(end.encode()).decode(),
                                         "count_only": True}, member=member)
    return int(r.get("count", "0"))


def test_three_candidates_one_leader_then_sigkill_and_sigterm_takeover(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    khas = {}
    for ident in ("a", "b", "c"):
        khas[ident] = procs.start(elect_args(etcd3, "sched", ident, rec), ident)
    wait_until(lambda: len(rec.starts()) == 1, 15, "a first leader", diag=procs.logs)
    wait_until(lambda: all("msg=waiting" in k.log() or "msg=acquired" in k.log()
                           for k in khas.values()), 10, "every candidate to campaign")
    stable_single_leader(rec)
    first, child = leader_kha(rec, khas)
    assert child["token"].isdigit() and int(child["token"]) > 0

    # --leader agrees, and names the fencing token the child got
    p = run_kha("elect", "--leader", "--election", "sched", *etcd3.client_flags(), "-o", "json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["leader"]["id"] == child["id"]
    assert info["leader"]["fencing_token"] == int(child["token"])
    # `elect status`: the leader and the queue behind it
    p = run_kha("elect", "status", "--election", "sched", *etcd3.client_flags(), "-o", "json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["election"] == "sched" and st["leader"]["id"] == child["id"]
    assert st["leader"]["fencing_token"] == int(child["token"])
    assert [c["state"] for c in st["candidates"]] == ["holder", "waiter", "waiter"]
    assert sorted(c["id"] for c in st["candidates"]) == ["a", "b", "c"]
    assert all(0 <= c["ttl_seconds"] <= TTL for c in st["candidates"])
    p = run_kha("elect", "status", "--election", "sched", *etcd3.client_flags())
    assert p.returncode == 0 and p.stdout.startswith(
        f"election sched: leader {child['id']}, fencing token {child['token']}, 2 waiting")

    # SIGKILL of the leader: its child dies with it, a standby takes over after the TTL
    t_kill = time.monotonic_ns()
    first.signal(signal.SIGKILL)
    wait_until(lambda: not pid_alive(child["pid"]), 5, "the killed leader's child to die", diag=procs.logs)
    rec.note_dead(child["pid"])
    wait_until(lambda: len(rec.starts()) == 2, TTL + 5, "a standby to take over", diag=procs.logs)
    second_start = rec.starts()[1]
    took = (second_start["t"] - t_kill) / 1e9
    assert took <= deadline(TTL), f"takeover after SIGKILL took {took:.2f}s (TTL {TTL}s)"
    assert int(second_start["token"]) > int(child["token"])
    stable_single_leader(rec, 0.3)

    # SIGTERM: the leader stops its child and resigns: takeover well under a second
    second, child2 = leader_kha(rec, {k: v for k, v in khas.items() if v is not first})
    third = next(k for k in khas.values() if k is not first and k is not second)
    t_term = time.time()
    second.signal(signal.SIGTERM)
    assert second.wait(10) == 0
    wait_until(lambda: len(rec.starts()) == 3, 5, "the last candidate to take over", diag=procs.logs)
    # before the TTL could have lapsed: the resignation, not the lease's expiry, freed the key.
    # Timed to when the last candidate acquired (its own log's clock, the same wall clock), not
    # to when its child began: the child is a Python program, slow to start on a loaded machine
    assert third.log().count("msg=acquired") == 1, third.log()
    took = log_time(third.log(), "msg=acquired") - t_term
    assert -0.001 <= took < TTL, f"takeover after SIGTERM took {took:.3f}s (TTL {TTL}s)"
    assert "msg=resigned" in second.log()
    rec.assert_safe()


def test_partitioned_leader_is_fenced_before_its_lease_expires(netns, etcd_cluster, procs,
                                                               tmp_path):
    """The leader reaches etcd only through 127.0.0.2, which nftables then drops for real in
    the test's own namespace (kha_testlib.partition): its keep-alives vanish into TCP
    retransmission, its new connections time out. Its child must stop before the lease can
    expire, and before the new leader's child starts."""
    etcd3 = etcd_cluster(members=3, tls=True, aliases=("127.0.0.2",))
    rec = Recorder(tmp_path / "rec")
    ttl = 3.0
    with Partition("127.0.0.2") as partition:
        via = etcd3.member(0).alias_urls[0]
        a = procs.start(elect_args(etcd3, "ctl", "a", rec, "--dial-timeout", "1s",
                                   ttl=ttl, endpoints=via), "a")
        wait_until(lambda: len(rec.starts()) == 1, 15, "the candidate behind 127.0.0.2 to lead", diag=procs.logs)
        b = procs.start(elect_args(etcd3, "ctl", "b", rec, ttl=ttl), "b")
        c = procs.start(elect_args(etcd3, "ctl", "c", rec, ttl=ttl), "c")
        wait_until(lambda: "msg=waiting" in b.log() and "msg=waiting" in c.log(), 10,
                   "standbys", diag=procs.logs)
        child = rec.starts()[0]
        assert child["id"] == "a"
        p = run_kha("elect", "--leader", "--election", "ctl", *etcd3.client_flags(), "-o",
                    "json")
        key = json.loads(p.stdout)["leader"]["key"]

        t_cut = time.monotonic_ns()
        partition.cut()
        # fenced at the renew deadline (2/3 of the TTL after the last renewal at the latest)
        wait_until(lambda: any(e["ev"] == "stop" and e["pid"] == child["pid"]
                               for e in rec.events()), ttl + 2, "the partitioned child to stop", diag=procs.logs)
        # the lease is still alive: the key is still there (read through 127.0.0.1)
        assert etcd_key_exists(etcd3, key, member=1), \
            "the child stopped only after the lease had expired"
        stop = next(e for e in rec.events() if e["ev"] == "stop" and e["pid"] == child["pid"])
        fenced_after = (stop["t"] - t_cut) / 1e9
        assert fenced_after <= deadline(ttl * 2 / 3), f"fenced {fenced_after:.2f}s after the cut"
        assert "fenced" in a.log()
        # a standby takes over once the lease expired
        wait_until(lambda: len(rec.starts()) == 2, ttl + 5, "a standby to take over", diag=procs.logs)
        assert rec.starts()[1]["id"] in ("b", "c")
        assert rec.starts()[1]["t"] > stop["t"]
        assert a.alive(), "a partitioned candidate keeps trying"
        # healing: the old leader rejoins as a standby, nobody else starts
        partition.heal()
        wait_until(lambda: a.log().count("msg=waiting") >= 1 and
                   a.log().rfind("msg=waiting") > a.log().rfind("fenced"), 20,
                   "the healed candidate to wait again", diag=procs.logs)
        stable_single_leader(rec, 0.5)
        rec.assert_safe()
        for k in (a, b, c):
            k.signal(signal.SIGTERM)
        for k in (a, b, c):
            assert k.wait(15) == 0


def test_killed_etcd_member_under_the_leader_causes_no_double_leadership(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    a = procs.start(elect_args(etcd3, "m", "a", rec, "--dial-timeout", "500ms"), "a")
    wait_until(lambda: len(rec.starts()) == 1, 15, "a leader", diag=procs.logs)
    others = [m.client_url for m in etcd3.members[1:]]
    for ident in ("b", "c"):
        procs.start(elect_args(etcd3, "m", ident, rec, endpoints=",".join(reversed(others))),
                    ident)
    wait_until(lambda: len(rec.events()) >= 1 and all(
        "msg=waiting" in k.log() for k in procs.procs[1:]), 10, "standbys", diag=procs.logs)
    # a talks to member 0 (its first endpoint): kill it
    etcd3.kill(0)
    deadline = time.monotonic() + 3 * TTL
    while time.monotonic() < deadline:
        rec.assert_safe()
        time.sleep(0.05)
    wait_until(lambda: len(rec.running()) == 1, 10, "one leader after the member died", diag=procs.logs)
    rec.assert_safe()
    assert a.alive()


def test_etcdctl_leads_kha_waits_then_takes_over(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    env = dict(os.environ, ETCDCTL_API="3")
    ctl = subprocess.Popen([ETCDCTL, *etcd3.client_flags(), "elect", "shared", "etcdctl-x"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           start_new_session=True)
    try:
        line = ctl.stdout.readline()   # etcdctl prints the key once it leads
        assert line.startswith("shared/"), line
        k = procs.start(elect_args(etcd3, "shared", "kha-1", rec), "kha")
        wait_until(lambda: ' leader=etcdctl-x ' in k.log(), 10, "kha to see etcdctl lead", diag=procs.logs)
        p = run_kha("elect", "--leader", "--election", "shared", *etcd3.client_flags())
        assert p.returncode == 0 and "etcdctl-x" in p.stdout, p.stdout + p.stderr
        # for a whole TTL: a candidate that ignored etcdctl's key (or took it once kha's own
        # lease would have lapsed) would have started its child within it
        assert_stays(lambda: rec.starts() == [], TTL, "kha does not run while etcdctl leads")
        ctl.send_signal(signal.SIGINT)   # etcdctl resigns on SIGINT
        ctl.wait(10)
        wait_until(lambda: len(rec.starts()) == 1, 5, "kha to take over", diag=procs.logs)
    finally:
        if ctl.poll() is None:
            os.killpg(ctl.pid, signal.SIGKILL)
            ctl.wait(10)


def test_a_hostile_leader_id_forges_no_log_record_and_no_terminal_escape(etcd3, procs, tmp_path):
    """The leader id is read from etcd: whoever can write there chooses it. It is quoted in the
    logs (logfmt and JSON: one record, one level key) and stripped of escapes on the terminal."""
    evil = 'evil level=error msg="etcd quorum lost"\x1b]0;owned\x07\x1b[2J'
    env = dict(os.environ, ETCDCTL_API="3")
    ctl = subprocess.Popen([ETCDCTL, *etcd3.client_flags(), "elect", "forged", evil],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           start_new_session=True)
    rec = Recorder(tmp_path / "rec")
    try:
        assert ctl.stdout.readline().startswith("forged/")
        k1 = procs.start(elect_args(etcd3, "forged", "kha-1", rec), "logfmt")
        k2 = procs.start(elect_args(etcd3, "forged", "kha-2", rec, "--log-format", "json"), "json")
        wait_until(lambda: "evil" in k1.log() and "evil" in k2.log(), 10,
                   "kha to log the leader it waits for", diag=procs.logs)
        for line in k1.log().splitlines():
            pairs = re.findall(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)', line)
            assert [v for k, v in pairs if k == "level"] in (["info"], ["warn"]), line
            assert "\x1b" not in line, line
        assert 'leader="evil level=error msg=\\"etcd quorum lost\\"\\u001b]0;owned' \
            '\\u0007\\u001b[2J"' in k1.log(), k1.log()

        def no_duplicate_keys(pairs):
            keys = [k for k, _ in pairs]
            assert len(keys) == len(set(keys)), pairs
            return dict(pairs)
        records = [json.loads(x, object_pairs_hook=no_duplicate_keys)
                   for x in k2.log().splitlines() if x.startswith("{")]
        waiting = [r for r in records if r.get("msg") == "waiting"]
        assert waiting and waiting[0]["leader"] == evil, records
        assert all(r["level"] != "error" for r in records), records

        for extra in ([], ["--observe"]):
            if extra:
                p = subprocess.Popen([kha_bin(), "elect", "--observe", "--election",
                                      "forged", *etcd3.client_flags()], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                try:
                    out = p.stdout.readline()
                finally:
                    p.kill()
                    p.communicate()
            else:
                p = run_kha("elect", "--leader", "--election", "forged", *etcd3.client_flags())
                assert p.returncode == 0, p.stderr
                out = p.stdout.encode()
            assert b"evil level=error" in out and b"\x1b" not in out and b"\x07" not in out, out
    finally:
        if ctl.poll() is None:
            os.killpg(ctl.pid, signal.SIGKILL)
            ctl.wait(10)


def test_kha_leads_etcdctl_observes_and_waits(etcd3, procs, tmp_path):
    rec = Recorder(tmp_path / "rec")
    env = dict(os.environ, ETCDCTL_API="3")
    k = procs.start(elect_args(etcd3, "shared2", "kha-1", rec), "kha")
    wait_until(lambda: len(rec.starts()) == 1, 15, "kha to lead", diag=procs.logs)
    listen = subprocess.run(["timeout", "-s", "INT", "2", ETCDCTL, *etcd3.client_flags(),
                             "elect", "-l", "shared2"], capture_output=True, text=True, env=env)
    lines = listen.stdout.split()
    assert len(lines) >= 2 and lines[0].startswith("shared2/") and lines[1] == "kha-1", \
        listen.stdout + listen.stderr
    ctl = subprocess.Popen([ETCDCTL, *etcd3.client_flags(), "elect", "shared2", "etcdctl-y"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           start_new_session=True)
    try:
        wait_until(lambda: "1 contender(s)" not in k.log() and _key_count(etcd3, "shared2/")
                   == 2, 10, "etcdctl to campaign", diag=procs.logs)
        assert ctl.poll() is None
        k.signal(signal.SIGTERM)
        assert k.wait(10) == 0
        line = ctl.stdout.readline()
        assert line.startswith("shared2/"), line
    finally:
        if ctl.poll() is None:
            os.killpg(ctl.pid, signal.SIGKILL)
            ctl.wait(10)


def _key_count(cluster, prefix):
    import base64
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    r = cluster.gateway("/v3/kv/range", {"key": base64.b64encode(prefix.encode()).decode(),
                                         "range_end": base64.b64encode(end.encode()).decode(),
                                         "count_only": True})
    return int(r.get("count", "0"))


def test_leader_and_observe(etcd3, procs, tmp_path):
    flags = etcd3.client_flags()
    p = run_kha("elect", "--leader", "--election", "obs", *flags)
    assert p.returncode == 1 and "no leader" in p.stdout
    p = run_kha("elect", "--leader", "--election", "obs", *flags, "-o", "json")
    assert p.returncode == 1 and json.loads(p.stdout) == {"election": "obs", "leader": None}
    p = run_kha("elect", "status", "--election", "obs", *flags, "-o", "json")
    st = json.loads(p.stdout)
    assert p.returncode == 1 and st["leader"] is None and st["candidates"] == []
    p = run_kha("elect", "status", "--election", "obs", *flags)
    assert p.returncode == 1 and "election obs: no leader" in p.stdout
    # unreachable: the error is a JSON document too
    p = run_kha("elect", "status", "--election", "obs", "--endpoints", "127.0.0.1:1", "-o",
                "json")
    err = json.loads(p.stdout)
    assert p.returncode == 69 and err["verdict"] == "error" and err["exit_code"] == 69
    assert "127.0.0.1:1" in err["error"] and "kha elect status: etcd" in p.stderr

    obs = procs.start(["elect", "--observe", "--election", "obs", *flags, "-o", "json"], "obs")
    wait_until(lambda: '"leader": null' in obs.log() or '"leader":null' in obs.log(), 10,
               "the first observation", diag=procs.logs)
    rec = Recorder(tmp_path / "rec")
    a = procs.start(elect_args(etcd3, "obs", "a", rec), "a")
    wait_until(lambda: '"id":"a"' in obs.log(), 10, "the observer to see a", diag=procs.logs)
    b = procs.start(elect_args(etcd3, "obs", "b", rec), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 10, "b to wait", diag=procs.logs)
    a.signal(signal.SIGTERM)
    wait_until(lambda: '"id":"b"' in obs.log(), 10, "the observer to see b", diag=procs.logs)
    obs.signal(signal.SIGTERM)
    assert obs.wait(10) == 0
    lines = [json.loads(x) for x in obs.log().splitlines() if x.startswith("{")]
    leaders = [x["leader"]["id"] if x["leader"] else None for x in lines]
    assert leaders == [None, "a", "b"], leaders
    assert all(x["time"].endswith("Z") for x in lines)
    assert lines[2]["leader"]["fencing_token"] > lines[1]["leader"]["fencing_token"]



def test_restart_policies(etcd3, procs, tmp_path):
    marker = tmp_path / "runs"
    script = f"echo run >> {marker}; exit 3"
    # on-failure: restarted with back-off while leading
    k = procs.start(["elect", *etcd3.client_flags(), "--election", "rs", "--id", "a",
                     "--ttl", "2s", "--restart", "on-failure", "--restart-delay", "100ms",
                     "--", "sh", "-c", script], "a")
    wait_until(lambda: marker.exists() and marker.read_text().count("run") >= 3, 10,
               "three runs", diag=procs.logs)
    assert "restarting COMMAND" in k.log()
    k.signal(signal.SIGTERM)
    assert k.wait(10) == 0
    # no: kha exits with COMMAND's status and resigns
    p = run_kha("elect", *etcd3.client_flags(), "--election", "rs2", "--id", "b", "--ttl", "2s",
                "--", "sh", "-c", "exit 7", timeout=30)
    assert p.returncode == 7, p.stderr
    assert "resigned" in p.stderr
    p = run_kha("elect", "--leader", "--election", "rs2", *etcd3.client_flags())
    assert p.returncode == 1, "the key must be gone after resigning"


def test_sighup_is_forwarded_to_the_running_command(etcd3, procs, tmp_path):
    marker = tmp_path / "hups"
    ready = tmp_path / "ready"
    script = (f"trap 'echo hup >> {marker}' HUP; touch {ready}; "
              "while :; do sleep 0.05; done")
    k = procs.start(["elect", *etcd3.client_flags(), "--election", "hup", "--id", "a",
                     "--ttl", "2s", "--grace", "1s", "--", "sh", "-c", script], "a")
    wait_until(ready.exists, 10, "COMMAND running with its HUP trap", diag=procs.logs)
    for n in (1, 2):
        k.signal(signal.SIGHUP)
        wait_until(lambda: marker.exists() and marker.read_text().count("hup") == n, 10,
                   f"SIGHUP {n} reached COMMAND", diag=procs.logs)
    assert "SIGHUP forwarded to COMMAND" in k.log()
    k.signal(signal.SIGTERM)
    assert k.wait(10) == 0  # kha itself went on leading until SIGTERM


def test_sighup_also_reloads_kha_config(etcd3, procs, tmp_path):
    """SIGHUP still reaches COMMAND, and kha reads its --config again as at start: a restart
    policy changed from "no" to "always" applies to the COMMAND already running; a broken file
    keeps the running configuration."""
    cfg = tmp_path / "elect.yaml"
    cfg.write_text('restart: "no"\n')
    marker, ready, stop = tmp_path / "hups", tmp_path / "ready", tmp_path / "stop"
    script = (f"trap 'echo hup >> {marker}' HUP; touch {ready}; "
              f"while [ ! -e {stop} ]; do sleep 0.05; done; rm -f {stop} {ready}; exit 3")
    k = procs.start(["elect", *etcd3.client_flags(), "--config", cfg, "--election", "reload",
                     "--id", "a", "--ttl", "2s", "--grace", "1s", "--", "sh", "-c", script],
                    "a")
    wait_until(ready.exists, 10, "COMMAND running", diag=procs.logs)
    cfg.write_text("restart: always\nrestart-delay: 100ms\n")
    k.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in k.log() and marker.exists(), 10,
               "kha reloaded and COMMAND got SIGHUP", diag=procs.logs)
    assert "restart=always" in k.log()
    stop.touch()  # COMMAND exits 3: with "always" it runs again, kha stays
    wait_until(lambda: k.log().count("COMMAND started") == 2 and ready.exists(), 10,
               "COMMAND restarted", diag=procs.logs)
    assert k.alive()
    cfg.write_text("restart: maybe\n")
    k.signal(signal.SIGHUP)
    wait_until(lambda: "configuration not reloaded, keeping the running one" in k.log(), 10,
               "the bad reload refused", diag=procs.logs)
    assert "restart: 'maybe'" in k.log() and k.alive()
    k.signal(signal.SIGTERM)
    assert k.wait(10) == 0


def test_bad_input_exits_without_running_anything(etcd3, tmp_path):
    marker = tmp_path / "ran"
    cmd = ["--", "sh", "-c", f"touch {marker}"]
    flags = etcd3.client_flags()
    cases = [
        (["elect", *flags, "--election", "x"], 64, "no COMMAND"),
        (["elect", *flags, "--election", "x", "--bogus", *cmd], 64, "bad flag"),
        (["elect", *flags, "--election", "", *cmd], 64, "empty"),
        (["elect", *flags, *cmd], 64, "--election is required"),
        (["elect", *flags, "--election", "x", "--ttl", "3s", "--renew-deadline", "3s", *cmd],
         64, "shorter than --ttl"),
        (["elect", *flags, "--election", "x", "--ttl", "soon", *cmd], 64, "--ttl"),
        # limits checked before any request (the first one used to reach etcd and exit 70)
        (["elect", *flags, "--election", "x", "--ttl", "2562047h", *cmd], 64,
         "--ttl: at most 9000000000s (the longest lease etcd grants), not 9223369200s"),
        (["elect", "--lease-name", "x", "--kubeconfig", str(tmp_path / "none"), "--ttl",
          "596524h", *cmd], 64,
         "--ttl: at most 2147483647s (a Lease's leaseDurationSeconds is an int32)"),
        (["elect", *flags, "--election", "x", "--restart", "maybe", *cmd], 64, "--restart"),
        (["elect", *flags, "--election", "x", "--", "/nonexistent/prog"], 64, "not found"),
        (["elect", "--endpoints", "https://127.0.0.1:1", *etcd3.tls_flags(), "--election", "x",
          "--dial-timeout", "300ms", *cmd], 69, "etcd"),
        (["elect", *flags, "--election", "x", "--cacert", "/nonexistent/ca.crt", *cmd], 78,
         "ca.crt"),
    ]
    for args, code, text in cases:
        p = run_kha(*args, timeout=30)
        assert p.returncode == code, f"{args}: {p.returncode} {p.stderr}"
        assert text in p.stderr, f"{args}: {p.stderr}"
        assert p.stderr.count("\n") <= 2, p.stderr
    assert not marker.exists(), "a COMMAND ran despite bad input"


def test_metrics(etcd3, procs, tmp_path):
    import urllib.request
    from conftest import free_port

    def scrape(port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            out = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    name, value = line.rsplit(" ", 1)
                    out[name.split("{")[0]] = float(value)
            return out

    rec = Recorder(tmp_path / "rec")
    pa, pb = free_port(), free_port()
    t_start = time.monotonic()
    a = procs.start(elect_args(etcd3, "met", "a", rec, "--metrics-addr", f"127.0.0.1:{pa}"), "a")
    wait_until(lambda: len(rec.starts()) == 1, 15, "a to lead", diag=procs.logs)
    b = procs.start(elect_args(etcd3, "met", "b", rec, "--metrics-addr", f"127.0.0.1:{pb}"), "b")
    wait_until(lambda: "msg=waiting" in b.log(), 10, "b to wait", diag=procs.logs)
    ma, mb = scrape(pa), scrape(pb)
    lived = time.monotonic() - t_start
    assert ma["kha_elect_is_leader"] == 1 and mb["kha_elect_is_leader"] == 0
    assert ma["kha_elect_transitions_total"] == 1 and ma["kha_elect_command_starts_total"] == 1
    # the campaign began after a's start and ended before this scrape: a duration in seconds
    # within that span (a wrong unit or a clock mix-up falls outside it)
    assert 0 < ma["kha_elect_acquire_duration_seconds"] < lived, (ma, lived)
    assert mb["kha_elect_renew_failures_total"] == 0
    a.signal(signal.SIGTERM)
    wait_until(lambda: scrape(pb)["kha_elect_is_leader"] == 1, 10, "b to lead",
               diag=procs.logs)


def test_sigterm_while_command_restarts_in_a_tight_loop(etcd3, procs, tmp_path):
    """A COMMAND that exits at once, restarted every millisecond: SIGTERM may find it already
    exited (a zombie not yet reaped); kha must still stop and exit promptly."""
    import random
    for i in range(6):
        k = procs.start(["elect", *etcd3.client_flags(), "--election", f"tight{i}", "--id", "a",
                         "--ttl", "2s", "--restart", "always", "--restart-delay", "1ms",
                         "--restart-delay-max", "2ms", "--", "sh", "-c", "true"], f"k{i}")
        wait_until(lambda: k.log().count("COMMAND started") >= 3, 10, "restarts",
                   diag=procs.logs)
        time.sleep(random.random() * 0.2)
        k.signal(signal.SIGTERM)
        assert k.wait(10) == 0, k.log()


def test_sigterm_repeated_during_the_stop(etcd3, procs, tmp_path):
    """SIGTERM sent again and again while kha stops COMMAND and resigns (an impatient operator,
    a supervisor that repeats itself): every one after the first is absorbed; kha still stops
    COMMAND, resigns and exits 0, never dying by the signal's default action on its way out."""
    rec = Recorder(tmp_path / "rec")
    for i in range(8):
        k = procs.start(elect_args(etcd3, f"again{i}", "a", rec), f"k{i}")
        wait_until(lambda: len(rec.starts()) == i + 1, 15, "the leader's COMMAND",
                   diag=procs.logs)
        child = rec.starts()[i]
        while k.alive():
            k.signal(signal.SIGTERM)
            time.sleep(0.001)  # the pace of the signal stream, not a wait for a condition
        assert k.wait(10) == 0, k.log()
        assert "msg=resigned" in k.log(), k.log()
        assert not pid_alive(child["pid"]), rec.dump()
        rec.note_dead(child["pid"])
        assert etcd_keys_under(etcd3, f"again{i}/") == 0  # resigned: our key is gone
    rec.assert_safe()
