/* aliasctl.c - milter-aliasctl: inspect and administer milter-alias-peer.
 *
 * Every verb talks to the daemon over the control socket; administrator
 * changes go through the daemon's one commit path, exactly like requests
 * by mail.  Exit status: 0 success, 1 refused or unhealthy, 2 usage error
 * or the daemon cannot be reached.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "ctlsock.h"
#include "msg.h"
#include "request.h"

#define CTL_TIMEOUT_MS 60000

struct ctl {
	struct conf *conf;
	int json;
	size_t nitems;
	struct msg *items;
};

static void ATTR_NORETURN
usage(void)
{
	fprintf(stderr,
		"usage: milter-aliasctl [-c config_file] [--json] VERB [ARGS]\n"
		"verbs:\n"
		"  status\n"
		"  list [--owner LOGIN]\n"
		"  show ADDRESS\n"
		"  add ADDRESS --owner LOGIN [--note TEXT]\n"
		"  disable ADDRESS | enable ADDRESS | delete ADDRESS\n");
	exit(2);
}

static void ATTR_NORETURN ATTR_PRINTF(2, 3)
die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("milter-aliasctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void
iso_time(const char *epoch, char *out, size_t len)
{
	time_t t = (time_t)strtoll(epoch, NULL, 10);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
collect_item(void *arg, const struct msg *item)
{
	struct ctl *c = arg;

	c->items = xrealloc(c->items, (c->nitems + 1) * sizeof(*c->items));
	memset(&c->items[c->nitems], 0, sizeof(*c->items));
	for (size_t i = 0; i < item->n; i++)
		msg_set(&c->items[c->nitems], item->v[i].key, item->v[i].value);
	c->nitems++;
}

/* call - one exchange with the daemon; exits 2 when it cannot be reached */
static void
call(struct ctl *c, const struct msg *req, struct msg *resp)
{
	struct ctlsock_opts o = {
		.timeout_ms = CTL_TIMEOUT_MS, .item = collect_item, .item_arg = c,
	};
	char *err = NULL;

	if (ctlsock_call(c->conf->control_socket, req, resp, &o, &err) < 0)
		die(2, "%s (is milter-alias-peer running?)", err);
}

/* finish - print a simple reply; returns the exit status */
static int
finish(struct ctl *c, const struct msg *resp)
{
	int ok = strcmp(msg_gets(resp, "status"), "ok") == 0;

	if (c->json) {
		printf("{\"status\": ");
		json_string(msg_gets(resp, "status"));
		printf(", \"text\": ");
		json_string(msg_gets(resp, "text"));
		printf("}\n");
	} else
		fprintf(ok ? stdout : stderr, "%s%s\n", ok ? "" : "milter-aliasctl: ",
			msg_gets(resp, "text"));
	return ok ? 0 : 1;
}

static const char *const alias_keys[] = {
	"address", "target", "owner", "state", "created", "node", "note", "updated",
};

static void
print_aliases(struct ctl *c)
{
	char created[32];

	if (c->json) {
		printf("[");
		for (size_t i = 0; i < c->nitems; i++) {
			printf("%s\n  {", i ? "," : "");
			for (size_t k = 0; k < N_ELEMENTS(alias_keys); k++) {
				const char *v = msg_gets(&c->items[i], alias_keys[k]);

				printf("%s\"%s\": ", k ? ", " : "", alias_keys[k]);
				if (strcmp(alias_keys[k], "created") == 0 ||
				    strcmp(alias_keys[k], "updated") == 0) {
					iso_time(v, created, sizeof(created));
					json_string(created);
				} else
					json_string(v);
			}
			printf("}");
		}
		printf("%s]\n", c->nitems ? "\n" : "");
		return;
	}
	printf("%-36s %-28s %-12s %-8s %-20s %-20s %s\n", "ADDRESS", "TARGET",
	       "OWNER", "STATE", "CREATED", "NODE", "NOTE");
	for (size_t i = 0; i < c->nitems; i++) {
		const struct msg *m = &c->items[i];

		iso_time(msg_gets(m, "created"), created, sizeof(created));
		printf("%-36s %-28s %-12s %-8s %-20s %-20s %s\n", msg_gets(m, "address"),
		       msg_gets(m, "target"), msg_gets(m, "owner"), msg_gets(m, "state"),
		       created, msg_gets(m, "node"), msg_gets(m, "note"));
	}
}

static int
verb_status(struct ctl *c)
{
	static const char *const keys[] = {
		"node", "aliases", "active", "digest", "peers", "in_flight",
		"map_dirty", "journal_bytes",
	};
	struct msg req = { 0 }, resp = { 0 };
	int healthy;

	msg_set(&req, "op", "status");
	call(c, &req, &resp);
	healthy = strcmp(msg_gets(&resp, "status"), "ok") == 0 &&
		strcmp(msg_gets(&resp, "map_dirty"), "0") == 0;
	if (c->json) {
		printf("{\"healthy\": %s", healthy ? "true" : "false");
		for (size_t i = 0; i < N_ELEMENTS(keys); i++) {
			printf(", \"%s\": ", keys[i]);
			json_string(msg_gets(&resp, keys[i]));
		}
		printf("}\n");
	} else {
		for (size_t i = 0; i < N_ELEMENTS(keys); i++)
			printf("%-14s %s\n", keys[i], msg_gets(&resp, keys[i]));
		printf("%-14s %s\n", "healthy", healthy ? "yes" : "no");
	}
	msg_clear(&req);
	msg_clear(&resp);
	return healthy ? 0 : 1;
}

static int
verb_list(struct ctl *c, const char *owner, const char *address)
{
	struct msg req = { 0 }, resp = { 0 };
	int rc;

	msg_set(&req, "op", "list");
	if (owner != NULL)
		msg_set(&req, "owner", owner);
	if (address != NULL)
		msg_set(&req, "address", address);
	call(c, &req, &resp);
	rc = strcmp(msg_gets(&resp, "status"), "ok") == 0 ? 0 : 1;
	if (rc != 0)
		rc = finish(c, &resp);
	else if (address != NULL && c->nitems == 0)
		die(1, "there is no alias %s", address);
	else
		print_aliases(c);
	msg_clear(&req);
	msg_clear(&resp);
	return rc;
}

static int
verb_change(struct ctl *c, const char *verb, const char *address,
	    const char *owner, const char *note)
{
	struct msg req = { 0 }, resp = { 0 };
	char *copy = str_lower(xstrdup(address)), *at = strchr(copy, '@');
	int rc;

	if (at == NULL || !request_address_valid(copy))
		die(2, "\"%s\" is not an alias address (name@domain)", address);
	*at = '\0';
	msg_set(&req, "op", "admin");
	msg_set(&req, "verb", verb);
	msg_set(&req, "name", copy);
	msg_set(&req, "domain", at + 1);
	if (owner != NULL)
		msg_set(&req, "owner", owner);
	if (note != NULL)
		msg_set(&req, "note", note);
	call(c, &req, &resp);
	rc = finish(c, &resp);
	free(copy);
	msg_clear(&req);
	msg_clear(&resp);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "owner", required_argument, NULL, 'o' },
		{ "note", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_file = DEFAULT_CONFIG_FILE, *owner = NULL, *note = NULL;
	const char *verb, *arg = NULL;
	struct ctl c = { 0 };
	char *err = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_file = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case 'o':
			owner = optarg;
			break;
		case 'n':
			note = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	verb = argv[optind++];
	if (optind < argc)
		arg = argv[optind++];
	if (optind < argc)
		die(2, "%s: unexpected argument \"%s\"", verb, argv[optind]);
	if (note != NULL && strlen(note) > REQUEST_NOTE_MAX)
		die(2, "--note is longer than %d characters", REQUEST_NOTE_MAX);

	if (conf_load(config_file, &c.conf, &err) < 0)
		die(2, "%s", err);

	if (strcmp(verb, "status") == 0 && arg == NULL)
		rc = verb_status(&c);
	else if (strcmp(verb, "list") == 0 && arg == NULL)
		rc = verb_list(&c, owner, NULL);
	else if (strcmp(verb, "show") == 0 && arg != NULL)
		rc = verb_list(&c, NULL, str_lower(xstrdup(arg)));
	else if (strcmp(verb, "add") == 0) {
		if (arg == NULL || owner == NULL)
			die(2, "add needs ADDRESS and --owner LOGIN");
		rc = verb_change(&c, "new", arg, owner, note ? note : "");
	} else if ((strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0 ||
		    strcmp(verb, "delete") == 0)) {
		if (arg == NULL)
			die(2, "%s needs an alias address", verb);
		rc = verb_change(&c, verb, arg, NULL, NULL);
	} else if (strcmp(verb, "status") == 0 || strcmp(verb, "list") == 0 ||
		   strcmp(verb, "show") == 0)
		die(2, "%s: wrong number of arguments", verb);
	else
		die(2, "unknown verb \"%s\" (see milter-aliasctl(8))", verb);

	for (size_t i = 0; i < c.nitems; i++)
		msg_clear(&c.items[i]);
	free(c.items);
	conf_free(&c.conf);
	return rc;
}
