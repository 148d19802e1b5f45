/* noop-milter: the floor for make bench (measurements (a), (b) of RESULTS.md).  A minimal
 * libmilter filter whose envfrom/envrcpt/eom callbacks all return
 * SMFIS_CONTINUE and that asks for nothing else.  Usage: noop-milter SOCKET
 * (e.g. unix:/path/sock).  Not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <libmilter/mfapi.h>

static sfsistat cb_from(SMFICTX *c, char **a) { (void)c; (void)a; return SMFIS_CONTINUE; }
static sfsistat cb_rcpt(SMFICTX *c, char **a) { (void)c; (void)a; return SMFIS_CONTINUE; }
static sfsistat cb_eom(SMFICTX *c) { (void)c; return SMFIS_CONTINUE; }

int
main(int argc, char **argv)
{
	struct smfiDesc d = { 0 };

	if (argc != 2) {
		fprintf(stderr, "usage: noop-milter SOCKET\n");
		return 2;
	}
	d.xxfi_name = "noop";
	d.xxfi_version = SMFI_VERSION;
	d.xxfi_envfrom = cb_from;
	d.xxfi_envrcpt = cb_rcpt;
	d.xxfi_eom = cb_eom;
	umask(0);
	if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(d) == MI_FAILURE ||
	    smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "noop-milter: cannot listen on %s\n", argv[1]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
