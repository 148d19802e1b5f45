/* main.c - milter-alias: arguments, configuration, privileges, socket, run. */
#include "config.h"

#include <errno.h>
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "daemon.h"
#include "filter.h"
#include "log.h"
#include "privs.h"
#include "pftool.h"

/* unix_path - the file behind a "unix:" or "local:" milter socket, or NULL */
static const char *
unix_path(const char *spec)
{
	if (strncmp(spec, "unix:", 5) == 0)
		return spec + 5;
	if (strncmp(spec, "local:", 6) == 0)
		return spec + 6;
	return NULL;
}

/* clear_stale_socket - remove a socket left by a crash, refuse to steal a
 * live one from a running instance */
static void
clear_stale_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		return;
	if (!S_ISSOCK(st.st_mode))
		log_fatalx("%s exists and is not a socket; refusing to remove it", path);
	if (strlen(path) >= sizeof(sun.sun_path))
		log_fatalx("milter socket path %s is too long", path);
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		log_fatalx("another milter-alias is listening on %s", path);
	if (fd >= 0)
		close(fd);
	if (unlink(path) < 0 && errno != ENOENT)
		log_fatal("cannot remove stale socket %s", path);
	log_info(NULL, "removed stale socket %s", path);
}

/* read_delimiters - Postfix's recipient_delimiter, for filter.c; "+"
 * (Debian's main.cf) with a warning if postconf cannot tell */
static void
read_delimiters(const struct conf *conf)
{
	static const char *const args[] = { "-h", "recipient_delimiter", NULL };
	struct pftool_run r = { 0 };
	char *err = NULL;

	if (pftool_run(&r, conf->postfix_config_dir, "postconf", args, NULL, 0, NULL,
		       &err) == 0) {
		filter_set_delimiters(str_trim(r.out.data ? r.out.data : ""));
		log_info(NULL, "recipient_delimiter=\"%s\"", str_trim(r.out.data ? r.out.data : ""));
	} else {
		log_warnx(NULL, "cannot read recipient_delimiter with postconf (%s); "
			  "assuming \"+\"", err ? err : "it failed");
		filter_set_delimiters("+");
	}
	free(err);
	pftool_run_free(&r);
}

int
main(int argc, char **argv)
{
	const char *path;
	struct conf *conf;
	char *err = NULL;
	int rc;

	conf = daemon_start("milter-alias", argc, argv);

	/* The socket must be reachable by Postfix through group permissions. */
	umask(007);
	if (privs_drop(conf->user, NULL, &err) < 0)
		log_fatalx("%s", err);
	read_delimiters(conf);
	if ((path = unix_path(conf->milter_socket)) != NULL)
		clear_stale_socket(path);
	if (smfi_setconn(conf->milter_socket) != MI_SUCCESS)
		log_fatalx("milter_socket \"%s\" is not a valid socket", conf->milter_socket);
	if (smfi_register(*filter_desc(conf)) != MI_SUCCESS)
		log_fatalx("smfi_register failed");
	if (smfi_opensocket(1) != MI_SUCCESS)
		log_fatalx("cannot open milter socket %s", conf->milter_socket);

	log_info(NULL, "started socket=%s control=%s", conf->milter_socket,
		 conf->control_socket);
	rc = smfi_main();
	log_info(NULL, "stopped");
	conf_free(&conf);
	return rc == MI_SUCCESS ? 0 : 1;
}
