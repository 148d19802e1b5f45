/* milter-driver.c - drive a milter over its socket the way Postfix does.
 *
 * A small MTA-side implementation of the Sendmail 8 milter protocol,
 * version 6, modelled on Postfix 3.7 (src/milter/milter8.c): it offers
 * every action (0x1FF, SMFIF_SETSYMLIST included) and every protocol bit
 * (0x1FFFFF: the NO* and NR_* bits, SKIP, RCPT_REJ, HDR_LEADSPC), then
 * honours what the milter asked for:
 *   - a stage the milter said NO* to is not sent (its macros still are,
 *     as Postfix does);
 *   - a stage with an NR_* bit is sent without waiting for a reply;
 *   - the milter's macro lists (SMFIR_SETSYMLIST in the negotiation reply)
 *     replace Postfix's default list for that stage; macros without a
 *     value are never sent;
 *   - after ACCEPT or DISCARD nothing more is sent for the message, after
 *     a rejected MAIL or DATA nothing more for the transaction, and DATA
 *     is not sent when no recipient was accepted;
 *   - SMFIR_PROGRESS means "keep waiting" (each packet restarts the
 *     read timeout, like Postfix's per-read timeout).
 * The queue id macro "i" appears once the first recipient is accepted,
 * as with Postfix (the queue file is opened after the first RCPT).
 *
 * usage: milter-driver [-v] [-t SECONDS] -s SOCKET [SCRIPT]
 *   SOCKET is unix:/path, local:/path or /path; SCRIPT defaults to stdin.
 *
 * Script, one command a line ('#' starts a comment line):
 *   connect [CLIENT_NAME [CLIENT_ADDR]]  open, negotiate, CONNECT
 *   helo NAME
 *   mail <ADDR> [auth=LOGIN] [author=ADDR] [ESMTP-ARG...]
 *                                        auth= missing: not authenticated
 *   rcpt <ADDR> [ESMTP-ARG...]
 *   data
 *   header NAME [VALUE]                  VALUE may use \r \n \t \\ \xHH
 *   eoh                                  (sent by body/eom when missing)
 *   body TEXT                            one body line, escapes as above
 *   eom
 *   unknown COMMAND
 *   abort                                SMFIC_ABORT (also sent before a
 *                                        new MAIL and before QUIT)
 *   quit                                 SMFIC_QUIT and close
 *   sleep SECONDS
 *   expect continue|accept|reject|tempfail|discard|skipped|noreply
 *   expect reply CODE DSN [TEXT]         SMFIR_REPLYCODE; CODE and DSN are
 *                                        fnmatch(3) patterns ("451", "4.*"),
 *                                        TEXT a case-insensitive substring
 *   expect time MIN MAX                  the last command took MIN..MAX s
 *   expect progress [N]                  it got at least N (1) SMFIR_PROGRESS
 * "expect" checks the outcome of the last event command.  "skipped" means
 * the event was not sent (negotiated away, or the message was already
 * decided); "noreply" that it was sent under an NR_* bit.
 * ${NAME} in a line is replaced by the environment variable NAME.
 *
 * Exit status: 0 all expectations met, 1 a mismatch or protocol/I-O
 * error (one clear line on stderr), 2 usage or script syntax error.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

/* Protocol constants (libmilter/mfdef.h), spelled out so that the driver
 * does not depend on the header of the library under test. */
#define PROT_VERSION	6
#define MAX_PACKET	(1024 * 1024)

#define C_ABORT		'A'
#define C_BODY		'B'
#define C_CONNECT	'C'
#define C_MACRO		'D'
#define C_BODYEOB	'E'
#define C_HELO		'H'
#define C_HEADER	'L'
#define C_MAIL		'M'
#define C_EOH		'N'
#define C_OPTNEG	'O'
#define C_QUIT		'Q'
#define C_RCPT		'R'
#define C_DATA		'T'
#define C_UNKNOWN	'U'

#define R_ACCEPT	'a'
#define R_CONTINUE	'c'
#define R_DISCARD	'd'
#define R_PROGRESS	'p'
#define R_REJECT	'r'
#define R_SKIP		's'
#define R_TEMPFAIL	't'
#define R_REPLYCODE	'y'
#define R_SHUTDOWN	'4'
#define R_CONN_FAIL	'f'

/* What Postfix 3.7 offers (milter8.c, milter_protocol = 6). */
#define OFFER_ACTIONS	0x000001FFUL	/* SMFI_CURR_ACTS, SETSYMLIST too */
#define OFFER_PROTOCOL	0x001FFFFFUL	/* SMFI_CURR_PROT: NO*, NR_*, ... */

#define P_NOCONNECT	0x00000001UL
#define P_NOHELO	0x00000002UL
#define P_NOMAIL	0x00000004UL
#define P_NORCPT	0x00000008UL
#define P_NOBODY	0x00000010UL
#define P_NOHDRS	0x00000020UL
#define P_NOEOH		0x00000040UL
#define P_NR_HDR	0x00000080UL
#define P_NOUNKNOWN	0x00000100UL
#define P_NODATA	0x00000200UL
#define P_SKIP		0x00000400UL
#define P_RCPT_REJ	0x00000800UL
#define P_NR_CONN	0x00001000UL
#define P_NR_HELO	0x00002000UL
#define P_NR_MAIL	0x00004000UL
#define P_NR_RCPT	0x00008000UL
#define P_NR_DATA	0x00010000UL
#define P_NR_UNKN	0x00020000UL
#define P_NR_EOH	0x00040000UL
#define P_NR_BODY	0x00080000UL
#define P_HDR_LEADSPC	0x00100000UL

/* Macro stages of SMFIR_SETSYMLIST (SMFIM_*). */
enum { M_CONNECT, M_HELO, M_ENVFROM, M_ENVRCPT, M_DATA, M_EOM, M_EOH, M_N };

/* Postfix 3.7 defaults, postconf -d milter_*_macros. */
static const char *const default_macros[M_N] = {
	[M_CONNECT] = "j {daemon_name} {daemon_addr} v _",
	[M_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	[M_ENVFROM] = ("i {auth_type} {auth_authen} {auth_author} {mail_addr} "
		       "{mail_host} {mail_mailer}"),
	[M_ENVRCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	[M_DATA] = "i",
	[M_EOM] = "i",
	[M_EOH] = "i",
};

/* The outcome of the last event command. */
enum outcome {
	O_NONE,
	O_CONTINUE,
	O_ACCEPT,
	O_REJECT,
	O_TEMPFAIL,
	O_DISCARD,
	O_REPLY,
	O_SKIPPED,
	O_NOREPLY,
	O_SHUTDOWN,
	O_CONN_FAIL,
};

static const char *const outcome_names[] = {
	[O_NONE] = "nothing",
	[O_CONTINUE] = "continue",
	[O_ACCEPT] = "accept",
	[O_REJECT] = "reject",
	[O_TEMPFAIL] = "tempfail",
	[O_DISCARD] = "discard",
	[O_REPLY] = "reply",
	[O_SKIPPED] = "skipped",
	[O_NOREPLY] = "noreply",
	[O_SHUTDOWN] = "shutdown",
	[O_CONN_FAIL] = "connfail",
};

/* Message state, as Postfix's MILTER8_STAT_* plus smtpd's view. */
enum mstate {
	MS_IDLE,		/* no MAIL yet (or after ABORT) */
	MS_ENVELOPE,		/* MAIL sent */
	MS_DONE,		/* decided: accepted, discarded, rejected */
};

struct driver {
	/* options */
	const char *socket_path;
	const char *script_name;
	int timeout_ms;
	int verbose;

	/* connection */
	int fd;
	int conn_done;		/* connection-level accept/reject: send nothing */
	unsigned long actions;	/* what the milter asked for */
	unsigned long protocol;
	char *macros[M_N];	/* the milter's own lists, NULL = default */
	char client_name[256];
	char client_addr[64];
	char helo[256];

	/* message */
	enum mstate ms;
	const char *done_why;	/* why nothing more is sent */
	int nrcpt_ok;
	int data_sent;
	int eoh_sent;
	int body_skip;		/* SMFIR_SKIP seen */
	int nmsg;
	char queue_id[32];
	char *auth;		/* {auth_authen} or NULL */
	char *author;
	char mail_addr[512];
	char rcpt_addr[512];

	/* last event */
	const char *last_event;
	enum outcome last;
	char last_reply[2048];
	double last_secs;
	int last_progress;

	int lineno;
};

static struct driver D;

/* ---- errors and logging ---- */

static void __attribute__((format(printf, 2, 0)))
vmessage(const char *kind, const char *fmt, va_list ap)
{
	fprintf(stderr, "milter-driver: %s:%d: %s", D.script_name, D.lineno, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* fail - an expectation or the protocol went wrong: exit 1 */
static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
	exit(1);
}

/* die_script - the script or the command line is wrong: exit 2 */
static void __attribute__((noreturn, format(printf, 1, 2)))
die_script(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("script error: ", fmt, ap);
	va_end(ap);
	exit(2);
}

static void __attribute__((format(printf, 1, 2)))
trace(const char *fmt, ...)
{
	va_list ap;

	if (!D.verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static double
now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "milter-driver: out of memory\n");
		exit(1);
	}
	return p;
}

static char *
xstrdup_(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

/* printable - a short printable rendering of binary data for traces */
static const char *
printable(const char *s, size_t len)
{
	static char out[600];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\0");
		else if (c < 0x20 || c > 0x7e)
			o += (size_t)snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

/* ---- packets ---- */

struct pkt {
	char *data;
	size_t len;
	size_t cap;
};

static void
pkt_add(struct pkt *p, const void *data, size_t len)
{
	if (p->len + len > p->cap) {
		size_t cap = p->cap ? p->cap : 256;
		char *n;

		while (cap < p->len + len)
			cap *= 2;
		n = xmalloc(cap);
		if (p->len)
			memcpy(n, p->data, p->len);
		free(p->data);
		p->data = n;
		p->cap = cap;
	}
	memcpy(p->data + p->len, data, len);
	p->len += len;
}

static void
pkt_str(struct pkt *p, const char *s)
{
	pkt_add(p, s, strlen(s) + 1);
}

static void
pkt_u32(struct pkt *p, unsigned long v)
{
	uint32_t n = htonl((uint32_t)v);

	pkt_add(p, &n, 4);
}

static void
write_all(const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = D.fd, .events = POLLOUT };
		ssize_t w;
		int r = poll(&pfd, 1, D.timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			fail("timeout writing to the milter (%d ms)", D.timeout_ms);
		if (r < 0)
			fail("poll: %s", strerror(errno));
		w = send(D.fd, p, len, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			fail("write to the milter failed: %s", strerror(errno));
		p += w;
		len -= (size_t)w;
	}
}

/* send_cmd - one command packet: length, command byte, data */
static void
send_cmd(char cmd, const struct pkt *body)
{
	size_t len = 1 + (body ? body->len : 0);
	uint32_t n = htonl((uint32_t)len);
	struct pkt p = { 0 };

	pkt_add(&p, &n, 4);
	pkt_add(&p, &cmd, 1);
	if (body && body->len)
		pkt_add(&p, body->data, body->len);
	write_all(p.data, p.len);
	free(p.data);
}

/* read_full - exactly len bytes within the timeout; 0 at clean EOF on the
 * first byte when eof_ok, else fails */
static int
read_full(void *buf, size_t len, int eof_ok, const char *what)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = D.fd, .events = POLLIN };
		ssize_t r;
		int n = poll(&pfd, 1, D.timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("poll: %s", strerror(errno));
		if (n == 0)
			fail("timeout: %s did not come within %d ms", what, D.timeout_ms);
		r = read(D.fd, p + got, len - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			fail("read from the milter failed (%s): %s", what, strerror(errno));
		if (r == 0) {
			if (got == 0 && eof_ok)
				return 0;
			fail("the milter closed the connection while we waited for %s", what);
		}
		got += (size_t)r;
	}
	return 1;
}

/* read_packet - one reply packet; *data is malloc'ed and NUL-terminated */
static char
read_packet(char **data, size_t *len, const char *what)
{
	uint32_t n;
	size_t plen;
	char cmd, *buf;

	read_full(&n, 4, 0, what);
	plen = ntohl(n);
	if (plen < 1 || plen > MAX_PACKET)
		fail("bad packet length %zu from the milter (%s)", plen, what);
	read_full(&cmd, 1, 0, what);
	buf = xmalloc(plen);
	if (plen > 1)
		read_full(buf, plen - 1, 0, what);
	buf[plen - 1] = '\0';
	*data = buf;
	*len = plen - 1;
	return cmd;
}

/* ---- macros ---- */

/* macro_value - what Postfix would know for a macro name now, or NULL */
static const char *
macro_value(const char *name)
{
	static char buf[600];

	if (strcmp(name, "j") == 0)
		return "mail.example.org";
	if (strcmp(name, "{daemon_name}") == 0)
		return "ORIGINATING";
	if (strcmp(name, "{daemon_addr}") == 0)
		return "127.0.0.1";
	if (strcmp(name, "v") == 0)
		return "Postfix 3.7.11";
	if (strcmp(name, "_") == 0) {
		snprintf(buf, sizeof(buf), "%s [%s]", D.client_name, D.client_addr);
		return buf;
	}
	if (strcmp(name, "{client_addr}") == 0)
		return D.client_addr;
	if (strcmp(name, "{client_name}") == 0)
		return D.client_name;
	if (strcmp(name, "{client_port}") == 0)
		return "41234";
	if (strcmp(name, "{client_ptr}") == 0)
		return D.client_name;
	if (strcmp(name, "{client_resolve}") == 0)
		return "OK";
	if (strcmp(name, "i") == 0)
		return D.queue_id[0] ? D.queue_id : NULL;
	if (strcmp(name, "{auth_authen}") == 0)
		return D.auth;
	if (strcmp(name, "{auth_type}") == 0)
		return D.auth ? "PLAIN" : NULL;
	if (strcmp(name, "{auth_author}") == 0)
		return D.author;
	if (strcmp(name, "{mail_addr}") == 0)
		return D.ms != MS_IDLE ? D.mail_addr : NULL;
	if (strcmp(name, "{mail_host}") == 0 || strcmp(name, "{rcpt_host}") == 0) {
		const char *a = name[1] == 'm' ? D.mail_addr : D.rcpt_addr;
		const char *at = strrchr(a, '@');

		return at ? at + 1 : NULL;
	}
	if (strcmp(name, "{mail_mailer}") == 0)
		return D.ms != MS_IDLE ? "smtp" : NULL;
	if (strcmp(name, "{rcpt_addr}") == 0)
		return D.rcpt_addr[0] ? D.rcpt_addr : NULL;
	if (strcmp(name, "{rcpt_mailer}") == 0)
		return D.rcpt_addr[0] ? "virtual" : NULL;
	if (strcmp(name, "{mail_size}") == 0 || strcmp(name, "{msg_size}") == 0)
		return NULL;
	return NULL;
}

/* send_macros - SMFIC_MACRO for a stage, as Postfix: the milter's own list
 * if it gave one, else the default; only macros that have a value */
static void
send_macros(int stage, char event)
{
	const char *list = D.macros[stage] && D.macros[stage][0] ?
		D.macros[stage] : default_macros[stage];
	char *copy = xstrdup_(list), *save = NULL;
	struct pkt p = { 0 };
	char shown[1024] = "";
	size_t o = 0;

	pkt_add(&p, &event, 1);
	for (char *t = strtok_r(copy, " ,\t", &save); t; t = strtok_r(NULL, " ,\t", &save)) {
		const char *v = macro_value(t);

		if (v == NULL || *v == '\0')
			continue;
		pkt_str(&p, t);
		pkt_str(&p, v);
		if (o < sizeof(shown))
			o += (size_t)snprintf(shown + o, sizeof(shown) - o, " %s=%s", t, v);
	}
	trace("> MACRO %c%s", event, o ? shown : " (none)");
	send_cmd(C_MACRO, &p);
	free(p.data);
	free(copy);
}

/* ---- events ---- */

static void
set_last(const char *event, enum outcome o, const char *reply)
{
	D.last_event = event;
	D.last = o;
	if (reply != D.last_reply)
		snprintf(D.last_reply, sizeof(D.last_reply), "%s", reply ? reply : "");
}

/* skipped - the event is not sent */
static void
skipped(const char *event, const char *why)
{
	trace("  %s skipped: %s", event, why);
	set_last(event, O_SKIPPED, why);
	D.last_secs = 0;
	D.last_progress = 0;
}

/* message_done - nothing more for this message */
static void
message_done(const char *why)
{
	D.ms = MS_DONE;
	D.done_why = why;
}

/* await_reply - read replies until a decision; modification actions are
 * only valid after end of message and are reported in the trace */
static enum outcome
await_reply(char event, const char *name, double start)
{
	char what[64];

	snprintf(what, sizeof(what), "the reply to %s", name);
	for (;;) {
		char *data;
		size_t len;
		char cmd = read_packet(&data, &len, what);

		switch (cmd) {
		case R_PROGRESS:
			D.last_progress++;
			trace("< PROGRESS (%.3f s)", now_secs() - start);
			free(data);
			continue;
		case R_CONTINUE:
		case R_ACCEPT:
		case R_DISCARD:
		case R_REJECT:
		case R_TEMPFAIL:
		case R_SKIP:
		case R_SHUTDOWN:
		case R_CONN_FAIL:
			if (len != 0)
				fail("reply '%c' to %s carries %zu unexpected data bytes",
				     cmd, name, len);
			free(data);
			D.last_secs = now_secs() - start;
			switch (cmd) {
			case R_CONTINUE:
				return O_CONTINUE;
			case R_ACCEPT:
				return O_ACCEPT;
			case R_DISCARD:
				return O_DISCARD;
			case R_REJECT:
				return O_REJECT;
			case R_TEMPFAIL:
				return O_TEMPFAIL;
			case R_SHUTDOWN:
				return O_SHUTDOWN;
			case R_CONN_FAIL:
				return O_CONN_FAIL;
			default:	/* R_SKIP: no more body chunks */
				if (event != C_BODY || !(D.protocol & P_SKIP))
					fail("SMFIR_SKIP in reply to %s is not allowed", name);
				D.body_skip = 1;
				return O_CONTINUE;
			}
		case R_REPLYCODE:
			D.last_secs = now_secs() - start;
			/* The text comes NUL-terminated (libmilter sends it so). */
			if (len > 0 && data[len - 1] == '\0')
				len--;
			/* Postfix checks "[45]DD[ -][45]" like this. */
			if (len < 5 || (data[0] != '4' && data[0] != '5') ||
			    !isdigit((unsigned char)data[1]) ||
			    !isdigit((unsigned char)data[2]) ||
			    (data[3] != ' ' && data[3] != '-') || data[4] != data[0])
				fail("malformed SMFIR_REPLYCODE to %s: \"%s\"", name,
				     printable(data, len));
			if (strlen(data) != len)
				fail("SMFIR_REPLYCODE to %s holds a NUL byte", name);
			snprintf(D.last_reply, sizeof(D.last_reply), "%s", data);
			free(data);
			return O_REPLY;
		case 'h': case 'i': case 'm': case '+': case '-': case '2':
		case 'e': case 'b': case 'q':
			if (event != C_BODYEOB)
				fail("modification action '%c' in reply to %s (only valid "
				     "at end of message)", cmd, name);
			trace("< ACTION '%c' %s", cmd, printable(data, len));
			free(data);
			continue;
		default:
			fail("unexpected reply '%c' (%zu bytes) to %s", cmd, len, name);
		}
	}
}

/* event - send one event (macros first) and take its reply.
 * stage < 0: no macros.  Returns the outcome. */
static enum outcome
event(char cmd, const char *name, int stage, unsigned long no_bit,
      unsigned long nr_bit, const struct pkt *body)
{
	double start;
	enum outcome o;

	if (stage >= 0)
		send_macros(stage, cmd);
	if (no_bit && (D.protocol & no_bit)) {
		skipped(name, "the milter negotiated it away");
		return O_SKIPPED;
	}
	trace("> %s %s", name, body ? printable(body->data, body->len) : "");
	D.last_progress = 0;
	start = now_secs();
	send_cmd(cmd, body);
	if (nr_bit && (D.protocol & nr_bit)) {
		D.last_secs = now_secs() - start;
		trace("  (no reply: NR bit negotiated)");
		set_last(name, O_NOREPLY, NULL);
		return O_NOREPLY;
	}
	o = await_reply(cmd, name, start);
	set_last(name, o, o == O_REPLY ? D.last_reply : NULL);	/* kept as read */
	trace("< %s%s%s (%.3f s)", outcome_names[o], o == O_REPLY ? " " : "",
	      o == O_REPLY ? D.last_reply : "", D.last_secs);
	if (o == O_SHUTDOWN || o == O_CONN_FAIL) {
		D.conn_done = 1;
		message_done("the milter ended the connection");
	}
	return o;
}

/* need_connection - a message-level command needs an open, live session */
static int
connection_usable(const char *name)
{
	if (D.fd < 0)
		die_script("\"%s\" without \"connect\"", name);
	if (D.conn_done) {
		skipped(name, "the milter decided for the whole connection");
		return 0;
	}
	return 1;
}

static void
do_abort(void)
{
	if (D.fd < 0 || D.conn_done)
		return;
	trace("> ABORT");
	send_cmd(C_ABORT, NULL);
	D.ms = MS_IDLE;
	D.done_why = NULL;
	D.nrcpt_ok = D.data_sent = D.eoh_sent = D.body_skip = 0;
	D.queue_id[0] = '\0';
	D.rcpt_addr[0] = '\0';
	free(D.auth);
	free(D.author);
	D.auth = D.author = NULL;
}

static void
do_quit(void)
{
	if (D.fd < 0)
		return;
	if (D.ms != MS_IDLE)
		do_abort();
	trace("> QUIT");
	/* The milter may be gone already (connection-level decision). */
	if (!D.conn_done) {
		uint32_t n = htonl(1);
		char buf[5];

		memcpy(buf, &n, 4);
		buf[4] = C_QUIT;
		if (send(D.fd, buf, 5, MSG_NOSIGNAL) < 0)
			trace("  (QUIT not delivered: %s)", strerror(errno));
	}
	close(D.fd);
	D.fd = -1;
	D.conn_done = 0;
	D.ms = MS_IDLE;
	for (int i = 0; i < M_N; i++) {
		free(D.macros[i]);
		D.macros[i] = NULL;
	}
}

/* negotiate - SMFIC_OPTNEG both ways, with the milter's macro lists */
static void
negotiate(void)
{
	struct pkt p = { 0 };
	char *data;
	size_t len, off;
	uint32_t v[3];
	char cmd;

	pkt_u32(&p, PROT_VERSION);
	pkt_u32(&p, OFFER_ACTIONS);
	pkt_u32(&p, OFFER_PROTOCOL);
	trace("> OPTNEG version=%d actions=0x%lx protocol=0x%lx", PROT_VERSION,
	      OFFER_ACTIONS, OFFER_PROTOCOL);
	send_cmd(C_OPTNEG, &p);
	free(p.data);

	cmd = read_packet(&data, &len, "the negotiation reply");
	if (cmd != C_OPTNEG)
		fail("negotiation: expected 'O', got '%c'", cmd);
	if (len < 12)
		fail("negotiation reply too short (%zu bytes)", len);
	memcpy(v, data, 12);
	for (int i = 0; i < 3; i++)
		v[i] = ntohl(v[i]);
	if (v[0] < 2 || v[0] > PROT_VERSION)
		fail("negotiation: milter protocol version %u (MTA speaks %d)",
		     (unsigned)v[0], PROT_VERSION);
	if ((v[1] & OFFER_ACTIONS) != v[1])
		fail("negotiation: milter wants actions 0x%x beyond the offered 0x%lx",
		     (unsigned)v[1], OFFER_ACTIONS);
	if ((v[2] & OFFER_PROTOCOL) != v[2])
		fail("negotiation: milter wants protocol bits 0x%x beyond the offered 0x%lx",
		     (unsigned)v[2], OFFER_PROTOCOL);
	D.actions = v[1];
	D.protocol = v[2];
	trace("< OPTNEG version=%u actions=0x%lx protocol=0x%lx", (unsigned)v[0],
	      D.actions, D.protocol);

	/* Macro lists: 32-bit stage, NUL-terminated list, repeated. */
	for (off = 12; off < len; ) {
		uint32_t st;
		size_t slen;

		if (len - off < 5)
			fail("negotiation: truncated macro list at byte %zu", off);
		if (!(D.actions & 0x100))
			fail("negotiation: macro lists without SMFIF_SETSYMLIST");
		memcpy(&st, data + off, 4);
		st = ntohl(st);
		off += 4;
		slen = strnlen(data + off, len - off);
		if (slen == len - off)
			fail("negotiation: macro list not NUL-terminated");
		if (st >= M_N)
			fail("negotiation: macro list for unknown stage %u", (unsigned)st);
		free(D.macros[st]);
		D.macros[st] = xstrdup_(data + off);
		trace("< SETSYMLIST stage %u: %s", (unsigned)st, D.macros[st]);
		off += slen + 1;
	}
	free(data);
}

static void
cmd_connect(char *args)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *name = strtok(args, " \t"), *addr = strtok(NULL, " \t");
	struct pkt p = { 0 };
	enum outcome o;
	uint16_t port = htons(41234);

	if (D.fd >= 0)
		do_quit();
	snprintf(D.client_name, sizeof(D.client_name), "%s",
		 name ? name : "client.example.net");
	snprintf(D.client_addr, sizeof(D.client_addr), "%s", addr ? addr : "192.0.2.10");
	if (strlen(D.socket_path) >= sizeof(sun.sun_path))
		die_script("socket path %s is too long", D.socket_path);
	strcpy(sun.sun_path, D.socket_path);
	if ((D.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		fail("socket: %s", strerror(errno));
	if (connect(D.fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		fail("cannot connect to %s: %s", D.socket_path, strerror(errno));
	trace("= connected to %s", D.socket_path);
	D.conn_done = 0;
	D.ms = MS_IDLE;
	negotiate();

	pkt_str(&p, D.client_name);
	pkt_add(&p, "4", 1);
	pkt_add(&p, &port, 2);
	pkt_str(&p, D.client_addr);
	o = event(C_CONNECT, "CONNECT", M_CONNECT, P_NOCONNECT, P_NR_CONN, &p);
	free(p.data);
	if (o == O_ACCEPT || o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY ||
	    o == O_DISCARD)
		D.conn_done = 1;
}

static void
cmd_helo(char *args)
{
	struct pkt p = { 0 };
	enum outcome o;

	if (!connection_usable("HELO"))
		return;
	snprintf(D.helo, sizeof(D.helo), "%s", *args ? args : "client.example.net");
	pkt_str(&p, D.helo);
	o = event(C_HELO, "HELO", M_HELO, P_NOHELO, P_NR_HELO, &p);
	free(p.data);
	if (o == O_ACCEPT || o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		D.conn_done = 1;
}

static void
cmd_mail(char *args)
{
	struct pkt p = { 0 };
	char *tok, *save = NULL;
	enum outcome o;
	int n = 0;

	if (D.fd < 0)
		die_script("\"mail\" without \"connect\"");
	if (D.ms != MS_IDLE)
		do_abort();	/* smtpd resets between transactions */
	if (!connection_usable("MAIL"))
		return;
	D.nmsg++;
	D.queue_id[0] = '\0';
	for (tok = strtok_r(args, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (strncmp(tok, "auth=", 5) == 0) {
			free(D.auth);
			D.auth = tok[5] ? xstrdup_(tok + 5) : NULL;
			continue;
		}
		if (strncmp(tok, "author=", 7) == 0) {
			free(D.author);
			D.author = tok[7] ? xstrdup_(tok + 7) : NULL;
			continue;
		}
		if (n++ == 0) {
			size_t l = strlen(tok);

			if (tok[0] != '<' || tok[l - 1] != '>')
				die_script("mail: the address must be in <>, got %s", tok);
			snprintf(D.mail_addr, sizeof(D.mail_addr), "%.*s", (int)(l - 2), tok + 1);
		}
		pkt_str(&p, tok);
	}
	if (n == 0)
		die_script("mail: missing <address>");
	D.ms = MS_ENVELOPE;
	o = event(C_MAIL, "MAIL", M_ENVFROM, P_NOMAIL, P_NR_MAIL, &p);
	free(p.data);
	if (o == O_ACCEPT || o == O_DISCARD)
		message_done("the milter decided at MAIL");
	else if (o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		message_done("MAIL was refused");
}

/* message_usable - the transaction is open and undecided */
static int
message_usable(const char *name)
{
	if (!connection_usable(name))
		return 0;
	if (D.ms == MS_IDLE)
		die_script("\"%s\" without \"mail\"", name);
	if (D.ms == MS_DONE) {
		skipped(name, D.done_why);
		return 0;
	}
	return 1;
}

static void
cmd_rcpt(char *args)
{
	struct pkt p = { 0 };
	char *tok, *save = NULL;
	enum outcome o;
	int n = 0;

	if (!message_usable("RCPT"))
		return;
	if (D.data_sent)
		die_script("rcpt after data");
	for (tok = strtok_r(args, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n++ == 0) {
			size_t l = strlen(tok);

			if (tok[0] != '<' || tok[l - 1] != '>')
				die_script("rcpt: the address must be in <>, got %s", tok);
			snprintf(D.rcpt_addr, sizeof(D.rcpt_addr), "%.*s", (int)(l - 2), tok + 1);
		}
		pkt_str(&p, tok);
	}
	if (n == 0)
		die_script("rcpt: missing <address>");
	o = event(C_RCPT, "RCPT", M_ENVRCPT, P_NORCPT, P_NR_RCPT, &p);
	free(p.data);
	if (o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		return;		/* this recipient only */
	/* Accepted: Postfix opens the queue file now, so "i" exists. */
	if (D.nrcpt_ok++ == 0)
		snprintf(D.queue_id, sizeof(D.queue_id), "4D%04X%04X",
			 (unsigned)getpid() & 0xffff, (unsigned)D.nmsg & 0xffff);
	if (o == O_ACCEPT || o == O_DISCARD)
		message_done("the milter decided at RCPT");
}

static void
cmd_data(void)
{
	enum outcome o;

	if (!message_usable("DATA"))
		return;
	if (D.nrcpt_ok == 0) {
		/* smtpd: "554 5.5.1 Error: no valid recipients" */
		skipped("DATA", "no recipient was accepted");
		message_done("no recipient was accepted");
		return;
	}
	D.data_sent = 1;
	o = event(C_DATA, "DATA", M_DATA, P_NODATA, P_NR_DATA, NULL);
	if (o == O_ACCEPT || o == O_DISCARD)
		message_done("the milter decided at DATA");
	else if (o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		message_done("DATA was refused");
}

/* unescape - \r \n \t \\ \xHH in place; returns the length */
static size_t
unescape(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (*p != '\\' || p[1] == '\0') {
			*o++ = *p;
			continue;
		}
		p++;
		switch (*p) {
		case 'r':
			*o++ = '\r';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'x':
			if (isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
				char hex[3] = { p[1], p[2], '\0' };

				*o++ = (char)strtol(hex, NULL, 16);
				p += 2;
				break;
			}
			die_script("bad \\x escape");
		default:
			*o++ = *p;
		}
	}
	*o = '\0';
	return (size_t)(o - s);
}

static int
in_message(const char *name)
{
	if (!message_usable(name))
		return 0;
	if (!D.data_sent) {
		if (D.nrcpt_ok == 0) {
			skipped(name, "no recipient was accepted");
			return 0;
		}
		die_script("\"%s\" before \"data\"", name);
	}
	return 1;
}

static void
cmd_header(char *args)
{
	struct pkt p = { 0 };
	char *name = args, *value;
	enum outcome o;

	if (!in_message("HEADER"))
		return;
	if (D.eoh_sent)
		die_script("header after the end of the headers");
	value = name + strcspn(name, " \t:");
	if (*value == ':')	/* "header Subject: x" works too */
		*value++ = '\0';
	else if (*value)
		*value++ = '\0';
	if (*name == '\0')
		die_script("header: missing name");
	/* Postfix strips the space after the colon unless HDR_LEADSPC. */
	while (*value == ' ' || *value == '\t')
		value++;
	unescape(value);
	pkt_str(&p, name);
	if (D.protocol & P_HDR_LEADSPC)
		pkt_add(&p, " ", 1);
	pkt_str(&p, value);
	o = event(C_HEADER, "HEADER", -1, P_NOHDRS, P_NR_HDR, &p);
	free(p.data);
	if (o == O_ACCEPT || o == O_DISCARD)
		message_done("the milter decided at a header");
	else if (o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		message_done("the message was refused at a header");
}

static int
send_eoh(void)
{
	enum outcome o;

	if (D.eoh_sent)
		return 1;
	D.eoh_sent = 1;
	o = event(C_EOH, "EOH", M_EOH, P_NOEOH, P_NR_EOH, NULL);
	if (o == O_ACCEPT || o == O_DISCARD)
		message_done("the milter decided at EOH");
	else if (o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		message_done("the message was refused at EOH");
	return D.ms != MS_DONE;
}

static void
cmd_eoh(void)
{
	if (!in_message("EOH"))
		return;
	if (D.eoh_sent)
		die_script("eoh twice");
	send_eoh();
}

static void
cmd_body(char *args)
{
	struct pkt p = { 0 };
	enum outcome o;
	size_t len;

	if (!in_message("BODY"))
		return;
	if (!send_eoh())
		return;
	if (D.body_skip) {
		skipped("BODY", "the milter sent SMFIR_SKIP");
		return;
	}
	len = unescape(args);
	pkt_add(&p, args, len);
	pkt_add(&p, "\r\n", 2);
	o = event(C_BODY, "BODY", -1, P_NOBODY, P_NR_BODY, &p);
	free(p.data);
	if (o == O_ACCEPT || o == O_DISCARD)
		message_done("the milter decided at a body chunk");
	else if (o == O_REJECT || o == O_TEMPFAIL || o == O_REPLY)
		message_done("the message was refused at a body chunk");
}

static void
cmd_eom(void)
{
	if (!in_message("EOM"))
		return;
	if (!send_eoh())
		return;
	event(C_BODYEOB, "EOM", M_EOM, 0, 0, NULL);
	message_done("the message is complete");
}

static void
cmd_unknown(char *args)
{
	struct pkt p = { 0 };

	if (!connection_usable("UNKNOWN"))
		return;
	if (D.ms == MS_DONE) {
		skipped("UNKNOWN", D.done_why);
		return;
	}
	pkt_str(&p, args);
	event(C_UNKNOWN, "UNKNOWN", -1, P_NOUNKNOWN, P_NR_UNKN, &p);
	free(p.data);
}

/* ---- expectations ---- */

static int
ci_contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return n == 0;
}

static void
cmd_expect(char *args)
{
	char *what = strtok(args, " \t"), *rest = strtok(NULL, "");
	enum outcome want = O_NONE;

	if (what == NULL)
		die_script("expect: what?");
	if (D.last == O_NONE)
		die_script("expect before any event");
	if (strcmp(what, "time") == 0) {
		char *a = rest ? strtok(rest, " \t") : NULL, *b = strtok(NULL, " \t");
		double lo, hi;

		if (a == NULL || b == NULL)
			die_script("expect time MIN MAX");
		lo = atof(a);
		hi = atof(b);
		if (D.last_secs < lo || D.last_secs > hi)
			fail("%s took %.3f s, expected between %.3f and %.3f s",
			     D.last_event, D.last_secs, lo, hi);
		trace("  ok: %s took %.3f s", D.last_event, D.last_secs);
		return;
	}
	if (strcmp(what, "progress") == 0) {
		int min = rest ? atoi(rest) : 1;

		if (D.last_progress < min)
			fail("%s: %d SMFIR_PROGRESS packet(s), expected at least %d",
			     D.last_event, D.last_progress, min);
		trace("  ok: %s had %d progress packet(s)", D.last_event, D.last_progress);
		return;
	}
	for (size_t i = 0; i < sizeof(outcome_names) / sizeof(*outcome_names); i++)
		if (strcmp(what, outcome_names[i]) == 0)
			want = (enum outcome)i;
	if (want == O_NONE)
		die_script("expect: unknown outcome \"%s\"", what);
	if (D.last != want) {
		if (D.last == O_REPLY)
			fail("%s: expected %s, got reply \"%s\"", D.last_event, what,
			     D.last_reply);
		if (D.last == O_SKIPPED)
			fail("%s: expected %s, but it was not sent (%s)", D.last_event,
			     what, D.last_reply);
		fail("%s: expected %s, got %s", D.last_event, what, outcome_names[D.last]);
	}
	if (want == O_REPLY) {
		char *code = rest ? strtok(rest, " \t") : NULL;
		char *dsn = code ? strtok(NULL, " \t") : NULL;
		char *text = dsn ? strtok(NULL, "") : NULL;
		char gotcode[4] = "", gotdsn[32] = "";
		const char *gottext = D.last_reply;

		if (code == NULL || dsn == NULL)
			die_script("expect reply CODE DSN [TEXT]");
		/* "550 5.7.1 text" (or "550-..." lines) */
		memcpy(gotcode, D.last_reply, 3);
		gottext = D.last_reply + 4;
		sscanf(gottext, "%31s", gotdsn);
		if (isdigit((unsigned char)gotdsn[0]) && strchr(gotdsn, '.'))
			gottext += strlen(gotdsn);
		else
			gotdsn[0] = '\0';
		while (*gottext == ' ')
			gottext++;
		if (fnmatch(code, gotcode, 0) != 0)
			fail("%s: expected reply code %s, got \"%s\"", D.last_event, code,
			     D.last_reply);
		if (fnmatch(dsn, gotdsn, 0) != 0)
			fail("%s: expected DSN %s, got \"%s\"", D.last_event, dsn,
			     D.last_reply);
		if (text != NULL) {
			while (*text == ' ' || *text == '\t')
				text++;
			if (!ci_contains(gottext, text))
				fail("%s: expected reply text containing \"%s\", got \"%s\"",
				     D.last_event, text, D.last_reply);
		}
	} else if (rest != NULL)
		die_script("expect %s takes no argument", what);
	trace("  ok: %s %s%s%s", D.last_event, what, want == O_REPLY ? " " : "",
	      want == O_REPLY ? D.last_reply : "");
}

/* ---- script ---- */

/* expand - ${NAME} from the environment; caller frees */
static char *
expand(const char *line)
{
	struct pkt p = { 0 };

	for (const char *s = line; *s; ) {
		if (s[0] == '$' && s[1] == '{') {
			const char *end = strchr(s + 2, '}');
			char name[128];
			const char *v;

			if (end == NULL || (size_t)(end - s - 2) >= sizeof(name))
				die_script("bad ${...}");
			memcpy(name, s + 2, (size_t)(end - s - 2));
			name[end - s - 2] = '\0';
			if ((v = getenv(name)) == NULL)
				die_script("${%s} is not set", name);
			pkt_add(&p, v, strlen(v));
			s = end + 1;
			continue;
		}
		pkt_add(&p, s, 1);
		s++;
	}
	pkt_add(&p, "", 1);
	return p.data;
}

static void
run_line(char *line)
{
	char *cmd, *args;
	size_t len = strlen(line);

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	cmd = line + strspn(line, " \t");
	if (*cmd == '\0' || *cmd == '#')
		return;
	args = cmd + strcspn(cmd, " \t");
	if (*args)
		*args++ = '\0';
	/* Leading blanks of the arguments go; header values keep the rest. */
	args += strspn(args, " \t");

	if (strcmp(cmd, "connect") == 0)
		cmd_connect(args);
	else if (strcmp(cmd, "helo") == 0)
		cmd_helo(args);
	else if (strcmp(cmd, "mail") == 0)
		cmd_mail(args);
	else if (strcmp(cmd, "rcpt") == 0)
		cmd_rcpt(args);
	else if (strcmp(cmd, "data") == 0)
		cmd_data();
	else if (strcmp(cmd, "header") == 0)
		cmd_header(args);
	else if (strcmp(cmd, "eoh") == 0)
		cmd_eoh();
	else if (strcmp(cmd, "body") == 0)
		cmd_body(args);
	else if (strcmp(cmd, "eom") == 0)
		cmd_eom();
	else if (strcmp(cmd, "unknown") == 0)
		cmd_unknown(args);
	else if (strcmp(cmd, "abort") == 0) {
		if (D.fd < 0)
			die_script("\"abort\" without \"connect\"");
		do_abort();
	} else if (strcmp(cmd, "quit") == 0)
		do_quit();
	else if (strcmp(cmd, "sleep") == 0) {
		double s = atof(args);
		struct timespec ts = { .tv_sec = (time_t)s,
			.tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

		nanosleep(&ts, NULL);
	} else if (strcmp(cmd, "expect") == 0)
		cmd_expect(args);
	else
		die_script("unknown command \"%s\"", cmd);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: milter-driver [-v] [-t SECONDS] -s SOCKET [SCRIPT]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *sock = getenv("MILTER_SOCKET");
	char line[8192];
	FILE *in = stdin;
	int ch;

	D.fd = -1;
	D.timeout_ms = 30000;
	D.script_name = "<stdin>";
	while ((ch = getopt(argc, argv, "s:t:vh")) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 't':
			D.timeout_ms = (int)(atof(optarg) * 1000);
			if (D.timeout_ms <= 0)
				usage();
			break;
		case 'v':
			D.verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (sock == NULL || optind + 1 < argc)
		usage();
	if (strncmp(sock, "unix:", 5) == 0)
		sock += 5;
	else if (strncmp(sock, "local:", 6) == 0)
		sock += 6;
	else if (sock[0] != '/')
		usage();
	D.socket_path = sock;
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		D.script_name = argv[optind];
		if ((in = fopen(argv[optind], "r")) == NULL) {
			fprintf(stderr, "milter-driver: %s: %s\n", argv[optind], strerror(errno));
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);

	while (fgets(line, sizeof(line), in) != NULL) {
		char *x;

		D.lineno++;
		if (strchr(line, '\n') == NULL && !feof(in))
			die_script("line too long");
		line[strcspn(line, "\r\n")] = '\0';
		if (line[strspn(line, " \t")] == '#')
			continue;	/* comments are not expanded */
		x = expand(line);
		trace("%s:%d: %s", D.script_name, D.lineno, x + strspn(x, " \t"));
		run_line(x);
		free(x);
	}
	if (ferror(in))
		die_script("read error");
	do_quit();
	if (in != stdin)
		fclose(in);
	return 0;
}
