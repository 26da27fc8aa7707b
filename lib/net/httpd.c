// SPDX-License-Identifier: MIT
/*
 * The admin HTTP server (see include/kha/httpd.h).
 *
 * A connection goes HANDSHAKE (TLS only) -> READ -> HANDLER (a deferred answer only) -> WRITE
 * -> LINGER -> closed; any state may end in a close. One timer per connection holds the deadline
 * of its state: the handshake and the whole request share KHA_HTTPD_TIMEOUT_US from accept.
 * Connections in HANDSHAKE, READ and LINGER are "idle": they may be evicted for a new one.
 * A closed connection (C_CLOSED) is freed at the end of the loop pass, never inside a callback.
 * A deferred answer's token outlives its connection: closing clears token->c, and
 * kha_httpd_finish() on a token without connection only frees it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kha/httpd.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

/* out of descriptors, an idle connection younger than this is not evicted for a new one */
#define EVICT_MIN_AGE_US (1 * KHA_USEC_PER_SEC)

/* a Content-Length beyond this is a lie we need not read to refuse */
#define MAX_CONTENT_LENGTH (1ull << 40)

struct route {
	char *path; /* NULL: the fallback */
	unsigned methods;
	size_t max_body;
	kha_httpd_handler_fn fn;
	void *userdata;
	struct route *next;
};

enum cstate { C_HANDSHAKE, C_READ, C_HANDLER, C_WRITE, C_LINGER, C_CLOSED };

struct client {
	struct kha_httpd *h;
	int fd;
	SSL *ssl; /* NULL: plain HTTP */
	enum cstate state;
	struct kha_loop_source *io, *timer;
	char *in; /* KHA_HTTPD_MAX_REQUEST, grown to head + body when a route takes a body */
	size_t in_len, in_cap;
	size_t head_len; /* 0 until the head is parsed */
	struct kha_httpd_request req;
	const struct route *route;
	struct kha_httpd_tls_peer *peer; /* a verified client certificate, or NULL */
	struct kha_httpd_pending *pending;
	bool head_only;
	uint64_t accepted_us;
	char *out;
	size_t out_len, out_off;
	struct client *prev, *next; /* newest first; once closed, next links h->dead */
};

struct kha_httpd_pending {
	struct client *c; /* NULL once the connection is gone */
	bool head_only;
};

struct kha_httpd {
	struct kha_loop *loop;
	struct kha_metrics *metrics;
	int fd;
	int reserve_fd; /* /dev/null, closed to accept one more when out of descriptors */
	uint16_t port;
	SSL_CTX *tls;
	struct kha_loop_source *listen_src, *resume;
	struct route *routes;
	kha_httpd_ready_fn ready;
	void *ready_userdata;
	struct client *clients;
	size_t nclients;
	/* closed during this pass: freed after it (by reap), so a callback still holding one
	 * reads C_CLOSED instead of freed memory */
	struct client *dead;
	struct kha_loop_source *reap;
	uint64_t evicted;
};

/* ---- parser ---- */

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Finds the end of the line starting at p; returns the pointer past its LF, or NULL. */
static const char *line_end(const char *p, const char *end, const char **ret_eol)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));

	if (!lf)
		return NULL;
	*ret_eol = (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
	return lf + 1;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* The value of a header line [colon + 1, eol), blanks trimmed. */
static void field_value(const char *colon, const char *eol, const char **ret_v, size_t *ret_len)
{
	const char *v = colon + 1;

	while (v < eol && (*v == ' ' || *v == '\t'))
		v++;
	while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
		eol--;
	*ret_v = v;
	*ret_len = (size_t)(eol - v);
}

int kha_httpd_parse_request(const char *buf, size_t len, struct kha_httpd_request *req)
{
	const char *end = buf + KHA_MIN(len, (size_t)KHA_HTTPD_MAX_REQUEST);
	const char *p = buf, *eol, *next, *sp1, *sp2, *target, *q;
	bool have_length = false;
	size_t mlen, tlen;

	memset(req, 0, sizeof(*req));
	next = line_end(p, end, &eol);
	if (!next)
		goto need_more;
	/* request line: METHOD SP request-target SP HTTP/1.x */
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1)
		return -EBADMSG;
	mlen = (size_t)(sp1 - p);
	if (mlen == 0 || mlen >= sizeof(req->method))
		return -EBADMSG;
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar(p[i]))
			return -EBADMSG;
	target = sp1 + 1;
	sp2 = memchr(target, ' ', (size_t)(eol - target));
	if (!sp2 || sp2 == target)
		return -EBADMSG;
	if ((size_t)(eol - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return -EBADMSG;
	if (*target != '/')
		return -EBADMSG;
	for (const char *t = target; t < sp2; t++)
		if ((unsigned char)*t <= ' ' || *t == 0x7f)
			return -EBADMSG;
	q = memchr(target, '?', (size_t)(sp2 - target));
	tlen = (size_t)((q ? q : sp2) - target);
	if (tlen >= sizeof(req->path) || (q && (size_t)(sp2 - q - 1) >= sizeof(req->query)))
		return -EBADMSG;
	memcpy(req->method, p, mlen);
	memcpy(req->path, target, tlen);
	if (q)
		memcpy(req->query, q + 1, (size_t)(sp2 - q - 1));
	/* header fields until the empty line */
	p = next;
	for (;;) {
		const char *colon, *v;
		size_t vlen;

		next = line_end(p, end, &eol);
		if (!next)
			goto need_more;
		if (eol == p)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return -EBADMSG;
		for (const char *t = p; t < colon; t++)
			if (!is_tchar(*t))
				return -EBADMSG;
		for (const char *t = colon + 1; t < eol; t++)
			if (((unsigned char)*t < ' ' && *t != '\t') || *t == 0x7f)
				return -EBADMSG;
		if (ieq(p, (size_t)(colon - p), "transfer-encoding"))
			return -ENOTSUP;
		if (ieq(p, (size_t)(colon - p), "content-length")) {
			uint64_t n = 0;

			/* RFC 9112 6.3: two lengths (even equal ones) make the framing doubtful */
			if (have_length)
				return -EBADMSG;
			have_length = true;
			field_value(colon, eol, &v, &vlen);
			if (vlen == 0 || vlen > 13)
				return -EBADMSG;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -EBADMSG;
				n = n * 10 + (uint64_t)(v[i] - '0');
			}
			if (n > MAX_CONTENT_LENGTH)
				return -EBADMSG;
			req->content_length = n;
		}
		p = next;
	}
	req->head = buf;
	req->head_len = (size_t)(next - buf);
	return (int)(next - buf);
need_more:
	return len >= KHA_HTTPD_MAX_REQUEST ? -E2BIG : 0;
}

int kha_httpd_header(const struct kha_httpd_request *req, const char *name, char *buf, size_t size)
{
	const char *end = req->head + req->head_len, *p, *eol, *next;
	int found = -ENOENT;

	if (!req->head)
		return -ENOENT;
	next = line_end(req->head, end, &eol); /* the request line */
	for (p = next; p && p < end; p = next) {
		const char *colon, *v;
		size_t vlen;

		next = line_end(p, end, &eol);
		if (!next || eol == p)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || !ieq(p, (size_t)(colon - p), name))
			continue;
		if (found >= 0)
			return -EBADMSG;
		field_value(colon, eol, &v, &vlen);
		if (size) {
			size_t n = KHA_MIN(vlen, size - 1);
			memcpy(buf, v, n);
			buf[n] = '\0';
		}
		found = (int)KHA_MIN(vlen, (size_t)INT32_MAX);
	}
	return found;
}

/* ---- connections ---- */

static void reserve_fd_open(struct kha_httpd *h)
{
	if (h->reserve_fd < 0)
		h->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void client_free(struct client *c)
{
	free(c->in);
	free(c->out);
	free(c->peer);
	free(c);
}

static void reap_dead(struct kha_loop_source *src, void *userdata)
{
	struct kha_httpd *h = userdata;

	(void)src;
	h->reap = NULL;
	while (h->dead) {
		struct client *c = h->dead;

		h->dead = c->next;
		client_free(c);
	}
}

static void client_close(struct client *c)
{
	struct kha_httpd *h = c->h;

	if (c->state == C_CLOSED)
		return;
	kha_loop_source_remove(c->io);
	kha_loop_source_remove(c->timer);
	c->io = c->timer = NULL;
	if (c->pending)
		c->pending->c = NULL;
	c->pending = NULL;
	SSL_free(c->ssl);
	c->ssl = NULL;
	/*
	 * The reserve spent (out of descriptors): this one becomes it, replaced in place by a copy
	 * of the listener (dup3 closes the socket) and never released in between. Closed, then
	 * reopened, it could be taken meanwhile by another thread of the process short of
	 * descriptors too (kha proxy's workers retry every 100 ms), and the next /healthz would
	 * wait for a descriptor that never comes back.
	 */
	if (h->reserve_fd < 0 && dup3(h->fd, c->fd, O_CLOEXEC) == c->fd)
		h->reserve_fd = c->fd;
	else
		close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nclients--;
	c->state = C_CLOSED;
	c->prev = NULL;
	c->next = h->dead;
	h->dead = c;
	if (!h->reap)
		kha_ignore(kha_loop_add_defer(h->loop, reap_dead, h, &h->reap));
	/* without a defer source (no memory): the next close schedules one, or kha_httpd_free() */
}

const char *kha_httpd_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

static void set_events(struct client *c, uint32_t events)
{
	kha_ignore(kha_loop_io_set_events(c->io, events));
}

/* What a TLS call that did not succeed wants: EPOLLIN/EPOLLOUT to wait for, or 0 = failed. */
static uint32_t tls_wants(struct client *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return EPOLLIN;
	case SSL_ERROR_WANT_WRITE:
		return EPOLLOUT;
	default:
		ERR_clear_error();
		return 0;
	}
}

/* The answer is out: half-close, then read and drop what the client still sends until it
 * closes (or KHA_HTTPD_LINGER_US), so that our FIN, not a reset, follows the answer. */
static void client_linger(struct client *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl); /* close_notify, best effort */
		ERR_clear_error();
	}
	(void)shutdown(c->fd, SHUT_WR);
	c->state = C_LINGER;
	set_events(c, EPOLLIN | EPOLLRDHUP);
	kha_loop_timer_set(c->timer, KHA_HTTPD_LINGER_US, 0);
}

static void linger_read(struct client *c)
{
	char scratch[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			client_close(c);
			return;
		}
	}
}

static void client_flush(struct client *c)
{
	while (c->out_off < c->out_len) {
		size_t len = c->out_len - c->out_off;
		ssize_t n;

		if (c->ssl) {
			int r = SSL_write(c->ssl, c->out + c->out_off,
					  (int)KHA_MIN(len, (size_t)INT32_MAX));
			if (r <= 0) {
				uint32_t ev = tls_wants(c, r);
				if (!ev)
					break;
				set_events(c, ev);
				return;
			}
			n = r;
		} else {
			n = send(c->fd, c->out + c->out_off, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN) {
					set_events(c, EPOLLOUT);
					return;
				}
				break;
			}
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off < c->out_len)
		client_close(c);
	else
		client_linger(c);
}

/* Builds the whole response (head and body) in c->out and starts sending it. */
static void client_respond(struct client *c, int status, const char *ctype, const char *body,
			   size_t body_len, bool head_only)
{
	FILE *f = open_memstream(&c->out, &c->out_len);

	if (!f) {
		client_close(c);
		return;
	}
	fprintf(f,
		"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		"Cache-Control: no-store\r\nConnection: close\r\n\r\n",
		status, kha_httpd_reason(status), ctype, body_len);
	if (!head_only && body_len)
		fwrite(body, 1, body_len, f);
	if (fclose(f) != 0) {
		client_close(c);
		return;
	}
	c->out_off = 0;
	c->state = C_WRITE;
	kha_loop_timer_set(c->timer, KHA_HTTPD_TIMEOUT_US, 0);
	set_events(c, 0);
	client_flush(c);
}

static void respond_text(struct client *c, int status, const char *text)
{
	client_respond(c, status, "text/plain; charset=utf-8", text, strlen(text), c->head_only);
}

static const struct route *find_route(const struct kha_httpd *h, const char *path)
{
	for (const struct route *r = h->routes; r; r = r->next)
		if (r->path && strcmp(r->path, path) == 0)
			return r;
	return NULL;
}

static const struct route *fallback_route(const struct kha_httpd *h)
{
	for (const struct route *r = h->routes; r; r = r->next)
		if (!r->path)
			return r;
	return NULL;
}

static bool is_builtin(const struct kha_httpd *h, const char *path)
{
	return strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0 ||
	       strcmp(path, "/readyz") == 0 || (strcmp(path, "/metrics") == 0 && h->metrics);
}

static bool method_allowed(unsigned methods, const char *method)
{
	if (methods == KHA_HTTPD_ANY)
		return true;
	if ((methods & KHA_HTTPD_GET) &&
	    (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
		return true;
	return (methods & KHA_HTTPD_POST) && strcmp(method, "POST") == 0;
}

static void run_route(struct client *c, const struct route *r)
{
	struct kha_httpd_response resp = {.status = 200,
					  .content_type = "text/plain; charset=utf-8"};
	char *body = NULL;
	size_t body_len = 0;

	c->req.body = c->in + c->head_len;
	c->req.peer = c->peer;
	resp.body = open_memstream(&body, &body_len);
	if (!resp.body) {
		respond_text(c, 500, "out of memory\n");
		return;
	}
	r->fn(&c->req, &resp, r->userdata);
	c->req.body = NULL;
	if (fclose(resp.body) != 0) {
		free(body);
		kha_httpd_finish(resp.pending, 500, "", "", 0); /* not yet bound: frees */
		respond_text(c, 500, "out of memory\n");
		return;
	}
	if (resp.pending) {
		free(body);
		c->pending = resp.pending;
		c->pending->c = c;
		c->state = C_HANDLER;
		set_events(c, 0);
		kha_loop_timer_set(c->timer, KHA_HTTPD_HANDLER_TIMEOUT_US, 0);
		return;
	}
	client_respond(c, resp.status, resp.content_type, body, body_len, c->head_only);
	free(body);
}

static void dispatch(struct client *c)
{
	struct kha_httpd *h = c->h;
	const struct kha_httpd_request *req = &c->req;
	bool get = strcmp(req->method, "GET") == 0 || c->head_only;
	char *body = NULL;
	size_t body_len = 0;

	if (c->route) {
		run_route(c, c->route);
	} else if (!get) {
		respond_text(c, 405, "only GET and HEAD here\n");
	} else if (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/livez") == 0) {
		respond_text(c, 200, "ok\n");
	} else if (strcmp(req->path, "/readyz") == 0) {
		char reason[256] = "", text[300];
		if (!h->ready || h->ready(h->ready_userdata, reason, sizeof(reason))) {
			respond_text(c, 200, "ok\n");
		} else {
			snprintf(text, sizeof(text), "not ready%s%s\n", reason[0] ? ": " : "",
				 reason);
			respond_text(c, 503, text);
		}
	} else if (strcmp(req->path, "/metrics") == 0 && h->metrics) {
		if (kha_metrics_render(h->metrics, &body, &body_len) < 0) {
			respond_text(c, 500, "out of memory\n");
			return;
		}
		client_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, body_len,
			       c->head_only);
		free(body);
	} else {
		respond_text(c, 404, "not found\n");
	}
}

/* A whole head in c->in: pick the route, check the body's length, make room for it. Returns
 * false when it answered already. */
static bool head_parsed(struct client *c)
{
	struct kha_httpd *h = c->h;
	const struct route *r = find_route(h, c->req.path);
	size_t max_body = 0;

	c->head_only = strcmp(c->req.method, "HEAD") == 0;
	if (!r && !is_builtin(h, c->req.path))
		r = fallback_route(h);
	if (r) {
		if (!method_allowed(r->methods, c->req.method)) {
			respond_text(c, 405, "method not allowed here\n");
			return false;
		}
		max_body = r->max_body;
	}
	c->route = r;
	if (c->req.content_length > max_body) {
		respond_text(c, 413, "request body too large\n");
		return false;
	}
	if (c->head_len + c->req.content_length + 1 > c->in_cap) {
		if (KHA_GROW(c->in, c->in_cap, c->head_len + (size_t)c->req.content_length + 1) <
		    0) {
			respond_text(c, 503, "out of memory\n");
			return false;
		}
		/* the parser's pointers follow the buffer */
		c->req.head = c->in;
	}
	return true;
}

/* New bytes in c->in: parse, and dispatch once head and body are complete. */
static void client_got(struct client *c)
{
	int r;

	if (!c->head_len) {
		r = kha_httpd_parse_request(c->in, c->in_len, &c->req);
		if (r == 0)
			return;
		if (r < 0) {
			c->head_only = false;
			if (r == -E2BIG)
				respond_text(c, 431, "request head too large\n");
			else if (r == -ENOTSUP)
				respond_text(c, 411,
					     "chunked bodies are not supported: send a "
					     "Content-Length\n");
			else
				respond_text(c, 400, "bad request\n");
			return;
		}
		c->head_len = (size_t)r;
		if (!head_parsed(c))
			return;
	}
	if (c->in_len - c->head_len < c->req.content_length)
		return;
	c->in[c->head_len + c->req.content_length] = '\0';
	dispatch(c);
}

/* Reads what is there. Returns > 0 bytes, 0 at end of stream or error (closed), or -EAGAIN with
 * the events to wait for set. */
static ssize_t client_read(struct client *c, char *buf, size_t len)
{
	if (c->ssl) {
		int r = SSL_read(c->ssl, buf, (int)KHA_MIN(len, (size_t)INT32_MAX));
		uint32_t ev;

		if (r > 0)
			return r;
		ev = tls_wants(c, r);
		if (!ev)
			return 0;
		set_events(c, ev);
		return -EAGAIN;
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			set_events(c, EPOLLIN);
			return -EAGAIN;
		}
		return 0;
	}
}

static void client_handshake(struct client *c)
{
	int r = SSL_accept(c->ssl);
	uint32_t ev;

	if (r == 1) {
		struct kha_httpd_tls_peer peer;

		kha_httpd_tls_peer_get(c->ssl, &peer);
		if (peer.verified) {
			c->peer = malloc(sizeof(*c->peer));
			if (!c->peer) {
				client_close(c);
				return;
			}
			*c->peer = peer;
		}
		c->state = C_READ;
		return;
	}
	ev = tls_wants(c, r);
	if (!ev) {
		kha_debug("httpd: TLS handshake failed", "port=%u", c->h->port);
		/*
		 * SSL_accept wrote its alert (certificate_required, handshake_failure ...) before
		 * failing. Closing now would turn it into a reset when the client's bytes are still
		 * unread (a TLS 1.3 client sends its request before we read its certificate), and
		 * the client would see "connection reset", not why: linger as after an answer. No
		 * close_notify after a fatal alert.
		 */
		SSL_free(c->ssl);
		c->ssl = NULL;
		client_linger(c);
		return;
	}
	set_events(c, ev);
}

/* Reads until the socket (and TLS's buffer) is empty: the room left bounds it. */
static void client_read_all(struct client *c)
{
	while (c->state == C_READ) {
		size_t room =
			c->head_len ? c->in_cap - 1 - c->in_len : KHA_HTTPD_MAX_REQUEST - c->in_len;
		ssize_t n;

		if (room == 0) { /* a body's bytes all there: client_got dispatched */
			set_events(c, 0);
			return;
		}
		n = client_read(c, c->in + c->in_len, room);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->in_len += (size_t)n;
		client_got(c);
	}
}

static void client_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct client *c = userdata;

	(void)src;
	(void)fd;
	(void)events;
	switch (c->state) {
	case C_HANDSHAKE:
		client_handshake(c);
		if (c->state == C_READ) /* TLS may hold application data already */
			client_read_all(c);
		return;
	case C_READ:
		client_read_all(c);
		return;
	case C_HANDLER:
		return;
	case C_WRITE:
		client_flush(c);
		return;
	case C_LINGER:
		linger_read(c);
		return;
	case C_CLOSED:
		return;
	}
}

static void client_timeout(struct kha_loop_source *src, void *userdata)
{
	struct client *c = userdata;

	(void)src;
	if (c->state == C_READ && c->in_len) {
		c->head_only = false;
		respond_text(c, 408, "request timeout\n");
	} else if (c->state == C_HANDLER) {
		c->pending->c = NULL;
		c->pending = NULL;
		respond_text(c, 503, "the answer took too long\n");
	} else {
		client_close(c); /* silent, a stalled handshake, a client that does not read */
	}
}

struct kha_httpd_pending *kha_httpd_defer(struct kha_httpd_response *resp)
{
	if (!resp->pending)
		resp->pending = calloc(1, sizeof(*resp->pending));
	return resp->pending;
}

void kha_httpd_finish(struct kha_httpd_pending *p, int status, const char *content_type,
		      const char *body, size_t body_len)
{
	struct client *c;

	if (!p)
		return;
	c = p->c;
	free(p);
	if (!c)
		return;
	c->pending = NULL;
	client_respond(c, status, content_type, body, body_len, c->head_only);
}

/* ---- accepting ---- */

static void resume_accepting(struct kha_loop_source *src, void *userdata)
{
	struct kha_httpd *h = userdata;

	(void)src;
	reserve_fd_open(h);
	if (kha_loop_io_set_events(h->listen_src, EPOLLIN) < 0)
		kha_loop_timer_set(h->resume, 100 * KHA_USEC_PER_MSEC, 0);
}

/* Out of descriptors or memory: the listener stays readable; stop watching it for 100ms
 * instead of spinning. */
static void pause_accepting(struct kha_httpd *h)
{
	if (!h->resume && kha_loop_add_timer(h->loop, 0, 0, resume_accepting, h, &h->resume) < 0)
		return;
	if (kha_loop_io_set_events(h->listen_src, 0) == 0)
		kha_loop_timer_set(h->resume, 100 * KHA_USEC_PER_MSEC, 0);
}

/* The oldest connection that is lingering, else the oldest only handshaking or sending its
 * request that was accepted at least min_age_us ago, or NULL. */
static struct client *eviction_victim(struct kha_httpd *h, uint64_t min_age_us)
{
	struct client *idle = NULL, *linger = NULL;
	uint64_t now = kha_now_us();

	for (struct client *c = h->clients; c; c = c->next) {
		if (c->state == C_LINGER)
			linger = c;
		else if ((c->state == C_HANDSHAKE || c->state == C_READ) &&
			 now - c->accepted_us >= min_age_us)
			idle = c;
	}
	return linger ? linger : idle;
}

static bool evict_one(struct kha_httpd *h, uint64_t min_age_us)
{
	struct client *v = eviction_victim(h, min_age_us);

	if (!v)
		return false;
	h->evicted++;
	client_close(v);
	return true;
}

/*
 * accept() failed for want of a descriptor: frees one, from a connection idle for a while (not
 * one just accepted: its request is probably on its way), else the reserve. Returns whether one
 * was freed.
 */
static bool free_a_descriptor(struct kha_httpd *h)
{
	bool had_reserve = h->reserve_fd >= 0;

	/* without a reserve, the evicted client's descriptor became it (client_close) */
	if (evict_one(h, EVICT_MIN_AGE_US) && had_reserve)
		return true;
	if (h->reserve_fd < 0)
		return false;
	close(h->reserve_fd);
	h->reserve_fd = -1;
	return true;
}

static int add_client(struct kha_httpd *h, int cfd)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->h = h;
	c->fd = cfd;
	c->accepted_us = kha_now_us();
	c->in_cap = KHA_HTTPD_MAX_REQUEST;
	c->in = malloc(c->in_cap);
	if (!c->in)
		goto fail;
	if (h->tls) {
		c->ssl = SSL_new(h->tls);
		if (!c->ssl || SSL_set_fd(c->ssl, cfd) != 1)
			goto fail;
		c->state = C_HANDSHAKE;
	} else {
		c->state = C_READ;
	}
	if (kha_loop_add_io(h->loop, cfd, EPOLLIN, 0, client_io, c, &c->io) < 0)
		goto fail;
	if (kha_loop_add_timer(h->loop, KHA_HTTPD_TIMEOUT_US, 0, client_timeout, c, &c->timer) <
	    0) {
		kha_loop_source_remove(c->io);
		goto fail;
	}
	c->next = h->clients;
	if (h->clients)
		h->clients->prev = c;
	h->clients = c;
	h->nclients++;
	return 0;
fail:
	SSL_free(c->ssl);
	ERR_clear_error();
	free(c->in);
	free(c);
	return -ENOMEM;
}

static void on_accept(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_httpd *h = userdata;

	(void)src;
	(void)events;
	reserve_fd_open(h); /* taken back as soon as a descriptor is free again */
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		bool scarce = false;

		if (cfd < 0 && (errno == EMFILE || errno == ENFILE) && i == 0 &&
		    free_a_descriptor(h)) {
			cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			scarce = true;
		}
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_accepting(h);
			return;
		}
		if (h->nclients >= KHA_HTTPD_MAX_CLIENTS && !evict_one(h, 0)) {
			close(cfd);
			continue;
		}
		if (add_client(h, cfd) < 0)
			close(cfd);
		if (scarce)
			return; /* one at a time while descriptors are short: serve it first */
	}
}

int kha_httpd_new_fd(struct kha_loop *loop, int fd, struct kha_metrics *metrics,
		     struct kha_httpd **ret)
{
	struct kha_httpd *h = calloc(1, sizeof(*h));
	int r;

	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->loop = loop;
	h->metrics = metrics;
	h->fd = fd;
	h->reserve_fd = -1;
	h->port = kha_httpd_socket_port(fd);
	reserve_fd_open(h);
	r = kha_loop_add_io(loop, h->fd, EPOLLIN, 0, on_accept, h, &h->listen_src);
	if (r < 0) {
		kha_httpd_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

int kha_httpd_new(struct kha_loop *loop, const char *addr, struct kha_metrics *metrics,
		  struct kha_diag *d, struct kha_httpd **ret)
{
	int fd = kha_httpd_listen(addr, 128, 0, d), r;

	if (fd < 0)
		return fd;
	r = kha_httpd_new_fd(loop, fd, metrics, ret);
	if (r < 0)
		return kha_diag_set(d, -r, "%s: %s", addr, strerror(-r));
	return 0;
}

void kha_httpd_free(struct kha_httpd *h)
{
	if (!h)
		return;
	while (h->clients)
		client_close(h->clients);
	kha_loop_source_remove(h->reap);
	reap_dead(NULL, h);
	while (h->routes) {
		struct route *r = h->routes;
		h->routes = r->next;
		free(r->path);
		free(r);
	}
	kha_loop_source_remove(h->listen_src);
	kha_loop_source_remove(h->resume);
	if (h->reserve_fd >= 0)
		close(h->reserve_fd);
	close(h->fd);
	SSL_CTX_free(h->tls);
	free(h);
}

void kha_httpd_set_tls(struct kha_httpd *h, SSL_CTX *ctx)
{
	if (ctx)
		SSL_CTX_up_ref(ctx);
	SSL_CTX_free(h->tls);
	h->tls = ctx;
}

int kha_httpd_route_full(struct kha_httpd *h, const char *path, unsigned methods, size_t max_body,
			 kha_httpd_handler_fn fn, void *userdata)
{
	struct route *r = calloc(1, sizeof(*r));

	if (!r || (path && !(r->path = strdup(path)))) {
		free(r);
		return -ENOMEM;
	}
	r->methods = methods;
	r->max_body = max_body;
	r->fn = fn;
	r->userdata = userdata;
	r->next = h->routes;
	h->routes = r;
	return 0;
}

int kha_httpd_route(struct kha_httpd *h, const char *path, kha_httpd_handler_fn fn, void *userdata)
{
	return kha_httpd_route_full(h, path, KHA_HTTPD_GET, 0, fn, userdata);
}

void kha_httpd_set_ready(struct kha_httpd *h, kha_httpd_ready_fn fn, void *userdata)
{
	h->ready = fn;
	h->ready_userdata = userdata;
}

uint16_t kha_httpd_port(const struct kha_httpd *h)
{
	return h->port;
}

uint64_t kha_httpd_evicted(const struct kha_httpd *h)
{
	return h->evicted;
}

int kha_httpd_admin_new(struct kha_loop *loop, const char *addr, kha_metrics_collect_fn collect,
			kha_httpd_handler_fn status, kha_httpd_ready_fn ready, void *userdata,
			struct kha_metrics **ret_metrics, struct kha_httpd **ret_httpd,
			struct kha_diag *d)
{
	struct kha_metrics *m = NULL;
	struct kha_httpd *h = NULL;
	int r = kha_metrics_new(&m);

	if (r == 0)
		r = kha_metrics_add_collector(m, collect, userdata);
	if (r < 0) {
		kha_diag_set(d, r, "metrics: %s", strerror(-r));
		goto fail;
	}
	r = kha_httpd_new(loop, addr, m, d, &h);
	if (r < 0) {
		kha_diag_prefix(d, "--metrics-addr");
		goto fail;
	}
	if (status) {
		r = kha_httpd_route(h, "/status", status, userdata);
		if (r < 0) {
			kha_diag_set(d, r, "admin server: %s", strerror(-r));
			goto fail;
		}
	}
	if (ready)
		kha_httpd_set_ready(h, ready, userdata);
	*ret_metrics = m;
	*ret_httpd = h;
	return 0;
fail:
	kha_httpd_free(h);
	kha_metrics_free(m);
	return r;
}

/* ---- an admin server on its own thread ---- */

struct kha_httpd_thread {
	struct kha_loop *loop;
	struct kha_httpd *httpd;
	struct kha_metrics *metrics;
	pthread_t thread;
	bool running;
};

static void *thread_run(void *arg)
{
	struct kha_httpd_thread *t = arg;

	kha_ignore(kha_loop_run(t->loop));
	return NULL;
}

static void thread_quit(struct kha_loop *loop, void *userdata)
{
	(void)userdata;
	kha_loop_quit(loop, 0);
}

int kha_httpd_thread_start(const char *addr, kha_metrics_collect_fn collect, void *userdata,
			   struct kha_httpd_thread **ret, struct kha_diag *d)
{
	struct kha_httpd_thread *t = calloc(1, sizeof(*t));
	sigset_t all, old;
	int r;

	if (!t)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_loop_new(&t->loop);
	if (r < 0) {
		kha_diag_set(d, -r, "event loop: %s", strerror(-r));
		goto fail;
	}
	r = kha_metrics_new(&t->metrics);
	if (r == 0)
		r = kha_metrics_add_collector(t->metrics, collect, userdata);
	if (r < 0) {
		kha_diag_set(d, -r, "metrics: %s", strerror(-r));
		goto fail;
	}
	r = kha_httpd_new(t->loop, addr, t->metrics, d, &t->httpd);
	if (r < 0) {
		kha_diag_prefix(d, "--metrics-addr");
		goto fail;
	}
	/* signals are for the main thread: the new thread starts with all blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&t->thread, NULL, thread_run, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		kha_diag_set(d, EAGAIN, "cannot create a thread");
		goto fail;
	}
	t->running = true;
	*ret = t;
	return 0;
fail:
	kha_httpd_thread_stop(t);
	return r;
}

uint16_t kha_httpd_thread_port(const struct kha_httpd_thread *t)
{
	return kha_httpd_port(t->httpd);
}

void kha_httpd_thread_stop(struct kha_httpd_thread *t)
{
	if (!t)
		return;
	if (t->running) {
		if (kha_loop_post(t->loop, thread_quit, NULL) == 0)
			pthread_join(t->thread, NULL);
		else
			pthread_detach(t->thread);
	}
	kha_httpd_free(t->httpd);
	kha_loop_free(t->loop);
	kha_metrics_free(t->metrics);
	free(t);
}
