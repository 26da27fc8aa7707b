/* SPDX-License-Identifier: MIT */
/*
 * A tiny non-blocking HTTP/1.1 server on the event loop, for the admin endpoints of daemons:
 * /metrics (Prometheus text from a struct kha_metrics), /healthz, /readyz, plus routes the daemon
 * registers (a JSON status, ...).
 *
 * Deliberately small: GET and HEAD only, no request bodies, one request per connection
 * (Connection: close), request head bounded to KHA_HTTPD_MAX_REQUEST bytes, a deadline of
 * KHA_HTTPD_TIMEOUT_US for the whole exchange, at most KHA_HTTPD_MAX_CLIENTS at once (further
 * clients are closed at accept). Garbage gets a 400 and a close; nothing a client sends can make
 * it allocate more than the bounds above.
 *
 * Ownership: the server belongs to its creator and runs on its loop (which must outlive it).
 */
#ifndef KHA_HTTPD_H
#define KHA_HTTPD_H

#include <stdio.h>
#include "kha/diag.h"
#include "kha/loop.h"
#include "kha/metrics.h"

#define KHA_HTTPD_MAX_REQUEST 8192
#define KHA_HTTPD_MAX_CLIENTS 64
#define KHA_HTTPD_TIMEOUT_US  (5 * KHA_USEC_PER_SEC)

struct kha_httpd;

struct kha_httpd_request {
	char method[8];
	char path[1024];  /* decoded of nothing: the raw path, without the query */
	char query[1024]; /* after '?', "" when absent */
};

struct kha_httpd_response {
	int status;		  /* 200 by default */
	const char *content_type; /* static string; "text/plain; charset=utf-8" by default */
	FILE *body;		  /* write the body here (an open_memstream owned by the server) */
};

/* Fills resp (status, content type, body). Runs on the loop thread: must not block. */
typedef void (*kha_httpd_handler_fn)(const struct kha_httpd_request *req,
				     struct kha_httpd_response *resp, void *userdata);
/* Whether the daemon is ready (for /readyz); reason may be filled with why not. */
typedef bool (*kha_httpd_ready_fn)(void *userdata, char *reason, size_t size);

/*
 * Parses the head of a request in buf[0..len). Returns the length of the head (through the
 * blank line) when complete, 0 when more bytes are needed, -EBADMSG when malformed, -E2BIG
 * when the head is longer than KHA_HTTPD_MAX_REQUEST, -ENOTSUP for a method other than GET or
 * HEAD or a request with a body. Pure function (no allocation): the fuzz target drives it.
 */
int kha_httpd_parse_request(const char *buf, size_t len, struct kha_httpd_request *ret_req);

/*
 * Listens on addr ("127.0.0.1:9443", "[::1]:9443"). metrics may be NULL (then /metrics is 404).
 * Returns 0, or -EINVAL (bad address), -EADDRINUSE and other bind errors, with d saying which.
 */
int kha_httpd_new(struct kha_loop *loop, const char *addr, struct kha_metrics *metrics,
		  struct kha_diag *d, struct kha_httpd **ret) KHA_WUR;
void kha_httpd_free(struct kha_httpd *h);

/* Registers a route for an exact path; replaces a built-in one of the same path. */
int kha_httpd_route(struct kha_httpd *h, const char *path, kha_httpd_handler_fn fn,
		    void *userdata) KHA_WUR;
/* Sets the readiness check behind /readyz (without one, /readyz is ready when /healthz is). */
void kha_httpd_set_ready(struct kha_httpd *h, kha_httpd_ready_fn fn, void *userdata);
/* The reason phrase of an HTTP status ("Conflict"); "Error" for one not listed. */
const char *kha_httpd_reason(int status);
/* The bound port (useful when listening on port 0). */
uint16_t kha_httpd_port(const struct kha_httpd *h);

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
