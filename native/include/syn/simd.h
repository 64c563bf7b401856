/* native/include/syn/simd.h - run-time choice of the SIMD level.
 *
 * Debian's amd64 baseline has neither SSE4.2 nor AVX2, so the scanning code
 * is compiled three times (scalar, SSE4.2, AVX2) and the best one the CPU
 * supports is picked once, on first use.  SYN_SIMD=scalar|sse42|avx2 in the
 * environment caps the level (tests and benchmarks use it).
 */
#ifndef SYN_SIMD_H
#define SYN_SIMD_H

#include "syn/http1-t.h"

enum syn_simd_level { SYN_SIMD_SCALAR = 0, SYN_SIMD_SSE42 = 1, SYN_SIMD_AVX2 = 2, SYN_SIMD__COUNT };

int syn_simd_detect(void);            /* best level this CPU runs */
int syn_simd_level(void);             /* level in use */
int syn_simd_set(int level);          /* 0, or -ENOTSUP if the CPU lacks it */
const char *syn_simd_name(int level); /* "scalar", "sse4.2", "avx2" */

/* One parser per level, for tests that compare them. */
struct syn_h1_impl {
	int (*request)(const char *buf, size_t len, struct syn_h1_request *req, size_t max_head,
		       unsigned max_headers);
	int (*response)(const char *buf, size_t len, struct syn_h1_response *resp, size_t max_head,
			unsigned max_headers);
};

const struct syn_h1_impl *syn_h1_impl(int level); /* NULL if the CPU lacks it */

#endif
