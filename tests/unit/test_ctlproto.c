/* test_ctlproto.c - unit tests for common/ctlproto.c: the control
 * protocol's requests and replies, their exact wire form (old daemons and
 * old milters must see the same bytes), round trips through the frame
 * codec, and the refusal of every malformed field. */
#include "config.h"

#include "unit.h"
#include "ctlproto.h"
#include "replies.h"

/* line - m as its wire line, caller frees */
static char *
line(const struct msg *m)
{
	struct buf b = { 0 };

	buf_append(&b, "", 0);
	msg_encode_line(m, &b);
	return b.data;
}

/* expect_wire - req encodes to exactly want */
static void
expect_wire(const struct ctl_request *req, const char *want)
{
	struct msg m = { 0 };
	char *got;

	ctlproto_request_encode(req, &m);
	got = line(&m);
	cr_assert_str_eq(got, want);
	free(got);
	msg_clear(&m);
}

/* through_frame - req encoded, framed, unframed into *m (the daemon's
 * view of it) */
static void
through_frame(const struct ctl_request *req, struct msg *m)
{
	struct msg out = { 0 };
	struct buf b = { 0 };
	size_t used = 0;
	char *err = NULL;

	ctlproto_request_encode(req, &out);
	msg_frame(&out, &b);
	cr_assert_eq(msg_unframe(b.data, b.len, &used, m, &err), 1, "unframe: %s", err);
	cr_assert_eq(used, b.len);
	msg_clear(&out);
	buf_free(&b);
}

/* parse - decode the line text (without "v=1"), which must work */
static void
parse_ok(const char *text, struct msg *m, struct ctl_request *req)
{
	char *err = NULL;

	cr_assert_eq(msg_decode_line(text, strlen(text), m, &err), 0, "%s: %s", text, err);
	cr_assert_eq(ctlproto_request_decode(m, req, &err), 0, "\"%s\" refused: %s",
		     text, err ? err : "");
	free(err);
}

/* refused - decoding the record made of key=value pairs (NULL-ended)
 * fails with a reply-safe reason containing want */
static void
refused(const char *want, ...)
{
	struct msg m = { 0 };
	struct ctl_request req;
	char *err = NULL;
	const char *k;
	va_list ap;

	va_start(ap, want);
	while ((k = va_arg(ap, const char *)) != NULL)
		msg_set(&m, k, va_arg(ap, const char *));
	va_end(ap);
	cr_assert_eq(ctlproto_request_decode(&m, &req, &err), -1,
		     "accepted a request that wants \"%s\"", want);
	ut_assert_reply_safe(err);
	cr_assert_not_null(strstr(err, want), "reason \"%s\" lacks \"%s\"", err, want);
	free(err);
	msg_clear(&m);
}

/* str_eq_or_null - both NULL or equal strings */
static void
str_eq_or_null(const char *a, const char *b, const char *what)
{
	if (a == NULL || b == NULL)
		cr_assert(a == b, "%s: %s vs %s", what, a ? a : "NULL", b ? b : "NULL");
	else
		cr_assert_str_eq(a, b, "%s", what);
}

static void
expect_same(const struct ctl_request *a, const struct ctl_request *b)
{
	cr_assert_eq(a->op, b->op);
	str_eq_or_null(a->id, b->id, "id");
	cr_assert_eq(a->deadline, b->deadline);
	str_eq_or_null(a->login, b->login, "login");
	str_eq_or_null(a->request_address, b->request_address, "request_address");
	if (a->op == CTL_OP_REQUEST || a->op == CTL_OP_ADMIN)
		cr_assert_eq(a->verb, b->verb);
	str_eq_or_null(a->name, b->name, "name");
	str_eq_or_null(a->domain, b->domain, "domain");
	str_eq_or_null(a->note, b->note, "note");
	str_eq_or_null(a->owner, b->owner, "owner");
	str_eq_or_null(a->address, b->address, "address");
	cr_assert_eq(a->history, b->history);
	cr_assert_eq(a->generate, b->generate);
	cr_assert_eq(a->lifetime, b->lifetime);
}

/* round_trip - req survives encode, frame, unframe and decode */
static void
round_trip(const struct ctl_request *req)
{
	struct ctl_request back;
	struct msg m = { 0 };
	char *err = NULL;

	through_frame(req, &m);
	cr_assert_eq(ctlproto_request_decode(&m, &back, &err), 0, "refused: %s", err);
	expect_same(req, &back);
	msg_clear(&m);
}

static const struct ctl_request milter_new = {
	.op = CTL_OP_REQUEST, .id = "4Vx2Yz0bLfz9sWk", .deadline = 1234567,
	.login = "alice", .request_address = "makealias@example.org",
	.verb = VERB_NEW, .name = "shop", .domain = "example.org",
	.note = "orders from the shop",
};

/* ===== names ===== */

Test(ctlproto, op_names_round_trip)
{
	static const char *const names[] = {
		"request", "admin", "status", "list", "verify", "journal", "probe",
	};

	for (size_t i = 0; i < N_ELEMENTS(names); i++) {
		enum ctl_op op;

		cr_assert_eq(ctlproto_op_parse(names[i], &op), 0, "%s", names[i]);
		cr_assert_str_eq(ctlproto_op_name(op), names[i]);
	}
	cr_assert_str_eq(ctlproto_status_name(CTL_OK), "ok");
	cr_assert_str_eq(ctlproto_status_name(CTL_PERM), "perm");
	cr_assert_str_eq(ctlproto_status_name(CTL_TEMP), "temp");
}

Test(ctlproto, unknown_ops_are_refused)
{
	enum ctl_op op;

	cr_assert_eq(ctlproto_op_parse("Request", &op), -1);
	cr_assert_eq(ctlproto_op_parse("", &op), -1);
	cr_assert_eq(ctlproto_op_parse("digest", &op), -1, "a peer-link op");
	refused("unknown operation \"digest\"", "op", "digest", NULL);
	refused("unknown operation \"\"", NULL);
}

/* ===== the wire form: what clients have always sent ===== */

Test(ctlproto, milter_request_bytes)
{
	expect_wire(&milter_new, "op=request id=4Vx2Yz0bLfz9sWk deadline=1234567 "
		    "login=alice request_address=makealias@example.org verb=new "
		    "name=shop domain=example.org note=orders%20from%20the%20shop");
}

Test(ctlproto, milter_list_request_bytes)
{
	const struct ctl_request req = {
		.op = CTL_OP_REQUEST, .id = "NOQUEUE", .deadline = 99,
		.login = "alice", .request_address = "makealias@example.org",
		.verb = VERB_LIST,
	};

	expect_wire(&req, "op=request id=NOQUEUE deadline=99 login=alice "
		    "request_address=makealias@example.org verb=list");
}

Test(ctlproto, aliasctl_request_bytes)
{
	const struct ctl_request add = {
		.op = CTL_OP_ADMIN, .verb = VERB_NEW, .name = "shop",
		.domain = "example.org", .owner = "alice", .note = "",
	};
	const struct ctl_request del = {
		.op = CTL_OP_ADMIN, .verb = VERB_DELETE, .name = "shop",
		.domain = "example.org",
	};
	const struct ctl_request list = { .op = CTL_OP_LIST, .owner = "alice" };
	const struct ctl_request show = {
		.op = CTL_OP_LIST, .address = "shop@example.org", .history = 1,
	};

	expect_wire(&add, "op=admin verb=new name=shop domain=example.org owner=alice note=");
	expect_wire(&del, "op=admin verb=delete name=shop domain=example.org");
	expect_wire(&list, "op=list owner=alice");
	expect_wire(&show, "op=list address=shop@example.org history=1");
	for (enum ctl_op op = CTL_OP_STATUS; op <= CTL_OP_PROBE; op++) {
		const struct ctl_request r = { .op = op };
		char *want = xasprintf("op=%s", ctlproto_op_name(op));

		if (op != CTL_OP_LIST)
			expect_wire(&r, want);
		free(want);
	}
}

/* ===== round trips ===== */

Test(ctlproto, requests_round_trip)
{
	const struct ctl_request admin = {
		.op = CTL_OP_ADMIN, .verb = VERB_DISABLE, .name = "a.b-c_d",
		.domain = "example.net", .owner = "bob", .note = "blanks and \xc3\xa9",
	};
	const struct ctl_request list = {
		.op = CTL_OP_LIST, .owner = "bob", .address = "x@example.org", .history = 1,
	};
	const struct ctl_request status = { .op = CTL_OP_PROBE };

	round_trip(&milter_new);
	round_trip(&admin);
	round_trip(&list);
	round_trip(&status);
}

Test(ctlproto, list_verb_ignores_name)
{
	struct msg m = { 0 };
	struct ctl_request req;

	parse_ok("op=request login=alice verb=list name=Not%20A%20Name domain=x", &m, &req);
	cr_assert_eq(req.verb, VERB_LIST);
	cr_assert_null(req.name);
	cr_assert_null(req.domain);
	msg_clear(&m);
}

Test(ctlproto, unknown_keys_are_ignored)
{
	struct msg m = { 0 };
	struct ctl_request req;

	parse_ok("op=status future=1", &m, &req);
	cr_assert_eq(req.op, CTL_OP_STATUS);
	msg_clear(&m);
	parse_ok("op=admin verb=enable name=shop domain=example.org login=x%20y", &m, &req);
	cr_assert_null(req.login, "admin reads owner, not login");
	msg_clear(&m);
}

Test(ctlproto, history_needs_an_address)
{
	struct msg m = { 0 };
	struct ctl_request req;

	parse_ok("op=list history=1", &m, &req);
	cr_assert_eq(req.history, 0);
	msg_clear(&m);
}

/* ===== refusals ===== */

Test(ctlproto, refuses_bad_verbs)
{
	refused("Unknown command", "op", "request", "login", "alice", NULL);
	refused("Unknown command", "op", "admin", "verb", "create", NULL);
}

Test(ctlproto, refuses_requests_without_login)
{
	refused(REPLY_AUTH_FIRST, "op", "request", "verb", "new", "name", "shop",
		"domain", "example.org", NULL);
	refused(REPLY_AUTH_FIRST, "op", "request", "verb", "list", "login", "", NULL);
}

Test(ctlproto, refuses_bad_deadlines)
{
	static const char *const bad[] = { "", "0", "-5", "+5", "12x", " 12",
					   "1234567890123456789" };

	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		refused("deadline", "op", "request", "login", "alice", "verb", "list",
			"deadline", bad[i], NULL);
}

Test(ctlproto, refuses_bad_ids_and_request_addresses)
{
	char *long_id = xmalloc(CTL_ID_MAX + 2);

	memset(long_id, 'A', CTL_ID_MAX + 1);
	long_id[CTL_ID_MAX + 1] = '\0';
	refused("id", "op", "request", "login", "alice", "verb", "list", "id", "a b", NULL);
	refused("id", "op", "request", "login", "alice", "verb", "list", "id", "", NULL);
	refused("id", "op", "request", "login", "alice", "verb", "list", "id", long_id, NULL);
	long_id[CTL_ID_MAX] = '\0';
	{
		struct msg m = { 0 };
		struct ctl_request req;
		char *text = xasprintf("op=request login=alice verb=list id=%s", long_id);

		parse_ok(text, &m, &req);
		free(text);
		msg_clear(&m);
	}
	refused("request address", "op", "request", "login", "alice", "verb", "list",
		"request_address", "make\nalias@example.org", NULL);
	free(long_id);
}

Test(ctlproto, refuses_bad_names_and_domains)
{
	refused(REPLY_INVALID_ADDRESS, "op", "request", "login", "alice", "verb", "new",
		"domain", "example.org", NULL);
	refused(REPLY_INVALID_ADDRESS, "op", "request", "login", "alice", "verb", "new",
		"name", "Shop", "domain", "example.org", NULL);
	refused(REPLY_INVALID_ADDRESS, "op", "admin", "verb", "delete",
		"name", "a..b", "domain", "example.org", NULL);
	refused(REPLY_INVALID_ADDRESS, "op", "admin", "verb", "delete",
		"name", "shop", "domain", "example..org", NULL);
	refused(REPLY_INVALID_ADDRESS, "op", "admin", "verb", "delete",
		"name", "shop", NULL);
}

Test(ctlproto, refuses_bad_logins_and_owners)
{
	char *long_login = xmalloc(CTL_LOGIN_MAX + 2);

	memset(long_login, 'a', CTL_LOGIN_MAX + 1);
	long_login[CTL_LOGIN_MAX + 1] = '\0';
	refused("owner login is required", "op", "admin", "verb", "new", "name", "shop",
		"domain", "example.org", NULL);
	refused("owner login is required", "op", "admin", "verb", "new", "name", "shop",
		"domain", "example.org", "owner", "", NULL);
	refused("login", "op", "admin", "verb", "new", "name", "shop",
		"domain", "example.org", "owner", "ali ce", NULL);
	refused("login", "op", "request", "verb", "new", "name", "shop",
		"domain", "example.org", "login", "ali\x01" "ce", NULL);
	refused("login", "op", "request", "verb", "list", "login", long_login, NULL);
	refused("login", "op", "list", "owner", "ali ce", NULL);
	free(long_login);
}

Test(ctlproto, refuses_bad_notes)
{
	char *note = xmalloc(REQUEST_NOTE_MAX + 2);

	memset(note, 'x', REQUEST_NOTE_MAX + 1);
	note[REQUEST_NOTE_MAX + 1] = '\0';
	refused("note", "op", "admin", "verb", "new", "name", "shop", "domain", "example.org",
		"owner", "alice", "note", "bad\001note", NULL);
	refused("note", "op", "admin", "verb", "new", "name", "shop", "domain", "example.org",
		"owner", "alice", "note", note, NULL);
	{
		struct msg m = { 0 };
		struct ctl_request req;
		char *err = NULL;

		note[REQUEST_NOTE_MAX] = '\0';
		msg_set(&m, "op", "admin");
		msg_set(&m, "verb", "new");
		msg_set(&m, "name", "shop");
		msg_set(&m, "domain", "example.org");
		msg_set(&m, "owner", "alice");
		msg_set(&m, "note", note);
		cr_assert_eq(ctlproto_request_decode(&m, &req, &err), 0,
			     "a note of %d characters: %s", REQUEST_NOTE_MAX, err);
		cr_assert_str_eq(req.note, note);
		msg_clear(&m);
	}
	free(note);
}

Test(ctlproto, refuses_bad_list_fields)
{
	refused("address", "op", "list", "address", "a b@example.org", NULL);
	refused("address", "op", "list", "address", "", NULL);
	refused("history", "op", "list", "address", "a@example.org", "history", "yes", NULL);
}

/* ===== replies ===== */

/* reply_of - decode the reply line text into *r (m keeps the strings) */
static int
reply_of(const char *text, struct msg *m, struct ctl_reply *r, char **err)
{
	cr_assert_eq(msg_decode_line(text, strlen(text), m, NULL), 0, "%s", text);
	return ctlproto_reply_decode(m, r, err);
}

Test(ctlproto, reply_bytes_and_round_trip)
{
	const struct ctl_reply temp = {
		.status = CTL_TEMP, .text = "Not now; try again", .dsn = "4.3.5",
	};
	const struct ctl_reply ok = { .status = CTL_OK, .text = "Alias made", .txn = "0123abcd" };
	struct ctl_reply back;
	struct msg m = { 0 }, m2 = { 0 };
	char *got, *err = NULL;

	ctlproto_reply_encode(&temp, &m);
	got = line(&m);
	cr_assert_str_eq(got, "status=temp text=Not%20now%3B%20try%20again dsn=4.3.5");
	cr_assert_eq(reply_of(got, &m2, &back, &err), 0, "%s", err);
	cr_assert_eq(back.status, CTL_TEMP);
	cr_assert_str_eq(back.text, temp.text);
	cr_assert_str_eq(back.dsn, "4.3.5");
	cr_assert_null(back.txn);
	free(got);
	msg_clear(&m);
	msg_clear(&m2);

	ctlproto_reply_encode(&ok, &m);
	got = line(&m);
	cr_assert_str_eq(got, "status=ok text=Alias%20made txn=0123abcd");
	cr_assert_eq(reply_of(got, &m2, &back, &err), 0, "%s", err);
	cr_assert_eq(back.status, CTL_OK);
	cr_assert_str_eq(back.txn, "0123abcd");
	cr_assert_null(back.dsn);
	free(got);
	msg_clear(&m);
	msg_clear(&m2);
}

Test(ctlproto, reply_without_known_status_is_refused)
{
	struct ctl_reply r;
	struct msg m = { 0 };
	char *err = NULL;

	cr_assert_eq(reply_of("text=hello", &m, &r, &err), -1);
	cr_assert_not_null(err);
	msg_clear(&m);
	cr_assert_eq(reply_of("status=yes text=prepared", &m, &r, &err), -1,
		     "a peer-link status");
	msg_clear(&m);
	cr_assert_eq(reply_of("status=OK", &m, &r, &err), -1);
	msg_clear(&m);
	cr_assert_eq(reply_of("status=perm", &m, &r, &err), 0, "%s", err);
	cr_assert_str_eq(r.text, "", "an absent text reads as empty");
	msg_clear(&m);
	free(err);
}

Test(ctlproto, reply_dsn_must_fit_the_status)
{
	static const struct {
		const char *line;
		int kept;
	} cases[] = {
		{ "status=temp text=x dsn=4.3.5", 1 },
		{ "status=temp text=x dsn=4.123.999", 1 },
		{ "status=perm text=x dsn=5.7.1", 1 },
		{ "status=ok text=x dsn=2.0.0", 1 },
		{ "status=temp text=x dsn=5.7.1", 0 },
		{ "status=perm text=x dsn=4.3.5", 0 },
		{ "status=temp text=x dsn=4.3", 0 },
		{ "status=temp text=x dsn=4.3.5x", 0 },
		{ "status=temp text=x dsn=4..5", 0 },
		{ "status=temp text=x dsn=4.1234.5", 0 },
		{ "status=temp text=x dsn=", 0 },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		struct ctl_reply r;
		struct msg m = { 0 };

		cr_assert_eq(reply_of(cases[i].line, &m, &r, NULL), 0, "%s", cases[i].line);
		if (cases[i].kept)
			cr_assert_not_null(r.dsn, "%s: dsn dropped", cases[i].line);
		else
			cr_assert_null(r.dsn, "%s: dsn kept", cases[i].line);
		msg_clear(&m);
	}
}

/* ===== lifetimes and generated names (issue #13) ===== */

Test(ctlproto, lifetime_and_generate_bytes_and_round_trip)
{
	const struct ctl_request gen = {
		.op = CTL_OP_REQUEST, .id = "Q1", .deadline = 5, .login = "alice",
		.request_address = "makealias@example.org", .verb = VERB_NEW,
		.domain = "example.org", .note = "", .generate = 1, .lifetime = 2592000,
	};
	const struct ctl_request never = {
		.op = CTL_OP_ADMIN, .verb = VERB_EXPIRE, .name = "shop",
		.domain = "example.org", .lifetime = REQUEST_LIFETIME_NEVER,
	};

	/* a request without either is the same bytes as before */
	expect_wire(&milter_new, "op=request id=4Vx2Yz0bLfz9sWk deadline=1234567 "
		    "login=alice request_address=makealias@example.org verb=new "
		    "name=shop domain=example.org note=orders%20from%20the%20shop");
	expect_wire(&gen, "op=request id=Q1 deadline=5 login=alice "
		    "request_address=makealias@example.org verb=new domain=example.org "
		    "note= generate=1 lifetime=2592000");
	expect_wire(&never, "op=admin verb=expire name=shop domain=example.org lifetime=-1");
	round_trip(&gen);
	round_trip(&never);
}

Test(ctlproto, refuses_bad_lifetimes)
{
	refused("lifetime", "op", "admin", "verb", "new", "name", "a", "domain", "example.org",
		"owner", "o", "lifetime", "0", NULL);
	refused("lifetime", "op", "admin", "verb", "new", "name", "a", "domain", "example.org",
		"owner", "o", "lifetime", "31536001", NULL);
	refused("lifetime", "op", "admin", "verb", "new", "name", "a", "domain", "example.org",
		"owner", "o", "lifetime", "-1", NULL);
	refused("lifetime", "op", "admin", "verb", "new", "name", "a", "domain", "example.org",
		"owner", "o", "lifetime", "30d", NULL);
	refused("lifetime", "op", "admin", "verb", "disable", "name", "a",
		"domain", "example.org", "lifetime", "86400", NULL);
	refused("expire needs", "op", "admin", "verb", "expire", "name", "a",
		"domain", "example.org", NULL);
	refused("Only new", "op", "admin", "verb", "disable", "name", "a",
		"domain", "example.org", "generate", "1", NULL);
	refused("Invalid", "op", "admin", "verb", "new", "domain", "example.org",
		"owner", "o", NULL);
	refused("Invalid", "op", "admin", "verb", "new", "generate", "1", "owner", "o", NULL);
}
