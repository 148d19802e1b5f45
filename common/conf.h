/* conf.h - the one configuration file shared by all three programs.
 *
 * Parsed with libconfuse; every key of milter-alias.conf(5) with its default.
 * conf_load validates everything it can without touching the system, and
 * names file, line and key in its error text.  It never exits.
 */
#ifndef MA_CONF_H
#define MA_CONF_H

#include "util.h"

enum map_format {
	MAP_FORMAT_VIRTUAL,	/* postmap, "address target", virtual_alias_maps */
	MAP_FORMAT_ALIASES,	/* postalias, "name: target", alias_maps */
};

struct conf_peer {
	char *name;		/* section title: the peer's node_name */
	char *address;		/* host:port */
	struct strlist pins;	/* "sha256//BASE64", one or two (key rotation) */
};

struct conf {
	char *path;
	char *node_name;
	struct strlist domains;		/* lowercase */
	struct strlist request_addresses;	/* lowercase */
	enum map_format map_format;
	char *map_file;
	char *map_type;
	char *postfix_config_dir;
	char *state_dir;
	char *milter_socket;
	char *control_socket;
	char *sendmail_path;
	long commit_timeout;
	char *owner_map;
	long max_aliases_per_user;
	long max_requests_per_hour;
	struct strlist reserved;		/* lowercase */
	long expiry_check_interval;	/* seconds between expiry sweeps */
	int expiry_test_seconds;	/* test only: lifetimes in seconds */
	char *listen;
	char *tls_key_file;
	char *tls_cert_file;
	char *user;			/* account the daemons run as */
	struct conf_peer *peers;
	size_t npeers;
};

/* Load and validate path.  Returns 0 and a caller-owned *conf_r, or -1 and
 * an error "FILE:LINE: KEY: what is wrong" in *err_r (caller frees). */
int conf_load(const char *path, struct conf **conf_r, char **err_r);
void conf_free(struct conf **conf);

/* 1 if s is "sha256//" + base64 of 32 bytes. */
int conf_pin_valid(const char *s);
/* 1 if domain (any case) is one of the served domains. */
int conf_serves_domain(const struct conf *conf, const char *domain);
/* 1 if addr (any case) is a request address. */
int conf_is_request_address(const struct conf *conf, const char *addr);
/* Compiled map path for map_file and map_type ("x" -> "x.lmdb", "x.db").
 * Caller frees. */
char *conf_compiled_map_path(const struct conf *conf);

/* The access map the sync daemon derives from the alias map (disabled and
 * deleted aliases, request addresses): map_file + ".access", and its
 * compiled file.  Caller frees. */
char *conf_access_file(const struct conf *conf);
char *conf_compiled_access_path(const struct conf *conf);
/* The sender-login map (alias -> owner login, for smtpd_sender_login_maps):
 * map_file + ".senders", and its compiled file. */
char *conf_senders_file(const struct conf *conf);
char *conf_compiled_senders_path(const struct conf *conf);

#endif
