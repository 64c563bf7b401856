/* native/tests/test_chunked.c - the resumable chunked-body decoder.
 *
 * Every body is decoded five ways: whole, one byte at a time, in random
 * pieces (fixed seed), and "spliced" (in DATA state the caller takes
 * c->remaining bytes itself and calls syn_h1_chunked_skip()), whole and
 * byte by byte.  Each piece is copied to a heap buffer of exactly its size
 * so that ASan sees any read past it.  Valid bodies must decode to the
 * expected payload, end exactly at the end of the body (the bytes after it
 * untouched); invalid ones must fail with the same error every way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syn/http1.h"
#include "check.h"
#include "h1_text.h"

static unsigned long ncases, ngenerated;

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
	if (n)
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

/* A small deterministic generator, so failures reproduce. */
static uint32_t rnd_state;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* ---- the driver --------------------------------------------------------- */

enum feed {
	FEED_WHOLE,
	FEED_BYTE,
	FEED_RANDOM,
	FEED_SPLICE,      /* whole, data taken with syn_h1_chunked_skip() */
	FEED_SPLICE_BYTE, /* byte by byte, the same */
	FEED__COUNT
};

static const char *const feed_names[] = {"whole", "bytewise", "random", "splice",
					 "splice-bytewise"};

struct result {
	size_t consumed;
	int err; /* 0, or the error code */
	int done;
	int stalled; /* returned 0 with input left and not done */
	struct sb data;
};

static void decode(const char *buf, size_t len, enum feed feed, uint32_t seed, struct result *res,
		   const char *what)
{
	struct syn_h1_chunked c;
	size_t pos = 0;

	memset(res, 0, sizeof(*res));
	sb_addn(&res->data, "", 0);
	syn_h1_chunked_init(&c);
	CHECK(c.state == SYN_CK_SIZE_FIRST && !c.remaining && !c.last && !syn_h1_chunked_done(&c),
	      "%s: syn_h1_chunked_init state %u", what, c.state);
	rnd_state = seed;

	while (pos < len && !syn_h1_chunked_done(&c)) {
		size_t lim;

		switch (feed) {
		case FEED_BYTE:
		case FEED_SPLICE_BYTE:
			lim = pos + 1;
			break;
		case FEED_RANDOM:
			lim = pos + 1 + rnd() % 23;
			break;
		default:
			lim = len;
		}
		if (lim > len)
			lim = len;

		while (pos < lim && !syn_h1_chunked_done(&c)) {
			uint64_t rem = c.remaining;
			int state = c.state, data = -1;
			char *piece;
			long n;

			if ((feed == FEED_SPLICE || feed == FEED_SPLICE_BYTE) &&
			    c.state == SYN_CK_DATA) {
				uint64_t take = c.remaining < lim - pos ? c.remaining : lim - pos;

				CHECK(take > 0, "%s: DATA state with remaining 0", what);
				if (!take) {
					res->stalled = 1;
					goto out;
				}
				sb_addn(&res->data, buf + pos, take);
				syn_h1_chunked_skip(&c, take);
				CHECK(c.remaining == rem - take, "%s: skip(%llu) left %llu of %llu",
				      what, (unsigned long long)take,
				      (unsigned long long)c.remaining, (unsigned long long)rem);
				pos += take;
				continue;
			}

			piece = malloc(lim - pos);
			if (!piece)
				abort();
			memcpy(piece, buf + pos, lim - pos);
			n = syn_h1_chunked_parse(&c, piece, lim - pos, &data);
			free(piece);
			if (n < 0) {
				CHECK(n == SYN_PARSE_ERR, "%s: returned %ld", what, n);
				CHECK(c.error > SYN_H1_E_OK && c.error < SYN_H1_E__COUNT,
				      "%s: ERR with error %u", what, c.error);
				res->err = c.error ? c.error : -1;
				goto out;
			}
			CHECK((size_t)n <= lim - pos, "%s: consumed %ld of %zu", what, n,
			      lim - pos);
			if ((size_t)n > lim - pos)
				n = lim - pos;
			CHECK(data == 0 || data == 1 || n == 0, "%s: *data = %d", what, data);
			if (data == 1 && n > 0) {
				CHECK(state == SYN_CK_DATA && (uint64_t)n <= rem &&
					      c.remaining == rem - n,
				      "%s: a data run of %ld from state %d, remaining %llu -> %llu",
				      what, n, state, (unsigned long long)rem,
				      (unsigned long long)c.remaining);
				sb_addn(&res->data, buf + pos, n);
			}
			pos += n;
			if (n == 0 && !syn_h1_chunked_done(&c)) {
				res->stalled = 1;
				CHECK(0, "%s: stalled at %zu in state %u", what, pos, c.state);
				goto out;
			}
		}
	}
out:
	res->consumed = pos;
	res->done = syn_h1_chunked_done(&c);
	if (res->done && pos < len) {
		/* after the end nothing more is taken */
		int data = 0;
		long n = syn_h1_chunked_parse(&c, buf + pos, len - pos, &data);

		CHECK(n == 0 && syn_h1_chunked_done(&c),
		      "%s: after the end, parse takes %ld more bytes", what, n);
	}
}

/* Decode every way; valid bodies (err == 0) must give want/wlen and
 * consume exactly len bytes of in + trailing junk; invalid ones must fail
 * with err or err2 (err -1: any error), the same error every way. */
static void check_body(const char *in, size_t len, int err, int err2, const char *want, size_t wlen,
		       const char *what)
{
	static const char junk[] = "HTTP/1.1 200 OK\r\n\r\n5\r\nhello";
	struct sb b = {0};
	struct result r;
	int f, pass, first_err = 0;

	sb_addn(&b, in, len);
	for (pass = 0; pass < 2; pass++) {
		size_t blen = len + (pass ? sizeof(junk) - 1 : 0);
		char w[700];

		if (pass)
			sb_addn(&b, junk, sizeof(junk) - 1);
		for (f = 0; f < FEED__COUNT; f++) {
			snprintf(w, sizeof(w), "%s [%s%s]", what, feed_names[f],
				 pass ? ", junk after" : "");
			decode(b.p, blen, f, 0x5eed + pass, &r, w);
			if (!err) {
				CHECK(!r.err && r.done && r.consumed == len,
				      "%s: error %s, done %d, consumed %zu of %zu", w, ename(r.err),
				      r.done, r.consumed, len);
				CHECK(r.data.len == wlen && !memcmp(r.data.p, want, wlen),
				      "%s: data \"%s\", want \"%s\"", w, esc(r.data.p, r.data.len),
				      esc(want, wlen));
			} else {
				CHECK(err < 0 ? r.err != 0
					      : (r.err == err || (err2 && r.err == err2)),
				      "%s: error %s (done %d, consumed %zu), want %s%s%s", w,
				      ename(r.err), r.done, r.consumed, ename(err),
				      err2 ? " or " : "", err2 ? ename(err2) : "");
				CHECK(r.consumed <= len, "%s: consumed %zu of %zu", w, r.consumed,
				      len);
				if (!first_err)
					first_err = r.err;
				CHECK(r.err == first_err, "%s: error %s, %s with whole input", w,
				      ename(r.err), ename(first_err));
				if (r.err == SYN_H1_E_TRAILER_TOO_LARGE)
					CHECK(syn_h1_err_status(r.err) == 431, "431");
				else if (r.err)
					CHECK(syn_h1_err_status(r.err) == 400, "%s: status %d", w,
					      syn_h1_err_status(r.err));
			}
			free(r.data.p);
		}
		/* errors are found where they are: junk after the body does
		 * not change them */
		if (err)
			break;
	}
	free(b.p);
}

/* ---- table cases -------------------------------------------------------- */

struct ck_case {
	const char *in;
	size_t len;
	int err, err2;
	const char *data;
	size_t dlen;
};

#define IN(s)    .in = (s), .len = sizeof(s) - 1
#define OUT(s)   .data = (s), .dlen = sizeof(s) - 1
#define E(e)     .err = SYN_H1_E_##e
#define E2(a, b) .err = SYN_H1_E_##a, .err2 = SYN_H1_E_##b
#define D31      "0123456789abcdefghijklmnopqrstu"

static const struct ck_case cases[] = {
	/* valid */
	{IN("0\r\n\r\n"), OUT("")},
	{IN("5\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"), OUT("hello world")},
	{IN("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"), OUT("0123456789abcdefghij")},
	{IN("1f\r\n" D31 "\r\n1F\r\n" D31 "\r\n0\r\n\r\n"), OUT(D31 D31)},
	{IN("0005\r\nhello\r\n000\r\n\r\n"), OUT("hello")},
	{IN("00000000000000000000005\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("0000000000000000000000000000000000000000\r\n\r\n"), OUT("")},
	{IN("5;a=b\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a\r\nhello\r\n0;last\r\n\r\n"), OUT("hello")},
	{IN("5;a=\"q \\\" s\"\r\nhello\r\n0;x=y\r\n\r\n"), OUT("hello")},
	{IN("5 ;a=b\r\nhello\r\n0\t;c\r\n\r\n"), OUT("hello")},
	{IN("5 \t ;a=b\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a=b;c=d;e\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a=\"x;y\\\\\"\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a=\"\"\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a=\"\x80\xff\t \"\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a=\"\\\x80\"\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("7\r\n0\r\n\r\nab\r\n0\r\n\r\n"), OUT("0\r\n\r\nab")},
	{IN("1\r\n\n\r\n1\r\n\r\r\n0\r\n\r\n"), OUT("\n\r")},
	{IN("3\r\n\0\r\n\r\n0\r\n\r\n"), OUT("\0\r\n")},
	{IN("2\r\n\x80\xff\r\n0\r\n\r\n"), OUT("\x80\xff")},
	{IN("0\r\nX-T: 1\r\n\r\n"), OUT("")},
	{IN("5\r\nhello\r\n0\r\nA: 1\r\nB-b: x y\r\nC:\r\nD: \t\r\n\r\n"), OUT("hello")},
	{IN("0\r\nX: \x80\xff\r\n\r\n"), OUT("")},
	{IN("0\r\n!#$%&'*+-.^_`|~: v\r\n\r\n"), OUT("")},
	{IN("0;a=b\r\nX: y\r\n\r\n"), OUT("")},

	/* sizes */
	{IN("g\r\n"), E(CHUNK_SIZE)},
	{IN("\r\n"), E(CHUNK_SIZE)},
	{IN(";a=b\r\nhello\r\n0\r\n\r\n"), E(CHUNK_SIZE)},
	{IN(" 5\r\nhello\r\n0\r\n\r\n"), E(CHUNK_SIZE)},
	{IN("\t5\r\nhello\r\n0\r\n\r\n"), E(CHUNK_SIZE)},
	{IN("-5\r\nhello\r\n0\r\n\r\n"), E(CHUNK_SIZE)},
	{IN("+5\r\nhello\r\n0\r\n\r\n"), E(CHUNK_SIZE)},
	{IN("\x80\r\n"), E(CHUNK_SIZE)},
	{IN("\0\r\n"), E(CHUNK_SIZE)},
	{IN("0x5\r\nhello\r\n0\r\n\r\n"), E2(CHUNK_SIZE, CHUNK_EXT)},
	{IN("5g\r\nhello\r\n0\r\n\r\n"), E2(CHUNK_SIZE, CHUNK_EXT)},
	{IN("5 x\r\nhello\r\n0\r\n\r\n"), E2(CHUNK_SIZE, CHUNK_EXT)},
	{IN("5\r\nhello\r\nz\r\n"), E(CHUNK_SIZE)},
	{IN("5\r\nhello\r\n\r\n"), E(CHUNK_SIZE)},
	{IN("5\rhello\r\n0\r\n\r\n"), E2(BARE_CR, CHUNK_SIZE)},
	{IN("10000000000000000\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	{IN("00000000010000000000000000\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	{IN("ffffffffffffffff\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	{IN("FFFFFFFFFFFFFFFFF\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	{IN("8000000000000001\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	{IN("123456789abcdef0123\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	{IN("5\r\nhello\r\n10000000000000000\r\n"), E(CHUNK_SIZE_OVERFLOW)},
	/* line endings */
	{IN("5\nhello\r\n0\r\n\r\n"), E(BARE_LF)},
	{IN("5\r\nhello\n0\r\n\r\n"), E(BARE_LF)},
	{IN("5;a=b\nhello\r\n0\r\n\r\n"), E(BARE_LF)},
	{IN("0\n\r\n"), E(BARE_LF)},
	{IN("0\r\n\n"), E(BARE_LF)},
	{IN("0\r\nX: 1\n\r\n"), E(BARE_LF)},
	{IN("0\r\nX: 1\r\n\n"), E(BARE_LF)},
	/* the end of chunk data */
	{IN("5\r\nhelloX\r\n0\r\n\r\n"), E(CHUNK_DATA_END)},
	{IN("3\r\nhello\r\n0\r\n\r\n"), E(CHUNK_DATA_END)},
	{IN("5\r\nhello\rX0\r\n\r\n"), E2(CHUNK_DATA_END, BARE_CR)},
	{IN("5\r\nhello\r\r\n0\r\n\r\n"), E2(CHUNK_DATA_END, BARE_CR)},
	/* extensions */
	{IN("5;\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;=b\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\"unterminated\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a@b\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=b c\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\x01\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a=b;\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a\x80\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("0;\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;\"a\"=b\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	{IN("5;a==b\r\nhello\r\n0\r\n\r\n"), E(CHUNK_EXT)},
	/* trailers */
	{IN("0\r\n: v\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX Y: v\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX : v\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX@: v\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX: a\x01"
	    "b\r\n\r\n"),
	 E(TRAILER)},
	{IN("0\r\nX: a\x7f\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX: a\0\r\n\r\n"), E(TRAILER)},
	{IN("0\r\n X: v\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX: a\r\n b\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX: a\r\n\tb\r\n\r\n"), E(TRAILER)},
	{IN("0\r\nX: a\rb\r\n\r\n"), E2(TRAILER, BARE_CR)},
	{IN("0\r\n\rX"), E2(TRAILER, BARE_CR)},
};

/* RFC 9112 7.1.1 allows BWS after ';' and around '=' as well. */
static const struct ck_case rfc_bws[] = {
	{IN("5; a=b\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5;a = b\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
	{IN("5 ; a = \"b\" ; c\r\nhello\r\n0\r\n\r\n"), OUT("hello")},
};

static void run_table(const struct ck_case *t, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char what[600];

		snprintf(what, sizeof(what), "%s#%zu \"%s\"", name, i, esc(t[i].in, t[i].len));
		ncases++;
		check_body(t[i].in, t[i].len, t[i].err, t[i].err2, t[i].data, t[i].dlen, what);
	}
}

/* ---- special cases -------------------------------------------------------- */

static void test_sizes(void)
{
	static const struct {
		const char *in;
		uint64_t size;
	} ok[] = {
		{"7fffffffffffffff\r\n", 0x7fffffffffffffffull},
		{"7FFFFFFFFFFFFFFF;ext=1\r\n", 0x7fffffffffffffffull},
		{"00000000000000000000007fffffffffffffff\r\n", 0x7fffffffffffffffull},
		{"fedcba9876543\r\n", 0xfedcba9876543ull},
		{"FeDcBa\r\n", 0xfedcba},
		{"1\r\n", 1},
	};
	size_t i, k;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		size_t len = strlen(ok[i].in);

		ncases++;
		/* whole, then byte by byte */
		for (k = 0; k < 2; k++) {
			struct syn_h1_chunked c;
			size_t pos = 0;
			int data = -1;
			long n;

			syn_h1_chunked_init(&c);
			while (pos < len) {
				n = syn_h1_chunked_parse(&c, ok[i].in + pos, k ? 1 : len - pos,
							 &data);
				CHECK(n > 0 && data == 0, "size \"%s\": %ld at %zu, data %d",
				      esc(ok[i].in, len), n, pos, data);
				if (n <= 0)
					break;
				pos += n;
			}
			CHECK(pos == len && c.state == SYN_CK_DATA && c.remaining == ok[i].size,
			      "size \"%s\": state %u remaining %llx", esc(ok[i].in, len), c.state,
			      (unsigned long long)c.remaining);
		}
	}
}

static void test_skip(void)
{
	static const char body[] = "a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n";
	struct syn_h1_chunked c;
	const char *p = body;
	int data = -1;
	long n;

	ncases++;
	syn_h1_chunked_init(&c);
	n = syn_h1_chunked_parse(&c, p, strlen(p), &data);
	CHECK(n == 3 && data == 0 && c.state == SYN_CK_DATA && c.remaining == 10,
	      "skip: size line: %ld data %d state %u remaining %llu", n, data, c.state,
	      (unsigned long long)c.remaining);
	p += 3;
	/* take 4 by hand, then let the decoder return 2, then skip the rest */
	syn_h1_chunked_skip(&c, 4);
	CHECK(c.state == SYN_CK_DATA && c.remaining == 6, "skip(4): state %u remaining %llu",
	      c.state, (unsigned long long)c.remaining);
	p += 4;
	n = syn_h1_chunked_parse(&c, p, 2, &data);
	CHECK(n == 2 && data == 1 && c.remaining == 4, "after skip: %ld data %d remaining %llu", n,
	      data, (unsigned long long)c.remaining);
	p += 2;
	syn_h1_chunked_skip(&c, c.remaining);
	CHECK(c.state != SYN_CK_DATA && !c.remaining, "skip(rest): state %u", c.state);
	p += 4;
	n = syn_h1_chunked_parse(&c, p, strlen(p), &data);
	CHECK(n == 5 && data == 0 && c.state == SYN_CK_DATA && c.remaining == 3,
	      "after skip: CRLF and size line: %ld state %u", n, c.state);
	p += n;
	syn_h1_chunked_skip(&c, 3);
	p += 3;
	n = syn_h1_chunked_parse(&c, p, strlen(p), &data);
	CHECK(n == (long)strlen(p) && data == 0 && syn_h1_chunked_done(&c),
	      "skip: the end: %ld of %zu, state %u", n, strlen(p), c.state);
	CHECK(c.last, "skip: last not set");
}

static void test_long_lines(void)
{
	struct sb b = {0};
	int i;

	/* a size line with extensions under the limit, and over it */
	ncases += 6;
	sb_add(&b, "5");
	for (i = 0; i < 900; i++)
		sb_add(&b, ";a=b");
	sb_add(&b, "\r\nhello\r\n0\r\n\r\n");
	check_body(b.p, b.len, 0, 0, "hello", 5, "size line of 3601");

	b.len = 0;
	sb_add(&b, "5");
	for (i = 0; i < 1100; i++)
		sb_add(&b, ";a=b");
	sb_add(&b, "\r\nhello\r\n0\r\n\r\n");
	check_body(b.p, b.len, -1, 0, NULL, 0, "size line of 4401");

	b.len = 0;
	sb_add(&b, "5;a=\"");
	sb_addc(&b, 'q', SYN_H1_CHUNK_LINE_MAX + 10);
	sb_add(&b, "\"\r\nhello\r\n0\r\n\r\n");
	check_body(b.p, b.len, -1, 0, NULL, 0, "quoted extension over the limit");

	b.len = 0;
	sb_addc(&b, '0', SYN_H1_CHUNK_LINE_MAX + 10);
	sb_add(&b, "5\r\nhello\r\n0\r\n\r\n");
	check_body(b.p, b.len, -1, 0, NULL, 0, "leading zeros over the limit");

	b.len = 0;
	sb_add(&b, "5");
	sb_addc(&b, ' ', SYN_H1_CHUNK_LINE_MAX + 10);
	sb_add(&b, ";a\r\nhello\r\n0\r\n\r\n");
	check_body(b.p, b.len, -1, 0, NULL, 0, "whitespace over the limit");

	/* the limit applies to each size line, not to the body */
	b.len = 0;
	for (i = 0; i < 20; i++)
		sb_add(&b, "1;"
			   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			   "aaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n");
	sb_add(&b, "0\r\n\r\n");
	check_body(b.p, b.len, 0, 0, "xxxxxxxxxxxxxxxxxxxx", 20, "many extensions");
	free(b.p);
}

static void test_trailer_size(void)
{
	static const size_t target[] = {10000, SYN_H1_TRAILER_MAX - 300, SYN_H1_TRAILER_MAX + 300};
	struct sb b = {0};
	char line[128];
	size_t n, start;
	int i;

	for (n = 0; n < 3; n++) {
		char what[64];

		b.len = 0;
		sb_add(&b, "3\r\nabc\r\n0\r\n");
		start = b.len;
		for (i = 0; b.len - start < target[n]; i++) {
			snprintf(line, sizeof(line), "X-Trailer-%03d: %.*s\r\n", i,
				 (int)(target[n] - (b.len - start) > 100
					       ? 80
					       : target[n] - (b.len - start)),
				 "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
				 "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv");
			sb_add(&b, line);
		}
		snprintf(what, sizeof(what), "%zu bytes of trailers", b.len - start);
		sb_add(&b, "\r\n");
		ncases++;
		if (target[n] < SYN_H1_TRAILER_MAX)
			check_body(b.p, b.len, 0, 0, "abc", 3, what);
		else
			check_body(b.p, b.len, SYN_H1_E_TRAILER_TOO_LARGE, 0, NULL, 0, what);
	}
	/* one trailer line, very long */
	b.len = 0;
	sb_add(&b, "0\r\nX-Long: ");
	sb_addc(&b, 'v', SYN_H1_TRAILER_MAX + 100);
	sb_add(&b, "\r\n\r\n");
	ncases++;
	check_body(b.p, b.len, SYN_H1_E_TRAILER_TOO_LARGE, 0, NULL, 0, "one long trailer");
	free(b.p);
}

/* Random valid bodies: sizes in any case with leading zeros, extensions,
 * trailers; all decoders must agree and give the payload. */
static void test_generated(void)
{
	static const char *const exts[] = {
		"", ";a", ";a=b", " ;x=\"y z\"", ";q=\"\\\"\";r", "\t;name=val;n2",
	};
	static const char *const trailers[] = {
		"",
		"X-T: 1\r\n",
		"A: b\r\nC-D:\r\n",
		"Checksum: \"abc\" \t\r\n",
	};
	struct sb b = {0}, want = {0};
	int i;

	for (i = 0; i < 300; i++) {
		int nchunks, j;
		char what[64], size[40];

		rnd_state = 0xc0ffee + i * 7919;
		nchunks = rnd() % 8;
		b.len = want.len = 0;
		sb_addn(&want, "", 0);
		for (j = 0; j < nchunks; j++) {
			unsigned sz = 1 + (rnd() % 4 ? rnd() % 40 : rnd() % 3000), k;
			int zeros = rnd() % 4 == 0 ? rnd() % 20 : 0;

			snprintf(size, sizeof(size), rnd() % 2 ? "%x" : "%X", sz);
			sb_addc(&b, '0', zeros);
			sb_add(&b, size);
			sb_add(&b, exts[rnd() % 6]);
			sb_add(&b, "\r\n");
			for (k = 0; k < sz; k++) {
				char ch = rnd() % 8 == 0 ? "\r\n0;\"\\ \0"[rnd() % 8] : (char)rnd();

				sb_addn(&b, &ch, 1);
				sb_addn(&want, &ch, 1);
			}
			sb_add(&b, "\r\n");
		}
		sb_addc(&b, '0', 1 + rnd() % 3);
		sb_add(&b, exts[rnd() % 6]);
		sb_add(&b, "\r\n");
		sb_add(&b, trailers[rnd() % 4]);
		sb_add(&b, "\r\n");
		snprintf(what, sizeof(what), "generated body %d", i);
		ngenerated++;
		check_body(b.p, b.len, 0, 0, want.p, want.len, what);
	}
	free(b.p);
	free(want.p);
}

int main(void)
{
	run_table(cases, sizeof(cases) / sizeof(cases[0]), "chunked");
	run_table(rfc_bws, sizeof(rfc_bws) / sizeof(rfc_bws[0]), "chunked-bws");
	test_sizes();
	test_skip();
	test_long_lines();
	test_trailer_size();
	test_generated();
	printf("test_chunked: %lu cases (%zu table rows), %lu generated bodies, %d ways each\n",
	       ncases, sizeof(cases) / sizeof(cases[0]) + sizeof(rfc_bws) / sizeof(rfc_bws[0]),
	       ngenerated, FEED__COUNT);
	return check_report();
}
