/* native/src/http1_avx2.c - the parser with AVX2, 32 bytes at a time, and
 * the SSE variants for a 16-byte tail.  Only called when the CPU has AVX2. */
#if defined(__x86_64__)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,bmi,sse4.2,ssse3,popcnt"))), \
			     apply_to = function)
#else
#pragma GCC target("avx2,bmi,sse4.2,ssse3,popcnt")
#endif

#include <immintrin.h>

#include "http1_int.h"
#include "http1_simd.h"

/* Octets outside 0x21..0x7e: x - 0x21 (mod 256) above 0x5d. */
static inline unsigned h1_avx_not_target(__m256i v)
{
	__m256i x = _mm256_sub_epi8(v, _mm256_set1_epi8(0x21));
	__m256i ok = _mm256_cmpeq_epi8(_mm256_min_epu8(x, _mm256_set1_epi8(0x5d)), x);

	return ~(unsigned)_mm256_movemask_epi8(ok);
}

/* Control octets other than HTAB, and DEL. */
static inline unsigned h1_avx_not_value(__m256i v)
{
	__m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);

	ctl = _mm256_andnot_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x09)), ctl);
	ctl = _mm256_or_si256(ctl, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f)));
	return (unsigned)_mm256_movemask_epi8(ctl);
}

/* Octets that are not tchars: the nibble lookup of http1_simd.h, twice. */
static inline unsigned h1_avx_not_tchar(__m256i v)
{
	const __m256i lo_t = _mm256_broadcastsi128_si256(H1_TCHAR_LO);
	const __m256i hi_t = _mm256_broadcastsi128_si256(H1_TCHAR_HI);
	const __m256i nib = _mm256_set1_epi8(0x0f);
	__m256i lo = _mm256_shuffle_epi8(lo_t, _mm256_and_si256(v, nib));
	__m256i hi = _mm256_shuffle_epi8(hi_t, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
	__m256i in = _mm256_and_si256(lo, hi);

	return (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(in, _mm256_setzero_si256()));
}

#define H1_AVX_SCAN(name, test, sse_test, scalar)                                   \
	static inline const char *name(const char *p, const char *end)              \
	{                                                                           \
		while (end - p >= 32) {                                             \
			unsigned m = test(_mm256_loadu_si256((const __m256i *)p));  \
			if (m)                                                      \
				return p + __builtin_ctz(m);                        \
			p += 32;                                                    \
		}                                                                   \
		if (end - p >= 16) {                                                \
			unsigned m = sse_test(_mm_loadu_si128((const __m128i *)p)); \
			if (m)                                                      \
				return p + __builtin_ctz(m);                        \
			p += 16;                                                    \
		}                                                                   \
		return scalar(p, end);                                              \
	}

H1_AVX_SCAN(h1_scan_target, h1_avx_not_target, h1_sse_not_target, h1_scalar_scan_target)
H1_AVX_SCAN(h1_scan_name, h1_avx_not_tchar, h1_sse_not_tchar, h1_scalar_scan_name)
H1_AVX_SCAN(h1_scan_value, h1_avx_not_value, h1_sse_not_value, h1_scalar_scan_value)

#define H1_IMPL syn_h1_impl_avx2
#include "http1_parse.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif
