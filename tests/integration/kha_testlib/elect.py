# SPDX-License-Identifier: MIT
"""Helpers for the kha elect / kha lock integration tests.

* ``Recorder``: the COMMAND the tests run under kha. Each child appends "start" and "stop" lines
  (identity, pid, fencing token, CLOCK_MONOTONIC ns) to a shared log, and holds an exclusive
  flock on one of N slot files while it runs: a child that finds every slot taken logs
  "OVERLAP". The flock is the kernel's own, exact detector of two children alive at once (the
  lock goes with the process, even on SIGKILL); the intervals are checked as well.
* ``KhaProc``: a kha process run by the harness (kha_testlib.process.Daemon): stopped gracefully
  and checked (exit code, sanitizer report read after the exit).
* ``wait_until``: kha_testlib.process.wait_for under its older name.
"""
import os
import subprocess
import sys
import time

from conftest import kha_bin
from kha_testlib.process import Daemon, stop_all
from kha_testlib.process import wait_for as wait_until  # noqa: F401 (the tests' name for it)

CHILD = r'''
import fcntl, os, signal, sys, time
log, lockdir, slots, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
gate = sys.argv[5] if len(sys.argv) > 5 else None
ident = os.environ.get("KHA_ID", "?")
token = os.environ.get("KHA_FENCING_TOKEN", "?")
held = None
for i in range(slots):
    fd = os.open(os.path.join(lockdir, "slot%d" % i), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = fd
        break
    except BlockingIOError:
        os.close(fd)
def write(ev):
    with open(log, "a") as f:
        f.write("%s %s %d %s %d\n" % (ev, ident, os.getpid(), token, time.monotonic_ns()))
        f.flush()
write("start" if held is not None else "OVERLAP")
def stop(sig, frm):
    write("stop")
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
if gate:
    while not os.path.exists(gate):
        time.sleep(0.01)
if hold > 0 or gate:
    time.sleep(hold)
    write("stop")
    sys.exit(0)
while True:
    time.sleep(3600)
'''


class Recorder:
    """The shared log of children's intervals; see the module docstring."""

    def __init__(self, directory, slots=1):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "intervals.log")
        self.lockdir = os.path.join(self.dir, "locks")
        os.makedirs(self.lockdir, exist_ok=True)
        self.script = os.path.join(self.dir, "child.py")
        with open(self.script, "w") as f:
            f.write(CHILD)
        self.slots = slots
        self.deaths = {}   # pid -> monotonic ns when seen gone (for SIGKILLed children)
        open(self.log, "a").close()

    def command(self, hold=0.0, gate=None):
        """The child's command: it holds its slot for `hold` seconds (0: until stopped), after
        the file `gate` exists when one is given (the test decides when children end)."""
        return [sys.executable, self.script, self.log, self.lockdir, str(self.slots), str(hold),
                *([str(gate)] if gate else [])]

    def events(self):
        out = []
        with open(self.log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5:
                    out.append({"ev": parts[0], "id": parts[1], "pid": int(parts[2]),
                                "token": parts[3], "t": int(parts[4])})
        return out

    def starts(self):
        return [e for e in self.events() if e["ev"] == "start"]

    def running(self):
        """Children started and not stopped, and still alive."""
        ev = self.events()
        stopped = {e["pid"] for e in ev if e["ev"] == "stop"}
        return [e for e in ev if e["ev"] == "start" and e["pid"] not in stopped
                and pid_alive(e["pid"])]

    def note_dead(self, pid):
        """Records that pid is gone now (an upper bound of its end), once."""
        self.deaths.setdefault(pid, time.monotonic_ns())

    def intervals(self):
        """[(start_ns, end_ns or None, id, pid, token)] in start order."""
        ev = self.events()
        stops = {e["pid"]: e["t"] for e in ev if e["ev"] == "stop"}
        res = []
        for e in ev:
            if e["ev"] != "start":
                continue
            end = stops.get(e["pid"], self.deaths.get(e["pid"]))
            if end is None and not pid_alive(e["pid"]):
                end = self.deaths.setdefault(e["pid"], time.monotonic_ns())
            res.append((e["t"], end, e["id"], e["pid"], e["token"]))
        return sorted(res)

    def assert_safe(self, max_concurrent=None):
        """No OVERLAP from the flock detector, and never more than N intervals at once."""
        n = max_concurrent or self.slots
        ev = self.events()
        overlaps = [e for e in ev if e["ev"] == "OVERLAP"]
        assert not overlaps, f"children overlapped (flock): {overlaps}\n{self.dump()}"
        points = []
        for start, end, *_ in self.intervals():
            points.append((start, 1))
            points.append((end if end is not None else float("inf"), -1))
        # at equal times an end comes before a start
        cur = 0
        for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
            cur += delta
            assert cur <= n, f"more than {n} children at once:\n{self.dump()}"

    def dump(self):
        with open(self.log) as f:
            return f.read()


def pid_alive(pid):
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


class KhaProc(Daemon):
    """A kha process (a kha_testlib.process.Daemon): in its own process group, output to a
    file; close() stops it gracefully and fails on a crash, a bad exit or a sanitizer report."""

    def __init__(self, args, log_path, env=None, ok_codes=(0,)):
        args = [str(a) for a in args]
        super().__init__([kha_bin(), *args], log_path, name=f"kha {' '.join(args[:1])} "
                         f"({os.path.basename(str(log_path))})", env=env, ok_codes=ok_codes)
        self.args = self.argv

    def kill_group(self):
        """SIGKILL to the whole group on purpose (kha and the child it runs)."""
        self.killed = True
        self._killpg()

    def wait(self, timeout=15):
        """Waits for an exit the test caused and returns its code; on a timeout the group is
        killed and the test fails."""
        try:
            return super().wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            self.proc.wait(timeout=10)
            raise

    def close(self):
        self.stop()


class Procs:
    """Tracks KhaProcs and closes them all (a fixture yields one)."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.procs = []

    def start(self, args, name, env=None, ok_codes=(0,)):
        p = KhaProc(args, os.path.join(self.dir, f"{name}.log"), env=env, ok_codes=ok_codes)
        self.procs.append(p)
        return p

    def logs(self):
        """Every process's log, for failure messages."""
        return "\n".join(f"--- {p.log_path}\n{p.log()}" for p in self.procs)

    def close(self):
        procs, self.procs = self.procs, []
        stop_all(procs)
