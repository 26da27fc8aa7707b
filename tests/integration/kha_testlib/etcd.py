# SPDX-License-Identifier: MIT
"""Real etcd clusters for integration tests.

Starts N members of /usr/bin/etcd on free 127.0.0.1 ports, with TLS (a throw-away CA made with
the openssl CLI, member certificates carrying both serverAuth and clientAuth, SANs 127.0.0.1 and
localhost, --client-cert-auth so client certificates are exercised) or plain HTTP; waits for
every member to answer through the JSON gateway with a deadline; and always tears down (SIGKILL
of each member's process group, wait, remove the data directories).

Usage::

    from kha_testlib.etcd import EtcdCluster, etcd3, etcd_cluster  # fixtures too

    with EtcdCluster(tmp_path, members=3, tls=True) as c:
        c.endpoints              # "https://127.0.0.1:P1,https://127.0.0.1:P2,..."
        c.endpoint_list          # the same as a list; c.member(i).client_url
        c.client_flags()         # ["--endpoints", ..., "--cacert", ..., "--cert", ..., "--key", ...]
        c.env()                  # the same as ETCDCTL_* variables (plus os.environ)
        c.etcdctl("put", "k", "v")       # CompletedProcess; check=True by default
        c.gateway("/v3/maintenance/status", {}, member=0)   # JSON reply as a dict
        c.kill(1)                # SIGKILL member 1 (names are etcd-0, etcd-1, ...)
        c.stop(1)                # SIGTERM, wait
        c.start(1)               # restart with its data dir, wait until it answers
        c.wait_healthy()         # every running member answers and one leader is agreed

    def test_x(etcd3):           # a started 3-member TLS cluster
        ...
    def test_y(etcd_cluster):    # a factory: etcd_cluster(members=1, tls=False)
        ...

Certificates: c.ca, c.ca_key, c.cert, c.key (client, CN "root"), c.member(i).cert/key;
make_ca(dir, name) builds another CA (for wrong-CA tests), and issue_cert() signs more certs.
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest

from kha_testlib.pki import LOOPBACK_SANS, issue_cert, make_ca  # noqa: F401 (re-exported)
from kha_testlib.process import free_port, wait_for

ETCD = os.environ.get("KHA_ETCD_BIN", "/usr/bin/etcd")
ETCDCTL = os.environ.get("KHA_ETCDCTL_BIN", "/usr/bin/etcdctl")
START_DEADLINE = 30.0


def _free_port():
    """kha_testlib.process.free_port (under the name older tests import)."""
    return free_port()


class Member:
    """One etcd member: its ports, URLs, data dir and process."""

    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.name = f"etcd-{index}"
        self.client_port = _free_port()
        self.peer_port = _free_port()
        scheme = "https" if cluster.tls else "http"
        self.client_url = f"{scheme}://127.0.0.1:{self.client_port}"
        self.peer_url = f"{scheme}://127.0.0.1:{self.peer_port}"
        # also on each loopback alias of the cluster (kha_testlib.partition cuts one of them)
        self.alias_urls = [f"{scheme}://{a}:{self.client_port}" for a in cluster.aliases]
        self.data_dir = os.path.join(cluster.dir, f"{self.name}.data")
        self.log_path = os.path.join(cluster.dir, f"{self.name}.log")
        self.cert = self.key = None
        self.proc = None
        self.started_once = False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        c = self.cluster
        args = [ETCD, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", ",".join([self.client_url, *self.alias_urls]),
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", c.initial_cluster,
                "--initial-cluster-token", c.token,
                "--initial-cluster-state", "existing" if self.started_once else "new",
                "--log-outputs", "stderr", "--logger", "zap"]
        if c.tls:
            args += ["--cert-file", self.cert, "--key-file", self.key,
                     "--trusted-ca-file", c.ca,
                     "--peer-cert-file", self.cert, "--peer-key-file", self.key,
                     "--peer-trusted-ca-file", c.ca, "--peer-client-cert-auth"]
            if c.client_cert_auth:
                args.append("--client-cert-auth")
        args += list(c.extra_args)
        return args

    def spawn(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.started_once = True

    def signal(self, sig):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def reap(self, timeout=10):
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


class EtcdCluster:
    """A real etcd cluster; see the module docstring."""

    def __init__(self, base_dir, members=3, tls=True, client_cert_auth=True, extra_args=(),
                 start=True, aliases=()):
        os.makedirs(str(base_dir), exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="etcd-", dir=str(base_dir))
        self.tls = tls
        self.client_cert_auth = client_cert_auth and tls
        self.extra_args = tuple(extra_args)
        self.aliases = tuple(aliases)  # more loopback addresses every member also serves on
        self.token = os.path.basename(self.dir)
        self.ca = self.ca_key = self.cert = self.key = None
        self.members = [Member(self, i) for i in range(members)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        self._start_on_enter = start
        if tls:
            self._make_certs()

    # -- setup ---------------------------------------------------------------------------
    def _make_certs(self):
        pki = os.path.join(self.dir, "pki")
        os.makedirs(pki)
        self.ca, self.ca_key = make_ca(pki)
        for m in self.members:
            m.cert, m.key = issue_cert(pki, m.name, self.ca, self.ca_key,
                                       sans=(*LOOPBACK_SANS, *(f"IP:{a}" for a in self.aliases)))
        self.cert, self.key = issue_cert(pki, "root", self.ca, self.ca_key, server=False,
                                         sans=())

    def __enter__(self):
        try:
            if self._start_on_enter:
                self.start_all()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start_all(self, deadline=START_DEADLINE):
        for m in self.members:
            if not m.running:
                m.spawn()
        self.wait_healthy(deadline)

    def close(self):
        """Kills every member (SIGKILL to its process group), waits, removes the files."""
        for m in self.members:
            m.signal(signal.SIGKILL)
        for m in self.members:
            m.reap()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- addresses and flags -------------------------------------------------------------
    def member(self, i):
        return self.members[i]

    @property
    def endpoint_list(self):
        return [m.client_url for m in self.members]

    @property
    def endpoints(self):
        return ",".join(self.endpoint_list)

    def tls_flags(self):
        if not self.tls:
            return []
        return ["--cacert", self.ca, "--cert", self.cert, "--key", self.key]

    def client_flags(self, members=None):
        """etcdctl-style flags for kha or etcdctl (members: indexes, default all)."""
        eps = self.endpoint_list if members is None else [self.members[i].client_url
                                                          for i in members]
        return ["--endpoints", ",".join(eps)] + self.tls_flags()

    def env(self, members=None):
        eps = self.endpoint_list if members is None else [self.members[i].client_url
                                                          for i in members]
        e = dict(os.environ, ETCDCTL_API="3", ETCDCTL_ENDPOINTS=",".join(eps))
        if self.tls:
            e.update(ETCDCTL_CACERT=self.ca, ETCDCTL_CERT=self.cert, ETCDCTL_KEY=self.key)
        return e

    # -- clients -------------------------------------------------------------------------
    def etcdctl(self, *args, check=True, members=None, timeout=30):
        """Runs etcdctl against the running members (or the given ones)."""
        if members is None:
            members = [m.index for m in self.members if m.running]
        cmd = [ETCDCTL, *self.client_flags(members), *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check,
                              env=dict(os.environ, ETCDCTL_API="3"))

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.client_cert_auth:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def gateway(self, path, body=None, member=0, timeout=5):
        """POSTs JSON to a member's gateway; returns the decoded reply (raises on HTTP errors)."""
        url = self.members[member].client_url + path
        data = json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        ctx = self.ssl_context() if self.tls else None
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return json.loads(resp.read().decode())

    def status(self, member):
        return self.gateway("/v3/maintenance/status", {}, member=member, timeout=2)

    # -- failures ------------------------------------------------------------------------
    def kill(self, i):
        """SIGKILL member i and wait for it to be gone."""
        m = self.members[i]
        m.signal(signal.SIGKILL)
        m.reap()

    def stop(self, i):
        """SIGTERM member i (graceful) and wait."""
        m = self.members[i]
        m.signal(signal.SIGTERM)
        m.reap()

    def start(self, i, wait=True, deadline=START_DEADLINE):
        """(Re)starts member i with its data dir; waits until it answers with a leader."""
        m = self.members[i]
        if not m.running:
            m.spawn()
        if wait:
            self._wait(lambda: self._member_ready(m), deadline, f"{m.name} to answer")

    # -- readiness -----------------------------------------------------------------------
    def _member_ready(self, m):
        if not m.running:
            raise RuntimeError(f"{m.name} exited:\n{m.log_tail()}")
        try:
            st = self.status(m.index)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return int(st.get("leader", "0")) != 0

    def _wait(self, cond, deadline, what):
        wait_for(cond, deadline, f"etcd: {what}", interval=0.05,
                 diag=lambda: "\n".join(f"--- {m.name}\n{m.log_tail()}" for m in self.members))

    def wait_healthy(self, deadline=START_DEADLINE):
        """Waits until every running member answers and they agree on one leader that is itself
        running (just after a leader is killed, the others still name it for a moment, and a
        request sent then is lost)."""
        def ok():
            leaders, running_ids = set(), set()
            for m in self.members:
                if not m.running:
                    if m.started_once and m.proc is None:
                        continue  # deliberately stopped
                    raise RuntimeError(f"{m.name} exited:\n{m.log_tail()}")
                if not self._member_ready(m):
                    return False
                st = self.status(m.index)
                # etcd's JSON leaves a zero field out: no "leader" while an election runs
                if int(st.get("leader", "0")) == 0:
                    return False
                leaders.add(st["leader"])
                running_ids.add(st["header"]["member_id"])
            return len(leaders) == 1 and leaders <= running_ids
        self._wait(ok, deadline, "a healthy cluster")

    def leader_index(self):
        """Index of the current leader as the running members see it (None when unknown)."""
        ids, leader = {}, 0
        for m in self.members:
            if not m.running:
                continue
            try:
                st = self.status(m.index)
            except (urllib.error.URLError, OSError, ValueError):
                continue
            ids[int(st["header"]["member_id"])] = m.index
            leader = leader or int(st.get("leader", "0"))
        return ids.get(leader)


@pytest.fixture
def etcd_cluster(tmp_path):
    """A factory: etcd_cluster(members=3, tls=True, ...) -> started EtcdCluster, all closed
    at teardown."""
    made = []

    def make(members=3, tls=True, **kw):
        c = EtcdCluster(tmp_path / f"etcd{len(made)}", members=members, tls=tls, start=False,
                        **kw)
        made.append(c)
        c.start_all()
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


@pytest.fixture
def etcd3(etcd_cluster):
    """A started 3-member TLS cluster with client certificate authentication."""
    return etcd_cluster(members=3, tls=True)


VERSIONS = ["3.4", "3.6"]


@pytest.fixture(params=VERSIONS)
def etcd_version(request, monkeypatch):
    """Selects the etcd of one release line for the clusters this test starts, and the tools
    kha finds on PATH (3.6: etcdutl, as an operator of 3.6 has it): Debian's 3.4, or the 3.6
    scripts/k8s.sh builds (KHA_K8S_BIN)."""
    if request.param == "3.4":
        monkeypatch.setattr(sys.modules[__name__], "ETCD", "/usr/bin/etcd")
        monkeypatch.setattr(sys.modules[__name__], "ETCDCTL", "/usr/bin/etcdctl")
        path = os.environ["PATH"]
    else:
        k8s = os.environ.get("KHA_K8S_BIN")
        if not k8s:
            pytest.fail("KHA_K8S_BIN is not set: make test builds etcd 3.6 (scripts/k8s.sh)")
        monkeypatch.setattr(sys.modules[__name__], "ETCD", os.path.join(k8s, "etcd"))
        monkeypatch.setattr(sys.modules[__name__], "ETCDCTL", os.path.join(k8s, "etcdctl"))
        path = k8s + os.pathsep + os.environ["PATH"]
    monkeypatch.setenv("PATH", path)
    return request.param
