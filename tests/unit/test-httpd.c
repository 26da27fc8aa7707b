// SPDX-License-Identifier: MIT
/* Unit tests of the admin HTTP server: the request parser and real exchanges on loopback. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

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

static void test_server_keeps_its_reserve_descriptor(void **state)
{
	struct kha_loop *loop;
	struct kha_httpd *h;
	struct kha_diag d = {};
	struct rlimit old, low;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fill[64], nfill = 0, c1, c2, fd, stolen, stolen_errno;
	bool out_of_fds;
	char first[512] = "", second[512] = "";

	(void)state;
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	sin.sin_port = htons(kha_httpd_port(h));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* the clients' sockets first (in real life they are another process's) */
	c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c1 >= 0 && c2 >= 0);
	/* the process out of descriptors: a limit a little above the lowest free one, the rest
	 * taken (as kha proxy's workers take them for connections) */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	low = old;
	low.rlim_cur = (rlim_t)fd + KHA_ARRAY_SIZE(fill) / 2;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (nfill < (int)KHA_ARRAY_SIZE(fill) &&
	       (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fill[nfill++] = fd;
	out_of_fds = nfill < (int)KHA_ARRAY_SIZE(fill) && errno == EMFILE;
	/* /healthz answers, on the reserve; the client reads the answer and closes its side */
	if (connect(c1, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    send_all(c1, "GET /healthz HTTP/1.1\r\n\r\n") == 0)
		read_answer(loop, c1, first, sizeof(first));
	shutdown(c1, SHUT_WR);
	for (int i = 0; i < 5; i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	/* the server's descriptor went back to the reserve, never released: another thread short
	 * of descriptors could not take it in between... */
	stolen = open("/dev/null", O_RDONLY | O_CLOEXEC);
	stolen_errno = errno;
	/* ...and the next /healthz is answered as well */
	if (connect(c2, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    send_all(c2, "GET /healthz HTTP/1.1\r\n\r\n") == 0)
		read_answer(loop, c2, second, sizeof(second));
	if (stolen >= 0)
		close(stolen);
	while (nfill > 0)
		close(fill[--nfill]);
	close(c1);
	close(c2);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_true(out_of_fds);
	assert_non_null(strstr(first, "HTTP/1.1 200 OK\r\n"));
	assert_int_equal(stolen, -1);
	assert_int_equal(stolen_errno, EMFILE);
	assert_non_null(strstr(second, "HTTP/1.1 200 OK\r\n"));
	kha_httpd_free(h);
	assert_int_equal(kha_loop_source_count(loop), 0);
	kha_loop_free(loop);
}

/* ---- TLS ---- */

static char tls_pem[] = "/tmp/kha-test-httpd-XXXXXX";

/* A self-signed certificate (CN=node-x) and its key, in one PEM file: it serves as the server's
 * certificate, as the client CA and as the client's certificate. */
static void make_pem(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	FILE *f;
	int fd;

	assert_non_null(k);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"node-x", -1, -1,
				   0);
	X509_set_issuer_name(x, n);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	fd = mkstemp(tls_pem);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void who_route(const struct kha_httpd_request *req, struct kha_httpd_response *resp,
		      void *userdata)
{
	(void)userdata;
	fprintf(resp->body, "peer=%s body=%s", req->peer ? req->peer->names[0] : "-", req->body);
}

struct tls_client {
	uint16_t port;
	bool with_cert;
	int max_version;     /* 0: the newest TLS; TLS1_2_VERSION */
	unsigned long error; /* the first OpenSSL error the client saw (an alert received) */
	char answer[1024];
	atomic_bool done;
};

/* A blocking TLS client on its own thread: sends a POST, reads the answer to the end. */
static void *tls_client_main(void *arg)
{
	struct tls_client *tc = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	size_t len = 0;
	int fd = connect_to(tc->port), n;

	SSL_CTX_load_verify_locations(ctx, tls_pem, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (tc->max_version)
		SSL_CTX_set_max_proto_version(ctx, tc->max_version);
	if (tc->with_cert) {
		SSL_CTX_use_certificate_file(ctx, tls_pem, SSL_FILETYPE_PEM);
		SSL_CTX_use_PrivateKey_file(ctx, tls_pem, SSL_FILETYPE_PEM);
	}
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1 &&
	    SSL_write(ssl, "POST /who HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 43) == 43) {
		while (len < sizeof(tc->answer) - 1 &&
		       (n = SSL_read(ssl, tc->answer + len, (int)(sizeof(tc->answer) - 1 - len))) >
			       0)
			len += (size_t)n;
	}
	tc->error = ERR_get_error();
	ERR_clear_error();
	tc->answer[len] = '\0';
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	atomic_store(&tc->done, true);
	return NULL;
}

static void tls_exchange(struct kha_loop *loop, struct tls_client *tc)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, tls_client_main, tc), 0);
	for (int i = 0; i < 500 && !atomic_load(&tc->done); i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	assert_true(atomic_load(&tc->done));
	pthread_join(t, NULL);
}

static void test_server_tls_with_client_certificates(void **state)
{
	struct kha_httpd_tls_config cfg = {.cert = tls_pem, .key = tls_pem, .client_ca = tls_pem};
	struct kha_loop *loop;
	struct kha_httpd *h;
	struct kha_diag d = {};
	SSL_CTX *ctx = NULL;
	struct tls_client tc = {};
	char buf[64];
	int fd;

	(void)state;
	signal(SIGPIPE, SIG_IGN); /* as kha's main does: TLS writes go through write() */
	make_pem();
	assert_int_equal(kha_httpd_tls_ctx_new(&cfg, &ctx, &d), 0);
	assert_int_equal(kha_loop_new(&loop), 0);
	assert_int_equal(kha_httpd_new(loop, "127.0.0.1:0", NULL, &d, &h), 0);
	kha_httpd_set_tls(h, ctx);
	SSL_CTX_free(ctx); /* the server holds its own reference */
	assert_int_equal(kha_httpd_route_full(h, "/who", KHA_HTTPD_POST, 16, who_route, NULL), 0);
	/* the handshake, the body and the answer through the non-blocking server */
	tc.port = kha_httpd_port(h);
	tc.with_cert = true;
	tls_exchange(loop, &tc);
	assert_non_null(strstr(tc.answer, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(tc.answer, "\r\n\r\npeer=node-x body=hi"));
	/*
	 * no client certificate: no answer, and the client is told why by an alert (TLS 1.3's
	 * certificate_required, TLS 1.2's handshake_failure), not left with a reset connection;
	 * the client's request is often already there, unread, when the handshake fails
	 */
	for (int i = 0; i < 6; i++) {
		memset(&tc, 0, sizeof(tc));
		tc.port = kha_httpd_port(h);
		tc.max_version = i % 2 ? TLS1_2_VERSION : 0;
		tls_exchange(loop, &tc);
		assert_null(strstr(tc.answer, "HTTP/1.1"));
		if (ERR_GET_REASON(tc.error) != (i % 2 ? SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE
						       : SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED))
			fail_msg("try %d (%s): client saw %s", i, i % 2 ? "TLS 1.2" : "TLS 1.3",
				 tc.error ? ERR_reason_error_string(tc.error) : "no TLS error");
	}
	/* a handshake that stalls is closed at the deadline, whatever it trickles */
	fake_clock_install();
	fd = connect_to(kha_httpd_port(h));
	kha_ignore(kha_loop_run_once(loop, 10)); /* accepted at 1 */
	for (int i = 0; i < 10; i++) {
		/* a ClientHello's record and handshake headers, then its first bytes */
		static const char hello[10] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03";

		assert_int_equal(write(fd, hello + i, 1), 1);
		fake_now += KHA_HTTPD_TIMEOUT_US / 10 - 1000;
		kha_ignore(kha_loop_run_once(loop, 10));
	}
	assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1); /* still waited for */
	fake_now += 20000;
	for (int i = 0; i < 3; i++)
		kha_ignore(kha_loop_run_once(loop, 10));
	assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
	close(fd);
	fake_clock_teardown(NULL);
	/* bad files are named by the flag given */
	cfg = (struct kha_httpd_tls_config){
		.cert = "/nonexistent", .key = tls_pem, .cert_flag = "--serve-cert"};
	assert_int_equal(kha_httpd_tls_ctx_new(&cfg, &ctx, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "--serve-cert /nonexistent: not a usable certificate"));
	kha_httpd_free(h);
	kha_loop_free(loop);
	unlink(tls_pem);
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
		cmocka_unit_test(test_server_keeps_its_reserve_descriptor),
		cmocka_unit_test(test_server_tls_with_client_certificates),
	};
	return cmocka_run_group_tests_name("httpd", tests, NULL, NULL);
}
