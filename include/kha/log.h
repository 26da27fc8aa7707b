/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr in logfmt (default) or JSON lines:
 *   ts=2026-11-27T05:40:42.123Z level=info msg="backend down" backend=10.0.0.1:6443
 * The fields argument is itself logfmt ("key=value key2=\"quoted value\""); use kha_log_quote()
 * for values that may hold spaces or quotes. Library code logs at debug only; commands and
 * daemon engines log state changes at info and above.
 */
#ifndef KHA_LOG_H
#define KHA_LOG_H

#include <stdio.h>
#include "kha/common.h"

enum kha_log_level {
	KHA_LOG_DEBUG,
	KHA_LOG_INFO,
	KHA_LOG_WARN,
	KHA_LOG_ERROR,
};

enum kha_log_format {
	KHA_LOG_LOGFMT,
	KHA_LOG_JSON,
};

void kha_log_setup(enum kha_log_level min, enum kha_log_format fmt);
/* Parses "debug|info|warn|error" and "logfmt|json"; returns -EINVAL on anything else. */
int kha_log_parse_level(const char *s, enum kha_log_level *ret_level) KHA_WUR;
int kha_log_parse_format(const char *s, enum kha_log_format *ret_fmt) KHA_WUR;
bool kha_log_enabled(enum kha_log_level level);
/* Redirects output (tests); NULL restores stderr. */
void kha_log_set_stream(FILE *f);

void kha_log(enum kha_log_level level, const char *msg, const char *fields, ...) KHA_PRINTF(3, 4);

#define kha_debug(msg, ...) kha_log(KHA_LOG_DEBUG, msg, __VA_ARGS__)
#define kha_info(msg, ...)  kha_log(KHA_LOG_INFO, msg, __VA_ARGS__)
#define kha_warn(msg, ...)  kha_log(KHA_LOG_WARN, msg, __VA_ARGS__)
#define kha_error(msg, ...) kha_log(KHA_LOG_ERROR, msg, __VA_ARGS__)

/*
 * Writes s as a logfmt value into buf (quoted and escaped when needed). Returns buf; the result
 * is truncated to size.
 */
const char *kha_log_quote(char *buf, size_t size, const char *s);

/*
 * kha_log_quote() into a buffer that lives until the end of the enclosing block: the form for
 * an argument of kha_log() whose value comes from outside (a peer, a server, a file, a flag),
 * so a value cannot forge a field or a record: kha_warn("lost", "id=%s", KHA_LOGQ(id)).
 */
#define KHA_LOGQ_SIZE 512
#define KHA_LOGQ(s)   kha_log_quote((char[KHA_LOGQ_SIZE]){0}, KHA_LOGQ_SIZE, (s))

/*
 * Copies s into buf (truncated to size) for a terminal: every control character (C0, DEL and
 * the C1 range of UTF-8, which includes the escape sequences) becomes '?', so a name read from
 * a server cannot move the cursor, recolour or retitle the operator's terminal. Returns buf.
 */
const char *kha_term_safe(char *buf, size_t size, const char *s);
#define KHA_TERM_SIZE 512
#define KHA_TERM(s)   kha_term_safe((char[KHA_TERM_SIZE]){0}, KHA_TERM_SIZE, (s))

#endif
