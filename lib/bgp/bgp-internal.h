/* SPDX-License-Identifier: MIT */
/* lib/bgp inside: big-endian field access shared by the BGP and BFD codecs. */
#ifndef KHA_BGP_INTERNAL_H
#define KHA_BGP_INTERNAL_H

#include <stdint.h>

static inline uint16_t kha_bgp__get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t kha_bgp__get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void kha_bgp__put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void kha_bgp__put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
