/* native/src/route.c - the site for a Host, then the route for a path.
 *
 * Sites: exact host names (binary search), then "*.suffix" wildcards, most
 * specific first, then the "*" default site.  Routes: longest path prefix.
 * Per request, on the owning worker; reads the runtime plan only.
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

/* The longest route whose prefix starts the path (query excluded), or NULL. */
const struct rt_route *syn_route_path(const struct rt_site *s, const char *path, size_t len)
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
