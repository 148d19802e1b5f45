/* fake_peers.c - the peer link without sockets or TLS; see fake_peers.h. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_peers.h"
#include "log.h"
#include "msg.h"
#include "peers.h"
#include "sync.h"

struct fake_link {
	char *name;
	struct engine *remote;
	int cut;
	long long last_contact;
	char *last_error;
};

struct fake_count {
	char *op;
	size_t n;
};

struct peers {
	char *self;
	struct fake_link *links;
	size_t n;
	char *hook_op;
	fake_hook_fn hook;
	void *hook_arg;
	struct fake_count *counts;
	size_t ncounts;
};

struct peers *
fake_peers_new(const char *self)
{
	struct peers *p = xcalloc(1, sizeof(*p));

	p->self = xstrdup(self);
	return p;
}

void
fake_peers_add(struct peers *p, const char *name, struct engine *remote)
{
	p->links = xrealloc(p->links, (p->n + 1) * sizeof(*p->links));
	memset(&p->links[p->n], 0, sizeof(p->links[p->n]));
	p->links[p->n].name = xstrdup(name);
	p->links[p->n].remote = remote;
	p->n++;
}

static struct fake_link *
link_named(struct peers *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->links[i].name, name) == 0)
			return &p->links[i];
	return NULL;
}

void
fake_peers_set_remote(struct peers *p, const char *name, struct engine *remote)
{
	struct fake_link *l = link_named(p, name);

	if (l != NULL)
		l->remote = remote;
}

void
fake_peers_cut(struct peers *p, const char *name, int cut)
{
	struct fake_link *l = link_named(p, name);

	if (l != NULL)
		l->cut = cut;
}

void
fake_peers_hook(struct peers *p, const char *op, fake_hook_fn fn, void *arg)
{
	free(p->hook_op);
	p->hook_op = op ? xstrdup(op) : NULL;
	p->hook = fn;
	p->hook_arg = arg;
}

size_t
fake_peers_delivered(const struct peers *p, const char *op)
{
	size_t n = 0;

	for (size_t i = 0; i < p->ncounts; i++)
		if (op == NULL || strcmp(p->counts[i].op, op) == 0)
			n += p->counts[i].n;
	return n;
}

static void
count(struct peers *p, const char *op)
{
	for (size_t i = 0; i < p->ncounts; i++)
		if (strcmp(p->counts[i].op, op) == 0) {
			p->counts[i].n++;
			return;
		}
	p->counts = xrealloc(p->counts, (p->ncounts + 1) * sizeof(*p->counts));
	p->counts[p->ncounts].op = xstrdup(op);
	p->counts[p->ncounts].n = 1;
	p->ncounts++;
}

void
fake_peers_free(struct peers **pp)
{
	struct peers *p = *pp;

	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->links[i].name);
		free(p->links[i].last_error);
	}
	for (size_t i = 0; i < p->ncounts; i++)
		free(p->counts[i].op);
	free(p->counts);
	free(p->links);
	free(p->hook_op);
	free(p->self);
	free(p);
	*pp = NULL;
}

/* wire - m as the other end reads it: framed and unframed again */
static void
wire(const struct msg *m, struct msg *out)
{
	struct buf b = { 0 };
	size_t used = 0;
	char *err = NULL;

	msg_frame(m, &b);
	if (msg_unframe(b.data, b.len, &used, out, &err) != 1 || used != b.len)
		log_panic(NULL, "fake peers: a record does not survive the wire: %s",
			  err ? err : "short frame");
	buf_free(&b);
}

struct item_relay {
	void (*item)(void *, const struct msg *);
	void *arg;
};

static void
relay_item(void *arg, const struct msg *m)
{
	struct item_relay *r = arg;
	struct msg copy = { 0 };

	wire(m, &copy);
	if (r->item != NULL)
		r->item(r->arg, &copy);
	msg_clear(&copy);
}

/* ---- the peers.h API, as the library calls it ---- */

size_t
peers_count(const struct peers *p)
{
	return p ? p->n : 0;
}

const char *
peers_name(const struct peers *p, size_t i)
{
	return i < p->n ? p->links[i].name : "";
}

int
peers_index(const struct peers *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->links[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
peers_call(struct peers *p, size_t i, const struct msg *req, struct msg *resp,
	   void (*item)(void *, const struct msg *), void *item_arg,
	   int timeout_ms, char **err_r)
{
	struct item_relay relay = { item, item_arg };
	struct msg in = { 0 }, out = { 0 };
	const char *op = msg_gets(req, "op");
	struct fake_link *l;

	(void)timeout_ms;
	if (i >= p->n) {
		set_error(err_r, "no peer %zu", i);
		return -1;
	}
	l = &p->links[i];
	if (p->hook != NULL && p->hook_op != NULL && strcmp(p->hook_op, op) == 0) {
		fake_hook_fn fn = p->hook;
		int rc;

		p->hook = NULL;		/* once: a hook may call us again */
		rc = fn(p->hook_arg, l->name, req, resp);
		if (rc < 0) {
			set_error(err_r, "%s is unreachable (hook)", l->name);
			return -1;
		}
		if (rc > 0)
			return 0;
	}
	if (l->cut || l->remote == NULL) {
		set_error(err_r, "%s is unreachable (link cut)", l->name);
		free(l->last_error);
		l->last_error = xstrdup("unreachable (link cut)");
		return -1;
	}
	wire(req, &in);
	count(p, op);
	sync_peer_handler(l->remote, p->self, &in, &out, relay_item, &relay);
	wire(&out, resp);
	l->last_contact = (long long)time(NULL);
	msg_clear(&in);
	msg_clear(&out);
	return 0;
}

void
peers_call_all(struct peers *p, const struct msg *req, struct msg *resps,
	       int *rcs, char **errs, int timeout_ms)
{
	for (size_t i = 0; i < p->n; i++) {
		errs[i] = NULL;
		rcs[i] = peers_call(p, i, req, &resps[i], NULL, NULL, timeout_ms, &errs[i]);
	}
}

void
peers_state(struct peers *p, size_t i, int *connected, long long *last_contact,
	    char **last_error)
{
	*connected = i < p->n && !p->links[i].cut;
	*last_contact = i < p->n ? p->links[i].last_contact : 0;
	*last_error = i < p->n && p->links[i].last_error ? xstrdup(p->links[i].last_error) : NULL;
}
