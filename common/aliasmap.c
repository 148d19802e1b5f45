/* aliasmap.c - map source file parsing, rendering and digest; see aliasmap.h. */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aliasmap.h"
#include "fsutil.h"
#include "request.h"

#define MAP_HEADER \
	"# milter-alias map v1: managed by milter-alias-peer, change it with milter-aliasctl.\n" \
	"# A \"#@\" line before each entry holds its metadata; disabled and deleted\n" \
	"# aliases keep that line but have no entry.\n"

static const char *const state_names[] = {
	[ALIAS_ACTIVE] = "active",
	[ALIAS_DISABLED] = "disabled",
	[ALIAS_DELETED] = "deleted",
};

const char *
alias_state_name(enum alias_state s)
{
	return state_names[s];
}

int
alias_state_parse(const char *name, enum alias_state *s)
{
	for (size_t i = 0; i < N_ELEMENTS(state_names); i++)
		if (strcmp(name, state_names[i]) == 0) {
			*s = (enum alias_state)i;
			return 0;
		}
	return -1;
}

void
alias_copy(struct alias *dst, const struct alias *src)
{
	dst->address = xstrdup(src->address);
	dst->target = xstrdup(src->target);
	dst->owner = xstrdup(src->owner ? src->owner : "");
	dst->state = src->state;
	dst->created = src->created;
	dst->node = xstrdup(src->node ? src->node : "");
	dst->updated = src->updated;
	dst->note = xstrdup(src->note ? src->note : "");
	dst->expires = src->expires;
	dst->lifetime = src->lifetime;
}

void
alias_clear(struct alias *a)
{
	free(a->address);
	free(a->target);
	free(a->owner);
	free(a->node);
	free(a->note);
	memset(a, 0, sizeof(*a));
}

void
alias_to_msg(const struct alias *a, struct msg *m)
{
	msg_set(m, "address", a->address);
	msg_set(m, "target", a->target);
	msg_set(m, "owner", a->owner);
	msg_set(m, "state", alias_state_name(a->state));
	msg_setf(m, "created", "%lld", a->created);
	msg_set(m, "node", a->node);
	msg_setf(m, "updated", "%lld", a->updated);
	msg_set(m, "note", a->note);
	/* Only when set: the metadata, and so the digest, of an alias
	 * without a lifetime are what they always were. */
	if (a->expires > 0)
		msg_setf(m, "expires", "%lld", a->expires);
	if (a->lifetime > 0)
		msg_setf(m, "lifetime", "%lld", a->lifetime);
}

/* plain_text - non-empty, and no control character but tab (a hand
 * entry's target may hold several addresses, as its file does) */
static int
plain_text(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 0;
	return 1;
}

/* from_msg - alias_from_msg; held: also an unmanaged entry (no owner) as
 * a file holds it */
static int
from_msg(const struct msg *m, struct alias *a, int held, char **err_r)
{
	const char *address = msg_get(m, "address"), *target = msg_get(m, "target");
	int unmanaged = held && *msg_gets(m, "owner") == '\0';
	enum alias_state state;

	memset(a, 0, sizeof(*a));
	if (address == NULL || !(unmanaged ? plain_text(address) && strchr(address, '\t') == NULL :
				 request_address_valid(address))) {
		set_error(err_r, "missing or invalid address");
		return -1;
	}
	if (target == NULL || !(unmanaged ? plain_text(target) : request_target_valid(target))) {
		set_error(err_r, "missing or invalid target for %s", address);
		return -1;
	}
	if (alias_state_parse(msg_gets(m, "state"), &state) < 0) {
		set_error(err_r, "invalid state \"%s\" for %s", msg_gets(m, "state"), address);
		return -1;
	}
	if (msg_get_ll(m, "created", &a->created) < 0)
		a->created = 0;
	if (msg_get_ll(m, "updated", &a->updated) < 0)
		a->updated = a->created;
	a->address = str_lower(xstrdup(address));
	a->target = xstrdup(target);
	a->owner = xstrdup(msg_gets(m, "owner"));
	a->state = state;
	a->node = xstrdup(msg_gets(m, "node"));
	if (msg_get_ll(m, "expires", &a->expires) < 0 || a->expires < 0)
		a->expires = 0;
	if (msg_get_ll(m, "lifetime", &a->lifetime) < 0 || a->lifetime < 0)
		a->lifetime = 0;
	a->note = xstrdup(msg_gets(m, "note"));
	return 0;
}

int
alias_from_msg(const struct msg *m, struct alias *a, char **err_r)
{
	return from_msg(m, a, 0, err_r);
}

int
alias_from_msg_held(const struct msg *m, struct alias *a, char **err_r)
{
	return from_msg(m, a, 1, err_r);
}

char *
alias_address_key(const char *address, enum map_format fmt)
{
	if (fmt == MAP_FORMAT_ALIASES)
		return xstrndup(address, strcspn(address, "@"));
	return xstrdup(address);
}

char *
alias_map_key(const struct alias *a, enum map_format fmt)
{
	return alias_address_key(a->address, fmt);
}

void
alias_entry_line(const struct alias *a, enum map_format fmt, struct buf *out)
{
	char *key = alias_map_key(a, fmt);

	buf_appendf(out, fmt == MAP_FORMAT_ALIASES ? "%s: %s\n" : "%s %s\n",
		    key, a->target);
	free(key);
}

int
alias_expired(const struct alias *a)
{
	return a->state == ALIAS_DISABLED && a->expires > 0 && a->expires <= a->updated;
}

int
alias_access_line(const struct alias *a, struct buf *out)
{
	if (a->owner[0] == '\0' || a->state == ALIAS_ACTIVE)
		return 0;
	/* Postfix puts "<address>: Recipient address rejected:" in front. */
	if (alias_expired(a))
		buf_appendf(out, "%s 550 5.1.1 This alias has expired\n", a->address);
	else
		buf_appendf(out, "%s 550 5.1.1 This alias was %s by its owner\n", a->address,
			    a->state == ALIAS_DISABLED ? "disabled" : "deleted");
	return 1;
}

int
alias_sender_line(const struct alias *a, struct buf *out)
{
	/* smtpd_sender_login_maps splits a value into logins at blanks and
	 * commas: a login holding one would hand the alias to another. */
	if (a->owner[0] == '\0' || a->state != ALIAS_ACTIVE ||
	    a->owner[strcspn(a->owner, " \t\r\n,")] != '\0')
		return 0;
	buf_appendf(out, "%s %s\n", a->address, a->owner);
	return 1;
}

void
aliasmap_render_senders(const struct aliasmap *m, struct buf *out)
{
	buf_appendf(out, "# milter-alias sender-login map: generated by milter-alias-peer "
		    "from the alias\n# map; do not edit.  postfix-setup puts it in "
		    "smtpd_sender_login_maps.\n");
	for (size_t i = 0; i < m->n; i++)
		alias_sender_line(&m->v[i], out);
}

void
alias_pending_line(const char *address, struct buf *out)
{
	/* Temporary: a sender retries, and by then the decision is in. */
	buf_appendf(out, "%s 450 4.2.1 This address is being changed; try again in a "
		    "minute\n", address);
}

void
aliasmap_render_access(const struct aliasmap *m,
		       const struct strlist *request_addresses,
		       const struct strlist *pending, struct buf *out)
{
	static const char header[] =
		"# milter-alias access map: generated by milter-alias-peer from the alias\n"
		"# map; do not edit.  postfix-setup puts it in smtpd_recipient_restrictions.\n";

	buf_append(out, header, strlen(header));
	for (size_t i = 0; i < request_addresses->n; i++)
		buf_appendf(out, "%s milter_alias_request\n", request_addresses->v[i]);
	for (size_t i = 0; pending != NULL && i < pending->n; i++)
		alias_pending_line(pending->v[i], out);
	for (size_t i = 0; i < m->n; i++)
		if (pending == NULL || !strlist_contains(pending, m->v[i].address, false))
			alias_access_line(&m->v[i], out);
}

/* find_pos - binary search; returns the index of address or where it goes */
static size_t
find_pos(const struct aliasmap *m, const char *address, int *found)
{
	size_t lo = 0, hi = m->n;

	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->v[mid].address, address);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct alias *
aliasmap_find(const struct aliasmap *m, const char *address)
{
	int found;
	size_t i = find_pos(m, address, &found);

	return found ? &m->v[i] : NULL;
}

size_t
aliasmap_index_after(const struct aliasmap *m, const char *address)
{
	int found;
	size_t i = find_pos(m, address, &found);

	return found ? i + 1 : i;
}

const struct alias *
aliasmap_find_local(const struct aliasmap *m, const char *local)
{
	size_t len = strlen(local);

	for (size_t i = 0; i < m->n; i++)
		if (strncmp(m->v[i].address, local, len) == 0 &&
		    m->v[i].address[len] == '@')
			return &m->v[i];
	return NULL;
}

const struct alias *
aliasmap_find_key(const struct aliasmap *m, enum map_format fmt, const char *address)
{
	const struct alias *a;
	char *key;

	if (fmt != MAP_FORMAT_ALIASES)
		return aliasmap_find(m, address);
	key = alias_address_key(address, fmt);
	a = aliasmap_find_local(m, key);
	free(key);
	return a;
}

/*
 * The string pool: an open-addressing set of the distinct targets, owners
 * and node names of one map, freed with the map.  At 100,000 aliases this
 * and packing take the map from ~230 to ~100 bytes an alias.
 */
struct strpool {
	char **slot;
	size_t n, cap;		/* cap: a power of two, at most half full */
};

static size_t
str_hash(const char *s)
{
	size_t h = 14695981039346656037u;	/* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

static const char *
pool_get(struct aliasmap *m, const char *s)
{
	struct strpool *p = m->pool;
	size_t i;

	if (p == NULL)
		p = m->pool = xcalloc(1, sizeof(*p));
	if (2 * (p->n + 1) > p->cap) {
		struct strpool bigger = { xcalloc(p->cap ? 2 * p->cap : 16, sizeof(char *)),
					  p->n, p->cap ? 2 * p->cap : 16 };

		for (size_t k = 0; k < p->cap; k++) {
			if (p->slot[k] == NULL)
				continue;
			for (i = str_hash(p->slot[k]) & (bigger.cap - 1); bigger.slot[i];
			     i = (i + 1) & (bigger.cap - 1))
				;
			bigger.slot[i] = p->slot[k];
		}
		free(p->slot);
		*p = bigger;
	}
	for (i = str_hash(s) & (p->cap - 1); p->slot[i]; i = (i + 1) & (p->cap - 1))
		if (strcmp(p->slot[i], s) == 0)
			return p->slot[i];
	p->n++;
	return p->slot[i] = xstrdup(s);
}

static void
pool_free(struct strpool *p)
{
	if (p == NULL)
		return;
	for (size_t k = 0; k < p->cap; k++)
		free(p->slot[k]);
	free(p->slot);
	free(p);
}

/* pack - dst as m holds it: address and note in one allocation (address
 * first, so free(dst->address) releases it), the rest from the pool */
static void
pack(struct aliasmap *m, struct alias *dst, const struct alias *src)
{
	const char *note = src->note ? src->note : "";
	size_t alen = strlen(src->address) + 1, nlen = strlen(note) + 1;

	dst->address = xmalloc(alen + nlen);
	memcpy(dst->address, src->address, alen);
	dst->note = dst->address + alen;
	memcpy(dst->note, note, nlen);
	/* Shared, never written through: the cast only fits struct alias. */
	dst->target = (char *)pool_get(m, src->target);
	dst->owner = (char *)pool_get(m, src->owner ? src->owner : "");
	dst->node = (char *)pool_get(m, src->node ? src->node : "");
	dst->state = src->state;
	dst->created = src->created;
	dst->updated = src->updated;
	dst->expires = src->expires;
	dst->lifetime = src->lifetime;
}

static void
grow(struct aliasmap *m)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap + m->cap / 2 : 64;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
	}
}

void
aliasmap_put(struct aliasmap *m, const struct alias *a)
{
	int found;
	size_t i = find_pos(m, a->address, &found);
	struct alias copy;

	pack(m, &copy, a);
	if (found) {
		free(m->v[i].address);
		m->v[i] = copy;
		return;
	}
	grow(m);
	memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
	m->v[i] = copy;
	m->n++;
}

size_t
aliasmap_count_owner(const struct aliasmap *m, const char *owner)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].state != ALIAS_DELETED && strcmp(m->v[i].owner, owner) == 0)
			n++;
	return n;
}

void
aliasmap_copy(struct aliasmap *dst, const struct aliasmap *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->cap = src->n ? src->n : 1;
	dst->v = xcalloc(dst->cap, sizeof(*dst->v));
	for (size_t i = 0; i < src->n; i++)
		pack(dst, &dst->v[i], &src->v[i]);
	dst->n = src->n;
}

void
aliasmap_clear(struct aliasmap *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].address);	/* with its note */
	free(m->v);
	pool_free(m->pool);
	memset(m, 0, sizeof(*m));
}

/* parse_entry - split a map line into key and value; -1 if it has none */
static int
parse_entry(char *line, enum map_format fmt, char **key_r, char **value_r)
{
	char *p = line, *key;

	while (*p && *p != ' ' && *p != '\t' && !(fmt == MAP_FORMAT_ALIASES && *p == ':'))
		p++;
	if (p == line || *p == '\0')
		return -1;
	key = line;
	if (fmt == MAP_FORMAT_ALIASES) {
		/* "key: value", "key : value" (postalias reads both) */
		char *colon = p + strspn(p, " \t");

		if (*colon != ':')
			return -1;
		*p = '\0';
		p = colon;
	}
	*p++ = '\0';
	*key_r = key;
	*value_r = str_trim(p);
	return **value_r ? 0 : -1;
}

/* entry_address - the alias an entry line stands for, given its key;
 * the key is folded to lower case, as postmap and postalias do */
static char *
entry_address(char *key, enum map_format fmt, const struct alias *pending)
{
	str_lower(key);
	if (fmt == MAP_FORMAT_ALIASES && pending != NULL &&
	    strncmp(pending->address, key, strlen(key)) == 0 &&
	    pending->address[strlen(key)] == '@')
		return xstrdup(pending->address);
	if (fmt == MAP_FORMAT_ALIASES)
		return xasprintf("%s@", key);	/* unmanaged: domain unknown */
	return str_lower(xstrdup(key));
}

/*
 * The parser takes one line at a time, so a map file is never held whole
 * in memory.  Aliases are collected in file order and sorted once at the
 * end (a file with appended records is not sorted, and inserting each in
 * place would cost O(n^2)); an address seen twice is an error then.
 */
struct parser {
	enum map_format fmt;
	struct aliasmap *m;
	int *lines;		/* the line each alias of m came from */
	struct alias pending;	/* a "#@" record waiting for its entry */
	int have_pending;
	int lineno;
	struct msg rec;
	struct keyline {
		char *key;
		int line;
	} *keys;		/* aliases format: every key, for unique_keys */
	size_t nkeys, capkeys;
	struct buf entry;	/* the logical entry line gathered so far */
	int entry_line;		/* the line it starts on; 0: none */
	struct held {
		char *text;
		int line;
	} *held;		/* "#@" lines inside that logical line */
	size_t nheld, capheld;
};

/* push - append a parsed alias (copied), remembering its line */
static void
push(struct parser *p, const struct alias *a, int lineno)
{
	size_t cap = p->m->cap;

	grow(p->m);
	if (p->m->cap != cap || p->lines == NULL)
		p->lines = xrealloc(p->lines, p->m->cap * sizeof(*p->lines));
	pack(p->m, &p->m->v[p->m->n], a);
	p->lines[p->m->n++] = lineno;
}

/* put_pending - a "#@" record that no entry line followed: fine for a
 * disabled or deleted alias; an active one lost its entry by hand, which
 * must be reported, not quietly written back */
static int
put_pending(struct parser *p, int lineno, char **err_r)
{
	if (!p->have_pending)
		return 0;
	if (p->pending.state == ALIAS_ACTIVE) {
		set_error(err_r, "line %d: alias %s is active but its entry line is missing",
			  lineno, p->pending.address);
		return -1;
	}
	push(p, &p->pending, lineno);
	alias_clear(&p->pending);
	p->have_pending = 0;
	return 0;
}

static int
cmp_keyline(const void *a, const void *b)
{
	const struct keyline *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : x->line - y->line;
}

/* unique_keys - in aliases format two addresses can share a key (the
 * local part), and the compiled map would hold only one of them: an
 * error naming the later line.  0 or -1 with a reason. */
static int
unique_keys(struct keyline *keys, size_t n, char **err_r)
{
	if (n < 2)
		return 0;	/* and qsort must not see a NULL base */
	qsort(keys, n, sizeof(*keys), cmp_keyline);
	for (size_t i = 1; i < n; i++)
		if (strcmp(keys[i - 1].key, keys[i].key) == 0) {
			set_error(err_r, "line %d: aliases key \"%s\" also stands on line %d",
				  keys[i].line, keys[i].key, keys[i - 1].line);
			return -1;
		}
	return 0;
}

/* by_address - qsort_r order of alias indexes: address, then line */
static int
by_address(const void *a, const void *b, void *arg)
{
	const struct parser *p = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(p->m->v[i].address, p->m->v[j].address);

	return c != 0 ? c : p->lines[i] - p->lines[j];
}

/* sort_unique - sort m by address; an address twice is an error naming
 * the later line (postmap would keep the first, we the last, so the file
 * is ambiguous).  0 or -1 with a reason. */
static int
sort_unique(struct parser *p, char **err_r)
{
	struct aliasmap *m = p->m;
	size_t *idx;
	int rc = 0;

	if (m->n < 2)
		return 0;
	/* A file as aliasmap_save wrote it is in strict order already. */
	for (size_t i = 1; strcmp(m->v[i - 1].address, m->v[i].address) < 0; i++)
		if (i == m->n - 1)
			return 0;
	idx = xcalloc(m->n, sizeof(*idx));
	for (size_t i = 0; i < m->n; i++)
		idx[i] = i;
	qsort_r(idx, m->n, sizeof(*idx), by_address, p);
	for (size_t i = 1; i < m->n && rc == 0; i++)
		if (strcmp(m->v[idx[i - 1]].address, m->v[idx[i]].address) == 0) {
			set_error(err_r, "line %d: %s appears twice", p->lines[idx[i]],
				  m->v[idx[i]].address);
			rc = -1;
		}
	/* Position i gets the alias idx[i]: follow each cycle of the
	 * permutation in place, marking done positions with idx[j] = j. */
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		struct alias first = m->v[i];
		size_t j = i;

		if (idx[i] == i)
			continue;
		for (;;) {
			size_t k = idx[j];

			idx[j] = j;
			if (k == i) {
				m->v[j] = first;
				break;
			}
			m->v[j] = m->v[k];
			j = k;
		}
	}
	free(idx);
	return rc;
}

/* parse_meta - a "#@" metadata line (modified) at line lineno */
static int
parse_meta(struct parser *p, char *line, int lineno, char **err_r)
{
	char *body = str_trim(line + 2), *err = NULL;

	if (put_pending(p, lineno, err_r) < 0)
		return -1;
	if (msg_decode_line(body, strlen(body), &p->rec, &err) < 0 ||
	    alias_from_msg(&p->rec, &p->pending, &err) < 0) {
		set_error(err_r, "line %d: bad metadata: %s", lineno, err);
		free(err);
		return -1;
	}
	/* A managed alias has an owner: without one it would be written
	 * back as a hand entry, and read again as another alias. */
	if (p->pending.owner[0] == '\0') {
		set_error(err_r, "line %d: bad metadata: no owner for %s", lineno,
			  p->pending.address);
		alias_clear(&p->pending);
		return -1;
	}
	p->have_pending = 1;
	return 0;
}

/* parse_entry_line - one logical entry line (continuations joined;
 * modified) that starts on line lineno */
static int
parse_entry_line(struct parser *p, char *line, int lineno, char **err_r)
{
	enum map_format fmt = p->fmt;
	char *key, *value, *address;
	struct alias a = { 0 };

	if (parse_entry(line, fmt, &key, &value) < 0) {
		set_error(err_r, "line %d: not a \"%s\" entry", lineno,
			  fmt == MAP_FORMAT_ALIASES ? "key: value" : "key value");
		return -1;
	}
	/* aliases(5) keys are local parts: "a@b" and "a@c" would both
	 * become "a". */
	if (fmt == MAP_FORMAT_ALIASES && strchr(key, '@') != NULL) {
		set_error(err_r, "line %d: an aliases key is a local part, without '@'", lineno);
		return -1;
	}
	address = entry_address(key, fmt, p->have_pending ? &p->pending : NULL);
	if (fmt == MAP_FORMAT_ALIASES) {
		if (p->nkeys == p->capkeys) {
			p->capkeys = p->capkeys ? p->capkeys * 2 : 64;
			p->keys = xrealloc(p->keys, p->capkeys * sizeof(*p->keys));
		}
		p->keys[p->nkeys].key = str_lower(xstrdup(key));
		p->keys[p->nkeys++].line = lineno;
	}
	if (p->have_pending && strcmp(address, p->pending.address) == 0) {
		/* The entry is authoritative for the target: a hand edit shows
		 * up in the digest instead of being hidden.  It must still be
		 * one plain address, as the metadata requires. */
		if (!request_target_valid(value)) {
			set_error(err_r, "line %d: the target of managed alias %s must be "
				  "one address", lineno, address);
			free(address);
			return -1;
		}
		free(address);
		a = p->pending;
		free(a.target);
		a.target = value;	/* packed by push, not freed */
		a.state = ALIAS_ACTIVE;
		push(p, &a, lineno);
		a.target = NULL;
		alias_clear(&a);
		memset(&p->pending, 0, sizeof(p->pending));
		p->have_pending = 0;
		return 0;
	}
	if (put_pending(p, lineno, err_r) < 0) {
		free(address);
		return -1;
	}
	a.address = address;
	a.target = value;
	a.owner = a.node = a.note = "";
	push(p, &a, lineno);
	free(address);
	return 0;
}

/* flush_entry - the logical line gathered so far is complete: parse it,
 * then the "#@" lines that stood between its continuation lines */
static int
flush_entry(struct parser *p, char **err_r)
{
	int rc = 0;

	if (p->entry_line > 0) {
		buf_append(&p->entry, "", 0);	/* NUL-terminated */
		rc = parse_entry_line(p, p->entry.data, p->entry_line, err_r);
		buf_reset(&p->entry);
		p->entry_line = 0;
	}
	for (size_t i = 0; i < p->nheld; i++) {
		if (rc == 0)
			rc = parse_meta(p, p->held[i].text, p->held[i].line, err_r);
		free(p->held[i].text);
	}
	p->nheld = 0;
	return rc;
}

/*
 * parse_line - one physical line (NUL-terminated, without its newline;
 * modified).  Lines are read as Postfix's postmap and postalias read them
 * (readlline): a line starting with '#' after optional blanks is a
 * comment, a blank line is nothing, a line starting with a blank continues
 * the logical line before it, even across comments and blank lines (so a
 * "#@" line there waits until that logical line is complete).
 */
static int
parse_line(struct parser *p, char *line, char **err_r)
{
	int lineno = ++p->lineno;
	const char *t;

	if (line[0] == '#' && line[1] == '@') {
		if (p->entry_line == 0)
			return parse_meta(p, line, lineno, err_r);
		if (p->nheld == p->capheld) {
			p->capheld = p->capheld ? 2 * p->capheld : 4;
			p->held = xrealloc(p->held, p->capheld * sizeof(*p->held));
		}
		p->held[p->nheld].text = xstrdup(line);
		p->held[p->nheld++].line = lineno;
		return 0;
	}
	/* A hand edit may end lines with CRLF; a CR anywhere else would let
	 * "\r# x" pass for an entry here and for a comment once trimmed. */
	if (*line != '\0' && line[strlen(line) - 1] == '\r')
		line[strlen(line) - 1] = '\0';
	if (strchr(line, '\r') != NULL) {
		set_error(err_r, "line %d: a carriage return inside a line", lineno);
		return -1;
	}
	t = line + strspn(line, " \t\v\f");
	if (*t == '\0' || *t == '#')
		return 0;
	if (t != line) {
		/* Postfix warns and drops such a line; refused here, so that an
		 * administrator's text is never dropped without a word. */
		if (p->entry_line == 0) {
			set_error(err_r, "line %d: a continuation line (it starts with a "
				  "blank) without an entry before it", lineno);
			return -1;
		}
		/* Joined as readlline joins: the text as it is, blanks and all. */
		buf_append(&p->entry, line, strlen(line));
		return 0;
	}
	if (flush_entry(p, err_r) < 0)
		return -1;
	buf_append(&p->entry, line, strlen(line));
	p->entry_line = lineno;
	return 0;
}

/* parse_finish - after the last line; 0 or -1 with a reason */
static int
parse_finish(struct parser *p, char **err_r)
{
	if (flush_entry(p, err_r) < 0 || put_pending(p, p->lineno, err_r) < 0 ||
	    unique_keys(p->keys, p->nkeys, err_r) < 0)
		return -1;
	return sort_unique(p, err_r);
}

static void
parser_free(struct parser *p, int failed)
{
	for (size_t i = 0; i < p->nkeys; i++)
		free(p->keys[i].key);
	free(p->keys);
	free(p->lines);
	for (size_t i = 0; i < p->nheld; i++)
		free(p->held[i].text);
	free(p->held);
	buf_free(&p->entry);
	alias_clear(&p->pending);
	msg_clear(&p->rec);
	if (failed)
		aliasmap_clear(p->m);
}

int
aliasmap_parse(const char *text, size_t len, enum map_format fmt,
	       struct aliasmap *m, char **err_r)
{
	struct parser p = { .fmt = fmt, .m = m };
	struct buf line = { 0 };
	size_t off = 0;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	/* As before the parser went line by line: the text ends at len or
	 * at a NUL, whichever comes first, and an empty text is one line. */
	len = strnlen(text, len);
	do {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;

		buf_reset(&line);
		buf_append(&line, text + off, n);
		rc = parse_line(&p, line.data ? line.data : (char *)"", err_r);
		off += n + 1;
	} while (rc == 0 && off <= len);
	if (rc == 0)
		rc = parse_finish(&p, err_r);
	buf_free(&line);
	parser_free(&p, rc < 0);
	return rc;
}

int
aliasmap_load(const char *path, enum map_format fmt, struct aliasmap *m,
	      char **err_r)
{
	struct parser p = { .fmt = fmt, .m = m };
	char *line = NULL, *err = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	int rc = 0;
	FILE *f;

	memset(m, 0, sizeof(*m));
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		set_error(err_r, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
		if ((total += (size_t)n) > ALIASMAP_MAX_BYTES) {
			set_error(&err, "larger than %u bytes", ALIASMAP_MAX_BYTES);
			rc = -1;
			break;
		}
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (strlen(line) != (size_t)n) {
			set_error(&err, "line %d: a NUL byte", p.lineno + 1);
			rc = -1;
			break;
		}
		rc = parse_line(&p, line, &err);
	}
	if (rc == 0 && ferror(f)) {
		set_error(&err, "read error: %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0)
		rc = parse_finish(&p, &err);
	if (rc < 0) {
		set_error(err_r, "%s: %s", path, err);
		free(err);
	}
	fclose(f);
	free(line);
	parser_free(&p, rc < 0);
	return rc;
}

/* render_one - an alias's "#@" metadata line (managed aliases) and its
 * entry line (active ones) */
static void
render_one(const struct alias *a, enum map_format fmt, struct buf *out)
{
	struct msg rec = { 0 };

	if (a->owner[0] != '\0') {
		alias_to_msg(a, &rec);
		buf_append(out, "#@ ", 3);
		msg_encode_line(&rec, out);
		buf_append(out, "\n", 1);
		msg_clear(&rec);
	}
	if (a->state == ALIAS_ACTIVE)
		alias_entry_line(a, fmt, out);
}

/* render_to - the canonical rendering, handed to sink in pieces of about
 * 64 KiB, so that no copy of a large map is ever held whole */
static int
render_to(const struct aliasmap *m, enum map_format fmt,
	  int (*sink)(void *arg, const char *data, size_t len), void *arg)
{
	struct buf b = { 0 };
	int rc = 0;

	buf_append(&b, MAP_HEADER, strlen(MAP_HEADER));
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		render_one(&m->v[i], fmt, &b);
		if (b.len >= 65536) {
			rc = sink(arg, b.data, b.len);
			buf_reset(&b);
		}
	}
	if (rc == 0 && b.len > 0)
		rc = sink(arg, b.data, b.len);
	buf_free(&b);
	return rc;
}

static int
sink_buf(void *arg, const char *data, size_t len)
{
	buf_append(arg, data, len);
	return 0;
}

void
aliasmap_render(const struct aliasmap *m, enum map_format fmt, struct buf *out)
{
	render_to(m, fmt, sink_buf, out);
}

struct save_job {
	const struct aliasmap *m;
	enum map_format fmt;
	int fd;
};

static int
sink_fd(void *arg, const char *data, size_t len)
{
	return fsutil_write_all(((struct save_job *)arg)->fd, data, len);
}

static int
produce_map(int fd, void *arg)
{
	struct save_job *job = arg;

	job->fd = fd;
	return render_to(job->m, job->fmt, sink_fd, job);
}

int
aliasmap_save(const char *path, enum map_format fmt, const struct aliasmap *m,
	      const struct stat *expect, struct stat *written_r,
	      struct fsutil_replaced *old_r, char **err_r)
{
	struct save_job job = { m, fmt, -1 };

	return fsutil_replace(path, 0644, expect, produce_map, &job, written_r, old_r, err_r);
}

int
aliasmap_append(const char *path, enum map_format fmt, const struct alias *a,
		size_t *len_r, char **err_r)
{
	struct buf b = { 0 };
	int rc;

	render_one(a, fmt, &b);
	rc = fsutil_append(path, b.data, b.len, err_r);
	if (len_r != NULL)
		*len_r = b.len;
	buf_free(&b);
	return rc;
}

static int
sink_hash(void *arg, const char *data, size_t len)
{
	return gnutls_hash(arg, data, len) < 0 ? -1 : 0;
}

void
aliasmap_digest(const struct aliasmap *m, enum map_format fmt, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	gnutls_hash_hd_t h;

	/* SHA-256 is always there: this fails only without memory, and the
	 * x* allocators abort then too. */
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		abort();
	render_to(m, fmt, sink_hash, h);
	gnutls_hash_deinit(h, md);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}
