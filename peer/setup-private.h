/* setup-private.h - postfix-setup's phases and what they share.
 *
 * Only milter-aliasctl links postfix-setup; this header is for its files:
 *   setup.c         postfix_setup(): the flow, the problem and note lists
 *   setup-look.c    read main.cf and master.cf with postconf, stat and ask
 *                   the maps, the milter socket, the daemon's probe
 *   setup-plan.c    one change per parameter, -o option and map, and the
 *                   problems that forbid applying
 *   setup-apply.c   backups, maps, postconf -e/-P, read back, postfix
 *                   check, reload
 *   setup-report.c  the text and JSON output
 * Every Postfix program runs through pftool.h.
 */
#ifndef MA_SETUP_PRIVATE_H
#define MA_SETUP_PRIVATE_H

#include "conf.h"
#include "replies.h"
#include "setup.h"
#include "util.h"

/* The restriction class: authenticated clients pass, everyone else gets a
 * reason.  static:{...} with spaces works in restriction lists (Postfix
 * splits them with braces respected) and "postmap -q x 'static:{...}'"
 * returns the whole text on 3.7. */
#define REQUEST_CLASS_VALUE \
	"permit_sasl_authenticated, check_recipient_access " \
	"static:{550 5.7.1 " REPLY_AUTH_FIRST "}"

/* An smtpd service without the milter where clients may authenticate
 * (port 25 when main.cf enables SASL, as ISPmail does): a request sent
 * there would be accepted and discarded unseen, so the service overrides
 * the class with -o milter_alias_request=$milter_alias_elsewhere, which
 * refuses the request address with this reason. */
#define ELSEWHERE_PARAM "milter_alias_elsewhere"
#define ELSEWHERE_VALUE \
	"check_recipient_access static:{550 5.7.1 Send alias requests with SMTP " \
	"AUTH through the submission service, where they are handled}"

enum ch_kind { CH_MAP, CH_MAIN, CH_MASTER };

struct change {
	enum ch_kind kind;
	char *key;		/* map: source path; main: parameter; master: svc/type/param */
	char *value;		/* map: source text; otherwise the new value */
	char *spec;		/* map: "type:path" */
	char *db;		/* map: compiled file */
	char *text;		/* the report line */
	const char *status;	/* pending, done, failed, not done */
	char *error;
	int route;		/* main: brings in the request map or the discard
				 * transport (the request route); applied last */
};

struct service {
	char *key;		/* "submission/inet" */
	char *command;		/* "smtpd" */
	char *chroot;		/* y, n or - */
	struct strlist pnames;	/* -o parameters ... */
	struct strlist pvalues;	/* ... and their raw values */
};

/* A list-valued parameter being edited: main.cf or one service's -o. */
struct ledit {
	int master;
	char *key;		/* main: parameter; master: svc/type/param */
	char *label;		/* "main.cf: x" or "master.cf: svc/type: -o x" */
	char *orig;		/* raw value before ("" if none) */
	int existed;		/* master: the -o was there */
	struct strlist front, back;	/* items added first / last */
	char *why;		/* extra explanation for the report */
};

struct setup {
	const struct conf *conf;
	const struct setup_options *opts;
	int root;

	/* look: Postfix as it is, and the names of our things in it */
	char *dir, *main_cf, *master_cf;
	char *queue_dir, *mail_owner, *default_action;
	struct service *svc;	/* master.cf */
	size_t nsvc;
	const char *sfx;	/* compiled-map suffix for map_type */
	const char *alias_param;	/* virtual_alias_maps or alias_maps */
	char *alias_spec, *alias_db;
	char *access_spec, *access_db;
	char *senders_spec, *senders_db;
	char *req_path, *req_spec, *req_db, *req_text;
	char *tr_path, *tr_spec, *tr_db, *tr_text;
	char *milter_spec;	/* as Postfix names our milter */
	char *milter_entry;	/* what goes into a milter list */
	char *milter_canon;	/* for comparisons */

	/* plan: the changes, in the order of applying, and what stands in
	 * their way */
	struct ledit *led;
	size_t nled;
	struct change *ch;
	size_t nch;
	int milter_needed;	/* some change adds the milter */
	char *class_was;	/* milter_alias_request needs setting; its old value */
	char *elsewhere_was;	/* milter_alias_elsewhere's value when not ours */
	int elsewhere_needed;	/* some service refuses requests with it */
	struct strlist problems, notes;

	/* apply and report */
	struct strlist backups;
	const char *check;	/* postfix check: "clean", "failed", "not run" */
	const char *reload;	/* "done", "not running", "not done", "failed" */
	const char *failed_step;	/* the step --apply stopped at */
	int reloaded;		/* reloads done with the new files */
	int restored;		/* 1: main.cf/master.cf put back from the
				 * backups, -1: that failed, 0: not needed */
	const char *result;
};

/* setup.c: a line for the report, once */
void setup_problem(struct setup *s, const char *fmt, ...) ATTR_PRINTF(2, 3);
void setup_note(struct setup *s, const char *fmt, ...) ATTR_PRINTF(2, 3);

/* setup-look.c */
int setup_look(struct setup *s, char **err_r);
int setup_pc_get(struct setup *s, const char *param, int expand, char **val_r,
		 char **err_r);
int setup_pc_value(struct setup *s, const char *param, int expand, char **val_r,
		   char **err_r);
char *setup_pc_default(struct setup *s, const char *param);
int setup_pc_master_get(struct setup *s, const char *key, int expand, char **val_r,
			char **err_r);
const char *setup_service_param(const struct service *sv, const char *name);
int setup_map_query(struct setup *s, const char *spec, const char *input,
		    struct buf *out, char **err_r);
int setup_readable(struct setup *s, const char *path);
void setup_check_daemon_map(struct setup *s, const char *what, const char *spec,
			    const char *db);
int setup_map_answers(struct setup *s, const char *spec, const char *expect,
		      char **err_r);
int setup_own_map_current(struct setup *s, const char *path, const char *text,
			  const char *spec, const char *db, const char *expect);
int setup_milter_alive(struct setup *s, char **err_r);
char *setup_milter_canon(const char *name, const char *queue_dir);

/* setup-plan.c */
int setup_plan(struct setup *s, char **err_r);
void setup_preconditions(struct setup *s);

/* setup-apply.c */
int setup_apply(struct setup *s);
int setup_postfix_check(struct setup *s, char **err_r);

/* setup-report.c: each returns the exit status of what it reports */
void setup_say(struct setup *s, const char *prefix, const char *text,
	       const char *error);
int setup_report_error(struct setup *s, const char *err);
int setup_report_plan(struct setup *s);
int setup_report_refused(struct setup *s);
int setup_report_nothing(struct setup *s);
int setup_report_applied(struct setup *s, int rc);
void setup_report_json(struct setup *s, int rc);

void setup_free(struct setup *s);

#endif
