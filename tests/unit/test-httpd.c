// SPDX-License-Identifier: MIT
/* Unit tests of the admin HTTP server: the request parser and real exchanges on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "kha/httpd.h"
#include "fake-clock.h"
#include "kha/banned.h"

static void test_parse_request_line_and_headers(void **state)
{
	struct kha_httpd_request req;
	const char *ok = "GET /status?o=json HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nrest";

	(void)state;
	assert_int_equal(kha_httpd_parse_request(ok, strlen(ok), &req), (int)strlen(ok) - 4);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.path, "/status");
	assert_string_equal(req.query, "o=json");
	/* every strict prefix needs more bytes */
	for (size_t i = 0; i < strlen(ok) - 4; i++)
		assert_int_equal(kha_httpd_parse_request(ok, i, &req), 0);
	assert_int_equal(kha_httpd_parse_request("HEAD /x HTTP/1.0\n\n", 18, &req), 18);
	assert_string_equal(req.method, "HEAD");
}

static void test_parse_rejects_garbage(void **state)
{
	static const char *const bad[] = {
		"GET\r\n\r\n",
		"GET /x\r\n\r\n",
		"GET x HTTP/1.1\r\n\r\n",
		"GET /x HTTP/2.0\r\n\r\n",
		"G(T /x HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.1\r\nno colon\r\n\r\n",
		"GET /x HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET /a\x01 HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x05 \x01\x07\r\n\r\n",
	};
	struct kha_httpd_request req;
	char big[KHA_HTTPD_MAX_REQUEST + 10];

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		assert_int_equal(kha_httpd_parse_request(bad[i], strlen(bad[i]), &req), -EBADMSG);
	assert_int_equal(kha_httpd_parse_request("POST /x HTTP/1.1\r\n\r\n", 20, &req), -ENOTSUP);
	assert_int_equal(
		kha_httpd_parse_request("GET /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 38, &req),
		-ENOTSUP);
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', sizeof(big) - 5);
	assert_int_equal(kha_httpd_parse_request(big, sizeof(big), &req), -E2BIG);
}

static void status_route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
			 void *userdata)
{
	(void)req;
	resp->content_type = "application/json";
	fprintf(resp->body, "{\"n\":%d}", *(int *)userdata);
}

static bool not_ready(void *userdata, char *reason, size_t size)
{
	(void)userdata;
	snprintf(reason, size, "no backend up");
	return false;
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Sends req, runs the loop until the server closes, returns the whole answer. */
static char *exchange(struct kha_loop *loop, uint16_t port, const char *req, char *buf, size_t size)
{
	int fd = connect_to(port);
	size_t len = 0;
	ssize_t n;

	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (int i = 0; i < 100; i++) {
		kha_ignore(kha_loop_run_once(loop, 10));
		n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

static void test_server_routes(void **state)
{
	struct kha_loop *loop;
	struct kha_metrics *m;
	struct kha_metric *c;
	struct kha_httpd *h;
	struct kha_diag d = {};
	char buf[4096];
	int n = 7;

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_metrics_new(&m), 0);
	assert_int_equal(
		kha_metrics_register(m, KHA_METRIC_COUNTER, "kha_t_total", "T.", NULL, NULL, 0, &c),
		0);
	kha_metric_add(c, 9);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", m, &d, &h), 0);
	assert_int_equal(kha_httpd_route(h, "/status", status_route, &n), 0);
	exchange(loop, kha_httpd_port(h), "GET /healthz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nok\n"));
	exchange(loop, kha_httpd_port(h), "GET /metrics HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "text/plain; version=0.0.4"));
	assert_non_null(strstr(buf, "kha_t_total 9\n"));
	exchange(loop, kha_httpd_port(h), "GET /status HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n{\"n\":7}"));
	exchange(loop, kha_httpd_port(h), "GET /readyz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	kha_httpd_set_ready(h, not_ready, NULL);
	exchange(loop, kha_httpd_port(h), "GET /readyz HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 503 "));
	assert_non_null(strstr(buf, "not ready: no backend up\n"));
	exchange(loop, kha_httpd_port(h), "GET /nope HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 404 "));
	exchange(loop, kha_httpd_port(h), "\x16\x03\x01garbage\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 "));
	exchange(loop, kha_httpd_port(h), "DELETE /metrics HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 "));
	kha_httpd_free(h);
	assert_int_equal(kha_loop_source_count(loop), 0);
	kha_metrics_free(m);
	kha_loop_free(loop);
}

static void test_server_times_out_slow_clients(void **state)
{
	struct kha_loop *loop;
	struct kha_httpd *h;
	struct kha_diag d = {};
	char buf[512];
	ssize_t n;
	int fd;

	(void)state;
	fake_clock_install();
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	fd = connect_to(kha_httpd_port(h));
	assert_int_equal(write(fd, "GET /hea", 8), 8);
	for (int i = 0; i < 5; i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	fake_now += KHA_HTTPD_TIMEOUT_US;
	kha_ignore(kha_loop_run_once(loop, 10));
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 408 "));
	close(fd);
	kha_httpd_free(h);
	kha_loop_free(loop);
	fake_clock_teardown(NULL);
}

static void test_server_bind_errors_are_named(void **state)
{
	struct kha_loop *loop;
	struct kha_httpd *h, *h2;
	struct kha_diag d = {};
	char addr[64];

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "nonsense", NULL, &d, &h), -EINVAL);
	assert_non_null(strstr(d.msg, "nonsense"));
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", kha_httpd_port(h));
	assert_int_equal(kha_httpd_new(loop, addr, NULL, &d, &h2), -EADDRINUSE);
	assert_non_null(strstr(d.msg, "Address already in use"));
	kha_httpd_free(h);
	kha_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_request_line_and_headers),
		cmocka_unit_test(test_parse_rejects_garbage),
		cmocka_unit_test(test_server_routes),
		cmocka_unit_test(test_server_times_out_slow_clients),
		cmocka_unit_test(test_server_bind_errors_are_named),
	};
	return cmocka_run_group_tests_name("httpd", tests, NULL, NULL);
}
