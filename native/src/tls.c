/* native/src/tls.c - TLS termination with OpenSSL 3, in user space.
 *
 * Contexts are made when a plan is compiled: one SSL_CTX per certificate of
 * a TLS listener, the first being the default; SNI picks among them (exact
 * names, then "*.suffix" wildcards of one label, from the certificate's DNS
 * names).  A connection's SSL object reads and writes memory BIOs: the I/O
 * engine receives ciphertext into a pool buffer and feeds it in, takes the
 * plaintext out into the connection's receive buffer, and sends what the
 * SSL object wrote (uring.c, the ur_tls_* functions).  The proxy logic sees
 * plaintext only, and never splices on a TLS connection.
 *
 * Kernel TLS is not used yet: after the handshake everything is encrypted
 * here.  Allocation: per plan (contexts) and per connection (the SSL object
 * and a send buffer), never per request.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "engine.h"

#define TLS_TX_CAP (SYN_TLS_CHUNK + 1024) /* one full record and change */

struct tls_cert {
	SSL_CTX *ctx;
	char **names; /* lower case; "*.x" kept as is */
	uint32_t nnames;
};

struct rt_tls {
	struct tls_cert *certs; /* [0] is the default */
	uint32_t ncerts;
};

struct syn_tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio; /* ciphertext in, ciphertext out */
	char *tx;         /* ciphertext going out now */
	uint8_t done;     /* handshake finished */
};

/* ---- contexts, at plan compile ------------------------------------------------- */

static int tls_name_match(const char *pattern, const char *name)
{
	const char *dot;

	if (!strcasecmp(pattern, name))
		return 1;
	if (pattern[0] != '*' || pattern[1] != '.')
		return 0;
	dot = strchr(name, '.'); /* the wildcard stands for exactly one label */
	return dot && dot != name && !strcasecmp(dot, pattern + 1);
}

static int tls_sni(SSL *ssl, int *alert, void *arg)
{
	const struct rt_tls *t = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	uint32_t i, j;
	int pass;

	(void)alert;
	if (!name)
		return SSL_TLSEXT_ERR_OK; /* the default */
	for (pass = 0; pass < 2; pass++)  /* exact names first, then wildcards */
		for (i = 0; i < t->ncerts; i++)
			for (j = 0; j < t->certs[i].nnames; j++) {
				const char *n = t->certs[i].names[j];

				if ((n[0] == '*') != pass || !tls_name_match(n, name))
					continue;
				if (i)
					SSL_set_SSL_CTX(ssl, t->certs[i].ctx);
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK; /* an unknown name gets the default */
}

static int tls_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char ours[] = "\x08http/1.1";

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours) - 1, in,
				  inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK; /* no ALPN, or not ours: go on without */
	return SSL_TLSEXT_ERR_OK;
}

static int tls_add_name(struct tls_cert *c, const char *name, size_t len)
{
	char *n, **grown;
	size_t i;

	if (!len || memchr(name, 0, len))
		return 0;
	grown = realloc(c->names, (c->nnames + 1) * sizeof(*c->names));
	if (!grown)
		return -ENOMEM;
	c->names = grown;
	n = malloc(len + 1);
	if (!n)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		n[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] | 0x20) : name[i];
	n[len] = 0;
	c->names[c->nnames++] = n;
	return 0;
}

/* The DNS names of the certificate, or its CN when it has none. */
static int tls_names(struct tls_cert *c)
{
	X509 *x = SSL_CTX_get0_certificate(c->ctx);
	GENERAL_NAMES *sans = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
	int i, rc = 0;

	for (i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !rc; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS)
			rc = tls_add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
					  (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(sans);
	if (!rc && !c->nnames && x) {
		char cn[256];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
						  sizeof(cn));

		if (n > 0)
			rc = tls_add_name(c, cn, (size_t)n);
	}
	return rc;
}

static int tls_err(char *err, size_t errlen, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, errlen, "tls: %s %s: %s", what, path, e ? buf : "failed");
	return -EINVAL;
}

static int tls_ctx(struct tls_cert *c, const struct syn_plan_cert *pc, uint32_t min_version,
		   char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return -ENOMEM;
	c->ctx = ctx;
	SSL_CTX_set_min_proto_version(ctx, (int)min_version);
	/* RELEASE_BUFFERS: an idle connection does not keep OpenSSL's record
	 * buffers; no renegotiation (a client could make us work for nothing) */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION);
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20"))
		return tls_err(err, errlen, "ciphers for", pc->cert);
	if (SSL_CTX_use_certificate_chain_file(ctx, pc->cert) != 1)
		return tls_err(err, errlen, "cannot load the certificate", pc->cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, pc->key, SSL_FILETYPE_PEM) != 1)
		return tls_err(err, errlen, "cannot load the key", pc->key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return tls_err(err, errlen, "the key does not match", pc->cert);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn, NULL);
	return tls_names(c);
}

/* The contexts of every TLS listener of the plan. */
int syn_tls_compile(struct rt_plan *rp, const struct syn_plan *p, char *err, size_t errlen)
{
	uint32_t i, slot;
	int rc;

	for (i = 0; i < p->ncerts; i++) {
		const struct syn_plan_cert *pc = &p->certs[i];
		struct rt_tls *t;
		struct tls_cert *grown;

		slot = pc->listener;
		if (!rp->tls[slot]) {
			rp->tls[slot] = calloc(1, sizeof(struct rt_tls));
			if (!rp->tls[slot])
				return -ENOMEM;
		}
		t = rp->tls[slot];
		grown = realloc(t->certs, (t->ncerts + 1) * sizeof(*t->certs));
		if (!grown)
			return -ENOMEM;
		t->certs = grown;
		memset(&t->certs[t->ncerts], 0, sizeof(*t->certs));
		rc = tls_ctx(&t->certs[t->ncerts], pc, pc->min_version, err, errlen);
		t->ncerts++;
		if (rc)
			return rc;
	}
	for (slot = 0; slot < SYN_MAX_LISTENERS; slot++) {
		struct rt_tls *t = rp->tls[slot];

		if (t && t->ncerts > 1) {
			SSL_CTX_set_tlsext_servername_callback(t->certs[0].ctx, tls_sni);
			SSL_CTX_set_tlsext_servername_arg(t->certs[0].ctx, t);
		}
	}
	return 0;
}

void syn_tls_free_plan(struct rt_plan *rp)
{
	uint32_t slot, i, j;

	for (slot = 0; slot < SYN_MAX_LISTENERS; slot++) {
		struct rt_tls *t = rp->tls[slot];

		if (!t)
			continue;
		for (i = 0; i < t->ncerts; i++) {
			SSL_CTX_free(t->certs[i].ctx); /* connections hold their own reference */
			for (j = 0; j < t->certs[i].nnames; j++)
				free(t->certs[i].names[j]);
			free(t->certs[i].names);
		}
		free(t->certs);
		free(t);
		rp->tls[slot] = NULL;
	}
}

/* ---- connections ---------------------------------------------------------------- */

int syn_tls_accept(struct syn_worker *w, struct syn_conn *c, const struct rt_tls *t)
{
	struct syn_tls_conn *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->tx = malloc(TLS_TX_CAP);
	s->ssl = SSL_new(t->certs[0].ctx);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	w->stats->heap_allocs += 2;
	if (!s->tx || !s->ssl || !s->rbio || !s->wbio) {
		BIO_free(s->rbio);
		BIO_free(s->wbio);
		SSL_free(s->ssl);
		free(s->tx);
		free(s);
		return -ENOMEM;
	}
	/* an empty memory BIO says "retry", not "end of file" */
	BIO_set_mem_eof_return(s->rbio, -1);
	BIO_set_mem_eof_return(s->wbio, -1);
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	SSL_set_accept_state(s->ssl);
	c->tls = s;
	return 0;
}

void syn_tls_free(struct syn_conn *c)
{
	struct syn_tls_conn *s = c->tls;

	if (!s)
		return;
	SSL_free(s->ssl); /* frees the BIOs */
	free(s->tx);
	free(s);
	c->tls = NULL;
}

int syn_tls_feed(struct syn_conn *c, const char *buf, uint32_t n)
{
	return BIO_write(c->tls->rbio, buf, (int)n) == (int)n ? 0 : -ENOMEM;
}

/* 1 done (now or before), 0 wants more input, -1 failed. */
int syn_tls_handshake(struct syn_worker *w, struct syn_conn *c)
{
	struct syn_tls_conn *s = c->tls;
	int r;

	if (s->done)
		return 1;
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->done = 1;
		w->stats->tls_handshakes[c->listener_slot][0]++;
		return 1;
	}
	r = SSL_get_error(s->ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE)
		return 0;
	ERR_clear_error();
	w->stats->tls_handshakes[c->listener_slot][1]++;
	return -1;
}

/* Plaintext into dst: > 0 bytes, 0 wants more input, SYN_TLS_EOF at the
 * peer's close_notify, -1 on an error. */
int syn_tls_read(struct syn_conn *c, char *dst, uint32_t room)
{
	struct syn_tls_conn *s = c->tls;
	uint32_t got = 0;
	int r = 0;

	while (got < room) {
		r = SSL_read(s->ssl, dst + got, (int)(room - got));
		if (r <= 0)
			break;
		got += (uint32_t)r;
	}
	if (got)
		return (int)got;
	r = SSL_get_error(s->ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE)
		return 0;
	ERR_clear_error();
	return r == SSL_ERROR_ZERO_RETURN ? SYN_TLS_EOF : -1;
}

/* Plaintext may be had without reading the socket. */
int syn_tls_has_input(const struct syn_conn *c)
{
	return SSL_pending(c->tls->ssl) > 0 || BIO_ctrl_pending(c->tls->rbio) > 0;
}

/* Encrypt up to SYN_TLS_CHUNK bytes; the plaintext taken, or -1. */
int syn_tls_write(struct syn_conn *c, const char *p, uint32_t n)
{
	int r;

	if (n > SYN_TLS_CHUNK)
		n = SYN_TLS_CHUNK;
	r = SSL_write(c->tls->ssl, p, (int)n);
	if (r <= 0) {
		ERR_clear_error();
		return -1;
	}
	return r;
}

/* Move ciphertext waiting in the write BIO into the send buffer; its
 * length (0 when there is none). */
uint32_t syn_tls_take(struct syn_conn *c, const char **out)
{
	struct syn_tls_conn *s = c->tls;
	int r = BIO_read(s->wbio, s->tx, TLS_TX_CAP);

	*out = s->tx;
	return r > 0 ? (uint32_t)r : 0;
}

/* We are closing (or half-closing) the connection: a close_notify first,
 * so the client can tell a response that ends at the close from one cut
 * short.  Best effort, with one non-blocking send, and only when nothing of
 * ours is still going out (it must not overtake it). */
void syn_tls_close_notify(struct syn_conn *c)
{
	struct syn_tls_conn *s = c->tls;
	const char *out;
	uint32_t n;

	if (!s || !s->done || c->tls_busy || c->fd < 0 || syn_tls_has_output(c))
		return;
	if (SSL_shutdown(s->ssl) < 0) {
		ERR_clear_error();
		return;
	}
	n = syn_tls_take(c, &out);
	if (n && send(c->fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return; /* the peer is gone or not reading: nothing to tell */
}

int syn_tls_has_output(const struct syn_conn *c)
{
	return BIO_ctrl_pending(c->tls->wbio) > 0;
}
