/* native/src/engine.c - the engine: workers, plan swaps, the shared server
 * table, stats, and the feature probe; what syn_abi.h promises.
 *
 * Called from the control plane a few times per start or reload, and per
 * scrape for stats; workers never take a lock.  A plan is swapped by one
 * atomic store; each worker adopts it at the top of its loop, and an old
 * plan is freed once every worker has left it and no request of it is in
 * flight (syn_engine_gc()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

static uint64_t eng_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void eng_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* How many bytes a connection may hold in the kernel not yet sent (see
 * sock_setup() in proxy.c).  SYN_NOTSENT_LOWAT=N (bytes) replaces the 16
 * KiB, for A/B benchmarks; off, 0 or anything not a positive number leaves
 * the kernel's default. */
static int notsent_lowat_setting(void)
{
	const char *env = getenv("SYN_NOTSENT_LOWAT");
	long v;

	if (!env)
		return SYN_NOTSENT_LOWAT;
	if (!strcmp(env, "off"))
		return 0;
	v = strtol(env, NULL, 10);
	return v > 0 && v <= INT32_MAX ? (int)v : 0;
}

struct syn_engine *syn_engine_create(const struct syn_engine_config *cfg, char *err, size_t errlen)
{
	struct syn_engine *e;
	uint32_t i;

	if (cfg->workers < 1 || cfg->workers > SYN_MAX_WORKERS || cfg->max_connections < 1 ||
	    cfg->max_connections > 1000000) {
		eng_err(err, errlen, "engine: workers must be 1..%d and max_connections 1..1000000",
			SYN_MAX_WORKERS);
		return NULL;
	}
	/* SYN_STATIC_OPENAT2=off: the static handler's fallback for systems
	 * without openat2, on one that has it (tests) */
	if (getenv("SYN_STATIC_OPENAT2") && !strcmp(getenv("SYN_STATIC_OPENAT2"), "off"))
		syn_static_no_openat2();
	e = calloc(1, sizeof(*e));
	if (!e) {
		eng_err(err, errlen, "engine: out of memory");
		return NULL;
	}
	e->cfg = *cfg;
	e->notsent_lowat = notsent_lowat_setting();
	pthread_mutex_init(&e->lock, NULL);
	for (i = 0; i < SYN_MAX_SERVERS; i++)
		e->servers[i].up = 1;
	for (i = 0; i < cfg->workers; i++) {
		struct syn_worker *w = &e->workers[i];

		w->e = e;
		w->id = i;
		w->io = &syn_uring_ops;
		w->stats = calloc(1, sizeof(*w->stats));
		if (!w->stats || proxy_worker_init(w)) {
			eng_err(err, errlen, "engine: out of memory");
			syn_engine_destroy(e);
			return NULL;
		}
	}
	return e;
}

int syn_engine_apply(struct syn_engine *e, const struct syn_plan *plan, char *err, size_t errlen)
{
	struct rt_plan *rp = syn_plan_compile(plan, err, errlen), *old;
	uint32_t i, j;

	if (!rp)
		return -EINVAL;
	for (i = 0; i < rp->nupstreams; i++)
		for (j = 0; j < rp->upstreams[i].cfg.nservers; j++)
			rp->upstreams[i].lb_servers[j].shared =
				&e->servers[rp->upstreams[i].servers[j].slot];
	pthread_mutex_lock(&e->lock);
	old = atomic_exchange_explicit(&e->plan, rp, memory_order_acq_rel);
	if (old) {
		old->next_retired = e->retired;
		e->retired = old;
	}
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* A retired plan may go once each running worker has left it and has no
 * request of it in flight. */
static int eng_plan_done(struct syn_engine *e, struct rt_plan *rp)
{
	uint32_t i;

	for (i = 0; i < e->cfg.workers; i++) {
		if (e->started && !atomic_load_explicit(&rp->left[i], memory_order_acquire))
			return 0;
		if (atomic_load_explicit(&rp->refs[i], memory_order_acquire))
			return 0;
	}
	return 1;
}

int syn_engine_gc(struct syn_engine *e)
{
	struct rt_plan **at, *rp;
	int held = 0;

	pthread_mutex_lock(&e->lock);
	at = &e->retired;
	while ((rp = *at)) {
		if (eng_plan_done(e, rp)) {
			*at = rp->next_retired;
			syn_plan_free(rp);
		} else {
			held++;
			at = &rp->next_retired;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return held;
}

static void *eng_worker_main(void *arg)
{
	struct syn_worker *w = arg;
	struct rt_plan *rp;
	char name[16];
	int rc;

	snprintf(name, sizeof(name), "syn-worker-%u", w->id);
	pthread_setname_np(pthread_self(), name);
	rc = uring_worker_init(w);
	atomic_store_explicit(&w->init_rc, rc, memory_order_release);
	if (rc)
		return NULL; /* syn_engine_start() reports it */
	rp = atomic_load_explicit(&w->e->plan, memory_order_acquire);
	if (rp)
		proxy_adopt_plan(w, rp);
	uring_run(w);
	if (w->plan)
		atomic_store_explicit(&w->plan->left[w->id], 1, memory_order_release);
	uring_worker_fini(w);
	return NULL;
}

int syn_engine_start(struct syn_engine *e)
{
	uint32_t i;
	int rc;

	if (e->started)
		return -EALREADY;
	if (!atomic_load(&e->plan))
		return -EINVAL;
	e->started = 1;
	for (i = 0; i < e->cfg.workers; i++) {
		atomic_store(&e->workers[i].init_rc, 1);
		rc = pthread_create(&e->workers[i].thread, NULL, eng_worker_main, &e->workers[i]);
		if (rc) {
			atomic_store(&e->stop, 1);
			while (i--)
				pthread_join(e->workers[i].thread, NULL);
			e->started = 0;
			return -rc;
		}
	}
	/* a worker without a ring would accept nothing: wait until every ring
	 * is set up, and fail the start when one is not (e.g. a seccomp filter
	 * that denies io_uring) */
	for (i = 0; i < e->cfg.workers; i++) {
		while ((rc = atomic_load_explicit(&e->workers[i].init_rc, memory_order_acquire)) ==
		       1)
			usleep(1000);
		if (rc < 0) {
			syn_engine_stop(e, 0);
			return rc;
		}
	}
	return 0;
}

int syn_engine_stop(struct syn_engine *e, uint32_t grace_ms)
{
	uint32_t i;

	if (!e->started)
		return 0;
	atomic_store_explicit(&e->stop_deadline_ms, eng_now_ms() + grace_ms, memory_order_relaxed);
	atomic_store_explicit(&e->stop, 1, memory_order_release);
	for (i = 0; i < e->cfg.workers; i++)
		pthread_join(e->workers[i].thread, NULL);
	e->started = 0;
	return 0;
}

void syn_engine_destroy(struct syn_engine *e)
{
	struct rt_plan *rp;
	uint32_t i;

	if (!e)
		return;
	if (e->started)
		syn_engine_stop(e, 0);
	for (i = 0; i < e->cfg.workers; i++) {
		proxy_worker_fini(&e->workers[i]);
		free(e->workers[i].stats);
	}
	while ((rp = e->retired)) {
		e->retired = rp->next_retired;
		syn_plan_free(rp);
	}
	syn_plan_free(atomic_load(&e->plan));
	pthread_mutex_destroy(&e->lock);
	free(e);
}

void syn_engine_static_changed(struct syn_engine *e)
{
	atomic_fetch_add_explicit(&e->static_gen, 1, memory_order_release);
}

void syn_engine_server_set_up(struct syn_engine *e, uint32_t slot, int up)
{
	if (slot >= SYN_MAX_SERVERS)
		return;
	if (up && !__atomic_load_n(&e->servers[slot].up, __ATOMIC_RELAXED))
		__atomic_store_n(&e->servers[slot].up_since_ms, eng_now_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&e->servers[slot].up, up ? 1u : 0u, __ATOMIC_RELAXED);
}

void syn_engine_server_added(struct syn_engine *e, uint32_t slot, int up)
{
	if (slot >= SYN_MAX_SERVERS)
		return;
	__atomic_store_n(&e->passive[slot].fails, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->passive[slot].window_start_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->passive[slot].ejected_until_ms, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->servers[slot].up_since_ms, eng_now_ms(), __ATOMIC_RELAXED);
	__atomic_store_n(&e->servers[slot].up, up ? 1u : 0u, __ATOMIC_RELAXED);
}

int syn_engine_server_status(struct syn_engine *e, uint32_t slot, struct syn_server_status *out)
{
	if (slot >= SYN_MAX_SERVERS)
		return -EINVAL;
	out->up = __atomic_load_n(&e->servers[slot].up, __ATOMIC_RELAXED);
	out->active = __atomic_load_n(&e->servers[slot].active, __ATOMIC_RELAXED);
	out->fails = __atomic_load_n(&e->passive[slot].fails, __ATOMIC_RELAXED);
	out->ejected = __atomic_load_n(&e->passive[slot].ejected_until_ms, __ATOMIC_RELAXED) >
		       eng_now_ms();
	return 0;
}

/* Sum every worker's counters; make histograms cumulative. */
int syn_engine_stats(struct syn_engine *e, struct syn_stats *out)
{
	const size_t n = sizeof(*out) / sizeof(uint64_t);
	uint64_t *dst = (uint64_t *)out;
	uint32_t wi, i, b;

	memset(out, 0, sizeof(*out));
	for (wi = 0; wi < e->cfg.workers; wi++) {
		const uint64_t *src = (const uint64_t *)e->workers[wi].stats;

		for (i = 0; i < n; i++)
			dst[i] += __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	}
	for (i = 0; i < SYN_MAX_SITES; i++)
		for (b = 1; b < SYN_HIST_BUCKETS; b++)
			out->site_hist[i][b] += out->site_hist[i][b - 1];
	for (i = 0; i < SYN_MAX_UPSTREAMS; i++)
		for (b = 1; b < SYN_HIST_BUCKETS; b++)
			out->upstream_hist[i][b] += out->upstream_hist[i][b - 1];
	return 0;
}

int syn_probe_features(struct syn_features *out)
{
	struct io_uring_params p;
	struct io_uring ring;
	struct io_uring_probe *probe;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	rc = io_uring_queue_init_params(8, &ring, &p);
	if (rc == 0) {
		out->single_issuer = out->defer_taskrun = 1;
	} else {
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(8, &ring, &p);
	}
	if (rc < 0) {
		out->err = rc;
		return 0;
	}
	out->io_uring = 1;
	probe = io_uring_get_probe_ring(&ring);
	if (probe) {
		out->send_zc = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
		out->splice = io_uring_opcode_supported(probe, IORING_OP_SPLICE);
		io_uring_free_probe(probe);
	}
	{
		struct io_uring_buf_reg reg = {0};
		void *mem = aligned_alloc(4096, 4096);

		if (mem) {
			reg.ring_addr = (unsigned long)mem;
			reg.ring_entries = 8;
			reg.bgid = 1;
			if (!io_uring_register_buf_ring(&ring, &reg, 0)) {
				out->buf_ring = 1;
				/* multishot accept came with buffer rings (5.19) */
				out->multishot_accept = 1;
				io_uring_unregister_buf_ring(&ring, 1);
			}
			free(mem);
		}
	}
	out->multishot_recv = out->buf_ring && uring_recv_multishot_probe();
	io_uring_queue_exit(&ring);

	/* kernel TLS: keys installed both ways on a loopback pair, per version
	 * and cipher (ktls.c) */
	out->ktls_mask = syn_tls_ktls_mask();
	out->ktls = out->ktls_mask != 0;
	return 0;
}
