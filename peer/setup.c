/* setup.c - milter-aliasctl postfix-setup; see setup.h.
 *
 * Four phases, a file each (setup-private.h):
 *   1. look: read main.cf and master.cf with postconf, stat the maps, ask
 *      the running daemon to try the maps of its existing-address check;
 *   2. plan: one change per main.cf parameter, per master.cf -o option and
 *      per map this program owns, plus the problems that forbid applying;
 *   3. apply: backups, our maps (built beside and renamed, then queried),
 *      one "postconf -e" for main.cf and one "postconf -P" for master.cf
 *      (each rewrites its file atomically, so a Postfix daemon started
 *      meanwhile never sees half of the wiring), every value read back,
 *      "postfix check" under a pseudo-terminal (Postfix commands print
 *      their warnings only to a terminal or the mail log), then "postfix
 *      reload" if Postfix runs;
 *   4. report: what was found, planned or done, as text or JSON.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "setup-private.h"

/* add_once - a formatted line onto l, unless l has it already */
static void
add_once(struct strlist *l, const char *fmt, va_list ap) ATTR_PRINTF(2, 0);
static void
add_once(struct strlist *l, const char *fmt, va_list ap)
{
	char *m = xvasprintf(fmt, ap);

	if (!strlist_contains(l, m, false))
		strlist_add(l, m);
	free(m);
}

void
setup_problem(struct setup *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_once(&s->problems, fmt, ap);
	va_end(ap);
}

void
setup_note(struct setup *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_once(&s->notes, fmt, ap);
	va_end(ap);
}

void
setup_free(struct setup *s)
{
	free(s->dir);
	free(s->main_cf);
	free(s->master_cf);
	free(s->queue_dir);
	free(s->mail_owner);
	free(s->default_action);
	free(s->alias_spec);
	free(s->alias_db);
	free(s->access_spec);
	free(s->access_db);
	free(s->senders_spec);
	free(s->senders_db);
	free(s->req_path);
	free(s->req_spec);
	free(s->req_db);
	free(s->req_text);
	free(s->tr_path);
	free(s->tr_spec);
	free(s->tr_db);
	free(s->tr_text);
	free(s->milter_spec);
	free(s->milter_entry);
	free(s->milter_canon);
	free(s->class_was);
	for (size_t i = 0; i < s->nsvc; i++) {
		free(s->svc[i].key);
		free(s->svc[i].command);
		free(s->svc[i].chroot);
		strlist_clear(&s->svc[i].pnames);
		strlist_clear(&s->svc[i].pvalues);
	}
	free(s->svc);
	for (size_t i = 0; i < s->nled; i++) {
		free(s->led[i].key);
		free(s->led[i].label);
		free(s->led[i].orig);
		free(s->led[i].why);
		strlist_clear(&s->led[i].front);
		strlist_clear(&s->led[i].back);
	}
	free(s->led);
	for (size_t i = 0; i < s->nch; i++) {
		free(s->ch[i].key);
		free(s->ch[i].value);
		free(s->ch[i].spec);
		free(s->ch[i].db);
		free(s->ch[i].text);
		free(s->ch[i].error);
	}
	free(s->ch);
	strlist_clear(&s->problems);
	strlist_clear(&s->notes);
	strlist_clear(&s->backups);
}

int
postfix_setup(const struct conf *conf, const struct setup_options *opts)
{
	struct setup s = { .conf = conf, .opts = opts };
	char *err = NULL;
	int rc;

	s.root = geteuid() == 0;
	if (opts->apply && !s.root) {
		fprintf(stderr, "milter-aliasctl: postfix-setup --apply must run as root "
			"(it edits Postfix's main.cf and master.cf); without --apply "
			"it only reports\n");
		return SETUP_ERROR;
	}
	if (setup_look(&s, &err) < 0 || setup_plan(&s, &err) < 0) {
		rc = setup_report_error(&s, err);
	} else {
		setup_preconditions(&s);
		if (!opts->apply)
			rc = setup_report_plan(&s);
		else if (s.problems.n > 0)
			rc = setup_report_refused(&s);	/* nothing is touched */
		else if (s.nch == 0)
			rc = setup_report_nothing(&s);
		else
			rc = setup_report_applied(&s, setup_apply(&s));
	}
	if (opts->json)
		setup_report_json(&s, rc);
	free(err);
	setup_free(&s);
	return rc;
}
