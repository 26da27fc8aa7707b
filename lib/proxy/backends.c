// SPDX-License-Identifier: MIT
/* Backend specs, the backends file and the state file (see include/kha/proxy-backends.h). */
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "kha/file.h"
#include "kha/parse.h"
#include "kha/proxy-backends.h"
#include "kha/banned.h"

static bool valid_addr(const char *a)
{
	const char *colon;
	uint64_t port;

	if (!*a)
		return false;
	if (*a == '[') {
		const char *rb = strchr(a, ']');
		if (!rb || rb[1] != ':')
			return false;
		colon = rb + 1;
	} else {
		colon = strrchr(a, ':');
		if (!colon || colon == a || memchr(a, ':', (size_t)(colon - a)))
			return false;
		for (const char *p = a; p < colon; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
				return false;
	}
	return kha_parse_u64(colon + 1, 1, 65535, &port) == 0;
}

int kha_proxy_spec_parse(const char *s, struct kha_proxy_spec *ret, struct kha_diag *d)
{
	const char *comma = strchr(s, ',');
	size_t alen = comma ? (size_t)(comma - s) : strlen(s);
	uint64_t w = 1;

	if (alen == 0 || alen >= sizeof(ret->addr))
		return kha_diag_set(d, EINVAL, "backend '%s': expected host:port[,weight=N]", s);
	memcpy(ret->addr, s, alen);
	ret->addr[alen] = '\0';
	if (!valid_addr(ret->addr))
		return kha_diag_set(d, EINVAL, "backend '%s': expected host:port[,weight=N]", s);
	if (comma) {
		if (strncmp(comma + 1, "weight=", 7) != 0 ||
		    kha_parse_u64(comma + 8, 1, KHA_PROXY_WEIGHT_MAX, &w) < 0)
			return kha_diag_set(d, EINVAL,
					    "backend '%s': bad option after the address (expected "
					    "weight=1..%d)",
					    s, KHA_PROXY_WEIGHT_MAX);
	}
	ret->weight = (uint32_t)w;
	return 0;
}

int kha_proxy_spec_list_add(struct kha_proxy_spec_list *l, const struct kha_proxy_spec *spec)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].addr, spec->addr) == 0) {
			l->v[i] = *spec;
			return 0;
		}
	}
	if (KHA_GROW(l->v, l->cap, l->n + 1) < 0)
		return -ENOMEM;
	l->v[l->n++] = *spec;
	return 0;
}

int kha_proxy_spec_list_copy(struct kha_proxy_spec_list *dst, const struct kha_proxy_spec_list *src)
{
	struct kha_proxy_spec_list l = {};

	for (size_t i = 0; i < src->n; i++) {
		if (kha_proxy_spec_list_add(&l, &src->v[i]) < 0) {
			kha_proxy_spec_list_release(&l);
			return -ENOMEM;
		}
	}
	kha_proxy_spec_list_release(dst);
	*dst = l;
	return 0;
}

bool kha_proxy_spec_list_equal(const struct kha_proxy_spec_list *a,
			       const struct kha_proxy_spec_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].addr, b->v[i].addr) != 0 || a->v[i].weight != b->v[i].weight)
			return false;
	return true;
}

void kha_proxy_spec_list_release(struct kha_proxy_spec_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* ---- the YAML file ---- */

struct yparser {
	yaml_parser_t p;
	yaml_event_t ev;
	bool have_ev;
	const char *name;
	struct kha_diag *d;
};

static int next_event(struct yparser *y)
{
	if (y->have_ev)
		yaml_event_delete(&y->ev);
	y->have_ev = false;
	if (!yaml_parser_parse(&y->p, &y->ev))
		return kha_diag_set(y->d, EINVAL, "%s:%zu: malformed YAML: %s", y->name,
				    y->p.problem_mark.line + 1,
				    y->p.problem ? y->p.problem : "parse error");
	y->have_ev = true;
	return 0;
}

static size_t ev_line(const struct yparser *y)
{
	return y->ev.start_mark.line + 1;
}

static const char *scalar(const struct yparser *y)
{
	return (const char *)y->ev.data.scalar.value;
}

/* Parses one list item (the current event is its first event). */
static int parse_item(struct yparser *y, struct kha_proxy_spec_list *out)
{
	struct kha_proxy_spec spec = {.weight = 1};
	bool have_addr = false;
	size_t line = ev_line(y);
	int r;

	if (y->ev.type == YAML_SCALAR_EVENT) {
		r = kha_proxy_spec_parse(scalar(y), &spec, y->d);
		if (r < 0) {
			kha_diag_prefix(y->d, "%s:%zu", y->name, line);
			return r;
		}
		return kha_proxy_spec_list_add(out, &spec);
	}
	if (y->ev.type != YAML_MAPPING_START_EVENT)
		return kha_diag_set(y->d, EINVAL, "%s:%zu: expected an address or a mapping",
				    y->name, line);
	for (;;) {
		char key[32];
		uint64_t w;
		if ((r = next_event(y)) < 0)
			return r;
		if (y->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (y->ev.type != YAML_SCALAR_EVENT)
			return kha_diag_set(y->d, EINVAL, "%s:%zu: expected a key", y->name,
					    ev_line(y));
		snprintf(key, sizeof(key), "%s", scalar(y));
		if ((r = next_event(y)) < 0)
			return r;
		if (y->ev.type != YAML_SCALAR_EVENT)
			return kha_diag_set(y->d, EINVAL, "%s:%zu: %s: expected a plain value",
					    y->name, ev_line(y), key);
		if (strcmp(key, "address") == 0) {
			if (strlen(scalar(y)) >= sizeof(spec.addr) || !valid_addr(scalar(y)))
				return kha_diag_set(y->d, EINVAL,
						    "%s:%zu: address '%s': expected host:port",
						    y->name, ev_line(y), scalar(y));
			snprintf(spec.addr, sizeof(spec.addr), "%s", scalar(y));
			have_addr = true;
		} else if (strcmp(key, "weight") == 0) {
			if (kha_parse_u64(scalar(y), 1, KHA_PROXY_WEIGHT_MAX, &w) < 0)
				return kha_diag_set(y->d, EINVAL,
						    "%s:%zu: weight '%s': expected 1..%d", y->name,
						    ev_line(y), scalar(y), KHA_PROXY_WEIGHT_MAX);
			spec.weight = (uint32_t)w;
		} else {
			return kha_diag_set(y->d, EINVAL,
					    "%s:%zu: unknown key '%s' (expected address, weight)",
					    y->name, ev_line(y), key);
		}
	}
	if (!have_addr)
		return kha_diag_set(y->d, EINVAL, "%s:%zu: entry without an address", y->name,
				    line);
	return kha_proxy_spec_list_add(out, &spec);
}

static int parse_list(struct yparser *y, struct kha_proxy_spec_list *out)
{
	int r;

	/* current event: SEQUENCE_START */
	for (;;) {
		if ((r = next_event(y)) < 0)
			return r;
		if (y->ev.type == YAML_SEQUENCE_END_EVENT)
			return 0;
		if ((r = parse_item(y, out)) < 0)
			return r;
	}
}

int kha_proxy_backends_parse(const char *data, size_t len, const char *name,
			     struct kha_proxy_spec_list *ret, struct kha_diag *d)
{
	struct yparser y = {.name = name, .d = d};
	struct kha_proxy_spec_list out = {};
	bool done = false, seen = false;
	int r = 0;

	if (!yaml_parser_initialize(&y.p))
		return kha_diag_set(d, ENOMEM, "out of memory");
	yaml_parser_set_input_string(&y.p, (const unsigned char *)data, len);
	while (!done && r == 0) {
		if ((r = next_event(&y)) < 0)
			break;
		switch (y.ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_SEQUENCE_START_EVENT:
			if (seen) {
				r = kha_diag_set(d, EINVAL, "%s:%zu: only one list is allowed",
						 name, ev_line(&y));
				break;
			}
			seen = true;
			r = parse_list(&y, &out);
			break;
		case YAML_MAPPING_START_EVENT:
			/* backends: [...] */
			if (seen || (r = next_event(&y)) < 0)
				goto bad;
			if (y.ev.type != YAML_SCALAR_EVENT || strcmp(scalar(&y), "backends") != 0)
				goto bad;
			if ((r = next_event(&y)) < 0)
				break;
			if (y.ev.type == YAML_SEQUENCE_START_EVENT)
				r = parse_list(&y, &out);
			else if (!(y.ev.type == YAML_SCALAR_EVENT && !*scalar(&y)))
				goto bad;
			if (r == 0 && (r = next_event(&y)) == 0 &&
			    y.ev.type != YAML_MAPPING_END_EVENT)
				goto bad;
			seen = true;
			break;
		case YAML_SCALAR_EVENT:
			/* an empty document is a scalar "" in libyaml: an empty list */
			if (!seen && !*scalar(&y))
				break;
			goto bad;
		default:
			goto bad;
		}
		continue;
	bad:
		if (r == 0)
			r = kha_diag_set(
				d, EINVAL,
				"%s:%zu: expected a list of host:port (or backends: [...])", name,
				y.have_ev ? ev_line(&y) : 0);
		break;
	}
	if (y.have_ev)
		yaml_event_delete(&y.ev);
	yaml_parser_delete(&y.p);
	if (r < 0) {
		kha_proxy_spec_list_release(&out);
		return r;
	}
	kha_proxy_spec_list_release(ret);
	*ret = out;
	return 0;
}

int kha_proxy_backends_load(const char *path, struct kha_proxy_spec_list *ret, struct kha_diag *d)
{
	kha_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	kha_autofree char *buf = NULL;
	struct stat st;
	size_t len = 0;
	int r;

	if (fd < 0)
		return kha_diag_set(d, errno, "cannot read backends file %s: %s", path,
				    strerror(errno));
	if (fstat(fd, &st) < 0)
		return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
	if (st.st_size > KHA_PROXY_BACKENDS_FILE_MAX)
		return kha_diag_set(d, EFBIG, "backends file %s: larger than %d bytes", path,
				    KHA_PROXY_BACKENDS_FILE_MAX);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return kha_diag_set(d, ENOMEM, "out of memory");
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kha_diag_set(d, errno, "%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	/* bad content is bad data (exit 65), not a bad flag */
	r = kha_proxy_backends_parse(buf, len, path, ret, d);
	return r == -EINVAL ? -EBADMSG : r;
}

int kha_proxy_backends_save(const char *path, const struct kha_proxy_spec_list *l,
			    struct kha_diag *d)
{
	kha_autofree char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
	fprintf(f, "# written by kha proxy: the last known set of backends\n");
	if (l->n == 0)
		fprintf(f, "[]\n");
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "- address: \"%s\"\n  weight: %u\n", l->v[i].addr, l->v[i].weight);
	if (fclose(f) != 0)
		return kha_diag_set(d, ENOMEM, "%s: out of memory", path);
	/*
	 * The project's atomic write: its temporary file is created O_EXCL, so a symbolic link
	 * planted at a predictable temporary name cannot make us write through it.
	 */
	r = kha_file_write_atomic(path, buf, len, 0644, d);
	return r;
}
