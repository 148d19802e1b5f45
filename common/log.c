/* log.c - syslog facility mail, optionally mirrored to stderr. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

static bool log_stderr;
static int log_level = LOG_INFO;
static const char *log_ident = "milter-alias";

void
log_init(const char *ident, bool to_stderr)
{
	log_ident = ident;
	log_stderr = to_stderr;
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(int priority)
{
	log_level = priority;
}

static void log_emit_f(int pri, const char *id, const char *fmt, ...) ATTR_PRINTF(3, 4);

/* log_emit - format one line, append errno text if asked, send it out. */
static void ATTR_PRINTF(4, 0)
log_emit(int pri, const char *id, int saved_errno, const char *fmt, va_list ap)
{
	char msg[2048];
	int n = 0;

	if (pri > log_level)
		return;
	if (id != NULL)
		n = snprintf(msg, sizeof(msg), "%s: ", id);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	if (saved_errno != 0) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved_errno));
	}
	/* A stray newline would split one event over two lines. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	syslog(pri, "%s", msg);
	if (log_stderr)
		fprintf(stderr, "%s: %s\n", log_ident, msg);
}

static void
log_emit_f(int pri, const char *id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(pri, id, 0, fmt, ap);
	va_end(ap);
}

#define LOG_FN(fn, pri, with_errno)					\
void									\
fn(const char *id, const char *fmt, ...)				\
{									\
	int e = (with_errno) ? errno : 0;				\
	va_list ap;							\
									\
	va_start(ap, fmt);						\
	log_emit(pri, id, e, fmt, ap);					\
	va_end(ap);							\
}

LOG_FN(log_debug, LOG_DEBUG, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_notice, LOG_NOTICE, 0)
LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_warnx, LOG_WARNING, 0)
LOG_FN(log_err, LOG_ERR, 0)

void
log_fatalx(const char *fmt, ...)
{
	va_list ap;
	bool was = log_stderr;

	/* A fatal error always reaches stderr: it is what -t and a failed
	 * start show the administrator. */
	log_stderr = true;
	va_start(ap, fmt);
	log_emit(LOG_CRIT, NULL, 0, fmt, ap);
	va_end(ap);
	log_stderr = was;
	exit(1);
}

void
log_fatal(const char *fmt, ...)
{
	int e = errno;
	va_list ap;

	log_stderr = true;
	va_start(ap, fmt);
	log_emit(LOG_CRIT, NULL, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_panic(const char *id, const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_stderr = true;
	log_emit_f(LOG_ALERT, id, "panic: %s", what);
	abort();
}
