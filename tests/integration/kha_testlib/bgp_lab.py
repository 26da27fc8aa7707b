# SPDX-License-Identifier: MIT
"""A routed network in namespaces for kha bgp tests and benches: one router, three masters, a client.

Topology, all inside namespaces this module creates (nothing in the root namespace):

    <p>-r    the router: bridge br0 = 10.<n>.<m>.1/24 towards the masters, eth1 = 10.<n>.<m+1>.1/24
             towards the client, IPv4 forwarding with L4 ECMP hashing; runs BIRD 2, FRR or GoBGP
    <p>-m1.. masters, eth0 = 10.<n>.<m>.1x/24 on br0, default route via the router, an HTTPS
             server (kha_testlib.backends) on :8443 answering /version with its name, a plain HTTP
             health file server on 127.0.0.1:18080 (GET /ok is 200 while the file exists), and
             whatever speaker the test starts (kha bgp, or gobgpd for the reference)
    <p>-c    a client, eth0 = 10.<n>.<m+1>.2/24, default route via the router

The service address is 10.<n>.200.<m> (/32), announced by the masters, never configured on the
router. Names are unique per lab (pid + counter), so parallel test workers never collide.
pin_flows() makes the router keep flow state (conntrack + policy routing, see its text); by
default it hashes every packet statelessly (`merge paths`, L4 hash).
BgpLab.close() kills what it started and deletes every namespace, also after a failure.
"""
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from kha_testlib.backends import make_pki, wait_for  # noqa: F401 (tests use wait_for)
from kha_testlib.netns import NetnsLab, sh  # noqa: F401 (tests use sh)

_counter = itertools.count()
BACKENDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "backends.py")

# A client that opens a new TLS connection per request and reports each one as a JSON line:
# {"t": seconds since start, "at": its CLOCK_MONOTONIC start (the same clock as the test's
# time.monotonic()), "d": seconds it took, "ok": bool, "name": master or "", "err": text}.
LOAD = textwrap.dedent("""
    import json, socket, ssl, sys, time, signal
    vip, ca, duration, count, gap = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    ctx = ssl.create_default_context(cafile=ca); ctx.check_hostname = False
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    t0 = time.monotonic(); n = 0
    while not stop and (count == 0 or n < count) and (duration == 0 or time.monotonic() - t0 < duration):
        at = time.monotonic(); t = at - t0; n += 1
        try:
            with socket.create_connection((vip, 8443), timeout=2) as s:
                s.settimeout(2)
                with ctx.wrap_socket(s) as c:
                    c.sendall(b"GET /version HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
                    data = b""
                    while True:
                        b = c.recv(4096)
                        if not b: break
                        data += b
            name = json.loads(data.split(b"\\r\\n\\r\\n", 1)[1])["name"]
            print(json.dumps({"t": t, "at": at, "d": time.monotonic() - at, "ok": True,
                              "name": name, "err": ""}), flush=True)
        except Exception as e:
            print(json.dumps({"t": t, "at": at, "d": time.monotonic() - at, "ok": False,
                              "name": "", "err": repr(e)}), flush=True)
        if gap: time.sleep(gap)
""")

# A client on persistent (keep-alive) connections, as kubectl and the kubelet are: first one
# connection per master named in argv[3] (comma-separated; it reconnects until the router's hash
# lands each where wanted), then requests round-robin over them, one at a time. A response with
# "Connection: close" closes that connection; its next request opens a new one, wherever the
# router sends it. One JSON line per request: {"at": CLOCK_MONOTONIC start, "d": seconds,
# "ok", "name", "err", "slot": which connection, "conn": serial of the TCP connection,
# "fresh": opened for this request, "close": the response said Connection: close}.
# The setup ends with the line {"ready": [master of each slot]}.
LOAD_KEEPALIVE = textwrap.dedent("""
    import http.client, json, ssl, sys, time, signal
    vip, ca, want = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    ctx = ssl.create_default_context(cafile=ca); ctx.check_hostname = False
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    serial = [0]
    def request(c):
        fresh = c.sock is None
        if fresh:
            serial[0] += 1; c.serial = serial[0]
        r = {"at": time.monotonic(), "fresh": fresh, "conn": c.serial}
        try:
            c.request("GET", "/version")
            resp = c.getresponse()
            body = resp.read()
            r.update(ok=True, name=json.loads(body)["name"], err="",
                     close=(resp.getheader("Connection") or "").lower() == "close")
        except Exception as e:
            c.close()
            r.update(ok=False, name="", err=repr(e), close=True)
        r["d"] = time.monotonic() - r["at"]
        return r
    slots = []
    for w in want:
        for _ in range(100):
            c = http.client.HTTPSConnection(vip, 8443, context=ctx, timeout=2)
            r = request(c)
            if r["ok"] and r["name"] == w and not r["close"]:
                break
            c.close()
        slots.append((c, r["name"]))
    print(json.dumps({"ready": [n for _, n in slots]}), flush=True)
    i = 0
    while not stop:
        c = slots[i % len(slots)][0]
        r = request(c)
        r["slot"] = i % len(slots)
        print(json.dumps(r), flush=True)
        i += 1
""")

# One long response (GET /watch: a line every 50 ms, forever) on a connection to the master
# named in argv[3]: it reconnects until the router's hash lands it there, prints
# {"ready": master}, then {"at": CLOCK_MONOTONIC, "line": n} per line read, and at the end of the
# stream or an error {"at", "err"}. SIGTERM: it closes the connection and exits.
STREAM = textwrap.dedent("""
    import json, socket, ssl, sys, time, signal
    vip, ca, want = sys.argv[1], sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca); ctx.check_hostname = False
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    name = ""
    for _ in range(100):
        c = None
        try:
            c = ctx.wrap_socket(socket.create_connection((vip, 8443), timeout=2))
            c.settimeout(2)
            c.sendall(b"GET /watch HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            f = c.makefile("rb")
            line = f.readline()
            while line and not line.startswith(b"event "):
                line = f.readline()
            name = line.split()[2].decode() if line else ""
        except Exception:
            name = ""
        if name == want:
            break
        if c:
            c.close()
    print(json.dumps({"ready": name}), flush=True)
    n = 0
    try:
        while True:
            if not f.readline():
                print(json.dumps({"at": time.monotonic(), "err": "end of stream"}), flush=True)
                break
            n += 1
            print(json.dumps({"at": time.monotonic(), "line": n}), flush=True)
    except Exception as e:
        print(json.dumps({"at": time.monotonic(), "err": repr(e)}), flush=True)
""")


class BgpLab(NetnsLab):
    ROUTER_AS = 65000
    MASTER_AS = 65001

    def __init__(self, masters=3, tmpdir=None):
        super().__init__()
        n = next(_counter)
        pid = os.getpid()
        self.prefix = f"kb{pid % 100000}x{n}"
        a = 100 + (pid + n) % 150
        b = (n * 2) % 200
        self.net = f"10.{a}.{b}"
        self.cnet = f"10.{a}.{b + 1}"
        self.vip = f"10.{a}.200.{1 + n % 250}"
        self.router = f"{self.prefix}-r"
        self.client = f"{self.prefix}-c"
        self.masters = [f"{self.prefix}-m{i + 1}" for i in range(masters)]
        self.addr = {m: f"{self.net}.{11 + i}" for i, m in enumerate(self.masters)}
        self.addr[self.router] = f"{self.net}.1"
        self.addr[self.client] = f"{self.cnet}.2"
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="kha-bgp-")
        self._dirs = []
        try:
            self.pki = make_pki(os.path.join(self.tmpdir, "pki"))
            self._build()
        except BaseException:
            self.close()
            raise

    # -- building ----------------------------------------------------------------------------
    def _build(self):
        r = self.router
        self.ns(r)
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # L4 hashing: new connections from one client spread over the paths
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
        sh("ip", "-n", r, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", r, "addr", "add", f"{self.net}.1/24", "dev", "br0")
        sh("ip", "-n", r, "link", "set", "br0", "up")
        for i, m in enumerate(self.masters):
            self.ns(m)
            port = f"p{i}"
            sh("ip", "-n", r, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", m)
            sh("ip", "-n", r, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", m, "addr", "add", f"{self.addr[m]}/24", "dev", "eth0")
            sh("ip", "-n", m, "link", "set", "eth0", "up")
            sh("ip", "-n", m, "route", "add", "default", "via", f"{self.net}.1")
            self.spawn(m, f"https-{m}", [sys.executable, BACKENDS, "tls", "--host", "0.0.0.0",
                                         "--port", 8443, "--cert", self.pki["cert"], "--key",
                                         self.pki["key"], "--name", m])
            health = os.path.join(self.tmpdir, f"health-{m}")
            os.makedirs(health, exist_ok=True)
            self.set_healthy(m, True)
            self.spawn(m, f"health-{m}", [sys.executable, "-m", "http.server", "18080", "--bind",
                                          "127.0.0.1", "--directory", health])
        c = self.client
        self.ns(c)
        sh("ip", "-n", r, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0",
           "netns", c)
        sh("ip", "-n", r, "addr", "add", f"{self.cnet}.1/24", "dev", "eth1")
        sh("ip", "-n", r, "link", "set", "eth1", "up")
        sh("ip", "-n", c, "addr", "add", f"{self.cnet}.2/24", "dev", "eth0")
        sh("ip", "-n", c, "link", "set", "eth0", "up")
        sh("ip", "-n", c, "route", "add", "default", "via", f"{self.cnet}.1")
        for m in self.masters:
            wait_for(lambda m=m: self._listening(m, 8443) and self._listening(m, 18080), 20,
                     f"servers of {m}")

    def _listening(self, ns, port):
        out = sh("ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}", check=False)
        return bool(out.stdout.strip())

    def set_healthy(self, master, ok):
        """The master's health file: GET http://127.0.0.1:18080/ok is 200 while it exists."""
        path = os.path.join(self.tmpdir, f"health-{master}", "ok")
        if ok:
            with open(path, "w") as f:
                f.write("ok\n")
        elif os.path.exists(path):
            os.unlink(path)

    def port_of(self, master):
        return f"p{self.masters.index(master)}"

    # -- processes ---------------------------------------------------------------------------
    def kha_bgp(self, kha, master, *extra, bfd=True, tag=""):
        """Starts kha bgp on a master, peering with the router."""
        args = [kha, "bgp", "--router-id", self.addr[master], "--local-as", self.MASTER_AS,
                "--peer", self.addr[self.router], "--peer-as", self.ROUTER_AS,
                "--announce", f"{self.vip}/32", "--connect-retry", "1s",
                "--track-url", "http://127.0.0.1:18080/ok", "--track-interval", "100ms",
                "--track-fall", "1", "--track-rise", "1", "--log-level", "debug"]
        if bfd:
            args += ["--bfd", "--bfd-interval", "100ms", "--bfd-multiplier", "3"]
        return self.spawn(master, f"kha-bgp-{master}{tag}", [*args, *map(str, extra)])

    # -- the router --------------------------------------------------------------------------
    def bird_config(self, bfd=True, hold=9, gshut=True, neighbor_extra=""):
        """neighbor_extra: more BIRD options for every session ('password "x";')."""
        nbrs = "\n".join(
            f"protocol bgp {m.replace('-', '_')} from masters {{ neighbor {self.addr[m]} "
            f"as {self.MASTER_AS}; {neighbor_extra} }}" for m in self.masters)
        imp = ("if (65535, 0) ~ bgp_community then bgp_local_pref = 0; accept;" if gshut
               else "accept;")
        bfd_proto = textwrap.dedent("""
            protocol bfd {
                interface "br0" { min rx interval 100 ms; min tx interval 100 ms;
                                  idle tx interval 300 ms; multiplier 3; };
            }
        """) if bfd else ""
        return textwrap.dedent(f"""
            router id {self.net}.1;
            protocol device {{ scan time 1; }}
            protocol kernel {{
                ipv4 {{ import none; export all; }};
                merge paths yes limit 16;
            }}
        """) + bfd_proto + textwrap.dedent(f"""
            template bgp masters {{
                local {self.net}.1 as {self.ROUTER_AS};
                ipv4 {{ import filter {{ {imp} }}; export none; }};
                hold time {hold};
                keepalive time {max(1, hold // 3)};
                connect retry time 1;
                connect delay time 1;
                error wait time 1, 5;
                {"bfd on;" if bfd else ""}
            }}
        """) + nbrs + "\n"

    def start_bird(self, **kw):
        conf = os.path.join(self.tmpdir, "bird.conf")
        with open(conf, "w") as f:
            f.write(self.bird_config(**kw))
        self.bird_sock = os.path.join(self.tmpdir, "bird.ctl")
        return self.spawn(self.router, "bird", ["bird", "-f", "-c", conf, "-s", self.bird_sock])

    def birdc(self, *cmd):
        r = sh("ip", "netns", "exec", self.router, "birdc", "-s", self.bird_sock, *cmd,
               check=False)
        return r.stdout

    def start_frr(self, bfd=True, hold=9):
        """FRR as the router: zebra (ECMP into the kernel), bgpd with maximum-paths, bfdd."""
        # FRR drops to its own user (the vty group is compiled in): a directory it can use,
        # outside the test's private temporary directory
        d = tempfile.mkdtemp(prefix="kha-frr-")
        self._dirs.append(d)
        self.frr_dir = d
        nbrs = []
        for m in self.masters:
            a = self.addr[m]
            nbrs += [f" neighbor {a} remote-as {self.MASTER_AS}",
                     f" neighbor {a} timers connect 1"]
            if bfd:
                nbrs.append(f" neighbor {a} bfd profile fast")
        conf = {
            "zebra.conf": "hostname r\n",
            "bfdd.conf": textwrap.dedent("""
                hostname r
                bfd
                 profile fast
                  receive-interval 100
                  transmit-interval 100
                  detect-multiplier 3
                 !
                !
            """),
            "bgpd.conf": textwrap.dedent(f"""
                hostname r
                router bgp {self.ROUTER_AS}
                 bgp router-id {self.net}.1
                 no bgp ebgp-requires-policy
                 timers bgp {max(1, hold // 3)} {hold}
            """) + "\n".join(nbrs) + textwrap.dedent("""
                 address-family ipv4 unicast
                  maximum-paths 16
                 exit-address-family
                !
            """),
        }
        for name, text in conf.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        for x in [d, *(os.path.join(d, n) for n in conf)]:
            shutil.chown(x, "frr", "frr")
        common = ["--vty_socket", d, "-P", "0", "--log", f"file:{d}/frr.log"]
        zsock = os.path.join(d, "zserv.api")
        procs = [self.spawn(self.router, "zebra", ["/usr/lib/frr/zebra", "-f",
                                                   os.path.join(d, "zebra.conf"), "-i",
                                                   os.path.join(d, "zebra.pid"), "-z", zsock,
                                                   *common])]
        wait_for(lambda: os.path.exists(zsock), 20, "zebra's socket")
        if bfd:
            procs.append(self.spawn(self.router, "bfdd", [
                "/usr/lib/frr/bfdd", "-f", os.path.join(d, "bfdd.conf"), "-i",
                os.path.join(d, "bfdd.pid"), "-z", zsock, "--bfdctl",
                os.path.join(d, "bfdd.sock"), *common]))
        procs.append(self.spawn(self.router, "bgpd", [
            "/usr/lib/frr/bgpd", "-f", os.path.join(d, "bgpd.conf"), "-i",
            os.path.join(d, "bgpd.pid"), "-z", zsock, *common]))
        return procs

    def vtysh(self, cmd):
        r = sh("ip", "netns", "exec", self.router, "vtysh", "--vty_socket", self.frr_dir, "-c",
               cmd, check=False)
        return r.stdout

    def start_gobgp_router(self, ipv6=False, hold=9):
        """GoBGP as the router (it installs nothing into the kernel: read its RIB)."""
        lines = [f"[global.config]\n  as = {self.ROUTER_AS}\n  router-id = \"{self.net}.1\"\n"]
        for m in self.masters:
            lines.append(textwrap.dedent(f"""
                [[neighbors]]
                  [neighbors.config]
                    neighbor-address = "{self.addr[m]}"
                    peer-as = {self.MASTER_AS}
                  [neighbors.timers.config]
                    connect-retry = 1
                    hold-time = {hold}
                    keepalive-interval = {max(1, hold // 3)}
                  [[neighbors.afi-safis]]
                    [neighbors.afi-safis.config]
                      afi-safi-name = "ipv4-unicast"
            """))
            if ipv6:
                lines.append(textwrap.dedent("""
                  [[neighbors.afi-safis]]
                    [neighbors.afi-safis.config]
                      afi-safi-name = "ipv6-unicast"
                """))
        conf = os.path.join(self.tmpdir, "gobgpd.toml")
        with open(conf, "w") as f:
            f.write("".join(lines))
        return self.spawn(self.router, "gobgpd", ["gobgpd", "-f", conf, "-t", "toml",
                                                  "--api-hosts", "127.0.0.1:50051"])

    def gobgp(self, *args):
        r = sh("ip", "netns", "exec", self.router, "gobgp", "-u", "127.0.0.1", "-p", "50051",
               *args, check=False)
        return r.stdout

    # -- flow pinning on the router ------------------------------------------------------------
    def pin_flows(self):
        """Makes the router keep each connection on the master it started on (docs/bgp.md,
        "Flow pinning"). The first packet of a connection is routed by the ECMP route as
        usual; in postrouting the next hop the kernel chose is mapped to a mark (master i:
        i + 1) and saved in the connection's conntrack entry (and counted: new_connections()).
        Every later packet of that connection gets the mark back in prerouting, before the
        routing decision, and `ip rule fwmark i+1` sends it to table 100+i+1, which routes the
        service address via that one master, whatever the ECMP set is now. The masters' replies
        (to the client) match no rule and are routed by the main table."""
        rules, pre = [], f"ip daddr {self.vip} ct mark != 0 meta mark set ct mark"
        for i, m in enumerate(self.masters):
            mark = i + 1
            rules.append(f"ip daddr {self.vip} ct mark 0 rt ip nexthop {self.addr[m]} "
                         f"counter name new{mark} ct mark set {mark}")
            sh("ip", "-n", self.router, "route", "add", f"{self.vip}/32", "via", self.addr[m],
               "dev", "br0", "table", 100 + mark)
            sh("ip", "-n", self.router, "rule", "add", "fwmark", mark, "lookup", 100 + mark)
        counters = "".join(f"counter new{i + 1} {{}}\n" for i in range(len(self.masters)))
        ruleset = (f"table ip kha_pin {{\n{counters}"
                   "chain prerouting {\ntype filter hook prerouting priority mangle; "
                   f"policy accept;\n{pre}\n}}\n"
                   "chain postrouting {\ntype filter hook postrouting priority mangle; "
                   "policy accept;\n" + "\n".join(rules) + "\n}\n}\n")
        sh("ip", "netns", "exec", self.router, "nft", "-f", "-", input=ruleset)

    def new_connections(self):
        """Connections the pinning router has sent to each master (its first packets)."""
        r = sh("ip", "netns", "exec", self.router, "nft", "-j", "list", "counters", "table",
               "ip", "kha_pin")
        got = {}
        for item in json.loads(r.stdout)["nftables"]:
            c = item.get("counter")
            if c and c["name"].startswith("new"):
                got[self.masters[int(c["name"][3:]) - 1]] = c["packets"]
        return got

    # -- observation -------------------------------------------------------------------------
    def tcp_md5_failures(self, ns):
        """The kernel's count of TCP segments in namespace ns dropped for a wrong MD5
        signature (TcpExt TCPMD5Failure: a signature was there, made with another key)."""
        r = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat")
        lines = [x.split() for x in r.stdout.splitlines() if x.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1]))["TCPMD5Failure"])

    def server_post(self, master, path):
        """POST to a master's HTTPS server from inside its namespace (its admin endpoints,
        kha_testlib.backends)."""
        code = textwrap.dedent(f"""
            import ssl, urllib.request
            ctx = ssl.create_default_context(cafile="{self.pki['ca']}")
            urllib.request.urlopen(urllib.request.Request(
                "https://127.0.0.1:8443{path}", data=b"", method="POST"),
                context=ctx, timeout=5).read()
        """)
        sh("ip", "netns", "exec", master, sys.executable, "-c", code)

    def paths(self):
        """The next hops of the service address in the router's kernel table (a set)."""
        r = sh("ip", "-n", self.router, "-4", "route", "show", f"{self.vip}/32", check=False)
        hops = set()
        for line in r.stdout.splitlines():
            words = line.split()
            if "via" in words:
                hops.add(words[words.index("via") + 1])
        return hops

    def masters_of(self, hops):
        by_addr = {self.addr[m]: m for m in self.masters}
        return {by_addr[h] for h in hops if h in by_addr}

    def load(self, duration=0, count=0, gap=0.0):
        """Runs the client once (blocking) and returns its results."""
        r = sh("ip", "netns", "exec", self.client, sys.executable, "-c", LOAD, self.vip,
               self.pki["ca"], duration, count, gap, check=False,
               timeout=max(60, duration + count * 3 + 30))
        return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]

    def start_load(self, gap=0.0, keepalive=None):
        """The client in the background: stop_load() ends it and returns its results.
        keepalive: the masters to hold one persistent connection to each (LOAD_KEEPALIVE)
        instead of a new connection per request."""
        out = os.path.join(self.tmpdir, f"load-{time.monotonic_ns()}.jsonl")
        f = open(out, "w")
        args = ([LOAD_KEEPALIVE, self.vip, self.pki["ca"], ",".join(keepalive)] if keepalive
                else [LOAD, self.vip, self.pki["ca"], 0, 0, gap])
        p = self.spawn(self.client, "load", [sys.executable, "-c", *args], stdout=f)
        f.close()
        p.out = out
        p.t0 = time.monotonic()
        return p

    def start_stream(self, master):
        """A long response from master (STREAM) in the background; its lines with
        load_results(), stop_load() ends it."""
        out = os.path.join(self.tmpdir, f"stream-{time.monotonic_ns()}.jsonl")
        with open(out, "w") as f:
            p = self.spawn(self.client, "stream", [sys.executable, "-c", STREAM, self.vip,
                                                   self.pki["ca"], master], stdout=f)
        p.out = out
        return p

    def stop_load(self, p):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return self.load_results(p)

    def load_results(self, p):
        """The background client's results so far (complete lines only; the keep-alive
        client's setup line is in p.ready once seen)."""
        with open(p.out) as f:
            lines = [json.loads(x) for x in f if x.startswith("{") and x.endswith("\n")]
        for x in lines:
            if "ready" in x:
                p.ready = x["ready"]
        return [x for x in lines if "ready" not in x]

    def link(self, master, up):
        """Cuts (or restores) a master's cable: its bridge port goes down."""
        sh("ip", "-n", self.router, "link", "set", self.port_of(master), "up" if up else "down")

    def ns_http(self, ns, url):
        code = textwrap.dedent(f"""
            import urllib.request, sys
            try:
                sys.stdout.write(urllib.request.urlopen("{url}", timeout=2).read().decode())
            except Exception as e:
                sys.stdout.write("ERR " + str(e)); sys.exit(1)
        """)
        r = sh("ip", "netns", "exec", ns, sys.executable, "-c", code, check=False)
        return r.stdout if r.returncode == 0 else None

    def status(self, master):
        body = self.ns_http(master, "http://127.0.0.1:9445/status")
        return json.loads(body) if body else None

    # -- teardown ----------------------------------------------------------------------------
    def close(self):
        super().close()
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._dirs = []
