/* native/include/syn_abi.h - the one header cffi reads.
 *
 * Everything Python may call in the native engine is declared here, in the
 * subset of C that cffi's cdef() parses: no function-like macros, no
 * includes (the build strips preprocessor lines before handing this to
 * cdef, and compiles the real thing with them).  Python calls these a
 * handful of times per start, reload or scrape, never per request; C never
 * calls Python.
 */
#ifndef SYN_ABI_H
#define SYN_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Version of this ABI and of the plan layout: bumped whenever a
 * declaration here changes. */
#define SYN_ABI_VERSION   6
#define SYN_PLAN_MAGIC    0x53594e50

#define SYN_MAX_WORKERS   64
#define SYN_MAX_LISTENERS 64 /* listener names (stats slots); binds are unbounded */
#define SYN_MAX_SITES     256
#define SYN_MAX_UPSTREAMS 256
#define SYN_MAX_SERVERS   1024 /* server slots, over all upstreams */
#define SYN_NAME_MAX      64
#define SYN_HOST_MAX      256
#define SYN_PATH_MAX      256
#define SYN_HIST_BUCKETS  14
#define SYN_MAX_STATICS   256 /* static routes, over all sites */
#define SYN_ROOT_MAX      1024
#define SYN_EXT_MAX       16
#define SYN_MIME_MAX      96
#define SYN_MAX_CERTS     256 /* TLS certificates, over all listeners */

int syn_abi_version(void);
const char *syn_native_version(void);

/* SIMD level of the parser: 0 scalar, 1 SSE4.2, 2 AVX2. */
int syn_simd_detect(void);
int syn_simd_level(void);
const char *syn_simd_name(int level);

/* A one-shot parse of a request head, for diagnostics and for tests of
 * the binding (never on a request path): fills status (0 when valid, else
 * the status the data plane answers with) and a reason; returns the head
 * length, -1 invalid or -2 incomplete. */
int syn_abi_parse_request(const char *buf, size_t len, int *status, const char **reason);

/* ---- kernel features -------------------------------------------------- */

struct syn_features {
	int32_t io_uring; /* rings can be created */
	int32_t multishot_accept;
	int32_t multishot_recv;
	int32_t buf_ring; /* provided buffer rings */
	int32_t send_zc;
	int32_t splice;
	int32_t single_issuer;
	int32_t defer_taskrun;
	int32_t ktls;       /* kernel TLS: the tls ULP takes keys, both ways */
	uint32_t ktls_mask; /* bit v * 3 + c: TLS 1.2 (v 0) / 1.3 (v 1) with AES-128-GCM
	                     * (c 0), AES-256-GCM (1), ChaCha20-Poly1305 (2) */
	int32_t err;        /* -errno of io_uring_queue_init when io_uring == 0 */
};

/* Probe once (creates and destroys a ring). 0 or -errno. */
int syn_probe_features(struct syn_features *out);

/* ---- the plan ---------------------------------------------------------- */

/* A socket address: family 2 (AF_INET) or 10 (AF_INET6), port in host
 * order, ip in network order (4 or 16 bytes used). */
struct syn_addr {
	uint16_t family;
	uint16_t port;
	uint8_t ip[16];
};

struct syn_plan_listener { /* one per bound address */
	char name[SYN_NAME_MAX];
	int32_t fd;    /* listening socket, opened by the control plane */
	uint32_t slot; /* stats slot of the listener name, < SYN_MAX_LISTENERS */
	uint32_t bit;  /* bit of this listener name in site masks, < 64 */
};

struct syn_plan_server {
	struct syn_addr addr;
	uint32_t weight; /* >= 1 */
	uint32_t backup;
	uint32_t slot; /* shared state and stats slot, < SYN_MAX_SERVERS; the
	                             * control plane keeps it for a server that survives a reload */
	uint64_t id;   /* stable identity (hash of the address), for ip_hash */
};

struct syn_plan_upstream {
	char name[SYN_NAME_MAX];
	uint32_t first_server; /* into servers[] */
	uint32_t nservers;
	uint32_t balance;   /* enum syn_lb_algo: 0 round_robin, 1 least_conn, 2 ip_hash,
	                             * 3 random, 4 ewma */
	uint32_t keepalive; /* idle pooled connections per worker per server */
	uint32_t connect_timeout_ms;
	uint32_t read_timeout_ms;
	uint32_t send_timeout_ms;
	uint32_t retries;
	uint32_t max_fails; /* 0: passive ejection off */
	uint32_t fail_timeout_ms;
	uint32_t slow_start_ms;
	uint32_t slot; /* stats slot, < SYN_MAX_UPSTREAMS */
};

struct syn_plan_site {
	char name[SYN_NAME_MAX];
	uint64_t listeners; /* mask of listener bits it serves */
	uint32_t slot;      /* stats slot, < SYN_MAX_SITES */
};

struct syn_plan_host { /* "example.com", "*.example.com" or "*" */
	char name[SYN_HOST_MAX];
	uint32_t site;
};

struct syn_plan_route {
	char path[SYN_PATH_MAX]; /* prefix, starts with '/' */
	uint32_t site;
	uint32_t upstream; /* index into upstreams[], when statik is SYN_NONE */
	uint32_t statik;   /* index into statics[], or 0xffffffff for an upstream route */
};

struct syn_plan_cert { /* a certificate of a TLS listener; the first of each is its default */
	char cert[SYN_ROOT_MAX]; /* PEM: the certificate, then its chain */
	char key[SYN_ROOT_MAX];  /* PEM */
	uint32_t listener;       /* the listener name's slot */
	uint32_t min_version;    /* 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3) */
	uint32_t ktls;           /* 0 off, 1 auto, 2 require (the listener's) */
};

struct syn_plan_static {         /* a route's static = { root, index, compress } */
	char root[SYN_ROOT_MAX]; /* absolute directory */
	char index[SYN_NAME_MAX];
	uint32_t compress;
};

struct syn_plan_mime {         /* from /etc/mime.types; sorted by ext, unique */
	char ext[SYN_EXT_MAX]; /* lower case, no dot */
	char type[SYN_MIME_MAX];
	uint32_t compressible;
};

struct syn_plan_limits {
	uint32_t header_bytes;
	uint32_t headers;
	uint64_t body_bytes;
	uint32_t client_header_timeout_ms;
	uint32_t client_body_timeout_ms;
	uint32_t keepalive_timeout_ms;
	uint32_t max_connections; /* per worker */
};

struct syn_plan {
	uint32_t magic;   /* SYN_PLAN_MAGIC */
	uint32_t version; /* SYN_ABI_VERSION */
	uint64_t generation;
	struct syn_plan_limits limits;
	uint32_t nlisteners, nservers, nupstreams, nsites, nhosts, nroutes;
	const struct syn_plan_listener *listeners;
	const struct syn_plan_server *servers;
	const struct syn_plan_upstream *upstreams;
	const struct syn_plan_site *sites;
	const struct syn_plan_host *hosts;
	const struct syn_plan_route *routes;
	int32_t access_log_fd; /* -1: off */
	uint32_t access_log_json;
	uint32_t nstatics, nmimes, ncerts;
	const struct syn_plan_static *statics;
	const struct syn_plan_cert *certs;
	const struct syn_plan_mime *mimes;
	char cache_dir[SYN_ROOT_MAX]; /* compressed bodies in cache_dir/br; "": none */
};

/* ---- the engine -------------------------------------------------------- */

struct syn_engine;

struct syn_engine_config {
	uint32_t workers;         /* 1 .. SYN_MAX_WORKERS */
	uint32_t max_connections; /* per worker */
};

/* Create workers' state (not yet running).  NULL with err filled on error. */
struct syn_engine *syn_engine_create(const struct syn_engine_config *cfg, char *err, size_t errlen);

/* Validate a plan and swap it in: new requests use it, requests in flight
 * finish under theirs.  The plan is copied; listener fds are duplicated.
 * 0, or -EINVAL with err filled and nothing changed. */
int syn_engine_apply(struct syn_engine *e, const struct syn_plan *plan, char *err, size_t errlen);

int syn_engine_start(struct syn_engine *e);

/* Stop accepting, finish requests in flight for up to grace_ms, close the
 * rest and join the workers. */
int syn_engine_stop(struct syn_engine *e, uint32_t grace_ms);
void syn_engine_destroy(struct syn_engine *e);

/* Free plans no worker uses any more.  Returns how many are still held. */
int syn_engine_gc(struct syn_engine *e);

/* Something changed under a static root (or in the compressed-body
 * cache): workers look at the files they hold again before using them. */
void syn_engine_static_changed(struct syn_engine *e);

/* Active health: the checker marks a server slot up (1) or down (0). */
void syn_engine_server_set_up(struct syn_engine *e, uint32_t slot, int up);

/* A slot gets a server new to its upstream (start, or added by a reload):
 * passive state cleared, up or down as given, slow_start ramp from now. */
void syn_engine_server_added(struct syn_engine *e, uint32_t slot, int up);

struct syn_server_status {
	uint32_t up;      /* by active checks */
	uint32_t ejected; /* by passive checks, now */
	uint32_t active;  /* requests in flight, all workers */
	uint32_t fails;   /* in the current fail_timeout window */
};

int syn_engine_server_status(struct syn_engine *e, uint32_t slot, struct syn_server_status *out);

/* Counters, summed over workers at read time (never locked by workers). */
struct syn_stats {
	uint64_t listener_accepted[SYN_MAX_LISTENERS];
	int64_t listener_active[SYN_MAX_LISTENERS];
	uint64_t listener_rx_bytes[SYN_MAX_LISTENERS];
	uint64_t listener_tx_bytes[SYN_MAX_LISTENERS];
	uint64_t site_requests[SYN_MAX_SITES][6];            /* [0] unused, [1..5] = 1xx..5xx */
	uint64_t site_hist[SYN_MAX_SITES][SYN_HIST_BUCKETS]; /* cumulative in read */
	uint64_t site_hist_count[SYN_MAX_SITES];
	uint64_t site_hist_sum_us[SYN_MAX_SITES];
	uint64_t nosite_requests[6]; /* no site matched the Host */
	uint64_t server_requests[SYN_MAX_SERVERS][6];
	uint64_t server_failures[SYN_MAX_SERVERS][4]; /* connect, timeout, reset, 5xx */
	uint64_t upstream_hist[SYN_MAX_UPSTREAMS][SYN_HIST_BUCKETS];
	uint64_t upstream_hist_count[SYN_MAX_UPSTREAMS];
	uint64_t upstream_hist_sum_us[SYN_MAX_UPSTREAMS];
	uint64_t upstream_retries[SYN_MAX_UPSTREAMS];
	uint64_t upstream_no_server[SYN_MAX_UPSTREAMS];
	uint64_t upstream_conns_opened[SYN_MAX_UPSTREAMS];
	uint64_t static_requests[SYN_MAX_SITES][6];    /* [1..5] = 1xx..5xx */
	uint64_t static_bytes[SYN_MAX_SITES];          /* body bytes sent */
	uint64_t static_br[SYN_MAX_SITES][2];          /* compressed body: [0] hit, [1] miss */
	uint64_t tls_handshakes[SYN_MAX_LISTENERS][2]; /* [0] success, [1] failure */
	uint64_t tls_ktls[SYN_MAX_LISTENERS][2];       /* keys to the kernel: [0] rx, [1] tx */
	/* accept, recv, send, send_zc, splice, connect, recv_no_buffer,
	 * shed_no_buffer, recv_multishot */
	uint64_t io_ops[9];
	uint64_t heap_allocs; /* allocations made by workers after start */
};

/* Upper bounds of the duration histogram buckets, in microseconds. */
void syn_stats_buckets(uint64_t *bounds_us, uint32_t n);
int syn_engine_stats(struct syn_engine *e, struct syn_stats *out);

#endif
