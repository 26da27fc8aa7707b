# SPDX-License-Identifier: MIT
"""kube-probe, the tests-only driver of lib/kube (tests/unit/kube-probe.c): one-shot runs and a
discovery running in the background whose JSON lines are collected as they come. With prefix,
it runs inside a lab host (`kha lab exec ... --`)."""
import json
import os
import queue
import signal
import subprocess
import threading

import pytest

from conftest import assert_no_sanitizer_report, kha_bin
from kha_testlib.k8s import wait_until


def probe_bin():
    path = os.path.join(os.path.dirname(os.path.dirname(kha_bin())), "lib", "kube", "kube-probe")
    if not os.access(path, os.X_OK):
        pytest.fail(f"kube-probe not built at {path}: build with the tests (meson -Dtests=true)")
    return path


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
    env.update(extra)
    return env


def probe(*args, env=None, timeout=30):
    """Runs kube-probe once; returns CompletedProcess. Fails on a sanitizer report."""
    p = subprocess.run([probe_bin(), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=env or clean_env())
    assert_no_sanitizer_report(p.stderr, "kube-probe " + " ".join(map(str, args)))
    return p


class Discovery:
    """kube-probe discover in the background: its JSON lines are collected as they come."""

    def __init__(self, *args, env=None, prefix=()):
        self.proc = subprocess.Popen([*prefix, probe_bin(), *map(str, args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True,
                                     stdin=subprocess.DEVNULL, env=env or clean_env())
        self.lines = []
        self.stderr = ""
        self._q = queue.Queue()
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def _read_err(self):
        self.stderr = self.proc.stderr.read()

    def sets(self):
        return [e for e in list(self.lines) if e["event"] == "set"]

    def errors(self):
        return [e for e in list(self.lines) if e["event"] == "error"]

    def addrs(self, s=None):
        s = s or self.sets()[-1]
        return [e["addr"] for e in s["endpoints"]]

    def wait_set(self, want, timeout=10):
        """Waits for a delivered set whose addresses are want (a list); returns it."""
        def found():
            for s in self.sets():
                if [e["addr"] for e in s["endpoints"]] == want:
                    return s
            return None
        return wait_until(found, timeout, f"set {want} (got {[self.addrs(s) for s in self.sets()]}"
                          f", stderr {self.stderr!r})")

    def stop(self, timeout=10):
        """SIGTERM; the stop fd must end discovery promptly and cleanly. Idempotent."""
        if getattr(self, "stopped", False):
            return
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        self._out.join(5)
        self._err.join(5)
        assert_no_sanitizer_report(self.stderr, "kube-probe discover")
        assert rc == 0, f"kube-probe discover exited {rc}: {self.stderr}"
        assert self.lines and self.lines[-1]["event"] == "stopped"

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
