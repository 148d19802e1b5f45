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
#include "log.h"

#define JOURNAL_MAX_BYTES (64u * 1024 * 1024)

struct journal {
	char *path;
	int fd;
	size_t size;		/* bytes of whole, durable records; written
				 * under lock, read atomically */
	int dirty;		/* the file may hold more: a failed append that
				 * could not be cut off yet */
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
	size_t n = 0, cap = 0, good = 0, len = 0, line = 0;
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

		line++;
		if (nl == NULL)
			break;	/* torn tail: never acknowledged */
		if (msg_decode_line(data + off, (size_t)(nl - (data + off)), &m, &err) < 0 ||
		    msg_get_ll(&m, "v", &v) < 0 || v != JOURNAL_VERSION) {
			msg_clear(&m);
			/* One append tears at most one record: a last line
			 * holding the start of a second is a torn append with a
			 * later, acknowledged record glued on (what versions
			 * before the cut-back left), and is kept for a person. */
			if (nl + 1 == data + len &&
			    (nl == data + off ||
			     memmem(data + off + 1, (size_t)(nl - (data + off)) - 1,
				    "v=1 ", 4) == NULL)) {
				free(err);
				break;	/* the last record: torn, as above */
			}
			set_error(err_r, "%s: line %zu (byte %zu) is unreadable (%s) and "
				  "is %s: the journal is damaged, not torn by a crash; "
				  "see milter-alias-peer(8), Journal", path, line, off,
				  err ? err : "wrong version", nl + 1 == data + len ?
				  "more than one record" : "not the last record");
			free(err);
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
	/* A new journal's name must survive a crash as well as its records. */
	if (rc == 1 && fsutil_fsync_parent(path, err_r) < 0)
		goto fail;
	if (rc == 0 && good < len) {
		log_warnx(NULL, "journal %s: torn last record cut off: %zu bytes dropped "
			  "at byte %zu (line %zu): an append interrupted by a crash or "
			  "a failed write, never acknowledged", path, len - good, good,
			  line);
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

/* cut_back - drop whatever a failed append left after the last whole
 * record (caller holds j->lock); 0, or -1 with errno set (j->dirty stays
 * set and the next append tries again before it writes) */
static int
cut_back(struct journal *j)
{
	if (ftruncate(j->fd, (off_t)j->size) < 0 || fsync(j->fd) < 0) {
		j->dirty = 1;
		return -1;
	}
	j->dirty = 0;
	return 0;
}

int
journal_append(struct journal *j, const struct msg *rec, char **err_r)
{
	struct buf b = { 0 };
	int rc = 0, saved;

	encode_record(rec, &b);
	pthread_mutex_lock(&j->lock);
	if (j->dirty && cut_back(j) < 0) {
		/* Appending after the debris would glue the next record to it. */
		set_error(err_r, "journal: truncate(%s) after a failed write failed: %s",
			  j->path, strerror(errno));
		rc = -1;
	} else if (fsutil_write_all(j->fd, b.data, b.len) < 0 || fdatasync(j->fd) < 0) {
		/* Short (disk full, file size limit) or not durable: not
		 * acknowledged, so it must not be read back either. */
		saved = errno;
		if (cut_back(j) < 0)
			set_error(err_r, "journal: write(%s) failed: %s; cutting it off "
				  "failed too (%s), retried before the next append",
				  j->path, strerror(saved), strerror(errno));
		else
			set_error(err_r, "journal: write(%s) failed: %s", j->path,
				  strerror(saved));
		rc = -1;
	} else
		__atomic_store_n(&j->size, j->size + b.len, __ATOMIC_RELAXED);
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
		if ((rc = open_append(j, err_r)) == 0) {
			__atomic_store_n(&j->size, b.len, __ATOMIC_RELAXED);
			j->dirty = 0;	/* a new file: no debris */
		}
	}
	pthread_mutex_unlock(&j->lock);
	buf_free(&b);
	return rc;
}

/* Without j->lock: status and the compaction check must not wait for an
 * append's fsync (the size changes only under the lock). */
size_t
journal_size(struct journal *j)
{
	return __atomic_load_n(&j->size, __ATOMIC_RELAXED);
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
