// SPDX-License-Identifier: MIT
/*
 * Decoders of the gateway's replies: pure functions from JSON text to the structs of
 * kha/etcd.h. Protobuf's JSON mapping omits zero values, so every field is optional; what is
 * present must have the right type (64-bit integers as strings, bytes as base64).
 */
#include <stdio.h>
#include <string.h>

#include "kha/etcd.h"
#include "kha/json.h"
#include "kha/banned.h"

#define TRY(expr)                 \
	do {                      \
		r = (expr);       \
		if (r < 0)        \
			goto out; \
	} while (0)

static const char *const grpc_names[] = {
	"OK",
	"Canceled",
	"Unknown",
	"InvalidArgument",
	"DeadlineExceeded",
	"NotFound",
	"AlreadyExists",
	"PermissionDenied",
	"ResourceExhausted",
	"FailedPrecondition",
	"Aborted",
	"OutOfRange",
	"Unimplemented",
	"Internal",
	"Unavailable",
	"DataLoss",
	"Unauthenticated",
};

const char *kha_etcd_grpc_code_name(int code)
{
	if (code >= 0 && (size_t)code < KHA_ARRAY_SIZE(grpc_names))
		return grpc_names[code];
	return "code?";
}

int kha_etcd_errno_from_grpc(int code)
{
	switch (code) {
	case 1:	 /* Canceled */
	case 10: /* Aborted */
		return -ECANCELED;
	case 3:
		return -EINVAL;
	case 4:
		return -ETIMEDOUT;
	case 5:
		return -ENOENT;
	case 6:
		return -EEXIST;
	case 7:
	case 16:
		return -EACCES;
	case 8:
		return -ENOSPC;
	case 9:
		return -EPERM;
	case 11:
		return -ERANGE;
	case 12:
		return -EOPNOTSUPP;
	case 14:
		return -EAGAIN;
	default:
		return -EPROTO;
	}
}

static void copy_message(char *dst, size_t size, const char *src)
{
	size_t o = 0;

	/* one line of printable text: the message ends up in a terminal */
	for (; src && *src && o + 1 < size; src++)
		dst[o++] = (*src >= 0x20 && *src < 0x7f) ? *src : '?';
	dst[o] = '\0';
}

static int error_from_json(const json_t *j, struct kha_etcd_error *ret)
{
	json_t *e = json_object_get(j, "error");
	json_t *code, *msg;

	if (!json_is_object(j))
		return -EBADMSG;
	if (!e) {
		/*
		 * etcd 3.5 and later (grpc-gateway v2) answer a failed call with the gRPC status
		 * alone: {"code":14,"message":"etcdserver: unhealthy cluster"} (and "details" when
		 * it has any). An object of exactly these keys is that status; a reply that merely
		 * has a field named code is not.
		 */
		const char *key;
		json_t *v;

		json_object_foreach ((json_t *)j, key, v)
			if (strcmp(key, "code") != 0 && strcmp(key, "message") != 0 &&
			    strcmp(key, "details") != 0)
				return -EBADMSG;
		code = json_object_get(j, "code");
		msg = json_object_get(j, "message");
		if (!json_is_string(msg))
			return -EBADMSG;
	} else if (json_is_object(e)) {
		/* a stream's error: {"error":{"grpc_code":14,"http_code":503,"message":...}} */
		code = json_object_get(e, "grpc_code");
		if (!code)
			code = json_object_get(e, "code");
		msg = json_object_get(e, "message");
	} else if (json_is_string(e)) {
		code = json_object_get(j, "code");
		msg = json_object_get(j, "message");
		if (!json_is_string(msg))
			msg = e;
	} else {
		return -EBADMSG;
	}
	if (!json_is_integer(code))
		return -EBADMSG;
	ret->grpc_code = (int)json_integer_value(code);
	if (json_integer_value(code) < 0 || json_integer_value(code) > 1000)
		ret->grpc_code = 2;
	copy_message(ret->message, sizeof(ret->message),
		     json_is_string(msg) ? json_string_value(msg) : "");
	return 0;
}

const char *kha_etcd_error_hint(const char *message)
{
	static const struct {
		const char *said, *hint;
	} hints[] = {
		{"unhealthy cluster",
		 "etcd's leader has not been connected to every voting member for 5 s: start the "
		 "members that are down or remove them (kha etcd status), then retry"},
		{"corrupt cluster",
		 "a CORRUPT alarm is active: kha etcd alarm list; the repair is kha etcd member "
		 "replace of the member it names (docs/etcd-ops.md)"},
		{"database space exceeded",
		 "a NOSPACE alarm is active: kha etcd defrag, then kha etcd alarm disarm --alarm "
		 "NOSPACE"},
		{"too many learner members", "promote or remove the waiting learner first"},
		{"can only promote a learner member which is in sync with leader",
		 "let the learner catch up, then promote it again"},
	};

	for (size_t i = 0; message && i < KHA_ARRAY_SIZE(hints); i++)
		if (strstr(message, hints[i].said))
			return hints[i].hint;
	return NULL;
}

int kha_etcd_error_diag(const struct kha_etcd_error *e, const char *prefix, struct kha_diag *d)
{
	const char *hint = kha_etcd_error_hint(e->message);

	return kha_diag_set(d, kha_etcd_errno_from_grpc(e->grpc_code), "%s%s (gRPC %s)%s%s",
			    prefix ? prefix : "", e->message[0] ? e->message : "error",
			    kha_etcd_grpc_code_name(e->grpc_code), hint ? ": " : "",
			    hint ? hint : "");
}

int kha_etcd_decode_error(const char *text, size_t len, struct kha_etcd_error *ret)
{
	kha_auto(json_decrefp) json_t *j = NULL;

	if (kha_json_parse(text, len, &j, NULL) < 0)
		return -EBADMSG;
	return error_from_json(j, ret);
}

/*
 * Parses a reply, unwraps a stream line's {"result": ...}, and turns an error object into its
 * errno (with "message (gRPC Name)" in the diag). *ret_root is borrowed from *ret_doc.
 */
static int parse_reply(const char *text, size_t len, json_t **ret_doc, json_t **ret_root,
		       struct kha_diag *d)
{
	struct kha_etcd_error e;
	json_t *j = NULL, *res;
	int r;

	r = kha_json_parse(text, len, &j, d);
	if (r < 0)
		return r;
	if (!json_is_object(j)) {
		json_decref(j);
		return kha_diag_set(d, EBADMSG, "not a JSON object");
	}
	if (error_from_json(j, &e) == 0) {
		json_decref(j);
		return kha_etcd_error_diag(&e, NULL, d);
	}
	res = json_object_get(j, "result");
	if (res && !json_is_object(res)) {
		json_decref(j);
		return kha_diag_set(d, EBADMSG, "field 'result' is not an object");
	}
	*ret_doc = j;
	*ret_root = res ? res : j;
	return 0;
}

static int fail(int r, struct kha_diag *d, const char *what)
{
	if (r == -EBADMSG)
		kha_diag_prefix(d, "malformed %s reply", what);
	return r;
}

/*
 * The one body of the gateway decoders: parse the reply (an {"error":...} answer becomes its
 * errno), zero *ret, fill it with from_json (which releases what it built when it fails) and
 * name the reply in a malformed-reply diag.
 */
typedef int (*from_json_fn)(const json_t *o, void *ret, struct kha_diag *d);

static int decode(const char *text, size_t len, from_json_fn from_json, void *ret, size_t size,
		  const char *what, struct kha_diag *d)
{
	kha_auto(json_decrefp) json_t *doc = NULL;
	json_t *o;
	int r;

	memset(ret, 0, size);
	TRY(parse_reply(text, len, &doc, &o, d));
	TRY(from_json(o, ret, d));
out:
	return fail(r, d, what);
}

/* kha_etcd_decode_<name>(text, len, type *ret, d) over from_json(o, type *ret, d). */
#define DECODER(name, type, from_json, what)                                                    \
	static int name##_any(const json_t *o, void *ret, struct kha_diag *d)                   \
	{                                                                                       \
		return from_json(o, ret, d);                                                    \
	}                                                                                       \
	int kha_etcd_decode_##name(const char *text, size_t len, type *ret, struct kha_diag *d) \
	{                                                                                       \
		return decode(text, len, name##_any, ret, sizeof(*ret), what, d);               \
	}

static int header_from_json(const json_t *obj, struct kha_etcd_header *h, struct kha_diag *d)
{
	json_t *hj;
	int r;

	memset(h, 0, sizeof(*h));
	TRY(kha_json_object(obj, "header", &hj, d));
	if (!hj)
		return 0;
	TRY(kha_json_u64(hj, "cluster_id", &h->cluster_id, d));
	TRY(kha_json_u64(hj, "member_id", &h->member_id, d));
	TRY(kha_json_i64(hj, "revision", &h->revision, d));
	TRY(kha_json_u64(hj, "raft_term", &h->raft_term, d));
out:
	if (r < 0)
		kha_diag_prefix(d, "header");
	return r;
}

void kha_etcd_kv_release(struct kha_etcd_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

static int kv_from_json(const json_t *o, struct kha_etcd_kv *kv, struct kha_diag *d)
{
	int r;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(o))
		return kha_diag_set(d, EBADMSG, "a kv is not an object");
	TRY(kha_json_base64(o, "key", &kv->key, &kv->key_len, d));
	TRY(kha_json_base64(o, "value", &kv->value, &kv->value_len, d));
	TRY(kha_json_i64(o, "create_revision", &kv->create_revision, d));
	TRY(kha_json_i64(o, "mod_revision", &kv->mod_revision, d));
	TRY(kha_json_i64(o, "version", &kv->version, d));
	TRY(kha_json_i64(o, "lease", &kv->lease, d));
out:
	if (r < 0)
		kha_etcd_kv_release(kv);
	return r;
}

/*
 * obj[name] as an optional array of at most max elements: a server is not trusted to bound what
 * it sends (a fake member listing 20,000 members once made `kha etcd status` take 13 s and
 * 614 MB). Borrowed reference.
 */
static int array_at_most(const json_t *obj, const char *name, size_t max, json_t **ret,
			 struct kha_diag *d)
{
	int r = kha_json_array(obj, name, ret, d);

	if (r < 0 || !*ret || json_array_size(*ret) <= max)
		return r;
	return kha_diag_set(d, EBADMSG,
			    "field '%s' has %zu elements, more than kha accepts (%zu): is this "
			    "server an etcd member?",
			    name, json_array_size(*ret), max);
}

/* Decodes one element of an array into *elem (zeroed): see items_from_json. */
typedef int (*item_from_json_fn)(const json_t *v, void *elem, struct kha_diag *d);

/*
 * Decodes obj[name], an optional array of at most max elements, into a new array of elements of
 * size bytes each, calling fn once per element. On success *ret_items (owned; NULL when the
 * array is missing or empty) and *ret_n. On failure the diagnostic names the element
 * ("members[2]: ...") and *ret_items holds the *ret_n elements decoded before it, which the
 * caller's release function frees with the rest of its value (fn leaves its own element
 * released on failure).
 */
static int items_from_json(const json_t *obj, const char *name, size_t max, size_t size,
			   item_from_json_fn fn, void **ret_items, size_t *ret_n,
			   struct kha_diag *d)
{
	json_t *arr, *v;
	size_t i;
	int r = array_at_most(obj, name, max, &arr, d);

	if (r < 0 || !arr || !json_array_size(arr))
		return r;
	*ret_items = calloc(json_array_size(arr), size);
	if (!*ret_items)
		return kha_diag_set(d, ENOMEM, "out of memory");
	json_array_foreach (arr, i, v) {
		r = fn(v, (char *)*ret_items + i * size, d);
		if (r < 0) {
			kha_diag_prefix(d, "%s[%zu]", name, i);
			return r;
		}
		*ret_n = i + 1;
	}
	return 0;
}

/* items_from_json into a typed array field and its count (a statement expression: its value is
 * items_from_json's) */
#define ITEMS_FROM_JSON(obj, name, max, field, n_field, fn, d)                          \
	({                                                                              \
		void *items_ = NULL;                                                    \
		int r_ = items_from_json(obj, name, max, sizeof(*(field)), fn, &items_, \
					 &(n_field), d);                                \
		(field) = items_;                                                       \
		r_;                                                                     \
	})

/* An element decoder typed for items_from_json. */
#define ITEM_FN(fn, type)                                                     \
	static int fn##_item(const json_t *v, void *elem, struct kha_diag *d) \
	{                                                                     \
		return fn(v, (type *)elem, d);                                \
	}

ITEM_FN(kv_from_json, struct kha_etcd_kv)

/* One string of an array, copied. */
static int string_item(const json_t *v, void *elem, struct kha_diag *d)
{
	char **s = elem;

	if (!json_is_string(v))
		return kha_diag_set(d, EBADMSG, "a non-string element");
	*s = strndup(json_string_value(v), json_string_length(v));
	return *s ? 0 : kha_diag_set(d, ENOMEM, "out of memory");
}

/* Decodes obj[name], an optional array of strings, into a new array of copies. */
static int strings_from_json(const json_t *obj, const char *name, char ***ret, size_t *ret_n,
			     struct kha_diag *d)
{
	return ITEMS_FROM_JSON(obj, name, KHA_ETCD_MAX_STRINGS, *ret, *ret_n, string_item, d);
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- status ------------------------------------------------------------------------------ */

void kha_etcd_status_release(struct kha_etcd_status *s)
{
	if (!s)
		return;
	free(s->version);
	free_strings(s->errors, s->n_errors);
	memset(s, 0, sizeof(*s));
}

static int status_from_json(const json_t *o, struct kha_etcd_status *ret, struct kha_diag *d)
{
	int r;

	TRY(header_from_json(o, &ret->header, d));
	TRY(kha_json_strdup(o, "version", &ret->version, d));
	TRY(kha_json_i64(o, "dbSize", &ret->db_size, d));
	TRY(kha_json_i64(o, "dbSizeInUse", &ret->db_size_in_use, d));
	TRY(kha_json_u64(o, "leader", &ret->leader, d));
	TRY(kha_json_u64(o, "raftIndex", &ret->raft_index, d));
	TRY(kha_json_u64(o, "raftTerm", &ret->raft_term, d));
	TRY(kha_json_u64(o, "raftAppliedIndex", &ret->raft_applied_index, d));
	TRY(strings_from_json(o, "errors", &ret->errors, &ret->n_errors, d));
	TRY(kha_json_bool(o, "isLearner", &ret->is_learner, d));
out:
	if (r < 0)
		kha_etcd_status_release(ret);
	return r;
}

DECODER(status, struct kha_etcd_status, status_from_json, "status")

/* ---- members ------------------------------------------------------------------------------ */

void kha_etcd_member_release(struct kha_etcd_member *m)
{
	if (!m)
		return;
	free(m->name);
	free_strings(m->peer_urls, m->n_peer_urls);
	free_strings(m->client_urls, m->n_client_urls);
	memset(m, 0, sizeof(*m));
}

void kha_etcd_member_list_release(struct kha_etcd_member_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_members; i++)
		kha_etcd_member_release(&l->members[i]);
	free(l->members);
	memset(l, 0, sizeof(*l));
}

static int member_from_json(const json_t *o, struct kha_etcd_member *m, struct kha_diag *d)
{
	int r;

	memset(m, 0, sizeof(*m));
	if (!json_is_object(o))
		return kha_diag_set(d, EBADMSG, "a member is not an object");
	TRY(kha_json_u64(o, "ID", &m->id, d));
	TRY(kha_json_strdup(o, "name", &m->name, d));
	TRY(strings_from_json(o, "peerURLs", &m->peer_urls, &m->n_peer_urls, d));
	TRY(strings_from_json(o, "clientURLs", &m->client_urls, &m->n_client_urls, d));
	TRY(kha_json_bool(o, "isLearner", &m->is_learner, d));
out:
	if (r < 0)
		kha_etcd_member_release(m);
	return r;
}

ITEM_FN(member_from_json, struct kha_etcd_member)

static int members_from_json(const json_t *o, struct kha_etcd_member_list *l, struct kha_diag *d)
{
	int r;

	memset(l, 0, sizeof(*l));
	TRY(header_from_json(o, &l->header, d));
	TRY(ITEMS_FROM_JSON(o, "members", KHA_ETCD_MAX_MEMBERS, l->members, l->n_members,
			    member_from_json_item, d));
	r = 0;
out:
	if (r < 0)
		kha_etcd_member_list_release(l);
	return r;
}

DECODER(member_list, struct kha_etcd_member_list, members_from_json, "member list")

int kha_etcd_decode_member_add(const char *text, size_t len, struct kha_etcd_member *ret_member,
			       struct kha_etcd_member_list *ret_list, struct kha_diag *d)
{
	kha_auto(json_decrefp) json_t *doc = NULL;
	struct kha_etcd_member m = {};
	struct kha_etcd_member_list l = {};
	json_t *o, *mj;
	int r;

	TRY(parse_reply(text, len, &doc, &o, d));
	TRY(kha_json_object(o, "member", &mj, d));
	if (!mj) {
		r = kha_diag_set(d, EBADMSG, "no 'member' in the reply");
		goto out;
	}
	TRY(member_from_json(mj, &m, d));
	TRY(members_from_json(o, &l, d));
	if (ret_member)
		*ret_member = m;
	else
		kha_etcd_member_release(&m);
	if (ret_list)
		*ret_list = l;
	else
		kha_etcd_member_list_release(&l);
	return 0;
out:
	kha_etcd_member_release(&m);
	kha_etcd_member_list_release(&l);
	return fail(r, d, "member add");
}

/* ---- KV ----------------------------------------------------------------------------------- */

void kha_etcd_range_result_release(struct kha_etcd_range_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_kvs; i++)
		kha_etcd_kv_release(&res->kvs[i]);
	free(res->kvs);
	memset(res, 0, sizeof(*res));
}

void kha_etcd_put_result_release(struct kha_etcd_put_result *res)
{
	if (!res)
		return;
	kha_etcd_kv_release(&res->prev_kv);
	memset(res, 0, sizeof(*res));
}

void kha_etcd_delete_result_release(struct kha_etcd_delete_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_prev_kvs; i++)
		kha_etcd_kv_release(&res->prev_kvs[i]);
	free(res->prev_kvs);
	memset(res, 0, sizeof(*res));
}

static int range_from_json(const json_t *o, struct kha_etcd_range_result *res, struct kha_diag *d)
{
	int r;

	memset(res, 0, sizeof(*res));
	TRY(header_from_json(o, &res->header, d));
	TRY(ITEMS_FROM_JSON(o, "kvs", KHA_ETCD_MAX_ITEMS, res->kvs, res->n_kvs, kv_from_json_item,
			    d));
	TRY(kha_json_bool(o, "more", &res->more, d));
	TRY(kha_json_i64(o, "count", &res->count, d));
out:
	if (r < 0)
		kha_etcd_range_result_release(res);
	return r;
}

static int put_from_json(const json_t *o, struct kha_etcd_put_result *res, struct kha_diag *d)
{
	json_t *p;
	int r;

	memset(res, 0, sizeof(*res));
	TRY(header_from_json(o, &res->header, d));
	TRY(kha_json_object(o, "prev_kv", &p, d));
	if (p) {
		TRY(kv_from_json(p, &res->prev_kv, d));
		res->has_prev_kv = true;
	}
out:
	if (r < 0)
		kha_etcd_put_result_release(res);
	return r;
}

static int delete_from_json(const json_t *o, struct kha_etcd_delete_result *res, struct kha_diag *d)
{
	int r;

	memset(res, 0, sizeof(*res));
	TRY(header_from_json(o, &res->header, d));
	TRY(kha_json_i64(o, "deleted", &res->deleted, d));
	TRY(ITEMS_FROM_JSON(o, "prev_kvs", KHA_ETCD_MAX_ITEMS, res->prev_kvs, res->n_prev_kvs,
			    kv_from_json_item, d));
out:
	if (r < 0)
		kha_etcd_delete_result_release(res);
	return r;
}

DECODER(range, struct kha_etcd_range_result, range_from_json, "range")

DECODER(put, struct kha_etcd_put_result, put_from_json, "put")

DECODER(delete, struct kha_etcd_delete_result, delete_from_json, "delete")

static void op_result_release(struct kha_etcd_op_result *op)
{
	switch (op->type) {
	case KHA_ETCD_OP_RANGE:
		kha_etcd_range_result_release(&op->range);
		break;
	case KHA_ETCD_OP_PUT:
		kha_etcd_put_result_release(&op->put);
		break;
	case KHA_ETCD_OP_DELETE:
		kha_etcd_delete_result_release(&op->del);
		break;
	}
}

void kha_etcd_txn_result_release(struct kha_etcd_txn_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_responses; i++)
		op_result_release(&res->responses[i]);
	free(res->responses);
	memset(res, 0, sizeof(*res));
}

static int op_from_json(const json_t *o, struct kha_etcd_op_result *op, struct kha_diag *d)
{
	json_t *v;
	int r;

	memset(op, 0, sizeof(*op));
	if (!json_is_object(o))
		return kha_diag_set(d, EBADMSG, "a response is not an object");
	TRY(kha_json_object(o, "response_range", &v, d));
	if (v) {
		op->type = KHA_ETCD_OP_RANGE;
		return range_from_json(v, &op->range, d);
	}
	TRY(kha_json_object(o, "response_put", &v, d));
	if (v) {
		op->type = KHA_ETCD_OP_PUT;
		return put_from_json(v, &op->put, d);
	}
	TRY(kha_json_object(o, "response_delete_range", &v, d));
	if (v) {
		op->type = KHA_ETCD_OP_DELETE;
		return delete_from_json(v, &op->del, d);
	}
	/* a nested txn (3.3+) or an unknown response kind: not something kha sends */
	r = kha_diag_set(d, EBADMSG, "unknown response kind");
out:
	return r;
}

ITEM_FN(op_from_json, struct kha_etcd_op_result)

static int txn_from_json(const json_t *o, struct kha_etcd_txn_result *ret, struct kha_diag *d)
{
	int r;

	TRY(header_from_json(o, &ret->header, d));
	TRY(kha_json_bool(o, "succeeded", &ret->succeeded, d));
	TRY(ITEMS_FROM_JSON(o, "responses", KHA_ETCD_MAX_ITEMS, ret->responses, ret->n_responses,
			    op_from_json_item, d));
	r = 0;
out:
	if (r < 0)
		kha_etcd_txn_result_release(ret);
	return r;
}

DECODER(txn, struct kha_etcd_txn_result, txn_from_json, "txn")

/* ---- leases ------------------------------------------------------------------------------- */

int kha_etcd_decode_lease(const char *text, size_t len, int64_t *ret_id, int64_t *ret_ttl,
			  struct kha_diag *d)
{
	kha_auto(json_decrefp) json_t *doc = NULL;
	int64_t id = 0, ttl = 0;
	json_t *o;
	int r;

	TRY(parse_reply(text, len, &doc, &o, d));
	TRY(kha_json_i64(o, "ID", &id, d));
	TRY(kha_json_i64(o, "TTL", &ttl, d));
	if (ret_id)
		*ret_id = id;
	if (ret_ttl)
		*ret_ttl = ttl;
out:
	return fail(r, d, "lease");
}

void kha_etcd_lease_ttl_release(struct kha_etcd_lease_ttl *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_keys; i++)
		free(l->keys[i].data);
	free(l->keys);
	memset(l, 0, sizeof(*l));
}

/* One key of a lease, base64 in the reply. */
static int key_item(const json_t *v, void *elem, struct kha_diag *d)
{
	struct kha_etcd_bytes *k = elem;

	if (!json_is_string(v) ||
	    kha_json_base64_decode(json_string_value(v), json_string_length(v), &k->data, &k->len) <
		    0)
		return kha_diag_set(d, EBADMSG, "is not a base64 string");
	return 0;
}

static int lease_ttl_from_json(const json_t *o, struct kha_etcd_lease_ttl *ret, struct kha_diag *d)
{
	int r;

	TRY(header_from_json(o, &ret->header, d));
	TRY(kha_json_i64(o, "ID", &ret->id, d));
	TRY(kha_json_i64(o, "TTL", &ret->ttl, d));
	TRY(kha_json_i64(o, "grantedTTL", &ret->granted_ttl, d));
	TRY(ITEMS_FROM_JSON(o, "keys", KHA_ETCD_MAX_ITEMS, ret->keys, ret->n_keys, key_item, d));
	r = 0;
out:
	if (r < 0)
		kha_etcd_lease_ttl_release(ret);
	return r;
}

DECODER(lease_ttl, struct kha_etcd_lease_ttl, lease_ttl_from_json, "lease time-to-live")

/* ---- watch -------------------------------------------------------------------------------- */

void kha_etcd_watch_response_release(struct kha_etcd_watch_response *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_events; i++) {
		kha_etcd_kv_release(&w->events[i].kv);
		kha_etcd_kv_release(&w->events[i].prev_kv);
	}
	free(w->events);
	free(w->cancel_reason);
	memset(w, 0, sizeof(*w));
}

static int event_from_json(const json_t *o, struct kha_etcd_event *ev, struct kha_diag *d)
{
	json_t *t, *kv;
	int r;

	memset(ev, 0, sizeof(*ev));
	if (!json_is_object(o))
		return kha_diag_set(d, EBADMSG, "an event is not an object");
	t = json_object_get(o, "type");
	if (!t || json_is_null(t) ||
	    (json_is_string(t) && strcmp(json_string_value(t), "PUT") == 0) ||
	    (json_is_integer(t) && json_integer_value(t) == 0))
		ev->type = KHA_ETCD_EVENT_PUT;
	else if ((json_is_string(t) && strcmp(json_string_value(t), "DELETE") == 0) ||
		 (json_is_integer(t) && json_integer_value(t) == 1))
		ev->type = KHA_ETCD_EVENT_DELETE;
	else
		return kha_diag_set(d, EBADMSG, "unknown event type");
	TRY(kha_json_object(o, "kv", &kv, d));
	if (!kv) {
		r = kha_diag_set(d, EBADMSG, "an event has no kv");
		goto out;
	}
	TRY(kv_from_json(kv, &ev->kv, d));
	TRY(kha_json_object(o, "prev_kv", &kv, d));
	if (kv) {
		TRY(kv_from_json(kv, &ev->prev_kv, d));
		ev->has_prev_kv = true;
	}
out:
	if (r < 0) {
		kha_etcd_kv_release(&ev->kv);
		kha_etcd_kv_release(&ev->prev_kv);
	}
	return r;
}

ITEM_FN(event_from_json, struct kha_etcd_event)

static int watch_from_json(const json_t *o, struct kha_etcd_watch_response *ret, struct kha_diag *d)
{
	int r;

	TRY(header_from_json(o, &ret->header, d));
	TRY(kha_json_i64(o, "watch_id", &ret->watch_id, d));
	TRY(kha_json_bool(o, "created", &ret->created, d));
	TRY(kha_json_bool(o, "canceled", &ret->canceled, d));
	TRY(kha_json_i64(o, "compact_revision", &ret->compact_revision, d));
	TRY(kha_json_strdup(o, "cancel_reason", &ret->cancel_reason, d));
	TRY(ITEMS_FROM_JSON(o, "events", KHA_ETCD_MAX_ITEMS, ret->events, ret->n_events,
			    event_from_json_item, d));
	r = 0;
out:
	if (r < 0)
		kha_etcd_watch_response_release(ret);
	return r;
}

DECODER(watch, struct kha_etcd_watch_response, watch_from_json, "watch")

/* ---- maintenance -------------------------------------------------------------------------- */

const char *kha_etcd_alarm_name(enum kha_etcd_alarm_type t)
{
	switch (t) {
	case KHA_ETCD_ALARM_NOSPACE:
		return "NOSPACE";
	case KHA_ETCD_ALARM_CORRUPT:
		return "CORRUPT";
	default:
		return "NONE";
	}
}

static int alarm_type(const json_t *v, enum kha_etcd_alarm_type *ret)
{
	if (!v || json_is_null(v)) {
		*ret = KHA_ETCD_ALARM_NONE;
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 2) {
		*ret = (enum kha_etcd_alarm_type)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -EBADMSG;
	for (int t = KHA_ETCD_ALARM_NONE; t <= KHA_ETCD_ALARM_CORRUPT; t++) {
		if (strcmp(json_string_value(v), kha_etcd_alarm_name(t)) == 0) {
			*ret = t;
			return 0;
		}
	}
	return -EBADMSG;
}

void kha_etcd_alarm_list_release(struct kha_etcd_alarm_list *l)
{
	if (!l)
		return;
	free(l->alarms);
	memset(l, 0, sizeof(*l));
}

/* One alarm: its member and type. */
static int alarm_item(const json_t *v, void *elem, struct kha_diag *d)
{
	struct kha_etcd_alarm *a = elem;
	int r;

	if (!json_is_object(v))
		return kha_diag_set(d, EBADMSG, "is not an object");
	r = kha_json_u64(v, "memberID", &a->member_id, d);
	if (r < 0)
		return r;
	if (alarm_type(json_object_get(v, "alarm"), &a->type) < 0)
		return kha_diag_set(d, EBADMSG, "has an unknown alarm type");
	return 0;
}

static int alarms_from_json(const json_t *o, struct kha_etcd_alarm_list *ret, struct kha_diag *d)
{
	int r;

	TRY(header_from_json(o, &ret->header, d));
	TRY(ITEMS_FROM_JSON(o, "alarms", KHA_ETCD_MAX_ITEMS, ret->alarms, ret->n_alarms, alarm_item,
			    d));
	r = 0;
out:
	if (r < 0)
		kha_etcd_alarm_list_release(ret);
	return r;
}

DECODER(alarms, struct kha_etcd_alarm_list, alarms_from_json, "alarm")

int kha_etcd_alarm_from_status_error(const char *s, struct kha_etcd_alarm *ret)
{
	const char *m = s ? strstr(s, "memberID:") : NULL;
	const char *a = s ? strstr(s, "alarm:") : NULL;
	uint64_t id = 0;

	if (!a)
		return -ENOENT;
	/* etcd 3.4's periodic corruption check raises its CORRUPT alarm on member 0 and the
	 * status error then reads "alarm:CORRUPT ": no member named (member_id 0) */
	for (m = m ? m + strlen("memberID:") : ""; *m >= '0' && *m <= '9'; m++) {
		if (id > (UINT64_MAX - (uint64_t)(*m - '0')) / 10)
			return -ENOENT;
		id = id * 10 + (uint64_t)(*m - '0');
	}
	a += strlen("alarm:");
	if (strncmp(a, "NOSPACE", 7) == 0)
		ret->type = KHA_ETCD_ALARM_NOSPACE;
	else if (strncmp(a, "CORRUPT", 7) == 0)
		ret->type = KHA_ETCD_ALARM_CORRUPT;
	else
		return -ENOENT;
	ret->member_id = id;
	return 0;
}

static int hash_kv_from_json(const json_t *o, struct kha_etcd_hash_kv *ret, struct kha_diag *d)
{
	uint64_t hash;
	int r;

	TRY(header_from_json(o, &ret->header, d));
	TRY(kha_json_u64(o, "hash", &hash, d));
	if (hash > UINT32_MAX) {
		r = kha_diag_set(d, EBADMSG, "field 'hash' is not a 32-bit value");
		goto out;
	}
	ret->hash = (uint32_t)hash;
	TRY(kha_json_i64(o, "compact_revision", &ret->compact_revision, d));
out:
	return r;
}

DECODER(hash_kv, struct kha_etcd_hash_kv, hash_kv_from_json, "hash")

int kha_etcd_decode_snapshot(const char *text, size_t len, char **ret_blob, size_t *ret_len,
			     uint64_t *ret_remaining, struct kha_diag *d)
{
	kha_auto(json_decrefp) json_t *doc = NULL;
	uint64_t remaining = 0;
	char *blob = NULL;
	size_t blob_len = 0;
	json_t *o;
	int r;

	TRY(parse_reply(text, len, &doc, &o, d));
	TRY(kha_json_u64(o, "remaining_bytes", &remaining, d));
	TRY(kha_json_base64(o, "blob", &blob, &blob_len, d));
	*ret_blob = blob;
	*ret_len = blob_len;
	if (ret_remaining)
		*ret_remaining = remaining;
out:
	return fail(r, d, "snapshot");
}

DECODER(header, struct kha_etcd_header, header_from_json, "etcd")
