// SPDX-License-Identifier: MIT
/* TLS contexts of servers and the identity of their clients (see include/kha/net.h). */
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kha/net.h"
#include "kha/banned.h"

static int fail(SSL_CTX *ctx, struct kha_diag *d, const char *flag, const char *file,
		const char *what)
{
	char e[200] = "";

	ERR_error_string_n(ERR_get_error(), e, sizeof(e));
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return kha_diag_set(d, EINVAL, "%s %s: %s (%s)", flag, file, what, e);
}

int kha_httpd_tls_ctx_new(const struct kha_httpd_tls_config *cfg, SSL_CTX **ret, struct kha_diag *d)
{
	const char *cert_flag = cfg->cert_flag ? cfg->cert_flag : "certificate";
	const char *key_flag = cfg->key_flag ? cfg->key_flag : "key";
	const char *ca_flag = cfg->client_ca_flag ? cfg->client_ca_flag : "client CA";
	SSL_CTX *ctx;

	if (!cfg->cert || !cfg->key)
		return kha_diag_set(d, EINVAL, "%s and %s go together", cert_flag, key_flag);
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return kha_diag_set(d, ENOMEM, "out of memory");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* non-blocking servers retry the same write with a moved buffer after a partial send */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1)
		return fail(ctx, d, cert_flag, cfg->cert, "not a usable certificate");
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		return fail(ctx, d, key_flag, cfg->key, "not the private key of the certificate");
	if (cfg->client_ca) {
		STACK_OF(X509_NAME) * names;

		if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca, NULL) != 1)
			return fail(ctx, d, ca_flag, cfg->client_ca, "not a CA bundle");
		/* tell clients which CA we take (curl and Go pick their certificate by it) */
		names = SSL_load_client_CA_file(cfg->client_ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	ERR_clear_error();
	*ret = ctx;
	return 0;
}

/* Appends name (len bytes, from a certificate) unless it is too long or not printable. */
static void add_name(struct kha_httpd_tls_peer *p, const unsigned char *name, int len)
{
	if (len <= 0 || len >= KHA_HTTPD_TLS_PEER_NAME_MAX || p->n >= KHA_HTTPD_TLS_PEER_NAMES)
		return;
	for (int i = 0; i < len; i++)
		if (name[i] < 0x21 || name[i] == 0x7f)
			return;
	memcpy(p->names[p->n], name, (size_t)len);
	p->names[p->n][len] = '\0';
	p->n++;
}

void kha_httpd_tls_peer_get(SSL *ssl, struct kha_httpd_tls_peer *ret)
{
	X509 *cert;
	X509_NAME *subject;
	GENERAL_NAMES *sans;
	int i;

	memset(ret, 0, sizeof(*ret));
	if (!ssl)
		return;
	cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return;
	if (SSL_get_verify_result(ssl) != X509_V_OK) {
		X509_free(cert);
		return;
	}
	ret->verified = true;
	subject = X509_get_subject_name(cert);
	i = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
	if (i >= 0) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
		unsigned char *utf8 = NULL;
		int len = cn ? ASN1_STRING_to_UTF8(&utf8, cn) : -1;

		if (len > 0)
			add_name(ret, utf8, len);
		OPENSSL_free(utf8);
	}
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS)
			add_name(ret, ASN1_STRING_get0_data(g->d.dNSName),
				 ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(sans);
	X509_free(cert);
}

bool kha_httpd_tls_peer_has_name(const struct kha_httpd_tls_peer *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			return true;
	return false;
}
