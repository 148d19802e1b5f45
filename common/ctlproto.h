/* ctlproto.h - the control protocol: what the milter and milter-aliasctl
 * ask milter-alias-peer over its control socket (common/ctlsock.c is the
 * client, peer/ctlserver.c the server), and what it answers.
 *
 * Each connection carries one request record, then zero or more item
 * records (each with an "item" key), then one reply record; records are
 * msg.h frames.  Requests, by operation (keys in wire order):
 *
 *   op=request  the milter, for a request mail:
 *               id deadline login request_address verb [name] [domain]
 *               [note] [generate=1] [lifetime]
 *   op=admin    milter-aliasctl add/disable/enable/delete/expire:
 *               verb name domain [owner] [note] [lifetime]
 *               (generate=1: new without a name, the server picks one;
 *               lifetime: seconds, -1 = never, for new and expire)
 *   op=list     milter-aliasctl list/show: [owner] [address history=1]
 *               items: item=alias (alias_to_msg keys), then with history
 *               item=history (time address state target txn coord)
 *   op=status   reply: node digest aliases active peers in_flight in_doubt
 *               undelivered map_dirty journal_bytes map_writable
 *               resolve_check [resolve_error], and per peer N: peerN
 *               peerN_connected peerN_last_contact peerN_digest_equal
 *               peerN_error peerN_resolve_check
 *   op=verify   items: item=diff (peer address here there) and
 *               item=unreachable (peer error); reply: differences
 *               unreachable
 *   op=journal  items: item=txn (txn coordinator address state verb
 *               phase age_ms); reply: count
 *   op=probe    items: item=map (map params ok [error]); reply: count
 *               failing
 *
 * Every reply starts with status (ok, perm: refused for good, temp: try
 * again) and text, a sentence for a person; a temp reply may carry dsn
 * (an RFC 3463 code of class 4), a change that was made carries txn.
 * Unknown keys are ignored, so either end may be the newer one.
 *
 * Requests are decoded once, at the server's boundary, into a struct
 * ctl_request whose every field has been checked; code below it never
 * reads a request's raw keys.
 */
#ifndef MA_CTLPROTO_H
#define MA_CTLPROTO_H

#include "msg.h"
#include "request.h"

/* Request keys. */
#define CTL_KEY_OP		"op"
#define CTL_KEY_ID		"id"
#define CTL_KEY_DEADLINE	"deadline"
#define CTL_KEY_LOGIN		"login"
#define CTL_KEY_REQUEST_ADDRESS	"request_address"
#define CTL_KEY_VERB		"verb"
#define CTL_KEY_NAME		"name"
#define CTL_KEY_DOMAIN		"domain"
#define CTL_KEY_OWNER		"owner"
#define CTL_KEY_NOTE		"note"
#define CTL_KEY_LIFETIME	"lifetime"
#define CTL_KEY_GENERATE	"generate"
#define CTL_KEY_ADDRESS		"address"
#define CTL_KEY_HISTORY		"history"
/* Reply keys every operation may use; ITEM marks an item record. */
#define CTL_KEY_STATUS		"status"
#define CTL_KEY_TEXT		"text"
#define CTL_KEY_DSN		"dsn"
#define CTL_KEY_TXN		"txn"
#define CTL_KEY_ITEM		"item"
#define CTL_KEY_COUNT		"count"

/* Bounds checked at decoding. */
#define CTL_ID_MAX	64	/* a Postfix queue id, "NOQUEUE", "admin" */
#define CTL_LOGIN_MAX	256	/* a SASL login, an owner */
#define CTL_ADDRESS_MAX	320	/* an e-mail address */

enum ctl_op {
	CTL_OP_REQUEST,		/* a change (or list) by mail, from the milter */
	CTL_OP_ADMIN,		/* a change by the administrator */
	CTL_OP_STATUS,
	CTL_OP_LIST,
	CTL_OP_VERIFY,
	CTL_OP_JOURNAL,
	CTL_OP_PROBE,
};

/* A decoded request.  Strings are NULL when absent; decoded ones are
 * borrowed from the struct msg they came from and live as long as it. */
struct ctl_request {
	enum ctl_op op;
	/* request, admin */
	const char *id;		/* for the logs */
	long long deadline;	/* now_mono_ms() the requester stops waiting;
				 * 0: none */
	const char *login;	/* request: the SASL login (never empty) */
	const char *request_address;	/* request: where the mail went */
	enum request_verb verb;
	const char *name;	/* a valid alias name; NULL for list */
	const char *domain;	/* a valid domain name; NULL for list */
	const char *note;	/* printable, at most REQUEST_NOTE_MAX */
	int generate;		/* new without a name (name NULL) */
	long long lifetime;	/* new: 0 or 1..REQUEST_LIFETIME_MAX seconds;
				 * expire: that or REQUEST_LIFETIME_NEVER */
	/* admin: the owner of the alias (required by new); list: only this
	 * owner's aliases */
	const char *owner;
	/* list */
	const char *address;	/* only this alias */
	int history;		/* and its history (address is set) */
};

enum ctl_status {
	CTL_OK,			/* done */
	CTL_PERM,		/* refused for good */
	CTL_TEMP,		/* not now; try again */
};

/* The common part of a reply.  Strings as in struct ctl_request. */
struct ctl_reply {
	enum ctl_status status;
	const char *text;	/* never NULL after decoding ("" if absent) */
	const char *dsn;	/* a code whose class fits status, or NULL */
	const char *txn;	/* the transaction of a change, or NULL */
};

const char *ctlproto_op_name(enum ctl_op op);
/* 0 and *op for a known operation name, else -1. */
int ctlproto_op_parse(const char *s, enum ctl_op *op);
const char *ctlproto_status_name(enum ctl_status status);

/* Append req's keys to m in wire order (only the fields its op uses;
 * NULL strings and a 0 deadline are left out). */
void ctlproto_request_encode(const struct ctl_request *req, struct msg *m);
/* Decode and check every field m holds for its op.  0 and *req, or -1
 * and in *err_r a sentence fit for a "perm" reply's text. */
int ctlproto_request_decode(const struct msg *m, struct ctl_request *req,
			    char **err_r);

/* Set status, text, and dsn and txn when not NULL, in that order. */
void ctlproto_reply_encode(const struct ctl_reply *r, struct msg *m);
/* Decode the common part of a reply.  A dsn whose class does not fit
 * the status or that is malformed is dropped.  0, or -1 and a reason
 * when status is missing or unknown. */
int ctlproto_reply_decode(const struct msg *m, struct ctl_reply *r, char **err_r);

#endif
