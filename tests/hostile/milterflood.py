#!/usr/bin/python3
# milterflood.py - many concurrent milter sessions against milter-alias
# (tests/hostile/test_peer.sh).
# usage: milterflood.py SOCKET N NREQ TAG HOLD [HANG]
# Opens N sessions (negotiate, CONNECT, HELO) and holds them; NREQ of them
# then send a whole request (MAIL with {auth_authen}, RCPT to the request
# address, DATA, headers, EOM "new TAG-i") all at once; every EOM reply is
# classified.  Prints "sessions N/N, eom 2xx=.. 4xx=.. 451-4.3.2=.. 5xx=..
# hang=.. other=.., slowest S s" (hang = no reply within HANG seconds of
# the EOMs, default 60; Postfix itself gives up after milter_content_timeout).
import select, socket, struct, sys, time

path, n, nreq, tag, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
hang = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
path = path.split(":", 1)[1] if path.startswith(("unix:", "local:")) else path
logins = ["alice", "bob", "carol"]

def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data

def recv_pkt(s, timeout):
    s.settimeout(timeout)
    hdr = b""
    while len(hdr) < 4:
        b = s.recv(4 - len(hdr))
        if not b: raise EOFError
        hdr += b
    ln = struct.unpack(">I", hdr)[0]; d = b""
    while len(d) < ln:
        b = s.recv(ln - len(d))
        if not b: raise EOFError
        d += b
    return d[:1], d[1:]

def reply(s, timeout=60):
    while True:
        c, d = recv_pkt(s, timeout)
        if c != b"p":          # progress: keep waiting
            return c, d

socks, errs = [], 0
for i in range(n):
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path)
        # version 6, all actions, protocol 0: every stage sent, every reply awaited
        s.sendall(pkt(b"O", struct.pack(">III", 6, 0x1FF, 0)))
        c, d = reply(s, 10)
        if c != b"O": raise EOFError("optneg %r" % c)
        s.sendall(pkt(b"D", b"C" + b"j\0a.example.test\0") +
                  pkt(b"C", b"client.example.test\0" + b"4" + struct.pack(">H", 4000) + b"198.51.100.9\0"))
        c, d = reply(s, 10)
        s.sendall(pkt(b"H", b"client.example.test\0")); reply(s, 10)
        socks.append(s)
    except Exception as e:
        errs += 1
print("opened %d sessions, %d errors" % (len(socks), errs), flush=True)
time.sleep(hold)

res = {"2xx": 0, "4xx": 0, "451-4.3.2": 0, "5xx": 0, "hang": 0, "other": 0, "dead": 0}
reqs = socks[:nreq]; slow = 0.0
live = []
for i, s in enumerate(reqs):
    try:
        lg = logins[i % 3].encode()
        s.sendall(pkt(b"D", b"M" + b"{auth_authen}\0" + lg + b"\0") + pkt(b"M", b"<" + lg + b"@example.org>\0"))
        c, d = reply(s, 30)
        if c != b"c": res["other"] += 1; continue
        s.sendall(pkt(b"D", b"R") + pkt(b"R", b"<makealias@example.org>\0")); c, d = reply(s, 30)
        if c != b"c": res["other"] += 1; continue
        s.sendall(pkt(b"T")); c, d = reply(s, 30)
        for k, v in ((b"From", lg + b"@example.org"), (b"To", b"makealias@example.org"),
                     (b"Subject", b"new %s-%d" % (tag.encode(), i))):
            s.sendall(pkt(b"L", k + b"\0" + v + b"\0")); reply(s, 30)
        s.sendall(pkt(b"N")); reply(s, 30)
        live.append(s)
    except Exception:
        res["dead"] += 1
# all EOMs at once
t0 = time.time()
for s in live:
    s.sendall(pkt(b"E"))
pending = {s: None for s in live}
for s in live:
    try:
        c, d = reply(s, max(1, hang - (time.time() - t0)))
        slow = max(slow, time.time() - t0)
        if c == b"d" or c == b"a" or c == b"c": res["2xx"] += 1
        elif c == b"y":
            if d.startswith(b"451 4.3.2"): res["451-4.3.2"] += 1
            elif d[:1] == b"4": res["4xx"] += 1
            elif d[:1] == b"5": res["5xx"] += 1
            else: res["other"] += 1
        elif c == b"t": res["4xx"] += 1
        elif c == b"r": res["5xx"] += 1
        else: res["other"] += 1
    except socket.timeout:
        res["hang"] += 1
    except Exception:
        res["dead"] += 1
for s in socks:
    try: s.sendall(pkt(b"Q"))
    except OSError: pass
    s.close()
print("sessions %d/%d, eom %s, slowest %.1f s" % (len(socks), n,
      " ".join("%s=%d" % kv for kv in res.items()), slow))
