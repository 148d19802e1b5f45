/* tls.c - all of the project's GnuTLS code; see tls.h.
 *
 * Owns the key and certificate files' creation, the credentials, and each
 * session's socket once a handshake succeeded.  Trust is a pin list and
 * nothing else: no CA, no host name, no expiry.  It must not log.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "fsutil.h"
#include "log.h"
#include "tls.h"

/* TLS 1.3 and nothing else: a peer that cannot speak it is refused. */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define TLS_PIN_PREFIX "sha256//"
/* 20 years: the pin, not the dates, is what the peer checks. */
#define TLS_CERT_VALIDITY ((time_t)20 * 365 * 24 * 3600)
/* Key and certificate files are small; refuse to slurp anything huge. */
#define TLS_MAX_PEM_FILE (1024 * 1024)
/* tls_close waits this long at most for close_notify to leave. */
#define TLS_BYE_TIMEOUT_MS 1000

/* The one frame a server sends after a successful handshake. */
#define TLS_READY_KEY "tls"
#define TLS_READY_VALUE "ready"

struct tls_ctx {
	gnutls_certificate_credentials_t cred;
	char *pin;
};

enum tls_verdict {
	VERDICT_NONE,		/* the verify callback did not run */
	VERDICT_OK,
	VERDICT_NO_CERT,
	VERDICT_BAD_CERT,	/* not X.509, or unparsable */
	VERDICT_BAD_PIN,
};

struct tls_conn {
	gnutls_session_t session;
	int fd;
	int broken;		/* a fatal error: no more I/O, no close_notify */
	struct buf rbuf;	/* decrypted bytes not yet taken as frames */
	size_t rpos;		/* start of the untaken bytes in rbuf */
	/* Handshake state, read by verify_peer. */
	const struct strlist *pins;
	const char *own_pin;	/* borrowed from the ctx, for error texts */
	char *peer_pin;
	enum tls_verdict verdict;
};

void
tls_global_init(void)
{
	int rc;

	/* Automatic in GnuTLS 3.7, but counted: this pairs with the deinit
	 * and surfaces a failure (no randomness) at start, not mid-handshake. */
	if ((rc = gnutls_global_init()) < 0)
		log_fatalx("tls: gnutls_global_init failed: %s", gnutls_strerror(rc));
	gnutls_global_set_log_level(0);
}

void
tls_global_deinit(void)
{
	gnutls_global_deinit();
}

/* pin_of_crt - the pin of crt; 0 and a caller-owned *pin_r, or -1 */
static int
pin_of_crt(gnutls_x509_crt_t crt, char **pin_r, char **err_r)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t spki = { NULL, 0 };
	unsigned char digest[32];
	gnutls_datum_t raw = { digest, sizeof(digest) }, b64 = { NULL, 0 };
	int rc;

	if ((rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_x509(pub, crt, 0)) < 0 ||
	    /* DER export of a public key is the SubjectPublicKeyInfo. */
	    (rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki)) < 0 ||
	    (rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size,
				   digest)) < 0) {
		set_error(err_r, "cannot take the public key of the certificate: %s",
			  gnutls_strerror(rc));
		gnutls_free(spki.data);
		if (pub != NULL)
			gnutls_pubkey_deinit(pub);
		return -1;
	}
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pub);
	/* 32 bytes: 44 characters with '=' padding, no line break */
	if ((rc = gnutls_base64_encode2(&raw, &b64)) < 0) {
		set_error(err_r, "cannot encode the pin: %s", gnutls_strerror(rc));
		return -1;
	}
	*pin_r = xasprintf(TLS_PIN_PREFIX "%.*s", (int)b64.size, (const char *)b64.data);
	gnutls_free(b64.data);
	return 0;
}

/* import_crt - parse the first certificate of a PEM (or else DER) blob;
 * 0 and *crt_r (gnutls_x509_crt_deinit it), or -1 */
static int
import_crt(const char *what, const char *data, size_t len,
	   gnutls_x509_crt_t *crt_r, char **err_r)
{
	gnutls_datum_t d = { (unsigned char *)data, (unsigned int)len };
	gnutls_x509_crt_t crt;
	int rc;

	if ((rc = gnutls_x509_crt_init(&crt)) < 0) {
		set_error(err_r, "gnutls_x509_crt_init failed: %s", gnutls_strerror(rc));
		return -1;
	}
	if ((rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM)) < 0 &&
	    gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
		set_error(err_r, "%s is not an X.509 certificate: %s", what,
			  gnutls_strerror(rc));
		gnutls_x509_crt_deinit(crt);
		return -1;
	}
	*crt_r = crt;
	return 0;
}

/* pin_of_cert_data - pin of the certificate in data; 0 or -1 */
static int
pin_of_cert_data(const char *what, const char *data, size_t len,
		 char **pin_r, char **err_r)
{
	gnutls_x509_crt_t crt;
	int rc;

	if (import_crt(what, data, len, &crt, err_r) < 0)
		return -1;
	rc = pin_of_crt(crt, pin_r, err_r);
	gnutls_x509_crt_deinit(crt);
	return rc;
}

/* read_small_file - fsutil_read_file where absence is an error too */
static int
read_small_file(const char *path, char **data_r, size_t *len_r, char **err_r)
{
	int rc = fsutil_read_file(path, data_r, len_r, TLS_MAX_PEM_FILE, err_r);

	if (rc == 1)
		set_error(err_r, "open(%s) failed: %s", path, strerror(ENOENT));
	return rc == 0 ? 0 : -1;
}

/* free_secret - wipe and free a buffer that held a private key */
static void
free_secret(char **data, size_t len)
{
	if (*data == NULL)
		return;
	gnutls_memset(*data, 0, len);
	free(*data);
	*data = NULL;
}

int
tls_pin_of_cert_file(const char *cert_file, char **pin_r, char **err_r)
{
	char *data;
	size_t len;
	int rc;

	if (read_small_file(cert_file, &data, &len, err_r) < 0)
		return -1;
	rc = pin_of_cert_data(cert_file, data, len, pin_r, err_r);
	free(data);
	return rc;
}

/* file_exists - 1 present, 0 absent, -1 cannot tell (reason) */
static int
file_exists(const char *path, char **err_r)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	set_error(err_r, "stat(%s) failed: %s", path, strerror(errno));
	return -1;
}

/* load_key - the private key in key_file; 0 and *key_r, or -1 */
static int
load_key(const char *key_file, gnutls_x509_privkey_t *key_r, char **err_r)
{
	gnutls_x509_privkey_t key;
	gnutls_datum_t d;
	char *data;
	size_t len;
	int rc;

	if (read_small_file(key_file, &data, &len, err_r) < 0)
		return -1;
	d.data = (unsigned char *)data;
	d.size = (unsigned int)len;
	if ((rc = gnutls_x509_privkey_init(&key)) < 0) {
		set_error(err_r, "gnutls_x509_privkey_init failed: %s",
			  gnutls_strerror(rc));
		free_secret(&data, len);
		return -1;
	}
	/* import2 takes PKCS#8 and the traditional forms, PEM or DER. */
	if ((rc = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM,
					      NULL, 0)) < 0 &&
	    gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_DER, NULL, 0) < 0) {
		set_error(err_r, "%s is not a private key: %s", key_file,
			  gnutls_strerror(rc));
		gnutls_x509_privkey_deinit(key);
		free_secret(&data, len);
		return -1;
	}
	free_secret(&data, len);
	*key_r = key;
	return 0;
}

/* make_cert - a self-signed certificate for key as PEM in *pem_r
 * (gnutls_free it); 0 or -1 */
static int
make_cert(gnutls_x509_privkey_t key, const char *common_name,
	  gnutls_datum_t *pem_r, char **err_r)
{
	gnutls_x509_crt_t crt;
	unsigned char serial[16];
	time_t now = time(NULL);
	const char *step;
	int rc;

	if ((rc = gnutls_x509_crt_init(&crt)) < 0) {
		set_error(err_r, "gnutls_x509_crt_init failed: %s", gnutls_strerror(rc));
		return -1;
	}
	/* A positive, non-zero serial (RFC 5280 4.1.2.2). */
	step = "random serial";
	if ((rc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
		goto fail;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	step = "certificate fields";
	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    /* An hour back: the other server's clock may lag (not that
	     * anyone checks, but tools like certtool do). */
	    (rc = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, now + TLS_CERT_VALIDITY)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
						common_name, strlen(common_name))) < 0 ||
	    (rc = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0)
		goto fail;
	step = "signing the certificate";
	if ((rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto fail;
	step = "exporting the certificate";
	if ((rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, pem_r)) < 0)
		goto fail;
	gnutls_x509_crt_deinit(crt);
	return 0;
fail:
	set_error(err_r, "%s failed: %s", step, gnutls_strerror(rc));
	gnutls_x509_crt_deinit(crt);
	return -1;
}

int
tls_keygen(const char *key_file, const char *cert_file,
	   const char *common_name, char **err_r)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_datum_t key_pem = { NULL, 0 }, cert_pem = { NULL, 0 };
	int have_key, have_cert, rc;

	if (common_name == NULL || common_name[0] == '\0') {
		set_error(err_r, "keygen: empty common name");
		return -1;
	}
	if ((have_key = file_exists(key_file, err_r)) < 0 ||
	    (have_cert = file_exists(cert_file, err_r)) < 0)
		return -1;
	if (have_key && have_cert)
		return 0;
	if (have_key) {
		/* A crash between the two writes: keep the key, which a peer
		 * may already have pinned. */
		if (load_key(key_file, &key, err_r) < 0)
			return -1;
	} else {
		/* A certificate without its key is useless: both are new. */
		if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
		    (rc = gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA,
				GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
				0, NULL, 0)) < 0 ||
		    (rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM,
				NULL, GNUTLS_PKCS_PLAIN, &key_pem)) < 0) {
			set_error(err_r, "generating an ECDSA P-256 key failed: %s",
				  gnutls_strerror(rc));
			goto fail;
		}
	}
	if (make_cert(key, common_name, &cert_pem, err_r) < 0)
		goto fail;
	/* Key first: a crash after it leaves a state the next run completes. */
	if (!have_key &&
	    fsutil_write_atomic(key_file, key_pem.data, key_pem.size, 0600, err_r) < 0)
		goto fail;
	if (fsutil_write_atomic(cert_file, cert_pem.data, cert_pem.size, 0644,
				err_r) < 0)
		goto fail;
	rc = 1;
	goto done;
fail:
	rc = -1;
done:
	if (key_pem.data != NULL) {
		gnutls_memset(key_pem.data, 0, key_pem.size);
		gnutls_free(key_pem.data);
	}
	gnutls_free(cert_pem.data);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return rc;
}

int
tls_ctx_new(const char *key_file, const char *cert_file,
	    struct tls_ctx **ctx_r, char **err_r)
{
	struct tls_ctx *ctx;
	char *key_data = NULL, *cert_data = NULL;
	size_t key_len = 0, cert_len = 0;
	gnutls_datum_t kd, cd;
	int rc;

	*ctx_r = NULL;
	/* Read the files here so a failure names the file and the errno. */
	if (read_small_file(cert_file, &cert_data, &cert_len, err_r) < 0)
		return -1;
	if (read_small_file(key_file, &key_data, &key_len, err_r) < 0) {
		free(cert_data);
		return -1;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	if (pin_of_cert_data(cert_file, cert_data, cert_len, &ctx->pin, err_r) < 0)
		goto fail;
	if ((rc = gnutls_certificate_allocate_credentials(&ctx->cred)) < 0) {
		ctx->cred = NULL;
		set_error(err_r, "gnutls_certificate_allocate_credentials failed: %s",
			  gnutls_strerror(rc));
		goto fail;
	}
	kd.data = (unsigned char *)key_data;
	kd.size = (unsigned int)key_len;
	cd.data = (unsigned char *)cert_data;
	cd.size = (unsigned int)cert_len;
	/* This also checks that the key and the certificate match. */
	if ((rc = gnutls_certificate_set_x509_key_mem2(ctx->cred, &cd, &kd,
						       GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		set_error(err_r, "cannot use key %s with certificate %s: %s",
			  key_file, cert_file, gnutls_strerror(rc));
		goto fail;
	}
	free_secret(&key_data, key_len);
	free(cert_data);
	*ctx_r = ctx;
	return 0;
fail:
	free_secret(&key_data, key_len);
	free(cert_data);
	tls_ctx_free(&ctx);
	return -1;
}

void
tls_ctx_free(struct tls_ctx **ctx)
{
	if (*ctx == NULL)
		return;
	if ((*ctx)->cred != NULL)
		gnutls_certificate_free_credentials((*ctx)->cred);
	free((*ctx)->pin);
	free(*ctx);
	*ctx = NULL;
}

const char *
tls_ctx_pin(const struct tls_ctx *ctx)
{
	return ctx->pin;
}

/* deadline_of - absolute monotonic deadline for timeout_ms, -1 for none */
static long long
deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_mono_ms() + timeout_ms;
}

/* wait_io - poll fd in the direction GnuTLS is blocked on, until the
 * deadline; 1 ready, 0 timeout, -1 error */
static int
wait_io(struct tls_conn *c, long long deadline)
{
	short events = gnutls_record_get_direction(c->session) ? POLLOUT : POLLIN;

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = events };
		int timeout = -1, rc;

		if (deadline >= 0) {
			long long left = deadline - now_mono_ms();

			if (left <= 0)
				return 0;
			timeout = left > 60000 ? 60000 : (int)left;
		}
		rc = poll(&pfd, 1, timeout);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0 && deadline >= 0)
			continue;	/* re-check the deadline */
		return rc < 0 ? -1 : 1;
	}
}

/* verify_peer - GnuTLS verify callback: accept the handshake only if the
 * other side's certificate carries one of our pins */
static int
verify_peer(gnutls_session_t session)
{
	struct tls_conn *c = gnutls_session_get_ptr(session);
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	unsigned int n = 0;

	free(c->peer_pin);
	c->peer_pin = NULL;
	certs = gnutls_certificate_get_peers(session, &n);
	if (certs == NULL || n == 0) {
		c->verdict = VERDICT_NO_CERT;
		return -1;
	}
	if (gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509 ||
	    import_crt("peer certificate", (const char *)certs[0].data, certs[0].size,
		       &crt, NULL) < 0) {
		c->verdict = VERDICT_BAD_CERT;
		return -1;
	}
	/* The first certificate is the one whose key signed the handshake. */
	if (pin_of_crt(crt, &c->peer_pin, NULL) < 0) {
		gnutls_x509_crt_deinit(crt);
		c->verdict = VERDICT_BAD_CERT;
		return -1;
	}
	gnutls_x509_crt_deinit(crt);
	if (c->pins == NULL || !strlist_contains(c->pins, c->peer_pin, false)) {
		c->verdict = VERDICT_BAD_PIN;
		return -1;
	}
	c->verdict = VERDICT_OK;
	return 0;
}

/* io_error - a caller-owned description of GnuTLS error rc on c, from
 * an operation named op ("read", "write"; NULL: the handshake) */
static char *
io_error(struct tls_conn *c, int rc, const char *op)
{
	if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		gnutls_alert_description_t a = gnutls_alert_get(c->session);
		const char *name = gnutls_alert_get_name(a);

		if (name == NULL)
			name = "unknown";
		if (a == GNUTLS_A_BAD_CERTIFICATE || a == GNUTLS_A_CERTIFICATE_UNKNOWN ||
		    a == GNUTLS_A_UNSUPPORTED_CERTIFICATE || a == GNUTLS_A_ACCESS_DENIED ||
		    a == GNUTLS_A_CERTIFICATE_REQUIRED)
			return xasprintf("peer refused our certificate (alert \"%s\"); "
					 "is our pin %s configured there?", name,
					 c->own_pin != NULL ? c->own_pin : "(unknown)");
		return xasprintf("peer sent fatal alert \"%s\"", name);
	}
	if (rc == GNUTLS_E_PREMATURE_TERMINATION)
		return xstrdup("connection closed by peer");
	if (rc == GNUTLS_E_PUSH_ERROR || rc == GNUTLS_E_PULL_ERROR)
		return xasprintf("%s%s%s", op ? op : "", op ? " failed: " : "",
				 strerror(errno));
	return xasprintf("%s%s%s", op ? op : "", op ? " failed: " : "",
			 gnutls_strerror(rc));
}

/* conn_send - send all of data within the deadline; 0 or -1 */
static int
conn_send(struct tls_conn *c, const char *data, size_t len, long long deadline,
	  char **err_r)
{
	size_t off = 0;
	char *why;

	while (off < len) {
		ssize_t n = gnutls_record_send(c->session, data + off, len - off);
		int ready;

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			/* GnuTLS holds a half-sent record: it must be resent as
			 * is, so a timeout here ends the conn. */
			if ((ready = wait_io(c, deadline)) > 0)
				continue;
			c->broken = 1;
			set_error(err_r, ready == 0 ? "write timed out" : "poll failed: %s",
				  strerror(errno));
			return -1;
		}
		c->broken = 1;
		why = io_error(c, (int)n, "write");
		set_error(err_r, "%s", why);
		free(why);
		return -1;
	}
	return 0;
}

/* conn_recv - take one frame into m within the deadline; 0 a frame, 1 a
 * clean end before any byte of it, -1 error (a timeout keeps c usable) */
static int
conn_recv(struct tls_conn *c, struct msg *m, long long deadline, char **err_r)
{
	char chunk[16384], *why;

	msg_clear(m);
	for (;;) {
		size_t avail = c->rbuf.len - c->rpos, used = 0;
		ssize_t n;
		int rc;

		if (avail > 0) {
			rc = msg_unframe(c->rbuf.data + c->rpos, avail, &used, m, err_r);
			if (rc == 1) {
				c->rpos += used;
				if (c->rpos == c->rbuf.len)
					c->rpos = c->rbuf.len = 0;
				return 0;
			}
			if (rc < 0) {
				/* The stream is out of step: nothing after is usable. */
				c->broken = 1;
				return -1;
			}
		}
		n = gnutls_record_recv(c->session, chunk, sizeof(chunk));
		if (n > 0) {
			/* Move the partial frame to the front, then append. */
			if (c->rpos > 0) {
				memmove(c->rbuf.data, c->rbuf.data + c->rpos, avail);
				c->rbuf.len = avail;
				c->rpos = 0;
			}
			buf_append(&c->rbuf, chunk, (size_t)n);
			continue;
		}
		if (n == 0) {
			c->broken = 1;	/* nothing more will come */
			if (avail == 0)
				return 1;
			set_error(err_r, "connection closed in the middle of a frame");
			return -1;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			if ((rc = wait_io(c, deadline)) > 0)
				continue;
			set_error(err_r, rc == 0 ? "read timed out" : "poll failed: %s",
				  strerror(errno));
			if (rc < 0)
				c->broken = 1;
			return -1;
		}
		if (!gnutls_error_is_fatal((int)n)) {
			/* A warning alert: go on, but within the deadline. */
			if (deadline < 0 || now_mono_ms() < deadline)
				continue;
			set_error(err_r, "read timed out");
			return -1;
		}
		c->broken = 1;
		why = io_error(c, (int)n, "read");
		set_error(err_r, "%s", why);
		free(why);
		return -1;
	}
}

/* conn_free - release c without touching its fd */
static void
conn_free(struct tls_conn *c)
{
	if (c->session != NULL)
		gnutls_deinit(c->session);
	buf_free(&c->rbuf);
	free(c->peer_pin);
	free(c);
}

/* handshake_error - why the handshake failed, as a caller-owned string */
static char *
handshake_error(struct tls_conn *c, int rc)
{
	switch (c->verdict) {
	case VERDICT_BAD_PIN:
		return xasprintf("peer presented pin %s which is not configured",
				 c->peer_pin);
	case VERDICT_NO_CERT:
		return xstrdup("peer presented no certificate");
	case VERDICT_BAD_CERT:
		return xstrdup("peer presented an unusable certificate");
	default:
		break;
	}
	if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED)
		return xstrdup("peer presented no certificate");
	/* A TLS 1.2 hello meets no TLS 1.3 suite: GnuTLS says only that. */
	if (rc == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ||
	    rc == GNUTLS_E_NO_CIPHER_SUITES || rc == GNUTLS_E_UNKNOWN_CIPHER_SUITE)
		return xasprintf("nothing in common with the peer; does it offer "
				 "TLS 1.3? (%s)", gnutls_strerror(rc));
	return io_error(c, rc, NULL);
}

int
tls_handshake(struct tls_ctx *ctx, int fd, int is_server,
	      const struct strlist *pins, int timeout_ms,
	      struct tls_conn **c_r, char **pin_r, char **err_r)
{
	long long deadline = deadline_of(timeout_ms);
	struct tls_conn *c;
	struct msg m = { 0 };
	const char *errpos = NULL;
	char *why = NULL;
	int flags, rc;

	*c_r = NULL;
	if (pin_r != NULL)
		*pin_r = NULL;
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		set_error(err_r, "TLS handshake failed: fcntl(O_NONBLOCK): %s",
			  strerror(errno));
		return -1;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->pins = pins;
	c->own_pin = ctx->pin;
	/* No tickets: we never resume, and a server ticket would be one more
	 * message between the handshake and our first frame. */
	if ((rc = gnutls_init(&c->session, (is_server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
			      GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS)) < 0) {
		c->session = NULL;
		why = xasprintf("gnutls_init: %s", gnutls_strerror(rc));
		goto fail;
	}
	if ((rc = gnutls_priority_set_direct(c->session, TLS_PRIORITY, &errpos)) < 0 ||
	    (rc = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE,
					 ctx->cred)) < 0) {
		why = xasprintf("session setup: %s", gnutls_strerror(rc));
		goto fail;
	}
	if (is_server)
		gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_REQUIRE);
	gnutls_session_set_ptr(c->session, c);
	gnutls_session_set_verify_function(c->session, verify_peer);
	gnutls_transport_set_int(c->session, fd);
	/* Our own deadline governs; GnuTLS' timer would need a blocking pull. */
	gnutls_handshake_set_timeout(c->session, 0);

	for (;;) {
		rc = gnutls_handshake(c->session);
		if (rc == 0)
			break;
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED ||
		    !gnutls_error_is_fatal(rc)) {
			/* A warning alert needs no waiting, only the deadline. */
			int ready = rc == GNUTLS_E_AGAIN ? wait_io(c, deadline) :
				(deadline < 0 || now_mono_ms() < deadline);

			if (ready > 0)
				continue;
			why = ready == 0 ?
				xasprintf("timed out after %d ms", timeout_ms) :
				xasprintf("poll failed: %s", strerror(errno));
			goto fail;
		}
		why = handshake_error(c, rc);
		/* Tell the peer why, so its operator sees a reason too. */
		if (rc != GNUTLS_E_FATAL_ALERT_RECEIVED &&
		    rc != GNUTLS_E_PREMATURE_TERMINATION)
			(void)gnutls_alert_send_appropriate(c->session, rc);
		goto fail;
	}
	if (c->verdict != VERDICT_OK) {
		/* Cannot happen: the callback runs in every certificate
		 * handshake.  Refuse rather than trust an unchecked peer. */
		why = xstrdup("peer certificate was not checked");
		goto fail;
	}

	/* A TLS 1.3 client is done before the server judged its certificate:
	 * the server's first frame tells it that it was accepted. */
	msg_set(&m, TLS_READY_KEY, TLS_READY_VALUE);
	if (is_server) {
		struct buf b = { 0 };

		msg_frame(&m, &b);
		rc = conn_send(c, b.data, b.len, deadline, &why);
		buf_free(&b);
		if (rc < 0)
			goto fail;
	} else {
		rc = conn_recv(c, &m, deadline, &why);
		if (rc == 1) {
			free(why);
			why = xstrdup("peer closed the connection after the handshake; "
				      "is our pin configured there?");
		} else if (rc == 0 &&
			   strcmp(msg_gets(&m, TLS_READY_KEY), TLS_READY_VALUE) != 0) {
			why = xstrdup("peer did not confirm the handshake");
			rc = -1;
		}
		if (rc != 0)
			goto fail;
	}
	msg_clear(&m);
	c->pins = NULL;		/* borrowed for the handshake only */
	if (pin_r != NULL) {
		*pin_r = c->peer_pin;
		c->peer_pin = NULL;
	}
	*c_r = c;
	return 0;
fail:
	set_error(err_r, "TLS handshake failed: %s", why);
	free(why);
	msg_clear(&m);
	conn_free(c);
	/* The caller owns the fd again, as it gave it. */
	(void)fcntl(fd, F_SETFL, flags);
	return -1;
}

int
tls_send_msg(struct tls_conn *c, const struct msg *m, int timeout_ms,
	     char **err_r)
{
	struct buf b = { 0 };
	int rc;

	if (c->broken) {
		set_error(err_r, "connection unusable after an earlier error");
		return -1;
	}
	msg_frame(m, &b);
	if (b.len - 4 > MSG_MAX_FRAME) {
		/* The receiver would refuse it: fail here, where it is known. */
		set_error(err_r, "record of %zu bytes is larger than %d", b.len - 4,
			  MSG_MAX_FRAME);
		buf_free(&b);
		return -1;
	}
	rc = conn_send(c, b.data, b.len, deadline_of(timeout_ms), err_r);
	buf_free(&b);
	return rc;
}

int
tls_recv_msg(struct tls_conn *c, struct msg *m, int timeout_ms, char **err_r)
{
	if (c->broken) {
		msg_clear(m);
		set_error(err_r, "connection unusable after an earlier error");
		return -1;
	}
	return conn_recv(c, m, deadline_of(timeout_ms), err_r);
}

int
tls_conn_fd(const struct tls_conn *c)
{
	return c->fd;
}

int
tls_conn_pending(const struct tls_conn *c)
{
	size_t avail = c->rbuf.len - c->rpos;

	if (gnutls_record_check_pending(c->session) > 0)
		return 1;
	if (avail >= 4) {
		const unsigned char *u = (const unsigned char *)c->rbuf.data + c->rpos;
		size_t n = ((size_t)u[0] << 24) | ((size_t)u[1] << 16) |
			((size_t)u[2] << 8) | u[3];

		/* A whole frame, or a length tls_recv_msg refuses at once. */
		if (n == 0 || n > MSG_MAX_FRAME || avail >= 4 + n)
			return 1;
	}
	return 0;
}

void
tls_close(struct tls_conn **c)
{
	struct tls_conn *conn = *c;

	if (conn == NULL)
		return;
	if (!conn->broken) {
		long long deadline = deadline_of(TLS_BYE_TIMEOUT_MS);

		/* SHUT_WR: say goodbye, do not wait for the peer's. */
		for (;;) {
			int rc = gnutls_bye(conn->session, GNUTLS_SHUT_WR);

			if ((rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED) ||
			    wait_io(conn, deadline) <= 0)
				break;
		}
	}
	close(conn->fd);
	conn_free(conn);
	*c = NULL;
}

void
tls_abort(struct tls_conn **c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct tls_conn *conn = *c;

	if (conn == NULL)
		return;
	(void)setsockopt(conn->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(conn->fd);
	conn_free(conn);
	*c = NULL;
}
