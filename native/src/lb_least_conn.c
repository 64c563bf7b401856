/* native/src/lb_least_conn.c - fewest active requests, weight-scaled.
 *
 * The pick goes to the usable server with the lowest active / weight,
 * where active is the number of requests in flight to it from all
 * workers (the shared atomic counter) and weight its effective weight.
 * Ratios are compared by cross-multiplying, exactly, in 64 bits.
 *
 * Ties are broken by smooth weighted round robin among the tied servers
 * (as nginx's least_conn does), with a current weight per server kept in
 * the worker's state: with equal weights this is plain rotation, and
 * when the pool is quiet (every server at 0 active, a tie of all) traffic
 * still follows the weights instead of being split evenly.
 */
#include <errno.h>

#include "syn/lb.h"

/* Followed by uint32_t act[nservers] and w[nservers]: scratch for one pick,
 * the active count and effective weight as read in its first pass. */
struct lc_state {
	int nservers;
	int64_t cw[]; /* current weight per server, for the tie-break */
};

static uint32_t *lc_act(struct lc_state *lc)
{
	return (uint32_t *)(lc->cw + lc->nservers);
}

/* Bytes of state for up: a current weight and two scratch words per
 * server, so a pick reads each shared counter once. */
static size_t lc_state_size(const struct syn_lb_upstream *up)
{
	uint32_t n = up->nservers <= SYN_LB_MAX_SERVERS ? up->nservers : 0;

	return sizeof(struct lc_state) + n * (sizeof(int64_t) + 2 * sizeof(uint32_t));
}

/* Zeroes the current weights (and the scratch); seed is unused.
 * -EINVAL when up has no servers or too many. */
static int lc_init(void *st, const struct syn_lb_upstream *up, uint32_t seed)
{
	struct lc_state *lc = st;
	uint32_t i;

	(void)seed;
	if (!up->nservers || up->nservers > SYN_LB_MAX_SERVERS)
		return -EINVAL;
	lc->nservers = (int)up->nservers;
	for (i = 0; i < up->nservers; i++)
		lc->cw[i] = 0;
	for (i = 0; i < 2 * up->nservers; i++)
		lc_act(lc)[i] = 0;
	return 0;
}

/* Is a/wa below b/wb?  Exact: a < 2^32 and weights < 2^27. */
static int lc_less(uint32_t a, uint32_t wa, uint32_t b, uint32_t wb)
{
	return (uint64_t)a * wb < (uint64_t)b * wa;
}

/* First pass: the lowest ratio; second pass: smooth weighted round robin
 * among the servers at that ratio.  Reads the shared active counters
 * (relaxed: a balancing hint, not a synchronisation) and writes this
 * worker's state only.  Index or -EAGAIN. */
static int lc_pick(void *st, const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx)
{
	struct lc_state *lc = st;
	int n = lc->nservers < (int)up->nservers ? lc->nservers : (int)up->nservers;
	uint32_t *act = lc_act(lc), *w = act + lc->nservers;
	int i, low = -1, best = -1;
	int64_t total = 0;

	for (i = syn_lb_next_usable(ctx, n, 0); i >= 0; i = syn_lb_next_usable(ctx, n, i + 1)) {
		act[i] = __atomic_load_n(&up->servers[i].shared->active, __ATOMIC_RELAXED);
		w[i] = syn_lb_weight(up, i, ctx->now_ms);
		if (low < 0 || lc_less(act[i], w[i], act[low], w[low]))
			low = i;
	}
	if (low < 0)
		return -EAGAIN;
	for (i = low; i >= 0; i = syn_lb_next_usable(ctx, n, i + 1)) {
		if (lc_less(act[low], w[low], act[i], w[i]))
			continue;
		lc->cw[i] += w[i];
		total += w[i];
		if (best < 0 || lc->cw[i] > lc->cw[best])
			best = i;
	}
	lc->cw[best] -= total;
	return best;
}

static const struct syn_lb_ops lc_ops = {
	.pick = lc_pick,
	.done = NULL,
};

const struct syn_lb_def syn_lb_least_conn_def = {
	.name = "least_conn",
	.state_size = lc_state_size,
	.init = lc_init,
	.ops = &lc_ops,
};
