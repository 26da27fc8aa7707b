# SPDX-License-Identifier: MIT
"""kha etcd status against real etcd clusters (TLS with client certificates, plain HTTP), dead
members, wrong CAs, endpoints that are not etcd, and endpoints that never answer."""
import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import kha_bin, run_kha
from kha_testlib.etcd import etcd3, etcd_cluster, make_ca  # noqa: F401 (fixtures)
from kha_testlib.etcdops import poll
from kha_testlib.process import SLACK, deadline


# Dial and command timeouts for tests that prove kha fails at once rather than by a timer:
# longer than any scheduling delay of a loaded machine (the shared slack), so a wait shows.
TIMER_S = round(4 * SLACK)


def status(*args, timeout=30, env=None):
    return run_kha("etcd", "status", *args, timeout=timeout, env=env)


def status_json(*args):
    p = status("-o", "json", *args)
    assert p.stdout, p.stderr
    return p, json.loads(p.stdout)


def by_name(report):
    return {m["name"]: m for m in report["members"]}


def test_status_verdict_follows_member_failures(etcd3):
    c = etcd3
    p, rep = status_json(*c.client_flags())
    assert p.returncode == 0, p.stderr
    assert rep["verdict"] == "healthy"
    assert rep["voters"] == 3 and rep["voters_up"] == 3 and rep["quorum"] == 2
    assert rep["can_lose"] == 1 and rep["warnings"] == []
    leader = c.leader_index()
    assert rep["leader"]["name"] == f"etcd-{leader}"
    members = by_name(rep)
    assert sorted(members) == ["etcd-0", "etcd-1", "etcd-2"]
    for i in range(3):
        m = members[f"etcd-{i}"]
        assert m["reachable"] and m["error"] is None
        assert m["version"].startswith("3.")
        assert m["db_size"] > 0 and m["raft_term"] >= 2 and m["raft_index"] > 0
        assert m["client_urls"] == [c.member(i).client_url]
        assert m["is_leader"] == (i == leader)
        assert int(m["id"], 16) == int(c.status(i)["header"]["member_id"])
    assert rep["summary"] == f"healthy: 3/3 members up, leader etcd-{leader}, can lose 1 member"

    # one follower down: degraded, exit 1, the dead member named with its error
    follower = (leader + 1) % 3
    c.kill(follower)
    p, rep = status_json(*c.client_flags())
    assert p.returncode == 1, p.stdout + p.stderr
    assert rep["verdict"] == "degraded" and rep["can_lose"] == 0
    dead = by_name(rep)[f"etcd-{follower}"]
    assert not dead["reachable"] and dead["error"] == "connection refused"
    assert dead["version"] is None and dead["raft_index"] is None
    p = status(*c.client_flags())
    assert p.returncode == 1
    assert "degraded: 2/3 members up, quorum holds, can lose 0 more" in p.stdout
    assert f"warning: member etcd-{follower} is down: connection refused" in p.stdout

    # two down: quorum lost, exit 2, and quickly: dead members refuse at once, so no timer
    # runs out (each is set longer than any scheduling delay, so waiting on one shows)
    other = 3 - leader - follower
    c.kill(other)
    start = time.monotonic()
    p = status(*c.client_flags(), "--dial-timeout", f"{TIMER_S}s", "--timeout", f"{TIMER_S}s")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "critical: 1/3 members up, quorum lost" in p.stdout
    assert time.monotonic() - start < TIMER_S

    # both back: healthy again
    c.start(follower)
    c.start(other)
    c.wait_healthy()
    poll(lambda: status(*c.client_flags()).returncode == 0, what="healthy again")

    # the leader killed: degraded once a new leader is elected
    c.kill(leader)
    def new_leader():
        p, rep = status_json(*c.client_flags())
        if rep["leader"] and rep["leader"]["name"] != f"etcd-{leader}":
            return p, rep
        # until the election ends: the old leader reported but dead, or no leader at all
        assert p.returncode in (1, 2), p.stdout
        return None
    p, rep = poll(new_leader, what="a new leader")
    assert p.returncode == 1
    assert rep["summary"] == "degraded: 2/3 members up, quorum holds, can lose 0 more"
    assert not by_name(rep)[f"etcd-{leader}"]["reachable"]


def test_status_asks_members_at_their_own_urls(etcd3):
    c = etcd3
    # one endpoint given: every member is still asked, at its client URL
    p, rep = status_json(*c.client_flags(members=[1]))
    assert p.returncode == 0, p.stderr
    assert rep["voters_up"] == 3
    assert rep["members_from"] == c.member(1).client_url
    for m in rep["members"]:
        assert m["endpoint"] == m["client_urls"][0]
    # an endpoint spelled differently from the member list (localhost is in the SANs)
    alias = c.member(0).client_url.replace("127.0.0.1", "localhost")
    p, rep = status_json("--endpoints", alias, *c.tls_flags())
    assert p.returncode == 0, p.stderr
    assert rep["voters_up"] == 3
    assert by_name(rep)["etcd-0"]["endpoint"] == alias
    assert by_name(rep)["etcd-1"]["endpoint"] == c.member(1).client_url


def test_status_takes_etcdctl_environment(etcd3):
    env = etcd3.env()
    env.pop("ETCDCTL_API", None)
    p = status(env=env)
    assert p.returncode == 0, p.stderr
    assert "healthy: 3/3 members up" in p.stdout
    # flags win over the environment
    env["ETCDCTL_ENDPOINTS"] = "http://127.0.0.1:1"
    p = status("--endpoints", etcd3.endpoints, env=env)
    assert p.returncode == 0, p.stderr


def test_status_wrong_ca_is_a_clear_tls_error(etcd3, tmp_path):
    other_ca, _ = make_ca(str(tmp_path / "other"), "other-ca")
    ep = etcd3.member(0).client_url
    start = time.monotonic()
    p = status("--endpoints", ep, "--cacert", other_ca, "--cert", etcd3.cert, "--key",
               etcd3.key, "--dial-timeout", f"{TIMER_S}s", "--timeout", f"{TIMER_S}s")
    # failed at the handshake, not by a timer running out
    assert time.monotonic() - start < TIMER_S
    assert p.returncode == 78, p.stderr
    assert p.stderr.strip() == (f"kha etcd status: etcd {ep}: TLS handshake failed: "
                                "certificate signed by unknown CA (check --cacert)")


def test_status_without_client_certificate_is_rejected(etcd3):
    ep = etcd3.member(0).client_url
    p = status("--endpoints", ep, "--cacert", etcd3.ca, "--dial-timeout", "2s")
    assert p.returncode == 78, p.stderr
    assert f"etcd {ep}: TLS: the server rejected the client certificate" in p.stderr
    assert "(check --cert/--key)" in p.stderr


def test_status_missing_tls_file_is_a_config_error(tmp_path):
    p = status("--endpoints", "https://127.0.0.1:1", "--cacert", str(tmp_path / "nope.crt"))
    assert p.returncode == 78
    assert "cannot read CA file" in p.stderr and "(check --cacert/--cert/--key)" in p.stderr


def test_status_plain_http_single_member(etcd_cluster):
    c = etcd_cluster(members=1, tls=False)
    assert c.endpoints.startswith("http://")
    p, rep = status_json(*c.client_flags())
    # one member works, but it is a single point of failure
    assert p.returncode == 1, p.stderr
    assert rep["verdict"] == "degraded" and rep["voters_up"] == 1 and rep["can_lose"] == 0
    assert any("single voting member" in w for w in rep["warnings"])
    # a host:port endpoint without a scheme is plain HTTP when no TLS flag is given
    p = status("--endpoints", c.endpoints.replace("http://", ""))
    assert p.returncode == 1, p.stderr
    assert "degraded: 1/1 members up, leader etcd-0, can lose 0 members" in p.stdout


def test_status_reports_nospace_alarm_as_critical(etcd_cluster):
    c = etcd_cluster(members=1, tls=False, extra_args=["--quota-backend-bytes", "65536"])
    value = base64.b64encode(b"x" * 4096).decode()
    for i in range(400):
        reply = None
        try:
            reply = c.gateway("/v3/kv/put", {"key": base64.b64encode(b"/big/%d" % i).decode(),
                                             "value": value})
        except Exception:  # the gateway answers an HTTP error once the quota is hit
            break
        assert "header" in reply
    p, rep = status_json(*c.client_flags())
    assert p.returncode == 2, p.stdout + p.stderr
    assert rep["verdict"] == "critical"
    assert rep["members"][0]["alarms"] == ["NOSPACE"]
    assert rep["summary"].endswith("NOSPACE alarm active")


def test_status_shows_unstarted_learner(etcd3):
    c = etcd3
    peer = f"https://127.0.0.1:{c.member(0).peer_port + 1}"

    def add():
        p = c.etcdctl("member", "add", "learner-x", "--learner", f"--peer-urls={peer}",
                      check=False)
        return p.returncode == 0 or None  # "unhealthy cluster" until members settle
    poll(add, deadline=20, what="member add --learner")
    p, rep = status_json(*c.client_flags())
    assert p.returncode == 1, p.stdout + p.stderr
    assert rep["voters"] == 3 and rep["voters_up"] == 3 and rep["learners"] == 1
    assert rep["can_lose"] == 1
    learner = [m for m in rep["members"] if m["is_learner"]][0]
    assert not learner["reachable"] and learner["name"] == ""
    assert learner["error"] == "not started yet (no client URLs)"
    assert "+ 0/1 learner" in rep["summary"]


# ---- endpoints that are not etcd -----------------------------------------------------------

class _Server:
    def __init__(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _handler(status_code, body, content_type="text/plain"):
    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            data = body.encode()
            self.send_response(status_code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    return H


@pytest.fixture
def fake_server():
    made = []

    def make(status_code, body, content_type="text/plain"):
        s = _Server(_handler(status_code, body, content_type))
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def test_status_endpoint_answering_404(fake_server):
    s = fake_server(404, "404 page not found\n")
    p = status("--endpoints", s.url)
    assert p.returncode == 65, p.stderr
    assert (f"etcd {s.url}: HTTP 404 from {s.url}/v3/maintenance/status: not an etcd "
            "gateway? (404 page not found)") in p.stderr


def test_status_endpoint_answering_garbage(fake_server):
    s = fake_server(200, '{"header": {"revision": "1"}, "dbSize": [}', "application/json")
    p = status("--endpoints", s.url)
    assert p.returncode == 65, p.stderr
    assert f"etcd {s.url}: malformed status reply: not JSON" in p.stderr
    s2 = fake_server(200, '{"version": 3}', "application/json")
    p = status("--endpoints", s2.url)
    assert p.returncode == 65
    assert "malformed status reply: field 'version' is not a string" in p.stderr
    s3 = fake_server(502, "<html>bad gateway</html>")
    p = status("--endpoints", s3.url)
    assert p.returncode == 65
    assert "HTTP 502 from" in p.stderr and "<html>bad gateway</html>" in p.stderr


def test_status_grpc_error_is_named(fake_server):
    s = fake_server(503, json.dumps({"error": "etcdserver: request timed out", "code": 14,
                                     "message": "etcdserver: request timed out"}),
                    "application/json")
    p = status("--endpoints", s.url)
    assert p.returncode == 69, p.stderr
    assert f"etcd {s.url}: etcdserver: request timed out (gRPC Unavailable)" in p.stderr


def test_status_https_to_plain_server(fake_server):
    s = fake_server(404, "nope")
    url = s.url.replace("http://", "https://")
    # what is classified is the handshake's failure, not its time: room for a busy machine
    p = status("--endpoints", url, "--dial-timeout", "30s")
    assert p.returncode == 65, p.stderr
    assert f"etcd {url}: TLS handshake failed: the endpoint does not speak TLS" in p.stderr


def test_status_http_to_tls_member(etcd3):
    url = etcd3.member(0).client_url.replace("https://", "http://")
    p = status("--endpoints", url)
    assert p.returncode == 69, p.stderr
    # etcd with client certificate authentication hangs up on plain HTTP without a word
    assert p.stderr.strip() == (f"kha etcd status: etcd {url}: connection closed without an "
                                "answer (if the endpoint speaks TLS, use https://)")


# ---- endpoints that never answer -------------------------------------------------------------

@pytest.fixture
def blackhole():
    """A listening socket whose accept queue is full: connects to it hang (SYNs dropped)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fill = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(s.getsockname())
        fill.append(c)
    yield s.getsockname()[1]
    for c in fill:
        c.close()
    s.close()


def test_status_unreachable_endpoints_exit_69(blackhole):
    p = status("--endpoints", "http://127.0.0.1:1")
    assert p.returncode == 69
    assert p.stderr.strip() == "kha etcd status: etcd http://127.0.0.1:1: connection refused"

    # endpoints that never accept: bounded by the dial timeout, all probed in parallel (one
    # after the other, six would take 6 s)
    eps = ",".join([f"https://127.0.0.1:{blackhole}"] * 6)
    start = time.monotonic()
    p = status("--endpoints", eps, "--dial-timeout", "1s")
    elapsed = time.monotonic() - start
    assert p.returncode == 69, p.stderr
    assert elapsed < deadline(1), f"took {elapsed:.1f}s for a 1s dial timeout"
    # (the same endpoint six times fails alike: one error, no "(and 5 more ...)")
    assert p.stderr == (f"kha etcd status: etcd https://127.0.0.1:{blackhole}: no connection "
                        "within 1s: timed out (check --dial-timeout)\n")


def test_status_silent_server_is_bounded_by_timeout():
    """A server that accepts and reads but never answers: the per-member timeout ends it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    conns = []
    stop = threading.Event()

    def accept():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(s.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        start = time.monotonic()
        p = status("--endpoints", url, "--timeout", "1s")
        elapsed = time.monotonic() - start
        assert p.returncode == 69, p.stderr
        assert elapsed < deadline(1)
        assert f"etcd {url}: no answer within 1s (check --command-timeout)" in p.stderr
    finally:
        stop.set()
        t.join(5)
        for c in conns:
            c.close()
        s.close()


# ---- usage -----------------------------------------------------------------------------------

def test_etcd_help_and_usage():
    p = run_kha("etcd", "--help")
    assert p.returncode == 0 and "  status " in p.stdout
    p = run_kha("etcd")
    assert p.returncode == 64 and "Usage: kha etcd" in p.stderr
    p = run_kha("etcd", "frobnicate")
    assert p.returncode == 64 and "unknown subcommand 'frobnicate'" in p.stderr
    p = status("--help")
    assert p.returncode == 0 and "--lag-threshold" in p.stdout and "Example:" in p.stdout
    assert "--endpoints" in p.stdout and "--dial-timeout" in p.stdout
    for bad in (["-o", "yaml"], ["--dial-timeout", "5"], ["--bogus"], ["--lag-threshold", "x"],
                ["--endpoints", "ftp://x"], ["extra"]):
        p = status(*bad)
        assert p.returncode == 64, (bad, p.stderr)
        assert p.stderr.startswith("kha etcd status: ") or "Run 'kha etcd status --help'" \
            in p.stderr, p.stderr
    p = status(env=dict(os.environ, ETCDCTL_COMMAND_TIMEOUT="later"))
    assert p.returncode == 64 and "ETCDCTL_COMMAND_TIMEOUT" in p.stderr


def test_status_deep_compares_kv_hashes(etcd3):
    c = etcd3
    for i in range(50):
        c.etcdctl("put", f"deep/{i}", "v" * i)
    p, rep = status_json("--deep", *c.client_flags())
    assert p.returncode == 0, p.stderr
    deep = rep["consistency"]
    assert deep["verdict"] == "consistent", deep
    assert deep["compared"] == deep["agreeing"] == 3
    assert deep["revision"] >= 51
    # without --deep nothing is compared
    p, rep = status_json(*c.client_flags())
    assert rep["consistency"] is None
    # one member down: the hashes of the others agree, the check is incomplete -> degraded
    c.kill(2)
    p = status("--deep", *c.client_flags())
    assert p.returncode == 1, p.stdout + p.stderr
    assert "consistency: " in p.stdout


def _hostile_handler(members=0, pad=0):
    """A stand-in etcd (no real member can be made to send this): a member list of `members`
    members, or replies padded with `pad` bytes."""
    status = {"header": {"cluster_id": "1", "member_id": "2", "revision": "1",
                         "raft_term": "1"},
              "version": "3.4.23", "dbSize": "1", "leader": "2", "raftIndex": "1",
              "raftTerm": "1", "pad": "x" * pad}
    mlist = {"header": status["header"], "pad": "x" * pad,
             "members": [{"ID": str(i + 2), "name": f"m{i}",
                          "peerURLs": [f"http://10.0.{i // 250}.{i % 250}:2380"],
                          "clientURLs": [f"http://10.0.{i // 250}.{i % 250}:2379"]}
                         for i in range(members or 1)]}

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(mlist if "member/list" in self.path else status).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # kha stopped reading at its limit

        def log_message(self, *args):
            pass
    return H


PEAK_RSS = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,"
            " stderr=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def test_hostile_replies_are_bounded_with_a_clear_error():
    """20,000 members (7 MB) once took 13 s and 614 MB; now a one-line error, exit 65."""
    s = _Server(_hostile_handler(members=20000))
    try:
        p = status("--endpoints", s.url, "--dial-timeout", "30s", "--command-timeout", "120s",
                   timeout=180)
        assert p.returncode == 65, p.stdout + p.stderr
        assert "field 'members' has 20000 elements, more than kha accepts (128)" in p.stderr, \
            p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        # kha's own peak, measured by a fresh parent: this worker's RUSAGE_CHILDREN holds every
        # child it ever reaped (etcd members of earlier tests too), whichever ran before
        m = subprocess.run([sys.executable, "-c", PEAK_RSS, kha_bin(), "etcd", "status",
                            "--endpoints", s.url, "--dial-timeout", "30s",
                            "--command-timeout", "120s"], capture_output=True, text=True,
                           timeout=180)
        peak_kib = int(m.stdout.split()[-1])
        assert peak_kib < 200 * 1024, f"kha etcd status peaked at {peak_kib} KiB"
    finally:
        s.close()
    s = _Server(_hostile_handler(pad=65 << 20))
    try:
        p = status("--endpoints", s.url, "--dial-timeout", "30s", "--command-timeout", "120s",
                   timeout=180)
        assert p.returncode == 65, p.stdout + p.stderr
        assert f"etcd {s.url}: answer larger than {64 << 20} bytes" in p.stderr, p.stderr
    finally:
        s.close()
