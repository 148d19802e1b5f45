/* privs.c - drop root; see privs.h. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "privs.h"
#include "util.h"

int
privs_lookup(const char *user, uid_t *uid_r, gid_t *gid_r, char **err_r)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || res == NULL) {
		set_error(err_r, "user \"%s\" does not exist (create it, or set \"user\" "
			  "in the configuration)", user);
		return -1;
	}
	*uid_r = pw.pw_uid;
	*gid_r = pw.pw_gid;
	return 0;
}

/* add_group - add the group named name to the supplementary groups; a
 * group that does not exist is left out (the caller's checks say why) */
static int
add_group(const char *name)
{
	struct group gr, *res = NULL;
	char buf[4096];
	gid_t groups[NGROUPS_MAX + 1];
	int n;

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || res == NULL)
		return 0;
	if ((n = getgroups(NGROUPS_MAX, groups)) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (groups[i] == gr.gr_gid)
			return 0;
	groups[n++] = gr.gr_gid;
	return setgroups((size_t)n, groups);
}

int
privs_drop(const char *user, const char *extra_group, char **err_r)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return 0;
	if (privs_lookup(user, &uid, &gid, err_r) < 0)
		return -1;
	if (initgroups(user, gid) < 0 ||
	    (extra_group != NULL && add_group(extra_group) < 0) ||
	    setgid(gid) < 0 || setuid(uid) < 0) {
		set_error(err_r, "cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	/* Paranoia: root must be gone for good. */
	if (uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
		set_error(err_r, "could regain root after switching to %s", user);
		return -1;
	}
	return 0;
}
