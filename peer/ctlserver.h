/* ctlserver.h - the control socket: the milter's and milter-aliasctl's way
 * into the sync daemon.
 *
 * A unix stream socket, mode 0660.  Each connection carries one request
 * frame and gets zero or more item frames, then one reply frame.  Only
 * root, the daemon's own user and members of its group are served; the
 * check uses the kernel's peer credentials, not the file mode alone.
 */
#ifndef MA_CTLSERVER_H
#define MA_CTLSERVER_H

#include <signal.h>
#include "engine.h"

#define CTLSERVER_MAX_CONNS 128

struct ctlserver;

/* Create the socket at path (removing a stale one).  0 or -1. */
int ctlserver_open(const char *path, struct ctlserver **s_r, char **err_r);
/* Serve until *stop is set; wake_fd becomes readable on a signal.
 * Waits for running connections before it returns. */
void ctlserver_run(struct ctlserver *s, struct engine *e, int wake_fd,
		   volatile sig_atomic_t *stop);
void ctlserver_close(struct ctlserver **s);

#endif
