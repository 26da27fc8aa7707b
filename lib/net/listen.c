// SPDX-License-Identifier: MIT
/* The one listening-socket helper (see include/kha/net.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "kha/net.h"
#include "kha/parse.h"
#include "kha/banned.h"

int kha_httpd_listen(const char *addr, int backlog, unsigned flags, struct kha_diag *d)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, r;

	r = (flags & KHA_HTTPD_LISTEN_RESOLVE) ? kha_resolve_hostport(addr, &ss, &len)
					       : kha_parse_sockaddr(addr, &ss, &len);
	if (r < 0)
		return kha_diag_set(d, EINVAL, "'%s' is not an address to listen on (host:port%s)",
				    addr,
				    (flags & KHA_HTTPD_LISTEN_RESOLVE) ? "" : ", host numeric");
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kha_diag_set(d, errno, "listen on %s: %s", addr, strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((flags & KHA_HTTPD_LISTEN_REUSEPORT) &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	r = errno;
	close(fd);
	return kha_diag_set(d, r, "listen on %s: %s", addr, strerror(r));
}

uint16_t kha_httpd_socket_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

bool kha_httpd_socket_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}
