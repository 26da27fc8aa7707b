# SPDX-License-Identifier: MIT
"""The command table: help, version, unknown commands and their exit codes; what every command
shares (JSON on errors, flag names)."""

import json
import re

import pytest


def test_help_lists_every_command(kha):
    p = kha("--help")
    assert p.returncode == 0
    for name in ("etcd", "proxy", "vip", "elect", "lock", "certs", "audit", "drill", "lab"):
        assert f"  {name} " in p.stdout


def test_no_command_is_usage_error(kha):
    p = kha()
    assert p.returncode == 64
    assert "Usage: kha COMMAND" in p.stderr


def test_unknown_command_names_it(kha):
    p = kha("frobnicate")
    assert p.returncode == 64
    assert "unknown command 'frobnicate'" in p.stderr


def test_version(kha):
    p = kha("--version")
    assert p.returncode == 0
    assert p.stdout.startswith("kha ")


def test_config_naming_a_directory_says_so(kha, tmp_path):
    """Every daemon's --config: a directory is named as one (it used to read as "malformed
    YAML"), exit 78, before anything starts."""
    for cmd in (["proxy"], ["vip"], ["elect"], ["lock"], ["etcd", "backup"]):
        p = kha(*cmd, "--config", tmp_path)
        assert p.returncode == 78, (cmd, p.stderr)
        assert p.stderr == (f"kha {' '.join(cmd)}: cannot read config {tmp_path}: is a "
                            "directory (give a YAML file)\n"), p.stderr


def test_etcd_default_endpoint_uses_tls_with_tls_flags(kha):
    """As etcdctl: --cacert and no --endpoints dials https://127.0.0.1:2379. Whatever listens
    there on this machine (usually nothing), the endpoint named is the https one."""
    p = kha("etcd", "status", "--cacert", "/etc/ssl/certs/ca-certificates.crt",
            "--dial-timeout", "1s", "--command-timeout", "2s")
    assert "https://127.0.0.1:2379" in p.stdout + p.stderr
    assert "http://127.0.0.1:2379" not in p.stdout + p.stderr
    p = kha("etcd", "status", "--endpoints", "127.0.0.1:1", "--dial-timeout", "1s")
    assert p.returncode == 69 and "etcd http://127.0.0.1:1: connection refused" in p.stderr


UNREACHABLE = ["--endpoints", "127.0.0.1:1", "--dial-timeout", "1s"]


def test_every_json_report_prints_json_on_errors_too(kha, tmp_path):
    """A script that asked for -o json always gets a document to parse: the report, or
    {"verdict": "error", ...} with the exit code and the message also printed on stderr."""
    cases = [
        (["etcd", "status", *UNREACHABLE], "kha etcd status"),
        (["etcd", "check", "consistency", *UNREACHABLE], "kha etcd check consistency"),
        (["etcd", "member", "list", *UNREACHABLE], "kha etcd member list"),
        (["etcd", "member", "remove", "m1", *UNREACHABLE], "kha etcd member remove"),
        (["etcd", "defrag", *UNREACHABLE], "kha etcd defrag"),
        (["etcd", "snapshot", "save", str(tmp_path / "s.db"), *UNREACHABLE],
         "kha etcd snapshot save"),
        (["lock", "status", "--lock", "l", *UNREACHABLE], "kha lock status"),
        (["elect", "status", "--election", "e", *UNREACHABLE], "kha elect status"),
        (["elect", "--leader", "--election", "e", *UNREACHABLE], "kha elect"),
        (["proxy", "status", "--metrics-addr", "127.0.0.1:1"], "kha proxy status"),
        (["vip", "status", "--metrics-addr", "127.0.0.1:1"], "kha vip status"),
        (["bgp", "status", "--metrics-addr", "127.0.0.1:1"], "kha bgp status"),
    ]
    for args, who in cases:
        p = kha(*args, "-o", "json")
        assert p.returncode == 69, f"{args}: {p.returncode} {p.stderr}"
        doc = json.loads(p.stdout)
        assert doc["verdict"] == "error" and doc["exit_code"] == 69, (args, doc)
        assert doc["command"] == who and "127.0.0.1:1" in doc["error"], (args, doc)
        assert p.stderr.startswith(f"{who}: ") and doc["error"] in p.stderr, (args, p.stderr)
    # a local file error too
    p = kha("certs", "check", "--cert", tmp_path / "missing.crt", "-o", "json")
    doc = json.loads(p.stdout)
    assert p.returncode == 78 and doc["verdict"] == "error" and doc["exit_code"] == 78
    assert "missing.crt" in doc["error"] and doc["command"] == "kha certs check"


def test_one_output_flag_and_one_ca_flag(kha, tmp_path):
    # kha drill takes table|json like every report ("text" stays accepted)
    p = kha("drill", "--target", "http://127.0.0.1:1/", "-o", "xml")
    assert p.returncode == 64 and "--output: 'xml' is not table or json" in p.stderr
    assert "-o, --output table|json" in kha("drill", "--help").stdout
    # certs check verifies against --cacert, like every command
    assert "--cacert FILE" in kha("certs", "check", "--help").stdout
    # so does lock serve for its clients (--serve-cacert, beside --serve-cert/--serve-key);
    # the old --serve-client-ca still works and says so once, however often it is given
    help_text = kha("lock", "serve", "--help").stdout
    assert "--serve-cacert FILE" in help_text and "--serve-client-ca" not in help_text
    ca = tmp_path / "ca.crt"
    ca.write_text("")
    p = kha("lock", "serve", "--lock", "l", "--serve-client-ca", ca, "--serve-client-ca", ca)
    assert p.returncode == 64, p.stderr
    assert p.stderr.count("--serve-client-ca is deprecated, use --serve-cacert") == 1, p.stderr
    assert "--serve-cacert needs them" in p.stderr
    p = kha("lock", "serve", "--lock", "l", "--serve-cacert", ca)
    assert p.returncode == 64 and "deprecated" not in p.stderr, p.stderr
    assert "--serve-cacert needs them" in p.stderr


def test_lab_reports_name_their_result_verdict(kha, tmp_path):
    """kha lab status and kha lab drill: the overall result is "verdict", as in every report;
    without a lab, -o json still prints a document."""
    for args in (["lab", "status"], ["lab", "drill"]):
        p = kha(*args, "--dir", tmp_path / "none", "-o", "json")
        assert p.returncode == 69, (args, p.stderr)
        doc = json.loads(p.stdout)
        assert doc["verdict"] == "error" and doc["exit_code"] == 69, (args, doc)
        assert "no lab" in doc["error"], doc


def test_etcd_errors_name_their_cause(kha):
    import socket
    # a local cause fails every endpoint alike: said once, not "(and 2 more endpoints failed)"
    p = kha("etcd", "status", "--endpoints",
            "https://127.0.0.1:1,https://127.0.0.1:2,https://127.0.0.1:3", "--cacert",
            "/nonexistent/ca.crt")
    assert p.returncode == 78 and "/nonexistent/ca.crt" in p.stderr
    assert "more endpoint" not in p.stderr
    # different failures are counted
    p = kha("etcd", "status", "--endpoints", "https://127.0.0.1:1,https://127.0.0.1:2")
    assert p.returncode == 69 and "(and 1 more endpoint failed)" in p.stderr
    # TCP connects but TLS never starts (a listening socket nobody accepts on: what a frozen
    # server looks like to a client): not "no connection"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        p = kha("etcd", "status", "--endpoints", f"https://127.0.0.1:{port}",
                "--dial-timeout", "500ms")
    assert p.returncode == 69, p.stderr
    assert "TCP connected, but no TLS handshake within 500ms" in p.stderr, p.stderr
    assert "no connection within" not in p.stderr


@pytest.mark.parametrize("daemon", ["proxy", "vip", "bgp"])
def test_daemon_status_flags_are_one_table(kha, daemon):
    """kha proxy|vip|bgp status parse the same flags the same way, and say so in --help."""
    p = kha(daemon, "status", "--help")
    assert p.returncode == 0 and "Flags:\n  --metrics-addr ADDR" in p.stdout, p.stdout
    assert "-o, --output table|json" in p.stdout and "Example" in p.stdout
    p = kha(daemon, "status", "-o", "yaml")
    assert p.returncode == 64
    assert p.stderr == f"kha {daemon} status: --output: 'yaml' is not table or json\n"
    p = kha(daemon, "status", "extra")
    assert p.returncode == 64
    assert p.stderr == f"kha {daemon} status: unexpected argument 'extra'\n"
    p = kha(daemon, "status", "--metrics-addr", "off")
    assert p.returncode == 64 and "--metrics-addr" in p.stderr, p.stderr


@pytest.mark.parametrize("cmd", [["etcd", "status"], ["etcd", "member", "add"], ["lab", "up"],
                                 ["certs", "issue"], ["proxy", "status"]])
def test_getopt_messages_name_the_whole_command(kha, cmd):
    p = kha(*cmd, "--no-such-flag")
    assert p.returncode == 64, p.stderr
    assert p.stderr.startswith(f"kha {' '.join(cmd)}: unrecognized option '--no-such-flag'"), \
        p.stderr


# every kha lab subcommand and flags its help must name (from its option table)
LAB_FLAGS = {
    "up": ["--dir", "--members", "--timeout", "--etcd", "--kha", "--no-proxy", "--no-elect",
           "--kubernetes", "--k8s-bin", "--leader-elect-lease-duration",
           "--leader-elect-renew-deadline", "--leader-elect-retry-period"],
    "status": ["--dir", "--output"],
    "stop-member": ["--dir", "--leader", "--follower", "--raft-leader", "--grace", "--kill"],
    "start-member": ["--dir", "--all", "--timeout"],
    "freeze-member": ["--dir", "--leader", "--follower", "--raft-leader"],
    "thaw-member": ["--dir", "--all"],
    "stop-process": ["--dir", "--leader", "--follower", "--raft-leader", "--lease-holder",
                     "--grace", "--kill"],
    "stop-host": ["--dir", "--vip-holder", "--grace", "--kill"],
    "start-host": ["--dir", "--all"],
    "wait": ["--dir", "--timeout"],
    "drill": ["--dir", "--report", "--svg", "--rate", "--min-availability", "--details",
              "--baseline", "--period", "--down", "--faults", "--rolling-time", "--slo",
              "--watch-timeout", "--output"],
    "down": ["--dir", "--grace"],
    "exec": ["--dir"],
    "kubeconfig": ["--dir", "--entry"],
}


def test_lab_help_lists_every_subcommand(kha):
    p = kha("lab", "--help")
    assert p.returncode == 0
    for sub in LAB_FLAGS:
        assert f"\n  {sub} " in p.stdout, sub


@pytest.mark.parametrize("sub", sorted(LAB_FLAGS))
def test_lab_subcommand_help_and_unknown_flag(kha, sub, tmp_path):
    """Each kha lab subcommand: --help names its flags (exit 0, nothing on stderr); an
    unknown flag is a usage error whose first line names the subcommand and the flag, before
    anything is looked at (no lab needed)."""
    p = kha("lab", sub, "--help")
    assert p.returncode == 0 and not p.stderr, (sub, p.stderr)
    assert p.stdout.startswith(f"Usage: kha lab {sub} "), p.stdout
    table = p.stdout.split("\nFlags:\n", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"^  (?:-\w, )?(--[\w-]+)", table, re.M))
    assert named == set(LAB_FLAGS[sub]) | {"--help"}, (sub, table)
    p = kha("lab", sub, "--no-such-flag", "--dir", tmp_path / "none")
    assert p.returncode == 64, (sub, p.returncode, p.stderr)
    first = p.stderr.splitlines()[0]
    assert first == f"kha lab {sub}: unrecognized option '--no-such-flag'", p.stderr
    assert not p.stdout, p.stdout


@pytest.mark.parametrize("cmd", [["etcd"], ["etcd", "member"], ["etcd", "alarm"],
                                 ["etcd", "snapshot"], ["certs"], ["lab"]])
def test_unknown_subcommand_is_named_with_where_to_look(kha, cmd):
    """Every table of subcommands refuses an unknown one the same way (cmd_sub_find)."""
    whole = " ".join(cmd)
    p = kha(*cmd, "frobnicate")
    assert p.returncode == 64
    assert p.stderr == (f"kha {whole}: unknown subcommand 'frobnicate' "
                        f"(run 'kha {whole} --help')\n"), p.stderr
