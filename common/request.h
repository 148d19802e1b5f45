/* request.h - what a user asks for in the Subject of a request mail.
 *
 * Pure functions, no I/O: RFC 2047 decoding, verb parsing and the alias
 * name rules of the README ("Requests").  Error texts are sentences a person can
 * act on; they go into SMTP replies unchanged, so they never contain CR,
 * LF or '%' and echo at most a bounded part of the user's input.
 */
#ifndef MA_REQUEST_H
#define MA_REQUEST_H

#include "util.h"

#define REQUEST_NAME_MAX 64
#define REQUEST_NOTE_MAX 200
#define REQUEST_SUBJECT_MAX 998

enum request_verb {
	VERB_NEW,
	VERB_DISABLE,
	VERB_ENABLE,
	VERB_DELETE,
	VERB_LIST,
	VERB_EXPIRE,		/* set or clear an alias's lifetime */
};

/* Lifetimes, in seconds.  NEVER clears one ("expire NAME never"). */
#define REQUEST_LIFETIME_NEVER (-1LL)
#define REQUEST_DAY 86400LL
#define REQUEST_LIFETIME_MAX (365 * REQUEST_DAY)

/* A generated name: REQUEST_GEN_SYLLABLES consonant-vowel syllables from
 * 16 consonants and 4 vowels (6 bits each), a '.' after the first half
 * (not '-' or '+': those are common recipient_delimiter values, and
 * Postfix would read the second half as an address extension): 48 bits
 * from REQUEST_GEN_BYTES random bytes, e.g. "bakodemi.lorafuze". */
#define REQUEST_GEN_SEP '.'
#define REQUEST_GEN_SYLLABLES 8
#define REQUEST_GEN_BYTES 6
#define REQUEST_GEN_LEN (2 * REQUEST_GEN_SYLLABLES + 1)
#define REQUEST_GEN_ALPHABET_C "bdfghjklmnprstvz"
#define REQUEST_GEN_ALPHABET_V "aeio"

struct request {
	enum request_verb verb;
	char *name;		/* lowercase local part; NULL for list */
	char *domain;		/* lowercase served domain; NULL for list */
	char *note;		/* new only; "" when none */
	int generate;		/* new: no name given, the server picks one
				 * (name NULL, domain set) */
	long long lifetime;	/* new: seconds, 0 none; expire: seconds or
				 * REQUEST_LIFETIME_NEVER */
};

/* Unfold and RFC 2047-decode a raw Subject value.  Returns 0 and a
 * caller-owned printable-ASCII string in *out_r, or -1 and a reason. */
int request_decode_subject(const char *raw, char **out_r, char **err_r);

/* Parse a decoded subject.  default_domain is the request address's
 * domain; domains the served ones.  Returns 0 and fills *req (release
 * with request_clear), or -1 and a reason in *err_r. */
int request_parse(const char *subject, const char *default_domain,
		  const struct strlist *domains, struct request *req,
		  char **err_r);
void request_clear(struct request *req);

/* Name rules: [a-z0-9._-], 1..64, no leading, trailing or double dot.
 * Expects lowercase.  1 if valid. */
int request_name_valid(const char *name);
/* Returns NULL if valid, else a static reason sentence fragment. */
const char *request_name_problem(const char *name);
/* LDH labels separated by dots.  1 if valid. */
int request_domain_valid(const char *domain);
/* local@domain where local is a valid alias name.  1 if valid. */
int request_address_valid(const char *addr);
/* A safe delivery target: one address, conservative characters, never a
 * command, file or include.  1 if valid. */
int request_target_valid(const char *addr);

/* Postfix's address extension (recipient_delimiter, postconf(5)): the
 * length of the base of the local part local[0..len), cut at the first
 * character of delimiters; len when Postfix does not split it (no
 * delimiter in it or at its start, postmaster, mailer-daemon,
 * double-bounce, and with "-" a delimiter owner-* and *-request). */
size_t request_extension_cut(const char *local, size_t len, const char *delimiters);
/* "user@domain" for "user+ext@domain" as Postfix strips it, or NULL when
 * Postfix would not strip address.  Caller frees. */
char *request_address_base(const char *address, const char *delimiters);

/* A recipient as Postfix resolves it: a quoted local part unquoted, and
 * the address extension cut off as request_extension_cut does (delimiters:
 * Postfix's recipient_delimiter; may be empty), so that "makealias+x@d"
 * and "\"makealias\"@d" compare equal to the request address they reach.
 * rcpt is lowercase without <>.  Caller frees. */
char *request_recipient_base(const char *rcpt, const char *delimiters);

/* A lifetime word: N followed by d/day/days, w/week/weeks, m/month/months
 * (30 days), y/year (365 days), or s/sec/seconds (accepted here; the sync
 * daemon refuses it unless expiry_test_seconds is set).  1..REQUEST_
 * LIFETIME_MAX.  0 and *seconds, or -1 and a reason. */
int request_duration_parse(const char *word, long long *seconds, char **err_r);
/* "30 days", "2 weeks", "90 seconds": a lifetime for people. */
void request_duration_format(long long seconds, char *out, size_t size);

/* The generated name for REQUEST_GEN_BYTES random bytes (out holds at
 * least REQUEST_GEN_LEN + 1 bytes).  Pure: the caller draws the bytes
 * from the system's CSPRNG (getrandom). */
void request_name_from_random(const unsigned char rnd[REQUEST_GEN_BYTES], char *out);

const char *request_verb_name(enum request_verb verb);
/* Parse "new", "disable", ... into *verb; 0 on success, -1 unknown. */
int request_verb_parse(const char *s, enum request_verb *verb);

#endif
