// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kha/log.h"

static enum kha_log_level min_level = KHA_LOG_INFO;
static enum kha_log_format format = KHA_LOG_LOGFMT;
static FILE *stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void kha_log_setup(enum kha_log_level min, enum kha_log_format fmt)
{
	min_level = min;
	format = fmt;
}

int kha_log_parse_level(const char *s, enum kha_log_level *ret_level)
{
	for (size_t i = 0; i < KHA_ARRAY_SIZE(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*ret_level = (enum kha_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int kha_log_parse_format(const char *s, enum kha_log_format *ret_fmt)
{
	if (strcmp(s, "logfmt") == 0 || strcmp(s, "text") == 0)
		*ret_fmt = KHA_LOG_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*ret_fmt = KHA_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

bool kha_log_enabled(enum kha_log_level level)
{
	return level >= min_level;
}

void kha_log_set_stream(FILE *f)
{
	stream = f;
}

static bool needs_quote(const char *s)
{
	if (!*s)
		return true;
	for (; *s; s++)
		if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\' || *s == 0x7f)
			return true;
	return false;
}

/* Appends s to out as a quoted, escaped string (JSON and logfmt share the escapes we use). */
static size_t put_quoted(char *out, size_t size, size_t pos, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

#define PUT(c)                          \
	do {                            \
		if (pos + 1 < size)     \
			out[pos] = (c); \
		pos++;                  \
	} while (0)
	PUT('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT((char)c);
		} else if (c == '\n') {
			PUT('\\');
			PUT('n');
		} else if (c < 0x20 || c == 0x7f) {
			PUT('\\');
			PUT('u');
			PUT('0');
			PUT('0');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else {
			PUT((char)c);
		}
	}
	PUT('"');
#undef PUT
	if (size)
		out[pos < size ? pos : size - 1] = '\0';
	return pos;
}

const char *kha_log_quote(char *buf, size_t size, const char *s)
{
	if (!s)
		s = "";
	if (!needs_quote(s)) {
		snprintf(buf, size, "%s", s);
		return buf;
	}
	put_quoted(buf, size, 0, s, strlen(s));
	return buf;
}

/* Length of the well-formed UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

const char *kha_term_safe(char *buf, size_t size, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0;

	if (!size)
		return buf;
	while (*p && o + 1 < size) {
		size_t n = *p < 0x80 ? 1 : utf8_len(p);

		/*
		 * C0 and DEL; a byte that is not well-formed UTF-8 (a lone 0x9b is CSI to an 8-bit
		 * terminal); U+0080-U+009F, the C1 controls encoded in UTF-8.
		 */
		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)) ||
		    (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)) {
			buf[o++] = '?';
			p += n ? n : 1;
			continue;
		}
		if (o + n >= size)
			break;
		memcpy(buf + o, p, n);
		o += n;
		p += n;
	}
	buf[o] = '\0';
	return buf;
}

static bool hex4(const char *p, unsigned int *ret)
{
	unsigned int u = 0;

	for (int i = 0; i < 4; i++) {
		if (!isxdigit((unsigned char)p[i]))
			return false;
		u = u * 16 + (unsigned int)(isdigit((unsigned char)p[i])
						    ? p[i] - '0'
						    : (tolower((unsigned char)p[i]) - 'a' + 10));
	}
	*ret = u;
	return true;
}

/*
 * Converts logfmt fields to JSON members (",\"k\":\"v\"..."). Unquoted values stay strings:
 * readers of our JSON logs get one type per key. A field that does not parse is kept whole
 * under "fields".
 */
static void fields_to_json(char *out, size_t size, const char *in)
{
	size_t pos = 0;
	const char *p = in;
	char tmp[2048];

	out[0] = '\0';
	while (*p) {
		const char *k, *v;
		size_t klen, vlen = 0, tpos = 0;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		k = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		klen = (size_t)(p - k);
		if (*p != '=' || klen == 0)
			goto raw;
		p++;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1]) {
					unsigned int u;

					p++;
					if (*p == 'n') {
						tmp[tpos] = '\n';
					} else if (*p == 'u' && hex4(p + 1, &u) && u < 0x80) {
						/* put_quoted's \u00XX of a control character */
						tmp[tpos] = (char)u;
						p += 4;
					} else {
						tmp[tpos] = *p;
					}
				} else {
					tmp[tpos] = *p;
				}
				if (tpos + 1 < sizeof(tmp))
					tpos++;
				p++;
			}
			if (*p != '"')
				goto raw;
			p++;
			v = tmp;
			vlen = tpos;
		} else {
			v = p;
			while (*p && *p != ' ')
				p++;
			vlen = (size_t)(p - v);
		}
		pos += (size_t)snprintf(out + KHA_MIN(pos, size - 1), size - KHA_MIN(pos, size - 1),
					",");
		pos = put_quoted(out, size, pos, k, klen);
		pos += (size_t)snprintf(out + KHA_MIN(pos, size - 1), size - KHA_MIN(pos, size - 1),
					":");
		pos = put_quoted(out, size, pos, v, vlen);
	}
	return;
raw:
	pos = (size_t)snprintf(out, size, ",\"fields\":");
	put_quoted(out, size, KHA_MIN(pos, size - 1), in, strlen(in));
}

void kha_log(enum kha_log_level level, const char *msg, const char *fields, ...)
{
	char ts[64], fbuf[2048], qbuf[1024], jbuf[4096];
	FILE *out = stream ? stream : stderr;
	uint64_t now = kha_wall_us();
	time_t sec = (time_t)(now / KHA_USEC_PER_SEC);
	struct tm tm;
	va_list ap;

	if (level < min_level)
		return;
	gmtime_r(&sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (unsigned)(now % KHA_USEC_PER_SEC / 1000));
	fbuf[0] = '\0';
	if (fields) {
		va_start(ap, fields);
		vsnprintf(fbuf, sizeof(fbuf), fields, ap);
		va_end(ap);
	}
	if (format == KHA_LOG_JSON) {
		fields_to_json(jbuf, sizeof(jbuf), fbuf);
		put_quoted(qbuf, sizeof(qbuf), 0, msg, strlen(msg));
		fprintf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%s%s}\n", ts,
			level_names[level], qbuf, jbuf);
	} else {
		fprintf(out, "ts=%s level=%s msg=%s%s%s\n", ts, level_names[level],
			kha_log_quote(qbuf, sizeof(qbuf), msg), fbuf[0] ? " " : "", fbuf);
	}
	fflush(out);
}
