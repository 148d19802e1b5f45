/* setup-report.c - postfix-setup, phase 4: what was found, planned or
 * done, as text (problems on stderr too) or as JSON; see setup-private.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setup-private.h"

static const char *
kind_file(enum ch_kind k)
{
	return k == CH_MAP ? "map" : k == CH_MAIN ? "main.cf" : "master.cf";
}

void
setup_say(struct setup *s, const char *prefix, const char *text, const char *error)
{
	if (s->opts->json)
		return;
	printf("%s%s%s%s\n", prefix, text, error ? ": " : "", error ? error : "");
	fflush(stdout);
}

static void
print_notes(struct setup *s)
{
	if (s->opts->json)
		return;
	for (size_t i = 0; i < s->notes.n; i++)
		printf("note: %s\n", s->notes.v[i]);
}

int
setup_report_error(struct setup *s, const char *err)
{
	fprintf(stderr, "milter-aliasctl: postfix-setup: %s\n", err ? err : "failed");
	s->result = "error";
	return SETUP_ERROR;
}

int
setup_report_plan(struct setup *s)
{
	if (!s->opts->json) {
		for (size_t i = 0; i < s->nch; i++)
			printf("%s\n", s->ch[i].text);
		if (s->nch == 0)
			printf(s->problems.n ? "no changes needed in main.cf and "
			       "master.cf, but the problems below keep alias requests "
			       "from working\n" : "no changes needed\n");
		for (size_t i = 0; i < s->problems.n; i++)
			printf("problem: %s\n", s->problems.v[i]);
		print_notes(s);
		if (s->nch > 0)
			printf("%zu change%s pending; run \"milter-aliasctl postfix-setup "
			       "--apply\" as root to make them\n", s->nch,
			       s->nch == 1 ? "" : "s");
	}
	s->result = s->nch > 0 ? "changes pending" : s->problems.n > 0 ?
		"problems" : "no changes needed";
	return s->nch > 0 || s->problems.n > 0 ? SETUP_PENDING : SETUP_OK;
}

int
setup_report_refused(struct setup *s)
{
	if (!s->opts->json) {
		for (size_t i = 0; i < s->problems.n; i++)
			fprintf(stderr, "milter-aliasctl: postfix-setup: %s\n",
				s->problems.v[i]);
		for (size_t i = 0; i < s->nch; i++)
			printf("not done: %s\n", s->ch[i].text);
		for (size_t i = 0; i < s->problems.n; i++)
			printf("problem: %s\n", s->problems.v[i]);
		print_notes(s);
		printf("nothing was changed, Postfix was not reloaded: fix the "
		       "problem%s above first\n", s->problems.n == 1 ? "" : "s");
	}
	for (size_t i = 0; i < s->nch; i++)
		s->ch[i].status = "not done";
	s->reload = "not done";
	s->result = "failed: nothing changed";
	return SETUP_PENDING;
}

int
setup_report_nothing(struct setup *s)
{
	if (!s->opts->json) {
		printf("no changes needed\n");
		print_notes(s);
	}
	s->result = "no changes needed";
	s->reload = "not needed";
	return SETUP_OK;
}

int
setup_report_applied(struct setup *s, int rc)
{
	if (!s->opts->json) {
		print_notes(s);
		if (rc == SETUP_OK)
			printf("applied %zu change%s, each verified; postfix check is clean; "
			       "%s\n", s->nch, s->nch == 1 ? "" : "s",
			       strcmp(s->reload, "done") == 0 ? "Postfix reloaded" :
			       "Postfix is not running (not started)");
		else {
			const char *files = s->restored > 0 ? "main.cf and master.cf "
				"restored from the backups" : s->restored < 0 ?
				"main.cf and master.cf could NOT be restored" :
				"main.cf and master.cf were not changed";
			const char *pf = s->reload && strcmp(s->reload, "restored") == 0 ?
				"Postfix reloaded with the restored files" :
				s->reload && strcmp(s->reload, "failed") == 0 ?
				"Postfix reload FAILED: run \"postfix reload\"" :
				"Postfix was NOT reloaded";

			fprintf(stderr, "milter-aliasctl: postfix-setup: step \"%s\" failed; "
				"%s; %s\n", s->failed_step ? s->failed_step : "?", files, pf);
			printf("stopped at the failed step \"%s\"; %s; %s\n",
			       s->failed_step ? s->failed_step : "?", files, pf);
			if (s->restored < 0 && s->backups.n == 2)
				printf("to undo: cp -p %s %s && cp -p %s %s\n", s->backups.v[0],
				       s->main_cf, s->backups.v[1], s->master_cf);
		}
	}
	s->result = rc == SETUP_OK ? "applied" : "failed";
	return rc;
}

void
setup_report_json(struct setup *s, int rc)
{
	printf("{\"config_directory\": ");
	json_print_string(stdout, s->dir);
	printf(", \"apply\": %s, \"result\": ", s->opts->apply ? "true" : "false");
	json_print_string(stdout, s->result);
	printf(", \"exit\": %d,\n \"changes\": [", rc);
	for (size_t i = 0; i < s->nch; i++) {
		const struct change *c = &s->ch[i];

		printf("%s\n  {\"file\": ", i ? "," : "");
		json_print_string(stdout, kind_file(c->kind));
		printf(", \"key\": ");
		json_print_string(stdout, c->kind == CH_MAP ? c->spec : c->key);
		printf(", \"value\": ");
		json_print_string(stdout, c->kind == CH_MAP ? c->db : c->value);
		printf(", \"status\": ");
		json_print_string(stdout, c->status);
		printf(", \"text\": ");
		json_print_string(stdout, c->text);
		if (c->error && strcmp(c->status, "failed") == 0) {
			printf(", \"error\": ");
			json_print_string(stdout, c->error);
		}
		printf("}");
	}
	printf("%s],\n \"problems\": [", s->nch ? "\n " : "");
	for (size_t i = 0; i < s->problems.n; i++) {
		printf("%s", i ? ", " : "");
		json_print_string(stdout, s->problems.v[i]);
	}
	printf("],\n \"notes\": [");
	for (size_t i = 0; i < s->notes.n; i++) {
		printf("%s", i ? ", " : "");
		json_print_string(stdout, s->notes.v[i]);
	}
	printf("],\n \"backups\": [");
	for (size_t i = 0; i < s->backups.n; i++) {
		printf("%s", i ? ", " : "");
		json_print_string(stdout, s->backups.v[i]);
	}
	printf("],\n \"postfix_check\": ");
	json_print_string(stdout, s->check ? s->check : "not run");
	printf(", \"reload\": ");
	json_print_string(stdout, s->reload ? s->reload : "not done");
	printf("}\n");
}
