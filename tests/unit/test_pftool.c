/* test_pftool.c - unit tests for common/pftool.c: how a Postfix program's
 * run is judged and summed up, and the postmap -q answer format.  No
 * Postfix needed: the runs are built by hand. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "pftool.h"
#include "unit.h"

TestSuite(pftool);

/* run - a finished run with this status and stderr */
static struct pftool_run
run(int status, const char *err)
{
	struct pftool_run r = { .status = status };

	if (err != NULL)
		buf_appendf(&r.err, "%s", err);
	return r;
}

Test(pftool, exit_status_0_succeeds_and_1_only_where_it_is_an_answer)
{
	struct pftool_run ok = run(0, NULL), one = run(1, NULL), two = run(2, NULL);

	cr_assert_not(pftool_failed(&ok, 0));
	cr_assert(pftool_failed(&one, 0), "exit 1 of postconf is a failure");
	cr_assert_not(pftool_failed(&one, PFTOOL_EXIT1_OK), "postmap -q: not found");
	cr_assert(pftool_failed(&two, PFTOOL_EXIT1_OK));
	pftool_run_free(&ok);
	pftool_run_free(&one);
	pftool_run_free(&two);
}

Test(pftool, fatal_and_error_on_stderr_fail_warnings_do_not)
{
	struct pftool_run f = run(1, "postmap: fatal: open /x.lmdb: No such file\n");
	struct pftool_run e = run(0, "postmap: error: mysql:/x.cf: lookup failed\n");
	struct pftool_run w = run(0, "postmap: warning: something harmless\n");

	cr_assert(pftool_failed(&f, PFTOOL_EXIT1_OK), "fatal: with exit 1");
	cr_assert(pftool_failed(&e, PFTOOL_EXIT1_OK), "error: with exit 0");
	cr_assert_not(pftool_failed(&w, 0));
	pftool_run_free(&f);
	pftool_run_free(&e);
	pftool_run_free(&w);
}

Test(pftool, did_not_run_is_a_failure)
{
	struct pftool_run r = run(-1, NULL);
	char *err = NULL;

	r.run_err = xstrdup("/usr/sbin/postmap did not finish within 30000 ms");
	cr_assert(pftool_failed(&r, PFTOOL_EXIT1_OK));
	pftool_error(&r, "postmap -q", &err);
	cr_assert_str_eq(err, "postmap -q: /usr/sbin/postmap did not finish within 30000 ms");
	free(err);
	pftool_run_free(&r);
}

Test(pftool, summary_names_the_last_non_blank_line_of_stderr)
{
	struct pftool_run r = run(75, "sendmail: warning: a\nsendmail: fatal: b\n  \n");
	struct pftool_run q = run(3, NULL);
	char *err = NULL;

	pftool_error(&r, "sendmail", &err);
	cr_assert_str_eq(err, "sendmail failed (exit 75): sendmail: fatal: b");
	pftool_error(&q, "postconf", &err);
	cr_assert_str_eq(err, "postconf failed (exit 3)");
	free(err);
	pftool_run_free(&r);
	pftool_run_free(&q);
}

Test(pftool, answer_keys_are_what_to_ask_for_the_same_answer)
{
	char *k = pftool_answer_keys("a@example.org\tb@example.org\nx\tdiscard:\n");

	cr_assert_str_eq(k, "a@example.org\nx\n");
	free(k);
	k = pftool_answer_keys("");
	cr_assert_str_eq(k, "");
	free(k);
}

Test(pftool, no_maps_no_run)
{
	struct strlist none = { 0 };
	struct pftool_run r = { 0 };
	char *err = NULL;

	cr_assert_eq(pftool_query(&r, "/nonexistent", &none, "k\n", &err), 0);
	cr_assert_null(err);
	pftool_run_free(&r);
}
