/* native/src/http1_chunked.c - the resumable chunked-body decoder.
 *
 * A byte-at-a-time state machine for the framing (sizes, extensions, line
 * ends, trailers), which is a few bytes per chunk, and a bulk step for the
 * data, which is the rest.  All state is in struct syn_h1_chunked, so input
 * may be cut anywhere.
 */
#include <limits.h>

#include "http1_int.h"

void syn_h1_chunked_init(struct syn_h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

void syn_h1_chunked_skip(struct syn_h1_chunked *c, uint64_t n)
{
	if (c->state != SYN_CK_DATA || n > c->remaining)
		return;
	c->remaining -= n;
	if (c->remaining == 0)
		c->state = SYN_CK_DATA_CR;
}

static long ck_fail(struct syn_h1_chunked *c, int err)
{
	c->error = (uint8_t)err;
	return SYN_PARSE_ERR;
}

static int ck_hex(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int ck_ext_fail(struct syn_h1_chunked *c, unsigned char ch)
{
	return (int)ck_fail(c, ch == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_CHUNK_EXT);
}

/* After a complete extension (name or name=value): another, or the end. */
static int ck_ext_end(struct syn_h1_chunked *c, unsigned char ch)
{
	if (ch == ';')
		c->state = SYN_CK_EXT;
	else if (ch == '\r')
		c->state = SYN_CK_SIZE_LF;
	else
		return ck_ext_fail(c, ch);
	return 0;
}

/* One framing octet.  Returns 0 to go on, 1 when the framing run ends here
 * (data follows, or the message is done), or SYN_PARSE_ERR. */
static int ck_step(struct syn_h1_chunked *c, unsigned char ch)
{
	int d;

	switch (c->state) {
	case SYN_CK_SIZE_FIRST:
	case SYN_CK_SIZE:
		d = ck_hex(ch);
		if (d >= 0) {
			/* leading zeros are free; significant digits must fit in int64 */
			if (c->remaining > ((uint64_t)INT64_MAX >> 4))
				return (int)ck_fail(c, SYN_H1_E_CHUNK_SIZE_OVERFLOW);
			c->remaining = (c->remaining << 4) | (uint64_t)d;
			c->state = SYN_CK_SIZE;
			return 0;
		}
		if (c->state == SYN_CK_SIZE_FIRST)
			return (int)ck_fail(c, ch == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_CHUNK_SIZE);
		if (ch == '\r')
			c->state = SYN_CK_SIZE_LF;
		else if (ch == ';')
			c->state = SYN_CK_EXT;
		else if (ch == ' ' || ch == '\t')
			c->state = SYN_CK_SIZE_WS;
		else
			return (int)ck_fail(c, ch == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_CHUNK_SIZE);
		return 0;
	case SYN_CK_SIZE_WS:
		/* BWS is allowed only before an extension */
		if (ch == ';')
			c->state = SYN_CK_EXT;
		else if (ch != ' ' && ch != '\t')
			return (int)ck_fail(c, ch == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_CHUNK_SIZE);
		return 0;
	case SYN_CK_EXT:
		/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ) */
		if (h1_is(ch, H1_TCHAR))
			c->state = SYN_CK_EXT_NAME;
		else if (ch != ' ' && ch != '\t')
			return ck_ext_fail(c, ch);
		return 0;
	case SYN_CK_EXT_NAME:
	case SYN_CK_EXT_VAL:
		if (h1_is(ch, H1_TCHAR))
			return 0;
		if (ch == '=' && c->state == SYN_CK_EXT_NAME) {
			c->state = SYN_CK_EXT_PRE_VAL;
			return 0;
		}
		if (ch == ' ' || ch == '\t') {
			c->state = c->state == SYN_CK_EXT_NAME ? SYN_CK_EXT_POST_NAME
							       : SYN_CK_EXT_POST_VAL;
			return 0;
		}
		return ck_ext_end(c, ch);
	case SYN_CK_EXT_POST_NAME:
		if (ch == '=') {
			c->state = SYN_CK_EXT_PRE_VAL;
			return 0;
		}
		if (ch == ' ' || ch == '\t')
			return 0;
		return ck_ext_end(c, ch);
	case SYN_CK_EXT_PRE_VAL:
		if (ch == '"')
			c->state = SYN_CK_EXT_QUOTED;
		else if (h1_is(ch, H1_TCHAR))
			c->state = SYN_CK_EXT_VAL;
		else if (ch != ' ' && ch != '\t')
			return ck_ext_fail(c, ch);
		return 0;
	case SYN_CK_EXT_QUOTED:
		if (ch == '"')
			c->state = SYN_CK_EXT_POST_VAL;
		else if (ch == '\\')
			c->state = SYN_CK_EXT_QUOTED_ESC;
		else if (!h1_is(ch, H1_VALUE))
			return ck_ext_fail(c, ch);
		return 0;
	case SYN_CK_EXT_QUOTED_ESC:
		if (!h1_is(ch, H1_VALUE))
			return ck_ext_fail(c, ch);
		c->state = SYN_CK_EXT_QUOTED;
		return 0;
	case SYN_CK_EXT_POST_VAL:
		if (ch == ' ' || ch == '\t')
			return 0;
		return ck_ext_end(c, ch);
	case SYN_CK_SIZE_LF:
		if (ch != '\n')
			return (int)ck_fail(c, SYN_H1_E_BARE_CR);
		c->line_bytes = 0;
		if (c->remaining == 0) {
			c->last = 1;
			c->state = SYN_CK_TRAILER_START;
			return 0;
		}
		c->state = SYN_CK_DATA;
		return 1;
	case SYN_CK_DATA_CR:
		if (ch != '\r')
			return (int)ck_fail(c, ch == '\n' ? SYN_H1_E_BARE_LF
							  : SYN_H1_E_CHUNK_DATA_END);
		c->state = SYN_CK_DATA_LF;
		return 0;
	case SYN_CK_DATA_LF:
		if (ch != '\n')
			return (int)ck_fail(c, SYN_H1_E_CHUNK_DATA_END);
		c->state = SYN_CK_SIZE_FIRST;
		c->line_bytes = 0;
		return 0;
	case SYN_CK_TRAILER_START:
		if (ch == '\r')
			c->state = SYN_CK_END_LF;
		else if (ch == '\n')
			return (int)ck_fail(c, SYN_H1_E_BARE_LF);
		else if (h1_is(ch, H1_TCHAR))
			c->state = SYN_CK_TRAILER_NAME;
		else
			return (int)ck_fail(c, SYN_H1_E_TRAILER);
		return 0;
	case SYN_CK_TRAILER_NAME:
		if (ch == ':')
			c->state = SYN_CK_TRAILER_VALUE;
		else if (!h1_is(ch, H1_TCHAR))
			return (int)ck_fail(c, ch == '\n' ? SYN_H1_E_BARE_LF : SYN_H1_E_TRAILER);
		return 0;
	case SYN_CK_TRAILER_VALUE:
		if (ch == '\r')
			c->state = SYN_CK_TRAILER_LF;
		else if (ch == '\n')
			return (int)ck_fail(c, SYN_H1_E_BARE_LF);
		else if (!h1_is(ch, H1_VALUE))
			return (int)ck_fail(c, SYN_H1_E_TRAILER);
		return 0;
	case SYN_CK_TRAILER_LF:
		if (ch != '\n')
			return (int)ck_fail(c, SYN_H1_E_BARE_CR);
		c->state = SYN_CK_TRAILER_START;
		return 0;
	case SYN_CK_END_LF:
		if (ch != '\n')
			return (int)ck_fail(c, SYN_H1_E_BARE_CR);
		c->state = SYN_CK_DONE;
		return 1;
	default:
		return 1;
	}
}

long syn_h1_chunked_parse(struct syn_h1_chunked *c, const char *buf, size_t len, int *data)
{
	size_t i;

	*data = 0;
	if (c->state == SYN_CK_DONE)
		return 0;
	if (c->state == SYN_CK_DATA) {
		size_t n = len < c->remaining ? len : (size_t)c->remaining;

		*data = n > 0;
		syn_h1_chunked_skip(c, n);
		return (long)n;
	}
	if (len > (size_t)LONG_MAX)
		len = (size_t)LONG_MAX;
	for (i = 0; i < len; i++) {
		int rc;

		/* bound what a peer can make us read before data or the end */
		if (c->last) {
			if (++c->line_bytes > SYN_H1_TRAILER_MAX)
				return ck_fail(c, SYN_H1_E_TRAILER_TOO_LARGE);
		} else if (++c->line_bytes > SYN_H1_CHUNK_LINE_MAX) {
			return ck_fail(c, c->state <= SYN_CK_SIZE_WS ? SYN_H1_E_CHUNK_SIZE
								     : SYN_H1_E_CHUNK_EXT);
		}
		rc = ck_step(c, (unsigned char)buf[i]);
		if (rc < 0)
			return SYN_PARSE_ERR;
		if (rc > 0)
			return (long)(i + 1);
	}
	return (long)len;
}
