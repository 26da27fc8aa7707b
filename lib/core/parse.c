// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kha/parse.h"

/* Go's time.ParseDuration units, in microseconds ("ns" rounds up to whole microseconds). */
static const struct {
	const char *name;
	double us;
} duration_units[] = {
	{"ns", 0.001}, {"us", 1}, {"µs", 1}, {"ms", 1000}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6},
};

int kha_parse_duration_us(const char *s, uint64_t *ret_us)
{
	double total = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*ret_us = 0;
		return 0;
	}
	while (*p) {
		double v = 0, scale = 0;
		bool digits = false, dot = false;
		size_t best = 0, i;
		double unit = 0;

		while ((*p >= '0' && *p <= '9') || (*p == '.' && !dot)) {
			if (*p == '.') {
				dot = true;
				scale = 1;
			} else {
				digits = true;
				if (dot) {
					scale /= 10;
					v += (*p - '0') * scale;
				} else {
					v = v * 10 + (*p - '0');
				}
			}
			p++;
		}
		if (!digits)
			return -EINVAL;
		for (i = 0; i < KHA_ARRAY_SIZE(duration_units); i++) {
			size_t n = strlen(duration_units[i].name);
			if (strncmp(p, duration_units[i].name, n) == 0 && n > best) {
				/* "m" must not swallow the "m" of "ms" */
				best = n;
				unit = duration_units[i].us;
			}
		}
		if (!best)
			return -EINVAL;
		p += best;
		total += v * unit;
		if (total > 1e18)
			return -ERANGE;
	}
	*ret_us = (uint64_t)(total + 0.999);
	return 0;
}

int kha_parse_size(const char *s, uint64_t *ret_bytes)
{
	static const struct {
		const char *name;
		uint64_t mult;
	} units[] = {
		{"", 1},
		{"B", 1},
		{"KiB", 1ULL << 10},
		{"MiB", 1ULL << 20},
		{"GiB", 1ULL << 30},
		{"TiB", 1ULL << 40},
		{"K", 1000},
		{"KB", 1000},
		{"M", 1000000},
		{"MB", 1000000},
		{"G", 1000000000},
		{"GB", 1000000000},
	};
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	for (size_t i = 0; i < KHA_ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].name) == 0) {
			if (v > UINT64_MAX / units[i].mult)
				return -ERANGE;
			*ret_bytes = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

int kha_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int kha_parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < KHA_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int kha_parse_output(const char *s, bool *ret_json)
{
	if (strcmp(s, "json") == 0)
		*ret_json = true;
	else if (strcmp(s, "table") == 0 || strcmp(s, "text") == 0)
		*ret_json = false;
	else
		return -EINVAL;
	return 0;
}

const char *kha_format_duration(char *buf, size_t size, uint64_t us)
{
	if (us == 0)
		snprintf(buf, size, "0s");
	else if (us < 1000)
		snprintf(buf, size, "%uus", (unsigned)us);
	else if (us < KHA_USEC_PER_SEC)
		snprintf(buf, size, "%gms", (double)us / 1000);
	else if (us < 60 * KHA_USEC_PER_SEC)
		snprintf(buf, size, "%gs", (double)us / 1e6);
	else if (us < 3600 * KHA_USEC_PER_SEC)
		snprintf(buf, size, "%um%gs", (unsigned)(us / 60000000),
			 (double)(us % 60000000) / 1e6);
	else
		snprintf(buf, size, "%uh%um%gs", (unsigned)(us / 3600000000ULL),
			 (unsigned)(us % 3600000000ULL / 60000000), (double)(us % 60000000) / 1e6);
	return buf;
}

const char *kha_format_size(char *buf, size_t size, uint64_t bytes)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < KHA_ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* Splits "host:port" / "[v6]:port" into host and port; host may be empty. */
static int split_hostport(const char *s, char *host, size_t hsize, uint16_t *ret_port)
{
	const char *colon, *hstart = s, *hend;
	uint64_t port;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '[') {
		hend = strchr(s, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		hstart = s + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hend = colon;
	}
	if ((size_t)(hend - hstart) >= hsize)
		return -EINVAL;
	memcpy(host, hstart, (size_t)(hend - hstart));
	host[hend - hstart] = '\0';
	if (kha_parse_u64(colon + 1, 0, 65535, &port) < 0)
		return -EINVAL;
	*ret_port = (uint16_t)port;
	return 0;
}

int kha_parse_sockaddr(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	char host[256];
	uint16_t port;
	struct sockaddr_in *in4 = (struct sockaddr_in *)ret;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ret;

	if (split_hostport(s, host, sizeof(host), &port) < 0)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (!host[0] || inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*ret_len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*ret_len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

int kha_resolve_hostport(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[256], portstr[8];
	uint16_t port;

	if (kha_parse_sockaddr(s, ret, ret_len) == 0)
		return 0;
	if (split_hostport(s, host, sizeof(host), &port) < 0 || !host[0])
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%u", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
		return -EHOSTUNREACH;
	memcpy(ret, res->ai_addr, res->ai_addrlen);
	*ret_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

const char *kha_format_sockaddr(char *buf, size_t size, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(in4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, size, "?");
	}
	return buf;
}
