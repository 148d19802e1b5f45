/* engine.c - checks, commit path, recovery and queries; see engine.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "crashpoint.h"
#include "engine.h"
#include "journal.h"
#include "log.h"
#include "notify.h"
#include "postfix.h"
#include "request.h"

#define RATE_WINDOW 3600
#define JOURNAL_COMPACT_BYTES (256 * 1024)

/* Requests per login within the last hour (kept in memory: a restart
 * forgets them, which errs on the side of the user). */
struct rate {
	char *login;
	long long *times;
	size_t n;
	size_t cap;
};

struct engine {
	const struct conf *conf;
	pthread_mutex_t lock;
	struct aliasmap map;
	struct journal *journal;
	struct strlist busy;	/* addresses with a change in flight */
	int map_dirty;		/* committed state not yet in the files */
	struct rate *rates;
	size_t nrates;
	char *journal_path;
};

/* A change under way. */
struct change {
	const char *id;		/* request id for the logs */
	const char *verb;
	const char *login;
	const char *origin;	/* "mail" or "admin" */
	long long deadline;	/* now_mono_ms() the requester stops waiting; 0 none */
	struct alias before;	/* zeroed (address NULL) when new */
	struct alias after;
	char txn[17];
};

static void
new_txn_id(char out[17])
{
	unsigned char r[8];
	static const char hex[] = "0123456789abcdef";

	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		/* Not fatal: uniqueness only needs to hold within one node. */
		unsigned long long t = (unsigned long long)now_mono_ms() ^
			((unsigned long long)now_wall() << 20);
		memcpy(r, &t, sizeof(r));
	}
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[16] = '\0';
}

static void
reply(struct msg *resp, const char *status, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void
reply(struct msg *resp, const char *status, const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	msg_set(resp, "status", status);
	msg_set(resp, "text", text);
	free(text);
}

/* ---- per-address locks and rates (caller holds e->lock) ---- */

static int
busy_take(struct engine *e, const char *address)
{
	if (strlist_contains(&e->busy, address, false))
		return -1;
	strlist_add(&e->busy, address);
	return 0;
}

static void
busy_release(struct engine *e, const char *address)
{
	for (size_t i = 0; i < e->busy.n; i++)
		if (strcmp(e->busy.v[i], address) == 0) {
			free(e->busy.v[i]);
			e->busy.v[i] = e->busy.v[--e->busy.n];
			e->busy.v[e->busy.n] = NULL;
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

/* save_all - write the map file and rebuild the compiled map in full */
static int
save_all(struct engine *e, char **err_r)
{
	if (aliasmap_save(e->conf->map_file, e->conf->map_format, &e->map, err_r) < 0 ||
	    postfix_map_rebuild(e->conf, err_r) < 0)
		return -1;
	e->map_dirty = 0;
	return 0;
}

/* apply - put a committed alias into memory, the file and Postfix's map.
 * Caller holds e->lock.  On failure the state stays marked dirty and the
 * next change (or a restart) writes everything again. */
static int
apply(struct engine *e, const struct alias *before, const struct alias *after,
      char **err_r)
{
	aliasmap_put(&e->map, after);
	if (e->map_dirty)
		return save_all(e, err_r);
	if (aliasmap_save(e->conf->map_file, e->conf->map_format, &e->map, err_r) < 0 ||
	    postfix_map_update(e->conf, before, after, err_r) < 0) {
		e->map_dirty = 1;
		return -1;
	}
	return 0;
}

static void
prepare_record(const struct engine *e, const struct change *c, struct msg *rec)
{
	msg_set(rec, "rec", "prepare");
	msg_set(rec, "txn", c->txn);
	msg_set(rec, "coord", e->conf->node_name);
	msg_set(rec, "id", c->id);
	msg_set(rec, "verb", c->verb);
	alias_to_msg(&c->after, rec);
}

static int
decision_record(struct engine *e, const char *txn, const char *what, char **err_r)
{
	struct msg rec = { 0 };
	int rc;

	msg_set(&rec, "rec", what);
	msg_set(&rec, "txn", txn);
	rc = journal_append(e->journal, &rec, err_r);
	msg_clear(&rec);
	return rc;
}

/* compact - drop resolved records when nothing is in flight (e->lock held) */
static void
compact(struct engine *e)
{
	char *err = NULL;

	if (e->busy.n > 0 || journal_size(e->journal) < JOURNAL_COMPACT_BYTES)
		return;
	if (journal_rewrite(e->journal, NULL, 0, &err) < 0) {
		log_warnx(NULL, "journal: compaction failed: %s", err);
		free(err);
	}
}

/* commit - the one commit path.  Returns 0 (committed and applied),
 * -1 temporary failure with a reason (nothing committed, or committed but
 * not yet applied: recovery finishes it). */
static int
commit(struct engine *e, struct change *c, char **err_r)
{
	struct msg rec = { 0 };
	int rc;

	new_txn_id(c->txn);
	prepare_record(e, c, &rec);
	rc = journal_append(e->journal, &rec, err_r);
	msg_clear(&rec);
	if (rc < 0)
		return -1;
	log_info(c->txn, "prepare id=%s verb=%s address=%s state=%s origin=%s",
		 c->id, c->verb, c->after.address, alias_state_name(c->after.state),
		 c->origin);
	CRASH_POINT("after-prepare");

	/* Standalone: this node's yes is the only vote.  Peers vote here. */

	if (c->deadline > 0 && now_mono_ms() > c->deadline) {
		char *ignored = NULL;

		/* Too late: the milter answers 4xx about now, so the change
		 * must not happen. */
		set_error(err_r, "not decided before the requester's deadline");
		decision_record(e, c->txn, "abort", &ignored);
		free(ignored);
		log_notice(c->txn, "abort address=%s: decided too late", c->after.address);
		return -1;
	}
	if (decision_record(e, c->txn, "commit", err_r) < 0) {
		char *ignored = NULL;

		/* Without a commit record the change is not committed. */
		decision_record(e, c->txn, "abort", &ignored);
		free(ignored);
		return -1;
	}
	CRASH_POINT("after-commit-record");

	pthread_mutex_lock(&e->lock);
	rc = apply(e, c->before.address ? &c->before : NULL, &c->after, err_r);
	pthread_mutex_unlock(&e->lock);
	if (rc < 0) {
		log_err(c->txn, "commit recorded but not applied: %s", *err_r);
		return -1;
	}
	CRASH_POINT("after-apply");
	log_info(c->txn, "commit address=%s state=%s target=%s owner=%s",
		 c->after.address, alias_state_name(c->after.state),
		 c->after.target, c->after.owner);
	return 0;
}

/* ---- operations ---- */

/* do_new - create name@domain for login */
static void
do_new(struct engine *e, struct change *c, const char *note, int admin,
       struct msg *resp, struct engine_followup *f, const char *from)
{
	const struct conf *conf = e->conf;
	const char *address = c->after.address;
	char *local = xstrndup(address, strcspn(address, "@"));
	char *target = NULL, *where = NULL, *err = NULL;
	struct alias *old;
	int rc;

	if (!admin && strlist_contains(&conf->reserved, local, false)) {
		reply(resp, "perm", "Alias name %s is reserved", local);
		goto out_free;
	}
	for (size_t i = 0; i < conf->request_addresses.n; i++)
		if (strcmp(conf->request_addresses.v[i], address) == 0) {
			reply(resp, "perm", "%s is the request address itself", address);
			goto out_free;
		}
	rc = postfix_owner_address(conf, c->login, &target, &err);
	if (rc != 0 || !request_target_valid(target)) {
		if (rc < 0) {
			log_warnx(c->id, "owner lookup login=%s failed: %s", c->login, err);
			reply(resp, "temp", "The owner of login %s cannot be looked up right "
			      "now; try again later", c->login);
		} else
			reply(resp, "perm", "No delivery address is known for login %s; "
			      "ask the postmaster", c->login);
		goto out_free;
	}

	pthread_mutex_lock(&e->lock);
	old = conf->map_format == MAP_FORMAT_ALIASES ?
		aliasmap_find_local(&e->map, local) : aliasmap_find(&e->map, address);
	if (old != NULL && !(old->state == ALIAS_DELETED &&
			     strcmp(old->owner, c->login) == 0 &&
			     strcmp(old->address, address) == 0)) {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "perm", old->state == ALIAS_DELETED ?
		      "Alias %s was deleted and stays reserved to its former owner" :
		      "Alias %s already exists", address);
		goto out_free;
	}
	if (old != NULL)
		alias_copy(&c->before, old);
	if (!admin && conf->max_aliases_per_user > 0 &&
	    aliasmap_count_owner(&e->map, c->login) >= (size_t)conf->max_aliases_per_user) {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "perm", "Login %s already has %ld aliases, the most allowed",
		      c->login, conf->max_aliases_per_user);
		goto out_free;
	}
	if (busy_take(e, address) < 0) {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "temp", "Another change to %s is in progress; try again "
		      "in a minute", address);
		goto out_free;
	}
	pthread_mutex_unlock(&e->lock);

	/* Never capture mail that already has a home. */
	rc = postfix_resolves(conf, address, &where, &err);
	if (rc != 0) {
		if (rc < 0) {
			log_warnx(c->id, "resolve check address=%s failed: %s", address, err);
			reply(resp, "temp", "Postfix cannot be asked about %s right now; "
			      "try again later", address);
		} else
			reply(resp, "perm", "Address %s is already in use (%s)", address, where);
		goto out_release;
	}

	c->after.target = target;
	target = NULL;
	c->after.owner = xstrdup(c->login);
	c->after.state = ALIAS_ACTIVE;
	c->after.created = c->after.updated = now_wall();
	c->after.node = xstrdup(conf->node_name);
	c->after.note = xstrdup(note ? note : "");
	if (commit(e, c, &err) < 0) {
		reply(resp, "temp", "The alias could not be stored; try again later");
		log_warnx(c->id, "new address=%s: %s", address, err);
		goto out_release;
	}
	reply(resp, "ok", "Alias %s created; it delivers to %s", address, c->after.target);
	msg_set(resp, "txn", c->txn);
	f->pending = 1;
	alias_copy(&f->alias, &c->after);
	f->from = xstrdup(from);
	memcpy(f->txn, c->txn, sizeof(f->txn));
out_release:
	pthread_mutex_lock(&e->lock);
	busy_release(e, address);
	compact(e);
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
	struct alias *old;

	pthread_mutex_lock(&e->lock);
	old = aliasmap_find(&e->map, address);
	if (old == NULL || old->state == ALIAS_DELETED || old->owner[0] == '\0') {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "perm", "There is no alias %s", address);
		goto out;
	}
	if (!admin && strcmp(old->owner, c->login) != 0) {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "perm", "Alias %s belongs to another user", address);
		goto out;
	}
	if (old->state == want) {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "ok", "Alias %s is already %s", address, alias_state_name(want));
		goto out;
	}
	if (busy_take(e, address) < 0) {
		pthread_mutex_unlock(&e->lock);
		reply(resp, "temp", "Another change to %s is in progress; try again "
		      "in a minute", address);
		goto out;
	}
	alias_copy(&c->before, old);
	alias_clear(&c->after);
	alias_copy(&c->after, old);
	pthread_mutex_unlock(&e->lock);

	c->after.state = want;
	c->after.updated = now_wall();
	if (commit(e, c, &err) < 0) {
		reply(resp, "temp", "The change could not be stored; try again later");
		log_warnx(c->id, "%s address=%s: %s", c->verb, address, err);
	} else {
		reply(resp, "ok", "Alias %s is now %s", address, alias_state_name(want));
		msg_set(resp, "txn", c->txn);
	}
	free(err);
	pthread_mutex_lock(&e->lock);
	busy_release(e, address);
	compact(e);
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
		reply(resp, rc < 0 ? "temp" : "perm", rc < 0 ?
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
		reply(resp, "temp", "The list could not be sent; try again later");
	} else {
		log_info(id, "list login=%s sent to=<%s>", login, owner);
		reply(resp, "ok", "The list of your aliases is on its way to %s", owner);
	}
out:
	free(owner);
	free(err);
}

/* handle_change - a request by mail (op=request) or by the administrator
 * (op=admin): validate the fields again, then dispatch on the verb */
static void
handle_change(struct engine *e, const struct msg *req, int admin,
	      struct msg *resp, struct engine_followup *f)
{
	const struct conf *conf = e->conf;
	const char *login = msg_gets(req, admin ? "owner" : "login");
	const char *id = msg_get(req, "id") ? msg_get(req, "id") : "admin";
	const char *from = msg_get(req, "request_address");
	const char *name = msg_gets(req, "name"), *domain = msg_gets(req, "domain");
	struct change c = { .id = id, .login = login, .origin = admin ? "admin" : "mail" };
	enum request_verb verb;
	char *address = NULL;
	long long deadline;

	if (request_verb_parse(msg_gets(req, "verb"), &verb) < 0) {
		reply(resp, "perm", "Unknown command; use new, disable, enable, delete or list");
		return;
	}
	c.verb = request_verb_name(verb);
	if (from == NULL || !conf_is_request_address(conf, from))
		from = conf->request_addresses.v[0];
	if (!admin && *login == '\0') {
		reply(resp, "perm", "Authenticate (SMTP AUTH) before sending alias requests");
		return;
	}
	if (msg_get_ll(req, "deadline", &deadline) == 0) {
		if (now_mono_ms() > deadline) {
			/* Read too late (the daemon was stopped or busy):
			 * the milter answers 4xx by now. */
			log_notice(id, "request login=%s ignored: it arrived after its "
				   "deadline", login);
			reply(resp, "temp", "The request took too long; try again later");
			return;
		}
		c.deadline = deadline;
	}
	if (!admin && conf->max_requests_per_hour > 0) {
		size_t n;

		pthread_mutex_lock(&e->lock);
		n = rate_count_and_note(e, login);
		pthread_mutex_unlock(&e->lock);
		if (n >= (size_t)conf->max_requests_per_hour) {
			reply(resp, "perm", "Too many alias requests in the last hour (at most "
			      "%ld); try again later", conf->max_requests_per_hour);
			log_info(id, "refused login=%s: hourly rate", login);
			return;
		}
	}
	if (verb == VERB_LIST) {
		if (admin)
			reply(resp, "perm", "Use the list verb of milter-aliasctl");
		else
			do_list_mail(e, id, login, from, resp);
		return;
	}
	/* The milter parsed this already; a second look costs nothing and the
	 * control socket is a trust boundary of its own. */
	if (!request_name_valid(name) || !conf_serves_domain(conf, domain)) {
		reply(resp, "perm", "Invalid alias name or domain");
		return;
	}
	if (admin && verb == VERB_NEW && *login == '\0') {
		reply(resp, "perm", "An owner login is required");
		return;
	}
	address = str_lower(xasprintf("%s@%s", name, domain));
	c.after.address = xstrdup(address);
	switch (verb) {
	case VERB_NEW:
		do_new(e, &c, msg_get(req, "note"), admin, resp, f, from);
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
	free(address);
}

static void
handle_status(struct engine *e, struct msg *resp)
{
	char digest[65];
	size_t active = 0, n;

	pthread_mutex_lock(&e->lock);
	aliasmap_digest(&e->map, e->conf->map_format, digest);
	n = e->map.n;
	for (size_t i = 0; i < e->map.n; i++)
		if (e->map.v[i].state == ALIAS_ACTIVE)
			active++;
	msg_setf(resp, "in_flight", "%zu", e->busy.n);
	msg_setf(resp, "map_dirty", "%d", e->map_dirty);
	pthread_mutex_unlock(&e->lock);
	reply(resp, "ok", "running");
	msg_set(resp, "node", e->conf->node_name);
	msg_set(resp, "digest", digest);
	msg_setf(resp, "aliases", "%zu", n);
	msg_setf(resp, "active", "%zu", active);
	msg_setf(resp, "peers", "%zu", e->conf->npeers);
	msg_setf(resp, "journal_bytes", "%zu", journal_size(e->journal));
}

static void
handle_list(struct engine *e, const struct msg *req, struct msg *resp,
	    engine_emit_fn emit, void *arg)
{
	const char *owner = msg_get(req, "owner"), *address = msg_get(req, "address");
	struct aliasmap snapshot;
	size_t n = 0;

	pthread_mutex_lock(&e->lock);
	aliasmap_copy(&snapshot, &e->map);
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < snapshot.n; i++) {
		struct msg item = { 0 };

		if (owner != NULL && strcmp(snapshot.v[i].owner, owner) != 0)
			continue;
		if (address != NULL && strcmp(snapshot.v[i].address, address) != 0)
			continue;
		msg_set(&item, "item", "alias");
		alias_to_msg(&snapshot.v[i], &item);
		emit(arg, &item);
		msg_clear(&item);
		n++;
	}
	aliasmap_clear(&snapshot);
	reply(resp, "ok", "%zu aliases", n);
	msg_setf(resp, "count", "%zu", n);
}

void
engine_handle(struct engine *e, const struct msg *req, struct msg *resp,
	      engine_emit_fn emit, void *emit_arg, struct engine_followup *f)
{
	const char *op = msg_gets(req, "op");

	memset(f, 0, sizeof(*f));
	if (strcmp(op, "request") == 0)
		handle_change(e, req, 0, resp, f);
	else if (strcmp(op, "admin") == 0)
		handle_change(e, req, 1, resp, f);
	else if (strcmp(op, "status") == 0)
		handle_status(e, resp);
	else if (strcmp(op, "list") == 0)
		handle_list(e, req, resp, emit, emit_arg);
	else
		reply(resp, "perm", "unknown operation \"%.40s\"", op);
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
	} else
		log_info(f->txn, "confirmation queued to=<%s>", f->alias.address);
	alias_clear(&f->alias);
	free(f->from);
	f->from = NULL;
	f->pending = 0;
}

/* ---- startup and recovery ---- */

/* recover - settle every transaction the journal knows about */
static int
recover(struct engine *e, struct msg *recs, size_t n, char **err_r)
{
	size_t committed = 0, aborted = 0;

	for (size_t i = 0; i < n; i++) {
		const char *txn = msg_gets(&recs[i], "txn");
		int decided = 0, is_commit = 0;
		struct alias a;
		char *err = NULL;

		if (strcmp(msg_gets(&recs[i], "rec"), "prepare") != 0)
			continue;
		for (size_t k = i + 1; k < n; k++) {
			if (strcmp(msg_gets(&recs[k], "txn"), txn) != 0)
				continue;
			if (strcmp(msg_gets(&recs[k], "rec"), "commit") == 0)
				decided = is_commit = 1;
			else if (strcmp(msg_gets(&recs[k], "rec"), "abort") == 0)
				decided = 1;
		}
		if (is_commit) {
			if (alias_from_msg(&recs[i], &a, &err) < 0) {
				set_error(err_r, "journal: committed transaction %s is "
					  "unreadable: %s", txn, err);
				free(err);
				return -1;
			}
			/* Idempotent: putting the final record twice is harmless. */
			aliasmap_put(&e->map, &a);
			alias_clear(&a);
			committed++;
			continue;
		}
		if (decided)
			continue;
		/* No commit record: the coordinator (this node, standalone)
		 * never decided, so the change is aborted. */
		if (decision_record(e, txn, "abort", err_r) < 0)
			return -1;
		log_notice(txn, "recovery: aborted unfinished change address=%s",
			   msg_gets(&recs[i], "address"));
		aborted++;
	}
	if (n > 0)
		log_info(NULL, "recovery: %zu records, %zu committed changes replayed, "
			 "%zu aborted", n, committed, aborted);
	return 0;
}

int
engine_open(const struct conf *conf, struct engine **e_r, char **err_r)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	struct msg *recs = NULL;
	size_t n = 0;

	*e_r = NULL;
	e->conf = conf;
	pthread_mutex_init(&e->lock, NULL);
	e->journal_path = xasprintf("%s/journal", conf->state_dir);
	if (aliasmap_load(conf->map_file, conf->map_format, &e->map, err_r) < 0)
		goto fail;
	if (journal_open(e->journal_path, &e->journal, &recs, &n, err_r) < 0)
		goto fail;
	if (recover(e, recs, n, err_r) < 0)
		goto fail;
	/* The files are rewritten from the recovered state: this also heals
	 * a compiled map that is missing or older than its source. */
	if (save_all(e, err_r) < 0)
		goto fail;
	if (journal_rewrite(e->journal, NULL, 0, err_r) < 0)
		goto fail;
	journal_free_records(recs, n);
	*e_r = e;
	return 0;
fail:
	journal_free_records(recs, n);
	engine_close(&e);
	return -1;
}

void
engine_close(struct engine **ep)
{
	struct engine *e = *ep;

	if (e == NULL)
		return;
	aliasmap_clear(&e->map);
	journal_close(&e->journal);
	strlist_clear(&e->busy);
	for (size_t i = 0; i < e->nrates; i++) {
		free(e->rates[i].login);
		free(e->rates[i].times);
	}
	free(e->rates);
	free(e->journal_path);
	pthread_mutex_destroy(&e->lock);
	free(e);
	*ep = NULL;
}
