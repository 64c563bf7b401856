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
 * Kernel TLS: where the kernel takes the negotiated version and cipher
 * (ktls.c probes it) and the listener allows it, the record keys and
 * sequence numbers go to the kernel as soon as the handshake is over and
 * nothing is half-way (no ciphertext of ours unsent, none of the client's
 * fed but unread, no partial record): syn_tls_to_kernel().  The SSL object
 * is freed then; the connection is plaintext to the engine (c->ktls set,
 * c->tls NULL).  OpenSSL 3.0 gives the keys to a socket BIO only, and
 * only for sending in TLS 1.3, so they are derived here: TLS 1.3 from the
 * traffic secrets (the key log callback), TLS 1.2 from the master secret;
 * sequence numbers by counting records (the message callback), from the
 * last change of keys each way.
 *
 * Allocation: per plan (contexts) and per connection (the SSL object and a
 * send buffer), never per request.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
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
	uint32_t ktls; /* 0 off, 1 auto, 2 require */
};

struct syn_tls_conn {
	SSL *ssl;          /* NULL once the kernel has the keys */
	BIO *rbio, *wbio;  /* ciphertext in, ciphertext out */
	char *tx;          /* ciphertext going out now */
	uint8_t done;      /* handshake finished */
	uint8_t want_ktls; /* keys to the kernel once the handshake is over */
	uint8_t secrets;   /* TLS 1.3 traffic secrets logged: 1 << SYN_KTLS_RX | TX */
	uint8_t hdr_have;  /* of the next record's 5-byte header, fed so far */
	uint8_t hdr[5];
	uint8_t hashlen;    /* of the suite's hash */
	uint32_t body_left; /* of the current record's body, not fed yet */
	int md_nid;         /* the suite's hash */
	uint64_t seq[2];    /* records under the current keys, [SYN_KTLS_RX], [SYN_KTLS_TX] */
	uint8_t secret[2][EVP_MAX_MD_SIZE]; /* TLS 1.3: the current traffic secrets */
	struct syn_ktls_keys k;             /* what the kernel was given */
};

/* The kernel's kTLS, probed once per process: SYN_KTLS_BIT()s.  SYN_KTLS=off
 * in the environment says none (a switch for tests and for trouble). */
static uint32_t ktls_mask;
static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;

static void ktls_probe_once(void)
{
	const char *env = getenv("SYN_KTLS");

	ktls_mask = env && !strcmp(env, "off") ? 0 : syn_ktls_probe();
}

uint32_t syn_tls_ktls_mask(void)
{
	pthread_once(&ktls_once, ktls_probe_once);
	return ktls_mask;
}

/* Tests (native/tests/test_ktls.c): act as if the kernel took these. */
void syn_tls_ktls_assume(uint32_t mask)
{
	pthread_once(&ktls_once, ktls_probe_once);
	ktls_mask = mask;
}

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

/* ---- kernel TLS: keys and sequence numbers ------------------------------------- */

/* The key log callback: TLS 1.3's traffic secrets, kept for the kernel's
 * keys (and for a later key update).  Only when kTLS may be used. */
static void tls_keylog(const SSL *ssl, const char *line)
{
	struct syn_tls_conn *s = SSL_get_app_data(ssl);
	const char *p;
	size_t n = 0;
	int d;

	if (!s || !s->want_ktls)
		return;
	if (!strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24))
		d = SYN_KTLS_RX;
	else if (!strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24))
		d = SYN_KTLS_TX;
	else
		return;
	p = strchr(line + 24, ' '); /* past the client random */
	if (!p)
		return;
	for (p++; p[0] && p[1] && n < sizeof(s->secret[d]); p += 2, n++) {
		int hi = OPENSSL_hexchar2int((unsigned char)p[0]);
		int lo = OPENSSL_hexchar2int((unsigned char)p[1]);

		if (hi < 0 || lo < 0)
			return;
		s->secret[d][n] = (uint8_t)(hi << 4 | lo);
	}
	if (n == 32 || n == 48) {
		s->hashlen = (uint8_t)n;
		s->secrets |= (uint8_t)(1 << d);
	}
}

/* The message callback: counts records each way, from the last change of
 * keys.  TLS 1.2: the record after a ChangeCipherSpec is the first under
 * new keys (OpenSSL 3.0 reports a received ChangeCipherSpec by its record
 * header only).  TLS 1.3: the records after each side's Finished are under
 * application keys (the Finished's own record header is reported before
 * the message). */
static void tls_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		    SSL *ssl, void *arg)
{
	struct syn_tls_conn *s = arg;
	uint64_t *seq = &s->seq[write_p ? SYN_KTLS_TX : SYN_KTLS_RX];
	const uint8_t *b = buf;

	(void)version;
	if (content_type == SSL3_RT_HEADER) {
		if (len == 5 && b[0] == SSL3_RT_CHANGE_CIPHER_SPEC &&
		    SSL_version(ssl) != TLS1_3_VERSION)
			*seq = 0;
		else
			(*seq)++;
		return;
	}
	if (SSL_version(ssl) != TLS1_3_VERSION || content_type != SSL3_RT_HANDSHAKE || !len)
		return;
	if (b[0] == SSL3_MT_FINISHED)
		*seq = 0;
	else if (b[0] == SSL3_MT_KEY_UPDATE && s->done)
		s->want_ktls = 0; /* keys changed in user space: it stays there */
}

/* HKDF-Expand-Label(secret, label, "", olen) of TLS 1.3 (RFC 8446 7.1). */
static int tls_expand_label(int md_nid, const uint8_t *secret, size_t slen, const char *label,
			    uint8_t *out, size_t olen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	size_t ll = strlen(label), n = 0;
	uint8_t info[2 + 1 + 6 + 32 + 1];
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, rc = -1;
	OSSL_PARAM params[5];

	if (kctx && ll <= 32) {
		info[n++] = (uint8_t)(olen >> 8);
		info[n++] = (uint8_t)olen;
		info[n++] = (uint8_t)(6 + ll);
		memcpy(info + n, "tls13 ", 6);
		memcpy(info + n + 6, label, ll);
		n += 6 + ll;
		info[n++] = 0; /* no context */
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
							     (char *)OBJ_nid2sn(md_nid), 0);
		params[1] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
		params[2] =
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
		params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
		params[4] = OSSL_PARAM_construct_end();
		rc = EVP_KDF_derive(kctx, out, olen, params) == 1 ? 0 : -1;
	}
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* TLS 1.3: key and IV of direction d from its traffic secret. */
static int tls13_keys(struct syn_tls_conn *s, int d)
{
	if (tls_expand_label(s->md_nid, s->secret[d], s->hashlen, "key", s->k.key[d],
			     s->k.keylen) ||
	    tls_expand_label(s->md_nid, s->secret[d], s->hashlen, "iv", s->k.iv[d], 12))
		return -1;
	return 0;
}

/* TLS 1.2: the key block, PRF(master, "key expansion", server random +
 * client random): client key, server key, client IV, server IV. */
static int tls12_keys(struct syn_tls_conn *s)
{
	uint8_t ms[48], seed[13 + 2 * SSL3_RANDOM_SIZE], block[2 * 32 + 2 * 12];
	size_t ivlen = s->k.cipher == SYN_KTLS_CHACHA ? 12 : 4, kl = s->k.keylen;
	size_t msl = SSL_SESSION_get_master_key(SSL_get0_session(s->ssl), ms, sizeof(ms));
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4];
	int rc = -1;

	memcpy(seed, "key expansion", 13);
	if (kctx && msl == sizeof(ms) &&
	    SSL_get_server_random(s->ssl, seed + 13, SSL3_RANDOM_SIZE) == SSL3_RANDOM_SIZE &&
	    SSL_get_client_random(s->ssl, seed + 13 + SSL3_RANDOM_SIZE, SSL3_RANDOM_SIZE) ==
		    SSL3_RANDOM_SIZE) {
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
							     (char *)OBJ_nid2sn(s->md_nid), 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, ms, msl);
		params[2] =
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed));
		params[3] = OSSL_PARAM_construct_end();
		if (EVP_KDF_derive(kctx, block, 2 * kl + 2 * ivlen, params) == 1) {
			memcpy(s->k.key[SYN_KTLS_RX], block, kl);
			memcpy(s->k.key[SYN_KTLS_TX], block + kl, kl);
			memcpy(s->k.iv[SYN_KTLS_RX], block + 2 * kl, ivlen);
			memcpy(s->k.iv[SYN_KTLS_TX], block + 2 * kl + ivlen, ivlen);
			rc = 0;
		}
	}
	OPENSSL_cleanse(ms, sizeof(ms));
	OPENSSL_cleanse(block, sizeof(block));
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* The record protection of s's session, both ways, as the kernel wants it:
 * 0, or -1 when the kernel cannot take it (version, cipher, no secrets). */
static int syn_tls_ktls_keys(struct syn_tls_conn *s, uint32_t mask)
{
	const SSL_CIPHER *ci = SSL_get_current_cipher(s->ssl);
	int nid = ci ? SSL_CIPHER_get_cipher_nid(ci) : NID_undef;
	const EVP_MD *md = ci ? SSL_CIPHER_get_handshake_digest(ci) : NULL;

	memset(&s->k, 0, sizeof(s->k));
	s->k.version = (uint16_t)SSL_version(s->ssl);
	if (nid == NID_aes_128_gcm)
		s->k.cipher = SYN_KTLS_AES128;
	else if (nid == NID_aes_256_gcm)
		s->k.cipher = SYN_KTLS_AES256;
	else if (nid == NID_chacha20_poly1305)
		s->k.cipher = SYN_KTLS_CHACHA;
	else
		return -1;
	if ((s->k.version != TLS1_2_VERSION && s->k.version != TLS1_3_VERSION) || !md ||
	    !(mask & (1u << SYN_KTLS_BIT(s->k.version, s->k.cipher))))
		return -1;
	s->k.keylen = s->k.cipher == SYN_KTLS_AES128 ? 16 : 32;
	s->md_nid = EVP_MD_get_type(md);
	s->k.seq[SYN_KTLS_RX] = s->seq[SYN_KTLS_RX];
	s->k.seq[SYN_KTLS_TX] = s->seq[SYN_KTLS_TX];
	if (s->k.version == TLS1_2_VERSION)
		return tls12_keys(s);
	if (s->secrets != 3 || (size_t)EVP_MD_get_size(md) != s->hashlen)
		return -1;
	return tls13_keys(s, SYN_KTLS_RX) || tls13_keys(s, SYN_KTLS_TX) ? -1 : 0;
}

/* ktls = "require": offer only what the kernel takes. */
static int tls_ktls_ciphers(SSL_CTX *ctx, uint32_t mask)
{
	static const char *const v12[] = {"ECDHE+AESGCM+AES128", "ECDHE+AESGCM+AES256",
					  "ECDHE+CHACHA20"};
	static const char *const v13[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
					  "TLS_CHACHA20_POLY1305_SHA256"};
	char l12[128] = "", l13[128] = "";
	int c;

	for (c = 0; c < SYN_KTLS_NCIPHERS; c++) {
		if (mask & (1u << SYN_KTLS_BIT(0x0303, c)))
			snprintf(l12 + strlen(l12), sizeof(l12) - strlen(l12), "%s%s",
				 *l12 ? ":" : "", v12[c]);
		if (mask & (1u << SYN_KTLS_BIT(0x0304, c)))
			snprintf(l13 + strlen(l13), sizeof(l13) - strlen(l13), "%s%s",
				 *l13 ? ":" : "", v13[c]);
	}
	if (!*l12)
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	else if (!SSL_CTX_set_cipher_list(ctx, l12))
		return -1;
	if (!*l13)
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	else if (!SSL_CTX_set_ciphersuites(ctx, l13))
		return -1;
	return 0;
}

static int tls_ctx(struct tls_cert *c, const struct syn_plan_cert *pc, uint32_t min_version,
		   char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	uint32_t mask = pc->ktls ? syn_tls_ktls_mask() : 0;

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
	if (mask)
		SSL_CTX_set_keylog_callback(ctx, tls_keylog);
	if (pc->ktls == 2 && mask && tls_ktls_ciphers(ctx, mask))
		return tls_err(err, errlen, "kernel TLS ciphers for", pc->cert);
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
		t->ktls = pc->ktls;
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
	SSL_set_app_data(s->ssl, s);
	s->want_ktls = t->ktls && syn_tls_ktls_mask();
	if (s->want_ktls) {
		SSL_set_msg_callback(s->ssl, tls_msg);
		SSL_set_msg_callback_arg(s->ssl, s);
	}
	c->tls = s;
	return 0;
}

void syn_tls_free(struct syn_conn *c)
{
	struct syn_tls_conn *s = c->tls ? c->tls : c->ktls;

	if (!s)
		return;
	SSL_free(s->ssl); /* frees the BIOs */
	free(s->tx);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	c->tls = c->ktls = NULL;
}

/* Follow the record boundaries of what is fed: the keys may go to the
 * kernel only between two records. */
static void tls_track(struct syn_tls_conn *s, const uint8_t *p, uint32_t n)
{
	while (n) {
		if (s->body_left) {
			uint32_t k = n < s->body_left ? n : s->body_left;

			s->body_left -= k;
			p += k;
			n -= k;
			continue;
		}
		s->hdr[s->hdr_have++] = *p++;
		n--;
		if (s->hdr_have == 5) {
			s->body_left = (uint32_t)s->hdr[3] << 8 | s->hdr[4];
			s->hdr_have = 0;
		}
	}
}

int syn_tls_feed(struct syn_conn *c, const char *buf, uint32_t n)
{
	if (c->tls->want_ktls)
		tls_track(c->tls, (const uint8_t *)buf, n);
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

	if (c->ktls) { /* only a receive may be in flight, else ours would overtake */
		if (c->fd >= 0 && !c->sending && c->pending <= c->recving)
			syn_ktls_send_record(c->fd, 21, "\x01\x00", 2); /* warning, close_notify */
		return;
	}
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

/* ---- kernel TLS: the switch ------------------------------------------------------ */

/* May c's keys go to the kernel now?  The handshake is over, nothing of
 * ours waits to be sent, and everything fed has been read, up to a record
 * boundary.  (Whether a send is in flight is the engine's to check.) */
int syn_tls_ktls_ready(const struct syn_conn *c)
{
	const struct syn_tls_conn *s = c->tls;

	return s && s->done && s->want_ktls && !s->hdr_have && !s->body_left &&
	       !BIO_ctrl_pending(s->rbio) && !BIO_ctrl_pending(s->wbio) && !SSL_has_pending(s->ssl);
}

/* Give c's keys to the kernel (syn_tls_ktls_ready() said yes, nothing is
 * in flight).  1 done: c->ktls is set, c->tls NULL, the SSL object gone; 0
 * not possible: the connection stays in user space for good; -1 failed
 * half-way: close it. */
int syn_tls_to_kernel(struct syn_worker *w, struct syn_conn *c)
{
	struct syn_tls_conn *s = c->tls;
	int rc;

	s->want_ktls = 0;
	if (syn_tls_ktls_keys(s, syn_tls_ktls_mask()))
		return 0;
	rc = syn_ktls_install(c->fd, &s->k);
	OPENSSL_cleanse(s->k.key, sizeof(s->k.key));
	if (rc == -1)
		return 0;
	if (rc)
		return -1;
	w->stats->tls_ktls[c->listener_slot][SYN_KTLS_TX]++;
	w->stats->tls_ktls[c->listener_slot][SYN_KTLS_RX]++;
	/* back to the kernel's default for unsent bytes (0: the sysctl's):
	 * with sock_setup()'s 16 KiB, a kTLS socket on Debian's 6.1 takes one
	 * record and is never writable again (make test-ktls-vm shows it
	 * without synapserve: tests/ktls-vm/ktls_lowat_probe.py) */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &(int){0}, sizeof(int));
	/* the session stays good for resumption: freed unshut, OpenSSL would
	 * take it for a failed one and drop it from the cache */
	SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(s->ssl);
	s->ssl = NULL;
	s->rbio = s->wbio = NULL;
	free(s->tx);
	s->tx = NULL;
	c->ktls = s;
	c->tls = NULL;
	return 1;
}

/* TLS 1.3 KeyUpdate from the client: the next secret of its direction,
 * and of ours when it asks.  Kernels that cannot change keys on a socket
 * refuse: then nothing more can be read (0, as at the end of input). */
static int tls_key_update(struct syn_conn *c, int requested)
{
	struct syn_tls_conn *s = c->ktls;
	static const uint8_t ours[5] = {24, 0, 0, 1, 0}; /* KeyUpdate(update_not_requested) */
	int d;

	for (d = SYN_KTLS_RX; d <= (requested ? SYN_KTLS_TX : SYN_KTLS_RX); d++) {
		uint8_t next[EVP_MAX_MD_SIZE];

		if (tls_expand_label(s->md_nid, s->secret[d], s->hashlen, "traffic upd", next,
				     s->hashlen))
			return d == SYN_KTLS_RX ? 0 : -EPROTO;
		memcpy(s->secret[d], next, s->hashlen);
		OPENSSL_cleanse(next, sizeof(next));
		s->k.seq[d] = 0;
		if (d == SYN_KTLS_TX && syn_ktls_send_record(c->fd, 22, ours, sizeof(ours)))
			return -EPROTO;
		if (tls13_keys(s, d) || syn_ktls_set(c->fd, &s->k, d)) {
			OPENSSL_cleanse(s->k.key, sizeof(s->k.key));
			return d == SYN_KTLS_RX ? 0 : -EPROTO;
		}
		OPENSSL_cleanse(s->k.key, sizeof(s->k.key));
	}
	return 1;
}

/* A receive on a kernel TLS socket met a record that is not data: read
 * it and act.  1 go on receiving, 0 the client closed (close_notify), or
 * -errno. */
int syn_tls_ktls_control(struct syn_worker *w, struct syn_conn *c)
{
	uint8_t type = 0, b[64];
	int n = syn_ktls_recv_control(c->fd, &type, b, sizeof(b));

	(void)w;
	if (n < 0)
		return n;
	if (type == 21) { /* alert */
		if (n == 2 && b[1] == 0)
			return 0; /* close_notify */
		if (n == 2 && b[0] == 1 && b[1] == 90)
			return 1; /* user_canceled, a warning: its close_notify follows */
		return -ECONNRESET;
	}
	if (type == 22 && c->ktls->k.version == TLS1_3_VERSION && n == 5 && b[0] == 24 && !b[1] &&
	    !b[2] && b[3] == 1 && b[4] <= 1)
		return tls_key_update(c, b[4]);
	return -EPROTO; /* nothing else may come from a client after the handshake */
}

/* Tests: the keys c would give the kernel now, or NULL. */
const struct syn_ktls_keys *syn_tls_kernel_keys(struct syn_conn *c)
{
	return c->tls && !syn_tls_ktls_keys(c->tls, syn_tls_ktls_mask()) ? &c->tls->k : NULL;
}
