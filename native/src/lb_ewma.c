/* native/src/lb_ewma.c - power of two random choices on peak-EWMA latency.
 *
 * Each worker keeps, per server, an estimate of its response latency:
 * peak-sensitive, it jumps up to any sample above it at once and moves
 * down toward samples below it with a time constant EWMA_TAU_MS
 * (weight of the old estimate exp(-dt / tau), dt since it last moved), so
 * one slow response is believed at once and a recovery only over seconds.
 * A failure counts as a sample of at least EWMA_PENALTY_US and never
 * lowers the estimate.  A server with no sample yet is assumed to answer
 * in EWMA_DEFAULT_US, low on purpose so that new servers get tried; its
 * first sample replaces that guess outright.
 *
 * When an estimate is looked at for a pick it first decays toward 0 with
 * the same time constant (as Finagle's and linkerd's peak EWMA do): a
 * server that lost every comparison since it was slow gets no samples, and
 * without that decay it would never be tried again.  Since every estimate
 * decays alike, quiet time alone does not reorder servers; fresh samples
 * from the others do.
 *
 * The pick draws two distinct usable servers (probability proportional to
 * effective weight) and keeps the lower cost
 *	estimate * (active + 1) / effective weight,
 * active being the requests in flight from all workers: a slow server gets
 * less traffic well before it fails outright, and a fast one still is not
 * piled on.
 *
 * done() has no clock of its own: it uses the latest now_ms this worker's
 * picks have seen, which on a worker with traffic is at most a request old
 * and errs toward decaying too little.
 */
#include <errno.h>

#include "syn/lb.h"

#define EWMA_TAU_MS     10000     /* time constant of the decay */
#define EWMA_DEFAULT_US 1000.0    /* the guess for a server never heard from */
#define EWMA_PENALTY_US 1000000.0 /* the least a failure counts as */
#define EWMA_FLOOR_US   1.0       /* in costs, so that active still counts at 0 */
#define EWMA_NEVER      UINT64_MAX

struct ewma_srv {
	double est_us;     /* the estimate as of stamp_ms */
	uint64_t stamp_ms; /* when est_us last moved, or EWMA_NEVER */
	uint32_t sampled;  /* est_us comes from a real sample */
	uint32_t pad;
};

struct ewma_state {
	int nservers;
	uint32_t wmax; /* largest full weight, for the draws */
	uint64_t rng;
	uint64_t clock_ms; /* latest ctx->now_ms seen by a pick */
	struct ewma_srv s[];
};

/* Bytes of state: the generator, the clock and an estimate per server. */
static size_t ewma_state_size(const struct syn_lb_upstream *up)
{
	uint32_t n = up->nservers <= SYN_LB_MAX_SERVERS ? up->nservers : 0;

	return sizeof(struct ewma_state) + n * sizeof(struct ewma_srv);
}

/* Every server starts at the default guess; seed seeds this worker's
 * generator; notes the largest weight.  -EINVAL when up has no servers or too many. */
static int ewma_init(void *st, const struct syn_lb_upstream *up, uint32_t seed)
{
	struct ewma_state *e = st;
	uint32_t i;

	if (!up->nservers || up->nservers > SYN_LB_MAX_SERVERS)
		return -EINVAL;
	e->nservers = (int)up->nservers;
	e->wmax = 0;
	e->rng = syn_lb_mix64(seed);
	e->clock_ms = 0;
	for (i = 0; i < up->nservers; i++) {
		if (syn_lb_full_weight(up, (int)i) > e->wmax)
			e->wmax = syn_lb_full_weight(up, (int)i);
		e->s[i].est_us = EWMA_DEFAULT_US;
		e->s[i].stamp_ms = EWMA_NEVER;
		e->s[i].sampled = 0;
		e->s[i].pad = 0;
	}
	return 0;
}

/* exp(-dt / tau) without libm: exp(-x) = exp(-x/16)^16, with exp(-y) taken
 * as 1 / (its Taylor polynomial of degree 4), y <= 1; 0 from x = 16 on.
 * Absolute error below 3e-6 everywhere, relative about 1e-7 up to x = 1. */
static double ewma_decay(uint64_t dt_ms)
{
	double y, d;

	if (dt_ms >= 16 * (uint64_t)EWMA_TAU_MS)
		return 0.0;
	y = (double)dt_ms / (16.0 * EWMA_TAU_MS);
	d = 1.0 / (1.0 + y * (1.0 + y * (0.5 + y * (1.0 / 6.0 + y / 24.0))));
	d *= d;
	d *= d;
	d *= d;
	d *= d;
	return d;
}

/* Time since s last moved, 0 if it never did or the clock went back. */
static uint64_t ewma_age(const struct ewma_srv *s, uint64_t now_ms)
{
	return s->stamp_ms != EWMA_NEVER && now_ms > s->stamp_ms ? now_ms - s->stamp_ms : 0;
}

/* The cost of server i at now_ms, after decaying its estimate toward 0
 * (written back, with the stamp); an estimate decayed to nothing (a long
 * quiet spell) costs EWMA_FLOOR_US, which leaves active requests to
 * decide.  Reads the server's shared active counter. */
static double ewma_cost(struct ewma_state *e, const struct syn_lb_upstream *up, int i, uint32_t w,
			uint64_t now_ms)
{
	struct ewma_srv *s = &e->s[i];
	uint32_t active = __atomic_load_n(&up->servers[i].shared->active, __ATOMIC_RELAXED);
	double est;

	s->est_us *= ewma_decay(ewma_age(s, now_ms));
	s->stamp_ms = now_ms;
	est = s->est_us > EWMA_FLOOR_US ? s->est_us : EWMA_FLOOR_US;
	return est * ((double)active + 1.0) / (double)w;
}

/* Draws two, keeps the cheaper (the first drawn on a tie).  Writes this
 * worker's state: generator, clock, the two estimates.  Index or -EAGAIN. */
static int ewma_pick(void *st, const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx)
{
	struct ewma_state *e = st;
	int n = e->nservers < (int)up->nservers ? e->nservers : (int)up->nservers;
	uint32_t w[2];
	int c[2];

	if (ctx->now_ms > e->clock_ms)
		e->clock_ms = ctx->now_ms;
	switch (syn_lb_draw2(up, ctx, n, e->wmax, &e->rng, c, w)) {
	case 0:
		return -EAGAIN;
	case 1:
		return c[0];
	}
	if (ewma_cost(e, up, c[1], w[1], ctx->now_ms) < ewma_cost(e, up, c[0], w[0], ctx->now_ms))
		return c[1];
	return c[0];
}

/* Folds one response time (or a failure) of server srv into its estimate;
 * ignores srv out of range.  Writes this worker's estimate of srv only. */
static void ewma_done(void *st, const struct syn_lb_upstream *up, int srv, uint64_t latency_us,
		      int failed)
{
	struct ewma_state *e = st;
	int n = e->nservers < (int)up->nservers ? e->nservers : (int)up->nservers;
	double sample = (double)latency_us;
	struct ewma_srv *s;
	double w;

	if (srv < 0 || srv >= n)
		return;
	s = &e->s[srv];
	if (failed && sample < EWMA_PENALTY_US)
		sample = EWMA_PENALTY_US;
	if (!s->sampled || sample > s->est_us) {
		s->est_us = sample;
	} else if (!failed) {
		w = ewma_decay(ewma_age(s, e->clock_ms));
		s->est_us = s->est_us * w + sample * (1.0 - w);
	}
	s->sampled = 1;
	s->stamp_ms = e->clock_ms;
}

static const struct syn_lb_ops ewma_ops = {
	.pick = ewma_pick,
	.done = ewma_done,
};

const struct syn_lb_def syn_lb_ewma_def = {
	.name = "ewma",
	.state_size = ewma_state_size,
	.init = ewma_init,
	.ops = &ewma_ops,
};
