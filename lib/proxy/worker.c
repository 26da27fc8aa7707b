// SPDX-License-Identifier: MIT
/*
 * The data path of kha proxy: one event loop per worker thread, one listener each.
 *
 * A proxied connection is two sockets and two half-duplex pipes (client->backend "c2b",
 * backend->client "b2c"). Both sockets are registered once, edge-triggered, for
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP and never modified: readiness is remembered in four flags
 * (c_rd, c_wr, b_rd, b_wr) that stay set until a syscall answers EAGAIN, which is what makes
 * back-pressure free: a full buffer simply stops reading its source, and the remembered flag
 * resumes it when the buffer drains.
 *
 * Buffers (BUF_SIZE) come from a per-worker free list, are taken when bytes arrive and given
 * back as soon as they are empty: an idle proxied connection holds no buffer.
 *
 * Until the backend sends its first byte, c2b keeps every byte the client sent (keep mode,
 * bounded by BUF_SIZE): on a failed connect, a reset, an early EOF or the first-byte timeout,
 * the connection moves to the next backend and the kept bytes are sent again (replay).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <string.h>

#include "proxy-internal.h"
#include "kha/log.h"
#include "kha/net.h"
#include "kha/parse.h"
#include "kha/banned.h"

#define BUF_SIZE	(16 * 1024)
#define MAX_FREE_BUFS	256
#define ACCEPT_BATCH	64
#define MAX_TRIES_MASK	64
#define ACCEPT_PAUSE_US (100 * KHA_USEC_PER_MSEC)

enum cstate {
	C_STARVED, /* no backend socket: out of descriptors or memory, retried on the timer */
	C_CONNECTING,
	C_WAITING, /* connected, no byte from the backend yet */
	C_ESTABLISHED,
};

struct half {
	struct buf *buf;
	uint32_t head, tail; /* unsent bytes are [head, tail) */
	bool eof;	     /* the source said EOF */
	bool shut;	     /* shutdown(dst, SHUT_WR) done */
};

struct conn {
	struct worker *w;
	struct conn *prev, *next;
	struct backend *be;
	const struct table *tried_table;
	uint64_t tried_mask;
	uint64_t last_us;
	int cfd, bfd;
	struct kha_loop_source *csrc, *bsrc, *timer;
	struct half c2b, b2c;
	uint32_t sent; /* keep mode: bytes of c2b written to the current backend */
	uint8_t state;
	uint8_t tries; /* backends tried so far */
	bool keep;
	bool c_rd, c_wr, b_rd, b_wr;
	bool c_fin,
		b_fin; /* EPOLLRDHUP/HUP/ERR seen: read until EOF, not just until a short read */
};

enum { XF_OK, XF_SRC_ERR, XF_DST_ERR };

/* ---- buffers ---- */

static struct buf *buf_get(struct worker *w)
{
	struct buf *b = w->free_bufs;

	if (b) {
		w->free_bufs = b->next;
		w->nfree_bufs--;
		return b;
	}
	return malloc(sizeof(*b) + BUF_SIZE);
}

static void buf_put(struct worker *w, struct buf *b)
{
	if (!b)
		return;
	if (w->nfree_bufs >= MAX_FREE_BUFS) {
		free(b);
		return;
	}
	b->next = w->free_bufs;
	w->free_bufs = b;
	w->nfree_bufs++;
}

static void half_release(struct worker *w, struct half *h)
{
	buf_put(w, h->buf);
	h->buf = NULL;
	h->head = h->tail = 0;
}

/* ---- connection teardown ---- */

static void set_linger0(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void detach_backend(struct conn *c, bool reset)
{
	struct backend *b = c->be;

	kha_loop_source_remove(c->bsrc);
	c->bsrc = NULL;
	if (c->bfd >= 0) {
		if (reset)
			set_linger0(c->bfd);
		close(c->bfd);
		c->bfd = -1;
	}
	if (b) {
		__atomic_fetch_sub(&b->active, 1, __ATOMIC_RELAXED);
		kha_proxy__backend_unref(b);
		c->be = NULL;
	}
}

static void conn_free(struct conn *c, bool reset_client, bool reset_backend)
{
	struct worker *w = c->w;

	detach_backend(c, reset_backend);
	kha_loop_source_remove(c->csrc);
	kha_loop_source_remove(c->timer);
	if (reset_client)
		set_linger0(c->cfd);
	close(c->cfd);
	half_release(w, &c->c2b);
	half_release(w, &c->b2c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	STAT_ADD(w->stats.active, -1);
	__atomic_fetch_sub(&w->p->conns, 1, __ATOMIC_RELAXED);
	free(c);
	if (w->limit_paused) {
		w->limit_paused = false;
		if (w->lsrc && kha_loop_io_set_events(w->lsrc, EPOLLIN) == 0)
			kha_loop_timer_stop(w->accept_timer);
	}
	if (w->draining && w->nconns == 0)
		kha_proxy__report_drained(w);
}

/* A client connection that no backend served. */
static void conn_fail(struct conn *c)
{
	STAT_ADD(c->w->stats.failed, 1);
	conn_free(c, true, true);
}

/* ---- backend choice and connect ---- */

static struct backend *pick(struct conn *c, size_t *ret_idx)
{
	struct worker *w = c->w;
	const struct table *t = w->table;
	int i;

	if (!t)
		return NULL;
	if (c->tried_table != t) {
		c->tried_table = t;
		c->tried_mask = 0;
	}
	for (size_t k = 0; k < t->n; k++) {
		struct backend *b = t->b[k];
		w->cand[k].state =
			(enum kha_proxy_state)__atomic_load_n(&b->state, __ATOMIC_RELAXED);
		w->cand[k].weight = __atomic_load_n(&b->weight, __ATOMIC_RELAXED);
		w->cand[k].active = __atomic_load_n(&b->active, __ATOMIC_RELAXED);
		w->cand[k].excluded = k < MAX_TRIES_MASK && (c->tried_mask & (1ULL << k));
		w->cand[k].failing = __atomic_load_n(&b->failing, __ATOMIC_RELAXED);
	}
	i = kha_proxy_balance_pick(w->cand, t->n, w->dp.balance, &w->cursor);
	if (i < 0)
		return NULL;
	*ret_idx = (size_t)i;
	return t->b[i];
}

/* TCP keep-alive after idle_us of silence (0: off), at the configured interval and count. */
static void set_keepalive(const struct dpconf *cfg, int fd, uint64_t idle_us)
{
	int one = 1;
	int idle = (int)KHA_MAX(1, idle_us / KHA_USEC_PER_SEC);
	int intvl = (int)KHA_MAX(1, cfg->keepalive_interval_us / KHA_USEC_PER_SEC);
	int cnt = (int)KHA_MAX(1, cfg->keepalive_count);

	if (!idle_us)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void set_backend_sockopts(const struct dpconf *cfg, int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_keepalive(cfg, fd, cfg->keepalive_idle_us);
	if (cfg->tcp_user_timeout_us) {
		unsigned ms = (unsigned)(cfg->tcp_user_timeout_us / KHA_USEC_PER_MSEC);
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	}
}

static void backend_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata);
static void conn_timer(struct kha_loop_source *src, void *userdata);
static void pause_accepting(struct worker *w, int err);

/* Whether the connection has a backend socket (connected or not). */
static bool have_backend(const struct conn *c)
{
	return c->state >= C_WAITING;
}
static void pump(struct conn *c);

/* Starts a non-blocking connect to b. Returns 0 (in progress or done) or -errno. */
static int start_connect(struct conn *c, struct backend *b)
{
	struct worker *w = c->w;
	const struct dpconf *cfg = &w->dp;
	int fd, r;

	fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_backend_sockopts(cfg, fd);
	r = connect(fd, (struct sockaddr *)&b->addr, b->addrlen);
	if (r < 0 && errno != EINPROGRESS) {
		r = -errno;
		close(fd);
		return r;
	}
	r = kha_loop_add_io(w->loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, KHA_LOOP_EDGE, backend_io,
			    c, &c->bsrc);
	if (r < 0) {
		close(fd);
		return r;
	}
	__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&b->active, 1, __ATOMIC_RELAXED);
	STAT_ADD(b->ws[w->id].conns_total, 1);
	c->be = b;
	c->bfd = fd;
	c->state = C_CONNECTING;
	c->sent = 0;
	c->c2b.shut = false;
	c->b_rd = c->b_wr = c->b_fin = false;
	kha_loop_timer_set(c->timer, cfg->connect_timeout_us, 0);
	return 0;
}

/* errno values that say this process or host is short of something, not the peer */
static bool local_shortage(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/*
 * Connects to the next backend that this client connection has not tried. Returns false when
 * the connection was freed (no backend left).
 */
static bool connect_next(struct conn *c)
{
	struct worker *w = c->w;

	for (;;) {
		size_t idx;
		struct backend *b;
		int r;

		if (c->tries > w->dp.retries) {
			conn_fail(c);
			return false;
		}
		b = pick(c, &idx);
		if (!b) {
			conn_fail(c);
			return false;
		}
		if (idx < MAX_TRIES_MASK)
			c->tried_mask |= 1ULL << idx;
		c->tries++;
		r = start_connect(c, b);
		if (r == 0)
			return true;
		if (local_shortage(-r)) {
			/* ours, not the backend's: blame nobody; the client waits (as the ones in
			 * the backlog do) and the connect is tried again when descriptors free up */
			c->tries--;
			if (idx < MAX_TRIES_MASK)
				c->tried_mask &= ~(1ULL << idx);
			c->state = C_STARVED;
			kha_loop_timer_set(c->timer, ACCEPT_PAUSE_US, 0);
			pause_accepting(w, -r);
			return true;
		}
		STAT_ADD(b->ws[w->id].connect_failures, 1);
		STAT_ADD(b->ws[w->id].retries, 1);
		kha_proxy__report_passive(w, b);
	}
}

/*
 * The current backend failed before answering. Moves the connection to another backend when
 * the client's bytes are still all kept, else gives up on the client. Returns false when the
 * connection was freed.
 */
static bool backend_failed(struct conn *c, bool during_connect)
{
	struct worker *w = c->w;
	struct backend *b = c->be;
	bool replay = c->state == C_WAITING && c->sent > 0;

	if (during_connect)
		STAT_ADD(b->ws[w->id].connect_failures, 1);
	kha_proxy__report_passive(w, b);
	if (c->state != C_CONNECTING && !c->keep) {
		conn_fail(c);
		return false;
	}
	STAT_ADD(b->ws[w->id].retries, 1);
	if (replay)
		STAT_ADD(b->ws[w->id].replays, 1);
	detach_backend(c, true);
	c->state = C_CONNECTING;
	c->b2c.eof = false;
	half_release(w, &c->b2c);
	if (!connect_next(c))
		return false;
	return true;
}

static void established(struct conn *c)
{
	c->state = C_ESTABLISHED;
	/* no timer is needed any more (no idle timeout per connection: a sweep does it) */
	kha_loop_source_remove(c->timer);
	c->timer = NULL;
	if (c->keep) {
		c->keep = false;
		c->c2b.head = c->sent; /* the kept bytes were delivered */
	}
}

/* ---- byte moving ---- */

/*
 * Moves bytes from src to dst through h until neither side can make progress. wpos is where
 * the next write starts (&h->head normally, &c->sent in keep mode, where nothing is dropped).
 * *nread counts bytes read from src.
 */
static int xfer(struct worker *w, struct half *h, int src, int dst, bool *rd, bool *wr,
		const bool *fin, bool can_write, uint32_t *wpos, uint64_t *bytes, uint32_t *nread,
		bool *progress)
{
	bool keep = wpos != &h->head;

	for (;;) {
		bool did = false;
		ssize_t n;

		if (can_write && *wr && *wpos < h->tail) {
			size_t want = h->tail - *wpos;
			n = send(dst, h->buf->data + *wpos, want, MSG_NOSIGNAL);
			if (n > 0) {
				*wpos += (uint32_t)n;
				STAT_ADD(*bytes, (uint64_t)n);
				did = true;
				/* a short write means the socket buffer is full: EPOLLOUT will say
				 * when it is not, no need for a syscall to hear EAGAIN */
				if ((size_t)n < want)
					*wr = false;
			} else if (errno == EAGAIN) {
				*wr = false;
			} else if (errno != EINTR) {
				return XF_DST_ERR;
			}
		}
		if (!keep && h->head == h->tail && h->buf)
			half_release(w, h);
		if (!h->eof && *rd && h->tail < BUF_SIZE) {
			bool fresh = !h->buf;
			if (fresh && !(h->buf = buf_get(w)))
				return XF_SRC_ERR;
			size_t want = BUF_SIZE - h->tail;
			n = recv(src, h->buf->data + h->tail, want, 0);
			if (n > 0) {
				h->tail += (uint32_t)n;
				*nread += (uint32_t)n;
				did = true;
				/* a short read drained the socket: with edge-triggered epoll, bytes
				 * arriving later raise a new event (as nginx does), unless a FIN is
				 * pending, which only a read returning 0 reveals */
				if ((size_t)n < want && !*fin)
					*rd = false;
			} else if (n == 0) {
				h->eof = true;
				did = true;
			} else if (errno == EAGAIN) {
				*rd = false;
			} else if (errno != EINTR) {
				return XF_SRC_ERR;
			}
			if (fresh && h->tail == 0)
				half_release(w, h);
		}
		if (!did)
			return XF_OK;
		*progress = true;
	}
}

static void pump(struct conn *c)
{
	struct worker *w = c->w;
	const struct dpconf *cfg = &w->dp;

	for (;;) {
		/* starved: no backend to count bytes against yet */
		struct wstats *ws = c->be ? &c->be->ws[w->id] : &w->no_backend;
		bool progress = false;
		uint32_t nread = 0;
		int r;

		r = xfer(w, &c->c2b, c->cfd, c->bfd, &c->c_rd, &c->b_wr, &c->c_fin, have_backend(c),
			 c->keep ? &c->sent : &c->c2b.head, &ws->bytes_out, &nread, &progress);
		if (r == XF_SRC_ERR) {		/* client reset: reset the backend too */
			if (errno == ETIMEDOUT) /* keep-alive probes unanswered */
				STAT_ADD(w->stats.keepalive_closed, 1);
			conn_free(c, true, true);
			return;
		}
		if (r == XF_DST_ERR) {
			if (c->state != C_ESTABLISHED) {
				if (!backend_failed(c, false))
					return;
				continue;
			}
			conn_free(c, true, true);
			return;
		}
		if (c->keep && c->c2b.tail == BUF_SIZE) {
			/* more than the replay bound before the first byte: no replay any more */
			c->keep = false;
			c->c2b.head = c->sent;
		}
		if (c->state == C_WAITING && c->sent > 0 && cfg->first_byte_timeout_us && c->keep &&
		    !kha_loop_timer_armed(c->timer))
			kha_loop_timer_set(c->timer, cfg->first_byte_timeout_us, 0);
		if (have_backend(c)) {
			nread = 0;
			r = xfer(w, &c->b2c, c->bfd, c->cfd, &c->b_rd, &c->c_wr, &c->b_fin, true,
				 &c->b2c.head, &ws->bytes_in, &nread, &progress);
			if (r == XF_SRC_ERR) {
				if (c->state != C_ESTABLISHED && !c->c2b.eof) {
					if (!backend_failed(c, false))
						return;
					continue;
				}
				conn_free(c, true, true);
				return;
			}
			if (r == XF_DST_ERR) { /* client gone */
				if (errno == ETIMEDOUT)
					STAT_ADD(w->stats.keepalive_closed, 1);
				conn_free(c, true, true);
				return;
			}
			if (c->state == C_WAITING) {
				if (nread > 0 && __atomic_load_n(&c->be->failing, __ATOMIC_RELAXED))
					__atomic_store_n(&c->be->failing, 0, __ATOMIC_RELAXED);
				if (nread > 0 || (c->b2c.eof && c->c2b.eof)) {
					/* an answer; or the client closed first and the backend
					 * followed: a normal end, not a failure of the backend */
					established(c);
				} else if (c->b2c.eof) {
					if (!backend_failed(c, false))
						return;
					continue;
				}
			}
		}
		/* half-close propagation, once the pipe is empty */
		if (c->c2b.eof && !c->c2b.shut && have_backend(c) &&
		    (c->keep ? c->sent : c->c2b.head) == c->c2b.tail) {
			shutdown(c->bfd, SHUT_WR);
			c->c2b.shut = true;
		}
		if (c->b2c.eof && !c->b2c.shut && c->b2c.head == c->b2c.tail) {
			shutdown(c->cfd, SHUT_WR);
			c->b2c.shut = true;
		}
		if (c->c2b.shut && c->b2c.shut) {
			conn_free(c, false, false);
			return;
		}
		if (!progress)
			break;
		if (cfg->idle_timeout_us)
			c->last_us = kha_now_us();
	}
}

/* ---- events ---- */

static void client_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct conn *c = userdata;

	(void)src;
	(void)fd;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->c_rd = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->c_fin = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->c_wr = true;
	pump(c);
}

static void backend_io(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct conn *c = userdata;

	(void)src;
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			kha_loop_timer_stop(c->timer);
			backend_failed(c, true);
			return;
		}
		c->state = C_WAITING;
		kha_loop_timer_stop(c->timer);
		if (!c->keep)
			established(c); /* replay is off: nothing to wait for */
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->b_rd = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->b_fin = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->b_wr = true;
	pump(c);
}

static void conn_timer(struct kha_loop_source *src, void *userdata)
{
	struct conn *c = userdata;
	struct worker *w = c->w;

	(void)src;
	if (c->state == C_STARVED) {
		connect_next(c);
	} else if (c->state == C_CONNECTING) {
		backend_failed(c, true);
	} else if (c->state == C_WAITING) {
		STAT_ADD(c->be->ws[w->id].first_byte_timeouts, 1);
		if (c->keep) {
			if (backend_failed(c, false))
				pump(c); /* send the kept bytes once connected (pump waits) */
		} else {
			kha_proxy__report_passive(w, c->be);
		}
	}
}

static void resume_accepting(struct kha_loop_source *src, void *userdata)
{
	struct worker *w = userdata;

	(void)src;
	w->limit_paused = false;
	if (w->lsrc && kha_loop_io_set_events(w->lsrc, EPOLLIN) < 0)
		kha_loop_timer_set(w->accept_timer, ACCEPT_PAUSE_US, 0);
}

/*
 * Stops watching the listener for ACCEPT_PAUSE_US (or until resumed). Returns false when it
 * could not (or there is no listener: draining, nothing to accept any more).
 */
static bool stop_watching(struct worker *w)
{
	if (!w->lsrc)
		return false;
	if (!w->accept_timer &&
	    kha_loop_add_timer(w->loop, 0, 0, resume_accepting, w, &w->accept_timer) < 0)
		return false;
	if (kha_loop_io_set_events(w->lsrc, 0) < 0)
		return false;
	kha_loop_timer_set(w->accept_timer, ACCEPT_PAUSE_US, 0);
	return true;
}

/*
 * Out of file descriptors (or memory): the listener stays readable, so a level-triggered loop
 * would spin. Stop watching it for a while, as HAProxy and nginx do; pending clients wait in the
 * kernel's backlog and are accepted as connections close.
 */
static void pause_accepting(struct worker *w, int err)
{
	if (!stop_watching(w))
		return;
	if (STAT_GET(w->stats.accept_pauses) % 100 == 0) /* the first, then every 100th */
		kha_warn("accept paused for 100ms", "worker=%u error=\"%s\" connections=%zu", w->id,
			 strerror(err), w->nconns);
	STAT_ADD(w->stats.accept_pauses, 1);
}

/*
 * At --max-conns: stop watching the listener until one of our connections closes (or 100 ms,
 * for a place freed by another worker). The first time and every 1000th, say so.
 */
static void pause_at_limit(struct worker *w)
{
	if (!stop_watching(w))
		return;
	w->limit_paused = true;
	if (STAT_GET(w->stats.limit_pauses) % 1000 == 0)
		kha_warn("at --max-conns: new clients wait in the listen backlog",
			 "worker=%u max_conns=%u", w->id, w->dp.max_conns);
	STAT_ADD(w->stats.limit_pauses, 1);
}

static void on_accept(struct kha_loop_source *src, int lfd, uint32_t events, void *userdata)
{
	struct worker *w = userdata;
	const struct dpconf *cfg = &w->dp;
	int one = 1;

	(void)src;
	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct conn *c;
		int fd;

		/* a place under --max-conns first: the client waits in the backlog otherwise */
		if (__atomic_fetch_add(&w->p->conns, 1, __ATOMIC_RELAXED) >= cfg->max_conns) {
			__atomic_fetch_sub(&w->p->conns, 1, __ATOMIC_RELAXED);
			pause_at_limit(w);
			return;
		}
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			__atomic_fetch_sub(&w->p->conns, 1, __ATOMIC_RELAXED);
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (local_shortage(errno))
				pause_accepting(w, errno);
			else if (errno != EAGAIN)
				kha_debug("accept failed", "error=%d", errno);
			return;
		}
		STAT_ADD(w->stats.accepted, 1);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* a client that vanished (power off, cable, NAT timeout) is found and closed */
		set_keepalive(cfg, fd, cfg->client_keepalive_idle_us);
		c = calloc(1, sizeof(*c));
		if (!c) {
			__atomic_fetch_sub(&w->p->conns, 1, __ATOMIC_RELAXED);
			close(fd);
			STAT_ADD(w->stats.failed, 1);
			continue;
		}
		c->w = w;
		c->cfd = fd;
		c->bfd = -1;
		c->keep = cfg->first_byte_timeout_us > 0;
		if (kha_loop_add_io(w->loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, KHA_LOOP_EDGE,
				    client_io, c, &c->csrc) < 0 ||
		    kha_loop_add_timer(w->loop, 0, 0, conn_timer, c, &c->timer) < 0) {
			kha_loop_source_remove(c->csrc);
			close(fd);
			free(c);
			__atomic_fetch_sub(&w->p->conns, 1, __ATOMIC_RELAXED);
			STAT_ADD(w->stats.failed, 1);
			continue;
		}
		kha_loop_timer_stop(c->timer);
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		w->nconns++;
		STAT_ADD(w->stats.active, 1);
		if (cfg->idle_timeout_us)
			c->last_us = kha_now_us();
		connect_next(c);
	}
}

static void idle_sweep(struct kha_loop_source *src, void *userdata)
{
	struct worker *w = userdata;
	uint64_t now = kha_now_us(), limit = w->dp.idle_timeout_us;
	struct conn *c = w->conns;

	(void)src;
	while (c) {
		struct conn *next = c->next;
		if (now - c->last_us > limit) {
			STAT_ADD(w->stats.idle_closed, 1);
			conn_free(c, true, true);
		}
		c = next;
	}
}

/* Arms the idle sweep for the current idle timeout (every half of it, at most every second). */
static int set_sweep(struct worker *w)
{
	uint64_t limit = w->dp.idle_timeout_us;
	uint64_t every = KHA_MAX(KHA_MIN(limit / 2, KHA_USEC_PER_SEC), 1000);

	if (!limit) {
		if (w->sweep)
			kha_loop_timer_stop(w->sweep);
		return 0;
	}
	if (w->sweep) {
		kha_loop_timer_set(w->sweep, every, every);
		return 0;
	}
	return kha_loop_add_timer(w->loop, every, every, idle_sweep, w, &w->sweep);
}

void kha_proxy__dpconf_from(struct dpconf *dp, const struct kha_proxy_config *cfg)
{
	*dp = (struct dpconf){
		.balance = cfg->balance,
		.retries = cfg->retries,
		.connect_timeout_us = cfg->connect_timeout_us,
		.first_byte_timeout_us = cfg->first_byte_timeout_us,
		.idle_timeout_us = cfg->idle_timeout_us,
		.tcp_user_timeout_us = cfg->tcp_user_timeout_us,
		.keepalive_idle_us = cfg->keepalive_idle_us,
		.keepalive_interval_us = cfg->keepalive_interval_us,
		.keepalive_count = cfg->keepalive_count,
		.client_keepalive_idle_us = cfg->client_keepalive_idle_us,
		.max_conns = kha_proxy_max_conns(cfg),
	};
}

unsigned kha_proxy_max_conns(const struct kha_proxy_config *cfg)
{
	struct rlimit rl;
	uint64_t limit, reserve;

	if (cfg->max_conns)
		return cfg->max_conns;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT32_MAX / 2;
	limit = rl.rlim_cur;
	reserve = KHA_MAX(KHA_MIN(128, limit / 4), limit / 16);
	if (limit <= reserve + 2)
		return 1;
	return (unsigned)KHA_MIN((limit - reserve) / 2, (uint64_t)UINT32_MAX / 2);
}

/* ---- control messages ---- */

struct msg {
	struct worker *w;
	void *ptr;
};

static int post(struct worker *w, kha_loop_post_fn fn, void *ptr)
{
	struct msg *m = malloc(sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->w = w;
	m->ptr = ptr;
	r = kha_loop_post(w->loop, fn, m);
	if (r < 0)
		free(m);
	return r;
}

static void on_set_table(struct kha_loop *loop, void *userdata)
{
	struct msg *m = userdata;
	struct worker *w = m->w;
	struct table *t = m->ptr;
	struct kha_proxy_candidate *cand = calloc(t->n ? t->n : 1, sizeof(*cand));

	(void)loop;
	free(m);
	if (!cand) {
		kha_proxy__table_unref(t); /* keep the old table: better stale than none */
		return;
	}
	free(w->cand);
	w->cand = cand;
	if (w->table)
		kha_proxy__table_unref(w->table);
	w->table = t;
}

int kha_proxy__worker_post_table(struct worker *w, struct table *t)
{
	int r;

	__atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
	r = post(w, on_set_table, t);
	if (r < 0)
		kha_proxy__table_unref(t);
	return r;
}

static void on_close_backend(struct kha_loop *loop, void *userdata)
{
	struct msg *m = userdata;
	struct worker *w = m->w;
	struct backend *b = m->ptr;
	struct conn *c = w->conns;

	(void)loop;
	free(m);
	while (c) {
		struct conn *next = c->next;
		if (c->be == b) {
			STAT_ADD(b->ws[w->id].dead_closed, 1);
			conn_free(c, true, true);
		}
		c = next;
	}
	kha_proxy__backend_unref(b);
}

int kha_proxy__worker_post_close_backend(struct worker *w, struct backend *b)
{
	int r;

	__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
	r = post(w, on_close_backend, b);
	if (r < 0)
		kha_proxy__backend_unref(b);
	return r;
}

static void on_drain(struct kha_loop *loop, void *userdata)
{
	struct msg *m = userdata;
	struct worker *w = m->w;

	(void)loop;
	free(m);
	if (w->draining)
		return;
	w->draining = true;
	kha_loop_source_remove(w->lsrc);
	w->lsrc = NULL;
	if (w->lfd >= 0) {
		close(w->lfd);
		w->lfd = -1;
	}
	if (w->nconns == 0)
		kha_proxy__report_drained(w);
}

int kha_proxy__worker_post_drain(struct worker *w)
{
	return post(w, on_drain, NULL);
}

static void on_stop(struct kha_loop *loop, void *userdata)
{
	struct msg *m = userdata;
	struct worker *w = m->w;

	free(m);
	w->draining = false; /* no drained report while closing */
	while (w->conns)
		conn_free(w->conns, false, false);
	kha_loop_quit(loop, 0);
}

int kha_proxy__worker_post_stop(struct worker *w)
{
	return post(w, on_stop, NULL);
}

static void on_set_dpconf(struct kha_loop *loop, void *userdata)
{
	struct msg *m = userdata;
	struct worker *w = m->w;
	struct dpconf *dp = m->ptr;
	bool idle_was_off = !w->dp.idle_timeout_us;

	(void)loop;
	free(m);
	w->dp = *dp;
	free(dp);
	if (idle_was_off && w->dp.idle_timeout_us) {
		/* last_us was not kept up to date: idle is counted from now */
		uint64_t now = kha_now_us();
		for (struct conn *c = w->conns; c; c = c->next)
			c->last_us = now;
	}
	if (set_sweep(w) < 0)
		kha_error("idle timeout not applied", "worker=%u error=%s", w->id, "out of memory");
}

int kha_proxy__worker_post_dpconf(struct worker *w, const struct dpconf *dp)
{
	struct dpconf *copy = malloc(sizeof(*copy));
	int r;

	if (!copy)
		return -ENOMEM;
	*copy = *dp;
	r = post(w, on_set_dpconf, copy);
	if (r < 0)
		free(copy);
	return r;
}

void *kha_proxy__worker_main(void *arg)
{
	struct worker *w = arg;

	kha_ignore(kha_loop_run(w->loop));
	return NULL;
}

int kha_proxy__worker_listen(const struct kha_proxy_config *cfg, bool reuseport, struct kha_diag *d)
{
	int fd = kha_httpd_listen(cfg->listen, 4096, reuseport ? KHA_HTTPD_LISTEN_REUSEPORT : 0, d);

	if (fd < 0)
		kha_diag_prefix(d, "--listen");
	return fd;
}

int kha_proxy__worker_init(struct worker *w, struct kha_proxy *p, unsigned id, int lfd)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->p = p;
	w->id = id;
	w->lfd = lfd;
	r = kha_loop_new(&w->loop);
	if (r < 0)
		return r;
	kha_proxy__dpconf_from(&w->dp, &p->cfg);
	r = kha_loop_add_io(w->loop, lfd, EPOLLIN, 0, on_accept, w, &w->lsrc);
	if (r < 0)
		return r;
	return set_sweep(w);
}

void kha_proxy__worker_release(struct worker *w)
{
	if (!w->p)
		return;
	w->draining = false;
	/* run what is still posted (tables, backend refs) so nothing leaks */
	if (w->loop)
		kha_ignore(kha_loop_run_once(w->loop, 0));
	while (w->conns)
		conn_free(w->conns, false, false);
	while (w->free_bufs) {
		struct buf *b = w->free_bufs;
		w->free_bufs = b->next;
		free(b);
	}
	kha_loop_free(w->loop);
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->table)
		kha_proxy__table_unref(w->table);
	free(w->cand);
	w->p = NULL;
}
