# SPDX-License-Identifier: MIT
"""kha proxy failover under a steady stream of new TLS connections: a backend SIGKILLed or
SIGSTOPped costs the clients nothing (connect retry, first-byte replay), and health checks take
a frozen backend out and bring it back."""
import contextlib
import signal
import threading
import time

import pytest

from conftest import kha_bin
from kha_testlib.backends import Backend, ProxyProc, https_request, make_pki, wait_for
from kha_testlib.process import deadline

# The timers the tests configure (seconds; the check interval is the cluster's param). Every
# wait below is one of these sums plus the shared slack (kha_testlib.process.deadline).
FAST, TIMEOUT, FALL, RISE = 0.1, 0.4, 2, 2  # --check-fast-interval, --check-timeout, fall, rise
FIRST_BYTE, CONNECT = 0.3, 0.3              # --first-byte-timeout, --connect-timeout
THREADS = 3                                 # client threads of Load


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def proxy_over_three(pki, tmp_path, args, name="b"):
    """Three TLS backends and a kha proxy over them with args; stops everything on the way out
    (a failed assertion must not leave frozen backends running) and checks the proxy's exit."""
    bs = [Backend("tls", f"{name}{i}", pki) for i in range(3)]
    p = None
    try:
        for b in bs:
            b.start()
        flags = []
        for b in bs:
            flags += ["--backend", b.addr]
        p = ProxyProc(kha_bin(), flags + args, tmp_path).start()
        yield p, bs
    finally:
        for b in bs:
            with contextlib.suppress(ProcessLookupError):
                b.signal(signal.SIGCONT)
        # stop everything before asserting: a failed assertion must not leave (frozen)
        # backends running
        try:
            if p:
                p.stop()  # gracefully, checked (exit code, sanitizer report)
        finally:
            for b in bs:
                b.close()


@pytest.fixture(params=["300ms"])
def cluster(pki, tmp_path, request):
    """Three TLS backends and a kha proxy with short, test-sized timers (param: the check
    interval, then optional extra flags after a space)."""
    interval, *extra = request.param.split()
    # a connection left on a frozen backend must not hold the stop for the default 30 s
    args = ["--check-cacert", pki["ca"], "--check-interval", interval,
            "--check-fast-interval", ms(FAST), "--check-timeout", ms(TIMEOUT), "--check-fall",
            str(FALL), "--check-rise", str(RISE), "--first-byte-timeout", ms(FIRST_BYTE),
            "--connect-timeout", ms(CONNECT), "--drain-timeout", "3s", *extra]
    with proxy_over_three(pki, tmp_path, args) as (p, bs):
        p.interval = float(interval.removesuffix("ms")) / 1e3 if interval.endswith("ms") \
            else float(interval.removesuffix("s"))
        # backends start up (assumed up until a check says otherwise)
        wait_for(lambda: sum(x["state"] == "up" for x in p.status()["backends"]) == 3,
                 deadline(TIMEOUT), "three backends up")
        yield p, bs


def ms(seconds):
    return f"{round(seconds * 1000)}ms"


def down_within(interval):
    """The most a dead or frozen backend stays up: a regular check, then fall - 1 fast ones,
    each given the check timeout."""
    return interval + TIMEOUT + (FALL - 1) * (FAST + TIMEOUT)


def requests_within(n):
    """Time for n more requests of Load: per thread, each request at worst waits a connect
    timeout and a first-byte timeout before its replay is answered. (How fast the clients go
    is not kha's promise, so this bounds progress only; the slack is added once.)"""
    return deadline(-(-n // THREADS) * (CONNECT + FIRST_BYTE))


def watch(load, seconds, what):
    """Watches the clients for `seconds` (the time within which a broken proxy would show) and
    at least 2 x THREADS new requests (each thread went through the balancing twice: enough
    that a backend wrongly still chosen would have been picked): the window is tied to the
    timers, not to a count of requests a slow machine's clients may not reach."""
    t0 = time.monotonic()
    wait_for(lambda: time.monotonic() - t0 >= seconds and len(load.since(t0)) >= 2 * THREADS,
             seconds + requests_within(2 * THREADS), what)


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
        # the clients are running: each thread has been through the proxy twice
        wait_for(lambda: len(load.results) >= 2 * THREADS, requests_within(2 * THREADS),
                 "load running")
        t_kill = time.monotonic()
        victim.kill()
        # until it is down, new connections may still pick it: their connects are refused and
        # retried on the others; down within down_within, counted from the kill
        wait_for(lambda: p.backend(victim.addr)["state"] == "down",
                 deadline(down_within(p.interval)) - (time.monotonic() - t_kill),
                 "the killed backend down")
        dead_total = p.backend(victim.addr)["connections_total"]
        t_down = time.monotonic()
        # once down it gets no new connection: 2 x THREADS new client connections, enough that
        # it would have been picked again (leastconn: it has none active, ties rotate)
        wait_for(lambda: len(load.since(t_down)) >= 2 * THREADS, requests_within(2 * THREADS),
                 "requests after the killed backend went down")
        assert p.backend(victim.addr)["connections_total"] == dead_total, \
            "a new connection went to the killed backend"
    after = load.since(t_kill)
    failed = [r for r in after if not r[1]]
    assert not failed, f"{len(failed)} of {len(after)} failed after SIGKILL: {failed[:3]}"


def test_sigstop_under_load_replays_and_marks_down(cluster, pki):
    p, bs = cluster
    victim = bs[1]
    with Load(p.port, pki["ca"]) as load:
        # the clients are running: each thread has been through the proxy twice
        wait_for(lambda: len(load.results) >= 2 * THREADS, requests_within(2 * THREADS),
                 "load running")
        t_stop = time.monotonic()
        victim.signal(signal.SIGSTOP)
        # out of rotation at its first failed check at the latest (sooner when a first-byte
        # timeout comes first), down within down_within: both counted from the freeze
        wait_for(lambda: p.backend(victim.addr)["state"] != "up",
                 deadline(p.interval + TIMEOUT) - (time.monotonic() - t_stop),
                 "the frozen one suspect (out of rotation)")
        wait_for(lambda: p.backend(victim.addr)["state"] == "down",
                 deadline(down_within(p.interval)) - (time.monotonic() - t_stop),
                 "the frozen one down")
        frozen_total = p.backend(victim.addr)["connections_total"]
        # it stays out while frozen: watched over the time its checks would take to bring it
        # back were a timeout wrongly taken for an answer (a regular check, rise - 1 fast
        # ones), twice
        watch(load, 2 * (p.interval + TIMEOUT + (RISE - 1) * (FAST + TIMEOUT)),
              "requests while frozen")
        assert p.backend(victim.addr)["connections_total"] == frozen_total, \
            "a new connection went to the frozen backend"
        victim.signal(signal.SIGCONT)
        # the check in flight times out, the next regular one and rise - 1 fast ones pass
        wait_for(lambda: p.backend(victim.addr)["state"] == "up",
                 deadline(TIMEOUT + p.interval + TIMEOUT + (RISE - 1) * (FAST + TIMEOUT)),
                 "back up after SIGCONT")
        wait_for(lambda: p.backend(victim.addr)["connections_total"] > frozen_total,
                 requests_within(THREADS), "new connections to the recovered backend")
    after = load.since(t_stop)
    failed = [r for r in after if not r[1]]
    assert not failed, f"{len(failed)} of {len(after)} failed after SIGSTOP: {failed[:3]}"


@pytest.mark.parametrize("cluster", ["60s --balance roundrobin"], indirect=True)
def test_first_byte_replay_alone_hides_a_frozen_backend(cluster, pki):
    """With active checks far apart, only the data path can notice the freeze: the clients'
    ClientHellos are replayed to the others and the backend is suspect within a second.
    (Round-robin, so that new connections surely reach the frozen backend: least-connections
    may rightly avoid it for good when a request was in flight on it at the freeze.)"""
    p, bs = cluster
    victim = bs[2]
    with Load(p.port, pki["ca"]) as load:
        # the clients are running: each thread has been through the proxy twice
        wait_for(lambda: len(load.results) >= 2 * THREADS, requests_within(2 * THREADS),
                 "load running")
        t_stop = time.monotonic()
        victim.signal(signal.SIGSTOP)
        # round-robin sends it one of the next THREADS connections (each client thread
        # begins one more request); its first byte is then late by the first-byte timeout
        # (the checks, a minute apart, play no part)
        wait_for(lambda: p.backend(victim.addr)["state"] != "up",
                 requests_within(THREADS) + FIRST_BYTE - (time.monotonic() - t_stop),
                 "the frozen one suspect by its first-byte timeout")
        # out of rotation, its clients' requests are answered by the others: watched over the
        # time in which each client thread would meet a first-byte timeout on it
        watch(load, THREADS * (CONNECT + FIRST_BYTE), "requests after")
    after = load.since(t_stop)
    failed = [r for r in after if not r[1]]
    assert not failed, f"{len(failed)} of {len(after)} failed after SIGSTOP: {failed[:3]}"
    b = p.backend(victim.addr)
    assert b["first_byte_timeouts"] > 0 and b["replays"] > 0
    victim.signal(signal.SIGCONT)


def test_checks_without_the_ca_say_so_once_and_a_frozen_backend_is_not_fed(pki, tmp_path):
    """As a new user starts it: TLS backends, HTTPS checks, no --check-cacert (round-robin only
    for the freeze, see below). Every check fails on verification, so every backend is down and
    served as the last resort. The cause is logged at error level once, with what to do, and
    shown in /readyz and `kha proxy status`; and a backend frozen in that mode gets no new
    connection after its first failure."""
    import json
    import re
    import subprocess
    import urllib.error
    import urllib.request
    interval, fast = 0.2, 0.5  # --check-interval; the default fast interval
    args = ["--check-interval", ms(interval), "--check-timeout", ms(TIMEOUT), "--check-fall",
            str(FALL), "--first-byte-timeout", ms(FIRST_BYTE), "--connect-timeout", ms(CONNECT),
            "--drain-timeout", "2s",
            # round-robin, so that the frozen backend surely gets a new connection before its
            # first failure: least-connections may rightly avoid it for good when a connection
            # on it was still open at the freeze
            "--balance", "roundrobin"]
    with proxy_over_three(pki, tmp_path, args, "n") as (p, bs):
        # one check right away, then fast ones while up and failing, then regular ones
        wait_for(lambda: all(x["state"] == "down" and x["checks_failed"] >= 4
                             for x in p.status()["backends"]),
                 deadline(4 * (max(interval, fast) + TIMEOUT)), "every check failed 4 times")
        errors = [x for x in p.read_err().splitlines() if " level=error " in x]
        assert len(errors) == 1, errors
        assert re.search(r"cause=tls-trust .*--check-cacert FILE.*--check-insecure", errors[0])
        assert "--check-cacert" in p.status()["check_problem"]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://{p.metrics}/readyz", timeout=deadline(0))
        assert e.value.code == 503
        assert "configuration reason (tls-trust): give --check-cacert FILE" in \
            e.value.read().decode()
        st = subprocess.run([kha_bin(), "proxy", "status", "--metrics-addr", p.metrics],
                            capture_output=True, text=True, timeout=10)
        assert "error: health checks fail for a configuration reason (tls-trust" in st.stdout, \
            st.stdout + st.stderr

        victim = bs[1]
        with Load(p.port, pki["ca"]) as load:
            # the clients are running: each thread has been through the proxy twice
            wait_for(lambda: len(load.results) >= 2 * THREADS, requests_within(2 * THREADS),
                     "load running")
            t_stop = time.monotonic()
            victim.signal(signal.SIGSTOP)
            # round-robin gives it one of the next THREADS connections (it is in the best tier:
            # its checks reach its certificate; each client thread begins one more request),
            # whose first byte is then late by the first-byte timeout
            wait_for(lambda: p.backend(victim.addr)["first_byte_timeouts"] > 0,
                     requests_within(THREADS) + FIRST_BYTE - (time.monotonic() - t_stop),
                     "the first first-byte timeout on the frozen backend",
                     diag=lambda: json.dumps(p.status()["backends"], indent=1))
            fed = p.backend(victim.addr)["connections_total"]
            # not fed while frozen: watched over two rounds of every backend's checks (a
            # frozen one's times out, the others' fail on the certificate), each of which
            # could wrongly put it back in the best tier
            watch(load, 2 * (max(interval, fast) + TIMEOUT), "requests while frozen")
            assert p.backend(victim.addr)["connections_total"] == fed, \
                "a new connection went to the frozen backend in last-resort mode"
            victim.signal(signal.SIGCONT)
            # it answers again (its checks reach the certificate again): chosen again. The
            # check in flight at the thaw times out; the next one, an interval later, answers;
            # then one of the next THREADS connections is its.
            wait_for(lambda: p.backend(victim.addr)["connections_total"] > fed,
                     deadline(TIMEOUT + interval + TIMEOUT + THREADS * (CONNECT + FIRST_BYTE)),
                     "new connections to the thawed backend",
                     diag=lambda: json.dumps(p.status()["backends"], indent=1))
        failed = [r for r in load.since(t_stop) if not r[1]]
        assert not failed, f"{len(failed)} failed: {failed[:3]}"
