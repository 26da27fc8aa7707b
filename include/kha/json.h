/* SPDX-License-Identifier: MIT */
/*
 * JSON helpers over jansson for the replies of JSON APIs generated from protobuf (etcd's gRPC
 * gateway, Kubernetes): 64-bit integers arrive as strings, zero values are omitted, and a field
 * may be spelled with its proto name ("cluster_id") or its lowerCamelCase JSON name
 * ("clusterId"). The getters accept all of these and report anything else as -EBADMSG with a
 * diag naming the field, so decoders stay short and strict.
 *
 * Also base64 (standard alphabet, padded) over OpenSSL, as protobuf's JSON mapping uses for
 * bytes fields.
 */
#ifndef KHA_JSON_H
#define KHA_JSON_H

#include <jansson.h>
#include "kha/common.h"
#include "kha/diag.h"

/* jansson provides json_decrefp() for kha_auto(json_decrefp). */

/*
 * Parses text (need not be NUL-terminated). Returns 0 and a new reference in *ret, or -EBADMSG
 * with "not JSON: <reason> at line L column C" (or "empty") in the diag.
 */
int kha_json_parse(const char *text, size_t len, json_t **ret, struct kha_diag *d) KHA_WUR;

/*
 * The member `name` of obj, or, when absent and name contains '_', its lowerCamelCase
 * spelling. NULL when obj is not an object or neither is there (borrowed reference).
 */
json_t *kha_json_get(const json_t *obj, const char *name);

/*
 * Typed getters of obj's member `name` (looked up as kha_json_get does). An absent or null
 * member yields the zero value and returns 0; a member of the wrong type or out of range
 * returns -EBADMSG with "field 'name' ..." in the diag. Integers accept a JSON number or a
 * decimal string (as protobuf writes 64-bit values).
 */
int kha_json_u64(const json_t *obj, const char *name, uint64_t *ret, struct kha_diag *d) KHA_WUR;
int kha_json_i64(const json_t *obj, const char *name, int64_t *ret, struct kha_diag *d) KHA_WUR;
int kha_json_bool(const json_t *obj, const char *name, bool *ret, struct kha_diag *d) KHA_WUR;
/* *ret is a new malloc'd copy, "" when absent; the caller frees it. */
int kha_json_strdup(const json_t *obj, const char *name, char **ret, struct kha_diag *d) KHA_WUR;
/*
 * The member as an object/array, or NULL when absent or null (returns 0); -EBADMSG when it is
 * something else. Borrowed reference.
 */
int kha_json_object(const json_t *obj, const char *name, json_t **ret, struct kha_diag *d) KHA_WUR;
int kha_json_array(const json_t *obj, const char *name, json_t **ret, struct kha_diag *d) KHA_WUR;

/*
 * A JSON string of a 64-bit integer, as protobuf's JSON mapping writes it (new reference, NULL
 * on ENOMEM).
 */
json_t *kha_json_u64_string(uint64_t v);
json_t *kha_json_i64_string(int64_t v);

/*
 * Sets obj[name] = value and consumes the reference to value, even on failure. Returns 0 or
 * -ENOMEM (value NULL counts as ENOMEM, so calls can be chained on allocations).
 */
int kha_json_set(json_t *obj, const char *name, json_t *value) KHA_WUR;
/* Sets obj[name] to the base64 of data. */
int kha_json_set_base64(json_t *obj, const char *name, const void *data, size_t len) KHA_WUR;

/* Serialises compactly into a malloc'd string; NULL on ENOMEM. */
char *kha_json_dumps(const json_t *obj);

/* Base64 of data as a malloc'd NUL-terminated string; NULL on ENOMEM. */
char *kha_json_base64_encode(const void *data, size_t len);
/*
 * Decodes padded standard base64 (no whitespace). *ret is malloc'd, with a NUL byte after the
 * data (not counted in *ret_len), so text values can be used as C strings. Returns 0, -EBADMSG
 * (not base64) or -ENOMEM.
 */
int kha_json_base64_decode(const char *text, size_t len, char **ret, size_t *ret_len) KHA_WUR;
/*
 * Decodes the base64 string member `name` of obj (absent = empty, *ret = "" allocated);
 * -EBADMSG with the field named in the diag when it is not a base64 string.
 */
int kha_json_base64(const json_t *obj, const char *name, char **ret, size_t *ret_len,
		    struct kha_diag *d) KHA_WUR;

#endif
