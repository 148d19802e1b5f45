/* test_util.c - unit tests for common/util.c: allocators, strlist, buf,
 * string helpers, set_error and the clocks. */
#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "unit.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
/* With --enable-sanitizers, let a huge malloc fail instead of ASan
 * reporting it, so the exhaustion tests see util.c's own abort. */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif

TestSuite(util);

/* --- allocators --- */

Test(util, xmalloc_zero_is_usable)
{
	char *p = xmalloc(0);

	cr_assert_not_null(p);
	free(p);
}

Test(util, xmalloc_gives_writable_memory)
{
	unsigned char *p = xmalloc(1000);

	memset(p, 0xab, 1000);
	cr_assert_eq(p[0], 0xab);
	cr_assert_eq(p[999], 0xab);
	free(p);
}

Test(util, xcalloc_zeroes)
{
	unsigned char *p = xcalloc(100, 7);

	for (size_t i = 0; i < 700; i++)
		cr_assert_eq(p[i], 0, "byte %zu not zero", i);
	free(p);
	p = xcalloc(0, 0);
	cr_assert_not_null(p);
	free(p);
}

Test(util, xrealloc_preserves_contents)
{
	char *p = xrealloc(NULL, 4);

	memcpy(p, "abc", 4);
	p = xrealloc(p, 1 << 20);
	cr_assert_str_eq(p, "abc");
	p[(1 << 20) - 1] = 'z';
	p = xrealloc(p, 2);
	cr_assert_eq(p[0], 'a');
	cr_assert_eq(p[1], 'b');
	p = xrealloc(p, 0);
	cr_assert_not_null(p);
	free(p);
}

/* The fatal message goes to stderr; keep the test output clean. */
Test(util, xmalloc_exhaustion_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
	void *volatile p = xmalloc(SIZE_MAX - 16);

	free(p);
}

Test(util, xcalloc_exhaustion_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
	void *volatile p = xcalloc(SIZE_MAX / 2, 4);

	free(p);
}

Test(util, xrealloc_exhaustion_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
	void *volatile p = xrealloc(NULL, SIZE_MAX - 16);

	free(p);
}

Test(util, xstrdup_copies)
{
	char src[] = "hello";
	char *p = xstrdup(src);

	cr_assert_neq(p, src);
	cr_assert_str_eq(p, "hello");
	src[0] = 'j';
	cr_assert_str_eq(p, "hello");
	free(p);
	p = xstrdup("");
	cr_assert_str_eq(p, "");
	free(p);
}

Test(util, xstrndup_truncates)
{
	char *p = xstrndup("abcdef", 3);

	cr_assert_str_eq(p, "abc");
	free(p);
	p = xstrndup("abcdef", 0);
	cr_assert_str_eq(p, "");
	free(p);
	p = xstrndup("abc", 3);
	cr_assert_str_eq(p, "abc");
	free(p);
}

Test(util, xstrndup_stops_at_the_string_end)
{
	/* strndup semantics: an n larger than the string must not read past
	 * its NUL.  The string ends a page followed by an unreadable one. */
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *src, *p;

	cr_assert_neq(map, MAP_FAILED);
	cr_assert_eq(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	src = map + page - 3;
	memcpy(src, "ab", 3);
	p = xstrndup(src, 100);
	cr_assert_str_eq(p, "ab");
	free(p);
	munmap(map, (size_t)page * 2);
}

Test(util, xasprintf_formats)
{
	char *p = xasprintf("%s-%d-%05.1f-%c", "x", 42, 3.14159, 'z');

	cr_assert_str_eq(p, "x-42-003.1-z");
	free(p);
	p = xasprintf("%s", "");
	cr_assert_str_eq(p, "");
	free(p);
}

static char *
call_xvasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2);

static char *
call_xvasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

Test(util, xvasprintf_formats)
{
	char *p = call_xvasprintf("%lld/%zu/%s", 1234567890123LL, (size_t)7, "end");

	cr_assert_str_eq(p, "1234567890123/7/end");
	free(p);
}

Test(util, xasprintf_long_output)
{
	char big[5000];
	char *p;

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	p = xasprintf("<%s>", big);
	cr_assert_eq(strlen(p), sizeof(big) + 1);
	cr_assert_eq(p[0], '<');
	cr_assert_eq(p[sizeof(big)], '>');
	free(p);
}

Test(util, xfree_frees_and_nulls)
{
	char *p = xstrdup("x");

	xfree(&p);
	cr_assert_null(p);
	xfree(&p);		/* a second call on NULL is harmless */
	cr_assert_null(p);
}

/* --- strlist --- */

Test(util, strlist_add_copies_and_keeps_order)
{
	struct strlist l = { 0 };
	char tmp[16];

	for (int i = 0; i < 100; i++) {
		snprintf(tmp, sizeof(tmp), "item%d", i);
		strlist_add(&l, tmp);
	}
	strcpy(tmp, "changed");
	cr_assert_eq(l.n, 100);
	for (int i = 0; i < 100; i++) {
		char want[16];

		snprintf(want, sizeof(want), "item%d", i);
		cr_assert_str_eq(l.v[i], want);
	}
	cr_assert_geq(l.cap, l.n);
	strlist_clear(&l);
}

Test(util, strlist_contains_case)
{
	struct strlist l = { 0 };

	cr_assert_eq(strlist_contains(&l, "a", false), 0, "empty list");
	cr_assert_eq(strlist_contains(&l, "a", true), 0, "empty list");
	strlist_add(&l, "Example.ORG");
	strlist_add(&l, "other.net");
	cr_assert_eq(strlist_contains(&l, "Example.ORG", false), 1);
	cr_assert_eq(strlist_contains(&l, "example.org", false), 0);
	cr_assert_eq(strlist_contains(&l, "example.org", true), 1);
	cr_assert_eq(strlist_contains(&l, "EXAMPLE.org", true), 1);
	cr_assert_eq(strlist_contains(&l, "other.net", true), 1);
	cr_assert_eq(strlist_contains(&l, "example", true), 0, "no prefix match");
	cr_assert_eq(strlist_contains(&l, "example.org.", true), 0);
	cr_assert_eq(strlist_contains(&l, "", true), 0);
	strlist_clear(&l);
}

Test(util, strlist_clear_resets_and_reuses)
{
	struct strlist l = { 0 };

	strlist_add(&l, "a");
	strlist_add(&l, "b");
	strlist_clear(&l);
	cr_assert_eq(l.n, 0);
	cr_assert_eq(l.cap, 0);
	cr_assert_null(l.v);
	cr_assert_eq(strlist_contains(&l, "a", false), 0);
	strlist_add(&l, "c");
	cr_assert_eq(l.n, 1);
	cr_assert_str_eq(l.v[0], "c");
	strlist_clear(&l);
	strlist_clear(&l);	/* clearing an empty list is harmless */
	cr_assert_eq(l.n, 0);
}

/* --- buf --- */

Test(util, buf_append_nul_terminates)
{
	struct buf b = { 0 };

	buf_append(&b, "", 0);
	cr_assert_not_null(b.data, "an empty append still allocates");
	cr_assert_eq(b.len, 0);
	cr_assert_str_eq(b.data, "");
	buf_append(&b, "abc", 3);
	buf_append(&b, "defgh", 2);
	cr_assert_eq(b.len, 5);
	cr_assert_str_eq(b.data, "abcde");
	cr_assert_gt(b.cap, b.len);
	buf_free(&b);
}

Test(util, buf_append_binary)
{
	struct buf b = { 0 };
	const char bin[] = { 'a', '\0', 'b', (char)0xff };

	buf_append(&b, bin, sizeof(bin));
	cr_assert_eq(b.len, 4);
	cr_assert_eq(memcmp(b.data, bin, 4), 0);
	cr_assert_eq(b.data[4], '\0');
	buf_free(&b);
}

Test(util, buf_grows_past_initial_capacity)
{
	struct buf b = { 0 };
	char chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 300; i++)
		buf_append(&b, chunk, sizeof(chunk));
	cr_assert_eq(b.len, 300000);
	cr_assert_gt(b.cap, b.len);
	cr_assert_eq(strlen(b.data), 300000);
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] != 'x')
			cr_assert_fail("byte %zu corrupted", i);
	buf_free(&b);
}

Test(util, buf_appendf_formats)
{
	struct buf b = { 0 };

	buf_appendf(&b, "%d+%d", 1, 2);
	buf_appendf(&b, "=%s", "3");
	cr_assert_str_eq(b.data, "1+2=3");
	cr_assert_eq(b.len, 5);
	buf_free(&b);
}

Test(util, buf_reset_empties_keeps_storage)
{
	struct buf b = { 0 };
	char *data;
	size_t cap;

	buf_reset(&b);		/* never allocated: harmless */
	cr_assert_eq(b.len, 0);
	buf_append(&b, "hello", 5);
	data = b.data;
	cap = b.cap;
	buf_reset(&b);
	cr_assert_eq(b.len, 0);
	cr_assert_str_eq(b.data, "");
	cr_assert_eq(b.data, data);
	cr_assert_eq(b.cap, cap);
	buf_append(&b, "x", 1);
	cr_assert_str_eq(b.data, "x");
	buf_free(&b);
}

Test(util, buf_free_resets)
{
	struct buf b = { 0 };

	buf_append(&b, "abc", 3);
	buf_free(&b);
	cr_assert_null(b.data);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(b.cap, 0);
	buf_free(&b);
	buf_append(&b, "z", 1);
	cr_assert_str_eq(b.data, "z");
	buf_free(&b);
}

/* --- string helpers --- */

Test(util, str_lower_ascii_only)
{
	char s[] = "MiXeD-Case_09@EXAMPLE.Org \xc3\x84\xc3\x96";
	char *r = str_lower(s);

	cr_assert_eq(r, s);
	cr_assert_str_eq(s, "mixed-case_09@example.org \xc3\x84\xc3\x96");
	char e[] = "";
	cr_assert_str_eq(str_lower(e), "");
	char edge[] = "@[`{AZ";
	cr_assert_str_eq(str_lower(edge), "@[`{az");
}

Test(util, str_trim_both_ends)
{
	char a[] = " \t\r\n  inner  text \r\n\t ";
	char *r = str_trim(a);

	cr_assert_eq(r, a, "trims in place");
	cr_assert_str_eq(a, "inner  text");
	char b[] = "plain";
	cr_assert_str_eq(str_trim(b), "plain");
	char c[] = " \t \r\n";
	cr_assert_str_eq(str_trim(c), "");
	char d[] = "";
	cr_assert_str_eq(str_trim(d), "");
	char e[] = "x ";
	cr_assert_str_eq(str_trim(e), "x");
	char f[] = " x";
	cr_assert_str_eq(str_trim(f), "x");
}

Test(util, str_to_long_accepts_decimal)
{
	long v = -99;
	char buf[64];

	cr_assert_eq(str_to_long("42", &v), 0);
	cr_assert_eq(v, 42);
	cr_assert_eq(str_to_long("-7", &v), 0);
	cr_assert_eq(v, -7);
	cr_assert_eq(str_to_long("0", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(str_to_long("010", &v), 0);
	cr_assert_eq(v, 10, "decimal, not octal");
	snprintf(buf, sizeof(buf), "%ld", LONG_MAX);
	cr_assert_eq(str_to_long(buf, &v), 0);
	cr_assert_eq(v, LONG_MAX);
	snprintf(buf, sizeof(buf), "%ld", LONG_MIN);
	cr_assert_eq(str_to_long(buf, &v), 0);
	cr_assert_eq(v, LONG_MIN);
}

Test(util, str_to_long_refuses_garbage)
{
	static const char *const bad[] = {
		"", "x", "12x", "1 ", "1.5", "0x10", "--1", "1e3",
		"99999999999999999999999", "-99999999999999999999999",
	};
	long v = 1234;

	cr_assert_eq(str_to_long(NULL, &v), -1);
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		cr_assert_eq(str_to_long(bad[i], &v), -1, "accepted \"%s\"", bad[i]);
		cr_assert_eq(v, 1234, "\"%s\" changed *out", bad[i]);
	}
}

/* --- set_error --- */

Test(util, set_error_formats_and_replaces)
{
	char *err = NULL;

	set_error(&err, "first %d", 1);
	cr_assert_str_eq(err, "first 1");
	set_error(&err, "second %s", "two");	/* the old text is freed */
	cr_assert_str_eq(err, "second two");
	free(err);
}

Test(util, set_error_null_is_ignored)
{
	char *err = xstrdup("kept");

	/* Must neither crash nor touch anything else. */
	set_error(NULL, "nobody wants %s", "this");
	cr_assert_str_eq(err, "kept");
	free(err);
}

/* --- clocks --- */

Test(util, now_wall_is_the_epoch_clock)
{
	long long t0 = (long long)time(NULL);
	long long w = now_wall();
	long long t1 = (long long)time(NULL);

	cr_assert_geq(w, t0);
	cr_assert_leq(w, t1);
}

Test(util, now_mono_ms_advances)
{
	long long a = now_mono_ms();
	struct timespec ts = { 0, 30 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	long long b = now_mono_ms();

	cr_assert_geq(a, 0);
	cr_assert_geq(b - a, 25, "slept 30 ms, clock moved %lld ms", b - a);
	cr_assert_lt(b - a, 5000);
}

/* ===== json_print_string ===== */

static char *
json_of(const char *s)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	cr_assert_not_null(f);
	json_print_string(f, s);
	cr_assert_eq(fclose(f), 0);
	return out;
}

Test(util, json_print_string_escapes)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "plain", "\"plain\"" },
		{ NULL, "\"\"" },
		{ "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "tab\there\n\x7f", "\"tab\\u0009here\\u000a\\u007f\"" },
		{ "gr\xc3\xbc\xc3\x9f", "\"gr\xc3\xbc\xc3\x9f\"" },	/* UTF-8 kept */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = json_of(cases[i].in);

		cr_assert_str_eq(got, cases[i].out, "case %zu", i);
		free(got);
	}
}
