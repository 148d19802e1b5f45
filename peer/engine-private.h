/* engine-private.h - state shared by engine.c (operations) and commit.c
 * (the commit protocol).  Nothing outside those two files includes it.
 *
 * Locking: e->lock guards everything in struct engine except the journal,
 * which has its own lock.  e->jlock orders journal appends (shared) against
 * compaction (exclusive), so a compaction never loses a record whose
 * transaction state it has not seen.  Never hold e->lock across a network
 * call, a Postfix tool or an fsync.
 */
#ifndef MA_ENGINE_PRIVATE_H
#define MA_ENGINE_PRIVATE_H

#include <pthread.h>
#include <sys/stat.h>

#include "engine.h"
#include "journal.h"
#include "peers.h"
#include "postfix.h"

#define TXN_ID_LEN 16

/* A transaction this node takes part in, from its prepare record until
 * it no longer matters: for the coordinator, until every peer has
 * acknowledged the decision; for a participant, until it has applied it. */
struct txn {
	char id[TXN_ID_LEN + 1];
	char *coord;		/* node_name of the deciding node */
	struct msg prepare;	/* the prepare record, as journaled */
	struct alias after;	/* the alias's state if committed */
	int decision;		/* 0 undecided, 1 commit, -1 abort */
	int in_flight;		/* coordinator: votes still being collected */
	int finishing;		/* participant: a decision is being applied */
	int doomed;		/* coordinator: a lower-named node won the name */
	unsigned long acked;	/* coordinator: peers that have the decision */
	long long since;	/* now_mono_ms() of the prepare */
};

/* An address with a change in flight, and the transaction holding it. */
struct busy {
	char *address;
	char txn[TXN_ID_LEN + 1];
};

struct rate;

struct engine {
	const struct conf *conf;
	pthread_mutex_t lock;
	pthread_rwlock_t jlock;
	struct aliasmap map;
	struct journal *journal;
	int map_dirty;		/* committed state not yet in the files */
	struct stat map_st;	/* the map file as this daemon last wrote it */
	unsigned char access_sum[32];	/* SHA-256 of the access source last written */
	int access_sum_set;
	unsigned char senders_sum[32];	/* the same for the sender-login map */
	int senders_sum_set;
	int map_broken;		/* someone else's edit made it unreadable */
	struct strlist pending;	/* addresses prepared here for a peer, undecided */
	struct strlist unconfirmed;	/* start-up only: txn, address pairs */
	struct busy *busy;
	size_t nbusy;
	struct txn **txns;
	size_t ntxns;
	struct rate *rates;
	size_t nrates;
	/* peer sync; NULL/0 when standalone */
	struct peers *peers;
	int *digest_equal;	/* per peer: 1 yes, 0 no (drift), -1 unknown */
	int *mismatches;	/* consecutive mismatches seen */
	int *peer_resolve;	/* per peer, its resolve check as it last said:
				 * 1 ok, -1 failing, 0 unknown */
	pthread_t bg;
	pthread_cond_t bg_wake;
	int bg_running;
	int bg_stop;
};

/* A change under way on its coordinator. */
struct change {
	const char *id;		/* request id for the logs */
	const char *verb;
	const char *login;
	const char *origin;	/* "mail" or "admin" */
	long long deadline;	/* now_mono_ms() the requester stops waiting; 0 none */
	struct alias before;	/* zeroed (address NULL) when new */
	struct alias after;
	char txn[TXN_ID_LEN + 1];
	char *refusal;		/* a peer's "no" that is final (5xx), or NULL */
	struct postfix_check *check;	/* this node's resolve check, running
					 * during the vote; commit_change ends it */
	const char *misconfigured;	/* a node whose resolve check cannot
					 * work (static or the peer's name) */
};

/* ---- commit.c ---- */

/* The commit path for a change checked locally (caller holds the address
 * busy under c->txn).  0 committed and applied; 1 refused for good by a
 * peer (c->refusal says why); -1 temporary failure with a reason. */
int commit_change(struct engine *e, struct change *c, char **err_r);
/* Serve the peer link's protocol requests (prepare, decide, outcome). */
void commit_peer_request(struct engine *e, const char *peer,
			 const struct msg *req, struct msg *resp);
/* Rebuild the transaction table from the journal at start-up; applies
 * committed changes to e->map.  0 or -1 with a reason. */
int commit_recover(struct engine *e, struct msg *recs, size_t n, char **err_r);
/* Journal that the confirmation of a transaction's new alias was queued. */
void commit_note_confirmed(struct engine *e, const char *id);
/* Background work: deliver decisions, resolve in-doubt transactions. */
void commit_tick(struct engine *e);
/* Rewrite the journal with the live transactions only.  force: whatever
 * its size.  0 or -1 with a reason. */
int commit_compact(struct engine *e, int force, char **err_r);
/* New random transaction id. */
void commit_new_id(char out[TXN_ID_LEN + 1]);

/* ---- engine.c ---- */

/* Put a committed alias into memory, the map file and Postfix's map, and
 * note it in the history (txn, coordinator).  Caller holds e->lock.  0 or
 * -1 (the state then stays dirty and is written in full by the next
 * change or at start-up). */
int engine_apply(struct engine *e, const struct alias *after, const char *txn,
		 const char *coord, char **err_r);
/* Notice a map file changed by someone else: adopt it as this node's
 * state (logged; verify shows how it differs from the peers), or, if it
 * cannot be parsed, set map_broken.  Caller holds e->lock.  Returns 0, or
 * -1 while the file is unreadable (changes must be refused). */
int engine_refresh(struct engine *e);
/* Mark address pending (deferred with 4xx at SMTP time: its change is
 * prepared here but not decided) or clear that, in the access map.
 * Caller holds e->lock.  0 or -1 with a reason. */
int engine_set_pending(struct engine *e, const char *address, int on, char **err_r);
/* Address locks.  busy_take fails (-1) if anyone holds address. */
int engine_busy_take(struct engine *e, const char *address, const char *txn);
void engine_busy_add(struct engine *e, const char *address, const char *txn);
void engine_busy_release(struct engine *e, const char *address, const char *txn);
/* The transaction holding address (borrowed), or NULL. */
const char *engine_busy_holder(struct engine *e, const char *address);
/* Send the confirmation for a new alias through this server. */
void engine_confirm(struct engine *e, const struct alias *a, const char *txn);
/* Wake the background thread now. */
void engine_wake(struct engine *e);
/* The 4xx answer (dsn 4.3.5) for a request that cannot be checked
 * because node cannot ask its own address maps. */
void engine_reply_misconfigured(struct msg *resp, const char *node);

#endif
