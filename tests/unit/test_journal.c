/* test_journal.c - peer/journal.c on its own: a failed append is cut off
 * again and later appends read back intact; at start-up a torn last
 * record is cut off and logged, damage before it refuses the start; a
 * new journal's directory is fsync'd.
 *
 * Linked with -Wl,--wrap=fsync,--wrap=ftruncate (tests/unit/local.mk):
 * the wrappers count the fsyncs of directories and can make the next
 * ftruncate calls fail, and otherwise do what the real calls do.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>

#include "unit.h"
#include "fsutil.h"
#include "journal.h"
#include "log.h"
#include "msg.h"
#include "util.h"

int __real_fsync(int fd);
int __real_ftruncate(int fd, off_t len);
int __wrap_fsync(int fd);
int __wrap_ftruncate(int fd, off_t len);

static int dir_fsyncs;		/* fsync calls on a directory */
static int fail_ftruncate;	/* the next this many ftruncate calls fail */

int
__wrap_fsync(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		dir_fsyncs++;
	return __real_fsync(fd);
}

int
__wrap_ftruncate(int fd, off_t len)
{
	if (fail_ftruncate > 0) {
		fail_ftruncate--;
		errno = EIO;
		return -1;
	}
	return __real_ftruncate(fd, len);
}

static char *dir, *path;

static void
setup(void)
{
	log_init("test_journal", true);
	dir = ut_mkdtemp();
	path = ut_path(dir, "journal");
	dir_fsyncs = fail_ftruncate = 0;
}

static void
teardown(void)
{
	free(path);
	ut_rmtree(&dir);
}

TestSuite(journal, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ---- */

static const char *const LINE_A = "v=1 rec=prepare txn=0123456789abcdef coord=a.test\n";
static const char *const LINE_B = "v=1 rec=commit txn=0123456789abcdef\n";

static off_t
file_size(void)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0);
	return st.st_size;
}

static void
put_file(const char *data, size_t len)
{
	cr_assert_eq(fsutil_write_atomic(path, data, len, 0600, NULL), 0);
}

static void
append_ok(struct journal *j, const char *kind, const char *txn)
{
	struct msg rec = { 0 };
	char *err = NULL;

	msg_set(&rec, "rec", kind);
	msg_set(&rec, "txn", txn);
	cr_assert_eq(journal_append(j, &rec, &err), 0, "append %s: %s", kind, err);
	msg_clear(&rec);
}

/* a prepare record of about 600 bytes, so that a small limit cuts it */
static int
append_big(struct journal *j, char **err_r)
{
	struct msg rec = { 0 };
	char note[512];
	int rc;

	memset(note, 'n', sizeof(note) - 1);
	note[sizeof(note) - 1] = '\0';
	msg_set(&rec, "rec", "prepare");
	msg_set(&rec, "txn", "fedcba9876543210");
	msg_set(&rec, "note", note);
	rc = journal_append(j, &rec, err_r);
	msg_clear(&rec);
	return rc;
}

/* the records of the journal as "kind/txn kind/txn ...", via journal_open */
static char *
read_back(char **err_r)
{
	struct journal *j = NULL;
	struct msg *recs = NULL;
	struct buf b = { 0 };
	size_t n = 0;

	if (journal_open(path, &j, &recs, &n, err_r) < 0)
		return NULL;
	buf_append(&b, "", 0);
	for (size_t i = 0; i < n; i++)
		buf_appendf(&b, "%s%s/%s", i ? " " : "", msg_gets(&recs[i], "rec"),
			    msg_gets(&recs[i], "txn"));
	cr_assert_eq((off_t)journal_size(j), file_size());
	journal_free_records(recs, n);
	journal_close(&j);
	return b.data;
}

/* read_back with stderr (the log, log_init above) captured in *log_r */
static char *
read_back_logged(char **log_r, char **err_r)
{
	char *logpath = ut_path(dir, "log"), *out;
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600), saved = dup(2);

	cr_assert_geq(fd, 0);
	cr_assert_geq(saved, 0);
	fflush(stderr);
	cr_assert_geq(dup2(fd, 2), 0);
	close(fd);
	out = read_back(err_r);
	fflush(stderr);
	cr_assert_geq(dup2(saved, 2), 0);
	close(saved);
	*log_r = ut_slurp(logpath);
	cr_assert_not_null(*log_r);
	free(logpath);
	return out;
}

static void
set_fsize_limit(rlim_t soft)
{
	struct rlimit rl;

	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert(rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)file_size() + 4096,
		  "the hard file size limit is too low for this test");
	rl.rlim_cur = soft;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* ==== a failed append ==== */

/* A short write (RLIMIT_FSIZE stands for a full disk): the part written
 * is cut off, the append fails, later appends succeed and the journal
 * reads back intact, without the failed record. */
Test(journal, short_write_is_cut_off)
{
	struct journal *j = NULL;
	struct msg *recs = NULL;
	size_t n = 0;
	off_t before;
	char *err = NULL, *got;

	cr_assert_eq(journal_open(path, &j, &recs, &n, &err), 0, "%s", err);
	cr_assert_eq(n, 0);
	append_ok(j, "prepare", "1111111111111111");
	before = file_size();

	signal(SIGXFSZ, SIG_IGN);
	set_fsize_limit((rlim_t)before + 100);
	cr_assert_eq(append_big(j, &err), -1, "the append past the limit must fail");
	cr_assert_not_null(strstr(err, path), "%s", err);
	free(err);
	err = NULL;
	cr_assert_eq(file_size(), before, "the short write was left in the file "
		     "(%lld bytes instead of %lld)", (long long)file_size(), (long long)before);
	cr_assert_eq((off_t)journal_size(j), before);

	/* space again: the mail keeps coming */
	set_fsize_limit(RLIM_INFINITY);
	append_ok(j, "commit", "1111111111111111");
	append_ok(j, "prepare", "2222222222222222");
	cr_assert_eq((off_t)journal_size(j), file_size());
	journal_close(&j);

	got = read_back(&err);
	cr_assert_not_null(got, "the journal no longer opens: %s", err);
	cr_assert_str_eq(got, "prepare/1111111111111111 commit/1111111111111111 "
			 "prepare/2222222222222222");
	free(got);
}

/* The cut itself fails: the append still fails, and so does every next
 * one until the debris is gone, rather than glue a record to it. */
Test(journal, failed_cut_is_retried_before_the_next_append)
{
	struct journal *j = NULL;
	struct msg *recs = NULL;
	size_t n = 0;
	off_t before;
	char *err = NULL, *got;

	cr_assert_eq(journal_open(path, &j, &recs, &n, &err), 0, "%s", err);
	append_ok(j, "prepare", "1111111111111111");
	before = file_size();

	signal(SIGXFSZ, SIG_IGN);
	set_fsize_limit((rlim_t)before + 100);
	fail_ftruncate = 2;
	cr_assert_eq(append_big(j, &err), -1);
	cr_assert_not_null(strstr(err, "cutting it off failed too"), "%s", err);
	free(err);
	err = NULL;
	cr_assert_eq(file_size(), before + 100, "the debris (nothing cut it yet)");
	set_fsize_limit(RLIM_INFINITY);

	/* the second forced failure: the next append is refused untouched */
	cr_assert_eq(append_big(j, &err), -1, "appended after the debris");
	cr_assert_not_null(strstr(err, "truncate"), "%s", err);
	free(err);
	err = NULL;
	cr_assert_eq(file_size(), before + 100);

	/* the cut works again: debris gone, then the record */
	append_ok(j, "commit", "1111111111111111");
	journal_close(&j);
	got = read_back(&err);
	cr_assert_not_null(got, "%s", err);
	cr_assert_str_eq(got, "prepare/1111111111111111 commit/1111111111111111");
	free(got);
}

/* ==== start-up ==== */

Test(journal, torn_tail_without_newline_is_cut_and_logged)
{
	struct buf b = { 0 };
	char *got, *log = NULL, *err = NULL, *want;

	buf_appendf(&b, "%s%sv=1 rec=prepare txn=2222", LINE_A, LINE_B);	/* 24 torn */
	put_file(b.data, b.len);
	got = read_back_logged(&log, &err);
	cr_assert_not_null(got, "%s", err);
	cr_assert_str_eq(got, "prepare/0123456789abcdef commit/0123456789abcdef");
	cr_assert_eq((size_t)file_size(), strlen(LINE_A) + strlen(LINE_B));
	want = xasprintf("journal %s: torn last record cut off: 24 bytes dropped", path);
	cr_assert_not_null(strstr(log, want), "no log line naming the file and the "
			   "bytes dropped; the log was: \"%s\"", log);
	free(want);
	free(log);
	free(got);
	buf_free(&b);
}

/* A last line that ends in a newline but does not read back (a crash
 * that persisted the size and the newline but not every block before
 * it): never acknowledged either, cut off. */
Test(journal, torn_last_line_unreadable_is_cut)
{
	struct buf b = { 0 };
	char *got, *log = NULL, *err = NULL, *want;

	buf_appendf(&b, "%s%s", LINE_A, LINE_B);
	buf_append(&b, "v=1 rec=com\0\0\0\0\0\0\0\0\n", 20);
	put_file(b.data, b.len);
	got = read_back_logged(&log, &err);
	cr_assert_not_null(got, "start-up refused over a torn last record: %s", err);
	cr_assert_str_eq(got, "prepare/0123456789abcdef commit/0123456789abcdef");
	cr_assert_eq((size_t)file_size(), strlen(LINE_A) + strlen(LINE_B));
	want = xasprintf("journal %s: torn last record cut off: 20 bytes dropped", path);
	cr_assert_not_null(strstr(log, want), "the log was: \"%s\"", log);
	free(want);
	free(log);
	free(got);
	buf_free(&b);
}

/* An unreadable record before the last is damage, not a tear: refused,
 * naming the file and the line; the file is left alone. */
Test(journal, damage_in_the_middle_refuses_naming_the_line)
{
	struct buf b = { 0 };
	char *got, *err = NULL, *want, *after;

	buf_appendf(&b, "%sv=1 rec=commit t xn=0\n%s", LINE_A, LINE_B);
	put_file(b.data, b.len);
	got = read_back(&err);
	cr_assert_null(got, "damage before the last record was accepted");
	want = xasprintf("%s: line 2 ", path);
	cr_assert_not_null(strstr(err, want), "the reason must name the file and "
			   "line 2: \"%s\"", err);
	after = ut_slurp(path);
	cr_assert_str_eq(after, b.data, "the damaged journal must be left alone");
	free(after);
	free(want);
	free(err);
	buf_free(&b);
}

/* What a torn append with a later record glued on (the old behaviour)
 * looks like: the last line holds an acknowledged record, so it is not
 * cut off. */
Test(journal, glued_last_line_refuses)
{
	struct buf b = { 0 };
	char *got, *err = NULL, *want;

	buf_appendf(&b, "%sv=1 rec=prepare txn=22v=1 rec=commit txn=0123456789abcdef\n",
		    LINE_A);
	put_file(b.data, b.len);
	got = read_back(&err);
	cr_assert_null(got, "a glued acknowledged record was cut off");
	want = xasprintf("%s: line 2 ", path);
	cr_assert_not_null(strstr(err, want), "\"%s\"", err);
	cr_assert_eq((size_t)file_size(), b.len);
	free(want);
	free(err);
	buf_free(&b);
}

/* ==== the directory ==== */

Test(journal, creation_fsyncs_the_directory)
{
	struct journal *j = NULL;
	struct msg *recs = NULL, rec = { 0 };
	size_t n = 0;
	char *err = NULL;

	cr_assert_eq(journal_open(path, &j, &recs, &n, &err), 0, "%s", err);
	cr_assert_geq(dir_fsyncs, 1, "the new journal's directory entry was not fsync'd");
	journal_close(&j);

	/* reopening an existing journal needs none */
	dir_fsyncs = 0;
	cr_assert_eq(journal_open(path, &j, &recs, &n, &err), 0, "%s", err);
	cr_assert_eq(dir_fsyncs, 0);

	/* compaction's rename is followed by one */
	journal_marker(&rec, JOURNAL_COMMIT, "0123456789abcdef");
	cr_assert_eq(journal_rewrite(j, &rec, 1, &err), 0, "%s", err);
	cr_assert_geq(dir_fsyncs, 1, "compaction's rename was not made durable");
	msg_clear(&rec);
	journal_close(&j);
}
