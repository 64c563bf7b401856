/* native/tests/h1_text.h - what the parser tests print: error names and
 * C-escaped input, shared by test_http1.c and test_chunked.c. */
#ifndef SYN_TEST_H1_TEXT_H
#define SYN_TEST_H1_TEXT_H

#include <stdio.h>

#include "syn/http1.h"

static const char *const err_names[] = {
#define SYN_T_ERR_NAME(id, status, text) #id,
	SYN_H1_ERRORS(SYN_T_ERR_NAME)
#undef SYN_T_ERR_NAME
};

static const char *ename(int e)
{
	if (e < 0 || e >= SYN_H1_E__COUNT)
		return "(out of range)";
	return err_names[e];
}

/* C-escaped text for messages; four rotating buffers. */
static const char *esc(const char *s, size_t n)
{
	static char bufs[4][512];
	static unsigned which;
	char *o = bufs[which++ & 3], *p = o;
	size_t i;

	for (i = 0; i < n && p - o < 480; i++) {
		unsigned char ch = s[i];

		if (ch == '\r')
			p += sprintf(p, "\\r");
		else if (ch == '\n')
			p += sprintf(p, "\\n");
		else if (ch == '\t')
			p += sprintf(p, "\\t");
		else if (ch == '"' || ch == '\\')
			p += sprintf(p, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			p += sprintf(p, "\\x%02x", ch);
		else
			*p++ = ch;
	}
	if (i < n)
		p += sprintf(p, "...(%zu bytes)", n);
	*p = 0;
	return o;
}

#endif
