/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one epoll instance per thread, in the spirit of redis ae.c and libuv.
 *
 * Sources, each with a callback and a void *userdata:
 *   io      an fd and an epoll event mask, level- or edge-triggered (KHA_LOOP_EDGE)
 *   timer   one-shot or repeating, kept in a binary min-heap keyed by kha_now_us() deadlines
 *   signal  delivered through one signalfd per loop (the caller blocks the signals first)
 *   defer   runs once at the end of the current (or next) pass
 * plus kha_loop_post(), the one thread-safe entry: it queues a function for the loop's thread and
 * wakes the loop through an eventfd.
 *
 * Ownership: the loop owns every source; kha_loop_source_remove() may be called at any time, even
 * from inside any callback (including the source's own): the source is unlinked at once, never
 * dispatched again, and freed after the current pass. Removing an io source never closes its fd:
 * the fd belongs to the caller. Everything but kha_loop_post() must be called from the loop's
 * thread.
 *
 * Time is kha_now_us(); with kha_clock_set_fake() a test drives timers by moving the clock and
 * calling kha_loop_run_once().
 */
#ifndef KHA_LOOP_H
#define KHA_LOOP_H

#include <sys/epoll.h>
#include "kha/common.h"

struct kha_loop;
struct kha_loop_source;

/* io flags */
#define KHA_LOOP_EDGE (1u << 0) /* edge-triggered (EPOLLET): the callback must drain to EAGAIN */

/* events: the EPOLL* bits that fired (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP) */
typedef void (*kha_loop_io_fn)(struct kha_loop_source *src, int fd, uint32_t events,
			       void *userdata);
typedef void (*kha_loop_timer_fn)(struct kha_loop_source *src, void *userdata);
typedef void (*kha_loop_signal_fn)(struct kha_loop_source *src, int signo, void *userdata);
typedef void (*kha_loop_defer_fn)(struct kha_loop_source *src, void *userdata);
typedef void (*kha_loop_post_fn)(struct kha_loop *loop, void *userdata);

/* Creates a loop. Returns 0 or -errno (epoll/eventfd creation failed, -ENOMEM). */
int kha_loop_new(struct kha_loop **ret_loop) KHA_WUR;
/*
 * Frees the loop and every source still attached (their fds are not closed). Posted functions
 * not yet run are dropped: their userdata leaks unless the caller drains them first with
 * kha_loop_run_once(). NULL is a no-op.
 */
void kha_loop_free(struct kha_loop *loop);

/*
 * Watches fd for events (EPOLLIN | EPOLLOUT | EPOLLRDHUP ...). flags: KHA_LOOP_EDGE or 0.
 * ret_src may be NULL when the caller never needs to modify or remove the source.
 */
int kha_loop_add_io(struct kha_loop *loop, int fd, uint32_t events, unsigned flags,
		    kha_loop_io_fn fn, void *userdata, struct kha_loop_source **ret_src) KHA_WUR;
/* Changes the event mask of an io source (epoll_ctl MOD). */
int kha_loop_io_set_events(struct kha_loop_source *src, uint32_t events) KHA_WUR;

/*
 * A timer firing after delay_us, then every interval_us when interval_us > 0 (else one-shot:
 * a fired one-shot timer stays attached and can be re-armed with kha_loop_timer_set()).
 */
int kha_loop_add_timer(struct kha_loop *loop, uint64_t delay_us, uint64_t interval_us,
		       kha_loop_timer_fn fn, void *userdata,
		       struct kha_loop_source **ret_src) KHA_WUR;
/* Re-arms (or arms) a timer: first expiry after delay_us, then every interval_us if > 0. */
void kha_loop_timer_set(struct kha_loop_source *src, uint64_t delay_us, uint64_t interval_us);
/* Disarms a timer without removing it. */
void kha_loop_timer_stop(struct kha_loop_source *src);
/* Whether a timer is armed. */
bool kha_loop_timer_armed(const struct kha_loop_source *src);

/*
 * Receives signo through the loop's signalfd. The caller must have blocked signo in every thread
 * (pthread_sigmask before creating threads), otherwise it is delivered the usual way.
 */
int kha_loop_add_signal(struct kha_loop *loop, int signo, kha_loop_signal_fn fn, void *userdata,
			struct kha_loop_source **ret_src) KHA_WUR;

/*
 * The start of a daemon's loop: blocks sigs[0..n) in the calling thread (threads it creates
 * afterwards inherit the mask) and receives each through the loop's signalfd with fn. Returns 0
 * or a negative errno (the signals already added stay).
 */
int kha_loop_add_signals(struct kha_loop *loop, const int *sigs, size_t n, kha_loop_signal_fn fn,
			 void *userdata) KHA_WUR;

/* Runs fn once, after the io and timer callbacks of the current pass; then frees the source. */
int kha_loop_add_defer(struct kha_loop *loop, kha_loop_defer_fn fn, void *userdata,
		       struct kha_loop_source **ret_src) KHA_WUR;

/* Detaches a source (see the ownership rules above). NULL is a no-op. */
void kha_loop_source_remove(struct kha_loop_source *src);
/* Replaces the userdata of a source. */
void kha_loop_source_set_userdata(struct kha_loop_source *src, void *userdata);

/*
 * Thread-safe: queues fn(loop, userdata) to run on the loop's thread at its next pass, in FIFO
 * order, and wakes it. Returns 0 or -ENOMEM. The function runs even while the loop is quitting,
 * as long as the loop thread keeps calling kha_loop_run_once().
 */
int kha_loop_post(struct kha_loop *loop, kha_loop_post_fn fn, void *userdata) KHA_WUR;

/*
 * One pass: waits at most timeout_ms (-1: until an event or the next timer; 0: poll) for io,
 * then runs posted functions (first: they were posted before the io events were seen), io
 * callbacks, expired timers and defers, then frees removed sources.
 * Returns the number of callbacks run or -errno.
 */
int kha_loop_run_once(struct kha_loop *loop, int timeout_ms);
/* Runs passes until kha_loop_quit(); returns the code given to it. */
int kha_loop_run(struct kha_loop *loop);
/* Makes kha_loop_run() return code after the current pass. Loop thread only. */
void kha_loop_quit(struct kha_loop *loop, int code);
/* Number of attached sources of any kind (a loop with none left has nothing to wait for). */
size_t kha_loop_source_count(const struct kha_loop *loop);

#endif
