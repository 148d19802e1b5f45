/* unit.h - helpers shared by the Criterion unit tests: a private temporary
 * directory per test, small file helpers and the SMTP-safety check for
 * error texts.
 */
#ifndef MA_UNIT_H
#define MA_UNIT_H

/* config.h (for _GNU_SOURCE) must come first. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ut_rm_cb - nftw callback removing one entry, depth first */
static inline int
ut_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* ut_mkdtemp - a fresh private directory under /tmp; caller frees */
static inline char *
ut_mkdtemp(void)
{
	char *dir = strdup("/tmp/ma-unit.XXXXXX");

	cr_assert_not_null(dir);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp failed");
	return dir;
}

/* ut_rmtree - remove dir and everything below it, and free the name */
static inline void
ut_rmtree(char **dir)
{
	if (*dir == NULL)
		return;
	nftw(*dir, ut_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(*dir);
	*dir = NULL;
}

/* ut_path - dir/name; caller frees */
static inline char *
ut_path(const char *dir, const char *name)
{
	char *p = NULL;

	cr_assert_geq(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

/* ut_write - create dir/name holding text; returns the path (caller frees) */
static inline char *
ut_write(const char *dir, const char *name, const char *text)
{
	char *p = ut_path(dir, name);
	FILE *f = fopen(p, "w");

	cr_assert_not_null(f, "cannot create %s", p);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
	return p;
}

/* ut_slurp - whole file as a NUL-terminated string, or NULL if absent */
static inline char *
ut_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *data = NULL;
	size_t cap = 0, len = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			data = realloc(data, cap);
			cr_assert_not_null(data);
		}
		size_t r = fread(data + len, 1, cap - len - 1, f);

		len += r;
		if (r == 0)
			break;
	}
	data[len] = '\0';
	fclose(f);
	return data;
}

/* ut_run - run a shell command made from fmt; its stdout (trailing
 * newlines removed, at most outsz - 1 bytes) in out, which may be NULL;
 * returns its exit status, -1 if it died of a signal */
static inline int
ut_run(char *out, size_t outsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int
ut_run(char *out, size_t outsz, const char *fmt, ...)
{
	char *cmd = NULL, sink[256];
	va_list ap;
	size_t n;
	int status;
	FILE *p;

	va_start(ap, fmt);
	cr_assert_geq(vasprintf(&cmd, fmt, ap), 0);
	va_end(ap);
	cr_assert_not_null(p = popen(cmd, "r"), "cannot run %s", cmd);
	if (out != NULL) {
		n = fread(out, 1, outsz - 1, p);
		out[n] = '\0';
		while (n > 0 && out[n - 1] == '\n')
			out[--n] = '\0';
	}
	while (fread(sink, 1, sizeof(sink), p) > 0)
		;
	status = pclose(p);
	free(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ut_postfix_conf - a Postfix configuration directory of the test's own:
 * dir/main.cf with the compatibility level of the Postfix we test against
 * (so no tool warns about backwards-compatible defaults) and the extra
 * lines given ("" for none).  Run postmap, postalias and postconf with
 * "-c dir": what the test sees must not depend on the machine's default
 * /etc/postfix/main.cf, which may be missing or incomplete. */
static inline void
ut_postfix_conf(const char *dir, const char *extra)
{
	char *text = NULL;

	cr_assert_geq(asprintf(&text, "compatibility_level = 3.6\n%s", extra), 0);
	free(ut_write(dir, "main.cf", text));
	free(text);
}

/* ut_count_entries - entries in dir besides "." and ".." */
static inline int
ut_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d, "cannot open %s", dir);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* ut_assert_reply_safe - an error text fit for an SMTP reply: non-empty,
 * no CR, LF or '%', printable ASCII only */
static inline void
ut_assert_reply_safe(const char *err)
{
	cr_assert_not_null(err, "no error text");
	cr_assert_neq(err[0], '\0', "empty error text");
	cr_assert_null(strchr(err, '\r'), "CR in error text: %s", err);
	cr_assert_null(strchr(err, '\n'), "LF in error text: %s", err);
	cr_assert_null(strchr(err, '%'), "'%%' in error text: %s", err);
	for (const unsigned char *p = (const unsigned char *)err; *p; p++)
		cr_assert(*p >= 0x20 && *p <= 0x7e,
			  "byte 0x%02x in error text: %s", *p, err);
}

/* ut_lock_file - a child process holds an exclusive fcntl lock on path
 * (as postmap or a Postfix reader would) until ut_unlock_file; returns
 * once the lock is held.  fcntl locks are per process: a thread of the
 * test could not make the code under test wait. */
struct ut_locker {
	pid_t pid;
	int release;	/* write end: closing it lets the child go */
};

static inline struct ut_locker
ut_lock_file(const char *path)
{
	struct ut_locker l;
	int ready[2], release[2];
	char c;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(release), 0);
	l.pid = fork();
	cr_assert_geq(l.pid, 0);
	if (l.pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int fd = open(path, O_RDWR);

		close(ready[0]);
		close(release[1]);
		if (fd < 0 || fcntl(fd, F_SETLKW, &fl) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		while (read(release[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "the child could not lock %s", path);
	close(ready[0]);
	l.release = release[1];
	return l;
}

static inline void
ut_unlock_file(struct ut_locker *l)
{
	int status;

	if (l->pid <= 0)
		return;
	close(l->release);
	waitpid(l->pid, &status, 0);
	l->pid = 0;
}

#endif
