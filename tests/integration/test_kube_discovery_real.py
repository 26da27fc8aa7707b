# SPDX-License-Identifier: MIT
"""lib/kube's EndpointSlice discovery against the real kube-apiserver of the lab (conftest's k8s):
kube-probe runs inside the node host and follows the slices of a service of its own, written
with kubectl (the real API validates them, versions them and streams them through its watch
cache). What the real server cannot be made to do on demand (a watch ERROR 410, a bookmark at a
chosen moment, a 503, a server that stops between two requests) stays in test_kube.py against
the stand-in.
"""
import json

import pytest

from conftest import kha_bin
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
    started = []

    def start(svc, *args):
        d = Discovery("discover", "--namespace", NS, "--service", svc, *args,
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
