/* postfix.c - Postfix tools as the sync daemon uses them; see postfix.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "lmdbmap.h"
#include "log.h"
#include "postfix.h"
#include "run.h"

#define TOOL_TIMEOUT_MS 30000

static const char *
map_tool(const struct conf *conf)
{
	return conf->map_format == MAP_FORMAT_ALIASES ?
		POSTFIX_SBINDIR "/postalias" : POSTFIX_SBINDIR "/postmap";
}

/* tool_error - one-line summary of a failed tool run */
static void
tool_error(char **err_r, const char *what, int status, const struct buf *out,
	   const char *run_err)
{
	char line[300] = "";

	if (out->len > 0) {
		/* The last line of Postfix's output names the problem. */
		char *copy = xstrdup(out->data), *last = NULL;

		for (char *p = strtok(copy, "\n"); p; p = strtok(NULL, "\n"))
			last = p;
		snprintf(line, sizeof(line), "%s", last ? last : "");
		free(copy);
	}
	if (status < 0)
		set_error(err_r, "%s: %s", what, run_err);
	else
		set_error(err_r, "%s failed (exit %d): %s", what, status, line);
}

/* split_maps - "a, b c" -> list; drops this project's own map */
static void
split_maps(const struct conf *conf, const char *value, struct strlist *out)
{
	char *own = xasprintf("%s:%s", conf->map_type, conf->map_file);
	char *copy = xstrdup(value), *save = NULL;

	for (char *t = strtok_r(copy, ", \t\n", &save); t; t = strtok_r(NULL, ", \t\n", &save)) {
		const char *bare = strncmp(t, "proxy:", 6) == 0 ? t + 6 : t;

		if (strcmp(bare, own) == 0 || strlist_contains(out, t, false))
			continue;
		strlist_add(out, t);
	}
	free(copy);
	free(own);
}

/* query_maps - look key up in several maps with one postmap run */
static int
query_maps(const struct conf *conf, const struct strlist *maps, const char *key,
	   char **where_r, char **err_r)
{
	struct buf out = { 0 }, eout = { 0 };
	char **argv, *input, *run_err = NULL;
	size_t n = 0;
	int status, rc = -1;

	if (maps->n == 0)
		return 0;
	argv = xcalloc(maps->n + 6, sizeof(*argv));
	argv[n++] = POSTFIX_SBINDIR "/postmap";
	argv[n++] = "-c";
	argv[n++] = conf->postfix_config_dir;
	argv[n++] = "-q";
	argv[n++] = "-";	/* the key comes on stdin: no option injection */
	for (size_t i = 0; i < maps->n; i++)
		argv[n++] = maps->v[i];
	argv[n] = NULL;
	input = xasprintf("%s\n", key);
	status = run_program(argv, input, strlen(input), &out, &eout, TOOL_TIMEOUT_MS, &run_err);
	/* postmap -q - prints "key<TAB>value" per hit and exits 0 even when
	 * nothing matched; a fatal error exits non-zero. */
	if (status == 0 || status == 1) {
		rc = 0;
		for (char *line = out.data; line && *line; ) {
			char *nl = strchr(line, '\n');
			size_t klen = strlen(key);

			if (strncasecmp(line, key, klen) == 0 && line[klen] == '\t') {
				set_error(where_r, "%s", "an existing map entry");
				rc = 1;
				break;
			}
			line = nl ? nl + 1 : NULL;
		}
		if (rc == 0 && eout.len > 0 && strstr(eout.data, "fatal:")) {
			tool_error(err_r, "postmap -q", status, &eout, run_err);
			rc = -1;
		}
	} else
		tool_error(err_r, "postmap -q", status, &eout, run_err);
	free(run_err);
	free(input);
	free(argv);
	buf_free(&out);
	buf_free(&eout);
	return rc;
}

/*
 * The three map lists, from postconf.  Asking postconf costs a process
 * (10-60 ms here), so its answer is kept until main.cf changes: the
 * parameters are main.cf's alone, and an edit or a replacement changes
 * the file's inode, size or nanosecond mtime/ctime.
 */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *config_dir;
	struct stat st;
	char *lines[3];
} maps_cache;

static int
same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
		a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* lookup_maps - virtual_alias_maps, virtual_mailbox_maps and alias_maps
 * as three caller-owned strings; 0 or -1 with a reason */
static int
lookup_maps(const struct conf *conf, char *lines_r[3], char **err_r)
{
	char *argv[] = {
		POSTFIX_SBINDIR "/postconf", "-c", conf->postfix_config_dir, "-xh",
		"virtual_alias_maps", "virtual_mailbox_maps", "alias_maps", NULL
	};
	char *maincf = xasprintf("%s/main.cf", conf->postfix_config_dir);
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL, *lines[3] = { 0 }, *p;
	struct stat before, after;
	int status, have, rc = -1;

	have = stat(maincf, &before) == 0;
	pthread_mutex_lock(&maps_lock);
	if (have && maps_cache.config_dir != NULL &&
	    strcmp(maps_cache.config_dir, conf->postfix_config_dir) == 0 &&
	    same_stat(&before, &maps_cache.st)) {
		for (int i = 0; i < 3; i++)
			lines_r[i] = xstrdup(maps_cache.lines[i]);
		pthread_mutex_unlock(&maps_lock);
		free(maincf);
		return 0;
	}
	pthread_mutex_unlock(&maps_lock);

	status = run_program(argv, NULL, 0, &out, &eout, TOOL_TIMEOUT_MS, &run_err);
	if (status != 0) {
		tool_error(err_r, "postconf", status, &eout, run_err);
		goto out;
	}
	p = out.data;
	for (int i = 0; i < 3; i++) {
		lines[i] = p;
		if (p != NULL && (p = strchr(p, '\n')) != NULL)
			*p++ = '\0';
	}
	if (lines[2] == NULL) {
		set_error(err_r, "postconf printed less than it was asked for");
		goto out;
	}
	for (int i = 0; i < 3; i++)
		lines_r[i] = xstrdup(lines[i]);
	rc = 0;
	/* Cache it only if main.cf did not change while postconf read it. */
	if (have && stat(maincf, &after) == 0 && same_stat(&before, &after)) {
		pthread_mutex_lock(&maps_lock);
		free(maps_cache.config_dir);
		maps_cache.config_dir = xstrdup(conf->postfix_config_dir);
		maps_cache.st = after;
		for (int i = 0; i < 3; i++) {
			free(maps_cache.lines[i]);
			maps_cache.lines[i] = xstrdup(lines[i]);
		}
		pthread_mutex_unlock(&maps_lock);
	}
out:
	buf_free(&out);
	buf_free(&eout);
	free(run_err);
	free(maincf);
	return rc;
}

/* The two postmap runs of one check go side by side. */
struct query_job {
	const struct conf *conf;
	const struct strlist *maps;
	const char *key;
	char *where, *err;
	int rc;
};

static void *
query_job_run(void *arg)
{
	struct query_job *j = arg;

	j->rc = query_maps(j->conf, j->maps, j->key, &j->where, &j->err);
	return NULL;
}

int
postfix_resolves(const struct conf *conf, const char *address, char **where_r,
		 char **err_r)
{
	struct strlist vmaps = { 0 }, amaps = { 0 };
	char *lines[3] = { 0 }, *local;
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	int rc = -1;

	if (lookup_maps(conf, lines, err_r) < 0)
		return -1;
	split_maps(conf, lines[0], &vmaps);
	split_maps(conf, lines[1], &vmaps);
	split_maps(conf, lines[2], &amaps);

	local = xstrndup(address, strcspn(address, "@"));
	if (getpwnam_r(local, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL) {
		set_error(where_r, "a local user");
		rc = 1;
	} else {
		struct query_job v = { conf, &vmaps, address, NULL, NULL, -1 };
		struct query_job a = { conf, &amaps, local, NULL, NULL, -1 };
		pthread_t t;
		int threaded = vmaps.n > 0 && amaps.n > 0 &&
			pthread_create(&t, NULL, query_job_run, &a) == 0;

		query_job_run(&v);
		if (threaded)
			pthread_join(t, NULL);
		else
			query_job_run(&a);
		/* A hit anywhere wins over an error elsewhere: it is final. */
		if (v.rc > 0 || a.rc > 0) {
			struct query_job *hit = v.rc > 0 ? &v : &a;

			*where_r = hit->where;
			hit->where = NULL;
			rc = 1;
		} else if (v.rc < 0 || a.rc < 0) {
			struct query_job *bad = v.rc < 0 ? &v : &a;

			set_error(err_r, "%s", bad->err ? bad->err : "postmap -q failed");
			rc = -1;
		} else
			rc = 0;
		free(v.where), free(v.err), free(a.where), free(a.err);
	}
	free(local);
	strlist_clear(&vmaps);
	strlist_clear(&amaps);
	for (int i = 0; i < 3; i++)
		free(lines[i]);
	return rc;
}

struct postfix_check {
	const struct conf *conf;
	char *address, *where, *err;
	int rc, threaded;
	pthread_t thread;
};

static void *
check_run(void *arg)
{
	struct postfix_check *c = arg;

	c->rc = postfix_resolves(c->conf, c->address, &c->where, &c->err);
	return NULL;
}

struct postfix_check *
postfix_resolves_start(const struct conf *conf, const char *address)
{
	struct postfix_check *c = xcalloc(1, sizeof(*c));

	c->conf = conf;
	c->address = xstrdup(address);
	c->threaded = pthread_create(&c->thread, NULL, check_run, c) == 0;
	if (!c->threaded)
		check_run(c);	/* no thread to be had: ask now */
	return c;
}

int
postfix_resolves_finish(struct postfix_check *c, char **where_r, char **err_r)
{
	int rc;

	if (c->threaded)
		pthread_join(c->thread, NULL);
	rc = c->rc;
	if (rc > 0) {
		*where_r = c->where;
		c->where = NULL;
	} else if (rc < 0)
		set_error(err_r, "%s", c->err ? c->err : "resolve check failed");
	free(c->address);
	free(c->where);
	free(c->err);
	free(c);
	return rc;
}

int
postfix_map_query(const struct conf *conf, const char *map, const char *key,
		  char **value_r, char **err_r)
{
	char *argv[] = {
		POSTFIX_SBINDIR "/postmap", "-c", conf->postfix_config_dir, "-q", "-",
		(char *)map, NULL
	};
	struct buf out = { 0 }, eout = { 0 };
	char *input = xasprintf("%s\n", key), *run_err = NULL;
	size_t klen = strlen(key);
	int status, rc = -1;

	status = run_program(argv, input, strlen(input), &out, &eout, TOOL_TIMEOUT_MS, &run_err);
	if (status == 0 || status == 1) {
		rc = 0;
		if (out.len > klen && strncasecmp(out.data, key, klen) == 0 &&
		    out.data[klen] == '\t') {
			char *v = out.data + klen + 1;

			v[strcspn(v, "\n")] = '\0';
			*value_r = xstrdup(str_trim(v));
			rc = 1;
		} else if (strstr(eout.data ? eout.data : "", "fatal:")) {
			tool_error(err_r, "postmap -q", status, &eout, run_err);
			rc = -1;
		}
	} else
		tool_error(err_r, "postmap -q", status, &eout, run_err);
	free(input);
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return rc;
}

int
postfix_owner_address(const struct conf *conf, const char *login,
		      char **addr_r, char **err_r)
{
	char *value = NULL;
	int rc;

	*addr_r = NULL;
	if (conf->owner_map[0] == '\0') {
		if (strchr(login, '@') != NULL)
			*addr_r = str_lower(xstrdup(login));
		else
			*addr_r = str_lower(xasprintf("%s@%s", login, conf->domains.v[0]));
		return 0;
	}
	rc = postfix_map_query(conf, conf->owner_map, login, &value, err_r);
	if (rc <= 0)
		return rc < 0 ? -1 : 1;
	/* First address only: an alias points to exactly one owner. */
	value[strcspn(value, " \t,")] = '\0';
	*addr_r = value;
	return 0;
}

/* compiled_suffix - what postmap appends for the map type */
static const char *
compiled_suffix(const struct conf *conf)
{
	return strcmp(conf->map_type, "hash") == 0 ? "db" : conf->map_type;
}

/* rebuild - compile source into a new file beside the live one, then
 * rename it into place: readers see the old map or the new one */
static int
rebuild(const struct conf *conf, const char *tool, const char *source, char **err_r)
{
	char *tmp = xasprintf("%s.rebuild", source);
	char *tmp_db = xasprintf("%s.%s", tmp, compiled_suffix(conf));
	char *db = xasprintf("%s.%s", source, compiled_suffix(conf));
	char *spec = xasprintf("%s:%s", conf->map_type, tmp);
	char *argv[] = { (char *)tool, "-c", conf->postfix_config_dir, spec, NULL };
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL;
	int status, rc = -1;

	unlink(tmp);
	unlink(tmp_db);
	if (link(source, tmp) < 0) {
		set_error(err_r, "link(%s, %s) failed: %s", source, tmp, strerror(errno));
		goto out;
	}
	status = run_program(argv, NULL, 0, &out, &eout, TOOL_TIMEOUT_MS, &run_err);
	if (status != 0) {
		tool_error(err_r, tool, status, &eout, run_err);
		unlink(tmp_db);
		goto out;
	}
	if (rename(tmp_db, db) < 0) {
		set_error(err_r, "rename(%s, %s) failed: %s", tmp_db, db, strerror(errno));
		unlink(tmp_db);
		goto out;
	}
	rc = fsutil_fsync_parent(db, err_r);
out:
	unlink(tmp);
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	free(tmp);
	free(tmp_db);
	free(db);
	free(spec);
	return rc;
}

/* edit - one incremental run of tool on source's map: "-i" puts the
 * input's entries, "-d" deletes the input's keys */
static int
edit(const struct conf *conf, const char *tool, const char *source,
     const char *mode, const char *input, char **err_r)
{
	char *spec = xasprintf("%s:%s", conf->map_type, source);
	char *argv[8];
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL;
	int n = 0, status;

	argv[n++] = (char *)tool;
	argv[n++] = "-c";
	argv[n++] = conf->postfix_config_dir;
	if (strcmp(mode, "-i") == 0) {
		argv[n++] = "-r";	/* replace an existing key */
		argv[n++] = "-i";
	} else {
		argv[n++] = "-d";
		argv[n++] = "-";	/* keys on stdin */
	}
	argv[n++] = spec;
	argv[n] = NULL;
	status = run_program(argv, input, strlen(input), &out, &eout, TOOL_TIMEOUT_MS, &run_err);
	/* postmap -d exits 1 when the key was absent: already as wanted. */
	if (status != 0 && !(status == 1 && strcmp(mode, "-d") == 0)) {
		tool_error(err_r, tool, status, &eout, run_err);
		status = -1;
	} else
		status = 0;
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	free(spec);
	return status;
}

/*
 * edit_entry - edit() for one "key value" line (-i) or one key (-d) of an
 * lmdb: map, written in-process (lmdbmap.h) to keep postmap's process off
 * the commit path.  postalias maps keep postalias, whose keys are its own
 * business.  Should the direct write fail, postmap gets its turn and has
 * the last word.
 */
static int
edit_entry(const struct conf *conf, const char *tool, const char *source,
	   const char *mode, const char *input, char **err_r)
{
	char *db, *key, *value = NULL, *err = NULL;
	int rc;

	if (strcmp(tool, POSTFIX_SBINDIR "/postmap") != 0)
		return edit(conf, tool, source, mode, input, err_r);
	/* As postmap reads it: the key up to the first blank, folded to
	 * lower case; the value the rest of the line, trimmed. */
	key = str_lower(xstrndup(input, strcspn(input, " \t\r\n")));
	if (strcmp(mode, "-i") == 0) {
		char *rest = xstrdup(input + strlen(key));

		rest[strcspn(rest, "\r\n")] = '\0';
		value = xstrdup(str_trim(rest));
		free(rest);
	}
	db = xasprintf("%s.lmdb", source);
	rc = key[0] != '\0' && (value == NULL || value[0] != '\0') ?
		lmdbmap_put(db, key, value, &err) : -1;
	if (rc < 0) {
		log_warnx(NULL, "map %s: %s; trying %s", db, err ? err : "malformed entry", tool);
		rc = edit(conf, tool, source, mode, input, err_r);
	}
	free(err);
	free(db);
	free(key);
	free(value);
	return rc;
}

int
postfix_map_rebuild(const struct conf *conf, char **err_r)
{
	return rebuild(conf, map_tool(conf), conf->map_file, err_r);
}

int
postfix_access_rebuild(const struct conf *conf, char **err_r)
{
	char *source = conf_access_file(conf);
	int rc = rebuild(conf, POSTFIX_SBINDIR "/postmap", source, err_r);

	free(source);
	return rc;
}

int
postfix_map_update(const struct conf *conf, const struct alias *before,
		   const struct alias *after, char **err_r)
{
	struct buf line = { 0 };
	int rc = 0;

	/* hash and cdb cannot be updated safely in place (see README). */
	if (strcmp(conf->map_type, "lmdb") != 0)
		return postfix_map_rebuild(conf, err_r);
	if (after != NULL && after->state == ALIAS_ACTIVE) {
		alias_entry_line(after, conf->map_format, &line);
		rc = edit_entry(conf, map_tool(conf), conf->map_file, "-i", line.data, err_r);
	} else if (before != NULL && before->state == ALIAS_ACTIVE) {
		char *key = alias_map_key(before, conf->map_format);

		buf_appendf(&line, "%s\n", key);
		free(key);
		rc = edit_entry(conf, map_tool(conf), conf->map_file, "-d", line.data, err_r);
	}
	buf_free(&line);
	return rc;
}

int
postfix_access_set(const struct conf *conf, const char *address, const char *line,
		   char **err_r)
{
	char *source = conf_access_file(conf), *key;
	int rc;

	if (strcmp(conf->map_type, "lmdb") != 0)
		rc = postfix_access_rebuild(conf, err_r);
	else if (line != NULL)
		rc = edit_entry(conf, POSTFIX_SBINDIR "/postmap", source, "-i", line, err_r);
	else {
		key = xasprintf("%s\n", address);
		rc = edit_entry(conf, POSTFIX_SBINDIR "/postmap", source, "-d", key, err_r);
		free(key);
	}
	free(source);
	return rc;
}

int
postfix_sendmail(const struct conf *conf, const char *sender,
		 const char *message, char **err_r)
{
	char *argv[] = {
		conf->sendmail_path, "-C", conf->postfix_config_dir, "-i", "-t",
		"-f", (char *)sender, NULL
	};
	struct buf out = { 0 }, eout = { 0 };
	char *run_err = NULL;
	int status, rc = 0;

	status = run_program(argv, message, strlen(message), &out, &eout, TOOL_TIMEOUT_MS, &run_err);
	if (status != 0) {
		tool_error(err_r, "sendmail", status, &eout, run_err);
		rc = -1;
	}
	free(run_err);
	buf_free(&out);
	buf_free(&eout);
	return rc;
}
