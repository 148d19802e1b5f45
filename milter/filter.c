/* filter.c - libmilter callbacks; see filter.h.
 *
 * Stage by stage:
 *   MAIL  remember {auth_authen} (absent = not authenticated).
 *   RCPT  a request address from an unauthenticated client: 5xx.  Any
 *         other recipient of unauthenticated mail: ACCEPT (no more events).
 *         A request address mixed with other recipients: 5xx for whichever
 *         comes second.
 *   DATA  no request address among the recipients: ACCEPT.
 *   HDR   keep the Subject of request mail.
 *   EOM   parse, ask the sync daemon, answer 250 (and DISCARD the request
 *         message), 5xx or 4xx.
 * The filter never writes any file.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctlproto.h"
#include "ctlsock.h"
#include "filter.h"
#include "log.h"
#include "msg.h"
#include "replies.h"
#include "request.h"

/* Per-connection state, reset for every message. */
struct mctx {
	char *login;		/* SASL login, NULL if not authenticated */
	char *request_rcpt;	/* the request address, once seen */
	unsigned nrcpt;		/* recipients accepted so far */
	char *subject;		/* raw Subject value */
	unsigned nsubject;
	int mixed;		/* a recipient after the request was refused */
};

static const struct conf *conf;
static char *delimiters;	/* recipient_delimiter; set before smfi_main */
static atomic_int inflight;

/* reply - set an SMTP reply; text never holds CR/LF, '%' is escaped */
static void
reply(SMFICTX *ctx, const char *code, const char *dsn, const char *text)
{
	char buf[512];
	size_t o = 0;

	for (const char *p = text; *p && o + 2 < sizeof(buf); p++) {
		if (*p == '\r' || *p == '\n')
			buf[o++] = ' ';
		else if (*p == '%') {
			buf[o++] = '%';
			buf[o++] = '%';
		} else
			buf[o++] = *p;
	}
	buf[o] = '\0';
	if (smfi_setreply(ctx, (char *)code, (char *)dsn, buf) != MI_SUCCESS)
		log_warnx(NULL, "smfi_setreply(%s %s) failed", code, dsn);
}

static void
mctx_reset(struct mctx *m)
{
	free(m->login);
	free(m->request_rcpt);
	free(m->subject);
	memset(m, 0, sizeof(*m));
}

static struct mctx *
mctx_get(SMFICTX *ctx)
{
	struct mctx *m = smfi_getpriv(ctx);

	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		smfi_setpriv(ctx, m);
	}
	return m;
}

static const char *
queue_id(SMFICTX *ctx)
{
	const char *id = smfi_getsymval(ctx, "i");

	return id != NULL && *id != '\0' ? id : "NOQUEUE";
}

/* bare_address - "<User@Example.org>" -> "user@example.org", caller frees */
static char *
bare_address(const char *arg)
{
	size_t len;
	const char *s = arg;

	if (*s == '<')
		s++;
	len = strcspn(s, ">");
	return str_lower(xstrndup(s, len));
}

static sfsistat
mlfi_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
	       unsigned long f2, unsigned long f3, unsigned long *pf0,
	       unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	/* No message changes: the request message is discarded whole. */
	*pf0 = f0 & SMFIF_SETSYMLIST;
	*pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOEOH | SMFIP_NOBODY |
		     SMFIP_NOUNKNOWN);
	*pf2 = *pf3 = 0;
	if (f0 & SMFIF_SETSYMLIST) {
		/* Only what we read; Postfix sends nothing else.  "j" always
		 * has a value: when no macro of a stage has one, libmilter
		 * keeps that stage's macros from the session's previous MAIL,
		 * and a login would outlive a STARTTLS that reset it. */
		smfi_setsymlist(ctx, SMFIM_ENVFROM, "j {auth_authen}");
		smfi_setsymlist(ctx, SMFIM_ENVRCPT, "i");
		smfi_setsymlist(ctx, SMFIM_EOM, "i");
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_envfrom(SMFICTX *ctx, char **argv)
{
	struct mctx *m = mctx_get(ctx);
	const char *login = smfi_getsymval(ctx, "{auth_authen}");

	(void)argv;
	mctx_reset(m);
	if (login != NULL && *login != '\0')
		m->login = xstrdup(login);
	return SMFIS_CONTINUE;
}

/* request_rcpt - is rcpt a request address, or a variant of one that
 * Postfix routes the same way ("name+ext@", "\"name\"@")?  Then rcpt
 * becomes the request address itself. */
static int
request_rcpt(SMFICTX *ctx, char **rcpt)
{
	char *base;

	if (conf_is_request_address(conf, *rcpt))
		return 1;
	base = request_recipient_base(*rcpt, delimiters ? delimiters : "");
	if (!conf_is_request_address(conf, base)) {
		free(base);
		return 0;
	}
	log_info(queue_id(ctx), "to=<%s> reaches the request address <%s>; taken as "
		 "that", *rcpt, base);
	free(*rcpt);
	*rcpt = base;
	return 1;
}

static sfsistat
mlfi_envrcpt(SMFICTX *ctx, char **argv)
{
	struct mctx *m = mctx_get(ctx);
	char *rcpt = bare_address(argv[0]);
	int is_request = request_rcpt(ctx, &rcpt);
	sfsistat rc = SMFIS_CONTINUE;

	if (m->login == NULL) {
		if (is_request) {
			log_info(queue_id(ctx), "refused request to=<%s>: not authenticated", rcpt);
			reply(ctx, "550", "5.7.1", REPLY_AUTH_FIRST);
			rc = SMFIS_REJECT;
		} else
			rc = SMFIS_ACCEPT;	/* ordinary mail: out of our way */
	} else if (is_request && (m->nrcpt > 0 || m->request_rcpt != NULL)) {
		log_info(queue_id(ctx), "refused request to=<%s> login=%s: other recipients",
			 rcpt, m->login);
		if (m->request_rcpt != NULL)
			m->mixed = 1;
		reply(ctx, "550", "5.7.1", REPLY_ON_THEIR_OWN);
		rc = SMFIS_REJECT;
	} else if (!is_request && m->request_rcpt != NULL) {
		log_info(queue_id(ctx), "refused to=<%s> login=%s: mixed with a request",
			 rcpt, m->login);
		/* The transaction goes on with the request address alone; the
		 * user was told "on their own", so the request fails too. */
		m->mixed = 1;
		reply(ctx, "550", "5.7.1", REPLY_ON_THEIR_OWN);
		rc = SMFIS_REJECT;
	} else if (is_request) {
		m->request_rcpt = rcpt;
		rcpt = NULL;
		m->nrcpt++;
	} else
		m->nrcpt++;
	free(rcpt);
	return rc;
}

static sfsistat
mlfi_data(SMFICTX *ctx)
{
	struct mctx *m = mctx_get(ctx);

	return m->request_rcpt == NULL ? SMFIS_ACCEPT : SMFIS_CONTINUE;
}

static sfsistat
mlfi_header(SMFICTX *ctx, char *name, char *value)
{
	struct mctx *m = mctx_get(ctx);

	if (strcasecmp(name, "Subject") == 0) {
		if (m->nsubject++ == 0)
			m->subject = xstrdup(value);
	}
	return SMFIS_CONTINUE;
}

static void
progress_tick(void *arg)
{
	smfi_progress((SMFICTX *)arg);
}

/* ask_peer - forward a parsed request and turn the outcome into a reply */
static sfsistat
ask_peer(SMFICTX *ctx, struct mctx *m, const char *qid, const struct request *req)
{
	struct msg q = { 0 }, r = { 0 };
	struct ctl_reply a;
	char *err = NULL;
	sfsistat rc;
	long long wait_ms = conf->commit_timeout * 1000;
	struct ctl_request cr = {
		.op = CTL_OP_REQUEST,
		.id = qid,
		/* The sync daemon must decide before we give up waiting,
		 * with time left to apply the change and answer: a change it
		 * committed after our 4xx would exist although the client
		 * was told to retry. */
		.deadline = now_mono_ms() + wait_ms - (wait_ms >= 4000 ? 1000 : wait_ms / 4),
		.login = m->login,
		.request_address = m->request_rcpt,
		.verb = req->verb,
		.name = req->name,
		.domain = req->name != NULL || req->generate ? req->domain : NULL,
		.note = req->note,
		.generate = req->generate,
		.lifetime = req->lifetime,
	};
	struct ctlsock_opts o = {
		.timeout_ms = (int)wait_ms,
		.tick = progress_tick, .tick_arg = ctx, .tick_ms = 5000,
	};

	ctlproto_request_encode(&cr, &q);
	if (ctlsock_call(conf->control_socket, &q, &r, &o, &err) < 0 ||
	    ctlproto_reply_decode(&r, &a, &err) < 0) {
		log_warnx(qid, "request login=%s %s: sync daemon: %s", m->login,
			  request_verb_name(req->verb), err);
		reply(ctx, "451", "4.3.0", REPLY_UNAVAILABLE);
		rc = SMFIS_TEMPFAIL;
		goto out;
	}
	switch (a.status) {
	case CTL_OK:
		log_info(qid, "request login=%s %s %s: %s", m->login,
			 request_verb_name(req->verb), req->name ? req->name : "-", a.text);
		/* 250, and the request message goes nowhere. */
		rc = SMFIS_DISCARD;
		break;
	case CTL_PERM:
		log_info(qid, "refused request login=%s: %s", m->login, a.text);
		reply(ctx, "550", "5.7.1", a.text);
		rc = SMFIS_REJECT;
		break;
	case CTL_TEMP:
	default:
		log_info(qid, "deferred request login=%s: %s", m->login, a.text);
		reply(ctx, "451", a.dsn ? a.dsn : "4.3.0", *a.text ? a.text : REPLY_UNAVAILABLE);
		rc = SMFIS_TEMPFAIL;
		break;
	}
out:
	free(err);
	msg_clear(&q);
	msg_clear(&r);
	return rc;
}

static sfsistat
mlfi_eom(SMFICTX *ctx)
{
	struct mctx *m = mctx_get(ctx);
	const char *qid = queue_id(ctx);
	struct request req;
	char *subject = NULL, *err = NULL;
	sfsistat rc;

	if (m->request_rcpt == NULL)
		return SMFIS_ACCEPT;
	if (m->mixed) {
		log_info(qid, "refused request login=%s: mixed with other recipients",
			 m->login);
		reply(ctx, "550", "5.7.1", REPLY_ON_THEIR_OWN);
		return SMFIS_REJECT;
	}
	if (m->nsubject > 1) {
		reply(ctx, "550", "5.7.1", "The request has more than one Subject header");
		return SMFIS_REJECT;
	}
	if (request_decode_subject(m->subject ? m->subject : "", &subject, &err) < 0 ||
	    request_parse(subject, strchr(m->request_rcpt, '@') + 1, &conf->domains,
			  &req, &err) < 0) {
		log_info(qid, "refused request login=%s: %s", m->login, err);
		reply(ctx, "550", "5.7.1", err);
		free(subject);
		free(err);
		return SMFIS_REJECT;
	}
	free(subject);

	if (atomic_fetch_add(&inflight, 1) >= FILTER_MAX_INFLIGHT) {
		log_warnx(qid, "deferred request login=%s: %d requests in progress",
			  m->login, FILTER_MAX_INFLIGHT);
		reply(ctx, "451", "4.3.2", "Too many alias requests in progress; "
		      "try again later");
		rc = SMFIS_TEMPFAIL;
	} else
		rc = ask_peer(ctx, m, qid, &req);
	atomic_fetch_sub(&inflight, 1);
	request_clear(&req);
	return rc;
}

static sfsistat
mlfi_abort(SMFICTX *ctx)
{
	struct mctx *m = smfi_getpriv(ctx);

	if (m != NULL)
		mctx_reset(m);
	return SMFIS_CONTINUE;
}

static sfsistat
mlfi_close(SMFICTX *ctx)
{
	struct mctx *m = smfi_getpriv(ctx);

	if (m != NULL) {
		mctx_reset(m);
		free(m);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = "milter-alias",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_SETSYMLIST,
	.xxfi_envfrom = mlfi_envfrom,
	.xxfi_envrcpt = mlfi_envrcpt,
	.xxfi_header = mlfi_header,
	.xxfi_eom = mlfi_eom,
	.xxfi_abort = mlfi_abort,
	.xxfi_close = mlfi_close,
	.xxfi_data = mlfi_data,
	.xxfi_negotiate = mlfi_negotiate,
};

void
filter_set_delimiters(const char *d)
{
	free(delimiters);
	delimiters = xstrdup(d);
}

struct smfiDesc *
filter_desc(const struct conf *c)
{
	conf = c;
	return &desc;
}
