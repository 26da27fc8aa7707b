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
	/* framing: one Content-Length of digits only, never a Transfer-Encoding */
	assert_int_equal(kha_httpd_parse_request("POST /x HTTP/1.1\r\n\r\n", 20, &req), 20);
	assert_int_equal(
		kha_httpd_parse_request("GET /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 38, &req),
		38);
	assert_int_equal(req.content_length, 3);
	{
		static const char *const framing[] = {
			"POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
			"POST /x HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\n",
			"POST /x HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
			"POST /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
			"POST /x HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
			"POST /x HTTP/1.1\r\nContent-Length:\r\n\r\n",
			"POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		};
		for (size_t i = 0; i < KHA_ARRAY_SIZE(framing); i++)
			assert_int_equal(
				kha_httpd_parse_request(framing[i], strlen(framing[i]), &req),
				-EBADMSG);
	}
	assert_int_equal(
		kha_httpd_parse_request("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
					49, &req),
		-ENOTSUP);
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', sizeof(big) - 5);
	assert_int_equal(kha_httpd_parse_request(big, sizeof(big), &req), -E2BIG);
}

static void test_header_lookup(void **state)
{
	const char *head = "POST /v1/x HTTP/1.1\nHost: a\nFleet-Lock-Protocol:  true \n"
			   "X-Twice: 1\nx-twice: 2\n\n";
	struct kha_httpd_request req;
	char v[16];

	(void)state;
	assert_int_equal(kha_httpd_parse_request(head, strlen(head), &req), (int)strlen(head));
	assert_int_equal(kha_httpd_header(&req, "fleet-lock-protocol", v, sizeof(v)), 4);
	assert_string_equal(v, "true");
	assert_int_equal(kha_httpd_header(&req, "host", v, 1), 1);
	assert_string_equal(v, "");
	assert_int_equal(kha_httpd_header(&req, "x-twice", v, sizeof(v)), -EBADMSG);
	assert_int_equal(kha_httpd_header(&req, "absent", v, sizeof(v)), -ENOENT);
	/* the request line is no header */
	assert_int_equal(kha_httpd_header(&req, "POST /v1/x HTTP/1.1", v, sizeof(v)), -ENOENT);
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
	/* a body where none is taken, two lengths, a bare-LF request */
	exchange(loop, kha_httpd_port(h), "GET /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
		 buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	exchange(loop, kha_httpd_port(h),
		 "GET /healthz HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", buf,
		 sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 400 "));
	exchange(loop, kha_httpd_port(h), "GET /healthz HTTP/1.1\nHost: x\n\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
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

static struct kha_httpd_pending *parked;

/* Echoes the body; with ?later, answers from the test (as a worker thread's post would). */
static void echo_route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
		       void *userdata)
{
	(void)userdata;
	if (strcmp(req->query, "later") == 0) {
		parked = kha_httpd_defer(resp);
		assert_non_null(parked);
		return;
	}
	fprintf(resp->body, "[%s]", req->body);
}

static int send_all(int fd, const char *req)
{
	return write(fd, req, strlen(req)) == (ssize_t)strlen(req) ? 0 : -1;
}

static size_t read_answer(struct kha_loop *loop, int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (int i = 0; i < 200; i++) {
		ssize_t n;

		kha_ignore(kha_loop_run_once(loop, 10));
		n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT);
		if (n == 0)
			break;
		assert_true(n > 0 || errno == EAGAIN); /* never a reset */
		if (n > 0)
			len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

static void test_server_bodies_and_deferred_answers(void **state)
{
	struct kha_loop *loop;
	struct kha_httpd *h;
	struct kha_diag d = {};
	char buf[1024];
	int fd;

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	assert_int_equal(kha_httpd_route_full(h, "/echo", KHA_HTTPD_POST, 16, echo_route, NULL), 0);
	exchange(loop, kha_httpd_port(h), "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
		 buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\n[hello]"));
	/* the body in pieces, after the head */
	fd = connect_to(kha_httpd_port(h));
	assert_int_equal(send_all(fd, "POST /echo HTTP/1.1\r\nContent-Length: 6\r\n\r\nab"), 0);
	for (int i = 0; i < 5; i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	assert_int_equal(send_all(fd, "cdef"), 0);
	read_answer(loop, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\n[abcdef]"));
	close(fd);
	exchange(loop, kha_httpd_port(h), "POST /echo HTTP/1.1\r\nContent-Length: 17\r\n\r\n", buf,
		 sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 413 "));
	exchange(loop, kha_httpd_port(h), "GET /echo HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 405 "));
	/* answered later; then one whose client went away first */
	fd = connect_to(kha_httpd_port(h));
	assert_int_equal(send_all(fd, "POST /echo?later HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
	for (int i = 0; i < 20 && !parked; i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	assert_non_null(parked);
	kha_httpd_finish(parked, 409, "application/json", "{}", 2);
	parked = NULL;
	read_answer(loop, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 409 Conflict\r\n"));
	close(fd);
	fd = connect_to(kha_httpd_port(h));
	assert_int_equal(send_all(fd, "POST /echo?later HTTP/1.1\r\n\r\n"), 0);
	for (int i = 0; i < 20 && !parked; i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	assert_non_null(parked);
	close(fd);
	kha_httpd_free(h); /* the connection goes; the token stays valid */
	kha_httpd_finish(parked, 200, "text/plain", "late", 4);
	parked = NULL;
	kha_loop_free(loop);
}

static void test_server_431_is_read_before_the_close(void **state)
{
	struct kha_loop *loop;
	struct kha_httpd *h;
	struct kha_diag d = {};
	static char big[3 * KHA_HTTPD_MAX_REQUEST];
	char buf[1024];
	int fd;

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	memcpy(big, "GET /healthz HTTP/1.1\r\nX: ", 27);
	memset(big + 27, 'a', sizeof(big) - 28);
	fd = connect_to(kha_httpd_port(h));
	/* the whole head is sent before we read: bytes the server never reads are left behind */
	assert_int_equal(write(fd, big, sizeof(big) - 1), (ssize_t)sizeof(big) - 1);
	read_answer(loop, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 431 "));
	close(fd);
	kha_httpd_free(h);
	kha_loop_free(loop);
}

static void test_server_full_evicts_the_oldest_idle(void **state)
{
	struct kha_loop *loop;
	struct kha_httpd *h;
	struct kha_diag d = {};
	int idle[KHA_HTTPD_MAX_CLIENTS + 8];
	char buf[512];

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	/* a local process holds more connections than the server serves at once, saying nothing */
	for (size_t i = 0; i < KHA_ARRAY_SIZE(idle); i++) {
		idle[i] = connect_to(kha_httpd_port(h));
		kha_ignore(kha_loop_run_once(loop, 0));
	}
	for (int i = 0; i < 10; i++)
		kha_ignore(kha_loop_run_once(loop, 5));
	assert_int_equal(kha_httpd_evicted(h), 8);
	for (int i = 0; i < 5; i++) {
		exchange(loop, kha_httpd_port(h), "GET /healthz HTTP/1.1\r\n\r\n", buf,
			 sizeof(buf));
		assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	}
	/* one idle connection for the first; later ones may take a lingering answer's slot */
	assert_in_range(kha_httpd_evicted(h), 9, 13);
	/* the evicted were the oldest: the first one is closed, the last one is still open */
	assert_int_equal(recv(idle[0], buf, sizeof(buf), MSG_DONTWAIT), 0);
	assert_int_equal(recv(idle[KHA_ARRAY_SIZE(idle) - 1], buf, sizeof(buf), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(idle); i++)
		close(idle[i]);
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
		cmocka_unit_test(test_header_lookup),
		cmocka_unit_test(test_server_bodies_and_deferred_answers),
		cmocka_unit_test(test_server_431_is_read_before_the_close),
		cmocka_unit_test(test_server_full_evicts_the_oldest_idle),
	};
	return cmocka_run_group_tests_name("httpd", tests, NULL, NULL);
}
