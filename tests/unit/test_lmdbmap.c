/* test_lmdbmap.c - unit tests for peer/lmdbmap.c against Postfix's own
 * tools: what it writes, postmap -q must read; the map grows when full;
 * failures leave the file alone.  Skips itself without postmap and the
 * lmdb map type (postfix, postfix-lmdb). */
#include "config.h"

#include <stdio.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "unit.h"
#include "lmdbmap.h"
#include "util.h"

static char *dir;

static void
setup(void)
{
	dir = ut_mkdtemp();
}

static void
teardown(void)
{
	ut_rmtree(&dir);
}

TestSuite(lmdbmap, .init = setup, .fini = teardown, .timeout = 60);

/* make_map - a postmap-built lmdb: map "m" in dir with the given source
 * text, under a main.cf of our own (lmdb_map_size as given); returns the
 * .lmdb path */
static char *
make_map(const char *source, long map_size)
{
	char *path = NULL, *extra = NULL;

	cr_assert_geq(asprintf(&extra, "lmdb_map_size = %ld\n", map_size), 0);
	ut_postfix_conf(dir, extra);
	free(extra);
	if (access("/usr/sbin/postmap", X_OK) != 0 ||
	    ut_run(NULL, 0, "postconf -c %s -m 2>/dev/null | grep -qx lmdb", dir) != 0)
		cr_skip_test("postmap or the lmdb map type (postfix-lmdb) is missing");
	cr_assert_eq(ut_run(NULL, 0, "printf '%%s' '%s' > %s/m && postmap -c %s lmdb:%s/m",
			source, dir, dir, dir), 0, "postmap could not build the map");
	cr_assert_geq(asprintf(&path, "%s/m.lmdb", dir), 0);
	return path;
}

/* q - postmap -q key; the value, or "" when absent (exit 1) */
static int
q(const char *key, char *out, size_t outsz)
{
	return ut_run(out, outsz, "postmap -c %s -q '%s' lmdb:%s/m", dir, key, dir);
}

Test(lmdbmap, put_replace_delete_as_postmap_reads_them)
{
	char *path = make_map("old@example.org t@example.net\n", 16L << 20), *err = NULL;
	char out[256];

	cr_assert_eq(lmdbmap_put(path, "new@example.org", "alice@example.net", &err), 0, "%s", err);
	cr_assert_eq(q("new@example.org", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "alice@example.net");
	cr_assert_eq(q("NEW@Example.org", out, sizeof(out)), 0, "postmap folds the key");
	cr_assert_eq(lmdbmap_put(path, "new@example.org", "bob@example.net", &err), 0, "%s", err);
	cr_assert_eq(q("new@example.org", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "bob@example.net", "a put replaces");
	cr_assert_eq(q("old@example.org", out, sizeof(out)), 0, "postmap's own entry stays");
	cr_assert_str_eq(out, "t@example.net");
	cr_assert_eq(lmdbmap_put(path, "new@example.org", NULL, &err), 0, "%s", err);
	cr_assert_eq(q("new@example.org", out, sizeof(out)), 1, "deleted, yet found: %s", out);
	cr_assert_eq(lmdbmap_put(path, "never@example.org", NULL, &err), 0,
		     "deleting an absent key is no error: %s", err);
	/* postmap -i still works on the file afterwards */
	cr_assert_eq(ut_run(NULL, 0, "echo 'x@example.org y@example.net' | postmap -c %s -i lmdb:%s/m",
			dir, dir), 0);
	cr_assert_eq(q("x@example.org", out, sizeof(out)), 0);
	free(path);
}

/* raw_get - the value stored under key exactly (NUL included), read with
 * LMDB itself, or NULL: postmap -q finds keys with or without the NUL,
 * but a Postfix daemon that found one with it stops trying without */
static char *
raw_get(const char *path, const char *key)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key) + 1, (void *)key }, v;
	char *value = NULL;

	cr_assert_eq(mdb_env_create(&env), 0);
	cr_assert_eq(mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY, 0), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	if (mdb_get(txn, dbi, &k, &v) == 0) {
		cr_assert_gt(v.mv_size, 0);
		cr_assert_eq(((char *)v.mv_data)[v.mv_size - 1], '\0', "value without its NUL");
		value = strdup(v.mv_data);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return value;
}

Test(lmdbmap, keys_and_values_carry_their_nul_like_postmaps)
{
	char *path = make_map("old@example.org t@example.net\n", 16L << 20), *err = NULL, *v;

	v = raw_get(path, "old@example.org");
	cr_assert_not_null(v, "postmap itself does not store the NUL: the premise is wrong");
	free(v);
	cr_assert_eq(lmdbmap_put(path, "new@example.org", "alice@example.net", &err), 0, "%s", err);
	v = raw_get(path, "new@example.org");
	cr_assert_not_null(v, "key stored without its NUL");
	cr_assert_str_eq(v, "alice@example.net");
	free(v);
	free(path);
}

Test(lmdbmap, access_values_with_blanks)
{
	char *path = make_map("", 16L << 20), *err = NULL;
	char out[256];

	cr_assert_eq(lmdbmap_put(path, "gone@example.org",
				 "550 5.1.1 This alias was deleted by its owner", &err), 0, "%s", err);
	cr_assert_eq(q("gone@example.org", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "550 5.1.1 This alias was deleted by its owner");
	free(path);
}

/* A map too small for what is put into it is doubled, as Postfix does. */
Test(lmdbmap, full_map_grows)
{
	char *path = make_map("", 64L * 1024), *err = NULL, value[1001], key[64], out[1100];

	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (int i = 0; i < 400; i++) {	/* ~400 KB into a 64 KB map */
		snprintf(key, sizeof(key), "k%03d@example.org", i);
		cr_assert_eq(lmdbmap_put(path, key, value, &err), 0, "put %d: %s", i, err);
	}
	cr_assert_eq(q("k399@example.org", out, sizeof(out)), 0);
	cr_assert_str_eq(out, value);
	cr_assert_eq(q("k000@example.org", out, sizeof(out)), 0);
	free(path);
}

Test(lmdbmap, missing_map_is_an_error_and_not_created)
{
	char *path = NULL, *err = NULL;
	struct stat st;

	cr_assert_geq(asprintf(&path, "%s/absent.lmdb", dir), 0);
	cr_assert_eq(lmdbmap_put(path, "a@example.org", "b@example.net", &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "absent.lmdb"), "%s", err);
	cr_assert_neq(stat(path, &st), 0, "the map was created");
	free(err);
	free(path);
}

Test(lmdbmap, not_an_lmdb_file_is_an_error_and_unchanged)
{
	char *path, *err = NULL, *before, *after;

	path = ut_write(dir, "junk.lmdb", "this is not an LMDB database, only some text\n");
	before = ut_slurp(path);
	cr_assert_eq(lmdbmap_put(path, "a@example.org", "b@example.net", &err), -1);
	cr_assert_not_null(err);
	after = ut_slurp(path);
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
	free(err);
	free(path);
}

/* a process keeping the map locked makes a put fail within a bound, the
 * file unchanged; never an endless wait on the commit path */
Test(lmdbmap, lock_wait_is_bounded)
{
	char *path = make_map("old@example.org t@example.net\n", 16L << 20), *err = NULL;
	struct ut_locker l = ut_lock_file(path);
	long long start = now_mono_ms(), took;
	char out[256];
	int rc;

	rc = lmdbmap_put(path, "new@example.org", "alice@example.net", &err);
	took = now_mono_ms() - start;
	ut_unlock_file(&l);
	cr_assert_lt(rc, 0, "put while locked by another process");
	cr_assert_not_null(strstr(err, "locked by another process"), "%s", err);
	cr_assert_lt(took, 5000, "waited %lld ms", took);
	cr_assert_eq(q("new@example.org", out, sizeof(out)), 1, "written anyway: %s", out);
	free(err);
	err = NULL;
	/* once free, it works */
	cr_assert_eq(lmdbmap_put(path, "new@example.org", "alice@example.net", &err), 0, "%s", err);
	free(path);
}
