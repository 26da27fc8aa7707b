# SPDX-License-Identifier: MIT
"""Helpers for the kha elect / kha lock integration tests.

* ``Recorder``: the COMMAND the tests run under kha. Each child appends "start" and "stop" lines
  (identity, pid, fencing token, CLOCK_MONOTONIC ns) to a shared log, and holds an exclusive
  flock on one of N slot files while it runs: a child that finds every slot taken logs
  "OVERLAP". The flock is the kernel's own, exact detector of two children alive at once (the
  lock goes with the process, even on SIGKILL); the intervals are checked as well.
* ``KhaProc``: a kha process in its own process group, stderr to a file, always killed.
* ``wait_until``: poll a condition with a deadline (never a bare sleep).
"""
import os
import signal
import subprocess
import sys
import time

from conftest import assert_no_sanitizer_report, kha_bin

CHILD = r'''
import fcntl, os, signal, sys, time
log, lockdir, slots, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
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
if hold > 0:
    time.sleep(hold)
    write("stop")
    sys.exit(0)
while True:
    time.sleep(3600)
'''


def wait_until(cond, timeout=10.0, what="condition", interval=0.02, diag=None):
    """Polls cond() until true (returned); on timeout fails, with diag() (e.g. logs) appended."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{diag()}" if diag else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


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

    def command(self, hold=0.0):
        return [sys.executable, self.script, self.log, self.lockdir, str(self.slots), str(hold)]

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


class KhaProc:
    """A kha process in its own process group; stderr to a file."""

    def __init__(self, args, log_path, env=None):
        self.args = [kha_bin(), *map(str, args)]
        self.log_path = str(log_path)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=env)
        self.pid = self.proc.pid

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def kill_group(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout=15):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            self.proc.wait(timeout=10)
            raise

    def close(self, check_sanitizer=True):
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        if check_sanitizer:
            assert_no_sanitizer_report(self.log(), " ".join(self.args))


class Procs:
    """Tracks KhaProcs and closes them all (a fixture yields one)."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.procs = []

    def start(self, args, name, env=None):
        p = KhaProc(args, os.path.join(self.dir, f"{name}.log"), env=env)
        self.procs.append(p)
        return p

    def logs(self):
        """Every process's log, for failure messages."""
        return "\n".join(f"--- {p.log_path}\n{p.log()}" for p in self.procs)

    def close(self):
        errors = []
        for p in self.procs:
            try:
                p.close()
            except AssertionError as e:
                errors.append(str(e))
        self.procs = []
        if errors:
            raise AssertionError("\n".join(errors))
