/* native/tests/test_ktls.c - the keys and sequence numbers tls.c would give
 * the kernel, checked without a kernel that has kTLS.
 *
 * A real OpenSSL client shakes hands with the engine's TLS connection
 * (memory BIOs, pumped here).  Then the test plays the kernel: it opens the
 * client's next records with the keys tls.c derived (receive direction)
 * and seals records of its own with them (send direction), which the
 * client must accept.  Wrong keys, a wrong IV or a sequence number off by
 * one fail the AEAD tag.  Every version and cipher we hand over, fresh and
 * resumed sessions, with the request in the client's first flight or not.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/engine.h"
#include "check.h"

static char cert_path[64], key_path[64];

static void make_cert(void)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	FILE *f;
	int fd;

	strcpy(cert_path, "/tmp/syn-ktls-cert-XXXXXX");
	strcpy(key_path, "/tmp/syn-ktls-key-XXXXXX");
	fd = mkstemp(cert_path);
	close(fd);
	fd = mkstemp(key_path);
	close(fd);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pk);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"ktls.test", -1,
				   -1, 0);
	X509_set_issuer_name(x, n);
	X509_sign(x, pk, EVP_sha256());
	f = fopen(cert_path, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pk);
}

/* ---- the test plays the kernel: one record, sealed or opened ------------------ */

static const EVP_CIPHER *aead(const struct syn_ktls_keys *k)
{
	return k->cipher == SYN_KTLS_AES128   ? EVP_aes_128_gcm()
	       : k->cipher == SYN_KTLS_AES256 ? EVP_aes_256_gcm()
					      : EVP_chacha20_poly1305();
}

/* The 12-byte nonce of record seq; TLS 1.2 AES-GCM takes the explicit
 * part from (or puts it into) the record. */
static void nonce(const struct syn_ktls_keys *k, int d, uint64_t seq, const uint8_t *expl,
		  uint8_t out[12])
{
	int i;

	if (k->version == 0x0303 && k->cipher != SYN_KTLS_CHACHA) {
		memcpy(out, k->iv[d], 4);
		memcpy(out + 4, expl, 8);
		return;
	}
	memcpy(out, k->iv[d], 12);
	for (i = 0; i < 8; i++)
		out[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
}

static void be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Seal plaintext as record seq of direction d (TLS 1.3: inner type 23).
 * Returns the record's length. */
static int seal(const struct syn_ktls_keys *k, int d, uint64_t seq, const char *pt, int ptlen,
		uint8_t *rec)
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	uint8_t iv[12], expl[8], aad[13], inner[256];
	int v13 = k->version == 0x0304, off = 5, n = 0, len, inlen = ptlen;

	memcpy(inner, pt, (size_t)ptlen);
	if (v13)
		inner[inlen++] = 23;
	be64(expl, seq);
	nonce(k, d, seq, expl, iv);
	if (!v13 && k->cipher != SYN_KTLS_CHACHA) {
		memcpy(rec + 5, expl, 8);
		off += 8;
	}
	len = off - 5 + inlen + 16;
	rec[0] = 23, rec[1] = 3, rec[2] = 3, rec[3] = (uint8_t)(len >> 8), rec[4] = (uint8_t)len;
	if (v13) {
		memcpy(aad, rec, 5);
	} else {
		be64(aad, seq);
		aad[8] = 23, aad[9] = 3, aad[10] = 3;
		aad[11] = (uint8_t)(ptlen >> 8), aad[12] = (uint8_t)ptlen;
	}
	EVP_EncryptInit_ex(x, aead(k), NULL, NULL, NULL);
	EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL);
	EVP_EncryptInit_ex(x, NULL, NULL, k->key[d], iv);
	EVP_EncryptUpdate(x, NULL, &n, aad, v13 ? 5 : 13);
	EVP_EncryptUpdate(x, rec + off, &n, inner, inlen);
	EVP_EncryptFinal_ex(x, rec + off + n, &n);
	EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, rec + off + inlen);
	EVP_CIPHER_CTX_free(x);
	return 5 + len;
}

/* Open record rec (reclen bytes) as record seq of direction d: the
 * plaintext's length, or -1 when the tag does not match. */
static int open_rec(const struct syn_ktls_keys *k, int d, uint64_t seq, const uint8_t *rec,
		    int reclen, char *pt)
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
	uint8_t iv[12], aad[13];
	int v13 = k->version == 0x0304, off = 5, n = 0, ctlen, ok;

	if (!v13 && k->cipher != SYN_KTLS_CHACHA)
		off += 8;
	ctlen = reclen - off - 16;
	if (ctlen < 0) {
		EVP_CIPHER_CTX_free(x);
		return -1;
	}
	nonce(k, d, seq, rec + 5, iv);
	if (v13) {
		memcpy(aad, rec, 5);
	} else {
		be64(aad, seq);
		aad[8] = rec[0], aad[9] = rec[1], aad[10] = rec[2];
		aad[11] = (uint8_t)(ctlen >> 8), aad[12] = (uint8_t)ctlen;
	}
	EVP_DecryptInit_ex(x, aead(k), NULL, NULL, NULL);
	EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL);
	EVP_DecryptInit_ex(x, NULL, NULL, k->key[d], iv);
	EVP_DecryptUpdate(x, NULL, &n, aad, v13 ? 5 : 13);
	EVP_DecryptUpdate(x, (uint8_t *)pt, &n, rec + off, ctlen);
	EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(rec + off + ctlen));
	ok = EVP_DecryptFinal_ex(x, (uint8_t *)pt + n, &n) == 1;
	EVP_CIPHER_CTX_free(x);
	if (!ok)
		return -1;
	if (v13) { /* strip padding and the inner type */
		while (ctlen > 0 && pt[ctlen - 1] == 0)
			ctlen--;
		ctlen--;
	}
	return ctlen;
}

/* ---- a handshake between a real client and the engine's TLS --------------------- */

struct pair {
	struct syn_worker w;
	struct syn_stats st;
	struct syn_conn c;
	SSL *cl;
	BIO *cin, *cout; /* the client's: what it reads, what it wrote */
};

/* Client bytes to the engine, engine bytes to the client. */
static void pump(struct pair *p)
{
	char buf[32768];
	const char *out;
	uint32_t n;
	int r;

	while ((r = BIO_read(p->cout, buf, sizeof(buf))) > 0)
		syn_tls_feed(&p->c, buf, (uint32_t)r);
	syn_tls_handshake(&p->w, &p->c);
	while ((n = syn_tls_take(&p->c, &out)) > 0)
		BIO_write(p->cin, out, (int)n);
}

static int shake(struct pair *p, const struct rt_tls *t, SSL_CTX *cctx, SSL_SESSION *resume)
{
	int i, r = 0;

	memset(p, 0, sizeof(*p));
	p->w.stats = &p->st;
	p->c.fd = -1;
	if (syn_tls_accept(&p->w, &p->c, t))
		return -1;
	p->cl = SSL_new(cctx);
	p->cin = BIO_new(BIO_s_mem());
	p->cout = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(p->cin, -1);
	SSL_set_bio(p->cl, p->cin, p->cout);
	SSL_set_connect_state(p->cl);
	SSL_set_tlsext_host_name(p->cl, "ktls.test");
	if (resume)
		SSL_set_session(p->cl, resume);
	for (i = 0; i < 20 && r != 1; i++) {
		r = SSL_do_handshake(p->cl);
		pump(p);
	}
	return r == 1 && syn_tls_handshake(&p->w, &p->c) == 1 ? 0 : -1;
}

static void finish(struct pair *p)
{
	/* freed unshut, OpenSSL would mark the session not resumable */
	SSL_set_shutdown(p->cl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(p->cl);
	syn_tls_free(&p->c);
}

/* Everything the client wrote, as bytes. */
static int client_out(struct pair *p, uint8_t *buf, int cap)
{
	int n = BIO_read(p->cout, buf, cap);

	return n > 0 ? n : 0;
}

static void run_case(const struct rt_tls *t, int version, const char *cipher, int resumed,
		     int early_request)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_SESSION *sess = NULL;
	struct pair p;
	const struct syn_ktls_keys *k;
	char label[96], pt[512], got[512];
	uint8_t rec[1024];
	int round, n, i;

	snprintf(label, sizeof(label), "TLS %s %s%s%s", version == TLS1_3_VERSION ? "1.3" : "1.2",
		 cipher, resumed ? " resumed" : "", early_request ? " request in flight" : "");
	SSL_CTX_set_min_proto_version(cctx, version);
	SSL_CTX_set_max_proto_version(cctx, version);
	if (version == TLS1_3_VERSION)
		SSL_CTX_set_ciphersuites(cctx, cipher);
	else
		SSL_CTX_set_cipher_list(cctx, cipher);
	for (round = 0; round <= resumed; round++) {
		CHECK(!shake(&p, t, cctx, sess), "%s: handshake (round %d)", label, round);
		/* the client takes in the tickets (TLS 1.3: after the handshake) */
		SSL_read(p.cl, got, sizeof(got));
		if (round < resumed) {
			SSL_SESSION_free(sess);
			sess = SSL_get1_session(p.cl);
			CHECK(sess && SSL_SESSION_is_resumable(sess), "%s: a session to resume",
			      label);
			finish(&p);
			continue;
		}
		CHECK(SSL_session_reused(p.cl) == resumed, "%s: session reused %d", label,
		      SSL_session_reused(p.cl));
		/* a request and a response in user space first, as when the
		 * request came with the client's Finished */
		if (early_request) {
			SSL_write(p.cl, "GET / HTTP/1.1\r\n\r\n", 18);
			pump(&p);
			n = syn_tls_read(&p.c, got, sizeof(got));
			CHECK(n == 18, "%s: the request read in user space (%d)", label, n);
			n = syn_tls_write(&p.c, "HTTP/1.1 204 No Content\r\n\r\n", 27);
			pump(&p);
			CHECK(SSL_read(p.cl, got, sizeof(got)) == 27, "%s: the response", label);
		}
		/* half a record fed: not yet */
		SSL_write(p.cl, "half", 4);
		n = client_out(&p, rec, sizeof(rec));
		syn_tls_feed(&p.c, (const char *)rec, 3);
		CHECK(!syn_tls_ktls_ready(&p.c), "%s: not ready within a record header", label);
		syn_tls_feed(&p.c, (const char *)rec + 3, (uint32_t)n - 4);
		CHECK(!syn_tls_ktls_ready(&p.c), "%s: not ready within a record body", label);
		syn_tls_feed(&p.c, (const char *)rec + n - 1, 1);
		CHECK(syn_tls_read(&p.c, got, sizeof(got)) == 4, "%s: the whole record read",
		      label);
		CHECK(syn_tls_ktls_ready(&p.c), "%s: ready once all is read", label);

		k = syn_tls_kernel_keys(&p.c);
		CHECK(k != NULL, "%s: keys for the kernel", label);
		if (!k) {
			finish(&p);
			break;
		}
		CHECK(k->version == version, "%s: version %#x", label, k->version);
		/* the kernel receives: the client's next records open with the
		 * derived keys, in sequence */
		for (i = 0; i < 3; i++) {
			n = snprintf(pt, sizeof(pt), "client record %d of %s", i, label);
			SSL_write(p.cl, pt, n);
			n = client_out(&p, rec, sizeof(rec));
			memset(got, 0, sizeof(got));
			CHECK(open_rec(k, SYN_KTLS_RX, k->seq[SYN_KTLS_RX] + (uint64_t)i, rec, n,
				       got) == (int)strlen(pt) &&
				      !memcmp(got, pt, strlen(pt)),
			      "%s: client record %d opens with the kernel's receive keys (seq "
			      "%llu)",
			      label, i, (unsigned long long)(k->seq[SYN_KTLS_RX] + (uint64_t)i));
		}
		/* the kernel sends: the client accepts our records */
		for (i = 0; i < 3; i++) {
			n = snprintf(pt, sizeof(pt), "server record %d of %s", i, label);
			n = seal(k, SYN_KTLS_TX, k->seq[SYN_KTLS_TX] + (uint64_t)i, pt, n, rec);
			BIO_write(p.cin, rec, n);
			memset(got, 0, sizeof(got));
			n = SSL_read(p.cl, got, sizeof(got));
			CHECK(n == (int)strlen(pt) && !memcmp(got, pt, strlen(pt)),
			      "%s: the client opens record %d sealed with the kernel's send keys "
			      "(%d)",
			      label, i, n);
		}
		finish(&p);
	}
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);
}

int main(void)
{
	static const char *const v12[] = {"ECDHE-ECDSA-AES128-GCM-SHA256",
					  "ECDHE-ECDSA-AES256-GCM-SHA384",
					  "ECDHE-ECDSA-CHACHA20-POLY1305"};
	static const char *const v13[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
					  "TLS_CHACHA20_POLY1305_SHA256"};
	struct syn_plan_cert pc = {.listener = 0, .min_version = 0x0303, .ktls = 1};
	struct syn_plan plan = {0};
	struct rt_plan rp = {0};
	char err[256] = "";
	int c, resumed, early;

	make_cert();
	strcpy(pc.cert, cert_path);
	strcpy(pc.key, key_path);
	plan.ncerts = 1;
	plan.certs = &pc;
	syn_tls_ktls_assume((1u << (2 * SYN_KTLS_NCIPHERS)) - 1);
	CHECK(!syn_tls_compile(&rp, &plan, err, sizeof(err)), "contexts: %s", err);
	for (c = 0; c < SYN_KTLS_NCIPHERS; c++)
		for (resumed = 0; resumed <= 1; resumed++)
			for (early = 0; early <= 1; early++) {
				run_case(rp.tls[0], TLS1_2_VERSION, v12[c], resumed, early);
				run_case(rp.tls[0], TLS1_3_VERSION, v13[c], resumed, early);
			}

	/* a cipher the kernel does not take: no keys, user space stays */
	syn_tls_ktls_assume(1u << SYN_KTLS_BIT(0x0304, SYN_KTLS_AES128));
	{
		SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
		struct pair p;

		SSL_CTX_set_ciphersuites(cctx, "TLS_CHACHA20_POLY1305_SHA256");
		CHECK(!shake(&p, rp.tls[0], cctx, NULL), "handshake with ChaCha20");
		SSL_read(p.cl, err, sizeof(err));
		CHECK(syn_tls_kernel_keys(&p.c) == NULL, "ChaCha20 not taken: no keys");
		finish(&p);
		SSL_CTX_free(cctx);
	}
	syn_tls_free_plan(&rp);
	unlink(cert_path);
	unlink(key_path);
	return check_report();
}
