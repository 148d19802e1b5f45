/* fsutil.c - durable writes; see fsutil.h. */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "util.h"

int
fsutil_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
fsutil_fsync_parent(const char *path, char **err_r)
{
	char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	int fd, rc = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(fd) < 0) {
		set_error(err_r, "fsync(%s) failed: %s", dir, strerror(errno));
		rc = -1;
	}
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

/* write_tmp - a temporary file beside path with produce's content,
 * fsync'd and closed (*st_r: as it was then): its name, or NULL with a
 * reason (nothing left) */
static char *
write_tmp(const char *path, mode_t mode, int (*produce)(int fd, void *arg), void *arg,
	  struct stat *st_r, char **err_r)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd;

	/* A leftover from a crash of this very pid is stale by definition. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		set_error(err_r, "open(%s) failed: %s", tmp, strerror(errno));
		free(tmp);
		return NULL;
	}
	/* fchmod: the umask must not narrow what Postfix needs to read. */
	if (fchmod(fd, mode) < 0 || produce(fd, arg) < 0 || fsync(fd) < 0 ||
	    (st_r != NULL && fstat(fd, st_r) < 0)) {
		set_error(err_r, "write(%s) failed: %s", tmp, strerror(errno));
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		set_error(err_r, "close(%s) failed: %s", tmp, strerror(errno));
		goto fail;
	}
	return tmp;
fail:
	unlink(tmp);
	free(tmp);
	return NULL;
}

/* rename_into - tmp over path, then the directory fsync'd; frees tmp */
static int
rename_into(char *tmp, const char *path, char **err_r)
{
	if (rename(tmp, path) < 0) {
		set_error(err_r, "rename(%s, %s) failed: %s", tmp, path, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return fsutil_fsync_parent(path, err_r);
}

int
fsutil_write_atomic_with(const char *path, mode_t mode,
			 int (*produce)(int fd, void *arg), void *arg, char **err_r)
{
	return fsutil_replace(path, mode, NULL, produce, arg, NULL, NULL, err_r);
}

int
fsutil_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
		a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* read_range - bytes [off, off+len) of fd (len -1: to its end) appended
 * to b.  0 or -1 (errno). */
static int
read_range(int fd, off_t off, off_t len, struct buf *b)
{
	char chunk[8192];
	ssize_t n;

	while (len != 0) {
		size_t want = len < 0 || len > (off_t)sizeof(chunk) ? sizeof(chunk) : (size_t)len;

		if ((n = pread(fd, chunk, want, off)) < 0)
			return -1;
		if (n == 0)
			break;
		buf_append(b, chunk, (size_t)n);
		off += n;
		if (len > 0)
			len -= n;
	}
	return 0;
}

/* hash_prefix - SHA-256 of the first len bytes of fd.  0 or -1. */
static int
hash_prefix(int fd, off_t len, unsigned char sum[32])
{
	struct buf b = { 0 };
	int rc = -1;

	if (read_range(fd, 0, len, &b) == 0 && (off_t)b.len == len &&
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, b.data ? b.data : "", b.len, sum) == 0)
		rc = 0;
	buf_free(&b);
	return rc;
}

/* put_back - the content of the replaced file (old, still open) as path
 * again: an edit written into it while it was being replaced */
static int
put_back(int old, const char *path, mode_t mode, char **err_r)
{
	struct buf b = { 0 };
	int rc;

	if (read_range(old, 0, -1, &b) < 0) {
		set_error(err_r, "read(%s) failed: %s", path, strerror(errno));
		buf_free(&b);
		return -1;
	}
	rc = fsutil_write_atomic(path, b.data ? b.data : "", b.len, mode, err_r);
	buf_free(&b);
	return rc;
}

/* keep_replaced - hand the replaced file, still open, to the caller, with
 * what it held; 0, or -1 when it cannot be looked at later (closed) */
static int
keep_replaced(int old, struct fsutil_replaced *r)
{
	r->fd = -1;
	if (fstat(old, &r->st) < 0 || hash_prefix(old, r->st.st_size, r->sum) < 0)
		return -1;
	r->fd = old;
	return 0;
}

int
fsutil_replace(const char *path, mode_t mode, const struct stat *expect,
	       int (*produce)(int fd, void *arg), void *arg, struct stat *written_r,
	       struct fsutil_replaced *old_r, char **err_r)
{
	struct stat st;
	char *tmp;
	int old = -1, rc = 1;

	if (old_r != NULL)
		old_r->fd = -1;
	/* Held open: an append that lands in it after the look below, in
	 * the instant before the rename, is still seen. */
	if (expect != NULL && (old = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno != ENOENT) {
		set_error(err_r, "open(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	if (old >= 0 && (fstat(old, &st) < 0 || !fsutil_same_file(&st, expect)))
		goto out;
	if ((tmp = write_tmp(path, mode, produce, arg, written_r, err_r)) == NULL) {
		rc = -1;
		goto out;
	}
	/* The write and its fsync take a while: look again just before. */
	if (old >= 0 && (stat(path, &st) < 0 || !fsutil_same_file(&st, expect))) {
		unlink(tmp);
		free(tmp);
		goto out;
	}
	if (rename_into(tmp, path, err_r) < 0) {
		rc = -1;
		goto out;
	}
	rc = 0;
	if (old >= 0 && fstat(old, &st) == 0 && !fsutil_same_file(&st, expect)) {
		/* Written into between the look and the rename. */
		rc = put_back(old, path, mode, err_r) < 0 ? -1 : 1;
	} else if (old >= 0 && old_r != NULL && keep_replaced(old, old_r) == 0)
		old = -1;
out:
	if (old >= 0)
		close(old);
	return rc;
}
struct bytes {
	const void *data;
	size_t len;
};

static int
write_bytes(int fd, void *arg)
{
	const struct bytes *b = arg;

	return fsutil_write_all(fd, b->data, b->len);
}

int
fsutil_write_atomic(const char *path, const void *data, size_t len,
		    mode_t mode, char **err_r)
{
	struct bytes b = { data, len };

	return fsutil_write_atomic_with(path, mode, write_bytes, &b, err_r);
}

int
fsutil_read_file(const char *path, char **data_r, size_t *len_r, size_t max,
		 char **err_r)
{
	struct buf b = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*data_r = NULL;
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		set_error(err_r, "open(%s) failed: %s", path, strerror(errno));
		return -1;
	}
	buf_append(&b, "", 0);
	for (;;) {
		char chunk[65536];
		ssize_t r = read(fd, chunk, sizeof(chunk));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			set_error(err_r, "read(%s) failed: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		if (b.len + (size_t)r > max) {
			set_error(err_r, "%s is larger than %zu bytes", path, max);
			goto fail;
		}
		buf_append(&b, chunk, (size_t)r);
	}
	close(fd);
	*data_r = b.data;
	*len_r = b.len;
	return 0;
fail:
	close(fd);
	buf_free(&b);
	return -1;
}

int
fsutil_append(const char *path, const void *data, size_t len, char **err_r)
{
	struct stat st;
	int fd, rc = -1;

	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) < 0 ||
	    fstat(fd, &st) < 0)
		set_error(err_r, "%s: %s", path, strerror(errno));
	else if (fsutil_write_all(fd, data, len) < 0 || fdatasync(fd) < 0) {
		set_error(err_r, "%s: %s", path, strerror(errno));
		if (ftruncate(fd, st.st_size) < 0)
			set_error(err_r, "%s: %s, and cannot cut the record off again",
				  path, strerror(errno));
	} else
		rc = 0;
	if (fd >= 0 && close(fd) < 0 && rc == 0) {
		set_error(err_r, "%s: %s", path, strerror(errno));
		rc = -1;
	}
	return rc;
}

int
fsutil_late_edit(struct fsutil_replaced *r, const char *path, char **err_r)
{
	unsigned char sum[32];
	struct stat st;
	struct buf tail = { 0 };
	int rc;

	if (r->fd < 0)
		return 0;
	if (fstat(r->fd, &st) < 0) {
		set_error(err_r, "fstat(%s, replaced) failed: %s", path, strerror(errno));
		return -1;
	}
	if (fsutil_same_file(&st, &r->st))
		return 0;
	/* An append leaves what was there as it was. */
	if (st.st_size > r->st.st_size && hash_prefix(r->fd, r->st.st_size, sum) == 0 &&
	    memcmp(sum, r->sum, sizeof(sum)) == 0) {
		if (read_range(r->fd, r->st.st_size, st.st_size - r->st.st_size, &tail) < 0) {
			set_error(err_r, "read(%s, replaced) failed: %s", path, strerror(errno));
			rc = -1;
		} else
			rc = fsutil_append(path, tail.data, tail.len, err_r) < 0 ? -1 : 1;
		buf_free(&tail);
		if (rc < 0)
			return -1;
	} else
		rc = 2;
	/* Looked at as it is now: the same bytes are never carried twice. */
	if (fstat(r->fd, &r->st) < 0 || hash_prefix(r->fd, r->st.st_size, r->sum) < 0)
		fsutil_replaced_close(r);
	return rc;
}

void
fsutil_replaced_close(struct fsutil_replaced *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}
