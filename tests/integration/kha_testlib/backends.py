# SPDX-License-Identifier: MIT
"""Real backends for kha proxy tests: TLS HTTP servers and plain TCP echo servers, each in its own
process (so SIGSTOP and SIGKILL are real), plus a throwaway PKI made with the openssl CLI.

As a script (run by the Backend class):
  backends.py tls --port P [--host H] --cert C --key K --name N  HTTPS: /readyz /version ...
  backends.py tcp --port P --name N --report FILE        TCP echo with half-close, see TcpHandler

HTTPS endpoints:
  GET  /readyz              200 "ok" or the code set by POST /admin/ready?code=N
  GET  /version             {"name": N}
  GET  /large?n=BYTES       deterministic bytes (pattern(n))
  POST /echo                the request body back
  GET  /watch[?n=COUNT]     a long response: one line every 50 ms ("event I NAME"), COUNT lines
                            then the end, or forever
  POST /admin/ready?code=N  switches /readyz
  POST /admin/close?on=1|0  while on, every response says "Connection: close" and the server
                            closes the connection after it (a server draining its keep-alive
                            connections before it stops)
"""
import argparse
import http.server
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request

# run as a script (the backend servers), this folder's parent is not on the path yet
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kha_testlib.pki import LOOPBACK_SANS, issue_cert, make_ca  # noqa: E402
from kha_testlib.process import Daemon, deadline, free_port, wait_for  # noqa: F401 (re-exported)  # noqa: E402

PATTERN_BLOCK = bytes(range(256)) * 256


def pattern(n):
    """n deterministic bytes (what /large sends)."""
    reps = n // len(PATTERN_BLOCK) + 1
    return (PATTERN_BLOCK * reps)[:n]


def make_pki(directory, ips=()):
    """A CA and a server certificate for 127.0.0.1, localhost and ips; returns dict of paths."""
    ca, ca_key = make_ca(directory, "kha-test-ca", base="ca")
    cert, key = issue_cert(directory, "server", ca, ca_key, client=False, cn="kube-apiserver",
                           sans=(*LOOPBACK_SANS, *(f"IP:{ip}" for ip in ips)))
    return {"ca": ca, "cert": cert, "key": key}


class Backend:
    """One backend server process. kind: "tls" or "tcp"."""

    def __init__(self, kind, name, pki=None, report=None):
        self.kind, self.name, self.pki, self.report = kind, name, pki, report
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None
        self.stopped = False

    def start(self, timeout=10):
        args = [sys.executable, os.path.abspath(__file__), self.kind, "--port", str(self.port),
                "--name", self.name]
        if self.kind == "tls":
            args += ["--cert", self.pki["cert"], "--key", self.pki["key"]]
        if self.report:
            args += ["--report", self.report]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"backend {self.name} exited: {self.proc.stderr.read()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"backend {self.name} did not start")

    def signal(self, sig):
        os.killpg(self.proc.pid, sig)
        self.stopped = sig == signal.SIGSTOP

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def set_ready(self, code):
        """Switches /readyz (directly, not through the proxy)."""
        ctx = ssl.create_default_context(cafile=self.pki["ca"])
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(f"POST /admin/ready?code={code} HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
                while s.recv(4096):
                    pass


# ---- the servers ----

class TLSHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kha-test-backend"

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.server.closing:
            self.send_header("Connection", "close")  # and close_connection is set
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        srv = self.server
        if url.path == "/readyz":
            code = srv.ready_code
            self.send_body(code, b"ok" if code == 200 else b"not ready")
        elif url.path == "/version":
            self.send_body(200, json.dumps({"name": srv.name}).encode(), "application/json")
        elif url.path == "/large":
            self.send_body(200, pattern(int(q.get("n", ["1048576"])[0])),
                           "application/octet-stream")
        elif url.path == "/watch":
            count = int(q.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            i = 0
            try:
                while count == 0 or i < count:
                    self.wfile.write(f"event {i} {srv.name}\n".encode())
                    self.wfile.flush()
                    i += 1
                    time.sleep(0.05)
            except OSError:
                pass
        else:
            self.send_body(404, b"not found")

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        if url.path == "/echo":
            self.send_body(200, body, "application/octet-stream")
        elif url.path == "/admin/ready":
            self.server.ready_code = int(urllib.parse.parse_qs(url.query)["code"][0])
            self.send_body(200, b"ok")
        elif url.path == "/admin/close":
            self.server.closing = urllib.parse.parse_qs(url.query)["on"][0] == "1"
            self.send_body(200, b"ok")
        else:
            self.send_body(404, b"not found")


class TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        # the handshake runs in the connection's thread, never in the accept loop
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(request, client_address)


class TcpHandler(socketserver.BaseRequestHandler):
    """Echoes bytes. On a line "BYE" it shuts its write side and keeps reading. On the client's
    EOF it sends "END <bytes received>" (unless already shut) and closes. Appends
    "<name> received=N reset=0|1" to the report file."""

    def handle(self):
        s, total, shut, reset = self.request, 0, False, False
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                total += len(data)
                if shut:
                    continue
                if b"BYE\n" in data:
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
                    shut = True
                else:
                    s.sendall(data)
            if not shut:
                s.sendall(b"END %d" % total)
        except ConnectionResetError:
            reset = True
        finally:
            if self.server.report:
                with open(self.server.report, "a") as f:
                    f.write(f"{self.server.name} received={total} reset={int(reset)}\n")


class TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["tls", "tcp"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--report")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.kind == "tls":
        srv = TLSServer((a.host, a.port), TLSHandler)
        srv.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.ctx.load_cert_chain(a.cert, a.key)
        srv.ready_code = 200
        srv.closing = False
    else:
        srv = TcpServer(("127.0.0.1", a.port), TcpHandler)
        srv.report = a.report
    srv.name = a.name
    srv.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()


# ---- driving kha proxy ----

class ProxyProc:
    """A kha proxy process on free ports, run as a kha_testlib.process.Daemon: its output goes
    to a file; stop() stops it gracefully and fails on a bad exit or a sanitizer report."""

    def __init__(self, kha_bin, args, workdir, listen_port=None, metrics_port=None):
        self.port = listen_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.listen = f"127.0.0.1:{self.port}"
        self.metrics = f"127.0.0.1:{self.metrics_port}"
        self.args = [kha_bin, "proxy", "--listen", self.listen, "--metrics-addr", self.metrics,
                     *map(str, args)]
        self.errpath = os.path.join(str(workdir), f"proxy-{self.port}.err")
        self.daemon = None
        self.stderr_text = ""

    @property
    def proc(self):
        return self.daemon.proc if self.daemon else None

    def start(self, timeout=15):
        self.daemon = Daemon(self.args, self.errpath, name=f"kha proxy {self.listen}")
        wait_for(lambda: not self.daemon.alive() or self.try_status() is not None,
                 deadline(timeout), "kha proxy admin endpoint")
        if not self.daemon.alive():
            rc = self.daemon.wait(5)
            raise RuntimeError(f"kha proxy exited {rc}: {self.read_err()}")
        return self

    def read_err(self):
        with open(self.errpath, errors="replace") as f:
            return f.read()

    def try_status(self):
        try:
            with urllib.request.urlopen(f"http://{self.metrics}/status", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def status(self):
        st = self.try_status()
        assert st is not None, "kha proxy /status did not answer"
        return st

    def backend(self, addr):
        for b in self.status()["backends"]:
            if b["address"] == addr and not b["removed"]:
                return b
        return None

    def metrics_text(self):
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=2) as r:
            return r.read().decode()

    def signal(self, sig):
        self.daemon.signal(sig)

    def stop(self):
        """SIGTERM, wait, check (Daemon.stop); returns the exit code, keeps the output in
        stderr_text. None when it was never started."""
        if self.daemon is None:
            return None
        try:
            return self.daemon.stop()
        finally:
            self.stderr_text = self.read_err()

    def kill(self):
        """SIGKILL on purpose (the harness then expects that death)."""
        if self.daemon and self.daemon.alive():
            self.daemon.kill()


def client_context(ca):
    return ssl.create_default_context(cafile=ca)


def https_request(port, path, ca, method="GET", body=None, timeout=10):
    """One request on a new TLS connection; returns (status, body bytes)."""
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(ca),
                                       timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Stream:
    """A long /watch response through the proxy, read line by line."""

    def __init__(self, port, ca, n=0, timeout=10):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1")
        q = f"?n={n}" if n else ""
        self.sock.sendall(f"GET /watch{q} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.f = self.sock.makefile("rb")
        while self.f.readline() not in (b"\r\n", b""):
            pass  # response head
        first = self.readline()
        self.backend = first.split()[2] if first else None
        self.lines = 1

    def readline(self):
        line = self.f.readline().decode()
        return line.strip()

    def read_lines(self, n):
        for _ in range(n):
            if not self.readline():
                return False
            self.lines += 1
        return True

    def closed_within(self, timeout):
        """True when the stream ends (EOF or reset) within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            while self.f.readline():
                pass
            return True
        except (ConnectionResetError, ssl.SSLError, OSError) as e:
            return not isinstance(e, socket.timeout)

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass
