/* test_commit.c - the commit protocol (peer/commit.c) in one process, no
 * root, no network: two or three engines, each with a state directory, a
 * map and a Postfix configuration of its own, talk through fake_peers.c,
 * which hands each request to the other engine's sync_peer_handler in the
 * calling thread.  No background thread runs: a test calls commit_tick
 * itself where the daemon's thread would, so every step is deterministic.
 * The real two-host tests (tests/twohost) stay.
 *
 * Each test asserts outcomes: the answer (ok/perm/temp), each engine's
 * aliases (the list operation), its access map, its journal on disk (read
 * back with journal_open) and what status reports.
 *
 * The transitions of the table at the top of commit.c and the tests that
 * take them (C coordinator, P participant):
 *
 *   C  -         -> VOTING     prepare   every test with a change
 *   C  VOTING    -> LOST                 conflict_concurrent,
 *                                        conflict_winner_already_committed
 *   C  VOTING    -> DECIDING             create_commits_on_both ...
 *   C  DECIDING  -> COMMITTED  commit    create_commits_on_both, standalone
 *   C  VOTING    -> ABORTED    abort     peer_refuses (a no),
 *                                        peer_unreachable (unreachable),
 *                                        deadline_passes_while_voting
 *                                        (the deadline), three_nodes_one_refuses
 *   C  LOST      -> ABORTED    abort     conflict_* (a lost race)
 *   C  DECIDING  -> ABORTED    abort     commit_record_fails
 *   C  recovery  -> ABORTED    abort     recover_coordinator_undecided,
 *                                        recover_coordinator_undecided_standalone
 *   C  COMMITTED -> GONE       done      create_commits_on_both (after the
 *                                        decision is delivered), standalone
 *                                        (at once), recover_coordinator_committed
 *   C  ABORTED   -> GONE       done      peer_unreachable, peer_refuses,
 *                                        three_nodes_one_refuses,
 *                                        recover_coordinator_undecided(_standalone)
 *   P  -         -> PREPARED   prepare   create_commits_on_both, ...
 *   P  PREPARED  -> FINISHING            decide: create_commits_on_both;
 *                                        outcome: recover_in_doubt_*
 *   P  FINISHING -> PREPARED             participant_decision_record_fails,
 *                                        decide_acknowledged_only_when_durable
 *   P  FINISHING -> COMMITTED  commit    create_commits_on_both,
 *                                        recover_in_doubt_commits
 *   P  FINISHING -> ABORTED    abort     three_nodes_one_refuses,
 *                                        commit_record_fails,
 *                                        recover_in_doubt_aborts
 *   P  COMMITTED -> GONE                 create_commits_on_both
 *   P  ABORTED   -> GONE                 three_nodes_one_refuses
 *
 * Also: journal replay (replay_restores_map), decide twice and outcome
 * for an unknown transaction (decide_twice_outcome_unknown), the same
 * prepare twice and "pending" while voting (prepare_twice_outcome_pending).
 *
 * Node names: "a.test" < "b.test" < "c.test" (the lower name wins a
 * conflict).  TEST_COMMIT_LOG=1 mirrors the daemon's log to stderr.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>

#include "unit.h"
#include "aliasmap.h"
#include "commit.h"
#include "conf.h"
#include "ctlproto.h"
#include "engine.h"
#include "fake_peers.h"
#include "journal.h"
#include "mapstate.h"
#include "log.h"
#include "msg.h"
#include "replies.h"
#include "request.h"
#include "sync.h"
/* Only to hand an engine the fake peers without sync_start's background
 * thread (e->peers and the per-peer arrays that sync_start allocates and
 * sync_free frees): the tests tick by hand. */
#include "engine-private.h"

#define DOMAIN "example.org"
#define PIN "sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs="
#define TXN1 "0123456789abcdef"
#define TXN2 "fedcba9876543210"
/* commit.c's IN_DOUBT_GRACE_MS is 2 s: a participant asks after that. */
#define TICK_BOUND_MS 6000

struct node {
	char name[32];
	char *dir;
	char *conf_path;
	struct conf *conf;
	struct engine *e;
	struct peers *peers;
};

static struct node nodes[3];
static size_t nnodes;
/* Set before add_node: map_format aliases, domains DOMAIN and DOMAIN2. */
static int aliases_format;
/* Set before add_node: Postfix's recipient_delimiter (NULL: unset). */
static const char *delimiter;
#define DOMAIN2 "example.net"
/* More configuration for the nodes add_node makes (NULL: none). */
static const char *extra_conf;

static void
setup(void)
{
	log_init("test_commit", getenv("TEST_COMMIT_LOG") != NULL);
	memset(nodes, 0, sizeof(nodes));
	nnodes = 0;
	aliases_format = 0;
	delimiter = NULL;
	extra_conf = NULL;
}

static void
teardown(void)
{
	for (size_t i = 0; i < nnodes; i++)
		engine_close(&nodes[i].e);
	for (size_t i = 0; i < nnodes; i++) {
		fake_peers_free(&nodes[i].peers);
		conf_free(&nodes[i].conf);
		free(nodes[i].conf_path);
		ut_rmtree(&nodes[i].dir);
	}
	nnodes = 0;
}

TestSuite(commit, .init = setup, .fini = teardown, .timeout = 60);

/* ---- set-up ---- */

static int
have_postfix_lmdb(void)
{
	return access("/usr/sbin/postmap", X_OK) == 0 &&
		ut_run(NULL, 0, "postconf -m 2>/dev/null | grep -qx lmdb") == 0;
}

/*
 * add_node - a node named name.test in a directory of its own: a Postfix
 * configuration whose only map is a texthash of the addresses in taken
 * (one per line, or NULL), a sendmail that appends to DIR/mail.out, and a
 * configuration listing every other node of the test as a peer (npeers of
 * them; 0: standalone).  Not opened yet.
 */
static struct node *
add_node(const char *name, size_t npeers, const char *taken)
{
	static const char *const names[] = { "a.test", "b.test", "c.test" };
	struct node *n = &nodes[nnodes++];
	struct buf conf = { 0 }, tk = { 0 };
	char *p, *err = NULL;

	if (!have_postfix_lmdb())
		cr_skip_test("postmap or the lmdb map type (postfix-lmdb) is missing");
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->dir = ut_mkdtemp();
	p = ut_path(n->dir, "postfix");
	cr_assert_eq(mkdir(p, 0700), 0);
	free(p);
	p = ut_path(n->dir, "state");
	cr_assert_eq(mkdir(p, 0700), 0);
	free(p);
	for (const char *s = taken; s != NULL && *s; ) {
		size_t len = strcspn(s, "\n");

		buf_appendf(&tk, "%.*s elsewhere@other.test\n", (int)len, s);
		s += len + (s[len] == '\n');
	}
	free(ut_write(n->dir, "postfix/taken", tk.data ? tk.data : ""));
	buf_free(&tk);
	buf_appendf(&conf, "virtual_alias_maps = texthash:%s/postfix/taken\n"
		    "virtual_mailbox_maps =\nalias_maps =\nalias_database =\n", n->dir);
	if (delimiter != NULL)
		buf_appendf(&conf, "recipient_delimiter = %s\n", delimiter);
	p = ut_path(n->dir, "postfix");
	ut_postfix_conf(p, conf.data);
	free(p);
	free(ut_write(n->dir, "postfix/master.cf", ""));
	buf_reset(&conf);
	buf_appendf(&conf, "#!/bin/sh\ncat >> %s/mail.out\n", n->dir);
	p = ut_write(n->dir, "sendmail", conf.data);
	cr_assert_eq(chmod(p, 0755), 0);
	free(p);
	buf_reset(&conf);
	buf_appendf(&conf,
		    "node_name = \"%s\"\n"
		    "domains = {\"" DOMAIN "\"%s}\n"
		    "request_address = {\"makealias@" DOMAIN "\"}\n"
		    "map_file = \"%s/aliases\"\n"
		    "map_type = \"lmdb\"\n"
		    "postfix_config_dir = \"%s/postfix\"\n"
		    "state_dir = \"%s/state\"\n"
		    "sendmail_path = \"%s/sendmail\"\n"
		    "control_socket = \"%s/control.sock\"\n"
		    "expiry_test_seconds = true\n",
		    name, aliases_format ? ", \"" DOMAIN2 "\"" : "", n->dir, n->dir, n->dir, n->dir, n->dir);
	if (aliases_format)
		buf_appendf(&conf, "map_format = \"aliases\"\n");
	if (extra_conf != NULL)
		buf_appendf(&conf, "%s", extra_conf);
	if (npeers > 0)
		buf_appendf(&conf, "listen = \"127.0.0.1:1\"\n");
	for (size_t i = 0, added = 0; i < 3 && added < npeers; i++) {
		if (strcmp(names[i], name) == 0)
			continue;
		buf_appendf(&conf, "peer \"%s\" {\n  address = \"127.0.0.1:%zu\"\n"
			    "  pin = {\"" PIN "\"}\n}\n", names[i], i + 2);
		added++;
	}
	n->conf_path = ut_write(n->dir, "milter-alias.conf", conf.data);
	buf_free(&conf);
	cr_assert_eq(conf_load(n->conf_path, &n->conf, &err), 0, "conf: %s", err);
	return n;
}

/* attach - what sync_start does, minus the background thread */
static void
attach(struct node *n)
{
	size_t np = peers_count(n->peers);

	n->e->peers = n->peers;
	n->e->digest_equal = calloc(np + 1, sizeof(int));
	n->e->mismatches = calloc(np + 1, sizeof(int));
	n->e->peer_resolve = calloc(np + 1, sizeof(int));
	cr_assert(n->e->digest_equal && n->e->mismatches && n->e->peer_resolve);
	for (size_t i = 0; i < np; i++)
		n->e->digest_equal[i] = -1;
}

static void
open_node(struct node *n)
{
	char *err = NULL;

	cr_assert_eq(engine_open(n->conf, &n->e, &err), 0, "engine_open %s: %s", n->name, err);
	if (n->peers != NULL) {
		attach(n);
		/* the others reach the new engine */
		for (size_t i = 0; i < nnodes; i++)
			if (nodes[i].peers != NULL && &nodes[i] != n)
				fake_peers_set_remote(nodes[i].peers, n->name, n->e);
	}
}

/* link_all - every node reaches every other through the fake peers */
static void
link_all(void)
{
	for (size_t i = 0; i < nnodes; i++) {
		nodes[i].peers = fake_peers_new(nodes[i].name);
		for (size_t k = 0; k < nnodes; k++)
			if (k != i)
				fake_peers_add(nodes[i].peers, nodes[k].name, nodes[k].e);
	}
	for (size_t i = 0; i < nnodes; i++)
		if (nodes[i].e != NULL)
			attach(&nodes[i]);
}

/* pair - a and b, opened and linked (b's Postfix delivers taken_on_b) */
static void
pair(const char *taken_on_b)
{
	add_node("a.test", 1, NULL);
	add_node("b.test", 1, taken_on_b);
	open_node(&nodes[0]);
	open_node(&nodes[1]);
	link_all();
}

static void
reopen(struct node *n)
{
	engine_close(&n->e);
	open_node(n);
}

/* ---- requests ---- */

static void
drop_item(void *arg, const struct msg *item)
{
	(void)arg;
	(void)item;
}

/* handle - a control request as the control server takes it: decoded
 * at the boundary (ctlproto), then to the engine */
static void
handle(struct node *n, const struct msg *req, struct msg *resp,
       engine_emit_fn emit, void *arg, struct engine_followup *f)
{
	struct ctl_request r = { 0 };
	char *err = NULL;

	cr_assert_eq(ctlproto_request_decode(req, &r, &err), 0, "bad request: %s", err);
	engine_handle(n->e, &r, resp, emit, arg, f);
}

static void
run(struct node *n, struct msg *req, struct msg *resp)
{
	struct engine_followup f;

	handle(n, req, resp, drop_item, NULL, &f);
	/* as the control server does after the reply */
	engine_followup_run(n->e, &f);
}

/* admin - milter-aliasctl's request: verb name@DOMAIN for owner */
static void
admin(struct node *n, const char *verb, const char *name, const char *owner,
      struct msg *resp)
{
	struct msg req = { 0 };

	msg_set(&req, "op", "admin");
	msg_set(&req, "verb", verb);
	msg_set(&req, "name", name);
	msg_set(&req, "domain", DOMAIN);
	msg_set(&req, "owner", owner);
	run(n, &req, resp);
	msg_clear(&req);
}

/* mail - the milter's request (ask_peer in milter/filter.c), deadline_ms
 * from now */
static void
mail(struct node *n, const char *verb, const char *name, const char *login,
     long long deadline_ms, struct msg *resp)
{
	struct msg req = { 0 };

	msg_set(&req, "op", "request");
	msg_set(&req, "id", "QUEUEID1");
	msg_setf(&req, "deadline", "%lld", now_mono_ms() + deadline_ms);
	msg_set(&req, "request_address", "makealias@" DOMAIN);
	msg_set(&req, "login", login);
	msg_set(&req, "verb", verb);
	msg_set(&req, "name", name);
	msg_set(&req, "domain", DOMAIN);
	run(n, &req, resp);
	msg_clear(&req);
}

static void
collect(void *arg, const struct msg *item)
{
	struct alias a;

	if (strcmp(msg_gets(item, "item"), "alias") == 0 && alias_from_msg(item, &a, NULL) == 0) {
		aliasmap_put(arg, &a);
		alias_clear(&a);
	}
}

/* list - n's aliases as the list operation shows them */
static void
list(struct node *n, struct aliasmap *m)
{
	struct msg req = { 0 }, resp = { 0 };
	struct engine_followup f;

	memset(m, 0, sizeof(*m));
	msg_set(&req, "op", "list");
	handle(n, &req, &resp, collect, m, &f);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok");
	msg_clear(&req);
	msg_clear(&resp);
}

/* state_of - "active", ... for name@DOMAIN on n, or "absent"; its target
 * in target (may be NULL) */
static const char *
state_of(struct node *n, const char *name, char *target, size_t tlen)
{
	static char state[32];
	struct aliasmap m;
	const struct alias *a;
	char *address = xasprintf("%s@" DOMAIN, name);

	list(n, &m);
	a = aliasmap_find(&m, address);
	snprintf(state, sizeof(state), "%s", a ? alias_state_name(a->state) : "absent");
	if (target != NULL)
		snprintf(target, tlen, "%s", a ? a->target : "");
	aliasmap_clear(&m);
	free(address);
	return state;
}

/* assert_same_maps - every alias, every field, equal on a and b */
static void
assert_same_maps(struct node *a, struct node *b)
{
	struct aliasmap ma, mb;
	char da[65], db[65];

	list(a, &ma);
	list(b, &mb);
	aliasmap_digest(&ma, MAP_FORMAT_VIRTUAL, da);
	aliasmap_digest(&mb, MAP_FORMAT_VIRTUAL, db);
	cr_assert_eq(ma.n, mb.n, "%s has %zu aliases, %s %zu", a->name, ma.n, b->name, mb.n);
	cr_assert_str_eq(da, db, "the maps of %s and %s differ", a->name, b->name);
	aliasmap_clear(&ma);
	aliasmap_clear(&mb);
}

/* status - one key of n's status answer, as a number */
static long long
status(struct node *n, const char *key)
{
	struct msg req = { 0 }, resp = { 0 };
	struct engine_followup f;
	long long v = -1;

	msg_set(&req, "op", "status");
	handle(n, &req, &resp, drop_item, NULL, &f);
	cr_assert_eq(msg_get_ll(&resp, key, &v), 0, "status has no %s", key);
	msg_clear(&req);
	msg_clear(&resp);
	return v;
}

/* pending_here - does n's access map defer mail to name@DOMAIN (450)? */
static int
pending_here(struct node *n, const char *name)
{
	char *path = conf_access_file(n->conf), *text = ut_slurp(path), *line;
	int found;

	cr_assert_not_null(text, "no access map %s", path);
	line = xasprintf("%s@" DOMAIN " 450 4.2.1 ", name);
	found = strstr(text, line) != NULL;
	free(line);
	free(text);
	free(path);
	return found;
}

/* mails - confirmations n's sendmail was given */
static int
mails(struct node *n)
{
	char *path = ut_path(n->dir, "mail.out"), *text = ut_slurp(path);
	int count = 0;

	for (const char *p = text; p && (p = strstr(p, "\nSubject: Alias ")) != NULL; p++)
		count++;
	free(text);
	free(path);
	return count;
}

/* ---- the journal on disk ---- */

static char *
journal_path(struct node *n)
{
	return xasprintf("%s/state/journal", n->dir);
}

/* kinds - the kinds of n's journal records, in order, space separated,
 * for the transactions coordinated by coord (NULL: every record) */
static char *
kinds(struct node *n, const char *coord)
{
	static char out[512];
	struct journal *j = NULL;
	struct msg *recs = NULL;
	struct strlist ids = { 0 };
	char *path = journal_path(n), *err = NULL;
	size_t nrec = 0;

	cr_assert_eq(journal_open(path, &j, &recs, &nrec, &err), 0, "journal: %s", err);
	for (size_t i = 0; i < nrec; i++)
		if (journal_kind_of(&recs[i]) == JOURNAL_PREPARE &&
		    (coord == NULL || strcmp(msg_gets(&recs[i], "coord"), coord) == 0))
			strlist_add(&ids, msg_gets(&recs[i], "txn"));
	out[0] = '\0';
	for (size_t i = 0; i < nrec; i++) {
		cr_assert_geq(journal_kind_of(&recs[i]), 0, "a record of no known kind");
		if (coord != NULL && !strlist_contains(&ids, msg_gets(&recs[i], "txn"), false))
			continue;
		if (out[0] != '\0')
			strncat(out, " ", sizeof(out) - strlen(out) - 1);
		strncat(out, msg_gets(&recs[i], "rec"), sizeof(out) - strlen(out) - 1);
	}
	strlist_clear(&ids);
	journal_free_records(recs, nrec);
	journal_close(&j);
	free(path);
	return out;
}

/* write_journal - n's journal file holds exactly text (before engine_open) */
static void
write_journal(struct node *n, const char *text)
{
	free(ut_write(n->dir, "state/journal", text));
}

/* prepare_line - a prepare record as commit.c journals it (coordinator
 * and participant alike: the participant keeps the coordinator's keys) */
static char *
prepare_line(const char *txn, const char *coord, const char *name)
{
	return xasprintf("v=1 rec=prepare txn=%s coord=%s id=admin verb=new "
			 "before_state=none address=%s@" DOMAIN " target=alice@" DOMAIN
			 " owner=alice state=active created=1700000000 node=%s "
			 "updated=1700000000 note=\n", txn, coord, name, coord);
}

/* The journal's descriptor in this process, to make its writes fail. */
static int
journal_fd(struct node *n)
{
	char *path = journal_path(n), real[PATH_MAX], link[PATH_MAX], proc[64];
	int found = -1;

	cr_assert_not_null(realpath(path, real));
	for (int fd = 0; fd < 1024 && found < 0; fd++) {
		ssize_t len;

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if ((len = readlink(proc, link, sizeof(link) - 1)) < 0)
			continue;
		link[len] = '\0';
		if (strcmp(link, real) == 0)
			found = fd;
	}
	cr_assert_geq(found, 0, "no descriptor open on %s", real);
	free(path);
	return found;
}

/* break_journal - n's journal appends fail (ENOSPC) until heal_journal */
static int
break_journal(struct node *n, int *fd_r)
{
	int fd = journal_fd(n), saved = dup(fd), full = open("/dev/full", O_WRONLY);

	cr_assert_geq(saved, 0);
	cr_assert_geq(full, 0, "no /dev/full");
	cr_assert_geq(dup2(full, fd), 0);
	close(full);
	*fd_r = fd;
	return saved;
}

static void
heal_journal(int fd, int saved)
{
	cr_assert_geq(dup2(saved, fd), 0);
	close(saved);
}

/* ---- background work, by hand ---- */

/* tick_until - commit_tick(n) until status key of n equals want, within
 * TICK_BOUND_MS (a participant waits IN_DOUBT_GRACE_MS before asking) */
static void
tick_until(struct node *n, const char *key, long long want)
{
	long long end = now_mono_ms() + TICK_BOUND_MS;

	for (;;) {
		commit_tick(n->e);
		if (status(n, key) == want)
			return;
		cr_assert_lt(now_mono_ms(), end, "%s: %s is %lld, not %lld after %d ms",
			     n->name, key, status(n, key), want, TICK_BOUND_MS);
		usleep(100 * 1000);
	}
}

/* ask - one peer-link request to n as if from peer; the answer in resp */
static void
ask(struct node *n, const char *peer, const char *op, const char *txn,
    const char *decision, struct msg *resp)
{
	struct msg req = { 0 };

	msg_set(&req, "op", op);
	msg_set(&req, "sender", peer);
	msg_set(&req, "txn", txn);
	if (decision != NULL)
		msg_set(&req, "decision", decision);
	sync_peer_handler(n->e, peer, &req, resp, drop_item, NULL);
	msg_clear(&req);
}

/* ==== 1. the path every change takes ==== */

Test(commit, create_commits_on_both)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char target[256];

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert_eq(strlen(msg_gets(&resp, "txn")), TXN_ID_LEN);
	cr_assert_eq(fake_peers_delivered(a->peers, "prepare"), 1);

	/* a: committed and applied; the decision not yet delivered */
	cr_assert_str_eq(state_of(a, "shop", target, sizeof(target)), "active");
	cr_assert_str_eq(target, "alice@" DOMAIN);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit confirmed");
	cr_assert_eq(status(a, "undelivered"), 1);
	cr_assert_eq(status(a, "in_flight"), 0);
	cr_assert_eq(mails(a), 1);
	/* b: prepared, in doubt, mail to the address deferred */
	cr_assert_str_eq(kinds(b, NULL), "prepare");
	cr_assert_eq(status(b, "in_doubt"), 1);
	cr_assert(pending_here(b, "shop"));
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");

	/* the background work delivers the decision */
	commit_tick(a->e);
	cr_assert_eq(fake_peers_delivered(a->peers, "decide"), 1);
	cr_assert_str_eq(state_of(b, "shop", target, sizeof(target)), "active");
	cr_assert_str_eq(target, "alice@" DOMAIN);
	cr_assert_not(pending_here(b, "shop"));
	cr_assert_eq(status(b, "in_doubt"), 0);
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit confirmed done");
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	cr_assert_eq(mails(b), 1, "b confirms the new alias through itself once");
	assert_same_maps(a, b);

	/* nothing left to do: another tick sends nothing */
	commit_tick(a->e);
	commit_tick(b->e);
	cr_assert_eq(fake_peers_delivered(a->peers, NULL), 2);
	cr_assert_eq(fake_peers_delivered(b->peers, NULL), 0);
	msg_clear(&resp);
}

Test(commit, standalone)
{
	struct node *a = add_node("a.test", 0, NULL);
	struct msg resp = { 0 };

	open_node(a);
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	/* COMMITTED -> GONE at once: no peer to tell */
	cr_assert_str_eq(kinds(a, NULL), "prepare commit done confirmed");
	cr_assert_eq(status(a, "undelivered"), 0);
	msg_clear(&resp);
}

/* ==== 1b. a confirmation sendmail did not take ==== */

/* sendmail_fails - n's sendmail fails the next times runs (exit 75, as
 * when postdrop cannot write the queue), then takes mail again */
static void
sendmail_fails(struct node *n, int times)
{
	struct buf sh = { 0 };
	char cnt[16], *p;

	snprintf(cnt, sizeof(cnt), "%d\n", times);
	free(ut_write(n->dir, "fails", cnt));
	buf_appendf(&sh, "#!/bin/sh\nf=%s/fails\nn=$(cat \"$f\")\n"
		    "if [ \"$n\" -gt 0 ]; then\n  echo $((n - 1)) > \"$f\"\n  cat >/dev/null\n"
		    "  echo 'sendmail: fatal: queue file write error' >&2\n  exit 75\nfi\n"
		    "cat >> %s/mail.out\n", n->dir, n->dir);
	p = ut_write(n->dir, "sendmail", sh.data);
	cr_assert_eq(chmod(p, 0755), 0);
	free(p);
	buf_free(&sh);
}

/* fails_left - how many more runs n's sendmail fails */
static int
fails_left(struct node *n)
{
	char *p = ut_path(n->dir, "fails"), *t = ut_slurp(p);
	int v = t ? atoi(t) : -1;

	free(t);
	free(p);
	return v;
}

Test(commit, confirmation_kept_and_retried_until_sendmail_takes_it)
{
	struct node *a = add_node("a.test", 0, NULL);
	struct msg resp = { 0 };

	sendmail_fails(a, 3);
	open_node(a);
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	/* the first attempt failed: nothing queued, nothing journaled as sent */
	cr_assert_eq(fails_left(a), 2);
	cr_assert_eq(mails(a), 0);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit done");
	/* not tried again before its delay */
	commit_tick(a->e);
	cr_assert_eq(fails_left(a), 2);
	/* a restart (whose compaction drops the finished transaction from
	 * the journal) loses nothing; from here on no delay */
	reopen(a);
	a->e->confirm_retry_ms = 0;
	cr_assert_str_eq(kinds(a, NULL), "");
	commit_tick(a->e);
	cr_assert_eq(fails_left(a), 1, "the kept confirmation was not retried after a restart");
	cr_assert_eq(mails(a), 0);
	commit_tick(a->e);
	cr_assert_eq(fails_left(a), 0);
	cr_assert_eq(mails(a), 0);
	/* sendmail takes it: delivered once, and then never again */
	commit_tick(a->e);
	cr_assert_eq(mails(a), 1, "the confirmation was lost");
	commit_tick(a->e);
	reopen(a);
	commit_tick(a->e);
	cr_assert_eq(mails(a), 1, "the confirmation was sent twice");
	msg_clear(&resp);
}

Test(commit, kept_confirmation_dropped_when_the_alias_is_gone)
{
	struct node *a = add_node("a.test", 0, NULL);
	struct msg resp = { 0 };

	sendmail_fails(a, 1);
	open_node(a);
	a->e->confirm_retry_ms = 0;
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	cr_assert_eq(fails_left(a), 0);
	admin(a, "disable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	cr_assert_eq(mails(a), 0, "a confirmation for a disabled alias");
	reopen(a);
	commit_tick(a->e);
	cr_assert_eq(mails(a), 0, "the dropped confirmation came back after a restart");
	msg_clear(&resp);
}

/* ==== 2. a peer votes no ==== */

Test(commit, peer_refuses)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	pair("shop@" DOMAIN);		/* b's Postfix delivers it already */
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "already in use on b.test") != NULL,
		  "%s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
	cr_assert_str_eq(kinds(a, NULL), "prepare abort");
	/* b voted no: nothing journaled, nothing deferred, nothing locked */
	cr_assert_str_eq(kinds(b, NULL), "");
	cr_assert_not(pending_here(b, "shop"));
	cr_assert_eq(status(b, "in_flight"), 0);
	cr_assert_eq(status(a, "in_flight"), 0);
	cr_assert_eq(mails(a) + mails(b), 0);

	/* the abort is still delivered (b may have voted yes), then done */
	cr_assert_eq(status(a, "undelivered"), 1);
	commit_tick(a->e);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort done");
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_str_eq(kinds(b, NULL), "");
	msg_clear(&resp);
}

/* a votes yes (b), c votes no: the participant that voted yes aborts */
Test(commit, three_nodes_one_refuses)
{
	struct node *a, *b, *c;
	struct msg resp = { 0 };

	add_node("a.test", 2, NULL);
	add_node("b.test", 2, NULL);
	add_node("c.test", 2, "shop@" DOMAIN);
	for (size_t i = 0; i < 3; i++)
		open_node(&nodes[i]);
	link_all();
	a = &nodes[0];
	b = &nodes[1];
	c = &nodes[2];

	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "c.test") != NULL);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort");
	cr_assert_str_eq(kinds(b, NULL), "prepare");
	cr_assert(pending_here(b, "shop"));
	cr_assert_str_eq(kinds(c, NULL), "");

	commit_tick(a->e);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort done");
	cr_assert_str_eq(kinds(b, NULL), "prepare abort");
	cr_assert_not(pending_here(b, "shop"));
	cr_assert_eq(status(b, "in_doubt"), 0);
	cr_assert_eq(status(b, "in_flight"), 0);
	for (size_t i = 0; i < 3; i++)
		cr_assert_str_eq(state_of(&nodes[i], "shop", NULL, 0), "absent");
	cr_assert_eq(mails(a) + mails(b) + mails(c), 0);

	/* and the address is free again everywhere */
	msg_clear(&resp);
	admin(b, "new", "shop2", "bob", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(b->e);
	assert_same_maps(a, b);
	assert_same_maps(b, c);
	msg_clear(&resp);
}

/* ==== 3. a peer cannot be reached ==== */

Test(commit, peer_unreachable)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	fake_peers_cut(a->peers, "b.test", 1);
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(a, NULL), "prepare abort");
	cr_assert_str_eq(kinds(b, NULL), "");
	cr_assert_eq(fake_peers_delivered(a->peers, NULL), 0);
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");

	/* while the link is down the abort waits; then it is delivered */
	commit_tick(a->e);
	cr_assert_eq(status(a, "undelivered"), 1);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort");
	fake_peers_cut(a->peers, "b.test", 0);
	commit_tick(a->e);
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort done");

	/* a retry succeeds */
	msg_clear(&resp);
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* the requester's deadline passes while the votes are collected */
static int
slow_vote(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	(void)arg, (void)to, (void)req, (void)resp;
	usleep(600 * 1000);
	return 0;		/* then deliver: b votes yes */
}

Test(commit, deadline_passes_while_voting)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	fake_peers_hook(a->peers, "prepare", slow_vote, NULL);
	mail(a, "new", "shop", "alice", 300, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(a, NULL), "prepare abort");
	cr_assert_str_eq(kinds(b, NULL), "prepare");
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	commit_tick(a->e);
	cr_assert_str_eq(kinds(b, NULL), "prepare abort");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
	cr_assert_not(pending_here(b, "shop"));
	msg_clear(&resp);
}

/* ==== 4. two coordinators, one address ==== */

struct race {
	struct node *a, *b;
	struct msg b_prepare;	/* b's prepare, held back on its way to a */
	struct msg b_vote;	/* a's answer to it, given while a votes */
	struct msg a_resp;	/* a's answer to its own client */
};

/* a_sends_prepare - a's prepare is on its way to b: b's prepare, sent
 * first, reaches a now, while a's transaction is VOTING */
static int
a_sends_prepare(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct race *r = arg;

	(void)to, (void)req, (void)resp;
	sync_peer_handler(r->a->e, "b.test", &r->b_prepare, &r->b_vote, drop_item, NULL);
	return 0;		/* and a's prepare goes on to b */
}

/* b_sends_prepare - as b's prepare leaves, a's client asks a for the
 * same address; b gets the answer a gave while voting */
static int
b_sends_prepare(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct race *r = arg;

	(void)to;
	for (size_t i = 0; i < req->n; i++)
		msg_set(&r->b_prepare, req->v[i].key, req->v[i].value);
	fake_peers_hook(r->a->peers, "prepare", a_sends_prepare, r);
	admin(r->a, "new", "shop", "alice", &r->a_resp);
	for (size_t i = 0; i < r->b_vote.n; i++)
		msg_set(resp, r->b_vote.v[i].key, r->b_vote.v[i].value);
	return 1;
}

Test(commit, conflict_concurrent)
{
	struct race r = { 0 };
	struct msg resp = { 0 };
	char target[256];

	pair(NULL);
	r.a = &nodes[0];
	r.b = &nodes[1];
	fake_peers_hook(r.b->peers, "prepare", b_sends_prepare, &r);
	admin(r.b, "new", "shop", "bob", &resp);

	/* a (lower) wins: on b's prepare it said "in progress" (b's vote
	 * fails), on a's prepare b gave way (its own change LOST) */
	cr_assert_str_eq(msg_gets(&r.b_vote, "status"), "temp", "%s", msg_gets(&r.b_vote, "text"));
	cr_assert_str_eq(msg_gets(&r.a_resp, "status"), "ok", "%s", msg_gets(&r.a_resp, "text"));
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(r.a, "a.test"), "prepare commit confirmed");
	cr_assert_str_eq(kinds(r.a, "b.test"), "");
	cr_assert_str_eq(kinds(r.b, "b.test"), "prepare abort");
	cr_assert_str_eq(kinds(r.b, "a.test"), "prepare");
	cr_assert_str_eq(state_of(r.b, "shop", NULL, 0), "absent");

	commit_tick(r.a->e);
	commit_tick(r.b->e);
	cr_assert_str_eq(kinds(r.a, "a.test"), "prepare commit confirmed done");
	cr_assert_str_eq(kinds(r.b, "b.test"), "prepare abort done");
	cr_assert_str_eq(kinds(r.b, "a.test"), "prepare commit confirmed");
	cr_assert_str_eq(state_of(r.b, "shop", target, sizeof(target)), "active");
	cr_assert_str_eq(target, "alice@" DOMAIN, "a's version everywhere");
	assert_same_maps(r.a, r.b);
	cr_assert_eq(status(r.a, "in_flight") + status(r.b, "in_flight"), 0);
	cr_assert_eq(status(r.a, "undelivered") + status(r.b, "undelivered"), 0);
	cr_assert_eq(status(r.b, "in_doubt"), 0);
	msg_clear(&r.b_prepare);
	msg_clear(&r.b_vote);
	msg_clear(&r.a_resp);
	msg_clear(&resp);
}

/* b_prepare_late - a's whole change runs before b's prepare reaches a */
static int
b_prepare_late(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct race *r = arg;

	(void)to, (void)req, (void)resp;
	admin(r->a, "new", "shop", "alice", &r->a_resp);
	return 0;
}

Test(commit, conflict_winner_already_committed)
{
	struct race r = { 0 };
	struct msg resp = { 0 };

	pair(NULL);
	r.a = &nodes[0];
	r.b = &nodes[1];
	fake_peers_hook(r.b->peers, "prepare", b_prepare_late, &r);
	admin(r.b, "new", "shop", "bob", &resp);
	cr_assert_str_eq(msg_gets(&r.a_resp, "status"), "ok", "%s", msg_gets(&r.a_resp, "text"));
	/* b's change was LOST to a's, and a now refuses it for good: the
	 * alias exists (a's) */
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "already exists") != NULL);
	cr_assert_str_eq(kinds(r.b, "b.test"), "prepare abort");
	commit_tick(r.a->e);
	commit_tick(r.b->e);
	assert_same_maps(r.a, r.b);
	cr_assert_str_eq(state_of(r.b, "shop", NULL, 0), "active");
	msg_clear(&r.a_resp);
	msg_clear(&resp);
}

/* ==== failed journal writes ==== */

struct breaker {
	struct node *a, *b;
	int fd, saved;
};

/* vote_then_break - b votes; then a's journal fails (the commit record) */
static int
vote_then_break(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct breaker *k = arg;

	(void)to;
	sync_peer_handler(k->b->e, "a.test", req, resp, drop_item, NULL);
	k->saved = break_journal(k->a, &k->fd);
	return 1;
}

Test(commit, commit_record_fails)
{
	struct breaker k = { 0 };
	struct msg resp = { 0 };

	pair(NULL);
	k.a = &nodes[0];
	k.b = &nodes[1];
	fake_peers_hook(k.a->peers, "prepare", vote_then_break, &k);
	admin(k.a, "new", "shop", "alice", &resp);
	heal_journal(k.fd, k.saved);
	/* DECIDING -> ABORTED: without its commit record nothing commits
	 * (the abort record was lost too: a prepare alone is an abort) */
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(k.a, NULL), "prepare");
	cr_assert_str_eq(state_of(k.a, "shop", NULL, 0), "absent");
	cr_assert_eq(status(k.a, "undelivered"), 1);
	cr_assert_str_eq(kinds(k.b, NULL), "prepare");

	commit_tick(k.a->e);
	cr_assert_str_eq(kinds(k.b, NULL), "prepare abort");
	cr_assert_str_eq(state_of(k.b, "shop", NULL, 0), "absent");
	cr_assert_not(pending_here(k.b, "shop"));
	cr_assert_eq(status(k.a, "undelivered"), 0);
	cr_assert_str_eq(kinds(k.a, NULL), "prepare done");

	/* a restart still finds nothing committed */
	reopen(k.a);
	cr_assert_str_eq(state_of(k.a, "shop", NULL, 0), "absent");
	msg_clear(&resp);
}

Test(commit, participant_decision_record_fails)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	int fd, saved;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));

	/* FINISHING -> PREPARED: b cannot record the decision, says not now */
	saved = break_journal(b, &fd);
	commit_tick(a->e);
	heal_journal(fd, saved);
	cr_assert_eq(fake_peers_delivered(a->peers, "decide"), 1);
	cr_assert_eq(status(a, "undelivered"), 1);
	cr_assert_eq(status(b, "in_doubt"), 1);
	cr_assert(pending_here(b, "shop"));
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
	cr_assert_str_eq(kinds(b, NULL), "prepare");

	/* the next delivery succeeds */
	commit_tick(a->e);
	cr_assert_eq(fake_peers_delivered(a->peers, "decide"), 2);
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_eq(status(b, "in_doubt"), 0);
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* ---- a slow fdatasync, by hand (linked with -Wl,--wrap=fdatasync) ---- */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

/* Armed, the next fdatasync (in whichever thread) says so and waits until
 * released, then fails with EIO if told to; every other one is real. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int armed, entered, released, fail;
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0 };

int
__wrap_fdatasync(int fd)
{
	int mine, fail;

	pthread_mutex_lock(&gate.lock);
	mine = gate.armed;
	gate.armed = 0;
	if (mine) {
		gate.entered = 1;
		pthread_cond_broadcast(&gate.cond);
		while (!gate.released)
			pthread_cond_wait(&gate.cond, &gate.lock);
	}
	fail = mine && gate.fail;
	pthread_mutex_unlock(&gate.lock);
	if (fail) {
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

static void
gate_arm(int fail)
{
	pthread_mutex_lock(&gate.lock);
	gate.armed = 1;
	gate.entered = gate.released = 0;
	gate.fail = fail;
	pthread_mutex_unlock(&gate.lock);
}

/* gate_wait_entered - within TICK_BOUND_MS */
static void
gate_wait_entered(void)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TICK_BOUND_MS / 1000;
	pthread_mutex_lock(&gate.lock);
	while (!gate.entered && rc == 0)
		rc = pthread_cond_timedwait(&gate.cond, &gate.lock, &until);
	pthread_mutex_unlock(&gate.lock);
	cr_assert_eq(rc, 0, "the armed fdatasync was never reached");
}

static void
gate_release(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.released = 1;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

struct decide_call {
	struct node *b;
	const char *txn;
	struct msg resp;
};

static void *
decide_thread(void *arg)
{
	struct decide_call *d = arg;

	ask(d->b, "a.test", "decide", d->txn, "commit", &d->resp);
	return NULL;
}

/*
 * A decision is acknowledged only once it is durable.  b is recording
 * the commit in one thread (a decide whose fsync is slow, as after the
 * coordinator timed out and delivered again); a's next delivery reaches
 * b meanwhile.  That one must not be acknowledged ("recorded"): a would
 * write "done" and forget, and when b's record then fails (or b
 * crashes), b is left in doubt with a coordinator that answers "abort"
 * (it forgot), and the servers diverge.
 */
Test(commit, decide_acknowledged_only_when_durable)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	struct decide_call d = { 0 };
	pthread_t th;
	char txn[TXN_ID_LEN + 1];

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	snprintf(txn, sizeof(txn), "%s", msg_gets(&resp, "txn"));
	cr_assert_eq(status(b, "in_doubt"), 1);

	/* b starts recording the commit; its fdatasync hangs */
	d.b = b;
	d.txn = txn;
	gate_arm(1);
	cr_assert_eq(pthread_create(&th, NULL, decide_thread, &d), 0);
	gate_wait_entered();

	/* a delivers meanwhile: not durable on b yet, so not acknowledged */
	commit_tick(a->e);
	cr_expect_eq(status(a, "undelivered"), 1, "b acknowledged a decision it had "
		     "not made durable; a forgot it");
	cr_expect_str_eq(kinds(a, NULL), "prepare commit confirmed");

	/* b's record fails after all: b is in doubt again */
	gate_release();
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_str_eq(msg_gets(&d.resp, "status"), "temp", "%s", msg_gets(&d.resp, "text"));
	cr_assert_str_eq(kinds(b, NULL), "prepare", "the failed record was cut off");
	cr_assert_eq(status(b, "in_doubt"), 1);

	/* a still has the decision and delivers it; b commits like a (with
	 * the bug, b asks a, which forgot, and aborts: the maps differ) */
	commit_tick(a->e);
	tick_until(b, "in_doubt", 0);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active",
			 "b aborted what a committed");
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	cr_assert_eq(status(a, "undelivered"), 0);
	assert_same_maps(a, b);
	msg_clear(&d.resp);
	msg_clear(&resp);
}

/* first_txn - the transaction of n's first journal record */
static void
first_txn(struct node *n, char txn[TXN_ID_LEN + 1])
{
	struct journal *j = NULL;
	struct msg *recs = NULL;
	char *path = journal_path(n), *err = NULL;
	size_t nrec = 0;

	cr_assert_eq(journal_open(path, &j, &recs, &nrec, &err), 0, "journal: %s", err);
	cr_assert_gt(nrec, 0);
	snprintf(txn, TXN_ID_LEN + 1, "%s", msg_gets(&recs[0], "txn"));
	journal_free_records(recs, nrec);
	journal_close(&j);
	free(path);
}

struct admin_call {
	struct node *a, *b;
	struct msg resp;
};

static void *
admin_thread(void *arg)
{
	struct admin_call *c = arg;

	admin(c->a, "new", "shop", "alice", &c->resp);
	return NULL;
}

/* vote_then_gate - b votes; a's next fdatasync (its commit record) hangs,
 * then fails */
static int
vote_then_gate(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct admin_call *c = arg;

	(void)to;
	sync_peer_handler(c->b->e, "a.test", req, resp, drop_item, NULL);
	gate_arm(1);
	return 1;
}

/*
 * The coordinator's side of the same rule: while its commit record is
 * not durable, nobody hears "commit": not the client, not a peer asking
 * (outcome says pending), not the background delivery.  The record then
 * fails: the client gets 4xx and b is told to abort.  (The code was
 * right already; this pins it.)
 */
Test(commit, coordinator_tells_nobody_before_its_commit_record)
{
	struct admin_call c = { 0 };
	struct msg r = { 0 };
	pthread_t th;
	char txn[TXN_ID_LEN + 1];

	pair(NULL);
	c.a = &nodes[0];
	c.b = &nodes[1];
	fake_peers_hook(c.a->peers, "prepare", vote_then_gate, &c);
	cr_assert_eq(pthread_create(&th, NULL, admin_thread, &c), 0);
	gate_wait_entered();

	cr_assert_str_eq(kinds(c.b, NULL), "prepare");
	first_txn(c.b, txn);
	ask(c.a, "b.test", "outcome", txn, NULL, &r);
	cr_assert_str_eq(msg_gets(&r, "decision"), "pending",
			 "a told b the outcome before its commit record was durable");
	msg_clear(&r);
	commit_tick(c.a->e);
	cr_assert_eq(fake_peers_delivered(c.a->peers, "decide"), 0,
		     "a delivered a decision before its commit record was durable");
	cr_assert_eq(status(c.b, "in_doubt"), 1);

	gate_release();
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_str_eq(msg_gets(&c.resp, "status"), "temp", "%s", msg_gets(&c.resp, "text"));
	cr_assert_str_eq(state_of(c.a, "shop", NULL, 0), "absent");
	commit_tick(c.a->e);
	cr_assert_str_eq(kinds(c.b, NULL), "prepare abort");
	cr_assert_str_eq(state_of(c.b, "shop", NULL, 0), "absent");
	assert_same_maps(c.a, c.b);
	msg_clear(&c.resp);
}

/* ==== 5. journal replay ==== */

Test(commit, replay_restores_map)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char out[256];

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit confirmed done");
	cr_assert_eq(mails(b), 1);

	/* the map files lose the alias behind the engines' backs (as a
	 * crash between the commit record and the map write would) */
	engine_close(&a->e);
	engine_close(&b->e);
	free(ut_write(a->dir, "aliases", ""));
	free(ut_write(b->dir, "aliases", ""));
	open_node(a);
	open_node(b);
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	assert_same_maps(a, b);
	/* ... and Postfix's compiled map has it again */
	cr_assert_eq(ut_run(out, sizeof(out), "postmap -c %s/postfix -q shop@" DOMAIN
			    " lmdb:%s/aliases", a->dir, a->dir), 0);
	cr_assert_str_eq(out, "alice@" DOMAIN);
	/* the confirmation was journaled: a restart sends no second one */
	cr_assert_eq(mails(a), 1);
	cr_assert_eq(mails(b), 1);
	/* start-up compaction keeps only live transactions: none */
	cr_assert_str_eq(kinds(a, NULL), "");
	cr_assert_str_eq(kinds(b, NULL), "");
	cr_assert_eq(status(a, "undelivered") + status(b, "in_doubt"), 0);
	msg_clear(&resp);
}

/* ==== 6. recovery decisions (journals written by hand) ==== */

/* (a) a prepare this node coordinated, never decided: nobody committed */
Test(commit, recover_coordinator_undecided)
{
	struct node *a, *b;
	char *line;

	add_node("a.test", 1, NULL);
	add_node("b.test", 1, NULL);
	a = &nodes[0];
	b = &nodes[1];
	line = prepare_line(TXN1, "a.test", "shop");
	write_journal(a, line);
	free(line);
	open_node(a);
	open_node(b);
	link_all();
	/* aborted at start-up; kept until the peer has the abort */
	cr_assert_str_eq(kinds(a, NULL), "prepare abort");
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	cr_assert_eq(status(a, "undelivered"), 1);
	commit_tick(a->e);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort done");
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
}

Test(commit, recover_coordinator_undecided_standalone)
{
	struct node *a = add_node("a.test", 0, NULL);
	char *line = prepare_line(TXN1, "a.test", "shop");

	write_journal(a, line);
	free(line);
	open_node(a);
	/* abort and done at once, then compacted away */
	cr_assert_str_eq(kinds(a, NULL), "");
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	cr_assert_eq(mails(a), 0);
}

/* (b) b prepared for a and never heard the outcome; a's journal says commit */
Test(commit, recover_in_doubt_commits)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char *line, *text;

	add_node("a.test", 1, NULL);
	add_node("b.test", 1, NULL);
	a = &nodes[0];
	b = &nodes[1];
	line = prepare_line(TXN1, "a.test", "shop");
	text = xasprintf("%sv=1 rec=commit txn=" TXN1 "\nv=1 rec=confirmed txn=" TXN1 "\n", line);
	write_journal(a, text);
	write_journal(b, line);
	free(text);
	free(line);
	open_node(a);
	open_node(b);
	link_all();

	/* b: in doubt, mail deferred, the address locked */
	cr_assert_eq(status(b, "in_doubt"), 1);
	cr_assert(pending_here(b, "shop"));
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
	admin(b, "new", "shop", "bob", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(b, NULL), "prepare");
	/* a: committed (replayed), the decision not yet delivered */
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	cr_assert_eq(status(a, "undelivered"), 1);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit");

	/* b asks a (after IN_DOUBT_GRACE_MS) */
	tick_until(b, "in_doubt", 0);
	cr_assert_geq(fake_peers_delivered(b->peers, "outcome"), 1);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	cr_assert_not(pending_here(b, "shop"));
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	cr_assert_eq(mails(b), 1);
	cr_assert_eq(mails(a), 0, "a's confirmation was journaled before the crash");

	/* (c) a committed without "done": redelivered, then done */
	commit_tick(a->e);
	cr_assert_eq(fake_peers_delivered(a->peers, "decide"), 1);
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit done");
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* (b) again, a's journal says abort */
/* Torn last records (a crash mid-append) on both sides: each is cut off
 * at start-up, what was acknowledged before it is all there: a still
 * delivers its decision, b is still in doubt and commits like a. */
Test(commit, recover_torn_tails)
{
	struct node *a, *b;
	char *line, *text;

	add_node("a.test", 1, NULL);
	add_node("b.test", 1, NULL);
	a = &nodes[0];
	b = &nodes[1];
	line = prepare_line(TXN1, "a.test", "shop");
	/* a: its "done" torn after the newline reached the disk */
	text = xasprintf("%sv=1 rec=commit txn=" TXN1 "\nv=1 rec=confirmed txn=" TXN1
			 "\nv=1 rec=done t\n", line);
	write_journal(a, text);
	free(text);
	/* b: its commit record torn before the newline */
	text = xasprintf("%sv=1 rec=comm", line);
	write_journal(b, text);
	free(text);
	free(line);
	open_node(a);
	open_node(b);
	link_all();

	/* (start-up compaction keeps the live transaction's prepare and decision) */
	cr_assert_str_eq(kinds(a, NULL), "prepare commit");
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	cr_assert_eq(status(a, "undelivered"), 1);
	cr_assert_str_eq(kinds(b, NULL), "prepare");
	cr_assert_eq(status(b, "in_doubt"), 1);

	commit_tick(a->e);
	cr_assert_eq(status(a, "undelivered"), 0);
	cr_assert_eq(status(b, "in_doubt"), 0);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	assert_same_maps(a, b);
}

Test(commit, recover_in_doubt_aborts)
{
	struct node *a, *b;
	char *line, *text;

	add_node("a.test", 1, NULL);
	add_node("b.test", 1, NULL);
	a = &nodes[0];
	b = &nodes[1];
	line = prepare_line(TXN1, "a.test", "shop");
	text = xasprintf("%sv=1 rec=abort txn=" TXN1 "\n", line);
	write_journal(a, text);
	write_journal(b, line);
	free(text);
	free(line);
	open_node(a);
	open_node(b);
	link_all();
	cr_assert_eq(status(b, "in_doubt"), 1);
	cr_assert(pending_here(b, "shop"));
	/* a cannot deliver yet: the link is down; b asks once it is back */
	fake_peers_cut(a->peers, "b.test", 1);
	tick_until(b, "in_doubt", 0);
	cr_assert_str_eq(kinds(b, NULL), "prepare abort");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
	cr_assert_not(pending_here(b, "shop"));
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	fake_peers_cut(a->peers, "b.test", 0);
	commit_tick(a->e);
	cr_assert_str_eq(kinds(a, NULL), "prepare abort done");
	cr_assert_eq(mails(a) + mails(b), 0);
}

/* (b) again, a has no record of it at all: "no such transaction" is abort */
Test(commit, recover_in_doubt_coordinator_forgot)
{
	struct node *a, *b;
	char *line;

	add_node("a.test", 1, NULL);
	add_node("b.test", 1, NULL);
	a = &nodes[0];
	b = &nodes[1];
	line = prepare_line(TXN2, "a.test", "shop");
	write_journal(b, line);
	free(line);
	open_node(a);
	open_node(b);
	link_all();
	cr_assert_eq(status(b, "in_doubt"), 1);
	tick_until(b, "in_doubt", 0);
	cr_assert_str_eq(kinds(b, NULL), "prepare abort");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "absent");
	cr_assert_not(pending_here(b, "shop"));
}

/* ==== 7. the participant's side of the protocol, request by request ==== */

Test(commit, decide_twice_outcome_unknown)
{
	struct node *a, *b;
	struct msg resp = { 0 }, r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	char txn[TXN_ID_LEN + 1];

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	snprintf(txn, sizeof(txn), "%s", msg_gets(&resp, "txn"));
	/* while a still holds the decision, outcome is that decision */
	ask(a, "b.test", "outcome", txn, NULL, &r1);
	cr_assert_str_eq(msg_gets(&r1, "decision"), "commit");
	msg_clear(&r1);

	ask(b, "a.test", "decide", txn, "commit", &r1);
	ask(b, "a.test", "decide", txn, "commit", &r2);
	cr_assert_str_eq(msg_gets(&r1, "status"), "ok");
	cr_assert_str_eq(msg_gets(&r2, "status"), "ok", "a second decide is acknowledged");
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	cr_assert_eq(mails(b), 1);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	/* a contrary decision for a finished transaction changes nothing */
	ask(b, "a.test", "decide", txn, "abort", &r3);
	cr_assert_str_eq(msg_gets(&r3, "status"), "ok");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	msg_clear(&r1);
	msg_clear(&r2);
	msg_clear(&r3);

	/* a's own delivery (a third decide) is harmless too */
	commit_tick(a->e);
	cr_assert_str_eq(kinds(a, NULL), "prepare commit confirmed done");
	cr_assert_str_eq(kinds(b, NULL), "prepare commit confirmed");
	assert_same_maps(a, b);

	/* outcome for a transaction a never knew: "abort" (it cannot have
	 * committed); asked of a node that did not coordinate it: the same */
	ask(a, "b.test", "outcome", TXN1, NULL, &r1);
	cr_assert_str_eq(msg_gets(&r1, "status"), "ok");
	cr_assert_str_eq(msg_gets(&r1, "decision"), "abort");
	ask(b, "a.test", "outcome", txn, NULL, &r2);
	cr_assert_str_eq(msg_gets(&r2, "decision"), "abort", "b coordinated nothing");
	ask(b, "a.test", "decide", TXN2, "maybe", &r3);
	cr_assert_str_eq(msg_gets(&r3, "status"), "perm");
	msg_clear(&r1);
	msg_clear(&r2);
	msg_clear(&r3);
	msg_clear(&resp);
}

struct dup {
	struct node *a, *b;
	struct msg first, outcome;
};

/* deliver_twice - b gets a's prepare once here and once more after (a
 * reconnect); a, still VOTING, answers "pending" to outcome */
static int
deliver_twice(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct dup *d = arg;

	(void)to, (void)resp;
	sync_peer_handler(d->b->e, "a.test", req, &d->first, drop_item, NULL);
	ask(d->a, "b.test", "outcome", msg_gets(req, "txn"), NULL, &d->outcome);
	return 0;
}

Test(commit, prepare_twice_outcome_pending)
{
	struct dup d = { 0 };
	struct msg resp = { 0 };

	pair(NULL);
	d.a = &nodes[0];
	d.b = &nodes[1];
	fake_peers_hook(d.a->peers, "prepare", deliver_twice, &d);
	admin(d.a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&d.first, "status"), "yes", "%s", msg_gets(&d.first, "text"));
	cr_assert_str_eq(msg_gets(&d.outcome, "decision"), "pending");
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(d.b, NULL), "prepare", "one prepare record for two prepares");
	commit_tick(d.a->e);
	cr_assert_str_eq(kinds(d.b, NULL), "prepare commit confirmed");
	cr_assert_eq(status(d.b, "in_flight"), 0);
	assert_same_maps(d.a, d.b);
	msg_clear(&d.first);
	msg_clear(&d.outcome);
	msg_clear(&resp);
}

/* ==== hand edits of the map file (issue #12 item 4) ==== */

/* An entry an administrator adds by hand: continued on an indented
 * line, which postmap accepts and Postfix resolves. */
#define HAND_ENTRY "# added by hand\nhand2@" DOMAIN " bob@" DOMAIN ",\n\talice@" DOMAIN "\n"
/* A line postmap warns about and skips, and the parser refuses. */
#define BAD_LINE "keyonly@" DOMAIN "\n"

static char *
map_text(struct node *n)
{
	char *path = ut_path(n->dir, "aliases"), *text = ut_slurp(path);

	cr_assert_not_null(text, "no map file %s", path);
	free(path);
	return text;
}

/* edit_map - what an administrator's editor does: the whole file anew */
static void
edit_map(struct node *n, const char *text)
{
	free(ut_write(n->dir, "aliases", text));
}

/* add_to_map - the file with text appended; returns the new content */
static char *
add_to_map(struct node *n, const char *text)
{
	char *old = map_text(n), *new = xasprintf("%s%s", old, text);

	edit_map(n, new);
	free(old);
	return new;
}

/* assert_hand_entry - n's file holds hand2 as Postfix reads it, and
 * Postfix's compiled map resolves it to both of its addresses */
static void
assert_hand_entry(struct node *n)
{
	char *path = ut_path(n->dir, "aliases"), *err = NULL, out[512];
	struct aliasmap m;
	const struct alias *a;

	cr_assert_eq(aliasmap_load(path, MAP_FORMAT_VIRTUAL, &m, &err), 0, "%s", err);
	a = aliasmap_find(&m, "hand2@" DOMAIN);
	cr_assert_not_null(a, "%s: the hand edit is gone from the file", n->name);
	cr_assert_str_eq(a->target, "bob@" DOMAIN ",\talice@" DOMAIN);
	cr_assert_eq(ut_run(out, sizeof(out), "postmap -c %s/postfix -q hand2@" DOMAIN
			    " lmdb:%s", n->dir, path), 0, "%s: postmap -q finds no hand2", n->name);
	cr_assert_str_eq(out, "bob@" DOMAIN ",\talice@" DOMAIN);
	aliasmap_clear(&m);
	free(path);
}

/* status_text - one key of n's status answer (copied), "" if absent */
static char *
status_text(struct node *n, const char *key)
{
	struct msg req = { 0 }, resp = { 0 };
	struct engine_followup f;
	char *v;

	msg_set(&req, "op", "status");
	handle(n, &req, &resp, drop_item, NULL, &f);
	v = xstrdup(msg_gets(&resp, key));
	msg_clear(&req);
	msg_clear(&resp);
	return v;
}

Test(commit, hand_edit_with_continuation_survives_changes)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char *text;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	text = add_to_map(b, HAND_ENTRY);

	/* a new alias: b takes part, and appends it after the edit */
	mail(a, "new", "sales", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	cr_assert_str_eq(state_of(b, "sales", NULL, 0), "active");
	free(text);
	text = map_text(b);
	cr_assert_not_null(strstr(text, HAND_ENTRY), "the edit is not kept as written:\n%s", text);
	assert_hand_entry(b);

	/* a change of an existing alias: b writes its file anew */
	admin(a, "disable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "disabled");
	assert_hand_entry(b);
	cr_assert_eq(status(b, "map_dirty"), 0);
	free(text);
	msg_clear(&resp);
}

Test(commit, unreadable_map_is_refused_then_recovers_without_restart)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char *good, *bad, *now, *problem;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	good = add_to_map(b, HAND_ENTRY);
	bad = add_to_map(b, BAD_LINE);

	/* b cannot read its file: the change is answered 4xx everywhere */
	mail(a, "new", "sales", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	mail(b, "new", "promo", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(msg_gets(&resp, "text"), REPLY_MAP_BROKEN);
	now = map_text(b);
	cr_assert_str_eq(now, bad, "the unreadable file was rewritten");
	free(now);
	problem = status_text(b, "map_error");
	cr_assert_not_null(strstr(problem, "/aliases: line "), "status: \"%s\"", problem);
	free(problem);

	/* fixed by the administrator: the next request works, no restart */
	edit_map(b, good);
	mail(a, "new", "sales", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	cr_assert_str_eq(state_of(b, "sales", NULL, 0), "active");
	problem = status_text(b, "map_error");
	cr_assert_str_eq(problem, "", "the problem is over");
	free(problem);
	mail(b, "new", "promo", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	assert_hand_entry(b);
	free(good);
	free(bad);
	msg_clear(&resp);
}

Test(commit, decision_while_map_unreadable_keeps_the_file)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	struct aliasmap m;
	char *good, *bad, *now, *path;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	good = add_to_map(b, HAND_ENTRY);

	/* b votes yes; the file breaks before the decision arrives */
	admin(a, "disable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	bad = add_to_map(b, BAD_LINE);
	commit_tick(a->e);
	now = map_text(b);
	cr_assert_str_eq(now, bad, "the decision rewrote the unreadable file");
	free(now);
	cr_assert(pending_here(b, "shop"), "mail to it is deferred until the file has it");
	cr_assert_eq(status(b, "map_dirty"), 1);

	/* fixed: b's next look at its file (the background thread's tick)
	 * puts the change in, edit and all */
	edit_map(b, good);
	commit_tick(b->e);
	cr_assert_eq(status(b, "map_dirty"), 0);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "disabled");
	cr_assert_not(pending_here(b, "shop"));
	assert_hand_entry(b);
	path = ut_path(b->dir, "aliases");
	cr_assert_eq(aliasmap_load(path, MAP_FORMAT_VIRTUAL, &m, NULL), 0);
	cr_assert_not_null(aliasmap_find(&m, "shop@" DOMAIN));
	cr_assert_eq(aliasmap_find(&m, "shop@" DOMAIN)->state, ALIAS_DISABLED,
		     "the committed change is in the file");
	aliasmap_clear(&m);
	free(path);
	path = conf_access_file(b->conf);
	now = ut_slurp(path);
	cr_assert_not_null(strstr(now, "shop@" DOMAIN " 550 "), "not refused: %s", now);
	free(now);
	free(path);
	free(good);
	free(bad);
	msg_clear(&resp);
}

/* ==== map_format aliases: one key for a name in every domain ==== */

/* admin_in - admin() for name@domain */
static void
admin_in(struct node *n, const char *verb, const char *name, const char *domain,
	 const char *owner, struct msg *resp)
{
	struct msg req = { 0 };

	msg_set(&req, "op", "admin");
	msg_set(&req, "verb", verb);
	msg_set(&req, "name", name);
	msg_set(&req, "domain", domain);
	msg_set(&req, "owner", owner);
	run(n, &req, resp);
	msg_clear(&req);
}

/* aliases_of - n's aliases with local part name, in any domain, as
 * "address=target ..." (the list operation) */
static const char *
aliases_of(struct node *n, const char *name)
{
	static char out[512];
	struct aliasmap m;
	size_t len = strlen(name);

	list(n, &m);
	out[0] = '\0';
	for (size_t i = 0; i < m.n; i++)
		if (strncmp(m.v[i].address, name, len) == 0 && m.v[i].address[len] == '@')
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s=%s",
				 out[0] ? " " : "", m.v[i].address, m.v[i].target);
	aliasmap_clear(&m);
	return out;
}

/* key_lines - lines of n's map file that start with key ("shop:") */
static int
key_lines(struct node *n, const char *key)
{
	char *path = ut_path(n->dir, "aliases"), *text = ut_slurp(path);
	size_t len = strlen(key);
	int count = 0;

	for (const char *p = text; p != NULL && *p; ) {
		if (strncmp(p, key, len) == 0)
			count++;
		p += strcspn(p, "\n");
		p += *p == '\n';
	}
	free(text);
	free(path);
	return count;
}

/* assert_one_shop - every node holds the one alias "shop" (in want),
 * its map file has one "shop:" line, and it opens again on that file */
static void
assert_one_shop(const char *want)
{
	for (size_t i = 0; i < nnodes; i++) {
		cr_assert_str_eq(aliases_of(&nodes[i], "shop"), want, "on %s", nodes[i].name);
		cr_assert_eq(key_lines(&nodes[i], "shop:"), 1, "%s's map file", nodes[i].name);
		reopen(&nodes[i]);
		cr_assert_str_eq(aliases_of(&nodes[i], "shop"), want, "%s reopened", nodes[i].name);
	}
}

Test(commit, aliases_format_second_domain_exists)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	aliases_format = 1;
	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin_in(a, "new", "shop", DOMAIN, "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	commit_tick(a->e);
	/* the same name in the other domain is the same key: refused for
	 * good, on the coordinator and on a peer alike */
	admin_in(b, "new", "shop", DOMAIN2, "bob", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "already exists") != NULL, "%s",
		  msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "shop@" DOMAIN) != NULL,
		  "the answer names the alias that holds the name: %s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));
	msg_clear(&resp);
	admin_in(a, "new", "shop", DOMAIN2, "bob", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	/* a deleted alias keeps its name from the other domain too */
	admin_in(a, "delete", "shop", DOMAIN, "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	commit_tick(a->e);
	admin_in(b, "new", "shop", DOMAIN2, "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	cr_assert_eq(status(a, "in_flight") + status(b, "in_flight"), 0);
	assert_same_maps(a, b);
}

struct race2 {
	struct node *a, *b;
	struct msg b_prepare, b_vote, a_resp, second;
};

/* second_on_a - while a's prepare for shop@DOMAIN is on its way, a's
 * other client asks a for shop@DOMAIN2 */
static int
second_on_a(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct race2 *r = arg;

	(void)to, (void)req, (void)resp;
	admin_in(r->a, "new", "shop", DOMAIN2, "bob", &r->second);
	return 0;
}

Test(commit, aliases_format_two_domains_at_once_on_one_node)
{
	struct race2 r = { 0 };
	struct msg resp = { 0 };

	aliases_format = 1;
	pair(NULL);
	r.a = &nodes[0];
	r.b = &nodes[1];
	fake_peers_hook(r.a->peers, "prepare", second_on_a, &r);
	admin_in(r.a, "new", "shop", DOMAIN, "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	/* the second waits for the first: the name is busy */
	cr_assert_str_eq(msg_gets(&r.second, "status"), "temp", "%s", msg_gets(&r.second, "text"));
	ut_assert_reply_safe(msg_gets(&r.second, "text"));
	commit_tick(r.a->e);
	commit_tick(r.b->e);
	assert_same_maps(r.a, r.b);
	assert_one_shop("shop@" DOMAIN "=alice@" DOMAIN);
	msg_clear(&r.second);
	msg_clear(&resp);
}

/* a_prepares - a's prepare (shop@DOMAIN) is on its way to b: b's
 * prepare (shop@DOMAIN2), sent first, reaches a now */
static int
a_prepares(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct race2 *r = arg;

	(void)to, (void)req, (void)resp;
	sync_peer_handler(r->a->e, "b.test", &r->b_prepare, &r->b_vote, drop_item, NULL);
	return 0;
}

/* b_prepares - as b's prepare leaves, a's client asks a for the name
 * in the other domain */
static int
b_prepares(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct race2 *r = arg;

	(void)to;
	for (size_t i = 0; i < req->n; i++)
		msg_set(&r->b_prepare, req->v[i].key, req->v[i].value);
	fake_peers_hook(r->a->peers, "prepare", a_prepares, r);
	admin_in(r->a, "new", "shop", DOMAIN, "alice", &r->a_resp);
	for (size_t i = 0; i < r->b_vote.n; i++)
		msg_set(resp, r->b_vote.v[i].key, r->b_vote.v[i].value);
	return 1;
}

Test(commit, aliases_format_two_domains_at_once_on_two_nodes)
{
	struct race2 r = { 0 };
	struct msg resp = { 0 };

	aliases_format = 1;
	pair(NULL);
	r.a = &nodes[0];
	r.b = &nodes[1];
	fake_peers_hook(r.b->peers, "prepare", b_prepares, &r);
	admin_in(r.b, "new", "shop", DOMAIN2, "bob", &resp);
	/* one conflict, decided as for one address: a (lower) wins */
	cr_assert_str_eq(msg_gets(&r.b_vote, "status"), "temp", "%s", msg_gets(&r.b_vote, "text"));
	cr_assert_str_eq(msg_gets(&r.a_resp, "status"), "ok", "%s", msg_gets(&r.a_resp, "text"));
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	commit_tick(r.a->e);
	commit_tick(r.b->e);
	assert_same_maps(r.a, r.b);
	cr_assert_eq(status(r.a, "in_flight") + status(r.b, "in_flight"), 0);
	assert_one_shop("shop@" DOMAIN "=alice@" DOMAIN);
	msg_clear(&r.b_prepare);
	msg_clear(&r.b_vote);
	msg_clear(&r.a_resp);
	msg_clear(&resp);
}

/* ==== address extensions: Postfix delivers name-ext@ to name@ ==== */

/* (Names no machine has as a local user: the check asks getpwnam too, and
 * the arm64 layer runs these tests in a root with users alice, bob and
 * carol.) */

Test(commit, extension_of_an_address_postfix_delivers)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	delimiter = "+-";
	pair("zorbo@" DOMAIN);		/* b's Postfix delivers zorbo@ */
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "zorbo-bank", "mallory", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "already in use on b.test") != NULL &&
		  strstr(msg_gets(&resp, "text"), "address extension of zorbo@" DOMAIN) != NULL,
		  "%s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));
	msg_clear(&resp);
	/* the same from b, the coordinator's own check */
	mail(b, "new", "zorbo-x", "mallory", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "address extension of zorbo@" DOMAIN) != NULL,
		  "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	/* no delimiter in it, or one at its start: not an extension */
	mail(a, "new", "zorbobank", "mallory", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	mail(a, "new", "-zorbo", "mallory", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	/* a name with a delimiter whose base is free */
	mail(a, "new", "quill-bank", "mallory", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	commit_tick(a->e);
	assert_same_maps(a, b);
	cr_assert_str_eq(state_of(b, "zorbo-bank", NULL, 0), "absent");
}

Test(commit, extension_of_an_alias_here)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	delimiter = "+-";
	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "zorbo", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	commit_tick(a->e);
	/* another user would take alice's zorbo-anything */
	mail(b, "new", "zorbo-bank", "mallory", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "address extension") != NULL &&
		  strstr(msg_gets(&resp, "text"), "zorbo@" DOMAIN) != NULL,
		  "%s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));
	msg_clear(&resp);
	/* alice herself may */
	mail(b, "new", "zorbo-bank", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	commit_tick(b->e);
	assert_same_maps(a, b);
}

/* Two users create a name and an extension of it at once, one on each
 * server: each map says the other name is free, so each extension check
 * passes, and the extension's owner would take mail meant for the base's
 * owner.  Only one of the two may succeed. */
struct ext_race {
	struct node *b;
	const char *name, *login;
	int done;
	struct msg b_resp;
};

/* b_creates_other - while a's create is voting, b is asked for the other */
static int
b_creates_other(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct ext_race *r = arg;

	(void)to, (void)req, (void)resp;
	if (!r->done++)
		mail(r->b, "new", r->name, r->login, 20000, &r->b_resp);
	return 0;		/* then a's prepare goes on to b */
}

/* ext_race - a creates a_name for a_login while b creates b_name for
 * b_login; at most one succeeds, and the maps agree */
static void
ext_race(const char *a_name, const char *a_login, const char *b_name, const char *b_login)
{
	struct ext_race r = { 0 };
	struct node *a, *b;
	struct msg resp = { 0 };

	delimiter = "-";
	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	r.b = b;
	r.name = b_name;
	r.login = b_login;
	fake_peers_hook(a->peers, "prepare", b_creates_other, &r);
	mail(a, "new", a_name, a_login, 20000, &resp);
	cr_assert_eq(r.done, 1, "b was not asked");
	cr_assert(strcmp(msg_gets(&resp, "status"), "ok") != 0 ||
		  strcmp(msg_gets(&r.b_resp, "status"), "ok") != 0,
		  "both created: %s / %s", msg_gets(&resp, "text"), msg_gets(&r.b_resp, "text"));
	cr_assert(strcmp(msg_gets(&resp, "status"), "ok") == 0 ||
		  strcmp(msg_gets(&r.b_resp, "status"), "ok") == 0,
		  "neither created: %s / %s", msg_gets(&resp, "text"), msg_gets(&r.b_resp, "text"));
	commit_tick(a->e);
	commit_tick(b->e);
	assert_same_maps(a, b);
	cr_assert(strcmp(state_of(a, "zorbo", NULL, 0), "absent") == 0 ||
		  strcmp(state_of(a, "zorbo-bank", NULL, 0), "absent") == 0,
		  "zorbo and zorbo-bank of two users both exist");
	msg_clear(&resp);
	msg_clear(&r.b_resp);
}

Test(commit, extension_race_base_first)
{
	ext_race("zorbo", "alice", "zorbo-bank", "mallory");
}

Test(commit, extension_race_extension_first)
{
	ext_race("zorbo-bank", "mallory", "zorbo", "alice");
}

/* ==== 6. an address whose decision is still on its way ==== */

/* a committed "disable shop"; b has it prepared, not decided: b cannot
 * say "already active" from its map (a 250 for a change that never
 * happens: shop ends disabled) */
Test(commit, busy_disable_then_enable_elsewhere)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	msg_clear(&resp);
	admin(a, "disable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert_eq(status(b, "in_doubt"), 1);

	msg_clear(&resp);
	admin(b, "enable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "b answered from its map while "
			 "a's disable was undecided there: %s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));

	/* the decision arrives; then the retry does what it says */
	commit_tick(a->e);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "disabled");
	msg_clear(&resp);
	admin(b, "enable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(b->e);
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* "delete dq" committed on a, undecided on b: "new dq" on b is 4xx, not
 * "already exists" */
Test(commit, busy_delete_then_new_elsewhere)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "dq", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	msg_clear(&resp);
	admin(a, "delete", "dq", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));

	msg_clear(&resp);
	admin(b, "new", "dq", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	cr_assert_eq(status(b, "in_flight"), 1, "only a's transaction holds dq on b");

	commit_tick(a->e);
	cr_assert_str_eq(state_of(b, "dq", NULL, 0), "deleted");
	msg_clear(&resp);
	admin(b, "new", "dq", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(b->e);
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* a's second change reaches b while b still holds a's first, undecided:
 * b answers "in progress" (4xx) before comparing its map, never "not the
 * same" (a false drift alarm) */
Test(commit, busy_participant_checks_busy_first)
{
	struct node *a, *b;
	struct msg resp = { 0 };

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	commit_tick(a->e);
	msg_clear(&resp);
	admin(a, "disable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));

	msg_clear(&resp);
	admin(a, "enable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));
	cr_assert_null(strstr(msg_gets(&resp, "text"), "not the same"), "%s",
		       msg_gets(&resp, "text"));
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "disabled");

	commit_tick(a->e);
	msg_clear(&resp);
	admin(a, "enable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* ==== 7. the per-owner quota under concurrent creates ==== */

struct quota_race {
	struct node *b;
	struct msg b_resp;
};

/* b_creates_too - while a's create is voting, the same owner asks b */
static int
b_creates_too(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct quota_race *r = arg;

	(void)to, (void)req, (void)resp;
	mail(r->b, "new", "x2", "alice", 20000, &r->b_resp);
	return 0;		/* then a's prepare goes on to b */
}

static size_t
owned(struct node *n, const char *owner)
{
	struct aliasmap m;
	size_t k;

	list(n, &m);
	k = aliasmap_count_owner(&m, owner);
	aliasmap_clear(&m);
	return k;
}

Test(commit, quota_holds_under_concurrent_creates)
{
	struct quota_race r = { 0 };
	struct node *a, *b;
	struct msg resp = { 0 };

	extra_conf = "max_aliases_per_user = 2\n";
	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	r.b = b;
	mail(a, "new", "x0", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);

	/* alice may have one more: she asks a and b at once */
	msg_clear(&resp);
	fake_peers_hook(a->peers, "prepare", b_creates_too, &r);
	mail(a, "new", "x1", "alice", 20000, &resp);
	cr_assert(strcmp(msg_gets(&resp, "status"), "ok") != 0 ||
		  strcmp(msg_gets(&r.b_resp, "status"), "ok") != 0,
		  "both creates succeeded: a %s, b %s", msg_gets(&resp, "text"),
		  msg_gets(&r.b_resp, "text"));
	commit_tick(a->e);
	commit_tick(b->e);
	cr_assert_leq(owned(a, "alice"), 2, "a: alice has %zu aliases", owned(a, "alice"));
	cr_assert_leq(owned(b, "alice"), 2, "b: alice has %zu aliases", owned(b, "alice"));
	assert_same_maps(a, b);
	/* one of them got it; a loser's retry is refused for good */
	cr_assert_eq(owned(a, "alice"), 2);
	msg_clear(&resp);
	mail(b, "new", "x3", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	msg_clear(&r.b_resp);
}

/* the same on one node: two creates by one owner in flight at once */
static int
a_creates_again(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct quota_race *r = arg;

	(void)to, (void)req, (void)resp;
	mail(r->b, "new", "x2", "alice", 20000, &r->b_resp);
	return 0;
}

Test(commit, quota_holds_on_one_node)
{
	struct quota_race r = { 0 };
	struct node *a, *b;
	struct msg resp = { 0 };

	extra_conf = "max_aliases_per_user = 1\n";
	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	r.b = a;
	fake_peers_hook(a->peers, "prepare", a_creates_again, &r);
	mail(a, "new", "x1", "alice", 20000, &resp);
	cr_assert(strcmp(msg_gets(&resp, "status"), "ok") != 0 ||
		  strcmp(msg_gets(&r.b_resp, "status"), "ok") != 0,
		  "both creates succeeded: %s / %s", msg_gets(&resp, "text"),
		  msg_gets(&r.b_resp, "text"));
	commit_tick(a->e);
	cr_assert_leq(owned(a, "alice"), 1);
	assert_same_maps(a, b);
	msg_clear(&resp);
	msg_clear(&r.b_resp);
}

/* ==== 8. after the decision: the answer is what was decided ==== */

/* a's compiled alias map cannot be written when the change is applied:
 * the change is committed everywhere, so the answer is 250; the files
 * follow from the background work, and so does the confirmation */
Test(commit, committed_answers_ok_when_apply_fails)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char *db, out[256];

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	db = xasprintf("%s/aliases.lmdb", a->dir);
	cr_assert_eq(unlink(db), 0, "%s", db);
	cr_assert_eq(mkdir(db, 0700), 0);	/* neither LMDB nor postmap can write it */

	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "committed, answered: %s",
			 msg_gets(&resp, "text"));
	cr_assert_str_eq(kinds(a, NULL), "prepare commit");
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	cr_assert_eq(status(a, "map_dirty"), 1);
	cr_assert_eq(mails(a), 0, "confirmed before Postfix has the alias");

	/* still failing: a tick changes nothing, and delivers the decision */
	commit_tick(a->e);
	cr_assert_eq(status(a, "map_dirty"), 1);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");

	/* fixed: the next tick writes the files and confirms */
	cr_assert_eq(rmdir(db), 0);
	commit_tick(a->e);
	cr_assert_eq(status(a, "map_dirty"), 0);
	cr_assert_eq(ut_run(out, sizeof(out), "postmap -c %s/postfix -q shop@" DOMAIN
			    " lmdb:%s/aliases", a->dir, a->dir), 0, "not in a's compiled map");
	cr_assert_str_eq(out, "alice@" DOMAIN);
	cr_assert_eq(mails(a), 1);
	commit_tick(a->e);
	cr_assert_eq(mails(a), 1, "confirmed once");
	assert_same_maps(a, b);
	free(db);
	msg_clear(&resp);
}

struct slow_apply {
	struct node *n;
	struct msg resp;
	int done;
};

static void *
new_shop(void *arg)
{
	struct slow_apply *s = arg;

	admin(s->n, "new", "shop", "alice", &s->resp);
	__atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* the compiled map is locked by another process (postmap, a reader)
 * while a committed change is applied: the engine lock stays free, so
 * status, prepares and other requests go on meanwhile */
Test(commit, apply_does_not_hold_engine_lock)
{
	struct slow_apply s = { 0 };
	struct node *a;
	struct ut_locker l;
	pthread_t th;
	char *db, *src;
	long long end;
	int free_lock = 0;

	pair(NULL);
	a = &nodes[0];
	s.n = a;
	db = xasprintf("%s/aliases.lmdb", a->dir);
	src = xasprintf("%s/aliases", a->dir);
	l = ut_lock_file(db);
	cr_assert_eq(pthread_create(&th, NULL, new_shop, &s), 0);
	/* the apply has begun once the source has the alias */
	end = now_mono_ms() + 10000;
	for (;;) {
		char *text = ut_slurp(src);
		int begun = text != NULL && strstr(text, "shop@" DOMAIN) != NULL;

		free(text);
		if (begun)
			break;
		cr_assert_lt(now_mono_ms(), end, "the apply never began");
		usleep(10 * 1000);
	}
	/* the apply now waits for the compiled map's lock */
	for (int i = 0; i < 30 && !free_lock; i++) {
		if (pthread_mutex_trylock(&a->e->lock) == 0) {
			pthread_mutex_unlock(&a->e->lock);
			free_lock = 1;
		} else
			usleep(10 * 1000);
	}
	cr_assert(free_lock, "e->lock is held while the apply waits for the map");
	cr_assert_eq(status(a, "in_flight"), 1);
	/* the map stays locked: the answer comes anyway, within a bound
	 * (the lock wait's), and says what was decided */
	end = now_mono_ms() + 8000;
	while (!__atomic_load_n(&s.done, __ATOMIC_SEQ_CST) && now_mono_ms() < end)
		usleep(20 * 1000);
	cr_assert(__atomic_load_n(&s.done, __ATOMIC_SEQ_CST),
		  "no answer while another process keeps the compiled map locked");
	ut_unlock_file(&l);
	pthread_join(th, NULL);
	cr_assert_str_eq(msg_gets(&s.resp, "status"), "ok", "%s", msg_gets(&s.resp, "text"));
	commit_tick(a->e);
	cr_assert_eq(status(a, "map_dirty"), 0);
	assert_same_maps(a, &nodes[1]);
	free(db);
	free(src);
	msg_clear(&s.resp);
}

/* ==== 9. three servers, one name: the lowest wins ==== */

#define TXN_B "b0b0b0b0b0b0b0b0"

struct three {
	struct node *a, *b, *c;
	struct msg b_prepare;	/* b's prepare for the same name */
	struct msg b_vote_at_a;	/* a's answer to it */
	int retried;
};

static int a_retries_c(void *arg, const char *to, const struct msg *req, struct msg *resp);

/* a_to_c_first - a's first prepare to c: c holds the name for b and
 * answers "in progress" */
static int
a_to_c_first(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct three *t = arg;

	(void)req, (void)resp;
	cr_assert_str_eq(to, "c.test");
	fake_peers_hook(t->a->peers, "prepare", a_retries_c, t);
	return 0;
}

/* a_to_b - b's prepare reaches a while a votes (a refuses it: b is
 * higher); then a's own prepare goes on to b */
static int
a_to_b(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct three *t = arg;

	(void)req, (void)resp;
	cr_assert_str_eq(to, "b.test");
	sync_peer_handler(t->a->e, "b.test", &t->b_prepare, &t->b_vote_at_a, drop_item, NULL);
	fake_peers_hook(t->a->peers, "prepare", a_to_c_first, t);
	return 0;
}

/* a_retries_c - a asks c again: by now b has given up (a refused it)
 * and told c */
static int
a_retries_c(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct three *t = arg;
	struct msg r = { 0 };

	(void)req, (void)resp;
	cr_assert_str_eq(to, "c.test");
	t->retried++;
	ask(t->c, "b.test", "decide", TXN_B, "abort", &r);
	cr_assert_str_eq(msg_gets(&r, "status"), "ok", "%s", msg_gets(&r, "text"));
	msg_clear(&r);
	return 0;
}

/* a, b and c ask for shop at once; b's prepare reached c first (c gave
 * way to it), a's reaches c while c holds it for b.  b cannot win (a,
 * voting, refuses it), so a, the lowest, must not give up either:
 * before, all three answered 4xx */
Test(commit, three_nodes_lowest_wins)
{
	struct three t = { 0 };
	struct msg resp = { 0 }, v = { 0 };
	char target[256];

	add_node("a.test", 2, NULL);
	add_node("b.test", 2, NULL);
	add_node("c.test", 2, NULL);
	for (size_t i = 0; i < 3; i++)
		open_node(&nodes[i]);
	link_all();
	t.a = &nodes[0];
	t.b = &nodes[1];
	t.c = &nodes[2];

	msg_set(&t.b_prepare, "op", "prepare");
	msg_set(&t.b_prepare, "sender", "b.test");
	msg_set(&t.b_prepare, "txn", TXN_B);
	msg_set(&t.b_prepare, "coord", "b.test");
	msg_set(&t.b_prepare, "id", "admin");
	msg_set(&t.b_prepare, "verb", "new");
	msg_set(&t.b_prepare, "before_state", "none");
	msg_set(&t.b_prepare, "address", "shop@" DOMAIN);
	msg_set(&t.b_prepare, "target", "bob@" DOMAIN);
	msg_set(&t.b_prepare, "owner", "bob");
	msg_set(&t.b_prepare, "state", "active");
	msg_set(&t.b_prepare, "created", "1700000000");
	msg_set(&t.b_prepare, "updated", "1700000000");
	msg_set(&t.b_prepare, "node", "b.test");
	msg_set(&t.b_prepare, "note", "");
	sync_peer_handler(t.c->e, "b.test", &t.b_prepare, &v, drop_item, NULL);
	cr_assert_str_eq(msg_gets(&v, "status"), "yes", "%s", msg_gets(&v, "text"));

	fake_peers_hook(t.a->peers, "prepare", a_to_b, &t);
	admin(t.a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&t.b_vote_at_a, "status"), "temp", "a let b's prepare in: %s",
			 msg_gets(&t.b_vote_at_a, "text"));
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "the lowest node lost: %s",
			 msg_gets(&resp, "text"));
	cr_assert_eq(t.retried, 1);

	commit_tick(t.a->e);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_str_eq(state_of(&nodes[i], "shop", target, sizeof(target)), "active");
		cr_assert_str_eq(target, "alice@" DOMAIN, "%s has b's version", nodes[i].name);
		cr_assert_eq(status(&nodes[i], "in_flight"), 0);
		cr_assert_eq(status(&nodes[i], "in_doubt"), 0);
	}
	assert_same_maps(t.a, t.b);
	assert_same_maps(t.b, t.c);
	msg_clear(&t.b_prepare);
	msg_clear(&t.b_vote_at_a);
	msg_clear(&resp);
	msg_clear(&v);
}

/* ==== lifetimes and generated names (issue #13) ==== */

/* admin_lifetime - milter-aliasctl add --expires / expire: verb
 * name@DOMAIN with a lifetime in seconds (-1: never) */
static void
admin_lifetime(struct node *n, const char *verb, const char *name, const char *owner,
	       long long lifetime, struct msg *resp)
{
	struct msg req = { 0 };

	msg_set(&req, "op", "admin");
	msg_set(&req, "verb", verb);
	msg_set(&req, "name", name);
	msg_set(&req, "domain", DOMAIN);
	if (owner != NULL)
		msg_set(&req, "owner", owner);
	msg_setf(&req, "lifetime", "%lld", lifetime);
	run(n, &req, resp);
	msg_clear(&req);
}

/* alias_on - name@DOMAIN as n lists it (must exist); caller clears */
static void
alias_on(struct node *n, const char *name, struct alias *out)
{
	struct aliasmap m;
	char *address = xasprintf("%s@" DOMAIN, name);
	const struct alias *a;

	list(n, &m);
	a = aliasmap_find(&m, address);
	cr_assert_not_null(a, "%s has no %s", n->name, address);
	alias_copy(out, a);
	aliasmap_clear(&m);
	free(address);
}

/* access_has - n's access map holds line */
static int
access_has(struct node *n, const char *line)
{
	char *path = conf_access_file(n->conf), *text = ut_slurp(path);
	int found = text != NULL && strstr(text, line) != NULL;

	free(text);
	free(path);
	return found;
}

/* wait_past - until the wall clock is past t (bounded) */
static void
wait_past(long long t)
{
	long long end = now_mono_ms() + 5000;

	while (now_wall() <= t) {
		cr_assert_lt(now_mono_ms(), end, "the clock does not pass %lld", t);
		usleep(50 * 1000);
	}
}

/* new_expiring - pair, and shop@ of alice created on a with a lifetime
 * of 1 second, on both; returns its expiry */
static long long
new_expiring(void)
{
	struct msg resp = { 0 };
	struct alias x;
	long long expires;

	pair(NULL);
	admin_lifetime(&nodes[0], "new", "shop", "alice", 1, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "until") != NULL, "%s",
		  msg_gets(&resp, "text"));
	commit_tick(nodes[0].e);
	alias_on(&nodes[1], "shop", &x);
	cr_assert_eq(x.lifetime, 1);
	cr_assert_eq(x.expires, x.created + 1);
	expires = x.expires;
	alias_clear(&x);
	assert_same_maps(&nodes[0], &nodes[1]);
	msg_clear(&resp);
	return expires;
}

/* "expire shop 1h" committed on a, undecided on b: b cannot answer
 * "expire shop never" with "does not expire" from its map (a 250 for a
 * change that never happens: shop ends with a lifetime), nor "There is
 * no alias" for a name whose creation is on its way */
Test(commit, busy_expire_answers_after_the_decision)
{
	struct node *a, *b;
	struct alias x;
	struct msg resp = { 0 };

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	msg_clear(&resp);
	admin_lifetime(a, "expire", "shop", NULL, 3600, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert_eq(status(b, "in_doubt"), 1);
	msg_clear(&resp);
	admin_lifetime(b, "expire", "shop", NULL, -1, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "b answered from its map while "
			 "a's expire was undecided there: %s", msg_gets(&resp, "text"));
	ut_assert_reply_safe(msg_gets(&resp, "text"));

	/* a name on its way to b */
	msg_clear(&resp);
	admin(a, "new", "tote", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	admin_lifetime(b, "expire", "tote", NULL, 3600, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "temp", "%s", msg_gets(&resp, "text"));

	/* the decisions arrive; then the retries do what they say */
	commit_tick(a->e);
	msg_clear(&resp);
	admin_lifetime(b, "expire", "shop", NULL, -1, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
	admin_lifetime(b, "expire", "tote", NULL, 3600, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(b->e);
	alias_on(a, "shop", &x);
	cr_assert_eq(x.expires, 0, "shop still expires on a");
	alias_clear(&x);
	alias_on(a, "tote", &x);
	cr_assert_eq(x.lifetime, 3600);
	alias_clear(&x);
	assert_same_maps(a, b);
	msg_clear(&resp);
}

Test(commit, expiry_disables_on_every_server)
{
	struct node *a, *b;
	struct alias x;
	long long expires = new_expiring();
	int waiting = 0;

	a = &nodes[0];
	b = &nodes[1];
	/* not yet due: nothing happens */
	if (now_wall() < expires) {
		cr_assert_eq(sync_expire_due(b->e, &waiting), 0);
		cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	}
	wait_past(expires);
	/* b starts it; a learns it as a participant */
	cr_assert_eq(sync_expire_due(b->e, &waiting), 0);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "disabled");
	commit_tick(b->e);
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "disabled");
	assert_same_maps(a, b);
	alias_on(a, "shop", &x);
	cr_assert(alias_expired(&x));
	alias_clear(&x);
	cr_assert(access_has(a, "shop@" DOMAIN " 550 5.1.1 This alias has expired"));
	cr_assert(access_has(b, "shop@" DOMAIN " 550 5.1.1 This alias has expired"));
	/* a second sweep anywhere has nothing to do */
	cr_assert_eq(sync_expire_due(a->e, &waiting), 0);
	cr_assert_eq(sync_expire_due(b->e, &waiting), 0);
	cr_assert_eq(fake_peers_delivered(a->peers, "prepare"), 1, "only a's new");
	cr_assert_eq(fake_peers_delivered(b->peers, "prepare"), 1, "only b's expiry");
}

Test(commit, owner_enables_and_extends)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	struct alias x;
	long long expires = new_expiring();
	int waiting = 0;

	a = &nodes[0];
	b = &nodes[1];
	wait_past(expires);
	cr_assert_eq(sync_expire_due(a->e, &waiting), 0);
	commit_tick(a->e);
	/* a new lifetime for an expired alias waits for enable */
	admin_lifetime(b, "expire", "shop", NULL, 3600, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	cr_assert(strstr(msg_gets(&resp, "text"), "enable it") != NULL, "%s",
		  msg_gets(&resp, "text"));
	commit_tick(b->e);
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "disabled");
	msg_clear(&resp);
	/* the owner enables it by mail: it runs for its lifetime again */
	mail(b, "enable", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(b->e);
	alias_on(a, "shop", &x);
	cr_assert_eq(x.state, ALIAS_ACTIVE);
	cr_assert_eq(x.lifetime, 3600);
	cr_assert_geq(x.expires, x.updated + 3600);
	cr_assert_not(access_has(a, "shop@" DOMAIN " 550"));
	alias_clear(&x);
	assert_same_maps(a, b);
	msg_clear(&resp);
	/* and "expire never" takes the lifetime away */
	admin_lifetime(a, "expire", "shop", NULL, -1, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	alias_on(b, "shop", &x);
	cr_assert_eq(x.expires, 0);
	cr_assert_eq(x.lifetime, 0);
	alias_clear(&x);
	assert_same_maps(a, b);
	msg_clear(&resp);
}

/* Both servers' sweeps at once.  exp_race: b's prepare is on its way;
 * before it reaches a, a's own sweep runs (its prepare reaches b while
 * b is voting), like conflict_concurrent. */
struct exp_race {
	struct node *a, *b;
	struct msg b_prepare, b_vote;
	size_t a_failed;
	int late;	/* a's whole change first, then b's prepare arrives */
};

static int
exp_a_sends_prepare(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct exp_race *r = arg;

	(void)to, (void)req, (void)resp;
	sync_peer_handler(r->a->e, "b.test", &r->b_prepare, &r->b_vote, drop_item, NULL);
	return 0;
}

static int
exp_b_sends_prepare(void *arg, const char *to, const struct msg *req, struct msg *resp)
{
	struct exp_race *r = arg;
	int waiting = 0;

	(void)to;
	for (size_t i = 0; i < req->n; i++)
		msg_set(&r->b_prepare, req->v[i].key, req->v[i].value);
	if (!r->late)
		fake_peers_hook(r->a->peers, "prepare", exp_a_sends_prepare, r);
	r->a_failed = sync_expire_due(r->a->e, &waiting);
	if (r->late)
		sync_peer_handler(r->a->e, "b.test", &r->b_prepare, &r->b_vote, drop_item, NULL);
	for (size_t i = 0; i < r->b_vote.n; i++)
		msg_set(resp, r->b_vote.v[i].key, r->b_vote.v[i].value);
	return 1;
}

static void
expiry_race(int late)
{
	struct exp_race r = { 0 };
	long long expires = new_expiring();
	int waiting = 0;

	r.a = &nodes[0];
	r.b = &nodes[1];
	r.late = late;
	wait_past(expires);
	fake_peers_hook(r.b->peers, "prepare", exp_b_sends_prepare, &r);
	/* neither sweep counts a failure: one change, no error */
	cr_assert_eq(sync_expire_due(r.b->e, &waiting), 0);
	cr_assert_eq(r.a_failed, 0);
	cr_assert_str_eq(msg_gets(&r.b_vote, "status"), late ? "perm" : "temp", "%s",
			 msg_gets(&r.b_vote, "text"));
	if (late)
		cr_assert(strstr(msg_gets(&r.b_vote, "text"), "no longer due") != NULL, "%s",
			  msg_gets(&r.b_vote, "text"));
	/* a (the lower name) committed its expiry, b's gave way */
	cr_assert_str_eq(kinds(r.a, "a.test"), "prepare commit confirmed done prepare commit");
	cr_assert_str_eq(kinds(r.b, "b.test"), "prepare abort");
	commit_tick(r.a->e);
	commit_tick(r.b->e);
	cr_assert_str_eq(state_of(r.a, "shop", NULL, 0), "disabled");
	cr_assert_str_eq(state_of(r.b, "shop", NULL, 0), "disabled");
	assert_same_maps(r.a, r.b);
	cr_assert_eq(status(r.a, "in_flight") + status(r.b, "in_flight"), 0);
	cr_assert_eq(status(r.b, "in_doubt"), 0);
	/* and nothing is left to expire */
	cr_assert_eq(sync_expire_due(r.a->e, &waiting), 0);
	cr_assert_eq(sync_expire_due(r.b->e, &waiting), 0);
	msg_clear(&r.b_prepare);
	msg_clear(&r.b_vote);
}

Test(commit, expiry_on_both_servers_at_once)
{
	expiry_race(0);
}

Test(commit, expiry_prepare_after_the_other_committed)
{
	expiry_race(1);
}

Test(commit, expiry_waits_for_an_unreachable_peer)
{
	struct node *a, *b;
	long long expires = new_expiring();
	int waiting = 0;

	a = &nodes[0];
	b = &nodes[1];
	wait_past(expires);
	fake_peers_cut(a->peers, "b.test", 1);
	/* nothing can commit: the alias keeps delivering on both servers */
	cr_assert_eq(sync_expire_due(a->e, &waiting), 1);
	cr_assert_eq(waiting, 1);
	cr_assert_eq(fake_peers_delivered(a->peers, "prepare"), 1, "only the new");
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "active");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "active");
	cr_assert_not(access_has(a, "shop@" DOMAIN " 5"));
	cr_assert_not(access_has(b, "shop@" DOMAIN " 5"));
	/* the link heals: the next sweep expires it everywhere */
	fake_peers_cut(a->peers, "b.test", 0);
	cr_assert_eq(sync_expire_due(a->e, &waiting), 0);
	cr_assert_eq(waiting, 0);
	commit_tick(a->e);
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "disabled");
	assert_same_maps(a, b);
}

Test(commit, lifetime_in_seconds_needs_the_test_knob)
{
	struct node *a = add_node("a.test", 0, NULL);
	struct msg resp = { 0 };

	a->conf->expiry_test_seconds = 0;
	open_node(a);
	admin_lifetime(a, "new", "shop", "alice", 90, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "perm", "%s", msg_gets(&resp, "text"));
	cr_assert_str_eq(state_of(a, "shop", NULL, 0), "absent");
	msg_clear(&resp);
	admin_lifetime(a, "new", "shop", "alice", 2 * 86400, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	msg_clear(&resp);
}

Test(commit, generated_name_on_both)
{
	struct node *a, *b;
	struct msg req = { 0 }, resp = { 0 };
	const char *address;
	char *name;
	struct alias x;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	msg_set(&req, "op", "request");
	msg_set(&req, "id", "QUEUEID2");
	msg_setf(&req, "deadline", "%lld", now_mono_ms() + 20000);
	msg_set(&req, "request_address", "makealias@" DOMAIN);
	msg_set(&req, "login", "alice");
	msg_set(&req, "verb", "new");
	msg_set(&req, "domain", DOMAIN);
	msg_set(&req, "note", "newsletter");
	msg_set(&req, "generate", "1");
	msg_setf(&req, "lifetime", "%d", 30 * 86400);
	run(b, &req, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	address = msg_gets(&resp, "address");
	cr_assert_eq(strlen(address), REQUEST_GEN_LEN + strlen("@" DOMAIN), "%s", address);
	/* the reply text names the new address */
	cr_assert(strstr(msg_gets(&resp, "text"), address) != NULL, "%s",
		  msg_gets(&resp, "text"));
	name = xstrndup(address, strcspn(address, "@"));
	cr_assert(request_name_valid(name));
	commit_tick(b->e);
	alias_on(a, name, &x);
	cr_assert_eq(x.state, ALIAS_ACTIVE);
	cr_assert_str_eq(x.owner, "alice");
	cr_assert_str_eq(x.note, "newsletter");
	cr_assert_eq(x.lifetime, 30 * 86400);
	alias_clear(&x);
	assert_same_maps(a, b);
	/* one confirmation through each server, addressed to the new name */
	cr_assert_eq(mails(a), 1);
	cr_assert_eq(mails(b), 1);
	free(name);
	msg_clear(&req);
	msg_clear(&resp);
}

Test(commit, list_mail_shows_the_expiry)
{
	struct node *a;
	struct msg resp = { 0 };
	char *path, *text;

	new_expiring();
	a = &nodes[0];
	mail(a, "list", "x", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	path = ut_path(a->dir, "mail.out");
	text = ut_slurp(path);
	cr_assert_not_null(text);
	cr_assert_not_null(strstr(text, "Subject: Your aliases"), "%s", text);
	cr_assert(strstr(text, "shop@example.org") != NULL &&
		  strstr(strstr(text, "Subject: Your aliases"), "  expires 20") != NULL, "%s", text);
	/* and the confirmation of the new alias said when it expires */
	cr_assert_not_null(strstr(text, "Expires: 20"), "%s", text);
	free(text);
	free(path);
	msg_clear(&resp);
}

Test(commit, one_sweep_expires_more_than_a_batch)
{
	/* sync.c collects 16 due aliases under the lock at a time */
	struct node *a = add_node("a.test", 0, NULL);
	struct msg resp = { 0 };
	struct aliasmap m;
	long long last = 0;
	size_t disabled = 0;
	int waiting = 0;

	open_node(a);
	for (int i = 0; i < 20; i++) {
		char name[32];

		snprintf(name, sizeof(name), "trial%02d", i);
		admin_lifetime(a, "new", name, "alice", 1, &resp);
		cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
		msg_clear(&resp);
	}
	last = now_wall() + 1;
	wait_past(last);
	cr_assert_eq(sync_expire_due(a->e, &waiting), 0);
	list(a, &m);
	for (size_t i = 0; i < m.n; i++)
		disabled += alias_expired(&m.v[i]);
	cr_assert_eq(m.n, 20);
	cr_assert_eq(disabled, 20, "one sweep disabled %zu of 20", disabled);
	aliasmap_clear(&m);
}

/* ---- an edit at the last moment of a rewrite (-Wl,--wrap=rename) ---- */

int __real_rename(const char *from, const char *to);
int __wrap_rename(const char *from, const char *to);

/* Armed with a path, the next rename over that path first appends
 * HAND_ENTRY to it, as an administrator's ">>" in the instant between
 * the daemon's last look at the file and its rename would. */
static const char *rename_edit_path;
/* Armed with a path, the next rename over that path first opens it for
 * appending (late_fd): the open of a ">>" whose write comes after. */
static const char *rename_open_path;
static int late_fd = -1;

int
__wrap_rename(const char *from, const char *to)
{
	if (rename_open_path != NULL && strcmp(to, rename_open_path) == 0) {
		rename_open_path = NULL;
		late_fd = open(to, O_WRONLY | O_APPEND);
	}
	if (rename_edit_path != NULL && strcmp(to, rename_edit_path) == 0) {
		FILE *f = fopen(to, "a");

		rename_edit_path = NULL;
		if (f != NULL) {
			fputs(HAND_ENTRY, f);
			fclose(f);
		}
	}
	return __real_rename(from, to);
}

/* rewrite_with_edit - shop is created on a, then disabled: b rewrites
 * its map file, with *hook (rename_edit_path or rename_open_path) armed
 * for that rename; then the hand edit, if the caller makes one after,
 * must be read by b's background look (then) and kept in every file */
static void
rewrite_with_edit(const char **hook, void (*then)(void))
{
	struct node *a, *b;
	struct msg resp = { 0 };
	char *path;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	admin(a, "new", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);
	msg_clear(&resp);

	path = ut_path(b->dir, "aliases");
	*hook = path;
	admin(a, "disable", "shop", "alice", &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	/* the decision reaches b: its rewrite */
	commit_tick(a->e);
	cr_assert_null(*hook, "b's rewrite never renamed over %s", path);
	if (then != NULL)
		then();
	/* the background thread's look at the file */
	pthread_mutex_lock(&b->e->lock);
	commit_refresh(b->e);
	pthread_mutex_unlock(&b->e->lock);
	commit_tick(b->e);
	assert_hand_entry(b);
	cr_assert_not_null(aliasmap_find(mapstate_map(b->e->ms), "hand2@" DOMAIN),
			   "b never read the hand edit");
	cr_assert_str_eq(state_of(b, "shop", NULL, 0), "disabled");
	cr_assert_eq(status(b, "map_dirty"), 0);
	free(path);
	msg_clear(&resp);
}

/* A change of an existing alias rewrites the map file; an entry appended
 * by hand just before the rename went into the old file and was lost with
 * it (found by the 1,000-round campaign: the check came before the
 * rewrite's write and fsync, which under load take long).  Now the edit
 * is put back and read, and the change is written again over it. */
Test(commit, hand_append_at_the_rename_is_kept)
{
	rewrite_with_edit(&rename_edit_path, NULL);
}

/* the shell's write, after the rewrite, into what it opened before */
static void
write_late(void)
{
	cr_assert_geq(late_fd, 0);
	cr_assert_eq(fsutil_write_all(late_fd, HAND_ENTRY, strlen(HAND_ENTRY)), 0);
	close(late_fd);
	late_fd = -1;
}

/* An entry appended by hand with ">>" whose open came before a rewrite's
 * rename and whose write after (the shell descheduled between the two,
 * under load): the write went into the replaced file, and the edit was
 * lost without a word (round 250 of the 1,000-round campaign).  Now the
 * replaced file is watched for a while and the append carried over. */
Test(commit, hand_append_opened_before_the_rename_is_kept)
{
	rewrite_with_edit(&rename_open_path, write_late);
}

/* An entry appended by hand (">>", the same file) while a change of the
 * other server is being written here: the hand edit is read, never taken
 * for this daemon's own append (it then stayed unseen: the file held it,
 * memory and the compiled map did not, and the servers differed until
 * the next hand edit; found by the campaign's three-server hand edits). */
Test(commit, hand_append_during_a_write_is_read)
{
	struct node *a, *b;
	struct msg resp = { 0 };
	struct mapstate_staged st;
	struct alias x = {
		.address = (char *)"beside@" DOMAIN, .target = (char *)"alice@" DOMAIN,
		.owner = (char *)"alice", .state = ALIAS_ACTIVE, .created = 1,
		.node = (char *)"a.test", .updated = 1, .note = (char *)"",
	};
	char *path, *err = NULL, out[256];
	FILE *f;
	int rc;

	pair(NULL);
	a = &nodes[0];
	b = &nodes[1];
	mail(a, "new", "shop", "alice", 20000, &resp);
	cr_assert_str_eq(msg_gets(&resp, "status"), "ok", "%s", msg_gets(&resp, "text"));
	commit_tick(a->e);

	pthread_mutex_lock(&b->e->maplock);
	pthread_mutex_lock(&b->e->lock);
	mapstate_stage(b->e->ms, &x, &st);
	pthread_mutex_unlock(&b->e->lock);
	path = ut_path(b->dir, "aliases");
	f = fopen(path, "a");
	cr_assert_not_null(f);
	fputs(HAND_ENTRY, f);
	cr_assert_eq(fclose(f), 0);
	rc = mapstate_write(b->e->ms, &x, &st, "txn-beside", "a.test", &err);
	pthread_mutex_unlock(&b->e->maplock);
	mapstate_staged_clear(&st);
	free(err);

	/* the background thread's next look (a refused write is retried) */
	pthread_mutex_lock(&b->e->lock);
	commit_refresh(b->e);
	pthread_mutex_unlock(&b->e->lock);
	commit_tick(b->e);
	cr_assert_not_null(aliasmap_find(mapstate_map(b->e->ms), "hand2@" DOMAIN),
			   "b never read the hand edit (write returned %d)", rc);
	assert_hand_entry(b);
	cr_assert_eq(ut_run(out, sizeof(out), "postmap -c %s/postfix -q beside@" DOMAIN
			    " lmdb:%s", b->dir, path), 0, "the committed change is not in b's map");
	cr_assert_eq(status(b, "map_dirty"), 0);
	free(path);
	msg_clear(&resp);
}
