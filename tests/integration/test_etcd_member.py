# SPDX-License-Identifier: MIT
"""kha etcd member list|add|remove|promote|replace on a real 3-member TLS cluster: grow to 5
through learners (each new member started for real with the flags kha printed), replace a
killed member, shrink back, and every unsafe request refused with its rule and reason while
the cluster stays healthy."""
import json

import pytest

from conftest import run_kha
from kha_testlib.etcd import _free_port, etcd3, etcd_cluster, issue_cert  # noqa: F401
from kha_testlib.etcdops import (Etcd, fill_keys, new_members, poll, read_prefix,  # noqa: F401
                                 run_replace, tls_member_args, wait_answering)


# membership changes commit through raft: on a loaded test machine 5 s can be short
SLOW = ["--command-timeout", "15s"]


def member(c, *args, timeout=120):
    return run_kha("etcd", "member", *args, *c.client_flags(), *SLOW, timeout=timeout)


def members(c):
    p = member(c, "list", "-o", "json")
    assert p.returncode == 0, p.stderr
    return {m["name"] or m["id"]: m for m in json.loads(p.stdout)["members"]}


def healthy(c, deadline=15):
    """Every member answers and one leader among them is agreed (4 voters is 'degraded' by
    design: an even count tolerates no more failures than one less). Polled: right after the
    leader was removed, the others name it until they elect another."""
    last = {}

    def ok():
        nonlocal last
        p = run_kha("etcd", "status", "-o", "json", *c.client_flags())
        last = json.loads(p.stdout)
        return (last["voters_up"] == last["voters"] and last["learners_up"] == last["learners"]
                and last["leader"] is not None and last["leader"]["name"] != ""
                and (p.returncode == 0 or last["voters"] % 2 == 0))
    poll(ok, deadline, "a healthy cluster")
    return True


def assert_refused(p, rule):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert f"refused ({rule})" in p.stderr, p.stderr
    assert p.stdout == ""


def add_learner(c, new):
    p = member(c, "add", new.name, "--learner", "--peer-urls", new.peer_url, "-o", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["member"]["is_learner"] and out["member"]["name"] == new.name
    flags = out["start"]["flags"]
    assert flags[flags.index("--initial-cluster-state") + 1] == "existing"
    assert flags[flags.index("--initial-advertise-peer-urls") + 1] == new.peer_url
    assert f"{new.name}={new.peer_url}" in flags[flags.index("--initial-cluster") + 1]
    new.start(flags)
    return out


def replace(c, old, new):
    """Runs kha etcd member replace, starts NEW from the ETCD_* lines it prints; stdout."""
    p = run_replace(["etcd", "member", "replace", old, "--name", new.name, "--peer-urls",
                     new.peer_url, *c.client_flags(), *SLOW], new)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


def test_grow_replace_shrink_with_guards(etcd3, new_members):
    c = etcd3
    data = fill_keys(c, 200)
    ms = members(c)
    assert sorted(ms) == ["etcd-0", "etcd-1", "etcd-2"]
    assert sum(m["is_leader"] for m in ms.values()) == 1

    # 3 -> 4 voting at once: quorum grows to 3 while the new member does not run yet
    m3 = new_members(c, "m3")
    p = member(c, "add", "m3", "--peer-urls", m3.peer_url)
    assert_refused(p, "fault-tolerance")
    assert "--learner" in p.stderr
    assert len(members(c)) == 3

    # 3 -> 4 through a learner, started with the printed flags, then promoted
    add_learner(c, m3)
    # a second member while the learner waits: refused
    m4 = new_members(c, "m4")
    assert_refused(member(c, "add", "m4", "--learner", "--peer-urls", m4.peer_url),
                   "pending-member")
    p = member(c, "promote", "m3", timeout=180)
    assert p.returncode == 0, p.stderr
    assert "promoted" in p.stdout
    ms = members(c)
    assert not ms["m3"]["is_learner"] and ms["m3"]["reachable"]
    assert healthy(c)

    # 4 -> 5 the same way
    add_learner(c, m4)
    p = member(c, "promote", "m4", "-o", "json", timeout=180)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["guard"]["voters_after"] == 5
    assert healthy(c)
    assert read_prefix(m4.client_url, "k/", m4.c.ssl_context()) == data

    # replace a killed member: removed first (etcd adds nothing while a voter is down), then
    # the new one as a learner, started from the printed lines, then promoted. The victim is
    # the leader when it is one of the fixture's members: the others go on naming a dead
    # leader until they elect another, and a change proposed meanwhile would be lost.
    leader = next(n for n, m in members(c).items() if m["is_leader"])
    victim = int(leader[-1]) if leader.startswith("etcd-") else 1
    a, b = [i for i in range(3) if i != victim]
    c.kill(victim)
    old = f"etcd-{victim}"
    m5 = new_members(c, "m5")
    out = replace(c, old, m5)
    assert f"{old} is down: removing it first" in out
    assert f"Done: m5 replaced {old} (removed first" in out
    ms = members(c)
    assert old not in ms and not ms["m5"]["is_learner"] and len(ms) == 5
    assert all(m["reachable"] for m in ms.values())
    assert healthy(c)

    # replace a live member: learner first, the old one removed last
    m6 = new_members(c, "m6")
    out = replace(c, "m4", m6)
    assert "Done: m6 replaced m4 (learner first)" in out
    assert out.index("added as a learner") < out.index("removing m4")
    m4.close()
    ms = members(c)
    assert "m4" not in ms and not ms["m6"]["is_learner"] and len(ms) == 5
    assert healthy(c)

    # shrink 5 -> 3 (followers first; never the leader while anything lags)
    for name in ("m5", "m6"):
        p = member(c, "remove", name)
        assert p.returncode == 0, p.stderr
    assert sorted(members(c)) == sorted([f"etcd-{a}", f"etcd-{b}", "m3"])
    assert healthy(c)

    # a degraded 3-member cluster: removing a second, live member is refused
    m3.close()
    p = member(c, "remove", f"etcd-{b}")
    assert_refused(p, "quorum-loss")
    assert "loses quorum" in p.stderr
    # adding a voter now would lose quorum too; a learner would be allowed
    m7 = new_members(c, "m7")
    assert_refused(member(c, "add", "m7", "--peer-urls", m7.peer_url), "quorum-loss")
    assert_refused(member(c, "add", "m7", "--learner", "--peer-urls", m7.peer_url),
                   "member-down")
    # removing the dead member is the way out
    p = member(c, "remove", "m3")
    assert p.returncode == 0, p.stderr
    assert "can lose 0" in p.stdout
    assert sorted(members(c)) == [f"etcd-{a}", f"etcd-{b}"]
    assert read_prefix(c.member(a).client_url, "k/", c.ssl_context()) == data


def test_member_bad_input(etcd_cluster):
    c = etcd_cluster(members=1, tls=False)
    p = member(c, "remove", "nobody")
    assert p.returncode == 64 and "no member named or with id 'nobody'" in p.stderr, p.stderr
    assert "etcd-0" in p.stderr
    for url in ("10.0.0.1:2380", "http://", "http://host", "http://host:99999",
                "http://host:2380/path", "ftp://host:2380"):
        p = member(c, "add", "x", "--learner", "--peer-urls", url)
        assert p.returncode == 64 and "peer URL" in p.stderr, (url, p.stderr)
    # the only member cannot be removed, not even with --force
    p = member(c, "remove", "etcd-0", "--force")
    assert_refused(p, "last-member")
    assert "--force" not in p.stderr.split("refused")[1]
    # a name or URL already in use
    p = member(c, "add", "etcd-0", "--learner", "--peer-urls", "http://127.0.0.1:1")
    assert_refused(p, "name-taken")
    p = member(c, "add", "x", "--learner", "--peer-urls", c.member(0).peer_url)
    assert_refused(p, "peer-url-taken")
    # promoting a voter
    assert_refused(member(c, "promote", "etcd-0"), "not-a-learner")
    # usage
    assert run_kha("etcd", "member").returncode == 64
    assert run_kha("etcd", "member", "add", "x").returncode == 64
    assert run_kha("etcd", "member", "list", "--learner").returncode == 64
    assert run_kha("etcd", "member", "replace", "a", "--peer-urls", "http://a:1").returncode == 64
    for sub in ("list", "add", "remove", "promote", "replace"):
        p = run_kha("etcd", "member", sub, "--help")
        assert p.returncode == 0 and "Example:" in p.stdout, sub
    # unreachable
    p = run_kha("etcd", "member", "list", "--endpoints", f"http://127.0.0.1:{_free_port()}",
                "--dial-timeout", "500ms")
    assert p.returncode == 69, p.stderr


def test_a_learner_that_never_started(etcd_cluster, new_members):
    """Added by name, never started: listed as (unstarted), promote waits politely and exits
    69, and the name it was added with removes it."""
    c = etcd_cluster(members=1, tls=False)
    new = new_members(c, "late")
    p = member(c, "add", "late", "--learner", "--peer-urls", new.peer_url)
    assert p.returncode == 0, p.stderr
    p = member(c, "list")
    row = [line for line in p.stdout.splitlines() if new.peer_url in line]
    assert len(row) == 1 and row[0].split()[0] == "(unstarted)", p.stdout
    assert row[0].split()[2:4] == ["learner", "unstarted"], row
    # the columns line up whatever the URLs' lengths: each row's client URLs (or "-") start
    # under the header's CLIENT URLS
    lines = p.stdout.splitlines()
    col = lines[0].index("CLIENT URLS")
    for line in lines[1:3]:
        assert line[col - 2:col] == "  " and line[col] in "h-", (line, lines[0])
    # the name finds it before it starts; promote waits for the start, one line at most
    # every 5 s, then gives up with 69 (unavailable)
    p = member(c, "promote", "late", "--timeout", "3s")
    assert p.returncode == 69, p.stderr
    assert "kha etcd member promote: late: member " in p.stderr
    assert "not ready within 3s: not started yet (start it with the flags" in p.stderr
    waits = [line for line in p.stderr.splitlines() if "waiting for" in line]
    assert 1 <= len(waits) <= 2, p.stderr
    p = member(c, "promote", "late", "--timeout", "1s", "-o", "json")
    assert p.returncode == 69 and json.loads(p.stdout)["verdict"] == "error"
    # and removes it by that name
    p = member(c, "remove", "late")
    assert p.returncode == 0, p.stderr
    assert len(members(c)) == 1
    p = member(c, "remove", "late")
    assert p.returncode == 64 and "no member named or with id 'late'" in p.stderr


def test_force_overrides_a_forceable_rule(etcd_cluster, new_members):
    c = etcd_cluster(members=1, tls=False)
    new = new_members(c, "f1")
    # a voting member in a 1-member cluster: quorum lost until it runs; --force does it
    p = member(c, "add", "f1", "--peer-urls", new.peer_url, "--force", "-o", "json")
    assert p.returncode == 0, p.stderr
    assert "--force overrides rule quorum-loss" in p.stderr
    new.start(json.loads(p.stdout)["start"]["flags"])
    wait_answering(new.client_url, member=new.proc)
    ms = members(c)
    assert len(ms) == 2 and not ms["f1"]["is_learner"]


def test_replace_that_stops_waiting_says_how_to_finish(etcd_cluster, new_members):
    """A planned replacement whose NEW member never starts stops at the wait with 69; the old
    member stays, and the undo it prints, pasted as written, leaves the cluster as it was."""
    import shlex
    c = etcd_cluster(members=3, tls=False)
    new = new_members(c, "never")
    p = member(c, "replace", "etcd-1", "--name", "never", "--peer-urls", new.peer_url,
               "--start-timeout", "2s")
    assert p.returncode == 69, (p.stdout, p.stderr)
    hint = [line for line in p.stderr.splitlines() if "stays a learner" in line]
    assert len(hint) == 1, p.stderr
    # every command it names is quoted whole: an even count of quotes, each a kha command
    assert hint[0].count("'") % 2 == 0, hint[0]
    cmds = hint[0].split("'")[1::2]
    assert [cm.split()[:4] for cm in cmds] == [["kha", "etcd", "member", "promote"],
                                               ["kha", "etcd", "member", "remove"],
                                               ["kha", "etcd", "member", "remove"]], cmds
    assert cmds[1].split()[4] == "etcd-1", cmds
    assert len(members(c)) == 4  # the learner, unnamed until it starts
    # the undo, as printed
    undo = shlex.split(cmds[2])
    p = member(c, *undo[3:])
    assert p.returncode == 0, p.stderr
    assert set(members(c)) == {"etcd-0", "etcd-1", "etcd-2"}
    assert healthy(c)
