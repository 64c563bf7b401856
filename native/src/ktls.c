/* native/src/ktls.c - kernel TLS: the socket side.
 *
 * After OpenSSL's handshake (tls.c) a connection's record keys and
 * sequence numbers go to the kernel with setsockopt(SOL_TLS, TLS_TX /
 * TLS_RX); from then on the socket takes and gives plaintext, and the
 * engine uses it as it uses a clear-text one: receives, sends, splices.
 * What the kernel does not do for us: records that are not application
 * data.  A receive meets one as EIO; recvmsg() with room for a control
 * message then reads it with its type.  Records of ours that are not data
 * (close_notify, a key update) go out with sendmsg() and the record type
 * in a control message.
 *
 * The probe installs fixed keys on a loopback pair for every version and
 * cipher we may hand over, both directions; a connection goes to the
 * kernel only with a pair the probe saw work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

union ktls_info {
	struct tls_crypto_info base;
	struct tls12_crypto_info_aes_gcm_128 g128;
	struct tls12_crypto_info_aes_gcm_256 g256;
	struct tls12_crypto_info_chacha20_poly1305 cc;
};

static void ktls_be64(unsigned char *out, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		out[i] = (unsigned char)v;
}

/* The kernel's crypto_info for direction d of k; its size. */
static socklen_t ktls_info(const struct syn_ktls_keys *k, int d, union ktls_info *ci)
{
	unsigned char seq[8];

	memset(ci, 0, sizeof(*ci));
	ci->base.version = k->version == 0x0304 ? TLS_1_3_VERSION : TLS_1_2_VERSION;
	ktls_be64(seq, k->seq[d]);
	switch (k->cipher) {
	case SYN_KTLS_AES128:
	case SYN_KTLS_AES256: {
		/* the nonce is salt (4 bytes) + 8 more: in TLS 1.3 the rest of
		 * the derived IV (the kernel XORs the sequence in), in TLS 1.2
		 * the explicit part each record carries (any unique value: the
		 * sequence number, as OpenSSL does) */
		unsigned char *salt, *iv, *key, *rec;

		if (k->cipher == SYN_KTLS_AES128) {
			ci->base.cipher_type = TLS_CIPHER_AES_GCM_128;
			salt = ci->g128.salt, iv = ci->g128.iv, key = ci->g128.key;
			rec = ci->g128.rec_seq;
		} else {
			ci->base.cipher_type = TLS_CIPHER_AES_GCM_256;
			salt = ci->g256.salt, iv = ci->g256.iv, key = ci->g256.key;
			rec = ci->g256.rec_seq;
		}
		memcpy(key, k->key[d], k->keylen);
		memcpy(salt, k->iv[d], 4);
		if (k->version == 0x0304)
			memcpy(iv, k->iv[d] + 4, 8);
		else
			memcpy(iv, seq, 8);
		memcpy(rec, seq, 8);
		return k->cipher == SYN_KTLS_AES128 ? sizeof(ci->g128) : sizeof(ci->g256);
	}
	case SYN_KTLS_CHACHA:
		ci->base.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		memcpy(ci->cc.key, k->key[d], 32);
		memcpy(ci->cc.iv, k->iv[d], 12);
		memcpy(ci->cc.rec_seq, seq, 8);
		return sizeof(ci->cc);
	}
	return 0;
}

/* Install direction d (SYN_KTLS_RX or SYN_KTLS_TX) on fd, whose ULP is
 * tls already: first keys, or new ones after a key update. */
int syn_ktls_set(int fd, const struct syn_ktls_keys *k, int d)
{
	union ktls_info ci;
	socklen_t len = ktls_info(k, d, &ci);
	int rc = len ? setsockopt(fd, SOL_TLS, d == SYN_KTLS_TX ? TLS_TX : TLS_RX, &ci, len) : -1;

	memset(&ci, 0, sizeof(ci));
	return rc ? -errno : 0;
}

/* Hand fd's records to the kernel.  0 done; -1 nothing installed (the
 * connection goes on in user space: a socket with the ULP and no keys is
 * plain TCP); -2 sending was installed and receiving failed (the
 * connection cannot go on). */
int syn_ktls_install(int fd, const struct syn_ktls_keys *k)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) && errno != EEXIST)
		return -1;
	if (syn_ktls_set(fd, k, SYN_KTLS_TX))
		return -1;
	return syn_ktls_set(fd, k, SYN_KTLS_RX) ? -2 : 0;
}

/* Which versions and ciphers the kernel takes, both ways: bit
 * SYN_KTLS_BIT(version, cipher) for each. */
uint32_t syn_ktls_probe(void)
{
	static const uint16_t versions[] = {0x0303, 0x0304};
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	uint32_t mask = 0;
	int lfd, v, c;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return 0;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 8) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len)) {
		close(lfd);
		return 0;
	}
	for (v = 0; v < 2; v++)
		for (c = 0; c < SYN_KTLS_NCIPHERS; c++) {
			struct syn_ktls_keys k = {.version = versions[v], .cipher = (uint8_t)c};
			int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), afd = -1;

			k.keylen = c == SYN_KTLS_AES128 ? 16 : 32;
			if (cfd >= 0 && !connect(cfd, (struct sockaddr *)&sa, sizeof(sa)))
				afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (afd >= 0 && !syn_ktls_install(afd, &k))
				mask |= 1u << SYN_KTLS_BIT(k.version, c);
			if (afd >= 0)
				close(afd);
			if (cfd >= 0)
				close(cfd);
			if (v == 0 && c == 0 && !mask)
				goto out; /* no ULP at all: the rest would fail alike */
		}
out:
	close(lfd);
	return mask;
}

/* The record a receive met as EIO (the kernel keeps it at the head of
 * the queue, and only we read the socket): its type, and up to cap bytes
 * of it into buf.  Its length (truncated to cap) or -errno. */
int syn_ktls_recv_control(int fd, uint8_t *type, uint8_t *buf, size_t cap)
{
	char ctl[CMSG_SPACE(sizeof(uint8_t))];
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl,
			   .msg_controllen = sizeof(ctl)};
	struct cmsghdr *cm;
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);

	if (n < 0)
		return -errno;
	cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_level != SOL_TLS || cm->cmsg_type != TLS_GET_RECORD_TYPE)
		return -EPROTO;
	*type = *CMSG_DATA(cm);
	return *type == 23 /* application_data: not what EIO meant */ ? -EPROTO : (int)n;
}

/* One record of type (not data) through the kernel, which encrypts it. */
int syn_ktls_send_record(int fd, uint8_t type, const void *p, size_t n)
{
	char ctl[CMSG_SPACE(sizeof(uint8_t))] = {0};
	struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl,
			   .msg_controllen = sizeof(ctl)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	cm->cmsg_level = SOL_TLS;
	cm->cmsg_type = TLS_SET_RECORD_TYPE;
	cm->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(cm) = type;
	return sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}
