# SPDX-License-Identifier: MIT
"""What the namespace labs share (vrrp_lab, bgp_lab): namespaces created and always deleted,
processes started inside them with a log each, and killed at the end, also after a failure."""
import os
import signal
import subprocess


def sh(*args, check=True, timeout=20, input=None):
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, check=check,
                          timeout=timeout, stdin=None if input else subprocess.DEVNULL,
                          input=input)


class NetnsLab:
    """Subclasses set self.tmpdir, then call self.ns() for each namespace they create."""

    def __init__(self):
        self.procs = []  # (name, Popen, log path)
        self._namespaces = []

    def ns(self, name):
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def spawn(self, ns, name, argv, env=None, group=False, stdout=None):
        """Starts argv in namespace ns, output to a log (stdout: a file of its own instead);
        group: in a process group of its own (for daemons that fork, such as keepalived:
        kill_group() then stops them all)."""
        log = os.path.join(self.tmpdir, f"{name}.log")
        f = open(log, "ab")
        p = subprocess.Popen(["ip", "netns", "exec", ns, *map(str, argv)],
                             stdout=stdout or f, stderr=f if stdout else subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env, start_new_session=group)
        p.group = group
        f.close()
        self.procs.append((name, p, log))
        return p

    def log(self, p):
        for _, q, path in self.procs:
            if q is p:
                with open(path, errors="replace") as f:
                    return f.read()
        return ""

    @staticmethod
    def kill_group(p, sig=signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass

    def close(self):
        for _, p, _ in self.procs:
            if p.group:
                self.kill_group(p)
            elif p.poll() is None:
                try:
                    p.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for _, p, _ in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self._namespaces = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
