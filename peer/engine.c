/* engine.c - the sync daemon's operations: checks, queries, status, verify,
 * anti-entropy and the background thread.  The commit protocol itself is
 * commit.c; see engine.h and engine-private.h. */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine-private.h"
#include "fsutil.h"
#include "log.h"
#include "notify.h"
#include "postfix.h"
#include "replies.h"
#include "request.h"

#define RATE_WINDOW 3600
#define ANTI_ENTROPY_EVERY_MS 15000
#define BG_TICK_MS 1000
#define RECONNECT_EVERY_MS 2000

/* Requests per login within the last hour (kept in memory: a restart
 * forgets them, which errs on the side of the user). */
struct rate {
	char *login;
	long long *times;
	size_t n;
	size_t cap;
};

/* ---- per-address locks and rates (caller holds e->lock) ---- */

const char *
engine_busy_holder(struct engine *e, const char *address)
{
	for (size_t i = 0; i < e->nbusy; i++)
		if (strcmp(e->busy[i].address, address) == 0)
			return e->busy[i].txn;
	return NULL;
}

void
engine_busy_add(struct engine *e, const char *address, const char *txn)
{
	e->busy = xrealloc(e->busy, (e->nbusy + 1) * sizeof(*e->busy));
	e->busy[e->nbusy].address = xstrdup(address);
	snprintf(e->busy[e->nbusy].txn, sizeof(e->busy[e->nbusy].txn), "%s", txn);
	e->nbusy++;
}

int
engine_busy_take(struct engine *e, const char *address, const char *txn)
{
	if (engine_busy_holder(e, address) != NULL)
		return -1;
	engine_busy_add(e, address, txn);
	return 0;
}

void
engine_busy_release(struct engine *e, const char *address, const char *txn)
{
	for (size_t i = 0; i < e->nbusy; i++)
		if (strcmp(e->busy[i].address, address) == 0 &&
		    strcmp(e->busy[i].txn, txn) == 0) {
			free(e->busy[i].address);
			e->busy[i] = e->busy[--e->nbusy];
			return;
		}
}

/* rate_count_and_note - requests by login in the window, then note this one */
static size_t
rate_count_and_note(struct engine *e, const char *login)
{
	long long now = now_wall();
	struct rate *r = NULL;
	size_t kept = 0;

	for (size_t i = 0; i < e->nrates; i++)
		if (strcmp(e->rates[i].login, login) == 0)
			r = &e->rates[i];
	if (r == NULL) {
		e->rates = xrealloc(e->rates, (e->nrates + 1) * sizeof(*e->rates));
		r = &e->rates[e->nrates++];
		memset(r, 0, sizeof(*r));
		r->login = xstrdup(login);
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->times[i] > now - RATE_WINDOW)
			r->times[kept++] = r->times[i];
	r->n = kept;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->times = xrealloc(r->times, r->cap * sizeof(*r->times));
	}
	r->times[r->n++] = now;
	return kept;
}

/* ---- applying committed changes ---- */

/* note_written - remember the map file as we left it */
static void
note_written(struct engine *e)
{
	if (stat(e->conf->map_file, &e->map_st) < 0)
		memset(&e->map_st, 0, sizeof(e->map_st));
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
		a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int save_all(struct engine *e, char **err_r);

int
engine_refresh(struct engine *e)
{
	struct aliasmap fresh;
	struct stat st;
	char *err = NULL;

	if (stat(e->conf->map_file, &st) < 0 || same_file(&st, &e->map_st))
		return e->map_broken ? -1 : 0;
	if (aliasmap_load(e->conf->map_file, e->conf->map_format, &fresh, &err) < 0) {
		if (!e->map_broken)
			log_err(NULL, "map: %s was changed outside milter-alias-peer and "
				"cannot be read (%s); changes are refused until it is fixed",
				e->conf->map_file, err);
		e->map_broken = 1;
		e->map_st = st;		/* say it once per edit */
		free(err);
		return -1;
	}
	/* Never silently overwritten: the edit becomes this node's state, the
	 * digest changes, and anti-entropy and verify show the difference. */
	log_warnx(NULL, "map: %s was changed outside milter-alias-peer; using it as "
		  "it is now (%zu aliases, were %zu); milter-aliasctl verify compares "
		  "it with the peers", e->conf->map_file, fresh.n, e->map.n);
	aliasmap_clear(&e->map);
	e->map = fresh;
	e->map_broken = 0;
	if (save_all(e, &err) < 0) {
		log_err(NULL, "map: %s", err);
		free(err);
		e->map_dirty = 1;
	}
	return 0;
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
save_access(struct engine *e, char **err_r)
{
	char *path = conf_access_file(e->conf);
	struct buf b = { 0 };
	int rc;

	aliasmap_render_access(&e->map, &e->conf->request_addresses, &e->pending, &b);
	rc = save_table(path, &b, e->access_sum, &e->access_sum_set, err_r);
	buf_free(&b);
	free(path);
	return rc;
}

/* save_senders - write the sender-login map source */
static int
save_senders(struct engine *e, char **err_r)
{
	char *path = conf_senders_file(e->conf);
	struct buf b = { 0 };
	int rc;

	aliasmap_render_senders(&e->map, &b);
	rc = save_table(path, &b, e->senders_sum, &e->senders_sum_set, err_r);
	buf_free(&b);
	free(path);
	return rc;
}

/* save_all - write every map source and rebuild every compiled map */
static int
save_all(struct engine *e, char **err_r)
{
	char *access = conf_access_file(e->conf), *senders = conf_senders_file(e->conf);
	int rc = -1;

	if (aliasmap_save(e->conf->map_file, e->conf->map_format, &e->map, err_r) < 0 ||
	    save_access(e, err_r) < 0 || save_senders(e, err_r) < 0 ||
	    postfix_map_rebuild(e->conf, err_r) < 0 ||
	    postfix_table_rebuild(e->conf, access, err_r) < 0 ||
	    postfix_table_rebuild(e->conf, senders, err_r) < 0)
		goto out;
	note_written(e);
	e->map_dirty = 0;
	rc = 0;
out:
	free(access);
	free(senders);
	return rc;
}

/* note_history - one line per applied change, for "show"; best effort:
 * the map and the journal are what must be durable, not this */
static void
note_history(struct engine *e, const struct alias *after, const char *txn,
	     const char *coord)
{
	char *path = xasprintf("%s/history", e->conf->state_dir);
	struct msg rec = { 0 };
	struct buf b = { 0 };
	FILE *f;

	msg_setf(&rec, "time", "%lld", now_wall());
	msg_set(&rec, "address", after->address);
	msg_set(&rec, "state", alias_state_name(after->state));
	msg_set(&rec, "target", after->target);
	msg_set(&rec, "txn", txn);
	msg_set(&rec, "coord", coord);
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
access_sync(struct engine *e, const char *address, int had_entry, char **err_r)
{
	const struct alias *a = aliasmap_find(&e->map, address);
	struct buf line = { 0 };
	int rc = 0;

	if (strlist_contains(&e->pending, address, false))
		alias_pending_line(address, &line);
	else if (a != NULL)
		alias_access_line(a, &line);
	if (line.len > 0 || had_entry) {
		char *source = conf_access_file(e->conf);

		rc = postfix_table_set(e->conf, source, address,
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
senders_sync(struct engine *e, const struct alias *after, int is_new, char **err_r)
{
	char *source = conf_senders_file(e->conf);
	struct buf line = { 0 };
	int has = alias_sender_line(after, &line), rc = 0;

	if (is_new && has) {
		rc = fsutil_append(source, line.data, line.len, err_r);
		e->senders_sum_set = 0;	/* the file is no longer the rendering */
	} else if (!is_new)
		rc = save_senders(e, err_r);
	if (rc == 0 && (has || !is_new))
		rc = postfix_table_set(e->conf, source, after->address,
				       has ? line.data : NULL, err_r);
	buf_free(&line);
	free(source);
	return rc;
}

/* pending_remove - forget that address is pending; 1 if it was */
static int
pending_remove(struct engine *e, const char *address)
{
	for (size_t i = 0; i < e->pending.n; i++)
		if (strcmp(e->pending.v[i], address) == 0) {
			free(e->pending.v[i]);
			e->pending.v[i] = e->pending.v[--e->pending.n];
			e->pending.v[e->pending.n] = NULL;
			return 1;
		}
	return 0;
}

int
engine_set_pending(struct engine *e, const char *address, int on, char **err_r)
{
	const struct alias *a = aliasmap_find(&e->map, address);
	int had = a != NULL && a->state != ALIAS_ACTIVE, rc;

	if (on)
		strlist_add(&e->pending, address);
	else
		had |= pending_remove(e, address);
	rc = save_access(e, err_r) < 0 || access_sync(e, address, had, err_r) < 0 ? -1 : 0;
	if (rc < 0)
		e->map_dirty = 1;
	return rc;
}

int
engine_apply(struct engine *e, const struct alias *after, const char *txn,
	     const char *coord, char **err_r)
{
	const struct alias *cur;
	struct alias before = { 0 };
	const struct alias *b;
	int rc = 0, had_entry;

	engine_refresh(e);	/* a hand edit must not vanish under this write */
	cur = aliasmap_find(&e->map, after->address);
	if (cur != NULL)
		alias_copy(&before, cur);
	b = before.address ? &before : NULL;
	/* The decision is in: the address is no longer pending here. */
	had_entry = pending_remove(e, after->address) |
		(b != NULL && b->state != ALIAS_ACTIVE);
	aliasmap_put(&e->map, after);
	if (e->map_dirty)
		rc = save_all(e, err_r);
	/* A new address is appended (the cost does not grow with the map);
	 * any other change rewrites the file. */
	else if ((b == NULL ?
		  aliasmap_append(e->conf->map_file, e->conf->map_format, after, err_r) :
		  aliasmap_save(e->conf->map_file, e->conf->map_format, &e->map, err_r)) < 0 ||
		 (note_written(e), save_access(e, err_r) < 0))
		rc = -1;
	/* Never deliverable by accident: an alias becoming active gets its
	 * entry before its refusal goes; one going inactive is refused
	 * before its entry goes. */
	else if (after->state == ALIAS_ACTIVE)
		rc = postfix_map_update(e->conf, b, after, err_r) < 0 ||
			access_sync(e, after->address, had_entry, err_r) < 0 ||
			senders_sync(e, after, b == NULL, err_r) < 0 ? -1 : 0;
	else
		rc = access_sync(e, after->address, had_entry, err_r) < 0 ||
			postfix_map_update(e->conf, b, after, err_r) < 0 ||
			senders_sync(e, after, b == NULL, err_r) < 0 ? -1 : 0;
	if (rc < 0)
		e->map_dirty = 1;
	note_history(e, after, txn, coord);
	alias_clear(&before);
	return rc;
}

/* handle_history - the history lines of one address, as items */
static void
handle_history(struct engine *e, const char *address, engine_emit_fn emit, void *arg)
{
	char *path = xasprintf("%s/history", e->conf->state_dir), *data = NULL;
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

void
engine_confirm(struct engine *e, const struct alias *a, const char *txn)
{
	char *err = NULL;

	if (notify_confirm(e->conf, a, e->conf->request_addresses.v[0], txn, &err) < 0) {
		log_warnx(txn, "confirmation to=<%s> failed: %s", a->address, err);
		free(err);
	} else {
		log_info(txn, "confirmation queued to=<%s>", a->address);
		commit_note_confirmed(e, txn);
	}
}

void
engine_wake(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	pthread_cond_signal(&e->bg_wake);
	pthread_mutex_unlock(&e->lock);
}

/* ---- operations ---- */

void
engine_reply_misconfigured(struct msg *resp, const char *node)
{
	msg_set_status(resp, "temp", "Alias requests cannot be handled now: the mail "
		       "server %s is misconfigured (it cannot ask its address maps "
		       "whether a name is taken); please tell the postmaster", node);
	msg_set(resp, CTL_KEY_DSN, "4.3.5");
}

/* do_new - create name@domain for login */
static void
do_new(struct engine *e, struct change *c, const char *note, int admin,
       struct msg *resp, struct engine_followup *f, const char *from)
{
	const struct conf *conf = e->conf;
	const char *address = c->after.address;
	char *local = xstrndup(address, strcspn(address, "@"));
	char *target = NULL, *where = NULL, *err = NULL;
	const struct alias *old;
	int rc;

	if (!admin && strlist_contains(&conf->reserved, local, false)) {
		msg_set_status(resp, "perm", "Alias name %s is reserved", local);
		goto out_free;
	}
	for (size_t i = 0; i < conf->request_addresses.n; i++)
		if (strcmp(conf->request_addresses.v[i], address) == 0) {
			msg_set_status(resp, "perm", "%s is the request address itself", address);
			goto out_free;
		}
	rc = postfix_owner_address(conf, c->login, &target, &err);
	if (rc != 0 || !request_target_valid(target)) {
		if (rc < 0) {
			log_warnx(c->id, "owner lookup login=%s failed: %s", c->login, err);
			msg_set_status(resp, "temp", "The owner of login %s cannot be looked up right "
			      "now; try again later", c->login);
		} else
			msg_set_status(resp, "perm", "No delivery address is known for login %s; "
			      "ask the postmaster", c->login);
		goto out_free;
	}

	pthread_mutex_lock(&e->lock);
	if (engine_refresh(e) < 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_MAP_BROKEN);
		goto out_free;
	}
	old = conf->map_format == MAP_FORMAT_ALIASES ?
		aliasmap_find_local(&e->map, local) : aliasmap_find(&e->map, address);
	if (old != NULL && !(old->state == ALIAS_DELETED &&
			     strcmp(old->owner, c->login) == 0 &&
			     strcmp(old->address, address) == 0)) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "perm", old->state == ALIAS_DELETED ?
		      "Alias %s was deleted and stays reserved to its former owner" :
		      "Alias %s already exists", address);
		goto out_free;
	}
	if (old != NULL)
		alias_copy(&c->before, old);
	if (!admin && conf->max_aliases_per_user > 0 &&
	    aliasmap_count_owner(&e->map, c->login) >= (size_t)conf->max_aliases_per_user) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "perm", "Login %s already has %ld aliases, the most allowed",
		      c->login, conf->max_aliases_per_user);
		goto out_free;
	}
	if (engine_busy_take(e, address, c->txn) < 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_ADDRESS_BUSY_FMT, address);
		goto out_free;
	}
	pthread_mutex_unlock(&e->lock);

	/* Never capture mail that already has a home.  With peers the check
	 * runs during their vote (commit_change ends it); alone, first. */
	if (e->peers != NULL) {
		c->check = postfix_resolves_start(conf, address);
		rc = 0;
	} else
		rc = postfix_resolves(conf, address, &where, &err);
	if (rc != 0) {
		if (rc < 0) {
			log_warnx(c->id, "resolve check address=%s failed: %s", address, err);
			engine_reply_misconfigured(resp, conf->node_name);
		} else
			msg_set_status(resp, "perm", "Address %s is already in use (%s)", address, where);
		goto out_release;
	}

	c->after.target = target;
	target = NULL;
	c->after.owner = xstrdup(c->login);
	c->after.state = ALIAS_ACTIVE;
	c->after.created = c->after.updated = now_wall();
	c->after.node = xstrdup(conf->node_name);
	c->after.note = xstrdup(note ? note : "");
	rc = commit_change(e, c, &err);
	if (rc > 0) {
		msg_set_status(resp, "perm", "%s", c->refusal);
		goto out_release;
	}
	if (rc < 0) {
		if (c->misconfigured != NULL)
			engine_reply_misconfigured(resp, c->misconfigured);
		else
			msg_set_status(resp, "temp", "The alias could not be stored on every "
				       "server; try again later");
		log_warnx(c->id, "new address=%s: %s", address, err);
		goto out_release;
	}
	msg_set_status(resp, "ok", "Alias %s created; it delivers to %s", address, c->after.target);
	msg_set(resp, CTL_KEY_TXN, c->txn);
	f->pending = 1;
	alias_copy(&f->alias, &c->after);
	f->from = xstrdup(from);
	memcpy(f->txn, c->txn, sizeof(f->txn));
out_release:
	pthread_mutex_lock(&e->lock);
	engine_busy_release(e, address, c->txn);
	pthread_mutex_unlock(&e->lock);
out_free:
	free(where);
	free(err);
	free(target);
	free(local);
}

/* do_state - disable, enable or delete an alias */
static void
do_state(struct engine *e, struct change *c, enum alias_state want, int admin,
	 struct msg *resp)
{
	/* c->after is replaced below: keep a copy of the address. */
	char *address = xstrdup(c->after.address), *err = NULL;
	const struct alias *old;
	int rc;

	pthread_mutex_lock(&e->lock);
	if (engine_refresh(e) < 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_MAP_BROKEN);
		goto out;
	}
	old = aliasmap_find(&e->map, address);
	if (old == NULL || old->state == ALIAS_DELETED || old->owner[0] == '\0') {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "perm", "There is no alias %s", address);
		goto out;
	}
	if (!admin && strcmp(old->owner, c->login) != 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "perm", "Alias %s belongs to another user", address);
		goto out;
	}
	if (old->state == want) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "ok", "Alias %s is already %s", address, alias_state_name(want));
		goto out;
	}
	if (engine_busy_take(e, address, c->txn) < 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_ADDRESS_BUSY_FMT, address);
		goto out;
	}
	alias_copy(&c->before, old);
	alias_clear(&c->after);
	alias_copy(&c->after, old);
	pthread_mutex_unlock(&e->lock);

	c->after.state = want;
	c->after.updated = now_wall();
	rc = commit_change(e, c, &err);
	if (rc > 0)
		msg_set_status(resp, "perm", "%s", c->refusal);
	else if (rc < 0) {
		msg_set_status(resp, "temp", "The change could not be stored on every server; "
		      "try again later");
		log_warnx(c->id, "%s address=%s: %s", c->verb, address, err);
	} else {
		msg_set_status(resp, "ok", "Alias %s is now %s", address, alias_state_name(want));
		msg_set(resp, CTL_KEY_TXN, c->txn);
	}
	free(err);
	pthread_mutex_lock(&e->lock);
	engine_busy_release(e, address, c->txn);
	pthread_mutex_unlock(&e->lock);
out:
	free(address);
}

/* do_list_mail - "list" by mail: send the owner their aliases */
static void
do_list_mail(struct engine *e, const char *id, const char *login,
	     const char *from, struct msg *resp)
{
	struct aliasmap snapshot;
	char *owner = NULL, *err = NULL;
	int rc;

	if ((rc = postfix_owner_address(e->conf, login, &owner, &err)) != 0) {
		msg_set_status(resp, rc < 0 ? "temp" : "perm", rc < 0 ?
		      "The owner address cannot be looked up right now; try again later" :
		      "No delivery address is known for your login; ask the postmaster");
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	aliasmap_copy(&snapshot, &e->map);
	pthread_mutex_unlock(&e->lock);
	rc = notify_list(e->conf, &snapshot, login, owner, from, &err);
	aliasmap_clear(&snapshot);
	if (rc < 0) {
		log_warnx(id, "list login=%s: %s", login, err);
		msg_set_status(resp, "temp", "The list could not be sent; try again later");
	} else {
		log_info(id, "list login=%s sent to=<%s>", login, owner);
		msg_set_status(resp, "ok", "The list of your aliases is on its way to %s", owner);
	}
out:
	free(owner);
	free(err);
}

/* handle_change - a request by mail (op=request) or by the administrator
 * (op=admin), its fields checked already: the checks that need the
 * configuration or the state, then dispatch on the verb */
static void
handle_change(struct engine *e, const struct ctl_request *req,
	      struct msg *resp, struct engine_followup *f)
{
	const struct conf *conf = e->conf;
	int admin = req->op == CTL_OP_ADMIN;
	const char *login = admin ? (req->owner ? req->owner : "") : req->login;
	const char *id = req->id ? req->id : "admin";
	const char *from = req->request_address;
	struct change c = { .id = id, .login = login, .origin = admin ? "admin" : "mail" };
	char *address = NULL;

	c.verb = request_verb_name(req->verb);
	if (from == NULL || !conf_is_request_address(conf, from))
		from = conf->request_addresses.v[0];
	if (req->deadline > 0) {
		if (now_mono_ms() > req->deadline) {
			/* Read too late (the daemon was stopped or busy):
			 * the milter answers 4xx by now. */
			log_notice(id, "request login=%s ignored: it arrived after its "
				   "deadline", login);
			msg_set_status(resp, "temp", "The request took too long; try again later");
			return;
		}
		c.deadline = req->deadline;
	}
	if (!admin && conf->max_requests_per_hour > 0) {
		size_t n;

		pthread_mutex_lock(&e->lock);
		n = rate_count_and_note(e, login);
		pthread_mutex_unlock(&e->lock);
		if (n >= (size_t)conf->max_requests_per_hour) {
			msg_set_status(resp, "perm", "Too many alias requests in the last hour (at most "
			      "%ld); try again later", conf->max_requests_per_hour);
			log_info(id, "refused login=%s: hourly rate", login);
			return;
		}
	}
	if (req->verb == VERB_LIST) {
		if (admin)
			msg_set_status(resp, "perm", "Use the list verb of milter-aliasctl");
		else
			do_list_mail(e, id, login, from, resp);
		return;
	}
	if (!conf_serves_domain(conf, req->domain)) {
		msg_set_status(resp, "perm", REPLY_INVALID_ADDRESS);
		return;
	}
	address = str_lower(xasprintf("%s@%s", req->name, req->domain));
	c.after.address = xstrdup(address);
	commit_new_id(c.txn);
	switch (req->verb) {
	case VERB_NEW:
		do_new(e, &c, req->note, admin, resp, f, from);
		break;
	case VERB_DISABLE:
		do_state(e, &c, ALIAS_DISABLED, admin, resp);
		break;
	case VERB_ENABLE:
		do_state(e, &c, ALIAS_ACTIVE, admin, resp);
		break;
	case VERB_DELETE:
		do_state(e, &c, ALIAS_DELETED, admin, resp);
		break;
	case VERB_LIST:
		break;
	}
	log_info(id, "%s verb=%s address=%s login=%s status=%s: %s",
		 admin ? "admin" : "request", c.verb, address, login,
		 msg_gets(resp, "status"), msg_gets(resp, "text"));
	alias_clear(&c.before);
	alias_clear(&c.after);
	free(c.refusal);
	free(address);
}

/* How old an answer of the resolve check status may show (ms). */
#define STATUS_CHECK_AGE_MS 10000

static void
handle_status(struct engine *e, struct msg *resp)
{
	char digest[65], *err = NULL;
	size_t active = 0, n, in_doubt = 0, undelivered = 0;

	/* Things without which a request cannot succeed right now. */
	if (postfix_check_health(e->conf, STATUS_CHECK_AGE_MS, &err) < 0) {
		msg_set(resp, "resolve_check", "failing");
		msg_set(resp, "resolve_error", err);
	} else
		msg_set(resp, "resolve_check", "ok");
	free(err);
	msg_set(resp, "map_writable", access(e->conf->map_file, W_OK) == 0 &&
		access(e->conf->state_dir, W_OK) == 0 ? "yes" : "no");

	pthread_mutex_lock(&e->lock);
	engine_refresh(e);
	aliasmap_digest(&e->map, e->conf->map_format, digest);
	n = e->map.n;
	for (size_t i = 0; i < e->map.n; i++)
		if (e->map.v[i].state == ALIAS_ACTIVE)
			active++;
	for (size_t i = 0; i < e->ntxns; i++) {
		if (strcmp(e->txns[i]->coord, e->conf->node_name) != 0)
			in_doubt++;
		else if (e->txns[i]->decision != 0)
			undelivered++;
	}
	msg_setf(resp, "in_flight", "%zu", e->nbusy);
	msg_setf(resp, "map_dirty", "%d", e->map_dirty);
	msg_setf(resp, "in_doubt", "%zu", in_doubt);
	msg_setf(resp, "undelivered", "%zu", undelivered);
	for (size_t i = 0; e->peers != NULL && i < peers_count(e->peers); i++) {
		const char *eq = e->digest_equal[i] == 1 ? "yes" :
			e->digest_equal[i] == 0 ? "no" : "unknown";
		long long last;
		int connected;
		char *lerr = NULL, key[64];

		peers_state(e->peers, i, &connected, &last, &lerr);
		snprintf(key, sizeof(key), "peer%zu", i);
		msg_setf(resp, key, "%s", peers_name(e->peers, i));
		snprintf(key, sizeof(key), "peer%zu_connected", i);
		msg_set(resp, key, connected ? "yes" : "no");
		snprintf(key, sizeof(key), "peer%zu_last_contact", i);
		msg_setf(resp, key, "%lld", last);
		snprintf(key, sizeof(key), "peer%zu_digest_equal", i);
		msg_set(resp, key, eq);
		snprintf(key, sizeof(key), "peer%zu_error", i);
		msg_set(resp, key, lerr ? lerr : "");
		snprintf(key, sizeof(key), "peer%zu_resolve_check", i);
		msg_set(resp, key, e->peer_resolve[i] > 0 ? "ok" :
			e->peer_resolve[i] < 0 ? "failing" : "unknown");
		free(lerr);
	}
	pthread_mutex_unlock(&e->lock);
	msg_set_status(resp, "ok", "running");
	msg_set(resp, "node", e->conf->node_name);
	msg_set(resp, "digest", digest);
	msg_setf(resp, "aliases", "%zu", n);
	msg_setf(resp, "active", "%zu", active);
	msg_setf(resp, "peers", "%zu", e->conf->npeers);
	msg_setf(resp, "journal_bytes", "%zu", journal_size(e->journal));
}

/* handle_probe - every map the existing-address check asks, each asked on
 * its own by this daemon (its user, groups and sandbox), as items */
static void
handle_probe(struct engine *e, struct msg *resp, engine_emit_fn emit, void *arg)
{
	struct postfix_probe *list;
	size_t n, failing = 0;
	char *err = NULL;

	if (postfix_probe_maps(e->conf, &list, &n, &err) < 0) {
		msg_set_status(resp, "temp", "Postfix's map lists cannot be read: %s", err);
		free(err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct msg item = { 0 };

		msg_set(&item, "item", "map");
		msg_set(&item, "map", list[i].map);
		msg_set(&item, "params", list[i].params);
		msg_set(&item, "ok", list[i].ok ? "yes" : "no");
		if (!list[i].ok) {
			msg_set(&item, "error", list[i].error ? list[i].error : "failed");
			failing++;
		}
		emit(arg, &item);
		msg_clear(&item);
	}
	msg_set_status(resp, "ok", "%zu maps asked, %zu failing", n, failing);
	msg_setf(resp, "count", "%zu", n);
	msg_setf(resp, "failing", "%zu", failing);
	postfix_probe_free(list, n);
}

/* handle_journal - the changes this node has not finished with */
static void
handle_journal(struct engine *e, struct msg *resp, engine_emit_fn emit, void *arg)
{
	struct msg *items;
	size_t n;
	long long now = now_mono_ms();

	pthread_mutex_lock(&e->lock);
	n = e->ntxns;
	items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		const struct txn *t = e->txns[i];
		int mine = strcmp(t->coord, e->conf->node_name) == 0;

		msg_set(&items[i], "item", "txn");
		msg_set(&items[i], "txn", t->id);
		msg_set(&items[i], "coordinator", t->coord);
		msg_set(&items[i], "address", t->after.address);
		msg_set(&items[i], "state", alias_state_name(t->after.state));
		msg_set(&items[i], "verb", msg_gets(&t->prepare, "verb"));
		msg_set(&items[i], "phase", mine ? (t->decision == 0 ? "collecting votes" :
			t->decision > 0 ? "committed, telling peers" : "aborted, telling peers") :
			"in doubt: prepared, waiting for the coordinator");
		msg_setf(&items[i], "age_ms", "%lld", now - t->since);
	}
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < n; i++) {
		emit(arg, &items[i]);
		msg_clear(&items[i]);
	}
	free(items);
	msg_set_status(resp, "ok", "%zu unfinished changes", n);
	msg_setf(resp, "count", "%zu", n);
}

/* collect - item callback: gather a peer's aliases into a map */
static void
collect(void *arg, const struct msg *item)
{
	struct aliasmap *m = arg;
	struct alias a;

	if (alias_from_msg(item, &a, NULL) == 0) {
		aliasmap_put(m, &a);
		alias_clear(&a);
	}
}

static void
describe(const struct alias *a, struct buf *b)
{
	buf_reset(b);
	if (a == NULL)
		buf_appendf(b, "absent");
	else
		buf_appendf(b, "%s -> %s owner=%s created=%lld node=%s",
			    alias_state_name(a->state), a->target, a->owner, a->created, a->node);
}

/* ask_peer - one request op to peer i (items to collect into *theirs if
 * given); 0 and *r, or -1 with a reason */
static int
ask_peer(struct engine *e, size_t i, const char *op, struct msg *r,
	 struct aliasmap *theirs, char **err_r)
{
	struct msg req = { 0 };
	int rc;

	msg_set(&req, "op", op);
	msg_set(&req, "sender", e->conf->node_name);
	rc = peers_call(e->peers, i, &req, r, theirs ? collect : NULL, theirs, 30000, err_r);
	msg_clear(&req);
	return rc;
}

/* same_digest - 1 peer i's map digest equals ours, 0 it differs, -1 the
 * peer could not be asked */
static int
same_digest(struct engine *e, size_t i, char **err_r)
{
	struct msg r = { 0 };
	char digest[65];
	int rc = ask_peer(e, i, "digest", &r, NULL, err_r);

	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		aliasmap_digest(&e->map, e->conf->map_format, digest);
		pthread_mutex_unlock(&e->lock);
		rc = strcmp(digest, msg_gets(&r, "digest")) == 0;
	}
	msg_clear(&r);
	return rc;
}

/* emit_diffs - compare two sorted maps alias by alias; each difference
 * goes out as an item; returns how many */
static size_t
emit_diffs(struct engine *e, size_t i, const struct aliasmap *mine,
	   const struct aliasmap *theirs, engine_emit_fn emit, void *arg)
{
	struct buf here = { 0 }, there = { 0 };
	size_t ndiff = 0;

	for (size_t a = 0, b = 0; a < mine->n || b < theirs->n; ) {
		int c = a >= mine->n ? 1 : b >= theirs->n ? -1 :
			strcmp(mine->v[a].address, theirs->v[b].address);
		const struct alias *x = c <= 0 ? &mine->v[a] : NULL;
		const struct alias *y = c >= 0 ? &theirs->v[b] : NULL;

		describe(x, &here);
		describe(y, &there);
		if (strcmp(here.data, there.data) != 0 ||
		    (x && y && strcmp(x->note, y->note) != 0)) {
			struct msg item = { 0 };

			msg_set(&item, "item", "diff");
			msg_set(&item, "peer", peers_name(e->peers, i));
			msg_set(&item, "address", x ? x->address : y->address);
			msg_set(&item, "here", here.data);
			msg_set(&item, "there", there.data);
			emit(arg, &item);
			msg_clear(&item);
			ndiff++;
		}
		if (c <= 0)
			a++;
		if (c >= 0)
			b++;
	}
	buf_free(&here);
	buf_free(&there);
	return ndiff;
}

/* handle_verify - compare this node's map with every peer's, alias by
 * alias; the differences go out as items.  Equal digests (SHA-256 of
 * every field) mean no difference: the common case copies no map. */
static void
handle_verify(struct engine *e, struct msg *resp, engine_emit_fn emit, void *arg)
{
	struct aliasmap mine = { 0 };
	size_t ndiff = 0, unreachable = 0, npeers = e->peers ? peers_count(e->peers) : 0;
	int copied = 0;

	pthread_mutex_lock(&e->lock);
	engine_refresh(e);
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < npeers; i++) {
		struct aliasmap theirs = { 0 };
		struct msg r = { 0 };
		char *err = NULL;
		size_t found = 0;
		int rc = same_digest(e, i, &err);

		if (rc == 0) {
			if (!copied) {
				pthread_mutex_lock(&e->lock);
				aliasmap_copy(&mine, &e->map);
				pthread_mutex_unlock(&e->lock);
				copied = 1;
			}
			if ((rc = ask_peer(e, i, "dump", &r, &theirs, &err)) == 0)
				found = emit_diffs(e, i, &mine, &theirs, emit, arg);
		}
		if (rc < 0) {
			struct msg item = { 0 };

			msg_set(&item, "item", "unreachable");
			msg_set(&item, "peer", peers_name(e->peers, i));
			msg_set(&item, "error", err);
			emit(arg, &item);
			msg_clear(&item);
			unreachable++;
		} else {
			/* What verify saw is what status reports, at once. */
			pthread_mutex_lock(&e->lock);
			if (e->digest_equal != NULL) {
				e->digest_equal[i] = found == 0;
				e->mismatches[i] = found == 0 ? 0 : 2;
			}
			pthread_mutex_unlock(&e->lock);
			ndiff += found;
		}
		aliasmap_clear(&theirs);
		msg_clear(&r);
		free(err);
	}
	aliasmap_clear(&mine);
	msg_set_status(resp, "ok", "%zu differences, %zu of %zu peers unreachable", ndiff,
	      unreachable, npeers);
	msg_setf(resp, "differences", "%zu", ndiff);
	msg_setf(resp, "unreachable", "%zu", unreachable);
}

/* emit_aliases - send aliases (all, or one owner's, or one) as items, a
 * batch at a time: a copy of a whole large map would double the daemon's
 * memory, and the lock must not wait for a slow reader */
static size_t
emit_aliases(struct engine *e, engine_emit_fn emit, void *arg, const char *owner,
	     const char *address)
{
	char *cursor = NULL;	/* the last address looked at */
	size_t n = 0;
	int more = 1;

	pthread_mutex_lock(&e->lock);
	engine_refresh(e);
	pthread_mutex_unlock(&e->lock);
	while (more) {
		struct aliasmap batch = { 0 };
		size_t i;

		pthread_mutex_lock(&e->lock);
		i = cursor ? aliasmap_index_after(&e->map, cursor) : 0;
		for (size_t seen = 0; i < e->map.n && seen < 1024; i++, seen++) {
			const struct alias *a = &e->map.v[i];

			if ((owner == NULL || strcmp(a->owner, owner) == 0) &&
			    (address == NULL || strcmp(a->address, address) == 0))
				aliasmap_put(&batch, a);
		}
		more = i < e->map.n;
		free(cursor);
		cursor = i > 0 && more ? xstrdup(e->map.v[i - 1].address) : NULL;
		pthread_mutex_unlock(&e->lock);
		for (size_t k = 0; k < batch.n; k++) {
			struct msg item = { 0 };

			msg_set(&item, "item", "alias");
			alias_to_msg(&batch.v[k], &item);
			emit(arg, &item);
			msg_clear(&item);
			n++;
		}
		aliasmap_clear(&batch);
	}
	free(cursor);
	return n;
}

static void
handle_list(struct engine *e, const struct ctl_request *req, struct msg *resp,
	    engine_emit_fn emit, void *arg)
{
	size_t n = emit_aliases(e, emit, arg, req->owner, req->address);

	if (req->history)
		handle_history(e, req->address, emit, arg);
	msg_set_status(resp, "ok", "%zu aliases", n);
	msg_setf(resp, CTL_KEY_COUNT, "%zu", n);
}

void
engine_handle(struct engine *e, const struct ctl_request *req, struct msg *resp,
	      engine_emit_fn emit, void *emit_arg, struct engine_followup *f)
{
	memset(f, 0, sizeof(*f));
	switch (req->op) {
	case CTL_OP_REQUEST:
	case CTL_OP_ADMIN:
		handle_change(e, req, resp, f);
		break;
	case CTL_OP_STATUS:
		handle_status(e, resp);
		break;
	case CTL_OP_LIST:
		handle_list(e, req, resp, emit, emit_arg);
		break;
	case CTL_OP_VERIFY:
		handle_verify(e, resp, emit, emit_arg);
		break;
	case CTL_OP_JOURNAL:
		handle_journal(e, resp, emit, emit_arg);
		break;
	case CTL_OP_PROBE:
		handle_probe(e, resp, emit, emit_arg);
		break;
	}
}

void
engine_followup_run(struct engine *e, struct engine_followup *f)
{
	char *err = NULL;

	if (!f->pending)
		return;
	if (notify_confirm(e->conf, &f->alias, f->from, f->txn, &err) < 0) {
		log_warnx(f->txn, "confirmation to=<%s> failed: %s", f->alias.address, err);
		free(err);
	} else {
		log_info(f->txn, "confirmation queued to=<%s>", f->alias.address);
		commit_note_confirmed(e, f->txn);
	}
	alias_clear(&f->alias);
	free(f->from);
	f->from = NULL;
	f->pending = 0;
}

/* ---- the peer link ---- */

/* live_count - changes in flight or not yet settled (e->lock held) */
static size_t
live_count(const struct engine *e)
{
	return e->nbusy + e->ntxns;
}

void
engine_peer_handler(void *arg, const char *peer, const struct msg *req,
		    struct msg *resp, peers_emit_fn emit, void *emit_arg)
{
	struct engine *e = arg;
	const char *op = msg_gets(req, "op");
	char digest[65];

	if (strcmp(op, "digest") == 0) {
		pthread_mutex_lock(&e->lock);
		engine_refresh(e);
		aliasmap_digest(&e->map, e->conf->map_format, digest);
		msg_setf(resp, "live", "%zu", live_count(e));
		msg_setf(resp, "aliases", "%zu", e->map.n);
		pthread_mutex_unlock(&e->lock);
		msg_set(resp, "status", "ok");
		msg_set(resp, "digest", digest);
		/* so that the peer's status shows it too: a request there
		 * fails while this server cannot ask its maps */
		msg_set(resp, "resolve_check", postfix_check_state() < 0 ? "failing" : "ok");
	} else if (strcmp(op, "dump") == 0) {
		(void)emit_aliases(e, emit, emit_arg, NULL, NULL);
		msg_set(resp, "status", "ok");
	} else
		commit_peer_request(e, peer, req, resp);
}

/* anti_entropy - compare map digests with every peer; report drift, never
 * repair it (milter-aliasctl verify shows the differences) */
static int
anti_entropy(struct engine *e)
{
	int all_reached = 1;

	for (size_t i = 0; i < peers_count(e->peers); i++) {
		struct msg req = { 0 }, resp = { 0 };
		char digest[65], *err = NULL;
		long long remote_live = -1;
		size_t live;
		int equal = -1, was;

		msg_set(&req, "op", "digest");
		msg_set(&req, "sender", e->conf->node_name);
		if (peers_call(e->peers, i, &req, &resp, NULL, NULL, 5000, &err) != 0)
			all_reached = 0;
		else if (msg_get_ll(&resp, "live", &remote_live) == 0) {
			const char *rc = msg_gets(&resp, "resolve_check");

			pthread_mutex_lock(&e->lock);
			e->peer_resolve[i] = strcmp(rc, "ok") == 0 ? 1 :
				strcmp(rc, "failing") == 0 ? -1 : 0;
			pthread_mutex_unlock(&e->lock);
			pthread_mutex_lock(&e->lock);
			engine_refresh(e);
			aliasmap_digest(&e->map, e->conf->map_format, digest);
			live = live_count(e);
			pthread_mutex_unlock(&e->lock);
			/* Changes in flight make a difference meaningless. */
			if (live == 0 && remote_live == 0)
				equal = strcmp(digest, msg_gets(&resp, "digest")) == 0;
		}
		pthread_mutex_lock(&e->lock);
		was = e->digest_equal[i];
		if (equal == 0 && ++e->mismatches[i] < 2)
			equal = was;	/* one sighting may be a race: look again */
		if (equal == 1)
			e->mismatches[i] = 0;
		if (equal != -1 || err != NULL)
			e->digest_equal[i] = equal;
		pthread_mutex_unlock(&e->lock);
		if (equal == 0 && was != 0)
			log_warnx(NULL, "anti-entropy: the alias map differs from peer %s "
				  "(digest %.12s here, %.12s there); run milter-aliasctl verify",
				  peers_name(e->peers, i), digest, msg_gets(&resp, "digest"));
		else if (equal == 1 && was == 0)
			log_notice(NULL, "anti-entropy: the alias map matches peer %s again",
				   peers_name(e->peers, i));
		free(err);
		msg_clear(&req);
		msg_clear(&resp);
	}
	return all_reached;
}

static void *
bg_thread(void *arg)
{
	struct engine *e = arg;
	long long next_check = 0;

	pthread_mutex_lock(&e->lock);
	while (!e->bg_stop) {
		struct timespec ts;

		pthread_mutex_unlock(&e->lock);
		commit_tick(e);
		if (e->peers != NULL && now_mono_ms() >= next_check)
			/* An unreachable peer is looked for again soon. */
			next_check = now_mono_ms() + (anti_entropy(e) ?
						      ANTI_ENTROPY_EVERY_MS : RECONNECT_EVERY_MS);
		pthread_mutex_lock(&e->lock);
		if (e->bg_stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += BG_TICK_MS / 1000;
		pthread_cond_timedwait(&e->bg_wake, &e->lock, &ts);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

void
engine_attach_peers(struct engine *e, struct peers *p)
{
	size_t n = p ? peers_count(p) : 0;

	e->peers = p;
	e->digest_equal = xcalloc(n + 1, sizeof(int));
	e->mismatches = xcalloc(n + 1, sizeof(int));
	e->peer_resolve = xcalloc(n + 1, sizeof(int));
	for (size_t i = 0; i < n; i++)
		e->digest_equal[i] = -1;
	e->bg_stop = 0;
	if (pthread_create(&e->bg, NULL, bg_thread, e) == 0)
		e->bg_running = 1;
	else
		log_fatalx("cannot start the background thread");
}

void
engine_detach_peers(struct engine *e)
{
	if (!e->bg_running)
		return;
	pthread_mutex_lock(&e->lock);
	e->bg_stop = 1;
	pthread_cond_signal(&e->bg_wake);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->bg, NULL);
	e->bg_running = 0;
	e->peers = NULL;
}

/* ---- start-up ---- */

int
engine_open(const struct conf *conf, struct engine **e_r, char **err_r)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	struct msg *recs = NULL;
	char *journal_path = xasprintf("%s/journal", conf->state_dir);
	size_t n = 0;

	*e_r = NULL;
	e->conf = conf;
	pthread_mutex_init(&e->lock, NULL);
	pthread_rwlock_init(&e->jlock, NULL);
	pthread_cond_init(&e->bg_wake, NULL);
	if (aliasmap_load(conf->map_file, conf->map_format, &e->map, err_r) < 0)
		goto fail;
	if (journal_open(journal_path, &e->journal, &recs, &n, err_r) < 0)
		goto fail;
	if (commit_recover(e, recs, n, err_r) < 0)
		goto fail;
	/* The files are rewritten from the recovered state: this also heals
	 * a compiled map that is missing or older than its source. */
	if (save_all(e, err_r) < 0)
		goto fail;
	/* Confirmations a crash kept from going out, for aliases still
	 * active; noted before compaction forgets the transactions. */
	for (size_t i = 0; i + 1 < e->unconfirmed.n; i += 2) {
		const struct alias *a = aliasmap_find(&e->map, e->unconfirmed.v[i + 1]);

		if (a != NULL && a->state == ALIAS_ACTIVE)
			engine_confirm(e, a, e->unconfirmed.v[i]);
	}
	strlist_clear(&e->unconfirmed);
	if (commit_compact(e, 1, err_r) < 0)
		goto fail;
	journal_free_records(recs, n);
	free(journal_path);
	*e_r = e;
	return 0;
fail:
	journal_free_records(recs, n);
	free(journal_path);
	engine_close(&e);
	return -1;
}

void
engine_close(struct engine **ep)
{
	struct engine *e = *ep;

	if (e == NULL)
		return;
	engine_detach_peers(e);
	aliasmap_clear(&e->map);
	journal_close(&e->journal);
	for (size_t i = 0; i < e->nbusy; i++)
		free(e->busy[i].address);
	free(e->busy);
	for (size_t i = 0; i < e->ntxns; i++) {
		free(e->txns[i]->coord);
		msg_clear(&e->txns[i]->prepare);
		alias_clear(&e->txns[i]->after);
		free(e->txns[i]);
	}
	free(e->txns);
	for (size_t i = 0; i < e->nrates; i++) {
		free(e->rates[i].login);
		free(e->rates[i].times);
	}
	free(e->rates);
	free(e->digest_equal);
	free(e->mismatches);
	free(e->peer_resolve);
	strlist_clear(&e->pending);
	strlist_clear(&e->unconfirmed);
	pthread_mutex_destroy(&e->lock);
	pthread_rwlock_destroy(&e->jlock);
	pthread_cond_destroy(&e->bg_wake);
	free(e);
	*ep = NULL;
}
