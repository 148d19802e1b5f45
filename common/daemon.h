/* daemon.h - what both daemons do first: parse "-c FILE -f -t", start
 * logging, load the configuration, and stop there for -t. */
#ifndef MA_DAEMON_H
#define MA_DAEMON_H

#include "conf.h"

/* Parse argv for program ident, set up logging (stderr too with -f), load
 * the configuration.  Exits 2 with a usage line on bad arguments, 1 with
 * one line naming file, line and key on a bad configuration, and 0 after
 * a successful -t.  Otherwise returns the configuration (caller frees). */
struct conf *daemon_start(const char *ident, int argc, char **argv);

#endif
