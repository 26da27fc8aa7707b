// SPDX-License-Identifier: MIT
/*
 * Write mode: every probe is an etcd put of a sequence-numbered key through the entry (the
 * gateway's /v3/kv/put, sent by the prober like any probe), and after the drill the keys are
 * read back directly from the cluster (lib/etcd) to check that every acknowledged write is
 * there. Outcomes per slot:
 *   acknowledged  HTTP 200 from the gateway: the put committed; it must be read back
 *   failed        the request never reached a server (refused, TLS handshake, name): it must not
 *   unknown       sent, but no answer or an error status (timeout, reset, 5xx): either way
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kha/etcd.h"
#include "kha/json.h"
#include "drill-internal.h"
#include "kha/banned.h"

#define READBACK_RETRY_US (500 * KHA_USEC_PER_MSEC)
#define PAGE		  5000

char *kha_drill__write_url(const char *target)
{
	char *base = kha_drill__url_base(target), *out;
	const char *path = strstr(target, "://");
	size_t n;

	if (!base)
		return NULL;
	path = path ? strchr(path + 3, '/') : NULL;
	/* a bare client URL gets the gateway's put path; a URL with a path is used as given */
	if (path && strcmp(path, "/") != 0) {
		free(base);
		return strdup(target);
	}
	n = strlen(base) + 16;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/v3/kv/put", base);
	free(base);
	return out;
}

static void key_of(char *buf, size_t size, const char *prefix, uint64_t slot)
{
	snprintf(buf, size, "%s%010" PRIu64, prefix, slot);
}

static void value_of(char *buf, size_t size, uint64_t slot)
{
	snprintf(buf, size, "kha drill write %" PRIu64, slot);
}

char *kha_drill__write_body(const char *prefix, uint64_t slot)
{
	char key[512], value[64];
	char *k, *v, *body = NULL;
	size_t n;

	key_of(key, sizeof(key), prefix, slot);
	value_of(value, sizeof(value), slot);
	k = kha_json_base64_encode(key, strlen(key));
	v = kha_json_base64_encode(value, strlen(value));
	if (k && v) {
		n = strlen(k) + strlen(v) + 32;
		body = malloc(n);
		if (body)
			snprintf(body, n, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
	}
	free(k);
	free(v);
	return body;
}

int kha_drill__write_outcome(uint8_t result)
{
	switch (result) {
	case KHA_DRILL_PROBE_OK:
		return KHA_DRILL__OUT_ACKED;
	case KHA_DRILL_PROBE_MISSED:
		return KHA_DRILL__OUT_NOT_SENT;
	case KHA_DRILL_PROBE_REFUSED:
	case KHA_DRILL_PROBE_RESOLVE:
	case KHA_DRILL_PROBE_TLS:
		return KHA_DRILL__OUT_FAILED;
	default:
		/* timeouts, resets, error statuses, and probes cancelled in flight */
		return KHA_DRILL__OUT_UNKNOWN;
	}
}

/* The smallest key greater than every key starting with prefix ("" = none: to the end). */
static char *prefix_end(const char *prefix, size_t *ret_len)
{
	size_t n = strlen(prefix);
	char *end = malloc(n + 1);

	if (!end)
		return NULL;
	memcpy(end, prefix, n + 1);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n > 0)
		end[n - 1]++;
	else
		end[0] = '\0'; /* "\0" range_end: every key from the start */
	end[n] = '\0';
	*ret_len = n ? n : 1;
	return end;
}

/* Reads every key under prefix; marks present[slot] (1 right value, 2 wrong value). */
static int read_back(struct kha_etcd *c, const char *prefix, unsigned char *present, size_t n,
		     size_t *ret_found, size_t *ret_foreign, struct kha_diag *d)
{
	size_t plen = strlen(prefix), end_len = 0, found = 0, foreign = 0;
	char *end = prefix_end(prefix, &end_len), *next = NULL;
	size_t next_len = 0;
	int r = 0;

	if (!end)
		return kha_diag_set(d, ENOMEM, "out of memory");
	for (;;) {
		struct kha_etcd_range_req req = {
			.r = {.key = next ? next : prefix,
			      .key_len = next ? next_len : plen,
			      .range_end = end,
			      .range_end_len = end_len},
			.limit = PAGE,
		};
		struct kha_etcd_range_result res = {};

		r = kha_etcd_range(c, &req, &res, d);
		if (r < 0)
			break;
		for (size_t i = 0; i < res.n_kvs; i++) {
			const struct kha_etcd_kv *kv = &res.kvs[i];
			char *e = NULL;
			unsigned long long slot;
			char want[64];

			if (kv->key_len <= plen || memcmp(kv->key, prefix, plen) != 0) {
				foreign++;
				continue;
			}
			slot = strtoull(kv->key + plen, &e, 10);
			if (!e || *e || slot >= n) {
				foreign++;
				continue;
			}
			value_of(want, sizeof(want), slot);
			present[slot] = kv->value_len == strlen(want) &&
							memcmp(kv->value, want, kv->value_len) == 0
						? 1
						: 2;
			found++;
		}
		if (!res.more || res.n_kvs == 0) {
			kha_etcd_range_result_release(&res);
			break;
		}
		/* the next page starts right after the last key */
		{
			const struct kha_etcd_kv *last = &res.kvs[res.n_kvs - 1];
			char *grown = realloc(next, last->key_len + 1);
			if (!grown) {
				kha_etcd_range_result_release(&res);
				r = kha_diag_set(d, ENOMEM, "out of memory");
				break;
			}
			next = grown;
			memcpy(next, last->key, last->key_len);
			next[last->key_len] = '\0';
			next_len = last->key_len + 1;
		}
		kha_etcd_range_result_release(&res);
	}
	free(next);
	free(end);
	*ret_found = found;
	*ret_foreign = foreign;
	return r;
}

static int make_client(const struct kha_drill_scenario *sc, const char *endpoints,
		       struct kha_etcd **ret, struct kha_diag *d)
{
	struct kha_etcd_config cfg;
	int r;

	r = kha_etcd_config_init(&cfg);
	if (r < 0)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = kha_etcd_config_set_endpoints(&cfg, endpoints, d);
	if (r == 0 && sc->cacert && !(cfg.cacert = strdup(sc->cacert)))
		r = -ENOMEM;
	if (r == 0 && sc->cert && !(cfg.cert = strdup(sc->cert)))
		r = -ENOMEM;
	if (r == 0 && sc->key && !(cfg.key = strdup(sc->key)))
		r = -ENOMEM;
	if (r == 0)
		r = kha_etcd_new(&cfg, ret, d);
	kha_etcd_config_release(&cfg);
	return r;
}

void kha_drill__writes_tally(struct kha_drill_report *r)
{
	struct kha_drill_writes *w = &r->writes;

	w->enabled = true;
	w->acked = w->failed = w->unknown = 0;
	for (size_t i = 0; i < r->n_probes; i++) {
		switch (kha_drill__write_outcome(r->probes[i].result)) {
		case KHA_DRILL__OUT_ACKED:
			w->acked++;
			break;
		case KHA_DRILL__OUT_FAILED:
			w->failed++;
			break;
		case KHA_DRILL__OUT_UNKNOWN:
			w->unknown++;
			break;
		case KHA_DRILL__OUT_NOT_SENT:
			break;
		}
	}
}

void kha_drill__writes_compare(struct kha_drill_report *r, const unsigned char *present,
			       size_t found, size_t foreign)
{
	struct kha_drill_writes *w = &r->writes;

	w->verified = true;
	w->found = found;
	w->unexpected = foreign;
	for (size_t i = 0; i < r->n_probes; i++) {
		int o = kha_drill__write_outcome(r->probes[i].result);
		bool here = present[i] == 1;

		if (present[i] == 2)
			w->unexpected +=
				o !=
				KHA_DRILL__OUT_ACKED; /* a wrong value for an unacknowledged slot */
		if (o == KHA_DRILL__OUT_ACKED && !here) {
			if (w->n_lost_slots < KHA_DRILL_MAX_LOST_LISTED) {
				if (KHA_RESIZE(w->lost_slots, w->n_lost_slots + 1) == 0)
					w->lost_slots[w->n_lost_slots++] = i;
			}
			w->lost++;
		} else if (o == KHA_DRILL__OUT_UNKNOWN) {
			if (here)
				w->unknown_applied++;
			else
				w->unknown_missing++;
		} else if ((o == KHA_DRILL__OUT_FAILED || o == KHA_DRILL__OUT_NOT_SENT) &&
			   present[i]) {
			w->unexpected++;
		}
	}
}

void kha_drill__verify_writes(const struct kha_drill_scenario *sc, struct kha_drill_report *r)
{
	struct kha_drill_writes *w = &r->writes;
	struct kha_etcd *c = NULL;
	struct kha_diag d = {};
	unsigned char *present = NULL;
	size_t found = 0, foreign = 0;
	uint64_t deadline = kha_now_us() + sc->readback_timeout_us;
	int rc;

	kha_drill__writes_tally(r);
	if (!w->endpoints) {
		w->endpoints =
			sc->endpoints ? strdup(sc->endpoints) : kha_drill__url_base(sc->target);
		if (!w->endpoints) {
			snprintf(w->error, sizeof(w->error), "out of memory");
			return;
		}
	}
	present = calloc(r->n_probes ? r->n_probes : 1, 1);
	if (!present) {
		snprintf(w->error, sizeof(w->error), "out of memory");
		return;
	}
	rc = make_client(sc, w->endpoints, &c, &d);
	if (rc == 0)
		kha_etcd_set_command_timeout(
			c, KHA_MIN(sc->readback_timeout_us, KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US));
	/* the cluster may still be electing a leader after the last fault: retry for a while */
	while (rc == 0) {
		memset(present, 0, r->n_probes ? r->n_probes : 1);
		kha_diag_clear(&d);
		rc = read_back(c, w->prefix, present, r->n_probes, &found, &foreign, &d);
		if (rc == 0 || rc == -ENOMEM || kha_now_us() + READBACK_RETRY_US >= deadline)
			break;
		kha_ignore(kha_sleep_us(READBACK_RETRY_US, NULL));
		rc = 0;
	}
	if (rc < 0) {
		snprintf(w->error, sizeof(w->error), "%s", d.msg[0] ? d.msg : strerror(-rc));
		kha_etcd_free(c);
		free(present);
		return;
	}
	kha_drill__writes_compare(r, present, found, foreign);
	if (!sc->keep_keys) {
		struct kha_etcd_delete_req del = {.r = {.key = w->prefix, .prefix = true}};

		kha_diag_clear(&d);
		rc = kha_etcd_delete(c, &del, NULL, &d);
		if (rc < 0)
			snprintf(w->cleanup_error, sizeof(w->cleanup_error), "%s", d.msg);
		else
			w->cleaned = true;
	}
	kha_etcd_free(c);
	free(present);
}
