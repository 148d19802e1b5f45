/* setup-apply.c - postfix-setup, phase 3: make the planned changes and
 * verify each one; see setup-private.h.
 *
 * The order (sort_changes in setup-plan.c): backups, our maps, main.cf
 * without the request route, master.cf, then -- once the milter entries
 * are live (postfix check, reload) -- the main.cf parameters that bring in
 * the request map and the discard transport, postfix check and reload.
 * Every smtpd reads main.cf when it starts, but master.cf's -o options
 * only after a reload: in this order no smtpd discards a request that no
 * milter sees.  The first step that fails stops the run: main.cf and
 * master.cf are put back from the backups, byte for byte, and Postfix is
 * reloaded again if it had been reloaded with the new files. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "pftool.h"
#include "setup-private.h"

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
	const char *const args[] = { tmp_spec, NULL };
	char *expect = c->error;
	struct pftool_run r = { 0 };
	struct stat st;
	int rc = -1;

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
	if (pftool_run(&r, s->dir, "postmap", args, NULL, 0, NULL, err_r) < 0)
		goto out;
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
	if (setup_map_answers(s, c->spec, expect, err_r) < 0)
		goto out;
	if (setup_readable(s, c->db) == 0) {
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
	pftool_run_free(&r);
	return rc;
}

/* restore - put main.cf and master.cf back from the backups, byte for byte
 * (each with write, fsync, rename); a file equal to its backup is left */
static int
restore(struct setup *s, char **err_r)
{
	const char *files[2] = { s->main_cf, s->master_cf };

	if (s->backups.n != 2) {
		set_error(err_r, "no backups to restore from");
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		char *bak = NULL, *cur = NULL;
		size_t blen = 0, clen = 0;
		struct stat st;
		int rc;

		if (stat(s->backups.v[i], &st) < 0 ||
		    fsutil_read_file(s->backups.v[i], &bak, &blen, 64 * 1024 * 1024,
				     err_r) != 0) {
			if (*err_r == NULL)
				set_error(err_r, "cannot read %s: %s", s->backups.v[i],
					  strerror(errno));
			free(bak);
			return -1;
		}
		if (fsutil_read_file(files[i], &cur, &clen, 64 * 1024 * 1024, NULL) == 0 &&
		    clen == blen && memcmp(cur, bak, blen) == 0)
			rc = 0;
		else
			rc = fsutil_write_atomic(files[i], bak, blen, st.st_mode & 07777, err_r);
		free(bak);
		free(cur);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* wanted - the changes one postconf run writes: main.cf's without or with
 * the request route, or master.cf's */
static int
wanted(const struct change *c, enum ch_kind kind, int route)
{
	return c->kind == kind && (kind != CH_MAIN || c->route == route);
}

/* postconf_write - one postconf -e (main) or -P (master) with every change
 * of that kind (main: with route or without); then read each value back */
static int
postconf_write(struct setup *s, enum ch_kind kind, int route)
{
	size_t n = 0, nargs = 0;
	const char **args;
	struct pftool_run run = { 0 };
	char *f = NULL;
	int rc = 0;

	for (size_t i = 0; i < s->nch; i++)
		n += wanted(&s->ch[i], kind, route);
	if (n == 0)
		return 0;
	args = xcalloc(n + 2, sizeof(*args));
	args[nargs++] = kind == CH_MAIN ? "-e" : "-P";
	for (size_t i = 0; i < s->nch; i++)
		if (wanted(&s->ch[i], kind, route))
			args[nargs++] = kind == CH_MAIN ?
				xasprintf("%s = %s", s->ch[i].key, s->ch[i].value) :
				xasprintf("%s=%s", s->ch[i].key, s->ch[i].value);
	if (pftool_run(&run, s->dir, "postconf", args, NULL, 0,
		       kind == CH_MAIN ? "postconf -e" : "postconf -P", &f) < 0) {
		for (size_t i = 0; i < s->nch; i++)
			if (wanted(&s->ch[i], kind, route)) {
				s->ch[i].status = "failed";
				s->ch[i].error = xstrdup(f);
				setup_say(s, "FAILED: ", s->ch[i].text, f);
			}
		rc = -1;
		goto out;
	}
	/* Read every value back, as Postfix now sees it. */
	for (size_t i = 0; i < s->nch; i++) {
		struct change *c = &s->ch[i];
		char *got = NULL, *err = NULL;
		int r;

		if (!wanted(c, kind, route))
			continue;
		r = kind == CH_MAIN ? setup_pc_get(s, c->key, 0, &got, &err) :
			setup_pc_master_get(s, c->key, 0, &got, &err);
		if (r == 1 && strcmp(got, c->value) == 0) {
			c->status = "done";
			setup_say(s, "done: ", c->text, NULL);
		} else {
			c->status = "failed";
			c->error = r < 0 ? xstrdup(err) :
				xasprintf("postconf shows \"%s\" instead of \"%s\"",
					  got ? got : "(nothing)", c->value);
			setup_say(s, "FAILED: ", c->text, c->error);
			rc = -1;
		}
		free(got);
		free(err);
	}
out:
	for (size_t i = 1; i < nargs; i++)
		free((char *)args[i]);
	free(args);
	free(f);
	pftool_run_free(&run);
	return rc;
}


static int
postfix_running(struct setup *s)
{
	static const char *const args[] = { "status", NULL };
	struct pftool_run r = { 0 };
	char *err = NULL;
	int rc = pftool_run(&r, s->dir, "postfix", args, NULL, 0, NULL, &err);

	free(err);
	pftool_run_free(&r);
	return rc == 0;
}

static void
mark_rest(struct setup *s)
{
	for (size_t i = 0; i < s->nch; i++)
		if (strcmp(s->ch[i].status, "pending") == 0) {
			s->ch[i].status = "not done";
			setup_say(s, "not done: ", s->ch[i].text, NULL);
		}
}

/* check_and_reload - postfix check, then postfix reload if Postfix runs;
 * 0, or -1 with the failed step in s->failed_step */
static int
check_and_reload(struct setup *s)
{
	static const char *const args[] = { "reload", NULL };
	struct buf out = { 0 };
	char *err = NULL, *run_err = NULL;
	int status;

	if (setup_postfix_check(s, &err) < 0) {
		s->check = "failed";
		s->failed_step = "postfix check";
		setup_say(s, "FAILED: ", "postfix check", err);
		setup_problem(s, "%s", err);
		free(err);
		return -1;
	}
	s->check = "clean";
	setup_say(s, "done: ", "postfix check: clean", NULL);
	if (!postfix_running(s)) {
		s->reload = "not running";
		return 0;
	}
	s->reload = "failed";	/* until it is done */
	status = pftool_run_pty(s->dir, "postfix", args, &out, &run_err);
	if (status != 0) {
		char *l = pftool_last_line(&out);

		set_error(&err, "postfix reload failed (exit %d): %s", status,
			  status < 0 ? run_err : l);
		s->failed_step = "postfix reload";
		setup_say(s, "FAILED: ", "postfix reload", err);
		setup_problem(s, "%s", err);
		free(l);
		free(run_err);
		free(err);
		buf_free(&out);
		return -1;
	}
	s->reload = "done";
	s->reloaded++;
	setup_say(s, "done: ", "postfix reload", NULL);
	free(run_err);
	buf_free(&out);
	return 0;
}

/* roll_back - after a failed step that may have changed main.cf or
 * master.cf: the backups back in place, and Postfix reloaded with them if
 * it had been reloaded (or tried to) with the new files */
static void
roll_back(struct setup *s)
{
	static const char *const args[] = { "reload", NULL };
	int tried = s->reloaded > 0 || (s->reload && strcmp(s->reload, "failed") == 0);
	struct buf out = { 0 };
	char *err = NULL, *run_err = NULL;
	int status;

	if (restore(s, &err) < 0) {
		s->restored = -1;
		setup_say(s, "FAILED: ", "restoring main.cf and master.cf from the backups", err);
		setup_problem(s, "restoring main.cf and master.cf from the backups failed: %s", err);
		free(err);
		return;
	}
	s->restored = 1;
	setup_say(s, "restored: ", "main.cf and master.cf, from the backups", NULL);
	if (!tried)
		return;
	status = pftool_run_pty(s->dir, "postfix", args, &out, &run_err);
	if (status != 0) {
		char *l = pftool_last_line(&out);

		s->reload = "failed";
		set_error(&err, "postfix reload with the restored files failed (exit %d): %s",
			  status, status < 0 ? run_err : l);
		setup_say(s, "FAILED: ", "postfix reload with the restored files", err);
		setup_problem(s, "%s", err);
		free(l);
	} else {
		s->reload = "restored";
		setup_say(s, "done: ", "postfix reload with the restored files", NULL);
	}
	free(err);
	free(run_err);
	buf_free(&out);
}

int
setup_apply(struct setup *s)
{
	int need_backup = 0, touched = 0, route = 0, before_route = 0;
	char *err = NULL;
	struct tm tm;
	time_t now = time(NULL);
	char stamp[32];

	umask(022);
	for (size_t i = 0; i < s->nch; i++) {
		need_backup |= s->ch[i].kind != CH_MAP;
		route |= s->ch[i].route;
		before_route |= s->ch[i].kind != CH_MAP && !s->ch[i].route;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (need_backup) {
		if (backup(s, s->main_cf, stamp, &err) < 0 ||
		    backup(s, s->master_cf, stamp, &err) < 0) {
			s->failed_step = "backup";
			setup_say(s, "FAILED: backup of main.cf and master.cf", "", err);
			setup_problem(s, "backup failed: %s", err);
			goto fail;
		}
		for (size_t i = 0; i < s->backups.n; i++)
			setup_say(s, "backup: ", s->backups.v[i], NULL);
	}
	for (size_t i = 0; i < s->nch; i++) {
		struct change *c = &s->ch[i];

		if (c->kind != CH_MAP)
			continue;
		if (build_map(s, c, &err) < 0) {
			c->status = "failed";
			c->error = err;
			err = NULL;
			s->failed_step = c->text;
			setup_say(s, "FAILED: ", c->text, c->error);
			goto fail;
		}
		c->status = "done";
		setup_say(s, "done: ", c->text, NULL);
	}
	/* From here on main.cf or master.cf may change: a failure restores
	 * them.  main.cf before master.cf: master.cf may name $mua_milters. */
	touched = need_backup;
	if (postconf_write(s, CH_MAIN, 0) < 0) {
		s->failed_step = "postconf -e (main.cf)";
		goto fail;
	}
	if (postconf_write(s, CH_MASTER, 0) < 0) {
		s->failed_step = "postconf -P (master.cf)";
		goto fail;
	}
	/* The milter live everywhere before the request route exists. */
	if (route && before_route && check_and_reload(s) < 0)
		goto fail;
	if (postconf_write(s, CH_MAIN, 1) < 0) {
		s->failed_step = "postconf -e (main.cf: the request route)";
		goto fail;
	}
	if (check_and_reload(s) < 0)
		goto fail;
	if (strcmp(s->reload, "not running") == 0)
		setup_say(s, "", "Postfix is not running: not started, not reloaded; it "
		    "uses the new configuration when it starts", NULL);
	free(err);
	return SETUP_OK;
fail:
	free(err);
	mark_rest(s);
	if (touched)
		roll_back(s);
	if (s->reload == NULL || strcmp(s->reload, "not running") == 0)
		s->reload = "not done";
	return SETUP_PENDING;
}
