# SPDX-License-Identifier: MIT
"""The harness itself: a deliberately broken daemon must make a test fail.

The daemon is a small C program compiled here with AddressSanitizer (in both passes of the
suite, so the leak is seen without the sanitized build too). Each way of breaking is one mode:
a leak at exit, a crash before teardown, a spinning loop, a stop signal ignored. A clean mode
shows the same checks pass on a daemon that does nothing wrong (they are not always-failing).
"""
import os
import shutil
import signal
import subprocess

import pytest

from kha_testlib.process import (Daemon, assert_not_spinning, busy_fraction, require, stop_all,
                                 wait_for)

BROKEN = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static void *volatile keep;

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "clean";
	if (strcmp(mode, "deaf") != 0)
		signal(SIGTERM, on_term);
	else
		signal(SIGTERM, SIG_IGN);
	printf("ready\n");
	fflush(stdout);
	if (strcmp(mode, "crash") == 0) {
		volatile int *p = NULL;
		*p = 1;
	}
	while (!stop) {
		if (strcmp(mode, "spin") != 0)
			pause();
	}
	if (strcmp(mode, "leak") == 0) {
		keep = malloc(64);
		memset(keep, 1, 64);
		keep = NULL;
	}
	return 0;
}
"""


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("clang")
    require(cc, "a C compiler (cc) for the broken daemon")
    d = tmp_path_factory.mktemp("broken")
    (d / "broken.c").write_text(BROKEN)
    out = d / "broken-daemon"
    subprocess.run([cc, "-g", "-O0", "-fsanitize=address", "-o", str(out), str(d / "broken.c")],
                   check=True, capture_output=True, timeout=120)
    return str(out)


def start(broken, tmp_path, mode):
    # LeakSanitizer on, whatever the outer run's options (the plain pass sets none)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=99")
    d = Daemon([broken, mode], tmp_path / f"{mode}.log", name=f"broken-daemon {mode}", env=env)
    wait_for(lambda: "ready" in d.log(), 10, f"{mode} daemon ready")
    return d


def test_clean_daemon_passes_every_check(broken, tmp_path):
    d = start(broken, tmp_path, "clean")
    assert_not_spinning(d.pid, "the clean daemon")
    assert d.stop() == 0


def test_leak_at_exit_fails_the_test(broken, tmp_path):
    d = start(broken, tmp_path, "leak")
    assert "LeakSanitizer" not in d.log()  # not yet: the report is written at exit
    with pytest.raises(AssertionError, match=r"sanitizer report \(ERROR: LeakSanitizer\)"):
        d.stop()
    assert d.returncode == 99


def test_crash_before_teardown_fails_the_test(broken, tmp_path):
    d = start(broken, tmp_path, "crash")
    wait_for(lambda: not d.alive(), 10, "the crash")
    with pytest.raises(AssertionError, match="before teardown"):
        d.stop()


def test_spinning_loop_fails_the_test(broken, tmp_path):
    d = start(broken, tmp_path, "spin")
    try:
        # the scheduler's count (running + waiting to run) sees a spinner however starved it is
        assert busy_fraction(d.pid, 0.5) > 0.9
        with pytest.raises(AssertionError, match="is spinning"):
            assert_not_spinning(d.pid, "the spinning daemon")
    finally:
        d.stop()


def test_ignored_stop_signal_fails_the_test(broken, tmp_path):
    d = start(broken, tmp_path, "deaf")
    d.stop_timeout = 1.0
    with pytest.raises(AssertionError, match="did not stop within 1.0s of SIGTERM"):
        d.stop()
    assert d.returncode == -signal.SIGKILL and not d.alive()


def test_a_killed_daemon_is_expected_and_others_are_still_stopped(broken, tmp_path):
    """kill() is a test's deliberate crash: no failure for it. stop_all stops every daemon even
    when one of them fails, then reports that one."""
    killed = start(broken, tmp_path, "clean")
    killed.kill()
    leaking = start(broken, tmp_path, "leak")
    clean = start(broken, tmp_path, "clean")
    with pytest.raises(AssertionError) as e:
        stop_all([killed, leaking, clean])
    assert "broken-daemon leak" in str(e.value) and "broken-daemon clean" not in str(e.value)
    assert not clean.alive() and clean.returncode == 0
