#!/bin/bash
# demo.sh - build milter-alias and show what it does, on a fresh Debian 12
# machine, as root.  Two mail servers, a and b, each a real Postfix with
# Dovecot SASL in a network namespace of its own, joined only by the peer
# link (198.51.100.1 and .2).  alice asks server a for an alias by mail;
# the alias then resolves and delivers on BOTH servers, each sends its own
# confirmation, and milter-aliasctl verify says the two match.  Everything
# is torn down at the end (DEMO_KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: run as root (it installs packages and starts Postfix in network namespaces)" >&2
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

export top_builddir=$top
[ "${DEMO_KEEP:-0}" = 1 ] && export TH_KEEP=1
TW_SUITE=demo
. tests/twohost/lib2.sh

step "starting servers a and b: Postfix + Dovecot + milter-alias each, keys pinned"
tw_setup
for n in a b; do
	echo "$n: $(tw_node $n) at $(tw_ip $n), pin $(tw_pin $n)"
done
tw_ctl a status | sed 's/^/a status: /'

step "alice sends 'new shop-amazon orders' to makealias@example.org on server a (SMTP AUTH, port 587)"
tw_request a alice "new shop-amazon orders" || true
th_smtp_reply EOM | sed 's/^/server a answered: /'

step "postmap -q shop-amazon@example.org on each server's own map"
tw_wait_converged 10 || true
for n in a b; do
	echo "$n: $(tw_q $n shop-amazon@example.org)"
done

step "each server's confirmation, sent through its own map to alice's Maildir there"
for n in a b; do
	f=$(th_wait_mail $n alice 'X-Milter-Alias-Server' 10) || continue
	echo "$n: $(grep -E '^(Subject|X-Milter-Alias-Server):' "$f" | tr '\n' ' ')"
done

step "a shop writes to shop-amazon@example.org, once through each server (port 25, no AUTH)"
for n in a b; do
	th_swaks $n --port 25 --from orders@shop.example.net --to shop-amazon@example.org \
		--header "Subject: Order 4711 via $n" >/dev/null || true
	f=$(th_wait_mail $n alice "Order 4711 via $n" 10) && echo "$n: delivered to $f"
done

step "the same name asked for on server b is refused"
tw_request b bob "new shop-amazon" || true
th_smtp_reply EOM | sed 's/^/server b answered: /'

step "milter-aliasctl verify (on a)"
tw_ctl a verify || true

step "milter-aliasctl list (on b)"
tw_ctl b list

step "the sync daemons' log lines for the change (syslog facility mail)"
grep -hE 'prepare|vote|commit|confirmation' "$(tw_peer_log a)" "$(tw_peer_log b)" | head -n 12
echo
echo "Demo complete."
