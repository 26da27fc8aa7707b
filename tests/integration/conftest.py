# SPDX-License-Identifier: MIT
"""Shared fixtures: the kha binary under test, running it with sanitizer checks; the run's
rules (strict mode, the report scripts/test.sh prints).

Fixtures that start real components (etcd members, TLS servers, namespaces) live in helper
modules next to this file (kha_testlib/) and always stop what they started, even on failure;
kha_testlib/process.py holds the harness they share (Daemon, wait_for, deadline, free_port).
"""
import json
import os
import subprocess
import time

import pytest

from kha_testlib.process import (SANITIZER_MARKERS, STRICT, assert_no_sanitizer_report,  # noqa: F401
                                 free_port)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kha_bin():
    path = os.environ.get("KHA_BIN", os.path.join(ROOT, "build", "src", "kha"))
    if not os.access(path, os.X_OK):
        pytest.exit(f"kha binary not found at {path}: build first (make) or set KHA_BIN", 2)
    return path


def tool_bin(name):
    """A test-only program built beside kha (tests/tools/), in the same build directory."""
    build = os.path.dirname(os.path.dirname(kha_bin()))
    return os.path.join(build, "tests", "tools", name)


def run_kha(*args, timeout=30, check_sanitizer=True, **kw):
    """Runs kha with args; returns CompletedProcess (text). Fails the test on a sanitizer report."""
    proc = subprocess.run([kha_bin(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check_sanitizer:
        assert_no_sanitizer_report(proc.stderr, "kha " + " ".join(map(str, args)))
    return proc


@pytest.fixture
def kha():
    return run_kha


@pytest.fixture(scope="session")
def k8s(tmp_path_factory):
    """The real control plane (kha_testlib/k8s.py), one per session for the tests of xdist group
    "k8s" (they run on one worker). Tests must leave it as they found it."""
    from kha_testlib.k8s import start_lab, stop_lab
    lab = start_lab(tmp_path_factory)
    yield lab
    stop_lab(lab)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "early: a long test, started first so that it does not lengthen the run")


def pytest_collection_modifyitems(config, items):
    """Tests marked early run first: pytest-xdist hands tests out in collection order, so a
    long test collected last would run alone at the end."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("early") else 1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under KHA_TEST_STRICT=1 a skip is a failure: on the project's machine and in CI every
    prerequisite is there, and a test that does not run must not read as a pass."""
    outcome = yield
    rep = outcome.get_result()
    if STRICT and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under KHA_TEST_STRICT=1, where nothing may skip: {reason}"


def pytest_sessionstart(session):
    session.config._kha_t0 = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Writes what ran, what was skipped and why, to $KHA_TEST_REPORT (JSON) for the summary
    line of scripts/test.sh."""
    path = os.environ.get("KHA_TEST_REPORT")
    if not path or hasattr(config, "workerinput"):
        return
    stats = terminalreporter.stats

    def count(key):
        return len([r for r in stats.get(key, []) if getattr(r, "when", "call") in
                    ("call", "setup", "teardown", "collect")])

    skipped = []
    for r in stats.get("skipped", []):
        reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
        skipped.append({"test": r.nodeid, "reason": reason.removeprefix("Skipped: ")})
    report = {"passed": len([r for r in stats.get("passed", []) if r.when == "call"]),
              "failed": count("failed") + count("error"), "skipped": skipped,
              "seconds": time.monotonic() - getattr(config, "_kha_t0", time.monotonic())}
    with open(path, "w") as f:
        json.dump(report, f)
