/* setup-look.c - postfix-setup, phase 1: Postfix as it is, read with
 * postconf (main.cf, master.cf), the maps as Postfix and the daemon see
 * them, the milter socket; see setup-private.h. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "fsutil.h"
#include "pftool.h"
#include "setup-private.h"

/* A parameter Postfix knows, overridden for one postconf run with
 * "-o CARRIER=$PARAM": postconf shows a user-defined parameter (mua_milters,
 * milter_alias_request) only when something references it. */
#define CARRIER "smtpd_banner"

/* pc_query - run one postconf read; 1 and *val_r (its first line, caller
 * frees), 0 when it printed nothing, -1 on error */
static int
pc_query(struct setup *s, const char *const args[], const char *what, char **val_r,
	 char **err_r)
{
	struct pftool_run r = { 0 };
	int rc;

	*val_r = NULL;
	if (pftool_run(&r, s->dir, "postconf", args, NULL, 0, what, err_r) < 0) {
		rc = -1;
	} else if (r.out.len == 0) {
		rc = 0;
	} else {
		r.out.data[strcspn(r.out.data, "\n")] = '\0';
		*val_r = xstrdup(r.out.data);
		rc = 1;
	}
	pftool_run_free(&r);
	return rc;
}

/* setup_pc_get - a main.cf parameter's value (raw, or expanded with -x).
 * 1 and *val_r (caller frees), 0 if Postfix does not know the parameter,
 * -1 on error. */
int
setup_pc_get(struct setup *s, const char *param, int expand, char **val_r, char **err_r)
{
	char *carrier = xasprintf(CARRIER "=$%s", param);
	const char *const args[] = {
		"-o", carrier, expand ? "-xh" : "-h", param, NULL
	};
	int rc = pc_query(s, args, "postconf", val_r, err_r);

	free(carrier);
	return rc;
}

/* setup_pc_value - like pc_get, "" for an unknown parameter; exits via -1 */
int
setup_pc_value(struct setup *s, const char *param, int expand, char **val_r, char **err_r)
{
	int rc = setup_pc_get(s, param, expand, val_r, err_r);

	if (rc == 0)
		*val_r = xstrdup("");
	return rc < 0 ? -1 : 0;
}

/* setup_pc_default - Postfix's built-in default (postconf -d) */
char *
setup_pc_default(struct setup *s, const char *param)
{
	const char *const args[] = { "-dh", param, NULL };
	char *v = NULL, *err = NULL;

	if (pc_query(s, args, "postconf -d", &v, &err) <= 0)
		v = xstrdup("");
	free(err);
	return v;
}

/* setup_pc_master_get - one service's -o value: 1 and *val_r, 0 absent, -1 error */
int
setup_pc_master_get(struct setup *s, const char *key, int expand, char **val_r, char **err_r)
{
	const char *const args[] = { expand ? "-Pxh" : "-Ph", key, NULL };

	return pc_query(s, args, "postconf -P", val_r, err_r);
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

const char *
setup_service_param(const struct service *sv, const char *name)
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
	static const char *const fargs[] = { "-F", NULL }, *const pargs[] = { "-P", NULL };
	struct pftool_run r = { 0 };
	char *save = NULL;
	int rc = -1;

	if (pftool_run(&r, s->dir, "postconf", fargs, NULL, 0, "postconf -F", err_r) < 0)
		goto out;
	for (char *line = r.out.data ? strtok_r(r.out.data, "\n", &save) : NULL; line;
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
	if (pftool_run(&r, s->dir, "postconf", pargs, NULL, 0, "postconf -P", err_r) < 0)
		goto out;
	save = NULL;
	for (char *line = r.out.data ? strtok_r(r.out.data, "\n", &save) : NULL; line;
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
	rc = 0;
out:
	pftool_run_free(&r);
	return rc;
}

/* setup_map_query - query keys (one per line in input) in spec; the
 * output of postmap -q - ("key<TAB>value" lines) appended to *out.  0 ok
 * (found or not), -1 with a reason when Postfix cannot open the map. */
int
setup_map_query(struct setup *s, const char *spec, const char *input, struct buf *out,
		char **err_r)
{
	struct strlist one = { 0 };
	struct pftool_run r = { 0 };
	int rc;

	strlist_add(&one, spec);
	rc = pftool_query(&r, s->dir, &one, input, err_r) < 0 ? -1 : 0;
	if (r.out.len > 0)
		buf_append(out, r.out.data, r.out.len);
	if (rc == 0 && r.err.data && strstr(r.err.data, "warning:")) {
		char *l = pftool_last_line(&r.err);

		setup_note(s, "postmap -q %s: %s", spec, l);
		free(l);
	}
	pftool_run_free(&r);
	strlist_clear(&one);
	return rc;
}

/* setup_readable - can Postfix's mail_owner read path (the whole
 * way down)?  Checked in a child that takes that user's identity.
 * 1 yes, 0 no, -1 could not tell. */
int
setup_readable(struct setup *s, const char *path)
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

/* setup_check_daemon_map - a map milter-alias-peer builds, which Postfix is or
 * will be pointed at: compiled file present, opens, readable */
void
setup_check_daemon_map(struct setup *s, const char *what, const char *spec, const char *db)
{
	struct stat st;
	struct buf out = { 0 };
	char *err = NULL;

	if (stat(db, &st) < 0) {
		setup_problem(s, "%s %s cannot be wired: %s: %s: start milter-alias-peer "
			"first: it builds %s", what, spec, db, strerror(errno), db);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		setup_problem(s, "%s %s: %s is not a regular file", what, spec, db);
		return;
	}
	if (setup_map_query(s, spec, "milter-alias-setup-probe\n", &out, &err) < 0)
		setup_problem(s, "%s %s: Postfix cannot open it: %s", what, spec, err);
	else if (setup_readable(s, db) == 0)
		setup_problem(s, "%s %s: Postfix's mail_owner %s cannot read %s: fix the "
			"permissions of the file and its directories", what, spec,
			s->mail_owner, db);
	free(err);
	buf_free(&out);
}

/* setup_own_map_current - does our generated map exist, compiled, up to date,
 * and answer every key as it should? */
int
setup_own_map_current(struct setup *s, const char *path, const char *text,
		      const char *spec, const char *db, const char *expect)
{
	struct stat sst, dst;
	char *data = NULL, *err = NULL;
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
	ok = setup_map_answers(s, spec, expect, &err) == 0;
	free(err);
	return ok;
}

/* setup_map_answers - does spec answer exactly expect ("key<TAB>value"
 * lines, what postmap -q - prints) when asked its keys?  0 yes, -1 with
 * a reason */
int
setup_map_answers(struct setup *s, const char *spec, const char *expect, char **err_r)
{
	char *keys = pftool_answer_keys(expect);
	struct buf out = { 0 };
	int rc = setup_map_query(s, spec, keys, &out, err_r);

	if (rc == 0 && (out.data == NULL || strcmp(out.data, expect) != 0)) {
		set_error(err_r, "postmap -q %s answered \"%s\" instead of \"%s\"", spec,
			  out.data ? out.data : "", expect);
		rc = -1;
	}
	free(keys);
	buf_free(&out);
	return rc;
}

/* setup_milter_alive - does something accept connections on our milter socket?
 * 1 yes, 0 no (reason in *err_r), -1 not checked */
int
setup_milter_alive(struct setup *s, char **err_r)
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
	setup_problem(s, "milter-alias-peer cannot ask %s (in %s), so it could not tell "
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
	const struct ctl_request probe = { .op = CTL_OP_PROBE };
	struct msg req = { 0 }, resp = { 0 };
	struct ctlsock_opts o = { .timeout_ms = 120000, .item = probe_item, .item_arg = s };
	struct ctl_reply r;
	char *err = NULL;

	ctlproto_request_encode(&probe, &req);
	if (!s->root && access(s->conf->control_socket, W_OK) < 0 && errno == EACCES)
		;	/* said by the "not run as root" note */
	else if (ctlsock_call(s->conf->control_socket, &req, &resp, &o, &err) < 0)
		setup_problem(s, "milter-alias-peer does not answer on %s (%s): start it "
			"first; postfix-setup asks it to try every map of "
			"virtual_alias_maps, virtual_mailbox_maps and alias_maps, as "
			"only it can", s->conf->control_socket, err);
	else if (ctlproto_reply_decode(&resp, &r, &err) < 0)
		setup_problem(s, "milter-alias-peer could not try Postfix's maps: it "
			      "sent %s", err);
	else if (r.status != CTL_OK)
		setup_problem(s, "milter-alias-peer could not try Postfix's maps: %s",
			r.text);
	else
		setup_note(s, "milter-alias-peer asked every map of virtual_alias_maps, "
		     "virtual_mailbox_maps and alias_maps (%s)", r.text);
	free(err);
	msg_clear(&req);
	msg_clear(&resp);
}

/* setup_milter_canon - "unix:/abs/path" or the inet spec, for comparisons; a
 * relative unix path is relative to queue_directory */
char *
setup_milter_canon(const char *name, const char *queue_dir)
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
	s->milter_canon = setup_milter_canon(s->milter_spec, s->queue_dir);
	/* A dead milter-alias must never yield 250: 250 means committed. */
	if (strcmp(s->default_action, "tempfail") == 0)
		s->milter_entry = xstrdup(s->milter_spec);
	else
		s->milter_entry = xasprintf("{%s,default_action=tempfail}", s->milter_spec);
}

/* our_names - the specs and files of every map and of the milter, as
 * Postfix is to name them */
static void
our_names(struct setup *s)
{
	const struct conf *conf = s->conf;
	char *src;

	s->sfx = strcmp(conf->map_type, "hash") == 0 ? "db" : conf->map_type;
	s->alias_param = conf->map_format == MAP_FORMAT_ALIASES ? "alias_maps" :
		"virtual_alias_maps";
	s->alias_spec = xasprintf("%s:%s", conf->map_type, conf->map_file);
	s->alias_db = conf_compiled_map_path(conf);
	src = conf_access_file(conf);
	s->access_spec = xasprintf("%s:%s", conf->map_type, src);
	free(src);
	s->access_db = conf_compiled_access_path(conf);
	src = conf_senders_file(conf);
	s->senders_spec = xasprintf("%s:%s", conf->map_type, src);
	free(src);
	s->senders_db = conf_compiled_senders_path(conf);
	s->req_path = xasprintf("%s/request_map", conf->state_dir);
	s->req_spec = xasprintf("%s:%s", conf->map_type, s->req_path);
	s->req_db = xasprintf("%s.%s", s->req_path, s->sfx);
	s->tr_path = xasprintf("%s/transport_map", conf->state_dir);
	s->tr_spec = xasprintf("%s:%s", conf->map_type, s->tr_path);
	s->tr_db = xasprintf("%s.%s", s->tr_path, s->sfx);
	milter_names(s);
}

int
setup_look(struct setup *s, char **err_r)
{
	s->dir = xstrdup(s->conf->postfix_config_dir);
	s->main_cf = xasprintf("%s/main.cf", s->dir);
	s->master_cf = xasprintf("%s/master.cf", s->dir);
	if (access(s->main_cf, R_OK) < 0 || access(s->master_cf, R_OK) < 0) {
		set_error(err_r, "cannot read %s and %s: %s (postfix_config_dir in %s)",
			  s->main_cf, s->master_cf, strerror(errno), s->conf->path);
		return -1;
	}
	if (setup_pc_value(s, "queue_directory", 1, &s->queue_dir, err_r) < 0 ||
	    setup_pc_value(s, "mail_owner", 1, &s->mail_owner, err_r) < 0 ||
	    setup_pc_value(s, "milter_default_action", 1, &s->default_action, err_r) < 0 ||
	    read_master(s, err_r) < 0)
		return -1;
	our_names(s);
	check_resolve_maps(s);
	return 0;
}

/* setup_postfix_check - "postfix check" under a pty: 0 clean, else -1 + reason */
int
setup_postfix_check(struct setup *s, char **err_r)
{
	static const char *const args[] = { "check", NULL };
	struct buf out = { 0 };
	char *run_err = NULL;
	int status, rc = 0;

	status = pftool_run_pty(s->dir, "postfix", args, &out, &run_err);
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
		char *l = pftool_last_line(&out);

		setup_note(s, "postfix check said: %s", l);
		free(l);
	}
	free(run_err);
	buf_free(&out);
	return rc;
}
