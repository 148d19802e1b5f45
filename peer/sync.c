/* sync.c - keeping the servers in step in the background; see sync.h. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"
#include "engine-private.h"
#include "log.h"
#include "mapstate.h"
#include "postfix.h"
#include "sync.h"

#define ANTI_ENTROPY_EVERY_MS 15000
#define BG_TICK_MS 1000
#define RECONNECT_EVERY_MS 2000
#define MAP_CHECK_EVERY_MS 5000

void
sync_peer_handler(void *arg, const char *peer, const struct msg *req,
		    struct msg *resp, peers_emit_fn emit, void *emit_arg)
{
	struct engine *e = arg;
	const char *op = msg_gets(req, "op");
	char digest[65];

	if (strcmp(op, "digest") == 0) {
		pthread_mutex_lock(&e->lock);
		commit_refresh(e);
		aliasmap_digest(mapstate_map(e->ms), e->conf->map_format, digest);
		msg_setf(resp, "live", "%zu", commit_live_count(e));
		msg_setf(resp, "aliases", "%zu", mapstate_map(e->ms)->n);
		pthread_mutex_unlock(&e->lock);
		msg_set(resp, "status", "ok");
		msg_set(resp, "digest", digest);
		/* so that the peer's status shows it too: a request there
		 * fails while this server cannot ask its maps */
		msg_set(resp, "resolve_check", postfix_check_state() < 0 ? "failing" : "ok");
	} else if (strcmp(op, "dump") == 0) {
		(void)sync_emit_aliases(e, emit, emit_arg, NULL, NULL);
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
			commit_refresh(e);
			aliasmap_digest(mapstate_map(e->ms), e->conf->map_format, digest);
			live = commit_live_count(e);
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

/* ---- expiry ---- */

/* Aliases collected under the lock at once, and batches in one sweep at
 * most (the rest wait for the next sweep). */
#define EXPIRY_BATCH 16
#define EXPIRY_MAX_BATCHES 256

/* expire_one - disable address through the commit path if its lifetime
 * has run out.  0 done or nothing to do (another server disabled it
 * first, or its owner changed it meanwhile: the same outcome, not an
 * error), -1 a temporary failure (tried again at the next sweep). */
static int
expire_one(struct engine *e, const char *address)
{
	struct change c = { .id = "expiry", .verb = "expiry", .origin = "expiry" };
	const struct alias *old;
	char *err = NULL, until[64];
	int rc;

	commit_new_id(c.txn);
	pthread_mutex_lock(&e->lock);
	old = aliasmap_find(mapstate_map(e->ms), address);
	if (old == NULL || old->state != ALIAS_ACTIVE || old->expires <= 0 ||
	    old->expires > now_wall() || commit_busy_take(e, address, NULL, c.txn) < 0) {
		/* Gone, changed, or a change in flight (perhaps another
		 * server's expiry): the next sweep looks again. */
		pthread_mutex_unlock(&e->lock);
		return 0;
	}
	alias_copy(&c.before, old);
	alias_copy(&c.after, old);
	pthread_mutex_unlock(&e->lock);

	c.login = c.before.owner;
	c.after.state = ALIAS_DISABLED;
	c.after.updated = now_wall();
	c.deadline = now_mono_ms() + e->conf->commit_timeout * 1000;
	utc_date(c.before.expires, until, sizeof(until));
	rc = commit_change(e, &c, &err);
	pthread_mutex_lock(&e->lock);
	commit_busy_release(e, address, c.txn);
	if (rc < 0) {
		/* Lost to another server's change of the same alias (its
		 * transaction holds the address here now, or has already
		 * changed it): that one decides, nothing failed. */
		old = aliasmap_find(mapstate_map(e->ms), address);
		if (commit_busy_holder(e, address, NULL) != NULL || old == NULL ||
		    old->state != ALIAS_ACTIVE || old->expires != c.before.expires)
			rc = 1;
	}
	pthread_mutex_unlock(&e->lock);
	if (rc == 0)
		log_info(c.txn, "expired address=%s owner=%s: its lifetime ended %s",
			 address, c.before.owner, until);
	else if (rc > 0) {
		log_info(c.txn, "expiry of %s left to another server: %s", address,
			 c.refusal ? c.refusal : err ? err : "a change in flight");
		rc = 0;
	} else
		log_notice(c.txn, "expiry of %s not committed, tried again later: %s",
			   address, err ? err : "error");
	alias_clear(&c.before);
	alias_clear(&c.after);
	free(c.refusal);
	free(err);
	return rc < 0 ? -1 : 0;
}

/* peers_down - the name of a peer not connected now, or NULL */
static const char *
peers_down(struct engine *e)
{
	for (size_t i = 0; e->peers != NULL && i < peers_count(e->peers); i++) {
		long long last;
		int connected;
		char *err = NULL;

		peers_state(e->peers, i, &connected, &last, &err);
		free(err);
		if (!connected)
			return peers_name(e->peers, i);
	}
	return NULL;
}

/* sync_expire_due (sync.h) - disable every active alias whose lifetime
 * has run out, each in an ordinary transaction, a batch at a time (the
 * lock is not held across a commit).  With a peer unreachable nothing can
 * commit: the sweep waits, and the aliases keep delivering everywhere,
 * never refused on one server and delivered on another. */
size_t
sync_expire_due(struct engine *e, int *waiting)
{
	size_t failed = 0;
	const char *down;

	/* Aliases in flight are skipped and stay due: a bounded number of
	 * batches keeps them from being looked at forever. */
	for (int batch = 0; batch < EXPIRY_MAX_BATCHES && !commit_stopping(e); batch++) {
		struct strlist due = { 0 };
		long long now = now_wall();

		pthread_mutex_lock(&e->lock);
		if (commit_refresh(e) < 0) {
			/* the map file needs the postmaster: nothing commits */
			pthread_mutex_unlock(&e->lock);
			return failed;
		}
		for (size_t i = 0; i < mapstate_map(e->ms)->n && due.n < EXPIRY_BATCH; i++) {
			const struct alias *a = &mapstate_map(e->ms)->v[i];

			if (a->owner[0] != '\0' && a->state == ALIAS_ACTIVE && a->expires > 0 &&
			    a->expires <= now)
				strlist_add(&due, a->address);
		}
		pthread_mutex_unlock(&e->lock);
		if (due.n > 0 && (down = peers_down(e)) != NULL) {
			if (!*waiting)
				log_notice(NULL, "expiry: aliases are due but peer %s is not "
					   "connected; they expire once it is", down);
			*waiting = 1;
			failed = due.n;
			strlist_clear(&due);
			return failed;
		}
		*waiting = 0;
		for (size_t i = 0; i < due.n && !commit_stopping(e); i++)
			if (expire_one(e, due.v[i]) < 0) {
				failed = due.n - i;	/* the rest would fail alike */
				break;
			}
		batch = failed > 0 || due.n < EXPIRY_BATCH ? EXPIRY_MAX_BATCHES : batch;
		strlist_clear(&due);
	}
	return failed;
}

static void *
bg_thread(void *arg)
{
	struct engine *e = arg;
	long long next_check = 0, next_map_check = 0, next_expiry = 0;
	int expiry_waiting = 0;

	while (!commit_stopping(e)) {
		commit_tick(e);
		if (now_mono_ms() >= next_map_check) {
			/* A hand edit is noticed, and a file fixed after one is
			 * taken up (with changes that waited for it), without a
			 * request: a stat() unless the file changed. */
			pthread_mutex_lock(&e->lock);
			commit_refresh(e);
			pthread_mutex_unlock(&e->lock);
			next_map_check = now_mono_ms() + MAP_CHECK_EVERY_MS;
		}
		if (e->peers != NULL && now_mono_ms() >= next_check)
			/* An unreachable peer is looked for again soon. */
			next_check = now_mono_ms() + (anti_entropy(e) ?
						      ANTI_ENTROPY_EVERY_MS : RECONNECT_EVERY_MS);
		if (now_mono_ms() >= next_expiry) {
			(void)sync_expire_due(e, &expiry_waiting);
			next_expiry = now_mono_ms() + e->conf->expiry_check_interval * 1000;
		}
		commit_wait(e, BG_TICK_MS);
	}
	return NULL;
}

size_t
sync_emit_aliases(struct engine *e, mapstate_emit_fn emit, void *arg, const char *owner,
	     const char *address)
{
	char *cursor = NULL;	/* the last address looked at */
	size_t n = 0;
	int more = 1;

	pthread_mutex_lock(&e->lock);
	commit_refresh(e);
	pthread_mutex_unlock(&e->lock);
	while (more) {
		struct aliasmap batch = { 0 };
		size_t i;

		pthread_mutex_lock(&e->lock);
		i = cursor ? aliasmap_index_after(mapstate_map(e->ms), cursor) : 0;
		for (size_t seen = 0; i < mapstate_map(e->ms)->n && seen < 1024; i++, seen++) {
			const struct alias *a = &mapstate_map(e->ms)->v[i];

			if ((owner == NULL || strcmp(a->owner, owner) == 0) &&
			    (address == NULL || strcmp(a->address, address) == 0))
				aliasmap_put(&batch, a);
		}
		more = i < mapstate_map(e->ms)->n;
		free(cursor);
		cursor = i > 0 && more ? xstrdup(mapstate_map(e->ms)->v[i - 1].address) : NULL;
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

void
sync_start(struct engine *e, struct peers *p)
{
	size_t n = p ? peers_count(p) : 0;

	e->peers = p;
	e->digest_equal = xcalloc(n + 1, sizeof(int));
	e->mismatches = xcalloc(n + 1, sizeof(int));
	e->peer_resolve = xcalloc(n + 1, sizeof(int));
	for (size_t i = 0; i < n; i++)
		e->digest_equal[i] = -1;
	if (pthread_create(&e->bg, NULL, bg_thread, e) == 0)
		e->bg_running = 1;
	else
		log_fatalx("cannot start the background thread");
}

void
sync_stop(struct engine *e)
{
	if (!e->bg_running)
		return;
	commit_stop(e);
	pthread_join(e->bg, NULL);
	e->bg_running = 0;
	e->peers = NULL;
}

void
sync_peer_view(struct engine *e, size_t i, const char **digest_equal,
	       const char **resolve_check)
{
	*digest_equal = e->digest_equal[i] == 1 ? "yes" :
		e->digest_equal[i] == 0 ? "no" : "unknown";
	*resolve_check = e->peer_resolve[i] > 0 ? "ok" :
		e->peer_resolve[i] < 0 ? "failing" : "unknown";
}

void
sync_note_verified(struct engine *e, size_t i, int equal)
{
	if (e->digest_equal == NULL)
		return;
	e->digest_equal[i] = equal;
	e->mismatches[i] = equal ? 0 : 2;
}

void
sync_free(struct engine *e)
{
	free(e->digest_equal);
	free(e->mismatches);
	free(e->peer_resolve);
	e->digest_equal = e->mismatches = e->peer_resolve = NULL;
}
