/* native/src/simd.c - CPU detection and the SIMD level in use. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "syn/simd.h"

void syn_h1_repick(void);

static const char *const simd_names[SYN_SIMD__COUNT] = {
	[SYN_SIMD_SCALAR] = "scalar",
	[SYN_SIMD_SSE42] = "sse4.2",
	[SYN_SIMD_AVX2] = "avx2",
};

/* -1 until first asked; then the level in use. */
static atomic_int simd_level = -1;

int syn_simd_detect(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	/* The AVX2 variant also uses BMI1 (tzcnt) through the compiler. */
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi"))
		return SYN_SIMD_AVX2;
	if (__builtin_cpu_supports("sse4.2"))
		return SYN_SIMD_SSE42;
#endif
	return SYN_SIMD_SCALAR;
}

const char *syn_simd_name(int level)
{
	if (level < 0 || level >= SYN_SIMD__COUNT)
		return "unknown";
	return simd_names[level];
}

/* The detected level, lowered by SYN_SIMD=scalar|sse42|sse4.2|avx2. */
static int simd_initial(void)
{
	const char *env = getenv("SYN_SIMD");
	int best = syn_simd_detect();
	int want = best;

	if (env) {
		if (!strcmp(env, "scalar"))
			want = SYN_SIMD_SCALAR;
		else if (!strcmp(env, "sse42") || !strcmp(env, "sse4.2"))
			want = SYN_SIMD_SSE42;
		else if (!strcmp(env, "avx2"))
			want = SYN_SIMD_AVX2;
	}
	return want < best ? want : best;
}

int syn_simd_level(void)
{
	int level = atomic_load_explicit(&simd_level, memory_order_relaxed);

	if (level < 0) {
		level = simd_initial();
		atomic_store_explicit(&simd_level, level, memory_order_relaxed);
	}
	return level;
}

int syn_simd_set(int level)
{
	if (level < 0 || level >= SYN_SIMD__COUNT || level > syn_simd_detect())
		return -ENOTSUP;
	atomic_store_explicit(&simd_level, level, memory_order_relaxed);
	syn_h1_repick();
	return 0;
}
