/* pftool.c - running Postfix's programs; see pftool.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pftool.h"
#include "run.h"

/* argv_of - path -c|-C config_dir args..., NULL-terminated; caller frees
 * the array and path (*path_r) */
static char **
argv_of(const char *path, const char *copt, const char *config_dir,
	const char *const args[])
{
	size_t n = 0, nargs = 0;
	char **argv;

	while (args != NULL && args[nargs] != NULL)
		nargs++;
	argv = xcalloc(nargs + 4, sizeof(*argv));
	argv[n++] = (char *)path;
	argv[n++] = (char *)copt;
	argv[n++] = (char *)config_dir;
	for (size_t i = 0; i < nargs; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return argv;
}

int
pftool_failed(const struct pftool_run *r, int flags)
{
	const char *e = r->err.data;

	return r->status < 0 ||
		(r->status != 0 && !(r->status == 1 && (flags & PFTOOL_EXIT1_OK))) ||
		(e != NULL && (strstr(e, "fatal:") != NULL || strstr(e, "error:") != NULL));
}

char *
pftool_last_line(const struct buf *b)
{
	char *copy = xstrdup(b->data ? b->data : ""), *last = NULL, *save = NULL;

	for (char *p = strtok_r(copy, "\n", &save); p; p = strtok_r(NULL, "\n", &save))
		if (*str_trim(p) != '\0')
			last = p;
	last = xstrdup(last ? last : "");
	free(copy);
	return last;
}

void
pftool_error(const struct pftool_run *r, const char *what, char **err_r)
{
	char *line;

	if (r->status < 0) {
		set_error(err_r, "%s: %s", what, r->run_err ? r->run_err : "could not run");
		return;
	}
	line = pftool_last_line(&r->err);
	set_error(err_r, "%s failed (exit %d)%s%s", what, r->status, *line ? ": " : "",
		  line);
	free(line);
}

void
pftool_run_free(struct pftool_run *r)
{
	buf_free(&r->out);
	buf_free(&r->err);
	xfree(&r->run_err);
}

/* run_argv - run argv into r; r->status */
static int
run_argv(struct pftool_run *r, char **argv, const char *input)
{
	buf_reset(&r->out);
	buf_reset(&r->err);
	xfree(&r->run_err);
	r->status = run_program(argv, input, input ? strlen(input) : 0, &r->out, &r->err,
				PFTOOL_TIMEOUT_MS, &r->run_err);
	return r->status;
}

int
pftool_run(struct pftool_run *r, const char *config_dir, const char *prog,
	   const char *const args[], const char *input, int flags,
	   const char *what, char **err_r)
{
	char *path = xasprintf("%s/%s", POSTFIX_SBINDIR, prog);
	char **argv = argv_of(path, "-c", config_dir, args);
	int rc = 0;

	run_argv(r, argv, input);
	if (pftool_failed(r, flags)) {
		pftool_error(r, what ? what : prog, err_r);
		rc = -1;
	}
	free(argv);
	free(path);
	return rc;
}

int
pftool_query(struct pftool_run *r, const char *config_dir,
	     const struct strlist *maps, const char *keys, char **err_r)
{
	const char **args;
	size_t n = 0;
	char *err = NULL;
	int rc;

	if (maps->n == 0)
		return 0;
	args = xcalloc(maps->n + 3, sizeof(*args));
	args[n++] = "-q";
	args[n++] = "-";	/* the keys come on stdin */
	for (size_t i = 0; i < maps->n; i++)
		args[n++] = maps->v[i];
	args[n] = NULL;
	rc = pftool_run(r, config_dir, "postmap", args, keys, PFTOOL_EXIT1_OK,
			"postmap -q", &err);
	if (r->status >= 0 && r->out.len > 0)
		rc = 1;		/* final, whatever else went wrong */
	else if (rc < 0)
		set_error(err_r, "%s", err);
	free(err);
	free(args);
	return rc;
}

int
pftool_lookup(const char *config_dir, const char *map, const char *key,
	      char **value_r, char **err_r)
{
	struct strlist one = { 0 };
	struct pftool_run r = { 0 };
	char *input = xasprintf("%s\n", key);
	size_t klen = strlen(key);
	int rc;

	strlist_add(&one, map);
	rc = pftool_query(&r, config_dir, &one, input, err_r);
	if (rc > 0) {
		/* "key<TAB>value": Postfix may fold the key's case. */
		if (r.out.len > klen && strncasecmp(r.out.data, key, klen) == 0 &&
		    r.out.data[klen] == '\t') {
			char *v = r.out.data + klen + 1;

			v[strcspn(v, "\n")] = '\0';
			*value_r = xstrdup(str_trim(v));
		} else
			rc = 0;
	}
	pftool_run_free(&r);
	strlist_clear(&one);
	free(input);
	return rc;
}

char *
pftool_answer_keys(const char *answer)
{
	struct buf b = { 0 };
	char *k;

	for (const char *p = answer; *p; ) {
		size_t n = strcspn(p, "\t\n");

		buf_append(&b, p, n);
		buf_append(&b, "\n", 1);
		p += n;
		p += strcspn(p, "\n");
		if (*p == '\n')
			p++;
	}
	k = xstrdup(b.data ? b.data : "");
	buf_free(&b);
	return k;
}

int
pftool_sendmail(const char *sendmail_path, const char *config_dir,
		const char *sender, const char *message, char **err_r)
{
	const char *const args[] = { "-i", "-t", "-f", sender, NULL };
	char **argv = argv_of(sendmail_path, "-C", config_dir, args);
	struct pftool_run r = { 0 };
	int rc = 0;

	run_argv(&r, argv, message);
	if (pftool_failed(&r, 0)) {
		pftool_error(&r, "sendmail", err_r);
		rc = -1;
	}
	pftool_run_free(&r);
	free(argv);
	return rc;
}

int
pftool_run_pty(const char *config_dir, const char *prog, const char *const args[],
	       struct buf *out, char **err_r)
{
	static char *const envp[] = {
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL
	};
	long long deadline = now_mono_ms() + PFTOOL_TIMEOUT_MS;
	char *path = xasprintf("%s/%s", POSTFIX_SBINDIR, prog);
	char **argv = argv_of(path, "-c", config_dir, args);
	char name[128], chunk[4096];
	int mfd, status = 0, exited = 0, rc = -1;
	pid_t pid;

	mfd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (mfd < 0 || grantpt(mfd) < 0 || unlockpt(mfd) < 0 ||
	    ptsname_r(mfd, name, sizeof(name)) != 0) {
		set_error(err_r, "cannot open a pseudo-terminal: %s", strerror(errno));
		if (mfd >= 0)
			close(mfd);
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		set_error(err_r, "fork: %s", strerror(errno));
		close(mfd);
		goto out;
	}
	if (pid == 0) {
		int sfd;

		setsid();
		sfd = open(name, O_RDWR);	/* becomes the controlling tty */
		if (sfd < 0)
			_exit(126);
		dup2(sfd, 0);
		dup2(sfd, 1);
		dup2(sfd, 2);
		if (sfd > 2)
			close(sfd);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	for (;;) {
		struct pollfd pfd = { .fd = mfd, .events = POLLIN };
		int r = poll(&pfd, 1, 200);

		if (r > 0) {
			ssize_t n = read(mfd, chunk, sizeof(chunk));

			if (n > 0) {
				for (ssize_t i = 0; i < n; i++)
					if (chunk[i] != '\r' && out->len < 256 * 1024)
						buf_append(out, &chunk[i], 1);
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			/* EIO: every holder of the terminal has closed it. */
			if (exited || waitpid(pid, &status, 0) == pid)
				exited = 1;
			break;
		}
		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = 1;
		if (exited && r == 0)
			break;	/* the command is gone and nothing is left to read */
		if (now_mono_ms() > deadline) {
			kill(pid, SIGKILL);
			if (!exited)
				waitpid(pid, &status, 0);
			close(mfd);
			set_error(err_r, "%s did not finish within %d s", argv[0],
				  PFTOOL_TIMEOUT_MS / 1000);
			goto out;
		}
	}
	close(mfd);
	if (!exited && waitpid(pid, &status, 0) != pid)
		set_error(err_r, "waitpid: %s", strerror(errno));
	else if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else
		set_error(err_r, "%s was killed by signal %d", argv[0], WTERMSIG(status));
out:
	free(argv);
	free(path);
	return rc;
}
