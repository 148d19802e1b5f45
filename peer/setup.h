/* setup.h - milter-aliasctl postfix-setup: wire milter-alias into Postfix.
 *
 * Computes every change the Postfix instance at postfix_config_dir needs
 * (the alias map, the request addresses made known to Postfix, the access
 * map and its restriction class, the milter on the SASL submission
 * services), prints them, and with apply makes them, verifying each one.
 *
 * Safety rules, because the program this replaces took a mail server down
 * by pointing Postfix at a map that did not exist:
 *   - every precondition is checked before the first change, and a failed
 *     one changes nothing at all: a map Postfix would be pointed at must
 *     exist in compiled form, open with postmap and be readable by
 *     mail_owner; the milter must accept connections; a chrooted service
 *     must be able to reach its socket; postfix check must be clean;
 *   - main.cf and master.cf are read and written only with postconf
 *     (-e / -P), each in one atomic edit, and every value is read back;
 *   - Postfix is reloaded only if every step succeeded, and never started.
 *
 * Linked into milter-aliasctl only; its phases are in setup-private.h.
 */
#ifndef MA_SETUP_H
#define MA_SETUP_H

#include "conf.h"

/* Exit statuses of postfix_setup(). */
#define SETUP_OK 0		/* nothing needed, or every change made and verified */
#define SETUP_PENDING 1		/* report: changes pending or a problem;
				 * apply: a precondition or a step failed */
#define SETUP_ERROR 2		/* could not find out (postconf failed), or
				 * apply without root */

/* The reserved domain the request addresses are rewritten to; its
 * transport is discard:. */
#define SETUP_DISCARD_DOMAIN "discard.milter-alias.invalid"
/* The restriction class the access map names for request addresses. */
#define SETUP_REQUEST_CLASS "milter_alias_request"

struct setup_options {
	int apply;		/* make the changes (root only) */
	int json;		/* machine-readable output */
};

/* Run postfix-setup for conf; prints the report on stdout (problems also
 * on stderr) and returns one of the SETUP_* exit statuses. */
int postfix_setup(const struct conf *conf, const struct setup_options *opts);

#endif
