# shellcheck shell=bash
# tests/package/mailconf.sh - the small mail system an administrator has
# before installing milter-alias, written into a Debian root.  Sourced by
# tests/package/test_install.sh (layer 5) and tests/arm64/test_arm64.sh
# (layer 5c); never run.
#
# ma_write_mailconf ROOT HOSTNAME INTERFACES WRITER [LOGS]
#   Postfix: example.org is a local domain (mail to /var/mail/USER),
#   aliases in hash:/etc/aliases, nothing leaves the machine, SASL through
#   Dovecot (enabled per service by the caller, not in main.cf).
#   Dovecot: SASL only (no IMAP/POP3/LMTP), users from a passwd-file the
#   caller writes to ROOT/etc/dovecot/users.
#   WRITER names the test in the files' first comment; LOGS=1 sends
#   Postfix's log to /var/log/mail.log and Dovecot's to /var/log/dovecot.log
#   (for a root without a syslog daemon).
ma_write_mailconf() {
	local root=$1 host=$2 ifaces=$3 writer=$4 logs=${5:-0}
	{
		echo "# written by milter-alias $writer"
		cat <<EOF
compatibility_level = 3.6
myhostname = $host
mydomain = example.test
myorigin = \$myhostname
mydestination = \$myhostname, localhost, example.org
inet_interfaces = $ifaces
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP
biff = no
append_dot_mydomain = no
readme_directory = no
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
default_transport = error:this test system delivers nothing outside
relay_transport = \$default_transport
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtpd_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination
mua_relay_restrictions = permit_sasl_authenticated, reject
EOF
		if [ "$logs" = 1 ]; then echo "maillog_file = /var/log/mail.log"; fi
	} >"$root/etc/postfix/main.cf" || return 1
	printf 'postmaster: root\nabuse: root\n' >"$root/etc/aliases" || return 1
	{
		echo "# written by milter-alias $writer: SASL only"
		cat <<'EOF'
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
EOF
		if [ "$logs" = 1 ]; then echo "log_path = /var/log/dovecot.log"; fi
		cat <<'EOF'
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln /etc/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
	} >"$root/etc/dovecot/dovecot.conf"
}
