# SPDX-License-Identifier: MIT
"""A real Kubernetes control plane for the tests: `kha lab up --kubernetes`.

Three masters (etcd 3.6, kube-apiserver, kube-controller-manager, kube-scheduler, kha elect
with the backups), a node with the node-local kha proxy and two load-balancer hosts with kha
proxy + kha vip, each host a network namespace (docs/lab.md). The programs are the pinned
builds of scripts/k8s.sh, found through KHA_K8S_BIN (make test sets it). One lab serves every
test of a pytest session that asks for it: the tests that use it are in the xdist group "k8s",
so they run on one worker, one after the other, against the same control plane.

Everything a test sends to the lab goes from inside a lab host: `K8sLab.exec(host, ...)` runs
a command there through `kha lab exec` (KUBECONFIG set to that host's entry).
"""
import base64
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import assert_no_sanitizer_report, kha_bin, run_kha
from kha_testlib.lab import lab_cleanup, proc_alive

# Worker nodes registered through the API (no kubelet runs in the lab): the real scheduler
# places Pods on them.
WORKERS = ("worker-1", "worker-2", "worker-3")
UP_TIMEOUT = 240  # seconds: three apiservers start on two shared cores (sanitized kha too)


def k8s_bin():
    path = os.environ.get("KHA_K8S_BIN")
    if not path:
        pytest.fail("KHA_K8S_BIN is not set: 'make test' builds the real Kubernetes programs "
                    "with scripts/k8s.sh and sets it (run the suite through make test)")
    for prog in ("kube-apiserver", "kubectl", "kubeadm", "etcd"):
        if not os.access(os.path.join(path, prog), os.X_OK):
            pytest.fail(f"KHA_K8S_BIN={path} has no {prog}")
    return path


def wait_until(cond, timeout, what, interval=0.2):
    """Polls cond() until it returns a true value (returned) or fails the test at timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class K8sLab:
    def __init__(self, path):
        self.dir = str(path)
        with open(os.path.join(self.dir, "lab.json")) as f:
            self.state = json.load(f)
        k = self.state["kubernetes"]
        self.vip = k["vip"]
        self.masters = [m["name"] for m in self.state["masters"]]
        self.address = {m["name"]: m["address"] for m in self.state["masters"]}
        self.address["node"] = self.state["node"]["address"]
        for lb in k["lbs"]:
            self.address[lb["name"]] = lb["address"]
        # kubeadm's PKI: one directory per master, the same CA in each
        self.ca, self.ca_key = (os.path.join(self.dir, "m1", "pki", f"ca.{x}")
                                for x in ("crt", "key"))

    def kubeconfig(self, entry):
        """The admin kubeconfig of an entry: "node" (its kha proxy), "vip", "m1"..."""
        return os.path.join(self.dir, "kubeconfig", f"{entry}.conf")

    def url(self, host):
        """The apiserver URL of a master ("m1"), or the VIP's ("vip")."""
        return f"https://{self.vip if host == 'vip' else self.address[host]}:6443"

    def kha(self, *args, host="node", timeout=120, check=False):
        """kha run inside a lab host (by its own path: the lab's PATH starts with the
        Kubernetes programs)."""
        return self.exec(host, kha_bin(), *args, timeout=timeout, check=check)

    @contextlib.contextmanager
    def namespace(self, prefix):
        """A namespace of the test's own (a unique name), deleted afterwards with all it
        holds (the namespace controller finishes that in the background)."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        try:
            yield name
        finally:
            # the namespace first (no new pod can be made in it then), then its pods with
            # --force: no kubelet confirms a bound pod's end, so they (and the namespace)
            # would stay terminating for ever
            self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found",
                         check=False)
            self.kubectl("delete", "pods", "-n", name, "--all", "--force", "--grace-period=0",
                         check=False)

    def service_account_token(self, namespace, name, duration="1h"):
        """A ServiceAccount (created when missing) and a token of it from the real
        TokenRequest API (kubectl create token)."""
        if self.kubectl("get", "serviceaccount", "-n", namespace, name,
                        check=False).returncode != 0:
            self.kubectl("create", "serviceaccount", "-n", namespace, name)
        return self.kubectl("create", "token", "-n", namespace, name,
                            f"--duration={duration}").stdout.strip()

    def wait_masters_listed(self, timeout=60):
        """Waits until default/kubernetes lists every master (an apiserver another test
        restarted re-registers within its lease reconcile interval)."""
        want = sorted(self.address[m] for m in self.masters)

        def listed():
            slices = self.kubectl_json("get", "endpointslices", "-n", "default", "-l",
                                       "kubernetes.io/service-name=kubernetes")["items"]
            got = sorted(a for s in slices for e in s.get("endpoints") or []
                         for a in e["addresses"])
            return got == want
        wait_until(listed, timeout, "default/kubernetes to list every master")

    def exec(self, host, *argv, timeout=60, check=True, input=None):
        """Runs argv inside host ("node", "lb1", "m1"...) with KUBECONFIG for its entry."""
        p = subprocess.run([kha_bin(), "lab", "exec", "--dir", self.dir, host, "--",
                            *map(str, argv)], capture_output=True, text=True,
                           timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        assert_no_sanitizer_report(p.stderr, f"kha lab exec {host}")
        if check:
            assert p.returncode == 0, (f"{host}: {' '.join(map(str, argv))} exited "
                                       f"{p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def kubectl(self, *args, host="node", **kw):
        return self.exec(host, "kubectl", "--request-timeout=20s", *args, **kw)

    def kubectl_json(self, *args, host="node"):
        return json.loads(self.kubectl(*args, "-o", "json", host=host).stdout)

    def register_workers(self):
        """Node objects, Ready, as a kubelet would have registered them."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for name in WORKERS:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                          "kubernetes.io/os": "linux"}}}
            if self.kubectl("get", "node", name, check=False).returncode != 0:
                self.kubectl("create", "-f", "-", input=json.dumps(node))
            status = {"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "registered by the kha lab (no kubelet)",
                                "lastHeartbeatTime": now, "lastTransitionTime": now}],
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}
            self.kubectl("patch", "node", name, "--subresource=status", "--type=merge",
                         "-p", json.dumps(status))

        def schedulable():
            # the masters' Nodes (the lab registers them with their static pods) keep
            # kubeadm's control-plane NoSchedule taint: only the workers are waited for
            nodes = [n for n in self.kubectl_json("get", "nodes")["items"]
                     if n["metadata"]["name"] in WORKERS]
            return all(not n["spec"].get("taints") for n in nodes) and len(nodes) == len(
                WORKERS)
        # the node lifecycle controller lifts the not-ready taint admission put on them
        wait_until(schedulable, 60, "the workers to lose their not-ready taint")

    def run_scheduled_pods(self, namespace, selector):
        """What the workers' kubelets would do, for the pods the real scheduler bound to them:
        report them Running and Ready (nothing runs: there is no kubelet), so that Deployment
        roll-outs progress. Returns the live pods (not being deleted)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        pods = self.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        for p in live:
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in p["status"].get("conditions", []))
            if p["spec"].get("nodeName") and not ready:
                status = {"status": {"phase": "Running", "startTime": now, "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": now}
                    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}}
                self.kubectl("patch", "pod", "-n", namespace, p["metadata"]["name"],
                             "--subresource=status", "--type=merge", "-p", json.dumps(status),
                             check=False)
        return live

    def stop_kha_daemons(self):
        """SIGTERM every kha daemon of the lab (proxies, vips, elects), wait for each to exit,
        and check its exit and its log for sanitizer reports, before 'lab down' deletes the
        logs."""
        procs = []
        hosts = self.state["masters"] + [self.state["node"]] + self.state["kubernetes"]["lbs"]
        for h in hosts:
            for p in h["processes"]:
                if p["kind"] in ("proxy", "vip", "elect") and p["pid"]:
                    procs.append(p)
        for p in procs:
            if proc_alive(p["pid"], p["start_time"]):
                os.kill(p["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in procs:
            while proc_alive(p["pid"], p["start_time"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not proc_alive(p["pid"], p["start_time"]), f"{p['log']} did not stop"
            with open(p["log"], errors="replace") as f:
                assert_no_sanitizer_report(f.read(), p["log"])


def write_kubeconfig(path, server, ca=None, auth="none", token=None, cert=None, key=None,
                     inline=False, relative=False, tls_server_name=None, insecure=False,
                     context="kha-test", namespace=None, extra_user=None):
    """Writes a kubeconfig; returns its path.

    auth: "token" (token inline), "tokenFile" (token in a file next to it), "cert" (cert and
    key files) or "none". inline: the CA and client certificate as *-data fields (base64)
    instead of paths. relative: paths relative to the kubeconfig's directory (the files are
    copied next to it). insecure: insecure-skip-tls-verify instead of ca.
    """
    path = str(path)
    kdir = os.path.dirname(os.path.abspath(path))
    os.makedirs(kdir, exist_ok=True)

    def ref(src, field):
        if inline:
            with open(src, "rb") as f:
                return f"    {field}-data: {base64.b64encode(f.read()).decode()}\n"
        if relative:
            dst = os.path.join(kdir, "files", os.path.basename(src))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src, "rb") as fi, open(dst, "wb") as fo:
                fo.write(fi.read())
            return f"    {field}: files/{os.path.basename(src)}\n"
        return f"    {field}: {src}\n"

    cluster = f"    server: {server}\n"
    if insecure:
        cluster += "    insecure-skip-tls-verify: true\n"
    elif ca:
        cluster += ref(ca, "certificate-authority")
    if tls_server_name:
        cluster += f"    tls-server-name: {tls_server_name}\n"
    user = ""
    if auth == "token":
        user = f"    token: {token}\n"
    elif auth == "tokenFile":
        tf = os.path.join(kdir, "token")
        with open(tf, "w", encoding="ascii") as f:
            f.write(token + "\n")
        user = "    tokenFile: token\n" if relative else f"    tokenFile: {tf}\n"
    elif auth == "cert":
        user = ref(cert, "client-certificate") + ref(key, "client-key")
    user += extra_user or ""
    ctx_ns = f"    namespace: {namespace}\n" if namespace else ""
    text = ("apiVersion: v1\nkind: Config\n"
            f"current-context: {context}\n"
            "clusters:\n- name: kha-test-cluster\n  cluster:\n" + cluster +
            "contexts:\n"
            f"- name: {context}\n  context:\n    cluster: kha-test-cluster\n"
            "    user: kha-test-user\n" + ctx_ns +
            "users:\n- name: kha-test-user\n  user:\n" + (user or "    {}\n"))
    with open(path, "w", encoding="ascii") as f:
        f.write(text)
    return path


def start_lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("k8s") / "lab"
    r = run_kha("lab", "up", "--kubernetes", "--k8s-bin", k8s_bin(), "--dir", path,
                "--timeout", f"{UP_TIMEOUT}s", timeout=UP_TIMEOUT + 60)
    if r.returncode != 0:
        lab_cleanup(str(path))
        pytest.fail(f"kha lab up --kubernetes exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    lab = K8sLab(path)
    try:
        lab.register_workers()
    except BaseException:
        lab_cleanup(str(path))
        raise
    return lab


def stop_lab(lab):
    try:
        lab.stop_kha_daemons()
    finally:
        lab_cleanup(lab.dir)
