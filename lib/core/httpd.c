// SPDX-License-Identifier: MIT
/* The admin HTTP server (see include/kha/httpd.h). */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "kha/httpd.h"
#include "kha/parse.h"
#include "kha/banned.h"

struct route {
	char *path;
	kha_httpd_handler_fn fn;
	void *userdata;
	struct route *next;
};

struct client {
	struct kha_httpd *h;
	int fd;
	struct kha_loop_source *io, *timer;
	char in[KHA_HTTPD_MAX_REQUEST];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	struct client *prev, *next;
};

struct kha_httpd {
	struct kha_loop *loop;
	struct kha_metrics *metrics;
	int fd;
	uint16_t port;
	struct kha_loop_source *listen_src, *resume;
	struct route *routes;
	kha_httpd_ready_fn ready;
	void *ready_userdata;
	struct client *clients;
	size_t nclients;
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

int kha_httpd_parse_request(const char *buf, size_t len, struct kha_httpd_request *req)
{
	const char *end = buf + KHA_MIN(len, (size_t)KHA_HTTPD_MAX_REQUEST);
	const char *p = buf, *eol, *next, *sp1, *sp2, *target, *q;
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
		const char *colon;
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
			if ((unsigned char)*t < ' ' && *t != '\t')
				return -EBADMSG;
		if (ieq(p, (size_t)(colon - p), "transfer-encoding"))
			return -ENOTSUP;
		if (ieq(p, (size_t)(colon - p), "content-length")) {
			const char *v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			if (!(eol - v == 1 && *v == '0'))
				return -ENOTSUP;
		}
		p = next;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
		return -ENOTSUP;
	return (int)(next - buf);
need_more:
	return len >= KHA_HTTPD_MAX_REQUEST ? -E2BIG : 0;
}

/* ---- connections ---- */

static void client_close(struct client *c)
{
	struct kha_httpd *h = c->h;

	kha_loop_source_remove(c->io);
	kha_loop_source_remove(c->timer);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		h->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nclients--;
	free(c->out);
	free(c);
}

const char *kha_httpd_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
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

static void client_flush(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				kha_ignore(kha_loop_io_set_events(c->io, EPOLLOUT));
				return;
			}
			break;
		}
		c->out_off += (size_t)n;
	}
	client_close(c);
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
	kha_ignore(kha_loop_io_set_events(c->io, 0));
	client_flush(c);
}

static void respond_text(struct client *c, int status, const char *text)
{
	client_respond(c, status, "text/plain; charset=utf-8", text, strlen(text), false);
}

static void dispatch(struct client *c, const struct kha_httpd_request *req)
{
	struct kha_httpd *h = c->h;
	bool head = strcmp(req->method, "HEAD") == 0;
	struct kha_httpd_response resp = {.status = 200,
					  .content_type = "text/plain; charset=utf-8"};
	char *body = NULL;
	size_t body_len = 0;

	for (struct route *r = h->routes; r; r = r->next) {
		if (strcmp(r->path, req->path) != 0)
			continue;
		resp.body = open_memstream(&body, &body_len);
		if (!resp.body) {
			respond_text(c, 500, "out of memory\n");
			return;
		}
		r->fn(req, &resp, r->userdata);
		if (fclose(resp.body) != 0) {
			free(body);
			respond_text(c, 500, "out of memory\n");
			return;
		}
		client_respond(c, resp.status, resp.content_type, body, body_len, head);
		free(body);
		return;
	}
	if (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/livez") == 0) {
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
			       head);
		free(body);
	} else {
		respond_text(c, 404, "not found\n");
	}
}

static void client_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct client *c = userdata;
	struct kha_httpd_request req;
	ssize_t n;
	int r;

	(void)src;
	if (c->out) {
		client_flush(c);
		return;
	}
	n = recv(fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->in_len += (size_t)n;
	r = kha_httpd_parse_request(c->in, c->in_len, &req);
	if (r == 0)
		return;
	if (r == -E2BIG)
		respond_text(c, 431, "request head too large\n");
	else if (r == -ENOTSUP)
		respond_text(c, 405, "only GET and HEAD without a body\n");
	else if (r < 0)
		respond_text(c, 400, "bad request\n");
	else
		dispatch(c, &req);
	(void)events;
}

static void client_timeout(struct kha_loop_source *src, void *userdata)
{
	struct client *c = userdata;

	(void)src;
	if (c->out)
		client_close(c); /* a client that does not read its answer */
	else
		respond_text(c, 408, "request timeout\n");
}

static void resume_accepting(struct kha_loop_source *src, void *userdata)
{
	struct kha_httpd *h = userdata;

	(void)src;
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

static void on_accept(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct kha_httpd *h = userdata;

	(void)src;
	(void)events;
	for (int i = 0; i < 16; i++) {
		struct client *c;
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_accepting(h);
			return;
		}
		if (h->nclients >= KHA_HTTPD_MAX_CLIENTS) {
			close(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(cfd);
			continue;
		}
		c->h = h;
		c->fd = cfd;
		if (kha_loop_add_io(h->loop, cfd, EPOLLIN, 0, client_io, c, &c->io) < 0) {
			close(cfd);
			free(c);
			continue;
		}
		if (kha_loop_add_timer(h->loop, KHA_HTTPD_TIMEOUT_US, 0, client_timeout, c,
				       &c->timer) < 0) {
			kha_loop_source_remove(c->io);
			close(cfd);
			free(c);
			continue;
		}
		c->next = h->clients;
		if (h->clients)
			h->clients->prev = c;
		h->clients = c;
		h->nclients++;
	}
}

int kha_httpd_new(struct kha_loop *loop, const char *addr, struct kha_metrics *metrics,
		  struct kha_diag *d, struct kha_httpd **ret)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct kha_httpd *h;
	int one = 1, r;

	if (kha_parse_sockaddr(addr, &ss, &sslen) < 0)
		return kha_diag_set(d, EINVAL, "metrics address '%s': expected host:port", addr);
	h = calloc(1, sizeof(*h));
	if (!h)
		return kha_diag_set(d, ENOMEM, "out of memory");
	h->loop = loop;
	h->metrics = metrics;
	h->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		goto fail;
	setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(h->fd, (struct sockaddr *)&ss, sslen) < 0 || listen(h->fd, 64) < 0)
		goto fail;
	if (getsockname(h->fd, (struct sockaddr *)&ss, &sslen) == 0)
		h->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							: ((struct sockaddr_in6 *)&ss)->sin6_port);
	r = kha_loop_add_io(loop, h->fd, EPOLLIN, 0, on_accept, h, &h->listen_src);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	*ret = h;
	return 0;
fail:
	r = errno;
	kha_diag_set(d, r, "metrics address %s: %s", addr, strerror(r));
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	return -r;
}

void kha_httpd_free(struct kha_httpd *h)
{
	if (!h)
		return;
	while (h->clients)
		client_close(h->clients);
	while (h->routes) {
		struct route *r = h->routes;
		h->routes = r->next;
		free(r->path);
		free(r);
	}
	kha_loop_source_remove(h->listen_src);
	kha_loop_source_remove(h->resume);
	close(h->fd);
	free(h);
}

int kha_httpd_route(struct kha_httpd *h, const char *path, kha_httpd_handler_fn fn, void *userdata)
{
	struct route *r = calloc(1, sizeof(*r));

	if (!r || !(r->path = strdup(path))) {
		free(r);
		return -ENOMEM;
	}
	r->fn = fn;
	r->userdata = userdata;
	r->next = h->routes;
	h->routes = r;
	return 0;
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
