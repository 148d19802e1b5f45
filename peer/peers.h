/* peers.h - the link between servers: transport only.
 *
 * Every node listens on "listen" and keeps up to PEERS_POOL client
 * connections to each configured peer for its own requests, so the two
 * directions never wait for each other and concurrent commits do not
 * queue behind one round trip.  All traffic is mutual TLS 1.3 pinned by SPKI (tls.h);
 * a connection whose certificate is not pinned is refused before any
 * request is read.  Requests and answers are msg frames: an answer may be
 * preceded by item frames (those with an "item" key).  What the requests
 * mean is the engine's business: incoming ones go to a handler.
 */
#ifndef MA_PEERS_H
#define MA_PEERS_H

#include "conf.h"
#include "msg.h"
#include "tls.h"

#define PEERS_MAX_INCOMING 64
#define PEERS_POOL 4		/* client connections per peer */
#define PEERS_CONNECT_TIMEOUT_MS 5000

/* Admission to the listener.  Anyone can open TCP connections to the peer
 * port, so connections that have not authenticated yet (TLS handshake and
 * pin check, which must end within PEERS_ACCEPT_HANDSHAKE_MS) are limited:
 * PEERS_UNAUTH_PER_ADDR from one address that is not a configured peer's
 * (a "stranger") and PEERS_UNAUTH_STRANGERS from all strangers together;
 * a configured peer's address (its "address" host, resolved at start) has
 * a budget of its own, PEERS_UNAUTH_PER_PEER_ADDR, that strangers cannot
 * touch.  PEERS_MAX_INCOMING bounds everything. */
#define PEERS_ACCEPT_HANDSHAKE_MS 5000
#define PEERS_UNAUTH_PER_ADDR 4
#define PEERS_UNAUTH_STRANGERS 16
#define PEERS_UNAUTH_PER_PEER_ADDR (2 * PEERS_POOL)

enum peers_admission {
	PEERS_ADMIT,
	PEERS_REFUSE_FULL,	/* PEERS_MAX_INCOMING connections already */
	PEERS_REFUSE_STRANGERS,	/* strangers hold their share of handshakes */
	PEERS_REFUSE_ADDR,	/* this address holds its share */
};

/* May a new connection be served?  known: it comes from a configured
 * peer's address; incoming: connections being served; strangers_unauth:
 * of those, from strangers and not authenticated yet; addr_unauth: of
 * those, from the same address and not authenticated yet.  Pure. */
enum peers_admission peers_admit(int known, int incoming, int strangers_unauth,
				 int addr_unauth);

/* The log lines about refused connections, at most PEERS_LOG_BURST per
 * PEERS_LOG_WINDOW_MS: beyond that they are counted per address (the
 * first PEERS_LOG_ADDRS addresses, the rest together) and summed up in one
 * line when the window ends, so a flood cannot flood syslog. */
#define PEERS_LOG_BURST 20
#define PEERS_LOG_WINDOW_MS 10000
#define PEERS_LOG_ADDRS 4

struct peers_loglimit {
	long long window_start;		/* monotonic ms; 0: no window open */
	int logged;			/* lines logged in this window */
	unsigned long suppressed;	/* lines not logged in this window */
	char addr[PEERS_LOG_ADDRS][64];	/* who they were from ... */
	unsigned long count[PEERS_LOG_ADDRS];
	unsigned long others;		/* ... and those from anybody else */
};

/* One refusal from addr at now_ms: 1 if it may be logged, else 0 (it is
 * counted).  Pure. */
int peers_loglimit_take(struct peers_loglimit *l, long long now_ms, const char *addr);
/* If the window has ended and lines were held back, write their summary
 * ("N refused connections not logged in the last S s: from A (n), ...")
 * into buf and return 1 (the window is reset); else 0.  Pure. */
int peers_loglimit_flush(struct peers_loglimit *l, long long now_ms, char *buf,
			 size_t size);
/* Milliseconds until the open window ends if lines were held back, else
 * -1: when to call peers_loglimit_flush next.  Pure. */
int peers_loglimit_due(const struct peers_loglimit *l, long long now_ms);

struct peers;

/* Emit one item frame of a multi-frame answer. */
typedef void (*peers_emit_fn)(void *emit_arg, const struct msg *item);
/* Serve one request from the authenticated peer named peer. */
typedef void (*peers_handler_fn)(void *arg, const char *peer,
				 const struct msg *req, struct msg *resp,
				 peers_emit_fn emit, void *emit_arg);

/* Bind the listener and start serving.  conf and tls are borrowed and
 * must outlive the peers.  0 or -1 with a reason. */
int peers_open(const struct conf *conf, struct tls_ctx *tls,
	       peers_handler_fn handler, void *handler_arg,
	       struct peers **p_r, char **err_r);
/* Stop listening, close every connection, wait for the serving threads. */
void peers_close(struct peers **p);

size_t peers_count(const struct peers *p);
/* Borrowed name (the peer's node_name) of peer i. */
const char *peers_name(const struct peers *p, size_t i);
/* Index of the peer named name, or -1. */
int peers_index(const struct peers *p, const char *name);

/* One request to peer i over our client connection (connecting first if
 * needed), waiting at most timeout_ms for the answer; item frames go to
 * item (may be NULL).  Up to PEERS_POOL calls to one peer run at once.
 * 0 and *resp, or -1 with a reason (the connection is then dropped). */
int peers_call(struct peers *p, size_t i, const struct msg *req,
	       struct msg *resp, void (*item)(void *, const struct msg *),
	       void *item_arg, int timeout_ms, char **err_r);
/* The same request to every peer at once.  resps[i], rcs[i] (0 or -1)
 * and errs[i] (caller frees) are filled for each peer. */
void peers_call_all(struct peers *p, const struct msg *req, struct msg *resps,
		    int *rcs, char **errs, int timeout_ms);

/* Link state of peer i for status: connected (1/0), last successful
 * exchange (wall clock seconds, 0 never), last error (caller frees, or
 * NULL). */
void peers_state(struct peers *p, size_t i, int *connected,
		 long long *last_contact, char **last_error);

#endif
