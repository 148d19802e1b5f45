/* test_peers.c - unit tests for the listener's admission rules in
 * peer/peers.c (peers_admit) and for the limit on log lines about refused
 * connections (peers_loglimit_*): pure functions, no sockets.  Whether a
 * stranger really cannot lock the pinned peers out is measured on real
 * hosts by tests/twohost/test_lockout.sh.
 */
#include "config.h"

#include "unit.h"
#include "peers.h"

/* the attack: one outside address holding many idle connections */
Test(peers_admit, one_stranger_gets_at_most_its_share)
{
	int held = 0;

	for (int i = 0; i < 64; i++)
		if (peers_admit(0, held, held, held) == PEERS_ADMIT)
			held++;
	cr_assert_eq(held, PEERS_UNAUTH_PER_ADDR);
	cr_assert_eq(peers_admit(0, held, held, held), PEERS_REFUSE_ADDR);
}

Test(peers_admit, strangers_together_get_at_most_their_share)
{
	/* many addresses, each below its own limit */
	cr_assert_eq(peers_admit(0, PEERS_UNAUTH_STRANGERS - 1, PEERS_UNAUTH_STRANGERS - 1, 0),
		     PEERS_ADMIT);
	cr_assert_eq(peers_admit(0, PEERS_UNAUTH_STRANGERS, PEERS_UNAUTH_STRANGERS, 0),
		     PEERS_REFUSE_STRANGERS);
	cr_assert_eq(peers_admit(0, PEERS_UNAUTH_STRANGERS, PEERS_UNAUTH_STRANGERS, 1),
		     PEERS_REFUSE_STRANGERS);
}

Test(peers_admit, a_peer_address_gets_in_while_strangers_hold_their_share)
{
	/* strangers hold all they may; the peer's own budget is untouched */
	for (int own = 0; own < PEERS_UNAUTH_PER_PEER_ADDR; own++)
		cr_assert_eq(peers_admit(1, PEERS_UNAUTH_STRANGERS + own,
					 PEERS_UNAUTH_STRANGERS, own), PEERS_ADMIT,
			     "peer connection %d refused", own);
	cr_assert_eq(peers_admit(1, PEERS_UNAUTH_STRANGERS + PEERS_UNAUTH_PER_PEER_ADDR,
				 PEERS_UNAUTH_STRANGERS, PEERS_UNAUTH_PER_PEER_ADDR),
		     PEERS_REFUSE_ADDR);
	/* ... and authenticated connections do not count against it */
	cr_assert_eq(peers_admit(1, 40, PEERS_UNAUTH_STRANGERS, 0), PEERS_ADMIT);
}

Test(peers_admit, strangers_and_a_peer_cannot_fill_the_listener_together)
{
	/* what one peer address and all strangers may hold unauthenticated
	 * leaves room for the other peers' connections */
	cr_assert_lt(PEERS_UNAUTH_STRANGERS + PEERS_UNAUTH_PER_PEER_ADDR, PEERS_MAX_INCOMING);
	cr_assert_lt(PEERS_UNAUTH_PER_ADDR, PEERS_UNAUTH_STRANGERS);
}

Test(peers_admit, the_total_bounds_everybody)
{
	cr_assert_eq(peers_admit(1, PEERS_MAX_INCOMING, 0, 0), PEERS_REFUSE_FULL);
	cr_assert_eq(peers_admit(0, PEERS_MAX_INCOMING, 0, 0), PEERS_REFUSE_FULL);
	cr_assert_eq(peers_admit(1, PEERS_MAX_INCOMING - 1, 0, 0), PEERS_ADMIT);
}

Test(peers_loglimit, a_burst_is_logged_then_counted_and_summed_up)
{
	struct peers_loglimit l = { 0 };
	char buf[512];
	long long t = 1000;
	int logged = 0;

	for (int i = 0; i < 100; i++)
		logged += peers_loglimit_take(&l, t + i, i % 10 == 9 ? "192.0.2.7" : "192.0.2.1");
	cr_assert_eq(logged, PEERS_LOG_BURST);
	/* nothing to sum up before the window ends */
	cr_assert_eq(peers_loglimit_flush(&l, t + 200, buf, sizeof(buf)), 0);
	cr_assert_eq(peers_loglimit_due(&l, t + 200), PEERS_LOG_WINDOW_MS - 200);
	cr_assert_eq(peers_loglimit_flush(&l, t + PEERS_LOG_WINDOW_MS, buf, sizeof(buf)), 1);
	/* i = 20..99: 72 from .1, 8 from .7 (i = 29, 39, ..., 99) */
	cr_assert_str_eq(buf, "80 more refused connections not logged one by one in the "
			 "last 10 s: from 192.0.2.1 (72), from 192.0.2.7 (8)");
	cr_assert_eq(peers_loglimit_due(&l, t + PEERS_LOG_WINDOW_MS), -1);
	/* a new window: a new burst */
	cr_assert_eq(peers_loglimit_take(&l, t + PEERS_LOG_WINDOW_MS + 1, "192.0.2.1"), 1);
}

Test(peers_loglimit, many_addresses_are_summed_as_others)
{
	struct peers_loglimit l = { 0 };
	char buf[512], a[32];

	for (int i = 0; i < PEERS_LOG_BURST + PEERS_LOG_ADDRS + 3; i++) {
		snprintf(a, sizeof(a), "192.0.2.%d", i);
		peers_loglimit_take(&l, 5, a);
	}
	cr_assert_eq(peers_loglimit_flush(&l, 5 + PEERS_LOG_WINDOW_MS, buf, sizeof(buf)), 1);
	cr_assert(strstr(buf, "from 192.0.2.20 (1), from 192.0.2.21 (1), from 192.0.2.22 (1), "
			 "from 192.0.2.23 (1), from other addresses (3)") != NULL, "%s", buf);
}

Test(peers_loglimit, a_trickle_is_always_logged)
{
	struct peers_loglimit l = { 0 };

	/* one refusal a second for an hour: each one logged */
	for (int i = 0; i < 3600; i++)
		cr_assert_eq(peers_loglimit_take(&l, 1 + i * 1000LL, "192.0.2.1"), 1);
	cr_assert_eq(peers_loglimit_due(&l, 3600 * 1000LL), -1);
}
