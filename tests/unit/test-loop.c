// SPDX-License-Identifier: MIT
/* Unit tests of the event loop: timers on the fake clock, io, removal during dispatch, signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "kha/loop.h"
#include "fake-clock.h"
#include "kha/banned.h"

struct record {
	int order[64];
	int n;
};

static void record_timer(struct kha_loop_source *src, void *userdata)
{
	struct record *r = userdata;
	(void)src;
	r->order[r->n++] = (int)(fake_now / 1000);
}

static void test_timer_fires_at_deadline_on_fake_clock(void **state)
{
	struct kha_loop *loop;
	struct kha_loop_source *t;
	struct record rec = {};

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_timer(loop, 5000, 0, record_timer, &rec, &t), 0);
	assert_int_equal(kha_loop_run_once(loop, 0), 0);
	fake_now += 4999;
	assert_int_equal(kha_loop_run_once(loop, 0), 0);
	fake_now += 1;
	assert_int_equal(kha_loop_run_once(loop, 0), 1);
	assert_int_equal(rec.n, 1);
	assert_false(kha_loop_timer_armed(t));
	/* a fired one-shot can be re-armed */
	kha_loop_timer_set(t, 1000, 0);
	fake_now += 1000;
	assert_int_equal(kha_loop_run_once(loop, 0), 1);
	assert_int_equal(rec.n, 2);
	kha_loop_free(loop);
}

static void test_timer_heap_orders_many_timers(void **state)
{
	static const int delays_ms[] = {50, 3, 27, 9, 1, 33, 12, 8, 40, 2, 19, 5};
	struct kha_loop *loop;
	struct record rec = {};

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(delays_ms); i++)
		assert_int_equal(kha_loop_add_timer(loop, (uint64_t)delays_ms[i] * 1000, 0,
						    record_timer, &rec, NULL),
				 0);
	for (int ms = 0; ms <= 50; ms++) {
		kha_ignore(kha_loop_run_once(loop, 0));
		fake_now += 1000;
	}
	assert_int_equal(rec.n, (int)KHA_ARRAY_SIZE(delays_ms));
	for (int i = 1; i < rec.n; i++)
		assert_true(rec.order[i - 1] < rec.order[i]);
	kha_loop_free(loop);
}

static void test_timer_repeats_and_cancels(void **state)
{
	struct kha_loop *loop;
	struct kha_loop_source *t, *other;
	struct record rec = {}, rec2 = {};

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_timer(loop, 1000, 1000, record_timer, &rec, &t), 0);
	assert_int_equal(kha_loop_add_timer(loop, 2500, 0, record_timer, &rec2, &other), 0);
	for (int i = 0; i < 3; i++) {
		fake_now += 1000;
		kha_ignore(kha_loop_run_once(loop, 0));
	}
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec2.n, 1);
	/* a late loop does not fire a burst of catch-up expiries */
	fake_now += 10000;
	kha_ignore(kha_loop_run_once(loop, 0));
	assert_int_equal(rec.n, 4);
	kha_loop_timer_stop(t);
	fake_now += 5000;
	assert_int_equal(kha_loop_run_once(loop, 0), 0);
	assert_int_equal(rec.n, 4);
	kha_loop_source_remove(t);
	kha_loop_source_remove(other);
	assert_int_equal(kha_loop_run_once(loop, 0), 0);
	assert_int_equal(kha_loop_source_count(loop), 0);
	kha_loop_free(loop);
}

static void rearm_zero(struct kha_loop_source *src, void *userdata)
{
	int *n = userdata;
	(*n)++;
	kha_loop_timer_set(src, 0, 0);
}

static void test_timer_rearmed_at_now_waits_for_next_pass(void **state)
{
	struct kha_loop *loop;
	int n = 0;

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_timer(loop, 0, 0, rearm_zero, &n, NULL), 0);
	assert_int_equal(kha_loop_run_once(loop, 0), 1);
	assert_int_equal(kha_loop_run_once(loop, 0), 1);
	assert_int_equal(n, 2);
	kha_loop_free(loop); /* frees the still-attached timer */
}

struct io_pair {
	struct kha_loop_source *src[2];
	int calls[2];
	bool remove_other;
	bool remove_self;
};

static void io_cb(struct kha_loop_source *src, int fd, uint32_t events, void *userdata)
{
	struct io_pair *p = userdata;
	int me = src == p->src[0] ? 0 : 1;

	(void)fd;
	assert_true(events & EPOLLIN);
	p->calls[me]++;
	if (p->remove_other)
		kha_loop_source_remove(p->src[1 - me]);
	if (p->remove_self)
		kha_loop_source_remove(src);
}

static void test_io_removed_during_dispatch_is_not_called(void **state)
{
	struct kha_loop *loop;
	struct io_pair p = {.remove_other = true};
	int a[2], b[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_io(loop, a[0], EPOLLIN, 0, io_cb, &p, &p.src[0]), 0);
	assert_int_equal(kha_loop_add_io(loop, b[0], EPOLLIN, 0, io_cb, &p, &p.src[1]), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	/* both are ready in the same epoll_wait batch; whichever runs first removes the other */
	assert_int_equal(kha_loop_run_once(loop, 100), 1);
	assert_int_equal(p.calls[0] + p.calls[1], 1);
	assert_int_equal(kha_loop_source_count(loop), 1);
	kha_loop_free(loop);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

static void test_io_self_removal_and_level_vs_edge(void **state)
{
	struct kha_loop *loop;
	struct io_pair lvl = {}, edge = {}, self = {.remove_self = true};
	int a[2], b[2], c[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), 0);
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_io(loop, a[0], EPOLLIN, 0, io_cb, &lvl, &lvl.src[0]), 0);
	assert_int_equal(
		kha_loop_add_io(loop, b[0], EPOLLIN, KHA_LOOP_EDGE, io_cb, &edge, &edge.src[0]), 0);
	assert_int_equal(kha_loop_add_io(loop, c[0], EPOLLIN, 0, io_cb, &self, &self.src[0]), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	assert_int_equal(write(c[1], "z", 1), 1);
	for (int i = 0; i < 3; i++)
		kha_ignore(kha_loop_run_once(loop, 0));
	/* nobody reads: level-triggered fires every pass, edge-triggered once */
	assert_int_equal(lvl.calls[0], 3);
	assert_int_equal(edge.calls[0], 1);
	assert_int_equal(self.calls[0], 1);
	/* new data is a new edge */
	assert_int_equal(write(b[1], "y", 1), 1);
	kha_ignore(kha_loop_run_once(loop, 0));
	assert_int_equal(edge.calls[0], 2);
	kha_loop_free(loop);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
		close(c[i]);
	}
}

static void count_signal(struct kha_loop_source *src, int signo, void *userdata)
{
	int *n = userdata;
	(void)src;
	assert_int_equal(signo, SIGUSR1);
	(*n)++;
}

static void test_signal_through_signalfd(void **state)
{
	struct kha_loop *loop;
	struct kha_loop_source *s;
	sigset_t set, old;
	int n = 0, m = 0;

	(void)state;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_signal(loop, SIGUSR1, count_signal, &n, &s), 0);
	assert_int_equal(kha_loop_add_signal(loop, SIGUSR1, count_signal, &m, NULL), 0);
	assert_int_equal(kha_loop_add_signal(loop, 0, count_signal, &m, NULL), -EINVAL);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(kha_loop_run_once(loop, 1000), 2);
	assert_int_equal(n, 1);
	assert_int_equal(m, 1);
	kha_loop_source_remove(s);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(kha_loop_run_once(loop, 1000), 1);
	assert_int_equal(n, 1);
	assert_int_equal(m, 2);
	kha_loop_free(loop);
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
}

static void defer_cb(struct kha_loop_source *src, void *userdata)
{
	int *n = userdata;
	(void)src;
	(*n)++;
}

static void test_defer_runs_once_and_can_be_cancelled(void **state)
{
	struct kha_loop *loop;
	struct kha_loop_source *d;
	int n = 0, cancelled = 0;

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_loop_add_defer(loop, defer_cb, &n, NULL), 0);
	assert_int_equal(kha_loop_add_defer(loop, defer_cb, &cancelled, &d), 0);
	kha_loop_source_remove(d);
	/* pending defers make the pass not block, whatever the timeout */
	assert_int_equal(kha_loop_run_once(loop, -1), 1);
	assert_int_equal(kha_loop_run_once(loop, 0), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cancelled, 0);
	assert_int_equal(kha_loop_source_count(loop), 0);
	kha_loop_free(loop);
}

struct poster {
	struct kha_loop *loop;
	int received;
};

static void on_post(struct kha_loop *loop, void *userdata)
{
	struct poster *p = userdata;
	if (++p->received == 1000)
		kha_loop_quit(loop, 42);
}

static void *post_thread(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(kha_loop_post(p->loop, on_post, p), 0);
	return NULL;
}

static void test_post_from_another_thread_wakes_the_loop(void **state)
{
	struct poster p = {};
	pthread_t th;

	(void)state;
	kha_clock_set_fake(NULL, NULL); /* real time: the loop blocks in epoll_wait */
	assert_int_equal(kha_loop_new(&p.loop), 0);
	assert_int_equal(pthread_create(&th, NULL, post_thread, &p), 0);
	assert_int_equal(kha_loop_run(p.loop), 42);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.received, 1000);
	kha_loop_free(p.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timer_fires_at_deadline_on_fake_clock,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_timer_heap_orders_many_timers,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_timer_repeats_and_cancels, fake_clock_setup,
						fake_clock_teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearmed_at_now_waits_for_next_pass,
						fake_clock_setup, fake_clock_teardown),
		cmocka_unit_test(test_io_removed_during_dispatch_is_not_called),
		cmocka_unit_test(test_io_self_removal_and_level_vs_edge),
		cmocka_unit_test(test_signal_through_signalfd),
		cmocka_unit_test(test_defer_runs_once_and_can_be_cancelled),
		cmocka_unit_test(test_post_from_another_thread_wakes_the_loop),
	};
	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
