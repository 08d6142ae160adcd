#!/usr/bin/env python3
"""A burst of short `id` commands under a fake web server, seen by each Linux live
source (root): how many are seen at all, how many whole (with image and argv), what
was dropped, and the sensor's CPU time per exec.

A copy of bash named `nginx` runs `/usr/bin/id` N times in a loop while
`spawnwatch run --source SOURCE` watches; two rules count the `id` processes under it
(storm suppression's summaries included), one of them only those seen with
`image_path` and `command_line`. The sensor's CPU time (user + system, from
/proc/PID/stat) is taken from just before the burst to the end-of-burst marker's
alert, so start-up and shutdown are left out, and divided by the execs the source
reported (the host's other processes included). With bpftool, the time the kernel
spent in the eBPF programs per exec is given too (kernel.bpf_stats_enabled is turned
on for the run): that cost is charged to the processes that exec, not to the sensor. Sources alternate round by round;
medians are printed per source.

    sudo python3 bench/burst.py [--binary target/release/spawnwatch] [--count 20000]
                                [--rounds 3] [--sources ebpf,proc-connector]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# FAKE: this round's fake web server, by its path: the host may run other bursts.
RULES = """rule BURST { title: "id under the fake web server" severity: low attack: T1033
  condition: exe == "id" and ancestor[..2].image_path == "FAKE" }
rule WHOLE { title: "id seen with its image and argv" severity: low attack: T1033
  condition: image_path == "/usr/bin/id" and command_line == "/usr/bin/id"
             and ancestor[..2].image_path == "FAKE" }
rule DONE { title: "burst finished" severity: low attack: T1033
  condition: command_line contains "burst-finished-marker" }
"""

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


PROGRAMS = ("on_exec", "on_fork", "on_exit")


def bpf_runs():
    """Per program of spawnwatch's eBPF programs: (time spent in it so far in ns, times
    run), while bpf_stats is on; {} without bpftool or without the programs."""
    if not shutil.which("bpftool"):
        return {}
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], check=True,
                                      capture_output=True, text=True).stdout)
    return {p["name"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in progs if p.get("name") in PROGRAMS}


def bpf_ns_per_exec(before, after):
    """The three programs' time per run of the exec program, over an interval."""
    if not after:
        return 0
    spent = sum(after[n][0] - before.get(n, (0, 0))[0] for n in after)
    execs = after.get("on_exec", (0, 0))[1] - before.get("on_exec", (0, 0))[1]
    return spent / execs if execs else 0


def lines_of(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def counted(lines, rule):
    """Alerts of `rule`, written and summarised."""
    written = sum(1 for l in lines if l.get("kind") == "alert" and l["rule"]["id"] == rule)
    summarised = sum(l.get("suppressed", 0) for l in lines
                     if l.get("kind") == "alert-summary" and l["rule"]["id"] == rule)
    return written + summarised


def wait_for(path, what, deadline_s=120):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        with open(path) as f:
            if what in f.read():
                return
        time.sleep(0.05)
    sys.exit(f"no {what!r} in {path} within {deadline_s} s")


def one_round(binary, source, count, work):
    rules, out = os.path.join(work, "burst.rules"), os.path.join(work, f"{source}.jsonl")
    fake = os.path.realpath(os.path.join(work, "nginx"))
    with open(rules, "w") as f:
        f.write(RULES.replace("FAKE", fake))
    open(out, "w").close()
    shutil.copy("/bin/bash", fake)
    sensor = subprocess.Popen([binary, "run", "--source", source, "--rules", rules, "-o", out],
                              stderr=subprocess.PIPE, text=True)
    for line in sensor.stderr:
        if "running:" in line:
            break
    else:
        sys.exit(f"spawnwatch run --source {source} did not start")
    cpu_before = cpu_seconds(sensor.pid)
    bpf_before = bpf_runs()
    started = time.time()
    subprocess.run([fake, "-c", f"for i in $(seq {count}); do /usr/bin/id >/dev/null; done"],
                   check=True)
    spawn_s = time.time() - started
    marker = subprocess.Popen(["/bin/sh", "-c", "read x", "burst-finished-marker"],
                              stdin=subprocess.PIPE)
    wait_for(out, '"id":"DONE"')
    cpu = cpu_seconds(sensor.pid) - cpu_before
    bpf_ns = bpf_ns_per_exec(bpf_before, bpf_runs())
    marker.stdin.close()
    marker.wait()
    sensor.send_signal(2)
    sensor.stderr.read()
    sensor.wait()
    lines = lines_of(out)
    stats = lines[-1]
    figures = stats["source"]
    return {
        "seen": counted(lines, "BURST"),
        "whole": counted(lines, "WHOLE"),
        "dropped_at_channel": stats["dropped_at_channel"],
        # The kernel's own losses: the ring buffer's drops, the socket's overruns.
        "kernel_drops": figures.get("ring_full_drops", figures.get("overruns")),
        "proc_missing": figures.get("proc_missing"),
        # Per exec the source reported: the host's other processes run beside the burst.
        "cpu_us_per_exec": cpu * 1e6 / max(1, figures["execs"]),
        # In the kernel, in the eBPF programs (charged to the processes, not the sensor).
        "bpf_us_per_exec": bpf_ns / 1e3,
        "spawn_s": spawn_s,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/spawnwatch")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sources", default="ebpf,proc-connector")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (both live sources do)")
    sources = args.sources.split(",")
    results = {s: [] for s in sources}
    # The kernel counts the time spent in eBPF programs only while bpf_stats is on.
    stats_switch = "/proc/sys/kernel/bpf_stats_enabled"
    with open(stats_switch) as f:
        stats_were = f.read().strip()
    with open(stats_switch, "w") as f:
        f.write("1")
    try:
        run_rounds(args, sources, results)
    finally:
        with open(stats_switch, "w") as f:
            f.write(stats_were)
    print(f"\n{args.count} `id` under a fake nginx, {args.rounds} rounds, medians:")
    for source, rounds in results.items():
        med = lambda k: statistics.median(r[k] for r in rounds)
        print(f"  {source}: seen {med('seen'):.0f} ({100 * med('seen') / args.count:.2f} %), "
              f"whole {med('whole'):.0f} ({100 * med('whole') / args.count:.2f} %); "
              f"dropped at channel {med('dropped_at_channel'):.0f}, "
              f"kernel drops {med('kernel_drops'):.0f}, lacked /proc details {med('proc_missing'):.0f}; "
              f"sensor CPU {med('cpu_us_per_exec'):.1f} us per exec, in eBPF programs "
              f"{med('bpf_us_per_exec'):.2f} us; burst took {med('spawn_s'):.1f} s")


def run_rounds(args, sources, results):
    for n in range(args.rounds):
        order = sources if n % 2 == 0 else list(reversed(sources))
        for source in order:
            with tempfile.TemporaryDirectory(prefix="sw-burst-") as work:
                r = one_round(args.binary, source, args.count, work)
            results[source].append(r)
            print(f"round {n + 1} {source}: {json.dumps(r)}", flush=True)


if __name__ == "__main__":
    main()
