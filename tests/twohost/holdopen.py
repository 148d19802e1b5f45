#!/usr/bin/python3
# holdopen.py - an outside host holding a peer port shut (issue 12, item 6):
# N idle TCP connections to HOST:PORT, kept open for SECONDS; each one the
# server closes is opened again after PAUSE s (default 0.2: a
# small loop, without spinning the test machine's CPU).  "Held at once"
# counts a connection the server kept for 1 s or longer from 0.5 s after it
# was opened until 0.5 s before it was seen closed: one opened just before
# the server closed another, and admitted in its place, is not counted
# twice.  Nothing is ever
# sent.  Prints "opened N" once the first N are open, then at the end
#   "holdopen: opens O, closed by the server C, held at the end H,
#    most held at once for 1 s or longer M, connect errors E"
# where "held for 1 s" counts a connection the server kept at least a
# second (one refused at accept is closed at once).
# usage: holdopen.py HOST PORT N SECONDS [PAUSE]
import select, socket, sys, time

host, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.2
t0 = time.time()
opens = closed = errors = 0
conns = {}          # socket -> time opened
reopen_at = []      # times at which to open one more
intervals = []      # (opened, closed) of connections held >= 1 s


def open_one():
    global opens, errors
    try:
        s = socket.create_connection((host, port), timeout=3)
    except OSError:
        errors += 1
        reopen_at.append(time.time() + pause)
        return
    s.setblocking(False)
    conns[s] = time.time()
    opens += 1


for _ in range(n):
    open_one()
print("opened %d in %.1f s" % (len(conns), time.time() - t0), flush=True)
while time.time() - t0 < secs:
    now = time.time()
    for t in [t for t in reopen_at if t <= now]:
        reopen_at.remove(t)
        open_one()
    wait = min([0.2] + [max(0.0, t - now) for t in reopen_at])
    r, _, _ = select.select(list(conns), [], [], wait)
    for s in r:
        try:
            b = s.recv(4096)
        except OSError:
            b = b""
        if b:
            continue            # nothing is expected; ignore it
        t_open = conns.pop(s)
        now = time.time()
        if now - t_open >= 1.0:
            intervals.append((t_open, now))
        s.close()
        closed += 1
        reopen_at.append(now + pause)
end = time.time()
for s, t_open in conns.items():
    if end - t_open >= 1.0:
        intervals.append((t_open, end))
ev = sorted([(a + 0.5, 1) for a, _ in intervals] + [(b - 0.5, -1) for _, b in intervals])
cur = most = 0
for _, d in ev:
    cur += d
    most = max(most, cur)
print("holdopen: opens %d, closed by the server %d, held at the end %d, "
      "most held at once for 1 s or longer %d, connect errors %d"
      % (opens, closed, len(conns), most, errors), flush=True)
for s in conns:
    s.close()
