/* test_fsutil.c - unit tests for common/fsutil.c: atomic writes (temp,
 * fsync, rename), fsync of the parent directory, read_file and write_all. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include "unit.h"
#include "fsutil.h"
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

TestSuite(fsutil, .init = setup, .fini = teardown);

static mode_t
mode_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s", path);
	return st.st_mode & 07777;
}

/* ===== fsutil_write_atomic ===== */

Test(fsutil, write_creates_file)
{
	char *path = ut_path(dir, "map"), *err = NULL, *got;

	cr_assert_eq(fsutil_write_atomic(path, "hello\n", 6, 0644, &err), 0, "%s", err);
	cr_assert_null(err);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "hello\n");
	cr_assert_eq(ut_count_entries(dir), 1, "a temporary file was left behind");
	free(got);
	free(path);
}

Test(fsutil, write_replaces_file_by_rename)
{
	char *path = ut_path(dir, "map"), *got;
	struct stat before, after;
	char old[16] = { 0 };
	int fd;

	cr_assert_eq(fsutil_write_atomic(path, "old contents", 12, 0644, NULL), 0);
	cr_assert_eq(stat(path, &before), 0);
	/* A reader holding the old file keeps seeing the old file. */
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fsutil_write_atomic(path, "new", 3, 0644, NULL), 0);
	cr_assert_eq(stat(path, &after), 0);
	cr_assert_neq(before.st_ino, after.st_ino, "replaced in place, not renamed over");
	cr_assert_eq(read(fd, old, sizeof(old) - 1), 12);
	cr_assert_str_eq(old, "old contents");
	close(fd);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "new", "no leftover bytes of the longer old file");
	cr_assert_eq(ut_count_entries(dir), 1);
	free(got);
	free(path);
}

Test(fsutil, write_mode_ignores_umask)
{
	char *a = ut_path(dir, "a"), *b = ut_path(dir, "b");

	umask(077);
	cr_assert_eq(fsutil_write_atomic(a, "x", 1, 0644, NULL), 0);
	cr_assert_eq(mode_of(a), 0644, "mode %o", mode_of(a));
	umask(0);
	cr_assert_eq(fsutil_write_atomic(b, "x", 1, 0600, NULL), 0);
	cr_assert_eq(mode_of(b), 0600, "mode %o", mode_of(b));
	/* Rewriting changes the mode too. */
	cr_assert_eq(fsutil_write_atomic(b, "y", 1, 0640, NULL), 0);
	cr_assert_eq(mode_of(b), 0640);
	umask(022);
	free(a);
	free(b);
}

Test(fsutil, write_empty_and_binary)
{
	char *path = ut_path(dir, "bin"), *data = NULL;
	static const char bin[] = { 'a', '\0', '\n', (char)0xff, '\0' };
	size_t len = 99;

	cr_assert_eq(fsutil_write_atomic(path, "", 0, 0644, NULL), 0);
	cr_assert_eq(fsutil_read_file(path, &data, &len, 100, NULL), 0);
	cr_assert_eq(len, 0);
	free(data);
	cr_assert_eq(fsutil_write_atomic(path, bin, sizeof(bin), 0644, NULL), 0);
	cr_assert_eq(fsutil_read_file(path, &data, &len, 100, NULL), 0);
	cr_assert_eq(len, sizeof(bin));
	cr_assert_eq(memcmp(data, bin, sizeof(bin)), 0);
	free(data);
	free(path);
}

Test(fsutil, write_large)
{
	size_t n = 5 * 1024 * 1024 + 17;
	char *path = ut_path(dir, "large"), *buf = xmalloc(n), *data = NULL;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + i % 23);
	cr_assert_eq(fsutil_write_atomic(path, buf, n, 0644, NULL), 0);
	cr_assert_eq(fsutil_read_file(path, &data, &len, n, NULL), 0);
	cr_assert_eq(len, n);
	cr_assert_eq(memcmp(data, buf, n), 0);
	free(buf);
	free(data);
	free(path);
}

Test(fsutil, write_into_missing_directory_fails)
{
	char *path = ut_path(dir, "no/such/dir/map"), *err = NULL;

	cr_assert_eq(fsutil_write_atomic(path, "x", 1, 0644, &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, path), "the error names the file: %s", err);
	cr_assert_null(strchr(err, '\n'));
	cr_assert_eq(ut_count_entries(dir), 0);
	free(err);
	free(path);
}

Test(fsutil, failed_rename_leaves_target_and_no_temp)
{
	char *target = ut_path(dir, "target"), *inner = ut_path(dir, "target/keep");
	char *err = NULL;

	/* A non-empty directory cannot be renamed over. */
	cr_assert_eq(mkdir(target, 0755), 0);
	free(ut_write(dir, "target/keep", "precious"));
	cr_assert_eq(fsutil_write_atomic(target, "x", 1, 0644, &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, target), "%s", err);
	cr_assert_eq(ut_count_entries(dir), 1, "temporary file not removed");
	char *kept = ut_slurp(inner);
	cr_assert_str_eq(kept, "precious");
	free(kept);
	free(err);
	free(inner);
	free(target);
}

Test(fsutil, failed_write_leaves_old_contents)
{
	char *path = ut_path(dir, "map"), *err = NULL, *got;
	struct rlimit rl = { 4096, 4096 };
	char *big = xmalloc(100000);

	cr_assert_eq(fsutil_write_atomic(path, "old", 3, 0644, NULL), 0);
	/* A full disk, as far as this process can tell. */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	memset(big, 'n', 100000);
	cr_assert_eq(fsutil_write_atomic(path, big, 100000, 0644, &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, path), "%s", err);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "old", "the target must be untouched");
	cr_assert_eq(ut_count_entries(dir), 1, "temporary file not removed");
	free(got);
	free(big);
	free(err);
	free(path);
}

Test(fsutil, write_error_replaces_old_text)
{
	char *path = ut_path(dir, "missing/map"), *err = xstrdup("stale");

	cr_assert_eq(fsutil_write_atomic(path, "x", 1, 0644, &err), -1);
	cr_assert_null(strstr(err, "stale"));
	free(err);
	cr_assert_eq(fsutil_write_atomic(path, "x", 1, 0644, NULL), -1, "NULL err_r");
	free(path);
}

/* ===== fsutil_fsync_parent ===== */

Test(fsutil, fsync_parent)
{
	char *path = ut_path(dir, "anything"), *bad = ut_path(dir, "gone/file");
	char *err = NULL;

	cr_assert_eq(fsutil_fsync_parent(path, &err), 0, "%s", err);
	cr_assert_eq(fsutil_fsync_parent(bad, &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "gone"), "%s", err);
	free(err);
	free(path);
	free(bad);
}

Test(fsutil, fsync_parent_of_relative_name)
{
	cr_assert_eq(chdir(dir), 0);
	cr_assert_eq(fsutil_fsync_parent("file-in-cwd", NULL), 0);
}

/* ===== fsutil_read_file ===== */

Test(fsutil, read_absent_is_1)
{
	char *path = ut_path(dir, "absent"), *data = (char *)1, *err = NULL;
	size_t len = 5;

	cr_assert_eq(fsutil_read_file(path, &data, &len, 100, &err), 1);
	cr_assert_null(data);
	cr_assert_null(err, "absence is not an error");
	free(path);
	path = ut_path(dir, "no/such/dir/file");
	cr_assert_eq(fsutil_read_file(path, &data, &len, 100, &err), 1);
	free(path);
}

Test(fsutil, read_whole_file)
{
	char *path = ut_write(dir, "f", "line one\nline two\n"), *data = NULL;
	size_t len = 0;

	cr_assert_eq(fsutil_read_file(path, &data, &len, 1000, NULL), 0);
	cr_assert_eq(len, 18);
	cr_assert_str_eq(data, "line one\nline two\n");
	cr_assert_eq(data[len], '\0');
	free(data);
	free(path);
}

Test(fsutil, read_empty_file)
{
	char *path = ut_write(dir, "empty", ""), *data = NULL;
	size_t len = 7;

	cr_assert_eq(fsutil_read_file(path, &data, &len, 10, NULL), 0);
	cr_assert_not_null(data);
	cr_assert_eq(len, 0);
	cr_assert_str_eq(data, "");
	free(data);
	free(path);
}

Test(fsutil, read_max)
{
	char *path = ut_write(dir, "ten", "0123456789"), *data = NULL, *err = NULL;
	size_t len = 0;

	cr_assert_eq(fsutil_read_file(path, &data, &len, 10, NULL), 0, "exactly max");
	cr_assert_eq(len, 10);
	free(data);
	data = NULL;
	cr_assert_eq(fsutil_read_file(path, &data, &len, 9, &err), -1);
	cr_assert_null(data);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, path), "%s", err);
	free(err);
	free(path);
}

Test(fsutil, read_larger_than_a_chunk)
{
	size_t n = 300000;
	char *buf = xmalloc(n), *path = ut_path(dir, "big"), *data = NULL;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(i * 7);
	cr_assert_eq(fsutil_write_atomic(path, buf, n, 0644, NULL), 0);
	cr_assert_eq(fsutil_read_file(path, &data, &len, n, NULL), 0);
	cr_assert_eq(len, n);
	cr_assert_eq(memcmp(buf, data, n), 0);
	free(data);
	cr_assert_eq(fsutil_read_file(path, &data, &len, n - 1, NULL), -1);
	free(buf);
	free(path);
}

Test(fsutil, read_directory_is_an_error)
{
	char *data = NULL, *err = NULL;
	size_t len;

	cr_assert_eq(fsutil_read_file(dir, &data, &len, 100, &err), -1);
	cr_assert_null(data);
	cr_assert_not_null(err);
	free(err);
}

Test(fsutil, read_below_a_file_is_an_error)
{
	char *file = ut_write(dir, "plain", "x"), *below = ut_path(dir, "plain/x");
	char *data = NULL, *err = NULL;
	size_t len;

	cr_assert_eq(fsutil_read_file(below, &data, &len, 100, &err), -1);
	cr_assert_not_null(err);
	free(err);
	free(file);
	free(below);
}

/* ===== fsutil_write_all ===== */

struct drain {
	int fd;
	size_t got;
	unsigned sum;
};

static void *
drain_thread(void *arg)
{
	struct drain *d = arg;
	unsigned char buf[4096];
	ssize_t r;

	while ((r = read(d->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r; i++)
			d->sum = d->sum * 31 + buf[i];
		d->got += (size_t)r;
	}
	return NULL;
}

Test(fsutil, write_all_through_a_pipe)
{
	int p[2];
	size_t n = 1000000;
	unsigned char *buf = xmalloc(n);
	unsigned sum = 0;
	struct drain d = { 0 };
	pthread_t t;

	for (size_t i = 0; i < n; i++) {
		buf[i] = (unsigned char)(i * 13 + 5);
		sum = sum * 31 + buf[i];
	}
	cr_assert_eq(pipe(p), 0);
	d.fd = p[0];
	cr_assert_eq(pthread_create(&t, NULL, drain_thread, &d), 0);
	cr_assert_eq(fsutil_write_all(p[1], buf, n), 0);
	close(p[1]);
	cr_assert_eq(pthread_join(t, NULL), 0);
	close(p[0]);
	cr_assert_eq(d.got, n, "short write: %zu of %zu", d.got, n);
	cr_assert_eq(d.sum, sum);
	free(buf);
}

Test(fsutil, write_all_error)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	close(p[0]);
	close(p[1]);
	errno = 0;
	cr_assert_eq(fsutil_write_all(p[1], "x", 1), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert_eq(fsutil_write_all(p[1], "", 0), 0, "nothing to write");
}

/* ===== fsutil_replace: a file others may edit ===== */

int __real_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to);

/* Armed, the next rename first appends this to its target: an edit in
 * the instant between the last look and the rename. */
static const char *edit_at_rename;

int
__wrap_rename(const char *from, const char *to)
{
	if (edit_at_rename != NULL) {
		int fd = open(to, O_WRONLY | O_APPEND);

		cr_assert_geq(fd, 0);
		cr_assert_eq(fsutil_write_all(fd, edit_at_rename, strlen(edit_at_rename)), 0);
		close(fd);
		edit_at_rename = NULL;
	}
	return __real_rename(from, to);
}

struct edit_job {
	const char *path;	/* appended to while the new content is written */
};

static int
produce_new(int fd, void *arg)
{
	struct edit_job *job = arg;

	if (job != NULL && job->path != NULL) {
		int e = open(job->path, O_WRONLY | O_APPEND);

		cr_assert_geq(e, 0);
		cr_assert_eq(fsutil_write_all(e, "edit\n", 5), 0);
		close(e);
	}
	return fsutil_write_all(fd, "new\n", 4);
}

Test(fsutil, replace_unchanged)
{
	char *path = ut_write(dir, "map", "old\n"), *err = NULL, *got;
	struct stat expect, written, now;

	cr_assert_eq(stat(path, &expect), 0);
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, NULL, &written, NULL, &err), 0,
		     "%s", err);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "new\n");
	cr_assert_eq(stat(path, &now), 0);
	cr_assert(fsutil_same_file(&now, &written), "written_r is not the file as written");
	cr_assert_eq(mode_of(path), 0644);
	cr_assert_eq(ut_count_entries(dir), 1, "a temporary file was left behind");
	free(got);
	free(path);
}

Test(fsutil, replace_refuses_a_file_changed_before)
{
	char *path = ut_write(dir, "map", "old\n"), *got;
	struct stat expect;
	int fd;

	cr_assert_eq(stat(path, &expect), 0);
	fd = open(path, O_WRONLY | O_APPEND);
	cr_assert_eq(fsutil_write_all(fd, "edit\n", 5), 0);
	close(fd);
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, NULL, NULL, NULL, NULL), 1);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "old\nedit\n");
	cr_assert_eq(ut_count_entries(dir), 1);
	free(got);
	free(path);
}

/* the write and its fsync take time; an edit then is seen at the last look */
Test(fsutil, replace_refuses_a_file_changed_while_writing)
{
	char *path = ut_write(dir, "map", "old\n"), *got;
	struct edit_job job = { path };
	struct stat expect;

	cr_assert_eq(stat(path, &expect), 0);
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, &job, NULL, NULL, NULL), 1);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "old\nedit\n");
	cr_assert_eq(ut_count_entries(dir), 1, "the temporary file was left behind");
	free(got);
	free(path);
}

/* after the last look, before the rename: the edit went into the old
 * file, which is put back */
Test(fsutil, replace_puts_back_an_edit_made_at_the_rename)
{
	char *path = ut_write(dir, "map", "old\n"), *got;
	struct stat expect;

	cr_assert_eq(stat(path, &expect), 0);
	edit_at_rename = "edit\n";
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, NULL, NULL, NULL, NULL), 1);
	cr_assert_null(edit_at_rename, "no rename happened");
	got = ut_slurp(path);
	cr_assert_str_eq(got, "old\nedit\n");
	cr_assert_eq(ut_count_entries(dir), 1);
	free(got);
	free(path);
}

Test(fsutil, replace_without_expect_or_file_writes)
{
	char *path = ut_path(dir, "map"), *got;
	struct stat expect;

	cr_assert_eq(fsutil_replace(path, 0644, NULL, produce_new, NULL, NULL, NULL, NULL), 0);
	cr_assert_eq(stat(path, &expect), 0);
	cr_assert_eq(unlink(path), 0);
	/* gone since: nothing to lose, so it is written */
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, NULL, NULL, NULL, NULL), 0);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "new\n");
	free(got);
	free(path);
}


/* late_edit_setup - path holding "old\n", replaced by "new\n" with the
 * replaced file kept (*r); *fd_r: path opened for appending before the
 * rename, as a shell's ">>" descheduled before its write */
static char *
late_edit_setup(struct fsutil_replaced *r, int *fd_r)
{
	char *path = ut_write(dir, "map", "old\n"), *err = NULL;
	struct stat expect;

	cr_assert_eq(stat(path, &expect), 0);
	*fd_r = open(path, O_WRONLY | O_APPEND);
	cr_assert_geq(*fd_r, 0);
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, NULL, NULL, r, &err), 0,
		     "%s", err);
	cr_assert_geq(r->fd, 0, "the replaced file is not handed back");
	return path;
}

/* an append that lands in the replaced file after the rename is carried
 * to the new file, once, and a later one again */
Test(fsutil, late_append_is_carried_over)
{
	struct fsutil_replaced r;
	char *path, *got, *err = NULL;
	int fd;

	path = late_edit_setup(&r, &fd);
	cr_assert_eq(fsutil_late_edit(&r, path, &err), 0, "nothing was written yet");
	cr_assert_eq(fsutil_write_all(fd, "edit\n", 5), 0);
	cr_assert_eq(fsutil_late_edit(&r, path, &err), 1, "%s", err ? err : "not carried");
	got = ut_slurp(path);
	cr_assert_str_eq(got, "new\nedit\n");
	free(got);
	cr_assert_eq(fsutil_late_edit(&r, path, &err), 0, "carried twice");
	cr_assert_eq(fsutil_write_all(fd, "more\n", 5), 0);
	cr_assert_eq(fsutil_late_edit(&r, path, &err), 1);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "new\nedit\nmore\n");
	free(got);
	close(fd);
	fsutil_replaced_close(&r);
	cr_assert_eq(r.fd, -1);
	free(path);
}

/* anything but an append (here the old text changed in place) cannot be
 * carried over: said, and the new file is left alone */
Test(fsutil, late_rewrite_in_place_is_not_carried)
{
	struct fsutil_replaced r;
	char *path, *got, *err = NULL;
	int fd;

	path = late_edit_setup(&r, &fd);
	cr_assert_eq(fcntl(fd, F_SETFL, 0), 0);	/* pwrite at 0, not appending */
	cr_assert_eq(pwrite(fd, "OLD\nand more\n", 13, 0), 13);
	cr_assert_eq(fsutil_late_edit(&r, path, &err), 2);
	got = ut_slurp(path);
	cr_assert_str_eq(got, "new\n");
	free(got);
	cr_assert_eq(fsutil_late_edit(&r, path, &err), 0, "said twice");
	close(fd);
	fsutil_replaced_close(&r);
	free(path);
}

/* put back (rc 1) or nothing replaced: no file is handed back */
Test(fsutil, replaced_file_only_after_a_replace)
{
	char *path = ut_write(dir, "map", "old\n");
	struct fsutil_replaced r = { .fd = 7 };
	struct stat expect;

	cr_assert_eq(stat(path, &expect), 0);
	edit_at_rename = "edit\n";
	cr_assert_eq(fsutil_replace(path, 0644, &expect, produce_new, NULL, NULL, &r, NULL), 1);
	cr_assert_eq(r.fd, -1);
	cr_assert_eq(fsutil_late_edit(&r, path, NULL), 0);
	free(path);
}
