/* aliasctl.c - milter-aliasctl: inspect and administer milter-alias-peer.
 *
 * Every verb talks to the daemon over the control socket; administrator
 * changes go through the daemon's one commit path, exactly like requests
 * by mail.  Exit status: 0 success, 1 refused or unhealthy, 2 usage error
 * or the daemon cannot be reached.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf.h"
#include "ctlproto.h"
#include "ctlsock.h"
#include "privs.h"
#include "tls.h"
#include "msg.h"
#include "request.h"
#include "setup.h"

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
		"  add ADDRESS --owner LOGIN [--note TEXT] [--expires LIFETIME]\n"
		"  disable ADDRESS | enable ADDRESS | delete ADDRESS\n"
		"  expire ADDRESS LIFETIME|never   (LIFETIME: 30d, 4w, 2m)\n"
		"  verify | journal | keygen | pin\n"
		"  postfix-setup [--apply]\n");
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

/* call - one exchange with the daemon: resp holds the whole reply, *r
 * its common part (borrowed from resp); exits 2 when the daemon cannot
 * be reached or does not answer sensibly */
static void
call(struct ctl *c, const struct ctl_request *req, struct msg *resp,
     struct ctl_reply *r)
{
	struct ctlsock_opts o = {
		.timeout_ms = CTL_TIMEOUT_MS, .item = collect_item, .item_arg = c,
	};
	struct msg q = { 0 };
	char *err = NULL;

	ctlproto_request_encode(req, &q);
	if (ctlsock_call(c->conf->control_socket, &q, resp, &o, &err) < 0)
		die(2, "%s (is milter-alias-peer running?)", err);
	if (ctlproto_reply_decode(resp, r, &err) < 0)
		die(2, "milter-alias-peer sent %s", err);
	msg_clear(&q);
}

/* finish - print a simple reply; returns the exit status */
static int
finish(struct ctl *c, const struct ctl_reply *r)
{
	int ok = r->status == CTL_OK;

	if (c->json) {
		printf("{\"status\": ");
		json_print_string(stdout, ctlproto_status_name(r->status));
		printf(", \"text\": ");
		json_print_string(stdout, r->text);
		printf("}\n");
	} else
		fprintf(ok ? stdout : stderr, "%s%s\n", ok ? "" : "milter-aliasctl: ",
			r->text);
	return ok ? 0 : 1;
}

static const char *const alias_keys[] = {
	"address", "target", "owner", "state", "created", "node", "note", "updated",
	"expires", "lifetime",
};

/* expires_cell - when the alias expires (ISO), "expired ..." once it has,
 * or "-" */
static void
expires_cell(const struct msg *m, char *out, size_t len)
{
	char when[32];

	if (msg_gets(m, "expires")[0] == '\0') {
		snprintf(out, len, "-");
		return;
	}
	iso_time(msg_gets(m, "expires"), when, sizeof(when));
	snprintf(out, len, "%s%s", when, strcmp(msg_gets(m, "state"), "disabled") == 0 &&
		 strtoll(msg_gets(m, "expires"), NULL, 10) <=
		 strtoll(msg_gets(m, "updated"), NULL, 10) ? " (expired)" : "");
}

/* alias_json - one alias as a JSON object */
static void
alias_json(const struct msg *m)
{
	char when[32];

	printf("{");
	for (size_t k = 0; k < N_ELEMENTS(alias_keys); k++) {
		const char *v = msg_gets(m, alias_keys[k]);

		printf("%s\"%s\": ", k ? ", " : "", alias_keys[k]);
		if (strcmp(alias_keys[k], "expires") == 0 ||
		    strcmp(alias_keys[k], "lifetime") == 0) {
			/* null: the alias does not expire */
			if (*v == '\0')
				printf("null");
			else if (strcmp(alias_keys[k], "lifetime") == 0)
				printf("%lld", strtoll(v, NULL, 10));
			else {
				iso_time(v, when, sizeof(when));
				json_print_string(stdout, when);
			}
		} else if (strcmp(alias_keys[k], "created") == 0 ||
		    strcmp(alias_keys[k], "updated") == 0) {
			iso_time(v, when, sizeof(when));
			json_print_string(stdout, when);
		} else
			json_print_string(stdout, v);
	}
	printf("}");
}

static void
print_aliases(struct ctl *c)
{
	char created[32], expires[48];

	if (c->json) {
		printf("[");
		for (size_t i = 0; i < c->nitems; i++) {
			printf("%s\n  ", i ? "," : "");
			alias_json(&c->items[i]);
		}
		printf("%s]\n", c->nitems ? "\n" : "");
		return;
	}
	printf("%-36s %-28s %-12s %-8s %-20s %-20s %-20s %s\n", "ADDRESS", "TARGET",
	       "OWNER", "STATE", "CREATED", "EXPIRES", "NODE", "NOTE");
	for (size_t i = 0; i < c->nitems; i++) {
		const struct msg *m = &c->items[i];

		iso_time(msg_gets(m, "created"), created, sizeof(created));
		expires_cell(m, expires, sizeof(expires));
		printf("%-36s %-28s %-12s %-8s %-20s %-20s %-20s %s\n", msg_gets(m, "address"),
		       msg_gets(m, "target"), msg_gets(m, "owner"), msg_gets(m, "state"),
		       created, expires, msg_gets(m, "node"), msg_gets(m, "note"));
	}
}

/* print_show - one alias (the first item), then its history items */
static void
print_show(struct ctl *c)
{
	static const char *const hkeys[] = { "time", "state", "target", "txn", "coord" };
	size_t nhist = c->nitems - 1;
	char when[32], until[32];

	c->nitems = 1;
	if (c->json) {
		printf("{\"alias\": ");
		alias_json(&c->items[0]);
		printf(", \"history\": [");
	} else {
		print_aliases(c);
		printf("\nHISTORY (as applied on this node)\n");
	}
	for (size_t i = 1; i <= nhist; i++) {
		const struct msg *m = &c->items[i];

		iso_time(msg_gets(m, "time"), when, sizeof(when));
		if (*msg_gets(m, "expires") != '\0')
			iso_time(msg_gets(m, "expires"), until, sizeof(until));
		if (c->json) {
			printf("%s{", i > 1 ? ", " : "");
			for (size_t k = 0; k < N_ELEMENTS(hkeys); k++) {
				printf("%s\"%s\": ", k ? ", " : "", hkeys[k]);
				if (k == 0)
					json_print_string(stdout, when);
				else
					json_print_string(stdout, msg_gets(m, hkeys[k]));
			}
			/* expires: the lifetime's end after this change (null:
			 * none); expired: this change was the expiry */
			printf(", \"expires\": ");
			if (*msg_gets(m, "expires") != '\0')
				json_print_string(stdout, until);
			else
				printf("null");
			printf(", \"expired\": %s}", strcmp(msg_gets(m, "expired"), "1") == 0 ?
			       "true" : "false");
		} else
			printf("%s  %-8s -> %s  txn %s (coordinator %s)%s%s\n", when,
			       strcmp(msg_gets(m, "expired"), "1") == 0 ? "expired" :
			       msg_gets(m, "state"), msg_gets(m, "target"),
			       msg_gets(m, "txn"), msg_gets(m, "coord"),
			       *msg_gets(m, "expires") != '\0' ? "  expires " : "",
			       *msg_gets(m, "expires") != '\0' ? until : "");
	}
	if (c->json)
		printf("]}\n");
	c->nitems = nhist + 1;
}

/* peer_keys - the status keys of peer i: name, connected, last_contact,
 * digest_equal, error, resolve_check */
#define PEER_KEYS 6
static void
peer_keys(long long i, char k[PEER_KEYS][64])
{
	static const char *const suffix[PEER_KEYS] = {
		"", "_connected", "_last_contact", "_digest_equal", "_error",
		"_resolve_check",
	};

	for (int j = 0; j < PEER_KEYS; j++)
		snprintf(k[j], 64, "peer%lld%s", i, suffix[j]);
}

static int
verb_status(struct ctl *c)
{
	static const char *const keys[] = {
		"node", "aliases", "active", "digest", "in_flight", "in_doubt",
		"undelivered", "map_dirty", "journal_bytes", "map_writable",
		"resolve_check",
	};
	const struct ctl_request req = { .op = CTL_OP_STATUS };
	struct msg resp = { 0 };
	struct ctl_reply r;
	long long npeers = 0;
	int healthy, rc;

	call(c, &req, &resp, &r);
	if (msg_get(&resp, "node") == NULL) {
		/* Refused (permission) or an error: say so, not an empty table. */
		rc = finish(c, &r);
		msg_clear(&resp);
		return rc == 0 ? 1 : rc;
	}
	msg_get_ll(&resp, "peers", &npeers);
	/* Healthy: a request could succeed right now. */
	healthy = r.status == CTL_OK &&
		strcmp(msg_gets(&resp, "map_dirty"), "0") == 0 &&
		strcmp(msg_gets(&resp, "map_writable"), "yes") == 0 &&
		strcmp(msg_gets(&resp, "resolve_check"), "ok") == 0 &&
		msg_get(&resp, "map_error") == NULL;
	/* Healthy: every peer answers and no map differs. */
	for (long long i = 0; i < npeers; i++) {
		char k[PEER_KEYS][64];

		peer_keys(i, k);
		if (strcmp(msg_gets(&resp, k[1]), "yes") != 0 ||
		    strcmp(msg_gets(&resp, k[3]), "no") == 0 ||
		    strcmp(msg_gets(&resp, k[5]), "failing") == 0)
			healthy = 0;
	}
	if (c->json) {
		static const char *const numbers[] = {
			"aliases", "active", "in_flight", "in_doubt", "undelivered",
			"journal_bytes",
		};

		printf("{\"healthy\": %s, \"node\": ", healthy ? "true" : "false");
		json_print_string(stdout, msg_gets(&resp, "node"));
		printf(", \"digest\": ");
		json_print_string(stdout, msg_gets(&resp, "digest"));
		printf(", \"map_dirty\": %s",
		       strcmp(msg_gets(&resp, "map_dirty"), "0") ? "true" : "false");
		printf(", \"map_writable\": %s",
		       strcmp(msg_gets(&resp, "map_writable"), "yes") ? "false" : "true");
		printf(", \"resolve_check\": ");
		json_print_string(stdout, msg_gets(&resp, "resolve_check"));
		printf(", \"resolve_error\": ");
		json_print_string(stdout, msg_gets(&resp, "resolve_error"));
		printf(", \"map_error\": ");
		json_print_string(stdout, msg_gets(&resp, "map_error"));
		for (size_t i = 0; i < N_ELEMENTS(numbers); i++) {
			long long v = 0;

			msg_get_ll(&resp, numbers[i], &v);
			printf(", \"%s\": %lld", numbers[i], v);
		}
		printf(", \"peers\": [");
		for (long long i = 0; i < npeers; i++) {
			char k[PEER_KEYS][64];
			long long last = 0;
			const char *eq;

			peer_keys(i, k);
			msg_get_ll(&resp, k[2], &last);
			eq = msg_gets(&resp, k[3]);
			printf("%s{\"name\": ", i ? ", " : "");
			json_print_string(stdout, msg_gets(&resp, k[0]));
			printf(", \"connected\": %s, \"last_contact\": %lld, \"digest_equal\": %s, "
			       "\"error\": ", strcmp(msg_gets(&resp, k[1]), "yes") == 0 ?
			       "true" : "false", last, strcmp(eq, "yes") == 0 ? "true" :
			       strcmp(eq, "no") == 0 ? "false" : "null");
			json_print_string(stdout, msg_gets(&resp, k[4]));
			printf(", \"resolve_check\": ");
			json_print_string(stdout, msg_gets(&resp, k[5]));
			printf("}");
		}
		printf("]}\n");
	} else {
		char when[32];

		for (size_t i = 0; i < N_ELEMENTS(keys); i++)
			printf("%-14s %s\n", keys[i], msg_gets(&resp, keys[i]));
		if (msg_get(&resp, "resolve_error") != NULL)
			printf("%-14s %s (milter-aliasctl postfix-setup names the map "
			       "and the fix)\n", "resolve_error", msg_gets(&resp, "resolve_error"));
		if (msg_get(&resp, "map_error") != NULL)
			printf("%-14s %s (changes are refused until the file is fixed; "
			       "it is not rewritten)\n", "map_error", msg_gets(&resp, "map_error"));
		for (long long i = 0; i < npeers; i++) {
			char k[PEER_KEYS][64];

			peer_keys(i, k);
			if (strcmp(msg_gets(&resp, k[2]), "0") == 0)
				snprintf(when, sizeof(when), "never");
			else
				iso_time(msg_gets(&resp, k[2]), when, sizeof(when));
			printf("%-14s %s connected=%s last_contact=%s digest_equal=%s "
			       "resolve_check=%s%s%s\n",
			       "peer", msg_gets(&resp, k[0]), msg_gets(&resp, k[1]), when,
			       msg_gets(&resp, k[3]), msg_gets(&resp, k[5]), *msg_gets(&resp, k[4]) &&
			       strcmp(msg_gets(&resp, k[1]), "yes") != 0 ? " error=" : "",
			       strcmp(msg_gets(&resp, k[1]), "yes") != 0 ? msg_gets(&resp, k[4]) : "");
		}
		printf("%-14s %s\n", "healthy", healthy ? "yes" : "no");
	}
	msg_clear(&resp);
	return healthy ? 0 : 1;
}

/* verb_verify - compare with every peer: 0 identical, 1 differ, 2 a peer
 * could not be asked */
static int
verb_verify(struct ctl *c)
{
	const struct ctl_request req = { .op = CTL_OP_VERIFY };
	struct msg resp = { 0 };
	struct ctl_reply r;
	size_t ndiff = 0, nunreach = 0;
	const char *map_error;
	int rc;

	call(c, &req, &resp, &r);
	if (r.status != CTL_OK)
		return finish(c, &r);
	if (c->json)
		printf("{\"differences\": [");
	for (size_t i = 0; i < c->nitems; i++) {
		const struct msg *m = &c->items[i];

		if (strcmp(msg_gets(m, CTL_KEY_ITEM), "diff") == 0) {
			if (c->json) {
				printf("%s\n  {\"peer\": ", ndiff ? "," : "");
				json_print_string(stdout, msg_gets(m, "peer"));
				printf(", \"address\": ");
				json_print_string(stdout, msg_gets(m, "address"));
				printf(", \"here\": ");
				json_print_string(stdout, msg_gets(m, "here"));
				printf(", \"there\": ");
				json_print_string(stdout, msg_gets(m, "there"));
				printf("}");
			} else
				printf("%s differs from %s:\n  here:  %s\n  there: %s\n",
				       msg_gets(m, "address"), msg_gets(m, "peer"),
				       msg_gets(m, "here"), msg_gets(m, "there"));
			ndiff++;
		} else if (strcmp(msg_gets(m, CTL_KEY_ITEM), "unreachable") == 0) {
			if (!c->json)
				fprintf(stderr, "milter-aliasctl: peer %s could not be asked: %s\n",
					msg_gets(m, "peer"), msg_gets(m, "error"));
			nunreach++;
		}
	}
	map_error = msg_get(&resp, "map_error");
	if (c->json) {
		printf("%s], \"unreachable\": %zu, \"identical\": %s, \"map_error\": ",
		       ndiff ? "\n" : "", nunreach,
		       ndiff == 0 && nunreach == 0 && map_error == NULL ? "true" : "false");
		json_print_string(stdout, map_error ? map_error : "");
		printf("}\n");
	} else if (map_error != NULL)
		printf("this node's map file cannot be read, so what it holds differs "
		       "from what it compared: %s\n", map_error);
	else if (ndiff == 0 && nunreach == 0)
		printf("identical: this node and every peer hold the same aliases\n");
	rc = nunreach > 0 ? 2 : ndiff > 0 || map_error != NULL ? 1 : 0;
	msg_clear(&resp);
	return rc;
}

/* verb_journal - pending and in-doubt changes */
static int
verb_journal(struct ctl *c)
{
	const struct ctl_request req = { .op = CTL_OP_JOURNAL };
	struct msg resp = { 0 };
	struct ctl_reply r;
	static const char *const keys[] = {
		"txn", "coordinator", "address", "verb", "state", "phase", "age_ms",
	};

	call(c, &req, &resp, &r);
	if (c->json) {
		printf("[");
		for (size_t i = 0; i < c->nitems; i++) {
			printf("%s\n  {", i ? "," : "");
			for (size_t k = 0; k < N_ELEMENTS(keys); k++) {
				printf("%s\"%s\": ", k ? ", " : "", keys[k]);
				json_print_string(stdout, msg_gets(&c->items[i], keys[k]));
			}
			printf("}");
		}
		printf("%s]\n", c->nitems ? "\n" : "");
	} else if (c->nitems == 0)
		printf("no pending or in-doubt changes\n");
	else
		for (size_t i = 0; i < c->nitems; i++) {
			const struct msg *m = &c->items[i];

			printf("%s %s %s %s (coordinator %s, %s ms): %s\n", msg_gets(m, "txn"),
			       msg_gets(m, "verb"), msg_gets(m, "address"), msg_gets(m, "state"),
			       msg_gets(m, "coordinator"), msg_gets(m, "age_ms"),
			       msg_gets(m, "phase"));
		}
	msg_clear(&resp);
	return 0;
}

static int
verb_list(struct ctl *c, const char *owner, const char *address)
{
	const struct ctl_request req = {
		.op = CTL_OP_LIST, .owner = owner, .address = address,
		.history = address != NULL,
	};
	struct msg resp = { 0 };
	struct ctl_reply r;
	int rc;

	call(c, &req, &resp, &r);
	rc = r.status == CTL_OK ? 0 : 1;
	if (rc != 0)
		rc = finish(c, &r);
	else if (address != NULL && (c->nitems == 0 ||
				     strcmp(msg_gets(&c->items[0], CTL_KEY_ITEM), "alias") != 0))
		die(1, "there is no alias %s", address);
	else if (address != NULL)
		print_show(c);
	else
		print_aliases(c);
	msg_clear(&resp);
	return rc;
}

static int
verb_change(struct ctl *c, enum request_verb verb, const char *address,
	    const char *owner, const char *note, long long lifetime)
{
	char *copy = str_lower(xstrdup(address)), *at = strchr(copy, '@');
	struct ctl_request req = {
		.op = CTL_OP_ADMIN, .verb = verb, .owner = owner, .note = note,
		.lifetime = lifetime,
	};
	struct msg resp = { 0 };
	struct ctl_reply r;
	int rc;

	if (at == NULL || !request_address_valid(copy))
		die(2, "\"%s\" is not an alias address (name@domain)", address);
	*at = '\0';
	req.name = copy;
	req.domain = at + 1;
	call(c, &req, &resp, &r);
	rc = finish(c, &r);
	free(copy);
	msg_clear(&resp);
	return rc;
}

/* verb_keygen - create the TLS key and certificate if missing */
static int
verb_keygen(struct ctl *c)
{
	const struct conf *conf = c->conf;
	char *dir = xstrdup(conf->tls_key_file), *err = NULL;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	int rc;

	/* Run as root, keygen hands the files to the daemons' user. */
	if (geteuid() == 0 && privs_lookup(conf->user, &uid, &gid, &err) < 0)
		die(1, "%s", err);
	if (mkdir(dirname(dir), 0750) == 0 && geteuid() == 0 &&
	    chown(dir, uid, gid) < 0)
		die(1, "chown(%s): %s", dir, strerror(errno));
	free(dir);
	tls_global_init();
	rc = tls_keygen(conf->tls_key_file, conf->tls_cert_file, conf->node_name, &err);
	if (rc < 0)
		die(1, "keygen: %s", err);
	if (rc == 1 && geteuid() == 0 &&
	    (chown(conf->tls_key_file, uid, gid) < 0 ||
	     chown(conf->tls_cert_file, uid, gid) < 0))
		die(1, "chown of the key files: %s", strerror(errno));
	if (c->json)
		printf("{\"created\": %s, \"key_file\": \"%s\", \"cert_file\": \"%s\"}\n",
		       rc == 1 ? "true" : "false", conf->tls_key_file, conf->tls_cert_file);
	else
		printf("%s %s and %s\n", rc == 1 ? "created" : "kept existing",
		       conf->tls_key_file, conf->tls_cert_file);
	tls_global_deinit();
	return 0;
}

/* verb_postfix_setup - report (or with --apply make) the Postfix wiring;
 * exit 0 nothing needed / applied, 1 changes pending / failed, 2 error */
static int
verb_postfix_setup(struct ctl *c, int apply)
{
	struct setup_options o = { .apply = apply, .json = c->json };

	return postfix_setup(c->conf, &o);
}

/* verb_pin - print this node's pin, one line */
static int
verb_pin(struct ctl *c)
{
	char *pin = NULL, *err = NULL;

	tls_global_init();
	if (tls_pin_of_cert_file(c->conf->tls_cert_file, &pin, &err) < 0)
		die(1, "pin: %s (run milter-aliasctl keygen first)", err);
	if (c->json)
		printf("{\"pin\": \"%s\"}\n", pin);
	else
		printf("%s\n", pin);
	free(pin);
	tls_global_deinit();
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "owner", required_argument, NULL, 'o' },
		{ "note", required_argument, NULL, 'n' },
		{ "expires", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "apply", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_file = DEFAULT_CONFIG_FILE, *owner = NULL, *note = NULL;
	const char *verb, *arg = NULL, *arg2 = NULL, *expires = NULL;
	long long lifetime = 0;
	struct ctl c = { 0 };
	char *err = NULL;
	int ch, rc, apply = 0;

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
		case 'e':
			expires = optarg;
			break;
		case 'a':
			apply = 1;
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
	if (optind < argc && strcmp(verb, "expire") == 0)
		arg2 = argv[optind++];
	if (optind < argc)
		die(2, "%s: unexpected argument \"%s\"", verb, argv[optind]);
	if (expires != NULL && strcmp(verb, "add") != 0)
		die(2, "--expires belongs to add only (use expire ADDRESS LIFETIME)");
	if (expires != NULL || arg2 != NULL) {
		const char *w = expires ? expires : arg2;

		if (arg2 != NULL && strcasecmp(arg2, "never") == 0)
			lifetime = REQUEST_LIFETIME_NEVER;
		else if (request_duration_parse(w, &lifetime, &err) < 0)
			die(2, "%s", err);
	}
	if (note != NULL && strlen(note) > REQUEST_NOTE_MAX)
		die(2, "--note is longer than %d characters", REQUEST_NOTE_MAX);

	if (apply && strcmp(verb, "postfix-setup") != 0)
		die(2, "--apply belongs to postfix-setup only");
	if (conf_load(config_file, &c.conf, &err) < 0)
		die(2, "%s", err);

	if (strcmp(verb, "status") == 0 && arg == NULL)
		rc = verb_status(&c);
	else if (strcmp(verb, "list") == 0 && arg == NULL)
		rc = verb_list(&c, owner, NULL);
	else if (strcmp(verb, "show") == 0 && arg != NULL) {
		char *address = str_lower(xstrdup(arg));

		rc = verb_list(&c, NULL, address);
		free(address);
	}
	else if (strcmp(verb, "add") == 0) {
		if (arg == NULL || owner == NULL)
			die(2, "add needs ADDRESS and --owner LOGIN");
		rc = verb_change(&c, VERB_NEW, arg, owner, note ? note : "", lifetime);
	} else if (strcmp(verb, "expire") == 0) {
		if (arg == NULL || arg2 == NULL)
			die(2, "expire needs ADDRESS and a LIFETIME (30d, 4w, 2m) or never");
		rc = verb_change(&c, VERB_EXPIRE, arg, NULL, NULL, lifetime);
	} else if ((strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0 ||
		    strcmp(verb, "delete") == 0)) {
		enum request_verb v = VERB_DISABLE;

		if (arg == NULL)
			die(2, "%s needs an alias address", verb);
		(void)request_verb_parse(verb, &v);
		rc = verb_change(&c, v, arg, NULL, NULL, 0);
	} else if (strcmp(verb, "verify") == 0 && arg == NULL)
		rc = verb_verify(&c);
	else if (strcmp(verb, "journal") == 0 && arg == NULL)
		rc = verb_journal(&c);
	else if (strcmp(verb, "keygen") == 0 && arg == NULL)
		rc = verb_keygen(&c);
	else if (strcmp(verb, "pin") == 0 && arg == NULL)
		rc = verb_pin(&c);
	else if (strcmp(verb, "postfix-setup") == 0) {
		if (arg != NULL)
			die(2, "postfix-setup: unexpected argument \"%s\"", arg);
		rc = verb_postfix_setup(&c, apply);
	}
	else if (strcmp(verb, "status") == 0 || strcmp(verb, "list") == 0 ||
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
