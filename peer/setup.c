/* setup.c - milter-aliasctl postfix-setup; see setup.h.
 *
 * Three phases:
 *   1. look: read main.cf and master.cf with postconf, stat the maps;
 *   2. plan: one change per main.cf parameter, per master.cf -o option and
 *      per map this program owns, plus the problems that forbid applying;
 *   3. report, or apply: backups, our maps (built beside and renamed,
 *      then queried), one "postconf -e" for main.cf and one "postconf -P"
 *      for master.cf (each rewrites its file atomically, so a Postfix
 *      daemon started meanwhile never sees half of the wiring), every
 *      value read back, "postfix check" under a pseudo-terminal (Postfix
 *      commands print their warnings only to a terminal or the mail log),
 *      then "postfix reload" if Postfix runs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctlsock.h"
#include "fsutil.h"
#include "run.h"
#include "setup.h"

#define TOOL_TIMEOUT_MS 60000
#define POSTCONF POSTFIX_SBINDIR "/postconf"
#define POSTMAP POSTFIX_SBINDIR "/postmap"
#define POSTFIX POSTFIX_SBINDIR "/postfix"

/* The restriction class: authenticated clients pass, everyone else gets a
 * reason.  static:{...} with spaces works in restriction lists (Postfix
 * splits them with braces respected) and "postmap -q x 'static:{...}'"
 * returns the whole text on 3.7. */
#define REQUEST_CLASS_VALUE \
	"permit_sasl_authenticated, check_recipient_access " \
	"static:{550 5.7.1 Authenticate (SMTP AUTH) before sending alias requests}"
/* A parameter Postfix knows, overridden for one postconf run with
 * "-o CARRIER=$PARAM": postconf shows a user-defined parameter (mua_milters,
 * milter_alias_request) only when something references it. */
#define CARRIER "smtpd_banner"
#define LIST_SEP POSTFIX_LIST_SEP

enum ch_kind { CH_MAP, CH_MAIN, CH_MASTER };

struct change {
	enum ch_kind kind;
	char *key;		/* map: source path; main: parameter; master: svc/type/param */
	char *value;		/* map: source text; otherwise the new value */
	char *spec;		/* map: "type:path" */
	char *db;		/* map: compiled file */
	char *text;		/* the report line */
	const char *status;	/* pending, done, failed, not done */
	char *error;
};

struct service {
	char *key;		/* "submission/inet" */
	char *command;		/* "smtpd" */
	char *chroot;		/* y, n or - */
	struct strlist pnames;	/* -o parameters ... */
	struct strlist pvalues;	/* ... and their raw values */
};

/* A list-valued parameter being edited: main.cf or one service's -o. */
struct ledit {
	int master;
	char *key;		/* main: parameter; master: svc/type/param */
	char *label;		/* "main.cf: x" or "master.cf: svc/type: -o x" */
	char *orig;		/* raw value before ("" if none) */
	int existed;		/* master: the -o was there */
	struct strlist front, back;	/* items added first / last */
	char *why;		/* extra explanation for the report */
};

struct setup {
	const struct conf *conf;
	const struct setup_options *opts;
	int root;
	char *dir, *main_cf, *master_cf;
	char *queue_dir, *mail_owner, *default_action;
	const char *sfx;	/* compiled-map suffix for map_type */

	const char *alias_param;	/* virtual_alias_maps or alias_maps */
	char *alias_spec, *alias_db;
	char *access_spec, *access_db;
	char *senders_spec, *senders_db;
	char *req_path, *req_spec, *req_db, *req_text;
	char *tr_path, *tr_spec, *tr_db, *tr_text;
	char *milter_spec;	/* as Postfix names our milter */
	char *milter_entry;	/* what goes into a milter list */
	char *milter_canon;	/* for comparisons */

	struct service *svc;
	size_t nsvc;
	struct ledit *led;
	size_t nled;
	struct change *ch;
	size_t nch;
	struct strlist problems, notes, backups;
	int milter_needed;	/* some change adds the milter */
	char *class_was;	/* milter_alias_request needs setting; its old value */
	const char *check;	/* postfix check: "clean", "failed", "not run" */
	const char *reload;	/* "done", "not running", "not done", "failed" */
	const char *result;
};

/* ------------------------------------------------------------ helpers -- */

static char *
last_line(const struct buf *b)
{
	char *copy = xstrdup(b->data ? b->data : ""), *last = NULL;

	for (char *p = strtok(copy, "\n"); p; p = strtok(NULL, "\n"))
		if (*str_trim(p) != '\0')
			last = p;
	last = xstrdup(last ? last : "");
	free(copy);
	return last;
}

/* tool - run a Postfix program; returns its exit status or -1 */
static int
tool(char *const argv[], const char *input, struct buf *out, struct buf *eout,
     char **err_r)
{
	return run_program(argv, input, input ? strlen(input) : 0, out, eout,
			   TOOL_TIMEOUT_MS, err_r);
}

/* tool_failure - "what failed (exit N): last line of stderr" */
static char *
tool_failure(const char *what, int status, const struct buf *eout, const char *run_err)
{
	char *line = last_line(eout), *s;

	if (status < 0)
		s = xasprintf("%s: %s", what, run_err ? run_err : "could not run");
	else
		s = xasprintf("%s failed (exit %d)%s%s", what, status, *line ? ": " : "", line);
	free(line);
	return s;
}

/* run_pty - run argv with stdin/stdout/stderr on a new pseudo-terminal and
 * collect what it prints (CR removed).  Postfix commands print warnings and
 * fatal errors on stderr only when it is a terminal, else only to the mail
 * log.  Returns the exit status, or -1 with a reason. */
static int
run_pty(char *const argv[], struct buf *out, int timeout_ms, char **err_r)
{
	static char *const envp[] = {
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL
	};
	long long deadline = now_mono_ms() + timeout_ms;
	char name[128], chunk[4096];
	int mfd, status = 0, exited = 0;
	pid_t pid;

	mfd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (mfd < 0 || grantpt(mfd) < 0 || unlockpt(mfd) < 0 ||
	    ptsname_r(mfd, name, sizeof(name)) != 0) {
		set_error(err_r, "cannot open a pseudo-terminal: %s", strerror(errno));
		if (mfd >= 0)
			close(mfd);
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		set_error(err_r, "fork: %s", strerror(errno));
		close(mfd);
		return -1;
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
				  timeout_ms / 1000);
			return -1;
		}
	}
	close(mfd);
	if (!exited && waitpid(pid, &status, 0) != pid) {
		set_error(err_r, "waitpid: %s", strerror(errno));
		return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	set_error(err_r, "%s was killed by signal %d", argv[0], WTERMSIG(status));
	return -1;
}

/* item_compact - an item without white space, as postconf -P must write it
 * ("{ inet:x, default_action=accept }" -> "{inet:x,default_action=accept}");
 * NULL if that is impossible (white space inside a nested item) */
static char *
item_compact(const char *item)
{
	struct strlist inner = { 0 };
	struct buf b = { 0 };
	size_t len = strlen(item);
	char *body, *res = NULL;

	if (strpbrk(item, LIST_SEP) == NULL)
		return xstrdup(item);
	if (len < 2 || item[0] != '{' || item[len - 1] != '}')
		return NULL;
	body = xstrndup(item + 1, len - 2);
	strlist_split_postfix(body, &inner);
	buf_append(&b, "{", 1);
	for (size_t i = 0; i < inner.n; i++) {
		if (strpbrk(inner.v[i], LIST_SEP) != NULL)
			goto out;
		buf_appendf(&b, "%s%s", i ? "," : "", inner.v[i]);
	}
	buf_append(&b, "}", 1);
	res = xstrdup(b.data);
out:
	buf_free(&b);
	strlist_clear(&inner);
	free(body);
	return res;
}

/* map_listed - is spec (or proxy:spec) an item of the list value? */
static int
map_listed(const char *value, const char *spec)
{
	struct strlist l = { 0 };
	int found = 0;

	strlist_split_postfix(value, &l);
	for (size_t i = 0; i < l.n && !found; i++) {
		const char *t = l.v[i];

		if (strncmp(t, "proxy:", 6) == 0)
			t += 6;
		found = strcmp(t, spec) == 0;
	}
	strlist_clear(&l);
	return found;
}

/* check_listed - does the restriction list hold check_recipient_access spec? */
static int
check_listed(const char *value, const char *spec)
{
	struct strlist l = { 0 };
	int found = 0;

	strlist_split_postfix(value, &l);
	for (size_t i = 0; i + 1 < l.n && !found; i++) {
		const char *t = l.v[i + 1];

		if (strncmp(t, "proxy:", 6) == 0)
			t += 6;
		found = strcasecmp(l.v[i], "check_recipient_access") == 0 &&
			strcmp(t, spec) == 0;
	}
	strlist_clear(&l);
	return found;
}

/* word_listed - is word an item of the list value? */
static int
word_listed(const char *value, const char *word)
{
	struct strlist l = { 0 };
	int found;

	strlist_split_postfix(value, &l);
	found = strlist_contains(&l, word, true);
	strlist_clear(&l);
	return found;
}

/* refs_param - does value mention $name, ${name} or $(name)? */
static int
refs_param(const char *value, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strchr(value, '$'); p; p = strchr(p + 1, '$')) {
		if (strncmp(p + 1, name, n) == 0 &&
		    !(p[1 + n] == '_' || (p[1 + n] >= 'a' && p[1 + n] <= 'z') ||
		      (p[1 + n] >= 'A' && p[1 + n] <= 'Z') ||
		      (p[1 + n] >= '0' && p[1 + n] <= '9')))
			return 1;
		if ((p[1] == '{' || p[1] == '(') && strncmp(p + 2, name, n) == 0 &&
		    (p[2 + n] == '}' || p[2 + n] == ')' || p[2 + n] == ':' || p[2 + n] == '?'))
			return 1;
	}
	return 0;
}

/* milter_canon - "unix:/abs/path" or the inet spec, for comparisons; a
 * relative unix path is relative to queue_directory */
static char *
milter_canon(const char *name, const char *queue_dir)
{
	const char *path = NULL;

	if (strncmp(name, "unix:", 5) == 0)
		path = name + 5;
	else if (strncmp(name, "local:", 6) == 0)
		path = name + 6;
	if (path == NULL)
		return str_lower(xstrdup(name));
	if (path[0] == '/')
		return xasprintf("unix:%s", path);
	return xasprintf("unix:%s/%s", queue_dir, path);
}

/* milter_listed - is our milter in the milter list value? */
static int
milter_listed(const struct setup *s, const char *value)
{
	struct strlist l = { 0 };
	int found = 0;

	strlist_split_postfix(value, &l);
	for (size_t i = 0; i < l.n && !found; i++) {
		char *name, *canon;

		if (l.v[i][0] == '{') {
			struct strlist inner = { 0 };
			char *body = xstrndup(l.v[i] + 1, strlen(l.v[i]) - 1);

			body[strcspn(body, "}")] = '\0';
			strlist_split_postfix(body, &inner);
			name = xstrdup(inner.n ? inner.v[0] : "");
			strlist_clear(&inner);
			free(body);
		} else
			name = xstrdup(l.v[i]);
		canon = milter_canon(name, s->queue_dir);
		found = strcmp(canon, s->milter_canon) == 0;
		free(canon);
		free(name);
	}
	strlist_clear(&l);
	return found;
}

/* add_once - a formatted line onto l, unless l has it already */
static void
add_once(struct strlist *l, const char *fmt, va_list ap) ATTR_PRINTF(2, 0);
static void
add_once(struct strlist *l, const char *fmt, va_list ap)
{
	char *m = xvasprintf(fmt, ap);

	if (!strlist_contains(l, m, false))
		strlist_add(l, m);
	free(m);
}

static void
problem(struct setup *s, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void
problem(struct setup *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_once(&s->problems, fmt, ap);
	va_end(ap);
}

static void
note(struct setup *s, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void
note(struct setup *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_once(&s->notes, fmt, ap);
	va_end(ap);
}

/* ----------------------------------------------------------- postconf -- */

/* pc_query - run one postconf read; 1 and *val_r (its first line, caller
 * frees), 0 when it printed nothing, -1 on error */
static int
pc_query(char **argv, const char *what, char **val_r, char **err_r)
{
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL;
	int status, rc;

	*val_r = NULL;
	status = tool(argv, NULL, &out, &eout, &run_err);
	if (status != 0) {
		char *f = tool_failure(what, status, &eout, run_err);

		set_error(err_r, "%s", f);
		free(f);
		rc = -1;
	} else if (out.len == 0) {
		rc = 0;
	} else {
		out.data[strcspn(out.data, "\n")] = '\0';
		*val_r = xstrdup(out.data);
		rc = 1;
	}
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return rc;
}

/* pc_get - a main.cf parameter's value (raw, or expanded with -x).
 * 1 and *val_r (caller frees), 0 if Postfix does not know the parameter,
 * -1 on error. */
static int
pc_get(struct setup *s, const char *param, int expand, char **val_r, char **err_r)
{
	char *carrier = xasprintf(CARRIER "=$%s", param);
	char *argv[] = {
		POSTCONF, "-c", s->dir, "-o", carrier, expand ? "-xh" : "-h",
		(char *)param, NULL
	};
	int rc = pc_query(argv, "postconf", val_r, err_r);

	free(carrier);
	return rc;
}

/* pc_value - like pc_get, "" for an unknown parameter; exits via -1 */
static int
pc_value(struct setup *s, const char *param, int expand, char **val_r, char **err_r)
{
	int rc = pc_get(s, param, expand, val_r, err_r);

	if (rc == 0)
		*val_r = xstrdup("");
	return rc < 0 ? -1 : 0;
}

/* pc_default - Postfix's built-in default (postconf -d) */
static char *
pc_default(struct setup *s, const char *param)
{
	char *argv[] = { POSTCONF, "-c", s->dir, "-dh", (char *)param, NULL };
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL, *v;

	if (tool(argv, NULL, &out, &eout, &run_err) == 0 && out.len > 0) {
		out.data[strcspn(out.data, "\n")] = '\0';
		v = xstrdup(out.data);
	} else
		v = xstrdup("");
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return v;
}

/* pc_master_get - one service's -o value: 1 and *val_r, 0 absent, -1 error */
static int
pc_master_get(struct setup *s, const char *key, int expand, char **val_r, char **err_r)
{
	char *argv[] = {
		POSTCONF, "-c", s->dir, expand ? "-Pxh" : "-Ph", (char *)key, NULL
	};

	return pc_query(argv, "postconf -P", val_r, err_r);
}

/* split_key_line - "name/type/x = value" -> service key, x, value */
static int
split_key_line(char *line, char **svc_r, char **name_r, char **value_r)
{
	char *eq = strstr(line, " = "), *slash;

	if (eq == NULL)
		return -1;
	*eq = '\0';
	*value_r = eq + 3;
	slash = strrchr(line, '/');
	if (slash == NULL || slash == line)
		return -1;
	*slash = '\0';
	*svc_r = line;
	*name_r = slash + 1;
	return strchr(line, '/') ? 0 : -1;
}

static struct service *
service_find(struct setup *s, const char *key, int create)
{
	for (size_t i = 0; i < s->nsvc; i++)
		if (strcmp(s->svc[i].key, key) == 0)
			return &s->svc[i];
	if (!create)
		return NULL;
	s->svc = xrealloc(s->svc, (s->nsvc + 1) * sizeof(*s->svc));
	memset(&s->svc[s->nsvc], 0, sizeof(*s->svc));
	s->svc[s->nsvc].key = xstrdup(key);
	return &s->svc[s->nsvc++];
}

static const char *
service_param(const struct service *sv, const char *name)
{
	for (size_t i = 0; i < sv->pnames.n; i++)
		if (strcmp(sv->pnames.v[i], name) == 0)
			return sv->pvalues.v[i];
	return NULL;
}

/* read_master - every master.cf service (postconf -F) and its -o
 * parameters (postconf -P) */
static int
read_master(struct setup *s, char **err_r)
{
	char *fargv[] = { POSTCONF, "-c", s->dir, "-F", NULL };
	char *pargv[] = { POSTCONF, "-c", s->dir, "-P", NULL };
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL, *save = NULL;
	int status;

	status = tool(fargv, NULL, &out, &eout, &run_err);
	if (status != 0) {
		char *f = tool_failure("postconf -F", status, &eout, run_err);

		set_error(err_r, "%s", f);
		free(f);
		goto fail;
	}
	for (char *line = strtok_r(out.data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *svc, *field, *value;
		struct service *sv;

		if (split_key_line(line, &svc, &field, &value) < 0)
			continue;
		sv = service_find(s, svc, 1);
		if (strcmp(field, "command") == 0 && sv->command == NULL)
			sv->command = xstrndup(value, strcspn(value, " \t"));
		else if (strcmp(field, "chroot") == 0 && sv->chroot == NULL)
			sv->chroot = xstrdup(value);
	}
	buf_reset(&out);
	buf_reset(&eout);
	status = tool(pargv, NULL, &out, &eout, &run_err);
	if (status != 0) {
		char *f = tool_failure("postconf -P", status, &eout, run_err);

		set_error(err_r, "%s", f);
		free(f);
		goto fail;
	}
	save = NULL;
	for (char *line = out.data ? strtok_r(out.data, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *svc, *param, *value;
		struct service *sv;

		if (split_key_line(line, &svc, &param, &value) < 0)
			continue;
		if ((sv = service_find(s, svc, 0)) == NULL)
			continue;
		strlist_add(&sv->pnames, param);
		strlist_add(&sv->pvalues, value);
	}
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return 0;
fail:
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return -1;
}

/* --------------------------------------------------------- map checks -- */

/* map_query - query keys (one per line in input) in spec; the output of
 * postmap -q - ("key<TAB>value" lines) in *out.  0 ok (found or not), -1
 * with a reason when Postfix cannot open the map. */
static int
map_query(struct setup *s, const char *spec, const char *input, struct buf *out,
	  char **err_r)
{
	char *argv[] = { POSTMAP, "-c", s->dir, "-q", "-", (char *)spec, NULL };
	struct buf eout = { 0 };
	char *run_err = NULL;
	int status, rc = 0;

	status = tool(argv, input, out, &eout, &run_err);
	if ((status != 0 && status != 1) ||
	    (eout.data && (strstr(eout.data, "fatal:") || strstr(eout.data, "error:")))) {
		char *f = tool_failure("postmap -q", status, &eout, run_err);

		set_error(err_r, "%s", f);
		free(f);
		rc = -1;
	} else if (eout.data && strstr(eout.data, "warning:")) {
		char *l = last_line(&eout);

		note(s, "postmap -q %s: %s", spec, l);
		free(l);
	}
	free(run_err);
	buf_free(&eout);
	return rc;
}

/* readable_by_mail_owner - can Postfix's mail_owner read path (the whole
 * way down)?  Checked in a child that takes that user's identity.
 * 1 yes, 0 no, -1 could not tell. */
static int
readable_by_mail_owner(struct setup *s, const char *path)
{
	struct passwd *pw = getpwnam(s->mail_owner);
	int status;
	pid_t pid;

	if (pw == NULL || !s->root)
		return -1;
	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
		    setuid(pw->pw_uid) < 0)
			_exit(2);
		_exit(access(path, R_OK) == 0 ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) > 1)
		return -1;
	return WEXITSTATUS(status) == 0;
}

/* check_daemon_map - a map milter-alias-peer builds, which Postfix is or
 * will be pointed at: compiled file present, opens, readable */
static void
check_daemon_map(struct setup *s, const char *what, const char *spec, const char *db)
{
	struct stat st;
	struct buf out = { 0 };
	char *err = NULL;

	if (stat(db, &st) < 0) {
		problem(s, "%s %s cannot be wired: %s: %s: start milter-alias-peer "
			"first: it builds %s", what, spec, db, strerror(errno), db);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(s, "%s %s: %s is not a regular file", what, spec, db);
		return;
	}
	if (map_query(s, spec, "milter-alias-setup-probe\n", &out, &err) < 0)
		problem(s, "%s %s: Postfix cannot open it: %s", what, spec, err);
	else if (readable_by_mail_owner(s, db) == 0)
		problem(s, "%s %s: Postfix's mail_owner %s cannot read %s: fix the "
			"permissions of the file and its directories", what, spec,
			s->mail_owner, db);
	free(err);
	buf_free(&out);
}

/* expect_keys - the keys of "key<TAB>value" lines, one per line */
static char *
expect_keys(const char *expect)
{
	struct buf b = { 0 };
	char *k;

	for (const char *p = expect; *p; ) {
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

/* own_map_current - does our generated map exist, compiled, up to date,
 * and answer every key as it should? */
static int
own_map_current(struct setup *s, const char *path, const char *text,
		const char *spec, const char *db, const char *expect)
{
	struct stat sst, dst;
	struct buf out = { 0 };
	char *data = NULL, *err = NULL, *keys;
	size_t len = 0;
	int ok;

	if (fsutil_read_file(path, &data, &len, 1024 * 1024, &err) != 0 ||
	    strcmp(data, text) != 0 || stat(path, &sst) < 0 || stat(db, &dst) < 0 ||
	    dst.st_mtime < sst.st_mtime) {
		free(data);
		free(err);
		return 0;
	}
	free(data);
	/* expect: "key\tvalue\n" lines, exactly what postmap -q - prints */
	keys = expect_keys(expect);
	ok = map_query(s, spec, keys, &out, &err) == 0 && out.data &&
		strcmp(out.data, expect) == 0;
	free(keys);
	free(err);
	buf_free(&out);
	return ok;
}

/* milter_alive - does something accept connections on our milter socket?
 * 1 yes, 0 no (reason in *err_r), -1 not checked */
static int
milter_alive(struct setup *s, char **err_r)
{
	const char *spec = s->milter_canon;
	int fd, rc = 0;

	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		if (strlen(spec + 5) >= sizeof(sun.sun_path)) {
			set_error(err_r, "socket path too long");
			return 0;
		}
		strcpy(sun.sun_path, spec + 5);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			rc = 1;
		else
			set_error(err_r, "connect(%s): %s", spec + 5, strerror(errno));
		close(fd);
		return rc;
	}
	if (strncmp(spec, "inet:", 5) == 0) {
		/* inet:host:port, host possibly [v6] */
		char *host = xstrdup(spec + 5), *port = strrchr(host, ':');
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
		int gai;

		if (port == NULL) {
			free(host);
			return -1;
		}
		*port++ = '\0';
		if (host[0] == '[') {
			memmove(host, host + 1, strlen(host));
			host[strcspn(host, "]")] = '\0';
		}
		if ((gai = getaddrinfo(host, port, &hints, &ai)) != 0) {
			set_error(err_r, "%s: %s", spec, gai_strerror(gai));
			free(host);
			return 0;
		}
		for (struct addrinfo *a = ai; a && rc == 0; a = a->ai_next) {
			struct pollfd pfd;
			int e = 0;
			socklen_t el = sizeof(e);

			if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
					 SOCK_CLOEXEC, 0)) < 0)
				continue;
			if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
				rc = 1;
			else if (errno == EINPROGRESS) {
				pfd.fd = fd;
				pfd.events = POLLOUT;
				if (poll(&pfd, 1, 3000) == 1 &&
				    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0)
					rc = 1;
				else
					set_error(err_r, "connect(%s): %s", spec,
						  e ? strerror(e) : "timed out");
			} else
				set_error(err_r, "connect(%s): %s", spec, strerror(errno));
			close(fd);
		}
		freeaddrinfo(ai);
		free(host);
		return rc;
	}
	return -1;
}

/* map_file_of - the file behind a map spec that holds what the lookup
 * needs (the compiled file of an indexed map, the .cf of an SQL or LDAP
 * map, the file itself otherwise), or NULL when there is none */
static char *
map_file_of(const char *spec)
{
	static const char *const indexed[][2] = {
		{ "hash", ".db" }, { "btree", ".db" }, { "lmdb", ".lmdb" },
		{ "cdb", ".cdb" }, { "dbm", ".dir" }, { "sdbm", ".dir" },
	};
	const char *colon = strchr(spec, ':');
	size_t tlen;

	if (colon == NULL || colon[1] != '/')
		return NULL;	/* inline:{...}, static:..., unix:..., unionmap:{...} */
	tlen = (size_t)(colon - spec);
	for (size_t i = 0; i < N_ELEMENTS(indexed); i++)
		if (strlen(indexed[i][0]) == tlen && strncmp(spec, indexed[i][0], tlen) == 0)
			return xasprintf("%s%s", colon + 1, indexed[i][1]);
	return xstrdup(colon + 1);
}

/* probe_item - one map of the existing-address check, as the daemon
 * asked it: a problem with the fix when it could not */
static void
probe_item(void *arg, const struct msg *item)
{
	struct setup *s = arg;
	const char *map = msg_gets(item, "map"), *err = msg_gets(item, "error");
	char *file, *fix;
	struct stat st;
	struct group *gr;

	if (strcmp(msg_gets(item, "ok"), "yes") == 0)
		return;
	file = map_file_of(map);
	if (file != NULL && strstr(err, "Permission denied") != NULL &&
	    stat(file, &st) == 0) {
		struct passwd *pw = getpwuid(st.st_uid);

		gr = getgrgid(st.st_gid);
		fix = xasprintf("%s is %s:%s mode %04o: make it readable by group "
				POSTFIX_GROUP " as the mail server guides do (chgrp "
				POSTFIX_GROUP " %s && chmod g+r %s), and let group "
				POSTFIX_GROUP " through every directory above it; "
				"milter-alias-peer runs with group " POSTFIX_GROUP
				" (SupplementaryGroups= in its unit) and needs no more",
				file, pw ? pw->pw_name : "?", gr ? gr->gr_name : "?",
				(unsigned)(st.st_mode & 07777),
				file, file);
	} else if (strstr(err, "Permission denied") != NULL)
		fix = xstrdup("give group " POSTFIX_GROUP " read access to the map's "
			      "files (milter-alias-peer runs with that group)");
	else
		fix = xasprintf("make \"postmap -q %s@%s %s\" work (for an SQL or "
				"LDAP map: is its server running, are the credentials "
				"in its .cf file right?)", "milter-alias-probe",
				s->conf->domains.v[0], map);
	problem(s, "milter-alias-peer cannot ask %s (in %s), so it could not tell "
		"whether Postfix already delivers a name, and every alias request "
		"would get 451 4.3.5: %s; fix: %s", map, msg_gets(item, "params"), err, fix);
	free(fix);
	free(file);
}

/* check_resolve_maps - every map of the existing-address check, asked by
 * the running daemon itself (its user, groups and sandbox): the only
 * way to know that the check will work */
static void
check_resolve_maps(struct setup *s)
{
	struct msg req = { 0 }, resp = { 0 };
	struct ctlsock_opts o = { .timeout_ms = 120000, .item = probe_item, .item_arg = s };
	char *err = NULL;

	msg_set(&req, "op", "probe");
	if (!s->root && access(s->conf->control_socket, W_OK) < 0 && errno == EACCES)
		;	/* said by the "not run as root" note */
	else if (ctlsock_call(s->conf->control_socket, &req, &resp, &o, &err) < 0)
		problem(s, "milter-alias-peer does not answer on %s (%s): start it "
			"first; postfix-setup asks it to try every map of "
			"virtual_alias_maps, virtual_mailbox_maps and alias_maps, as "
			"only it can", s->conf->control_socket, err);
	else if (strcmp(msg_gets(&resp, "status"), "ok") != 0)
		problem(s, "milter-alias-peer could not try Postfix's maps: %s",
			msg_gets(&resp, "text"));
	else
		note(s, "milter-alias-peer asked every map of virtual_alias_maps, "
		     "virtual_mailbox_maps and alias_maps (%s)", msg_gets(&resp, "text"));
	free(err);
	msg_clear(&req);
	msg_clear(&resp);
}

/* --------------------------------------------------------------- plan -- */

static struct ledit *
ledit_get(struct setup *s, int master, const char *key, const char *label,
	  const char *orig, int existed)
{
	struct ledit *e;

	for (size_t i = 0; i < s->nled; i++)
		if (s->led[i].master == master && strcmp(s->led[i].key, key) == 0)
			return &s->led[i];
	s->led = xrealloc(s->led, (s->nled + 1) * sizeof(*s->led));
	e = &s->led[s->nled++];
	memset(e, 0, sizeof(*e));
	e->master = master;
	e->key = xstrdup(key);
	e->label = xstrdup(label);
	e->orig = str_trim(xstrdup(orig ? orig : ""));
	e->existed = existed;
	return e;
}

static struct change *
change_add(struct setup *s, enum ch_kind kind, const char *key, const char *value,
	   char *text /* taken */)
{
	struct change *c;

	s->ch = xrealloc(s->ch, (s->nch + 1) * sizeof(*s->ch));
	c = &s->ch[s->nch++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->key = xstrdup(key);
	c->value = xstrdup(value);
	c->text = text;
	c->status = "pending";
	return c;
}

/* main_edit - ledit for a main.cf list parameter, its raw value read */
static struct ledit *
main_edit(struct setup *s, const char *param, const char *raw)
{
	char *label = xasprintf("main.cf: %s", param);
	struct ledit *e = ledit_get(s, 0, param, label, raw, 1);

	free(label);
	return e;
}

static struct ledit *
master_edit(struct setup *s, const struct service *sv, const char *param,
	    const char *raw, int existed)
{
	char *key = xasprintf("%s/%s", sv->key, param);
	char *label = xasprintf("master.cf: %s: -o %s", sv->key, param);
	struct ledit *e = ledit_get(s, 1, key, label, raw, existed);

	free(key);
	free(label);
	return e;
}

/* our_maps_text - the generated request_map and transport_map sources */
static void
our_maps_text(struct setup *s, char **req_expect, char **tr_expect)
{
	static const char head[] =
		"# Generated by milter-aliasctl postfix-setup from milter-alias.conf;\n"
		"# do not edit: run postfix-setup again after changing request_address.\n";
	struct buf r = { 0 }, re = { 0 }, t = { 0 }, te = { 0 };
	const struct strlist *ra = &s->conf->request_addresses;

	buf_appendf(&r, "%s# Each request address is a recipient Postfix accepts, and "
		    "its mail is discarded\n# (the milter has acted on it before "
		    "the end of the SMTP transaction).\n", head);
	for (size_t i = 0; i < ra->n; i++) {
		size_t local = strcspn(ra->v[i], "@");

		buf_appendf(&r, "%s %.*s@" SETUP_DISCARD_DOMAIN "\n", ra->v[i],
			    (int)local, ra->v[i]);
		buf_appendf(&re, "%s\t%.*s@" SETUP_DISCARD_DOMAIN "\n", ra->v[i],
			    (int)local, ra->v[i]);
	}
	buf_appendf(&t, "%s" SETUP_DISCARD_DOMAIN " discard:\n", head);
	buf_appendf(&te, SETUP_DISCARD_DOMAIN "\tdiscard:\n");
	s->req_text = xstrdup(r.data);
	s->tr_text = xstrdup(t.data);
	*req_expect = xstrdup(re.data);
	*tr_expect = xstrdup(te.data);
	buf_free(&r);
	buf_free(&re);
	buf_free(&t);
	buf_free(&te);
}

/* plan_own_maps - request_map and transport_map in state_dir */
static void
plan_own_maps(struct setup *s)
{
	char *req_expect, *tr_expect;
	struct stat st;

	our_maps_text(s, &req_expect, &tr_expect);
	if (!own_map_current(s, s->req_path, s->req_text, s->req_spec, s->req_db,
			     req_expect)) {
		struct buf b = { 0 };
		struct change *c;

		for (size_t i = 0; i < s->conf->request_addresses.n; i++) {
			const char *a = s->conf->request_addresses.v[i];

			buf_appendf(&b, "%s%s -> %.*s@" SETUP_DISCARD_DOMAIN, i ? ", " : "",
				    a, (int)strcspn(a, "@"), a);
		}
		c = change_add(s, CH_MAP, s->req_path, s->req_text,
			       xasprintf("map: %s: write and build (%s), so that smtpd "
					 "accepts the request address%s", s->req_spec,
					 b.data, s->conf->request_addresses.n > 1 ? "es" : ""));
		c->spec = xstrdup(s->req_spec);
		c->db = xstrdup(s->req_db);
		c->error = req_expect;	/* the expected probe answer, until applied */
		req_expect = NULL;
		buf_free(&b);
	}
	if (!own_map_current(s, s->tr_path, s->tr_text, s->tr_spec, s->tr_db, tr_expect)) {
		struct change *c = change_add(s, CH_MAP, s->tr_path, s->tr_text,
			xasprintf("map: %s: write and build (" SETUP_DISCARD_DOMAIN
				  " -> discard:)", s->tr_spec));

		c->spec = xstrdup(s->tr_spec);
		c->db = xstrdup(s->tr_db);
		c->error = tr_expect;
		tr_expect = NULL;
	}
	free(req_expect);
	free(tr_expect);
	for (size_t i = 0; i < s->nch; i++)
		if (s->ch[i].kind == CH_MAP &&
		    (stat(s->conf->state_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
			problem(s, "state_dir %s does not exist: create it (the package "
				"does) and start milter-alias-peer first", s->conf->state_dir);
}

/* plan_maps - virtual_alias_maps (or alias_maps) and transport_maps */
static int
plan_maps(struct setup *s, char **err_r)
{
	char *raw = NULL, *x = NULL;
	struct ledit *e;

	/* The request map first: it holds only the request addresses, so it
	 * shadows nothing, and no catch-all elsewhere can swallow a request. */
	if (pc_value(s, "virtual_alias_maps", 0, &raw, err_r) < 0 ||
	    pc_value(s, "virtual_alias_maps", 1, &x, err_r) < 0)
		goto fail;
	if (!map_listed(x, s->req_spec)) {
		e = main_edit(s, "virtual_alias_maps", raw);
		strlist_add(&e->front, s->req_spec);
	}
	/* The alias map last: every other map keeps precedence. */
	if (strcmp(s->alias_param, "virtual_alias_maps") != 0) {
		xfree(&raw);
		xfree(&x);
		if (pc_value(s, s->alias_param, 0, &raw, err_r) < 0 ||
		    pc_value(s, s->alias_param, 1, &x, err_r) < 0)
			goto fail;
	}
	if (!map_listed(x, s->alias_spec)) {
		e = main_edit(s, s->alias_param, raw);
		strlist_add(&e->back, s->alias_spec);
	}
	check_daemon_map(s, "the alias map", s->alias_spec, s->alias_db);
	xfree(&raw);
	xfree(&x);

	/* transport_maps may be empty; ours first, for the same reason, and
	 * so that a "*" wildcard elsewhere does not relay requests. */
	if (pc_value(s, "transport_maps", 0, &raw, err_r) < 0 ||
	    pc_value(s, "transport_maps", 1, &x, err_r) < 0)
		goto fail;
	if (!map_listed(x, s->tr_spec)) {
		e = main_edit(s, "transport_maps", raw);
		strlist_add(&e->front, s->tr_spec);
	}
	free(raw);
	free(x);
	return 0;
fail:
	free(raw);
	free(x);
	return -1;
}

/* plan_access - the access map in smtpd_recipient_restrictions (main.cf
 * and every smtpd service that overrides it), and the restriction class */
static int
plan_access(struct setup *s, char **err_r)
{
	char *raw = NULL, *x = NULL, *check = xasprintf("check_recipient_access %s",
							 s->access_spec);
	struct ledit *e;
	int rc = -1;

	if (pc_value(s, "smtpd_recipient_restrictions", 0, &raw, err_r) < 0 ||
	    pc_value(s, "smtpd_recipient_restrictions", 1, &x, err_r) < 0)
		goto out;
	if (!check_listed(x, s->access_spec)) {
		e = main_edit(s, "smtpd_recipient_restrictions", raw);
		strlist_add(&e->front, check);
		if (*str_trim(raw) == '\0') {
			/* Empty: Postfix's default applied.  Write it out after ours. */
			char *def = pc_default(s, "smtpd_recipient_restrictions");

			if (*def) {
				xfree(&e->orig);
				e->orig = xstrdup(def);
				e->why = xasprintf("it was empty, so Postfix's default applied: "
						   "written out explicitly after ours: %s", def);
			} else
				e->why = xstrdup("it was empty, and Postfix's default "
						 "(postconf -d) is empty too: nothing else "
						 "to keep; smtpd_relay_restrictions keeps "
						 "doing relay control");
			free(def);
		}
	}
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct service *sv = &s->svc[i];
		const char *v = service_param(sv, "smtpd_recipient_restrictions");
		char *key, *sx = NULL;
		int r;

		if (v == NULL || sv->command == NULL || strcmp(sv->command, "smtpd") != 0)
			continue;
		key = xasprintf("%s/smtpd_recipient_restrictions", sv->key);
		r = pc_master_get(s, key, 1, &sx, err_r);
		free(key);
		if (r < 0)
			goto out;
		if (!check_listed(sx ? sx : "", s->access_spec)) {
			e = master_edit(s, sv, "smtpd_recipient_restrictions", v, 1);
			strlist_add(&e->front, check);
			e->why = xstrdup("the service overrides main.cf's list, and "
					 "disabled aliases must be refused on every service");
		}
		free(sx);
	}
	xfree(&raw);
	xfree(&x);

	if (pc_value(s, "smtpd_restriction_classes", 0, &raw, err_r) < 0 ||
	    pc_value(s, "smtpd_restriction_classes", 1, &x, err_r) < 0)
		goto out;
	if (!word_listed(x, SETUP_REQUEST_CLASS)) {
		e = main_edit(s, "smtpd_restriction_classes", raw);
		strlist_add(&e->back, SETUP_REQUEST_CLASS);
	}
	xfree(&raw);
	if (pc_get(s, SETUP_REQUEST_CLASS, 0, &raw, err_r) < 0)
		goto out;
	if (raw == NULL || strcmp(raw, REQUEST_CLASS_VALUE) != 0)
		s->class_was = xstrdup(raw ? raw : "");
	check_daemon_map(s, "the access map", s->access_spec, s->access_db);
	rc = 0;
out:
	free(raw);
	free(x);
	free(check);
	return rc;
}

/* plan_senders - the sender-login map in smtpd_sender_login_maps, where
 * that parameter is in use (main.cf and every smtpd service that sets its
 * own), last, so the administrator's maps keep precedence */
static int
plan_senders(struct setup *s, char **err_r)
{
	static const char param[] = "smtpd_sender_login_maps";
	char *raw = NULL, *x = NULL;
	int used = 0, rc = -1;
	struct ledit *e;

	if (pc_value(s, param, 0, &raw, err_r) < 0 || pc_value(s, param, 1, &x, err_r) < 0)
		goto out;
	if (*str_trim(x) != '\0') {
		used = 1;
		if (!map_listed(x, s->senders_spec)) {
			e = main_edit(s, param, raw);
			strlist_add(&e->back, s->senders_spec);
			e->why = xstrdup("so that owners may send as their aliases where "
					 "reject_sender_login_mismatch is enforced");
		}
	}
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct service *sv = &s->svc[i];
		const char *v = service_param(sv, param);
		char *key, *sx = NULL;
		int r;

		if (v == NULL || sv->command == NULL || strcmp(sv->command, "smtpd") != 0)
			continue;
		key = xasprintf("%s/%s", sv->key, param);
		r = pc_master_get(s, key, 1, &sx, err_r);
		free(key);
		if (r < 0)
			goto out;
		/* "$smtpd_sender_login_maps" gets ours through main.cf */
		if (*str_trim(sx ? sx : "") != '\0' && !refs_param(v, param)) {
			used = 1;
			if (!map_listed(sx, s->senders_spec)) {
				e = master_edit(s, sv, param, v, 1);
				strlist_add(&e->back, s->senders_spec);
				e->why = xstrdup("the service overrides main.cf's list");
			}
		}
		free(sx);
	}
	if (used)
		check_daemon_map(s, "the sender-login map", s->senders_spec, s->senders_db);
	else
		note(s, "%s is not in use: Postfix does not check who may send as "
		     "which address, so owners can send as their aliases already; "
		     "should you enable it, run postfix-setup again to add %s",
		     param, s->senders_spec);
	rc = 0;
out:
	free(raw);
	free(x);
	return rc;
}

/* plan_milter - our milter in the smtpd_milters of every SASL service */
static int
plan_milter(struct setup *s, char **err_r)
{
	char *main_raw = NULL, *main_x = NULL, *mua_raw = NULL, *mua_x = NULL;
	size_t nsasl = 0;
	int need_mua = 0, rc = -1;

	if (pc_value(s, "smtpd_milters", 0, &main_raw, err_r) < 0 ||
	    pc_value(s, "smtpd_milters", 1, &main_x, err_r) < 0 ||
	    pc_value(s, "mua_milters", 0, &mua_raw, err_r) < 0 ||
	    pc_value(s, "mua_milters", 1, &mua_x, err_r) < 0)
		goto out;
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct service *sv = &s->svc[i];
		const char *sasl = service_param(sv, "smtpd_sasl_auth_enable");
		const char *own = service_param(sv, "smtpd_milters");
		char *eff = NULL;
		struct ledit *e;

		if (sv->command == NULL || strcmp(sv->command, "smtpd") != 0 ||
		    sasl == NULL || strcasecmp(sasl, "yes") != 0)
			continue;
		nsasl++;
		if (strncmp(s->milter_canon, "unix:", 5) == 0 && sv->chroot &&
		    strcmp(sv->chroot, "y") == 0 &&
		    strncmp(s->milter_spec, "unix:/", 6) == 0)
			problem(s, "master.cf: %s runs chrooted (chroot column \"y\") in "
				"queue_directory %s, but milter_socket %s is outside it: "
				"move the socket under %s (for example unix:%s/milter-alias/"
				"milter.sock)", sv->key, s->queue_dir, s->conf->milter_socket,
				s->queue_dir, s->queue_dir);
		if (own != NULL) {
			char *key = xasprintf("%s/smtpd_milters", sv->key);
			int r = pc_master_get(s, key, 1, &eff, err_r);

			free(key);
			if (r < 0)
				goto out;
		}
		if (milter_listed(s, own != NULL ? (eff ? eff : "") : main_x)) {
			free(eff);
			continue;
		}
		free(eff);
		s->milter_needed = 1;
		if (own != NULL && refs_param(own, "mua_milters")) {
			need_mua = 1;
		} else if (own != NULL) {
			e = master_edit(s, sv, "smtpd_milters", own, 1);
			strlist_add(&e->back, s->milter_entry);
		} else if (*str_trim(main_x) == '\0') {
			char *key = xasprintf("%s/smtpd_milters", sv->key);

			change_add(s, CH_MASTER, key, "$mua_milters",
				   xasprintf("master.cf: %s: add -o smtpd_milters=$mua_milters "
					     "(the milter on this submission service only; "
					     "main.cf's smtpd_milters, which it used so far, "
					     "is empty)", sv->key));
			free(key);
			need_mua = 1;
		} else {
			/* -o smtpd_milters replaces main.cf's list: carry it over. */
			e = master_edit(s, sv, "smtpd_milters", main_raw, 0);
			strlist_add(&e->back, s->milter_entry);
			e->why = xstrdup("the service used main.cf's smtpd_milters so far; "
					 "-o smtpd_milters replaces that list, so its milters "
					 "are carried over");
		}
	}
	if (milter_listed(s, main_x))
		note(s, "milter-alias is also in main.cf's smtpd_milters, so port 25 "
		     "passes through it too (harmless, but if it is down, port 25 "
		     "answers 451 as well); it is needed on the SASL services only");
	if (nsasl == 0)
		problem(s, "no submission service with SASL in master.cf (an smtpd "
			"service with -o smtpd_sasl_auth_enable=yes): enable one first");
	if (need_mua && !milter_listed(s, mua_x)) {
		struct ledit *e = main_edit(s, "mua_milters", mua_raw);

		strlist_add(&e->back, s->milter_entry);
		e->why = xstrdup("the milters of the submission services that use "
				 "$mua_milters");
	}
	rc = 0;
out:
	free(main_raw);
	free(main_x);
	free(mua_raw);
	free(mua_x);
	return rc;
}

/* ledit_finish - turn each list edit into one change */
static void
ledit_finish(struct setup *s)
{
	for (size_t i = 0; i < s->nled; i++) {
		struct ledit *e = &s->led[i];
		struct strlist orig = { 0 }, all = { 0 };
		struct buf val = { 0 }, add = { 0 }, keep = { 0 }, text = { 0 };
		char *bad = NULL;

		if (e->front.n == 0 && e->back.n == 0)
			continue;
		strlist_split_postfix(e->orig, &orig);
		if (!e->master) {
			/* main.cf: the existing value stays as written */
			for (size_t k = 0; k < e->front.n; k++)
				buf_appendf(&val, "%s%s", val.len ? ", " : "", e->front.v[k]);
			if (orig.n)
				buf_appendf(&val, "%s%s", val.len ? ", " : "", e->orig);
			for (size_t k = 0; k < e->back.n; k++)
				buf_appendf(&val, "%s%s", val.len ? ", " : "", e->back.v[k]);
			buf_appendf(&keep, "%s", e->orig);
		} else {
			/* master.cf: postconf -P takes no white space */
			for (size_t k = 0; k < e->front.n; k++)
				strlist_split_postfix(e->front.v[k], &all);
			for (size_t k = 0; k < orig.n; k++)
				strlist_add(&all, orig.v[k]);
			for (size_t k = 0; k < e->back.n; k++)
				strlist_split_postfix(e->back.v[k], &all);
			for (size_t k = 0; k < all.n && bad == NULL; k++) {
				char *c = item_compact(all.v[k]);

				if (c == NULL)
					bad = xstrdup(all.v[k]);
				else
					buf_appendf(&val, "%s%s", k ? "," : "", c);
				free(c);
			}
			for (size_t k = 0; k < orig.n; k++) {
				char *c = item_compact(orig.v[k]);

				buf_appendf(&keep, "%s%s", k ? ", " : "", c ? c : orig.v[k]);
				free(c);
			}
		}
		for (size_t k = 0; k < e->front.n; k++)
			buf_appendf(&add, "%s%s%s", add.len ? ", " : "", e->front.v[k],
				    orig.n || e->back.n ? " first" : "");
		for (size_t k = 0; k < e->back.n; k++)
			buf_appendf(&add, "%s%s%s", add.len ? ", " : "", e->back.v[k],
				    orig.n || e->front.n ? " last" : "");
		buf_appendf(&text, "%s: add %s", e->label, add.data);
		if (orig.n)
			buf_appendf(&text, " (keeps %s)", keep.data);
		else if (e->master && !e->existed)
			buf_appendf(&text, " (new -o option)");
		else if (e->why == NULL)
			buf_appendf(&text, " (it was empty)");
		if (e->why)
			buf_appendf(&text, " (%s)", e->why);
		if (bad != NULL)
			problem(s, "%s: the item \"%s\" holds white space inside {}, which "
				"postconf -P cannot write into master.cf: add %s to that "
				"list by hand", e->label, bad, add.data);
		change_add(s, e->master ? CH_MASTER : CH_MAIN, e->key, val.data ? val.data : "",
			   xstrdup(text.data));
		free(bad);
		strlist_clear(&orig);
		strlist_clear(&all);
		buf_free(&val);
		buf_free(&add);
		buf_free(&keep);
		buf_free(&text);
	}
}

/* plan_class - the value of the restriction class, after the list edits
 * so that it is reported beside smtpd_restriction_classes */
static void
plan_class(struct setup *s)
{
	if (s->class_was == NULL)
		return;
	change_add(s, CH_MAIN, SETUP_REQUEST_CLASS, REQUEST_CLASS_VALUE,
		   xasprintf("main.cf: " SETUP_REQUEST_CLASS ": set to \"%s\" (the "
			     "restriction class the access map names for request "
			     "addresses: on every service, clients that have not "
			     "authenticated get 550 5.7.1)%s%s%s", REQUEST_CLASS_VALUE,
			     *s->class_was ? " (was: " : "", s->class_was,
			     *s->class_was ? ")" : ""));
}

/* milter_names - Postfix's name for our milter, from milter_socket
 * (libmilter syntax): unix:PATH under queue_directory becomes relative
 * (Postfix daemons run in queue_directory, chrooted or not);
 * inet:PORT@HOST becomes inet:HOST:PORT */
static void
milter_names(struct setup *s)
{
	const char *m = s->conf->milter_socket;
	const char *path = NULL;
	size_t ql = strlen(s->queue_dir);

	if (strncmp(m, "unix:", 5) == 0)
		path = m + 5;
	else if (strncmp(m, "local:", 6) == 0)
		path = m + 6;
	if (path != NULL) {
		if (strncmp(path, s->queue_dir, ql) == 0 && path[ql] == '/' && path[ql + 1])
			s->milter_spec = xasprintf("unix:%s", path + ql + 1);
		else
			s->milter_spec = xasprintf("unix:%s", path);
	} else {
		int v6 = strncmp(m, "inet6:", 6) == 0;
		const char *rest = m + (v6 ? 6 : 5), *at = strchr(rest, '@');
		char *port = at ? xstrndup(rest, (size_t)(at - rest)) : xstrdup(rest);
		char *host = at ? xstrdup(at + 1) : NULL;

		if (at == NULL && strspn(port, "0123456789") != strlen(port)) {
			s->milter_spec = xstrdup(m);	/* already host:port */
		} else {
			if (host && host[0] == '[') {
				memmove(host, host + 1, strlen(host));
				host[strcspn(host, "]")] = '\0';
			}
			if (host == NULL || *host == '\0' || strcmp(host, "0.0.0.0") == 0 ||
			    strcmp(host, "::") == 0 || strcasecmp(host, "INADDR_ANY") == 0) {
				free(host);
				host = xstrdup(v6 ? "::1" : "127.0.0.1");
			}
			s->milter_spec = strchr(host, ':') ?
				xasprintf("inet:[%s]:%s", host, port) :
				xasprintf("inet:%s:%s", host, port);
		}
		free(port);
		free(host);
	}
	s->milter_canon = milter_canon(s->milter_spec, s->queue_dir);
	/* A dead milter-alias must never yield 250: 250 means committed. */
	if (strcmp(s->default_action, "tempfail") == 0)
		s->milter_entry = xstrdup(s->milter_spec);
	else
		s->milter_entry = xasprintf("{%s,default_action=tempfail}", s->milter_spec);
}

/* ---------------------------------------------------------------- apply -- */

static const char *
kind_file(enum ch_kind k)
{
	return k == CH_MAP ? "map" : k == CH_MAIN ? "main.cf" : "master.cf";
}

static void
say(struct setup *s, const char *prefix, const char *text, const char *error)
{
	if (s->opts->json)
		return;
	printf("%s%s%s%s\n", prefix, text, error ? ": " : "", error ? error : "");
	fflush(stdout);
}

/* backup - copy main.cf/master.cf to NAME.milter-alias-backup.STAMP */
static int
backup(struct setup *s, const char *path, const char *stamp, char **err_r)
{
	char *data = NULL, *dst = NULL;
	size_t len = 0;
	struct stat st;
	int fd = -1, rc = -1;

	if (stat(path, &st) < 0 ||
	    fsutil_read_file(path, &data, &len, 64 * 1024 * 1024, err_r) != 0) {
		if (err_r && *err_r == NULL)
			set_error(err_r, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	for (int n = 0; n < 100 && fd < 0; n++) {
		free(dst);
		dst = n == 0 ? xasprintf("%s.milter-alias-backup.%s", path, stamp) :
			xasprintf("%s.milter-alias-backup.%s-%d", path, stamp, n);
		fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0777);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		set_error(err_r, "cannot create %s: %s", dst, strerror(errno));
		goto out;
	}
	if (fsutil_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		set_error(err_r, "write(%s): %s", dst, strerror(errno));
		close(fd);
		unlink(dst);
		goto out;
	}
	close(fd);
	strlist_add(&s->backups, dst);
	rc = 0;
out:
	free(data);
	free(dst);
	return rc;
}

/* build_map - write our map source, build it beside the live one, rename,
 * then query every key back */
static int
build_map(struct setup *s, struct change *c, char **err_r)
{
	char *tmp = xasprintf("%s.setup-build", c->key);
	char *tmp_db = xasprintf("%s.%s", tmp, s->sfx);
	char *tmp_spec = xasprintf("%s:%s", s->conf->map_type, tmp);
	char *argv[] = { POSTMAP, "-c", s->dir, tmp_spec, NULL };
	char *expect = c->error, *run_err = NULL, *keys;
	struct buf out = { 0 }, eout = { 0 };
	struct stat st;
	int status, rc = -1;

	c->error = NULL;
	if (fsutil_write_atomic(c->key, c->value, strlen(c->value), 0644, err_r) < 0)
		goto out;
	/* state_dir belongs to the daemons' user: give the source to that
	 * owner, so that postmap (which runs as the source file's owner) never
	 * works as root in a directory another user controls.  lchown: a
	 * symlink swapped in meanwhile is not followed. */
	if (s->root && stat(s->conf->state_dir, &st) == 0 && st.st_uid != 0 &&
	    lchown(c->key, st.st_uid, st.st_gid) < 0) {
		set_error(err_r, "chown(%s): %s", c->key, strerror(errno));
		goto out;
	}
	unlink(tmp);
	unlink(tmp_db);
	if (link(c->key, tmp) < 0) {
		set_error(err_r, "link(%s, %s): %s", c->key, tmp, strerror(errno));
		goto out;
	}
	status = tool(argv, NULL, &out, &eout, &run_err);
	if (status != 0) {
		char *f = tool_failure("postmap", status, &eout, run_err);

		set_error(err_r, "%s", f);
		free(f);
		goto out;
	}
	if (stat(tmp_db, &st) < 0) {
		set_error(err_r, "postmap succeeded but %s does not exist", tmp_db);
		goto out;
	}
	if (rename(tmp_db, c->db) < 0) {
		set_error(err_r, "rename(%s, %s): %s", tmp_db, c->db, strerror(errno));
		goto out;
	}
	if (fsutil_fsync_parent(c->db, err_r) < 0)
		goto out;
	/* Verify: the compiled file is there and answers every key. */
	if (stat(c->db, &st) < 0) {
		set_error(err_r, "%s does not exist after postmap", c->db);
		goto out;
	}
	keys = expect_keys(expect);
	buf_reset(&out);
	status = map_query(s, c->spec, keys, &out, err_r);
	free(keys);
	if (status < 0)
		goto out;
	if (out.data == NULL || strcmp(out.data, expect) != 0) {
		set_error(err_r, "postmap -q %s answered \"%s\" instead of \"%s\"", c->spec,
			  out.data ? out.data : "", expect);
		goto out;
	}
	if (readable_by_mail_owner(s, c->db) == 0) {
		set_error(err_r, "Postfix's mail_owner %s cannot read %s", s->mail_owner, c->db);
		goto out;
	}
	rc = 0;
out:
	unlink(tmp);
	unlink(tmp_db);
	free(tmp);
	free(tmp_db);
	free(tmp_spec);
	free(expect);
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return rc;
}

/* postconf_write - one postconf -e (main) or -P (master) with every change
 * of that kind; then read each value back */
static int
postconf_write(struct setup *s, enum ch_kind kind)
{
	size_t n = 0, nargs = 0;
	char **argv;
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL;
	int status, rc = 0;

	for (size_t i = 0; i < s->nch; i++)
		n += s->ch[i].kind == kind;
	if (n == 0)
		return 0;
	argv = xcalloc(n + 5, sizeof(*argv));
	argv[nargs++] = POSTCONF;
	argv[nargs++] = "-c";
	argv[nargs++] = s->dir;
	argv[nargs++] = kind == CH_MAIN ? "-e" : "-P";
	for (size_t i = 0; i < s->nch; i++)
		if (s->ch[i].kind == kind)
			argv[nargs++] = kind == CH_MAIN ?
				xasprintf("%s = %s", s->ch[i].key, s->ch[i].value) :
				xasprintf("%s=%s", s->ch[i].key, s->ch[i].value);
	status = tool(argv, NULL, &out, &eout, &run_err);
	if (status != 0 || (eout.data && strstr(eout.data, "fatal:"))) {
		char *f = tool_failure(kind == CH_MAIN ? "postconf -e" : "postconf -P",
				       status, &eout, run_err);

		for (size_t i = 0; i < s->nch; i++)
			if (s->ch[i].kind == kind) {
				s->ch[i].status = "failed";
				s->ch[i].error = xstrdup(f);
				say(s, "FAILED: ", s->ch[i].text, f);
			}
		free(f);
		rc = -1;
		goto out;
	}
	/* Read every value back, as Postfix now sees it. */
	for (size_t i = 0; i < s->nch; i++) {
		struct change *c = &s->ch[i];
		char *got = NULL, *err = NULL;
		int r;

		if (c->kind != kind)
			continue;
		r = kind == CH_MAIN ? pc_get(s, c->key, 0, &got, &err) :
			pc_master_get(s, c->key, 0, &got, &err);
		if (r == 1 && strcmp(got, c->value) == 0) {
			c->status = "done";
			say(s, "done: ", c->text, NULL);
		} else {
			c->status = "failed";
			c->error = r < 0 ? xstrdup(err) :
				xasprintf("postconf shows \"%s\" instead of \"%s\"",
					  got ? got : "(nothing)", c->value);
			say(s, "FAILED: ", c->text, c->error);
			rc = -1;
		}
		free(got);
		free(err);
	}
out:
	for (size_t i = 4; i < nargs; i++)
		free(argv[i]);
	free(argv);
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return rc;
}

/* postfix_check - "postfix check" under a pty: 0 clean, else -1 + reason */
static int
postfix_check(struct setup *s, char **err_r)
{
	char *argv[] = { POSTFIX, "-c", s->dir, "check", NULL };
	struct buf out = { 0 };
	char *run_err = NULL;
	int status, rc = 0;

	status = run_pty(argv, &out, TOOL_TIMEOUT_MS, &run_err);
	if (status != 0 || (out.data && (strcasestr(out.data, "warning") ||
					 strcasestr(out.data, "fatal") ||
					 strcasestr(out.data, "error")))) {
		char *o = xstrdup(out.data ? out.data : "");

		for (char *p = o; *p; p++)
			if (*p == '\n' && p[1])
				*p = ';';
		str_trim(o);
		if (status < 0)
			set_error(err_r, "postfix check: %s", run_err);
		else
			set_error(err_r, "postfix check (exit %d): %s", status,
				  *o ? o : "(no output)");
		free(o);
		rc = -1;
	} else if (out.len > 0) {
		char *l = last_line(&out);

		note(s, "postfix check said: %s", l);
		free(l);
	}
	free(run_err);
	buf_free(&out);
	return rc;
}

static int
postfix_running(struct setup *s)
{
	char *argv[] = { POSTFIX, "-c", s->dir, "status", NULL };
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL;
	int status = tool(argv, NULL, &out, &eout, &run_err);

	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return status == 0;
}

static void
mark_rest(struct setup *s)
{
	for (size_t i = 0; i < s->nch; i++)
		if (strcmp(s->ch[i].status, "pending") == 0) {
			s->ch[i].status = "not done";
			say(s, "not done: ", s->ch[i].text, NULL);
		}
}

static int
apply(struct setup *s)
{
	int need_backup = 0;
	char *err = NULL;
	struct tm tm;
	time_t now = time(NULL);
	char stamp[32];

	umask(022);
	for (size_t i = 0; i < s->nch; i++)
		need_backup |= s->ch[i].kind != CH_MAP;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (need_backup) {
		if (backup(s, s->main_cf, stamp, &err) < 0 ||
		    backup(s, s->master_cf, stamp, &err) < 0) {
			say(s, "FAILED: backup of main.cf and master.cf", "", err);
			problem(s, "backup failed: %s", err);
			goto fail;
		}
		for (size_t i = 0; i < s->backups.n; i++)
			say(s, "backup: ", s->backups.v[i], NULL);
	}
	for (size_t i = 0; i < s->nch; i++) {
		struct change *c = &s->ch[i];

		if (c->kind != CH_MAP)
			continue;
		if (build_map(s, c, &err) < 0) {
			c->status = "failed";
			c->error = err;
			err = NULL;
			say(s, "FAILED: ", c->text, c->error);
			goto fail;
		}
		c->status = "done";
		say(s, "done: ", c->text, NULL);
	}
	/* main.cf before master.cf: master.cf may name $mua_milters. */
	if (postconf_write(s, CH_MAIN) < 0 || postconf_write(s, CH_MASTER) < 0)
		goto fail;
	if (postfix_check(s, &err) < 0) {
		s->check = "failed";
		say(s, "FAILED: ", "postfix check", err);
		problem(s, "%s", err);
		goto fail;
	}
	s->check = "clean";
	say(s, "done: ", "postfix check: clean", NULL);
	if (!postfix_running(s)) {
		s->reload = "not running";
		say(s, "", "Postfix is not running: not started, not reloaded; it "
		    "uses the new configuration when it starts", NULL);
	} else {
		char *argv[] = { POSTFIX, "-c", s->dir, "reload", NULL };
		struct buf out = { 0 };
		char *run_err = NULL;
		int status = run_pty(argv, &out, TOOL_TIMEOUT_MS, &run_err);

		if (status != 0) {
			char *l = last_line(&out);

			s->reload = "failed";
			set_error(&err, "postfix reload failed (exit %d): %s", status,
				  status < 0 ? run_err : l);
			say(s, "FAILED: ", "postfix reload", err);
			problem(s, "%s", err);
			free(l);
			free(run_err);
			buf_free(&out);
			goto fail;
		}
		s->reload = "done";
		say(s, "done: ", "postfix reload", NULL);
		free(run_err);
		buf_free(&out);
	}
	free(err);
	return SETUP_OK;
fail:
	free(err);
	mark_rest(s);
	if (s->reload == NULL)
		s->reload = "not done";
	return SETUP_PENDING;
}

/* --------------------------------------------------------------- output -- */

static void
print_json(struct setup *s, int rc)
{
	printf("{\"config_directory\": ");
	json_print_string(stdout, s->dir);
	printf(", \"apply\": %s, \"result\": ", s->opts->apply ? "true" : "false");
	json_print_string(stdout, s->result);
	printf(", \"exit\": %d,\n \"changes\": [", rc);
	for (size_t i = 0; i < s->nch; i++) {
		const struct change *c = &s->ch[i];

		printf("%s\n  {\"file\": ", i ? "," : "");
		json_print_string(stdout, kind_file(c->kind));
		printf(", \"key\": ");
		json_print_string(stdout, c->kind == CH_MAP ? c->spec : c->key);
		printf(", \"value\": ");
		json_print_string(stdout, c->kind == CH_MAP ? c->db : c->value);
		printf(", \"status\": ");
		json_print_string(stdout, c->status);
		printf(", \"text\": ");
		json_print_string(stdout, c->text);
		if (c->error && strcmp(c->status, "failed") == 0) {
			printf(", \"error\": ");
			json_print_string(stdout, c->error);
		}
		printf("}");
	}
	printf("%s],\n \"problems\": [", s->nch ? "\n " : "");
	for (size_t i = 0; i < s->problems.n; i++) {
		printf("%s", i ? ", " : "");
		json_print_string(stdout, s->problems.v[i]);
	}
	printf("],\n \"notes\": [");
	for (size_t i = 0; i < s->notes.n; i++) {
		printf("%s", i ? ", " : "");
		json_print_string(stdout, s->notes.v[i]);
	}
	printf("],\n \"backups\": [");
	for (size_t i = 0; i < s->backups.n; i++) {
		printf("%s", i ? ", " : "");
		json_print_string(stdout, s->backups.v[i]);
	}
	printf("],\n \"postfix_check\": ");
	json_print_string(stdout, s->check ? s->check : "not run");
	printf(", \"reload\": ");
	json_print_string(stdout, s->reload ? s->reload : "not done");
	printf("}\n");
}

static void
print_notes(struct setup *s)
{
	if (s->opts->json)
		return;
	for (size_t i = 0; i < s->notes.n; i++)
		printf("note: %s\n", s->notes.v[i]);
}

static void
free_setup(struct setup *s)
{
	free(s->dir);
	free(s->main_cf);
	free(s->master_cf);
	free(s->queue_dir);
	free(s->mail_owner);
	free(s->default_action);
	free(s->alias_spec);
	free(s->alias_db);
	free(s->access_spec);
	free(s->access_db);
	free(s->senders_spec);
	free(s->senders_db);
	free(s->req_path);
	free(s->req_spec);
	free(s->req_db);
	free(s->req_text);
	free(s->tr_path);
	free(s->tr_spec);
	free(s->tr_db);
	free(s->tr_text);
	free(s->milter_spec);
	free(s->milter_entry);
	free(s->milter_canon);
	free(s->class_was);
	for (size_t i = 0; i < s->nsvc; i++) {
		free(s->svc[i].key);
		free(s->svc[i].command);
		free(s->svc[i].chroot);
		strlist_clear(&s->svc[i].pnames);
		strlist_clear(&s->svc[i].pvalues);
	}
	free(s->svc);
	for (size_t i = 0; i < s->nled; i++) {
		free(s->led[i].key);
		free(s->led[i].label);
		free(s->led[i].orig);
		free(s->led[i].why);
		strlist_clear(&s->led[i].front);
		strlist_clear(&s->led[i].back);
	}
	free(s->led);
	for (size_t i = 0; i < s->nch; i++) {
		free(s->ch[i].key);
		free(s->ch[i].value);
		free(s->ch[i].spec);
		free(s->ch[i].db);
		free(s->ch[i].text);
		free(s->ch[i].error);
	}
	free(s->ch);
	strlist_clear(&s->problems);
	strlist_clear(&s->notes);
	strlist_clear(&s->backups);
}

int
postfix_setup(const struct conf *conf, const struct setup_options *opts)
{
	struct setup s = { .conf = conf, .opts = opts };
	char *err = NULL, *milter_err = NULL;
	int rc = SETUP_ERROR;

	s.root = geteuid() == 0;
	if (opts->apply && !s.root) {
		fprintf(stderr, "milter-aliasctl: postfix-setup --apply must run as root "
			"(it edits Postfix's main.cf and master.cf); without --apply "
			"it only reports\n");
		return SETUP_ERROR;
	}
	s.dir = xstrdup(conf->postfix_config_dir);
	s.main_cf = xasprintf("%s/main.cf", s.dir);
	s.master_cf = xasprintf("%s/master.cf", s.dir);
	if (access(s.main_cf, R_OK) < 0 || access(s.master_cf, R_OK) < 0) {
		set_error(&err, "cannot read %s and %s: %s (postfix_config_dir in %s)",
			  s.main_cf, s.master_cf, strerror(errno), conf->path);
		goto fail;
	}
	if (pc_value(&s, "queue_directory", 1, &s.queue_dir, &err) < 0 ||
	    pc_value(&s, "mail_owner", 1, &s.mail_owner, &err) < 0 ||
	    pc_value(&s, "milter_default_action", 1, &s.default_action, &err) < 0 ||
	    read_master(&s, &err) < 0)
		goto fail;
	s.sfx = strcmp(conf->map_type, "hash") == 0 ? "db" : conf->map_type;
	s.alias_param = conf->map_format == MAP_FORMAT_ALIASES ? "alias_maps" :
		"virtual_alias_maps";
	s.alias_spec = xasprintf("%s:%s", conf->map_type, conf->map_file);
	s.alias_db = conf_compiled_map_path(conf);
	{
		char *src = conf_access_file(conf);

		s.access_spec = xasprintf("%s:%s", conf->map_type, src);
		free(src);
	}
	s.access_db = conf_compiled_access_path(conf);
	{
		char *src = conf_senders_file(conf);

		s.senders_spec = xasprintf("%s:%s", conf->map_type, src);
		free(src);
	}
	s.senders_db = conf_compiled_senders_path(conf);
	s.req_path = xasprintf("%s/request_map", conf->state_dir);
	s.req_spec = xasprintf("%s:%s", conf->map_type, s.req_path);
	s.req_db = xasprintf("%s.%s", s.req_path, s.sfx);
	s.tr_path = xasprintf("%s/transport_map", conf->state_dir);
	s.tr_spec = xasprintf("%s:%s", conf->map_type, s.tr_path);
	s.tr_db = xasprintf("%s.%s", s.tr_path, s.sfx);
	milter_names(&s);

	/* Plan: our maps first, then main.cf/master.cf in a safe order. */
	check_resolve_maps(&s);
	plan_own_maps(&s);
	if (plan_maps(&s, &err) < 0 || plan_access(&s, &err) < 0 ||
	    plan_senders(&s, &err) < 0 || plan_milter(&s, &err) < 0)
		goto fail;
	ledit_finish(&s);
	plan_class(&s);
	{
		/* The change list in the order of applying: maps, main.cf,
		 * master.cf (stable within each). */
		struct change *sorted = xcalloc(s.nch ? s.nch : 1, sizeof(*sorted));
		size_t n = 0;

		for (enum ch_kind k = CH_MAP; k <= CH_MASTER; k++)
			for (size_t i = 0; i < s.nch; i++)
				if (s.ch[i].kind == k)
					sorted[n++] = s.ch[i];
		free(s.ch);
		s.ch = sorted;
	}

	/* The milter: it must answer before Postfix is sent to it. */
	if (s.root) {
		int alive = milter_alive(&s, &milter_err);

		if (alive == 0 && s.milter_needed)
			problem(&s, "milter-alias does not accept connections on %s (%s): "
				"start milter-alias first, or every submission would "
				"answer 451", conf->milter_socket, milter_err);
		else if (alive == 0)
			note(&s, "milter-alias does not accept connections on %s (%s): "
			     "until it runs, submission mail gets 451 (try again later)",
			     conf->milter_socket, milter_err);
	} else
		note(&s, "not run as root: whether Postfix's mail_owner can read the "
		     "maps, whether milter-alias accepts connections, whether "
		     "milter-alias-peer can ask every map of the existing-address "
		     "check (unless this user may use the control socket) and postfix "
		     "check were not checked");
	if (s.root && opts->apply && s.nch > 0 && s.problems.n == 0 &&
	    postfix_check(&s, &err) < 0)
		problem(&s, "%s: Postfix's configuration has problems before any change; "
			"fix them first", err);
	if (strcmp(s.default_action, "tempfail") == 0)
		note(&s, "milter_default_action stays tempfail: if milter-alias cannot "
		     "answer, Postfix replies 451 (try again later), never a 250 for a "
		     "request that was not committed; with \"accept\" a request would "
		     "get 250 and be discarded unseen");
	else
		note(&s, "milter_default_action is %s; the milter-alias entry carries its "
		     "own default_action=tempfail, so that a request is never answered "
		     "250 without being committed", s.default_action);
	note(&s, "%s and %s come first in their lists: they hold only the request "
	     "addresses and the reserved domain " SETUP_DISCARD_DOMAIN ", so they "
	     "shadow nothing, and no catch-all or wildcard elsewhere can swallow a "
	     "request; %s comes last, so every other map keeps precedence",
	     s.req_spec, s.tr_spec, s.alias_spec);

	if (!opts->apply) {
		if (!opts->json) {
			for (size_t i = 0; i < s.nch; i++)
				printf("%s\n", s.ch[i].text);
			if (s.nch == 0)
				printf(s.problems.n ? "no changes needed in main.cf and "
				       "master.cf, but the problems below keep alias requests "
				       "from working\n" : "no changes needed\n");
			for (size_t i = 0; i < s.problems.n; i++)
				printf("problem: %s\n", s.problems.v[i]);
			print_notes(&s);
			if (s.nch > 0)
				printf("%zu change%s pending; run \"milter-aliasctl postfix-setup "
				       "--apply\" as root to make them\n", s.nch,
				       s.nch == 1 ? "" : "s");
		}
		rc = s.nch > 0 || s.problems.n > 0 ? SETUP_PENDING : SETUP_OK;
		s.result = s.nch > 0 ? "changes pending" : s.problems.n > 0 ?
			"problems" : "no changes needed";
		goto done;
	}
	if (s.problems.n > 0) {
		/* Nothing is touched while any precondition fails. */
		if (!opts->json) {
			for (size_t i = 0; i < s.problems.n; i++)
				fprintf(stderr, "milter-aliasctl: postfix-setup: %s\n",
					s.problems.v[i]);
			for (size_t i = 0; i < s.nch; i++)
				printf("not done: %s\n", s.ch[i].text);
			for (size_t i = 0; i < s.problems.n; i++)
				printf("problem: %s\n", s.problems.v[i]);
			print_notes(&s);
			printf("nothing was changed, Postfix was not reloaded: fix the "
			       "problem%s above first\n", s.problems.n == 1 ? "" : "s");
		}
		for (size_t i = 0; i < s.nch; i++)
			s.ch[i].status = "not done";
		s.reload = "not done";
		s.result = "failed: nothing changed";
		rc = SETUP_PENDING;
		goto done;
	}
	if (s.nch == 0) {
		if (!opts->json) {
			printf("no changes needed\n");
			print_notes(&s);
		}
		s.result = "no changes needed";
		s.reload = "not needed";
		rc = SETUP_OK;
		goto done;
	}
	rc = apply(&s);
	if (!opts->json) {
		print_notes(&s);
		if (rc == SETUP_OK)
			printf("applied %zu change%s, each verified; postfix check is clean; "
			       "%s\n", s.nch, s.nch == 1 ? "" : "s",
			       strcmp(s.reload, "done") == 0 ? "Postfix reloaded" :
			       "Postfix is not running (not started)");
		else {
			fprintf(stderr, "milter-aliasctl: postfix-setup: stopped at the failed "
				"step; Postfix was NOT reloaded\n");
			printf("stopped at the failed step; Postfix was NOT reloaded\n");
			if (s.backups.n == 2)
				printf("to undo: cp -p %s %s && cp -p %s %s\n", s.backups.v[0],
				       s.main_cf, s.backups.v[1], s.master_cf);
		}
	}
	s.result = rc == SETUP_OK ? "applied" : "failed";
	goto done;
fail:
	fprintf(stderr, "milter-aliasctl: postfix-setup: %s\n", err ? err : "failed");
	rc = SETUP_ERROR;
	s.result = "error";
	if (opts->json)
		print_json(&s, rc);
	goto out;
done:
	if (opts->json)
		print_json(&s, rc);
out:
	free(err);
	free(milter_err);
	free_setup(&s);
	return rc;
}
