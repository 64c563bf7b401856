/* native/include/syn/http1-t.h - HTTP/1.1 parser types; no functions.
 *
 * Every field of a parsed message is a 16-bit offset/length span into the
 * caller's buffer: a header section is at most 64 KiB by design
 * (PRODUCT.md section 3), so nothing is copied and nothing is allocated.
 */
#ifndef SYN_HTTP1_T_H
#define SYN_HTTP1_T_H

#include <stddef.h>
#include <stdint.h>

#define SYN_PARSE_ERR      (-1)
#define SYN_PARSE_AGAIN    (-2)

#define SYN_H1_MAX_HEADERS 64    /* hard ceiling, [limits] headers */
#define SYN_H1_MAX_HEAD    65535 /* hard ceiling, [limits] header_bytes */

struct syn_span {
	uint16_t off; /* from the start of the parsed buffer */
	uint16_t len;
};

struct syn_h1_header {
	struct syn_span name;
	struct syn_span value; /* leading and trailing whitespace removed */
};

/* Methods with an enum value; anything else that is a valid token is
 * SYN_M_OTHER and keeps its spelling in method_name. */
enum syn_h1_method {
	SYN_M_OTHER = 0,
	SYN_M_GET,
	SYN_M_HEAD,
	SYN_M_POST,
	SYN_M_PUT,
	SYN_M_DELETE,
	SYN_M_CONNECT,
	SYN_M_OPTIONS,
	SYN_M_TRACE,
	SYN_M_PATCH,
	SYN_M__COUNT
};

/* Headers the parser recognises while it parses: after a parse,
 * idx[SYN_HDR_X] is 1 + the position of the first "X" line in headers[], or
 * 0 when absent, so a lookup is one array access.  The order is the ABI. */
/* clang-format off */
#define SYN_H1_KNOWN_HEADERS(X)                   \
	X(HOST, "host")                           \
	X(CONNECTION, "connection")               \
	X(CONTENT_LENGTH, "content-length")       \
	X(TRANSFER_ENCODING, "transfer-encoding") \
	X(UPGRADE, "upgrade")                     \
	X(EXPECT, "expect")                       \
	X(KEEP_ALIVE, "keep-alive")               \
	X(PROXY_CONNECTION, "proxy-connection")   \
	X(TE, "te")                               \
	X(TRAILER, "trailer")                     \
	X(X_FORWARDED_FOR, "x-forwarded-for")     \
	X(X_FORWARDED_PROTO, "x-forwarded-proto") \
	X(X_FORWARDED_HOST, "x-forwarded-host")   \
	X(FORWARDED, "forwarded")                 \
	X(ACCEPT, "accept")                       \
	X(ACCEPT_ENCODING, "accept-encoding")     \
	X(ACCEPT_LANGUAGE, "accept-language")     \
	X(USER_AGENT, "user-agent")               \
	X(COOKIE, "cookie")                       \
	X(AUTHORIZATION, "authorization")         \
	X(REFERER, "referer")                     \
	X(ORIGIN, "origin")                       \
	X(CONTENT_TYPE, "content-type")           \
	X(CONTENT_ENCODING, "content-encoding")   \
	X(CACHE_CONTROL, "cache-control")         \
	X(PRAGMA, "pragma")                       \
	X(IF_NONE_MATCH, "if-none-match")         \
	X(IF_MODIFIED_SINCE, "if-modified-since") \
	X(IF_RANGE, "if-range")                   \
	X(RANGE, "range")                         \
	X(DATE, "date")                           \
	X(SERVER, "server")                       \
	X(LOCATION, "location")                   \
	X(SET_COOKIE, "set-cookie")               \
	X(ETAG, "etag")                           \
	X(LAST_MODIFIED, "last-modified")         \
	X(VARY, "vary")                           \
	X(CONTENT_RANGE, "content-range")

enum syn_h1_hdr {
	SYN_HDR_NONE = 0, /* not a known header: never set in idx[] */
#define SYN_H1_HDR_ENUM(id, name) SYN_HDR_##id,
	SYN_H1_KNOWN_HEADERS(SYN_H1_HDR_ENUM)
#undef SYN_H1_HDR_ENUM
	SYN_HDR__COUNT
};
/* clang-format on */

/* Message flags. */
#define SYN_H1_F_LENGTH     0x0001 /* Content-Length present, in content_length */
#define SYN_H1_F_CHUNKED    0x0002 /* final transfer coding is chunked */
#define SYN_H1_F_KEEPALIVE  0x0004 /* connection persists after this message */
#define SYN_H1_F_CONN_CLOSE 0x0008 /* Connection: close seen */
#define SYN_H1_F_CONN_KA    0x0010 /* Connection: keep-alive seen */
#define SYN_H1_F_CONN_UPG   0x0020 /* Connection: upgrade seen */
#define SYN_H1_F_UPGRADE    0x0040 /* Upgrade present and named in Connection */
#define SYN_H1_F_CONTINUE   0x0080 /* Expect: 100-continue (requests) */
#define SYN_H1_F_CLOSE_BODY 0x0100 /* response body ends at close (responses) */
#define SYN_H1_F_NO_BODY    0x0200 /* 1xx, 204, 304: no body (responses) */
#define SYN_H1_F_CONN_OTHER 0x0400 /* Connection names other headers */

/* Why a message was refused.  syn_h1_err_status() maps each to the status
 * the data plane answers with (400, 431, 501 or 505). */
/* clang-format off */
#define SYN_H1_ERRORS(X)                                                     \
	X(OK, 0, "no error")                                                 \
	X(METHOD, 400, "invalid method")                                     \
	X(TARGET, 400, "invalid request target")                             \
	X(VERSION, 400, "malformed HTTP version")                            \
	X(VERSION_UNSUPPORTED, 505, "unsupported HTTP version")              \
	X(REQUEST_LINE, 400, "malformed request line")                       \
	X(STATUS_LINE, 400, "malformed status line")                         \
	X(BARE_LF, 400, "bare LF line ending")                               \
	X(BARE_CR, 400, "CR not followed by LF")                             \
	X(OBS_FOLD, 400, "obsolete line folding")                            \
	X(HEADER_NAME, 400, "invalid character in header name")              \
	X(SPACE_BEFORE_COLON, 400, "whitespace before colon")                \
	X(HEADER_VALUE, 400, "invalid character in header value")            \
	X(TOO_MANY_HEADERS, 431, "too many header fields")                   \
	X(HEAD_TOO_LARGE, 431, "header section too large")                   \
	X(CONTENT_LENGTH, 400, "invalid Content-Length")                     \
	X(CONTENT_LENGTH_CONFLICT, 400, "conflicting Content-Length values") \
	X(CL_AND_TE, 400, "both Content-Length and Transfer-Encoding")       \
	X(TE_NOT_FINAL_CHUNKED, 400, "chunked is not the final coding")      \
	X(TE_UNSUPPORTED, 501, "unsupported transfer coding")                \
	X(TE_INVALID, 400, "malformed Transfer-Encoding")                    \
	X(TE_HTTP10, 400, "Transfer-Encoding in an HTTP/1.0 message")        \
	X(HOST_MISSING, 400, "missing Host")                                 \
	X(HOST_MULTIPLE, 400, "more than one Host")                          \
	X(HOST_INVALID, 400, "invalid Host")                                 \
	X(CHUNK_SIZE, 400, "invalid chunk size")                             \
	X(CHUNK_SIZE_OVERFLOW, 400, "chunk size overflow")                   \
	X(CHUNK_EXT, 400, "invalid chunk extension")                         \
	X(CHUNK_DATA_END, 400, "chunk data not followed by CRLF")            \
	X(TRAILER, 400, "invalid trailer field")                             \
	X(TRAILER_TOO_LARGE, 431, "trailer section too large")

enum syn_h1_err {
#define SYN_H1_ERR_ENUM(id, status, text) SYN_H1_E_##id,
	SYN_H1_ERRORS(SYN_H1_ERR_ENUM)
#undef SYN_H1_ERR_ENUM
	SYN_H1_E__COUNT
};
/* clang-format on */

/* What requests and responses share: framing, persistence, header fields. */
struct syn_h1_head {
	uint64_t content_length; /* with SYN_H1_F_LENGTH */
	uint16_t flags;          /* SYN_H1_F_* */
	uint16_t head_len;       /* bytes up to and including the blank line */
	uint8_t version;         /* minor version: 0 or 1 */
	uint8_t error;           /* enum syn_h1_err, after SYN_PARSE_ERR */
	uint16_t nheaders;
	uint16_t err_off;        /* where the error was found */
	struct syn_span host;    /* value of Host (requests) */
	struct syn_span upgrade; /* value of Upgrade */
	uint8_t idx[SYN_HDR__COUNT];
	struct syn_h1_header headers[SYN_H1_MAX_HEADERS];
};

struct syn_h1_request {
	struct syn_h1_head h;
	uint8_t method; /* enum syn_h1_method */
	struct syn_span method_name;
	struct syn_span target;
};

struct syn_h1_response {
	struct syn_h1_head h;
	uint16_t status;
	struct syn_span reason;
};

/* Resumable chunked-body decoder state: all of it fits in this struct, so
 * a body may arrive in pieces of any size, one byte at a time included. */
enum syn_h1_chunk_state {
	SYN_CK_SIZE_FIRST = 0, /* expecting the first hex digit of a size */
	SYN_CK_SIZE,           /* in the hex digits */
	SYN_CK_SIZE_WS,        /* whitespace after the size (BWS before ';') */
	SYN_CK_EXT,            /* after ';': BWS, then an extension name */
	SYN_CK_EXT_NAME,       /* in an extension name */
	SYN_CK_EXT_POST_NAME,  /* BWS after a name: '=', ';' or the line end */
	SYN_CK_EXT_PRE_VAL,    /* after '=': BWS, then a token or a quoted string */
	SYN_CK_EXT_VAL,        /* in a token value */
	SYN_CK_EXT_QUOTED,     /* inside a quoted-string value */
	SYN_CK_EXT_QUOTED_ESC, /* after a backslash in a quoted string */
	SYN_CK_EXT_POST_VAL,   /* BWS after a value: ';' or the line end */
	SYN_CK_SIZE_LF,        /* CR seen, LF must follow */
	SYN_CK_DATA,           /* remaining bytes of chunk data */
	SYN_CK_DATA_CR,        /* CR after data */
	SYN_CK_DATA_LF,        /* LF after data */
	SYN_CK_TRAILER_START,  /* at the start of a trailer line */
	SYN_CK_TRAILER_NAME,   /* in a trailer field name */
	SYN_CK_TRAILER_VALUE,  /* in a trailer field value */
	SYN_CK_TRAILER_LF,     /* CR at the end of a trailer line */
	SYN_CK_END_LF,         /* CR of the final blank line */
	SYN_CK_DONE            /* the message has ended */
};

struct syn_h1_chunked {
	uint64_t remaining;  /* data bytes left in this chunk */
	uint32_t line_bytes; /* size line / trailer bytes seen, bounded */
	uint8_t state;       /* enum syn_h1_chunk_state */
	uint8_t error;       /* enum syn_h1_err, after SYN_PARSE_ERR */
	uint8_t digits;      /* hex digits of the current size */
	uint8_t last;        /* the zero-size chunk was seen */
};

#define SYN_H1_CHUNK_LINE_MAX 4096  /* size line with extensions */
#define SYN_H1_TRAILER_MAX    16384 /* whole trailer section */

#endif
