/* native/include/syn_abi.h - the one header cffi reads.
 *
 * Everything Python may call in the native engine is declared here, in the
 * subset of C that cffi's cdef() parses: no macros with arguments, no
 * includes (the build strips preprocessor lines before handing this to
 * cdef, and compiles the real thing with them).  Python calls these a
 * handful of times per start or reload, never per request.
 */
#ifndef SYN_ABI_H
#define SYN_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Version of this ABI: bumped whenever a declaration here changes. */
#define SYN_ABI_VERSION 1

int syn_abi_version(void);
const char *syn_native_version(void);

/* SIMD level of the parser: 0 scalar, 1 SSE4.2, 2 AVX2. */
int syn_simd_detect(void);
int syn_simd_level(void);
const char *syn_simd_name(int level);

/* A one-shot parse of a request head, for diagnostics and for tests of
 * the binding (never on a request path): fills status (0 when valid, else the status the
 * data plane answers with) and a reason; returns the head length,
 * -1 invalid or -2 incomplete. */
int syn_abi_parse_request(const char *buf, size_t len, int *status, const char **reason);

#endif
