/* tls.h - the peer link's TLS: key and certificate creation, SPKI pins,
 * mutual TLS 1.3 sessions pinned by SHA-256 SPKI, and framed records
 * (msg_frame) over them.  This is the only module that talks to GnuTLS;
 * it trusts no CA, checks no host name and no expiry: a peer is who its
 * pin says it is.  It never logs; reasons go to *err_r.  Only
 * tls_global_init exits (log_fatalx), when GnuTLS cannot start at all.
 */
#ifndef MA_TLS_H
#define MA_TLS_H

#include "msg.h"
#include "util.h"

/* Length of a pin: "sha256//" and 44 characters of base64. */
#define TLS_PIN_LEN (8 + 44)

/* Call once at program start, before any thread uses this module
 * (GnuTLS 3.7 initialises itself; this pairs the reference count and
 * exits through log_fatalx if GnuTLS cannot start, e.g. no randomness). */
void tls_global_init(void);
/* Call once at exit, after the last tls_* call. */
void tls_global_deinit(void);

/* Create an ECDSA P-256 key and a self-signed X.509 certificate for it
 * (CN = common_name, valid for 20 years, random serial) unless key_file
 * exists; if key_file exists but cert_file does not, create only the
 * certificate, from the existing key.  Both are written atomically
 * (fsutil_write_atomic): the key with mode 0600, the certificate 0644.
 * Returns 1 when something was created, 0 when both files already
 * existed (nothing is touched), -1 with a reason in *err_r. */
int tls_keygen(const char *key_file, const char *cert_file,
	       const char *common_name, char **err_r);

/* The pin of the (first) certificate in a PEM or DER file:
 * "sha256//" + base64(SHA-256(DER SubjectPublicKeyInfo)), 44 base64
 * characters with '=' padding.  Returns 0 and a caller-owned *pin_r, or
 * -1 with a reason. */
int tls_pin_of_cert_file(const char *cert_file, char **pin_r, char **err_r);

/* Our credentials (key and certificate).  Opaque; once created it is
 * only read, so threads may share one for concurrent handshakes. */
struct tls_ctx;

/* Load key_file and cert_file (PEM) and check they belong together.
 * Returns 0 and a caller-owned *ctx_r (free with tls_ctx_free), or -1
 * with a reason naming the file. */
int tls_ctx_new(const char *key_file, const char *cert_file,
		struct tls_ctx **ctx_r, char **err_r);
/* Free *ctx (NULL is fine) and set *ctx = NULL.  No session made from it
 * may still be open. */
void tls_ctx_free(struct tls_ctx **ctx);
/* Our own pin; borrowed, valid as long as ctx. */
const char *tls_ctx_pin(const struct tls_ctx *ctx);

/* One established session over a connected stream socket.  Opaque.  One
 * thread at a time: callers serialise sends and receives on a conn. */
struct tls_conn;

/* Run the TLS handshake on the connected socket fd, as server
 * (is_server = 1) or client.  TLS 1.3 only; both sides must present a
 * certificate, and the SHA-256 SPKI pin of the other side's certificate
 * must be one of pins.  The pin is checked inside the handshake, before
 * any record can be read.  Because a TLS 1.3 client finishes before the
 * server has judged the client's certificate, the server then sends one
 * confirmation frame that the client waits for here: a 0 on either side
 * means both sides accepted each other.
 * timeout_ms bounds the whole call (-1: no limit).  The fd is switched to
 * non-blocking mode.
 * Returns 0, a caller-owned *c_r and a caller-owned *pin_r (the pin the
 * other side presented; pin_r may be NULL).  Returns -1 with a reason
 * ("peer presented pin sha256//... which is not configured", "peer
 * presented no certificate", a timeout, the peer's alert ...); on failure
 * the fd is left open and in its original blocking mode (the caller
 * closes it). */
int tls_handshake(struct tls_ctx *ctx, int fd, int is_server,
		  const struct strlist *pins, int timeout_ms,
		  struct tls_conn **c_r, char **pin_r, char **err_r);

/* Send m as one frame (msg_frame), within timeout_ms (-1: no limit).
 * Returns 0, or -1 with a reason (a record over MSG_MAX_FRAME is refused
 * here).  After a failed send or receive the conn is unusable: every
 * later call fails, and the caller should tls_close it. */
int tls_send_msg(struct tls_conn *c, const struct msg *m, int timeout_ms,
		 char **err_r);
/* Receive one frame into m (cleared first), within timeout_ms (-1: no
 * limit).  Frames may span TLS records and records may hold several
 * frames; bytes after the frame stay buffered in c.  Returns 0 for a
 * frame, 1 for a clean end (close_notify) before any byte of a frame,
 * -1 with a reason for an error, a timeout, a truncated or oversized
 * frame or garbage (msg_unframe's checks). */
int tls_recv_msg(struct tls_conn *c, struct msg *m, int timeout_ms,
		 char **err_r);

/* The socket under c, for poll(2); borrowed (tls_close closes it). */
int tls_conn_fd(const struct tls_conn *c);
/* 1 if a whole frame (or an error) can be taken without reading the
 * socket, so poll(2) on the fd would wrongly say "nothing"; else 0. */
int tls_conn_pending(const struct tls_conn *c);

/* Send close_notify (best effort, at most about a second), close the fd
 * and free *c; sets *c = NULL.  NULL is fine. */
void tls_close(struct tls_conn **c);
/* Close with a reset instead (SO_LINGER 0): what the kernel has not
 * delivered yet is dropped, never sent when the link comes back.  For a
 * request given up on: a prepare the coordinator has aborted must not
 * reach the peer later.  NULL is fine. */
void tls_abort(struct tls_conn **c);

#endif
