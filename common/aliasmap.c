/* aliasmap.c - map source file parsing, rendering and digest; see aliasmap.h. */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
}

int
alias_from_msg(const struct msg *m, struct alias *a, char **err_r)
{
	const char *address = msg_get(m, "address"), *target = msg_get(m, "target");
	enum alias_state state;

	memset(a, 0, sizeof(*a));
	if (address == NULL || !request_address_valid(address)) {
		set_error(err_r, "missing or invalid address");
		return -1;
	}
	if (target == NULL || !request_target_valid(target)) {
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
	a->note = xstrdup(msg_gets(m, "note"));
	return 0;
}

char *
alias_map_key(const struct alias *a, enum map_format fmt)
{
	if (fmt == MAP_FORMAT_ALIASES)
		return xstrndup(a->address, strcspn(a->address, "@"));
	return xstrdup(a->address);
}

void
alias_entry_line(const struct alias *a, enum map_format fmt, struct buf *out)
{
	char *key = alias_map_key(a, fmt);

	buf_appendf(out, fmt == MAP_FORMAT_ALIASES ? "%s: %s\n" : "%s %s\n",
		    key, a->target);
	free(key);
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

struct alias *
aliasmap_find(const struct aliasmap *m, const char *address)
{
	int found;
	size_t i = find_pos(m, address, &found);

	return found ? &m->v[i] : NULL;
}

struct alias *
aliasmap_find_local(const struct aliasmap *m, const char *local)
{
	size_t len = strlen(local);

	for (size_t i = 0; i < m->n; i++)
		if (strncmp(m->v[i].address, local, len) == 0 &&
		    m->v[i].address[len] == '@')
			return &m->v[i];
	return NULL;
}

void
aliasmap_put(struct aliasmap *m, const struct alias *a)
{
	int found;
	size_t i = find_pos(m, a->address, &found);
	struct alias copy;

	alias_copy(&copy, a);
	if (found) {
		alias_clear(&m->v[i]);
		m->v[i] = copy;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
	}
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
		alias_copy(&dst->v[i], &src->v[i]);
	dst->n = src->n;
}

void
aliasmap_clear(struct aliasmap *m)
{
	for (size_t i = 0; i < m->n; i++)
		alias_clear(&m->v[i]);
	free(m->v);
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
		if (*p != ':')
			return -1;
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

int
aliasmap_parse(const char *text, size_t len, enum map_format fmt,
	       struct aliasmap *m, char **err_r)
{
	char *copy = xstrndup(text, len), *save = NULL, *line;
	struct alias pending = { 0 };
	int have_pending = 0, lineno = 0, rc = -1;
	struct msg rec = { 0 };

	memset(m, 0, sizeof(*m));
	for (line = copy; line != NULL; line = save) {
		char *nl = strchr(line, '\n'), *key, *value, *err = NULL;

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if (line[0] == '#' && line[1] == '@') {
			if (have_pending)
				aliasmap_put(m, &pending);
			alias_clear(&pending);
			have_pending = 0;
			char *body = str_trim(line + 2);

			if (msg_decode_line(body, strlen(body), &rec, &err) < 0 ||
			    alias_from_msg(&rec, &pending, &err) < 0) {
				set_error(err_r, "line %d: bad metadata: %s", lineno, err);
				free(err);
				goto out;
			}
			have_pending = 1;
			continue;
		}
		if (line[0] == '#')
			continue;
		/* Test for a continuation before str_trim removes the indent;
		 * like Postfix, an indented comment or blank line is none. */
		if (line[0] == ' ' || line[0] == '\t') {
			const char *t = str_trim(line);

			if (*t == '\0' || *t == '#')
				continue;
			set_error(err_r, "line %d: continuation lines are not supported", lineno);
			goto out;
		}
		if (str_trim(line)[0] == '\0')
			continue;
		if (parse_entry(line, fmt, &key, &value) < 0) {
			set_error(err_r, "line %d: not a \"key value\" entry", lineno);
			goto out;
		}
		struct alias a = { 0 };
		char *address = entry_address(key, fmt, have_pending ? &pending : NULL);

		if (have_pending && strcmp(address, pending.address) == 0) {
			/* The entry is authoritative for the target: a hand edit
			 * shows up in the digest instead of being hidden. */
			alias_copy(&a, &pending);
			free(a.target);
			a.target = xstrdup(value);
			a.state = ALIAS_ACTIVE;
			free(address);
			have_pending = 0;
			alias_clear(&pending);
		} else {
			if (have_pending)
				aliasmap_put(m, &pending);
			have_pending = 0;
			alias_clear(&pending);
			a.address = address;
			a.target = xstrdup(value);
			a.owner = xstrdup("");
			a.node = xstrdup("");
			a.note = xstrdup("");
		}
		aliasmap_put(m, &a);
		alias_clear(&a);
	}
	if (have_pending)
		aliasmap_put(m, &pending);
	rc = 0;
out:
	alias_clear(&pending);
	msg_clear(&rec);
	free(copy);
	if (rc < 0)
		aliasmap_clear(m);
	return rc;
}

int
aliasmap_load(const char *path, enum map_format fmt, struct aliasmap *m,
	      char **err_r)
{
	char *data, *err = NULL;
	size_t len;
	int rc = fsutil_read_file(path, &data, &len, ALIASMAP_MAX_BYTES, err_r);

	if (rc == 1) {
		memset(m, 0, sizeof(*m));
		return 0;
	}
	if (rc < 0)
		return -1;
	rc = aliasmap_parse(data, len, fmt, m, &err);
	if (rc < 0) {
		set_error(err_r, "%s: %s", path, err);
		free(err);
	}
	free(data);
	return rc;
}

void
aliasmap_render(const struct aliasmap *m, enum map_format fmt, struct buf *out)
{
	struct msg rec = { 0 };

	buf_append(out, MAP_HEADER, strlen(MAP_HEADER));
	for (size_t i = 0; i < m->n; i++) {
		const struct alias *a = &m->v[i];

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
}

int
aliasmap_save(const char *path, enum map_format fmt, const struct aliasmap *m,
	      char **err_r)
{
	struct buf b = { 0 };
	int rc;

	aliasmap_render(m, fmt, &b);
	rc = fsutil_write_atomic(path, b.data, b.len, 0644, err_r);
	buf_free(&b);
	return rc;
}

void
aliasmap_digest(const struct aliasmap *m, enum map_format fmt, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	struct buf b = { 0 };

	aliasmap_render(m, fmt, &b);
	gnutls_hash_fast(GNUTLS_DIG_SHA256, b.data, b.len, md);
	buf_free(&b);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}
