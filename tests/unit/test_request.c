/* test_request.c - unit tests for common/request.c: RFC 2047 subject
 * decoding, verb parsing and the alias name rules of contract §4. */
#include "config.h"

#include <sys/random.h>

#include "unit.h"
#include "request.h"

static struct strlist domains;

static void
setup(void)
{
	memset(&domains, 0, sizeof(domains));
	strlist_add(&domains, "example.org");
	strlist_add(&domains, "example.net");
}

static void
teardown(void)
{
	strlist_clear(&domains);
}

TestSuite(request, .init = setup, .fini = teardown);

/* parse_ok - parse subject, which must succeed */
static void
parse_ok(const char *subject, struct request *req)
{
	char *err = NULL;
	int rc = request_parse(subject, "example.org", &domains, req, &err);

	cr_assert_eq(rc, 0, "\"%s\" refused: %s", subject, err ? err : "(no reason)");
	free(err);
}

/* parse_err - parse subject, which must fail; returns the reason */
static char *
parse_err(const char *subject)
{
	struct request req;
	char *err = NULL;
	int rc;

	memset(&req, 0x5a, sizeof(req));
	rc = request_parse(subject, "example.org", &domains, &req, &err);
	cr_assert_eq(rc, -1, "\"%s\" accepted", subject);
	cr_assert_null(req.name, "name left set after \"%s\"", subject);
	cr_assert_null(req.domain, "domain left set after \"%s\"", subject);
	cr_assert_null(req.note, "note left set after \"%s\"", subject);
	ut_assert_reply_safe(err);
	return err;
}

/* refused - parse_err, and the reason contains want */
static void
refused(const char *subject, const char *want)
{
	char *err = parse_err(subject);

	cr_assert_not_null(strstr(err, want), "\"%s\": reason \"%s\" lacks \"%s\"",
			   subject, err, want);
	free(err);
}

/* expect_new - subject is "new" of name@domain with note */
static void
expect_new(const char *subject, const char *name, const char *domain,
	   const char *note)
{
	struct request req;

	parse_ok(subject, &req);
	cr_assert_eq(req.verb, VERB_NEW, "\"%s\": verb %d", subject, req.verb);
	cr_assert_str_eq(req.name, name, "\"%s\"", subject);
	cr_assert_str_eq(req.domain, domain, "\"%s\"", subject);
	cr_assert_str_eq(req.note, note, "\"%s\"", subject);
	request_clear(&req);
}

/* decode_ok - decode raw, which must succeed and give want */
static void
decode_ok(const char *raw, const char *want)
{
	char *out = (char *)"unset", *err = NULL;
	int rc = request_decode_subject(raw, &out, &err);

	cr_assert_eq(rc, 0, "\"%s\" refused: %s", raw, err ? err : "");
	cr_assert_not_null(out);
	cr_assert_str_eq(out, want, "decoding \"%s\"", raw);
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		cr_assert(*p >= 0x20 && *p <= 0x7e, "byte 0x%02x in \"%s\"", *p, out);
	free(out);
	free(err);
}

/* decode_err - decode raw, which must fail with a reason containing want */
static void
decode_err(const char *raw, const char *want)
{
	char *out = (char *)"unset", *err = NULL;
	int rc = request_decode_subject(raw, &out, &err);

	cr_assert_eq(rc, -1, "\"%s\" accepted as \"%s\"", raw, rc == 0 ? out : "");
	cr_assert_null(out, "*out_r set on failure");
	ut_assert_reply_safe(err);
	if (want != NULL)
		cr_assert_not_null(strstr(err, want), "\"%s\": reason \"%s\" lacks \"%s\"",
				   raw, err, want);
	free(err);
}

/* repeat - c n times, caller frees */
static char *
repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ===== request_parse: the verbs ===== */

Test(request, new_with_note)
{
	expect_new("new shop-amazon orders", "shop-amazon", "example.org", "orders");
}

Test(request, new_a_b_is_alias_a_note_b)
{
	expect_new("new a b", "a", "example.org", "b");
}

Test(request, new_without_note)
{
	expect_new("new shop", "shop", "example.org", "");
	expect_new("new shop   ", "shop", "example.org", "");
}

Test(request, new_note_is_the_rest_of_the_line)
{
	expect_new("new shop my orders  from\tthe web", "shop", "example.org",
		   "my orders  from\tthe web");
	expect_new("  new   shop   padded note   ", "shop", "example.org", "padded note");
	expect_new("new shop 100% \"real\" | note", "shop", "example.org",
		   "100% \"real\" | note");
}

Test(request, tab_separates_words)
{
	expect_new("new\tshop\tnote", "shop", "example.org", "note");
}

Test(request, lone_name_means_new)
{
	expect_new("shop", "shop", "example.org", "");
	expect_new("  Shop.2024  ", "shop.2024", "example.org", "");
	expect_new("shop@example.net", "shop", "example.net", "");
}

Test(request, several_words_without_verb_refused)
{
	refused("Foo bar", "unknown command");
	refused("shop orders", "unknown command");
	refused("create shop", "unknown command");
	refused("news shop", "unknown command");
}

Test(request, verbs_are_case_insensitive)
{
	static const struct {
		const char *subject;
		enum request_verb verb;
	} cases[] = {
		{ "NEW shop", VERB_NEW },
		{ "New shop", VERB_NEW },
		{ "DISABLE shop", VERB_DISABLE },
		{ "Disable shop", VERB_DISABLE },
		{ "ENABLE shop", VERB_ENABLE },
		{ "eNaBlE shop", VERB_ENABLE },
		{ "DELETE shop", VERB_DELETE },
		{ "DeLeTe shop", VERB_DELETE },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct request req;

		parse_ok(cases[i].subject, &req);
		cr_assert_eq(req.verb, cases[i].verb, "\"%s\"", cases[i].subject);
		cr_assert_str_eq(req.name, "shop");
		cr_assert_str_eq(req.domain, "example.org");
		request_clear(&req);
	}
}

Test(request, list)
{
	static const char *const ok[] = { "list", "LIST", "List", "  list  ", "\tlist" };

	for (size_t i = 0; i < N_ELEMENTS(ok); i++) {
		struct request req;

		parse_ok(ok[i], &req);
		cr_assert_eq(req.verb, VERB_LIST, "\"%s\"", ok[i]);
		cr_assert_null(req.name);
		cr_assert_null(req.domain);
		request_clear(&req);
	}
}

Test(request, list_with_arguments_refused)
{
	refused("list shop", "list");
	refused("list all my aliases", "list");
	refused("LIST x", "list");
}

Test(request, disable_enable_delete_take_one_name)
{
	static const struct {
		const char *verb;
		enum request_verb v;
	} verbs[] = {
		{ "disable", VERB_DISABLE },
		{ "enable", VERB_ENABLE },
		{ "delete", VERB_DELETE },
	};

	for (size_t i = 0; i < N_ELEMENTS(verbs); i++) {
		char subject[100];
		struct request req;

		snprintf(subject, sizeof(subject), "%s shop", verbs[i].verb);
		parse_ok(subject, &req);
		cr_assert_eq(req.verb, verbs[i].v);
		cr_assert_str_eq(req.name, "shop");
		cr_assert_str_eq(req.domain, "example.org");
		request_clear(&req);

		snprintf(subject, sizeof(subject), "%s shop@Example.NET", verbs[i].verb);
		parse_ok(subject, &req);
		cr_assert_str_eq(req.name, "shop");
		cr_assert_str_eq(req.domain, "example.net");
		request_clear(&req);

		snprintf(subject, sizeof(subject), "%s", verbs[i].verb);
		refused(subject, "needs an alias name");
		snprintf(subject, sizeof(subject), "%s   ", verbs[i].verb);
		refused(subject, "needs an alias name");
		snprintf(subject, sizeof(subject), "%s shop extra", verbs[i].verb);
		refused(subject, "exactly one");
		snprintf(subject, sizeof(subject), "%s a b c", verbs[i].verb);
		refused(subject, "exactly one");
	}
}

Test(request, verbs_need_a_name)
{
	/* "new" alone was refused like these; it now asks for a generated
	 * name (request, generate_*). */
	refused("disable", "needs an alias name");
	refused("ENABLE  ", "needs an alias name");
	refused("delete", "needs an alias name");
}

Test(request, verb_words_are_valid_names)
{
	expect_new("new list", "list", "example.org", "");
	expect_new("new delete note", "delete", "example.org", "note");
}

Test(request, empty_subject_refused)
{
	refused("", "empty");
	refused("   ", "empty");
	refused("\t \t", "empty");
}

/* ===== request_parse: domains ===== */

Test(request, served_domain_accepted)
{
	expect_new("new shop@example.net", "shop", "example.net", "");
	expect_new("new shop@example.org note", "shop", "example.org", "note");
	expect_new("new Shop@EXAMPLE.Net", "shop", "example.net", "");
}

Test(request, default_domain_is_lowercased)
{
	struct request req;
	char *err = NULL;

	cr_assert_eq(request_parse("new shop", "Example.ORG", &domains, &req, &err), 0);
	cr_assert_str_eq(req.domain, "example.org");
	request_clear(&req);
	free(err);
}

Test(request, unserved_domain_refused)
{
	refused("new shop@evil.com", "not served");
	refused("shop@evil.com", "not served");
	refused("disable shop@example.org.evil.com", "not served");
	refused("new shop@org", "not served");
	refused("new shop@", "not served");
}

Test(request, more_than_one_at_refused)
{
	refused("new a@b@example.org", "more than one");
	refused("new a@example.org@example.org", "more than one");
	refused("delete @@example.org", "more than one");
}

Test(request, empty_local_part_refused)
{
	refused("new @example.org", "empty");
}

/* ===== request_parse: name rules ===== */

Test(request, forbidden_characters_refused)
{
	static const char *const bad[] = {
		"new a|b", "new |cmd", "new a/b", "new /etc/passwd", "new a:b",
		"new :include:", "new :include:/etc/aliases", "new a\"b", "new \"ab\"",
		"new a,b", "new a+b", "new a=b", "new a!b", "new a#b", "new a;b",
		"new a\\b", "new (a)", "new <a>", "new a'b", "new a*b", "new ~a",
		"new a%b",
	};

	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		refused(bad[i], "not allowed");
}

Test(request, control_characters_refused)
{
	refused("new a\x01" "b", "not allowed");
	refused("new a\x7f", "not allowed");
	refused("new a\rb", "not allowed");
	refused("a\x1b[31m", "not allowed");
}

Test(request, non_ascii_refused)
{
	refused("new caf\xc3\xa9", "not allowed");
	refused("new \xe2\x80\x8bshop", "not allowed");
	refused("\xff", "not allowed");
}

Test(request, dots)
{
	refused("new .shop", "dot");
	refused("new shop.", "dot");
	refused("new shop..x", "two dots");
	refused("new .", "dot");
	refused("shop.@example.org", "dot");
	expect_new("new s.h.o.p", "s.h.o.p", "example.org", "");
}

Test(request, allowed_characters)
{
	expect_new("new a-b_c.d9", "a-b_c.d9", "example.org", "");
	expect_new("new 0", "0", "example.org", "");
	expect_new("new _", "_", "example.org", "");
}

Test(request, length_limits)
{
	char *n64 = repeat('a', 64), *n65 = repeat('b', 65), subject[200];

	snprintf(subject, sizeof(subject), "new %s", n64);
	expect_new(subject, n64, "example.org", "");
	snprintf(subject, sizeof(subject), "new %s@example.net", n64);
	expect_new(subject, n64, "example.net", "");
	snprintf(subject, sizeof(subject), "new %s", n65);
	refused(subject, "64");
	snprintf(subject, sizeof(subject), "%s", n65);
	refused(subject, "64");
	free(n64);
	free(n65);
}

Test(request, upper_case_folded)
{
	expect_new("new SHOP-Amazon Orders", "shop-amazon", "example.org", "Orders");
	expect_new("SHOP", "shop", "example.org", "");
}

Test(request, upper_case_folded_for_every_verb)
{
	struct request req;

	parse_ok("Disable SHOP@EXAMPLE.ORG", &req);
	cr_assert_eq(req.verb, VERB_DISABLE);
	cr_assert_str_eq(req.name, "shop");
	cr_assert_str_eq(req.domain, "example.org");
	cr_assert_null(req.note, "only new has a note");
	request_clear(&req);
}

Test(request, note_length_limit)
{
	char *n200 = repeat('n', REQUEST_NOTE_MAX), *n201 = repeat('n', REQUEST_NOTE_MAX + 1);
	char subject[400];

	snprintf(subject, sizeof(subject), "new shop %s", n200);
	expect_new(subject, "shop", "example.org", n200);
	snprintf(subject, sizeof(subject), "new shop %s", n201);
	refused(subject, "note");
	free(n200);
	free(n201);
}

Test(request, error_texts_are_reply_safe_and_bounded)
{
	static const char *const bad[] = {
		"Foo% bar", "new a%b", "new shop@ev%il.com", "new a%0D%0Ab",
		"new a@b@c%", "x%y z", "new a\rb", "new a\nb", "new a\r\nb",
		"new caf\xc3\xa9", "new \x01", "new a%s%n%d",
	};
	char *longname = repeat('%', 900), subject[1000];

	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		free(parse_err(bad[i]));	/* parse_err checks reply safety */
	snprintf(subject, sizeof(subject), "new %s", longname);
	char *err = parse_err(subject);
	cr_assert_lt(strlen(err), 200, "user input echoed unbounded: %zu bytes",
		     strlen(err));
	free(err);
	snprintf(subject, sizeof(subject), "%s more", longname);
	err = parse_err(subject);
	cr_assert_lt(strlen(err), 200);
	free(err);
	free(longname);
}

Test(request, clear_is_idempotent)
{
	struct request req;

	parse_ok("new shop note", &req);
	request_clear(&req);
	cr_assert_null(req.name);
	cr_assert_null(req.domain);
	cr_assert_null(req.note);
	request_clear(&req);
	cr_assert_null(req.name);
}

/* ===== request_decode_subject ===== */

Test(request, decode_plain)
{
	decode_ok("new shop", "new shop");
	decode_ok("  new shop  ", "new shop");
	decode_ok("", "");
	decode_ok("list", "list");
	decode_ok("new shop 100% =? ?= x", "new shop 100% =? ?= x");
}

Test(request, decode_q)
{
	decode_ok("=?utf-8?q?new_shop?=", "new shop");
	decode_ok("=?UTF-8?Q?new_shop?=", "new shop");
	decode_ok("=?us-ascii?q?new=20shop=2Dx?=", "new shop-x");
	decode_ok("=?utf-8?q?new=5fshop?=", "new_shop");	/* lower-case hex */
	decode_ok("=?utf-8?q?new_=5F?=", "new _");	/* '_' is a space, "=5F" is not */
	decode_ok("=?utf-8?q?" "?=", "");		/* split: no trigraph */
}

Test(request, decode_b)
{
	decode_ok("=?utf-8?b?bmV3IHNob3A=?=", "new shop");
	decode_ok("=?UTF-8?B?bmV3IHNob3A=?=", "new shop");
	decode_ok("=?utf-8?B?bmV3IGE=?=", "new a");
	decode_ok("=?utf-8?B?bmV3IGFi?=", "new ab");	/* no padding needed */
	decode_ok("=?iso-8859-1?B?bGlzdA==?=", "list");
}

/* The project's rules for "B" words, which GnuTLS's decoder alone would
 * not keep (it skips blanks and line breaks, wants exact padding and zero
 * leftover bits): base64 characters, then only '=' padding. */
Test(request, decode_b_padding_as_before)
{
	decode_ok("=?utf-8?b?bmV3IGE?=", "new a");		/* padding missing */
	decode_ok("=?utf-8?b?bGlzdA====?=", "list");		/* padding too long */
	decode_ok("=?utf-8?b?bGlzdB==?=", "list");		/* leftover bits not 0 */
	decode_ok("=?utf-8?b?bmV3IGFiY?=", "new ab");		/* a lone 6-bit rest */
	decode_ok("=?utf-8?b?" "?=", "");			/* empty (split: no trigraph) */
	decode_ok("=?utf-8?b?==?=", "");			/* padding only */
}

Test(request, decode_b_refuses_what_gnutls_would_skip)
{
	/* a word that does not decode stays literal, and the literal text
	 * then meets the subject's own checks */
	decode_err("=?utf-8?b?bmV3\nIGE=?=", "line break");
	decode_err("=?utf-8?b?bmV3\r\nIGE=?=", "line break");
	decode_err("=?utf-8?b?bmV3\vIGE=?=", "control");
	decode_err("=?utf-8?b?bmV3\fIGE=?=", "control");
	decode_ok("=?utf-8?b?bmV3=IGE=?=", "=?utf-8?b?bmV3=IGE=?=");	/* '=' inside */
	decode_ok("=?utf-8?b?bmV3IGE=x?=", "=?utf-8?b?bmV3IGE=x?=");	/* after padding */
	decode_ok("=?utf-8?b?bmV3-IGE=?=", "=?utf-8?b?bmV3-IGE=?=");	/* base64url */
	decode_ok("=?utf-8?b?bmV3_IGE=?=", "=?utf-8?b?bmV3_IGE=?=");
}

Test(request, decode_mixed_with_plain_text)
{
	decode_ok("new =?utf-8?q?shop?=", "new shop");
	decode_ok("=?utf-8?q?new?= shop", "new shop");
	decode_ok("new =?utf-8?q?shop?= my note", "new shop my note");
}

Test(request, decode_adjacent_words_drop_white_space)
{
	decode_ok("=?utf-8?q?new_sh?= =?utf-8?q?op?=", "new shop");
	decode_ok("=?utf-8?q?new_sh?=   \t =?utf-8?b?b3A=?=", "new shop");
	decode_ok("=?utf-8?q?new?==?utf-8?q?_shop?=", "new shop");
	decode_ok("=?utf-8?q?new_?= =?utf-8?q?sh?= =?utf-8?q?op?=", "new shop");
	/* Folded between the two words: still dropped. */
	decode_ok("=?utf-8?q?new_sh?=\r\n =?utf-8?q?op?=", "new shop");
	decode_ok("=?utf-8?q?new_sh?= \r\n\t=?utf-8?q?op?=", "new shop");
}

Test(request, decode_white_space_between_plain_words_kept)
{
	decode_ok("=?utf-8?q?new?= shop =?utf-8?q?note?=", "new shop note");
}

Test(request, decode_unfolds)
{
	decode_ok("new\r\n shop", "new shop");
	decode_ok("new shop\r\n\torders", "new shop orders");
	decode_ok("new\n shop", "new shop");
	decode_ok("new shop\r\n orders\r\n  more", "new shop orders  more");
}

Test(request, decode_bare_line_break_refused)
{
	decode_err("new\r\nshop", "line break");
	decode_err("new shop\r\n", "line break");
	decode_err("new\nshop", "line break");
	/* Also between two encoded words, where white space is dropped. */
	decode_err("=?utf-8?q?new?= \r\n=?utf-8?q?_shop?=", "line break");
}

Test(request, decode_encoded_line_breaks_refused)
{
	decode_err("=?utf-8?q?new_a=0D=0Ab?=", "line break");
	decode_err("=?utf-8?q?new_a=0Ab?=", "line break");
	decode_err("=?utf-8?q?new_a=0D?=", "line break");
	decode_err("=?utf-8?b?bmV3IGENCmI=?=", "line break");	/* "new a\r\nb" */
}

Test(request, decode_encoded_control_refused)
{
	decode_err("=?utf-8?q?new_a=09b?=", "control");
	decode_err("=?utf-8?q?new_a=00b?=", "control");
	decode_err("=?utf-8?q?new_a=7Fb?=", "control");
	decode_err("=?utf-8?q?=1B[31m?=", "control");
	decode_err("new\x01shop", "control");
}

Test(request, decode_non_ascii_refused)
{
	decode_err("=?utf-8?q?new_caf=C3=A9?=", "non-ASCII");
	decode_err("=?utf-8?b?bmV3IGNhZsOp?=", "non-ASCII");	/* "new café" */
	decode_err("=?iso-8859-1?q?new_caf=E9?=", "non-ASCII");
	decode_err("new caf\xc3\xa9", "non-ASCII");
}

Test(request, decode_encoded_pipe_then_refused_as_name)
{
	struct request req;
	char *subject = NULL, *err = NULL;

	decode_ok("=?utf-8?q?new_a=7Cb?=", "new a|b");
	cr_assert_eq(request_decode_subject("=?utf-8?q?new_=7Cmail?=", &subject, &err), 0);
	cr_assert_str_eq(subject, "new |mail");
	cr_assert_eq(request_parse(subject, "example.org", &domains, &req, &err), -1);
	ut_assert_reply_safe(err);
	cr_assert_not_null(strstr(err, "not allowed"), "%s", err);
	free(subject);
	free(err);
}

Test(request, decode_malformed_words_stay_literal)
{
	decode_ok("=?utf-8?x?abc?=", "=?utf-8?x?abc?=");	/* unknown encoding */
	decode_ok("=?utf-8?q?bad=ZZ?=", "=?utf-8?q?bad=ZZ?=");	/* bad hex */
	decode_ok("=?utf-8?q?cut=4?=", "=?utf-8?q?cut=4?=");
	decode_ok("=?utf-8?b?!!!!?=", "=?utf-8?b?!!!!?=");	/* bad base64 */
	decode_ok("=?utf-8?q?a b?=", "=?utf-8?q?a b?=");	/* space inside */
	decode_ok("=??q?abc?=", "=??q?abc?=");			/* no charset */
	decode_ok("=?utf-8?q?unterminated", "=?utf-8?q?unterminated");
	decode_ok("=?utf-8?qq?abc?=", "=?utf-8?qq?abc?=");
}

Test(request, decode_malformed_word_after_a_good_one)
{
	/* The white space between them is kept, the bad word stays literal. */
	decode_ok("=?utf-8?q?a?= =?utf-8?x?b?=", "a =?utf-8?x?b?=");
	decode_ok("=?utf-8?q?a?= =?utf-8?q?=ZZ?=", "a =?utf-8?q?=ZZ?=");
	decode_ok("=?utf-8?q?a?= =?utf-8?b?*?=", "a =?utf-8?b?*?=");
}

Test(request, decode_length_limit)
{
	char *ok = repeat('a', REQUEST_SUBJECT_MAX), *bad = repeat('a', REQUEST_SUBJECT_MAX + 1);

	decode_ok(ok, ok);
	decode_err(bad, "too long");
	free(ok);
	free(bad);
}

Test(request, decode_then_parse_end_to_end)
{
	static const struct {
		const char *raw, *name, *note;
	} cases[] = {
		{ "=?utf-8?q?new_shop?=", "shop", "" },
		{ "=?UTF-8?B?bmV3IHNob3AtYW1hem9uIG9yZGVycw==?=", "shop-amazon", "orders" },
		{ "new\r\n =?utf-8?q?Shop?= my\r\n note", "shop", "my note" },
		{ "=?utf-8?q?SHOP?=", "shop", "" },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct request req;
		char *subject = NULL, *err = NULL;

		cr_assert_eq(request_decode_subject(cases[i].raw, &subject, &err), 0,
			     "%s", err ? err : "");
		cr_assert_eq(request_parse(subject, "example.org", &domains, &req, &err), 0,
			     "\"%s\": %s", subject, err ? err : "");
		cr_assert_eq(req.verb, VERB_NEW);
		cr_assert_str_eq(req.name, cases[i].name);
		cr_assert_str_eq(req.note, cases[i].note);
		request_clear(&req);
		free(subject);
		free(err);
	}
}

/* ===== name, domain, address and target rules ===== */

Test(request, name_valid)
{
	static const char *const good[] = {
		"a", "shop", "shop-amazon", "s_h.o-p", "0", "a.b.c", "x9",
	};
	static const char *const bad[] = {
		"", ".a", "a.", "a..b", "A", "Shop", "a b", "a|b", "a/b", "a:b",
		"a\"b", "a@b", ":include:", "a\tb", "a\x01", "caf\xc3\xa9", "a+b",
	};
	char *n64 = repeat('z', 64), *n65 = repeat('z', 65);

	for (size_t i = 0; i < N_ELEMENTS(good); i++) {
		cr_assert_eq(request_name_valid(good[i]), 1, "\"%s\"", good[i]);
		cr_assert_null(request_name_problem(good[i]));
	}
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		const char *problem = request_name_problem(bad[i]);

		cr_assert_eq(request_name_valid(bad[i]), 0, "\"%s\"", bad[i]);
		cr_assert_not_null(problem, "\"%s\"", bad[i]);
		ut_assert_reply_safe(problem);
	}
	cr_assert_eq(request_name_valid(n64), 1);
	cr_assert_eq(request_name_valid(n65), 0);
	free(n64);
	free(n65);
}

Test(request, domain_valid)
{
	static const char *const good[] = {
		"example.org", "EXAMPLE.org", "a", "a.b.c.d", "xn--bcher-kva.example",
		"mail-1.example.org", "1.2.3.4", "a-b-c.org",
	};
	static const char *const bad[] = {
		"", ".example.org", "example.org.", "example..org", "-a.org",
		"a-.org", "a.org-", "a.-org", "ex_ample.org", "exa mple.org",
		"example.org/x", "ex@mple.org", "caf\xc3\xa9.org",
	};
	char label63[64], label64[65], long_ok[254], long_bad[255];

	for (size_t i = 0; i < N_ELEMENTS(good); i++)
		cr_assert_eq(request_domain_valid(good[i]), 1, "\"%s\"", good[i]);
	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		cr_assert_eq(request_domain_valid(bad[i]), 0, "\"%s\"", bad[i]);

	memset(label63, 'l', 63);
	label63[63] = '\0';
	memset(label64, 'l', 64);
	label64[64] = '\0';
	cr_assert_eq(request_domain_valid(label63), 1, "63-character label");
	cr_assert_eq(request_domain_valid(label64), 0, "64-character label");
	/* 253 characters: labels of 49 and dots. */
	memset(long_ok, 'd', 253);
	for (int i = 49; i < 253; i += 50)
		long_ok[i] = '.';
	long_ok[253] = '\0';
	cr_assert_eq(strlen(long_ok), 253);
	cr_assert_eq(request_domain_valid(long_ok), 1, "253 characters");
	memcpy(long_bad, long_ok, 253);
	long_bad[253] = 'd';
	long_bad[254] = '\0';
	cr_assert_eq(request_domain_valid(long_bad), 0, "254 characters");
}

Test(request, address_valid)
{
	static const char *const good[] = {
		"shop@example.org", "Shop@Example.org", "a.b-c_d@x.y",
	};
	static const char *const bad[] = {
		"", "shop", "@example.org", "shop@", "a@b@example.org",
		".a@example.org", "a..b@example.org", "a b@example.org",
		"a|b@example.org", "shop@exa_mple.org", "shop@.org", "a+b@example.org",
	};

	for (size_t i = 0; i < N_ELEMENTS(good); i++)
		cr_assert_eq(request_address_valid(good[i]), 1, "\"%s\"", good[i]);
	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		cr_assert_eq(request_address_valid(bad[i]), 0, "\"%s\"", bad[i]);
}

Test(request, target_valid)
{
	static const char *const good[] = {
		"user@example.org", "first.last@example.org", "user+tag@example.org",
		"u_s-e=r@mail.example.org", "USER@EXAMPLE.ORG", "1@x",
	};
	static const char *const bad[] = {
		"", "user", "@example.org", "user@", "|/bin/sh@example.org",
		"|cmd", "/var/mail/x", "/x@example.org", ":include:/etc/x@example.org",
		":include:x", "-oQ@example.org", ".user@example.org",
		"a b@example.org", "a\"b@example.org", "a@b@example.org",
		"a,b@example.org", "user@example.org, evil@example.net",
		"user@example.org\nevil", "user@exa mple.org", "a\\b@example.org",
		"a'b@example.org", "a`b@example.org", "a$b@example.org",
		"caf\xc3\xa9@example.org",
	};
	char local64[80], local65[80];

	for (size_t i = 0; i < N_ELEMENTS(good); i++)
		cr_assert_eq(request_target_valid(good[i]), 1, "\"%s\"", good[i]);
	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		cr_assert_eq(request_target_valid(bad[i]), 0, "\"%s\"", bad[i]);
	memset(local64, 't', 64);
	strcpy(local64 + 64, "@x.org");
	memset(local65, 't', 65);
	strcpy(local65 + 65, "@x.org");
	cr_assert_eq(request_target_valid(local64), 1);
	cr_assert_eq(request_target_valid(local65), 0);
}

Test(request, verb_names_and_parse)
{
	static const enum request_verb all[] = {
		VERB_NEW, VERB_DISABLE, VERB_ENABLE, VERB_DELETE, VERB_LIST,
	};
	static const char *const names[] = { "new", "disable", "enable", "delete", "list" };
	enum request_verb v;

	for (size_t i = 0; i < N_ELEMENTS(all); i++) {
		cr_assert_str_eq(request_verb_name(all[i]), names[i]);
		v = (enum request_verb)-1;
		cr_assert_eq(request_verb_parse(names[i], &v), 0);
		cr_assert_eq(v, all[i]);
	}
	cr_assert_eq(request_verb_parse("LiSt", &v), 0);
	cr_assert_eq(v, VERB_LIST);
	cr_assert_eq(request_verb_parse("", &v), -1);
	cr_assert_eq(request_verb_parse("news", &v), -1);
	cr_assert_eq(request_verb_parse("ne", &v), -1);
	cr_assert_eq(request_verb_parse("create", &v), -1);
	cr_assert_eq(request_verb_parse("new ", &v), -1);
}

/* ===== recipients that reach the request address ===== */

static void
base_is(const char *rcpt, const char *delims, const char *want)
{
	char *got = request_recipient_base(rcpt, delims);

	cr_assert_str_eq(got, want, "%s with delimiters \"%s\"", rcpt, delims);
	free(got);
}

Test(request, recipient_base_strips_the_extension)
{
	base_is("makealias+x@example.org", "+", "makealias@example.org");
	base_is("makealias+x+y@example.org", "+", "makealias@example.org");
	base_is("makealias-x@example.org", "+-", "makealias@example.org");
	base_is("makealias@example.org", "+", "makealias@example.org");
	/* no delimiter configured: nothing is cut */
	base_is("makealias+x@example.org", "", "makealias+x@example.org");
	/* Postfix keeps a local part that starts with the delimiter */
	base_is("+makealias@example.org", "+", "+makealias@example.org");
}

Test(request, recipient_base_unquotes)
{
	base_is("\"makealias\"@example.org", "+", "makealias@example.org");
	base_is("\"makealias+x\"@example.org", "+", "makealias@example.org");
	base_is("\"make\\alias\"@example.org", "", "makealias@example.org");
	/* a lone quote is not a quoted local part */
	base_is("\"makealias@example.org", "+", "\"makealias@example.org");
	base_is("nodomain", "+", "nodomain");
}

/* stripped_is - request_address_base's answer, "-" for NULL (not stripped) */
static void
stripped_is(const char *address, const char *delims, const char *want)
{
	char *got = request_address_base(address, delims);

	cr_assert_str_eq(got ? got : "-", want, "%s with delimiters \"%s\"", address, delims);
	free(got);
}

Test(request, extension_cut_as_postfix_splits)
{
	/* "+", Debian's main.cf */
	stripped_is("bob+bank@example.org", "+", "bob@example.org");
	stripped_is("bob+bank+x@example.org", "+", "bob@example.org");
	stripped_is("bob-bank@example.org", "+", "-");
	stripped_is("bob@example.org", "+", "-");
	/* one character of several: the first of any of them */
	stripped_is("bob-bank@example.org", "+-", "bob@example.org");
	stripped_is("bob.smith-x@example.org", "+-.", "bob@example.org");
	stripped_is("bob_x+y@example.org", "+_", "bob@example.org");
	stripped_is("bob-x+y@example.org", "+-", "bob@example.org");
	/* no delimiter configured */
	stripped_is("bob+bank@example.org", "", "-");
	stripped_is("bob+bank@example.org", NULL, "-");
	/* a delimiter at the start: Postfix keeps the whole local part,
	 * even when another delimiter follows */
	stripped_is("+bob@example.org", "+", "-");
	stripped_is("-bob-x@example.org", "+-", "-");
	/* ... and at the end: the base is what precedes it */
	stripped_is("bob-@example.org", "-", "bob@example.org");
	/* never split (the whole local part compared, as Postfix does) */
	stripped_is("postmaster+x@example.org", "+", "postmaster@example.org");
	stripped_is("mailer-daemon@example.org", "-", "-");
	stripped_is("double-bounce@example.org", "-", "-");
	/* owner-foo and foo-request with "-" a delimiter only */
	stripped_is("owner-list@example.org", "+-", "-");
	stripped_is("list-request@example.org", "-", "-");
	stripped_is("owner+x@example.org", "+", "owner@example.org");
	stripped_is("list+request@example.org", "+", "list@example.org");
	/* no domain: the local part alone */
	stripped_is("bob-bank", "-", "bob");
	cr_assert_eq(request_extension_cut("bob-bank", 8, "-"), 3);
	cr_assert_eq(request_extension_cut("bob-bank", 3, "-"), 3);
}

Test(request, recipient_base_keeps_a_leading_delimiter_whole)
{
	/* Postfix does not split "+x+y" at its second "+" either */
	base_is("+makealias+x@example.org", "+", "+makealias+x@example.org");
}

/* ===== lifetimes and generated names (issue #13) ===== */

/* expect_same - subject parses as it did before lifetimes and generated
 * names existed: verb, name, domain and note, with no lifetime and no
 * generated name */
static void
expect_same(const char *subject, enum request_verb verb, const char *name,
	    const char *note)
{
	struct request req;

	parse_ok(subject, &req);
	cr_assert_eq(req.verb, verb, "\"%s\": verb %d", subject, req.verb);
	cr_assert_str_eq(req.name, name, "\"%s\"", subject);
	cr_assert_str_eq(req.domain, "example.org", "\"%s\"", subject);
	if (note != NULL)
		cr_assert_str_eq(req.note, note, "\"%s\"", subject);
	else
		cr_assert_null(req.note, "\"%s\"", subject);
	cr_assert_eq(req.generate, 0, "\"%s\" now asks for a generated name", subject);
	cr_assert_eq(req.lifetime, 0, "\"%s\" now has a lifetime", subject);
	request_clear(&req);
}

/* Every request that was valid before keeps its meaning, in particular
 * those that look like the new syntax: a note that starts with a
 * lifetime or a keyword stays a note, and the new verbs, alone, are
 * still names. */
Test(request, old_requests_keep_their_meaning)
{
	static const struct {
		const char *subject;
		enum request_verb verb;
		const char *name, *note;
	} cases[] = {
		{ "new shop", VERB_NEW, "shop", "" },
		{ "new shop 30d orders", VERB_NEW, "shop", "30d orders" },
		{ "new shop expires 30d", VERB_NEW, "shop", "expires 30d" },
		{ "new shop for 30 days: orders", VERB_NEW, "shop", "for 30 days: orders" },
		{ "new shop never", VERB_NEW, "shop", "never" },
		{ "new shop *", VERB_NEW, "shop", "*" },
		{ "new 30d", VERB_NEW, "30d", "" },
		{ "new 30d shop", VERB_NEW, "30d", "shop" },
		{ "new expire shop 30d", VERB_NEW, "expire", "shop 30d" },
		{ "new new-for 30d x", VERB_NEW, "new-for", "30d x" },
		{ "new random", VERB_NEW, "random", "" },
		{ "expire", VERB_NEW, "expire", "" },
		{ "EXPIRE", VERB_NEW, "expire", "" },
		{ "new-for", VERB_NEW, "new-for", "" },
		{ "New-For  ", VERB_NEW, "new-for", "" },
		{ "random", VERB_NEW, "random", "" },
		{ "30d", VERB_NEW, "30d", "" },
		{ "never", VERB_NEW, "never", "" },
		{ "disable shop", VERB_DISABLE, "shop", NULL },
		{ "enable expire", VERB_ENABLE, "expire", NULL },
		{ "delete new-for", VERB_DELETE, "new-for", NULL },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++)
		expect_same(cases[i].subject, cases[i].verb, cases[i].name, cases[i].note);
	/* and what was refused before, apart from the new forms, still is */
	refused("expire-shop 30d", "unknown command");
	refused("shop 30d", "unknown command");
	refused("disable shop 30d", "exactly one");
	refused("new shop|x", "not allowed");
}

Test(request, new_alone_generates)
{
	struct request req;

	parse_ok("new", &req);
	cr_assert_eq(req.verb, VERB_NEW);
	cr_assert_eq(req.generate, 1);
	cr_assert_null(req.name);
	cr_assert_str_eq(req.domain, "example.org");
	cr_assert_str_eq(req.note, "");
	cr_assert_eq(req.lifetime, 0);
	request_clear(&req);
	parse_ok("  NEW  ", &req);
	cr_assert_eq(req.generate, 1);
	request_clear(&req);
}

Test(request, new_star_generates_with_note)
{
	struct request req;

	parse_ok("new * newsletter signup", &req);
	cr_assert_eq(req.verb, VERB_NEW);
	cr_assert_eq(req.generate, 1);
	cr_assert_null(req.name);
	cr_assert_str_eq(req.domain, "example.org");
	cr_assert_str_eq(req.note, "newsletter signup");
	request_clear(&req);
}

Test(request, new_for_sets_a_lifetime)
{
	static const struct {
		const char *subject, *name, *note;
		long long lifetime;
	} cases[] = {
		{ "new-for 30d shop-amazon orders", "shop-amazon", "orders", 30 * REQUEST_DAY },
		{ "NEW-FOR 2w trial", "trial", "", 14 * REQUEST_DAY },
		{ "new-for 1m shop a b", "shop", "a b", 30 * REQUEST_DAY },
		{ "new-for 3days x", "x", "", 3 * REQUEST_DAY },
		{ "new-for 1y x", "x", "", 365 * REQUEST_DAY },
		{ "new-for 365d x", "x", "", 365 * REQUEST_DAY },
		{ "new-for\t7d\tx\tnote", "x", "note", 7 * REQUEST_DAY },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct request req;

		parse_ok(cases[i].subject, &req);
		cr_assert_eq(req.verb, VERB_NEW, "\"%s\"", cases[i].subject);
		cr_assert_eq(req.generate, 0, "\"%s\"", cases[i].subject);
		cr_assert_str_eq(req.name, cases[i].name, "\"%s\"", cases[i].subject);
		cr_assert_str_eq(req.note, cases[i].note, "\"%s\"", cases[i].subject);
		cr_assert_eq(req.lifetime, cases[i].lifetime, "\"%s\": %lld", cases[i].subject,
			     req.lifetime);
		request_clear(&req);
	}
}

Test(request, new_for_generated)
{
	struct request req;

	parse_ok("new-for 30d * one order", &req);
	cr_assert_eq(req.generate, 1);
	cr_assert_null(req.name);
	cr_assert_str_eq(req.note, "one order");
	cr_assert_eq(req.lifetime, 30 * REQUEST_DAY);
	request_clear(&req);
}

Test(request, expire_sets_or_clears)
{
	struct request req;

	parse_ok("expire shop 30d", &req);
	cr_assert_eq(req.verb, VERB_EXPIRE);
	cr_assert_str_eq(req.name, "shop");
	cr_assert_eq(req.lifetime, 30 * REQUEST_DAY);
	cr_assert_null(req.note);
	request_clear(&req);
	parse_ok("Expire shop@example.net NEVER", &req);
	cr_assert_eq(req.verb, VERB_EXPIRE);
	cr_assert_str_eq(req.domain, "example.net");
	cr_assert_eq(req.lifetime, REQUEST_LIFETIME_NEVER);
	request_clear(&req);
}

Test(request, lifetime_errors)
{
	refused("new-for shop", "not a lifetime");
	refused("new-for 30d", "needs a lifetime and an alias name");
	refused("new-for 366d x", "at most 365 days");
	refused("new-for 13m x", "at most 365 days");
	refused("new-for 0d x", "at least 1 day");
	refused("new-for 30 days x", "not a lifetime");
	refused("new-for -3d x", "not a lifetime");
	refused("new-for 99999999999d x", "not a lifetime");
	refused("new-for 30d a|b", "not allowed");
	refused("expire shop", "expire NAME 30d");
	refused("expire shop 30d extra", "expire NAME 30d");
	refused("expire shop soon", "not a lifetime");
	refused("expire * 30d", "not allowed");
	refused("disable *", "not allowed");
}

Test(request, duration_words)
{
	static const struct {
		const char *word;
		long long s;
	} ok[] = {
		{ "1d", REQUEST_DAY }, { "1day", REQUEST_DAY }, { "10DAYS", 10 * REQUEST_DAY },
		{ "1w", 7 * REQUEST_DAY }, { "2weeks", 14 * REQUEST_DAY },
		{ "1m", 30 * REQUEST_DAY }, { "12months", 360 * REQUEST_DAY },
		{ "1y", 365 * REQUEST_DAY }, { "90s", 90 }, { "5seconds", 5 },
	};
	static const char *const bad[] = {
		"", "d", "30", "30x", "30 d", "1.5d", "+3d", "53w", "2y", "0s", "366d",
	};
	char out[64];

	for (size_t i = 0; i < N_ELEMENTS(ok); i++) {
		long long s = 0;
		char *err = NULL;

		cr_assert_eq(request_duration_parse(ok[i].word, &s, &err), 0, "%s: %s",
			     ok[i].word, err);
		cr_assert_eq(s, ok[i].s, "%s: %lld", ok[i].word, s);
	}
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		long long s = 0;
		char *err = NULL;

		cr_assert_eq(request_duration_parse(bad[i], &s, &err), -1, "\"%s\" accepted",
			     bad[i]);
		ut_assert_reply_safe(err);
		free(err);
	}
	request_duration_format(30 * REQUEST_DAY, out, sizeof(out));
	cr_assert_str_eq(out, "30 days");
	request_duration_format(14 * REQUEST_DAY, out, sizeof(out));
	cr_assert_str_eq(out, "2 weeks");
	request_duration_format(REQUEST_DAY, out, sizeof(out));
	cr_assert_str_eq(out, "1 day");
	request_duration_format(90, out, sizeof(out));
	cr_assert_str_eq(out, "90 seconds");
}

/* ===== the name generator ===== */

/* A name is 8 consonant-vowel syllables of the documented alphabets with
 * '.' after the fourth: a valid alias name of REQUEST_GEN_LEN characters. */
static void
assert_generated_shape(const char *name)
{
	cr_assert_eq(strlen(name), (size_t)REQUEST_GEN_LEN, "\"%s\"", name);
	cr_assert(request_name_valid(name), "\"%s\" is not a valid alias name", name);
	cr_assert_eq(name[8], '.', "\"%s\"", name);
	for (size_t i = 0; i < (size_t)REQUEST_GEN_LEN; i += 2) {
		if (i == 8)
			i++;	/* the separator */
		cr_assert_not_null(strchr(REQUEST_GEN_ALPHABET_C, name[i]), "\"%s\"[%zu]", name, i);
		cr_assert_not_null(strchr(REQUEST_GEN_ALPHABET_V, name[i + 1]), "\"%s\"[%zu]",
				   name, i + 1);
	}
}

Test(request, generator_entropy_is_at_least_40_bits)
{
	/* log2 of the number of names: both alphabets are powers of two */
	unsigned nc = (unsigned)strlen(REQUEST_GEN_ALPHABET_C);
	unsigned nv = (unsigned)strlen(REQUEST_GEN_ALPHABET_V);
	int bits = REQUEST_GEN_SYLLABLES * (__builtin_ctz(nc) + __builtin_ctz(nv));

	cr_assert_eq(nc & (nc - 1), 0u);
	cr_assert_eq(nv & (nv - 1), 0u);
	cr_assert(bits >= 40, "only %d bits", bits);
	/* every random bit is used, none twice: 6 bits a syllable */
	cr_assert_eq(strlen(REQUEST_GEN_ALPHABET_C), 16u);
	cr_assert_eq(strlen(REQUEST_GEN_ALPHABET_V), 4u);
	cr_assert_eq(REQUEST_GEN_SYLLABLES * 6, REQUEST_GEN_BYTES * 8);
}

Test(request, generator_is_a_bijection_of_its_bits)
{
	/* Each of the 48 input bits changes the name, and each syllable's 64
	 * values give 64 different names: distinct draws, distinct names. */
	for (int k = 0; k < REQUEST_GEN_SYLLABLES; k++) {
		char seen[64][REQUEST_GEN_LEN + 1];

		for (unsigned v = 0; v < 64; v++) {
			unsigned char rnd[REQUEST_GEN_BYTES] = { 0 };
			unsigned long long bits = (unsigned long long)v << (6 * k);

			for (int b = 0; b < REQUEST_GEN_BYTES; b++)
				rnd[REQUEST_GEN_BYTES - 1 - b] = (unsigned char)(bits >> (8 * b));
			request_name_from_random(rnd, seen[v]);
			assert_generated_shape(seen[v]);
			for (unsigned w = 0; w < v; w++)
				cr_assert_str_neq(seen[v], seen[w], "syllable %d: %u and %u", k, v, w);
		}
	}
}

static int
cmp_names(const void *a, const void *b)
{
	return memcmp(a, b, REQUEST_GEN_LEN + 1);
}

Test(request, generator_draws_do_not_collide)
{
	/* 10^5 draws from the system's CSPRNG: with 48 bits, a duplicate has
	 * a chance of about 2e-5; one here means a broken source or mapping. */
	enum { DRAWS = 100000 };
	char (*names)[REQUEST_GEN_LEN + 1] = xmalloc(DRAWS * sizeof(*names));
	unsigned long letters[26] = { 0 };

	for (size_t i = 0; i < DRAWS; i++) {
		unsigned char rnd[REQUEST_GEN_BYTES];

		cr_assert_eq(getrandom(rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
		request_name_from_random(rnd, names[i]);
		if (i < 1000)
			assert_generated_shape(names[i]);
		for (const char *p = names[i]; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				letters[*p - 'a']++;
	}
	qsort(names, DRAWS, sizeof(*names), cmp_names);
	for (size_t i = 1; i < DRAWS; i++)
		cr_assert_str_neq(names[i - 1], names[i], "duplicate name %s", names[i]);
	/* every letter of the alphabets is used, roughly uniformly: each
	 * consonant about 1/16 of 8e5, each vowel about 1/4 */
	for (const char *c = REQUEST_GEN_ALPHABET_C; *c; c++)
		cr_assert(letters[*c - 'a'] > 45000 && letters[*c - 'a'] < 55000, "%c: %lu",
			  *c, letters[*c - 'a']);
	for (const char *c = REQUEST_GEN_ALPHABET_V; *c; c++)
		cr_assert(letters[*c - 'a'] > 190000 && letters[*c - 'a'] < 210000, "%c: %lu",
			  *c, letters[*c - 'a']);
	free(names);
}
