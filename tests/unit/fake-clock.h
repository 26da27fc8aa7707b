/* SPDX-License-Identifier: MIT */
/*
 * The fake clock of the unit tests: kha_now_us() returns fake_now while installed, and a test
 * moves time by assigning it (fake_now += 2 * KHA_USEC_PER_SEC). Install it per test with
 * cmocka_unit_test_setup_teardown(test, fake_clock_setup, fake_clock_teardown), or call
 * fake_clock_install() and fake_clock_teardown() in the test itself.
 *
 * The clock starts at FAKE_CLOCK_START_US, far from 0, so that "now minus a timeout" never
 * wraps below zero.
 */
#ifndef KHA_TEST_FAKE_CLOCK_H
#define KHA_TEST_FAKE_CLOCK_H

#include <stdint.h>

#include "kha/common.h"

#define FAKE_CLOCK_START_US (1000 * KHA_USEC_PER_SEC)

static uint64_t fake_now;

static inline uint64_t fake_clock_read(void *userdata)
{
	(void)userdata;
	return fake_now;
}

static inline void fake_clock_install(void)
{
	fake_now = FAKE_CLOCK_START_US;
	kha_clock_set_fake(fake_clock_read, NULL);
}

static inline int fake_clock_setup(void **state)
{
	(void)state;
	fake_clock_install();
	return 0;
}

static inline int fake_clock_teardown(void **state)
{
	(void)state;
	kha_clock_set_fake(NULL, NULL);
	return 0;
}

#endif
