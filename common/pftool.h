/* pftool.h - the one way this project runs Postfix's programs.
 *
 * Every postconf, postmap, postalias, postfix and sendmail run of the
 * milter, the sync daemon and postfix-setup goes through here: the
 * program from POSTFIX_SBINDIR (sendmail from sendmail_path), always
 * against one configuration directory ("-c DIR", sendmail "-C DIR"),
 * never through a shell, bounded by one timeout, judged by one rule and
 * summed up in one line when it fails.
 *
 * The rule: a run failed when it could not run, was killed or timed out,
 * exited with a status other than 0 (or 1 where 1 is an answer, see
 * PFTOOL_EXIT1_OK), or printed "fatal:" or "error:" on stderr.  Postfix
 * tools print "warning:" lines on stderr even when they succeed; those
 * are not failures.
 */
#ifndef MA_PFTOOL_H
#define MA_PFTOOL_H

#include "util.h"

/* How long any Postfix program may take before it is killed. */
#define PFTOOL_TIMEOUT_MS 30000

/* Exit status 1 is an answer, not a failure: postmap -q (not found),
 * postmap -d (the key was absent). */
#define PFTOOL_EXIT1_OK 0x1

/* One run.  Zero-initialize; pftool_run_free() after use. */
struct pftool_run {
	int status;		/* exit status 0..255; -1: did not run, killed, timed out */
	struct buf out;		/* its stdout */
	struct buf err;		/* its stderr */
	char *run_err;		/* why, when status < 0 */
};

/* Run POSTFIX_SBINDIR/prog -c config_dir args... (args NULL-terminated,
 * may be NULL) with input (may be NULL) on stdin, and judge it.  0 if it
 * succeeded by the rule above; else -1 with the one-line summary (see
 * pftool_error, "what" or prog naming the run) in *err_r.  Either way the
 * output is in *r. */
int pftool_run(struct pftool_run *r, const char *config_dir, const char *prog,
	       const char *const args[], const char *input, int flags,
	       const char *what, char **err_r);

/* The rule above, for a finished run. */
int pftool_failed(const struct pftool_run *r, int flags);

/* The one-line summary of a failed run into *err_r: "what: reason" if it
 * did not run, else "what failed (exit N): " and the last line of its
 * stderr, which names the problem. */
void pftool_error(const struct pftool_run *r, const char *what, char **err_r);

/* The last non-blank line of b, caller frees ("" if none). */
char *pftool_last_line(const struct buf *b);

void pftool_run_free(struct pftool_run *r);

/*
 * postmap -q.  Keys go on stdin ("postmap -q - MAP..."), never on the
 * command line: no option injection, and one run asks any number of keys
 * in any number of maps.  Postfix prints one "key<TAB>value" line per hit.
 */

/* Ask keys (one per line) in every map of maps.  1 if anything was found
 * (the hits in r->out; a hit is final even if another map failed: the key
 * has a home), 0 if nothing was, -1 with the summary in *err_r.  No maps:
 * 0 without a run. */
int pftool_query(struct pftool_run *r, const char *config_dir,
		 const struct strlist *maps, const char *keys, char **err_r);

/* One key in one map.  1 and its value (trimmed, caller frees) in
 * *value_r, 0 not found, -1 with the summary in *err_r. */
int pftool_lookup(const char *config_dir, const char *map, const char *key,
		  char **value_r, char **err_r);

/* The keys of "key<TAB>value" lines, one per line (caller frees): what
 * to ask to get exactly those lines back. */
char *pftool_answer_keys(const char *answer);

/* Queue a complete message through sendmail_path -C config_dir -i -t
 * -f sender.  0 or -1 with the summary in *err_r. */
int pftool_sendmail(const char *sendmail_path, const char *config_dir,
		    const char *sender, const char *message, char **err_r);

/* Run POSTFIX_SBINDIR/prog -c config_dir args... with stdin, stdout and
 * stderr on a new pseudo-terminal, its output (CR removed) in *out:
 * Postfix commands ("postfix check") print their warnings only to a
 * terminal or the mail log.  The exit status, or -1 with a reason. */
int pftool_run_pty(const char *config_dir, const char *prog,
		   const char *const args[], struct buf *out, char **err_r);

#endif
