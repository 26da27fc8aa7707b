/* SPDX-License-Identifier: MIT */
/*
 * Small things every module uses: cleanup helpers, attributes, exit codes, the clock.
 *
 * Ownership: cleanup macros free what the annotated variable holds when it leaves scope;
 * hand an object off with KHA_TAKE_PTR()/KHA_TAKE_FD(). Never use them on objects owned by the
 * event loop.
 */
#ifndef KHA_COMMON_H
#define KHA_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define KHA_WUR		 __attribute__((warn_unused_result))
#define KHA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KHA_UNUSED	 __attribute__((unused))
/* Ignores a KHA_WUR result on purpose (gcc does not accept a plain (void) cast). */
#define kha_ignore(x) ((void)!(x))

#define KHA_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KHA_MIN(a, b)	  ((a) < (b) ? (a) : (b))
#define KHA_MAX(a, b)	  ((a) > (b) ? (a) : (b))

#define kha_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Defines func##p(type *), a cleanup wrapper calling func(*p) when *p is non-NULL. */
#define KHA_DEFINE_CLEANUP(type, func)      \
	static inline void func##p(type *p) \
	{                                   \
		if (*p)                     \
			func(*p);           \
	}

static inline void kha_freep(void *p)
{
	free(*(void **)p);
}

static inline void kha_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define kha_autofree  __attribute__((cleanup(kha_freep)))
#define kha_autoclose __attribute__((cleanup(kha_closep)))
#define kha_auto(fn)  __attribute__((cleanup(fn)))

#define KHA_TAKE_PTR(p)                     \
	({                                  \
		__typeof__(p) _kha_p = (p); \
		(p) = NULL;                 \
		_kha_p;                     \
	})
#define KHA_TAKE_FD(fd)             \
	({                          \
		int _kha_fd = (fd); \
		(fd) = -1;          \
		_kha_fd;            \
	})

/*
 * Makes room for need elements of elem_size bytes in *array, whose capacity is *cap: grows it
 * to the largest of need, twice *cap and 8 (amortised appends). Returns 0, or -ENOMEM (also for
 * a size that overflows) with *array and *cap untouched: the caller still owns what it had.
 */
int kha_grow(void **array, size_t *cap, size_t need, size_t elem_size) KHA_WUR;
/* kha_grow() on a typed array with a size_t capacity: if (KHA_GROW(v, cap, n + 1) < 0) ... */
#define KHA_GROW(arr, cap, need)                                                \
	({                                                                      \
		void *_kha_a = (arr);                                           \
		int _kha_r = kha_grow(&_kha_a, &(cap), (need), sizeof(*(arr))); \
		(arr) = _kha_a;                                                 \
		_kha_r;                                                         \
	})
/*
 * Resizes a typed array to exactly n elements (n > 0), for the short lists that grow by one;
 * a size that overflows fails before any allocation. 0, or -ENOMEM with arr untouched.
 */
#define KHA_RESIZE(arr, n)                                                                 \
	({                                                                                 \
		size_t _kha_n = (n);                                                       \
		__typeof__(arr) _kha_g = _kha_n <= SIZE_MAX / sizeof(*(arr))               \
						 ? realloc((arr), _kha_n * sizeof(*(arr))) \
						 : NULL;                                   \
		if (_kha_g)                                                                \
			(arr) = _kha_g;                                                    \
		_kha_g ? 0 : -ENOMEM;                                                      \
	})

/* Exit codes, as DESIGN.md fixes them (sysexits for the errors). */
enum kha_exit {
	KHA_EXIT_OK = 0,
	KHA_EXIT_DEGRADED = 1,
	KHA_EXIT_CRITICAL = 2,
	KHA_EXIT_USAGE = 64,
	KHA_EXIT_DATAERR = 65,
	KHA_EXIT_UNAVAILABLE = 69,
	KHA_EXIT_SOFTWARE = 70,
	KHA_EXIT_IOERR = 74,
	KHA_EXIT_NOPERM = 77,
	KHA_EXIT_CONFIG = 78,
};

/* Maps a negative errno from the library to the exit code a command should use. */
int kha_exit_from_errno(int err);

/*
 * The one clock: CLOCK_MONOTONIC in microseconds. Tests may replace it with
 * kha_clock_set_fake(); passing NULL restores the real clock.
 */
typedef uint64_t (*kha_clock_fn)(void *userdata);
uint64_t kha_now_us(void);
void kha_clock_set_fake(kha_clock_fn fn, void *userdata);
/* Wall clock in microseconds since the epoch (for logs and reports only). */
uint64_t kha_wall_us(void);

/*
 * Sleeps us microseconds of real monotonic time (never the fake clock), in slices of at most
 * 50 ms, so that a cancel flag (may be NULL) set by a signal handler or another thread ends it
 * within 50 ms. Returns 0, or -ECANCELED when *cancel was set before or during the sleep.
 */
int kha_sleep_us(uint64_t us, const volatile sig_atomic_t *cancel);

#define KHA_USEC_PER_MSEC 1000ULL
#define KHA_USEC_PER_SEC  1000000ULL

#endif
