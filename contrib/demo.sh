#!/bin/bash
# demo.sh - build milter-alias and show what it does, on a fresh Debian 12
# machine, as root: a real Postfix with Dovecot SASL runs in a network
# namespace (test host "a", 198.51.100.1); alice asks for an alias by mail
# on the submission port; the alias then resolves in Postfix's map,
# delivers, and its confirmation arrives.  Everything is torn down at the
# end (DEMO_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: run as root (it installs packages and starts Postfix in a network namespace)" >&2
	exit 1
fi
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing build and run-time dependencies from Debian"
contrib/install-deps.sh

step "building"
[ -x configure ] || autoreconf -fi >/dev/null
[ -f Makefile ] || ./configure -q
make -j"$(nproc)" >/dev/null
ls -l milter/milter-alias peer/milter-alias-peer peer/milter-aliasctl

. tests/postfix/lib.sh
TH_ROOT=/var/tmp/milter-alias-demo
th_init "$TH_ROOT" md-
[ "${DEMO_KEEP:-0}" = 1 ] && export TH_KEEP=1
th_cleanup_trap a

step "starting test host a: Postfix + Dovecot in network namespace $(th_ns a)"
th_host_create a 198.51.100.1
conf=$(th_write_conf a)
dir=$(th_dir a)
th_daemon a "$dir/peer.log" "$top/peer/milter-alias-peer" -f -c "$conf" >/dev/null
th_wait_socket "$(th_control_socket a)"
th_daemon a "$dir/milter.log" "$top/milter/milter-alias" -f -c "$conf" >/dev/null
th_wait_socket "$(th_milter_socket a)"
th_set_milter a "$(th_milter_socket a)"
th_host_start a
echo "milter on submission:  $(postconf -c "$(th_confdir a)" -h mua_milters)"
echo "virtual_alias_maps:    $(postconf -c "$(th_confdir a)" -h virtual_alias_maps)"

step "alice sends 'new shop-amazon orders' to makealias@example.org (SMTP AUTH, port 587)"
th_swaks a --port 587 --auth PLAIN --auth-user alice --auth-password secret-alice \
	--from alice@example.org --to makealias@example.org \
	--header "Subject: new shop-amazon orders" || true
th_smtp_reply EOM | sed 's/^/server answered: /'

step "postmap -q shop-amazon@example.org lmdb:$(th_map_file a)"
th_postmap_q a shop-amazon@example.org

step "the confirmation that travelled through the new alias"
f=$(th_wait_mail a alice 'X-Milter-Alias-Server' 10)
grep -E '^(From|To|Subject|X-Milter-Alias-Server|Delivered-To):' "$f"

step "a shop writes to shop-amazon@example.org (port 25, no AUTH)"
th_swaks a --port 25 --from orders@shop.example.net --to shop-amazon@example.org \
	--header "Subject: Your order 4711 has shipped" >/dev/null
f=$(th_wait_mail a alice 'Your order 4711' 10)
echo "delivered to alice's Maildir: $f"

step "a hostile request: 'new |/bin/sh'"
th_swaks a --port 587 --auth PLAIN --auth-user alice --auth-password secret-alice \
	--from alice@example.org --to makealias@example.org \
	--header "Subject: new |/bin/sh" >/dev/null || true
th_smtp_reply EOM | sed 's/^/server answered: /'

step "milter-aliasctl list"
"$top/peer/milter-aliasctl" -c "$conf" list

step "the map source file (a valid postmap source, metadata in comments)"
cat "$(th_map_file a)"

step "log lines (syslog facility mail; shown from -f's stderr)"
tail -n 4 "$dir/milter.log" "$dir/peer.log"
echo
echo "Demo complete."
