#!/usr/bin/env python3
"""Live latency on Linux (root), two ways:
- end to end: from a process event's timestamp to its alert line appearing in the
  output file. With `--source ebpf` the timestamp is the kernel's time of the exec;
  with `--source proc-connector` it is stamped when the connector's message is
  received, and the time also counts reading /proc. Both count the source's channel
  and this script's tailing;
- inside the sensor: the `alert_latency_us` figures of its stats lines, from the event's
  arrival in the pipeline (process table, worker channel, rules, writer) to its alert
  line written and flushed.

    sudo python3 bench/latency.py [--binary target/release/spawnwatch] [--count 300] [--gap-ms 20]
                                  [--source auto|ebpf|proc-connector]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

RULE = """rule LATENCY { title: "latency marker" severity: low attack: T1059
  condition: command_line contains "spawnwatch-latency-marker" }
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/spawnwatch")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--gap-ms", type=float, default=20)
    ap.add_argument("--source", default="auto")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="sw-latency-")
    rules, out = os.path.join(work, "latency.rules"), os.path.join(work, "alerts.jsonl")
    open(rules, "w").write(RULE)
    open(out, "w").close()
    sensor = subprocess.Popen([args.binary, "run", "--rules", rules, "-o", out, "--storm-limit", "0",
                               "--source", args.source],
                              stderr=subprocess.PIPE, text=True)
    for line in sensor.stderr:
        if "running:" in line:
            break
    fd = os.open(out, os.O_RDONLY)
    pending, latencies = b"", []
    deadline = None
    for i in range(args.count):
        # A marker, `sh -c 'read x' NAME`, that exits at once (its stdin is closed here):
        # as short-lived as the `id` a web shell runs.
        p = subprocess.Popen(["/bin/sh", "-c", "read x", f"spawnwatch-latency-marker-{i}"], stdin=subprocess.PIPE)
        p.stdin.close()
        p.wait()
        t_end = time.time() + args.gap_ms / 1000
        while time.time() < t_end:
            pending = collect(fd, pending, latencies)
            time.sleep(0.0002)
    deadline = time.time() + 5
    while len(latencies) < args.count and time.time() < deadline:
        pending = collect(fd, pending, latencies)
        time.sleep(0.0002)
    sensor.send_signal(2)
    sensor.wait()
    pending = collect(fd, pending, latencies)
    inside = [json.loads(l) for l in open(out) if '"kind":"stats"' in l]
    if not latencies:
        sys.exit("no alert arrived")
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"alerts {len(latencies)}/{args.count}; end-to-end latency ms: p50 {p(0.5):.3f}, p90 {p(0.9):.3f}, p99 {p(0.99):.3f}, max {latencies[-1]:.3f}")
    for stats in inside:
        f = stats.get("alert_latency_us")
        if f:
            print(f"inside the sensor ({f['count']} alerts): p50 {f['p50']} us, p99 {f['p99']} us, max {f['max']} us")


def collect(fd, pending, latencies):
    chunk = os.read(fd, 1 << 16)
    now = time.time()
    if not chunk:
        return pending
    pending += chunk
    *lines, pending = pending.split(b"\n")
    for line in lines:
        alert = json.loads(line)
        if alert.get("kind") == "alert":
            t = datetime.fromisoformat(alert["timestamp"].replace("Z", "+00:00")).timestamp()
            latencies.append((now - t) * 1000)
    return pending


if __name__ == "__main__":
    main()
