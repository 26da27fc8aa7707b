// SPDX-License-Identifier: MIT
/* Unit tests of lib/net: JSON getters for protobuf-style replies, base64, HTTP client setup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kha/http-curl.h"
#include "kha/json.h"
#include "kha/banned.h"

static json_t *parse(const char *text)
{
	json_t *j = NULL;

	assert_int_equal(kha_json_parse(text, strlen(text), &j, NULL), 0);
	return j;
}

static void test_json_parse_reports_position(void **state)
{
	struct kha_diag d = {};
	json_t *j = NULL;

	(void)state;
	assert_int_equal(kha_json_parse("{\"a\":", 5, &j, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "not JSON"));
	assert_non_null(strstr(d.msg, "line 1"));
	assert_int_equal(kha_json_parse(" \n ", 3, &j, &d), -EBADMSG);
	assert_string_equal(d.msg, "empty");
	assert_int_equal(kha_json_parse("{\"a\":1,\"a\":2}", 13, &j, &d), -EBADMSG);
	/* not NUL-terminated input */
	assert_int_equal(kha_json_parse("{\"a\":1}garbage", 7, &j, &d), 0);
	json_decref(j);
}

static void test_json_integers_as_strings_or_numbers(void **state)
{
	json_t *j = parse("{\"s\":\"18446744073709551615\",\"n\":42,\"neg\":\"-7\",\"big\":"
			  "\"18446744073709551616\",\"x\":\"12a\",\"f\":1.5,\"e\":\"\","
			  "\"min\":\"-9223372036854775808\",\"over\":\"9223372036854775808\"}");
	struct kha_diag d = {};
	uint64_t u;
	int64_t i;

	(void)state;
	assert_int_equal(kha_json_u64(j, "s", &u, &d), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(kha_json_u64(j, "n", &u, &d), 0);
	assert_int_equal(u, 42);
	assert_int_equal(kha_json_u64(j, "absent", &u, &d), 0);
	assert_int_equal(u, 0);
	assert_int_equal(kha_json_u64(j, "neg", &u, &d), -EBADMSG);
	assert_int_equal(kha_json_u64(j, "big", &u, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "field 'big'"));
	assert_int_equal(kha_json_u64(j, "x", &u, &d), -EBADMSG);
	assert_int_equal(kha_json_u64(j, "f", &u, &d), -EBADMSG);
	assert_int_equal(kha_json_u64(j, "e", &u, &d), -EBADMSG);
	assert_int_equal(kha_json_i64(j, "neg", &i, &d), 0);
	assert_int_equal(i, -7);
	assert_int_equal(kha_json_i64(j, "min", &i, &d), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(kha_json_i64(j, "over", &i, &d), -EBADMSG);
	assert_int_equal(kha_json_i64(j, "s", &i, &d), -EBADMSG);
	json_decref(j);
}

static void test_json_proto_and_camel_names(void **state)
{
	json_t *j = parse("{\"clusterId\":\"5\",\"member_id\":\"6\",\"ID\":\"7\"}");
	struct kha_diag d = {};
	uint64_t u;

	(void)state;
	assert_int_equal(kha_json_u64(j, "cluster_id", &u, &d), 0);
	assert_int_equal(u, 5);
	assert_int_equal(kha_json_u64(j, "member_id", &u, &d), 0);
	assert_int_equal(u, 6);
	assert_int_equal(kha_json_u64(j, "ID", &u, &d), 0);
	assert_int_equal(u, 7);
	assert_null(kha_json_get(j, "raft_term"));
	json_decref(j);
}

static void test_json_typed_getters(void **state)
{
	json_t *j = parse("{\"b\":true,\"s\":\"x\",\"o\":{},\"a\":[],\"n\":null,\"i\":1}");
	struct kha_diag d = {};
	json_t *v;
	char *s;
	bool b;

	(void)state;
	assert_int_equal(kha_json_bool(j, "b", &b, &d), 0);
	assert_true(b);
	assert_int_equal(kha_json_bool(j, "n", &b, &d), 0);
	assert_false(b);
	assert_int_equal(kha_json_bool(j, "s", &b, &d), -EBADMSG);
	assert_int_equal(kha_json_strdup(j, "s", &s, &d), 0);
	assert_string_equal(s, "x");
	free(s);
	assert_int_equal(kha_json_strdup(j, "absent", &s, &d), 0);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(kha_json_strdup(j, "i", &s, &d), -EBADMSG);
	assert_int_equal(kha_json_object(j, "o", &v, &d), 0);
	assert_non_null(v);
	assert_int_equal(kha_json_object(j, "a", &v, &d), -EBADMSG);
	assert_int_equal(kha_json_array(j, "a", &v, &d), 0);
	assert_non_null(v);
	assert_int_equal(kha_json_array(j, "n", &v, &d), 0);
	assert_null(v);
	json_decref(j);
}

static void test_json_builders(void **state)
{
	json_t *o = json_object();
	char *text;

	(void)state;
	assert_int_equal(kha_json_set(o, "id", kha_json_u64_string(UINT64_MAX)), 0);
	assert_int_equal(kha_json_set(o, "rev", kha_json_i64_string(-1)), 0);
	assert_int_equal(kha_json_set_base64(o, "key", "foo", 3), 0);
	assert_int_equal(kha_json_set(o, "x", NULL), -ENOMEM);
	text = kha_json_dumps(o);
	assert_string_equal(text,
			    "{\"id\":\"18446744073709551615\",\"rev\":\"-1\",\"key\":\"Zm9v\"}");
	free(text);
	json_decref(o);
}

static void test_base64_round_trip_and_strictness(void **state)
{
	static const char *const bad[] = {
		"Zm9", "Zm9v=", "Zm 9v", "Z===", "Zm9v\n", "!!!!", "=Zm9", "Zg=a"};
	char bin[256], *enc, *dec;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (char)i;
	for (size_t n = 0; n <= sizeof(bin); n += 37) {
		enc = kha_json_base64_encode(bin, n);
		assert_non_null(enc);
		assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
		assert_int_equal(kha_json_base64_decode(enc, strlen(enc), &dec, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(dec, bin, n);
		assert_int_equal(dec[len], '\0');
		free(enc);
		free(dec);
	}
	assert_int_equal(kha_json_base64_decode("Zm8=", 4, &dec, &len), 0);
	assert_int_equal(len, 2);
	assert_string_equal(dec, "fo");
	free(dec);
	assert_int_equal(kha_json_base64_decode("Zg==", 4, &dec, &len), 0);
	assert_string_equal(dec, "f");
	free(dec);
	assert_int_equal(kha_json_base64_decode("", 0, &dec, &len), 0);
	assert_int_equal(len, 0);
	free(dec);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		assert_int_equal(kha_json_base64_decode(bad[i], strlen(bad[i]), &dec, &len),
				 -EBADMSG);
}

static void test_json_base64_field(void **state)
{
	json_t *j = parse("{\"k\":\"L2EvMQ==\",\"bad\":\"L2E\",\"num\":5}");
	struct kha_diag d = {};
	char *v;
	size_t len;

	(void)state;
	assert_int_equal(kha_json_base64(j, "k", &v, &len, &d), 0);
	assert_string_equal(v, "/a/1");
	free(v);
	assert_int_equal(kha_json_base64(j, "absent", &v, &len, &d), 0);
	assert_int_equal(len, 0);
	free(v);
	assert_int_equal(kha_json_base64(j, "bad", &v, &len, &d), -EBADMSG);
	assert_string_equal(d.msg, "field 'bad' is not valid base64");
	assert_int_equal(kha_json_base64(j, "num", &v, &len, &d), -EBADMSG);
	json_decref(j);
}

static void test_http_new_checks_tls_files(void **state)
{
	struct kha_http_options o = {.cacert = "/nonexistent/ca.crt"};
	struct kha_http *h = NULL;
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_http_new(&o, &h, &d), -ENOENT);
	assert_string_equal(d.msg, "cannot read CA file /nonexistent/ca.crt: No such file or "
				   "directory");
	o.cacert = NULL;
	o.cert = "/nonexistent/c.crt";
	assert_int_equal(kha_http_new(&o, &h, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "certificate /nonexistent/c.crt"));
	assert_int_equal(kha_http_new(NULL, &h, &d), 0);
	kha_http_free(h);
	kha_http_free(NULL);
}

static void test_http_malformed_url_is_not_sent(void **state)
{
	struct kha_http_request req = {.url = "gopher://127.0.0.1:1/", .timeout_us = 100000};
	struct kha_http_response resp = {};
	struct kha_http *h = NULL;
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(kha_http_new(NULL, &h, &d), 0);
	assert_int_equal(kha_http_do(h, &req, &resp, &d), -EINVAL);
	assert_false(resp.sent);
	assert_int_equal(resp.fail, KHA_HTTP_FAIL_OTHER);
	kha_http_response_release(&resp);
	kha_http_free(h);
}

static void test_http_hints(void **state)
{
	static const struct kha_http_flag_names n = {
		.cacert = "--cacert",
		.cert = "--cert/--key",
		.connect_timeout = "--dial-timeout",
		.timeout = "--command-timeout",
		.endpoint = "--endpoints",
	};

	(void)state;
	assert_string_equal(kha_http_fail_hint(KHA_HTTP_FAIL_TLS_VERIFY, &n), "--cacert");
	assert_string_equal(kha_http_fail_hint(KHA_HTTP_FAIL_CA_FILE, &n), "--cacert");
	assert_string_equal(kha_http_fail_hint(KHA_HTTP_FAIL_TLS_CLIENT, &n), "--cert/--key");
	assert_string_equal(kha_http_fail_hint(KHA_HTTP_FAIL_CONNECT_TIMEOUT, &n),
			    "--dial-timeout");
	assert_string_equal(kha_http_fail_hint(KHA_HTTP_FAIL_TIMEOUT, &n), "--command-timeout");
	assert_null(kha_http_fail_hint(KHA_HTTP_FAIL_CONNECT, &n));
	assert_null(kha_http_fail_hint(KHA_HTTP_FAIL_TLS_VERIFY, NULL));
}

/* A bound socket that does not listen: the kernel refuses every connection to its port. */
static int refusing_port(int *ret_fd)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*ret_fd = fd;
	return ntohs(a.sin_port);
}

static void test_curl_setup_and_error_mapping(void **state)
{
	char errbuf[CURL_ERROR_SIZE], url[64];
	struct kha_http_easy_opts eo = {.errbuf = errbuf,
					.connect_timeout_us = 2000000,
					.timeout_us = 2000000,
					.proxy = ""};
	struct kha_http_failure f = {.sent = true};
	struct kha_diag d = {};
	int fd, port = refusing_port(&fd);
	CURL *e;
	CURLcode rc;

	(void)state;
	assert_int_equal(kha_http_global_init(&d), 0);
	assert_int_equal(kha_http_global_init(&d), 0); /* once: a second call is harmless */
	e = curl_easy_init();
	assert_non_null(e);
	assert_int_equal(kha_http_easy_setup(e, &eo, &d), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_URL, url), CURLE_OK);
	rc = curl_easy_perform(e);
	assert_int_equal(rc, CURLE_COULDNT_CONNECT);
	assert_int_equal(
		kha_http_curl_error(e, rc, errbuf, eo.connect_timeout_us, eo.timeout_us, &f, &d),
		-ECONNREFUSED);
	assert_int_equal(f.fail, KHA_HTTP_FAIL_CONNECT);
	assert_false(f.sent);
	assert_string_equal(d.msg, "connection refused");

	/* only http and https: anything else is refused before any connection */
	assert_int_equal(curl_easy_setopt(e, CURLOPT_URL, "file:///etc/hostname"), CURLE_OK);
	rc = curl_easy_perform(e);
	assert_int_equal(kha_http_curl_error(e, rc, errbuf, 0, 0, &f, &d), -EINVAL);
	assert_false(f.sent);
	curl_easy_cleanup(e);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_parse_reports_position),
		cmocka_unit_test(test_json_integers_as_strings_or_numbers),
		cmocka_unit_test(test_json_proto_and_camel_names),
		cmocka_unit_test(test_json_typed_getters),
		cmocka_unit_test(test_json_builders),
		cmocka_unit_test(test_base64_round_trip_and_strictness),
		cmocka_unit_test(test_json_base64_field),
		cmocka_unit_test(test_http_new_checks_tls_files),
		cmocka_unit_test(test_http_malformed_url_is_not_sent),
		cmocka_unit_test(test_http_hints),
		cmocka_unit_test(test_curl_setup_and_error_mapping),
	};
	return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
