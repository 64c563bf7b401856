/* native/fuzz/fuzz_static_path.c - the static handler's path normalizer.
 *
 * Any input: no crash, no read or write out of bounds, and when it is
 * accepted the result is a clean absolute path: it starts with '/', has no
 * empty, "." or ".." segment, no backslash, NUL or control character, and is
 * never longer than its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[512];
	size_t n = 0, i, seg = 1;
	int st = syn_static_normalize((const char *)data, size, out, sizeof(out), &n);

	if (st)
		return (st == 400 || st == 403 || st == 404) ? 0 : (abort(), 0);
	if (n == 0 || n > size || out[0] != '/' || out[n] != 0)
		abort();
	for (i = 1; i <= n; i++) {
		unsigned char c = i < n ? (unsigned char)out[i] : '/';

		if (c < 0x20 || c == 0x7f || c == '\\')
			abort();
		if (c != '/')
			continue;
		if (i < n || i > seg) { /* a segment out[seg..i) */
			if (i == seg && i < n)
				abort(); /* "//" */
			if ((i - seg == 1 && out[seg] == '.') ||
			    (i - seg == 2 && out[seg] == '.' && out[seg + 1] == '.'))
				abort();
		}
		seg = i + 1;
	}
	return 0;
}
