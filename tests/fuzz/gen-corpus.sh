#!/bin/bash
# gen-corpus.sh - regenerate the seeds of tests/fuzz/corpus that are made
# with the project's encoders (frames, journal lines, rendered maps):
# builds gen_corpus.c against common/ and runs it.  The hand-written seeds
# (subjects, configuration files, hand-edited maps) are not touched.
# FUZZ_CONFIG_H: directory holding config.h [top of the source tree].
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
confdir=${FUZZ_CONFIG_H:-$top}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2046
${CC:-cc} -g -Wall -Wextra -I"$confdir" -I"$top/common" $(pkg-config --cflags gnutls) \
	-o "$tmp/gen_corpus" "$here/gen_corpus.c" "$top/common/aliasmap.c" \
	"$top/common/fsutil.c" "$top/common/msg.c" "$top/common/request.c" \
	"$top/common/util.c" $(pkg-config --libs gnutls)
mkdir -p "$here/corpus/wire" "$here/corpus/ctl" "$here/corpus/map"
"$tmp/gen_corpus" "$here/corpus"
