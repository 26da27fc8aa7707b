# SPDX-License-Identifier: MIT
"""kha proxy against real TLS and TCP servers: byte-exact proxying, half-close, membership,
draining, graceful stop, bad input. Failover under load is in test_proxy_failover.py."""
import os
import signal
import socket
import ssl
import threading
import time

import pytest

from conftest import assert_no_sanitizer_report, kha_bin, run_kha
from kha_testlib.backends import (Backend, ProxyProc, Stream, client_context, free_port,
                                  https_request, make_pki, pattern, wait_for)
from kha_testlib.process import assert_not_spinning, assert_stays, deadline, stop_all


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def backends(pki, tmp_path):
    started = []

    def make(n, kind="tls", report=None):
        for i in range(n):
            b = Backend(kind, f"b{len(started)}", pki, report=report)
            started.append(b)
            b.start()
        return started[-n:]

    yield make
    for b in started:
        b.close()


@pytest.fixture
def proxy(tmp_path, pki):
    started = []

    def make(backends, *args, check=True, start=True):
        a = []
        for b in backends:
            a += ["--backend", b.addr]
        if check:
            a += ["--check-cacert", pki["ca"], "--check-interval", "300ms",
                  "--check-fast-interval", "100ms", "--check-timeout", "500ms",
                  "--check-fall", "2", "--check-rise", "2"]
        p = ProxyProc(kha_bin(), [*a, *args], tmp_path)
        started.append(p)
        return p.start() if start else p

    yield make
    # every proxy is stopped (gracefully, checked) before any failure is raised
    stop_all(started)


def all_up(p, n):
    """n backends up, each with a passed check (not only assumed up at start)."""
    st = p.status()
    return st["ready"] and sum(b["state"] == "up" and b["last_check"]["result"] == "ok"
                               for b in st["backends"]) == n


@pytest.mark.parametrize("workers", [1, 2])
def test_proxy_passes_bodies_byte_exact(backends, proxy, pki, workers):
    bs = backends(2)
    p = proxy(bs, "--workers", workers)
    wait_for(lambda: all_up(p, 2), 10, "backends up")
    size = 8 * 1024 * 1024 + 17
    status, body = https_request(p.port, f"/large?n={size}", pki["ca"])
    assert status == 200 and body == pattern(size)
    upload = os.urandom(5 * 1024 * 1024 + 3)
    status, body = https_request(p.port, "/echo", pki["ca"], method="POST", body=upload)
    assert status == 200 and body == upload
    s = Stream(p.port, pki["ca"])
    assert s.backend in ("b0", "b1") and s.read_lines(5)
    s.close()
    # both backends served (leastconn spreads new connections)
    names = {https_request(p.port, "/version", pki["ca"])[1] for _ in range(6)}
    assert len(names) == 2
    m = p.metrics_text()
    assert f'kha_proxy_backend_up{{backend="{bs[0].addr}"}} 1' in m
    assert "kha_proxy_workers %d" % workers in m


def test_proxy_half_close_both_ways(backends, proxy, tmp_path):
    report = str(tmp_path / "report")
    bs = backends(1, kind="tcp", report=report)
    p = proxy(bs, "--check", "tcp")
    data = os.urandom(3 * 1024 * 1024)
    # client half-closes: the backend sees EOF and still answers
    c = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    got = []
    t = threading.Thread(target=lambda: got.extend(iter(lambda: c.recv(65536), b"")))
    t.start()
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    t.join(15)
    c.close()
    assert b"".join(got) == data + b"END %d" % len(data)
    # the backend half-closes: the client sees EOF and can still send
    c = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    c.sendall(b"hello\nBYE\n")
    echoed = b"".join(iter(lambda: c.recv(65536), b""))
    assert echoed == b"hello\nBYE\n"
    c.sendall(b"x" * 100000)
    c.shutdown(socket.SHUT_WR)
    c.close()
    wait_for(lambda: os.path.exists(report) and "received=100010 " in open(report).read(), 10,
             "the backend to receive the bytes sent after its half-close")


def test_proxy_reset_propagates_to_backend(backends, proxy, tmp_path):
    report = str(tmp_path / "report")
    bs = backends(1, kind="tcp", report=report)
    p = proxy(bs, "--check", "tcp")
    c = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    c.sendall(b"ping\n")
    assert c.recv(100) == b"ping\n"
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST
    wait_for(lambda: os.path.exists(report) and "reset=1" in open(report).read(), 10,
             "the backend to see a reset")


def test_draining_backend_keeps_its_stream_gets_no_new_connections(backends, proxy, pki):
    bs = backends(2)
    p = proxy(bs)
    wait_for(lambda: all_up(p, 2), 10, "backends up")
    s = Stream(p.port, pki["ca"])
    target = next(b for b in bs if b.name == s.backend)
    other = next(b for b in bs if b is not target)
    target.set_ready(500)
    wait_for(lambda: p.backend(target.addr)["state"] == "draining", 10, "draining")
    assert p.backend(target.addr)["active_connections"] == 1
    for _ in range(5):
        assert https_request(p.port, "/version", pki["ca"])[1] == b'{"name": "%s"}' % \
            other.name.encode()
    assert s.read_lines(10), "the draining backend's stream must go on"
    target.set_ready(200)
    wait_for(lambda: p.backend(target.addr)["state"] == "up", 10, "back up")
    s.close()


def test_dead_backend_connections_are_closed(backends, proxy, pki):
    bs = backends(2)
    p = proxy(bs)
    wait_for(lambda: all_up(p, 2), 10, "backends up")
    s = Stream(p.port, pki["ca"])
    target = next(b for b in bs if b.name == s.backend)
    target.signal(signal.SIGSTOP)
    # interval 300ms x fall 2 + timeout 500ms, plus slack for a loaded machine
    assert s.closed_within(8), "the frozen backend's stream was not closed"
    assert p.backend(target.addr)["state"] == "down"
    assert f'kha_proxy_backend_dead_closed_total{{backend="{target.addr}"}} 1' in p.metrics_text()
    s.close()
    target.signal(signal.SIGCONT)
    wait_for(lambda: p.backend(target.addr)["state"] == "up", 10, "up after SIGCONT")


def test_dead_backend_connections_stay_with_close_on_dead_false(backends, proxy, pki):
    bs = backends(2)
    p = proxy(bs, "--close-on-dead", "false")
    wait_for(lambda: all_up(p, 2), 10, "backends up")
    s = Stream(p.port, pki["ca"])
    target = next(b for b in bs if b.name == s.backend)
    target.signal(signal.SIGSTOP)
    wait_for(lambda: p.backend(target.addr)["state"] == "down", 10, "down")
    assert p.backend(target.addr)["active_connections"] == 1
    target.signal(signal.SIGCONT)
    assert s.read_lines(3)
    s.close()


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def test_backends_file_reload_keeps_connections(backends, proxy, pki, tmp_path):
    a, b, c = backends(3)
    path = str(tmp_path / "backends.yaml")
    write_atomically(path, f"- {a.addr}\n- {b.addr},weight=2\n")
    p = proxy([], "--backends-file", path)
    wait_for(lambda: all_up(p, 2), 10, "a and b up")
    streams = [Stream(p.port, pki["ca"]) for _ in range(4)]
    assert {s.backend for s in streams} == {"b0", "b1"}
    # atomic rename: a out, c in
    write_atomically(path, f"backends:\n  - {b.addr}\n  - address: {c.addr}\n    weight: 1\n")
    wait_for(lambda: {x["address"] for x in p.status()["backends"] if not x["removed"]} ==
             {b.addr, c.addr}, 10, "the file change applied")
    wait_for(lambda: all_up(p, 2), 10, "b and c up")
    for s in streams:  # removed or not, established connections go on
        assert s.read_lines(3)
    names = {https_request(p.port, "/version", pki["ca"])[1] for _ in range(6)}
    # leastconn: the new, empty c takes them; the removed a never does
    assert b'{"name": "b2"}' in names and b'{"name": "b0"}' not in names
    # a broken file is refused: the current backends stay
    write_atomically(path, "- not an address\n")
    reloads = p.status()
    p.signal(signal.SIGHUP)
    wait_for(lambda: "backends file not applied" in p.read_err(), 10, "the refusal logged")
    assert {x["address"] for x in p.status()["backends"] if not x["removed"]} == {b.addr, c.addr}
    # SIGHUP re-reads it
    with open(path, "w") as f:
        f.write(f"- {a.addr}\n")
    p.signal(signal.SIGHUP)
    wait_for(lambda: {x["address"] for x in p.status()["backends"] if not x["removed"]} ==
             {a.addr}, 10, "SIGHUP applied")
    del reloads
    for s in streams:
        s.close()


def test_sigterm_drains_then_exits(backends, proxy, pki):
    bs = backends(1)
    p = proxy(bs, "--drain-timeout", "20s")
    wait_for(lambda: all_up(p, 1), 10, "up")
    s = Stream(p.port, pki["ca"], n=30)  # 1.5 s of events, then the end
    p.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in p.read_err(), 5, "draining")

    def refused():  # the workers close their listeners as they get the drain message
        try:
            socket.create_connection(("127.0.0.1", p.port), timeout=2).close()
            return False
        except OSError:
            return True
    wait_for(refused, 5, "new connections refused")
    assert s.read_lines(29), "the established stream must finish"
    assert s.closed_within(5)  # the backend's end of response reaches the client...
    s.close()  # ...which closes its side: the last connection is done
    assert p.proc.wait(timeout=10) == 0


def test_drain_timeout_closes_what_is_left(backends, proxy, pki):
    bs = backends(1)
    p = proxy(bs, "--drain-timeout", "300ms")
    s = Stream(p.port, pki["ca"])
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    assert s.closed_within(10)
    assert p.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < deadline(0.3)
    s.close()


def test_status_command(backends, proxy):
    bs = backends(2)
    p = proxy(bs)
    wait_for(lambda: all_up(p, 2), 10, "up")
    r = run_kha("proxy", "status", "--metrics-addr", p.metrics)
    assert r.returncode == 0, r.stderr
    assert bs[0].addr in r.stdout and "2 of 2 backends up; ready" in r.stdout
    r = run_kha("proxy", "status", "--metrics-addr", p.metrics, "-o", "json")
    import json
    st = json.loads(r.stdout)
    assert st["version"] == 1 and len(st["backends"]) == 2
    assert st["backends"][0]["last_check"]["result"] == "ok"
    bs[1].kill()
    wait_for(lambda: p.backend(bs[1].addr)["state"] == "down", 10, "down")
    r = run_kha("proxy", "status", "--metrics-addr", p.metrics)
    assert r.returncode == 1 and "1 of 2 backends up" in r.stdout
    # the table: LAST CHECK is whole (it is the diagnosis) and its column lines up
    lc = json.loads(run_kha("proxy", "status", "--metrics-addr", p.metrics, "-o",
                            "json").stdout)
    down = next(b for b in lc["backends"] if b["address"] == bs[1].addr)["last_check"]
    lines = r.stdout.splitlines()
    row = next(line for line in lines if line.startswith(bs[1].addr))
    # (read twice: the numbers in curl's message, "after N ms", may differ)
    import re
    text = re.sub(r"\d+", "N", f"{down['result']} ({down['detail']})")
    col = lines[0].index("LAST CHECK")
    assert re.sub(r"\d+", "N", row[col:]) == text, (row, text)
    r = run_kha("proxy", "status", "--metrics-addr", f"127.0.0.1:{free_port()}")
    assert r.returncode == 69 and r.stderr.count("\n") == 1


def test_readyz_follows_backends(backends, proxy, pki):
    import urllib.request
    bs = backends(1)
    p = proxy(bs)
    wait_for(lambda: all_up(p, 1), 10, "up")
    assert urllib.request.urlopen(f"http://{p.metrics}/readyz", timeout=2).status == 200
    bs[0].set_ready(500)
    wait_for(lambda: not p.status()["ready"], 10, "not ready")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{p.metrics}/readyz", timeout=2)
    assert e.value.code == 503
    assert urllib.request.urlopen(f"http://{p.metrics}/healthz", timeout=2).status == 200


def test_config_file_sets_flags(backends, pki, tmp_path):
    bs = backends(2)
    cfg = tmp_path / "proxy.yaml"
    cfg.write_text(f"backend:\n  - {bs[0].addr}\n  - {bs[1].addr},weight=3\n"
                   f"check-cacert: {pki['ca']}\nbalance: roundrobin\ncheck-interval: 300ms\n")
    p = ProxyProc(kha_bin(), ["--config", str(cfg)], tmp_path).start()
    try:
        wait_for(lambda: all_up(p, 2), 10, "up")
        st = p.status()
        assert [x["weight"] for x in st["backends"]] == [1, 3]
    finally:
        assert p.stop() == 0
        assert_no_sanitizer_report(p.stderr_text)


def metric(p, name):
    for line in p.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


class KeptAlive(Stream):
    """A TLS connection through the proxy that made one keep-alive request, then stays idle."""

    def __init__(self, port, ca):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        self.f = self.sock.makefile("rb")
        length = 0
        while (line := self.f.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert self.f.read(length).startswith(b'{"name"')

    def closed_within(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True


def test_sighup_reloads_the_config_without_dropping_connections(backends, pki, tmp_path):
    a, b, c = backends(3)
    cfg = tmp_path / "proxy.yaml"
    base = (f"check-cacert: {pki['ca']}\ncheck-interval: 300ms\ncheck-fast-interval: 100ms\n"
            "check-timeout: 500ms\ncheck-fall: 2\ncheck-rise: 2\n")
    cfg.write_text(base + f"backend: [{a.addr}, {b.addr}]\n")
    p = ProxyProc(kha_bin(), ["--config", str(cfg)], tmp_path).start()
    streams, keep = [], []
    try:
        wait_for(lambda: all_up(p, 2), 10, "a and b up")
        streams = [Stream(p.port, pki["ca"]) for _ in range(4)]
        assert {s.backend for s in streams} == {"b0", "b1"}
        # a kept-alive connection left idle after one request: no idle timeout yet
        idle = KeptAlive(p.port, pki["ca"])
        keep.append(idle)
        assert not idle.closed_within(1.0)

        # seeds a -> c (weight 3), an idle timeout (data path), a key that needs a restart
        cfg.write_text(base + f"backend: [{b.addr}, '{c.addr},weight=3']\n"
                       "idle-timeout: 700ms\nworkers: 2\n")
        p.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in p.read_err(), 10, "the reload")
        assert 'keys="workers"' in p.read_err()
        live = {x["address"]: x for x in p.status()["backends"] if not x["removed"]}
        assert set(live) == {b.addr, c.addr} and live[c.addr]["weight"] == 3
        assert p.status()["workers"] == 1
        for s in streams:  # to a removed seed or not, nothing was dropped
            assert s.read_lines(3)
        assert idle.closed_within(5), "the new idle timeout did not apply"
        wait_for(lambda: all_up(p, 2), 10, "b and c checked up")
        assert metric(p, 'kha_proxy_config_reloads_total{result="ok"}') == 1

        # check settings apply at once: a path the backends answer 404 makes them draining
        cfg.write_text(base.replace("check-interval: 300ms", "check-path: /nope\n"
                                    "check-interval: 300ms") +
                       f"backend: [{b.addr}, {c.addr}]\n")
        p.signal(signal.SIGHUP)
        wait_for(lambda: {x["state"] for x in p.status()["backends"] if not x["removed"]} ==
                 {"draining"}, 10, "draining on the new check path")
        assert all(s.read_lines(2) for s in streams)

        # a backends file given by a reload: read and watched from then on
        bfile = tmp_path / "reload-backends.yaml"
        write_atomically(str(bfile), f"- {a.addr}\n")
        cfg.write_text(base + f"backend: [{b.addr}, {c.addr}]\nbackends-file: {bfile}\n")
        p.signal(signal.SIGHUP)
        wait_for(lambda: {x["address"] for x in p.status()["backends"] if not x["removed"]} ==
                 {a.addr}, 10, "the file's backend replaces the seeds")
        write_atomically(str(bfile), f"- {a.addr}\n- {b.addr}\n")
        wait_for(lambda: {x["address"] for x in p.status()["backends"] if not x["removed"]} ==
                 {a.addr, b.addr}, 10, "the new file is watched")
        # and dropped again: the seeds come back
        cfg.write_text(base + f"backend: [{b.addr}, {c.addr}]\n")
        p.signal(signal.SIGHUP)
        wait_for(lambda: {x["address"] for x in p.status()["backends"] if not x["removed"]} ==
                 {b.addr, c.addr}, 10, "back to the seeds")

        # a bad configuration changes nothing
        cfg.write_text(base + "check-fall: 0\n")
        p.signal(signal.SIGHUP)
        wait_for(lambda: "configuration not reloaded" in p.read_err(), 10, "the refusal")
        assert "check-fall" in p.read_err().split("configuration not reloaded")[1]
        assert metric(p, 'kha_proxy_config_reloads_total{result="failed"}') == 1
        assert {x["address"] for x in p.status()["backends"] if not x["removed"]} == \
            {b.addr, c.addr}
        cfg.unlink()
        p.signal(signal.SIGHUP)
        wait_for(lambda: metric(p, 'kha_proxy_config_reloads_total{result="failed"}') == 2,
                 10, "an unreadable file refused")
        assert all(s.read_lines(2) for s in streams)
    finally:
        for s in streams + keep:
            s.close()
        assert p.stop() == 0
        assert_no_sanitizer_report(p.stderr_text)


# ---- bad input: one line, a distinct exit code, nothing started ----

def one_line_error(r, code, *words):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("kha proxy: ") and r.stderr.count("\n") == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_bad_input(tmp_path):
    port = free_port()
    one_line_error(run_kha("proxy", "--listen", "127.0.0.1", "--backend", "127.0.0.1:1"), 64,
                   "listen address")
    one_line_error(run_kha("proxy", "--listen", f"127.0.0.1:{port}"), 64, "no backends")
    one_line_error(run_kha("proxy", "--listen", f"127.0.0.1:{port}", "--backend", "x"), 64,
                   "--backend", "host:port")
    one_line_error(run_kha("proxy", "--listen", f"127.0.0.1:{port}", "--backend", "a:1",
                           "--check-interval", "soon"), 64, "--check-interval")
    one_line_error(run_kha("proxy", "--config", str(tmp_path / "missing.yaml")), 78,
                   "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- nope\n")
    one_line_error(run_kha("proxy", "--listen", f"127.0.0.1:{port}", "--backends-file",
                           str(bad), "--metrics-addr", "off"), 65, "bad.yaml:1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        one_line_error(run_kha("proxy", "--listen", f"127.0.0.1:{taken}", "--backend",
                               "127.0.0.1:1", "--metrics-addr", "off"), 78, "in use")
        one_line_error(run_kha("proxy", "--listen", f"127.0.0.1:{port}", "--backend",
                               "127.0.0.1:1", "--metrics-addr", f"127.0.0.1:{taken}"), 78,
                       "--metrics-addr", "in use")
    # nothing was left listening
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_help_has_an_example():
    r = run_kha("proxy", "--help")
    assert r.returncode == 0 and "Example" in r.stdout and "--backend" in r.stdout
    r = run_kha("proxy", "status", "--help")
    assert r.returncode == 0 and "Example" in r.stdout


def test_clients_closing_without_a_byte_do_not_make_backends_suspect(backends, proxy):
    bs = backends(1, kind="tcp")
    p = proxy(bs, "--check", "tcp", "--check-interval", "1m")
    for _ in range(20):  # port probes: connect, close
        socket.create_connection(("127.0.0.1", p.port), timeout=5).close()
    c = socket.create_connection(("127.0.0.1", p.port), timeout=5)  # send, then close at once
    c.sendall(b"x\n")
    c.shutdown(socket.SHUT_WR)
    assert b"".join(iter(lambda: c.recv(100), b"")) == b"x\nEND 2"
    c.close()
    wait_for(lambda: p.status()["connections"]["active"] == 0, 10, "all closed")
    b = p.backend(bs[0].addr)
    assert b["state"] == "up" and b["retries"] == 0, b


def test_out_of_fds_pauses_accepting_and_recovers(backends, proxy):
    bs = backends(1, kind="tcp")
    # --max-conns above what the descriptors allow: the kernel's EMFILE is the limit here
    p = proxy(bs, "--check", "tcp", "--check-interval", "1m", "--max-conns", "1000",
              start=False)
    p.args = ["prlimit", "--nofile=64:64", *p.args]  # lowering a limit needs no privilege
    p.start()
    conns = []
    try:
        # a proxied connection holds two of the 64 descriptors: the later ones hit EMFILE
        for _ in range(40):
            conns.append(socket.create_connection(("127.0.0.1", p.port), timeout=5))
        wait_for(lambda: "accept paused" in p.read_err(), 10, "accepting paused")
        # the admin server still answers the liveness probe, on the descriptor it keeps
        assert [_health(p) for _ in range(10)] == [200] * 10
        # paused, not spinning on a listener that stays readable (the scheduler's count of
        # running + runnable time sees a spinner even when the machine starves it)
        assert_not_spinning(p.proc.pid, "kha proxy with accepting paused")
        # descriptors come back as connections close: the clients left waiting are served
        for c in conns[:20]:
            c.close()
        for c in conns[20:]:
            c.sendall(b"ping\n")
            assert c.recv(5) == b"ping\n"
        # and the backend was not blamed for our shortage
        st = p.status()
        assert st["backends"][0]["state"] == "up" and st["connections"]["failed"] == 0
        assert metric(p, "kha_proxy_accept_pauses_total") >= 1
    finally:
        for c in conns:
            c.close()


def test_max_conns_from_the_descriptor_limit_keeps_health_answering(backends, proxy):
    """The default --max-conns leaves descriptors for the admin server and the checks: with the
    proxy full, /healthz and /metrics answer, the backend stays up, the clients beyond the limit
    wait in the backlog and are served as places free up; client sockets have keep-alive."""
    import subprocess
    import urllib.request
    bs = backends(1, kind="tcp")
    p = proxy(bs, "--check", "tcp", "--check-interval", "200ms", start=False)
    p.args = ["prlimit", "--nofile=256:256", *p.args]
    p.start()
    # 256 descriptors, reserve max(min(128, 64), 16) = 64: (256 - 64) / 2 = 96 connections
    assert metric(p, "kha_proxy_max_connections") == 96
    conns = []
    try:
        for _ in range(130):
            conns.append(socket.create_connection(("127.0.0.1", p.port), timeout=10))
        wait_for(lambda: metric(p, "kha_proxy_active_connections") == 96, 10, "96 served")
        wait_for(lambda: metric(p, "kha_proxy_max_connections_reached_total") >= 1, 10,
                 "the limit reached")
        for _ in range(20):
            with urllib.request.urlopen(f"http://{p.metrics}/healthz", timeout=2) as r:
                assert r.status == 200
        checks = p.backend(bs[0].addr)["checks_failed"]

        def checks_pass():
            b = p.backend(bs[0].addr)
            return b["state"] == "up" and b["checks_failed"] == checks
        # three check intervals (200ms) with the proxy full: every check passes
        assert_stays(checks_pass, 3 * 0.2, "the backend up, its checks passing")
        assert "accept paused for 100ms" not in p.read_err()  # never out of descriptors
        for c in conns[:40]:
            c.close()
        for c in conns[40:]:
            c.sendall(b"ping\n")
            assert c.recv(5) == b"ping\n"
        # TCP keep-alive on the proxy's client sockets (the kernel shows its timer)
        ss = subprocess.run(["ss", "-tnoH", "state", "established", f"( sport = :{p.port} )"],
                            capture_output=True, text=True, timeout=10).stdout
        assert ss.count("timer:(keepalive") >= 90, ss[:2000]
    finally:
        for c in conns:
            c.close()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_slow_reader_gets_back_pressure_not_buffering(backends, proxy, pki):
    import ssl
    bs = backends(1)
    p = proxy(bs)
    wait_for(lambda: all_up(p, 1), 10, "up")
    size = 32 * 1024 * 1024
    before = rss_bytes(p.proc.pid)
    raw = socket.create_connection(("127.0.0.1", p.port), timeout=20)
    s = ssl.create_default_context(cafile=pki["ca"]).wrap_socket(raw,
                                                                 server_hostname="127.0.0.1")
    s.sendall(f"GET /large?n={size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    # the client reads nothing: the proxy must stop reading the backend, not buffer 32 MiB
    wait_for(lambda: p.backend(bs[0].addr)["received_bytes"] > 1024 * 1024, 20, "bytes flowing")
    last = [-1]

    def stalled():  # the count stops moving once every buffer on the way is full
        now = p.backend(bs[0].addr)["received_bytes"]
        same, last[0] = now == last[0], now
        return same and now
    stalled = wait_for(stalled, 20, "the flow to stall", interval=0.3)
    assert stalled < size / 2, "the proxy kept reading from the backend"
    assert rss_bytes(p.proc.pid) - before < 4 * 1024 * 1024
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b""):
        pass
    assert f.read(size) == pattern(size)
    s.close()


def _health(p, path="/healthz"):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{p.metrics}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_admin_server_answers_while_connections_are_held(backends, proxy):
    """A local process holding many idle connections to --metrics-addr must not make the
    liveness probe fail (deploy/kha-proxy.yaml would restart the proxy): the oldest idle
    connection is evicted for a new one."""
    bs = backends(1, kind="tcp")
    p = proxy(bs, "--check", "tcp", "--check-interval", "1m")
    wait_for(lambda: all_up(p, 1), 10, "up")
    host, port = p.metrics.rsplit(":", 1)
    held = []
    try:
        for _ in range(200):
            held.append(socket.create_connection((host, int(port)), timeout=5))
        assert [_health(p) for _ in range(20)] == [200] * 20
        assert [_health(p, "/readyz") for _ in range(5)] == [200] * 5
        assert p.status()["ready"]  # /status, on the same server
    finally:
        for c in held:
            c.close()

