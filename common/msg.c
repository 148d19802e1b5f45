/* msg.c - key=value records and frames; see msg.h. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msg.h"

void
msg_set(struct msg *m, const char *key, const char *value)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].key, key) == 0) {
			free(m->v[i].value);
			m->v[i].value = xstrdup(value);
			return;
		}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
	}
	m->v[m->n].key = xstrdup(key);
	m->v[m->n].value = xstrdup(value);
	m->n++;
}

void
msg_setf(struct msg *m, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	msg_set(m, key, s);
	free(s);
}

void
msg_set_status(struct msg *m, const char *status, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	msg_set(m, "status", status);
	msg_set(m, "text", text);
	free(text);
}

const char *
msg_get(const struct msg *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].key, key) == 0)
			return m->v[i].value;
	return NULL;
}

const char *
msg_gets(const struct msg *m, const char *key)
{
	const char *v = msg_get(m, key);

	return v ? v : "";
}

int
msg_get_ll(const struct msg *m, const char *key, long long *out)
{
	const char *v = msg_get(m, key);
	char *end;

	if (v == NULL || *v == '\0')
		return -1;
	errno = 0;
	*out = strtoll(v, &end, 10);
	return (errno != 0 || *end != '\0') ? -1 : 0;
}

void
msg_clear(struct msg *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].value);
	}
	free(m->v);
	m->v = NULL;
	m->n = m->cap = 0;
}

static int
safe_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
		c == '@' || c == ':' || c == '/' || c == '+' || c == ',';
}

void
msg_escape(const char *s, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (safe_char(*p)) {
			buf_append(out, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			buf_append(out, e, 3);
		}
	}
}

static int
hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *
msg_unescape(const char *s, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= len)
				goto bad;
			hi = hexdigit((unsigned char)s[i + 1]);
			lo = hexdigit((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (safe_char((unsigned char)s[i])) {
			out[o++] = s[i];
		} else {
			goto bad;
		}
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

void
msg_encode_line(const struct msg *m, struct buf *out)
{
	for (size_t i = 0; i < m->n; i++) {
		if (i > 0)
			buf_append(out, " ", 1);
		buf_append(out, m->v[i].key, strlen(m->v[i].key));
		buf_append(out, "=", 1);
		msg_escape(m->v[i].value, out);
	}
}

int
msg_decode_line(const char *line, size_t len, struct msg *m, char **err_r)
{
	size_t i = 0;

	msg_clear(m);
	while (i < len) {
		size_t kstart = i, kend, vstart;
		char *key, *value;

		while (i < len && ((line[i] >= 'a' && line[i] <= 'z') ||
				   (line[i] >= '0' && line[i] <= '9') || line[i] == '_'))
			i++;
		kend = i;
		if (kend == kstart || i >= len || line[i] != '=') {
			set_error(err_r, "malformed record at byte %zu", kstart);
			goto bad;
		}
		vstart = ++i;
		while (i < len && line[i] != ' ')
			i++;
		if ((value = msg_unescape(line + vstart, i - vstart)) == NULL) {
			set_error(err_r, "malformed value at byte %zu", vstart);
			goto bad;
		}
		key = xstrndup(line + kstart, kend - kstart);
		if (msg_get(m, key) != NULL || m->n >= MSG_MAX_KEYS) {
			set_error(err_r, "duplicate key or too many keys at byte %zu", kstart);
			free(key);
			free(value);
			goto bad;
		}
		msg_set(m, key, value);
		free(key);
		free(value);
		if (i < len) {
			i++;	/* the single space between pairs */
			if (i == len) {
				set_error(err_r, "trailing space");
				goto bad;
			}
		}
	}
	return 0;
bad:
	msg_clear(m);
	return -1;
}

void
msg_frame(const struct msg *m, struct buf *out)
{
	struct buf line = { 0 };
	struct msg hdr = { 0 };
	unsigned char len[4];
	size_t n;

	msg_setf(&hdr, "v", "%d", MSG_VERSION);
	msg_encode_line(&hdr, &line);
	msg_clear(&hdr);
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->v[i].key, "v") == 0)
			continue;
		buf_append(&line, " ", 1);
		buf_append(&line, m->v[i].key, strlen(m->v[i].key));
		buf_append(&line, "=", 1);
		msg_escape(m->v[i].value, &line);
	}
	n = line.len;
	len[0] = (unsigned char)(n >> 24);
	len[1] = (unsigned char)(n >> 16);
	len[2] = (unsigned char)(n >> 8);
	len[3] = (unsigned char)n;
	buf_append(out, len, 4);
	buf_append(out, line.data, line.len);
	buf_free(&line);
}

int
msg_unframe(const char *data, size_t len, size_t *used, struct msg *m,
	    char **err_r)
{
	const unsigned char *u = (const unsigned char *)data;
	size_t n;

	if (len < 4)
		return 0;
	n = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
	if (n == 0 || n > MSG_MAX_FRAME) {
		set_error(err_r, "frame length %zu out of range", n);
		return -1;
	}
	if (len < 4 + n)
		return 0;
	if (msg_decode_line(data + 4, n, m, err_r) < 0)
		return -1;
	/* Exactly the version's digits: no "01", "+1" or " 1". */
	if (strcmp(msg_gets(m, "v"), MSG_VERSION_STR) != 0) {
		set_error(err_r, "unsupported protocol version (this end speaks %s)",
			  MSG_VERSION_STR);
		msg_clear(m);
		return -1;
	}
	*used = 4 + n;
	return 1;
}

/* wait_fd - poll for events until the deadline; 1 ready, 0 timeout, -1 error */
static int
wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int timeout = -1, rc;

		if (deadline >= 0) {
			long long left = deadline - now_mono_ms();

			if (left <= 0)
				return 0;
			timeout = (int)left;
		}
		rc = poll(&pfd, 1, timeout);
		if (rc < 0 && errno == EINTR)
			continue;
		return rc < 0 ? -1 : rc;
	}
}

int
msg_send(int fd, const struct msg *m, int timeout_ms, char **err_r)
{
	long long deadline = timeout_ms < 0 ? -1 : now_mono_ms() + timeout_ms;
	struct buf b = { 0 };
	size_t off = 0;
	int rc = -1;

	msg_frame(m, &b);
	if (b.len - 4 > MSG_MAX_FRAME) {
		/* The receiver would refuse it: fail here, where it is known. */
		set_error(err_r, "record of %zu bytes is larger than %d", b.len - 4,
			  MSG_MAX_FRAME);
		goto out;
	}
	while (off < b.len) {
		ssize_t w;

		if (wait_fd(fd, POLLOUT, deadline) <= 0) {
			set_error(err_r, "write timed out");
			goto out;
		}
		/* Never block past the deadline, never die of SIGPIPE. */
		w = send(fd, b.data + off, b.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0) {
			set_error(err_r, "write: %s", strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

int
msg_recv(int fd, struct msg *m, int timeout_ms, char **err_r)
{
	long long deadline = timeout_ms < 0 ? -1 : now_mono_ms() + timeout_ms;
	struct buf b = { 0 };
	size_t used;
	int rc;

	for (;;) {
		char chunk[4096];
		size_t want;
		ssize_t r;
		int ready;

		rc = msg_unframe(b.data, b.len, &used, m, err_r);
		if (rc == 1) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		/* Read no further than this frame: the socket may carry more. */
		if (b.len < 4)
			want = 4 - b.len;
		else {
			const unsigned char *u = (const unsigned char *)b.data;
			size_t n = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) |
				((size_t)u[2] << 8) | u[3];

			want = 4 + n - b.len;
		}
		if (want > sizeof(chunk))
			want = sizeof(chunk);
		if ((ready = wait_fd(fd, POLLIN, deadline)) <= 0) {
			set_error(err_r, ready == 0 ? "read timed out" : "poll failed");
			rc = -1;
			break;
		}
		r = read(fd, chunk, want);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0) {
			set_error(err_r, "read: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (r == 0) {
			rc = b.len == 0 ? 1 : -1;
			if (rc < 0)
				set_error(err_r, "connection closed in the middle of a frame");
			break;
		}
		buf_append(&b, chunk, (size_t)r);
	}
	buf_free(&b);
	return rc;
}
