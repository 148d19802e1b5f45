# shellcheck shell=bash
# tests/twohost/lib2.sh -- two real Postfix+Dovecot hosts running milter-alias
# as a synchronised pair (the README's test layer 4: what a synchronised pair guarantees).
#
# Source it from a bash test script (run as root), after choosing a suite
# name that keeps the run's test root and namespaces apart from every other
# suite's (namespace names are global to the machine):
#
#     TW_SUITE=basic                     # root /var/tmp/milter-alias-twohost-basic
#     . "$(dirname "$0")/lib2.sh"        # namespaces tb-a tb-b tb-switch
#     tw_preflight || exit 1             # root? binaries built? (FAILs, never skips)
#     tw_setup || exit 1                 # hosts, keys, pins, confs, daemons, milter
#     tw_request a alice "new shop"      # swaks --auth on a's 587
#     tw_eom_class                       # -> 2xx / 4xx / 5xx / none
#     tw_check_invariant "shop" shop@example.org 2xx alice@example.org
#     th_summary
#
# It builds on tests/postfix/lib.sh (th_* functions; read its header).  The
# pair is host a = 198.51.100.1 and host b = 198.51.100.2 on one L2 segment;
# node names a.example.test and b.example.test; each host's
# milter-alias-peer listens on IP:7465 and pins the other's key.  Files per
# host (ROOT/NAME/):
#   tls/key.pem tls/cert.pem   made by "milter-aliasctl keygen" (root, chowned)
#   milter-alias.conf          th_write_conf + listen, tls, peer sections
#   peer.log milter.log        the daemons' stderr (-f), appended; every
#                              start is preceded by a "=== tw: ..." line
#   peer.pid                   pid of the current milter-alias-peer
#   pin                        this host's own pin (sha256//...)
#
# Environment knobs:
#   TW_SUITE            suite name; picks the default TH_ROOT
#                       (/var/tmp/milter-alias-twohost-SUITE) and TH_NS_PREFIX
#                       (t + first letter of SUITE + "-"); both may be set
#                       explicitly instead.
#   TW_COMMIT_TIMEOUT   commit_timeout written to both confs (default 4 s)
#   TW_CONF_EXTRA       lines appended to both hosts' pair configuration
#   TW_SERVERS          2 (default) or 3: with 3, a third server c =
#                       198.51.100.3 joins; every host pins every other one,
#                       and tw_setup, tw_converged, tw_wait_connected and
#                       tw_maps_identical cover all of TW_HOSTS
#   TW_MAP_FORMAT       map_format written to every conf (default: lib.sh's "virtual")
#   TW_DOMAINS          the domains list written to every conf, without the
#                       braces (default: lib.sh's "example.org")
#   TW_HOST_HOOK        a function run as "HOOK NAME" for each host after
#                       th_host_create and before any daemon starts (e.g. to
#                       mount a small file system on the state directory)
#   TW_COPY_BINARIES    1 (default): tw_preflight copies the three binaries
#                       to ROOT/bin and runs those, so a rebuild during the
#                       run cannot break a daemon restart; 0: run them in place
#   top_builddir        where the binaries are (default: the source tree)
#   TH_KEEP, TH_VERBOSE, TH_TIMING as in lib.sh.
#
# Functions (each has its comment below):
#   bring-up     tw_preflight tw_setup tw_keys tw_write_conf tw_wire_access
#   daemons      tw_start_peer NAME [CRASH_POINT]  tw_restart_peer NAME [CRASH_POINT]
#                tw_stop_peer tw_kill_peer tw_peer_pid tw_peer_alive
#                tw_start_milter tw_kill_milter tw_milter_pid tw_milter_alive
#   state        tw_ctl NAME ARGS  tw_status_json tw_connected tw_in_doubt
#                tw_verify tw_converged tw_wait_converged [T]
#                tw_wait_connected [T]  tw_wait_recovered [T]
#   mail         tw_request HOST LOGIN SUBJECT  tw_eom_class  tw_expect_class
#                tw_mail_to HOST RCPT  tw_confirmations  tw_check_confirmations
#   invariants   tw_q tw_map_entries tw_map_count tw_maps_identical
#                tw_check_invariant DESC ADDRESS CLASS [TARGET]
#   misc         tw_ip tw_other tw_node tw_conf tw_pin tw_peer_log tw_random_pin
#                tw_log_mark tw_log_since tw_elapsed tw_dump_logs
# From lib.sh: th_alive PID, th_wait_dead PID [T] (a zombie counts as dead).
# Status caveat: "connected" and "digest_equal" in status --json describe
# the daemon's last call to the peer (made for a request, verify, or the
# periodic check every 15 s); tw_wait_recovered therefore runs verify first.
#
# Conventions as in lib.sh: functions return 0 on success, print
# diagnostics on stderr prefixed "tw:", never exit.

TW_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TW_TOP=$(cd "$TW_HERE/../.." && pwd)
TW_BIN=${top_builddir:-$TW_TOP}
TW_SUITE=${TW_SUITE:-twohost}
export TH_ROOT=${TH_ROOT:-/var/tmp/milter-alias-twohost-$TW_SUITE}
export TH_NS_PREFIX=${TH_NS_PREFIX:-t${TW_SUITE:0:1}-}
# shellcheck source=../postfix/lib.sh
. "$TW_HERE/../postfix/lib.sh"

MILTER=$TW_BIN/milter/milter-alias
PEER=$TW_BIN/peer/milter-alias-peer
CTL=$TW_BIN/peer/milter-aliasctl
TW_PY=/usr/bin/python3          # Debian's python (stdlib only is used)
TW_PORT=7465
TW_COMMIT_TIMEOUT=${TW_COMMIT_TIMEOUT:-4}
case ${TW_SERVERS:-2} in
    2) TW_HOSTS="a b" ;;
    3) TW_HOSTS="a b c" ;;
    *) printf 'tw: TW_SERVERS must be 2 or 3, not %s\n' "$TW_SERVERS" >&2; TW_HOSTS="a b" ;;
esac
TW_T0=${EPOCHREALTIME/./}

tw_msg() { printf 'tw: %s\n' "$*" >&2; }

# tw_ip NAME : the fixed address of host a or b.
tw_ip() {
    case $1 in
        a) echo 198.51.100.1 ;;
        b) echo 198.51.100.2 ;;
        c) echo 198.51.100.3 ;;
        *) tw_msg "unknown host $1"; return 1 ;;
    esac
}
# tw_other NAME : the other host of the pair (with three: the next one).
tw_other() { if [ "$1" = a ]; then echo b; else echo a; fi; }
# tw_others NAME : every host of TW_HOSTS but NAME.
tw_others() { local n; for n in $TW_HOSTS; do [ "$n" = "$1" ] || echo "$n"; done; }
# tw_node NAME : the host's node_name.
tw_node() { echo "$1.example.test"; }
# tw_conf NAME : path of the host's milter-alias.conf.
tw_conf() { th_conf_path "$1"; }
# tw_ctl NAME ARGS... : milter-aliasctl -c CONF ARGS... for host NAME.
tw_ctl() { local n=$1; shift; "$CTL" -c "$(tw_conf "$n")" "$@"; }
# tw_pin NAME : the host's own pin as read at setup.
tw_pin() { cat "$(th_dir "$1")/pin"; }
# tw_peer_log NAME : path of the host's milter-alias-peer log.
tw_peer_log() { echo "$(th_dir "$1")/peer.log"; }
# tw_elapsed : seconds since lib2.sh was sourced (one decimal).
tw_elapsed() {
    local us=$(( ${EPOCHREALTIME/./} - TW_T0 ))
    printf '%d.%d\n' $((us / 1000000)) $(( (us / 100000) % 10 ))
}
# tw_begin : tw_preflight and tw_setup, reported as one check ("pair up");
#   if either fails, the script ends here with its summary (exit 1).
#   Sets t_start (for tw_wall) before the pair is set up.
tw_begin() {
    tw_preflight || exit 1
    t_start=$EPOCHREALTIME
    if ! tw_setup; then
        th_fail "bring up the pair (hosts, keys, pins, daemons, milters)"
        tw_dump_logs 30; th_summary; exit 1
    fi
    th_pass "pair up: keygen, pins, confs, daemons, peers connected ($(tw_elapsed) s)"
}
# tw_wall NAME : "NAME: S s", the seconds since tw_begin (the script's last line)
tw_wall() { echo "$1: $(awk -v s="$t_start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }') s"; }
# tw_log_mark FILE : current size of FILE (for tw_log_since).
tw_log_mark() { stat -c %s "$1" 2>/dev/null || echo 0; }
# tw_log_since FILE MARK : FILE's content after byte offset MARK.
tw_log_since() { tail -c +"$(( $2 + 1 ))" "$1" 2>/dev/null; }

# tw_random_pin : a valid-looking pin that is nobody's key.
tw_random_pin() {
    printf 'sha256//%s\n' "$(head -c 32 /dev/urandom | base64 -w0)"
}

# tw_preflight : fail (th_fail + th_summary) unless root and built.
#   Returns 1 then; the caller exits non-zero.
tw_preflight() {
    if [ "$(id -u)" != 0 ]; then
        th_fail "two-host tests must run as root (network namespaces, Postfix)"
        th_summary; return 1
    fi
    local b
    for b in "$MILTER" "$PEER" "$CTL"; do
        if [ ! -x "$b" ]; then
            th_fail "missing $b: build first (make)"; th_summary; return 1
        fi
    done
    # Run private copies: a rebuild while the suite runs (make in another
    # shell) must not swap or remove a binary under a daemon being restarted.
    if [ "${TW_COPY_BINARIES:-1}" = 1 ]; then
        mkdir -p "$TH_ROOT/bin" && chmod 0755 "$TH_ROOT" "$TH_ROOT/bin" || return 1
        for b in MILTER PEER CTL; do
            cp -f "${!b}" "$TH_ROOT/bin/" || { th_fail "cannot copy ${!b}"; th_summary; return 1; }
            printf -v "$b" '%s/bin/%s' "$TH_ROOT" "$(basename "${!b}")"
        done
    fi
    for b in swaks postmap "$TW_PY"; do
        if ! command -v "$b" >/dev/null; then
            th_fail "missing $b"; th_summary; return 1
        fi
    done
    return 0
}

# ------------------------------------------------------------- config --

# tw_tls_lines NAME : the tls section of host NAME.
tw_tls_lines() {
    local h; h=$(th_dir "$1")
    printf 'tls {\n  key_file  = "%s/tls/key.pem"\n  cert_file = "%s/tls/cert.pem"\n}\n' "$h" "$h"
}

# tw_write_conf NAME [PIN_OF_OTHER [LINE...]] : write the host's full pair
#   configuration: th_write_conf + listen IP:7465 + tls + a peer section for
#   the other host pinning PIN_OF_OTHER (default: the other host's real pin;
#   with three servers, one peer section per other host, each with its
#   real pin, PIN_OF_OTHER replacing tw_other's)
#   + $TW_CONF_EXTRA (if set) + LINEs; commit_timeout is set to
#   TW_COMMIT_TIMEOUT.  Prints the path.
tw_write_conf() {
    local name=$1 other pin f o p peers=; shift
    other=$(tw_other "$name")
    pin=${1:-$(tw_pin "$other")}; [ $# -gt 0 ] && shift
    for o in $(tw_others "$name"); do
        p=$(tw_pin "$o"); [ "$o" != "$other" ] || p=$pin
        peers="$peers${peers:+
}peer \"$(tw_node "$o")\" {
  address = \"$(tw_ip "$o"):$TW_PORT\"
  pin     = \"$p\"
}"
    done
    f=$(th_write_conf "$name" \
        "listen = \"$(tw_ip "$name"):$TW_PORT\"" \
        "$(tw_tls_lines "$name")" \
        "$peers" ${TW_CONF_EXTRA:+"$TW_CONF_EXTRA"} "$@") || return 1
    sed -i "s/^commit_timeout .*/commit_timeout     = $TW_COMMIT_TIMEOUT/" "$f"
    [ -z "${TW_MAP_FORMAT:-}" ] || sed -i "s/^map_format .*/map_format         = \"$TW_MAP_FORMAT\"/" "$f"
    [ -z "${TW_DOMAINS:-}" ] || sed -i "s/^domains .*/domains            = {$TW_DOMAINS}/" "$f"
    echo "$f"
}

# tw_keys NAME : bootstrap conf (tls section only, no peer), keygen, pin.
#   The pin is stored in ROOT/NAME/pin.
tw_keys() {
    local name=$1 h out rc=0 pin
    h=$(th_dir "$name")
    mkdir -p "$h/tls" && chown "$TH_DAEMON_USER:$TH_DAEMON_USER" "$h/tls" &&
        chmod 0700 "$h/tls" || return 1
    th_write_conf "$name" "$(tw_tls_lines "$name")" >/dev/null || return 1
    out=$(tw_ctl "$name" keygen 2>&1) || rc=$?
    if [ $rc != 0 ] || [ ! -s "$h/tls/key.pem" ] || [ ! -s "$h/tls/cert.pem" ]; then
        tw_msg "keygen on $name failed (status $rc): $out"; return 1
    fi
    pin=$(tw_ctl "$name" pin) || { tw_msg "pin on $name failed"; return 1; }
    if ! printf '%s\n' "$pin" | grep -qxE 'sha256//[A-Za-z0-9+/]{43}='; then
        tw_msg "pin on $name printed '$pin', not one line sha256//BASE64"; return 1
    fi
    printf '%s\n' "$pin" > "$h/pin"
}

# ------------------------------------------------------------ daemons --

# tw_peer_pid NAME : pid of the host's current milter-alias-peer.
tw_peer_pid() { cat "$(th_dir "$1")/peer.pid" 2>/dev/null; }
# tw_peer_alive NAME : the host's milter-alias-peer is running.
tw_peer_alive() { th_alive "$(tw_peer_pid "$1")"; }

# tw_ctl_up NAME : the daemon answers on its control socket (status exit 0/1).
tw_ctl_up() {
    local rc=0
    tw_ctl "$1" status >/dev/null 2>&1 || rc=$?
    [ $rc = 0 ] || [ $rc = 1 ]
}

# tw_start_peer NAME [CRASH_POINT] : start milter-alias-peer -f (as root; it
#   drops to milter-alias) in the host's namespace, with
#   MILTER_ALIAS_CRASH_AT=CRASH_POINT if given, and wait (10 s) until it
#   answers on its control socket.
tw_start_peer() {
    local name=$1 crash=${2:-} h pid
    h=$(th_dir "$name")
    local envs=(env -u MILTER_ALIAS_CRASH_AT)
    [ -n "$crash" ] && envs=(env MILTER_ALIAS_CRASH_AT="$crash")
    echo "=== tw: $(date +%T.%N) start milter-alias-peer crash=${crash:-none}" >> "$h/peer.log"
    pid=$(th_daemon "$name" "$h/peer.log" "${envs[@]}" "$PEER" -f -c "$(tw_conf "$name")")
    echo "$pid" > "$h/peer.pid"
    if ! _th_poll 10 tw_ctl_up "$name"; then
        tw_msg "milter-alias-peer on $name does not answer; tail of its log:"
        tail -n 20 "$h/peer.log" >&2
        return 1
    fi
    th_alive "$pid" || { tw_msg "milter-alias-peer on $name died"; return 1; }
}

# _tw_kill9 PID LOG : kill -9 PID (noted in LOG) and wait until it is gone.
_tw_kill9() {
    echo "=== tw: $(date +%T.%N) kill -9 $1" >> "$2"
    [ -n "$1" ] && kill -KILL "$1" 2>/dev/null
    th_wait_dead "$1" 5
}

# tw_kill_peer NAME : kill -9 the host's milter-alias-peer and wait until gone.
tw_kill_peer() { _tw_kill9 "$(tw_peer_pid "$1")" "$(tw_peer_log "$1")"; }

# tw_milter_pid / tw_milter_alive NAME : the host's current milter-alias.
tw_milter_pid() { cat "$(th_dir "$1")/milter.pid" 2>/dev/null; }
tw_milter_alive() { th_alive "$(tw_milter_pid "$1")"; }

# tw_kill_milter NAME : kill -9 the host's milter-alias and wait until gone.
tw_kill_milter() { _tw_kill9 "$(tw_milter_pid "$1")" "$(th_dir "$1")/milter.log"; }

# tw_stop_peer NAME : SIGTERM the host's milter-alias-peer (SIGKILL after 8 s).
tw_stop_peer() {
    local pid; pid=$(tw_peer_pid "$1")
    [ -n "$pid" ] || return 0
    echo "=== tw: $(date +%T.%N) SIGTERM $pid" >> "$(tw_peer_log "$1")"
    kill -TERM "$pid" 2>/dev/null || return 0
    th_wait_dead "$pid" 8 && return 0
    tw_msg "milter-alias-peer on $1 ignored SIGTERM for 8 s; killing it"
    kill -KILL "$pid" 2>/dev/null; th_wait_dead "$pid" 5
}

# tw_restart_peer NAME [CRASH_POINT] : stop (SIGTERM; a dead daemon is fine)
#   and start again, with the crash point if given.
tw_restart_peer() {
    if tw_peer_alive "$1"; then tw_stop_peer "$1" || return 1; fi
    tw_start_peer "$@"
}

# tw_start_milter NAME [--again] : start milter-alias -f and attach it to
#   submission; --again after a kill: Postfix points at the socket already,
#   so no reload.  A dead milter's socket file is removed first, so that
#   waiting for the socket means waiting for the new one.
tw_start_milter() {
    local name=$1 h sock; h=$(th_dir "$name"); sock=$(th_milter_socket "$name")
    rm -f "${sock#unix:}"
    echo "=== tw: $(date +%T.%N) start milter-alias" >> "$h/milter.log"
    # $(...): the daemon is not a child of the test shell (no job
    # notices, no zombies; th_host_stop finds it through daemons.pids)
    local pid
    pid=$(th_daemon "$name" "$h/milter.log" "$MILTER" -f -c "$(tw_conf "$name")")
    echo "$pid" > "$h/milter.pid"
    if ! th_wait_socket "$sock" 10; then
        tw_msg "milter on $name did not create its socket"; tail -n 20 "$h/milter.log" >&2
        return 1
    fi
    [ "${2:-}" = --again ] || th_set_milter "$name" "$sock"
}

# tw_status_json NAME : milter-aliasctl status --json (always prints something).
tw_status_json() { tw_ctl "$1" status --json 2>/dev/null || :; }

# tw_connected NAME : status --json says every peer is connected.
tw_connected() {
    tw_status_json "$1" | "$TW_PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(1)
p = d.get("peers")
ok = isinstance(p, list) and len(p) > 0 and \
    all(isinstance(x, dict) and x.get("connected") is True for x in p)
sys.exit(0 if ok else 1)'
}

# tw_in_doubt NAME : number of in-doubt changes in status --json (-1 unknown).
tw_in_doubt() {
    tw_status_json "$1" | "$TW_PY" -c '
import json, sys
try:
    v = json.load(sys.stdin).get("in_doubt")
except Exception:
    print(-1); sys.exit(0)
if isinstance(v, list): print(len(v))
elif isinstance(v, (int, float)): print(int(v))
elif v is None: print(0)
else: print(-1)'
}

# tw_wait_connected [TIMEOUT=20] : every host reports its peers connected.
tw_wait_connected() {
    _th_poll "${1:-20}" _tw_both_connected && return 0
    local n txt=
    for n in $TW_HOSTS; do txt="$txt $n: $(tw_status_json "$n" | tr '\n' ' ')"; done
    tw_msg "peers not connected after ${1:-20}s:$txt"
    return 1
}
_tw_both_connected() { local n; for n in $TW_HOSTS; do tw_connected "$n" || return 1; done; }

# tw_verify NAME : milter-aliasctl verify on host NAME; prints its exit status.
tw_verify() { local rc=0; tw_ctl "$1" verify >/dev/null 2>&1 || rc=$?; echo $rc; }

# tw_converged : verify says identical on both hosts and nothing is in doubt.
tw_converged() {
    local n
    for n in $TW_HOSTS; do [ "$(tw_verify "$n")" = 0 ] || return 1; done
    for n in $TW_HOSTS; do [ "$(tw_in_doubt "$n")" = 0 ] || return 1; done
}

# tw_wait_converged [TIMEOUT=30] : poll tw_converged.  On timeout prints
#   verify's output and both status --json on stderr.
tw_wait_converged() {
    _th_poll "${1:-30}" tw_converged && return 0
    local n
    for n in $TW_HOSTS; do
        tw_msg "not converged after ${1:-30}s; $n: verify: $(tw_ctl "$n" verify 2>&1 | head -n 5 | tr '\n' ' ')"
        tw_msg "  $n: status: $(tw_status_json "$n" | tr '\n' ' ')"
    done
    return 1
}

# tw_wire_access NAME : what postfix-setup wires for port 25 (as
#   tests/postfix/test_standalone.sh does): the daemon's access map
#   (<map_file>.access) refuses disabled and deleted aliases with a reason,
#   and the request address to unauthenticated clients.
tw_wire_access() {
    local n=$1
    th_postconf "$n" "smtpd_restriction_classes = milter_alias_request" \
        "milter_alias_request = permit_sasl_authenticated, check_recipient_access static:{550 5.7.1 Authenticate (SMTP AUTH) before sending alias requests}" \
        "smtpd_recipient_restrictions = check_recipient_access lmdb:$(th_map_file "$n").access, permit_mynetworks, reject_unauth_destination"
}

# tw_setup : the whole pair: create and configure both hosts, keygen, pins,
#   full confs, start both sync daemons and milters, attach the milters to
#   submission, wire the access map (tw_wire_access), start Postfix+Dovecot,
#   wait until verify says identical and the peers are connected.
#   Installs the cleanup trap (TH_KEEP=1 keeps everything).
tw_setup() {
    local n
    th_init "$TH_ROOT" "$TH_NS_PREFIX" || return 1
    th_cleanup_trap $TW_HOSTS
    for n in $TW_HOSTS; do
        th_host_create "$n" "$(tw_ip "$n")" || { tw_msg "cannot create host $n"; return 1; }
        [ -z "${TW_HOST_HOOK:-}" ] || "$TW_HOST_HOOK" "$n" || { tw_msg "$TW_HOST_HOOK $n failed"; return 1; }
    done
    for n in $TW_HOSTS; do tw_keys "$n" || return 1; done
    for n in $TW_HOSTS; do tw_write_conf "$n" >/dev/null || return 1; done
    if ! "$PEER" -t -c "$(tw_conf a)" >/dev/null 2>&1; then
        tw_msg "milter-alias-peer -t rejects the pair configuration:"
        "$PEER" -t -c "$(tw_conf a)" >&2; cat "$(tw_conf a)" >&2
        return 1
    fi
    for n in $TW_HOSTS; do tw_start_peer "$n" || return 1; done
    for n in $TW_HOSTS; do tw_start_milter "$n" || return 1; done
    for n in $TW_HOSTS; do tw_wire_access "$n" || return 1; done
    # both hosts' Postfix and Dovecot start at once (separate directories)
    local pids=() rc=0 p
    for n in $TW_HOSTS; do th_host_start "$n" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    [ $rc = 0 ] || return 1
    # verify asks the peer, so it also (re)opens each side's link; waiting
    # for "connected" alone would wait for the daemons' next periodic
    # contact (anti-entropy, every 15 s)
    tw_wait_converged 20 && tw_wait_connected 10
}

# tw_wait_recovered [TIMEOUT=30] : after a restart or a cut: converged
#   (verify 0 on both, nothing in doubt), then both sides connected.
tw_wait_recovered() {
    tw_wait_converged "${1:-30}" && tw_wait_connected 10
}

# ------------------------------------------------------------- requests --

# tw_request HOST LOGIN SUBJECT [SWAKS ARGS...] : an alias request by
#   submission (port 587, AUTH PLAIN as LOGIN) to HOST from LOGIN@example.org.
#   The transcript is in $TH_SWAKS_OUT (default ROOT/swaks.last).
tw_request() {
    local host=$1 login=$2 subject=$3; shift 3
    th_swaks "$host" --port 587 --auth PLAIN --auth-user "$login" \
        --auth-password "$(th_password "$login")" --from "$login@$TH_DOMAIN" \
        --to "$TH_REQUEST_ADDRESS" --header "Subject: $subject" "$@"
}

# tw_eom_class [FILE] : class of the end-of-data reply: 2xx 4xx 5xx, or
#   "none" if the transaction never got there (then the RCPT/connect reply
#   counts: a 4xx there is 4xx).
tw_eom_class() {
    local c
    c=$(th_smtp_reply_code EOM "$@") || c=
    if [ -z "$c" ]; then
        c=$(th_smtp_reply_code DATA "$@" || th_smtp_reply_code RCPT "$@" ||
            th_smtp_reply_code CONNECT "$@") || c=
        case $c in 4*|5*) ;; *) echo none; return 0 ;; esac
    fi
    echo "${c:0:1}xx"
}

# tw_expect_class DESC CLASS [FILE] : th_pass if the last request's class is
#   CLASS (e.g. 2xx or "4xx"), else th_fail with the reply text.
tw_expect_class() {
    local got
    got=$(tw_eom_class "${3:-}")
    if [ "$got" = "$2" ]; then th_pass "$1"; return 0; fi
    th_fail "$1 (expected $2, got $got: $(th_smtp_reply EOM ${3:+"$3"} 2>/dev/null | head -n1))"
    return 1
}

# tw_mail_to HOST RCPT [SUBJECT] : plain mail from outside to RCPT on the
#   host's port 25; prints the RCPT reply code.
tw_mail_to() {
    local host=$1 rcpt=$2 subj=${3:-hello}
    TH_SWAKS_OUT=$(th_dir "$host")/mail_to.last th_swaks "$host" --port 25 \
        --from someone@elsewhere.test --to "$rcpt" --header "Subject: $subj" >/dev/null
    th_smtp_reply_code RCPT "$(th_dir "$host")/mail_to.last" || echo none
}

# tw_confirmations HOST USER ALIAS : number of confirmations for ALIAS
#   (Subject "Alias ALIAS is ready") in USER's Maildir on HOST that passed
#   through HOST itself (X-Milter-Alias-Server: HOST.example.test).
tw_confirmations() {
    local f n=0 pat
    pat=$(printf '%s' "$3" | sed 's/[.]/\\./g')
    for f in $(th_mail_files "$1" "$2" "^Subject: Alias $pat is ready"); do
        grep -qE "^X-Milter-Alias-Server: $1\.example\.test" "$f" && n=$((n + 1))
    done
    echo $n
}

# tw_check_confirmations DESC USER ALIAS [TIMEOUT=10] : each host's own
#   confirmation for ALIAS reached USER on that host, exactly once.
tw_check_confirmations() {
    local desc=$1 user=$2 alias=$3 t=${4:-10} h got=
    for h in $TW_HOSTS; do
        _th_poll "$t" _tw_has_confirmation "$h" "$user" "$alias"
    done
    for h in $TW_HOSTS; do got="$got $h=$(tw_confirmations "$h" "$user" "$alias")"; done
    th_check_eq "$desc: one confirmation per server for $alias" " a=1 b=1" "$got"
}
_tw_has_confirmation() { [ "$(tw_confirmations "$@")" -ge 1 ]; }

# ---------------------------------------------------------- invariants --

# tw_map_entries NAME : the host's map source without comments/blank lines,
#   sorted (what postmap compiles).
tw_map_entries() { grep -vE '^[[:space:]]*(#|$)' "$(th_map_file "$1")" 2>/dev/null | sort; }

# tw_map_count NAME ADDRESS : number of map entries with key ADDRESS.
tw_map_count() {
    grep -cE "^$(printf '%s' "$2" | sed 's/[.]/\\./g')[[:space:]]" "$(th_map_file "$1")" 2>/dev/null || :
}

# tw_q NAME ADDRESS : postmap -q on the host's compiled map ("" if none).
tw_q() { th_postmap_q "$1" "$2" 2>/dev/null || :; }

# tw_maps_identical [QUIET] : verify exits 0 on both hosts and the compiled
#   entries of both maps are the same.  Prints the reason on failure.
tw_maps_identical() {
    local n v
    for n in $TW_HOSTS; do
        v=$(tw_verify "$n")
        if [ "$v" != 0 ]; then
            echo "verify exit $v on $n: $(tw_ctl "$n" verify 2>&1 | head -n 3 | tr '\n' ' ')"
            return 1
        fi
    done
    for n in $(tw_others a); do
        if [ "$(tw_map_entries a)" != "$(tw_map_entries "$n")" ]; then
            echo "map entries differ (a, $n): $(diff <(tw_map_entries a) <(tw_map_entries "$n") | head -n 6 | tr '\n' ' ')"
            return 1
        fi
    done
    return 0
}

# tw_check_invariant DESC ADDRESS CLASS [TARGET] : contract section 6 for
#   one request whose SMTP reply was of CLASS, checked after recovery:
#     2xx => ADDRESS resolves (postmap -q) to TARGET on both hosts, once;
#     5xx => ADDRESS resolves on neither;
#     4xx => on both (to TARGET if given) or on neither;
#   and in every case the maps are identical (verify exit 0 on both, same
#   compiled entries).  Two th_pass/th_fail results.
tw_check_invariant() {
    local desc=$1 addr=$2 class=$3 target=${4:-} qa qb ca cb why
    qa=$(tw_q a "$addr"); qb=$(tw_q b "$addr")
    ca=$(tw_map_count a "$addr"); cb=$(tw_map_count b "$addr")
    local got="a='$qa' b='$qb' (entries a=$ca b=$cb)"
    case $class in
        2xx)
            if [ -n "$qa" ] && [ "$qa" = "$qb" ] && { [ -z "$target" ] || [ "$qa" = "$target" ]; } &&
               [ "$ca" = 1 ] && [ "$cb" = 1 ]; then
                th_pass "$desc: 250 => resolves on both ($qa)"
            else
                th_fail "$desc: 250 => resolves on both${target:+ to $target}: $got"
            fi ;;
        5xx)
            if [ -z "$qa" ] && [ -z "$qb" ]; then th_pass "$desc: 5xx => on neither"
            else th_fail "$desc: 5xx => on neither: $got"; fi ;;
        4xx|none)
            if [ -z "$qa" ] && [ -z "$qb" ]; then
                th_pass "$desc: $class => on neither after recovery"
            elif [ "$qa" = "$qb" ] && [ "$ca" = 1 ] && [ "$cb" = 1 ] &&
                 { [ -z "$target" ] || [ "$qa" = "$target" ]; }; then
                th_pass "$desc: $class => on both after recovery ($qa)"
            else
                th_fail "$desc: $class => on both or on neither: $got"
            fi ;;
        *) th_fail "$desc: unknown class '$class'" ;;
    esac
    if why=$(tw_maps_identical); then th_pass "$desc: maps identical (verify 0 on both)"
    else th_fail "$desc: maps identical: $why"; fi
}

# tw_dump_logs [LINES=15] : tail of both daemons' logs on stderr (diagnosis).
tw_dump_logs() {
    local n
    for n in $TW_HOSTS; do
        echo "---- $n peer.log (tail)" >&2; tail -n "${1:-15}" "$(tw_peer_log "$n")" >&2
    done
}
