/* native/src/http1_sse42.c - the parser with SSE4.2 string instructions
 * (PCMPESTRI ranges for targets and values) and SSSE3 nibble lookups for
 * header names, 16 bytes at a time.  Only called when the CPU has them. */
#if defined(__x86_64__)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("sse4.2,ssse3,popcnt"))), apply_to = function)
#else
#pragma GCC target("sse4.2,ssse3,popcnt")
#endif

#include <immintrin.h>

#include "http1_int.h"
#include "http1_simd.h"

#define H1_ESTRI \
	(_SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_POSITIVE_POLARITY | _SIDD_LEAST_SIGNIFICANT)

/* First octet of p[0..16) inside one of the ranges, 16 if none. */
static inline int h1_estri(__m128i ranges, int nranges, const char *p)
{
	return _mm_cmpestri(ranges, nranges, _mm_loadu_si128((const __m128i *)p), 16, H1_ESTRI);
}

static inline const char *h1_scan_target(const char *p, const char *end)
{
	const __m128i bad =
		_mm_setr_epi8(0x00, 0x20, 0x7f, (char)0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

	while (end - p >= 16) {
		int i = h1_estri(bad, 4, p);

		if (i != 16)
			return p + i;
		p += 16;
	}
	return h1_scalar_scan_target(p, end);
}

static inline const char *h1_scan_value(const char *p, const char *end)
{
	const __m128i bad =
		_mm_setr_epi8(0x00, 0x08, 0x0a, 0x1f, 0x7f, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

	while (end - p >= 16) {
		int i = h1_estri(bad, 6, p);

		if (i != 16)
			return p + i;
		p += 16;
	}
	return h1_scalar_scan_value(p, end);
}

static inline const char *h1_scan_name(const char *p, const char *end)
{
	while (end - p >= 16) {
		unsigned m = h1_sse_not_tchar(_mm_loadu_si128((const __m128i *)p));

		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
	return h1_scalar_scan_name(p, end);
}

#define H1_IMPL syn_h1_impl_sse42
#include "http1_parse.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif
