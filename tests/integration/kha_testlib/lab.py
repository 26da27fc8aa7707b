# SPDX-License-Identifier: MIT
"""Helpers for tests that run a real `kha lab` (etcd members with TLS) and for checking processes.

Use `lab_cleanup(dir)` in a finalizer: it runs `kha lab down` and, as a last resort, SIGKILLs
every process lab.json recorded (only if its start time still matches, as kha itself does).
"""
import json
import os
import signal
import subprocess

from conftest import assert_no_sanitizer_report, run_kha
from kha_testlib.process import wait_for  # noqa: F401 (the lab tests import it from here)


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


def proc_state(pid):
    """One-letter state of /proc/PID/stat (R, S, T, Z...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def children_map():
    """{ppid: [(pid, start_time)]} of every live process."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] in ("Z", "X", "x"):
            continue
        kids.setdefault(int(fields[1]), []).append((int(name), int(fields[19])))
    return kids


def descendants(pid, start_time=None):
    """[(pid, start_time)] of every live descendant of pid (kha elect -> guard -> backup)."""
    if not proc_alive(pid, start_time):
        return []
    kids, out, todo = children_map(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


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
    """[(owner, process name, pid, start_time)] from lab.json, the masters' ("m1"...) then the
    node's ("node", "proxy"); [] when there is none."""
    try:
        state = read_state(lab_dir)
    except (FileNotFoundError, ValueError):
        return []
    procs = [(m["name"], p["name"], p["pid"], p["start_time"])
             for m in state["masters"] for p in m["processes"]]
    node = state.get("node") or {}
    procs += [("node", p["name"], p["pid"], p["start_time"]) for p in node.get("processes", [])]
    for lb in (state.get("kubernetes") or {}).get("lbs", []):
        procs += [(lb["name"], p["name"], p["pid"], p["start_time"]) for p in lb["processes"]]
    return procs


def lab_namespaces(lab_dir):
    """The network namespaces of a Kubernetes lab (none for the loopback lab)."""
    try:
        state = read_state(lab_dir)
    except (FileNotFoundError, ValueError):
        return []
    k8s = state.get("kubernetes")
    if not k8s:
        return []
    hosts = state["masters"] + [state["node"]] + k8s["lbs"]
    return [h["netns"] for h in hosts] + [k8s["net"] + "-sw"]


def lab_pids(lab_dir):
    """{(pid, start_time)} of every live process of the lab: recorded ones and their
    descendants (the backups that kha elect runs)."""
    out = set()
    for _, _, pid, start in recorded_procs(lab_dir):
        if proc_alive(pid, start):
            out.add((pid, start))
            out.update(descendants(pid, start))
    return out


def master_pids(lab_dir, master):
    """{(pid, start_time)} of the live processes of one master, descendants included."""
    out = set()
    for owner, _, pid, start in recorded_procs(lab_dir):
        if owner == master and proc_alive(pid, start):
            out.add((pid, start))
            out.update(descendants(pid, start))
    return out


def assert_logs_clean(lab_dir):
    """No sanitizer report in any log of the lab (kha proxy, elect and backup run under the
    same sanitizers as the kha under test)."""
    for root, _, files in os.walk(lab_dir):
        for name in files:
            if name.endswith(".log"):
                with open(os.path.join(root, name), errors="replace") as f:
                    assert_no_sanitizer_report(f.read(), os.path.join(root, name))


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
    """Finalizer: kha lab down, then SIGKILL whatever lab.json recorded (or was started by it)
    and still runs."""
    procs = recorded_procs(lab_dir)
    extra = lab_pids(lab_dir)
    namespaces = lab_namespaces(lab_dir)
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
    for pid, start in extra:
        if proc_alive(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for ns in namespaces:
        if os.path.exists(f"/run/netns/{ns}"):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)
