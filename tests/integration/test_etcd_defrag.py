# SPDX-License-Identifier: MIT
"""kha etcd defrag --rolling on a real 3-member cluster holding freed space (big values
written, deleted, compacted): every member shrinks, the leader goes last, the data and the
cluster's health survive; refused while a member is down; --member does one."""
import json

from conftest import run_kha
from kha_testlib.etcd import _free_port, etcd_cluster  # noqa: F401
from kha_testlib.etcdops import b64, fill_big, fill_keys, read_prefix


def fragment(c, mb=24):
    """Writes mb MiB, deletes it and compacts: the databases keep their size, mostly free."""
    fill_big(c, mb, threads=2)
    c.gateway("/v3/kv/deleterange", {"key": b64("big/"), "range_end": b64("big0")})
    rev = int(c.status(0)["header"]["revision"])
    c.gateway("/v3/kv/compaction", {"revision": str(rev), "physical": True})


def leader_name(c):
    i = c.leader_index()
    return None if i is None else c.member(i).name


def test_rolling_defrag_leader_last(etcd_cluster):
    c = etcd_cluster(members=3, tls=True, extra_args=["--quota-backend-bytes", str(1 << 30)])
    data = fill_keys(c, 300)
    fragment(c)
    leader = leader_name(c)
    p = run_kha("etcd", "defrag", "--rolling", "-o", "json", *c.client_flags(), timeout=180)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["ok"] and len(rep["members"]) == 3
    names = [m["name"] for m in rep["members"]]
    assert names[-1] == leader and rep["members"][-1]["role"] == "leader", names
    assert sorted(names) == ["etcd-0", "etcd-1", "etcd-2"]
    for m in rep["members"]:
        assert m["done"]
        assert m["size_after"] < m["size_before"] - (8 << 20), m
    assert rep["reclaimed"] == sum(m["size_before"] - m["size_after"] for m in rep["members"])
    # one at a time: the progress lines say each member finished before the next started
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("kha etcd defrag: ")]
    order = [ln.split(": ")[1].split(" ")[0] for ln in lines if ln.endswith("defragmenting")]
    assert order == names
    st = run_kha("etcd", "status", *c.client_flags())
    assert st.returncode == 0, st.stdout
    assert read_prefix(c.member(0).client_url, "k/", c.ssl_context()) == data
    # the table form, and one member only
    p = run_kha("etcd", "defrag", "--member", "etcd-1", *c.client_flags(), timeout=120)
    assert p.returncode == 0, p.stderr
    assert "etcd-1" in p.stdout and "reclaimed" in p.stdout
    assert "etcd-0 " not in p.stdout


def test_defrag_refused_when_a_member_is_down(etcd_cluster):
    c = etcd_cluster(members=3, tls=False)
    c.kill(2)
    p = run_kha("etcd", "defrag", *c.client_flags(), "--dial-timeout", "1s")
    assert p.returncode == 1, p.stderr
    assert "refused" in p.stderr and "etcd-2 does not answer" in p.stderr, p.stderr
    assert "--force" in p.stderr and p.stdout == ""
    # bad input
    p = run_kha("etcd", "defrag", "--member", "nobody", *c.client_flags(), "--force",
                "--dial-timeout", "1s")
    assert p.returncode == 64 and "nobody" in p.stderr, p.stderr
    assert run_kha("etcd", "defrag", "extra").returncode == 64
    assert run_kha("etcd", "defrag", "--timeout", "never").returncode == 64
    p = run_kha("etcd", "defrag", "--help")
    assert p.returncode == 0 and "Example:" in p.stdout
    p = run_kha("etcd", "defrag", "--endpoints", f"http://127.0.0.1:{_free_port()}",
                "--dial-timeout", "500ms")
    assert p.returncode == 69, p.stderr
