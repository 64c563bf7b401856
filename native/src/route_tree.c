/* native/src/route_tree.c - building a site's route radix tree.
 *
 * Cold: at plan compile only, off the request path, so it may allocate.
 * The tree (struct rt_rtree, engine.h) is read-only once built and shared
 * by every worker; syn_route_path() in route.c walks it.
 *
 * The routes are sorted bytewise; a node is then a run of sorted routes
 * sharing its prefix, and its children are the sub-runs by the next byte,
 * each with an edge as long as what the first and last route of the
 * sub-run share (sorted, so everything between shares it too).  Nodes are
 * made breadth first with the node array as the queue, which is what puts
 * each node's children next to each other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

struct rtb_key { /* qsort has no context: each key carries its route */
	const char *path;
	uint32_t len;
	uint32_t route;
};

struct rtb_span { /* the keys [lo, hi) under a node; they share depth bytes */
	uint32_t lo, hi, depth;
};

/* Bytewise, a prefix before what it starts; a repeated path in routes
 * order, so the first one wins as it did when routes were scanned. */
static int rtb_cmp(const void *a, const void *b)
{
	const struct rtb_key *x = a, *y = b;
	int c = memcmp(x->path, y->path, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->route < y->route ? -1 : x->route > y->route;
}

/* How many bytes a and b share, knowing they share the first from. */
static uint32_t rtb_common(const struct rtb_key *a, const struct rtb_key *b, uint32_t from)
{
	uint32_t n = a->len < b->len ? a->len : b->len;

	while (from < n && a->path[from] == b->path[from])
		from++;
	return from;
}

/* Give node i its route, if one ends at its prefix, and its children. */
static void rtb_expand(struct rt_rtree *t, const struct rtb_key *keys, struct rtb_span *span,
		       uint32_t i, uint32_t *labels)
{
	struct rt_rnode *nd = &t->nodes[i];
	uint32_t lo = span[i].lo, hi = span[i].hi, d = span[i].depth;

	/* keys ending here sort first; repeats of the one that wins are dropped */
	if (lo < hi && keys[lo].len == d) {
		nd->route = keys[lo].route;
		while (lo < hi && keys[lo].len == d)
			lo++;
	}
	nd->child = t->nnodes;
	while (lo < hi) {
		uint32_t j = t->nnodes, end = lo + 1, common;
		char c = keys[lo].path[d];
		struct rt_rnode *ch = &t->nodes[j];

		while (end < hi && keys[end].path[d] == c)
			end++;
		common = rtb_common(&keys[lo], &keys[end - 1], d + 1);
		ch->label = *labels;
		ch->label_len = (uint16_t)(common - d);
		ch->route = SYN_NONE;
		memcpy(t->labels + *labels, keys[lo].path + d, common - d);
		*labels += common - d;
		t->first[j] = (uint8_t)c;
		span[j] = (struct rtb_span){lo, end, common};
		t->nnodes++;
		nd->nchild++;
		lo = end;
	}
}

/* Build s->tree over s->routes, whose order must not change afterwards
 * (nodes hold indices into it).  0, -ENOMEM, or -E2BIG when the routes
 * would overflow the tree's 32-bit offsets.  On error what was allocated
 * stays in s->tree for syn_route_tree_free(). */
int syn_route_tree_build(struct rt_site *s)
{
	struct rt_rtree *t = &s->tree;
	/* a compressed trie of n keys: at most n nodes end a key, fewer than
	 * n branch without ending one, and the root; labels are at most the
	 * keys' bytes (each edge charged to the first key below it) */
	size_t cap = 2 * (size_t)s->nroutes + 1, bytes = 0;
	struct rtb_key *keys;
	struct rtb_span *span;
	uint32_t i, n = 0, labels = 0;
	int rc = -ENOMEM;

	for (i = 0; i < s->nroutes; i++)
		bytes += s->routes[i].len;
	if (cap > UINT32_MAX || bytes > UINT32_MAX)
		return -E2BIG;
	keys = malloc((s->nroutes ? s->nroutes : 1) * sizeof(*keys));
	span = malloc(cap * sizeof(*span));
	t->nodes = calloc(cap, sizeof(*t->nodes));
	t->first = calloc(cap, 1);
	t->labels = malloc(bytes ? bytes : 1);
	if (!keys || !span || !t->nodes || !t->first || !t->labels)
		goto out;

	for (i = 0; i < s->nroutes; i++) {
		const struct rt_route *r = &s->routes[i];

		/* A '?' starts the query, which a lookup leaves out, so such a
		 * route could never match; leaving it out of the tree lets the
		 * walk stop at a path's '?' without looking for it first. */
		if (memchr(r->path, '?', r->len))
			continue;
		keys[n++] = (struct rtb_key){r->path, r->len, i};
	}
	qsort(keys, n, sizeof(*keys), rtb_cmp);

	t->nodes[0].route = SYN_NONE;
	span[0] = (struct rtb_span){0, n, 0};
	t->nnodes = 1;
	for (i = 0; i < t->nnodes; i++)
		rtb_expand(t, keys, span, i, &labels);
	rc = 0;
out:
	free(span);
	free(keys);
	return rc;
}

void syn_route_tree_free(struct rt_site *s)
{
	free(s->tree.nodes);
	free(s->tree.first);
	free(s->tree.labels);
	memset(&s->tree, 0, sizeof(s->tree));
}
