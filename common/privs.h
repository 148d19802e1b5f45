/* privs.h - the one place where a daemon gives up root. */
#ifndef MA_PRIVS_H
#define MA_PRIVS_H

#include <sys/types.h>

/* If running as root, switch to user (its primary group and supplementary
 * groups, plus extra_group when not NULL and it exists) for good.  A
 * non-root caller keeps its identity.  0 on success, -1 with a reason. */
int privs_drop(const char *user, const char *extra_group, char **err_r);
/* uid/gid of user; 0 or -1 with a reason. */
int privs_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, char **err_r);

#endif
