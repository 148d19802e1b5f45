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
