#!/bin/bash
# tests/postfix/test_harness.sh -- smoke test of tests/postfix/lib.sh.
#
# Needs root (network namespaces, postfix, dovecot, swaks).  Does not need
# the project's binaries.  Creates test host "a" (198.51.100.1), plus "b"
# (198.51.100.2, not started) for the link test, and destroys both at exit
# (TH_KEEP=1 keeps them).  Prints "N passed, M failed"; exits non-zero on any
# failure, including when namespaces cannot be created (it fails, never
# skips).  TH_TIMING=1 adds the time each check took.
#
# So that it can run while other suites use the default root and the ma-*
# namespaces (their host "a" is ma-a too), it uses its own root and
# namespace prefix unless TH_ROOT / TH_NS_PREFIX are set in the environment.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export TH_ROOT=${TH_ROOT:-/var/tmp/milter-alias-tests-harness}
export TH_NS_PREFIX=${TH_NS_PREFIX:-mh-}
# shellcheck source=lib.sh
. "$HERE/lib.sh"

T0=$EPOCHREALTIME

fatal() {
    th_fail "$*"
    th_summary
    exit 1
}

th_require_root || fatal "must run as root"
th_init "$TH_ROOT" "$TH_NS_PREFIX" || fatal "th_init"
th_cleanup_trap a b

A=a B=b
TOKEN="th$$.$RANDOM"

# ---- host creation (fails the test if namespaces cannot be created)
th_check "create host a (namespace, veth, Postfix+Dovecot config)" \
    th_host_create $A 198.51.100.1 || fatal "cannot create test host a"
th_check "start host a (ports 25 and 587 listen)" th_host_start $A ||
    fatal "cannot start test host a"
th_check_eq "host a has IP 198.51.100.1 inside its namespace" "198.51.100.1/24" \
    "$(th_exec $A ip -o -4 addr show dev eth0 | awk '{print $4}')"

# ---- idempotency: a crashed earlier run leaves processes and a deleted
# namespace behind; th_host_create must clean that up and start afresh.
old_pid=$(th_daemon $A /dev/null sleep 300)
ip netns del "$(th_ns $A)"
th_check "recreate host a over a crashed one" th_host_create $A 198.51.100.1 ||
    fatal "cannot recreate test host a"
th_check "restart host a" th_host_start $A || fatal "cannot restart host a"
# th_host_create killed it; allow the kernel and init 10 s to see it gone
# (a zombie waiting for init to reap it does not count as running)
if ! th_wait_dead "$old_pid" 10; then
    th_fail "leftover daemon of the crashed host was not killed"
else
    th_pass "leftover daemon of the crashed host was killed"
fi

# ---- (1) port 25, unauthenticated, to alice -> alice's Maildir
th_check "(1) port 25 unauthenticated mail to alice accepted" \
    th_swaks $A --port 25 --from bob@example.org --to alice@example.org \
        --header "Subject: one $TOKEN"
th_check_eq "(1) RCPT got 250" 250 "$(th_smtp_reply_code RCPT)"
th_check_eq "(1) end of DATA got 250" 250 "$(th_smtp_reply_code EOM)"
th_check "(1) delivered to alice's Maildir" th_wait_mail $A alice "one $TOKEN" 10

# ---- (2) submission with AUTH PLAIN as alice, to bob
th_check "(2) submission AUTH PLAIN alice -> bob accepted" \
    th_swaks $A --port 587 --auth PLAIN --auth-user alice \
        --auth-password "$(th_password alice)" \
        --from alice@example.org --to bob@example.org --header "Subject: two $TOKEN"
th_check_eq "(2) AUTH got 235" 235 "$(th_smtp_reply_code AUTH)"
th_check "(2) delivered to bob's Maildir" th_wait_mail $A bob "two $TOKEN" 10
th_check "(2) maillog shows sasl_username=alice" \
    th_wait_log $A "sasl_method=PLAIN, sasl_username=alice$" 5
th_check "(2b) AUTH LOGIN as alice@example.org accepted" \
    th_swaks $A --port 587 --auth LOGIN --auth-user alice@example.org \
        --auth-password "$(th_password alice)" \
        --from alice@example.org --to carol@example.org --header "Subject: twob $TOKEN"
th_check "(2b) delivered to carol's Maildir" th_wait_mail $A carol "twob $TOKEN" 10

# ---- (3) wrong password -> 535; no AUTH -> refused on submission
th_swaks $A --port 587 --auth PLAIN --auth-user alice --auth-password wrong \
    --from alice@example.org --to bob@example.org
rc=$?
th_check_eq "(3) wrong password: swaks exit 28 (AUTH failed)" 28 "$rc"
th_check_eq "(3) wrong password: AUTH got 535" 535 "$(th_smtp_reply_code AUTH)"
th_swaks $A --port 587 --from alice@example.org --to bob@example.org
th_check_eq "(3b) submission without AUTH: RCPT refused 554" 554 "$(th_smtp_reply_code RCPT)"

# ---- (4) makealias@example.org accepted and discarded
mark=$(th_log_mark $A)
th_check "(4) mail to makealias@example.org accepted" \
    th_swaks $A --port 587 --auth PLAIN --auth-user alice \
        --auth-password "$(th_password alice)" \
        --from alice@example.org --to makealias@example.org --header "Subject: new x$TOKEN"
th_check_eq "(4) end of DATA got 250" 250 "$(th_smtp_reply_code EOM)"
th_check "(4) discarded by discard(8)" th_wait_log $A \
    "to=<makealias@discard\.example\.test>, orig_to=<makealias@example\.org>.*status=sent" 10 "$mark"
th_check "(4) queue empty afterwards" th_wait_queue_empty $A 10
if grep -rqsF "new x$TOKEN" "$(th_dir $A)/mail"; then
    th_fail "(4) the request message was delivered somewhere"
else
    th_pass "(4) the request message was delivered nowhere"
fi

# ---- (5) postmap -q against the instance's maps
th_check_eq "(5) postmap -q sales@example.org hash:.../virtual" "alice@example.org" \
    "$(postmap -c "$(th_confdir $A)" -q sales@example.org "hash:$(th_confdir $A)/virtual")"
th_postmap_q $A shop@example.org >/dev/null
th_check_eq "(5) the project's lmdb map exists and is empty (postmap -q -> 1)" 1 "$?"

# ---- (6) the daemon user can rebuild the lmdb map; Postfix uses it
map=$(th_map_file $A)
runuser -u milter-alias -- sh -c \
    "printf 'shop@example.org\talice@example.org\n' > '$map.new' && mv '$map.new' '$map' &&
     postmap -c '$(th_confdir $A)' 'lmdb:$map'"
th_check_eq "(6) milter-alias rebuilt lmdb map: shop -> alice" "alice@example.org" \
    "$(th_postmap_q $A shop@example.org)"
th_check "(6) mail to shop@example.org accepted on port 25" \
    th_swaks $A --port 25 --from bob@example.org --to shop@example.org --header "Subject: six $TOKEN"
th_check "(6) delivered to alice through the lmdb alias" th_wait_mail $A alice "six $TOKEN" 10

# ---- (7) sendmail -C as user milter-alias (the confirmation path)
printf 'Subject: seven %s\nX-Milter-Alias-Server: a.example.test\n\nbody\n' "$TOKEN" |
    runuser -u milter-alias -- /usr/sbin/sendmail -C "$(th_confdir $A)" -f milter-alias@example.org carol@example.org
th_check_eq "(7) sendmail -C as milter-alias exits 0" 0 "$?"
th_check "(7) delivered to carol" th_wait_mail $A carol "seven $TOKEN" 10

# ---- (8) th_set_milter: a dead milter tempfails submission only
th_set_milter $A "$(th_milter_socket $A)"
th_check_eq "(8) mua_milters set in main.cf" "$(th_milter_socket $A)" \
    "$(postconf -c "$(th_confdir $A)" -h mua_milters)"
th_swaks $A --port 587 --from alice@example.org --to bob@example.org --auth PLAIN \
    --auth-user alice --auth-password "$(th_password alice)"
code=$(th_smtp_reply_codes AUTH)$(th_smtp_reply_codes MAIL)
case $code in 4*) th_pass "(8) dead milter: submission tempfails ($code)" ;;
             *) th_fail "(8) dead milter: submission should tempfail, got '$code'" ;; esac
th_check "(8) dead milter: port 25 unaffected" \
    th_swaks $A --port 25 --from bob@example.org --to alice@example.org
th_set_milter $A ""
th_check "(8) milter removed: submission works again" \
    th_swaks $A --port 587 --from alice@example.org --to bob@example.org --auth PLAIN \
        --auth-user alice --auth-password "$(th_password alice)"

# ---- (9) th_write_conf and directory permissions for the daemons
conf=$(th_write_conf $A 'max_aliases_per_user = 5')
th_check "(9) th_write_conf wrote node_name, map and sockets" grep -q \
    -e "^milter_socket *= \"unix:$(th_dir $A)/run/milter.sock\"" "$conf"
th_check "(9) conf has the extra line" grep -qx 'max_aliases_per_user = 5' "$conf"
th_check "(9) milter-alias can create sockets in run/" \
    runuser -u milter-alias -- sh -c "touch '$(th_dir $A)/run/probe' && rm '$(th_dir $A)/run/probe'"
th_check "(9) postfix can reach run/" runuser -u postfix -- test -x "$(th_dir $A)/run"
th_check "(9) milter-alias owns the state dir" \
    runuser -u milter-alias -- test -w "$(th_dir $A)/milter-alias"
pid=$(th_daemon $A "$(th_dir $A)/sleep.log" sleep 300)
th_check_eq "(9) th_daemon runs inside the namespace" "$(th_ns $A)" "$(ip netns identify "$pid")"

# ---- (10) second host b, link a<->b and th_link_down/up
tcp_b_to_a() { th_exec $B timeout 1 bash -c 'exec 3<>/dev/tcp/198.51.100.1/25' 2>/dev/null; }
th_check "(10) create host b" th_host_create $B 198.51.100.2
th_check "(10) b reaches a:25 over the link" tcp_b_to_a
th_check "(10) swaks from b to a delivers" \
    th_swaks_from $B $A --port 25 --from bob@example.org --to alice@example.org --header "Subject: ten $TOKEN"
th_link_down $B
if tcp_b_to_a; then th_fail "(10) link down: b still reaches a"; else th_pass "(10) link down: b cannot reach a"; fi
th_link_up $B
th_check "(10) link up: b reaches a again" _th_poll 5 tcp_b_to_a

th_host_stop $A 1
# th_host_stop has signalled everything; a process may take a moment to
# die on a busy machine, so wait for the outcome (10 s at most)
if ! th_wait_dead "$pid" 10; then th_fail "(11) th_host_stop left th_daemon running"
else th_pass "(11) th_host_stop stopped th_daemon"; fi
ns_pids() { ip netns pids "$(th_ns $A)" 2>/dev/null; }
ns_empty() { [ -z "$(ns_pids)" ]; }
_th_poll 10 ns_empty || :
th_check_eq "(11) no process left in the namespace" "" "$(ns_pids)"

echo "run time: $(printf '%.1f' "$(echo "$EPOCHREALTIME - $T0" | bc)") s"
th_summary
