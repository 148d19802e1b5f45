/* fsutil.h - durable file primitives.
 *
 * Every file this project rewrites goes through fsutil_write_atomic: a
 * temporary file created with O_EXCL beside the target, written, fsync'd,
 * renamed over the target, then the directory fsync'd.  A reader sees the
 * old file or the new one, never a mix, and the new one survives a crash.
 */
#ifndef MA_FSUTIL_H
#define MA_FSUTIL_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* 0 on success; -1 with "write(PATH) failed: ..." in *err_r.  On failure
 * the target is untouched and the temporary file removed. */
int fsutil_write_atomic(const char *path, const void *data, size_t len,
			mode_t mode, char **err_r);
/* The same, for content too big to hold at once: produce writes it to fd
 * (fsutil_write_all) and returns 0, or -1 with errno set. */
int fsutil_write_atomic_with(const char *path, mode_t mode,
			     int (*produce)(int fd, void *arg), void *arg,
			     char **err_r);
/* A file fsutil_replace replaced, still open: a program that opened it
 * before the rename (a shell's ">>" descheduled between its open and its
 * write) can still write into it after, where nobody would read it. */
struct fsutil_replaced {
	int fd;			/* -1: none */
	struct stat st;		/* as last looked at */
	unsigned char sum[32];	/* SHA-256 of its first st.st_size bytes */
};

/* For a file others may edit (the map source): like
 * fsutil_write_atomic_with, but with expect, path is replaced only if it
 * is still the file *expect describes (fsutil_same_file, or absent),
 * looked at once more right before the rename.  An edit appended to the
 * old file in the instant between that look and the rename is caught
 * after it (the old file is held open) and its content put back as path.
 * *written_r (if not NULL): the new file as written, to compare with
 * later.  *old_r (if not NULL): on 0, the replaced file, still open,
 * for fsutil_late_edit (fd -1 if there was none).  0 replaced; 1 not
 * replaced, or put back: path was changed meanwhile and must be read
 * again; -1 error with a reason. */
int fsutil_replace(const char *path, mode_t mode, const struct stat *expect,
		   int (*produce)(int fd, void *arg), void *arg, struct stat *written_r,
		   struct fsutil_replaced *old_r, char **err_r);
/* What was written into the replaced file r since it was last looked at:
 * an append is appended to path as well (fsutil_append).  0 nothing; 1
 * appended (path changed: read it again); 2 changed otherwise, which
 * cannot be carried over; -1 error with a reason. */
int fsutil_late_edit(struct fsutil_replaced *r, const char *path, char **err_r);
void fsutil_replaced_close(struct fsutil_replaced *r);
/* Same inode, size and modification time. */
int fsutil_same_file(const struct stat *a, const struct stat *b);
/* Append data to the existing file path in one write, then fdatasync:
 * a reader and a killed writer see it whole or not at all, and a failed
 * write is cut off again.  0 or -1 with a reason. */
int fsutil_append(const char *path, const void *data, size_t len, char **err_r);
/* fsync the directory holding path.  0 or -1 with a reason. */
int fsutil_fsync_parent(const char *path, char **err_r);
/* Whole file into a caller-owned NUL-terminated buffer (*len_r without
 * the NUL).  0 ok, 1 file absent, -1 error with a reason. */
int fsutil_read_file(const char *path, char **data_r, size_t *len_r,
		     size_t max, char **err_r);
/* write(2) all of buf, retrying on EINTR/short writes.  0 or -1 (errno). */
int fsutil_write_all(int fd, const void *buf, size_t len);

#endif
