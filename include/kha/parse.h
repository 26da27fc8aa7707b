/* SPDX-License-Identifier: MIT */
/*
 * Parsers of command-line values: durations as in Go ("500ms", "2s", "1m30s"), sizes
 * ("64KiB", "10MiB", "512"), integers with range checks, and host:port addresses.
 * Each returns 0 and sets ret_* on success, or -EINVAL (bad syntax) / -ERANGE (out of range).
 */
#ifndef KHA_PARSE_H
#define KHA_PARSE_H

#include <netinet/in.h>
#include <sys/socket.h>
#include "kha/common.h"

int kha_parse_duration_us(const char *s, uint64_t *ret_us) KHA_WUR;
int kha_parse_size(const char *s, uint64_t *ret_bytes) KHA_WUR;
int kha_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret) KHA_WUR;
int kha_parse_bool(const char *s, bool *ret) KHA_WUR;
/* The value of every report's -o/--output: "table" (or "text") sets *ret_json false, "json" true. */
int kha_parse_output(const char *s, bool *ret_json) KHA_WUR;
/* Formats a duration the way Go prints it ("1.5s", "250ms", "1m30s"). Returns buf. */
const char *kha_format_duration(char *buf, size_t size, uint64_t us);
/* Formats bytes as "12.3 MiB". Returns buf. */
const char *kha_format_size(char *buf, size_t size, uint64_t bytes);

/*
 * Parses "host:port", "[v6]:port" or ":port" (any address) into a numeric socket address;
 * names are not resolved (use kha_resolve_hostport for that). ret_len receives the length.
 */
int kha_parse_sockaddr(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) KHA_WUR;
/* Like kha_parse_sockaddr, but resolves a host name with getaddrinfo (first result). */
int kha_resolve_hostport(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) KHA_WUR;
/* Formats an address as "1.2.3.4:80" or "[::1]:80". Returns buf. */
const char *kha_format_sockaddr(char *buf, size_t size, const struct sockaddr *sa);

#endif
