/* native/src/uring.c - the io_uring I/O engine.
 *
 * One ring per worker, created on the worker's own thread so that it can
 * be SINGLE_ISSUER | DEFER_TASKRUN (completions are processed only when
 * the worker asks, with no inter-processor interrupts).  Receives pick a
 * buffer from a provided-buffer ring when data arrives, so an idle
 * connection holds no memory.  A client connection's receive is multishot
 * where the kernel has it (6.0): armed once, it stays armed across
 * requests, so a kept-alive client costs no receive submission per request.
 * Each feature is
 * probed, with a fallback: no buffer ring -> a buffer is taken before the
 * receive is posted; no multishot accept -> one accept re-armed per
 * completion; no multishot receive -> one receive posted per want.
 *
 * user_data = op << 56 | generation << 32 | slot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

enum uring_op {
	OP_NONE = 0,
	OP_ACCEPT,
	OP_RECV,
	OP_SEND,
	OP_CONNECT,
	OP_CANCEL,
	OP_WAKE,
	OP_POLL,
	OP_LOG,
	OP_SPLICE_WAIT, /* the socket of c's splice is ready: splice now (+ role - 1) */
	OP_SPLICE_WAIT2,
	OP_SPLICE_DONE, /* c's splice was done at once: report it (+ role - 1) */
	OP_SPLICE_DONE2,
	OP_SEND_ZC,
	OP_TLS_READ,   /* plaintext may be had without the socket: read it now */
	OP_TLS_SEND,   /* ciphertext went out */
	OP_TLS_FAILED, /* a send the logic asked for could not be encrypted */
	OP_RECV_MS,    /* a multishot receive: data, or its end */
	OP_MS_DELIVER, /* stashed data (or the end) for the logic: hand it over now */
};

#define UR_BGID       7
#define UR_SQ_ENTRIES 1024
#define UR_CQ_ENTRIES 16384
#define UR_TICK_NS    50000000LL /* timers are checked at least this often */
#define UR_ZC_MIN     16384      /* sends from this size on may go zero-copy */
#define UR_MS_STASH \
	4 /* buffers stashed for a connection before its
				  * multishot receive is stopped (back-pressure) */

/* SYN_SEND_ZC: "off" (the default); "auto" (large sends to a peer that is
 * not on this machine, since over loopback the kernel copies anyway, after
 * the extra work of pinning the pages); "always" (large sends to any peer:
 * tests).  Off by default because the logic hears of a zero-copy send only
 * at the kernel's notification, which for TCP comes with the peer's ACK:
 * a copied body then moves one buffer per round trip. */
enum ur_zc_mode { UR_ZC_OFF = 0, UR_ZC_AUTO, UR_ZC_ALWAYS };

struct uring_state {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	char *bufs[SYN_BUF_MAX];
	uint32_t nbufs;      /* buffers created */
	uint32_t avail;      /* in the ring (or on the free stack without a ring) */
	int32_t *free_stack; /* without a buffer ring */
	char *chunks[SYN_BUF_MAX / SYN_BUF_CHUNK];
	uint32_t nchunks;
	uint8_t has_buf_ring;
	uint8_t has_multishot_accept;
	uint8_t has_recv_ms; /* multishot receive (and IORING_RECVSEND_POLL_FIRST) */
	uint8_t zc_mode;     /* enum ur_zc_mode, UR_ZC_OFF when the kernel lacks SEND_ZC */
	/* a pool buffer a zero-copy send reads from is not given back to the
	 * ring (where the kernel could fill it with another connection's
	 * bytes) before the send's notification: pins, and releases held back */
	uint16_t zc_pins[SYN_BUF_MAX];
	uint8_t zc_held[SYN_BUF_MAX];
	uint32_t nobufs; /* receives refused for want of a buffer since the last growth */
	/* the stashes of multishot receives: per pool buffer, the next one in
	 * its connection's chain and the bytes in it */
	int32_t ms_next[SYN_BUF_MAX];
	uint32_t ms_len[SYN_BUF_MAX];
};

static inline uint64_t ur_data(enum uring_op op, uint32_t gen, uint32_t idx)
{
	return (uint64_t)op << 56 | (uint64_t)(gen & 0xffffff) << 32 | idx;
}

static inline struct uring_state *ur(struct syn_worker *w)
{
	return w->io_state;
}

static struct io_uring_sqe *ur_sqe(struct syn_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ur(w)->ring);

	if (!sqe) {
		/* the SQ is full: flush it and try once more */
		io_uring_submit(&ur(w)->ring);
		sqe = io_uring_get_sqe(&ur(w)->ring);
	}
	return sqe;
}

/* Add SYN_BUF_CHUNK buffers to the pool: at start and when it runs low,
 * never per request once warm.  0, or -ENOMEM at the cap. */
static int ur_grow(struct syn_worker *w)
{
	struct uring_state *s = ur(w);
	uint32_t i, mask = (uint32_t)io_uring_buf_ring_mask(SYN_BUF_MAX);
	char *chunk;

	if (s->nbufs + SYN_BUF_CHUNK > SYN_BUF_MAX)
		return -ENOMEM;
	chunk = aligned_alloc(4096, (size_t)SYN_BUF_CHUNK * SYN_BUF_SIZE);
	if (!chunk)
		return -ENOMEM;
	w->stats->heap_allocs++;
	s->chunks[s->nchunks++] = chunk;
	for (i = 0; i < SYN_BUF_CHUNK; i++) {
		uint32_t bid = s->nbufs++;

		s->bufs[bid] = chunk + (size_t)i * SYN_BUF_SIZE;
		if (s->has_buf_ring)
			io_uring_buf_ring_add(s->br, s->bufs[bid], SYN_BUF_SIZE,
					      (unsigned short)bid, (int)mask, (int)i);
		else
			s->free_stack[s->avail + i] = (int32_t)bid;
	}
	if (s->has_buf_ring)
		io_uring_buf_ring_advance(s->br, SYN_BUF_CHUNK);
	s->avail += SYN_BUF_CHUNK;
	return 0;
}

static char *ur_buf(struct syn_worker *w, int32_t bid)
{
	return ur(w)->bufs[bid];
}

static void ur_buf_release(struct syn_worker *w, int32_t bid)
{
	struct uring_state *s = ur(w);

	if (s->zc_pins[bid]) { /* a zero-copy send still reads it */
		s->zc_held[bid] = 1;
		return;
	}
	if (s->has_buf_ring) {
		io_uring_buf_ring_add(s->br, s->bufs[bid], SYN_BUF_SIZE, (unsigned short)bid,
				      io_uring_buf_ring_mask(SYN_BUF_MAX), 0);
		io_uring_buf_ring_advance(s->br, 1);
	} else {
		s->free_stack[s->avail] = bid;
	}
	s->avail++;
}

/* ---- TLS: ciphertext on the socket, plaintext for the logic ---------------------
 *
 * On a TLS connection the logic's receives and sends are the same calls;
 * the engine receives ciphertext into a pool buffer, feeds it to the
 * connection's SSL object (tls.c) and hands the plaintext on, decrypted
 * into the logic's held buffer or into the pool buffer itself; a send is
 * encrypted (a record of at most SYN_TLS_CHUNK bytes at a time) and reported
 * with the plaintext length once all its ciphertext is out.  Handshake
 * messages and session tickets go out as sends of the engine's own, one
 * send at a time on the socket.  Once the handshake is over the keys may go
 * to the kernel (tls.c, ktls.c): the connection is plaintext from then on. */

static void ur_recv_plain(struct syn_worker *w, struct syn_conn *c);
static void ur_send(struct syn_worker *w, struct syn_conn *c);

/* Kernel TLS: once syn_tls_ktls_ready() and no send of ours is in flight,
 * the keys go to the kernel and the connection goes on as clear text: the
 * receive the logic waits for is posted plain.  1 switched (the receive is
 * posted when wanted), 0 stays in user space, -1 failed (reported). */
static int ur_ktls_switch(struct syn_worker *w, struct syn_conn *c)
{
	int r = syn_tls_to_kernel(w, c);

	if (r < 0) {
		c->recving = 0;
		proxy_on_recv(w, c, -EPROTO, -1);
		return -1;
	}
	if (r && c->recving)
		ur_recv_plain(w, c);
	return r;
}

/* Before a TLS receive: switch to the kernel instead, now or after our
 * send in flight?  1 when the caller has nothing more to do. */
static int ur_ktls_instead(struct syn_worker *w, struct syn_conn *c)
{
	if (!syn_tls_ktls_ready(c))
		return 0;
	if (c->tls_busy) {
		c->ktls_wait = 1;
		return 1;
	}
	return ur_ktls_switch(w, c) != 0;
}

static void ur_tls_post_recv(struct syn_worker *w, struct syn_conn *c)
{
	struct io_uring_sqe *sqe;

	if (ur(w)->avail < SYN_BUF_CHUNK / 4)
		ur_grow(w);
	sqe = ur_sqe(w);
	io_uring_prep_recv(sqe, c->fd, NULL, SYN_BUF_SIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UR_BGID;
	io_uring_sqe_set_data64(sqe, ur_data(OP_RECV, c->gen, conn_index(w, c)));
	c->pending++;
	w->stats->io_ops[1]++;
}

static void ur_tls_nop(struct syn_worker *w, struct syn_conn *c, enum uring_op op)
{
	struct io_uring_sqe *sqe = ur_sqe(w);

	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, ur_data(op, c->gen, conn_index(w, c)));
	c->pending++;
}

static void ur_tls_recv(struct syn_worker *w, struct syn_conn *c)
{
	c->recving = 1;
	if (ur_ktls_instead(w, c))
		return;
	if (syn_tls_has_input(c))
		ur_tls_nop(w, c, OP_TLS_READ); /* reported from the completion loop */
	else
		ur_tls_post_recv(w, c);
}

/* Send what the SSL object wrote; report: it stands for the logic's send. */
static void ur_tls_flush(struct syn_worker *w, struct syn_conn *c, int report)
{
	struct io_uring_sqe *sqe;

	c->tls_out_len = syn_tls_take(c, &c->tls_out);
	c->tls_report = (uint8_t)report;
	c->tls_busy = 1;
	sqe = ur_sqe(w);
	io_uring_prep_send(sqe, c->fd, c->tls_out, c->tls_out_len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ur_data(OP_TLS_SEND, c->gen, conn_index(w, c)));
	c->pending++;
	w->stats->io_ops[2]++;
}

static void ur_tls_send(struct syn_worker *w, struct syn_conn *c)
{
	int n;

	c->sending = 1;
	if (c->tls_busy) { /* ours first: the socket takes one send at a time */
		c->tls_want_send = 1;
		return;
	}
	n = syn_tls_write(c, c->out, c->out_len);
	if (n < 0 || !syn_tls_has_output(c)) {
		c->zc_res = -EPIPE;
		ur_tls_nop(w, c, OP_TLS_FAILED);
		return;
	}
	c->tls_plain = (uint32_t)n;
	ur_tls_flush(w, c, 1);
}

/* Ciphertext came (or was there): on with the handshake, then plaintext
 * for the logic, into its held buffer, else into bid (a pool buffer whose
 * ciphertext the SSL object has copied), else wait for more. */
static void ur_tls_advance(struct syn_worker *w, struct syn_conn *c, int32_t bid)
{
	int r = syn_tls_handshake(w, c), n;
	uint32_t room;
	char *dst;

	if (!c->tls_busy && syn_tls_has_output(c))
		ur_tls_flush(w, c, 0);
	if (r <= 0) {
		if (bid >= 0)
			ur_buf_release(w, bid);
		if (r == 0) {
			ur_tls_post_recv(w, c);
			return;
		}
		c->recving = 0;
		proxy_on_recv(w, c, -ECONNRESET, -1);
		return;
	}
	if (syn_tls_ktls_ready(c)) { /* all read: nothing for the logic here */
		if (bid >= 0)
			ur_buf_release(w, bid);
		if (!ur_ktls_instead(w, c))
			ur_tls_post_recv(w, c);
		return;
	}
	if (c->rx_bid >= 0) {
		if (bid >= 0)
			ur_buf_release(w, bid);
		bid = -1;
		dst = c->rx_ptr + c->rx_end;
		room = c->rx_cap - c->rx_end;
	} else if (bid >= 0) {
		dst = ur_buf(w, bid);
		room = SYN_BUF_SIZE;
	} else { /* nowhere to put it: what is pending is not a whole record yet */
		ur_tls_post_recv(w, c);
		return;
	}
	n = room ? syn_tls_read(c, dst, room) : 0;
	if (!c->tls_busy && syn_tls_has_output(c))
		ur_tls_flush(w, c, 0); /* a key update, or tickets */
	if (n > 0) {
		c->recving = 0;
		proxy_on_recv(w, c, n, bid);
		return;
	}
	if (bid >= 0)
		ur_buf_release(w, bid);
	if (n == 0) {
		if (!ur_ktls_instead(w, c))
			ur_tls_post_recv(w, c);
		return;
	}
	c->recving = 0;
	proxy_on_recv(w, c, n == SYN_TLS_EOF ? 0 : -ECONNRESET, -1);
}

static void ur_tls_on_recv(struct syn_worker *w, struct syn_conn *c, int res, int32_t bid)
{
	if (c->closing) {
		if (bid >= 0)
			ur_buf_release(w, bid);
		return;
	}
	if (res <= 0) {
		if (bid >= 0)
			ur_buf_release(w, bid);
		c->recving = 0;
		proxy_on_recv(w, c, res, -1);
		return;
	}
	if (syn_tls_feed(c, ur_buf(w, bid), (uint32_t)res)) {
		ur_buf_release(w, bid);
		c->recving = 0;
		proxy_on_recv(w, c, -ENOMEM, -1);
		return;
	}
	ur_tls_advance(w, c, bid);
}

static void ur_tls_on_send(struct syn_worker *w, struct syn_conn *c, int res)
{
	if (c->closing)
		return;
	if (res >= 0 && (uint32_t)res < c->tls_out_len) { /* the rest of it */
		struct io_uring_sqe *sqe = ur_sqe(w);

		c->tls_out += res;
		c->tls_out_len -= (uint32_t)res;
		io_uring_prep_send(sqe, c->fd, c->tls_out, c->tls_out_len, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, ur_data(OP_TLS_SEND, c->gen, conn_index(w, c)));
		c->pending++;
		return;
	}
	if (res >= 0 && syn_tls_has_output(c)) { /* more than one buffer of it */
		ur_tls_flush(w, c, c->tls_report);
		return;
	}
	c->tls_busy = 0;
	if (c->ktls_wait) { /* the receive the logic waits for was held for this */
		int r = -1;

		c->ktls_wait = 0;
		if (res < 0 && c->recving && !c->tls_report && !c->tls_want_send) {
			c->recving = 0;
			proxy_on_recv(w, c, res, -1);
			return;
		}
		if (res >= 0 && syn_tls_ktls_ready(c) && (r = ur_ktls_switch(w, c)) < 0)
			return;
		if (r <= 0 && c->recving)
			ur_tls_post_recv(w, c); /* stays in user space */
	}
	if (c->tls_report || c->tls_want_send) {
		int report = c->tls_report;

		c->tls_report = 0;
		if (res < 0 || report) {
			c->tls_want_send = 0;
			c->sending = 0;
			proxy_on_send(w, c, res < 0 ? res : (int)c->tls_plain);
			return;
		}
		c->tls_want_send = 0;
		ur_send(w, c); /* the logic's, held while ours went out */
	}
}

static void ur_recv(struct syn_worker *w, struct syn_conn *c)
{
	if (c->tls) {
		ur_tls_recv(w, c);
		return;
	}
	ur_recv_plain(w, c);
}

/* ---- multishot receive ----------------------------------------------------------
 *
 * To the logic a receive is still one want, one report (proxy_on_recv).  A
 * multishot receive armed for one want stays armed after it: the next want
 * finds it there, and the data that answers it needs no submission.  What
 * comes while the logic wants nothing is stashed, in order, and handed over
 * at its next want (from the completion loop, by a nop); after UR_MS_STASH
 * buffers the receive is cancelled, so that a peer the logic does not read
 * from holds a few buffers, not the pool.  The end of input or an error is
 * stashed too, after the data.  Into a held buffer (a head in parts) the
 * data is copied, as much as it has room for, as a single-shot receive
 * would have written it.  Before a splice from the socket the logic asks
 * rx_quiet(): the receive is cancelled and what it took handed over first,
 * and the connection receives single-shot until the logic clears
 * c->ms_stop at the next head; so do connections in non-blocking mode
 * (splicing), on TLS (the engine's own receives) and on kernel TLS (a
 * record that is not data needs its own recvmsg).
 *
 * Only client connections: a multishot receive takes whatever the socket
 * holds, as fast as it comes, before the logic has seen the head that says
 * a large body follows and is to be spliced.  Requests are mostly heads,
 * and a client mostly waits for its answer; responses are where the large
 * bodies are.  With upstream connections multishot too, make bench-proxy's
 * 1 MiB responses took 462 CPU us each instead of 213, and the stashes
 * (whole responses) ran the pool to its cap: connections were shed. */

static void ur_ms_push(struct uring_state *s, struct syn_conn *c, int32_t bid, uint32_t len)
{
	s->ms_len[bid] = len;
	s->ms_next[bid] = -1;
	if (c->ms_n++)
		s->ms_next[c->ms_tail] = bid;
	else
		c->ms_head = bid;
	c->ms_tail = bid;
}

static void ur_ms_pop(struct uring_state *s, struct syn_conn *c)
{
	c->ms_head = s->ms_next[c->ms_head];
	c->ms_n--;
	c->ms_off = 0;
}

/* Drop what is stashed for c (it is closing). */
static void ur_ms_drop(struct syn_worker *w, struct syn_conn *c)
{
	while (c->ms_n) {
		int32_t bid = c->ms_head;

		ur_ms_pop(ur(w), c);
		ur_buf_release(w, bid);
	}
	c->ms_ended = 0;
}

static void ur_ms_cancel(struct syn_worker *w, struct syn_conn *c)
{
	struct io_uring_sqe *sqe = ur_sqe(w);

	io_uring_prep_cancel64(sqe, ur_data(OP_RECV_MS, c->gen, conn_index(w, c)), 0);
	io_uring_sqe_set_data64(sqe, ur_data(OP_CANCEL, 0, 0));
	c->ms = 2;
}

/* Hand the logic, which wants to receive, the first of the stash. */
static void ur_ms_deliver(struct syn_worker *w, struct syn_conn *c)
{
	struct uring_state *s = ur(w);
	int32_t bid = c->ms_head;
	uint32_t off = c->ms_off, n;

	c->recving = 0;
	if (!c->ms_n) {
		c->ms_ended = 0;
		proxy_on_recv(w, c, c->ms_end_res, -1);
		return;
	}
	n = s->ms_len[bid] - off;
	if (c->rx_bid >= 0) {
		uint32_t room = c->rx_cap - c->rx_end;

		if (n > room)
			n = room; /* none: 0, as a receive of 0 bytes would say */
		memcpy(c->rx_ptr + c->rx_end, s->bufs[bid] + off, n);
		c->ms_off += n;
		if (c->ms_off == s->ms_len[bid]) {
			ur_ms_pop(s, c);
			ur_buf_release(w, bid);
		}
		proxy_on_recv(w, c, (int)n, -1);
		return;
	}
	ur_ms_pop(s, c);
	if (off) /* the rest of a buffer partly copied into a held one */
		memmove(s->bufs[bid], s->bufs[bid] + off, n);
	proxy_on_recv(w, c, (int)n, bid);
}

/* A completion of c's multishot receive (bid: the buffer it filled, or -1). */
static void ur_ms_on_cqe(struct syn_worker *w, struct syn_conn *c, int res, uint32_t flags,
			 int32_t bid)
{
	if (!(flags & IORING_CQE_F_MORE)) { /* its last */
		c->ms = 0;
		c->pending--;
	}
	if (c->closing) {
		if (bid >= 0)
			ur_buf_release(w, bid);
		return;
	}
	if (bid >= 0) {
		if (res > 0)
			ur_ms_push(ur(w), c, bid, (uint32_t)res);
		else
			ur_buf_release(w, bid);
	}
	if (res == -ENOBUFS) { /* the pool ran dry: it grows before the next submit */
		ur(w)->nobufs++;
		if (c->recving && !c->ms_n && !c->ms_ended) {
			c->recving = 0;
			proxy_on_recv(w, c, -ENOBUFS, -1);
		}
		return;
	}
	if (res <= 0 && res != -ECANCELED && res != -EAGAIN) {
		c->ms_ended = 1;
		c->ms_end_res = res;
	}
	if (c->recving) {
		if (c->ms_n || c->ms_ended)
			ur_ms_deliver(w, c);
		else if (!c->ms)
			ur_recv_plain(w, c); /* stopped with nothing to say: once more */
		return;
	}
	if (c->ms == 1 && c->ms_n >= UR_MS_STASH)
		ur_ms_cancel(w, c);
}

static int ur_rx_quiet(struct syn_worker *w, struct syn_conn *c)
{
	c->ms_stop = 1;
	if (c->ms == 1)
		ur_ms_cancel(w, c);
	return !c->ms && !c->ms_n && !c->ms_ended;
}

static void ur_recv_plain(struct syn_worker *w, struct syn_conn *c)
{
	struct uring_state *s = ur(w);
	struct io_uring_sqe *sqe;

	if (c->ms || c->ms_n || c->ms_ended) {
		c->recving = 1;
		if (c->ms_n || c->ms_ended) { /* reported from the completion loop */
			sqe = ur_sqe(w);
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe,
						ur_data(OP_MS_DELIVER, c->gen, conn_index(w, c)));
			c->pending++;
		}
		/* else armed (its next data answers) or being cancelled (its
		 * last completion posts again) */
		return;
	}
	if (s->has_recv_ms && c->kind == CONN_CLIENT && c->rx_bid < 0 && !c->ms_stop &&
	    !c->nonblock && !c->ktls) {
		if (s->avail < SYN_BUF_CHUNK / 4)
			ur_grow(w);
		sqe = ur_sqe(w);
		io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = UR_BGID;
		io_uring_sqe_set_data64(sqe, ur_data(OP_RECV_MS, c->gen, conn_index(w, c)));
		c->pending++;
		c->recving = 1;
		c->ms = 1;
		w->stats->io_ops[8]++;
		return;
	}
	if (c->rx_bid < 0 && !s->has_buf_ring) {
		if (!s->avail && ur_grow(w)) {
			proxy_on_recv(w, c, -ENOBUFS, -1);
			return;
		}
		c->rx_bid = s->free_stack[--s->avail];
		c->rx_ptr = s->bufs[c->rx_bid];
		c->rx_cap = SYN_BUF_SIZE;
		c->rx_start = c->rx_end = 0;
	}
	/* an idle connection takes a buffer only when data comes: the pool
	 * grows when few are left in the ring, or on -ENOBUFS */
	if (c->rx_bid < 0 && s->avail < SYN_BUF_CHUNK / 4)
		ur_grow(w);
	sqe = ur_sqe(w);
	if (c->rx_bid >= 0) {
		io_uring_prep_recv(sqe, c->fd, c->rx_ptr + c->rx_end, c->rx_cap - c->rx_end, 0);
	} else {
		io_uring_prep_recv(sqe, c->fd, NULL, SYN_BUF_SIZE, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = UR_BGID;
	}
	/* a socket made non-blocking for a splice would answer at once with
	 * EAGAIN: wait for data first */
	if (c->nonblock && s->has_recv_ms)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data64(sqe, ur_data(OP_RECV, c->gen, conn_index(w, c)));
	c->pending++;
	c->recving = 1;
	w->stats->io_ops[1]++;
}

/* May a large send on c go zero-copy?  Asked once per connection. */
static int ur_zc_ok(struct syn_worker *w, struct syn_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (ur(w)->zc_mode == UR_ZC_OFF)
		return 0;
	if (!c->zc) {
		c->zc = 1;
		if (ur(w)->zc_mode == UR_ZC_ALWAYS) {
			c->zc = 2;
		} else if (!getpeername(c->fd, (struct sockaddr *)&ss, &len)) {
			const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
			const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
			int local = ss.ss_family == AF_INET
					    ? (ntohl(a4->sin_addr.s_addr) >> 24) == 127
					    : ss.ss_family == AF_INET6 &&
						      (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
						       (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) &&
							a6->sin6_addr.s6_addr[12] == 127));

			c->zc = local ? 1 : 2;
		}
	}
	return c->zc == 2;
}

/* The pool buffer that holds [p, p + len), or -1 (a tx slab, a big buffer). */
static int32_t ur_bid_of(struct uring_state *s, const char *p, uint32_t len)
{
	size_t chunk_bytes = (size_t)SYN_BUF_CHUNK * SYN_BUF_SIZE, off;
	uint32_t i;

	for (i = 0; i < s->nchunks; i++) {
		if (p < s->chunks[i] || p >= s->chunks[i] + chunk_bytes)
			continue;
		off = (size_t)(p - s->chunks[i]);
		if (off % SYN_BUF_SIZE + len > SYN_BUF_SIZE)
			return -1;
		return (int32_t)(i * SYN_BUF_CHUNK + off / SYN_BUF_SIZE);
	}
	return -1;
}

static void ur_zc_unpin(struct syn_worker *w, int32_t bid)
{
	struct uring_state *s = ur(w);

	if (bid < 0 || --s->zc_pins[bid])
		return;
	if (s->zc_held[bid]) {
		s->zc_held[bid] = 0;
		ur_buf_release(w, bid);
	}
}

/* A zero-copy send completes twice: the result (flagged MORE), then a
 * notification once the kernel has let go of the memory.  The logic hears
 * of it only then, so that what it does with its buffers next (compacting,
 * appending, giving them back) never touches memory the NIC may still
 * read; and the pool buffer it reads from is pinned besides, so that the
 * peer connection closing does not hand it to the ring either.  Only sends
 * from a pool buffer go zero-copy, one at a time per connection, and none
 * on a kernel TLS socket (the kernel encrypts into buffers of its own). */
static void ur_send(struct syn_worker *w, struct syn_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->tls) {
		ur_tls_send(w, c);
		return;
	}
	sqe = ur_sqe(w);

	if (c->out_len >= UR_ZC_MIN && c->zc_bid < 0 && !c->ktls && ur_zc_ok(w, c) &&
	    (c->zc_bid = ur_bid_of(ur(w), c->out, c->out_len)) >= 0) {
		ur(w)->zc_pins[c->zc_bid]++;
		io_uring_prep_send_zc(sqe, c->fd, c->out, c->out_len, MSG_NOSIGNAL, 0);
		io_uring_sqe_set_data64(sqe, ur_data(OP_SEND_ZC, c->gen, conn_index(w, c)));
		w->stats->io_ops[3]++;
	} else {
		io_uring_prep_send(sqe, c->fd, c->out, c->out_len, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, ur_data(OP_SEND, c->gen, conn_index(w, c)));
		w->stats->io_ops[2]++;
	}
	c->pending++;
	c->sending = 1;
}

static void ur_connect(struct syn_worker *w, struct syn_conn *c, const struct sockaddr *sa,
		       socklen_t len)
{
	struct io_uring_sqe *sqe = ur_sqe(w);

	io_uring_prep_connect(sqe, c->fd, sa, len);
	io_uring_sqe_set_data64(sqe, ur_data(OP_CONNECT, c->gen, conn_index(w, c)));
	c->pending++;
	w->stats->io_ops[5]++;
}

static void ur_write(struct syn_worker *w, int fd, const char *buf, uint32_t len)
{
	struct io_uring_sqe *sqe = ur_sqe(w);

	io_uring_prep_write(sqe, fd, buf, len, (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, ur_data(OP_LOG, 0, 0));
}

/* Splices are done by the worker itself, with the splice(2) call, on
 * non-blocking sockets: IORING_OP_SPLICE is not pollable inside io_uring
 * (two fds), so the ring would hand every one to an io-wq thread, a
 * context switch each (make bench-proxy: 13.5 per 1 MiB response).  The
 * ring waits for readiness (a poll) when a splice would block, and carries
 * the result of one done at once (a nop), so that completions are always
 * reported from the completion loop, never from inside the caller. */
static int ur_splice_now(struct syn_conn *c, int r)
{
	ssize_t n = splice(c->spl[r].in, (loff_t *)c->spl[r].off, c->spl[r].out, NULL,
			   c->spl[r].len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

	return n < 0 ? -errno : (int)n;
}

/* r: 0 for c as the source (wait for input), 1 as the destination */
static void ur_splice_wait(struct syn_worker *w, struct syn_conn *c, int r)
{
	struct io_uring_sqe *sqe = ur_sqe(w);

	io_uring_prep_poll_add(sqe, r ? c->spl[r].out : c->spl[r].in, r ? POLLOUT : POLLIN);
	io_uring_sqe_set_data64(sqe, ur_data(OP_SPLICE_WAIT + r, c->gen, conn_index(w, c)));
	c->pending++;
}

static void ur_splice(struct syn_worker *w, struct syn_conn *c, int fd_in, uint64_t *off_in,
		      int fd_out, uint32_t len, int wait_fd, short wait_events, int role)
{
	struct io_uring_sqe *sqe;
	int res, r = role - 1;

	(void)wait_fd;
	(void)wait_events;
	c->spl[r].in = fd_in;
	c->spl[r].out = fd_out;
	c->spl[r].len = len;
	c->spl[r].off = off_in;
	w->stats->io_ops[4]++;
	res = ur_splice_now(c, r);
	if (res == -EAGAIN) {
		ur_splice_wait(w, c, r);
		return;
	}
	c->spl[r].res = res;
	sqe = ur_sqe(w);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, ur_data(OP_SPLICE_DONE + r, c->gen, conn_index(w, c)));
	c->pending++;
}

static void ur_cancel(struct syn_worker *w, struct syn_conn *c)
{
	struct io_uring_sqe *sqe;

	ur_ms_drop(w, c);
	if (!c->pending)
		return;
	sqe = ur_sqe(w);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, ur_data(OP_CANCEL, 0, 0));
	if (c->zc_bid >= 0) {
		/* a zero-copy send's notification comes when its bytes are
		 * acknowledged or dropped: a peer that stops reading would hold
		 * the connection for ever, so the queue is dropped now (RST) */
		struct linger lg = {1, 0};

		io_uring_submit(&ur(w)->ring); /* the cancel finds the fd first */
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->fd);
		c->fd = -1;
	}
}

const struct syn_io_ops syn_uring_ops = {
	.recv = ur_recv,
	.send = ur_send,
	.connect = ur_connect,
	.cancel = ur_cancel,
	.buf = ur_buf,
	.buf_release = ur_buf_release,
	.splice = ur_splice,
	.write = ur_write,
	.rx_quiet = ur_rx_quiet,
};

static void ur_arm_accept(struct syn_worker *w, uint32_t i)
{
	struct syn_accept *a = &w->accepts[i];
	struct io_uring_sqe *sqe = ur_sqe(w);

	if (ur(w)->has_multishot_accept)
		io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ur_data(OP_ACCEPT, 0, i));
	a->armed = 1;
}

/* Arm accepts on the listeners the plan wants, cancel those it dropped. */
void uring_sync_accepts(struct syn_worker *w)
{
	uint32_t i;

	for (i = 0; i < w->naccepts; i++) {
		struct syn_accept *a = &w->accepts[i];

		if (a->wanted && !a->armed && !w->accept_paused && !w->stopping) {
			ur_arm_accept(w, i);
		} else if ((!a->wanted || w->accept_paused || w->stopping) && a->armed) {
			struct io_uring_sqe *sqe = ur_sqe(w);

			io_uring_prep_cancel64(sqe, ur_data(OP_ACCEPT, 0, i), 0);
			io_uring_sqe_set_data64(sqe, ur_data(OP_CANCEL, 0, 0));
			a->armed = 2; /* cancelling: the final completion clears it */
		}
	}
}

static void ur_on_accept(struct syn_worker *w, struct io_uring_cqe *cqe, uint32_t i)
{
	struct syn_accept *a = &w->accepts[i];

	if (!(cqe->flags & IORING_CQE_F_MORE))
		a->armed = 0;
	if (cqe->res >= 0) {
		/* a client accepted just before its listener went away is
		 * still a client: it is served */
		w->stats->io_ops[0]++;
		if (!w->stopping)
			proxy_on_accept(w, a, cqe->res);
		else
			close(cqe->res);
	}
	if (!a->armed)
		uring_sync_accepts(w);
}

static void ur_complete(struct syn_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t d = io_uring_cqe_get_data64(cqe);
	enum uring_op op = (enum uring_op)(d >> 56);
	uint32_t idx = (uint32_t)d, gen = (uint32_t)(d >> 32) & 0xffffff;
	struct syn_conn *c;
	int32_t bid = -1;

	if (op == OP_ACCEPT) {
		ur_on_accept(w, cqe, idx);
		return;
	}
	if (op == OP_LOG) {
		w->alog_busy = 0;
		return;
	}
	if (op == OP_CANCEL || op == OP_NONE || op == OP_WAKE || idx >= w->nconns)
		return;
	c = conn_at(w, idx);
	if ((c->gen & 0xffffff) != gen || c->kind == CONN_FREE)
		return; /* stale: the slot was reused (cannot happen while pending counts) */
	if ((op == OP_RECV || op == OP_RECV_MS) && (cqe->flags & IORING_CQE_F_BUFFER)) {
		bid = (int32_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		ur(w)->avail--;
	}
	if (op == OP_RECV_MS) { /* counts itself out of pending at its last */
		ur_ms_on_cqe(w, c, cqe->res, cqe->flags, bid);
		goto closed;
	}
	if (op == OP_SEND_ZC && (cqe->flags & IORING_CQE_F_MORE)) {
		c->zc_res = cqe->res; /* the notification comes next */
		return;
	}
	if (op == OP_SEND_ZC) {
		ur_zc_unpin(w, c->zc_bid);
		c->zc_bid = -1;
	}
	c->pending--;
	switch (op) {
	case OP_RECV:
		if (cqe->res == -ENOBUFS)
			ur(w)->nobufs++;
		if (c->tls) {
			ur_tls_on_recv(w, c, cqe->res, bid);
			break;
		}
		if (c->ktls && cqe->res == -EIO && !c->closing) {
			/* kernel TLS: a record that is not data (an alert, a key update) */
			int r = syn_tls_ktls_control(w, c);

			if (r > 0) {
				ur_recv_plain(w, c);
				break;
			}
			c->recving = 0;
			proxy_on_recv(w, c, r, -1);
			break;
		}
		c->recving = 0;
		proxy_on_recv(w, c, cqe->res, bid);
		break;
	case OP_TLS_READ:
		if (c->closing)
			break;
		ur_tls_advance(w, c, -1);
		break;
	case OP_MS_DELIVER:
		if (!c->closing && c->recving && (c->ms_n || c->ms_ended))
			ur_ms_deliver(w, c);
		break;
	case OP_TLS_SEND:
		ur_tls_on_send(w, c, cqe->res);
		break;
	case OP_TLS_FAILED:
		c->sending = 0;
		if (!c->closing)
			proxy_on_send(w, c, c->zc_res);
		break;
	case OP_SEND:
		c->sending = 0;
		proxy_on_send(w, c, cqe->res);
		break;
	case OP_SEND_ZC: /* the notification, or a result that has none */
		c->sending = 0;
		proxy_on_send(w, c, (cqe->flags & IORING_CQE_F_NOTIF) ? c->zc_res : cqe->res);
		break;
	case OP_CONNECT:
		proxy_on_connect(w, c, cqe->res);
		break;
	case OP_SPLICE_DONE:
	case OP_SPLICE_DONE2: {
		int r = op - OP_SPLICE_DONE;

		proxy_on_splice(w, c, c->spl[r].res, r + 1);
		break;
	}
	case OP_SPLICE_WAIT:
	case OP_SPLICE_WAIT2: {
		int r = op - OP_SPLICE_WAIT;
		int res = cqe->res < 0 ? cqe->res : ur_splice_now(c, r);

		if (res == -EAGAIN && !c->closing) {
			/* readiness gone again (a spurious wake): wait once more */
			ur_splice_wait(w, c, r);
			break;
		}
		proxy_on_splice(w, c, res, r + 1);
		break;
	}
	default:
		break;
	}
closed:
	if (c->kind != CONN_FREE && c->closing && !c->pending)
		proxy_on_closed(w, c);
}

static void ur_clock(struct syn_worker *w)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	w->now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	w->now_ms = w->now_us / 1000u;
}

/* What the ring offers beyond the basics.  Multishot accept came in 5.19
 * with the buffer ring: registering the buffer ring stands for both. */
static void ur_probe(struct uring_state *s)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
	const char *mode = getenv("SYN_SEND_ZC");

	if (!probe)
		return;
	if (io_uring_opcode_supported(probe, IORING_OP_SEND_ZC))
		s->zc_mode = !mode                     ? UR_ZC_OFF
			     : !strcmp(mode, "auto")   ? UR_ZC_AUTO
			     : !strcmp(mode, "always") ? UR_ZC_ALWAYS
						       : UR_ZC_OFF;
	io_uring_free_probe(probe);
}

/* Does a multishot receive with buffer selection work (6.0; 5.19 rejects
 * the flag)?  Tried on a socket pair with a ring of its own: one byte, then
 * the end; the receive must report the byte with MORE, then the end.  Asked
 * once.  SYN_RECV_MULTISHOT=off: as if the kernel had none. */
int uring_recv_multishot_probe(void)
{
	static _Atomic int cached = -1;
	const char *env = getenv("SYN_RECV_MULTISHOT");
	struct io_uring_buf_reg reg = {.ring_entries = 1, .bgid = UR_BGID};
	struct io_uring_buf_ring *br;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	int sv[2], ok = 0, i, r = atomic_load(&cached);
	char buf[64];

	if (env && !strcmp(env, "off"))
		return 0;
	if (r >= 0)
		return r;
	if (io_uring_queue_init(4, &ring, 0))
		goto out;
	br = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED)
		goto exit_ring;
	reg.ring_addr = (unsigned long)br;
	io_uring_buf_ring_init(br);
	if (io_uring_register_buf_ring(&ring, &reg, 0))
		goto unmap;
	io_uring_buf_ring_add(br, buf, sizeof(buf), 0, io_uring_buf_ring_mask(1), 0);
	io_uring_buf_ring_advance(br, 1);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		goto unregister;
	if (write(sv[1], "x", 1) != 1 || shutdown(sv[1], SHUT_WR))
		goto close_pair;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = UR_BGID;
	io_uring_submit(&ring);
	/* the byte (MORE), then the end of input: the ring is empty by then,
	 * so that may come as ENOBUFS; either way the receive is over */
	for (i = 0; i < 2; i++) {
		struct __kernel_timespec ts = {.tv_sec = 1};
		unsigned flags;
		int res;

		if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts))
			break;
		res = cqe->res;
		flags = cqe->flags;
		io_uring_cqe_seen(&ring, cqe);
		if (i == 0)
			ok = res == 1 && (flags & IORING_CQE_F_MORE) &&
			     (flags & IORING_CQE_F_BUFFER);
		if (!(flags & IORING_CQE_F_MORE))
			break;
	}
close_pair:
	close(sv[0]);
	close(sv[1]);
unregister:
	io_uring_unregister_buf_ring(&ring, UR_BGID);
unmap:
	munmap(br, 4096);
exit_ring:
	io_uring_queue_exit(&ring);
out:
	atomic_store(&cached, ok);
	return ok;
}

int uring_worker_init(struct syn_worker *w)
{
	struct uring_state *s = calloc(1, sizeof(*s));
	struct io_uring_params p;
	int rc, ret;

	if (!s)
		return -ENOMEM;
	w->io_state = s;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = UR_CQ_ENTRIES;
	rc = io_uring_queue_init_params(UR_SQ_ENTRIES, &s->ring, &p);
	if (rc == -EINVAL) {
		/* before 6.1: no DEFER_TASKRUN; COOP_TASKRUN still avoids IPIs */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
		p.cq_entries = UR_CQ_ENTRIES;
		rc = io_uring_queue_init_params(UR_SQ_ENTRIES, &s->ring, &p);
	}
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = UR_CQ_ENTRIES;
		rc = io_uring_queue_init_params(UR_SQ_ENTRIES, &s->ring, &p);
	}
	if (rc < 0)
		goto free_state;
	ur_probe(s);

	s->br_bytes = sizeof(struct io_uring_buf) * SYN_BUF_MAX;
	s->br = mmap(NULL, s->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (s->br != MAP_FAILED) {
		struct io_uring_buf_reg reg = {
			.ring_addr = (unsigned long)s->br,
			.ring_entries = SYN_BUF_MAX,
			.bgid = UR_BGID,
		};

		io_uring_buf_ring_init(s->br);
		ret = io_uring_register_buf_ring(&s->ring, &reg, 0);
		if (ret == 0) {
			s->has_buf_ring = 1;
			s->has_multishot_accept = 1;
		} else {
			munmap(s->br, s->br_bytes);
			s->br = NULL;
		}
	} else {
		s->br = NULL;
	}
	if (!s->has_buf_ring) {
		s->free_stack = calloc(SYN_BUF_MAX, sizeof(*s->free_stack));
		if (!s->free_stack) {
			rc = -ENOMEM;
			goto exit_ring;
		}
	}
	rc = ur_grow(w);
	if (rc)
		goto exit_ring;
	s->has_recv_ms = s->has_buf_ring && uring_recv_multishot_probe();
	ur_clock(w);
	return 0;

exit_ring:
	io_uring_queue_exit(&s->ring);
free_state:
	free(s->free_stack);
	free(s);
	w->io_state = NULL;
	return rc;
}

void uring_worker_fini(struct syn_worker *w)
{
	struct uring_state *s = ur(w);
	uint32_t i;

	if (!s)
		return;
	io_uring_queue_exit(&s->ring);
	if (s->br)
		munmap(s->br, s->br_bytes);
	for (i = 0; i < s->nchunks; i++)
		free(s->chunks[i]);
	free(s->free_stack);
	free(s);
	w->io_state = NULL;
}

/* The worker's loop: submit, wait for at least one completion or the tick,
 * handle every completion, then timers, plan changes and stopping. */
void uring_run(struct syn_worker *w)
{
	struct io_uring *ring = &ur(w)->ring;
	struct syn_engine *e = w->e;

	uring_sync_accepts(w);
	for (;;) {
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = UR_TICK_NS};
		struct io_uring_cqe *cqe;
		struct rt_plan *rp;
		unsigned head, n = 0;

		io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
		ur_clock(w);
		/* a plan swapped before these completions' requests came in must
		 * serve them: a reload that has returned has applied */
		rp = atomic_load_explicit(&e->plan, memory_order_acquire);
		if (rp != w->plan)
			proxy_adopt_plan(w, rp);
		io_uring_for_each_cqe(ring, head, cqe)
		{
			ur_complete(w, cqe);
			n++;
		}
		io_uring_cq_advance(ring, n);
		/* the ring ran dry for this many receives: grow it by as many
		 * before they are submitted again (buffers are returned so fast
		 * that the free count alone never says so) */
		while (ur(w)->nobufs) {
			uint32_t k = ur(w)->nobufs < SYN_BUF_CHUNK ? ur(w)->nobufs : SYN_BUF_CHUNK;

			ur(w)->nobufs -= k;
			if (ur_grow(w)) {
				ur(w)->nobufs = 0;
				break;
			}
		}

		rp = atomic_load_explicit(&e->plan, memory_order_acquire);
		if (rp != w->plan)
			proxy_adopt_plan(w, rp);
		proxy_timers(w);
		syn_alog_flush(w);
		if (atomic_load_explicit(&e->stop, memory_order_acquire)) {
			if (!w->stopping) {
				w->stopping = 1;
				uring_sync_accepts(w);
				proxy_close_idle(w);
			}
			if (proxy_idle(w) ||
			    w->now_ms >= atomic_load_explicit(&e->stop_deadline_ms,
							      memory_order_relaxed))
				break;
		}
	}
	/* the last lines of the access log, written before the ring goes */
	if (w->plan && w->plan->access_log_fd >= 0 && w->alog_len[w->alog_cur] &&
	    write(w->plan->access_log_fd, w->alog_buf[w->alog_cur], w->alog_len[w->alog_cur]) < 0)
		w->alog_dropped++;
}
