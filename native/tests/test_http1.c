/* native/tests/test_http1.c - request and response head parsing.
 *
 * Every table case is checked four ways: (a)/(b) the full parse against
 * the expected result, (c) every prefix of it in a malloc'ed buffer of
 * exactly that size (AGAIN before the end of the head, the same error or
 * AGAIN for invalid input), and (d) every SIMD level against the public
 * entry points on zeroed structs (same return value, memcmp-equal structs).
 * Generated inputs then walk an invalid byte through targets, methods,
 * header names, values and reasons of lengths 0..100, and the limits.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syn/http1.h"
#include "syn/simd.h"
#include "check.h"
#include "h1_text.h"

#define AGAIN SYN_PARSE_AGAIN
#define ERR   SYN_PARSE_ERR

#define KA    SYN_H1_F_KEEPALIVE
#define LEN   SYN_H1_F_LENGTH
#define CHK   SYN_H1_F_CHUNKED
#define CC    SYN_H1_F_CONN_CLOSE
#define CKA   SYN_H1_F_CONN_KA
#define CU    SYN_H1_F_CONN_UPG
#define UPG   SYN_H1_F_UPGRADE
#define CONT  SYN_H1_F_CONTINUE
#define CLOSE SYN_H1_F_CLOSE_BODY
#define NOB   SYN_H1_F_NO_BODY
#define CO    SYN_H1_F_CONN_OTHER

enum { K_REQ, K_RESP };

union msg {
	struct syn_h1_request rq;
	struct syn_h1_response rs;
};

static const struct syn_h1_impl *impls[SYN_SIMD__COUNT];
static unsigned long ncases, ngenerated;

/* ---- helpers ---------------------------------------------------------- */

/* The statuses the spec gives, written out rather than taken from the
 * X-macro so that a wrong table entry is caught. */
static int want_status(int e)
{
	switch (e) {
	case SYN_H1_E_OK:
		return 0;
	case SYN_H1_E_TOO_MANY_HEADERS:
	case SYN_H1_E_HEAD_TOO_LARGE:
	case SYN_H1_E_TRAILER_TOO_LARGE:
		return 431;
	case SYN_H1_E_TE_UNSUPPORTED:
		return 501;
	case SYN_H1_E_VERSION_UNSUPPORTED:
		return 505;
	default:
		return 400;
	}
}

static const char *const method_names[SYN_M__COUNT] = {
	[SYN_M_GET] = "GET",         [SYN_M_HEAD] = "HEAD",     [SYN_M_POST] = "POST",
	[SYN_M_PUT] = "PUT",         [SYN_M_DELETE] = "DELETE", [SYN_M_CONNECT] = "CONNECT",
	[SYN_M_OPTIONS] = "OPTIONS", [SYN_M_TRACE] = "TRACE",   [SYN_M_PATCH] = "PATCH",
};

static const char *flagstr(unsigned f)
{
	static const char *const names[] = {
		"LENGTH",  "CHUNKED",  "KEEPALIVE",  "CONN_CLOSE", "CONN_KA",    "CONN_UPG",
		"UPGRADE", "CONTINUE", "CLOSE_BODY", "NO_BODY",    "CONN_OTHER",
	};
	static char bufs[2][256];
	static unsigned which;
	char *o = bufs[which++ & 1], *p = o;
	unsigned i;

	*p = 0;
	for (i = 0; i < 16; i++) {
		if (!(f & (1u << i)))
			continue;
		if (i < sizeof(names) / sizeof(names[0]))
			p += sprintf(p, "%s%s", p == o ? "" : "|", names[i]);
		else
			p += sprintf(p, "%s0x%x", p == o ? "" : "|", 1u << i);
	}
	if (p == o)
		sprintf(o, "0");
	return o;
}

static int span_eqn(const char *buf, struct syn_span s, const char *want, size_t n)
{
	return s.len == n && memcmp(buf + s.off, want, n) == 0;
}

static int span_eq(const char *buf, struct syn_span s, const char *want)
{
	return span_eqn(buf, s, want, strlen(want));
}

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_vchar_obs(unsigned char c)
{
	return (c >= 0x21 && c != 0x7f) || c == ' ' || c == '\t';
}

/* A growable byte string for generated inputs. */
struct sb {
	char *p;
	size_t len, cap;
};

static void sb_addn(struct sb *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_add(struct sb *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_addc(struct sb *b, char c, size_t n)
{
	while (n--)
		sb_addn(b, &c, 1);
}

/* ---- one parse, every implementation --------------------------------- */

#define VIA_PLAIN  (-2) /* syn_h1_parse_request() / _response() */
#define VIA_LIMITS (-1) /* the _limits variants */

static const char *via_name(int via)
{
	if (via == VIA_PLAIN)
		return "public";
	if (via == VIA_LIMITS)
		return "public_limits";
	return syn_simd_name(via);
}

static size_t msg_size(int kind)
{
	return kind == K_REQ ? sizeof(struct syn_h1_request) : sizeof(struct syn_h1_response);
}

static const struct syn_h1_head *msg_head(int kind, const union msg *m)
{
	return kind == K_REQ ? &m->rq.h : &m->rs.h;
}

static int do_parse(int kind, int via, const char *buf, size_t len, union msg *m, size_t max_head,
		    unsigned max_hdrs)
{
	memset(m, 0, sizeof(*m));
	if (via == VIA_PLAIN)
		return kind == K_REQ ? syn_h1_parse_request(buf, len, &m->rq)
				     : syn_h1_parse_response(buf, len, &m->rs);
	if (via == VIA_LIMITS)
		return kind == K_REQ
			       ? syn_h1_parse_request_limits(buf, len, &m->rq, max_head, max_hdrs)
			       : syn_h1_parse_response_limits(buf, len, &m->rs, max_head, max_hdrs);
	return kind == K_REQ ? impls[via]->request(buf, len, &m->rq, max_head, max_hdrs)
			     : impls[via]->response(buf, len, &m->rs, max_head, max_hdrs);
}

static size_t first_diff(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	size_t i;

	for (i = 0; i < n && x[i] == y[i]; i++)
		;
	return i;
}

/* What must hold of any result, valid or not. */
static void check_result(int kind, const char *buf, size_t len, int ret, const union msg *m,
			 const char *what)
{
	const struct syn_h1_head *h = msg_head(kind, m);
	uint8_t idx[SYN_HDR__COUNT];
	unsigned i;

	if (ret == AGAIN)
		return;
	if (ret == ERR) {
		CHECK(h->error > SYN_H1_E_OK && h->error < SYN_H1_E__COUNT,
		      "%s len %zu: ERR with error %d", what, len, h->error);
		CHECK(h->err_off <= len, "%s len %zu: err_off %u", what, len, h->err_off);
		return;
	}
	CHECK(ret > 0, "%s len %zu: return value %d", what, len, ret);
	if (ret <= 0)
		return;
	CHECK((size_t)ret <= len && ret == h->head_len, "%s len %zu: ret %d, head_len %u", what,
	      len, ret, h->head_len);
	CHECK(h->version <= 1, "%s: version %u", what, h->version);
	CHECK(h->nheaders <= SYN_H1_MAX_HEADERS, "%s: nheaders %u", what, h->nheaders);
	if ((size_t)ret > len || h->nheaders > SYN_H1_MAX_HEADERS)
		return;

#define IN_HEAD(s) ((unsigned)(s).off + (s).len <= (unsigned)ret)
	memset(idx, 0, sizeof(idx));
	for (i = 0; i < h->nheaders; i++) {
		const struct syn_h1_header *f = &h->headers[i];
		unsigned j;
		int id;

		CHECK(IN_HEAD(f->name) && IN_HEAD(f->value) && f->name.len > 0,
		      "%s: header %u span out of head", what, i);
		if (!IN_HEAD(f->name) || !IN_HEAD(f->value))
			continue;
		for (j = 0; j < f->name.len; j++)
			if (!is_tchar(buf[f->name.off + j]))
				break;
		CHECK(j == f->name.len, "%s: header %u name \"%s\" has a non-tchar", what, i,
		      esc(buf + f->name.off, f->name.len));
		for (j = 0; j < f->value.len; j++)
			if (!is_vchar_obs(buf[f->value.off + j]))
				break;
		CHECK(j == f->value.len, "%s: header %u value \"%s\" has a bad byte", what, i,
		      esc(buf + f->value.off, f->value.len));
		if (f->value.len) {
			char a = buf[f->value.off], z = buf[f->value.off + f->value.len - 1];

			CHECK(a != ' ' && a != '\t' && z != ' ' && z != '\t',
			      "%s: header %u value \"%s\" not trimmed", what, i,
			      esc(buf + f->value.off, f->value.len));
		}
		id = syn_h1_header_id(buf + f->name.off, f->name.len);
		if (id > SYN_HDR_NONE && id < SYN_HDR__COUNT && !idx[id])
			idx[id] = i + 1;
	}
	CHECK(!memcmp(idx, h->idx, sizeof(idx)), "%s: idx[] differs from the headers at id %zu",
	      what, first_diff(idx, h->idx, sizeof(idx)));
	if (h->idx[SYN_HDR_UPGRADE])
		CHECK(!memcmp(&h->upgrade, &h->headers[h->idx[SYN_HDR_UPGRADE] - 1].value,
			      sizeof(h->upgrade)),
		      "%s: upgrade span is not the Upgrade value", what);
	else
		CHECK(!(h->flags & UPG), "%s: F_UPGRADE without Upgrade", what);
	CHECK(!(h->flags & UPG) || (h->flags & CU), "%s: F_UPGRADE without CONN_UPG", what);
	CHECK(!!(h->flags & LEN) == !!h->idx[SYN_HDR_CONTENT_LENGTH],
	      "%s: F_LENGTH %s but Content-Length %s", what, flagstr(h->flags),
	      h->idx[SYN_HDR_CONTENT_LENGTH] ? "present" : "absent");
	CHECK(!((h->flags & LEN) && (h->flags & CHK)), "%s: LENGTH and CHUNKED", what);

	if (kind == K_REQ) {
		const struct syn_h1_request *r = &m->rq;

		CHECK(IN_HEAD(r->method_name) && r->method_name.len > 0 && IN_HEAD(r->target) &&
			      r->target.len > 0 &&
			      r->method_name.off + r->method_name.len < r->target.off,
		      "%s: method/target spans", what);
		CHECK(r->method < SYN_M__COUNT, "%s: method %u", what, r->method);
		if (r->method > SYN_M_OTHER && r->method < SYN_M__COUNT)
			CHECK(span_eq(buf, r->method_name, method_names[r->method]),
			      "%s: method %u spelled \"%s\"", what, r->method,
			      esc(buf + r->method_name.off, r->method_name.len));
		CHECK(!(h->flags & (CLOSE | NOB)), "%s: response flags on a request: %s", what,
		      flagstr(h->flags));
		if (h->idx[SYN_HDR_HOST])
			CHECK(!memcmp(&h->host, &h->headers[h->idx[SYN_HDR_HOST] - 1].value,
				      sizeof(h->host)),
			      "%s: host span is not the Host value", what);
		else
			CHECK(h->version == 0, "%s: HTTP/1.1 request without Host accepted", what);
	} else {
		const struct syn_h1_response *r = &m->rs;

		CHECK(r->status >= 100 && r->status <= 599, "%s: status %u", what, r->status);
		CHECK(r->reason.len == 0 || IN_HEAD(r->reason), "%s: reason span", what);
		CHECK(!(h->flags & CONT), "%s: F_CONTINUE on a response", what);
	}
#undef IN_HEAD
}

/* Parse with the public entry points and every SIMD level; all must agree
 * exactly.  The public _limits result is left in *out and returned. */
static int parse_all(int kind, const char *buf, size_t len, size_t max_head, unsigned max_hdrs,
		     union msg *out, const char *what)
{
	int plain = max_head == SYN_H1_MAX_HEAD && max_hdrs == SYN_H1_MAX_HEADERS;
	union msg m;
	int ref, r, via;

	ref = do_parse(kind, VIA_LIMITS, buf, len, out, max_head, max_hdrs);
	for (via = VIA_PLAIN; via < SYN_SIMD__COUNT; via++) {
		int same;

		if (via == VIA_LIMITS || (via == VIA_PLAIN && !plain) || (via >= 0 && !impls[via]))
			continue;
		r = do_parse(kind, via, buf, len, &m, max_head, max_hdrs);
		same = r == ref && !memcmp(&m, out, msg_size(kind));
		CHECK(same,
		      "%s [prefix %zu bytes]: %s returns %d (%s), public %d (%s)%s, "
		      "struct differs at byte %zu",
		      what, len, via_name(via), r,
		      r == ERR ? ename(msg_head(kind, &m)->error) : "-", ref,
		      ref == ERR ? ename(msg_head(kind, out)->error) : "-",
		      r == ref ? "" : " (return values differ)",
		      first_diff(&m, out, msg_size(kind)));
	}
	check_result(kind, buf, len, ref, out, what);
	return ref;
}

static size_t next_k(size_t k, size_t len)
{
	if (len <= 4096 || k < 64 || k + 64 >= len)
		return k + 1;
	return k + 1021 < len - 64 ? k + 1021 : len - 64;
}

/* (c) and (d): every prefix in an exactly-sized heap buffer. */
static void check_splits(int kind, const char *in, size_t len, size_t max_head, unsigned max_hdrs,
			 int want, int want_err, const char *what)
{
	union msg m;
	size_t k;
	int bad = 0;

	for (k = 0; k <= len && bad < 3; k = next_k(k, len)) {
		char *b = malloc(k);
		int r, ok;

		if (!b && k)
			abort();
		if (k)
			memcpy(b, in, k);
		r = parse_all(kind, b, k, max_head, max_hdrs, &m, what);
		if (want > 0)
			ok = k < (size_t)want ? r == AGAIN : r == want;
		else if (k == len)
			ok = r == ERR && msg_head(kind, &m)->error == want_err;
		else
			ok = r == AGAIN || (r == ERR && msg_head(kind, &m)->error == want_err);
		CHECK(ok, "%s: prefix of %zu/%zu bytes gives %d (%s), full parse %d (%s)", what, k,
		      len, r, r == ERR ? ename(msg_head(kind, &m)->error) : "-", want,
		      want == ERR ? ename(want_err) : "-");
		bad += !ok;
		free(b);
	}
}

/* ---- table cases ------------------------------------------------------ */

struct tc {
	const char *in;
	size_t len;
	int err, err2; /* expected error (either one); 0: valid */
	unsigned tail; /* bytes after the head */
	uint8_t method;
	const char *mname; /* NULL: the enum's spelling */
	const char *target;
	unsigned status;
	const char *reason;
	int http10;     /* version 0 expected */
	unsigned flags; /* exact */
	uint64_t cl;
	const char *host;    /* NULL: no Host line */
	const char *upgrade; /* NULL: no Upgrade line */
	const char *hdrs;    /* "name:value\n"...; NULL: not checked */
};

#define IN(s)    .in = (s), .len = sizeof(s) - 1
#define E(e)     .err = SYN_H1_E_##e
#define E2(a, b) .err = SYN_H1_E_##a, .err2 = SYN_H1_E_##b
#define M(m)     .method = SYN_M_##m
#define RQ       "GET / HTTP/1.1\r\nHost: a\r\n"
#define RS       "HTTP/1.1 200 OK\r\n"
#define NEXT_RQ  "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"
#define GARBAGE  "GARBAGE\r\n\n\r"

static const struct tc req_cases[] = {
	/* (a) valid requests */
	{IN("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), M(GET), .target = "/", .flags = KA,
	 .host = "example.com", .hdrs = "Host:example.com\n"},
	{IN("\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"), M(GET), .target = "/x", .flags = KA,
	 .host = "a"},
	{IN("POST /submit?x=1&y=%20 HTTP/1.1\r\nHost: api.example.com\r\n"
	    "Content-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"),
	 .tail = 5, M(POST), .target = "/submit?x=1&y=%20", .flags = LEN | KA, .cl = 5,
	 .host = "api.example.com",
	 .hdrs = "Host:api.example.com\nContent-Type:application/json\nContent-Length:5\n"},
	{IN("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n"),
	 .tail = 15, M(POST), .target = "/upload", .flags = CHK | KA, .host = "a"},
	{IN("PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: cHuNkEd\r\n\r\n"), M(PUT),
	 .target = "/u", .flags = CHK | KA, .host = "a"},
	{IN("PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n"), M(PUT),
	 .target = "/u", .flags = CHK | KA, .host = "a"},
	{IN("PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked , ,\t\r\n\r\n"), M(PUT),
	 .target = "/u", .flags = CHK | KA, .host = "a"},
	{IN("GET /index.html?q=1 HTTP/1.1\r\n"
	    "Host: www.example.com\r\n"
	    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
	    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
	    "Accept-Language: en-US,en;q=0.5\r\n"
	    "Accept-Encoding: gzip, deflate, br\r\n"
	    "Connection: keep-alive\r\n"
	    "Cookie: a=1; b=2\r\n"
	    "Upgrade-Insecure-Requests: 1\r\n"
	    "Sec-Fetch-Dest: document\r\n"
	    "If-None-Match: \"abc\"\r\n"
	    "Cache-Control: max-age=0\r\n"
	    "\r\n"),
	 M(GET), .target = "/index.html?q=1", .flags = KA | CKA, .host = "www.example.com",
	 .hdrs = "Host:www.example.com\n"
		 "User-Agent:Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 "
		 "Firefox/115.0\n"
		 "Accept:text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\n"
		 "Accept-Language:en-US,en;q=0.5\n"
		 "Accept-Encoding:gzip, deflate, br\n"
		 "Connection:keep-alive\n"
		 "Cookie:a=1; b=2\n"
		 "Upgrade-Insecure-Requests:1\n"
		 "Sec-Fetch-Dest:document\n"
		 "If-None-Match:\"abc\"\n"
		 "Cache-Control:max-age=0\n"},
	{IN("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
	 M(GET), .target = "http://example.com:8080/a/b?c=d", .flags = KA,
	 .host = "example.com:8080"},
	{IN("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), M(OPTIONS), .target = "*", .flags = KA,
	 .host = "a"},
	{IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), M(CONNECT),
	 .target = "example.com:443", .flags = KA, .host = "example.com:443"},
	{IN("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"), M(CONNECT),
	 .target = "[2001:db8::1]:443", .flags = KA, .host = "[2001:db8::1]:443"},
	{IN("GET / HTTP/1.0\r\n\r\n"), M(GET), .target = "/", .http10 = 1, .hdrs = ""},
	{IN("GET / HTTP/1.0\r\nHost: old\r\n\r\n"), M(GET), .target = "/", .http10 = 1,
	 .host = "old"},
	{IN("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), M(GET), .target = "/", .http10 = 1,
	 .flags = CKA | KA},
	{IN("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), M(GET), .target = "/",
	 .http10 = 1, .flags = CKA | CC},
	{IN("GET / HTTP/1.0\r\nConnection: close\r\n\r\n"), M(GET), .target = "/", .http10 = 1,
	 .flags = CC},
	{IN(RQ "Connection: close\r\n\r\n"), M(GET), .target = "/", .flags = CC, .host = "a"},
	{IN(RQ "Connection: CLOSE\r\n\r\n"), M(GET), .target = "/", .flags = CC, .host = "a"},
	{IN("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
	 M(GET), .target = "/chat", .flags = CU | UPG | KA, .host = "a", .upgrade = "websocket"},
	{IN(RQ "Upgrade: h2c\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = "a",
	 .upgrade = "h2c"},
	{IN(RQ "Connection: upgrade\r\n\r\n"), M(GET), .target = "/", .flags = CU | KA,
	 .host = "a"},
	{IN(RQ "Connection: Keep-Alive, X-Foo\r\n\r\n"), M(GET), .target = "/",
	 .flags = CKA | CO | KA, .host = "a"},
	{IN(RQ "Connection: ,close , ,TE\r\n\r\n"), M(GET), .target = "/", .flags = CC | CO,
	 .host = "a"},
	{IN(RQ "Connection: upgrade\r\nUpgrade: foo/2\r\nConnection: close\r\n\r\n"), M(GET),
	 .target = "/", .flags = CU | CC | UPG, .host = "a", .upgrade = "foo/2"},
	{IN(RQ "Proxy-Connection: close\r\nKeep-Alive: timeout=5\r\n\r\n"), M(GET), .target = "/",
	 .flags = KA, .host = "a"},
	{IN("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
	 M(POST), .target = "/", .flags = CONT | LEN | KA, .cl = 3, .host = "a"},
	{IN("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"), .tail = 3,
	 M(POST), .target = "/", .http10 = 1, .flags = LEN, .cl = 3},
	{IN(RQ "Expect: 100-continuex\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = "a"},
	{IN(RQ "Expect: 200-ok\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = "a"},
	{IN("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"), M(HEAD), .target = "/h", .flags = KA,
	 .host = "a"},
	{IN("DELETE /d HTTP/1.1\r\nHost: a\r\n\r\n"), M(DELETE), .target = "/d", .flags = KA,
	 .host = "a"},
	{IN("TRACE /t HTTP/1.1\r\nHost: a\r\n\r\n"), M(TRACE), .target = "/t", .flags = KA,
	 .host = "a"},
	{IN("PATCH /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), M(PATCH), .target = "/p",
	 .flags = KA | LEN, .host = "a"},
	{IN("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "PURGE", .target = "/x",
	 .flags = KA, .host = "a"},
	{IN("get / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "get", .target = "/",
	 .flags = KA, .host = "a"},
	{IN("Get / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "Get", .target = "/",
	 .flags = KA, .host = "a"},
	{IN("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "M-SEARCH", .target = "*",
	 .flags = KA, .host = "a"},
	{IN("GETS / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "GETS", .target = "/",
	 .flags = KA, .host = "a"},
	{IN("GE / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "GE", .target = "/",
	 .flags = KA, .host = "a"},
	{IN("POSTS / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "POSTS", .target = "/",
	 .flags = KA, .host = "a"},
	{IN("CONNECTION / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "CONNECTION",
	 .target = "/", .flags = KA, .host = "a"},
	{IN("!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER),
	 .mname = "!#$%&'*+-.^_`|~09azAZ", .target = "/", .flags = KA, .host = "a"},
	{IN("X / HTTP/1.1\r\nHost: a\r\n\r\n"), M(OTHER), .mname = "X", .target = "/", .flags = KA,
	 .host = "a"},
	{IN("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = "a"},
	{IN("GET / HTTP/1.9\r\nHost: a\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = "a"},
	{IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = ""},
	{IN("GET / HTTP/1.1\r\nHost: \t \r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = ""},
	{IN("GET / HTTP/1.1\r\nHost:  a.b \t\r\n\r\n"), M(GET), .target = "/", .flags = KA,
	 .host = "a.b"},
	{IN("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), M(GET), .target = "/", .flags = KA,
	 .host = "[::1]:8080"},
	{IN("GET / HTTP/1.1\r\nHost: aZ09-._~!$&'()*+,;=:[]%41\r\n\r\n"), M(GET), .target = "/",
	 .flags = KA, .host = "aZ09-._~!$&'()*+,;=:[]%41"},
	{IN(RQ "X-A:   spaced  value \t \r\nX-B:\r\nX-C: \t \r\nX-D:\tv\r\nX-E:x\r\n\r\n"), M(GET),
	 .target = "/", .flags = KA, .host = "a",
	 .hdrs = "Host:a\nX-A:spaced  value\nX-B:\nX-C:\nX-D:v\nX-E:x\n"},
	{IN(RQ "X-U: caf\xc3\xa9 \x80\xff\r\nX-Q: a:b \"c\" ,d\t;e\r\n\r\n"), M(GET), .target = "/",
	 .flags = KA, .host = "a",
	 .hdrs = "Host:a\nX-U:caf\xc3\xa9 \x80\xff\nX-Q:a:b \"c\" ,d\t;e\n"},
	{IN(RQ "Content-Length: 5\r\nContent-Length: 05\r\n\r\nhello"), .tail = 5, M(GET),
	 .target = "/", .flags = LEN | KA, .cl = 5, .host = "a"},
	{IN(RQ "Content-Length: 0\r\nContent-Length: 000\r\n\r\n"), M(GET), .target = "/",
	 .flags = LEN | KA, .cl = 0, .host = "a"},
	{IN(RQ "Content-Length: 9223372036854775807\r\n\r\n"), M(GET), .target = "/",
	 .flags = LEN | KA, .cl = 9223372036854775807ull, .host = "a"},
	{IN(RQ "Content-Length: \t42 \t\r\n\r\n"), M(GET), .target = "/", .flags = LEN | KA,
	 .cl = 42, .host = "a", .hdrs = "Host:a\nContent-Length:42\n"},
	{IN(RQ "!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n"), M(GET), .target = "/", .flags = KA, .host = "a",
	 .hdrs = "Host:a\n!#$%&'*+-.^_`|~09AZaz:v\n"},
	{IN("GET /!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ HTTP/1.1\r\nHost: a\r\n\r\n"),
	 M(GET),
	 .target = "/!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
	 .flags = KA, .host = "a"},
	{IN("GET / HTTP/1.1\r\nhOsT: a\r\nCONTENT-TYPE: text/plain\r\nuser-agent: x\r\n"
	    "X-Forwarded-For: 1.2.3.4\r\nX-Foo: bar\r\nx-FORWARDED-for: 5.6.7.8\r\n"
	    "Content-type: y\r\n\r\n"),
	 M(GET), .target = "/", .flags = KA, .host = "a",
	 .hdrs = "hOsT:a\nCONTENT-TYPE:text/plain\nuser-agent:x\nX-Forwarded-For:1.2.3.4\n"
		 "X-Foo:bar\nx-FORWARDED-for:5.6.7.8\nContent-type:y\n"},
	{IN("GET /a HTTP/1.1\r\nHost: a\r\n\r\n" NEXT_RQ), .tail = sizeof(NEXT_RQ) - 1, M(GET),
	 .target = "/a", .flags = KA, .host = "a"},
	{IN("GET /a HTTP/1.1\r\nHost: a\r\n\r\n" GARBAGE), .tail = sizeof(GARBAGE) - 1, M(GET),
	 .target = "/a", .flags = KA, .host = "a"},

	/* (b) rejections: method and request line */
	{IN("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("\"GET\" / HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("GET\x80 / HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("G\x7f"
	    "ET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	 E(METHOD)},
	{IN("GET\0 / HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("\0GET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("GET:/ HTTP/1.1\r\nHost: a\r\n\r\n"), E(METHOD)},
	{IN("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), E2(METHOD, REQUEST_LINE)},
	{IN(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(REQUEST_LINE)},
	{IN("\r\n GET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(REQUEST_LINE)},
	{IN("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), E(REQUEST_LINE)},
	{IN("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), E2(TARGET, REQUEST_LINE)},
	{IN("GET  HTTP/1.1\r\nHost: a\r\n\r\n"), E2(TARGET, REQUEST_LINE)},
	{IN("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), E2(REQUEST_LINE, VERSION)},
	{IN("GET / HTTP/1.1 x\r\nHost: a\r\n\r\n"), E2(REQUEST_LINE, VERSION)},
	{IN("GET /\r\nHost: a\r\n\r\n"), E2(REQUEST_LINE, VERSION)},
	{IN("GET\r\nHost: a\r\n\r\n"), E2(REQUEST_LINE, METHOD)},
	{IN("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), E2(VERSION, REQUEST_LINE)},
	/* target */
	{IN("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	{IN("GET /a\x7f"
	    "b HTTP/1.1\r\nHost: a\r\n\r\n"),
	 E(TARGET)},
	{IN("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	{IN("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	{IN("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	{IN("GET \x80 HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	{IN("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	{IN("GET /\x1f HTTP/1.1\r\nHost: a\r\n\r\n"), E(TARGET)},
	/* version */
	{IN("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("GET / HTTP/2.1\r\nHost: a\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("GET / HTTP/9.9\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("GET / http/1.1\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/11\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/1.\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/1\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/1,1\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTPS/1.1\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / Http/1.1\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP-1.1\r\nHost: a\r\n\r\n"), E(VERSION)},
	{IN("GET / HTTP/a.b\r\nHost: a\r\n\r\n"), E(VERSION)},
	/* line endings */
	{IN("GET / HTTP/1.1\nHost: a\r\n\r\n"), E(BARE_LF)},
	{IN("GET / HTTP/1.1\r\nHost: a\n\r\n"), E(BARE_LF)},
	{IN("GET / HTTP/1.1\r\nHost: a\r\n\n"), E(BARE_LF)},
	{IN("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(BARE_LF)},
	{IN("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(BARE_LF)},
	{IN("GET / HTTP/1.1\r\nHost: a\r\nX: b\nY: c\r\n\r\n"), E(BARE_LF)},
	{IN("GET / HTTP/1.0\n\n"), E(BARE_LF)},
	{IN("GET / HTTP/1.1\rHost: a\r\n\r\n"), E(BARE_CR)},
	{IN("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), E(BARE_CR)},
	{IN("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), E(BARE_CR)},
	{IN("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), E(BARE_CR)},
	{IN("GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n"), E(BARE_CR)},
	{IN("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(BARE_CR)},
	{IN("\r\n\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), E(BARE_CR)},
	/* obs-fold */
	{IN("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), E(OBS_FOLD)},
	{IN("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"), E(OBS_FOLD)},
	{IN(RQ "X: b\r\n c\r\n\r\n"), E(OBS_FOLD)},
	{IN(RQ "X: b\r\n\t\r\n\r\n"), E(OBS_FOLD)},
	{IN(RQ " \r\n\r\n"), E(OBS_FOLD)},
	/* header names */
	{IN(RQ ": v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ ":\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X(: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X-Foo\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X\x80: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X\0: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X@Y: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X/Y: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X{}: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X\x7f: v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "\"X\": v\r\n\r\n"), E(HEADER_NAME)},
	{IN(RQ "X,Y: v\r\n\r\n"), E(HEADER_NAME)},
	{IN("GET / HTTP/1.1\r\nHost a\r\n\r\n"), E2(HEADER_NAME, SPACE_BEFORE_COLON)},
	{IN(RQ "Ho st: a\r\n\r\n"), E2(HEADER_NAME, SPACE_BEFORE_COLON)},
	{IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), E(SPACE_BEFORE_COLON)},
	{IN("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), E(SPACE_BEFORE_COLON)},
	{IN(RQ "X  : v\r\n\r\n"), E(SPACE_BEFORE_COLON)},
	{IN(RQ "Content-Length : 5\r\n\r\n"), E(SPACE_BEFORE_COLON)},
	{IN(RQ "Transfer-Encoding : chunked\r\n\r\n"), E(SPACE_BEFORE_COLON)},
	/* header values */
	{IN(RQ "X: a\0b\r\n\r\n"), E(HEADER_VALUE)},
	{IN(RQ "X: \x01\r\n\r\n"), E(HEADER_VALUE)},
	{IN(RQ "X: a\x1f\r\n\r\n"), E(HEADER_VALUE)},
	{IN(RQ "X: a\x7f\r\n\r\n"), E(HEADER_VALUE)},
	{IN(RQ "X: \x7f"
	       "a\r\n\r\n"),
	 E(HEADER_VALUE)},
	{IN(RQ "X: a\x0b"
	       "b\r\n\r\n"),
	 E(HEADER_VALUE)},
	{IN(RQ "X: a\x0c"
	       "b\r\n\r\n"),
	 E(HEADER_VALUE)},
	{IN(RQ "X: \x1b[0m\r\n\r\n"), E(HEADER_VALUE)},
	{IN("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n"), E2(HEADER_VALUE, HOST_INVALID)},
	/* Content-Length */
	{IN(RQ "Content-Length:\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: \r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 5, 5\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 5,5\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 5,\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: +5\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length:  5x\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: -1\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 0x5\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 5 5\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 1e3\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: \"5\"\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 9223372036854775808\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 18446744073709551616\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 99999999999999999999999\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RQ "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), E(CONTENT_LENGTH_CONFLICT)},
	{IN(RQ "Content-Length: 5\r\nContent-Length: 50\r\n\r\n"), E(CONTENT_LENGTH_CONFLICT)},
	{IN(RQ "content-length: 1\r\nX: y\r\nCONTENT-LENGTH: 0\r\n\r\n"),
	 E(CONTENT_LENGTH_CONFLICT)},
	{IN(RQ "Content-Length: 5\r\nContent-Length: x\r\n\r\n"), E(CONTENT_LENGTH)},
	/* Transfer-Encoding */
	{IN(RQ "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), E(CL_AND_TE)},
	{IN(RQ "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), E(CL_AND_TE)},
	{IN(RQ "Transfer-Encoding: gzip\r\n\r\n"), E(TE_NOT_FINAL_CHUNKED)},
	{IN(RQ "Transfer-Encoding: identity\r\n\r\n"), E(TE_NOT_FINAL_CHUNKED)},
	{IN(RQ "Transfer-Encoding: chunked, gzip\r\n\r\n"), E(TE_NOT_FINAL_CHUNKED)},
	{IN(RQ "Transfer-Encoding: chunked, chunked\r\n\r\n"), E(TE_NOT_FINAL_CHUNKED)},
	{IN(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	 E(TE_NOT_FINAL_CHUNKED)},
	{IN(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
	 E(TE_NOT_FINAL_CHUNKED)},
	{IN(RQ "Transfer-Encoding: gzip, chunked\r\n\r\n"), E(TE_UNSUPPORTED)},
	{IN(RQ "Transfer-Encoding: foo, chunked\r\n\r\n"), E(TE_UNSUPPORTED)},
	{IN(RQ "Transfer-Encoding: identity,chunked\r\n\r\n"), E(TE_UNSUPPORTED)},
	{IN(RQ "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), E(TE_UNSUPPORTED)},
	{IN(RQ "Transfer-Encoding: chu nked\r\n\r\n"), E(TE_INVALID)},
	{IN(RQ "Transfer-Encoding: \"chunked\"\r\n\r\n"), E(TE_INVALID)},
	{IN(RQ "Transfer-Encoding: x@y, chunked\r\n\r\n"), E(TE_INVALID)},
	{IN(RQ "Transfer-Encoding: chunked/1\r\n\r\n"), E(TE_INVALID)},
	{IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), E(TE_HTTP10)},
	{IN("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	 E(TE_HTTP10)},
	/* Host */
	{IN("GET / HTTP/1.1\r\n\r\n"), E(HOST_MISSING)},
	{IN("GET / HTTP/1.1\r\nHostname: a\r\nX-Host: b\r\n\r\n"), E(HOST_MISSING)},
	{IN("GET / HTTP/1.2\r\n\r\n"), E(HOST_MISSING)},
	{IN(RQ "Host: a\r\n\r\n"), E(HOST_MULTIPLE)},
	{IN(RQ "hOST: b\r\n\r\n"), E(HOST_MULTIPLE)},
	{IN("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), E(HOST_MULTIPLE)},
	{IN("GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n"), E(HOST_MULTIPLE)},
	{IN("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a<b>\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a?b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a#b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a{b}\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a^b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a`b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a|b\r\n\r\n"), E(HOST_INVALID)},
	{IN("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n"), E2(HEADER_VALUE, HOST_INVALID)},
};

static const struct tc resp_cases[] = {
	/* (a) valid responses */
	{IN("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi"),
	 .tail = 2, .status = 200, .reason = "OK", .flags = LEN | KA, .cl = 2,
	 .hdrs = "Content-Length:2\nContent-Type:text/plain\n"},
	{IN("HTTP/1.1 200\r\n\r\n"), .status = 200, .reason = "", .flags = CLOSE | KA, .hdrs = ""},
	{IN("HTTP/1.1 200 \r\n\r\n"), .status = 200, .reason = "", .flags = CLOSE | KA},
	{IN("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), .status = 404,
	 .reason = "Not Found", .flags = LEN | KA},
	{IN("HTTP/1.1 200 O\tK caf\xc3\xa9 \x80!\r\nContent-Length: 0\r\n\r\n"), .status = 200,
	 .reason = "O\tK caf\xc3\xa9 \x80!", .flags = LEN | KA},
	{IN("HTTP/1.0 200 OK\r\n\r\n"), .status = 200, .reason = "OK", .http10 = 1, .flags = CLOSE},
	{IN("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
	 .status = 200, .reason = "OK", .http10 = 1, .flags = CKA | KA | LEN},
	{IN("HTTP/1.1 100 Continue\r\n\r\n"), .status = 100, .reason = "Continue",
	 .flags = NOB | KA},
	{IN("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"), .status = 103,
	 .reason = "Early Hints", .flags = NOB | KA},
	{IN("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
	    "Upgrade\r\n\r\n"),
	 .status = 101, .reason = "Switching Protocols", .flags = NOB | CU | UPG | KA,
	 .upgrade = "websocket"},
	{IN("HTTP/1.1 204 No Content\r\n\r\n"), .status = 204, .reason = "No Content",
	 .flags = NOB | KA},
	{IN("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n"),
	 .status = 304, .reason = "Not Modified", .flags = NOB | LEN | KA, .cl = 100},
	{IN("HTTP/1.1 205 Reset Content\r\n\r\n"), .status = 205, .reason = "Reset Content",
	 .flags = CLOSE | KA},
	{IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	 .tail = 15, .status = 200, .reason = "OK", .flags = CHK | KA},
	{IN(RS "Transfer-Encoding: Chunked\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = CHK | KA},
	{IN(RS "Transfer-Encoding: gzip, chunked\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = CHK | KA},
	{IN(RS "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), .status = 200,
	 .reason = "OK", .flags = CHK | KA},
	{IN(RS "Transfer-Encoding: gzip\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = CLOSE | KA},
	{IN(RS "Transfer-Encoding: chunked, gzip\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = CLOSE | KA},
	{IN(RS "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), .status = 200,
	 .reason = "OK", .flags = CLOSE | KA},
	{IN("HTTP/1.1 599 Custom\r\n\r\n"), .status = 599, .reason = "Custom", .flags = CLOSE | KA},
	{IN("HTTP/1.1 100 \r\n\r\n"), .status = 100, .reason = "", .flags = NOB | KA},
	{IN(RS "Connection: close\r\n\r\n"), .status = 200, .reason = "OK", .flags = CC | CLOSE},
	{IN(RS "Connection: close\r\nContent-Length: 1\r\n\r\nx"), .tail = 1, .status = 200,
	 .reason = "OK", .flags = CC | LEN, .cl = 1},
	{IN("HTTP/1.7 200 OK\r\nContent-Length: 0\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = LEN | KA},
	{IN(RS "Host: whatever\r\nContent-Length: 0\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = LEN | KA},
	{IN("HTTP/1.1 302 Found\r\n"
	    "Server: nginx/1.22.1\r\n"
	    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Length: 0\r\n"
	    "Location: https://example.com/\r\n"
	    "Set-Cookie: a=1; Path=/; HttpOnly\r\n"
	    "Set-Cookie: b=2\r\n"
	    "Cache-Control: no-cache\r\n"
	    "Vary: Accept-Encoding\r\n"
	    "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
	    "\r\n"),
	 .status = 302, .reason = "Found", .flags = LEN | KA,
	 .hdrs = "Server:nginx/1.22.1\nDate:Mon, 01 Jan 2024 00:00:00 GMT\n"
		 "Content-Type:text/html\nContent-Length:0\nLocation:https://example.com/\n"
		 "Set-Cookie:a=1; Path=/; HttpOnly\nSet-Cookie:b=2\nCache-Control:no-cache\n"
		 "Vary:Accept-Encoding\nLast-Modified:Mon, 01 Jan 2024 00:00:00 GMT\n"},
	{IN(RS "Content-Length: 3\r\nContent-Length: 003\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = LEN | KA, .cl = 3},
	{IN(RS "Connection: keep-alive, Upgrade, foo\r\n\r\n"), .status = 200, .reason = "OK",
	 .flags = CKA | CU | CO | CLOSE | KA},

	/* (b) rejections */
	{IN("HTTP/1.1  200 OK\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 20 OK\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 2000 OK\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 abc OK\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 20x OK\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 200OK\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 099 X\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 000 X\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 600 X\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 999 X\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 -20 X\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 \r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 200 O\x01K\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/1.1 200 OK\0\r\n\r\n"), E(STATUS_LINE)},
	{IN("HTTP/2.0 200 OK\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("HTTP/0.9 200 OK\r\n\r\n"), E(VERSION_UNSUPPORTED)},
	{IN("http/1.1 200 OK\r\n\r\n"), E2(VERSION, STATUS_LINE)},
	{IN("HTTP/1.10 200 OK\r\n\r\n"), E2(VERSION, STATUS_LINE)},
	{IN("HTTP/11 200 OK\r\n\r\n"), E2(VERSION, STATUS_LINE)},
	{IN(" HTTP/1.1 200 OK\r\n\r\n"), E2(VERSION, STATUS_LINE)},
	{IN("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), E(BARE_LF)},
	{IN(RS "X: y\n\r\n"), E(BARE_LF)},
	{IN(RS "\n"), E(BARE_LF)},
	{IN(RS "X: y\rz\r\n\r\n"), E(BARE_CR)},
	{IN("HTTP/1.1 200 OK\rX\r\n\r\n"), E2(BARE_CR, STATUS_LINE)},
	{IN(RS " X: y\r\n\r\n"), E(OBS_FOLD)},
	{IN(RS "X: y\r\n\tz\r\n\r\n"), E(OBS_FOLD)},
	{IN(RS "X : y\r\n\r\n"), E(SPACE_BEFORE_COLON)},
	{IN(RS "X[]: y\r\n\r\n"), E(HEADER_NAME)},
	{IN(RS ": y\r\n\r\n"), E(HEADER_NAME)},
	{IN(RS "X: \x7f\r\n\r\n"), E(HEADER_VALUE)},
	{IN(RS "Content-Length: abc\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RS "Content-Length: 1, 1\r\n\r\n"), E(CONTENT_LENGTH)},
	{IN(RS "Content-Length: 1\r\nContent-Length: 2\r\n\r\n"), E(CONTENT_LENGTH_CONFLICT)},
	{IN(RS "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), E(CL_AND_TE)},
	{IN(RS "Transfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n"), E(CL_AND_TE)},
	{IN(RS "Transfer-Encoding: chunked, chunked\r\n\r\n"), E(TE_NOT_FINAL_CHUNKED)},
	{IN(RS "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	 E(TE_NOT_FINAL_CHUNKED)},
	{IN(RS "Transfer-Encoding: \"x\"\r\n\r\n"), E(TE_INVALID)},
	{IN(RS "Transfer-Encoding: a b, chunked\r\n\r\n"), E(TE_INVALID)},
	{IN("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), E(TE_HTTP10)},
};

static void check_headers(const char *buf, const struct syn_h1_head *h, const char *want,
			  const char *what)
{
	const char *p = want;
	unsigned i = 0;

	while (*p) {
		const char *colon = strchr(p, ':'), *nl = strchr(colon, '\n');
		const struct syn_h1_header *f;

		if (i >= h->nheaders) {
			CHECK(0, "%s: %u headers, more expected", what, h->nheaders);
			return;
		}
		f = &h->headers[i];
		CHECK(span_eqn(buf, f->name, p, colon - p) &&
			      span_eqn(buf, f->value, colon + 1, nl - colon - 1),
		      "%s: header %u is \"%s\": \"%s\", want \"%s\"", what, i,
		      esc(buf + f->name.off, f->name.len), esc(buf + f->value.off, f->value.len),
		      esc(p, nl - p));
		i++;
		p = nl + 1;
	}
	CHECK(i == h->nheaders, "%s: %u headers, want %u", what, h->nheaders, i);
}

/* Run one table case, after an optional prefix (leading CRLFs). */
static void run_case(int kind, const struct tc *c, int n, const char *prefix)
{
	size_t plen = strlen(prefix), len = plen + c->len;
	char what[700], *buf = malloc(len + 1);
	const struct syn_h1_head *h;
	union msg m;
	int ret;

	memcpy(buf, prefix, plen);
	memcpy(buf + plen, c->in, c->len);
	snprintf(what, sizeof(what), "%s#%d \"%s\"", kind == K_REQ ? "req" : "resp", n,
		 esc(buf, len));
	ncases++;
	ret = parse_all(kind, buf, len, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, what);
	h = msg_head(kind, &m);
	if (c->err) {
		CHECK(ret == ERR && (h->error == c->err || (c->err2 && h->error == c->err2)),
		      "%s: got %d (%s), want ERR %s%s%s", what, ret,
		      ret == ERR ? ename(h->error) : "-", ename(c->err), c->err2 ? " or " : "",
		      c->err2 ? ename(c->err2) : "");
		if (ret == ERR)
			CHECK(syn_h1_err_status(h->error) == want_status(h->error),
			      "%s: status %d for %s", what, syn_h1_err_status(h->error),
			      ename(h->error));
	} else {
		size_t want = len - c->tail;

		CHECK(ret > 0 && (size_t)ret == want, "%s: got %d (%s), want %zu", what, ret,
		      ret == ERR ? ename(h->error) : "-", want);
		if (ret > 0 && (size_t)ret == want) {
			CHECK(h->flags == c->flags, "%s: flags %s, want %s", what,
			      flagstr(h->flags), flagstr(c->flags));
			CHECK(h->version == (c->http10 ? 0 : 1), "%s: version %u", what,
			      h->version);
			if (c->flags & LEN)
				CHECK(h->content_length == c->cl,
				      "%s: content_length %llu, want %llu", what,
				      (unsigned long long)h->content_length,
				      (unsigned long long)c->cl);
			if (c->upgrade)
				CHECK(h->idx[SYN_HDR_UPGRADE] &&
					      span_eq(buf, h->upgrade, c->upgrade),
				      "%s: upgrade \"%s\", want \"%s\"", what,
				      esc(buf + h->upgrade.off, h->upgrade.len), c->upgrade);
			else
				CHECK(!h->idx[SYN_HDR_UPGRADE], "%s: Upgrade found", what);
			if (c->hdrs)
				check_headers(buf, h, c->hdrs, what);
		}
		if (ret > 0 && (size_t)ret == want && kind == K_REQ) {
			const struct syn_h1_request *r = &m.rq;
			const char *mn = c->mname ? c->mname : method_names[c->method];

			CHECK(r->method == c->method && span_eq(buf, r->method_name, mn),
			      "%s: method %u \"%s\", want %u \"%s\"", what, r->method,
			      esc(buf + r->method_name.off, r->method_name.len), c->method, mn);
			CHECK(span_eq(buf, r->target, c->target), "%s: target \"%s\", want \"%s\"",
			      what, esc(buf + r->target.off, r->target.len), c->target);
			if (c->host)
				CHECK(h->idx[SYN_HDR_HOST] && span_eq(buf, h->host, c->host),
				      "%s: host \"%s\", want \"%s\"", what,
				      esc(buf + h->host.off, h->host.len), c->host);
			else
				CHECK(!h->idx[SYN_HDR_HOST], "%s: Host found", what);
		}
		if (ret > 0 && (size_t)ret == want && kind == K_RESP) {
			const struct syn_h1_response *r = &m.rs;

			CHECK(r->status == c->status, "%s: status %u, want %u", what, r->status,
			      c->status);
			CHECK(span_eq(buf, r->reason, c->reason), "%s: reason \"%s\", want \"%s\"",
			      what, esc(buf + r->reason.off, r->reason.len), c->reason);
		}
	}
	check_splits(kind, buf, len, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, ret,
		     ret == ERR ? h->error : 0, what);
	free(buf);
}

static void test_tables(void)
{
	unsigned i;

	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		run_case(K_REQ, &req_cases[i], i, "");
		/* the same after leading empty lines, when that keeps its meaning */
		if (req_cases[i].in[0] != '\r' && req_cases[i].in[0] != '\n') {
			run_case(K_REQ, &req_cases[i], i, "\r\n");
			run_case(K_REQ, &req_cases[i], i, "\r\n\r\n\r\n");
		}
	}
	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++)
		run_case(K_RESP, &resp_cases[i], i, "");
}

/* ---- generated inputs ------------------------------------------------- */

/* One generated input: all implementations agree, prefixes behave; want
 * is the expected return value (> 0 head length, ERR, or 0: don't care),
 * want_err/want_err2 the expected error (0: any). */
static int run_gen(int kind, const char *in, size_t len, int want, int want_err, int want_err2,
		   size_t max_head, unsigned max_hdrs, union msg *out, int all_splits,
		   size_t split1)
{
	char what[700];
	char *b = malloc(len);
	int ret, ok;

	if (!b && len)
		abort();
	if (len)
		memcpy(b, in, len);
	snprintf(what, sizeof(what), "gen %s \"%s\"", kind == K_REQ ? "req" : "resp", esc(in, len));
	ngenerated++;
	ret = parse_all(kind, b, len, max_head, max_hdrs, out, what);
	ok = !want ||
	     (ret == want && (want != ERR || !want_err || msg_head(kind, out)->error == want_err ||
			      msg_head(kind, out)->error == want_err2));
	CHECK(ok, "%s: got %d (%s), want %d (%s%s%s)", what, ret,
	      ret == ERR ? ename(msg_head(kind, out)->error) : "-", want, ename(want_err),
	      want_err2 ? " or " : "", want_err2 ? ename(want_err2) : "");
	free(b);
	if (all_splits) {
		check_splits(kind, in, len, max_head, max_hdrs, ret,
			     ret == ERR ? msg_head(kind, out)->error : 0, what);
	} else if (ret != AGAIN) {
		/* just before and just after the interesting byte */
		size_t ks[2] = {split1, split1 + 1};
		union msg m;
		int i;

		for (i = 0; i < 2; i++) {
			size_t k = ks[i];
			int r;

			if (k >= len)
				continue;
			b = malloc(k);
			if (!b && k)
				abort();
			if (k)
				memcpy(b, in, k);
			r = parse_all(kind, b, k, max_head, max_hdrs, &m, what);
			if (ret > 0)
				ok = (size_t)ret > k ? r == AGAIN : r == ret;
			else
				ok = r == AGAIN || (r == ERR && msg_head(kind, &m)->error ==
									msg_head(kind, out)->error);
			CHECK(ok, "%s: prefix of %zu bytes gives %d (%s), full parse %d", what, k,
			      r, r == ERR ? ename(msg_head(kind, &m)->error) : "-", ret);
			free(b);
		}
	}
	return ret;
}

static const char tchars[] =
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
static const char tgtchars[] =
	"abcdefghijklmnopqrstuvwxyz/ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%?=&:@!$'()*+,;[]";

/* Targets of lengths 0..100 with a bad byte at every position, after
 * request-line prefixes of different lengths (block alignment). */
static void gen_targets(void)
{
	static const unsigned char bad[] = {0x00, 0x01, 0x09, 0x1f, 0x7f, 0x80, 0xff};
	static const unsigned char odd[] = {' ', '\r', '\n'};
	static const char *const pre[] = {"GET ", "\r\nPROPFIND ", "M ", "\r\n\r\nOPTIONS "};
	static const char tail[] = " HTTP/1.1\r\nHost: h\r\n\r\n";
	unsigned p, L, i, j;
	union msg m;

	for (p = 0; p < 4; p++) {
		for (L = 0; L <= 100; L++) {
			struct sb b = {0};
			size_t at;
			int r;

			sb_add(&b, pre[p]);
			at = b.len;
			for (i = 0; i < L; i++)
				sb_addc(&b, tgtchars[(i * 7 + L) % (sizeof(tgtchars) - 1)], 1);
			sb_add(&b, tail);
			if (L == 0) {
				run_gen(K_REQ, b.p, b.len, ERR, SYN_H1_E_TARGET,
					SYN_H1_E_REQUEST_LINE, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS,
					&m, 1, 0);
			} else {
				r = run_gen(K_REQ, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
					    SYN_H1_MAX_HEADERS, &m, L % 10 == 0, at);
				if (r > 0)
					CHECK(m.rq.target.off == at && m.rq.target.len == L,
					      "gen target len %u: span %u+%u", L, m.rq.target.off,
					      m.rq.target.len);
			}
			for (i = 0; i < L; i++) {
				char save = b.p[at + i];

				for (j = 0; j < sizeof(bad); j++) {
					b.p[at + i] = bad[j];
					run_gen(K_REQ, b.p, b.len, ERR, SYN_H1_E_TARGET, 0,
						SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0, at + i);
				}
				for (j = 0; j < sizeof(odd); j++) {
					b.p[at + i] = odd[j];
					run_gen(K_REQ, b.p, b.len, ERR, 0, 0, SYN_H1_MAX_HEAD,
						SYN_H1_MAX_HEADERS, &m, 0, at + i);
				}
				b.p[at + i] = save;
			}
			free(b.p);
		}
	}
}

/* Methods of lengths 1..64 with a bad byte at every position. */
static void gen_methods(void)
{
	static const unsigned char bad[] = {0x00, '(', '@', '/', 0x7f, 0x80, 0xff};
	unsigned L, i, j;
	union msg m;

	for (L = 1; L <= 64; L++) {
		struct sb b = {0};
		int r;

		for (i = 0; i < L; i++)
			sb_addc(&b, tchars[(i * 5 + L) % (sizeof(tchars) - 1)], 1);
		sb_add(&b, " /m HTTP/1.1\r\nHost: h\r\n\r\n");
		r = run_gen(K_REQ, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
			    SYN_H1_MAX_HEADERS, &m, L % 16 == 0, 0);
		if (r > 0)
			CHECK(m.rq.method_name.off == 0 && m.rq.method_name.len == L,
			      "gen method len %u: span %u+%u", L, m.rq.method_name.off,
			      m.rq.method_name.len);
		for (i = 0; i < L; i++) {
			char save = b.p[i];

			for (j = 0; j < sizeof(bad); j++) {
				b.p[i] = bad[j];
				run_gen(K_REQ, b.p, b.len, ERR, SYN_H1_E_METHOD, 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, i);
			}
			b.p[i] = save;
		}
		free(b.p);
	}
}

/* Header names of lengths 0..100 with a bad byte at every position, in
 * requests and responses. */
static void gen_names(void)
{
	static const unsigned char bad[] = {0x00, 0x01, '"', '/', '@', '{', 0x7f, 0x80, 0xff};
	unsigned kind, L, i, j;
	union msg m;

	for (kind = K_REQ; kind <= K_RESP; kind++) {
		for (L = 0; L <= 100; L++) {
			struct sb b = {0};
			size_t at;
			int r;

			sb_add(&b, kind == K_REQ ? "GET /n HTTP/1.1\r\nHost: h\r\n"
						 : "HTTP/1.1 204 No Content\r\nServer: s\r\n");
			at = b.len;
			for (i = 0; i < L; i++)
				sb_addc(&b, tchars[(i * 3 + L) % (sizeof(tchars) - 1)], 1);
			sb_add(&b, ": v\r\nX-Last: w\r\n\r\n");
			if (L == 0) {
				run_gen(kind, b.p, b.len, ERR, SYN_H1_E_HEADER_NAME, 0,
					SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 1, 0);
				free(b.p);
				continue;
			}
			r = run_gen(kind, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
				    SYN_H1_MAX_HEADERS, &m, L % 10 == 0, at);
			if (r > 0) {
				const struct syn_h1_head *h = msg_head(kind, &m);

				CHECK(h->nheaders == 3 && h->headers[1].name.off == at &&
					      h->headers[1].name.len == L &&
					      span_eq(b.p, h->headers[1].value, "v"),
				      "gen name len %u: wrong header fields", L);
			}
			for (i = 0; i < L; i++) {
				char save = b.p[at + i];

				for (j = 0; j < sizeof(bad); j++) {
					b.p[at + i] = bad[j];
					run_gen(kind, b.p, b.len, ERR, SYN_H1_E_HEADER_NAME, 0,
						SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0, at + i);
				}
				/* whitespace: obs-fold at the start, else before-colon */
				b.p[at + i] = ' ';
				run_gen(kind, b.p, b.len, ERR,
					i ? SYN_H1_E_SPACE_BEFORE_COLON : SYN_H1_E_OBS_FOLD,
					i ? SYN_H1_E_HEADER_NAME : 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, at + i);
				b.p[at + i] = '\t';
				run_gen(kind, b.p, b.len, ERR,
					i ? SYN_H1_E_SPACE_BEFORE_COLON : SYN_H1_E_OBS_FOLD,
					i ? SYN_H1_E_HEADER_NAME : 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, at + i);
				b.p[at + i] = '\r';
				run_gen(kind, b.p, b.len, ERR, SYN_H1_E_BARE_CR,
					SYN_H1_E_HEADER_NAME, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS,
					&m, 0, at + i);
				b.p[at + i] = '\n';
				run_gen(kind, b.p, b.len, ERR, SYN_H1_E_BARE_LF,
					SYN_H1_E_HEADER_NAME, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS,
					&m, 0, at + i);
				/* a colon: a shorter name, the rest in the value */
				b.p[at + i] = ':';
				r = run_gen(kind, b.p, b.len, i ? (int)b.len : ERR,
					    SYN_H1_E_HEADER_NAME, 0, SYN_H1_MAX_HEAD,
					    SYN_H1_MAX_HEADERS, &m, 0, at + i);
				if (r > 0)
					CHECK(msg_head(kind, &m)->headers[1].name.len == i,
					      "gen name len %u colon at %u: name len %u", L, i,
					      msg_head(kind, &m)->headers[1].name.len);
				b.p[at + i] = save;
			}
			free(b.p);
		}
	}
}

/* Header values of lengths 0..100 with bad and edge bytes at every
 * position; the value span must be the trimmed value. */
static void gen_values(void)
{
	static const unsigned char bad[] = {0x00, 0x01, 0x08, 0x0b, 0x1f, 0x7f};
	static const unsigned char good[] = {' ', '\t', 0x80, 0xff};
	unsigned kind, L, i, j;
	union msg m;

	for (kind = K_REQ; kind <= K_RESP; kind++) {
		for (L = 0; L <= 100; L++) {
			struct sb b = {0};
			size_t at;
			int r;

			sb_add(&b, kind == K_REQ ? "POST /v HTTP/1.1\r\nHost: h\r\nX-V: "
						 : "HTTP/1.1 200 OK\r\nX-V: ");
			at = b.len;
			for (i = 0; i < L; i++) {
				char ch = tgtchars[(i * 11 + L) % (sizeof(tgtchars) - 1)];

				if (i % 9 == 4 && i + 1 < L)
					ch = ' ';
				else if (i % 13 == 6)
					ch = (char)0xc3;
				sb_addc(&b, ch, 1);
			}
			sb_add(&b, "\r\nContent-Length: 0\r\n\r\n");
			r = run_gen(kind, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
				    SYN_H1_MAX_HEADERS, &m, L % 10 == 0, at);
			if (r > 0) {
				const struct syn_h1_header *f =
					&msg_head(kind, &m)->headers[kind == K_REQ];

				CHECK(f->value.len == L && (!L || f->value.off == at),
				      "gen value len %u: span %u+%u", L, f->value.off,
				      f->value.len);
			}
			for (i = 0; i < L; i++) {
				char save = b.p[at + i];

				for (j = 0; j < sizeof(bad); j++) {
					b.p[at + i] = bad[j];
					run_gen(kind, b.p, b.len, ERR, SYN_H1_E_HEADER_VALUE, 0,
						SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0, at + i);
				}
				b.p[at + i] = '\r';
				run_gen(kind, b.p, b.len, ERR, SYN_H1_E_BARE_CR, 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, at + i);
				b.p[at + i] = '\n';
				run_gen(kind, b.p, b.len, ERR, SYN_H1_E_BARE_LF, 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, at + i);
				for (j = 0; j < sizeof(good); j++) {
					size_t lo = 0, hi = L, k;

					b.p[at + i] = good[j];
					/* expected span: trim SP/HTAB at both ends */
					while (lo < hi &&
					       (b.p[at + lo] == ' ' || b.p[at + lo] == '\t'))
						lo++;
					while (hi > lo && (b.p[at + hi - 1] == ' ' ||
							   b.p[at + hi - 1] == '\t'))
						hi--;
					r = run_gen(kind, b.p, b.len, (int)b.len, 0, 0,
						    SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0,
						    at + i);
					if (r > 0) {
						const struct syn_h1_header *f =
							&msg_head(kind, &m)->headers[kind == K_REQ];

						k = f->value.len;
						CHECK(k == hi - lo &&
							      (!k || f->value.off == at + lo),
						      "gen value len %u byte 0x%02x at %u: span "
						      "%u+%u, "
						      "want %zu+%zu",
						      L, good[j], i, f->value.off, f->value.len,
						      at + lo, hi - lo);
					}
				}
				b.p[at + i] = save;
			}
			free(b.p);
		}
	}
}

/* Host values of lengths 0..100 with a byte outside the Host set at
 * every position. */
static void gen_hosts(void)
{
	static const char hostchars[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%";
	static const unsigned char bad[] = {'/', '@', '^', '`',  '|',  '"', '?',
					    '#', '{', '<', '\\', 0x80, 0xff};
	unsigned L, i, j;
	union msg m;

	for (L = 0; L <= 100; L++) {
		struct sb b = {0};
		size_t at;
		int r;

		sb_add(&b, "GET /h HTTP/1.1\r\nX-Pad: p\r\nHost: ");
		at = b.len;
		for (i = 0; i < L; i++)
			sb_addc(&b, hostchars[(i * 13 + L) % (sizeof(hostchars) - 1)], 1);
		sb_add(&b, "\r\n\r\n");
		r = run_gen(K_REQ, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
			    SYN_H1_MAX_HEADERS, &m, L % 25 == 0, at);
		if (r > 0)
			CHECK(m.rq.h.host.len == L && (!L || m.rq.h.host.off == at),
			      "gen host len %u: span %u+%u", L, m.rq.h.host.off, m.rq.h.host.len);
		for (i = 0; i < L; i++) {
			char save = b.p[at + i];

			for (j = 0; j < sizeof(bad); j++) {
				b.p[at + i] = bad[j];
				run_gen(K_REQ, b.p, b.len, ERR, SYN_H1_E_HOST_INVALID, 0,
					SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0, at + i);
			}
			/* whitespace inside is invalid, at the ends it is trimmed */
			b.p[at + i] = ' ';
			run_gen(K_REQ, b.p, b.len, i && i + 1 < L ? ERR : (int)b.len,
				SYN_H1_E_HOST_INVALID, 0, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m,
				0, at + i);
			b.p[at + i] = save;
		}
		free(b.p);
	}
}

/* Reason phrases of lengths 0..100: all implementations agree, control
 * bytes are refused. */
static void gen_reasons(void)
{
	static const unsigned char bad[] = {0x00, 0x01, 0x7f};
	static const unsigned char other[] = {' ', '\t', 0x80, '\r', '\n'};
	unsigned L, i, j;
	union msg m;

	for (L = 0; L <= 100; L++) {
		struct sb b = {0};
		size_t at;
		int r;

		sb_add(&b, "HTTP/1.1 404 ");
		at = b.len;
		for (i = 0; i < L; i++)
			sb_addc(&b,
				i % 6 == 3 && i + 1 < L
					? ' '
					: tgtchars[(i * 5 + L) % (sizeof(tgtchars) - 1)],
				1);
		sb_add(&b, "\r\nContent-Length: 0\r\n\r\n");
		r = run_gen(K_RESP, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
			    SYN_H1_MAX_HEADERS, &m, L % 20 == 0, at);
		if (r > 0)
			CHECK(m.rs.status == 404 && m.rs.reason.len == L &&
				      (!L || m.rs.reason.off == at),
			      "gen reason len %u: span %u+%u", L, m.rs.reason.off, m.rs.reason.len);
		for (i = 0; i < L; i++) {
			char save = b.p[at + i];

			for (j = 0; j < sizeof(bad); j++) {
				b.p[at + i] = bad[j];
				run_gen(K_RESP, b.p, b.len, ERR, 0, 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, at + i);
			}
			for (j = 0; j < sizeof(other); j++) {
				b.p[at + i] = other[j];
				run_gen(K_RESP, b.p, b.len, 0, 0, 0, SYN_H1_MAX_HEAD,
					SYN_H1_MAX_HEADERS, &m, 0, at + i);
			}
			b.p[at + i] = save;
		}
		free(b.p);
	}
}

/* Every octet at every position of a 40-byte field (so across the 16- and
 * 32-byte blocks of the SIMD scanners), in each kind of field; want < 0 in
 * the classifier means "any error", 0 "don't care". */
enum { F_METHOD, F_TARGET, F_NAME, F_VALUE, F_HOST, F_REASON, F__COUNT };

static void classify(int field, unsigned b, unsigned i, unsigned L, int *valid, int *err, int *err2)
{
	int ctl = b < 0x20 || b == 0x7f, ws = b == ' ' || b == '\t';

	*valid = 0;
	*err = *err2 = 0;
	switch (field) {
	case F_METHOD:
		if (is_tchar(b))
			*valid = 1;
		else if (b != ' ' && b != '\r' && b != '\n')
			*err = SYN_H1_E_METHOD;
		return;
	case F_TARGET:
		if (b >= 0x21 && b <= 0x7e)
			*valid = 1;
		else if (b != ' ' && b != '\r' && b != '\n')
			*err = SYN_H1_E_TARGET;
		return;
	case F_NAME:
		if (is_tchar(b) || (b == ':' && i > 0))
			*valid = 1;
		else if (ws && i == 0)
			*err = SYN_H1_E_OBS_FOLD;
		else if (ws)
			*err = SYN_H1_E_SPACE_BEFORE_COLON, *err2 = SYN_H1_E_HEADER_NAME;
		else if (b == '\r')
			*err = SYN_H1_E_BARE_CR, *err2 = SYN_H1_E_HEADER_NAME;
		else if (b == '\n')
			*err = SYN_H1_E_BARE_LF, *err2 = SYN_H1_E_HEADER_NAME;
		else
			*err = SYN_H1_E_HEADER_NAME;
		return;
	case F_VALUE:
	case F_REASON:
		if (!ctl || b == '\t')
			*valid = 1;
		else if (field == F_REASON)
			return;
		else if (b == '\r')
			*err = SYN_H1_E_BARE_CR;
		else if (b == '\n')
			*err = SYN_H1_E_BARE_LF;
		else
			*err = SYN_H1_E_HEADER_VALUE;
		return;
	case F_HOST:
		if ((b < 0x80 && isalnum((int)b)) || (b && strchr("-._~!$&'()*+,;=:[]%", (int)b)) ||
		    (ws && (i == 0 || i == L - 1)))
			*valid = 1;
		else if (b == '\r')
			*err = SYN_H1_E_BARE_CR;
		else if (b == '\n')
			*err = SYN_H1_E_BARE_LF;
		else if (ctl && b != '\t')
			*err = SYN_H1_E_HEADER_VALUE, *err2 = SYN_H1_E_HOST_INVALID;
		else
			*err = SYN_H1_E_HOST_INVALID;
		return;
	}
}

static void gen_all_bytes(void)
{
	static const char *const pre[F__COUNT] = {
		"",
		"GET ",
		"GET / HTTP/1.1\r\nHost: h\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-V: ",
		"GET / HTTP/1.1\r\nHost: ",
		"HTTP/1.1 200 ",
	};
	static const char *const post[F__COUNT] = {
		" /m HTTP/1.1\r\nHost: h\r\n\r\n",
		" HTTP/1.1\r\nHost: h\r\n\r\n",
		": v\r\n\r\n",
		"\r\n\r\n",
		"\r\n\r\n",
		"\r\nContent-Length: 0\r\n\r\n",
	};
	static const char alnum[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	const unsigned L = 40;
	unsigned field, i, b;
	union msg m;

	for (field = 0; field < F__COUNT; field++) {
		struct sb s = {0};
		int kind = field == F_REASON ? K_RESP : K_REQ;
		size_t at;

		sb_add(&s, pre[field]);
		at = s.len;
		for (i = 0; i < L; i++)
			sb_addc(&s, alnum[(i * 7 + field) % (sizeof(alnum) - 1)], 1);
		sb_add(&s, post[field]);
		for (i = 0; i < L; i++) {
			char save = s.p[at + i];

			for (b = 0; b < 256; b++) {
				int valid, err, err2, r;

				classify(field, b, i, L, &valid, &err, &err2);
				s.p[at + i] = (char)b;
				r = run_gen(kind, s.p, s.len, valid ? (int)s.len : ERR, err, err2,
					    SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0, at + i);
				if (r <= 0 || !(is_tchar(b) && b != ':'))
					continue;
				/* the field's span covers all of it */
				switch (field) {
				case F_METHOD:
					CHECK(m.rq.method_name.len == L, "all bytes: method span");
					break;
				case F_TARGET:
					CHECK(m.rq.target.off == at && m.rq.target.len == L,
					      "all bytes: target span");
					break;
				case F_NAME:
					CHECK(m.rq.h.headers[1].name.off == at &&
						      m.rq.h.headers[1].name.len == L,
					      "all bytes: name span");
					break;
				case F_VALUE:
					CHECK(m.rq.h.headers[1].value.off == at &&
						      m.rq.h.headers[1].value.len == L,
					      "all bytes: value span");
					break;
				case F_REASON:
					CHECK(m.rs.reason.off == at && m.rs.reason.len == L,
					      "all bytes: reason span");
					break;
				}
			}
			s.p[at + i] = save;
		}
		free(s.p);
	}
}

/* ---- limits ------------------------------------------------------------- */

static void build_nheaders(struct sb *b, int kind, unsigned n)
{
	unsigned i;
	char line[64];

	b->len = 0;
	if (kind == K_REQ) {
		sb_add(b, "GET /many HTTP/1.1\r\nHost: many.example\r\n");
		i = 1;
	} else {
		sb_add(b, "HTTP/1.1 200 OK\r\n");
		i = 0;
	}
	for (; i < n; i++) {
		snprintf(line, sizeof(line), "X-Header-%u: value %u\r\n", i, i * 7);
		sb_add(b, line);
	}
	sb_add(b, "\r\n");
}

static void test_header_count(void)
{
	struct sb b = {0};
	unsigned kind, n, lim;
	union msg m;

	for (kind = K_REQ; kind <= K_RESP; kind++) {
		/* 64 exactly, then 65, at the default limit; every split */
		build_nheaders(&b, kind, SYN_H1_MAX_HEADERS);
		if (run_gen(kind, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS,
			    &m, 1, 0) > 0) {
			const struct syn_h1_head *h = msg_head(kind, &m);
			unsigned i;

			CHECK(h->nheaders == SYN_H1_MAX_HEADERS, "64 headers: nheaders %u",
			      h->nheaders);
			for (i = kind == K_REQ; i < h->nheaders; i++) {
				char name[32], value[32];

				snprintf(name, sizeof(name), "X-Header-%u", i);
				snprintf(value, sizeof(value), "value %u", i * 7);
				CHECK(span_eq(b.p, h->headers[i].name, name) &&
					      span_eq(b.p, h->headers[i].value, value),
				      "64 headers: header %u wrong", i);
			}
		}
		build_nheaders(&b, kind, SYN_H1_MAX_HEADERS + 1);
		run_gen(kind, b.p, b.len, ERR, SYN_H1_E_TOO_MANY_HEADERS, 0, SYN_H1_MAX_HEAD,
			SYN_H1_MAX_HEADERS, &m, 1, 0);
		build_nheaders(&b, kind, SYN_H1_MAX_HEADERS + 10);
		run_gen(kind, b.p, b.len, ERR, SYN_H1_E_TOO_MANY_HEADERS, 0, SYN_H1_MAX_HEAD,
			SYN_H1_MAX_HEADERS, &m, 0, 0);
		CHECK(syn_h1_err_status(SYN_H1_E_TOO_MANY_HEADERS) == 431, "431");

		/* smaller configured limits */
		for (lim = 1; lim <= 8; lim++) {
			for (n = kind == K_REQ; n <= 9; n++) {
				build_nheaders(&b, kind, n);
				if (n <= lim)
					run_gen(kind, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
						lim, &m, n == lim, 0);
				else
					run_gen(kind, b.p, b.len, ERR, SYN_H1_E_TOO_MANY_HEADERS, 0,
						SYN_H1_MAX_HEAD, lim, &m, n == lim + 1, 0);
			}
		}
	}
	/* HTTP/1.0 requests under max_headers 1 */
	run_gen(K_REQ, "GET / HTTP/1.0\r\n\r\n", 18, 18, 0, 0, SYN_H1_MAX_HEAD, 1, &m, 1, 0);
	run_gen(K_REQ, "GET / HTTP/1.0\r\nA: b\r\n\r\n", 24, 24, 0, 0, SYN_H1_MAX_HEAD, 1, &m, 1,
		0);
	run_gen(K_REQ, "GET / HTTP/1.0\r\nA: b\r\nC: d\r\n\r\n", 30, ERR, SYN_H1_E_TOO_MANY_HEADERS,
		0, SYN_H1_MAX_HEAD, 1, &m, 1, 0);
	free(b.p);
}

/* Prefix k of in, parsed with a head limit: AGAIN below the head length
 * when it fits, else AGAIN below max_head and HEAD_TOO_LARGE from it on. */
static void check_head_limit(int kind, const char *in, size_t len, size_t head, size_t max_head,
			     const char *what)
{
	union msg m;
	size_t k;
	int bad = 0;

	for (k = 0; k <= len && bad < 3; k = next_k(k, len)) {
		char *b = malloc(k);
		int r, ok;

		if (!b && k)
			abort();
		if (k)
			memcpy(b, in, k);
		r = parse_all(kind, b, k, max_head, SYN_H1_MAX_HEADERS, &m, what);
		if (head <= max_head)
			ok = k < head ? r == AGAIN : r == (int)head;
		else
			ok = k < max_head ? r == AGAIN
					  : (r == ERR &&
					     msg_head(kind, &m)->error == SYN_H1_E_HEAD_TOO_LARGE);
		CHECK(ok, "%s: head %zu, max_head %zu, prefix %zu: got %d (%s)", what, head,
		      max_head, k, r, r == ERR ? ename(msg_head(kind, &m)->error) : "-");
		bad += !ok;
		free(b);
	}
}

static void test_head_size(void)
{
	static const char rq[] = "\r\nGET /lim HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\nGET";
	static const char rs[] = "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\r\nHTTP";
	struct sb b = {0};
	size_t head, max;
	long d;

	/* small limits around the head length */
	head = sizeof(rq) - 1 - 3;
	for (d = 1 - (long)head; d <= 40; d++) {
		max = head + d;
		if (d < -5 && d > -(long)head + 3 && d % 7)
			continue;
		ncases++;
		check_head_limit(K_REQ, rq, sizeof(rq) - 1, head, max, "limit req");
	}
	head = sizeof(rs) - 1 - 4;
	for (d = 1 - (long)head; d <= 40; d++) {
		max = head + d;
		if (d < -5 && d > -(long)head + 3 && d % 7)
			continue;
		ncases++;
		check_head_limit(K_RESP, rs, sizeof(rs) - 1, head, max, "limit resp");
	}

	/* the default 65535: a head of exactly that size passes, one more
	 * byte fails; a following body does not count */
	for (d = -1; d <= 1; d++) {
		int kind;

		for (kind = K_REQ; kind <= K_RESP; kind++) {
			static const char *const pre[] = {
				"GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ",
				"HTTP/1.1 200 OK\r\nX-Big: ",
			};
			size_t fill;

			b.len = 0;
			sb_add(&b, pre[kind]);
			fill = SYN_H1_MAX_HEAD + d - b.len -
			       strlen("x\r\nContent-Length: 5\r\n\r\n") + 1;
			sb_addc(&b, 'v', fill - 1);
			sb_add(&b, "x\r\nContent-Length: 5\r\n\r\n");
			head = b.len;
			CHECK(head == (size_t)(SYN_H1_MAX_HEAD + d), "big head: %zu", head);
			sb_add(&b, "hello");
			ncases++;
			check_head_limit(kind, b.p, b.len, head, SYN_H1_MAX_HEAD, "big head");
		}
	}
	/* leading CRLFs count */
	b.len = 0;
	for (d = 0; d < 5; d++)
		sb_add(&b, "\r\n");
	sb_add(&b, "GET /big HTTP/1.1\r\nHost: a\r\nX-Big: ");
	sb_addc(&b, 'v', SYN_H1_MAX_HEAD - b.len - 4);
	sb_add(&b, "\r\n\r\n");
	ncases++;
	check_head_limit(K_REQ, b.p, b.len, b.len, SYN_H1_MAX_HEAD, "big head crlf");

	/* never-ending garbage of many kinds is refused at max_head */
	{
		static const char *const fill[] = {"a", "X-Y: z\r\n", " ", "\r\n"};
		int f;

		for (f = 0; f < 4; f++) {
			b.len = 0;
			sb_add(&b, "GET /x HTTP/1.1\r\nHost: a\r\n");
			if (f == 0 || f == 2)
				sb_add(&b, "X-Long: ");
			while (b.len < 300)
				sb_add(&b, fill[f]);
			if (f == 3) {
				/* blank lines end the head: only the leading ones count */
				b.len = 0;
				while (b.len < 300)
					sb_add(&b, "\r\n");
			}
			ncases++;
			check_head_limit(K_REQ, b.p, b.len, (size_t)-1, 200, "endless");
		}
	}
	free(b.p);
}

/* (a) pipelining: each parse returns the head length, the next message
 * starts after it (and after its body). */
static void test_pipeline(void)
{
	static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
				 "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
				 "\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
				 "PUT /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
				 "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
				 "HEAD /e HTTP/1.0\r\n\r\n"
				 "GET /f HTTP/1.1\r\nHost: x\r\n";
	static const char *const targets[] = {"/a", "/b", "/c", "/d", "/e"};
	static const uint8_t methods[] = {SYN_M_GET, SYN_M_POST, SYN_M_GET, SYN_M_PUT, SYN_M_HEAD};
	size_t len = sizeof(in) - 1, off = 0;
	char *buf = malloc(len);
	union msg m;
	int i;

	memcpy(buf, in, len);
	for (i = 0; i < 5; i++) {
		int r = parse_all(K_REQ, buf + off, len - off, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS,
				  &m, "pipeline");

		ncases++;
		CHECK(r > 0, "pipeline %d at %zu: %d", i, off, r);
		if (r <= 0)
			break;
		CHECK(m.rq.method == methods[i] && span_eq(buf + off, m.rq.target, targets[i]),
		      "pipeline %d: target \"%s\"", i,
		      esc(buf + off + m.rq.target.off, m.rq.target.len));
		off += r;
		if (m.rq.h.flags & LEN) {
			off += m.rq.h.content_length;
		} else if (m.rq.h.flags & CHK) {
			struct syn_h1_chunked c;
			long n;
			int data;

			syn_h1_chunked_init(&c);
			while (!syn_h1_chunked_done(&c)) {
				n = syn_h1_chunked_parse(&c, buf + off, len - off, &data);
				CHECK(n > 0, "pipeline chunked: %ld", n);
				if (n <= 0)
					break;
				off += n;
			}
		}
	}
	CHECK(i == 5, "pipeline: %d requests", i);
	CHECK(parse_all(K_REQ, buf + off, len - off, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m,
			"pipeline tail") == AGAIN,
	      "pipeline: the incomplete last is not AGAIN");
	free(buf);
}

/* ---- the known-header index and small functions ------------------------ */

static const char *const known[SYN_HDR__COUNT] = {
#define SYN_T_HDR_NAME(id, name) [SYN_HDR_##id] = name,
	SYN_H1_KNOWN_HEADERS(SYN_T_HDR_NAME)
#undef SYN_T_HDR_NAME
};

static void test_known_headers(void)
{
	struct sb b = {0};
	union msg m;
	int id;

	CHECK(SYN_HDR__COUNT == 39, "%d known headers, want 38", SYN_HDR__COUNT - 1);
	CHECK(syn_h1_header_id("Content-Length", 14) == SYN_HDR_CONTENT_LENGTH, "Content-Length");
	CHECK(syn_h1_header_id("X-Foo", 5) == SYN_HDR_NONE, "X-Foo");
	CHECK(syn_h1_header_id("", 0) == SYN_HDR_NONE, "empty name");
	CHECK(syn_h1_header_id("Content-Lengt", 13) == SYN_HDR_NONE, "Content-Lengt");
	CHECK(syn_h1_header_id("Content-Lengthx", 15) == SYN_HDR_NONE, "Content-Lengthx");
	CHECK(syn_h1_header_id("Hostx", 4) == SYN_HDR_HOST, "length bounds the name");
	CHECK(syn_h1_header_id("Content_Length", 14) == SYN_HDR_NONE, "Content_Length");
	CHECK(syn_h1_header_id("Content-Length", 15) == SYN_HDR_NONE, "Content-Length\\0");

	for (id = 1; id < SYN_HDR__COUNT; id++) {
		size_t n = strlen(known[id]), i;
		char up[64], odd[64];
		const struct syn_h1_header *f;
		int r;

		for (i = 0; i <= n; i++) {
			up[i] = (known[id][i] >= 'a' && known[id][i] <= 'z') ? known[id][i] - 32
									     : known[id][i];
			odd[i] = i % 2 ? up[i] : known[id][i];
		}
		CHECK(syn_h1_header_id(known[id], n) == id, "header_id(%s)", known[id]);
		CHECK(syn_h1_header_id(up, n) == id, "header_id(%s)", up);
		CHECK(syn_h1_header_id(odd, n) == id, "header_id(%s)", odd);
		CHECK(syn_h1_header_id(odd, n - 1) != id, "header_id(%.*s)", (int)n - 1, odd);
		CHECK(syn_h1_header_name(id) && !strcmp(syn_h1_header_name(id), known[id]),
		      "header_name(%d) = %s, want %s", id,
		      syn_h1_header_name(id) ? syn_h1_header_name(id) : "NULL", known[id]);

		/* in a parsed message, after an unknown header and before a
		 * repeat of itself */
		if (id == SYN_HDR_HOST || id == SYN_HDR_CONNECTION ||
		    id == SYN_HDR_CONTENT_LENGTH || id == SYN_HDR_TRANSFER_ENCODING ||
		    id == SYN_HDR_EXPECT)
			continue;
		b.len = 0;
		sb_add(&b, "GET / HTTP/1.1\r\nX-Foo: 1\r\nHost: a\r\n");
		sb_add(&b, odd);
		sb_add(&b, ": first\r\n");
		sb_add(&b, up);
		sb_add(&b, ": second\r\n\r\n");
		ncases++;
		r = run_gen(K_REQ, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD,
			    SYN_H1_MAX_HEADERS, &m, 0, 0);
		if (r <= 0)
			continue;
		CHECK(m.rq.h.idx[id] == 3, "%s: idx %u, want 3", odd, m.rq.h.idx[id]);
		f = syn_h1_find(&m.rq.h, id);
		CHECK(f == &m.rq.h.headers[2] && span_eq(b.p, f->value, "first"), "syn_h1_find(%s)",
		      odd);
		CHECK(m.rq.h.idx[SYN_HDR_HOST] == 2, "%s: Host idx %u", odd,
		      m.rq.h.idx[SYN_HDR_HOST]);
		for (i = 1; i < SYN_HDR__COUNT; i++)
			if ((int)i != id && i != SYN_HDR_HOST)
				CHECK(!m.rq.h.idx[i], "%s: idx[%zu] set", odd, i);
	}

	/* the table case with odd-cased names, by index */
	b.len = 0;
	sb_add(&b, "GET / HTTP/1.1\r\nhOsT: a\r\nCONTENT-TYPE: text/plain\r\nuser-agent: x\r\n"
		   "X-Forwarded-For: 1.2.3.4\r\nX-Foo: bar\r\nx-FORWARDED-for: 5.6.7.8\r\n"
		   "Content-type: y\r\nx-forwarded-proto: https\r\n\r\n");
	if (run_gen(K_REQ, b.p, b.len, (int)b.len, 0, 0, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS, &m, 0,
		    0) > 0) {
		const struct syn_h1_head *h = &m.rq.h;

		CHECK(h->idx[SYN_HDR_HOST] == 1 && h->idx[SYN_HDR_CONTENT_TYPE] == 2 &&
			      h->idx[SYN_HDR_USER_AGENT] == 3 &&
			      h->idx[SYN_HDR_X_FORWARDED_FOR] == 4 &&
			      h->idx[SYN_HDR_X_FORWARDED_PROTO] == 8 && h->idx[SYN_HDR_COOKIE] == 0,
		      "odd-case idx: %u %u %u %u %u", h->idx[SYN_HDR_HOST],
		      h->idx[SYN_HDR_CONTENT_TYPE], h->idx[SYN_HDR_USER_AGENT],
		      h->idx[SYN_HDR_X_FORWARDED_FOR], h->idx[SYN_HDR_X_FORWARDED_PROTO]);
		CHECK(span_eq(b.p, syn_h1_find(h, SYN_HDR_X_FORWARDED_FOR)->value, "1.2.3.4"),
		      "find X-Forwarded-For");
		CHECK(syn_h1_find(h, SYN_HDR_ACCEPT) == NULL, "find Accept");
		for (id = 1; id < SYN_HDR__COUNT; id++)
			if (id != SYN_HDR_HOST && id != SYN_HDR_CONTENT_TYPE &&
			    id != SYN_HDR_USER_AGENT && id != SYN_HDR_X_FORWARDED_FOR &&
			    id != SYN_HDR_X_FORWARDED_PROTO)
				CHECK(!h->idx[id], "idx[%s] set by an unknown header", known[id]);
	}
	free(b.p);
}

static void test_small_functions(void)
{
	static const char buf[] = "xxKeep-Alive";
	struct syn_span s = {2, 10};
	int e, level;

	for (e = 0; e < SYN_H1_E__COUNT; e++) {
		const char *t = syn_h1_err_text(e);

		CHECK(syn_h1_err_status(e) == want_status(e), "err_status(%s) = %d, want %d",
		      ename(e), syn_h1_err_status(e), want_status(e));
		CHECK(t && *t, "err_text(%s)", ename(e));
	}
	CHECK(syn_h1_span_ieq(buf, s, "keep-alive", 10), "span_ieq");
	CHECK(!syn_h1_span_ieq(buf, s, "keep-alivx", 10), "span_ieq mismatch");
	CHECK(!syn_h1_span_ieq(buf, s, "keep-aliv", 9), "span_ieq length");
	s.len = 0;
	CHECK(syn_h1_span_ieq(buf, s, "", 0), "span_ieq empty");

	CHECK(syn_simd_detect() >= SYN_SIMD_SCALAR && syn_simd_detect() < SYN_SIMD__COUNT,
	      "simd_detect %d", syn_simd_detect());
	CHECK(syn_simd_level() <= syn_simd_detect(), "simd_level %d", syn_simd_level());
	for (level = 0; level < SYN_SIMD__COUNT; level++)
		CHECK(!impls[level] == (level > syn_simd_detect()), "syn_h1_impl(%d) %p", level,
		      (const void *)impls[level]);
	CHECK(impls[SYN_SIMD_SCALAR] != NULL, "no scalar implementation");
	CHECK(!strcmp(syn_simd_name(SYN_SIMD_SCALAR), "scalar") &&
		      !strcmp(syn_simd_name(SYN_SIMD_SSE42), "sse4.2") &&
		      !strcmp(syn_simd_name(SYN_SIMD_AVX2), "avx2"),
	      "simd names");
}

int main(void)
{
	int level;

	for (level = 0; level < SYN_SIMD__COUNT; level++)
		impls[level] = syn_h1_impl(level);
	printf("test_http1: simd level %s; implementations:", syn_simd_name(syn_simd_level()));
	for (level = 0; level < SYN_SIMD__COUNT; level++)
		if (impls[level])
			printf(" %s", syn_simd_name(level));
	printf("\n");

	test_small_functions();
	test_tables();
	test_pipeline();
	test_known_headers();
	test_header_count();
	test_head_size();
	gen_methods();
	gen_targets();
	gen_names();
	gen_values();
	gen_hosts();
	gen_all_bytes();
	gen_reasons();

	printf("test_http1: %lu table cases (%zu request, %zu response rows), %lu generated "
	       "inputs\n",
	       ncases, sizeof(req_cases) / sizeof(req_cases[0]),
	       sizeof(resp_cases) / sizeof(resp_cases[0]), ngenerated);
	return check_report();
}
