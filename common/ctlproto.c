/* ctlproto.c - the control protocol's records; see ctlproto.h. */
#include "config.h"

#include <string.h>

#include "ctlproto.h"
#include "replies.h"

static const char *const op_names[] = {
	[CTL_OP_REQUEST] = "request",
	[CTL_OP_ADMIN] = "admin",
	[CTL_OP_STATUS] = "status",
	[CTL_OP_LIST] = "list",
	[CTL_OP_VERIFY] = "verify",
	[CTL_OP_JOURNAL] = "journal",
	[CTL_OP_PROBE] = "probe",
};

static const char *const status_names[] = {
	[CTL_OK] = "ok",
	[CTL_PERM] = "perm",
	[CTL_TEMP] = "temp",
};

/* lookup - the index of s in names[n], or -1; names are exact */
static int
lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s != NULL && i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
ctlproto_op_name(enum ctl_op op)
{
	return (size_t)op < N_ELEMENTS(op_names) ? op_names[op] : "?";
}

int
ctlproto_op_parse(const char *s, enum ctl_op *op)
{
	int i = lookup(op_names, N_ELEMENTS(op_names), s);

	if (i >= 0)
		*op = (enum ctl_op)i;
	return i >= 0 ? 0 : -1;
}

const char *
ctlproto_status_name(enum ctl_status status)
{
	return (size_t)status < N_ELEMENTS(status_names) ? status_names[status] : "?";
}

/* set_opt - key=value unless value is NULL */
static void
set_opt(struct msg *m, const char *key, const char *value)
{
	if (value != NULL)
		msg_set(m, key, value);
}

void
ctlproto_request_encode(const struct ctl_request *r, struct msg *m)
{
	int change = r->op == CTL_OP_REQUEST || r->op == CTL_OP_ADMIN;

	/* The order is the one clients have always sent: peers and old
	 * daemons see the same bytes. */
	msg_set(m, CTL_KEY_OP, ctlproto_op_name(r->op));
	if (change) {
		set_opt(m, CTL_KEY_ID, r->id);
		if (r->deadline > 0)
			msg_setf(m, CTL_KEY_DEADLINE, "%lld", r->deadline);
		set_opt(m, CTL_KEY_LOGIN, r->login);
		set_opt(m, CTL_KEY_REQUEST_ADDRESS, r->request_address);
		msg_set(m, CTL_KEY_VERB, request_verb_name(r->verb));
		set_opt(m, CTL_KEY_NAME, r->name);
		set_opt(m, CTL_KEY_DOMAIN, r->domain);
	}
	if (change || r->op == CTL_OP_LIST)
		set_opt(m, CTL_KEY_OWNER, r->owner);
	if (change) {
		set_opt(m, CTL_KEY_NOTE, r->note);
		if (r->generate)
			msg_set(m, CTL_KEY_GENERATE, "1");
		if (r->lifetime != 0)
			msg_setf(m, CTL_KEY_LIFETIME, "%lld", r->lifetime);
	}
	if (r->op == CTL_OP_LIST) {
		set_opt(m, CTL_KEY_ADDRESS, r->address);
		if (r->history)
			msg_set(m, CTL_KEY_HISTORY, "1");
	}
}

/* printable - at most max bytes, none of them a control character (nor a
 * blank unless blanks) */
static int
printable(const char *s, size_t max, int blanks)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
		if (*p < 0x20 || *p == 0x7f || (!blanks && *p == ' '))
			return 0;
	return n <= max;
}

/* token - an optional field that is one printable word of at most max
 * bytes (absent: NULL, and fine) */
static int
token(const struct msg *m, const char *key, size_t max, const char **out)
{
	*out = msg_get(m, key);
	return *out == NULL || (**out != '\0' && printable(*out, max, 0));
}

/* milliseconds - a positive decimal number of milliseconds */
static int
milliseconds(const char *s, long long *out)
{
	long long v = 0;
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 18 || s[n] != '\0')
		return 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	*out = v;
	return v > 0;
}

#define TEXT_LOGIN "The login holds blanks or control characters, or is too long"

/* decode_change - op=request and op=admin */
static int
decode_change(const struct msg *m, struct ctl_request *r, char **err_r)
{
	int admin = r->op == CTL_OP_ADMIN;
	const char *deadline = msg_get(m, CTL_KEY_DEADLINE);
	const char *v;

	if (request_verb_parse(msg_gets(m, CTL_KEY_VERB), &r->verb) < 0) {
		set_error(err_r, "Unknown command; use new, disable, enable, delete or list");
		return -1;
	}
	/* admin: the owner speaks for the alias; request: the login. */
	if (admin)
		r->owner = msg_get(m, CTL_KEY_OWNER);
	else if ((r->login = msg_get(m, CTL_KEY_LOGIN)) == NULL || *r->login == '\0') {
		set_error(err_r, REPLY_AUTH_FIRST);
		return -1;
	}
	if (!token(m, CTL_KEY_ID, CTL_ID_MAX, &r->id)) {
		set_error(err_r, "The request id is malformed");
		return -1;
	}
	if (deadline != NULL && !milliseconds(deadline, &r->deadline)) {
		set_error(err_r, "The deadline is not a number of milliseconds");
		return -1;
	}
	if (!token(m, CTL_KEY_REQUEST_ADDRESS, CTL_ADDRESS_MAX, &r->request_address)) {
		set_error(err_r, "The request address is malformed");
		return -1;
	}
	/* The milter parsed this already; a second look costs nothing and
	 * the control socket is a trust boundary of its own.  list works on
	 * the login and has no name. */
	r->generate = strcmp(msg_gets(m, CTL_KEY_GENERATE), "1") == 0;
	if (r->generate && r->verb != VERB_NEW) {
		set_error(err_r, "Only new can choose a name");
		return -1;
	}
	if (r->verb != VERB_LIST) {
		r->name = r->generate ? NULL : msg_gets(m, CTL_KEY_NAME);
		r->domain = msg_gets(m, CTL_KEY_DOMAIN);
		if ((r->name != NULL && !request_name_valid(r->name)) ||
		    !request_domain_valid(r->domain)) {
			set_error(err_r, REPLY_INVALID_ADDRESS);
			return -1;
		}
	}
	if (msg_get(m, CTL_KEY_LIFETIME) != NULL &&
	    (msg_get_ll(m, CTL_KEY_LIFETIME, &r->lifetime) < 0 ||
	     !(r->lifetime == REQUEST_LIFETIME_NEVER ||
	       (r->lifetime >= 1 && r->lifetime <= REQUEST_LIFETIME_MAX)) ||
	     (r->verb != VERB_NEW && r->verb != VERB_EXPIRE) ||
	     (r->verb == VERB_NEW && r->lifetime < 0))) {
		set_error(err_r, "The lifetime is not a number of seconds between 1 and "
			  "365 days");
		return -1;
	}
	if (r->verb == VERB_EXPIRE && r->lifetime == 0) {
		set_error(err_r, "expire needs a lifetime or never");
		return -1;
	}
	if (admin && r->verb == VERB_NEW && (r->owner == NULL || *r->owner == '\0')) {
		set_error(err_r, "An owner login is required");
		return -1;
	}
	/* They go into the map file's metadata, the logs and the replies. */
	v = admin ? r->owner : r->login;
	if (v != NULL && !printable(v, CTL_LOGIN_MAX, 0)) {
		set_error(err_r, TEXT_LOGIN);
		return -1;
	}
	r->note = msg_get(m, CTL_KEY_NOTE);
	if (r->note != NULL && !printable(r->note, REQUEST_NOTE_MAX, 1)) {
		set_error(err_r, "The note holds control characters or is longer than %d "
			  "characters", REQUEST_NOTE_MAX);
		return -1;
	}
	return 0;
}

/* decode_list - op=list */
static int
decode_list(const struct msg *m, struct ctl_request *r, char **err_r)
{
	const char *history = msg_get(m, CTL_KEY_HISTORY);

	if (!token(m, CTL_KEY_OWNER, CTL_LOGIN_MAX, &r->owner)) {
		set_error(err_r, TEXT_LOGIN);
		return -1;
	}
	if (!token(m, CTL_KEY_ADDRESS, CTL_ADDRESS_MAX, &r->address)) {
		set_error(err_r, "The address is malformed");
		return -1;
	}
	if (history != NULL && strcmp(history, "1") != 0) {
		set_error(err_r, "history is 1 or absent");
		return -1;
	}
	/* History is one alias's. */
	r->history = history != NULL && r->address != NULL;
	return 0;
}

int
ctlproto_request_decode(const struct msg *m, struct ctl_request *r, char **err_r)
{
	const char *op = msg_gets(m, CTL_KEY_OP);

	memset(r, 0, sizeof(*r));
	if (ctlproto_op_parse(op, &r->op) < 0) {
		set_error(err_r, "unknown operation \"%.40s\"", op);
		return -1;
	}
	switch (r->op) {
	case CTL_OP_REQUEST:
	case CTL_OP_ADMIN:
		return decode_change(m, r, err_r);
	case CTL_OP_LIST:
		return decode_list(m, r, err_r);
	case CTL_OP_STATUS:
	case CTL_OP_VERIFY:
	case CTL_OP_JOURNAL:
	case CTL_OP_PROBE:
		break;
	}
	return 0;
}

void
ctlproto_reply_encode(const struct ctl_reply *r, struct msg *m)
{
	msg_set(m, CTL_KEY_STATUS, ctlproto_status_name(r->status));
	msg_set(m, CTL_KEY_TEXT, r->text ? r->text : "");
	set_opt(m, CTL_KEY_DSN, r->dsn);
	set_opt(m, CTL_KEY_TXN, r->txn);
}

/* dsn_fits - an enhanced status code (RFC 3463) "C.S.D" whose class C
 * is the one of status */
static int
dsn_fits(const char *dsn, enum ctl_status status)
{
	static const char class[] = { [CTL_OK] = '2', [CTL_PERM] = '5', [CTL_TEMP] = '4' };
	const char *p = dsn;

	if (p[0] != class[status] || p[1] != '.')
		return 0;
	p += 2;
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(p, "0123456789");

		if (n < 1 || n > 3 || p[n] != (part == 0 ? '.' : '\0'))
			return 0;
		p += n + 1;
	}
	return 1;
}

int
ctlproto_reply_decode(const struct msg *m, struct ctl_reply *r, char **err_r)
{
	const char *status = msg_get(m, CTL_KEY_STATUS), *dsn = msg_get(m, CTL_KEY_DSN);
	int i = lookup(status_names, N_ELEMENTS(status_names), status);

	memset(r, 0, sizeof(*r));
	if (i < 0) {
		set_error(err_r, "an answer without a known status (\"%.20s\")",
			  status ? status : "");
		return -1;
	}
	r->status = (enum ctl_status)i;
	r->text = msg_gets(m, CTL_KEY_TEXT);
	r->txn = msg_get(m, CTL_KEY_TXN);
	if (dsn != NULL && dsn_fits(dsn, r->status))
		r->dsn = dsn;
	return 0;
}
