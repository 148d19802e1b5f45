/* fuzz_ctl.c - libFuzzer target: the control socket as the sync daemon
 * reads it.
 *
 * The input is what a client writes on the control socket.  Frames are
 * taken with msg_unframe() (what msg_recv() does on the connection), then
 * each request goes through the checks peer/engine.c makes before it acts
 * (engine_handle, handle_change): the operation, request_verb_parse, the
 * request address, the login, the deadline, request_name_valid and
 * conf_serves_domain, against a fixed configuration loaded once with
 * conf_load().  Only pure functions run: no daemon, no socket, no map.
 *
 * Postconditions: a request that passes the checks names an alias address
 * that is valid (request_address_valid), in a served domain, whose local
 * part is the name and which can be echoed into an SMTP reply; the reply
 * the daemon would send travels back through the codec unchanged.
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
#include "msg.h"
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

/* check_change - handle_change's validation, then the postconditions */
static void
check_change(const struct msg *req, int admin)
{
	const char *login = msg_gets(req, admin ? "owner" : "login");
	const char *from = msg_get(req, "request_address");
	const char *name = msg_gets(req, "name"), *domain = msg_gets(req, "domain");
	enum request_verb verb;
	long long deadline;
	char *address, *key;

	if (request_verb_parse(msg_gets(req, "verb"), &verb) < 0) {
		send_reply("perm", "Unknown command; use new, disable, enable, delete or list");
		return;
	}
	FUZZ_CHECK(strcasecmp(request_verb_name(verb), msg_gets(req, "verb")) == 0,
		   "verb \"%s\" parsed as %s", msg_gets(req, "verb"),
		   request_verb_name(verb));
	if (from == NULL || !conf_is_request_address(conf, from))
		from = conf->request_addresses.v[0];
	FUZZ_CHECK(conf_is_request_address(conf, from), "from is not a request address");
	if (!admin && *login == '\0') {
		send_reply("perm", "Authenticate (SMTP AUTH) before sending alias requests");
		return;
	}
	/* The deadline is only compared with the clock. */
	(void)msg_get_ll(req, "deadline", &deadline);
	if (verb == VERB_LIST)
		return;		/* no name: do_list_mail works on the login */
	if (!request_name_valid(name) || !conf_serves_domain(conf, domain)) {
		send_reply("perm", "Invalid alias name or domain");
		return;
	}
	address = str_lower(xasprintf("%s@%s", name, domain));
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
		FUZZ_CHECK(strcmp(key, name) == 0, "aliases key \"%s\" for name \"%s\"",
			   key, name);
		free(key);
		key = alias_map_key(&a, MAP_FORMAT_VIRTUAL);
		FUZZ_CHECK(strcmp(key, address) == 0, "virtual key \"%s\"", key);
		free(key);
	}
	/* do_new's refusals echo the address or its local part. */
	if (verb == VERB_NEW && strlist_contains(&conf->reserved, name, false)) {
		char *text = xasprintf("Alias name %s is reserved", name);

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
check_request(const struct msg *req)
{
	const char *op = msg_gets(req, "op");

	if (strcmp(op, "request") == 0)
		check_change(req, 0);
	else if (strcmp(op, "admin") == 0)
		check_change(req, 1);
	else if (strcmp(op, "status") == 0 || strcmp(op, "list") == 0 ||
		 strcmp(op, "verify") == 0 || strcmp(op, "journal") == 0)
		return;		/* read-only; list filters are plain strcmp */
	else {
		char *text = xasprintf("unknown operation \"%.40s\"", op);

		send_reply("perm", text);
		free(text);
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
