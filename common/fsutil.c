/* fsutil.c - durable writes; see fsutil.h. */
#include "config.h"

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
	return fsutil_replace(path, mode, NULL, produce, arg, NULL, err_r);
}

int
fsutil_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
		a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* put_back - the content of the replaced file (old, still open) as path
 * again: an edit written into it while it was being replaced */
static int
put_back(int old, const char *path, mode_t mode, char **err_r)
{
	struct buf b = { 0 };
	char chunk[8192];
	off_t off = 0;
	ssize_t n;
	int rc;

	while ((n = pread(old, chunk, sizeof(chunk), off)) > 0) {
		buf_append(&b, chunk, (size_t)n);
		off += n;
	}
	if (n < 0) {
		set_error(err_r, "read(%s) failed: %s", path, strerror(errno));
		buf_free(&b);
		return -1;
	}
	rc = fsutil_write_atomic(path, b.data ? b.data : "", b.len, mode, err_r);
	buf_free(&b);
	return rc;
}

int
fsutil_replace(const char *path, mode_t mode, const struct stat *expect,
	       int (*produce)(int fd, void *arg), void *arg, struct stat *written_r,
	       char **err_r)
{
	struct stat st;
	char *tmp;
	int old = -1, rc = 1;

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
	}
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
