# SPDX-License-Identifier: MIT
"""A stand-in Kubernetes API server for tests: real TLS, real-shaped JSON, the API's semantics.

It serves just what kha talks to, the way kube-apiserver does:

* EndpointSlices (discovery.k8s.io/v1): list with a label selector (``EndpointSliceList`` with
  ``metadata.resourceVersion``), get, and watch (``?watch=1``: HTTP/1.1 chunked JSON lines
  ``{"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}``) from a
  resourceVersion, honouring ``timeoutSeconds`` and ``allowWatchBookmarks``. A watch from a
  version older than the compaction point gets a ``200`` and an ``ERROR`` event carrying a
  ``410 Expired`` Status, as the apiserver's watch cache answers.
* Leases (coordination.k8s.io/v1): get, list, create (``409 AlreadyExists``), update by PUT with
  optimistic concurrency (``409 Conflict`` on a stale ``metadata.resourceVersion``, ``422`` when
  it is missing; a PUT of a missing lease creates it, as Leases allow create-on-update), merge
  PATCH (``application/merge-patch+json`` only, else ``415``), delete; ``404 NotFound`` Status
  objects otherwise. MicroTimes must have exactly 6 fraction digits.
* Deployments (apps/v1), PodDisruptionBudgets (policy/v1) and Pods (core v1, under
  ``/api/v1/``): get, and list with a label selector, as stored by ``put_deployment``,
  ``put_pdb``, ``put_pod`` or ``put_object`` (read-only for clients: what kha audit reads).
* Authentication: a bearer token from ``tokens`` or a client certificate signed by the test CA
  (its CN is the user); anything else gets ``401 Unauthorized``.

One resourceVersion counter (as etcd's revision) orders every change. Tests drive it live::

    pki = TestPKI(tmp_path / "pki")
    with KubeAPI(pki) as api:
        api.set_slice("kubernetes", ["10.0.0.1", "10.0.0.2"])
        api.write_kubeconfig(tmp_path / "kubeconfig", auth="token")
        ...                                    # run kha against api.url
        api.set_slice("kubernetes", ["10.0.0.1"])   # MODIFIED to every watcher
        api.send_bookmark()                    # BOOKMARK at the current version
        api.compact(); api.close_watches()     # the next watch from an old version: ERROR 410
        api.fail_next_watches(1, 410)          # the next watch: HTTP 410
        api.stop(); api.start()                # server down and back, same port, same state

Certificates come from the openssl CLI (TestPKI). Everything runs in threads of the test
process; stop() (or leaving the with block) closes every connection.
"""
import copy
import datetime
import http.server
import json
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.parse
import uuid

from kha_testlib.pki import issue_cert, make_ca
from kha_testlib.process import wait_for as wait_until  # noqa: F401 (the tests' name for it)

DEFAULT_TOKEN = "kha-test-token"
MICROTIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
DNS1123_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class TestPKI:
    """A test CA with a server certificate and a client certificate (openssl CLI, EC P-256).

    Attributes (paths): ca_cert, ca_key, server_cert, server_key, client_cert, client_key.
    server_sans: subjectAltNames of the server certificate ("DNS:x", "IP:y").
    """

    __test__ = False  # not a pytest class

    DEFAULT_SANS = ("DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default.svc",
                    "IP:127.0.0.1", "IP:::1")

    def __init__(self, directory, name="kha-test-ca", server_sans=DEFAULT_SANS,
                 client_cn="kha-admin", client_org="system:masters"):
        self.dir = str(directory)
        self.ca_cert, self.ca_key = make_ca(self.dir, name, base="ca")
        self.server_sans = tuple(server_sans)
        self.server_cert, self.server_key = self.issue(
            "server", "kube-apiserver", sans=self.server_sans, usage="serverAuth")
        self.client_cert, self.client_key = self.issue(
            "client", client_cn, org=client_org, usage="clientAuth")

    def issue(self, base, cn, sans=(), org=None, usage="serverAuth"):
        """Issues a certificate signed by this CA; returns (cert path, key path)."""
        return issue_cert(self.dir, base, self.ca_cert, self.ca_key, cn=cn, org=org, sans=sans,
                          server=usage == "serverAuth", client=usage == "clientAuth")


def status_object(code, reason, message, details=None):
    """The API's Status object for a failure."""
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
          "message": message, "reason": reason, "code": code}
    if details:
        st["details"] = details
    return st


def _now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Watch:
    def __init__(self, kind, namespace, selector, bookmarks):
        self.kind = kind
        self.namespace = namespace
        self.selector = selector
        self.bookmarks = bookmarks
        self.extra = []       # raw events queued for this watch (bookmarks, errors)
        self.closed = False


class _APIError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.status = status_object(code, reason, message, details)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, api):
        self.api = api
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # the TLS handshake runs here, in the connection's thread, not in the accept loop
        try:
            request.settimeout(30)
            conn = self.api._ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            self.api._count_handshake_failure()
            return
        self.api._track(conn, True)
        if self.api._stopping:
            conn.close()
            self.api._track(conn, False)
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            self.api._track(conn, False)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # a client that went away is not a test failure


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kha-kubeapi"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        self.server.api._dispatch(self, "GET")

    def do_POST(self):
        self.server.api._dispatch(self, "POST")

    def do_PUT(self):
        self.server.api._dispatch(self, "PUT")

    def do_PATCH(self):
        self.server.api._dispatch(self, "PATCH")

    def do_DELETE(self):
        self.server.api._dispatch(self, "DELETE")

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


SLICES = ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES = ("coordination.k8s.io", "v1", "leases", "Lease")
# read-only here (served as stored: list with label selectors, get); kha audit reads them
DEPLOYMENTS = ("apps", "v1", "deployments", "Deployment")
PDBS = ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
PODS = ("", "v1", "pods", "Pod")   # the core group: /api/v1/...
RESOURCES = {k[2]: k for k in (SLICES, LEASES, DEPLOYMENTS, PDBS, PODS)}
_PATH_RE = re.compile(r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/namespaces/"
                      r"(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?$")


def _api_version(kind):
    return f"{kind[0]}/{kind[1]}" if kind[0] else kind[1]


class KubeAPI:
    """The stand-in API server. See the module docstring for what it serves.

    Attributes: url ("https://127.0.0.1:PORT"), port, pki, tokens (set of accepted bearer
    tokens), requests (list of dicts: method, path, query, user, watch), handshake_failures.
    """

    def __init__(self, pki, tokens=(DEFAULT_TOKEN,), host="127.0.0.1", port=0):
        self.pki = pki
        self.tokens = set(tokens)
        self.host = host
        self.port = port
        self.requests = []
        self.handshake_failures = 0
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._rv = 100
        self._compacted = 0
        self._objects = {r: {} for r in RESOURCES}   # resource -> {(ns, name): obj}
        self._history = []            # (rv, resource, type, obj) in order
        self._watches = set()
        self._fail_watches = []       # HTTP codes for the next watch requests
        self._fail_requests = []      # (code, reason) for the next non-watch requests
        self._conns = set()
        self._stopping = False
        self._server = None
        self._thread = None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.server_cert, pki.server_key)
        ctx.load_verify_locations(pki.ca_cert)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        self._ssl_ctx = ctx

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        """Starts serving (again, on the same port after stop(), with the same state)."""
        self._stopping = False
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        _Server.address_family = family
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops serving and closes every connection (watches end abruptly); keeps the state."""
        if not self._server:
            return
        with self._cond:
            self._stopping = True
            for w in self._watches:
                w.closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None

        def all_closed():
            # a connection accepted just before the shutdown may register itself late
            with self._lock:
                conns = list(self._conns)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return not conns
        wait_until(all_closed, 10, "connections to close", interval=0.05)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def resource_version(self):
        """The current resourceVersion (as the API writes it: a string)."""
        with self._lock:
            return str(self._rv)

    # -- EndpointSlices ----------------------------------------------------------------------

    def set_slice(self, name, endpoints, port=6443, port_name="https", ports=None,
                  address_type="IPv4", namespace="default", service="kubernetes"):
        """Creates (ADDED) or replaces (MODIFIED) EndpointSlice namespace/name.

        endpoints: addresses (ready, conditions as the apiserver sets them) or dicts
        {"addresses": [...], "conditions": {...}} written as given (omit a condition for nil).
        ports: the full ports list (overrides port/port_name); [] or None-like for no ports.
        Returns the new resourceVersion.
        """
        eps = []
        for e in endpoints:
            if isinstance(e, str):
                e = {"addresses": [e], "conditions": {"ready": True, "serving": True,
                                                       "terminating": False}}
            eps.append(copy.deepcopy(e))
        if ports is None:
            ports = [{"name": port_name, "port": port, "protocol": "TCP"}]
        obj = {
            "kind": "EndpointSlice",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": {
                "name": name, "namespace": namespace,
                "labels": {"kubernetes.io/service-name": service,
                           "endpointslice.kubernetes.io/managed-by":
                               "endpointslice-controller.k8s.io"},
            },
            "addressType": address_type,
            # as Go encodes a nil slice: an empty slice has "endpoints": null
            "endpoints": eps or None,
            "ports": ports or None,
        }
        return self._put_object(SLICES[2], obj)[0]

    def delete_slice(self, name, namespace="default"):
        """Deletes an EndpointSlice (DELETED to watchers). Returns the new resourceVersion."""
        return self._delete_object(SLICES[2], namespace, name)

    def send_bookmark(self, resource="endpointslices"):
        """Sends a BOOKMARK at the current version to the watches that asked for bookmarks."""
        with self._cond:
            kind = RESOURCES[resource]
            bm = {"type": "BOOKMARK", "object": {
                "kind": kind[3], "apiVersion": _api_version(kind),
                "metadata": {"resourceVersion": str(self._rv), "creationTimestamp": None}}}
            for w in self._watches:
                if w.kind == resource and w.bookmarks:
                    w.extra.append(bm)
            self._cond.notify_all()
            return str(self._rv)

    def send_watch_error(self, code=410, reason="Expired", message=None):
        """Sends an ERROR event (a Status with code) to every watch, which then ends."""
        with self._cond:
            msg = message or f"too old resource version: 1 ({self._rv})"
            ev = {"type": "ERROR", "object": status_object(code, reason, msg)}
            for w in self._watches:
                w.extra.append(ev)
                w.extra.append(None)  # then close
            self._cond.notify_all()

    def compact(self):
        """Forgets the history: a watch from an older version gets ERROR 410 Expired."""
        with self._cond:
            self._compacted = self._rv
            self._history.clear()

    def close_watches(self):
        """Ends every live watch cleanly (as an apiserver does at timeoutSeconds)."""
        with self._cond:
            for w in self._watches:
                w.closed = True
            self._cond.notify_all()

    def fail_next_watches(self, count=1, code=410):
        """Answers the next count watch requests with HTTP code and a Status (410 Expired)."""
        with self._lock:
            self._fail_watches.extend([code] * count)

    def fail_next_requests(self, count=1, code=503, reason="ServiceUnavailable"):
        """Answers the next count non-watch requests with HTTP code and a Status."""
        with self._lock:
            self._fail_requests.extend([(code, reason)] * count)

    @property
    def active_watches(self):
        with self._lock:
            return sum(1 for w in self._watches if not w.closed)

    def watch_requests(self):
        """The logged watch requests (dicts), oldest first."""
        with self._lock:
            return [r for r in self.requests if r["watch"]]

    # -- Leases ------------------------------------------------------------------------------

    def get_lease(self, namespace, name):
        """The stored Lease object (a copy) or None."""
        with self._lock:
            obj = self._objects[LEASES[2]].get((namespace, name))
            return copy.deepcopy(obj)

    def put_lease(self, namespace, name, spec):
        """Creates or replaces a Lease directly (as another client would). Returns its version."""
        obj = {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
               "metadata": {"name": name, "namespace": namespace}, "spec": dict(spec)}
        return self._put_object(LEASES[2], obj)[0]

    # -- Deployments, PodDisruptionBudgets, Pods (as kube-apiserver returns them) ------------

    def put_object(self, obj):
        """Stores any served object as given (kind decides the resource; ADDED or MODIFIED).
        Returns its resourceVersion."""
        resource = next(r for r, k in RESOURCES.items() if k[3] == obj["kind"])
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = _api_version(RESOURCES[resource])
        return self._put_object(resource, obj)[0]

    def delete_object(self, kind, namespace, name):
        """Deletes an object of kind ("Pod", "Deployment", ...). Returns the new version."""
        resource = next(r for r, k in RESOURCES.items() if k[3] == kind)
        return self._delete_object(resource, namespace, name)

    def put_deployment(self, name, namespace="kube-system", replicas=2, ready=None,
                       labels=None, anti_affinity="preferred", spread=False):
        """A Deployment shaped as kubeadm's CoreDNS one. anti_affinity: "preferred",
        "required" or None; spread: a topologySpreadConstraint on the hostname."""
        labels = dict(labels or {"k8s-app": "kube-dns"})
        pod_spec = {"containers": [{"name": name, "image": "registry.k8s.io/coredns/coredns:"
                                    "v1.11.1", "args": ["-conf", "/etc/coredns/Corefile"]}],
                    "dnsPolicy": "Default", "priorityClassName": "system-cluster-critical"}
        if anti_affinity:
            term = {"labelSelector": {"matchExpressions": [
                {"key": k, "operator": "In", "values": [v]} for k, v in labels.items()]},
                "topologyKey": "kubernetes.io/hostname"}
            aa = ({"requiredDuringSchedulingIgnoredDuringExecution": [term]}
                  if anti_affinity == "required" else
                  {"preferredDuringSchedulingIgnoredDuringExecution":
                   [{"weight": 100, "podAffinityTerm": term}]})
            pod_spec["affinity"] = {"podAntiAffinity": aa}
        if spread:
            pod_spec["topologySpreadConstraints"] = [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": labels}}]
        ready = replicas if ready is None else ready
        status = {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas}
        if ready:   # Go omits zero values
            status["readyReplicas"] = ready
            status["availableReplicas"] = ready
        return self.put_object({
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"creationTimestamp": None, "labels": labels},
                                  "spec": pod_spec},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate":
                                  {"maxUnavailable": 1, "maxSurge": "25%"}}},
            "status": status})

    def put_pdb(self, name, match_labels, namespace="kube-system", min_available=1,
                max_unavailable=None, disruptions_allowed=1):
        """A policy/v1 PodDisruptionBudget (minAvailable, or maxUnavailable when given)."""
        spec = {"selector": {"matchLabels": dict(match_labels)}}
        if max_unavailable is not None:
            spec["maxUnavailable"] = max_unavailable
        else:
            spec["minAvailable"] = min_available
        status = {"observedGeneration": 1, "currentHealthy": 2, "desiredHealthy": 1,
                  "expectedPods": 2}
        if disruptions_allowed:
            status["disruptionsAllowed"] = disruptions_allowed
        return self.put_object({"kind": "PodDisruptionBudget",
                                "metadata": {"name": name, "namespace": namespace},
                                "spec": spec, "status": status})

    def put_pod(self, name, labels, node, namespace="kube-system", ready=True,
                terminating=False):
        """A running Pod on node with the given labels (Ready as asked)."""
        st = "True" if ready else "False"
        md = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if terminating:
            md["deletionTimestamp"] = _now_rfc3339()
        return self.put_object({
            "kind": "Pod", "metadata": md,
            "spec": {"nodeName": node, "containers": [{"name": name.split("-")[0],
                                                        "image": "registry.k8s.io/pause"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": st},
                {"type": "ContainersReady", "status": st},
                {"type": "PodScheduled", "status": "True"}]}})

    # -- kubeconfig --------------------------------------------------------------------------

    def write_kubeconfig(self, path, auth="token", inline=False, server=None, ca_cert=None,
                         tls_server_name=None, insecure=False, token=None, relative=False,
                         context="kha-test", namespace=None, extra_user=None):
        """Writes a kubeconfig for this server (k8s.write_kubeconfig with this server's URL,
        CA, first token and client certificate); returns its path. ca_cert: another CA file
        to trust (wrong-CA tests)."""
        from kha_testlib.k8s import write_kubeconfig
        return write_kubeconfig(path, server or self.url, ca=ca_cert or self.pki.ca_cert,
                                auth=auth, token=token or next(iter(self.tokens)),
                                cert=self.pki.client_cert, key=self.pki.client_key,
                                inline=inline, relative=relative,
                                tls_server_name=tls_server_name, insecure=insecure,
                                context=context, namespace=namespace, extra_user=extra_user)

    # -- internals ---------------------------------------------------------------------------

    def _count_handshake_failure(self):
        with self._lock:
            self.handshake_failures += 1

    def _track(self, conn, add):
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _bump(self):
        self._rv += 1
        return self._rv

    def _put_object(self, resource, obj, expect_rv=None, create_only=False):
        """Stores obj (ADDED or MODIFIED). Returns (resourceVersion, stored copy, created)."""
        with self._cond:
            md = obj["metadata"]
            key = (md["namespace"], md["name"])
            old = self._objects[resource].get(key)
            if old and create_only:
                raise _APIError(409, "AlreadyExists",
                                f'{_qualified(resource)} "{md["name"]}" already exists',
                                _details(resource, md["name"]))
            if old and expect_rv is not None:
                if not expect_rv:
                    raise _APIError(422, "Invalid",
                                    f'{_kind(resource)}.{_group(resource)} "{md["name"]}" is '
                                    "invalid: metadata.resourceVersion: Invalid value: 0x0: "
                                    "must be specified for an update",
                                    _details(resource, md["name"]))
                if expect_rv != old["metadata"]["resourceVersion"]:
                    raise _APIError(409, "Conflict",
                                    f'Operation cannot be fulfilled on {_qualified(resource)} '
                                    f'"{md["name"]}": the object has been modified; please '
                                    "apply your changes to the latest version and try again",
                                    _details(resource, md["name"]))
            stored = copy.deepcopy(obj)
            smd = stored["metadata"]
            smd["resourceVersion"] = str(self._bump())
            if old:
                smd["uid"] = old["metadata"]["uid"]
                smd["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            else:
                smd["uid"] = str(uuid.uuid4())
                smd["creationTimestamp"] = _now_rfc3339()
            self._objects[resource][key] = stored
            self._history.append((self._rv, resource, "MODIFIED" if old else "ADDED",
                                  copy.deepcopy(stored)))
            self._cond.notify_all()
            return smd["resourceVersion"], copy.deepcopy(stored), old is None

    def _delete_object(self, resource, namespace, name):
        with self._cond:
            old = self._objects[resource].pop((namespace, name), None)
            if not old:
                raise _APIError(404, "NotFound", f'{_qualified(resource)} "{name}" not found',
                                _details(resource, name))
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._bump())
            self._history.append((self._rv, resource, "DELETED", gone))
            self._cond.notify_all()
            return gone["metadata"]["resourceVersion"]

    def _authenticate(self, h):
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return "token:" + auth[7:12]
        cert = h.connection.getpeercert()
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return "cert:" + v
        return None

    def _dispatch(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        watch = query.get("watch") in ("1", "true")
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        user = self._authenticate(h)
        with self._lock:
            self.requests.append({"method": method, "path": url.path, "query": query,
                                  "user": user, "watch": watch})
            failing = None
            if user and watch and self._fail_watches:
                failing = (self._fail_watches.pop(0), None)
            elif user and not watch and self._fail_requests:
                failing = self._fail_requests.pop(0)
        try:
            if not user:
                raise _APIError(401, "Unauthorized", "Unauthorized")
            if failing:
                code, reason = failing
                if code == 410:
                    raise _APIError(410, "Expired",
                                    "The resourceVersion for the provided watch is too old.")
                raise _APIError(code, reason or "InternalError", f"injected failure {code}")
            m = _PATH_RE.match(url.path)
            if not m:
                raise _APIError(404, "NotFound", "the server could not find the requested "
                                "resource")
            kind = RESOURCES.get(m["resource"])
            if not kind or (m["group"] or "", m["version"]) != kind[:2]:
                raise _APIError(404, "NotFound", "the server could not find the requested "
                                "resource")
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise _APIError(400, "BadRequest", f"invalid JSON: {e}") from None
            self._route(h, method, kind, m["ns"], m["name"], query, watch, body)
        except _APIError as e:
            h.send_json(e.status["code"], e.status)

    def _route(self, h, method, kind, ns, name, query, watch, body):
        resource = kind[2]
        if method == "GET" and name is None and watch:
            return self._serve_watch(h, kind, ns, query)
        if method == "GET" and name is None:
            return h.send_json(200, self._list(kind, ns, query.get("labelSelector", "")))
        if method == "GET":
            with self._lock:
                obj = self._objects[resource].get((ns, name))
            if not obj:
                raise _APIError(404, "NotFound", f'{_qualified(resource)} "{name}" not found',
                                _details(resource, name))
            return h.send_json(200, obj)
        if method == "DELETE" and name:
            self._delete_object(resource, ns, name)
            return h.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Success",
                                     "details": _details(resource, name)})
        if resource != LEASES[2]:
            raise _APIError(405, "MethodNotAllowed", f"{method} is not supported here")
        if method == "POST" and name is None:
            obj = self._check_lease(body, ns, None)
            if obj["metadata"].get("resourceVersion"):
                raise _APIError(500, "InternalError",
                                "resourceVersion should not be set on objects to be created")
            _, stored, _ = self._put_object(resource, obj, create_only=True)
            return h.send_json(201, stored)
        if method == "PATCH" and name:
            ctype = h.headers.get("Content-Type", "")
            if ctype != "application/merge-patch+json":
                raise _APIError(415, "UnsupportedMediaType",
                                f'the body of the request was in an unknown format - accepted '
                                f'media types include: application/merge-patch+json (got '
                                f'"{ctype}")')
            with self._lock:
                old = self._objects[resource].get((ns, name))
            if not old:
                raise _APIError(404, "NotFound", f'{_qualified(resource)} "{name}" not found',
                                _details(resource, name))
            obj = self._check_lease(_merge_patch(copy.deepcopy(old), body), ns, name)
            _, stored, _ = self._put_object(resource, obj,
                                            expect_rv=obj["metadata"]["resourceVersion"])
            return h.send_json(200, stored)
        if method == "PUT" and name:
            obj = self._check_lease(body, ns, name)
            _, stored, created = self._put_object(
                resource, obj, expect_rv=obj["metadata"].get("resourceVersion", ""))
            return h.send_json(201 if created else 200, stored)
        raise _APIError(405, "MethodNotAllowed", f"{method} is not supported here")

    @staticmethod
    def _check_lease(body, ns, url_name):
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise _APIError(400, "BadRequest", "the body is not a Lease object")
        if body.get("kind") not in (None, "Lease") or \
                body.get("apiVersion") not in (None, "coordination.k8s.io/v1"):
            raise _APIError(400, "BadRequest", "the body is not a coordination.k8s.io/v1 Lease")
        md = body["metadata"]
        name = md.get("name")
        if not isinstance(name, str) or not DNS1123_RE.match(name):
            raise _APIError(422, "Invalid", "Lease is invalid: metadata.name: Required value")
        if url_name is not None and name != url_name:
            raise _APIError(400, "BadRequest", f"the name of the object ({name}) does not "
                            f"match the name on the URL ({url_name})")
        if md.get("namespace", ns) != ns:
            raise _APIError(400, "BadRequest", "the namespace of the provided object does not "
                            "match the namespace sent on the request")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise _APIError(400, "BadRequest", "spec: not an object")
        for k in ("acquireTime", "renewTime"):
            v = spec.get(k)
            if v is not None and (not isinstance(v, str) or not MICROTIME_RE.match(v)):
                raise _APIError(400, "BadRequest", f'parsing time "{v}" as '
                                '"2006-01-02T15:04:05.000000Z07:00": cannot parse')
        d = spec.get("leaseDurationSeconds")
        if d is not None and (not isinstance(d, int) or d <= 0):
            raise _APIError(422, "Invalid", f'Lease.coordination.k8s.io "{name}" is invalid: '
                            "spec.leaseDurationSeconds: Invalid value: must be greater than 0")
        t = spec.get("leaseTransitions")
        if t is not None and (not isinstance(t, int) or t < 0):
            raise _APIError(422, "Invalid", f'Lease.coordination.k8s.io "{name}" is invalid: '
                            "spec.leaseTransitions: Invalid value: must be >= 0")
        obj = copy.deepcopy(body)
        obj["kind"], obj["apiVersion"] = "Lease", "coordination.k8s.io/v1"
        obj["metadata"]["namespace"] = ns
        return obj

    def _list(self, kind, ns, selector):
        sel = _parse_selector(selector)
        with self._lock:
            items = [copy.deepcopy(o) for (ons, _), o in sorted(self._objects[kind[2]].items())
                     if ons == ns and _matches(o, sel)]
            for it in items:   # list items carry no kind/apiVersion, as the API sends them
                it.pop("kind", None)
                it.pop("apiVersion", None)
            return {"kind": kind[3] + "List", "apiVersion": _api_version(kind),
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _serve_watch(self, h, kind, ns, query):
        sel = _parse_selector(query.get("labelSelector", ""))
        try:
            timeout = float(query.get("timeoutSeconds", "1800"))
        except ValueError:
            raise _APIError(400, "BadRequest", "bad timeoutSeconds") from None
        rv_s = query.get("resourceVersion", "")
        w = _Watch(kind[2], ns, sel, query.get("allowWatchBookmarks") == "true")
        initial = []
        with self._cond:
            if rv_s in ("", "0"):
                cursor = self._rv
                initial = [{"type": "ADDED", "object": copy.deepcopy(o)}
                           for (ons, _), o in sorted(self._objects[kind[2]].items())
                           if ons == ns and _matches(o, sel)]
            else:
                try:
                    cursor = int(rv_s)
                except ValueError:
                    raise _APIError(400, "BadRequest", f"invalid resourceVersion {rv_s}") \
                        from None
                if cursor < self._compacted:
                    initial = [{"type": "ERROR", "object": status_object(
                        410, "Expired", f"too old resource version: {cursor} ({self._rv})")},
                        None]
            self._watches.add(w)
        deadline = time.monotonic() + timeout
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            pending = initial
            while True:
                for ev in pending:
                    if ev is None:
                        raise _EndWatch()
                    h.send_chunk(json.dumps(ev).encode() + b"\n")
                with self._cond:
                    while True:
                        events = [(rv, t, o) for rv, res, t, o in self._history
                                  if rv > cursor and res == kind[2]]
                        if self._stopping or _peer_gone(h.connection):
                            w.closed = True
                        if events or w.extra or w.closed or time.monotonic() >= deadline:
                            break
                        self._cond.wait(min(0.25, max(0.0, deadline - time.monotonic())))
                    pending = []
                    for rv, t, o in events:
                        cursor = rv
                        if o["metadata"]["namespace"] == ns and _matches(o, sel):
                            pending.append({"type": t, "object": copy.deepcopy(o)})
                    pending += w.extra
                    w.extra = []
                    done = w.closed or time.monotonic() >= deadline
                if done and not pending:
                    break
                if done:
                    pending.append(None)
        except _EndWatch:
            pass
        except OSError:
            h.close_connection = True
            return
        finally:
            with self._cond:
                w.closed = True
                self._watches.discard(w)
        try:
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            h.close_connection = True


class _EndWatch(Exception):
    pass


def _peer_gone(conn):
    """Whether a watch's client went away: it sends nothing while a watch streams, so a
    readable socket means EOF (or a reset)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _group(resource):
    return RESOURCES[resource][0]


def _kind(resource):
    return RESOURCES[resource][3]


def _qualified(resource):
    return f"{resource}.{_group(resource)}"


def _details(resource, name):
    return {"name": name, "group": _group(resource), "kind": resource}


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge_patch(target.get(k), v)
    return target


def _parse_selector(s):
    """Equality-based label selectors: "a=b,c==d,e!=f" -> [(key, op, value)]."""
    out = []
    for term in filter(None, (t.strip() for t in s.split(","))):
        m = re.match(r"^([^!=]+)(==|=|!=)(.*)$", term)
        if not m:
            raise _APIError(400, "BadRequest", f"unable to parse requirement: {term}")
        out.append((m[1], "!=" if m[2] == "!=" else "=", m[3]))
    return out


def _matches(obj, sel):
    labels = obj.get("metadata", {}).get("labels") or {}
    for k, op, v in sel:
        if (labels.get(k) == v) != (op == "="):
            return False
    return True
