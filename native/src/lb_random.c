/* native/src/lb_random.c - power of two random choices on active requests.
 *
 * Two distinct usable servers are drawn at random, each with probability
 * proportional to its effective weight, and the one with fewer active
 * requests (all workers, the shared counter) per unit of weight gets the
 * request; on a tie, the first drawn.  Two choices instead of the full scan
 * of least_conn avoid herding: when many workers (or machines) see the
 * same stale counters they do not all pile onto the same least loaded
 * server, and yet the maximum load stays close to the best.
 *
 * Each worker has its own generator (splitmix64), seeded at init, so that
 * workers do not draw in lockstep.
 */
#include <errno.h>

#include "syn/lb.h"

struct p2c_state {
	int nservers;
	uint32_t wmax; /* largest full weight, for the draws */
	uint64_t rng;
};

/* Bytes of state: the generator and the largest weight. */
static size_t p2c_state_size(const struct syn_lb_upstream *up)
{
	(void)up;
	return sizeof(struct p2c_state);
}

/* Seeds the generator from seed (give each worker its own) and notes the
 * largest weight.  -EINVAL when up has no servers or too many. */
static int p2c_init(void *st, const struct syn_lb_upstream *up, uint32_t seed)
{
	struct p2c_state *p2c = st;
	int i;

	if (!up->nservers || up->nservers > SYN_LB_MAX_SERVERS)
		return -EINVAL;
	p2c->nservers = (int)up->nservers;
	p2c->wmax = 0;
	for (i = 0; i < p2c->nservers; i++)
		if (syn_lb_full_weight(up, i) > p2c->wmax)
			p2c->wmax = syn_lb_full_weight(up, i);
	p2c->rng = syn_lb_mix64(seed);
	return 0;
}

/* Draws two, keeps the one with the lower active / weight (compared by
 * cross-multiplying, exact in 64 bits).  Reads the shared active counters
 * relaxed; writes the generator.  Index or -EAGAIN. */
static int p2c_pick(void *st, const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx)
{
	struct p2c_state *p2c = st;
	int n = p2c->nservers < (int)up->nservers ? p2c->nservers : (int)up->nservers;
	uint64_t a0, a1;
	uint32_t w[2];
	int c[2];

	switch (syn_lb_draw2(up, ctx, n, p2c->wmax, &p2c->rng, c, w)) {
	case 0:
		return -EAGAIN;
	case 1:
		return c[0];
	}
	a0 = __atomic_load_n(&up->servers[c[0]].shared->active, __ATOMIC_RELAXED);
	a1 = __atomic_load_n(&up->servers[c[1]].shared->active, __ATOMIC_RELAXED);
	return a1 * w[0] < a0 * w[1] ? c[1] : c[0];
}

static const struct syn_lb_ops p2c_ops = {
	.pick = p2c_pick,
	.done = NULL,
};

const struct syn_lb_def syn_lb_random_def = {
	.name = "random",
	.state_size = p2c_state_size,
	.init = p2c_init,
	.ops = &p2c_ops,
};
