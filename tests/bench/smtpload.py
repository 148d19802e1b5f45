#!/usr/bin/python3
"""smtpload.py -- load and latency driver for make bench.

  smtpload.py tput HOST PORT PROCS MSGS [--auth LOGIN:PASS] [--per-conn N]
        PROCS processes send MSGS messages in total (to sink@example.org),
        N messages per connection (default 10), AUTH PLAIN if --auth.
        Prints "msgs SECONDS" and exits 1 if any reply was not 2xx/3xx.
  smtpload.py latency HOST PORT LOGIN:PASS PREFIX COUNT [START]
        COUNT alias requests "new PREFIXi" to makealias@example.org, one per
        connection, one after the other; prints each time from sending the
        final "." to reading the reply, as "ms CODE" lines.
  smtpload.py milterconns SOCKET COUNT HOLD_SECONDS
        opens COUNT milter connections directly on SOCKET (unix path), each
        negotiated, CONNECT, HELO, and MAIL with {auth_authen}, and holds
        them HOLD_SECONDS; prints how many got a reply to MAIL.
stdlib only.
"""
import base64, os, socket, struct, sys, time


class Smtp:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=60)
        self.f = self.s.makefile("rb")
        self.reply()

    def reply(self):
        while True:
            line = self.f.readline()
            if not line:
                raise IOError("connection closed")
            if line[3:4] != b"-":
                return int(line[:3]), line

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.cmd("QUIT")
        except Exception:
            pass
        self.s.close()


def auth(c, cred):
    login, pw = cred.split(":", 1)
    tok = base64.b64encode(b"\0" + login.encode() + b"\0" + pw.encode()).decode()
    code, line = c.cmd("AUTH PLAIN " + tok)
    if code != 235:
        raise IOError("AUTH: %r" % line)


BODY = ("Subject: bench\r\nFrom: <%s>\r\nTo: <sink@example.org>\r\n\r\n"
        + "ordinary mail, not a request\r\n" * 20 + ".\r\n").encode()


def tput_worker(host, port, n, cred, per):
    sender = (cred.split(":")[0] + "@example.org") if cred else "bench@example.net"
    body = BODY.replace(b"%s", sender.encode())
    bad = 0
    while n > 0:
        c = Smtp(host, port)
        c.cmd("EHLO bench.example.test")
        if cred:
            auth(c, cred)
        k = min(per, n)
        for _ in range(k):
            for cmd in ("MAIL FROM:<%s>" % sender, "RCPT TO:<sink@example.org>", "DATA"):
                code, line = c.cmd(cmd)
                if code >= 400:
                    bad += 1
            c.s.sendall(body)
            code, line = c.reply()
            if code >= 400:
                bad += 1
        c.close()
        n -= k
    os._exit(1 if bad else 0)


def tput(a):
    host, port, procs, msgs = a[0], int(a[1]), int(a[2]), int(a[3])
    cred = None
    per = 10
    i = 4
    while i < len(a):
        if a[i] == "--auth":
            cred = a[i + 1]
        elif a[i] == "--per-conn":
            per = int(a[i + 1])
        i += 2
    t0 = time.monotonic()
    pids = []
    for p in range(procs):
        share = msgs // procs + (1 if p < msgs % procs else 0)
        pid = os.fork()
        if pid == 0:
            try:
                tput_worker(host, port, share, cred, per)
            except Exception as e:
                sys.stderr.write("smtpload: %s\n" % e)
                os._exit(2)
        pids.append(pid)
    rc = 0
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        rc |= os.waitstatus_to_exitcode(st)
    print("%d %.4f" % (msgs, time.monotonic() - t0))
    return 1 if rc else 0


def latency(a):
    host, port, cred, prefix, count = a[0], int(a[1]), a[2], a[3], int(a[4])
    start = int(a[5]) if len(a) > 5 else 0
    login = cred.split(":")[0]
    # BENCH_LAT_GAP seconds between requests (0: back to back), so that one
    # request does not share the machine with the confirmations of the last
    gap = float(os.environ.get("BENCH_LAT_GAP", "0"))
    for i in range(start, start + count):
        if i > start and gap > 0:
            time.sleep(gap)
        c = Smtp(host, port)
        c.cmd("EHLO bench.example.test")
        auth(c, cred)
        c.cmd("MAIL FROM:<%s@example.org>" % login)
        c.cmd("RCPT TO:<makealias@example.org>")
        c.cmd("DATA")
        c.s.sendall(("Subject: new %s%d\r\nFrom: <%s@example.org>\r\n"
                     "To: <makealias@example.org>\r\n\r\nbench\r\n"
                     % (prefix, i, login)).encode())
        t0 = time.monotonic()
        c.s.sendall(b".\r\n")
        code, line = c.reply()
        dt = (time.monotonic() - t0) * 1000.0
        print("%.2f %d" % (dt, code), flush=True)
        c.close()
    return 0


def mpkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def mread(s):
    hdr = b""
    while len(hdr) < 4:
        d = s.recv(4 - len(hdr))
        if not d:
            raise IOError("milter closed")
        hdr += d
    n = struct.unpack(">I", hdr)[0]
    data = b""
    while len(data) < n:
        d = s.recv(n - len(data))
        if not d:
            raise IOError("milter closed")
        data += d
    return data


def milterconns(a):
    path, count, hold = a[0], int(a[1]), float(a[2])
    if path.startswith("unix:"):
        path = path[5:]
    socks, ok = [], 0
    for i in range(count):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(path)
        s.sendall(mpkt(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF)))
        r = mread(s)
        proto = struct.unpack(">I", r[9:13])[0] if len(r) >= 13 else 0
        s.sendall(mpkt(b"D", b"C" + b"j\0bench.example.test\0"))
        s.sendall(mpkt(b"C", b"client.example.test\0" + b"4" +
                       struct.pack(">H", 12345) + b"198.51.100.9\0"))
        if not proto & 0x1000:      # SMFIP_NR_CONN
            mread(s)
        s.sendall(mpkt(b"H", b"client.example.test\0"))
        if not proto & 0x2000 and not proto & 0x02:   # NR_HELO / NOHELO
            mread(s)
        s.sendall(mpkt(b"D", b"M" + b"{auth_authen}\0alice\0"))
        s.sendall(mpkt(b"M", b"<alice@example.org>\0"))
        if not proto & 0x4000 and not proto & 0x04:   # NR_MAIL / NOMAIL
            mread(s)
        ok += 1
        socks.append(s)
    print(ok, flush=True)
    time.sleep(hold)
    for s in socks:
        try:
            s.sendall(mpkt(b"Q"))
        except Exception:
            pass
        s.close()
    return 0


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    sys.exit({"tput": tput, "latency": latency, "milterconns": milterconns}[mode](args))
