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
 * lower's and loses its own.  With three or more, a participant may hold
 * the address for a higher coordinator's change (it voted yes: that lock
 * is never taken back) when the lowest one's prepare arrives; its "in
 * progress" names the holder, and the lowest asks again until that change
 * is settled there (wait_for_loser): undecided, it needs the lowest's
 * vote, which it cannot get, so it is aborted; decided already, its
 * decision is on its way.  No clocks are involved.
 *
 * The state machine.  Every transaction in the table is in one state;
 * txn_begin() enters it and txn_step() performs every other transition,
 * writing the journal record the transition needs (journal.h) before the
 * state changes.  A transition not in this table is a bug (log_panic).
 *
 *   from          to          on                                  record
 *   -             VOTING      coordinator: local checks passed     prepare
 *   VOTING        LOST        a lower-named node prepares the       -
 *                             same address (on_prepare)
 *   VOTING        DECIDING    every vote yes, before the deadline   -
 *   DECIDING      COMMITTED   the commit record is durable          commit
 *   VOTING, LOST, ABORTED     a no, an unreachable peer, the        abort
 *   DECIDING                  deadline, a lost race, a failed
 *                             commit record; recovery of a
 *                             transaction never decided
 *   COMMITTED,    GONE        coordinator: every peer acknowledged  done
 *   ABORTED                   (at once when standalone)
 *   -             PREPARED    participant: checks passed, votes yes prepare
 *   PREPARED      FINISHING   the decision arrives (decide, or the   -
 *                             answer to outcome)
 *   FINISHING     PREPARED    its record could not be written       -
 *   FINISHING     COMMITTED,  the decision is durable here          commit/abort
 *                 ABORTED
 *   COMMITTED,    GONE        participant: the decision is applied  -
 *   ABORTED
 *
 * DECIDING exists so that a lower node's prepare arriving while the
 * commit record is being written finds the address busy (4xx) instead of
 * taking it from a change that is about to commit.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "crashpoint.h"
#include "ctlproto.h"
#include "engine-private.h"
#include "log.h"
#include "mapstate.h"
#include "notify.h"
#include "postfix.h"
#include "request.h"

#define JOURNAL_COMPACT_BYTES (256 * 1024)
#define DECIDE_TIMEOUT_MS 5000
#define IN_DOUBT_GRACE_MS 2000
#define MIN_VOTE_WAIT_MS 200

enum txn_state {
	TXN_VOTING,		/* coordinator: votes being collected */
	TXN_LOST,		/* coordinator: voting, but the address is lost */
	TXN_DECIDING,		/* coordinator: all yes, commit record being written */
	TXN_PREPARED,		/* participant: voted yes, in doubt */
	TXN_FINISHING,		/* participant: the decision is being recorded */
	TXN_COMMITTED,		/* decided (coordinator: being delivered) */
	TXN_ABORTED,
	TXN_GONE,		/* forgotten: no longer in the table */
};

static const char *const state_names[] = {
	"voting", "lost", "deciding", "prepared", "finishing", "committed",
	"aborted", "gone",
};

/* A transaction this node takes part in, from its prepare record until
 * it no longer matters: for the coordinator, until every peer has
 * acknowledged the decision; for a participant, until it has applied it. */
struct txn {
	char id[TXN_ID_LEN + 1];
	char *coord;		/* node_name of the deciding node */
	struct msg prepare;	/* the prepare record, as journaled */
	struct alias after;	/* the alias's state if committed */
	enum txn_state state;
	int applied;		/* the decision is in the map state here */
	unsigned long acked;	/* coordinator: peers that have the decision */
	long long since;	/* now_mono_ms() of the prepare */
};

/* An address with a change in flight, and the transaction holding it. */
struct busy {
	char *address;		/* its map key: alias_address_key */
	char txn[TXN_ID_LEN + 1];
};


/* A confirmation sendmail did not take, kept (notify_keep) and retried. */
struct confirm {
	char *txn, *address, *from;
	int attempts;
	long long next;		/* now_mono_ms() of the next attempt */
};

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

/* ---- per-address locks (e->lock held) ----
 *
 * A lock is taken on the map key the address is written under
 * (alias_address_key): with map_format aliases, shop@example.org and
 * shop@example.net are one key, so two changes to them conflict like two
 * changes to one address, on the coordinator and on every participant.
 *
 * A new alias also conflicts with a change in flight to the key it
 * extends (shop for shop-bank, with recipient_delimiter "-") and to any
 * key that extends it: Postfix delivers shop-bank to shop's owner, so
 * the extension check of "new" must not answer from a map about to
 * change, and two users creating shop and shop-bank at once, one on each
 * server, must not both pass it.
 */

static int
busy_conflicts(const char *held, const char *key, const char *base, const char *delims)
{
	char *held_base;
	int hit;

	if (strcmp(held, key) == 0 || (base != NULL && strcmp(held, base) == 0))
		return 1;
	if (delims == NULL || (held_base = request_address_base(held, delims)) == NULL)
		return 0;
	hit = strcmp(held_base, key) == 0;
	free(held_base);
	return hit;
}

const char *
commit_busy_holder(struct engine *e, const char *address, const char *delims)
{
	char *key = alias_address_key(address, e->conf->map_format);
	char *base = delims != NULL ? request_address_base(key, delims) : NULL;
	const char *holder = NULL;

	for (size_t i = 0; i < e->nbusy && holder == NULL; i++)
		if (busy_conflicts(e->busy[i].address, key, base, delims))
			holder = e->busy[i].txn;
	free(base);
	free(key);
	return holder;
}

static void
busy_add(struct engine *e, const char *address, const char *txn)
{
	e->busy = xrealloc(e->busy, (e->nbusy + 1) * sizeof(*e->busy));
	e->busy[e->nbusy].address = alias_address_key(address, e->conf->map_format);
	snprintf(e->busy[e->nbusy].txn, sizeof(e->busy[e->nbusy].txn), "%s", txn);
	e->nbusy++;
}

int
commit_busy_take(struct engine *e, const char *address, const char *delims, const char *txn)
{
	if (commit_busy_holder(e, address, delims) != NULL)
		return -1;
	busy_add(e, address, txn);
	return 0;
}

void
commit_busy_release(struct engine *e, const char *address, const char *txn)
{
	char *key = alias_address_key(address, e->conf->map_format);

	for (size_t i = 0; i < e->nbusy; i++)
		if (strcmp(e->busy[i].address, key) == 0 &&
		    strcmp(e->busy[i].txn, txn) == 0) {
			free(e->busy[i].address);
			e->busy[i] = e->busy[--e->nbusy];
			break;
		}
	free(key);
}

size_t
commit_live_count(const struct engine *e)
{
	return e->nbusy + e->ntxns;
}

/* ---- the transaction table (e->lock held) ---- */

static int
is_self(const struct engine *e, const char *node)
{
	return strcmp(node, e->conf->node_name) == 0;
}

static struct txn *
txn_find(struct engine *e, const char *id)
{
	for (size_t i = 0; i < e->ntxns; i++)
		if (strcmp(e->txns[i]->id, id) == 0)
			return e->txns[i];
	return NULL;
}

/* txn_get - a transaction that must be in the table */
static struct txn *
txn_get(struct engine *e, const char *id)
{
	struct txn *t = txn_find(e, id);

	if (t == NULL)
		log_panic(id, "transaction %s is not in the table", id);
	return t;
}

/* decision - 1 committed, -1 aborted, 0 not decided yet */
static int
decision(const struct txn *t)
{
	return t->state == TXN_COMMITTED ? 1 : t->state == TXN_ABORTED ? -1 : 0;
}

static struct txn *
txn_add(struct engine *e, const char *id, const char *coord,
	const struct msg *prepare, const struct alias *after, enum txn_state state)
{
	struct txn *t = xcalloc(1, sizeof(*t));

	snprintf(t->id, sizeof(t->id), "%s", id);
	t->coord = xstrdup(coord);
	for (size_t i = 0; i < prepare->n; i++)
		msg_set(&t->prepare, prepare->v[i].key, prepare->v[i].value);
	alias_copy(&t->after, after);
	t->state = state;
	t->since = now_mono_ms();
	e->txns = xrealloc(e->txns, (e->ntxns + 1) * sizeof(*e->txns));
	e->txns[e->ntxns++] = t;
	return t;
}

static void
txn_free(struct txn *t)
{
	free(t->coord);
	msg_clear(&t->prepare);
	alias_clear(&t->after);
	free(t);
}

static void
txn_drop(struct engine *e, const char *id)
{
	for (size_t i = 0; i < e->ntxns; i++)
		if (strcmp(e->txns[i]->id, id) == 0) {
			txn_free(e->txns[i]);
			e->txns[i] = e->txns[--e->ntxns];
			return;
		}
}

size_t
commit_creates_in_flight(const struct engine *e, const char *owner)
{
	size_t n = 0;

	for (size_t i = 0; i < e->ntxns; i++) {
		const struct txn *t = e->txns[i];

		/* Not yet in the map here, and not aborted. */
		if (strcmp(msg_gets(&t->prepare, "verb"), "new") == 0 &&
		    strcmp(t->after.owner, owner) == 0 &&
		    (decision(t) == 0 || (decision(t) > 0 && !t->applied)))
			n++;
	}
	return n;
}

/* ---- the transitions ---- */

/* may_step - is from -> to in the table at the top of this file? */
static int
may_step(enum txn_state from, enum txn_state to, int coordinator)
{
	switch (to) {
	case TXN_LOST:
	case TXN_DECIDING:
		return from == TXN_VOTING;
	case TXN_COMMITTED:
		return from == (coordinator ? TXN_DECIDING : TXN_FINISHING);
	case TXN_ABORTED:
		return coordinator ? from == TXN_VOTING || from == TXN_LOST ||
			from == TXN_DECIDING : from == TXN_FINISHING;
	case TXN_FINISHING:
		return from == TXN_PREPARED;
	case TXN_PREPARED:
		return from == TXN_FINISHING;
	case TXN_GONE:
		return from == TXN_COMMITTED || from == TXN_ABORTED;
	default:
		return 0;
	}
}

/* step_locked - a transition that writes no record (see the table; a
 * participant's GONE drops it from the table); e->lock held */
static void
step_locked(struct engine *e, struct txn *t, enum txn_state to)
{
	int coordinator = is_self(e, t->coord);

	if (!may_step(t->state, to, coordinator) ||
	    to == TXN_COMMITTED || to == TXN_ABORTED || (to == TXN_GONE && coordinator))
		log_panic(t->id, "transaction %s: no transition %s -> %s without a "
			  "record", t->id, state_names[t->state], state_names[to]);
	if (to == TXN_GONE)
		txn_drop(e, t->id);
	else
		t->state = to;
}

/* txn_begin - journal a prepare record and enter the transaction in the
 * table as VOTING (coordinator) or PREPARED (participant) */
static int
txn_begin(struct engine *e, const struct msg *rec, const char *coord,
	  const struct alias *after, enum txn_state state, char **err_r)
{
	int rc;

	pthread_rwlock_rdlock(&e->jlock);
	rc = journal_append(e->journal, rec, err_r);
	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		if (txn_find(e, msg_gets(rec, "txn")) == NULL)
			txn_add(e, msg_gets(rec, "txn"), coord, rec, after, state);
		pthread_mutex_unlock(&e->lock);
	}
	pthread_rwlock_unlock(&e->jlock);
	return rc;
}

/*
 * txn_step - move transaction id to state to, journaling first the record
 * the transition needs: commit, abort, or (coordinator, to GONE) done.
 * Takes the locks itself.  0, or -1 when the commit record could not be
 * written (the state is then unchanged).  ABORTED and GONE always happen:
 * a prepare without a commit record is aborted anyway, and a lost "done"
 * only means the decision is delivered once more.
 */
static int
txn_step(struct engine *e, const char *id, enum txn_state to, char **err_r)
{
	struct msg rec = { 0 };
	struct txn *t;
	int coordinator, record = 1, rc = 0;
	char *err = NULL;

	pthread_rwlock_rdlock(&e->jlock);
	pthread_mutex_lock(&e->lock);
	t = txn_get(e, id);
	coordinator = is_self(e, t->coord);
	if (!may_step(t->state, to, coordinator))
		log_panic(id, "transaction %s: no transition %s -> %s", id,
			  state_names[t->state], state_names[to]);
	pthread_mutex_unlock(&e->lock);

	if (to == TXN_COMMITTED)
		journal_marker(&rec, JOURNAL_COMMIT, id);
	else if (to == TXN_ABORTED)
		journal_marker(&rec, JOURNAL_ABORT, id);
	else if (to == TXN_GONE && coordinator)
		journal_marker(&rec, JOURNAL_DONE, id);
	else
		record = 0;
	if (record && (rc = journal_append(e->journal, &rec, &err)) < 0) {
		if (to != TXN_COMMITTED) {
			/* Without a commit record the change is not committed:
			 * an abort holds without its record. */
			log_err(id, "journal: %s", err);
			rc = 0;
		} else
			set_error(err_r, "%s", err);
	}
	if (rc == 0) {
		/* Under the same journal lock as the record: compaction never
		 * sees the one without the other. */
		pthread_mutex_lock(&e->lock);
		if (to == TXN_GONE)
			txn_drop(e, id);
		else
			txn_get(e, id)->state = to;
		pthread_mutex_unlock(&e->lock);
	}
	pthread_rwlock_unlock(&e->jlock);
	free(err);
	msg_clear(&rec);
	return rc;
}

/* note_confirmed - journal that the confirmation of id was queued; lost,
 * it only means one more confirmation after a crash */
static void
note_confirmed(struct engine *e, const char *id)
{
	struct msg rec = { 0 };
	char *err = NULL;

	journal_marker(&rec, JOURNAL_CONFIRMED, id);
	pthread_rwlock_rdlock(&e->jlock);
	if (journal_append(e->journal, &rec, &err) < 0) {
		log_warnx(id, "journal: %s", err);
		free(err);
	}
	pthread_rwlock_unlock(&e->jlock);
	msg_clear(&rec);
}

void
commit_counts(const struct engine *e, size_t *in_flight, size_t *in_doubt,
	      size_t *undelivered)
{
	*in_flight = e->nbusy;
	*in_doubt = *undelivered = 0;
	for (size_t i = 0; i < e->ntxns; i++) {
		if (!is_self(e, e->txns[i]->coord))
			(*in_doubt)++;
		else if (decision(e->txns[i]) != 0)
			(*undelivered)++;
	}
}

size_t
commit_describe(const struct engine *e, struct msg **items_r)
{
	static const char *const phases[] = {
		[TXN_VOTING] = "collecting votes",
		[TXN_LOST] = "collecting votes",
		[TXN_DECIDING] = "collecting votes",
		[TXN_COMMITTED] = "committed, telling peers",
		[TXN_ABORTED] = "aborted, telling peers",
	};
	long long now = now_mono_ms();
	struct msg *items = xcalloc(e->ntxns + 1, sizeof(*items));

	for (size_t i = 0; i < e->ntxns; i++) {
		const struct txn *t = e->txns[i];

		msg_set(&items[i], "item", "txn");
		msg_set(&items[i], "txn", t->id);
		msg_set(&items[i], "coordinator", t->coord);
		msg_set(&items[i], "address", t->after.address);
		msg_set(&items[i], "state", alias_state_name(t->after.state));
		msg_set(&items[i], "verb", msg_gets(&t->prepare, "verb"));
		msg_set(&items[i], "phase", is_self(e, t->coord) && phases[t->state] ?
			phases[t->state] : "in doubt: prepared, waiting for the coordinator");
		msg_setf(&items[i], "age_ms", "%lld", now - t->since);
	}
	*items_r = items;
	return e->ntxns;
}

void
commit_free(struct engine *e)
{
	for (size_t i = 0; i < e->nconfirms; i++) {
		free(e->confirms[i].txn);
		free(e->confirms[i].address);
		free(e->confirms[i].from);
	}
	free(e->confirms);
	e->confirms = NULL;
	e->nconfirms = 0;
	for (size_t i = 0; i < e->nbusy; i++)
		free(e->busy[i].address);
	free(e->busy);
	e->busy = NULL;
	e->nbusy = 0;
	for (size_t i = 0; i < e->ntxns; i++)
		txn_free(e->txns[i]);
	free(e->txns);
	e->txns = NULL;
	e->ntxns = 0;
}

/* ---- confirmations ---- */

static long long
confirm_delay(const struct engine *e, int attempts)
{
	long long d = e->confirm_retry_ms;

	for (int i = 1; i < attempts && d < CONFIRM_RETRY_MAX_MS; i++)
		d *= 2;
	return d < CONFIRM_RETRY_MAX_MS ? d : CONFIRM_RETRY_MAX_MS;
}

/* confirm_find - the kept confirmation of txn (caller holds e->lock) */
static struct confirm *
confirm_find(struct engine *e, const char *txn)
{
	for (size_t i = 0; i < e->nconfirms; i++)
		if (strcmp(e->confirms[i].txn, txn) == 0)
			return &e->confirms[i];
	return NULL;
}

/* confirm_drop - forget txn's kept confirmation, in memory and on disk */
static void
confirm_drop(struct engine *e, const char *txn)
{
	struct confirm *c;

	pthread_mutex_lock(&e->lock);
	if ((c = confirm_find(e, txn)) != NULL) {
		free(c->txn);
		free(c->address);
		free(c->from);
		*c = e->confirms[--e->nconfirms];
	}
	pthread_mutex_unlock(&e->lock);
	notify_forget(e->conf, txn);
}

/* confirm_failed - sendmail did not take txn's confirmation: keep it (a
 * file first, then the table) and say when it is tried again */
static void
confirm_failed(struct engine *e, const char *txn, const char *address,
	       const char *from, const char *why)
{
	struct confirm *c;
	char *err = NULL;
	long long delay;
	int attempts;

	if (notify_keep(e->conf, txn, address, from, &err) < 0) {
		log_err(txn, "confirmation to=<%s>: cannot keep it for a retry after a "
			"restart: %s", address, err);
		free(err);
	}
	pthread_mutex_lock(&e->lock);
	if ((c = confirm_find(e, txn)) == NULL) {
		e->confirms = xrealloc(e->confirms, (e->nconfirms + 1) * sizeof(*e->confirms));
		c = &e->confirms[e->nconfirms++];
		c->txn = xstrdup(txn);
		c->address = xstrdup(address);
		c->from = xstrdup(from);
		c->attempts = 0;
	}
	attempts = ++c->attempts;
	delay = confirm_delay(e, attempts);
	c->next = now_mono_ms() + delay;
	pthread_mutex_unlock(&e->lock);
	log_warnx(txn, "confirmation to=<%s> not taken by sendmail (attempt %d): %s; "
		  "kept, next attempt in %llds", address, attempts, why, delay / 1000);
}

void
commit_confirm(struct engine *e, const struct alias *a, const char *from,
	       const char *txn)
{
	char *err = NULL;
	int kept;

	if (notify_confirm(e->conf, a, from, txn, &err) < 0) {
		confirm_failed(e, txn, a->address, from, err);
		free(err);
		return;
	}
	pthread_mutex_lock(&e->lock);
	kept = confirm_find(e, txn) != NULL;
	pthread_mutex_unlock(&e->lock);
	log_info(txn, "confirmation queued to=<%s>%s", a->address,
		 kept ? " (retried)" : "");
	note_confirmed(e, txn);
	if (kept)
		confirm_drop(e, txn);
}

/* confirm_retry - every kept confirmation that is due, once more; one
 * whose alias is no longer active is dropped */
static void
confirm_retry(struct engine *e)
{
	struct strlist due = { 0 };
	long long now = now_mono_ms();

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->nconfirms; i++)
		if (e->confirms[i].next <= now) {
			strlist_add(&due, e->confirms[i].txn);
			strlist_add(&due, e->confirms[i].address);
			strlist_add(&due, e->confirms[i].from);
		}
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i + 2 < due.n && !commit_stopping(e); i += 3) {
		const char *txn = due.v[i], *address = due.v[i + 1], *from = due.v[i + 2];
		struct alias a = { 0 };
		const struct alias *found;

		pthread_mutex_lock(&e->lock);
		found = aliasmap_find(mapstate_map(e->ms), address);
		if (found != NULL && found->state == ALIAS_ACTIVE)
			alias_copy(&a, found);
		pthread_mutex_unlock(&e->lock);
		if (a.address == NULL) {
			log_notice(txn, "confirmation to=<%s> dropped: the alias is no "
				   "longer active", address);
			confirm_drop(e, txn);
			continue;
		}
		commit_confirm(e, &a, from, txn);
		alias_clear(&a);
	}
	strlist_clear(&due);
}

void
commit_confirm_recovered(struct engine *e)
{
	struct strlist kept = { 0 };
	char *err = NULL;

	/* The ones sendmail did not take before the restart: due at the
	 * first tick. */
	if (notify_kept(e->conf, &kept, &err) < 0) {
		log_err(NULL, "kept confirmations: %s", err);
		free(err);
	}
	for (size_t i = 0; i + 2 < kept.n; i += 3) {
		struct confirm *c;

		e->confirms = xrealloc(e->confirms, (e->nconfirms + 1) * sizeof(*e->confirms));
		c = &e->confirms[e->nconfirms++];
		c->txn = xstrdup(kept.v[i]);
		c->address = xstrdup(kept.v[i + 1]);
		c->from = xstrdup(kept.v[i + 2]);
		c->attempts = 1;
		c->next = 0;
		log_notice(c->txn, "confirmation to=<%s> kept from before the restart; "
			   "retried", c->address);
	}
	strlist_clear(&kept);
	for (size_t i = 0; i + 1 < e->unconfirmed.n; i += 2) {
		const struct alias *a = aliasmap_find(mapstate_map(e->ms),
						      e->unconfirmed.v[i + 1]);

		if (confirm_find(e, e->unconfirmed.v[i]) != NULL)
			continue;	/* kept: the first tick retries it */
		if (a != NULL && a->state == ALIAS_ACTIVE)
			commit_confirm(e, a, e->conf->request_addresses.v[0],
				       e->unconfirmed.v[i]);
	}
	strlist_clear(&e->unconfirmed);
}

void
commit_reply_exists(struct msg *resp, const char *address, const struct alias *old)
{
	if (strcmp(old->address, address) != 0)
		msg_set_status(resp, "perm", "Alias %s already exists: its name is taken by %s, "
			       "and a name here holds in every domain", address, old->address);
	else if (old->state == ALIAS_DELETED)
		msg_set_status(resp, "perm", "Alias %s was deleted and stays reserved to its "
			       "former owner", address);
	else
		msg_set_status(resp, "perm", "Alias %s already exists", address);
}

void
commit_reply_extension(struct msg *resp, const char *address, const struct alias *base)
{
	msg_set_status(resp, "perm", "Address %s is already in use: Postfix delivers it "
		       "to the alias %s as an address extension", address, base->address);
}

void
commit_reply_misconfigured(struct msg *resp, const char *node)
{
	msg_set_status(resp, "temp", "Alias requests cannot be handled now: the mail "
		       "server %s is misconfigured (it cannot ask its address maps "
		       "whether a name is taken); please tell the postmaster", node);
	msg_set(resp, CTL_KEY_DSN, "4.3.5");
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
	if (mapstate_dirty(e->ms)) {
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
		if (decision(t) != 0)
			journal_marker(&recs[n++], decision(t) > 0 ? JOURNAL_COMMIT :
				       JOURNAL_ABORT, t->id);
	}
	pthread_mutex_unlock(&e->lock);
	rc = journal_rewrite(e->journal, recs, n, err_r);
	pthread_rwlock_unlock(&e->jlock);
	journal_free_records(recs, n);
	return rc;
}

/* ---- the map state ---- */

int
commit_refresh(struct engine *e)
{
	int rc;

	/* Only tried: a writer holding the map file lock may be waiting
	 * for e->lock, and it refreshes itself before it writes. */
	if (pthread_mutex_trylock(&e->maplock) != 0)
		return mapstate_broken(e->ms) ? -1 : 0;
	rc = mapstate_refresh(e->ms);
	pthread_mutex_unlock(&e->maplock);
	return rc;
}

/*
 * apply_change - put a committed change in place: in memory under both
 * locks, then the files and Postfix's maps under the map file lock only,
 * so that nothing waits for e->lock while a Postfix tool runs, an fsync
 * or a map lock takes its time.  If the files cannot be written, the
 * change is noted for commit_tick (confirm: queue the confirmation of a
 * new alias then).  0, or -1 (logged).
 */
static int
apply_change(struct engine *e, const struct alias *after, const char *id,
	     const char *coord, int confirm)
{
	struct mapstate_staged st;
	struct txn *t;
	char *err = NULL;
	int rc;

	pthread_mutex_lock(&e->maplock);
	pthread_mutex_lock(&e->lock);
	mapstate_stage(e->ms, after, &st);
	if ((t = txn_find(e, id)) != NULL)
		t->applied = 1;
	pthread_mutex_unlock(&e->lock);
	rc = mapstate_write(e->ms, after, &st, id, coord, &err);
	if (rc < 0) {
		pthread_mutex_lock(&e->lock);
		strlist_add(&e->unapplied, id);
		strlist_add(&e->unapplied, after->address);
		strlist_add(&e->unapplied, confirm ? "confirm" : "");
		pthread_mutex_unlock(&e->lock);
		log_err(id, "commit recorded, map files not written: %s; the change "
			"stands and they are written again in the background", err);
	}
	pthread_mutex_unlock(&e->maplock);
	mapstate_staged_clear(&st);
	free(err);
	return rc;
}

/* retry_unapplied - write the map files in full if a change or a hand
 * edit left them behind the map state (commit_tick) */
static void
retry_unapplied(struct engine *e)
{
	struct strlist done = { 0 };
	char *err = NULL;
	int rc, failing;

	pthread_mutex_lock(&e->lock);
	rc = e->unapplied.n == 0 && !mapstate_dirty(e->ms);
	pthread_mutex_unlock(&e->lock);
	if (rc)
		return;
	pthread_mutex_lock(&e->maplock);
	/* A file fixed after a hand edit is taken up first, with the
	 * committed changes that waited for it. */
	pthread_mutex_lock(&e->lock);
	mapstate_refresh(e->ms);
	pthread_mutex_unlock(&e->lock);
	rc = mapstate_save_dirty(e->ms, &err);
	pthread_mutex_lock(&e->lock);
	failing = e->retry_failing;
	e->retry_failing = rc < 0;
	if (rc == 0) {
		done = e->unapplied;
		memset(&e->unapplied, 0, sizeof(e->unapplied));
	}
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_unlock(&e->maplock);
	if (rc < 0 && !failing)
		log_err(NULL, "map: the files are still not written: %s; retrying", err);
	for (size_t i = 0; i + 2 < done.n; i += 3) {
		struct alias a = { 0 };
		const struct alias *cur;

		log_info(done.v[i], "applied on retry: address=%s (map files written)",
			 done.v[i + 1]);
		if (strcmp(done.v[i + 2], "confirm") != 0)
			continue;
		pthread_mutex_lock(&e->lock);
		if ((cur = aliasmap_find(mapstate_map(e->ms), done.v[i + 1])) != NULL &&
		    cur->state == ALIAS_ACTIVE)
			alias_copy(&a, cur);
		pthread_mutex_unlock(&e->lock);
		if (a.address != NULL)
			commit_confirm(e, &a, e->conf->request_addresses.v[0], done.v[i]);
		alias_clear(&a);
	}
	strlist_clear(&done);
	free(err);
}

/* ---- coordinator ---- */

/*
 * wait_for_loser - peer i answered that the address is held there by a
 * change of a higher node (holder_coord): a third server's, which reached
 * it first.  Undecided, that change cannot commit while ours is voting (we
 * refuse every higher node's prepare meanwhile, and it needs our yes), so
 * it is aborted; decided, its decision is on its way.  Either way the lock
 * goes soon: ask peer i again, until it answers
 * otherwise, our change is lost to a lower node, or the vote's time is
 * up.  Asking again is safe: nothing was recorded for the refused prepare.
 * So among any number of servers asking at once, the lowest one wins.
 */
static void
wait_for_loser(struct engine *e, struct change *c, size_t i, const struct msg *req,
	       struct msg *resp, long long until)
{
	int pause = 20, tries = 0;

	for (;;) {
		const char *holder = msg_gets(resp, "holder_coord");
		char *err = NULL;
		int voting, rc;

		if (strcmp(msg_gets(resp, "status"), "temp") != 0 || holder[0] == '\0' ||
		    strcmp(e->conf->node_name, holder) >= 0)
			return;
		pthread_mutex_lock(&e->lock);
		voting = txn_get(e, c->txn)->state == TXN_VOTING;
		pthread_mutex_unlock(&e->lock);
		if (!voting || now_mono_ms() + pause >= until || commit_stopping(e))
			return;
		if (tries++ == 0)
			log_info(c->txn, "vote peer=%s: held by a change of %s, which gives way; "
				 "asking again", peers_name(e->peers, i), holder);
		usleep((useconds_t)pause * 1000);
		if (pause < 200)
			pause *= 2;
		msg_clear(resp);
		rc = peers_call(e->peers, i, req, resp, NULL, NULL,
				(int)(until - now_mono_ms()), &err);
		free(err);
		if (rc < 0) {
			/* Unreachable now: the answer we had stands. */
			msg_clear(resp);
			msg_set(resp, "status", "temp");
			msg_set(resp, "text", "unreachable while asking again");
			return;
		}
	}
}

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
	long long until;

	if (wait < MIN_VOTE_WAIT_MS)
		wait = MIN_VOTE_WAIT_MS;
	for (size_t i = 0; i < prepare->n; i++)
		msg_set(&req, prepare->v[i].key, prepare->v[i].value);
	msg_set(&req, "op", "prepare");
	msg_set(&req, "sender", e->conf->node_name);
	until = now_mono_ms() + wait;
	peers_call_all(e->peers, &req, resps, rcs, errs, (int)wait);
	for (size_t i = 0; i < n; i++)
		if (rcs[i] == 0)
			wait_for_loser(e, c, i, &req, &resps[i], until);
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
			if (strcmp(msg_gets(&resps[i], CTL_KEY_DSN), "4.3.5") == 0)
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
	int votes = 0, lost, rc;

	msg_set(&rec, "rec", journal_kind_name(JOURNAL_PREPARE));
	msg_set(&rec, "txn", c->txn);
	msg_set(&rec, "coord", e->conf->node_name);
	msg_set(&rec, "id", c->id);
	msg_set(&rec, "verb", c->verb);
	msg_set(&rec, "before_state", c->before.address ?
		alias_state_name(c->before.state) : "none");
	alias_to_msg(&c->after, &rec);
	if (c->quota > 0)
		msg_setf(&rec, "quota", "%ld", c->quota);
	rc = txn_begin(e, &rec, e->conf->node_name, &c->after, TXN_VOTING, err_r);
	if (rc < 0) {
		local_check(e, c, NULL);
		msg_clear(&rec);
		return -1;
	}
	log_info(c->txn, "prepare id=%s verb=%s address=%s state=%s origin=%s",
		 c->id, c->verb, c->after.address, alias_state_name(c->after.state),
		 c->origin);
	crash_point("coord-after-prepare");

	if (c->quota > 0) {
		/* The check in do_new once more, now that this create is in
		 * the table: two at once on this node each see the other. */
		pthread_mutex_lock(&e->lock);
		if (aliasmap_count_owner(mapstate_map(e->ms), c->after.owner) +
		    commit_creates_in_flight(e, c->after.owner) > (size_t)c->quota) {
			set_error(err_r, "another new alias of %s is in progress", c->after.owner);
			votes = -1;
		}
		pthread_mutex_unlock(&e->lock);
	}
	if (e->peers != NULL && votes == 0)
		votes = collect_votes(e, c, &rec, err_r);
	/* This node's own "no" counts as a vote like any other. */
	if ((rc = local_check(e, c, err_r)) > 0 || (rc < 0 && votes == 0))
		votes = rc;
	msg_clear(&rec);
	crash_point("coord-after-votes");

	if (votes == 0 && c->deadline > 0 && now_mono_ms() > c->deadline) {
		/* The requester answers 4xx about now: the change must not
		 * happen behind its back. */
		set_error(err_r, "not decided before the requester's deadline");
		votes = -1;
	}
	pthread_mutex_lock(&e->lock);
	lost = txn_get(e, c->txn)->state == TXN_LOST;
	if (votes == 0 && !lost)
		step_locked(e, txn_get(e, c->txn), TXN_DECIDING);
	pthread_mutex_unlock(&e->lock);
	if (votes == 0 && lost) {
		set_error(err_r, "another server took %s at the same time", c->after.address);
		votes = -1;
	}
	if (votes != 0 || txn_step(e, c->txn, TXN_COMMITTED, err_r) < 0) {
		txn_step(e, c->txn, TXN_ABORTED, NULL);
		log_notice(c->txn, "abort address=%s: %s", c->after.address,
			   votes > 0 ? c->refusal : (err_r && *err_r ? *err_r : "error"));
		if (e->peers == NULL)
			txn_step(e, c->txn, TXN_GONE, NULL);
		else
			commit_wake(e);	/* tell the peers that voted yes */
		return votes > 0 ? 1 : -1;
	}
	crash_point("coord-after-commit-record");

	/* Decided: from here on the answer is what was decided.  The map
	 * files are best effort now; the journal has the change and
	 * commit_tick writes them if this fails. */
	rc = apply_change(e, &c->after, c->txn, e->conf->node_name,
			  strcmp(c->verb, "new") == 0);
	c->unapplied = rc < 0;
	if (e->peers == NULL)
		txn_step(e, c->txn, TXN_GONE, NULL);
	else
		commit_wake(e);		/* deliver the decision now */
	crash_point("coord-after-apply");
	log_info(c->txn, "commit address=%s state=%s target=%s owner=%s",
		 c->after.address, alias_state_name(c->after.state),
		 c->after.target, c->after.owner);
	return 0;
}

/* ---- participant ---- */

/*
 * finish - apply the decision on a transaction this node voted yes on.
 * 0: the decision is durable here (or the transaction is not in doubt
 * here); 1: another thread is recording it right now; -1: it could not
 * be recorded.  Only 0 may be acknowledged to the coordinator, which
 * forgets the transaction once every peer has: until the record is
 * fsync'd, a crash or a failed write here leaves the prepare alone, and
 * asked about it then, the coordinator could only answer "abort".
 */
static int
finish(struct engine *e, const char *id, int decision, const char *how)
{
	struct alias after = { 0 };
	char *err = NULL, verb[16] = "", coord[256] = "";
	struct txn *t;
	int confirm;

	pthread_mutex_lock(&e->lock);
	t = txn_find(e, id);
	if (t != NULL && !is_self(e, t->coord) && t->state == TXN_FINISHING) {
		pthread_mutex_unlock(&e->lock);
		return 1;	/* being recorded by another thread, not yet durable */
	}
	if (t == NULL || is_self(e, t->coord) || t->state != TXN_PREPARED) {
		pthread_mutex_unlock(&e->lock);
		return 0;	/* already recorded (or never prepared here) */
	}
	step_locked(e, t, TXN_FINISHING);
	alias_copy(&after, &t->after);
	snprintf(verb, sizeof(verb), "%s", msg_gets(&t->prepare, "verb"));
	snprintf(coord, sizeof(coord), "%s", t->coord);
	pthread_mutex_unlock(&e->lock);

	if (txn_step(e, id, decision > 0 ? TXN_COMMITTED : TXN_ABORTED, &err) < 0) {
		log_err(id, "journal: %s", err);
		pthread_mutex_lock(&e->lock);
		step_locked(e, txn_get(e, id), TXN_PREPARED);
		pthread_mutex_unlock(&e->lock);
		free(err);
		alias_clear(&after);
		return -1;
	}
	crash_point("part-after-decision");
	confirm = decision > 0 && after.state == ALIAS_ACTIVE && strcmp(verb, "new") == 0;
	if (decision > 0) {
		if (apply_change(e, &after, id, coord, confirm) < 0)
			confirm = 0;	/* once the files are written */
		crash_point("part-after-apply");
	} else {
		pthread_mutex_lock(&e->maplock);
		if (mapstate_set_pending(e->ms, after.address, 0, &err) < 0)
			log_err(id, "access map: %s", err);
		pthread_mutex_unlock(&e->maplock);
	}
	log_info(id, "%s address=%s state=%s (%s)", decision > 0 ? "commit" : "abort",
		 after.address, alias_state_name(after.state), how);
	pthread_mutex_lock(&e->lock);
	commit_busy_release(e, after.address, id);
	step_locked(e, txn_get(e, id), TXN_GONE);
	pthread_mutex_unlock(&e->lock);
	if (confirm)
		commit_confirm(e, &after, e->conf->request_addresses.v[0], id);
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
	char *err = NULL, *where = NULL, *delims = NULL;
	struct txn *holder_txn;
	struct postfix_check *check = NULL;
	const char *holder;
	long long quota;
	int rc;

	if (strlen(id) != TXN_ID_LEN || strcmp(msg_gets(req, "coord"), peer) != 0 ||
	    alias_from_msg(req, &after, &err) < 0) {
		msg_set_status(resp, "perm", "malformed prepare from %s", peer);
		log_warnx(id[0] ? id : NULL, "prepare from %s refused: %s", peer,
			  err ? err : "bad fields");
		free(err);
		return;
	}
	/* Postfix delivers name-ext@ to name@ (before e->lock: it may run
	 * postconf). */
	if (strcmp(verb, "new") == 0 && postfix_recipient_delimiter(conf, &delims, &err) < 0) {
		log_warnx(id, "recipient_delimiter: %s", err);
		commit_reply_misconfigured(resp, node);
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	if (commit_refresh(e) < 0) {
		log_warnx(id, "prepare from %s refused address=%s: %s", peer, after.address,
			  mapstate_problem(e->ms));
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
	/* Busy first: a change in flight here (its decision not yet known)
	 * may be about to change what the map says, so the map is compared
	 * only for an address nobody holds. */
	holder = commit_busy_holder(e, after.address, delims);
	holder_txn = NULL;
	if (holder != NULL) {
		holder_txn = txn_find(e, holder);
		/* Both of us prepared the address: the lower node_name wins. */
		if (holder_txn == NULL || !is_self(e, holder_txn->coord) ||
		    holder_txn->state != TXN_VOTING || strcmp(peer, node) >= 0) {
			pthread_mutex_unlock(&e->lock);
			msg_set_status(resp, "temp", "A change to %s is in progress on %s; try again "
			     "in a minute", after.address, node);
			/* Whose change: a lower coordinator waits for it to
			 * give way (wait_for_loser). */
			msg_set(resp, "holder_coord", holder_txn != NULL ? holder_txn->coord : node);
			goto out;
		}
	}
	old = strcmp(verb, "new") == 0 ? mapstate_key_holder(e->ms, after.address) :
		aliasmap_find(mapstate_map(e->ms), after.address);
	if (strcmp(verb, "new") == 0) {
		if (old != NULL && !(old->state == ALIAS_DELETED &&
				     strcmp(old->owner, after.owner) == 0 &&
				     strcmp(old->address, after.address) == 0)) {
			pthread_mutex_unlock(&e->lock);
			commit_reply_exists(resp, after.address, old);
			goto out;
		}
		old = mapstate_extension_holder(e->ms, after.address, delims);
		if (old != NULL && strcmp(old->owner, after.owner) != 0) {
			pthread_mutex_unlock(&e->lock);
			commit_reply_extension(resp, after.address, old);
			goto out;
		}
		/* The owner's quota, as the coordinator applies it, counting
		 * the creates still in flight here (prepared on either side):
		 * two servers creating at once must not both pass it. */
		if (msg_get_ll(req, "quota", &quota) == 0 && quota > 0) {
			size_t have = aliasmap_count_owner(mapstate_map(e->ms), after.owner);
			size_t flying = commit_creates_in_flight(e, after.owner);

			if (have >= (unsigned long long)quota) {
				pthread_mutex_unlock(&e->lock);
				msg_set_status(resp, "perm", "Login %s already has %lld aliases, the "
					       "most allowed", after.owner, quota);
				goto out;
			}
			if (have + flying >= (unsigned long long)quota) {
				pthread_mutex_unlock(&e->lock);
				msg_set_status(resp, "temp", "Another new alias of login %s is in "
					       "progress on %s; try again in a minute", after.owner, node);
				goto out;
			}
		}
	} else if (strcmp(verb, "expiry") == 0 && old != NULL &&
		   strcmp(old->owner, after.owner) == 0 &&
		   (old->state != ALIAS_ACTIVE || old->expires != after.expires)) {
		/* Expired here already (two servers' sweeps met), or its owner
		 * changed it meanwhile: one outcome, no divergence. */
		pthread_mutex_unlock(&e->lock);
		msg_set_status(resp, "perm", "Alias %s is no longer due to expire on %s",
			       after.address, node);
		goto out;
	} else if (old == NULL || strcmp(old->owner, after.owner) != 0 ||
		   strcmp(alias_state_name(old->state), msg_gets(req, "before_state")) != 0) {
		pthread_mutex_unlock(&e->lock);
		log_warnx(id, "prepare from %s: %s differs here; run milter-aliasctl verify",
			  peer, after.address);
		msg_set_status(resp, "perm", "Alias %s is not the same on %s; the postmaster has "
		     "been told", after.address, node);
		goto out;
	}
	if (holder_txn != NULL) {
		step_locked(e, holder_txn, TXN_LOST);
		log_info(holder, "conflict on %s with %s (txn %s): %s wins",
			 after.address, peer, id, peer);
	}
	busy_add(e, after.address, id);
	pthread_mutex_unlock(&e->lock);

	/* Our own Postfix must not deliver this address already either; the
	 * check runs while the access map is updated. */
	if (strcmp(verb, "new") == 0)
		check = postfix_resolves_start(conf, after.address);
	/* Until the decision arrives, mail to the address is deferred here,
	 * never refused for good: the coordinator may answer 250 as soon as
	 * this vote reaches it. */
	pthread_mutex_lock(&e->maplock);
	rc = mapstate_set_pending(e->ms, after.address, 1, &err);
	pthread_mutex_unlock(&e->maplock);
	if (check != NULL) {
		char *cerr = NULL;
		int crc = postfix_resolves_finish(check, &where, &cerr);

		if (crc > 0 && rc == 0)
			msg_set_status(resp, "perm", "Address %s is already in use on %s (%s)",
				       after.address, node, where);
		else if (crc < 0 && rc == 0) {
			log_warnx(id, "resolve check address=%s failed: %s", after.address, cerr);
			commit_reply_misconfigured(resp, node);
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
	msg_set(&rec, "rec", journal_kind_name(JOURNAL_PREPARE));
	if (txn_begin(e, &rec, peer, &after, TXN_PREPARED, &err) < 0) {
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
	pthread_mutex_lock(&e->maplock);
	if (mapstate_set_pending(e->ms, after.address, 0, &err) < 0)
		log_err(id, "access map: %s", err);
	pthread_mutex_unlock(&e->maplock);
	pthread_mutex_lock(&e->lock);
	commit_busy_release(e, after.address, id);
	pthread_mutex_unlock(&e->lock);
out:
	msg_clear(&rec);
	alias_clear(&after);
	free(delims);
	free(where);
	free(err);
}

void
commit_peer_request(struct engine *e, const char *peer, const struct msg *req,
		    struct msg *resp)
{
	const char *op = msg_gets(req, "op"), *id = msg_gets(req, "txn");
	struct txn *t;
	int rc;

	if (strcmp(op, "prepare") == 0) {
		on_prepare(e, peer, req, resp);
	} else if (strcmp(op, "decide") == 0) {
		const char *d = msg_gets(req, "decision");

		if (strcmp(d, "commit") != 0 && strcmp(d, "abort") != 0) {
			msg_set_status(resp, "perm", "bad decision");
			return;
		}
		/* Only the coordinator decides its transaction: with three
		 * servers, any other pinned peer could make one diverge. */
		pthread_mutex_lock(&e->lock);
		t = txn_find(e, id);
		if (t != NULL && strcmp(t->coord, peer) != 0) {
			pthread_mutex_unlock(&e->lock);
			log_warnx(id, "decide from %s refused: %s coordinates it", peer, t->coord);
			msg_set_status(resp, "perm", "not the coordinator");
			return;
		}
		pthread_mutex_unlock(&e->lock);
		rc = finish(e, id, strcmp(d, "commit") == 0 ? 1 : -1, "decided by coordinator");
		if (rc < 0)
			msg_set_status(resp, "temp", "cannot record the decision now");
		else if (rc > 0)
			msg_set_status(resp, "temp", "the decision is being recorded");
		else
			msg_set_status(resp, "ok", "recorded");
	} else if (strcmp(op, "outcome") == 0) {
		const char *answer = "abort";	/* unknown: never committed */

		pthread_mutex_lock(&e->lock);
		t = txn_find(e, id);
		if (t != NULL && is_self(e, t->coord))
			answer = decision(t) > 0 ? "commit" : decision(t) < 0 ? "abort" : "pending";
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

		if (coordinated ? !is_self(e, t->coord) || decision(t) == 0 :
		    is_self(e, t->coord) || t->state != TXN_PREPARED ||
		    now - t->since < IN_DOUBT_GRACE_MS)
			continue;
		memcpy((*out)[n].id, t->id, sizeof(t->id));
		(*out)[n].decision = decision(t);
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
		txn_step(e, p->id, TXN_GONE, NULL);
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

void
commit_wake(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	pthread_cond_signal(&e->work);
	pthread_mutex_unlock(&e->lock);
}

void
commit_wait(struct engine *e, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->lock);
	if (!e->stopping)
		pthread_cond_timedwait(&e->work, &e->lock, &ts);
	pthread_mutex_unlock(&e->lock);
}

void
commit_stop(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	e->stopping = 1;
	pthread_cond_broadcast(&e->work);
	pthread_mutex_unlock(&e->lock);
}

int
commit_stopping(struct engine *e)
{
	int stop;

	pthread_mutex_lock(&e->lock);
	stop = e->stopping;
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
			if (!commit_stopping(e))
				deliver(e, &list[i]);
			free(list[i].coord);
		}
		free(list);
		n = snapshot(e, 0, &list);
		for (size_t i = 0; i < n; i++) {
			if (!commit_stopping(e))
				resolve(e, &list[i]);
			free(list[i].coord);
		}
		free(list);
	}
	retry_unapplied(e);
	if (!commit_stopping(e))
		confirm_retry(e);
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

		if (journal_kind_of(&recs[i]) != JOURNAL_PREPARE ||
		    strlist_contains(&seen, id, false))
			continue;
		strlist_add(&seen, id);
		for (size_t k = i + 1; k < n; k++) {
			if (strcmp(msg_gets(&recs[k], "txn"), id) != 0)
				continue;
			switch (journal_kind_of(&recs[k])) {
			case JOURNAL_COMMIT: decision = 1; break;
			case JOURNAL_ABORT: decision = -1; break;
			case JOURNAL_DONE: done = 1; break;
			case JOURNAL_CONFIRMED: confirmed = 1; break;
			default: break;
			}
		}
		if (alias_from_msg(&recs[i], &a, &err) < 0) {
			set_error(err_r, "journal: transaction %s is unreadable: %s", id, err);
			free(err);
			goto out;
		}
		if (is_self(e, coord) && decision == 0) {
			/* We never decided: nobody can have committed. */
			txn_add(e, id, coord, &recs[i], &a, TXN_VOTING);
			txn_step(e, id, TXN_ABORTED, NULL);
			log_notice(id, "recovery: aborted unfinished change address=%s", a.address);
			if (e->conf->npeers == 0)
				txn_step(e, id, TXN_GONE, NULL);
			else
				undelivered++;	/* the peers that voted yes learn it */
			aborted++;
		} else if (is_self(e, coord) && !done && e->conf->npeers > 0) {
			txn_add(e, id, coord, &recs[i], &a, decision > 0 ? TXN_COMMITTED :
				TXN_ABORTED);
			undelivered++;
		} else if (!is_self(e, coord) && decision == 0) {
			txn_add(e, id, coord, &recs[i], &a, TXN_PREPARED);
			busy_add(e, a.address, id);
			mapstate_defer(e->ms, a.address);	/* deferred until decided */
			log_notice(id, "recovery: in doubt address=%s; asking %s", a.address, coord);
			in_doubt++;
		}
		if (decision > 0) {
			/* Idempotent: the final state, put once more. */
			mapstate_put(e->ms, &a);
			replayed++;
			/* Each server confirms a new alias once (a crash may make
			 * that twice, never zero times). */
			if (!confirmed && strcmp(msg_gets(&recs[i], "verb"), "new") == 0) {
				strlist_add(&e->unconfirmed, id);
				strlist_add(&e->unconfirmed, a.address);
			}
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
