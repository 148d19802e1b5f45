/* util.h - memory and string helpers shared by every program.
 *
 * The x* allocators never return NULL: on exhaustion they log and abort,
 * so callers need no checks (Postfix's mymalloc contract).  Nothing here
 * knows about mail.
 */
#ifndef MA_UTIL_H
#define MA_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdbool.h>

#define ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ATTR_NORETURN __attribute__((noreturn))
#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Formatted string, owned by the caller. */
char *xasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) ATTR_PRINTF(1, 0);
/* free(*p) and set *p = NULL. */
void xfree(char **p);

/* A growable list of owned strings. */
struct strlist {
	char **v;
	size_t n;
	size_t cap;
};
void strlist_add(struct strlist *l, const char *s);
/* 1 if s is in the list (case-insensitive when nocase), else 0. */
int strlist_contains(const struct strlist *l, const char *s, bool nocase);
void strlist_clear(struct strlist *l);
/* The separators of a Postfix list parameter. */
#define POSTFIX_LIST_SEP ", \t\r\n"
/* Add the items of a Postfix list ("a, b c") to out, with {...} kept
 * together as Postfix's mystrtokq does. */
void strlist_split_postfix(const char *s, struct strlist *out);

/* A growable byte buffer, always NUL-terminated. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_append(struct buf *b, const void *p, size_t n);
void buf_appendf(struct buf *b, const char *fmt, ...) ATTR_PRINTF(2, 3);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* ASCII-only case folding, in place; returns s. */
char *str_lower(char *s);
/* Strip leading and trailing white space in place; returns s. */
char *str_trim(char *s);
/* Parse a whole decimal string into *out; 0 on success, -1 otherwise. */
int str_to_long(const char *s, long *out);

/* s (NULL: "") as a JSON string literal on f: quotes and backslashes
 * escaped, control characters as \u00XX, other bytes (UTF-8) as they are. */
void json_print_string(FILE *f, const char *s);

/* Set *err_r (if err_r) to a new formatted string, freeing the old one. */
void set_error(char **err_r, const char *fmt, ...) ATTR_PRINTF(2, 3);

/* Seconds since the epoch, from the wall clock. */
long long now_wall(void);
/* t as "2026-12-04 20:18 UTC" (at most 21 bytes with NUL). */
void utc_date(long long t, char *out, size_t len);
/* Milliseconds from a monotonic clock, for timeouts. */
long long now_mono_ms(void);

#endif
