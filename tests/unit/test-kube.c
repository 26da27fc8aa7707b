// SPDX-License-Identifier: MIT
/*
 * Unit tests of lib/kube: kubeconfig parsing and loading, the pure decoders (Status, watch
 * events, EndpointSlices, Leases), MicroTime, the merge of slices into a backend set, back-off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "kube-internal.h"
#include "kha/banned.h"

/* ---- fixtures: a throwaway self-signed certificate and key, made at run time ---- */

static char cert_pem[4096], key_pem[4096], cert_b64[8192], key_b64[8192];
static char tmpdir[64];

static void pem_of(BIO *b, char *out, size_t size)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);

	assert_true(n > 0 && (size_t)n < size);
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
}

static void b64_of(const char *in, char *out, size_t size)
{
	int n = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)strlen(in));

	assert_true(n > 0 && (size_t)n < size);
}

static int make_pki(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());

	(void)state;
	assert_non_null(k);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"kha-unit", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	PEM_write_bio_X509(bc, x);
	PEM_write_bio_PrivateKey(bk, k, NULL, NULL, 0, NULL, NULL);
	pem_of(bc, cert_pem, sizeof(cert_pem));
	pem_of(bk, key_pem, sizeof(key_pem));
	b64_of(cert_pem, cert_b64, sizeof(cert_b64));
	b64_of(key_pem, key_b64, sizeof(key_b64));
	BIO_free(bc);
	BIO_free(bk);
	X509_free(x);
	EVP_PKEY_free(k);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kha-test-kube-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static const char *const tmp_files[] = {"ca.crt",	"admin.crt", "admin.key", "token",
					"config",	"garbage",   "sa/token",  "sa/ca.crt",
					"sa/namespace", "second"};

static int remove_pki(void **state)
{
	char p[256];

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(tmp_files); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, tmp_files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/sa", tmpdir);
	rmdir(p);
	rmdir(tmpdir);
	return 0;
}

static void write_tmp(const char *name, const char *content)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	f = fopen(p, "we");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static int parse(const char *yaml, const char *context, struct kha_kube_config **ret,
		 struct kha_diag *d)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/config", tmpdir);
	kha_diag_clear(d);
	return kha_kube_config_parse(yaml, strlen(yaml), path, context, ret, d);
}

/* ---- kubeconfig ---- */

static void test_kubeconfig_current_context_and_inline_data(void **state)
{
	kha_autofree char *yaml = NULL;
	struct kha_kube_config *cfg = NULL;
	struct kha_diag d = {};

	(void)state;
	assert_true(asprintf(&yaml,
			     "apiVersion: v1\n"
			     "kind: Config\n"
			     "current-context: admin@prod\n"
			     "clusters:\n"
			     "- name: staging\n"
			     "  cluster: {server: 'https://staging:6443'}\n"
			     "- name: prod\n"
			     "  cluster:\n"
			     "    server: https://10.0.0.1:6443\n"
			     "    certificate-authority-data: %s\n"
			     "    tls-server-name: kubernetes\n"
			     "contexts:\n"
			     "- name: other\n"
			     "  context: {cluster: staging, user: nobody}\n"
			     "- name: admin@prod\n"
			     "  context:\n"
			     "    cluster: prod\n"
			     "    user: admin\n"
			     "    namespace: kube-system\n"
			     "users:\n"
			     "- name: admin\n"
			     "  user:\n"
			     "    client-certificate-data: %s\n"
			     "    client-key-data: %s\n",
			     cert_b64, cert_b64, key_b64) > 0);
	assert_int_equal(parse(yaml, NULL, &cfg, &d), 0);
	assert_string_equal(cfg->server, "https://10.0.0.1:6443");
	assert_string_equal(cfg->context, "admin@prod");
	assert_string_equal(cfg->namespace, "kube-system");
	assert_string_equal(cfg->tls_server_name, "kubernetes");
	assert_false(cfg->insecure_skip_tls_verify);
	assert_null(cfg->ca_file);
	assert_int_equal(cfg->ca_data.len, strlen(cert_pem));
	assert_memory_equal(cfg->ca_data.data, cert_pem, cfg->ca_data.len);
	assert_memory_equal(cfg->key_data.data, key_pem, strlen(key_pem));
	assert_non_null(cfg->cert_data.data);
	assert_null(cfg->token);
	kha_kube_config_free(cfg);

	/* an explicit context wins over current-context; a user without credentials is fine */
	cfg = NULL;
	assert_int_equal(parse(yaml, "other", &cfg, &d), -EINVAL);
	assert_non_null(strstr(d.msg, "users: \"nobody\" not found"));
}

static void test_kubeconfig_relative_paths_and_token_file(void **state)
{
	const char *yaml = "current-context: c\n"
			   "clusters:\n"
			   "- name: k\n"
			   "  cluster:\n"
			   "    server: kube.example:6443\n"
			   "    certificate-authority: ca.crt\n"
			   "contexts:\n"
			   "- name: c\n"
			   "  context: {cluster: k, user: u}\n"
			   "users:\n"
			   "- name: u\n"
			   "  user:\n"
			   "    client-certificate: admin.crt\n"
			   "    client-key: admin.key\n"
			   "    tokenFile: token\n";
	struct kha_kube_config *cfg = NULL;
	struct kha_diag d = {};
	char want[256];

	(void)state;
	write_tmp("ca.crt", cert_pem);
	write_tmp("admin.crt", cert_pem);
	write_tmp("admin.key", key_pem);
	write_tmp("token", "abc\n");
	assert_int_equal(parse(yaml, NULL, &cfg, &d), 0);
	/* host:port without a scheme means https, as client-go does */
	assert_string_equal(cfg->server, "https://kube.example:6443");
	snprintf(want, sizeof(want), "%s/ca.crt", tmpdir);
	assert_string_equal(cfg->ca_file, want);
	snprintf(want, sizeof(want), "%s/admin.key", tmpdir);
	assert_string_equal(cfg->key_file, want);
	snprintf(want, sizeof(want), "%s/token", tmpdir);
	assert_string_equal(cfg->token_file, want);
	assert_string_equal(cfg->namespace, "default");
	kha_kube_config_free(cfg);
}

static void test_kubeconfig_errors_name_file_and_field(void **state)
{
	static const struct {
		const char *yaml;
		const char *want;
		int err; /* 0: -EINVAL (the file is wrong); a missing file it names: -ENOENT */
	} cases[] = {
		{"", "empty file"},
		{"- a\n- b\n", "expected a mapping"},
		{"clusters: [\n", "malformed YAML"},
		{"apiVersion: v1\n", "no current-context"},
		/* the shape of the top-level lists is told before a missing current-context */
		{"clusters: 7\n", "clusters: expected a list, found a scalar"},
		{"current-context: x\ncontexts: {x: 1}\n",
		 "contexts: expected a list, found a mapping"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x'}\nusers: nobody\n",
		 "users: expected a list, found a scalar"},
		{"current-context: x\ncontexts: []\n", "contexts: \"x\" not found"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {user: u}\n",
		 "contexts[\"x\"].context.cluster: missing"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {}\n",
		 "clusters[\"c\"].cluster.server: missing"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'ftp://x'}\n",
		 "not an http(s) URL"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x', "
		 "certificate-authority-data: '!!notbase64!!'}\n",
		 "clusters[\"c\"].cluster.certificate-authority-data: invalid base64"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x', "
		 "certificate-authority-data: aGVsbG8K}\n",
		 "certificate-authority-data: no PEM certificate"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x', "
		 "certificate-authority: missing.crt}\n",
		 "certificate-authority: ", -ENOENT},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x', "
		 "insecure-skip-tls-verify: maybe}\n",
		 "insecure-skip-tls-verify: expected true or false"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x', "
		 "insecure-skip-tls-verify: true, certificate-authority: ca.crt}\n",
		 "insecure-skip-tls-verify together"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
		 "users:\n- name: u\n  user: {client-certificate: admin.crt}\n",
		 "users[\"u\"].user: client-certificate without client-key"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
		 "users:\n- name: u\n  user: {exec: {command: aws}}\n",
		 "exec and auth-provider credential plugins are not supported"},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
		 "users:\n- name: u\n  user: {tokenFile: nope}\n",
		 "users[\"u\"].user.tokenFile: ", -ENOENT},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		 "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
		 "users:\n- name: u\n  user: {client-key: garbage, client-certificate: admin.crt}\n",
		 "client-key: "},
		{"current-context: x\ncontexts:\n- name: x\n  context: {cluster: [c]}\n",
		 "context.cluster: expected a string"},
	};
	struct kha_kube_config *cfg = NULL;
	struct kha_diag d = {};
	char where[256];

	(void)state;
	write_tmp("ca.crt", cert_pem);
	write_tmp("admin.crt", cert_pem);
	write_tmp("garbage", "not a key\n");
	snprintf(where, sizeof(where), "kubeconfig %s/config", tmpdir);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(cases); i++) {
		int r = parse(cases[i].yaml, NULL, &cfg, &d);

		if (r == 0 || !strstr(d.msg, cases[i].want) || !strstr(d.msg, where))
			fail_msg("case %zu: r=%d msg=%s", i, r, d.msg);
		assert_int_equal(r, cases[i].err ? cases[i].err : -EINVAL);
		assert_null(cfg);
	}
}

static void test_kubeconfig_load_order(void **state)
{
	struct kha_kube_load_opts opts = {};
	struct kha_kube_config *cfg = NULL;
	struct kha_diag d = {};
	char env[512], sa[256];

	(void)state;
	write_tmp("config", "current-context: a\ncontexts: [{name: a, context: {cluster: a}}]\n"
			    "clusters: [{name: a, cluster: {server: 'https://first:1'}}]\n");
	write_tmp("second", "current-context: b\ncontexts: [{name: b, context: {cluster: b}}]\n"
			    "clusters: [{name: b, cluster: {server: 'https://second:2'}}]\n");
	/* $KUBECONFIG: the first file of the list only */
	snprintf(env, sizeof(env), "%s/config:%s/second", tmpdir, tmpdir);
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(kha_kube_config_load(&opts, &cfg, &d), 0);
	assert_string_equal(cfg->server, "https://first:1");
	kha_kube_config_free(cfg);
	/* --kubeconfig wins over $KUBECONFIG */
	snprintf(env, sizeof(env), "%s/second", tmpdir);
	opts.kubeconfig = env;
	assert_int_equal(kha_kube_config_load(&opts, &cfg, &d), 0);
	assert_string_equal(cfg->server, "https://second:2");
	kha_kube_config_free(cfg);
	/* a missing file names itself and where it came from */
	opts.kubeconfig = "/nonexistent/kubeconfig";
	assert_int_equal(kha_kube_config_load(&opts, &cfg, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "/nonexistent/kubeconfig (--kubeconfig)"));

	/* in-cluster: the service account and the service environment */
	unsetenv("KUBECONFIG");
	opts.kubeconfig = NULL;
	snprintf(sa, sizeof(sa), "%s/sa", tmpdir);
	mkdir(sa, 0700);
	opts.serviceaccount_dir = sa;
	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_int_equal(kha_kube_config_load(&opts, &cfg, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "KUBERNETES_SERVICE_HOST"));
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(kha_kube_config_load(&opts, &cfg, &d), -ENOENT);
	assert_non_null(strstr(d.msg, "sa/token"));
	write_tmp("sa/token", "tok\n");
	write_tmp("sa/ca.crt", cert_pem);
	write_tmp("sa/namespace", "kube-system");
	assert_int_equal(kha_kube_config_load(&opts, &cfg, &d), 0);
	assert_string_equal(cfg->server, "https://[fd00::1]:443");
	assert_string_equal(cfg->namespace, "kube-system");
	assert_string_equal(cfg->source, "in-cluster");
	assert_non_null(strstr(cfg->token_file, "sa/token"));
	kha_kube_config_free(cfg);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_kubeconfig_client_server_override(void **state)
{
	const char *yaml =
		"current-context: c\n"
		"clusters: [{name: k, cluster: {server: 'https://10.0.0.1:6443/prefix/', "
		"insecure-skip-tls-verify: true}}]\n"
		"contexts: [{name: c, context: {cluster: k}}]\n";
	struct kha_kube_config *cfg = NULL;
	struct kha_kube_client *c = NULL;
	struct kha_diag d = {};

	(void)state;
	assert_int_equal(parse(yaml, NULL, &cfg, &d), 0);
	assert_true(cfg->insecure_skip_tls_verify);
	assert_int_equal(kha_kube_client_new(cfg, &c, &d), 0);
	kha_kube_config_free(cfg);
	assert_string_equal(kha_kube_client_server(c), "https://10.0.0.1:6443");
	assert_int_equal(kha_kube_client_set_server(c, "https://[::1]:7443", NULL, &d), 0);
	assert_string_equal(kha_kube_client_server(c), "https://[::1]:7443");
	assert_int_equal(kha_kube_client_set_server(c, "ftp://x", NULL, &d), -EINVAL);
	assert_int_equal(kha_kube_client_set_server(c, NULL, NULL, &d), 0);
	assert_string_equal(kha_kube_client_server(c), "https://10.0.0.1:6443");
	assert_string_equal(kha_kube_client_namespace(c), "default");
	kha_kube_client_free(c);
}

static void test_base64_through_evp(void **state)
{
	struct kha_kube_blob b = {};

	(void)state;
	assert_int_equal(kha_kube__base64_decode("aGVs\nbG8=", 9, &b), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "hello", 5);
	free(b.data);
	assert_int_equal(kha_kube__base64_decode("a$b", 3, &b), -EINVAL);
	assert_int_equal(kha_kube__base64_decode("", 0, &b), -EINVAL);
}

/* ---- Status and watch events ---- */

static void test_status_decode_and_errno(void **state)
{
	const char *conflict =
		"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
		"\"message\":\"Operation cannot be fulfilled on leases.coordination.k8s.io "
		"\\\"kube-scheduler\\\": the object has been modified; please apply your changes "
		"to the latest version and try again\",\"reason\":\"Conflict\",\"details\":{\"name\":"
		"\"kube-scheduler\",\"group\":\"coordination.k8s.io\",\"kind\":\"leases\"},\"code\":409}";
	struct kha_kube_status st;
	struct kha_diag d = {};
	static const struct {
		int code;
		const char *reason;
		int err;
	} map[] = {
		{404, "NotFound", -ENOENT},
		{409, "AlreadyExists", -EEXIST},
		{409, "Conflict", -EAGAIN},
		{410, "Expired", -ESTALE},
		{410, "Gone", -ESTALE},
		{401, "Unauthorized", -EACCES},
		{403, "Forbidden", -EPERM},
		{422, "Invalid", -EINVAL},
		{500, "InternalError", -EBUSY},
		{429, "TooManyRequests", -EBUSY},
		{504, "Timeout", -ETIMEDOUT},
		{0, "Expired", -ESTALE},
		{302, "", -EPROTO},
	};

	(void)state;
	assert_int_equal(kha_kube_status_decode(conflict, strlen(conflict), &st, &d), 0);
	assert_int_equal(st.code, 409);
	assert_string_equal(st.reason, "Conflict");
	assert_non_null(strstr(st.message, "the object has been modified"));
	assert_int_equal(kha_kube_errno_from_status(&st), -EAGAIN);
	for (size_t i = 0; i < KHA_ARRAY_SIZE(map); i++) {
		struct kha_kube_status s = {.code = map[i].code};

		snprintf(s.reason, sizeof(s.reason), "%s", map[i].reason);
		assert_int_equal(kha_kube_errno_from_status(&s), map[i].err);
	}
	/* truncated, not an object, wrong types */
	assert_int_equal(kha_kube_status_decode(conflict, 40, &st, &d), -EBADMSG);
	assert_int_equal(kha_kube_status_decode("[1]", 3, &st, &d), -EBADMSG);
	assert_int_equal(kha_kube_status_decode("{\"code\":\"409\"}", 14, &st, &d), -EBADMSG);
	assert_int_equal(kha_kube_status_decode("{\"kind\":\"Status\"}", 17, &st, &d), -EBADMSG);
}

static void test_watch_event_decode(void **state)
{
	static const char *const lines[] = {
		"{\"type\":\"ADDED\",\"object\":{\"kind\":\"EndpointSlice\"}}",
		"{\"type\":\"MODIFIED\",\"object\":{}}",
		"{\"type\":\"DELETED\",\"object\":{}}",
		"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"EndpointSlice\",\"apiVersion\":"
		"\"discovery.k8s.io/v1\",\"metadata\":{\"resourceVersion\":\"12746\","
		"\"creationTimestamp\":null},\"addressType\":\"\",\"endpoints\":null,\"ports\":null}}",
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
		"\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version: 1 "
		"(2)\",\"reason\":\"Expired\",\"code\":410}}",
	};
	static const char *const bad[] = {
		"",
		"{\"type\":\"ADDED\",\"object\":{",
		"{\"type\":\"SYNC\",\"object\":{}}",
		"{\"type\":\"ADDED\"}",
		"{\"type\":1,\"object\":{}}",
		"{\"type\":\"ADDED\",\"object\":[]}",
		"[]",
	};
	enum kha_kube_event_type type;
	struct kha_kube_status st;
	const char *rv;
	json_t *obj;
	struct kha_diag d = {};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(lines); i++) {
		assert_int_equal(
			kha_kube_watch_event_decode(lines[i], strlen(lines[i]), &type, &obj, &d),
			0);
		assert_int_equal(type, (enum kha_kube_event_type)i);
		if (type == KHA_KUBE_EVENT_BOOKMARK) {
			assert_int_equal(kha_kube__object_rv(obj, &rv), 0);
			assert_string_equal(rv, "12746");
		}
		if (type == KHA_KUBE_EVENT_ERROR) {
			assert_int_equal(kha_kube__status_from_json(obj, &st), 0);
			assert_int_equal(kha_kube_errno_from_status(&st), -ESTALE);
		}
		json_decref(obj);
	}
	assert_string_equal(kha_kube_event_type_name(KHA_KUBE_EVENT_BOOKMARK), "BOOKMARK");
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++)
		assert_int_equal(
			kha_kube_watch_event_decode(bad[i], strlen(bad[i]), &type, &obj, &d),
			-EBADMSG);
}

/* ---- EndpointSlices ---- */

/* A list as the API returns it: two slices for the service, one IPv6, one FQDN. */
static const char slice_list[] =
	"{\"kind\":\"EndpointSliceList\",\"apiVersion\":\"discovery.k8s.io/v1\","
	"\"metadata\":{\"resourceVersion\":\"4242\"},\"items\":["
	"{\"metadata\":{\"name\":\"kubernetes\",\"namespace\":\"default\",\"uid\":"
	"\"5f0d3c4e-0000-4000-8000-000000000001\",\"resourceVersion\":\"4100\","
	"\"generation\":3,\"creationTimestamp\":\"2024-05-01T10:00:00Z\",\"labels\":{"
	"\"kubernetes.io/service-name\":\"kubernetes\"}},"
	"\"addressType\":\"IPv4\","
	"\"endpoints\":["
	"{\"addresses\":[\"10.0.0.2\"],\"conditions\":{\"ready\":true,\"serving\":true,"
	"\"terminating\":false},\"nodeName\":\"master-2\"},"
	"{\"addresses\":[\"10.0.0.1\"],\"conditions\":{}},"
	"{\"addresses\":[\"10.0.0.3\"],\"conditions\":{\"ready\":false,\"serving\":true,"
	"\"terminating\":true}},"
	"{\"addresses\":[\"not-an-ip\"]}],"
	"\"ports\":[{\"name\":\"metrics\",\"port\":9443,\"protocol\":\"TCP\"},"
	"{\"name\":\"https\",\"port\":6443,\"protocol\":\"TCP\"}]},"
	"{\"metadata\":{\"name\":\"kubernetes-v6\",\"namespace\":\"default\","
	"\"resourceVersion\":\"4101\"},"
	"\"addressType\":\"IPv6\","
	"\"endpoints\":[{\"addresses\":[\"FD00:0:0::1\"],\"conditions\":{\"ready\":true}}],"
	"\"ports\":[{\"port\":6443,\"protocol\":\"TCP\"}]},"
	"{\"metadata\":{\"name\":\"kubernetes-fqdn\",\"namespace\":\"default\","
	"\"resourceVersion\":\"4102\"},"
	"\"addressType\":\"FQDN\",\"endpoints\":[{\"addresses\":[\"master.example\"]}],"
	"\"ports\":[{\"name\":\"https\",\"port\":6443}]},"
	"{\"metadata\":{\"name\":\"kubernetes-empty\",\"namespace\":\"default\","
	"\"resourceVersion\":\"4103\"},\"addressType\":\"IPv4\",\"endpoints\":null,"
	"\"ports\":null}"
	"]}";

static void test_slice_list_decode(void **state)
{
	struct kha_kube__slice_list l = {};
	struct kha_diag d = {};
	const struct kha_kube__slice *s;

	(void)state;
	assert_int_equal(
		kha_kube__slice_list_decode(slice_list, strlen(slice_list), "https", &l, &d), 0);
	assert_string_equal(l.resource_version, "4242");
	assert_int_equal(l.n_slices, 4);
	s = &l.slices[0];
	assert_string_equal(s->name, "kubernetes");
	assert_string_equal(s->resource_version, "4100");
	assert_int_equal(s->n_endpoints, 3); /* "not-an-ip" is skipped */
	assert_string_equal(s->endpoints[0].addr, "10.0.0.2:6443");
	assert_int_equal(s->endpoints[0].port, 6443);
	/* nil conditions: ready, serving = ready, not terminating */
	assert_string_equal(s->endpoints[1].ip, "10.0.0.1");
	assert_true(s->endpoints[1].ready && s->endpoints[1].serving);
	assert_false(s->endpoints[1].terminating);
	assert_false(s->endpoints[2].ready);
	assert_true(s->endpoints[2].serving && s->endpoints[2].terminating);
	/* IPv6: canonical form, brackets, the only port even without a name */
	s = &l.slices[1];
	assert_int_equal(s->n_endpoints, 1);
	assert_string_equal(s->endpoints[0].ip, "fd00::1");
	assert_string_equal(s->endpoints[0].addr, "[fd00::1]:6443");
	/* FQDN: skipped by design; null endpoints: an empty slice */
	assert_true(l.slices[2].skipped);
	assert_int_equal(l.slices[2].n_endpoints, 0);
	assert_int_equal(l.slices[3].n_endpoints, 0);
	assert_true(l.slices[3].skipped); /* no port */
	kha_kube__slice_list_release(&l);

	/* another port name: "metrics" */
	assert_int_equal(
		kha_kube__slice_list_decode(slice_list, strlen(slice_list), "metrics", &l, &d), 0);
	assert_string_equal(l.slices[0].endpoints[0].addr, "10.0.0.2:9443");
	/* no port of that name and several ports: nothing from that slice */
	kha_kube__slice_list_release(&l);
	assert_int_equal(
		kha_kube__slice_list_decode(slice_list, strlen(slice_list), "grpc", &l, &d), 0);
	assert_true(l.slices[0].skipped);
	assert_int_equal(l.slices[0].n_endpoints, 0);
	assert_int_equal(l.slices[1].n_endpoints, 1); /* its only port */
	kha_kube__slice_list_release(&l);
}

static void test_slice_decode_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"{\"kind\":\"EndpointSliceList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[",
		"{\"metadata\":{},\"items\":[]}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{\"metadata\":{}}]}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{\"metadata\":{\"name\":\"a\"},"
		"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":\"10.0.0.1\"}]}]}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{\"metadata\":{\"name\":\"a\"},"
		"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[1]}]}]}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{\"metadata\":{\"name\":\"a\"},"
		"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],"
		"\"conditions\":{\"ready\":\"yes\"}}]}]}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{\"metadata\":{\"name\":\"a\"},"
		"\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"https\",\"port\":70000}]}]}",
		"{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[{\"metadata\":{\"name\":\"a\"},"
		"\"addressType\":\"IPv4\",\"ports\":{}}]}",
	};
	struct kha_kube__slice_list l = {};
	struct kha_diag d = {};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		int r = kha_kube__slice_list_decode(bad[i], strlen(bad[i]), "https", &l, &d);

		if (r != -EBADMSG)
			fail_msg("case %zu: r=%d", i, r);
	}
	/* every truncation of a valid list is malformed too */
	for (size_t n = 0; n < strlen(slice_list); n += 7)
		assert_int_equal(kha_kube__slice_list_decode(slice_list, n, "https", &l, &d),
				 -EBADMSG);
}

static struct kha_kube__slice make_slice(const char *name, const char *const *addrs, size_t n,
					 bool ready, bool serving, bool terminating)
{
	struct kha_kube__slice s = {.name = strdup(name), .resource_version = strdup("1")};

	s.endpoints = calloc(n ? n : 1, sizeof(*s.endpoints));
	for (size_t i = 0; i < n; i++) {
		struct kha_kube_endpoint *e = &s.endpoints[s.n_endpoints++];
		bool v6 = strchr(addrs[i], ':') != NULL;

		snprintf(e->ip, sizeof(e->ip), "%s", addrs[i]);
		e->port = 6443;
		snprintf(e->addr, sizeof(e->addr), v6 ? "[%s]:6443" : "%s:6443", addrs[i]);
		e->ready = ready;
		e->serving = serving;
		e->terminating = terminating;
	}
	return s;
}

static void test_merge_across_slices(void **state)
{
	static const char *const a[] = {"10.0.0.10", "10.0.0.2"};
	static const char *const b[] = {"10.0.0.2", "fd00::1", "10.0.0.9"};
	static const char *const t[] = {"10.0.0.7"};
	struct kha_kube__slice s[3] = {
		make_slice("a", a, 2, true, true, false),
		make_slice("b", b, 3, true, true, false),
		make_slice("t", t, 1, false, true, true),
	};
	struct kha_kube_endpoint_set set = {}, copy = {};

	(void)state;
	assert_int_equal(kha_kube__endpoints_merge(s, 3, "77", &set), 0);
	/* union, deduplicated, numeric order, IPv4 first; the terminating one is left out */
	assert_int_equal(set.n_endpoints, 4);
	assert_string_equal(set.endpoints[0].addr, "10.0.0.2:6443");
	assert_string_equal(set.endpoints[1].addr, "10.0.0.9:6443");
	assert_string_equal(set.endpoints[2].addr, "10.0.0.10:6443");
	assert_string_equal(set.endpoints[3].addr, "[fd00::1]:6443");
	assert_int_equal(set.n_slices, 3);
	assert_false(set.empty);
	assert_false(set.serving_fallback);
	assert_string_equal(set.resource_version, "77");
	assert_int_equal(kha_kube_endpoint_set_copy(&set, &copy), 0);
	assert_true(kha_kube_endpoint_set_equal(&set, &copy));
	kha_kube_endpoint_set_release(&copy);
	kha_kube_endpoint_set_release(&set);

	/* without slice b: its contribution is gone */
	s[1].n_endpoints = 0;
	assert_int_equal(kha_kube__endpoints_merge(s, 3, NULL, &set), 0);
	assert_int_equal(set.n_endpoints, 2);
	kha_kube_endpoint_set_release(&set);

	/* nothing ready: the serving (terminating) endpoints, flagged */
	assert_int_equal(kha_kube__endpoints_merge(&s[2], 1, NULL, &set), 0);
	assert_int_equal(set.n_endpoints, 1);
	assert_true(set.serving_fallback);
	assert_false(set.empty);
	kha_kube_endpoint_set_release(&set);

	/* nothing at all: an empty set, reported as such */
	s[2].endpoints[0].serving = false;
	assert_int_equal(kha_kube__endpoints_merge(&s[2], 1, NULL, &set), 0);
	assert_int_equal(set.n_endpoints, 0);
	assert_true(set.empty);
	assert_false(set.serving_fallback);
	kha_kube_endpoint_set_release(&set);
	assert_int_equal(kha_kube__endpoints_merge(NULL, 0, "1", &set), 0);
	assert_true(set.empty);
	assert_int_equal(set.n_slices, 0);
	kha_kube_endpoint_set_release(&set);
	for (size_t i = 0; i < 3; i++)
		kha_kube__slice_release(&s[i]);
}

static void test_backoff_capped_and_jittered(void **state)
{
	struct kha_kube__backoff b = {.initial_us = 500000, .max_us = 4000000};
	uint64_t prev_cap = 0;

	(void)state;
	/* the lowest draw is half, the highest the whole current step */
	assert_int_equal(kha_kube__backoff_next(&b, 0), 250000);
	assert_int_equal(kha_kube__backoff_next(&b, UINT32_MAX), 1000000 / 2 + UINT32_MAX % 500001);
	for (int i = 0; i < 20; i++) {
		uint64_t v = kha_kube__backoff_next(&b, (uint32_t)(i * 2654435761u));

		assert_true(v >= b.cur_us / 2 && v <= b.cur_us);
		assert_true(b.cur_us >= prev_cap);
		prev_cap = b.cur_us;
	}
	assert_int_equal(b.cur_us, 4000000);
	kha_kube__backoff_reset(&b);
	assert_int_equal(kha_kube__backoff_next(&b, 0), 250000);
}

/* ---- MicroTime and Leases ---- */

static void test_microtime_format_and_parse(void **state)
{
	static const struct {
		const char *in;
		int64_t us;
	} ok[] = {
		{"1970-01-01T00:00:00Z", 0},
		{"2006-01-02T15:04:05.000000Z", 1136214245000000},
		{"2006-01-02T15:04:05.123456Z", 1136214245123456},
		{"2006-01-02T15:04:05.1Z", 1136214245100000},
		{"2006-01-02T15:04:05.123456789Z", 1136214245123456},
		{"2006-01-02T08:04:05.5-07:00", 1136214245500000},
		{"2006-01-03T00:34:05+09:30", 1136214245000000},
		{"2024-02-29T23:59:59.999999Z", 1709251199999999},
	};
	static const char *const bad[] = {
		"",
		"2006-01-02",
		"2006-01-02T15:04:05",
		"2006-01-02 15:04:05Z",
		"2006-13-02T15:04:05Z",
		"2006-02-30T15:04:05Z",
		"2006-01-02T25:04:05Z",
		"2006-01-02T15:04:05.Z",
		"2006-01-02T15:04:05ZZ",
		"2006-01-02T15:04:05+0700",
		"2006-01-02T15:04:05.1234567891Z",
	};
	char buf[KHA_KUBE_MICROTIME_SIZE];
	int64_t us;

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(ok); i++) {
		if (kha_kube_time_parse(ok[i].in, &us) != 0 || us != ok[i].us)
			fail_msg("%s: got %lld", ok[i].in, (long long)us);
	}
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		if (kha_kube_time_parse(bad[i], &us) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	}
	assert_string_equal(kha_kube_microtime_format(buf, sizeof(buf), 1136214245000000),
			    "2006-01-02T15:04:05.000000Z");
	assert_string_equal(kha_kube_microtime_format(buf, sizeof(buf), 1709251199999999),
			    "2024-02-29T23:59:59.999999Z");
	assert_int_equal(strlen(buf), KHA_KUBE_MICROTIME_SIZE - 1);
	assert_string_equal(kha_kube_microtime_format(buf, sizeof(buf), -1),
			    "1969-12-31T23:59:59.999999Z");
	for (int64_t v = 1; v < (int64_t)4e15; v = v * 7 + 13) {
		kha_kube_microtime_format(buf, sizeof(buf), v);
		assert_int_equal(kha_kube_time_parse(buf, &us), 0);
		assert_int_equal(us, v);
	}
}

static void test_lease_decode_encode(void **state)
{
	const char *json =
		"{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\",\"metadata\":{"
		"\"name\":\"kube-scheduler\",\"namespace\":\"kube-system\",\"uid\":"
		"\"0b9c2f44-0000-4000-8000-000000000002\",\"resourceVersion\":\"98765\","
		"\"creationTimestamp\":\"2024-05-01T10:00:00Z\"},\"spec\":{\"holderIdentity\":"
		"\"master-1_4f1c8a2e-7d0b-4e9a-9d55-2c1f7f0e6a11\",\"leaseDurationSeconds\":15,"
		"\"acquireTime\":\"2024-05-01T10:00:00.000000Z\",\"renewTime\":"
		"\"2024-05-01T10:05:02.123456Z\",\"leaseTransitions\":3}}";
	struct kha_kube_lease l, back;
	struct kha_diag d = {};
	char *text;

	(void)state;
	assert_int_equal(kha_kube_lease_decode(json, strlen(json), &l, &d), 0);
	assert_string_equal(l.name, "kube-scheduler");
	assert_string_equal(l.namespace, "kube-system");
	assert_string_equal(l.resource_version, "98765");
	assert_string_equal(l.holder_identity, "master-1_4f1c8a2e-7d0b-4e9a-9d55-2c1f7f0e6a11");
	assert_int_equal(l.lease_duration_s, 15);
	assert_int_equal(l.acquire_time_us, 1714557600000000);
	assert_int_equal(l.renew_time_us, 1714557902123456);
	assert_int_equal(l.lease_transitions, 3);

	text = kha_kube_lease_encode(&l);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"renewTime\":\"2024-05-01T10:05:02.123456Z\""));
	assert_non_null(strstr(text, "\"acquireTime\":\"2024-05-01T10:00:00.000000Z\""));
	assert_non_null(strstr(text, "\"resourceVersion\":\"98765\""));
	assert_non_null(strstr(text, "\"apiVersion\":\"coordination.k8s.io/v1\""));
	assert_int_equal(kha_kube_lease_decode(text, strlen(text), &back, &d), 0);
	assert_memory_equal(&back, &l, sizeof(l));
	free(text);

	/* a released lease: empty holder written out, unset fields left out */
	memset(&l, 0, sizeof(l));
	snprintf(l.name, sizeof(l.name), "x");
	text = kha_kube_lease_encode(&l);
	assert_non_null(strstr(text, "\"holderIdentity\":\"\""));
	assert_null(strstr(text, "renewTime"));
	assert_null(strstr(text, "resourceVersion"));
	free(text);

	/* a lease with no spec at all decodes as nobody holding it */
	text = "{\"metadata\":{\"name\":\"y\"}}";
	assert_int_equal(kha_kube_lease_decode(text, strlen(text), &l, &d), 0);
	assert_string_equal(l.holder_identity, "");
	assert_int_equal(l.renew_time_us, 0);
}

static void test_lease_decode_rejects_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"renewTime\":\"yesterday\"}}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"leaseDurationSeconds\":\"15\"}}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"leaseDurationSeconds\":-1}}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"holderIdentity\":5}}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":[]}",
		"{\"metadata\":{}}",
		"{\"spec\":{}}",
		"{\"metadata\":{\"name\":\"x\"",
	};
	char big[600];
	struct kha_kube_lease l;
	struct kha_diag d = {};

	(void)state;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(bad); i++) {
		if (kha_kube_lease_decode(bad[i], strlen(bad[i]), &l, &d) != -EBADMSG)
			fail_msg("case %zu accepted", i);
	}
	/* a holder longer than the field is refused, not truncated */
	snprintf(big, sizeof(big),
		 "{\"metadata\":{\"name\":\"x\"},\"spec\":{\"holderIdentity\":\"%0300d\"}}", 0);
	assert_int_equal(kha_kube_lease_decode(big, strlen(big), &l, &d), -EBADMSG);
	assert_non_null(strstr(d.msg, "holderIdentity"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kubeconfig_current_context_and_inline_data),
		cmocka_unit_test(test_kubeconfig_relative_paths_and_token_file),
		cmocka_unit_test(test_kubeconfig_errors_name_file_and_field),
		cmocka_unit_test(test_kubeconfig_load_order),
		cmocka_unit_test(test_kubeconfig_client_server_override),
		cmocka_unit_test(test_base64_through_evp),
		cmocka_unit_test(test_status_decode_and_errno),
		cmocka_unit_test(test_watch_event_decode),
		cmocka_unit_test(test_slice_list_decode),
		cmocka_unit_test(test_slice_decode_rejects_malformed),
		cmocka_unit_test(test_merge_across_slices),
		cmocka_unit_test(test_backoff_capped_and_jittered),
		cmocka_unit_test(test_microtime_format_and_parse),
		cmocka_unit_test(test_lease_decode_encode),
		cmocka_unit_test(test_lease_decode_rejects_malformed),
	};

	return cmocka_run_group_tests_name("kube", tests, make_pki, remove_pki);
}
