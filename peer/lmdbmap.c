/* lmdbmap.c - write one entry of a Postfix lmdb: table; see lmdbmap.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdbmap.h"
#include "util.h"

#define MAX_GROWTH 8	/* doublings per call before giving up */

/* lock - the whole file, as Postfix's readers and postmap expect; never
 * waits longer than LMDBMAP_LOCK_WAIT_MS (ETIMEDOUT): a reader or postmap
 * that keeps the file locked must not hold up the commit path */
static int
lock(int fd, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
	long long end = now_mono_ms() + LMDBMAP_LOCK_WAIT_MS;
	useconds_t pause = 1000;

	while (fcntl(fd, F_SETLK, &fl) < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != EACCES)
			return -1;
		if (now_mono_ms() >= end) {
			errno = ETIMEDOUT;
			return -1;
		}
		usleep(pause);
		if (pause < 20000)
			pause *= 2;
	}
	return 0;
}

/* write_once - one write transaction; an MDB_* or errno code */
static int
write_once(MDB_env *env, const char *key, const char *value)
{
	MDB_val k = { strlen(key) + 1, (void *)key };
	MDB_val v = { value ? strlen(value) + 1 : 0, (void *)value };
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) == 0) {
		rc = value ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL);
		if (rc == MDB_NOTFOUND && value == NULL)
			rc = 0;		/* already as wanted */
	}
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);	/* and syncs: no MDB_NOSYNC */
}

int
lmdbmap_put(const char *path, const char *key, const char *value, char **err_r)
{
	MDB_env *env = NULL;
	MDB_envinfo info;
	struct stat st;
	int fd, rc;

	/* Only an existing map: creating one is postmap's job. */
	if (stat(path, &st) < 0) {
		set_error(err_r, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* No mapsize of our own: LMDB takes the one the file records. */
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK, 0644)) != 0)
		goto fail;
	/* The env's own descriptor: closing any other one of this process
	 * on the file would drop the fcntl lock. */
	if ((rc = mdb_env_get_fd(env, &fd)) != 0)
		goto fail;
	if (lock(fd, F_WRLCK) < 0) {
		if (errno == ETIMEDOUT)
			set_error(err_r, "%s: locked by another process for more than %d ms",
				  path, LMDBMAP_LOCK_WAIT_MS);
		else
			set_error(err_r, "%s: lock: %s", path, strerror(errno));
		mdb_env_close(env);
		return -1;
	}
	for (int grow = 0; ; grow++) {
		rc = write_once(env, key, value);
		if (rc != MDB_MAP_FULL || grow == MAX_GROWTH)
			break;
		/* As Postfix does: double the size and try again. */
		if ((rc = mdb_env_info(env, &info)) != 0 ||
		    (rc = mdb_env_set_mapsize(env, info.me_mapsize * 2)) != 0)
			break;
	}
	(void)lock(fd, F_UNLCK);
	if (rc != 0)
		goto fail;
	mdb_env_close(env);
	return 0;
fail:
	set_error(err_r, "%s: %s %s: %s", path, value ? "put" : "delete", key,
		  mdb_strerror(rc));
	if (env != NULL)
		mdb_env_close(env);
	return -1;
}
