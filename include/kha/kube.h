/* SPDX-License-Identifier: MIT */
/*
 * Kubernetes API client: kubeconfig loading, JSON requests and watches over libcurl, discovery
 * of the apiservers from the EndpointSlices of service default/kubernetes, and
 * coordination.k8s.io/v1 Leases. docs/internals/kube-client.md describes the invariants.
 *
 * Threads: a client is used by one thread at a time (one client per thread). The only thing
 * meant to cross threads is the stop fd: when it becomes readable (an eventfd or pipe another
 * thread writes to), every request in progress or started later fails promptly with -ECANCELED
 * and kha_kube_discovery_run() returns 0.
 *
 * Errors: negative errno, the human detail in the optional struct kha_diag. HTTP statuses of the
 * API map to errno as kha_kube_errno_from_status() says (404 -ENOENT, 409 AlreadyExists -EEXIST,
 * 409 Conflict -EAGAIN, 410 -ESTALE, 401 -EACCES, 403 -EPERM, ...).
 */
#ifndef KHA_KUBE_H
#define KHA_KUBE_H

#include <jansson.h>

#include "kha/diag.h"

/* ------------------------------------------------------------------------------------------ */
/* kubeconfig */

/* Bytes decoded from a *-data field of the kubeconfig (PEM text, not NUL-terminated). */
struct kha_kube_blob {
	unsigned char *data;
	size_t len;
};

/*
 * The resolved connection settings: one cluster and one user, as the chosen context names them.
 * Paths are absolute (relative ones are resolved against the kubeconfig's directory). For each
 * of CA, client certificate and key, at most one of the file and the data is set (the data wins,
 * as in kubectl). All strings are owned by the struct; NULL when unset.
 */
struct kha_kube_config {
	char *source;	 /* the kubeconfig path, or "in-cluster" */
	char *context;	 /* the context used (NULL in-cluster) */
	char *namespace; /* the context's namespace, or the service account's; "default" if unset */
	char *server;	 /* "https://host:port[/prefix]" */
	char *tls_server_name; /* the name to verify the server certificate against (NULL: host) */
	bool insecure_skip_tls_verify;
	char *ca_file;
	struct kha_kube_blob ca_data;
	char *cert_file;
	struct kha_kube_blob cert_data;
	char *key_file;
	struct kha_kube_blob key_data;
	char *token;	  /* a bearer token given inline */
	char *token_file; /* re-read at most once a minute (service-account tokens rotate) */
	char *proxy_url;  /* clusters[].cluster.proxy-url; environment proxies are never used */
};

#define KHA_KUBE_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kha_kube_load_opts {
	const char *kubeconfig;		/* --kubeconfig; NULL: $KUBECONFIG, then in-cluster */
	const char *context;		/* --context; NULL: the file's current-context */
	const char *serviceaccount_dir; /* NULL: KHA_KUBE_SERVICEACCOUNT_DIR (tests change it) */
};

/*
 * Finds and loads the configuration: opts->kubeconfig if set, else the first file of the
 * colon-separated $KUBECONFIG (the others are ignored: kha does not merge kubeconfigs), else the
 * in-cluster service account (serviceaccount_dir/{token,ca.crt,namespace} with
 * $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT). opts may be NULL. Files the config
 * names are checked to exist and hold PEM data now, so that errors name the file and the field.
 * On success *ret is a new config the caller frees with kha_kube_config_free().
 * Returns -ENOENT (nothing found, or a named file missing), -EACCES, -EINVAL (bad content).
 */
int kha_kube_config_load(const struct kha_kube_load_opts *opts, struct kha_kube_config **ret,
			 struct kha_diag *d) KHA_WUR;

/*
 * Parses kubeconfig text (YAML or JSON) read from path (used for messages and to resolve
 * relative paths; NULL means the current directory) and selects context (NULL: current-context).
 * Returns 0 and a new config in *ret, or -EINVAL with the file, the field and the reason in d
 * (or -ENOENT/-EACCES for a file it names).
 */
int kha_kube_config_parse(const char *text, size_t len, const char *path, const char *context,
			  struct kha_kube_config **ret, struct kha_diag *d) KHA_WUR;

void kha_kube_config_free(struct kha_kube_config *cfg);
KHA_DEFINE_CLEANUP(struct kha_kube_config *, kha_kube_config_free)

/* ------------------------------------------------------------------------------------------ */
/* client */

struct kha_kube_client;

/*
 * Creates a client for cfg (copied: the caller keeps cfg). TLS verification is on unless the
 * kubeconfig says insecure-skip-tls-verify. Default timeouts: connect 10 s, request 30 s.
 * Returns 0, -ENOMEM or -EINVAL (unusable server URL).
 */
int kha_kube_client_new(const struct kha_kube_config *cfg, struct kha_kube_client **ret,
			struct kha_diag *d) KHA_WUR;
void kha_kube_client_free(struct kha_kube_client *c);
KHA_DEFINE_CLEANUP(struct kha_kube_client *, kha_kube_client_free)

/*
 * Connects to url ("https://127.0.0.1:7443", "https://[::1]:7443") instead of the kubeconfig's
 * server, keeping its credentials, and verifies the server certificate against tls_server_name,
 * or when NULL against the kubeconfig's tls-server-name, or else its server's host name (the
 * apiserver's certificate does not need to name the address connected to). A path in url
 * replaces the server's path prefix. url NULL restores the kubeconfig's server.
 * Returns 0, -EINVAL (bad url) or -ENOMEM.
 */
int kha_kube_client_set_server(struct kha_kube_client *c, const char *url,
			       const char *tls_server_name, struct kha_diag *d) KHA_WUR;

/* Sets the connect and whole-request timeouts (0 keeps the current value). */
void kha_kube_client_set_timeouts(struct kha_kube_client *c, uint64_t connect_timeout_us,
				  uint64_t request_timeout_us);

/* Sets the stop fd (-1: none): once readable, requests fail at once with -ECANCELED. */
void kha_kube_client_set_stop_fd(struct kha_kube_client *c, int stop_fd);

/* The server requests go to, as the user knows it ("https://10.0.0.1:6443"); for messages. */
const char *kha_kube_client_server(const struct kha_kube_client *c);
/* The configured namespace ("default" if none). */
const char *kha_kube_client_namespace(const struct kha_kube_client *c);

/*
 * Sends method ("GET", "POST", "PUT", "PATCH", "DELETE") to path ("/api/v1/...", with a query
 * if needed; the caller escapes it) with body (NULL: none; PATCH sends a JSON object as a merge
 * patch, an array as a JSON patch). On a 2xx answer returns the HTTP status and sets *ret_body
 * (if ret_body is not NULL) to the decoded JSON reply, which the caller json_decref()s. Otherwise
 * returns a negative errno: from the API's Status (kha_kube_errno_from_status), -ECANCELED
 * (stopped), -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH, -EACCES (TLS: server not
 * trusted), -EPROTO (TLS or HTTP failure), -EBADMSG (reply is not JSON), -EFBIG (reply over
 * 64 MiB); d says "kube SERVER: METHOD PATH: what happened".
 */
int kha_kube_request(struct kha_kube_client *c, const char *method, const char *path,
		     const json_t *body, json_t **ret_body, struct kha_diag *d) KHA_WUR;

enum kha_kube_event_type {
	KHA_KUBE_EVENT_ADDED,
	KHA_KUBE_EVENT_MODIFIED,
	KHA_KUBE_EVENT_DELETED,
	KHA_KUBE_EVENT_BOOKMARK,
	KHA_KUBE_EVENT_ERROR,
};

/* "ADDED", "MODIFIED", ... */
const char *kha_kube_event_type_name(enum kha_kube_event_type type);

/*
 * Called once per watch event with the event's object (borrowed: json_incref() it to keep it).
 * Returns 0 to go on, > 0 to stop the watch (kha_kube_watch returns that value), < 0 to abort it
 * with that error.
 */
typedef int (*kha_kube_watch_fn)(enum kha_kube_event_type type, json_t *object, void *userdata);

/*
 * Watches path (a collection URL with its query, e.g. "...?labelSelector=x&resourceVersion=5";
 * "watch=1" and "timeoutSeconds=timeout_s" are added). The client's request timeout is replaced
 * by timeout_s plus 15 s for this call, so a silent server cannot hold it forever. Events arrive
 * as JSON lines and are handed to fn in order. An ERROR event ends the watch: the Status it
 * carries is returned as an errno (-ESTALE for 410 Gone / Expired) with its message in d, and fn
 * is not called for it. Returns 0 when the server ends the watch (timeoutSeconds), fn's positive
 * value, or a negative errno as kha_kube_request does (-EBADMSG for an undecodable line).
 */
int kha_kube_watch(struct kha_kube_client *c, const char *path, unsigned timeout_s,
		   kha_kube_watch_fn fn, void *userdata, struct kha_diag *d) KHA_WUR;

/* ------------------------------------------------------------------------------------------ */
/* pure decoders and encoders (no I/O; unit-tested and fuzzed) */

/* The API's Status object (kind: Status), as error replies and ERROR watch events carry it. */
struct kha_kube_status {
	int code;	   /* the HTTP status it reports (0 if absent) */
	char reason[64];   /* "NotFound", "Conflict", "AlreadyExists", "Expired", "Gone", ... */
	char message[384]; /* truncated if longer */
};

/*
 * Decodes a Status from JSON text. Returns 0, or -EBADMSG (not JSON, or not an object with a
 * Status's fields).
 */
int kha_kube_status_decode(const char *text, size_t len, struct kha_kube_status *ret,
			   struct kha_diag *d) KHA_WUR;

/*
 * Maps a Status (or a bare HTTP code with an empty reason) to a negative errno: 400 -EINVAL,
 * 401 -EACCES, 403 -EPERM, 404 -ENOENT, 409 -EEXIST (reason AlreadyExists) or -EAGAIN (Conflict:
 * re-read and retry), 410 -ESTALE, 422 -EINVAL, 429 and 5xx -EBUSY, 504 -ETIMEDOUT, other -EPROTO.
 */
int kha_kube_errno_from_status(const struct kha_kube_status *st);

/*
 * Decodes one watch line {"type": "...", "object": {...}}. *ret_object is a new reference the
 * caller json_decref()s. Returns 0 or -EBADMSG (malformed JSON, unknown type, no object).
 */
int kha_kube_watch_event_decode(const char *text, size_t len, enum kha_kube_event_type *ret_type,
				json_t **ret_object, struct kha_diag *d) KHA_WUR;

/*
 * Times as the API writes them: RFC 3339 in UTC. Parsing accepts any fraction of a second (or
 * none) and a "Z" or "+hh:mm" offset; times are microseconds since the epoch. Returns 0 or
 * -EINVAL.
 */
int kha_kube_time_parse(const char *s, int64_t *ret_us) KHA_WUR;

/* Formats a MicroTime, "2006-01-02T15:04:05.000000Z" (27 chars). Returns buf ("" on error). */
#define KHA_KUBE_MICROTIME_SIZE 28
const char *kha_kube_microtime_format(char *buf, size_t size, int64_t us);

/* ------------------------------------------------------------------------------------------ */
/* discovery of the apiservers: EndpointSlices of a service (default/kubernetes) */

struct kha_kube_endpoint {
	char addr[64]; /* "10.0.0.1:6443" or "[fd00::1]:6443": kha_parse_sockaddr() takes it */
	char ip[46];   /* "10.0.0.1" or "fd00::1" (canonical form) */
	uint16_t port;
	bool ready;	  /* conditions.ready, nil = true */
	bool serving;	  /* conditions.serving, nil = ready */
	bool terminating; /* conditions.terminating, nil = false */
};

/*
 * A backend set: the union of the usable endpoints of every slice of the service, deduplicated
 * and sorted (by address family, address, port). Usable means ready; when no endpoint at all is
 * ready, the serving ones (terminating but still serving) are given instead and serving_fallback
 * is set, as kube-proxy does. empty is set when the API reports no usable endpoint (no slice, an
 * empty slice, nothing ready or serving): the consumer decides what to do (the proxy keeps its
 * seed backends rather than dropping to zero).
 */
struct kha_kube_endpoint_set {
	struct kha_kube_endpoint *endpoints;
	size_t n_endpoints;
	size_t n_slices; /* slices merged */
	bool empty;
	bool serving_fallback;
	char *resource_version; /* of the list or the latest event */
};

/* Frees what a set holds (not the struct itself); the set is then empty. */
void kha_kube_endpoint_set_release(struct kha_kube_endpoint_set *set);
/* Deep copy into *ret (which the caller releases). Returns 0 or -ENOMEM. */
int kha_kube_endpoint_set_copy(const struct kha_kube_endpoint_set *set,
			       struct kha_kube_endpoint_set *ret) KHA_WUR;
/* Whether two sets have the same endpoints and flags (the resource version is not compared). */
bool kha_kube_endpoint_set_equal(const struct kha_kube_endpoint_set *a,
				 const struct kha_kube_endpoint_set *b);

/* A new set: borrowed for the call only (kha_kube_endpoint_set_copy() to keep it). */
typedef void (*kha_kube_endpoints_fn)(const struct kha_kube_endpoint_set *set, void *userdata);
/* A failed list or watch: err, the message, and when the next attempt comes. */
typedef void (*kha_kube_discovery_error_fn)(int err, const char *msg, uint64_t retry_in_us,
					    void *userdata);

struct kha_kube_discovery_opts {
	const char *namespace;	      /* NULL: "default" */
	const char *service;	      /* NULL: "kubernetes" */
	const char *port_name;	      /* NULL: "https"; a slice's only TCP port is used otherwise */
	unsigned watch_timeout_s;     /* 0: 300 (the server ends each watch after that) */
	uint64_t backoff_initial_us;  /* 0: 500 ms */
	uint64_t backoff_max_us;      /* 0: 30 s */
	kha_kube_endpoints_fn on_set; /* required */
	kha_kube_discovery_error_fn on_error; /* optional */
	void *userdata;
};

/*
 * Runs discovery until stop_fd (required: an eventfd or pipe another thread writes to) becomes
 * readable: lists the service's EndpointSlices (the first list from the apiserver's cache,
 * resourceVersion=0), delivers the set, then watches from the list's resourceVersion with
 * bookmarks, delivering each changed set (and only changed ones). A 410 Gone (as HTTP status or
 * ERROR event) relists, consistently; any other failure (API error, disconnect, bad
 * credentials) is reported to on_error and retried with capped, jittered exponential back-off,
 * while the last set stays the one delivered. Blocks: run it in its own thread with its own
 * client (its stop fd is set to stop_fd meanwhile). Returns 0 when stopped, -EINVAL for bad
 * opts; never gives up on its own.
 */
int kha_kube_discovery_run(struct kha_kube_client *c, const struct kha_kube_discovery_opts *opts,
			   int stop_fd, struct kha_diag *d) KHA_WUR;

/*
 * Lists the service's EndpointSlices once (opts' callbacks and back-off are not used) and sets
 * *ret to the merged set, which the caller releases. Returns 0 or the request's error.
 */
int kha_kube_endpoints_list(struct kha_kube_client *c, const struct kha_kube_discovery_opts *opts,
			    struct kha_kube_endpoint_set *ret, struct kha_diag *d) KHA_WUR;

/* ------------------------------------------------------------------------------------------ */
/* Leases (coordination.k8s.io/v1), for leader election */

struct kha_kube_lease {
	char namespace[64];
	char name[254];
	char resource_version[128]; /* set by get/create/update; update requires it */
	char holder_identity[256];  /* "" = not held */
	int32_t lease_duration_s;   /* 0 = unset */
	int64_t acquire_time_us;    /* wall clock, µs since the epoch; 0 = unset */
	int64_t renew_time_us;	    /* idem */
	int32_t lease_transitions;
};

/*
 * Whether s is a name the API accepts for a namespace (max 63) or an object (max 253): lower
 * case letters, digits, '-' and '.', so that it goes into a request path as is.
 */
bool kha_kube_name_valid(const char *s, size_t max);

/*
 * Decodes a Lease object from JSON text. Returns 0, or -EBADMSG (malformed, wrong types, bad
 * times, a string too long for its field).
 */
int kha_kube_lease_decode(const char *text, size_t len, struct kha_kube_lease *ret,
			  struct kha_diag *d) KHA_WUR;

/*
 * Encodes a Lease object (apiVersion, kind, metadata with resourceVersion when set, spec with
 * the set fields; times as MicroTime). Returns a new JSON text to free(), or NULL (-ENOMEM).
 */
char *kha_kube_lease_encode(const struct kha_kube_lease *lease);

/* Gets lease namespace/name. Returns 0, -ENOENT (no such lease) or a request error. */
int kha_kube_lease_get(struct kha_kube_client *c, const char *namespace, const char *name,
		       struct kha_kube_lease *ret, struct kha_diag *d) KHA_WUR;

/*
 * Creates lease (its namespace, name and spec; resource_version must be empty). On success *ret
 * (may be NULL, may be lease itself) receives the stored lease with its resource version.
 * Returns 0, -EEXIST (AlreadyExists: someone created it first) or a request error.
 */
int kha_kube_lease_create(struct kha_kube_client *c, const struct kha_kube_lease *lease,
			  struct kha_kube_lease *ret, struct kha_diag *d) KHA_WUR;

/*
 * Replaces lease (PUT) if its resource_version is still the stored one (optimistic
 * concurrency). On success *ret (may be NULL, may be lease) receives the stored lease with its
 * new resource version. Returns 0, -EAGAIN (409 Conflict: modified since it was read; get it
 * again and decide again), -EINVAL (no resource_version) or a request error. If the lease was
 * deleted meanwhile the API creates it (Leases allow create-on-update), which is a success.
 */
int kha_kube_lease_update(struct kha_kube_client *c, const struct kha_kube_lease *lease,
			  struct kha_kube_lease *ret, struct kha_diag *d) KHA_WUR;

#endif
