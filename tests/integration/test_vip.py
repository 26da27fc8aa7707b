# SPDX-License-Identifier: MIT
"""kha vip: VRRPv3 between hosts in network namespaces, alone and with keepalived.

Each test builds its own segment (kha_testlib.vrrp_lab: a bridge namespace, 2-3 hosts, a client)
with unique names, and deletes it in teardown even on failure. Needs root: without it the tests
skip on a developer's machine and fail under KHA_TEST_STRICT=1.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import assert_no_sanitizer_report, kha_bin
from kha_testlib.process import deadline, log_time, require, stop_all
from kha_testlib.vrrp_lab import VrrpLab, sh, wait_for


@pytest.fixture(autouse=True)
def needs_root():
    require(os.geteuid() == 0, "needs root (network namespaces)")


def master_down(prio, interval):
    """RFC 5798: 3 * Master_Adver_Interval + ((256 - priority) * Master_Adver_Interval) / 256."""
    return 3 * interval + (256 - prio) * interval / 256


@pytest.fixture
def make_lab(tmp_path):
    labs = []

    def make(hosts=2):
        lab = VrrpLab(hosts=hosts, tmpdir=str(tmp_path))
        labs.append(lab)
        return lab

    yield make
    # every lab is closed (its namespaces deleted) before any failure is raised
    stop_all(labs, lambda lab: lab.close())


def start_vip(lab, host, prio, *extra, interval="100ms", vrid=51, tag=""):
    args = [kha_bin(), "vip", "--interface", "eth0", "--vip", f"{lab.vip}/24", "--vrid", vrid,
            "--priority", prio, "--advert-interval", interval, *extra]
    return lab.spawn(host, f"vip-{host}{tag}", args)


def one_holder(lab, among=None):
    """The single host holding the VIP among `among` (default all), else None."""
    h = [x for x in lab.holders() if among is None or x in among]
    return h[0] if len(h) == 1 else None


def ns_http(lab, host, path, port=9444):
    code = textwrap.dedent(f"""
        import urllib.request, sys
        try:
            r = urllib.request.urlopen("http://127.0.0.1:{port}{path}", timeout=2)
            sys.stdout.write(r.read().decode())
        except Exception as e:
            sys.stdout.write("ERR " + str(e)); sys.exit(1)
    """)
    r = sh("ip", "netns", "exec", host, sys.executable, "-c", code, check=False)
    return r.stdout if r.returncode == 0 else None


def status(lab, host):
    body = ns_http(lab, host, "/status")
    return json.loads(body) if body else None


def stop(p, sig=signal.SIGTERM):
    """SIGTERM: the harness's checked graceful stop (exit code, sanitizer report); SIGKILL: a
    crash on purpose. Returns the exit code."""
    if sig == signal.SIGKILL:
        p.kill()
        return p.proc.returncode
    assert sig == signal.SIGTERM
    return p.stop()


# ---- bad input -------------------------------------------------------------------------------

def test_bad_input_one_line_error_and_nothing_changed(make_lab):
    lab = make_lab(hosts=1)
    h = lab.hosts[0]
    before = sh("ip", "-n", h, "-4", "-o", "addr").stdout
    cases = [
        (["--vip", "10.1.2/24", "--vrid", "5", "--interface", "eth0"], 64, "--vip"),
        (["--vip", "10.1.2.3/33", "--vrid", "5", "--interface", "eth0"], 64, "--vip"),
        (["--vip", f"{lab.vip}/24", "--vrid", "0", "--interface", "eth0"], 64, "--vrid"),
        (["--vip", f"{lab.vip}/24", "--vrid", "256", "--interface", "eth0"], 64, "--vrid"),
        (["--vip", f"{lab.vip}/24", "--vrid", "5", "--interface", "eth0", "--priority", "255"],
         64, "--priority"),
        (["--vip", f"{lab.vip}/24", "--vrid", "5", "--interface", "eth0",
          "--advert-interval", "15ms"], 64, "--advert-interval"),
        (["--vip", f"{lab.vip}/24", "--vrid", "5"], 64, "--interface is required"),
        (["--vip", f"{lab.vip}/24", "--vrid", "5", "--interface", "nosuch0"], 78, "nosuch0"),
        # lo has no Ethernet address to announce the VIP from
        (["--vip", f"{lab.vip}/24", "--vrid", "5", "--interface", "lo"], 78, "lo"),
        # the host's own address: configured, not by kha vip
        (["--vip", f"{lab.addr[h]}/24", "--vrid", "5", "--interface", "eth0"], 78,
         "already configured"),
        (["--config", os.path.join(lab.tmpdir, "missing.yaml")], 78, "missing.yaml"),
    ]
    for args, code, needle in cases:
        r = subprocess.run(["ip", "netns", "exec", h, kha_bin(), "vip", *args],
                           capture_output=True, text=True, timeout=20)
        assert_no_sanitizer_report(r.stderr)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kha vip: "), (args, r.stderr)
        assert needle in lines[0], (args, r.stderr)
    assert sh("ip", "-n", h, "-4", "-o", "addr").stdout == before
    r = subprocess.run([kha_bin(), "vip", "--help"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "Example" in r.stdout and "--advert-interval" in r.stdout


# ---- election and failover ---------------------------------------------------------------------

def test_highest_priority_is_the_only_master_and_client_reaches_it(make_lab):
    lab = make_lab(hosts=3)
    h1, h2, h3 = lab.hosts
    for h, prio in ((h1, 100), (h2, 150), (h3, 120)):
        start_vip(lab, h, prio)
    wait_for(lambda: lab.holders() == [h2], 10, what="h2 alone holds the VIP")
    assert lab.vip_label(h2) == "eth0:kha"
    assert wait_for(lambda: lab.reach(), 10, what="client reaches the VIP") == h2
    # stays stable over several master-down intervals
    until = time.monotonic() + 5 * master_down(100, 0.1)
    while time.monotonic() < until:
        assert lab.holders() == [h2]
        time.sleep(0.05)
    s2, s1 = status(lab, h2), status(lab, h1)
    assert s2["state"] == "MASTER" and s2["holds_vip"] and s2["priority"] == 150
    assert s1["state"] == "BACKUP" and s1["master"] == lab.addr[h2] and not s1["holds_vip"]
    assert s1["adverts_received"] > 0 and s2["adverts_sent"] > 0
    metrics = ns_http(lab, h2, "/metrics")
    assert 'kha_vip_state{interface="eth0",vrid="51",state="MASTER"} 1' in metrics
    assert f'kha_vip_master_info{{interface="eth0",vrid="51",address="{lab.addr[h2]}"}} 1' \
        in metrics
    assert ns_http(lab, h1, "/readyz") is not None
    # kha vip status: a table, or the /status JSON
    r = subprocess.run(["ip", "netns", "exec", h2, kha_bin(), "vip", "status"],
                       capture_output=True, text=True, timeout=20)
    assert_no_sanitizer_report(r.stderr)
    assert r.returncode == 0 and "state      MASTER" in r.stdout and "(held here)" in r.stdout
    r = subprocess.run(["ip", "netns", "exec", h1, kha_bin(), "vip", "status", "-o", "json"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and json.loads(r.stdout)["state"] == "BACKUP"
    r = subprocess.run(["ip", "netns", "exec", h1, kha_bin(), "vip", "status",
                        "--metrics-addr", "127.0.0.1:1"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 69 and len(r.stderr.strip().splitlines()) == 1


def test_sigkill_of_master_backup_takes_over_within_master_down_interval(make_lab):
    lab = make_lab(hosts=3)
    h1, h2, h3 = lab.hosts
    procs = {h: start_vip(lab, h, prio) for h, prio in ((h1, 200), (h2, 150), (h3, 100))}
    wait_for(lambda: lab.holders() == [h1], 10, what="h1 holds the VIP")
    assert wait_for(lambda: lab.reach(), 10) == h1
    # the master host dies: process killed, cable cut (so it answers no ARP either)
    procs[h1].send_signal(signal.SIGKILL)
    lab.link(h1, False)
    t0 = time.monotonic()
    # h2 (150) wins the race against h3 (100): its skew time is shorter
    wait_for(lambda: one_holder(lab, [h2, h3]), deadline(master_down(150, 0.1)), interval=0.01,
             what="a backup takes the VIP")
    took = time.monotonic() - t0
    assert one_holder(lab, [h2, h3]) == h2, lab.holders()
    assert took <= deadline(master_down(150, 0.1))
    assert wait_for(lambda: lab.reach(0.5), 10, what="client reaches the new master") == h2
    # the dead host comes back: a restart removes the VIP the killed run left, and (higher
    # priority, preempt on) takes the VIP back
    lab.link(h1, True)
    assert lab.vip_label(h1) is None  # its guard removed it when it died
    start_vip(lab, h1, 200, tag="-2")
    wait_for(lambda: lab.holders() == [h1], 10, what="h1 preempts after restart")
    assert wait_for(lambda: lab.reach(0.5) == h1, 10)


def guard_of(pid):
    """The pid of kha vip's guard (its child named kha-vip-guard)."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)
                comm = fields[0].split("(", 1)[1]
                if comm == "kha-vip-guard" and int(fields[1].split()[1]) == pid:
                    return int(d)
            except (OSError, IndexError, ValueError):
                pass
    return None


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP", "SIGSTOP daemon and guard"])
def test_a_killed_or_frozen_master_leaves_no_second_holder(make_lab, fault):
    """The master host stays on the segment (keepalived's master would keep answering ARP for
    the VIP): SIGKILL (the guard removes the VIP at once), SIGSTOP (the guard removes it after
    a Master_Down_Interval without refresh), SIGSTOP of both (the kernel removes it when its
    valid lifetime ends). From Master_Down_Interval + one advert interval on, one holder."""
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    p1 = start_vip(lab, h1, 200, interval="1s")
    start_vip(lab, h2, 100, interval="1s")
    wait_for(lambda: lab.holders() == [h1], 15, what="h1 holds the VIP")
    guard = wait_for(lambda: guard_of(p1.pid), 5, what="the guard of h1")
    # the VIP carries a finite lifetime: the kernel counts it down between refreshes
    out = sh("ip", "-n", h1, "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert f" {lab.vip}/24 " in out and "valid_lft forever" not in out.split(lab.vip)[1], out
    frozen = []
    try:
        if fault == "SIGKILL":
            p1.signal(signal.SIGKILL)  # through the harness: a death the test caused
        else:
            os.kill(p1.pid, signal.SIGSTOP)
            frozen.append(p1.pid)
            if fault != "SIGSTOP":
                os.kill(guard, signal.SIGSTOP)
                frozen.append(guard)
        t0 = time.monotonic()
        gone = master_down(100, 1.0) + 1.0  # h1 no longer holds it from here on
        bound = deadline(gone)  # and h2 does, give or take scheduling
        while time.monotonic() - t0 < bound + 1.5:
            held, t = lab.holders(), time.monotonic() - t0
            if t > gone:
                assert h1 not in held, f"{fault}: {held} hold the VIP {t:.2f}s after"
            if t > bound:
                assert held == [h2], f"{fault}: {held} hold the VIP {t:.2f}s after"
            time.sleep(0.05)
        assert wait_for(lambda: lab.reach(0.5), 10, what="client reaches h2") == h2
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    if fault == "SIGKILL":
        wait_for(lambda: guard_of(p1.pid) is None, 5, what="the guard gone with its daemon")


def test_sigterm_of_master_hands_over_at_once(make_lab):
    # at 1 s adverts a silent master costs 3.6 s; priority 0 cuts it to Skew_Time (0.6 s)
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    p1 = start_vip(lab, h1, 150, interval="1s")
    p2 = start_vip(lab, h2, 100, interval="1s")
    wait_for(lambda: lab.holders() == [h1], 15, what="h1 holds the VIP")
    wait_for(lambda: (status(lab, h2) or {}).get("master") == lab.addr[h1], 10)
    assert stop(p1) == 0
    assert h1 not in lab.holders()
    wait_for(lambda: lab.holders() == [h2], 10, interval=0.01, what="h2 takes over")
    # timed by the two daemons' own logs (one wall clock), from h1 leaving MASTER to h2 taking
    # it: h1's whole stop (under ASan its exit-time leak scan too) is no part of the handover
    left = log_time(lab.log(p1), "from=MASTER to=INIT")
    took = wait_for(lambda: log_time(lab.log(p2), "from=BACKUP to=MASTER"), deadline(0),
                    what="h2's MASTER transition in its log") - left
    assert 0 < took < master_down(100, 1.0) / 2, took
    assert took < deadline((256 - 100) / 256), took
    assert "from=MASTER to=INIT" in lab.log(p1)
    assert wait_for(lambda: lab.reach(0.5), 10) == h2


def test_cut_cable_master_faults_and_comes_back(make_lab):
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    start_vip(lab, h1, 150, "--garp-repeat", "0")
    start_vip(lab, h2, 100, "--garp-repeat", "0")
    wait_for(lambda: lab.holders() == [h1], 10)
    # h1's cable is cut while it runs: h1 loses carrier, goes FAULT and drops the VIP (else it
    # would come back as a second master the client no longer follows); h2 takes over
    lab.link(h1, False)
    wait_for(lambda: lab.holders() == [h2], 5, what="h2 alone")
    wait_for(lambda: (status(lab, h1) or {}).get("state") == "FAULT", 5)
    assert wait_for(lambda: lab.reach(0.5), 10) == h2
    time.sleep(1.2)  # past the client's ARP locktime (1 s), so an ARP update can apply
    # healed: h1 rejoins, preempts with a real takeover (gratuitous ARPs), the client follows
    lab.link(h1, True)
    wait_for(lambda: lab.holders() == [h1], 5, what="one master again")
    assert wait_for(lambda: lab.reach(0.3) == h1, 3, what="client back on h1")


def test_preemption_and_no_preempt(make_lab):
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    p1 = start_vip(lab, h1, 150)
    start_vip(lab, h2, 100)
    wait_for(lambda: lab.holders() == [h1], 10)
    assert stop(p1) == 0
    wait_for(lambda: lab.holders() == [h2], 10)
    # a higher priority coming back takes over (preempt is the default)
    p1 = start_vip(lab, h1, 150, tag="-2")
    wait_for(lambda: lab.holders() == [h1], 10, what="preemption")
    assert stop(p1) == 0
    wait_for(lambda: lab.holders() == [h2], 10)
    # with --no-preempt it accepts the working lower master
    p1 = start_vip(lab, h1, 150, "--no-preempt", tag="-3")
    wait_for(lambda: (status(lab, h1) or {}).get("state") == "BACKUP", 10)
    until = time.monotonic() + 5 * master_down(150, 0.1)
    while time.monotonic() < until:
        assert lab.holders() == [h2]
        time.sleep(0.05)
    assert status(lab, h1)["master"] == lab.addr[h2]


def test_sighup_applies_a_new_priority_and_moves_the_vip(make_lab):
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    conf = os.path.join(lab.tmpdir, "vip-h1.yaml")

    def write(prio, extra=""):
        with open(conf, "w") as f:
            f.write(f"interface: eth0\nvip: {lab.vip}/24\nvrid: 51\npriority: {prio}\n"
                    f"advert-interval: 100ms\n{extra}")
    write(150)
    p1 = lab.spawn(h1, f"vip-{h1}", [kha_bin(), "vip", "--config", conf])
    start_vip(lab, h2, 100)
    wait_for(lambda: lab.holders() == [h1], 10)
    # maintenance of h1: a priority below h2's, then SIGHUP; h2 (preempt) takes the VIP
    write(50)
    p1.send_signal(signal.SIGHUP)
    wait_for(lambda: (status(lab, h1) or {}).get("priority") == 50, 10, what="reloaded")
    wait_for(lambda: lab.holders() == [h2], deadline(5 * master_down(100, 0.1)),
             what="h2 preempts the lowered master")
    assert status(lab, h1)["state"] == "BACKUP"
    # a key that needs a restart is kept, with a warning; a bad file changes nothing
    write(50, "vrid: 52\n")
    p1.send_signal(signal.SIGHUP)
    wait_for(lambda: 'keys="vrid"' in lab.log(p1), 10, what="the restart warning")
    write("high")
    p1.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration not reloaded" in lab.log(p1), 10, what="the refusal")
    assert status(lab, h1)["priority"] == 50 and lab.holders() == [h2]
    # back to 150: h1 preempts again
    write(150)
    p1.send_signal(signal.SIGHUP)
    wait_for(lambda: lab.holders() == [h1], deadline(5 * master_down(150, 0.1)),
             what="h1 preempts again")
    assert stop(p1) == 0


def test_unicast_peers(make_lab):
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    p1 = start_vip(lab, h1, 150, "--peer", lab.addr[h2])
    # h2 from a config file (a list value, and flags over the file: priority)
    conf = os.path.join(lab.tmpdir, "vip-h2.yaml")
    with open(conf, "w") as f:
        f.write(f"interface: eth0\nvip: {lab.vip}/24\nvrid: 51\npriority: 50\n"
                f"advert-interval: 100ms\npeer: [{lab.addr[h1]}]\n")
    lab.spawn(h2, f"vip-{h2}", [kha_bin(), "vip", "--config", conf, "--priority", 100])
    wait_for(lambda: lab.holders() == [h1], 10)
    wait_for(lambda: (status(lab, h2) or {}).get("adverts_received", 0) > 3, 10)
    assert status(lab, h2)["priority"] == 100
    assert stop(p1, signal.SIGKILL) == -signal.SIGKILL
    lab.link(h1, False)
    wait_for(lambda: one_holder(lab, [h2]) == h2, deadline(master_down(100, 0.1)),
             interval=0.01)


def test_notify_command_sees_each_state(make_lab):
    lab = make_lab(hosts=1)
    h = lab.hosts[0]
    out = os.path.join(lab.tmpdir, "notify.out")
    p = start_vip(lab, h, 100, "--notify",
                  f'echo "$KHA_VIP_PREVIOUS_STATE>$KHA_VIP_STATE $KHA_VIP_ADDRESS" >> {out}')
    wait_for(lambda: lab.holders() == [h], 10)
    assert stop(p) == 0

    def lines():
        try:
            with open(out) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []
    wait_for(lambda: len(lines()) == 3, 10)
    assert lines() == [f"INIT>BACKUP {lab.vip}/24", f"BACKUP>MASTER {lab.vip}/24",
                       f"MASTER>INIT {lab.vip}/24"]


def test_failing_track_gives_up_master(make_lab):
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    # the "local kha proxy" of h1: any HTTP server answering 200
    srv = lab.spawn(h1, "readyz-h1", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                      "18080", "--directory", lab.tmpdir],
                    ok_codes=(-signal.SIGTERM,))
    wait_for(lambda: ns_http(lab, h1, "/", port=18080) is not None, 10)
    track = ["--track-url", "http://127.0.0.1:18080/", "--track-interval", "100ms",
             "--track-timeout", "500ms", "--track-fall", "2", "--track-rise", "2"]
    start_vip(lab, h1, 150, *track)
    start_vip(lab, h2, 100)
    wait_for(lambda: lab.holders() == [h1], 10)
    # the proxy dies: h1 drops to FAULT, advertises priority 0, h2 takes the VIP at once
    stop(srv, signal.SIGKILL)
    wait_for(lambda: lab.holders() == [h2], 5, what="h2 takes over from a faulty h1")
    s = status(lab, h1)
    assert s["state"] == "FAULT" and not s["tracks"][0]["up"]
    assert ns_http(lab, h1, "/readyz") is None  # 503 while FAULT
    # the proxy is back: h1 rejoins and, with the higher priority, preempts
    lab.spawn(h1, "readyz-h1-2", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                  "18080", "--directory", lab.tmpdir], ok_codes=(-signal.SIGTERM,))
    wait_for(lambda: lab.holders() == [h1], 10, what="h1 back as master")


# ---- keepalived interop --------------------------------------------------------------------------

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"


def start_keepalived(lab, host, prio, interval="0.1", vrid=51, tag=""):
    d = os.path.join(lab.tmpdir, f"ka-{host}{tag}")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "keepalived.conf")
    with open(conf, "w") as f:
        f.write(textwrap.dedent(f"""
            global_defs {{
                router_id {host}
                vrrp_version 3
            }}
            vrrp_instance VI_1 {{
                state BACKUP
                interface eth0
                virtual_router_id {vrid}
                priority {prio}
                advert_int {interval}
                virtual_ipaddress {{
                    {lab.vip}/24
                }}
            }}
        """))
    return lab.spawn(host, f"keepalived-{host}{tag}",
                     [KEEPALIVED, "-n", "-l", "-D", "-G", "-P", "-f", conf,
                      "-p", os.path.join(d, "k.pid"), "-r", os.path.join(d, "v.pid")],
                     group=True)


def test_keepalived_interop_both_ways(make_lab):
    require(os.access(KEEPALIVED, os.X_OK), f"keepalived not installed at {KEEPALIVED}")
    lab = make_lab(hosts=2)
    h1, h2 = lab.hosts
    ka = start_keepalived(lab, h1, 150)
    p2 = start_vip(lab, h2, 100)
    wait_for(lambda: lab.holders() == [h1], 15, what="keepalived (150) is the only master")
    wait_for(lambda: (status(lab, h2) or {}).get("master") == lab.addr[h1], 10,
             what="kha vip hears keepalived's adverts")
    s = status(lab, h2)
    assert s["state"] == "BACKUP" and s["master_priority"] == 150
    assert 'reason="checksum"} 0' in ns_http(lab, h2, "/metrics")
    # keepalived's host dies: kha vip takes over
    lab.kill_group(ka)
    lab.link(h1, False)
    wait_for(lambda: one_holder(lab, [h2]) == h2, deadline(master_down(100, 0.1)),
             interval=0.01, what="kha vip takes over from keepalived")
    assert wait_for(lambda: lab.reach(0.5), 10) == h2
    # keepalived comes back at a lower priority: it must accept kha vip as master
    lab.link(h1, True)
    sh("ip", "-n", h1, "addr", "del", f"{lab.vip}/24", "dev", "eth0", check=False)
    ka = start_keepalived(lab, h1, 50, tag="-2")
    until = time.monotonic() + 4
    while time.monotonic() < until:
        assert lab.holders() == [h2], lab.log(ka)
        time.sleep(0.05)
    # kha vip stops gracefully: keepalived takes over at once (priority 0)
    t0 = time.monotonic()
    assert stop(p2) == 0
    wait_for(lambda: lab.holders() == [h1], 5, interval=0.01, what="keepalived takes over")
    assert time.monotonic() - t0 < deadline(master_down(50, 0.1))
    # and kha vip at a higher priority preempts keepalived
    start_vip(lab, h2, 200, tag="-2")
    wait_for(lambda: lab.holders() == [h2], 10, what="kha vip preempts keepalived")
