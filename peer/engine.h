/* engine.h - the sync daemon's state and its single commit path.
 *
 * The engine owns the alias map (file, compiled map, in-memory copy) and
 * the journal.  Every change, whether it arrives by mail through the
 * milter or from milter-aliasctl, goes through one path:
 *   check -> journal prepare -> (peer votes) -> journal commit -> apply
 * The map is only touched after a durable commit record, so replaying the
 * journal after a crash re-applies committed changes and aborts the rest.
 * Thread-safe: one mutex guards the state; changes to one address are
 * serialised by a per-address lock, so slow checks run unlocked.
 */
#ifndef MA_ENGINE_H
#define MA_ENGINE_H

#include "aliasmap.h"
#include "conf.h"
#include "ctlproto.h"
#include "msg.h"

struct engine;

/* Work to do after the reply has been sent (confirmation mail). */
struct engine_followup {
	int pending;		/* 1 when there is something to do */
	struct alias alias;
	char *from;
	char txn[17];
};

/* Emit one item frame of a multi-frame answer (list, journal). */
typedef void (*engine_emit_fn)(void *arg, const struct msg *item);

/* Load the map, replay the journal, rebuild the compiled map.  conf is
 * borrowed.  0 or -1 with a reason. */
int engine_open(const struct conf *conf, struct engine **e_r, char **err_r);
void engine_close(struct engine **e);

/* Answer one control-socket request, decoded and checked by
 * ctlproto_request_decode.  resp gets status=ok|perm|temp and text, plus
 * op-specific keys.  emit receives item frames before the reply.
 * followup is filled when work remains after the reply. */
void engine_handle(struct engine *e, const struct ctl_request *req, struct msg *resp,
		   engine_emit_fn emit, void *emit_arg,
		   struct engine_followup *followup);
/* Do (and clear) the follow-up work. */
void engine_followup_run(struct engine *e, struct engine_followup *f);

#endif
