# SPDX-License-Identifier: MIT
"""kha drill against real servers made to fail on purpose (kha_testlib/drill_target.py):
measured outages against known windows, faults that SIGSTOP a real process, rolling restarts,
TLS, the JSON report and the SVG timeline, exit codes, interruption."""
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import assert_no_sanitizer_report, free_port, kha_bin, run_kha
from kha_testlib.drill_target import DrillTarget, make_pki
from kha_testlib.partition import netns  # noqa: F401 (fixture)
from kha_testlib.process import SLACK, deadline

SVG_NS = "{http://www.w3.org/2000/svg}"

# Top-level keys of the JSON report (schema kha.drill.report/v1, docs/drill.md).
REPORT_KEYS = {
    "schema", "target", "target_kind", "mode", "started_at", "started_at_unix_us", "duration_ms",
    "elapsed_ms", "rate", "interval_ms", "timeout_ms", "keepalive", "verdict", "exit_code",
    "interrupted", "signal", "aborted", "abort_reason", "slo_percent", "slo_met", "step_failed",
    "under_floor",
    "probes", "outage", "fault", "latency_ms", "phases", "steps", "rolling", "writes", "kube",
}
PROBES_KEYS = {"slots", "sent", "ok", "failed", "missed", "availability_percent",
               "max_send_lag_ms", "results", "error_samples"}
WINDOW_KEYS = {"start_ms", "end_ms", "duration_ms", "failed", "open"}
FAULT_KEYS = {"fault_at_ms", "recover_at_ms", "end_ms", "time_to_first_failure_ms",
              "time_to_recovery_ms", "recovered"}
PHASE_KEYS = {"start_ms", "end_ms", "sent", "ok", "failed", "missed", "availability_percent",
              "latency_ms"}
LATENCY_KEYS = {"count", "p50", "p99", "max"}
STEP_KEYS = {"name", "kind", "run", "node", "at_ms", "started_ms", "ended_ms", "duration_ms",
             "result", "exit_code", "signal", "on_abort", "output", "output_truncated"}


@pytest.fixture
def targets():
    """Factory of drill targets; all are stopped at the end, even when the test fails."""
    started = []

    def make(**kw):
        t = DrillTarget(free_port(), **kw)
        started.append(t)
        return t

    yield make
    for t in started:
        t.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def drill(tmp_path, *args, timeout=60):
    """Runs kha drill with a JSON report; returns (process, report or None)."""
    report = tmp_path / "report.json"
    if report.exists():
        report.unlink()
    p = run_kha("drill", "--report", report, *args, timeout=timeout)
    data = json.loads(report.read_text()) if report.exists() else None
    return p, data


def assert_probes_tell_the_truth(r, outer, inner, kinds, eps=3.0):
    """Checks the probes of r["probe_list"] against the ground truth: the target failed on
    purpose, with results of `kinds`, from a moment to another (drill time axis) known to lie
    within `outer` and to cover `inner` (both (from, to); the same when known exactly). The
    target decides a probe's fate (accepts its connection, reads its request) at some instant
    between its send and its answer, so a probe that failed that way overlaps the window, and a
    successful one was sent before the window or answered after it, however late the prober sent
    it: no tolerance grows with the prober's own lag. eps: two processes reading the clock.
    Then every window the drill reports must be the run of failed probes it says it is; returns
    the one that holds the first probe that failed that way."""
    probes = [p for p in r["probe_list"] if p[2] not in ("missed", "cancelled")]
    for sent, latency, result, _ in probes:
        if result == "ok":
            assert sent < inner[0] + eps or sent + latency > inner[1] - eps, \
                ("a probe succeeded inside the failure", sent, latency, inner)
        elif result in kinds:
            assert sent + latency > outer[0] - eps and sent < outer[1] + eps, \
                ("a probe failed outside the failure", sent, latency, result, outer,
                 r["probes"]["error_samples"])
    failed = [p for p in probes if p[2] in kinds]
    assert failed, f"no probe failed with {kinds}"
    # every window the drill reports is a run of failed probes (docs/drill.md): from a failed
    # probe to the first successful one after it, none successful in between
    sent_at = {round(p[0], 2): p for p in probes}
    for x in r["outage"]["list"]:
        assert sent_at[round(x["start_ms"], 2)][2] != "ok", x
        inside = [p for p in probes if x["start_ms"] < p[0] < x["end_ms"]]
        assert all(p[2] != "ok" for p in inside) and x["failed"] == 1 + len(inside), x
        assert x["open"] or sent_at[round(x["end_ms"], 2)][2] == "ok", x
    w = next((x for x in r["outage"]["list"]
              if x["start_ms"] <= failed[0][0] and (x["open"] or failed[0][0] < x["end_ms"])),
             None)
    assert w is not None, ("no outage window holds the first failed probe", r["outage"])
    return w


def to_drill_ms(report, unix_s):
    """A time.time() instant on the drill's own time axis (ms since its start)."""
    return (unix_s - report["started_at_unix_us"] / 1e6) * 1000


def refused_window(r, target, on, off):
    """When the target refused, on the drill's time axis: (outer, inner) as
    assert_probes_tell_the_truth takes them. The step `on` wrote "refuse" into its fail file
    and the step `off` removed it: meanwhile it drops the connections it accepts, and its
    listener closes a little after the file appears (its loop may be late on a loaded machine)
    and reopens a little after it is gone, as it recorded. Everything fails between the close
    and the reopening; nothing outside the start of `on` .. the reopening."""
    assert os.path.exists(target.events_path), "the target never closed its listener"
    ev = target.events()
    assert [e[0] for e in ev] == ["closed", "listening"], ev
    (_, c0, c1), (_, l0, l1) = ev
    return ((on["started_ms"], max(to_drill_ms(r, l1), off["ended_ms"])),
            (to_drill_ms(r, c1), to_drill_ms(r, l0)))


def assert_refused_while_closed(r, target, eps=3.0):
    """What a closed listener gives: every probe the drill began after the target's listener
    had closed and saw end before it reopened was refused (a refusal is the kernel's answer to
    a connect to a closed port: never a reset, a TLS failure or an error). When the drill
    began a probe is bounded below by its slot's due time (slot x interval: it is never queued
    before), however late it ran; its end is when the drill saw it done. A reset or TLS failure
    is a connection the target accepted and then dropped (queued when the listener closed, or
    read once the fail file said "refuse"): it ended after the first step began. Returns the
    probes wholly inside the closed listener's time."""
    (_, _, c1), (_, l0, _) = target.events()
    closed, reopened = to_drill_ms(r, c1), to_drill_ms(r, l0)
    started = r["steps"][0]["started_ms"]
    interval = 1000.0 / r["rate"]
    inside = []
    for slot, (sent, latency, result, _) in enumerate(r["probe_list"]):
        if result in ("reset", "tls"):
            assert sent + latency > started - eps, \
                ("a connection dropped before the target was told to refuse", sent, latency,
                 result, started)
        if result in ("missed", "cancelled") or slot * interval <= closed + eps or \
                sent + latency >= reopened - eps:
            continue
        assert result == "refused", ("a probe to the closed listener was not refused", slot,
                                     sent, latency, result, (closed, reopened),
                                     r["probes"]["error_samples"])
        inside.append(result)
    return inside


def check_schema(r):
    assert set(r) == REPORT_KEYS
    assert r["schema"] == "kha.drill.report/v1"
    assert set(r["probes"]) == PROBES_KEYS
    assert set(r["fault"]) == FAULT_KEYS
    assert set(r["latency_ms"]) == LATENCY_KEYS
    assert set(r["phases"]) == {"before", "during", "after"}
    for ph in r["phases"].values():
        if ph is not None:
            assert set(ph) == PHASE_KEYS
            assert set(ph["latency_ms"]) == LATENCY_KEYS
    for w in r["outage"]["list"]:
        assert set(w) == WINDOW_KEYS
    if r["outage"]["longest"] is not None:
        assert set(r["outage"]["longest"]) == WINDOW_KEYS
    for st in r["steps"]:
        assert set(st) == STEP_KEYS
    # counts add up
    pr = r["probes"]
    assert pr["sent"] == pr["ok"] + pr["failed"]
    assert pr["slots"] == pr["sent"] + pr["missed"]
    assert sum(v for k, v in pr["results"].items() if k not in ("ok", "missed", "cancelled")) \
        == pr["failed"]


def test_outage_matches_a_503_window(tmp_path, targets):
    # the fault command makes the target answer 503 (it reads the file per request), the
    # recovery ends it: the window is on the drill's own time line, however late it started
    failing = tmp_path / "failing"
    t = targets(fail_file=str(failing))
    svg = tmp_path / "drill.svg"
    # the target answers at once: the timeout is the slack, so that a target or prober starved
    # on a loaded machine does not make a probe time out (a window of its own)
    timeout_ms = int(deadline(0) * 1000)
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "2.6s",
                 "--timeout", f"{timeout_ms}ms", "--fault-at", "0.6s",
                 "--fault", f"echo breaking; echo 503 > {failing}", "--recover-at", "1.4s",
                 "--recover", f"rm {failing}; echo repairing", "--svg", svg,
                 "--slo", "50", "--report-probes")
    assert p.returncode == 0, p.stderr
    check_schema({k: v for k, v in r.items() if k != "probe_list"})
    fault, recover = r["steps"]
    w = assert_probes_tell_the_truth(r, (fault["started_ms"], recover["ended_ms"]),
                                     (fault["ended_ms"], recover["started_ms"]),
                                     kinds=("http_status",))
    assert w["duration_ms"] == pytest.approx(w["end_ms"] - w["start_ms"], abs=0.01)
    res = r["probes"]["results"]
    # 503s; on a machine loaded enough, a probe may also time out (which the truth check skips)
    assert res["http_status"] > 0 and res["http_status"] + res["timeout"] == r["probes"]["failed"]
    assert "503" in r["probes"]["error_samples"]["http_status"]
    # fault and recovery instants, and what followed them
    f = r["fault"]
    # on schedule: never early, late by no more than the suite's scheduling slack
    assert 600 <= f["fault_at_ms"] < 600 + SLACK * 1000
    assert 1400 <= f["recover_at_ms"] < 1400 + SLACK * 1000
    assert f["fault_at_ms"] == fault["started_ms"] and f["recover_at_ms"] == recover["started_ms"]
    # a probe in flight at the fault that failed counts at the fault
    assert f["time_to_first_failure_ms"] == pytest.approx(
        max(0.0, w["start_ms"] - f["fault_at_ms"]), abs=0.01)
    # recovered at the first success after the last failure: the end of the last window (the
    # same as the first's but for a probe placed out of order at the window's edge)
    last = r["outage"]["list"][-1]
    assert r["outage"]["windows"] == len(r["outage"]["list"]) and not last["open"], r["outage"]
    assert f["time_to_recovery_ms"] == pytest.approx(last["end_ms"] - f["fault_at_ms"], abs=0.01)
    assert f["recovered"] is True
    # phases split the probes by when they were sent: recounted from the probe list
    ph = r["phases"]
    probes = [x for x in r["probe_list"] if x[2] not in ("missed", "cancelled")]
    for name in ("before", "during", "after"):
        mine = [x for x in probes if ph[name]["start_ms"] <= x[0] < ph[name]["end_ms"] or
                (name == "after" and x[0] == ph[name]["end_ms"])]
        assert ph[name]["sent"] == len(mine), (name, ph[name])
        assert ph[name]["failed"] == sum(1 for x in mine if x[2] != "ok"), (name, ph[name])
    assert ph["during"]["failed"] > 0
    # the latency of the successful probes, per phase (none succeed while it answers 503)
    for name in ("before", "during", "after"):
        lat = ph[name]["latency_ms"]
        assert lat["count"] == ph[name]["ok"], (name, ph[name])
        if lat["count"]:
            assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] < timeout_ms
    expected_avail = 100.0 * r["probes"]["ok"] / r["probes"]["sent"]
    assert r["probes"]["availability_percent"] == pytest.approx(expected_avail)
    assert r["slo_met"] is True and r["verdict"] == "ok"
    assert [s["output"] for s in r["steps"]] == ["breaking\n", "repairing\n"]
    assert all(s["result"] == "ok" and s["exit_code"] == 0 for s in r["steps"])
    # the terminal summary says the same
    assert "availability" in p.stdout and "longest" in p.stdout
    # the SVG timeline
    root = ET.parse(svg).getroot()
    assert root.tag == SVG_NS + "svg"

    def by_class(tag, cls):
        return [e for e in root.iter(SVG_NS + tag) if cls in e.get("class", "").split()]

    assert len(by_class("rect", "band-ok")) >= 2
    # one shaded rectangle per outage window (one, but for a probe placed out of order at an
    # edge, see above); red inside them only (a slot missed under load may split it with grey)
    outage = by_class("rect", "outage")
    assert len(outage) == r["outage"]["windows"] >= 1
    spans = [(float(o.get("x")), float(o.get("width"))) for o in outage]
    fails = by_class("rect", "band-fail")
    assert fails
    for rect in fails:
        x, width = float(rect.get("x")), float(rect.get("width"))
        assert any(ox - 2 <= x and x + width <= ox + ow + 2 for ox, ow in spans), (x, spans)
    assert len(by_class("path", "latency")) == 1
    assert by_class("path", "latency")[0].get("d").startswith("M")
    markers = by_class("g", "marker")
    assert {m.get("class") for m in markers} == {"marker fault", "marker recover"}
    labels = [e.text for m in markers for e in m.iter(SVG_NS + "text")]
    assert labels == ["fault", "recover"]
    assert root.find(SVG_NS + "title").text == f"kha drill: {t.url}"


def test_outage_matches_refused_window_over_tls(netns, tmp_path, targets, pki):
    # in a network namespace of its own: while the target's listener is closed, nobody else
    # on the machine can take its port and answer in its place
    failing = tmp_path / "failing"
    t = targets(tls=pki, fail_file=str(failing), events=str(tmp_path / "events"))
    # plain actions (no fault, no recovery): the target refuses from 0.8 s to 1.4 s
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(f"""steps:
  - {{at: 0.8s, run: "echo refuse > {failing}", name: close}}
  - {{at: 1.4s, run: "rm {failing}", name: reopen}}
""")
    # a probe fails here by a refusal, at once: the timeout has the slack, so that a target or
    # prober starved on a loaded machine does not make one time out
    p, r = drill(tmp_path, "--scenario", scenario, "--target", t.url, "--cacert",
                 pki["ca_crt"], "--rate", "100", "--duration", "2s",
                 "--timeout", f"{int(deadline(0.5) * 1000)}ms", "--report-probes")
    assert p.returncode == 0, p.stderr
    check_schema({k: v for k, v in r.items() if k != "probe_list"})
    # the truth: when the listener really closed and reopened (a probe still in its TLS
    # handshake then fails although sent before, which the check allows)
    on, off = r["steps"]
    assert_probes_tell_the_truth(r, *refused_window(r, t, on, off), kinds=("refused", "tls"))
    # connections the target had accepted or the kernel had queued when it began to refuse are
    # reset ("connection closed without an answer"): how many depends on how late the
    # target's loop closed its listener, which load decides; what the drill must get right is
    # which is which. Nothing else fails: no timeout (the timeout has the slack), no "error"
    # (libcurl may lose the errno of a refused connect: the drill still says refused)
    assert_refused_while_closed(r, t)
    res = r["probes"]["results"]
    assert res["refused"] > 0, r["probes"]
    assert res["refused"] + res["reset"] + res["tls"] == r["probes"]["failed"], r["probes"]
    # no fault command: a single phase
    assert r["fault"]["fault_at_ms"] is None and r["phases"]["during"] is None


def test_tls_client_certificates_and_verification(tmp_path, targets, pki):
    t = targets(tls=pki, client_ca=pki["ca_crt"])
    common = ["--target", t.url, "--rate", "50", "--duration", "300ms", "--timeout", "1s"]
    p, r = drill(tmp_path, *common, "--cacert", pki["ca_crt"], "--cert", pki["client_crt"],
                 "--key", pki["client_key"], "--slo", "100")
    assert p.returncode == 0, p.stdout + p.stderr
    assert r["probes"]["ok"] == r["probes"]["sent"] > 0
    # the server requires a client certificate: without one every probe fails
    p, r = drill(tmp_path, *common, "--cacert", pki["ca_crt"], "--slo", "99")
    assert p.returncode == 1
    assert r["probes"]["ok"] == 0 and r["probes"]["failed"] == r["probes"]["sent"]
    # a CA that did not sign the server: a TLS failure, with curl's reason kept
    p, r = drill(tmp_path, *common, "--cacert", pki["other_crt"])
    assert r["probes"]["results"]["tls"] == r["probes"]["sent"]
    assert "certificate" in r["probes"]["error_samples"]["tls"].lower()
    assert "first tls" in p.stdout


def test_a_drill_that_never_reached_its_target_fails(tmp_path, targets, pki):
    """No --slo, the wrong CA: every probe fails on TLS; that is exit 5, not 'ok'."""
    t = targets(tls=pki)
    p, r = drill(tmp_path, "--target", t.url, "--rate", "20", "--duration", "300ms",
                 "--cacert", pki["other_crt"])
    assert p.returncode == 5, p.stdout + p.stderr
    assert r["verdict"] == "nothing_succeeded" and r["exit_code"] == 5
    assert r["probes"]["ok"] == 0 and r["under_floor"] is True
    assert "NOTHING SUCCEEDED: not one probe succeeded" in p.stdout
    assert "--cacert" in p.stdout and "verdict       nothing_succeeded (exit 5)" in p.stdout
    assert "20 probes/s for 300ms (" in p.stdout  # the length asked, not a measured 0.29s
    # the same probes with the right CA pass
    p, r = drill(tmp_path, "--target", t.url, "--rate", "20", "--duration", "300ms",
                 "--cacert", pki["ca_crt"])
    assert p.returncode == 0 and r["verdict"] == "ok" and r["under_floor"] is False


def test_tcp_target_sees_refused_connections(netns, tmp_path, targets):
    # in a network namespace of its own (see the TLS test above)
    failing = tmp_path / "failing"
    t = targets(fail_file=str(failing), events=str(tmp_path / "events"))
    p, r = drill(tmp_path, "--target", f"tcp://127.0.0.1:{t.port}", "--rate", "100",
                 "--duration", "1.5s", "--fault-at", "0.6s", "--fault",
                 f"echo refuse > {failing}", "--recover-at", "1s", "--recover",
                 f"rm {failing}", "--report-probes")
    assert p.returncode == 0, p.stderr
    assert r["target_kind"] == "tcp"
    assert_probes_tell_the_truth(r, *refused_window(r, t, *r["steps"]),
                                 kinds=("refused", "reset"))
    assert_refused_while_closed(r, t)
    res = r["probes"]["results"]
    assert res["refused"] > 0, r["probes"]
    assert res["refused"] + res["reset"] == r["probes"]["failed"], r["probes"]


def test_sigstop_of_the_backend_is_an_outage_bounded_by_the_commands(tmp_path, targets):
    t = targets()
    # A probe times out when no answer came within --timeout, which on a loaded machine may
    # also be the target's or the prober's own lateness: the timeout is the target's answer
    # time plus the suite's slack, so that only the freeze makes probes time out. The freeze
    # outlasts it by a second: the probes sent in that second cannot be answered in time.
    timeout = deadline(0.2)
    fault_at, recover_at = 0.7, 0.7 + timeout + 1.0
    p, r = drill(tmp_path, "--target", t.url, "--rate", "50",
                 "--duration", f"{int((recover_at + 1.0) * 1000)}ms",
                 "--timeout", f"{int(timeout * 1000)}ms",
                 "--fault-at", f"{int(fault_at * 1000)}ms", "--fault", f"kill -STOP {t.pid}",
                 "--recover-at", f"{int(recover_at * 1000)}ms",
                 "--recover", f"kill -CONT {t.pid}", "--report-probes")
    assert p.returncode == 0, p.stderr
    # the target froze while the fault command ran and thawed while the recovery ran: probes
    # time out from the freeze on (a probe sent just before the freeze and not answered yet
    # too, counted in the "before" phase: phases go by the time a probe was sent); those sent
    # less than --timeout before the thaw may be answered late but in time, their latency
    # reaching past the thaw (the truth check holds each to that)
    fault, recover = r["steps"]
    assert_probes_tell_the_truth(r, (fault["started_ms"], recover["ended_ms"]),
                                 (fault["ended_ms"], recover["started_ms"]), kinds=("timeout",))
    assert r["probes"]["failed"] == r["probes"]["results"]["timeout"] > 0, r["probes"]
    assert r["phases"]["after"]["failed"] == 0


def test_keepalive_reuses_connections(tmp_path, targets):
    t = targets()
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "500ms")
    assert p.returncode == 0
    fresh = t.stats()
    # a new connection per probe by default (the /stats request is one more)
    assert fresh["connections"] >= r["probes"]["sent"]
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "500ms",
                 "--keepalive")
    assert p.returncode == 0 and r["keepalive"] is True
    reused = t.stats()
    assert reused["requests"] - fresh["requests"] == r["probes"]["sent"]
    assert reused["connections"] - fresh["connections"] < r["probes"]["sent"] / 4


def test_scenario_file_with_steps_and_flags_that_override_it(tmp_path, targets):
    t = targets(fail_file=str(tmp_path / "failing"))
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(f"""# a scenario
target: {t.url}
rate: 20
duration: 10s
steps:
  - {{at: 0.4s, run: "echo 503 > {tmp_path}/failing", name: break-it, kind: fault}}
  - {{at: 0.8s, run: "rm {tmp_path}/failing", name: fix-it, kind: recover}}
  - {{at: 1.0s, run: "echo still here", name: note}}
""")
    # the flags win over the file: a higher rate and a shorter drill
    p, r = drill(tmp_path, "--scenario", scenario, "--rate", "100", "--duration", "1.3s",
                 "--report-probes")
    assert p.returncode == 0, p.stderr
    assert r["rate"] == 100 and r["duration_ms"] == 1300
    assert [(s["name"], s["kind"], s["result"]) for s in r["steps"]] == [
        ("break-it", "fault", "ok"), ("fix-it", "recover", "ok"), ("note", "action", "ok")]
    steps = {s["name"]: s for s in r["steps"]}
    # the target answers 503 from when the fault command wrote the file until the recovery
    # removed it (the target reads the file per request)
    brk, fix = steps["break-it"], steps["fix-it"]
    assert_probes_tell_the_truth(r, (brk["started_ms"], fix["ended_ms"]),
                                 (brk["ended_ms"], fix["started_ms"]), kinds=("http_status",))
    assert r["fault"]["recover_at_ms"] == steps["fix-it"]["started_ms"]


def test_slo_exit_code(tmp_path, targets):
    failing = tmp_path / "failing"
    failing.write_text("503")
    t = targets(fail_file=str(failing))
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "300ms",
                 "--slo", "99.9")
    assert p.returncode == 1
    assert r["verdict"] == "slo_missed" and r["slo_met"] is False and r["exit_code"] == 1
    assert r["probes"]["availability_percent"] == 0
    assert r["outage"]["longest"]["open"] is True
    assert "SLO 99.9%: MISSED" in p.stdout
    # the same answers are a success when 503 is what is expected
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "300ms",
                 "--slo", "99.9", "--expect-status", "503")
    assert p.returncode == 0
    assert r["probes"]["availability_percent"] == 100


def test_rolling_stops_at_a_node_that_never_becomes_healthy(tmp_path, targets):
    t = targets()
    log = tmp_path / "actions.log"
    checks = tmp_path / "checks.log"
    # node "b" never passes its health check. A check still running at the health deadline is
    # killed (SIGTERM) and then has no exit code: on a loaded machine the last check may start
    # a moment before the deadline and still be starting when it comes. So each check first
    # ignores SIGTERM and notes that it runs: one that got that far exits by itself, with its
    # code; only one killed before it could may be the last and have none.
    healthy = (f"trap '' TERM; echo {{node}} >> {checks}; "
               f"test {{node}} != b && test -e {tmp_path}/up-{{node}}")
    # long enough for three checks 100ms apart, however late each is started
    timeout = deadline(0.5)
    p, r = drill(tmp_path, "--target", t.url, "--rate", "50", "--duration", "1s",
                 "--fault-at", "0.2s", "--rolling", "a,b,c",
                 "--stop", f"echo stop {{node}} >> {log}; rm -f {tmp_path}/up-{{node}}",
                 "--start", f"echo start {{node}} >> {log}; touch {tmp_path}/up-{{node}}",
                 "--healthy", healthy, "--healthy-timeout", f"{int(timeout * 1000)}ms",
                 "--healthy-interval", "100ms", timeout=60 + timeout)
    assert p.returncode == 4, p.stdout + p.stderr
    assert log.read_text().split("\n") == ["stop a", "start a", "stop b", "start b", ""]
    ro = r["rolling"]
    assert r["mode"] == "rolling" and r["verdict"] == "rolling_stopped"
    assert ro["completed"] is False and ro["stopped_at"] == "b"
    states = {n["name"]: n for n in ro["nodes"]}
    ran = checks.read_text().split()
    assert states["a"]["state"] == "healthy" and states["a"]["checks"] == ran.count("a") == 1
    assert states["a"]["last_check_exit"] == 0
    assert states["b"]["state"] == "unhealthy" and states["b"]["checks"] >= 3
    b_ran = ran.count("b")
    if states["b"]["checks"] == b_ran:
        assert states["b"]["last_check_exit"] == 1, states["b"]
    else:  # the last one was killed at the deadline before it ran
        assert states["b"]["checks"] == b_ran + 1, (states["b"], ran)
        assert states["b"]["last_check_exit"] is None, states["b"]
    assert states["c"]["state"] == "untouched" and states["c"]["stop_ms"] is None
    assert [s["name"] for s in r["steps"]] == ["stop a", "start a", "stop b", "start b"]
    assert "STOPPED" in p.stdout


def test_rolling_walks_every_node(tmp_path, targets):
    t = targets()
    log = tmp_path / "actions.log"
    p, r = drill(tmp_path, "--target", t.url, "--rate", "50", "--duration", "800ms",
                 "--fault-at", "100ms", "--rolling", "n1,n2,n3",
                 "--stop", f"echo stop {{node}} >> {log}",
                 "--start", f"echo start {{node}} >> {log}",
                 "--healthy", "true", "--down-time", "50ms")
    assert p.returncode == 0, p.stdout + p.stderr
    assert log.read_text().split() == ["stop", "n1", "start", "n1", "stop", "n2", "start", "n2",
                                       "stop", "n3", "start", "n3"]
    ro = r["rolling"]
    assert ro["completed"] is True and ro["stopped_at"] is None
    for n in ro["nodes"]:
        assert n["state"] == "healthy"
        assert n["start_ms"] - n["stop_ms"] >= 50
    # phases: the rolling is the "during" phase, the last node healthy starts "after"
    assert r["fault"]["fault_at_ms"] == ro["nodes"][0]["stop_ms"]
    assert r["fault"]["recover_at_ms"] == ro["nodes"][2]["healthy_ms"]


def test_failed_fault_command_stops_the_drill(tmp_path, targets):
    t = targets()
    marker = tmp_path / "recovered"
    # a duration long beside any scheduling delay, so that stopping early shows on any machine
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "10s",
                 "--fault-at", "200ms", "--fault", "echo cannot break it >&2; exit 7",
                 "--recover-at", "9.5s", "--recover", f"touch {marker}")
    assert p.returncode == 3, p.stdout + p.stderr
    assert r["aborted"] is True and r["verdict"] == "step_failed"
    assert "step 'fault' failed with exit code 7" in r["abort_reason"]
    fault, recover = r["steps"]
    assert fault["result"] == "failed" and fault["exit_code"] == 7
    assert fault["output"] == "cannot break it\n"
    # the drill stopped early (before its 10 s, and before the recovery's own time), and still
    # ran the recovery of the fault it made
    assert r["elapsed_ms"] < 9500
    assert recover["on_abort"] is True and recover["result"] == "ok" and marker.exists()
    assert "stopped early" in p.stdout
    # with --keep-going the drill runs to its end
    marker.unlink()
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "600ms",
                 "--fault-at", "100ms", "--fault", "exit 7", "--recover-at", "400ms",
                 "--recover", f"touch {marker}", "--keep-going")
    assert p.returncode == 0
    assert r["step_failed"] is True and r["aborted"] is False
    assert r["steps"][1]["on_abort"] is False and marker.exists()


def test_step_timeout_kills_the_command(tmp_path, targets):
    t = targets()
    p, r = drill(tmp_path, "--target", t.url, "--rate", "50", "--duration", "1s",
                 "--fault-at", "100ms", "--fault", "sleep 30", "--step-timeout", "200ms")
    assert p.returncode == 3
    st = r["steps"][0]
    assert st["result"] == "timed_out" and st["signal"] == signal.SIGTERM
    assert 150 <= st["duration_ms"] < deadline(0.2) * 1000


def test_bad_input_gives_clear_errors_and_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: http://127.0.0.1:1/\nrate: 100\nsteps:\n  - {at: 1s, run: x}\n"
                   "  - {at: 2s}\n")
    p = run_kha("drill", "--scenario", bad)
    assert p.returncode == 65
    assert f"{bad}:5: step without 'run'" in p.stderr
    bad.write_text("target: http://127.0.0.1:1/\nrate: [100\n")
    p = run_kha("drill", "--scenario", bad)
    assert p.returncode == 65 and f"{bad}:" in p.stderr and "malformed YAML" in p.stderr
    p = run_kha("drill", "--scenario", tmp_path / "missing.yaml")
    assert p.returncode == 78 and "cannot read scenario" in p.stderr

    p = run_kha("drill", "--target", "http://[::1/readyz")
    assert p.returncode == 64 and "does not parse" in p.stderr
    p = run_kha("drill", "--target", "gopher://x/")
    assert p.returncode == 64 and "tcp://HOST:PORT" in p.stderr
    p = run_kha("drill", "--target", "http://127.0.0.1:1/", "--frobnicate")
    assert p.returncode == 64 and "--frobnicate" in p.stderr
    p = run_kha("drill", "--target", "http://127.0.0.1:1/", "--rate")
    assert p.returncode == 64 and "--rate" in p.stderr
    p = run_kha("drill", "--target", "http://127.0.0.1:1/", "--rate", "lots")
    assert p.returncode == 64 and "--rate: expected probes per second" in p.stderr
    p = run_kha("drill", "--target", "http://127.0.0.1:1/", "extra")
    assert p.returncode == 64 and "unexpected argument 'extra'" in p.stderr
    p = run_kha("drill", "--target", "http://127.0.0.1:1/", "--fault", "true")
    assert p.returncode == 64 and "without --fault-at" in p.stderr
    p = run_kha("drill", "--target", "https://127.0.0.1:1/", "--cacert", tmp_path / "no.crt")
    assert p.returncode == 78 and "cacert: cannot read" in p.stderr
    p = run_kha("drill")
    assert p.returncode == 64 and "no target" in p.stderr
    p = run_kha("drill", "--help")
    assert p.returncode == 0 and "Example:" in p.stdout and "--rolling" in p.stdout


def test_unreachable_target_is_measured_not_an_error(tmp_path):
    # nothing listens there: every probe is refused, the drill itself works
    p, r = drill(tmp_path, "--target", f"http://127.0.0.1:{free_port()}/", "--rate", "50",
                 "--duration", "200ms", "--slo", "1")
    assert p.returncode == 1
    assert r["probes"]["results"]["refused"] == r["probes"]["sent"] > 0


def test_sigint_stops_the_drill_and_still_writes_the_report(tmp_path, targets):
    t = targets()
    report, svg = tmp_path / "report.json", tmp_path / "t.svg"
    faulted = tmp_path / "faulted"
    proc = subprocess.Popen(
        [kha_bin(), "drill", "--target", t.url, "--rate", "100", "--duration", "20s",
         "--fault-at", "10s", "--fault", f"touch {faulted}",
         "--report", str(report), "--svg", str(svg), "--step-timeout", "5s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        # a side effect of the drill running: the server has been probed a few times
        deadline = time.monotonic() + 10
        while t.stats()["requests"] < 20:
            assert time.monotonic() < deadline, "the drill never probed"
            assert proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert_no_sanitizer_report(err)
    assert proc.returncode == 130, err
    r = json.loads(report.read_text())
    assert r["interrupted"] is True and r["signal"] == signal.SIGINT
    assert r["verdict"] == "interrupted"
    # the target received 20 requests or more; a probe still in flight at the interrupt is
    # "cancelled", not counted as sent (on a loaded machine the 20th may still be)
    assert r["probes"]["sent"] + r["probes"]["results"]["cancelled"] >= 20, r["probes"]
    assert r["elapsed_ms"] < 10000  # interrupted before its fault's time (--fault-at 10s)
    # no further fault ran
    assert r["steps"][0]["result"] == "not_run" and not faulted.exists()
    assert ET.parse(svg).getroot().tag == SVG_NS + "svg"
    assert "interrupted" in out


def test_output_json_on_stdout(tmp_path, targets):
    t = targets()
    p = run_kha("drill", "--target", t.url, "--rate", "50", "--duration", "200ms", "-o",
                "json", "--report-probes")
    assert p.returncode == 0
    r = json.loads(p.stdout)
    check_schema({k: v for k, v in r.items() if k != "probe_list"})
    assert len(r["probe_list"]) == r["probes"]["slots"]
    t_ms, latency_ms, result, status = r["probe_list"][0]
    assert result == "ok" and status == 200 and latency_ms > 0


def test_second_sigint_kills_the_commands_still_running(tmp_path, targets):
    t = targets()
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        [kha_bin(), "drill", "--target", t.url, "--rate", "50", "--duration", "20s",
         "--fault-at", "0s", "--fault", "sleep 30", "--report", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    err = ""
    try:
        deadline = time.monotonic() + 10
        while "command started" not in err:
            assert time.monotonic() < deadline and proc.poll() is None, err
            err += proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        # the first interrupt waits for the running command, and says so
        while "interrupt again" not in err:
            assert time.monotonic() < deadline and proc.poll() is None, err
            err += proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=10)
        err += rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert_no_sanitizer_report(err)
    assert proc.returncode == 130, err
    r = json.loads(report.read_text())
    assert r["interrupted"] is True
    assert r["steps"][0]["result"] == "killed" and r["steps"][0]["signal"] == signal.SIGKILL
    assert r["elapsed_ms"] < 20000  # ended by the interrupts, not by its 20 s duration


def test_progress_line_only_on_a_terminal(tmp_path, targets):
    import pty
    t = targets()
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [kha_bin(), "drill", "--target", t.url, "--rate", "50", "--duration", "1.5s"],
            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
        proc.communicate(timeout=10)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    text = seen.decode(errors="replace")
    assert_no_sanitizer_report(text)
    assert "\r\x1b[K1.0" in text and "ok " in text and "failed 0" in text
    # not on a pipe
    p = run_kha("drill", "--target", t.url, "--rate", "50", "--duration", "1.2s")
    assert "\r" not in p.stderr and "ok " not in p.stderr


def test_commands_inherit_no_probe_sockets(tmp_path, targets):
    # the server never answers, so probe sockets are open while the command runs
    t0 = time.time()
    t = targets(windows=[(t0 - 1, t0 + 60, "hang")])
    p, r = drill(tmp_path, "--target", t.url, "--rate", "100", "--duration", "600ms",
                 "--fault-at", "300ms", "--fault", "ls /proc/self/fd")
    assert p.returncode == 5, p.stderr  # no probe answered: nothing_succeeded
    assert r["probes"]["results"]["timeout"] > 0
    # 0, 1, 2 and the directory ls itself opened: nothing of kha's
    assert r["steps"][0]["output"].split() == ["0", "1", "2", "3"]


def test_step_names_are_quoted_in_the_logs(tmp_path, targets):
    t = targets()
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f'target: {t.url}\nduration: 400ms\nrate: 20\n'
                        'steps:\n  - {at: 100ms, run: "true", name: "stop a"}\n')
    p, r = drill(tmp_path, "--scenario", scenario)
    assert p.returncode == 0, p.stderr
    assert 'msg="command started" t=' in p.stderr and 'name="stop a" run=true' in p.stderr
    assert 'msg="command ended"' in p.stderr and 'name="stop a" result=ok' in p.stderr
