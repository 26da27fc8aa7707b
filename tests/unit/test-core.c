// SPDX-License-Identifier: MIT
/* Unit tests of lib/core: value parsers, diagnostics, logging, the YAML config loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kha/config.h"
#include "kha/diag.h"
#include "kha/log.h"
#include "kha/parse.h"
#include "kha/banned.h"

static void test_duration_go_syntax(void **state)
{
	static const struct {
		const char *in;
		uint64_t us;
	} ok[] = {
		{"0", 0},
		{"500ms", 500000},
		{"2s", 2000000},
		{"1m30s", 90000000},
		{"1.5s", 1500000},
		{"1h", 3600000000ULL},
		{"250us", 250},
		{"1500ns", 2},
		{"2h45m", 9900000000ULL},
		{".5s", 500000},
	};
	static const char *const bad[] = {"", "5", "s", "1x", "1.2.3s", "-1s", "1s ", "ms"};
	uint64_t us;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(ok); i++) {
		assert_int_equal(kha_parse_duration_us(ok[i].in, &us), 0);
		assert_int_equal(us, ok[i].us);
	}
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		assert_int_equal(kha_parse_duration_us(bad[i], &us), -EINVAL);
}

static void test_duration_format_round_trips(void **state)
{
	static const uint64_t values[] = {0, 7, 1000, 250000, 1500000, 90000000, 3723000000ULL};
	char buf[64];
	uint64_t us;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(values); i++) {
		kha_format_duration(buf, sizeof(buf), values[i]);
		assert_int_equal(kha_parse_duration_us(buf, &us), 0);
		assert_int_equal(us, values[i]);
	}
}

static void test_size_units(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(kha_parse_size("64KiB", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(kha_parse_size("10MiB", &v), 0);
	assert_int_equal(v, 10 * 1048576);
	assert_int_equal(kha_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(kha_parse_size("2GB", &v), 0);
	assert_int_equal(v, 2000000000ULL);
	assert_int_equal(kha_parse_size("10XB", &v), -EINVAL);
	assert_int_equal(kha_parse_size("-1", &v), -EINVAL);
	assert_int_equal(kha_parse_size("99999999999TiB", &v), -ERANGE);
}

static void test_u64_ranges(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(kha_parse_u64("5", 1, 10, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(kha_parse_u64("0", 1, 10, &v), -ERANGE);
	assert_int_equal(kha_parse_u64("11", 1, 10, &v), -ERANGE);
	assert_int_equal(kha_parse_u64("5x", 1, 10, &v), -EINVAL);
	assert_int_equal(kha_parse_u64("", 1, 10, &v), -EINVAL);
}

static void test_output_values(void **state)
{
	bool json = false;

	(void)state;
	assert_int_equal(kha_parse_output("json", &json), 0);
	assert_true(json);
	assert_int_equal(kha_parse_output("table", &json), 0);
	assert_false(json);
	assert_int_equal(kha_parse_output("yaml", &json), -EINVAL);
	assert_int_equal(kha_parse_output("", &json), -EINVAL);
}

static void test_sockaddr_forms(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[64];

	(void)state;
	assert_int_equal(kha_parse_sockaddr("127.0.0.1:7443", &ss, &len), 0);
	assert_string_equal(kha_format_sockaddr(buf, sizeof(buf), (struct sockaddr *)&ss),
			    "127.0.0.1:7443");
	assert_int_equal(kha_parse_sockaddr("[::1]:6443", &ss, &len), 0);
	assert_string_equal(kha_format_sockaddr(buf, sizeof(buf), (struct sockaddr *)&ss),
			    "[::1]:6443");
	assert_int_equal(kha_parse_sockaddr(":9100", &ss, &len), 0);
	assert_string_equal(kha_format_sockaddr(buf, sizeof(buf), (struct sockaddr *)&ss),
			    "0.0.0.0:9100");
	assert_int_equal(kha_parse_sockaddr("127.0.0.1", &ss, &len), -EINVAL);
	assert_int_equal(kha_parse_sockaddr("127.0.0.1:99999", &ss, &len), -EINVAL);
	assert_int_equal(kha_parse_sockaddr("::1:80", &ss, &len), -EINVAL);
	assert_int_equal(kha_parse_sockaddr("host:80", &ss, &len), -EINVAL);
	assert_int_equal(kha_resolve_hostport("localhost:80", &ss, &len), 0);
}

static void test_diag_prefix_and_return(void **state)
{
	struct kha_diag d = {};

	(void)state;
	assert_true(kha_diag_empty(&d));
	assert_int_equal(kha_diag_set(&d, ETIMEDOUT, "timed out after %dms", 500), -ETIMEDOUT);
	kha_diag_prefix(&d, "etcd %s", "https://127.0.0.1:2379");
	kha_diag_append(&d, " (check --dial-timeout)");
	assert_string_equal(
		d.msg, "etcd https://127.0.0.1:2379: timed out after 500ms (check --dial-timeout)");
	assert_int_equal(kha_diag_set(NULL, -EIO, "x"), -EIO);
}

static void test_log_logfmt_and_json(void **state)
{
	char buf[4096] = {0};
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	char q[64];

	(void)state;
	kha_log_set_stream(f);
	kha_log_setup(KHA_LOG_INFO, KHA_LOG_LOGFMT);
	kha_debug("hidden", "x=%d", 1);
	kha_info("backend down", "backend=%s reason=%s", "10.0.0.1:6443",
		 kha_log_quote(q, sizeof(q), "connect refused"));
	kha_log_setup(KHA_LOG_INFO, KHA_LOG_JSON);
	kha_warn("a \"quoted\" msg", "k=v n=\"two words\"");
	fflush(f);
	kha_log_set_stream(NULL);
	fclose(f);
	assert_null(strstr(buf, "hidden"));
	assert_non_null(strstr(buf, "level=info msg=\"backend down\" backend=10.0.0.1:6443 "
				    "reason=\"connect refused\"\n"));
	assert_non_null(strstr(buf, "\"level\":\"warn\",\"msg\":\"a \\\"quoted\\\" msg\","
				    "\"k\":\"v\",\"n\":\"two words\"}\n"));
	kha_log_setup(KHA_LOG_INFO, KHA_LOG_LOGFMT);
}

/* A value from outside cannot add a field or a record, in either format (issue: log forgery). */
static void test_log_quote_stops_forgery_and_term_safe_strips_escapes(void **state)
{
	static const char evil[] = "evil level=error msg=\"etcd quorum lost\"\nts=x level=error";
	char buf[4096] = {0}, t[64];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void)state;
	kha_log_set_stream(f);
	kha_log_setup(KHA_LOG_INFO, KHA_LOG_LOGFMT);
	kha_info("waiting", "leader=%s", KHA_LOGQ(evil));
	kha_log_setup(KHA_LOG_INFO, KHA_LOG_JSON);
	kha_info("waiting", "leader=%s", KHA_LOGQ(evil));
	fflush(f);
	kha_log_set_stream(NULL);
	fclose(f);
	kha_log_setup(KHA_LOG_INFO, KHA_LOG_LOGFMT);
	/* two records, each with one level key; the value kept whole and escaped */
	assert_non_null(strstr(buf, " level=info msg=waiting leader=\"evil level=error "
				    "msg=\\\"etcd quorum lost\\\"\\nts=x level=error\"\n"));
	assert_non_null(strstr(buf, "\"level\":\"info\",\"msg\":\"waiting\",\"leader\":\"evil "
				    "level=error msg=\\\"etcd quorum lost\\\"\\nts=x "
				    "level=error\"}\n"));
	assert_null(strstr(buf, "level=error msg=\"etcd"));
	assert_null(strstr(buf, "\"level\":\"error\""));
	assert_int_equal(strchr(strchr(buf, '\n') + 1, '\n') - buf + 1, (long)strlen(buf));
	/* plain values stay unquoted */
	assert_string_equal(KHA_LOGQ("10.0.0.1:6443"), "10.0.0.1:6443");

	/* terminal: C0, DEL, C1 (UTF-8 and raw 8-bit) and broken UTF-8 become '?' */
	assert_string_equal(kha_term_safe(t, sizeof(t),
					  "a\x1b]0;pwn\x07"
					  "b"),
			    "a?]0;pwn?b");
	assert_string_equal(kha_term_safe(t, sizeof(t),
					  "x\xc2\x9b"
					  "2Jy\x9b"
					  "1m\x7f"),
			    "x?2Jy?1m?");
	assert_string_equal(kha_term_safe(t, sizeof(t), "caf\xc3\xa9 \xe2\x9c\x93"),
			    "caf\xc3\xa9 \xe2\x9c\x93");
	assert_string_equal(kha_term_safe(t, sizeof(t), "\xe2\x9c"), "??");
	assert_string_equal(kha_term_safe(t, 4, "abcdef"), "abc");
	assert_string_equal(kha_term_safe(t, 3, "a\xc3\xa9"), "a"); /* never half a character */
	assert_string_equal(KHA_TERM(NULL), "");
}

struct seen {
	char text[512];
};

static int record(void *userdata, int val, const char *arg, struct kha_diag *d)
{
	struct seen *s = userdata;
	size_t len = strlen(s->text);

	if (arg && strcmp(arg, "bad") == 0)
		return kha_diag_set(d, EINVAL, "not a backend");
	snprintf(s->text + len, sizeof(s->text) - len, "%c=%s;", val, arg ? arg : "(flag)");
	return 0;
}

static int load_text(const char *text, struct seen *s, struct kha_diag *d)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"backend", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},
		{"config", required_argument, NULL, 'c'},
		{},
	};
	char path[] = "/tmp/kha-test-config-XXXXXX";
	int fd = mkstemp(path), r;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	memset(s, 0, sizeof(*s));
	r = kha_config_load(path, opts, record, s, d);
	unlink(path);
	return r;
}

static void test_config_applies_keys_in_order(void **state)
{
	struct kha_diag d = {};
	struct seen s;

	(void)state;
	assert_int_equal(load_text("listen: 127.0.0.1:7443\nbackend:\n  - a:1\n  - b:2\n"
				   "verbose: true\n",
				   &s, &d),
			 0);
	assert_string_equal(s.text, "l=127.0.0.1:7443;b=a:1;b=b:2;v=(flag);");
	assert_int_equal(load_text("verbose: false\nbackend: [x:1]\n", &s, &d), 0);
	assert_string_equal(s.text, "b=x:1;");
	assert_int_equal(load_text("", &s, &d), 0);
}

static void test_config_errors_name_file_and_line(void **state)
{
	struct kha_diag d = {};
	struct seen s;

	(void)state;
	assert_int_equal(load_text("listen: a\nbogus: 1\n", &s, &d), -EINVAL);
	assert_non_null(strstr(d.msg, ":2: unknown key 'bogus'"));
	assert_int_equal(load_text("listen: [a\n", &s, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "malformed YAML"));
	assert_int_equal(load_text("backend:\n  - ok:1\n  - bad\n", &s, &d), -EINVAL);
	assert_non_null(strstr(d.msg, ":3: backend: not a backend"));
	assert_int_equal(load_text("verbose: maybe\n", &s, &d), -EINVAL);
	assert_int_equal(load_text("listen:\n  nested: 1\n", &s, &d), -EINVAL);
	assert_int_equal(load_text("config: other.yaml\n", &s, &d), -EINVAL);
	assert_int_equal(load_text("just a string\n", &s, &d), -EINVAL);
	assert_int_equal(kha_config_load("/nonexistent/kha.yaml", NULL, record, &s, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "cannot read config /nonexistent/kha.yaml"));
}

static void test_args_file_then_flags(void **state)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'}, {"backend", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},	  {"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},	  {},
	};
	struct seen s = {};
	const struct kha_args a = {.shortopts = "+h",
				   .longopts = opts,
				   .config_val = 'c',
				   .apply = record,
				   .userdata = &s};
	char path[] = "/tmp/kha-test-args-XXXXXX";
	const char *config;
	struct kha_diag d = {};
	int fd = mkstemp(path);
	char *argv1[] = {"x", "--backend", "f:1", "--config", path, "--verbose", "cmd", "-v", NULL};
	char *argv2[] = {"x", "--help", NULL};
	char *argv3[] = {"x", "--nope", NULL};
	char *argv4[] = {"x", "--listen", NULL};
	char *argv5[] = {"x", "--backend", "bad", NULL};
	char *argv6[] = {"x", "--config", "/nonexistent/kha.yaml", NULL};

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "backend: y:1\nlisten: l:1\n", 25), 25);
	close(fd);
	assert_false(kha_args_scan(&a, 8, argv1, &config));
	assert_string_equal(config, path);
	/* the file first, then the flags in order; "+": COMMAND's own flags are left alone */
	assert_int_equal(kha_args_apply(&a, config, 8, argv1, &d), 0);
	assert_string_equal(s.text, "b=y:1;l=l:1;b=f:1;v=(flag);");
	assert_int_equal(optind, 6);
	/* run again (a reload) on fresh state: the same result */
	memset(&s, 0, sizeof(s));
	assert_int_equal(kha_args_apply(&a, config, 8, argv1, &d), 0);
	assert_string_equal(s.text, "b=y:1;l=l:1;b=f:1;v=(flag);");
	unlink(path);

	assert_true(kha_args_scan(&a, 2, argv2, &config));
	assert_null(config);
	assert_int_equal(kha_args_apply(&a, NULL, 2, argv3, &d), KHA_EXIT_USAGE);
	assert_string_equal(d.msg, "bad flag '--nope'");
	assert_int_equal(kha_args_apply(&a, NULL, 2, argv4, &d), KHA_EXIT_USAGE);
	assert_string_equal(d.msg, "bad flag: --listen needs a value");
	assert_int_equal(kha_args_apply(&a, NULL, 3, argv5, &d), KHA_EXIT_USAGE);
	assert_string_equal(d.msg, "--backend: not a backend");
	assert_false(kha_args_scan(&a, 3, argv6, &config));
	assert_int_equal(kha_args_apply(&a, config, 3, argv6, &d), KHA_EXIT_CONFIG);
	assert_non_null(strstr(d.msg, "/nonexistent/kha.yaml"));
}

static void test_opt_setters(void **state)
{
	struct kha_diag d = {};
	uint64_t us = 1;
	unsigned u = 1;
	char *str = NULL, addr[8];

	(void)state;
	assert_int_equal(kha_opt_set_duration(&us, "1m30s", false, &d), 0);
	assert_int_equal(us, 90 * KHA_USEC_PER_SEC);
	assert_int_equal(kha_opt_set_duration(&us, "0", false, &d), -EINVAL);
	assert_string_equal(d.msg, "'0' is not a positive duration (e.g. 500ms, 2s, 1m30s)");
	assert_int_equal(kha_opt_set_duration(&us, "0", true, &d), 0);
	assert_int_equal(us, 0);
	assert_int_equal(kha_opt_set_uint(&u, "7", 1, 9, &d), 0);
	assert_int_equal(u, 7);
	assert_int_equal(kha_opt_set_uint(&u, "10", 1, 9, &d), -EINVAL);
	assert_string_equal(d.msg, "'10' is not a number in 1..9");
	assert_int_equal(kha_opt_set_str(&str, "a", &d), 0);
	assert_int_equal(kha_opt_set_str(&str, "b", &d), 0);
	assert_string_equal(str, "b");
	free(str);
	{
		enum kha_log_level lvl = KHA_LOG_INFO;
		enum kha_log_format fmt = KHA_LOG_LOGFMT;
		bool json = false;
		assert_int_equal(kha_opt_set_log_level(&lvl, "debug", &d), 0);
		assert_int_equal(lvl, KHA_LOG_DEBUG);
		assert_int_equal(kha_opt_set_log_level(&lvl, "loud", &d), -EINVAL);
		assert_string_equal(d.msg, "'loud' is not debug, info, warn or error");
		assert_int_equal(kha_opt_set_log_format(&fmt, "json", &d), 0);
		assert_int_equal(fmt, KHA_LOG_JSON);
		assert_int_equal(kha_opt_set_log_format(&fmt, "xml", &d), -EINVAL);
		assert_int_equal(kha_opt_set_output(&json, "json", &d), 0);
		assert_true(json);
		assert_int_equal(kha_opt_set_output(&json, "yaml", &d), -EINVAL);
		assert_string_equal(d.msg, "'yaml' is not table or json");
	}
	assert_int_equal(kha_opt_set_addr(addr, sizeof(addr), "a:1", &d), 0);
	assert_int_equal(kha_opt_set_addr(addr, sizeof(addr), "toolong:1", &d), -EINVAL);
	assert_string_equal(addr, "a:1");
}

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(kha_exit_from_errno(0), KHA_EXIT_OK);
	assert_int_equal(kha_exit_from_errno(-ECONNREFUSED), KHA_EXIT_UNAVAILABLE);
	assert_int_equal(kha_exit_from_errno(-EBADMSG), KHA_EXIT_DATAERR);
	assert_int_equal(kha_exit_from_errno(-ENOSPC), KHA_EXIT_IOERR);
	assert_int_equal(kha_exit_from_errno(-ENOMEM), KHA_EXIT_SOFTWARE);
}

static uint64_t fake_now(void *userdata)
{
	return *(uint64_t *)userdata;
}

static void test_clock_is_injectable(void **state)
{
	uint64_t t = 42;

	(void)state;
	kha_clock_set_fake(fake_now, &t);
	assert_int_equal(kha_now_us(), 42);
	t = 1000;
	assert_int_equal(kha_now_us(), 1000);
	kha_clock_set_fake(NULL, NULL);
	assert_true(kha_now_us() > 1000);
}

static void test_grow_and_resize(void **state)
{
	volatile size_t huge = SIZE_MAX / 2; /* not a constant the compiler rejects */
	uint32_t *v = NULL;
	size_t cap = 0;

	(void)state;
	assert_int_equal(KHA_GROW(v, cap, 1), 0);
	assert_int_equal(cap, 8); /* never fewer than 8 */
	for (uint32_t i = 0; i < 8; i++)
		v[i] = i;
	assert_int_equal(KHA_GROW(v, cap, 8), 0); /* already room: nothing moves */
	assert_int_equal(cap, 8);
	assert_int_equal(KHA_GROW(v, cap, 9), 0); /* doubles */
	assert_int_equal(cap, 16);
	assert_int_equal(KHA_GROW(v, cap, 100), 0); /* or takes what is asked */
	assert_int_equal(cap, 100);
	assert_int_equal(v[7], 7);
	/* an impossible size fails and leaves the array as it was */
	assert_int_equal(KHA_GROW(v, cap, huge), -ENOMEM);
	assert_int_equal(cap, 100);
	assert_int_equal(v[7], 7);
	assert_int_equal(KHA_RESIZE(v, 3), 0);
	assert_int_equal(v[2], 2);
	assert_int_equal(KHA_RESIZE(v, huge), -ENOMEM);
	assert_int_equal(v[2], 2);
	free(v);
}

static void test_sleep_is_cancellable(void **state)
{
	volatile sig_atomic_t cancel = 0;
	uint64_t t0 = kha_now_us();

	(void)state;
	assert_int_equal(kha_sleep_us(20 * KHA_USEC_PER_MSEC, &cancel), 0);
	assert_true(kha_now_us() - t0 >= 20 * KHA_USEC_PER_MSEC);
	cancel = 1;
	t0 = kha_now_us();
	/* a set flag ends it at once, however long it was asked to be */
	assert_int_equal(kha_sleep_us(3600 * KHA_USEC_PER_SEC, &cancel), -ECANCELED);
	assert_true(kha_now_us() - t0 < 3600 * KHA_USEC_PER_SEC);
	assert_int_equal(kha_sleep_us(0, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_go_syntax),
		cmocka_unit_test(test_grow_and_resize),
		cmocka_unit_test(test_sleep_is_cancellable),
		cmocka_unit_test(test_duration_format_round_trips),
		cmocka_unit_test(test_size_units),
		cmocka_unit_test(test_u64_ranges),
		cmocka_unit_test(test_output_values),
		cmocka_unit_test(test_sockaddr_forms),
		cmocka_unit_test(test_diag_prefix_and_return),
		cmocka_unit_test(test_log_logfmt_and_json),
		cmocka_unit_test(test_log_quote_stops_forgery_and_term_safe_strips_escapes),
		cmocka_unit_test(test_config_applies_keys_in_order),
		cmocka_unit_test(test_config_errors_name_file_and_line),
		cmocka_unit_test(test_args_file_then_flags),
		cmocka_unit_test(test_opt_setters),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_clock_is_injectable),
	};
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
