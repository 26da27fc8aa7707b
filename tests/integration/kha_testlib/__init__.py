# SPDX-License-Identifier: MIT
"""Reusable fixtures that start real components for the integration tests.

- kha_testlib.etcd: real etcd clusters (TLS or plain HTTP) on free loopback ports
  (EtcdCluster, make_ca, the `etcd3` and `etcd_cluster` pytest fixtures).

Every fixture stops what it started, even when the test fails.
"""
