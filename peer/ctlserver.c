/* ctlserver.c - control socket server, one thread per connection. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlproto.h"
#include "ctlserver.h"
#include "log.h"

#define READ_TIMEOUT_MS 10000
#define WRITE_TIMEOUT_MS 10000

struct ctlserver {
	char *path;
	int fd;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int active;
};

struct conn {
	struct ctlserver *server;
	struct engine *engine;
	int fd;
};

/* allowed - root, our own uid, or a member of our group */
static int
allowed(int fd, uid_t *uid_r)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *res = NULL;
	char buf[4096];
	gid_t groups[256];
	int ngroups = N_ELEMENTS(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	*uid_r = cred.uid;
	if (cred.uid == 0 || cred.uid == geteuid() || cred.gid == getegid())
		return 1;
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return 0;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ngroups) < 0)
		return 0;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == getegid())
			return 1;
	return 0;
}

static void
emit_item(void *arg, const struct msg *item)
{
	struct conn *c = arg;

	/* A client that went away only costs us the rest of the stream. */
	msg_send(c->fd, item, WRITE_TIMEOUT_MS, NULL);
}

static void
send_refusal(int fd, enum ctl_status status, const char *text)
{
	struct ctl_reply reply = { .status = status, .text = text };
	struct msg r = { 0 };

	ctlproto_reply_encode(&reply, &r);
	msg_send(fd, &r, 1000, NULL);
	msg_clear(&r);
}

static void *
conn_thread(void *arg)
{
	struct conn *c = arg;
	struct msg req = { 0 }, resp = { 0 };
	struct ctl_request r = { 0 };
	struct engine_followup f = { 0 };
	char *err = NULL;
	uid_t uid = (uid_t)-1;
	int rc;

	if (!allowed(c->fd, &uid)) {
		log_warnx(NULL, "control: refused connection from uid=%ld", (long)uid);
		/* Take the request first: closing on an unread request would
		 * make the client's write fail before it reads the refusal. */
		msg_recv(c->fd, &req, 1000, NULL);
		send_refusal(c->fd, CTL_PERM, "permission denied: run as root or as a "
			     "member of the daemon's group");
		goto out;
	}
	rc = msg_recv(c->fd, &req, READ_TIMEOUT_MS, &err);
	if (rc != 0) {
		if (rc < 0)
			log_warnx(NULL, "control: uid=%ld sent no valid request: %s",
				  (long)uid, err);
		goto out;
	}
	/* The one place a request's keys are read: below this, typed. */
	if (ctlproto_request_decode(&req, &r, &err) < 0) {
		struct ctl_reply refusal = { .status = CTL_PERM, .text = err };

		ctlproto_reply_encode(&refusal, &resp);
	} else
		engine_handle(c->engine, &r, &resp, emit_item, c, &f);
	if (msg_send(c->fd, &resp, WRITE_TIMEOUT_MS, &err) < 0)
		log_warnx(r.id, "control: reply to uid=%ld lost: %s",
			  (long)uid, err);
	close(c->fd);
	c->fd = -1;
	/* After the reply: the SMTP client has its 250 already. */
	engine_followup_run(c->engine, &f);
out:
	if (c->fd >= 0)
		close(c->fd);
	free(err);
	msg_clear(&req);
	msg_clear(&resp);
	pthread_mutex_lock(&c->server->lock);
	if (--c->server->active == 0)
		pthread_cond_broadcast(&c->server->idle);
	pthread_mutex_unlock(&c->server->lock);
	free(c);
	return NULL;
}

int
ctlserver_open(const char *path, struct ctlserver **s_r, char **err_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ctlserver *s;
	int fd;

	*s_r = NULL;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		set_error(err_r, "control_socket %s: path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		set_error(err_r, "socket: %s", strerror(errno));
		return -1;
	}
	/* A socket nobody answers on is a leftover from a crash. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		set_error(err_r, "control_socket %s: another milter-alias-peer is running", path);
		close(fd);
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, 0660) < 0 || listen(fd, 64) < 0) {
		set_error(err_r, "control_socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->path = xstrdup(path);
	s->fd = fd;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	*s_r = s;
	return 0;
}

void
ctlserver_run(struct ctlserver *s, struct engine *e, int wake_fd,
	      volatile sig_atomic_t *stop)
{
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!*stop) {
		struct pollfd pfd[2] = {
			{ .fd = s->fd, .events = POLLIN },
			{ .fd = wake_fd, .events = POLLIN },
		};
		struct conn *c;
		pthread_t tid;
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno != EINTR)
				log_warn(NULL, "control: poll");
			continue;
		}
		if (pfd[1].revents & POLLIN)
			break;	/* the caller looks at *stop and what woke us */
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN)
				log_warn(NULL, "control: accept");
			continue;
		}
		pthread_mutex_lock(&s->lock);
		if (s->active >= CTLSERVER_MAX_CONNS) {
			pthread_mutex_unlock(&s->lock);
			send_refusal(fd, CTL_TEMP, "the sync daemon is busy; try again later");
			close(fd);
			continue;
		}
		s->active++;
		pthread_mutex_unlock(&s->lock);
		c = xcalloc(1, sizeof(*c));
		c->server = s;
		c->engine = e;
		c->fd = fd;
		if (pthread_create(&tid, &attr, conn_thread, c) != 0) {
			log_warnx(NULL, "control: cannot start a thread");
			close(fd);
			free(c);
			pthread_mutex_lock(&s->lock);
			s->active--;
			pthread_mutex_unlock(&s->lock);
		}
	}
	pthread_attr_destroy(&attr);
}

void
ctlserver_close(struct ctlserver **sp)
{
	struct ctlserver *s = *sp;

	if (s == NULL)
		return;
	close(s->fd);
	unlink(s->path);
	/* Finish in-flight work: every change ends committed or aborted. */
	pthread_mutex_lock(&s->lock);
	while (s->active > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
	free(s->path);
	free(s);
	*sp = NULL;
}
