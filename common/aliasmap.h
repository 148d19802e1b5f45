/* aliasmap.h - the alias map source file and its in-memory form.
 *
 * The file is a valid Postfix map source (postmap for "virtual" format,
 * postalias for "aliases").  Each managed entry is preceded by one comment
 * line "#@ key=value ..." (msg.h encoding) holding its metadata; disabled
 * and deleted aliases keep their "#@" line but have no entry, so Postfix
 * does not deliver through them.  Entries without a "#@" line (hand edits)
 * are kept as unmanaged.  A full write is sorted by address; a new alias
 * is appended at the end (aliasmap_append), so the file's order is not
 * significant.  The canonical rendering is sorted by address; its SHA-256
 * is the digest servers compare.
 */
#ifndef MA_ALIASMAP_H
#define MA_ALIASMAP_H

#include <sys/stat.h>

#include "conf.h"
#include "fsutil.h"
#include "msg.h"
#include "util.h"

enum alias_state {
	ALIAS_ACTIVE,
	ALIAS_DISABLED,
	ALIAS_DELETED,
};

struct alias {
	char *address;		/* name@domain, lowercase */
	char *target;		/* the owner's delivery address */
	char *owner;		/* SASL login; "" for an unmanaged entry */
	enum alias_state state;
	long long created;	/* seconds since the epoch, coordinator's clock */
	char *node;		/* node_name that created it */
	long long updated;	/* last state change */
	char *note;
	long long expires;	/* seconds since the epoch it is disabled at
				 * (the expiry sweep, sync.c); 0: never */
	long long lifetime;	/* seconds it was given when its expiry was
				 * last set; enabling an expired alias
				 * extends it by this much; 0: none */
};

struct strpool;

/* Zero-initialised is an empty map.  Its aliases are packed: address and
 * note share one allocation, and target, owner and node (few distinct
 * values: one user has many aliases) point into the map's string pool. */
struct aliasmap {
	struct alias *v;	/* sorted by address */
	size_t n;
	size_t cap;
	struct strpool *pool;
};

#define ALIASMAP_MAX_BYTES (256u * 1024 * 1024)

const char *alias_state_name(enum alias_state s);
/* 0 and *s on success, -1 for an unknown name. */
int alias_state_parse(const char *name, enum alias_state *s);

void alias_copy(struct alias *dst, const struct alias *src);
void alias_clear(struct alias *a);
/* Metadata as record fields (address, target, owner, state, ...). */
void alias_to_msg(const struct alias *a, struct msg *m);
/* 0 on success; -1 with a reason when a field is missing or invalid. */
int alias_from_msg(const struct msg *m, struct alias *a, char **err_r);
/* The same for an entry as a peer's file holds it, to compare with (a
 * dump): an unmanaged one (a hand edit: no owner) may have any key and
 * target its file can hold, "name@" or several addresses. */
int alias_from_msg_held(const struct msg *m, struct alias *a, char **err_r);
/* The key an address is written under in the map: the address, or its
 * local part for "aliases" format (so shop@example.org and
 * shop@example.net are one key there).  Whatever must be unique per map
 * entry (the existence check, the per-address locks of commit.c) goes by
 * this key.  Caller frees. */
char *alias_address_key(const char *address, enum map_format fmt);
/* alias_address_key of a->address. */
char *alias_map_key(const struct alias *a, enum map_format fmt);
/* "key value\n" ("key: value\n" for aliases) as postmap -i reads it. */
void alias_entry_line(const struct alias *a, enum map_format fmt, struct buf *out);

/* 1 if a is disabled because its lifetime ran out: disabled, with an
 * expiry that had passed when it was disabled. */
int alias_expired(const struct alias *a);

/* The access(5) line that makes Postfix refuse mail to a disabled or
 * deleted alias with its reason ("address 550 5.1.1 This alias was ...",
 * "... This alias has expired" when alias_expired), or nothing for an
 * active one.  Appended to out; returns 1 if it wrote one. */
int alias_access_line(const struct alias *a, struct buf *out);
/* The sender-login line "address login" that lets the owner send as an
 * active alias where reject_sender_login_mismatch is enforced; nothing for
 * an alias that is not active, unmanaged, or whose login holds a blank or
 * a comma (Postfix would split it).  Returns 1 if it wrote one. */
int alias_sender_line(const struct alias *a, struct buf *out);
/* The whole sender-login map source: a comment, then a line per alias
 * for which alias_sender_line writes one. */
void aliasmap_render_senders(const struct aliasmap *m, struct buf *out);
/* The access(5) line that defers mail to an address whose change is
 * prepared but not yet decided here ("address 450 4.2.1 ..."). */
void alias_pending_line(const char *address, struct buf *out);
/* The whole access map source: a line per disabled or deleted alias, a
 * deferral per pending address (may be NULL), and "request_address
 * milter_alias_request" per request address (the restriction class that
 * postfix-setup defines). */
void aliasmap_render_access(const struct aliasmap *m,
			    const struct strlist *request_addresses,
			    const struct strlist *pending, struct buf *out);

/* Parse a whole file's text.  0 on success; -1 with "line N: ..." */
int aliasmap_parse(const char *text, size_t len, enum map_format fmt,
		   struct aliasmap *m, char **err_r);
/* Parse path; an absent file is an empty map.  0 or -1 with a reason. */
int aliasmap_load(const char *path, enum map_format fmt, struct aliasmap *m,
		  char **err_r);
void aliasmap_render(const struct aliasmap *m, enum map_format fmt,
		     struct buf *out);
/* Render and write atomically (mode 0644).  With expect, only over the
 * file it describes (fsutil_replace): 1 if path was changed meanwhile
 * (then it must be read again).  *written_r (if not NULL): the file as
 * written; *old_r (if not NULL): the file replaced, still open.  0 or -1
 * with a reason. */
int aliasmap_save(const char *path, enum map_format fmt, const struct aliasmap *m,
		  const struct stat *expect, struct stat *written_r,
		  struct fsutil_replaced *old_r, char **err_r);
/* Append one alias's lines to the file (one write, then fdatasync), for
 * an address the file does not hold yet; the file must end with a newline
 * (every file written by aliasmap_save does).  *len_r (if not NULL): the
 * bytes appended.  0 or -1 with a reason. */
int aliasmap_append(const char *path, enum map_format fmt,
		    const struct alias *a, size_t *len_r, char **err_r);
/* Lowercase hex SHA-256 of the canonical rendering (65 bytes with NUL). */
void aliasmap_digest(const struct aliasmap *m, enum map_format fmt,
		     char hex[65]);

/* Borrowed pointer into the map, or NULL.  A map's aliases are packed (one
 * allocation each): change them only with aliasmap_put. */
const struct alias *aliasmap_find(const struct aliasmap *m, const char *address);
/* Index of the first alias whose address sorts after address (m->n if
 * none): where a walk in batches resumes. */
size_t aliasmap_index_after(const struct aliasmap *m, const char *address);
/* Borrowed pointer to an alias with this local part in any domain. */
const struct alias *aliasmap_find_local(const struct aliasmap *m, const char *local);
/* Borrowed pointer to the alias written under address's key (format fmt):
 * the alias itself, or for "aliases" one with the same name in any
 * domain; NULL if the key is free. */
const struct alias *aliasmap_find_key(const struct aliasmap *m, enum map_format fmt,
				      const char *address);
/* Insert a deep copy of a, replacing an alias with the same address. */
void aliasmap_put(struct aliasmap *m, const struct alias *a);
/* Aliases of owner that are not deleted. */
size_t aliasmap_count_owner(const struct aliasmap *m, const char *owner);
void aliasmap_copy(struct aliasmap *dst, const struct aliasmap *src);
void aliasmap_clear(struct aliasmap *m);

#endif
