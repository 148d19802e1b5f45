/* fuzz_ctl.c - libFuzzer target: the control socket as the sync daemon
 * reads it.
 *
 * The input is what a client writes on the control socket.  Frames are
 * taken with msg_unframe() (what msg_recv() does on the connection), then
 * each request goes through ctlproto_request_decode() (what
 * peer/ctlserver.c does before the engine sees it) and the checks
 * peer/engine.c's handle_change still makes on the typed request (the
 * request address, conf_serves_domain), against a fixed configuration
 * loaded once with conf_load().  Only pure functions run: no daemon, no
 * socket, no map.
 *
 * Postconditions: a refusal has a reason; a decoded request holds only
 * checked fields (a known op and verb, a login for op=request, printable
 * bounded logins and notes, a valid name and domain unless the verb is
 * list) and encodes back into a record that decodes to the same request;
 * a request that passes the checks names an alias address that is valid
 * (request_address_valid), in a served domain, whose local part is the
 * name and which can be echoed into an SMTP reply; the reply the daemon
 * would send travels back through the codec unchanged.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aliasmap.h"
#include "conf.h"
#include "ctlproto.h"
#include "msg.h"
#include "replies.h"
#include "request.h"
#include "util.h"
#include "fuzz.h"

/* The configuration the checks run against: two served domains, two
 * request addresses, the default reserved names. */
static const char conf_text[] =
	"node_name = \"a.example.org\"\n"
	"domains = {\"example.org\", \"example.net\"}\n"
	"request_address = {\"makealias@example.org\", \"alias@example.net\"}\n"
	"map_file = \"/nonexistent/fuzz/aliases\"\n"
	"state_dir = \"/nonexistent/fuzz\"\n"
	"control_socket = \"/nonexistent/fuzz/control.sock\"\n"
	"max_requests_per_hour = 30\n";

static struct conf *conf;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *path = xasprintf("%s/fuzz_ctl.%ld.conf", fuzz_tmpdir(), (long)getpid());
	char *err = NULL;
	FILE *f = fopen(path, "w");

	(void)argc;
	(void)argv;
	if (f == NULL || fputs(conf_text, f) == EOF || fclose(f) != 0) {
		fprintf(stderr, "fuzz_ctl: cannot write %s\n", path);
		abort();
	}
	if (conf_load(path, &conf, &err) < 0) {
		fprintf(stderr, "fuzz_ctl: conf_load: %s\n", err);
		abort();
	}
	unlink(path);
	free(path);
	return 0;
}

/* send_reply - the daemon's answer must reach the client unchanged */
static void
send_reply(const char *status, const char *text)
{
	struct msg r = { 0 }, back = { 0 };
	struct buf b = { 0 };
	size_t used = 0;
	char *err = NULL;

	msg_set(&r, "status", status);
	msg_set(&r, "text", text);
	msg_frame(&r, &b);
	FUZZ_CHECK(msg_unframe(b.data, b.len, &used, &back, &err) == 1 && used == b.len,
		   "reply does not decode: %s", err ? err : "(null)");
	FUZZ_CHECK(strcmp(msg_gets(&back, "status"), status) == 0 &&
		   strcmp(msg_gets(&back, "text"), text) == 0, "reply changed in transit");
	free(err);
	msg_clear(&r);
	msg_clear(&back);
	buf_free(&b);
}

/* printable_max - no control character, at most max bytes */
static int
printable_max(const char *s, size_t max, int blanks)
{
	size_t n = strlen(s);

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (!blanks && *p == ' '))
			return 0;
	return n <= max;
}

/* same_str - both NULL or equal */
static int
same_str(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* check_reencode - a decoded request encodes into a record that decodes
 * to the same request: what a client sends is what the daemon reads */
static void
check_reencode(const struct ctl_request *req)
{
	struct ctl_request back;
	struct msg m = { 0 };
	char *err = NULL;
	int change = req->op == CTL_OP_REQUEST || req->op == CTL_OP_ADMIN;

	ctlproto_request_encode(req, &m);
	FUZZ_CHECK(ctlproto_request_decode(&m, &back, &err) == 0,
		   "re-encoded %s request refused: %s", ctlproto_op_name(req->op), err);
	FUZZ_CHECK(back.op == req->op && same_str(back.id, req->id) &&
		   back.deadline == req->deadline && same_str(back.login, req->login) &&
		   same_str(back.request_address, req->request_address) &&
		   (!change || back.verb == req->verb) && same_str(back.name, req->name) &&
		   same_str(back.domain, req->domain) && same_str(back.note, req->note) &&
		   same_str(back.owner, req->owner) && same_str(back.address, req->address) &&
		   back.history == req->history, "%s request changed when re-encoded",
		   ctlproto_op_name(req->op));
	msg_clear(&m);
	free(err);
}

/* check_change - handle_change's checks on the typed request, then the
 * postconditions */
static void
check_change(const struct msg *m, const struct ctl_request *req)
{
	int admin = req->op == CTL_OP_ADMIN;
	const char *login = admin ? req->owner : req->login;
	const char *from = req->request_address;
	char *address, *key;

	FUZZ_CHECK(strcasecmp(request_verb_name(req->verb), msg_gets(m, "verb")) == 0,
		   "verb \"%s\" parsed as %s", msg_gets(m, "verb"),
		   request_verb_name(req->verb));
	FUZZ_CHECK(admin || (login != NULL && *login != '\0'), "a request without a login");
	FUZZ_CHECK(login == NULL || printable_max(login, CTL_LOGIN_MAX, 0),
		   "login with blanks or control characters, or too long");
	FUZZ_CHECK(!admin || req->verb != VERB_NEW || (login != NULL && *login != '\0'),
		   "admin new without an owner");
	FUZZ_CHECK(req->note == NULL || printable_max(req->note, REQUEST_NOTE_MAX, 1),
		   "note with control characters, or too long");
	FUZZ_CHECK(req->id == NULL || (*req->id != '\0' && printable_max(req->id, CTL_ID_MAX, 0)),
		   "id with blanks or control characters, or too long");
	FUZZ_CHECK(req->deadline >= 0, "negative deadline");
	if (from == NULL || !conf_is_request_address(conf, from))
		from = conf->request_addresses.v[0];
	FUZZ_CHECK(conf_is_request_address(conf, from), "from is not a request address");
	if (req->verb == VERB_LIST) {
		FUZZ_CHECK(req->name == NULL && req->domain == NULL, "list with a name");
		return;		/* no name: do_list_mail works on the login */
	}
	FUZZ_CHECK(request_name_valid(req->name) && request_domain_valid(req->domain),
		   "accepted name \"%s\" or domain \"%s\"", req->name, req->domain);
	if (!conf_serves_domain(conf, req->domain)) {
		send_reply("perm", REPLY_INVALID_ADDRESS);
		return;
	}
	address = str_lower(xasprintf("%s@%s", req->name, req->domain));
	FUZZ_CHECK(request_address_valid(address), "accepted address \"%s\" is invalid",
		   address);
	FUZZ_CHECK(conf_serves_domain(conf, strchr(address, '@') + 1),
		   "accepted address %s is not in a served domain", address);
	FUZZ_CHECK(strchr(address, '@') == strrchr(address, '@'), "two '@' in %s", address);
	FUZZ_CHECK(fuzz_printable(address) && fuzz_reply_safe(address),
		   "accepted address cannot be echoed in a reply");
	{
		struct alias a = { .address = address };

		key = alias_map_key(&a, MAP_FORMAT_ALIASES);
		FUZZ_CHECK(strcmp(key, req->name) == 0, "aliases key \"%s\" for name \"%s\"",
			   key, req->name);
		free(key);
		key = alias_map_key(&a, MAP_FORMAT_VIRTUAL);
		FUZZ_CHECK(strcmp(key, address) == 0, "virtual key \"%s\"", key);
		free(key);
	}
	/* do_new's refusals echo the address or its local part. */
	if (req->verb == VERB_NEW && strlist_contains(&conf->reserved, req->name, false)) {
		char *text = xasprintf("Alias name %s is reserved", req->name);

		FUZZ_CHECK(fuzz_reply_safe(text), "reply text not safe");
		send_reply("perm", text);
		free(text);
	} else {
		char *text = xasprintf("Alias %s already exists", address);

		send_reply("perm", text);
		free(text);
	}
	free(address);
}

static void
check_request(const struct msg *m)
{
	struct ctl_request req;
	enum ctl_op op;
	char *err = NULL;

	if (ctlproto_request_decode(m, &req, &err) < 0) {
		FUZZ_CHECK(err != NULL && *err != '\0', "refused without a reason");
		/* Only an unknown op is echoed; every other reason is ours. */
		FUZZ_CHECK(ctlproto_op_parse(msg_gets(m, "op"), &op) < 0 ||
			   (fuzz_printable(err) && fuzz_reply_safe(err)),
			   "refusal \"%s\" cannot go into a reply", err);
		send_reply("perm", err);
		free(err);
		return;
	}
	FUZZ_CHECK(ctlproto_op_parse(msg_gets(m, "op"), &op) == 0 && op == req.op,
		   "op \"%s\" decoded as %s", msg_gets(m, "op"), ctlproto_op_name(req.op));
	check_reencode(&req);
	switch (req.op) {
	case CTL_OP_REQUEST:
	case CTL_OP_ADMIN:
		check_change(m, &req);
		break;
	case CTL_OP_LIST:
		/* read-only; the filters are plain strcmp */
		FUZZ_CHECK(!req.history || req.address != NULL, "history without an address");
		FUZZ_CHECK(req.owner == NULL || printable_max(req.owner, CTL_LOGIN_MAX, 0),
			   "owner with blanks or control characters, or too long");
		FUZZ_CHECK(req.address == NULL || printable_max(req.address, CTL_ADDRESS_MAX, 0),
			   "address with blanks or control characters, or too long");
		break;
	case CTL_OP_STATUS:
	case CTL_OP_VERIFY:
	case CTL_OP_JOURNAL:
	case CTL_OP_PROBE:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct msg req = { 0 };
	size_t off = 0;

	/* One request per connection in the daemon; a client may still write
	 * several frames, and each must be judged on its own. */
	for (int n = 0; n < 8 && off < size; n++) {
		size_t used = 0;
		char *err = NULL;
		int rc = msg_unframe(p + off, size - off, &used, &req, &err);

		if (rc <= 0) {
			FUZZ_CHECK(rc == 0 || err != NULL, "refused without a reason");
			free(err);
			break;
		}
		check_request(&req);
		msg_clear(&req);
		off += used;
	}
	msg_clear(&req);
	return 0;
}
