#!/bin/bash
# test_setup.sh - milter-aliasctl postfix-setup against a real Postfix that
# already has a non-trivial configuration: another milter in smtpd_milters,
# in mua_milters and in submission's own -o smtpd_milters, existing
# virtual_alias_maps, transport_maps, smtpd_recipient_restrictions and
# restriction classes, and three SASL services wired three different ways.
# The harness's own project wiring is removed first, so that postfix-setup
# does it from scratch.  Checked: the report changes nothing; a missing map,
# a missing daemon map directory and a dirty "postfix check" make --apply
# fail with Postfix untouched and not reloaded; a step that fails after
# main.cf was written (master.cf), or after a reload (the request route),
# puts main.cf and master.cf back byte for byte (and reloads Postfix with
# them); --apply wires everything in the order milter first, request
# route last, keeps every existing entry and reloads; a second run has
# nothing to do; then the whole create flow, ordinary mail, the port-25
# restriction and disabled aliases, as a user and a sender see them.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

H=s

th_require_root || exit 1
th_project_binaries || exit 1
# Own root and namespace prefix: namespace names are global to the machine.
th_init "${TH_SETUP_ROOT:-/var/tmp/milter-alias-setup}" "${TH_SETUP_NS:-ms-}" || exit 1
th_cleanup_trap $H
th_host_create $H 198.51.100.1 || exit 1
conf=$(th_write_conf $H) || exit 1
dir=$(th_dir $H)
d=$(th_confdir $H)
mdir=$dir/milter-alias
sock=$dir/run/milter.sock
ctl() { "$CTL" -c "$conf" "$@"; }
pc() { postconf -c "$d" "$@" 2>/dev/null; }

# --- a non-trivial existing configuration, without the harness's wiring ----
# The harness pre-wires the project (lmdb map in virtual_alias_maps, the
# request address in hash:virtual with a discard transport, mua_milters):
# undo that, and put other people's settings in its place.
printf 'sales@example.org\talice@example.org\n' > "$d/virtual"
printf 'discard.example.test\tdiscard:\nrelay.example.test\terror:no relay here\n' > "$d/transport"
postmap -c "$d" "hash:$d/virtual" && postmap -c "$d" "hash:$d/transport" || exit 1
OTHER_MAIN='{ inet:127.0.0.1:10091, default_action=accept }'
OTHER_MUA='{ inet:127.0.0.1:10092, default_action=accept }'
OTHER_SUB='{inet:127.0.0.1:10093,default_action=accept}'
RESTR='reject_non_fqdn_recipient, permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination'
th_postconf $H "virtual_alias_maps = hash:$d/virtual" \
	"transport_maps = hash:$d/transport" \
	"smtpd_milters = $OTHER_MAIN" \
	"mua_milters = $OTHER_MUA" \
	"smtpd_recipient_restrictions = $RESTR" \
	"smtpd_restriction_classes = ms_existing_class" \
	"ms_existing_class = permit" || exit 1
# submission: an explicit list of its own (another milter, not $mua_milters);
# 2587: a second SASL service using $mua_milters and its own restrictions;
# 3587: a SASL service with no smtpd_milters of its own (inherits main.cf's).
pc -P "submission/inet/smtpd_milters=$OTHER_SUB" &&
	pc -M '2587/inet=2587 inet n - n - - smtpd' &&
	pc -P '2587/inet/syslog_name=postfix-s/alt' '2587/inet/smtpd_sasl_auth_enable=yes' \
		'2587/inet/smtpd_milters=$mua_milters' \
		'2587/inet/smtpd_recipient_restrictions=permit_sasl_authenticated,reject' &&
	pc -M '3587/inet=3587 inet n - n - - smtpd' &&
	pc -P '3587/inet/syslog_name=postfix-s/third' '3587/inet/smtpd_sasl_auth_enable=yes' ||
	{ echo "cannot prepare master.cf"; exit 1; }
_th_backdate "$d/main.cf" "$d/master.cf"

th_daemon $H "$dir/peer.log" "$PEER" -f -c "$conf" >/dev/null
th_wait_socket "$(th_control_socket $H)" 10 || { echo "sync daemon did not start"; cat "$dir/peer.log"; exit 1; }
th_daemon $H "$dir/milter.log" "$MILTER" -f -c "$conf" >/dev/null
th_wait_socket "$sock" 10 || { cat "$dir/milter.log"; exit 1; }
th_host_start $H || exit 1

access_db=$mdir/aliases.access.lmdb
if ! _th_poll 10 test -f "$access_db"; then
	th_fail "milter-alias-peer builds the access map $access_db (PENDING: not in this tree yet)"
fi

sums() { sha256sum "$d/main.cf" "$d/master.cf" | cut -d' ' -f1 | tr '\n' ' '; }
reloads() { grep -c 'reload -- version' "$(th_maillog $H)" || :; }
nbackups() { find "$d" -maxdepth 1 -name '*.milter-alias-backup.*' | grep -c . || :; }
# has FILE TEXT : the file holds TEXT (fixed string)
has() { grep -qF -- "$2" "$1"; }
# reply_has STAGE REGEX : the last transcript's reply at STAGE matches
reply_has() { th_smtp_reply "$1" | grep -qE -- "$2"; }

# --- report only -------------------------------------------------------------
sum0=$(sums); rel0=$(reloads)
rc=0; ctl postfix-setup >"$dir/report.out" 2>"$dir/report.err" || rc=$?
th_check_eq "report: exit 1 while changes are pending" 1 "$rc"
th_check_eq "report: main.cf and master.cf unchanged" "$sum0" "$(sums)"
th_check "report: no request_map written" test ! -e "$mdir/request_map"
th_check "report: virtual_alias_maps gets the request map first and ours last, keeping the existing map" \
	has "$dir/report.out" "main.cf: virtual_alias_maps: add lmdb:$mdir/request_map first, lmdb:$mdir/aliases last (keeps hash:$d/virtual)"
th_check "report: transport_maps keeps the existing map" \
	has "$dir/report.out" "main.cf: transport_maps: add lmdb:$mdir/transport_map first (keeps hash:$d/transport)"
th_check "report: smtpd_recipient_restrictions gets the access map first, keeping the rest" \
	has "$dir/report.out" "main.cf: smtpd_recipient_restrictions: add check_recipient_access lmdb:$mdir/aliases.access first (keeps $RESTR)"
th_check "report: the restriction class is added to the existing ones" \
	has "$dir/report.out" "main.cf: smtpd_restriction_classes: add milter_alias_request last (keeps ms_existing_class)"
th_check "report: mua_milters keeps the other milter" \
	has "$dir/report.out" "main.cf: mua_milters: add unix:$sock last (keeps $OTHER_MUA)"
th_check "report: submission's own milter list is extended" \
	has "$dir/report.out" "master.cf: submission/inet: -o smtpd_milters: add unix:$sock last (keeps $OTHER_SUB)"
th_check "report: 3587 gets main.cf's milters carried over" \
	has "$dir/report.out" "master.cf: 3587/inet: -o smtpd_milters: add unix:$sock last (keeps {inet:127.0.0.1:10091,default_action=accept})"
th_check "report: 2587's own recipient restrictions get the access map" \
	has "$dir/report.out" "master.cf: 2587/inet: -o smtpd_recipient_restrictions: add check_recipient_access lmdb:$mdir/aliases.access first (keeps permit_sasl_authenticated, reject)"
th_check "report: 2587 (uses \$mua_milters) and smtp are left alone" \
	bash -c "! grep -qE 'master.cf: (2587/inet: -o smtpd_milters|smtp/inet)' '$dir/report.out'"
th_check "report: the request map and the transport map are to be built" \
	bash -c "grep -qF 'map: lmdb:$mdir/request_map: write and build (makealias@example.org -> makealias@discard.milter-alias.invalid)' '$dir/report.out' && grep -qF 'map: lmdb:$mdir/transport_map: write and build' '$dir/report.out'"
th_check "report: explains why milter_default_action stays tempfail" \
	has "$dir/report.out" "note: milter_default_action stays tempfail"
th_check "report: ends with the number of pending changes" \
	grep -qE '^1[0-9] changes pending' "$dir/report.out"
ctl --json postfix-setup >"$dir/report.json" 2>/dev/null
th_check "report --json: valid JSON, result \"changes pending\", exit 1" \
	/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["result"]=="changes pending" and j["exit"]==1 and len(j["changes"])>=10 and all(c["status"]=="pending" for c in j["changes"])' "$dir/report.json"
# nobody may not be able to reach the build tree (a checkout in a 0700
# directory): it runs a copy of milter-aliasctl from a directory it can.
NOBODY_DIR=$(mktemp -d /tmp/ma-setup-ctl.XXXXXX)
chmod 755 "$NOBODY_DIR"
cp "$CTL" "$NOBODY_DIR/milter-aliasctl"
NOBODY_CTL=$NOBODY_DIR/milter-aliasctl
if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
	rc=0; runuser -u nobody -- "$NOBODY_CTL" -c "$conf" postfix-setup --apply >/dev/null 2>"$dir/nobody.err" || rc=$?
	th_check_eq "--apply as non-root: exit 2" 2 "$rc"
	th_check "--apply as non-root: says it needs root" grep -q "must run as root" "$dir/nobody.err"
fi

# --- failure: the daemon's access map does not exist ------------------------
mv "$access_db" "$access_db.hidden"
rc=0; ctl postfix-setup --apply >"$dir/fail1.out" 2>"$dir/fail1.err" || rc=$?
mv "$access_db.hidden" "$access_db"
th_check_eq "missing compiled access map: --apply exits 1" 1 "$rc"
th_check "missing compiled access map: says to start milter-alias-peer first" \
	has "$dir/fail1.err" "start milter-alias-peer first: it builds $access_db"
th_check_eq "missing compiled access map: main.cf and master.cf unchanged" "$sum0" "$(sums)"
th_check_eq "missing compiled access map: no reload" "$rel0" "$(reloads)"
th_check_eq "missing compiled access map: no backup, nothing written" "0 absent" \
	"$(nbackups) $(test -e "$mdir/request_map" && echo present || echo absent)"
th_check "missing compiled access map: says nothing was changed" \
	has "$dir/fail1.out" "nothing was changed, Postfix was not reloaded"

# --- failure: map_file in a directory where no compiled map can exist --------
sed "s|^map_file .*|map_file = \"$dir/no-such-dir/aliases\"|" "$conf" > "$dir/bad.conf"
rc=0; "$CTL" -c "$dir/bad.conf" postfix-setup --apply >"$dir/fail2.out" 2>"$dir/fail2.err" || rc=$?
th_check_eq "map_file in a missing directory: --apply exits 1" 1 "$rc"
th_check "map_file in a missing directory: names the missing alias map" \
	has "$dir/fail2.err" "start milter-alias-peer first: it builds $dir/no-such-dir/aliases.lmdb"
th_check_eq "map_file in a missing directory: main.cf and master.cf unchanged" "$sum0" "$(sums)"
th_check_eq "map_file in a missing directory: no reload, no backup" "$rel0 0" "$(reloads) $(nbackups)"

# --- failure: postfix check already complains --------------------------------
chmod o+w "$d/main.cf"
rc=0; ctl postfix-setup --apply >"$dir/fail3.out" 2>"$dir/fail3.err" || rc=$?
chmod o-w "$d/main.cf"
th_check_eq "postfix check warns before any change: --apply exits 1" 1 "$rc"
th_check "postfix check warns before any change: its warning is shown" \
	grep -q "postfix check.*group or other writable" "$dir/fail3.err"
th_check_eq "postfix check warns before any change: unchanged, no reload, no backup" \
	"$sum0 $rel0 0" "$(sums) $(reloads) $(nbackups)"

# --- failure in the middle of --apply: stop, report, no reload ---------------
# A directory where the request map's source goes makes that step fail
# after the precondition checks passed and the backups were taken.
mkdir "$mdir/request_map"
rc=0; ctl postfix-setup --apply >"$dir/fail4.out" 2>"$dir/fail4.err" || rc=$?
rmdir "$mdir/request_map"
th_check_eq "a step fails midway: --apply exits 1" 1 "$rc"
th_check "a step fails midway: the failed step is named with its reason" \
	grep -q "^FAILED: map: lmdb:$mdir/request_map: .*: rename(.*) failed: Is a directory" "$dir/fail4.out"
th_check "a step fails midway: the later steps are listed as not done" \
	grep -q "^not done: main.cf: virtual_alias_maps" "$dir/fail4.out"
th_check "a step fails midway: says the files were not changed and Postfix was not reloaded" \
	grep -q 'main.cf and master.cf were not changed; Postfix was NOT reloaded' "$dir/fail4.out"
th_check_eq "a step fails midway: main.cf and master.cf unchanged, no reload" \
	"$sum0 $rel0" "$(sums) $(reloads)"
th_check_eq "a step fails midway: the backups were taken first" 2 "$(nbackups)"
find "$d" -maxdepth 1 -name '*.milter-alias-backup.*' -delete

# --- failure after main.cf was written: both files restored by themselves ----
# postconf -P writes master.cf.tmp and renames it; a directory of that name
# makes the master.cf step fail after the first main.cf step succeeded.
# --apply must put main.cf back byte for byte (no request route may stay
# live for new smtpd processes while the milter waits for a reload).
th_swaks $H --port 25 --from someone@elsewhere.test --to makealias@example.org >/dev/null
req25_before=$(th_smtp_reply RCPT)
mkdir "$d/master.cf.tmp"
rc=0; ctl postfix-setup --apply >"$dir/fail5.out" 2>"$dir/fail5.err" || rc=$?
rmdir "$d/master.cf.tmp"
th_check_eq "master.cf step fails: --apply exits 1" 1 "$rc"
th_check "master.cf step fails: the failed step is named" \
	grep -q "^FAILED: master.cf: .*postconf -P failed" "$dir/fail5.out"
th_check "master.cf step fails: main.cf had been changed before (the failure is midway)" \
	grep -q "^done: main.cf: " "$dir/fail5.out"
th_check_eq "master.cf step fails: main.cf and master.cf byte-identical to before, no reload" \
	"$sum0 $rel0" "$(sums) $(reloads)"
th_check "master.cf step fails: says the backups were restored, naming the step" \
	grep -q "postfix-setup: step \"postconf -P (master.cf)\" failed; main.cf and master.cf restored from the backups" "$dir/fail5.err"
th_check_eq "master.cf step fails: the request route is not live (no request map in virtual_alias_maps)" \
	"hash:$d/virtual" "$(pc -h virtual_alias_maps)"
th_swaks $H --port 25 --from someone@elsewhere.test --to makealias@example.org >/dev/null
th_check_eq "master.cf step fails: port 25 answers the request address as before" \
	"$req25_before" "$(th_smtp_reply RCPT)"
th_swaks $H --port 25 --from someone@elsewhere.test --to bob@example.org \
	--header "Subject: after the failed apply" >/dev/null
th_check "master.cf step fails: Postfix still delivers ordinary mail" \
	th_wait_mail $H bob 'Subject: after the failed apply' 15
find "$d" -maxdepth 1 -name '*.milter-alias-backup.*' -delete

# --- apply -------------------------------------------------------------------
rc=0; ctl postfix-setup --apply >"$dir/apply.out" 2>"$dir/apply.err" || rc=$?
th_check_eq "--apply: exit 0" 0 "$rc"
[ "$rc" = 0 ] || { cat "$dir/apply.out" "$dir/apply.err"; }
th_check "--apply: every change done and verified, postfix check clean, reloaded" \
	bash -c "! grep -qE '^(FAILED|not done)' '$dir/apply.out' && grep -q '^done: postfix check: clean' '$dir/apply.out' && grep -q '^done: postfix reload' '$dir/apply.out'"
th_check_eq "--apply: Postfix reloaded twice (milter live, then the request route)" \
	"$((rel0 + 2))" "$(reloads)"
# The order of the steps: the milter in master.cf is written and live
# (reloaded) before the request map and the discard transport enter main.cf.
order=$(grep -nE '^done: (master\.cf: |postfix reload|main\.cf: (virtual_alias_maps|transport_maps):)' \
	"$dir/apply.out" | sed -E 's/^[0-9]+:done: (master\.cf|postfix reload|main\.cf: [a-z_]+).*/\1/' | uniq | tr '\n' ' ')
th_check_eq "--apply: master.cf, reload, then the request route, reload" \
	"master.cf postfix reload main.cf: virtual_alias_maps main.cf: transport_maps postfix reload " "$order"
bk_main=$(find "$d" -maxdepth 1 -name 'main.cf.milter-alias-backup.*' | head -n1)
bk_master=$(find "$d" -maxdepth 1 -name 'master.cf.milter-alias-backup.*' | head -n1)
th_check_eq "--apply: backups of main.cf and master.cf hold the old files" "$sum0" \
	"$(sha256sum "$bk_main" "$bk_master" 2>/dev/null | cut -d' ' -f1 | tr '\n' ' ')"
th_check "--apply: backup paths are in the report" has "$dir/apply.out" "backup: $bk_main"
th_check_eq "postconf: virtual_alias_maps (existing map kept, ours last)" \
	"lmdb:$mdir/request_map, hash:$d/virtual, lmdb:$mdir/aliases" "$(pc -h virtual_alias_maps)"
th_check_eq "postconf: transport_maps (existing map kept)" \
	"lmdb:$mdir/transport_map, hash:$d/transport" "$(pc -h transport_maps)"
th_check_eq "postconf: smtpd_recipient_restrictions (existing ones kept)" \
	"check_recipient_access lmdb:$mdir/aliases.access, $RESTR" "$(pc -h smtpd_recipient_restrictions)"
th_check_eq "postconf: smtpd_restriction_classes (existing class kept)" \
	"ms_existing_class, milter_alias_request" "$(pc -h smtpd_restriction_classes)"
th_check_eq "postconf: the existing class is untouched" permit "$(pc -h ms_existing_class)"
th_check_eq "postconf: milter_alias_request" \
	"permit_sasl_authenticated, check_recipient_access static:{550 5.7.1 Authenticate (SMTP AUTH) before sending alias requests}" \
	"$(pc -h milter_alias_request)"
th_check_eq "postconf: smtpd_milters (port 25) untouched" "$OTHER_MAIN" "$(pc -h smtpd_milters)"
th_check_eq "postconf: mua_milters (other milter kept)" "$OTHER_MUA, unix:$sock" "$(pc -h mua_milters)"
th_check_eq "postconf -P: submission's own list (other milter kept)" \
	"$OTHER_SUB,unix:$sock" "$(pc -P -h submission/inet/smtpd_milters)"
th_check_eq "postconf -P: 2587 still uses \$mua_milters" '$mua_milters' "$(pc -P -h 2587/inet/smtpd_milters)"
th_check_eq "postconf -P: 3587 got main.cf's milters and ours" \
	"{inet:127.0.0.1:10091,default_action=accept},unix:$sock" "$(pc -P -h 3587/inet/smtpd_milters)"
th_check_eq "postconf -P: 2587's recipient restrictions" \
	"check_recipient_access,lmdb:$mdir/aliases.access,permit_sasl_authenticated,reject" \
	"$(pc -P -h 2587/inet/smtpd_recipient_restrictions)"
th_check_eq "postconf -P: port 25 has no milter of its own" "" "$(pc -P -h smtp/inet/smtpd_milters)"
th_check_eq "postmap -q: the request address is a known recipient" \
	"makealias@discard.milter-alias.invalid" "$(th_postmap_q $H makealias@example.org "lmdb:$mdir/request_map")"
th_check_eq "postmap -q: its domain goes to discard:" \
	"discard:" "$(th_postmap_q $H discard.milter-alias.invalid "lmdb:$mdir/transport_map")"
th_check_eq "our maps belong to state_dir's owner (postmap never ran as root there)" \
	"milter-alias milter-alias milter-alias milter-alias" \
	"$(stat -c %U "$mdir/request_map" "$mdir/request_map.lmdb" "$mdir/transport_map" "$mdir/transport_map.lmdb" | tr '\n' ' ' | sed 's/ $//')"

# --- a second run has nothing to do -------------------------------------------
sum1=$(sums); rel1=$(reloads)
rc=0; ctl postfix-setup >"$dir/again.out" 2>&1 || rc=$?
th_check_eq "second report: exit 0" 0 "$rc"
th_check "second report: no changes needed" grep -qx "no changes needed" "$dir/again.out"
rc=0; ctl postfix-setup --apply >"$dir/again2.out" 2>&1 || rc=$?
th_check_eq "second --apply: exit 0, no changes needed" "0 yes" \
	"$rc $(grep -qx 'no changes needed' "$dir/again2.out" && echo yes)"
th_check_eq "second --apply: nothing touched, no reload" "$sum1 $rel1" "$(sums) $(reloads)"
ctl --json postfix-setup --apply >"$dir/again.json" 2>/dev/null
th_check "second --apply --json: result \"no changes needed\", exit 0" \
	/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["result"]=="no changes needed" and j["exit"]==0 and j["changes"]==[] and j["problems"]==[]' "$dir/again.json"
if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
	rc=0; runuser -u nobody -- "$NOBODY_CTL" -c "$conf" postfix-setup >"$dir/nobody.out" 2>&1 || rc=$?
	th_check_eq "report as non-root after --apply: exit 0, no changes needed" "0 yes" \
		"$rc $(grep -qx 'no changes needed' "$dir/nobody.out" && echo yes)"
fi
rm -rf "$NOBODY_DIR"

# --- failure after a reload: the route step fails, Postfix reloaded back -----
# Only submission's milter and the request map are missing: --apply writes
# master.cf, reloads (the milter live), then fails to write the route into
# main.cf (a directory named main.cf.tmp stops postconf -e).  Both files
# must come back byte for byte and Postfix be reloaded with them.
pc -P "submission/inet/smtpd_milters=$OTHER_SUB" &&
	th_postconf $H "virtual_alias_maps = hash:$d/virtual, lmdb:$mdir/aliases" ||
	{ echo "cannot unwire submission"; exit 1; }
_th_backdate "$d/main.cf" "$d/master.cf"
sum2=$(sums); rel2=$(reloads)
mkdir "$d/main.cf.tmp"
rc=0; ctl postfix-setup --apply >"$dir/fail6.out" 2>"$dir/fail6.err" || rc=$?
rmdir "$d/main.cf.tmp"
th_check_eq "route step fails after a reload: --apply exits 1" 1 "$rc"
th_check "route step fails after a reload: master.cf was written and Postfix reloaded first" \
	bash -c "grep -q '^done: master.cf: submission/inet' '$dir/fail6.out' && grep -q '^done: postfix reload\$' '$dir/fail6.out'"
th_check "route step fails after a reload: the step is named, files restored, Postfix reloaded with them" \
	grep -q 'step "postconf -e (main.cf: the request route)" failed; main.cf and master.cf restored from the backups; Postfix reloaded with the restored files' "$dir/fail6.err"
th_check_eq "route step fails after a reload: main.cf and master.cf byte-identical, reloaded twice" \
	"$sum2 $((rel2 + 2))" "$(sums) $(reloads)"
th_check_eq "route step fails after a reload: submission has its old milter list again" \
	"$OTHER_SUB" "$(pc -P -h submission/inet/smtpd_milters)"
find "$d" -maxdepth 1 -name '*.milter-alias-backup.*' -delete
rc=0; ctl postfix-setup --apply >"$dir/apply2.out" 2>&1 || rc=$?
th_check_eq "--apply once more: exit 0, wired again" "0 $sum1" "$rc $(sums)"
[ "$rc" = 0 ] || cat "$dir/apply2.out"

# --- the full create flow on every SASL service -------------------------------
request() { # PORT LOGIN SUBJECT
	th_swaks $H --port "$1" --auth PLAIN --auth-user "$2" \
		--auth-password "$(th_password "$2")" --from "$2@example.org" \
		--to makealias@example.org --header "Subject: $3"
}
request 587 alice "new setup-shop orders"
th_check_eq "submission: request answered 250 (milter and sync daemon)" 250 "$(th_smtp_reply_code EOM)"
th_check_eq "the new alias resolves" alice@example.org "$(th_postmap_q $H setup-shop@example.org)"
th_check "the confirmation through the alias reaches the owner" \
	th_wait_mail $H alice 'X-Milter-Alias-Server: s\.example\.test' 15
th_swaks $H --port 25 --from someone@elsewhere.test --to setup-shop@example.org \
	--header "Subject: setup order 1" >/dev/null
th_check "mail to the alias on port 25 is delivered" th_wait_mail $H alice 'Subject: setup order 1' 15
request 587 alice "new sales"
th_check_eq "the milter answers on submission: existing name refused 5xx" 5 "$(th_smtp_reply_code EOM | cut -c1)"
request 2587 bob "new setup-two"
th_check_eq "service 2587 (\$mua_milters): request answered 250" 250 "$(th_smtp_reply_code EOM)"
th_check_eq "service 2587: the alias resolves" bob@example.org "$(th_postmap_q $H setup-two@example.org)"
request 3587 carol "new setup-three"
th_check_eq "service 3587 (carried-over list): request answered 250" 250 "$(th_smtp_reply_code EOM)"
th_check_eq "service 3587: the alias resolves" carol@example.org "$(th_postmap_q $H setup-three@example.org)"
th_check_eq "the request messages are delivered nowhere" 0 \
	"$(grep -rlsE 'Subject: new setup-(shop|two|three)' "$dir/mail" | grep -c .)"

# --- ordinary mail still flows -------------------------------------------------
th_swaks $H --port 25 --from someone@elsewhere.test --to bob@example.org \
	--header "Subject: plain port 25" >/dev/null
th_check "ordinary mail on port 25 is delivered" th_wait_mail $H bob 'Subject: plain port 25' 15
th_swaks $H --port 587 --auth PLAIN --auth-user carol --auth-password secret-carol \
	--from carol@example.org --to bob@example.org --header "Subject: plain submission" >/dev/null
th_check "ordinary submission mail is delivered" th_wait_mail $H bob 'Subject: plain submission' 15
th_swaks $H --port 2587 --auth PLAIN --auth-user carol --auth-password secret-carol \
	--from carol@example.org --to bob@example.org --header "Subject: plain 2587" >/dev/null
th_check "ordinary mail on service 2587 is delivered" th_wait_mail $H bob 'Subject: plain 2587' 15
th_swaks $H --port 25 --from someone@elsewhere.test --to sales@example.org \
	--header "Subject: to the old alias" >/dev/null
th_check "the existing virtual alias still delivers" th_wait_mail $H alice 'Subject: to the old alias' 15
th_swaks $H --port 25 --from someone@elsewhere.test --to nobody@example.org >/dev/null
th_check_eq "an unknown recipient is still refused" 550 "$(th_smtp_reply_code RCPT)"

# --- the port-25 restriction -----------------------------------------------------
th_swaks $H --port 25 --from someone@elsewhere.test --to makealias@example.org \
	--header "Subject: new sneaky" >/dev/null
th_check_eq "port 25, not authenticated: request address refused 550 at RCPT" 550 "$(th_smtp_reply_code RCPT)"
th_check "port 25: the reply says to authenticate (5.7.1)" \
	reply_has RCPT '^550 5\.7\.1 .*Authenticate \(SMTP AUTH\) before sending alias requests'
th_swaks $H --port 25 --server 127.0.0.1:25 --from someone@localhost --to makealias@example.org >/dev/null
th_check_eq "port 25 from mynetworks, not authenticated: refused too" 550 "$(th_smtp_reply_code RCPT)"

# --- disabled aliases refuse mail with their reason, on every service ----------
ctl disable setup-shop@example.org >/dev/null
th_swaks $H --port 25 --from someone@elsewhere.test --to setup-shop@example.org >/dev/null
th_check_eq "disabled alias, port 25: 550 at RCPT" 550 "$(th_smtp_reply_code RCPT)"
th_check "disabled alias, port 25: the reply gives the reason" \
	reply_has RCPT '^550 .*[Tt]his alias was disabled by its owner'
th_swaks $H --port 2587 --from someone@elsewhere.test --to setup-shop@example.org >/dev/null
th_check_eq "disabled alias, service 2587 (own restrictions): 550 at RCPT" 550 "$(th_smtp_reply_code RCPT)"
ctl enable setup-shop@example.org >/dev/null
th_swaks $H --port 25 --from someone@elsewhere.test --to setup-shop@example.org >/dev/null
th_check_eq "enabled again: port 25 accepts it" 250 "$(th_smtp_reply_code RCPT)"

# --- health: a wired map that disappears is reported -----------------------------
mv "$access_db" "$access_db.hidden"
rc=0; ctl postfix-setup >"$dir/health.out" 2>&1 || rc=$?
mv "$access_db.hidden" "$access_db"
th_check_eq "a wired map whose compiled file is gone: report exits 1" 1 "$rc"
th_check "a wired map whose compiled file is gone: reported as a problem" \
	grep -q "^problem: .*start milter-alias-peer first: it builds $access_db" "$dir/health.out"
rc=0; ctl postfix-setup >/dev/null 2>&1 || rc=$?
th_check_eq "after the flow: still no changes needed" 0 "$rc"

# --- report-only variants: how the milter is named; a chrooted service -------
sed "s|^milter_socket .*|milter_socket = \"unix:$dir/spool/milter-alias/milter.sock\"|" \
	"$conf" > "$dir/rel.conf"
"$CTL" -c "$dir/rel.conf" postfix-setup >"$dir/rel.out" 2>&1
th_check "a socket under queue_directory is named relative to it" \
	has "$dir/rel.out" "main.cf: mua_milters: add unix:milter-alias/milter.sock last"
sed "s|^milter_socket .*|milter_socket = \"inet:10099@127.0.0.1\"|" "$conf" > "$dir/inet.conf"
rc=0; "$CTL" -c "$dir/inet.conf" postfix-setup >"$dir/inet.out" 2>&1 || rc=$?
th_check "inet:PORT@HOST is named inet:HOST:PORT for Postfix" \
	has "$dir/inet.out" "main.cf: mua_milters: add inet:127.0.0.1:10099 last"
th_check "a milter that does not answer is a problem" \
	grep -q "^problem: milter-alias does not accept connections on inet:10099@127.0.0.1" "$dir/inet.out"
rm -rf "$dir/pfcopy"; cp -a "$d" "$dir/pfcopy"
postconf -c "$dir/pfcopy" -F 'submission/inet/chroot=y'
sed "s|^postfix_config_dir .*|postfix_config_dir = \"$dir/pfcopy\"|" "$conf" > "$dir/chroot.conf"
rc=0; "$CTL" -c "$dir/chroot.conf" postfix-setup >"$dir/chroot.out" 2>&1 || rc=$?
th_check_eq "chrooted submission with a socket outside the queue directory: exit 1" 1 "$rc"
th_check "chrooted submission with a socket outside the queue directory: a problem" \
	grep -q "^problem: master.cf: submission/inet runs chrooted" "$dir/chroot.out"

th_summary
