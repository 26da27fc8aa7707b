// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "kha/audit.h"
#include "kha/banned.h"

static void test_audit_placeholder(void **state)
{
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_audit_placeholder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
