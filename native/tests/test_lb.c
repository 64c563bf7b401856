/* native/tests/test_lb.c - the load balancers (native/src/lb*.c).
 *
 * Each algorithm runs on a pool of fake servers whose shared blocks (active
 * requests, up_since_ms) the tests set by hand, through the registry as the
 * engine uses it: state_size(), a heap block of exactly that size (poisoned
 * first, so init must set what pick reads; ASan sees overruns), init(),
 * pick() and done().  Exact sequences where the algorithm is deterministic
 * (round robin, least_conn ties), shares within tolerances over many picks
 * where it is random, remap fractions for ip_hash, and for every algorithm
 * a randomised check that pick never returns a server outside the usable
 * mask and returns -EAGAIN exactly when the mask is empty.  Random inputs
 * come from fixed seeds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syn/lb.h"
#include "check.h"

struct pool {
	int n;
	struct syn_server_shared sh[SYN_LB_MAX_SERVERS];
	struct syn_lb_server srv[SYN_LB_MAX_SERVERS];
	struct syn_lb_upstream up;
	const struct syn_lb_def *def;
	void *st;
};

static uint64_t test_rng = 42;

static uint64_t rnd(void)
{
	return syn_lb_rand(&test_rng);
}

/* An id as the control plane makes one: a hash of the address, here of
 * a made-up address number. */
static uint64_t addr_id(int addr)
{
	return syn_lb_mix64(0x5e4a0000ULL + (uint64_t)addr);
}

/* A pool of n servers, all up and idle, weights w (NULL: all 1), ids from
 * addresses addr (NULL: 0..n-1), ready for algorithm algo. */
static struct pool *pool_new(int algo, int n, const uint32_t *w, const int *addr,
			     uint32_t slow_start_ms, uint32_t seed)
{
	struct pool *p = calloc(1, sizeof(*p));
	size_t size;
	int i, rc;

	if (!p)
		abort();
	p->n = n;
	for (i = 0; i < n; i++) {
		p->srv[i].weight = w ? w[i] : 1;
		p->srv[i].id = addr_id(addr ? addr[i] : i);
		p->srv[i].shared = &p->sh[i];
		p->sh[i].up = 1;
	}
	p->up.nservers = (uint32_t)n;
	p->up.slow_start_ms = slow_start_ms;
	p->up.servers = p->srv;
	p->def = syn_lb_get(algo);
	size = p->def->state_size(&p->up);
	p->st = malloc(size);
	if (!p->st)
		abort();
	memset(p->st, 0xa5, size);
	rc = p->def->init(p->st, &p->up, seed);
	CHECK(rc == 0, "%s init with %d servers: %d", p->def->name, n, rc);
	return p;
}

static void pool_free(struct pool *p)
{
	free(p->st);
	free(p);
}

static int pick(struct pool *p, const struct syn_lb_ctx *ctx)
{
	return p->def->ops->pick(p->st, &p->up, ctx);
}

static void done(struct pool *p, int srv, uint64_t latency_us, int failed)
{
	if (p->def->ops->done)
		p->def->ops->done(p->st, &p->up, srv, latency_us, failed);
}

static void set_bit(struct syn_lb_ctx *ctx, int i, int on)
{
	if (on)
		ctx->usable[i >> 6] |= 1ULL << (i & 63);
	else
		ctx->usable[i >> 6] &= ~(1ULL << (i & 63));
}

/* A context with servers 0..n-1 usable. */
static struct syn_lb_ctx ctx_all(int n)
{
	struct syn_lb_ctx ctx;
	int i;

	memset(&ctx, 0, sizeof(ctx));
	for (i = 0; i < n; i++)
		set_bit(&ctx, i, 1);
	return ctx;
}

/* k picks as letters ('a' for server 0), '!' for an error. */
static const char *seq(struct pool *p, const struct syn_lb_ctx *ctx, int k)
{
	static char buf[256];
	int i;

	for (i = 0; i < k && i < 255; i++) {
		int s = pick(p, ctx);

		buf[i] = s >= 0 && s < 26 ? (char)('a' + s) : '!';
	}
	buf[i] = 0;
	return buf;
}

/* Counts of k picks per server into cnt[p->n]; returns the errors. */
static int tally(struct pool *p, const struct syn_lb_ctx *ctx, int k, int *cnt)
{
	int i, err = 0;

	memset(cnt, 0, sizeof(int) * (size_t)p->n);
	for (i = 0; i < k; i++) {
		int s = pick(p, ctx);

		if (s >= 0 && s < p->n)
			cnt[s]++;
		else
			err++;
	}
	return err;
}

/* ---- registry, helpers, effective weights -------------------------------- */

static void test_registry(void)
{
	static const char *const names[SYN_LB__COUNT] = {"round_robin", "least_conn", "ip_hash",
							 "random", "ewma"};
	int i;

	for (i = 0; i < SYN_LB__COUNT; i++) {
		const struct syn_lb_def *d = syn_lb_get(i);

		CHECK(d && !strcmp(d->name, names[i]), "syn_lb_get(%d)", i);
		if (!d)
			continue;
		CHECK(d->state_size && d->init && d->ops && d->ops->pick, "%s: table complete",
		      d->name);
		CHECK(syn_lb_by_name(names[i]) == i, "by_name(%s)", names[i]);
	}
	CHECK(syn_lb_get(-1) == NULL && syn_lb_get(SYN_LB__COUNT) == NULL, "out of range");
	CHECK(syn_lb_by_name("Round_Robin") == -ENOENT, "names are case-sensitive");
	CHECK(syn_lb_by_name("") == -ENOENT && syn_lb_by_name(NULL) == -ENOENT, "empty name");
	CHECK(syn_lb_by_name("least_connections") == -ENOENT, "unknown name");
	CHECK(syn_lb_get(SYN_LB_EWMA)->ops->done != NULL, "ewma learns from done()");
}

static void test_next_usable(void)
{
	struct syn_lb_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	CHECK(syn_lb_next_usable(&ctx, 256, 0) == -1, "empty mask");
	set_bit(&ctx, 3, 1);
	set_bit(&ctx, 64, 1);
	set_bit(&ctx, 200, 1);
	set_bit(&ctx, 255, 1);
	CHECK(syn_lb_next_usable(&ctx, 256, 0) == 3, "first");
	CHECK(syn_lb_next_usable(&ctx, 256, 3) == 3, "from itself");
	CHECK(syn_lb_next_usable(&ctx, 256, 4) == 64, "next word");
	CHECK(syn_lb_next_usable(&ctx, 256, 65) == 200, "skip a word");
	CHECK(syn_lb_next_usable(&ctx, 256, 201) == 255, "last");
	CHECK(syn_lb_next_usable(&ctx, 256, 256) == -1, "past the end");
	CHECK(syn_lb_next_usable(&ctx, 200, 65) == -1, "bits at n and above ignored");
	CHECK(syn_lb_next_usable(&ctx, 3, 0) == -1, "bit n ignored");
}

static void test_weight(void)
{
	uint32_t w[4] = {10, 1, 0, 4000000000u};
	struct pool *p = pool_new(SYN_LB_ROUND_ROBIN, 4, w, NULL, 0, 1);
	uint64_t t0 = 1000000;

	CHECK(syn_lb_weight(&p->up, 0, t0) == 1000, "off: full, got %u",
	      syn_lb_weight(&p->up, 0, t0));
	CHECK(syn_lb_weight(&p->up, 2, t0) == SYN_LB_WEIGHT_SCALE, "weight 0 counts as 1");
	CHECK(syn_lb_weight(&p->up, 3, t0) == (uint32_t)SYN_LB_WEIGHT_MAX * SYN_LB_WEIGHT_SCALE,
	      "huge weights clamp");

	p->up.slow_start_ms = 30000;
	p->sh[0].up_since_ms = t0;
	p->sh[1].up_since_ms = t0;
	CHECK(syn_lb_weight(&p->up, 0, t0) == 100, "ramp start: a tenth, got %u",
	      syn_lb_weight(&p->up, 0, t0));
	CHECK(syn_lb_weight(&p->up, 0, t0 + 15000) == 550, "ramp middle, got %u",
	      syn_lb_weight(&p->up, 0, t0 + 15000));
	CHECK(syn_lb_weight(&p->up, 0, t0 + 3000) == 190, "ramp 10%%, got %u",
	      syn_lb_weight(&p->up, 0, t0 + 3000));
	CHECK(syn_lb_weight(&p->up, 0, t0 + 29999) == 999, "ramp end - 1ms, got %u",
	      syn_lb_weight(&p->up, 0, t0 + 29999));
	CHECK(syn_lb_weight(&p->up, 0, t0 + 30000) == 1000, "ramp over");
	CHECK(syn_lb_weight(&p->up, 0, t0 + 999999) == 1000, "long after");
	CHECK(syn_lb_weight(&p->up, 0, t0 - 5) == 100, "up_since in the future: start");
	CHECK(syn_lb_weight(&p->up, 1, t0) == 10, "weight 1 ramps too: %u",
	      syn_lb_weight(&p->up, 1, t0));
	CHECK(syn_lb_weight(&p->up, 1, t0 + 15000) == 55, "weight 1 middle");
	CHECK(syn_lb_weight(&p->up, 1, t0 + 30000) == 100, "weight 1 full");
	CHECK(syn_lb_weight(&p->up, 2, t0) == 100, "up_since 0 = long ago: full");
	pool_free(p);
}

/* ---- round robin --------------------------------------------------------- */

static void test_rr_sequence(void)
{
	uint32_t w[3] = {5, 1, 1};
	struct pool *p = pool_new(SYN_LB_ROUND_ROBIN, 3, w, NULL, 0, 1);
	struct syn_lb_ctx ctx = ctx_all(3);
	const char *s;

	s = seq(p, &ctx, 14);
	CHECK(!strcmp(s, "aabacaaaabacaa"), "5,1,1: got %s", s);
	pool_free(p);

	/* b unusable from the start: a and c at 5,1 */
	p = pool_new(SYN_LB_ROUND_ROBIN, 3, w, NULL, 0, 1);
	set_bit(&ctx, 1, 0);
	s = seq(p, &ctx, 12);
	CHECK(!strcmp(s, "aaacaaaaacaa"), "5,_,1: got %s", s);
	pool_free(p);

	/* b goes away after the third pick, comes back after the ninth: its
	 * current weight (-4) must not grow meanwhile */
	p = pool_new(SYN_LB_ROUND_ROBIN, 3, w, NULL, 0, 1);
	ctx = ctx_all(3);
	s = seq(p, &ctx, 3);
	CHECK(!strcmp(s, "aab"), "first three: %s", s);
	set_bit(&ctx, 1, 0);
	s = seq(p, &ctx, 6);
	CHECK(!strcmp(s, "aacaaa"), "without b: %s", s);
	set_bit(&ctx, 1, 1);
	s = seq(p, &ctx, 7);
	CHECK(!strcmp(s, "acaaaab"), "b back: %s", s);
	pool_free(p);

	/* equal weights: plain rotation */
	p = pool_new(SYN_LB_ROUND_ROBIN, 3, NULL, NULL, 0, 1);
	ctx = ctx_all(3);
	s = seq(p, &ctx, 7);
	CHECK(!strcmp(s, "abcabca"), "1,1,1: %s", s);
	pool_free(p);
}

static void test_rr_proportions(void)
{
	uint32_t w[3] = {5, 1, 1}, rw[20];
	struct pool *p = pool_new(SYN_LB_ROUND_ROBIN, 3, w, NULL, 0, 1);
	struct syn_lb_ctx ctx = ctx_all(3);
	int cnt[20], err, i, round, total;

	err = tally(p, &ctx, 7000, cnt);
	CHECK(!err && cnt[0] == 5000 && cnt[1] == 1000 && cnt[2] == 1000, "7000 picks: %d %d %d",
	      cnt[0], cnt[1], cnt[2]);
	pool_free(p);

	/* any weights: after sum(weights) picks every server had exactly its
	 * weight, and the current weights are back to 0 */
	for (round = 0; round < 20; round++) {
		int n = 1 + (int)(rnd() % 20), ok = 1;

		for (i = 0, total = 0; i < n; i++) {
			rw[i] = 1 + (uint32_t)(rnd() % 50);
			total += (int)rw[i];
		}
		p = pool_new(SYN_LB_ROUND_ROBIN, n, rw, NULL, 0, 1);
		ctx = ctx_all(n);
		err = tally(p, &ctx, 3 * total, cnt);
		for (i = 0; i < n; i++)
			ok &= cnt[i] == 3 * (int)rw[i];
		CHECK(!err && ok, "random weights, round %d (n %d)", round, n);
		pool_free(p);
	}
}

/* ---- least_conn ---------------------------------------------------------- */

static void test_least_conn(void)
{
	uint32_t w2[2] = {3, 1};
	struct pool *p = pool_new(SYN_LB_LEAST_CONN, 4, NULL, NULL, 0, 1);
	struct syn_lb_ctx ctx = ctx_all(4);
	int cnt[4], i, s;
	const char *q;

	p->sh[0].active = 5;
	p->sh[1].active = 2;
	p->sh[2].active = 7;
	p->sh[3].active = 3;
	for (i = 0; i < 5; i++) {
		s = pick(p, &ctx);
		CHECK(s == 1, "fewest active: got %d", s);
	}
	set_bit(&ctx, 1, 0);
	s = pick(p, &ctx);
	CHECK(s == 3, "fewest usable: got %d", s);

	/* ties rotate */
	ctx = ctx_all(4);
	for (i = 0; i < 4; i++)
		p->sh[i].active = 0;
	q = seq(p, &ctx, 8);
	CHECK(!strcmp(q, "abcdabcd"), "idle pool rotates: %s", q);
	p->sh[0].active = 1;
	p->sh[3].active = 1;
	q = seq(p, &ctx, 6);
	CHECK(!strcmp(q, "bcbcbc"), "ties among b, c rotate: %s", q);

	/* the counts move as requests start: the picks spread */
	for (i = 0; i < 4; i++)
		p->sh[i].active = 0;
	for (i = 0; i < 40; i++)
		p->sh[pick(p, &ctx)].active++;
	CHECK(p->sh[0].active == 10 && p->sh[1].active == 10 && p->sh[2].active == 10 &&
		      p->sh[3].active == 10,
	      "even spread: %u %u %u %u", p->sh[0].active, p->sh[1].active, p->sh[2].active,
	      p->sh[3].active);
	pool_free(p);

	/* weight scaling: 4/3 < 2/1 */
	p = pool_new(SYN_LB_LEAST_CONN, 2, w2, NULL, 0, 1);
	ctx = ctx_all(2);
	p->sh[0].active = 4;
	p->sh[1].active = 2;
	s = pick(p, &ctx);
	CHECK(s == 0, "4 active / weight 3 beats 2 / 1: got %d", s);
	p->sh[0].active = 7;
	s = pick(p, &ctx);
	CHECK(s == 1, "7 / 3 loses to 2 / 1: got %d", s);
	/* a quiet pool (all ties) still follows the weights */
	p->sh[0].active = 0;
	p->sh[1].active = 0;
	tally(p, &ctx, 400, cnt);
	CHECK(cnt[0] == 300 && cnt[1] == 100, "idle 3:1 split: %d %d", cnt[0], cnt[1]);
	/* requests that stay in flight fill servers 3:1 */
	for (i = 0; i < 400; i++)
		p->sh[pick(p, &ctx)].active++;
	CHECK(p->sh[0].active == 300 && p->sh[1].active == 100, "loaded 3:1: %u %u",
	      p->sh[0].active, p->sh[1].active);
	pool_free(p);
}

/* ---- ip_hash ------------------------------------------------------------- */

#define NCLIENTS 10000

/* The address (identity) of the server each client lands on. */
static void ip_map(struct pool *p, const struct syn_lb_ctx *base, const int *addr,
		   const uint64_t *hashes, int *out)
{
	struct syn_lb_ctx ctx = *base;
	int i;

	for (i = 0; i < NCLIENTS; i++) {
		int s;

		ctx.hash = hashes[i];
		s = pick(p, &ctx);
		out[i] = s >= 0 && s < p->n ? addr[s] : -1;
	}
}

static int ip_moved(const int *a, const int *b)
{
	int i, moved = 0;

	for (i = 0; i < NCLIENTS; i++)
		moved += a[i] != b[i];
	return moved;
}

static void test_ip_hash_stable(uint64_t *hashes, int *m1, int *m2)
{
	int addr5[5] = {10, 11, 12, 13, 14}, rev[5] = {14, 13, 12, 11, 10};
	int four[4] = {10, 11, 13, 14}, same = 1, s0, i, moved, kept, stayed;
	struct pool *p4, *p5, *pr, *pd;
	struct syn_lb_ctx ctx = ctx_all(5), ctx4 = ctx_all(4);
	double f;

	/* same hash, same server, every time and on every worker */
	p5 = pool_new(SYN_LB_IP_HASH, 5, NULL, addr5, 0, 1);
	pd = pool_new(SYN_LB_IP_HASH, 5, NULL, addr5, 0, 999);
	for (i = 0; i < 1000; i++) {
		ctx.hash = hashes[i];
		s0 = pick(p5, &ctx);
		same &= s0 >= 0 && pick(p5, &ctx) == s0 && pick(pd, &ctx) == s0;
	}
	CHECK(same, "same hash, same server");
	ctx.hash = 0;
	CHECK(pick(p5, &ctx) >= 0, "hash 0");
	ctx.hash = UINT64_MAX;
	CHECK(pick(p5, &ctx) >= 0, "hash ~0");
	pool_free(pd);

	/* another machine lists the servers in another order: same answers */
	pr = pool_new(SYN_LB_IP_HASH, 5, NULL, rev, 0, 7);
	ip_map(p5, &ctx, addr5, hashes, m1);
	ip_map(pr, &ctx, rev, hashes, m2);
	CHECK(ip_moved(m1, m2) == 0, "order of servers does not matter: %d differ",
	      ip_moved(m1, m2));
	pool_free(pr);

	/* 4 servers, then a fifth added: about 1/5 move, all to the new one */
	p4 = pool_new(SYN_LB_IP_HASH, 4, NULL, four, 0, 1);
	ip_map(p4, &ctx4, four, hashes, m1);
	ip_map(p5, &ctx, addr5, hashes, m2);
	moved = ip_moved(m1, m2);
	f = (double)moved / NCLIENTS;
	CHECK(f > 0.12 && f < 0.30, "adding 1 to 4: %.3f moved", f);
	for (i = 0, kept = 1; i < NCLIENTS; i++)
		kept &= m1[i] == m2[i] || m2[i] == 12;
	CHECK(kept, "clients move only to the new server");

	/* and the fifth removed again: about 1/5 move, only its own clients */
	ip_map(p5, &ctx, addr5, hashes, m1);
	ip_map(p4, &ctx4, four, hashes, m2);
	f = (double)ip_moved(m1, m2) / NCLIENTS;
	CHECK(f > 0.12 && f < 0.30, "removing 1 of 5: %.3f moved", f);
	for (i = 0, kept = 0, stayed = 0; i < NCLIENTS; i++) {
		if (m1[i] == 12)
			continue;
		kept++;
		stayed += m1[i] == m2[i];
	}
	CHECK(stayed >= kept * 95 / 100, "clients of other servers stay: %d of %d", stayed, kept);
	CHECK(stayed == kept, "(all of them, in fact: %d of %d)", stayed, kept);

	/* the fifth down instead of removed: the same answers as without it */
	set_bit(&ctx, 2, 0);
	ip_map(p5, &ctx, addr5, hashes, m1);
	CHECK(ip_moved(m1, m2) == 0, "down = removed: %d differ", ip_moved(m1, m2));
	for (i = 0, same = 1; i < NCLIENTS; i++)
		same &= m1[i] != 12;
	CHECK(same, "a down server gets nobody");
	pool_free(p4);
	pool_free(p5);
}

static void test_ip_hash_weights(uint64_t *hashes, int *m1)
{
	uint32_t w[3] = {3, 1, 1};
	int addr[3] = {20, 21, 22}, cnt[3] = {0, 0, 0}, i;
	struct pool *p = pool_new(SYN_LB_IP_HASH, 3, w, addr, 0, 1);
	struct syn_lb_ctx ctx = ctx_all(3);
	double share;

	ip_map(p, &ctx, addr, hashes, m1);
	for (i = 0; i < NCLIENTS; i++)
		if (m1[i] >= 20 && m1[i] <= 22)
			cnt[m1[i] - 20]++;
	share = (double)cnt[0] / NCLIENTS;
	CHECK(share > 0.52 && share < 0.68, "weight 3 of 5: share %.3f", share);
	CHECK(cnt[0] > 2.4 * cnt[1] && cnt[0] < 3.6 * cnt[1] && cnt[0] > 2.4 * cnt[2] &&
		      cnt[0] < 3.6 * cnt[2],
	      "about 3x: %d %d %d", cnt[0], cnt[1], cnt[2]);
	pool_free(p);
}

/* Clients of a server in slow start: a small share at first, a growing set
 * (none leaves it as the ramp rises), all of its share at the end. */
static void test_ip_hash_slow_start(uint64_t *hashes, int *m1, int *m2)
{
	int addr[2] = {30, 31}, i, n0 = 0, n1 = 0, n2 = 0, grow = 1;
	struct pool *p = pool_new(SYN_LB_IP_HASH, 2, NULL, addr, 30000, 1);
	struct syn_lb_ctx ctx = ctx_all(2);
	uint64_t t0 = 5000000;

	p->sh[1].up_since_ms = t0;
	ctx.now_ms = t0;
	ip_map(p, &ctx, addr, hashes, m1);
	ctx.now_ms = t0 + 15000;
	ip_map(p, &ctx, addr, hashes, m2);
	for (i = 0; i < NCLIENTS; i++) {
		n0 += m1[i] == 31;
		n1 += m2[i] == 31;
		grow &= m1[i] != 31 || m2[i] == 31;
	}
	ctx.now_ms = t0 + 30000;
	ip_map(p, &ctx, addr, hashes, m1);
	for (i = 0; i < NCLIENTS; i++) {
		n2 += m1[i] == 31;
		grow &= m2[i] != 31 || m1[i] == 31;
	}
	CHECK(n0 > 0 && n0 < NCLIENTS / 10, "ramp start: %d of %d", n0, NCLIENTS);
	CHECK(n1 > n0 && n1 < n2, "ramp middle: %d (start %d, end %d)", n1, n0, n2);
	CHECK(n2 > NCLIENTS * 40 / 100 && n2 < NCLIENTS * 60 / 100, "ramp end: %d", n2);
	CHECK(grow, "a client the new server took stays on it");
	pool_free(p);
}

static void test_ip_hash_big(uint64_t *hashes)
{
	static uint32_t w[SYN_LB_MAX_SERVERS];
	struct pool *p;
	struct syn_lb_ctx ctx;
	size_t size;
	int i, ok = 1;

	for (i = 0; i < SYN_LB_MAX_SERVERS; i++)
		w[i] = 1000;
	p = pool_new(SYN_LB_IP_HASH, SYN_LB_MAX_SERVERS, w, NULL, 0, 1);
	size = p->def->state_size(&p->up);
	CHECK(size <= 16 + (65536 + SYN_LB_MAX_SERVERS) * 8, "256 x 1000: %zu bytes", size);
	ctx = ctx_all(SYN_LB_MAX_SERVERS);
	for (i = 0; i < NCLIENTS; i++) {
		ctx.hash = hashes[i];
		ok &= pick(p, &ctx) >= 0;
	}
	/* one usable server left of 256: the walk finds it */
	memset(ctx.usable, 0, sizeof(ctx.usable));
	set_bit(&ctx, 201, 1);
	for (i = 0; i < 1000; i++) {
		ctx.hash = hashes[i];
		ok &= pick(p, &ctx) == 201;
	}
	CHECK(ok, "big pool picks");
	pool_free(p);

	w[0] = 1;
	p = pool_new(SYN_LB_IP_HASH, 1, w, NULL, 0, 1);
	CHECK(p->def->state_size(&p->up) == 8 + 160 * 8, "one server of weight 1: %zu",
	      p->def->state_size(&p->up));
	pool_free(p);
}

static void test_ip_hash(void)
{
	uint64_t *hashes = malloc(NCLIENTS * sizeof(*hashes));
	int *m1 = malloc(NCLIENTS * sizeof(int)), *m2 = malloc(NCLIENTS * sizeof(int));
	int i;

	if (!hashes || !m1 || !m2)
		abort();
	for (i = 0; i < NCLIENTS; i++)
		hashes[i] = rnd();
	test_ip_hash_stable(hashes, m1, m2);
	test_ip_hash_weights(hashes, m1);
	test_ip_hash_slow_start(hashes, m1, m2);
	test_ip_hash_big(hashes);
	free(hashes);
	free(m1);
	free(m2);
}

/* ---- random (power of two choices) ---------------------------------------- */

static void test_random(void)
{
	uint32_t w[2] = {3, 1};
	struct pool *p = pool_new(SYN_LB_RANDOM, 4, NULL, NULL, 0, 1);
	struct syn_lb_ctx ctx = ctx_all(4);
	int cnt[4], i;

	p->sh[2].active = 50;
	tally(p, &ctx, 10000, cnt);
	CHECK(cnt[2] < 2000, "busy server: %d of 10000", cnt[2]);
	CHECK(cnt[0] > 2500 && cnt[1] > 2500 && cnt[3] > 2500, "the rest share: %d %d %d", cnt[0],
	      cnt[1], cnt[3]);
	pool_free(p);

	p = pool_new(SYN_LB_RANDOM, 2, NULL, NULL, 0, 1);
	ctx = ctx_all(2);
	p->sh[0].active = 100;
	tally(p, &ctx, 10000, cnt);
	CHECK(cnt[0] < 2000, "two servers, one busy: %d of 10000", cnt[0]);
	pool_free(p);

	/* idle: ties go to the first drawn, drawn by weight */
	p = pool_new(SYN_LB_RANDOM, 2, w, NULL, 0, 1);
	tally(p, &ctx, 20000, cnt);
	CHECK(cnt[0] > 14000 && cnt[0] < 16000, "3:1 when idle: %d %d", cnt[0], cnt[1]);
	/* loaded evenly per weight: still by weight */
	p->sh[0].active = 30;
	p->sh[1].active = 10;
	tally(p, &ctx, 20000, cnt);
	CHECK(cnt[0] > 14000 && cnt[0] < 16000, "3:1 at equal load per weight: %d %d", cnt[0],
	      cnt[1]);
	p->sh[0].active = 31;
	tally(p, &ctx, 1000, cnt);
	CHECK(cnt[1] == 1000, "31/3 loses to 10/1: %d", cnt[1]);
	pool_free(p);

	/* the draws are by weight both ways they are made: by rejection (most
	 * of the pool usable) and by scanning (two usable servers of 200) */
	{
		static uint32_t wb[200];
		int c5 = 0, c150 = 0, heavy = 0, s;

		for (i = 0; i < 200; i++)
			wb[i] = i == 5 ? 3 : i == 150 ? 1 : 1 + (uint32_t)(i % 4);
		p = pool_new(SYN_LB_RANDOM, 200, wb, NULL, 0, 3);
		memset(&ctx, 0, sizeof(ctx));
		set_bit(&ctx, 5, 1);
		set_bit(&ctx, 150, 1);
		for (i = 0; i < 20000; i++) {
			s = pick(p, &ctx);
			c5 += s == 5;
			c150 += s == 150;
		}
		CHECK(c5 + c150 == 20000 && c5 > 14000 && c5 < 16000, "scan draws 3:1: %d %d", c5,
		      c150);
		/* all usable, idle: the first draw decides, so shares follow the
		 * weights (sum 499): the 50 servers of weight 4 get 200/499 */
		ctx = ctx_all(200);
		for (i = 0; i < 100000; i++)
			heavy += wb[pick(p, &ctx)] == 4;
		CHECK(heavy > 100000 * 190 / 500 && heavy < 100000 * 210 / 500,
		      "rejection draws by weight: %d of 100000 to weight 4 (expect 40%%)", heavy);
		pool_free(p);
	}

	/* different seeds, different sequences (workers not in lockstep) */
	{
		struct pool *a = pool_new(SYN_LB_RANDOM, 8, NULL, NULL, 0, 1);
		struct pool *b = pool_new(SYN_LB_RANDOM, 8, NULL, NULL, 0, 2);
		char sa[64];
		int same;

		ctx = ctx_all(8);
		for (i = 0; i < 8; i++)
			a->sh[i].active = b->sh[i].active = (uint32_t)i;
		snprintf(sa, sizeof(sa), "%s", seq(a, &ctx, 40));
		same = !strcmp(sa, seq(b, &ctx, 40));
		CHECK(!same, "seeds matter");
		pool_free(a);
		pool_free(b);
	}
}

/* ---- ewma ---------------------------------------------------------------- */

static void test_ewma(void)
{
	struct pool *p = pool_new(SYN_LB_EWMA, 2, NULL, NULL, 0, 1);
	struct syn_lb_ctx ctx = ctx_all(2);
	int cnt[4], i, s, tried;
	uint64_t t;

	done(p, 0, 100000, 0);
	done(p, 1, 1000, 0);
	tally(p, &ctx, 10000, cnt);
	CHECK(cnt[0] < 2000, "100 ms vs 1 ms: slow one got %d of 10000", cnt[0]);
	pool_free(p);

	/* four servers, one slow, requests in flight counted: the slow one
	 * still gets little */
	p = pool_new(SYN_LB_EWMA, 4, NULL, NULL, 0, 1);
	ctx = ctx_all(4);
	for (i = 0; i < 4; i++)
		done(p, i, i == 3 ? 100000 : 1000, 0);
	for (i = 0; i < 4; i++)
		cnt[i] = 0;
	for (i = 0; i < 10000; i++) {
		s = pick(p, &ctx);
		cnt[s]++;
		p->sh[s].active++;
		if (i % 8 == 7) /* some finish */
			for (s = 0; s < 4; s++)
				p->sh[s].active -= p->sh[s].active / 2;
	}
	CHECK(cnt[3] < 2000, "slow of four: %d of 10000", cnt[3]);
	pool_free(p);

	/* a failure counts as slow */
	p = pool_new(SYN_LB_EWMA, 2, NULL, NULL, 0, 1);
	ctx = ctx_all(2);
	ctx.now_ms = 1000000;
	pick(p, &ctx); /* done() goes by the time of the latest pick */
	done(p, 0, 2000, 0);
	done(p, 1, 1000, 0);
	done(p, 0, 10, 1);
	tally(p, &ctx, 1000, cnt);
	CHECK(cnt[0] < 200, "failed server avoided: %d", cnt[0]);

	/* but tried again once the other's fresh samples undercut it: time runs
	 * 100 ms per pick, server 1 keeps answering in 1 ms */
	for (t = 0, tried = 0; t < 200000 && !tried; t += 100) {
		ctx.now_ms = 1000000 + t;
		s = pick(p, &ctx);
		if (s == 0)
			tried = 1;
		else
			done(p, s, 1000, 0);
	}
	CHECK(tried && t > 30000 && t < 120000, "failed server retried after %llu ms",
	      (unsigned long long)t);
	pool_free(p);

	/* a new server (no sample yet) gets tried */
	p = pool_new(SYN_LB_EWMA, 2, NULL, NULL, 0, 1);
	ctx = ctx_all(2);
	done(p, 0, 20000, 0);
	s = pick(p, &ctx);
	CHECK(s == 1, "unknown server tried first: got %d", s);
	/* its first sample replaces the guess: slower than the other now */
	done(p, 1, 50000, 0);
	tally(p, &ctx, 100, cnt);
	CHECK(cnt[0] == 100, "then judged on its sample: %d %d", cnt[0], cnt[1]);
	/* out of range done() is ignored */
	done(p, -1, 1, 0);
	done(p, 2, 1, 0);
	pool_free(p);

	/* the estimate comes down slowly after a peak: tau = 10 s */
	p = pool_new(SYN_LB_EWMA, 2, NULL, NULL, 0, 1);
	ctx = ctx_all(2);
	done(p, 0, 10000, 0);
	done(p, 1, 5000, 0);
	ctx.now_ms = 1;
	pick(p, &ctx);
	done(p, 0, 100000, 0); /* peak: 100 ms */
	/* 5 s later, samples of 1 ms: estimate 100 * e^-0.5 + 1 * (1 - e^-0.5) ~ 61 ms
	 * for server 0 against 5 ms * e^-0.5 ~ 3 ms for server 1 */
	ctx.now_ms = 5001;
	pick(p, &ctx);
	done(p, 0, 1000, 0);
	tally(p, &ctx, 100, cnt);
	CHECK(cnt[1] == 100, "peak remembered: %d %d", cnt[0], cnt[1]);
	pool_free(p);
}

/* ---- slow start through the balancers -------------------------------------- */

static void test_slow_start(void)
{
	struct pool *p = pool_new(SYN_LB_ROUND_ROBIN, 2, NULL, NULL, 30000, 1);
	struct syn_lb_ctx ctx = ctx_all(2);
	uint64_t t0 = 1000000;
	int cnt[2], algo;

	p->sh[1].up_since_ms = t0;
	ctx.now_ms = t0;
	tally(p, &ctx, 11000, cnt);
	CHECK(cnt[1] == 1000, "rr at 0%%: %d of 11000 (10/110)", cnt[1]);
	ctx.now_ms = t0 + 15000;
	tally(p, &ctx, 15500, cnt);
	CHECK(cnt[1] > 5400 && cnt[1] < 5600, "rr at 50%%: %d of 15500 (55/155)", cnt[1]);
	ctx.now_ms = t0 + 30000;
	tally(p, &ctx, 10000, cnt);
	CHECK(cnt[1] > 4950 && cnt[1] < 5050, "rr at 100%%: %d of 10000", cnt[1]);
	pool_free(p);

	/* the others: a server just up gets a small share of an idle pool */
	for (algo = SYN_LB_LEAST_CONN; algo < SYN_LB__COUNT; algo++) {
		if (algo == SYN_LB_IP_HASH)
			continue; /* per client, in test_ip_hash_slow_start() */
		p = pool_new(algo, 2, NULL, NULL, 30000, 1);
		p->sh[1].up_since_ms = t0;
		ctx.now_ms = t0;
		tally(p, &ctx, 11000, cnt);
		CHECK(cnt[1] < 2000, "%s at 0%%: %d of 11000", p->def->name, cnt[1]);
		ctx.now_ms = t0 + 30000;
		tally(p, &ctx, 10000, cnt);
		CHECK(cnt[1] > 4000 && cnt[1] < 6000, "%s at 100%%: %d of 10000", p->def->name,
		      cnt[1]);
		pool_free(p);
	}
}

/* ---- every algorithm: only usable servers, -EAGAIN when none --------------- */

static void test_masks(void)
{
	static const int sizes[] = {1, 2, 3, 7, 63, 64, 65, 130, 255, 256};
	static uint32_t w[SYN_LB_MAX_SERVERS];
	int algo, si, round, i;

	for (algo = 0; algo < SYN_LB__COUNT; algo++) {
		for (si = 0; si < (int)(sizeof(sizes) / sizeof(sizes[0])); si++) {
			int n = sizes[si], bad = 0, empty_ok = 1;
			struct pool *p;
			struct syn_lb_ctx ctx;

			for (i = 0; i < n; i++)
				w[i] = 1 + (uint32_t)(rnd() % 10);
			p = pool_new(algo, n, w, NULL, rnd() % 2 ? 10000 : 0, (uint32_t)rnd());
			for (i = 0; i < n; i++) {
				p->sh[i].active = (uint32_t)(rnd() % 5);
				p->sh[i].up_since_ms = rnd() % 20000;
			}
			/* nothing usable, and only bits past n set */
			memset(&ctx, 0, sizeof(ctx));
			empty_ok &= pick(p, &ctx) == -EAGAIN;
			for (i = n; i < SYN_LB_MAX_SERVERS; i++)
				set_bit(&ctx, i, 1);
			empty_ok &= pick(p, &ctx) == -EAGAIN;
			CHECK(empty_ok, "%s n=%d: -EAGAIN when none usable", p->def->name, n);

			for (round = 0; round < 400; round++) {
				int density = (int)(rnd() % 4), any = 0, s;

				for (i = 0; i < SYN_LB_WORDS; i++)
					ctx.usable[i] = rnd();
				for (i = 0; i < density; i++)
					ctx.usable[i % SYN_LB_WORDS] &= rnd();
				for (i = n; i < SYN_LB_MAX_SERVERS; i++)
					set_bit(&ctx, i, (int)(rnd() & 1));
				for (i = 0; i < n; i++)
					any |= syn_lb_usable(&ctx, i);
				ctx.hash = rnd();
				ctx.now_ms = rnd() % 20000;
				s = pick(p, &ctx);
				if (any)
					bad += s < 0 || s >= n || !syn_lb_usable(&ctx, s);
				else
					bad += s != -EAGAIN;
				if (s >= 0 && s < n)
					done(p, s, rnd() % 200000, (int)(rnd() % 10 == 0));
			}
			CHECK(!bad, "%s n=%d: %d picks outside the mask", p->def->name, n, bad);
			pool_free(p);
		}
	}
}

/* Every algorithm rejects a pool it cannot serve. */
static void test_init_errors(void)
{
	struct syn_lb_server srv[1];
	struct syn_server_shared sh;
	struct syn_lb_upstream up;
	uint64_t st[64];
	int algo;

	memset(&sh, 0, sizeof(sh));
	memset(srv, 0, sizeof(srv));
	srv[0].weight = 1;
	srv[0].shared = &sh;
	up.servers = srv;
	up.slow_start_ms = 0;
	for (algo = 0; algo < SYN_LB__COUNT; algo++) {
		const struct syn_lb_def *d = syn_lb_get(algo);

		up.nservers = 0;
		CHECK(d->state_size(&up) <= sizeof(st) && d->init(st, &up, 1) == -EINVAL,
		      "%s: no servers", d->name);
		up.nservers = SYN_LB_MAX_SERVERS + 1;
		CHECK(d->state_size(&up) <= sizeof(st) && d->init(st, &up, 1) == -EINVAL,
		      "%s: too many servers", d->name);
	}
}

int main(void)
{
	test_registry();
	test_next_usable();
	test_weight();
	test_rr_sequence();
	test_rr_proportions();
	test_least_conn();
	test_ip_hash();
	test_random();
	test_ewma();
	test_slow_start();
	test_masks();
	test_init_errors();
	return check_report();
}
