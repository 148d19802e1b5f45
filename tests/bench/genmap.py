#!/usr/bin/python3
"""genmap.py N OWNER NODE > map -- an alias map source file with N active
aliases gen<i>@example.org -> OWNER, in milter-alias's map format
(common/aliasmap.c: a "#@" metadata line, then "address target")."""
import sys, time
n, owner, node = int(sys.argv[1]), sys.argv[2], sys.argv[3]
now = int(time.time()) - 3600
out = sys.stdout
out.write("# milter-alias map v1: managed by milter-alias-peer, change it with milter-aliasctl.\n"
          "# A \"#@\" line before each entry holds its metadata; disabled and deleted\n"
          "# aliases keep that line but have no entry.\n")
for i in range(n):
    a = "gen%06d@example.org" % i
    out.write("#@ address=%s target=%s owner=gen state=active created=%d node=%s updated=%d note=\n%s %s\n"
              % (a, owner, now, node, now, a, owner))
