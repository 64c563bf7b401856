/* native/src/plan.c - validating a plan from the control plane and compiling
 * it into the runtime plan the workers read.
 *
 * The control plane's plan is untrusted input as far as C is concerned:
 * every count, index, slot and string is checked before anything is built,
 * and the result owns all its memory, so Python may free its side at once.
 */
#define _GNU_SOURCE /* O_PATH, CLOCK_REALTIME_COARSE */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

static int plan_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int plan_str_ok(const char *s, size_t max)
{
	return memchr(s, 0, max) != NULL;
}

static int plan_check(const struct syn_plan *p, char *err, size_t errlen)
{
	uint32_t i;

	if (p->magic != SYN_PLAN_MAGIC || p->version != SYN_ABI_VERSION)
		return plan_err(err, errlen, "plan: bad magic or version %u", p->version);
	if (p->nupstreams > SYN_MAX_UPSTREAMS || p->nsites > SYN_MAX_SITES ||
	    p->nservers > SYN_MAX_SERVERS)
		return plan_err(err, errlen, "plan: too many upstreams, sites or servers");
	if (p->limits.header_bytes < 256 || p->limits.header_bytes > SYN_H1_MAX_HEAD ||
	    p->limits.headers < 1 || p->limits.headers > SYN_H1_MAX_HEADERS)
		return plan_err(err, errlen, "plan: limits out of range");
	for (i = 0; i < p->nlisteners; i++) {
		const struct syn_plan_listener *l = &p->listeners[i];

		if (!plan_str_ok(l->name, SYN_NAME_MAX) || l->fd < 0 ||
		    l->slot >= SYN_MAX_LISTENERS || l->bit >= 64)
			return plan_err(err, errlen, "plan: listener %u invalid", i);
	}
	for (i = 0; i < p->nservers; i++) {
		const struct syn_plan_server *s = &p->servers[i];

		if ((s->addr.family != AF_INET && s->addr.family != AF_INET6) ||
		    s->addr.port == 0 || s->weight == 0 || s->slot >= SYN_MAX_SERVERS)
			return plan_err(err, errlen, "plan: server %u invalid", i);
	}
	for (i = 0; i < p->nupstreams; i++) {
		const struct syn_plan_upstream *u = &p->upstreams[i];

		if (!plan_str_ok(u->name, SYN_NAME_MAX) || u->nservers == 0 ||
		    u->nservers > SYN_LB_MAX_SERVERS || u->first_server > p->nservers ||
		    u->nservers > p->nservers - u->first_server || !syn_lb_get((int)u->balance) ||
		    u->slot >= SYN_MAX_UPSTREAMS)
			return plan_err(err, errlen, "plan: upstream %u invalid", i);
	}
	for (i = 0; i < p->nsites; i++)
		if (!plan_str_ok(p->sites[i].name, SYN_NAME_MAX) ||
		    p->sites[i].slot >= SYN_MAX_SITES)
			return plan_err(err, errlen, "plan: site %u invalid", i);
	for (i = 0; i < p->nhosts; i++)
		if (!plan_str_ok(p->hosts[i].name, SYN_HOST_MAX) || p->hosts[i].site >= p->nsites ||
		    !p->hosts[i].name[0])
			return plan_err(err, errlen, "plan: host %u invalid", i);
	for (i = 0; i < p->nroutes; i++) {
		const struct syn_plan_route *r = &p->routes[i];

		if (!plan_str_ok(r->path, SYN_PATH_MAX) || r->path[0] != '/' ||
		    r->site >= p->nsites ||
		    (r->statik == SYN_NONE ? r->upstream >= p->nupstreams
					   : r->statik >= p->nstatics))
			return plan_err(err, errlen, "plan: route %u invalid", i);
	}
	if (p->nstatics > SYN_MAX_STATICS || (p->nstatics && !p->statics) ||
	    (p->nmimes && !p->mimes) || !plan_str_ok(p->cache_dir, SYN_ROOT_MAX))
		return plan_err(err, errlen, "plan: static roots or types invalid");
	for (i = 0; i < p->nstatics; i++) {
		const struct syn_plan_static *st = &p->statics[i];

		if (!plan_str_ok(st->root, SYN_ROOT_MAX) || st->root[0] != '/' ||
		    !plan_str_ok(st->index, SYN_NAME_MAX) || !st->index[0] ||
		    strchr(st->index, '/'))
			return plan_err(err, errlen, "plan: static root %u invalid", i);
	}
	if (p->ncerts > SYN_MAX_CERTS || (p->ncerts && !p->certs))
		return plan_err(err, errlen, "plan: too many certificates");
	for (i = 0; i < p->ncerts; i++) {
		const struct syn_plan_cert *c = &p->certs[i];

		if (!plan_str_ok(c->cert, SYN_ROOT_MAX) || !plan_str_ok(c->key, SYN_ROOT_MAX) ||
		    c->listener >= SYN_MAX_LISTENERS ||
		    (c->min_version != 0x0303 && c->min_version != 0x0304))
			return plan_err(err, errlen, "plan: certificate %u invalid", i);
	}
	for (i = 0; i < p->nmimes; i++) {
		const struct syn_plan_mime *m = &p->mimes[i];

		if (!plan_str_ok(m->ext, SYN_EXT_MAX) || !plan_str_ok(m->type, SYN_MIME_MAX) ||
		    (i && strcmp(p->mimes[i - 1].ext, m->ext) >= 0))
			return plan_err(err, errlen, "plan: type %u invalid or out of order", i);
	}
	return 0;
}

static void plan_sockaddr(struct rt_server *rs, const struct syn_addr *a)
{
	memset(&rs->sa, 0, sizeof(rs->sa));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&rs->sa;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->ip, 4);
		rs->salen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rs->sa;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->ip, 16);
		rs->salen = sizeof(*sin6);
	}
}

static int plan_route_cmp(const void *a, const void *b)
{
	const struct rt_route *x = a, *y = b;

	return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* Exact names sorted bytewise, then wildcards by decreasing length so the
 * most specific suffix matches first. */
static int plan_host_cmp(const void *a, const void *b)
{
	const struct rt_host *x = a, *y = b;

	if (x->wildcard != y->wildcard)
		return x->wildcard ? 1 : -1;
	if (x->wildcard && x->len != y->len)
		return x->len < y->len ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int plan_upstreams(struct rt_plan *rp, const struct syn_plan *p)
{
	size_t off = 0;
	uint32_t i, j;

	rp->upstreams = calloc(p->nupstreams ? p->nupstreams : 1, sizeof(*rp->upstreams));
	if (!rp->upstreams)
		return -ENOMEM;
	rp->nupstreams = p->nupstreams;
	for (i = 0; i < p->nupstreams; i++) {
		struct rt_upstream *u = &rp->upstreams[i];

		u->cfg = p->upstreams[i];
		u->cfg.name[SYN_NAME_MAX - 1] = 0;
		u->servers = calloc(u->cfg.nservers, sizeof(*u->servers));
		u->lb_servers = calloc(u->cfg.nservers, sizeof(*u->lb_servers));
		if (!u->servers || !u->lb_servers)
			return -ENOMEM;
		for (j = 0; j < u->cfg.nservers; j++) {
			const struct syn_plan_server *ps = &p->servers[u->cfg.first_server + j];

			plan_sockaddr(&u->servers[j], &ps->addr);
			u->servers[j].slot = ps->slot;
			u->servers[j].weight = ps->weight;
			u->servers[j].backup = ps->backup;
			u->lb_servers[j].weight = ps->weight;
			u->lb_servers[j].backup = ps->backup;
			u->lb_servers[j].id = ps->id;
		}
		u->lb.nservers = u->cfg.nservers;
		u->lb.slow_start_ms = u->cfg.slow_start_ms;
		u->lb.servers = u->lb_servers;
		u->def = syn_lb_get((int)u->cfg.balance);
		u->lb_state_off = off;
		off += (u->def->state_size(&u->lb) + 63) & ~(size_t)63;
	}
	rp->lb_state_size = off;
	return 0;
}

static int plan_sites(struct rt_plan *rp, const struct syn_plan *p)
{
	uint32_t i, n;

	rp->sites = calloc(p->nsites ? p->nsites : 1, sizeof(*rp->sites));
	if (!rp->sites)
		return -ENOMEM;
	rp->nsites = p->nsites;
	for (i = 0; i < p->nsites; i++) {
		rp->sites[i].cfg = p->sites[i];
		rp->sites[i].cfg.name[SYN_NAME_MAX - 1] = 0;
		rp->sites[i].routes = calloc(p->nroutes ? p->nroutes : 1, sizeof(struct rt_route));
		if (!rp->sites[i].routes)
			return -ENOMEM;
	}
	for (i = 0; i < p->nroutes; i++) {
		struct rt_site *s = &rp->sites[p->routes[i].site];
		struct rt_route *r = &s->routes[s->nroutes++];

		r->path = strdup(p->routes[i].path);
		if (!r->path)
			return -ENOMEM;
		r->len = (uint32_t)strlen(r->path);
		r->upstream = p->routes[i].upstream;
		r->statik = p->routes[i].statik;
	}
	for (i = 0; i < p->nsites; i++) {
		int rc;

		qsort(rp->sites[i].routes, rp->sites[i].nroutes, sizeof(struct rt_route),
		      plan_route_cmp);
		/* after the sort: the tree holds indices into routes[] */
		rc = syn_route_tree_build(&rp->sites[i]);
		if (rc)
			return rc;
	}

	rp->hosts = calloc(p->nhosts ? p->nhosts : 1, sizeof(*rp->hosts));
	if (!rp->hosts)
		return -ENOMEM;
	for (i = 0; i < 64; i++)
		rp->default_site[i] = -1;
	for (i = 0, n = 0; i < p->nhosts; i++) {
		const char *name = p->hosts[i].name;
		struct rt_host *h;
		char *lc;
		size_t k;

		if (!strcmp(name, "*")) {
			uint64_t mask = p->sites[p->hosts[i].site].listeners;
			uint32_t b;

			for (b = 0; b < 64; b++)
				if ((mask >> b) & 1 && rp->default_site[b] < 0)
					rp->default_site[b] = (int32_t)p->hosts[i].site;
			continue;
		}
		h = &rp->hosts[n++];
		h->wildcard = name[0] == '*';
		lc = strdup(h->wildcard ? name + 1 : name);
		if (!lc)
			return -ENOMEM;
		for (k = 0; lc[k]; k++)
			if (lc[k] >= 'A' && lc[k] <= 'Z')
				lc[k] |= 0x20;
		h->name = lc;
		h->len = (uint32_t)k;
		h->site = p->hosts[i].site;
		if (!h->wildcard)
			rp->nexact++;
	}
	rp->nhosts = n;
	qsort(rp->hosts, n, sizeof(*rp->hosts), plan_host_cmp);
	return 0;
}

static int plan_listeners(struct rt_plan *rp, const struct syn_plan *p)
{
	struct stat st;
	uint32_t i;

	rp->listeners = calloc(p->nlisteners ? p->nlisteners : 1, sizeof(*rp->listeners));
	if (!rp->listeners)
		return -ENOMEM;
	for (i = 0; i < p->nlisteners; i++) {
		struct rt_listener *l = &rp->listeners[i];

		l->cfg = p->listeners[i];
		l->cfg.fd = dup(p->listeners[i].fd);
		if (l->cfg.fd < 0)
			return -errno;
		if (fstat(l->cfg.fd, &st))
			return -errno;
		l->ino = (uint64_t)st.st_ino;
		rp->nlisteners++;
	}
	return 0;
}

/* Static roots are opened here, once per plan, as O_PATH directories the
 * workers resolve request paths beneath (openat2 RESOLVE_BENEATH). */
static int plan_statics(struct rt_plan *rp, const struct syn_plan *p)
{
	uint32_t i;

	rp->statics = calloc(p->nstatics ? p->nstatics : 1, sizeof(*rp->statics));
	rp->mimes = calloc(p->nmimes ? p->nmimes : 1, sizeof(*rp->mimes));
	if (!rp->statics || !rp->mimes)
		return -ENOMEM;
	for (i = 0; i < p->nstatics; i++) {
		struct rt_static *st = &rp->statics[i];
		char *real;

		st->cfg = p->statics[i];
		st->index_len = (uint32_t)strlen(st->cfg.index);
		st->root_fd = open(st->cfg.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (st->root_fd < 0)
			return -errno;
		rp->nstatics++; /* from here on, syn_plan_free closes it */
		real = realpath(st->cfg.root, NULL);
		if (!real)
			return -errno;
		st->real_len = strlen(real);
		if (st->real_len >= sizeof(st->real)) {
			free(real);
			return -ENAMETOOLONG;
		}
		memcpy(st->real, real, st->real_len + 1);
		free(real);
	}
	if (p->nmimes) /* memcpy from NULL is undefined even for 0 bytes */
		memcpy(rp->mimes, p->mimes, p->nmimes * sizeof(*rp->mimes));
	rp->nmimes = p->nmimes;
	rp->cache_fd = -1;
	if (p->cache_dir[0]) /* compression is off without it: no error */
		rp->cache_fd = open(p->cache_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return 0;
}

struct rt_plan *syn_plan_compile(const struct syn_plan *p, char *err, size_t errlen)
{
	struct rt_plan *rp;
	int rc;

	if (plan_check(p, err, errlen))
		return NULL;
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		goto oom;
	rp->generation = p->generation;
	rp->limits = p->limits;
	rp->access_log_fd = -1;
	rp->cache_fd = -1;
	rc = plan_upstreams(rp, p);
	if (!rc)
		rc = plan_statics(rp, p);
	if (!rc)
		rc = plan_sites(rp, p);
	if (!rc)
		rc = plan_listeners(rp, p);
	if (!rc && p->access_log_fd >= 0) {
		rp->access_log_fd = dup(p->access_log_fd);
		rp->access_log_json = p->access_log_json;
		if (rp->access_log_fd < 0)
			rc = -errno;
	}
	if (!rc) {
		rc = syn_tls_compile(rp, p, err, errlen);
		if (rc == -EINVAL) { /* err says which file and why */
			syn_plan_free(rp);
			return NULL;
		}
	}
	if (rc) {
		plan_err(err, errlen, "plan: %s", strerror(-rc));
		syn_plan_free(rp);
		return NULL;
	}
	return rp;
oom:
	plan_err(err, errlen, "plan: out of memory");
	return NULL;
}

void syn_plan_free(struct rt_plan *rp)
{
	uint32_t i, j;

	if (!rp)
		return;
	for (i = 0; i < rp->nupstreams; i++) {
		free(rp->upstreams[i].servers);
		free(rp->upstreams[i].lb_servers);
	}
	free(rp->upstreams);
	for (i = 0; i < rp->nsites; i++) {
		for (j = 0; j < rp->sites[i].nroutes; j++)
			free((char *)rp->sites[i].routes[j].path);
		free(rp->sites[i].routes);
		syn_route_tree_free(&rp->sites[i]);
	}
	free(rp->sites);
	for (i = 0; i < rp->nhosts; i++)
		free(rp->hosts[i].name);
	free(rp->hosts);
	for (i = 0; i < rp->nlisteners; i++)
		close(rp->listeners[i].cfg.fd);
	free(rp->listeners);
	if (rp->access_log_fd >= 0)
		close(rp->access_log_fd);
	syn_tls_free_plan(rp);
	for (i = 0; i < rp->nstatics; i++)
		close(rp->statics[i].root_fd);
	free(rp->statics);
	free(rp->mimes);
	if (rp->cache_fd >= 0)
		close(rp->cache_fd);
	for (i = 0; i < SYN_MAX_WORKERS; i++)
		free(rp->lb_state[i]);
	free(rp);
}
