/* native/include/syn/lb-t.h - load-balancing types; no functions.
 *
 * A balancer picks one server of an upstream for a request.  It runs on
 * the worker that owns the request, per request, without locks and
 * without allocating: its state is one block per (worker, upstream), sized
 * by the algorithm and allocated when a plan is applied.
 */
#ifndef SYN_LB_T_H
#define SYN_LB_T_H

#include <stddef.h>
#include <stdint.h>

#define SYN_LB_MAX_SERVERS 256 /* per upstream: the tried/usable bitmaps are inline */
#define SYN_LB_WORDS       (SYN_LB_MAX_SERVERS / 64)

/* Effective weights (syn_lb_weight()) count in 1/SYN_LB_WEIGHT_SCALE of a
 * configured weight, so that slow_start can ramp a server of weight 1 (the
 * default) too.  Configured weights above SYN_LB_WEIGHT_MAX count as that
 * much, which keeps every product the balancers form inside 64 bits. */
#define SYN_LB_WEIGHT_SCALE 100
#define SYN_LB_WEIGHT_MAX   1000000

/* What every worker shares about one server: written by workers with
 * atomics (active) or by the health checker (up, up_since_ms), read by all. */
struct syn_server_shared {
	uint32_t active;      /* requests in flight across all workers (atomic) */
	uint32_t up;          /* 1 while the server may get traffic by active checks (atomic) */
	uint64_t up_since_ms; /* when it last came up or was added, for slow_start (atomic) */
};

struct syn_lb_server {
	uint32_t weight;                  /* configured, >= 1 */
	uint32_t backup;                  /* 1 for backup servers */
	uint64_t id;                      /* stable identity, a hash of the address (ip_hash) */
	struct syn_server_shared *shared; /* never NULL */
};

/* The upstream as a balancer sees it: immutable for the life of a plan. */
struct syn_lb_upstream {
	uint32_t nservers;      /* 1 .. SYN_LB_MAX_SERVERS */
	uint32_t slow_start_ms; /* 0 = off */
	const struct syn_lb_server *servers;
};

/* Per pick.  The usable mask is the whole truth for the balancer: the
 * caller folds health, ejection, backup-only-when-no-primary and servers
 * already tried for this request into it. */
struct syn_lb_ctx {
	uint64_t hash;                 /* of the client address (ip_hash) */
	uint64_t now_ms;               /* monotonic milliseconds */
	uint64_t usable[SYN_LB_WORDS]; /* bit i: server i may be picked now */
};

struct syn_lb_ops {
	/* Hot: per request, owning worker only, no locks, no malloc.  Returns the
	 * index of a server whose usable bit is set, or -EAGAIN if none is. */
	int (*pick)(void *st, const struct syn_lb_upstream *up, const struct syn_lb_ctx *ctx);
	/* After a response (or failure) from server srv; may be NULL. */
	void (*done)(void *st, const struct syn_lb_upstream *up, int srv, uint64_t latency_us,
		     int failed);
};

/* Cold: plan apply.  st is state_size(up) bytes, 8-byte aligned at least,
 * owned by one worker, and used with the same up it was initialised with. */
struct syn_lb_def {
	const char *name; /* as spelled in the TOML */
	size_t (*state_size)(const struct syn_lb_upstream *up);
	int (*init)(void *st, const struct syn_lb_upstream *up, uint32_t seed);
	const struct syn_lb_ops *ops;
};

enum syn_lb_algo {
	SYN_LB_ROUND_ROBIN = 0,
	SYN_LB_LEAST_CONN,
	SYN_LB_IP_HASH,
	SYN_LB_RANDOM,
	SYN_LB_EWMA,
	SYN_LB__COUNT
};

#endif
