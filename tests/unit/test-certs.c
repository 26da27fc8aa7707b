// SPDX-License-Identifier: MIT
/* Unit tests of lib/certs: a CA and leaves issued in memory, verified with OpenSSL's own chain
 * verification (X509_verify_cert, with the TLS server/client purposes for the EKUs), SANs,
 * validity, bad requests, and files (modes, round trips, mismatched keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kha/certs.h"
#include "kha/file.h"
#include "kha/banned.h"

static const char *const member_sans[] = {"127.0.0.1", "localhost", "::1", "IP:10.0.0.1",
					  "DNS:*.example.com"};

static void new_ca(struct kha_cert *ca, unsigned days)
{
	struct kha_diag d = {0};

	assert_int_equal(kha_certs_create_ca("test-ca", days, ca, &d), 0);
	assert_non_null(ca->x509);
	assert_non_null(ca->key);
}

static void issue(const struct kha_cert *ca, unsigned usage, struct kha_cert *ret)
{
	struct kha_cert_request req = {.cn = "m1",
				       .sans = member_sans,
				       .n_sans = KHA_ARRAY_SIZE(member_sans),
				       .usage = usage,
				       .days = 30};
	struct kha_diag d = {0};

	assert_int_equal(kha_certs_issue(ca, &req, ret, &d), 0);
}

/* X509_verify_cert with a TLS purpose: checks the chain and the extended key usage. */
static int verify_for(const struct kha_cert *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	assert_int_equal(X509_STORE_add_cert(store, ca->x509), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

static void test_ca_is_a_self_signed_ca(void **state)
{
	struct kha_cert ca = {0};
	struct kha_cert_info info;

	(void)state;
	new_ca(&ca, 365);
	assert_int_equal(kha_certs_inspect(ca.x509, &info, NULL), 0);
	assert_string_equal(info.subject, "CN=test-ca");
	assert_string_equal(info.issuer, "CN=test-ca");
	assert_true(info.is_ca);
	assert_true(info.self_signed);
	assert_int_equal(info.n_dns + info.n_ips, 0);
	assert_true(info.not_after - info.not_before >= 365 * 86400);
	assert_true(info.not_before <= (int64_t)time(NULL));
	assert_int_equal(X509_get_key_usage(ca.x509) & KU_KEY_CERT_SIGN, KU_KEY_CERT_SIGN);
	assert_int_equal(EVP_PKEY_get_id(ca.key), EVP_PKEY_EC);
	assert_int_equal(kha_certs_verify(&ca, ca.x509, NULL), 0);
	kha_cert_info_release(&info);
	kha_cert_release(&ca);
}

static void test_member_cert_chain_sans_and_both_ekus(void **state)
{
	struct kha_cert ca = {0}, leaf = {0};
	struct kha_cert_info info;

	(void)state;
	new_ca(&ca, 365);
	issue(&ca, KHA_CERT_SERVER | KHA_CERT_CLIENT, &leaf);
	assert_int_equal(kha_certs_verify(&ca, leaf.x509, NULL), 0);
	assert_int_equal(verify_for(&ca, leaf.x509, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(verify_for(&ca, leaf.x509, X509_PURPOSE_SSL_CLIENT), 1);

	assert_int_equal(kha_certs_inspect(leaf.x509, &info, NULL), 0);
	assert_string_equal(info.subject, "CN=m1");
	assert_string_equal(info.issuer, "CN=test-ca");
	assert_false(info.is_ca);
	assert_false(info.self_signed);
	assert_int_equal(info.usage, KHA_CERT_SERVER | KHA_CERT_CLIENT);
	assert_int_equal(info.n_ips, 3);
	assert_string_equal(info.ips[0], "127.0.0.1");
	assert_string_equal(info.ips[1], "::1");
	assert_string_equal(info.ips[2], "10.0.0.1");
	assert_int_equal(info.n_dns, 2);
	assert_string_equal(info.dns[0], "localhost");
	assert_string_equal(info.dns[1], "*.example.com");
	assert_true(info.not_after - (int64_t)time(NULL) <= 30 * 86400);
	assert_true(info.not_after - (int64_t)time(NULL) > 29 * 86400);

	assert_true(kha_cert_info_has_san(&info, "127.0.0.1"));
	assert_true(kha_cert_info_has_san(&info, "0:0::1"));
	assert_true(kha_cert_info_has_san(&info, "LocalHost"));
	assert_true(kha_cert_info_has_san(&info, "api.example.com"));
	assert_false(kha_cert_info_has_san(&info, "a.api.example.com"));
	assert_false(kha_cert_info_has_san(&info, "example.com"));
	assert_false(kha_cert_info_has_san(&info, "10.0.0.2"));
	assert_false(kha_cert_info_has_san(&info, "::ffff:10.0.0.1"));
	assert_false(kha_cert_info_has_san(&info, "localhost.localdomain"));
	kha_cert_info_release(&info);
	kha_cert_release(&leaf);
	kha_cert_release(&ca);
}

/* The verdict of kha certs check: SANs, validity against now and --warn-days, the chain. */
static void test_check_verdict(void **state)
{
	static const char *const want[] = {"10.0.0.1", "localhost", "10.0.0.100"};
	struct kha_cert ca = {0}, other = {0}, leaf = {0};
	struct kha_cert_info info;
	struct kha_certs_check_result res;
	struct kha_certs_check_request req = {.sans = want, .n_sans = 2, .warn_days = 7};
	int64_t now = (int64_t)time(NULL);

	(void)state;
	new_ca(&ca, 365);
	new_ca(&other, 365);
	issue(&ca, KHA_CERT_SERVER, &leaf); /* 30 days */
	assert_int_equal(kha_certs_inspect(leaf.x509, &info, NULL), 0);
	req.now = now;

	/* all there, far from its end, no CA asked */
	assert_int_equal(kha_certs_check(&leaf, &info, &req, &res), 0);
	assert_int_equal(res.verdict, KHA_CERTS_OK);
	assert_true(res.present[0] && res.present[1]);
	assert_int_equal(res.n_problems, 0);
	assert_int_equal(res.chain, -1);
	kha_certs_check_release(&res);

	/* a missing SAN and a signature by another CA: critical, each named */
	req.n_sans = 3;
	req.ca = &other;
	req.ca_name = "other.crt";
	assert_int_equal(kha_certs_check(&leaf, &info, &req, &res), 0);
	assert_int_equal(res.verdict, KHA_CERTS_CRITICAL);
	assert_false(res.present[2]);
	assert_int_equal(res.n_problems, 2);
	assert_true(res.problems[0].missing_san);
	assert_non_null(strstr(res.problems[0].text, "SAN 10.0.0.100 missing"));
	assert_int_equal(res.chain, 0);
	assert_non_null(strstr(res.problems[1].text, "not verified by other.crt"));
	kha_certs_check_release(&res);

	/* its own CA verifies; within --warn-days of its end: degraded */
	req.n_sans = 2;
	req.ca = &ca;
	req.warn_days = 31;
	assert_int_equal(kha_certs_check(&leaf, &info, &req, &res), 0);
	assert_int_equal(res.chain, 1);
	assert_int_equal(res.verdict, KHA_CERTS_DEGRADED);
	assert_non_null(strstr(res.problems[0].text, "within 31 days"));
	assert_string_equal(kha_certs_verdict_name(res.verdict), "degraded");
	kha_certs_check_release(&res);

	/* expired, and not yet valid (the chain is checked at the real time) */
	req.ca = NULL;
	req.now = info.not_after;
	assert_int_equal(kha_certs_check(&leaf, &info, &req, &res), 0);
	assert_int_equal(res.verdict, KHA_CERTS_CRITICAL);
	assert_non_null(strstr(res.problems[0].text, "expired on"));
	kha_certs_check_release(&res);
	req.now = info.not_before - 1;
	assert_int_equal(kha_certs_check(&leaf, &info, &req, &res), 0);
	assert_non_null(strstr(res.problems[0].text, "not valid before"));
	kha_certs_check_release(&res);

	/* the same SAN rule on the certificate itself (what kha audit asks) */
	assert_true(kha_certs_has_san(leaf.x509, "10.0.0.1"));
	assert_false(kha_certs_has_san(leaf.x509, "m1")); /* the CN does not count */
	assert_false(kha_certs_has_san(leaf.x509, ""));
	assert_false(kha_certs_has_san(NULL, "10.0.0.1"));
	kha_cert_info_release(&info);
	kha_cert_release(&leaf);
	kha_cert_release(&other);
	kha_cert_release(&ca);
}

static void test_server_only_is_not_a_client(void **state)
{
	struct kha_cert ca = {0}, server = {0}, client = {0};
	struct kha_cert_request req = {.cn = "tools", .usage = KHA_CERT_CLIENT, .days = 1};
	struct kha_cert_info info;

	(void)state;
	new_ca(&ca, 365);
	issue(&ca, KHA_CERT_SERVER, &server);
	assert_int_equal(verify_for(&ca, server.x509, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(verify_for(&ca, server.x509, X509_PURPOSE_SSL_CLIENT), 0);
	/* a client certificate needs no SANs */
	assert_int_equal(kha_certs_issue(&ca, &req, &client, NULL), 0);
	assert_int_equal(verify_for(&ca, client.x509, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify_for(&ca, client.x509, X509_PURPOSE_SSL_SERVER), 0);
	assert_int_equal(kha_certs_inspect(client.x509, &info, NULL), 0);
	assert_int_equal(info.usage, KHA_CERT_CLIENT);
	assert_int_equal(info.n_dns + info.n_ips, 0);
	kha_cert_info_release(&info);
	kha_cert_release(&client);
	kha_cert_release(&server);
	kha_cert_release(&ca);
}

static void test_other_ca_does_not_verify(void **state)
{
	struct kha_cert ca = {0}, other = {0}, leaf = {0};
	struct kha_diag d = {0};

	(void)state;
	new_ca(&ca, 365);
	new_ca(&other, 365); /* same name, different key */
	issue(&ca, KHA_CERT_SERVER, &leaf);
	assert_int_equal(kha_certs_verify(&other, leaf.x509, &d), -EBADMSG);
	assert_true(strlen(d.msg) > 0);
	kha_cert_release(&leaf);
	kha_cert_release(&other);
	kha_cert_release(&ca);
}

static void test_serials_are_random_and_validity_capped(void **state)
{
	struct kha_cert ca = {0}, a = {0}, b = {0};
	struct kha_cert_info ia, ib, ica;

	(void)state;
	new_ca(&ca, 2);
	issue(&ca, KHA_CERT_SERVER, &a); /* asks for 30 days, the CA lives 2 */
	issue(&ca, KHA_CERT_SERVER, &b);
	assert_int_equal(kha_certs_inspect(a.x509, &ia, NULL), 0);
	assert_int_equal(kha_certs_inspect(b.x509, &ib, NULL), 0);
	assert_int_equal(kha_certs_inspect(ca.x509, &ica, NULL), 0);
	assert_string_not_equal(ia.serial, ib.serial);
	assert_int_equal(strlen(ia.serial), 32);
	assert_int_equal(ia.not_after, ica.not_after);
	kha_cert_info_release(&ia);
	kha_cert_info_release(&ib);
	kha_cert_info_release(&ica);
	kha_cert_release(&a);
	kha_cert_release(&b);
	kha_cert_release(&ca);
}

static void test_bad_requests(void **state)
{
	static const char *const bad_dns[] = {"bad name!"};
	static const char *const bad_ip[] = {"IP:localhost"};
	static const char *const ok[] = {"localhost"};
	struct kha_cert ca = {0}, out = {0}, leaf = {0};
	struct kha_cert_request req = {.cn = "x", .sans = ok, .n_sans = 1, .days = 1};
	struct kha_diag d = {0};

	(void)state;
	new_ca(&ca, 1);
	assert_int_equal(kha_certs_issue(&ca, &req, &out, &d), -EINVAL); /* no usage */
	req.usage = KHA_CERT_SERVER;
	req.n_sans = 0;
	assert_int_equal(kha_certs_issue(&ca, &req, &out, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "SAN"));
	req.sans = bad_dns;
	req.n_sans = 1;
	assert_int_equal(kha_certs_issue(&ca, &req, &out, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "bad name!"));
	req.sans = bad_ip;
	assert_int_equal(kha_certs_issue(&ca, &req, &out, &d), -EINVAL);
	req.sans = ok;
	req.days = 0;
	assert_int_equal(kha_certs_issue(&ca, &req, &out, &d), -EINVAL);
	req.cn = "";
	req.days = 1;
	assert_int_equal(kha_certs_issue(&ca, &req, &out, &d), -EINVAL);
	assert_int_equal(kha_certs_create_ca("ca", 0, &out, &d), -EINVAL);
	/* a leaf cannot sign */
	req.cn = "leaf";
	assert_int_equal(kha_certs_issue(&ca, &req, &leaf, NULL), 0);
	assert_int_equal(kha_certs_issue(&leaf, &req, &out, &d), -EINVAL);
	assert_null(out.x509);
	kha_cert_release(&leaf);
	kha_cert_release(&ca);
}

static void test_files_modes_and_round_trip(void **state)
{
	char dir[] = "/tmp/kha-test-certs-XXXXXX";
	kha_autofree char *crt = NULL, *key = NULL, *ca_key = NULL;
	struct kha_cert ca = {0}, leaf = {0}, back = {0}, ca_back = {0}, other = {0};
	struct kha_diag d = {0};
	struct stat st;
	mode_t old;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true(asprintf(&crt, "%s/m1.crt", dir) > 0);
	assert_true(asprintf(&key, "%s/m1.key", dir) > 0);
	assert_true(asprintf(&ca_key, "%s/ca.key", dir) > 0);
	new_ca(&ca, 10);
	issue(&ca, KHA_CERT_SERVER | KHA_CERT_CLIENT, &leaf);
	old = umask(0);
	assert_int_equal(kha_certs_save_ca(&ca, dir, NULL), 0);
	assert_int_equal(kha_certs_save(&leaf, crt, key, NULL), 0);
	umask(old);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(ca_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(crt, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	assert_int_equal(kha_certs_load(crt, key, &back, NULL), 0);
	assert_int_equal(X509_cmp(back.x509, leaf.x509), 0);
	assert_int_equal(EVP_PKEY_eq(back.key, leaf.key), 1);
	assert_int_equal(kha_certs_load_ca(dir, &ca_back, NULL), 0);
	assert_int_equal(kha_certs_verify(&ca_back, back.x509, NULL), 0);
	kha_cert_release(&back);
	/* a key that does not belong to the certificate */
	assert_int_equal(kha_certs_load(crt, ca_key, &other, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "does not belong"));
	/* not PEM at all */
	assert_int_equal(kha_certs_load(key, NULL, &other, &d), -EBADMSG);
	assert_int_equal(kha_certs_load("/nonexistent/x.crt", NULL, &other, &d), -ENOENT);
	/* a leaf is not a CA */
	assert_int_equal(kha_certs_save_ca(&leaf, dir, NULL), 0);
	assert_int_equal(kha_certs_load_ca(dir, &other, &d), -EBADMSG);

	kha_cert_release(&ca_back);
	kha_cert_release(&leaf);
	kha_cert_release(&ca);
	assert_int_equal(kha_file_remove_tree(dir, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_is_a_self_signed_ca),
		cmocka_unit_test(test_member_cert_chain_sans_and_both_ekus),
		cmocka_unit_test(test_check_verdict),
		cmocka_unit_test(test_server_only_is_not_a_client),
		cmocka_unit_test(test_other_ca_does_not_verify),
		cmocka_unit_test(test_serials_are_random_and_validity_capped),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_files_modes_and_round_trip),
	};
	return cmocka_run_group_tests_name("certs", tests, NULL, NULL);
}
