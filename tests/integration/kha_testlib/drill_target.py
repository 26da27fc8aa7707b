# SPDX-License-Identifier: MIT
"""A target for `kha drill` tests: an HTTP(S) server that can be made to fail on purpose.

Run as a program (a separate process, so a test can SIGSTOP it):
    drill_target.py --port P [--cert C --key K [--client-ca CA]] [--fail-file F]
                    [--window FROM,TO,MODE]... [--events FILE]
MODE is "503" (answer 503), "refuse" (close the listening socket: connections are refused) or
"hang" (accept, never answer). FROM/TO are CLOCK_REALTIME seconds (time.time()). While the file
given by --fail-file exists and is not empty, its content (one of the modes; anything else is
"503") applies too. --events appends
"closed T0 T1" and "listening T0 T1" (time.time(): it happened between T0 and T1) each time
the listener really closes and reopens,
the ground truth of a "refuse" window (the server loop may act late on a loaded machine).
GET /stats answers
{"connections": N, "requests": M, "failed": K}. Prints "ready" on stdout once listening.

As a module: DrillTarget (start/stop a target process), make_pki (a test CA with the openssl
CLI) for the fixtures of test_drill*.py.
"""
import argparse
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

MODES = ("503", "refuse", "hang")


# ------------------------------------------------------------------------------------------
# The server (runs in its own process)

class Server:
    def __init__(self, args):
        self.args = args
        self.windows = []
        for w in args.window or []:
            start, end, mode = w.split(",")
            assert mode in MODES, mode
            self.windows.append((float(start), float(end), mode))
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.failed = 0
        self.ctx = None
        if args.cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(args.cert, args.key)
            if args.client_ca:
                self.ctx.verify_mode = ssl.CERT_REQUIRED
                self.ctx.load_verify_locations(args.client_ca)

    def mode(self):
        now = time.time()
        for start, end, mode in self.windows:
            if start <= now < end:
                return mode
        if self.args.fail_file:
            try:
                with open(self.args.fail_file) as f:
                    m = f.read().strip()
                # empty: still being written (`echo refuse > F` creates it, then writes), no
                # mode yet (it used to mean 503, and a refuse window began with a 503)
                return (m if m in MODES else "503") if m else None
            except FileNotFoundError:
                pass
        return None

    def event(self, what, before):
        """Records that `what` happened between `before` and now."""
        if self.args.events:
            with open(self.args.events, "a") as f:
                f.write(f"{what} {before:.6f} {time.time():.6f}\n")

    def listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.args.port))
        s.listen(512)
        s.setblocking(False)
        return s

    def serve_forever(self):
        lsock = self.listen()
        print("ready", flush=True)
        while True:
            if self.mode() == "refuse":
                if lsock is not None:
                    before = time.time()
                    lsock.close()
                    lsock = None
                    self.event("closed", before)
                time.sleep(0.001)
                continue
            if lsock is None:
                before = time.time()
                lsock = self.listen()
                self.event("listening", before)
            sel = selectors.DefaultSelector()
            sel.register(lsock, selectors.EVENT_READ)
            ready = sel.select(timeout=0.002)
            sel.close()
            if not ready:
                continue
            try:
                conn, _ = lsock.accept()
            except (BlockingIOError, OSError):
                continue
            conn.setblocking(True)
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        try:
            conn.settimeout(5)
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode() if b" " in head else "/"
                close = b"connection: close" in head.lower()
                mode = self.mode()
                if path == "/stats":
                    with self.lock:
                        body = json.dumps({"connections": self.connections,
                                           "requests": self.requests,
                                           "failed": self.failed}).encode()
                    status = "200 OK"
                else:
                    with self.lock:
                        self.requests += 1
                        if mode:
                            self.failed += 1
                    if mode == "hang":
                        time.sleep(30)
                        return
                    if mode == "refuse":
                        # accepted just before the listener closed: drop it unanswered
                        return
                    if mode:
                        status, body = "503 Service Unavailable", b"failing on purpose\n"
                    else:
                        status, body = "200 OK", b"ok\n"
                conn.sendall(b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: " +
                             str(len(body)).encode() + b"\r\nContent-Type: text/plain\r\n" +
                             (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
                if close:
                    return
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    p.add_argument("--fail-file")
    p.add_argument("--window", action="append")
    p.add_argument("--events")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Server(args).serve_forever()


# ------------------------------------------------------------------------------------------
# Fixture helpers (run in the test process)

class DrillTarget:
    """Starts drill_target.py on a free port; stop() kills it (also when SIGSTOPped)."""

    def __init__(self, port, tls=None, fail_file=None, windows=(), client_ca=None, events=None):
        self.port = port
        self.tls = tls
        self.events_path = events
        cmd = [sys.executable, os.path.abspath(__file__), "--port", str(port)]
        if events:
            cmd += ["--events", events]
        if tls:
            cmd += ["--cert", tls["server_crt"], "--key", tls["server_key"]]
            if client_ca:
                cmd += ["--client-ca", client_ca]
        if fail_file:
            cmd += ["--fail-file", fail_file]
        for start, end, mode in windows:
            cmd += ["--window", f"{start},{end},{mode}"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.pid = self.proc.pid
        try:
            self._wait_ready(10)
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("drill target exited: " + self.proc.stderr.read())
                if sel.select(timeout=0.1) and self.proc.stdout.readline().strip() == "ready":
                    return
        finally:
            sel.close()
        raise TimeoutError("drill target not ready")

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/readyz"

    def events(self):
        """[(what, earliest, latest)] the server recorded (--events), times from time.time()."""
        with open(self.events_path) as f:
            return [(w, float(a), float(b)) for w, a, b in (line.split() for line in f)]

    def stats(self):
        """Counts from the server (plain HTTP targets only)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def make_pki(directory):
    """A test CA, a server certificate for 127.0.0.1, a client certificate, and a second CA
    nobody trusts (to provoke verification failures); returns a dict of paths."""
    from kha_testlib.pki import issue_cert, make_ca
    p = {}
    p["ca_crt"], p["ca_key"] = make_ca(directory, "kha drill test CA", base="ca")
    p["other_crt"], p["other_key"] = make_ca(directory, "someone else", base="other")
    p["server_crt"], p["server_key"] = issue_cert(directory, "server", p["ca_crt"], p["ca_key"],
                                                  client=False)
    p["client_crt"], p["client_key"] = issue_cert(directory, "client", p["ca_crt"],
                                                  p["ca_key"], server=False, sans=())
    return p


if __name__ == "__main__":
    main()
