# SPDX-License-Identifier: MIT
"""The command table: help, version, unknown commands and their exit codes."""


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
