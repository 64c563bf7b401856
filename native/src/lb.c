/* native/src/lb.c - the balancer registry and what the algorithms share:
 * effective weights (slow_start) and weighted draws for power of two
 * choices.  Each algorithm lives in its own lb_<name>.c.
 */
#include <errno.h>
#include <string.h>

#include "syn/lb.h"

#define LB_DRAW_TRIES 8 /* rejection tries per draw before scanning */

/* Indexed by enum syn_lb_algo. */
static const struct syn_lb_def *const lb_defs[SYN_LB__COUNT] = {
	[SYN_LB_ROUND_ROBIN] = &syn_lb_round_robin_def,
	[SYN_LB_LEAST_CONN] = &syn_lb_least_conn_def,
	[SYN_LB_IP_HASH] = &syn_lb_ip_hash_def,
	[SYN_LB_RANDOM] = &syn_lb_random_def,
	[SYN_LB_EWMA] = &syn_lb_ewma_def,
};

/* The definition of algorithm algo, or NULL when algo is out of range;
 * touches nothing. */
const struct syn_lb_def *syn_lb_get(int algo)
{
	if (algo < 0 || algo >= SYN_LB__COUNT)
		return NULL;
	return lb_defs[algo];
}

/* The algorithm whose TOML spelling is name (exact, case-sensitive), or
 * -ENOENT; name may be NULL. */
int syn_lb_by_name(const char *name)
{
	int i;

	if (!name)
		return -ENOENT;
	for (i = 0; i < SYN_LB__COUNT; i++)
		if (!strcmp(lb_defs[i]->name, name))
			return i;
	return -ENOENT;
}

/* Effective weight of server i (see lb.h): full = syn_lb_full_weight(),
 * and during slow start
 *	full/10 + (full - full/10) * elapsed / slow_start_ms.
 * An up_since_ms in the future (a clock read a moment ahead of ours)
 * counts as "just came up".  Reads the server's shared block only. */
uint32_t syn_lb_weight(const struct syn_lb_upstream *up, int i, uint64_t now_ms)
{
	uint64_t since, elapsed, full = syn_lb_full_weight(up, i), start;

	if (!up->slow_start_ms)
		return (uint32_t)full;
	since = __atomic_load_n(&up->servers[i].shared->up_since_ms, __ATOMIC_RELAXED);
	elapsed = now_ms > since ? now_ms - since : 0;
	if (elapsed >= up->slow_start_ms)
		return (uint32_t)full;
	start = full / 10;
	return (uint32_t)(start + (full - start) * elapsed / up->slow_start_ms);
}

/* The usable server at which the running sum of effective weights first
 * passes r, skipping server skip (-1: none); *wp gets its weight.  When
 * weights moved under us (a slow start ramp read twice) and r is never
 * passed, the last usable server stands in, so a usable one is always
 * returned when there is one; -1 when there is none. */
static int lb_walk(const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx, int n, int skip,
		   uint64_t r, uint32_t *wp)
{
	uint64_t sum = 0;
	int i, last = -1;
	uint32_t w = 0;

	for (i = syn_lb_next_usable(ctx, n, 0); i >= 0; i = syn_lb_next_usable(ctx, n, i + 1)) {
		if (i == skip)
			continue;
		w = syn_lb_weight(up, i, ctx->now_ms);
		last = i;
		sum += w;
		if (sum > r)
			break;
	}
	*wp = w;
	return last;
}

/* One server drawn exactly by weight among the usable ones other than skip,
 * by scanning: the total, then the walk.  -1 when there is none. */
static int lb_scan_draw(const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx, int n,
			int skip, uint64_t *rng, uint32_t *wp)
{
	uint64_t total = 0;
	int i;

	for (i = syn_lb_next_usable(ctx, n, 0); i >= 0; i = syn_lb_next_usable(ctx, n, i + 1))
		if (i != skip)
			total += syn_lb_weight(up, i, ctx->now_ms);
	if (!total)
		return -1;
	return lb_walk(up, ctx, n, skip, syn_lb_rand(rng) % total, wp);
}

/* The same draw by rejection, in O(1) tries when most of the pool is
 * usable: a uniform index (high half of a random word) kept with
 * probability weight / wmax (low half).  Conditioned on success the draw is
 * exactly by weight; -1 after LB_DRAW_TRIES misses, for the scan to
 * decide (a mostly unusable pool). */
static int lb_try_draw(const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx, int n,
		       uint32_t wmax, int skip, uint64_t *rng, uint32_t *wp)
{
	int t;

	for (t = 0; t < LB_DRAW_TRIES; t++) {
		uint64_t r = syn_lb_rand(rng);
		int i = (int)(((r >> 32) * (uint64_t)n) >> 32);
		uint32_t w;

		if (i == skip || !syn_lb_usable(ctx, i))
			continue;
		w = syn_lb_weight(up, i, ctx->now_ms);
		if ((r & 0xffffffffULL) * wmax < (uint64_t)w << 32) {
			*wp = w;
			return i;
		}
	}
	return -1;
}

/* See lb.h.  Each draw tries rejection first and falls back on the scan;
 * both give every server its exact weighted chance, so their mix does. */
int syn_lb_draw2(const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx, int n,
		 uint32_t wmax, uint64_t *rng, int c[2], uint32_t w[2])
{
	c[0] = lb_try_draw(up, ctx, n, wmax, -1, rng, &w[0]);
	if (c[0] < 0)
		c[0] = lb_scan_draw(up, ctx, n, -1, rng, &w[0]);
	if (c[0] < 0)
		return 0;
	c[1] = lb_try_draw(up, ctx, n, wmax, c[0], rng, &w[1]);
	if (c[1] < 0)
		c[1] = lb_scan_draw(up, ctx, n, c[0], rng, &w[1]);
	return c[1] < 0 ? 1 : 2;
}
