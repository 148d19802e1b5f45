/* journal.c - append-only, fsync'd transaction log; see journal.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "journal.h"

#define JOURNAL_MAX_BYTES (64u * 1024 * 1024)

struct journal {
	char *path;
	int fd;
	size_t size;
	pthread_mutex_t lock;
};

/* encode_record - "v=1 ..." + newline */
static void
encode_record(const struct msg *rec, struct buf *out)
{
	struct msg copy = { 0 };

	msg_setf(&copy, "v", "%d", JOURNAL_VERSION);
	for (size_t i = 0; i < rec->n; i++)
		if (strcmp(rec->v[i].key, "v") != 0)
			msg_set(&copy, rec->v[i].key, rec->v[i].value);
	msg_encode_line(&copy, out);
	buf_append(out, "\n", 1);
	msg_clear(&copy);
}

static int
open_append(struct journal *j, char **err_r)
{
	j->fd = open(j->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		set_error(err_r, "open(%s) failed: %s", j->path, strerror(errno));
		return -1;
	}
	return 0;
}

int
journal_open(const char *path, struct journal **j_r, struct msg **recs_r,
	     size_t *n_r, char **err_r)
{
	struct journal *j;
	struct msg *recs = NULL;
	size_t n = 0, cap = 0, good = 0, len = 0;
	char *data = NULL, *err = NULL;
	int rc;

	*j_r = NULL;
	rc = fsutil_read_file(path, &data, &len, JOURNAL_MAX_BYTES, err_r);
	if (rc < 0)
		return -1;
	for (size_t off = 0; rc == 0 && off < len; ) {
		char *nl = memchr(data + off, '\n', len - off);
		struct msg m = { 0 };
		long long v;

		if (nl == NULL)
			break;	/* torn tail: never acknowledged */
		if (msg_decode_line(data + off, (size_t)(nl - (data + off)), &m, &err) < 0 ||
		    msg_get_ll(&m, "v", &v) < 0 || v != JOURNAL_VERSION) {
			set_error(err_r, "%s: record at byte %zu is unreadable (%s); "
				  "move the file aside after checking it", path, off,
				  err ? err : "wrong version");
			free(err);
			msg_clear(&m);
			journal_free_records(recs, n);
			free(data);
			return -1;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			recs = xrealloc(recs, cap * sizeof(*recs));
		}
		recs[n++] = m;
		off = (size_t)(nl - data) + 1;
		good = off;
	}
	free(data);

	j = xcalloc(1, sizeof(*j));
	j->path = xstrdup(path);
	pthread_mutex_init(&j->lock, NULL);
	if (open_append(j, err_r) < 0)
		goto fail;
	if (rc == 0 && good < len) {
		if (ftruncate(j->fd, (off_t)good) < 0 || fsync(j->fd) < 0) {
			set_error(err_r, "truncate(%s) failed: %s", path, strerror(errno));
			goto fail;
		}
	}
	j->size = good;
	*j_r = j;
	*recs_r = recs;
	*n_r = n;
	return 0;
fail:
	journal_free_records(recs, n);
	journal_close(&j);
	return -1;
}

int
journal_append(struct journal *j, const struct msg *rec, char **err_r)
{
	struct buf b = { 0 };
	int rc = 0;

	encode_record(rec, &b);
	pthread_mutex_lock(&j->lock);
	if (fsutil_write_all(j->fd, b.data, b.len) < 0 || fdatasync(j->fd) < 0) {
		set_error(err_r, "journal: write(%s) failed: %s", j->path, strerror(errno));
		rc = -1;
	} else
		j->size += b.len;
	pthread_mutex_unlock(&j->lock);
	buf_free(&b);
	return rc;
}

int
journal_rewrite(struct journal *j, const struct msg *recs, size_t n, char **err_r)
{
	struct buf b = { 0 };
	int rc;

	for (size_t i = 0; i < n; i++)
		encode_record(&recs[i], &b);
	pthread_mutex_lock(&j->lock);
	rc = fsutil_write_atomic(j->path, b.data ? b.data : "", b.len, 0600, err_r);
	if (rc == 0) {
		close(j->fd);
		if ((rc = open_append(j, err_r)) == 0)
			j->size = b.len;
	}
	pthread_mutex_unlock(&j->lock);
	buf_free(&b);
	return rc;
}

size_t
journal_size(struct journal *j)
{
	size_t n;

	pthread_mutex_lock(&j->lock);
	n = j->size;
	pthread_mutex_unlock(&j->lock);
	return n;
}

void
journal_close(struct journal **jp)
{
	struct journal *j = *jp;

	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	pthread_mutex_destroy(&j->lock);
	free(j->path);
	free(j);
	*jp = NULL;
}

void
journal_free_records(struct msg *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		msg_clear(&recs[i]);
	free(recs);
}

static const char *const kind_names[] = {
	[JOURNAL_PREPARE] = "prepare",
	[JOURNAL_COMMIT] = "commit",
	[JOURNAL_ABORT] = "abort",
	[JOURNAL_DONE] = "done",
	[JOURNAL_CONFIRMED] = "confirmed",
};

const char *
journal_kind_name(enum journal_kind kind)
{
	return kind_names[kind];
}

int
journal_kind_of(const struct msg *rec)
{
	const char *name = msg_gets(rec, "rec");

	for (size_t i = 0; i < N_ELEMENTS(kind_names); i++)
		if (strcmp(name, kind_names[i]) == 0)
			return (int)i;
	return -1;
}

void
journal_marker(struct msg *rec, enum journal_kind kind, const char *txn)
{
	msg_clear(rec);
	msg_set(rec, "rec", kind_names[kind]);
	msg_set(rec, "txn", txn);
}
