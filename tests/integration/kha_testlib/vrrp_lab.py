# SPDX-License-Identifier: MIT
"""A small L2 segment in network namespaces, for kha vip (and keepalived) tests and benches.

Topology, all inside namespaces this module creates (nothing in the root namespace):

    <p>-br   namespace holding bridge br0
    <p>-h1.. hosts, each with eth0 = 10.<n>.0.1x/24 on the bridge, a TCP server on :8080 that
             answers its own name, and whatever VRRP daemon the test starts
    <p>-c    a client, eth0 = 10.<n>.0.50/24

The prefix <p> is unique per lab (pid + counter), so parallel pytest-xdist workers never
collide. VrrpLab.close() kills what it started and deletes every namespace, also after a
failure; use it as a context manager.
"""
import itertools
import os
import sys
import tempfile
import textwrap

from kha_testlib.process import wait_for  # noqa: F401 (tests and bench-vip use it)
from kha_testlib.netns import NetnsLab, sh  # noqa: F401 (tests use sh)

_counter = itertools.count()

SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8080)); s.listen(64)
    while True:
        c, _ = s.accept()
        try: c.sendall(sys.argv[1].encode())
        finally: c.close()
""")

CLIENT = textwrap.dedent("""
    import socket, sys
    try:
        c = socket.create_connection((sys.argv[1], 8080), timeout=float(sys.argv[2]))
        c.settimeout(float(sys.argv[2])); print(c.recv(64).decode())
    except OSError as e:
        print("ERR", e); sys.exit(1)
""")


class VrrpLab(NetnsLab):
    def __init__(self, hosts=2, tmpdir=None):
        super().__init__()
        n = next(_counter)
        self.prefix = f"kv{os.getpid() % 100000}x{n}"
        # a /24 of its own per lab (routing never leaves the namespaces, but logs stay readable)
        self.net = f"10.{100 + (os.getpid() + n) % 150}.{n % 250}"
        self.vip = f"{self.net}.100"
        self.br = f"{self.prefix}-br"
        self.client = f"{self.prefix}-c"
        self.hosts = [f"{self.prefix}-h{i + 1}" for i in range(hosts)]
        self.addr = {h: f"{self.net}.{11 + i}" for i, h in enumerate(self.hosts)}
        self.addr[self.client] = f"{self.net}.50"
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="kha-vip-")
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- building ----------------------------------------------------------------------------
    def _build(self):
        self.ns(self.br)
        sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.br, "link", "set", "br0", "up")
        for i, h in enumerate(self.hosts + [self.client]):
            self.ns(h)
            port = f"p{i}"
            # created inside the bridge namespace, its peer straight into the host's
            sh("ip", "-n", self.br, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", h)
            sh("ip", "-n", self.br, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", h, "addr", "add", f"{self.addr[h]}/24", "dev", "eth0")
            sh("ip", "-n", h, "link", "set", "eth0", "up")
            if h != self.client:
                self.spawn(h, f"server-{h}", [sys.executable, "-c", SERVER, h])

    def port_of(self, host):
        return f"p{(self.hosts + [self.client]).index(host)}"

    # -- observation -------------------------------------------------------------------------
    def holders(self):
        """The hosts whose eth0 carries the VIP now."""
        out = []
        for h in self.hosts:
            r = sh("ip", "-n", h, "-4", "-o", "addr", "show", "dev", "eth0", check=False)
            if f" {self.vip}/" in r.stdout:
                out.append(h)
        return out

    def vip_label(self, host):
        r = sh("ip", "-n", host, "-4", "-o", "addr", "show", "dev", "eth0")
        for line in r.stdout.splitlines():
            if f" {self.vip}/" in line:
                words = line.split("\\")[0].split()
                return words[-1] if words[-1].startswith("eth0") else ""
        return None

    def reach(self, timeout=1.0):
        """Connects from the client to VIP:8080; returns the answering host's name or None."""
        r = sh("ip", "netns", "exec", self.client, sys.executable, "-c", CLIENT, self.vip, timeout,
               check=False, timeout=timeout + 10)
        out = r.stdout.strip()
        return out if r.returncode == 0 and out in self.hosts else None

    def link(self, host, up):
        """Cuts (or restores) a host's cable: its bridge port goes down."""
        sh("ip", "-n", self.br, "link", "set", self.port_of(host), "up" if up else "down")
