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
