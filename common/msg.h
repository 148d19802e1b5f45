/* msg.h - key=value records: one codec for the control socket, the peer
 * link, the journal and the map's metadata comments.
 *
 * A record is one line "k1=v1 k2=v2 ...": keys are [a-z0-9_]+, values are
 * percent-encoded outside a safe set, so a line never holds white space,
 * '=' in a value, CR, LF or NUL.  On a socket a record travels as a frame:
 * 4-byte big-endian length, then the line.  Every frame's first key is
 * "v" (MSG_VERSION); a frame with another version is refused.
 */
#ifndef MA_MSG_H
#define MA_MSG_H

#include <stddef.h>
#include "util.h"

#define MSG_VERSION 1
#define MSG_VERSION_STR "1"
#define MSG_MAX_FRAME 65536
#define MSG_MAX_KEYS 64

struct msg_kv {
	char *key;
	char *value;
};

struct msg {
	struct msg_kv *v;
	size_t n;
	size_t cap;
};

/* Set key to value (a copy), replacing an earlier value. */
void msg_set(struct msg *m, const char *key, const char *value);
void msg_setf(struct msg *m, const char *key, const char *fmt, ...) ATTR_PRINTF(3, 4);
/* Set "status" and a formatted "text": every answer's first two keys. */
void msg_set_status(struct msg *m, const char *status, const char *fmt, ...)
	ATTR_PRINTF(3, 4);
/* Borrowed value, or NULL when absent. */
const char *msg_get(const struct msg *m, const char *key);
/* Borrowed value, or "" when absent. */
const char *msg_gets(const struct msg *m, const char *key);
/* 0 and *out if key holds a decimal integer, else -1. */
int msg_get_ll(const struct msg *m, const char *key, long long *out);
void msg_clear(struct msg *m);

/* Append the record as one line (no newline) to out. */
void msg_encode_line(const struct msg *m, struct buf *out);
/* Parse one line (no newline).  0 on success, -1 with a reason. */
int msg_decode_line(const char *line, size_t len, struct msg *m, char **err_r);

/* Append a versioned frame (length + line) to out. */
void msg_frame(const struct msg *m, struct buf *out);
/* Take one frame from the front of data.  Returns 1 and sets *used when
 * a whole frame was decoded, 0 when more bytes are needed, -1 on garbage
 * (oversized, bad syntax, wrong version), with a reason. */
int msg_unframe(const char *data, size_t len, size_t *used, struct msg *m,
		char **err_r);

/* Blocking helpers for a connected stream socket, bounded by timeout_ms
 * (-1: no limit).  msg_send: 0 or -1.  msg_recv: 0 a frame, 1 clean EOF
 * before any byte, -1 error/timeout/garbage.  Reasons go to *err_r. */
int msg_send(int fd, const struct msg *m, int timeout_ms, char **err_r);
int msg_recv(int fd, struct msg *m, int timeout_ms, char **err_r);

/* Percent-encode / decode one value (helpers for the codec and tests). */
void msg_escape(const char *s, struct buf *out);
/* Returns a caller-owned string, or NULL for a malformed escape or NUL. */
char *msg_unescape(const char *s, size_t len);

#endif
