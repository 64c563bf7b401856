/* native/bench/static/floor.c - the floor of bench_static.sh (issue 5): a
 * deliberately minimal HTTP/1.1 server on io_uring, measured in the same run
 * as synapserve and nginx, so that the issue's goals for CPU per request
 * (1 KiB: 6 us against its floor's 5; 1 MiB: within 10% of the splice floor)
 * are judged against what this machine does in that run, not against
 * figures from another day.
 *
 * Usage: floor PORT FILE small|splice
 *
 * One thread, one io_uring (SINGLE_ISSUER | DEFER_TASKRUN when the kernel
 * has them), a multishot accept on 127.0.0.1:PORT.  Per connection
 * (TCP_NODELAY, as nginx's tcp_nodelay on): a recv into a fixed buffer of the
 * connection until the buffer holds "\r\n\r\n", then the answer, then the
 * next recv (keep-alive):
 *   small   FILE is read once at start into a prebuilt response (head and
 *           body): one send per request.
 *   splice  FILE is opened once at start.  The head goes out with a send
 *           (MSG_MORE) while an IORING_OP_SPLICE moves the file, from an
 *           explicit offset, into the connection's pipe (F_SETPIPE_SZ 1 MiB);
 *           once both are done, an IORING_OP_SPLICE moves the pipe into the
 *           socket; repeated until the whole file has gone.  The kernel runs
 *           every IORING_OP_SPLICE in an io-wq worker (a thread of this
 *           process: its CPU time is in /proc/PID/stat); the workers are
 *           pinned to this process's CPUs (io_uring_register_iowq_aff).
 *           The sockets stay blocking: a worker's splice into a full socket
 *           waits there (non-blocking, it would end with EAGAIN).
 * The connection table is indexed by the socket's fd and allocated at start;
 * a connection's pipe is made at accept.  Nothing is allocated per request.
 * (A multishot recv into a ring of provided buffers was tried instead of the
 * recv per request: no difference in CPU per 1 KiB response that 3-second
 * runs could show.)
 *
 * Deliberately left out: parsing (any request head gets the file: method,
 * path and headers are not looked at), pipelining (bytes after the first
 * "\r\n\r\n" of a recv are dropped), request bodies, HEAD, any status but
 * 200, Date/ETag/Last-Modified, files changing on disk, timeouts, limits,
 * logging, TLS, IPv6, more than one thread, and a graceful stop (SIGTERM
 * ends it).  It is a yardstick, not a server.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#define REQ_MAX    2048          /* bytes of a request head */
#define PIPE_SIZE  (1024 * 1024) /* the default pipe-max-size */
#define SQ_ENTRIES 1024
#define CQ_ENTRIES 16384
#define BACKLOG    4096

enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_SPLICE_IN, OP_SPLICE_OUT };

struct conn {
	uint32_t have;     /* request bytes in buf */
	uint32_t sent;     /* bytes of the response (small) or head (splice) sent */
	uint32_t pending;  /* operations in flight */
	uint32_t wait;     /* of those, the ones the next step waits for */
	uint32_t in_pipe;  /* bytes in the pipe */
	uint32_t pipe_cap; /* the pipe's size */
	uint64_t off;      /* the file's next byte to go into the pipe */
	int pipe[2];
	int closing;
	char buf[REQ_MAX];
};

static struct io_uring ring;
static struct conn *conns;
static int nconns; /* the table's size: the fd limit */
static int lfd;
static int splice_mode;
static int file_fd = -1;
static uint64_t file_size;
static char *resp; /* small: head + body; splice: the head */
static uint32_t resp_len;

static void die(const char *what, int err)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(err));
	exit(1);
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			die("no SQE", EBUSY);
	}
	return sqe;
}

static void set_data(struct io_uring_sqe *sqe, enum op op, int fd)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)op << 32 | (uint32_t)fd);
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
	set_data(sqe, OP_ACCEPT, lfd);
}

static void submit_recv(int fd, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_recv(sqe, fd, c->buf + c->have, REQ_MAX - c->have, 0);
	set_data(sqe, OP_RECV, fd);
	c->pending++;
}

static void submit_send(int fd, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_send(sqe, fd, resp + c->sent, resp_len - c->sent,
			   MSG_NOSIGNAL | (splice_mode ? MSG_MORE : 0));
	set_data(sqe, OP_SEND, fd);
	c->pending++;
}

static void submit_splice_in(int fd, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();
	uint64_t left = file_size - c->off;
	uint32_t room = c->pipe_cap - c->in_pipe;

	io_uring_prep_splice(sqe, file_fd, (int64_t)c->off, c->pipe[1], -1,
			     left < room ? (uint32_t)left : room, SPLICE_F_MOVE);
	set_data(sqe, OP_SPLICE_IN, fd);
	c->pending++;
}

static void submit_splice_out(int fd, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe();
	unsigned int more = c->off < file_size ? SPLICE_F_MORE : 0;

	io_uring_prep_splice(sqe, c->pipe[0], -1, fd, -1, c->in_pipe, SPLICE_F_MOVE | more);
	set_data(sqe, OP_SPLICE_OUT, fd);
	c->pending++;
}

static void conn_close(int fd, struct conn *c)
{
	c->closing = 1;
	if (c->pending)
		return;
	close(fd);
	if (c->pipe[0] >= 0) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
}

static void on_accept(int res, unsigned int flags)
{
	struct conn *c;
	int one = 1;

	if (!(flags & IORING_CQE_F_MORE))
		arm_accept();
	if (res < 0) {
		fprintf(stderr, "floor: accept: %s\n", strerror(-res));
		return;
	}
	if (res >= nconns) {
		close(res);
		return;
	}
	c = &conns[res];
	c->have = 0;
	c->pending = 0;
	c->closing = 0;
	c->in_pipe = 0;
	c->pipe[0] = c->pipe[1] = -1;
	setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (splice_mode) {
		int sz;

		if (pipe2(c->pipe, O_CLOEXEC) < 0) {
			c->pipe[0] = c->pipe[1] = -1;
			conn_close(res, c);
			return;
		}
		/* on failure (pipe-user-pages-soft) the pipe keeps its size */
		fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
		sz = fcntl(c->pipe[1], F_GETPIPE_SZ);
		c->pipe_cap = sz > 0 ? (uint32_t)sz : 65536;
	}
	submit_recv(res, c);
}

/* Both the head and the first part of the file are on their way: when both
 * are done, the pipe goes into the socket. */
static void step_done(int fd, struct conn *c)
{
	if (--c->wait)
		return;
	c->wait = 1;
	submit_splice_out(fd, c);
}

static void on_recv(int fd, struct conn *c, int res)
{
	uint32_t from;

	if (res <= 0) {
		conn_close(fd, c);
		return;
	}
	from = c->have > 3 ? c->have - 3 : 0;
	c->have += (uint32_t)res;
	if (!memmem(c->buf + from, c->have - from, "\r\n\r\n", 4)) {
		if (c->have == REQ_MAX)
			conn_close(fd, c);
		else
			submit_recv(fd, c);
		return;
	}
	c->have = 0;
	c->sent = 0;
	submit_send(fd, c);
	if (splice_mode) {
		c->off = 0;
		c->wait = 2;
		submit_splice_in(fd, c);
	}
}

static void on_send(int fd, struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(fd, c);
		return;
	}
	c->sent += (uint32_t)res;
	if (c->sent < resp_len)
		submit_send(fd, c);
	else if (splice_mode)
		step_done(fd, c);
	else
		submit_recv(fd, c);
}

static void on_splice_in(int fd, struct conn *c, int res)
{
	if (res <= 0) { /* 0: the file got shorter */
		conn_close(fd, c);
		return;
	}
	c->off += (uint64_t)res;
	c->in_pipe += (uint32_t)res;
	step_done(fd, c);
}

static void on_splice_out(int fd, struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(fd, c);
		return;
	}
	c->in_pipe -= (uint32_t)res;
	if (c->in_pipe) {
		submit_splice_out(fd, c);
	} else if (c->off < file_size) {
		submit_splice_in(fd, c);
	} else {
		c->wait = 0;
		submit_recv(fd, c);
	}
}

static void on_cqe(const struct io_uring_cqe *cqe)
{
	enum op op = (enum op)(cqe->user_data >> 32);
	int fd = (int)(uint32_t)cqe->user_data;
	struct conn *c;

	if (op == OP_ACCEPT) {
		on_accept(cqe->res, cqe->flags);
		return;
	}
	c = &conns[fd];
	c->pending--;
	if (c->closing) {
		conn_close(fd, c);
		return;
	}
	switch (op) {
	case OP_RECV:
		on_recv(fd, c, cqe->res);
		break;
	case OP_SEND:
		on_send(fd, c, cqe->res);
		break;
	case OP_SPLICE_IN:
		on_splice_in(fd, c, cqe->res);
		break;
	case OP_SPLICE_OUT:
		on_splice_out(fd, c, cqe->res);
		break;
	default:
		break;
	}
}

static void load_file(const char *path)
{
	char head[256];
	struct stat st;
	int n;

	file_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (file_fd < 0)
		die(path, errno);
	if (fstat(file_fd, &st) < 0)
		die(path, errno);
	file_size = (uint64_t)st.st_size;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
		     "Content-Length: %llu\r\n\r\n",
		     (unsigned long long)file_size);
	if (!splice_mode && file_size > 64 * 1024 * 1024)
		die("small mode: file above 64 MiB", EFBIG);
	resp_len = (uint32_t)n + (splice_mode ? 0 : (uint32_t)file_size);
	resp = malloc(resp_len);
	if (!resp)
		die("malloc", ENOMEM);
	memcpy(resp, head, (size_t)n);
	if (!splice_mode) {
		uint32_t got = 0;

		while (got < file_size) {
			ssize_t r = pread(file_fd, resp + n + got, file_size - got, got);

			if (r <= 0)
				die(path, r < 0 ? errno : EIO);
			got += (uint32_t)r;
		}
	}
}

static void setup_ring(void)
{
	struct io_uring_params p;
	cpu_set_t cpus;
	int rc;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = CQ_ENTRIES;
	rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
	if (rc == -EINVAL) { /* before 6.1 */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_ENTRIES;
		rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
	}
	if (rc < 0)
		die("io_uring_queue_init_params", -rc);
	/* io-wq workers (the splices) on the CPUs this process is pinned to */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0) {
		rc = io_uring_register_iowq_aff(&ring, sizeof(cpus), &cpus);
		if (rc < 0)
			fprintf(stderr, "floor: io_uring_register_iowq_aff: %s\n", strerror(-rc));
	}
}

static void setup_listener(int port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket", errno);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind", errno);
	if (listen(lfd, BACKLOG) < 0)
		die("listen", errno);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	int port;

	if (argc != 4 || (strcmp(argv[3], "small") && strcmp(argv[3], "splice"))) {
		fprintf(stderr, "usage: floor PORT FILE small|splice\n");
		return 2;
	}
	port = atoi(argv[1]);
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "floor: bad port %s\n", argv[1]);
		return 2;
	}
	splice_mode = !strcmp(argv[3], "splice");
	signal(SIGPIPE, SIG_IGN);

	nconns = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns)
		nconns = (int)rl.rlim_cur;
	/* untouched entries cost no memory */
	conns = calloc((size_t)nconns, sizeof(*conns));
	if (!conns)
		die("calloc", ENOMEM);

	load_file(argv[2]);
	setup_listener(port);
	setup_ring();
	arm_accept();
	fprintf(stderr, "floor: 127.0.0.1:%d, %s, %llu bytes\n", port, argv[3],
		(unsigned long long)file_size);

	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		int rc = io_uring_submit_and_wait(&ring, 1);

		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			die("io_uring_submit_and_wait", -rc);
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			on_cqe(cqe);
			n++;
		}
		io_uring_cq_advance(&ring, n);
	}
}
