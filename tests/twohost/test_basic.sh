#!/bin/bash
# test_basic.sh - two real Postfix+Dovecot hosts (a, b) in network
# namespaces running milter-alias as a pair: an alias requested on one host
# exists, delivers and is confirmed on both; refusals and state changes
# reach both; status/verify see a healthy pair; the peer link refuses a
# wrong pin and a client without a certificate (contract sections 5, 6, 7).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2034  # read by lib2.sh
TW_SUITE=basic
# shellcheck source=lib2.sh
. "$here/lib2.sh"

tw_begin

# --- create on a: resolves, delivers and confirms on both -----------------
tw_request a alice "new shop-two orders"
tw_expect_class "new shop-two on a: 250" 2xx
for h in a b; do
	th_check_eq "postmap -q on $h resolves shop-two to its owner" alice@example.org \
		"$(tw_q $h shop-two@example.org)"
done
for h in a b; do
	th_check "confirmation through $h's own map reaches alice's Maildir on $h" \
		th_wait_mail $h alice "X-Milter-Alias-Server: $h\.example\.test" 15
done
sleep 1	# a second confirmation (a duplicate) would arrive by now
for h in a b; do
	o=$(tw_other $h)
	th_check_eq "exactly one confirmation on $h, naming $h" "1 0" \
		"$(th_mail_count $h alice "X-Milter-Alias-Server: $h\.example\.test") $(th_mail_count $h alice "X-Milter-Alias-Server: $o\.example\.test")"
	th_check_eq "confirmation on $h names the alias" 1 \
		"$(th_mail_count $h alice 'shop-two@example\.org')"
done
for h in a b; do
	th_check_eq "port 25 of $h accepts mail to the alias" 250 \
		"$(tw_mail_to $h shop-two@example.org "order on $h")"
	th_check "mail to the alias on $h lands in alice's Maildir on $h" \
		th_wait_mail $h alice "Subject: order on $h" 10
done
th_check_eq "the request message itself is delivered nowhere" 0 \
	"$(grep -rlsE 'Subject: new shop-two orders' "$(th_dir a)/mail" "$(th_dir b)/mail" | grep -c .)"

# --- duplicate on b: 5xx, nothing changes ----------------------------------
before=$(tw_map_entries a; tw_map_entries b)
tw_request b bob "new shop-two"
tw_expect_class "duplicate request on b: 5xx" 5xx
if th_smtp_reply EOM | grep -qi "already exists"; then th_pass "duplicate refusal says 'already exists'"
else th_fail "duplicate refusal says 'already exists' (got: $(th_smtp_reply EOM | head -n1))"; fi
th_check_eq "the refused duplicate changed no map" "$before" "$(tw_map_entries a; tw_map_entries b)"
th_check_eq "shop-two still belongs to alice on b" alice@example.org "$(tw_q b shop-two@example.org)"

# --- disable on b refuses mail on both; enable on a restores --------------
tw_request b alice "disable shop-two"
tw_expect_class "owner disables shop-two on b: 250" 2xx
for h in a b; do
	th_check_eq "disabled alias refused on $h (RCPT 5xx)" 5 "$(tw_mail_to $h shop-two@example.org | cut -c1)"
	th_check "... on $h saying it was disabled by its owner" \
		grep -q 'disabled by its owner' "$(th_dir $h)/mail_to.last"
done
tw_request a alice "enable shop-two"
tw_expect_class "owner enables shop-two on a: 250" 2xx
for h in a b; do
	th_check_eq "enabled alias accepted again on $h" 250 "$(tw_mail_to $h shop-two@example.org)"
done
# an administrator change on b reaches a
th_check "aliasctl add on b" tw_ctl b add admin-made@example.org --owner carol
# contract section 6: when add returns the change is durable on every
# server; a applies it when the decision arrives a moment later, and until
# then defers mail to the address (450), never refusing it for good.
# Ask the access map first: engine_apply writes an active alias's entry
# before it drops the pending 450, so "no 450" then means "entry present".
# (The other order raced: entry absent, then the decision, then no 450.)
state=$(th_postmap_q a admin-made@example.org \
	"lmdb:$(th_map_file a).access" 2>/dev/null)
case $state in 450\ *) ;; *) state=$(tw_q a admin-made@example.org) ;; esac
case $state in
carol@example.org|450\ *) th_pass "the moment add on b returns, a delivers or defers (never 5xx): ${state%% *}" ;;
*) th_fail "the moment add on b returns, a delivers or defers (got '$state')" ;;
esac
_resolves_a() { [ -n "$(tw_q a admin-made@example.org)" ]; }
th_check "the admin alias resolves on a (within 5 s)" _th_poll 5 _resolves_a

# --- verify / status ---------------------------------------------------------
for h in a b; do
	th_check_eq "verify on $h: identical (exit 0)" 0 "$(tw_verify $h)"
	rc=0; tw_ctl $h status >/dev/null 2>&1 || rc=$?
	th_check_eq "status on $h: healthy (exit 0)" 0 "$rc"
done
# "digest equal" is learnt by the daemons' periodic contact (every 15 s)
_peer_ok() {
	tw_status_json "$1" | jq -e --arg p "$(tw_node "$(tw_other "$1")")" \
		'.peers | length == 1 and .[0].name == $p and .[0].connected == true and .[0].digest_equal == true' >/dev/null 2>&1
}
for h in a b; do
	t0=$EPOCHREALTIME
	if _th_poll 20 _peer_ok $h; then
		th_pass "status --json on $h: peer $(tw_node "$(tw_other $h)") connected, digest equal (after $(awk -v s="$t0" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s)"
	else th_fail "status --json on $h: peer connected, digest equal within 20 s (got: $(tw_status_json $h | tr '\n' ' '))"; fi
done
# the CLI reports the same view on both hosts
th_check_eq "list --json: same aliases on both hosts" \
	"$(tw_ctl a list --json | jq -c 'map({address,target,owner,state,node,note})|sort_by(.address)')" \
	"$(tw_ctl b list --json | jq -c 'map({address,target,owner,state,node,note})|sort_by(.address)')"

# --- a hand edit is reported by verify, never silently overwritten ---------
mapb=$(th_map_file b)
printf 'handmade@example.org\tcarol@example.org\n' >> "$mapb"
postmap -c "$(th_confdir b)" "lmdb:$mapb"
for h in a b; do
	out=$(tw_ctl $h verify 2>&1); rc=$?
	th_check_eq "hand edit on b: verify on $h exits 1 (differ)" 1 "$rc"
	if grep -q handmade <<<"$out"; then th_pass "hand edit on b: verify on $h names the difference"
	else th_fail "hand edit on b: verify on $h names the difference (printed: $(head -c 300 <<<"$out" | tr '\n' '|'))"; fi
done
rc=0; tw_ctl a status >/dev/null 2>&1 || rc=$?
th_check_eq "hand edit on b: status on a unhealthy (exit 1)" 1 "$rc"
# the next change (committed or refused) must not silently drop the edit
tw_request a alice "new after-hand-edit"
echo "# a change while b is hand-edited: $(tw_eom_class) $(th_smtp_reply EOM | head -n1)"
th_check "hand edit on b: still in b's map source after the next change" \
	grep -q '^handmade@example.org' "$mapb"
th_check_eq "hand edit on b: not copied to a" "" "$(tw_q a handmade@example.org)"
# undo the edit (source line and compiled key)
sed -i '/^handmade@example.org/d' "$mapb"
postmap -c "$(th_confdir b)" -d handmade@example.org "lmdb:$mapb" 2>/dev/null
postmap -c "$(th_confdir b)" "lmdb:$mapb"
th_check "hand edit undone: verify identical again" tw_wait_converged 20

# --- wrong pin: a pins a key that is not b's --------------------------------
pin_b=$(tw_pin b)
wrong=$(tw_random_pin)
tw_write_conf a "$wrong" >/dev/null
mark_a=$(tw_log_mark "$(tw_peer_log a)"); mark_b=$(tw_log_mark "$(tw_peer_log b)")
tw_restart_peer a || th_fail "restart a with a wrong pin for b"
sleep 1
# verify makes each side call the other now (status alone shows the state of
# the last contact, which may be up to 15 s old)
th_check_eq "wrong pin: verify on a cannot ask b (exit 2)" 2 "$(tw_verify a)"
th_check_eq "wrong pin: verify on b cannot ask a (exit 2)" 2 "$(tw_verify b)"
if tw_connected a || tw_connected b; then
	th_fail "wrong pin: link refused (a connected: $(tw_connected a && echo yes || echo no), b: $(tw_connected b && echo yes || echo no))"
else
	th_pass "wrong pin: the link is refused (neither side connected)"
fi
log_a=$(tw_log_since "$(tw_peer_log a)" "$mark_a")
log_b=$(tw_log_since "$(tw_peer_log b)" "$mark_b")
if grep -F -- "$pin_b" <<<"$log_a" | grep -qiE 'pin|refus|reject|mismatch|unknown|not'; then
	th_pass "wrong pin: a's log names the key b presented ($pin_b)"
else
	th_fail "wrong pin: a's log names the key b presented ($pin_b); a's log since restart: $(head -c 600 <<<"$log_a" | tr '\n' '|')"
fi
if grep -F -- "$pin_b" <<<"$log_b" | grep -qiE 'refus|reject|bad|not configured'; then
	th_pass "wrong pin: b's log names the presented pin ($pin_b) on the refused link"
else
	th_fail "wrong pin: b's log names the presented pin; b's log since a's restart: $(head -c 600 <<<"$log_b" | tr '\n' '|')"
fi
before=$(tw_map_entries a; echo "-- b"; tw_map_entries b)
tw_request a alice "new pinned-out"
tw_expect_class "wrong pin: request on a gets 4xx" 4xx
th_check_eq "wrong pin: nothing changed on either host" "$before" "$(tw_map_entries a; echo "-- b"; tw_map_entries b)"
th_check_eq "wrong pin: pinned-out resolves nowhere" ":" "$(tw_q a pinned-out@example.org):$(tw_q b pinned-out@example.org)"
rc=0; tw_ctl a status >/dev/null 2>&1 || rc=$?
th_check_eq "wrong pin: status on a unhealthy (exit 1)" 1 "$rc"

# restore the right pin
tw_write_conf a >/dev/null
tw_restart_peer a || th_fail "restart a with the right pin"
th_check "right pin again: converged and connected" tw_wait_recovered 20
th_check_eq "pinned-out still resolves nowhere" ":" "$(tw_q a pinned-out@example.org):$(tw_q b pinned-out@example.org)"

# --- a client without a certificate ------------------------------------------
mark_b=$(tw_log_mark "$(tw_peer_log b)")
nocert=$(th_exec a "$TW_PY" - "$(tw_ip b)" "$TW_PORT" <<'EOF' 2>&1
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
try:
    t = ctx.wrap_socket(s)
    print("handshake", t.version())
    t.sendall(b"HELLO a.example.test\r\n")
    d = t.recv(4096)
    print("DATA" if d else "EOF", repr(d[:80]))
except (ssl.SSLError, OSError) as e:
    print("REFUSED", e)
EOF
)
case $nocert in
	*DATA*) th_fail "client without certificate is refused by b (got data: $nocert)" ;;
	*REFUSED*|*EOF*) th_pass "client without certificate is refused by b ($(tail -n1 <<<"$nocert"))" ;;
	*) th_fail "client without certificate is refused by b (client said: $nocert)" ;;
esac
if command -v gnutls-cli >/dev/null; then
	# TLS 1.3: the client finishes its handshake, then b's "certificate
	# required" alert ends the connection before any byte of the protocol
	rc=0; out=$(th_exec a timeout 15 gnutls-cli --insecure --port "$TW_PORT" "$(tw_ip b)" </dev/null 2>&1) || rc=$?
	if [ $rc != 0 ] && grep -qiE 'Certificate is required|Handshake has failed|terminated the connection' <<<"$out"; then
		th_pass "gnutls-cli without certificate is refused by b ($(grep -iE 'Received alert|Handshake has failed' <<<"$out" | head -n1))"
	else
		th_fail "gnutls-cli without certificate is refused by b (exit $rc: $(tail -n 4 <<<"$out" | tr '\n' '|'))"
	fi
fi
sleep 0.5
if tw_log_since "$(tw_peer_log b)" "$mark_b" | grep -qiE 'cert|refus|reject|handshake'; then
	th_pass "b logs the refused certificate-less client"
else
	th_fail "b logs the refused certificate-less client (log: $(tw_log_since "$(tw_peer_log b)" "$mark_b" | head -c 400 | tr '\n' '|'))"
fi
th_check "b still alive after the certificate-less clients" tw_peer_alive b
th_check_eq "b still talks to its real peer: verify on a and on b" "0 0" "$(tw_verify a) $(tw_verify b)"
th_check "b still connected to its real peer" tw_connected b
tw_request b bob "new after-probe"
tw_expect_class "a request on b after the probes: 250" 2xx
tw_check_invariant "after-probe" after-probe@example.org 2xx bob@example.org

tw_wall test_basic
th_summary
