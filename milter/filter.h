/* filter.h - the libmilter callbacks of milter-alias.
 *
 * The filter recognises request mail (authenticated, sent to a request
 * address and to nothing else), parses its Subject and hands the request
 * to milter-alias-peer over the control socket.  All other mail is
 * accepted at the earliest stage that can tell it apart.
 */
#ifndef MA_FILTER_H
#define MA_FILTER_H

#include <libmilter/mfapi.h>

#include "conf.h"

/* Most requests waiting for the sync daemon at once; more get a 4xx. */
#define FILTER_MAX_INFLIGHT 64

/* The filter description to pass to smfi_register.  conf is borrowed and
 * must outlive the milter. */
struct smfiDesc *filter_desc(const struct conf *conf);
/* Postfix's recipient_delimiter (may be empty; copied): a recipient whose
 * base address (request_recipient_base) is a request address reaches the
 * request address's route in Postfix, and is taken as the request
 * address.  Call before smfi_main. */
void filter_set_delimiters(const char *delimiters);

#endif
