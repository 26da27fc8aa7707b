/* SPDX-License-Identifier: MIT */
/*
 * Server-side sockets and TLS: the one listening-socket helper (the admin HTTP server, the proxy's
 * listeners and kha lock serve all open theirs here) and the TLS context of a server, with
 * optional verification of client certificates. They belong to the server side of lib/net and
 * carry its prefix, kha_httpd_ (lib/net exports three: kha_http_, kha_httpd_, kha_json_).
 *
 * The HTTP client (libcurl) is kha/http.h; the admin HTTP server is kha/httpd.h.
 */
#ifndef KHA_NET_H
#define KHA_NET_H

#include <sys/socket.h>

#include "kha/common.h"
#include "kha/diag.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct ssl_st;	   /* OpenSSL's SSL */

/* kha_httpd_listen() flags */
#define KHA_HTTPD_LISTEN_REUSEPORT (1u << 0) /* SO_REUSEPORT: one listener per worker thread */
/* resolve a host name ("localhost:3333"), first result */
#define KHA_HTTPD_LISTEN_RESOLVE (1u << 1)

/*
 * Opens a non-blocking, close-on-exec TCP listener on addr ("127.0.0.1:9443", "[::1]:0",
 * "0.0.0.0:3333"; a host name only with KHA_HTTPD_LISTEN_RESOLVE), with SO_REUSEADDR and the given
 * backlog. Returns the descriptor (the caller owns it), or -EINVAL when addr is not host:port,
 * or the errno of socket/bind/listen (-EADDRINUSE, -EACCES ...). d says which, naming addr; the
 * caller prefixes the flag ("--metrics-addr: ...").
 */
int kha_httpd_listen(const char *addr, int backlog, unsigned flags, struct kha_diag *d) KHA_WUR;

/* The local port of a socket (0 when unknown). */
uint16_t kha_httpd_socket_port(int fd);

/* Whether a listener is bound to a loopback address only (127.0.0.0/8, ::1, ::ffff:127.x). */
bool kha_httpd_socket_is_loopback(int fd);

/* ---- TLS for servers ---------------------------------------------------------------------- */

struct kha_httpd_tls_config {
	const char *cert;      /* PEM certificate chain; required */
	const char *key;       /* its private key, PEM; required */
	const char *client_ca; /* PEM CA bundle: clients must present a certificate it signed;
				* NULL: no client certificates are asked for */
	/* the flag names to use in messages ("--serve-cert"); NULL: "certificate", ... */
	const char *cert_flag, *key_flag, *client_ca_flag;
};

/*
 * Builds a server TLS context: TLS 1.2 or newer, the certificate and its key (checked to match),
 * and with client_ca, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT against that bundle.
 * Returns 0 and the context in *ret (the caller frees it with SSL_CTX_free), or -EINVAL with
 * "--serve-cert FILE: not a usable certificate (...)" (and the like) in d.
 */
int kha_httpd_tls_ctx_new(const struct kha_httpd_tls_config *cfg, struct ssl_ctx_st **ret,
			  struct kha_diag *d) KHA_WUR;

#define KHA_HTTPD_TLS_PEER_NAME_MAX 256
#define KHA_HTTPD_TLS_PEER_NAMES    16
/* The names a verified client certificate carries: its subject CN first, then its DNS SANs. */
struct kha_httpd_tls_peer {
	bool verified; /* a certificate was presented and verified */
	size_t n;
	char names[KHA_HTTPD_TLS_PEER_NAMES][KHA_HTTPD_TLS_PEER_NAME_MAX];
};

/*
 * Fills *ret with the names of the peer's certificate when the handshake verified one (names
 * that are too long or hold a NUL or a control byte are skipped). Otherwise ret->verified is
 * false and ret->n is 0.
 */
void kha_httpd_tls_peer_get(struct ssl_st *ssl, struct kha_httpd_tls_peer *ret);
/* Whether name is one of the peer's names. */
bool kha_httpd_tls_peer_has_name(const struct kha_httpd_tls_peer *p, const char *name);

#endif
