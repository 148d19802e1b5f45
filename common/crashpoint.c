/* crashpoint.c - fault injection for tests; see crashpoint.h. */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "log.h"

static const char *crash_at;

void
crash_point_init(void)
{
	crash_at = getenv("MILTER_ALIAS_CRASH_AT");
	if (crash_at != NULL && *crash_at == '\0')
		crash_at = NULL;
	if (crash_at != NULL)
		log_warnx(NULL, "fault injection: will crash at %s", crash_at);
}

void
crash_point(const char *name)
{
	if (crash_at != NULL && strcmp(crash_at, name) == 0) {
		log_warnx(NULL, "fault injection: crashing at %s", name);
		raise(SIGKILL);
	}
}
