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
#include "pftool.h"
#include "postfix.h"
#include "request.h"

/* map_tool - the program that compiles the alias map */
static const char *
map_tool(const struct conf *conf)
{
	return conf->map_format == MAP_FORMAT_ALIASES ? "postalias" : "postmap";
}

/* direct_spec - the map as the daemon asks it: "proxy:" dropped, also
 * inside unionmap:{...} and pipemap:{...}.  proxymap's socket is open to
 * Postfix's own user only; the daemon reads the table itself, with group
 * postfix (README, "Which maps the daemon can ask").  Caller frees. */
static char *
direct_spec(const char *item)
{
	struct buf b = { 0 };
	char *res;

	for (const char *p = item; *p; ) {
		if (strncmp(p, "proxy:", 6) == 0 &&
		    (p == item || strchr("{," POSTFIX_LIST_SEP, p[-1]) != NULL)) {
			p += 6;
			continue;
		}
		buf_append(&b, p++, 1);
	}
	res = xstrdup(b.data ? b.data : "");
	buf_free(&b);
	return res;
}

/* split_maps - the maps of a list parameter, as the daemon asks them;
 * drops this project's own map */
static void
split_maps(const struct conf *conf, const char *value, struct strlist *out)
{
	char *own = xasprintf("%s:%s", conf->map_type, conf->map_file);
	struct strlist items = { 0 };

	strlist_split_postfix(value, &items);
	for (size_t i = 0; i < items.n; i++) {
		char *t = direct_spec(items.v[i]);

		if (strcmp(t, own) != 0 && !strlist_contains(out, t, false))
			strlist_add(out, t);
		free(t);
	}
	strlist_clear(&items);
	free(own);
}

/* query_maps - look keys (one per line) up in several maps with one
 * postmap run; 1 and *where_r if any key is found (*key_r, if not NULL:
 * the first key found, as postmap printed it), 0 if none, -1 */
static int
query_maps(const struct conf *conf, const struct strlist *maps, const char *keys,
	   char **where_r, char **key_r, char **err_r)
{
	struct pftool_run r = { 0 };
	int rc = pftool_query(&r, conf->postfix_config_dir, maps, keys, err_r);

	if (rc > 0) {
		set_error(where_r, "%s", "an existing map entry");
		if (key_r != NULL && r.out.data != NULL)
			*key_r = xstrndup(r.out.data, strcspn(r.out.data, "\t\n"));
	}
	pftool_run_free(&r);
	return rc;
}

/*
 * The three map lists and recipient_delimiter, from postconf.  Asking postconf costs a process
 * (10-60 ms here), so its answer is kept until main.cf changes: the
 * parameters are main.cf's alone, and an edit or a replacement changes
 * the file's inode, size or nanosecond mtime/ctime.
 */
#define NLINES 4		/* the three map lists, recipient_delimiter */
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *config_dir;
	struct stat st;
	char *lines[NLINES];
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

/* lookup_maps - virtual_alias_maps, virtual_mailbox_maps, alias_maps
 * and recipient_delimiter as four caller-owned strings; 0 or -1 with a
 * reason */
static int
lookup_maps(const struct conf *conf, char *lines_r[NLINES], char **err_r)
{
	static const char *const args[] = {
		"-xh", "virtual_alias_maps", "virtual_mailbox_maps", "alias_maps",
		"recipient_delimiter", NULL
	};
	char *maincf = xasprintf("%s/main.cf", conf->postfix_config_dir);
	struct pftool_run r = { 0 };
	char *lines[NLINES] = { 0 }, *p;
	struct stat before, after;
	int have, rc = -1;

	have = stat(maincf, &before) == 0;
	pthread_mutex_lock(&maps_lock);
	if (have && maps_cache.config_dir != NULL &&
	    strcmp(maps_cache.config_dir, conf->postfix_config_dir) == 0 &&
	    same_stat(&before, &maps_cache.st)) {
		for (int i = 0; i < NLINES; i++)
			lines_r[i] = xstrdup(maps_cache.lines[i]);
		pthread_mutex_unlock(&maps_lock);
		free(maincf);
		return 0;
	}
	pthread_mutex_unlock(&maps_lock);

	if (pftool_run(&r, conf->postfix_config_dir, "postconf", args, NULL, 0,
		       NULL, err_r) < 0)
		goto out;
	p = r.out.data;
	for (int i = 0; i < NLINES; i++) {
		lines[i] = p;
		if (p != NULL && (p = strchr(p, '\n')) != NULL)
			*p++ = '\0';
	}
	if (lines[NLINES - 1] == NULL) {
		set_error(err_r, "postconf printed less than it was asked for");
		goto out;
	}
	for (int i = 0; i < NLINES; i++)
		lines_r[i] = xstrdup(lines[i]);
	rc = 0;
	/* Cache it only if main.cf did not change while postconf read it. */
	if (have && stat(maincf, &after) == 0 && same_stat(&before, &after)) {
		pthread_mutex_lock(&maps_lock);
		free(maps_cache.config_dir);
		maps_cache.config_dir = xstrdup(conf->postfix_config_dir);
		maps_cache.st = after;
		for (int i = 0; i < NLINES; i++) {
			free(maps_cache.lines[i]);
			maps_cache.lines[i] = xstrdup(lines[i]);
		}
		pthread_mutex_unlock(&maps_lock);
	}
out:
	pftool_run_free(&r);
	free(maincf);
	return rc;
}

/* The two postmap runs of one check go side by side. */
struct query_job {
	const struct conf *conf;
	const struct strlist *maps;
	const char *keys;
	char *where, *key, *err;
	int rc;
};

static void *
query_job_run(void *arg)
{
	struct query_job *j = arg;

	j->rc = query_maps(j->conf, j->maps, j->keys, &j->where, &j->key, &j->err);
	return NULL;
}

/* check_maps - the lists the check asks: maps[0] (virtual_alias_maps,
 * virtual_mailbox_maps) take full addresses, maps[1] (alias_maps) local
 * parts.  0 or -1 with a reason. */
static int
check_maps(const struct conf *conf, struct strlist maps[2], char **err_r)
{
	char *lines[NLINES] = { 0 };

	if (lookup_maps(conf, lines, err_r) < 0)
		return -1;
	split_maps(conf, lines[0], &maps[0]);
	split_maps(conf, lines[1], &maps[0]);
	split_maps(conf, lines[2], &maps[1]);
	for (int i = 0; i < NLINES; i++)
		free(lines[i]);
	return 0;
}

/* resolve_keys - ask every map of the check: vkeys are full addresses,
 * akeys local parts, one per line.  1 (*where_r; *key_r, if not NULL,
 * the key found), 0 or -1 (*err_r). */
static int
resolve_keys(const struct conf *conf, const char *vkeys, const char *akeys,
	     char **where_r, char **key_r, char **err_r)
{
	struct strlist maps[2] = { { 0 }, { 0 } };
	int rc;

	if (check_maps(conf, maps, err_r) < 0)
		return -1;
	struct query_job v = { conf, &maps[0], vkeys, NULL, NULL, NULL, -1 };
	struct query_job a = { conf, &maps[1], akeys, NULL, NULL, NULL, -1 };
	pthread_t t;
	int threaded = maps[0].n > 0 && maps[1].n > 0 &&
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
		if (key_r != NULL) {
			*key_r = hit->key;
			hit->key = NULL;
		}
		rc = 1;
	} else if (v.rc < 0 || a.rc < 0) {
		struct query_job *bad = v.rc < 0 ? &v : &a;

		set_error(err_r, "%s", bad->err ? bad->err : "postmap -q failed");
		rc = -1;
	} else
		rc = 0;
	free(v.where), free(v.key), free(v.err);
	free(a.where), free(a.key), free(a.err);
	strlist_clear(&maps[0]);
	strlist_clear(&maps[1]);
	return rc;
}

/*
 * Whether the check works, as the last check or probe found it.  Logged
 * once per change of state, not once per request; status shows it.
 */
static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int state;		/* 0 unknown, 1 working, -1 failing */
	char *error;
	long long at;		/* now_mono_ms() of the last answer */
} health;

static void
note_health(int rc, const char *err)
{
	int state = rc < 0 ? -1 : 1;

	pthread_mutex_lock(&health_lock);
	if (state != health.state) {
		if (state < 0)
			log_err(NULL, "resolve check: failing: %s; alias requests are "
				"answered 451 4.3.5 until it works (milter-aliasctl "
				"postfix-setup names the map and the fix)", err);
		else if (health.state < 0)
			log_info(NULL, "resolve check: working again");
	}
	health.state = state;
	free(health.error);
	health.error = state < 0 ? xstrdup(err ? err : "failed") : NULL;
	health.at = now_mono_ms();
	pthread_mutex_unlock(&health_lock);
}

int
postfix_recipient_delimiter(const struct conf *conf, char **delims_r, char **err_r)
{
	char *lines[NLINES] = { 0 };

	if (lookup_maps(conf, lines, err_r) < 0)
		return -1;
	*delims_r = xstrdup(str_trim(lines[3]));
	for (int i = 0; i < NLINES; i++)
		free(lines[i]);
	return 0;
}

/* local_user - is local the name of a local user? */
static int
local_user(const char *local)
{
	struct passwd pw, *res = NULL;
	char pwbuf[4096];

	return getpwnam_r(local, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res != NULL;
}

int
postfix_resolves(const struct conf *conf, const char *address, char **where_r,
		 char **err_r)
{
	char *local, *delims = NULL, *base = NULL, *blocal = NULL, *hit = NULL;
	char *where = NULL, *err = NULL;
	struct buf vkeys = { 0 }, akeys = { 0 };
	int rc;

	/* Postfix tries user+ext@domain as it is, then user@domain
	 * (virtual(5), aliases(5), local(8)): either one is a home. */
	if (postfix_recipient_delimiter(conf, &delims, &err) < 0) {
		note_health(-1, err);
		set_error(err_r, "%s", err);
		free(err);
		return -1;
	}
	local = xstrndup(address, strcspn(address, "@"));
	if ((base = request_address_base(address, delims)) != NULL)
		blocal = xstrndup(base, strcspn(base, "@"));
	if (local_user(local)) {
		set_error(where_r, "a local user");
		rc = 1;
		goto out;
	}
	if (blocal != NULL && local_user(blocal)) {
		set_error(where_r, "an address extension of the local user %s", blocal);
		rc = 1;
		goto out;
	}
	buf_appendf(&vkeys, "%s\n", address);
	buf_appendf(&akeys, "%s\n", local);
	if (base != NULL) {
		buf_appendf(&vkeys, "%s\n", base);
		buf_appendf(&akeys, "%s\n", blocal);
	}
	rc = resolve_keys(conf, vkeys.data, akeys.data, &where, &hit, &err);
	note_health(rc, err);
	if (rc < 0)
		set_error(err_r, "%s", err);
	else if (rc > 0 && base != NULL && hit != NULL &&
		 (strcasecmp(hit, base) == 0 || strcasecmp(hit, blocal) == 0))
		set_error(where_r, "an address extension of %s, which has %s",
			  strchr(hit, '@') ? base : blocal, where);
	else if (rc > 0) {
		*where_r = where;
		where = NULL;
	}
out:
	buf_free(&vkeys);
	buf_free(&akeys);
	free(where);
	free(hit);
	free(err);
	free(base);
	free(blocal);
	free(delims);
	free(local);
	return rc;
}

/* probe_keys - keys that exercise every map for every served domain: a
 * map limited to some domains (the "domain" option of SQL and LDAP
 * tables) is asked only for those */
static void
probe_keys(const struct conf *conf, struct buf *vkeys, struct buf *akeys)
{
	for (size_t i = 0; i < conf->domains.n; i++)
		buf_appendf(vkeys, POSTFIX_PROBE_LOCAL "@%s\n", conf->domains.v[i]);
	buf_appendf(akeys, POSTFIX_PROBE_LOCAL "\n");
}

int
postfix_check_state(void)
{
	int state;

	pthread_mutex_lock(&health_lock);
	state = health.state;
	pthread_mutex_unlock(&health_lock);
	return state;
}

int
postfix_check_health(const struct conf *conf, long long max_age_ms, char **err_r)
{
	int state;

	pthread_mutex_lock(&health_lock);
	state = health.state != 0 && now_mono_ms() - health.at <= max_age_ms ?
		health.state : 0;
	if (state < 0)
		set_error(err_r, "%s", health.error);
	pthread_mutex_unlock(&health_lock);
	if (state == 0) {
		struct buf v = { 0 }, a = { 0 };
		char *where = NULL, *err = NULL;
		int rc;

		probe_keys(conf, &v, &a);
		rc = resolve_keys(conf, v.data, a.data, &where, NULL, &err);
		note_health(rc, err);
		state = rc < 0 ? -1 : 1;
		if (rc < 0)
			set_error(err_r, "%s", err);
		free(where);
		free(err);
		buf_free(&v);
		buf_free(&a);
	}
	return state < 0 ? -1 : 0;
}

int
postfix_probe_maps(const struct conf *conf, struct postfix_probe **list_r,
		   size_t *n_r, char **err_r)
{
	/* the order of lookup_maps's lines; alias_maps takes local parts */
	static const char *const params[3] = {
		"virtual_alias_maps", "virtual_mailbox_maps", "alias_maps"
	};
	char *lines[NLINES] = { 0 };
	struct buf keys[2] = { { 0 }, { 0 } };
	struct postfix_probe *list = NULL;
	size_t n = 0, cap = 0;

	*list_r = NULL;
	*n_r = 0;
	if (lookup_maps(conf, lines, err_r) < 0)
		return -1;
	probe_keys(conf, &keys[0], &keys[1]);
	for (int k = 0; k < 3; k++) {
		struct strlist maps = { 0 };

		split_maps(conf, lines[k], &maps);
		for (size_t i = 0; i < maps.n; i++) {
			struct strlist one = { 0 };
			char *where = NULL;

			if (n == cap) {
				cap = cap ? 2 * cap : 8;
				list = xrealloc(list, cap * sizeof(*list));
			}
			memset(&list[n], 0, sizeof(list[n]));
			strlist_add(&one, maps.v[i]);
			list[n].params = params[k];
			list[n].map = xstrdup(maps.v[i]);
			list[n].ok = query_maps(conf, &one, keys[k == 2].data, &where,
						NULL, &list[n].error) >= 0;
			n++;
			free(where);
			strlist_clear(&one);
		}
		strlist_clear(&maps);
		free(lines[k]);
	}
	free(lines[3]);
	buf_free(&keys[0]);
	buf_free(&keys[1]);
	*list_r = list;
	*n_r = n;
	return 0;
}

void
postfix_probe_free(struct postfix_probe *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].map);
		free(list[i].error);
	}
	free(list);
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
	char *spec = direct_spec(map);
	int rc = pftool_lookup(conf->postfix_config_dir, spec, key, value_r, err_r);

	free(spec);
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
	const char *const args[] = { spec, NULL };
	struct pftool_run r = { 0 };
	int rc = -1;

	unlink(tmp);
	unlink(tmp_db);
	if (link(source, tmp) < 0) {
		set_error(err_r, "link(%s, %s) failed: %s", source, tmp, strerror(errno));
		goto out;
	}
	if (pftool_run(&r, conf->postfix_config_dir, tool, args, NULL, 0, NULL,
		       err_r) < 0) {
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
	pftool_run_free(&r);
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
	const char *args[5];
	struct pftool_run r = { 0 };
	int n = 0, del = strcmp(mode, "-d") == 0, rc;

	if (!del) {
		args[n++] = "-r";	/* replace an existing key */
		args[n++] = "-i";
	} else {
		args[n++] = "-d";
		args[n++] = "-";	/* keys on stdin */
	}
	args[n++] = spec;
	args[n] = NULL;
	/* postmap -d exits 1 when the key was absent: already as wanted. */
	rc = pftool_run(&r, conf->postfix_config_dir, tool, args, input,
			del ? PFTOOL_EXIT1_OK : 0, NULL, err_r);
	pftool_run_free(&r);
	free(spec);
	return rc;
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

	if (strcmp(tool, "postmap") != 0)
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
postfix_table_rebuild(const struct conf *conf, const char *source, char **err_r)
{
	return rebuild(conf, "postmap", source, err_r);
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
postfix_table_set(const struct conf *conf, const char *source, const char *key,
		  const char *line, char **err_r)
{
	char *k;
	int rc;

	if (strcmp(conf->map_type, "lmdb") != 0)
		return postfix_table_rebuild(conf, source, err_r);
	if (line != NULL)
		return edit_entry(conf, "postmap", source, "-i", line, err_r);
	k = xasprintf("%s\n", key);
	rc = edit_entry(conf, "postmap", source, "-d", k, err_r);
	free(k);
	return rc;
}

int
postfix_sendmail(const struct conf *conf, const char *sender,
		 const char *message, char **err_r)
{
	return pftool_sendmail(conf->sendmail_path, conf->postfix_config_dir, sender,
			       message, err_r);
}
