/* main.c - milter-alias-peer: arguments, configuration, privileges, run. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "daemon.h"
#include "crashpoint.h"
#include "ctlserver.h"
#include "engine.h"
#include "sync.h"
#include "peers.h"
#include "log.h"
#include "privs.h"
#include "tls.h"

static volatile sig_atomic_t stop_requested, reload_requested;
static int wake_pipe[2] = { -1, -1 };

static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
	if (write(wake_pipe[1], "x", 1) < 0) {
		/* The pipe is full: a wake-up is pending anyway. */
	}
	errno = saved;
}

/* notify_systemd - tell a Type=notify unit we are ready (no libsystemd) */
static void
notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	strcpy(sun.sun_path, path);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun, len) < 0)
		log_warn(NULL, "sd_notify");
	close(fd);
}

/* reload - SIGHUP: re-read the file; report what needs a restart */
static void
reload(const char *config_file, const struct conf *cur)
{
	struct conf *next = NULL;
	char *err = NULL;

	if (conf_load(config_file, &next, &err) < 0) {
		log_err(NULL, "reload: %s; keeping the running configuration", err);
		free(err);
		return;
	}
	/* The engine holds the running configuration without a lock, so it
	 * is never swapped under it: a changed file takes a restart. */
	log_notice(NULL, "reload: %s is valid; restart milter-alias-peer to apply "
		   "changes (node %s)", config_file, cur->node_name);
	conf_free(&next);
}

int
main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct ctlserver *server = NULL;
	struct engine *engine = NULL;
	struct tls_ctx *tls = NULL;
	struct peers *peers = NULL;
	struct conf *conf;
	char *err = NULL;

	/* A fixed threshold: blocks of 128 KiB and more (LMDB's per-open
	 * page lists, map arrays) are mapped and returned when freed.  The
	 * default raises the threshold after the first such free, and then
	 * every thread's arena keeps a few MB of them resident for good. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	conf = daemon_start("milter-alias-peer", argc, argv);

	umask(007);
	signal(SIGPIPE, SIG_IGN);
	/* Past a file size limit a write fails (EFBIG) and the request gets
	 * 4xx, the journal cut back (journal.h), rather than kill us. */
	signal(SIGXFSZ, SIG_IGN);
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		log_fatal("pipe");
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	crash_point_init();
	if (conf->npeers > 0) {
		/* Read the key before giving up root: it may be root's 0600. */
		tls_global_init();
		if (tls_ctx_new(conf->tls_key_file, conf->tls_cert_file, &tls, &err) < 0)
			log_fatalx("%s (create it with milter-aliasctl keygen)", err);
	}
	/* Group postfix: the existing-address check asks the administrator's
	 * maps, whose files Postfix's guides make root:postfix 0640 (README,
	 * "Which maps the daemon can ask"); the unit declares the same. */
	if (privs_drop(conf->user, POSTFIX_GROUP, &err) < 0)
		log_fatalx("%s", err);
	if (access(conf->state_dir, W_OK) < 0)
		log_fatal("state_dir %s is not writable", conf->state_dir);
	if (engine_open(conf, &engine, &err) < 0)
		log_fatalx("cannot start: %s", err);
	if (conf->npeers > 0 &&
	    peers_open(conf, tls, sync_peer_handler, engine, &peers, &err) < 0)
		log_fatalx("%s", err);
	sync_start(engine, peers);
	if (ctlserver_open(conf->control_socket, &server, &err) < 0)
		log_fatalx("%s", err);

	log_info(NULL, "started node=%s peers=%zu control=%s map=%s:%s%s%s",
		 conf->node_name, conf->npeers, conf->control_socket,
		 conf->map_type, conf->map_file, tls ? " pin=" : "",
		 tls ? tls_ctx_pin(tls) : "");
	notify_systemd("READY=1");
	while (!stop_requested) {
		char drain[64];

		ctlserver_run(server, engine, wake_pipe[0], &stop_requested);
		while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
			;
		if (reload_requested) {
			reload_requested = 0;
			reload(conf->path, conf);
		}
	}
	notify_systemd("STOPPING=1");
	log_info(NULL, "stopping: finishing changes in flight");
	ctlserver_close(&server);
	sync_stop(engine);
	peers_close(&peers);
	engine_close(&engine);
	tls_ctx_free(&tls);
	if (conf->npeers > 0)
		tls_global_deinit();
	log_info(NULL, "stopped");
	conf_free(&conf);
	return 0;
}
