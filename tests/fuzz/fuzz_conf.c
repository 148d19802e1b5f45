/* fuzz_conf.c - libFuzzer target: the configuration loader.
 *
 * The input is written to one temporary file (the same name for every
 * input of the process, in $TMPDIR or /tmp, removed after each load) and
 * loaded with conf_load().  conf.h
 * promises that conf_load never exits and that an error reads
 * "FILE:LINE: KEY: what is wrong" (or "FILE: ..."): the error text must
 * start with the file's name.  A loaded configuration must satisfy the
 * checks conf_load documents (contract §3), and conf_free releases it
 * (LeakSanitizer checks that nothing is left).
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "request.h"
#include "util.h"
#include "fuzz.h"

static char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
cleanup(void)
{
	if (path != NULL)
		unlink(path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	path = xasprintf("%s/fuzz_conf.%ld.conf", fuzz_tmpdir(), (long)getpid());
	atexit(cleanup);
	return 0;
}

static void
write_input(const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t off = 0;

	if (fd < 0) {
		perror(path);
		abort();
	}
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);

		if (w <= 0) {
			perror(path);
			abort();
		}
		off += (size_t)w;
	}
	close(fd);
}

static int
absolute(const char *s)
{
	return s != NULL && s[0] == '/';
}

static void
check_conf(const struct conf *c)
{
	FUZZ_CHECK(c->path != NULL && strcmp(c->path, path) == 0, "path not kept");
	FUZZ_CHECK(c->node_name != NULL && *c->node_name != '\0', "no node_name");
	FUZZ_CHECK(c->domains.n > 0, "no domains");
	for (size_t i = 0; i < c->domains.n; i++)
		FUZZ_CHECK(request_domain_valid(c->domains.v[i]), "domain \"%s\"",
			   c->domains.v[i]);
	FUZZ_CHECK(c->request_addresses.n > 0, "no request address");
	for (size_t i = 0; i < c->request_addresses.n; i++) {
		const char *a = c->request_addresses.v[i];

		FUZZ_CHECK(request_address_valid(a), "request_address \"%s\"", a);
		FUZZ_CHECK(conf_serves_domain(c, strrchr(a, '@') + 1),
			   "request_address %s outside domains", a);
		FUZZ_CHECK(conf_is_request_address(c, a), "conf_is_request_address(%s)", a);
	}
	FUZZ_CHECK(c->map_format == MAP_FORMAT_VIRTUAL || c->map_format == MAP_FORMAT_ALIASES,
		   "map_format %d", (int)c->map_format);
	FUZZ_CHECK(c->map_type && (strcmp(c->map_type, "lmdb") == 0 ||
				   strcmp(c->map_type, "hash") == 0 ||
				   strcmp(c->map_type, "cdb") == 0), "map_type");
	FUZZ_CHECK(absolute(c->map_file) && absolute(c->postfix_config_dir) &&
		   absolute(c->state_dir) && absolute(c->control_socket) &&
		   absolute(c->sendmail_path) && absolute(c->tls_key_file) &&
		   absolute(c->tls_cert_file), "a path is not absolute");
	FUZZ_CHECK(c->milter_socket && (strncmp(c->milter_socket, "unix:", 5) == 0 ||
					strncmp(c->milter_socket, "local:", 6) == 0 ||
					strncmp(c->milter_socket, "inet:", 5) == 0 ||
					strncmp(c->milter_socket, "inet6:", 6) == 0),
		   "milter_socket \"%s\"", c->milter_socket ? c->milter_socket : "(null)");
	FUZZ_CHECK(c->commit_timeout >= 1 && c->commit_timeout <= 240,
		   "commit_timeout %ld", c->commit_timeout);
	FUZZ_CHECK(c->max_aliases_per_user >= 0 && c->max_requests_per_hour >= 0,
		   "negative limit");
	FUZZ_CHECK(c->owner_map != NULL && c->user != NULL, "NULL string");
	for (size_t i = 0; i < c->reserved.n; i++)
		FUZZ_CHECK(request_name_valid(c->reserved.v[i]), "reserved \"%s\"",
			   c->reserved.v[i]);
	if (c->npeers > 0)
		FUZZ_CHECK(c->listen != NULL, "peers without listen");
	if (c->listen != NULL)
		FUZZ_CHECK(strrchr(c->listen, ':') != NULL, "listen \"%s\"", c->listen);
	for (size_t i = 0; i < c->npeers; i++) {
		const struct conf_peer *p = &c->peers[i];

		FUZZ_CHECK(p->name != NULL && strcasecmp(p->name, c->node_name) != 0,
			   "peer named like this node");
		FUZZ_CHECK(p->address != NULL && strrchr(p->address, ':') != NULL,
			   "peer %s address", p->name);
		FUZZ_CHECK(p->pins.n >= 1 && p->pins.n <= 2, "peer %s has %zu pins",
			   p->name, p->pins.n);
		for (size_t k = 0; k < p->pins.n; k++)
			FUZZ_CHECK(conf_pin_valid(p->pins.v[k]), "pin \"%s\"", p->pins.v[k]);
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(strcmp(c->peers[k].name, p->name) != 0,
				   "peer %s twice", p->name);
	}
	{
		char *s = conf_compiled_map_path(c);

		FUZZ_CHECK(strncmp(s, c->map_file, strlen(c->map_file)) == 0,
			   "compiled map path \"%s\"", s);
		free(s);
		s = conf_access_file(c);
		free(s);
		s = conf_compiled_access_path(c);
		free(s);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL;
	char *err = NULL;
	size_t plen = strlen(path);
	int rc;

	write_input(data, size);
	rc = conf_load(path, &c, &err);
	/* Removed at once: a crash leaves nothing behind in the temp dir. */
	unlink(path);
	if (rc == 0) {
		FUZZ_CHECK(c != NULL && err == NULL, "success without a conf");
		check_conf(c);
		conf_free(&c);
		FUZZ_CHECK(c == NULL, "conf_free left the pointer");
	} else {
		FUZZ_CHECK(c == NULL, "failure with a conf");
		FUZZ_CHECK(err != NULL && strncmp(err, path, plen) == 0 && err[plen] == ':',
			   "error text does not start with the file name: \"%s\"",
			   err ? err : "(null)");
		free(err);
	}
	return 0;
}
