#!/usr/bin/env python3
"""Time shell commands side by side, interleaved, for a noisy shared machine.

    python3 bench/interleave.py [--runs N] [--warmup W] [--json OUT] NAME CMD [NAME CMD ...]

Each round runs every command once (the starting command rotates from round to round,
so neither always runs on a cache or a CPU the other just warmed); W warm-up rounds are
not counted. Per command: median / min / max wall time and median CPU time (user+sys of
the command and its children, from wait4). Per round: each command's time divided by the
first command's in the same round; the median of those is the ratio reported, which
cancels much of the load that drifts across rounds.

Commands run under `bash -c`. Their stdout goes to a temporary file, never straight to
/dev/null: GNU grep notices a /dev/null stdout and stops at the first match, as if -q.
The first 200 bytes of stdout (`stdout`) and every counted run's stderr (`stderrs`; the
last one also as `stderr`) are in the JSON, for summary lines. A non-zero exit is
reported in the JSON (`exit_codes`) but does not stop the timing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(cmd):
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(["bash", "-c", cmd], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
        out.seek(0)
        head = out.read(200).decode("utf-8", "replace")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode, text, head


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("pairs", nargs="+", help="NAME CMD [NAME CMD ...]")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give NAME CMD pairs")
    names = args.pairs[0::2]
    cmds = args.pairs[1::2]
    n = len(cmds)
    res = {name: {"cmd": cmd, "wall": [], "cpu": [], "maxrss_kb": [], "exit_codes": [], "stderr": "", "stderrs": []}
           for name, cmd in zip(names, cmds)}
    rounds = []
    for r in range(args.warmup + args.runs):
        counted = r >= args.warmup
        order = [(r + k) % n for k in range(n)]
        walls = [None] * n
        for i in order:
            wall, cpu, rss, code, err, head = run_once(cmds[i])
            walls[i] = wall
            tag = "warmup" if not counted else "run %d/%d" % (r - args.warmup + 1, args.runs)
            print("  [%s] %-14s %8.3f s  (cpu %.3f s)%s" % (
                tag, names[i], wall, cpu, "" if code == 0 else "  exit %d" % code),
                file=sys.stderr, flush=True)
            if counted:
                d = res[names[i]]
                d["wall"].append(wall)
                d["cpu"].append(cpu)
                d["maxrss_kb"].append(rss)
                d["exit_codes"].append(code)
                d["stderr"] = err
                d["stderrs"].append(err)
                d["stdout"] = head
        if counted:
            rounds.append(walls)
    for i, name in enumerate(names):
        d = res[name]
        d["median"] = statistics.median(d["wall"])
        d["min"] = min(d["wall"])
        d["max"] = max(d["wall"])
        d["cpu_median"] = statistics.median(d["cpu"])
        d["ratio_to_first"] = statistics.median(w[i] / w[0] for w in rounds)
    out = {"names": names, "runs": args.runs, "warmup": args.warmup, "results": res,
           "rounds": rounds}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    for name in names:
        d = res[name]
        print("%-14s median %8.3f s  [min %.3f, max %.3f]  cpu %.3f s  x%.2f of %s" % (
            name, d["median"], d["min"], d["max"], d["cpu_median"], d["ratio_to_first"], names[0]))


if __name__ == "__main__":
    main()
