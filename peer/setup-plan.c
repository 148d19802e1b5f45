/* setup-plan.c - postfix-setup, phase 2: one change per main.cf
 * parameter, master.cf -o option and map, in a safe order, and the
 * problems that forbid applying; see setup-private.h. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "setup-private.h"

#define LIST_SEP POSTFIX_LIST_SEP

/* item_compact - an item without white space, as postconf -P must write it
 * ("{ inet:x, default_action=accept }" -> "{inet:x,default_action=accept}");
 * NULL if that is impossible (white space inside a nested item) */
static char *
item_compact(const char *item)
{
	struct strlist inner = { 0 };
	struct buf b = { 0 };
	size_t len = strlen(item);
	char *body, *res = NULL;

	if (strpbrk(item, LIST_SEP) == NULL)
		return xstrdup(item);
	if (len < 2 || item[0] != '{' || item[len - 1] != '}')
		return NULL;
	body = xstrndup(item + 1, len - 2);
	strlist_split_postfix(body, &inner);
	buf_append(&b, "{", 1);
	for (size_t i = 0; i < inner.n; i++) {
		if (strpbrk(inner.v[i], LIST_SEP) != NULL)
			goto out;
		buf_appendf(&b, "%s%s", i ? "," : "", inner.v[i]);
	}
	buf_append(&b, "}", 1);
	res = xstrdup(b.data);
out:
	buf_free(&b);
	strlist_clear(&inner);
	free(body);
	return res;
}

/* is_spec - is the list item spec, or proxy:spec? */
static int
is_spec(const char *item, const char *spec)
{
	if (strncmp(item, "proxy:", 6) == 0)
		item += 6;
	return strcmp(item, spec) == 0;
}

/* map_listed - is spec (or proxy:spec) an item of the list value? */
static int
map_listed(const char *value, const char *spec)
{
	struct strlist l = { 0 };
	int found = 0;

	strlist_split_postfix(value, &l);
	for (size_t i = 0; i < l.n && !found; i++)
		found = is_spec(l.v[i], spec);
	strlist_clear(&l);
	return found;
}

/* check_listed - does the restriction list hold check_recipient_access spec? */
static int
check_listed(const char *value, const char *spec)
{
	struct strlist l = { 0 };
	int found = 0;

	strlist_split_postfix(value, &l);
	for (size_t i = 0; i + 1 < l.n && !found; i++)
		found = strcasecmp(l.v[i], "check_recipient_access") == 0 &&
			is_spec(l.v[i + 1], spec);
	strlist_clear(&l);
	return found;
}

/* word_listed - is word an item of the list value? */
static int
word_listed(const char *value, const char *word)
{
	struct strlist l = { 0 };
	int found;

	strlist_split_postfix(value, &l);
	found = strlist_contains(&l, word, true);
	strlist_clear(&l);
	return found;
}

/* refs_param - does value mention $name, ${name} or $(name)? */
static int
refs_param(const char *value, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = strchr(value, '$'); p; p = strchr(p + 1, '$')) {
		if (strncmp(p + 1, name, n) == 0 &&
		    !(p[1 + n] == '_' || (p[1 + n] >= 'a' && p[1 + n] <= 'z') ||
		      (p[1 + n] >= 'A' && p[1 + n] <= 'Z') ||
		      (p[1 + n] >= '0' && p[1 + n] <= '9')))
			return 1;
		if ((p[1] == '{' || p[1] == '(') && strncmp(p + 2, name, n) == 0 &&
		    (p[2 + n] == '}' || p[2 + n] == ')' || p[2 + n] == ':' || p[2 + n] == '?'))
			return 1;
	}
	return 0;
}

/* milter_listed - is our milter in the milter list value? */
static int
milter_listed(const struct setup *s, const char *value)
{
	struct strlist l = { 0 };
	int found = 0;

	strlist_split_postfix(value, &l);
	for (size_t i = 0; i < l.n && !found; i++) {
		char *name, *canon;

		if (l.v[i][0] == '{') {
			struct strlist inner = { 0 };
			char *body = xstrndup(l.v[i] + 1, strlen(l.v[i]) - 1);

			body[strcspn(body, "}")] = '\0';
			strlist_split_postfix(body, &inner);
			name = xstrdup(inner.n ? inner.v[0] : "");
			strlist_clear(&inner);
			free(body);
		} else
			name = xstrdup(l.v[i]);
		canon = setup_milter_canon(name, s->queue_dir);
		found = strcmp(canon, s->milter_canon) == 0;
		free(canon);
		free(name);
	}
	strlist_clear(&l);
	return found;
}

static struct ledit *
ledit_get(struct setup *s, int master, const char *key, const char *label,
	  const char *orig, int existed)
{
	struct ledit *e;

	for (size_t i = 0; i < s->nled; i++)
		if (s->led[i].master == master && strcmp(s->led[i].key, key) == 0)
			return &s->led[i];
	s->led = xrealloc(s->led, (s->nled + 1) * sizeof(*s->led));
	e = &s->led[s->nled++];
	memset(e, 0, sizeof(*e));
	e->master = master;
	e->key = xstrdup(key);
	e->label = xstrdup(label);
	e->orig = str_trim(xstrdup(orig ? orig : ""));
	e->existed = existed;
	return e;
}

static struct change *
change_add(struct setup *s, enum ch_kind kind, const char *key, const char *value,
	   char *text /* taken */)
{
	struct change *c;

	s->ch = xrealloc(s->ch, (s->nch + 1) * sizeof(*s->ch));
	c = &s->ch[s->nch++];
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->key = xstrdup(key);
	c->value = xstrdup(value);
	c->text = text;
	c->status = "pending";
	return c;
}

/* main_edit - ledit for a main.cf list parameter, its raw value read */
static struct ledit *
main_edit(struct setup *s, const char *param, const char *raw)
{
	char *label = xasprintf("main.cf: %s", param);
	struct ledit *e = ledit_get(s, 0, param, label, raw, 1);

	free(label);
	return e;
}

static struct ledit *
master_edit(struct setup *s, const struct service *sv, const char *param,
	    const char *raw, int existed)
{
	char *key = xasprintf("%s/%s", sv->key, param);
	char *label = xasprintf("master.cf: %s: -o %s", sv->key, param);
	struct ledit *e = ledit_get(s, 1, key, label, raw, existed);

	free(key);
	free(label);
	return e;
}

/* our_maps_text - the generated request_map and transport_map sources */
static void
our_maps_text(struct setup *s, char **req_expect, char **tr_expect)
{
	static const char head[] =
		"# Generated by milter-aliasctl postfix-setup from milter-alias.conf;\n"
		"# do not edit: run postfix-setup again after changing request_address.\n";
	struct buf r = { 0 }, re = { 0 }, t = { 0 }, te = { 0 };
	const struct strlist *ra = &s->conf->request_addresses;

	buf_appendf(&r, "%s# Each request address is a recipient Postfix accepts, and "
		    "its mail is discarded\n# (the milter has acted on it before "
		    "the end of the SMTP transaction).\n", head);
	for (size_t i = 0; i < ra->n; i++) {
		size_t local = strcspn(ra->v[i], "@");

		buf_appendf(&r, "%s %.*s@" SETUP_DISCARD_DOMAIN "\n", ra->v[i],
			    (int)local, ra->v[i]);
		buf_appendf(&re, "%s\t%.*s@" SETUP_DISCARD_DOMAIN "\n", ra->v[i],
			    (int)local, ra->v[i]);
	}
	buf_appendf(&t, "%s" SETUP_DISCARD_DOMAIN " discard:\n", head);
	buf_appendf(&te, SETUP_DISCARD_DOMAIN "\tdiscard:\n");
	s->req_text = xstrdup(r.data);
	s->tr_text = xstrdup(t.data);
	*req_expect = xstrdup(re.data);
	*tr_expect = xstrdup(te.data);
	buf_free(&r);
	buf_free(&re);
	buf_free(&t);
	buf_free(&te);
}

/* plan_own_maps - request_map and transport_map in state_dir */
static void
plan_own_maps(struct setup *s)
{
	char *req_expect, *tr_expect;
	struct stat st;

	our_maps_text(s, &req_expect, &tr_expect);
	if (!setup_own_map_current(s, s->req_path, s->req_text, s->req_spec, s->req_db,
			     req_expect)) {
		struct buf b = { 0 };
		struct change *c;

		for (size_t i = 0; i < s->conf->request_addresses.n; i++) {
			const char *a = s->conf->request_addresses.v[i];

			buf_appendf(&b, "%s%s -> %.*s@" SETUP_DISCARD_DOMAIN, i ? ", " : "",
				    a, (int)strcspn(a, "@"), a);
		}
		c = change_add(s, CH_MAP, s->req_path, s->req_text,
			       xasprintf("map: %s: write and build (%s), so that smtpd "
					 "accepts the request address%s", s->req_spec,
					 b.data, s->conf->request_addresses.n > 1 ? "es" : ""));
		c->spec = xstrdup(s->req_spec);
		c->db = xstrdup(s->req_db);
		c->error = req_expect;	/* the expected probe answer, until applied */
		req_expect = NULL;
		buf_free(&b);
	}
	if (!setup_own_map_current(s, s->tr_path, s->tr_text, s->tr_spec, s->tr_db, tr_expect)) {
		struct change *c = change_add(s, CH_MAP, s->tr_path, s->tr_text,
			xasprintf("map: %s: write and build (" SETUP_DISCARD_DOMAIN
				  " -> discard:)", s->tr_spec));

		c->spec = xstrdup(s->tr_spec);
		c->db = xstrdup(s->tr_db);
		c->error = tr_expect;
		tr_expect = NULL;
	}
	free(req_expect);
	free(tr_expect);
	for (size_t i = 0; i < s->nch; i++)
		if (s->ch[i].kind == CH_MAP &&
		    (stat(s->conf->state_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
			setup_problem(s, "state_dir %s does not exist: create it (the package "
				"does) and start milter-alias-peer first", s->conf->state_dir);
}

/* plan_maps - virtual_alias_maps (or alias_maps) and transport_maps */
static int
plan_maps(struct setup *s, char **err_r)
{
	char *raw = NULL, *x = NULL;
	struct ledit *e;

	/* The request map first: it holds only the request addresses, so it
	 * shadows nothing, and no catch-all elsewhere can swallow a request. */
	if (setup_pc_value(s, "virtual_alias_maps", 0, &raw, err_r) < 0 ||
	    setup_pc_value(s, "virtual_alias_maps", 1, &x, err_r) < 0)
		goto fail;
	if (!map_listed(x, s->req_spec)) {
		e = main_edit(s, "virtual_alias_maps", raw);
		strlist_add(&e->front, s->req_spec);
	}
	/* The alias map last: every other map keeps precedence. */
	if (strcmp(s->alias_param, "virtual_alias_maps") != 0) {
		xfree(&raw);
		xfree(&x);
		if (setup_pc_value(s, s->alias_param, 0, &raw, err_r) < 0 ||
		    setup_pc_value(s, s->alias_param, 1, &x, err_r) < 0)
			goto fail;
	}
	if (!map_listed(x, s->alias_spec)) {
		e = main_edit(s, s->alias_param, raw);
		strlist_add(&e->back, s->alias_spec);
	}
	setup_check_daemon_map(s, "the alias map", s->alias_spec, s->alias_db);
	xfree(&raw);
	xfree(&x);

	/* transport_maps may be empty; ours first, for the same reason, and
	 * so that a "*" wildcard elsewhere does not relay requests. */
	if (setup_pc_value(s, "transport_maps", 0, &raw, err_r) < 0 ||
	    setup_pc_value(s, "transport_maps", 1, &x, err_r) < 0)
		goto fail;
	if (!map_listed(x, s->tr_spec)) {
		e = main_edit(s, "transport_maps", raw);
		strlist_add(&e->front, s->tr_spec);
	}
	free(raw);
	free(x);
	return 0;
fail:
	free(raw);
	free(x);
	return -1;
}

/* plan_access - the access map in smtpd_recipient_restrictions (main.cf
 * and every smtpd service that overrides it), and the restriction class */
static int
plan_access(struct setup *s, char **err_r)
{
	char *raw = NULL, *x = NULL, *check = xasprintf("check_recipient_access %s",
							 s->access_spec);
	struct ledit *e;
	int rc = -1;

	if (setup_pc_value(s, "smtpd_recipient_restrictions", 0, &raw, err_r) < 0 ||
	    setup_pc_value(s, "smtpd_recipient_restrictions", 1, &x, err_r) < 0)
		goto out;
	if (!check_listed(x, s->access_spec)) {
		e = main_edit(s, "smtpd_recipient_restrictions", raw);
		strlist_add(&e->front, check);
		if (*str_trim(raw) == '\0') {
			/* Empty: Postfix's default applied.  Write it out after ours. */
			char *def = setup_pc_default(s, "smtpd_recipient_restrictions");

			if (*def) {
				xfree(&e->orig);
				e->orig = xstrdup(def);
				e->why = xasprintf("it was empty, so Postfix's default applied: "
						   "written out explicitly after ours: %s", def);
			} else
				e->why = xstrdup("it was empty, and Postfix's default "
						 "(postconf -d) is empty too: nothing else "
						 "to keep; smtpd_relay_restrictions keeps "
						 "doing relay control");
			free(def);
		}
	}
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct service *sv = &s->svc[i];
		const char *v = setup_service_param(sv, "smtpd_recipient_restrictions");
		char *key, *sx = NULL;
		int r;

		if (v == NULL || sv->command == NULL || strcmp(sv->command, "smtpd") != 0)
			continue;
		key = xasprintf("%s/smtpd_recipient_restrictions", sv->key);
		r = setup_pc_master_get(s, key, 1, &sx, err_r);
		free(key);
		if (r < 0)
			goto out;
		if (!check_listed(sx ? sx : "", s->access_spec)) {
			e = master_edit(s, sv, "smtpd_recipient_restrictions", v, 1);
			strlist_add(&e->front, check);
			e->why = xstrdup("the service overrides main.cf's list, and "
					 "disabled aliases must be refused on every service");
		}
		free(sx);
	}
	xfree(&raw);
	xfree(&x);

	if (setup_pc_value(s, "smtpd_restriction_classes", 0, &raw, err_r) < 0 ||
	    setup_pc_value(s, "smtpd_restriction_classes", 1, &x, err_r) < 0)
		goto out;
	if (!word_listed(x, SETUP_REQUEST_CLASS)) {
		e = main_edit(s, "smtpd_restriction_classes", raw);
		strlist_add(&e->back, SETUP_REQUEST_CLASS);
	}
	xfree(&raw);
	if (setup_pc_get(s, SETUP_REQUEST_CLASS, 0, &raw, err_r) < 0)
		goto out;
	if (raw == NULL || strcmp(raw, REQUEST_CLASS_VALUE) != 0)
		s->class_was = xstrdup(raw ? raw : "");
	xfree(&raw);
	if (setup_pc_get(s, ELSEWHERE_PARAM, 0, &raw, err_r) < 0)
		goto out;
	if (raw == NULL || strcmp(raw, ELSEWHERE_VALUE) != 0)
		s->elsewhere_was = xstrdup(raw ? raw : "");
	setup_check_daemon_map(s, "the access map", s->access_spec, s->access_db);
	rc = 0;
out:
	free(raw);
	free(x);
	free(check);
	return rc;
}

/* plan_senders - the sender-login map in smtpd_sender_login_maps, where
 * that parameter is in use (main.cf and every smtpd service that sets its
 * own), last, so the administrator's maps keep precedence */
static int
plan_senders(struct setup *s, char **err_r)
{
	static const char param[] = "smtpd_sender_login_maps";
	char *raw = NULL, *x = NULL;
	int used = 0, rc = -1;
	struct ledit *e;

	if (setup_pc_value(s, param, 0, &raw, err_r) < 0 || setup_pc_value(s, param, 1, &x, err_r) < 0)
		goto out;
	if (*str_trim(x) != '\0') {
		used = 1;
		if (!map_listed(x, s->senders_spec)) {
			e = main_edit(s, param, raw);
			strlist_add(&e->back, s->senders_spec);
			e->why = xstrdup("so that owners may send as their aliases where "
					 "reject_sender_login_mismatch is enforced");
		}
	}
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct service *sv = &s->svc[i];
		const char *v = setup_service_param(sv, param);
		char *key, *sx = NULL;
		int r;

		if (v == NULL || sv->command == NULL || strcmp(sv->command, "smtpd") != 0)
			continue;
		key = xasprintf("%s/%s", sv->key, param);
		r = setup_pc_master_get(s, key, 1, &sx, err_r);
		free(key);
		if (r < 0)
			goto out;
		/* "$smtpd_sender_login_maps" gets ours through main.cf */
		if (*str_trim(sx ? sx : "") != '\0' && !refs_param(v, param)) {
			used = 1;
			if (!map_listed(sx, s->senders_spec)) {
				e = master_edit(s, sv, param, v, 1);
				strlist_add(&e->back, s->senders_spec);
				e->why = xstrdup("the service overrides main.cf's list");
			}
		}
		free(sx);
	}
	if (used)
		setup_check_daemon_map(s, "the sender-login map", s->senders_spec, s->senders_db);
	else
		setup_note(s, "%s is not in use: Postfix does not check who may send as "
		     "which address, so owners can send as their aliases already; "
		     "should you enable it, run postfix-setup again to add %s",
		     param, s->senders_spec);
	rc = 0;
out:
	free(raw);
	free(x);
	return rc;
}

/* plan_elsewhere - an smtpd service where clients may authenticate but
 * the milter does not run: the request address is refused there (see
 * ELSEWHERE_PARAM) instead of being accepted and discarded unseen */
static void
plan_elsewhere(struct setup *s, const struct service *sv)
{
	const char *v = setup_service_param(sv, SETUP_REQUEST_CLASS);
	char *key;

	s->elsewhere_needed = 1;
	if (v != NULL && strcmp(v, "$" ELSEWHERE_PARAM) == 0)
		return;
	key = xasprintf("%s/" SETUP_REQUEST_CLASS, sv->key);
	change_add(s, CH_MASTER, key, "$" ELSEWHERE_PARAM,
		   xasprintf("master.cf: %s: add -o " SETUP_REQUEST_CLASS "=$"
			     ELSEWHERE_PARAM " (clients may authenticate here, since "
			     "main.cf enables SASL, but the milter does not run here: "
			     "a request would be accepted and discarded unseen, so it "
			     "is refused with a reason instead)", sv->key));
	free(key);
}

/* plan_milter - our milter in the smtpd_milters of every SASL service */
static int
plan_milter(struct setup *s, char **err_r)
{
	char *main_raw = NULL, *main_x = NULL, *mua_raw = NULL, *mua_x = NULL;
	char *main_sasl = NULL;
	size_t nsasl = 0;
	int need_mua = 0, rc = -1;

	if (setup_pc_value(s, "smtpd_milters", 0, &main_raw, err_r) < 0 ||
	    setup_pc_value(s, "smtpd_milters", 1, &main_x, err_r) < 0 ||
	    setup_pc_value(s, "mua_milters", 0, &mua_raw, err_r) < 0 ||
	    setup_pc_value(s, "mua_milters", 1, &mua_x, err_r) < 0 ||
	    setup_pc_value(s, "smtpd_sasl_auth_enable", 1, &main_sasl, err_r) < 0)
		goto out;
	for (size_t i = 0; i < s->nsvc; i++) {
		const struct service *sv = &s->svc[i];
		const char *sasl = setup_service_param(sv, "smtpd_sasl_auth_enable");
		const char *own = setup_service_param(sv, "smtpd_milters");
		char *eff = NULL;
		struct ledit *e;

		if (sv->command == NULL || strcmp(sv->command, "smtpd") != 0)
			continue;
		if (sasl == NULL || strcasecmp(sasl, "yes") != 0) {
			/* SASL from main.cf, without the milter: refuse requests */
			if (sasl == NULL && strcasecmp(str_trim(main_sasl), "yes") == 0 &&
			    !milter_listed(s, own != NULL ? "" : main_x))
				plan_elsewhere(s, sv);
			continue;
		}
		nsasl++;
		if (strncmp(s->milter_canon, "unix:", 5) == 0 && sv->chroot &&
		    strcmp(sv->chroot, "y") == 0 &&
		    strncmp(s->milter_spec, "unix:/", 6) == 0)
			setup_problem(s, "master.cf: %s runs chrooted (chroot column \"y\") in "
				"queue_directory %s, but milter_socket %s is outside it: "
				"move the socket under %s (for example unix:%s/milter-alias/"
				"milter.sock)", sv->key, s->queue_dir, s->conf->milter_socket,
				s->queue_dir, s->queue_dir);
		if (own != NULL) {
			char *key = xasprintf("%s/smtpd_milters", sv->key);
			int r = setup_pc_master_get(s, key, 1, &eff, err_r);

			free(key);
			if (r < 0)
				goto out;
		}
		if (milter_listed(s, own != NULL ? (eff ? eff : "") : main_x)) {
			free(eff);
			continue;
		}
		free(eff);
		s->milter_needed = 1;
		if (own != NULL && refs_param(own, "mua_milters")) {
			need_mua = 1;
		} else if (own != NULL) {
			e = master_edit(s, sv, "smtpd_milters", own, 1);
			strlist_add(&e->back, s->milter_entry);
		} else if (*str_trim(main_x) == '\0') {
			char *key = xasprintf("%s/smtpd_milters", sv->key);

			change_add(s, CH_MASTER, key, "$mua_milters",
				   xasprintf("master.cf: %s: add -o smtpd_milters=$mua_milters "
					     "(the milter on this submission service only; "
					     "main.cf's smtpd_milters, which it used so far, "
					     "is empty)", sv->key));
			free(key);
			need_mua = 1;
		} else {
			/* -o smtpd_milters replaces main.cf's list: carry it over. */
			e = master_edit(s, sv, "smtpd_milters", main_raw, 0);
			strlist_add(&e->back, s->milter_entry);
			e->why = xstrdup("the service used main.cf's smtpd_milters so far; "
					 "-o smtpd_milters replaces that list, so its milters "
					 "are carried over");
		}
	}
	if (milter_listed(s, main_x))
		setup_note(s, "milter-alias is also in main.cf's smtpd_milters, so port 25 "
		     "passes through it too (harmless, but if it is down, port 25 "
		     "answers 451 as well); it is needed on the SASL services only");
	if (nsasl == 0)
		setup_problem(s, "no submission service with SASL in master.cf (an smtpd "
			"service with -o smtpd_sasl_auth_enable=yes): enable one first");
	if (need_mua && !milter_listed(s, mua_x)) {
		struct ledit *e = main_edit(s, "mua_milters", mua_raw);

		strlist_add(&e->back, s->milter_entry);
		e->why = xstrdup("the milters of the submission services that use "
				 "$mua_milters");
	}
	rc = 0;
out:
	free(main_raw);
	free(main_x);
	free(mua_raw);
	free(mua_x);
	free(main_sasl);
	return rc;
}

/* ledit_finish - turn each list edit into one change */
static void
ledit_finish(struct setup *s)
{
	for (size_t i = 0; i < s->nled; i++) {
		struct ledit *e = &s->led[i];
		struct strlist orig = { 0 }, all = { 0 };
		struct buf val = { 0 }, add = { 0 }, keep = { 0 }, text = { 0 };
		char *bad = NULL;
		struct change *ch;

		if (e->front.n == 0 && e->back.n == 0)
			continue;
		strlist_split_postfix(e->orig, &orig);
		if (!e->master) {
			/* main.cf: the existing value stays as written */
			for (size_t k = 0; k < e->front.n; k++)
				buf_appendf(&val, "%s%s", val.len ? ", " : "", e->front.v[k]);
			if (orig.n)
				buf_appendf(&val, "%s%s", val.len ? ", " : "", e->orig);
			for (size_t k = 0; k < e->back.n; k++)
				buf_appendf(&val, "%s%s", val.len ? ", " : "", e->back.v[k]);
			buf_appendf(&keep, "%s", e->orig);
		} else {
			/* master.cf: postconf -P takes no white space */
			for (size_t k = 0; k < e->front.n; k++)
				strlist_split_postfix(e->front.v[k], &all);
			for (size_t k = 0; k < orig.n; k++)
				strlist_add(&all, orig.v[k]);
			for (size_t k = 0; k < e->back.n; k++)
				strlist_split_postfix(e->back.v[k], &all);
			for (size_t k = 0; k < all.n && bad == NULL; k++) {
				char *c = item_compact(all.v[k]);

				if (c == NULL)
					bad = xstrdup(all.v[k]);
				else
					buf_appendf(&val, "%s%s", k ? "," : "", c);
				free(c);
			}
			for (size_t k = 0; k < orig.n; k++) {
				char *c = item_compact(orig.v[k]);

				buf_appendf(&keep, "%s%s", k ? ", " : "", c ? c : orig.v[k]);
				free(c);
			}
		}
		for (size_t k = 0; k < e->front.n; k++)
			buf_appendf(&add, "%s%s%s", add.len ? ", " : "", e->front.v[k],
				    orig.n || e->back.n ? " first" : "");
		for (size_t k = 0; k < e->back.n; k++)
			buf_appendf(&add, "%s%s%s", add.len ? ", " : "", e->back.v[k],
				    orig.n || e->front.n ? " last" : "");
		buf_appendf(&text, "%s: add %s", e->label, add.data);
		if (orig.n)
			buf_appendf(&text, " (keeps %s)", keep.data);
		else if (e->master && !e->existed)
			buf_appendf(&text, " (new -o option)");
		else if (e->why == NULL)
			buf_appendf(&text, " (it was empty)");
		if (e->why)
			buf_appendf(&text, " (%s)", e->why);
		if (bad != NULL)
			setup_problem(s, "%s: the item \"%s\" holds white space inside {}, which "
				"postconf -P cannot write into master.cf: add %s to that "
				"list by hand", e->label, bad, add.data);
		ch = change_add(s, e->master ? CH_MASTER : CH_MAIN, e->key,
				val.data ? val.data : "", xstrdup(text.data));
		ch->route = !e->master && (strlist_contains(&e->front, s->req_spec, false) ||
					  strlist_contains(&e->front, s->tr_spec, false));
		free(bad);
		strlist_clear(&orig);
		strlist_clear(&all);
		buf_free(&val);
		buf_free(&add);
		buf_free(&keep);
		buf_free(&text);
	}
}

/* plan_class - the value of the restriction class, after the list edits
 * so that it is reported beside smtpd_restriction_classes */
static void
plan_class(struct setup *s)
{
	if (s->elsewhere_needed && s->elsewhere_was != NULL)
		change_add(s, CH_MAIN, ELSEWHERE_PARAM, ELSEWHERE_VALUE,
			   xasprintf("main.cf: " ELSEWHERE_PARAM ": set to \"%s\" (what "
				     "the services that enable SASL without the milter "
				     "answer to a request)", ELSEWHERE_VALUE));
	if (s->class_was == NULL)
		return;
	change_add(s, CH_MAIN, SETUP_REQUEST_CLASS, REQUEST_CLASS_VALUE,
		   xasprintf("main.cf: " SETUP_REQUEST_CLASS ": set to \"%s\" (the "
			     "restriction class the access map names for request "
			     "addresses: on every service, clients that have not "
			     "authenticated get 550 5.7.1)%s%s%s", REQUEST_CLASS_VALUE,
			     *s->class_was ? " (was: " : "", s->class_was,
			     *s->class_was ? ")" : ""));
}

/* sort_changes - the change list in the order of applying (stable within
 * each group): our maps (nothing uses them yet), main.cf without the
 * request route, master.cf (its milter entries need a reload), then the
 * main.cf parameters that bring in the request map and the discard
 * transport.  Every smtpd started after a main.cf edit reads it, while a
 * master.cf -o waits for a reload: the route goes last so that no smtpd
 * ever discards requests that no milter sees. */
static void
sort_changes(struct setup *s)
{
	struct change *sorted = xcalloc(s->nch ? s->nch : 1, sizeof(*sorted));
	size_t n = 0;

	for (int g = 0; g < 4; g++)
		for (size_t i = 0; i < s->nch; i++) {
			const struct change *c = &s->ch[i];
			int cg = c->kind == CH_MAP ? 0 : c->kind == CH_MASTER ? 2 :
				c->route ? 3 : 1;

			if (cg == g)
				sorted[n++] = *c;
		}
	free(s->ch);
	s->ch = sorted;
}

int
setup_plan(struct setup *s, char **err_r)
{
	/* Our maps first, then main.cf/master.cf in a safe order. */
	plan_own_maps(s);
	if (plan_maps(s, err_r) < 0 || plan_access(s, err_r) < 0 ||
	    plan_senders(s, err_r) < 0 || plan_milter(s, err_r) < 0)
		return -1;
	ledit_finish(s);
	plan_class(s);
	sort_changes(s);
	return 0;
}

void
setup_preconditions(struct setup *s)
{
	char *err = NULL, *milter_err = NULL;

	/* The milter: it must answer before Postfix is sent to it. */
	if (s->root) {
		int alive = setup_milter_alive(s, &milter_err);

		if (alive == 0 && s->milter_needed)
			setup_problem(s, "milter-alias does not accept connections on %s (%s): "
				      "start milter-alias first, or every submission would "
				      "answer 451", s->conf->milter_socket, milter_err);
		else if (alive == 0)
			setup_note(s, "milter-alias does not accept connections on %s (%s): "
				   "until it runs, submission mail gets 451 (try again later)",
				   s->conf->milter_socket, milter_err);
	} else
		setup_note(s, "not run as root: whether Postfix's mail_owner can read the "
			   "maps, whether milter-alias accepts connections, whether "
			   "milter-alias-peer can ask every map of the existing-address "
			   "check (unless this user may use the control socket) and postfix "
			   "check were not checked");
	if (s->root && s->opts->apply && s->nch > 0 && s->problems.n == 0 &&
	    setup_postfix_check(s, &err) < 0)
		setup_problem(s, "%s: Postfix's configuration has problems before any "
			      "change; fix them first", err);
	if (strcmp(s->default_action, "tempfail") == 0)
		setup_note(s, "milter_default_action stays tempfail: if milter-alias cannot "
			   "answer, Postfix replies 451 (try again later), never a 250 for a "
			   "request that was not committed; with \"accept\" a request would "
			   "get 250 and be discarded unseen");
	else
		setup_note(s, "milter_default_action is %s; the milter-alias entry carries "
			   "its own default_action=tempfail, so that a request is never "
			   "answered 250 without being committed", s->default_action);
	setup_note(s, "%s and %s come first in their lists: they hold only the request "
		   "addresses and the reserved domain " SETUP_DISCARD_DOMAIN ", so they "
		   "shadow nothing, and no catch-all or wildcard elsewhere can swallow a "
		   "request; %s comes last, so every other map keeps precedence",
		   s->req_spec, s->tr_spec, s->alias_spec);
	free(err);
	free(milter_err);
}
