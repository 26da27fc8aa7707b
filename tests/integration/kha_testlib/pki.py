# SPDX-License-Identifier: MIT
"""The one throwaway PKI maker of the tests: EC P-256 CAs and certificates made with the openssl
CLI (not with kha certs, which is under test itself in test_certs.py).

    ca_crt, ca_key = make_ca(d, "kha-test-ca")
    crt, key = issue_cert(d, "m1", ca_crt, ca_key, sans=("IP:127.0.0.1", "DNS:localhost"))

The fixtures' PKIs (backends.make_pki, drill_target.make_pki, kubeapi.TestPKI, the etcd
clusters') are built from these two functions. Keys are 0600, certificates valid two days.
"""
import os
import subprocess

LOOPBACK_SANS = ("IP:127.0.0.1", "DNS:localhost")


def _openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_ca(directory, name="kha-test-ca", base=None):
    """A self-signed EC CA (CN=name) in directory, files <base or name>.crt/.key; returns
    (cert path, key path)."""
    d = str(directory)
    os.makedirs(d, exist_ok=True)
    base = base or name
    crt, key = os.path.join(d, f"{base}.crt"), os.path.join(d, f"{base}.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    os.chmod(key, 0o600)
    return crt, key


def issue_cert(directory, name, ca_crt, ca_key, server=True, client=True, sans=LOOPBACK_SANS,
               cn=None, org=None):
    """An EC certificate signed by the CA, files <name>.crt/.key in directory: CN=cn (default
    name), O=org, extended key usage serverAuth and/or clientAuth, subjectAltNames `sans`
    ("IP:x", "DNS:y"; none when empty). Returns (cert path, key path)."""
    d = str(directory)
    os.makedirs(d, exist_ok=True)
    crt, key = os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    csr, ext = os.path.join(d, f"{name}.csr"), os.path.join(d, f"{name}.ext")
    eku = ",".join(u for u, on in (("serverAuth", server), ("clientAuth", client)) if on)
    with open(ext, "w", encoding="ascii") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage={eku}\n")
        if sans:
            f.write(f"subjectAltName={','.join(sans)}\n")
    subj = f"/CN={cn or name}" + (f"/O={org}" if org else "")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", csr, "-subj", subj)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
             "-out", crt, "-days", "2", "-extfile", ext)
    os.chmod(key, 0o600)
    return crt, key
