// SPDX-License-Identifier: MIT
/*
 * The epoll event loop (see include/kha/loop.h and docs/internals/loop.md).
 *
 * Invariants:
 * - a source is in at most one of: the timer heap (armed timers), the defer FIFO (pending
 *   defers), the signal list (signals); and a dead source is in the reap list only, except a
 *   dead defer, which stays in the defer FIFO until the defer phase moves it to the reap list;
 * - a dead source is never dispatched: io events already returned by epoll_wait for it in the
 *   current pass are skipped by its dead flag, which is why memory is released only at the end
 *   of the pass.
 */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "kha/loop.h"
#include "kha/banned.h"

enum src_kind {
	SRC_IO,
	SRC_TIMER,
	SRC_SIGNAL,
	SRC_DEFER,
	SRC_WAKE,     /* internal: the eventfd of kha_loop_post */
	SRC_SIGNALFD, /* internal: the signalfd */
};

struct kha_loop_source {
	struct kha_loop *loop;
	uint8_t kind;
	bool dead;
	void *userdata;
	union {
		kha_loop_io_fn io;
		kha_loop_timer_fn timer;
		kha_loop_signal_fn signal;
		kha_loop_defer_fn defer;
	} fn;
	union {
		struct {
			int fd;
			uint32_t events;
		} io;
		struct {
			uint64_t deadline_us;
			uint64_t interval_us;
			size_t heap_idx; /* SIZE_MAX when not armed */
		} timer;
		int signo;
	} u;
	struct kha_loop_source *next;		     /* defer FIFO, signal list or reap list */
	struct kha_loop_source *all_prev, *all_next; /* every source, until freed */
};

struct post {
	kha_loop_post_fn fn;
	void *userdata;
	struct post *next;
};

struct kha_loop {
	int epfd;
	int wakefd;
	int sigfd;
	sigset_t sigmask;
	bool quit;
	int quit_code;
	size_t nsources;
	size_t ntimers; /* timer sources attached: the heap capacity never falls below it */
	struct kha_loop_source *all;

	struct kha_loop_source **heap;
	size_t heap_len, heap_cap;

	struct kha_loop_source *defer_head, *defer_tail;
	struct kha_loop_source *signals;
	struct kha_loop_source *reap;

	pthread_mutex_t post_lock;
	struct post *post_head, *post_tail;

	struct kha_loop_source wake_src, sig_src;
};

#define MAX_EVENTS 256

/* ---- timer heap ---- */

static bool heap_less(const struct kha_loop_source *a, const struct kha_loop_source *b)
{
	return a->u.timer.deadline_us < b->u.timer.deadline_us;
}

static void heap_swap(struct kha_loop *l, size_t i, size_t j)
{
	struct kha_loop_source *t = l->heap[i];

	l->heap[i] = l->heap[j];
	l->heap[j] = t;
	l->heap[i]->u.timer.heap_idx = i;
	l->heap[j]->u.timer.heap_idx = j;
}

static void heap_up(struct kha_loop *l, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_less(l->heap[i], l->heap[parent]))
			break;
		heap_swap(l, i, parent);
		i = parent;
	}
}

static void heap_down(struct kha_loop *l, size_t i)
{
	for (;;) {
		size_t left = 2 * i + 1, right = left + 1, min = i;
		if (left < l->heap_len && heap_less(l->heap[left], l->heap[min]))
			min = left;
		if (right < l->heap_len && heap_less(l->heap[right], l->heap[min]))
			min = right;
		if (min == i)
			break;
		heap_swap(l, i, min);
		i = min;
	}
}

/* Grows the heap to hold n timers, so that arming an attached timer can never fail. */
static int heap_reserve(struct kha_loop *l, size_t n)
{
	return KHA_GROW(l->heap, l->heap_cap, n);
}

static void heap_push(struct kha_loop *l, struct kha_loop_source *s)
{
	assert(l->heap_len < l->heap_cap);
	l->heap[l->heap_len] = s;
	s->u.timer.heap_idx = l->heap_len++;
	heap_up(l, s->u.timer.heap_idx);
}

static void heap_remove(struct kha_loop *l, struct kha_loop_source *s)
{
	size_t i = s->u.timer.heap_idx;

	if (i == SIZE_MAX)
		return;
	s->u.timer.heap_idx = SIZE_MAX;
	l->heap_len--;
	if (i == l->heap_len)
		return;
	l->heap[i] = l->heap[l->heap_len];
	l->heap[i]->u.timer.heap_idx = i;
	heap_down(l, i);
	heap_up(l, i);
}

/* ---- lifecycle ---- */

int kha_loop_new(struct kha_loop **ret_loop)
{
	struct kha_loop *l = calloc(1, sizeof(*l));
	struct epoll_event ev = {.events = EPOLLIN};
	int r;

	if (!l)
		return -ENOMEM;
	l->sigfd = -1;
	l->wakefd = -1;
	sigemptyset(&l->sigmask);
	pthread_mutex_init(&l->post_lock, NULL);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wakefd < 0)
		goto fail;
	l->wake_src.kind = SRC_WAKE;
	l->wake_src.loop = l;
	ev.data.ptr = &l->wake_src;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0)
		goto fail;
	l->sig_src.kind = SRC_SIGNALFD;
	l->sig_src.loop = l;
	*ret_loop = l;
	return 0;
fail:
	r = -errno;
	kha_loop_free(l);
	return r;
}

void kha_loop_free(struct kha_loop *l)
{
	struct post *p;

	if (!l)
		return;
	while (l->all) {
		struct kha_loop_source *next = l->all->all_next;
		free(l->all);
		l->all = next;
	}
	free(l->heap);
	while ((p = l->post_head)) {
		l->post_head = p->next;
		free(p);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	if (l->sigfd >= 0)
		close(l->sigfd);
	pthread_mutex_destroy(&l->post_lock);
	free(l);
}

static struct kha_loop_source *source_new(struct kha_loop *l, enum src_kind kind, void *userdata)
{
	struct kha_loop_source *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = l;
	s->kind = (uint8_t)kind;
	s->userdata = userdata;
	s->all_next = l->all;
	if (l->all)
		l->all->all_prev = s;
	l->all = s;
	l->nsources++;
	return s;
}

static void source_discard(struct kha_loop_source *s)
{
	struct kha_loop *l = s->loop;

	if (s->all_prev)
		s->all_prev->all_next = s->all_next;
	else
		l->all = s->all_next;
	if (s->all_next)
		s->all_next->all_prev = s->all_prev;
	free(s);
}

/* ---- io ---- */

int kha_loop_add_io(struct kha_loop *l, int fd, uint32_t events, unsigned flags, kha_loop_io_fn fn,
		    void *userdata, struct kha_loop_source **ret_src)
{
	struct kha_loop_source *s = source_new(l, SRC_IO, userdata);
	struct epoll_event ev;

	if (!s)
		return -ENOMEM;
	s->fn.io = fn;
	s->u.io.fd = fd;
	s->u.io.events = events | ((flags & KHA_LOOP_EDGE) ? EPOLLET : 0);
	ev.events = s->u.io.events;
	ev.data.ptr = s;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		source_discard(s);
		return r;
	}
	if (ret_src)
		*ret_src = s;
	return 0;
}

int kha_loop_io_set_events(struct kha_loop_source *s, uint32_t events)
{
	struct epoll_event ev;

	assert(s->kind == SRC_IO && !s->dead);
	events |= s->u.io.events & EPOLLET;
	if (events == s->u.io.events)
		return 0;
	ev.events = events;
	ev.data.ptr = s;
	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->u.io.fd, &ev) < 0)
		return -errno;
	s->u.io.events = events;
	return 0;
}

/* ---- timers ---- */

int kha_loop_add_timer(struct kha_loop *l, uint64_t delay_us, uint64_t interval_us,
		       kha_loop_timer_fn fn, void *userdata, struct kha_loop_source **ret_src)
{
	struct kha_loop_source *s;

	if (heap_reserve(l, l->ntimers + 1) < 0)
		return -ENOMEM;
	s = source_new(l, SRC_TIMER, userdata);
	if (!s)
		return -ENOMEM;
	l->ntimers++;
	s->fn.timer = fn;
	s->u.timer.deadline_us = kha_now_us() + delay_us;
	s->u.timer.interval_us = interval_us;
	heap_push(l, s);
	if (ret_src)
		*ret_src = s;
	return 0;
}

void kha_loop_timer_set(struct kha_loop_source *s, uint64_t delay_us, uint64_t interval_us)
{
	struct kha_loop *l = s->loop;

	assert(s->kind == SRC_TIMER && !s->dead);
	s->u.timer.deadline_us = kha_now_us() + delay_us;
	s->u.timer.interval_us = interval_us;
	if (s->u.timer.heap_idx != SIZE_MAX) {
		heap_down(l, s->u.timer.heap_idx);
		heap_up(l, s->u.timer.heap_idx);
	} else {
		heap_push(l, s);
	}
}

void kha_loop_timer_stop(struct kha_loop_source *s)
{
	assert(s->kind == SRC_TIMER);
	heap_remove(s->loop, s);
}

bool kha_loop_timer_armed(const struct kha_loop_source *s)
{
	return s->kind == SRC_TIMER && s->u.timer.heap_idx != SIZE_MAX;
}

/* ---- signals ---- */

static int update_signalfd(struct kha_loop *l)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->sig_src};
	int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		l->sigfd = fd;
	}
	return 0;
}

int kha_loop_add_signal(struct kha_loop *l, int signo, kha_loop_signal_fn fn, void *userdata,
			struct kha_loop_source **ret_src)
{
	struct kha_loop_source *s;
	int r;

	if (signo <= 0 || signo >= NSIG)
		return -EINVAL;
	s = source_new(l, SRC_SIGNAL, userdata);
	if (!s)
		return -ENOMEM;
	s->fn.signal = fn;
	s->u.signo = signo;
	sigaddset(&l->sigmask, signo);
	r = update_signalfd(l);
	if (r < 0) {
		source_discard(s);
		return r;
	}
	s->next = l->signals;
	l->signals = s;
	if (ret_src)
		*ret_src = s;
	return 0;
}

int kha_loop_add_signals(struct kha_loop *l, const int *sigs, size_t n, kha_loop_signal_fn fn,
			 void *userdata)
{
	sigset_t set;
	int r;

	sigemptyset(&set);
	for (size_t i = 0; i < n; i++)
		sigaddset(&set, sigs[i]);
	r = -pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = kha_loop_add_signal(l, sigs[i], fn, userdata, NULL);
	return r;
}

static void remove_signal(struct kha_loop *l, struct kha_loop_source *s)
{
	struct kha_loop_source **pp;
	bool still = false;

	for (pp = &l->signals; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->next = NULL;
	for (struct kha_loop_source *o = l->signals; o; o = o->next)
		still |= o->u.signo == s->u.signo;
	if (!still) {
		sigdelset(&l->sigmask, s->u.signo);
		kha_ignore(update_signalfd(l));
	}
}

/* ---- defers ---- */

int kha_loop_add_defer(struct kha_loop *l, kha_loop_defer_fn fn, void *userdata,
		       struct kha_loop_source **ret_src)
{
	struct kha_loop_source *s = source_new(l, SRC_DEFER, userdata);

	if (!s)
		return -ENOMEM;
	s->fn.defer = fn;
	if (l->defer_tail)
		l->defer_tail->next = s;
	else
		l->defer_head = s;
	l->defer_tail = s;
	if (ret_src)
		*ret_src = s;
	return 0;
}

/* ---- removal ---- */

void kha_loop_source_remove(struct kha_loop_source *s)
{
	struct kha_loop *l;

	if (!s || s->dead)
		return;
	l = s->loop;
	s->dead = true;
	l->nsources--;
	switch (s->kind) {
	case SRC_IO:
		/* the fd may already be closed by a careless caller: ignore the error */
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->u.io.fd, NULL);
		break;
	case SRC_TIMER:
		heap_remove(l, s);
		l->ntimers--;
		break;
	case SRC_SIGNAL:
		remove_signal(l, s);
		break;
	case SRC_DEFER:
		return; /* stays in the FIFO; the defer phase reaps it */
	default:
		assert(0);
	}
	s->next = l->reap;
	l->reap = s;
}

void kha_loop_source_set_userdata(struct kha_loop_source *s, void *userdata)
{
	s->userdata = userdata;
}

size_t kha_loop_source_count(const struct kha_loop *l)
{
	return l->nsources;
}

/* ---- cross-thread posts ---- */

int kha_loop_post(struct kha_loop *l, kha_loop_post_fn fn, void *userdata)
{
	struct post *p = malloc(sizeof(*p));
	uint64_t one = 1;
	bool was_empty;

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->userdata = userdata;
	p->next = NULL;
	pthread_mutex_lock(&l->post_lock);
	was_empty = !l->post_head;
	if (l->post_tail)
		l->post_tail->next = p;
	else
		l->post_head = p;
	l->post_tail = p;
	pthread_mutex_unlock(&l->post_lock);
	/* one wakeup per batch: the loop takes the whole queue at once */
	if (was_empty)
		kha_ignore(write(l->wakefd, &one, sizeof(one)));
	return 0;
}

static int run_posts(struct kha_loop *l)
{
	struct post *p;
	int n = 0;

	pthread_mutex_lock(&l->post_lock);
	p = l->post_head;
	l->post_head = l->post_tail = NULL;
	pthread_mutex_unlock(&l->post_lock);
	while (p) {
		struct post *next = p->next;
		p->fn(l, p->userdata);
		free(p);
		p = next;
		n++;
	}
	return n;
}

/* ---- dispatch ---- */

static int dispatch_signals(struct kha_loop *l)
{
	struct signalfd_siginfo si[16];
	ssize_t n;
	int count = 0;

	while ((n = read(l->sigfd, si, sizeof(si))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			for (struct kha_loop_source *s = l->signals; s; s = s->next) {
				if (!s->dead && s->u.signo == (int)si[i].ssi_signo) {
					s->fn.signal(s, s->u.signo, s->userdata);
					count++;
				}
			}
		}
	}
	return count;
}

static int run_timers(struct kha_loop *l)
{
	uint64_t now = kha_now_us();
	size_t budget = l->heap_len; /* a timer re-armed at "now" waits for the next pass */
	int n = 0;

	while (l->heap_len > 0 && budget-- > 0) {
		struct kha_loop_source *s = l->heap[0];
		if (s->u.timer.deadline_us > now)
			break;
		if (s->u.timer.interval_us > 0) {
			s->u.timer.deadline_us += s->u.timer.interval_us;
			if (s->u.timer.deadline_us <= now) /* late: do not fire a burst */
				s->u.timer.deadline_us = now + s->u.timer.interval_us;
			heap_down(l, 0);
		} else {
			heap_remove(l, s);
		}
		s->fn.timer(s, s->userdata);
		n++;
	}
	return n;
}

static int run_defers(struct kha_loop *l)
{
	struct kha_loop_source *s = l->defer_head;
	int n = 0;

	/* defers added by these callbacks run in the next pass */
	l->defer_head = l->defer_tail = NULL;
	while (s) {
		struct kha_loop_source *next = s->next;
		if (!s->dead) {
			s->fn.defer(s, s->userdata);
			n++;
			if (!s->dead) /* else it removed itself, which did the accounting */
				l->nsources--;
		}
		s->dead = true;
		s->next = l->reap;
		l->reap = s;
		s = next;
	}
	return n;
}

static void reap(struct kha_loop *l)
{
	struct kha_loop_source *s = l->reap;

	l->reap = NULL;
	while (s) {
		struct kha_loop_source *next = s->next;
		source_discard(s);
		s = next;
	}
}

static int compute_timeout(struct kha_loop *l, int timeout_ms)
{
	bool posts;
	int t = timeout_ms;

	pthread_mutex_lock(&l->post_lock);
	posts = l->post_head != NULL;
	pthread_mutex_unlock(&l->post_lock);
	if (l->defer_head || posts)
		return 0;
	if (l->heap_len > 0) {
		uint64_t now = kha_now_us(), deadline = l->heap[0]->u.timer.deadline_us;
		uint64_t ms = deadline > now ? (deadline - now + 999) / 1000 : 0;
		if (ms > INT32_MAX)
			ms = INT32_MAX;
		if (t < 0 || (int)ms < t)
			t = (int)ms;
	}
	return t;
}

int kha_loop_run_once(struct kha_loop *l, int timeout_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int n, count = 0;

	n = epoll_wait(l->epfd, events, MAX_EVENTS, compute_timeout(l, timeout_ms));
	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	/* posts first: a message posted before these io events happened applies to them (a new
	 * backend table must be in place before the accept that follows it) */
	count += run_posts(l);
	for (int i = 0; i < n; i++) {
		struct kha_loop_source *s = events[i].data.ptr;
		if (s->kind == SRC_WAKE) {
			uint64_t v;
			kha_ignore(read(l->wakefd, &v, sizeof(v)));
		} else if (s->kind == SRC_SIGNALFD) {
			count += dispatch_signals(l);
		} else if (!s->dead) {
			s->fn.io(s, s->u.io.fd, events[i].events, s->userdata);
			count++;
		}
	}
	count += run_timers(l);
	count += run_defers(l);
	reap(l);
	return count;
}

int kha_loop_run(struct kha_loop *l)
{
	while (!l->quit) {
		int r = kha_loop_run_once(l, -1);
		if (r < 0)
			return r;
	}
	l->quit = false;
	return l->quit_code;
}

void kha_loop_quit(struct kha_loop *l, int code)
{
	l->quit = true;
	l->quit_code = code;
}
