/* SPDX-License-Identifier: MIT */
/*
 * A small PKI for the control plane, on OpenSSL 3: a CA (ECDSA P-256, self-signed, CA:TRUE,
 * keyCertSign) and leaf certificates it signs, with subject alternative names (DNS names and IP
 * addresses), extended key usage serverAuth and/or clientAuth, a validity period and a random
 * 128-bit serial. etcd members need BOTH usages: with --client-cert-auth, the gateway inside
 * etcd dials the member's own gRPC port with the member's server certificate.
 *
 * Files: certificates are PEM written 0644, private keys PEM (PKCS#8, unencrypted) written
 * 0600, both atomically (include/kha/file.h). A CA directory holds ca.crt and ca.key.
 *
 * Nothing here prints or exits; errors come back as negative errnos with a diag (-EINVAL for a
 * bad request, -EBADMSG for a file that is not what it should be, -EPROTO for an OpenSSL
 * failure, file errors as they are).
 */
#ifndef KHA_CERTS_H
#define KHA_CERTS_H

#include <openssl/types.h>

#include "kha/diag.h"

#define KHA_CERTS_CA_CERT "ca.crt"
#define KHA_CERTS_CA_KEY  "ca.key"

enum kha_cert_usage {
	KHA_CERT_SERVER = 1 << 0, /* extendedKeyUsage serverAuth */
	KHA_CERT_CLIENT = 1 << 1, /* extendedKeyUsage clientAuth */
};

/* A certificate and (when known) its private key. Owns both; release with kha_cert_release. */
struct kha_cert {
	X509 *x509;
	EVP_PKEY *key; /* NULL when only the certificate was loaded */
};

void kha_cert_release(struct kha_cert *c);

/*
 * Creates a self-signed CA: new P-256 key, CN cn, valid from 5 minutes ago (clock skew between
 * machines) for days days. Returns 0 and fills *ret, or a negative errno.
 */
int kha_certs_create_ca(const char *cn, unsigned days, struct kha_cert *ret,
			struct kha_diag *d) KHA_WUR;

struct kha_cert_request {
	const char *cn;		 /* subject common name, required */
	const char *const *sans; /* "127.0.0.1", "::1", "localhost", or prefixed "IP:x" / "DNS:x" */
	size_t n_sans;
	unsigned usage; /* KHA_CERT_SERVER and/or KHA_CERT_CLIENT, at least one */
	unsigned days;	/* validity; capped at the CA's own expiry */
};

/*
 * Issues a leaf certificate signed by ca (which must hold its key): new P-256 key, CA:FALSE,
 * keyUsage digitalSignature, the requested EKUs and SANs. A SAN that is neither an IP address
 * nor a valid DNS name (letters, digits, '-', '.', a leading "*." wildcard) is -EINVAL, as is a
 * server certificate without SANs. Returns 0 and fills *ret, or a negative errno.
 */
int kha_certs_issue(const struct kha_cert *ca, const struct kha_cert_request *req,
		    struct kha_cert *ret, struct kha_diag *d) KHA_WUR;

/*
 * Before a renewal in place: copies cert_path and key_path, where they exist, to
 * "<path>.bak-<UTC time, to the second>" with their modes (the key stays 0600), each written
 * atomically; an existing backup is never replaced (-EEXIST). The backups' paths go to
 * ret_cert_bak and ret_key_bak (size bytes each; "" for a file that did not exist). Returns 0 or
 * a negative errno, with nothing replaced yet either way.
 */
int kha_certs_backup_pair(const char *cert_path, const char *key_path, char *ret_cert_bak,
			  char *ret_key_bak, size_t size, struct kha_diag *d) KHA_WUR;

/*
 * Writes the certificate to cert_path (0644) and, when key_path is not NULL, the key to key_path
 * (0600), each atomically. Returns 0 or a negative errno.
 */
int kha_certs_save(const struct kha_cert *c, const char *cert_path, const char *key_path,
		   struct kha_diag *d) KHA_WUR;

/*
 * Loads a PEM certificate and, when key_path is not NULL, its private key, checking that they
 * belong together (-EBADMSG otherwise). Returns 0 and fills *ret, or a negative errno.
 */
int kha_certs_load(const char *cert_path, const char *key_path, struct kha_cert *ret,
		   struct kha_diag *d) KHA_WUR;

/* CA directory helpers: DIR/ca.crt + DIR/ca.key. */
int kha_certs_save_ca(const struct kha_cert *ca, const char *dir, struct kha_diag *d) KHA_WUR;
int kha_certs_load_ca(const char *dir, struct kha_cert *ret, struct kha_diag *d) KHA_WUR;

/*
 * Verifies that cert chains to ca (signature, validity period, CA constraints) at the current
 * time. Returns 0, or -EBADMSG with the reason in diag ("certificate has expired", ...).
 */
int kha_certs_verify(const struct kha_cert *ca, X509 *cert, struct kha_diag *d) KHA_WUR;

/* What a certificate says, in plain C. Owns its strings; release with kha_cert_info_release. */
struct kha_cert_info {
	char subject[256]; /* RFC 2253, e.g. "CN=m1" */
	char issuer[256];
	char serial[80];    /* hex */
	int64_t not_before; /* seconds since the epoch */
	int64_t not_after;
	bool is_ca;
	bool self_signed;
	unsigned usage; /* enum kha_cert_usage bits from extendedKeyUsage */
	char **dns;	/* DNS SANs */
	size_t n_dns;
	char **ips; /* IP SANs, canonical text ("127.0.0.1", "::1") */
	size_t n_ips;
};

int kha_certs_inspect(X509 *cert, struct kha_cert_info *ret, struct kha_diag *d) KHA_WUR;
void kha_cert_info_release(struct kha_cert_info *info);

/*
 * True when addr is among the SANs: an IP address (any textual form) against the IP SANs,
 * compared as binary addresses; anything else against the DNS SANs, case-insensitively, where
 * "*.example.com" covers exactly one more label. "localhost" never matches 127.0.0.1: a client
 * checks the name it dialled.
 */
bool kha_cert_info_has_san(const struct kha_cert_info *info, const char *addr);

/*
 * kha_cert_info_has_san() on the certificate itself: what kha audit asks of the certificate an
 * apiserver presents. False for an empty address or a certificate that cannot be read.
 */
bool kha_certs_has_san(X509 *cert, const char *addr);

/* t (seconds since the epoch) as "2026-11-27T05:40:00Z", in buf. */
const char *kha_certs_format_time(char *buf, size_t size, int64_t t);

/* ==== the verdict of kha certs check (check.c) ============================================== */

/* The same numbers as the exit codes 0, 1 and 2. */
enum kha_certs_verdict {
	KHA_CERTS_OK = 0,
	KHA_CERTS_DEGRADED = 1,
	KHA_CERTS_CRITICAL = 2,
};
const char *kha_certs_verdict_name(enum kha_certs_verdict v);

struct kha_certs_check_request {
	const char *const *sans; /* addresses clients dial: each must be in the SANs */
	size_t n_sans;
	unsigned warn_days;	   /* expiring within this many days is degraded */
	int64_t now;		   /* seconds since the epoch */
	const struct kha_cert *ca; /* NULL: the chain is not checked */
	const char *ca_name;	   /* how the problems name the CA (its file) */
};

struct kha_certs_problem {
	enum kha_certs_verdict level;
	bool missing_san; /* a SAN is missing (the fix: reissue with it) */
	char text[512];
};

/* Owns its arrays; release with kha_certs_check_release (a zeroed struct too). */
struct kha_certs_check_result {
	enum kha_certs_verdict verdict; /* the worst problem's level */
	bool *present;			/* [n_sans]: that SAN is there */
	struct kha_certs_problem *problems;
	size_t n_problems;
	int chain; /* 1 verified by the CA, 0 not, -1 not checked */
};

/*
 * The verdict on cert (info: its kha_certs_inspect()): every requested SAN present, valid at
 * now (critical when expired or not yet valid, degraded within warn_days of its end), and with
 * a CA, signed by it. Returns 0 with *ret filled, or -ENOMEM.
 */
int kha_certs_check(const struct kha_cert *cert, const struct kha_cert_info *info,
		    const struct kha_certs_check_request *req,
		    struct kha_certs_check_result *ret) KHA_WUR;
void kha_certs_check_release(struct kha_certs_check_result *r);

#endif
