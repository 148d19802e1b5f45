/* commit.c - the commit protocol: two-phase commit across servers.
 *
 * Coordinator (the node that received the request):
 *   prepare record (fsync) -> "prepare" to every peer, in parallel ->
 *   every peer checks its own map and Postfix, journals its prepare and
 *   votes -> commit or abort record (fsync) -> apply -> answer the client
 *   -> deliver the decision to the peers in the background until each has
 *   acknowledged it, then a "done" record.
 * One network round trip before the answer.  It is safe because a peer
 * that voted yes holds the complete change durably and keeps the address
 * locked until it learns the outcome, and the coordinator keeps every
 * decision until every peer has it: a participant in doubt asks the
 * coordinator, and "no such transaction" can only mean abort.
 *
 * Conflicts: two coordinators preparing the same address each find it
 * locked by the other.  The node with the lower node_name wins: its node
 * votes no on the other's prepare; the higher node votes yes on the
 * lower's and dooms its own.  No clocks are involved.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "crashpoint.h"
#include "engine-private.h"
#include "log.h"
#include "postfix.h"

#define JOURNAL_COMPACT_BYTES (256 * 1024)
#define DECIDE_TIMEOUT_MS 5000
#define IN_DOUBT_GRACE_MS 2000
#define MIN_VOTE_WAIT_MS 200

void
commit_new_id(char out[TXN_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[TXN_ID_LEN / 2];

	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		/* Uniqueness only matters per coordinator; the clock will do. */
		unsigned long long t = (unsigned long long)now_mono_ms() ^
			((unsigned long long)now_wall() << 20);

		memcpy(r, &t, sizeof(r));
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[TXN_ID_LEN] = '\0';
}

/* ---- the transaction table (e->lock held) ---- */

static struct txn *
txn_find(struct engine *e, const char *id)
{
	for (size_t i = 0; i < e->ntxns; i++)
		if (strcmp(e->txns[i]->id, id) == 0)
			return e->txns[i];
	return NULL;
}

static struct txn *
txn_add(struct engine *e, const char *id, const char *coord,
	const struct msg *prepare, const struct alias *after)
{
	struct txn *t = xcalloc(1, sizeof(*t));

	snprintf(t->id, sizeof(t->id), "%s", id);
	t->coord = xstrdup(coord);
	for (size_t i = 0; i < prepare->n; i++)
		msg_set(&t->prepare, prepare->v[i].key, prepare->v[i].value);
	alias_copy(&t->after, after);
	t->since = now_mono_ms();
	e->txns = xrealloc(e->txns, (e->ntxns + 1) * sizeof(*e->txns));
	e->txns[e->ntxns++] = t;
	return t;
}

static void
txn_drop(struct engine *e, const char *id)
{
	for (size_t i = 0; i < e->ntxns; i++) {
		struct txn *t = e->txns[i];

		if (strcmp(t->id, id) != 0)
			continue;
		free(t->coord);
		msg_clear(&t->prepare);
		alias_clear(&t->after);
		free(t);
		e->txns[i] = e->txns[--e->ntxns];
		return;
	}
}

static int
is_self(const struct engine *e, const char *node)
{
	return strcmp(node, e->conf->node_name) == 0;
}

/* ---- journal records, kept in step with the table ---- */

/* record_prepare - journal a prepare and enter it in the table */
static int
record_prepare(struct engine *e, const struct msg *rec, const char *coord,
	       const struct alias *after, int in_flight, char **err_r)
{
	int rc;

	pthread_rwlock_rdlock(&e->jlock);
	rc = journal_append(e->journal, rec, err_r);
	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		if (txn_find(e, msg_gets(rec, "txn")) == NULL)
			txn_add(e, msg_gets(rec, "txn"), coord, rec, after)->in_flight = in_flight;
		pthread_mutex_unlock(&e->lock);
	}
	pthread_rwlock_unlock(&e->jlock);
	return rc;
}

/* record_decision - journal commit (1) or abort (-1) and note it */
static int
record_decision(struct engine *e, const char *id, int decision, char **err_r)
{
	struct msg rec = { 0 };
	struct txn *t;
	int rc;

	msg_set(&rec, "rec", decision > 0 ? "commit" : "abort");
	msg_set(&rec, "txn", id);
	pthread_rwlock_rdlock(&e->jlock);
	rc = journal_append(e->journal, &rec, err_r);
	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		if ((t = txn_find(e, id)) != NULL) {
			t->decision = decision;
			t->in_flight = 0;
		}
		pthread_mutex_unlock(&e->lock);
	}
	pthread_rwlock_unlock(&e->jlock);
	msg_clear(&rec);
	return rc;
}

/* append_marker - a best-effort {rec: kind, txn: id} journal record;
 * with drop, the transaction is forgotten under the same journal lock, so
 * compaction never sees one without the other */
static void
append_marker(struct engine *e, const char *kind, const char *id, int drop)
{
	struct msg rec = { 0 };
	char *err = NULL;

	msg_set(&rec, "rec", kind);
	msg_set(&rec, "txn", id);
	pthread_rwlock_rdlock(&e->jlock);
	if (journal_append(e->journal, &rec, &err) < 0) {
		log_warnx(id, "journal: %s", err);
		free(err);
	}
	if (drop) {
		pthread_mutex_lock(&e->lock);
		txn_drop(e, id);
		pthread_mutex_unlock(&e->lock);
	}
	pthread_rwlock_unlock(&e->jlock);
	msg_clear(&rec);
}

/* record_done - every peer has the decision: forget the transaction.  A
 * lost "done" only means the decision is delivered once more. */
static void
record_done(struct engine *e, const char *id)
{
	append_marker(e, "done", id, 1);
}

/* Lost, it only means one more confirmation after a crash. */
void
commit_note_confirmed(struct engine *e, const char *id)
{
	append_marker(e, "confirmed", id, 0);
}

int
commit_compact(struct engine *e, int force, char **err_r)
{
	struct msg *recs;
	size_t n = 0;
	int rc = 0;

	if (!force && journal_size(e->journal) < JOURNAL_COMPACT_BYTES)
		return 0;
	pthread_rwlock_wrlock(&e->jlock);
	pthread_mutex_lock(&e->lock);
	if (e->map_dirty) {
		/* The journal is the only copy of what the files lack. */
		pthread_mutex_unlock(&e->lock);
		pthread_rwlock_unlock(&e->jlock);
		return 0;
	}
	recs = xcalloc(2 * e->ntxns + 1, sizeof(*recs));
	for (size_t i = 0; i < e->ntxns; i++) {
		const struct txn *t = e->txns[i];

		for (size_t k = 0; k < t->prepare.n; k++)
			msg_set(&recs[n], t->prepare.v[k].key, t->prepare.v[k].value);
		n++;
		if (t->decision != 0) {
			msg_set(&recs[n], "rec", t->decision > 0 ? "commit" : "abort");
			msg_set(&recs[n], "txn", t->id);
			n++;
		}
	}
	pthread_mutex_unlock(&e->lock);
	rc = journal_rewrite(e->journal, recs, n, err_r);
	pthread_rwlock_unlock(&e->jlock);
	journal_free_records(recs, n);
	return rc;
}

/* ---- coordinator ---- */

/* collect_votes - ask every peer; 0 all yes, 1 a final no, -1 otherwise */
static int
collect_votes(struct engine *e, struct change *c, const struct msg *prepare,
	      char **err_r)
{
	size_t n = peers_count(e->peers);
	struct msg *resps = xcalloc(n, sizeof(*resps)), req = { 0 };
	int *rcs = xcalloc(n, sizeof(*rcs)), result = 0;
	char **errs = xcalloc(n, sizeof(*errs));
	long long wait = c->deadline > 0 ? c->deadline - now_mono_ms() :
		e->conf->commit_timeout * 1000 - 1000;

	if (wait < MIN_VOTE_WAIT_MS)
		wait = MIN_VOTE_WAIT_MS;
	for (size_t i = 0; i < prepare->n; i++)
		msg_set(&req, prepare->v[i].key, prepare->v[i].value);
	msg_set(&req, "op", "prepare");
	msg_set(&req, "sender", e->conf->node_name);
	peers_call_all(e->peers, &req, resps, rcs, errs, (int)wait);
	for (size_t i = 0; i < n; i++) {
		const char *vote = msg_gets(&resps[i], "status");
		const char *peer = peers_name(e->peers, i);

		if (rcs[i] < 0) {
			log_warnx(c->txn, "vote peer=%s: unreachable: %s", peer, errs[i]);
			set_error(err_r, "peer %s is unreachable", peer);
			if (result == 0)
				result = -1;
		} else if (strcmp(vote, "yes") == 0) {
			log_info(c->txn, "vote peer=%s: yes", peer);
		} else if (strcmp(vote, "perm") == 0) {
			log_info(c->txn, "vote peer=%s: no: %s", peer, msg_gets(&resps[i], "text"));
			if (c->refusal == NULL)
				c->refusal = xstrdup(msg_gets(&resps[i], "text"));
			result = 1;
		} else {
			log_info(c->txn, "vote peer=%s: not now: %s", peer,
				 msg_gets(&resps[i], "text"));
			if (strcmp(msg_gets(&resps[i], "dsn"), "4.3.5") == 0)
				c->misconfigured = peers_name(e->peers, i);
			set_error(err_r, "peer %s: %s", peer, msg_gets(&resps[i], "text"));
			if (result == 0)
				result = -1;
		}
		msg_clear(&resps[i]);
		free(errs[i]);
	}
	msg_clear(&req);
	free(resps);
	free(rcs);
	free(errs);
	return result;
}

/* local_check - the end of this node's own resolve check, if one runs
 * during the vote: 0 clear, 1 refused for good (c->refusal), -1 not now */
static int
local_check(struct engine *e, struct change *c, char **err_r)
{
	char *where = NULL, *err = NULL;
	int rc;

	if (c->check == NULL)
		return 0;
	rc = postfix_resolves_finish(c->check, &where, &err);
	c->check = NULL;
	if (rc > 0) {
		free(c->refusal);
		c->refusal = xasprintf("Address %s is already in use on %s (%s)",
				       c->after.address, e->conf->node_name, where);
	} else if (rc < 0) {
		log_warnx(c->txn, "resolve check address=%s failed: %s", c->after.address, err);
		set_error(err_r, "Postfix cannot be asked about %s right now", c->after.address);
		c->misconfigured = e->conf->node_name;
	}
	free(where);
	free(err);
	return rc;
}

int
commit_change(struct engine *e, struct change *c, char **err_r)
{
	struct msg rec = { 0 };
	int votes = 0, doomed = 0, rc;

	msg_set(&rec, "rec", "prepare");
	msg_set(&rec, "txn", c->txn);
	msg_set(&rec, "coord", e->conf->node_name);
	msg_set(&rec, "id", c->id);
	msg_set(&rec, "verb", c->verb);
	msg_set(&rec, "before_state", c->before.address ?
		alias_state_name(c->before.state) : "none");
	alias_to_msg(&c->after, &rec);
	rc = record_prepare(e, &rec, e->conf->node_name, &c->after, 1, err_r);
	if (rc < 0) {
		local_check(e, c, NULL);
		msg_clear(&rec);
		return -1;
	}
	log_info(c->txn, "prepare id=%s verb=%s address=%s state=%s origin=%s",
		 c->id, c->verb, c->after.address, alias_state_name(c->after.state),
		 c->origin);
	crash_point("coord-after-prepare");

	if (e->peers != NULL)
		votes = collect_votes(e, c, &rec, err_r);
	/* This node's own "no" counts as a vote like any other. */
	if ((rc = local_check(e, c, err_r)) > 0 || (rc < 0 && votes == 0))
		votes = rc;
	msg_clear(&rec);
	pthread_mutex_lock(&e->lock);
	doomed = txn_find(e, c->txn)->doomed;
	pthread_mutex_unlock(&e->lock);
	crash_point("coord-after-votes");

	if (votes == 0 && doomed) {
		set_error(err_r, "another server took %s at the same time", c->after.address);
		votes = -1;
	}
	if (votes == 0 && c->deadline > 0 && now_mono_ms() > c->deadline) {
		/* The requester answers 4xx about now: the change must not
		 * happen behind its back. */
		set_error(err_r, "not decided before the requester's deadline");
		votes = -1;
	}
	if (votes != 0 || record_decision(e, c->txn, 1, err_r) < 0) {
		char *ignored = NULL;

		/* Without a commit record the change is not committed. */
		if (record_decision(e, c->txn, -1, &ignored) < 0)
			log_err(c->txn, "journal: %s", ignored);
		free(ignored);
		log_notice(c->txn, "abort address=%s: %s", c->after.address,
			   votes > 0 ? c->refusal : (err_r && *err_r ? *err_r : "error"));
		if (e->peers == NULL)
			record_done(e, c->txn);
		else
			engine_wake(e);	/* tell the peers that voted yes */
		return votes > 0 ? 1 : -1;
	}
	crash_point("coord-after-commit-record");

	pthread_mutex_lock(&e->lock);
	rc = engine_apply(e, &c->after, c->txn, e->conf->node_name, err_r);
	pthread_mutex_unlock(&e->lock);
	if (e->peers == NULL)
		record_done(e, c->txn);
	else
		engine_wake(e);		/* deliver the decision now */
	if (rc < 0) {
		log_err(c->txn, "commit recorded but not applied: %s", *err_r);
		return -1;
	}
	crash_point("coord-after-apply");
	log_info(c->txn, "commit address=%s state=%s target=%s owner=%s",
		 c->after.address, alias_state_name(c->after.state),
		 c->after.target, c->after.owner);
	return 0;
}

/* ---- participant ---- */

/* finish - apply the decision on a transaction this node voted yes on */
static int
finish(struct engine *e, const char *id, int decision, const char *how)
{
	struct alias after = { 0 };
	char *err = NULL, verb[16] = "", coord[256] = "";
	struct txn *t;
	int rc;

	pthread_mutex_lock(&e->lock);
	t = txn_find(e, id);
	if (t == NULL || t->finishing || is_self(e, t->coord)) {
		pthread_mutex_unlock(&e->lock);
		return 0;	/* already done, or being done by another thread */
	}
	t->finishing = 1;
	alias_copy(&after, &t->after);
	snprintf(verb, sizeof(verb), "%s", msg_gets(&t->prepare, "verb"));
	snprintf(coord, sizeof(coord), "%s", t->coord);
	pthread_mutex_unlock(&e->lock);

	if (record_decision(e, id, decision, &err) < 0) {
		log_err(id, "journal: %s", err);
		pthread_mutex_lock(&e->lock);
		if ((t = txn_find(e, id)) != NULL)
			t->finishing = 0;
		pthread_mutex_unlock(&e->lock);
		free(err);
		alias_clear(&after);
		return -1;
	}
	crash_point("part-after-decision");
	if (decision > 0) {
		pthread_mutex_lock(&e->lock);
		rc = engine_apply(e, &after, id, coord, &err);
		pthread_mutex_unlock(&e->lock);
		if (rc < 0)
			log_err(id, "commit recorded but not applied: %s", err);
		crash_point("part-after-apply");
	} else {
		pthread_mutex_lock(&e->lock);
		if (engine_set_pending(e, after.address, 0, &err) < 0)
			log_err(id, "access map: %s", err);
		pthread_mutex_unlock(&e->lock);
	}
	log_info(id, "%s address=%s state=%s (%s)", decision > 0 ? "commit" : "abort",
		 after.address, alias_state_name(after.state), how);
	pthread_mutex_lock(&e->lock);
	engine_busy_release(e, after.address, id);
	txn_drop(e, id);
	pthread_mutex_unlock(&e->lock);
	if (decision > 0 && after.state == ALIAS_ACTIVE && strcmp(verb, "new") == 0)
		engine_confirm(e, &after, id);
	free(err);
	alias_clear(&after);
	return 0;
}

/* on_prepare - check a peer's change against this node and vote */
static void
on_prepare(struct engine *e, const char *peer, const struct msg *req,
	   struct msg *resp)
{
	const struct conf *conf = e->conf;
	const char *id = msg_gets(req, "txn"), *verb = msg_gets(req, "verb");
	const char *node = conf->node_name;
	struct alias after;
	const struct alias *old;
	struct msg rec = { 0 };
	char *err = NULL, *where = NULL, *local;
	struct txn *holder_txn;
	struct postfix_check *check = NULL;
	const char *holder;
	int rc;

	if (strlen(id) != TXN_ID_LEN || strcmp(msg_gets(req, "coord"), peer) != 0 ||
	    alias_from_msg(req, &after, &err) < 0) {
		msg_set_status(resp, "perm", "malformed prepare from %s", peer);
		log_warnx(id[0] ? id : NULL, "prepare from %s refused: %s", peer,
			  err ? err : "bad fields");
		free(err);
		return;
	}
	local = xstrndup(after.address, strcspn(after.address, "@"));
	pthread_mutex_lock(&e->lock);
	if (engine_refresh(e) < 0) {
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "temp", "The alias map on %s needs the postmaster's attention", node);
		goto out;
	}
	if (txn_find(e, id) != NULL) {
		/* The same prepare again (the coordinator reconnected). */
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "yes", "already prepared");
		goto out;
	}
	old = strcmp(verb, "new") == 0 && conf->map_format == MAP_FORMAT_ALIASES ?
		aliasmap_find_local(&e->map, local) : aliasmap_find(&e->map, after.address);
	if (strcmp(verb, "new") == 0) {
		if (old != NULL && !(old->state == ALIAS_DELETED &&
				     strcmp(old->owner, after.owner) == 0 &&
				     strcmp(old->address, after.address) == 0)) {
			pthread_mutex_unlock(&e->lock);
			msg_set_status(resp, "perm", "Alias %s already exists", after.address);
			goto out;
		}
	} else if (old == NULL || strcmp(old->owner, after.owner) != 0 ||
		   strcmp(alias_state_name(old->state), msg_gets(req, "before_state")) != 0) {
		pthread_mutex_unlock(&e->lock);
		log_warnx(id, "prepare from %s: %s differs here; run milter-aliasctl verify",
			  peer, after.address);
		msg_set_status(resp, "perm", "Alias %s is not the same on %s; the postmaster has "
		     "been told", after.address, node);
		goto out;
	}
	holder = engine_busy_holder(e, after.address);
	if (holder != NULL) {
		holder_txn = txn_find(e, holder);
		/* Both of us prepared the address: the lower node_name wins. */
		if (holder_txn != NULL && is_self(e, holder_txn->coord) &&
		    holder_txn->in_flight && strcmp(peer, node) < 0) {
			holder_txn->doomed = 1;
			log_info(holder, "conflict on %s with %s (txn %s): %s wins",
				 after.address, peer, id, peer);
		} else {
			pthread_mutex_unlock(&e->lock);
			msg_set_status(resp, "temp", "A change to %s is in progress on %s; try again "
			     "in a minute", after.address, node);
			goto out;
		}
	}
	engine_busy_add(e, after.address, id);
	pthread_mutex_unlock(&e->lock);

	/* Our own Postfix must not deliver this address already either; the
	 * check runs while the access map is updated. */
	if (strcmp(verb, "new") == 0)
		check = postfix_resolves_start(conf, after.address);
	/* Until the decision arrives, mail to the address is deferred here,
	 * never refused for good: the coordinator may answer 250 as soon as
	 * this vote reaches it. */
	pthread_mutex_lock(&e->lock);
	rc = engine_set_pending(e, after.address, 1, &err);
	pthread_mutex_unlock(&e->lock);
	if (check != NULL) {
		char *cerr = NULL;
		int crc = postfix_resolves_finish(check, &where, &cerr);

		if (crc > 0 && rc == 0)
			msg_set_status(resp, "perm", "Address %s is already in use on %s (%s)",
				       after.address, node, where);
		else if (crc < 0 && rc == 0) {
			log_warnx(id, "resolve check address=%s failed: %s", after.address, cerr);
			engine_reply_misconfigured(resp, node);
		}
		free(cerr);
		if (crc != 0 && rc == 0)
			goto unpend;
	}
	if (rc < 0) {
		log_err(id, "access map: %s", err);
		msg_set_status(resp, "temp", "%s cannot update its access map right now", node);
		goto unpend;
	}
	for (size_t i = 0; i < req->n; i++)
		if (strcmp(req->v[i].key, "op") != 0 && strcmp(req->v[i].key, "sender") != 0)
			msg_set(&rec, req->v[i].key, req->v[i].value);
	msg_set(&rec, "rec", "prepare");
	if (record_prepare(e, &rec, peer, &after, 0, &err) < 0) {
		log_err(id, "journal: %s", err);
		msg_set_status(resp, "temp", "%s cannot store the change right now", node);
		goto unpend;
	}
	log_info(id, "prepared for %s: verb=%s address=%s state=%s", peer, verb,
		 after.address, alias_state_name(after.state));
	crash_point("part-after-prepare");
	msg_set_status(resp, "yes", "prepared");
	goto out;
unpend:
	pthread_mutex_lock(&e->lock);
	if (engine_set_pending(e, after.address, 0, &err) < 0)
		log_err(id, "access map: %s", err);
	engine_busy_release(e, after.address, id);
	pthread_mutex_unlock(&e->lock);
out:
	msg_clear(&rec);
	alias_clear(&after);
	free(local);
	free(where);
	free(err);
}

void
commit_peer_request(struct engine *e, const char *peer, const struct msg *req,
		    struct msg *resp)
{
	const char *op = msg_gets(req, "op"), *id = msg_gets(req, "txn");
	struct txn *t;

	if (strcmp(op, "prepare") == 0) {
		on_prepare(e, peer, req, resp);
	} else if (strcmp(op, "decide") == 0) {
		const char *d = msg_gets(req, "decision");

		if (strcmp(d, "commit") != 0 && strcmp(d, "abort") != 0) {
			msg_set_status(resp, "perm", "bad decision");
			return;
		}
		if (finish(e, id, strcmp(d, "commit") == 0 ? 1 : -1, "decided by coordinator") < 0)
			msg_set_status(resp, "temp", "cannot record the decision now");
		else
			msg_set_status(resp, "ok", "recorded");
	} else if (strcmp(op, "outcome") == 0) {
		const char *answer = "abort";	/* unknown: never committed */

		pthread_mutex_lock(&e->lock);
		t = txn_find(e, id);
		if (t != NULL && is_self(e, t->coord))
			answer = t->decision > 0 ? "commit" : t->decision < 0 ? "abort" : "pending";
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "ok", "%s", answer);
		msg_set(resp, "decision", answer);
	} else
		msg_set_status(resp, "perm", "unknown operation");
}

/* ---- background work ---- */

struct pending {
	char id[TXN_ID_LEN + 1];
	int decision;
	unsigned long acked;
	char *coord;
};

/* snapshot - transactions needing background work (e->lock taken here) */
static size_t
snapshot(struct engine *e, int coordinated, struct pending **out)
{
	long long now = now_mono_ms();
	size_t n = 0;

	pthread_mutex_lock(&e->lock);
	*out = xcalloc(e->ntxns + 1, sizeof(**out));
	for (size_t i = 0; i < e->ntxns; i++) {
		const struct txn *t = e->txns[i];

		if (coordinated ? !is_self(e, t->coord) || t->decision == 0 :
		    is_self(e, t->coord) || t->decision != 0 || t->finishing ||
		    now - t->since < IN_DOUBT_GRACE_MS)
			continue;
		memcpy((*out)[n].id, t->id, sizeof(t->id));
		(*out)[n].decision = t->decision;
		(*out)[n].acked = t->acked;
		(*out)[n].coord = xstrdup(t->coord);
		n++;
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

/* deliver - send a decision to every peer that lacks it */
static void
deliver(struct engine *e, const struct pending *p)
{
	size_t n = peers_count(e->peers);
	unsigned long all = n >= sizeof(unsigned long) * 8 ? ~0UL : (1UL << n) - 1;
	unsigned long acked = p->acked;
	struct txn *t;

	for (size_t i = 0; i < n; i++) {
		struct msg req = { 0 }, resp = { 0 };
		char *err = NULL;

		if (acked & (1UL << i))
			continue;
		msg_set(&req, "op", "decide");
		msg_set(&req, "sender", e->conf->node_name);
		msg_set(&req, "txn", p->id);
		msg_set(&req, "decision", p->decision > 0 ? "commit" : "abort");
		if (peers_call(e->peers, i, &req, &resp, NULL, NULL, DECIDE_TIMEOUT_MS, &err) == 0 &&
		    strcmp(msg_gets(&resp, "status"), "ok") == 0)
			acked |= 1UL << i;
		free(err);
		msg_clear(&req);
		msg_clear(&resp);
	}
	pthread_mutex_lock(&e->lock);
	if ((t = txn_find(e, p->id)) != NULL)
		t->acked = acked;
	pthread_mutex_unlock(&e->lock);
	if ((acked & all) == all)
		record_done(e, p->id);
}

/* resolve - ask the coordinator what became of a transaction in doubt */
static void
resolve(struct engine *e, const struct pending *p)
{
	struct msg req = { 0 }, resp = { 0 };
	int i = peers_index(e->peers, p->coord);
	const char *d;
	char *err = NULL;

	if (i < 0) {
		log_err(p->id, "in doubt: coordinator %s is not a configured peer", p->coord);
		return;
	}
	msg_set(&req, "op", "outcome");
	msg_set(&req, "sender", e->conf->node_name);
	msg_set(&req, "txn", p->id);
	if (peers_call(e->peers, (size_t)i, &req, &resp, NULL, NULL, DECIDE_TIMEOUT_MS, &err) == 0) {
		d = msg_gets(&resp, "decision");
		if (strcmp(d, "commit") == 0 || strcmp(d, "abort") == 0)
			finish(e, p->id, strcmp(d, "commit") == 0 ? 1 : -1, "asked coordinator");
	}
	free(err);
	msg_clear(&req);
	msg_clear(&resp);
}

static int
stopping(struct engine *e)
{
	int stop;

	pthread_mutex_lock(&e->lock);
	stop = e->bg_stop;
	pthread_mutex_unlock(&e->lock);
	return stop;
}

void
commit_tick(struct engine *e)
{
	struct pending *list;
	size_t n;
	char *err = NULL;

	/* Both loops give way to a stop at once: whatever is left is in the
	 * journal and is finished after the restart. */
	if (e->peers != NULL) {
		n = snapshot(e, 1, &list);
		for (size_t i = 0; i < n; i++) {
			if (!stopping(e))
				deliver(e, &list[i]);
			free(list[i].coord);
		}
		free(list);
		n = snapshot(e, 0, &list);
		for (size_t i = 0; i < n; i++) {
			if (!stopping(e))
				resolve(e, &list[i]);
			free(list[i].coord);
		}
		free(list);
	}
	if (commit_compact(e, 0, &err) < 0) {
		log_warnx(NULL, "journal: compaction failed: %s", err);
		free(err);
	}
}

/* ---- recovery ---- */

int
commit_recover(struct engine *e, struct msg *recs, size_t n, char **err_r)
{
	struct strlist seen = { 0 };
	size_t replayed = 0, aborted = 0, in_doubt = 0, undelivered = 0;
	int rc = -1;

	for (size_t i = 0; i < n; i++) {
		const char *id = msg_gets(&recs[i], "txn"), *coord = msg_gets(&recs[i], "coord");
		int decision = 0, done = 0, confirmed = 0;
		struct alias a;
		char *err = NULL;

		if (strcmp(msg_gets(&recs[i], "rec"), "prepare") != 0 ||
		    strlist_contains(&seen, id, false))
			continue;
		strlist_add(&seen, id);
		for (size_t k = i + 1; k < n; k++) {
			const char *what = msg_gets(&recs[k], "rec");

			if (strcmp(msg_gets(&recs[k], "txn"), id) != 0)
				continue;
			if (strcmp(what, "commit") == 0)
				decision = 1;
			else if (strcmp(what, "abort") == 0)
				decision = -1;
			else if (strcmp(what, "done") == 0)
				done = 1;
			else if (strcmp(what, "confirmed") == 0)
				confirmed = 1;
		}
		if (alias_from_msg(&recs[i], &a, &err) < 0) {
			set_error(err_r, "journal: transaction %s is unreadable: %s", id, err);
			free(err);
			goto out;
		}
		if (is_self(e, coord) && decision == 0) {
			/* We never decided: nobody can have committed. */
			struct msg rec = { 0 };

			msg_set(&rec, "rec", "abort");
			msg_set(&rec, "txn", id);
			if (journal_append(e->journal, &rec, err_r) < 0) {
				msg_clear(&rec);
				alias_clear(&a);
				goto out;
			}
			msg_clear(&rec);
			log_notice(id, "recovery: aborted unfinished change address=%s", a.address);
			decision = -1;
			aborted++;
		}
		if (decision > 0) {
			/* Idempotent: the final state, put once more. */
			aliasmap_put(&e->map, &a);
			replayed++;
			/* Each server confirms a new alias once (a crash may make
			 * that twice, never zero times). */
			if (!confirmed && strcmp(msg_gets(&recs[i], "verb"), "new") == 0) {
				strlist_add(&e->unconfirmed, id);
				strlist_add(&e->unconfirmed, a.address);
			}
		}
		if (!is_self(e, coord) && decision == 0) {
			txn_add(e, id, coord, &recs[i], &a);
			engine_busy_add(e, a.address, id);
			strlist_add(&e->pending, a.address);	/* deferred until decided */
			log_notice(id, "recovery: in doubt address=%s; asking %s", a.address, coord);
			in_doubt++;
		} else if (is_self(e, coord) && !done && e->conf->npeers > 0) {
			struct txn *t = txn_add(e, id, coord, &recs[i], &a);

			t->decision = decision;
			undelivered++;
		}
		alias_clear(&a);
	}
	if (n > 0)
		log_info(NULL, "recovery: %zu records: %zu changes replayed, %zu aborted, "
			 "%zu in doubt, %zu decisions to deliver", n, replayed, aborted,
			 in_doubt, undelivered);
	rc = 0;
out:
	strlist_clear(&seen);
	return rc;
}
