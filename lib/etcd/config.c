// SPDX-License-Identifier: MIT
/* etcdctl's connection flags and ETCDCTL_* variables, shared by every command that talks to etcd. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kha/etcd.h"
#include "kha/parse.h"
#include "kha/banned.h"

static void free_endpoints(struct kha_etcd_config *cfg)
{
	for (size_t i = 0; i < cfg->n_endpoints; i++)
		free(cfg->endpoints[i]);
	free(cfg->endpoints);
	cfg->endpoints = NULL;
	cfg->n_endpoints = 0;
}

void kha_etcd_config_release(struct kha_etcd_config *cfg)
{
	if (!cfg)
		return;
	free_endpoints(cfg);
	free(cfg->cacert);
	free(cfg->cert);
	free(cfg->key);
	memset(cfg, 0, sizeof(*cfg));
}

int kha_etcd_config_init(struct kha_etcd_config *cfg)
{
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->dial_timeout_us = KHA_ETCD_DEFAULT_DIAL_TIMEOUT_US;
	cfg->command_timeout_us = KHA_ETCD_DEFAULT_COMMAND_TIMEOUT_US;
	r = kha_etcd_config_set_endpoints(cfg, KHA_ETCD_DEFAULT_ENDPOINT, NULL);
	cfg->endpoints_default = true;
	return r;
}

static int dup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

int kha_etcd_config_copy(struct kha_etcd_config *dst, const struct kha_etcd_config *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->dial_timeout_us = src->dial_timeout_us;
	dst->command_timeout_us = src->command_timeout_us;
	dst->endpoints_default = src->endpoints_default;
	if (dup_or_null(src->cacert, &dst->cacert) < 0 || dup_or_null(src->cert, &dst->cert) < 0 ||
	    dup_or_null(src->key, &dst->key) < 0)
		goto nomem;
	if (src->n_endpoints) {
		dst->endpoints = calloc(src->n_endpoints, sizeof(char *));
		if (!dst->endpoints)
			goto nomem;
		for (size_t i = 0; i < src->n_endpoints; i++) {
			dst->endpoints[i] = strdup(src->endpoints[i]);
			if (!dst->endpoints[i])
				goto nomem;
			dst->n_endpoints = i + 1;
		}
	}
	return 0;
nomem:
	kha_etcd_config_release(dst);
	return -ENOMEM;
}

/* Validates one endpoint and returns a trimmed copy without a trailing '/'. */
static int endpoint_dup(const char *s, size_t len, char **ret, struct kha_diag *d)
{
	const char *sep;
	char *e;

	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '/'))
		len--;
	if (!len)
		return 0;
	e = strndup(s, len);
	if (!e)
		return kha_diag_set(d, ENOMEM, "out of memory");
	sep = strstr(e, "://");
	if (sep && strncasecmp(e, "http://", 7) != 0 && strncasecmp(e, "https://", 8) != 0) {
		kha_diag_set(d, EINVAL,
			     "endpoint '%s': unsupported scheme (use http:// or https://)", e);
		free(e);
		return -EINVAL;
	}
	if ((sep && !sep[3]) || strpbrk(e, " \t\r\n,")) {
		kha_diag_set(d, EINVAL, "endpoint '%s' is not a URL", e);
		free(e);
		return -EINVAL;
	}
	*ret = e;
	return 1;
}

int kha_etcd_config_set_endpoints(struct kha_etcd_config *cfg, const char *list, struct kha_diag *d)
{
	char **eps = NULL;
	size_t n = 0, cap = 0;
	const char *p = list ? list : "";
	int r;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *e = NULL;

		r = endpoint_dup(p, len, &e, d);
		if (r < 0)
			goto fail;
		if (r > 0) {
			if (KHA_GROW(eps, cap, n + 1) < 0) {
				free(e);
				r = kha_diag_set(d, ENOMEM, "out of memory");
				goto fail;
			}
			eps[n++] = e;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!n) {
		r = kha_diag_set(d, EINVAL, "no endpoint given");
		goto fail;
	}
	free_endpoints(cfg);
	cfg->endpoints = eps;
	cfg->n_endpoints = n;
	cfg->endpoints_default = false;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		free(eps[i]);
	free(eps);
	return r;
}

static int set_path(char **dst, const char *arg, const char *flag, struct kha_diag *d)
{
	char *s;

	if (!arg || !*arg)
		return kha_diag_set(d, EINVAL, "%s: empty path", flag);
	s = strdup(arg);
	if (!s)
		return kha_diag_set(d, ENOMEM, "out of memory");
	free(*dst);
	*dst = s;
	return 0;
}

static int set_duration(uint64_t *dst, const char *arg, const char *flag, struct kha_diag *d)
{
	uint64_t us;

	if (kha_parse_duration_us(arg, &us) < 0 || us == 0)
		return kha_diag_set(d, EINVAL,
				    "%s: '%s' is not a positive duration (e.g. 2s, 500ms)", flag,
				    arg ? arg : "");
	*dst = us;
	return 0;
}

/* etcdctl dials its default endpoint with TLS once TLS files are given; so do we. */
static int default_to_tls(struct kha_etcd_config *cfg, struct kha_diag *d)
{
	int r;

	if (!cfg->endpoints_default)
		return 0;
	r = kha_etcd_config_set_endpoints(cfg, KHA_ETCD_DEFAULT_TLS_ENDPOINT, d);
	cfg->endpoints_default = true;
	return r;
}

static int apply(struct kha_etcd_config *cfg, int val, const char *arg, const char *flag,
		 struct kha_diag *d)
{
	int r;

	switch (val) {
	case KHA_ETCD_OPT_ENDPOINTS:
		r = kha_etcd_config_set_endpoints(cfg, arg, d);
		if (r < 0)
			kha_diag_prefix(d, "%s", flag);
		return r;
	case KHA_ETCD_OPT_CACERT:
		r = set_path(&cfg->cacert, arg, flag, d);
		return r < 0 ? r : default_to_tls(cfg, d);
	case KHA_ETCD_OPT_CERT:
		r = set_path(&cfg->cert, arg, flag, d);
		return r < 0 ? r : default_to_tls(cfg, d);
	case KHA_ETCD_OPT_KEY:
		return set_path(&cfg->key, arg, flag, d);
	case KHA_ETCD_OPT_DIAL_TIMEOUT:
		return set_duration(&cfg->dial_timeout_us, arg, flag, d);
	case KHA_ETCD_OPT_COMMAND_TIMEOUT:
		return set_duration(&cfg->command_timeout_us, arg, flag, d);
	default:
		return -ENOENT;
	}
}

int kha_etcd_config_apply_opt(struct kha_etcd_config *cfg, int val, const char *arg,
			      struct kha_diag *d)
{
	static const char *const flags[] = {
		"--endpoints", "--cacert", "--cert", "--key", "--dial-timeout", "--command-timeout",
	};

	if (val < KHA_ETCD_OPT_ENDPOINTS || val > KHA_ETCD_OPT_LAST)
		return kha_diag_set(d, ENOENT, "unknown option");
	return apply(cfg, val, arg, flags[val - KHA_ETCD_OPT_ENDPOINTS], d);
}

int kha_etcd_config_from_env(struct kha_etcd_config *cfg, struct kha_diag *d)
{
	static const struct {
		const char *name;
		int val;
	} vars[] = {
		{"ETCDCTL_ENDPOINTS", KHA_ETCD_OPT_ENDPOINTS},
		{"ETCDCTL_CACERT", KHA_ETCD_OPT_CACERT},
		{"ETCDCTL_CERT", KHA_ETCD_OPT_CERT},
		{"ETCDCTL_KEY", KHA_ETCD_OPT_KEY},
		{"ETCDCTL_DIAL_TIMEOUT", KHA_ETCD_OPT_DIAL_TIMEOUT},
		{"ETCDCTL_COMMAND_TIMEOUT", KHA_ETCD_OPT_COMMAND_TIMEOUT},
	};

	for (size_t i = 0; i < KHA_ARRAY_SIZE(vars); i++) {
		const char *v = getenv(vars[i].name);
		int r;

		if (!v || !*v)
			continue;
		r = apply(cfg, vars[i].val, v, vars[i].name, d);
		if (r < 0)
			return r;
	}
	return 0;
}
