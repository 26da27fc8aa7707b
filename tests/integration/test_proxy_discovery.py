# SPDX-License-Identifier: MIT
"""kha proxy with Kubernetes discovery (lib/kube). Against the real control plane of the shared
lab (conftest's k8s): the discovered masters replace the seed, and the last set survives a
restart through the state file while the API cannot be reached. Against the stand-in API
server: an empty set falls back to the seeds, and established connections survive every
change."""
import json

import pytest
import yaml

from conftest import kha_bin
from kha_testlib.backends import Backend, ProxyProc, Stream, make_pki, wait_for
from kha_testlib.k8s import wait_until, write_kubeconfig
from kha_testlib.kubeapi import KubeAPI, TestPKI
from kha_testlib.process import stop_all


class LabProxy(ProxyProc):
    """A kha proxy of the test inside a lab host: its listener and admin address are on that
    host's loopback, so its status is read from there too."""

    def __init__(self, k8s, host, args, workdir):
        super().__init__(kha_bin(), args, workdir)
        self.k8s, self.host = k8s, host
        self.args = [kha_bin(), "lab", "exec", "--dir", k8s.dir, host, "--", *self.args]

    def try_status(self):
        r = self.k8s.kha("proxy", "status", "--metrics-addr", self.metrics, "-o", "json",
                         host=self.host, timeout=30)
        return json.loads(r.stdout) if r.returncode == 0 else None


@pytest.mark.xdist_group("k8s")
def test_discovery_state_file_on_the_real_api(k8s, tmp_path):
    """Seeded with the VIP only, a kha proxy in the node host discovers the masters from the
    real default/kubernetes and keeps them in its state file; restarted while the API cannot
    be reached (its kubeconfig names an address where nothing listens), it starts on the
    state file's set at once and says that discovery fails."""
    k8s.wait_masters_listed()
    masters = {f"{k8s.address[m]}:6443" for m in k8s.masters}
    seed = f"{k8s.vip}:6443"
    state = tmp_path / "state.yaml"
    common = ["--backend", seed, "--state-file", state, "--check-cacert", k8s.ca,
              "--check-interval", "500ms"]
    procs = []
    try:
        p = LabProxy(k8s, "node", [*common, "--kubeconfig", k8s.kubeconfig("node")], tmp_path)
        procs.append(p)
        p.start(timeout=60)

        def discovered(proxy):
            st = proxy.try_status()
            return st and {b["address"]: b["source"] for b in st["backends"]
                           if not b["removed"]}
        wait_until(lambda: discovered(p) == {a: "discovered" for a in masters}, 60,
                   "the discovered masters replacing the seed")
        assert p.stop() == 0
        kept = yaml.safe_load(state.read_text())
        assert {b["address"] for b in kept} == masters, kept
        # port 1 of the node host's loopback: nothing listens there
        down = write_kubeconfig(tmp_path / "down.conf", "https://127.0.0.1:1", ca=k8s.ca,
                                auth="token", token="x")
        p2 = LabProxy(k8s, "node", [*common, "--kubeconfig", down], tmp_path)
        procs.append(p2)
        p2.start(timeout=60)
        assert discovered(p2) == {a: "discovered" for a in masters}      # at once
        wait_until(lambda: "discovery failed" in p2.read_err(), 30, "the failure logged")
        assert discovered(p2) == {a: "discovered" for a in masters}
    finally:
        stop_all(procs)


@pytest.fixture
def env(tmp_path):
    pki = make_pki(tmp_path / "bpki")
    bs = [Backend("tls", f"b{i}", pki) for i in range(3)]
    api = KubeAPI(TestPKI(tmp_path / "kpki"))
    procs = []
    try:
        for b in bs:
            b.start()
        api.start()
        yield pki, bs, api, procs
    finally:
        # stop everything before asserting: a failed assertion must not leave servers running
        try:
            stop_all(procs)
        finally:
            api.stop()
            for b in bs:
                b.close()


def live(p):
    return {b["address"]: b["source"] for b in p.status()["backends"] if not b["removed"]}


def test_discovery_seed_fallback_and_streams_survive(env, tmp_path):
    # stand-in: default/kubernetes emptied, slice by slice, of test TLS backends on loopback (the real reconciler lists only live apiservers, and none only when all are down)
    pki, (seed, a, b), api, procs = env
    # one slice per backend: each has its own port on 127.0.0.1
    api.set_slice("kubernetes-a", ["127.0.0.1"], port=a.port)
    api.set_slice("kubernetes-b", ["127.0.0.1"], port=b.port)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", auth="token")
    args = ["--backend", seed.addr, "--kubeconfig", kubeconfig, "--state-file",
            str(tmp_path / "state.yaml"), "--check-cacert", pki["ca"], "--check-interval",
            "300ms"]
    p = ProxyProc(kha_bin(), args, tmp_path)
    procs.append(p)
    p.start()
    wait_for(lambda: live(p) == {a.addr: "discovered", b.addr: "discovered"}, 15,
             "the discovered set replacing the seed")
    s = Stream(p.port, pki["ca"])
    assert s.backend in ("b1", "b2")
    # a change: b leaves; the stream on a or b goes on either way
    api.delete_slice("kubernetes-b")
    wait_for(lambda: live(p) == {a.addr: "discovered"}, 15, "b removed")
    assert s.read_lines(3)
    # nothing discovered: the seed, never zero backends
    api.delete_slice("kubernetes-a")
    wait_for(lambda: live(p) == {seed.addr: "seed"}, 15, "back to the seed")
    s.close()
    assert p.stop() == 0


def test_bad_kubeconfig_is_a_clear_error(tmp_path):
    from conftest import run_kha
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: 7\n")
    r = run_kha("proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1",
                "--metrics-addr", "off", "--kubeconfig", str(bad))
    assert r.returncode == 65, r.stderr  # a kubeconfig that does not parse (docs/proxy.md)
    assert r.stderr.startswith("kha proxy: --kubeconfig") and r.stderr.count("\n") == 1
