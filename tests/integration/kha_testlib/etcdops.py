# SPDX-License-Identifier: MIT
"""Helpers for the etcd operations tests (snapshot, backup, member, defrag, check).

- fill_keys(c, n): n small keys under a prefix, 100 per transaction (fast).
- fill_big(c, mb): about mb MiB of 1 MiB random values, with parallel writers.
- read_prefix(url, prefix, ...): every key/value under a prefix, straight from a member.
- start_etcd(args, ...): a standalone etcd process (restored data dirs, new members started
  with the flags kha printed), always stopped by its context manager.
- NewMember(c, dir, name): ports, certificate and process of a member kha says to start;
  run_replace(argv, new): runs kha (a member replace) and starts new from the ETCD_* lines it
  prints, as an operator would.
- etcdctl_json(...), sha256_file(), poll().
"""
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

import kha_testlib.etcd as etcdlib
from conftest import assert_no_sanitizer_report, kha_bin
from kha_testlib.etcd import ETCD, ETCDCTL, _free_port, issue_cert  # noqa: F401
from kha_testlib.process import wait_for

VALUE_MIB = 1 << 20


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def poll(fn, deadline=20.0, what="condition", interval=0.05):
    """kha_testlib.process.wait_for, with the last value fn() gave in the failure message."""
    last = [None]

    def attempt():
        last[0] = fn()
        return last[0]
    return wait_for(attempt, deadline, what, interval=interval, diag=lambda: f"last: {last[0]!r}")


def _post(url, body, ctx=None, timeout=30):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
        return json.loads(resp.read().decode())


def _ctx(c):
    return c.ssl_context() if c.tls else None


def running_member(c):
    return next(m for m in c.members if m.running)


def fill_keys(c, n, prefix="k/", value_size=16, batch=100):
    """Puts n keys prefix0000000.. with deterministic values; returns {key: value}."""
    url = running_member(c).client_url + "/v3/kv/txn"
    ctx = _ctx(c)
    data = {}
    for start in range(0, n, batch):
        ops = []
        for i in range(start, min(n, start + batch)):
            k = f"{prefix}{i:07d}"
            v = (f"v{i}-" * value_size)[:value_size]
            data[k] = v
            ops.append({"request_put": {"key": b64(k), "value": b64(v)}})
        _post(url, {"success": ops}, ctx)
    return data


def fill_big(c, mb, prefix="big/", threads=4):
    """About mb MiB of random 1 MiB values (the member needs --quota-backend-bytes)."""
    url = running_member(c).client_url + "/v3/kv/put"
    ctx = _ctx(c)
    val = b64(os.urandom(VALUE_MIB))

    def put(i):
        _post(url, {"key": b64(f"{prefix}{i:06d}"), "value": val}, ctx, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        list(ex.map(put, range(mb)))


def read_prefix(url, prefix, ctx=None, timeout=30):
    """{key: value} of every key under prefix, read from the member at url."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    rep = _post(url + "/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)}, ctx, timeout)
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in rep.get("kvs", [])}


def status(url, ctx=None, timeout=2):
    return _post(url + "/v3/maintenance/status", {}, ctx, timeout)


def etcdctl_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def etcdctl(*args, check=True, timeout=60):
    return subprocess.run([ETCDCTL, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=check, env=etcdctl_env())


def snapshot_status(path):
    """`etcdctl snapshot status -w json` as a dict."""
    p = etcdctl("snapshot", "status", path, "-w", "json")
    return json.loads(p.stdout)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Etcd:
    """A standalone etcd process (own process group), stopped by close()."""

    def __init__(self, args, log_path, binary=ETCD):
        self.args = [binary, *args]
        self.log_path = log_path
        log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def close(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_answering(url, ctx=None, member=None, deadline=30.0, need_leader=True):
    """Waits until the member at url answers its status (with a leader)."""
    def ok():
        if member is not None and not member.running:
            raise RuntimeError(f"etcd exited:\n{member.log_tail()}")
        try:
            st = status(url, ctx)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return not need_leader or int(st.get("leader", "0")) != 0
    poll(ok, deadline, f"{url} to answer")


def tls_member_args(c, cert, key):
    """The TLS flags of a cluster fixture's members, for an extra member."""
    if not c.tls:
        return []
    args = ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", c.ca,
            "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", c.ca,
            "--peer-client-cert-auth"]
    if c.client_cert_auth:
        args.append("--client-cert-auth")
    return args


def restore_and_serve(tmp_path, snap, name="restored"):
    """Restores snap with etcdctl into a new data dir and starts a real member on it."""
    peer, client = _free_port(), _free_port()
    peer_url, client_url = f"http://127.0.0.1:{peer}", f"http://127.0.0.1:{client}"
    data = str(tmp_path / f"{name}.data")
    etcdctl("snapshot", "restore", snap, "--data-dir", data, "--name", name,
            "--initial-cluster", f"{name}={peer_url}", "--initial-advertise-peer-urls",
            peer_url, "--initial-cluster-token", "restored")
    e = Etcd(["--name", name, "--data-dir", data, "--listen-client-urls", client_url,
              "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url,
              "--initial-advertise-peer-urls", peer_url,
              "--initial-cluster", f"{name}={peer_url}", "--initial-cluster-token", "restored",
              "--logger", "zap", "--log-outputs", "stderr"],
             str(tmp_path / f"{name}.log"))
    try:
        wait_answering(client_url, member=e)
    except BaseException:
        e.close()
        raise
    return e, client_url


class NewMember:
    """Ports, certificate and process of a member kha tells us to start (the etcd binary of
    the cluster's release line: kha_testlib.etcd.ETCD when the member starts)."""

    def __init__(self, c, tmp_path, name):
        self.c = c
        self.name = name
        scheme = "https" if c.tls else "http"
        self.peer_url = f"{scheme}://127.0.0.1:{_free_port()}"
        self.client_url = f"{scheme}://127.0.0.1:{_free_port()}"
        self.dir = str(tmp_path)
        self.cert = self.key = None
        if c.tls:
            self.cert, self.key = issue_cert(os.path.join(c.dir, "pki"), name, c.ca, c.ca_key)
        self.proc = None

    def start(self, flags):
        c = self.c
        args = [*flags, "--data-dir", os.path.join(self.dir, f"{self.name}.data"),
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--logger", "zap", "--log-outputs", "stderr",
                *tls_member_args(c, self.cert, self.key)]
        self.proc = Etcd(args, os.path.join(self.dir, f"{self.name}.log"), binary=etcdlib.ETCD)

    def close(self):
        if self.proc:
            self.proc.close()


def run_replace(argv, new, timeout=180):
    """Runs kha argv (a member replace), starts new from the ETCD_* lines it prints, waits for
    the end. Returns a CompletedProcess (stdout: every line printed; fails on a sanitizer
    report)."""
    # unbuffered: a line read here is all that is taken from the pipe, so communicate() gets
    # the rest (a buffered reader would keep what it read ahead, and it would be lost)
    proc = subprocess.Popen([kha_bin(), *map(str, argv)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    env, lines = {}, []
    try:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            lines.append(line)
            mo = re.match(r'^(ETCD_[A-Z_]+)="(.*)"$', line.strip())
            if mo:
                env[mo.group(1)] = mo.group(2)
            if "ETCD_INITIAL_CLUSTER_STATE" in env:
                break
        if env.get("ETCD_NAME") == new.name:
            new.start(["--name", env["ETCD_NAME"],
                       "--initial-cluster", env["ETCD_INITIAL_CLUSTER"],
                       "--initial-cluster-state", env["ETCD_INITIAL_CLUSTER_STATE"],
                       "--initial-advertise-peer-urls", env["ETCD_INITIAL_ADVERTISE_PEER_URLS"]])
        rest, err = (b.decode(errors="replace") for b in proc.communicate(timeout=timeout))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert_no_sanitizer_report(err)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + rest, err)


@pytest.fixture
def new_members(tmp_path):
    """A factory of NewMember (new_members(c, name)), each closed at the end of the test."""
    made = []

    def make(c, name):
        m = NewMember(c, tmp_path, name)
        made.append(m)
        return m
    try:
        yield make
    finally:
        for m in made:
            m.close()
