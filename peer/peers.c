/* peers.c - TLS listener and client connections to the other servers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "peers.h"

#define HANDSHAKE_TIMEOUT_MS 10000	/* as a client; as a server see peers.h */
#define IDLE_TIMEOUT_MS (10 * 60 * 1000)
#define SERVE_WRITE_TIMEOUT_MS 10000

/* Our client connections to one peer: a small pool, so concurrent
 * commits do not queue behind one another's round trip. */
struct pconn {
	const struct conf_peer *cp;
	pthread_mutex_t lock[PEERS_POOL];	/* each held for a whole request */
	struct tls_conn *tls[PEERS_POOL];
	unsigned next;				/* round robin when all are busy */
	pthread_mutex_t state_lock;		/* guards next and the fields below */
	int connected;
	long long last_contact;
	char *last_error;
};

struct peers {
	const struct conf *conf;
	struct tls_ctx *tls;
	peers_handler_fn handler;
	void *handler_arg;
	struct pconn *out;
	size_t n;
	struct strlist all_pins;	/* every peer's pins: who may connect */
	struct strlist peer_addrs;	/* the peers' addresses, numeric */
	int listen_fd;
	int stop_pipe[2];
	pthread_t accept_thread;
	pthread_mutex_t lock;		/* guards incoming, slots and loglimit */
	pthread_cond_t idle;
	int incoming;
	struct slot {			/* a connection being served */
		int fd;			/* -1: free */
		int authed;		/* its handshake and pin check passed */
		int known;		/* from one of peer_addrs */
		char host[NI_MAXHOST];	/* numeric address */
	} slots[PEERS_MAX_INCOMING];
	struct peers_loglimit loglimit;	/* lines about refused connections */
	int stopping;
};

/* no_delay - each frame is a whole request or answer, and the other side
 * waits for it: send it now (Nagle would hold a small frame for the ACK
 * of the previous one, up to a delayed-ACK timeout) */
static void
no_delay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* split_hostport - "host:port" or "[v6]:port" into parts; -1 if malformed */
static int
split_hostport(const char *s, char **host_r, char **port_r)
{
	const char *colon = strrchr(s, ':');

	if (colon == NULL || colon[1] == '\0')
		return -1;
	if (s[0] == '[' && colon > s && colon[-1] == ']')
		*host_r = xstrndup(s + 1, (size_t)(colon - s - 2));
	else
		*host_r = xstrndup(s, (size_t)(colon - s));
	*port_r = xstrdup(colon + 1);
	return 0;
}

/* tcp_connect - connect within timeout_ms; fd or -1 with a reason */
static int
tcp_connect(const char *hostport, int timeout_ms, char **err_r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char *host = NULL, *port = NULL;
	int fd = -1, gai;

	if (split_hostport(hostport, &host, &port) < 0) {
		set_error(err_r, "bad address %s", hostport);
		return -1;
	}
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
		set_error(err_r, "cannot resolve %s: %s", hostport, gai_strerror(gai));
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		no_delay(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			set_error(err_r, "connect to %s: %s", hostport, strerror(errno));
			goto next;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, timeout_ms) != 1) {
			set_error(err_r, "connect to %s: timed out", hostport);
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
			set_error(err_r, "connect to %s: %s", hostport, strerror(soerr));
			goto next;
		}
		/* tls_handshake wants a blocking fd to start from. */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		break;
next:
		close(fd);
		fd = -1;
	}
out:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	free(port);
	return fd;
}

static void
note_state(struct pconn *pc, int connected, const char *error)
{
	pthread_mutex_lock(&pc->state_lock);
	pc->connected = connected;
	if (error == NULL) {
		pc->last_contact = now_wall();
		free(pc->last_error);
		pc->last_error = NULL;
	} else {
		free(pc->last_error);
		pc->last_error = xstrdup(error);
	}
	pthread_mutex_unlock(&pc->state_lock);
}

/* ensure_connected - open client connection *tls to pc (its lock held) */
static int
ensure_connected(struct peers *p, struct pconn *pc, struct tls_conn **tls,
		 int timeout_ms, char **err_r)
{
	char *pin = NULL, *err = NULL;
	int fd;

	if (*tls != NULL)
		return 0;
	fd = tcp_connect(pc->cp->address, timeout_ms < PEERS_CONNECT_TIMEOUT_MS ?
			 timeout_ms : PEERS_CONNECT_TIMEOUT_MS, err_r);
	if (fd < 0)
		return -1;
	if (tls_handshake(p->tls, fd, 0, &pc->cp->pins, HANDSHAKE_TIMEOUT_MS < timeout_ms ?
			  HANDSHAKE_TIMEOUT_MS : timeout_ms, tls, &pin, &err) < 0) {
		log_warnx(NULL, "peer %s: TLS handshake with %s refused: %s", pc->cp->name,
			  pc->cp->address, err);
		set_error(err_r, "TLS handshake with %s: %s", pc->cp->address, err);
		free(err);
		close(fd);
		return -1;
	}
	log_info(NULL, "peer %s: connected to %s pin=%s", pc->cp->name, pc->cp->address, pin);
	free(pin);
	return 0;
}

/* call_once - one exchange on client connection *tls (its lock held) */
static int
call_once(struct peers *p, struct pconn *pc, struct tls_conn **tls,
	  const struct msg *req, struct msg *resp,
	  void (*item)(void *, const struct msg *), void *item_arg,
	  long long deadline, char **err_r)
{
	long long left = deadline - now_mono_ms();

	if (ensure_connected(p, pc, tls, left > 0 ? (int)left : 1, err_r) < 0)
		return -1;
	if (tls_send_msg(*tls, req, left > 0 ? (int)left : 1, err_r) < 0)
		goto drop;
	for (;;) {
		int r;

		left = deadline - now_mono_ms();
		r = tls_recv_msg(*tls, resp, left > 0 ? (int)left : 1, err_r);
		if (r == 1)
			set_error(err_r, "peer closed the connection");
		if (r != 0)
			goto drop;
		if (msg_get(resp, "item") == NULL)
			return 0;
		if (item != NULL)
			item(item_arg, resp);
		msg_clear(resp);
	}
drop:
	/* A half-read answer leaves the stream unusable: start afresh.  A
	 * reset, not a goodbye: a request given up on (a prepare sent into a
	 * cut link, say) must not reach the peer when the link is back,
	 * after the change was aborted. */
	tls_abort(tls);
	return -1;
}

int
peers_call(struct peers *p, size_t i, const struct msg *req, struct msg *resp,
	   void (*item)(void *, const struct msg *), void *item_arg,
	   int timeout_ms, char **err_r)
{
	struct pconn *pc = &p->out[i];
	long long deadline = now_mono_ms() + timeout_ms;
	char *err = NULL;
	int reused, rc, k;

	/* A free connection if there is one, else wait for one in turn. */
	for (k = 0; k < PEERS_POOL; k++)
		if (pthread_mutex_trylock(&pc->lock[k]) == 0)
			break;
	if (k == PEERS_POOL) {
		struct timespec until;

		pthread_mutex_lock(&pc->state_lock);
		k = (int)(pc->next++ % PEERS_POOL);
		pthread_mutex_unlock(&pc->state_lock);
		/* The wait for a connection counts against the caller's time:
		 * with the peer unreachable, requests must not queue forever. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_mutex_timedlock(&pc->lock[k], &until) != 0) {
			set_error(err_r, "no connection to %s free within %d ms",
				  pc->cp->name, timeout_ms);
			return -1;
		}
	}
	reused = pc->tls[k] != NULL;
	rc = call_once(p, pc, &pc->tls[k], req, resp, item, item_arg, deadline, &err);
	/* A connection that sat idle may have died with the peer's restart;
	 * every request on the link is idempotent, so ask once more. */
	if (rc < 0 && reused && now_mono_ms() < deadline) {
		msg_clear(resp);
		rc = call_once(p, pc, &pc->tls[k], req, resp, item, item_arg, deadline, &err);
	}
	if (rc < 0) {
		note_state(pc, 0, err ? err : "error");
		set_error(err_r, "%s", err ? err : "error");
	} else
		note_state(pc, 1, NULL);
	pthread_mutex_unlock(&pc->lock[k]);
	free(err);
	return rc;
}

struct call_job {
	struct peers *p;
	size_t i;
	const struct msg *req;
	struct msg *resp;
	int *rc;
	char **err;
	int timeout_ms;
};

static void *
call_thread(void *arg)
{
	struct call_job *j = arg;

	*j->rc = peers_call(j->p, j->i, j->req, j->resp, NULL, NULL, j->timeout_ms, j->err);
	return NULL;
}

void
peers_call_all(struct peers *p, const struct msg *req, struct msg *resps,
	       int *rcs, char **errs, int timeout_ms)
{
	struct call_job *jobs = xcalloc(p->n, sizeof(*jobs));
	pthread_t *tids = xcalloc(p->n, sizeof(*tids));
	int *started = xcalloc(p->n, sizeof(*started));

	for (size_t i = 0; i < p->n; i++) {
		jobs[i] = (struct call_job){ p, i, req, &resps[i], &rcs[i], &errs[i], timeout_ms };
		/* One peer needs no thread: the common two-server case. */
		if (p->n > 1 && pthread_create(&tids[i], NULL, call_thread, &jobs[i]) == 0)
			started[i] = 1;
		else
			call_thread(&jobs[i]);
	}
	for (size_t i = 0; i < p->n; i++)
		if (started[i])
			pthread_join(tids[i], NULL);
	free(jobs);
	free(tids);
	free(started);
}

size_t
peers_count(const struct peers *p)
{
	return p->n;
}

const char *
peers_name(const struct peers *p, size_t i)
{
	return p->out[i].cp->name;
}

int
peers_index(const struct peers *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->out[i].cp->name, name) == 0)
			return (int)i;
	return -1;
}

void
peers_state(struct peers *p, size_t i, int *connected, long long *last_contact,
	    char **last_error)
{
	struct pconn *pc = &p->out[i];

	pthread_mutex_lock(&pc->state_lock);
	*connected = pc->connected;
	*last_contact = pc->last_contact;
	*last_error = pc->last_error ? xstrdup(pc->last_error) : NULL;
	pthread_mutex_unlock(&pc->state_lock);
}

/* ---- serving the other servers' requests ---- */

struct incoming {
	struct peers *p;
	int fd;
	int slot;				/* its index in p->slots */
	char addr[NI_MAXHOST + NI_MAXSERV + 1];	/* "host:port" */
	char port[NI_MAXSERV];
	struct tls_conn *tls;
};

static void
emit_frame(void *arg, const struct msg *item)
{
	struct incoming *in = arg;

	tls_send_msg(in->tls, item, SERVE_WRITE_TIMEOUT_MS, NULL);
}

/* peer_of_pin - the configured peer a pin belongs to, or NULL */
static const struct conf_peer *
peer_of_pin(const struct peers *p, const char *pin)
{
	for (size_t i = 0; i < p->n; i++)
		if (strlist_contains(&p->out[i].cp->pins, pin, false))
			return p->out[i].cp;
	return NULL;
}

/* ---- admission ---- */

enum peers_admission
peers_admit(int known, int incoming, int strangers_unauth, int addr_unauth)
{
	if (incoming >= PEERS_MAX_INCOMING)
		return PEERS_REFUSE_FULL;
	if (known)
		return addr_unauth >= PEERS_UNAUTH_PER_PEER_ADDR ? PEERS_REFUSE_ADDR : PEERS_ADMIT;
	if (addr_unauth >= PEERS_UNAUTH_PER_ADDR)
		return PEERS_REFUSE_ADDR;
	if (strangers_unauth >= PEERS_UNAUTH_STRANGERS)
		return PEERS_REFUSE_STRANGERS;
	return PEERS_ADMIT;
}

int
peers_loglimit_take(struct peers_loglimit *l, long long now_ms, const char *addr)
{
	int k;

	/* A window with lines held back stays open until it is summed up. */
	if (l->suppressed == 0 && (l->window_start == 0 ||
				   now_ms - l->window_start >= PEERS_LOG_WINDOW_MS)) {
		l->window_start = now_ms;
		l->logged = 0;
	}
	if (l->logged < PEERS_LOG_BURST) {
		l->logged++;
		return 1;
	}
	l->suppressed++;
	for (k = 0; k < PEERS_LOG_ADDRS; k++)
		if (l->count[k] == 0 || strcmp(l->addr[k], addr) == 0)
			break;
	if (k == PEERS_LOG_ADDRS) {
		l->others++;
		return 0;
	}
	if (l->count[k]++ == 0)
		snprintf(l->addr[k], sizeof(l->addr[k]), "%s", addr);
	return 0;
}

int
peers_loglimit_flush(struct peers_loglimit *l, long long now_ms, char *buf, size_t size)
{
	size_t len;

	if (l->suppressed == 0 || now_ms - l->window_start < PEERS_LOG_WINDOW_MS)
		return 0;
	len = (size_t)snprintf(buf, size, "%lu more refused connections not logged one by one "
			       "in the last %lld s:", l->suppressed,
			       (now_ms - l->window_start + 500) / 1000);
	for (int k = 0; k < PEERS_LOG_ADDRS && l->count[k] > 0 && len < size; k++)
		len += (size_t)snprintf(buf + len, size - len, "%s from %s (%lu)",
					k ? "," : "", l->addr[k], l->count[k]);
	if (l->others > 0 && len < size)
		(void)snprintf(buf + len, size - len, ", from other addresses (%lu)", l->others);
	memset(l, 0, sizeof(*l));
	return 1;
}

int
peers_loglimit_due(const struct peers_loglimit *l, long long now_ms)
{
	long long left;

	if (l->suppressed == 0)
		return -1;
	left = l->window_start + PEERS_LOG_WINDOW_MS - now_ms;
	return left < 0 ? 0 : (int)left;
}

/* log_summary - the summary of held-back refusals, if one is due (the
 * accept thread wakes for it; log_refused and peers_close call it too) */
static void
log_summary(struct peers *p)
{
	char buf[512];
	int due;

	pthread_mutex_lock(&p->lock);
	due = peers_loglimit_flush(&p->loglimit, now_mono_ms(), buf, sizeof(buf));
	pthread_mutex_unlock(&p->lock);
	if (due)
		log_warnx(NULL, "peer link: %s", buf);
}

/* log_refused - "refused connection from ADDR: why", unless too many such
 * lines were logged lately (then counted for log_summary) */
static void
log_refused(struct peers *p, const char *host, const char *port, const char *fmt, ...)
	ATTR_PRINTF(4, 5);
static void
log_refused(struct peers *p, const char *host, const char *port, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	int take;

	log_summary(p);
	pthread_mutex_lock(&p->lock);
	take = peers_loglimit_take(&p->loglimit, now_mono_ms(), host);
	pthread_mutex_unlock(&p->lock);
	if (!take)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx(NULL, "peer link: refused connection from %s:%s: %s", host, port, why);
}

/* numeric_host - the numeric address of sa into host; an IPv4-mapped IPv6
 * address as plain IPv4, so that both spellings compare equal */
static void
numeric_host(const struct sockaddr *sa, socklen_t len, char *host, size_t size, char *port,
	     size_t psize)
{
	if (getnameinfo(sa, len, host, (socklen_t)size, port, (socklen_t)psize,
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(host, size, "?");
	if (strncasecmp(host, "::ffff:", 7) == 0 && strchr(host, '.') != NULL)
		memmove(host, host + 7, strlen(host + 7) + 1);
}

/* resolve_peer_addrs - the numeric addresses of every peer's "address"
 * host: connections from them get the peers' share of the listener */
static void
resolve_peer_addrs(struct peers *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
		char *host = NULL, *port = NULL;
		int gai;

		if (split_hostport(p->out[i].cp->address, &host, &port) < 0)
			goto next;
		if ((gai = getaddrinfo(host, NULL, &hints, &res)) != 0) {
			log_warnx(NULL, "peer %s: cannot resolve %s (%s): its connections get no "
				  "share of the listener kept for the peers until the next start",
				  p->out[i].cp->name, host, gai_strerror(gai));
			goto next;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			char h[NI_MAXHOST], serv[NI_MAXSERV];

			numeric_host(ai->ai_addr, ai->ai_addrlen, h, sizeof(h), serv, sizeof(serv));
			if (!strlist_contains(&p->peer_addrs, h, true))
				strlist_add(&p->peer_addrs, h);
		}
		freeaddrinfo(res);
next:
		free(host);
		free(port);
	}
}

static void *
serve_thread(void *arg)
{
	struct incoming *in = arg;
	struct peers *p = in->p;
	const struct conf_peer *cp;
	struct msg req = { 0 }, resp = { 0 };
	char *pin = NULL, *err = NULL;
	int rc;

	rc = tls_handshake(p->tls, in->fd, 1, &p->all_pins, PEERS_ACCEPT_HANDSHAKE_MS,
			   &in->tls, &pin, &err);
	if (rc < 0) {
		log_refused(p, p->slots[in->slot].host, in->port, "%s", err);
		goto out;
	}
	pthread_mutex_lock(&p->lock);
	p->slots[in->slot].authed = 1;
	pthread_mutex_unlock(&p->lock);
	cp = peer_of_pin(p, pin);
	log_info(NULL, "peer %s: accepted connection from %s pin=%s", cp->name, in->addr, pin);
	for (;;) {
		int r = tls_recv_msg(in->tls, &req, IDLE_TIMEOUT_MS, &err);

		if (r == 1)
			break;
		if (r < 0) {
			log_warnx(NULL, "peer %s: dropping connection from %s: %s",
				  cp->name, in->addr, err);
			break;
		}
		/* The claimed name must be the one the pin proved. */
		if (strcmp(msg_gets(&req, "sender"), cp->name) != 0) {
			log_warnx(NULL, "peer %s: request claims to come from \"%.64s\"; dropping "
				  "connection from %s", cp->name, msg_gets(&req, "sender"), in->addr);
			break;
		}
		msg_clear(&resp);
		p->handler(p->handler_arg, cp->name, &req, &resp, emit_frame, in);
		if (tls_send_msg(in->tls, &resp, SERVE_WRITE_TIMEOUT_MS, &err) < 0) {
			log_warnx(NULL, "peer %s: answer lost: %s", cp->name, err);
			break;
		}
		msg_clear(&req);
	}
out:
	msg_clear(&req);
	msg_clear(&resp);
	free(pin);
	free(err);
	/* Leave the slot before the fd is closed and its number reused. */
	pthread_mutex_lock(&p->lock);
	p->slots[in->slot].fd = -1;
	pthread_mutex_unlock(&p->lock);
	if (in->tls != NULL)
		tls_close(&in->tls);
	else
		close(in->fd);
	pthread_mutex_lock(&p->lock);
	if (--p->incoming == 0)
		pthread_cond_broadcast(&p->idle);
	pthread_mutex_unlock(&p->lock);
	free(in);
	return NULL;
}

/* admit - take a slot for fd from host if peers_admit allows; its index,
 * or -1 after logging the refusal */
static int
admit(struct peers *p, int fd, const char *host, const char *port)
{
	int known = strlist_contains(&p->peer_addrs, host, true);
	int strangers = 0, same = 0, free_slot = -1;
	enum peers_admission a;

	pthread_mutex_lock(&p->lock);
	for (int k = 0; k < PEERS_MAX_INCOMING; k++) {
		const struct slot *sl = &p->slots[k];

		if (sl->fd < 0) {
			if (free_slot < 0)
				free_slot = k;
			continue;
		}
		if (sl->authed)
			continue;
		strangers += !sl->known;
		same += strcmp(sl->host, host) == 0;
	}
	a = peers_admit(known, p->incoming, strangers, same);
	if (a == PEERS_ADMIT) {
		p->incoming++;
		p->slots[free_slot] = (struct slot){ .fd = fd, .known = known };
		snprintf(p->slots[free_slot].host, sizeof(p->slots[free_slot].host), "%s", host);
	}
	pthread_mutex_unlock(&p->lock);
	switch (a) {
	case PEERS_ADMIT:
		return free_slot;
	case PEERS_REFUSE_FULL:
		log_refused(p, host, port, "%d connections already", PEERS_MAX_INCOMING);
		break;
	case PEERS_REFUSE_STRANGERS:
		log_refused(p, host, port, "%d connections from addresses that are not a "
			    "peer's are not authenticated yet", PEERS_UNAUTH_STRANGERS);
		break;
	case PEERS_REFUSE_ADDR:
		log_refused(p, host, port, "%d connections from this address are not "
			    "authenticated yet", known ? PEERS_UNAUTH_PER_PEER_ADDR :
			    PEERS_UNAUTH_PER_ADDR);
		break;
	}
	return -1;
}

static void
leave_slot(struct peers *p, int k)
{
	pthread_mutex_lock(&p->lock);
	p->incoming--;
	p->slots[k].fd = -1;
	pthread_mutex_unlock(&p->lock);
}

static void *
accept_thread(void *arg)
{
	struct peers *p = arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = p->listen_fd, .events = POLLIN },
			{ .fd = p->stop_pipe[0], .events = POLLIN },
		};
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		struct incoming *in;
		char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
		pthread_t tid;
		int fd, k, due;

		pthread_mutex_lock(&p->lock);
		due = peers_loglimit_due(&p->loglimit, now_mono_ms());
		pthread_mutex_unlock(&p->lock);
		if (poll(pfd, 2, due) < 0)
			continue;
		/* held-back refusals are summed up even when the flood stops */
		log_summary(p);
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		fd = accept4(p->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		no_delay(fd);
		numeric_host((struct sockaddr *)&ss, sslen, host, sizeof(host), port, sizeof(port));
		if ((k = admit(p, fd, host, port)) < 0) {
			close(fd);
			continue;
		}
		in = xcalloc(1, sizeof(*in));
		in->p = p;
		in->fd = fd;
		in->slot = k;
		snprintf(in->addr, sizeof(in->addr), "%s:%s", host, port);
		snprintf(in->port, sizeof(in->port), "%s", port);
		if (pthread_create(&tid, &attr, serve_thread, in) != 0) {
			leave_slot(p, k);
			close(fd);
			free(in);
		}
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* listen_on - bind host:port; fd or -1 */
static int
listen_on(const char *hostport, char **err_r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL;
	char *host = NULL, *port = NULL;
	int fd = -1, one = 1, gai;

	if (split_hostport(hostport, &host, &port) < 0) {
		set_error(err_r, "listen: bad address %s", hostport);
		return -1;
	}
	if ((gai = getaddrinfo(*host ? host : NULL, port, &hints, &res)) != 0) {
		set_error(err_r, "listen: %s: %s", hostport, gai_strerror(gai));
		goto out;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		set_error(err_r, "listen: %s: %s", hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
out:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	free(port);
	return fd;
}

int
peers_open(const struct conf *conf, struct tls_ctx *tls, peers_handler_fn handler,
	   void *handler_arg, struct peers **p_r, char **err_r)
{
	struct peers *p = xcalloc(1, sizeof(*p));

	*p_r = NULL;
	p->conf = conf;
	p->tls = tls;
	p->handler = handler;
	p->handler_arg = handler_arg;
	p->n = conf->npeers;
	p->out = xcalloc(p->n, sizeof(*p->out));
	for (size_t i = 0; i < p->n; i++) {
		p->out[i].cp = &conf->peers[i];
		for (int k = 0; k < PEERS_POOL; k++)
			pthread_mutex_init(&p->out[i].lock[k], NULL);
		pthread_mutex_init(&p->out[i].state_lock, NULL);
		for (size_t k = 0; k < conf->peers[i].pins.n; k++)
			strlist_add(&p->all_pins, conf->peers[i].pins.v[k]);
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle, NULL);
	for (int k = 0; k < PEERS_MAX_INCOMING; k++)
		p->slots[k].fd = -1;
	resolve_peer_addrs(p);
	p->stop_pipe[0] = p->stop_pipe[1] = -1;
	if ((p->listen_fd = listen_on(conf->listen, err_r)) < 0 ||
	    pipe2(p->stop_pipe, O_CLOEXEC) < 0 ||
	    pthread_create(&p->accept_thread, NULL, accept_thread, p) != 0) {
		if (p->listen_fd >= 0)
			set_error(err_r, "peer link: cannot start the listener");
		p->stopping = -1;	/* no thread to join */
		peers_close(&p);
		return -1;
	}
	*p_r = p;
	return 0;
}

void
peers_close(struct peers **pp)
{
	struct peers *p = *pp;

	if (p == NULL)
		return;
	if (p->stopping == 0) {
		if (write(p->stop_pipe[1], "x", 1) < 0)
			log_warn(NULL, "peer link: stop");
		pthread_join(p->accept_thread, NULL);
	}
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	for (int k = 0; k < 2; k++)
		if (p->stop_pipe[k] >= 0)
			close(p->stop_pipe[k]);
	/* Wake every serving thread out of its read, then wait for them. */
	pthread_mutex_lock(&p->lock);
	for (int k = 0; k < PEERS_MAX_INCOMING; k++)
		if (p->slots[k].fd >= 0)
			shutdown(p->slots[k].fd, SHUT_RDWR);
	while (p->incoming > 0)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->n; i++) {
		for (int k = 0; k < PEERS_POOL; k++) {
			pthread_mutex_lock(&p->out[i].lock[k]);
			tls_close(&p->out[i].tls[k]);
			pthread_mutex_unlock(&p->out[i].lock[k]);
		}
		free(p->out[i].last_error);
	}
	free(p->out);
	strlist_clear(&p->all_pins);
	strlist_clear(&p->peer_addrs);
	/* the refusals held back so far, without waiting for their window */
	{
		long long now = now_mono_ms(), end = p->loglimit.window_start + PEERS_LOG_WINDOW_MS;
		char buf[512];

		if (peers_loglimit_flush(&p->loglimit, now > end ? now : end, buf, sizeof(buf)))
			log_warnx(NULL, "peer link: %s", buf);
	}
	free(p);
	*pp = NULL;
}
