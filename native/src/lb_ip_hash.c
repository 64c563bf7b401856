/* native/src/lb_ip_hash.c - consistent hashing of the client address.
 *
 * A ring of points, 64-bit hashes sorted at init.  Each server owns a
 * number of points proportional to its configured weight (CH_PER_WEIGHT per
 * unit of weight, scaled down when the ring would pass CH_MAX_POINTS, at
 * least one each).  A client hash goes to the server of the first point at
 * or after it, wrapping around; when that server is not usable, to the
 * next point's, and so on.  Adding or removing one of N servers adds or
 * removes its points only, so only the clients landing on them move: about
 * 1/N of them.  A server that is down takes its clients to the owners of
 * the following points, spread over the pool, and gets them back when up.
 *
 * The points of a server are syn_lb_mix64() of its id (a hash of its
 * address, filled by the control plane), never of its position in the
 * configuration, so that every machine with the same servers and weights
 * builds the same ring whatever the order of the servers in its files, and
 * a server keeps its points across reloads.  A server with id 0 (not
 * filled) falls back to its index.  The owner's index lives in the low 8
 * bits of each point, so the ring is one array of 64-bit words.
 *
 * slow_start: the ring is static, so a server still ramping up accepts a
 * client with the probability its ramp gives (effective / full weight),
 * decided by a hash of client and server: as the ramp rises, the clients
 * it accepts are a growing set, each keeping it once it has it.  Clients
 * it declines walk on to the next point.
 */
#include <errno.h>

#include "syn/lb.h"

#define CH_PER_WEIGHT 160     /* points per unit of configured weight */
#define CH_MAX_POINTS 65536   /* ring size, before the one-per-server floor */
#define CH_SRV_MASK   0xffULL /* owner index in a point's low bits */

_Static_assert(SYN_LB_MAX_SERVERS <= 256, "a server index must fit in a point's low 8 bits");

struct ch_state {
	int nservers;
	uint32_t npoints;
	uint64_t ring[]; /* sorted; low 8 bits: owner */
};

/* The configured weight of server i, clamped as everywhere. */
static uint32_t ch_weight(const struct syn_lb_upstream *up, uint32_t i)
{
	return syn_lb_full_weight(up, (int)i) / SYN_LB_WEIGHT_SCALE;
}

static uint64_t ch_total_weight(const struct syn_lb_upstream *up)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < up->nservers; i++)
		total += ch_weight(up, i);
	return total;
}

/* Points of server i in a ring of servers weighing total: its weight times
 * CH_PER_WEIGHT, or its share of CH_MAX_POINTS when that is passed; >= 1. */
static uint32_t ch_points(const struct syn_lb_upstream *up, uint32_t i, uint64_t total)
{
	uint64_t p;

	if (total * CH_PER_WEIGHT <= CH_MAX_POINTS)
		return ch_weight(up, i) * CH_PER_WEIGHT;
	p = (uint64_t)ch_weight(up, i) * CH_MAX_POINTS / total;
	return p ? (uint32_t)p : 1;
}

/* The identity server i hashes from, see the top of the file. */
static uint64_t ch_key(const struct syn_lb_upstream *up, int i)
{
	uint64_t id = up->servers[i].id;

	return syn_lb_mix64(id ? id : (uint64_t)i + 1);
}

/* Bytes of state for up: the ring, at most CH_MAX_POINTS + nservers
 * points of 8 bytes (about 514 KiB at worst, 20 KiB for ten servers of
 * weight 1). */
static size_t ch_state_size(const struct syn_lb_upstream *up)
{
	uint64_t total, n = 0;
	uint32_t i;

	if (!up->nservers || up->nservers > SYN_LB_MAX_SERVERS)
		return sizeof(struct ch_state);
	total = ch_total_weight(up);
	for (i = 0; i < up->nservers; i++)
		n += ch_points(up, i, total);
	return sizeof(struct ch_state) + n * sizeof(uint64_t);
}

/* Restores the heap property below node i of a[0..n). */
static void ch_sift(uint64_t *a, uint32_t i, uint32_t n)
{
	for (;;) {
		uint32_t big = i, l = 2 * i + 1, r = l + 1;
		uint64_t t;

		if (l < n && a[l] > a[big])
			big = l;
		if (r < n && a[r] > a[big])
			big = r;
		if (big == i)
			return;
		t = a[i];
		a[i] = a[big];
		a[big] = t;
		i = big;
	}
}

/* Heapsort, ascending: in place, O(n log n) always, no allocation (qsort
 * may allocate). */
static void ch_sort(uint64_t *a, uint32_t n)
{
	uint32_t i;

	for (i = n / 2; i-- > 0;)
		ch_sift(a, i, n);
	while (n > 1) {
		uint64_t t = a[0];

		a[0] = a[--n];
		a[n] = t;
		ch_sift(a, 0, n);
	}
}

/* Builds and sorts the ring into st (ch_state_size(up) bytes); seed is
 * unused, since every worker and machine must build the same ring.
 * -EINVAL when up has no servers or too many. */
static int ch_init(void *st, const struct syn_lb_upstream *up, uint32_t seed)
{
	struct ch_state *ch = st;
	uint64_t total;
	uint32_t i, j, k = 0;

	(void)seed;
	if (!up->nservers || up->nservers > SYN_LB_MAX_SERVERS)
		return -EINVAL;
	total = ch_total_weight(up);
	for (i = 0; i < up->nservers; i++) {
		uint64_t key = ch_key(up, (int)i);
		uint32_t np = ch_points(up, i, total);

		for (j = 0; j < np; j++) {
			uint64_t p = syn_lb_mix64(key + (uint64_t)(j + 1) * 0x9e3779b97f4a7c15ULL);

			ch->ring[k++] = (p & ~CH_SRV_MASK) | i;
		}
	}
	ch->nservers = (int)up->nservers;
	ch->npoints = k;
	ch_sort(ch->ring, k);
	return 0;
}

/* The index of the first point >= h, or npoints when h is past the last. */
static uint32_t ch_find(const struct ch_state *ch, uint64_t h)
{
	uint32_t lo = 0, hi = ch->npoints;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ch->ring[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Does server i, in slow start, take the client hashed h?  Yes for a share
 * ew / full of clients, the same ones at every pick. */
static int ch_accepts(const struct syn_lb_upstream *up, int i, uint64_t h, uint64_t now_ms)
{
	uint64_t ew = syn_lb_weight(up, i, now_ms);
	uint64_t full = syn_lb_full_weight(up, i);
	uint64_t r = syn_lb_mix64(h ^ ch_key(up, i)) >> 32;

	return ew >= full || r * full < ew << 32;
}

/* Binary search, then a walk along the ring to the first usable server that
 * accepts the client (every usable one does unless in slow start); when
 * none does, the first usable one met.  Reads the ring and the shared
 * up_since_ms of servers in slow start; writes nothing.  Index or -EAGAIN. */
static int ch_pick(void *st, const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx)
{
	const struct ch_state *ch = st;
	int n = ch->nservers < (int)up->nservers ? ch->nservers : (int)up->nservers;
	uint64_t h = syn_lb_mix64(ctx->hash);
	uint32_t k, left;
	int first = -1;

	if (syn_lb_next_usable(ctx, n, 0) < 0)
		return -EAGAIN;
	k = ch_find(ch, h);
	for (left = ch->npoints; left; left--, k++) {
		int i;

		if (k >= ch->npoints)
			k = 0;
		i = (int)(ch->ring[k] & CH_SRV_MASK);
		if (i >= n || !syn_lb_usable(ctx, i))
			continue;
		if (!up->slow_start_ms || ch_accepts(up, i, h, ctx->now_ms))
			return i;
		if (first < 0)
			first = i;
	}
	return first >= 0 ? first : -EAGAIN;
}

static const struct syn_lb_ops ch_ops = {
	.pick = ch_pick,
	.done = NULL,
};

const struct syn_lb_def syn_lb_ip_hash_def = {
	.name = "ip_hash",
	.state_size = ch_state_size,
	.init = ch_init,
	.ops = &ch_ops,
};
