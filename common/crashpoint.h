/* crashpoint.h - named points where a test build can kill itself.
 *
 * Built with --enable-crash-points, CRASH_POINT("after-prepare") sends
 * SIGKILL to the process when the environment variable
 * MILTER_ALIAS_CRASH_AT equals that name: the fault tests use it to crash
 * a daemon at every step of a commit.  In a normal build it is nothing.
 */
#ifndef MA_CRASHPOINT_H
#define MA_CRASHPOINT_H

#ifdef ENABLE_CRASH_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#define CRASH_POINT(name) do {						\
	const char *at_ = getenv("MILTER_ALIAS_CRASH_AT");		\
	if (at_ != NULL && strcmp(at_, (name)) == 0)			\
		raise(SIGKILL);						\
} while (0)
#else
#define CRASH_POINT(name) do { } while (0)
#endif

#endif
