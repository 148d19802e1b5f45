/* test_aliasmap.c - unit tests for common/aliasmap.c: parse, render, save,
 * load and digest of the alias map source, in "virtual" and "aliases"
 * format, with hand-edited entries and disabled/deleted aliases. */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sys/wait.h>

#include "unit.h"
#include "aliasmap.h"

static char *dir;

static void
setup(void)
{
	dir = ut_mkdtemp();
}

static void
teardown(void)
{
	ut_rmtree(&dir);
}

TestSuite(aliasmap, .init = setup, .fini = teardown);

/* put - add one alias built from the arguments */
static void
put(struct aliasmap *m, const char *address, const char *target, const char *owner,
    enum alias_state state, long long created, const char *note)
{
	int managed = owner[0] != '\0';
	struct alias a = {
		.address = (char *)address,
		.target = (char *)target,
		.owner = (char *)owner,
		.state = state,
		/* An unmanaged entry has no metadata to keep. */
		.created = managed ? created : 0,
		.node = (char *)(managed ? "a.example.org" : ""),
		.updated = managed ? created + 5 : 0,
		.note = (char *)(managed ? note : ""),
	};

	aliasmap_put(m, &a);
}

/* sample - a managed active, disabled and deleted alias, and an unmanaged one */
static void
sample(struct aliasmap *m)
{
	memset(m, 0, sizeof(*m));
	put(m, "shop@example.org", "alice@example.net", "alice", ALIAS_ACTIVE,
	    1700000000, "orders from the web shop");
	put(m, "news@example.org", "bob@example.net", "bob", ALIAS_DISABLED,
	    1700000100, "");
	put(m, "old@example.org", "alice@example.net", "alice", ALIAS_DELETED,
	    1700000200, "100% gone = deleted");
	put(m, "hand@example.org", "carol@example.net", "", ALIAS_ACTIVE, 0, "");
}

/* sample_for - sample() as a map of format fmt: in aliases format an
 * unmanaged entry has no domain, so "hand@example.org" becomes "hand@" */
static void
sample_for(struct aliasmap *m, enum map_format fmt)
{
	struct aliasmap s;

	sample(&s);
	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < s.n; i++) {
		struct alias a = s.v[i];

		if (fmt == MAP_FORMAT_ALIASES && strcmp(a.address, "hand@example.org") == 0)
			a.address = "hand@";
		aliasmap_put(m, &a);
	}
	aliasmap_clear(&s);
}

static char *
render(const struct aliasmap *m, enum map_format fmt)
{
	struct buf b = { 0 };

	buf_append(&b, "", 0);
	aliasmap_render(m, fmt, &b);
	return b.data;
}

static void
assert_alias_eq(const struct alias *x, const struct alias *y)
{
	cr_assert_str_eq(x->address, y->address);
	cr_assert_str_eq(x->target, y->target, "%s", x->address);
	cr_assert_str_eq(x->owner, y->owner, "%s", x->address);
	cr_assert_eq(x->state, y->state, "%s", x->address);
	cr_assert_eq(x->created, y->created, "%s", x->address);
	cr_assert_str_eq(x->node, y->node, "%s", x->address);
	cr_assert_eq(x->updated, y->updated, "%s", x->address);
	cr_assert_str_eq(x->note, y->note, "%s", x->address);
	cr_assert_eq(x->expires, y->expires, "%s", x->address);
	cr_assert_eq(x->lifetime, y->lifetime, "%s", x->address);
}

static void
assert_map_eq(const struct aliasmap *x, const struct aliasmap *y)
{
	cr_assert_eq(x->n, y->n);
	for (size_t i = 0; i < x->n; i++)
		assert_alias_eq(&x->v[i], &y->v[i]);
}

static int
parse_text(const char *text, enum map_format fmt, struct aliasmap *m, char **err)
{
	return aliasmap_parse(text, strlen(text), fmt, m, err);
}

/* parse_fails - text must be refused with an error naming "line N" */
static void
parse_fails(const char *text, enum map_format fmt, int line)
{
	struct aliasmap m;
	char *err = NULL, want[32];

	cr_assert_eq(parse_text(text, fmt, &m, &err), -1, "accepted:\n%s", text);
	cr_assert_not_null(err);
	snprintf(want, sizeof(want), "line %d:", line);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "\"%s\" does not start with %s",
		     err, want);
	cr_assert_eq(m.n, 0);
	cr_assert_null(m.v);
	free(err);
}

/* count_lines_starting - lines of text beginning with prefix */
static int
count_lines_starting(const char *text, const char *prefix)
{
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

/* has_line - text holds exactly this whole line */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

/* ===== states, copies, records ===== */

Test(aliasmap, state_names)
{
	static const enum alias_state all[] = { ALIAS_ACTIVE, ALIAS_DISABLED, ALIAS_DELETED };
	static const char *const names[] = { "active", "disabled", "deleted" };
	enum alias_state s;

	for (size_t i = 0; i < N_ELEMENTS(all); i++) {
		cr_assert_str_eq(alias_state_name(all[i]), names[i]);
		cr_assert_eq(alias_state_parse(names[i], &s), 0);
		cr_assert_eq(s, all[i]);
	}
	cr_assert_eq(alias_state_parse("", &s), -1);
	cr_assert_eq(alias_state_parse("gone", &s), -1);
	cr_assert_eq(alias_state_parse("activ", &s), -1);
	cr_assert_eq(alias_state_parse("active ", &s), -1);
}

Test(aliasmap, alias_copy_is_deep)
{
	char addr[] = "x@example.org";
	struct alias src = {
		.address = addr, .target = (char *)"t@example.net", .owner = NULL,
		.state = ALIAS_DISABLED, .created = 10, .node = NULL, .updated = 11,
		.note = NULL,
	}, dst;

	alias_copy(&dst, &src);
	addr[0] = 'y';
	cr_assert_str_eq(dst.address, "x@example.org");
	cr_assert_str_eq(dst.target, "t@example.net");
	cr_assert_str_eq(dst.owner, "", "NULL owner copies as \"\"");
	cr_assert_str_eq(dst.node, "");
	cr_assert_str_eq(dst.note, "");
	cr_assert_eq(dst.state, ALIAS_DISABLED);
	cr_assert_eq(dst.created, 10);
	cr_assert_eq(dst.updated, 11);
	alias_clear(&dst);
	cr_assert_null(dst.address);
	cr_assert_null(dst.note);
	cr_assert_eq(dst.created, 0);
}

Test(aliasmap, msg_roundtrip)
{
	struct alias a = {
		.address = (char *)"shop@example.org", .target = (char *)"alice+x@example.net",
		.owner = (char *)"alice@corp", .state = ALIAS_DELETED,
		.created = 1700000000, .node = (char *)"b.example.org",
		.updated = 1700000999, .note = (char *)"a=b %20 \r\n #@ x\xc3\xa4",
	}, b;
	struct msg m = { 0 };
	char *err = NULL;

	alias_to_msg(&a, &m);
	cr_assert_str_eq(msg_gets(&m, "address"), "shop@example.org");
	cr_assert_str_eq(msg_gets(&m, "target"), "alice+x@example.net");
	cr_assert_str_eq(msg_gets(&m, "owner"), "alice@corp");
	cr_assert_str_eq(msg_gets(&m, "state"), "deleted");
	cr_assert_str_eq(msg_gets(&m, "created"), "1700000000");
	cr_assert_str_eq(msg_gets(&m, "node"), "b.example.org");
	cr_assert_str_eq(msg_gets(&m, "updated"), "1700000999");
	cr_assert_eq(alias_from_msg(&m, &b, &err), 0, "%s", err);
	assert_alias_eq(&a, &b);
	alias_clear(&b);
	msg_clear(&m);
}

Test(aliasmap, from_msg_defaults_and_folding)
{
	struct msg m = { 0 };
	struct alias a;

	msg_set(&m, "address", "Shop@Example.ORG");
	msg_set(&m, "target", "alice@example.net");
	msg_set(&m, "state", "active");
	msg_set(&m, "created", "1234");
	cr_assert_eq(alias_from_msg(&m, &a, NULL), 0);
	cr_assert_str_eq(a.address, "shop@example.org", "address lowercased");
	cr_assert_eq(a.created, 1234);
	cr_assert_eq(a.updated, 1234, "updated defaults to created");
	cr_assert_str_eq(a.owner, "");
	cr_assert_str_eq(a.node, "");
	cr_assert_str_eq(a.note, "");
	alias_clear(&a);
	msg_set(&m, "created", "not a number");
	cr_assert_eq(alias_from_msg(&m, &a, NULL), 0);
	cr_assert_eq(a.created, 0);
	alias_clear(&a);
	msg_clear(&m);
}

Test(aliasmap, from_msg_refuses_bad_records)
{
	static const char *const bad[][3] = {
		/* address, target, state; NULL = absent */
		{ NULL, "t@example.net", "active" },
		{ "shop", "t@example.net", "active" },
		{ "a b@example.org", "t@example.net", "active" },
		{ ".shop@example.org", "t@example.net", "active" },
		{ "a@b@example.org", "t@example.net", "active" },
		{ "shop@example.org", NULL, "active" },
		{ "shop@example.org", "|/bin/sh", "active" },
		{ "shop@example.org", "/etc/passwd", "active" },
		{ "shop@example.org", ":include:/etc/x", "active" },
		{ "shop@example.org", "a@x.org, b@y.org", "active" },
		{ "shop@example.org", "t@example.net", NULL },
		{ "shop@example.org", "t@example.net", "enabled" },
	};

	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		struct msg m = { 0 };
		struct alias a;
		char *err = NULL;

		if (bad[i][0])
			msg_set(&m, "address", bad[i][0]);
		if (bad[i][1])
			msg_set(&m, "target", bad[i][1]);
		if (bad[i][2])
			msg_set(&m, "state", bad[i][2]);
		cr_assert_eq(alias_from_msg(&m, &a, &err), -1, "case %zu accepted", i);
		cr_assert_not_null(err, "case %zu", i);
		cr_assert_null(a.address, "case %zu left a half-filled alias", i);
		free(err);
		msg_clear(&m);
	}
}

/* a peer's dump holds its hand edits as its file does: for verify they
 * are read (an unmanaged entry only), never for a change */
Test(aliasmap, from_msg_held_reads_hand_entries_only)
{
	static const char *const cases[][4] = {
		/* address, target, owner, "1" if held reads it */
		{ "hand@", "a@example.org,\tb@example.org", "", "1" },
		{ "hand@example.org", "a@example.org, b@example.org", "", "1" },
		{ "hand@", "a@example.org", "alice", "" },
		{ "hand@example.org", "a@example.org, b@example.org", "alice", "" },
		{ "hand@example.org", "a@example.org\nb: c@example.org", "", "" },
		{ "hand\t@example.org", "a@example.org", "", "" },
		{ "", "a@example.org", "", "" },
		{ "hand@example.org", "", "", "" },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct msg m = { 0 };
		struct alias a;
		int want = *cases[i][3] ? 0 : -1;

		msg_set(&m, "address", cases[i][0]);
		msg_set(&m, "target", cases[i][1]);
		msg_set(&m, "owner", cases[i][2]);
		msg_set(&m, "state", "active");
		cr_assert_eq(alias_from_msg_held(&m, &a, NULL), want, "case %zu", i);
		if (want == 0) {
			cr_assert_str_eq(a.target, cases[i][1]);
			alias_clear(&a);
			cr_assert_eq(alias_from_msg(&m, &a, NULL), -1,
				     "case %zu: a change would take it", i);
		}
		msg_clear(&m);
	}
}

Test(aliasmap, map_key_and_entry_line)
{
	struct alias a = {
		.address = (char *)"shop@example.org", .target = (char *)"alice@example.net",
		.owner = (char *)"alice", .node = (char *)"", .note = (char *)"",
	};
	struct buf b = { 0 };
	char *k;

	k = alias_map_key(&a, MAP_FORMAT_VIRTUAL);
	cr_assert_str_eq(k, "shop@example.org");
	free(k);
	k = alias_map_key(&a, MAP_FORMAT_ALIASES);
	cr_assert_str_eq(k, "shop");
	free(k);
	alias_entry_line(&a, MAP_FORMAT_VIRTUAL, &b);
	cr_assert_str_eq(b.data, "shop@example.org alice@example.net\n");
	buf_reset(&b);
	alias_entry_line(&a, MAP_FORMAT_ALIASES, &b);
	cr_assert_str_eq(b.data, "shop: alice@example.net\n");
	buf_free(&b);
}

Test(aliasmap, sender_line_only_for_active_managed_aliases)
{
	struct alias a = {
		.address = (char *)"shop@example.org", .target = (char *)"alice@example.net",
		.owner = (char *)"alice@example.org", .node = (char *)"", .note = (char *)"",
	};
	struct buf b = { 0 };

	cr_assert_eq(alias_sender_line(&a, &b), 1);
	cr_assert_str_eq(b.data, "shop@example.org alice@example.org\n");
	buf_reset(&b);
	a.state = ALIAS_DISABLED;
	cr_assert_eq(alias_sender_line(&a, &b), 0, "a disabled alias drops out");
	a.state = ALIAS_DELETED;
	cr_assert_eq(alias_sender_line(&a, &b), 0, "a deleted alias drops out");
	a.state = ALIAS_ACTIVE;
	a.owner = (char *)"";
	cr_assert_eq(alias_sender_line(&a, &b), 0, "an unmanaged entry has no owner");
	/* Postfix splits the value at commas and blanks: "bob,alice" would
	 * let alice send as bob's alias. */
	a.owner = (char *)"bob,alice";
	cr_assert_eq(alias_sender_line(&a, &b), 0);
	a.owner = (char *)"bob alice";
	cr_assert_eq(alias_sender_line(&a, &b), 0);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}

Test(aliasmap, render_senders_lists_active_aliases)
{
	struct aliasmap m = { 0 };
	struct alias a = {
		.address = (char *)"b@example.org", .target = (char *)"alice@example.org",
		.owner = (char *)"alice", .node = (char *)"", .note = (char *)"",
	};
	struct buf b = { 0 };

	aliasmap_put(&m, &a);
	a.address = (char *)"a@example.org";
	a.owner = (char *)"bob";
	aliasmap_put(&m, &a);
	a.address = (char *)"c@example.org";
	a.state = ALIAS_DISABLED;
	aliasmap_put(&m, &a);
	aliasmap_render_senders(&m, &b);
	cr_assert(strstr(b.data, "a@example.org bob\nb@example.org alice\n") != NULL,
		  "got: %s", b.data);
	cr_assert_null(strstr(b.data, "c@example.org"));
	for (char *line = b.data; line && *line; line = strchr(line, '\n') + 1)
		cr_assert(line[0] == '#' || strchr("abc", line[0]) != NULL);
	buf_free(&b);
	aliasmap_clear(&m);
}

/* ===== the in-memory map ===== */

Test(aliasmap, put_sorts_and_replaces)
{
	static const char *const order[] = {
		"m@example.org", "a@example.org", "z@example.org", "b@example.net",
		"a@example.net", "y@example.org",
	};
	struct aliasmap m = { 0 };

	for (size_t i = 0; i < N_ELEMENTS(order); i++)
		put(&m, order[i], "t@example.net", "o", ALIAS_ACTIVE, (long long)i, "");
	cr_assert_eq(m.n, N_ELEMENTS(order));
	for (size_t i = 1; i < m.n; i++)
		cr_assert_lt(strcmp(m.v[i - 1].address, m.v[i].address), 0,
			     "not sorted at %zu", i);
	put(&m, "m@example.org", "new@example.net", "o2", ALIAS_DISABLED, 99, "replaced");
	cr_assert_eq(m.n, N_ELEMENTS(order), "replacing does not add");
	const struct alias *f = aliasmap_find(&m, "m@example.org");
	cr_assert_not_null(f);
	cr_assert_str_eq(f->target, "new@example.net");
	cr_assert_str_eq(f->owner, "o2");
	cr_assert_eq(f->state, ALIAS_DISABLED);
	cr_assert_str_eq(f->note, "replaced");
	aliasmap_clear(&m);
	cr_assert_eq(m.n, 0);
	cr_assert_null(m.v);
}

Test(aliasmap, put_copies)
{
	struct aliasmap m = { 0 };
	char addr[] = "shop@example.org", note[] = "note";
	struct alias a = {
		.address = addr, .target = (char *)"t@example.net", .owner = (char *)"o",
		.node = (char *)"n", .note = note,
	};

	aliasmap_put(&m, &a);
	addr[0] = 'x';
	note[0] = 'x';
	cr_assert_not_null(aliasmap_find(&m, "shop@example.org"));
	cr_assert_str_eq(aliasmap_find(&m, "shop@example.org")->note, "note");
	aliasmap_clear(&m);
}

Test(aliasmap, put_many)
{
	struct aliasmap m = { 0 };
	char addr[64];

	for (int i = 999; i >= 0; i--) {
		snprintf(addr, sizeof(addr), "a%04d@example.org", (i * 7919) % 1000);
		put(&m, addr, "t@example.net", "o", ALIAS_ACTIVE, i, "");
	}
	cr_assert_eq(m.n, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "a%04d@example.org", i);
		cr_assert_not_null(aliasmap_find(&m, addr), "%s", addr);
		cr_assert_str_eq(m.v[i].address, addr);
	}
	aliasmap_clear(&m);
}

Test(aliasmap, find)
{
	struct aliasmap m;

	sample(&m);
	cr_assert_not_null(aliasmap_find(&m, "shop@example.org"));
	cr_assert_not_null(aliasmap_find(&m, "old@example.org"), "deleted ones are kept");
	cr_assert_null(aliasmap_find(&m, "shop@example.net"));
	cr_assert_null(aliasmap_find(&m, "shop"));
	cr_assert_null(aliasmap_find(&m, ""));
	struct aliasmap empty = { 0 };
	cr_assert_null(aliasmap_find(&empty, "shop@example.org"));
	aliasmap_clear(&m);
}

Test(aliasmap, find_local)
{
	struct aliasmap m = { 0 };
	const struct alias *a;

	put(&m, "shopping@example.org", "t@example.net", "o", ALIAS_ACTIVE, 1, "");
	cr_assert_null(aliasmap_find_local(&m, "shop"), "prefix of another name");
	put(&m, "shop@example.net", "t@example.net", "o", ALIAS_ACTIVE, 1, "");
	a = aliasmap_find_local(&m, "shop");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->address, "shop@example.net");
	cr_assert_null(aliasmap_find_local(&m, "hop"));
	cr_assert_null(aliasmap_find_local(&m, "shop@example.net"));
	cr_assert_not_null(aliasmap_find_local(&m, "shopping"));
	aliasmap_clear(&m);
}

Test(aliasmap, count_owner)
{
	struct aliasmap m;

	sample(&m);
	/* alice: shop (active) counts, old (deleted) does not. */
	cr_assert_eq(aliasmap_count_owner(&m, "alice"), 1);
	/* bob: news is disabled, which still counts. */
	cr_assert_eq(aliasmap_count_owner(&m, "bob"), 1);
	cr_assert_eq(aliasmap_count_owner(&m, "nobody"), 0);
	cr_assert_eq(aliasmap_count_owner(&m, "Alice"), 0, "logins are exact");
	put(&m, "two@example.org", "alice@example.net", "alice", ALIAS_DISABLED, 1, "");
	cr_assert_eq(aliasmap_count_owner(&m, "alice"), 2);
	aliasmap_clear(&m);
}

Test(aliasmap, copy_is_deep)
{
	struct aliasmap m, c, empty = { 0 }, ec;

	sample(&m);
	aliasmap_copy(&c, &m);
	assert_map_eq(&m, &c);
	put(&c, "extra@example.org", "t@example.net", "o", ALIAS_ACTIVE, 1, "");
	{	/* a map's aliases are packed: change one through put */
		struct alias x;

		alias_copy(&x, &c.v[0]);
		free(x.note);
		x.note = xstrdup("changed");
		aliasmap_put(&c, &x);
		alias_clear(&x);
	}
	cr_assert_str_eq(c.v[0].note, "changed");
	cr_assert_eq(m.n, 4);
	cr_assert_null(aliasmap_find(&m, "extra@example.org"));
	cr_assert_str_neq(m.v[0].note, "changed");
	aliasmap_copy(&ec, &empty);
	cr_assert_eq(ec.n, 0);
	put(&ec, "a@example.org", "t@example.net", "o", ALIAS_ACTIVE, 1, "");
	cr_assert_eq(ec.n, 1);
	aliasmap_clear(&ec);
	aliasmap_clear(&c);
	aliasmap_clear(&m);
}

/* ===== render ===== */

Test(aliasmap, render_virtual)
{
	struct aliasmap m;
	char *text;

	sample(&m);
	text = render(&m, MAP_FORMAT_VIRTUAL);
	/* Active aliases, managed or not, have a map line... */
	cr_assert(has_line(text, "shop@example.org alice@example.net"), "%s", text);
	cr_assert(has_line(text, "hand@example.org carol@example.net"), "%s", text);
	/* ...disabled and deleted ones do not, so Postfix does not deliver. */
	cr_assert_null(strstr(text, "\nnews@example.org "), "%s", text);
	cr_assert_null(strstr(text, "\nold@example.org "), "%s", text);
	/* Every managed alias has its metadata line; the hand edit has none. */
	cr_assert_eq(count_lines_starting(text, "#@ "), 3, "%s", text);
	cr_assert_not_null(strstr(text, "#@ address=shop@example.org "));
	cr_assert_not_null(strstr(text, "#@ address=news@example.org "));
	cr_assert_not_null(strstr(text, "#@ address=old@example.org "));
	cr_assert_null(strstr(text, "#@ address=hand@example.org"));
	cr_assert_not_null(strstr(text, "state=disabled"));
	cr_assert_not_null(strstr(text, "state=deleted"));
	/* The metadata line comes right before its entry. */
	const char *meta = strstr(text, "#@ address=shop@example.org ");
	const char *entry = strstr(meta, "\n");
	cr_assert_eq(strncmp(entry + 1, "shop@example.org alice@example.net\n", 35), 0);
	/* The note is encoded, on the one line. */
	cr_assert_not_null(strstr(text, "note=100%25%20gone%20%3D%20deleted"), "%s", text);
	free(text);
	aliasmap_clear(&m);
}

Test(aliasmap, render_aliases)
{
	struct aliasmap m;
	char *text;

	sample(&m);
	text = render(&m, MAP_FORMAT_ALIASES);
	cr_assert(has_line(text, "shop: alice@example.net"), "%s", text);
	cr_assert(has_line(text, "hand: carol@example.net"), "%s", text);
	cr_assert_null(strstr(text, "\nnews:"), "%s", text);
	cr_assert_null(strstr(text, "\nold:"), "%s", text);
	cr_assert_eq(count_lines_starting(text, "#@ "), 3);
	cr_assert_not_null(strstr(text, "#@ address=shop@example.org "),
			   "the domain lives in the metadata");
	free(text);
	aliasmap_clear(&m);
}

Test(aliasmap, render_is_sorted_and_a_map_source)
{
	struct aliasmap m = { 0 };
	char *text, *copy, *save = NULL, *last = NULL;

	put(&m, "zeta@example.org", "z@example.net", "o", ALIAS_ACTIVE, 1, "a note\nwith a line break");
	put(&m, "alpha@example.org", "a@example.net", "o", ALIAS_ACTIVE, 1, "tab\there");
	put(&m, "mid@example.org", "m@example.net", "", ALIAS_ACTIVE, 1, "");
	text = render(&m, MAP_FORMAT_VIRTUAL);
	copy = xstrdup(text);
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cr_assert_null(strchr(line, '\r'));
		if (line[0] == '#')
			continue;
		/* "key value": no indent (a continuation), one key, a value. */
		cr_assert(line[0] != ' ' && line[0] != '\t', "indented: %s", line);
		char *sp = strchr(line, ' ');
		cr_assert_not_null(sp, "no value: %s", line);
		cr_assert_neq(sp[1], '\0');
		*sp = '\0';
		if (last != NULL)
			cr_assert_lt(strcmp(last, line), 0, "%s before %s", last, line);
		last = line;
	}
	cr_assert_str_eq(last, "zeta@example.org");
	free(copy);
	free(text);
	aliasmap_clear(&m);
}

Test(aliasmap, render_empty_map_is_only_comments)
{
	struct aliasmap m = { 0 };
	char *text = render(&m, MAP_FORMAT_VIRTUAL);
	int lines = 0;

	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		cr_assert_eq(*p, '#', "non-comment line in an empty map");
		cr_assert_not_null(strchr(p, '\n'), "unterminated line");
		lines++;
	}
	cr_assert_gt(lines, 0, "the header says what the file is");
	free(text);
}

/* ===== parse ===== */

Test(aliasmap, parse_render_roundtrip_both_formats)
{
	static const enum map_format fmts[] = { MAP_FORMAT_VIRTUAL, MAP_FORMAT_ALIASES };

	for (size_t f = 0; f < N_ELEMENTS(fmts); f++) {
		struct aliasmap m, p;
		char *text, *text2, *err = NULL;

		sample_for(&m, fmts[f]);
		text = render(&m, fmts[f]);
		cr_assert_eq(parse_text(text, fmts[f], &p, &err), 0, "%s", err);
		assert_map_eq(&m, &p);
		text2 = render(&p, fmts[f]);
		cr_assert_str_eq(text2, text, "rendering is canonical");
		free(text);
		free(text2);
		aliasmap_clear(&m);
		aliasmap_clear(&p);
	}
}

Test(aliasmap, parse_hostile_notes)
{
	struct aliasmap m = { 0 }, p;
	char *text, *err = NULL;

	put(&m, "a@example.org", "t@example.net", "o", ALIAS_ACTIVE, 1,
	    "x\nevil@example.org |/bin/sh\n#@ address=evil@example.org target=x@y.z state=active");
	put(&m, "b@example.org", "t@example.net", "owner with spaces", ALIAS_ACTIVE, 1, "\r\n\t%");
	text = render(&m, MAP_FORMAT_VIRTUAL);
	cr_assert_eq(count_lines_starting(text, "#@ "), 2);
	cr_assert_eq(count_lines_starting(text, "evil"), 0, "a note broke out of its line");
	cr_assert_eq(parse_text(text, MAP_FORMAT_VIRTUAL, &p, &err), 0, "%s", err);
	assert_map_eq(&m, &p);
	free(text);
	aliasmap_clear(&m);
	aliasmap_clear(&p);
}

Test(aliasmap, parse_hand_edited_virtual)
{
	const char *text =
		"# my own comment\n"
		"\n"
		"   \t\n"
		"Postmaster@Example.ORG\troot@example.net\n"
		"#@ address=shop@example.org target=alice@example.net owner=alice "
		"state=active created=100 node=a.example.org updated=100 note=hi\n"
		"shop@example.org    alice@example.net\n"
		"list@example.org a@example.net, b@example.net\n"
		"  # an indented comment is a comment\n"
		"crlf@example.org c@example.net\r\n";
	struct aliasmap m;
	const struct alias *a;
	char *err = NULL;

	cr_assert_eq(parse_text(text, MAP_FORMAT_VIRTUAL, &m, &err), 0, "%s", err);
	cr_assert_eq(m.n, 4);
	a = aliasmap_find(&m, "postmaster@example.org");
	cr_assert_not_null(a, "keys folded to lower case, as postmap does");
	cr_assert_str_eq(a->target, "root@example.net");
	cr_assert_str_eq(a->owner, "", "unmanaged");
	cr_assert_eq(a->state, ALIAS_ACTIVE);
	a = aliasmap_find(&m, "shop@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->owner, "alice");
	cr_assert_str_eq(a->note, "hi");
	cr_assert_eq(a->created, 100);
	a = aliasmap_find(&m, "list@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->target, "a@example.net, b@example.net", "hand edits kept verbatim");
	a = aliasmap_find(&m, "crlf@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->target, "c@example.net");
	aliasmap_clear(&m);
}

Test(aliasmap, parse_hand_edited_aliases)
{
	const char *text =
		"#@ address=shop@example.org target=alice@example.net owner=alice "
		"state=active created=1 node=n updated=1 note=\n"
		"Shop: alice@example.net\n"
		"postmaster: root\n"
		"pipe: |/usr/bin/handler\n";
	struct aliasmap m;
	const struct alias *a;
	char *err = NULL, *again;

	cr_assert_eq(parse_text(text, MAP_FORMAT_ALIASES, &m, &err), 0, "%s", err);
	cr_assert_eq(m.n, 3);
	a = aliasmap_find(&m, "shop@example.org");
	cr_assert_not_null(a, "the entry matched its metadata despite the case");
	cr_assert_str_eq(a->owner, "alice");
	cr_assert_null(aliasmap_find_local(&m, "Shop"));
	a = aliasmap_find_local(&m, "postmaster");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->owner, "");
	cr_assert_str_eq(a->target, "root");
	a = aliasmap_find_local(&m, "pipe");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->target, "|/usr/bin/handler", "an admin's own entry is kept");
	again = render(&m, MAP_FORMAT_ALIASES);
	cr_assert(has_line(again, "shop: alice@example.net"), "%s", again);
	cr_assert(has_line(again, "postmaster: root"), "%s", again);
	cr_assert(has_line(again, "pipe: |/usr/bin/handler"), "%s", again);
	free(again);
	aliasmap_clear(&m);
}

Test(aliasmap, parse_disabled_and_deleted_have_no_entry)
{
	struct aliasmap m, p;
	char *text, *err = NULL;

	sample(&m);
	text = render(&m, MAP_FORMAT_VIRTUAL);
	cr_assert_eq(parse_text(text, MAP_FORMAT_VIRTUAL, &p, &err), 0, "%s", err);
	cr_assert_eq(aliasmap_find(&p, "news@example.org")->state, ALIAS_DISABLED);
	cr_assert_eq(aliasmap_find(&p, "old@example.org")->state, ALIAS_DELETED);
	cr_assert_str_eq(aliasmap_find(&p, "old@example.org")->target, "alice@example.net",
			 "the former owner is remembered");
	free(text);
	aliasmap_clear(&m);
	aliasmap_clear(&p);
}

Test(aliasmap, hand_edited_target_shows_in_digest)
{
	struct aliasmap m, p;
	char *text, *edited, *err = NULL, d1[65], d2[65];
	const char *at;

	sample(&m);
	text = render(&m, MAP_FORMAT_VIRTUAL);
	at = strstr(text, "\nshop@example.org alice@example.net\n");
	cr_assert_not_null(at);
	cr_assert_geq(asprintf(&edited, "%.*s\nshop@example.org mallory@example.net\n%s",
			       (int)(at - text), text, at + 36), 0);
	cr_assert_eq(parse_text(edited, MAP_FORMAT_VIRTUAL, &p, &err), 0, "%s", err);
	cr_assert_str_eq(aliasmap_find(&p, "shop@example.org")->target, "mallory@example.net",
			 "the entry, not the metadata, is what Postfix uses");
	cr_assert_str_eq(aliasmap_find(&p, "shop@example.org")->owner, "alice");
	aliasmap_digest(&m, MAP_FORMAT_VIRTUAL, d1);
	aliasmap_digest(&p, MAP_FORMAT_VIRTUAL, d2);
	cr_assert_str_neq(d1, d2, "a hand edit must not be hidden");
	free(text);
	free(edited);
	aliasmap_clear(&m);
	aliasmap_clear(&p);
}

Test(aliasmap, hand_added_entry_for_disabled_alias_is_active)
{
	const char *text =
		"#@ address=news@example.org target=bob@example.net owner=bob "
		"state=disabled created=1 node=n updated=2 note=\n"
		"news@example.org bob@example.net\n";
	struct aliasmap m;

	cr_assert_eq(parse_text(text, MAP_FORMAT_VIRTUAL, &m, NULL), 0);
	cr_assert_eq(m.n, 1);
	cr_assert_eq(m.v[0].state, ALIAS_ACTIVE, "Postfix delivers through it");
	cr_assert_str_eq(m.v[0].owner, "bob");
	aliasmap_clear(&m);
}

Test(aliasmap, metadata_then_unrelated_entry)
{
	const char *text =
		"#@ address=news@example.org target=bob@example.net owner=bob "
		"state=disabled created=1 node=n updated=2 note=\n"
		"other@example.org x@example.net\n";
	struct aliasmap m;
	const struct alias *a;

	cr_assert_eq(parse_text(text, MAP_FORMAT_VIRTUAL, &m, NULL), 0);
	cr_assert_eq(m.n, 2);
	a = aliasmap_find(&m, "news@example.org");
	cr_assert_not_null(a);
	cr_assert_eq(a->state, ALIAS_DISABLED);
	cr_assert_str_eq(a->owner, "bob");
	a = aliasmap_find(&m, "other@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->owner, "", "not adopted by the metadata before it");
	aliasmap_clear(&m);
}

Test(aliasmap, parse_errors_name_the_line)
{
	parse_fails("# ok\n#@ this is not a record\n", MAP_FORMAT_VIRTUAL, 2);
	parse_fails("\n\n#@ address=bad target=t@example.net state=active\n",
		    MAP_FORMAT_VIRTUAL, 3);
	parse_fails("#@ address=a@example.org target=|/bin/sh state=active\n",
		    MAP_FORMAT_VIRTUAL, 1);
	parse_fails("#@ address=a@example.org target=t@example.net state=frozen\n",
		    MAP_FORMAT_VIRTUAL, 1);
	parse_fails("a@example.org t@example.net\nkeyonly@example.org\n",
		    MAP_FORMAT_VIRTUAL, 2);
	parse_fails("a@example.org   \n", MAP_FORMAT_VIRTUAL, 1);
	parse_fails("shop alice@example.net\n", MAP_FORMAT_ALIASES, 1);
	parse_fails("shop:\n", MAP_FORMAT_ALIASES, 1);
	/* no owner: it would be written back as a hand entry, which the next
	 * read joins to the "#@" line before it (found by fuzz_map) */
	parse_fails("#@ address=a@example.org target=t@example.net state=active\n"
		    "a@example.org t@example.net\n", MAP_FORMAT_VIRTUAL, 1);
}

/* A hand edit as an administrator writes it: an entry continued on an
 * indented line (which postmap and postalias accept), comments and blank
 * lines between, and a managed alias after it. */
static const char hand_virtual[] =
	"# my own entries\n"
	"hand2@example.org bob@example.net,\n"
	"\talice@example.net\n"
	"\n"
	"   # an indented comment inside the entry\n"
	"  carol@example.net\n"
	"#@ address=shop@example.org target=alice@example.net owner=alice "
	"state=active created=100 node=a.example.org updated=100 note=hi\n"
	"    dave@example.net\n"
	"shop@example.org alice@example.net\n"
	"list@example.org\n"
	"  a@example.net, b@example.net\n";

static const char hand_aliases[] =
	"# my own entries\n"
	"hand2: bob@example.net,\n"
	"\talice@example.net\n"
	"\n"
	"  carol@example.net\n"
	"#@ address=shop@example.org target=alice@example.net owner=alice "
	"state=active created=100 node=a.example.org updated=100 note=hi\n"
	"shop: alice@example.net\n"
	"team : a@example.net,\n"
	" b@example.net\n";

Test(aliasmap, continuation_lines_joined_as_postfix_does)
{
	struct aliasmap m;
	const struct alias *a;
	char *err = NULL;

	cr_assert_eq(parse_text(hand_virtual, MAP_FORMAT_VIRTUAL, &m, &err), 0, "%s", err);
	cr_assert_eq(m.n, 3);
	a = aliasmap_find(&m, "hand2@example.org");
	cr_assert_not_null(a);
	/* readlline appends a continuation line as it is, without the
	 * newline; a comment or a "#@" line in between does not end it */
	cr_assert_str_eq(a->target, "bob@example.net,\talice@example.net  carol@example.net"
			 "    dave@example.net");
	cr_assert_str_eq(a->owner, "");
	a = aliasmap_find(&m, "shop@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->owner, "alice", "the metadata inside the entry still counts");
	cr_assert_str_eq(a->note, "hi");
	a = aliasmap_find(&m, "list@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->target, "a@example.net, b@example.net", "a key alone, value below");
	aliasmap_clear(&m);

	cr_assert_eq(parse_text(hand_aliases, MAP_FORMAT_ALIASES, &m, &err), 0, "%s", err);
	cr_assert_eq(m.n, 3);
	a = aliasmap_find_local(&m, "hand2");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->target, "bob@example.net,\talice@example.net  carol@example.net");
	a = aliasmap_find(&m, "shop@example.org");
	cr_assert_not_null(a);
	cr_assert_str_eq(a->owner, "alice");
	a = aliasmap_find_local(&m, "team");
	cr_assert_not_null(a, "\"key : value\", as postalias reads it");
	cr_assert_str_eq(a->target, "a@example.net, b@example.net");
	aliasmap_clear(&m);
}

Test(aliasmap, continuation_lines_errors)
{
	/* Postfix drops a first line that starts with a blank (with a
	 * warning): refused, so that no text is dropped without a word. */
	parse_fails("  a@example.org b@example.net\n", MAP_FORMAT_VIRTUAL, 1);
	parse_fails("# c\n\n\tx@example.org y@example.net\n", MAP_FORMAT_VIRTUAL, 3);
	/* A managed alias has one target: a continued one is a hand edit
	 * that must be reported, naming the line the entry starts on. */
	parse_fails("#@ address=shop@example.org target=alice@example.net owner=alice "
		    "state=active created=1 node=n updated=1 note=\n"
		    "shop@example.org alice@example.net,\n"
		    " mallory@example.net\n", MAP_FORMAT_VIRTUAL, 2);
	parse_fails("a: b@example.net,\n c@example.net\nkeyonly\n", MAP_FORMAT_ALIASES, 3);
	parse_fails("a@example.org t@example.net\n  \r\n b\rc\n", MAP_FORMAT_VIRTUAL, 3);
}

/* The daemon rewrites the file from memory when an alias changes: a hand
 * entry written on several lines survives that, as one line with the very
 * value Postfix read; an append leaves the hand text as it is. */
Test(aliasmap, hand_continuation_survives_save_and_append)
{
	static const enum map_format fmts[] = { MAP_FORMAT_VIRTUAL, MAP_FORMAT_ALIASES };

	for (size_t f = 0; f < N_ELEMENTS(fmts); f++) {
		enum map_format fmt = fmts[f];
		const char *text = fmt == MAP_FORMAT_VIRTUAL ? hand_virtual : hand_aliases;
		char *path = ut_write(dir, "aliases", text), *again, *err = NULL, *after;
		struct aliasmap m, p;
		struct alias news = {
			.address = "news@example.org", .target = "bob@example.net",
			.owner = "bob", .state = ALIAS_ACTIVE, .created = 5, .node = "n",
			.updated = 5, .note = "",
		};

		cr_assert_eq(aliasmap_load(path, fmt, &m, &err), 0, "%s", err);
		again = render(&m, fmt);
		cr_assert(has_line(again, fmt == MAP_FORMAT_VIRTUAL ?
				   "hand2@example.org bob@example.net,\talice@example.net  "
				   "carol@example.net    dave@example.net" :
				   "hand2: bob@example.net,\talice@example.net  carol@example.net"),
			  "%s", again);
		cr_assert_eq(parse_text(again, fmt, &p, &err), 0, "%s", err);
		assert_map_eq(&m, &p);
		aliasmap_clear(&p);
		free(again);

		cr_assert_eq(aliasmap_append(path, fmt, &news, NULL, &err), 0, "%s", err);
		after = ut_slurp(path);
		cr_assert_eq(strncmp(after, text, strlen(text)), 0, "append changed the hand text");
		free(after);
		aliasmap_put(&m, &news);
		cr_assert_eq(aliasmap_load(path, fmt, &p, &err), 0, "%s", err);
		assert_map_eq(&m, &p);
		aliasmap_clear(&p);

		cr_assert_eq(aliasmap_save(path, fmt, &m, NULL, NULL, NULL, &err), 0, "%s", err);
		cr_assert_eq(aliasmap_load(path, fmt, &p, &err), 0, "%s", err);
		assert_map_eq(&m, &p);
		aliasmap_clear(&p);
		aliasmap_clear(&m);
		free(path);
	}
}

Test(aliasmap, parse_respects_len_and_empty)
{
	const char *text = "a@example.org t@example.net\nb@example.org t@example.net\n";
	struct aliasmap m;

	cr_assert_eq(aliasmap_parse(text, 28, MAP_FORMAT_VIRTUAL, &m, NULL), 0);
	cr_assert_eq(m.n, 1);
	aliasmap_clear(&m);
	cr_assert_eq(aliasmap_parse("", 0, MAP_FORMAT_VIRTUAL, &m, NULL), 0);
	cr_assert_eq(m.n, 0);
	aliasmap_clear(&m);
	cr_assert_eq(parse_text("x@x.org t@example.net", MAP_FORMAT_VIRTUAL, &m, NULL), 0);
	cr_assert_eq(m.n, 1, "the last line needs no newline");
	aliasmap_clear(&m);
}

/* ===== digest ===== */

Test(aliasmap, digest_is_sha256_of_rendering)
{
	struct aliasmap m;
	unsigned char md[32];
	char hex[65], want[65];
	char *text;

	sample(&m);
	text = render(&m, MAP_FORMAT_VIRTUAL);
	cr_assert_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, text, strlen(text), md), 0);
	for (int i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	aliasmap_digest(&m, MAP_FORMAT_VIRTUAL, hex);
	cr_assert_eq(strlen(hex), 64);
	cr_assert_str_eq(hex, want);
	for (int i = 0; i < 64; i++)
		cr_assert((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	free(text);
	aliasmap_clear(&m);
}

Test(aliasmap, digest_independent_of_insertion_order)
{
	struct aliasmap a = { 0 }, b = { 0 };
	char da[65], db[65];

	put(&a, "x@example.org", "t@example.net", "o", ALIAS_ACTIVE, 1, "");
	put(&a, "y@example.org", "t@example.net", "o", ALIAS_DISABLED, 2, "n");
	put(&a, "z@example.org", "t@example.net", "", ALIAS_ACTIVE, 3, "");
	put(&b, "z@example.org", "t@example.net", "", ALIAS_ACTIVE, 3, "");
	put(&b, "x@example.org", "t@example.net", "o", ALIAS_ACTIVE, 1, "");
	put(&b, "y@example.org", "t@example.net", "o", ALIAS_DISABLED, 2, "n");
	aliasmap_digest(&a, MAP_FORMAT_VIRTUAL, da);
	aliasmap_digest(&b, MAP_FORMAT_VIRTUAL, db);
	cr_assert_str_eq(da, db);
	aliasmap_clear(&a);
	aliasmap_clear(&b);
}

Test(aliasmap, digest_changes_with_every_field)
{
	struct aliasmap base;
	char d0[65], d[65];

	sample(&base);
	aliasmap_digest(&base, MAP_FORMAT_VIRTUAL, d0);
	for (int field = 0; field < 7; field++) {
		struct aliasmap m;
		struct alias x, *a = &x;

		aliasmap_copy(&m, &base);
		alias_copy(&x, aliasmap_find(&m, "shop@example.org"));
		switch (field) {
		case 0: free(a->target); a->target = xstrdup("zed@example.net"); break;
		case 1: free(a->owner); a->owner = xstrdup("zed"); break;
		case 2: a->state = ALIAS_DISABLED; break;
		case 3: a->created++; break;
		case 4: free(a->node); a->node = xstrdup("b.example.org"); break;
		case 5: a->updated++; break;
		case 6: free(a->note); a->note = xstrdup("other note"); break;
		}
		aliasmap_put(&m, &x);
		alias_clear(&x);
		aliasmap_digest(&m, MAP_FORMAT_VIRTUAL, d);
		cr_assert_str_neq(d, d0, "field %d does not affect the digest", field);
		aliasmap_clear(&m);
	}
	aliasmap_digest(&base, MAP_FORMAT_ALIASES, d);
	cr_assert_str_neq(d, d0, "the formats render differently");
	aliasmap_clear(&base);
}

Test(aliasmap, digest_of_empty_map)
{
	struct aliasmap m = { 0 };
	char a[65], b[65];

	aliasmap_digest(&m, MAP_FORMAT_VIRTUAL, a);
	aliasmap_digest(&m, MAP_FORMAT_VIRTUAL, b);
	cr_assert_eq(strlen(a), 64);
	cr_assert_str_eq(a, b);
	cr_assert_str_neq(a, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			  "the header is part of the rendering");
}

/* ===== save and load ===== */

Test(aliasmap, save_load_roundtrip)
{
	struct aliasmap m, l;
	char *path = ut_path(dir, "aliases"), *err = NULL, *text, *onfile;
	struct stat st;

	sample(&m);
	umask(077);
	cr_assert_eq(aliasmap_save(path, MAP_FORMAT_VIRTUAL, &m, NULL, NULL, NULL, &err), 0, "%s", err);
	umask(022);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644, "Postfix must read it: mode %o",
		     st.st_mode & 07777);
	text = render(&m, MAP_FORMAT_VIRTUAL);
	onfile = ut_slurp(path);
	cr_assert_str_eq(onfile, text, "the file is the canonical rendering");
	cr_assert_eq(ut_count_entries(dir), 1, "temporary file left behind");
	cr_assert_eq(aliasmap_load(path, MAP_FORMAT_VIRTUAL, &l, &err), 0, "%s", err);
	assert_map_eq(&m, &l);
	free(text);
	free(onfile);
	free(path);
	aliasmap_clear(&m);
	aliasmap_clear(&l);
}

/* A create appends its record; the file then loads as the same map (the
 * digest is of the canonical rendering, so the order on file does not
 * matter) and stays a map source postmap accepts. */
Test(aliasmap, append_then_load_is_the_same_map)
{
	struct aliasmap m, l;
	char *path = ut_path(dir, "aliases"), *err = NULL, *onfile;
	char d1[65], d2[65];

	sample(&m);
	cr_assert_eq(aliasmap_save(path, MAP_FORMAT_VIRTUAL, &m, NULL, NULL, NULL, &err), 0, "%s", err);
	put(&m, "aaa-first@example.org", "carol@example.net", "carol", ALIAS_ACTIVE,
	    1700000300, "sorts first, appended last");
	cr_assert_eq(aliasmap_append(path, MAP_FORMAT_VIRTUAL,
				     aliasmap_find(&m, "aaa-first@example.org"), NULL, &err), 0, "%s", err);
	onfile = ut_slurp(path);
	cr_assert(has_line(onfile, "aaa-first@example.org carol@example.net"), "%s", onfile);
	cr_assert_eq(onfile[strlen(onfile) - 1], '\n');
	cr_assert_eq(aliasmap_load(path, MAP_FORMAT_VIRTUAL, &l, &err), 0, "%s", err);
	assert_map_eq(&m, &l);
	aliasmap_digest(&m, MAP_FORMAT_VIRTUAL, d1);
	aliasmap_digest(&l, MAP_FORMAT_VIRTUAL, d2);
	cr_assert_str_eq(d1, d2);
	cr_assert_eq(ut_count_entries(dir), 1, "temporary file left behind");
	free(onfile);
	free(path);
	aliasmap_clear(&m);
	aliasmap_clear(&l);
}

Test(aliasmap, append_to_missing_file_fails_and_creates_nothing)
{
	struct aliasmap m;
	char *path = ut_path(dir, "never-written"), *err = NULL;

	sample(&m);
	cr_assert_eq(aliasmap_append(path, MAP_FORMAT_VIRTUAL, &m.v[0], NULL, &err), -1);
	cr_assert_not_null(err);
	cr_assert(strstr(err, "never-written") != NULL, "%s", err);
	cr_assert_eq(ut_count_entries(dir), 0);
	free(err);
	free(path);
	aliasmap_clear(&m);
}

Test(aliasmap, load_absent_is_empty)
{
	struct aliasmap m;
	char *path = ut_path(dir, "never-written"), *err = NULL;

	memset(&m, 0x5a, sizeof(m));
	cr_assert_eq(aliasmap_load(path, MAP_FORMAT_VIRTUAL, &m, &err), 0);
	cr_assert_eq(m.n, 0);
	cr_assert_null(m.v);
	cr_assert_null(err);
	free(path);
}

Test(aliasmap, load_error_names_file_and_line)
{
	char *path = ut_write(dir, "broken", "# fine\nfine@example.org t@example.net\n#@ junk\n");
	struct aliasmap m;
	char *err = NULL;

	cr_assert_eq(aliasmap_load(path, MAP_FORMAT_VIRTUAL, &m, &err), -1);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "line 3"), "%s", err);
	cr_assert_eq(m.n, 0);
	free(err);
	free(path);
}

Test(aliasmap, load_unreadable_is_an_error)
{
	struct aliasmap m;
	char *err = NULL;

	cr_assert_eq(aliasmap_load(dir, MAP_FORMAT_VIRTUAL, &m, &err), -1, "a directory");
	cr_assert_not_null(err);
	free(err);
}

Test(aliasmap, save_into_missing_directory_fails)
{
	struct aliasmap m;
	char *path = ut_path(dir, "missing/aliases"), *err = NULL;

	sample(&m);
	cr_assert_eq(aliasmap_save(path, MAP_FORMAT_VIRTUAL, &m, NULL, NULL, NULL, &err), -1);
	cr_assert_not_null(err);
	free(err);
	free(path);
	aliasmap_clear(&m);
}

/* ===== Postfix accepts the file unchanged (contract §8) ===== */

static void
postfix_check(enum map_format fmt, const char *tool)
{
	char *path = ut_path(dir, "aliases"), cmd[1024], out[256];
	const char *active_key = fmt == MAP_FORMAT_ALIASES ? "shop" : "shop@example.org";
	const char *disabled_key = fmt == MAP_FORMAT_ALIASES ? "news" : "news@example.org";
	const char *deleted_key = fmt == MAP_FORMAT_ALIASES ? "old" : "old@example.org";
	struct aliasmap m;

	if (access(tool, X_OK) != 0)
		cr_skip_test("%s not available", tool);
	ut_postfix_conf(dir, "");
	sample_for(&m, fmt);
	cr_assert_eq(aliasmap_save(path, fmt, &m, NULL, NULL, NULL, NULL), 0);
	snprintf(cmd, sizeof(cmd), "%s -c %s hash:%s 2>&1", tool, dir, path);
	cr_assert_eq(ut_run(out, sizeof(out), "%s", cmd), 0, "%s refused the file: %s", tool, out);
	cr_assert_eq(out[0], '\0', "%s warned: %s", tool, out);
	snprintf(cmd, sizeof(cmd), "%s -c %s -q %s hash:%s", tool, dir, active_key, path);
	cr_assert_eq(ut_run(out, sizeof(out), "%s", cmd), 0, "active alias not found");
	cr_assert_str_eq(out, "alice@example.net");
	snprintf(cmd, sizeof(cmd), "%s -c %s -q %s hash:%s", tool, dir,
		 fmt == MAP_FORMAT_ALIASES ? "hand" : "hand@example.org", path);
	cr_assert_eq(ut_run(out, sizeof(out), "%s", cmd), 0, "hand-edited alias not found");
	cr_assert_str_eq(out, "carol@example.net");
	snprintf(cmd, sizeof(cmd), "%s -c %s -q %s hash:%s", tool, dir, disabled_key, path);
	cr_assert_eq(ut_run(out, sizeof(out), "%s", cmd), 1, "a disabled alias resolves: %s", out);
	snprintf(cmd, sizeof(cmd), "%s -c %s -q %s hash:%s", tool, dir, deleted_key, path);
	cr_assert_eq(ut_run(out, sizeof(out), "%s", cmd), 1, "a deleted alias resolves: %s", out);
	free(path);
	aliasmap_clear(&m);
}

Test(aliasmap, postmap_accepts_virtual_format)
{
	postfix_check(MAP_FORMAT_VIRTUAL, "/usr/sbin/postmap");
}

Test(aliasmap, postalias_accepts_aliases_format)
{
	postfix_check(MAP_FORMAT_ALIASES, "/usr/sbin/postalias");
}

/* addresses - the addresses of a map value, as Postfix splits it (at
 * commas and blanks), joined by single blanks */
static void
addresses(const char *value, char *out, size_t outsz)
{
	char *copy = xstrdup(value), *save = NULL;

	out[0] = '\0';
	for (char *t = strtok_r(copy, ", \t\r\n", &save); t; t = strtok_r(NULL, ", \t\r\n", &save)) {
		if (out[0] != '\0')
			strncat(out, " ", outsz - strlen(out) - 1);
		strncat(out, t, outsz - strlen(out) - 1);
	}
	free(copy);
}

/* same_as_postfix - the parser and the real tool read the same file into
 * the same map: every key the tool holds, with the same addresses */
static void
same_as_postfix(const char *text, enum map_format fmt, const char *tool)
{
	char *path = ut_write(dir, "aliases", text), *err = NULL, out[4096], *save = NULL;
	char ours[1024], theirs[1024];
	struct aliasmap m;
	size_t keys = 0;

	if (access(tool, X_OK) != 0)
		cr_skip_test("%s not available", tool);
	ut_postfix_conf(dir, "");
	cr_assert_eq(aliasmap_load(path, fmt, &m, &err), 0, "%s", err);
	cr_assert_eq(ut_run(out, sizeof(out), "%s -c %s hash:%s 2>&1", tool, dir, path), 0,
		     "%s refused the file: %s", tool, out);
	cr_assert_eq(out[0], '\0', "%s warned: %s", tool, out);
	for (size_t i = 0; i < m.n; i++) {
		char *key = alias_map_key(&m.v[i], fmt);

		cr_assert_eq(ut_run(out, sizeof(out), "%s -c %s -q '%s' hash:%s", tool, dir,
				    key, path), 0, "%s does not know %s", tool, key);
		addresses(out, theirs, sizeof(theirs));
		addresses(m.v[i].target, ours, sizeof(ours));
		cr_assert_str_eq(ours, theirs, "%s: we read \"%s\", %s \"%s\"", key,
				 m.v[i].target, tool, out);
		free(key);
	}
	/* and no key that we do not know (postalias adds "@" and YP_*) */
	cr_assert_eq(ut_run(out, sizeof(out), "%s -c %s -s hash:%s", tool, dir, path), 0);
	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (strncmp(l, "@:", 2) != 0 && strncmp(l, "YP_", 3) != 0)
			keys++;
	cr_assert_eq(keys, m.n, "%s holds %zu keys, the parser read %zu", tool, keys, m.n);
	aliasmap_clear(&m);
	free(path);
}

Test(aliasmap, postmap_reads_hand_edits_as_the_parser_does)
{
	same_as_postfix(hand_virtual, MAP_FORMAT_VIRTUAL, "/usr/sbin/postmap");
}

Test(aliasmap, postalias_reads_hand_edits_as_the_parser_does)
{
	same_as_postfix(hand_aliases, MAP_FORMAT_ALIASES, "/usr/sbin/postalias");
}

/* ===== lifetimes (issue #13) ===== */

/* expiring - sample() plus an active alias with a lifetime and one that
 * expired */
static void
expiring(struct aliasmap *m)
{
	struct alias a = {
		.address = "trial@example.org", .target = "alice@example.net",
		.owner = "alice", .state = ALIAS_ACTIVE, .created = 1700000000,
		.node = "a.example.org", .updated = 1700000000, .note = "one month",
		.expires = 1700000000 + 30 * 86400, .lifetime = 30 * 86400,
	};

	sample(m);
	aliasmap_put(m, &a);
	a.address = "gone@example.org";
	a.state = ALIAS_DISABLED;
	a.updated = a.expires + 3;
	aliasmap_put(m, &a);
}

Test(aliasmap, lifetime_survives_the_file_and_the_wire)
{
	for (int f = 0; f < 2; f++) {
		enum map_format fmt = f ? MAP_FORMAT_ALIASES : MAP_FORMAT_VIRTUAL;
		struct aliasmap m, back = { 0 };
		char *text, *err = NULL;

		expiring(&m);
		text = render(&m, fmt);
		cr_assert(strstr(text, "expires=1702592000") != NULL, "%s", text);
		cr_assert(strstr(text, "lifetime=2592000") != NULL, "%s", text);
		cr_assert_eq(parse_text(text, fmt, &back, &err), 0, "%s", err);
		for (size_t i = 0; i < m.n; i++) {
			const struct alias *x = aliasmap_find(&back, m.v[i].address);

			if (fmt == MAP_FORMAT_ALIASES && m.v[i].owner[0] == '\0')
				continue;	/* unmanaged: no domain in this format */
			cr_assert_not_null(x, "%s", m.v[i].address);
			cr_assert_eq(x->expires, m.v[i].expires, "%s", x->address);
			cr_assert_eq(x->lifetime, m.v[i].lifetime, "%s", x->address);
		}
		free(text);
		aliasmap_clear(&back);
		aliasmap_clear(&m);
	}
	{
		struct aliasmap m;
		struct alias y;
		struct msg rec = { 0 };

		expiring(&m);
		alias_to_msg(aliasmap_find(&m, "trial@example.org"), &rec);
		cr_assert_eq(alias_from_msg(&rec, &y, NULL), 0);
		assert_alias_eq(&y, aliasmap_find(&m, "trial@example.org"));
		alias_clear(&y);
		msg_clear(&rec);
		aliasmap_clear(&m);
	}
}

Test(aliasmap, no_lifetime_no_new_keys)
{
	/* An alias without a lifetime renders as it always did, so maps
	 * written before lifetimes keep their digest. */
	struct aliasmap m;
	struct msg rec = { 0 };
	char *text;

	sample(&m);
	text = render(&m, MAP_FORMAT_VIRTUAL);
	cr_assert_null(strstr(text, "expires="), "%s", text);
	cr_assert_null(strstr(text, "lifetime="), "%s", text);
	alias_to_msg(&m.v[0], &rec);
	cr_assert_null(msg_get(&rec, "expires"));
	cr_assert_null(msg_get(&rec, "lifetime"));
	msg_clear(&rec);
	free(text);
	aliasmap_clear(&m);
}

Test(aliasmap, access_line_says_expired)
{
	struct aliasmap m;
	struct buf b = { 0 };

	expiring(&m);
	cr_assert_eq(alias_access_line(aliasmap_find(&m, "trial@example.org"), &b), 0);
	cr_assert(alias_expired(aliasmap_find(&m, "gone@example.org")));
	cr_assert_eq(alias_access_line(aliasmap_find(&m, "gone@example.org"), &b), 1);
	cr_assert_str_eq(b.data, "gone@example.org 550 5.1.1 This alias has expired\n");
	buf_reset(&b);
	/* disabled by its owner before its time: the old text */
	cr_assert_not(alias_expired(aliasmap_find(&m, "news@example.org")));
	alias_access_line(aliasmap_find(&m, "news@example.org"), &b);
	cr_assert_str_eq(b.data, "news@example.org 550 5.1.1 This alias was disabled by "
			 "its owner\n");
	buf_free(&b);
	aliasmap_clear(&m);
}
