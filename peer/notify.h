/* notify.h - the mails the sync daemon sends: the confirmation that
 * travels through a new alias, and the reply to "list". */
#ifndef MA_NOTIFY_H
#define MA_NOTIFY_H

#include "aliasmap.h"
#include "conf.h"

/* Send the confirmation for a new alias through this server's sendmail,
 * addressed to the alias itself.  from is the request address.
 * 0 or -1 with a reason. */
int notify_confirm(const struct conf *conf, const struct alias *a,
		   const char *from, const char *txn, char **err_r);
/* Mail owner_address the aliases owned by login.  0 or -1. */
int notify_list(const struct conf *conf, const struct aliasmap *map,
		const char *login, const char *owner_address, const char *from,
		char **err_r);

#endif
