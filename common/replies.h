/* replies.h - user-facing reply texts that more than one place sends.
 *
 * They reach people in SMTP replies (through the milter) and on
 * milter-aliasctl's output, so they are sentences a person can act on
 * and never hold CR, LF or '%' (except a format's own conversions).  A
 * text that only one place sends stays there.
 */
#ifndef MA_REPLIES_H
#define MA_REPLIES_H

/* A request mail from a client that did not authenticate: the milter at
 * RCPT, the daemon for a request without a login. */
#define REPLY_AUTH_FIRST \
	"Authenticate (SMTP AUTH) before sending alias requests"
/* A request address mixed with other recipients. */
#define REPLY_ON_THEIR_OWN \
	"Send alias requests on their own, with the request address as the " \
	"only recipient"
/* The sync daemon cannot be asked (451 4.3.0). */
#define REPLY_UNAVAILABLE \
	"The alias service is temporarily unavailable; try again later"
/* The map file was edited by hand into something unreadable. */
#define REPLY_MAP_BROKEN \
	"The alias map needs the postmaster's attention; try again later"
/* Another change holds the address (format: the address). */
#define REPLY_ADDRESS_BUSY_FMT \
	"Another change to %s is in progress; try again in a minute"
/* An alias name that breaks the rules or a domain not served. */
#define REPLY_INVALID_ADDRESS "Invalid alias name or domain"

#endif
