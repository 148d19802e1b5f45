/* sync.h - keeping the servers in step: the background thread and the
 * peer link's entry point.
 *
 * The background thread delivers decisions and resolves doubts (commit.h,
 * commit_tick), disables aliases whose lifetime ran out (sync_expire_due)
 * and every 15 seconds, when neither side has a change in
 * flight, compares map digests with each peer (anti-entropy): a
 * difference is logged and shown by status, never overwritten.  The peer
 * link's requests arrive here: the digest exchange and the map dump are
 * answered here, the commit protocol's requests go to commit.h.
 *
 * Layer: above commit and mapstate, below the control operations
 * (engine.c), which read what it found.
 */
#ifndef MA_SYNC_H
#define MA_SYNC_H

#include <stddef.h>

#include "msg.h"

struct engine;
struct peers;

/* Serve a request from the authenticated peer named peer (a
 * peers_handler_fn; arg is the engine). */
void sync_peer_handler(void *arg, const char *peer, const struct msg *req,
		       struct msg *resp, void (*emit)(void *, const struct msg *),
		       void *emit_arg);
/* Start the background thread, with peers (NULL when standalone). */
void sync_start(struct engine *e, struct peers *p);
/* Stop it (changes in flight give way; the journal finishes them after a
 * restart); call before peers_close. */
void sync_stop(struct engine *e);
void sync_free(struct engine *e);

/* Send aliases (all, or one owner's, or one address's) as items
 * (item=alias), a batch at a time: a copy of a whole large map would
 * double the daemon's memory, and the lock must not wait for a slow
 * reader.  Takes e->lock itself.  Returns how many. */
size_t sync_emit_aliases(struct engine *e, void (*emit)(void *, const struct msg *),
			 void *arg, const char *owner, const char *address);

/* What the last comparison with peer i found, as status shows it (caller
 * holds the engine lock): "yes"/"no"/"unknown", "ok"/"failing"/"unknown". */
void sync_peer_view(struct engine *e, size_t i, const char **digest_equal,
		    const char **resolve_check);
/* The expiry sweep (the background thread runs it every
 * expiry_check_interval seconds): every active alias whose lifetime has
 * run out is disabled through the commit path, as "expiry", a transaction
 * of its own.  Another server expiring the same alias at the same moment
 * is the same outcome, not a failure.  While a peer is not connected
 * nothing is tried (a notice once: *waiting remembers it).  Takes the
 * locks itself.  Returns how many due aliases were left for a later
 * sweep. */
size_t sync_expire_due(struct engine *e, int *waiting);
/* What verify found for peer i counts at once (caller holds the lock). */
void sync_note_verified(struct engine *e, size_t i, int equal);

#endif
