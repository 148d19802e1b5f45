/* fake_peers.h - an in-process stand-in for peer/peers.c, for the unit
 * tests of the commit protocol (test_commit.c).
 *
 * fake_peers.c defines every peers_* function the library calls, so a test
 * binary that links it before peer/libpeer.a never pulls in peers.o (nor
 * TLS).  A struct peers here belongs to one engine ("self") and lists the
 * engines it can reach by node_name.  A call is delivered synchronously, in
 * the calling thread, to sync_peer_handler(remote, self, ...), the request
 * and the answer (and every item) passing through msg_frame/msg_unframe as
 * on the wire; peers_call_all calls the peers one after another.
 */
#ifndef MA_FAKE_PEERS_H
#define MA_FAKE_PEERS_H

#include <stddef.h>

struct engine;
struct msg;
struct peers;

/* Runs instead of the next delivery of its op (once, then it is cleared),
 * before the cut check.  Return 0 to deliver the request as usual after
 * it, 1 when the hook filled resp itself (nothing is delivered), -1 to
 * make the call fail as if the peer were unreachable. */
typedef int (*fake_hook_fn)(void *arg, const char *to, const struct msg *req,
			    struct msg *resp);

struct peers *fake_peers_new(const char *self);
/* Add a reachable peer; remote may be replaced later (an engine reopened). */
void fake_peers_add(struct peers *p, const char *name, struct engine *remote);
void fake_peers_set_remote(struct peers *p, const char *name, struct engine *remote);
/* cut 1: every call to name fails with -1 "unreachable"; 0: heal. */
void fake_peers_cut(struct peers *p, const char *name, int cut);
/* One hook for the next request whose op is op (to any peer). */
void fake_peers_hook(struct peers *p, const char *op, fake_hook_fn fn, void *arg);
/* Requests of op delivered to a remote engine so far (NULL: any op). */
size_t fake_peers_delivered(const struct peers *p, const char *op);
void fake_peers_free(struct peers **p);

#endif
