#!/bin/bash
# test_standalone.sh - one real Postfix + Dovecot host in a network
# namespace, with milter-alias and milter-alias-peer attached: every row of
# contract §4 and §5, checked where a user sees it (the SMTP reply, the
# owner's Maildir, postmap -q against the compiled map).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

H=a

th_require_root || exit 1
th_project_binaries || exit 1
th_init || exit 1
th_cleanup_trap $H
th_host_create $H 198.51.100.1 || exit 1
conf=$(th_write_conf $H) || exit 1
dir=$(th_dir $H)
ctl() { "$CTL" -c "$conf" "$@"; }

start_peer() {
	# After a kill -9 the old socket file is still there: wait for the new.
	rm -f "$(th_control_socket $H)"
	th_daemon $H "$dir/peer.log" "$PEER" -f -c "$conf" >/dev/null
	th_wait_socket "$(th_control_socket $H)" 10
}
start_peer || { echo "sync daemon did not start"; cat "$dir/peer.log"; exit 1; }
th_daemon $H "$dir/milter.log" "$MILTER" -f -c "$conf" >/dev/null
th_wait_socket "$(th_milter_socket $H)" 10 || { cat "$dir/milter.log"; exit 1; }
th_set_milter $H "$(th_milter_socket $H)" || exit 1
# What postfix-setup wires for port 25: the daemon's access map refuses
# disabled and deleted aliases with a reason, and the request address to
# unauthenticated clients.
access="lmdb:$(th_map_file $H).access"
th_postconf $H "smtpd_restriction_classes = milter_alias_request" \
	"milter_alias_request = permit_sasl_authenticated, check_recipient_access static:{550 5.7.1 Authenticate (SMTP AUTH) before sending alias requests}" \
	"smtpd_recipient_restrictions = check_recipient_access $access, permit_mynetworks, reject_unauth_destination" || exit 1
th_host_start $H || exit 1

# request LOGIN SUBJECT [swaks args...] : send a request by submission
request() {
	local login=$1 subject=$2; shift 2
	th_swaks $H --port 587 --auth PLAIN --auth-user "$login" \
		--auth-password "$(th_password "$login")" --from "$login@example.org" \
		--to makealias@example.org --header "Subject: $subject" "$@"
}
# expect_eom DESC CODE : the last transcript's end-of-data reply class
expect_eom() {
	local got
	got=$(th_smtp_reply_code EOM)
	th_check_eq "$1" "$2" "${got:0:1}xx"
}
map_sum() { sha256sum "$(th_map_file $H)" | cut -d' ' -f1; }

# --- create, resolve, deliver, confirm -----------------------------------
request alice "new shop-amazon orders"
expect_eom "new shop-amazon: 250" 2xx
th_check_eq "postmap -q resolves the alias to its owner" alice@example.org \
	"$(th_postmap_q $H shop-amazon@example.org)"
th_check "confirmation through the alias reaches the owner" \
	th_wait_mail $H alice 'X-Milter-Alias-Server: a\.example\.test' 10
th_check "confirmation names the alias" \
	th_wait_mail $H alice 'Subject: Alias shop-amazon@example\.org is ready' 5
th_swaks $H --port 25 --from someone@elsewhere.test --to shop-amazon@example.org \
	--header "Subject: order 4711 shipped" >/dev/null
th_check "mail to the alias (port 25) reaches the owner's Maildir" \
	th_wait_mail $H alice 'Subject: order 4711 shipped' 10
th_check_eq "the request message itself is delivered nowhere" 0 \
	"$(grep -rlsE 'Subject: new shop-amazon orders' "$dir/mail" | grep -c .)"
ctl --json list >"$dir/list.json"
th_check "aliasctl --json list shows owner, note and node" \
	grep -q '"address": "shop-amazon@example.org", "target": "alice@example.org", "owner": "alice", "state": "active", "created": "[0-9T:Z-]*", "node": "a.example.test", "note": "orders"' "$dir/list.json"
th_check "the milter logs the request under Postfix's queue id" \
	grep -qE 'milter-alias: [0-9A-F]{6,}: request login=alice new shop-amazon' "$dir/milter.log"

# A bare name means "new NAME"; an upper-case, encoded request works too.
request alice "Newsletter-X"
expect_eom "a lone NAME creates it" 2xx
th_check_eq "names are folded to lower case" alice@example.org \
	"$(th_postmap_q $H newsletter-x@example.org)"
request alice "=?utf-8?q?new_encoded-shop?="
expect_eom "RFC 2047 encoded request" 2xx
th_check_eq "encoded request resolves" alice@example.org \
	"$(th_postmap_q $H encoded-shop@example.org)"
# Two changes within one second are both visible at once (lmdb in place).
request bob "new quick-one" && request bob "new quick-two"
th_swaks $H --port 25 --from x@elsewhere.test --to quick-two@example.org \
	--header "Subject: quick two check" >/dev/null
th_check_eq "second change of the same second accepted by smtpd" 250 \
	"$(th_smtp_reply_code RCPT)"

# --- refusals: 5xx and nothing written -----------------------------------
before=$(map_sum)
refuse() { # DESC LOGIN SUBJECT PATTERN
	request "$2" "$3"
	expect_eom "$1: 5xx" 5xx
	if th_smtp_reply EOM | grep -qiE -- "$4"; then th_pass "$1: reply says why"
	else th_fail "$1: reply says why (got: $(th_smtp_reply EOM | head -n1))"; fi
}
refuse "duplicate" alice "new shop-amazon" "already exists"
refuse "pipe" alice "new a|b" "not allowed"
refuse "slash" alice "new /etc/passwd" "not allowed"
refuse ":include:" alice "new :include:/etc/passwd" "not allowed"
refuse "white space in a name" alice "Foo bar" "unknown command"
refuse "encoded CR/LF" alice "=?us-ascii?q?new_a=0D=0Abcc=3A_x?=" "line break|control"
refuse "encoded non-ASCII" alice "=?utf-8?b?bmV3IGNhZsOp?=" "non-ASCII"
refuse "reserved name" alice "new postmaster" "reserved"
refuse "existing mailbox" alice "new bob" "in use"
refuse "existing virtual alias" alice "new sales" "in use"
refuse "local user" alice "new $TH_LOCAL_USER" "in use"
refuse "unserved domain" alice "new x@other.test" "not served"
refuse "overlong name" alice "new $(printf 'a%.0s' {1..65})" "longer than 64"
refuse "unknown verb" alice "frobnicate x" "unknown command"
refuse "empty subject" alice "" "empty"
refuse "request address as alias" alice "new makealias" "in use|request address"
refuse "leading dot" alice "new .hidden" "dot"
th_check_eq "refused requests wrote nothing" "$before" "$(map_sum)"

# Not authenticated: refused at RCPT on submission and on port 25.
th_swaks $H --port 587 --from alice@example.org --to makealias@example.org \
	--header "Subject: new sneaky"
th_check_eq "submission without AUTH: RCPT 5xx" 5 "$(th_smtp_reply_code RCPT | cut -c1)"
th_swaks $H --port 25 --from stranger@elsewhere.test --to makealias@example.org \
	--header "Subject: new sneaky"
th_check_eq "port 25 without AUTH: RCPT 550" 550 "$(th_smtp_reply_code RCPT)"
th_check "... with a reason" bash -c "grep -q 'Authenticate (SMTP AUTH) before sending alias requests' '${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}'"
# Mixed recipients: whichever comes second is refused.
request alice "new mixed-one" --to makealias@example.org,bob@example.org
th_check_eq "request address then another recipient" "250 550" "$(th_smtp_reply_codes RCPT)"
request alice "new mixed-two" --to bob@example.org,makealias@example.org
th_check_eq "another recipient then the request address" "250 550" "$(th_smtp_reply_codes RCPT)"
th_check_eq "mixed requests wrote nothing" "$before" "$(map_sum)"
# Ordinary authenticated mail is untouched.
th_swaks $H --port 587 --auth PLAIN --auth-user carol --auth-password secret-carol \
	--from carol@example.org --to bob@example.org --header "Subject: plain mail" >/dev/null
th_check "ordinary submission mail is delivered" th_wait_mail $H bob 'Subject: plain mail' 10

# --- lifecycle ------------------------------------------------------------
refuse "disable by another user" bob "disable shop-amazon" "another user"
request alice "disable shop-amazon"
expect_eom "owner disables" 2xx
th_swaks $H --port 25 --from x@elsewhere.test --to shop-amazon@example.org >/dev/null
th_check_eq "a disabled alias refuses mail at RCPT" 5 "$(th_smtp_reply_code RCPT | cut -c1)"
th_check "... saying it was disabled by its owner" \
	bash -c "grep -q 'disabled by its owner' '${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}'"
request alice "enable shop-amazon"
expect_eom "owner enables" 2xx
th_swaks $H --port 25 --from x@elsewhere.test --to shop-amazon@example.org >/dev/null
th_check_eq "an enabled alias accepts mail again" 250 "$(th_smtp_reply_code RCPT)"
request alice "delete newsletter-x"
expect_eom "owner deletes" 2xx
th_swaks $H --port 25 --from x@elsewhere.test --to newsletter-x@example.org >/dev/null
th_check "a deleted alias refuses mail, saying so" \
	bash -c "grep -q 'deleted by its owner' '${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}'"
refuse "a deleted name stays reserved" bob "new newsletter-x" "reserved to its former owner"
request alice "new newsletter-x again"
expect_eom "the former owner may create it again" 2xx
request alice "list"
expect_eom "list" 2xx
th_check "list reply reaches the owner" th_wait_mail $H alice 'Subject: Your aliases' 10

# --- concurrency ----------------------------------------------------------
pids=()
for i in 1 2 3 4 5; do
	TH_SWAKS_OUT=$dir/race.$i request alice "new race-name" >/dev/null &
	pids+=($!)
done
wait "${pids[@]}"	# not a bare wait: the daemons are children too
ok=0; bad=0
for i in 1 2 3 4 5; do
	c=$(th_smtp_reply_code EOM "$dir/race.$i")
	case $c in 250) ok=$((ok + 1)) ;; 5*|4*) ;; *) bad=$((bad + 1)) ;; esac
done
th_check_eq "5 concurrent requests for one name: exactly one 250" "1 0" "$ok $bad"
th_check_eq "the map holds the name once" 1 "$(grep -c '^race-name@example.org ' "$(th_map_file $H)")"

# --- daemon failures --------------------------------------------------------
pkill -KILL -f "milter-alias-peer -f -c $conf"
sleep 0.3
request alice "new while-down"
expect_eom "sync daemon down: 4xx" 4xx
start_peer
th_check "sync daemon restarts after kill -9 and keeps every alias" \
	bash -c "\"$CTL\" -c \"$conf\" show shop-amazon@example.org"
request alice "new while-down"
expect_eom "the retried request succeeds" 2xx
th_check "aliasctl status is healthy" ctl status

th_summary
