# SPDX-License-Identifier: MIT
"""A TCP relay the test controls, to partition a client from a server.

The relay listens on a free 127.0.0.1 port and forwards each connection to an upstream
host:port (TLS passes through untouched). The test can then:

* ``cut()``: blackhole -- stop forwarding in both directions but keep every socket open, and
  accept new connections without ever connecting them upstream. To the client this looks like a
  network partition (requests hang until their timeouts), not like a refused or reset connection.
* ``heal()``: forward again (held data flows; connections accepted while cut are connected).
* ``reset()``: close every connection (the client sees resets).

Usage::

    with Relay("127.0.0.1", etcd_port) as r:
        url = f"https://127.0.0.1:{r.port}"   # point the client here
        r.cut(); ...; r.heal()

Everything runs in one thread of the test process (selectors); close() stops it and closes all
sockets, also when the test failed.
"""
import os
import selectors
import socket
import threading

_BUF = 65536


class _Pair:
    def __init__(self, client):
        self.client = client
        self.upstream = None
        self.out = {client: b"", None: b""}   # pending bytes to write, per destination


class Relay:
    def __init__(self, upstream_host, upstream_port, host="127.0.0.1", port=0):
        self.upstream = (upstream_host, upstream_port)
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, port))
        self._lsock.listen(128)
        self._lsock.setblocking(False)
        self.host = host
        self.port = self._lsock.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._lock = threading.Lock()
        self._cut = False
        self._reset = False
        self._stop = False
        self._pairs = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # -- control -----------------------------------------------------------------------------
    @property
    def url_host(self):
        return f"{self.host}:{self.port}"

    def cut(self):
        """Stops forwarding (a partition): sockets stay open, nothing passes."""
        with self._lock:
            self._cut = True
        self._wake()

    def heal(self):
        """Forwards again."""
        with self._lock:
            self._cut = False
        self._wake()

    def reset(self):
        """Closes every relayed connection."""
        with self._lock:
            self._reset = True
        self._wake()

    @property
    def is_cut(self):
        with self._lock:
            return self._cut

    def close(self):
        with self._lock:
            self._stop = True
        self._wake()
        self._thread.join(timeout=5)
        for p in self._pairs:
            self._close_pair(p, unregister=False)
        self._pairs = []
        self._lsock.close()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _close_pair(self, p, unregister=True):
        for s in (p.client, p.upstream):
            if s is None:
                continue
            if unregister:
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError):
                    pass
            try:
                s.close()
            except OSError:
                pass

    def _connect(self, p):
        try:
            up = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            self._close_pair(p)
            self._pairs.remove(p)
            return
        up.setblocking(False)
        p.upstream = up
        p.out[up] = p.out.pop(None, b"")

    def _interest(self, p, cut):
        for s in (p.client, p.upstream):
            if s is None:
                continue
            ev = 0
            if not cut:
                ev = selectors.EVENT_READ
                if p.out.get(s):
                    ev |= selectors.EVENT_WRITE
            try:
                if ev:
                    try:
                        self._sel.modify(s, ev, p)
                    except KeyError:
                        self._sel.register(s, ev, p)
                else:
                    self._sel.unregister(s)
            except (KeyError, ValueError):
                pass

    def _run(self):
        self._sel.register(self._lsock, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        while True:
            with self._lock:
                stop, cut, reset = self._stop, self._cut, self._reset
                self._reset = False
            if stop:
                return
            if reset:
                for p in self._pairs:
                    self._close_pair(p)
                self._pairs = []
            if not cut:
                for p in list(self._pairs):
                    if p.upstream is None:
                        self._connect(p)
            for p in self._pairs:
                self._interest(p, cut)
            for key, events in self._sel.select(timeout=0.5):
                if key.data == "wake":
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                    continue
                if key.data == "listen":
                    try:
                        c, _ = self._lsock.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    self.accepted += 1
                    self._pairs.append(_Pair(c))
                    continue
                p = key.data
                if p not in self._pairs or self.is_cut:
                    continue
                s = key.fileobj
                other = p.upstream if s is p.client else p.client
                if events & selectors.EVENT_READ:
                    try:
                        data = s.recv(_BUF)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data == b"":
                        self._close_pair(p)
                        self._pairs.remove(p)
                        continue
                    if data:
                        p.out[other] = p.out.get(other, b"") + data
                if events & selectors.EVENT_WRITE and p.out.get(s):
                    try:
                        n = s.send(p.out[s])
                        p.out[s] = p.out[s][n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._close_pair(p)
                        self._pairs.remove(p)
                        continue
                # flush eagerly toward the other side
                if other is not None and p.out.get(other):
                    try:
                        n = other.send(p.out[other])
                        p.out[other] = p.out[other][n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._close_pair(p)
                        self._pairs.remove(p)
