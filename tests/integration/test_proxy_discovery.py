# SPDX-License-Identifier: MIT
"""kha proxy with Kubernetes discovery (lib/kube) against the stand-in API server: discovered
backends replace the seeds, the last set survives a restart through the state file, an empty
set falls back to the seeds, and established connections survive every change."""
import os

import pytest

from conftest import kha_bin
from kha_testlib.backends import Backend, ProxyProc, Stream, make_pki, wait_for
from kha_testlib.process import stop_all
from kha_testlib.kubeapi import KubeAPI, TestPKI


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


def test_discovery_state_file_and_seed_fallback(env, tmp_path):
    # stand-in: default/kubernetes pointing at test TLS backends on loopback ports (the real reconciler lists only apiservers and refuses loopback)
    pki, (seed, a, b), api, procs = env
    # one slice per backend: each has its own port on 127.0.0.1
    api.set_slice("kubernetes-a", ["127.0.0.1"], port=a.port)
    api.set_slice("kubernetes-b", ["127.0.0.1"], port=b.port)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", auth="token")
    state = str(tmp_path / "state.yaml")
    args = ["--backend", seed.addr, "--kubeconfig", kubeconfig, "--state-file", state,
            "--check-cacert", pki["ca"], "--check-interval", "300ms"]
    p = ProxyProc(kha_bin(), args, tmp_path)
    procs.append(p)
    p.start()
    wait_for(lambda: live(p) == {a.addr: "discovered", b.addr: "discovered"}, 15,
             "the discovered set replacing the seed")
    assert os.path.exists(state)
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
    # restart with the API down: the state file (last non-empty set) is used at once
    api.stop()
    p2 = ProxyProc(kha_bin(), args, tmp_path)
    procs.append(p2)
    p2.start()
    assert live(p2) == {a.addr: "discovered"}
    wait_for(lambda: "discovery failed" in p2.read_err(), 15, "the failure logged")
    assert live(p2) == {a.addr: "discovered"}


def test_bad_kubeconfig_is_a_clear_error(tmp_path):
    from conftest import run_kha
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: 7\n")
    r = run_kha("proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1",
                "--metrics-addr", "off", "--kubeconfig", str(bad))
    assert r.returncode == 65, r.stderr  # a kubeconfig that does not parse (docs/proxy.md)
    assert r.stderr.startswith("kha proxy: --kubeconfig") and r.stderr.count("\n") == 1
