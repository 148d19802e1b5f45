/* notify.c - compose and queue the daemon's own mails; see notify.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "postfix.h"

static void
rfc5322_date(long long t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static void
iso_date(long long t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M UTC", &tm);
}

/* headers - the common header block */
static void
headers(struct buf *b, const struct conf *conf, const char *from,
	const char *to, const char *subject, const char *msgid)
{
	char date[64];

	rfc5322_date(now_wall(), date, sizeof(date));
	buf_appendf(b, "From: milter-alias <%s>\n", from);
	buf_appendf(b, "To: <%s>\n", to);
	buf_appendf(b, "Subject: %s\n", subject);
	buf_appendf(b, "Date: %s\n", date);
	buf_appendf(b, "Message-ID: <%s.%s@%s>\n", msgid, conf->node_name, conf->node_name);
	buf_appendf(b, "X-Milter-Alias-Server: %s\n", conf->node_name);
	buf_appendf(b, "Auto-Submitted: auto-replied\n");
	buf_appendf(b, "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n");
}

int
notify_confirm(const struct conf *conf, const struct alias *a, const char *from,
	       const char *txn, char **err_r)
{
	struct buf b = { 0 };
	char created[64], *subject;
	int rc;

	subject = xasprintf("Alias %s is ready", a->address);
	headers(&b, conf, from, a->address, subject, txn);
	iso_date(a->created, created, sizeof(created));
	buf_appendf(&b, "Your new alias %s delivers to %s.\n\n", a->address, a->target);
	buf_appendf(&b, "This confirmation was sent to the alias through %s,\n"
		    "so it proves the alias works on that server.\n\n", conf->node_name);
	buf_appendf(&b, "Created: %s on %s\n", created, a->node);
	if (a->note[0] != '\0')
		buf_appendf(&b, "Note:    %s\n", a->note);
	if (a->expires > 0) {
		char until[64];

		utc_date(a->expires, until, sizeof(until));
		buf_appendf(&b, "Expires: %s; then mail to it is refused.\n"
			    "         \"expire %s 30d\" sets a new lifetime, \"expire %s "
			    "never\" removes it.\n", until, a->address, a->address);
	}
	buf_appendf(&b, "\nTo switch it off, send a message to %s with the subject\n"
		    "\"disable %s\" (or \"delete %s\").\n", from, a->address, a->address);
	rc = postfix_sendmail(conf, from, b.data, err_r);
	free(subject);
	buf_free(&b);
	return rc;
}

int
notify_list(const struct conf *conf, const struct aliasmap *map,
	    const char *login, const char *owner_address, const char *from,
	    char **err_r)
{
	struct buf b = { 0 };
	char created[64], expires[64] = "", id[64];
	size_t n = 0;
	int rc;

	snprintf(id, sizeof(id), "list.%lld.%ld", now_wall(), (long)getpid());
	headers(&b, conf, from, owner_address, "Your aliases", id);
	for (size_t i = 0; i < map->n; i++) {
		const struct alias *a = &map->v[i];

		if (strcmp(a->owner, login) != 0)
			continue;
		iso_date(a->created, created, sizeof(created));
		if (a->expires > 0)
			utc_date(a->expires, expires, sizeof(expires));
		buf_appendf(&b, "%-40s %-8s %s  %s%s%s%s\n", a->address,
			    alias_expired(a) ? "expired" : alias_state_name(a->state), created,
			    a->expires > 0 ? (alias_expired(a) ? "expired " : "expires ") : "",
			    a->expires > 0 ? expires : "", a->expires > 0 ? "  " : "", a->note);
		n++;
	}
	if (n == 0)
		buf_appendf(&b, "You have no aliases yet.\n");
	buf_appendf(&b, "\n%zu alias%s for login %s, listed by %s.\n", n,
		    n == 1 ? "" : "es", login, conf->node_name);
	rc = postfix_sendmail(conf, from, b.data, err_r);
	buf_free(&b);
	return rc;
}
