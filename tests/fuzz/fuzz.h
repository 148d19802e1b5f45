/* fuzz.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * A violated postcondition prints what was expected and abort()s, which
 * libFuzzer reports as a crash and saves the input.
 */
#ifndef MA_FUZZ_H
#define MA_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)							\
	do {									\
		if (!(cond)) {							\
			fprintf(stderr, "\n%s:%d: postcondition failed: %s\n  ",	\
				__FILE__, __LINE__, #cond);			\
			fprintf(stderr, __VA_ARGS__);				\
			fputc('\n', stderr);					\
			abort();						\
		}								\
	} while (0)

/* fuzz_cstr - the input as a NUL-terminated string (stops at a NUL byte,
 * as every C-string interface of the project would) */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* fuzz_printable - 1 if s is printable ASCII (0x20..0x7e) */
static inline int
fuzz_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* fuzz_reply_safe - 1 if s can go into an SMTP reply unchanged: no CR, LF
 * or '%' (the request.h promise for error texts) */
static inline int
fuzz_reply_safe(const char *s)
{
	return strpbrk(s, "\r\n%") == NULL;
}

/* fuzz_tmpdir - $TMPDIR or /tmp */
static inline const char *
fuzz_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t != NULL && *t != '\0' ? t : "/tmp";
}

#endif
