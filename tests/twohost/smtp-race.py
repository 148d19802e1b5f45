#!/usr/bin/python3
"""smtp-race.py - one alias request by submission whose final "." is sent at
an agreed moment, so that two requests on two hosts reach their milters'
end-of-message at (nearly) the same time.

usage: smtp-race.py SERVER LOGIN PASSWORD SUBJECT AT_EPOCH [PORT]

Connects to SERVER:PORT (587), EHLO, AUTH PLAIN, MAIL FROM LOGIN@example.org,
RCPT TO makealias@example.org, DATA and the message, then sleeps until
AT_EPOCH (a float, seconds since the epoch) and sends ".".  Prints a
transcript in swaks's notation ("-> " client, "<- " server lines), so
tests/postfix/lib.sh's th_smtp_reply_code parses it.  Exit 0 if the
dialogue reached the end of data (whatever the reply), 1 otherwise.
"""
import base64
import socket
import sys
import time


def main():
    server, login, password, subject, at = sys.argv[1:6]
    port = int(sys.argv[6]) if len(sys.argv) > 6 else 587
    at = float(at)
    out = []

    def say(line):
        out.append("-> " + line)
        sock.sendall((line + "\r\n").encode())

    def reply():
        lines = []
        while True:
            line = f.readline()
            if not line:
                raise EOFError("connection closed")
            line = line.decode(errors="replace").rstrip("\r\n")
            out.append("<- " + line)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3])

    ok = 1
    try:
        sock = socket.create_connection((server, port), timeout=60)
        f = sock.makefile("rb")
        reply()
        say("EHLO client.example.test")
        reply()
        token = base64.b64encode(b"\0" + login.encode() + b"\0" + password.encode()).decode()
        say("AUTH PLAIN " + token)
        if reply() != 235:
            raise RuntimeError("AUTH refused")
        say("MAIL FROM:<%s@example.org>" % login)
        if reply() != 250:
            raise RuntimeError("MAIL refused")
        say("RCPT TO:<makealias@example.org>")
        if reply() != 250:
            raise RuntimeError("RCPT refused")
        say("DATA")
        if reply() != 354:
            raise RuntimeError("DATA refused")
        msg = ("From: %s@example.org\r\nTo: makealias@example.org\r\n"
               "Subject: %s\r\nDate: %s\r\n\r\nrace\r\n"
               % (login, subject, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())))
        for line in msg.split("\r\n")[:-1]:
            out.append("  > " + line)
        sock.sendall(msg.encode())
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        say(".")
        reply()
        ok = 0
        say("QUIT")
        reply()
    except Exception as e:  # report, the test decides
        out.append("*** %s" % e)
    print("\n".join(out))
    return ok


if __name__ == "__main__":
    sys.exit(main())
