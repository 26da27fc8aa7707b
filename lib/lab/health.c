// SPDX-License-Identifier: MIT
/* Member health over TLS with the lab's client certificate: GET /health, all members at once. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "kha/lab.h"
#include "lab-internal.h"
#include "kha/banned.h"

#define BODY_MAX 1024

struct check {
	CURL *easy;
	char body[BODY_MAX];
	size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct check *c = userdata;
	size_t n = size * nmemb, room = sizeof(c->body) - 1 - c->len;

	n = KHA_MIN(n, room);
	memcpy(c->body + c->len, data, n);
	c->len += n;
	c->body[c->len] = '\0';
	return size * nmemb;
}

/* etcd answers {"health":"true"} (200) or {"health":"false"} (503). */
static int verdict(struct check *c)
{
	json_t *root = json_loads(c->body, 0, NULL);
	const char *h = json_string_value(json_object_get(root, "health"));
	int r = h && strcmp(h, "true") == 0 ? 1 : 0;

	json_decref(root);
	return r;
}

static CURL *new_easy(const struct kha_lab *lab, const struct kha_lab_master *m, struct check *c,
		      long timeout_ms, char *url, size_t url_size)
{
	CURL *e = curl_easy_init();

	if (!e)
		return NULL;
	snprintf(url, url_size, "%s/health", m->client_url);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* loopback: never through an http_proxy */
	curl_easy_setopt(e, CURLOPT_CAINFO, lab->ca_cert);
	curl_easy_setopt(e, CURLOPT_SSLCERT, lab->client_cert);
	curl_easy_setopt(e, CURLOPT_SSLKEY, lab->client_key);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	return e;
}

void kha_lab__health(const struct kha_lab *lab, const bool *want, uint64_t timeout_us, int *ret)
{
	struct check checks[KHA_LAB_MAX_MASTERS] = {0};
	char url[256];
	long timeout_ms = (long)KHA_MAX(timeout_us / 1000, 1);
	CURLM *multi = curl_multi_init();
	int running = 0;
	CURLMsg *msg;
	int left;

	for (size_t i = 0; i < lab->n_masters && i < KHA_LAB_MAX_MASTERS; i++)
		if (!want || want[i])
			ret[i] = -1;
	if (!multi)
		return;
	for (size_t i = 0; i < lab->n_masters && i < KHA_LAB_MAX_MASTERS; i++) {
		if (want && !want[i])
			continue;
		checks[i].easy =
			new_easy(lab, &lab->masters[i], &checks[i], timeout_ms, url, sizeof(url));
		if (checks[i].easy && curl_multi_add_handle(multi, checks[i].easy) != CURLM_OK) {
			curl_easy_cleanup(checks[i].easy);
			checks[i].easy = NULL;
		}
	}
	/* every transfer has its own timeout, so this loop ends */
	do {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		if (running && curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	} while (running);
	while ((msg = curl_multi_info_read(multi, &left))) {
		struct check *c = NULL;
		long code = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (c && msg->data.result == CURLE_OK && code > 0)
			ret[c - checks] = verdict(c);
	}
	for (size_t i = 0; i < KHA_LAB_MAX_MASTERS; i++) {
		if (!checks[i].easy)
			continue;
		curl_multi_remove_handle(multi, checks[i].easy);
		curl_easy_cleanup(checks[i].easy);
	}
	curl_multi_cleanup(multi);
}

void kha_lab_health(const struct kha_lab *lab, uint64_t timeout_us, int *ret_health)
{
	kha_lab__health(lab, NULL, timeout_us, ret_health);
}

/* ---- the node's proxy ---- */

#define HTTP_BODY_MAX (256 * 1024)

struct grow_buf {
	char *data;
	size_t len;
	bool full;
};

static size_t on_grow(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct grow_buf *b = userdata;
	size_t n = size * nmemb;
	char *nd;

	if (b->full || b->len + n + 1 > HTTP_BODY_MAX) {
		b->full = true;
		return size * nmemb;
	}
	nd = realloc(b->data, b->len + n + 1);
	if (!nd) {
		b->full = true;
		return size * nmemb;
	}
	b->data = nd;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return size * nmemb;
}

long kha_lab__http_get(const char *url, uint64_t timeout_us, char **ret_body)
{
	struct grow_buf b = {0};
	CURL *e = curl_easy_init();
	long timeout_ms = (long)KHA_MAX(timeout_us / 1000, 1), code = -1;

	if (ret_body)
		*ret_body = NULL;
	if (!e)
		return -1;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_grow);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(e);
	if (code > 0 && ret_body && !b.full)
		*ret_body = KHA_TAKE_PTR(b.data);
	free(b.data);
	return code > 0 ? code : -1;
}

void kha_lab_entry_status(const struct kha_lab *lab, uint64_t timeout_us,
			  struct kha_lab_entry_status *ret)
{
	kha_autofree char *body = NULL;
	json_t *root, *backends, *b;
	char url[128];
	size_t i;

	*ret = (struct kha_lab_entry_status){0};
	if (!lab->node.metrics_addr)
		return;
	snprintf(url, sizeof(url), "http://%s/status", lab->node.metrics_addr);
	if (kha_lab__http_get(url, timeout_us, &body) != 200 || !body)
		return;
	root = json_loads(body, 0, NULL);
	ret->answered = root != NULL;
	ret->ready = json_is_true(json_object_get(root, "ready"));
	backends = json_object_get(root, "backends");
	json_array_foreach (backends, i, b) {
		const char *addr = json_string_value(json_object_get(b, "address"));
		const char *state = json_string_value(json_object_get(b, "state"));
		char want[32];

		if (!addr || !state)
			continue;
		for (size_t m = 0; m < lab->n_masters && m < KHA_LAB_MAX_MASTERS; m++) {
			if (lab->masters[m].address) /* a Kubernetes lab: the apiservers */
				snprintf(want, sizeof(want), "%s:6443", lab->masters[m].address);
			else
				snprintf(want, sizeof(want), "127.0.0.1:%u",
					 lab->masters[m].client_port);
			if (strcmp(addr, want) == 0) {
				snprintf(ret->state[m], sizeof(ret->state[m]), "%s", state);
				ret->up += strcmp(state, "up") == 0;
			}
		}
	}
	json_decref(root);
}
