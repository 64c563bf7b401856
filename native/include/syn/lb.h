/* native/include/syn/lb.h - the balancer registry and shared helpers. */
#ifndef SYN_LB_H
#define SYN_LB_H

#include "syn/lb-t.h"

/* The definition for an algorithm (enum syn_lb_algo), or NULL. */
const struct syn_lb_def *syn_lb_get(int algo);

/* The algorithm named as in the TOML ("round_robin", ...), or -ENOENT. */
int syn_lb_by_name(const char *name);

/* Effective weight of server i at now_ms, in 1/SYN_LB_WEIGHT_SCALE of a
 * configured weight, with slow_start applied: ramps linearly from a tenth
 * of the full weight to the full weight over slow_start_ms after
 * up_since_ms; the full weight when slow_start is off or over.  Never 0. */
uint32_t syn_lb_weight(const struct syn_lb_upstream *up, int i, uint64_t now_ms);

/* Two distinct usable servers of the first n, drawn without replacement
 * with probabilities proportional to their effective weights, into c[] with
 * their weights in w[]; advances *rng.  wmax is the largest full weight in
 * the upstream (syn_lb_full_weight()).  Returns how many were found (0, 1
 * or 2).  For the power-of-two-choices balancers; no allocation, and
 * usually O(1). */
int syn_lb_draw2(const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx, int n,
		 uint32_t wmax, uint64_t *rng, int c[2], uint32_t w[2]);

/* The algorithms, for the registry in lb.c; use syn_lb_get(). */
extern const struct syn_lb_def syn_lb_round_robin_def;
extern const struct syn_lb_def syn_lb_least_conn_def;
extern const struct syn_lb_def syn_lb_ip_hash_def;
extern const struct syn_lb_def syn_lb_random_def;
extern const struct syn_lb_def syn_lb_ewma_def;

/* The full effective weight of server i (slow start over): its configured
 * weight clamped to 1 .. SYN_LB_WEIGHT_MAX, times SYN_LB_WEIGHT_SCALE. */
static inline uint32_t syn_lb_full_weight(const struct syn_lb_upstream *up, int i)
{
	uint32_t w = up->servers[i].weight;

	w = w < 1 ? 1 : w > SYN_LB_WEIGHT_MAX ? SYN_LB_WEIGHT_MAX : w;
	return w * SYN_LB_WEIGHT_SCALE;
}

static inline int syn_lb_usable(const struct syn_lb_ctx *ctx, int i)
{
	return (ctx->usable[i >> 6] >> (i & 63)) & 1;
}

/* The first usable server at index i or above and below n, or -1.  Skips
 * a whole word of unusable servers at a time; bits at n and above are
 * never returned, whatever the caller left in them. */
static inline int syn_lb_next_usable(const struct syn_lb_ctx *ctx, int n, int i)
{
	while (i < n) {
		uint64_t m = ctx->usable[i >> 6] >> (i & 63);

		if (m) {
			i += __builtin_ctzll(m);
			return i < n ? i : -1;
		}
		i = (i | 63) + 1;
	}
	return -1;
}

/* A 64-bit finalizer (splitmix64's): every input bit affects every output
 * bit.  Stable across versions: ip_hash rings are built from it, and
 * several machines must build the same ring. */
static inline uint64_t syn_lb_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* The next number of a splitmix64 generator whose state is *s. */
static inline uint64_t syn_lb_rand(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return syn_lb_mix64(*s);
}

#endif
