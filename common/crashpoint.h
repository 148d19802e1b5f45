/* crashpoint.h - named points where a daemon can be made to kill itself.
 *
 * crash_point("coord-after-prepare") sends SIGKILL to the process when the
 * environment variable MILTER_ALIAS_CRASH_AT names that point at start-up.
 * The fault tests use it to crash a daemon at every step of a commit; in
 * normal operation the variable is unset and a crash point costs one
 * comparison with NULL.  The names are listed in milter-alias-peer(8).
 */
#ifndef MA_CRASHPOINT_H
#define MA_CRASHPOINT_H

/* Read MILTER_ALIAS_CRASH_AT once; call before starting threads. */
void crash_point_init(void);
void crash_point(const char *name);

#endif
