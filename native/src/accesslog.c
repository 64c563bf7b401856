/* native/src/accesslog.c - the access log, written by the workers.
 *
 * What a line needs from the request (request line, Referer, User-Agent)
 * is copied at parse time into the tail of the request's tx slab, since
 * the receive buffer is gone by the time the response ends.  Lines are
 * formatted into one of two per-worker buffers and written with io_uring
 * (O_APPEND, no offset), one write in flight at a time: a request never
 * waits for the log.  When both buffers are full the line is dropped and
 * counted, rather than blocking.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

#define ALOG_BUF  (64 * 1024)
#define ALOG_LINE 2048

/* Copy src into dst (at most cap - 1), escaping '"' and '\' and replacing
 * control octets, so a line stays one line and valid JSON. */
static size_t alog_esc(char *dst, size_t cap, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < n && o + 7 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			memcpy(dst + o, "\\u00", 4);
			dst[o + 4] = hex[ch >> 4];
			dst[o + 5] = hex[ch & 15];
			o += 6;
		} else {
			dst[o++] = (char)ch;
		}
	}
	dst[o] = 0;
	return o;
}

/* Captured strings live at the tail of c->tx: request line, referer, UA,
 * each NUL-terminated and escaped. */
void syn_alog_capture(struct syn_conn *c, const char *buf, const struct syn_h1_request *req)
{
	char *t = c->tx + c->tx_cap;
	size_t cap = SYN_TX_SIZE - SYN_TX_HEAD_MAX, n = 0, line;
	const struct syn_h1_header *ref = syn_h1_find(&req->h, SYN_HDR_REFERER);
	const struct syn_h1_header *ua = syn_h1_find(&req->h, SYN_HDR_USER_AGENT);
	char reqline[600];
	int k;

	k = snprintf(reqline, sizeof(reqline), "%.*s %.*s HTTP/1.%d", req->method_name.len,
		     buf + req->method_name.off, req->target.len > 500 ? 500 : req->target.len,
		     buf + req->target.off, req->h.version);
	line = k > 0 ? (size_t)k : 0;
	n += alog_esc(t + n, cap / 2, reqline,
		      line < sizeof(reqline) ? line : sizeof(reqline) - 1) +
	     1;
	n += alog_esc(t + n, cap / 4, ref ? buf + ref->value.off : "-", ref ? ref->value.len : 1) +
	     1;
	alog_esc(t + n, cap - n, ua ? buf + ua->value.off : "-", ua ? ua->value.len : 1);
	c->alog_captured = 1;
}

static const char *alog_time(struct syn_worker *w, int iso)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != w->alog_time_s || iso != w->alog_time_iso) {
		gmtime_r(&now, &tm);
		strftime(w->alog_time, sizeof(w->alog_time),
			 iso ? "%Y-%m-%dT%H:%M:%SZ" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
		w->alog_time_s = now;
		w->alog_time_iso = (uint8_t)iso;
	}
	return w->alog_time;
}

/* One line for the request that just ended on c. */
void syn_alog_request(struct syn_worker *w, struct syn_conn *c)
{
	const struct rt_plan *rp = c->plan;
	const char *reqline = "-", *ref = "-", *ua = "-";
	char ip[INET6_ADDRSTRLEN], *dst;
	uint64_t us = w->now_us > c->start_us ? w->now_us - c->start_us : 0;
	uint64_t body = c->bytes_out > c->resp_head_bytes ? c->bytes_out - c->resp_head_bytes : 0;
	int n;

	if (!rp || rp->access_log_fd < 0)
		return;
	if (c->alog_captured && c->tx) {
		reqline = c->tx + c->tx_cap;
		ref = reqline + strlen(reqline) + 1;
		ua = ref + strlen(ref) + 1;
	}
	if (w->alog_len[w->alog_cur] + ALOG_LINE > ALOG_BUF) {
		if (w->alog_busy) {
			w->alog_dropped++;
			return;
		}
		syn_alog_flush(w);
	}
	syn_format_ip(&c->peer_addr, ip, sizeof(ip));
	dst = w->alog_buf[w->alog_cur] + w->alog_len[w->alog_cur];
	if (rp->access_log_json)
		n = snprintf(dst, ALOG_LINE,
			     "{\"time\":\"%s\",\"client\":\"%s\",\"request\":\"%s\",\"status\":%u,"
			     "\"bytes\":%llu,\"duration_ms\":%.3f,\"referer\":\"%s\","
			     "\"user_agent\":\"%s\",\"site\":\"%s\",\"upstream\":\"%s\"}\n",
			     alog_time(w, 1), ip, reqline, c->status, (unsigned long long)body,
			     (double)us / 1000.0, ref, ua,
			     c->site != SYN_NONE ? rp->sites[c->site].cfg.name : "",
			     c->upstream != SYN_NONE ? rp->upstreams[c->upstream].cfg.name : "");
	else
		n = snprintf(dst, ALOG_LINE, "%s - - [%s] \"%s\" %u %llu \"%s\" \"%s\"\n", ip,
			     alog_time(w, 0), reqline, c->status, (unsigned long long)body, ref,
			     ua);
	if (n > 0)
		w->alog_len[w->alog_cur] += (uint32_t)(n < ALOG_LINE ? n : ALOG_LINE - 1);
}

/* Start writing what the current buffer holds, when no write is in flight. */
void syn_alog_flush(struct syn_worker *w)
{
	uint8_t cur = w->alog_cur;

	if (w->alog_busy || !w->alog_len[cur] || !w->plan || w->plan->access_log_fd < 0)
		return;
	w->alog_busy = 1;
	w->io->write(w, w->plan->access_log_fd, w->alog_buf[cur], w->alog_len[cur]);
	w->alog_cur = (uint8_t)!cur;
	w->alog_len[w->alog_cur] = 0;
}

int syn_alog_init(struct syn_worker *w)
{
	w->alog_buf[0] = malloc(ALOG_BUF);
	w->alog_buf[1] = malloc(ALOG_BUF);
	if (!w->alog_buf[0] || !w->alog_buf[1])
		return -1;
	return 0;
}

void syn_alog_fini(struct syn_worker *w)
{
	free(w->alog_buf[0]);
	free(w->alog_buf[1]);
	w->alog_buf[0] = w->alog_buf[1] = NULL;
}
