#!/usr/bin/env bash
# spawnwatch benchmarks: replay throughput against grep and evtx_dump, pipeline
# throughput with 1 and 2 workers, optional rule-engine benches and rule-set memory, live footprint.
#
#   bench/run.sh [--engine] [--no-live] [--no-evtx] [--runs N] [--events N]
#
# Run from anywhere; paths are relative to the workspace root. Builds the release
# binary with cargo (into $CARGO_TARGET_DIR, default <workspace>/target). Corpora and
# the evtx_dump install live in $BENCH_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/
# spawnwatch-bench) and are made only when missing. Timings are interleaved rounds
# (bench/interleave.py); medians and per-round ratios are printed, never one run.
#
# Environment: CORPUS (a ready perf corpus, else made with
# ../shared/perf/make-corpus.sh), PERF_DIR (where make-corpus.sh lives),
# EVTX_DIR (default ../shared/evtx-attack-samples), BENCH_DIR, CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"

RUNS=7
EVENTS=2000000
ENGINE=0
LIVE=1
EVTX=1
while [ $# -gt 0 ]; do
    case $1 in
        --engine) ENGINE=1 ;;
        --no-live) LIVE=0 ;;
        --no-evtx) EVTX=0 ;;
        --runs) RUNS=${2:?--runs N}; shift ;;
        --events) EVENTS=${2:?--events N}; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$RUNS" -ge 5 ] || { echo "--runs must be >= 5" >&2; exit 2; }

PERF_DIR=${PERF_DIR:-$ROOT/../shared/perf}
EVTX_DIR=${EVTX_DIR:-$ROOT/../shared/evtx-attack-samples}
BENCH_DIR=${BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spawnwatch-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$BENCH_DIR"
OUT=$(mktemp -d "${TMPDIR:-/tmp}/spawnwatch-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
say() { printf '\n== %s\n' "$*" >&2; }

# --- build ------------------------------------------------------------------------
say "building (cargo build --release -p spawnwatch, target $TARGET)"
cargo build --release -p spawnwatch >&2
BIN=$TARGET/release/spawnwatch
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

# --- corpora ----------------------------------------------------------------------
CORPUS=${CORPUS:-$BENCH_DIR/corpus.jsonl}
if [ ! -s "$CORPUS" ]; then
    say "making the perf corpus at $CORPUS"
    "$PERF_DIR/make-corpus.sh" "$CORPUS.part" >&2
    mv "$CORPUS.part" "$CORPUS"
fi
EV=$BENCH_DIR/events-$EVENTS.jsonl
if [ ! -s "$EV" ] || [ "$BENCH/gen_events.py" -nt "$EV" ]; then
    say "generating $EVENTS event lines at $EV"
    python3 "$BENCH/gen_events.py" "$EVENTS" "$EV.part"
    mv "$EV.part" "$EV"
fi
mb() { python3 -c 'import os,sys; print("%.1f" % (sum(os.path.getsize(p) for p in sys.argv[1:]) / 1e6))' "$@"; }

q() { printf '%q' "$1"; }
TABLE=$OUT/table.txt
row() { printf '%-44s %s\n' "$1" "$2" >> "$TABLE"; }
cmdline() { printf '  $ %s\n' "$1" >> "$TABLE"; }
# jget FILE EXPR: a Python expression over the interleave.py JSON `j`.
jget() { python3 -c 'import json,re,sys; j=json.load(open(sys.argv[1])); r=j["results"]; print(eval(sys.argv[2]))' "$1" "$2"; }

printf 'spawnwatch bench  %s  %s\n' "$(date -u +%FT%TZ)" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" > "$TABLE"
printf 'host: %s cores, load at start:%s\n' "$(nproc)" "$(uptime | sed 's/.*load average://')" >> "$TABLE"

# --- 1. perf corpus replay vs grep ----------------------------------------------
say "1. replay of the perf corpus vs grep ($RUNS interleaved rounds + 1 warm-up)"
cat "$CORPUS" > /dev/null   # page cache warm
C1="$(q "$BIN") replay --output /dev/null $(q "$CORPUS")"
C2="grep -c '\"EventID\":1,' $(q "$CORPUS") || true"   # stdout must not be /dev/null
python3 "$BENCH/interleave.py" --runs "$RUNS" --warmup 1 --json "$OUT/1.json" \
    spawnwatch "$C1" grep "$C2" >&2
CMB=$(mb "$CORPUS")
{
    echo
    echo "1. perf corpus replay ($CMB MB, $(wc -l < "$CORPUS") lines), medians of $RUNS interleaved runs"
} >> "$TABLE"
cmdline "$C1"; cmdline "$C2"
row "   spawnwatch replay" "$(jget "$OUT/1.json" '"%.3f s  %.0f MB/s  cpu %.3f s" % (r["spawnwatch"]["median"], '"$CMB"'/r["spawnwatch"]["median"], r["spawnwatch"]["cpu_median"])')"
row "   grep -c" "$(jget "$OUT/1.json" '"%.3f s  %.0f MB/s  cpu %.3f s  (count %s)" % (r["grep"]["median"], '"$CMB"'/r["grep"]["median"], r["grep"]["cpu_median"], r["grep"]["stdout"].strip())')"
row "   ratio spawnwatch/grep (goal <= 2.0)" "$(jget "$OUT/1.json" '"%.2f  (median of per-round ratios; of medians %.2f)" % (1/r["grep"]["ratio_to_first"], r["spawnwatch"]["median"]/r["grep"]["median"])')"
row "   spawnwatch summary (last run)" "$(jget "$OUT/1.json" '" / ".join(l.strip().replace("spawnwatch: ", "") for l in r["spawnwatch"]["stderr"].splitlines() if "events" in l)')"

# --- 2. pipeline throughput, 1 vs 2 workers ----------------------------------------
say "2. pipeline throughput on $EVENTS process events, --workers 1 vs 2"
cat "$EV" > /dev/null
W1="$(q "$BIN") replay --workers 1 --output /dev/null $(q "$EV")"
W2="$(q "$BIN") replay --workers 2 --output /dev/null $(q "$EV")"
python3 "$BENCH/interleave.py" --runs "$RUNS" --warmup 1 --json "$OUT/2.json" \
    workers-1 "$W1" workers-2 "$W2" >&2
rate() {  # rate JSONFILE NAME: events/s from wall time and from spawnwatch's summaries
    jget "$1" '(lambda d: (lambda ev, own: "%.0f ev/s wall, %.0f ev/s own  (%.3f s, cpu %.3f s)" % (ev/d["median"], own, d["median"], d["cpu_median"]))(int(re.search(r"(\d+) events read", d["stderr"]).group(1)), sorted(float(re.search(r"([\d.]+) events/s", e).group(1)) for e in d["stderrs"])[len(d["stderrs"])//2]))(r["'"$2"'"])'
}
{
    echo
    echo "2. pipeline, $EVENTS spawnwatch event lines ($(mb "$EV") MB, bench/gen_events.py), medians of $RUNS interleaved runs"
    echo "   (wall = lines / median wall time incl. start-up; own = median of spawnwatch's own summaries)"
} >> "$TABLE"
cmdline "$W1"; cmdline "$W2"
row "   --workers 1" "$(rate "$OUT/2.json" workers-1)"
row "   --workers 2" "$(rate "$OUT/2.json" workers-2)"
row "   speed-up 2 vs 1 workers (goal > 1)" "$(jget "$OUT/2.json" '"%.2fx  (median of per-round ratios)" % (1/r["workers-2"]["ratio_to_first"])')"
row "   alerts" "$(jget "$OUT/2.json" '[l.strip() for l in r["workers-1"]["stderr"].splitlines() if "alerts:" in l][0][:90]')"

# --- 3. EVTX: spawnwatch vs evtx_dump --------------------------------------------------
if [ "$EVTX" = 1 ]; then
    say "3. EVTX replay vs evtx_dump"
    DUMP=$BENCH_DIR/evtxdump/bin/evtx_dump
    if [ ! -x "$DUMP" ]; then
        say "installing evtx_dump (cargo install evtx --root $BENCH_DIR/evtxdump)"
        cargo install evtx --locked --root "$BENCH_DIR/evtxdump" >&2 \
            || cargo install evtx --root "$BENCH_DIR/evtxdump" >&2
    fi
    mapfile -d '' FILES < <(find "$EVTX_DIR" -type f -name '*.evtx' -print0 | sort -z)
    find "$EVTX_DIR" -type f -exec cat {} + > /dev/null
    EMB=$(mb "${FILES[@]}")
    E1="$(q "$BIN") replay --output /dev/null $(q "$EVTX_DIR")"
    E2="find $(q "$EVTX_DIR") -type f -name '*.evtx' -print0 | xargs -0 -n1 $(q "$DUMP") -t 2 -o jsonl > /dev/null 2>&1 || true"
    # Also spawnwatch started once per file, like evtx_dump (which takes one file).
    E3="find $(q "$EVTX_DIR") -type f -name '*.evtx' -print0 | xargs -0 -n1 $(q "$BIN") replay --output /dev/null > /dev/null 2>&1 || true"
    python3 "$BENCH/interleave.py" --runs "$RUNS" --warmup 1 --json "$OUT/3.json" \
        spawnwatch "$E1" evtx_dump "$E2" spawnwatch-x1 "$E3" >&2
    {
        echo
        echo "3. EVTX, ${#FILES[@]} files, $EMB MB, medians of $RUNS interleaved runs"
    } >> "$TABLE"
    cmdline "$E1"; cmdline "$E2"; cmdline "$E3"
    row "   spawnwatch replay" "$(jget "$OUT/3.json" '"%.3f s  %.1f MB/s  cpu %.3f s" % (r["spawnwatch"]["median"], '"$EMB"'/r["spawnwatch"]["median"], r["spawnwatch"]["cpu_median"])')"
    row "   evtx_dump -t 2 (one process per file)" "$(jget "$OUT/3.json" '"%.3f s  %.1f MB/s  cpu %.3f s" % (r["evtx_dump"]["median"], '"$EMB"'/r["evtx_dump"]["median"], r["evtx_dump"]["cpu_median"])')"
    row "   spawnwatch, one process per file" "$(jget "$OUT/3.json" '"%.3f s  %.1f MB/s  cpu %.3f s" % (r["spawnwatch-x1"]["median"], '"$EMB"'/r["spawnwatch-x1"]["median"], r["spawnwatch-x1"]["cpu_median"])')"
    row "   ratio spawnwatch/evtx_dump time" "$(jget "$OUT/3.json" '"%.2f one process; %.2f both per file (median of per-round ratios)" % (1/r["evtx_dump"]["ratio_to_first"], r["spawnwatch-x1"]["ratio_to_first"]/r["evtx_dump"]["ratio_to_first"])')"
    row "   spawnwatch summary (last run)" "$(jget "$OUT/3.json" '" / ".join(l.strip().replace("spawnwatch: ", "") for l in r["spawnwatch"]["stderr"].splitlines() if "events" in l)[:160]')"
fi

# --- 4. rule engine (criterion) ----------------------------------------------------
if [ "$ENGINE" = 1 ]; then
    say "4. cargo bench -p spawnwatch-dsl --bench eval"
    cargo bench -p spawnwatch-dsl --bench eval 2>&1 | tee "$OUT/4.txt" >&2
    {
        echo
        echo "4. rule engine: cargo bench -p spawnwatch-dsl --bench eval (criterion; see target/criterion)"
        # criterion prints "name\n  time: [lo mid hi]" or "name  time: [...]" when short.
        awk '/time:/ { sub(/^ +/, ""); if ($1 == "time:") print "   " prev "  " $0; else print "   " $0 } { if ($0 !~ /^ /) prev = $1 }' "$OUT/4.txt"
    } >> "$TABLE"

    # The same 1,000 rules as the criterion bench's generated_rules (dsl/benches/eval.rs).
    GEN=$OUT/generated-1000.rules
    python3 - "$GEN" <<'PY'
import sys
tests = ['command_line contains "-flag{i}"', 'image_path == "C:\\\\Program Files\\\\vendor{i}\\\\*.exe"',
         'command_line regex "tool{i}\\s+--(x|y)"', 'user startswith "CORP\\\\svc{i}"']
with open(sys.argv[1], "w") as out:
    for i in range(1000):
        test = tests[i % 4].format(i=i)
        out.write(f'rule GEN-{i} {{ title: "generated {i}" severity: low attack: T1059\n'
                  f'  condition: parent_exe in ["srv{i}.exe", "w3wp.exe", "httpd.exe"] and exe == "child{i}.exe" and {test} }}\n')
PY
    peak_mb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.1f MB", $1 / 1024 }'; }
    printf '\n4b. memory, peak RSS of the whole process (/usr/bin/time -f %%M)\n  $ %s rules %s\n' \
        "$BIN" "$GEN" >> "$TABLE"
    row "   1,000 generated rules (goal < 50 MB)" "$(peak_mb "$BIN" rules "$GEN")"
    row "   the built-in rules" "$(peak_mb "$BIN" rules)"
fi

# --- 5. live footprint ---------------------------------------------------------------
if [ "$LIVE" = 1 ]; then
    if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
        printf '\n5. live footprint: skipped (needs Linux and root)\n' >> "$TABLE"
    else
        say "5. live footprint (spawnwatch run -o /dev/null)"
        HZ=$(getconf CLK_TCK)
        ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
        rss() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
        hwm() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
        idle_cpu() {  # idle_cpu PID SECS: % of one core over SECS
            local a b; a=$(ticks "$1"); sleep "$2"; b=$(ticks "$1")
            python3 -c "print('%.2f' % (100.0 * ($b - $a) / $HZ / $2))"
        }
        footprint() {  # footprint LABEL: start, wait for seeding, sample, stop
            local label=$1 pid err=$OUT/live-$1.err
            "$BIN" run -o /dev/null --stats-interval 3600 2> "$err" &
            pid=$!
            for _ in $(seq 100); do grep -q 'running:' "$err" 2>/dev/null && break; sleep 0.1; done
            sleep 1
            local seeded cpu r
            seeded=$(sed -n 's/.*running: \([0-9]*\) processes.*/\1/p' "$err")
            r=$(rss "$pid"); cpu=$(idle_cpu "$pid" 10)
            local peak; peak=$(hwm "$pid")
            kill -INT "$pid"; wait "$pid" || true
            # The final stats line (stderr) has the table size at the stop.
            local entries
            entries=$(sed -n 's/.*table_entries=\([0-9]*\).*/\1/p' "$err" | tail -1)
            row "   $label" "seeded ${seeded:-?}, table ${entries:-?} at stop; idle CPU ${cpu}% of a core (10 s); RSS $r MB (peak $peak MB)"
        }
        CMD5="$(q "$BIN") run -o /dev/null --stats-interval 3600"
        printf '\n5. live footprint (proc connector), %s host processes\n' "$(ls -d /proc/[0-9]* | wc -l)" >> "$TABLE"
        cmdline "$CMD5"
        footprint "host only"
        SLEEPS=()
        for _ in $(seq 1000); do sleep 120 & SLEEPS+=($!); done
        footprint "+1000 sleep processes"
        kill "${SLEEPS[@]}" 2>/dev/null || true
        wait "${SLEEPS[@]}" 2>/dev/null || true
        say "5b. live alert latency (bench/latency.py)"
        CMD5B="python3 bench/latency.py --binary $(q "$BIN") --count 300"
        printf '\n5b. live alert latency, 300 marker processes 20 ms apart\n' >> "$TABLE"
        cmdline "$CMD5B"
        python3 "$BENCH/latency.py" --binary "$BIN" --count 300 2>&1 | sed 's/^/   /' >> "$TABLE"
    fi
fi

printf 'load at end:%s\n' "$(uptime | sed 's/.*load average://')" >> "$TABLE"
echo
cat "$TABLE"
