# SPDX-License-Identifier: MIT
"""kha bgp: three masters announce one service address to a real router (BIRD 2, FRR, GoBGP) in
network namespaces; a client behind the router reaches it over ECMP.

Each test builds its own network (kha_testlib.bgp_lab: router, three masters with an HTTPS server
each, a client) with unique names, and deletes it in teardown even on failure. Runs as root.
"""
import collections
import json
import os
import shutil
import signal
import sys
import textwrap
import time

import pytest

from conftest import assert_no_sanitizer_report, kha_bin, run_kha
from kha_testlib.bgp_lab import BgpLab, sh, wait_for
from kha_testlib.process import SLACK, deadline

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")

# The timers the tests configure (kha_testlib.bgp_lab: kha bgp's flags, the routers' configs)
BFD_DETECT = 3 * 0.100  # BFD on both sides: multiplier 3 x 100 ms
TRACK_DETECT = 1 * 0.100 + 1.0  # --track-fall 1 x --track-interval 100ms, + a check's timeout
CONNECT_RETRY = 1.0  # kha --connect-retry 1s; BIRD connect retry time 1
BIRD_ERROR_WAIT_MAX = 5.0  # BIRD error wait time 1, 5: its longest pause between attempts


@pytest.fixture
def lab(tmp_path):
    if not shutil.which("bird"):
        pytest.skip("BIRD 2 is not installed")
    lab = BgpLab(tmpdir=str(tmp_path))
    try:
        yield lab
        for name, p, path in lab.procs:
            if name.startswith("kha-bgp-"):
                with open(path, errors="replace") as f:
                    assert_no_sanitizer_report(f.read(), name)
    finally:
        lab.close()


def start_all(lab, *extra, bfd=False, per_master=None, **bird):
    """BIRD on the router, kha bgp on every master (with per_master[m]'s extra flags). BFD at
    3 x 100 ms only where a test is about it: on a loaded machine (sanitizers, parallel labs)
    it may rightly declare a starved speaker dead."""
    lab.start_bird(bfd=bfd, **bird)
    per_master = per_master or {}
    procs = {m: lab.kha_bgp(kha_bin(), m, *extra, *per_master.get(m, []), bfd=bfd)
             for m in lab.masters}
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters), 30,
             "the router to install a path to every master")
    if bfd:
        wait_for(lambda: bird_bfd_up(lab) == set(lab.masters), 10,
                 "BIRD's BFD sessions with every master Up at 100 ms")
    return procs


def bird_bfd_up(lab):
    """The masters whose BFD session BIRD has Up at the fast interval."""
    up = set()
    for line in lab.birdc("show", "bfd", "sessions").splitlines():
        w = line.split()
        if len(w) >= 5 and w[2] == "Up" and w[4] == "0.100":
            up |= lab.masters_of({w[0]})
    return up


def spread(results):
    return collections.Counter(r["name"] for r in results if r["ok"])


def bgp_connections(ns):
    """The established TCP connections of BGP (port 179) in namespace ns: local and peer
    address:port of each, so a session torn down and made again shows as a new pair."""
    r = sh("ip", "netns", "exec", ns, "ss", "-Htn", "state", "established",
           "( sport = :179 or dport = :179 )")
    return sorted(tuple(line.split()[-2:]) for line in r.stdout.splitlines() if line.strip())


def held(lab, master):
    r = sh("ip", "-n", master, "-4", "-o", "addr", "show", "dev", "lo")
    return f" {lab.vip}/32" in r.stdout


# ---- BIRD 2 ----

def test_bird_ecmp_three_paths_new_connections_spread(lab):
    procs = start_all(lab)
    # the router's kernel table holds one route with three next hops
    assert lab.masters_of(lab.paths()) == set(lab.masters)
    results = lab.load(count=90)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    by = spread(results)
    assert set(by) == set(lab.masters), by
    # the address is on each master's lo while announced
    assert all(held(lab, m) for m in lab.masters)
    s = lab.status(lab.masters[0])
    assert s["announcing"] and s["peers"][0]["state"] == "Established"
    r = sh("ip", "netns", "exec", lab.masters[0], kha_bin(), "bgp", "status", "-o", "json",
           check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["peers"][0]["address"] == lab.addr[lab.router]
    r = sh("ip", "netns", "exec", lab.masters[0], kha_bin(), "bgp", "status", check=False)
    assert r.returncode == 0 and "Established" in r.stdout and "ANNOUNCED" in r.stdout
    m = lab.ns_http(lab.masters[0], "http://127.0.0.1:9445/metrics")
    assert 'kha_bgp_session_state{peer="%s",state="Established"} 1' % lab.addr[lab.router] in m
    assert "kha_bgp_announced 1" in m
    assert all(p.poll() is None for p in procs.values())


def test_bird_failing_track_withdraws_at_once(lab):
    start_all(lab)
    m1 = lab.masters[0]
    lab.set_healthy(m1, False)
    t0 = time.monotonic()
    # one failed check (interval 100ms, fall 1) and the path is gone
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters[1:]),
             deadline(TRACK_DETECT), "the router to drop the unhealthy master's path")
    took = time.monotonic() - t0
    assert not held(lab, m1)
    s = lab.status(m1)
    assert not s["announcing"] and s["peers"][0]["state"] == "Established"
    results = lab.load(count=45)
    assert all(r["ok"] for r in results)
    assert m1 not in spread(results)
    lab.set_healthy(m1, True)
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters), deadline(TRACK_DETECT),
             "the path back once healthy")
    assert held(lab, m1)
    print(f"withdrawn {took * 1000:.0f} ms after the health file went")


def test_bird_https_track_with_the_cluster_ca(lab):
    """The apiserver-like track: HTTPS /readyz verified with --track-cacert."""
    m1 = lab.masters[0]
    start_all(lab, per_master={m1: ["--track-url", "https://127.0.0.1:8443/readyz",
                                    "--track-cacert", lab.pki["ca"]]})
    s = lab.status(m1)
    wait_for(lambda: lab.status(m1)["tracks"][1]["detail"] == "HTTP 200", 10,
             "the HTTPS track verified")

    def set_ready(code):
        lab.server_post(m1, f"/admin/ready?code={code}")

    set_ready(503)
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters[1:]),
             deadline(TRACK_DETECT), "the path withdrawn while /readyz says 503")
    assert s["announcing"]
    set_ready(200)
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters), deadline(TRACK_DETECT),
             "the path back once ready")


def test_bird_bfd_sigkill_and_link_cut_drop_the_path_fast(lab):
    procs = start_all(lab, "--hold-time", "9s", bfd=True)
    m1 = lab.masters[0]
    wait_for(lambda: lab.status(m1)["peers"][0]["bfd"] == {"state": "Up", "detect_ms": 300.0,
                                                           "flaps": 0}, 10,
             "kha's BFD session Up with a 300 ms detection time")
    lab.link(m1, False)
    procs[m1].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters[1:]), 9,
             "the router to drop the dead master's path")
    took = time.monotonic() - t0
    # BFD 3 x 100 ms, not the 9 s hold time
    assert took < deadline(BFD_DETECT) < 9, took
    results = lab.load(count=45)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    assert m1 not in spread(results)
    print(f"path dropped {took * 1000:.0f} ms after SIGKILL and link cut")
    # the master back: its path back
    lab.link(m1, True)
    lab.kha_bgp(kha_bin(), m1, tag="-again")
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters), 30,
             "the path of the master back")


LOAD_STEP_TIMEOUT = 2.0  # the load client's connect and read timeout (kha_testlib/bgp_lab.py)


def stop_gracefully(lab, proc, master):
    """SIGTERM to master's kha bgp; awaits GRACEFUL_SHUTDOWN on its route at the router and the
    router's ECMP set without it, and checks it is still draining. Returns (the signal's
    time, the time the move was seen), time.monotonic()'s."""
    proto = master.replace("-", "_")
    t_term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "(65535,0)" in lab.birdc("show", "route", "protocol", proto, "all"), 5,
             "the GRACEFUL_SHUTDOWN community at the router")
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters) - {master}, 5,
             "the router to move away from the draining master")
    t_moved = time.monotonic()
    # draining: still announced (with the community), still serving on its address
    assert proc.poll() is None and held(lab, master)
    assert "Established" in lab.birdc("show", "protocols", proto)
    return t_term, t_moved


def await_graceful_exit(lab, proc, master, timeout):
    """The end of the drain: a clean exit, the route withdrawn at the router, the address gone,
    the Cease sent. Returns the time of the exit (time.monotonic()'s)."""
    rc = proc.wait(timeout=timeout)
    t_exit = time.monotonic()
    assert rc == 0, lab.log(proc)[-2000:]
    assert lab.birdc("show", "route", "protocol", master.replace("-", "_")).count(lab.vip) == 0
    assert not held(lab, master)
    log = lab.log(proc)
    assert "graceful_shutdown=true" in log and "code=6 subcode=2" in log
    return t_exit


def test_bird_sigterm_graceful_shutdown(lab):
    """Behind the lab's stateless ECMP router: at most the request in flight when the path
    moves fails (test_bird_sigterm_with_flow_pinning_fails_nothing: none, with flow state)."""
    procs = start_all(lab, "--graceful-shutdown-wait", "3s")
    m1 = lab.masters[0]
    load = lab.start_load()
    wait_for(lambda: os.path.getsize(load.out) > 0, 10, "the client to start")
    # the router sees GRACEFUL_SHUTDOWN on the route and drops the path from the ECMP set
    t_term, t_moved = stop_gracefully(lab, procs[m1], m1)
    t_term -= load.t0
    t_exit = await_graceful_exit(lab, procs[m1], m1, 15) - load.t0
    # The client is sequential and each of its steps has a 2 s timeout, so a request either
    # ends (answered or failed) or the next one starts: awaiting one that started after the
    # master's exit makes the results cover the whole drain, with no gap a stall could hide in.
    wait_for(lambda: any(r["t"] > t_exit for r in lab.load_results(load)),
             deadline(3 * LOAD_STEP_TIMEOUT), "a request started after the master's exit")
    results = lab.stop_load(load)
    failed = [r for r in results if not r["ok"]]
    moved = t_moved - load.t0
    after = [r for r in results if r["ok"] and r["t"] > moved + 0.2]
    # requests kept being answered from before the SIGTERM to after the exit
    assert any(r["t"] < t_term for r in results), results[:3]
    assert any(r["t"] > t_exit for r in after), results[-3:]
    # The router changes its ECMP set once (when GRACEFUL_SHUTDOWN lowers this path); the
    # later withdrawal and the stop change nothing for it. A connection in flight at that
    # moment may be hashed to another master and reset (the router's stateless hashing, see
    # docs/bgp.md); this sequential client has at most one in flight. Nothing else may fail.
    assert len(failed) <= 1 and all(r["t"] < moved for r in failed), failed
    assert m1 not in spread(after)
    print(f"graceful shutdown: {len(results)} requests, {len(failed)} failed")


@pytest.mark.parametrize("mode", ["new-connections", "keep-alive"])
def test_bird_sigterm_with_flow_pinning_fails_nothing(lab, mode):
    """The router keeps flow state (BgpLab.pin_flows: conntrack + policy routing, as in
    docs/bgp.md): a connection stays on the master it started on, new ones follow the ECMP
    set. Then a graceful stop fails no request at all.
    Both: a long response (a watch) from the draining master keeps flowing after the router
    moved away (a stateless router breaks it at once).
    new-connections: two clients, a new TLS connection per request, all the time.
    keep-alive: one client holding a persistent connection to each master; once the router
    has moved away, the draining master's server answers with "Connection: close" (as a server
    that is being stopped does) and the client reopens that connection, elsewhere."""
    # The drain must cover the test's steps between the SIGTERM and the last request on the
    # draining master (the move, the long response seen after it, the keep-alive request seen
    # after it, the server told to close, the client's next request): a few client steps and
    # two short commands; what the drain does not cover fails the test, as it would a client
    drain = 2 * LOAD_STEP_TIMEOUT + 2 * SLACK
    procs = start_all(lab, "--graceful-shutdown-wait", f"{int(drain * 1000)}ms")
    lab.pin_flows()
    m1 = lab.masters[0]
    if mode == "keep-alive":
        loads = [lab.start_load(keepalive=lab.masters)]
        wait_for(lambda: lab.load_results(loads[0]) and getattr(loads[0], "ready", None), 60,
                 "the client's connection to every master")
        assert loads[0].ready == lab.masters, loads[0].ready
        slot = loads[0].ready.index(m1)
    else:
        loads = [lab.start_load(), lab.start_load()]
    # and a long response from m1 (a watch), on a connection of its own
    stream = lab.start_stream(m1)
    wait_for(lambda: lab.load_results(stream) and getattr(stream, "ready", None), 60,
             "the long response from m1")
    assert stream.ready == m1
    wait_for(lambda: all(lab.load_results(p) for p in loads) and
             all(n > 0 for n in lab.new_connections().values()), 20,
             "the router to pin connections to every master")
    t_term, t_moved = stop_gracefully(lab, procs[m1], m1)
    pinned_at_move = lab.new_connections()[m1]
    # the long response keeps coming from m1 after the move; the client then ends it
    wait_for(lambda: any(r["at"] > t_moved and "line" in r for r in lab.load_results(stream)),
             deadline(LOAD_STEP_TIMEOUT), "m1's long response after the move")
    lines = lab.stop_load(stream)
    assert not [r for r in lines if "err" in r], lines[-3:]
    if mode == "keep-alive":
        def on_m1(cond):
            return [r for r in lab.load_results(loads[0]) if r["slot"] == slot and cond(r)]
        # the connection to m1 outlives the move: answered by m1 on the same connection
        wait_for(lambda: on_m1(lambda r: r["at"] > t_moved and r["ok"] and r["name"] == m1
                               and not r["fresh"]),
                 deadline(LOAD_STEP_TIMEOUT), "a request on m1's connection after the move")
        lab.server_post(m1, "/admin/close?on=1")
        # the server closes it; the client's next connection goes to a remaining master
        wait_for(lambda: on_m1(lambda r: r["ok"] and r["fresh"] and r["at"] > t_moved),
                 deadline(2 * LOAD_STEP_TIMEOUT), "m1's connection closed and reopened")
    # the withdrawal after the drain, then the Cease; the address left with the announcement
    t_exit = await_graceful_exit(lab, procs[m1], m1, deadline(drain))
    # the clients are sequential with a step timeout: one request started after the exit in
    # each means the results cover the whole drain
    wait_for(lambda: all(any(r["at"] > t_exit for r in lab.load_results(p)) for p in loads),
             deadline(3 * LOAD_STEP_TIMEOUT), "a request started after the master's exit")
    results = [r for p in loads for r in lab.stop_load(p)]
    failed = [r for r in results if not r["ok"]]
    assert not failed, failed[:5]
    assert any(r["at"] < t_term for r in results) and any(r["at"] > t_exit for r in results)
    # no new connection went to the draining master once its path had left: the router's
    # count of connections pinned to it stopped, and the client's requests after the move
    # that m1 answered were all on connections opened before it
    assert lab.new_connections()[m1] == pinned_at_move
    late = [r for r in results if r["at"] > t_moved and r["name"] == m1]
    if mode == "keep-alive":
        assert late and not any(r["fresh"] for r in late), late
        # after "Connection: close" nothing more went to m1
        closed = min(r["at"] for r in late if r["close"])
        assert not [r for r in late if r["at"] > closed]
    else:
        assert not late, late[:5]
    # answered by m1 yet ended after the move was seen: started before the router moved (no
    # new connection went there after), so in flight at that moment, where a stateless
    # router re-hashes them (test_bird_sigterm_graceful_shutdown)
    crossing = [r for r in results if r["name"] == m1 and r["at"] + r["d"] > t_moved]
    print(f"graceful shutdown with flow pinning ({mode}): {len(results)} requests, "
          f"0 failed, {len(crossing)} on the draining master across the move")


def test_malformed_messages_get_the_rfc_notification(lab, tmp_path):
    """A stand-in peer (BIRD cannot be made to send malformed messages) sends three bad
    messages on three sessions; kha answers each with the RFC's NOTIFICATION, counts it and
    keeps announcing to BIRD."""
    m1 = lab.masters[0]
    fake = lab.client  # reachable from the masters through the router
    script = textwrap.dedent("""
        import json, socket, struct, sys
        M = b"\\xff" * 16
        def msg(t, body): return M + struct.pack("!HB", 19 + len(body), t) + body
        def opn(version=4):
            caps = bytes([2, 6, 65, 4]) + struct.pack("!I", 65100)
            return msg(1, bytes([version]) + struct.pack("!HH", 65100, 9) + bytes([9, 9, 9, 9])
                       + bytes([len(caps)]) + caps)
        def read_msg(c):
            h = b""
            while len(h) < 19:
                b = c.recv(19 - len(h))
                if not b: return None
                h += b
            n = struct.unpack("!H", h[16:18])[0]
            body = b""
            while len(body) < n - 19:
                b = c.recv(n - 19 - len(body))
                if not b: return None
                body += b
            return h[18], body
        bad_update = msg(2, struct.pack("!HH", 0, 4) + bytes([0x40, 1, 1, 7]))
        cases = [("open-version", [opn(3)]),
                 ("update-origin", [opn(), msg(4, b""), bad_update]),
                 ("marker", [opn(), msg(4, b""), b"\\xfe" + msg(4, b"")[1:]])]
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 179)); s.listen(4); s.settimeout(30)
        for name, sends in cases:
            c, _ = s.accept(); c.settimeout(10)
            got = None
            try:
                read_msg(c)  # kha's OPEN
                for m in sends: c.sendall(m)
                while True:
                    r = read_msg(c)
                    if r is None: break
                    if r[0] == 3: got = [r[1][0], r[1][1]]; break
            except OSError as e:
                got = str(e)
            print(json.dumps({"case": name, "notification": got}), flush=True)
            c.close()
    """)
    out = os.path.join(str(tmp_path), "fake.jsonl")
    with open(out, "w") as f:
        fp = lab.spawn(fake, "fake-peer", [sys.executable, "-c", script], stdout=f)
    wait_for(lambda: lab._listening(fake, 179), 10, "the stand-in peer")
    p = start_all(lab, per_master={m1: ["--peer", f"{lab.addr[fake]},as=65100"]})[m1]
    fp.wait(timeout=40)
    with open(out) as f:
        got = {j["case"]: j["notification"] for j in map(json.loads, f)}
    assert got == {"open-version": [2, 1], "update-origin": [3, 6], "marker": [1, 1]}, got
    s = lab.status(m1)
    fakepeer = [x for x in s["peers"] if x["address"] == lab.addr[fake]][0]
    assert fakepeer["malformed_messages"] == 3
    router = [x for x in s["peers"] if x["address"] == lab.addr[lab.router]]
    assert router[0]["state"] == "Established" and router[0]["flaps"] == 0
    assert p.poll() is None
    log = lab.log(p)
    assert 'error="UPDATE message error, invalid ORIGIN attribute"' in log
    assert lab.masters_of(lab.paths()) == set(lab.masters)


def test_bird_sighup_reloads_communities_and_peers(lab, tmp_path):
    m1 = lab.masters[0]
    proto = m1.replace("-", "_")
    conf = tmp_path / "bgp.yaml"
    conf.write_text("community: ['65001:1']\n")
    procs = start_all(lab, per_master={m1: ["--config", str(conf)]})
    wait_for(lambda: "(65001,1)" in lab.birdc("show", "route", "protocol", proto, "all"), 10,
             "the community at the router")
    session = bgp_connections(m1)
    assert len(session) == 1, session
    # a community changed and a peer added (nobody there: it stays Connect/Active)
    conf.write_text(f"community: ['65001:2']\npeer: ['{lab.addr[lab.client]},as=65100']\n")
    procs[m1].send_signal(signal.SIGHUP)
    wait_for(lambda: "(65001,2)" in lab.birdc("show", "route", "protocol", proto, "all"), 10,
             "the new community at the router")
    s = lab.status(m1)
    assert [p["address"] for p in s["peers"]] == [lab.addr[lab.router], lab.addr[lab.client]]
    # the router's session was not touched: the same TCP connection, never down (BIRD's
    # "since" column is no witness: it moved by 1 ms once under load with the session intact)
    assert bgp_connections(m1) == session
    assert s["peers"][0]["flaps"] == 0 and s["peers"][0]["state"] == "Established", s
    assert "Established" in lab.birdc("show", "protocols", proto)
    conf.write_text("community: ['65001:2']\n")
    procs[m1].send_signal(signal.SIGHUP)
    wait_for(lambda: len(lab.status(m1)["peers"]) == 1, 10, "the extra peer removed")
    # a bad configuration changes nothing
    conf.write_text("community: ['not-a-community']\n")
    procs[m1].send_signal(signal.SIGHUP)
    wait_for(lambda: 'result="failed"} 1' in lab.ns_http(m1, "http://127.0.0.1:9445/metrics"),
             10, "the failed reload counted")
    assert "(65001,2)" in lab.birdc("show", "route", "protocol", proto, "all")
    assert procs[m1].poll() is None


def test_bird_tcp_md5_and_gtsm(lab, tmp_path):
    """TCP-MD5 (RFC 2385) and GTSM (RFC 5082) with BIRD: the right password establishes, a
    wrong one never does."""
    good, bad = tmp_path / "md5", tmp_path / "md5-wrong"
    good.write_text("s3cret-kha\n")
    bad.write_text("wrong\n")
    os.chmod(good, 0o600)
    lab.start_bird(bfd=False, neighbor_extra='password "s3cret-kha"; ttl security on;')
    m1, m2 = lab.masters[0], lab.masters[1]
    lab.kha_bgp(kha_bin(), m1, "--md5-password-file", str(good), "--gtsm", bfd=False)
    lab.kha_bgp(kha_bin(), m2, "--md5-password-file", str(bad), "--gtsm", bfd=False)
    wait_for(lambda: lab.masters_of(lab.paths()) == {m1}, 30, "the signed session's path")
    # The wrong password: each side's kernel drops the other's segments, signed with another
    # key, and counts them (TCPMD5Failure: not a missing signature, a wrong one). Await two in
    # each direction (an attempt after the first one failed was refused as well): kha's
    # connects to BIRD and BIRD's to kha, each retried within CONNECT_RETRY (BIRD pauses up to
    # its error wait after a failure); then nothing may have established.
    wait_for(lambda: lab.tcp_md5_failures(lab.router) >= 2 and lab.tcp_md5_failures(m2) >= 2,
             deadline(CONNECT_RETRY + BIRD_ERROR_WAIT_MAX),
             "both kernels to refuse the segments signed with the other password")
    assert lab.masters_of(lab.paths()) == {m1}
    assert lab.status(m2)["peers"][0]["state"] != "Established"
    assert lab.status(m2)["peers"][0]["flaps"] == 0
    assert "Established" not in lab.birdc("show", "protocols", m2.replace("-", "_"))
    assert "Established" in lab.birdc("show", "protocols", m1.replace("-", "_"))


def test_audit_knows_the_bgp_entry(lab):
    """kha audit --bgp reads every master's kha bgp: one master announcing is critical."""
    start_all(lab, per_master={m: ["--metrics-addr", f"{lab.addr[m]}:9445"]
                               for m in lab.masters})
    args = [a for m in lab.masters for a in ("--bgp", f"{lab.addr[m]}:9445")]

    def audit():
        r = sh("ip", "netns", "exec", lab.router, kha_bin(), "audit", *args, "-o", "json",
               check=False)
        rep = json.loads(r.stdout)
        return r.returncode, {f["check"]: f for f in rep["findings"]
                              if f["check"] == "bgp-announce"}, rep

    code, found, rep = audit()
    assert found["bgp-announce"]["severity"] == "ok", rep
    assert rep["sources"]["bgp"]["status"] == "audited"
    # one router per master: a warning each (the master is cut off with it)
    sessions = [f for f in rep["findings"] if f["check"] == "bgp-sessions"]
    assert len(sessions) == 3 and all(f["severity"] == "warning" for f in sessions)
    for m in lab.masters[1:]:
        lab.set_healthy(m, False)
    wait_for(lambda: lab.masters_of(lab.paths()) == {lab.masters[0]}, deadline(TRACK_DETECT),
             "two masters withdrawn")
    code, found, rep = audit()
    assert code == 2 and found["bgp-announce"]["severity"] == "critical"
    assert "one master only" in found["bgp-announce"]["finding"]


# ---- FRR ----

@pytest.fixture
def frr_lab(tmp_path):
    if not os.path.exists("/usr/lib/frr/bgpd"):
        pytest.skip("FRR is not installed")
    lab = BgpLab(tmpdir=str(tmp_path))
    try:
        yield lab
        for name, p, path in lab.procs:
            if name.startswith("kha-bgp-"):
                with open(path, errors="replace") as f:
                    assert_no_sanitizer_report(f.read(), name)
    finally:
        lab.close()


def frr_bfd_up(lab):
    return {w[2] for w in (line.split() for line in lab.vtysh("show bfd peers brief").splitlines())
            if len(w) >= 4 and w[3] == "up"}


def test_frr_ecmp_and_bfd(frr_lab):
    lab = frr_lab
    lab.start_frr()
    procs = {m: lab.kha_bgp(kha_bin(), m, "--hold-time", "9s") for m in lab.masters}
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters), 30,
             "FRR to install a path to every master (maximum-paths)")
    wait_for(lambda: lab.masters_of(frr_bfd_up(lab)) == set(lab.masters), 15,
             "FRR's BFD sessions Up")
    results = lab.load(count=90)
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    assert set(spread(results)) == set(lab.masters), spread(results)
    m1 = lab.masters[0]
    lab.link(m1, False)
    procs[m1].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: lab.masters_of(lab.paths()) == set(lab.masters[1:]), 9,
             "FRR to drop the dead master's path")
    took = time.monotonic() - t0
    assert took < deadline(BFD_DETECT) < 9, took
    results = lab.load(count=30)
    assert all(r["ok"] for r in results) and m1 not in spread(results)
    print(f"FRR dropped the path {took * 1000:.0f} ms after SIGKILL and link cut")


# ---- GoBGP ----

def test_gobgp_accepts_ipv4_and_ipv6_announcements(tmp_path):
    if not shutil.which("gobgpd"):
        pytest.skip("GoBGP is not installed")
    with BgpLab(tmpdir=str(tmp_path)) as lab:
        lab.start_gobgp_router(ipv6=True)
        v6 = f"fd00:{lab.net.split('.')[1]}::1/128"
        procs = [lab.kha_bgp(kha_bin(), m, "--announce", v6, "--next-hop", f"fd00:99::{11 + i}",
                             "--community", "65001:7", "--med", "20", bfd=False)
                 for i, m in enumerate(lab.masters)]

        def rib(family):
            out = lab.gobgp("global", "rib", "-a", family, "-j")
            return json.loads(out) if out.strip().startswith("{") else {}

        wait_for(lambda: len(rib("ipv4").get(f"{lab.vip}/32", [])) == 3 and
                 len(rib("ipv6").get(v6, [])) == 3, 30, "GoBGP to accept every master's paths")
        hops4, hops6 = set(), set()
        for path in rib("ipv4")[f"{lab.vip}/32"]:
            attrs = {a["type"]: a for a in path["attrs"]}
            hops4.add(attrs[3]["nexthop"])
            assert attrs[8]["communities"] == [65001 << 16 | 7]
            assert attrs[4]["metric"] == 20
            assert attrs[2]["as_paths"][0]["asns"] == [lab.MASTER_AS]
        for path in rib("ipv6")[v6]:
            attrs = {a["type"]: a for a in path["attrs"]}
            hops6.add(attrs[14]["nexthop"])
        assert hops4 == {lab.addr[m] for m in lab.masters}
        assert hops6 == {f"fd00:99::{11 + i}" for i in range(3)}
        # SIGTERM: withdrawn from GoBGP, a clean exit
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(timeout=20) == 0
        wait_for(lambda: len(rib("ipv4").get(f"{lab.vip}/32", [])) == 2 and
                 len(rib("ipv6").get(v6, [])) == 2, 10, "the stopped master's paths withdrawn")
        for p in procs:
            assert_no_sanitizer_report(lab.log(p), "kha bgp")


def test_gobgp_session_over_ipv6(tmp_path):
    """A session over IPv6 transport: IPv6 next hop self (RFC 2545), IPv4 by MP-BGP with
    --next-hop."""
    if not shutil.which("gobgpd"):
        pytest.skip("GoBGP is not installed")
    with BgpLab(tmpdir=str(tmp_path)) as lab:
        n = lab.net.split(".")[1]
        m = lab.masters[0]
        sh("ip", "-n", lab.router, "addr", "add", f"fd00:{n}::1/64", "dev", "br0", "nodad")
        sh("ip", "-n", m, "addr", "add", f"fd00:{n}::11/64", "dev", "eth0", "nodad")
        conf = tmp_path / "gobgpd.toml"
        conf.write_text(textwrap.dedent(f"""
            [global.config]
              as = {lab.ROUTER_AS}
              router-id = "{lab.net}.1"
            [[neighbors]]
              [neighbors.config]
                neighbor-address = "fd00:{n}::11"
                peer-as = {lab.MASTER_AS}
              [neighbors.timers.config]
                connect-retry = 1
              [[neighbors.afi-safis]]
                [neighbors.afi-safis.config]
                  afi-safi-name = "ipv6-unicast"
              [[neighbors.afi-safis]]
                [neighbors.afi-safis.config]
                  afi-safi-name = "ipv4-unicast"
        """))
        lab.spawn(lab.router, "gobgpd", ["gobgpd", "-f", str(conf), "-t", "toml",
                                         "--api-hosts", "127.0.0.1:50051"])
        v6 = f"fd00:{n}:200::1/128"
        p = lab.spawn(m, "kha-bgp-v6", [kha_bin(), "bgp", "--router-id", lab.addr[m],
                                        "--local-as", lab.MASTER_AS, "--peer", f"fd00:{n}::1",
                                        "--peer-as", lab.ROUTER_AS, "--announce", v6,
                                        "--announce", f"{lab.vip}/32", "--next-hop",
                                        lab.addr[m], "--connect-retry", "1s"])

        def hop(family, prefix):
            out = lab.gobgp("global", "rib", "-a", family, "-j")
            paths = json.loads(out).get(prefix, []) if out.strip().startswith("{") else []
            for path in paths:
                for a in path["attrs"]:
                    if a["type"] in (3, 14):
                        return a["nexthop"]
            return None

        wait_for(lambda: hop("ipv6", v6) == f"fd00:{n}::11" and
                 hop("ipv4", f"{lab.vip}/32") == lab.addr[m], 30,
                 "GoBGP to accept both families over the IPv6 session")
        r = sh("ip", "-n", m, "-6", "-o", "addr", "show", "dev", "lo")
        assert f"fd00:{n}:200::1/128" in r.stdout
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
        assert_no_sanitizer_report(lab.log(p), "kha bgp")


# ---- the command line ----

@pytest.mark.parametrize("args,fragment", [
    (["--local-as", "65001", "--peer", "10.0.0.1", "--peer-as", "65000", "--announce",
      "10.96.0.1/32"], "--router-id is required"),
    (["--router-id", "10.0.0.11", "--local-as", "65001", "--peer", "10.0.0.1", "--announce",
      "10.96.0.1/32"], "--peer-as is required"),
    (["--router-id", "10.0.0.11", "--local-as", "0"], "expected an AS number"),
    (["--router-id", "fd00::1"], "expected a non-zero IPv4 address"),
    (["--announce", "10.96.0.1/33"], "the length must be 0..32"),
    (["--peer", "10.0.0.1,colour=red"], "unknown option 'colour=red'"),
    (["--hold-time", "2s"], "0 (no keepalives) or whole seconds"),
    (["--community", "70000:1"], "expected a community"),
    (["--md5-password-file", "/nonexistent/kha-md5"], "/nonexistent/kha-md5"),
])
def test_bad_flags_are_named(args, fragment):
    r = run_kha("bgp", *args)
    assert r.returncode == 64, r.stderr
    assert fragment in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_status_without_daemon_is_unavailable():
    r = run_kha("bgp", "status", "--metrics-addr", "127.0.0.1:1")
    assert r.returncode == 69 and "is kha bgp running" in r.stderr
