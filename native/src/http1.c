/* native/src/http1.c - the parser's tables, error texts and the public
 * entry points, which dispatch to the variant for the CPU's SIMD level. */
#include <stdatomic.h>

#include "http1_int.h"

/* Generated: bit H1_TCHAR, H1_HOST, H1_VALUE, H1_TARGET, H1_HEX per octet. */
/* clang-format off */
const uint8_t syn_h1_ctype[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x0f, 0x0c, 0x0d, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x0f, 0x0e, 0x0f, 0x0f, 0x0c,
	0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0e, 0x0e, 0x0c, 0x0e, 0x0c, 0x0c,
	0x0c, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
	0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0c, 0x0e, 0x0d, 0x0f,
	0x0d, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
	0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0c, 0x0d, 0x0c, 0x0f, 0x00,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
};
/* clang-format on */

/* Perfect hash of the known names: (len * 7 + first + last * 40) & 127, with
 * letters folded to lowercase.  Generated; h1_known_id() verifies the name. */
const uint8_t syn_h1_hdr_hash[128] = {
	[1] = SYN_HDR_SET_COOKIE,
	[3] = SYN_HDR_TRANSFER_ENCODING,
	[4] = SYN_HDR_IF_NONE_MATCH,
	[5] = SYN_HDR_CONTENT_LENGTH,
	[6] = SYN_HDR_CONTENT_RANGE,
	[8] = SYN_HDR_X_FORWARDED_HOST,
	[16] = SYN_HDR_PROXY_CONNECTION,
	[18] = SYN_HDR_ACCEPT_LANGUAGE,
	[25] = SYN_HDR_ETAG,
	[30] = SYN_HDR_CACHE_CONTROL,
	[36] = SYN_HDR_HOST,
	[40] = SYN_HDR_IF_MODIFIED_SINCE,
	[43] = SYN_HDR_ACCEPT,
	[47] = SYN_HDR_EXPECT,
	[49] = SYN_HDR_X_FORWARDED_FOR,
	[66] = SYN_HDR_PRAGMA,
	[69] = SYN_HDR_FORWARDED,
	[71] = SYN_HDR_X_FORWARDED_PROTO,
	[72] = SYN_HDR_DATE,
	[73] = SYN_HDR_ORIGIN,
	[74] = SYN_HDR_TE,
	[84] = SYN_HDR_LOCATION,
	[85] = SYN_HDR_COOKIE,
	[89] = SYN_HDR_CONNECTION,
	[91] = SYN_HDR_USER_AGENT,
	[93] = SYN_HDR_RANGE,
	[98] = SYN_HDR_ACCEPT_ENCODING,
	[103] = SYN_HDR_LAST_MODIFIED,
	[105] = SYN_HDR_IF_RANGE,
	[107] = SYN_HDR_CONTENT_ENCODING,
	[108] = SYN_HDR_AUTHORIZATION,
	[109] = SYN_HDR_SERVER,
	[110] = SYN_HDR_UPGRADE,
	[115] = SYN_HDR_REFERER,
	[117] = SYN_HDR_TRAILER,
	[121] = SYN_HDR_KEEP_ALIVE,
	[122] = SYN_HDR_VARY,
	[127] = SYN_HDR_CONTENT_TYPE,
};

/* clang-format off */
const char *const syn_h1_hdr_names[SYN_HDR__COUNT] = {
	[SYN_HDR_NONE] = "",
#define H1_NAME(id, name) [SYN_HDR_##id] = name,
	SYN_H1_KNOWN_HEADERS(H1_NAME)
#undef H1_NAME
};

const uint8_t syn_h1_hdr_lens[SYN_HDR__COUNT] = {
	[SYN_HDR_NONE] = 0,
#define H1_LEN(id, name) [SYN_HDR_##id] = sizeof(name) - 1,
	SYN_H1_KNOWN_HEADERS(H1_LEN)
#undef H1_LEN
};

static const struct {
	uint16_t status;
	const char *text;
} h1_errors[SYN_H1_E__COUNT] = {
#define H1_ERR(id, st, txt) [SYN_H1_E_##id] = { st, txt },
	SYN_H1_ERRORS(H1_ERR)
#undef H1_ERR
};
/* clang-format on */

int syn_h1_err_status(int err)
{
	if (err <= 0 || err >= SYN_H1_E__COUNT)
		return err == 0 ? 0 : 400;
	return h1_errors[err].status;
}

const char *syn_h1_err_text(int err)
{
	if (err < 0 || err >= SYN_H1_E__COUNT)
		return "unknown error";
	return h1_errors[err].text;
}

int syn_h1_header_id(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!h1_is((unsigned char)name[i], H1_TCHAR))
			return SYN_HDR_NONE;
	return h1_known_id(name, len);
}

const char *syn_h1_header_name(int id)
{
	if (id <= SYN_HDR_NONE || id >= SYN_HDR__COUNT)
		return NULL;
	return syn_h1_hdr_names[id];
}

int syn_h1_span_ieq(const char *buf, struct syn_span s, const char *lower, size_t len)
{
	size_t i;

	if (s.len != len)
		return 0;
	for (i = 0; i < len; i++)
		if (h1_lower((unsigned char)buf[s.off + i]) != (unsigned char)lower[i])
			return 0;
	return 1;
}

/* Dispatch.  h1_cur starts at a resolver whose entries pick the variant for
 * this CPU, store it and forward the call: after the first parse every call
 * is one indirect call, with no test of a flag. */
static int h1_resolve_request(const char *buf, size_t len, struct syn_h1_request *req,
			      size_t max_head, unsigned max_headers);
static int h1_resolve_response(const char *buf, size_t len, struct syn_h1_response *resp,
			       size_t max_head, unsigned max_headers);

static const struct syn_h1_impl h1_resolver = {
	.request = h1_resolve_request,
	.response = h1_resolve_response,
};

static _Atomic(const struct syn_h1_impl *) h1_cur = &h1_resolver;

static const struct syn_h1_impl *h1_pick(void)
{
	const struct syn_h1_impl *impl = syn_h1_impl(syn_simd_level());

	if (!impl)
		impl = &syn_h1_impl_scalar;
	atomic_store_explicit(&h1_cur, impl, memory_order_relaxed);
	return impl;
}

static int h1_resolve_request(const char *buf, size_t len, struct syn_h1_request *req,
			      size_t max_head, unsigned max_headers)
{
	return h1_pick()->request(buf, len, req, max_head, max_headers);
}

static int h1_resolve_response(const char *buf, size_t len, struct syn_h1_response *resp,
			       size_t max_head, unsigned max_headers)
{
	return h1_pick()->response(buf, len, resp, max_head, max_headers);
}

/* Called by syn_simd_set() so that a new level takes effect. */
void syn_h1_repick(void)
{
	atomic_store_explicit(&h1_cur, &h1_resolver, memory_order_relaxed);
}

static inline const struct syn_h1_impl *h1_impl(void)
{
	return atomic_load_explicit(&h1_cur, memory_order_relaxed);
}

const struct syn_h1_impl *syn_h1_impl(int level)
{
	if (level < 0 || level > syn_simd_detect())
		return NULL;
	switch (level) {
#if defined(__x86_64__)
	case SYN_SIMD_AVX2:
		return &syn_h1_impl_avx2;
	case SYN_SIMD_SSE42:
		return &syn_h1_impl_sse42;
#endif
	case SYN_SIMD_SCALAR:
		return &syn_h1_impl_scalar;
	default:
		return NULL;
	}
}

static size_t h1_clamp_head(size_t max_head)
{
	return (max_head == 0 || max_head > SYN_H1_MAX_HEAD) ? SYN_H1_MAX_HEAD : max_head;
}

static unsigned h1_clamp_headers(unsigned max_headers)
{
	return (max_headers == 0 || max_headers > SYN_H1_MAX_HEADERS) ? SYN_H1_MAX_HEADERS
								      : max_headers;
}

/* Below this many bytes the scalar scanners win: a short head has short
 * fields, and every level gives the same result, so only speed differs. */
#define H1_SIMD_MIN_LEN 64

static inline const struct syn_h1_impl *h1_impl_for(size_t len)
{
	return len < H1_SIMD_MIN_LEN ? &syn_h1_impl_scalar : h1_impl();
}

int syn_h1_parse_request(const char *buf, size_t len, struct syn_h1_request *req)
{
	return h1_impl_for(len)->request(buf, len, req, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS);
}

int syn_h1_parse_response(const char *buf, size_t len, struct syn_h1_response *resp)
{
	return h1_impl_for(len)->response(buf, len, resp, SYN_H1_MAX_HEAD, SYN_H1_MAX_HEADERS);
}

int syn_h1_parse_request_limits(const char *buf, size_t len, struct syn_h1_request *req,
				size_t max_head, unsigned max_headers)
{
	return h1_impl_for(len)->request(buf, len, req, h1_clamp_head(max_head),
					 h1_clamp_headers(max_headers));
}

int syn_h1_parse_response_limits(const char *buf, size_t len, struct syn_h1_response *resp,
				 size_t max_head, unsigned max_headers)
{
	return h1_impl_for(len)->response(buf, len, resp, h1_clamp_head(max_head),
					  h1_clamp_headers(max_headers));
}
