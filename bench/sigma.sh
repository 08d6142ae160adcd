#!/usr/bin/env bash
# Sigma rules in spawnwatch, side by side with its built-in rules (interleaved rounds,
# medians: bench/interleave.py):
#   1. the ../shared/perf corpus with all loadable Windows process-creation rules vs the
#      built-in rules (goal: at most 2x);
#   2. the same over ../shared/evtx-attack-samples;
#   3. start-up: loading the Sigma rules (read, convert, check, compile) vs the built-in;
#   4. peak memory of the corpus replay with the Sigma rules (goal < 64 MB);
#   5. the engine alone (criterion): converting and compiling, compiling only, one event;
#   6. instructions of loading the Sigma rules, by phase (callgrind, when valgrind is
#      installed): unlike times, they do not depend on what else the machine runs.
#
#   bench/sigma.sh [--runs N] [--no-criterion]
#
# Environment as bench/run.sh: CORPUS, PERF_DIR, EVTX_DIR, SIGMA_DIR (default
# ../shared/sigma/rules/windows/process_creation), BENCH_DIR, CARGO_TARGET_DIR.
# The reference hunters are not installed here; the issue's figures for them on this
# machine are quoted in the README beside these.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=7
CRITERION=1
while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=${2:?--runs N}; shift ;;
        --no-criterion) CRITERION=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

PERF_DIR=${PERF_DIR:-$ROOT/../shared/perf}
EVTX_DIR=${EVTX_DIR:-$ROOT/../shared/evtx-attack-samples}
SIGMA_DIR=${SIGMA_DIR:-$ROOT/../shared/sigma/rules/windows/process_creation}
BENCH_DIR=${BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spawnwatch-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/spawnwatch-sigma-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
mkdir -p "$BENCH_DIR"

cargo build --release -p spawnwatch >&2
BIN=$TARGET/release/spawnwatch
CORPUS=${CORPUS:-$BENCH_DIR/corpus.jsonl}
if [ ! -s "$CORPUS" ]; then
    "$PERF_DIR/make-corpus.sh" "$CORPUS.part" >&2
    mv "$CORPUS.part" "$CORPUS"
fi
cat "$CORPUS" > /dev/null
find "$EVTX_DIR" "$SIGMA_DIR" -type f -exec cat {} + > /dev/null

q() { printf '%q' "$1"; }
# jget FILE EXPR: a Python expression over the interleave.py JSON's results `r`.
jget() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(eval(sys.argv[2]))' "$1" "$2"; }
# compare LABEL NAME1 CMD1 NAME2 CMD2: interleaved rounds, medians and the ratio.
compare() {
    local label=$1 json=$OUT/$2.json
    python3 bench/interleave.py --runs "$RUNS" --warmup 1 --json "$json" "$2" "$3" "$4" "$5" >&2
    printf '\n%s (medians of %s interleaved rounds)\n  $ %s\n  $ %s\n' "$label" "$RUNS" "$3" "$5"
    jget "$json" '"   %-10s %.3f s (cpu %.3f s)\n   %-10s %.3f s (cpu %.3f s)\n   ratio %s/%s: %.2f (median of per-round ratios)" % ("'"$2"'", r["'"$2"'"]["median"], r["'"$2"'"]["cpu_median"], "'"$4"'", r["'"$4"'"]["median"], r["'"$4"'"]["cpu_median"], "'"$4"'", "'"$2"'", r["'"$4"'"]["ratio_to_first"])'
}

{
    printf 'spawnwatch Sigma bench  %s  %s\n' "$(date -u +%FT%TZ)" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    printf 'host: %s cores, load at start:%s\n' "$(nproc)" "$(uptime | sed 's/.*load average://')"
    printf 'Sigma rules: %s\n' "$("$BIN" check "$SIGMA_DIR" 2>/dev/null | tail -1)"

    compare "1. the perf corpus ($(wc -l < "$CORPUS") lines)" \
        built-in "$(q "$BIN") replay -o /dev/null $(q "$CORPUS")" \
        sigma "$(q "$BIN") replay -r $(q "$SIGMA_DIR") -o /dev/null $(q "$CORPUS")"
    compare "2. evtx-attack-samples ($(find "$EVTX_DIR" -name '*.evtx' | wc -l) EVTX files)" \
        built-in "$(q "$BIN") replay -o /dev/null $(q "$EVTX_DIR")" \
        sigma "$(q "$BIN") replay -r $(q "$SIGMA_DIR") -o /dev/null $(q "$EVTX_DIR")"
    compare "3. start-up: load the rules and list them" \
        built-in "$(q "$BIN") rules" \
        sigma "$(q "$BIN") rules $(q "$SIGMA_DIR")"

    printf '\n4. peak RSS of the whole process (/usr/bin/time -f %%M)\n'
    for rules in "" "-r $(q "$SIGMA_DIR")"; do
        # shellcheck disable=SC2086
        kb=$(/usr/bin/time -f %M "$BIN" replay $rules -o /dev/null "$CORPUS" 2>&1 >/dev/null | tail -1)
        printf '   replay %-12s %.1f MB\n' "${rules:+-r SIGMA}" "$(echo "$kb / 1024" | bc -l)"
    done

    if [ "$CRITERION" = 1 ]; then
        printf '\n5. the engine alone: cargo bench -p spawnwatch-sigma (criterion medians)\n'
        cargo bench -p spawnwatch-sigma --bench sigma 2>/dev/null \
            | awk '/time:/ { sub(/^ +/, ""); if ($1 == "time:") print "   " prev "  " $0; else print "   " $0 } { if ($0 !~ /^ /) prev = $1 }'
    fi
    if command -v valgrind > /dev/null && command -v callgrind_annotate > /dev/null; then
        printf '\n6. instructions of loading the Sigma rules (callgrind, replay of no input)\n'
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
            "$BIN" replay -r "$SIGMA_DIR" -o /dev/null /dev/null > /dev/null 2>&1
        # Inclusive counts; a function shows on several lines (its inlined parts too):
        # its whole is the largest. Conversion runs on a thread per core, the rest on one.
        callgrind_annotate --inclusive=yes "$OUT/callgrind.out" 2> /dev/null | awk '
            function keep(key, n) { if (n + 0 > max[key] + 0) max[key] = n + 0 }
            { gsub(",", "", $1) }
            /PROGRAM TOTALS/ { keep("total", $1) }
            /:sigma::convert_file( |$)/ { keep("convert", $1) }
            /:sigma::yaml::load( |$)/ { keep("yaml", $1) }
            /:spawnwatch::rules::load_or_report( |$)/ { keep("main", $1) }
            /:dsl::compile::RuleSet::compile( |$)/ { keep("compile", $1) }
            END {
                f = "   %-60s %5.0f M\n"
                printf f, "whole run", max["total"] / 1e6
                printf f, "read YAML and convert (sigma::convert_file, all threads)", max["convert"] / 1e6
                printf f, "  of which YAML (sigma::yaml::load)", max["yaml"] / 1e6
                printf f, "main thread: read, check, compile (rules::load_or_report)", max["main"] / 1e6
                printf f, "  of which compiling (RuleSet::compile)", max["compile"] / 1e6
            }'
    fi
    printf 'load at end:%s\n' "$(uptime | sed 's/.*load average://')"
} | tee "$OUT/table.txt"
