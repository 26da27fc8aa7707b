// SPDX-License-Identifier: MIT
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "kha/json.h"
#include "kha/banned.h"

int kha_json_parse(const char *text, size_t len, json_t **ret, struct kha_diag *d)
{
	json_error_t err;
	json_t *j;
	size_t i;

	for (i = 0;
	     i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t');
	     i++)
		;
	if (i == len)
		return kha_diag_set(d, EBADMSG, "empty");
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return kha_diag_set(d, EBADMSG, "not JSON: %s at line %d column %d", err.text,
				    err.line, err.column);
	*ret = j;
	return 0;
}

json_t *kha_json_get(const json_t *obj, const char *name)
{
	char camel[128];
	size_t o = 0;
	json_t *v;

	if (!json_is_object(obj))
		return NULL;
	v = json_object_get(obj, name);
	if (v || !strchr(name, '_'))
		return v;
	for (const char *p = name; *p && o + 1 < sizeof(camel); p++) {
		if (*p == '_' && p[1]) {
			p++;
			camel[o++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		} else {
			camel[o++] = *p;
		}
	}
	camel[o] = '\0';
	return json_object_get(obj, camel);
}

static int bad(struct kha_diag *d, const char *name, const char *what)
{
	return kha_diag_set(d, EBADMSG, "field '%s' %s", name, what);
}

/* Parses a decimal string strictly: optional '-' when allow_neg, digits, nothing else. */
static int parse_dec(const char *s, bool allow_neg, bool *neg, uint64_t *ret)
{
	uint64_t v = 0;

	*neg = false;
	if (*s == '-' && allow_neg) {
		*neg = true;
		s++;
	}
	if (!*s)
		return -EBADMSG;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EBADMSG;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

int kha_json_u64(const json_t *obj, const char *name, uint64_t *ret, struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);
	uint64_t u;
	bool neg;

	if (!v || json_is_null(v)) {
		*ret = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return bad(d, name, "is negative");
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return bad(d, name, "is not an integer");
	if (parse_dec(json_string_value(v), false, &neg, &u) < 0)
		return bad(d, name, "is not an unsigned 64-bit integer");
	*ret = u;
	return 0;
}

int kha_json_i64(const json_t *obj, const char *name, int64_t *ret, struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);
	uint64_t u;
	bool neg;

	if (!v || json_is_null(v)) {
		*ret = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		*ret = (int64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return bad(d, name, "is not an integer");
	if (parse_dec(json_string_value(v), true, &neg, &u) < 0 ||
	    u > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
		return bad(d, name, "is not a 64-bit integer");
	*ret = neg ? (int64_t)(0 - u) : (int64_t)u;
	return 0;
}

int kha_json_bool(const json_t *obj, const char *name, bool *ret, struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);

	if (!v || json_is_null(v)) {
		*ret = false;
		return 0;
	}
	if (!json_is_boolean(v))
		return bad(d, name, "is not a boolean");
	*ret = json_is_true(v);
	return 0;
}

int kha_json_strdup(const json_t *obj, const char *name, char **ret, struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);
	char *s;

	if (v && !json_is_null(v) && !json_is_string(v))
		return bad(d, name, "is not a string");
	s = strndup(v && json_is_string(v) ? json_string_value(v) : "",
		    v && json_is_string(v) ? json_string_length(v) : 0);
	if (!s)
		return kha_diag_set(d, ENOMEM, "out of memory");
	*ret = s;
	return 0;
}

int kha_json_object(const json_t *obj, const char *name, json_t **ret, struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return bad(d, name, "is not an object");
	*ret = v;
	return 0;
}

int kha_json_array(const json_t *obj, const char *name, json_t **ret, struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(d, name, "is not an array");
	*ret = v;
	return 0;
}

json_t *kha_json_u64_string(uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return json_string(buf);
}

json_t *kha_json_i64_string(int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

int kha_json_set(json_t *obj, const char *name, json_t *value)
{
	if (!value)
		return -ENOMEM;
	return json_object_set_new(obj, name, value) == 0 ? 0 : -ENOMEM;
}

int kha_json_set_base64(json_t *obj, const char *name, const void *data, size_t len)
{
	char *b = kha_json_base64_encode(data, len);
	json_t *s;

	if (!b)
		return -ENOMEM;
	s = json_string(b);
	free(b);
	return kha_json_set(obj, name, s);
}

char *kha_json_dumps(const json_t *obj)
{
	return json_dumps(obj, JSON_COMPACT);
}

char *kha_json_base64_encode(const void *data, size_t len)
{
	size_t out_len;
	char *out;

	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return NULL;
	out_len = (len + 2) / 3 * 4;
	out = malloc(out_len + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	out[out_len] = '\0';
	return out;
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int kha_json_base64_decode(const char *text, size_t len, char **ret, size_t *ret_len)
{
	size_t pad = 0, out_len;
	char *out;
	int n;

	/* EVP_DecodeBlock skips blanks and ignores padding: validate strictly first */
	if (len % 4 || len > (size_t)INT_MAX)
		return -EBADMSG;
	if (len && text[len - 1] == '=')
		pad = (len >= 2 && text[len - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char(text[i]))
			return -EBADMSG;
	out_len = len / 4 * 3;
	out = malloc(out_len + 1);
	if (!out)
		return -ENOMEM;
	if (len) {
		n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
		if (n < 0 || (size_t)n != out_len) {
			free(out);
			return -EBADMSG;
		}
	}
	out_len -= pad;
	out[out_len] = '\0';
	*ret = out;
	*ret_len = out_len;
	return 0;
}

int kha_json_base64(const json_t *obj, const char *name, char **ret, size_t *ret_len,
		    struct kha_diag *d)
{
	json_t *v = kha_json_get(obj, name);
	int r;

	if (!v || json_is_null(v))
		return kha_json_base64_decode("", 0, ret, ret_len) == 0
			       ? 0
			       : kha_diag_set(d, ENOMEM, "out of memory");
	if (!json_is_string(v))
		return bad(d, name, "is not a base64 string");
	r = kha_json_base64_decode(json_string_value(v), json_string_length(v), ret, ret_len);
	if (r == -ENOMEM)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (r < 0)
		return bad(d, name, "is not valid base64");
	return 0;
}
