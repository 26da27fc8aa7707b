// SPDX-License-Identifier: MIT
/*
 * The entry point's certificate: fetch what a TLS server presents (no verification: the audit
 * wants to see it, trusted or not) and check that it names the entry address.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kha/audit.h"
#include "kha/certs.h"
#include "kha/parse.h"
#include "kha/banned.h"

int kha_audit_split_hostport(const char *s, char *host, size_t host_size, uint16_t *ret_port)
{
	const char *colon, *h = s;
	size_t hlen;
	uint64_t port;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL; /* none, or a bare IPv6 address without brackets */
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= host_size)
		return -EINVAL;
	for (size_t i = 0; i < hlen; i++)
		if (h[i] == ' ' || h[i] == '/' || h[i] == '[' || h[i] == ']' ||
		    (unsigned char)h[i] < 0x20)
			return -EINVAL;
	if (kha_parse_u64(colon + 1, 1, 65535, &port) < 0)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (s[0] == '[') {
		unsigned char a[16];

		if (inet_pton(AF_INET6, host, a) != 1)
			return -EINVAL;
	}
	*ret_port = (uint16_t)port;
	return 0;
}

static bool is_ip(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* Whether a SAN can go on a command line as it is (no quoting needed). */
static bool plain_san(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-.:*", *s)))
			return false;
	return true;
}

int kha_audit_check_cert(const char *check, const char *addr, X509 *cert, const char *err,
			 const char *entry_host, struct kha_audit_report *r)
{
	bool is_entry = strcmp(check, "entry-san") == 0;
	struct kha_cert_info info = {};
	char finding[1024], fix[1024], content[4096], file[128], sans[2048] = "";
	size_t o = 0;
	int ret;

	if (!cert) {
		snprintf(finding, sizeof(finding), "cannot read the certificate %s presents: %s",
			 addr, err ? err : "no certificate");
		return kha_audit_add(
			r, check, addr, is_entry ? KHA_AUDIT_CRITICAL : KHA_AUDIT_WARNING, finding,
			is_entry ? "make the entry address serve the apiservers: a VIP "
				   "(kha vip), a load balancer or kha proxy"
				 : "check that the apiserver runs and listens there",
			NULL, NULL);
	}
	if (kha_certs_has_san(cert, entry_host)) {
		snprintf(finding, sizeof(finding),
			 "the certificate %s presents carries the entry %s in its SANs", addr,
			 entry_host);
		return kha_audit_add(r, check, addr, KHA_AUDIT_OK, finding, NULL, NULL, NULL);
	}
	/* the SANs it has, kept in the reissued certificate */
	if (kha_certs_inspect(cert, &info, NULL) == 0) {
		for (size_t i = 0; i < info.n_ips && o < sizeof(sans); i++)
			if (plain_san(info.ips[i]))
				o += (size_t)snprintf(sans + o, sizeof(sans) - o, " --san %s",
						      info.ips[i]);
		for (size_t i = 0; i < info.n_dns && o < sizeof(sans); i++)
			if (plain_san(info.dns[i]))
				o += (size_t)snprintf(sans + o, sizeof(sans) - o, " --san %s",
						      info.dns[i]);
		kha_cert_info_release(&info);
	}
	snprintf(finding, sizeof(finding),
		 "the certificate %s presents does not carry the entry %s in its SANs: clients "
		 "dialling the entry fail TLS verification%s",
		 addr, entry_host, is_entry ? "" : " when the entry sends them to this apiserver");
	snprintf(
		fix, sizeof(fix),
		"reissue it with the entry: kha certs issue --ca-dir /etc/kubernetes/pki --name "
		"apiserver%s --san %s --server --out-dir /etc/kubernetes/pki --renew, then restart "
		"kube-apiserver (kubeadm: apiServer.certSANs)",
		sans, entry_host);
	snprintf(content, sizeof(content),
		 "# The apiserver certificate behind %s lacks the entry %s.\n"
		 "# On each master, reissue it with the SANs it has plus the entry, then restart\n"
		 "# kube-apiserver. --renew copies the old pair to apiserver.{crt,key}.bak-TIME\n"
		 "# first; the new key is 0600 and each file is written atomically.\n"
		 "kha certs issue --ca-dir /etc/kubernetes/pki --name apiserver%s --san %s \\\n"
		 "    --server --out-dir /etc/kubernetes/pki --renew\n"
		 "kha certs check --cert /etc/kubernetes/pki/apiserver.crt --san %s\n"
		 "\n"
		 "# Or, with kubeadm: add the entry to the ClusterConfiguration\n"
		 "#   apiServer:\n"
		 "#     certSANs:\n"
		 "#     - \"%s\"\n"
		 "# then on each master:\n"
		 "#   mv /etc/kubernetes/pki/apiserver.{crt,key} /root/\n"
		 "#   kubeadm init phase certs apiserver --config kubeadm.yaml\n"
		 "# and restart kube-apiserver.\n",
		 addr, entry_host, sans, entry_host, entry_host, entry_host);
	snprintf(file, sizeof(file), "%s-%s.sh", check, addr);
	for (char *p = file; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			*p = '_';
	ret = kha_audit_add(r, check, addr, KHA_AUDIT_CRITICAL, finding, fix, file, content);
	return ret;
}

/* connect with a deadline; returns the fd or a negative errno */
static int connect_timeout(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	int fd, r, err = 0;
	socklen_t len = sizeof(err);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (r < 0 && errno != EINPROGRESS) {
		r = -errno;
		close(fd);
		return r;
	}
	if (r < 0) {
		pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
		do
			r = poll(&pfd, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			r = err ? -err : -errno;
			close(fd);
			return r;
		}
	}
	return fd;
}

int kha_audit_fetch_cert(const char *addr, const char *sni, uint64_t timeout_us, X509 **ret,
			 struct kha_diag *d)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[256], portstr[8];
	struct timeval tv;
	uint16_t port;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *cert;
	int fd = -1, r, gr;
	int timeout_ms = (int)KHA_MIN(timeout_us / 1000, 600000);

	if (kha_audit_split_hostport(addr, host, sizeof(host), &port) < 0)
		return kha_diag_set(d, EINVAL, "%s: not host:port", addr);
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_flags = is_ip(host) ? AI_NUMERICHOST : 0;
	gr = getaddrinfo(host, portstr, &hints, &res);
	if (gr != 0)
		return kha_diag_set(d, EHOSTUNREACH, "%s: cannot resolve %s: %s", addr, host,
				    gai_strerror(gr));
	/* every address of the name in turn ("localhost": ::1, then 127.0.0.1) */
	fd = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		fd = connect_timeout(ai, timeout_ms ? timeout_ms : 5000);
	freeaddrinfo(res);
	if (fd < 0)
		return kha_diag_set(d, -fd, "%s: connect: %s", addr, strerror(-fd));
	/* the handshake in blocking mode, bounded by socket timeouts */
	r = fcntl(fd, F_GETFL);
	if (r >= 0)
		kha_ignore(fcntl(fd, F_SETFL, r & ~O_NONBLOCK));
	tv.tv_sec = (timeout_ms ? timeout_ms : 5000) / 1000;
	tv.tv_usec = ((timeout_ms ? timeout_ms : 5000) % 1000) * 1000;
	kha_ignore(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	kha_ignore(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	ctx = SSL_CTX_new(TLS_client_method());
	ssl = ctx ? SSL_new(ctx) : NULL;
	if (!ssl) {
		r = kha_diag_set(d, ENOMEM, "out of memory");
		goto out;
	}
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (sni || !is_ip(host))
		SSL_set_tlsext_host_name(ssl, (char *)(sni ? sni : host));
	SSL_set_fd(ssl, fd);
	ERR_clear_error();
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_peek_last_error();
		char buf[160] = "";

		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		r = kha_diag_set(d, EPROTO, "%s: TLS handshake failed%s%s", addr,
				 buf[0] ? ": " : "",
				 buf[0] ? buf : (errno == EAGAIN ? "timed out" : "no TLS answer"));
		ERR_clear_error();
		goto out;
	}
	cert = SSL_get1_peer_certificate(ssl);
	if (!cert) {
		r = kha_diag_set(d, EPROTO, "%s: presented no certificate", addr);
		goto out;
	}
	*ret = cert;
	r = 0;
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return r;
}
