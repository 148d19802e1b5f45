/* fuzz_wire.c - libFuzzer target: the record codec of the peer link, the
 * control socket and the journal (msg.h).
 *
 * The input is used twice:
 *  - as a byte stream from a socket: msg_unframe() in a loop takes frames
 *    until it needs more bytes or refuses the stream (as peer/tls.c and
 *    msg_recv() do);
 *  - as text: each line goes to msg_decode_line() (as the journal and the
 *    map's "#@" lines are read).
 * Every decoded record must be well formed (keys [a-z0-9_]+, unique, at
 * most MSG_MAX_KEYS, no NUL in values), must re-encode (msg_frame,
 * msg_encode_line) into something that decodes to the same key/value
 * pairs, and the line encoding of a decoded record is canonical.  Decoded
 * frames also go through alias_from_msg(): an alias it accepts has a
 * valid address and target and survives alias_to_msg/alias_from_msg.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aliasmap.h"
#include "msg.h"
#include "request.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_record(const struct msg *m)
{
	FUZZ_CHECK(m->n <= MSG_MAX_KEYS, "%zu keys", m->n);
	for (size_t i = 0; i < m->n; i++) {
		const char *k = m->v[i].key;

		FUZZ_CHECK(*k != '\0' && strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_") ==
			   strlen(k), "bad key \"%s\"", k);
		FUZZ_CHECK(m->v[i].value != NULL, "NULL value for %s", k);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(m->v[j].key, k) != 0, "duplicate key %s", k);
		FUZZ_CHECK(msg_get(m, k) == m->v[i].value, "msg_get(%s) is wrong", k);
	}
}

/* same_pairs - 1 if a and b hold the same keys with the same values,
 * apart from the version "v", which msg_frame always writes itself (the
 * reader accepts any decimal spelling of 1, such as "01") */
static int
same_pairs(const struct msg *a, const struct msg *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const char *v = msg_get(b, a->v[i].key);

		if (v == NULL)
			return 0;
		if (strcmp(a->v[i].key, "v") != 0 && strcmp(v, a->v[i].value) != 0)
			return 0;
	}
	return 1;
}

static void
check_alias(const struct msg *m)
{
	struct alias a, b;
	struct msg back = { 0 };
	char *err = NULL;

	if (alias_from_msg(m, &a, &err) < 0) {
		FUZZ_CHECK(err != NULL, "alias_from_msg failed without a reason");
		free(err);
		return;
	}
	FUZZ_CHECK(request_address_valid(a.address), "accepted address \"%s\"", a.address);
	FUZZ_CHECK(request_target_valid(a.target), "accepted target \"%s\"", a.target);
	FUZZ_CHECK(a.owner && a.node && a.note, "NULL metadata field");
	alias_to_msg(&a, &back);
	FUZZ_CHECK(alias_from_msg(&back, &b, &err) == 0, "alias does not round-trip: %s",
		   err ? err : "(null)");
	FUZZ_CHECK(strcmp(a.address, b.address) == 0 && strcmp(a.target, b.target) == 0 &&
		   strcmp(a.owner, b.owner) == 0 && a.state == b.state &&
		   a.created == b.created && strcmp(a.node, b.node) == 0 &&
		   a.updated == b.updated && strcmp(a.note, b.note) == 0,
		   "alias %s changes in a round trip", a.address);
	alias_clear(&a);
	alias_clear(&b);
	msg_clear(&back);
}

/* check_frame_roundtrip - msg_frame of a decoded frame gives it back */
static void
check_frame_roundtrip(const struct msg *m, size_t original)
{
	struct buf f = { 0 };
	struct msg again = { 0 };
	size_t used = 0;
	char *err = NULL;
	int rc;

	msg_frame(m, &f);
	/* Escapes never grow: the frame is no longer than the original. */
	FUZZ_CHECK(f.len <= original, "re-encoded frame of %zu bytes from %zu", f.len,
		   original);
	rc = msg_unframe(f.data, f.len, &used, &again, &err);
	FUZZ_CHECK(rc == 1 && used == f.len, "re-encoded frame refused (rc=%d): %s", rc,
		   err ? err : "(null)");
	FUZZ_CHECK(same_pairs(m, &again) && same_pairs(&again, m),
		   "re-encoded frame decodes to other pairs");
	/* Nothing after a frame belongs to it: a byte more is still one frame. */
	buf_append(&f, "\0\0\0", 3);
	FUZZ_CHECK(msg_unframe(f.data, f.len, &used, &again, &err) == 1 &&
		   used == f.len - 3, "frame followed by bytes mis-decoded");
	free(err);
	msg_clear(&again);
	buf_free(&f);
}

/* check_line_roundtrip - encode(decode(x)) decodes to the same pairs in the
 * same order, and encoding that again gives the same bytes */
static void
check_line_roundtrip(const struct msg *m)
{
	struct buf l1 = { 0 }, l2 = { 0 };
	struct msg again = { 0 };
	char *err = NULL;

	buf_append(&l1, "", 0);	/* data is never NULL, even for no pairs */
	buf_append(&l2, "", 0);
	msg_encode_line(m, &l1);
	FUZZ_CHECK(memchr(l1.data, '\n', l1.len) == NULL &&
		   memchr(l1.data, '\r', l1.len) == NULL, "encoded line holds CR or LF");
	FUZZ_CHECK(msg_decode_line(l1.data, l1.len, &again, &err) == 0,
		   "encoded line does not decode: %s\n%s", err ? err : "(null)", l1.data);
	FUZZ_CHECK(again.n == m->n, "key count changed");
	for (size_t i = 0; i < m->n; i++)
		FUZZ_CHECK(strcmp(again.v[i].key, m->v[i].key) == 0 &&
			   strcmp(again.v[i].value, m->v[i].value) == 0,
			   "pair %zu changed", i);
	msg_encode_line(&again, &l2);
	FUZZ_CHECK(l1.len == l2.len && memcmp(l1.data, l2.data, l1.len) == 0,
		   "line encoding not canonical");
	msg_clear(&again);
	buf_free(&l1);
	buf_free(&l2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct msg m = { 0 };
	size_t off = 0;

	/* A stream of frames. */
	while (off < size) {
		size_t used = 0;
		char *err = NULL;
		int rc;

		msg_clear(&m);	/* as peer/tls.c conn_recv does before each frame */
		rc = msg_unframe(p + off, size - off, &used, &m, &err);
		if (rc == 0)
			break;	/* a partial frame: the reader waits for more */
		if (rc < 0) {
			FUZZ_CHECK(err != NULL, "frame refused without a reason");
			FUZZ_CHECK(m.n == 0, "refused frame left %zu pairs", m.n);
			free(err);
			break;	/* the stream is out of step */
		}
		FUZZ_CHECK(used > 4 && used <= size - off && used <= 4 + MSG_MAX_FRAME,
			   "used %zu of %zu", used, size - off);
		check_record(&m);
		{
			long long v;

			FUZZ_CHECK(msg_get_ll(&m, "v", &v) == 0 && v == MSG_VERSION,
				   "accepted frame of version \"%s\"", msg_gets(&m, "v"));
		}
		check_frame_roundtrip(&m, used);
		check_line_roundtrip(&m);
		check_alias(&m);
		off += used;
		free(err);
	}
	msg_clear(&m);

	/* Lines of text. */
	off = 0;
	while (off < size) {
		const char *nl = memchr(p + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (p + off)) : size - off;
		char *err = NULL;

		if (msg_decode_line(p + off, len, &m, &err) == 0) {
			check_record(&m);
			check_line_roundtrip(&m);
			check_alias(&m);
		} else {
			FUZZ_CHECK(err != NULL && m.n == 0, "refused line without a reason");
			free(err);
		}
		off += len + 1;
	}
	msg_clear(&m);
	return 0;
}
