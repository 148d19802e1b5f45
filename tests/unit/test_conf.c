/* test_conf.c - unit tests for common/conf.c: defaults, every key of
 * contract §3, and validation errors that name FILE:LINE: KEY. */
#include "config.h"

#include <pthread.h>

#include "unit.h"
#include "conf.h"

/* Two lines every valid file needs; keys appended start at line 3. */
#define BASE "domains = {\"example.org\"}\nrequest_address = {\"makealias@example.org\"}\n"
/* SHA-256 SPKI pins are 32 bytes: 44 characters of base64. */
#define PIN_A "sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs="
#define PIN_B "sha256//PiPoFgA5WUoziU9lZOGxNIu9egCI1CxKy3PurtWcAJ0="
#define PIN_C "sha256//Ln0sA6lQeuJl7PW1NWiFpTOTogKdJBOUmXJloaJa78Y="

static char *dir;
static int nfiles;

static void
setup(void)
{
	dir = ut_mkdtemp();
	nfiles = 0;
}

static void
teardown(void)
{
	ut_rmtree(&dir);
}

TestSuite(conf, .init = setup, .fini = teardown);

/* conf_file - write text to a fresh file in the test directory */
static char *
conf_file(const char *text)
{
	char name[32];

	snprintf(name, sizeof(name), "test%d.conf", nfiles++);
	return ut_write(dir, name, text);
}

/* load_ok - text must load; caller frees *c */
static struct conf *
load_ok(const char *text)
{
	char *path = conf_file(text), *err = NULL;
	struct conf *c = (struct conf *)1;

	cr_assert_eq(conf_load(path, &c, &err), 0, "refused: %s\n--\n%s", err, text);
	cr_assert_not_null(c);
	cr_assert_null(err);
	cr_assert_str_eq(c->path, path);
	free(path);
	return c;
}

/* load_err - text must be refused with "FILE:LINE: KEY..." (line > 0) or,
 * for line == 0 (a key that is absent), "FILE: KEY..." (line < 0: either),
 * and the reason must contain want */
static void
load_err(const char *text, int line, const char *key, const char *want)
{
	char *path = conf_file(text), *err = NULL, *prefix = NULL;
	struct conf *c = (struct conf *)1;

	cr_assert_eq(conf_load(path, &c, &err), -1, "accepted:\n%s", text);
	cr_assert_null(c, "*conf_r set on failure");
	cr_assert_not_null(err);
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	if (line > 0)
		cr_assert_geq(asprintf(&prefix, "%s:%d: ", path, line), 0);
	else if (line == 0)
		cr_assert_geq(asprintf(&prefix, "%s: ", path), 0);
	else		/* either form */
		cr_assert_geq(asprintf(&prefix, "%s:", path), 0);
	cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0,
		     "error \"%s\" does not start with \"%s\"", err, prefix);
	cr_assert_not_null(strstr(err + strlen(prefix), key),
			   "error \"%s\" does not name key %s", err, key);
	if (want != NULL)
		cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
	free(prefix);
	free(err);
	free(path);
}

/* line3_err - BASE plus one line: the key under test is on line 3 */
static void
line3_err(const char *keyline, const char *key, const char *want)
{
	char *text = NULL;

	cr_assert_geq(asprintf(&text, BASE "%s\n", keyline), 0);
	load_err(text, 3, key, want);
	free(text);
}

static void
line3_ok(const char *keyline)
{
	char *text = NULL;
	struct conf *c;

	cr_assert_geq(asprintf(&text, BASE "%s\n", keyline), 0);
	c = load_ok(text);
	conf_free(&c);
	free(text);
}

/* ===== defaults and values ===== */

Test(conf, defaults)
{
	static const char *const reserved[] = {
		"postmaster", "abuse", "hostmaster", "webmaster", "admin",
		"administrator", "root", "mailer-daemon", "noc", "security",
	};
	struct conf *c = load_ok(BASE);

	cr_assert_not_null(c->node_name);
	cr_assert_neq(c->node_name[0], '\0', "node_name defaults to the host name");
	for (const char *p = c->node_name; *p; p++)
		cr_assert(!(*p >= 'A' && *p <= 'Z') && *p != ' ', "node_name %s", c->node_name);
	cr_assert_eq(c->domains.n, 1);
	cr_assert_str_eq(c->domains.v[0], "example.org");
	cr_assert_eq(c->request_addresses.n, 1);
	cr_assert_str_eq(c->request_addresses.v[0], "makealias@example.org");
	cr_assert_eq(c->map_format, MAP_FORMAT_VIRTUAL);
	cr_assert_str_eq(c->map_file, "/var/lib/milter-alias/aliases");
	cr_assert_str_eq(c->map_type, "lmdb");
	cr_assert_str_eq(c->postfix_config_dir, "/etc/postfix");
	cr_assert_str_eq(c->state_dir, "/var/lib/milter-alias");
	cr_assert_str_eq(c->milter_socket, "unix:/var/spool/postfix/milter-alias/milter.sock");
	cr_assert_str_eq(c->control_socket, "/run/milter-alias/control.sock");
	cr_assert_str_eq(c->sendmail_path, "/usr/sbin/sendmail");
	cr_assert_eq(c->commit_timeout, 20);
	cr_assert_str_eq(c->owner_map, "");
	cr_assert_eq(c->max_aliases_per_user, 500);
	cr_assert_eq(c->max_requests_per_hour, 30);
	cr_assert_eq(c->reserved.n, N_ELEMENTS(reserved));
	for (size_t i = 0; i < N_ELEMENTS(reserved); i++)
		cr_assert_eq(strlist_contains(&c->reserved, reserved[i], false), 1,
			     "%s not reserved by default", reserved[i]);
	cr_assert_null(c->listen, "no listener by default (standalone)");
	cr_assert_str_eq(c->tls_key_file, "/etc/milter-alias/tls/key.pem");
	cr_assert_str_eq(c->tls_cert_file, "/etc/milter-alias/tls/cert.pem");
	cr_assert_str_eq(c->user, "milter-alias");
	cr_assert_eq(c->npeers, 0, "no peer section = standalone");
	conf_free(&c);
	cr_assert_null(c);
}

Test(conf, every_key)
{
	struct conf *c = load_ok(
		"# milter-alias.conf\n"
		"node_name        = \"A.Example.ORG\"\n"
		"domains          = {\"Example.ORG\", \"example.net\"}\n"
		"request_address  = {\"MakeAlias@Example.org\", \"alias@example.net\"}\n"
		"map_format       = \"aliases\"\n"
		"map_file         = \"/srv/a/aliases\"\n"
		"map_type         = \"cdb\"\n"
		"postfix_config_dir = \"/srv/a/postfix\"\n"
		"state_dir        = \"/srv/a/state\"\n"
		"milter_socket    = \"inet:127.0.0.1:8891\"\n"
		"control_socket   = \"/srv/a/control.sock\"\n"
		"sendmail_path    = \"/srv/a/sendmail\"\n"
		"commit_timeout   = 5\n"
		"owner_map        = \"lmdb:/etc/postfix/owners\"\n"
		"max_aliases_per_user = 7\n"
		"max_requests_per_hour = 0\n"
		"reserved         = {\"Postmaster\", \"sales\"}\n"
		"listen           = \"[::]:7465\"\n"
		"user             = \"nobody\"\n"
		"tls {\n"
		"  key_file  = \"/srv/a/key.pem\"\n"
		"  cert_file = \"/srv/a/cert.pem\"\n"
		"}\n"
		"peer \"B.example.org\" {\n"
		"  address = \"b.example.org:7465\"\n"
		"  pin     = \"" PIN_A "\"\n"
		"}\n"
		"peer \"c.example.org\" {\n"
		"  address = \"192.0.2.3:7465\"\n"
		"  pin     = {\"" PIN_B "\", \"" PIN_C "\"}\n"
		"}\n");

	cr_assert_str_eq(c->node_name, "a.example.org", "lowercased");
	cr_assert_eq(c->domains.n, 2);
	cr_assert_str_eq(c->domains.v[0], "example.org", "lowercased");
	cr_assert_str_eq(c->domains.v[1], "example.net");
	cr_assert_eq(c->request_addresses.n, 2);
	cr_assert_str_eq(c->request_addresses.v[0], "makealias@example.org", "lowercased");
	cr_assert_str_eq(c->request_addresses.v[1], "alias@example.net");
	cr_assert_eq(c->map_format, MAP_FORMAT_ALIASES);
	cr_assert_str_eq(c->map_file, "/srv/a/aliases");
	cr_assert_str_eq(c->map_type, "cdb");
	cr_assert_str_eq(c->postfix_config_dir, "/srv/a/postfix");
	cr_assert_str_eq(c->state_dir, "/srv/a/state");
	cr_assert_str_eq(c->milter_socket, "inet:127.0.0.1:8891");
	cr_assert_str_eq(c->control_socket, "/srv/a/control.sock");
	cr_assert_str_eq(c->sendmail_path, "/srv/a/sendmail");
	cr_assert_eq(c->commit_timeout, 5);
	cr_assert_str_eq(c->owner_map, "lmdb:/etc/postfix/owners");
	cr_assert_eq(c->max_aliases_per_user, 7);
	cr_assert_eq(c->max_requests_per_hour, 0);
	cr_assert_eq(c->reserved.n, 2, "the list replaces the default");
	cr_assert_str_eq(c->reserved.v[0], "postmaster", "lowercased");
	cr_assert_str_eq(c->reserved.v[1], "sales");
	cr_assert_str_eq(c->listen, "[::]:7465");
	cr_assert_str_eq(c->user, "nobody");
	cr_assert_str_eq(c->tls_key_file, "/srv/a/key.pem");
	cr_assert_str_eq(c->tls_cert_file, "/srv/a/cert.pem");
	cr_assert_eq(c->npeers, 2);
	cr_assert_str_eq(c->peers[0].name, "b.example.org", "lowercased");
	cr_assert_str_eq(c->peers[0].address, "b.example.org:7465");
	cr_assert_eq(c->peers[0].pins.n, 1);
	cr_assert_str_eq(c->peers[0].pins.v[0], PIN_A);
	cr_assert_str_eq(c->peers[1].name, "c.example.org");
	cr_assert_str_eq(c->peers[1].address, "192.0.2.3:7465");
	cr_assert_eq(c->peers[1].pins.n, 2, "two pins for key rotation");
	cr_assert_str_eq(c->peers[1].pins.v[0], PIN_B);
	cr_assert_str_eq(c->peers[1].pins.v[1], PIN_C);

	cr_assert_eq(conf_serves_domain(c, "example.org"), 1);
	cr_assert_eq(conf_serves_domain(c, "EXAMPLE.NET"), 1);
	cr_assert_eq(conf_serves_domain(c, "example.com"), 0);
	cr_assert_eq(conf_serves_domain(c, "org"), 0);
	cr_assert_eq(conf_is_request_address(c, "makealias@example.org"), 1);
	cr_assert_eq(conf_is_request_address(c, "MAKEALIAS@EXAMPLE.ORG"), 1);
	cr_assert_eq(conf_is_request_address(c, "alias@example.net"), 1);
	cr_assert_eq(conf_is_request_address(c, "alias@example.org"), 0);
	cr_assert_eq(conf_is_request_address(c, "makealias"), 0);
	conf_free(&c);
}

Test(conf, comments_and_blank_lines)
{
	struct conf *c = load_ok("\n# comment\n   \n" BASE "// c++ comment\n/* block */\n"
				 "commit_timeout = 9 # trailing\n");

	cr_assert_eq(c->commit_timeout, 9);
	conf_free(&c);
}

/* libconfuse 3.3 counts extra lines after comments; conf.c blanks them
 * first, so an error after comments of every kind names the right line. */
Test(conf, lines_after_comments_are_right)
{
	load_err("# one\n# two\n   # three\n" BASE "bogus = 1\n", 6, "bogus", NULL);
	load_err("// one\n/* two\n three */\n" BASE "bogus = 1\n", 6, "bogus", NULL);
	load_err(BASE "commit_timeout = 9 # trailing\n/**/ bogus = 1\n", 4, "bogus", NULL);
	load_err(BASE "# a\ncommit_timeout = \"x\"\n", 4, "commit_timeout", NULL);
}

/* What looks like a comment inside a string or a word is not one. */
Test(conf, comment_marks_inside_strings_and_words)
{
	struct conf *c = load_ok(BASE "owner_map = \"hash:/etc/a#b//c/*d*/\"\n"
				 "listen = 0.0.0.0:7465\n"
				 "peer b.example.org {\n  address = \"b:7465\"\n"
				 "  pin = \"" PIN_A "\" # the key of b\n}\n"
				 "map_file = /var/lib//x#y\n"
				 "state_dir = /var/lib/s\n");

	cr_assert_str_eq(c->owner_map, "hash:/etc/a#b//c/*d*/");
	cr_assert_eq(c->npeers, 1);
	cr_assert_str_eq(c->peers[0].pins.v[0], PIN_A);
	cr_assert_str_eq(c->map_file, "/var/lib//x");
	cr_assert_str_eq(c->state_dir, "/var/lib/s");
	conf_free(&c);
	load_err(BASE "owner_map = \"a # b\"\nbogus = 1\n", 4, "bogus", NULL);
	load_err(BASE "map_file = /x#y\nbogus = 1\n", 4, "bogus", NULL);
}

Test(conf, map_format_and_type_values)
{
	static const struct {
		const char *line, *compiled;
		enum map_format fmt;
	} cases[] = {
		{ "map_type = \"lmdb\"", "/var/lib/milter-alias/aliases.lmdb", MAP_FORMAT_VIRTUAL },
		{ "map_type = \"hash\"", "/var/lib/milter-alias/aliases.db", MAP_FORMAT_VIRTUAL },
		{ "map_type = \"cdb\"", "/var/lib/milter-alias/aliases.cdb", MAP_FORMAT_VIRTUAL },
		{ "map_format = \"virtual\"", "/var/lib/milter-alias/aliases.lmdb", MAP_FORMAT_VIRTUAL },
		{ "map_format = \"aliases\"\nmap_file = \"/x/y\"", "/x/y.lmdb", MAP_FORMAT_ALIASES },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		char *text = NULL, *compiled;
		struct conf *c;

		cr_assert_geq(asprintf(&text, BASE "%s\n", cases[i].line), 0);
		c = load_ok(text);
		cr_assert_eq(c->map_format, cases[i].fmt, "%s", cases[i].line);
		compiled = conf_compiled_map_path(c);
		cr_assert_str_eq(compiled, cases[i].compiled, "%s", cases[i].line);
		free(compiled);
		conf_free(&c);
		free(text);
	}
}

Test(conf, milter_socket_forms)
{
	line3_ok("milter_socket = \"unix:/run/m.sock\"");
	line3_ok("milter_socket = \"local:/run/m.sock\"");
	line3_ok("milter_socket = \"inet:8891@127.0.0.1\"");
	line3_ok("milter_socket = \"inet6:8891@[::1]\"");
}

Test(conf, commit_timeout_bounds)
{
	line3_ok("commit_timeout = 1");
	line3_ok("commit_timeout = 240");
	line3_err("commit_timeout = 0", "commit_timeout", "between 1 and 240");
	line3_err("commit_timeout = 241", "commit_timeout", "between 1 and 240");
	line3_err("commit_timeout = -5", "commit_timeout", NULL);
	line3_err("commit_timeout = 300", "commit_timeout", NULL);
}

Test(conf, counters_not_negative)
{
	line3_ok("max_aliases_per_user = 0");
	line3_ok("max_requests_per_hour = 0");
	line3_err("max_aliases_per_user = -1", "max_aliases_per_user", "negative");
	line3_err("max_requests_per_hour = -30", "max_requests_per_hour", "negative");
}

Test(conf, integers_must_be_integers)
{
	line3_err("commit_timeout = abc", "commit_timeout", NULL);
	line3_err("max_aliases_per_user = \"many\"", "max_aliases_per_user", NULL);
	line3_err("max_requests_per_hour = 1.5", "max_requests_per_hour", NULL);
}

/* ===== per-key validation: FILE:LINE: KEY ===== */

Test(conf, map_format_refused)
{
	line3_err("map_format = \"hash\"", "map_format", "virtual");
	line3_err("map_format = \"VIRTUAL\"", "map_format", NULL);
	line3_err("map_format = \"\"", "map_format", NULL);
}

Test(conf, map_type_refused)
{
	line3_err("map_type = \"btree\"", "map_type", "lmdb");
	line3_err("map_type = \"regexp\"", "map_type", NULL);
	line3_err("map_type = \"\"", "map_type", NULL);
}

Test(conf, paths_must_be_absolute)
{
	static const char *const keys[] = {
		"map_file", "postfix_config_dir", "state_dir", "control_socket",
		"sendmail_path",
	};

	for (size_t i = 0; i < N_ELEMENTS(keys); i++) {
		char line[128];

		snprintf(line, sizeof(line), "%s = \"relative/path\"", keys[i]);
		line3_err(line, keys[i], "absolute");
		snprintf(line, sizeof(line), "%s = \"\"", keys[i]);
		line3_err(line, keys[i], "absolute");
	}
}

Test(conf, tls_paths_must_be_absolute)
{
	/* Inside a section: the error still names file and line. */
	load_err(BASE "tls {\n  key_file = \"key.pem\"\n}\n", 4, "key_file", "absolute");
	load_err(BASE "tls {\n  key_file = \"/k.pem\"\n\n  cert_file = \"c.pem\"\n}\n",
		 6, "cert_file", "absolute");
}

Test(conf, milter_socket_refused)
{
	line3_err("milter_socket = \"/run/m.sock\"", "milter_socket", "unix:");
	line3_err("milter_socket = \"tcp:1.2.3.4:5\"", "milter_socket", NULL);
}

Test(conf, control_characters_refused)
{
	line3_err("sendmail_path = \"/usr/sbin/send\\nmail\"", "sendmail_path", "control");
	line3_err("owner_map = \"lmdb:/x\\ty\"", "owner_map", "control");
	line3_err("map_file = \"/x\\ry\"", "map_file", "control");
}

Test(conf, node_name_refused)
{
	line3_err("node_name = \"\"", "node_name", NULL);
	line3_err("node_name = \"a b\"", "node_name", NULL);
	line3_err("node_name = \"-a.example.org\"", "node_name", NULL);
}

Test(conf, domains_refused)
{
	load_err("domains = {\"example.org\", \"bad domain\"}\n"
		 "request_address = {\"a@example.org\"}\n", 1, "domains", "bad domain");
	load_err("request_address = {\"a@example.org\"}\n"
		 "domains = {\"-x.org\"}\n", 2, "domains", NULL);
	load_err("request_address = {\"a@example.org\"}\n\n"
		 "domains = {\"example..org\"}\n", 3, "domains", NULL);
	load_err("request_address = {\"a@example.org\"}\n"
		 "domains = {\"a@example.org\"}\n", 2, "domains", NULL);
}

Test(conf, domains_required)
{
	load_err("request_address = {\"a@example.org\"}\n", 0, "domains", NULL);
	load_err("domains = {}\nrequest_address = {\"a@example.org\"}\n", -1, "domains", NULL);
}

Test(conf, request_address_refused)
{
	load_err("domains = {\"example.org\"}\nrequest_address = {\"makealias\"}\n",
		 2, "request_address", NULL);
	load_err("domains = {\"example.org\"}\nrequest_address = {\"a@b@example.org\"}\n",
		 2, "request_address", NULL);
	load_err("domains = {\"example.org\"}\nrequest_address = {\"a|b@example.org\"}\n",
		 2, "request_address", NULL);
	load_err("domains = {\"example.org\"}\nrequest_address = {\"@example.org\"}\n",
		 2, "request_address", NULL);
}

Test(conf, request_address_required)
{
	load_err("domains = {\"example.org\"}\n", 0, "request_address", NULL);
}

Test(conf, request_address_must_be_in_domains)
{
	load_err("domains = {\"example.org\"}\n\n"
		 "request_address = {\"a@example.org\", \"b@example.com\"}\n",
		 3, "request_address", "b@example.com");
	/* Order does not matter: domains may come later. */
	load_err("request_address = {\"a@example.com\"}\n"
		 "domains = {\"example.org\"}\n", 1, "request_address", "a@example.com");
	/* Case does not matter either. */
	struct conf *c = load_ok("request_address = {\"A@EXAMPLE.ORG\"}\n"
				 "domains = {\"Example.Org\"}\n");
	conf_free(&c);
}

Test(conf, reserved)
{
	line3_err("reserved = {\"postmaster\", \"a|b\"}", "reserved", "a|b");
	line3_err("reserved = {\".dot\"}", "reserved", NULL);
	line3_err("reserved = {\"\"}", "reserved", NULL);

	struct conf *c = load_ok(BASE "reserved = {\"Sales\", \"INFO\"}\n");

	cr_assert_eq(c->reserved.n, 2);
	cr_assert_str_eq(c->reserved.v[0], "sales");
	cr_assert_str_eq(c->reserved.v[1], "info");
	conf_free(&c);

	c = load_ok(BASE "reserved = {}\n");
	cr_assert_eq(c->reserved.n, 0, "an empty list reserves nothing");
	conf_free(&c);
}

Test(conf, listen_refused)
{
	line3_err("listen = \"0.0.0.0\"", "listen", "host:port");
	line3_ok("listen = \"0.0.0.0:7465\"");
}

Test(conf, unknown_key_refused)
{
	line3_err("no_such_key = 1", "no_such_key", NULL);
	load_err(BASE "tls {\n  keyfile = \"/k\"\n}\n", 4, "keyfile", NULL);
}

Test(conf, syntax_errors)
{
	load_err(BASE "\ndomains = {\"example.org\"\n", 5, "", NULL);
	load_err(BASE "commit_timeout = \n", 4, "", NULL);
	load_err(BASE "tls {\n  key_file = \n", 5, "", NULL);
	load_err(BASE "tls {\n  key_file = \"/k\"\n}\n}\n", 6, "", "brace");
}

/* ===== peers ===== */

#define PEER_OK(name) \
	"peer \"" name "\" {\n  address = \"" name ":7465\"\n  pin = \"" PIN_A "\"\n}\n"

Test(conf, peers_need_listen)
{
	load_err(BASE PEER_OK("b.example.org"), 6, "listen", "listen is not set");
}

Test(conf, peer_address)
{
	load_err(BASE "listen = \"0.0.0.0:7465\"\n"
		 "peer \"b.example.org\" {\n  pin = \"" PIN_A "\"\n}\n",
		 6, "address", "missing");
	load_err(BASE "listen = \"0.0.0.0:7465\"\n"
		 "peer \"b.example.org\" {\n  address = \"b.example.org\"\n"
		 "  pin = \"" PIN_A "\"\n}\n",
		 5, "address", "host:port");
}

Test(conf, peer_pins)
{
	/* no pin */
	load_err(BASE "listen = \"0.0.0.0:7465\"\n"
		 "peer \"b.example.org\" {\n  address = \"b:7465\"\n}\n",
		 6, "pin", NULL);
	/* three pins */
	load_err(BASE "listen = \"0.0.0.0:7465\"\n"
		 "peer \"b.example.org\" {\n  address = \"b:7465\"\n"
		 "  pin = {\"" PIN_A "\", \"" PIN_B "\", \"" PIN_C "\"}\n}\n",
		 7, "pin", NULL);
	/* malformed pin: named on its own line */
	load_err(BASE "listen = \"0.0.0.0:7465\"\n"
		 "peer \"b.example.org\" {\n  address = \"b:7465\"\n"
		 "  pin = \"sha256//short=\"\n}\n",
		 6, "pin", "sha256//");
	/* the second peer's error names the second peer */
	load_err(BASE "listen = \"0.0.0.0:7465\"\n" PEER_OK("b.example.org")
		 "peer \"c.example.org\" {\n  address = \"c:7465\"\n}\n",
		 10, "c.example.org", "pin");
}

Test(conf, peer_cannot_be_self)
{
	load_err(BASE "node_name = \"a.example.org\"\nlisten = \"0.0.0.0:7465\"\n"
		 PEER_OK("A.example.org"), 8, "peer", "node_name");
}

Test(conf, duplicate_peer_refused)
{
	load_err(BASE "listen = \"0.0.0.0:7465\"\n" PEER_OK("b.example.org")
		 PEER_OK("b.example.org"), 8, "b", NULL);
}

Test(conf, pin_valid)
{
	static const char *const good[] = { PIN_A, PIN_B, PIN_C,
		"sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"sha256//+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/A=" };
	static const char *const bad[] = {
		"", "sha256//", "sha256/ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=",
		"sha1//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=",
		"ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=",
		"sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs",	/* 43 */
		"sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs==",	/* 45 */
		"sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLsA",	/* no pad */
		"sha256//ypeBEsobvcr6wjGzmiPcTaeG7-gUfE5yuYB3ha/uSLs=",	/* url-safe */
		"sha256//ypeBEsobvcr6wjGzmiPcTaeG7 gUfE5yuYB3ha/uSLs=",
		"sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSL==",
		" sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs=",
	};

	for (size_t i = 0; i < N_ELEMENTS(good); i++)
		cr_assert_eq(conf_pin_valid(good[i]), 1, "\"%s\"", good[i]);
	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		cr_assert_eq(conf_pin_valid(bad[i]), 0, "\"%s\"", bad[i]);
}

/* ===== files ===== */

Test(conf, missing_file)
{
	char *path = ut_path(dir, "absent.conf"), *err = NULL;
	struct conf *c = (struct conf *)1;

	cr_assert_eq(conf_load(path, &c, &err), -1);
	cr_assert_null(c);
	cr_assert_not_null(err);
	cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
	free(err);
	free(path);
}

Test(conf, directory_is_an_error_not_an_exit)
{
	char *err = NULL;
	struct conf *c = (struct conf *)1;

	/* libconfuse's scanner would exit(2) on a read error. */
	cr_assert_eq(conf_load(dir, &c, &err), -1);
	cr_assert_null(c);
	cr_assert_not_null(err);
	cr_assert_eq(strncmp(err, dir, strlen(dir)), 0, "%s", err);
	free(err);
}

Test(conf, empty_file_needs_domains)
{
	load_err("", 0, "domains", NULL);
}

Test(conf, null_err_r)
{
	char *path = conf_file("bogus = 1\n");
	struct conf *c = (struct conf *)1;

	cr_assert_eq(conf_load(path, &c, NULL), -1);
	cr_assert_null(c);
	free(path);
	path = conf_file("domains = {\"example.org\"}\n");
	cr_assert_eq(conf_load(path, &c, NULL), -1, "cross-key error, no err_r");
	free(path);
}

Test(conf, error_replaces_old_err_text)
{
	char *path = conf_file("bogus = 1\n"), *err = strdup("stale");
	struct conf *c;

	cr_assert_eq(conf_load(path, &c, &err), -1);
	cr_assert_null(strstr(err, "stale"));
	free(path);
	path = conf_file("domains = {\"example.org\"}\n");
	cr_assert_eq(conf_load(path, &c, &err), -1);
	cr_assert_not_null(strstr(err, "request_address"), "%s", err);
	free(err);
	free(path);
}

Test(conf, loads_are_independent)
{
	char *bad = conf_file(BASE "map_type = \"btree\"\n");
	char *good = conf_file(BASE);
	char *err = NULL;
	struct conf *c;

	cr_assert_eq(conf_load(bad, &c, &err), -1);
	free(err);
	err = NULL;
	cr_assert_eq(conf_load(good, &c, &err), 0, "an earlier error leaks: %s", err);
	cr_assert_null(err);
	cr_assert_str_eq(c->map_type, "lmdb");
	conf_free(&c);
	cr_assert_eq(conf_load(bad, &c, &err), -1);
	cr_assert_not_null(strstr(err, "btree"), "%s", err);
	free(err);
	free(bad);
	free(good);
}

Test(conf, free_null)
{
	struct conf *c = NULL;

	conf_free(&c);
	cr_assert_null(c);
}

struct loader {
	const char *path;
	const char *want;	/* substring of the error; NULL = must load */
	int failures;
};

static void *
loader_thread(void *arg)
{
	struct loader *l = arg;

	for (int i = 0; i < 50; i++) {
		struct conf *c = NULL;
		char *err = NULL;
		int rc = conf_load(l->path, &c, &err);

		if (l->want == NULL ? rc != 0 : (rc != -1 || strstr(err, l->want) == NULL ||
						 strncmp(err, l->path, strlen(l->path)) != 0))
			l->failures++;
		conf_free(&c);
		free(err);
	}
	return NULL;
}

Test(conf, concurrent_loads_keep_their_own_errors, .timeout = 60)
{
	struct loader l[4] = {
		{ conf_file(BASE "map_type = \"btree\"\n"), "btree", 0 },
		{ conf_file(BASE "commit_timeout = 999\n"), "commit_timeout", 0 },
		{ conf_file(BASE), NULL, 0 },
		{ conf_file(BASE "tls {\n key_file = \"k\"\n}\n"), ":4: key_file", 0 },
	};
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, loader_thread, &l[i]), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_join(t[i], NULL), 0);
		cr_assert_eq(l[i].failures, 0, "loader %d failed %d times", i, l[i].failures);
		free((char *)l[i].path);
	}
}
