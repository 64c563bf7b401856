/* native/src/engine.h - internal: the engine, its workers, their
 * connections and the runtime plan.  Not part of the ABI.
 *
 * The request logic (proxy.c, route.c, lb_*.c) and the I/O engine that
 * drives it (uring.c) meet through struct syn_io_ops: the logic asks for
 * I/O with the ops, the engine reports completions through proxy_on_*().
 * A second engine (portable, planned) provides the same ops.
 */
#ifndef SYN_ENGINE_H
#define SYN_ENGINE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "syn/http1.h"
#include "syn/lb.h"
#include "syn_abi.h"

#define SYN_BUF_SIZE      16384 /* one receive buffer; also the largest head sent */
#define SYN_BUF_CHUNK     64    /* buffers added to a worker's pool at a time */
#define SYN_BUF_MAX       4096  /* buffers per worker, at most (the ring size) */
#define SYN_NONE          UINT32_MAX
#define SYN_PIPES         1024          /* per worker; past it bodies are copied */
#define SYN_PIPE_SIZE     (1024 * 1024) /* the default pipe-max-size */
#define SYN_TX_SIZE       SYN_BUF_SIZE
#define SYN_BIG_HEAD      65536 /* big buffers: a head up to the 64 KiB ceiling */
#define SYN_BIG_SIZE      (SYN_BIG_HEAD + 1024)
#define SYN_BIG_BID       0x40000000           /* buffer ids from here on are big buffers */
#define SYN_BIG_MAX       256                  /* per worker */
#define SYN_TX_HEAD_MAX   (SYN_TX_SIZE - 1024) /* the tail holds what the access log needs */
#define SYN_SPLICE_MIN    (64 * 1024)          /* bodies from this size on go by splice */
#define SYN_NOTSENT_LOWAT 16384                /* TCP_NOTSENT_LOWAT of every connection */
#define SYN_TLS_CHUNK     16384                /* plaintext per TLS send: one full record */
#define SYN_TLS_EOF       (-1000)              /* syn_tls_read(): the peer's close_notify */

/* ---- runtime plan --------------------------------------------------------- */

struct rt_server {
	struct sockaddr_storage sa;
	socklen_t salen;
	uint32_t slot;
	uint32_t weight;
	uint32_t backup;
};

struct rt_upstream {
	struct syn_plan_upstream cfg;
	struct rt_server *servers;
	struct syn_lb_server *lb_servers;
	struct syn_lb_upstream lb;
	const struct syn_lb_def *def;
	size_t lb_state_off; /* of this upstream's block in a worker's lb state */
};

struct rt_route {
	const char *path;
	uint32_t len;
	uint32_t upstream;
	uint32_t statik; /* index in plan statics, or SYN_NONE for an upstream route */
};

struct rt_static {
	struct syn_plan_static cfg;
	uint32_t index_len;
	int root_fd;             /* O_PATH directory */
	char real[SYN_ROOT_MAX]; /* its real path: where openat2 is missing, what an open */
	size_t real_len;         /* file's /proc/self/fd link must start with */
};

/* A site's route prefixes as a path-compressed radix tree over bytes, laid
 * out flat so a lookup touches few cache lines: nodes in one array, each
 * node's children contiguous and sorted by the first byte of their edge,
 * those first bytes in an array of their own (a child search reads bytes
 * side by side, not 16-byte nodes), edge labels end to end in one arena.  Built at plan compile (route_tree.c), read-only afterwards and
 * shared by every worker. */
struct rt_rnode {
	uint32_t label;     /* offset of the edge label in rt_rtree.labels */
	uint16_t label_len; /* 0 only for the root */
	uint16_t nchild;    /* up to 256: one per distinct next byte */
	uint32_t child;     /* index of the first child */
	uint32_t route;     /* index in the site's routes ending here, or SYN_NONE */
};

struct rt_rtree {
	struct rt_rnode *nodes; /* [0] is the root: the empty prefix */
	uint8_t *first;         /* first[i]: the first byte of node i's label */
	char *labels;
	uint32_t nnodes;
};

struct rt_site {
	struct syn_plan_site cfg;
	struct rt_route *routes; /* longest prefix first */
	uint32_t nroutes;
	struct rt_rtree tree; /* over routes[]; what syn_route_path() walks */
};

struct rt_host {
	char *name; /* lowercase; "*.x" stored as ".x" */
	uint32_t len;
	uint32_t site;
	uint32_t wildcard;
};

struct rt_listener {
	struct syn_plan_listener cfg; /* cfg.fd is our dup */
	uint64_t ino;                 /* the socket's identity across dups and reloads */
};

struct rt_plan {
	uint64_t generation;
	struct syn_plan_limits limits;
	uint32_t nlisteners, nupstreams, nsites, nhosts;
	struct rt_listener *listeners;
	struct rt_upstream *upstreams;
	struct rt_site *sites;
	struct rt_host *hosts; /* exact names sorted, then wildcards longest first */
	uint32_t nexact;
	int32_t default_site[64]; /* the "*" site per listener bit, or -1 */
	size_t lb_state_size;
	int access_log_fd;
	uint32_t access_log_json;
	struct rt_static *statics;
	uint32_t nstatics, nmimes;
	struct syn_plan_mime *mimes;           /* sorted by ext */
	int cache_fd;                          /* O_PATH cache_dir, or -1 */
	struct rt_tls *tls[SYN_MAX_LISTENERS]; /* by listener slot; NULL: clear text */
	/* per worker: requests in flight under this plan, and its balancer state */
	_Atomic uint32_t refs[SYN_MAX_WORKERS];
	_Atomic uint32_t left[SYN_MAX_WORKERS]; /* the worker has moved to a newer plan */
	void *lb_state[SYN_MAX_WORKERS];
	struct rt_plan *next_retired;
};

/* ---- connections ---------------------------------------------------------- */

enum conn_kind { CONN_FREE = 0, CONN_CLIENT, CONN_UPSTREAM };

enum conn_state {
	CS_IDLE = 0,   /* client: waiting for a request; upstream: pooled */
	CS_HEAD,       /* client: reading a request head */
	CS_WAIT_UP,    /* client: request handed to an upstream */
	CS_REQ_BODY,   /* client: relaying the request body */
	CS_RESPONDING, /* client: a response is going out */
	CS_CONNECTING, /* upstream */
	CS_SENDING,    /* upstream: request head/body going out */
	CS_RESP_HEAD,  /* upstream: reading the response head */
	CS_RESP_BODY,  /* upstream: relaying the response body */
	CS_TUNNEL,     /* both: bytes relayed as they are, after a 101 */
	CS_CLOSING,
};

enum body_mode { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE, BODY_TUNNEL };

enum timer_list {
	TL_NONE = 0,
	TL_CLIENT_HEAD,
	TL_CLIENT_BODY,
	TL_KEEPALIVE,
	TL_UPSTREAM,
	TL__COUNT
};

struct syn_conn {
	int fd;
	uint32_t gen;
	uint8_t kind;
	uint8_t state;
	uint8_t pending; /* operations in flight on this slot */
	uint8_t closing;
	uint32_t next; /* free list, or pool list */
	uint32_t peer; /* paired connection, or SYN_NONE */

	/* receive: a held buffer and its data window */
	int32_t rx_bid;
	char *rx_ptr;    /* the held buffer */
	uint32_t rx_cap; /* its size */
	uint32_t rx_start, rx_end;
	uint8_t recving;
	uint8_t sending;
	uint8_t eof;
	uint8_t nobufs; /* receives refused for want of a buffer, in a row */
	/* multishot receive (the engine's use): armed once, it fills pool
	 * buffers as data comes; what comes while the logic does not want it
	 * waits in a stash (a chain of pool buffers) and is handed over first */
	uint8_t ms;       /* 0 none, 1 armed, 2 being cancelled */
	uint8_t ms_stop;  /* single-shot receives only: set by rx_quiet (a splice
	                  * is coming), cleared by the logic at the next head */
	uint8_t ms_ended; /* the stash ends with ms_end_res (0 end of input, or -errno) */
	uint8_t ms_n;     /* buffers in the stash */
	int32_t ms_head, ms_tail;
	uint32_t ms_off; /* bytes of the first stashed buffer already handed over */
	int32_t ms_end_res;

	/* send: what is going out now */
	char *tx;        /* owned slab (head, error), or NULL */
	uint32_t tx_cap; /* room for a head in it; the access log's strings follow */
	uint8_t tx_big;  /* tx is a big buffer */
	const char *out;
	uint32_t out_len;
	uint8_t out_release_rx; /* after the send, drop out_len bytes from the peer's rx */

	/* timer */
	uint8_t tlist;
	uint64_t deadline;
	uint32_t tprev, tnext;

	/* the request (client) or the exchange (upstream) */
	struct rt_plan *plan;
	uint64_t start_us;
	uint8_t method;
	uint8_t version;
	uint8_t keepalive;
	uint8_t body_mode;
	uint8_t resp_started; /* a response byte went to the client: never retry */
	uint8_t req_sent;     /* request bytes went to an upstream */
	uint8_t reused;       /* upstream: taken from the pool */
	uint8_t head_req;     /* the request was HEAD */
	uint8_t upgrade_req;  /* client: asked to upgrade (Upgrade + Connection: upgrade) */
	uint16_t status;
	uint32_t site;     /* index in plan, or SYN_NONE */
	uint32_t upstream; /* index in plan, or SYN_NONE */
	int32_t server;    /* index in the upstream, or -1 */
	uint32_t tries;
	uint64_t remaining; /* body bytes left (BODY_LENGTH) */
	struct syn_h1_chunked ck;
	uint64_t tried[SYN_LB_WORDS];
	uint32_t listener_slot;
	struct sockaddr_storage peer_addr;
	uint32_t head_len;  /* client: length of the rewritten head in tx */
	uint32_t body_held; /* client: the whole body came with the head: its length, kept
	                         * in rx until the response starts so a retry can resend it */
	uint8_t body_held_sent;
	uint8_t body_in_tx;    /* client: the whole body follows the head in tx */
	uint8_t fresh_only;    /* client: the next attempt must not reuse a pooled connection */
	uint8_t stale_retried; /* client: the one retry for a stale pooled connection is spent */
	uint32_t listener_bit;
	uint32_t srv_slot;  /* upstream: server slot (pool key) */
	const char *queued; /* client: a send waiting for the one in flight */
	uint32_t queued_len;
	uint64_t up_start_us; /* upstream exchange start, for latency */

	/* splice relay: on the source connection of a body */
	int32_t pipe;                  /* index in w->pipes, or -1 */
	uint32_t pipe_bytes;           /* in the pipe, not yet sent */
	uint32_t plan_read_timeout_ms; /* upstream: read_timeout of its upstream */
	/* the splices in progress on this slot, as source [0] and as
	 * destination [1] (a tunnel is both at once); the engine's use */
	struct {
		int32_t in, out, res;
		uint32_t len;
		uint64_t *off; /* of in (a file), advanced by the splice; NULL for a socket */
	} spl[2];
	uint8_t nonblock;         /* O_NONBLOCK set on fd while splicing */
	uint64_t bytes_out;       /* client: response bytes sent for this request */
	uint32_t resp_head_bytes; /* client: of which the response head */
	uint64_t body_seen;       /* chunked data bytes so far */
	uint64_t body_limit;      /* client: [limits] body_bytes; 0 for none */
	uint8_t decode;           /* upstream: chunked body decoded for an HTTP/1.0 client */
	uint8_t orphan;           /* upstream: its client left; read to the end, then pool */
	uint32_t pool_max;        /* upstream: its upstream's keepalive */
	uint32_t idle_ms;         /* upstream: how long it may idle in the pool */
	uint8_t alog_captured;    /* client: the access log's strings are in tx */
	uint8_t statik;           /* client: the request is on a static route */
	int file_fd;              /* client: the file being spliced out, or -1 */
	uint64_t file_off;        /* its offset and the bytes still to send */
	uint64_t file_left;
	uint8_t zc;     /* zero-copy sends: 0 not asked yet, 1 no, 2 yes (the engine's use) */
	int32_t zc_res; /* the result of a zero-copy send awaiting its notification */
	int32_t zc_bid; /* the pool buffer that send reads from, or -1 */

	/* TLS (client side): the engine encrypts and decrypts (tls.c, uring.c) */
	struct syn_tls_conn *tls;  /* TLS in user space; NULL for clear text or kernel TLS */
	struct syn_tls_conn *ktls; /* TLS in the kernel: the socket is plaintext to us */
	const char *tls_out;       /* ciphertext going out */
	uint32_t tls_out_len;
	uint32_t tls_plain;    /* plaintext the logic's send in flight stands for */
	uint8_t tls_busy;      /* a send of ciphertext is in flight */
	uint8_t tls_report;    /* ...and it is the logic's: report it at the end */
	uint8_t tls_want_send; /* the logic asked to send while ours was in flight */
	uint8_t ktls_wait;     /* the keys go to the kernel once our send is out */
};

/* ---- I/O seam --------------------------------------------------------------- */

struct syn_worker;

struct syn_io_ops {
	/* Receive into the held buffer, or into a pool buffer picked on arrival
	 * when none is held.  Completion: proxy_on_recv(). */
	void (*recv)(struct syn_worker *w, struct syn_conn *c);
	/* Send c->out / c->out_len.  Completion: proxy_on_send(). */
	void (*send)(struct syn_worker *w, struct syn_conn *c);
	/* Completion: proxy_on_connect(). */
	void (*connect)(struct syn_worker *w, struct syn_conn *c, const struct sockaddr *sa,
			socklen_t len);
	/* Stop what is in flight on c (completions still arrive); called on
	 * every close, so the engine drops what it keeps for c. */
	void (*cancel)(struct syn_worker *w, struct syn_conn *c);
	/* Before a splice from c's socket: 1 when no receive of the engine's
	 * own can take its bytes and none it took waits for the logic.  Else
	 * 0: the engine stops such receives, receives single-shot from now
	 * on (until the logic clears c->ms_stop), and the logic is to receive
	 * (what was taken comes first) and ask again.  NULL: always quiet. */
	int (*rx_quiet)(struct syn_worker *w, struct syn_conn *c);
	/* Buffers of the receive pool. */
	char *(*buf)(struct syn_worker *w, int32_t bid);
	void (*buf_release)(struct syn_worker *w, int32_t bid);
	/* Move up to len bytes from fd_in to fd_out in the kernel, once
	 * wait_fd is ready for wait_events (POLLIN / POLLOUT) if not at once;
	 * both sockets must be O_NONBLOCK.  NULL when the engine cannot.
	 * Completion: proxy_on_splice(). */
	/* Append len bytes at buf to fd (the access log).  Completion:
	 * syn_alog_written(). */
	void (*write)(struct syn_worker *w, int fd, const char *buf, uint32_t len);
	void (*splice)(struct syn_worker *w, struct syn_conn *c, int fd_in, uint64_t *off_in,
		       int fd_out, uint32_t len, int wait_fd, short wait_events, int role);
};

/* ---- workers and the engine ---------------------------------------------- */

struct syn_pool { /* idle upstream connections of one server, this worker */
	uint32_t head;
	uint32_t count;
};

struct syn_accept { /* a listener this worker accepts on */
	int fd;
	uint64_t ino; /* the socket (fds differ between plans: each plan dups) */
	uint32_t slot;
	uint32_t bit;
	uint8_t armed;   /* 1 armed, 2 being cancelled */
	uint8_t wanted;  /* the current plan has this listener */
	uint8_t fd_live; /* fd still belongs to a plan we use */
};

struct syn_worker {
	struct syn_engine *e;
	uint32_t id;
	pthread_t thread;
	const struct syn_io_ops *io;
	void *io_state;
	struct rt_plan *plan;
	uint64_t now_ms;
	uint64_t now_us;
	struct syn_stats *stats;
	_Atomic int init_rc; /* 1 while starting, then 0 or -errno of its ring's setup */

	struct syn_conn *conns;
	uint32_t nconns;
	uint32_t free_head;
	uint32_t conn_hwm; /* slots past it were never used: untouched memory */
	uint32_t nclients;
	uint32_t max_clients;

	uint32_t thead[TL__COUNT], ttail[TL__COUNT];

	char **tx_free; /* free tx slabs (a stack) */
	uint32_t tx_nfree, tx_cap, tx_total;

	struct syn_pool pools[SYN_MAX_SERVERS];
	struct syn_accept accepts[256];
	uint32_t naccepts;
	uint8_t stopping;
	uint8_t accept_paused;

	/* pipes for splice, reused; a pipe goes back only when empty */
	int pipes[SYN_PIPES][2];
	uint32_t npipes;
	uint32_t pipe_free[SYN_PIPES];
	uint32_t npipe_free;

	/* big buffers, for heads over SYN_BUF_SIZE: made on demand, reused */
	char *big[SYN_BIG_MAX];
	uint32_t nbig;
	uint32_t big_free[SYN_BIG_MAX];
	uint32_t nbig_free;

	/* access log: two buffers, one write in flight */
	char *alog_buf[2];
	uint32_t alog_len[2];
	uint8_t alog_cur;
	uint8_t alog_busy;
	uint8_t alog_time_iso;
	uint64_t alog_dropped;
	int64_t alog_time_s;
	char alog_time[40];

	/* static files: the open files table, and the Date field of this second */
	struct syn_files *files;
	int64_t date_s;
	char date[32];
};

struct syn_engine {
	struct syn_engine_config cfg;
	struct syn_worker workers[SYN_MAX_WORKERS];
	struct syn_server_shared servers[SYN_MAX_SERVERS];
	struct syn_passive {
		uint32_t fails;
		uint64_t window_start_ms;
		uint64_t ejected_until_ms;
	} passive[SYN_MAX_SERVERS];
	_Atomic(struct rt_plan *) plan;
	struct rt_plan *retired;
	pthread_mutex_t lock;        /* control plane calls only: apply, gc, stop */
	_Atomic uint64_t static_gen; /* bumped when files under a static root change */
	_Atomic int stop;
	_Atomic uint64_t stop_deadline_ms;
	int notsent_lowat; /* 0: the kernel's default (SYN_NOTSENT_LOWAT=off) */
	int started;
};

/* plan.c */
struct rt_plan *syn_plan_compile(const struct syn_plan *p, char *err, size_t errlen);
void syn_plan_free(struct rt_plan *rp);

/* route.c: the site for a Host value (or -1), and the route for a path */
int syn_route_site(const struct rt_plan *rp, const char *host, size_t len, uint32_t listener_bit);
const struct rt_route *syn_route_path(const struct rt_site *s, const char *path, size_t len);

/* route_tree.c: the site's radix tree over its routes, at plan compile */
int syn_route_tree_build(struct rt_site *s);
void syn_route_tree_free(struct rt_site *s);

/* static.c: the static file handler (docs/static-files.md) */
struct syn_files;
struct syn_static_answer {
	uint32_t len;        /* bytes of the caller's buffer to send */
	uint32_t head_bytes; /* of which the head */
	int fd;              /* then this file (the caller's to close), or -1 */
	uint64_t off, left;
};
struct syn_files *syn_static_init(void);
void syn_static_fini(struct syn_files *f);
int syn_static_answer(struct syn_worker *w, struct syn_conn *c, const struct rt_route *route,
		      const char *buf, const struct syn_h1_request *req, char *out, uint32_t cap,
		      struct syn_static_answer *a);
void syn_static_done(struct syn_worker *w, const struct syn_conn *c);
void syn_static_sweep(struct syn_worker *w, const struct rt_plan *rp);
int syn_static_normalize(const char *p, size_t n, char *out, size_t cap, size_t *outlen);
int syn_static_range(const char *p, size_t n, uint64_t size, uint64_t *off, uint64_t *len);
void syn_http_date(int64_t t, char *out);
int64_t syn_http_date_parse(const char *p, size_t n);
const char *syn_reason_phrase(int status);
void syn_static_no_openat2(void);

/* tls.c: TLS termination (contexts per plan, an SSL object per connection) */
struct rt_tls;
struct syn_tls_conn;
int syn_tls_compile(struct rt_plan *rp, const struct syn_plan *p, char *err, size_t errlen);
void syn_tls_free_plan(struct rt_plan *rp);
int syn_tls_accept(struct syn_worker *w, struct syn_conn *c, const struct rt_tls *t);
void syn_tls_free(struct syn_conn *c);
int syn_tls_feed(struct syn_conn *c, const char *buf, uint32_t n);
int syn_tls_handshake(struct syn_worker *w, struct syn_conn *c);
int syn_tls_read(struct syn_conn *c, char *dst, uint32_t room);
int syn_tls_has_input(const struct syn_conn *c);
int syn_tls_write(struct syn_conn *c, const char *p, uint32_t n);
uint32_t syn_tls_take(struct syn_conn *c, const char **out);
int syn_tls_has_output(const struct syn_conn *c);
void syn_tls_close_notify(struct syn_conn *c);
int syn_tls_ktls_ready(const struct syn_conn *c);
uint32_t syn_tls_ktls_mask(void);
void syn_tls_ktls_assume(uint32_t mask);                             /* tests */
const struct syn_ktls_keys *syn_tls_kernel_keys(struct syn_conn *c); /* tests */
int syn_tls_to_kernel(struct syn_worker *w, struct syn_conn *c);
int syn_tls_ktls_control(struct syn_worker *w, struct syn_conn *c);

/* ktls.c: kernel TLS, the socket side */
enum { SYN_KTLS_AES128, SYN_KTLS_AES256, SYN_KTLS_CHACHA, SYN_KTLS_NCIPHERS };
enum { SYN_KTLS_RX = 0, SYN_KTLS_TX = 1 };
#define SYN_KTLS_BIT(version, cipher) (((version) == 0x0304) * SYN_KTLS_NCIPHERS + (cipher))

struct syn_ktls_keys {      /* one connection's record protection, both ways */
	uint16_t version;   /* 0x0303 or 0x0304 */
	uint8_t cipher;     /* SYN_KTLS_* */
	uint8_t keylen;     /* 16 or 32 */
	uint8_t key[2][32]; /* [SYN_KTLS_RX]: the client's, [SYN_KTLS_TX]: ours */
	uint8_t iv[2][12];  /* TLS 1.2 AES-GCM: the 4-byte salt; else the 12-byte IV */
	uint64_t seq[2];    /* the next record's sequence number */
};

uint32_t syn_ktls_probe(void);
int syn_ktls_set(int fd, const struct syn_ktls_keys *k, int d);
int syn_ktls_install(int fd, const struct syn_ktls_keys *k);
int syn_ktls_recv_control(int fd, uint8_t *type, uint8_t *buf, size_t cap);
int syn_ktls_send_record(int fd, uint8_t type, const void *p, size_t n);

/* proxy.c: completions from the I/O engine */
void proxy_on_accept(struct syn_worker *w, struct syn_accept *a, int fd);
void proxy_on_recv(struct syn_worker *w, struct syn_conn *c, int res, int32_t bid);
void proxy_on_send(struct syn_worker *w, struct syn_conn *c, int res);
void proxy_on_connect(struct syn_worker *w, struct syn_conn *c, int res);
void proxy_on_closed(struct syn_worker *w, struct syn_conn *c);
void proxy_on_splice(struct syn_worker *w, struct syn_conn *c, int res, int role);

void syn_format_ip(const struct sockaddr_storage *ss, char *out, size_t len);

/* accesslog.c */
void syn_alog_capture(struct syn_conn *c, const char *buf, const struct syn_h1_request *req);
void syn_alog_request(struct syn_worker *w, struct syn_conn *c);
void syn_alog_flush(struct syn_worker *w);
int syn_alog_init(struct syn_worker *w);
void syn_alog_fini(struct syn_worker *w);
void proxy_timers(struct syn_worker *w);
void proxy_adopt_plan(struct syn_worker *w, struct rt_plan *rp);
int proxy_worker_init(struct syn_worker *w);
void proxy_worker_fini(struct syn_worker *w);
int proxy_idle(struct syn_worker *w); /* no request in flight */
void proxy_close_idle(struct syn_worker *w);

/* uring.c */
extern const struct syn_io_ops syn_uring_ops;
int uring_worker_init(struct syn_worker *w);
int uring_recv_multishot_probe(void);
void uring_worker_fini(struct syn_worker *w);
void uring_run(struct syn_worker *w);
void uring_sync_accepts(struct syn_worker *w);

/* stats.c */
void syn_stats_observe(uint64_t *hist, uint64_t *count, uint64_t *sum, uint64_t us);

static inline struct syn_conn *conn_at(struct syn_worker *w, uint32_t i)
{
	return &w->conns[i];
}

static inline uint32_t conn_index(struct syn_worker *w, const struct syn_conn *c)
{
	return (uint32_t)(c - w->conns);
}

#endif
