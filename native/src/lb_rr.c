/* native/src/lb_rr.c - smooth weighted round robin (nginx's).
 *
 * Each pick adds every usable server's effective weight to its current
 * weight, takes the server with the largest current weight (the first one
 * on a tie) and takes the total of the added weights off it.  Over any
 * run of picks with steady weights each server gets its share, and the
 * picks of a heavy server are spread out rather than bunched: weights
 * 5, 1, 1 give a, a, b, a, c, a, a and then repeat.
 *
 * Servers that are not usable are left out of the pick altogether, their
 * current weight frozen until they are usable again.  Effective weights
 * come from syn_lb_weight(), so a server in slow start gets its ramp.
 */
#include <errno.h>

#include "syn/lb.h"

struct rr_state {
	int nservers;
	int64_t cw[]; /* current weight per server */
};

/* Bytes of state for up: a current weight per server. */
static size_t rr_state_size(const struct syn_lb_upstream *up)
{
	uint32_t n = up->nservers <= SYN_LB_MAX_SERVERS ? up->nservers : 0;

	return sizeof(struct rr_state) + n * sizeof(int64_t);
}

/* Every current weight starts at 0, as nginx's do; seed is unused (the
 * sequence is the same on every worker, which is what makes it smooth per
 * worker).  -EINVAL when up has no servers or too many. */
static int rr_init(void *st, const struct syn_lb_upstream *up, uint32_t seed)
{
	struct rr_state *rr = st;
	uint32_t i;

	(void)seed;
	if (!up->nservers || up->nservers > SYN_LB_MAX_SERVERS)
		return -EINVAL;
	rr->nservers = (int)up->nservers;
	for (i = 0; i < up->nservers; i++)
		rr->cw[i] = 0;
	return 0;
}

/* One smooth weighted round robin step over the usable servers; writes
 * the current weights of the usable servers only.  Index or -EAGAIN. */
static int rr_pick(void *st, const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx)
{
	struct rr_state *rr = st;
	int n = rr->nservers < (int)up->nservers ? rr->nservers : (int)up->nservers;
	int64_t total = 0;
	int i, best = -1;

	for (i = syn_lb_next_usable(ctx, n, 0); i >= 0; i = syn_lb_next_usable(ctx, n, i + 1)) {
		int64_t w = syn_lb_weight(up, i, ctx->now_ms);

		rr->cw[i] += w;
		total += w;
		if (best < 0 || rr->cw[i] > rr->cw[best])
			best = i;
	}
	if (best < 0)
		return -EAGAIN;
	rr->cw[best] -= total;
	return best;
}

static const struct syn_lb_ops rr_ops = {
	.pick = rr_pick,
	.done = NULL,
};

const struct syn_lb_def syn_lb_round_robin_def = {
	.name = "round_robin",
	.state_size = rr_state_size,
	.init = rr_init,
	.ops = &rr_ops,
};
