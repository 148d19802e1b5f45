/* test_notify.c - peer/notify.c: the mails handed to "sendmail -t", which
 * takes its recipients from the header.  A hostile login or owner address
 * (a header injection, a list of addresses) must never reach the message:
 * the composer refuses and composes nothing.  Also the files that keep a
 * confirmation sendmail did not take. */
#include "config.h"

#include "unit.h"
#include "aliasmap.h"
#include "conf.h"
#include "notify.h"
#include "util.h"

static struct conf conf = { .node_name = "n.test" };

static const char *const hostile[] = {
	"a@b.test\r\nBcc: x@y.test",
	"a@b.test\nBcc: x@y.test",
	"a@b.test, c@d.test",
	"a@b.test,c@d.test",
	"<a@b.test>",
	"a@b.test c@d.test",
	"\"a\"@b.test",
	"a@b.test;c@d.test",
	"",
};

/* compose_list - notify_compose_list into *b; its return */
static int
compose_list(const char *login, const char *owner, struct buf *b, char **err)
{
	struct aliasmap map = { 0 };

	return notify_compose_list(&conf, &map, login, owner, "makealias@example.test",
				   b, err);
}

Test(notify, list_plain_login_and_owner)
{
	struct buf b = { 0 };
	char *err = NULL;

	cr_assert_eq(compose_list("alice", "alice@example.test", &b, &err), 0, "%s", err);
	cr_assert_not_null(strstr(b.data, "\nTo: <alice@example.test>\n"));
	cr_assert_not_null(strstr(b.data, "for login alice,"));
	buf_free(&b);
	cr_assert_eq(compose_list("alice@example.test", "alice@example.test", &b, &err), 0,
		     "%s", err);
	buf_free(&b);
}

Test(notify, list_hostile_owner_never_composed)
{
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct buf b = { 0 };
		char *err = NULL;

		cr_assert_eq(compose_list("alice", hostile[i], &b, &err), -1,
			     "owner \"%s\" accepted", hostile[i]);
		cr_assert_null(b.data, "something composed for owner \"%s\"", hostile[i]);
		cr_assert_not_null(err);
		cr_assert_not_null(strstr(err, "owner address"), "%s", err);
		free(err);
	}
}

Test(notify, list_hostile_login_never_composed)
{
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct buf b = { 0 };
		char *err = NULL;

		cr_assert_eq(compose_list(hostile[i], "alice@example.test", &b, &err), -1,
			     "login \"%s\" accepted", hostile[i]);
		cr_assert_null(b.data, "something composed for login \"%s\"", hostile[i]);
		cr_assert_not_null(strstr(err, "login"), "%s", err);
		/* the error text names no hostile bytes */
		cr_assert_null(strpbrk(err, "\r\n"), "%s", err);
		free(err);
	}
}

/* Through notify_list, with a sendmail that keeps what it is given: a
 * hostile login or owner never reaches sendmail at all. */
Test(notify, list_hostile_never_reaches_sendmail)
{
	char *dir = ut_mkdtemp(), *sm, *out = ut_path(dir, "out"), *script;
	struct conf c = { .node_name = "n.test" };
	struct aliasmap map = { 0 };

	script = xasprintf("#!/bin/sh\ncat >> %s\n", out);
	sm = ut_write(dir, "sendmail", script);
	cr_assert_eq(chmod(sm, 0755), 0);
	c.sendmail_path = sm;
	c.postfix_config_dir = dir;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		char *err = NULL, *text;

		cr_assert_eq(notify_list(&c, &map, "alice", hostile[i],
					 "makealias@example.test", &err), -1,
			     "owner \"%s\" accepted", hostile[i]);
		free(err);
		err = NULL;
		cr_assert_eq(notify_list(&c, &map, hostile[i], "alice@example.test",
					 "makealias@example.test", &err), -1,
			     "login \"%s\" accepted", hostile[i]);
		free(err);
		text = ut_slurp(out);
		cr_assert_null(text, "sendmail was given: %s", text);
	}
	free(script);
	free(sm);
	free(out);
	ut_rmtree(&dir);
}

Test(notify, confirm_hostile_address_never_composed)
{
	struct alias a = { .address = "shop@example.test", .target = "alice@example.test",
			   .owner = "alice", .node = "n.test", .note = "" };
	struct buf b = { 0 };
	char *err = NULL;

	cr_assert_eq(notify_compose_confirm(&conf, &a, "makealias@example.test", "t1", &b,
					    &err), 0, "%s", err);
	cr_assert_not_null(strstr(b.data, "\nTo: <shop@example.test>\n"));
	buf_free(&b);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		a.address = (char *)hostile[i];
		cr_assert_eq(notify_compose_confirm(&conf, &a, "makealias@example.test", "t1",
						    &b, &err), -1, "\"%s\" accepted", hostile[i]);
		cr_assert_null(b.data);
		free(err);
		err = NULL;
	}
}

Test(notify, kept_confirmations_survive_and_are_forgotten)
{
	struct conf c = { .node_name = "n.test" };
	struct strlist kept = { 0 };
	char *err = NULL;

	c.state_dir = ut_mkdtemp();
	cr_assert_eq(notify_kept(&c, &kept, &err), 0, "%s", err);
	cr_assert_eq(kept.n, 0);
	cr_assert_eq(notify_keep(&c, "0123abcd", "shop@example.test",
				 "makealias@example.test", &err), 0, "%s", err);
	cr_assert_eq(notify_keep(&c, "../evil", "x@example.test", "y@example.test", &err), -1);
	free(err);
	err = NULL;
	cr_assert_eq(notify_kept(&c, &kept, &err), 0, "%s", err);
	cr_assert_eq(kept.n, 3);
	cr_assert_str_eq(kept.v[0], "0123abcd");
	cr_assert_str_eq(kept.v[1], "shop@example.test");
	cr_assert_str_eq(kept.v[2], "makealias@example.test");
	strlist_clear(&kept);
	notify_forget(&c, "0123abcd");
	cr_assert_eq(notify_kept(&c, &kept, &err), 0, "%s", err);
	cr_assert_eq(kept.n, 0);
	ut_rmtree(&c.state_dir);
}
