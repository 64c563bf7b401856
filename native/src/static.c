/* native/src/static.c - the static file handler: from a request on a static
 * route to the head (and a small body) of its answer, and the range of an
 * open file to splice after it.  The I/O stays in proxy.c.
 *
 * Per request, on the owning worker: no allocation.  Each worker keeps the
 * files it served in a fixed table (struct syn_files, made at start): the
 * descriptor, its metadata and its validators, and the descriptor of its
 * compressed body when there is one.  An entry is checked again (one
 * fstatat) when the control plane reports a change under a root and at
 * least once a second, so a file replaced on disk is never served stale for
 * longer than that.  docs/static-files.md says what is answered and why.
 */
#define _GNU_SOURCE /* O_PATH, CLOCK_REALTIME_COARSE */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "outbuf.h"

#define SF_ENTRIES 512 /* per worker; a power of two */
#define SF_WAYS \
	2                    /* entries a path may take: two hot files on one slot
			      * would otherwise reopen each other for ever */
#define SF_PATH          232 /* longest relative path kept in the table */
#define SF_REVALIDATE_MS 1000
#define SF_BR_MIN        256 /* smaller files are not compressed (the control plane agrees) */
#define SF_PATH_MAX      4096
#define SF_BODY          4096 /* files up to this size are kept in memory too */

enum sf_kind { SF_FREE = 0, SF_FILE, SF_DIR };
enum sf_br { SF_BR_UNKNOWN = 0, SF_BR_NONE, SF_BR_HAVE };

struct sf_entry {
	uint64_t plan_gen;   /* the plan whose roots and types it was made with */
	uint64_t change_gen; /* the change counter when last checked */
	uint64_t checked_ms;
	uint64_t used_ms; /* the last request that took it: of a set, the older goes */
	uint64_t size, ino, dev;
	int64_t mtime_ns;
	int64_t ctime_ns; /* changes with every write, and cannot be set back */
	int64_t lm_s;     /* Last-Modified: the mtime, or now when that is later */
	uint64_t br_size;
	int fd, br_fd;
	uint32_t hash, statik;
	uint16_t plen;
	uint8_t kind, br, compressible, etag_len, type_len;
	uint8_t body_ok;  /* the file's bytes are in the table's body slot */
	const char *type; /* in the plan's types */
	char etag[80];    /* "ino-size-mtime-ctime", quotes included */
	char lastmod[32];
	char path[SF_PATH];
};

struct syn_files {
	uint64_t swept_gen; /* the change counter at the last sweep */
	struct sf_entry e[SF_ENTRIES];
	/* the bytes of small files, a slot per entry: pages are touched only
	 * as files are served, so an unused table costs address space only */
	char body[SF_ENTRIES][SF_BODY];
};

struct syn_files *syn_static_init(void)
{
	struct syn_files *f = calloc(1, sizeof(*f));
	uint32_t i;

	if (!f)
		return NULL;
	for (i = 0; i < SF_ENTRIES; i++)
		f->e[i].fd = f->e[i].br_fd = -1;
	return f;
}

static void sf_drop(struct sf_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	if (e->br_fd >= 0)
		close(e->br_fd);
	e->fd = e->br_fd = -1;
	e->kind = SF_FREE;
}

void syn_static_fini(struct syn_files *f)
{
	uint32_t i;

	if (!f)
		return;
	for (i = 0; i < SF_ENTRIES; i++)
		sf_drop(&f->e[i]);
	free(f);
}

/* ---- dates ---------------------------------------------------------------- */

static const char sf_days[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char sf_months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t sf_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 bytes) into out. */
void syn_http_date(int64_t t, char *out)
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400, secs = t - days * 86400;
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
	int wd = (int)(((days % 7) + 7) % 7);

	snprintf(out, 30, "%s, %02u %s %04d %02d:%02d:%02d GMT", sf_days[wd], d, sf_months[m - 1],
		 (int)(y % 10000), (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

static int sf_num(const char *p, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* An IMF-fixdate to seconds since the epoch; -1 when it is not one (other
 * date forms are obsolete: a field we cannot read is ignored, RFC 9110
 * 13.1.3). */
int64_t syn_http_date_parse(const char *p, size_t n)
{
	int d, y, hh, mm, ss;
	unsigned m;

	if (n != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
	    p[19] != ':' || p[22] != ':' || memcmp(p + 25, " GMT", 4))
		return -1;
	for (m = 0; m < 12 && memcmp(p + 8, sf_months[m], 3); m++)
		;
	d = sf_num(p + 5, 2);
	y = sf_num(p + 12, 4);
	hh = sf_num(p + 17, 2);
	mm = sf_num(p + 20, 2);
	ss = sf_num(p + 23, 2);
	if (m == 12 || d < 1 || d > 31 || y < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
	    ss < 0 || ss > 60)
		return -1;
	return sf_days_from_civil(y, m + 1, (unsigned)d) * 86400 + hh * 3600 + mm * 60 + ss;
}

/* ---- the request path ------------------------------------------------------ */

static int sf_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode and normalize the path p (query excluded) into out: it
 * starts with '/', has no empty, "." or ".." segments, and ends with '/'
 * only when it names a directory (p ends in '/', "." or "..").  0, or the
 * status to refuse it with: 400 for a bad escape; 404 for what no file name
 * here can hold (an encoded '/', NUL, a backslash, a control character) or
 * a path too long; 403 for ".." above the top. */
int syn_static_normalize(const char *p, size_t n, char *out, size_t cap, size_t *outlen)
{
	size_t i = 0, o = 0;
	int dir = 0;

	if (!n || p[0] != '/' || cap < 4)
		return 400;
	out[o++] = '/';
	while (i < n) {
		size_t seg = o;

		if (p[i] == '/') {
			i++;
			continue;
		}
		while (i < n && p[i] != '/') {
			int c = (unsigned char)p[i++];

			if (c == '%') {
				int hi = i < n ? sf_hex(p[i]) : -1;
				int lo = i + 1 < n ? sf_hex(p[i + 1]) : -1;

				if (hi < 0 || lo < 0)
					return 400;
				c = hi << 4 | lo;
				i += 2;
				if (c == '/')
					return 404;
			}
			if (c < 0x20 || c == 0x7f || c == '\\')
				return 404;
			if (o + 2 >= cap)
				return 404;
			out[o++] = (char)c;
		}
		dir = 0;
		if (o - seg == 1 && out[seg] == '.') {
			o = seg;
			dir = 1;
		} else if (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
			if (seg == 1)
				return 403; /* above the top */
			o = seg - 1;        /* the slash that ended the segment before */
			while (out[o - 1] != '/')
				o--;
			dir = 1;
		} else {
			out[o++] = '/';
		}
	}
	if (p[n - 1] == '/')
		dir = 1;
	if (!dir && o > 1)
		o--;
	out[o] = 0;
	*outlen = o;
	return 0;
}

/* ---- the file table ---------------------------------------------------------- */

static uint32_t sf_hash(uint32_t statik, const char *p, size_t n)
{
	uint32_t h = 2166136261u ^ statik;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

static int sf_errno_status(int err)
{
	switch (err) {
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
	case ENXIO: /* a socket, or a device without its driver: not a file to serve */
	case ENODEV:
		return 404;
	case EXDEV: /* resolution would leave the root */
	case ELOOP:
	case EACCES:
	case EPERM:
		return 403;
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return 503;
	default:
		return 500;
	}
}

/* 0 once openat2 turned out to be missing (a kernel before 5.6, or a
 * seccomp filter that does not know it): from then on, the fallback. */
static _Atomic int sf_have_openat2 = 1;

/* Without openat2: open through the symlinks, then make sure that what was
 * opened lies beneath the root (the path has no ".." left: only a symlink
 * can lead out). */
static int sf_open_checked(const struct rt_static *st, const char *rel, int flags)
{
	char proc[32], real[SF_PATH_MAX];
	int fd = openat(st->root_fd, rel, flags);
	ssize_t n;

	if (fd < 0)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, real, sizeof(real) - 1);
	if (n < 0 || (size_t)n < st->real_len || memcmp(real, st->real, st->real_len) ||
	    (st->real_len > 1 && (size_t)n > st->real_len && real[st->real_len] != '/')) {
		close(fd);
		return n < 0 ? -EACCES : -EXDEV;
	}
	return fd;
}

/* Open rel beneath the root: the kernel refuses any step (a "..", or a
 * symlink, absolute or relative) that would leave it.  O_NONBLOCK so that
 * a FIFO does not block the worker before fstat turns it away. */
static int sf_open(const struct rt_static *st, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (!atomic_load_explicit(&sf_have_openat2, memory_order_relaxed))
		return sf_open_checked(st, rel, (int)how.flags);
	fd = syscall(SYS_openat2, st->root_fd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) {
		atomic_store_explicit(&sf_have_openat2, 0, memory_order_relaxed);
		return sf_open_checked(st, rel, (int)how.flags);
	}
	return fd < 0 ? -errno : (int)fd;
}

/* For tests: use the fallback from now on. */
void syn_static_no_openat2(void)
{
	atomic_store_explicit(&sf_have_openat2, 0, memory_order_relaxed);
}

/* Content type by the extension of the last segment of rel. */
static void sf_type(const struct rt_plan *rp, struct sf_entry *e, const char *rel, size_t n)
{
	const char *dot = NULL, *p;
	char ext[SYN_EXT_MAX];
	uint32_t lo = 0, hi = rp->nmimes;
	size_t k;

	e->type = "application/octet-stream";
	e->compressible = 0;
	for (p = rel + n; p > rel && p[-1] != '/'; p--)
		if (p[-1] == '.') {
			dot = p;
			break;
		}
	k = dot ? (size_t)(rel + n - dot) : 0;
	if (!k || k >= sizeof(ext))
		goto done;
	for (size_t j = 0; j < k; j++)
		ext[j] = (dot[j] >= 'A' && dot[j] <= 'Z') ? (char)(dot[j] | 0x20) : dot[j];
	ext[k] = 0;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int cmp = strcmp(rp->mimes[mid].ext, ext);

		if (!cmp) {
			e->type = rp->mimes[mid].type;
			e->compressible = (uint8_t)rp->mimes[mid].compressible;
			break;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
done:
	e->type_len = (uint8_t)strlen(e->type);
}

static int sf_same(const struct sf_entry *e, const struct stat *sb)
{
	/* the ctime too: a copy that keeps the mtime (cp -p, rsync -t, a build with a
	 * fixed SOURCE_DATE_EPOCH) changes it all the same */
	return (uint64_t)sb->st_ino == e->ino && (uint64_t)sb->st_dev == e->dev &&
	       (uint64_t)sb->st_size == e->size &&
	       (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec == e->mtime_ns &&
	       (int64_t)sb->st_ctim.tv_sec * 1000000000 + sb->st_ctim.tv_nsec == e->ctime_ns;
}

/* Fill e from a descriptor just opened for rel; 0 or a status (fd closed). */
static int sf_fill(struct syn_worker *w, const struct rt_plan *rp, struct sf_entry *e, int fd,
		   const char *rel, size_t n)
{
	struct stat sb;

	if (fstat(fd, &sb)) {
		close(fd);
		return sf_errno_status(errno);
	}
	if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) {
		close(fd);
		return 404;
	}
	e->fd = fd;
	e->br_fd = -1;
	e->br = SF_BR_UNKNOWN;
	e->body_ok = 0;
	e->kind = S_ISDIR(sb.st_mode) ? SF_DIR : SF_FILE;
	e->ino = (uint64_t)sb.st_ino;
	e->dev = (uint64_t)sb.st_dev;
	e->size = (uint64_t)sb.st_size;
	e->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	e->ctime_ns = (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec;
	{
		struct timespec now;

		/* never later than Date (RFC 9110 8.8.2.1): a file from the future
		 * would otherwise be "not modified" until that future came */
		clock_gettime(CLOCK_REALTIME_COARSE, &now);
		e->lm_s = sb.st_mtim.tv_sec < now.tv_sec ? (int64_t)sb.st_mtim.tv_sec
							 : (int64_t)now.tv_sec;
	}
	e->plan_gen = rp->generation;
	e->change_gen = atomic_load_explicit(&w->e->static_gen, memory_order_acquire);
	e->checked_ms = w->now_ms;
	e->etag_len =
		(uint8_t)snprintf(e->etag, sizeof(e->etag), "\"%llx-%llx-%llx-%llx\"",
				  (unsigned long long)e->ino, (unsigned long long)e->size,
				  (unsigned long long)e->mtime_ns, (unsigned long long)e->ctime_ns);
	syn_http_date(e->lm_s, e->lastmod);
	sf_type(rp, e, rel, n);
	return 0;
}

/* Something changed under a root, or the plan did: look at every entry held
 * again, and let go of those whose file is gone or changed (a deleted file
 * would otherwise keep its disk space until its slot was reused). */
void syn_static_sweep(struct syn_worker *w, const struct rt_plan *rp)
{
	uint64_t gen = atomic_load_explicit(&w->e->static_gen, memory_order_acquire);
	struct stat sb;
	uint32_t i;

	if (!w->files)
		return;
	w->files->swept_gen = gen;
	for (i = 0; i < SF_ENTRIES; i++) {
		struct sf_entry *e = &w->files->e[i];

		if (e->kind == SF_FREE)
			continue;
		if (e->plan_gen != rp->generation || e->statik >= rp->nstatics ||
		    fstatat(rp->statics[e->statik].root_fd, e->path, &sb, 0) || !sf_same(e, &sb)) {
			sf_drop(e);
			continue;
		}
		e->change_gen = gen;
		e->checked_ms = w->now_ms;
		if (e->br == SF_BR_NONE)
			e->br = SF_BR_UNKNOWN; /* its body may be ready now */
	}
}

/* The entry for rel (n bytes, NUL-terminated) under static root `statik`:
 * from the table when it is still the same file, else opened again.  A path
 * too long for the table uses *spare, which the caller closes.  NULL with
 * *status set when there is no file to serve. */
static struct sf_entry *sf_get(struct syn_worker *w, const struct rt_plan *rp, uint32_t statik,
			       const char *rel, size_t n, struct sf_entry *spare, int *status)
{
	const struct rt_static *st = &rp->statics[statik];
	uint64_t gen = atomic_load_explicit(&w->e->static_gen, memory_order_acquire);
	uint32_t h = sf_hash(statik, rel, n);
	struct sf_entry *e = spare;
	struct stat sb;
	int fd;

	if (gen != w->files->swept_gen)
		syn_static_sweep(w, rp);
	if (n < SF_PATH) {
		struct sf_entry *set = &w->files->e[(h & (SF_ENTRIES / SF_WAYS - 1)) * SF_WAYS];
		uint32_t i;

		e = NULL;
		for (i = 0; i < SF_WAYS && !e; i++)
			if (set[i].kind != SF_FREE && set[i].hash == h && set[i].statik == statik &&
			    set[i].plen == n && set[i].plan_gen == rp->generation &&
			    !memcmp(set[i].path, rel, n))
				e = &set[i];
		if (e) {
			e->used_ms = w->now_ms;
			if (e->change_gen == gen && w->now_ms - e->checked_ms < SF_REVALIDATE_MS)
				return e;
			if (!fstatat(st->root_fd, e->path, &sb, 0) && sf_same(e, &sb)) {
				e->change_gen = gen;
				e->checked_ms = w->now_ms;
				if (e->br == SF_BR_NONE)
					e->br = SF_BR_UNKNOWN; /* its body may be ready now */
				return e;
			}
		} else { /* a free way, else the one used least lately */
			e = &set[0];
			for (i = 0; i < SF_WAYS && e->kind != SF_FREE; i++)
				if (set[i].kind == SF_FREE || set[i].used_ms < e->used_ms)
					e = &set[i];
		}
		sf_drop(e);
		e->used_ms = w->now_ms;
	} else {
		spare->fd = spare->br_fd = -1;
		spare->kind = SF_FREE;
	}
	fd = sf_open(st, rel);
	if (fd < 0) {
		*status = sf_errno_status(-fd);
		return NULL;
	}
	e->hash = h;
	e->statik = statik;
	e->plen = (uint16_t)(e == spare ? 0 : n);
	if (e != spare)
		memcpy(e->path, rel, n + 1);
	*status = sf_fill(w, rp, e, fd, rel, n);
	if (*status) {
		e->kind = SF_FREE;
		e->fd = -1;
		return NULL;
	}
	if (e != spare && e->kind == SF_FILE && e->size <= SF_BODY) {
		/* once per file: requests copy from memory, with no read */
		char *body = w->files->body[e - w->files->e];

		e->body_ok = pread(e->fd, body, e->size, 0) == (ssize_t)e->size;
	}
	return e;
}

/* The compressed body of e, looked for under the one name it can have. */
static int sf_br(const struct rt_plan *rp, struct sf_entry *e)
{
	char name[128];
	struct stat sb;
	int fd;

	if (e->br != SF_BR_UNKNOWN)
		return e->br == SF_BR_HAVE;
	e->br = SF_BR_NONE;
	if (rp->cache_fd < 0)
		return 0;
	snprintf(name, sizeof(name), "br/%llx-%llx-%llx-%llx-%llx", (unsigned long long)e->dev,
		 (unsigned long long)e->ino, (unsigned long long)e->size,
		 (unsigned long long)e->mtime_ns, (unsigned long long)e->ctime_ns);
	fd = openat(rp->cache_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || !sb.st_size) {
		close(fd); /* an empty one is what a crash left, not a body */
		return 0;
	}
	e->br_fd = fd;
	e->br_size = (uint64_t)sb.st_size;
	e->br = SF_BR_HAVE;
	return 1;
}

/* ---- request fields ----------------------------------------------------------- */

struct sf_str {
	const char *p;
	size_t n;
};

static struct sf_str sf_known(const char *buf, const struct syn_h1_request *req, int id)
{
	const struct syn_h1_header *h;

	if (!req->h.idx[id])
		return (struct sf_str){NULL, 0};
	h = &req->h.headers[req->h.idx[id] - 1];
	return (struct sf_str){buf + h->value.off, h->value.len};
}

/* A field the parser does not index, by its lower-case name. */
static struct sf_str sf_field(const char *buf, const struct syn_h1_request *req, const char *name)
{
	size_t len = strlen(name);
	uint16_t i;

	for (i = 0; i < req->h.nheaders; i++) {
		const struct syn_h1_header *h = &req->h.headers[i];

		if (h->name.len == len && !strncasecmp(buf + h->name.off, name, len))
			return (struct sf_str){buf + h->value.off, h->value.len};
	}
	return (struct sf_str){NULL, 0};
}

static int sf_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Does an If-Match / If-None-Match list match our tag?  Weak comparison
 * drops W/ on theirs; strong comparison never matches a weak tag. */
static int sf_etag_match(struct sf_str v, const char *tag, size_t tlen, int strong)
{
	size_t i = 0;

	while (i < v.n) {
		size_t s, e;
		int weak = 0;

		while (i < v.n && (sf_ows(v.p[i]) || v.p[i] == ','))
			i++;
		s = i;
		while (i < v.n && v.p[i] != ',')
			i++;
		e = i;
		while (e > s && sf_ows(v.p[e - 1]))
			e--;
		if (e - s == 1 && v.p[s] == '*')
			return 1;
		if (e - s > 2 && v.p[s] == 'W' && v.p[s + 1] == '/') {
			weak = 1;
			s += 2;
		}
		if (e - s == tlen && !memcmp(v.p + s, tag, tlen) && !(weak && strong))
			return 1;
	}
	return 0;
}

/* Does Accept-Encoding list br with a q above 0? */
static int sf_accepts_br(struct sf_str v)
{
	size_t i = 0;

	while (i < v.n) {
		size_t s;

		while (i < v.n && (sf_ows(v.p[i]) || v.p[i] == ','))
			i++;
		s = i;
		while (i < v.n && v.p[i] != ',' && v.p[i] != ';' && !sf_ows(v.p[i]))
			i++;
		if (i - s == 2 && (v.p[s] | 0x20) == 'b' && (v.p[s + 1] | 0x20) == 'r') {
			/* q=0, q=0.0, q=0.00, q=0.000 refuse it */
			while (i < v.n && v.p[i] != ',') {
				if ((v.p[i] | 0x20) == 'q' && i + 2 < v.n && v.p[i + 1] == '=') {
					size_t k = i + 2;

					if (v.p[k] != '0')
						return 1;
					for (k++; k < v.n && (v.p[k] == '.' || v.p[k] == '0'); k++)
						;
					return k < v.n && v.p[k] >= '1' && v.p[k] <= '9';
				}
				i++;
			}
			return 1;
		}
		while (i < v.n && v.p[i] != ',')
			i++;
	}
	return 0;
}

static int sf_digits(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!n || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

/* One byte range of a file of `size` bytes.  1 with *off and *len set, 0 when
 * the field is to be ignored (malformed, or several ranges), -1 when it
 * cannot be satisfied. */
int syn_static_range(const char *p, size_t n, uint64_t size, uint64_t *off, uint64_t *len)
{
	const char *dash;
	uint64_t a, b;

	while (n && sf_ows(p[n - 1]))
		n--;
	if (n < 7 || strncasecmp(p, "bytes=", 6))
		return 0;
	p += 6;
	n -= 6;
	while (n && sf_ows(*p)) {
		p++;
		n--;
	}
	if (memchr(p, ',', n) || !(dash = memchr(p, '-', n)))
		return 0;
	if (dash == p) { /* the last N bytes */
		if (sf_digits(p + 1, n - 1, &b))
			return 0;
		if (!b || !size)
			return -1;
		*len = b < size ? b : size;
		*off = size - *len;
		return 1;
	}
	if (sf_digits(p, (size_t)(dash - p), &a))
		return 0;
	if (dash == p + n - 1) {
		b = UINT64_MAX;
	} else if (sf_digits(dash + 1, (size_t)(p + n - dash - 1), &b) || b < a) {
		return 0;
	}
	if (a >= size)
		return -1;
	if (b >= size)
		b = size - 1;
	*off = a;
	*len = b - a + 1;
	return 1;
}

/* ---- the answer ---------------------------------------------------------------- */

/* A normalized path percent-encoded for a Location field: what is not a
 * path character of RFC 3986 is escaped.  Its length, or 0 when it does not
 * fit. */
static size_t sf_encode_path(const char *p, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || strchr("/-._~!$&'()*+,;=:@", c);

		if (o + 3 > cap)
			return 0;
		if (plain && c) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

/* The status line and the fields every answer has. */
static void sf_begin(struct syn_worker *w, const struct syn_conn *c, struct outbuf *o, int status)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	if (ts.tv_sec != w->date_s) {
		w->date_s = ts.tv_sec;
		syn_http_date(ts.tv_sec, w->date);
	}
	ob_str(o, c->version ? "HTTP/1.1 " : "HTTP/1.0 ");
	ob_u64(o, (uint64_t)status);
	ob_put(o, " ", 1);
	ob_str(o, syn_reason_phrase(status));
	ob_str(o, "\r\nDate: ");
	ob_put(o, w->date, 29);
	ob_str(o, "\r\n");
}

static void sf_end(const struct syn_conn *c, struct outbuf *o)
{
	if (!c->keepalive)
		ob_str(o, "Connection: close\r\n\r\n");
	else
		ob_str(o, c->version ? "\r\n" : "Connection: keep-alive\r\n\r\n");
}

/* An answer with a short text body of our own (errors, 301). */
static int sf_plain(struct syn_worker *w, const struct syn_conn *c, int status, const char *extra,
		    struct sf_str extra_val, int vary, char *out, uint32_t cap,
		    struct syn_static_answer *a)
{
	struct outbuf o = {out, 0, cap, 0};
	char body[64];
	int blen = snprintf(body, sizeof(body), "%d %s\n", status, syn_reason_phrase(status));

	sf_begin(w, c, &o, status);
	if (extra) {
		ob_str(&o, extra);
		ob_put(&o, extra_val.p, extra_val.n);
		ob_str(&o, "\r\n");
	}
	if (vary)
		ob_str(&o, "Vary: Accept-Encoding\r\n");
	ob_str(&o, "Content-Type: text/plain\r\nContent-Length: ");
	ob_u64(&o, (uint64_t)blen);
	ob_str(&o, "\r\n");
	sf_end(c, &o);
	a->head_bytes = o.len;
	if (!c->head_req)
		ob_put(&o, body, (size_t)blen);
	if (o.overflow) { /* a Location too long for the buffer */
		o.len = 0;
		o.overflow = 0;
		status = 500;
		sf_begin(w, c, &o, status);
		ob_str(&o, "Content-Length: 0\r\nConnection: close\r\n\r\n");
		a->head_bytes = o.len;
	}
	a->len = o.len;
	return status;
}

static const struct sf_str sf_none = {NULL, 0};

/* The answer to a request on a static route.  Writes the head (and the
 * body, when small) into out, and says in *a what to send; returns the
 * status.  A body too large for out is left for the caller to splice from
 * a->fd (its own descriptor, to close), from a->off for a->left bytes. */
int syn_static_answer(struct syn_worker *w, struct syn_conn *c, const struct rt_route *route,
		      const char *buf, const struct syn_h1_request *req, char *out, uint32_t cap,
		      struct syn_static_answer *a)
{
	const struct rt_plan *rp = c->plan;
	const struct rt_static *st = &rp->statics[route->statik];
	const char *target = buf + req->target.off, *q;
	char path[SF_PATH_MAX + SYN_NAME_MAX + 2], etag[96];
	size_t plen, n, elen;
	struct sf_entry spare, *f;
	struct sf_str v, ir;
	uint64_t off = 0, len, size;
	int status, is_get = req->method == SYN_M_GET, vary, br = 0, rg = 0, fd, tries = 0;
	struct outbuf o = {out, 0, cap, 0};
	int64_t t;

	a->fd = -1;
	a->off = a->left = 0;
	a->len = a->head_bytes = 0;
	if (!is_get && req->method != SYN_M_HEAD)
		return sf_plain(w, c, 405, "Allow: ", (struct sf_str){"GET, HEAD", 9}, 0, out, cap,
				a);
	q = memchr(target, '?', req->target.len);
	plen = q ? (size_t)(q - target) : req->target.len;
again:
	status = syn_static_normalize(target, plen, path, SF_PATH_MAX, &n);
	if (!status && (n < route->len || memcmp(path, route->path, route->len)))
		status = 403; /* normalized out of the route */
	if (status)
		return sf_plain(w, c, status, NULL, sf_none, 0, out, cap, a);
	if (n == 1)
		memcpy(path, "/.", 3), n = 2;
	f = sf_get(w, rp, route->statik, path + 1, n - 1, &spare, &status);
	if (!f)
		return sf_plain(w, c, status, NULL, sf_none, 0, out, cap, a);
	if (f->kind == SF_DIR) {
		if (f == &spare)
			sf_drop(&spare);
		if (path[n - 1] != '/' && !(n == 2 && path[1] == '.')) {
			/* "/dir" -> "/dir/", the query kept; from the normalized
			 * path, encoded again: never a raw "//host" of the client's */
			char loc[SF_PATH_MAX];
			size_t k = sf_encode_path(path, n, loc, sizeof(loc) - 2);

			if (!k || (q && k + 1 + (req->target.len - plen) > sizeof(loc)))
				return sf_plain(w, c, 404, NULL, sf_none, 0, out, cap, a);
			loc[k++] = '/';
			if (q) {
				memcpy(loc + k, q, req->target.len - plen);
				k += req->target.len - plen;
			}
			return sf_plain(w, c, 301, "Location: ", (struct sf_str){loc, k}, 0, out,
					cap, a);
		}
		if (n == 2 && path[1] == '.')
			n = 1; /* the root: "/" + index */
		memcpy(path + n, st->cfg.index, st->index_len + 1);
		n += st->index_len;
		f = sf_get(w, rp, route->statik, path + 1, n - 1, &spare, &status);
		if (!f || f->kind == SF_DIR) {
			if (f == &spare)
				sf_drop(&spare);
			/* no index: no listing either */
			status = !f && status != 404 ? status : 403;
			return sf_plain(w, c, status, NULL, sf_none, 0, out, cap, a);
		}
	}

	/* which body: the compressed one when the client takes it and it is ready */
	vary = st->cfg.compress && f->compressible && f->size >= SF_BR_MIN;
	if (vary && !(is_get && req->h.idx[SYN_HDR_RANGE]) &&
	    sf_accepts_br(sf_known(buf, req, SYN_HDR_ACCEPT_ENCODING))) {
		br = sf_br(rp, f);
		w->stats->static_br[rp->sites[c->site].cfg.slot][br ? 0 : 1]++;
	}
	memcpy(etag, f->etag, f->etag_len);
	elen = f->etag_len;
	if (br) {
		memcpy(etag + elen - 1, "-br\"", 4);
		elen += 3;
	}
	size = br ? f->br_size : f->size;
	fd = br ? f->br_fd : f->fd;
	len = size;
	status = 200;

	/* preconditions, in the order of RFC 9110 13.2.2 */
	t = f->lm_s;
	if ((v = sf_field(buf, req, "if-match")).p) {
		if (!sf_etag_match(v, etag, elen, 1))
			status = 412;
	} else if ((v = sf_field(buf, req, "if-unmodified-since")).p) {
		int64_t d = syn_http_date_parse(v.p, v.n);

		if (d >= 0 && t > d)
			status = 412;
	}
	if (status == 200 && (v = sf_known(buf, req, SYN_HDR_IF_NONE_MATCH)).p) {
		if (sf_etag_match(v, etag, elen, 0))
			status = 304;
	} else if (status == 200 && (v = sf_known(buf, req, SYN_HDR_IF_MODIFIED_SINCE)).p) {
		int64_t d = syn_http_date_parse(v.p, v.n);

		if (d >= 0 && t <= d)
			status = 304;
	}
	if (status == 200 && is_get && (v = sf_known(buf, req, SYN_HDR_RANGE)).p) {
		rg = syn_static_range(v.p, v.n, size, &off, &len);
		if (rg && (ir = sf_known(buf, req, SYN_HDR_IF_RANGE)).p) {
			int64_t d = syn_http_date_parse(ir.p, ir.n);
			int ok = ir.n && ir.p[0] == '"' ? ir.n == elen && !memcmp(ir.p, etag, elen)
							: d >= 0 && d == t;

			if (!ok) {
				rg = 0; /* changed since: the whole of it */
				off = 0;
				len = size;
			}
		}
		if (rg == 1)
			status = 206;
		else if (rg < 0)
			status = 416;
	}
	if (status == 412) {
		if (f == &spare)
			sf_drop(&spare);
		return sf_plain(w, c, 412, NULL, sf_none, vary, out, cap, a);
	}

	sf_begin(w, c, &o, status);
	if (status == 416) {
		char cr[48];
		int k = snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);

		if (f == &spare)
			sf_drop(&spare);
		return sf_plain(w, c, 416, "Content-Range: ", (struct sf_str){cr, (size_t)k}, vary,
				out, cap, a);
	}
	if (status != 304) {
		ob_str(&o, "Content-Type: ");
		ob_put(&o, f->type, f->type_len);
		ob_str(&o, "\r\nContent-Length: ");
		ob_u64(&o, len);
		ob_str(&o, "\r\n");
	}
	ob_str(&o, "Last-Modified: ");
	ob_put(&o, f->lastmod, 29);
	ob_str(&o, "\r\nETag: ");
	ob_put(&o, etag, elen);
	/* ranges are served of the identity body only */
	ob_str(&o, status == 304 || br ? "\r\n" : "\r\nAccept-Ranges: bytes\r\n");
	if (vary)
		ob_str(&o, "Vary: Accept-Encoding\r\n");
	if (br)
		ob_str(&o, "Content-Encoding: br\r\n");
	if (status == 206) {
		ob_str(&o, "Content-Range: bytes ");
		ob_u64(&o, off);
		ob_put(&o, "-", 1);
		ob_u64(&o, off + len - 1);
		ob_put(&o, "/", 1);
		ob_u64(&o, size);
		ob_str(&o, "\r\n");
	}
	sf_end(c, &o);
	a->head_bytes = o.len;
	if (o.overflow) {
		if (f == &spare)
			sf_drop(&spare);
		return sf_plain(w, c, 500, NULL, sf_none, 0, out, cap, a);
	}
	if (status == 304 || c->head_req || !len) {
		a->len = o.len;
		if (f == &spare)
			sf_drop(&spare);
		return status;
	}
	if (len <= (uint64_t)(cap - o.len)) {
		/* small: beside the head, one send for both */
		uint64_t got = 0;

		if (f->body_ok && !br) {
			memcpy(out + o.len, w->files->body[f - w->files->e] + off, len);
			got = len;
		}
		while (got < len) {
			ssize_t k = pread(fd, out + o.len + got, len - got, (off_t)(off + got));

			if (k <= 0)
				break;
			got += (uint64_t)k;
		}
		if (f == &spare)
			sf_drop(&spare);
		if (got < len) { /* the file changed under us: look at it again, once */
			if (f != &spare)
				sf_drop(f);
			if (tries++ || c->head_req)
				return sf_plain(w, c, 500, NULL, sf_none, 0, out, cap, a);
			o.len = 0;
			br = rg = 0;
			goto again;
		}
		a->len = o.len + (uint32_t)len;
		return status;
	}
	/* large: the caller splices it, from a descriptor of its own */
	a->fd = f == &spare ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (f == &spare) {
		if (br)
			close(spare.fd);
		else if (spare.br_fd >= 0)
			close(spare.br_fd);
	}
	if (a->fd < 0)
		return sf_plain(w, c, 503, NULL, sf_none, 0, out, cap, a);
	a->off = off;
	a->left = len;
	a->len = o.len;
	return status;
}

/* Count a static request at its end. */
void syn_static_done(struct syn_worker *w, const struct syn_conn *c)
{
	int cls = c->status >= 100 && c->status < 600 ? c->status / 100 : 5;

	uint32_t slot;

	if (c->site == SYN_NONE)
		return;
	slot = c->plan->sites[c->site].cfg.slot;
	w->stats->static_requests[slot][cls]++;
	if (c->bytes_out > c->resp_head_bytes)
		w->stats->static_bytes[slot] += c->bytes_out - c->resp_head_bytes;
}
