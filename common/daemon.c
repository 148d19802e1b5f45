/* daemon.c - common start of milter-alias and milter-alias-peer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

struct conf *
daemon_start(const char *ident, int argc, char **argv)
{
	const char *config_file = DEFAULT_CONFIG_FILE;
	bool foreground = false, check_only = false;
	struct conf *conf;
	char *err = NULL;
	int ch;

	while ((ch = getopt(argc, argv, "c:fth")) != -1) {
		switch (ch) {
		case 'c':
			config_file = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			check_only = true;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	log_init(ident, foreground);
	if (conf_load(config_file, &conf, &err) < 0)
		log_fatalx("%s", err);
	if (check_only) {
		conf_free(&conf);
		exit(0);
	}
	return conf;
usage:
	fprintf(stderr, "usage: %s [-f] [-t] [-c config_file]\n", ident);
	exit(2);
}
