#!/bin/bash
# test_maps.sh - one real Postfix + Dovecot host set up the way the mail
# server guides (ISPmail and friends) do it, wired by postfix-setup --apply:
#
#  * SQLite virtual alias maps whose .cf files are root:postfix 0640, one
#    listed as proxy:sqlite:, one as plain sqlite:.  The existing-address
#    check (milter-alias-peer, dropped to milter-alias with group postfix)
#    must be able to ask both: an address that lives only in SQL is "in
#    use".  A .cf the daemon cannot read (root:root 0600) must show in
#    "milter-aliasctl status" and "postfix-setup", make requests 451 4.3.5
#    (never 250, never 5xx, nothing created), be logged once per change of
#    state, and heal by itself once fixed.
#  * smtpd_sender_login_maps + reject_sender_login_mismatch: postfix-setup
#    adds the daemon's sender-login map last, so an owner may send as the
#    alias, nobody else may, and a disabled alias drops out.
#  * recipient_delimiter = +: makealias+x@ and "makealias"@ are the
#    request address (a request is never answered 250 with nothing done);
#    unauthenticated clients are still refused.
#  * recipient_delimiter = +-: "new bob-bank" is refused 5xx while bob@
#    resolves (Postfix would deliver bob-bank@ to bob@); "new bobbank" works.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

H=m

th_require_root || exit 1
th_project_binaries || exit 1
for b in sqlite3 postmap; do
	command -v $b >/dev/null || { echo "missing $b (contrib/install-deps.sh)"; exit 1; }
done
postconf -m 2>/dev/null | grep -qx sqlite ||
	{ echo "Postfix has no sqlite map type: install postfix-sqlite (contrib/install-deps.sh)"; exit 1; }
# Own root and namespace prefix: namespace names are global to the machine.
th_init "${TH_MAPS_ROOT:-/var/tmp/milter-alias-maps}" "${TH_MAPS_NS:-mm-}" || exit 1
th_cleanup_trap $H
th_host_create $H 198.51.100.1 || exit 1
conf=$(th_write_conf $H) || exit 1
dir=$(th_dir $H)
d=$(th_confdir $H)
mdir=$dir/milter-alias
sock=$dir/run/milter.sock
plog=$dir/peer.log
ctl() { "$CTL" -c "$conf" "$@"; }
pc() { postconf -c "$d" "$@" 2>/dev/null; }

# --- SQLite maps as the guides build them -------------------------------------
# The database: readable by everyone, in a directory of its own.  The map
# definitions (they would hold the database password for MySQL): root:postfix
# 0640 in the Postfix configuration directory.
sql=$dir/sql
mkdir -p "$sql" && chmod 0755 "$sql"
sqlite3 "$sql/mailserver.sqlite" <<'EOF' || { echo "sqlite3 failed"; exit 1; }
CREATE TABLE virtual_aliases (source TEXT NOT NULL, destination TEXT NOT NULL);
CREATE TABLE forwardings (source TEXT NOT NULL, destination TEXT NOT NULL);
INSERT INTO virtual_aliases VALUES ('info@example.org', 'alice@example.org');
INSERT INTO forwardings VALUES ('contact@example.org', 'bob@example.org');
EOF
chmod 0644 "$sql/mailserver.sqlite"
cf_proxy=$d/sqlite-virtual-alias-maps.cf	# listed as proxy:sqlite:
cf_plain=$d/sqlite-virtual-forward-maps.cf	# listed as sqlite:
printf 'dbpath = %s\nquery = SELECT destination FROM virtual_aliases WHERE source='"'%%s'"'\n' \
	"$sql/mailserver.sqlite" > "$cf_proxy"
printf 'dbpath = %s\nquery = SELECT destination FROM forwardings WHERE source='"'%%s'"'\n' \
	"$sql/mailserver.sqlite" > "$cf_plain"
chown root:postfix "$cf_proxy" "$cf_plain" && chmod 0640 "$cf_proxy" "$cf_plain" || exit 1

# Sender-login map as in ISPmail: main.cf names the map, submission enforces it.
printf 'alice@example.org\talice\nbob@example.org\tbob\ncarol@example.org\tcarol\n' > "$d/senders"
postmap -c "$d" "hash:$d/senders" || exit 1

# Undo the harness's own wiring of the project (request address in
# hash:virtual, our map in virtual_alias_maps, mua_milters): postfix-setup
# --apply does it below, around the guide's settings.
printf 'sales@example.org\talice@example.org\n' > "$d/virtual"
postmap -c "$d" "hash:$d/virtual" || exit 1
th_postconf $H "virtual_alias_maps = proxy:sqlite:$cf_proxy, sqlite:$cf_plain, hash:$d/virtual" \
	"smtpd_sender_login_maps = hash:$d/senders" \
	"mua_milters =" || exit 1
pc -P 'submission/inet/smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject' ||
	{ echo "cannot edit master.cf"; exit 1; }
_th_backdate "$d/main.cf" "$d/master.cf"

rm -f "$(th_control_socket $H)"
th_daemon $H "$plog" "$PEER" -f -c "$conf" >/dev/null
th_wait_socket "$(th_control_socket $H)" 10 || { echo "sync daemon did not start"; cat "$plog"; exit 1; }
mpid=$(th_daemon $H "$dir/milter.log" "$MILTER" -f -c "$conf")
th_wait_socket "$sock" 10 || { cat "$dir/milter.log"; exit 1; }
th_host_start $H || exit 1
_th_poll 10 test -f "$mdir/aliases.senders.lmdb" ||
	th_fail "milter-alias-peer builds the sender-login map $mdir/aliases.senders.lmdb"

th_check_eq "postmap -q (Postfix, proxy:sqlite:) finds the SQL-only alias" alice@example.org \
	"$(th_postmap_q $H info@example.org "proxy:sqlite:$cf_proxy")"
th_check_eq "postmap -q (Postfix, sqlite:) finds the SQL-only forwarding" bob@example.org \
	"$(th_postmap_q $H contact@example.org "sqlite:$cf_plain")"

# --- postfix-setup --apply around the guide's configuration ------------------
rc=0; ctl postfix-setup --apply >"$dir/apply.out" 2>"$dir/apply.err" || rc=$?
th_check_eq "postfix-setup --apply: exit 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$dir/apply.out" "$dir/apply.err"
# words VALUE : the list, one element a line (commas and blanks separate)
words() { tr -s ', \t' '\n' <<<"$1" | grep -v '^$' || :; }
slm=$(pc -h smtpd_sender_login_maps)
th_check_eq "smtpd_sender_login_maps: the existing map first, the daemon's last" \
	"hash:$d/senders lmdb:$mdir/aliases.senders" "$(words "$slm" | tr '\n' ' ' | sed 's/ $//')"
th_check_eq "submission has no sender-login list of its own (main.cf's applies)" "" \
	"$(pc -P -h submission/inet/smtpd_sender_login_maps)"
th_check "virtual_alias_maps keeps both SQL maps" \
	bash -c "grep -qF 'proxy:sqlite:$cf_proxy' <<<\"\$1\" && grep -qF ' sqlite:$cf_plain' <<<\"\$1\"" _ "$(pc -h virtual_alias_maps)"
th_check "the .cf files are untouched: root:postfix 0640" \
	test "$(stat -c '%U:%G %a' "$cf_proxy" "$cf_plain" | sort -u)" = "root:postfix 640"

# request LOGIN SUBJECT [swaks args...] : send a request by submission
request() {
	local login=$1 subject=$2; shift 2
	th_swaks $H --port 587 --auth PLAIN --auth-user "$login" \
		--auth-password "$(th_password "$login")" --from "$login@example.org" \
		--to makealias@example.org --header "Subject: $subject" "$@"
}
# eom_is DESC REGEX : the last transcript's end-of-data reply matches REGEX
eom_is() {
	local r
	r=$(th_smtp_reply EOM | tr '\n' ' ')
	if grep -qE -- "$2" <<<"$r"; then th_pass "$1"; else th_fail "$1 (got: ${r:-no reply})"; fi
}
# absent ADDRESS : the project's map has no entry for ADDRESS
absent() { ! th_postmap_q $H "$1" >/dev/null 2>&1; }
# status_is DESC EXIT : milter-aliasctl status exits EXIT, output in $dir/status.out
status_is() {
	local rc=0
	ctl status >"$dir/status.out" 2>&1 || rc=$?
	th_check_eq "$1" "$2" "$rc"
}
status_exit_is() { local rc=0; ctl status >/dev/null 2>&1 || rc=$?; [ "$rc" = "$1" ]; }
# json_has FILE PYEXPR : PYEXPR (j = the parsed JSON) is true
json_has() {
	/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}
logmark() { stat -c %s "$plog"; }
# logcount FROM REGEX : lines of the peer's log after byte FROM matching REGEX
logcount() { tail -c +"$(($1 + 1))" "$plog" | grep -cE -- "$2" || :; }
# shellcheck disable=SC2016
logwait() { _th_poll "${3:-5}" bash -c 'tail -c +"$(($1 + 1))" "$2" | grep -qE -- "$3"' _ "$1" "$plog" "$2"; }

# --- 1. the existing-address check reads the guide's maps -----------------------
status_is "status: exit 0 with both SQL maps readable by group postfix" 0
th_check "status: resolve_check  ok" grep -qx 'resolve_check  ok' "$dir/status.out"
ctl --json status >"$dir/status.json" 2>/dev/null
th_check "status --json: \"resolve_check\": \"ok\", healthy" \
	json_has "$dir/status.json" 'j["resolve_check"] == "ok" and j["healthy"] is True'
rc=0; ctl postfix-setup >"$dir/report.out" 2>&1 || rc=$?
th_check_eq "postfix-setup report after --apply: exit 0" 0 "$rc"
th_check "postfix-setup report: no problem line" bash -c "! grep -q '^problem:' '$dir/report.out'"
request alice "new info"
eom_is "new info (only in proxy:sqlite:): 5xx already in use" '^5[0-9][0-9] .*already in use'
request alice "new contact"
eom_is "new contact (only in sqlite:): 5xx already in use" '^5[0-9][0-9] .*already in use'
th_check "the SQL-only names were not created" absent info@example.org
request alice "new maps-ok"
eom_is "new maps-ok: 250" '^250 '
th_check_eq "maps-ok resolves" alice@example.org "$(th_postmap_q $H maps-ok@example.org)"

# break_cf CF SPEC NAME : the .cf becomes unreadable for the daemon; every
# place that must show it is checked; then it is restored and must heal.
break_cf() {
	local cf=$1 spec=$2 name=$3 mark rc
	local what="${spec%%:/*}: ${cf##*/} root:root 0600"
	mark=$(logmark)
	chown root:root "$cf" && chmod 0600 "$cf"

	# status shows the daemon's last answer while it is under 10 s old.
	th_check "$what: status turns unhealthy (exit 1) within 20 s" _th_poll 20 status_exit_is 1
	status_is "$what: status exits 1" 1
	th_check "$what: status shows resolve_check  failing" grep -qx 'resolve_check  failing' "$dir/status.out"
	th_check "$what: status has a resolve_error naming the file, Permission denied" \
		grep -qE "^resolve_error .*${cf//./\\.}.*Permission denied|^resolve_error .*Permission denied.*${cf//./\\.}" "$dir/status.out"
	th_check "$what: status shows healthy  no" grep -qx 'healthy        no' "$dir/status.out"
	ctl --json status >"$dir/status.json" 2>/dev/null
	th_check "$what: status --json: resolve_check failing, healthy false, resolve_error names the file" \
		json_has "$dir/status.json" "j['resolve_check'] == 'failing' and j['healthy'] is False and '$cf' in j['resolve_error']"

	rc=0; ctl postfix-setup >"$dir/report.out" 2>&1 || rc=$?
	th_check "$what: postfix-setup report exits non-zero" test "$rc" != 0
	th_check "$what: postfix-setup names the map, the file's owner and mode, and the fix" \
		grep -qE "^problem: .*sqlite:${cf//./\\.} .*Permission denied.*${cf//./\\.} is root:root mode 0600.*chgrp postfix ${cf//./\\.}" "$dir/report.out"
	if ! grep -q "^problem: .*sqlite:$cf " "$dir/report.out"; then cat "$dir/report.out"; fi

	request alice "new $name"
	eom_is "$what: new $name: 451 4.3.5 misconfigured, ask the postmaster" \
		'^451 4\.3\.5 .*misconfigured.*postmaster|^451 4\.3\.5 .*postmaster.*misconfigured'
	request bob "new $name-b"
	eom_is "$what: a second request (bob): 451 4.3.5 too" '^451 4\.3\.5 '
	th_check "$what: nothing was created" bash -c "! '$CTL' -c '$conf' show $name@example.org >/dev/null 2>&1"
	th_check "$what: postmap -q finds neither name" bash -c \
		"! postmap -c '$d' -q $name@example.org lmdb:$mdir/aliases && ! postmap -c '$d' -q $name-b@example.org lmdb:$mdir/aliases"
	th_check_eq "$what: 'resolve check: failing' logged once for the change of state" 1 \
		"$(logcount "$mark" 'resolve check: failing')"

	# Restore.  The daemon re-asks once its last answer is older than 10 s.
	chown root:postfix "$cf" && chmod 0640 "$cf"
	th_check "$what fixed: status exits 0 again within 20 s" _th_poll 20 status_exit_is 0
	status_is "$what fixed: status exit 0" 0
	th_check "$what fixed: resolve_check  ok" grep -qx 'resolve_check  ok' "$dir/status.out"
	th_check "$what fixed: the log says 'resolve check: working again'" \
		logwait "$mark" 'resolve check: working again'
	th_check_eq "$what fixed: logged once" 1 "$(logcount "$mark" 'resolve check: working again')"
	request alice "new $name"
	eom_is "$what fixed: new $name: 250" '^250 '
	th_check_eq "$what fixed: $name resolves" alice@example.org "$(th_postmap_q $H "$name@example.org")"
	rc=0; ctl postfix-setup >"$dir/report.out" 2>&1 || rc=$?
	th_check_eq "$what fixed: postfix-setup report exits 0, no problem" "0 0" \
		"$rc $(grep -c '^problem:' "$dir/report.out")"
}
break_cf "$cf_plain" "sqlite:$cf_plain" fresh-one
break_cf "$cf_proxy" "proxy:sqlite:$cf_proxy" fresh-two

# --- 2. send as the alias ----------------------------------------------------------
# as LOGIN FROM TOKEN : LOGIN sends by submission as FROM (envelope and header) to bob
as() {
	th_swaks $H --port 587 --auth PLAIN --auth-user "$1" --auth-password "$(th_password "$1")" \
		--from "$2" --header "From: $2" --to bob@example.org --header "Subject: sent as $3"
}
# refused_sender DESC : the last transcript refused the sender (553 5.7.1 ... not owned by user)
refused_sender() {
	local f=${TH_SWAKS_OUT:-$TH_ROOT/swaks.last} code
	code=$(th_smtp_reply_code RCPT || th_smtp_reply_code MAIL)
	if [ "${code:0:1}" = 5 ] && grep -qE '<[~*]* 553 5\.7\.1 .*not owned by user' "$f"; then th_pass "$1"
	else th_fail "$1 (got: $(grep -E '^ *<[~*]* [45][0-9][0-9]' "$f" | tail -n1))"; fi
}
request alice "new sendas-shop"
eom_is "alice creates sendas-shop: 250" '^250 '
th_check_eq "the sender-login map: sendas-shop@ belongs to alice" alice \
	"$(th_postmap_q $H sendas-shop@example.org "lmdb:$mdir/aliases.senders")"
as alice sendas-shop@example.org alias-by-owner
th_check_eq "alice sends as sendas-shop@: 250 at end of data" 250 "$(th_smtp_reply_code EOM)"
th_check "... and bob receives it" th_wait_mail $H bob 'Subject: sent as alias-by-owner' 15
as bob sendas-shop@example.org alias-by-other
refused_sender "bob sends as sendas-shop@: refused 553 5.7.1 not owned by user"
as alice bob@example.org someone-elses
refused_sender "the guide's own map still applies: alice as bob@ refused"
as alice alice@example.org own-address
th_check_eq "alice as alice@ (the guide's own map): 250" 250 "$(th_smtp_reply_code EOM)"
request alice "disable sendas-shop"
eom_is "alice disables sendas-shop: 250" '^250 '
th_check "the sender-login map no longer has sendas-shop@" \
	bash -c "! postmap -c '$d' -q sendas-shop@example.org lmdb:$mdir/aliases.senders"
as alice sendas-shop@example.org alias-disabled
refused_sender "after disable, alice as sendas-shop@: refused too"
th_check_eq "no mail as the disabled alias reached bob" 0 "$(th_mail_count $H bob 'Subject: sent as alias-(disabled|by-other)')"

# --- 3. request-address variants ----------------------------------------------------
th_postconf $H "recipient_delimiter = +" || exit 1
th_reload $H || exit 1
# milter-alias reads recipient_delimiter when it starts.
th_daemon_stop $H "$mpid" 15
# A process that ended may stay a zombie until init reaps it: th_alive
# counts it as gone, kill -0 would not.
th_check "milter-alias stopped for the restart" th_wait_dead "$mpid" 10
rm -f "$sock"
mpid=$(th_daemon $H "$dir/milter.log" "$MILTER" -f -c "$conf")
th_wait_socket "$sock" 10 || { th_fail "milter-alias restarts"; cat "$dir/milter.log"; }

th_swaks $H --port 587 --auth PLAIN --auth-user alice --auth-password secret-alice \
	--from alice@example.org --to makealias+x@example.org --header "Subject: new variant-one"
eom_is "request to makealias+x@: 250" '^250 '
th_check_eq "... and variant-one exists" alice@example.org "$(th_postmap_q $H variant-one@example.org)"
th_swaks $H --port 587 --auth PLAIN --auth-user alice --auth-password secret-alice \
	--from alice@example.org --to '"makealias"@example.org' --header "Subject: new variant-two"
eom_is "request to \"makealias\"@: 250" '^250 '
th_check_eq "... and variant-two exists" alice@example.org "$(th_postmap_q $H variant-two@example.org)"
th_check_eq "neither request message was delivered anywhere" 0 \
	"$(grep -rlsE 'Subject: new variant-(one|two)' "$dir/mail" | grep -c .)"
th_swaks $H --port 587 --from alice@example.org --to makealias+x@example.org \
	--header "Subject: new variant-sneaky"
th_check_eq "submission without AUTH to makealias+x@: 5xx at RCPT" 5 "$(th_smtp_reply_code RCPT | cut -c1)"
th_swaks $H --port 25 --from stranger@elsewhere.test --to makealias+x@example.org \
	--header "Subject: new variant-sneaky"
th_check_eq "port 25 without AUTH to makealias+x@: 550 at RCPT" 550 "$(th_smtp_reply_code RCPT)"
th_check "... saying to authenticate" bash -c "grep -q 'Authenticate (SMTP AUTH) before sending alias requests' '${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}'"
th_check "the unauthenticated requests created nothing" absent variant-sneaky@example.org

# --- 3b. names that are another address's extension --------------------------------
# With "-" a delimiter, Postfix delivers bob-bank@ to bob@ (virtual(5):
# user+ext@domain first, then user@domain): a name that is an existing
# address plus an extension has a home already.  The daemon reads
# recipient_delimiter again because main.cf changed; the milter is not
# involved (its delimiters only concern the request address).
th_postconf $H "recipient_delimiter = +-" || exit 1
th_reload $H || exit 1
th_check_eq "bob@example.org is a mailbox (virtual_mailbox_maps)" "example.org/bob/" \
	"$(th_postmap_q $H bob@example.org "hash:$d/vmailbox")"
request carol "new bob-bank"
eom_is "carol asks for bob-bank with recipient_delimiter +-: 5xx" '^5[0-9][0-9] '
eom_is "... saying it is an address extension of bob@example.org" \
	'already in use .*address extension of bob@example\.org'
th_check "... and bob-bank was not created" absent bob-bank@example.org
request carol "new info-desk"
eom_is "carol asks for info-desk (info@ lives in SQL only): 5xx" \
	'^5[0-9][0-9] .*address extension of info@example\.org'
th_check "... and info-desk was not created" absent info-desk@example.org
request carol "new bobbank"
eom_is "carol asks for bobbank (no delimiter in it): 250" '^250 '
th_check_eq "... and bobbank exists" carol@example.org "$(th_postmap_q $H bobbank@example.org)"
request carol "new carol-shop"
eom_is "carol asks for carol-shop (the base carol@ is her own mailbox): 5xx" \
	'^5[0-9][0-9] .*address extension of carol@example\.org'
request carol "new zed-shop"
eom_is "a name with a delimiter whose base is free (zed-shop): 250" '^250 '
th_check_eq "... and zed-shop exists" carol@example.org "$(th_postmap_q $H zed-shop@example.org)"
th_postconf $H "recipient_delimiter = +" || exit 1
th_reload $H || exit 1

# --- 4. SASL for every service (ISPmail's main.cf): port 25 offers AUTH too --------
# There the milter does not run: postfix-setup makes port 25 refuse the
# request address with a reason, rather than accept a request nobody sees.
th_postconf $H "smtpd_sasl_auth_enable = yes" || exit 1
rc=0; ctl postfix-setup --apply >"$dir/apply-sasl.out" 2>&1 || rc=$?
th_check_eq "postfix-setup --apply with SASL in main.cf: exit 0" 0 "$rc"
[ "$rc" = 0 ] || cat "$dir/apply-sasl.out"
th_check_eq "port 25 (smtp/inet) refuses requests: -o milter_alias_request=\$milter_alias_elsewhere" \
	'$milter_alias_elsewhere' "$(pc -P -h smtp/inet/milter_alias_request)"
th_check_eq "submission keeps main.cf's class (the milter runs there)" "" \
	"$(pc -P -h submission/inet/milter_alias_request)"
th_check "main.cf: milter_alias_elsewhere says where to send requests" \
	grep -q 'through the submission service' <<<"$(pc -h milter_alias_elsewhere)"
th_swaks $H --port 25 --auth PLAIN --auth-user alice --auth-password secret-alice \
	--from alice@example.org --to makealias@example.org --header "Subject: new port25-sneaky"
th_check_eq "port 25 with AUTH: the request address is refused at RCPT (550)" 550 "$(th_smtp_reply_code RCPT)"
th_check "... saying to use the submission service" bash -c "grep -q 'through the submission service' '${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}'"
th_check "the port 25 request created nothing" absent port25-sneaky@example.org
request alice "new after-sasl"
eom_is "submission with AUTH still works: 250" '^250 '
th_check_eq "... and after-sasl exists" alice@example.org "$(th_postmap_q $H after-sasl@example.org)"
rc=0; ctl postfix-setup >"$dir/again-sasl.out" 2>&1 || rc=$?
th_check "a second report: no changes needed" grep -qx "no changes needed" "$dir/again-sasl.out"

th_summary
