/* native/tests/test_static.c - the pure parts of the static file handler
 * (native/src/static.c): path decoding and normalization, byte ranges, and
 * HTTP dates.  The handler as a whole (files, conditionals, splice) is tested
 * end to end in tests/integration/test_static.py.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/engine.h"
#include "check.h"

static void norm(const char *in, int want_status, const char *want)
{
	char out[256];
	size_t n = 0;
	int st = syn_static_normalize(in, strlen(in), out, sizeof(out), &n);

	CHECK(st == want_status, "%s: status %d, want %d", in, st, want_status);
	if (!st && want)
		CHECK(n == strlen(want) && !strcmp(out, want), "%s: got \"%s\", want \"%s\"", in,
		      out, want);
}

static void test_normalize(void)
{
	norm("/", 0, "/");
	norm("/a", 0, "/a");
	norm("/a/", 0, "/a/");
	norm("//a//b//", 0, "/a/b/");
	norm("/a/./b", 0, "/a/b");
	norm("/a/.", 0, "/a/");
	norm("/a/b/..", 0, "/a/");
	norm("/a/b/../c", 0, "/a/c");
	norm("/a/b/../../c", 0, "/c");
	norm("/.", 0, "/");
	norm("/..", 403, NULL);
	norm("/a/../..", 403, NULL);
	norm("/a/../../etc/passwd", 403, NULL);
	norm("/%2e%2e/etc/passwd", 403, NULL);
	norm("/%2E%2e/x", 403, NULL);
	norm("/a/%2e%2e/%2e%2e/x", 403, NULL);
	norm("/a/%2e/b", 0, "/a/b");
	norm("/.%2e/x", 403, NULL);
	norm("/a%2fb", 404, NULL);
	norm("/a%2Fb", 404, NULL);
	norm("/a%00b", 404, NULL);
	norm("/a\\b", 404, NULL);
	norm("/a%5cb", 404, NULL);
	norm("/a%5C..%5Cb", 404, NULL);
	norm("/a%0ab", 404, NULL);
	norm("/a%7f", 404, NULL);
	norm("/a%zz", 400, NULL);
	norm("/a%4", 400, NULL);
	norm("/a%", 400, NULL);
	norm("a", 400, NULL);
	norm("", 400, NULL);
	norm("/%61%62c", 0, "/abc");
	norm("/caf%C3%A9", 0, "/caf\xc3\xa9");
	norm("/a/...", 0, "/a/...");
	norm("/a/..b", 0, "/a/..b");
	norm("/a/b./", 0, "/a/b./");
	norm("/%252e%252e/x", 0, "/%2e%2e/x"); /* decoded once only */
	{
		char big[600];

		memset(big, 'a', sizeof(big));
		big[0] = '/';
		big[sizeof(big) - 1] = 0;
		norm(big, 404, NULL); /* longer than the output buffer */
	}
}

static void range(const char *v, uint64_t size, int want, uint64_t off, uint64_t len)
{
	uint64_t o = 77, l = 77;
	int rc = syn_static_range(v, strlen(v), size, &o, &l);

	CHECK(rc == want, "%s (size %llu): rc %d, want %d", v, (unsigned long long)size, rc, want);
	if (rc == 1 && want == 1)
		CHECK(o == off && l == len, "%s: %llu+%llu, want %llu+%llu", v,
		      (unsigned long long)o, (unsigned long long)l, (unsigned long long)off,
		      (unsigned long long)len);
}

static void test_range(void)
{
	range("bytes=0-0", 10, 1, 0, 1);
	range("bytes=0-9", 10, 1, 0, 10);
	range("bytes=0-99", 10, 1, 0, 10);
	range("bytes=5-", 10, 1, 5, 5);
	range("bytes=9-", 10, 1, 9, 1);
	range("bytes=-3", 10, 1, 7, 3);
	range("bytes=-30", 10, 1, 0, 10);
	range("BYTES=2-3", 10, 1, 2, 2);
	range("bytes= 2-3 ", 10, 1, 2, 2);
	range("bytes=10-", 10, -1, 0, 0);
	range("bytes=10-20", 10, -1, 0, 0);
	range("bytes=-0", 10, -1, 0, 0);
	range("bytes=0-", 0, -1, 0, 0);
	range("bytes=-5", 0, -1, 0, 0);
	range("bytes=3-2", 10, 0, 0, 0);
	range("bytes=0-1,3-4", 10, 0, 0, 0);
	range("bytes=a-b", 10, 0, 0, 0);
	range("bytes=1", 10, 0, 0, 0);
	range("bytes=-", 10, 0, 0, 0);
	range("items=0-1", 10, 0, 0, 0);
	range("bytes=99999999999999999999-", 10, 0, 0, 0);
	range("bytes=0-1073741823", 1ull << 32, 1, 0, 1ull << 30);
}

static void test_dates(void)
{
	static const struct {
		int64_t t;
		const char *s;
	} rows[] = {
		{0, "Thu, 01 Jan 1970 00:00:00 GMT"},
		{784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
		{951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
		{1798761599, "Thu, 31 Dec 2026 23:59:59 GMT"},
		{4102444800, "Fri, 01 Jan 2100 00:00:00 GMT"},
	};
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		syn_http_date(rows[i].t, buf);
		CHECK(!strcmp(buf, rows[i].s), "%lld: \"%s\", want \"%s\"", (long long)rows[i].t,
		      buf, rows[i].s);
		CHECK(syn_http_date_parse(rows[i].s, strlen(rows[i].s)) == rows[i].t, "parse %s",
		      rows[i].s);
	}
	/* every day for 200 years: format then parse gives the same second */
	for (int64_t t = -86400LL * 365 * 20; t < 86400LL * 365 * 180; t += 86400 + 3607) {
		syn_http_date(t, buf);
		CHECK(syn_http_date_parse(buf, strlen(buf)) == t, "round trip %lld: %s",
		      (long long)t, buf);
	}
	CHECK(syn_http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", 30) == -1, "RFC 850 ignored");
	CHECK(syn_http_date_parse("Sun Nov  6 08:49:37 1994", 24) == -1, "asctime ignored");
	CHECK(syn_http_date_parse("Sun, 06 Nov 1994 08:49:37 UTC", 29) == -1, "not GMT");
	CHECK(syn_http_date_parse("Sun, 06 Foo 1994 08:49:37 GMT", 29) == -1, "bad month");
	CHECK(syn_http_date_parse("Sun, 06 Nov 1994 25:49:37 GMT", 29) == -1, "bad hour");
}

int main(void)
{
	test_normalize();
	test_range();
	test_dates();
	return check_report();
}
