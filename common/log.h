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
/* Bad environment or configuration: log and exit(1). */
void log_fatalx(const char *fmt, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;
void log_fatal(const char *fmt, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;

#endif
