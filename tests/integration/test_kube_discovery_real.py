# SPDX-License-Identifier: MIT
"""lib/kube's EndpointSlice discovery against the real kube-apiserver of the lab (conftest's k8s):
kube-probe runs inside the node host and follows the slices of a service of its own, written
with kubectl (the real API validates them, versions them and streams them through its watch
cache), and through a real apiserver restart (a real 410 Gone on the resumed watch). What the
real server cannot be made to do on demand (a watch ERROR 410 or a bookmark at a chosen moment,
a 503, a server that stops between two requests) stays in test_kube.py against the stand-in.
"""
import json

import pytest

from conftest import kha_bin, run_kha
from kha_testlib.k8s import wait_until
from kha_testlib.kubeprobe import Discovery

pytestmark = [pytest.mark.xdist_group("k8s")]
NS = "kha-discovery"


@pytest.fixture
def slices(k8s, request):
    """Writes EndpointSlices of service `svc` (unique to the test) in namespace NS; the test's
    slices are deleted afterwards."""
    k8s.kubectl("create", "namespace", NS, check=False)
    svc = "s-" + request.node.name.replace("_", "-")[5:40].strip("-")
    written = set()

    def put(name, endpoints, service=None, ports=None, address_type="IPv4"):
        eps = [e if isinstance(e, dict) else {"addresses": [e]} for e in endpoints]
        obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": f"{svc}-{name}", "namespace": NS,
                            "labels": {"kubernetes.io/service-name": service or svc,
                                       "endpointslice.kubernetes.io/managed-by": "kha-tests"}},
               "addressType": address_type, "endpoints": eps,
               "ports": ports or [{"name": "https", "port": 6443, "protocol": "TCP"}]}
        k8s.kubectl("apply", "-f", "-", input=json.dumps(obj))
        written.add(f"{svc}-{name}")

    def delete(name):
        k8s.kubectl("delete", "endpointslice", "-n", NS, f"{svc}-{name}")
        written.discard(f"{svc}-{name}")

    put.delete = delete
    put.svc = svc
    yield put
    for name in written:
        k8s.kubectl("delete", "endpointslice", "-n", NS, name, "--ignore-not-found")


@pytest.fixture
def discover(k8s):
    """Starts kube-probe discover inside the node host (service svc of NS; None: the default,
    default/kubernetes), with client the options before the command (--kubeconfig...)."""
    started = []

    def start(svc, *args, client=()):
        where = ("--namespace", NS, "--service", svc) if svc else ()
        d = Discovery(*client, "discover", *where, *args,
                      prefix=[kha_bin(), "lab", "exec", "--dir", k8s.dir, "node", "--"])
        started.append(d)
        return d
    yield start
    for d in started:
        d.kill()


def test_discovery_follows_live_changes_and_merges_slices(slices, discover):
    slices("a", ["10.0.0.2", "10.0.0.1"])
    slices("other", ["10.9.9.9"], service=slices.svc + "-other")    # another service: not ours
    d = discover(slices.svc, "--watch-timeout", "30")
    first = d.wait_set(["10.0.0.1:6443", "10.0.0.2:6443"], timeout=30)
    assert first["slices"] == 1 and not first["empty"]
    assert int(first["resourceVersion"]) > 0
    slices("a", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    d.wait_set(["10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"], timeout=30)
    slices("b", ["10.0.0.4", "10.0.0.3"])                             # a second slice: merged
    merged = d.wait_set(["10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443", "10.0.0.4:6443"],
                        timeout=30)
    assert merged["slices"] == 2
    slices("a", ["10.0.0.1"])
    d.wait_set(["10.0.0.1:6443", "10.0.0.3:6443", "10.0.0.4:6443"], timeout=30)
    slices.delete("b")                                                # its contribution goes
    d.wait_set(["10.0.0.1:6443"], timeout=30)
    slices("other", ["10.9.9.8"], service=slices.svc + "-other")
    slices("a", ["10.0.0.5"])
    d.wait_set(["10.0.0.5:6443"], timeout=30)
    assert all("10.9.9" not in a for s in d.sets() for a in d.addrs(s))
    d.stop()


def test_discovery_conditions_ports_and_ipv6(slices, discover):
    slices("a", [
        {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
        {"addresses": ["10.0.0.2"]},                                   # nil ready: ready
        {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},  # not ready: out
        {"addresses": ["10.0.0.4"], "conditions": {"ready": False, "serving": True,
                                                   "terminating": True}},
    ], ports=[{"name": "metrics", "port": 9090, "protocol": "TCP"},
              {"name": "https", "port": 6443, "protocol": "TCP"}])
    slices("v6", ["fd00::2", "fd00::1"], address_type="IPv6",
           ports=[{"port": 443, "protocol": "TCP"}])                  # the only port
    d = discover(slices.svc)
    s = d.wait_set(["10.0.0.1:6443", "10.0.0.2:6443", "[fd00::1]:443", "[fd00::2]:443"],
                   timeout=30)
    assert not s["serving_fallback"]
    # nothing ready any more: the serving-but-terminating endpoints, flagged
    slices("a", [{"addresses": ["10.0.0.4"], "conditions": {
        "ready": False, "serving": True, "terminating": True}}])
    slices.delete("v6")
    s = d.wait_set(["10.0.0.4:6443"], timeout=30)
    assert s["serving_fallback"] and not s["empty"]
    assert s["endpoints"][0]["terminating"]
    d.stop()


def test_discovery_reports_empty_slice_and_empty_service(slices, discover):
    d = discover(slices.svc)
    s = d.wait_set([], timeout=30)                      # no slice at all: reported, empty
    assert s["empty"] and s["slices"] == 0
    slices("a", ["10.0.0.1"])
    d.wait_set(["10.0.0.1:6443"], timeout=30)
    slices("a", [])                                     # an empty slice: "endpoints": null
    s = wait_until(lambda: d.sets()[-1] if d.sets()[-1]["empty"] else None, 30, "empty set")
    assert s["slices"] == 1 and s["endpoints"] == []
    slices("a", ["10.0.0.2"])
    d.wait_set(["10.0.0.2:6443"], timeout=30)
    d.stop()


def test_discovery_of_the_real_kubernetes_service(k8s, discover):
    """default/kubernetes as the apiservers' endpoint reconciler keeps it: the masters."""
    d = Discovery("endpoints", prefix=[kha_bin(), "lab", "exec", "--dir", k8s.dir, "node",
                                       "--"])
    d.proc.wait(timeout=60)
    d._out.join(5)
    sets = d.sets()
    assert sets, d.stderr
    assert sorted(d.addrs(sets[-1])) == sorted(f"{k8s.address[m]}:6443" for m in k8s.masters)


def test_discovery_through_an_apiserver_restart(k8s, slices, discover):
    """m1's kube-apiserver stops gracefully and starts again (kha lab stop-process /
    start-member). While it is down, discovery pinned to it retries with capped back-off and
    keeps its last set.

    (b) Discovery of default/kubernetes through the node's kha proxy keeps the other masters
    while m1 is gone (the real endpoint reconciler removes a stopping apiserver) and gets m1
    back once it re-registers.

    (a) Discovery pinned to m1 (its kubeconfig names m1) resumes its watch from a version m1
    served before it stopped. A slice changed while m1 is down moves etcd past that version;
    the restarted m1 fills its watch cache from a list at a later version and answers a watch
    from any earlier one with 410 Gone (checked below with kubectl against m1 itself): kha
    relists and delivers the change it missed, without reporting the 410 as an error.
    """
    want = {f"{k8s.address[m]}:6443" for m in k8s.masters}

    def wait_last(d, addrs, timeout):
        wait_until(lambda: d.sets() and set(d.addrs()) == addrs, timeout,
                   f"{sorted(addrs)} (got {[d.addrs(s) for s in d.sets()]})")
    k8s.wait_masters_listed()
    slices("a", ["10.0.0.1"])
    pinned = discover(slices.svc, "--backoff-initial", "100ms", "--backoff-max", "1s",
                      client=("--kubeconfig", k8s.kubeconfig("m1")))
    entry = discover(None, "--backoff-initial", "100ms", "--backoff-max", "1s")
    pinned.wait_set(["10.0.0.1:6443"], timeout=60)
    wait_last(entry, want, 60)
    stopped = False
    try:
        r = run_kha("lab", "stop-process", "--dir", k8s.dir, "m1", "kube-apiserver",
                    timeout=120)
        assert r.returncode == 0, r.stderr
        stopped = True
        wait_last(entry, want - {f"{k8s.address['m1']}:6443"}, 60)
        # written through the node's entry (m2 or m3) while m1 is down
        slices("a", ["10.0.0.2"])
        written = int(k8s.kubectl_json("get", "endpointslice", "-n", NS,
                                       f"{slices.svc}-a")["metadata"]["resourceVersion"])
        # m1 gone: the pinned discovery retries, its back-off capped, its last set standing
        n_sets = len(pinned.sets())
        refused = wait_until(lambda: [e for e in pinned.errors()
                                      if e["errno"] == "ECONNREFUSED"][2:], 60,
                             "the pinned discovery to retry m1 three times")
        assert k8s.address["m1"] in refused[0]["message"], refused
        assert all(e["retry_in_ms"] <= 1000 for e in pinned.errors()), pinned.errors()
        assert len(pinned.sets()) == n_sets
        r = run_kha("lab", "start-member", "--dir", k8s.dir, "m1", "--timeout", "180s",
                    timeout=240)
        assert r.returncode == 0, r.stderr
        stopped = False
        pinned.wait_set(["10.0.0.2:6443"], timeout=180)
        wait_last(entry, want, 180)
    finally:
        if stopped:
            run_kha("lab", "start-member", "--dir", k8s.dir, "m1", "--timeout", "180s",
                    timeout=240)
        k8s.wait_masters_listed(180)
    # m1 answers a watch from the version before the change with 410 Gone: so it did for
    # kha's resumed watch, whose version m1 served before it stopped
    raw = k8s.kubectl("get", "--raw", f"/apis/discovery.k8s.io/v1/namespaces/{NS}/"
                      f"endpointslices?watch=1&resourceVersion={written - 1}&timeoutSeconds=1",
                      host="m1").stdout
    assert '"code":410' in raw and "too old resource version" in raw, raw
    assert not [e for e in pinned.errors() if e["errno"] == "ESTALE"], pinned.errors()
    pinned.stop()
    entry.stop()
