# SPDX-License-Identifier: MIT
"""The harness every integration test shares: processes, waiting, deadlines, ports, skips.

* ``Daemon``: a process a test starts and must stop. ``stop()`` sends SIGTERM (a graceful stop),
  waits for the exit, then fails the test when the process had died before teardown without the
  test killing it, when it did not stop within its deadline, when its exit code is not one the
  test allowed, or when its output holds a sanitizer report. The output is read only AFTER the
  exit, so LeakSanitizer's exit-time report and a crash in teardown are seen.
* ``wait_for``: polls a condition until a deadline (never a bare sleep where a condition exists).
* ``deadline``/``SLACK``: the one slack added to the times a test configures (see below).
* ``busy_fraction``/``assert_not_spinning``: whether a process is running or waiting to run,
  measured by the scheduler (so a spinning loop starved by a loaded machine is still seen).
* ``log_time``: when a daemon logged a line, by its own ts= (an event timed by its record).
* ``free_port``, ``require``.

tests/integration/test_harness.py proves on a deliberately broken daemon that each check fails.
"""
import os
import signal
import socket
import subprocess
import time

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")
SANITIZED = os.environ.get("KHA_SANITIZED") == "1"
# KHA_TEST_STRICT=1 (scripts/test.sh sets it as root or in CI): a missing prerequisite fails
STRICT = os.environ.get("KHA_TEST_STRICT") == "1"

# The slack a deadline gets over the time the protocol itself needs (its configured timers).
# What it absorbs is scheduling: the suite runs 4 workers on 2 cores, beside other work, and a
# process woken for a timer can wait a whole slice of other processes before it runs. It is
# additive (a late wake-up delays an event by a time, not by a fraction of the timer) and it
# grows under ASan+UBSan, which slow the daemon's every step 2-3 times. KHA_TEST_SLACK
# overrides it (seconds) for a machine slower still.
SLACK = float(os.environ.get("KHA_TEST_SLACK") or (3.0 if SANITIZED else 1.5))


def deadline(configured):
    """The time a test may wait for something the code promises within `configured` seconds."""
    return configured + SLACK


def log_time(log, words):
    """When a kha daemon logged the last line of `log` (its logfmt text) that holds `words`:
    seconds of the wall clock (time.time()'s), read from the line's ts= (millisecond
    resolution), or None when no line holds them. For timing an event by the daemon's own
    record rather than by when a test saw its effect."""
    import datetime

    stamps = [line.split(" ", 1)[0].removeprefix("ts=") for line in log.splitlines()
              if line.startswith("ts=") and words in line]
    if not stamps:
        return None
    return datetime.datetime.strptime(stamps[-1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def assert_no_sanitizer_report(text, what="kha"):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, f"{what}: sanitizer report:\n{text}"


def wait_for(cond, timeout, what="condition", interval=0.02, diag=None):
    """Polls cond() until it returns a true value (returned) or `timeout` seconds pass (the test
    fails, with diag() appended: logs, a status dump)."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            extra = f"\n{diag()}" if diag else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def assert_stays(cond, seconds, what, interval=0.02):
    """Something that must NOT change: cond() must hold through the whole window (fails at the
    first moment it does not). The one place a test waits a fixed time; tie `seconds` to the
    timer within which a broken implementation would show (a TTL), never to a guess."""
    end = time.monotonic() + seconds
    while True:
        assert cond(), f"{what}: no longer true after {seconds - (end - time.monotonic()):.2f}s"
        if time.monotonic() > end:
            return
        time.sleep(interval)


# Ports for what a test starts are picked at random in [PORT_LOW, PORT_HIGH): below the kernel's
# ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default), where the kernel
# never hands a port out by itself, and below the ports `kha lab up` picks (20000-31999). A port
# from the ephemeral range (a bind to port 0) could be given meanwhile to anyone asking the
# kernel for any port, or as the source port of any outgoing connection on the machine: between
# the pick and the daemon's bind, or while a stopped etcd member's port is free for seconds
# before its restart re-binds it (seen under load: the restart found its port taken).
# Every process of the suite (the xdist workers, and suites run side by side) locks the byte
# of the port in one shared file, held until the process exits: two never pick the same port.
PORT_LOW, PORT_HIGH = 10000, 20000
_handed_out = set()
_port_locks = None  # the shared lock file, open for the life of the process


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _claim(port):
    """Locks the port's byte of the shared file for this process; False: another process of
    the suite holds it."""
    import fcntl
    import tempfile

    global _port_locks
    if _port_locks is None:
        # never closed: closing any descriptor of the file would drop every lock held on it
        _port_locks = os.open(os.path.join(tempfile.gettempdir(), "kha-test-ports.lock"),
                              os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.lockf(_port_locks, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
        return True
    except OSError:
        return False


def free_port(host="127.0.0.1"):
    """A TCP port free a moment ago on `host` and the caller's alone for the rest of the
    session: never handed out before by any process of the suite, outside the range the kernel
    picks from (see PORT_LOW above), so nothing else on the machine takes it in between."""
    import random

    high = min(PORT_HIGH, _ephemeral_low())
    for _ in range(1000):
        port = random.randrange(PORT_LOW, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue  # in use here (a listener, a connection still in TIME_WAIT)
        if _claim(port):
            _handed_out.add(port)
            return port
    raise AssertionError(f"no free port in {PORT_LOW}-{high - 1} on {host} after 1000 tries")


def require(ok, what):
    """A prerequisite of the calling test: skipped without it on a developer's machine, a
    failure under KHA_TEST_STRICT=1 (the project's machine and CI), where nothing may hide."""
    import pytest  # here: the backend servers import this module outside pytest

    if ok:
        return
    if STRICT:
        pytest.fail(f"missing prerequisite (KHA_TEST_STRICT=1): {what}", pytrace=False)
    pytest.skip(what)


def _sched_ns(pid):
    """Nanoseconds the process's threads spent on a CPU plus waiting for one (runnable)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                run, wait, _ = f.read().split()
            total += int(run) + int(wait)
        except (OSError, ValueError):
            pass  # a thread that ended meanwhile
    return total


def busy_fraction(pid, window=1.0):
    """How much of `window` seconds the process wanted a CPU (running or runnable), summed over
    its threads: about 0 for a daemon blocked in poll, 1 or more for a spinning thread, however
    loaded the machine (a starved spinner waits on the run queue, which counts)."""
    a = _sched_ns(pid)
    t0 = time.monotonic()
    time.sleep(window)
    b = _sched_ns(pid)
    took = time.monotonic() - t0
    assert a is not None and b is not None, f"pid {pid} is gone"
    return (b - a) / 1e9 / took


def assert_not_spinning(pid, what, window=1.0, limit=0.5):
    busy = busy_fraction(pid, window)
    assert busy < limit, f"{what} is spinning: it wanted a CPU {busy:.0%} of {window}s"


class Daemon:
    """A process the test owns: output to a log file; stopped gracefully and checked by stop().

    argv: the command; log_path: its stdout+stderr; ok_codes: the exit codes of a clean stop
    (default 0); stop_signal: what stop() sends (SIGTERM); stop_timeout: how long a graceful
    stop may take (default deadline(10)). The process runs in a session of its own, so that the
    SIGKILL of a stop that timed out reaches what it forked too.

    A test that kills the daemon on purpose does it with kill() or signal(SIGKILL): that death is
    then expected. One that stops it itself (signal(SIGTERM)) must see an exit in ok_codes
    still. A test that waits for an exit it caused (wait()) checks that exit code itself.
    Any other exit before stop() (a crash, an abort, a sanitizer's exit code 99) fails the test
    at stop().
    """

    def __init__(self, argv, log_path, name=None, env=None, ok_codes=(0,), cwd=None,
                 stop_signal=signal.SIGTERM, stop_timeout=None, pass_fds=(), stdout=None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.log_path = str(log_path)
        self.ok_codes = tuple(ok_codes)
        self.stop_signal = stop_signal
        self.stop_timeout = deadline(10) if stop_timeout is None else stop_timeout
        self.killed = False     # the test killed it on purpose
        self.waited = False     # the test saw the exit itself (wait())
        self.asked = False      # the test sent it a stop signal itself (then it must exit clean)
        self.stopped = False
        self.returncode = None
        with open(self.log_path, "ab") as log:
            # stdout: a file of its own (the log then holds stderr only)
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=stdout or log,
                                         stderr=log if stdout else subprocess.STDOUT,
                                         start_new_session=True, env=env, cwd=cwd,
                                         pass_fds=pass_fds)
        self.pid = self.proc.pid

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def poll(self):
        return self.proc.poll()

    def signal(self, sig):
        if sig == signal.SIGKILL:
            self.killed = True
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.asked = True
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    send_signal = signal  # the subprocess.Popen spelling

    def kill(self):
        """SIGKILL on purpose (a test of what survives a crash); waits for the exit."""
        self.killed = True
        self._killpg()
        self.proc.wait(timeout=30)

    def _killpg(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout=None):
        """Waits for an exit the test caused (a signal, a command that ends) and returns its code,
        which the test then checks; stop() still reads the log for sanitizer reports."""
        rc = self.proc.wait(timeout=timeout)
        self.waited = True
        return rc

    def stop(self):
        """Stops the daemon gracefully and checks how it went (see the class); returns the exit
        code. Idempotent: a second call only returns the code."""
        if self.stopped:
            return self.returncode
        self.stopped = True
        problems = []
        rc = self.proc.poll()
        if rc is not None and not (self.killed or self.waited or self.asked):
            problems.append(f"exited with {self._describe(rc)} before teardown")
        elif rc is None:
            # a test that already asked it to stop is not asked twice: a second SIGTERM in the
            # middle of a graceful stop would be a different test (and may kill it outright)
            if not self.asked:
                try:
                    os.kill(self.pid, self.stop_signal)
                except ProcessLookupError:
                    pass
            try:
                rc = self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._killpg()
                rc = self.proc.wait(timeout=30)
                problems.append(f"did not stop within {self.stop_timeout:.1f}s of "
                                f"{signal.Signals(self.stop_signal).name}")
        if not problems and not self.killed and not self.waited and rc not in self.ok_codes:
            problems.append(f"stopped with {self._describe(rc)} (expected "
                            f"{' or '.join(map(str, self.ok_codes))})")
        self._killpg()  # anything it forked and left behind
        self.returncode = rc
        text = self.log()  # after the exit: exit-time sanitizer reports are in it now
        for marker in SANITIZER_MARKERS:
            if marker in text:
                problems.append(f"sanitizer report ({marker})")
                break
        if problems:
            raise AssertionError(f"{self.name} (pid {self.pid}): {'; '.join(problems)}\n"
                                 f"--- {self.log_path}\n{text[-6000:]}")
        return rc

    @staticmethod
    def _describe(rc):
        if rc is not None and rc < 0:
            return f"signal {signal.Signals(-rc).name}"
        return f"exit code {rc}"


def stop_all(daemons, stop=None):
    """Stops every daemon (d.stop(), or stop(d)), then fails with every problem found (one stuck
    daemon must not leave the others running)."""
    errors = []
    for d in daemons:
        try:
            stop(d) if stop else d.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("\n".join(errors))
