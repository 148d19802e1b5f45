/* lmdbmap.h - one entry of a Postfix lmdb: table, written in-process.
 *
 * A create must not wait for a postmap process (10-30 ms each here) on the
 * path to the SMTP reply.  Postfix documents how other programs may write
 * its LMDB files (lmdb_table(5), SYNCHRONIZATION): LMDB's own locking off
 * (MDB_NOLOCK), every transaction under a whole-file fcntl(2) lock, shared
 * for reading and exclusive for writing.  Keys and values carry their
 * terminating NUL, as postmap writes them; a full map has its size
 * doubled, as Postfix does.  Callers serialise calls within the process
 * (fcntl locks do not): the engine holds its map file lock.  The fcntl
 * lock is waited for LMDBMAP_LOCK_WAIT_MS at most.
 */
#ifndef MA_LMDBMAP_H
#define MA_LMDBMAP_H

#define LMDBMAP_LOCK_WAIT_MS 1000

/* Put key -> value into the existing LMDB file path (a compiled map, e.g.
 * "/var/lib/milter-alias/aliases.lmdb"), replacing an old value; value
 * NULL deletes key (absent is fine).  Durable when it returns 0; -1 with a
 * reason (the file locked by another process too long, among others), the
 * file unchanged. */
int lmdbmap_put(const char *path, const char *key, const char *value, char **err_r);

#endif
