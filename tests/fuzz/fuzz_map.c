/* fuzz_map.c - libFuzzer target: the alias map source parser.
 *
 * The input is a map file's text.  It is parsed in both formats (virtual
 * and aliases).  When a parse succeeds, the map is rendered; the rendering
 * must parse again and render to the very same bytes (it is the canonical
 * form whose SHA-256 the servers compare), and the digest must be the
 * SHA-256 of that rendering, the same for both parses and every call.
 * A failed parse must say which line is wrong ("line N: ...").
 */
#include "config.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aliasmap.h"
#include "request.h"
#include "util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
sha256_hex(const struct buf *b, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];

	gnutls_hash_fast(GNUTLS_DIG_SHA256, b->data, b->len, md);
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

static void
check_format(const char *text, size_t len, enum map_format fmt)
{
	const char *fname = fmt == MAP_FORMAT_ALIASES ? "aliases" : "virtual";
	struct aliasmap m1, m2;
	struct buf r1 = { 0 }, r2 = { 0 };
	char d1[65], d1b[65], d2[65], dr[65], *err = NULL;

	if (aliasmap_parse(text, len, fmt, &m1, &err) < 0) {
		FUZZ_CHECK(err != NULL && strncmp(err, "line ", 5) == 0,
			   "%s: error without a line number: \"%s\"", fname,
			   err ? err : "(null)");
		FUZZ_CHECK(m1.n == 0 && m1.v == NULL, "%s: failed parse left entries", fname);
		free(err);
		return;
	}
	FUZZ_CHECK(err == NULL, "%s: success with an error", fname);
	for (size_t i = 0; i < m1.n; i++) {
		const struct alias *a = &m1.v[i];

		FUZZ_CHECK(a->address && a->target && a->owner && a->node && a->note,
			   "%s: entry %zu has a NULL field", fname, i);
		if (i > 0)
			FUZZ_CHECK(strcmp(m1.v[i - 1].address, a->address) < 0,
				   "%s: entries not sorted or not unique at %zu", fname, i);
		if (a->owner[0] != '\0')	/* managed: its "#@" line was checked */
			FUZZ_CHECK(request_address_valid(a->address),
				   "%s: managed entry with address \"%s\"", fname, a->address);
		FUZZ_CHECK(aliasmap_find(&m1, a->address) == a,
			   "%s: aliasmap_find misses \"%s\"", fname, a->address);
	}

	aliasmap_render(&m1, fmt, &r1);
	aliasmap_digest(&m1, fmt, d1);
	aliasmap_digest(&m1, fmt, d1b);
	sha256_hex(&r1, dr);
	FUZZ_CHECK(strcmp(d1, d1b) == 0, "%s: digest changes between calls", fname);
	FUZZ_CHECK(strcmp(d1, dr) == 0, "%s: digest is not the SHA-256 of the rendering",
		   fname);

	err = NULL;
	FUZZ_CHECK(aliasmap_parse(r1.data, r1.len, fmt, &m2, &err) == 0,
		   "%s: the rendering does not parse: %s\n--- rendering ---\n%s", fname,
		   err ? err : "(null)", r1.data);
	aliasmap_render(&m2, fmt, &r2);
	FUZZ_CHECK(r1.len == r2.len && memcmp(r1.data, r2.data, r1.len) == 0,
		   "%s: rendering is not canonical (%zu entries, then %zu)\n"
		   "--- first rendering ---\n%s--- second rendering ---\n%s",
		   fname, m1.n, m2.n, r1.data, r2.data);
	aliasmap_digest(&m2, fmt, d2);
	FUZZ_CHECK(strcmp(d1, d2) == 0, "%s: digest differs after a round trip", fname);

	buf_free(&r1);
	buf_free(&r2);
	aliasmap_clear(&m1);
	aliasmap_clear(&m2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The parser takes a length; the text must not be NUL-terminated. */
	char *text = malloc(size ? size : 1);

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	check_format(text, size, MAP_FORMAT_VIRTUAL);
	check_format(text, size, MAP_FORMAT_ALIASES);
	free(text);
	return 0;
}
