/* SPDX-License-Identifier: MIT */
/* lib/etcd's internal header: what its files share and no other module uses. */
#ifndef KHA_ETCD_INTERNAL_H
#define KHA_ETCD_INTERNAL_H

#include "kha/http.h"

/* The flags of the etcd commands that fix a transport failure (kha_http_fail_hint). */
extern const struct kha_http_flag_names kha_etcd__flag_names;

#endif
