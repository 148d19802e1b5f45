/* postfix.h - everything the sync daemon asks of Postfix's own tools.
 *
 * What to ask postconf, postmap/postalias and sendmail, against
 * postfix_config_dir; how they are run and judged is pftool.h's.
 * Nothing here decides policy; the engine does.
 */
#ifndef MA_POSTFIX_H
#define MA_POSTFIX_H

#include "aliasmap.h"
#include "conf.h"

/* Does Postfix already deliver mail for address (name@domain)?  Asks every
 * map of virtual_alias_maps, virtual_mailbox_maps and alias_maps except
 * this project's own ("proxy:" dropped: the daemon reads the tables
 * itself, with group postfix), and the local users.  A map that cannot be
 * asked is an error, never "not found".  With a recipient_delimiter, the
 * address with its extension stripped as Postfix strips it
 * (request_address_base) is asked too: Postfix delivers user-ext@domain
 * to user@domain.  Returns 1 (with where it was
 * found in *where_r, caller frees), 0 if not, -1 if it could not tell. */
int postfix_resolves(const struct conf *conf, const char *address,
		     char **where_r, char **err_r);
/* Postfix's recipient_delimiter (postconf, kept until main.cf changes;
 * "" when none).  0 and a caller-owned *delims_r, or -1 with a reason. */
int postfix_recipient_delimiter(const struct conf *conf, char **delims_r,
				char **err_r);

/* Whether the check above works: 0 yes, -1 no (why in *err_r).  The
 * answer of the last check is used if younger than max_age_ms; otherwise
 * every map is asked now with probe keys (POSTFIX_PROBE_LOCAL@domain for
 * each served domain).  A change of state is logged. */
#define POSTFIX_PROBE_LOCAL "milter-alias-probe"
int postfix_check_health(const struct conf *conf, long long max_age_ms,
			 char **err_r);

/* The state as last seen, without asking: 1 working, -1 failing, 0 not
 * known yet. */
int postfix_check_state(void);

/* Each map the check asks, asked on its own with the probe keys, so that
 * postfix-setup can name every map this daemon cannot ask. */
struct postfix_probe {
	const char *params;	/* the parameter it is listed in (static) */
	char *map;		/* as asked: "proxy:" dropped */
	int ok;
	char *error;		/* when !ok */
};
int postfix_probe_maps(const struct conf *conf, struct postfix_probe **list_r,
		       size_t *n_r, char **err_r);
void postfix_probe_free(struct postfix_probe *list, size_t n);

/* postfix_resolves in a thread of its own, so that the check overlaps
 * other work (the vote round trip, the access map update); _finish waits
 * for it and returns what postfix_resolves would have.  Every _start
 * needs exactly one _finish. */
struct postfix_check;
struct postfix_check *postfix_resolves_start(const struct conf *conf,
					     const char *address);
int postfix_resolves_finish(struct postfix_check *c, char **where_r,
			    char **err_r);

/* The delivery address for a SASL login: owner_map, or the login if it
 * holds an '@', else login@<first domain>.  Returns 0 and a caller-owned
 * *addr_r, 1 if owner_map has no entry, -1 on error. */
int postfix_owner_address(const struct conf *conf, const char *login,
			  char **addr_r, char **err_r);

/* Rebuild the compiled map from map_file into a new file and rename it
 * into place.  0 or -1 with a reason. */
int postfix_map_rebuild(const struct conf *conf, char **err_r);

/* Bring the compiled map from before to after (either may be NULL):
 * incremental for lmdb, a full rebuild for hash and cdb.  map_file must
 * already hold the new state.  0 or -1 with a reason. */
int postfix_map_update(const struct conf *conf, const struct alias *before,
		       const struct alias *after, char **err_r);

/* The same two for a postmap table this daemon derives from the alias map
 * (the access map: refusals for disabled and deleted aliases; the
 * sender-login map).  The source file must be written first.  _set makes
 * the compiled entry for key equal line (one "key value" line), or removes
 * it when line is NULL: incremental for lmdb, a full rebuild otherwise. */
int postfix_table_rebuild(const struct conf *conf, const char *source, char **err_r);
int postfix_table_set(const struct conf *conf, const char *source, const char *key,
		      const char *line, char **err_r);

/* Queue a complete message (headers and body, LF line ends) through
 * sendmail_path -C postfix_config_dir -t.  0 or -1 with a reason. */
int postfix_sendmail(const struct conf *conf, const char *sender,
		     const char *message, char **err_r);

/* Look a key up in one Postfix map.  1 found (*value_r set, caller frees),
 * 0 not found, -1 error. */
int postfix_map_query(const struct conf *conf, const char *map,
		      const char *key, char **value_r, char **err_r);

#endif
