# tests/twohost: two real Postfix+Dovecot hosts in network namespaces running
# milter-alias as a synchronised pair (testing.md layer 4).  Run as root by
# tests/run-all.sh; they use tests/postfix/lib.sh.
EXTRA_DIST += \
	tests/twohost/CAMPAIGN.md \
	tests/twohost/campaign_model.py \
	tests/twohost/campaign_tally.py \
	tests/twohost/holdopen.py \
	tests/twohost/lib2.sh \
	tests/twohost/smtp-race.py \
	tests/twohost/test_basic.sh \
	tests/twohost/test_campaign.sh \
	tests/twohost/test_expiry.sh \
	tests/twohost/test_faults.sh \
	tests/twohost/test_handedit.sh \
	tests/twohost/test_lockout.sh \
	tests/twohost/test_races.sh
