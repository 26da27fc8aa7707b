# SPDX-License-Identifier: MIT
"""kha certs: what it issues is checked by the openssl CLI and by a real TLS handshake (Python's
ssl module, hostname verification on), and `kha certs check` exit codes follow the SANs."""
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import run_kha


def openssl(*args):
    p = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)
    return p


@pytest.fixture
def pki(tmp_path):
    """A CA and an etcd-member-like certificate (server + client) for 127.0.0.1 and localhost."""
    d = tmp_path / "pki"
    p = run_kha("certs", "ca", "--dir", d, "--cn", "test-ca")
    assert p.returncode == 0, p.stderr
    p = run_kha("certs", "issue", "--ca-dir", d, "--name", "m1", "--san", "127.0.0.1",
                "--san", "localhost", "--san", "IP:::1", "--server", "--client",
                "--out-dir", d)
    assert p.returncode == 0, p.stderr
    return d


def test_ca_and_issue_verify_with_openssl(pki):
    v = openssl("verify", "-CAfile", pki / "ca.crt", pki / "m1.crt")
    assert v.returncode == 0 and ": OK" in v.stdout, v.stderr
    text = openssl("x509", "-in", pki / "m1.crt", "-noout", "-text").stdout
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text
    assert "IP Address:0:0:0:0:0:0:0:1" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    assert "Issuer: CN = test-ca" in text and "Subject: CN = m1" in text
    assert "prime256v1" in text
    ca = openssl("x509", "-in", pki / "ca.crt", "-noout", "-text").stdout
    assert "CA:TRUE" in ca and "Certificate Sign" in ca
    # the key matches the certificate, and is private
    k = openssl("pkey", "-in", pki / "m1.key", "-pubout").stdout
    c = openssl("x509", "-in", pki / "m1.crt", "-noout", "-pubkey").stdout
    assert k and k == c
    for key in ("ca.key", "m1.key"):
        assert oct(os.stat(pki / key).st_mode & 0o777) == "0o600"
    assert oct(os.stat(pki / "m1.crt").st_mode & 0o777) == "0o644"


def test_client_only_and_serials(pki):
    p = run_kha("certs", "issue", "--ca-dir", pki, "--name", "tool", "--client", "--out-dir",
                pki, "-o", "json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["usage"] == ["clientAuth"] and j["sans"] == {"dns": [], "ip": []}
    text = openssl("x509", "-in", pki / "tool.crt", "-noout", "-text").stdout
    assert "TLS Web Client Authentication" in text
    assert "TLS Web Server Authentication" not in text
    s1 = openssl("x509", "-in", pki / "tool.crt", "-noout", "-serial").stdout
    s2 = openssl("x509", "-in", pki / "m1.crt", "-noout", "-serial").stdout
    assert s1 != s2


def test_refuses_to_overwrite_keys(pki):
    before = (pki / "ca.key").read_bytes()
    p = run_kha("certs", "ca", "--dir", pki)
    assert p.returncode == 64 and "already exists (use --force" in p.stderr
    assert (pki / "ca.key").read_bytes() == before
    p = run_kha("certs", "issue", "--ca-dir", pki, "--name", "m1", "--san", "localhost",
                "--server", "--out-dir", pki)
    assert p.returncode == 64 and "already exists (use --renew to keep a copy and replace it, " \
        "or --force)" in p.stderr
    p = run_kha("certs", "ca", "--dir", pki, "--force")
    assert p.returncode == 0
    assert (pki / "ca.key").read_bytes() != before
    # m1 was signed by the old CA: the new one does not verify it
    assert openssl("verify", "-CAfile", pki / "ca.crt", pki / "m1.crt").returncode != 0


def test_renew_in_place_keeps_the_old_pair(pki):
    issue = ["certs", "issue", "--ca-dir", pki, "--name", "r1", "--san", "localhost", "--server",
             "--out-dir", pki, "--renew", "-o", "json"]
    # nothing to renew yet: a plain issue
    p = run_kha(*issue)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["backup"] == {"cert": None, "key": None}
    old_crt, old_key = (pki / "r1.crt").read_bytes(), (pki / "r1.key").read_bytes()
    p = run_kha(*issue)
    assert p.returncode == 0, p.stderr
    bak = json.loads(p.stdout)["backup"]
    assert bak["cert"].startswith(str(pki / "r1.crt.bak-")) and bak["key"].endswith(
        bak["cert"].split(".bak-")[1])
    assert open(bak["cert"], "rb").read() == old_crt and open(bak["key"], "rb").read() == old_key
    assert os.stat(bak["key"]).st_mode & 0o777 == 0o600
    assert (pki / "r1.key").read_bytes() != old_key
    p = run_kha(*issue[:-2], "--force")
    assert p.returncode == 64 and "--renew and --force exclude each other" in p.stderr


def test_check_exit_codes(pki, tmp_path):
    crt = pki / "m1.crt"
    p = run_kha("certs", "check", "--cert", crt, "--san", "127.0.0.1", "--san", "localhost",
                "--san", "::1")
    assert p.returncode == 0, p.stderr
    assert "127.0.0.1 present" in p.stdout
    # the VIP is not in the certificate: critical, with a message saying what to do
    p = run_kha("certs", "check", "--cert", crt, "--san", "127.0.0.1", "--san", "10.0.0.100")
    assert p.returncode == 2
    assert "10.0.0.100 MISSING" in p.stdout
    assert "SAN 10.0.0.100 missing" in p.stderr and "--san" in p.stderr
    p = run_kha("certs", "check", "--cert", crt, "--san", "kubernetes.default", "-o", "json")
    assert p.returncode == 2
    j = json.loads(p.stdout)
    assert j["status"] == "critical"
    assert j["checks"] == [{"san": "kubernetes.default", "present": False}]
    assert j["sans"] == {"dns": ["localhost"], "ip": ["127.0.0.1", "::1"]}
    assert j["usage"] == ["serverAuth", "clientAuth"]
    assert j["is_ca"] is False and j["days_left"] >= 364
    # chain against the right and a wrong CA
    p = run_kha("certs", "check", "--cert", crt, "--cacert", pki / "ca.crt", "-o", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["chain_verified"] is True
    other = tmp_path / "other"
    assert run_kha("certs", "ca", "--dir", other).returncode == 0
    p = run_kha("certs", "check", "--cert", crt, "--ca", other / "ca.crt")
    assert p.returncode == 2 and "not verified" in p.stderr
    assert "--ca is deprecated, use --cacert" in p.stderr  # the old name still works
    # expiring soon: degraded
    p = run_kha("certs", "issue", "--ca-dir", pki, "--name", "short", "--san", "localhost",
                "--server", "--days", "10", "--out-dir", pki)
    assert p.returncode == 0
    p = run_kha("certs", "check", "--cert", pki / "short.crt", "--san", "localhost")
    assert p.returncode == 1 and "expires" in p.stderr
    p = run_kha("certs", "check", "--cert", pki / "short.crt", "--warn-days", "5")
    assert p.returncode == 0


def test_bad_input(pki, tmp_path):
    p = run_kha("certs", "check", "--cert", pki / "m1.key")
    assert p.returncode == 65 and "not a PEM certificate" in p.stderr
    big = tmp_path / "big.crt"  # over the 1 MiB a certificate file may be: bad data, not a crash
    big.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"A" * (1 << 20))
    p = run_kha("certs", "check", "--cert", big)
    assert p.returncode == 65 and "big.crt: larger than 1048576 bytes" in p.stderr, p.stderr
    p = run_kha("certs", "check", "--cert", tmp_path / "missing.crt")
    assert p.returncode == 78 and "missing.crt" in p.stderr  # cannot be read
    p = run_kha("certs", "check")
    assert p.returncode == 64
    p = run_kha("certs", "issue", "--ca-dir", pki, "--name", "x", "--san", "bad name!",
                "--server", "--out-dir", pki)
    assert p.returncode == 64 and "bad name!" in p.stderr
    p = run_kha("certs", "issue", "--ca-dir", pki, "--name", "x", "--san", "localhost",
                "--out-dir", pki)
    assert p.returncode == 64 and "--server" in p.stderr
    p = run_kha("certs", "issue", "--ca-dir", tmp_path / "nope", "--name", "x", "--san", "a",
                "--server", "--out-dir", pki)
    assert p.returncode == 78 and "kha certs ca" in p.stderr  # no CA there
    p = run_kha("certs", "ca", "--dir", tmp_path / "c", "--days", "0")
    assert p.returncode == 64
    p = run_kha("certs", "nope")
    assert p.returncode == 64
    for sub in ("ca", "issue", "check"):
        p = run_kha("certs", sub, "--help")
        assert p.returncode == 0 and "Example" in p.stdout
    assert not (pki / "x.key").exists()


def tls_handshake(pki, server_name, cert="m1"):
    """Serves one TLS handshake with the issued certificate on 127.0.0.1 and connects to it
    as a verifying client dialling server_name. Returns None on success, else the error."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        ls.settimeout(10)

        def serve():
            try:
                conn, _ = ls.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

        t = threading.Thread(target=serve)
        t.start()
        try:
            with socket.create_connection(ls.getsockname(), timeout=10) as s:
                with client_ctx.wrap_socket(s, server_hostname=server_name):
                    return None
        except ssl.SSLCertVerificationError as e:
            return e
        finally:
            t.join(10)


def test_real_tls_handshake_follows_the_sans(pki):
    assert tls_handshake(pki, "127.0.0.1") is None
    assert tls_handshake(pki, "localhost") is None
    # the address a node would dial behind a VIP is not in the SANs: the handshake fails,
    # which is exactly what `kha certs check --san` predicts
    err = tls_handshake(pki, "10.0.0.100")
    assert err is not None and "10.0.0.100" in str(err)
    assert run_kha("certs", "check", "--cert", pki / "m1.crt", "--san",
                   "10.0.0.100").returncode == 2
