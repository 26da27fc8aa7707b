# SPDX-License-Identifier: MIT
"""docs/walkthrough.md, run: from a single-master kubeadm cluster to HA, in the page's order,
each command with its check.

The commands are read from the page itself (its ```sh blocks, step by step), so that page and
test cannot drift: every command of the page is run here, with the page's example addresses and
paths replaced by the test's, or it is listed in ON_REAL_HOSTS with the reason it cannot run on
one machine (kubeadm join, crictl, ssh...). A command added to the page fails
test_every_command_of_the_walkthrough_is_run until it is one or the other.

One machine allows two parts:
- the etcd steps (0 look first, 1 backups, 4 the new members, 6 scheduled backups, 8's audit of
  etcd) on a real single-member etcd with TLS and client-certificate authentication, its files
  under kubeadm's names, grown to three members the way `kubeadm join --control-plane` grows
  it (a learner added, started with the flags kha printed, promoted);
- the Kubernetes steps (2 the entry's SAN, 3 the entry, 5 the Leases, 7 DNS, 8 the audit and a
  drill) on the shared Kubernetes lab (xdist group "k8s"), where the page's masters are m1..m3,
  its load balancers lb1 and lb2 and its entry the lab's VIP. The lab is left as it was found:
  the certificate is renewed on a copy of m1's pki directory, nothing is stopped, and the DNS
  Deployment this test creates is deleted.
"""
import json
import os
import re
import shlex
import shutil
import time

import pytest
import yaml

from conftest import ROOT, kha_bin, run_kha
from kha_testlib.etcd import etcd_cluster  # noqa: F401 (fixture)
from kha_testlib.process import Daemon, deadline, stop_all, wait_for
from kha_testlib.etcdops import NewMember

DOC = os.path.join(ROOT, "docs", "walkthrough.md")

# Commands of the page that need real hosts, by step and first words, and why.
ON_REAL_HOSTS = {
    (2, "crictl"): "restarts a static pod's container: the lab runs no kubelet",
    (2, "kubectl -n kube-system get cm kubeadm-config"): "the lab's masters are configured by "
    "kubeadm's phases from files, not from a kubeadm-config ConfigMap",
    (2, "kubectl -n kube-system create cm kubeadm-config"): "(the same)",
    (3, "kha proxy --listen"): "the lab's load balancers already run this proxy (their flags "
    "differ only in faster checks and an admin port of their own); the checks below run there",
    (3, "kha vip --interface"): "the lab's load balancers already run this kha vip (VRRP at "
    "100 ms); the checks below run there",
    (4, "kubeadm"): "joins a machine: the etcd part grows the cluster as kubeadm join does "
    "(kha etcd member add --learner, start, promote)",
    (5, "grep"): "reads kubeadm's static pod manifests: the lab starts the components itself "
    "with kubeadm's flags (--leader-elect=true)",
    (6, "kha elect"): "(run in the etcd part)",
}

# Which part runs each command (by step and first words); everything else is ON_REAL_HOSTS.
ETCD_PART = {
    (0, "kha audit"), (1, "mkdir -p"), (1, "kha etcd snapshot save"),
    (1, "kha etcd snapshot verify"), (4, "kha etcd member list"), (4, "kha etcd status"),
    (4, "kha etcd check consistency"), (6, "kha elect status"), (6, "ls -l"),
    (8, "kha audit"),
}
K8S_PART = {
    (2, "kha certs check"), (2, "kha certs issue"), (2, "kubectl get --raw /readyz"),
    (3, "kha proxy status"), (3, "kha vip status"), (3, "curl"), (3, "kha audit"),
    (5, "kha elect status"), (7, "kubectl -n kube-system scale"), (7, "kha audit"),
    (7, "kubectl apply -f fixes/dns-pdb.yaml"), (8, "kha audit"), (8, "kha drill"),
}


def split_commands(lines):
    """The commands of a sh block: continuation lines joined, comments dropped, as argv."""
    out = []
    for line in "".join(lines).replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            out.append(argv)
    return out


def read_page():
    """({step: [argv]}, prose): step None is the preamble, then 0, 1, ... ('## N. title')."""
    steps, step, fence, block, prose = {None: []}, None, None, [], []
    with open(DOC) as f:
        for line in f:
            if line.startswith("```"):
                if fence is None:
                    fence, block = line.strip()[3:], []
                else:
                    if fence == "sh":
                        steps[step] += split_commands(block)
                    fence = None
                continue
            if fence is not None:
                block.append(line)
                continue
            prose.append(line)
            m = re.match(r"## (\d+)\. ", line)
            if m:
                step = int(m.group(1))
                steps[step] = []
            elif line.startswith("## "):
                step = line.strip()
                steps[step] = []
    return steps, "".join(prose)


STEPS, PROSE = read_page()


def text(argv):
    return " ".join(argv)


def page(step, words):
    """The page's commands of step that begin with words (at least one must)."""
    found = [argv for argv in STEPS[step] if text(argv).startswith(words)]
    assert found, f"docs/walkthrough.md step {step} has no command '{words}...'"
    return found


def preamble():
    """The ETCD flags and KUBECONFIG the page sets up for every step."""
    env = {}
    for argv in STEPS[None]:
        if argv[0] == "export":
            argv = argv[1:]
        name, _, value = argv[0].partition("=")
        env[name] = value
    return shlex.split(env["ETCD"]), env["KUBECONFIG"]


class Substitute:
    """The page's example values -> the test's: exact tokens ($ETCD expands to its flags) and
    parts of tokens (paths, addresses), longest first."""

    def __init__(self, parts, etcd=None, tokens=None):
        self.parts = sorted(parts.items(), key=lambda kv: -len(kv[0]))
        self.etcd = etcd
        self.tokens = {"kha": kha_bin(), **(tokens or {})}

    def __call__(self, argv):
        out = []
        for tok in argv:
            if tok == "$ETCD":
                out += self(self.etcd)
                continue
            if tok in self.tokens:
                out.append(self.tokens[tok])
                continue
            for a, b in self.parts:
                tok = tok.replace(a, b)
            out.append(tok)
        return out


def run(argv, timeout=60, **kw):
    """Runs a substituted command (kha as the binary under test, with its sanitizer check)."""
    if argv[0] == kha_bin():
        return run_kha(*argv[1:], timeout=timeout, **kw)
    import subprocess
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def test_every_command_of_the_walkthrough_is_run():
    """Each command of the page is run by one of the parts below or has a reason not to be;
    and each command the parts expect is on the page."""
    unclaimed = []
    for step, cmds in STEPS.items():
        if not isinstance(step, int):
            continue
        for argv in cmds:
            t = text(argv)
            keys = [k for k in (ETCD_PART | K8S_PART | set(ON_REAL_HOSTS))
                    if k[0] == step and t.startswith(k[1])]
            if not keys:
                unclaimed.append(f"step {step}: {t}")
    assert not unclaimed, ("docs/walkthrough.md has commands this test neither runs nor "
                           "explains:\n  " + "\n  ".join(unclaimed))
    for step, words in ETCD_PART | K8S_PART | set(ON_REAL_HOSTS):
        page(step, words)
    # the order of the page: backups first, the SAN before the entry, the entry before the new
    # members, DNS after them, the drill last
    titles = [t for t in PROSE.splitlines() if re.match(r"## \d+\. ", t)]
    order = ["Look first", "Backups first", "apiserver certificate", "The entry:",
             "more masters", "controller-manager", "Scheduled backups", "DNS", "drill"]
    assert [next(i for i, t in enumerate(titles) if w in t) for w in order] == \
        list(range(len(order))), titles


# ---- the etcd part ----------------------------------------------------------------------

def kubeadm_files(c, root):
    """An /etc/kubernetes of a kubeadm master for the etcd cluster c: the etcd CA and the
    apiserver's etcd client pair under kubeadm's names."""
    pki = os.path.join(root, "pki")
    os.makedirs(os.path.join(pki, "etcd"))
    shutil.copy(c.ca, os.path.join(pki, "etcd", "ca.crt"))
    shutil.copy(c.cert, os.path.join(pki, "apiserver-etcd-client.crt"))
    shutil.copy(c.key, os.path.join(pki, "apiserver-etcd-client.key"))
    return root


def three_endpoints():
    """The three members' --endpoints the page's step 4 says ETCD may list once they run."""
    m = re.search(r"`(--endpoints https://10\.0\.0\.11:2379,[^`]+)`", PROSE)
    assert m, "step 4 no longer names the three members' endpoints"
    return shlex.split(m.group(1))


def grow_script(report):
    """The kha commands of the etcd-grow.sh fix the audit wrote for a single member, as argv."""
    f = next(f for f in report["findings"] if f["check"] == "etcd-members")
    assert f["severity"] == "critical" and f["fix_file"] == "etcd-grow.sh", f
    return [shlex.split(line) for line in f["fix_content"].splitlines()
            if line.startswith("kha ")]


def join_like_kubeadm(c, tmp_path, add, promote):
    """What `kubeadm join --control-plane` does to etcd: the new member added as a learner and
    started with the flags kha printed, then promoted. add and promote are the commands as
    printed (the audit's fix file, the page), with the connection flags; HOST is filled in."""
    name = add[add.index("add") + 1]
    new = NewMember(c, tmp_path, name)
    host = next(a for a in add if "HOST" in a)
    argv = [new.peer_url if a == host else a for a in add]
    p = run_kha(*argv[1:], "-o", "json", timeout=60)
    assert p.returncode == 0, p.stderr
    new.start(json.loads(p.stdout)["start"]["flags"])
    p = run_kha(*promote[1:], timeout=180)
    assert p.returncode == 0 and "promoted" in p.stdout, p.stdout + p.stderr
    return new


def check_members(sub, voters):
    """Step 4's checks after a master joined."""
    p = run(sub(page(4, "kha etcd member list")[0]))
    assert p.returncode == 0, p.stderr
    p = run(sub(page(4, "kha etcd member list")[0]) + ["-o", "json"])
    members = json.loads(p.stdout)["members"]
    assert len(members) == voters and not any(m["is_learner"] for m in members), members
    p = run(sub(page(4, "kha etcd status")[0]))
    # an even number of voters tolerates no more failures than one less: degraded, exit 1
    want = (0, "healthy") if voters % 2 else (1, "degraded")
    assert (p.returncode, want[1] in p.stdout) == (want[0], True), p.stdout + p.stderr
    p = run(sub(page(4, "kha etcd check consistency")[0]))
    assert p.returncode == 0, p.stdout + p.stderr


def test_walkthrough_etcd_steps(etcd_cluster, tmp_path):  # noqa: F811 (fixture)
    c = etcd_cluster(members=1)
    etc = kubeadm_files(c, str(tmp_path / "etc-kubernetes"))
    backups = str(tmp_path / "backups")
    etcd_flags, _ = preamble()
    base = {"/etc/kubernetes": etc, "/var/backups/etcd": backups}
    sub = Substitute({**base, "https://127.0.0.1:2379": c.members[0].client_url}, etcd_flags)
    new = []
    try:
        # 0. Look first: one member, no backup: critical (the page expects exit 2). There is
        # no API in this part: the Kubernetes part audits it.
        argv = sub(page(0, "kha audit")[0])
        i = argv.index("--kubeconfig")
        audit0 = argv[:i] + argv[i + 2:] + ["-o", "json"]
        p = run(audit0)
        assert p.returncode == 2, p.stdout + p.stderr
        step0 = json.loads(p.stdout)
        critical = {f["check"] for f in step0["findings"] if f["severity"] == "critical"}
        assert {"etcd-members", "etcd-backup"} <= critical, critical

        # 1. Backups first
        for argv in STEPS[1]:
            p = run(sub(argv))
            assert p.returncode == 0, (argv, p.stdout, p.stderr)
        p = run(sub(page(1, "kha etcd snapshot verify")[0]))
        assert re.search(r"revision", p.stdout, re.I) and re.search(r"keys", p.stdout, re.I), \
            p.stdout
        # the audit's own fix for the backups, as printed, works too ("now: kha etcd snapshot
        # save DIR/etcd-manual.db" with the connection flags); then the audit is content
        fix = next(f["fix"] for f in step0["findings"] if f["check"] == "etcd-backup")
        now = shlex.split(fix.split("now: ", 1)[1])
        p = run([kha_bin(), *now[1:], *sub(["$ETCD"])])
        assert p.returncode == 0, (now, p.stderr)
        p = run(audit0)
        backup = next(f for f in json.loads(p.stdout)["findings"] if f["check"] == "etcd-backup")
        assert backup["severity"] == "ok", backup

        # 4. Two more masters, one at a time, each checked; the members are added as the
        # audit's etcd-grow.sh says, the second promoted with the page's command
        script = grow_script(step0)
        tls = sub(["$ETCD"])[2:]  # the connection flags the fix file asks to add
        assert [a[:4] for a in script] == [["kha", "etcd", "member", w] for w in
                                           ("add", "promote", "add", "promote")], script
        new.append(join_like_kubeadm(c, tmp_path, script[0] + tls, script[1] + tls))
        check_members(sub, 2)
        m = re.search(r"`(kha etcd member promote NAME \$ETCD)`", PROSE)
        assert m, "step 4 no longer gives the promote command"
        promote = sub(shlex.split(m.group(1).replace("NAME", script[2][4])))
        new.append(join_like_kubeadm(c, tmp_path, script[2] + tls, promote))
        check_members(sub, 3)
        # ETCD may now list the three members: the checks pass through any of them
        urls = {f"https://10.0.0.1{i + 1}:2379": u for i, u in
                enumerate([c.members[0].client_url] + [m.client_url for m in new])}
        eps = Substitute(urls)(three_endpoints())
        sub3 = Substitute(base, [x if x != "https://127.0.0.1:2379" else eps[1]
                                 for x in etcd_flags])
        check_members(sub3, 3)

        # 6. Scheduled backups, taken by one master at a time: the page's kha elect on two
        # masters, one leads and takes a snapshot at once
        daemons = []
        try:
            for host in ("master-1", "master-2"):
                argv = Substitute(base, sub3.etcd, {"$(hostname)": host})(page(6, "kha elect")[0])
                daemons.append(Daemon(argv, tmp_path / f"elect-{host}.log", name=host))
            status = sub3(page(6, "kha elect status")[0])

            def both_queued():
                q = run(status + ["-o", "json"])
                doc = json.loads(q.stdout) if q.returncode == 0 else {}
                return doc if len(doc.get("candidates", [])) == 2 else None
            doc = wait_for(both_queued, deadline(10), "one backup leader, the other waiting")
            leader = doc["leader"]["id"]
            assert leader in ("master-1", "master-2"), doc
            p = run(status)
            assert p.returncode == 0, p.stderr
            assert f"leader {leader}" in p.stdout and "1 waiting" in p.stdout, p.stdout
            snaps = wait_for(lambda: [f for f in os.listdir(backups) if ".db" in f and
                                      not f.startswith(".") and f != "before-ha.db"],
                             deadline(15), "the leader's first scheduled snapshot")
            p = run(sub3(page(6, "ls -l")[0]))
            assert p.returncode == 0 and snaps[0] in p.stdout, p.stdout
            for s in snaps:
                p = run_kha("etcd", "snapshot", "verify", os.path.join(backups, s))
                assert p.returncode == 0, p.stdout + p.stderr
        finally:
            stop_all(daemons)

        # 8. the audit of etcd now: three members and a fresh backup, nothing critical
        argv = sub3(page(8, "kha audit")[0])
        etcd_only = []
        skip = {"--kubeconfig", "--entry", "--apiserver"}
        i = 0
        while i < len(argv):
            if argv[i] in skip:
                i += 2
                continue
            etcd_only.append(argv[i])
            i += 1
        p = run(etcd_only + ["-o", "json"])
        assert p.returncode in (0, 1), p.stdout + p.stderr
        rep = json.loads(p.stdout)
        assert not [f for f in rep["findings"] if f["severity"] == "critical"], rep
    finally:
        for m in new:
            m.close()


# ---- the Kubernetes part ----------------------------------------------------------------

DNS_DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
             "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                          "spec": {"containers": [{"name": "coredns",
                                                   "image": "registry.k8s.io/coredns/"
                                                            "coredns:v1.12.0"}]}}}}


def findings(k8s, host, argv):
    """Runs an audit (argv, substituted) in host with -o json: {check: [findings]}, exit code."""
    p = k8s.exec(host, *argv, "-o", "json", check=False, timeout=180)
    assert p.returncode in (0, 1, 2), p.stdout + p.stderr
    out = {}
    for f in json.loads(p.stdout)["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out, p.returncode


def sh(k8s, host, line, cwd, env=""):
    """A printed command line, as a user pastes it into a shell, in host, in directory cwd."""
    return k8s.exec(host, "sh", "-c", f"cd {shlex.quote(str(cwd))} && {env}{line}",
                    check=False, timeout=120)


def saved_objects(k8s):
    """The DNS Deployment and PDB as they are before the test (None: absent), to put back."""
    out = {}
    for kind in ("deployment", "pdb"):
        p = k8s.kubectl("-n", "kube-system", "get", kind, "coredns", "-o", "json", check=False)
        obj = json.loads(p.stdout) if p.returncode == 0 else None
        if obj:
            for k in ("resourceVersion", "uid", "creationTimestamp", "generation",
                      "managedFields"):
                obj["metadata"].pop(k, None)
            obj.pop("status", None)
        out[kind] = obj
    return out


def reap_terminating_dns_pods(k8s):
    """Confirms the deletion of DNS pods being deleted, as their node's kubelet would (the lab
    has none); returns the pods left."""
    pods = k8s.kubectl_json("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns")
    for pod in pods["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            k8s.kubectl("-n", "kube-system", "delete", "pod", pod["metadata"]["name"],
                        "--grace-period=0", "--force", "--wait=false", check=False)
    return pods["items"]


def restore_objects(k8s, saved):
    for kind in ("pdb", "deployment"):
        k8s.kubectl("-n", "kube-system", "delete", kind, "coredns", "--ignore-not-found",
                    "--wait=false")
    # the garbage collector deletes the pods of the Deployment: none may be left behind
    wait_for(lambda: not reap_terminating_dns_pods(k8s), 60, "the DNS pods to be gone",
             interval=0.5)
    for kind in ("deployment", "pdb"):
        if saved[kind]:
            k8s.kubectl("create", "-f", "-", input=json.dumps(saved[kind]))


def dns_spread(k8s):
    """Two DNS replicas Running on two nodes (the lab's workers have no kubelet: the test
    reports the bound pods running, so that roll-outs progress)."""
    def ok():
        live = k8s.run_scheduled_pods("kube-system", "k8s-app=kube-dns")
        nodes = [p["spec"].get("nodeName") for p in live if p["spec"].get("affinity")]
        return nodes if len(live) == 2 and len(nodes) == 2 and all(nodes) and \
            len(set(nodes)) == 2 else None
    return wait_for(ok, 90, "two DNS replicas on two nodes", interval=0.5)


@pytest.mark.xdist_group("k8s")
def test_walkthrough_kubernetes_steps(k8s, tmp_path):
    """Steps 2, 3, 5, 7 and 8 of the page on the real control plane (read-only use)."""
    pki = tmp_path / "pki"
    shutil.copytree(os.path.join(k8s.dir, "m1", "pki"), pki)
    node_conf = os.path.join(k8s.dir, "kubeconfig", "node.conf")
    masters = {f"10.0.0.1{i}": k8s.address[f"m{i}"] for i in (1, 2, 3)}
    etcd_flags, _ = preamble()
    sub = Substitute({"/etc/kubernetes/pki": str(pki), "10.0.0.100": k8s.vip, **masters,
                      "https://127.0.0.1:2379": f"https://{k8s.address['m1']}:2379"},
                     etcd_flags, {"$KUBECONFIG": node_conf, "master-1": "m1"})

    # 2. The entry's address in the apiserver certificate: kubeadm's certificate of m1, renewed
    # in place (on a copy) with the command of the page, then checked as the page checks it
    p = run(sub(page(2, "kha certs check")[0]))
    assert p.returncode == 0 and k8s.vip in p.stdout, p.stdout + p.stderr
    old = (pki / "apiserver.crt").read_bytes()
    p = run(sub(page(2, "kha certs issue")[0]))
    assert p.returncode == 0, p.stdout + p.stderr
    assert (pki / "apiserver.crt").read_bytes() != old
    baks = sorted(x.name for x in pki.iterdir() if ".bak-" in x.name)
    assert [b.split(".bak-")[0] for b in baks] == ["apiserver.crt", "apiserver.key"], baks
    assert (pki / baks[0]).read_bytes() == old
    assert os.stat(pki / "apiserver.key").st_mode & 0o777 == 0o600
    check = page(2, "kha certs check")[1]
    for d in (str(pki), os.path.join(k8s.dir, "m1", "pki")):  # the renewed copy, the live one
        argv = Substitute({"/etc/kubernetes/pki": d, "10.0.0.100": k8s.vip, **masters})(check)
        p = run(argv)
        assert p.returncode == 0, p.stdout + p.stderr
    p = k8s.exec("m1", *page(2, "kubectl get --raw /readyz")[0])
    assert p.stdout.strip() == "ok", p.stdout

    # 3. The entry: the load balancers' kha proxy and kha vip (the lab's admin port of the
    # proxy is 9090, not the default)
    p = k8s.exec("lb1", *sub(page(3, "kha proxy status")[0]), "--metrics-addr",
                 "127.0.0.1:9090", "-o", "json")
    states = {b["address"]: b["state"] for b in json.loads(p.stdout)["backends"]}
    assert states == {f"{a}:6443": "up" for a in masters.values()}, states
    vip_states = sorted(json.loads(k8s.exec(h, *sub(page(3, "kha vip status")[0]), "-o",
                                            "json").stdout)["state"] for h in ("lb1", "lb2"))
    assert vip_states == ["BACKUP", "MASTER"], vip_states
    p = k8s.exec("node", *sub(page(3, "curl")[0]))
    assert p.stdout.strip() == "ok", p.stdout
    found, _ = findings(k8s, "node", sub(page(3, "kha audit")[0]))
    assert [f["severity"] for f in found["entry-san"]] == ["ok"], found["entry-san"]
    # "point the clients at the entry": the audit's printed fix for a kubeconfig that names
    # one master (kubeconfig-server.sh), run as printed on a copy of m1's admin kubeconfig
    conf = tmp_path / "m1.conf"
    shutil.copy(os.path.join(k8s.dir, "kubeconfig", "m1.conf"), conf)
    fixes = tmp_path / "fixes3"
    audit = [kha_bin(), "audit", "--kubeconfig", conf, "--entry", f"{k8s.vip}:6443",
             "--fix-out", fixes]
    found, _ = findings(k8s, "node", audit)
    f = found["kubeconfig-server"][0]
    assert f["severity"] == "warning" and f["fix_file"] == "kubeconfig-server.sh", f
    p = sh(k8s, "node", f"sh {f['fix_file']}", fixes, env=f"KUBECONFIG={conf} ")
    assert p.returncode == 0, p.stdout + p.stderr
    found, _ = findings(k8s, "node", audit)
    assert [f["severity"] for f in found["kubeconfig-server"]] == ["ok"], found
    k8s.exec("node", "kubectl", "--kubeconfig", conf, "get", "nodes")

    # 5. kube-controller-manager and kube-scheduler: one leader each
    for argv in page(5, "kha elect status"):
        p = k8s.exec("node", *sub(argv))
        assert re.search(r"\bm[123]_", p.stdout), p.stdout

    # 7. Cluster DNS: a kubeadm cluster's one CoreDNS replica, as the audit finds it; the
    # page's commands; each fix the audit prints, run as printed
    saved = saved_objects(k8s)
    try:
        restore_objects(k8s, {"deployment": None, "pdb": None})
        k8s.kubectl("apply", "-f", "-", input=json.dumps(DNS_DEPLOYMENT))
        audit7 = page(7, "kha audit")[0]
        found, code = findings(k8s, "node", sub(audit7[:audit7.index("-o")]))
        assert code == 2 and found["dns-replicas"][0]["severity"] == "critical", found
        scale = page(7, "kubectl -n kube-system scale")[0]
        assert found["dns-replicas"][0]["fix"] == text(scale)  # the audit prints the page's
        k8s.exec("node", *scale)
        wait_for(lambda: len([p for p in k8s.run_scheduled_pods("kube-system",
                                                                "k8s-app=kube-dns")
                              if p["spec"].get("nodeName")]) == 2, 60, "two DNS replicas",
                 interval=0.5)
        # the page's audit line, as written (its redirection and "|| true" included)
        line = " ".join(shlex.quote(a) if a not in (">", "||") else a for a in sub(audit7))
        p = sh(k8s, "node", line, tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        with open(tmp_path / "audit.json") as fh:
            rep = {f["check"]: f for f in json.load(fh)["findings"]}
        assert rep["dns-pdb"]["fix"] == "kubectl apply -f dns-pdb.yaml", rep["dns-pdb"]
        p = sh(k8s, "node", text(page(7, "kubectl apply -f fixes/dns-pdb.yaml")[0]), tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        spread = rep["dns-spread"]
        assert spread["fix_file"] == "dns-anti-affinity.yaml", spread
        p = sh(k8s, "node", spread["fix"], tmp_path / "fixes")
        assert p.returncode == 0, p.stdout + p.stderr
        dns_spread(k8s)
        reap_terminating_dns_pods(k8s)  # the replaced ones
        # the page's check
        m = re.search(r"`(kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide)`", PROSE)
        assert m, "step 7 no longer names its check"
        p = k8s.exec("node", *shlex.split(m.group(1)))
        rows = [r.split() for r in p.stdout.splitlines()[1:]]
        assert len(rows) == 2 and all("Running" in r for r in rows), p.stdout
        assert len({r[6] for r in rows}) == 2, p.stdout  # NODE
        # a PodDisruptionBudget that allows no disruption: its printed fix, run as printed
        k8s.kubectl("-n", "kube-system", "patch", "pdb", "coredns", "--type=merge", "-p",
                    '{"spec":{"minAvailable":2}}')
        found, _ = findings(k8s, "node", sub(audit7[:audit7.index("-o")]))
        f = found["dns-pdb"][0]
        assert f["severity"] == "warning" and "patch pdb" in f["fix"], f
        p = sh(k8s, "node", f["fix"], tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        found, _ = findings(k8s, "node", sub(audit7[:audit7.index("-o")]))
        for c in ("dns-replicas", "dns-spread", "dns-pdb"):
            assert [f["severity"] for f in found[c]] == ["ok"], found[c]

        # 8. Audit, then a drill. The backups are the lab's (the newest directory: its leader)
        newest = max((os.path.join(k8s.dir, "backups", m) for m in k8s.masters
                      if os.listdir(os.path.join(k8s.dir, "backups", m))),
                     key=lambda d: max(os.path.getmtime(os.path.join(d, f))
                                       for f in os.listdir(d)))
        argv = Substitute({"/var/backups/etcd": newest}, sub.etcd)(sub(page(8, "kha audit")[0]))
        found, code = findings(k8s, "node", argv)
        assert code in (0, 1), found
        assert not [f for fs in found.values() for f in fs if f["severity"] == "critical"]
    finally:
        restore_objects(k8s, saved)

    # the drill of the page, its flags as written but shorter, and with a harmless fault: the
    # shared lab's masters stay up (test_k8s_drill.py breaks them for real)
    drill = sub(page(8, "kha drill")[0])
    short = {"2m": "8s", "20s": "2s", "80s": "5s"}
    for flag in ("--fault", "--recover"):
        drill[drill.index(flag) + 1] = "true"
    for flag in ("--duration", "--fault-at", "--recover-at"):
        i = drill.index(flag) + 1
        drill[i] = short[drill[i]]
    for flag in ("--report", "--svg"):
        i = drill.index(flag) + 1
        drill[i] = str(tmp_path / drill[i])
    p = k8s.exec("node", *drill, check=False, timeout=120)
    # the page's check is exit 0 (its SLO of 99.5% met); this machine's shared cores may time
    # out a probe or two of the 160, so under the SLO (exit 1) is accepted here. What must not
    # happen is exit 5: no probe ever succeeded (a wrong --cacert or address in the page)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    with open(tmp_path / "drill.json") as fh:
        rep = json.load(fh)
    assert rep["verdict"] in ("ok", "slo_missed") and rep["probes"]["ok"] > 0, rep["probes"]
    assert [s["result"] for s in rep["steps"]] == ["ok", "ok"], rep["steps"]
    assert (tmp_path / "drill.svg").read_text().startswith("<?xml")
