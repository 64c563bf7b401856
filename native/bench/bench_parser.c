/* native/bench/bench_parser.c - request-head parsing: synapserve vs llhttp.
 *
 * Usage: bench_parser [INPUT_DIR]   (default native/bench/inputs)
 *
 * Loads small.http, medium.http and large.http from INPUT_DIR, checks that
 * every parser accepts each of them whole and finds the same number of
 * header fields, then measures the time of one parse of the head:
 *   - synapserve: syn_h1_parse_request() at the auto-detected SIMD level
 *     (the headline), then at each level the CPU has (syn_simd_set());
 *   - llhttp: a complete parse of the head with on_url, on_header_field and
 *     on_header_value recording spans into a fixed array, as a proxy would,
 *     and on_headers_complete pausing the parser at the end of the head;
 *     llhttp_reset() before each parse.
 * A sample is enough back-to-back parses of one input for ~BENCH_SAMPLE_MS
 * milliseconds (default 20); samples of all parsers are interleaved, and the
 * median of BENCH_SAMPLES samples (default 31, at least 21) is reported as
 * one line per parser and input:
 *   parser=synapserve-avx2 input=small bytes=35 headers=1 ns=NN.N min=NN.N
 * BENCH_ONLY=llhttp or BENCH_ONLY=synapserve restricts the run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "syn/http1.h"
#include "syn/simd.h"
#include "llhttp.h"

#define NINPUTS         3
#define MAX_INPUT       65536
#define MAX_BENCH       8
#define MAX_SAMPLES     1001
#define LLH_MAX_HEADERS SYN_H1_MAX_HEADERS

static const char *const input_names[NINPUTS] = {"small", "medium", "large"};

struct input {
	const char *name;
	char *buf;
	size_t len;
	unsigned headers; /* as found by the parsers, all agreeing */
};

static volatile uint64_t sink; /* every parse's result ends up here */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Make the compiler assume the buffer may have changed between parses. */
static inline void clobber(const void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- synapserve ---- */

static struct syn_h1_request syn_req;

/* One parse; returns the head length plus the header count, or 0. */
static inline uint64_t syn_parse_once(const char *buf, size_t len)
{
	int n = syn_h1_parse_request(buf, len, &syn_req);

	if (n <= 0)
		return 0;
	return (uint64_t)n + syn_req.h.nheaders;
}

static uint64_t syn_run(const struct input *in, uint64_t iters, int level)
{
	uint64_t acc = 0, i;

	if (syn_simd_set(level) != 0)
		return 0;
	for (i = 0; i < iters; i++) {
		clobber(in->buf);
		acc += syn_parse_once(in->buf, in->len);
	}
	return acc;
}

static int syn_check(const struct input *in, int level, unsigned *headers)
{
	int n;

	if (syn_simd_set(level) != 0)
		return -1;
	memset(&syn_req, 0, sizeof(syn_req));
	n = syn_h1_parse_request(in->buf, in->len, &syn_req);
	if (n != (int)in->len) {
		fprintf(stderr,
			"synapserve-%s: %s: returned %d (error %d: %s at %u), expected %zu\n",
			syn_simd_name(level), in->name, n, syn_req.h.error,
			syn_h1_err_text(syn_req.h.error), syn_req.h.err_off, in->len);
		return -1;
	}
	*headers = syn_req.h.nheaders;
	return 0;
}

/* ---- llhttp ---- */

struct llh_span {
	const char *p;
	size_t len;
};

enum { LLH_NONE, LLH_URL, LLH_FIELD, LLH_VALUE };

struct llh_ctx {
	int last; /* which callback ran last */
	unsigned nheaders;
	struct llh_span url;
	struct llh_span name[LLH_MAX_HEADERS];
	struct llh_span value[LLH_MAX_HEADERS];
};

static int llh_on_url(llhttp_t *p, const char *at, size_t len)
{
	struct llh_ctx *c = p->data;

	if (c->last == LLH_URL) {
		c->url.len += len;
	} else {
		c->url.p = at;
		c->url.len = len;
		c->last = LLH_URL;
	}
	return 0;
}

static int llh_on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct llh_ctx *c = p->data;

	if (c->last == LLH_FIELD) { /* continued in a later buffer */
		c->name[c->nheaders - 1].len += len;
		return 0;
	}
	if (c->nheaders == LLH_MAX_HEADERS)
		return -1;
	c->name[c->nheaders].p = at;
	c->name[c->nheaders].len = len;
	c->value[c->nheaders].p = at + len;
	c->value[c->nheaders].len = 0;
	c->nheaders++;
	c->last = LLH_FIELD;
	return 0;
}

static int llh_on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct llh_ctx *c = p->data;
	struct llh_span *v = &c->value[c->nheaders - 1];

	if (c->last == LLH_VALUE) {
		v->len += len;
	} else {
		v->p = at;
		v->len = len;
		c->last = LLH_VALUE;
	}
	return 0;
}

static int llh_on_headers_complete(llhttp_t *p)
{
	(void)p;
	return HPE_PAUSED; /* stop at the end of the head */
}

static llhttp_settings_t llh_settings;
static llhttp_t llh_parser;
static struct llh_ctx llh_ctx;

static void llh_setup(void)
{
	llhttp_settings_init(&llh_settings);
	llh_settings.on_url = llh_on_url;
	llh_settings.on_header_field = llh_on_header_field;
	llh_settings.on_header_value = llh_on_header_value;
	llh_settings.on_headers_complete = llh_on_headers_complete;
	llhttp_init(&llh_parser, HTTP_REQUEST, &llh_settings);
	llh_parser.data = &llh_ctx;
}

/* One parse; returns the head length plus the header count, or 0. */
static inline uint64_t llh_parse_once(const char *buf, size_t len)
{
	llhttp_errno_t err;

	llhttp_reset(&llh_parser);
	llh_ctx.last = LLH_NONE;
	llh_ctx.nheaders = 0;
	err = llhttp_execute(&llh_parser, buf, len);
	if (err != HPE_PAUSED)
		return 0;
	return (uint64_t)(llhttp_get_error_pos(&llh_parser) - buf) + llh_ctx.nheaders;
}

static uint64_t llh_run(const struct input *in, uint64_t iters, int level)
{
	uint64_t acc = 0, i;

	(void)level;
	for (i = 0; i < iters; i++) {
		clobber(in->buf);
		acc += llh_parse_once(in->buf, in->len);
	}
	return acc;
}

static int llh_check(const struct input *in, int level, unsigned *headers)
{
	llhttp_errno_t err;
	size_t head;

	(void)level;
	llhttp_reset(&llh_parser);
	llh_ctx.last = LLH_NONE;
	llh_ctx.nheaders = 0;
	err = llhttp_execute(&llh_parser, in->buf, in->len);
	if (err != HPE_PAUSED) {
		fprintf(stderr, "llhttp: %s: %s (%s)\n", in->name, llhttp_errno_name(err),
			llhttp_get_error_reason(&llh_parser));
		return -1;
	}
	head = (size_t)(llhttp_get_error_pos(&llh_parser) - in->buf);
	if (head != in->len || llh_ctx.url.len == 0) {
		fprintf(stderr, "llhttp: %s: head of %zu bytes, expected %zu\n", in->name, head,
			in->len);
		return -1;
	}
	*headers = llh_ctx.nheaders;
	return 0;
}

/* ---- the harness ---- */

struct bench {
	char name[32];
	int level;
	uint64_t (*run)(const struct input *in, uint64_t iters, int level);
	int (*check)(const struct input *in, int level, unsigned *headers);
	uint64_t iters[NINPUTS];
	double samples[NINPUTS][MAX_SAMPLES];
};

static struct bench benches[MAX_BENCH];
static int nbenches;

static void add_bench(const char *name, int level,
		      uint64_t (*run)(const struct input *, uint64_t, int),
		      int (*check)(const struct input *, int, unsigned *))
{
	struct bench *b = &benches[nbenches++];

	snprintf(b->name, sizeof(b->name), "%s", name);
	b->level = level;
	b->run = run;
	b->check = check;
}

static const char *level_tag(int level)
{
	switch (level) {
	case SYN_SIMD_SCALAR:
		return "scalar";
	case SYN_SIMD_SSE42:
		return "sse42";
	case SYN_SIMD_AVX2:
		return "avx2";
	}
	return "unknown";
}

static int load_input(struct input *in, const char *dir, const char *name)
{
	char path[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.http", dir, name);
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "bench_parser: %s: %s\n", path, strerror(errno));
		return -1;
	}
	in->buf = malloc(MAX_INPUT);
	if (!in->buf) {
		fclose(f);
		return -1;
	}
	n = fread(in->buf, 1, MAX_INPUT, f);
	fclose(f);
	if (n == 0 || n == MAX_INPUT) {
		fprintf(stderr, "bench_parser: %s: empty or too large\n", path);
		return -1;
	}
	in->name = name;
	in->len = n;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Iterations for one sample of about sample_ns. */
static uint64_t calibrate(struct bench *b, const struct input *in, uint64_t sample_ns)
{
	uint64_t iters = 1000, t;

	b->run(in, iters, b->level); /* warm up */
	for (;;) {
		t = now_ns();
		sink += b->run(in, iters, b->level);
		t = now_ns() - t;
		if (t >= sample_ns / 8 || iters >= (1ull << 40))
			break;
		iters *= 4;
	}
	if (t == 0)
		t = 1;
	iters = (uint64_t)((double)iters * (double)sample_ns / (double)t);
	return iters ? iters : 1;
}

static long env_long(const char *name, long def, long min, long max)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return def;
	v = strtol(s, &end, 10);
	if (*end || v < min || v > max) {
		fprintf(stderr, "bench_parser: %s must be %ld..%ld\n", name, min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "native/bench/inputs";
	const char *only = getenv("BENCH_ONLY");
	struct input inputs[NINPUTS];
	int nsamples, best, lvl, i, j, s;
	uint64_t sample_ns;

	nsamples = (int)env_long("BENCH_SAMPLES", 31, 21, MAX_SAMPLES);
	sample_ns = (uint64_t)env_long("BENCH_SAMPLE_MS", 20, 1, 10000) * 1000000u;

	for (i = 0; i < NINPUTS; i++)
		if (load_input(&inputs[i], dir, input_names[i]))
			return 1;

	llh_setup();
	best = syn_simd_detect();
	if (!only || !strcmp(only, "synapserve")) {
		add_bench("synapserve", best, syn_run, syn_check);
		for (lvl = SYN_SIMD_SCALAR; lvl < SYN_SIMD__COUNT; lvl++) {
			char name[32];

			if (!syn_h1_impl(lvl) || syn_simd_set(lvl) != 0)
				continue;
			snprintf(name, sizeof(name), "synapserve-%s", level_tag(lvl));
			add_bench(name, lvl, syn_run, syn_check);
		}
	}
	if (!only || !strcmp(only, "llhttp"))
		add_bench("llhttp", 0, llh_run, llh_check);
	if (!nbenches) {
		fprintf(stderr, "bench_parser: BENCH_ONLY=%s matches nothing\n", only);
		return 2;
	}

	/* Every parser must take every input whole and agree on its headers. */
	for (i = 0; i < NINPUTS; i++) {
		for (j = 0; j < nbenches; j++) {
			unsigned h = 0;

			if (benches[j].check(&inputs[i], benches[j].level, &h))
				return 1;
			if (j == 0) {
				inputs[i].headers = h;
			} else if (h != inputs[i].headers) {
				fprintf(stderr, "bench_parser: %s: %s found %u headers, %s %u\n",
					inputs[i].name, benches[j].name, h, benches[0].name,
					inputs[i].headers);
				return 1;
			}
		}
	}

	fprintf(stderr, "bench_parser: best SIMD level %s; %d samples of ~%llu ms\n",
		level_tag(best), nsamples, (unsigned long long)(sample_ns / 1000000u));
	for (i = 0; i < NINPUTS; i++)
		for (j = 0; j < nbenches; j++)
			benches[j].iters[i] = calibrate(&benches[j], &inputs[i], sample_ns);

	/* Interleave: a drift in the machine's speed hits all parsers alike. */
	for (s = 0; s < nsamples; s++) {
		for (i = 0; i < NINPUTS; i++) {
			for (j = 0; j < nbenches; j++) {
				struct bench *b = &benches[j];
				uint64_t t = now_ns();

				sink += b->run(&inputs[i], b->iters[i], b->level);
				t = now_ns() - t;
				b->samples[i][s] = (double)t / (double)b->iters[i];
			}
		}
	}

	for (i = 0; i < NINPUTS; i++) {
		for (j = 0; j < nbenches; j++) {
			struct bench *b = &benches[j];

			qsort(b->samples[i], (size_t)nsamples, sizeof(double), cmp_double);
			printf("parser=%s input=%s bytes=%zu headers=%u ns=%.1f min=%.1f", b->name,
			       inputs[i].name, inputs[i].len, inputs[i].headers,
			       b->samples[i][nsamples / 2], b->samples[i][0]);
			if (b->run == syn_run)
				printf(" level=%s", level_tag(b->level));
			printf("\n");
		}
	}
	syn_simd_set(best);
	for (i = 0; i < NINPUTS; i++)
		free(inputs[i].buf);
	return 0;
}
