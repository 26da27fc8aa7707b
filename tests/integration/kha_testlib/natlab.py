# SPDX-License-Identifier: MIT
"""kha proxy --mode nat in network namespaces this module creates: VrrpLab's segment (a bridge,
three master namespaces, one more namespace used as the node), a real TLS server
(backends.py) on <master>:6443 in each master, and kha running in the node namespace, where
its local clients run too (the nftables output hook).

The test process talks from inside the node namespace through NetnsPool: threads that entered
the namespace with setns(2) (a network namespace is per thread), so sockets they open live
there. Nothing is sent from the root namespace. NatLab.close() stops everything and deletes
the namespaces, also after a failure.
"""
import concurrent.futures
import ctypes
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

from kha_testlib.backends import make_pki, wait_for
from kha_testlib.vrrp_lab import VrrpLab, sh

CLONE_NEWNET = 0x40000000
ENTRY = "169.254.20.1"
ENTRY_PORT = 443
BACKEND_PORT = 6443
METRICS = "127.0.0.1:9443"
TABLE = "kha-proxy"
_libc = ctypes.CDLL(None, use_errno=True)
BACKENDS_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backends.py")


def enter_netns(name):
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsPool(concurrent.futures.ThreadPoolExecutor):
    """Worker threads inside network namespace `name`."""

    def __init__(self, name, workers=4):
        super().__init__(max_workers=workers, initializer=enter_netns, initargs=(name,))

    def call(self, fn, *args, timeout=60):
        return self.submit(fn, *args).result(timeout=timeout)


class NatLab:
    def __init__(self, tmpdir, kha_bin):
        self.tmpdir, self.kha_bin = str(tmpdir), kha_bin
        self.kha = None
        self.kha_err = None
        self.ns = None
        self.lab = VrrpLab(hosts=3, tmpdir=self.tmpdir)
        try:
            self.node = self.lab.client
            self.hosts = list(self.lab.hosts)
            self.pki = make_pki(os.path.join(self.tmpdir, "pki"),
                                ips=[self.lab.addr[h] for h in self.hosts] + [ENTRY])
            self.ctx = ssl.create_default_context(cafile=self.pki["ca"])
            self.ns = NetnsPool(self.node, workers=6)
            self.procs = {}
            for h in self.hosts:
                self.start_backend(h)
        except BaseException:
            self.close()
            raise

    # -- backends ----------------------------------------------------------------------------
    def addr(self, host):
        return f"{self.lab.addr[host]}:{BACKEND_PORT}"

    def start_backend(self, host):
        self.procs[host] = self.lab.spawn(
            host, f"tls-{host}-{len(self.lab.procs)}",
            [sys.executable, BACKENDS_PY, "tls", "--host", self.lab.addr[host], "--port",
             BACKEND_PORT, "--name", host, "--cert", self.pki["cert"], "--key",
             self.pki["key"]])

        def up():
            try:
                socket.create_connection((self.lab.addr[host], BACKEND_PORT), 0.5).close()
                return True
            except OSError:
                return False
        wait_for(lambda: self.ns.call(up), 15, f"backend {host}")

    def signal_backend(self, host, sig):
        os.kill(self.procs[host].pid, sig)

    def set_ready(self, host, code):
        def post():
            c = http.client.HTTPSConnection(self.lab.addr[host], BACKEND_PORT,
                                            context=self.ctx, timeout=5)
            try:
                c.request("POST", f"/admin/ready?code={code}")
                return c.getresponse().read()
            finally:
                c.close()
        self.ns.call(post)

    def add_pod(self):
        """A pod: a namespace routed through the node (veth, the node forwards); returns a
        NetnsPool inside it."""
        pod = f"{self.lab.prefix}-pod"
        self.lab.ns(pod)  # the lab's close() deletes it with the others
        sh("ip", "-n", self.node, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0",
           "netns", pod)
        sh("ip", "-n", self.node, "addr", "add", "10.244.0.1/24", "dev", "pod0")
        sh("ip", "-n", self.node, "link", "set", "pod0", "up")
        sh("ip", "-n", pod, "addr", "add", "10.244.0.2/24", "dev", "eth0")
        sh("ip", "-n", pod, "link", "set", "eth0", "up")
        sh("ip", "-n", pod, "route", "add", "default", "via", "10.244.0.1")
        sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.pod_ns = NetnsPool(pod, workers=2)
        return self.pod_ns

    # -- kha -----------------------------------------------------------------------------------
    def kha_argv(self, *args):
        return ["ip", "netns", "exec", self.node, self.kha_bin, "proxy", "--mode", "nat",
                "--listen", f"{ENTRY}:{ENTRY_PORT}", "--metrics-addr", METRICS,
                "--check-cacert", self.pki["ca"], *map(str, args)]

    def start_kha(self, *args, wait_backends=None):
        self.kha_errpath = os.path.join(self.tmpdir, f"kha-{time.monotonic_ns()}.err")
        self.kha_err = open(self.kha_errpath, "w")
        self.kha = subprocess.Popen(self.kha_argv(*args), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=self.kha_err)
        wait_for(lambda: self.kha.poll() is not None or self.try_status() is not None, 15,
                 "kha proxy admin endpoint")
        assert self.kha.poll() is None, f"kha exited {self.kha.returncode}: {self.kha_log()}"
        if wait_backends is not None:
            want = sorted(wait_backends)
            wait_for(lambda: sorted(self.table() or []) == want, 15, f"table {want}")
        return self.kha

    def kha_log(self):
        with open(self.kha_errpath) as f:
            return f.read()

    def stop_kha(self, timeout=20):
        if not self.kha:
            return None
        if self.kha.poll() is None:
            self.kha.send_signal(signal.SIGTERM)
            try:
                self.kha.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kha.kill()
                self.kha.wait()
                raise AssertionError("kha proxy did not stop on SIGTERM")
        self.kha_err.close()
        rc, self.kha = self.kha.returncode, None
        return rc

    def kill_kha(self):
        self.kha.kill()
        self.kha.wait()
        self.kha_err.close()
        self.kha = None

    def try_status(self):
        def get():
            try:
                with urllib.request.urlopen(f"http://{METRICS}/status", timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                return None
        return self.ns.call(get)

    def state(self, host):
        for b in (self.try_status() or {}).get("backends", []):
            if b["address"] == self.addr(host) and not b["removed"]:
                return b["state"]
        return None

    def metric(self, name):
        def get():
            with urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=2) as r:
                return r.read().decode()
        for line in self.ns.call(get).splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    # -- what the kernel holds (read with nft: observation only, kha never runs it) -----------
    def ruleset(self):
        r = sh("ip", "netns", "exec", self.node, "nft", "-j", "list", "ruleset")
        return json.loads(r.stdout)["nftables"]

    def table(self):
        """The backends of kha's DNAT map ("ip:port", one per slot), or None without table."""
        items = self.ruleset()
        if not any("table" in i and i["table"]["name"] == TABLE for i in items):
            return None
        out = []
        for i in items:
            m = i.get("map")
            if m and m["table"] == TABLE and m["name"] == "backends":
                for _, val in m.get("elem", []):
                    ip, port = val["concat"]
                    out.append(f"{ip}:{port}")
        return out

    def entry_addresses(self):
        r = sh("ip", "-n", self.node, "-4", "-o", "addr", "show")
        return [line for line in r.stdout.splitlines() if f" {ENTRY}/32 " in line]

    # -- clients in the node namespace ------------------------------------------------------
    def connect(self, timeout=5):
        return http.client.HTTPSConnection(ENTRY, ENTRY_PORT, context=self.ctx,
                                           timeout=timeout)

    def request_new(self, timeout=5):
        """GET /version on a new connection; returns the answering backend's name."""
        def go():
            c = self.connect(timeout)
            try:
                c.request("GET", "/version")
                return json.loads(c.getresponse().read())["name"]
            finally:
                c.close()
        return self.ns.call(go)

    def close(self):
        if self.kha and self.kha.poll() is None:
            self.kha.kill()
            self.kha.wait()
        if self.kha_err:
            self.kha_err.close()
        for pool in (self.ns, getattr(self, "pod_ns", None)):
            if pool:
                pool.shutdown(wait=False, cancel_futures=True)
        for p in getattr(self, "procs", {}).values():
            try:
                os.kill(p.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.lab.close()


class Probe:
    """Threads in the node namespace opening a new TLS connection per request to the entry,
    recording (start, ok, name or error)."""

    def __init__(self, lab, threads=2, timeout=3):
        self.lab, self.timeout = lab, timeout
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.futures = [lab.ns.submit(self._run) for _ in range(threads)]

    def _run(self):
        while not self.stopping.is_set():
            t = time.monotonic()
            c = self.lab.connect(self.timeout)
            try:
                c.request("GET", "/version")
                r = (t, True, json.loads(c.getresponse().read())["name"])
            except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
                r = (t, False, f"{type(e).__name__}: {e}")
            finally:
                c.close()
            with self.lock:
                self.results.append(r)

    def stop(self):
        self.stopping.set()
        for f in self.futures:
            f.result(timeout=30)
        return self.results

    def failures(self):
        with self.lock:
            return [r for r in self.results if not r[1]]

    def count(self):
        with self.lock:
            return len(self.results)
