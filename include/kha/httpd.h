/* SPDX-License-Identifier: MIT */
/*
 * A small non-blocking HTTP/1.1 server on the event loop, for the admin endpoints of daemons:
 * /metrics (Prometheus text from a struct kha_metrics), /healthz, /readyz, plus routes the daemon
 * registers (a JSON status, the FleetLock protocol of kha lock serve, ...), over plain HTTP or
 * TLS (kha_httpd_set_tls), with optional client certificates.
 *
 * Deliberately small: one request per connection (Connection: close); the request head bounded
 * to KHA_HTTPD_MAX_REQUEST bytes (431 beyond), a body only for routes that take one and only
 * with one Content-Length (no chunked bodies), bounded by the route; one deadline,
 * KHA_HTTPD_TIMEOUT_US from accept, for the TLS handshake and the whole request (a trickling
 * client gets 408 or is closed); at most KHA_HTTPD_MAX_CLIENTS connections at once. When full,
 * a new connection evicts the oldest one that is still handshaking or sending its request (its
 * slot is worth less than a fresh one: the health check of a kubelet, say); when the process is
 * out of descriptors, one kept in reserve lets the server accept anyway. After an answer the
 * server half-closes and reads what the client still sends (lingering close, at most
 * KHA_HTTPD_LINGER_US), so the client reads the answer before the connection ends, even an early
 * one such as 431. Garbage gets a 400 and a close; nothing a client sends can make it allocate
 * more than the bounds above.
 *
 * Ownership: the server belongs to its creator and runs on its loop (which must outlive it).
 * Freeing it closes every connection at once, whatever state it is in.
 */
#ifndef KHA_HTTPD_H
#define KHA_HTTPD_H

#include <stdio.h>
#include "kha/diag.h"
#include "kha/loop.h"
#include "kha/metrics.h"
#include "kha/net.h"

#define KHA_HTTPD_MAX_REQUEST	     8192
#define KHA_HTTPD_MAX_CLIENTS	     64
#define KHA_HTTPD_TIMEOUT_US	     (5 * KHA_USEC_PER_SEC)
#define KHA_HTTPD_HANDLER_TIMEOUT_US (30 * KHA_USEC_PER_SEC)
#define KHA_HTTPD_LINGER_US	     (2 * KHA_USEC_PER_SEC)

struct kha_httpd;

struct kha_httpd_request {
	char method[8];
	char path[1024];	 /* decoded of nothing: the raw path, without the query */
	char query[1024];	 /* after '?', "" when absent */
	uint64_t content_length; /* of the body; 0 when absent */
	/* set by the parser: the raw head (request line to blank line), valid with the buffer */
	const char *head;
	size_t head_len;
	/* set by the server for handlers (valid during the call only) */
	const char *body; /* content_length bytes, NUL-terminated; "" without a body */
	const struct kha_httpd_tls_peer *peer; /* the client's certificate; NULL over plain HTTP */
};

struct kha_httpd_pending;

struct kha_httpd_response {
	int status;		  /* 200 by default */
	const char *content_type; /* static string; "text/plain; charset=utf-8" by default */
	FILE *body;		  /* write the body here (an open_memstream owned by the server) */
	struct kha_httpd_pending *pending; /* private: see kha_httpd_defer() */
};

/* Fills resp (status, content type, body). Runs on the loop thread: must not block. */
typedef void (*kha_httpd_handler_fn)(const struct kha_httpd_request *req,
				     struct kha_httpd_response *resp, void *userdata);
/* Whether the daemon is ready (for /readyz); reason may be filled with why not. */
typedef bool (*kha_httpd_ready_fn)(void *userdata, char *reason, size_t size);

/*
 * Parses the head of a request in buf[0..len) (len may go on into the body). Returns the length
 * of the head (through the blank line) when complete, 0 when more bytes are needed, -EBADMSG
 * when malformed (a bad request line or header field, a Content-Length that is not a number
 * or that appears twice), -E2BIG when the head is longer than KHA_HTTPD_MAX_REQUEST, -ENOTSUP
 * for a Transfer-Encoding. Lines may end in CRLF or a bare LF. Any method token is accepted
 * here: the routes decide. Pure function (no allocation): the fuzz target drives it.
 */
int kha_httpd_parse_request(const char *buf, size_t len, struct kha_httpd_request *ret_req);

/*
 * Copies the value of header field name (case-insensitive; surrounding blanks trimmed) of a
 * parsed request into buf (truncated to size - 1). Returns its length, -ENOENT when absent,
 * -EBADMSG when it appears more than once.
 */
int kha_httpd_header(const struct kha_httpd_request *req, const char *name, char *buf, size_t size);

/*
 * Listens on addr ("127.0.0.1:9443", "[::1]:9443"). metrics may be NULL (then /metrics is 404).
 * Returns 0, or -EINVAL (bad address), -EADDRINUSE and other bind errors, with d saying which.
 */
int kha_httpd_new(struct kha_loop *loop, const char *addr, struct kha_metrics *metrics,
		  struct kha_diag *d, struct kha_httpd **ret) KHA_WUR;
/* Like kha_httpd_new(), on a listening socket of the caller's (the server takes the fd). */
int kha_httpd_new_fd(struct kha_loop *loop, int fd, struct kha_metrics *metrics,
		     struct kha_httpd **ret) KHA_WUR;
void kha_httpd_free(struct kha_httpd *h);

/*
 * Serves TLS with ctx (from kha_httpd_tls_ctx_new(); the server takes a reference) on every
 * connection accepted from now on. The process must ignore SIGPIPE (kha's main does): OpenSSL
 * writes with write(), not send(MSG_NOSIGNAL). With client certificates required, handlers find the
 * verified client's names in req->peer.
 */
void kha_httpd_set_tls(struct kha_httpd *h, struct ssl_ctx_st *ctx);

/* Methods of a route: GET (with HEAD), POST, or any (the handler answers 405 itself). */
#define KHA_HTTPD_GET  (1u << 0)
#define KHA_HTTPD_POST (1u << 1)
#define KHA_HTTPD_ANY  (~0u)

/* Registers a GET/HEAD route for an exact path; replaces a built-in one of the same path. */
int kha_httpd_route(struct kha_httpd *h, const char *path, kha_httpd_handler_fn fn,
		    void *userdata) KHA_WUR;
/*
 * Registers a route for an exact path (NULL: every path no route or built-in serves) taking
 * methods, with a body of at most max_body bytes (longer: 413; another method: 405).
 */
int kha_httpd_route_full(struct kha_httpd *h, const char *path, unsigned methods, size_t max_body,
			 kha_httpd_handler_fn fn, void *userdata) KHA_WUR;
/* Sets the readiness check behind /readyz (without one, /readyz is ready when /healthz is). */
void kha_httpd_set_ready(struct kha_httpd *h, kha_httpd_ready_fn fn, void *userdata);
/* The reason phrase of an HTTP status ("Conflict"); "Error" for one not listed. */
const char *kha_httpd_reason(int status);
/* The bound port (useful when listening on port 0). */
uint16_t kha_httpd_port(const struct kha_httpd *h);
/* Connections evicted because the server was full (since start). */
uint64_t kha_httpd_evicted(const struct kha_httpd *h);

/*
 * Called by a handler that answers later (work on another thread): returns the token to finish
 * the answer with, or NULL (out of memory: the handler then answers as usual). What resp->body
 * received is dropped. The connection waits at most KHA_HTTPD_HANDLER_TIMEOUT_US (then 503).
 */
struct kha_httpd_pending *kha_httpd_defer(struct kha_httpd_response *resp);
/*
 * Sends the answer of a deferred request and frees the token; when the connection is gone
 * (closed, timed out, server freed), only frees the token. Loop thread only. body is copied.
 */
void kha_httpd_finish(struct kha_httpd_pending *p, int status, const char *content_type,
		      const char *body, size_t body_len);

/*
 * The admin endpoints of a daemon on its loop: a metrics registry fed by collect, and the server
 * on addr with /metrics, /healthz, /readyz (ready, when given) and /status (status, when given),
 * each called with userdata. On success the caller owns both (free the server first). Returns 0,
 * -ENOMEM, or the errors of kha_httpd_new() with d prefixed "--metrics-addr".
 */
int kha_httpd_admin_new(struct kha_loop *loop, const char *addr, kha_metrics_collect_fn collect,
			kha_httpd_handler_fn status, kha_httpd_ready_fn ready, void *userdata,
			struct kha_metrics **ret_metrics, struct kha_httpd **ret_httpd,
			struct kha_diag *d) KHA_WUR;

/*
 * An admin server for a daemon without an event loop of its own: /metrics (collect writes the
 * families), /healthz and /readyz, served from a thread with its own loop. collect runs on that
 * thread: it may only read what it reads atomically. The thread blocks every signal.
 * Returns 0, or the errors of kha_httpd_new() (d says which, prefixed "--metrics-addr").
 */
struct kha_httpd_thread;
int kha_httpd_thread_start(const char *addr, kha_metrics_collect_fn collect, void *userdata,
			   struct kha_httpd_thread **ret, struct kha_diag *d) KHA_WUR;
uint16_t kha_httpd_thread_port(const struct kha_httpd_thread *t);
/* Stops the thread and frees everything. NULL is a no-op. */
void kha_httpd_thread_stop(struct kha_httpd_thread *t);

#endif
