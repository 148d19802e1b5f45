/* test_msg.c - unit tests for common/msg.c: the key=value line codec,
 * percent-encoding, 4-byte-length frames and msg_send/msg_recv over a
 * socketpair. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "unit.h"
#include "msg.h"

static int sv[2] = { -1, -1 };

static void
setup(void)
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void
teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0) {
			close(sv[i]);
			sv[i] = -1;
		}
}

TestSuite(msg, .init = setup, .fini = teardown);

/* encode - the line for m, caller frees */
static char *
encode(const struct msg *m)
{
	struct buf b = { 0 };

	buf_append(&b, "", 0);
	msg_encode_line(m, &b);
	return b.data;
}

/* escape - msg_escape into a fresh string, caller frees */
static char *
escape(const char *s)
{
	struct buf b = { 0 };

	buf_append(&b, "", 0);
	msg_escape(s, &b);
	return b.data;
}

/* decode - msg_decode_line on a C string */
static int
decode(const char *line, struct msg *m, char **err)
{
	return msg_decode_line(line, strlen(line), m, err);
}

/* raw_frame - 4-byte big-endian length + line, as bytes in b */
static void
raw_frame(struct buf *b, const char *line, size_t n)
{
	unsigned char len[4] = {
		(unsigned char)(n >> 24), (unsigned char)(n >> 16),
		(unsigned char)(n >> 8), (unsigned char)n,
	};

	buf_append(b, len, 4);
	buf_append(b, line, n);
}

static void
write_all(int fd, const void *p, size_t n)
{
	cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

/* --- the record --- */

Test(msg, set_get_replace)
{
	struct msg m = { 0 };

	cr_assert_null(msg_get(&m, "a"));
	cr_assert_str_eq(msg_gets(&m, "a"), "");
	msg_set(&m, "a", "1");
	msg_set(&m, "b", "");
	cr_assert_eq(m.n, 2);
	cr_assert_str_eq(msg_get(&m, "a"), "1");
	cr_assert_not_null(msg_get(&m, "b"), "an empty value is present");
	cr_assert_str_eq(msg_get(&m, "b"), "");
	msg_set(&m, "a", "2");
	cr_assert_eq(m.n, 2, "replacing does not add a key");
	cr_assert_str_eq(msg_get(&m, "a"), "2");
	cr_assert_null(msg_get(&m, "A"), "keys are case-sensitive");
	cr_assert_null(msg_get(&m, "c"));
	cr_assert_str_eq(msg_gets(&m, "c"), "");
	msg_clear(&m);
}

Test(msg, set_copies_value)
{
	struct msg m = { 0 };
	char key[] = "key", val[] = "value";

	msg_set(&m, key, val);
	key[0] = 'X';
	val[0] = 'X';
	cr_assert_str_eq(msg_get(&m, "key"), "value");
	msg_clear(&m);
}

Test(msg, setf_formats)
{
	struct msg m = { 0 };

	msg_setf(&m, "n", "%d-%s", 7, "x");
	cr_assert_str_eq(msg_get(&m, "n"), "7-x");
	msg_setf(&m, "n", "%lld", -5LL);
	cr_assert_str_eq(msg_get(&m, "n"), "-5");
	cr_assert_eq(m.n, 1);
	msg_clear(&m);
}

Test(msg, get_ll)
{
	struct msg m = { 0 };
	long long v = 0;

	msg_set(&m, "pos", "1700000000123");
	msg_set(&m, "neg", "-42");
	msg_set(&m, "zero", "0");
	msg_set(&m, "empty", "");
	msg_set(&m, "junk", "12abc");
	msg_set(&m, "float", "1.5");
	msg_set(&m, "huge", "99999999999999999999999");
	cr_assert_eq(msg_get_ll(&m, "pos", &v), 0);
	cr_assert_eq(v, 1700000000123LL);
	cr_assert_eq(msg_get_ll(&m, "neg", &v), 0);
	cr_assert_eq(v, -42);
	cr_assert_eq(msg_get_ll(&m, "zero", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(msg_get_ll(&m, "missing", &v), -1);
	cr_assert_eq(msg_get_ll(&m, "empty", &v), -1);
	cr_assert_eq(msg_get_ll(&m, "junk", &v), -1);
	cr_assert_eq(msg_get_ll(&m, "float", &v), -1);
	cr_assert_eq(msg_get_ll(&m, "huge", &v), -1);
	msg_clear(&m);
}

Test(msg, many_keys_keep_insertion_order)
{
	struct msg m = { 0 };
	char k[16], v[16];

	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		msg_set(&m, k, v);
	}
	cr_assert_eq(m.n, 50);
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		cr_assert_str_eq(m.v[i].key, k);
		cr_assert_str_eq(msg_get(&m, k), v);
	}
	msg_clear(&m);
	cr_assert_eq(m.n, 0);
	cr_assert_null(m.v);
	cr_assert_null(msg_get(&m, "k1"));
	msg_clear(&m);		/* twice is harmless */
}

/* --- escaping --- */

Test(msg, escape_keeps_safe_set)
{
	const char *safe = "azAZ09._-@:/+,";
	char *e = escape(safe);

	cr_assert_str_eq(e, safe);
	free(e);
}

Test(msg, escape_encodes_the_rest)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ " ", "%20" },
		{ "=", "%3D" },
		{ "%", "%25" },
		{ "\r\n", "%0D%0A" },
		{ "\t", "%09" },
		{ "a b=c", "a%20b%3Dc" },
		{ "\"|'", "%22%7C%27" },
		{ "\xc3\xa4", "%C3%A4" },
		{ "\x7f\x01", "%7F%01" },
		{ "#@", "%23@" },
		{ "", "" },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		char *e = escape(cases[i].in);

		cr_assert_str_eq(e, cases[i].out, "case %zu", i);
		free(e);
	}
}

Test(msg, escape_unescape_every_byte)
{
	char all[256];
	char *e, *u;

	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	e = escape(all);
	for (const char *p = e; *p; p++)
		cr_assert(*p > 0x20 && *p < 0x7f && *p != '=',
			  "unsafe byte 0x%02x in escaped text", (unsigned char)*p);
	u = msg_unescape(e, strlen(e));
	cr_assert_not_null(u);
	cr_assert_str_eq(u, all);
	free(e);
	free(u);
}

Test(msg, unescape_accepts_lowercase_hex_and_respects_len)
{
	char *u = msg_unescape("a%2fb%3d", 8);

	cr_assert_str_eq(u, "a/b=");
	free(u);
	u = msg_unescape("abc def", 3);
	cr_assert_str_eq(u, "abc");
	free(u);
	u = msg_unescape("", 0);
	cr_assert_str_eq(u, "");
	free(u);
}

Test(msg, unescape_refuses_malformed)
{
	static const char *const bad[] = {
		"%", "%4", "a%", "%zz", "%4g", "%g4", "%00", "a%00b",
		"a b", "a=b", "\"", "a\tb", "x\ny", "\xc3\xa4", "|",
	};

	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		char *u = msg_unescape(bad[i], strlen(bad[i]));

		cr_assert_null(u, "accepted bad escape #%zu", i);
	}
	/* The length bounds the input: a "%41" cut after "%4" is malformed. */
	cr_assert_null(msg_unescape("%41", 2));
}

/* --- the line codec --- */

Test(msg, encode_line_format)
{
	struct msg m = { 0 };
	char *line;

	line = encode(&m);
	cr_assert_str_eq(line, "", "an empty record is an empty line");
	free(line);
	msg_set(&m, "op", "new");
	msg_set(&m, "address", "shop@example.org");
	msg_set(&m, "note", "my orders 100%");
	msg_set(&m, "empty", "");
	line = encode(&m);
	cr_assert_str_eq(line, "op=new address=shop@example.org "
			 "note=my%20orders%20100%25 empty=");
	free(line);
	msg_clear(&m);
}

Test(msg, encode_appends)
{
	struct msg m = { 0 };
	struct buf b = { 0 };

	msg_set(&m, "a", "1");
	buf_append(&b, "#@ ", 3);
	msg_encode_line(&m, &b);
	cr_assert_str_eq(b.data, "#@ a=1");
	buf_free(&b);
	msg_clear(&m);
}

Test(msg, line_roundtrip_hostile_values)
{
	static const char *const values[] = {
		"", " ", "a b", "x=y", "100%", "%25", "\r\n", "line1\nline2",
		"tab\there", "|/bin/sh", ":include:/etc/passwd", "\"quoted\"",
		"non-ascii \xc3\xa4\xc3\xb6\xc3\xbc", "#@ a=b", "  lead and trail  ",
		"\x01\x1f\x7f\xff",
	};
	struct msg m = { 0 }, d = { 0 };
	char key[16], *line, *err = NULL;

	for (size_t i = 0; i < N_ELEMENTS(values); i++) {
		snprintf(key, sizeof(key), "k_%zu", i);
		msg_set(&m, key, values[i]);
	}
	line = encode(&m);
	for (const char *p = line; *p; p++)
		cr_assert(*p != '\r' && *p != '\n' && *p != '\t' &&
			  (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f,
			  "byte 0x%02x in line", (unsigned char)*p);
	cr_assert_eq(decode(line, &d, &err), 0, "decode: %s", err ? err : "");
	cr_assert_eq(d.n, m.n);
	for (size_t i = 0; i < m.n; i++) {
		cr_assert_str_eq(d.v[i].key, m.v[i].key, "order kept");
		cr_assert_str_eq(d.v[i].value, m.v[i].value);
	}
	/* Exactly n-1 separating spaces: values hold no raw space. */
	size_t spaces = 0;
	for (const char *p = line; *p; p++)
		spaces += *p == ' ';
	cr_assert_eq(spaces, m.n - 1);
	free(line);
	free(err);
	msg_clear(&m);
	msg_clear(&d);
}

Test(msg, decode_valid_forms)
{
	struct msg m = { 0 };
	char *err = NULL;

	cr_assert_eq(decode("a=1", &m, &err), 0);
	cr_assert_eq(m.n, 1);
	cr_assert_str_eq(msg_get(&m, "a"), "1");
	cr_assert_eq(decode("x_1=%20 y2= z=q", &m, &err), 0);
	cr_assert_eq(m.n, 3, "decode replaces the earlier content");
	cr_assert_null(msg_get(&m, "a"));
	cr_assert_str_eq(msg_get(&m, "x_1"), " ");
	cr_assert_str_eq(msg_get(&m, "y2"), "");
	cr_assert_str_eq(msg_get(&m, "z"), "q");
	cr_assert_null(err);
	msg_clear(&m);
}

Test(msg, decode_refuses_malformed)
{
	static const char *const bad[] = {
		"=v",			/* empty key */
		"K=v",			/* upper-case key */
		"a-b=v",		/* '-' is not a key character */
		"key",			/* no '=' */
		"a=1  b=2",		/* two spaces */
		" a=1",			/* leading space */
		"a=1 ",			/* trailing space */
		"a=1 b",		/* second pair without '=' */
		"a=1 a=2",		/* duplicate key */
		"a=x=y",		/* raw '=' in a value */
		"a=%2",			/* truncated escape */
		"a=%00",		/* NUL */
		"a=\"q\"",		/* unsafe raw character */
		"a=\xc3\xa4",		/* raw non-ASCII */
		"a=1\tb=2",		/* tab is no separator */
	};

	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		struct msg m = { 0 };
		char *err = NULL;

		msg_set(&m, "old", "x");
		cr_assert_eq(decode(bad[i], &m, &err), -1, "accepted \"%s\"", bad[i]);
		cr_assert_not_null(err, "no reason for \"%s\"", bad[i]);
		cr_assert_eq(m.n, 0, "record not cleared after \"%s\"", bad[i]);
		free(err);
		msg_clear(&m);
	}
}

Test(msg, decode_respects_len)
{
	struct msg m = { 0 };

	cr_assert_eq(msg_decode_line("a=1 b=2", 3, &m, NULL), 0);
	cr_assert_eq(m.n, 1);
	cr_assert_str_eq(msg_get(&m, "a"), "1");
	msg_clear(&m);
}

Test(msg, decode_key_limit)
{
	struct buf line = { 0 };
	struct msg m = { 0 };
	char *err = NULL;

	for (int i = 0; i < MSG_MAX_KEYS; i++)
		buf_appendf(&line, "%sk%d=%d", i ? " " : "", i, i);
	cr_assert_eq(msg_decode_line(line.data, line.len, &m, &err), 0,
		     "%d keys are allowed", MSG_MAX_KEYS);
	cr_assert_eq(m.n, MSG_MAX_KEYS);
	buf_appendf(&line, " extra=1");
	cr_assert_eq(msg_decode_line(line.data, line.len, &m, &err), -1,
		     "%d keys are too many", MSG_MAX_KEYS + 1);
	cr_assert_not_null(err);
	cr_assert_eq(m.n, 0);
	free(err);
	buf_free(&line);
	msg_clear(&m);
}

/* --- frames --- */

Test(msg, frame_layout)
{
	struct msg m = { 0 };
	struct buf b = { 0 };
	size_t n;

	msg_set(&m, "op", "ping");
	msg_set(&m, "v", "99");		/* the caller cannot forge the version */
	msg_set(&m, "x", "a b");
	msg_frame(&m, &b);
	cr_assert_geq(b.len, 4);
	n = ((size_t)(unsigned char)b.data[0] << 24) |
		((size_t)(unsigned char)b.data[1] << 16) |
		((size_t)(unsigned char)b.data[2] << 8) | (unsigned char)b.data[3];
	cr_assert_eq(n, b.len - 4, "big-endian length of the line");
	cr_assert_eq(memcmp(b.data + 4, "v=1 op=ping x=a%20b", n), 0);
	cr_assert_eq(n, strlen("v=1 op=ping x=a%20b"));
	buf_free(&b);
	msg_clear(&m);
}

Test(msg, frame_of_empty_record)
{
	struct msg m = { 0 }, d = { 0 };
	struct buf b = { 0 };
	size_t used = 0;

	msg_frame(&m, &b);
	cr_assert_eq(b.len, 4 + 3);
	cr_assert_eq(memcmp(b.data + 4, "v=1", 3), 0);
	cr_assert_eq(msg_unframe(b.data, b.len, &used, &d, NULL), 1);
	cr_assert_eq(used, b.len);
	cr_assert_eq(d.n, 1);
	buf_free(&b);
	msg_clear(&d);
}

Test(msg, unframe_roundtrip_and_partial)
{
	struct msg m = { 0 }, d = { 0 };
	struct buf b = { 0 };
	size_t used = 12345;
	long long v;

	msg_set(&m, "op", "commit");
	msg_set(&m, "note", "x=y %\r\n");
	msg_frame(&m, &b);
	for (size_t len = 0; len < b.len; len++) {
		used = 12345;
		cr_assert_eq(msg_unframe(b.data, len, &used, &d, NULL), 0,
			     "prefix of %zu bytes is incomplete", len);
		cr_assert_eq(used, 12345, "*used untouched while incomplete");
	}
	cr_assert_eq(msg_unframe(b.data, b.len, &used, &d, NULL), 1);
	cr_assert_eq(used, b.len);
	cr_assert_eq(msg_get_ll(&d, "v", &v), 0);
	cr_assert_eq(v, MSG_VERSION);
	cr_assert_str_eq(msg_gets(&d, "op"), "commit");
	cr_assert_str_eq(msg_gets(&d, "note"), "x=y %\r\n");
	buf_free(&b);
	msg_clear(&m);
	msg_clear(&d);
}

Test(msg, unframe_back_to_back)
{
	struct msg a = { 0 }, c = { 0 }, d = { 0 };
	struct buf b = { 0 };
	size_t used = 0, first;

	msg_set(&a, "n", "1");
	msg_set(&c, "n", "22");
	msg_frame(&a, &b);
	first = b.len;
	msg_frame(&c, &b);
	cr_assert_eq(msg_unframe(b.data, b.len, &used, &d, NULL), 1);
	cr_assert_eq(used, first, "only the first frame is consumed");
	cr_assert_str_eq(msg_gets(&d, "n"), "1");
	cr_assert_eq(msg_unframe(b.data + used, b.len - used, &used, &d, NULL), 1);
	cr_assert_eq(used, b.len - first);
	cr_assert_str_eq(msg_gets(&d, "n"), "22");
	buf_free(&b);
	msg_clear(&a);
	msg_clear(&c);
	msg_clear(&d);
}

Test(msg, unframe_refuses_garbage)
{
	static const char *const lines[] = {
		"v=2 op=x",		/* another version */
		"v=0",
		"v=one",
		"op=x",			/* no version at all */
		"v=",
		"v=1 op=a b",		/* bad syntax */
		"v=1  op=x",
		"V=1",
	};

	for (size_t i = 0; i < N_ELEMENTS(lines); i++) {
		struct buf b = { 0 };
		struct msg d = { 0 };
		char *err = NULL;
		size_t used = 777;

		raw_frame(&b, lines[i], strlen(lines[i]));
		cr_assert_eq(msg_unframe(b.data, b.len, &used, &d, &err), -1,
			     "accepted \"%s\"", lines[i]);
		cr_assert_not_null(err);
		cr_assert_eq(d.n, 0, "record cleared for \"%s\"", lines[i]);
		cr_assert_eq(used, 777);
		free(err);
		buf_free(&b);
	}
}

Test(msg, unframe_refuses_bad_length_early)
{
	static const unsigned char zero[4] = { 0, 0, 0, 0 };
	static const unsigned char huge[4] = { 0, 1, 0, 1 };	/* 65537 */
	static const unsigned char giant[4] = { 0xff, 0xff, 0xff, 0xff };
	struct msg d = { 0 };
	size_t used;
	char *err = NULL;

	cr_assert_eq(msg_unframe((const char *)zero, 4, &used, &d, &err), -1);
	cr_assert_not_null(err);
	/* Refused from the header alone, without waiting for 64 KiB. */
	cr_assert_eq(msg_unframe((const char *)huge, 4, &used, &d, &err), -1);
	cr_assert_eq(msg_unframe((const char *)giant, 4, &used, &d, &err), -1);
	free(err);
}

Test(msg, unframe_max_size_frame)
{
	struct buf line = { 0 }, b = { 0 };
	struct msg d = { 0 };
	size_t used = 0;
	char *err = NULL;

	buf_append(&line, "v=1 x=", 6);
	while (line.len < MSG_MAX_FRAME)
		buf_append(&line, "a", 1);
	raw_frame(&b, line.data, line.len);
	cr_assert_eq(msg_unframe(b.data, b.len, &used, &d, &err), 1, "%s",
		     err ? err : "");
	cr_assert_eq(used, 4 + (size_t)MSG_MAX_FRAME);
	cr_assert_eq(strlen(msg_gets(&d, "x")), MSG_MAX_FRAME - 6);
	buf_free(&line);
	buf_free(&b);
	msg_clear(&d);
}

/* --- msg_send / msg_recv --- */

Test(msg, send_recv_roundtrip)
{
	struct msg m = { 0 }, d = { 0 };
	char *err = NULL;

	msg_set(&m, "op", "new");
	msg_set(&m, "address", "shop-amazon@example.org");
	msg_set(&m, "note", "orders & returns 50%");
	cr_assert_eq(msg_send(sv[0], &m, 1000, &err), 0, "%s", err ? err : "");
	cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), 0, "%s", err ? err : "");
	cr_assert_str_eq(msg_gets(&d, "v"), "1");
	cr_assert_str_eq(msg_gets(&d, "op"), "new");
	cr_assert_str_eq(msg_gets(&d, "address"), "shop-amazon@example.org");
	cr_assert_str_eq(msg_gets(&d, "note"), "orders & returns 50%");
	cr_assert_eq(d.n, 4);
	cr_assert_null(err);
	msg_clear(&m);
	msg_clear(&d);
}

Test(msg, recv_reads_one_frame_at_a_time)
{
	struct msg m = { 0 }, d = { 0 };
	char *err = NULL;
	char c;

	for (int i = 0; i < 3; i++) {
		msg_setf(&m, "seq", "%d", i);
		cr_assert_eq(msg_send(sv[0], &m, -1, &err), 0);
	}
	for (int i = 0; i < 3; i++) {
		long long seq;

		cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), 0, "%s", err ? err : "");
		cr_assert_eq(msg_get_ll(&d, "seq", &seq), 0);
		cr_assert_eq(seq, i);
	}
	/* Nothing beyond the three frames was consumed or is left over. */
	cr_assert_eq(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	cr_assert_eq(errno, EAGAIN);
	msg_clear(&m);
	msg_clear(&d);
}

Test(msg, recv_leaves_following_bytes_on_the_socket)
{
	struct msg m = { 0 }, d = { 0 };
	struct buf b = { 0 };
	char tail[8] = { 0 };

	msg_set(&m, "a", "1");
	msg_frame(&m, &b);
	buf_append(&b, "TAIL", 4);
	write_all(sv[0], b.data, b.len);
	cr_assert_eq(msg_recv(sv[1], &d, 1000, NULL), 0);
	cr_assert_eq(read(sv[1], tail, 4), 4);
	cr_assert_str_eq(tail, "TAIL");
	buf_free(&b);
	msg_clear(&m);
	msg_clear(&d);
}

Test(msg, recv_eof_before_any_byte)
{
	struct msg d = { 0 };
	char *err = NULL;

	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), 1);
	free(err);
}

Test(msg, recv_eof_mid_frame)
{
	struct msg m = { 0 }, d = { 0 };
	struct buf b = { 0 };
	char *err = NULL;

	msg_set(&m, "a", "1");
	msg_frame(&m, &b);
	write_all(sv[0], b.data, b.len - 2);
	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), -1);
	cr_assert_not_null(err);
	free(err);
	buf_free(&b);
	msg_clear(&m);
}

Test(msg, recv_eof_inside_length)
{
	struct msg d = { 0 };
	char *err = NULL;

	write_all(sv[0], "\0\0", 2);
	close(sv[0]);
	sv[0] = -1;
	cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), -1);
	cr_assert_not_null(err);
	free(err);
}

Test(msg, recv_times_out)
{
	struct msg d = { 0 };
	char *err = NULL;
	long long t0 = now_mono_ms(), dt;

	cr_assert_eq(msg_recv(sv[1], &d, 150, &err), -1);
	dt = now_mono_ms() - t0;
	cr_assert_geq(dt, 140, "returned after %lld ms", dt);
	cr_assert_lt(dt, 3000, "returned after %lld ms", dt);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "timed out"), "%s", err);
	free(err);
}

Test(msg, recv_times_out_mid_frame)
{
	struct msg m = { 0 }, d = { 0 };
	struct buf b = { 0 };
	char *err = NULL;

	msg_set(&m, "a", "1");
	msg_frame(&m, &b);
	write_all(sv[0], b.data, b.len - 1);
	cr_assert_eq(msg_recv(sv[1], &d, 100, &err), -1);
	cr_assert_not_null(err);
	free(err);
	buf_free(&b);
	msg_clear(&m);
}

Test(msg, recv_refuses_garbage_length)
{
	struct msg d = { 0 };
	char *err = NULL;
	static const unsigned char huge[4] = { 0x7f, 0, 0, 0 };

	write_all(sv[0], huge, 4);
	cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), -1);
	cr_assert_not_null(err);
	free(err);
}

Test(msg, recv_refuses_other_version)
{
	struct buf b = { 0 };
	struct msg d = { 0 };
	char *err = NULL;

	raw_frame(&b, "v=2 op=x", 8);
	write_all(sv[0], b.data, b.len);
	cr_assert_eq(msg_recv(sv[1], &d, 1000, &err), -1);
	cr_assert_not_null(err);
	cr_assert_eq(d.n, 0);
	free(err);
	buf_free(&b);
}

Test(msg, recv_byte_by_byte)
{
	struct msg m = { 0 }, d = { 0 };
	struct buf b = { 0 };
	pid_t pid;
	int status;

	msg_set(&m, "op", "slow");
	msg_set(&m, "data", "dribbled one byte at a time");
	msg_frame(&m, &b);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };

		for (size_t i = 0; i < b.len; i++) {
			if (write(sv[0], b.data + i, 1) != 1)
				_exit(1);
			nanosleep(&ts, NULL);
		}
		_exit(0);
	}
	cr_assert_eq(msg_recv(sv[1], &d, 5000, NULL), 0);
	cr_assert_str_eq(msg_gets(&d, "data"), "dribbled one byte at a time");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	buf_free(&b);
	msg_clear(&m);
	msg_clear(&d);
}

struct reader {
	int fd;
	struct msg m;
	int rc;
};

static void *
reader_thread(void *arg)
{
	struct reader *r = arg;

	r->rc = msg_recv(r->fd, &r->m, 5000, NULL);
	return NULL;
}

Test(msg, large_record_roundtrip)
{
	struct msg m = { 0 };
	struct reader r = { .fd = sv[1] };
	pthread_t t;
	char *big, *err = NULL;

	/* Values escape to three bytes each: stay under the frame limit. */
	big = xmalloc(20000 + 1);
	for (int i = 0; i < 20000; i++)
		big[i] = (i % 10 == 0) ? ' ' : (char)('a' + i % 26);
	big[20000] = '\0';
	msg_set(&m, "big", big);
	cr_assert_eq(pthread_create(&t, NULL, reader_thread, &r), 0);
	cr_assert_eq(msg_send(sv[0], &m, 5000, &err), 0, "%s", err ? err : "");
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(r.rc, 0);
	cr_assert_str_eq(msg_gets(&r.m, "big"), big);
	free(big);
	msg_clear(&m);
	msg_clear(&r.m);
}

Test(msg, send_refuses_oversized_record)
{
	struct msg m = { 0 }, d = { 0 };
	char *big, *err = NULL;

	big = xmalloc(MSG_MAX_FRAME + 1);
	memset(big, 'x', MSG_MAX_FRAME);
	big[MSG_MAX_FRAME] = '\0';
	msg_set(&m, "big", big);
	cr_assert_eq(msg_send(sv[0], &m, 1000, &err), -1,
		     "a frame the receiver must refuse is not sent");
	cr_assert_not_null(err);
	/* Nothing at all went out. */
	cr_assert_eq(msg_recv(sv[1], &d, 50, NULL), -1);
	free(big);
	free(err);
	msg_clear(&m);
}

Test(msg, send_to_closed_peer_fails_without_sigpipe)
{
	struct msg m = { 0 };
	char *err = NULL;

	/* SIGPIPE keeps its default action: a write would kill the test. */
	signal(SIGPIPE, SIG_DFL);
	close(sv[1]);
	sv[1] = -1;
	msg_set(&m, "a", "1");
	cr_assert_eq(msg_send(sv[0], &m, 1000, &err), -1);
	cr_assert_not_null(err);
	free(err);
	msg_clear(&m);
}

Test(msg, send_times_out_when_peer_does_not_read, .timeout = 20)
{
	struct msg m = { 0 };
	char *val, *err = NULL;
	long long t0;
	int rc = 0, sent = 0;

	/* Fill the socket buffers with frames nobody reads; a send must
	 * then give up at its deadline instead of blocking for good. */
	int small = 4096;

	/* A small send buffer, as a busy TCP link has: a blocking write of
	 * one frame could not complete. */
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	val = xmalloc(30000 + 1);
	memset(val, 'x', 30000);
	val[30000] = '\0';
	msg_set(&m, "fill", val);
	t0 = now_mono_ms();
	while (sent < 10000 && (rc = msg_send(sv[0], &m, 200, &err)) == 0)
		sent++;
	cr_assert_eq(rc, -1, "the buffers never filled");
	cr_assert_lt(now_mono_ms() - t0, 10000);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "timed out"), "%s", err);
	free(val);
	free(err);
	msg_clear(&m);
}

Test(msg, send_recv_without_timeout)
{
	struct msg m = { 0 }, d = { 0 };

	msg_set(&m, "a", "b");
	cr_assert_eq(msg_send(sv[0], &m, -1, NULL), 0);
	cr_assert_eq(msg_recv(sv[1], &d, -1, NULL), 0);
	cr_assert_str_eq(msg_gets(&d, "a"), "b");
	msg_clear(&m);
	msg_clear(&d);
}
