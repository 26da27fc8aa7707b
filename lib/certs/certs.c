// SPDX-License-Identifier: MIT
/* A CA and the leaf certificates it signs, on OpenSSL 3 (see include/kha/certs.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kha/certs.h"
#include "kha/file.h"
#include "kha/banned.h"

#define MAX_PEM_SIZE (1 << 20)
/* Certificates start this long ago, so a peer whose clock is a little behind accepts them. */
#define BACKDATE_SEC ((int64_t)5 * 60)

KHA_DEFINE_CLEANUP(X509 *, X509_free)
KHA_DEFINE_CLEANUP(EVP_PKEY *, EVP_PKEY_free)
KHA_DEFINE_CLEANUP(BIO *, BIO_free_all)
KHA_DEFINE_CLEANUP(GENERAL_NAMES *, GENERAL_NAMES_free)
KHA_DEFINE_CLEANUP(EXTENDED_KEY_USAGE *, EXTENDED_KEY_USAGE_free)
KHA_DEFINE_CLEANUP(BIGNUM *, BN_free)
KHA_DEFINE_CLEANUP(X509_STORE *, X509_STORE_free)
KHA_DEFINE_CLEANUP(X509_STORE_CTX *, X509_STORE_CTX_free)

/* Fills diag with "what: <OpenSSL's reason>" and returns -EPROTO. */
static int ssl_fail(struct kha_diag *d, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256] = "unknown OpenSSL error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return kha_diag_set(d, EPROTO, "%s: %s", what, buf);
}

void kha_cert_release(struct kha_cert *c)
{
	if (!c)
		return;
	X509_free(c->x509);
	EVP_PKEY_free(c->key);
	c->x509 = NULL;
	c->key = NULL;
}

static EVP_PKEY *new_key(void)
{
	return EVP_EC_gen("P-256");
}

static int set_random_serial(X509 *x)
{
	unsigned char bytes[16];
	kha_auto(BN_freep) BIGNUM *bn = NULL;

	if (RAND_bytes(bytes, sizeof(bytes)) != 1)
		return -EPROTO;
	bytes[0] &= 0x7f; /* positive */
	bytes[0] |= 0x40; /* and always 16 bytes long */
	bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		return -EPROTO;
	return 0;
}

static int set_cn(X509_NAME *name, const char *cn)
{
	return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					  -1, 0) == 1
		       ? 0
		       : -EPROTO;
}

/* Adds one extension written in OpenSSL's configuration syntax (fixed strings only). */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (!ext)
		return -EPROTO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -EPROTO;
}

/* A new certificate skeleton: version 3, random serial, subject CN, validity, public key. */
static int new_cert(const char *cn, int64_t not_before, int64_t not_after, EVP_PKEY *key,
		    X509 **ret, struct kha_diag *d)
{
	kha_auto(X509_freep) X509 *x = X509_new();

	if (!x)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (X509_set_version(x, X509_VERSION_3) != 1 || set_random_serial(x) < 0 ||
	    set_cn(X509_get_subject_name(x), cn) < 0 ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) ||
	    X509_set_pubkey(x, key) != 1)
		return ssl_fail(d, "building the certificate");
	*ret = KHA_TAKE_PTR(x);
	return 0;
}

int kha_certs_create_ca(const char *cn, unsigned days, struct kha_cert *ret, struct kha_diag *d)
{
	kha_auto(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	kha_auto(X509_freep) X509 *x = NULL;
	int64_t now = (int64_t)time(NULL);
	X509V3_CTX ctx;
	int r;

	if (!cn || !*cn)
		return kha_diag_set(d, EINVAL, "the CA needs a common name");
	if (days == 0)
		return kha_diag_set(d, EINVAL, "validity must be at least 1 day");
	key = new_key();
	if (!key)
		return ssl_fail(d, "generating the CA key");
	r = new_cert(cn, now - BACKDATE_SEC, now + (int64_t)days * 86400, key, &x, d);
	if (r < 0)
		return r;
	if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1)
		return ssl_fail(d, "building the CA");
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0)
		return ssl_fail(d, "adding the CA extensions");
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		return ssl_fail(d, "self-signing the CA");
	ret->x509 = KHA_TAKE_PTR(x);
	ret->key = KHA_TAKE_PTR(key);
	return 0;
}

static bool valid_dns_name(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	if (s[0] == '*') {
		if (s[1] != '.' || !s[2])
			return false;
		s += 2;
	}
	for (const char *p = s; *p; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
		if (*p == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* Parses one SAN ("IP:x", "DNS:x" or bare) into a GENERAL_NAME. */
static int parse_san(const char *san, GENERAL_NAME **ret, struct kha_diag *d)
{
	unsigned char addr[16];
	const char *v = san;
	int want_ip = -1; /* -1: guess */
	GENERAL_NAME *gn;

	if (strncasecmp(san, "IP:", 3) == 0) {
		want_ip = 1;
		v = san + 3;
	} else if (strncasecmp(san, "DNS:", 4) == 0) {
		want_ip = 0;
		v = san + 4;
	}
	if (want_ip != 0 &&
	    (inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1)) {
		gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD, v, 0);
	} else if (want_ip == 1) {
		return kha_diag_set(d, EINVAL, "SAN '%s': not an IP address", san);
	} else if (valid_dns_name(v)) {
		gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_DNS, v, 0);
	} else {
		return kha_diag_set(d, EINVAL,
				    "SAN '%s': neither an IP address nor a valid DNS name", san);
	}
	if (!gn)
		return ssl_fail(d, "encoding a SAN");
	*ret = gn;
	return 0;
}

static int add_sans(X509 *x, const struct kha_cert_request *req, struct kha_diag *d)
{
	kha_auto(GENERAL_NAMES_freep) GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();

	if (!gens)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (size_t i = 0; i < req->n_sans; i++) {
		GENERAL_NAME *gn = NULL;
		int r = parse_san(req->sans[i], &gn, d);

		if (r < 0)
			return r;
		if (!sk_GENERAL_NAME_push(gens, gn)) {
			GENERAL_NAME_free(gn);
			return kha_diag_set(d, ENOMEM, "out of memory");
		}
	}
	if (req->n_sans && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0) != 1)
		return ssl_fail(d, "adding the SANs");
	return 0;
}

static int add_eku(X509 *x, unsigned usage, struct kha_diag *d)
{
	kha_auto(EXTENDED_KEY_USAGE_freep) EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();

	if (!eku)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if ((usage & KHA_CERT_SERVER) && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)))
		return kha_diag_set(d, ENOMEM, "out of memory");
	if ((usage & KHA_CERT_CLIENT) && !sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)))
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, 0) != 1)
		return ssl_fail(d, "adding the extended key usage");
	return 0;
}

static int asn1_time_to_epoch(const ASN1_TIME *t, int64_t *ret)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -EBADMSG;
	*ret = (int64_t)timegm(&tm);
	return 0;
}

int kha_certs_issue(const struct kha_cert *ca, const struct kha_cert_request *req,
		    struct kha_cert *ret, struct kha_diag *d)
{
	kha_auto(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	kha_auto(X509_freep) X509 *x = NULL;
	int64_t now = (int64_t)time(NULL), not_after, ca_not_after;
	X509V3_CTX ctx;
	int r;

	if (!ca || !ca->x509 || !ca->key)
		return kha_diag_set(d, EINVAL, "issuing needs the CA certificate and its key");
	if (!req->cn || !*req->cn)
		return kha_diag_set(d, EINVAL, "the certificate needs a common name");
	if (!(req->usage & (KHA_CERT_SERVER | KHA_CERT_CLIENT)))
		return kha_diag_set(d, EINVAL, "%s: no usage given (server, client or both)",
				    req->cn);
	if ((req->usage & KHA_CERT_SERVER) && req->n_sans == 0)
		return kha_diag_set(
			d, EINVAL,
			"%s: a server certificate needs at least one SAN (the addresses "
			"clients dial)",
			req->cn);
	if (req->days == 0)
		return kha_diag_set(d, EINVAL, "validity must be at least 1 day");
	if (X509_check_ca(ca->x509) <= 0)
		return kha_diag_set(d, EINVAL, "the signing certificate is not a CA");
	if (asn1_time_to_epoch(X509_get0_notAfter(ca->x509), &ca_not_after) < 0)
		return kha_diag_set(d, EBADMSG, "the CA's expiry date cannot be read");
	if (ca_not_after <= now)
		return kha_diag_set(d, EINVAL, "the CA has expired");
	not_after = KHA_MIN(now + (int64_t)req->days * 86400, ca_not_after);

	key = new_key();
	if (!key)
		return ssl_fail(d, "generating a key");
	r = new_cert(req->cn, now - BACKDATE_SEC, not_after, key, &x, d);
	if (r < 0)
		return r;
	if (X509_set_issuer_name(x, X509_get_subject_name(ca->x509)) != 1)
		return ssl_fail(d, "setting the issuer");
	X509V3_set_ctx(&ctx, ca->x509, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0)
		return ssl_fail(d, "adding the extensions");
	r = add_eku(x, req->usage, d);
	if (r < 0)
		return r;
	r = add_sans(x, req, d);
	if (r < 0)
		return r;
	if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
		return ssl_fail(d, "signing the certificate");
	ret->x509 = KHA_TAKE_PTR(x);
	ret->key = KHA_TAKE_PTR(key);
	return 0;
}

/* Writes what a PEM writer puts into a memory BIO to path, atomically. */
static int save_bio(BIO *bio, const char *path, mode_t mode, struct kha_diag *d)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);

	if (len <= 0)
		return kha_diag_set(d, EPROTO, "%s: nothing to write", path);
	return kha_file_write_atomic(path, data, (size_t)len, mode, d);
}

int kha_certs_save(const struct kha_cert *c, const char *cert_path, const char *key_path,
		   struct kha_diag *d)
{
	int r;

	if (!c->x509)
		return kha_diag_set(d, EINVAL, "no certificate to save");
	if (key_path) {
		kha_auto(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());

		if (!c->key)
			return kha_diag_set(d, EINVAL, "%s: no key to save", key_path);
		if (!bio || PEM_write_bio_PrivateKey(bio, c->key, NULL, NULL, 0, NULL, NULL) != 1)
			return ssl_fail(d, "encoding the key");
		r = save_bio(bio, key_path, 0600, d);
		if (r < 0)
			return r;
	}
	{
		kha_auto(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());

		if (!bio || PEM_write_bio_X509(bio, c->x509) != 1)
			return ssl_fail(d, "encoding the certificate");
		return save_bio(bio, cert_path, 0644, d);
	}
}

/* Reads a PEM file into a memory BIO. */
static int load_bio(const char *path, BIO **ret, struct kha_diag *d)
{
	kha_autofree char *buf = NULL;
	size_t len = 0;
	BIO *bio;
	int r;

	r = kha_file_read_all(path, MAX_PEM_SIZE, &buf, &len, d);
	if (r < 0)
		return r;
	bio = BIO_new(BIO_s_mem());
	if (!bio || BIO_write(bio, buf, (int)len) != (int)len) {
		BIO_free(bio);
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	OPENSSL_cleanse(buf, len);
	*ret = bio;
	return 0;
}

int kha_certs_load(const char *cert_path, const char *key_path, struct kha_cert *ret,
		   struct kha_diag *d)
{
	kha_auto(X509_freep) X509 *x = NULL;
	kha_auto(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	int r;

	{
		kha_auto(BIO_free_allp) BIO *bio = NULL;

		r = load_bio(cert_path, &bio, d);
		if (r < 0)
			return r;
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x) {
			ERR_clear_error();
			return kha_diag_set(d, EBADMSG, "%s: not a PEM certificate", cert_path);
		}
	}
	if (key_path) {
		kha_auto(BIO_free_allp) BIO *bio = NULL;

		r = load_bio(key_path, &bio, d);
		if (r < 0)
			return r;
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		if (!key) {
			ERR_clear_error();
			return kha_diag_set(d, EBADMSG, "%s: not an unencrypted PEM private key",
					    key_path);
		}
		if (X509_check_private_key(x, key) != 1) {
			ERR_clear_error();
			return kha_diag_set(d, EBADMSG, "%s: the key does not belong to %s",
					    key_path, cert_path);
		}
	}
	ret->x509 = KHA_TAKE_PTR(x);
	ret->key = KHA_TAKE_PTR(key);
	return 0;
}

static int ca_paths(const char *dir, char **ret_cert, char **ret_key)
{
	if (asprintf(ret_cert, "%s/%s", dir, KHA_CERTS_CA_CERT) < 0)
		return -ENOMEM;
	if (asprintf(ret_key, "%s/%s", dir, KHA_CERTS_CA_KEY) < 0) {
		free(*ret_cert);
		return -ENOMEM;
	}
	return 0;
}

int kha_certs_save_ca(const struct kha_cert *ca, const char *dir, struct kha_diag *d)
{
	kha_autofree char *cert = NULL, *key = NULL;

	if (ca_paths(dir, &cert, &key) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	return kha_certs_save(ca, cert, key, d);
}

int kha_certs_load_ca(const char *dir, struct kha_cert *ret, struct kha_diag *d)
{
	kha_autofree char *cert = NULL, *key = NULL;
	struct kha_cert ca = {0};
	int r;

	if (ca_paths(dir, &cert, &key) < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_certs_load(cert, key, &ca, d);
	if (r < 0)
		return r;
	if (X509_check_ca(ca.x509) <= 0) {
		kha_cert_release(&ca);
		return kha_diag_set(d, EBADMSG, "%s: not a CA certificate", cert);
	}
	*ret = ca;
	return 0;
}

int kha_certs_verify(const struct kha_cert *ca, X509 *cert, struct kha_diag *d)
{
	kha_auto(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
	kha_auto(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int err;

	if (!store || !ctx)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (X509_STORE_add_cert(store, ca->x509) != 1 ||
	    X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
		return ssl_fail(d, "preparing the verification");
	if (X509_verify_cert(ctx) == 1)
		return 0;
	err = X509_STORE_CTX_get_error(ctx);
	ERR_clear_error();
	return kha_diag_set(d, EBADMSG, "%s", X509_verify_cert_error_string(err));
}

static void name_to_string(const X509_NAME *name, char *buf, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	buf[0] = '\0';
	if (!bio)
		return;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		len = BIO_get_mem_data(bio, &data);
		if (len > 0)
			snprintf(buf, size, "%.*s", (int)len, data);
	}
	BIO_free(bio);
}

static int push_string(char ***arr, size_t *n, const char *s)
{
	if (KHA_RESIZE(*arr, *n + 1) < 0)
		return -ENOMEM;
	(*arr)[*n] = strdup(s);
	if (!(*arr)[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int collect_sans(X509 *cert, struct kha_cert_info *info)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int r = 0;

	if (!gens)
		return 0;
	for (int i = 0; r == 0 && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		char text[INET6_ADDRSTRLEN];

		if (gn->type == GEN_DNS) {
			const unsigned char *s = ASN1_STRING_get0_data(gn->d.dNSName);
			int len = ASN1_STRING_length(gn->d.dNSName);
			kha_autofree char *copy = strndup((const char *)s, (size_t)len);

			r = copy ? push_string(&info->dns, &info->n_dns, copy) : -ENOMEM;
		} else if (gn->type == GEN_IPADD) {
			const unsigned char *a = ASN1_STRING_get0_data(gn->d.iPAddress);
			int len = ASN1_STRING_length(gn->d.iPAddress);
			int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;

			if (af && inet_ntop(af, a, text, sizeof(text)))
				r = push_string(&info->ips, &info->n_ips, text);
		}
	}
	GENERAL_NAMES_free(gens);
	return r;
}

int kha_certs_inspect(X509 *cert, struct kha_cert_info *ret, struct kha_diag *d)
{
	struct kha_cert_info info = {0};
	kha_auto(BN_freep) BIGNUM *bn = NULL;
	uint32_t flags, xku;
	char *hex;
	int r;

	name_to_string(X509_get_subject_name(cert), info.subject, sizeof(info.subject));
	name_to_string(X509_get_issuer_name(cert), info.issuer, sizeof(info.issuer));
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	if (hex) {
		snprintf(info.serial, sizeof(info.serial), "%s", hex);
		OPENSSL_free(hex);
	}
	if (asn1_time_to_epoch(X509_get0_notBefore(cert), &info.not_before) < 0 ||
	    asn1_time_to_epoch(X509_get0_notAfter(cert), &info.not_after) < 0)
		return kha_diag_set(d, EBADMSG, "the validity dates cannot be read");
	/* computes and caches the extension flags, -1: no particular purpose */
	flags = X509_get_extension_flags(cert);
	if (flags & EXFLAG_INVALID)
		return kha_diag_set(d, EBADMSG, "the certificate has invalid extensions");
	info.is_ca = X509_check_ca(cert) > 0;
	info.self_signed = (flags & EXFLAG_SS) != 0;
	xku = X509_get_extended_key_usage(cert);
	if ((flags & EXFLAG_XKUSAGE) && (xku & XKU_SSL_SERVER))
		info.usage |= KHA_CERT_SERVER;
	if ((flags & EXFLAG_XKUSAGE) && (xku & XKU_SSL_CLIENT))
		info.usage |= KHA_CERT_CLIENT;
	r = collect_sans(cert, &info);
	if (r < 0) {
		kha_cert_info_release(&info);
		return kha_diag_set(d, r, "out of memory");
	}
	*ret = info;
	return 0;
}

void kha_cert_info_release(struct kha_cert_info *info)
{
	for (size_t i = 0; i < info->n_dns; i++)
		free(info->dns[i]);
	for (size_t i = 0; i < info->n_ips; i++)
		free(info->ips[i]);
	free(info->dns);
	free(info->ips);
	info->dns = info->ips = NULL;
	info->n_dns = info->n_ips = 0;
}

/* Parses an IP address in any textual form; returns its length (4 or 16) or 0. */
static int parse_ip(const char *s, unsigned char *out)
{
	if (inet_pton(AF_INET, s, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, s, out) == 1)
		return 16;
	return 0;
}

static bool dns_matches(const char *pattern, const char *name)
{
	const char *dot;

	if (strcasecmp(pattern, name) == 0)
		return true;
	if (strncmp(pattern, "*.", 2) != 0)
		return false;
	dot = strchr(name, '.');
	return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

bool kha_cert_info_has_san(const struct kha_cert_info *info, const char *addr)
{
	unsigned char want[16], have[16];
	int wlen = parse_ip(addr, want);

	if (wlen) {
		for (size_t i = 0; i < info->n_ips; i++)
			if (parse_ip(info->ips[i], have) == wlen && memcmp(want, have, wlen) == 0)
				return true;
		return false;
	}
	for (size_t i = 0; i < info->n_dns; i++)
		if (dns_matches(info->dns[i], addr))
			return true;
	return false;
}

/* Copies path to bak (same mode) unless path is absent; bak must not exist. */
static int backup_one(const char *path, const char *stamp, char *bak, size_t size,
		      struct kha_diag *d)
{
	kha_autofree char *data = NULL;
	struct stat st;
	size_t len;
	int r;

	bak[0] = '\0';
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	}
	snprintf(bak, size, "%s.bak-%s", path, stamp);
	if (access(bak, F_OK) == 0) {
		r = kha_diag_set(d, EEXIST, "%s already exists: not replacing a backup", bak);
		bak[0] = '\0';
		return r;
	}
	r = kha_file_read_all(path, 16 * 1024 * 1024, &data, &len, d);
	if (r == 0)
		r = kha_file_write_atomic(bak, data, len, st.st_mode & 07777, d);
	if (r < 0)
		bak[0] = '\0';
	return r;
}

int kha_certs_backup_pair(const char *cert_path, const char *key_path, char *ret_cert_bak,
			  char *ret_key_bak, size_t size, struct kha_diag *d)
{
	time_t now = time(NULL);
	char stamp[32];
	struct tm tm;
	int r;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	ret_key_bak[0] = '\0';
	r = backup_one(cert_path, stamp, ret_cert_bak, size, d);
	if (r == 0 && key_path)
		r = backup_one(key_path, stamp, ret_key_bak, size, d);
	return r;
}
