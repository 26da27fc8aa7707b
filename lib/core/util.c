// SPDX-License-Identifier: MIT
#include <time.h>

#include "kha/common.h"

static kha_clock_fn fake_clock;
static void *fake_clock_userdata;

uint64_t kha_now_us(void)
{
	struct timespec ts;

	if (fake_clock)
		return fake_clock(fake_clock_userdata);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * KHA_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

void kha_clock_set_fake(kha_clock_fn fn, void *userdata)
{
	fake_clock = fn;
	fake_clock_userdata = userdata;
}

uint64_t kha_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * KHA_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

int kha_exit_from_errno(int err)
{
	switch (-err) {
	case 0:
		return KHA_EXIT_OK;
	case EINVAL:
		return KHA_EXIT_USAGE;
	case EBADMSG:
	case EPROTO:
	case EILSEQ:
	case EFBIG: /* an input (a file, a reply) larger than kha accepts */
		return KHA_EXIT_DATAERR;
	case ECONNREFUSED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ECONNRESET:
	case EPIPE:
	case EADDRNOTAVAIL:
	case EAGAIN:
		return KHA_EXIT_UNAVAILABLE;
	case EIO:
	case ENOSPC:
	case EROFS:
	case EISDIR:
	case ENOTDIR:
	case EEXIST:
		return KHA_EXIT_IOERR;
	case ENOENT:
	case EACCES:
	case EPERM:
	case EADDRINUSE:
		return KHA_EXIT_CONFIG;
	default:
		return KHA_EXIT_SOFTWARE;
	}
}

int kha_grow(void **array, size_t *cap, size_t need, size_t elem_size)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap > SIZE_MAX / 2 ? need : KHA_MAX(need, *cap * 2);
	ncap = KHA_MAX(ncap, (size_t)8);
	if (elem_size && ncap > SIZE_MAX / elem_size)
		return -ENOMEM;
	p = realloc(*array, ncap * elem_size);
	if (!p)
		return -ENOMEM;
	*array = p;
	*cap = ncap;
	return 0;
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * KHA_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

int kha_sleep_us(uint64_t us, const volatile sig_atomic_t *cancel)
{
	uint64_t now = monotonic_us(), end = now + us;

	while (now < end) {
		uint64_t slice = KHA_MIN(end - now, 50 * KHA_USEC_PER_MSEC);
		struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)slice * 1000};

		if (cancel && *cancel)
			return -ECANCELED;
		(void)nanosleep(&ts, NULL); /* a signal only ends the slice early */
		now = monotonic_us();
	}
	return cancel && *cancel ? -ECANCELED : 0;
}
