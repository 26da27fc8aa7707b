/* SPDX-License-Identifier: MIT */
/* Shared between the files of lib/lab only. */
#ifndef KHA_LAB_INTERNAL_H
#define KHA_LAB_INTERNAL_H

#include "kha/lab.h"

#define LAB_JSON "lab.json"
#define LAB_LOCK "lab.lock"
#define LAB_ENV	 "env"

struct kha_lab *lab_new(void);
/* "dir/name" as a new string, NULL on ENOMEM. */
char *lab_path(const char *dir, const char *name);
/* Takes DIR/lab.lock (flock, waits); the fd goes to lab->lock_fd. */
int lab_lock(struct kha_lab *lab, const char *dir, struct kha_diag *d);

/*
 * Health of the members selected by want (NULL: all), in parallel; see kha_lab_health.
 * Entries not selected are left untouched.
 */
void lab_health(const struct kha_lab *lab, const bool *want, uint64_t timeout_us, int *ret);

#endif
