/* native/src/proxy.c - the HTTP/1.1 reverse proxy state machine.
 *
 * Everything per request: parse, route, pick a server, rewrite and relay
 * the request and the response, keep-alive on both sides, retries, passive
 * health, timeouts, counters.  It asks for I/O through w->io and learns of
 * completions through proxy_on_*(), so it does not know which engine runs
 * it.  It runs on one worker thread and touches only that worker's state,
 * plus atomics in the engine's shared server table.  Nothing here
 * allocates per request: connections are slots, buffers come from pools
 * that grow only while warming up.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "outbuf.h"

#define TX_SIZE SYN_TX_HEAD_MAX /* heads we write; the tail is the access log's */

enum fail_reason { FAIL_CONNECT = 0, FAIL_TIMEOUT, FAIL_RESET, FAIL_5XX };

static void client_next(struct syn_worker *w, struct syn_conn *c);
static void client_parse(struct syn_worker *w, struct syn_conn *c);
static void upstream_begin(struct syn_worker *w, struct syn_conn *c);
static void upstream_fail(struct syn_worker *w, struct syn_conn *u, enum fail_reason why,
			  int retriable);
static void respond_error(struct syn_worker *w, struct syn_conn *c, int status, int close_after);

/* ---- slots, buffers, timers ----------------------------------------------- */

static char *tx_get(struct syn_worker *w)
{
	if (!w->tx_nfree) {
		char *chunk = malloc((size_t)SYN_BUF_CHUNK * SYN_TX_SIZE);
		uint32_t i;

		if (!chunk)
			return NULL;
		w->stats->heap_allocs++;
		/* slabs are SYN_TX_SIZE apart: heads use TX_SIZE of each */
		/* the free stack must hold every slab ever made, all returned */
		if (w->tx_cap < w->tx_total + SYN_BUF_CHUNK) {
			char **grown = realloc(w->tx_free,
					       (w->tx_cap + SYN_BUF_CHUNK) * sizeof(*w->tx_free));

			if (!grown) {
				free(chunk);
				return NULL;
			}
			w->tx_free = grown;
			w->tx_cap += SYN_BUF_CHUNK;
		}
		for (i = 0; i < SYN_BUF_CHUNK; i++)
			w->tx_free[w->tx_nfree++] = chunk + (size_t)i * SYN_TX_SIZE;
		w->tx_total += SYN_BUF_CHUNK;
	}
	return w->tx_free[--w->tx_nfree];
}

/* Big buffers (SYN_BIG_SIZE) for heads over SYN_BUF_SIZE: index, or -1. */
static int big_get(struct syn_worker *w)
{
	if (w->nbig_free)
		return (int)w->big_free[--w->nbig_free];
	if (w->nbig == SYN_BIG_MAX)
		return -1;
	w->big[w->nbig] = malloc(SYN_BIG_SIZE);
	if (!w->big[w->nbig])
		return -1;
	w->stats->heap_allocs++;
	return (int)w->nbig++;
}

static void big_put(struct syn_worker *w, uint32_t i)
{
	w->big_free[w->nbig_free++] = i;
}

/* A tx slab for c: small, the size of a receive buffer. */
static int tx_take(struct syn_worker *w, struct syn_conn *c)
{
	if (c->tx)
		return 0;
	c->tx = tx_get(w);
	if (!c->tx)
		return -1;
	c->tx_cap = TX_SIZE;
	c->tx_big = 0;
	return 0;
}

/* Swap c's tx slab for a big one, keeping the access log's strings. */
static int tx_grow(struct syn_worker *w, struct syn_conn *c)
{
	int i = big_get(w);

	if (i < 0)
		return -1;
	memcpy(w->big[i] + SYN_BIG_HEAD, c->tx + c->tx_cap, SYN_TX_SIZE - TX_SIZE);
	w->tx_free[w->tx_nfree++] = c->tx;
	c->tx = w->big[i];
	c->tx_cap = SYN_BIG_HEAD;
	c->tx_big = 1;
	return 0;
}

static void tx_put(struct syn_worker *w, struct syn_conn *c)
{
	if (!c->tx)
		return;
	if (c->tx_big) {
		uint32_t i;

		for (i = 0; i < w->nbig; i++)
			if (w->big[i] == c->tx)
				big_put(w, i);
	} else {
		w->tx_free[w->tx_nfree++] = c->tx;
	}
	c->tx = NULL;
	c->tx_big = 0;
}

static char *rx_data(struct syn_worker *w, struct syn_conn *c)
{
	(void)w;
	return c->rx_ptr + c->rx_start;
}

static void rx_release(struct syn_worker *w, struct syn_conn *c)
{
	if (c->tls && !c->closing && c->rx_bid >= 0) {
		/* a TLS connection keeps its buffer: plaintext the SSL object
		 * holds may have to be handed over without a receive */
		c->rx_start = c->rx_end = 0;
		return;
	}
	if (c->rx_bid >= SYN_BIG_BID)
		big_put(w, (uint32_t)(c->rx_bid - SYN_BIG_BID));
	else if (c->rx_bid >= 0)
		w->io->buf_release(w, c->rx_bid);
	c->rx_bid = -1;
	c->rx_ptr = NULL;
	c->rx_start = c->rx_end = 0;
}

/* Hold a pool buffer just filled by a receive. */
static void rx_hold(struct syn_worker *w, struct syn_conn *c, int32_t bid, uint32_t n)
{
	c->rx_bid = bid;
	c->rx_ptr = w->io->buf(w, bid);
	c->rx_cap = SYN_BUF_SIZE;
	c->rx_start = 0;
	c->rx_end = n;
}

static uint32_t rx_len(const struct syn_conn *c)
{
	return c->rx_bid < 0 ? 0 : c->rx_end - c->rx_start;
}

/* Drop n bytes from the front of the window; give the buffer back when
 * empty and no receive is writing into it. */
static void rx_consume(struct syn_worker *w, struct syn_conn *c, uint32_t n)
{
	c->rx_start += n;
	if (c->rx_start >= c->rx_end && !c->recving && c->rx_bid >= 0)
		rx_release(w, c);
}

/* Move the window to the start of the buffer so a receive has room. */
static void rx_compact(struct syn_worker *w, struct syn_conn *c)
{
	(void)w;
	if (c->rx_bid >= 0 && c->rx_start > 0) {
		char *b = c->rx_ptr;

		memmove(b, b + c->rx_start, c->rx_end - c->rx_start);
		c->rx_end -= c->rx_start;
		c->rx_start = 0;
	}
}

/* The held buffer is full: move the window to a big buffer, for a head
 * over SYN_BUF_SIZE.  0, or -1 when there is none to be had. */
static int rx_grow(struct syn_worker *w, struct syn_conn *c)
{
	uint32_t n = c->rx_end - c->rx_start;
	int i;

	if (c->rx_bid >= SYN_BIG_BID || c->recving || (i = big_get(w)) < 0)
		return -1;
	memcpy(w->big[i], c->rx_ptr + c->rx_start, n);
	rx_release(w, c);
	c->rx_bid = SYN_BIG_BID + i;
	c->rx_ptr = w->big[i];
	c->rx_cap = SYN_BIG_SIZE;
	c->rx_end = n;
	return 0;
}

/* Make room to receive more of a head: compact, then grow. */
static int rx_room(struct syn_worker *w, struct syn_conn *c)
{
	if (c->rx_end < c->rx_cap)
		return 0;
	rx_compact(w, c);
	if (c->rx_end < c->rx_cap)
		return 0;
	return rx_grow(w, c);
}

static void timer_del(struct syn_worker *w, struct syn_conn *c)
{
	uint32_t i = conn_index(w, c);

	if (c->tlist == TL_NONE)
		return;
	if (c->tprev != SYN_NONE)
		w->conns[c->tprev].tnext = c->tnext;
	else
		w->thead[c->tlist] = c->tnext;
	if (c->tnext != SYN_NONE)
		w->conns[c->tnext].tprev = c->tprev;
	else
		w->ttail[c->tlist] = c->tprev;
	c->tlist = TL_NONE;
	(void)i;
}

/* Deadlines in one list are nearly always in order (same duration), so
 * insertion walks back from the tail a step or two. */
static void timer_set(struct syn_worker *w, struct syn_conn *c, enum timer_list l, uint32_t ms)
{
	uint32_t i = conn_index(w, c), at;

	timer_del(w, c);
	c->deadline = w->now_ms + ms;
	c->tlist = (uint8_t)l;
	at = w->ttail[l];
	while (at != SYN_NONE && w->conns[at].deadline > c->deadline)
		at = w->conns[at].tprev;
	c->tprev = at;
	if (at == SYN_NONE) {
		c->tnext = w->thead[l];
		w->thead[l] = i;
	} else {
		c->tnext = w->conns[at].tnext;
		w->conns[at].tnext = i;
	}
	if (c->tnext != SYN_NONE)
		w->conns[c->tnext].tprev = i;
	else
		w->ttail[l] = i;
}

static struct syn_conn *conn_new(struct syn_worker *w, int fd, enum conn_kind kind)
{
	struct syn_conn *c;
	uint32_t gen;

	if (w->free_head != SYN_NONE) {
		c = conn_at(w, w->free_head);
		w->free_head = c->next;
	} else if (w->conn_hwm < w->nconns) {
		c = conn_at(w, w->conn_hwm++); /* first use of this slot */
	} else {
		return NULL;
	}
	gen = c->gen + 1;
	memset(c, 0, offsetof(struct syn_conn, ck));
	c->gen = gen;
	c->fd = fd;
	c->kind = (uint8_t)kind;
	c->next = c->peer = SYN_NONE;
	c->rx_bid = -1;
	c->tprev = c->tnext = SYN_NONE;
	c->site = c->upstream = SYN_NONE;
	c->server = -1;
	c->pipe = -1;
	c->pipe_bytes = 0;
	c->nonblock = 0;
	c->statik = 0;
	c->file_fd = -1;
	c->file_left = 0;
	c->zc = 0;
	c->zc_bid = -1;
	c->tls = c->ktls = NULL;
	c->tls_busy = c->tls_report = c->tls_want_send = c->ktls_wait = 0;
	memset(c->tried, 0, sizeof(c->tried));
	return c;
}

/* ---- pipes for splice -------------------------------------------------------- */

static int pipe_get(struct syn_worker *w)
{
	uint32_t i;
	int fds[2];

	if (w->npipe_free) {
		i = w->pipe_free[--w->npipe_free];
	} else {
		if (w->npipes == SYN_PIPES)
			return -1;
		i = w->npipes++;
		w->pipes[i][0] = w->pipes[i][1] = -1;
	}
	if (w->pipes[i][0] < 0) {
		if (pipe2(fds, O_CLOEXEC)) {
			w->pipe_free[w->npipe_free++] = i;
			return -1;
		}
		/* bigger than the 64 KiB default: fewer round trips per body */
		fcntl(fds[1], F_SETPIPE_SZ, SYN_PIPE_SIZE);
		w->pipes[i][0] = fds[0];
		w->pipes[i][1] = fds[1];
	}
	return (int)i;
}

/* Give the pipe of s back: kept when empty and no splice can still touch
 * it, else closed (an operation in flight keeps its own reference) and
 * made again on next use. */
static void pipe_release(struct syn_worker *w, struct syn_conn *s, int clean)
{
	int i = s->pipe;

	if (i < 0)
		return;
	if (!clean || s->pipe_bytes) {
		close(w->pipes[i][0]);
		close(w->pipes[i][1]);
		w->pipes[i][0] = w->pipes[i][1] = -1;
	}
	w->pipe_free[w->npipe_free++] = (uint32_t)i;
	s->pipe = -1;
	s->pipe_bytes = 0;
}

static void plan_ref(struct syn_worker *w, struct syn_conn *c)
{
	c->plan = w->plan;
	atomic_fetch_add_explicit(&c->plan->refs[w->id], 1, memory_order_relaxed);
}

static void plan_unref(struct syn_worker *w, struct syn_conn *c)
{
	if (c->plan) {
		atomic_fetch_sub_explicit(&c->plan->refs[w->id], 1, memory_order_release);
		c->plan = NULL;
	}
}

/* Begin closing: stop what is in flight; the slot is freed when the last
 * completion arrives (proxy_on_closed). */
static void conn_close(struct syn_worker *w, struct syn_conn *c)
{
	if (c->kind == CONN_FREE || c->closing)
		return;
	if (c->tls || c->ktls)
		syn_tls_close_notify(c);
	c->closing = 1;
	c->state = CS_CLOSING;
	timer_del(w, c);
	if (c->pending)
		shutdown(c->fd, SHUT_RDWR);
	w->io->cancel(w, c); /* also drops what the engine keeps for c */
	if (!c->pending)
		proxy_on_closed(w, c);
}

static void server_active(struct syn_worker *w, struct syn_conn *c, int delta)
{
	const struct rt_upstream *up;

	if (c->upstream == SYN_NONE || c->server < 0 || !c->plan)
		return;
	up = &c->plan->upstreams[c->upstream];
	__atomic_add_fetch(&w->e->servers[up->servers[c->server].slot].active, (uint32_t)delta,
			   __ATOMIC_RELAXED);
}

void proxy_on_closed(struct syn_worker *w, struct syn_conn *c)
{
	if (c->fd >= 0) /* the engine may have closed it already (zero-copy sends) */
		close(c->fd);
	syn_tls_free(c);
	if (c->file_fd >= 0) {
		close(c->file_fd);
		c->file_fd = -1;
	}
	pipe_release(w, c, 0);
	rx_release(w, c);
	tx_put(w, c);
	timer_del(w, c);
	if (c->kind == CONN_CLIENT) {
		w->nclients--;
		w->stats->listener_active[c->listener_slot]--;
		if (c->upstream != SYN_NONE && c->server >= 0)
			server_active(w, c, -1);
		plan_unref(w, c);
		if (w->accept_paused && w->nclients < w->max_clients) {
			w->accept_paused = 0;
			uring_sync_accepts(w);
		}
	}
	c->kind = CONN_FREE;
	c->closing = 0;
	c->next = w->free_head;
	w->free_head = conn_index(w, c);
}

static struct syn_conn *peer_of(struct syn_worker *w, struct syn_conn *c)
{
	if (c->peer == SYN_NONE)
		return NULL;
	return conn_at(w, c->peer);
}

static void unpair(struct syn_worker *w, struct syn_conn *c)
{
	struct syn_conn *p = peer_of(w, c);

	if (p)
		p->peer = SYN_NONE;
	c->peer = SYN_NONE;
}

/* ---- counters -------------------------------------------------------------- */

static int status_class(int status)
{
	int k = status / 100;

	return k >= 1 && k <= 5 ? k : 5;
}

/* The request on c is over (answered, or abandoned): count it. */
static void request_done(struct syn_worker *w, struct syn_conn *c)
{
	uint64_t us = w->now_us > c->start_us ? w->now_us - c->start_us : 0;
	int k = status_class(c->status ? c->status : 499);

	if (c->site != SYN_NONE && c->plan) {
		uint32_t slot = c->plan->sites[c->site].cfg.slot;

		w->stats->site_requests[slot][k]++;
		syn_stats_observe(w->stats->site_hist[slot], &w->stats->site_hist_count[slot],
				  &w->stats->site_hist_sum_us[slot], us);
	} else {
		w->stats->nosite_requests[k]++;
	}
}

/* Passive health: a failure seen by real traffic on a server slot. */
static void passive_fail(struct syn_worker *w, const struct rt_upstream *up, uint32_t slot,
			 enum fail_reason why)
{
	struct syn_passive *p = &w->e->passive[slot];
	uint64_t now = w->now_ms, start;
	uint32_t fails;

	w->stats->server_failures[slot][why]++;
	if (!up->cfg.max_fails)
		return;
	start = __atomic_load_n(&p->window_start_ms, __ATOMIC_RELAXED);
	if (now - start > up->cfg.fail_timeout_ms) {
		__atomic_store_n(&p->window_start_ms, now, __ATOMIC_RELAXED);
		__atomic_store_n(&p->fails, 0, __ATOMIC_RELAXED);
	}
	fails = __atomic_add_fetch(&p->fails, 1, __ATOMIC_RELAXED);
	if (fails >= up->cfg.max_fails)
		__atomic_store_n(&p->ejected_until_ms, now + up->cfg.fail_timeout_ms,
				 __ATOMIC_RELAXED);
}

static int passive_ejected(struct syn_worker *w, uint32_t slot)
{
	return __atomic_load_n(&w->e->passive[slot].ejected_until_ms, __ATOMIC_RELAXED) > w->now_ms;
}

/* ---- writing heads -------------------------------------------------------- */

/* Hop-by-hop fields (RFC 9110 7.6.1), re-framed or regenerated by us. */
static int hop_by_hop(int id)
{
	switch (id) {
	case SYN_HDR_CONNECTION:
	case SYN_HDR_KEEP_ALIVE:
	case SYN_HDR_PROXY_CONNECTION:
	case SYN_HDR_TE:
	case SYN_HDR_TRAILER:
	case SYN_HDR_TRANSFER_ENCODING:
	case SYN_HDR_UPGRADE:
		return 1;
	default:
		return 0;
	}
}

/* The lengths of the names the head writers drop, as bits: a field whose
 * name has none of them is kept without looking its name up. */
#define NAME_LEN_BIT(lit) (1u << (sizeof(lit) - 1))
#define HOP_BY_HOP_LENS                                                                    \
	(NAME_LEN_BIT("connection") | NAME_LEN_BIT("keep-alive") |                         \
	 NAME_LEN_BIT("proxy-connection") | NAME_LEN_BIT("te") | NAME_LEN_BIT("trailer") | \
	 NAME_LEN_BIT("transfer-encoding") | NAME_LEN_BIT("upgrade"))
#define REQUEST_DROP_LENS                                                               \
	(HOP_BY_HOP_LENS | NAME_LEN_BIT("expect") | NAME_LEN_BIT("x-forwarded-proto") | \
	 NAME_LEN_BIT("x-forwarded-host") | NAME_LEN_BIT("x-forwarded-for"))

/* The known-header id of f's name when its length is among lens, else
 * SYN_HDR_NONE (no name of interest is that long). */
static int header_id_if(const char *buf, const struct syn_h1_header *f, uint32_t lens)
{
	if (f->name.len >= 32 || !(lens >> f->name.len & 1))
		return SYN_HDR_NONE;
	return syn_h1_header_id(buf + f->name.off, f->name.len);
}

/* Does the head's Connection header name fields other than close,
 * keep-alive and upgrade (which are then hop-by-hop too)? */
static int connection_names_others(const struct syn_h1_head *h)
{
	return (h->flags & SYN_H1_F_CONN_OTHER) && syn_h1_find(h, SYN_HDR_CONNECTION);
}

/* Is the field named in a Connection header (so hop-by-hop too)? */
static int named_in_connection(const char *buf, const struct syn_h1_head *h,
			       const struct syn_h1_header *f)
{
	uint32_t i;

	for (i = 0; i < h->nheaders; i++) {
		const struct syn_h1_header *c = &h->headers[i];
		const char *v = buf + c->value.off, *end = v + c->value.len;

		if (!syn_h1_span_ieq(buf, c->name, "connection", 10))
			continue;
		while (v < end) {
			const char *t;

			while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			t = v;
			while (v < end && *v != ',' && *v != ' ' && *v != '\t')
				v++;
			if ((size_t)(v - t) == f->name.len &&
			    !strncasecmp(t, buf + f->name.off, f->name.len))
				return 1;
		}
	}
	return 0;
}

/* Dotted quad into out (16 bytes at least): what inet_ntop() writes, without
 * its sprintf, once per proxied request. */
static void ip4_text(const uint8_t a[4], char *out)
{
	int i;

	for (i = 0; i < 4; i++) {
		unsigned v = a[i];

		if (v >= 100)
			*out++ = (char)('0' + v / 100);
		if (v >= 10)
			*out++ = (char)('0' + v / 10 % 10);
		*out++ = (char)('0' + v % 10);
		*out++ = i < 3 ? '.' : '\0';
	}
}

/* The client's address as text (IPv4-mapped IPv6 shown as IPv4); len is at
 * least INET_ADDRSTRLEN. */
void syn_format_ip(const struct sockaddr_storage *ss, char *out, size_t len)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			ip4_text(&s6->sin6_addr.s6_addr[12], out);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)len);
	} else if (ss->ss_family == AF_INET) {
		ip4_text((const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr, out);
	} else {
		snprintf(out, len, "unknown");
	}
}

/* The request head as it goes upstream: hop-by-hop fields out, Expect out
 * (we answer 100-continue ourselves), X-Forwarded-* added, framing kept.
 * Returns the length, or 0 when it does not fit. */
static uint32_t build_request_head(struct syn_conn *c, const char *buf,
				   const struct syn_h1_request *req, char *out)
{
	struct outbuf o = {out, 0, c->tx_cap, 0};
	const struct syn_h1_head *h = &req->h;
	const struct syn_h1_header *xff = syn_h1_find(h, SYN_HDR_X_FORWARDED_FOR);
	int others = connection_names_others(h);
	char ip[INET6_ADDRSTRLEN];
	uint32_t i;

	ob_span(&o, buf, req->method_name);
	ob_put(&o, " ", 1);
	ob_span(&o, buf, req->target);
	ob_str(&o, " HTTP/1.1\r\n");
	for (i = 0; i < h->nheaders; i++) {
		const struct syn_h1_header *f = &h->headers[i];
		int id = header_id_if(buf, f, REQUEST_DROP_LENS);

		if (hop_by_hop(id) || id == SYN_HDR_EXPECT || id == SYN_HDR_X_FORWARDED_PROTO ||
		    id == SYN_HDR_X_FORWARDED_HOST || id == SYN_HDR_X_FORWARDED_FOR ||
		    (others && named_in_connection(buf, h, f)))
			continue;
		ob_span(&o, buf, f->name);
		ob_put(&o, ": ", 2);
		ob_span(&o, buf, f->value);
		ob_put(&o, "\r\n", 2);
	}
	syn_format_ip(&c->peer_addr, ip, sizeof(ip));
	ob_str(&o, "X-Forwarded-For: ");
	for (i = 0; xff && i < h->nheaders; i++) {
		const struct syn_h1_header *f = &h->headers[i];

		if (syn_h1_span_ieq(buf, f->name, "x-forwarded-for", 15) && f->value.len) {
			ob_span(&o, buf, f->value);
			ob_put(&o, ", ", 2);
		}
	}
	ob_str(&o, ip);
	ob_str(&o, c->tls || c->ktls ? "\r\nX-Forwarded-Proto: https\r\n"
				     : "\r\nX-Forwarded-Proto: http\r\n");
	if (h->idx[SYN_HDR_HOST]) {
		ob_str(&o, "X-Forwarded-Host: ");
		ob_span(&o, buf, h->host);
		ob_put(&o, "\r\n", 2);
	}
	if (c->body_mode == BODY_CHUNKED)
		ob_str(&o, "Transfer-Encoding: chunked\r\n");
	if (c->upgrade_req) {
		ob_str(&o, "Connection: Upgrade\r\nUpgrade: ");
		ob_span(&o, buf, h->upgrade);
		ob_put(&o, "\r\n", 2);
	}
	ob_put(&o, "\r\n", 2);
	return o.overflow ? 0 : o.len;
}

const char *syn_reason_phrase(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 304:
		return "Not Modified";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 412:
		return "Precondition Failed";
	case 416:
		return "Range Not Satisfiable";
	case 500:
		return "Internal Server Error";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

/* The response head as it goes to the client: hop-by-hop fields out, the
 * framing and persistence we chose. */
static uint32_t build_response_head(struct syn_conn *c, const char *buf,
				    const struct syn_h1_response *resp, char *out, int chunked_out)
{
	struct outbuf o = {out, 0, c->tx_cap, 0};
	const struct syn_h1_head *h = &resp->h;
	int others = connection_names_others(h);
	uint32_t i;

	ob_str(&o, c->version ? "HTTP/1.1 " : "HTTP/1.0 ");
	ob_u64(&o, resp->status);
	ob_put(&o, " ", 1);
	ob_span(&o, buf, resp->reason);
	ob_put(&o, "\r\n", 2);
	for (i = 0; i < h->nheaders; i++) {
		const struct syn_h1_header *f = &h->headers[i];
		int id = header_id_if(buf, f, HOP_BY_HOP_LENS);

		if (hop_by_hop(id) || (others && named_in_connection(buf, h, f)))
			continue;
		ob_span(&o, buf, f->name);
		ob_put(&o, ": ", 2);
		ob_span(&o, buf, f->value);
		ob_put(&o, "\r\n", 2);
	}
	if (chunked_out)
		ob_str(&o, "Transfer-Encoding: chunked\r\n");
	if (resp->status == 101) {
		ob_str(&o, "Connection: Upgrade\r\nUpgrade: ");
		ob_span(&o, buf, h->upgrade);
		ob_str(&o, "\r\n\r\n");
		return o.overflow ? 0 : o.len;
	}
	if (!c->keepalive)
		ob_str(&o, "Connection: close\r\n");
	else if (!c->version)
		ob_str(&o, "Connection: keep-alive\r\n");
	ob_put(&o, "\r\n", 2);
	return o.overflow ? 0 : o.len;
}

/* ---- sending ---------------------------------------------------------------- */

static void send_out(struct syn_worker *w, struct syn_conn *c, const char *p, uint32_t n,
		     uint8_t release_peer_rx)
{
	c->out = p;
	c->out_len = n;
	c->out_release_rx = release_peer_rx;
	w->io->send(w, c);
}

/* To a client: one send at a time, so a response never overtakes the
 * 100 Continue still going out; the one waiting is sent on completion. */
static void client_send(struct syn_worker *w, struct syn_conn *c, const char *p, uint32_t n,
			uint8_t release_peer_rx)
{
	if (c->sending) {
		c->queued = p;
		c->queued_len = n;
		c->out_release_rx = release_peer_rx;
		return;
	}
	send_out(w, c, p, n, release_peer_rx);
}

/* ---- client side ------------------------------------------------------------ */

/* Every connection, client or upstream: no Nagle delay (heads and small
 * bodies go at once, as nginx and HAProxy send them), and at most
 * notsent_lowat bytes (16 KiB) in the kernel not yet sent.  Without the
 * limit a splice moves up to a whole pipe (1 MiB) into the socket; what the
 * peer's window does not take at once waits there, and the peer's ACKs send
 * it, on the peer's CPU.  With it a send or splice stops when 16 KiB wait,
 * the socket is writable again below 8 KiB, and the rest goes from here,
 * as the window opens (make bench-proxy, 1 MiB: 2,600 responses/s against
 * 1,400; docs/benchmarks.md).  Kernel TLS ones go back to the kernel's
 * default when their keys go to the kernel (syn_tls_to_kernel()). */
static void sock_setup(struct syn_worker *w, int fd)
{
	int one = 1, lowat = w->e->notsent_lowat;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (lowat)
		setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

void proxy_on_accept(struct syn_worker *w, struct syn_accept *a, int fd)
{
	struct syn_conn *c;
	socklen_t len;

	if (!w->plan) {
		close(fd);
		return;
	}
	c = conn_new(w, fd, CONN_CLIENT);
	if (!c) {
		close(fd);
		return;
	}
	len = sizeof(c->peer_addr);
	if (getpeername(fd, (struct sockaddr *)&c->peer_addr, &len))
		c->peer_addr.ss_family = AF_UNSPEC;
	sock_setup(w, fd);
	c->listener_slot = a->slot;
	c->listener_bit = a->bit;
	c->state = CS_IDLE;
	w->nclients++;
	w->stats->listener_accepted[a->slot]++;
	w->stats->listener_active[a->slot]++;
	if (w->plan->tls[a->slot] && syn_tls_accept(w, c, w->plan->tls[a->slot])) {
		conn_close(w, c);
		return;
	}
	if (w->nclients >= w->max_clients) {
		w->accept_paused = 1;
		uring_sync_accepts(w);
	}
	timer_set(w, c, TL_CLIENT_HEAD, w->plan->limits.client_header_timeout_ms);
	w->io->recv(w, c);
}

/* Body framing of the request just parsed; 0, or a status to refuse with. */
static int splice_start(struct syn_worker *w, struct syn_conn *s);
static void splice_soon(struct syn_worker *w, struct syn_conn *s, const struct syn_conn *d);

static int request_framing(struct syn_worker *w, struct syn_conn *c,
			   const struct syn_h1_request *req)
{
	const struct syn_h1_head *h = &req->h;

	c->remaining = 0;
	c->body_mode = BODY_NONE;
	c->body_seen = 0;
	c->body_limit = w->plan->limits.body_bytes;
	if (h->flags & SYN_H1_F_CHUNKED) {
		c->body_mode = BODY_CHUNKED;
		syn_h1_chunked_init(&c->ck);
	} else if ((h->flags & SYN_H1_F_LENGTH) && h->content_length) {
		if (h->content_length > w->plan->limits.body_bytes)
			return 413;
		c->body_mode = BODY_LENGTH;
		c->remaining = h->content_length;
	}
	return 0;
}

#define BODY_TOO_LARGE (-2)

/* How many bytes at p (of n) belong to the body still to relay, validating
 * chunked framing on the way.  -1 on a framing error, BODY_TOO_LARGE past
 * c->body_limit. */
static long body_take(struct syn_conn *c, const char *p, uint32_t n)
{
	long used = 0;
	int data;

	if (c->body_mode == BODY_LENGTH)
		return (long)(n < c->remaining ? n : c->remaining);
	if (c->body_mode == BODY_CLOSE || c->body_mode == BODY_TUNNEL)
		return (long)n;
	if (c->body_mode != BODY_CHUNKED)
		return 0;
	while ((uint32_t)used < n && !syn_h1_chunked_done(&c->ck)) {
		long k = syn_h1_chunked_parse(&c->ck, p + used, n - (uint32_t)used, &data);

		if (k < 0)
			return -1;
		if (k == 0)
			break;
		if (data) {
			c->body_seen += (uint64_t)k;
			if (c->body_limit && c->body_seen > c->body_limit)
				return BODY_TOO_LARGE;
		}
		used += k;
	}
	return used;
}

static int body_done(const struct syn_conn *c)
{
	if (c->body_mode == BODY_LENGTH)
		return c->remaining == 0;
	if (c->body_mode == BODY_CHUNKED)
		return syn_h1_chunked_done(&c->ck);
	if (c->body_mode == BODY_CLOSE || c->body_mode == BODY_TUNNEL)
		return c->eof; /* the peer's close ends it */
	return 1;
}

/* ---- static files ------------------------------------------------------------- */

static void set_nonblock(struct syn_conn *c, int on);
static void client_finish(struct syn_worker *w, struct syn_conn *c);

/* The next piece of a file going out after its head: by splice (file to
 * pipe at our own offset, then pipe to socket), or copied through tx when
 * no pipe is to be had. */
static void static_next(struct syn_worker *w, struct syn_conn *c)
{
	uint32_t len = c->file_left < SYN_PIPE_SIZE ? (uint32_t)c->file_left : SYN_PIPE_SIZE;
	ssize_t n;

	timer_set(w, c, TL_CLIENT_BODY, c->plan->limits.client_body_timeout_ms);
	if (w->io->splice && !c->tls && (c->pipe >= 0 || (c->pipe = pipe_get(w)) >= 0)) {
		set_nonblock(c, 1);
		w->io->splice(w, c, c->file_fd, &c->file_off, w->pipes[c->pipe][1], len, c->fd,
			      POLLIN, 1);
		return;
	}
	len = len < c->tx_cap ? len : c->tx_cap;
	n = pread(c->file_fd, c->tx, len, (off_t)c->file_off);
	if (n <= 0) { /* cut short on disk: the Content-Length cannot be kept */
		conn_close(w, c);
		return;
	}
	c->file_off += (uint64_t)n;
	c->file_left -= (uint64_t)n;
	send_out(w, c, c->tx, (uint32_t)n, 0);
}

static void static_on_splice(struct syn_worker *w, struct syn_conn *c, int res, int dir)
{
	if (dir == 1) { /* file -> pipe */
		if (res <= 0) {
			conn_close(w, c);
			return;
		}
		c->pipe_bytes += (uint32_t)res;
		c->file_left -= (uint64_t)res;
		w->io->splice(w, c, w->pipes[c->pipe][0], NULL, c->fd, c->pipe_bytes, c->fd,
			      POLLOUT, 2);
		return;
	}
	if (res == -EAGAIN || (res > 0 && (uint32_t)res < c->pipe_bytes)) {
		if (res > 0) {
			c->pipe_bytes -= (uint32_t)res;
			w->stats->listener_tx_bytes[c->listener_slot] += (uint64_t)res;
			c->bytes_out += (uint64_t)res;
			timer_set(w, c, TL_CLIENT_BODY, c->plan->limits.client_body_timeout_ms);
		}
		w->io->splice(w, c, w->pipes[c->pipe][0], NULL, c->fd, c->pipe_bytes, c->fd,
			      POLLOUT, 2);
		return;
	}
	if (res <= 0) {
		conn_close(w, c);
		return;
	}
	c->pipe_bytes = 0;
	w->stats->listener_tx_bytes[c->listener_slot] += (uint64_t)res;
	c->bytes_out += (uint64_t)res;
	if (c->file_left) {
		static_next(w, c);
		return;
	}
	pipe_release(w, c, 1);
	set_nonblock(c, 0);
	timer_del(w, c);
	client_finish(w, c);
}

/* A request on a static route: answered here, without an upstream. */
static void static_begin(struct syn_worker *w, struct syn_conn *c, const char *buf,
			 const struct syn_h1_request *req, const struct rt_route *route,
			 uint32_t head_len)
{
	struct syn_static_answer a;

	if (c->body_mode != BODY_NONE)
		c->keepalive = 0; /* a body is not read: the connection ends with the answer */
	if (tx_take(w, c)) {
		rx_consume(w, c, head_len);
		respond_error(w, c, 503, 1);
		return;
	}
	c->statik = 1;
	c->status = (uint16_t)syn_static_answer(w, c, route, buf, req, c->tx, c->tx_cap, &a);
	rx_consume(w, c, head_len);
	c->resp_started = 1;
	c->state = CS_RESPONDING;
	c->peer = SYN_NONE;
	c->resp_head_bytes = a.head_bytes;
	c->file_fd = a.fd;
	c->file_off = a.off;
	c->file_left = a.left;
	/* a client that does not read its answer is let go of, as one that does
	 * not send its body is */
	timer_set(w, c, TL_CLIENT_BODY, c->plan->limits.client_body_timeout_ms);
	client_send(w, c, c->tx, a.len, 0);
}

static void client_parse(struct syn_worker *w, struct syn_conn *c)
{
	const struct syn_plan_limits *lim = &w->plan->limits;
	uint32_t n = rx_len(c), head_max = lim->header_bytes;
	const struct rt_route *route;
	struct syn_h1_request req;
	const char *buf;
	int rc, site, st;

	buf = rx_data(w, c);
	rc = syn_h1_parse_request_limits(buf, n, &req, head_max, lim->headers);
	if (rc == SYN_PARSE_AGAIN) {
		if (c->state == CS_IDLE) {
			c->state = CS_HEAD;
			c->start_us = w->now_us;
			timer_set(w, c, TL_CLIENT_HEAD, lim->client_header_timeout_ms);
		}
		if (rx_room(w, c)) {
			plan_ref(w, c);
			respond_error(w, c, 431, 1);
			return;
		}
		w->io->recv(w, c);
		return;
	}
	if (c->state == CS_IDLE)
		c->start_us = w->now_us;
	plan_ref(w, c);
	c->bytes_out = 0;
	c->resp_head_bytes = 0;
	c->alog_captured = 0;
	if (c->plan->access_log_fd >= 0 && rc > 0 && !tx_take(w, c))
		syn_alog_capture(c, buf, &req);
	c->version = 1;
	c->keepalive = 0;
	if (rc == SYN_PARSE_ERR) {
		respond_error(w, c, syn_h1_err_status(req.h.error), 1);
		return;
	}
	c->method = req.method;
	c->head_req = req.method == SYN_M_HEAD;
	c->version = req.h.version;
	c->keepalive = (req.h.flags & SYN_H1_F_KEEPALIVE) != 0;
	c->upgrade_req = (req.h.flags & SYN_H1_F_UPGRADE) != 0;
	c->status = 0;
	c->tries = 0;
	c->resp_started = c->req_sent = 0;
	memset(c->tried, 0, sizeof(c->tried));
	st = request_framing(w, c, &req);
	if (st) {
		respond_error(w, c, st, 1);
		return;
	}
	splice_soon(w, c, NULL);

	site = syn_route_site(c->plan, buf + req.h.host.off, req.h.host.len, c->listener_bit);
	if (site < 0) {
		rx_consume(w, c, (uint32_t)rc);
		respond_error(w, c, 404, c->body_mode != BODY_NONE);
		return;
	}
	c->site = (uint32_t)site;
	route = syn_route_path(&c->plan->sites[site], buf + req.target.off, req.target.len);
	if (!route) {
		rx_consume(w, c, (uint32_t)rc);
		respond_error(w, c, 404, c->body_mode != BODY_NONE);
		return;
	}
	if (route->statik != SYN_NONE) {
		static_begin(w, c, buf, &req, route, (uint32_t)rc);
		return;
	}
	c->upstream = route->upstream;

	if (tx_take(w, c)) {
		respond_error(w, c, 503, 1);
		return;
	}
	c->head_len = build_request_head(c, buf, &req, c->tx);
	if (!c->head_len && !tx_grow(w, c))
		c->head_len = build_request_head(c, buf, &req, c->tx);
	if (!c->head_len) {
		respond_error(w, c, 431, 1);
		return;
	}
	rx_consume(w, c, (uint32_t)rc);
	/* a body that came whole with the head is held until the response
	 * starts, so that the request can be sent again on a retry */
	c->body_held = 0;
	c->body_held_sent = 0;
	c->body_in_tx = 0;
	c->fresh_only = c->stale_retried = 0;
	if (c->body_mode != BODY_NONE) {
		struct syn_h1_chunked saved = c->ck;
		uint64_t remaining = c->remaining;
		long k = body_take(c, rx_data(w, c), rx_len(c));

		if (k < 0) {
			respond_error(w, c, k == BODY_TOO_LARGE ? 413 : 400, 1);
			return;
		}
		if (k > 0 &&
		    (body_done(c) || (c->body_mode == BODY_LENGTH && (uint64_t)k == remaining))) {
			c->remaining = 0;
			if (c->head_len + (uint32_t)k <= c->tx_cap) {
				/* a small body goes in the same send as the head */
				memcpy(c->tx + c->head_len, rx_data(w, c), (size_t)k);
				c->head_len += (uint32_t)k;
				c->body_in_tx = 1;
				rx_consume(w, c, (uint32_t)k);
			} else {
				c->body_held = (uint32_t)k;
			}
		} else {
			c->ck = saved; /* streamed: decoded as it is sent */
		}
		if ((req.h.flags & SYN_H1_F_CONTINUE) && !rx_len(c))
			client_send(w, c, "HTTP/1.1 100 Continue\r\n\r\n", 25, 0);
	}
	c->state = CS_WAIT_UP;
	timer_del(w, c);
	upstream_begin(w, c);
}

/* ---- choosing a server --------------------------------------------------- */

static void tried_set(uint64_t *t, int i)
{
	t[i >> 6] |= 1ull << (i & 63);
}

static int tried_has(const uint64_t *t, int i)
{
	return (t[i >> 6] >> (i & 63)) & 1;
}

/* Usable servers, in the order PRODUCT.md section 5 gives: primaries that
 * are up and not ejected; else backups that are; else, since passive
 * ejection is a guess, the ejected ones that are still up. */
static int usable_mask(struct syn_worker *w, const struct rt_upstream *up, const uint64_t *tried,
		       struct syn_lb_ctx *ctx)
{
	int pass, i, any = 0;

	for (pass = 0; pass < 4 && !any; pass++) {
		int want_backup = pass & 1, ignore_eject = pass >= 2;

		memset(ctx->usable, 0, sizeof(ctx->usable));
		for (i = 0; i < (int)up->cfg.nservers; i++) {
			const struct rt_server *s = &up->servers[i];

			if ((int)s->backup != want_backup || tried_has(tried, i))
				continue;
			if (!__atomic_load_n(&w->e->servers[s->slot].up, __ATOMIC_RELAXED))
				continue;
			if (!ignore_eject && passive_ejected(w, s->slot))
				continue;
			ctx->usable[i >> 6] |= 1ull << (i & 63);
			any = 1;
		}
	}
	return any;
}

static uint64_t addr_hash(const struct sockaddr_storage *ss)
{
	const uint8_t *p;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t n, i;

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		p = s6->sin6_addr.s6_addr;
		n = 16;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			p += 12;
			n = 4;
		}
	} else {
		p = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	}
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static struct syn_conn *pool_take(struct syn_worker *w, uint32_t slot)
{
	struct syn_pool *pl = &w->pools[slot];
	struct syn_conn *u;

	while (pl->head != SYN_NONE) {
		u = conn_at(w, pl->head);
		pl->head = u->next;
		pl->count--;
		u->next = SYN_NONE;
		if (u->kind == CONN_UPSTREAM && !u->closing && u->state == CS_IDLE)
			return u;
	}
	return NULL;
}

static void pool_remove(struct syn_worker *w, struct syn_conn *u, uint32_t slot)
{
	struct syn_pool *pl = &w->pools[slot];
	uint32_t i = conn_index(w, u), *at = &pl->head;

	while (*at != SYN_NONE) {
		if (*at == i) {
			*at = u->next;
			pl->count--;
			u->next = SYN_NONE;
			return;
		}
		at = &w->conns[*at].next;
	}
}

/* Send the request head (and what we have of the body) on u. */
static void upstream_send_head(struct syn_worker *w, struct syn_conn *u)
{
	struct syn_conn *c = peer_of(w, u);
	const struct rt_upstream *up = &c->plan->upstreams[c->upstream];

	u->state = CS_SENDING;
	c->req_sent = 1;
	timer_set(w, u, TL_UPSTREAM, up->cfg.send_timeout_ms);
	send_out(w, u, c->tx, c->head_len, 0);
}

static void upstream_begin(struct syn_worker *w, struct syn_conn *c)
{
	const struct rt_upstream *up = &c->plan->upstreams[c->upstream];
	struct syn_lb_ctx ctx;
	struct syn_conn *u;
	int srv, fd;
	uint32_t slot;

	ctx.hash = addr_hash(&c->peer_addr);
	ctx.now_ms = w->now_ms;
	if (!usable_mask(w, up, c->tried, &ctx) ||
	    (srv = up->def->ops->pick((char *)c->plan->lb_state[w->id] + up->lb_state_off, &up->lb,
				      &ctx)) < 0) {
		w->stats->upstream_no_server[up->cfg.slot]++;
		respond_error(w, c, c->tries ? 502 : 503, !body_done(c));
		return;
	}
	if (c->server >= 0)
		server_active(w, c, -1);
	c->server = srv;
	tried_set(c->tried, srv);
	c->tries++;
	server_active(w, c, 1);
	slot = up->servers[srv].slot;
	w->stats->server_requests[slot][0]++; /* attempts; [1..5] by class on response */

	u = c->fresh_only ? NULL : pool_take(w, slot);
	c->fresh_only = 0;
	if (u) {
		u->peer = conn_index(w, c);
		c->peer = conn_index(w, u);
		u->reused = 1;
		u->upstream = c->upstream;
		u->server = srv;
		u->srv_slot = slot;
		u->pool_max = up->cfg.keepalive;
		u->idle_ms = c->plan->limits.keepalive_timeout_ms;
		u->head_req = c->head_req;
		u->up_start_us = w->now_us;
		timer_del(w, u);
		upstream_send_head(w, u);
		return;
	}
	fd = socket(up->servers[srv].sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || !(u = conn_new(w, fd, CONN_UPSTREAM))) {
		if (fd >= 0)
			close(fd);
		respond_error(w, c, 502, 1);
		return;
	}
	sock_setup(w, fd);
	w->stats->upstream_conns_opened[up->cfg.slot]++;
	u->peer = conn_index(w, c);
	c->peer = conn_index(w, u);
	u->upstream = c->upstream;
	u->server = srv;
	u->srv_slot = slot;
	u->pool_max = up->cfg.keepalive;
	u->idle_ms = c->plan->limits.keepalive_timeout_ms;
	u->head_req = c->head_req;
	u->state = CS_CONNECTING;
	u->up_start_us = w->now_us;
	timer_set(w, u, TL_UPSTREAM, up->cfg.connect_timeout_ms);
	w->io->connect(w, u, (const struct sockaddr *)&up->servers[srv].sa, up->servers[srv].salen);
}

void proxy_on_connect(struct syn_worker *w, struct syn_conn *u, int res)
{
	if (u->closing)
		return;
	if (res < 0) {
		upstream_fail(w, u, FAIL_CONNECT, 1);
		return;
	}
	if (!peer_of(w, u)) {
		conn_close(w, u);
		return;
	}
	upstream_send_head(w, u);
	w->io->recv(w, u);
}

/* Do we still hold the whole request, to send it again? */
static int request_resendable(const struct syn_conn *c)
{
	return c->body_mode == BODY_NONE || c->body_held || c->body_in_tx;
}

/* A request that cannot go on with server u: count the failure, then retry
 * on another server when allowed (PRODUCT.md section 5), else answer. */
static void upstream_fail(struct syn_worker *w, struct syn_conn *u, enum fail_reason why,
			  int retriable)
{
	struct syn_conn *c = peer_of(w, u);
	const struct rt_upstream *up;
	int idempotent, may_retry;

	if (!c) {
		conn_close(w, u);
		return;
	}
	up = &c->plan->upstreams[c->upstream];
	passive_fail(w, up, up->servers[c->server].slot, why);
	if (up->def->ops->done)
		up->def->ops->done((char *)c->plan->lb_state[w->id] + up->lb_state_off, &up->lb,
				   c->server, w->now_us - u->up_start_us, 1);
	unpair(w, u);
	conn_close(w, u);

	idempotent = c->method == SYN_M_GET || c->method == SYN_M_HEAD || c->method == SYN_M_PUT ||
		     c->method == SYN_M_DELETE || c->method == SYN_M_OPTIONS ||
		     c->method == SYN_M_TRACE;
	may_retry = retriable && !c->resp_started && request_resendable(c) &&
		    (why == FAIL_CONNECT || idempotent || !c->req_sent);
	if (may_retry && c->tries <= up->cfg.retries) {
		w->stats->upstream_retries[up->cfg.slot]++;
		c->body_held_sent = 0;
		upstream_begin(w, c);
		return;
	}
	if (c->resp_started) {
		conn_close(w, c);
		return;
	}
	respond_error(w, c, why == FAIL_TIMEOUT ? 504 : 502, !body_done(c));
}

/* After the head: body bytes from the client, as they come. */
static void upstream_send_body(struct syn_worker *w, struct syn_conn *u)
{
	struct syn_conn *c = peer_of(w, u);
	const struct rt_upstream *up = &c->plan->upstreams[c->upstream];

	if (c->body_held && !c->body_held_sent) {
		/* held for retries: sent, but not consumed until the response */
		c->body_held_sent = 1;
		send_out(w, u, rx_data(w, c), c->body_held, 0);
		return;
	}
	if (body_done(c)) {
		u->state = CS_RESP_HEAD;
		timer_set(w, u, TL_UPSTREAM, up->cfg.read_timeout_ms);
		return;
	}
	if (rx_len(c)) {
		long k = body_take(c, rx_data(w, c), rx_len(c));

		if (k < 0) {
			unpair(w, u);
			conn_close(w, u);
			respond_error(w, c, k == BODY_TOO_LARGE ? 413 : 400, 1);
			return;
		}
		if (c->body_mode == BODY_LENGTH)
			c->remaining -= (uint64_t)k;
		if (k > 0) {
			send_out(w, u, rx_data(w, c), (uint32_t)k, 1);
			return;
		}
	}
	c->state = CS_REQ_BODY;
	if (!splice_start(w, c))
		return;
	timer_set(w, c, TL_CLIENT_BODY, c->plan->limits.client_body_timeout_ms);
	if (c->rx_end == c->rx_cap)
		rx_compact(w, c);
	w->io->recv(w, c);
}

/* ---- responses ---------------------------------------------------------- */

/* A response of our own (an error, or 404): short body, counted, then the
 * connection goes on or closes. */
static void respond_error(struct syn_worker *w, struct syn_conn *c, int status, int close_after)
{
	struct outbuf o;
	char body[64];
	int blen;

	if (tx_take(w, c)) {
		conn_close(w, c);
		return;
	}
	if (close_after)
		c->keepalive = 0;
	c->status = (uint16_t)status;
	c->resp_started = 1;
	blen = snprintf(body, sizeof(body), "%d %s\n", status, syn_reason_phrase(status));
	o = (struct outbuf){c->tx, 0, c->tx_cap, 0};
	ob_str(&o, c->version ? "HTTP/1.1 " : "HTTP/1.0 ");
	ob_str(&o, body);
	o.len--; /* the body's newline: the status line ends in CRLF */
	ob_str(&o, "\r\nContent-Type: text/plain\r\nContent-Length: ");
	ob_u64(&o, (uint64_t)blen);
	ob_str(&o, c->keepalive ? (c->version ? "\r\n\r\n" : "\r\nConnection: keep-alive\r\n\r\n")
				: "\r\nConnection: close\r\n\r\n");
	if (!c->head_req)
		ob_put(&o, body, (size_t)blen);
	c->state = CS_RESPONDING;
	c->peer = SYN_NONE;
	c->resp_head_bytes = o.len - (c->head_req ? 0 : (uint32_t)blen);
	timer_del(w, c);
	client_send(w, c, c->tx, o.len, 0);
}

/* The response on u is complete: recycle or close u, finish the request. */
static void orphan_drain(struct syn_worker *w, struct syn_conn *u);

/* Back to the pool of its server, when there is room, or closed. */
static void pool_put(struct syn_worker *w, struct syn_conn *u)
{
	struct syn_pool *pl = &w->pools[u->srv_slot];

	if (pl->count >= u->pool_max || rx_len(u) || w->stopping || u->pipe_bytes) {
		conn_close(w, u);
		return;
	}
	u->state = CS_IDLE;
	u->reused = 0;
	u->orphan = 0;
	u->ms_stop = 0;
	u->next = pl->head;
	pl->head = conn_index(w, u);
	pl->count++;
	timer_set(w, u, TL_KEEPALIVE, u->idle_ms);
	if (!u->recving)
		w->io->recv(w, u); /* notices when the server closes it */
}

/* The client of u left while u's response was on its way: rather than
 * close a connection the server keeps alive, read the rest of a modest
 * response into the void and pool it (wrk's end, a browser's stop, ...). */
static void upstream_orphan(struct syn_worker *w, struct syn_conn *u)
{
	int small = u->state == CS_RESP_HEAD ||
		    (u->state == CS_RESP_BODY && !u->pipe_bytes && u->pipe < 0 &&
		     ((u->body_mode == BODY_LENGTH && u->remaining <= 256 * 1024) ||
		      u->body_mode == BODY_CHUNKED || u->body_mode == BODY_NONE));

	unpair(w, u);
	if (!small || u->sending || (u->state == CS_RESP_BODY && !u->keepalive)) {
		conn_close(w, u);
		return;
	}
	u->orphan = 1;
	u->decode = 0;
	orphan_drain(w, u);
}

/* An orphan's bytes: its response head, then its body, dropped. */
static void orphan_drain(struct syn_worker *w, struct syn_conn *u)
{
	if (u->state == CS_RESP_HEAD) {
		struct syn_h1_response resp;
		int rc = rx_len(u) ? syn_h1_parse_response(rx_data(w, u), rx_len(u), &resp)
				   : SYN_PARSE_AGAIN;

		if (rc == SYN_PARSE_AGAIN) {
			if (rx_room(w, u)) {
				conn_close(w, u);
				return;
			}
			if (!u->recving)
				w->io->recv(w, u);
			return;
		}
		if (rc < 0 || !(resp.h.flags & SYN_H1_F_KEEPALIVE) ||
		    (resp.h.flags & SYN_H1_F_CLOSE_BODY) || resp.status < 200) {
			conn_close(w, u);
			return;
		}
		rx_consume(w, u, (uint32_t)rc);
		u->state = CS_RESP_BODY;
		u->keepalive = 1;
		u->remaining = 0;
		if (u->head_req || (resp.h.flags & SYN_H1_F_NO_BODY)) {
			u->body_mode = BODY_NONE;
		} else if (resp.h.flags & SYN_H1_F_CHUNKED) {
			u->body_mode = BODY_CHUNKED;
			u->body_limit = 0;
			syn_h1_chunked_init(&u->ck);
		} else {
			u->body_mode = BODY_LENGTH;
			u->remaining = resp.h.content_length;
		}
	}
	if (rx_len(u)) {
		long k = body_take(u, rx_data(w, u), rx_len(u));

		if (k < 0) {
			conn_close(w, u);
			return;
		}
		if (u->body_mode == BODY_LENGTH)
			u->remaining -= (uint64_t)k;
		rx_consume(w, u, (uint32_t)k);
	}
	if (body_done(u) || u->body_mode == BODY_NONE) {
		pool_put(w, u);
		return;
	}
	if (u->remaining > 256 * 1024) {
		conn_close(w, u);
		return;
	}
	if (!u->recving)
		w->io->recv(w, u);
}

static void exchange_done(struct syn_worker *w, struct syn_conn *c, struct syn_conn *u,
			  int upstream_reusable)
{
	const struct rt_upstream *up = &c->plan->upstreams[c->upstream];
	uint32_t slot = up->servers[c->server].slot;
	uint64_t lat = w->now_us - u->up_start_us;
	struct syn_pool *pl = &w->pools[slot];

	if (up->def->ops->done)
		up->def->ops->done((char *)c->plan->lb_state[w->id] + up->lb_state_off, &up->lb,
				   c->server, lat, 0);
	syn_stats_observe(w->stats->upstream_hist[up->cfg.slot],
			  &w->stats->upstream_hist_count[up->cfg.slot],
			  &w->stats->upstream_hist_sum_us[up->cfg.slot], lat);
	unpair(w, u);
	(void)pl;
	if (upstream_reusable)
		pool_put(w, u);
	else
		conn_close(w, u);
}

/* The request on c is answered: count it, then read the next one or close. */
static void client_finish(struct syn_worker *w, struct syn_conn *c)
{
	request_done(w, c);
	if (c->statik) {
		syn_static_done(w, c);
		c->statik = 0;
		if (c->file_fd >= 0) {
			close(c->file_fd);
			c->file_fd = -1;
		}
		c->file_left = 0;
	}
	syn_alog_request(w, c);
	if (c->body_held) { /* answered before the response took it */
		rx_consume(w, c, c->body_held);
		c->body_held = 0;
	}
	if (!body_done(c))
		c->keepalive = 0; /* the rest of the body is unread */
	if (c->server >= 0)
		server_active(w, c, -1);
	c->server = -1;
	c->upstream = SYN_NONE;
	c->site = SYN_NONE;
	tx_put(w, c);
	plan_unref(w, c);
	if (!c->keepalive || w->stopping) {
		conn_close(w, c);
		return;
	}
	client_next(w, c);
}

/* Ready for the next request on a kept-alive client connection. */
static void client_next(struct syn_worker *w, struct syn_conn *c)
{
	c->state = CS_IDLE;
	c->status = 0;
	c->body_mode = BODY_NONE;
	c->start_us = w->now_us;
	c->ms_stop = 0; /* heads may be received multishot again */
	timer_set(w, c, TL_KEEPALIVE, w->plan->limits.keepalive_timeout_ms);
	if (rx_len(c)) {
		client_parse(w, c); /* pipelined */
		return;
	}
	if (!c->recving)
		w->io->recv(w, c);
}

static void response_head(struct syn_worker *w, struct syn_conn *u, struct syn_conn *c)
{
	const struct rt_upstream *up = &c->plan->upstreams[c->upstream];
	struct syn_h1_response resp;
	const char *buf = rx_data(w, u);
	uint32_t slot = up->servers[c->server].slot, hl;
	int rc, chunked_out;

	rc = syn_h1_parse_response(buf, rx_len(u), &resp);
	if (rc == SYN_PARSE_AGAIN) {
		if (rx_room(w, u)) {
			upstream_fail(w, u, FAIL_RESET, 0);
			return;
		}
		w->io->recv(w, u);
		return;
	}
	if (rc == SYN_PARSE_ERR) {
		upstream_fail(w, u, FAIL_RESET, 0);
		return;
	}
	if (resp.status == 101 && !c->upgrade_req) {
		upstream_fail(w, u, FAIL_RESET, 0); /* switching to what nobody asked for */
		return;
	}
	if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
		/* interim: we answered 100-continue ourselves; drop and go on */
		rx_consume(w, u, (uint32_t)rc);
		if (rx_len(u))
			response_head(w, u, c);
		else
			w->io->recv(w, u);
		return;
	}
	rx_consume(w, u, (uint32_t)rc);
	if (c->body_held) { /* no retry from here: release what we held */
		uint32_t held = c->body_held;

		c->body_held = 0;
		rx_consume(w, c, held);
	}
	c->resp_started = 1;
	c->status = resp.status;
	w->stats->server_requests[slot][status_class(resp.status)]++;
	if (resp.status == 502 || resp.status == 503 || resp.status == 504)
		passive_fail(w, up, slot, FAIL_5XX);

	u->keepalive = (resp.h.flags & SYN_H1_F_KEEPALIVE) && !(resp.h.flags & SYN_H1_F_CLOSE_BODY);
	u->remaining = 0;
	if (c->head_req || (resp.h.flags & SYN_H1_F_NO_BODY)) {
		u->body_mode = BODY_NONE;
	} else if (resp.h.flags & SYN_H1_F_CHUNKED) {
		u->body_mode = BODY_CHUNKED;
		syn_h1_chunked_init(&u->ck);
		u->body_limit = 0;
	} else if (resp.h.flags & SYN_H1_F_LENGTH) {
		u->body_mode = resp.h.content_length ? BODY_LENGTH : BODY_NONE;
		u->remaining = resp.h.content_length;
	} else {
		u->body_mode = BODY_CLOSE;
	}
	splice_soon(w, u, c);
	/* an HTTP/1.0 client gets chunked bodies as they are only if it can
	 * tell where they end: close instead of keep-alive */
	chunked_out = u->body_mode == BODY_CHUNKED && c->version;
	u->decode = u->body_mode == BODY_CHUNKED && !c->version;
	u->eof = 0;
	if (u->body_mode == BODY_CLOSE || (u->body_mode == BODY_CHUNKED && !c->version))
		c->keepalive = 0;
	if (!body_done(c))
		c->keepalive = 0; /* the client is still sending: we stop reading */

	hl = build_response_head(c, buf, &resp, c->tx, chunked_out);
	if (!hl && !tx_grow(w, c))
		hl = build_response_head(c, buf, &resp, c->tx, chunked_out);
	if (!hl) {
		upstream_fail(w, u, FAIL_RESET, 0);
		return;
	}
	c->resp_head_bytes = hl;
	/* what came of the body with the head goes in the same send, when it
	 * fits: one operation and one segment for a small response */
	if (!u->decode && resp.status != 101 && u->body_mode != BODY_NONE && rx_len(u) &&
	    hl + rx_len(u) <= c->tx_cap) {
		long k = body_take(u, rx_data(w, u), rx_len(u));

		if (k < 0) {
			upstream_fail(w, u, FAIL_RESET, 0);
			return;
		}
		if (u->body_mode == BODY_LENGTH)
			u->remaining -= (uint64_t)k;
		memcpy(c->tx + hl, rx_data(w, u), (size_t)k);
		rx_consume(w, u, (uint32_t)k);
		hl += (uint32_t)k;
	}
	u->state = CS_RESP_BODY;
	c->state = CS_RESPONDING;
	if (resp.status == 101) {
		c->upgrade_req = 2; /* the tunnel starts once this head is out */
		u->state = CS_TUNNEL;
		timer_del(w, u);
		client_send(w, c, c->tx, hl, 0);
		return;
	}
	u->plan_read_timeout_ms = up->cfg.read_timeout_ms;
	timer_set(w, u, TL_UPSTREAM, up->cfg.read_timeout_ms);
	client_send(w, c, c->tx, hl, 0);
}

/* ---- splice relay ---------------------------------------------------------- */

/* Can the rest of s's body go socket -> pipe -> socket, never through user
 * space?  Large enough, nothing of it buffered, an engine that can. */
static int splice_ready(struct syn_worker *w, const struct syn_conn *s)
{
	const struct syn_conn *d = s->peer != SYN_NONE ? conn_at(w, s->peer) : NULL;

	if (!w->io->splice || rx_len(s) || s->recving || s->rx_bid >= 0)
		return 0;
	if (s->tls || (d && d->tls)) /* bytes to or from TLS go through OpenSSL */
		return 0;
	if (s->body_mode == BODY_LENGTH)
		return s->remaining >= SYN_SPLICE_MIN;
	return s->body_mode == BODY_CLOSE && s->kind == CONN_UPSTREAM;
}

static void splice_in(struct syn_worker *w, struct syn_conn *s)
{
	uint64_t want = s->body_mode == BODY_LENGTH ? s->remaining : SYN_PIPE_SIZE;
	uint32_t len = want < SYN_PIPE_SIZE ? (uint32_t)want : SYN_PIPE_SIZE;

	if (s->body_mode == BODY_TUNNEL)
		timer_del(w, s); /* a tunnel may idle as long as its peers like */
	else if (s->kind == CONN_UPSTREAM)
		timer_set(w, s, TL_UPSTREAM, s->plan_read_timeout_ms);
	else
		timer_set(w, s, TL_CLIENT_BODY, s->plan->limits.client_body_timeout_ms);
	w->io->splice(w, s, s->fd, NULL, w->pipes[s->pipe][1], len, s->fd, POLLIN, 1);
}

static void splice_out(struct syn_worker *w, struct syn_conn *s, struct syn_conn *d)
{
	w->io->splice(w, d, w->pipes[s->pipe][0], NULL, d->fd, s->pipe_bytes, d->fd, POLLOUT, 2);
}

/* Splicing wants both sockets non-blocking (the worker must never wait in
 * splice(2)); the rest of the time they are blocking, as io_uring prefers. */
static void set_nonblock(struct syn_conn *c, int on)
{
	if (c->nonblock == on)
		return;
	/* our sockets carry no other status flag F_SETFL can change (O_APPEND,
	 * O_ASYNC, O_DIRECT, O_NOATIME), so no F_GETFL first: one call a switch */
	if (!fcntl(c->fd, F_SETFL, on ? O_NONBLOCK : 0))
		c->nonblock = (uint8_t)on;
}

/* Are s's bytes all for a splice to take?  Not while a receive of the
 * engine's own may take them, or holds some it took: those are received
 * (copied) first, and the splice is tried again after them. */
static int rx_quiet(struct syn_worker *w, struct syn_conn *s)
{
	return !w->io->rx_quiet || w->io->rx_quiet(w, s);
}

/* s's head says a body follows that will be spliced (to d, when known): the
 * engine's own receive on s is stopped now, so that it takes as little of
 * the body as it can into buffers (which are then copied) before the splice
 * starts. */
static void splice_soon(struct syn_worker *w, struct syn_conn *s, const struct syn_conn *d)
{
	if (!w->io->splice || !w->io->rx_quiet || s->tls || (d && d->tls))
		return;
	if ((s->body_mode == BODY_LENGTH && s->remaining >= SYN_SPLICE_MIN) ||
	    (s->body_mode == BODY_CLOSE && s->kind == CONN_UPSTREAM))
		w->io->rx_quiet(w, s);
}

/* Start relaying s's body to its peer by splice; 0, or -1 to copy instead. */
static int splice_start(struct syn_worker *w, struct syn_conn *s)
{
	if (!splice_ready(w, s) || !rx_quiet(w, s))
		return -1;
	if (s->pipe < 0 && (s->pipe = pipe_get(w)) < 0)
		return -1;
	set_nonblock(s, 1);
	set_nonblock(peer_of(w, s), 1);
	splice_in(w, s);
	return 0;
}

static void upstream_send_body(struct syn_worker *w, struct syn_conn *u);
static void relay_body(struct syn_worker *w, struct syn_conn *c, struct syn_conn *u);

static void splice_abort(struct syn_worker *w, struct syn_conn *a, struct syn_conn *b)
{
	if (b) {
		unpair(w, a);
		conn_close(w, b);
	}
	conn_close(w, a);
}

/* ---- tunnels (Upgrade, after a 101) -------------------------------------- */

/* One direction of a tunnel, from s to d: what s has buffered goes first
 * (copied), then everything else by splice until s closes its side. */
static void tunnel_pump(struct syn_worker *w, struct syn_conn *s, struct syn_conn *d)
{
	if (rx_len(s)) {
		send_out(w, d, rx_data(w, s), rx_len(s), 1);
		return;
	}
	if (s->eof)
		return;
	if (s->tls || d->tls) { /* copied: received, then sent */
		if (!s->recving)
			w->io->recv(w, s);
		return;
	}
	if (!rx_quiet(w, s)) {
		if (!s->recving)
			w->io->recv(w, s);
		return;
	}
	if (s->pipe < 0 && (s->pipe = pipe_get(w)) < 0) {
		splice_abort(w, s, d);
		return;
	}
	splice_in(w, s);
}

/* s closed its side: pass the half-close on; when both have, it is over. */
static void tunnel_eof(struct syn_worker *w, struct syn_conn *s, struct syn_conn *d)
{
	s->eof = 1;
	if (d->tls || d->ktls)
		syn_tls_close_notify(d);
	shutdown(d->fd, SHUT_WR);
	if (d->eof) {
		struct syn_conn *c = s->kind == CONN_CLIENT ? s : d;
		struct syn_conn *u = s->kind == CONN_CLIENT ? d : s;

		unpair(w, u);
		conn_close(w, u);
		c->keepalive = 0;
		client_finish(w, c);
	}
}

static void tunnel_start(struct syn_worker *w, struct syn_conn *c, struct syn_conn *u)
{
	if (!c->tls) { /* spliced both ways */
		set_nonblock(c, 1);
		set_nonblock(u, 1);
	}
	c->state = u->state = CS_TUNNEL;
	c->body_mode = u->body_mode = BODY_TUNNEL;
	c->eof = u->eof = 0;
	timer_del(w, c);
	timer_del(w, u);
	tunnel_pump(w, c, u);
	tunnel_pump(w, u, c);
}

void proxy_on_splice(struct syn_worker *w, struct syn_conn *c, int res, int dir)
{
	struct syn_conn *p = peer_of(w, c);

	if (c->closing)
		return;
	if (c->file_fd >= 0) {
		static_on_splice(w, c, res, dir);
		return;
	}
	if (!p || c->state == CS_CLOSING) {
		conn_close(w, c);
		return;
	}
	if (dir == 1) { /* c is the source: bytes came into the pipe */
		if (res == -EAGAIN) {
			splice_in(w, c);
			return;
		}
		if (res == 0 && c->body_mode == BODY_CLOSE) {
			c->eof = 1;
			timer_del(w, c);
			pipe_release(w, c, 1);
			set_nonblock(p, 0);
			relay_body(w, p, c);
			return;
		}
		if (res == 0 && c->body_mode == BODY_TUNNEL) {
			tunnel_eof(w, c, p);
			return;
		}
		if (res <= 0) { /* cut short, or reset */
			splice_abort(w, c, p);
			return;
		}
		c->pipe_bytes += (uint32_t)res;
		if (c->body_mode == BODY_LENGTH)
			c->remaining -= (uint64_t)res;
		if (c->kind == CONN_CLIENT)
			w->stats->listener_rx_bytes[c->listener_slot] += (uint64_t)res;
		splice_out(w, c, p);
		return;
	}
	/* c is the destination: bytes left the pipe; p is the source */
	if (res == -EAGAIN) {
		splice_out(w, p, c);
		return;
	}
	if (res <= 0) {
		splice_abort(w, c, p);
		return;
	}
	p->pipe_bytes -= (uint32_t)res;
	if (c->kind == CONN_CLIENT) {
		w->stats->listener_tx_bytes[c->listener_slot] += (uint64_t)res;
		c->bytes_out += (uint64_t)res;
	}
	if (p->pipe_bytes) {
		splice_out(w, p, c);
		return;
	}
	if (!body_done(p) || p->body_mode == BODY_CLOSE || p->body_mode == BODY_TUNNEL) {
		splice_in(w, p);
		return;
	}
	timer_del(w, p);
	pipe_release(w, p, 1);
	set_nonblock(p, 0);
	set_nonblock(c, 0);
	if (p->kind == CONN_UPSTREAM)
		relay_body(w, c, p); /* the response body is through */
	else
		upstream_send_body(w, c); /* the request body is through */
}

/* Relay the next piece of the response body from u to c. */
static void relay_body(struct syn_worker *w, struct syn_conn *c, struct syn_conn *u)
{
	uint32_t n = rx_len(u);

	if (u->body_mode == BODY_NONE || (n == 0 && body_done(u))) {
		if (u->body_mode == BODY_CLOSE) {
			unpair(w, u);
			conn_close(w, u);
			client_finish(w, c);
			return;
		}
		exchange_done(w, c, u, u->keepalive && body_done(c));
		client_finish(w, c);
		return;
	}
	while (n && u->decode) {
		/* an HTTP/1.0 client: the chunk data only, framing dropped */
		int data;
		long k = syn_h1_chunked_parse(&u->ck, rx_data(w, u), n, &data);

		if (k < 0)
			break; /* bad framing: body_take below says so */
		if (k == 0)
			break;
		if (data) {
			client_send(w, c, rx_data(w, u), (uint32_t)k, 1);
			return;
		}
		rx_consume(w, u, (uint32_t)k);
		n = rx_len(u);
		if (!n && body_done(u)) {
			relay_body(w, c, u);
			return;
		}
	}
	if (n) {
		long k = body_take(u, rx_data(w, u), n);

		if (k < 0) {
			passive_fail(w, &c->plan->upstreams[c->upstream],
				     c->plan->upstreams[c->upstream].servers[c->server].slot,
				     FAIL_RESET);
			unpair(w, u);
			conn_close(w, u);
			conn_close(w, c);
			return;
		}
		if (u->body_mode == BODY_LENGTH)
			u->remaining -= (uint64_t)k;
		if (k > 0) {
			client_send(w, c, rx_data(w, u), (uint32_t)k, 1);
			return;
		}
	}
	if (!splice_start(w, u))
		return;
	if (u->rx_end == u->rx_cap)
		rx_compact(w, u);
	if (!u->recving)
		w->io->recv(w, u);
}

/* ---- completions -------------------------------------------------------- */

static int rx_accept(struct syn_worker *w, struct syn_conn *c, int res, int32_t bid)
{
	if (bid >= 0) {
		if (c->rx_bid < 0) {
			rx_hold(w, c, bid, (uint32_t)res);
		} else {
			/* a picked buffer while one is held: append, give it back */
			char *dst = c->rx_ptr;

			rx_compact(w, c);
			if (c->rx_end + (uint32_t)res > c->rx_cap) {
				w->io->buf_release(w, bid);
				return -1;
			}
			memcpy(dst + c->rx_end, w->io->buf(w, bid), (size_t)res);
			c->rx_end += (uint32_t)res;
			w->io->buf_release(w, bid);
		}
	} else {
		c->rx_end += (uint32_t)res;
	}
	return 0;
}

void proxy_on_recv(struct syn_worker *w, struct syn_conn *c, int res, int32_t bid)
{
	struct syn_conn *p;

	if (c->closing) {
		if (bid >= 0)
			w->io->buf_release(w, bid);
		return;
	}
	if (res == -EAGAIN) { /* a non-blocking socket had nothing after all */
		w->io->recv(w, c);
		return;
	}
	if (res == -ENOBUFS) {
		/* the pool grows on the way; at its cap, shed this connection
		 * rather than spin */
		w->stats->io_ops[6]++;
		if (++c->nobufs > 16) {
			w->stats->io_ops[7]++;
			struct syn_conn *p2 = peer_of(w, c);

			if (p2) {
				unpair(w, c);
				conn_close(w, p2);
			}
			conn_close(w, c);
			return;
		}
		w->io->recv(w, c);
		return;
	}
	c->nobufs = 0;
	if (c->state == CS_TUNNEL) { /* a tunnel that copies: TLS on one side */
		p = peer_of(w, c);
		if (res <= 0) {
			if (bid >= 0)
				w->io->buf_release(w, bid);
			if (p)
				tunnel_eof(w, c, p);
			else
				conn_close(w, c);
			return;
		}
		if (rx_accept(w, c, res, bid) || !p) {
			splice_abort(w, c, p);
			return;
		}
		if (c->kind == CONN_CLIENT)
			w->stats->listener_rx_bytes[c->listener_slot] += (uint64_t)res;
		if (!p->sending)
			tunnel_pump(w, c, p);
		return;
	}
	if (res <= 0) {
		if (bid >= 0)
			w->io->buf_release(w, bid);
		if (c->kind == CONN_UPSTREAM) {
			p = peer_of(w, c);
			c->eof = 1;
			if (!p) {
				if (c->state == CS_IDLE)
					pool_remove(w, c, c->srv_slot);
				conn_close(w, c);
				return;
			}
			if (c->state == CS_RESP_BODY && c->body_mode == BODY_CLOSE) {
				relay_body(w, p, c);
				return;
			}
			if (c->state == CS_RESP_BODY) { /* cut short: nothing to tell */
				unpair(w, c);
				conn_close(w, c);
				conn_close(w, p);
				return;
			}
			/* closed or reset before any response byte: a reused
			 * connection gets one more try on a fresh one */
			if (c->reused && !rx_len(c) && !p->stale_retried && request_resendable(p)) {
				const struct rt_upstream *up = &p->plan->upstreams[p->upstream];

				p->tried[p->server >> 6] &= ~(1ull << (p->server & 63));
				p->tries--;
				p->stale_retried = 1;
				p->fresh_only = 1;
				p->body_held_sent = 0;
				unpair(w, c);
				conn_close(w, c);
				w->stats->upstream_retries[up->cfg.slot]++;
				upstream_begin(w, p);
				return;
			}
			upstream_fail(w, c, FAIL_RESET, 1);
			return;
		}
		/* client gone */
		p = peer_of(w, c);
		if (p)
			upstream_orphan(w, p);
		conn_close(w, c);
		return;
	}
	if (rx_accept(w, c, res, bid)) {
		if (c->kind == CONN_CLIENT)
			respond_error(w, c, 431, 1);
		else
			upstream_fail(w, c, FAIL_RESET, 0);
		return;
	}
	if (c->kind == CONN_CLIENT) {
		w->stats->listener_rx_bytes[c->listener_slot] += (uint64_t)res;
		if (c->state == CS_IDLE || c->state == CS_HEAD) {
			client_parse(w, c);
		} else if (c->state == CS_REQ_BODY && (p = peer_of(w, c)) && !p->sending) {
			timer_del(w, c);
			upstream_send_body(w, p);
		}
		return;
	}
	/* upstream */
	p = peer_of(w, c);
	if (!p && c->orphan) {
		orphan_drain(w, c);
		return;
	}
	if (!p) { /* data on an idle pooled connection: not HTTP we can use */
		if (c->state == CS_IDLE)
			pool_remove(w, c, c->srv_slot);
		conn_close(w, c);
		return;
	}
	if (c->state == CS_RESP_HEAD || c->state == CS_SENDING) {
		if (c->sending) /* early response while the request goes out: wait */
			return;
		response_head(w, c, p);
	} else if (c->state == CS_RESP_BODY && !p->sending) {
		relay_body(w, p, c);
	}
}

void proxy_on_send(struct syn_worker *w, struct syn_conn *c, int res)
{
	struct syn_conn *p = peer_of(w, c);

	if (c->closing)
		return;
	if (res == -EAGAIN) { /* a non-blocking socket (splicing, tunnels) was full */
		w->io->send(w, c);
		return;
	}
	if (res < 0) {
		if (c->kind == CONN_UPSTREAM) {
			upstream_fail(w, c, FAIL_RESET, 1);
			return;
		}
		if (p) { /* the client left: what was going out of p's buffer is done with */
			if (c->out_release_rx)
				rx_consume(w, p, c->out_len);
			upstream_orphan(w, p);
		}
		conn_close(w, c);
		return;
	}
	if ((uint32_t)res < c->out_len) {
		c->out += res;
		c->out_len -= (uint32_t)res;
		if (c->kind == CONN_CLIENT)
			w->stats->listener_tx_bytes[c->listener_slot] += (uint64_t)res;
		if (c->out_release_rx && p)
			rx_consume(w, p, (uint32_t)res);
		w->io->send(w, c);
		return;
	}
	if (c->out_release_rx && p)
		rx_consume(w, p, (uint32_t)res);
	if (c->state == CS_TUNNEL) {
		if (c->kind == CONN_CLIENT)
			w->stats->listener_tx_bytes[c->listener_slot] += (uint64_t)res;
		if (p)
			tunnel_pump(w, p, c);
		else
			conn_close(w, c);
		return;
	}
	if (c->kind == CONN_UPSTREAM) {
		if (!p) {
			conn_close(w, c);
			return;
		}
		if (c->state == CS_RESP_BODY || c->state == CS_RESP_HEAD) {
			/* the response came early; the request is no longer wanted */
			if (c->state == CS_RESP_HEAD && rx_len(c))
				response_head(w, c, p);
			return;
		}
		upstream_send_body(w, c);
		if (c->state == CS_RESP_HEAD && rx_len(c) && !c->sending)
			response_head(w, c, p);
		return;
	}

	/* client */
	w->stats->listener_tx_bytes[c->listener_slot] += (uint64_t)res;
	c->bytes_out += (uint64_t)res;
	if (c->queued) { /* a response waited for the 100 Continue */
		const char *q = c->queued;

		c->queued = NULL;
		send_out(w, c, q, c->queued_len, c->out_release_rx);
		return;
	}
	if (c->state == CS_RESPONDING && !p) { /* our own response went out */
		if (c->file_left) {
			static_next(w, c);
			return;
		}
		client_finish(w, c);
		return;
	}
	if (c->state == CS_RESPONDING && p && c->upgrade_req == 2) {
		c->upgrade_req = 0;
		tunnel_start(w, c, p);
		return;
	}
	if (c->state == CS_RESPONDING && p) {
		relay_body(w, c, p);
		return;
	}
	/* a 100 Continue went out: nothing more to do here */
}

/* ---- timers ------------------------------------------------------------- */

static void on_timeout(struct syn_worker *w, struct syn_conn *c, enum timer_list l)
{
	struct syn_conn *p;

	switch (l) {
	case TL_CLIENT_HEAD:
		if (c->state == CS_HEAD && !c->sending) {
			respond_error(w, c, 408, 1);
		} else {
			conn_close(w, c);
		}
		break;
	case TL_CLIENT_BODY:
		p = peer_of(w, c);
		if (p) {
			unpair(w, c);
			conn_close(w, p);
		}
		if (c->sending || c->resp_started)
			conn_close(w, c);
		else
			respond_error(w, c, 408, 1);
		break;
	case TL_KEEPALIVE:
		if (c->kind == CONN_UPSTREAM && c->state == CS_IDLE)
			pool_remove(w, c, c->srv_slot);
		conn_close(w, c);
		break;
	case TL_UPSTREAM:
		p = peer_of(w, c);
		if (!p || c->state == CS_RESP_BODY) {
			if (p) {
				unpair(w, c);
				conn_close(w, p);
			}
			conn_close(w, c);
			break;
		}
		upstream_fail(w, c, FAIL_TIMEOUT, c->state == CS_CONNECTING);
		break;
	default:
		break;
	}
}

void proxy_timers(struct syn_worker *w)
{
	int l;

	for (l = 1; l < TL__COUNT; l++) {
		while (w->thead[l] != SYN_NONE) {
			struct syn_conn *c = conn_at(w, w->thead[l]);

			if (c->deadline > w->now_ms)
				break;
			timer_del(w, c);
			on_timeout(w, c, (enum timer_list)l);
		}
	}
}

/* ---- plans and workers -------------------------------------------------- */

/* Start using plan rp for new requests: listeners it adds are accepted on,
 * those it drops are cancelled, pooled connections to servers it dropped
 * are closed.  Requests in flight keep their own plan. */
void proxy_adopt_plan(struct syn_worker *w, struct rt_plan *rp)
{
	static const uint8_t keep_slot_none = 0;
	uint8_t keep[SYN_MAX_SERVERS];
	struct rt_plan *old = w->plan;
	uint32_t i, j;

	if (!rp->lb_state[w->id] && rp->lb_state_size) {
		char *st = calloc(1, rp->lb_state_size);

		if (!st)
			return; /* try again on the next loop */
		w->stats->heap_allocs++;
		for (i = 0; i < rp->nupstreams; i++) {
			const struct rt_upstream *u = &rp->upstreams[i];

			u->def->init(st + u->lb_state_off, &u->lb, (uint32_t)(w->id * 7919u + i));
		}
		rp->lb_state[w->id] = st;
	}
	w->plan = rp;
	if (old)
		atomic_store_explicit(&old->left[w->id], 1, memory_order_release);
	syn_static_sweep(w, rp); /* files held for the old plan's roots are let go */

	for (i = 0; i < w->naccepts; i++)
		w->accepts[i].wanted = 0;
	for (i = 0; i < rp->nlisteners; i++) {
		const struct rt_listener *l = &rp->listeners[i];

		for (j = 0; j < w->naccepts; j++)
			if (w->accepts[j].ino == l->ino && w->accepts[j].fd_live)
				break;
		if (j == w->naccepts) {
			/* reuse a slot whose accept has ended, or take a new one */
			for (j = 0; j < w->naccepts; j++)
				if (!w->accepts[j].wanted && !w->accepts[j].armed &&
				    !w->accepts[j].fd_live)
					break;
			if (j == w->naccepts) {
				if (w->naccepts == sizeof(w->accepts) / sizeof(w->accepts[0]))
					continue;
				w->naccepts++;
			}
			w->accepts[j].fd = l->cfg.fd;
			w->accepts[j].ino = l->ino;
			w->accepts[j].armed = 0;
		}
		if (!w->accepts[j].armed)
			w->accepts[j].fd = l->cfg.fd; /* re-armed on this plan's dup */
		w->accepts[j].fd_live = 1;
		w->accepts[j].wanted = 1;
		w->accepts[j].slot = l->cfg.slot;
		w->accepts[j].bit = l->cfg.bit;
	}
	for (i = 0; i < w->naccepts; i++)
		if (!w->accepts[i].wanted)
			w->accepts[i].fd_live = 0;
	uring_sync_accepts(w);

	(void)keep_slot_none;
	memset(keep, 0, sizeof(keep));
	for (i = 0; i < rp->nupstreams; i++)
		for (j = 0; j < rp->upstreams[i].cfg.nservers; j++)
			keep[rp->upstreams[i].servers[j].slot] = 1;
	for (i = 0; i < SYN_MAX_SERVERS; i++) {
		struct syn_conn *u;

		if (keep[i])
			continue;
		while ((u = pool_take(w, i)))
			conn_close(w, u);
	}
}

int proxy_worker_init(struct syn_worker *w)
{
	uint32_t i, n = w->e->cfg.max_connections * 2 + 64;

	w->conns = calloc(n, sizeof(*w->conns));
	if (!w->conns)
		return -ENOMEM;
	w->nconns = n;
	w->max_clients = w->e->cfg.max_connections;
	if (syn_alog_init(w))
		return -ENOMEM;
	w->files = syn_static_init();
	if (!w->files)
		return -ENOMEM;
	/* slots are taken in order from conn_hwm, then from the free list:
	 * the pages of slots never used are never touched */
	w->free_head = SYN_NONE;
	w->conn_hwm = 0;
	for (i = 0; i < TL__COUNT; i++)
		w->thead[i] = w->ttail[i] = SYN_NONE;
	for (i = 0; i < SYN_MAX_SERVERS; i++) {
		w->pools[i].head = SYN_NONE;
		w->pools[i].count = 0;
	}
	return 0;
}

void proxy_worker_fini(struct syn_worker *w)
{
	uint32_t i;

	for (i = 0; w->conns && i < w->conn_hwm; i++)
		if (w->conns[i].kind != CONN_FREE)
			close(w->conns[i].fd);
	free(w->conns);
	w->conns = NULL;
	syn_alog_fini(w);
	syn_static_fini(w->files);
	w->files = NULL;
	/* tx slabs were carved from chunks whose first slab address we do
	 * not keep apart; they live until the process ends (one set per
	 * worker, made while warming up) */
	free(w->tx_free);
	w->tx_free = NULL;
}

/* No request in flight on this worker. */
int proxy_idle(struct syn_worker *w)
{
	uint32_t i;

	for (i = 0; i < w->conn_hwm; i++) {
		const struct syn_conn *c = &w->conns[i];

		if (c->kind == CONN_CLIENT && c->state != CS_IDLE && c->state != CS_CLOSING)
			return 0;
	}
	return 1;
}

/* Stopping: close connections that carry no request. */
void proxy_close_idle(struct syn_worker *w)
{
	uint32_t i;

	for (i = 0; i < w->conn_hwm; i++) {
		struct syn_conn *c = &w->conns[i];

		if (c->kind != CONN_FREE && c->state == CS_IDLE && !c->closing) {
			if (c->kind == CONN_UPSTREAM)
				pool_remove(w, c, c->srv_slot);
			conn_close(w, c);
		}
	}
}
