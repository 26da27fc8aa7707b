# SPDX-License-Identifier: MIT
"""kha proxy --mode nat: the kernel DNATs the entry address (nftables table written by kha through
libnftnl) to a healthy backend per new connection. Real TLS backends in their own network
namespaces, kha and its clients in a node namespace (kha_testlib/natlab.py).

Bounds: NAT mode's check defaults (interval 500ms, timeout 700ms, fall 2) take a dead or frozen
backend out of the table within 1.2 s of its failure plus one table write; the tests allow that
plus the suite's shared slack (kha_testlib.process.deadline), which covers the polling of the
table from outside and a loaded machine. Tests about something else than failure detection give
the checks a timeout with the slack (CALM): a healthy backend (a Python TLS server) kept waiting
700 ms twice in a row by a loaded machine would otherwise leave the table in their midst, and
kha would cut the connections sent to it."""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import assert_no_sanitizer_report, kha_bin, run_kha
from kha_testlib.backends import wait_for
from kha_testlib.natlab import ENTRY, ENTRY_PORT, NatLab, Probe
from kha_testlib.process import deadline

INTERVAL, FAST, TIMEOUT, FALL = 0.5, 0.2, 0.7, 2  # NAT mode's check defaults (seconds)
BOUND_S = deadline(INTERVAL + TIMEOUT)
CALM_TIMEOUT = deadline(TIMEOUT)
CALM = ["--check-timeout", f"{round(CALM_TIMEOUT * 1000)}ms"]
# A socket the kernel already ended (reset, aborted, or closed by a killed process) answers
# its reader at once; what the test waits beyond that is only its own scheduling (the slack).
AT_ONCE_S = deadline(0)


@pytest.fixture
def nat(tmp_path):
    lab = NatLab(tmp_path, kha_bin())
    try:
        yield lab
    finally:
        rc = lab.stop_kha() if lab.kha else None
        log = lab.kha_log() if lab.kha_err else ""
        leftover = lab.table()
        lab.close()
        assert_no_sanitizer_report(log, "kha proxy --mode nat")
        assert rc in (None, 0), log
        assert leftover is None, f"table left after exit: {leftover}"


def backends_args(lab, hosts=None):
    args = []
    for h in hosts or lab.hosts:
        args += ["--backend", lab.addr(h)]
    return args


def out_of_table_within(lab, host, what):
    t0 = time.monotonic()
    wait_for(lambda: lab.addr(host) not in (lab.table() or []), 15, f"{what}: {host} out")
    elapsed = time.monotonic() - t0
    print(f"{what}: out of the table after {elapsed:.2f}s")
    assert elapsed < BOUND_S, f"{what}: out of the table after {elapsed:.2f}s"
    return elapsed


def test_nat_spreads_new_connections_over_three_backends(nat):
    nat.start_kha(*backends_args(nat), *CALM, wait_backends=[nat.addr(h) for h in nat.hosts])
    st = nat.try_status()
    assert st["mode"] == "nat" and st["nat"]["installed"] and st["nat"]["slots"] == 3, st
    seen = {}
    for _ in range(60):
        name = nat.request_new()
        seen[name] = seen.get(name, 0) + 1
    assert sorted(seen) == sorted(nat.hosts), seen
    assert min(seen.values()) >= 5, seen  # 60 random picks of 3: fewer than 5 is ~1e-6
    # one table, one DNAT rule in output, the masquerade in postrouting, the entry on lo once
    rules = [i["rule"] for i in nat.ruleset() if "rule" in i]
    assert sorted(r["chain"] for r in rules) == ["output", "postrouting"]
    assert len(nat.entry_addresses()) == 1
    r = subprocess.run(["ip", "netns", "exec", nat.node, kha_bin(), "proxy", "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "NAT mode: table kha-proxy, 3 backends in it (3 slots)" in r.stdout, r.stdout


def test_nat_weights_are_slots(nat):
    h1, h2, h3 = nat.hosts
    nat.start_kha("--backend", nat.addr(h1) + ",weight=2", "--backend",
                  nat.addr(h2) + ",weight=4", "--backend", nat.addr(h3) + ",weight=2", *CALM,
                  wait_backends=[nat.addr(h1), nat.addr(h2), nat.addr(h2), nat.addr(h3)])


@pytest.mark.parametrize("fault", ["sigkill", "sigstop", "not-ready"])
def test_nat_failed_backend_leaves_the_table_within_the_bound(nat, fault):
    nat.start_kha(*backends_args(nat), wait_backends=[nat.addr(h) for h in nat.hosts])
    victim = nat.hosts[0]
    if fault == "sigkill":
        nat.signal_backend(victim, signal.SIGKILL)
    elif fault == "sigstop":
        nat.signal_backend(victim, signal.SIGSTOP)
    else:
        nat.set_ready(victim, 500)
    out_of_table_within(nat, victim, fault)
    # new connections only reach the others
    names = {nat.request_new() for _ in range(15)}
    assert victim not in names and names <= set(nat.hosts[1:])
    if fault == "not-ready":
        nat.set_ready(victim, 200)
        wait_for(lambda: nat.addr(victim) in (nat.table() or []), 10, "back in the table")
    if fault == "sigstop":
        nat.signal_backend(victim, signal.SIGCONT)
        wait_for(lambda: nat.addr(victim) in (nat.table() or []), 10, "back in the table")


@pytest.mark.parametrize("prerouting", [True, False])
def test_nat_prerouting_serves_forwarded_traffic_from_pods(nat, prerouting):
    """A pod behind the node reaches the masters through the entry with --nat-prerouting;
    without it the entry refuses the pod (only the node's own traffic is DNATed)."""
    pod = nat.add_pod()
    nat.start_kha(*backends_args(nat), *(["--nat-prerouting"] if prerouting else []), *CALM,
                  wait_backends=[nat.addr(h) for h in nat.hosts])

    def get():
        c = nat.connect(timeout=5)
        try:
            c.request("GET", "/version")
            return json.loads(c.getresponse().read())["name"]
        except ConnectionRefusedError:
            return "refused"
        finally:
            c.close()
    names = {pod.call(get) for _ in range(12)}
    if prerouting:
        assert names <= set(nat.hosts) and len(names) >= 2, names
    else:
        assert names == {"refused"}, names
    assert nat.request_new() in nat.hosts  # the node's own traffic either way


def test_nat_killed_backend_connections_end_at_once(nat):
    """A /watch stream on a backend that is SIGKILLed ends (EOF or reset) at once; streams on
    the others go on."""
    nat.start_kha(*backends_args(nat), *CALM, wait_backends=[nat.addr(h) for h in nat.hosts])
    streams = [nat.ns.call(open_watch, nat) for _ in range(9)]
    victim = streams[0][2]
    nat.signal_backend(victim, signal.SIGKILL)
    for s, f, name in streams:
        if name == victim:
            # the kernel closes a killed process's sockets as it exits: at once, well before
            # kha's checks would take the backend out (BOUND_S) and cut its connections
            assert nat.ns.call(ends_within, s, f, AT_ONCE_S), "stream on the killed backend hangs"
        else:
            assert nat.ns.call(lambda: f.readline()), f"stream on {name} broke"
        nat.ns.call(s.close)


def open_watch(nat):
    """A /watch stream through the entry (run in the node namespace): (sock, file, backend)."""
    raw = socket.create_connection((ENTRY, ENTRY_PORT), timeout=5)
    s = nat.ctx.wrap_socket(raw, server_hostname=ENTRY)
    s.sendall(b"GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b""):
        pass
    return s, f, f.readline().split()[2].decode()


def ends_within(s, f, timeout):
    """Reads until the stream ends: True on EOF, reset or abort within timeout, False if it
    is still open (silent) then."""
    s.settimeout(timeout)
    try:
        while f.readline():
            pass
        return True
    except (ConnectionResetError, ConnectionAbortedError, ssl.SSLError):
        return True
    except OSError:
        return False


def test_nat_frozen_backend_connections_are_cut(nat):
    """Once a frozen (SIGSTOP) backend is down, kha deletes its conntrack entries and aborts
    this node's sockets that were sent to it: a silent /watch ends at once without the client
    sending anything, and a keep-alive connection's next request fails at once instead of
    waiting on the frozen process."""
    nat.start_kha(*backends_args(nat), *CALM, wait_backends=[nat.addr(h) for h in nat.hosts])
    watches = [nat.ns.call(open_watch, nat) for _ in range(3)]
    victim = watches[0][2]
    conns = []
    for _ in range(30):
        c = nat.connect(timeout=10)

        def first(c=c):
            c.request("GET", "/version")
            return json.loads(c.getresponse().read())["name"]
        conns.append((c, nat.ns.call(first)))
        if sum(name == victim for _, name in conns) >= 2:
            break
    nat.signal_backend(victim, signal.SIGSTOP)
    # a regular check, then fall - 1 fast ones, each timing out
    wait_for(lambda: nat.state(victim) == "down",
             deadline(INTERVAL + CALM_TIMEOUT + (FALL - 1) * (FAST + CALM_TIMEOUT)),
             f"{victim} down")
    # kha cuts the backend's connections right after it marks it down (no timer between);
    # once counted, the sockets are aborted and their readers see it at once
    wait_for(lambda: (nat.metric("kha_proxy_nat_conntrack_deleted_total") or 0) >= 1,
             AT_ONCE_S, "conntrack entries deleted")
    wait_for(lambda: (nat.metric("kha_proxy_nat_local_connections_aborted_total") or 0) >= 1,
             AT_ONCE_S, "local sockets aborted")
    for s, f, name in watches:
        if name == victim:
            assert nat.ns.call(ends_within, s, f, AT_ONCE_S), "silent watch on the frozen backend"

    def again(c):
        t = time.monotonic()
        try:
            c.request("GET", "/version")
            c.getresponse().read()
            return "answered", time.monotonic() - t
        except (ConnectionResetError, ConnectionAbortedError, ssl.SSLError,
                http.client.RemoteDisconnected, BrokenPipeError) as e:
            return f"cut ({type(e).__name__})", time.monotonic() - t
        except socket.timeout:
            return "timeout", time.monotonic() - t

    for c, name in conns:
        if name == victim:
            result, took = nat.ns.call(again, c)
            # cut at once, not left waiting on the frozen process (the client's 10 s timeout)
            assert result.startswith("cut") and took < AT_ONCE_S, (result, took)
            print(f"keep-alive request on the frozen backend: {result} in {took * 1000:.0f} ms")
    nat.signal_backend(victim, signal.SIGCONT)
    for c, _ in conns:
        nat.ns.call(c.close)
    for s, _, _ in watches:
        nat.ns.call(s.close)


def test_nat_membership_and_reload_rewrite_the_table_atomically(nat, tmp_path):
    """While a probe opens new connections as fast as it can, the backends file changes and
    SIGHUP reloads switch the balancing: no connection is refused or fails."""
    h1, h2, h3 = nat.hosts
    bfile = tmp_path / "backends.yaml"
    conf = tmp_path / "kha.yaml"

    def write_backends(hosts):
        tmp = tmp_path / "backends.tmp"
        tmp.write_text("".join(f"- {nat.addr(h)}\n" for h in hosts))
        os.rename(tmp, bfile)

    def write_conf(balance):
        conf.write_text(f"balance: {balance}\nbackends-file: {bfile}\n"
                        f"check-timeout: {CALM[1]}\n")

    write_backends([h1, h2, h3])
    write_conf("random")
    nat.start_kha("--config", conf, wait_backends=[nat.addr(h) for h in nat.hosts])
    probe = Probe(nat, threads=3)
    changes = [[h1, h2], [h2, h3], [h3], [h1, h2, h3], [h1], [h1, h3]]
    try:
        wait_for(lambda: probe.count() >= 20, 20, "probe running")
        for i, hosts in enumerate(changes):
            write_backends(hosts)
            want = sorted(nat.addr(h) for h in hosts)
            wait_for(lambda: sorted(nat.table() or []) == want, 10, f"table {want}")
            n = probe.count()
            wait_for(lambda: probe.count() >= n + 10, 20, "probe progress")
            write_conf("roundrobin" if i % 2 == 0 else "random")
            nat.kha.send_signal(signal.SIGHUP)
            ok = f'kha_proxy_config_reloads_total{{result="ok"}} {i + 1}\n'
            wait_for(lambda: ok in _metrics(nat), 10, "reload applied")
    finally:
        results = probe.stop()
    fails = [r for r in results if not r[1]]
    # the probe ran through every change (how many more it made is the machine's speed)
    assert len(results) >= 20 + 10 * len(changes), f"only {len(results)} probes"
    assert not fails, f"{len(fails)} of {len(results)} failed: {fails[:5]}"
    log = nat.kha_log()
    assert "nftables table updated" in log and "not updated" not in log


def test_nat_discovery_changes_rewrite_the_table_atomically(nat, tmp_path):
    """The EndpointSlices of default/kubernetes (the stand-in API server, serving inside the
    node namespace) change under the probe: the table follows, no connection fails."""
    # stand-in: EndpointSlices pointing at the test's TLS backends, changed at a high rate on demand (the real reconciler lists only apiservers)
    from kha_testlib.kubeapi import KubeAPI, TestPKI

    m = [nat.lab.addr[h] for h in nat.hosts]
    api = KubeAPI(TestPKI(tmp_path / "kpki"))
    nat.ns.call(api.start)  # its socket lives in the node namespace
    probe = None
    try:
        api.set_slice("kubernetes", m)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", auth="token")
        nat.start_kha("--backend", nat.addr(nat.hosts[0]), "--kubeconfig", kubeconfig, *CALM,
                      wait_backends=[nat.addr(h) for h in nat.hosts])
        probe = Probe(nat, threads=3)
        wait_for(lambda: probe.count() >= 20, 20, "probe running")
        for ips in ([m[1]], [m[1], m[2]], [m[0], m[2]], [m[2]], m):
            api.set_slice("kubernetes", ips)
            want = sorted(f"{ip}:6443" for ip in ips)
            wait_for(lambda: sorted(nat.table() or []) == want, 10, f"table {want}")
            n = probe.count()
            wait_for(lambda: probe.count() >= n + 10, 20, "probe progress")
    finally:
        results = probe.stop() if probe else []
        api.stop()
    fails = [r for r in results if not r[1]]
    assert len(results) >= 60, f"only {len(results)} probes"
    assert not fails, f"{len(fails)} of {len(results)} failed: {fails[:5]}"


def _metrics(nat):
    import urllib.request

    def get():
        with urllib.request.urlopen("http://127.0.0.1:9443/metrics", timeout=2) as r:
            return r.read().decode()
    return nat.ns.call(get)


def test_nat_restart_after_sigkill_replaces_the_table_and_exit_removes_it(nat):
    nat.start_kha(*backends_args(nat), wait_backends=[nat.addr(h) for h in nat.hosts])
    nat.kill_kha()
    # a killed kha leaves its table: the node keeps reaching the masters meanwhile
    assert sorted(nat.table()) == sorted(nat.addr(h) for h in nat.hosts)
    assert nat.request_new() in nat.hosts
    h1, h2, _ = nat.hosts
    nat.start_kha(*backends_args(nat, [h1, h2]), wait_backends=[nat.addr(h1), nat.addr(h2)])
    tables = [i["table"]["name"] for i in nat.ruleset() if "table" in i]
    assert tables.count("kha-proxy") == 1
    rules = [i["rule"] for i in nat.ruleset() if "rule" in i]
    assert sorted(r["chain"] for r in rules) == ["output", "postrouting"]
    assert len(nat.entry_addresses()) == 1
    assert "adopting" in nat.kha_log() or "entry address goes on lo" in nat.kha_log()
    assert nat.stop_kha() == 0
    assert nat.table() is None
    assert nat.entry_addresses() == []


def test_nat_table_flushed_by_someone_else_is_written_again(nat):
    """A firewall reload (`nft flush ruleset`) removes kha's table: kha notices within its
    verification interval (5 s) and writes it again."""
    nat.start_kha(*backends_args(nat), wait_backends=[nat.addr(h) for h in nat.hosts])
    subprocess.run(["ip", "netns", "exec", nat.node, "nft", "flush", "ruleset"], check=True,
                   timeout=30)
    assert nat.table() is None
    wait_for(lambda: sorted(nat.table() or []) == sorted(nat.addr(h) for h in nat.hosts), 15,
             "the table written again")
    assert nat.request_new() in nat.hosts
    assert nat.metric("kha_proxy_nat_table_restored_total") == 1
    assert "removed by someone else" in nat.kha_log()


def test_nat_without_cap_net_admin_fails_with_one_clear_line(nat):
    argv = nat.kha_argv(*backends_args(nat))
    cmd = " ".join(argv[4:])  # after "ip netns exec NS"
    r = subprocess.run(["ip", "netns", "exec", nat.node, "capsh", "--drop=cap_net_admin", "--",
                        "-c", "exec " + cmd], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 77, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "CAP_NET_ADMIN" in lines[0], r.stderr
    assert nat.table() is None and nat.entry_addresses() == []


@pytest.mark.parametrize("args, words", [
    (["--listen", "127.0.0.1:7443"], "not loopback"),
    (["--listen", "169.254.20.1:443", "--balance", "leastconn"], "least connections"),
    (["--listen", "[fd00::1]:443"], "IPv4"),
    (["--listen", "169.254.20.1:443", "--nat-name", "Bad/Name"], "--nat-name"),
])
def test_nat_bad_configuration_is_a_usage_error(args, words):
    r = run_kha("proxy", "--mode", "nat", "--backend", "10.0.0.1:6443", "--metrics-addr", "off",
                *args)
    assert r.returncode == 64, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_userspace_mode_refuses_nat_balancing():
    r = run_kha("proxy", "--listen", "127.0.0.1:1", "--backend", "10.0.0.1:6443",
                "--balance", "random", "--metrics-addr", "off")
    assert r.returncode == 64 and "--mode nat" in r.stderr, r.stderr
