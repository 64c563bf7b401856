/* native/bench/tls/wrk_tls.c - an LD_PRELOAD library for wrk in bench_tls.sh:
 * counts wrk's completed TLS handshakes, full and resumed, and with
 * WRK_TLS_MODE=full makes every one a full handshake.
 *
 * wrk keeps one SSL object per connection slot and, on reconnecting, only
 * SSL_clear()s it after SSL_shutdown(): the object keeps its session, with
 * the TLS 1.3 ticket the server sent, and the next handshake resumes it.
 * So a `Connection: close` run measures resumptions, not new clients.  In
 * mode "full", SSL_connect() on an object that has not started its handshake
 * drops the session first.  Mode "count" (or none) changes nothing.
 *
 * At exit it writes "full N resumed M" to WRK_TLS_OUT (when set).
 * Built by bench_tls.sh: gcc -O2 -shared -fPIC -o OUT/wrk_tls.so wrk_tls.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int (*real_connect)(SSL *);
static atomic_ulong n_full, n_resumed;
static int mode_full = -1;

int SSL_connect(SSL *s)
{
	int r;

	if (!real_connect)
		real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
	if (mode_full < 0) {
		const char *m = getenv("WRK_TLS_MODE");

		mode_full = m && !strcmp(m, "full");
	}
	if (mode_full && SSL_in_before(s))
		SSL_set_session(s, NULL);
	r = real_connect(s);
	if (r == 1) {
		if (SSL_session_reused(s))
			atomic_fetch_add(&n_resumed, 1);
		else
			atomic_fetch_add(&n_full, 1);
	}
	return r;
}

__attribute__((destructor)) static void wrk_tls_report(void)
{
	const char *path = getenv("WRK_TLS_OUT");
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "full %lu resumed %lu\n", atomic_load(&n_full), atomic_load(&n_resumed));
	fclose(f);
}
