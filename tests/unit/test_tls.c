/* test_tls.c - unit tests for peer/tls.c: key and certificate creation,
 * SPKI pins (checked against a DER walk and against certtool), pinned
 * mutual TLS 1.3 handshakes over a socketpair (one side in a thread),
 * refusals and timeouts, and frames over the session.  certtool (Debian
 * package gnutls-bin) is used by one test, which is skipped without it.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "unit.h"
#include "conf.h"
#include "msg.h"
#include "tls.h"

/* Two identities: "a" and "b", created once per test in a fresh dir. */
static char *dir;
static char *key_a, *cert_a, *key_b, *cert_b;
static char *pin_a, *pin_b;
static int sv[2] = { -1, -1 };

static void
setup(void)
{
	char *err = NULL;

	tls_global_init();
	dir = ut_mkdtemp();
	key_a = ut_path(dir, "a.key");
	cert_a = ut_path(dir, "a.crt");
	key_b = ut_path(dir, "b.key");
	cert_b = ut_path(dir, "b.crt");
	cr_assert_eq(tls_keygen(key_a, cert_a, "a.example", &err), 1, "%s", err);
	cr_assert_eq(tls_keygen(key_b, cert_b, "b.example", &err), 1, "%s", err);
	cr_assert_eq(tls_pin_of_cert_file(cert_a, &pin_a, &err), 0, "%s", err);
	cr_assert_eq(tls_pin_of_cert_file(cert_b, &pin_b, &err), 0, "%s", err);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void
teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0) {
			close(sv[i]);
			sv[i] = -1;
		}
	free(key_a);
	free(cert_a);
	free(key_b);
	free(cert_b);
	free(pin_a);
	free(pin_b);
	key_a = cert_a = key_b = cert_b = pin_a = pin_b = NULL;
	ut_rmtree(&dir);
	tls_global_deinit();
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 30);

/* --- helpers --- */

/* One side of a handshake, run in a thread or inline. */
struct side {
	struct tls_ctx *ctx;
	int fd;
	int is_server;
	struct strlist pins;
	int timeout_ms;
	int rc;
	long long elapsed_ms;
	struct tls_conn *conn;
	char *pin;
	char *err;
};

/* side_new - a side with its own ctx from key/cert and one pin */
static void
side_init(struct side *s, const char *key, const char *cert, int fd,
	  int is_server, const char *pin)
{
	char *err = NULL;

	memset(s, 0, sizeof(*s));
	cr_assert_eq(tls_ctx_new(key, cert, &s->ctx, &err), 0, "%s", err);
	s->fd = fd;
	s->is_server = is_server;
	s->timeout_ms = 5000;
	if (pin != NULL)
		strlist_add(&s->pins, pin);
}

static void
side_free(struct side *s)
{
	if (s->conn != NULL) {
		tls_close(&s->conn);
		/* tls_close closed the fd: keep teardown from closing it again */
		for (int i = 0; i < 2; i++)
			if (sv[i] == s->fd)
				sv[i] = -1;
	}
	tls_ctx_free(&s->ctx);
	strlist_clear(&s->pins);
	free(s->pin);
	free(s->err);
}

static void *
side_run(void *arg)
{
	struct side *s = arg;
	long long t0 = now_mono_ms();

	s->rc = tls_handshake(s->ctx, s->fd, s->is_server, &s->pins, s->timeout_ms,
			      &s->conn, &s->pin, &s->err);
	s->elapsed_ms = now_mono_ms() - t0;
	return NULL;
}

/* run_pair - handshake a (in a thread) against b (here) */
static void
run_pair(struct side *a, struct side *b)
{
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, side_run, a), 0);
	side_run(b);
	cr_assert_eq(pthread_join(t, NULL), 0);
}

/* A plain GnuTLS client, for what our own API will not do. */
struct raw {
	gnutls_certificate_credentials_t cred;
	gnutls_session_t session;
	int rc;
};

/* raw_client - blocking handshake on fd with priority prio and, if key is
 * not NULL, a certificate; the result is in r->rc */
static void
raw_client(struct raw *r, int fd, const char *key, const char *cert,
	   const char *prio)
{
	memset(r, 0, sizeof(*r));
	cr_assert_eq(gnutls_certificate_allocate_credentials(&r->cred), 0);
	if (key != NULL)
		cr_assert_geq(gnutls_certificate_set_x509_key_file(r->cred, cert, key,
								   GNUTLS_X509_FMT_PEM), 0);
	cr_assert_eq(gnutls_init(&r->session, GNUTLS_CLIENT), 0);
	cr_assert_eq(gnutls_priority_set_direct(r->session, prio, NULL), 0);
	cr_assert_eq(gnutls_credentials_set(r->session, GNUTLS_CRD_CERTIFICATE,
					    r->cred), 0);
	gnutls_transport_set_int(r->session, fd);
	gnutls_handshake_set_timeout(r->session, 5000);
	do
		r->rc = gnutls_handshake(r->session);
	while (r->rc < 0 && !gnutls_error_is_fatal(r->rc));
}

static void
raw_free(struct raw *r)
{
	if (r->session != NULL)
		gnutls_deinit(r->session);
	if (r->cred != NULL)
		gnutls_certificate_free_credentials(r->cred);
}

/* raw_send - one TLS record holding exactly data */
static void
raw_send(struct raw *r, const void *data, size_t len)
{
	cr_assert_eq(gnutls_record_send(r->session, data, len), (ssize_t)len);
}

/* frame_bytes - the frame of m appended to b */
static void
frame_bytes(struct buf *b, const char *key, const char *value)
{
	struct msg m = { 0 };

	msg_set(&m, key, value);
	msg_frame(&m, b);
	msg_clear(&m);
}

/* server_vs_raw - our server (thread) against a raw client (here) that
 * holds cert b; the server pins b unless pins_b is 0 */
static void
server_vs_raw(struct side *srv, struct raw *r, const char *prio, int with_cert)
{
	pthread_t t;

	side_init(srv, key_a, cert_a, sv[0], 1, pin_b);
	cr_assert_eq(pthread_create(&t, NULL, side_run, srv), 0);
	raw_client(r, sv[1], with_cert ? key_b : NULL, with_cert ? cert_b : NULL,
		   prio);
	cr_assert_eq(pthread_join(t, NULL), 0);
}

/* connected - a, b handshaken: a is the server on sv[0], b the client */
static void
connected(struct side *a, struct side *b)
{
	side_init(a, key_a, cert_a, sv[0], 1, pin_b);
	side_init(b, key_b, cert_b, sv[1], 0, pin_a);
	run_pair(a, b);
	cr_assert_eq(a->rc, 0, "server: %s", a->err);
	cr_assert_eq(b->rc, 0, "client: %s", b->err);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "stat %s", path);
	return st.st_mode & 07777;
}

/* --- keygen --- */

Test(tls, keygen_creates_key_and_cert)
{
	char *key = ut_path(dir, "k.pem"), *cert = ut_path(dir, "c.pem");
	char *err = NULL, *k, *c;
	int before = ut_count_entries(dir);

	cr_assert_eq(tls_keygen(key, cert, "node.example", &err), 1, "%s", err);
	cr_assert_eq(mode_of(key), 0600);
	cr_assert_eq(mode_of(cert), 0644);
	k = ut_slurp(key);
	c = ut_slurp(cert);
	cr_assert(strncmp(k, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "%s", k);
	cr_assert(strncmp(c, "-----BEGIN CERTIFICATE-----\n", 28) == 0, "%s", c);
	cr_assert_eq(ut_count_entries(dir), before + 2, "no temporary file left");
	free(k);
	free(c);
	free(key);
	free(cert);
}

Test(tls, keygen_second_call_changes_nothing)
{
	char *err = NULL, *k0 = ut_slurp(key_a), *c0 = ut_slurp(cert_a), *k1, *c1;
	struct stat sk0, sc0, sk1, sc1;

	cr_assert_eq(stat(key_a, &sk0), 0);
	cr_assert_eq(stat(cert_a, &sc0), 0);
	cr_assert_eq(tls_keygen(key_a, cert_a, "other.example", &err), 0, "%s", err);
	cr_assert_null(err);
	cr_assert_eq(stat(key_a, &sk1), 0);
	cr_assert_eq(stat(cert_a, &sc1), 0);
	cr_assert_eq(sk0.st_ino, sk1.st_ino, "key rewritten");
	cr_assert_eq(sc0.st_ino, sc1.st_ino, "cert rewritten");
	k1 = ut_slurp(key_a);
	c1 = ut_slurp(cert_a);
	cr_assert_str_eq(k0, k1);
	cr_assert_str_eq(c0, c1);
	free(k0);
	free(c0);
	free(k1);
	free(c1);
}

Test(tls, keygen_makes_missing_cert_from_existing_key)
{
	char *err = NULL, *k0 = ut_slurp(key_a), *k1, *pin = NULL;

	cr_assert_eq(unlink(cert_a), 0);
	cr_assert_eq(tls_keygen(key_a, cert_a, "a.example", &err), 1, "%s", err);
	k1 = ut_slurp(key_a);
	cr_assert_str_eq(k0, k1, "the key is kept");
	cr_assert_eq(mode_of(cert_a), 0644);
	cr_assert_eq(tls_pin_of_cert_file(cert_a, &pin, &err), 0, "%s", err);
	cr_assert_str_eq(pin, pin_a, "same key, same pin");
	free(pin);
	free(k0);
	free(k1);
}

Test(tls, keygen_replaces_cert_without_key)
{
	char *err = NULL, *pin = NULL;

	cr_assert_eq(unlink(key_a), 0);
	cr_assert_eq(tls_keygen(key_a, cert_a, "a.example", &err), 1, "%s", err);
	cr_assert_eq(mode_of(key_a), 0600);
	cr_assert_eq(tls_pin_of_cert_file(cert_a, &pin, &err), 0, "%s", err);
	cr_assert_str_neq(pin, pin_a, "a new key has a new pin");
	free(pin);
}

Test(tls, keygen_cert_fields)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	char *pem = ut_slurp(cert_a), *pem_b = ut_slurp(cert_b);
	char cn[256], serial[64], serial_b[64];
	size_t cn_len = sizeof(cn), s_len = sizeof(serial), sb_len = sizeof(serial_b);
	time_t now = time(NULL);

	cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
	d.data = (unsigned char *)pem;
	d.size = (unsigned int)strlen(pem);
	cr_assert_eq(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
	cr_assert_eq(gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
						   0, cn, &cn_len), 0);
	cr_assert_str_eq(cn, "a.example");
	cr_assert_eq(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
	cr_assert_geq(gnutls_x509_crt_get_expiration_time(crt),
		      now + (time_t)19 * 365 * 86400, "long validity");
	cr_assert_leq(gnutls_x509_crt_get_activation_time(crt), now);
	cr_assert_eq(gnutls_x509_crt_get_serial(crt, serial, &s_len), 0);
	cr_assert_geq(s_len, 8);
	cr_assert_eq(serial[0] & 0x80, 0, "serial is positive");
	gnutls_x509_crt_deinit(crt);

	cr_assert_eq(gnutls_x509_crt_init(&crt), 0);
	d.data = (unsigned char *)pem_b;
	d.size = (unsigned int)strlen(pem_b);
	cr_assert_eq(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
	cr_assert_eq(gnutls_x509_crt_get_serial(crt, serial_b, &sb_len), 0);
	cr_assert(s_len != sb_len || memcmp(serial, serial_b, s_len) != 0,
		  "serials are random");
	gnutls_x509_crt_deinit(crt);
	free(pem);
	free(pem_b);
}

Test(tls, keygen_errors)
{
	char *err = NULL, *key = ut_path(dir, "nodir/k.pem"), *cert = ut_path(dir, "nodir/c.pem");
	char *bad = ut_write(dir, "bad.key", "not a key\n"), *bad_cert = ut_path(dir, "bad.crt");

	cr_assert_eq(tls_keygen(key, cert, "x.example", &err), -1);
	cr_assert_not_null(strstr(err, "nodir"), "%s", err);
	cr_assert_eq(tls_keygen(bad, bad_cert, "x.example", &err), -1);
	cr_assert_not_null(strstr(err, "bad.key"), "%s", err);
	cr_assert_eq(access(bad_cert, F_OK), -1, "no cert for a bad key");
	cr_assert_eq(tls_keygen(key_a, bad_cert, "", &err), -1);
	free(err);
	free(key);
	free(cert);
	free(bad);
	free(bad_cert);
}

/* --- pins --- */

Test(tls, pin_format)
{
	cr_assert_eq(strlen(pin_a), TLS_PIN_LEN);
	cr_assert(strncmp(pin_a, "sha256//", 8) == 0, "%s", pin_a);
	cr_assert_eq(pin_a[TLS_PIN_LEN - 1], '=');
	cr_assert_null(strchr(pin_a, '\n'));
	cr_assert_eq(conf_pin_valid(pin_a), 1, "%s", pin_a);
	cr_assert_str_neq(pin_a, pin_b);
}

/* der_tlv - length of the header and of the content of the TLV at p */
static void
der_tlv(const unsigned char *p, size_t avail, size_t *hdr, size_t *len)
{
	cr_assert_geq(avail, 2);
	if (p[1] < 0x80) {
		*hdr = 2;
		*len = p[1];
	} else {
		size_t n = p[1] & 0x7f;

		cr_assert(n >= 1 && n <= 3 && avail >= 2 + n);
		*len = 0;
		for (size_t i = 0; i < n; i++)
			*len = (*len << 8) | p[2 + i];
		*hdr = 2 + n;
	}
	cr_assert_leq(*hdr + *len, avail);
}

/* The pin is SHA-256 over the DER SubjectPublicKeyInfo, found here by
 * walking the certificate's DER by hand (RFC 5280 4.1). */
Test(tls, pin_is_sha256_of_spki)
{
	gnutls_datum_t pem, der, b64, pin_raw;
	char *text = ut_slurp(cert_a);
	const unsigned char *p;
	size_t avail, hdr, len;
	unsigned char digest[32];

	pem.data = (unsigned char *)text;
	pem.size = (unsigned int)strlen(text);
	cr_assert_eq(gnutls_pem_base64_decode2("CERTIFICATE", &pem, &der), 0);
	p = der.data;
	avail = der.size;
	der_tlv(p, avail, &hdr, &len);		/* Certificate ::= SEQUENCE */
	cr_assert_eq(p[0], 0x30);
	p += hdr;
	avail = len;
	der_tlv(p, avail, &hdr, &len);		/* tbsCertificate ::= SEQUENCE */
	cr_assert_eq(p[0], 0x30);
	p += hdr;
	avail = len;
	der_tlv(p, avail, &hdr, &len);
	if (p[0] == 0xa0) {			/* [0] version */
		p += hdr + len;
		avail -= hdr + len;
	}
	/* serialNumber, signature, issuer, validity, subject */
	static const unsigned char skip[] = { 0x02, 0x30, 0x30, 0x30, 0x30 };

	for (size_t i = 0; i < sizeof(skip); i++) {
		der_tlv(p, avail, &hdr, &len);
		cr_assert_eq(p[0], skip[i], "field %zu", i);
		p += hdr + len;
		avail -= hdr + len;
	}
	der_tlv(p, avail, &hdr, &len);		/* subjectPublicKeyInfo */
	cr_assert_eq(p[0], 0x30);
	cr_assert_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, p, hdr + len, digest), 0);

	b64.data = (unsigned char *)pin_a + 8;
	b64.size = 44;
	cr_assert_eq(gnutls_base64_decode2(&b64, &pin_raw), 0);
	cr_assert_eq(pin_raw.size, 32);
	cr_assert_eq(memcmp(pin_raw.data, digest, 32), 0, "pin is not SHA-256(SPKI)");
	gnutls_free(pin_raw.data);
	gnutls_free(der.data);
	free(text);
}

/* run_cmd - stdout of a shell command, caller frees */
static char *
run_cmd(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	char line[512];
	struct buf b = { 0 };

	cr_assert_not_null(f, "popen %s", cmd);
	buf_append(&b, "", 0);
	while (fgets(line, sizeof(line), f) != NULL)
		buf_append(&b, line, strlen(line));
	cr_assert_eq(pclose(f), 0, "%s failed", cmd);
	return b.data;
}

/* The same pin from GnuTLS' command line tool (package gnutls-bin). */
Test(tls, pin_matches_certtool)
{
	char *cmd, *hex, *info, *want;
	gnutls_datum_t b64, raw;
	char ours[65];

	if (system("certtool --version >/dev/null 2>&1") != 0)
		cr_skip_test("certtool (gnutls-bin) is not installed");
	/* The documented pipeline: SHA-256 over the DER public key. */
	cmd = xasprintf("certtool --pubkey-info --load-certificate '%s' --outder "
			"| sha256sum", cert_a);
	hex = run_cmd(cmd);
	b64.data = (unsigned char *)pin_a + 8;
	b64.size = 44;
	cr_assert_eq(gnutls_base64_decode2(&b64, &raw), 0);
	for (unsigned i = 0; i < raw.size; i++)
		snprintf(ours + 2 * i, 3, "%02x", raw.data[i]);
	cr_assert(strncmp(hex, ours, 64) == 0, "certtool %s vs ours %s", hex, ours);
	gnutls_free(raw.data);
	free(cmd);
	/* And certtool's own RFC 7469 pin, base64 and all. */
	cmd = xasprintf("certtool -i --infile '%s'", cert_a);
	info = run_cmd(cmd);
	want = xasprintf("pin-sha256:%s\n", pin_a + 8);
	cr_assert_not_null(strstr(info, want), "%s not in:\n%s", want, info);
	free(want);
	free(info);
	free(cmd);
	free(hex);
}

Test(tls, pin_of_bad_files)
{
	char *err = NULL, *pin = NULL, *missing = ut_path(dir, "missing.crt");
	char *junk = ut_write(dir, "junk.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n");

	cr_assert_eq(tls_pin_of_cert_file(missing, &pin, &err), -1);
	cr_assert_not_null(strstr(err, "missing.crt"), "%s", err);
	cr_assert_eq(tls_pin_of_cert_file(junk, &pin, &err), -1);
	cr_assert_not_null(strstr(err, "junk.crt"), "%s", err);
	cr_assert_eq(tls_pin_of_cert_file(key_a, &pin, &err), -1, "a key is no cert");
	cr_assert_null(pin);
	free(err);
	free(missing);
	free(junk);
}

/* --- credentials --- */

Test(tls, ctx_new_and_pin)
{
	struct tls_ctx *ctx = NULL;
	char *err = NULL;

	cr_assert_eq(tls_ctx_new(key_a, cert_a, &ctx, &err), 0, "%s", err);
	cr_assert_str_eq(tls_ctx_pin(ctx), pin_a);
	tls_ctx_free(&ctx);
	cr_assert_null(ctx);
	tls_ctx_free(&ctx);
}

Test(tls, ctx_new_errors)
{
	struct tls_ctx *ctx = NULL;
	char *err = NULL, *missing = ut_path(dir, "missing.key");

	cr_assert_eq(tls_ctx_new(key_a, cert_b, &ctx, &err), -1, "key/cert mismatch");
	cr_assert_null(ctx);
	cr_assert_not_null(strstr(err, "a.key"), "%s", err);
	cr_assert_eq(tls_ctx_new(missing, cert_a, &ctx, &err), -1);
	cr_assert_not_null(strstr(err, "missing.key"), "%s", err);
	cr_assert_eq(tls_ctx_new(key_a, missing, &ctx, &err), -1);
	cr_assert_not_null(strstr(err, "missing.key"), "%s", err);
	free(err);
	free(missing);
}

/* --- handshakes --- */

Test(tls, handshake_both_sides_see_each_others_pin)
{
	struct side a, b;

	side_init(&a, key_a, cert_a, sv[0], 1, pin_b);
	side_init(&b, key_b, cert_b, sv[1], 0, pin_a);
	/* A second, unrelated pin: key rotation lists two. */
	strlist_add(&a.pins, "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	run_pair(&a, &b);
	cr_assert_eq(a.rc, 0, "server: %s", a.err);
	cr_assert_eq(b.rc, 0, "client: %s", b.err);
	cr_assert_str_eq(a.pin, pin_b);
	cr_assert_str_eq(b.pin, pin_a);
	cr_assert_eq(tls_conn_fd(a.conn), sv[0]);
	cr_assert_eq(tls_conn_fd(b.conn), sv[1]);
	cr_assert_eq(tls_conn_pending(a.conn), 0);
	cr_assert_eq(tls_conn_pending(b.conn), 0);
	side_free(&a);
	side_free(&b);
}

Test(tls, handshake_client_is_server_role_too)
{
	struct side a, b;

	/* Roles swapped: b serves, a connects. */
	side_init(&a, key_a, cert_a, sv[0], 0, pin_b);
	side_init(&b, key_b, cert_b, sv[1], 1, pin_a);
	run_pair(&a, &b);
	cr_assert_eq(a.rc, 0, "client: %s", a.err);
	cr_assert_eq(b.rc, 0, "server: %s", b.err);
	cr_assert_str_eq(a.pin, pin_b);
	cr_assert_str_eq(b.pin, pin_a);
	side_free(&a);
	side_free(&b);
}

Test(tls, handshake_server_refuses_unknown_client_pin)
{
	struct side a, b;
	char *want;

	side_init(&a, key_a, cert_a, sv[0], 1, pin_a);	/* not b's pin */
	side_init(&b, key_b, cert_b, sv[1], 0, pin_a);
	run_pair(&a, &b);
	cr_assert_eq(a.rc, -1);
	cr_assert_null(a.conn);
	cr_assert_null(a.pin);
	want = xasprintf("peer presented pin %s which is not configured", pin_b);
	cr_assert_not_null(strstr(a.err, want), "%s", a.err);
	/* The client learns it too, inside its own handshake call. */
	cr_assert_eq(b.rc, -1, "client accepted a refused session");
	cr_assert_null(b.conn);
	cr_assert_not_null(strstr(b.err, pin_b), "client hint names its pin: %s", b.err);
	ut_assert_reply_safe(a.err);
	free(want);
	side_free(&a);
	side_free(&b);
}

Test(tls, handshake_client_refuses_unknown_server_pin)
{
	struct side a, b;
	char *want;

	side_init(&a, key_a, cert_a, sv[0], 1, pin_b);
	side_init(&b, key_b, cert_b, sv[1], 0, pin_b);	/* not a's pin */
	run_pair(&a, &b);
	cr_assert_eq(b.rc, -1);
	want = xasprintf("peer presented pin %s which is not configured", pin_a);
	cr_assert_not_null(strstr(b.err, want), "%s", b.err);
	cr_assert_eq(a.rc, -1, "server accepted a refused session");
	cr_assert_not_null(strstr(a.err, "refused our certificate"), "%s", a.err);
	cr_assert_null(a.conn);
	free(want);
	side_free(&a);
	side_free(&b);
}

Test(tls, handshake_empty_pin_list_refuses)
{
	struct side a, b;

	side_init(&a, key_a, cert_a, sv[0], 1, NULL);
	side_init(&b, key_b, cert_b, sv[1], 0, pin_a);
	run_pair(&a, &b);
	cr_assert_eq(a.rc, -1);
	cr_assert_eq(b.rc, -1);
	cr_assert_not_null(strstr(a.err, pin_b), "%s", a.err);
	side_free(&a);
	side_free(&b);
}

Test(tls, handshake_refuses_client_without_certificate)
{
	struct side srv;
	struct raw r;

	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 0);
	cr_assert_eq(srv.rc, -1);
	cr_assert_null(srv.conn);
	cr_assert_not_null(strstr(srv.err, "no certificate"), "%s", srv.err);
	raw_free(&r);
	side_free(&srv);
}

Test(tls, handshake_refuses_tls12_client)
{
	struct side srv;
	struct raw r;

	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.2", 1);
	cr_assert_eq(srv.rc, -1);
	cr_assert_null(srv.conn);
	cr_assert_lt(r.rc, 0, "TLS 1.2 client got through");
	cr_assert_not_null(strstr(srv.err, "TLS 1.3"), "%s", srv.err);
	raw_free(&r);
	side_free(&srv);
}

Test(tls, handshake_raw_tls13_client_with_pinned_cert_works)
{
	struct side srv;
	struct raw r;
	char buf[64];
	ssize_t n;

	/* Guards the two refusals above: with a cert and TLS 1.3 it works. */
	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1);
	cr_assert_eq(srv.rc, 0, "%s", srv.err);
	cr_assert_eq(r.rc, 0, "%s", gnutls_strerror(r.rc));
	cr_assert_eq(gnutls_protocol_get_version(r.session), GNUTLS_TLS1_3);
	/* The confirmation frame is the first thing the server says. */
	n = gnutls_record_recv(r.session, buf, sizeof(buf));
	cr_assert_gt(n, 4);
	cr_assert(memmem(buf, (size_t)n, "tls=ready", 9) != NULL);
	raw_free(&r);
	side_free(&srv);
}

Test(tls, handshake_garbage_fails_fast)
{
	struct side srv;
	pthread_t t;
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	int flags;

	side_init(&srv, key_a, cert_a, sv[0], 1, pin_b);
	srv.timeout_ms = 3000;
	cr_assert_eq(write(sv[1], junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	cr_assert_eq(pthread_create(&t, NULL, side_run, &srv), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(srv.rc, -1);
	cr_assert_lt(srv.elapsed_ms, 3000, "took %lld ms", srv.elapsed_ms);
	/* The fd is the caller's again: open, and blocking as it was. */
	cr_assert_geq((flags = fcntl(sv[0], F_GETFL)), 0);
	cr_assert_eq(flags & O_NONBLOCK, 0);
	side_free(&srv);
}

Test(tls, handshake_garbage_record_header_then_silence_times_out)
{
	struct side srv;
	/* A handshake record header announcing more bytes than will come. */
	static const unsigned char hdr[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };

	side_init(&srv, key_a, cert_a, sv[0], 1, pin_b);
	srv.timeout_ms = 300;
	cr_assert_eq(write(sv[1], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	side_run(&srv);
	cr_assert_eq(srv.rc, -1);
	cr_assert_geq(srv.elapsed_ms, 250);
	cr_assert_lt(srv.elapsed_ms, 1500, "took %lld ms", srv.elapsed_ms);
	side_free(&srv);
}

Test(tls, handshake_silent_peer_times_out)
{
	struct side srv, cli;

	/* A server that hears nothing ... */
	side_init(&srv, key_a, cert_a, sv[0], 1, pin_b);
	srv.timeout_ms = 300;
	side_run(&srv);
	cr_assert_eq(srv.rc, -1);
	cr_assert_not_null(strstr(srv.err, "timed out"), "%s", srv.err);
	cr_assert_geq(srv.elapsed_ms, 250);
	cr_assert_lt(srv.elapsed_ms, 1500, "took %lld ms", srv.elapsed_ms);
	/* ... and a client whose server never answers its hello. */
	side_init(&cli, key_b, cert_b, sv[1], 0, pin_a);
	cli.timeout_ms = 300;
	side_run(&cli);
	cr_assert_eq(cli.rc, -1);
	cr_assert_not_null(strstr(cli.err, "timed out"), "%s", cli.err);
	cr_assert_lt(cli.elapsed_ms, 1500, "took %lld ms", cli.elapsed_ms);
	side_free(&srv);
	side_free(&cli);
}

Test(tls, handshake_peer_hangs_up)
{
	struct side srv;

	side_init(&srv, key_a, cert_a, sv[0], 1, pin_b);
	close(sv[1]);
	sv[1] = -1;
	side_run(&srv);
	cr_assert_eq(srv.rc, -1);
	cr_assert_lt(srv.elapsed_ms, 1500);
	ut_assert_reply_safe(srv.err);
	side_free(&srv);
}

/* Two handshakes at once on one ctx: a ctx is shared between threads. */
Test(tls, ctx_shared_between_threads)
{
	int sv2[2];
	struct side a1, a2, b1, b2;
	pthread_t t1, t2;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
	side_init(&a1, key_a, cert_a, sv[0], 1, pin_b);
	side_init(&a2, key_a, cert_a, sv2[0], 1, pin_b);
	tls_ctx_free(&a2.ctx);
	a2.ctx = a1.ctx;
	side_init(&b1, key_b, cert_b, sv[1], 0, pin_a);
	side_init(&b2, key_b, cert_b, sv2[1], 0, pin_a);
	cr_assert_eq(pthread_create(&t1, NULL, side_run, &a1), 0);
	cr_assert_eq(pthread_create(&t2, NULL, side_run, &a2), 0);
	side_run(&b1);
	side_run(&b2);
	cr_assert_eq(pthread_join(t1, NULL), 0);
	cr_assert_eq(pthread_join(t2, NULL), 0);
	cr_assert_eq(a1.rc, 0, "%s", a1.err);
	cr_assert_eq(a2.rc, 0, "%s", a2.err);
	cr_assert_eq(b1.rc, 0, "%s", b1.err);
	cr_assert_eq(b2.rc, 0, "%s", b2.err);
	a2.ctx = NULL;
	side_free(&a2);
	side_free(&b2);
	side_free(&a1);
	side_free(&b1);
}

/* --- frames --- */

struct sender {
	struct tls_conn *c;
	struct msg *m;
	int count;
	int rc;
	char *err;
};

static void *
sender_run(void *arg)
{
	struct sender *s = arg;

	s->rc = 0;
	for (int i = 0; i < s->count && s->rc == 0; i++)
		s->rc = tls_send_msg(s->c, s->m, 5000, &s->err);
	return NULL;
}

Test(tls, frames_round_trip_small_and_60k)
{
	struct side a, b;
	struct msg m = { 0 }, got = { 0 };
	struct sender snd = { 0 };
	pthread_t t;
	char *err = NULL, *big = xmalloc(60 * 1024 + 1);

	connected(&a, &b);
	msg_set(&m, "op", "hello");
	msg_set(&m, "text", "with space, = and %");
	cr_assert_eq(tls_send_msg(b.conn, &m, 1000, &err), 0, "%s", err);
	cr_assert_eq(tls_recv_msg(a.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "op"), "hello");
	cr_assert_str_eq(msg_gets(&got, "text"), "with space, = and %");
	cr_assert_str_eq(msg_gets(&got, "v"), "1");

	/* 60 KB spans four TLS records; the socket buffer may not hold it,
	 * so the receiver runs while the sender is still writing. */
	for (size_t i = 0; i < 60 * 1024; i++)
		big[i] = (char)('a' + i % 26);
	big[60 * 1024] = '\0';
	msg_clear(&m);
	msg_set(&m, "big", big);
	snd.c = a.conn;
	snd.m = &m;
	snd.count = 1;
	cr_assert_eq(pthread_create(&t, NULL, sender_run, &snd), 0);
	cr_assert_eq(tls_recv_msg(b.conn, &got, 5000, &err), 0, "%s", err);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(snd.rc, 0, "%s", snd.err);
	cr_assert_str_eq(msg_gets(&got, "big"), big);
	cr_assert_eq(tls_conn_pending(b.conn), 0);

	msg_clear(&m);
	msg_clear(&got);
	free(big);
	free(err);
	side_free(&a);
	side_free(&b);
}

Test(tls, frames_back_to_back)
{
	struct side a, b;
	struct msg m = { 0 }, got = { 0 };
	char *err = NULL;

	connected(&a, &b);
	for (int i = 0; i < 20; i++) {
		msg_setf(&m, "n", "%d", i);
		cr_assert_eq(tls_send_msg(a.conn, &m, 1000, &err), 0, "%s", err);
	}
	for (int i = 0; i < 20; i++) {
		char want[16];

		cr_assert_eq(tls_recv_msg(b.conn, &got, 1000, &err), 0, "%s", err);
		snprintf(want, sizeof(want), "%d", i);
		cr_assert_str_eq(msg_gets(&got, "n"), want);
	}
	msg_clear(&m);
	msg_clear(&got);
	side_free(&a);
	side_free(&b);
}

/* A raw client, so one TLS record can hold several frames, and one frame
 * can be split over records. */
Test(tls, frames_packed_and_split_records)
{
	struct side srv;
	struct raw r;
	struct buf b = { 0 };
	struct msg got = { 0 };
	char *err = NULL;

	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1);
	cr_assert_eq(srv.rc, 0, "%s", srv.err);
	frame_bytes(&b, "n", "1");
	frame_bytes(&b, "n", "2");
	frame_bytes(&b, "n", "3");
	raw_send(&r, b.data, b.len);		/* three frames, one record */
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "n"), "1");
	cr_assert_eq(tls_conn_pending(srv.conn), 1, "poll would miss frame 2");
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "n"), "2");
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "n"), "3");
	cr_assert_eq(tls_conn_pending(srv.conn), 0);

	/* One frame in three records: 2 bytes, the rest of the header and a
	 * bit, then the tail; plus the head of the next frame. */
	buf_reset(&b);
	frame_bytes(&b, "op", "split");
	frame_bytes(&b, "op", "next");
	raw_send(&r, b.data, 2);
	raw_send(&r, b.data + 2, 5);
	cr_assert_eq(tls_conn_pending(srv.conn), 0, "half a frame is not pending");
	raw_send(&r, b.data + 7, b.len - 7 - 3);
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "op"), "split");
	raw_send(&r, b.data + b.len - 3, 3);
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "op"), "next");

	/* close_notify between frames is a clean end. */
	cr_assert_eq(gnutls_bye(r.session, GNUTLS_SHUT_WR), 0);
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), 1, "%s", err);
	cr_assert_eq(got.n, 0);
	msg_clear(&got);
	buf_free(&b);
	free(err);
	raw_free(&r);
	side_free(&srv);
}

Test(tls, frames_oversized_length_refused)
{
	struct side srv;
	struct raw r;
	struct msg got = { 0 };
	char *err = NULL;
	static const unsigned char huge[] = { 0x00, 0x01, 0x00, 0x01, 'v', '=' };

	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1);
	cr_assert_eq(srv.rc, 0, "%s", srv.err);
	raw_send(&r, huge, sizeof(huge));	/* MSG_MAX_FRAME + 1 */
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), -1);
	cr_assert_not_null(strstr(err, "out of range"), "%s", err);
	/* The stream is out of step: the conn stays refused. */
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 100, &err), -1);
	free(err);
	raw_free(&r);
	side_free(&srv);
}

Test(tls, frames_garbage_and_truncation_refused)
{
	struct side srv;
	struct raw r;
	struct msg got = { 0 };
	char *err = NULL;
	static const unsigned char bad[] = { 0, 0, 0, 5, 'v', '=', '9', ' ', 'x' };

	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1);
	cr_assert_eq(srv.rc, 0, "%s", srv.err);
	raw_send(&r, bad, sizeof(bad));
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), -1);
	cr_assert_null(strstr(err, "timed out"), "%s", err);
	raw_free(&r);
	side_free(&srv);
	free(err);
}

Test(tls, frames_truncated_by_close_notify)
{
	struct side srv;
	struct raw r;
	struct buf b = { 0 };
	struct msg got = { 0 };
	char *err = NULL;

	server_vs_raw(&srv, &r, "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1);
	cr_assert_eq(srv.rc, 0, "%s", srv.err);
	frame_bytes(&b, "op", "cut");
	raw_send(&r, b.data, b.len - 1);
	cr_assert_eq(gnutls_bye(r.session, GNUTLS_SHUT_WR), 0);
	cr_assert_eq(tls_recv_msg(srv.conn, &got, 1000, &err), -1);
	cr_assert_not_null(strstr(err, "middle of a frame"), "%s", err);
	buf_free(&b);
	free(err);
	raw_free(&r);
	side_free(&srv);
}

Test(tls, send_refuses_oversized_record)
{
	struct side a, b;
	struct msg m = { 0 }, got = { 0 };
	char *err = NULL, *big = xmalloc(MSG_MAX_FRAME + 1);

	connected(&a, &b);
	memset(big, 'x', MSG_MAX_FRAME);
	big[MSG_MAX_FRAME] = '\0';
	msg_set(&m, "big", big);
	cr_assert_eq(tls_send_msg(a.conn, &m, 1000, &err), -1);
	cr_assert_not_null(strstr(err, "larger than"), "%s", err);
	/* Nothing was sent, and the conn still works. */
	msg_clear(&m);
	msg_set(&m, "op", "after");
	cr_assert_eq(tls_send_msg(a.conn, &m, 1000, &err), 0, "%s", err);
	cr_assert_eq(tls_recv_msg(b.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "op"), "after");
	msg_clear(&m);
	msg_clear(&got);
	free(big);
	free(err);
	side_free(&a);
	side_free(&b);
}

Test(tls, recv_timeout_keeps_conn_usable)
{
	struct side a, b;
	struct msg m = { 0 }, got = { 0 };
	char *err = NULL;
	long long t0 = now_mono_ms(), dt;

	connected(&a, &b);
	t0 = now_mono_ms();
	cr_assert_eq(tls_recv_msg(b.conn, &got, 200, &err), -1);
	dt = now_mono_ms() - t0;
	cr_assert_not_null(strstr(err, "timed out"), "%s", err);
	cr_assert(dt >= 150 && dt < 1500, "took %lld ms", dt);
	msg_set(&m, "op", "late");
	cr_assert_eq(tls_send_msg(a.conn, &m, 1000, &err), 0, "%s", err);
	cr_assert_eq(tls_recv_msg(b.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "op"), "late");
	msg_clear(&m);
	msg_clear(&got);
	free(err);
	side_free(&a);
	side_free(&b);
}

Test(tls, close_gives_peer_clean_eof)
{
	struct side a, b;
	struct msg m = { 0 }, got = { 0 };
	char *err = NULL;

	connected(&a, &b);
	msg_set(&m, "op", "last");
	cr_assert_eq(tls_send_msg(a.conn, &m, 1000, &err), 0, "%s", err);
	tls_close(&a.conn);
	cr_assert_null(a.conn);
	sv[0] = -1;			/* tls_close closed it */
	cr_assert_eq(tls_recv_msg(b.conn, &got, 1000, &err), 0, "%s", err);
	cr_assert_str_eq(msg_gets(&got, "op"), "last");
	cr_assert_eq(tls_recv_msg(b.conn, &got, 1000, &err), 1, "%s", err);
	msg_clear(&m);
	msg_clear(&got);
	free(err);
	tls_close(&a.conn);		/* NULL is fine */
	side_free(&a);
	side_free(&b);
}

Test(tls, send_to_vanished_peer_fails_without_sigpipe)
{
	struct side a, b;
	struct msg m = { 0 };
	char *err = NULL;
	int rc = 0;

	connected(&a, &b);
	/* b's socket goes away under b's feet: writes to it get EPIPE. */
	cr_assert_eq(shutdown(sv[1], SHUT_RDWR), 0);
	msg_set(&m, "op", "x");
	for (int i = 0; i < 50 && rc == 0; i++)
		rc = tls_send_msg(a.conn, &m, 1000, &err);
	cr_assert_eq(rc, -1, "sending into a closed socket kept working");
	cr_assert_not_null(err);
	cr_assert_eq(tls_send_msg(a.conn, &m, 1000, &err), -1, "broken stays broken");
	msg_clear(&m);
	free(err);
	side_free(&a);
	side_free(&b);
}
