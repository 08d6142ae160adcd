#!/bin/sh
# Rebuilds spawnwatch.bpf.o from spawnwatch.bpf.c: `sh sensor/src/source/ebpf/build.sh`.
#
# The object is committed, so building spawnwatch needs no clang; CI runs this with
# `--check` and fails when the committed object is not what the source builds to. The
# flags are pinned, DWARF is stripped (BTF stays: CO-RE needs it) and the source is
# compiled by its relative name, so the bytes depend on the compiler's version alone:
# Debian 12's clang-19 (`apt-get install clang-19 llvm-19 libbpf-dev`).
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
STRIP=${STRIP:-llvm-strip-19}
out=spawnwatch.bpf.o
if [ "${1:-}" = --check ]; then
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
fi
"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Werror \
    -fno-ident -fdebug-prefix-map="$PWD"=. \
    -c spawnwatch.bpf.c -o "$out"
"$STRIP" --strip-debug "$out"
if [ "${1:-}" = --check ]; then
    if ! cmp -s "$out" spawnwatch.bpf.o; then
        echo "spawnwatch.bpf.o is not what spawnwatch.bpf.c builds to: run sh $0 and commit the object" >&2
        exit 1
    fi
    echo "spawnwatch.bpf.o matches spawnwatch.bpf.c"
fi
