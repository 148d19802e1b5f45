#!/usr/bin/python3
"""campaign_tally.py - sum up test_campaign.sh logs from their per-round lines.

A long campaign may run as several ranges of one seed side by side (each
round's draws depend on the seed and the round alone), and a range may be
stopped once another has taken over its last rounds: such a log has no
summary line.  This counts what the summary line counts, from the lines
every round prints, for the rounds that finished (a round stopped half way
is not counted):

    campaign_tally.py LOG[:FIRST-LAST] ...

prints the rounds counted, the rounds with a violation (a FAIL line), the
faults by kind, the requests by answer, and which rounds of the overall
range are missing or counted twice.  For a log that ended with its own
summary line the figures are the same (requests, answers, faults by kind;
not "crash points that fired", which only the summary line has).
"""
import collections
import re
import sys

STEP = re.compile(r"# round (\d+) step \d+:(.*)")
FAULT = re.compile(r" \+ ([a-z-]+) on ")
REQ = re.compile(r"#   \S+ \S+ '.*' -> (\S+)")
DONE = re.compile(r"ok   - round (\d+): invariants hold")
FAIL = re.compile(r"FAIL - round (\d+):")
CLASS = {"2xx": "250", "4xx": "4xx", "5xx": "5xx"}


def tally(path, first, last):
    per_req = collections.defaultdict(collections.Counter)
    per_fault = collections.defaultdict(collections.Counter)
    finished, bad = set(), set()
    rnd = None
    with open(path, errors="replace") as f:
        for line in f:
            m = STEP.match(line)
            if m:
                rnd = int(m.group(1))
                k = FAULT.search(m.group(2))
                if k:
                    per_fault[rnd][k.group(1)] += 1
                continue
            m = REQ.match(line)
            if m and rnd is not None:
                per_req[rnd]["requests"] += 1
                per_req[rnd][CLASS.get(m.group(1), "none")] += 1
                continue
            m = DONE.match(line) or FAIL.match(line)
            if m:
                finished.add(int(m.group(1)))
                if line.startswith("FAIL"):
                    bad.add(int(m.group(1)))
    rounds = {r for r in finished if first <= r <= last}
    req, faults = collections.Counter(), collections.Counter()
    for r in rounds:
        req.update(per_req[r])
        faults.update(per_fault[r])
    return rounds, bad & rounds, req, faults


def main(args):
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    seen = collections.Counter()
    req, faults, bad = collections.Counter(), collections.Counter(), set()
    for arg in args:
        path, _, span = arg.partition(":")
        first, last = (int(x) for x in span.split("-")) if span else (1, 10**9)
        rounds, b, r, f = tally(path, first, last)
        print("%s: %d rounds (%s), %d faults, %d requests" % (
            path, len(rounds), "%d-%d" % (min(rounds), max(rounds)) if rounds else "none",
            sum(f.values()), r["requests"]))
        seen.update(rounds)
        req.update(r)
        faults.update(f)
        bad |= b
    top = max(seen) if seen else 0
    missing = [r for r in range(1, top + 1) if r not in seen]
    twice = sorted(r for r, n in seen.items() if n > 1)
    print("rounds=%d faults=%d requests=%d (250=%d 4xx=%d 5xx=%d none=%d) "
          "rounds with a violation=%d" % (
              len(seen), sum(faults.values()), req["requests"], req["250"], req["4xx"],
              req["5xx"], req["none"], len(bad)))
    print("faults by kind: " + " ".join("%s=%d" % kv for kv in sorted(faults.items())))
    if bad:
        print("rounds with a violation: " + " ".join(map(str, sorted(bad))))
    if missing:
        print("missing rounds (of 1-%d): %d, first %s" % (top, len(missing), missing[:10]))
    if twice:
        print("rounds counted twice: %s" % twice[:10])
    return 1 if bad or missing or twice else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
