/* ctlsock.c - control socket client; see ctlsock.h. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlsock.h"

int
ctlsock_call(const char *path, const struct msg *req, struct msg *resp,
	     const struct ctlsock_opts *o, char **err_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long long deadline = now_mono_ms() + o->timeout_ms;
	int fd, rc = -1;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		set_error(err_r, "control socket path %s is too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	/* Non-blocking: a blocking connect waits without limit while the
	 * daemon's listen queue is full, and the caller has a deadline. */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		set_error(err_r, "socket: %s", strerror(errno));
		return -1;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || now_mono_ms() >= deadline) {
			set_error(err_r, "cannot connect to %s: %s", path,
				  errno == EAGAIN ? "its listen queue stayed full" : strerror(errno));
			goto out;
		}
		poll(NULL, 0, 10);	/* queue full: look again shortly */
	}
	if (msg_send(fd, req, o->timeout_ms, err_r) < 0)
		goto out;
	for (;;) {
		long long left = deadline - now_mono_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int slice = (int)left, r;

		if (left <= 0) {
			set_error(err_r, "no answer from %s within %d ms", path, o->timeout_ms);
			goto out;
		}
		/* Wait in slices so the caller can keep Postfix informed. */
		if (o->tick != NULL && o->tick_ms > 0 && slice > o->tick_ms)
			slice = o->tick_ms;
		r = poll(&pfd, 1, slice);
		if (r < 0 && errno != EINTR) {
			set_error(err_r, "poll: %s", strerror(errno));
			goto out;
		}
		if (r == 0 && o->tick != NULL)
			o->tick(o->tick_arg);
		if (r <= 0)
			continue;
		left = deadline - now_mono_ms();
		r = msg_recv(fd, resp, left > 0 ? (int)left : 1, err_r);
		if (r == 1) {
			set_error(err_r, "%s closed the connection without an answer", path);
			goto out;
		}
		if (r < 0)
			goto out;
		if (msg_get(resp, CTL_KEY_ITEM) == NULL)
			break;
		if (o->item != NULL)
			o->item(o->item_arg, resp);
		msg_clear(resp);
	}
	rc = 0;
out:
	close(fd);
	return rc;
}
