/* request.c - Subject decoding and request parsing; see request.h. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>

#include "request.h"

static const char *const verb_names[] = {
	[VERB_NEW] = "new",
	[VERB_DISABLE] = "disable",
	[VERB_ENABLE] = "enable",
	[VERB_DELETE] = "delete",
	[VERB_LIST] = "list",
	[VERB_EXPIRE] = "expire",
};

const char *
request_verb_name(enum request_verb verb)
{
	return verb_names[verb];
}

int
request_verb_parse(const char *s, enum request_verb *verb)
{
	for (size_t i = 0; i < N_ELEMENTS(verb_names); i++)
		if (strcasecmp(s, verb_names[i]) == 0) {
			*verb = (enum request_verb)i;
			return 0;
		}
	return -1;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* decode_b64 - the text of a "B" word (RFC 2047 section 4.1), decoded by
 * GnuTLS under this project's acceptance rules, which are not GnuTLS's:
 *   - the text is base64 characters, then only '=' padding: GnuTLS would
 *     skip line breaks and blanks inside and take '=' in the middle;
 *   - padding may be missing or longer than needed, and the bits of an
 *     incomplete last group are dropped: GnuTLS wants exact padding and
 *     zero leftover bits.
 * So GnuTLS is given whole groups (zero bits, 'A', in place of what is
 * missing) and only the n * 6 / 8 bytes the n characters hold are kept.
 * -1 if malformed. */
static int
decode_b64(const char *text, size_t len, struct buf *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	gnutls_datum_t in, dec = { NULL, 0 };
	size_t n = 0, whole;
	char *groups;
	int rc;

	while (n < len && text[n] != '\0' && strchr(alphabet, text[n]) != NULL)
		n++;
	for (size_t i = n; i < len; i++)	/* only padding may follow */
		if (text[i] != '=')
			return -1;
	if (n == 0)
		return 0;
	whole = (n + 3) / 4 * 4;
	groups = xmalloc(whole);
	memcpy(groups, text, n);
	memset(groups + n, 'A', whole - n);
	in.data = (unsigned char *)groups;
	in.size = (unsigned)whole;
	rc = gnutls_base64_decode2(&in, &dec);
	free(groups);
	if (rc < 0)
		return -1;
	buf_append(out, dec.data, n * 6 / 8);
	gnutls_free(dec.data);
	return 0;
}

/* decode_word - decode the text of one encoded word; -1 if malformed */
static int
decode_word(char enc, const char *text, size_t len, struct buf *out)
{
	if (enc == 'q' || enc == 'Q') {
		for (size_t i = 0; i < len; i++) {
			char c = text[i];

			if (c == '_')
				c = ' ';
			else if (c == '=') {
				int hi, lo;

				if (i + 2 >= len)
					return -1;
				hi = hexval((unsigned char)text[i + 1]);
				lo = hexval((unsigned char)text[i + 2]);
				if (hi < 0 || lo < 0)
					return -1;
				c = (char)(hi * 16 + lo);
				i += 2;
			}
			buf_append(out, &c, 1);
		}
		return 0;
	}
	if (enc == 'b' || enc == 'B')
		return decode_b64(text, len, out);
	return -1;
}

/* parse_encoded_word - if s starts an RFC 2047 word, decode it into out and
 * return its length; otherwise return 0 */
static size_t
parse_encoded_word(const char *s, struct buf *out)
{
	const char *charset, *q1, *q2, *end;
	size_t mark = out->len;

	if (s[0] != '=' || s[1] != '?')
		return 0;
	charset = s + 2;
	q1 = strchr(charset, '?');
	if (q1 == NULL || q1 == charset || q1[1] == '\0' || q1[2] != '?')
		return 0;
	for (const char *p = charset; p < q1; p++)
		if (*p == ' ' || *p == '\t')
			return 0;
	q2 = q1 + 2;
	end = strstr(q2 + 1, "?=");
	if (end == NULL)
		return 0;
	for (const char *p = q2 + 1; p < end; p++)
		if (*p == ' ' || *p == '\t')
			return 0;
	if (decode_word(q1[1], q2 + 1, (size_t)(end - (q2 + 1)), out) < 0) {
		out->len = mark;
		if (out->data != NULL)	/* NULL if nothing was appended yet */
			out->data[mark] = '\0';
		return 0;
	}
	return (size_t)(end + 2 - s);
}

/* fold_len - length of the line break starting a fold at s (CRLF, CR or
 * LF followed by white space), else 0 */
static size_t
fold_len(const char *s)
{
	size_t n = s[0] == '\r' && s[1] == '\n' ? 2 :
		(s[0] == '\r' || s[0] == '\n') ? 1 : 0;

	return n > 0 && (s[n] == ' ' || s[n] == '\t') ? n : 0;
}

int
request_decode_subject(const char *raw, char **out_r, char **err_r)
{
	struct buf out = { 0 };
	const char *p = raw;
	int last_was_word = 0;

	*out_r = NULL;
	buf_append(&out, "", 0);
	if (strlen(raw) > REQUEST_SUBJECT_MAX) {
		set_error(err_r, "the subject is too long");
		goto fail;
	}
	while (*p != '\0') {
		size_t n;

		/* Folding: CRLF (or a bare LF) followed by white space. */
		if (*p == '\r' || *p == '\n') {
			const char *q = p + (p[0] == '\r' && p[1] == '\n' ? 2 : 1);

			if (*q != ' ' && *q != '\t') {
				set_error(err_r, "the subject contains a line break");
				goto fail;
			}
			p = q;
			continue;
		}
		if (*p == ' ' || *p == '\t') {
			/* White space between two encoded words is dropped. */
			const char *q = p;
			struct buf probe = { 0 };

			/* Only folds: a bare line break is refused below. */
			while (*q == ' ' || *q == '\t' || fold_len(q) > 0)
				q += *q == ' ' || *q == '\t' ? 1 : fold_len(q);
			if (last_was_word && (n = parse_encoded_word(q, &probe)) > 0) {
				buf_append(&out, probe.data, probe.len);
				buf_free(&probe);
				p = q + n;
				continue;
			}
			buf_free(&probe);
			buf_append(&out, " ", 1);
			p++;
			last_was_word = 0;
			continue;
		}
		if ((n = parse_encoded_word(p, &out)) > 0) {
			p += n;
			last_was_word = 1;
			continue;
		}
		buf_append(&out, p, 1);
		p++;
		last_was_word = 0;
	}
	for (size_t i = 0; i < out.len; i++) {
		unsigned char c = (unsigned char)out.data[i];

		if (c == '\r' || c == '\n') {
			set_error(err_r, "the subject contains a line break");
			goto fail;
		}
		if (c < 0x20 || c == 0x7f) {
			set_error(err_r, "the subject contains a control character");
			goto fail;
		}
		if (c > 0x7e) {
			set_error(err_r, "the subject contains non-ASCII characters; "
				  "alias requests use plain ASCII");
			goto fail;
		}
	}
	*out_r = xstrdup(str_trim(out.data));
	buf_free(&out);
	return 0;
fail:
	buf_free(&out);
	return -1;
}

const char *
request_name_problem(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return "is empty";
	if (len > REQUEST_NAME_MAX)
		return "is longer than 64 characters";
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c >= 'A' && c <= 'Z')
			return "contains upper-case letters";
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return "contains a character that is not allowed "
				"(use letters, digits, '.', '-' and '_')";
	}
	if (name[0] == '.' || name[len - 1] == '.')
		return "starts or ends with a dot";
	if (strstr(name, "..") != NULL)
		return "contains two dots in a row";
	return NULL;
}

int
request_name_valid(const char *name)
{
	return request_name_problem(name) == NULL;
}

int
request_domain_valid(const char *domain)
{
	size_t len = strlen(domain), label = 0;

	if (len == 0 || len > 253 || domain[0] == '.' || domain[len - 1] == '.' ||
	    domain[len - 1] == '-')
		return 0;
	for (const char *p = domain; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

int
request_address_valid(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *local;
	int ok;

	if (at == NULL || strchr(addr, '@') != at)
		return 0;
	local = str_lower(xstrndup(addr, (size_t)(at - addr)));
	ok = request_name_valid(local) && request_domain_valid(at + 1);
	free(local);
	return ok;
}

int
request_target_valid(const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || at == addr || strchr(addr, '@') != at ||
	    at - addr > 64 || !request_domain_valid(at + 1))
		return 0;
	/* Nothing Postfix could read as a command, file or include. */
	if (addr[0] == '|' || addr[0] == '/' || addr[0] == ':' ||
	    addr[0] == '-' || addr[0] == '.')
		return 0;
	for (const char *p = addr; p < at; p++) {
		unsigned char c = (unsigned char)*p;

		if (!isalnum(c) && c != '.' && c != '-' && c != '_' && c != '+' &&
		    c != '=')
			return 0;
	}
	return 1;
}

/* shorten - a bounded, printable copy of user input for error texts;
 * anything but printable ASCII, and '%' (SMTP reply texts), becomes '?' */
static char *
shorten(const char *s)
{
	char *out = strlen(s) <= 40 ? xstrdup(s) : xasprintf("%.37s...", s);

	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == '%')
			*p = '?';
	return out;
}

/* parse_target - split NAME[@DOMAIN] and check both halves */
static int
parse_target(const char *arg, const char *default_domain,
	     const struct strlist *domains, struct request *req, char **err_r)
{
	char *copy = str_lower(xstrdup(arg));
	char *at = strchr(copy, '@');
	const char *problem;
	char *shown = NULL;

	if (at != NULL) {
		if (strchr(at + 1, '@') != NULL) {
			shown = shorten(arg);
			set_error(err_r, "alias \"%s\" has more than one '@'", shown);
			goto fail;
		}
		*at = '\0';
		if (!strlist_contains(domains, at + 1, true)) {
			shown = shorten(at + 1);
			set_error(err_r, "domain \"%s\" is not served here", shown);
			goto fail;
		}
	}
	if ((problem = request_name_problem(copy)) != NULL) {
		shown = shorten(copy);
		set_error(err_r, "alias name \"%s\" %s", shown, problem);
		goto fail;
	}
	req->name = xstrdup(copy);
	req->domain = str_lower(xstrdup(at != NULL ? at + 1 : default_domain));
	free(copy);
	return 0;
fail:
	free(shown);
	free(copy);
	return -1;
}

/* A unit word of a lifetime and its length in seconds. */
static const struct {
	const char *word;
	long long seconds;
} duration_units[] = {
	{ "d", REQUEST_DAY }, { "day", REQUEST_DAY }, { "days", REQUEST_DAY },
	{ "w", 7 * REQUEST_DAY }, { "week", 7 * REQUEST_DAY }, { "weeks", 7 * REQUEST_DAY },
	{ "m", 30 * REQUEST_DAY }, { "month", 30 * REQUEST_DAY },
	{ "months", 30 * REQUEST_DAY },
	{ "y", 365 * REQUEST_DAY }, { "year", 365 * REQUEST_DAY },
	{ "s", 1 }, { "sec", 1 }, { "second", 1 }, { "seconds", 1 },
};

int
request_duration_parse(const char *word, long long *seconds, char **err_r)
{
	size_t n = strspn(word, "0123456789");
	long long v = 0;
	char *shown;

	for (size_t i = 0; i < n && i < 9; i++)
		v = v * 10 + (word[i] - '0');
	if (n > 0 && n < 9 && word[n] != '\0')
		for (size_t i = 0; i < N_ELEMENTS(duration_units); i++)
			if (strcasecmp(word + n, duration_units[i].word) == 0) {
				v *= duration_units[i].seconds;
				if (v < 1 || v > REQUEST_LIFETIME_MAX) {
					set_error(err_r, "a lifetime is at least 1 day and at "
						  "most 365 days");
					return -1;
				}
				*seconds = v;
				return 0;
			}
	shown = shorten(word);
	set_error(err_r, "\"%s\" is not a lifetime: write a number and d, w or m "
		  "(days, weeks, months), e.g. 30d", shown);
	free(shown);
	return -1;
}

void
request_duration_format(long long s, char *out, size_t size)
{
	if (s % (7 * REQUEST_DAY) == 0 && s % (30 * REQUEST_DAY) != 0)
		snprintf(out, size, "%lld week%s", s / (7 * REQUEST_DAY),
			 s == 7 * REQUEST_DAY ? "" : "s");
	else if (s % REQUEST_DAY == 0)
		snprintf(out, size, "%lld day%s", s / REQUEST_DAY, s == REQUEST_DAY ? "" : "s");
	else
		snprintf(out, size, "%lld second%s", s, s == 1 ? "" : "s");
}

void
request_name_from_random(const unsigned char rnd[REQUEST_GEN_BYTES], char *out)
{
	static const char cons[] = REQUEST_GEN_ALPHABET_C, vow[] = REQUEST_GEN_ALPHABET_V;
	unsigned long long bits = 0;
	char *o = out;

	for (size_t i = 0; i < REQUEST_GEN_BYTES; i++)
		bits = bits << 8 | rnd[i];
	/* 6 bits a syllable: 4 pick the consonant, 2 the vowel. */
	for (int k = 0; k < REQUEST_GEN_SYLLABLES; k++) {
		unsigned v = (unsigned)(bits >> (6 * k)) & 63;

		if (k == REQUEST_GEN_SYLLABLES / 2)
			*o++ = REQUEST_GEN_SEP;
		*o++ = cons[v >> 2];
		*o++ = vow[v & 3];
	}
	*o = '\0';
}

/* next_word - cut the first word off *rest (NUL-terminated in place) */
static char *
next_word(char **rest)
{
	char *w = *rest, *r = w + strcspn(w, " \t");

	if (*r != '\0')
		*r++ = '\0';
	*rest = str_trim(r);
	return w;
}

/* The placeholder for "a name chosen for you" where a name goes. */
#define GENERATE_WORD "*"

int
request_parse(const char *subject, const char *default_domain,
	      const struct strlist *domains, struct request *req, char **err_r)
{
	char *copy = xstrdup(subject);
	char *s = str_trim(copy), *rest, *arg;
	int rc = -1, new_for = 0;

	memset(req, 0, sizeof(*req));
	if (*s == '\0') {
		set_error(err_r, "the subject is empty: write \"new NAME\", \"disable NAME\", "
			  "\"enable NAME\", \"delete NAME\" or \"list\"");
		goto out;
	}
	rest = s;
	s = next_word(&rest);
	/* "new-for" is "new" with a lifetime; both later verbs, alone, are
	 * still what they always were: a name. */
	if (strcasecmp(s, "new-for") == 0) {
		new_for = 1;
		req->verb = VERB_NEW;
	}
	if ((!new_for && request_verb_parse(s, &req->verb) < 0) ||
	    ((new_for || req->verb == VERB_EXPIRE) && *rest == '\0')) {
		char *shown;

		if (*rest != '\0') {
			shown = shorten(s);
			set_error(err_r, "unknown command \"%s\": use new, new-for, disable, "
				  "enable, delete, expire or list", shown);
			free(shown);
			goto out;
		}
		/* A lone word is a name: "NAME" means "new NAME". */
		req->verb = VERB_NEW;
		rc = parse_target(s, default_domain, domains, req, err_r);
		if (rc == 0)
			req->note = xstrdup("");
		goto out;
	}
	if (req->verb == VERB_LIST) {
		if (*rest != '\0') {
			set_error(err_r, "\"list\" takes no arguments");
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (new_for) {
		/* new-for LIFETIME NAME|* [note] */
		if (request_duration_parse(next_word(&rest), &req->lifetime, err_r) < 0)
			goto out;
		if (*rest == '\0') {
			set_error(err_r, "\"new-for\" needs a lifetime and an alias name "
				  "(or * for a name chosen for you)");
			goto out;
		}
	}
	if (*rest == '\0') {
		if (req->verb == VERB_NEW) {
			/* "new" alone: a name chosen for you. */
			req->generate = 1;
			req->domain = str_lower(xstrdup(default_domain));
			req->note = xstrdup("");
			rc = 0;
			goto out;
		}
		set_error(err_r, "\"%s\" needs an alias name", request_verb_name(req->verb));
		goto out;
	}
	arg = next_word(&rest);
	if (req->verb == VERB_EXPIRE) {
		/* expire NAME LIFETIME|never */
		char *when = *rest != '\0' ? next_word(&rest) : NULL;

		if (when == NULL || *rest != '\0') {
			set_error(err_r, "write \"expire NAME 30d\" (d, w or m: days, weeks, "
				  "months) or \"expire NAME never\"");
			goto out;
		}
		if (strcasecmp(when, "never") == 0)
			req->lifetime = REQUEST_LIFETIME_NEVER;
		else if (request_duration_parse(when, &req->lifetime, err_r) < 0)
			goto out;
	} else if (req->verb != VERB_NEW && *rest != '\0') {
		set_error(err_r, "\"%s\" takes exactly one alias name",
			  request_verb_name(req->verb));
		goto out;
	}
	if (strlen(rest) > REQUEST_NOTE_MAX) {
		set_error(err_r, "the note is longer than %d characters", REQUEST_NOTE_MAX);
		goto out;
	}
	if (req->verb == VERB_NEW && strcmp(arg, GENERATE_WORD) == 0) {
		req->generate = 1;
		req->domain = str_lower(xstrdup(default_domain));
	} else if (parse_target(arg, default_domain, domains, req, err_r) < 0)
		goto out;
	if (req->verb == VERB_NEW)
		req->note = xstrdup(rest);
	rc = 0;
out:
	if (rc < 0)
		request_clear(req);
	free(copy);
	return rc;
}

void
request_clear(struct request *req)
{
	free(req->name);
	free(req->domain);
	free(req->note);
	req->name = req->domain = req->note = NULL;
	req->generate = 0;
	req->lifetime = 0;
}

size_t
request_extension_cut(const char *local, size_t len, const char *delimiters)
{
	static const char *const whole[] = { "postmaster", "mailer-daemon", "double-bounce" };
	size_t cut;

	if (delimiters == NULL || *delimiters == '\0')
		return len;
	/* Postfix's split_addr: these are never split ... */
	for (size_t i = 0; i < N_ELEMENTS(whole); i++)
		if (len == strlen(whole[i]) && strncasecmp(local, whole[i], len) == 0)
			return len;
	/* ... nor, with "-" a delimiter, owner-foo and foo-request
	 * (owner_request_special = yes, the default) ... */
	if (strchr(delimiters, '-') != NULL &&
	    ((len >= 6 && strncasecmp(local, "owner-", 6) == 0) ||
	     (len > 8 && strncasecmp(local + len - 8, "-request", 8) == 0)))
		return len;
	/* ... nor where the base would be empty.  The extension starts at
	 * the first character of any delimiter. */
	for (cut = 0; cut < len && strchr(delimiters, local[cut]) == NULL; cut++)
		;
	return cut == 0 ? len : cut;
}

char *
request_address_base(const char *address, const char *delimiters)
{
	size_t len = strcspn(address, "@"), cut;

	cut = request_extension_cut(address, len, delimiters);
	if (cut == len)
		return NULL;
	return xasprintf("%.*s%s", (int)cut, address, address + len);
}

char *
request_recipient_base(const char *rcpt, const char *delimiters)
{
	const char *at = strrchr(rcpt, '@');
	struct buf local = { 0 };
	char *res;
	size_t cut;

	if (at == NULL)
		at = rcpt + strlen(rcpt);
	if (rcpt[0] == '"' && at > rcpt + 1 && at[-1] == '"') {
		for (const char *p = rcpt + 1; p < at - 1; p++) {
			if (*p == '\\' && p + 1 < at - 1)
				p++;
			buf_append(&local, p, 1);
		}
	} else
		buf_append(&local, rcpt, (size_t)(at - rcpt));
	cut = request_extension_cut(local.data ? local.data : "", local.len, delimiters);
	res = xasprintf("%.*s%s", (int)cut, local.data ? local.data : "", at);
	buf_free(&local);
	return res;
}
