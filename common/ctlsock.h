/* ctlsock.h - client side of the control socket (milter and aliasctl).
 *
 * One request frame, item frames, one reply frame, then the connection
 * closes.  The operations, their keys and the typed records are in
 * ctlproto.h; the server is peer/ctlserver.c.
 */
#ifndef MA_CTLSOCK_H
#define MA_CTLSOCK_H

#include "msg.h"

struct ctlsock_opts {
	int timeout_ms;			/* for the whole exchange */
	/* Called about every tick_ms while waiting (may be NULL). */
	void (*tick)(void *arg);
	void *tick_arg;
	int tick_ms;
	/* Called for each item frame (one with an "item" key) that comes
	 * before the reply; may be NULL to ignore them. */
	void (*item)(void *arg, const struct msg *item);
	void *item_arg;
};

/* Connect to path, send req, read item frames and the reply.  Returns 0
 * and fills *resp, or -1 with a reason (connect failure, timeout,
 * garbage). */
int ctlsock_call(const char *path, const struct msg *req, struct msg *resp,
		 const struct ctlsock_opts *o, char **err_r);

#endif
