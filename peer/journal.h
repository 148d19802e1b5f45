/* journal.h - the sync daemon's durable transaction log.
 *
 * One record per line, "v=1 key=value ..." (msg.h encoding), appended
 * with O_APPEND and fsync'd before journal_append returns.  A record
 * describes one step of one transaction: prepare (with the full alias
 * record the change produces), commit or abort.  A prepare without a
 * commit record is not committed.  The journal owns only its file; what
 * the records mean is the engine's business.
 */
#ifndef MA_JOURNAL_H
#define MA_JOURNAL_H

#include <stddef.h>
#include "msg.h"

#define JOURNAL_VERSION 1

struct journal;

/* Open or create path and read back every complete record into a
 * caller-owned array (*recs_r, *n_r; free with journal_free_records).  A
 * torn last line (a crash mid-append) is cut off.  0 or -1 with a reason
 * (an unreadable record in the middle is an error: the file needs a
 * person's eyes). */
int journal_open(const char *path, struct journal **j_r, struct msg **recs_r,
		 size_t *n_r, char **err_r);
/* Append one record durably.  Thread-safe.  0 or -1 with a reason. */
int journal_append(struct journal *j, const struct msg *rec, char **err_r);
/* Atomically replace the whole journal with recs.  Thread-safe. */
int journal_rewrite(struct journal *j, const struct msg *recs, size_t n,
		    char **err_r);
/* Bytes in the journal file. */
size_t journal_size(struct journal *j);
void journal_close(struct journal **j);
void journal_free_records(struct msg *recs, size_t n);

#endif
