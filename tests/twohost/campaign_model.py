#!/usr/bin/python3
"""campaign_model.py - the model checker behind tests/twohost/test_campaign.sh.

After every round of the fault campaign the shell script hands this program
the round's ledger (every request with the class of its SMTP answer), the
state each server reports for the names the round touched, and the model
kept so far (the state of every name as read back after the previous
rounds).  It decides whether what the servers show can be explained by the
answers the users got, under contract section 6:

  * 250 => the change happened (exactly the change the request asked for,
    checked against the state it found),
  * 5xx => the change did not happen (the request was refused by the rules:
    no such alias, not the owner, exists, reserved to its former owner),
  * 4xx or no answer => the change happened or it did not, as a whole;
    its effect may land at any moment until recovery has run (a decision
    that reaches a server late), but only where the request would have
    been accepted (the address is locked between prepare and decision, so
    a late change is still checked against the state it lands on),
  * both servers show the same state for every name.

Requests that ran at the same time (one step of a round) may have taken
effect in any order; the round is fine if SOME order of the definite
answers, with the 4xx/none requests landing anywhere or nowhere, explains
the answers and the state read back.  This is a small exhaustive search:
a round touches a handful of names with a few requests each.

The state of a name is (state, owner): ("absent", "") or one of active,
disabled, deleted with the owner's login.  The rules (peer/engine.c,
contract section 4):
  new NAME      absent, or deleted and owned by the requester -> active
  disable/enable/delete NAME
                refused if absent, deleted, or owned by someone else;
                250 without a change if already in the wanted state.

Hand-written entries (names starting with "hand", the campaign's
handedit fault) are outside the project's names: never requested, never
in the model, skipped when reading the servers' lists.

With --key local (the campaign's aliases2 shape: map_format = aliases and
two domains) a name is its local part: requests for NAME@example.org and
NAME@example.net are requests for one name (one map key, one lock), and
the servers' entries are read by local part whatever their domain.  The
entry still has one address (peer/engine.c): "new" is refused while any
domain holds the key (a deleted one is taken back only by its owner in
its own domain), and disable/enable/delete act only on the address the
entry has.  The model gets this from the rules above by writing the
owner, and the requester, as LOGIN|DOMAIN.

Usage:
  campaign_model.py [--key local] ROUND MODEL LEDGER ACTUAL_A ACTUAL_B [ACTUAL_C...]
    ROUND     round number (for messages)
    MODEL     JSON {name: [state, owner]}; read, then rewritten with the
              state read back (only if both servers agree)
    LEDGER    TSV lines: round step host login verb name class reply
              (class 2xx 4xx 5xx none); only this round's lines
    ACTUAL_A...  "milter-aliasctl list --json" of each server (a, b, c...)
Prints one "VIOLATION <name>: ..." line per violation, then
"checked <n> names" and exits 0; exits 2 if its input is unusable.
  campaign_model.py --self-test
    checks the checker on hand-made histories; exit 0 if every verdict is right
"""

import itertools
import json
import sys

DOMAIN = "example.org"
DOMAINS = ("example.org", "example.net")
HAND = "hand"
WANT = {"disable": "disabled", "enable": "active", "delete": "deleted"}
ABSENT = ("absent", "")


def apply(verb, login, st):
    """Outcome of one request on state st: ("ok", new_state) or ("perm", st)."""
    state, owner = st
    if verb == "new":
        if state == "absent" or (state == "deleted" and owner == login):
            return "ok", ("active", login)
        return "perm", st
    if verb in WANT:
        if state in ("absent", "deleted") or owner != login:
            return "perm", st
        return "ok", (WANT[verb], owner)
    raise ValueError("unknown verb %r" % verb)


def closure(worlds):
    """Let any pending (4xx/none) request land now, where it is accepted.

    A world is (state, pending) with pending a sorted tuple of
    (verb, login) requests whose fate is still open.  Landing one removes
    it from pending; never landing is the same as staying pending to the
    end, so pending requests are only ever taken out by landing."""
    seen = set(worlds)
    todo = list(worlds)
    while todo:
        st, pend = todo.pop()
        for i, (verb, login) in enumerate(pend):
            res, new = apply(verb, login, st)
            if res != "ok":
                continue
            w = (new, pend[:i] + pend[i + 1:])
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def run_step(worlds, ops):
    """One step: ops ran concurrently.  Returns the surviving worlds.

    The 4xx/none ops of the step join pending first (they may land before,
    between or after the definite ones); the definite ops are tried in
    every order, each filtering the worlds to those that explain its
    answer."""
    pend_add = tuple(sorted((o["verb"], o["login"]) for o in ops
                            if o["class"] not in ("2xx", "5xx")))
    definite = [o for o in ops if o["class"] in ("2xx", "5xx")]
    start = {(st, tuple(sorted(p + pend_add))) for st, p in worlds}
    out = set()
    for order in itertools.permutations(definite):
        cur = start
        for o in order:
            want = "ok" if o["class"] == "2xx" else "perm"
            nxt = set()
            for st, pend in closure(cur):
                res, new = apply(o["verb"], o["login"], st)
                if res == want:
                    nxt.add((new, pend))
            cur = nxt
            if not cur:
                break
        out |= cur
    return out


def read_actual(path, key=None, dup=None):
    """name -> (state, owner) from a list --json file; names only in DOMAIN
    (key "local": in any of DOMAINS or none, by local part); hand entries
    are skipped.  dup (a list) collects local parts listed twice."""
    with open(path) as f:
        data = json.load(f)
    return parse_actual(data, key, dup)


def parse_actual(data, key=None, dup=None):
    if isinstance(data, dict):      # tolerate {"aliases": [...]}
        data = data.get("aliases", [])
    res = {}
    for a in data:
        addr = str(a.get("address", ""))
        local, _, dom = addr.partition("@")
        if local.startswith(HAND):
            continue
        if key == "local":
            if dom and dom not in DOMAINS:
                continue
        elif dom != DOMAIN:
            continue
        owner = str(a.get("owner", ""))
        owner = owner[:-len("@" + DOMAIN)] if owner.endswith("@" + DOMAIN) else owner
        if key == "local":
            owner = "%s|%s" % (owner, dom or DOMAIN)
        if local in res and dup is not None:
            dup.append(local)
        res[local] = (str(a.get("state", "")), owner)
    return res


def fmt(st):
    return st[0] if st[0] == "absent" else "%s(%s)" % st


def self_test():
    """The checker must accept what the contract allows and catch what it
    forbids; a checker that accepts everything would make a campaign
    without violations worthless.  Returns the number of wrong verdicts."""
    A, B = "alice", "bob"

    def verdict(start, steps, final):
        worlds = {(start, ())}
        for ops in steps:
            worlds = run_step(worlds, [{"verb": v, "login": l, "class": c}
                                       for v, l, c in ops])
            if not worlds:
                return False
        return final in {st for st, _ in closure(worlds)}

    cases = [
        # (expected verdict, start, steps, final state read back)
        (True, ABSENT, [[("new", A, "2xx")]], ("active", A)),
        (False, ABSENT, [[("new", A, "2xx")]], ABSENT),                # 250 lost
        (False, ABSENT, [[("new", A, "5xx")]], ("active", A)),         # 5xx applied
        (True, ABSENT, [[("new", A, "4xx")]], ABSENT),
        (True, ABSENT, [[("new", A, "none")]], ("active", A)),
        (False, ABSENT, [[("new", A, "2xx"), ("new", B, "2xx")]], ("active", A)),  # two winners
        (True, ABSENT, [[("new", A, "2xx"), ("new", B, "5xx")]], ("active", A)),
        (True, ABSENT, [[("new", A, "4xx"), ("new", B, "4xx")]], ("active", B)),
        (False, ABSENT, [[("new", A, "4xx")], [("new", B, "2xx")]], ("active", A)),  # lost 250
        (True, ABSENT, [[("new", A, "4xx")], [("disable", B, "5xx")]], ("active", A)),
        (False, ("active", A), [[("disable", B, "2xx")]], ("disabled", A)),  # not the owner
        (True, ("active", A), [[("disable", A, "2xx")], [("disable", A, "2xx")]], ("disabled", A)),
        (True, ("deleted", A), [[("new", A, "2xx")]], ("active", A)),
        (False, ("deleted", A), [[("new", B, "2xx")]], ("active", B)),  # reserved name
        (True, ("active", A), [[("delete", A, "2xx"), ("enable", A, "5xx")]], ("deleted", A)),
        (False, ("active", A), [[("delete", A, "4xx")], [("enable", A, "5xx")]], ("active", A)),
    ]
    wrong = 0
    # reading the servers' lists: hand entries are not project names; by
    # local part, one name in two domains is one name
    lst = [{"address": "x@example.org", "owner": "alice@example.org", "state": "active"},
           {"address": "hand3-1@example.org", "owner": "alice@example.org", "state": "active"},
           {"address": "y@example.net", "owner": "bob@example.org", "state": "disabled"}]
    dup = []
    for got, want in (
            (parse_actual(lst), {"x": ("active", A)}),
            (parse_actual(lst, "local", dup), {"x": ("active", A + "|example.org"),
                                               "y": ("disabled", B + "|example.net")}),
            (parse_actual(lst + [{"address": "x@example.net", "owner": "bob@example.org",
                                  "state": "active"}], "local", dup),
             {"x": ("active", B + "|example.net"), "y": ("disabled", B + "|example.net")})):
        if got != want:
            wrong += 1
            print("self-test: read %s, want %s" % (got, want))
    if dup != ["x"]:
        wrong += 1
        print("self-test: one key listed twice not noticed: %s" % dup)
    cases += [
        # aliases2: x@example.org and x@example.net are one key
        (False, ABSENT, [[("new", A + "|org", "2xx"), ("new", B + "|net", "2xx")]],
         ("active", B + "|net")),
        (True, ABSENT, [[("new", A + "|org", "2xx"), ("new", A + "|net", "5xx")]],
         ("active", A + "|org")),
        # ... but the entry has one address: the owner's enable in the
        # other domain is refused, a 250 for it is a violation
        (True, ("disabled", A + "|org"), [[("enable", A + "|net", "5xx")]],
         ("disabled", A + "|org")),
        (False, ("disabled", A + "|org"), [[("enable", A + "|net", "2xx")]],
         ("active", A + "|org")),
    ]
    for want, start, steps, final in cases:
        if verdict(start, steps, final) != want:
            wrong += 1
            print("self-test: wrong verdict (want %s) for %s %s -> %s"
                  % (want, fmt(start), steps, fmt(final)))
    print("self-test: %d cases, %d wrong" % (len(cases), wrong))
    return wrong


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return 1 if self_test() else 0
    key = None
    if len(argv) > 2 and argv[1] == "--key":
        key = argv[2]
        argv = argv[:1] + argv[3:]
    if len(argv) < 6 or key not in (None, "local"):
        print(__doc__, file=sys.stderr)
        return 2
    rnd, model_path, ledger_path = argv[1:4]
    paths = argv[4:]
    labels = "abcdefgh"
    try:
        with open(model_path) as f:
            model = {k: tuple(v) for k, v in json.load(f).items()}
    except FileNotFoundError:
        model = {}
    dups = []
    try:
        acts = [read_actual(p, key, dups) for p in paths]
    except (OSError, ValueError) as e:
        print("VIOLATION *: cannot read the servers' alias lists: %s" % e)
        return 0
    bad = 0
    for d in sorted(set(dups)):
        bad += 1
        print("VIOLATION %s: one map key listed twice (in two domains) on a server" % d)
    # ledger: keep the order of steps, group the requests of each step
    steps = {}
    with open(ledger_path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 7 or p[0] != rnd:
                continue
            name, login = p[5], p[3]
            if key == "local":
                name, _, dom = p[5].partition("@")
                login = "%s|%s" % (p[3], dom or DOMAIN)
            op = {"step": int(p[1]), "host": p[2], "login": login, "verb": p[4],
                  "name": name, "class": p[6], "reply": p[7] if len(p) > 7 else ""}
            steps.setdefault(op["name"], {}).setdefault(op["step"], []).append(op)
    for name in sorted(steps):
        sts = [a.get(name, ABSENT) for a in acts]
        sa = sts[0]
        agree = all(x == sa for x in sts)
        hist = "; ".join("step %d %s:%s %s -> %s" % (o["step"], o["host"], o["login"],
                                                   o["verb"], o["class"])
                         for s in sorted(steps[name]) for o in steps[name][s])
        start = model.get(name, ABSENT)
        worlds = {(start, ())}
        failed_at = None
        for s in sorted(steps[name]):
            worlds = run_step(worlds, steps[name][s])
            if not worlds:
                failed_at = s
                break
        if not agree:
            bad += 1
            print("VIOLATION %s: servers differ: %s (before the round %s; %s)"
                  % (name, " ".join("%s=%s" % (labels[i], fmt(x)) for i, x in enumerate(sts)),
                     fmt(start), hist))
        if failed_at is not None:
            bad += 1
            print("VIOLATION %s: no order of the requests explains the answers "
                  "(first impossible at step %d; before the round %s; %s)"
                  % (name, failed_at, fmt(start), hist))
        elif agree:
            finals = {st for st, _ in closure(worlds)}
            if sa not in finals:
                bad += 1
                print("VIOLATION %s: servers show %s, the answers allow only %s "
                      "(before the round %s; %s)"
                      % (name, fmt(sa), ", ".join(sorted(fmt(x) for x in finals)),
                         fmt(start), hist))
        # the model continues from what the servers agree on
        if agree:
            if sa == ABSENT:
                model.pop(name, None)
            else:
                model[name] = sa
    with open(model_path, "w") as f:
        json.dump({k: list(v) for k, v in sorted(model.items())}, f)
    print("checked %d names, %d violations" % (len(steps), bad))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
