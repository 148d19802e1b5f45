# shellcheck shell=bash
# tests/postfix/lib.sh -- real-Postfix test-host harness for milter-alias.
#
# Source this file from a bash test script (run as root):
#
#     . "$(dirname "$0")/lib.sh"
#     th_require_root || exit 1
#     th_init                       # root /var/tmp/milter-alias-tests, namespaces ma-*
#     th_cleanup_trap a             # destroy host a at exit (TH_KEEP=1 keeps it)
#     th_host_create a 198.51.100.1 && th_host_start a || exit 1
#     th_write_conf a >/dev/null
#     th_daemon a "$(th_dir a)/peer.log" milter-alias-peer -f -c "$(th_conf_path a)"
#     th_daemon a "$(th_dir a)/milter.log" milter-alias -f -c "$(th_conf_path a)"
#     th_wait_socket "$(th_milter_socket a)" && th_set_milter a "$(th_milter_socket a)"
#     th_swaks a --port 587 --auth PLAIN --auth-user alice \
#         --auth-password secret-alice --from alice@example.org \
#         --to makealias@example.org --header "Subject: new shop"
#     th_smtp_reply_code EOM        # -> 250
#     th_smtp_reply EOM             # -> full reply text
#
# A "test host" NAME ([a-z0-9], at most 12 characters) is
#   * network namespace ma-NAME (lo up, eth0 = IP/24 from 198.51.100.0/24),
#     whose eth0 is one end of a veth pair; the other end, p-NAME, is a port
#     of bridge br0 in the "switch" namespace ma-switch.  All hosts are on
#     one L2 segment, so a and b reach each other directly; nothing at all is
#     added to the root namespace.  th_link_down NAME cuts the host off.
#   * a Postfix instance (config_directory ROOT/NAME/postfix, queue_directory
#     ROOT/NAME/spool, data_directory ROOT/NAME/data, log ROOT/NAME/maillog,
#     no chroot, myhostname NAME.example.test, mydestination localhost)
#     started inside the namespace with inet_interfaces = all, i.e. exactly
#     IP and 127.0.0.1: port 25 (smtpd, no SASL, mynetworks 127.0.0.0/8) and
#     submission/587 (AUTH offered without TLS; only SASL-authenticated
#     clients may send: -o smtpd_relay_restrictions=$mua_relay_restrictions,
#     and -o smtpd_milters=$mua_milters, the milter on submission only).
#     Postfix commands (postmap, postalias, sendmail -C, postqueue -c) for the
#     instance work from the root namespace too.  Nothing leaves a host:
#     default_transport is error:.
#   * a Dovecot instance used only as SASL server (ROOT/NAME/dovecot/), its
#     auth socket at ROOT/NAME/spool/private/auth (smtpd_sasl_path=private/auth).
#   * virtual mailbox domain example.org with alice, bob, carol (passwords
#     secret-alice, secret-bob, secret-carol; login "alice" or
#     "alice@example.org": Postfix's sasl_username / {auth_authen} is the
#     login as typed, lowercased), Maildirs ROOT/NAME/mail/example.org/USER/
#     owned by ma-vmail.  Local user malocal (mail to malocal@localhost goes
#     to ROOT/NAME/mail/spool/malocal).  alias_maps = hash:.../postfix/aliases
#     (postmaster, abuse -> root).
#   * virtual_alias_maps = lmdb:ROOT/NAME/milter-alias/aliases (the project's
#     map: empty source + built .lmdb, both owned by milter-alias), then
#     hash:ROOT/NAME/postfix/virtual: makealias@example.org ->
#     makealias@discard.example.test (transport_maps: discard:) and the
#     unrelated existing alias sales@example.org -> alice@example.org.
#
# Layout of ROOT/NAME/:
#   ip                  the host's IPv4 address
#   postfix/            main.cf master.cf vmailbox virtual transport aliases
#   spool/ data/        Postfix queue and data directories
#   maillog             Postfix log (maillog_file)
#   mail/example.org/U/ Maildirs;  mail/spool/  local(8) mailboxes
#   dovecot/            dovecot.conf passwd dovecot.log run/ state/
#   milter-alias/       state_dir and the alias map (owner milter-alias, 0755)
#   run/                milter.sock and control.sock (milter-alias:postfix 2770)
#   milter-alias.conf   written by th_write_conf
#   daemons.pids        "PID STARTTIME" of each process th_daemon started
#   swaks.log           every th_swaks transcript of this host, appended
#
# Conventions: functions return 0 on success, non-zero on failure, and print
# diagnostics on stderr prefixed with "th:".  Nothing here calls exit.  The
# functions do not need `set -e` and work under `set -u`.
#
# Environment knobs:
#   TH_ROOT       test root (th_init ROOT sets it; default /var/tmp/milter-alias-tests)
#   TH_NS_PREFIX  namespace prefix (default "ma-": hosts ma-NAME, switch
#                 ma-switch).  Namespace names are global to the machine: two
#                 test runs at the same time need different TH_ROOT *and*
#                 TH_NS_PREFIX (e.g. TH_ROOT=/var/tmp/x TH_NS_PREFIX=mx-),
#                 set before sourcing this file.
#   TH_VERBOSE=1  print every swaks transcript on stderr
#   TH_KEEP=1     th_cleanup_trap does not destroy hosts at exit (for debugging)
#   TH_SWAKS_OUT  file th_swaks writes the transcript to (default $TH_ROOT/swaks.last);
#                 set it per call when running swaks concurrently

TH_ROOT=${TH_ROOT:-/var/tmp/milter-alias-tests}
TH_NS_PREFIX=${TH_NS_PREFIX:-ma-}  # namespaces are ${TH_NS_PREFIX}NAME
TH_NET=198.51.100          # TEST-NET-2, prefix /24
TH_SWITCH_NS=${TH_NS_PREFIX}switch # namespace holding the bridge all hosts are plugged into
TH_BRIDGE=br0
TH_DOMAIN=example.org
TH_REQUEST_ADDRESS=makealias@example.org
TH_DISCARD_DOMAIN=discard.example.test
TH_USERS="alice bob carol" # virtual mailbox users; password is secret-USER
TH_DAEMON_USER=milter-alias  # user/group the project's daemons drop to
TH_VMAIL_USER=ma-vmail     # owner of the virtual Maildirs (virtual_uid_maps)
TH_LOCAL_USER=malocal      # an ordinary local Unix user (mail to malocal@localhost)
TH_PASSED=${TH_PASSED:-0}
TH_FAILED=${TH_FAILED:-0}
TH_FAILED_NAMES=${TH_FAILED_NAMES:-}

# ---------------------------------------------------------------- helpers --

# th_msg TEXT... : print "th: TEXT" on stderr.
th_msg() { printf 'th: %s\n' "$*" >&2; }

# th_require_root : return 1 (with a message) unless running as root.
th_require_root() {
    [ "$(id -u)" = 0 ] && return 0
    th_msg "must run as root"; return 1
}

# th_project_binaries : set MILTER, PEER and CTL to the three programs in
#   top_builddir (default: the source tree holding this file); 1 with a
#   message if one of them is not built.
th_project_binaries() {
    local bin b
    bin=${top_builddir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
    MILTER=$bin/milter/milter-alias
    PEER=$bin/peer/milter-alias-peer
    CTL=$bin/peer/milter-aliasctl
    for b in "$MILTER" "$PEER" "$CTL"; do
        [ -x "$b" ] || { th_msg "missing $b: build first"; return 1; }
    done
}

# th_dir NAME : print ROOT/NAME (the host's directory).
th_dir() { printf '%s/%s\n' "$TH_ROOT" "$1"; }
# th_ns NAME : print the host's network namespace name (ma-NAME).
th_ns() { printf '%s%s\n' "$TH_NS_PREFIX" "$1"; }
# th_confdir NAME : print the host's Postfix config_directory.
th_confdir() { printf '%s/%s/postfix\n' "$TH_ROOT" "$1"; }
# th_host_ip NAME : print the host's IPv4 address (from ROOT/NAME/ip).
th_host_ip() { cat "$TH_ROOT/$1/ip" 2>/dev/null || { th_msg "no host $1"; return 1; }; }
# th_maillog NAME : print the path of the host's Postfix maillog.
th_maillog() { printf '%s/%s/maillog\n' "$TH_ROOT" "$1"; }
# th_conf_path NAME : print the path of the host's milter-alias.conf.
th_conf_path() { printf '%s/%s/milter-alias.conf\n' "$TH_ROOT" "$1"; }
# th_map_file NAME : print the path of the project's alias map source file.
th_map_file() { printf '%s/%s/milter-alias/aliases\n' "$TH_ROOT" "$1"; }
# th_milter_socket NAME : print the milter socket spec (unix:ROOT/NAME/run/milter.sock),
#   the value for milter_socket in milter-alias.conf and for th_set_milter.
th_milter_socket() { printf 'unix:%s/%s/run/milter.sock\n' "$TH_ROOT" "$1"; }
# th_control_socket NAME : print the control socket path (ROOT/NAME/run/control.sock).
th_control_socket() { printf '%s/%s/run/control.sock\n' "$TH_ROOT" "$1"; }
# th_maildir NAME USER : print USER's Maildir on host NAME (USER = alice or alice@example.org).
th_maildir() { printf '%s/%s/mail/%s/%s\n' "$TH_ROOT" "$1" "$TH_DOMAIN" "${2%@*}"; }
# th_password USER : print the test password of USER (secret-USER).
th_password() { printf 'secret-%s\n' "${1%@*}"; }

_th_check_name() {
    case $1 in
        ''|*[!a-z0-9]*) th_msg "bad host name '$1' (use [a-z0-9], max 12 chars)"; return 1 ;;
    esac
    [ ${#1} -le 12 ] || { th_msg "host name '$1' longer than 12 chars"; return 1; }
    [ "$1" != switch ] || { th_msg "host name 'switch' is reserved"; return 1; }
}

_th_root_sane() {
    case $TH_ROOT in
        /?*/?*) return 0 ;;
    esac
    th_msg "refusing to use test root '$TH_ROOT' (need an absolute path at least two levels deep)"
    return 1
}

# _th_ns_of SECONDS : seconds (fractions allowed, e.g. 0.5) in nanoseconds.
_th_ns_of() {
    local i=${1%%.*} f=
    case $1 in *.*) f=${1#*.} ;; esac
    f=${f}000000000; f=${f:0:9}
    echo $(( ${i:-0} * 1000000000 + 10#$f ))
}

# Wait up to $1 seconds (fractions allowed) for command "$2..." to succeed.
_th_poll() {
    local timeout=$1; shift
    local end=$(( $(date +%s%N) + $(_th_ns_of "$timeout") ))
    while :; do
        "$@" && return 0
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# _th_backdate FILE... : set mtime 10 s into the past.  Every Postfix
# command re-reads main.cf/master.cf in 300 ms steps while their mtime is
# within the last ~2 s (dict_load_file's guard against a file being edited),
# so a freshly written main.cf makes each postmap/postfix call take ~2 s.
_th_backdate() { touch -d "@$(( $(date +%s) - 10 ))" "$@"; }

_th_ensure_user() { # user [home]
    getent passwd "$1" >/dev/null && return 0
    local grp=--user-group
    getent group "$1" >/dev/null && grp="--gid $1"
    # shellcheck disable=SC2086
    useradd --system $grp --no-create-home --home-dir "${2:-/nonexistent}" \
        --shell /usr/sbin/nologin "$1" || { th_msg "useradd $1 failed"; return 1; }
}

# ------------------------------------------------------------------ setup --

# th_init [ROOT [NS_PREFIX]] : set TH_ROOT (default $TH_ROOT, else
#   /var/tmp/milter-alias-tests) and TH_NS_PREFIX (default $TH_NS_PREFIX,
#   else "ma-"), create ROOT, create /etc/postfix/main.cf (minimal, only if
#   missing), and create the system users/groups milter-alias (the daemons
#   drop to it), ma-vmail (owns the Maildirs) and malocal (a local user)
#   if missing.  Idempotent.  Call it once before anything else.
th_init() {
    TH_ROOT=${1:-$TH_ROOT}
    TH_ROOT=${TH_ROOT%/}
    TH_NS_PREFIX=${2:-$TH_NS_PREFIX}
    TH_SWITCH_NS=${TH_NS_PREFIX}switch
    export TH_ROOT TH_NS_PREFIX
    th_require_root || return 1
    _th_root_sane || return 1
    mkdir -p "$TH_ROOT" && chmod 0755 "$TH_ROOT" || return 1
    if [ ! -e /etc/postfix/main.cf ]; then
        th_msg "creating minimal /etc/postfix/main.cf"
        cat > /etc/postfix/main.cf <<'EOF'
# Minimal main.cf created by milter-alias tests/postfix/lib.sh because none
# existed.  The default instance is not used by the tests; this file only
# lists the test instances in alternate_config_directories (needed by the
# set-gid postdrop/postqueue for "sendmail -C DIR" and "postqueue -c DIR").
compatibility_level = 3.6
inet_interfaces = loopback-only
mydestination =
alternate_config_directories =
EOF
    fi
    _th_ensure_user "$TH_DAEMON_USER" || return 1
    _th_ensure_user "$TH_VMAIL_USER" || return 1
    _th_ensure_user "$TH_LOCAL_USER" || return 1
    return 0
}

# Add DIR to alternate_config_directories of /etc/postfix/main.cf, keeping
# whatever is there.  Serialized with flock on /etc/postfix.
_th_add_alternate_config_dir() {
    local dir=$1
    # shellcheck disable=SC2016
    flock /etc/postfix bash -c '
        cur=$(postconf -h alternate_config_directories 2>/dev/null) || cur=
        for d in ${cur//,/ }; do [ "$d" = "$1" ] && exit 0; done
        if [ -n "$cur" ]; then new="$cur, $1"; else new=$1; fi
        postconf -e "alternate_config_directories = $new" &&
            touch -d "@$(( $(date +%s) - 10 ))" /etc/postfix/main.cf
    ' _ "$dir"
}

_th_switch_ensure() {
    if ! ip netns list | grep -qw "^$TH_SWITCH_NS"; then
        ip netns add "$TH_SWITCH_NS" || return 1
    fi
    ip -n "$TH_SWITCH_NS" link set lo up
    if ! ip -n "$TH_SWITCH_NS" link show "$TH_BRIDGE" >/dev/null 2>&1; then
        ip -n "$TH_SWITCH_NS" link add "$TH_BRIDGE" type bridge stp_state 0 forward_delay 0 || return 1
    fi
    ip -n "$TH_SWITCH_NS" link set "$TH_BRIDGE" up
}

# th_net_create NAME IP : (re)create only the network part of test host
#   NAME with address IP (198.51.100.1..253, or just the last octet):
#   destroys any previous host of that name first (processes, namespace,
#   files), then creates the namespace, the veth link to the switch, and
#   ROOT/NAME/ with its "ip" file, so that th_host_ip, th_exec, th_daemon,
#   th_swaks and th_host_destroy work for it.  For a host whose mail
#   system comes from elsewhere (tests/arm64: a Debian root of another
#   architecture); th_host_create uses it for the network of a full host.
th_net_create() {
    local name=$1 ip=${2:-}
    _th_check_name "$name" || return 1
    case $ip in
        [0-9]|[0-9][0-9]|[0-9][0-9][0-9]) ip=$TH_NET.$ip ;;
    esac
    case $ip in
        "$TH_NET".*) ;;
        *) th_msg "host IP '$ip' must be in $TH_NET.0/24"; return 1 ;;
    esac
    local oct=${ip##*.}
    if [ "$oct" -lt 1 ] || [ "$oct" -gt 253 ]; then th_msg "bad host IP $ip"; return 1; fi
    th_require_root && _th_root_sane || return 1
    [ -d "$TH_ROOT" ] || th_init "$TH_ROOT" || return 1

    th_host_destroy "$name" >/dev/null 2>&1
    local h ns
    h=$(th_dir "$name"); ns=$(th_ns "$name")
    _th_switch_ensure || { th_msg "cannot create switch namespace $TH_SWITCH_NS"; return 1; }
    ip netns add "$ns" || { th_msg "cannot create network namespace $ns"; return 1; }
    ip -n "$ns" link set lo up || return 1
    ip -n "$TH_SWITCH_NS" link add "p-$name" type veth peer name eth0 netns "$ns" \
        || { th_msg "cannot create veth p-$name/eth0"; return 1; }
    ip -n "$TH_SWITCH_NS" link set "p-$name" master "$TH_BRIDGE" up || return 1
    ip -n "$ns" addr add "$ip/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    mkdir -p "$h" && chmod 0755 "$h" || return 1
    echo "$ip" > "$h/ip"
    : > "$h/.th-host"
}

# th_host_create NAME IP : (re)create test host NAME from scratch with address
#   IP (198.51.100.1..253, or just the last octet).  Destroys any previous
#   host of that name first (processes, namespace, files).  Creates the
#   namespace, the veth link to the switch (th_net_create), all
#   Postfix/Dovecot configuration, maps (built) and directories.  Nothing is
#   started (th_host_start); the queue directory is filled in by the first
#   "postfix start".
th_host_create() {
    local name=$1
    th_net_create "$@" || return 1
    local h d ip ns
    h=$(th_dir "$name"); d=$h/postfix; ns=$(th_ns "$name"); ip=$(th_host_ip "$name") || return 1

    # ---- directories
    mkdir -p "$d" "$h/spool" "$h/data" "$h/dovecot" "$h/milter-alias" "$h/run" \
        "$h/mail/$TH_DOMAIN" "$h/mail/spool" || return 1
    chmod 0755 "$h" "$d" "$h/spool" "$h/dovecot" "$h/mail" || return 1
    chown "$TH_DAEMON_USER:$TH_DAEMON_USER" "$h/milter-alias" && chmod 0755 "$h/milter-alias"
    chown "$TH_DAEMON_USER:postfix" "$h/run" && chmod 2770 "$h/run"
    chown "$TH_VMAIL_USER:$TH_VMAIL_USER" "$h/mail/$TH_DOMAIN" && chmod 0700 "$h/mail/$TH_DOMAIN"
    chmod 1777 "$h/mail/spool"
    chown postfix:postfix "$h/data" && chmod 0700 "$h/data"
    : > "$h/maillog"

    # ---- Postfix
    local vuid vgid
    vuid=$(id -u "$TH_VMAIL_USER") && vgid=$(id -g "$TH_VMAIL_USER") || return 1
    cat > "$d/main.cf" <<EOF
# Test host $name, generated by milter-alias tests/postfix/lib.sh
compatibility_level = 3.6
multi_instance_name = postfix-$name
queue_directory = $h/spool
data_directory = $h/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $name.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination = localhost
# "all" = exactly $ip and 127.0.0.1 inside namespace $ns (lo + eth0).
# Listing the IPs instead would make every Postfix command (postmap,
# sendmail, postqueue...) of this instance die outside the namespace with
# "inet_interfaces: no local interface found for $ip".
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP
biff = no
append_dot_mydomain = no
readme_directory = no
maillog_file = $h/maillog
maillog_file_prefixes = $TH_ROOT
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# nothing ever leaves the test host
default_transport = error:test host $name has no outside delivery
relay_transport = \$default_transport
# fast tests: no error sleeps, short retry intervals
smtpd_error_sleep_time = 0
in_flow_delay = 0
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s

alias_maps = hash:$d/aliases
alias_database = hash:$d/aliases
mail_spool_directory = $h/mail/spool

virtual_mailbox_domains = $TH_DOMAIN
virtual_mailbox_maps = hash:$d/vmailbox
virtual_mailbox_base = $h/mail
virtual_minimum_uid = $vuid
virtual_uid_maps = static:$vuid
virtual_gid_maps = static:$vgid
virtual_alias_maps = lmdb:$h/milter-alias/aliases, hash:$d/virtual
transport_maps = hash:$d/transport

smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_tls_security_level = none
smtpd_tls_auth_only = no
smtp_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination

# submission (master.cf): -o smtpd_relay_restrictions=\$mua_relay_restrictions
# -o smtpd_milters=\$mua_milters.  th_set_milter sets mua_milters.
mua_relay_restrictions = permit_sasl_authenticated, reject
mua_milters =
milter_default_action = tempfail
milter_protocol = 6
EOF
    cat > "$d/master.cf" <<EOF
# Test host $name, generated by milter-alias tests/postfix/lib.sh (no chroot)
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o syslog_name=postfix-$name/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_security_level=none
  -o smtpd_relay_restrictions=\$mua_relay_restrictions
  -o smtpd_milters=\$mua_milters
  -o milter_macro_daemon_name=ORIGINATING
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    _th_backdate "$d/main.cf" "$d/master.cf"
    local u
    : > "$d/vmailbox"
    for u in $TH_USERS; do
        printf '%s@%s\t%s/%s/\n' "$u" "$TH_DOMAIN" "$TH_DOMAIN" "$u" >> "$d/vmailbox"
    done
    cat > "$d/virtual" <<EOF
$TH_REQUEST_ADDRESS	${TH_REQUEST_ADDRESS%@*}@$TH_DISCARD_DOMAIN
sales@$TH_DOMAIN	alice@$TH_DOMAIN
EOF
    printf '%s\tdiscard:\n' "$TH_DISCARD_DOMAIN" > "$d/transport"
    printf 'postmaster: root\nabuse: root\n' > "$d/aliases"
    # shellcheck disable=SC2015
    postmap -c "$d" "hash:$d/vmailbox" && postmap -c "$d" "hash:$d/virtual" &&
        postmap -c "$d" "hash:$d/transport" && postalias -c "$d" "hash:$d/aliases" ||
        { th_msg "postmap failed for host $name"; return 1; }
    # The project's map: empty, owned by the daemon user; postmap run by root
    # drops to the owner of the source file, so the .lmdb is owned by it too.
    local map=$h/milter-alias/aliases
    : > "$map"
    chown "$TH_DAEMON_USER:$TH_DAEMON_USER" "$map" && chmod 0644 "$map"
    postmap -c "$d" "lmdb:$map" || { th_msg "postmap lmdb:$map failed"; return 1; }

    # ---- Dovecot (SASL only)
    local dv=$h/dovecot
    mkdir -p "$dv/run" "$dv/state"
    : > "$dv/passwd"
    for u in $TH_USERS; do
        printf '%s:{PLAIN}%s::::::\n' "$u" "$(th_password "$u")" >> "$dv/passwd"
    done
    chown root:dovecot "$dv/passwd" && chmod 0640 "$dv/passwd"
    : > "$dv/dovecot.log"
    cat > "$dv/dovecot.conf" <<EOF
# Test host $name: Dovecot as SASL server only (generated by tests/postfix/lib.sh)
instance_name = ${TH_NS_PREFIX}$name
base_dir = $dv/run
state_dir = $dv/state
protocols =
ssl = no
log_path = $dv/dovecot.log
info_log_path = $dv/dovecot.log
auth_verbose = yes
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
# "alice" and "alice@example.org" both authenticate as the file's "alice";
# the login name is reported to Postfix as typed (lowercased).
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln $dv/passwd
}
userdb {
  driver = static
  args = uid=$vuid gid=$vgid home=/nonexistent
}
# No auth penalty: after a failed login Dovecot would delay every further
# login from that IP by 2..15 s (anvil-auth-penalty); mode 0 disables it.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener $h/spool/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF

    _th_add_alternate_config_dir "$d" || { th_msg "cannot add $d to /etc/postfix/main.cf"; return 1; }
    return 0
}

# th_postconf NAME 'param = value'... : postconf -e in the host's main.cf
#   (does not reload; see th_reload).
#   main.cf's mtime is set 10 s back afterwards (see _th_backdate).
th_postconf() {
    local name=$1 d rc=0; shift
    d=$(th_confdir "$name")
    postconf -c "$d" -e "$@" || rc=$?
    _th_backdate "$d/main.cf"
    return $rc
}

# th_postfix NAME ARGS... : run "postfix -c CONFDIR ARGS..." inside the namespace.
th_postfix() {
    local name=$1; shift
    ip netns exec "$(th_ns "$name")" postfix -c "$(th_confdir "$name")" "$@"
}

# th_running NAME : true if the host's Postfix master is running.
th_running() {
    postfix -c "$(th_confdir "$1")" status >/dev/null 2>&1
}

# th_reload NAME : "postfix reload" if running, then wait until no smtpd of
#   the previous configuration generation is left (so the next connection
#   surely sees the new main.cf).  Returns 0 if not running.
th_reload() {
    local name=$1
    th_running "$name" || return 0
    local before
    before=$(_th_smtpd_pids "$name")
    th_postfix "$name" reload >/dev/null 2>&1 || { th_msg "postfix reload failed on $name"; return 1; }
    # Idle smtpd processes of the old generation exit after a reload.
    local p deadline=$(( $(date +%s) + 5 ))
    for p in $before; do
        while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    done
    return 0
}

_th_smtpd_pids() {
    local ns pid
    ns=$(th_ns "$1")
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = smtpd ] && echo "$pid"
    done
    return 0
}

# th_set_milter NAME SOCKETSPEC : set mua_milters (the milters of the
#   submission service only) in the host's main.cf to SOCKETSPEC, e.g.
#   "$(th_milter_socket a)" or "{ unix:/x.sock, command_timeout=10s }";
#   "" removes the milter.  Reloads Postfix if it is running (th_reload).
th_set_milter() {
    local name=$1 spec=${2:-}
    th_postconf "$name" "mua_milters = $spec" || return 1
    th_reload "$name"
}

# ---------------------------------------------------------- start / stop --

# th_host_start NAME : start the host's Postfix and Dovecot inside its
#   namespace and wait (max 20 s) until the SASL socket exists and ports 25
#   and 587 listen on the host IP.  Already running services are left alone.
#   On failure prints the maillog / dovecot.log tail and returns 1.
th_host_start() {
    local name=$1 h ns d ip dv
    h=$(th_dir "$name"); ns=$(th_ns "$name"); d=$h/postfix; dv=$h/dovecot
    [ -f "$h/.th-host" ] || { th_msg "host $name does not exist (th_host_create)"; return 1; }
    ip=$(th_host_ip "$name") || return 1

    # Postfix first: its start creates the queue directories, and Dovecot
    # puts the auth socket into spool/private/.
    if ! th_running "$name"; then
        if ! th_postfix "$name" start </dev/null >"$h/postfix-start.out" 2>&1; then
            th_msg "postfix failed to start on $name:"; cat "$h/postfix-start.out" >&2
            tail -n 30 "$h/maillog" >&2; return 1
        fi
    fi
    if ! _th_pidfile_alive "$dv/run/master.pid" dovecot; then
        if ! ip netns exec "$ns" dovecot -c "$dv/dovecot.conf" </dev/null >"$dv/start.out" 2>&1; then
            th_msg "dovecot failed to start on $name:"; cat "$dv/start.out" >&2
            tail -n 20 "$dv/dovecot.log" >&2; return 1
        fi
    fi
    if ! _th_poll 10 test -S "$h/spool/private/auth"; then
        th_msg "dovecot auth socket $h/spool/private/auth did not appear"
        tail -n 20 "$dv/dovecot.log" >&2; return 1
    fi
    if ! _th_poll 20 _th_listening "$ns" "$ip" 25 587; then
        th_msg "postfix on $name does not listen on $ip:25 and :587"
        ip netns exec "$ns" ss -ltn >&2
        tail -n 30 "$h/maillog" >&2; return 1
    fi
    return 0
}

_th_listening() { # ns ip port...
    local ns=$1 ip=$2 port out; shift 2
    out=$(ip netns exec "$ns" ss -Hltn 2>/dev/null) || return 1
    for port in "$@"; do
        printf '%s\n' "$out" | grep -qE " ($ip|0\.0\.0\.0|\*):$port " || return 1
    done
}

# _th_pidfile_alive FILE COMM : the pid in FILE is alive and its comm is COMM.
_th_pidfile_alive() {
    local pid
    pid=$(head -n1 "$1" 2>/dev/null | tr -d ' ') || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# th_alive PID : PID is a running process.  A zombie is not: a daemon
#   started in the background of a subshell (th_daemon) is reparented to
#   init when it ends, and "kill -0" keeps succeeding until init gets round
#   to reaping it -- which some inits (a container's, a VM agent's) do only
#   every few seconds.
th_alive() {
    local st
    [ -n "$1" ] || return 1
    { read -r st < "/proc/$1/stat"; } 2>/dev/null || return 1
    st=${st##*) }; [ "${st%% *}" != Z ]
}
_th_not_alive() { ! th_alive "$1"; }

# th_wait_dead PID [TIMEOUT=10] : wait until PID is no longer running.
th_wait_dead() { _th_poll "${2:-10}" _th_not_alive "$1"; }

# _th_alive_of PID... : those of the pids still running.
_th_alive_of() {
    local p
    for p in "$@"; do th_alive "$p" && echo "$p"; done
    return 0
}

# Send TERM to the given pids, wait up to $1 seconds, then KILL survivors
# and wait (5 s at most) until they are gone, so that the caller's next
# look at the process table no longer sees them.
_th_kill_pids() {
    local wait=$1 alive; shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || :
    local end=$(( $(date +%s%N) + $(_th_ns_of "$wait") ))
    while :; do
        alive=$(_th_alive_of "$@")
        [ -n "$alive" ] || return 0
        [ "$(date +%s%N)" -lt "$end" ] || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $alive 2>/dev/null || :
    end=$(( $(date +%s%N) + 5000000000 ))
    # shellcheck disable=SC2086
    while [ -n "$(_th_alive_of $alive)" ] && [ "$(date +%s%N)" -lt "$end" ]; do
        sleep 0.1
    done
    return 0
}

# _th_starttime PID : the process's start time (clock ticks since boot,
#   field 22 of /proc/PID/stat): with the pid, it names one process
_th_starttime() {
    local s
    # (the group: a vanished pid's "No such file" goes to /dev/null too)
    { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo "${20}"
}

# _th_same_procs : of the "PID STARTTIME" lines on stdin, the pids whose
#   process is still the one recorded (a line without STARTTIME counts)
_th_same_procs() {
    local p t
    while read -r p t; do
        [ -n "$p" ] || continue
        [ -z "$t" ] || [ "$(_th_starttime "$p")" = "$t" ] && echo "$p"
    done
    return 0
}

# Set _TH_ANCESTORS to this (sub)shell and all its ancestors.
_th_ancestors() {
    local p=$BASHPID rest
    _TH_ANCESTORS=
    while [ -n "$p" ] && [ "$p" -gt 1 ]; do
        _TH_ANCESTORS="$_TH_ANCESTORS $p"
        read -r rest < "/proc/$p/stat" 2>/dev/null || break
        rest=${rest##*) }; rest=${rest#* }; p=${rest%% *}
    done
    _TH_ANCESTORS="$_TH_ANCESTORS $$ "
}

# Every process that belongs to host NAME, sorted, one per line: all in its
# namespace, plus -- leftovers of an earlier run whose namespace may be
# gone -- every process with its cwd or a command-line argument under
# ROOT/NAME/.  Never this shell or its ancestors.  Call it as $(...), not in
# a pipeline (a sibling pipeline process could match).
_th_host_pids() {
    local name=$1 h ns p cwd cand
    h=$(th_dir "$name"); ns=$(th_ns "$name")
    _th_ancestors
    cand=$( {
        ip netns pids "$ns" 2>/dev/null
        find /proc/[0-9]*/cwd -maxdepth 0 -printf '%h %l\n' 2>/dev/null |
            while read -r p cwd; do
                case $cwd/ in "$h"/*) echo "${p#/proc/}" ;; esac
            done
        grep -lsF -- "$h/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
    } | sort -un)
    for p in $cand; do
        [ -d "/proc/$p" ] || continue      # gone (e.g. the grep above)
        case $_TH_ANCESTORS in *" $p "*) continue ;; esac
        echo "$p"
    done
}

# th_host_stop NAME [GRACE=8] : stop everything running on the host: the
#   daemons started with th_daemon (SIGTERM, SIGKILL after GRACE seconds;
#   libmilter needs ~5 s to stop), Postfix ("postfix stop"), Dovecot
#   (SIGTERM, SIGKILL after 0.5 s: it dawdles 2 s and has no state we keep),
#   then any other process left in the namespace or working under ROOT/NAME
#   (SIGTERM, SIGKILL after 1 s).  The namespace, link and files stay, so
#   th_host_start can start the host again.
th_host_stop() {
    local name=$1 grace=${2:-8} h d dv pids
    h=$(th_dir "$name"); d=$h/postfix; dv=$h/dovecot
    if [ -s "$h/daemons.pids" ]; then
        # Only the very processes started: a daemon killed hours ago may
        # have left its pid to an unrelated process (a long fault campaign
        # once SIGTERMed a test run beside it this way).
        pids=$(_th_same_procs < "$h/daemons.pids" | sort -u)
        # shellcheck disable=SC2086
        _th_kill_pids "$grace" $pids
        : > "$h/daemons.pids"
    fi
    if [ -f "$d/main.cf" ] && th_running "$name"; then
        postfix -c "$d" stop >/dev/null 2>&1 || :
    fi
    if _th_pidfile_alive "$dv/run/master.pid" dovecot; then
        _th_kill_pids 0.5 "$(head -n1 "$dv/run/master.pid")"
    fi
    pids=$(_th_host_pids "$name")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || _th_kill_pids 1 $pids
    return 0
}

# th_host_destroy NAME : th_host_stop, delete namespace ma-NAME and its veth,
#   remove ROOT/NAME.  Safe to call for a host that does not (fully) exist.
#   The entry in alternate_config_directories is kept (harmless).
th_host_destroy() {
    local name=$1 h ns
    _th_check_name "$name" || return 1
    _th_root_sane || return 1
    h=$(th_dir "$name"); ns=$(th_ns "$name")
    th_host_stop "$name" 1
    ip -n "$TH_SWITCH_NS" link del "p-$name" >/dev/null 2>&1 || :
    if ip netns list 2>/dev/null | grep -qw "^$ns"; then
        ip netns del "$ns" || th_msg "cannot delete namespace $ns"
    fi
    rm -rf -- "$h"
    return 0
}

# th_destroy_all : destroy every host under TH_ROOT and every leftover ma-*
#   namespace, then the switch namespace.  Idempotent.
th_destroy_all() {
    local n
    for n in $( { ls "$TH_ROOT" 2>/dev/null
                  ip netns list 2>/dev/null | awk -v p="$TH_NS_PREFIX" \
                      'index($1, p) == 1 { print substr($1, length(p) + 1) }'
                } | sort -u); do
        [ "$n" = switch ] && continue
        _th_check_name "$n" 2>/dev/null || continue
        if [ -f "$TH_ROOT/$n/.th-host" ] || ip netns list | grep -qw "^$(th_ns "$n")"; then
            th_host_destroy "$n"
        fi
    done
    if ip netns list 2>/dev/null | grep -qw "^$TH_SWITCH_NS"; then
        ip netns del "$TH_SWITCH_NS" || :
    fi
    rm -f "$TH_ROOT/swaks.last"
    return 0
}

# Delete the switch namespace if no host namespace with our prefix is left.
_th_switch_gc() {
    local left
    left=$(ip netns list 2>/dev/null | awk -v p="$TH_NS_PREFIX" -v sw="$TH_SWITCH_NS" \
        'index($1, p) == 1 && $1 != sw' | head -n1)
    [ -n "$left" ] || ip netns del "$TH_SWITCH_NS" 2>/dev/null
    return 0
}

# th_cleanup_trap HOST... : install an EXIT trap that destroys the listed
#   hosts and then the switch namespace if no other host uses it (unless
#   TH_KEEP=1: then everything is left running for inspection).  Also
#   turns SIGINT/SIGTERM into exit, so the trap runs on Ctrl-C.
th_cleanup_trap() {
    TH_TRAP_HOSTS="$*"
    # shellcheck disable=SC2064
    trap '_th_on_exit' EXIT
    trap 'exit 130' INT TERM
}
_th_on_exit() {
    local rc=$? n
    if [ "${TH_KEEP:-0}" = 1 ]; then
        th_msg "TH_KEEP=1: leaving hosts ${TH_TRAP_HOSTS:-} in $TH_ROOT"
    else
        for n in ${TH_TRAP_HOSTS:-}; do th_host_destroy "$n"; done
        _th_switch_gc
    fi
    return $rc
}

# ------------------------------------------------------------------ links --

# th_link_down NAME : cut host NAME off the shared segment (its switch port
#   p-NAME goes down; eth0 inside ma-NAME loses carrier).  Packets to and
#   from the host are dropped; connections time out rather than fail fast.
th_link_down() { ip -n "$TH_SWITCH_NS" link set "p-$1" down; }
# th_link_up NAME : reconnect host NAME (undo th_link_down).
th_link_up() { ip -n "$TH_SWITCH_NS" link set "p-$1" up; }

# ------------------------------------------------------------- processes --

# th_exec NAME CMD... : run CMD inside the host's namespace (foreground);
#   returns CMD's exit status.
th_exec() {
    local name=$1; shift
    ip netns exec "$(th_ns "$name")" "$@"
}

# th_daemon NAME LOGFILE CMD... : start CMD in the background inside the
#   host's namespace, stdin from /dev/null, stdout+stderr appended to LOGFILE
#   (so it never holds the caller's pipes).  Prints the pid (that of CMD
#   itself: ip netns exec execs it) and records it in ROOT/NAME/daemons.pids
#   so that th_host_stop stops it.  Usage: pid=$(th_daemon a log milter-alias -f -c conf)
th_daemon() {
    local name=$1 log=$2 pid; shift 2
    ip netns exec "$(th_ns "$name")" "$@" </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid $(_th_starttime "$pid")" >> "$(th_dir "$name")/daemons.pids"
    echo "$pid"
}

# th_daemon_stop NAME PID [GRACE=8] : stop one process that th_daemon
#   started on host NAME (SIGTERM, SIGKILL after GRACE seconds) and drop it
#   from ROOT/NAME/daemons.pids, so th_host_stop does not look for it again.
#   Take PID from pid=$(th_daemon ...): run that way the daemon is not a
#   child of the test shell and leaves no zombie behind.  Returns 1 if PID
#   is not one of the host's recorded daemons.
th_daemon_stop() {
    local name=$1 pid=$2 grace=${3:-8} f t
    f=$(th_dir "$name")/daemons.pids
    t=$(awk -v p="$pid" '$1 == p { print $2; found = 1 } END { exit !found }' "$f" 2>/dev/null) ||
        { th_msg "pid $pid is not a daemon of host $name"; return 1; }
    # Only the very process started (its pid may have been recycled).
    if [ -z "$t" ] || [ "$(_th_starttime "$pid" 2>/dev/null)" = "$t" ]; then
        _th_kill_pids "$grace" "$pid"
    fi
    awk -v p="$pid" '$1 != p' "$f" > "$f.new" && mv "$f.new" "$f"
}

# th_wait_socket PATH [TIMEOUT=10] : wait until the unix socket PATH exists
#   (accepts "unix:PATH" too).
th_wait_socket() {
    local p=${1#unix:}; p=${p#local:}
    _th_poll "${2:-10}" test -S "$p"
}

# ---------------------------------------------------------------- swaks --

# th_swaks NAME ARGS... : run swaks inside host NAME's namespace against
#   that host: "--server IP" (the host IP, so the client is NOT in mynetworks)
#   and "--ehlo client.example.test" are put first, so ARGS may override them
#   (--port 587, --server 127.0.0.1:25 ...).  stdin is /dev/null, so a
#   missing --auth-password fails instead of prompting.  The transcript goes
#   to $TH_SWAKS_OUT (default $TH_ROOT/swaks.last), is appended to
#   ROOT/NAME/swaks.log and is printed on stderr if TH_VERBOSE=1.  Returns
#   swaks's exit status (0 ok, 2 connect error, 23 MAIL, 24 RCPT, 25 DATA,
#   26 end of DATA, 28 AUTH refused ...).
th_swaks() {
    local name=$1; shift
    th_swaks_from "$name" "$name" "$@"
}

# th_swaks_from CLIENT SERVER ARGS... : as th_swaks, but swaks runs in host
#   CLIENT's namespace and talks to host SERVER's IP (across the link).
th_swaks_from() {
    local client=$1 server=$2 ip out rc; shift 2
    ip=$(th_host_ip "$server") || return 1
    out=${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}
    rc=0
    ip netns exec "$(th_ns "$client")" swaks --server "$ip" --ehlo client.example.test \
        --timeout 60 "$@" </dev/null >"$out" 2>&1 || rc=$?
    { echo "=== th_swaks_from $client -> $server (rc=$rc): $*"; cat "$out"; } \
        >> "$(th_dir "$client")/swaks.log" 2>/dev/null
    if [ "${TH_VERBOSE:-0}" = 1 ]; then cat "$out" >&2; fi
    return $rc
}

# _th_smtp_parse FILE : one line per SMTP server reply line:
#   STAGE<TAB>N<TAB>R<TAB>FINAL<TAB>TEXT
#   N = 1st, 2nd.. command of that stage; R = number of the reply in the
#   session (all lines of one multi-line reply share it); FINAL=1 on the last
#   line of a reply; TEXT = "550 5.1.1 ...".
#   Stages: CONNECT EHLO STARTTLS AUTH MAIL RCPT DATA EOM RSET QUIT OTHER.
#   AUTH continuation lines (334 challenges and base64 answers) belong to
#   the AUTH command that started them.
_th_smtp_parse() {
    awk '
    BEGIN { stage = "CONNECT"; cnt["CONNECT"] = 1; indata = 0; r = 1 }
    /^ *(->|~>) / {
        line = $0; sub(/^ *(->|~>) /, "", line)
        if (indata) { if (line == ".") { stage = "EOM"; cnt["EOM"]++; indata = 0 } ; next }
        split(line, w, /[ :]/); v = toupper(w[1])
        if (v == "HELO" || v == "EHLO" || v == "LHLO") v = "EHLO"
        else if (v != "MAIL" && v != "RCPT" && v != "DATA" && v != "AUTH" && \
                 v != "QUIT" && v != "RSET" && v != "STARTTLS" && v != "NOOP" && \
                 v != "VRFY" && v != "BDAT") {
            if (stage == "AUTH") next
            v = "OTHER"
        }
        stage = v; cnt[stage]++; next
    }
    /^ *(<-|<~|<\*\*|<~\*) / {
        line = $0; sub(/^ *(<-|<~|<\*\*|<~\*) +/, "", line)
        final = (line ~ /^[0-9][0-9][0-9]-/) ? 0 : 1
        printf "%s\t%d\t%d\t%d\t%s\n", stage, cnt[stage], r, final, line
        if (final) r++
        if (stage == "DATA" && final && line ~ /^354/) indata = 1
        next
    }' "$1"
}

# th_smtp_reply_code STAGE [FILE] : print the final reply code (e.g. 250)
#   the server gave to the LAST command of STAGE in the transcript FILE
#   (default: the last th_swaks transcript).  STAGE (any case): CONNECT
#   (banner), EHLO, AUTH (the outcome, 235/535.., after any 334 exchanges),
#   MAIL, RCPT, DATA (354 or a refusal of DATA itself), EOM (the reply after
#   the final "."; alias DOT), RSET, QUIT.
#   Prints nothing and returns 1 if the stage was not reached.
th_smtp_reply_code() {
    local codes
    codes=$(th_smtp_reply_codes "$@") || return 1
    printf '%s\n' "${codes##* }"
}

# th_smtp_reply_codes STAGE [FILE] : like th_smtp_reply_code but prints the
#   final code of every command of STAGE, space-separated, in order (e.g.
#   two RCPTs: "250 550").
th_smtp_reply_codes() {
    local stage=${1^^} file=${2:-${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}} out
    [ "$stage" = DOT ] && stage=EOM
    out=$(_th_smtp_parse "$file" | awk -F'\t' -v s="$stage" '
        $1 == s && $4 == 1 { if (!($2 in code)) order[++n] = $2; code[$2] = substr($5, 1, 3) }
        END { for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), code[order[i]] }')
    [ -n "$out" ] || return 1
    printf '%s\n' "$out"
}

# th_smtp_reply STAGE [FILE] : print the complete final reply (every line,
#   with codes, e.g. "550 5.7.1 alias shop@example.org already exists") to
#   the LAST command of STAGE.  Returns 1 if the stage was not reached.
th_smtp_reply() {
    local stage=${1^^} file=${2:-${TH_SWAKS_OUT:-$TH_ROOT/swaks.last}} out
    [ "$stage" = DOT ] && stage=EOM
    out=$(_th_smtp_parse "$file" | awk -F'\t' -v s="$stage" '
        $1 == s { if ($3 != r) { r = $3; txt = "" } ; txt = txt $5 "\n" }
        END { printf "%s", txt }')
    [ -n "$out" ] || return 1
    printf '%s\n' "$out"
}

# ----------------------------------------------------------- mail checks --

# th_mail_files NAME USER [PATTERN] : list the message files in USER's
#   Maildir (new/ and cur/) on host NAME, only those matching the extended
#   regex PATTERN if given.
th_mail_files() {
    local md
    md=$(th_maildir "$1" "$2")
    if [ -n "${3:-}" ]; then
        grep -lsE -- "$3" "$md"/new/* "$md"/cur/* 2>/dev/null || :
    else
        ls -1d "$md"/new/* "$md"/cur/* 2>/dev/null || :
    fi
    return 0
}

# th_mail_count NAME USER [PATTERN] : print the number of messages in USER's
#   Maildir (matching PATTERN, an extended regex, if given).
th_mail_count() { th_mail_files "$@" | grep -c . || :; }

# th_wait_mail NAME USER PATTERN [TIMEOUT=10] : wait until a message matching
#   the extended regex PATTERN (headers or body) is in USER's Maildir on host
#   NAME; prints the file's path.  Returns 1 on timeout.
th_wait_mail() {
    local name=$1 user=$2 pat=$3 timeout=${4:-10} f end
    end=$(( $(date +%s%N) + $(_th_ns_of "$timeout") ))
    while :; do
        f=$(th_mail_files "$name" "$user" "$pat" | head -n1)
        [ -n "$f" ] && { echo "$f"; return 0; }
        [ "$(date +%s%N)" -lt "$end" ] || break
        sleep 0.1
    done
    th_msg "timeout: no mail matching '$pat' for $user on $name after ${timeout}s"
    return 1
}

# th_log_mark NAME : print the current size of the host's maillog, to pass
#   as FROM to th_wait_log so that only newer lines count.
th_log_mark() { stat -c %s "$(th_maillog "$1")" 2>/dev/null || echo 0; }

# th_wait_log NAME PATTERN [TIMEOUT=10] [FROM=0] : wait until a line matching
#   the extended regex PATTERN appears in the host's maillog after byte
#   offset FROM; prints the first matching line.  Returns 1 on timeout.
th_wait_log() {
    local name=$1 pat=$2 timeout=${3:-10} from=${4:-0} log line end
    log=$(th_maillog "$name")
    end=$(( $(date +%s%N) + $(_th_ns_of "$timeout") ))
    while :; do
        line=$(tail -c +"$((from + 1))" "$log" 2>/dev/null | grep -E -m1 -- "$pat") || :
        [ -n "$line" ] && { echo "$line"; return 0; }
        [ "$(date +%s%N)" -lt "$end" ] || break
        sleep 0.1
    done
    th_msg "timeout: no maillog line matching '$pat' on $name after ${timeout}s"
    return 1
}

# th_queue_count NAME : print the number of messages in the host's queue.
th_queue_count() {
    postqueue -c "$(th_confdir "$1")" -j 2>/dev/null | grep -c . || :
}

# th_wait_queue_empty NAME [TIMEOUT=10] : wait until the host's queue is empty.
th_wait_queue_empty() {
    _th_poll "${2:-10}" _th_queue_empty "$1" ||
        { th_msg "queue of $1 not empty after ${2:-10}s"; return 1; }
}
_th_queue_empty() { [ "$(th_queue_count "$1")" = 0 ]; }

# th_postmap_q NAME KEY [MAP] : postmap -q KEY against the host's map MAP
#   (default the project's lmdb:ROOT/NAME/milter-alias/aliases); prints the
#   value, returns postmap's status (1 = not found).
th_postmap_q() {
    local name=$1 key=$2 map=${3:-lmdb:$(th_map_file "$1")}
    postmap -c "$(th_confdir "$name")" -q "$key" "$map"
}

# ---------------------------------------------------------- project conf --

# th_write_conf NAME [LINE...] : write ROOT/NAME/milter-alias.conf for the
#   project's daemons (contract section 3), standalone (no peer) unless LINEs
#   add e.g. 'listen = "198.51.100.1:7465"' and a peer section; each LINE is
#   appended verbatim.  Prints the file's path.  Uses:
#     node_name NAME.example.test, domains/request_address example.org /
#     makealias@example.org, map virtual/lmdb at ROOT/NAME/milter-alias/aliases,
#     postfix_config_dir ROOT/NAME/postfix, state_dir ROOT/NAME/milter-alias,
#     milter_socket unix:ROOT/NAME/run/milter.sock,
#     control_socket ROOT/NAME/run/control.sock, sendmail /usr/sbin/sendmail,
#     commit_timeout 10.
#   ROOT/NAME/run is milter-alias:postfix 2770, the state dir milter-alias 0755.
th_write_conf() {
    local name=$1 h f line; shift
    h=$(th_dir "$name"); f=$h/milter-alias.conf
    [ -f "$h/.th-host" ] || { th_msg "host $name does not exist"; return 1; }
    cat > "$f" <<EOF
# milter-alias test configuration for host $name (tests/postfix/lib.sh)
node_name          = "$name.example.test"
domains            = {"$TH_DOMAIN"}
request_address    = {"$TH_REQUEST_ADDRESS"}
map_format         = "virtual"
map_file           = "$h/milter-alias/aliases"
map_type           = "lmdb"
postfix_config_dir = "$h/postfix"
state_dir          = "$h/milter-alias"
milter_socket      = "$(th_milter_socket "$name")"
control_socket     = "$(th_control_socket "$name")"
sendmail_path      = "/usr/sbin/sendmail"
commit_timeout     = 10
EOF
    for line in "$@"; do printf '%s\n' "$line" >> "$f"; done
    chmod 0644 "$f"
    echo "$f"
}

# ------------------------------------------------------- test reporting --

# th_pass DESC / th_fail DESC : count and print "ok   - DESC" / "FAIL - DESC"
#   (with TH_TIMING=1 also the seconds since the previous result).
th_pass() {
    _th_lap; TH_PASSED=$((TH_PASSED + 1)); printf 'ok   - %s%s\n' "$*" "$_TH_LAPTXT"
}
th_fail() {
    _th_lap; TH_FAILED=$((TH_FAILED + 1)); TH_FAILED_NAMES="$TH_FAILED_NAMES
  $*"; printf 'FAIL - %s%s\n' "$*" "$_TH_LAPTXT"
}
_TH_LAP=${EPOCHREALTIME/./}
_th_lap() {
    _TH_LAPTXT=
    [ "${TH_TIMING:-0}" = 1 ] || return 0
    local now=${EPOCHREALTIME/./}
    _TH_LAPTXT=" [$(( (now - _TH_LAP) / 1000 )) ms]"
    _TH_LAP=$now
}

# th_check DESC CMD... : run CMD (its stdout discarded, stderr kept);
#   th_pass DESC if it succeeds, else th_fail.  Returns CMD's status.
th_check() {
    local desc=$1 rc=0; shift
    "$@" >/dev/null || rc=$?
    if [ $rc = 0 ]; then th_pass "$desc"; else th_fail "$desc (status $rc)"; fi
    return $rc
}

# th_check_eq DESC EXPECTED ACTUAL : pass if the strings are equal.
th_check_eq() {
    if [ "$2" = "$3" ]; then th_pass "$1"; return 0; fi
    th_fail "$1 (expected '$2', got '$3')"; return 1
}

# th_summary : print "N passed, M failed" (and the failures); returns 0 only
#   if nothing failed and something passed.
th_summary() {
    echo "$TH_PASSED passed, $TH_FAILED failed"
    [ "$TH_FAILED" = 0 ] || printf 'failed:%s\n' "$TH_FAILED_NAMES"
    [ "$TH_FAILED" = 0 ] && [ "$TH_PASSED" -gt 0 ]
}
