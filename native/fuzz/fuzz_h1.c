/* native/fuzz/fuzz_h1.c - libFuzzer target for the HTTP/1.1 parser.
 *
 * The first byte picks the mode (mod 3; the corpus uses '0', '1', '2'):
 *   0  request:  the public parser and every SIMD level must agree exactly
 *   1  response: the same
 *   2  chunked:  decoding whole, in pieces sized by the input bytes, and
 *                with syn_h1_chunked_skip() must agree
 * The byte's upper bits also choose smaller [limits] for a second parse.
 * Any disagreement or broken invariant aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syn/http1.h"
#include "syn/simd.h"

#define FUZZ_ASSERT(cond)                                                                    \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

union fuzz_msg {
	struct syn_h1_request rq;
	struct syn_h1_response rs;
};

static int fuzz_parse(int resp, int level, const char *buf, size_t len, union fuzz_msg *m,
		      size_t max_head, unsigned max_hdrs)
{
	const struct syn_h1_impl *impl;

	memset(m, 0, sizeof(*m));
	if (level < 0) {
		if (max_head == SYN_H1_MAX_HEAD && max_hdrs == SYN_H1_MAX_HEADERS)
			return resp ? syn_h1_parse_response(buf, len, &m->rs)
				    : syn_h1_parse_request(buf, len, &m->rq);
		return resp ? syn_h1_parse_response_limits(buf, len, &m->rs, max_head, max_hdrs)
			    : syn_h1_parse_request_limits(buf, len, &m->rq, max_head, max_hdrs);
	}
	impl = syn_h1_impl(level);
	return resp ? impl->response(buf, len, &m->rs, max_head, max_hdrs)
		    : impl->request(buf, len, &m->rq, max_head, max_hdrs);
}

static void fuzz_check_span(struct syn_span s, int head_len)
{
	FUZZ_ASSERT((int)s.off + s.len <= head_len);
}

static void fuzz_check(int resp, const char *buf, size_t len, int ret, const union fuzz_msg *m,
		       size_t max_head, unsigned max_hdrs)
{
	const struct syn_h1_head *h = resp ? &m->rs.h : &m->rq.h;
	unsigned i;

	FUZZ_ASSERT(ret == SYN_PARSE_AGAIN || ret == SYN_PARSE_ERR || ret > 0);
	if (ret == SYN_PARSE_ERR) {
		FUZZ_ASSERT(h->error > SYN_H1_E_OK && h->error < SYN_H1_E__COUNT);
		FUZZ_ASSERT(h->err_off <= len);
		FUZZ_ASSERT(syn_h1_err_status(h->error) >= 400);
		return;
	}
	if (ret == SYN_PARSE_AGAIN) {
		FUZZ_ASSERT(len < max_head);
		return;
	}
	FUZZ_ASSERT((size_t)ret <= len && (size_t)ret <= max_head && ret == h->head_len);
	FUZZ_ASSERT(h->nheaders <= max_hdrs && h->version <= 1);
	FUZZ_ASSERT(!((h->flags & SYN_H1_F_LENGTH) && (h->flags & SYN_H1_F_CHUNKED)));
	fuzz_check_span(h->host, ret);
	fuzz_check_span(h->upgrade, ret);
	for (i = 0; i < h->nheaders; i++) {
		const struct syn_h1_header *f = &h->headers[i];
		int id;

		fuzz_check_span(f->name, ret);
		fuzz_check_span(f->value, ret);
		FUZZ_ASSERT(f->name.len > 0);
		if (f->value.len) {
			char a = buf[f->value.off], z = buf[f->value.off + f->value.len - 1];

			FUZZ_ASSERT(a != ' ' && a != '\t' && z != ' ' && z != '\t');
		}
		id = syn_h1_header_id(buf + f->name.off, f->name.len);
		if (id != SYN_HDR_NONE)
			FUZZ_ASSERT(h->idx[id] && h->idx[id] <= i + 1);
	}
	for (i = 1; i < SYN_HDR__COUNT; i++) {
		const struct syn_h1_header *f = syn_h1_find(h, i);

		if (!f)
			continue;
		FUZZ_ASSERT(h->idx[i] <= h->nheaders);
		FUZZ_ASSERT(syn_h1_header_id(buf + f->name.off, f->name.len) == (int)i);
	}
	FUZZ_ASSERT(!!(h->flags & SYN_H1_F_LENGTH) == !!h->idx[SYN_HDR_CONTENT_LENGTH]);
	if (resp) {
		FUZZ_ASSERT(m->rs.status >= 100 && m->rs.status <= 599);
		fuzz_check_span(m->rs.reason, ret);
	} else {
		fuzz_check_span(m->rq.method_name, ret);
		fuzz_check_span(m->rq.target, ret);
		FUZZ_ASSERT(m->rq.method_name.len > 0 && m->rq.target.len > 0);
		FUZZ_ASSERT(m->rq.method < SYN_M__COUNT);
		FUZZ_ASSERT(h->version == 0 || h->idx[SYN_HDR_HOST]);
	}
}

static void fuzz_head(int resp, const char *buf, size_t len, size_t max_head, unsigned max_hdrs)
{
	union fuzz_msg ref, m;
	size_t size = resp ? sizeof(struct syn_h1_response) : sizeof(struct syn_h1_request);
	int r0, r, level;

	r0 = fuzz_parse(resp, -1, buf, len, &ref, max_head, max_hdrs);
	fuzz_check(resp, buf, len, r0, &ref, max_head, max_hdrs);
	for (level = 0; level < SYN_SIMD__COUNT; level++) {
		if (!syn_h1_impl(level))
			continue;
		r = fuzz_parse(resp, level, buf, len, &m, max_head, max_hdrs);
		if (r != r0 || memcmp(&m, &ref, size)) {
			fprintf(stderr, "%s level %s returns %d, public %d%s\n",
				resp ? "response" : "request", syn_simd_name(level), r, r0,
				r == r0 ? " (structs differ)" : "");
			abort();
		}
	}
}

/* ---- chunked -------------------------------------------------------------- */

struct fuzz_ck {
	size_t consumed;
	int err;
	int done;
	char *data;
	size_t dlen;
};

/* mode 0: whole; 1: pieces sized by the input; 2: pieces, with skip() */
static void fuzz_decode(const char *buf, size_t len, int mode, struct fuzz_ck *out)
{
	struct syn_h1_chunked c;
	size_t pos = 0, i = 0;

	memset(out, 0, sizeof(*out));
	out->data = malloc(len + 1);
	FUZZ_ASSERT(out->data);
	syn_h1_chunked_init(&c);
	while (pos < len && !syn_h1_chunked_done(&c)) {
		size_t lim = mode ? pos + 1 + (unsigned char)buf[i++ % len] % 16 : len;

		if (lim > len)
			lim = len;
		while (pos < lim && !syn_h1_chunked_done(&c)) {
			uint64_t rem = c.remaining;
			int data = -1;
			char *piece;
			long n;

			if (mode == 2 && c.state == SYN_CK_DATA) {
				uint64_t take = rem < lim - pos ? rem : lim - pos;

				FUZZ_ASSERT(take > 0);
				memcpy(out->data + out->dlen, buf + pos, take);
				out->dlen += take;
				syn_h1_chunked_skip(&c, take);
				FUZZ_ASSERT(c.remaining == rem - take);
				pos += take;
				continue;
			}
			piece = malloc(lim - pos);
			FUZZ_ASSERT(piece);
			memcpy(piece, buf + pos, lim - pos);
			n = syn_h1_chunked_parse(&c, piece, lim - pos, &data);
			free(piece);
			if (n < 0) {
				FUZZ_ASSERT(n == SYN_PARSE_ERR);
				FUZZ_ASSERT(c.error > SYN_H1_E_OK && c.error < SYN_H1_E__COUNT);
				out->err = c.error;
				goto out;
			}
			FUZZ_ASSERT((size_t)n <= lim - pos);
			FUZZ_ASSERT(n > 0 || syn_h1_chunked_done(&c));
			if (data == 1) {
				FUZZ_ASSERT((uint64_t)n <= rem && c.remaining == rem - n);
				memcpy(out->data + out->dlen, buf + pos, n);
				out->dlen += n;
			} else {
				FUZZ_ASSERT(data == 0);
			}
			pos += n;
		}
	}
out:
	out->consumed = pos;
	out->done = syn_h1_chunked_done(&c);
	if (out->done) {
		int data = 0;

		FUZZ_ASSERT(syn_h1_chunked_parse(&c, buf + pos, len - pos, &data) == 0);
	}
}

static void fuzz_chunked(const char *buf, size_t len)
{
	struct fuzz_ck a, b;
	int mode;

	fuzz_decode(buf, len, 0, &a);
	for (mode = 1; mode <= 2; mode++) {
		fuzz_decode(buf, len, mode, &b);
		FUZZ_ASSERT(a.err == b.err && a.done == b.done);
		/* on success the same bytes are consumed; an error is found in
		 * framing, after the same data bytes every way */
		if (!a.err)
			FUZZ_ASSERT(a.consumed == b.consumed);
		FUZZ_ASSERT(a.dlen == b.dlen && !memcmp(a.data, b.data, a.dlen));
		free(b.data);
	}
	free(a.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf;
	size_t len;
	char *copy;
	int mode;

	if (size < 1)
		return 0;
	mode = data[0] % 3;
	len = size - 1;
	/* an exactly-sized copy, so any over-read is caught */
	copy = malloc(len ? len : 1);
	FUZZ_ASSERT(copy);
	if (len)
		memcpy(copy, data + 1, len);
	buf = copy;

	if (mode == 2) {
		fuzz_chunked(buf, len);
	} else {
		unsigned sel = data[0] / 3;

		fuzz_head(mode, buf, len, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS);
		/* smaller limits, from the selector byte */
		fuzz_head(mode, buf, len, 1 + (sel * 37) % 400, 1 + sel % 9);
	}
	free(copy);
	return 0;
}
