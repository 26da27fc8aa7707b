# SPDX-License-Identifier: MIT
"""Shared fixtures: the kha binary under test, running it with sanitizer checks, free ports.

Fixtures that start real components (etcd members, TLS servers, namespaces) live in helper
modules next to this file (kha_testlib/) and always stop what they started, even on failure.
"""
import os
import socket
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "SUMMARY: UndefinedBehaviorSanitizer")


def kha_bin():
    path = os.environ.get("KHA_BIN", os.path.join(ROOT, "build", "src", "kha"))
    if not os.access(path, os.X_OK):
        pytest.exit(f"kha binary not found at {path}: build first (make) or set KHA_BIN", 2)
    return path


def tool_bin(name):
    """A test-only program built beside kha (tests/tools/), in the same build directory."""
    build = os.path.dirname(os.path.dirname(kha_bin()))
    return os.path.join(build, "tests", "tools", name)


def assert_no_sanitizer_report(text, what="kha"):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, f"{what}: sanitizer report:\n{text}"


def run_kha(*args, timeout=30, check_sanitizer=True, **kw):
    """Runs kha with args; returns CompletedProcess (text). Fails the test on a sanitizer report."""
    proc = subprocess.run([kha_bin(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if check_sanitizer:
        assert_no_sanitizer_report(proc.stderr, "kha " + " ".join(map(str, args)))
    return proc


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (bind to 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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
