/* native/tests/test_route.c - routing a path (native/src/route.c and
 * route_tree.c).
 *
 * Every route set is compiled the way the engine gets it, through
 * syn_plan_compile() (which builds each site's radix tree) and freed by
 * syn_plan_free() (LeakSanitizer sees what the tree keeps).  Hand-written
 * cases pin the semantics: plain byte prefixes ("/api" matches "/apix",
 * "/api/" does not match "/api"), the query left out, a '?' in a route.
 * Random route sets (a small alphabet so routes are prefixes of each
 * other, path-like segments, a fan-out over every byte value after "/",
 * routes up to SYN_PATH_MAX - 1 bytes, "/" alone, up to 3000 routes) are
 * then checked against a brute-force longest prefix and against the
 * linear scan the tree replaced, over random paths with and without a
 * query.  Each path is looked up from a heap copy of exactly its length,
 * so ASan sees a read past it.  Random inputs come from fixed seeds.
 *
 * `test_route --bench` times the linear scan against the tree instead
 * (not part of make native-test).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "check.h"

#define NUPSTREAMS 4

static uint64_t test_rng = 42;

static uint64_t rnd(void)
{
	uint64_t z = (test_rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

/* ---- a plan with the given routes -------------------------------------- */

/* Sites 0..nsites-1; route i goes to site[i] (NULL: all to site 0) and
 * upstream i % NUPSTREAMS.  Paths are copied as they are (NUL-terminated,
 * at most SYN_PATH_MAX - 1 bytes). */
static struct rt_plan *plan_with(const char *const *paths, uint32_t n, const uint32_t *site,
				 uint32_t nsites)
{
	static struct syn_plan_server srv = {
		.addr = {.family = 2, .port = 8080, .ip = {127, 0, 0, 1}},
		.weight = 1,
	};
	struct syn_plan_upstream ups[NUPSTREAMS];
	struct syn_plan_site sites[4];
	struct syn_plan_route *routes = calloc(n ? n : 1, sizeof(*routes));
	struct syn_plan p = {
		.magic = SYN_PLAN_MAGIC,
		.version = SYN_ABI_VERSION,
		.limits = {.header_bytes = 8192, .headers = 64},
		.nservers = 1,
		.nupstreams = NUPSTREAMS,
		.nsites = nsites,
		.nroutes = n,
		.servers = &srv,
		.upstreams = ups,
		.sites = sites,
		.routes = routes,
		.access_log_fd = -1,
	};
	struct rt_plan *rp;
	char err[256] = "";
	uint32_t i;

	if (!routes || nsites > 4)
		abort();
	memset(ups, 0, sizeof(ups));
	memset(sites, 0, sizeof(sites));
	for (i = 0; i < NUPSTREAMS; i++) {
		snprintf(ups[i].name, sizeof(ups[i].name), "up%u", i);
		ups[i].nservers = 1;
		ups[i].slot = i;
	}
	for (i = 0; i < nsites; i++) {
		snprintf(sites[i].name, sizeof(sites[i].name), "site%u", i);
		sites[i].listeners = 1;
		sites[i].slot = i;
	}
	for (i = 0; i < n; i++) {
		strcpy(routes[i].path, paths[i]);
		routes[i].site = site ? site[i] : 0;
		routes[i].upstream = i % NUPSTREAMS;
		routes[i].statik = SYN_NONE; /* an upstream route */
	}
	rp = syn_plan_compile(&p, err, sizeof(err));
	CHECK(rp != NULL, "compile %u routes: %s", n, err);
	free(routes);
	return rp;
}

/* syn_route_path() on a heap copy of exactly len bytes: no terminator to
 * lean on, and ASan reports a read past the end. */
static const struct rt_route *lookup(const struct rt_site *s, const char *path, size_t len)
{
	char *copy = malloc(len ? len : 1);
	const struct rt_route *r;

	if (!copy)
		abort();
	memcpy(copy, path, len);
	r = syn_route_path(s, copy, len);
	free(copy);
	return r;
}

/* The route for path in s, as its path, or NULL; checks the pointer is
 * one of the site's routes. */
static const char *route_of(const struct rt_site *s, const char *path)
{
	const struct rt_route *r = lookup(s, path, strlen(path));

	if (!r)
		return NULL;
	CHECK(r >= s->routes && r < s->routes + s->nroutes, "%s: pointer into routes[]", path);
	return r->path;
}

static int same(const char *got, const char *want)
{
	return got == want || (got && want && !strcmp(got, want));
}

#define EXPECT(s, path, want)                                                               \
	do {                                                                                \
		const char *got_ = route_of(s, path), *want_ = (want);                      \
		CHECK(same(got_, want_), "%s: got %s, want %s", path, got_ ? got_ : "none", \
		      want_ ? want_ : "none");                                              \
	} while (0)

/* ---- hand-written cases -------------------------------------------------- */

static void test_cases(void)
{
	static const char *const api[] = {"/api", "/api/", "/api/v1", "/assets/", "/a"};
	static const char *const root[] = {"/"};
	static const char *const query[] = {"/a?b", "/a", "/x?"};
	static const char *const dup[] = {"/d", "/d/e", "/d"};
	static const char *const two[] = {"/", "/s0", "/", "/s1"};
	static const uint32_t two_site[] = {0, 0, 1, 1};
	char lng[SYN_PATH_MAX], lng_half[SYN_PATH_MAX / 2 + 1], path[2 * SYN_PATH_MAX];
	const char *lngs[2] = {lng, lng_half};
	struct rt_plan *rp;
	const struct rt_route *r;

	rp = plan_with(NULL, 0, NULL, 1);
	EXPECT(&rp->sites[0], "/", NULL);
	EXPECT(&rp->sites[0], "", NULL);
	CHECK(rp->sites[0].tree.nnodes == 1, "no routes: the root alone");
	syn_plan_free(rp);

	rp = plan_with(root, 1, NULL, 1);
	EXPECT(&rp->sites[0], "/", "/");
	EXPECT(&rp->sites[0], "/anything/at/all", "/");
	EXPECT(&rp->sites[0], "/?q", "/");
	EXPECT(&rp->sites[0], "", NULL);
	EXPECT(&rp->sites[0], "?/", NULL);
	EXPECT(&rp->sites[0], "x/", NULL);
	syn_plan_free(rp);

	rp = plan_with(api, 5, NULL, 1);
	EXPECT(&rp->sites[0], "/api", "/api");
	EXPECT(&rp->sites[0], "/apix", "/api"); /* a byte prefix, not a segment */
	EXPECT(&rp->sites[0], "/api/", "/api/");
	EXPECT(&rp->sites[0], "/api/v", "/api/");
	EXPECT(&rp->sites[0], "/api/v1", "/api/v1");
	EXPECT(&rp->sites[0], "/api/v1/users", "/api/v1");
	EXPECT(&rp->sites[0], "/api/v2", "/api/");
	EXPECT(&rp->sites[0], "/ap", "/a");
	EXPECT(&rp->sites[0], "/assets", "/a"); /* "/assets/" needs its slash */
	EXPECT(&rp->sites[0], "/assets/x.css", "/assets/");
	EXPECT(&rp->sites[0], "/b", NULL);
	EXPECT(&rp->sites[0], "/", NULL);
	EXPECT(&rp->sites[0], "/api?x=/api/v1", "/api"); /* the query is not the path */
	EXPECT(&rp->sites[0], "/api/?", "/api/");
	EXPECT(&rp->sites[0], "/?/api/v1", NULL);
	EXPECT(&rp->sites[0], "/API", NULL); /* bytes: case matters */
	r = lookup(&rp->sites[0], "/api/v1/x", 9);
	CHECK(r && r->upstream == 2, "route 2 keeps its upstream");
	r = lookup(&rp->sites[0], "/api/v1/x", 4); /* len bounds the path, not a NUL */
	CHECK(r && !strcmp(r->path, "/api"), "a length, not a terminator");
	syn_plan_free(rp);

	/* what followed a '?' never matched (the path is cut there first): a
	 * route holding one stays unreachable */
	rp = plan_with(query, 3, NULL, 1);
	EXPECT(&rp->sites[0], "/a?b", "/a");
	EXPECT(&rp->sites[0], "/a?bc", "/a");
	EXPECT(&rp->sites[0], "/x?", NULL);
	EXPECT(&rp->sites[0], "/x?y", NULL);
	syn_plan_free(rp);

	rp = plan_with(dup, 3, NULL, 1);
	EXPECT(&rp->sites[0], "/d", "/d");
	EXPECT(&rp->sites[0], "/d/e/f", "/d/e");
	EXPECT(&rp->sites[0], "/d/", "/d");
	syn_plan_free(rp);

	rp = plan_with(two, 4, two_site, 2);
	EXPECT(&rp->sites[0], "/s0/x", "/s0");
	EXPECT(&rp->sites[0], "/s1/x", "/");
	EXPECT(&rp->sites[1], "/s1/x", "/s1");
	EXPECT(&rp->sites[1], "/s0/x", "/");
	r = lookup(&rp->sites[1], "/s1", 3);
	CHECK(r && r->upstream == 3, "site 1's routes point into its own array");
	syn_plan_free(rp);

	/* the longest route the plan allows, and one half its length */
	memset(lng, 'x', sizeof(lng) - 1);
	lng[0] = '/';
	lng[sizeof(lng) - 1] = 0;
	memcpy(lng_half, lng, sizeof(lng_half) - 1);
	lng_half[sizeof(lng_half) - 1] = 0;
	rp = plan_with(lngs, 2, NULL, 1);
	snprintf(path, sizeof(path), "%s%s", lng, "/more?q");
	EXPECT(&rp->sites[0], path, lng);
	EXPECT(&rp->sites[0], lng, lng);
	path[SYN_PATH_MAX - 2] = 0; /* one byte short of lng */
	EXPECT(&rp->sites[0], path, lng_half);
	syn_plan_free(rp);
}

/* ---- random route sets against references -------------------------------- */

/* The longest route of s that starts path (query cut off), by brute force,
 * in the route order of the plan; NULL when none. */
static const struct rt_route *ref_longest(const struct rt_site *s, const char *path, size_t len)
{
	const struct rt_route *best = NULL;
	const char *q = memchr(path, '?', len);
	uint32_t i;

	if (q)
		len = (size_t)(q - path);
	for (i = 0; i < s->nroutes; i++) {
		const struct rt_route *r = &s->routes[i];

		if (r->len <= len && !memcmp(path, r->path, r->len) &&
		    (!best || r->len > best->len))
			best = r;
	}
	return best;
}

/* The lookup before the tree: routes sorted longest first, scanned. */
static const struct rt_route *old_route_path(const struct rt_site *s, const char *path, size_t len)
{
	const char *q = memchr(path, '?', len);
	uint32_t i;

	if (q)
		len = (size_t)(q - path);
	for (i = 0; i < s->nroutes; i++) {
		const struct rt_route *r = &s->routes[i];

		if (r->len <= len && !memcmp(path, r->path, r->len))
			return r;
	}
	return NULL;
}

enum gen { GEN_ALPHABET, GEN_SEGMENTS, GEN_FANOUT, GEN_LONG, GEN__COUNT };

static const char *const gen_name[GEN__COUNT] = {"alphabet", "segments", "fanout", "long"};

static const char *const words[] = {"api", "v1",  "v2",     "users", "user",   "static", "img", "a",
				    "ab",  "abc", "assets", "x",     "health", "_",      "%20"};

/* A random route of kind g into out (SYN_PATH_MAX bytes), starting '/'. */
static void gen_route(enum gen g, char *out)
{
	uint32_t n = 1, i, k;

	out[0] = '/';
	switch (g) {
	case GEN_ALPHABET: /* "/ab/" bytes only: most routes prefix others */
		k = rnd_below(12);
		for (i = 0; i < k; i++)
			out[n++] = "/ab"[rnd_below(3)];
		break;
	case GEN_SEGMENTS:
		k = rnd_below(5);
		for (i = 0; i < k; i++) {
			const char *w = words[rnd_below(sizeof(words) / sizeof(words[0]))];

			if (i)
				out[n++] = '/';
			memcpy(out + n, w, strlen(w));
			n += (uint32_t)strlen(w);
		}
		if (k && rnd_below(3) == 0)
			out[n++] = '/';
		break;
	case GEN_FANOUT: /* any byte but NUL after "/": up to 255 children */
		k = rnd_below(4);
		out[n++] = (char)(1 + rnd_below(255));
		for (i = 0; i < k; i++)
			out[n++] = (char)(1 + rnd_below(255));
		break;
	case GEN_LONG: /* long shared stems, branching deep */
		k = rnd_below(SYN_PATH_MAX - 1);
		for (i = 1; i < k; i++)
			out[n++] = i % 61 == 0 ? "xyz"[rnd_below(3)] : (char)('a' + i % 26);
		break;
	default:
		break;
	}
	out[n] = 0;
}

/* A path to look up: often a route cut short or carried on, sometimes
 * noise; with a query half the time.  Returns its length. */
static size_t gen_path(const struct rt_site *s, enum gen g, char *out, size_t cap)
{
	size_t n = 0, k, i;

	if (s->nroutes && rnd_below(8)) {
		const struct rt_route *r = &s->routes[rnd_below(s->nroutes)];

		n = rnd_below(4) ? r->len : rnd_below(r->len + 1);
		memcpy(out, r->path, n);
	} else {
		gen_route(g, out);
		n = strlen(out);
	}
	k = rnd_below(6);
	for (i = 0; i < k && n < cap - 1; i++)
		out[n++] = g == GEN_FANOUT ? (char)rnd_below(256) : "/ab?x"[rnd_below(5)];
	if (rnd_below(2)) {
		char q[SYN_PATH_MAX];

		gen_route(g, q); /* a query that looks like a route */
		if (n + 1 + strlen(q) < cap) {
			out[n++] = '?';
			memcpy(out + n, q, strlen(q));
			n += strlen(q);
		}
	}
	return n;
}

static uint64_t hash_str(const char *p)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*p)
		h = (h ^ (uint8_t)*p++) * 0x100000001b3ULL;
	return h;
}

/* n distinct random routes of kind g (fewer if the kind has not that many),
 * plus "/" when with_root.  The plan's routes are distinct within a site:
 * an open-addressing set of what is taken keeps them so. */
static char **gen_routes(enum gen g, uint32_t n, int with_root, uint32_t *got)
{
	uint32_t cap = 16, m = 0, tries = 0, want = n + (uint32_t)with_root;
	char **paths = calloc(want, sizeof(*paths)), **set;
	char buf[SYN_PATH_MAX];

	while (cap < 4 * want)
		cap *= 2;
	set = calloc(cap, sizeof(*set));
	if (!paths || !set)
		abort();
	while (m < want && tries++ < 50 * want) {
		uint32_t h;

		if (with_root && !m)
			strcpy(buf, "/");
		else
			gen_route(g, buf);
		for (h = (uint32_t)hash_str(buf) & (cap - 1); set[h] && strcmp(set[h], buf);
		     h = (h + 1) & (cap - 1))
			;
		if (set[h])
			continue;
		paths[m] = strdup(buf);
		set[h] = paths[m++];
	}
	free(set);
	*got = m;
	return paths;
}

/* One random set of about size routes of kind g (and "/" when root):
 * random paths looked up by the tree, by brute force and by the old scan.
 * Returns how many paths. */
static uint32_t check_set(enum gen g, uint32_t size, int root)
{
	/* the references scan every route: fewer paths for big sets */
	uint32_t n, i, bad = 0, iters = size >= 1000 ? 4000 : 20000;
	char **paths = gen_routes(g, size, root, &n), path[2 * SYN_PATH_MAX];
	struct rt_plan *rp = plan_with((const char *const *)paths, n, NULL, 1);
	const struct rt_site *s = rp ? &rp->sites[0] : NULL;

	for (i = 0; s && i < iters; i++) {
		size_t len = gen_path(s, g, path, sizeof(path));
		const struct rt_route *got = lookup(s, path, len);
		const struct rt_route *want = ref_longest(s, path, len);
		const struct rt_route *old = old_route_path(s, path, len);

		/* distinct routes: the longest match is one route, one pointer */
		if (got == want && old == want)
			continue;
		if (bad++ < 5)
			CHECK(0, "%s/%u: path %.*s: tree %s, scan %s, want %s", gen_name[g], n,
			      (int)len, path, got ? got->path : "none", old ? old->path : "none",
			      want ? want->path : "none");
	}
	CHECK(bad == 0, "%s/%u: %u of %u lookups wrong", gen_name[g], n, bad, iters);
	if (s)
		CHECK(s->tree.nnodes <= 2 * n + 1, "%s/%u: %u nodes", gen_name[g], n,
		      s->tree.nnodes);
	syn_plan_free(rp);
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return iters;
}

static void test_random(void)
{
	static const uint32_t sizes[] = {1, 2, 10, 100, 1000, 3000};
	unsigned long sets = 0, lookups = 0;
	int g, si, root;

	for (g = 0; g < GEN__COUNT; g++)
		for (si = 0; si < (int)(sizeof(sizes) / sizeof(sizes[0])); si++)
			for (root = 0; root < 2; root++, sets++)
				lookups += check_set((enum gen)g, sizes[si], root);
	printf("test_route: %lu random route sets (1 to 3001 routes), %lu lookups, each checked "
	       "against brute force and the old scan\n",
	       sets, lookups);
}

/* ---- timing: the scan against the tree (--bench only) ---------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define BENCH_PATHS 1024

/* ns per lookup of fn over the paths, for about 0.2 s. */
static double bench_one(const struct rt_route *(*fn)(const struct rt_site *, const char *, size_t),
			const struct rt_site *s, char (*paths)[2 * SYN_PATH_MAX],
			const size_t *lens)
{
	uint64_t t0 = now_ns(), t, n = 0;
	uintptr_t sink = 0;
	uint32_t i;

	do {
		for (i = 0; i < BENCH_PATHS; i++)
			sink += (uintptr_t)fn(s, paths[i], lens[i]);
		n += BENCH_PATHS;
		t = now_ns();
	} while (t - t0 < 200000000ULL);
	if (sink == 1) /* never: keeps the calls */
		puts("");
	return (double)(t - t0) / (double)n;
}

static int bench(void)
{
	static const uint32_t sizes[] = {10, 100, 1000};
	static char paths[BENCH_PATHS][2 * SYN_PATH_MAX];
	static size_t lens[BENCH_PATHS];
	int si;

	printf("routes  scan ns  tree ns  (segment-like routes; paths: 7/8 from a route "
	       "cut or carried on, half with a query)\n");
	for (si = 0; si < 3; si++) {
		uint32_t n, i;
		char **rs = gen_routes(GEN_SEGMENTS, sizes[si], 1, &n);
		struct rt_plan *rp;
		double scan, tree;

		/* enough distinct routes: segments from a wider vocabulary */
		for (i = 1; i < n; i++) {
			char buf[SYN_PATH_MAX];

			snprintf(buf, sizeof(buf), "/svc%u%s", i, rs[i]);
			free(rs[i]);
			rs[i] = strdup(buf);
		}
		rp = plan_with((const char *const *)rs, n, NULL, 1);
		if (!rp)
			return 1;
		for (i = 0; i < BENCH_PATHS; i++)
			lens[i] = gen_path(&rp->sites[0], GEN_SEGMENTS, paths[i], sizeof(paths[i]));
		scan = bench_one(old_route_path, &rp->sites[0], paths, lens);
		tree = bench_one(syn_route_path, &rp->sites[0], paths, lens);
		printf("%6u  %7.1f  %7.1f\n", n, scan, tree);
		syn_plan_free(rp);
		for (i = 0; i < n; i++)
			free(rs[i]);
		free(rs);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--bench"))
		return bench();
	test_cases();
	test_random();
	return check_report();
}
