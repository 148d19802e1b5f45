/* notify.c - compose and queue the daemon's own mails; see notify.h. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "notify.h"
#include "postfix.h"
#include "request.h"

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
notify_login_valid(const char *login)
{
	size_t len = strlen(login);

	if (len == 0 || len > 254)
		return 0;
	for (const char *p = login; *p; p++) {
		unsigned char c = (unsigned char)*p;

		/* printable ASCII, nothing a header or an address list reads
		 * as structure */
		if (c <= 0x20 || c >= 0x7f || strchr(",;:<>()[]\\\"", c) != NULL)
			return 0;
	}
	return 1;
}

int
notify_compose_confirm(const struct conf *conf, const struct alias *a,
		       const char *from, const char *txn, struct buf *b, char **err_r)
{
	char created[64], *subject;

	if (!request_address_valid(a->address)) {
		set_error(err_r, "the alias address is not a plain address; no mail composed");
		return -1;
	}
	subject = xasprintf("Alias %s is ready", a->address);
	headers(b, conf, from, a->address, subject, txn);
	iso_date(a->created, created, sizeof(created));
	buf_appendf(b, "Your new alias %s delivers to %s.\n\n", a->address, a->target);
	buf_appendf(b, "This confirmation was sent to the alias through %s,\n"
		    "so it proves the alias works on that server.\n\n", conf->node_name);
	buf_appendf(b, "Created: %s on %s\n", created, a->node);
	if (a->note[0] != '\0')
		buf_appendf(b, "Note:    %s\n", a->note);
	if (a->expires > 0) {
		char until[64];

		utc_date(a->expires, until, sizeof(until));
		buf_appendf(b, "Expires: %s; then mail to it is refused.\n"
			    "         \"expire %s 30d\" sets a new lifetime, \"expire %s "
			    "never\" removes it.\n", until, a->address, a->address);
	}
	buf_appendf(b, "\nTo switch it off, send a message to %s with the subject\n"
		    "\"disable %s\" (or \"delete %s\").\n", from, a->address, a->address);
	free(subject);
	return 0;
}

int
notify_confirm(const struct conf *conf, const struct alias *a, const char *from,
	       const char *txn, char **err_r)
{
	struct buf b = { 0 };
	int rc = notify_compose_confirm(conf, a, from, txn, &b, err_r);

	if (rc == 0)
		rc = postfix_sendmail(conf, from, b.data, err_r);
	buf_free(&b);
	return rc;
}

int
notify_compose_list(const struct conf *conf, const struct aliasmap *map,
		    const char *login, const char *owner_address, const char *from,
		    struct buf *b, char **err_r)
{
	char created[64], expires[64] = "", id[64];
	size_t n = 0;

	/* Both end up in the header of a mail sendmail -t reads its
	 * recipients from: nothing but one plain address goes there. */
	if (!notify_login_valid(login)) {
		set_error(err_r, "the login is not a plain name (control characters, "
			  "white space or address punctuation); no list sent");
		return -1;
	}
	if (!request_target_valid(owner_address)) {
		set_error(err_r, "the owner address of login %s is not one plain "
			  "address; no list sent", login);
		return -1;
	}
	snprintf(id, sizeof(id), "list.%lld.%ld", now_wall(), (long)getpid());
	headers(b, conf, from, owner_address, "Your aliases", id);
	for (size_t i = 0; i < map->n; i++) {
		const struct alias *a = &map->v[i];

		if (strcmp(a->owner, login) != 0)
			continue;
		iso_date(a->created, created, sizeof(created));
		if (a->expires > 0)
			utc_date(a->expires, expires, sizeof(expires));
		buf_appendf(b, "%-40s %-8s %s  %s%s%s%s\n", a->address,
			    alias_expired(a) ? "expired" : alias_state_name(a->state), created,
			    a->expires > 0 ? (alias_expired(a) ? "expired " : "expires ") : "",
			    a->expires > 0 ? expires : "", a->expires > 0 ? "  " : "", a->note);
		n++;
	}
	if (n == 0)
		buf_appendf(b, "You have no aliases yet.\n");
	buf_appendf(b, "\n%zu alias%s for login %s, listed by %s.\n", n,
		    n == 1 ? "" : "es", login, conf->node_name);
	return 0;
}

int
notify_list(const struct conf *conf, const struct aliasmap *map,
	    const char *login, const char *owner_address, const char *from,
	    char **err_r)
{
	struct buf b = { 0 };
	int rc = notify_compose_list(conf, map, login, owner_address, from, &b, err_r);

	if (rc == 0)
		rc = postfix_sendmail(conf, from, b.data, err_r);
	buf_free(&b);
	return rc;
}

/* ---- confirmations kept until sendmail takes them ---- */

static int
txn_name_ok(const char *txn)
{
	if (*txn == '\0' || strlen(txn) > 64)
		return 0;
	for (const char *p = txn; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'))
			return 0;
	return 1;
}

static char *
kept_dir(const struct conf *conf)
{
	return xasprintf("%s/" NOTIFY_KEPT_DIR, conf->state_dir);
}

int
notify_keep(const struct conf *conf, const char *txn, const char *address,
	    const char *from, char **err_r)
{
	char *dir = kept_dir(conf), *path = NULL, *text = NULL;
	int rc = -1;

	if (!txn_name_ok(txn) || strchr(address, '\n') || strchr(from, '\n')) {
		set_error(err_r, "cannot keep confirmation %s: bad fields", txn);
		goto out;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		set_error(err_r, "mkdir(%s): %s", dir, strerror(errno));
		goto out;
	}
	path = xasprintf("%s/%s", dir, txn);
	text = xasprintf("%s\n%s\n", address, from);
	rc = fsutil_write_atomic(path, text, strlen(text), 0600, err_r);
out:
	free(dir);
	free(path);
	free(text);
	return rc;
}

void
notify_forget(const struct conf *conf, const char *txn)
{
	char *path;

	if (!txn_name_ok(txn))
		return;
	path = xasprintf("%s/" NOTIFY_KEPT_DIR "/%s", conf->state_dir, txn);
	if (unlink(path) == 0)
		fsutil_fsync_parent(path, NULL);
	free(path);
}

int
notify_kept(const struct conf *conf, struct strlist *out, char **err_r)
{
	char *dir = kept_dir(conf);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL) {
		int missing = errno == ENOENT;

		if (!missing)
			set_error(err_r, "opendir(%s): %s", dir, strerror(errno));
		free(dir);
		return missing ? 0 : -1;
	}
	while ((de = readdir(d)) != NULL) {
		char *path, *data = NULL, *nl;
		size_t len = 0;

		if (!txn_name_ok(de->d_name))
			continue;	/* ".", "..", a temporary file */
		path = xasprintf("%s/%s", dir, de->d_name);
		if (fsutil_read_file(path, &data, &len, 4096, NULL) == 0 &&
		    (nl = strchr(data, '\n')) != NULL && nl[1] != '\0') {
			*nl = '\0';
			nl[1 + strcspn(nl + 1, "\n")] = '\0';
			strlist_add(out, de->d_name);
			strlist_add(out, data);
			strlist_add(out, nl + 1);
		}
		free(data);
		free(path);
	}
	closedir(d);
	free(dir);
	return 0;
}
