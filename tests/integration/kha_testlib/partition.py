# SPDX-License-Identifier: MIT
"""Real network partitions: the test runs in a network namespace of its own, and nftables drops
packets in it.

``netns`` (a pytest fixture) moves the test's thread into a fresh network namespace named
kp<pid>x<n> (unique per pytest-xdist worker), with only its loopback up; every process the test
starts from then on (etcd members, kha) runs inside, on that namespace's 127.0.0.0/8. At the end
the thread goes back to the namespace it came from and the new one is deleted, also when the
test failed. Nothing the test does is seen by the machine's own network.

``Partition(addr)`` cuts one loopback address of that namespace (an alias such as 127.0.0.2 a
member also listens on, and through which only the victim reaches it): an nftables table drops
every packet to or from it. New connections time out (their SYNs are lost) and established ones
stall in TCP retransmission, as in a real partition, unlike a user-space relay that accepts and
holds. ``heal()`` deletes the table: TCP's retransmissions get through again.

Fixture order matters: request ``netns`` before the fixtures that start processes
(``def test_x(netns, etcd_cluster, procs)``), so that they start inside it and are stopped
before it is deleted.
"""
import ctypes
import itertools
import os
import subprocess

import pytest

CLONE_NEWNET = 0x40000000
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def _sh(*args, stdin=None):
    p = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


class NetNamespace:
    """See the module docstring; a context manager."""

    def __init__(self):
        self.name = f"kp{os.getpid() % 100000}x{next(_counter)}"
        self._home = None

    def __enter__(self):
        _sh("ip", "netns", "add", self.name)
        try:
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            _sh("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self._home is not None:
            _setns(self._home)
            os.close(self._home)
            self._home = None
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)


@pytest.fixture
def netns():
    from kha_testlib.process import require
    require(os.geteuid() == 0, "needs root (network namespaces, nftables)")
    with NetNamespace() as ns:
        yield ns


class Partition:
    """Drops every packet to or from `addr` (a loopback address of the test's namespace) while
    cut; a context manager that heals on exit."""

    def __init__(self, addr):
        self.addr = addr
        self.table = f"kha_partition_{addr.replace('.', '_')}"
        self.cut_now = False

    def cut(self):
        _sh("nft", "-f", "-", stdin=f"""
            table ip {self.table} {{
                chain out {{
                    type filter hook output priority 0; policy accept;
                    ip daddr {self.addr} drop
                    ip saddr {self.addr} drop
                }}
            }}
        """)
        self.cut_now = True

    def heal(self):
        if self.cut_now:
            _sh("nft", "delete", "table", "ip", self.table)
            self.cut_now = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.heal()
