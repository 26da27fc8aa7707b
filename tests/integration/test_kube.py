# SPDX-License-Identifier: MIT
"""lib/kube end to end through kube-probe (a tests-only driver of the library).

Kubeconfig variants, authentication (ServiceAccount tokens, client certificates, 401 and 403),
TLS verification and the Lease codec run against the real kube-apiserver of the shared lab
(conftest's k8s). Watch faults the real server cannot be made to produce on demand (an ERROR
410 or a bookmark at a chosen moment, 503s, an API that goes away and comes back within
seconds) run against the stand-in API server (kha_testlib/kubeapi.py), each test saying why;
discovery of live changes, a real 410 and a real apiserver restart are in
test_kube_discovery_real.py."""
import json

import pytest
import yaml

from conftest import free_port
from kha_testlib.k8s import write_kubeconfig
from kha_testlib.kubeapi import MICROTIME_RE, KubeAPI, TestPKI, wait_until
from kha_testlib.kubeprobe import Discovery, clean_env, probe, probe_bin
from kha_testlib.pki import issue_cert, make_ca
from kha_testlib.process import stop_all

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
    # stand-in: the request log shows the relist after the 410 is a consistent one (the real 410, after an apiserver restart, is in test_kube_discovery_real.py)
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
    # stand-in: the server's count of open watches shows the watch is open when the stop comes
    api.set_slice("kubernetes", ["10.0.0.1"])
    d = discovery("--kubeconfig", kubeconfig, "discover", "--watch-timeout", "600")
    d.wait_set(["10.0.0.1:6443"])
    wait_until(lambda: api.active_watches == 1, 10, "the watch")
    d.stop(timeout=5)          # far less than the watch's 600 s


def test_stop_is_prompt_during_backoff(tmp_path, discovery):
    # nothing listens at the kubeconfig's server: an API down at start
    d = discovery("--kubeconfig", offline_kubeconfig(tmp_path), "discover",
                  "--backoff-initial", "60s", "--backoff-max", "60s")
    wait_until(lambda: d.errors(), 10, "the first failure")
    d.stop(timeout=5)          # asleep for ~30-60 s otherwise


# -- kubeconfig, authentication, TLS: the real kube-apiserver --------------------------------
# kube-probe runs inside the lab's node host against the shared control plane (conftest's k8s):
# kubeadm's CA, a ServiceAccount token from the TokenRequest API, client certificates signed by
# the lab's CA, the real authenticators and RBAC authorizer. Who authenticated is asked of the
# server itself (a SelfSubjectReview).

K8S = pytest.mark.xdist_group("k8s")
NODE_URL = "https://127.0.0.1:7443"     # the node's kha proxy, in front of every apiserver
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def lab_probe(k8s, *args, env=None, timeout=60):
    """kube-probe inside the node host, with exactly the Kubernetes environment given."""
    pre = ["env", "-u", "KUBECONFIG", "-u", "KUBERNETES_SERVICE_HOST", "-u",
           "KUBERNETES_SERVICE_PORT", *(f"{k}={v}" for k, v in (env or {}).items())]
    return k8s.exec("node", *pre, probe_bin(), *map(str, args), check=False, timeout=timeout)


def whoami(k8s, *args, env=None):
    """The user the server authenticated, as it says itself."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    p = lab_probe(k8s, *args, "request", "POST",
                  "/apis/authentication.k8s.io/v1/selfsubjectreviews", json.dumps(review),
                  env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["body"]["status"]["userInfo"]["username"]


class LabAuth:
    """Credentials of the test on the lab: a ServiceAccount token and a client certificate
    (user kha-probe-user), both allowed to read the EndpointSlices of namespace default by a
    Role; a client certificate of a user nothing allows (kha-nobody)."""


@pytest.fixture(scope="module")
def lab_auth(k8s, tmp_path_factory):
    d = tmp_path_factory.mktemp("lab-auth")
    a = LabAuth()
    with k8s.namespace("kha-probe") as ns:
        a.ns, a.sa_user = ns, f"system:serviceaccount:{ns}:kha-probe"
        a.token = k8s.service_account_token(ns, "kha-probe")
        a.cert, a.key = issue_cert(d, "client", k8s.ca, k8s.ca_key, server=False, sans=(),
                                   cn="kha-probe-user")
        a.nobody_cert, a.nobody_key = issue_cert(d, "nobody", k8s.ca, k8s.ca_key,
                                                 server=False, sans=(), cn="kha-nobody")
        k8s.kubectl("create", "role", "-n", "default", ns, "--verb=get,list,watch",
                    "--resource=endpointslices.discovery.k8s.io")
        try:
            k8s.kubectl("create", "rolebinding", "-n", "default", ns, f"--role={ns}",
                        f"--serviceaccount={ns}:kha-probe", "--user=kha-probe-user")
            yield a
        finally:
            k8s.kubectl("delete", "rolebinding,role", "-n", "default", ns,
                        "--ignore-not-found", check=False)


def lab_kubeconfig(k8s, a, path, auth, server=NODE_URL, **kw):
    return write_kubeconfig(path, server, ca=k8s.ca, auth=auth, token=a.token, cert=a.cert,
                            key=a.key, **kw)


def masters_listed(k8s, p):
    assert p.returncode == 0, p.stderr
    got = {e["addr"] for e in json.loads(p.stdout)["endpoints"]}
    assert got and got <= {f"{k8s.address[m]}:6443" for m in k8s.masters}, got


@K8S
@pytest.mark.parametrize("auth,inline,relative", [
    ("token", False, False),
    ("tokenFile", False, True),
    ("cert", False, False),
    ("cert", True, False),
    ("cert", False, True),
])
def test_kubeconfig_variants_authenticate(k8s, lab_auth, tmp_path, auth, inline, relative):
    kc = lab_kubeconfig(k8s, lab_auth, tmp_path / "sub" / "kubeconfig", auth, inline=inline,
                        relative=relative)
    masters_listed(k8s, lab_probe(k8s, "--kubeconfig", kc, "endpoints"))
    user = whoami(k8s, "--kubeconfig", kc)
    assert user == ("kha-probe-user" if auth == "cert" else lab_auth.sa_user)


@K8S
def test_kubeconfig_from_env_first_file_only(k8s, lab_auth, tmp_path):
    good = lab_kubeconfig(k8s, lab_auth, tmp_path / "good", "token")
    p = lab_probe(k8s, "endpoints", env={"KUBECONFIG": f"{good}:{tmp_path}/does-not-exist"})
    masters_listed(k8s, p)
    p = lab_probe(k8s, "endpoints", env={"KUBECONFIG": f"{tmp_path}/does-not-exist:{good}"})
    assert p.returncode == EXIT_CONFIG
    assert "does-not-exist ($KUBECONFIG)" in p.stderr


@K8S
def test_in_cluster_service_account(k8s, lab_auth, tmp_path):
    """A pod's view: the token, CA and namespace files, and the service's address in the
    environment (here a master's apiserver)."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(lab_auth.token)
    (sa / "ca.crt").write_bytes(open(k8s.ca, "rb").read())
    (sa / "namespace").write_text(lab_auth.ns)
    env = {"KUBERNETES_SERVICE_HOST": k8s.address["m1"], "KUBERNETES_SERVICE_PORT": "6443"}
    p = lab_probe(k8s, "--serviceaccount-dir", sa, "config", env=env)
    cfg = json.loads(p.stdout)
    assert cfg["source"] == "in-cluster" and cfg["namespace"] == lab_auth.ns
    assert cfg["auth"] == "token-file"
    masters_listed(k8s, lab_probe(k8s, "--serviceaccount-dir", sa, "endpoints", env=env))
    assert whoami(k8s, "--serviceaccount-dir", sa, env=env) == lab_auth.sa_user
    # not in a pod, no kubeconfig: a clear error
    p = probe("--serviceaccount-dir", sa, "endpoints", env=clean_env())
    assert p.returncode == EXIT_CONFIG
    assert "KUBERNETES_SERVICE_HOST" in p.stderr and "--kubeconfig" in p.stderr


@K8S
def test_wrong_token_is_unauthorized(k8s, lab_auth, tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", NODE_URL, ca=k8s.ca, auth="token",
                          token="not-the-token")
    p = lab_probe(k8s, "--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG
    assert "401 Unauthorized" in p.stderr
    assert f"kube {NODE_URL}: GET {SLICES}" in p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr


@K8S
def test_user_without_permission_is_forbidden(k8s, lab_auth, tmp_path):
    kc = write_kubeconfig(tmp_path / "kc", NODE_URL, ca=k8s.ca, auth="cert",
                          cert=lab_auth.nobody_cert, key=lab_auth.nobody_key)
    p = lab_probe(k8s, "--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG
    assert "403 Forbidden" in p.stderr and 'User "kha-nobody" cannot list' in p.stderr
    assert f"kube {NODE_URL}: GET {SLICES}" in p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr


@K8S
def test_wrong_ca_is_a_clear_tls_error(k8s, lab_auth, tmp_path):
    other, _ = make_ca(tmp_path / "other-pki", "some-other-ca")
    for inline in (False, True):       # inline data the same: only that CA, not the system's
        kc = write_kubeconfig(tmp_path / f"kc-{inline}", NODE_URL, ca=other, auth="token",
                              token=lab_auth.token, inline=inline)
        p = lab_probe(k8s, "--kubeconfig", kc, "endpoints")
        assert p.returncode == EXIT_CONFIG, p.stderr
        assert "TLS handshake failed" in p.stderr
        assert "certificate" in p.stderr and "certificate-authority" in p.stderr


@K8S
def test_insecure_skip_tls_verify(k8s, lab_auth, tmp_path):
    # not verified at all: even a name the certificate does not carry is accepted
    kc = write_kubeconfig(tmp_path / "kc", "https://wrong.kha.test:6443", insecure=True,
                          auth="token", token=lab_auth.token)
    p = lab_probe(k8s, "--kubeconfig", kc, "--server", k8s.url("m1"), "endpoints")
    masters_listed(k8s, p)
    # ... but never together with a CA, as kubectl refuses it too
    kc = lab_kubeconfig(k8s, lab_auth, tmp_path / "kc2", "token")
    text = open(kc).read().replace("    server:", "    insecure-skip-tls-verify: true\n"
                                   "    server:")
    open(kc, "w").write(text)
    p = lab_probe(k8s, "--kubeconfig", kc, "endpoints")
    assert p.returncode != 0 and "insecure-skip-tls-verify together" in p.stderr, p.stderr


@K8S
def test_tls_server_name_is_verified(k8s, lab_auth, tmp_path):
    """kubeadm's apiserver certificate names kubernetes, not wrong.kha.test."""
    kc = lab_kubeconfig(k8s, lab_auth, tmp_path / "kc", "token", tls_server_name="kubernetes")
    masters_listed(k8s, lab_probe(k8s, "--kubeconfig", kc, "endpoints"))
    kc = lab_kubeconfig(k8s, lab_auth, tmp_path / "kc2", "token",
                        tls_server_name="wrong.kha.test")
    p = lab_probe(k8s, "--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_CONFIG
    assert "TLS handshake failed" in p.stderr and "wrong.kha.test" in p.stderr


@K8S
def test_server_override_keeps_credentials_and_verifies_original_name(k8s, lab_auth,
                                                                       tmp_path):
    """As the proxy does: connect through another address (m1's apiserver), verify the
    kubeconfig's name, authenticate with its credentials."""
    # (never resolved: the connection goes to --server; no DNS query leaves the machine)
    kc = lab_kubeconfig(k8s, lab_auth, tmp_path / "kc", "cert",
                        server=f"https://kubernetes.default.svc:{free_port()}")
    assert whoami(k8s, "--kubeconfig", kc, "--server", k8s.url("m1")) == "kha-probe-user"
    # the certificate does not name wrong.kha.test: refused even though m1's address is named
    kc = lab_kubeconfig(k8s, lab_auth, tmp_path / "kc2", "token",
                        server="https://wrong.kha.test:6443")
    p = lab_probe(k8s, "--kubeconfig", kc, "--server", k8s.url("m1"), "endpoints")
    assert p.returncode == EXIT_CONFIG and "TLS handshake failed" in p.stderr
    # ... unless told which name to verify
    assert whoami(k8s, "--kubeconfig", kc, "--server", k8s.url("m1"), "--tls-server-name",
                  "kubernetes") == lab_auth.sa_user


def offline_kubeconfig(tmp_path, auth="token"):
    """A kubeconfig for a server that is not there (what is under test fails before any
    request, or is the failure to connect)."""
    ca, _ = make_ca(tmp_path / "ca", "kha-test-ca")
    cert, key = issue_cert(tmp_path / "ca", "client", ca, _, server=False, sans=())
    return write_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{free_port()}", ca=ca,
                            auth=auth, token="t", cert=cert, key=key)


def test_kubeconfig_errors_name_the_field(tmp_path):
    kc = offline_kubeconfig(tmp_path, auth="cert")
    text = open(kc).read().replace("client-key:", "client-kee:")
    open(kc, "w").write(text)
    p = probe("--kubeconfig", kc, "endpoints")
    assert p.returncode == EXIT_USAGE
    assert f"kubeconfig {kc}: users[\"kha-test-user\"].user: client-certificate without " \
        "client-key" in p.stderr
    p = probe("--kubeconfig", kc, "--context", "nope", "endpoints")
    assert 'contexts: "nope" not found' in p.stderr


def test_unreachable_server_fails_fast(tmp_path):
    kc = offline_kubeconfig(tmp_path)
    url = yaml.safe_load(open(kc))["clusters"][0]["cluster"]["server"]
    p = probe("--kubeconfig", kc, "--timeout", "2s", "endpoints", timeout=15)
    assert p.returncode == EXIT_UNAVAILABLE
    assert f"kube {url}: GET" in p.stderr and "connection refused" in p.stderr


# -- Leases on the real API ------------------------------------------------------------------

def lease(p):
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def lease_ns(k8s):
    with k8s.namespace("kha-lease") as ns:
        yield ns


@K8S
def test_lease_create_get_update_conflict(k8s, lease_ns):
    """Real optimistic concurrency (409 Conflict on a stale resourceVersion), the real
    AlreadyExists and NotFound Status messages, and MicroTimes the real API validates and
    stores as written."""
    ns = lease_ns
    p = lab_probe(k8s, "--kubeconfig", k8s.kubeconfig("node"), "lease-get", ns, "kha-test")
    assert p.returncode == EXIT_CONFIG
    assert '404 NotFound: leases.coordination.k8s.io "kha-test" not found' in p.stderr

    kc = ("--kubeconfig", k8s.kubeconfig("node"))
    created = lease(lab_probe(k8s, *kc, "lease-create", ns, "kha-test", "master-1", "15"))
    assert created["holderIdentity"] == "master-1" and created["leaseDurationSeconds"] == 15
    assert created["resourceVersion"]
    stored = k8s.kubectl_json("get", "lease", "-n", ns, "kha-test")
    for k in ("acquireTime", "renewTime"):        # MicroTime: exactly 6 digits, UTC
        assert MICROTIME_RE.match(stored["spec"][k]) and stored["spec"][k].endswith("Z")
        assert stored["spec"][k] == created[k]

    p = lab_probe(k8s, *kc, "lease-create", ns, "kha-test", "master-2", "15")
    assert p.returncode == EXIT_IOERR                 # -EEXIST
    assert '409 AlreadyExists: leases.coordination.k8s.io "kha-test" already exists' in p.stderr

    got = lease(lab_probe(k8s, *kc, "lease-get", ns, "kha-test"))
    assert got == created

    updated = lease(lab_probe(k8s, *kc, "lease-update", ns, "kha-test", "master-1", "20",
                              got["resourceVersion"], "1"))
    assert updated["resourceVersion"] != got["resourceVersion"]
    assert updated["leaseDurationSeconds"] == 20 and updated["leaseTransitions"] == 1
    assert k8s.kubectl_json("get", "lease", "-n", ns, "kha-test")["spec"][
        "leaseTransitions"] == 1

    # a stale version: someone else wrote in between
    p = lab_probe(k8s, *kc, "lease-update", ns, "kha-test", "master-2", "15",
                  got["resourceVersion"])
    assert p.returncode == EXIT_UNAVAILABLE          # -EAGAIN
    assert "409 Conflict" in p.stderr and "the object has been modified" in p.stderr
    assert k8s.kubectl_json("get", "lease", "-n", ns, "kha-test")["spec"][
        "holderIdentity"] == "master-1"


@K8S
def test_lease_written_by_another_client_decodes(k8s, lease_ns):
    obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "kube-scheduler", "namespace": lease_ns},
           "spec": {"holderIdentity": "master-3_1f6e2a0c-5b1d-4c7e-8a31-0e9f4d2b7c55",
                    "leaseDurationSeconds": 15, "acquireTime": "2024-05-01T10:00:00.000000Z",
                    "renewTime": "2024-05-01T10:05:02.123456Z", "leaseTransitions": 7}}
    k8s.kubectl("create", "-f", "-", input=json.dumps(obj))
    got = lease(lab_probe(k8s, "--kubeconfig", k8s.kubeconfig("node"), "lease-get", lease_ns,
                          "kube-scheduler"))
    assert got["holderIdentity"].startswith("master-3_")
    assert got["acquireTime"] == "2024-05-01T10:00:00.000000Z"
    assert got["renewTime"] == "2024-05-01T10:05:02.123456Z"
    assert got["leaseTransitions"] == 7


def test_lease_names_are_checked_before_sending(tmp_path):
    # nothing listens at the kubeconfig's server: a request sent would fail to connect (69)
    p = probe("--kubeconfig", offline_kubeconfig(tmp_path), "lease-get", "kube-system",
              "Bad/Name")
    assert p.returncode == EXIT_USAGE and "bad name" in p.stderr


@K8S
def test_generic_requests_patch_and_delete(k8s, lease_ns):
    kc = ("--kubeconfig", k8s.kubeconfig("node"))
    lease(lab_probe(k8s, *kc, "lease-create", lease_ns, "patched", "a", "10"))
    path = f"/apis/coordination.k8s.io/v1/namespaces/{lease_ns}/leases/patched"
    p = lab_probe(k8s, *kc, "request", "PATCH", path, '{"spec": {"holderIdentity": "b"}}')
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == 200 and out["body"]["spec"]["holderIdentity"] == "b"
    assert out["body"]["spec"]["leaseDurationSeconds"] == 10       # merged, not replaced
    p = lab_probe(k8s, *kc, "request", "DELETE", path)
    assert p.returncode == 0 and json.loads(p.stdout)["body"]["status"] == "Success"
    assert k8s.kubectl("get", "lease", "-n", lease_ns, "patched", check=False).returncode != 0
    p = lab_probe(k8s, *kc, "request", "DELETE", path)
    assert p.returncode == EXIT_CONFIG and "404 NotFound" in p.stderr
    p = lab_probe(k8s, *kc, "request", "GET", "/api/v1/nothing-here")
    assert p.returncode == EXIT_CONFIG
    assert "404 NotFound: the server could not find the requested resource" in p.stderr
