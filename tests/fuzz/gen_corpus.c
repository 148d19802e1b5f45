/* gen_corpus.c - writes the structured seeds of tests/fuzz/corpus with the
 * project's own encoders (msg_frame, msg_encode_line, aliasmap_render), so
 * that the seeds are exactly what the programs exchange.  Built and run by
 * tests/fuzz/gen-corpus.sh; the output is committed, this is only needed
 * to regenerate it.
 *
 * usage: gen_corpus CORPUSDIR   (writes CORPUSDIR/{wire,ctl,map}/...)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliasmap.h"
#include "msg.h"
#include "util.h"

static const char *dir;

static void
write_file(const char *sub, const char *name, const void *data, size_t len)
{
	char *path = xasprintf("%s/%s/%s", dir, sub, name);
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(path);
}

/* msg_of - a record from "k=v" strings (values raw, not escaped) */
static void
msg_of(struct msg *m, const char *const *kv)
{
	for (; *kv != NULL; kv++) {
		const char *eq = strchr(*kv, '=');
		char *k = xstrndup(*kv, (size_t)(eq - *kv));

		msg_set(m, k, eq + 1);
		free(k);
	}
}

/* frames - write one frame per record, and all of them as one stream */
static void
frames(const char *sub, const char *prefix, const char *const *const *recs, size_t n)
{
	struct buf all = { 0 };

	for (size_t i = 0; i < n; i++) {
		struct msg m = { 0 };
		struct buf b = { 0 };
		char *name = xasprintf("%s-%02zu", prefix, i);

		msg_of(&m, recs[i]);
		msg_frame(&m, &b);
		write_file(sub, name, b.data, b.len);
		buf_append(&all, b.data, b.len);
		buf_free(&b);
		msg_clear(&m);
		free(name);
	}
	{
		char *name = xasprintf("%s-stream", prefix);

		write_file(sub, name, all.data, all.len);
		free(name);
	}
	buf_free(&all);
}

/* What the milter sends (filter.c ask_peer) and milter-aliasctl sends. */
static const char *const r_new[] = { "op=request", "id=4XyZ1B2c3D", "deadline=123456789",
	"login=alice", "request_address=makealias@example.org", "verb=new",
	"name=shop-amazon", "domain=example.org", "note=orders and returns", NULL };
static const char *const r_new_net[] = { "op=request", "id=NOQUEUE",
	"deadline=99999999999", "login=bob@example.net",
	"request_address=alias@example.net", "verb=new", "name=news.letter_2024",
	"domain=example.net", "note=", NULL };
static const char *const r_disable[] = { "op=request", "id=9F8E7D", "deadline=5000",
	"login=alice", "request_address=makealias@example.org", "verb=disable",
	"name=shop-amazon", "domain=example.org", NULL };
static const char *const r_enable[] = { "op=request", "id=9F8E7E", "login=alice",
	"request_address=makealias@example.org", "verb=enable", "name=shop-amazon",
	"domain=example.org", NULL };
static const char *const r_delete[] = { "op=request", "id=9F8E7F", "login=alice",
	"request_address=makealias@example.org", "verb=delete", "name=old",
	"domain=example.org", NULL };
static const char *const r_list[] = { "op=request", "id=1A2B3C", "login=alice",
	"request_address=makealias@example.org", "verb=list", NULL };
static const char *const r_reserved[] = { "op=request", "id=1A2B3D", "login=mallory",
	"request_address=makealias@example.org", "verb=new", "name=postmaster",
	"domain=example.org", "note=mine now", NULL };
static const char *const a_new[] = { "op=admin", "verb=new", "owner=carol",
	"name=carol.web", "domain=example.net", "note=added by the postmaster", NULL };
static const char *const a_delete[] = { "op=admin", "verb=delete", "name=spam",
	"domain=example.org", NULL };
static const char *const c_status[] = { "op=status", NULL };
static const char *const c_list[] = { "op=list", "owner=alice", NULL };
static const char *const c_list_addr[] = { "op=list", "address=shop-amazon@example.org", NULL };
static const char *const c_verify[] = { "op=verify", NULL };
static const char *const c_journal[] = { "op=journal", NULL };
static const char *const c_unknown[] = { "op=reload", "why=because 100% sure\r\n", NULL };
static const char *const *const ctl_recs[] = { r_new, r_new_net, r_disable, r_enable,
	r_delete, r_list, r_reserved, a_new, a_delete, c_status, c_list, c_list_addr,
	c_verify, c_journal, c_unknown };

/* The peer link (peer/commit.c, engine.c, tls.c) and replies. */
static const char *const p_ready[] = { "tls=ready", NULL };
static const char *const p_digest[] = { "op=digest", "sender=a.example.org", NULL };
static const char *const p_digest_r[] = { "live=0", "aliases=3", "status=ok",
	"digest=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", NULL };
static const char *const p_dump[] = { "op=dump", "sender=b.example.org", NULL };
static const char *const p_item[] = { "item=alias", "address=shop-amazon@example.org",
	"target=alice@example.org", "owner=alice", "state=active", "created=1700000000",
	"node=a.example.org", "updated=1700000000", "note=orders and returns", NULL };
static const char *const p_item_dis[] = { "item=alias", "address=old@example.net",
	"target=bob+tag@example.net", "owner=bob", "state=disabled", "created=1690000000",
	"node=b.example.org", "updated=1700000500", "note=", NULL };
static const char *const p_prepare[] = { "rec=prepare", "txn=0123456789abcdef",
	"coord=a.example.org", "id=4XyZ1B2c3D", "verb=new", "before_state=none",
	"address=shop-amazon@example.org", "target=alice@example.org", "owner=alice",
	"state=active", "created=1700000000", "node=a.example.org", "updated=1700000000",
	"note=orders", "op=prepare", "sender=a.example.org", NULL };
static const char *const p_vote[] = { "status=ok", "text=prepared", NULL };
static const char *const p_no[] = { "status=perm", "text=Alias shop@example.org already exists", NULL };
static const char *const p_decide[] = { "op=decide", "sender=a.example.org",
	"txn=0123456789abcdef", "decision=commit", NULL };
static const char *const p_outcome[] = { "op=outcome", "sender=b.example.org",
	"txn=fedcba9876543210", NULL };
static const char *const p_outcome_r[] = { "status=ok", "decision=abort", NULL };
static const char *const *const wire_recs[] = { p_ready, p_digest, p_digest_r, p_dump,
	p_item, p_item_dis, p_prepare, p_vote, p_no, p_decide, p_outcome, p_outcome_r,
	r_new, c_list };

/* journal_lines - what peer/journal.c appends: "v=1 ..." lines */
static void
journal(void)
{
	static const char *const j_commit[] = { "rec=commit", "txn=0123456789abcdef", NULL };
	static const char *const j_done[] = { "rec=done", "txn=0123456789abcdef", NULL };
	const char *const *recs[] = { p_prepare, j_commit, j_done };
	struct buf b = { 0 };

	for (size_t i = 0; i < N_ELEMENTS(recs); i++) {
		struct msg m = { 0 };

		msg_set(&m, "v", "1");
		msg_of(&m, recs[i]);
		msg_encode_line(&m, &b);
		buf_append(&b, "\n", 1);
		msg_clear(&m);
	}
	write_file("wire", "journal", b.data, b.len);
	buf_free(&b);
}

static void
put(struct aliasmap *m, const char *address, const char *target, const char *owner,
    enum alias_state state, long long created, const char *node, const char *note)
{
	struct alias a = {
		.address = (char *)address, .target = (char *)target, .owner = (char *)owner,
		.state = state, .created = created, .node = (char *)node,
		.updated = created + 60, .note = (char *)note,
	};

	aliasmap_put(m, &a);
}

static void
maps(void)
{
	struct aliasmap m = { 0 };
	struct buf b = { 0 };

	put(&m, "shop-amazon@example.org", "alice@example.org", "alice", ALIAS_ACTIVE,
	    1700000000, "a.example.org", "orders and returns");
	put(&m, "old@example.org", "alice@example.org", "alice", ALIAS_DISABLED,
	    1690000000, "b.example.org", "");
	put(&m, "gone@example.net", "bob+tag@example.net", "bob", ALIAS_DELETED,
	    1680000000, "a.example.org", "leaked: 100% spam");
	put(&m, "news.letter_2024@example.net", "bob@example.net", "bob", ALIAS_ACTIVE,
	    1710000000, "b.example.org", "");
	put(&m, "postmaster@example.org", "root@example.org", "", ALIAS_ACTIVE, 0, "", "");
	aliasmap_render(&m, MAP_FORMAT_VIRTUAL, &b);
	write_file("map", "rendered-virtual", b.data, b.len);
	buf_reset(&b);
	aliasmap_render(&m, MAP_FORMAT_ALIASES, &b);
	write_file("map", "rendered-aliases", b.data, b.len);
	buf_free(&b);
	aliasmap_clear(&m);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus CORPUSDIR\n");
		return 2;
	}
	dir = argv[1];
	frames("ctl", "frame", ctl_recs, N_ELEMENTS(ctl_recs));
	frames("wire", "frame", wire_recs, N_ELEMENTS(wire_recs));
	journal();
	maps();
	return 0;
}
