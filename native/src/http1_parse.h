/* native/src/http1_parse.h - the request and response parsers.
 *
 * Included once by each of http1_scalar.c, http1_sse42.c and http1_avx2.c,
 * after they define the three scanners below and H1_IMPL, the name of the
 * struct syn_h1_impl to define.  Everything else is static, so each level
 * gets its own copy compiled for its instruction set, and the scanners
 * inline into the loops.
 *
 *   const char *h1_scan_target(const char *p, const char *end);
 *       first octet in [p, end) outside 0x21..0x7e, or end
 *   const char *h1_scan_name(const char *p, const char *end);
 *       first octet that is not a tchar, or end
 *   const char *h1_scan_value(const char *p, const char *end);
 *       first control octet other than HTAB (CR included), or DEL, or end
 *
 * The scanners never read at or past end.  Everything the parsers decide is
 * decided here, so the levels cannot disagree on anything but speed.
 */
#include <stddef.h>
#include <stdint.h>

#include "http1_int.h"

#define H1_COLD   __attribute__((noinline, cold))
#define H1_INLINE inline __attribute__((always_inline))

/* Everything in struct syn_h1_head before the header array: zeroed by one
 * memset per parse rather than field by field. */
#define H1_HEAD_FIXED offsetof(struct syn_h1_head, headers)

struct h1_ctx {
	const char *buf;
	const char *end; /* buf + min(len, max_head) */
	struct syn_h1_head *h;
	unsigned max_headers;
	uint8_t full; /* len reached max_head: no more may come */
	uint8_t te_seen;
	uint8_t te_chunked;      /* times "chunked" was listed */
	uint8_t te_last_chunked; /* the last coding listed was chunked */
	uint8_t te_other;        /* another coding was listed */
	uint8_t te_invalid;      /* an element was not a coding */
	uint8_t expect_continue;
};

static H1_COLD int h1_fail(struct h1_ctx *x, const char *at, int err)
{
	x->h->error = (uint8_t)err;
	x->h->err_off = (uint16_t)(at - x->buf);
	return SYN_PARSE_ERR;
}

/* Out of bytes: wait for more, unless the limit on the head was reached. */
static H1_COLD int h1_more(struct h1_ctx *x)
{
	if (x->full)
		return h1_fail(x, x->end, SYN_H1_E_HEAD_TOO_LARGE);
	return SYN_PARSE_AGAIN;
}

static inline struct syn_span h1_span(const struct h1_ctx *x, const char *p, size_t n)
{
	struct syn_span s = {(uint16_t)(p - x->buf), (uint16_t)n};

	return s;
}

static inline int h1_ows(char c)
{
	return c == ' ' || c == '\t';
}

static H1_INLINE void h1_head_init(struct h1_ctx *x, const char *buf, size_t len,
				   struct syn_h1_head *h, size_t max_head, unsigned max_headers)
{
	size_t lim = len < max_head ? len : max_head;

	x->buf = buf;
	x->end = buf + lim;
	x->h = h;
	x->max_headers = max_headers;
	x->full = len >= max_head;
	x->te_seen = x->te_chunked = x->te_last_chunked = 0;
	x->te_other = x->te_invalid = x->expect_continue = 0;
	memset(h, 0, H1_HEAD_FIXED);
}

/* Content-Length = 1*DIGIT, within int64; repeats must agree. */
static int h1_content_length(struct h1_ctx *x, const char *v, size_t n)
{
	struct syn_h1_head *h = x->h;
	uint64_t val = 0;
	size_t i;

	if (n == 0)
		return h1_fail(x, v, SYN_H1_E_CONTENT_LENGTH);
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)v[i] - '0';

		if (d > 9 || val > (uint64_t)(INT64_MAX - d) / 10)
			return h1_fail(x, v + i, SYN_H1_E_CONTENT_LENGTH);
		val = val * 10 + d;
	}
	if (h->flags & SYN_H1_F_LENGTH) {
		if (val != h->content_length)
			return h1_fail(x, v, SYN_H1_E_CONTENT_LENGTH_CONFLICT);
		return 0;
	}
	h->flags |= SYN_H1_F_LENGTH;
	h->content_length = val;
	return 0;
}

/* Transfer-Encoding: #transfer-coding, across all its lines in order.  The
 * verdict waits for the end of the head, when every line has been seen. */
static void h1_transfer_encoding(struct h1_ctx *x, const char *p, const char *end)
{
	x->te_seen = 1;
	while (p < end) {
		const char *t;
		size_t n;

		while (p < end && (h1_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		t = p;
		while (p < end && h1_is((unsigned char)*p, H1_TCHAR))
			p++;
		n = (size_t)(p - t);
		while (p < end && h1_ows(*p))
			p++;
		if (n == 0) {
			x->te_invalid = 1;
			return;
		}
		if (p < end && *p == ';') {
			/* a coding with parameters: never chunked, which has none */
			if (n == 7 && h1_token_ieq(t, "chunked", 7)) {
				x->te_invalid = 1;
				return;
			}
			while (p < end && *p != ',') {
				if (*p == '"') {
					x->te_invalid = 1;
					return;
				}
				p++;
			}
			x->te_other = 1;
			x->te_last_chunked = 0;
			continue;
		}
		if (p < end && *p != ',') {
			x->te_invalid = 1;
			return;
		}
		if (n == 7 && h1_token_ieq(t, "chunked", 7)) {
			x->te_chunked++;
			x->te_last_chunked = 1;
		} else {
			x->te_other = 1;
			x->te_last_chunked = 0;
		}
	}
}

/* Connection: #connection-option. */
static void h1_connection(struct syn_h1_head *h, const char *p, const char *end)
{
	while (p < end) {
		const char *t;
		size_t n;

		while (p < end && (h1_ows(*p) || *p == ','))
			p++;
		t = p;
		while (p < end && *p != ',')
			p++;
		n = (size_t)(p - t);
		while (n && h1_ows(t[n - 1]))
			n--;
		if (n == 0)
			continue;
		if (n == 5 && h1_token_ieq(t, "close", 5))
			h->flags |= SYN_H1_F_CONN_CLOSE;
		else if (n == 10 && h1_token_ieq(t, "keep-alive", 10))
			h->flags |= SYN_H1_F_CONN_KA;
		else if (n == 7 && h1_token_ieq(t, "upgrade", 7))
			h->flags |= SYN_H1_F_CONN_UPG;
		else
			h->flags |= SYN_H1_F_CONN_OTHER;
	}
}

/* What a known field means for framing and routing; 0 or SYN_PARSE_ERR. */
static H1_INLINE int h1_field(struct h1_ctx *x, int id, const char *v, size_t n)
{
	struct syn_h1_head *h = x->h;
	unsigned cls;
	size_t i;

	switch (id) {
	case SYN_HDR_CONTENT_LENGTH:
		return h1_content_length(x, v, n);
	case SYN_HDR_TRANSFER_ENCODING:
		h1_transfer_encoding(x, v, v + n);
		return 0;
	case SYN_HDR_CONNECTION:
		/* the two common values whole, the list walk for the rest */
		if (n == 10 && h1_token_ieq(v, "keep-alive", 10))
			h->flags |= SYN_H1_F_CONN_KA;
		else if (n == 5 && h1_token_ieq(v, "close", 5))
			h->flags |= SYN_H1_F_CONN_CLOSE;
		else
			h1_connection(h, v, v + n);
		return 0;
	case SYN_HDR_HOST:
		if (h->idx[SYN_HDR_HOST])
			return h1_fail(x, v, SYN_H1_E_HOST_MULTIPLE);
		/* AND of the classes: no branch per octet on the common path */
		cls = H1_HOST;
		for (i = 0; i + 4 <= n; i += 4)
			cls &= syn_h1_ctype[(unsigned char)v[i]] &
			       syn_h1_ctype[(unsigned char)v[i + 1]] &
			       syn_h1_ctype[(unsigned char)v[i + 2]] &
			       syn_h1_ctype[(unsigned char)v[i + 3]];
		for (; i < n; i++)
			cls &= syn_h1_ctype[(unsigned char)v[i]];
		if (!cls)
			return h1_fail(x, h1_scalar_scan(v, v + n, H1_HOST), SYN_H1_E_HOST_INVALID);
		h->host = h1_span(x, v, n);
		return 0;
	case SYN_HDR_UPGRADE:
		if (!h->idx[SYN_HDR_UPGRADE])
			h->upgrade = h1_span(x, v, n);
		return 0;
	case SYN_HDR_EXPECT:
		if (n == 12 && h1_token_ieq(v, "100-continue", 12))
			x->expect_continue = 1;
		return 0;
	default:
		return 0;
	}
}

/* Header fields from p to the blank line.  Returns the head length, or
 * SYN_PARSE_AGAIN / SYN_PARSE_ERR. */
static H1_INLINE int h1_fields(struct h1_ctx *x, const char *p)
{
	struct syn_h1_head *h = x->h;
	const char *end = x->end;

	for (;;) {
		const char *name, *v, *ve;
		struct syn_h1_header *f;
		size_t nlen;
		int id;

		if (p >= end)
			return h1_more(x);
		if (*p == '\r') {
			if (p + 1 >= end)
				return h1_more(x);
			if (p[1] != '\n')
				return h1_fail(x, p + 1, SYN_H1_E_BARE_CR);
			p += 2;
			h->head_len = (uint16_t)(p - x->buf);
			return h->head_len;
		}
		if (h1_ows(*p))
			return h1_fail(x, p, SYN_H1_E_OBS_FOLD);
		if (*p == '\n')
			return h1_fail(x, p, SYN_H1_E_BARE_LF);

		name = p;
		p = h1_scan_name(p, end);
		if (p == end)
			return h1_more(x);
		if (*p != ':' || p == name) {
			if (p != name && h1_ows(*p))
				return h1_fail(x, p, SYN_H1_E_SPACE_BEFORE_COLON);
			return h1_fail(x, p, SYN_H1_E_HEADER_NAME);
		}
		nlen = (size_t)(p - name);
		p++;
		if (p < end && *p == ' ')
			p++;
		while (p < end && h1_ows(*p))
			p++;
		v = p;
		p = h1_scan_value(p, end);
		if (p == end)
			return h1_more(x);
		if (*p != '\r')
			return h1_fail(x, p, *p == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_HEADER_VALUE);
		if (p + 1 >= end)
			return h1_more(x);
		if (p[1] != '\n')
			return h1_fail(x, p + 1, SYN_H1_E_BARE_CR);
		ve = p;
		while (ve > v && h1_ows(ve[-1]))
			ve--;
		p += 2;

		if (h->nheaders >= x->max_headers)
			return h1_fail(x, name, SYN_H1_E_TOO_MANY_HEADERS);
		f = &h->headers[h->nheaders];
		f->name = h1_span(x, name, nlen);
		f->value = h1_span(x, v, (size_t)(ve - v));
		id = h1_known_id(name, nlen);
		if (id) {
			if (h1_field(x, id, v, (size_t)(ve - v)) < 0)
				return SYN_PARSE_ERR;
			if (!h->idx[id])
				h->idx[id] = (uint8_t)(h->nheaders + 1);
		}
		h->nheaders++;
	}
}

/* Framing and persistence, once all fields are in.  0 or SYN_PARSE_ERR. */
static H1_INLINE int h1_framing(struct h1_ctx *x, int request)
{
	struct syn_h1_head *h = x->h;
	const char *at = x->buf + h->head_len;

	if (x->te_seen) {
		if (h->flags & SYN_H1_F_LENGTH)
			return h1_fail(x, at, SYN_H1_E_CL_AND_TE);
		if (h->version == 0)
			return h1_fail(x, at, SYN_H1_E_TE_HTTP10);
		if (x->te_invalid)
			return h1_fail(x, at, SYN_H1_E_TE_INVALID);
		if (x->te_chunked > 1 || (request && !x->te_last_chunked))
			return h1_fail(x, at, SYN_H1_E_TE_NOT_FINAL_CHUNKED);
		if (request && x->te_other)
			return h1_fail(x, at, SYN_H1_E_TE_UNSUPPORTED);
		h->flags |= x->te_last_chunked ? SYN_H1_F_CHUNKED : SYN_H1_F_CLOSE_BODY;
	}
	if (h->version == 1
		    ? !(h->flags & SYN_H1_F_CONN_CLOSE)
		    : (h->flags & (SYN_H1_F_CONN_KA | SYN_H1_F_CONN_CLOSE)) == SYN_H1_F_CONN_KA)
		h->flags |= SYN_H1_F_KEEPALIVE;
	if (h->idx[SYN_HDR_UPGRADE] && (h->flags & SYN_H1_F_CONN_UPG))
		h->flags |= SYN_H1_F_UPGRADE;
	return 0;
}

/* "HTTP/" DIGIT "." DIGIT at p, octet by octet: for the versions other than
 * 1.0 and 1.1, and for input cut short.  Same contract as h1_version(). */
static const char *h1_version_slow(struct h1_ctx *x, const char *p, unsigned *major,
				   unsigned *minor, int *rc)
{
	static const char prefix[] = "HTTP/";
	const char *end = x->end;
	int i;

	for (i = 0; i < 8; i++) {
		char c;

		if (p + i >= end) {
			*rc = h1_more(x);
			return NULL;
		}
		c = p[i];
		if (i < 5 ? c != prefix[i] : i == 6 ? c != '.' : (c < '0' || c > '9')) {
			*rc = h1_fail(x, p + i, SYN_H1_E_VERSION);
			return NULL;
		}
	}
	*major = (unsigned)(p[5] - '0');
	*minor = (unsigned)(p[7] - '0');
	return p + 8;
}

/* "HTTP/" DIGIT "." DIGIT at p.  Returns p + 8, or NULL with *rc set to
 * SYN_PARSE_AGAIN or SYN_PARSE_ERR; the delimiter is the caller's. */
static H1_INLINE const char *h1_version(struct h1_ctx *x, const char *p, unsigned *major,
					unsigned *minor, int *rc)
{
	if (x->end - p >= 8) {
		uint64_t w = h1_load64(p);

		if (w == h1_load64("HTTP/1.1")) {
			*major = 1;
			*minor = 1;
			return p + 8;
		}
		if (w == h1_load64("HTTP/1.0")) {
			*major = 1;
			*minor = 0;
			return p + 8;
		}
	}
	return h1_version_slow(x, p, major, minor, rc);
}

static int h1_method_id(const char *m, size_t n)
{
	switch (n) {
	case 3:
		if (!memcmp(m, "GET", 3))
			return SYN_M_GET;
		if (!memcmp(m, "PUT", 3))
			return SYN_M_PUT;
		break;
	case 4:
		if (!memcmp(m, "POST", 4))
			return SYN_M_POST;
		if (!memcmp(m, "HEAD", 4))
			return SYN_M_HEAD;
		break;
	case 5:
		if (!memcmp(m, "PATCH", 5))
			return SYN_M_PATCH;
		if (!memcmp(m, "TRACE", 5))
			return SYN_M_TRACE;
		break;
	case 6:
		if (!memcmp(m, "DELETE", 6))
			return SYN_M_DELETE;
		break;
	case 7:
		if (!memcmp(m, "CONNECT", 7))
			return SYN_M_CONNECT;
		if (!memcmp(m, "OPTIONS", 7))
			return SYN_M_OPTIONS;
		break;
	}
	return SYN_M_OTHER;
}

static int h1_request(const char *buf, size_t len, struct syn_h1_request *req, size_t max_head,
		      unsigned max_headers)
{
	struct h1_ctx x;
	const char *p = buf, *end, *m, *t;
	unsigned major, minor;
	int rc = 0;

	h1_head_init(&x, buf, len, &req->h, max_head, max_headers);
	end = x.end;
	req->method = SYN_M_OTHER;
	req->method_name.off = req->method_name.len = 0;
	req->target.off = req->target.len = 0;

	/* RFC 9112 section 2.2: empty lines before the request line are ignored */
	for (;;) {
		if (p >= end)
			return h1_more(&x);
		if (*p == '\n')
			return h1_fail(&x, p, SYN_H1_E_BARE_LF);
		if (*p != '\r')
			break;
		if (p + 1 >= end)
			return h1_more(&x);
		if (p[1] != '\n')
			return h1_fail(&x, p + 1, SYN_H1_E_BARE_CR);
		p += 2;
	}

	m = p;
	if (end - p >= 5 && h1_load32(p) == h1_load32("GET ")) {
		req->method = SYN_M_GET;
		p += 4;
	} else if (end - p >= 5 && p[4] == ' ' && h1_load32(p) == h1_load32("POST")) {
		req->method = SYN_M_POST;
		p += 5;
	} else {
		p = h1_scan_name(p, end);
		if (p == end)
			return h1_more(&x);
		if (*p != ' ')
			return h1_fail(&x, p, SYN_H1_E_METHOD);
		if (p == m)
			return h1_fail(&x, p, SYN_H1_E_REQUEST_LINE);
		req->method = (uint8_t)h1_method_id(m, (size_t)(p - m));
		p++;
	}
	req->method_name = h1_span(&x, m, (size_t)(p - 1 - m));

	t = p;
	p = h1_scan_target(p, end);
	if (p == end)
		return h1_more(&x);
	if (*p != ' ' || p == t)
		return h1_fail(&x, p,
			       (*p == '\r' || *p == '\n') && p != t ? SYN_H1_E_REQUEST_LINE
								    : SYN_H1_E_TARGET);
	req->target = h1_span(&x, t, (size_t)(p - t));
	p++;
	if (p < end && *p == ' ')
		return h1_fail(&x, p, SYN_H1_E_REQUEST_LINE);

	p = h1_version(&x, p, &major, &minor, &rc);
	if (!p)
		return rc;
	if (p >= end)
		return h1_more(&x);
	if (*p != '\r')
		return h1_fail(&x, p, *p == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_VERSION);
	if (p + 1 >= end)
		return h1_more(&x);
	if (p[1] != '\n')
		return h1_fail(&x, p + 1, SYN_H1_E_BARE_CR);
	if (major != 1)
		return h1_fail(&x, p - 8, SYN_H1_E_VERSION_UNSUPPORTED);
	req->h.version = minor ? 1 : 0;

	rc = h1_fields(&x, p + 2);
	if (rc < 0)
		return rc;
	if (req->h.version == 1 && !req->h.idx[SYN_HDR_HOST])
		return h1_fail(&x, buf + rc, SYN_H1_E_HOST_MISSING);
	if (h1_framing(&x, 1) < 0)
		return SYN_PARSE_ERR;
	if (x.expect_continue && req->h.version == 1)
		req->h.flags |= SYN_H1_F_CONTINUE;
	return rc;
}

static int h1_response(const char *buf, size_t len, struct syn_h1_response *resp, size_t max_head,
		       unsigned max_headers)
{
	struct h1_ctx x;
	const char *p = buf, *end, *r;
	unsigned major, minor, status;
	int rc = 0, i;

	h1_head_init(&x, buf, len, &resp->h, max_head, max_headers);
	end = x.end;
	resp->status = 0;
	resp->reason.off = resp->reason.len = 0;

	p = h1_version(&x, p, &major, &minor, &rc);
	if (!p)
		return rc;
	if (p >= end)
		return h1_more(&x);
	if (*p != ' ')
		return h1_fail(&x, p,
			       (*p == '\r' || *p == '\n') ? SYN_H1_E_STATUS_LINE
							  : SYN_H1_E_VERSION);
	if (major != 1)
		return h1_fail(&x, buf, SYN_H1_E_VERSION_UNSUPPORTED);
	resp->h.version = minor ? 1 : 0;
	p++;

	status = 0;
	for (i = 0; i < 3; i++) {
		if (p + i >= end)
			return h1_more(&x);
		if (p[i] < '0' || p[i] > '9')
			return h1_fail(&x, p + i, SYN_H1_E_STATUS_LINE);
		status = status * 10 + (unsigned)(p[i] - '0');
	}
	p += 3;
	if (status < 100 || status > 599)
		return h1_fail(&x, p - 3, SYN_H1_E_STATUS_LINE);
	resp->status = (uint16_t)status;
	if (p >= end)
		return h1_more(&x);
	if (*p == ' ') {
		p++;
		r = p;
		p = h1_scan_value(p, end);
		if (p == end)
			return h1_more(&x);
		resp->reason = h1_span(&x, r, (size_t)(p - r));
	}
	if (*p != '\r')
		return h1_fail(&x, p, *p == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_STATUS_LINE);
	if (p + 1 >= end)
		return h1_more(&x);
	if (p[1] != '\n')
		return h1_fail(&x, p + 1, SYN_H1_E_BARE_CR);

	rc = h1_fields(&x, p + 2);
	if (rc < 0)
		return rc;
	if (h1_framing(&x, 0) < 0)
		return SYN_PARSE_ERR;
	if (status < 200 || status == 204 || status == 304)
		resp->h.flags |= SYN_H1_F_NO_BODY;
	else if (!(resp->h.flags & (SYN_H1_F_LENGTH | SYN_H1_F_CHUNKED)))
		resp->h.flags |= SYN_H1_F_CLOSE_BODY;
	return rc;
}

const struct syn_h1_impl H1_IMPL = {
	.request = h1_request,
	.response = h1_response,
};
