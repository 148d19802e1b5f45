/* run.h - run a program without a shell, feed it input, collect output.
 *
 * posix_spawn with a minimal environment; stdout and stderr are captured
 * apart (Postfix tools print warnings on stderr even when they succeed,
 * and those must not mix with the answer).  A program that outlives its
 * timeout is killed.
 */
#ifndef MA_RUN_H
#define MA_RUN_H

#include <stddef.h>
#include "util.h"

/* Run argv[0] (an absolute path) with argv.  input (may be NULL) goes to
 * its stdin; its stdout is appended to out and its stderr to errout (either
 * may be NULL to discard).  Returns the exit status (0..255), or -1 with a
 * reason if it could not run, was killed or timed out. */
int run_program(char *const argv[], const char *input, size_t input_len,
		struct buf *out, struct buf *errout, int timeout_ms,
		char **err_r);

#endif
