# SPDX-License-Identifier: MIT
"""kha lock serve: the FleetLock protocol (Zincati's) over HTTP, on the etcd semaphore of
kha lock, against a real 3-member etcd cluster."""
import json
import socket
import signal
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, run_kha
from kha_testlib.process import assert_stays
from kha_testlib.elect import Procs, Recorder, wait_until
from kha_testlib.etcd import etcd3, etcd_cluster  # noqa: F401 (fixtures)


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


def test_groups_are_separate_semaphores(etcd3, procs):
    _, url = serve(procs, etcd3, "grp")
    assert post(url, "/v1/pre-reboot", params("a", "default"))[0] == 200
    assert post(url, "/v1/pre-reboot", params("b", "workers"))[0] == 200
    assert post(url, "/v1/pre-reboot", params("c", "workers"))[0] == 409
    st = json.loads(run_kha("lock", "--status", "--lock", "grp.workers",
                            *etcd3.client_flags(), "-o", "json").stdout)
    assert [c["id"] for c in st["contenders"]] == ["b"]


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
                 "--serve-client-ca", etcd3.ca], "serve")
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
    # no client certificate: the connection is accepted and then refused by TLS itself (today
    # by closing it without an alert: an SSL error, not a refused or reset connection, which a
    # crashed server would give too) ...
    anonymous = ssl.create_default_context(cafile=etcd3.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            with anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                body = json.dumps(params("node-z")).encode()
                s.sendall(b"POST /v1/pre-reboot HTTP/1.1\r\nHost: x\r\n"
                          b"fleet-lock-protocol: true\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body))
                s.recv(1024)
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
