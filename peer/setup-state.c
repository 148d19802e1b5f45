/* setup-state.c - postfix-setup's findings and their lifetime: the
 * problems (each forbids --apply), the notes, and freeing the whole
 * struct setup.  Every phase writes here; this file calls no phase. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "setup-private.h"

/* add_once - a formatted line onto l, unless l has it already */
static void
add_once(struct strlist *l, const char *fmt, va_list ap) ATTR_PRINTF(2, 0);
static void
add_once(struct strlist *l, const char *fmt, va_list ap)
{
	char *m = xvasprintf(fmt, ap);

	if (!strlist_contains(l, m, false))
		strlist_add(l, m);
	free(m);
}

void
setup_problem(struct setup *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_once(&s->problems, fmt, ap);
	va_end(ap);
}

void
setup_note(struct setup *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_once(&s->notes, fmt, ap);
	va_end(ap);
}

void
setup_free(struct setup *s)
{
	free(s->dir);
	free(s->main_cf);
	free(s->master_cf);
	free(s->queue_dir);
	free(s->mail_owner);
	free(s->default_action);
	free(s->alias_spec);
	free(s->alias_db);
	free(s->access_spec);
	free(s->access_db);
	free(s->senders_spec);
	free(s->senders_db);
	free(s->req_path);
	free(s->req_spec);
	free(s->req_db);
	free(s->req_text);
	free(s->tr_path);
	free(s->tr_spec);
	free(s->tr_db);
	free(s->tr_text);
	free(s->milter_spec);
	free(s->milter_entry);
	free(s->milter_canon);
	free(s->class_was);
	free(s->elsewhere_was);
	for (size_t i = 0; i < s->nsvc; i++) {
		free(s->svc[i].key);
		free(s->svc[i].command);
		free(s->svc[i].chroot);
		strlist_clear(&s->svc[i].pnames);
		strlist_clear(&s->svc[i].pvalues);
	}
	free(s->svc);
	for (size_t i = 0; i < s->nled; i++) {
		free(s->led[i].key);
		free(s->led[i].label);
		free(s->led[i].orig);
		free(s->led[i].why);
		strlist_clear(&s->led[i].front);
		strlist_clear(&s->led[i].back);
	}
	free(s->led);
	for (size_t i = 0; i < s->nch; i++) {
		free(s->ch[i].key);
		free(s->ch[i].value);
		free(s->ch[i].spec);
		free(s->ch[i].db);
		free(s->ch[i].text);
		free(s->ch[i].error);
	}
	free(s->ch);
	strlist_clear(&s->problems);
	strlist_clear(&s->notes);
	strlist_clear(&s->backups);
}

