/* conf.c - load and validate the configuration with libconfuse.
 *
 * Syntax errors come from libconfuse through conf_errfunc, which adds the
 * file and line.  Semantic checks run in per-option validate callbacks
 * (they see the line being parsed) or, for checks that span keys, after
 * parsing, using the line each key was last seen on.
 */
#include "config.h"

#include <confuse.h>
#include <pthread.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "fsutil.h"
#include "request.h"

#define MAX_KEY_LINES 64
#define CONF_MAX_BYTES (1024 * 1024)

/* Parse-time state shared with the libconfuse callbacks. */
struct conf_parse {
	const char *path;	/* for sections, which may not know their file */
	char *error;		/* first error, "FILE:LINE: ..." */
	struct {
		const char *key;
		int line;
	} lines[MAX_KEY_LINES];
	size_t nlines;
	int peer_lines[MAX_KEY_LINES];	/* end of each peer section, in order */
	size_t npeer_lines;
};

static struct conf_parse *cur_parse;

static cfg_opt_t tls_opts[] = {
	CFG_STR("key_file", "/etc/milter-alias/tls/key.pem", CFGF_NONE),
	CFG_STR("cert_file", "/etc/milter-alias/tls/cert.pem", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t peer_opts[] = {
	CFG_STR("address", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("pin", NULL, CFGF_NODEFAULT),
	CFG_END()
};

static cfg_opt_t root_opts[] = {
	CFG_STR("node_name", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("domains", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("request_address", NULL, CFGF_NODEFAULT),
	CFG_STR("map_format", "virtual", CFGF_NONE),
	CFG_STR("map_file", "/var/lib/milter-alias/aliases", CFGF_NONE),
	CFG_STR("map_type", "lmdb", CFGF_NONE),
	CFG_STR("postfix_config_dir", "/etc/postfix", CFGF_NONE),
	CFG_STR("state_dir", "/var/lib/milter-alias", CFGF_NONE),
	CFG_STR("milter_socket", "unix:/var/spool/postfix/milter-alias/milter.sock", CFGF_NONE),
	CFG_STR("control_socket", "/run/milter-alias/control.sock", CFGF_NONE),
	CFG_STR("sendmail_path", "/usr/sbin/sendmail", CFGF_NONE),
	CFG_INT("commit_timeout", 20, CFGF_NONE),
	CFG_STR("owner_map", "", CFGF_NONE),
	CFG_INT("max_aliases_per_user", 500, CFGF_NONE),
	CFG_INT("max_requests_per_hour", 30, CFGF_NONE),
	CFG_STR_LIST("reserved", "{postmaster,abuse,hostmaster,webmaster,admin,"
		     "administrator,root,mailer-daemon,noc,security}", CFGF_NONE),
	CFG_INT("expiry_check_interval", 60, CFGF_NONE),
	CFG_BOOL("expiry_test_seconds", cfg_false, CFGF_NONE),
	CFG_STR("listen", NULL, CFGF_NODEFAULT),
	CFG_STR("user", "milter-alias", CFGF_NONE),
	CFG_SEC("tls", tls_opts, CFGF_NONE),
	CFG_SEC("peer", peer_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END()
};

/*
 * blank_comments - turn comments into spaces, keeping every newline, so
 * that libconfuse (3.3 counts two extra lines for each "#" comment and one
 * for each block comment) reports the lines the administrator sees.  As in
 * libconfuse, "#" starts a comment anywhere outside a quoted string (it
 * ends an unquoted word), while "//" and a block comment start one only
 * where a token may start ("/var/lib//x" is one unquoted word).
 */
static void
blank_comments(char *s, size_t len)
{
	enum { CODE, DQUOTE, SQUOTE, LINE, BLOCK } st = CODE;
	int boundary = 1;	/* could a token start here? */

	for (size_t i = 0; i < len; i++) {
		char c = s[i], next = i + 1 < len ? s[i + 1] : '\0';

		switch (st) {
		case CODE:
			if (c == '#' || (boundary && c == '/' && next == '/')) {
				st = LINE;
				s[i] = ' ';
			} else if (boundary && c == '/' && next == '*') {
				st = BLOCK;
				s[i] = s[i + 1] = ' ';
				i++;
			} else if (c == '"' || c == '\'') {
				st = c == '"' ? DQUOTE : SQUOTE;
			}
			boundary = strchr(" \t\r\n{}(),=+", c) != NULL || st == BLOCK;
			break;
		case DQUOTE:
		case SQUOTE:
			if (c == '\\' && i + 1 < len)
				i++;	/* the escaped character, whatever it is */
			else if (c == (st == DQUOTE ? '"' : '\''))
				st = CODE, boundary = 0;
			break;
		case LINE:
			if (c == '\n')
				st = CODE, boundary = 1;
			else
				s[i] = ' ';
			break;
		case BLOCK:
			if (c == '*' && next == '/') {
				s[i] = s[i + 1] = ' ';
				i++;
				st = CODE, boundary = 1;
			} else if (c != '\n')
				s[i] = ' ';
			break;
		}
	}
}

/* conf_errfunc - libconfuse error hook: keep the first error with its place */
static void
conf_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];
	const char *file;

	if (cur_parse == NULL || cur_parse->error != NULL)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* libconfuse reads our blanked copy (its name for it is "FILE"). */
	file = cur_parse->path;
	if (cfg != NULL && cfg->line > 0)
		cur_parse->error = xasprintf("%s:%d: %s", file, cfg->line, msg);
	else
		cur_parse->error = xasprintf("%s: %s", file, msg);
}

/* note_line - remember where a key was set, for cross-key errors later */
static void
note_line(const char *key, int line)
{
	for (size_t i = 0; i < cur_parse->nlines; i++)
		if (strcmp(cur_parse->lines[i].key, key) == 0) {
			cur_parse->lines[i].line = line;
			return;
		}
	if (cur_parse->nlines < MAX_KEY_LINES) {
		cur_parse->lines[cur_parse->nlines].key = key;
		cur_parse->lines[cur_parse->nlines++].line = line;
	}
}

static int
line_of(const struct conf_parse *p, const char *key)
{
	for (size_t i = 0; i < p->nlines; i++)
		if (strcmp(p->lines[i].key, key) == 0)
			return p->lines[i].line;
	return 0;
}

/* bad_value - report a rejected value at the line being parsed */
static int ATTR_PRINTF(3, 4)
bad_value(cfg_t *cfg, cfg_opt_t *opt, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_error(cfg, "%s: %s", opt->name, msg);
	return -1;
}

static int
has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 1;
	return 0;
}

/* validate_opt - per-option checks, run by libconfuse as each key is parsed */
static int
validate_opt(cfg_t *cfg, cfg_opt_t *opt)
{
	note_line(opt->name, cfg->line);

	for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
		if (opt->type == CFGT_INT) {
			long v = cfg_opt_getnint(opt, i);

			if (strcmp(opt->name, "commit_timeout") == 0 &&
			    (v < 1 || v > 240))
				return bad_value(cfg, opt, "must be between 1 and 240 seconds "
						 "(Postfix's milter_content_timeout is 300s)");
			if (strcmp(opt->name, "expiry_check_interval") == 0 &&
			    (v < 1 || v > 3600))
				return bad_value(cfg, opt, "must be between 1 and 3600 seconds");
			if (v < 0)
				return bad_value(cfg, opt, "must not be negative");
			continue;
		}
		if (opt->type != CFGT_STR)
			continue;

		const char *s = cfg_opt_getnstr(opt, i);

		if (s == NULL || has_ctl(s))
			return bad_value(cfg, opt, "contains control characters");
		if (strcmp(opt->name, "map_format") == 0 &&
		    strcmp(s, "virtual") != 0 && strcmp(s, "aliases") != 0)
			return bad_value(cfg, opt, "\"%s\" is neither \"virtual\" nor \"aliases\"", s);
		if (strcmp(opt->name, "map_type") == 0 &&
		    strcmp(s, "lmdb") != 0 && strcmp(s, "hash") != 0 &&
		    strcmp(s, "cdb") != 0)
			return bad_value(cfg, opt, "\"%s\" is not one of lmdb, hash, cdb", s);
		if ((strcmp(opt->name, "map_file") == 0 ||
		     strcmp(opt->name, "postfix_config_dir") == 0 ||
		     strcmp(opt->name, "state_dir") == 0 ||
		     strcmp(opt->name, "control_socket") == 0 ||
		     strcmp(opt->name, "sendmail_path") == 0 ||
		     strcmp(opt->name, "key_file") == 0 ||
		     strcmp(opt->name, "cert_file") == 0) && s[0] != '/')
			return bad_value(cfg, opt, "\"%s\" is not an absolute path", s);
		if (strcmp(opt->name, "milter_socket") == 0 &&
		    strncmp(s, "unix:", 5) != 0 && strncmp(s, "local:", 6) != 0 &&
		    strncmp(s, "inet:", 5) != 0 && strncmp(s, "inet6:", 6) != 0)
			return bad_value(cfg, opt, "\"%s\" must start with unix:, local:, inet: or inet6:", s);
		if (strcmp(opt->name, "domains") == 0 && !request_domain_valid(s))
			return bad_value(cfg, opt, "\"%s\" is not a domain name", s);
		if (strcmp(opt->name, "reserved") == 0) {
			/* Names are folded to lower case, as in requests. */
			char *lower = str_lower(xstrdup(s));
			int ok = request_name_valid(lower);

			free(lower);
			if (!ok)
				return bad_value(cfg, opt, "\"%s\" is not a valid alias name", s);
		}
		if (strcmp(opt->name, "request_address") == 0 &&
		    !request_address_valid(s))
			return bad_value(cfg, opt, "\"%s\" is not an address of the form name@domain", s);
		if (strcmp(opt->name, "pin") == 0 && !conf_pin_valid(s))
			return bad_value(cfg, opt, "\"%s\" is not of the form sha256//BASE64 "
					 "(44 characters of base64)", s);
		if (strcmp(opt->name, "node_name") == 0 && !request_domain_valid(s))
			return bad_value(cfg, opt, "\"%s\" is not a host name", s);
		if ((strcmp(opt->name, "listen") == 0 ||
		     strcmp(opt->name, "address") == 0) && strrchr(s, ':') == NULL)
			return bad_value(cfg, opt, "\"%s\" is not of the form host:port", s);
	}
	return 0;
}

/* validate_peer - checks on a whole peer section, run at its closing brace */
static int
validate_peer(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	unsigned npins = cfg_size(sec, "pin");

	if (cur_parse->npeer_lines < MAX_KEY_LINES)
		cur_parse->peer_lines[cur_parse->npeer_lines++] = cfg->line;
	if (cfg_getstr(sec, "address") == NULL) {
		cfg_error(cfg, "peer \"%s\": address: missing", cfg_title(sec));
		return -1;
	}
	if (npins == 0 || npins > 2) {
		cfg_error(cfg, "peer \"%s\": pin: one or two pins are required",
			  cfg_title(sec));
		return -1;
	}
	return 0;
}

int
conf_pin_valid(const char *s)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	if (strncmp(s, "sha256//", 8) != 0)
		return 0;
	s += 8;
	/* SHA-256 is 32 bytes: 43 base64 characters and one '=' of padding. */
	if (strlen(s) != 44 || s[43] != '=')
		return 0;
	for (int i = 0; i < 43; i++)
		if (strchr(b64, s[i]) == NULL)
			return 0;
	return 1;
}

static void
copy_list(cfg_t *cfg, const char *key, struct strlist *out, bool lower)
{
	for (unsigned i = 0; i < cfg_size(cfg, key); i++) {
		char *s = xstrdup(cfg_getnstr(cfg, key, i));

		strlist_add(out, lower ? str_lower(s) : s);
		free(s);
	}
}

/* default_node_name - this host's FQDN, or its plain name if it has none */
static char *
default_node_name(void)
{
	char host[256];
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *res = NULL;
	char *name;

	if (gethostname(host, sizeof(host)) != 0)
		return xstrdup("localhost");
	host[sizeof(host) - 1] = '\0';
	if (strchr(host, '.') == NULL &&
	    getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL &&
	    res->ai_canonname != NULL && strchr(res->ai_canonname, '.') != NULL)
		name = xstrdup(res->ai_canonname);
	else
		name = xstrdup(host);
	if (res != NULL)
		freeaddrinfo(res);
	return str_lower(name);
}

/* key_error - "FILE:LINE: KEY: what", or "FILE: KEY: what" for an absent key */
static char * ATTR_PRINTF(4, 5)
key_error(const struct conf *c, int line, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *what, *err;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	if (line > 0)
		err = xasprintf("%s:%d: %s: %s", c->path, line, key, what);
	else
		err = xasprintf("%s: %s: %s", c->path, key, what);
	free(what);
	return err;
}

/* cross_check - rules spanning several keys; returns error text or NULL */
static char *
cross_check(const struct conf *c, const struct conf_parse *p)
{
	if (c->domains.n == 0)
		return key_error(c, line_of(p, "domains"), "domains",
				 "at least one domain is required");
	if (c->request_addresses.n == 0)
		return key_error(c, line_of(p, "request_address"), "request_address",
				 "at least one request address is required");
	for (size_t i = 0; i < c->request_addresses.n; i++) {
		const char *at = strrchr(c->request_addresses.v[i], '@');

		if (!conf_serves_domain(c, at + 1))
			return key_error(c, line_of(p, "request_address"), "request_address",
					 "\"%s\" is not in a domain listed in domains",
					 c->request_addresses.v[i]);
	}
	if (c->npeers > 0 && c->listen == NULL)
		return key_error(c, p->npeer_lines > 0 ? p->peer_lines[0] : 0, "listen",
				 "peers are configured but listen is not set");
	for (size_t i = 0; i < c->npeers; i++) {
		int line = i < p->npeer_lines ? p->peer_lines[i] : 0;

		if (strcasecmp(c->peers[i].name, c->node_name) == 0)
			return key_error(c, line, "peer",
					 "\"%s\" cannot have this node's own node_name",
					 c->peers[i].name);
	}
	return NULL;
}

/* load_locked - conf_load, with the libconfuse lock held */
static int
load_locked(const char *path, struct conf **conf_r, char **err_r)
{
	struct conf_parse parse = { 0 };
	struct stat st;
	struct conf *c;
	cfg_t *cfg;
	char *err = NULL, *text = NULL;
	size_t len = 0;
	FILE *fp;
	int rc;

	*conf_r = NULL;
	cfg = cfg_init(root_opts, CFGF_NONE);
	cfg_set_error_function(cfg, conf_errfunc);
	for (cfg_opt_t *o = root_opts; o->name != NULL; o++)
		if (o->type != CFGT_SEC)
			cfg_set_validate_func(cfg, o->name, validate_opt);
	for (cfg_opt_t *o = tls_opts; o->name != NULL; o++) {
		char *k = xasprintf("tls|%s", o->name);

		cfg_set_validate_func(cfg, k, validate_opt);
		free(k);
	}
	cfg_set_validate_func(cfg, "peer|address", validate_opt);
	cfg_set_validate_func(cfg, "peer|pin", validate_opt);
	cfg_set_validate_func(cfg, "peer", validate_peer);

	/* The file is read here, not by libconfuse, whose scanner exits the
	 * process on a read error and miscounts lines after comments. */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		set_error(err_r, "%s: cannot read: %s", path, strerror(EISDIR));
		goto fail;
	}
	if ((rc = fsutil_read_file(path, &text, &len, CONF_MAX_BYTES, &err)) != 0) {
		if (rc > 0)
			set_error(err_r, "%s: cannot read: %s", path, strerror(ENOENT));
		else
			set_error(err_r, "%s", err);
		free(err);
		goto fail;
	}
	blank_comments(text, len);
	if (len == 0) {		/* fmemopen needs a byte: a harmless one */
		free(text);
		text = xstrdup("\n");
		len = 1;
	}
	if ((fp = fmemopen(text, len, "r")) == NULL) {
		set_error(err_r, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	cur_parse = &parse;
	parse.path = path;
	rc = cfg_parse_fp(cfg, fp);
	cur_parse = NULL;
	fclose(fp);
	fp = NULL;
	free(text);
	text = NULL;
	if (rc != CFG_SUCCESS) {
		/* libconfuse sometimes fails without a message (a NUL byte, an
		 * empty string where a key belongs): still name the file. */
		if (parse.error != NULL)
			set_error(err_r, "%s", parse.error);
		else
			set_error(err_r, "%s: syntax error (check quotes, braces and "
				  "stray bytes)", path);
		goto fail;
	}

	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	c->node_name = cfg_getstr(cfg, "node_name") ?
		str_lower(xstrdup(cfg_getstr(cfg, "node_name"))) : default_node_name();
	copy_list(cfg, "domains", &c->domains, true);
	copy_list(cfg, "request_address", &c->request_addresses, true);
	c->map_format = strcmp(cfg_getstr(cfg, "map_format"), "aliases") == 0 ?
		MAP_FORMAT_ALIASES : MAP_FORMAT_VIRTUAL;
	c->map_file = xstrdup(cfg_getstr(cfg, "map_file"));
	c->map_type = xstrdup(cfg_getstr(cfg, "map_type"));
	c->postfix_config_dir = xstrdup(cfg_getstr(cfg, "postfix_config_dir"));
	c->state_dir = xstrdup(cfg_getstr(cfg, "state_dir"));
	c->milter_socket = xstrdup(cfg_getstr(cfg, "milter_socket"));
	c->control_socket = xstrdup(cfg_getstr(cfg, "control_socket"));
	c->sendmail_path = xstrdup(cfg_getstr(cfg, "sendmail_path"));
	c->commit_timeout = cfg_getint(cfg, "commit_timeout");
	c->owner_map = xstrdup(cfg_getstr(cfg, "owner_map"));
	c->max_aliases_per_user = cfg_getint(cfg, "max_aliases_per_user");
	c->max_requests_per_hour = cfg_getint(cfg, "max_requests_per_hour");
	copy_list(cfg, "reserved", &c->reserved, true);
	c->expiry_check_interval = cfg_getint(cfg, "expiry_check_interval");
	c->expiry_test_seconds = cfg_getbool(cfg, "expiry_test_seconds") == cfg_true;
	c->listen = cfg_getstr(cfg, "listen") ? xstrdup(cfg_getstr(cfg, "listen")) : NULL;
	c->user = xstrdup(cfg_getstr(cfg, "user"));
	cfg_t *tls = cfg_getsec(cfg, "tls");
	c->tls_key_file = xstrdup(cfg_getstr(tls, "key_file"));
	c->tls_cert_file = xstrdup(cfg_getstr(tls, "cert_file"));
	c->npeers = cfg_size(cfg, "peer");
	c->peers = xcalloc(c->npeers, sizeof(*c->peers));
	for (size_t i = 0; i < c->npeers; i++) {
		cfg_t *ps = cfg_getnsec(cfg, "peer", (unsigned)i);
		const char *addr = cfg_getstr(ps, "address");

		c->peers[i].name = str_lower(xstrdup(cfg_title(ps)));
		c->peers[i].address = addr ? xstrdup(addr) : NULL;
		copy_list(ps, "pin", &c->peers[i].pins, false);
	}
	err = cross_check(c, &parse);
	cfg_free(cfg);		/* only now: parse.lines[].key points into cfg */
	if (err != NULL) {
		if (err_r != NULL) {
			free(*err_r);
			*err_r = err;
		} else
			free(err);
		conf_free(&c);
		free(parse.error);
		return -1;
	}
	free(parse.error);
	*conf_r = c;
	return 0;

fail:
	free(parse.error);
	free(text);
	cfg_free(cfg);
	return -1;
}

int
conf_load(const char *path, struct conf **conf_r, char **err_r)
{
	/* libconfuse keeps its scanner in globals, used by cfg_init (list
	 * defaults), cfg_parse and cfg_free, and reports errors through
	 * cur_parse: serialise whole loads. */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	int rc;

	pthread_mutex_lock(&lock);
	rc = load_locked(path, conf_r, err_r);
	pthread_mutex_unlock(&lock);
	return rc;
}

void
conf_free(struct conf **cp)
{
	struct conf *c = *cp;

	if (c == NULL)
		return;
	free(c->path);
	free(c->node_name);
	strlist_clear(&c->domains);
	strlist_clear(&c->request_addresses);
	free(c->map_file);
	free(c->map_type);
	free(c->postfix_config_dir);
	free(c->state_dir);
	free(c->milter_socket);
	free(c->control_socket);
	free(c->sendmail_path);
	free(c->owner_map);
	strlist_clear(&c->reserved);
	free(c->listen);
	free(c->tls_key_file);
	free(c->tls_cert_file);
	free(c->user);
	for (size_t i = 0; i < c->npeers; i++) {
		free(c->peers[i].name);
		free(c->peers[i].address);
		strlist_clear(&c->peers[i].pins);
	}
	free(c->peers);
	free(c);
	*cp = NULL;
}

int
conf_serves_domain(const struct conf *conf, const char *domain)
{
	return strlist_contains(&conf->domains, domain, true);
}

int
conf_is_request_address(const struct conf *conf, const char *addr)
{
	return strlist_contains(&conf->request_addresses, addr, true);
}

/* map_path - map_file + what (".access", ...) + the compiled suffix of
 * map_type when compiled */
static char *
map_path(const struct conf *conf, const char *what, int compiled)
{
	const char *suffix = strcmp(conf->map_type, "hash") == 0 ? "db" : conf->map_type;

	return compiled ? xasprintf("%s%s.%s", conf->map_file, what, suffix) :
		xasprintf("%s%s", conf->map_file, what);
}

char *
conf_compiled_map_path(const struct conf *conf)
{
	return map_path(conf, "", 1);
}

char *
conf_access_file(const struct conf *conf)
{
	return map_path(conf, ".access", 0);
}

char *
conf_compiled_access_path(const struct conf *conf)
{
	return map_path(conf, ".access", 1);
}

char *
conf_senders_file(const struct conf *conf)
{
	return map_path(conf, ".senders", 0);
}

char *
conf_compiled_senders_path(const struct conf *conf)
{
	return map_path(conf, ".senders", 1);
}
