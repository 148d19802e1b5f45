#!/usr/bin/python3
# hostile.py - hostile clients for the peer TLS port (tests/hostile/test_peer.sh).
# usage: hostile.py MODE HOST PORT [ARGS]; prints one result line:
#   "refused ..." (the server never confirmed a session) or "ACCEPTED ...".
#   nocert                    TLS 1.3 without a client certificate
#   cert KEY CERT             TLS 1.3 with this key/certificate (wrong pin)
#   tls12 KEY CERT            TLS 1.2 only (with the real peer's key)
#   garbage                   bytes that are not TLS, before any handshake
#   slowloris N SECONDS [HELD_S]  N connections sending 3 bytes of a record,
#                             stalled; waits SECONDS at most for the server
#                             to close them (HELD_S: its handshake timeout, 10)
#   flood N HOLD              N connections at once, held HOLD s, closed
#   oversize KEY CERT LEN     authenticate, then a frame header claiming LEN
import os, select, socket, ssl, struct, sys, time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
args = sys.argv[4:]

def tcp(timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    return s

def ctx(key=None, cert=None, maxv=ssl.TLSVersion.TLSv1_3, minv=ssl.TLSVersion.TLSv1_3):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = minv
    c.maximum_version = maxv
    if key:
        c.load_cert_chain(cert, key)
    return c

def read_frame(s, timeout=5):
    """the server's first frame (tls=ready) or None"""
    s.settimeout(timeout)
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            b = s.recv(4096)
            if not b:
                return None
            data += b
    except (ssl.SSLError, OSError) as e:
        return None
    return data[4:]

def tls_try(key=None, cert=None, **kw):
    s = tcp()
    try:
        t = ctx(key, cert, **kw).wrap_socket(s, server_hostname=None)
    except (ssl.SSLError, OSError) as e:
        print("refused at handshake: %s" % e); return
    f = read_frame(t)
    if f and b"ready" in f:
        print("ACCEPTED: server sent %r" % f)
    else:
        print("refused after handshake: no ready frame (%s)" % t.version())
    t.close()

if mode == "nocert":
    tls_try()
elif mode == "cert":
    tls_try(args[0], args[1])
elif mode == "tls12":
    tls_try(args[0], args[1], maxv=ssl.TLSVersion.TLSv1_2, minv=ssl.TLSVersion.TLSv1_2)
elif mode == "garbage":
    s = tcp()
    s.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(2000))
    s.settimeout(15)
    t0 = time.time(); got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b: break
            got += b
    except OSError as e:
        pass
    print("refused: server closed after %.1f s (%d bytes back)" % (time.time() - t0, len(got)))
elif mode == "slowloris":
    # Waits up to SECONDS for the server to close all N.  Then reports how
    # many it held in the handshake (open for at least half of HELD_S, the
    # server's handshake timeout: one refused at accept is closed at once)
    # and the most of those held at the same time, from the client's clock.
    n, secs = int(args[0]), float(args[1])
    held_s = float(args[2]) if len(args) > 2 else 10.0
    t0 = time.time(); socks = []; opened = {}
    for i in range(n):
        s = tcp(); s.sendall(b"\x16\x03\x01"); s.setblocking(False); socks.append(s)
        opened[s] = time.time() - t0
    print("opened %d in %.1f s" % (n, time.time() - t0), flush=True)
    closed = {}
    while time.time() - t0 < secs and len(closed) < n:
        r, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.5)
        for s in r:
            try:
                b = s.recv(4096)
            except OSError:
                b = b""
            if not b:
                closed[s] = time.time() - t0
    held = [s for s in closed if closed[s] - opened[s] >= held_s / 2]
    # +1 at open, -1 at close; at a tie the close comes first
    ev = sorted([(opened[s], 1) for s in held] + [(closed[s], -1) for s in held],
                key=lambda e: (e[0], e[1]))
    cur = most = 0
    for _, d in ev:
        cur += d; most = max(most, cur)
    print("held: %d, refused at accept: %d, most held at once: %d" %
          (len(held), len(closed) - len(held), most))
    print("held ports: %s" % " ".join(str(s.getsockname()[1]) for s in held))
    ts = sorted(closed.values())
    print("refused: %d of %d closed by the server%s" % (len(closed), n,
          " after %.1f..%.1f s" % (ts[0], ts[-1]) if ts else ""))
    for s in socks: s.close()
elif mode == "flood":
    n, hold = int(args[0]), float(args[1])
    socks = []; failed = 0
    for i in range(n):
        try:
            socks.append(tcp(3))
        except OSError:
            failed += 1
    time.sleep(hold)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(4096) == b"": closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print("flood: %d connected, %d connect errors, %d already closed by the server after %.1f s"
          % (len(socks), failed, closed, hold))
    for s in socks: s.close()
elif mode == "oversize":
    key, cert, ln = args[0], args[1], int(args[2])
    t = ctx(key, cert).wrap_socket(tcp(), server_hostname=None)
    f = read_frame(t)
    if not f or b"ready" not in f:
        print("NOT AUTHENTICATED: %r" % f); sys.exit(1)
    t.sendall(struct.pack(">I", ln) + b"v=1 " + b"x" * 1000)
    t.settimeout(15); t0 = time.time()
    try:
        while True:
            b = t.recv(4096)
            if not b: break
    except (ssl.SSLError, OSError):
        pass
    print("refused: authenticated, frame of %d bytes announced; server closed after %.1f s"
          % (ln, time.time() - t0))
else:
    sys.exit("unknown mode " + mode)
