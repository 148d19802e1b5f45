/* engine-private.h - the sync daemon's context, shared by its layers:
 * engine.c (control operations), sync.c (background sync) and commit.c
 * (the commit protocol); the map state is behind mapstate.h, and the
 * transactions and address locks are commit.c's own.  The unit tests of
 * the commit path (tests/unit/test_commit.c) include it to attach a fake
 * transport.  Nothing else does.
 *
 * Locking: e->lock guards everything in struct engine except the journal,
 * which has its own lock.  e->jlock orders journal appends (shared) against
 * compaction (exclusive), so a compaction never loses a record whose
 * transaction state it has not seen.  Never hold e->lock across a network
 * call, a Postfix tool or an fsync.  e->maplock is the map file lock of
 * mapstate.h: held to write the map files and run Postfix's tools; taken
 * before e->lock, never waited for while holding it (commit_refresh only
 * tries it).
 */
#ifndef MA_ENGINE_PRIVATE_H
#define MA_ENGINE_PRIVATE_H

#include <pthread.h>
#include <sys/stat.h>

#include "engine.h"
#include "journal.h"
#include "peers.h"
#include "commit.h"
#include "postfix.h"


struct txn;	/* commit.c's */
struct busy;	/* commit.c's */
struct confirm;	/* commit.c's */
struct rate;

struct engine {
	const struct conf *conf;
	pthread_mutex_t lock;
	pthread_mutex_t maplock;	/* the map file lock (mapstate.h) */
	pthread_rwlock_t jlock;
	struct mapstate *ms;	/* the map state (mapstate.h) */
	struct journal *journal;
	struct strlist unconfirmed;	/* start-up only: txn, address pairs */
	struct strlist unapplied;	/* committed, in memory, the files not
					 * yet written: txn, address, "confirm"
					 * or "" triples (commit_tick retries) */
	struct confirm *confirms;	/* confirmations sendmail did not take,
					 * retried by commit_tick */
	size_t nconfirms;
	long long confirm_retry_ms;	/* first retry delay (doubles); the unit
					 * tests set 0 */
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
	int bg_running;
	int retry_failing;	/* commit_tick's last write of the files failed */
	pthread_cond_t work;	/* commit_wake: background work to do */
	int stopping;		/* commit_stop: background loops give way */
};

/* A change under way on its coordinator. */
struct change {
	const char *id;		/* request id for the logs */
	const char *verb;
	const char *login;
	const char *origin;	/* "mail" or "admin" */
	long long deadline;	/* now_mono_ms() the requester stops waiting; 0 none */
	long quota;		/* new: the owner's most aliases, checked by every
				 * node at prepare; 0 none (admin, unlimited) */
	struct alias before;	/* zeroed (address NULL) when new */
	struct alias after;
	char txn[TXN_ID_LEN + 1];
	char *refusal;		/* a peer's "no" that is final (5xx), or NULL */
	int unapplied;		/* committed, the map files not yet written */
	struct postfix_check *check;	/* this node's resolve check, running
					 * during the vote; commit_change ends it */
	const char *misconfigured;	/* a node whose resolve check cannot
					 * work (static or the peer's name) */
};

#endif
