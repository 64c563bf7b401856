/* native/src/outbuf.h - appending to a fixed buffer, for the heads the
 * proxy and the static handler write.  Nothing is written past cap: a write
 * that does not fit sets overflow, and the caller checks it once at the end.
 */
#ifndef SYN_OUTBUF_H
#define SYN_OUTBUF_H

#include <stdint.h>
#include <string.h>

#include "syn/http1-t.h"

struct outbuf {
	char *p;
	uint32_t len, cap;
	int overflow;
};

static inline void ob_put(struct outbuf *o, const char *s, size_t n)
{
	if (o->overflow || o->len + n > o->cap) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += (uint32_t)n;
}

static inline void ob_str(struct outbuf *o, const char *s)
{
	ob_put(o, s, strlen(s));
}

static inline void ob_span(struct outbuf *o, const char *base, struct syn_span s)
{
	ob_put(o, base + s.off, s.len);
}

static inline void ob_u64(struct outbuf *o, uint64_t v)
{
	char d[24];
	int i = 24;

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10));
	ob_put(o, d + i, (size_t)(24 - i));
}

#endif
