# SPDX-License-Identifier: MIT
"""What the namespace labs share (vrrp_lab, bgp_lab): namespaces created and always deleted,
processes started inside them with a log each, and stopped at the end, also after a failure
(kha gracefully and checked, the peers around it killed)."""
import os
import signal
import subprocess

from kha_testlib.process import Daemon, stop_all


def sh(*args, check=True, timeout=20, input=None):
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, check=check,
                          timeout=timeout, stdin=None if input else subprocess.DEVNULL,
                          input=input)


class NetnsLab:
    """Subclasses set self.tmpdir, then call self.ns() for each namespace they create."""

    def __init__(self):
        self.procs = []  # (name, Daemon, log path)
        self._namespaces = []

    def ns(self, name):
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def spawn(self, ns, name, argv, env=None, group=False, stdout=None, ok_codes=(0,)):
        """Starts argv in namespace ns as a kha_testlib.process.Daemon, output to a log (stdout:
        a file of its own instead), in a process group of its own (kill_group() reaches what a
        forking daemon such as keepalived starts; `group` is kept for older callers).
        kha itself is stopped the checked way at close() (SIGTERM, exit code in ok_codes, log
        scanned after the exit); the peers and stand-ins around it are killed."""
        log = os.path.join(self.tmpdir, f"{name}.log")
        p = Daemon(["ip", "netns", "exec", ns, *map(str, argv)], log, name=name, env=env,
                   ok_codes=ok_codes, stdout=stdout)
        p.checked = os.path.basename(str(argv[0])) == "kha"
        p.group = True
        self.procs.append((name, p, log))
        return p

    def log(self, p):
        return p.log()

    @staticmethod
    def kill_group(p, sig=signal.SIGKILL):
        """A signal to p's whole process group (a forking daemon and its children)."""
        if sig == signal.SIGKILL:
            p.killed = True
        elif sig in (signal.SIGTERM, signal.SIGINT):
            p.asked = True
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass

    def close(self):
        """Stops every process (kha checked, see spawn) and deletes the namespaces; fails after
        the cleanup if a kha daemon crashed, hung, exited badly or reported a sanitizer error."""
        procs, self.procs = [p for _, p, _ in self.procs], []
        try:
            stop_all(procs, lambda p: p.stop() if p.checked else p.kill())
        finally:
            for ns in reversed(self._namespaces):
                sh("ip", "netns", "del", ns, check=False)
            self._namespaces = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
