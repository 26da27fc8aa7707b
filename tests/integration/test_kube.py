# SPDX-License-Identifier: MIT
"""lib/kube end to end: kube-probe (a tests-only driver of the library) against the stand-in
API server (kha_testlib/kubeapi.py) over real TLS, for what the real kube-apiserver cannot be
made to do on demand (each test says which): watch faults (410 Gone, bookmarks, 503, an API that
goes away). Discovery of live changes runs against the real server in
test_kube_discovery_real.py. Still here and due to move: kubeconfig variants, authentication,
TLS verification and Leases."""
import json
import os
import queue
import signal
import subprocess
import threading

import pytest

from conftest import assert_no_sanitizer_report, free_port, kha_bin
from kha_testlib.process import stop_all
from kha_testlib.kubeapi import DEFAULT_TOKEN, MICROTIME_RE, KubeAPI, TestPKI, wait_until
from kha_testlib.kubeprobe import Discovery, clean_env, probe, probe_bin

EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_IOERR, EXIT_CONFIG = 64, 69, 74, 78


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("kube-pki"))


@pytest.fixture
def api(pki):
    server = KubeAPI(pki).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(api, tmp_path):
    return api.write_kubeconfig(tmp_path / "kubeconfig", auth="token")


@pytest.fixture
def discovery():
    started = []

    def start(*args, **kw):
        d = Discovery(*args, **kw)
        started.append(d)
        return d
    yield start
    # each one the test left running is stopped the checked way: a crash before teardown, a
    # bad exit or a sanitizer report fails the test (after every one was stopped)
    stop_all(started)


def list_requests(api):
    return [r for r in api.requests if r["method"] == "GET" and not r["watch"]
            and r["path"].endswith("/endpointslices")]


# -- discovery ------------------------------------------------------------------------------

def test_discovery_relists_on_gone_error_event(api, kubeconfig, discovery):
    # stand-in: a watch ERROR 410 at a chosen moment (the real one sends it only when its cache window passed)
    api.set_slice("kubernetes", ["10.0.0.1"])
    d = discovery("--kubeconfig", kubeconfig, "discover")
    d.wait_set(["10.0.0.1:6443"])
    wait_until(lambda: api.active_watches == 1, 10, "the watch")
    api.send_watch_error(410, "Expired")
    wait_until(lambda: len(list_requests(api)) == 2, 10, "a relist after ERROR 410")
    assert "resourceVersion" not in list_requests(api)[1]["query"]    # consistent
    wait_until(lambda: api.active_watches == 1, 10, "a new watch")
    api.set_slice("kubernetes", ["10.0.0.2"])
    d.wait_set(["10.0.0.2:6443"])
    assert d.errors() == []            # a first 410 is routine: relisted, not reported
    d.stop()


def test_discovery_relists_on_gone_http_status(api, kubeconfig, discovery):
    # stand-in: a watch request answered HTTP 410 on demand
    api.set_slice("kubernetes", ["10.0.0.1"])
    d = discovery("--kubeconfig", kubeconfig, "discover")
    d.wait_set(["10.0.0.1:6443"])
    wait_until(lambda: api.active_watches == 1, 10, "the watch")
    api.fail_next_watches(1, 410)
    api.close_watches()
    wait_until(lambda: len(list_requests(api)) == 2, 10, "a relist after HTTP 410")
    api.set_slice("kubernetes", ["10.0.0.3"])
    d.wait_set(["10.0.0.3:6443"])
    d.stop()


def test_discovery_catches_up_after_compaction(api, kubeconfig, discovery):
    # stand-in: a server stopped, compacted and restarted between two requests
    """Changes missed while the watch was down and compacted away come back through a relist."""
    api.set_slice("kubernetes", ["10.0.0.1"])
    d = discovery("--kubeconfig", kubeconfig, "discover", "--backoff-initial", "50ms",
                  "--backoff-max", "200ms")
    d.wait_set(["10.0.0.1:6443"])
    api.stop()
    api.set_slice("kubernetes", ["10.0.0.7"])
    api.compact()
    api.start()
    s = d.wait_set(["10.0.0.7:6443"])
    assert int(s["resourceVersion"]) >= int(api.resource_version) - 1
    # the watch from the old version got ERROR 410, then the relist
    assert len(list_requests(api)) == 2
    d.stop()


def test_bookmark_moves_the_resume_version(api, kubeconfig, discovery):
    # stand-in: a bookmark at a chosen moment (the real server sends one about every minute)
    api.set_slice("kubernetes", ["10.0.0.1"])
    d = discovery("--kubeconfig", kubeconfig, "discover")
    d.wait_set(["10.0.0.1:6443"])
    wait_until(lambda: api.active_watches == 1, 10, "the watch")
    assert api.watch_requests()[0]["query"]["allowWatchBookmarks"] == "true"
    api.set_slice("unrelated", ["10.9.9.9"], service="unrelated")   # moves the version only
    bookmark_rv = api.send_bookmark()
    api.close_watches()        # the watch sends the queued bookmark, then ends
    w = wait_until(lambda: api.watch_requests()[1:] and api.watch_requests()[1], 10,
                   "a second watch")
    assert w["query"]["resourceVersion"] == bookmark_rv
    assert len(list_requests(api)) == 1            # no relist
    assert len(d.sets()) == 1                      # and nothing new to deliver
    d.stop()


def test_api_down_keeps_last_set_and_retries_with_backoff(api, kubeconfig, discovery):
    # stand-in: the only API server going away and coming back within seconds
    api.set_slice("kubernetes", ["10.0.0.1", "10.0.0.2"])
    d = discovery("--kubeconfig", kubeconfig, "--connect-timeout", "1s", "discover",
                  "--backoff-initial", "100ms", "--backoff-max", "400ms")
    d.wait_set(["10.0.0.1:6443", "10.0.0.2:6443"])
    api.stop()
    wait_until(lambda: len(d.errors()) >= 4, 15, "retries while the API is down")
    errs = d.errors()
    assert {e["errno"] for e in errs} <= {"ECONNREFUSED", "ECONNRESET"}
    assert all(e["retry_in_ms"] <= 400 for e in errs)          # capped
    assert "127.0.0.1" in errs[0]["message"]
    assert len(d.sets()) == 1                                  # the last set stands
    api.set_slice("kubernetes", ["10.0.0.2", "10.0.0.3"])
    api.start()
    d.wait_set(["10.0.0.2:6443", "10.0.0.3:6443"])
    d.stop()


def test_api_errors_are_retried(api, kubeconfig, discovery):
    # stand-in: 503 answers on demand
    api.set_slice("kubernetes", ["10.0.0.1"])
    api.fail_next_requests(2, 503, "ServiceUnavailable")
    d = discovery("--kubeconfig", kubeconfig, "discover", "--backoff-initial", "50ms",
                  "--backoff-max", "100ms")
    d.wait_set(["10.0.0.1:6443"])
    errs = d.errors()
    assert len(errs) == 2 and errs[0]["errno"] == "EBUSY"
    assert "503 ServiceUnavailable" in errs[0]["message"]
    d.stop()


def test_stop_is_prompt_during_a_long_watch(api, kubeconfig, discovery):
    # stand-in: a watch held open for 600 s without events
    api.set_slice("kubernetes", ["10.0.0.1"])
    d = discovery("--kubeconfig", kubeconfig, "discover", "--watch-timeout", "600")
    d.wait_set(["10.0.0.1:6443"])
    wait_until(lambda: api.active_watches == 1, 10, "the watch")
    d.stop(timeout=5)          # far less than the watch's 600 s


def test_stop_is_prompt_during_backoff(api, kubeconfig, discovery):
    # stand-in: an API that is down at start
    api.stop()
    d = discovery("--kubeconfig", kubeconfig, "discover", "--backoff-initial", "60s",
                  "--backoff-max", "60s")
    wait_until(lambda: d.errors(), 10, "the first failure")
    d.stop(timeout=5)          # asleep for ~30-60 s otherwise
    api.start()


# -- kubeconfig, authentication, TLS ---------------------------------------------------------

@pytest.mark.parametrize("auth,inline,relative", [
    ("token", False, False),
    ("tokenFile", False, True),
    ("cert", False, False),
    ("cert", True, False),
    ("cert", False, True),
])
def test_kubeconfig_variants_authenticate(api, tmp_path, auth, inline, relative):
    # stand-in: static bearer tokens and token files (the lab apiserver runs without --token-auth-file, and a real one cannot be restarted per case)
    api.set_slice("kubernetes", ["10.0.0.1"])
    kc = api.write_kubeconfig(tmp_path / "sub" / "kubeconfig", auth=auth, inline=inline,
                              relative=relative)
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["endpoints"][0]["addr"] == "10.0.0.1:6443"
    user = api.requests[-1]["user"]
    assert user == ("cert:kha-admin" if auth == "cert" else "token:" + DEFAULT_TOKEN[:5])


def test_kubeconfig_from_env_first_file_only(api, tmp_path):
    # stand-in: which of two kubeconfigs authenticated is read from the server's request log, which the real one does not expose
    api.set_slice("kubernetes", ["10.0.0.1"])
    good = api.write_kubeconfig(tmp_path / "good", auth="token")
    env = clean_env(KUBECONFIG=f"{good}:{tmp_path}/does-not-exist")
    p = probe("endpoints", env=env)
    assert p.returncode == 0, p.stderr
    env = clean_env(KUBECONFIG=f"{tmp_path}/does-not-exist:{good}")
    p = probe("endpoints", env=env)
    assert p.returncode == EXIT_CONFIG
    assert "does-not-exist ($KUBECONFIG)" in p.stderr


def test_in_cluster_service_account(api, pki, tmp_path):
    # stand-in: an in-cluster service account on a loopback server (the real one issues tokens only for its own issuer and address)
    api.set_slice("kubernetes", ["10.0.0.1"])
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(DEFAULT_TOKEN + "\n")
    (sa / "ca.crt").write_bytes(open(pki.ca_cert, "rb").read())
    (sa / "namespace").write_text("kube-system")
    env = clean_env(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT=str(api.port))
    p = probe("--serviceaccount-dir", sa, "config", env=env)
    cfg = json.loads(p.stdout)
    assert cfg["source"] == "in-cluster" and cfg["namespace"] == "kube-system"
    assert cfg["auth"] == "token-file"
    p = probe("--serviceaccount-dir", sa, "endpoints", env=env)
    assert p.returncode == 0, p.stderr
    # not in a pod, no kubeconfig: a clear error
    p = probe("--serviceaccount-dir", sa, "endpoints", env=clean_env())
    assert p.returncode == EXIT_CONFIG
    assert "KUBERNETES_SERVICE_HOST" in p.stderr and "--kubeconfig" in p.stderr


def test_wrong_token_is_unauthorized(api, tmp_path):
    # stand-in: a token rejected on demand with an exact Status body to check the message
    kc = api.write_kubeconfig(tmp_path / "kc", auth="token", token="not-the-token")
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG
    assert "401 Unauthorized" in p.stderr
    assert f"kube {api.url}: GET /apis/discovery.k8s.io/v1/namespaces/default/endpointslices" \
        in p.stderr


def test_wrong_ca_is_a_clear_tls_error(api, tmp_path):
    # stand-in: a server certificate signed by a CA made per test (the lab's certificates are fixed by kubeadm)
    other = TestPKI(tmp_path / "other-pki", name="some-other-ca")
    kc = api.write_kubeconfig(tmp_path / "kc", auth="token", ca_cert=other.ca_cert)
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "TLS handshake failed" in p.stderr
    assert "certificate" in p.stderr and "certificate-authority" in p.stderr
    assert not any(r["path"].endswith("endpointslices") for r in api.requests)
    # with inline data the same: only that CA is trusted, not the system's
    kc = api.write_kubeconfig(tmp_path / "kc2", auth="token", ca_cert=other.ca_cert,
                              inline=True)
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG and "TLS handshake failed" in p.stderr


def test_insecure_skip_tls_verify(api, tmp_path):
    # stand-in: a server certificate of a CA the client does not have, made per test
    api.set_slice("kubernetes", ["10.0.0.1"])
    kc = api.write_kubeconfig(tmp_path / "kc", auth="token", insecure=True,
                              server=f"https://wrong.kha.test:{api.port}")
    p = probe("--kubeconfig", kc, "--server", api.url, "endpoints")
    assert p.returncode == 0, p.stderr


def test_tls_server_name_is_verified(api, tmp_path):
    # stand-in: a certificate with chosen SANs, to verify tls-server-name against it
    api.set_slice("kubernetes", ["10.0.0.1"])
    kc = api.write_kubeconfig(tmp_path / "kc", auth="token", tls_server_name="kubernetes")
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == 0, p.stderr
    kc = api.write_kubeconfig(tmp_path / "kc2", auth="token", tls_server_name="wrong.kha.test")
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG
    assert "TLS handshake failed" in p.stderr and "wrong.kha.test" in p.stderr


def test_server_override_keeps_credentials_and_verifies_original_name(api, tmp_path):
    # stand-in: the request log shows which credentials reached which server
    """As the proxy does: connect through another address, verify the kubeconfig's name."""
    api.set_slice("kubernetes", ["10.0.0.1"])
    # (never resolved: the connection goes to --server; no DNS query leaves the machine)
    kc = api.write_kubeconfig(tmp_path / "kc", auth="cert",
                              server=f"https://kubernetes.default.svc:{free_port()}")
    p = probe("--kubeconfig", kc, "--server", api.url, "endpoints")
    assert p.returncode == 0, p.stderr
    assert api.requests[-1]["user"] == "cert:kha-admin"
    # the certificate does not name wrong.kha.test: refused even though 127.0.0.1 is named
    kc = api.write_kubeconfig(tmp_path / "kc2", auth="token",
                              server=f"https://wrong.kha.test:{api.port}")
    p = probe("--kubeconfig", kc, "--server", api.url, "endpoints")
    assert p.returncode == EXIT_CONFIG and "TLS handshake failed" in p.stderr
    # ... unless told which name to verify
    p = probe("--kubeconfig", kc, "--server", api.url, "--tls-server-name", "kubernetes",
              "endpoints")
    assert p.returncode == 0, p.stderr


def test_kubeconfig_errors_name_the_field(api, tmp_path):
    # stand-in: only the kubeconfig is under test; the server must merely exist on loopback
    kc = api.write_kubeconfig(tmp_path / "kc", auth="cert")
    text = open(kc).read().replace("client-key:", "client-kee:")
    open(kc, "w").write(text)
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_USAGE
    assert f"kubeconfig {kc}: users[\"kha-test-user\"].user: client-certificate without " \
        "client-key" in p.stderr
    p = probe("--kubeconfig", kc, "--context", "nope", "endpoints")
    assert 'contexts: "nope" not found' in p.stderr


def test_unreachable_server_fails_fast(tmp_path, pki):
    port = free_port()
    api = KubeAPI(pki, port=port)        # never started
    kc = api.write_kubeconfig(tmp_path / "kc", auth="token")
    p = probe("--kubeconfig", kc, "--timeout", "2s", "endpoints", timeout=15)
    assert p.returncode == EXIT_UNAVAILABLE
    assert f"kube {api.url}: GET" in p.stderr and "connection refused" in p.stderr


# -- Leases ----------------------------------------------------------------------------------

def lease(p):
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_lease_create_get_update_conflict(api, kubeconfig):
    # stand-in: byte-exact replies and a 409 at a chosen moment (the real Lease path runs in test_elect_lease_real.py)
    kc = ("--kubeconfig", kubeconfig)
    p = probe(*kc, "lease-get", "kube-system", "kha-test")
    assert p.returncode == EXIT_CONFIG
    assert '404 NotFound: leases.coordination.k8s.io "kha-test" not found' in p.stderr

    created = lease(probe(*kc, "lease-create", "kube-system", "kha-test", "master-1", "15"))
    assert created["holderIdentity"] == "master-1" and created["leaseDurationSeconds"] == 15
    assert created["resourceVersion"]
    stored = api.get_lease("kube-system", "kha-test")
    for k in ("acquireTime", "renewTime"):        # MicroTime: exactly 6 digits, UTC
        assert MICROTIME_RE.match(stored["spec"][k]) and stored["spec"][k].endswith("Z")

    p = probe(*kc, "lease-create", "kube-system", "kha-test", "master-2", "15")
    assert p.returncode == EXIT_IOERR                 # -EEXIST
    assert "409 AlreadyExists" in p.stderr

    got = lease(probe(*kc, "lease-get", "kube-system", "kha-test"))
    assert got == created

    updated = lease(probe(*kc, "lease-update", "kube-system", "kha-test", "master-1", "20",
                          got["resourceVersion"], "1"))
    assert updated["resourceVersion"] != got["resourceVersion"]
    assert updated["leaseDurationSeconds"] == 20 and updated["leaseTransitions"] == 1
    assert api.get_lease("kube-system", "kha-test")["spec"]["leaseTransitions"] == 1

    # a stale version: someone else wrote in between
    p = probe(*kc, "lease-update", "kube-system", "kha-test", "master-2", "15",
              got["resourceVersion"])
    assert p.returncode == EXIT_UNAVAILABLE          # -EAGAIN
    assert "409 Conflict" in p.stderr and "the object has been modified" in p.stderr
    assert api.get_lease("kube-system", "kha-test")["spec"]["holderIdentity"] == "master-1"


def test_lease_written_by_another_client_decodes(api, kubeconfig):
    # stand-in: a Lease stored with exact field encodings chosen by the test
    api.put_lease("kube-system", "kube-scheduler", {
        "holderIdentity": "master-3_1f6e2a0c-5b1d-4c7e-8a31-0e9f4d2b7c55",
        "leaseDurationSeconds": 15, "acquireTime": "2024-05-01T10:00:00.000000Z",
        "renewTime": "2024-05-01T10:05:02.123456Z", "leaseTransitions": 7})
    got = lease(probe("--kubeconfig", kubeconfig, "lease-get", "kube-system", "kube-scheduler"))
    assert got["holderIdentity"].startswith("master-3_")
    assert got["renewTime"] == "2024-05-01T10:05:02.123456Z"
    assert got["leaseTransitions"] == 7


def test_lease_names_are_checked_before_sending(api, kubeconfig):
    # stand-in: proves nothing was sent, from the server's request log
    p = probe("--kubeconfig", kubeconfig, "lease-get", "kube-system", "Bad/Name")
    assert p.returncode == EXIT_USAGE and "bad name" in p.stderr
    assert api.requests == []


def test_generic_requests_patch_and_delete(api, kubeconfig):
    # stand-in: the request log shows the method, content type and body that arrived
    kc = ("--kubeconfig", kubeconfig)
    lease(probe(*kc, "lease-create", "default", "patched", "a", "10"))
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/patched"
    p = probe(*kc, "request", "PATCH", path, '{"spec": {"holderIdentity": "b"}}')
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == 200 and out["body"]["spec"]["holderIdentity"] == "b"
    assert out["body"]["spec"]["leaseDurationSeconds"] == 10       # merged, not replaced
    p = probe(*kc, "request", "DELETE", path)
    assert p.returncode == 0 and json.loads(p.stdout)["body"]["status"] == "Success"
    assert api.get_lease("default", "patched") is None
    p = probe(*kc, "request", "DELETE", path)
    assert p.returncode == EXIT_CONFIG and "404 NotFound" in p.stderr
    p = probe(*kc, "request", "GET", "/api/v1/nothing-here")
    assert p.returncode == EXIT_CONFIG
    assert "404 NotFound: the server could not find the requested resource" in p.stderr
