/* native/src/http1_int.h - what the parser variants share: character
 * classes, the known-header hash and the per-level implementations.
 * Internal to native/src; not part of the ABI. */
#ifndef SYN_HTTP1_INT_H
#define SYN_HTTP1_INT_H

#include <stdint.h>
#include <string.h>

#include "syn/http1.h"
#include "syn/simd.h"

/* Character classes, one byte per octet (syn_h1_ctype[]). */
#define H1_TCHAR  0x01 /* RFC 9110 tchar */
#define H1_HOST   0x02 /* allowed in a Host value */
#define H1_VALUE  0x04 /* field-vchar, SP, HTAB, obs-text */
#define H1_TARGET 0x08 /* request-target octets: VCHAR */
#define H1_HEX    0x10

extern const uint8_t syn_h1_ctype[256];
extern const uint8_t syn_h1_hdr_hash[128];
extern const char *const syn_h1_hdr_names[SYN_HDR__COUNT];
extern const uint8_t syn_h1_hdr_lens[SYN_HDR__COUNT];

static inline int h1_is(unsigned char c, unsigned cls)
{
	return syn_h1_ctype[c] & cls;
}

static inline unsigned char h1_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static inline uint64_t h1_load64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t h1_load32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline uint16_t h1_load16(const char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

/* Case-insensitive equality of a token s (already validated as tchars) with
 * a lowercase literal of the same length n.  OR-ing 0x20 folds A-Z onto a-z
 * and maps no other tchar onto a letter or '-', so word compares are exact.
 * Overlapping loads keep every read inside both strings. */
static inline int h1_token_ieq(const char *s, const char *lower, size_t n)
{
	if (n >= 8) {
		const uint64_t f = 0x2020202020202020ull;
		size_t i;

		for (i = 0; i + 8 <= n; i += 8)
			if ((h1_load64(s + i) | f) != h1_load64(lower + i))
				return 0;
		return (h1_load64(s + n - 8) | f) == h1_load64(lower + n - 8);
	}
	if (n >= 4) {
		const uint32_t f = 0x20202020u;

		return (h1_load32(s) | f) == h1_load32(lower) &&
		       (h1_load32(s + n - 4) | f) == h1_load32(lower + n - 4);
	}
	if (n >= 2)
		return (uint16_t)(h1_load16(s) | 0x2020) == h1_load16(lower) &&
		       (uint16_t)(h1_load16(s + n - 2) | 0x2020) == h1_load16(lower + n - 2);
	return n == 1 ? (unsigned char)(s[0] | 0x20) == (unsigned char)lower[0] : 1;
}

/* Known-header id of a validated token name: a perfect hash on length and
 * first and last letters, then one compare. */
static inline int h1_known_id(const char *s, size_t n)
{
	unsigned h;
	int id;

	if (n < 2 || n > 17)
		return SYN_HDR_NONE;
	h = (unsigned)(n * 7 + (unsigned char)(s[0] | 0x20) +
		       (unsigned char)(s[n - 1] | 0x20) * 40) &
	    127;
	id = syn_h1_hdr_hash[h];
	if (id && syn_h1_hdr_lens[id] == n && h1_token_ieq(s, syn_h1_hdr_names[id], n))
		return id;
	return SYN_HDR_NONE;
}

/* Scalar scanners: the whole of the scalar level, and the tails of the
 * SIMD ones.  Same contracts as in http1_parse.h. */
static inline const char *h1_scalar_scan(const char *p, const char *end, unsigned cls)
{
	while (end - p >= 4) {
		if (!h1_is((unsigned char)p[0], cls))
			return p;
		if (!h1_is((unsigned char)p[1], cls))
			return p + 1;
		if (!h1_is((unsigned char)p[2], cls))
			return p + 2;
		if (!h1_is((unsigned char)p[3], cls))
			return p + 3;
		p += 4;
	}
	while (p < end && h1_is((unsigned char)*p, cls))
		p++;
	return p;
}

static inline const char *h1_scalar_scan_target(const char *p, const char *end)
{
	return h1_scalar_scan(p, end, H1_TARGET);
}

static inline const char *h1_scalar_scan_name(const char *p, const char *end)
{
	return h1_scalar_scan(p, end, H1_TCHAR);
}

static inline const char *h1_scalar_scan_value(const char *p, const char *end)
{
	return h1_scalar_scan(p, end, H1_VALUE);
}

void syn_h1_repick(void);

/* The same parser compiled once per SIMD level (http1_parse.h). */
extern const struct syn_h1_impl syn_h1_impl_scalar;
#if defined(__x86_64__)
extern const struct syn_h1_impl syn_h1_impl_sse42;
extern const struct syn_h1_impl syn_h1_impl_avx2;
#endif

#endif
