/* SPDX-License-Identifier: MIT */
/*
 * Functions kha never calls: unbounded copies, hidden static state, silent number parsing.
 * meson adds it to every compilation with -include (before the file's own includes), so a use
 * is a compile error anywhere; .c files also include it last, which changes nothing. Use
 * snprintf, strtok_r, strtol with end checks, gmtime_r, localtime_r.
 */
#ifndef KHA_BANNED_H
#define KHA_BANNED_H

/* The headers that declare them come first: their declarations must not meet the macros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KHA_BANNED(f) sorry_##f##_is_banned_in_kha

#undef strcpy
#define strcpy(...) KHA_BANNED(strcpy)
#undef strcat
#define strcat(...) KHA_BANNED(strcat)
#undef sprintf
#define sprintf(...) KHA_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) KHA_BANNED(vsprintf)
#undef strtok
#define strtok(...) KHA_BANNED(strtok)
#undef atoi
#define atoi(...) KHA_BANNED(atoi)
#undef atol
#define atol(...) KHA_BANNED(atol)
#undef gmtime
#define gmtime(...) KHA_BANNED(gmtime)
#undef localtime
#define localtime(...) KHA_BANNED(localtime)

#endif
