#!/bin/bash
# test_expiry.sh - two real Postfix+Dovecot hosts (a, b): aliases that
# expire and aliases with a generated name (issue #13, contract section 9).
#   - "new-for 10s NAME" on a: resolves and delivers on both; list shows
#     the expiry; when it runs out, both hosts refuse mail to it with 5xx
#     saying it expired (one expiry transaction, no error logged);
#   - its owner enables it on b: it delivers on both again, for its
#     lifetime; "expire NAME never" takes the lifetime away;
#   - "new-for 30d * NOTE" (a generated name) on b: 250; the same name in
#     the request's log line and both confirmations; it resolves and
#     delivers on both hosts;
#   - an alias whose lifetime runs out while b's daemon is down keeps
#     delivering on both hosts, and expires on both once b is back.
# Lifetimes in seconds and a sweep every second come from the test-only
# knobs expiry_test_seconds and expiry_check_interval (milter-alias.conf(5)).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=expiry
# shellcheck disable=SC2034  # read by lib2.sh
TW_CONF_EXTRA=$'expiry_check_interval = 1\nexpiry_test_seconds = true'
# shellcheck source=lib2.sh
. "$here/lib2.sh"

LIFETIME=10	# seconds: long enough to check delivery on both hosts first

tw_begin

mark_a=$(tw_log_mark "$(tw_peer_log a)")
mark_b=$(tw_log_mark "$(tw_peer_log b)")

# --- an alias with a short lifetime ----------------------------------------
tw_request a alice "new-for ${LIFETIME}s short-one one order"
created=$(date +%s)
tw_expect_class "new-for ${LIFETIME}s short-one on a: 250" 2xx
for h in a b; do
	th_check_eq "short-one resolves on $h" alice@example.org "$(tw_q $h short-one@example.org)"
	th_check_eq "port 25 of $h accepts mail to short-one while it lives" 250 \
		"$(tw_mail_to $h short-one@example.org "before expiry on $h")"
done
json=$(tw_ctl b list --json)
if $TW_PY -c '
import json, sys
a = [x for x in json.loads(sys.argv[1]) if x["address"] == "short-one@example.org"][0]
assert a["expires"] and a["lifetime"] == int(sys.argv[2]) and a["note"] == "one order", a
' "$json" "$LIFETIME"; then
	th_pass "list --json on b shows short-one's expiry and lifetime"
else
	th_fail "list --json on b shows short-one's expiry and lifetime ($json)"
fi
th_check "list (table) on a has an EXPIRES column with a time for short-one" \
	bash -c "tw() { '$CTL' -c '$(tw_conf a)' \"\$@\"; }; tw list | head -n1 | grep -q EXPIRES &&
		tw list | grep '^short-one@' | grep -qE '[0-9]{4}-[0-9]{2}-[0-9]{2}T'"

# --- it runs out: 5xx on both hosts, saying it expired ----------------------
_refused_both() {
	[ "$(tw_mail_to a short-one@example.org x | cut -c1)" = 5 ] &&
		[ "$(tw_mail_to b short-one@example.org x | cut -c1)" = 5 ]
}
# due at created+LIFETIME; a sweep every second, one commit round trip
if _th_poll $((LIFETIME + 20)) _refused_both; then
	th_pass "short-one refused (5xx) on both hosts $(( $(date +%s) - created )) s after it was created (lifetime $LIFETIME s)"
else
	th_fail "short-one refused (5xx) on both hosts within $((LIFETIME + 20)) s"
fi
th_check "... not before its lifetime ran out" test $(( $(date +%s) - created )) -ge "$LIFETIME"
for h in a b; do
	th_check "... the refusal on $h says it expired" \
		grep -q 'This alias has expired' "$(th_dir $h)/mail_to.last"
	th_check_eq "short-one no longer resolves on $h" "" "$(tw_q $h short-one@example.org)"
done
th_check "the maps of both hosts are identical (verify on a)" test "$(tw_verify a)" = 0
n_exp=$( (tw_log_since "$(tw_peer_log a)" "$mark_a"; tw_log_since "$(tw_peer_log b)" "$mark_b") |
	grep -c 'expired address=short-one@example.org')
th_check_eq "exactly one server committed the expiry" 1 "$n_exp"
errs=$( (tw_log_since "$(tw_peer_log a)" "$mark_a"; tw_log_since "$(tw_peer_log b)" "$mark_b") |
	grep -iE 'short-one' | grep -iE 'error|warn|differs|not committed' || :)
th_check_eq "no error or warning about short-one in either daemon's log" "" "$errs"
for h in a b; do
	th_check "show on $h has the expiry in short-one's history" \
		bash -c "'$CTL' -c '$(tw_conf $h)' show short-one@example.org | grep -qE '^[0-9T:-]+Z  expired  -> alice@example.org'"
done
th_check_eq "list --json on a says disabled" disabled \
	"$(tw_ctl a list --json | $TW_PY -c 'import json,sys; print([x["state"] for x in json.load(sys.stdin) if x["address"] == "short-one@example.org"][0])')"

# --- the owner enables it again (and so extends it) -------------------------
tw_request b alice "enable short-one"
tw_expect_class "alice enables short-one on b: 250" 2xx
for h in a b; do
	th_check_eq "enabled short-one accepted again on $h" 250 \
		"$(tw_mail_to $h short-one@example.org "after enable on $h")"
done
tw_request a alice "expire short-one never"
tw_expect_class "expire short-one never on a: 250" 2xx
th_check_eq "short-one no longer expires (list --json on b)" "None" \
	"$(tw_ctl b list --json | $TW_PY -c 'import json,sys; print([x["expires"] for x in json.load(sys.stdin) if x["address"] == "short-one@example.org"][0])')"
for h in a b; do
	th_check_eq "short-one active on $h after expire never" alice@example.org \
		"$(tw_q $h short-one@example.org)"
done
tw_request a bob "expire short-one 30d"
tw_expect_class "bob cannot change alice's lifetime: 5xx" 5xx
tw_request a alice "new-for 400d too-long"
tw_expect_class "a lifetime beyond 365 days is refused: 5xx" 5xx

# --- a generated name ------------------------------------------------------
mark_milter_b=$(tw_log_mark "$(th_dir b)/milter.log")
tw_request b alice "new-for 30d * newsletter signup"
tw_expect_class "new-for 30d * on b: 250" 2xx
reply=$(th_smtp_reply EOM | head -n1)
gen=$(tw_log_since "$(th_dir b)/milter.log" "$mark_milter_b" |
	sed -nE 's/.*request login=alice new -: Alias ([a-z0-9.-]+@example\.org) created.*/\1/p' | head -n1)
if [[ $gen =~ ^[bdfghjklmnprstvz][aeio]([bdfghjklmnprstvz][aeio]){3}[.]([bdfghjklmnprstvz][aeio]){4}@example\.org$ ]]; then
	th_pass "the milter's log names the generated address $gen"
else
	th_fail "the milter's log names a generated address of 8 syllables (got '$gen')"
fi
th_msg "250 reply text (Postfix writes it; a milter cannot): $reply"
if [ -n "$gen" ]; then
	for h in a b; do
		th_check_eq "$gen resolves on $h" alice@example.org "$(tw_q $h "$gen")"
	done
	tw_check_confirmations "generated" alice "$gen" 15
	for h in a b; do
		th_check_eq "port 25 of $h accepts mail to $gen" 250 "$(tw_mail_to $h "$gen" "to the generated name on $h")"
		th_check "mail to $gen lands in alice's Maildir on $h" \
			th_wait_mail $h alice "Subject: to the generated name on $h" 10
	done
	th_check_eq "list --json on a: note and 30-day lifetime of $gen" "newsletter signup 2592000" \
		"$(tw_ctl a list --json | $TW_PY -c 'import json,sys; a=[x for x in json.load(sys.stdin) if x["address"] == sys.argv[1]][0]; print(a["note"], a["lifetime"])' "$gen")"
fi

# --- a peer down: the expiry waits, never refused on one host only ---------
tw_request a alice "new-for ${LIFETIME}s while-down"
created=$(date +%s)
tw_expect_class "new-for ${LIFETIME}s while-down on a: 250" 2xx
th_check "b's sync daemon stops" tw_stop_peer b
_clock_past() { [ "$(date +%s)" -gt "$1" ]; }
# time has to pass here (not an assertion): its lifetime and 3 sweeps
_th_poll $((LIFETIME + 15)) _clock_past $((created + LIFETIME + 3)) || :
for h in a b; do
	th_check_eq "while b's daemon is down, port 25 of $h still accepts while-down" 250 \
		"$(tw_mail_to $h while-down@example.org "while b is down")"
done
th_check "b's sync daemon starts again" tw_start_peer b
th_check "the pair reconnects" tw_wait_recovered 30
_while_down_refused() {
	[ "$(tw_mail_to a while-down@example.org x | cut -c1)" = 5 ] &&
		[ "$(tw_mail_to b while-down@example.org x | cut -c1)" = 5 ]
}
t_back=$(date +%s)
if _th_poll 20 _while_down_refused; then
	th_pass "once b is back, while-down expires on both hosts ($(( $(date +%s) - t_back )) s after the pair reconnected)"
else
	th_fail "once b is back, while-down expires on both hosts within 20 s"
fi
for h in a b; do
	th_check "... the refusal on $h says it expired" \
		grep -q 'This alias has expired' "$(th_dir $h)/mail_to.last"
done
th_check "the maps of both hosts are identical at the end (verify on b)" test "$(tw_verify b)" = 0

tw_wall test_expiry
th_summary
