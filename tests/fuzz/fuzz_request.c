/* fuzz_request.c - libFuzzer target: the request Subject.
 *
 * The input is a raw Subject header value.  It goes through
 * request_decode_subject() (unfolding, RFC 2047) and, when that succeeds,
 * request_parse() with the default domain example.org and the served
 * domains example.org and example.net.  The raw value is also given to
 * request_parse() directly, to check its error texts on any bytes.
 *
 * Postconditions (request.h, contract §4):
 *  - decoding succeeds with printable ASCII no longer than the limit, or
 *    fails with a reason;
 *  - a parsed request has a valid lower-case name, a served domain, and a
 *    printable note of at most REQUEST_NOTE_MAX characters ("" when none);
 *    "list" has neither name nor domain;
 *  - every error text is non-empty and holds no CR, LF or '%'.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "util.h"
#include "fuzz.h"

static struct strlist domains;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	strlist_add(&domains, "example.org");
	strlist_add(&domains, "example.net");
	return 0;
}

static void
check_error(const char *what, const char *err)
{
	FUZZ_CHECK(err != NULL && *err != '\0', "%s failed without a reason", what);
	FUZZ_CHECK(fuzz_reply_safe(err), "%s: error text has CR, LF or '%%': \"%s\"",
		   what, err);
	/* Errors echo at most a bounded part of the input. */
	FUZZ_CHECK(strlen(err) <= 400, "%s: error text of %zu bytes", what, strlen(err));
}

/* check_parse - run request_parse and check its postconditions; decoded
 * says whether subject came out of request_decode_subject (then the note
 * must be printable) */
static void
check_parse(const char *subject, int decoded)
{
	struct request req;
	char *err = NULL;
	enum request_verb verb;

	if (request_parse(subject, "example.org", &domains, &req, &err) < 0) {
		check_error("request_parse", err);
		FUZZ_CHECK(req.name == NULL && req.domain == NULL && req.note == NULL,
			   "request_parse failed but left fields set");
		free(err);
		return;
	}
	FUZZ_CHECK(err == NULL, "request_parse succeeded and set an error");
	FUZZ_CHECK(request_verb_parse(request_verb_name(req.verb), &verb) == 0 &&
		   verb == req.verb, "verb %d does not round-trip", (int)req.verb);
	if (req.verb == VERB_LIST) {
		FUZZ_CHECK(req.name == NULL && req.domain == NULL,
			   "list with a name or domain");
	} else if (req.generate) {
		/* "new" without a name: the server picks one, in a served domain */
		FUZZ_CHECK(req.verb == VERB_NEW, "a generated name on a %s request",
			   request_verb_name(req.verb));
		FUZZ_CHECK(req.name == NULL, "a generated name with a name \"%s\"", req.name);
		FUZZ_CHECK(req.domain != NULL &&
			   strlist_contains(&domains, req.domain, false),
			   "domain \"%s\" is not served (or not lower case)",
			   req.domain ? req.domain : "(null)");
	} else {
		FUZZ_CHECK(req.name != NULL && request_name_valid(req.name),
			   "invalid name \"%s\"", req.name ? req.name : "(null)");
		FUZZ_CHECK(req.domain != NULL &&
			   strlist_contains(&domains, req.domain, false),
			   "domain \"%s\" is not served (or not lower case)",
			   req.domain ? req.domain : "(null)");
		{
			char *addr = xasprintf("%s@%s", req.name, req.domain);

			FUZZ_CHECK(request_address_valid(addr), "address %s invalid", addr);
			free(addr);
		}
	}
	if (req.verb != VERB_NEW && req.verb != VERB_EXPIRE)
		FUZZ_CHECK(req.lifetime == 0, "a lifetime on a %s request",
			   request_verb_name(req.verb));
	if (req.verb == VERB_NEW) {
		FUZZ_CHECK(req.note != NULL, "new without a note");
		FUZZ_CHECK(strlen(req.note) <= REQUEST_NOTE_MAX, "note of %zu characters",
			   strlen(req.note));
		if (decoded)
			FUZZ_CHECK(fuzz_printable(req.note), "note not printable ASCII");
	} else {
		FUZZ_CHECK(req.note == NULL, "note on a %s request",
			   request_verb_name(req.verb));
	}
	request_clear(&req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *raw = fuzz_cstr(data, size), *decoded = NULL, *err = NULL;

	if (request_decode_subject(raw, &decoded, &err) == 0) {
		FUZZ_CHECK(decoded != NULL && err == NULL, "decode: bad outputs");
		FUZZ_CHECK(fuzz_printable(decoded), "decoded subject not printable ASCII");
		FUZZ_CHECK(strlen(decoded) <= REQUEST_SUBJECT_MAX,
			   "decoded subject of %zu bytes", strlen(decoded));
		check_parse(decoded, 1);
		free(decoded);
	} else {
		FUZZ_CHECK(decoded == NULL, "decode failed but returned text");
		check_error("request_decode_subject", err);
		free(err);
	}
	/* The parser on its own, on any bytes: error texts stay safe. */
	check_parse(raw, 0);
	free(raw);
	return 0;
}
