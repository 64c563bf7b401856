/* native/include/syn/http1.h - zero-copy, zero-allocation HTTP/1.1 parsing.
 *
 * Parsers take the caller's buffer and a caller-owned struct, and return:
 *   > 0              the length of the head (request or status line, header
 *                    fields and the blank line);
 *   SYN_PARSE_AGAIN  the head is incomplete: call again with more bytes,
 *                    from the start of the same message;
 *   SYN_PARSE_ERR    the message is invalid: h.error says why, and
 *                    syn_h1_err_status() which status to answer with.
 * Nothing ambiguous is accepted (RFC 9112 section 11, PRODUCT.md section 5).
 */
#ifndef SYN_HTTP1_H
#define SYN_HTTP1_H

#include "syn/http1-t.h"

int syn_h1_parse_request(const char *buf, size_t len, struct syn_h1_request *req);
int syn_h1_parse_response(const char *buf, size_t len, struct syn_h1_response *resp);

/* The same with a smaller limit on the head (at most SYN_H1_MAX_HEAD) and on
 * the number of header fields (at most SYN_H1_MAX_HEADERS): the configured
 * [limits] header_bytes and headers.  Past them: SYN_H1_E_HEAD_TOO_LARGE or
 * SYN_H1_E_TOO_MANY_HEADERS. */
int syn_h1_parse_request_limits(const char *buf, size_t len, struct syn_h1_request *req,
				size_t max_head, unsigned max_headers);
int syn_h1_parse_response_limits(const char *buf, size_t len, struct syn_h1_response *resp,
				 size_t max_head, unsigned max_headers);

/* Status code for an error (400, 431, 501, 505), and its reason in words. */
int syn_h1_err_status(int err);
const char *syn_h1_err_text(int err);

/* The known-header id of a lower- or mixed-case name, or SYN_HDR_NONE. */
int syn_h1_header_id(const char *name, size_t len);
const char *syn_h1_header_name(int id);

/* Case-insensitive comparison of a span with a lowercase literal. */
int syn_h1_span_ieq(const char *buf, struct syn_span s, const char *lower, size_t len);

/* The resumable chunked-body decoder.
 *
 * syn_h1_chunked_parse() consumes a run of buf and returns its length (>= 0),
 * or SYN_PARSE_ERR with c->error set.  A run is either framing only (sizes,
 * extensions, CRLFs, trailers) or chunk data only: *data says which, so a
 * caller may forward the bytes verbatim, keep only the data, or splice the
 * data itself (c->remaining bytes, then syn_h1_chunked_skip()).  It stops at
 * the end of the message (c->state == SYN_CK_DONE) and never reads past it.
 * Bare LF, overflowing sizes, malformed extensions and trailers are errors. */
void syn_h1_chunked_init(struct syn_h1_chunked *c);
long syn_h1_chunked_parse(struct syn_h1_chunked *c, const char *buf, size_t len, int *data);
void syn_h1_chunked_skip(struct syn_h1_chunked *c, uint64_t n); /* n <= c->remaining */

static inline int syn_h1_chunked_done(const struct syn_h1_chunked *c)
{
	return c->state == SYN_CK_DONE;
}

/* Header lookup through the known-header index: one array access. */
static inline const struct syn_h1_header *syn_h1_find(const struct syn_h1_head *h, int id)
{
	unsigned i = h->idx[id];
	return i ? &h->headers[i - 1] : NULL;
}

#endif
