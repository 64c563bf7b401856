/* native/src/route.c - the site for a Host, then the route for a path.
 *
 * Sites: exact host names (binary search), then "*.suffix" wildcards, most
 * specific first, then the "*" default site.  Routes: longest path prefix,
 * by a walk down the site's radix tree (built in route_tree.c).  Per
 * request, on the owning worker; reads the runtime plan only.
 */
#include <string.h>

#include "engine.h"

/* Lowercase host without port or trailing dot, into out (at most cap - 1). */
static size_t route_norm_host(const char *host, size_t len, char *out, size_t cap)
{
	size_t i, n = 0;

	if (len && host[0] == '[') { /* IPv6 literal: keep up to ']' */
		const char *end = memchr(host, ']', len);

		len = end ? (size_t)(end - host) + 1 : len;
	} else {
		const char *colon = memchr(host, ':', len);

		if (colon)
			len = (size_t)(colon - host);
	}
	if (len && host[len - 1] == '.')
		len--;
	for (i = 0; i < len && n + 1 < cap; i++) {
		char c = host[i];

		out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
	}
	out[n] = 0;
	return n;
}

static int route_site_ok(const struct rt_plan *rp, uint32_t site, uint32_t bit)
{
	return (rp->sites[site].cfg.listeners >> bit) & 1;
}

/* The site index for a Host value arriving on the listener with this bit,
 * or -1 when none serves it. */
int syn_route_site(const struct rt_plan *rp, const char *host, size_t len, uint32_t bit)
{
	char h[SYN_HOST_MAX];
	size_t n = route_norm_host(host, len, h, sizeof(h));
	uint32_t lo = 0, hi = rp->nexact, i;

	/* the first entry >= h; several sites may share a name on different
	 * listeners, so every equal entry is looked at */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (strcmp(rp->hosts[mid].name, h) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < rp->nexact && !strcmp(rp->hosts[i].name, h); i++)
		if (route_site_ok(rp, rp->hosts[i].site, bit))
			return (int)rp->hosts[i].site;
	for (i = rp->nexact; i < rp->nhosts; i++) {
		const struct rt_host *w = &rp->hosts[i];

		/* ".example.com" matches any name ending in it, not the bare domain */
		if (n > w->len && !memcmp(h + n - w->len, w->name, w->len) &&
		    route_site_ok(rp, w->site, bit))
			return (int)w->site;
	}
	return bit < 64 ? rp->default_site[bit] : -1;
}

/* The child of n whose label starts with c, or NULL.  Children are sorted
 * by that byte: a few are scanned, a wide fan-out (the letters after "/")
 * is halved down to a few first. */
static const struct rt_rnode *route_child(const struct rt_rtree *t, const struct rt_rnode *n,
					  uint8_t c)
{
	const uint8_t *f = t->first + n->child;
	uint32_t lo = 0, hi = n->nchild;

	while (hi - lo > 8) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (f[mid] == c)
			return &t->nodes[n->child + mid];
		if (f[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < hi; lo++)
		if (f[lo] == c)
			return &t->nodes[n->child + lo];
	return NULL;
}

/* The longest route whose prefix starts the path (query excluded), or NULL.
 * One walk down the site's tree, remembering the last node a route ends
 * at.  No route in the tree holds a '?' (route_tree.c), so the walk cannot
 * match across the query and never has to look for it. */
const struct rt_route *syn_route_path(const struct rt_site *s, const char *path, size_t len)
{
	const struct rt_rtree *t = &s->tree;
	const struct rt_rnode *n = t->nodes;
	uint32_t best = SYN_NONE;
	size_t pos = 0;

	for (;;) {
		if (n->route != SYN_NONE)
			best = n->route;
		if (pos == len || !(n = route_child(t, n, (uint8_t)path[pos])))
			break;
		if (n->label_len > len - pos ||
		    memcmp(path + pos, t->labels + n->label, n->label_len))
			break;
		pos += n->label_len;
	}
	return best == SYN_NONE ? NULL : &s->routes[best];
}
