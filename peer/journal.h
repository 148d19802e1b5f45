/* journal.h - the sync daemon's durable transaction log.
 *
 * One record per line, "v=1 key=value ..." (msg.h encoding), appended
 * with O_APPEND and fsync'd before journal_append returns.  Every record
 * has "rec" (its kind, below) and "txn" (the transaction id).  The kinds:
 *
 *   prepare    the change, in full: coord (the deciding node), id (the
 *              request id), verb, before_state and the alias record the
 *              change produces (address, target, owner, state, ...).
 *              Written by the coordinator before it asks for votes, and
 *              by a participant before it votes yes.
 *   commit     the decision to commit.  The coordinator's is THE
 *              decision; a participant writes it when it learns it.
 *   abort      the decision to abort, likewise.  A prepare without a
 *              commit record is not committed.
 *   done       coordinator: every peer has acknowledged the decision;
 *              the transaction may be forgotten.  Lost, it only means the
 *              decision is delivered once more.
 *   confirmed  the confirmation mail of a new alias was queued here.
 *              Lost, it only means one more confirmation after a crash.
 *
 * Compaction rewrites the file with the live transactions only (their
 * prepare and, when decided, commit or abort record).  The journal owns
 * only its file; what the records mean is commit.c's business.
 *
 * Torn appends.  A record counts (commit.c acts on it, a peer or a client
 * is told) only once journal_append has returned 0, that is after the
 * whole line was written and fdatasync'd; appends are serialised, so at
 * most the last record can be in flight at any moment.  Hence:
 *   - an append that fails (a short write: disk full, RLIMIT_FSIZE; or a
 *     failed fdatasync) is cut off again at once (ftruncate to the length
 *     before it, fsync) and reported, and the request is answered 4xx.
 *     Should the cut fail too, the next append retries it first and fails
 *     rather than glue a record to the debris.
 *   - at start-up, a last record without its newline, or whose line does
 *     not read back, is what a crash or a failed write left mid-append:
 *     it was never acknowledged, so it is cut off (logged with the file,
 *     the bytes dropped and where) and nothing acknowledged is lost.  An
 *     unreadable record before the last one is no torn append: start-up
 *     is refused, naming the file and the line.
 * The journal's directory entry is fsync'd when the file is created (and
 * fsutil_write_atomic fsyncs it after compaction's rename).
 */
#ifndef MA_JOURNAL_H
#define MA_JOURNAL_H

#include <stddef.h>
#include "msg.h"

#define JOURNAL_VERSION 1

struct journal;

enum journal_kind {
	JOURNAL_PREPARE,
	JOURNAL_COMMIT,
	JOURNAL_ABORT,
	JOURNAL_DONE,
	JOURNAL_CONFIRMED,
};

/* "prepare", "commit", ...; the kind of a record read back, or -1 for a
 * record of no known kind. */
const char *journal_kind_name(enum journal_kind kind);
int journal_kind_of(const struct msg *rec);
/* The record of a kind that carries only the transaction id (commit,
 * abort, done, confirmed): the one way such a record is written. */
void journal_marker(struct msg *rec, enum journal_kind kind, const char *txn);

/* Open or create path and read back every complete record into a
 * caller-owned array (*recs_r, *n_r; free with journal_free_records).  A
 * torn last record (above) is cut off.  0 or -1 with a reason (an
 * unreadable record before the last is an error naming the line: the
 * file needs a person's eyes). */
int journal_open(const char *path, struct journal **j_r, struct msg **recs_r,
		 size_t *n_r, char **err_r);
/* Append one record durably.  Thread-safe.  0: written and fdatasync'd;
 * -1 with a reason: the file is as before (cut back, see above). */
int journal_append(struct journal *j, const struct msg *rec, char **err_r);
/* Atomically replace the whole journal with recs.  Thread-safe. */
int journal_rewrite(struct journal *j, const struct msg *recs, size_t n,
		    char **err_r);
/* Bytes in the journal file. */
size_t journal_size(struct journal *j);
void journal_close(struct journal **j);
void journal_free_records(struct msg *recs, size_t n);

#endif
