/* mapstate.h - the map state of one server: what Postfix delivers by.
 *
 * Owns the alias map (in memory and its source file), the compiled alias
 * map, the two tables derived from it (the access map: refusals for
 * disabled and deleted aliases and deferrals for addresses pending here;
 * the sender-login map), and the history file.  Every committed change
 * enters through mapstate_apply; nothing here knows about transactions,
 * peers or requests.  This is the seam for another store (a replicated
 * SQL database that Postfix reads directly): the commit and control
 * layers see only these functions.
 *
 * Not thread-safe by itself.  Two locks of the caller's: the map file
 * lock (e->maplock) serialises everything that writes a file or runs a
 * Postfix tool, and guards the pending set and the file bookkeeping;
 * the in-memory map is changed only with both that lock and the engine
 * lock held, so it may be read with either.  Calls that write files or
 * run Postfix's tools say so and want the map file lock only: never the
 * engine lock across them.
 */
#ifndef MA_MAPSTATE_H
#define MA_MAPSTATE_H

#include "aliasmap.h"
#include "conf.h"
#include "msg.h"

struct mapstate;

/* Load map_file (absent: empty).  conf is borrowed.  0 or -1 with a reason. */
int mapstate_open(const struct conf *conf, struct mapstate **ms_r, char **err_r);
void mapstate_close(struct mapstate **ms);

/* The aliases as they are now (borrowed; valid until the next change). */
const struct aliasmap *mapstate_map(const struct mapstate *ms);

/* The alias written under the map key address would be written under
 * (alias_address_key): with map_format aliases, one with the same local
 * part in any domain.  NULL if the key is free.  Borrowed. */
const struct alias *mapstate_key_holder(const struct mapstate *ms, const char *address);

/* The alias address is an address extension of, as Postfix strips it
 * with recipient_delimiter delims (request_address_base): the one under
 * the key of the stripped address, unless deleted.  NULL if none.  Borrowed. */
const struct alias *mapstate_extension_holder(const struct mapstate *ms, const char *address,
					      const char *delims);

/* In memory only, for journal replay before mapstate_save_all: put an
 * alias's final state; defer mail to an address pending here. */
void mapstate_put(struct mapstate *ms, const struct alias *a);
void mapstate_defer(struct mapstate *ms, const char *address);

/* Write every source file and rebuild every compiled map (start-up; the
 * map file lock only).  0 or -1 with a reason; -1 while the map file
 * cannot be read (it is never rewritten then). */
int mapstate_save_all(struct mapstate *ms, char **err_r);
/* Bring the files in line with the map state after a failed write or a
 * hand edit taken up: the derived tables and compiled maps, and the map
 * source only if it lacks a committed change (a hand edit keeps its
 * layout otherwise).  The map file lock only; 0 or -1 as above. */
int mapstate_save_dirty(struct mapstate *ms, char **err_r);
/* 1 while committed state is not yet in the files: the journal is then
 * the only copy of it. */
int mapstate_dirty(const struct mapstate *ms);

/* Notice a map file changed by someone else: adopt it as this server's
 * state (logged; verify shows how it differs from the peers), keeping
 * committed changes that never reached the file (the next write puts
 * them there).  If it cannot be parsed, it is never rewritten and changes
 * are refused until it is fixed; the first refresh after the fix works
 * again.  A map file this daemon replaced in the last minute is looked
 * at first: an edit appended to it after the rename, by a program that
 * had it open, is appended to the map file and read from there.  No
 * other file is written: the derived tables and compiled maps follow
 * from the next write (it marks the state dirty).  Both locks.  Returns 0, or -1 while the file is unreadable. */
int mapstate_refresh(struct mapstate *ms);
/* 1 while the map file is unreadable (as the last refresh found it). */
int mapstate_broken(const struct mapstate *ms);
/* While the file cannot be read: "path: line N: reason" (borrowed);
 * NULL otherwise. */
const char *mapstate_problem(const struct mapstate *ms);

/* Putting a committed alias in place, in two steps.  mapstate_stage (both
 * locks): into memory, as the map state from now on; what the second
 * step needs goes in *st.  mapstate_write (the map file lock only; it
 * writes files and runs Postfix's tools): into the map file and
 * Postfix's maps, and a line of history (txn, coordinator).  0, or -1
 * with a reason: the state then stays dirty, and mapstate_save_dirty
 * writes it.  A map file that cannot be read is not written: the change
 * stays in memory, mail to the address stays deferred, and the first
 * write after the file can be read again puts the change there. */
struct mapstate_staged {
	struct alias before;	/* as it was (address NULL: absent) */
	int had_entry;		/* the access map may have an entry for it */
	int unreadable;		/* the map file cannot be read: not written */
	int was_pending;	/* (unreadable) mail to it deferred already */
	int source_stale;	/* the file lacks another committed change */
};
void mapstate_stage(struct mapstate *ms, const struct alias *after,
		    struct mapstate_staged *st);
int mapstate_write(struct mapstate *ms, const struct alias *after,
		   const struct mapstate_staged *st, const char *txn, const char *coord,
		   char **err_r);
void mapstate_staged_clear(struct mapstate_staged *st);

/* Mark address pending (mail to it deferred 4xx: its change is prepared
 * here but not decided), or clear that, in the access map (the map file
 * lock only).  0 or -1. */
int mapstate_set_pending(struct mapstate *ms, const char *address, int on,
			 char **err_r);

/* Each history line of address as a record (with item=history) to emit. */
typedef void (*mapstate_emit_fn)(void *arg, const struct msg *item);
void mapstate_history(const struct mapstate *ms, const char *address,
		      mapstate_emit_fn emit, void *arg);

#endif
