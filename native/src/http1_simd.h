/* native/src/http1_simd.h - 16-byte classifiers shared by the SSE4.2 and
 * AVX2 parsers; included after the target pragma of the including file.
 * Each returns a bit mask of the octets outside the class. */
#ifndef SYN_HTTP1_SIMD_H
#define SYN_HTTP1_SIMD_H

#include <immintrin.h>

/* tchar membership by nibbles: octet b is a tchar iff
 * LO[b & 15] & HI[b >> 4] != 0 (HI has one bit per high nibble 0..7, and
 * PSHUFB yields 0 for the high nibbles 8..15).  Generated from the tchar set. */
#define H1_TCHAR_LO                                                                           \
	_mm_setr_epi8((char)0xe8, (char)0xfc, (char)0xf8, (char)0xfc, (char)0xfc, (char)0xfc, \
		      (char)0xfc, (char)0xfc, (char)0xf8, (char)0xf8, (char)0xf4, 0x54,       \
		      (char)0xd0, 0x54, (char)0xf4, 0x70)
#define H1_TCHAR_HI \
	_mm_setr_epi8(0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, (char)0x80, 0, 0, 0, 0, 0, 0, 0, 0)

static inline unsigned h1_sse_not_tchar(__m128i v)
{
	const __m128i nib = _mm_set1_epi8(0x0f);
	__m128i lo = _mm_shuffle_epi8(H1_TCHAR_LO, _mm_and_si128(v, nib));
	__m128i hi = _mm_shuffle_epi8(H1_TCHAR_HI, _mm_and_si128(_mm_srli_epi16(v, 4), nib));

	return (unsigned)_mm_movemask_epi8(
		_mm_cmpeq_epi8(_mm_and_si128(lo, hi), _mm_setzero_si128()));
}

static inline unsigned h1_sse_not_target(__m128i v)
{
	__m128i x = _mm_sub_epi8(v, _mm_set1_epi8(0x21));
	__m128i ok = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x5d)), x);

	return ~(unsigned)_mm_movemask_epi8(ok) & 0xffff;
}

static inline unsigned h1_sse_not_value(__m128i v)
{
	__m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);

	ctl = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x09)), ctl);
	ctl = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
	return (unsigned)_mm_movemask_epi8(ctl);
}

#endif
