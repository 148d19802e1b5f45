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
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "engine-private.h"
#include "fsutil.h"
#include "log.h"
#include "mapstate.h"
#include "notify.h"
#include "postfix.h"
#include "replies.h"
#include "request.h"
#include "sync.h"

#define RATE_WINDOW 3600
/* Draws of a generated name before giving up (4xx): with 48 bits, even a
 * map of a million aliases makes one collision a 1-in-280-million event. */
#define GENERATE_TRIES 16
#define REPLY_GENERATED_TAKEN "The name chosen for you was taken meanwhile; send the " \
	"request again"
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

/* ---- rates (caller holds e->lock) ---- */

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

/* ---- operations ---- */

/* lock_fresh - take e->lock with the map as the file has it now: 0, or
 * -1 with the lock free and resp the temporary answer (the map file
 * cannot be read) */
static int
lock_fresh(struct engine *e, const struct change *c, const char *address, struct msg *resp)
{
	pthread_mutex_lock(&e->lock);
	if (commit_refresh(e) < 0) {
		log_warnx(c->id, "refused address=%s: %s", address, mapstate_problem(e->ms));
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_MAP_BROKEN);
		return -1;
	}
	return 0;
}

/* take_fresh - lock_fresh, and mark address busy with c's transaction:
 * 0 with the lock held, or -1 with the lock free and resp set.  Busy
 * comes before any look at the map: while a decision about the address
 * is in flight the map may be about to change, and no answer ("already
 * ...", "there is no alias") may come from it. */
static int
take_fresh(struct engine *e, struct change *c, const char *address, struct msg *resp)
{
	if (lock_fresh(e, c, address, resp) < 0)
		return -1;
	if (commit_busy_take(e, address, NULL, c->txn) < 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_ADDRESS_BUSY_FMT, address);
		return -1;
	}
	return 0;
}

/* owned_alias - under e->lock, the live alias at address that c may
 * change (its owner's, or anyone's for admin), or NULL with resp the
 * refusal */
static const struct alias *
owned_alias(struct engine *e, const struct change *c, const char *address, int admin,
	    struct msg *resp)
{
	const struct alias *old = aliasmap_find(mapstate_map(e->ms), address);

	if (old == NULL || old->state == ALIAS_DELETED || old->owner[0] == '\0') {
		msg_set_status(resp, "perm", "There is no alias %s", address);
		return NULL;
	}
	if (!admin && strcmp(old->owner, c->login) != 0) {
		msg_set_status(resp, "perm", "Alias %s belongs to another user", address);
		return NULL;
	}
	return old;
}

/* commit_answered - commit c on every server: 0 when it is done (the
 * caller words the answer), else resp holds a peer's refusal (perm) or
 * the temporary failure, logged */
static int
commit_answered(struct engine *e, struct change *c, const char *address, struct msg *resp)
{
	char *err = NULL;
	int rc = commit_change(e, c, &err);

	if (rc > 0)
		msg_set_status(resp, "perm", "%s", c->refusal);
	else if (rc < 0) {
		msg_set_status(resp, "temp", "The change could not be stored on every server; "
			       "try again later");
		log_warnx(c->id, "%s address=%s: %s", c->verb, address, err);
	}
	free(err);
	return rc;
}

/* do_new - create name@domain for login */
static void
do_new(struct engine *e, struct change *c, const char *note, long long lifetime,
       int generated, int admin, struct msg *resp, struct engine_followup *f,
       const char *from)
{
	const struct conf *conf = e->conf;
	const char *address = c->after.address;
	char *local = xstrndup(address, strcspn(address, "@"));
	char *target = NULL, *where = NULL, *err = NULL, *delims = NULL;
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

	/* Postfix delivers name-ext@ to name@ (before e->lock: it may run
	 * postconf). */
	if (postfix_recipient_delimiter(conf, &delims, &err) < 0) {
		log_warnx(c->id, "recipient_delimiter: %s", err);
		commit_reply_misconfigured(resp, conf->node_name);
		goto out_free;
	}

	if (lock_fresh(e, c, address, resp) < 0)
		goto out_free;
	/* A change to the address in flight (a peer's decision not yet
	 * here): the map is about to change, so it cannot answer yet. */
	if (commit_busy_holder(e, address, delims) != NULL) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", REPLY_ADDRESS_BUSY_FMT, address);
		goto out_free;
	}
	old = mapstate_key_holder(e->ms, address);
	if (old != NULL && !(old->state == ALIAS_DELETED &&
			     strcmp(old->owner, c->login) == 0 &&
			     strcmp(old->address, address) == 0)) {
		pthread_mutex_unlock(&e->lock);
		if (generated)	/* taken since it was picked: a retry picks anew */
			msg_set_status(resp, "temp", REPLY_GENERATED_TAKEN);
		else
			commit_reply_exists(resp, address, old);
		goto out_free;
	}
	old = mapstate_extension_holder(e->ms, address, delims);
	if (old != NULL && strcmp(old->owner, c->login) != 0) {
		pthread_mutex_unlock(&e->lock);
		if (generated)
			msg_set_status(resp, "temp", REPLY_GENERATED_TAKEN);
		else
			commit_reply_extension(resp, address, old);
		goto out_free;
	}
	old = mapstate_key_holder(e->ms, address);
	if (old != NULL)
		alias_copy(&c->before, old);
	if (!admin && conf->max_aliases_per_user > 0) {
		size_t have = aliasmap_count_owner(mapstate_map(e->ms), c->login);

		if (have >= (size_t)conf->max_aliases_per_user) {
			pthread_mutex_unlock(&e->lock);
			msg_set_status(resp, "perm", "Login %s already has %ld aliases, the most allowed",
			      c->login, conf->max_aliases_per_user);
			goto out_free;
		}
		/* Creates in flight count too (here, and at every peer when
		 * it votes: c->quota goes in the prepare). */
		if (have + commit_creates_in_flight(e, c->login) >=
		    (size_t)conf->max_aliases_per_user) {
			pthread_mutex_unlock(&e->lock);
			msg_set_status(resp, "temp", "Another new alias of login %s is in progress; "
				       "try again in a minute", c->login);
			goto out_free;
		}
		c->quota = conf->max_aliases_per_user;
	}
	if (commit_busy_take(e, address, delims, c->txn) < 0) {
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
			commit_reply_misconfigured(resp, conf->node_name);
		} else if (generated)
			msg_set_status(resp, "temp", REPLY_GENERATED_TAKEN);
		else
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
	if (lifetime > 0) {
		c->after.lifetime = lifetime;
		c->after.expires = c->after.created + lifetime;
	}
	rc = commit_change(e, c, &err);
	if (rc > 0) {
		/* A peer knows the generated name already: pick anew. */
		if (generated && strstr(c->refusal, "already") != NULL)
			msg_set_status(resp, "temp", REPLY_GENERATED_TAKEN);
		else
			msg_set_status(resp, "perm", "%s", c->refusal);
		goto out_release;
	}
	if (rc < 0) {
		if (c->misconfigured != NULL)
			commit_reply_misconfigured(resp, c->misconfigured);
		else
			msg_set_status(resp, "temp", "The alias could not be stored on every "
				       "server; try again later");
		log_warnx(c->id, "new address=%s: %s", address, err);
		goto out_release;
	}
	if (c->after.expires > 0) {
		char until[64], span[64];

		utc_date(c->after.expires, until, sizeof(until));
		request_duration_format(lifetime, span, sizeof(span));
		msg_set_status(resp, "ok", "Alias %s created; it delivers to %s until %s (%s)",
			       address, c->after.target, until, span);
	} else
		msg_set_status(resp, "ok", "Alias %s created; it delivers to %s", address,
			       c->after.target);
	msg_set(resp, CTL_KEY_ADDRESS, address);
	msg_set(resp, CTL_KEY_TXN, c->txn);
	/* Not applied yet: commit_tick confirms once Postfix has it. */
	if (!c->unapplied) {
		f->pending = 1;
		alias_copy(&f->alias, &c->after);
		f->from = xstrdup(from);
		memcpy(f->txn, c->txn, sizeof(f->txn));
	}
out_release:
	pthread_mutex_lock(&e->lock);
	commit_busy_release(e, address, c->txn);
	pthread_mutex_unlock(&e->lock);
out_free:
	free(delims);
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
	char *address = xstrdup(c->after.address);
	const struct alias *old;

	if (take_fresh(e, c, address, resp) < 0)
		goto out;
	if ((old = owned_alias(e, c, address, admin, resp)) == NULL)
		goto out_release;
	if (old->state == want) {
		msg_set_status(resp, "ok", "Alias %s is already %s", address, alias_state_name(want));
		goto out_release;
	}
	alias_copy(&c->before, old);
	alias_clear(&c->after);
	alias_copy(&c->after, old);
	pthread_mutex_unlock(&e->lock);

	c->after.state = want;
	c->after.updated = now_wall();
	/* Enabling an alias whose lifetime ran out gives it the same
	 * lifetime again, from now. */
	if (want == ALIAS_ACTIVE && c->after.expires > 0 &&
	    c->after.expires <= c->after.updated)
		c->after.expires = c->after.lifetime > 0 ?
			c->after.updated + c->after.lifetime : 0;
	if (commit_answered(e, c, address, resp) == 0) {
		char until[64];

		if (want == ALIAS_ACTIVE && c->after.expires > 0) {
			utc_date(c->after.expires, until, sizeof(until));
			msg_set_status(resp, "ok", "Alias %s is now %s until %s", address,
				       alias_state_name(want), until);
		} else
			msg_set_status(resp, "ok", "Alias %s is now %s", address,
				       alias_state_name(want));
		msg_set(resp, CTL_KEY_TXN, c->txn);
	}
	pthread_mutex_lock(&e->lock);
out_release:
	commit_busy_release(e, address, c->txn);
	pthread_mutex_unlock(&e->lock);
out:
	free(address);
}

/* do_lifetime - set or clear an alias's lifetime (expire NAME 30d|never);
 * the state stays: an expired alias is enabled with "enable" */
static void
do_lifetime(struct engine *e, struct change *c, long long lifetime, int admin,
	    struct msg *resp)
{
	char *address = xstrdup(c->after.address), until[64];
	const struct alias *old;
	long long now = now_wall();

	if (take_fresh(e, c, address, resp) < 0)
		goto out;
	if ((old = owned_alias(e, c, address, admin, resp)) == NULL)
		goto out_release;
	if (lifetime == REQUEST_LIFETIME_NEVER && old->expires == 0) {
		msg_set_status(resp, "ok", "Alias %s does not expire", address);
		goto out_release;
	}
	alias_copy(&c->before, old);
	alias_clear(&c->after);
	alias_copy(&c->after, old);
	pthread_mutex_unlock(&e->lock);

	if (lifetime == REQUEST_LIFETIME_NEVER)
		c->after.expires = c->after.lifetime = 0;
	else {
		c->after.lifetime = lifetime;
		c->after.expires = now + lifetime;
	}
	/* An expired alias keeps the time it expired at (its refusal says
	 * "expired") until it is enabled; the new lifetime counts from then. */
	if (alias_expired(&c->before) && lifetime != REQUEST_LIFETIME_NEVER)
		c->after.expires = c->before.expires;
	if (commit_answered(e, c, address, resp) == 0) {
		if (lifetime == REQUEST_LIFETIME_NEVER)
			msg_set_status(resp, "ok", "Alias %s no longer expires%s", address,
				       c->after.state == ALIAS_ACTIVE ? "" :
				       "; enable it to use it again");
		else if (alias_expired(&c->before)) {
			request_duration_format(lifetime, until, sizeof(until));
			msg_set_status(resp, "ok", "Alias %s has expired; enable it to use it "
				       "again for %s", address, until);
		} else {
			utc_date(c->after.expires, until, sizeof(until));
			msg_set_status(resp, "ok", "Alias %s now expires at %s", address, until);
		}
		msg_set(resp, CTL_KEY_TXN, c->txn);
	}
	pthread_mutex_lock(&e->lock);
out_release:
	commit_busy_release(e, address, c->txn);
	pthread_mutex_unlock(&e->lock);
out:
	free(address);
}

/* pick_name - a fresh generated name in domain that no alias (in any
 * state), reserved name or request address has; NULL when every draw
 * collided or the system's CSPRNG failed (the request is retried) */
static char *
pick_name(struct engine *e, const char *domain)
{
	const struct conf *conf = e->conf;

	for (int tries = 0; tries < GENERATE_TRIES; tries++) {
		unsigned char rnd[REQUEST_GEN_BYTES];
		char name[REQUEST_GEN_LEN + 1], *address;
		int taken;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return NULL;	/* never guess from a weaker source */
		request_name_from_random(rnd, name);
		address = xasprintf("%s@%s", name, domain);
		pthread_mutex_lock(&e->lock);
		taken = aliasmap_find(mapstate_map(e->ms), address) != NULL ||
			aliasmap_find_local(mapstate_map(e->ms), name) != NULL;
		pthread_mutex_unlock(&e->lock);
		taken = taken || strlist_contains(&conf->reserved, name, false) ||
			conf_is_request_address(conf, address);
		free(address);
		if (!taken)
			return xstrdup(name);
	}
	return NULL;
}

/* do_list_mail - "list" by mail: send the owner their aliases */
static void
do_list_mail(struct engine *e, const char *id, const char *login,
	     const char *from, struct msg *resp)
{
	struct aliasmap snapshot;
	char *owner = NULL, *err = NULL;
	int rc;

	/* The login and the owner address go into the mail's header (sendmail
	 * -t takes its recipients from there): plain ones only. */
	if (!notify_login_valid(login)) {
		log_warnx(id, "list refused: the login is not a plain name");
		msg_set_status(resp, "perm", "Your login cannot be used in a mail header; "
			       "ask the postmaster");
		goto out;
	}
	if ((rc = postfix_owner_address(e->conf, login, &owner, &err)) != 0) {
		msg_set_status(resp, rc < 0 ? "temp" : "perm", rc < 0 ?
		      "The owner address cannot be looked up right now; try again later" :
		      "No delivery address is known for your login; ask the postmaster");
		goto out;
	}
	if (!request_target_valid(owner)) {
		log_warnx(id, "list login=%s refused: the owner address is not one plain "
			  "address", login);
		msg_set_status(resp, "perm", "The delivery address known for your login is "
			       "not one plain address; ask the postmaster");
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	aliasmap_copy(&snapshot, mapstate_map(e->ms));
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
	char *address = NULL, *generated = NULL;

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
	if (req->lifetime > 0 && req->lifetime % REQUEST_DAY != 0 &&
	    !conf->expiry_test_seconds) {
		msg_set_status(resp, "perm", "A lifetime is a number of days, weeks or months");
		return;
	}
	if (req->generate) {
		if ((generated = pick_name(e, req->domain)) == NULL) {
			msg_set_status(resp, "temp", REPLY_GENERATED_TAKEN);
			log_warnx(id, "no free generated name in %d tries", GENERATE_TRIES);
			return;
		}
	}
	address = str_lower(xasprintf("%s@%s", generated ? generated : req->name,
				      req->domain));
	c.after.address = xstrdup(address);
	commit_new_id(c.txn);
	switch (req->verb) {
	case VERB_NEW:
		do_new(e, &c, req->note, req->lifetime, generated != NULL, admin, resp, f,
		       from);
		break;
	case VERB_EXPIRE:
		do_lifetime(e, &c, req->lifetime, admin, resp);
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
	free(generated);
}

/* How old an answer of the resolve check status may show (ms). */
#define STATUS_CHECK_AGE_MS 10000

static void
handle_status(struct engine *e, struct msg *resp)
{
	char digest[65], *err = NULL;
	size_t active = 0, n, in_flight, in_doubt, undelivered;

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
	if (commit_refresh(e) < 0)
		msg_set(resp, "map_error", mapstate_problem(e->ms));
	aliasmap_digest(mapstate_map(e->ms), e->conf->map_format, digest);
	n = mapstate_map(e->ms)->n;
	for (size_t i = 0; i < mapstate_map(e->ms)->n; i++)
		if (mapstate_map(e->ms)->v[i].state == ALIAS_ACTIVE)
			active++;
	commit_counts(e, &in_flight, &in_doubt, &undelivered);
	msg_setf(resp, "in_flight", "%zu", in_flight);
	msg_setf(resp, "map_dirty", "%d", mapstate_dirty(e->ms));
	msg_setf(resp, "in_doubt", "%zu", in_doubt);
	msg_setf(resp, "undelivered", "%zu", undelivered);
	for (size_t i = 0; e->peers != NULL && i < peers_count(e->peers); i++) {
		const char *eq, *resolve;
		long long last;
		int connected;
		char *lerr = NULL, key[64];

		peers_state(e->peers, i, &connected, &last, &lerr);
		sync_peer_view(e, i, &eq, &resolve);
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
		msg_set(resp, key, resolve);
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

	pthread_mutex_lock(&e->lock);
	n = commit_describe(e, &items);
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < n; i++) {
		emit(arg, &items[i]);
		msg_clear(&items[i]);
	}
	free(items);
	msg_set_status(resp, "ok", "%zu unfinished changes", n);
	msg_setf(resp, "count", "%zu", n);
}

/* collect - item callback: gather a peer's aliases into a map, hand
 * edits included (else each would show as absent there) */
static void
collect(void *arg, const struct msg *item)
{
	struct aliasmap *m = arg;
	struct alias a;

	if (alias_from_msg_held(item, &a, NULL) == 0) {
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

/* same_digest - 1 peer i's map digest equals ours, 0 it differs (both
 * digests in here and there), -1 the peer could not be asked */
static int
same_digest(struct engine *e, size_t i, char here[65], char there[65], char **err_r)
{
	struct msg r = { 0 };
	int rc = ask_peer(e, i, "digest", &r, NULL, err_r);

	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		aliasmap_digest(mapstate_map(e->ms), e->conf->map_format, here);
		pthread_mutex_unlock(&e->lock);
		snprintf(there, 65, "%s", msg_gets(&r, "digest"));
		rc = strcmp(here, there) == 0;
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

/* emit_digests - the difference as the two digests: 1 */
static size_t
emit_digests(struct engine *e, size_t i, const char *here, const char *there,
	     engine_emit_fn emit, void *arg)
{
	struct msg item = { 0 };

	msg_set(&item, "item", "diff");
	msg_set(&item, "peer", peers_name(e->peers, i));
	msg_set(&item, "address", "(the map as a whole)");
	msg_setf(&item, "here", "digest %s", here);
	msg_setf(&item, "there", "digest %s (no entry shows the difference)", there);
	emit(arg, &item);
	msg_clear(&item);
	return 1;
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
	/* The comparison is of what this node holds in memory, which is not
	 * what its file says while the file cannot be read: say so. */
	if (commit_refresh(e) < 0)
		msg_set(resp, "map_error", mapstate_problem(e->ms));
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < npeers; i++) {
		struct aliasmap theirs = { 0 };
		struct msg r = { 0 };
		char *err = NULL;
		size_t found = 0;
		char dh[65], dt[65];
		int rc = same_digest(e, i, dh, dt, &err);

		if (rc == 0) {
			if (!copied) {
				pthread_mutex_lock(&e->lock);
				aliasmap_copy(&mine, mapstate_map(e->ms));
				pthread_mutex_unlock(&e->lock);
				copied = 1;
			}
			if ((rc = ask_peer(e, i, "dump", &r, &theirs, &err)) == 0)
				found = emit_diffs(e, i, &mine, &theirs, emit, arg);
			/* The digests differ: never "identical", even if no
			 * entry of the dump shows how (one this node cannot read,
			 * or a change between the two questions). */
			if (rc == 0 && found == 0)
				found = emit_digests(e, i, dh, dt, emit, arg);
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
			sync_note_verified(e, i, found == 0);
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

static void
handle_list(struct engine *e, const struct ctl_request *req, struct msg *resp,
	    engine_emit_fn emit, void *arg)
{
	size_t n = sync_emit_aliases(e, emit, arg, req->owner, req->address);

	if (req->history)
		mapstate_history(e->ms, req->address, emit, arg);
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
	if (!f->pending)
		return;
	commit_confirm(e, &f->alias, f->from, f->txn);
	alias_clear(&f->alias);
	free(f->from);
	f->from = NULL;
	f->pending = 0;
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
	e->confirm_retry_ms = CONFIRM_RETRY_MS;
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->maplock, NULL);
	pthread_rwlock_init(&e->jlock, NULL);
	pthread_cond_init(&e->work, NULL);
	if (mapstate_open(conf, &e->ms, err_r) < 0)
		goto fail;
	if (journal_open(journal_path, &e->journal, &recs, &n, err_r) < 0)
		goto fail;
	if (commit_recover(e, recs, n, err_r) < 0)
		goto fail;
	/* The files are rewritten from the recovered state: this also heals
	 * a compiled map that is missing or older than its source. */
	if (mapstate_save_all(e->ms, err_r) < 0)
		goto fail;
	/* Confirmations a crash kept from going out, for aliases still
	 * active; noted before compaction forgets the transactions. */
	commit_confirm_recovered(e);
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
	sync_stop(e);
	sync_free(e);
	mapstate_close(&e->ms);
	journal_close(&e->journal);
	commit_free(e);
	for (size_t i = 0; i < e->nrates; i++) {
		free(e->rates[i].login);
		free(e->rates[i].times);
	}
	free(e->rates);
	strlist_clear(&e->unconfirmed);
	strlist_clear(&e->unapplied);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->maplock);
	pthread_rwlock_destroy(&e->jlock);
	pthread_cond_destroy(&e->work);
	free(e);
	*ep = NULL;
}
