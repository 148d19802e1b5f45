#!/bin/bash
# test_handedit.sh - the administrator edits b's map source by hand while
# the pair keeps working (issue #12 item 4, contract section 6: a hand edit
# is never silently overwritten).  An entry continued on an indented line,
# which postmap accepts, survives a change made on a and resolves to both
# targets; a file the edit made unreadable gets 4xx, is not rewritten and
# shows in status; once fixed, the next request gets 250 without a restart.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=handedit
# shellcheck source=lib2.sh
. "$here/lib2.sh"

tw_begin

map_b=$(th_map_file b)
hand=$'# added by hand\nhand2@example.org bob@example.org,\n\talice@example.org\n'
bad_line=$'keyonly@example.org\n'
pid_b=$(tw_peer_pid b)

# the administrator's edit, written in place as an editor may
printf '%s' "$hand" >> "$map_b"
cp -p "$map_b" "$TH_ROOT/map_b.good"
_hand_resolves() { [ "$(tw_q b hand2@example.org)" = $'bob@example.org,\talice@example.org' ]; }
th_check "b takes up the hand edit by itself: postmap -q hand2 gives both targets" \
	_th_poll 20 _hand_resolves

# verify names the hand edit, and only it, as the difference: b's dump
# holds it as b's file does (two targets), which a once dropped, listing
# every hand entry of its own as absent there instead
rc=0; out=$(tw_ctl a verify 2>&1) || rc=$?
th_check_eq "verify on a: exit 1, the maps differ" 1 "$rc"
th_check_eq "verify on a names hand2 as b holds it, and nothing else" \
	"hand2@example.org differs from $(tw_node b):
  here:  absent
  there: active -> bob@example.org,	alice@example.org owner= created=0 node=" "$out"

# --- a change on a: the edit stays on b, as written -------------------------
tw_request a alice "new shop-hand"
tw_expect_class "new shop-hand on a with b's file hand-edited: 250" 2xx
th_check_eq "postmap -q on b resolves shop-hand" alice@example.org "$(tw_q b shop-hand@example.org)"
_has_hand() { python3 - "$map_b" "$hand" <<'EOF'
import sys
sys.exit(0 if sys.argv[2] in open(sys.argv[1]).read() else 1)
EOF
}
th_check "b's file still holds the continued entry byte for byte" _has_hand
th_check "postmap -q hand2 on b still gives both targets" _hand_resolves
th_check_eq "mail to hand2 on b: 250" 250 "$(tw_mail_to b hand2@example.org "hand on b")"
for u in alice bob; do
	th_check "... and lands in $u's Maildir on b" th_wait_mail b "$u" "Subject: hand on b" 10
done

# --- an unreadable file: 4xx, not rewritten, shown; fixed: 250 -------------
cp -p "$map_b" "$TH_ROOT/map_b.good"
printf '%s' "$bad_line" >> "$map_b"
cp -p "$map_b" "$TH_ROOT/map_b.bad"
tw_request a alice "new shop-broken"
tw_expect_class "new shop-broken on a while b's file cannot be read: 4xx" 4xx
tw_request b alice "new shop-broken"
tw_expect_class "the same on b itself: 4xx" 4xx
th_check "b did not rewrite its unreadable file" cmp -s "$map_b" "$TH_ROOT/map_b.bad"
th_check "b's log names the file and the line" \
	grep -qE "aliases: line [0-9]+: " "$(tw_peer_log b)"
err=$(tw_status_json b | python3 -c 'import json,sys; print(json.load(sys.stdin).get("map_error", ""))')
case $err in
*aliases:\ line\ *) th_pass "status on b shows map_error ($err)" ;;
*) th_fail "status on b shows map_error (got '$err')" ;;
esac
th_check_eq "nothing of shop-broken on either side" "" "$(tw_q a shop-broken@example.org)$(tw_q b shop-broken@example.org)"

# the administrator fixes the file (a new file renamed into place)
cp -p "$TH_ROOT/map_b.good" "$map_b.tmp" && mv "$map_b.tmp" "$map_b"
tw_request a alice "new shop-broken"
tw_expect_class "fixed: the next request on a gets 250, no restart" 2xx
th_check_eq "b's daemon was not restarted" "$pid_b" "$(tw_peer_pid b)"
th_check_eq "postmap -q on b resolves shop-broken" alice@example.org "$(tw_q b shop-broken@example.org)"
th_check "b's file still holds the continued entry" _has_hand
th_check "postmap -q hand2 on b still gives both targets" _hand_resolves
err=$(tw_status_json b | python3 -c 'import json,sys; print(json.load(sys.stdin).get("map_error", ""))')
th_check_eq "status on b: no map_error any more" "" "$err"

tw_wall test_handedit
th_summary
