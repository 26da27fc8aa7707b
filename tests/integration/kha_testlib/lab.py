# SPDX-License-Identifier: MIT
"""Helpers for tests that run a real `kha lab` (etcd members with TLS) and for checking processes.

Use `lab_cleanup(dir)` in a finalizer: it runs `kha lab down` and, as a last resort, SIGKILLs
every process lab.json recorded (only if its start time still matches, as kha itself does).
"""
import json
import os
import signal
import subprocess

from conftest import run_kha


def proc_start_time(pid):
    """Start time (clock ticks since boot) of a live process, None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X", "x"):
        return None
    return int(fields[19])


def proc_alive(pid, start_time=None):
    """True while pid runs (not a zombie) and, if given, still has that start time."""
    if not pid:
        return False
    st = proc_start_time(pid)
    return st is not None and (start_time is None or st == start_time)


def read_state(lab_dir):
    with open(os.path.join(lab_dir, "lab.json")) as f:
        return json.load(f)


def recorded_procs(lab_dir):
    """[(master, process name, pid, start_time)] from lab.json; [] when there is none."""
    try:
        state = read_state(lab_dir)
    except (FileNotFoundError, ValueError):
        return []
    return [(m["name"], p["name"], p["pid"], p["start_time"])
            for m in state["masters"] for p in m["processes"]]


def read_env(lab_dir):
    """The ETCDCTL_* variables of DIR/env, by sourcing it in a shell."""
    out = subprocess.run(["sh", "-c", f". '{lab_dir}/env' && env"], capture_output=True,
                         text=True, check=True).stdout
    return {k: v for k, _, v in (line.partition("=") for line in out.splitlines())
            if k.startswith("ETCDCTL_")}


def etcdctl(lab_dir, *args, timeout=30, endpoints=None):
    """Runs etcdctl with the environment of DIR/env (as a user would after `. DIR/env`);
    endpoints replaces ETCDCTL_ENDPOINTS (etcdctl refuses a flag that shadows a variable)."""
    env = dict(os.environ, **read_env(lab_dir))
    if endpoints:
        env["ETCDCTL_ENDPOINTS"] = endpoints
    env.pop("http_proxy", None)
    env.pop("https_proxy", None)
    return subprocess.run(["etcdctl", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def lab_cleanup(lab_dir):
    """Finalizer: kha lab down, then SIGKILL whatever lab.json recorded and still runs."""
    procs = recorded_procs(lab_dir)
    if os.path.exists(os.path.join(lab_dir, "lab.json")):
        try:
            run_kha("lab", "down", "--dir", lab_dir, timeout=60, check_sanitizer=False)
        except subprocess.TimeoutExpired:
            pass
    for _, _, pid, start in procs:
        if proc_alive(pid, start):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
