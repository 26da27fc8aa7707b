# SPDX-License-Identifier: MIT
"""make install (scripts/install.sh) with DESTDIR and PREFIX, the Debian package
(scripts/build-deb.sh) installed with the real dpkg -i into a root of the test's own (its own
dpkg database: the machine's packages are not touched), and the bash completion."""
import os
import subprocess

from conftest import ROOT, kha_bin

INSTALL = os.path.join(ROOT, "scripts", "install.sh")
BUILD_DEB = os.path.join(ROOT, "scripts", "build-deb.sh")
COMPLETION = os.path.join(ROOT, "deploy", "bash-completion", "kha")


def run(*args, **kw):
    # a guard against a hang, not a timing claim: building the package took over 120 s once on
    # a machine whose two cores ran two suites at once
    return subprocess.run([*map(str, args)], capture_output=True, text=True, timeout=400,
                          stdin=subprocess.DEVNULL, **kw)


def unit_lines(path, key):
    return [line.split("=", 1)[1] for line in open(path) if line.startswith(key + "=")]


def check_tree(root, prefix, unitdir):
    """The installed tree: binary, docs named by the units, units pointing at both."""
    kha = f"{root}{prefix}/bin/kha"
    p = run(kha, "--version")
    assert p.returncode == 0 and p.stdout.startswith("kha "), p.stderr
    for name in ("proxy", "vip"):
        unit = f"{root}{unitdir}/kha-{name}.service"
        assert unit_lines(unit, "ExecStart")[0].startswith(f"{prefix}/bin/kha {name} ")
        (doc,) = unit_lines(unit, "Documentation")
        assert doc.strip() == f"file://{prefix}/share/doc/kha/{name}.md"
        assert os.path.isfile(root + doc.strip()[len("file://"):])
    for f in ("README.md", "etcd.md", "internals.md", "internals/proxy.md",
              "examples/kha-proxy.yaml"):
        assert os.path.isfile(f"{root}{prefix}/share/doc/kha/{f}"), f
    assert os.path.isfile(f"{root}{prefix}/share/bash-completion/completions/kha")


def test_install_honours_destdir_and_prefix(tmp_path):
    env = dict(os.environ, DESTDIR=str(tmp_path), PREFIX="/opt/kha")
    p = run(INSTALL, kha_bin(), env=env)
    assert p.returncode == 0, p.stderr
    check_tree(str(tmp_path), "/opt/kha", "/opt/kha/lib/systemd/system")
    assert os.stat(tmp_path / "opt/kha/bin/kha").st_mode & 0o777 == 0o755
    # a missing binary is a clear error, not a half install
    p = run(INSTALL, tmp_path / "nope", env=dict(env, DESTDIR=str(tmp_path / "other")))
    assert p.returncode == 66 and "is not an executable" in p.stderr
    assert not (tmp_path / "other").exists()


def test_debian_package_installs_with_dpkg(tmp_path):
    build = os.path.dirname(os.path.dirname(kha_bin()))
    p = run(BUILD_DEB, build)
    assert p.returncode == 0, p.stderr
    deb = p.stdout.strip()
    assert deb.endswith(".deb") and os.path.isfile(deb)
    fields = run("dpkg-deb", "-f", deb, "Package", "Version", "Depends").stdout
    assert "Package: kha" in fields
    # every dependency is a package this machine has installed (the names are real)
    depends = fields.split("Depends:", 1)[1].strip()
    for dep in (d.strip() for d in depends.split(",")):
        q = run("dpkg-query", "-W", "-f", "${Status}", dep)
        assert q.stdout == "install ok installed", dep
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").write_text("")
    # the root's own database lacks libc6 and friends: --force-depends, checked above instead
    dpkg = ["dpkg", f"--root={root}", "--log=/dev/null", "--force-not-root"]
    p = run(*dpkg, "--force-depends", "-i", deb)
    assert p.returncode == 0, p.stdout + p.stderr
    assert run(*dpkg, "-s", "kha").stdout.count("Status: install ok installed") == 1
    check_tree(str(root), "/usr", "/lib/systemd/system")
    listed = run(*dpkg, "-L", "kha").stdout.split()
    assert "/usr/bin/kha" in listed and "/lib/systemd/system/kha-proxy.service" in listed
    p = run(*dpkg, "-r", "kha")
    assert p.returncode == 0, p.stderr
    assert not (root / "usr/bin/kha").exists()
    os.unlink(deb)


def test_bash_completion_reads_the_binary(tmp_path):
    def complete(*words):
        script = (f"source {COMPLETION}; COMP_WORDS=({' '.join(words)}); "
                  f"COMP_CWORD={len(words) - 1}; _kha; echo \"${{COMPREPLY[@]}}\"")
        p = run("bash", "-c", script)
        assert p.returncode == 0, p.stderr
        return p.stdout.split()

    kha = kha_bin()
    assert set(complete(kha, "")) >= {"etcd", "proxy", "vip", "elect", "lock", "certs",
                                      "audit", "drill", "lab"}
    assert complete(kha, "etcd", "me") == ["member"]
    assert set(complete(kha, "etcd", "member", "")) == {"list", "add", "remove", "promote",
                                                        "replace"}
    assert set(complete(kha, "lock", "")) == {"serve", "status"}
    assert complete(kha, "etcd", "status", "--cace") == ["--cacert"]
    assert set(complete(kha, "etcd", "status", "-o", "")) == {"table", "json"}
