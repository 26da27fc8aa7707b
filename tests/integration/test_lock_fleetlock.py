# SPDX-License-Identifier: MIT
"""kha lock serve: the FleetLock protocol (Zincati's) over HTTP, on the etcd semaphore of
kha lock, against a real 3-member etcd cluster."""
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, kha_bin, run_kha
from kha_testlib.process import assert_stays, deadline
from kha_testlib.elect import Procs, Recorder, wait_until
from kha_testlib.etcd import etcd3, etcd_cluster, issue_cert  # noqa: F401 (fixtures)


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.close()


def serve(procs, cluster, lock, slots=1, *extra):
    port = free_port()
    p = procs.start(["lock", "serve", *cluster.client_flags(), "--listen", f"127.0.0.1:{port}",
                     "--lock", lock, "--slots", str(slots), *extra], "serve")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(url) or not p.alive(), 10, "the FleetLock server", diag=procs.logs)
    assert p.alive(), p.log()
    return p, url


def _healthy(url):
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def post(url, path, body, header=True, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if header:
        req.add_header("fleet-lock-protocol", "true" if header is True else header)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def params(ident, group="default"):
    return {"client_params": {"id": ident, "group": group}}


def test_two_clients_one_slot(etcd3, procs):
    srv, url = serve(procs, etcd3, "reboots")
    code, body = post(url, "/v1/pre-reboot", params("node-a"))
    assert code == 200, body
    code, body = post(url, "/v1/pre-reboot", params("node-b"))
    assert code == 409 and body["kind"] == "failed_lock_semaphore_full", body
    assert body["value"]
    # recursive: the holder may ask again
    assert post(url, "/v1/pre-reboot", params("node-a"))[0] == 200
    # the slot outlives the server (node-a reboots while holding it)
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    st = json.loads(run_kha("lock", "--status", "--lock", "reboots", *etcd3.client_flags(),
                            "-o", "json").stdout)
    assert [(c["id"], c["state"], c["fleetlock"], c["lease"]) for c in st["contenders"]] == \
        [("node-a", "holder", True, None)]
    srv, url = serve(procs, etcd3, "reboots")
    assert post(url, "/v1/pre-reboot", params("node-b"))[0] == 409
    # steady state releases; then node-b gets it
    assert post(url, "/v1/steady-state", params("node-a"))[0] == 200
    assert post(url, "/v1/steady-state", params("node-a"))[0] == 200   # unlock if held
    code, body = post(url, "/v1/pre-reboot", params("node-b"))
    assert code == 200, body
    assert post(url, "/v1/pre-reboot", params("node-a"))[0] == 409
    with urllib.request.urlopen(url + "/v1/status", timeout=5) as r:
        st = json.loads(r.read())
    assert [c["id"] for c in st["contenders"]] == ["node-b"]
    assert post(url, "/v1/steady-state", params("node-b"))[0] == 200


def test_malformed_requests_get_400_with_a_reason(etcd3, procs):
    _, url = serve(procs, etcd3, "bad")
    cases = [
        (dict(body=params("a"), header=False), "missing_fleet_lock_protocol_header"),
        (dict(body=params("a"), header="yes"), "bad_fleet_lock_protocol_header"),
        (dict(body=None, raw=b"{not json"), "bad_request_body"),
        (dict(body=None, raw=b""), "bad_request_body"),
        (dict(body={"client_params": {"group": "default"}}), "bad_request_body"),
        (dict(body={"client_params": {"id": "", "group": "default"}}), "bad_request_body"),
        (dict(body={"client_params": {"id": "a", "group": "no spaces"}}), "bad_request_body"),
        (dict(body={"client_params": {"id": 5, "group": "default"}}), "bad_request_body"),
        (dict(body=[1, 2]), "bad_request_body"),
    ]
    for kw, kind in cases:
        for path in ("/v1/pre-reboot", "/v1/steady-state"):
            code, body = post(url, path, **kw)
            assert code == 400, (kw, body)
            assert body["kind"] == kind and body["value"], (kw, body)
    code, body = post(url, "/v1/nothing", params("a"))
    assert code == 404 and body["kind"]
    # nothing was locked by all that
    st = json.loads(run_kha("lock", "--status", "--lock", "bad", *etcd3.client_flags(),
                            "-o", "json").stdout)
    assert st["contenders"] == []


def test_fleetlock_and_kha_lock_share_the_semaphore(etcd3, procs, tmp_path):
    _, url = serve(procs, etcd3, "shared", 1)
    assert post(url, "/v1/pre-reboot", params("node-a"))[0] == 200
    rec = Recorder(tmp_path / "rec")
    k = procs.start(["lock", *etcd3.client_flags(), "--lock", "shared", "--id", "cli",
                     "--ttl", "2s", "--", *rec.command(0.1)], "cli")
    wait_until(lambda: "msg=waiting" in k.log(), 10, "the CLI contender to queue", diag=procs.logs)
    # for a whole TTL of the CLI contender: had the FleetLock holder's slot not counted (or been
    # let lapse), the CLI would have taken it within that time
    assert_stays(lambda: rec.starts() == [], 2.0, "the CLI does not run while a FleetLock "
                 "client holds the only slot")
    # and a FleetLock client cannot jump the CLI waiter's place
    assert post(url, "/v1/pre-reboot", params("node-b"))[0] == 409
    assert post(url, "/v1/steady-state", params("node-a"))[0] == 200
    assert k.wait(15) == 0
    assert len(rec.starts()) == 1


def test_healthz_body_is_the_one_every_daemon_serves(etcd3, procs):
    mport = free_port()
    _, url = serve(procs, etcd3, "hz", 1, "--metrics-addr", f"127.0.0.1:{mport}")
    for u in (url, f"http://127.0.0.1:{mport}"):
        with urllib.request.urlopen(u + "/healthz", timeout=5) as r:
            assert r.status == 200 and r.read() == b"ok\n", u
            assert r.headers["Content-Type"].startswith("text/plain"), u


def test_groups_are_separate_semaphores(etcd3, procs):
    _, url = serve(procs, etcd3, "grp", 1, "--group", "default", "--group", "workers")
    assert post(url, "/v1/pre-reboot", params("a", "default"))[0] == 200
    assert post(url, "/v1/pre-reboot", params("b", "workers"))[0] == 200
    assert post(url, "/v1/pre-reboot", params("c", "workers"))[0] == 409
    st = json.loads(run_kha("lock", "--status", "--lock", "grp.workers",
                            *etcd3.client_flags(), "-o", "json").stdout)
    assert [c["id"] for c in st["contenders"]] == ["b"]


def test_only_configured_groups_create_keys(etcd3, procs):
    """Every group is a lock whose holders are permanent keys: a group a client invents must not
    create one (etcd would grow without bound)."""
    _, url = serve(procs, etcd3, "onlydef")
    for i in range(5):
        code, body = post(url, "/v1/pre-reboot", params("a", f"invented{i}"))
        assert code == 403 and body["kind"] == "group_not_allowed", body
    assert post(url, "/v1/pre-reboot", params("a"))[0] == 200
    for i in range(5):
        st = json.loads(run_kha("lock", "--status", "--lock", f"onlydef.invented{i}",
                                *etcd3.client_flags(), "-o", "json").stdout)
        assert st["contenders"] == [], st


def test_closed_gate_refuses_with_its_kind(etcd3, procs):
    hour = (time.localtime().tm_hour + 2) % 24
    _, url = serve(procs, etcd3, "gated", 1, "--window", f"{hour:02d}:00-{hour:02d}:30")
    code, body = post(url, "/v1/pre-reboot", params("a"))
    assert code == 409 and body["kind"] == "failed_gate_window", body
    assert "maintenance window" in body["value"]
    st = json.loads(run_kha("lock", "--status", "--lock", "gated", *etcd3.client_flags(),
                            "-o", "json").stdout)
    assert st["contenders"] == []


def fleetlock_metrics(metrics_url):
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("kha_lock_fleetlock_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            kv = dict(x.split("=", 1) for x in labels[labels.index("{") + 1:-1].split(","))
            out[(kv["op"].strip('"'), kv["result"].strip('"'))] = float(value)
    return out


def test_serve_metrics_count_answers(etcd3, procs):
    mport = free_port()
    _, url = serve(procs, etcd3, "counted", 1, "--metrics-addr", f"127.0.0.1:{mport}")
    murl = f"http://127.0.0.1:{mport}"
    assert fleetlock_metrics(murl)[("pre-reboot", "ok")] == 0
    assert post(url, "/v1/pre-reboot", params("node-a"))[0] == 200
    assert post(url, "/v1/pre-reboot", params("node-b"))[0] == 409
    assert post(url, "/v1/steady-state", params("node-a"))[0] == 200
    assert post(url, "/v1/pre-reboot", params("node-c"), header=False)[0] == 400
    m = fleetlock_metrics(murl)
    assert m[("pre-reboot", "ok")] == 1 and m[("pre-reboot", "refused")] == 2, m
    assert m[("steady-state", "ok")] == 1 and m[("steady-state", "failed")] == 0, m
    with urllib.request.urlopen(murl + "/readyz", timeout=5) as r:
        assert r.status == 200


def test_serve_over_https_with_client_certificates(etcd3, procs, tmp_path):
    import ssl
    from kha_testlib.etcd import issue_cert
    srv_crt, srv_key = issue_cert(str(tmp_path), "fleetlock", etcd3.ca, etcd3.ca_key,
                                  client=False)
    node_crt, node_key = issue_cert(str(tmp_path), "node-a", etcd3.ca, etcd3.ca_key,
                                    server=False, sans=())
    port = free_port()
    procs.start(["lock", "serve", *etcd3.client_flags(), "--listen", f"127.0.0.1:{port}",
                 "--lock", "tls", "--serve-cert", srv_crt, "--serve-key", srv_key,
                 "--serve-cacert", etcd3.ca], "serve")
    url = f"https://127.0.0.1:{port}"

    def pre_reboot(ctx):
        req = urllib.request.Request(url + "/v1/pre-reboot", method="POST",
                                     data=json.dumps(params("node-a")).encode())
        req.add_header("fleet-lock-protocol", "true")
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status

    node = ssl.create_default_context(cafile=etcd3.ca)
    node.load_cert_chain(node_crt, node_key)
    wait_until(lambda: _try(lambda: pre_reboot(node)) == 200, 10, "HTTPS with a client cert",
               diag=procs.logs)
    # no client certificate: the connection is accepted and then refused by TLS itself, with
    # the alert that says why (TLS 1.3's certificate_required; handshake_failure in TLS 1.2),
    # not a reset connection, which a crashed server would give too; the client's request is
    # already sent when the server reads its empty certificate, and must not turn into a reset
    # that hides the alert ...
    anonymous = ssl.create_default_context(cafile=etcd3.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            with anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                body = json.dumps(params("node-z")).encode()
                s.sendall(b"POST /v1/pre-reboot HTTP/1.1\r\nHost: x\r\n"
                          b"fleet-lock-protocol: true\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
                s.recv(1024)
    assert refused.value.reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                    "SSLV3_ALERT_HANDSHAKE_FAILURE"), refused.value
    # curl too says why (it writes its request at once, as most clients do)
    for tls in ("--tlsv1.3", "--tls-max"):
        extra = [tls] if tls == "--tlsv1.3" else [tls, "1.2"]
        c = subprocess.run(["curl", "-sS", *extra, "--cacert", etcd3.ca, "-X", "POST",
                            "-H", "fleet-lock-protocol: true", "-d", "{}",
                            url + "/v1/pre-reboot"], capture_output=True, text=True, timeout=30)
        assert c.returncode != 0 and ("alert certificate required" in c.stderr or
                                      "alert handshake failure" in c.stderr), c.stderr
    # ... the server is still up, and nothing was granted to it: node-a holds the only slot
    assert _try(lambda: pre_reboot(node)) == 200  # node-a again: idempotent
    st = json.loads(run_kha("lock", "--status", "--lock", "tls", *etcd3.client_flags(),
                            "-o", "json").stdout)
    assert [c["id"] for c in st["contenders"]] == ["node-a"], st
    # plain HTTP on the TLS port gets nothing either
    assert not _healthy(f"http://127.0.0.1:{port}")
    # bad TLS files: one line, exit 78, nothing served
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    p = run_kha("lock", "serve", *etcd3.client_flags(), "--listen", f"127.0.0.1:{free_port()}",
                "--lock", "x", "--serve-cert", str(bad), "--serve-key", srv_key)
    assert p.returncode == 78 and p.stderr.count("\n") == 1 and "--serve-cert" in p.stderr, \
        p.stderr
    p = run_kha("lock", "serve", *etcd3.client_flags(), "--lock", "x", "--serve-cert", srv_crt)
    assert p.returncode == 64 and "--serve-key" in p.stderr, p.stderr


def _try(fn):
    try:
        return fn()
    except (urllib.error.URLError, OSError):
        return None


# ---- TLS, identities, hostile and slow clients ------------------------------------------------


class TLSServe:
    """kha lock serve over HTTPS with client certificates of the etcd test CA."""

    def __init__(self, procs, cluster, tmp_path, lock, *extra):
        d = str(tmp_path)
        self.cluster = cluster
        self.tmp = d
        crt, key = issue_cert(d, "fleetlock", cluster.ca, cluster.ca_key, client=False)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc = procs.start(["lock", "serve", *cluster.client_flags(), "--listen",
                                 f"127.0.0.1:{self.port}", "--lock", lock, "--serve-cert", crt,
                                 "--serve-key", key, "--serve-cacert", cluster.ca, *extra],
                                "serve-tls")
        self.nodes = {}
        wait_until(lambda: self.get("/healthz", "node-a")[0] == 200 or not self.proc.alive(),
                   10, "the FleetLock server over HTTPS", diag=procs.logs)
        assert self.proc.alive(), self.proc.log()

    def ctx(self, node):
        if node not in self.nodes:
            crt, key = issue_cert(self.tmp, node, self.cluster.ca, self.cluster.ca_key,
                                  server=False, sans=(f"DNS:{node}.nodes.example",))
            c = ssl.create_default_context(cafile=self.cluster.ca)
            c.load_cert_chain(crt, key)
            self.nodes[node] = c
        return self.nodes[node]

    def _open(self, req, node):
        def decode(data):
            try:
                return json.loads(data or b"{}")
            except json.JSONDecodeError:
                return data  # /healthz: text

        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ctx(node)) as r:
                return r.status, decode(r.read())
        except urllib.error.HTTPError as e:
            return e.code, decode(e.read())
        except (urllib.error.URLError, OSError):
            return None, None

    def get(self, path, node):
        return self._open(urllib.request.Request(self.url + path), node)

    def post(self, path, node, ident):
        req = urllib.request.Request(self.url + path, method="POST",
                                     data=json.dumps(params(ident)).encode())
        req.add_header("fleet-lock-protocol", "true")
        return self._open(req, node)


def test_client_certificate_binds_the_id(etcd3, procs, tmp_path):
    srv = TLSServe(procs, etcd3, tmp_path, "bound")
    code, body = srv.post("/v1/pre-reboot", "node-a", "node-a")
    assert code == 200, body
    # node-b may neither release node-a's slot nor take one in its name
    code, body = srv.post("/v1/steady-state", "node-b", "node-a")
    assert code == 403 and body["kind"] == "id_not_allowed", body
    code, body = srv.post("/v1/pre-reboot", "node-b", "invented")
    assert code == 403 and body["kind"] == "id_not_allowed", body
    # a DNS SAN of the certificate is one of its names too
    code, body = srv.get("/v1/status", "node-b")
    assert code == 200 and [c["id"] for c in body["contenders"]] == ["node-a"], body
    assert srv.post("/v1/steady-state", "node-a", "node-a")[0] == 200
    assert srv.post("/v1/pre-reboot", "node-b", "node-b.nodes.example")[0] == 200
    assert srv.post("/v1/steady-state", "node-b", "node-b.nodes.example")[0] == 200


def test_client_ids_file_maps_certificates_to_ids(etcd3, procs, tmp_path):
    ids = tmp_path / "ids"
    ids.write_text("# certificate name -> FleetLock ids (Zincati sends the machine id)\n"
                   "node-a 3f2a9c0e1b7d4e5f\n")
    srv = TLSServe(procs, etcd3, tmp_path, "mapped", "--client-ids", str(ids))
    assert srv.post("/v1/pre-reboot", "node-a", "3f2a9c0e1b7d4e5f")[0] == 200
    code, body = srv.post("/v1/pre-reboot", "node-a", "node-a")
    assert code == 403 and body["kind"] == "id_not_allowed", body
    code, body = srv.post("/v1/steady-state", "node-b", "3f2a9c0e1b7d4e5f")
    assert code == 403, body
    assert srv.post("/v1/steady-state", "node-a", "3f2a9c0e1b7d4e5f")[0] == 200
    bad = tmp_path / "bad-ids"
    bad.write_text("node-a\n")
    p = run_kha("lock", "serve", *etcd3.client_flags(), "--lock", "x", "--client-ids", str(bad),
                "--serve-cert", str(tmp_path / "fleetlock.crt"), "--serve-key",
                str(tmp_path / "fleetlock.key"), "--serve-cacert", etcd3.ca)
    assert p.returncode == 78 and "bad-ids:1" in p.stderr, p.stderr
    p = run_kha("lock", "serve", *etcd3.client_flags(), "--lock", "x", "--client-ids", str(ids))
    assert p.returncode == 64 and "--serve-cacert" in p.stderr, p.stderr


HTTPD_TIMEOUT_S = 5.0  # KHA_HTTPD_TIMEOUT_US: one deadline from accept, handshake included
TRICKLE_S = 1.0  # how often a trickling client sends a byte (and wakes up)


def _trickle(port, stop, report, interval=TRICKLE_S):
    """A slow client: connects and sends one byte of a TLS ClientHello every interval, until
    stop is set; reports (connected_at, closed_at or None)."""
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64
    t0 = time.monotonic()
    closed = None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            t0 = time.monotonic()
            s.settimeout(interval)
            for i in range(10 ** 6):
                if stop.is_set():
                    break
                try:
                    s.send(hello[i % len(hello):i % len(hello) + 1])
                    if s.recv(1) == b"":
                        closed = time.monotonic()
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed = time.monotonic()
                    break
    except OSError:
        closed = time.monotonic()
    report.append((t0, closed))


def test_slow_tls_clients_neither_block_nodes_nor_the_stop(etcd3, procs, tmp_path):
    """80 connections trickling a TLS handshake one byte a second (more than the server serves
    at once): each is closed by its deadline (handshake included), real nodes are served
    meanwhile, and SIGTERM does not wait for the slow ones."""
    srv = TLSServe(procs, etcd3, tmp_path, "slow")
    stop, report = threading.Event(), []
    threads = [threading.Thread(target=_trickle, args=(srv.port, stop, report), daemon=True)
               for _ in range(80)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # let them all connect: the point is to be served while they hold on
        for _ in range(3):
            code, body = srv.post("/v1/pre-reboot", "node-a", "node-a")
            assert code == 200, body
            assert srv.post("/v1/steady-state", "node-a", "node-a")[0] == 200
        assert srv.get("/healthz", "node-b")[0] == 200
        # the deadline covers the handshake: nobody trickles on for long
        wait_until(lambda: len(report) == len(threads), 30, "the server to close every "
                   "trickling connection", diag=procs.logs)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert all(closed is not None for _, closed in report), report
    # each closed by its deadline from accept (or evicted earlier); the client sees the close
    # within its own wake-up interval
    assert max(closed - t0 for t0, closed in report) < deadline(HTTPD_TIMEOUT_S + TRICKLE_S), report
    # a stop with 80 slow clients connected: it closes them at once instead of waiting for
    # their deadline, so the server is gone before the last one's deadline could have come
    stop.clear()
    report.clear()
    threads = [threading.Thread(target=_trickle, args=(srv.port, stop, report), daemon=True)
               for _ in range(80)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    srv.proc.signal(signal.SIGTERM)
    try:
        assert srv.proc.wait(deadline(HTTPD_TIMEOUT_S)) == 0
        exited = time.monotonic()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    last = max(t0 for t0, _ in report)
    assert exited < last + HTTPD_TIMEOUT_S, (exited - last, report)
    print(f"stop with 80 slow clients: exited {exited - last:.2f}s after the last connected")


def _raw(port, data, read_timeout=10):
    """Sends data at once, then reads the whole answer (a reset raises)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_framing_attacks_and_bare_lf(etcd3, procs):
    _, url = serve(procs, etcd3, "framing")
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps(params("node-a")).encode()
    # two lengths: which one frames the body is exactly what request smuggling plays on
    two = (b"POST /v1/pre-reboot HTTP/1.1\r\nHost: x\r\nfleet-lock-protocol: true\r\n"
           b"Content-Length: %d\r\nContent-Length: 2\r\n\r\n" % len(body)) + body
    assert _raw(port, two).startswith(b"HTTP/1.1 400 "), "two Content-Length headers"
    chunked = (b"POST /v1/pre-reboot HTTP/1.1\r\nfleet-lock-protocol: true\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(body)) + body + b"\r\n0\r\n\r\n"
    assert _raw(port, chunked).startswith(b"HTTP/1.1 411 ")
    st = json.loads(run_kha("lock", "--status", "--lock", "framing", *etcd3.client_flags(),
                            "-o", "json").stdout)
    assert st["contenders"] == []
    # bare LF line ends (what netcat and some scripts send): answered like CRLF
    lf = (b"POST /v1/pre-reboot HTTP/1.1\nHost: x\nfleet-lock-protocol: true\n"
          b"Content-Length: %d\n\n" % len(body)) + body
    answer = _raw(port, lf)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["kind"] == "lock_granted"
    # a head over 8 KiB: 431, readable before the close (the rest of the head is drained)
    big = b"POST /v1/pre-reboot HTTP/1.1\r\nX-Pad: " + b"a" * (64 * 1024) + b"\r\n\r\n"
    assert _raw(port, big).startswith(b"HTTP/1.1 431 ")


def _hold(port, n):
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    return socks


def _ok(url, path="/healthz"):
    try:
        with urllib.request.urlopen(url + path, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def test_health_answers_while_a_local_process_holds_connections(etcd3, procs):
    mport = free_port()
    srv, url = serve(procs, etcd3, "held", 1, "--metrics-addr", f"127.0.0.1:{mport}")
    murl = f"http://127.0.0.1:{mport}"
    held = _hold(mport, 200) + _hold(int(url.rsplit(":", 1)[1]), 200)
    try:
        assert [_ok(murl, "/healthz") for _ in range(20)] == [200] * 20
        assert [_ok(murl, "/readyz") for _ in range(5)] == [200] * 5
        assert [_ok(url, "/healthz") for _ in range(20)] == [200] * 20
        assert post(url, "/v1/pre-reboot", params("node-a"))[0] == 200
        # out of descriptors too: an idle connection, or the reserve, makes room
        resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, (48, 48))
        held += _hold(mport, 100)
        assert [_ok(murl, "/healthz") for _ in range(10)] == [200] * 10
    finally:
        for s in held:
            s.close()


class Netns:
    """A network namespace of our own with only lo up: listening on 0.0.0.0 there reaches
    nobody else."""

    def __init__(self):
        self.name = f"khafl{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up", check=True)

    def run(self, *args, **kw):
        return subprocess.run(["ip", "netns", "exec", self.name, *map(str, args)],
                              capture_output=True, text=True, timeout=30, **kw)

    def popen(self, args, log):
        return subprocess.Popen(["ip", "netns", "exec", self.name, kha_bin(), *map(str, args)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


@pytest.fixture
def netns():
    ns = Netns()
    yield ns
    ns.close()


def test_off_loopback_needs_client_certificates(netns, etcd3, tmp_path):
    # no etcd is reached in the namespace: the refusal comes before any request
    base = ["lock", "serve", "--endpoints", "http://127.0.0.1:9", "--lock", "x",
            "--listen", "0.0.0.0:3333"]
    p = netns.run(kha_bin(), *base)
    assert p.returncode == 64, p.stderr
    assert p.stderr.count("\n") == 1 and "--insecure-no-client-certs" in p.stderr, p.stderr
    assert "--serve-cacert" in p.stderr
    # TLS without client certificates is not enough either
    crt, key = issue_cert(str(tmp_path), "fleetlock", etcd3.ca, etcd3.ca_key, client=False)
    p = netns.run(kha_bin(), *base, "--serve-cert", crt, "--serve-key", key)
    assert p.returncode == 64, p.stderr
    # the loud flag: it serves, with a warning, and /v1/status is not for anyone
    log_path = tmp_path / "insecure.log"
    with open(log_path, "wb") as log:
        proc = netns.popen([*base, "--insecure-no-client-certs"], log)
    try:
        wait_until(lambda: "200" in netns.run("curl", "-s", "-o", "/dev/null", "-w",
                                              "%{http_code}",
                                              "http://127.0.0.1:3333/healthz").stdout
                   or proc.poll() is not None, 10, "the insecure server")
        text = log_path.read_text()
        assert "level=warn" in text and "insecure-no-client-certs" in text, text
        r = netns.run("curl", "-s", "-w", " %{http_code}", "http://127.0.0.1:3333/v1/status")
        assert r.stdout.endswith(" 403") and "status_forbidden" in r.stdout, r.stdout
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    # with client certificates, off loopback is the normal case
    node_crt, node_key = issue_cert(str(tmp_path), "node-a", etcd3.ca, etcd3.ca_key,
                                    server=False, sans=())
    with open(tmp_path / "tls.log", "wb") as log:
        proc = netns.popen([*base, "--serve-cert", crt, "--serve-key", key,
                            "--serve-cacert", etcd3.ca], log)
    try:
        curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", etcd3.ca,
                "--cert", node_crt, "--key", node_key, "https://127.0.0.1:3333/healthz"]
        wait_until(lambda: netns.run(*curl).stdout == "200" or proc.poll() is not None, 10,
                   "the TLS server off loopback")
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_sighup_reloads_groups_and_client_ids(etcd3, procs, tmp_path):
    ids = tmp_path / "ids"
    ids.write_text("node-a machine-a\n")
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"group: [default]\nclient-ids: {ids}\n")
    srv = TLSServe(procs, etcd3, tmp_path, "hup", "--config", str(cfg))

    def pre(node, ident, group="default"):
        req = urllib.request.Request(srv.url + "/v1/pre-reboot", method="POST",
                                     data=json.dumps(params(ident, group)).encode())
        req.add_header("fleet-lock-protocol", "true")
        return srv._open(req, node)

    assert pre("node-a", "machine-a")[0] == 200
    assert pre("node-b", "machine-b", "workers")[1]["kind"] in ("group_not_allowed",
                                                                "id_not_allowed")
    # a new node and a new group, without a restart
    ids.write_text("node-a machine-a\nnode-b machine-b\n")
    cfg.write_text(f"group: [default, workers]\nclient-ids: {ids}\n")
    srv.proc.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in srv.proc.log(), 10, "the reload",
               diag=procs.logs)
    code, body = pre("node-b", "machine-b", "workers")
    assert code == 200, body
    # a broken file keeps what runs
    ids.write_text("node-c\n")
    srv.proc.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in srv.proc.log(), 10, "the failed reload",
               diag=procs.logs)
    assert "ids:1" in srv.proc.log()
    assert srv.proc.alive()
    assert pre("node-a", "machine-a")[0] == 200  # still holds it: recursive
