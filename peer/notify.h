/* notify.h - the mails the sync daemon sends: the confirmation that
 * travels through a new alias, and the reply to "list". */
#ifndef MA_NOTIFY_H
#define MA_NOTIFY_H

#include "aliasmap.h"
#include "conf.h"

/* 1 if login is a plain name that may appear in a mail: printable ASCII,
 * no white space, no address punctuation (,;:<>()[]\\"), at most 254. */
int notify_login_valid(const char *login);

/* The messages, composed into *b (appended): 0, or -1 with a reason when
 * an address or the login is not plain (a header injection, a list of
 * addresses, anything sendmail -t would read as more recipients); then
 * nothing is composed.  Every address that reaches a To: goes through
 * request_target_valid (request.h). */
int notify_compose_confirm(const struct conf *conf, const struct alias *a,
			   const char *from, const char *txn, struct buf *b,
			   char **err_r);
int notify_compose_list(const struct conf *conf, const struct aliasmap *map,
			const char *login, const char *owner_address,
			const char *from, struct buf *b, char **err_r);

/* Send the confirmation for a new alias through this server's sendmail,
 * addressed to the alias itself.  from is the request address.
 * 0 or -1 with a reason. */
int notify_confirm(const struct conf *conf, const struct alias *a,
		   const char *from, const char *txn, char **err_r);
/* Mail owner_address the aliases owned by login.  0 or -1. */
int notify_list(const struct conf *conf, const struct aliasmap *map,
		const char *login, const char *owner_address, const char *from,
		char **err_r);

/* Confirmations sendmail did not take are kept until it does: one file
 * per transaction, STATE_DIR/confirm/TXN, holding the alias address and
 * the sender, one a line (written, fsync'd, renamed).  notify_keep: 0 or
 * -1 with a reason.  notify_forget: the file gone (none is fine).
 * notify_kept: appends txn, address, from for every kept one; 0 or -1. */
#define NOTIFY_KEPT_DIR "confirm"
int notify_keep(const struct conf *conf, const char *txn, const char *address,
		const char *from, char **err_r);
void notify_forget(const struct conf *conf, const char *txn);
int notify_kept(const struct conf *conf, struct strlist *out, char **err_r);

#endif
