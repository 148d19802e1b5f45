/* log.h - syslog (facility mail) logging, mirrored to stderr with -f.
 *
 * One event per line.  Every line about a request starts with its id:
 * Postfix's queue id in the milter ("NOQUEUE" before one exists), the
 * transaction id in the sync daemon.  Lines about no request pass NULL
 * as id.  log_warn appends strerror(errno); log_warnx does not.
 */
#ifndef MA_LOG_H
#define MA_LOG_H

#include <stdbool.h>
#include "util.h"

/* ident is the program name; to_stderr mirrors every line to stderr. */
void log_init(const char *ident, bool to_stderr);
/* Raise or lower the threshold (a syslog priority); default LOG_INFO. */
void log_set_level(int priority);

void log_info(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_debug(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_notice(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_warn(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_warnx(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3);
void log_err(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3);
/* Two failure tiers, as Postfix's msg_fatal and msg_panic:
 * log_fatal(x): bad environment or configuration, the administrator's to
 * fix: log and exit(1).
 * log_panic: a broken invariant, this program's bug: log "panic: ..." at
 * LOG_ALERT and abort(), so that a core or the sanitizers show where.
 * The journal is durable before any state it describes, so a restart
 * finishes what a panic left. */
void log_fatalx(const char *fmt, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;
void log_fatal(const char *fmt, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;
void log_panic(const char *id, const char *fmt, ...) ATTR_PRINTF(2, 3) ATTR_NORETURN;

#endif
