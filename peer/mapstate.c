/* mapstate.c - the map state of one server; see mapstate.h. */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "log.h"
#include "mapstate.h"
#include "request.h"
#include "postfix.h"

/* A map file this daemon replaced is watched this long (ms) for an edit
 * that lands in it after the rename (catch_late), at most this many. */
#define LATE_GRACE_MS	60000
#define LATE_FILES	4

struct mapstate {
	const struct conf *conf;
	struct aliasmap map;
	int dirty;		/* committed state not yet in the files */
	int broken;		/* someone else's edit made the file unreadable */
	char *problem;		/* while broken: "file: line N: reason" */
	struct strlist unsaved;	/* addresses changed in memory since the file was
				 * last written in full: kept over a hand edit */
	struct stat st;		/* the map file as this daemon last wrote it */
	unsigned char access_sum[32];	/* SHA-256 of the access source last written */
	int access_sum_set;
	unsigned char senders_sum[32];	/* the same for the sender-login map */
	int senders_sum_set;
	struct strlist pending;	/* addresses prepared here for a peer, undecided */
	struct late {		/* map files this daemon replaced lately */
		struct fsutil_replaced r;
		long long since;	/* now_mono_ms() of the replace */
	} late[LATE_FILES];
};

int
mapstate_open(const struct conf *conf, struct mapstate **ms_r, char **err_r)
{
	struct mapstate *ms = xcalloc(1, sizeof(*ms));

	ms->conf = conf;
	for (size_t i = 0; i < LATE_FILES; i++)
		ms->late[i].r.fd = -1;
	if (aliasmap_load(conf->map_file, conf->map_format, &ms->map, err_r) < 0) {
		free(ms);
		*ms_r = NULL;
		return -1;
	}
	*ms_r = ms;
	return 0;
}

void
mapstate_close(struct mapstate **msp)
{
	struct mapstate *ms = *msp;

	if (ms == NULL)
		return;
	for (size_t i = 0; i < LATE_FILES; i++)
		fsutil_replaced_close(&ms->late[i].r);
	aliasmap_clear(&ms->map);
	strlist_clear(&ms->pending);
	strlist_clear(&ms->unsaved);
	free(ms->problem);
	free(ms);
	*msp = NULL;
}

const struct aliasmap *
mapstate_map(const struct mapstate *ms)
{
	return &ms->map;
}

const struct alias *
mapstate_extension_holder(const struct mapstate *ms, const char *address,
			  const char *delims)
{
	char *base = request_address_base(address, delims);
	const struct alias *a = base ? mapstate_key_holder(ms, base) : NULL;

	free(base);
	return a != NULL && a->state != ALIAS_DELETED ? a : NULL;
}

const struct alias *
mapstate_key_holder(const struct mapstate *ms, const char *address)
{
	return aliasmap_find_key(&ms->map, ms->conf->map_format, address);
}

void
mapstate_put(struct mapstate *ms, const struct alias *a)
{
	aliasmap_put(&ms->map, a);
}

void
mapstate_defer(struct mapstate *ms, const char *address)
{
	strlist_add(&ms->pending, address);
}

/* dirty is read without the map file lock (status, compaction) */
static void
set_dirty(struct mapstate *ms, int on)
{
	__atomic_store_n(&ms->dirty, on, __ATOMIC_SEQ_CST);
}

int
mapstate_dirty(const struct mapstate *ms)
{
	return __atomic_load_n(&ms->dirty, __ATOMIC_SEQ_CST);
}

const char *
mapstate_problem(const struct mapstate *ms)
{
	return ms->broken ? ms->problem : NULL;
}

/* late_look - what was written into the replaced map file l since the
 * last look: an append goes on in the map file (1: it is read from
 * there as a hand edit); anything else is said, once */
static int
late_look(struct mapstate *ms, struct late *l)
{
	const char *path = ms->conf->map_file;
	char *err = NULL;
	int rc = fsutil_late_edit(&l->r, path, &err);

	if (rc == 1)
		log_warnx(NULL, "map: %s: an edit was appended to it just as it was "
			  "replaced (by a program that had it open); it is appended "
			  "again to the new %s", path, path);
	else if (rc == 2)
		log_err(NULL, "map: %s: an edit was written into it just as it was "
			"replaced (by a program that had it open); it is not in the "
			"new %s: make it again", path, path);
	else if (rc < 0) {
		log_err(NULL, "map: %s", err);
		free(err);
	}
	return rc;
}

/* catch_late - look at the map files replaced lately: a program that
 * opened one before the rename (a shell's ">>" descheduled between its
 * open and its write under load) can write into it after, where no one
 * else would ever read it.  Those past the grace period are let go after
 * a last look.  1 if the map file was appended to. */
static int
catch_late(struct mapstate *ms)
{
	long long now = now_mono_ms();
	int appended = 0;

	for (size_t i = 0; i < LATE_FILES; i++) {
		struct late *l = &ms->late[i];

		if (l->r.fd < 0)
			continue;
		if (late_look(ms, l) == 1)
			appended = 1;
		if (now - l->since >= LATE_GRACE_MS)
			fsutil_replaced_close(&l->r);
	}
	return appended;
}

/* keep_late - watch the file just replaced; the oldest watched gives way */
static void
keep_late(struct mapstate *ms, const struct fsutil_replaced *r)
{
	struct late *slot = &ms->late[0];

	if (r->fd < 0)
		return;
	for (size_t i = 0; i < LATE_FILES; i++) {
		if (ms->late[i].r.fd < 0) {
			slot = &ms->late[i];
			break;
		}
		if (ms->late[i].since < slot->since)
			slot = &ms->late[i];
	}
	if (slot->r.fd >= 0) {
		late_look(ms, slot);
		fsutil_replaced_close(&slot->r);
	}
	slot->r = *r;
	slot->since = now_mono_ms();
}

/* save_source - the map file rewritten from memory, unless it is no
 * longer as it was last read or written (a hand edit since, or one made
 * while this write ran): then -1, and the retry reads it first.  ms->st
 * becomes the file as written (not as found after: an edit made just
 * after the rename is then read, never taken for ours). */
static int
save_source(struct mapstate *ms, char **err_r)
{
	struct stat written;
	struct fsutil_replaced old;
	const struct stat *expect = ms->st.st_ino != 0 ? &ms->st : NULL;
	int rc;

	catch_late(ms);
	rc = aliasmap_save(ms->conf->map_file, ms->conf->map_format, &ms->map, expect,
			   &written, &old, err_r);
	if (rc == 0) {
		ms->st = written;
		keep_late(ms, &old);
	}
	if (rc > 0) {
		set_error(err_r, "%s was changed while the change was being written; it is "
			  "read again first", ms->conf->map_file);
		return -1;
	}
	return rc;
}

/* pending_remove - forget that address is pending; 1 if it was */
static int
pending_remove(struct mapstate *ms, const char *address)
{
	for (size_t i = 0; i < ms->pending.n; i++)
		if (strcmp(ms->pending.v[i], address) == 0) {
			free(ms->pending.v[i]);
			ms->pending.v[i] = ms->pending.v[--ms->pending.n];
			ms->pending.v[ms->pending.n] = NULL;
			return 1;
		}
	return 0;
}

/* keep_unsaved - put into fresh (the file as it is now) the committed
 * changes that never reached the file; they are decided on every server
 * and win over an edit of the same address.  Returns how many. */
static size_t
keep_unsaved(struct mapstate *ms, struct aliasmap *fresh)
{
	size_t n = 0;

	for (size_t i = 0; i < ms->unsaved.n; i++) {
		const char *address = ms->unsaved.v[i];
		const struct alias *mine = aliasmap_find(&ms->map, address);
		const struct alias *theirs = aliasmap_find(fresh, address);

		if (mine == NULL)
			continue;
		if (theirs != NULL && (strcmp(theirs->target, mine->target) != 0 ||
				       theirs->state != mine->state))
			log_warnx(NULL, "map: %s: the edit of %s is replaced by its committed "
				  "change (state=%s target=%s)", ms->conf->map_file, address,
				  alias_state_name(mine->state), mine->target);
		aliasmap_put(fresh, mine);
		/* Mail to it was deferred until the file holds the change. */
		pending_remove(ms, address);
		n++;
	}
	return n;
}

static int save_files(struct mapstate *ms, int source, char **err_r);

int
mapstate_refresh(struct mapstate *ms)
{
	struct aliasmap fresh;
	struct stat st;
	char *err = NULL;
	size_t kept;

	catch_late(ms);
	if (stat(ms->conf->map_file, &st) < 0 || fsutil_same_file(&st, &ms->st))
		return ms->broken ? -1 : 0;
	if (aliasmap_load(ms->conf->map_file, ms->conf->map_format, &fresh, &err) < 0) {
		/* Said once per edit; status shows it as long as it lasts. */
		log_err(NULL, "map: %s was changed outside milter-alias-peer and "
			"cannot be read (%s); it is not rewritten, and changes are "
			"refused until it is fixed", ms->conf->map_file, err);
		free(ms->problem);
		ms->problem = err;
		ms->broken = 1;
		ms->st = st;
		return -1;
	}
	if (ms->broken)
		log_notice(NULL, "map: %s can be read again; changes are accepted again",
			   ms->conf->map_file);
	/* Never silently overwritten: the edit becomes this node's state, the
	 * digest changes, and anti-entropy and verify show the difference. */
	log_warnx(NULL, "map: %s was changed outside milter-alias-peer; using it as "
		  "it is now (%zu aliases, were %zu); milter-aliasctl verify compares "
		  "it with the peers", ms->conf->map_file, fresh.n, ms->map.n);
	kept = keep_unsaved(ms, &fresh);
	aliasmap_clear(&ms->map);
	ms->map = fresh;
	ms->broken = 0;
	ms->st = st;
	free(ms->problem);
	ms->problem = NULL;
	/* The files follow from the next writer (commit_tick's at the
	 * latest): the derived tables and compiled maps always, the source
	 * only if it lacks a committed change (kept); no Postfix tool runs
	 * here, under the caller's locks. */
	if (kept > 0)
		log_info(NULL, "map: %zu committed changes %s not in %s yet; it is "
			 "written again with them", kept, kept == 1 ? "is" : "are",
			 ms->conf->map_file);
	set_dirty(ms, 1);
	return 0;
}

int
mapstate_broken(const struct mapstate *ms)
{
	return ms->broken;
}

/* save_table - write a table source derived from the alias map, unless
 * it holds that already (most changes leave the access map as it was);
 * sum remembers what was written last */
static int
save_table(const char *path, const struct buf *b, unsigned char sum[32],
	   int *sum_set, char **err_r)
{
	unsigned char now[32];
	struct stat st;
	int rc = 0;

	gnutls_hash_fast(GNUTLS_DIG_SHA256, b->data, b->len, now);
	if (*sum_set && memcmp(now, sum, sizeof(now)) == 0 && stat(path, &st) == 0)
		return 0;
	if ((rc = fsutil_write_atomic(path, b->data, b->len, 0644, err_r)) == 0) {
		memcpy(sum, now, sizeof(now));
		*sum_set = 1;
	} else
		*sum_set = 0;
	return rc;
}

/* save_access - write the access map source */
static int
save_access(struct mapstate *ms, char **err_r)
{
	char *path = conf_access_file(ms->conf);
	struct buf b = { 0 };
	int rc;

	aliasmap_render_access(&ms->map, &ms->conf->request_addresses, &ms->pending, &b);
	rc = save_table(path, &b, ms->access_sum, &ms->access_sum_set, err_r);
	buf_free(&b);
	free(path);
	return rc;
}

/* save_senders - write the sender-login map source */
static int
save_senders(struct mapstate *ms, char **err_r)
{
	char *path = conf_senders_file(ms->conf);
	struct buf b = { 0 };
	int rc;

	aliasmap_render_senders(&ms->map, &b);
	rc = save_table(path, &b, ms->senders_sum, &ms->senders_sum_set, err_r);
	buf_free(&b);
	free(path);
	return rc;
}

/* save_files - write the map source (if source) and the derived tables,
 * and rebuild every compiled map */
static int
save_files(struct mapstate *ms, int source, char **err_r)
{
	char *access = conf_access_file(ms->conf), *senders = conf_senders_file(ms->conf);
	int rc = -1;

	if ((source && save_source(ms, err_r) < 0) ||
	    save_access(ms, err_r) < 0 || save_senders(ms, err_r) < 0 ||
	    postfix_map_rebuild(ms->conf, err_r) < 0 ||
	    postfix_table_rebuild(ms->conf, access, err_r) < 0 ||
	    postfix_table_rebuild(ms->conf, senders, err_r) < 0)
		goto out;
	if (source)
		strlist_clear(&ms->unsaved);
	set_dirty(ms, ms->unsaved.n > 0);
	rc = 0;
out:
	free(access);
	free(senders);
	return rc;
}

/* refuse_broken - -1 (with the reason) while the map file cannot be read:
 * it is never rewritten then */
static int
refuse_broken(const struct mapstate *ms, char **err_r)
{
	if (!ms->broken)
		return 0;
	set_error(err_r, "%s is not rewritten while it cannot be read: %s",
		  ms->conf->map_file, ms->problem ? ms->problem : "unreadable");
	return -1;
}

int
mapstate_save_all(struct mapstate *ms, char **err_r)
{
	if (refuse_broken(ms, err_r) < 0)
		return -1;
	return save_files(ms, 1, err_r);
}

int
mapstate_save_dirty(struct mapstate *ms, char **err_r)
{
	if (refuse_broken(ms, err_r) < 0)
		return -1;
	return save_files(ms, ms->unsaved.n > 0, err_r);
}

/* note_history - one line per applied change, for "show"; best effort:
 * the map and the journal are what must be durable, not this */
static void
note_history(struct mapstate *ms, const struct alias *after, const char *txn,
	     const char *coord)
{
	char *path = xasprintf("%s/history", ms->conf->state_dir);
	struct msg rec = { 0 };
	struct buf b = { 0 };
	FILE *f;

	msg_setf(&rec, "time", "%lld", now_wall());
	msg_set(&rec, "address", after->address);
	msg_set(&rec, "state", alias_state_name(after->state));
	msg_set(&rec, "target", after->target);
	msg_set(&rec, "txn", txn);
	msg_set(&rec, "coord", coord);
	if (after->expires > 0)
		msg_setf(&rec, "expires", "%lld", after->expires);
	if (alias_expired(after))
		msg_set(&rec, "expired", "1");
	msg_encode_line(&rec, &b);
	if ((f = fopen(path, "a")) == NULL || fprintf(f, "%s\n", b.data) < 0 ||
	    fclose(f) != 0)
		log_warn(txn, "history: cannot write %s", path);
	msg_clear(&rec);
	buf_free(&b);
	free(path);
}

/* access_sync - make the compiled access map's entry for address what
 * the state says (pending deferral, refusal, or none); had_entry: whether
 * it may have one now.  The source must be written already. */
static int
access_sync(struct mapstate *ms, const char *address, int had_entry, char **err_r)
{
	const struct alias *a = aliasmap_find(&ms->map, address);
	struct buf line = { 0 };
	int rc = 0;

	if (strlist_contains(&ms->pending, address, false))
		alias_pending_line(address, &line);
	else if (a != NULL)
		alias_access_line(a, &line);
	if (line.len > 0 || had_entry) {
		char *source = conf_access_file(ms->conf);

		rc = postfix_table_set(ms->conf, source, address,
				       line.len ? line.data : NULL, err_r);
		free(source);
	}
	buf_free(&line);
	return rc;
}

/* senders_sync - the sender-login map after a change of after: a new
 * alias's line is appended to the source (as the alias map's is), any
 * other change rewrites it; then the compiled entry follows */
static int
senders_sync(struct mapstate *ms, const struct alias *after, int is_new, char **err_r)
{
	char *source = conf_senders_file(ms->conf);
	struct buf line = { 0 };
	int has = alias_sender_line(after, &line), rc = 0;

	if (is_new && has) {
		rc = fsutil_append(source, line.data, line.len, err_r);
		ms->senders_sum_set = 0;	/* the file is no longer the rendering */
	} else if (!is_new)
		rc = save_senders(ms, err_r);
	if (rc == 0 && (has || !is_new))
		rc = postfix_table_set(ms->conf, source, after->address,
				       has ? line.data : NULL, err_r);
	buf_free(&line);
	free(source);
	return rc;
}

int
mapstate_set_pending(struct mapstate *ms, const char *address, int on, char **err_r)
{
	const struct alias *a = aliasmap_find(&ms->map, address);
	int had = a != NULL && a->state != ALIAS_ACTIVE, rc;

	if (on)
		strlist_add(&ms->pending, address);
	else
		had |= pending_remove(ms, address);
	rc = save_access(ms, err_r) < 0 || access_sync(ms, address, had, err_r) < 0 ? -1 : 0;
	if (rc < 0)
		set_dirty(ms, 1);
	return rc;
}

void
mapstate_stage(struct mapstate *ms, const struct alias *after, struct mapstate_staged *st)
{
	const struct alias *cur;

	memset(st, 0, sizeof(*st));
	/* A hand edit must not vanish under this write: read it first.  If
	 * it cannot be read, the file is left alone (mapstate_write): the
	 * change waits in memory and in the journal (dirty: never compacted
	 * away), mail to the address stays deferred, and the first refresh
	 * that can read the file again keeps the change over it
	 * (keep_unsaved). */
	st->unreadable = mapstate_refresh(ms) < 0;
	/* the file lacks a committed change other than this one */
	st->source_stale = ms->unsaved.n > 0;
	/* (after the refresh: kept over the file from now on) */
	if (!strlist_contains(&ms->unsaved, after->address, false))
		strlist_add(&ms->unsaved, after->address);
	if (st->unreadable) {
		st->was_pending = strlist_contains(&ms->pending, after->address, false);
		aliasmap_put(&ms->map, after);
		return;
	}
	cur = aliasmap_find(&ms->map, after->address);
	if (cur != NULL)
		alias_copy(&st->before, cur);
	/* The decision is in: the address is no longer pending here. */
	st->had_entry = pending_remove(ms, after->address) |
		(cur != NULL && cur->state != ALIAS_ACTIVE);
	aliasmap_put(&ms->map, after);
}

void
mapstate_staged_clear(struct mapstate_staged *st)
{
	alias_clear(&st->before);
}

/* write_source - the change into the map file: a new address appended
 * (the cost does not grow with the map), any other change by rewriting
 * the file.  An edit made since the file was last read is never written
 * over: the write is refused (the retry reads the file first).  One made
 * beside an append is never taken for ours: the file is then read again
 * at the next refresh. */
static int
write_source(struct mapstate *ms, const struct alias *after, const struct alias *b,
	     char **err_r)
{
	const char *path = ms->conf->map_file;
	struct stat pre, post;
	size_t len = 0;

	if (catch_late(ms) || stat(path, &pre) < 0 || !fsutil_same_file(&pre, &ms->st)) {
		set_error(err_r, "%s was changed while the change was being written; it is "
			  "read again first", path);
		return -1;
	}
	if (b == NULL) {
		if (aliasmap_append(path, ms->conf->map_format, after, &len, err_r) < 0)
			return -1;
		if (stat(path, &post) == 0 && post.st_ino == pre.st_ino &&
		    post.st_size == pre.st_size + (off_t)len)
			ms->st = post;
	} else {
		if (save_source(ms, err_r) < 0)
			return -1;
	}
	strlist_clear(&ms->unsaved);
	return 0;
}

int
mapstate_write(struct mapstate *ms, const struct alias *after,
	       const struct mapstate_staged *st, const char *txn, const char *coord,
	       char **err_r)
{
	const struct alias *b = st->before.address ? &st->before : NULL;
	int rc = 0, had_entry = st->had_entry;

	if (st->unreadable) {
		char *err = NULL;

		/* Mail to it deferred until the file holds the change. */
		if (!st->was_pending && mapstate_set_pending(ms, after->address, 1, &err) < 0) {
			log_err(txn, "access map: %s", err);
			free(err);
		}
		set_dirty(ms, 1);
		note_history(ms, after, txn, coord);
		refuse_broken(ms, err_r);
		return -1;
	}
	/* The files first follow what is in memory (a hand edit taken up,
	 * an earlier failure): with a committed change the file lacks, the
	 * source is written in full, this change included; else only the
	 * derived tables and compiled maps, and this change goes on below. */
	if (mapstate_dirty(ms) && st->source_stale)
		rc = mapstate_save_all(ms, err_r);
	else if (mapstate_dirty(ms) && save_files(ms, 0, err_r) < 0)
		rc = -1;
	/* A new address is appended (the cost does not grow with the map);
	 * any other change rewrites the file. */
	else if (write_source(ms, after, b, err_r) < 0 || save_access(ms, err_r) < 0)
		rc = -1;
	/* Never deliverable by accident: an alias becoming active gets its
	 * entry before its refusal goes; one going inactive is refused
	 * before its entry goes. */
	else if (after->state == ALIAS_ACTIVE)
		rc = postfix_map_update(ms->conf, b, after, err_r) < 0 ||
			access_sync(ms, after->address, had_entry, err_r) < 0 ||
			senders_sync(ms, after, b == NULL, err_r) < 0 ? -1 : 0;
	else
		rc = access_sync(ms, after->address, had_entry, err_r) < 0 ||
			postfix_map_update(ms->conf, b, after, err_r) < 0 ||
			senders_sync(ms, after, b == NULL, err_r) < 0 ? -1 : 0;
	/* what the files lack now: nothing, unless this failed */
	set_dirty(ms, rc < 0 || ms->unsaved.n > 0);
	note_history(ms, after, txn, coord);
	return rc;
}

void
mapstate_history(const struct mapstate *ms, const char *address, mapstate_emit_fn emit,
		 void *arg)
{
	char *path = xasprintf("%s/history", ms->conf->state_dir), *data = NULL;
	size_t len = 0;

	if (fsutil_read_file(path, &data, &len, 64u * 1024 * 1024, NULL) == 0) {
		for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			struct msg rec = { 0 };

			nl = strchr(line, '\n');
			if (msg_decode_line(line, nl ? (size_t)(nl - line) : strlen(line), &rec, NULL) == 0 &&
			    strcmp(msg_gets(&rec, "address"), address) == 0) {
				msg_set(&rec, "item", "history");
				emit(arg, &rec);
			}
			msg_clear(&rec);
		}
	}
	free(data);
	free(path);
}

