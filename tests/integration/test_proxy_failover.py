# SPDX-License-Identifier: MIT
"""kha proxy failover under a steady stream of new TLS connections: a backend SIGKILLed or
SIGSTOPped costs the clients nothing (connect retry, first-byte replay), and health checks take
a frozen backend out and bring it back."""
import signal
import threading
import time

import pytest

from conftest import kha_bin
from kha_testlib.backends import Backend, ProxyProc, https_request, make_pki, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["300ms"])
def cluster(pki, tmp_path, request):
    """Three TLS backends and a kha proxy with short, test-sized timers (param: the check
    interval, then optional extra flags after a space)."""
    bs = [Backend("tls", f"b{i}", pki) for i in range(3)]
    p = None
    try:
        for b in bs:
            b.start()
        args = []
        for b in bs:
            args += ["--backend", b.addr]
        interval, *extra = request.param.split()
        # a connection left on a frozen backend must not hold the stop for the default 30 s
        args += ["--check-cacert", pki["ca"], "--check-interval", interval,
                 "--check-fast-interval", "100ms", "--check-timeout", "400ms", "--check-fall",
                 "2", "--check-rise", "2", "--first-byte-timeout", "300ms",
                 "--connect-timeout", "300ms", "--drain-timeout", "3s", *extra]
        p = ProxyProc(kha_bin(), args, tmp_path).start()
        wait_for(lambda: sum(x["state"] == "up" for x in p.status()["backends"]) == 3, 10,
                 "three backends up")
        yield p, bs
    finally:
        # stop everything before asserting: a failed assertion must not leave (frozen)
        # backends running
        try:
            if p:
                p.stop()  # gracefully, checked (exit code, sanitizer report)
        finally:
            for b in bs:
                b.close()


class Load:
    """Threads opening a new TLS connection per request (GET /version), recording each result
    with its start time."""

    def __init__(self, port, ca, threads=3):
        self.port, self.ca = port, ca
        self.results = []  # (start, ok, detail)
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            try:
                status, body = https_request(self.port, "/version", self.ca, timeout=5)
                ok, detail = status == 200, body.decode()
            except Exception as e:  # noqa: BLE001 - every failure counts
                ok, detail = False, repr(e)
            with self.lock:
                self.results.append((t0, ok, detail))
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]


def test_sigkill_under_load_fails_no_new_connection(cluster, pki):
    p, bs = cluster
    victim = bs[0]
    with Load(p.port, pki["ca"]) as load:
        wait_for(lambda: len(load.results) > 30, 10, "load running")
        t_kill = time.monotonic()
        victim.kill()
        wait_for(lambda: len(load.since(t_kill)) > 150, 20, "requests after the kill")
    after = load.since(t_kill)
    failed = [r for r in after if not r[1]]
    assert not failed, f"{len(failed)} of {len(after)} failed after SIGKILL: {failed[:3]}"
    wait_for(lambda: p.backend(victim.addr)["state"] == "down", 10, "the killed backend down")


def test_sigstop_under_load_replays_and_marks_down(cluster, pki):
    p, bs = cluster
    victim = bs[1]
    with Load(p.port, pki["ca"]) as load:
        wait_for(lambda: len(load.results) > 30, 10, "load running")
        t_stop = time.monotonic()
        victim.signal(signal.SIGSTOP)
        # taken out of rotation fast (first-byte timeout), dead within interval x fall + timeout
        wait_for(lambda: p.backend(victim.addr)["state"] != "up", 5, "the frozen one suspect")
        t_out = time.monotonic()
        wait_for(lambda: p.backend(victim.addr)["state"] == "down", 0.3 * 2 + 0.4 + 3,
                 "the frozen one down")
        frozen_total = p.backend(victim.addr)["connections_total"]
        wait_for(lambda: len(load.since(t_out)) > 150, 20, "requests while frozen")
        assert p.backend(victim.addr)["connections_total"] == frozen_total, \
            "a new connection went to the frozen backend"
        victim.signal(signal.SIGCONT)
        wait_for(lambda: p.backend(victim.addr)["state"] == "up", 10, "back up after SIGCONT")
        t_back = time.monotonic()
        wait_for(lambda: p.backend(victim.addr)["connections_total"] > frozen_total, 10,
                 "new connections to the recovered backend")
    after = load.since(t_stop)
    failed = [r for r in after if not r[1]]
    assert not failed, f"{len(failed)} of {len(after)} failed after SIGSTOP: {failed[:3]}"
    assert t_out - t_stop < 2.0, "frozen backend still chosen for new connections after 2 s"
    del t_back


@pytest.mark.parametrize("cluster", ["60s --balance roundrobin"], indirect=True)
def test_first_byte_replay_alone_hides_a_frozen_backend(cluster, pki):
    """With active checks far apart, only the data path can notice the freeze: the clients'
    ClientHellos are replayed to the others and the backend is suspect within a second.
    (Round-robin, so that new connections surely reach the frozen backend: least-connections
    may rightly avoid it for good when a request was in flight on it at the freeze.)"""
    p, bs = cluster
    victim = bs[2]
    with Load(p.port, pki["ca"]) as load:
        wait_for(lambda: len(load.results) > 30, 10, "load running")
        t_stop = time.monotonic()
        victim.signal(signal.SIGSTOP)
        wait_for(lambda: p.backend(victim.addr)["state"] != "up", 5, "the frozen one suspect")
        t_out = time.monotonic()
        wait_for(lambda: len(load.since(t_out)) > 60, 20, "requests after")
    after = load.since(t_stop)
    failed = [r for r in after if not r[1]]
    assert not failed, f"{len(failed)} of {len(after)} failed after SIGSTOP: {failed[:3]}"
    assert t_out - t_stop < 2.0
    b = p.backend(victim.addr)
    assert b["first_byte_timeouts"] > 0 and b["replays"] > 0
    victim.signal(signal.SIGCONT)
