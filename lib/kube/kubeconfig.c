// SPDX-License-Identifier: MIT
/*
 * kubeconfig loading: --kubeconfig, then the first file of $KUBECONFIG, then the in-cluster
 * service account. The YAML is loaded as a document tree (libyaml) and walked field by field,
 * so that each error names the file and the field, as "clusters["prod"].cluster.server".
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "kha/parse.h"
#include "kube-internal.h"
#include "kha/banned.h"

#define MAX_KUBECONFIG (4u << 20)
#define MAX_PEM_FILE   (1u << 20)

struct walk {
	yaml_document_t *doc;
	const char *path; /* for messages */
	char *dir;	  /* to resolve relative paths */
	struct kha_diag *d;
};

void kha_kube_config_free(struct kha_kube_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->source);
	free(cfg->context);
	free(cfg->namespace);
	free(cfg->server);
	free(cfg->tls_server_name);
	free(cfg->ca_file);
	free(cfg->ca_data.data);
	free(cfg->cert_file);
	free(cfg->cert_data.data);
	free(cfg->key_file);
	if (cfg->key_data.data)
		OPENSSL_cleanse(cfg->key_data.data, cfg->key_data.len);
	free(cfg->key_data.data);
	if (cfg->token)
		OPENSSL_cleanse(cfg->token, strlen(cfg->token));
	free(cfg->token);
	free(cfg->token_file);
	free(cfg->proxy_url);
	free(cfg);
}

int kha_kube__base64_decode(const char *in, size_t len, struct kha_kube_blob *ret)
{
	EVP_ENCODE_CTX *ctx;
	unsigned char *out;
	int n = 0, fin = 0, r;

	if (len > INT_MAX / 2)
		return -EINVAL;
	out = malloc(len / 4 * 3 + 80);
	ctx = EVP_ENCODE_CTX_new();
	if (!out || !ctx) {
		free(out);
		EVP_ENCODE_CTX_free(ctx);
		return -ENOMEM;
	}
	EVP_DecodeInit(ctx);
	r = EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)in, (int)len);
	if (r >= 0)
		r = EVP_DecodeFinal(ctx, out + n, &fin);
	EVP_ENCODE_CTX_free(ctx);
	if (r < 0 || n + fin == 0) {
		free(out);
		return -EINVAL;
	}
	ret->data = out;
	ret->len = (size_t)(n + fin);
	return 0;
}

/* What a PEM field must hold: certificates or a private key. */
enum pem_kind {
	PEM_CERT,
	PEM_KEY,
};

static bool pem_valid(const void *data, size_t len, enum pem_kind kind)
{
	BIO *bio = BIO_new_mem_buf(data, (int)KHA_MIN(len, (size_t)INT_MAX));
	bool ok = false;

	if (!bio)
		return false;
	if (kind == PEM_CERT) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		ok = x != NULL;
		X509_free(x);
	} else {
		/* no passphrase callback: an encrypted key is not usable unattended */
		EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");

		ok = k != NULL;
		EVP_PKEY_free(k);
	}
	BIO_free(bio);
	return ok;
}

/* Reads a small regular file entirely. Returns 0, -errno or -EFBIG. */
static int read_small_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	kha_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	kha_autofree char *buf = NULL;
	struct stat st;
	size_t len = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret = KHA_TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

static const char *err_text(int err)
{
	return err == -EFBIG	? "file too large"
	       : err == -EISDIR ? "not a regular file"
				: strerror(-err);
}

/* ---- YAML tree helpers ---- */

static yaml_node_t *node(struct walk *w, int idx)
{
	return idx ? yaml_document_get_node(w->doc, idx) : NULL;
}

static yaml_node_t *map_get(struct walk *w, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(w, p->key);

		if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return node(w, p->value);
	}
	return NULL;
}

/* A YAML null: absent, "~", "null", or an empty plain scalar. */
static bool is_null(const yaml_node_t *n)
{
	const char *v;

	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/*
 * Gets string field key of map into *ret (NULL when absent or null; "" stays ""). where is the
 * field's parent for messages ("clusters[\"x\"].cluster").
 */
static int get_str(struct walk *w, yaml_node_t *map, const char *where, const char *key,
		   const char **ret)
{
	yaml_node_t *n = map_get(w, map, key);

	*ret = NULL;
	if (is_null(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.%s: expected a string",
				    w->path, where, key);
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.%s: NUL byte in value",
				    w->path, where, key);
	*ret = (const char *)n->data.scalar.value;
	return 0;
}

static int dup_str(struct walk *w, const char *s, char **ret)
{
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : kha_diag_set(w->d, ENOMEM, "out of memory");
}

/* 0 when n (not null) is a sequence; otherwise says that top-level field key is not a list. */
static int expect_list(struct walk *w, const char *key, const yaml_node_t *n)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return 0;
	return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s: expected a list, found a %s", w->path,
			    key, n->type == YAML_MAPPING_NODE ? "mapping" : "scalar");
}

/* Finds the element of sequence key whose "name" is name; returns its `inner` mapping. */
static int find_named(struct walk *w, yaml_node_t *root, const char *key, const char *name,
		      const char *inner, yaml_node_t **ret)
{
	yaml_node_t *seq = map_get(w, root, key);
	yaml_node_item_t *it;

	*ret = NULL;
	if (is_null(seq))
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s: \"%s\" not found (no %s)",
				    w->path, key, name, key);
	if (expect_list(w, key, seq) < 0)
		return -EINVAL;
	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *el = node(w, *it);
		const char *n;

		if (!el || el->type != YAML_MAPPING_NODE)
			return kha_diag_set(w->d, EINVAL,
					    "kubeconfig %s: %s[%td]: expected a mapping", w->path,
					    key, it - seq->data.sequence.items.start);
		if (get_str(w, el, key, "name", &n) < 0)
			return -EINVAL;
		if (!n || strcmp(n, name) != 0)
			continue;
		*ret = map_get(w, el, inner);
		if (is_null(*ret) || (*ret)->type != YAML_MAPPING_NODE)
			return kha_diag_set(
				w->d, EINVAL,
				"kubeconfig %s: %s[\"%s\"].%s: missing or not a mapping", w->path,
				key, name, inner);
		return 0;
	}
	return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s: \"%s\" not found", w->path, key,
			    name);
}

/* Resolves a path field against the kubeconfig's directory and checks its PEM content. */
static int resolve_pem_file(struct walk *w, const char *where, const char *key, const char *file,
			    enum pem_kind kind, char **ret)
{
	kha_autofree char *abs = NULL, *content = NULL;
	size_t len;
	int r;

	if (file[0] == '\0')
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.%s: empty path", w->path,
				    where, key);
	if (file[0] == '/')
		abs = strdup(file);
	else if (asprintf(&abs, "%s/%s", w->dir, file) < 0)
		abs = NULL;
	if (!abs)
		return kha_diag_set(w->d, ENOMEM, "out of memory");
	r = read_small_file(abs, MAX_PEM_FILE, &content, &len);
	if (r < 0)
		return kha_diag_set(w->d, r == -EFBIG || r == -EISDIR ? -EINVAL : r,
				    "kubeconfig %s: %s.%s: %s: %s", w->path, where, key, abs,
				    err_text(r));
	if (!pem_valid(content, len, kind))
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.%s: %s: no PEM %s in it",
				    w->path, where, key, abs,
				    kind == PEM_CERT ? "certificate" : "unencrypted private key");
	if (kind == PEM_KEY)
		OPENSSL_cleanse(content, len);
	*ret = KHA_TAKE_PTR(abs);
	return 0;
}

static int decode_pem_data(struct walk *w, const char *where, const char *key, const char *b64,
			   enum pem_kind kind, struct kha_kube_blob *ret)
{
	int r = kha_kube__base64_decode(b64, strlen(b64), ret);

	if (r == -ENOMEM)
		return kha_diag_set(w->d, ENOMEM, "out of memory");
	if (r < 0)
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.%s: invalid base64", w->path,
				    where, key);
	if (!pem_valid(ret->data, ret->len, kind)) {
		free(ret->data);
		ret->data = NULL;
		ret->len = 0;
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.%s: no PEM %s in it", w->path,
				    where, key,
				    kind == PEM_CERT ? "certificate" : "unencrypted private key");
	}
	return 0;
}

/* One of "X" (a file) or "X-data" (inline base64): the data wins, as in kubectl. */
static int get_pem(struct walk *w, yaml_node_t *map, const char *where, const char *key,
		   enum pem_kind kind, char **ret_file, struct kha_kube_blob *ret_data)
{
	char data_key[64];
	const char *file, *data;

	snprintf(data_key, sizeof(data_key), "%s-data", key);
	if (get_str(w, map, where, key, &file) < 0 || get_str(w, map, where, data_key, &data) < 0)
		return -EINVAL;
	if (data && data[0])
		return decode_pem_data(w, where, data_key, data, kind, ret_data);
	if (file)
		return resolve_pem_file(w, where, key, file, kind, ret_file);
	return 0;
}

static int get_bool(struct walk *w, yaml_node_t *map, const char *where, const char *key, bool *ret)
{
	const char *s;

	*ret = false;
	if (get_str(w, map, where, key, &s) < 0)
		return -EINVAL;
	if (s && kha_parse_bool(s, ret) < 0)
		return kha_diag_set(w->d, EINVAL,
				    "kubeconfig %s: %s.%s: expected true or false, got '%s'",
				    w->path, where, key, s);
	return 0;
}

static int check_server(struct walk *w, const char *where, const char *server, char **ret)
{
	if (!server || !server[0])
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s.server: missing", w->path,
				    where);
	if (strstr(server, "://")) {
		if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
			return kha_diag_set(w->d, EINVAL,
					    "kubeconfig %s: %s.server: '%s': not an http(s) URL",
					    w->path, where, server);
		return dup_str(w, server, ret);
	}
	/* client-go accepts "host:port" and means https */
	if (asprintf(ret, "https://%s", server) < 0) {
		*ret = NULL;
		return kha_diag_set(w->d, ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_cluster(struct walk *w, yaml_node_t *cl, const char *name,
			 struct kha_kube_config *cfg)
{
	char where[320];
	const char *server, *tsn, *proxy;
	int r;

	snprintf(where, sizeof(where), "clusters[\"%s\"].cluster", name);
	if (get_str(w, cl, where, "server", &server) < 0 ||
	    get_str(w, cl, where, "tls-server-name", &tsn) < 0 ||
	    get_str(w, cl, where, "proxy-url", &proxy) < 0 ||
	    get_bool(w, cl, where, "insecure-skip-tls-verify", &cfg->insecure_skip_tls_verify) < 0)
		return -EINVAL;
	r = check_server(w, where, server, &cfg->server);
	if (r < 0)
		return r;
	if (dup_str(w, tsn && tsn[0] ? tsn : NULL, &cfg->tls_server_name) < 0 ||
	    dup_str(w, proxy && proxy[0] ? proxy : NULL, &cfg->proxy_url) < 0)
		return -ENOMEM;
	r = get_pem(w, cl, where, "certificate-authority", PEM_CERT, &cfg->ca_file, &cfg->ca_data);
	if (r < 0)
		return r;
	if (cfg->insecure_skip_tls_verify && (cfg->ca_file || cfg->ca_data.data))
		/* as client-go: a CA and no verification contradict each other */
		return kha_diag_set(w->d, EINVAL,
				    "kubeconfig %s: %s: certificate-authority and "
				    "insecure-skip-tls-verify together (remove one)",
				    w->path, where);
	return 0;
}

static int parse_user(struct walk *w, yaml_node_t *u, const char *name, struct kha_kube_config *cfg)
{
	char where[320];
	const char *token, *token_file;
	bool has_cert, has_key;
	int r;

	snprintf(where, sizeof(where), "users[\"%s\"].user", name);
	r = get_pem(w, u, where, "client-certificate", PEM_CERT, &cfg->cert_file, &cfg->cert_data);
	if (r < 0)
		return r;
	r = get_pem(w, u, where, "client-key", PEM_KEY, &cfg->key_file, &cfg->key_data);
	if (r < 0)
		return r;
	has_cert = cfg->cert_file || cfg->cert_data.data;
	has_key = cfg->key_file || cfg->key_data.data;
	if (has_cert != has_key)
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: %s: %s without %s", w->path,
				    where, has_cert ? "client-certificate" : "client-key",
				    has_cert ? "client-key" : "client-certificate");
	if (get_str(w, u, where, "token", &token) < 0 ||
	    get_str(w, u, where, "tokenFile", &token_file) < 0)
		return -EINVAL;
	if (token && token[0]) {
		if (strpbrk(token, "\r\n"))
			return kha_diag_set(w->d, EINVAL,
					    "kubeconfig %s: %s.token: line break in it", w->path,
					    where);
		return dup_str(w, token, &cfg->token);
	}
	if (token_file && token_file[0]) {
		if (token_file[0] == '/')
			cfg->token_file = strdup(token_file);
		else if (asprintf(&cfg->token_file, "%s/%s", w->dir, token_file) < 0)
			cfg->token_file = NULL;
		if (!cfg->token_file)
			return kha_diag_set(w->d, ENOMEM, "out of memory");
		if (access(cfg->token_file, R_OK) < 0)
			return kha_diag_set(w->d, errno, "kubeconfig %s: %s.tokenFile: %s: %s",
					    w->path, where, cfg->token_file, strerror(errno));
		return 0;
	}
	if (!has_cert && (map_get(w, u, "exec") || map_get(w, u, "auth-provider")))
		return kha_diag_set(
			w->d, EINVAL,
			"kubeconfig %s: %s: exec and auth-provider credential plugins "
			"are not supported (use a token, tokenFile or client certificate)",
			w->path, where);
	return 0;
}

static int walk_config(struct walk *w, const char *context, struct kha_kube_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(w->doc), *ctx, *cl, *u = NULL;
	static const char *const lists[] = {"contexts", "clusters", "users"};
	const char *cluster_name, *user_name, *ns;
	int r;

	if (!root)
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: empty file", w->path);
	if (root->type != YAML_MAPPING_NODE)
		return kha_diag_set(w->d, EINVAL, "kubeconfig %s: expected a mapping at the top",
				    w->path);
	/* a list of the wrong shape is the error to report, before whatever it hides */
	for (size_t i = 0; i < KHA_ARRAY_SIZE(lists); i++) {
		yaml_node_t *n = map_get(w, root, lists[i]);

		if (!is_null(n) && expect_list(w, lists[i], n) < 0)
			return -EINVAL;
	}
	if (!context) {
		if (get_str(w, root, "(top)", "current-context", &context) < 0)
			return -EINVAL;
		if (!context || !context[0])
			return kha_diag_set(w->d, EINVAL,
					    "kubeconfig %s: no current-context (set it, or choose "
					    "a context)",
					    w->path);
	}
	if (dup_str(w, context, &cfg->context) < 0)
		return -ENOMEM;
	r = find_named(w, root, "contexts", context, "context", &ctx);
	if (r < 0)
		return r;
	if (get_str(w, ctx, "context", "cluster", &cluster_name) < 0 ||
	    get_str(w, ctx, "context", "user", &user_name) < 0 ||
	    get_str(w, ctx, "context", "namespace", &ns) < 0)
		return -EINVAL;
	if (!cluster_name || !cluster_name[0])
		return kha_diag_set(w->d, EINVAL,
				    "kubeconfig %s: contexts[\"%s\"].context.cluster: missing",
				    w->path, context);
	if (dup_str(w, ns && ns[0] ? ns : "default", &cfg->namespace) < 0)
		return -ENOMEM;
	r = find_named(w, root, "clusters", cluster_name, "cluster", &cl);
	if (r < 0)
		return r;
	r = parse_cluster(w, cl, cluster_name, cfg);
	if (r < 0)
		return r;
	if (user_name && user_name[0]) {
		r = find_named(w, root, "users", user_name, "user", &u);
		if (r < 0)
			return r;
		r = parse_user(w, u, user_name, cfg);
	}
	return r;
}

int kha_kube_config_parse(const char *text, size_t len, const char *path, const char *context,
			  struct kha_kube_config **ret, struct kha_diag *d)
{
	kha_auto(kha_kube_config_freep) struct kha_kube_config *cfg = NULL;
	kha_autofree char *pathcopy = NULL;
	yaml_parser_t parser;
	yaml_document_t doc;
	struct walk w = {.doc = &doc, .path = path ? path : "(text)", .d = d};
	int r;

	cfg = calloc(1, sizeof(*cfg));
	pathcopy = path ? strdup(path) : strdup(".");
	if (!cfg || !pathcopy)
		return kha_diag_set(d, ENOMEM, "out of memory");
	cfg->source = strdup(w.path);
	if (!cfg->source)
		return kha_diag_set(d, ENOMEM, "out of memory");
	w.dir = path ? dirname(pathcopy) : pathcopy;
	if (len > MAX_KUBECONFIG)
		return kha_diag_set(d, EINVAL, "kubeconfig %s: larger than %u MiB", w.path,
				    MAX_KUBECONFIG >> 20);
	if (!yaml_parser_initialize(&parser))
		return kha_diag_set(d, ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = kha_diag_set(d, EINVAL, "kubeconfig %s: line %zu: malformed YAML: %s", w.path,
				 parser.problem_mark.line + 1,
				 parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		return r;
	}
	yaml_parser_delete(&parser);
	r = walk_config(&w, context, cfg);
	yaml_document_delete(&doc);
	if (r < 0)
		return r;
	*ret = KHA_TAKE_PTR(cfg);
	return 0;
}

static int load_file(const char *path, const char *context, const char *origin,
		     struct kha_kube_config **ret, struct kha_diag *d)
{
	kha_autofree char *text = NULL;
	size_t len;
	int r;

	r = read_small_file(path, MAX_KUBECONFIG, &text, &len);
	if (r < 0)
		return kha_diag_set(d, r == -EFBIG || r == -EISDIR ? -EINVAL : r,
				    "kubeconfig %s (%s): %s", path, origin, err_text(r));
	return kha_kube_config_parse(text, len, path, context, ret, d);
}

static int load_in_cluster(const char *sa_dir, struct kha_kube_config **ret, struct kha_diag *d)
{
	kha_auto(kha_kube_config_freep) struct kha_kube_config *cfg = NULL;
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	kha_autofree char *ns = NULL;
	size_t len;
	uint64_t p;
	int r;

	if (!host || !host[0])
		return kha_diag_set(d, ENOENT,
				    "no Kubernetes configuration: no --kubeconfig, $KUBECONFIG is "
				    "unset and not in a pod ($KUBERNETES_SERVICE_HOST unset)");
	if (!port || kha_parse_u64(port, 1, 65535, &p) < 0)
		return kha_diag_set(d, EINVAL, "in-cluster: bad $KUBERNETES_SERVICE_PORT '%s'",
				    port ? port : "");
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return kha_diag_set(d, ENOMEM, "out of memory");
	r = asprintf(&cfg->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port);
	if (r < 0) {
		cfg->server = NULL;
		return kha_diag_set(d, ENOMEM, "out of memory");
	}
	cfg->source = strdup("in-cluster");
	if (asprintf(&cfg->ca_file, "%s/ca.crt", sa_dir) < 0)
		cfg->ca_file = NULL;
	if (asprintf(&cfg->token_file, "%s/token", sa_dir) < 0)
		cfg->token_file = NULL;
	if (!cfg->source || !cfg->ca_file || !cfg->token_file)
		return kha_diag_set(d, ENOMEM, "out of memory");
	if (access(cfg->token_file, R_OK) < 0)
		return kha_diag_set(d, errno, "in-cluster: service account token %s: %s",
				    cfg->token_file, strerror(errno));
	{
		kha_autofree char *ca = NULL;

		r = read_small_file(cfg->ca_file, MAX_PEM_FILE, &ca, &len);
		if (r < 0)
			return kha_diag_set(d, r == -EFBIG || r == -EISDIR ? -EINVAL : r,
					    "in-cluster: service account CA %s: %s", cfg->ca_file,
					    err_text(r));
		if (!pem_valid(ca, len, PEM_CERT))
			return kha_diag_set(d, EINVAL,
					    "in-cluster: service account CA %s: no PEM certificate",
					    cfg->ca_file);
	}
	{
		kha_autofree char *nspath = NULL;

		if (asprintf(&nspath, "%s/namespace", sa_dir) < 0)
			return kha_diag_set(d, ENOMEM, "out of memory");
		if (read_small_file(nspath, 256, &ns, &len) == 0)
			ns[strcspn(ns, " \t\r\n")] = '\0';
	}
	cfg->namespace = strdup(ns && ns[0] ? ns : "default");
	if (!cfg->namespace)
		return kha_diag_set(d, ENOMEM, "out of memory");
	*ret = KHA_TAKE_PTR(cfg);
	return 0;
}

int kha_kube_config_load(const struct kha_kube_load_opts *opts, struct kha_kube_config **ret,
			 struct kha_diag *d)
{
	static const struct kha_kube_load_opts none = {};
	const char *env;

	if (!opts)
		opts = &none;
	if (opts->kubeconfig && opts->kubeconfig[0])
		return load_file(opts->kubeconfig, opts->context, "--kubeconfig", ret, d);
	env = getenv("KUBECONFIG");
	if (env && env[0]) {
		/* only the first file of the list: kha does not merge kubeconfigs */
		kha_autofree char *first = strndup(env, strcspn(env, ":"));

		if (!first)
			return kha_diag_set(d, ENOMEM, "out of memory");
		if (first[0])
			return load_file(first, opts->context, "$KUBECONFIG", ret, d);
	}
	return load_in_cluster(opts->serviceaccount_dir && opts->serviceaccount_dir[0]
				       ? opts->serviceaccount_dir
				       : KHA_KUBE_SERVICEACCOUNT_DIR,
			       ret, d);
}
