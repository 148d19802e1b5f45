/* commit.h - the commit protocol: a change becomes durable on every server
 * or on none (the state machine is described at the top of commit.c).
 *
 * Layer: below the control operations (engine.c) and the background sync
 * (sync.c), above the map state (mapstate.h), the journal and Postfix's
 * tools.  It owns the transaction table, the per-address locks and the
 * journal records; it never calls up.
 *
 * Locking: the engine lock (e->lock) guards the table and the locks; the
 * functions below say whether the caller holds it.  e->jlock orders
 * journal appends (shared) against compaction (exclusive).  Never hold
 * e->lock across a network call, a Postfix tool or an fsync.
 */
#ifndef MA_COMMIT_H
#define MA_COMMIT_H

#include <stddef.h>

#include "aliasmap.h"
#include "msg.h"

struct engine;
struct change;

#define TXN_ID_LEN 16

/* The commit path for a change checked locally (caller holds the address
 * busy under c->txn, not e->lock).  0 committed (c->unapplied: its map
 * files are written later, by commit_tick, which then also queues the
 * confirmation of a new alias); 1 refused for good (c->refusal says
 * why); -1 not committed, a temporary failure with a reason. */
int commit_change(struct engine *e, struct change *c, char **err_r);
/* Serve the peer link's protocol requests (prepare, decide, outcome). */
void commit_peer_request(struct engine *e, const char *peer,
			 const struct msg *req, struct msg *resp);
/* Rebuild the transaction table from the journal at start-up; puts
 * committed changes into the map state (in memory).  0 or -1. */
int commit_recover(struct engine *e, struct msg *recs, size_t n, char **err_r);
/* Queue the confirmation of a new alias through this server (from: the
 * envelope sender), and journal that it was queued.  One sendmail did not
 * take is kept (notify_keep: a file in state_dir, so a restart does not
 * lose it) and retried by commit_tick with a growing delay
 * (CONFIRM_RETRY_MS, doubling up to CONFIRM_RETRY_MAX_MS) until sendmail
 * takes it or the alias is no longer active.  Caller holds no lock. */
#define CONFIRM_RETRY_MS 30000
#define CONFIRM_RETRY_MAX_MS (30 * 60 * 1000)
void commit_confirm(struct engine *e, const struct alias *a, const char *from,
		    const char *txn);
/* Confirmations a crash kept from going out (found by commit_recover),
 * for aliases still active, and the ones kept because sendmail failed.
 * Start-up only. */
void commit_confirm_recovered(struct engine *e);
/* Background work: deliver decisions, resolve in-doubt transactions,
 * retry kept confirmations, compact the journal when it has grown. */
void commit_tick(struct engine *e);
/* Rewrite the journal with the live transactions only.  force: whatever
 * its size.  0 or -1 with a reason. */
int commit_compact(struct engine *e, int force, char **err_r);
/* Free the transaction table and the locks (engine_close). */
void commit_free(struct engine *e);
/* New random transaction id. */
void commit_new_id(char out[TXN_ID_LEN + 1]);

/* Waiting for background work: commit_wait returns when commit_wake was
 * called, after ms, or at once when stopping; commit_stop makes every
 * background loop give way (what is left is in the journal). */
void commit_wake(struct engine *e);
void commit_wait(struct engine *e, int ms);
void commit_stop(struct engine *e);
int commit_stopping(struct engine *e);

/* Notice a hand edit of the map file (mapstate_refresh), if the map file
 * lock is free; if a writer holds it, that writer refreshes.  Caller
 * holds e->lock.  0, or -1 while the map file is unreadable. */
int commit_refresh(struct engine *e);

/* Address locks (caller holds e->lock).  busy_take fails (-1) if anyone
 * holds address; busy_holder returns the holding transaction or NULL.
 * For a new alias, delims is recipient_delimiter: a change to the key it
 * extends, or to a key extending it, holds it too.  Otherwise NULL. */
int commit_busy_take(struct engine *e, const char *address, const char *delims,
		     const char *txn);
void commit_busy_release(struct engine *e, const char *address, const char *txn);
const char *commit_busy_holder(struct engine *e, const char *address, const char *delims);
/* New aliases of owner in flight here: prepared (by this node or a
 * peer), or committed and not yet in the map state; for the per-owner
 * quota (caller holds e->lock). */
size_t commit_creates_in_flight(const struct engine *e, const char *owner);
/* Changes in flight or not yet settled (caller holds e->lock). */
size_t commit_live_count(const struct engine *e);
/* For status (caller holds e->lock): addresses locked by a change in
 * flight; transactions prepared here for a peer and undecided (in
 * doubt); decisions not yet acknowledged by every peer. */
void commit_counts(const struct engine *e, size_t *in_flight, size_t *in_doubt,
		   size_t *undelivered);
/* For milter-aliasctl journal (caller holds e->lock): one item per
 * transaction (txn, coordinator, address, state, verb, phase, age_ms) in
 * a caller-owned array (free each with msg_clear, then the array). */
size_t commit_describe(const struct engine *e, struct msg **items_r);

/* The 5xx answer to "new address" when old is written under the same map
 * key (mapstate_key_holder): the alias exists, was deleted by another
 * owner, or (map_format aliases) has the same name in another domain. */
void commit_reply_exists(struct msg *resp, const char *address, const struct alias *old);

/* The 5xx answer to "new address" when Postfix would deliver address to
 * the alias base as an address extension (mapstate_extension_holder). */
void commit_reply_extension(struct msg *resp, const char *address, const struct alias *base);

/* The 4xx answer (dsn 4.3.5) for a request that cannot be checked
 * because node cannot ask its own address maps. */
void commit_reply_misconfigured(struct msg *resp, const char *node);

#endif
