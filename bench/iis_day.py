#!/usr/bin/env python3
"""One day of a busy but benign IIS server, as spawnwatch event lines (what
`spawnwatch run --record` writes on Windows), to measure the shipped rules' false
positives where no real recording of such a server is at hand.

    python3 bench/iis_day.py [OUT] [--seed S] [--date YYYY-MM-DD]

OUT ending in `.gz` is written gzip-compressed (reproducibly: no name, no time in the
header); `-` or nothing writes stdout. Standard library only; the same seed gives the
same bytes. tests/fixtures/iis-day.jsonl.gz is this script's output with its defaults
(tests/iis_day.rs checks that, and that the shipped rules raise nothing above low on
it).

What the host does, modelled on Windows Server 2019 running IIS 10 with three ASP.NET
application pools (the numbers are per day unless said otherwise):

* The base system is running at midnight (`existing` lines): System, smss, csrss,
  wininit, services, lsass, the svchost groups (DcomLaunch, netsvcs with the Task
  Scheduler, iissvcs with WAS and W3SVC), Defender's MsMpEng, a Zabbix agent.
* IIS: WAS (svchost -k iissvcs) starts one w3wp.exe per pool on its first request. A
  pool idle for 20 minutes shuts its worker down (the default idle time-out), so at
  night the pools start and stop with the odd request and run all day from about
  07:00; each pool is recycled once at a random time (the periodic restart, 1740
  minutes, falls in any day once). A new worker compiles the site on its first
  requests: w3wp.exe -> csc.exe (1 to 3 batches) -> cvtres.exe and conhost.exe; the
  `Api` pool uses the Roslyn CodeDOM provider (bin\\roslyn\\csc.exe, which starts
  VBCSCompiler.exe). Twice a day a worker crashes: w3wp.exe -> WerFault.exe -u -p PID,
  then WAS starts a new one. The `Intranet` pool renders PDF reports with
  wkhtmltopdf.exe (about 12 a day, office hours): a program a web application really
  starts, which SW-WIN-005 lists at low severity.
* Monitoring: Zabbix runs a PowerShell check of the pools every 5 minutes
  (zabbix_agentd.exe -> cmd.exe /C powershell ... -> conhost.exe).
* WMI: WmiPrvSE.exe under DcomLaunch every 15-40 minutes, living a few minutes.
* Scheduled tasks (svchost -k netsvcs -s Schedule): taskhostw.exe about hourly; IIS log
  clean-up at 02:00 (powershell.exe -File, with conhost); a web-root backup at 03:00
  (cmd.exe /c backup.cmd -> robocopy.exe); Defender's four maintenance tasks
  (MpCmdRun.exe -IdleTask ...); .NET's NGEN task after updates (ngentask.exe ->
  mscorsvw.exe); CompatTelRunner.exe; usoclient.exe StartScan.
* Windows Update at 03:30: usoclient, MoUsoCoreWorker.exe, TrustedInstaller.exe (under
  services) and TiWorker.exe (under DcomLaunch); Defender signature updates three times
  a day (AM_Delta_Patch_*.exe -> MpSigStub.exe under the wuauserv svchost).
* An administrator works once, 10:30-11:10, over RDP: userinit.exe, explorer.exe,
  an elevated cmd.exe (started for explorer by the AppInfo service, so its creator is
  not its parent, as ETW reports UAC elevation) running appcmd.exe list/recycle (the
  recycle restarts the `Api` worker), iisreset.exe /status and tasklist.exe; an
  elevated PowerShell (Get-WebAppPoolState); InetMgr.exe; notepad.exe on web.config.

Every process ends (a `terminate` line) unless it still runs at midnight. pids are
multiples of 4, reused once free, as on Windows.
"""

import argparse
import gzip
import io
import json
import random
import sys
from datetime import datetime, timedelta, timezone

HOST = "WEB01"
SYS32 = "C:\\Windows\\System32\\"
NET64 = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\"
DEFENDER = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0\\"
SYSTEM = ("NT AUTHORITY\\SYSTEM", "S-1-5-18", "System")
LOCALSVC = ("NT AUTHORITY\\LOCAL SERVICE", "S-1-5-19", "System")
NETSVC = ("NT AUTHORITY\\NETWORK SERVICE", "S-1-5-20", "System")
ADMIN = ("CORP\\adm-jdoe", "S-1-5-21-3623811015-3361044348-30300820-1104", "Medium")
ADMIN_HIGH = ADMIN[:2] + ("High",)
DAY = 86400.0

POOLS = {
    "DefaultAppPool": "C:\\inetpub\\wwwroot",
    "Intranet": "C:\\inetpub\\intranet",
    "Api": "C:\\inetpub\\api",
}
POOL_SIDS = {
    "DefaultAppPool": "S-1-5-82-3006700770-424185619-1745488364-794895919-4004696415",
    "Intranet": "S-1-5-82-1612378281-2473210938-1339240961-2211542378-3066711437",
    "Api": "S-1-5-82-271721585-897601226-2024613209-625570482-296978595",
}


class Proc:
    """A process of the day: started at `start` (seconds since midnight) by `parent`."""

    def __init__(self, image, cmd, account, start, end, parent=None, creator=None, existing=False):
        self.image, self.cmd, self.account = image, cmd, account
        self.start, self.end = start, end
        self.parent, self.creator = parent, creator
        self.existing = existing
        self.pid = None


class Day:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.procs = []

    def proc(self, image, cmd, account, start, life, parent=None, creator=None):
        """A process living `life` seconds (None: past midnight); it may outlive its
        parent, as on Windows (explorer.exe outlives userinit.exe)."""
        end = None if life is None else start + life
        if parent is not None:
            assert parent.start < start and (parent.end is None or start < parent.end)
        p = Proc(image, cmd, account, start, end, parent, creator)
        self.procs.append(p)
        return p

    def console(self, image, cmd, account, start, life, parent, creator=None):
        """A console program and the conhost.exe Windows starts for it."""
        p = self.proc(image, cmd, account, start, life, parent, creator)
        self.proc(SYS32 + "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
                  account, start + 0.004, life - 0.01 if life else None, p)
        return p

    def existing(self, image, cmd, account, parent=None):
        p = Proc(image, cmd, account, 0.0, None, parent, None, existing=True)
        self.procs.append(p)
        return p


def build(seed):
    d = Day(seed)
    rng = d.rng

    # The base system, running at midnight.
    system = d.existing("System", None, SYSTEM)
    smss = d.existing(SYS32 + "smss.exe", "\\SystemRoot\\System32\\smss.exe", SYSTEM, system)
    d.existing(SYS32 + "csrss.exe", "%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows", SYSTEM, smss)
    wininit = d.existing(SYS32 + "wininit.exe", "wininit.exe", SYSTEM, smss)
    services = d.existing(SYS32 + "services.exe", SYS32 + "services.exe", SYSTEM, wininit)
    d.existing(SYS32 + "lsass.exe", SYS32 + "lsass.exe", SYSTEM, wininit)
    winlogon = d.existing(SYS32 + "winlogon.exe", "winlogon.exe", SYSTEM, smss)
    svc = lambda group, account, extra="": d.existing(
        SYS32 + "svchost.exe", f"{SYS32}svchost.exe -k {group} -p{extra}", account, services)
    dcom = svc("DcomLaunch", SYSTEM)
    schedule = svc("netsvcs", SYSTEM, " -s Schedule")
    appinfo = svc("netsvcs", SYSTEM, " -s Appinfo")
    wuauserv = svc("netsvcs", SYSTEM, " -s wuauserv")
    was = d.existing(SYS32 + "svchost.exe", SYS32 + "svchost.exe -k iissvcs", SYSTEM, services)
    svc("LocalServiceNetworkRestricted", LOCALSVC)
    svc("NetworkService", NETSVC)
    d.existing(DEFENDER + "MsMpEng.exe", f'"{DEFENDER}MsMpEng.exe"', SYSTEM, services)
    zabbix = d.existing("C:\\Program Files\\Zabbix Agent\\zabbix_agentd.exe",
                        '"C:\\Program Files\\Zabbix Agent\\zabbix_agentd.exe" --config "C:\\Program Files\\Zabbix Agent\\zabbix_agentd.conf"',
                        SYSTEM, services)

    # IIS worker processes.
    def pool_account(pool):
        return (f"IIS APPPOOL\\{pool}", POOL_SIDS[pool], "High")

    def worker(pool, start, end):
        pipe = "%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48))
        cmd = (f'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "{pool}" -v "v4.0" -l "webengine4.dll" '
               f'-a \\\\.\\pipe\\iisipm{pipe} -h "C:\\inetpub\\temp\\apppools\\{pool}\\{pool}.config" -w "" -m 0')
        w = d.proc(SYS32 + "inetsrv\\w3wp.exe", cmd, pool_account(pool), start,
                   None if end is None else end - start, was)
        compile_site(pool, w, start)
        return w

    def compile_site(pool, w, start):
        t = start + rng.uniform(0.4, 2.0)
        account = pool_account(pool)
        for _ in range(rng.randint(1, 3)):
            temp = "%08x\\%08x" % (rng.getrandbits(32), rng.getrandbits(32))
            life = rng.uniform(0.6, 2.5)
            if pool == "Api":
                csc = d.console(POOLS[pool] + "\\bin\\roslyn\\csc.exe",
                                f'"{POOLS[pool]}\\bin\\roslyn\\csc.exe" /shared /keepalive:"10" /noconfig /fullpaths @"C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\Temporary ASP.NET Files\\api\\{temp}\\{rng.getrandbits(24):x}.cmdline"',
                                account, t, life, w)
                d.proc(POOLS[pool] + "\\bin\\roslyn\\VBCSCompiler.exe",
                       f'"{POOLS[pool]}\\bin\\roslyn\\VBCSCompiler.exe" "-pipename:{rng.getrandbits(64):x}"',
                       account, t + 0.05, life - 0.1, csc)
            else:
                csc = d.console(NET64 + "csc.exe",
                                f'"{NET64}csc.exe" /noconfig /fullpaths @"{NET64}Temporary ASP.NET Files\\root\\{temp}\\{rng.getrandbits(24):x}.cmdline"',
                                account, t, life, w)
                d.proc(NET64 + "cvtres.exe",
                       f'{NET64}cvtres.exe /NOLOGO /READONLY /MACHINE:IX86 "/OUT:C:\\Windows\\TEMP\\RES{rng.getrandbits(16):X}.tmp" "{NET64}Temporary ASP.NET Files\\root\\{temp}\\CSC{rng.getrandbits(32):X}.TMP"',
                       account, t + life * 0.7, life * 0.2, csc)
            t += life + rng.uniform(0.1, 1.5)

    for pool in POOLS:
        # Requests: sparse at night, continuous in the day.
        requests = sorted(
            [rng.uniform(0, 7 * 3600) for _ in range(rng.randint(6, 12))]
            + [rng.uniform(19.5 * 3600, DAY - 60) for _ in range(rng.randint(8, 16))])
        day_from, day_to = rng.uniform(6.5, 7.5) * 3600, rng.uniform(19, 19.5) * 3600
        # Worker lifetimes: from a request until 20 minutes after the last one.
        activity = sorted([(r, r) for r in requests if not day_from <= r <= day_to]
                          + [(day_from, day_to)])
        spans = []
        for first, last in activity:
            if spans and first <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], last + 1200)
            else:
                spans.append([first, last + 1200])
        # The periodic recycle (and, for Api, the administrator's appcmd recycle at 10:52)
        # and two crashes split a span: the old worker ends as the new one starts.
        cuts = [rng.uniform(day_from + 600, day_to - 600)]
        if pool == "Api":
            cuts.append(10.87 * 3600)
        crash_at = {c for c in [rng.uniform(day_from, day_to)] if pool != "DefaultAppPool"}
        cuts.extend(crash_at)
        for span in spans:
            start, end = span
            inner = sorted(c for c in cuts if start + 60 < c < min(end, DAY) - 60)
            bounds = [start] + inner + [end]
            for i in range(len(bounds) - 1):
                s, e = bounds[i], bounds[i + 1]
                w = worker(pool, s + (0.3 if i else 0), e + 0.5 if e < DAY else None)
                if e in crash_at:
                    d.proc(SYS32 + "WerFault.exe", f"C:\\Windows\\system32\\WerFault.exe -u -p {{pid:{id(w)}}} -s {rng.randint(400, 900)}",
                           pool_account(pool), e - 2.5, 2.2, w)
                if pool == "Intranet":
                    for _ in range(40):
                        t = rng.uniform(8 * 3600, 17.5 * 3600)
                        if s + 10 < t < e - 10 and rng.random() < 0.3:
                            d.proc("C:\\Program Files\\wkhtmltopdf\\bin\\wkhtmltopdf.exe",
                                   f'"C:\\Program Files\\wkhtmltopdf\\bin\\wkhtmltopdf.exe" --quiet --page-size A4 http://localhost/intranet/reports/{rng.randint(1000, 9999)} C:\\Windows\\TEMP\\report-{rng.getrandbits(32):x}.pdf',
                                   pool_account(pool), t, rng.uniform(1.5, 4.0), w)

    # Zabbix: a pool check every 5 minutes.
    t = rng.uniform(0, 300)
    while t < DAY - 30:
        c = d.console(SYS32 + "cmd.exe", 'cmd.exe /C "powershell -NoProfile -ExecutionPolicy Bypass -File "C:\\Program Files\\Zabbix Agent\\scripts\\iis_pools.ps1""',
                      SYSTEM, t, 3.0, zabbix)
        d.console(SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
                  'powershell  -NoProfile -ExecutionPolicy Bypass -File "C:\\Program Files\\Zabbix Agent\\scripts\\iis_pools.ps1"',
                  SYSTEM, t + 0.02, 2.8, c)
        t += 300 + rng.uniform(-2, 2)

    # WMI providers.
    t = rng.uniform(0, 1200)
    while t < DAY - 600:
        d.proc(SYS32 + "wbem\\WmiPrvSE.exe", "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
               NETSVC, t, rng.uniform(60, 400), dcom)
        t += rng.uniform(900, 2400)

    # Scheduled tasks.
    t = rng.uniform(0, 3600)
    while t < DAY - 120:
        d.proc(SYS32 + "taskhostw.exe", rng.choice(["taskhostw.exe", "taskhostw.exe Install $(Arg0)", "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly"]),
               SYSTEM, t, rng.uniform(5, 90), schedule)
        t += rng.uniform(2400, 4800)
    ps = d.console(SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe",
                   'powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\Scripts\\Remove-OldIISLogs.ps1 -Days 30',
                   SYSTEM, 2 * 3600 + rng.uniform(0, 30), 14.0, schedule)
    backup = d.console(SYS32 + "cmd.exe", 'C:\\Windows\\system32\\cmd.exe /c "C:\\Scripts\\backup-webroot.cmd"',
                       SYSTEM, 3 * 3600 + rng.uniform(0, 30), 300.0, schedule)
    d.proc(SYS32 + "Robocopy.exe", "robocopy  C:\\inetpub \\\\backup01\\web$\\WEB01 /MIR /R:2 /W:5 /NP /LOG:C:\\Scripts\\backup.log",
           SYSTEM, backup.start + 0.5, 290.0, backup)
    for task in ["WdCacheMaintenance", "WdCleanup", "WdScheduledScan", "WdVerification"]:
        d.console(DEFENDER + "MpCmdRun.exe", f'"{DEFENDER}MpCmdRun.exe" -IdleTask -TaskName {task}',
                  SYSTEM, rng.uniform(1, 5) * 3600, rng.uniform(5, 600), schedule)
    d.proc(SYS32 + "CompatTelRunner.exe", "C:\\Windows\\system32\\compattelrunner.exe", SYSTEM,
           rng.uniform(1, 4) * 3600, 180.0, schedule)

    # Windows Update at 03:30, and .NET's native images after it.
    t = 3.5 * 3600
    d.proc(SYS32 + "usoclient.exe", "C:\\Windows\\system32\\usoclient.exe StartScan", SYSTEM, t, 2.0, schedule)
    d.proc(SYS32 + "MoUsoCoreWorker.exe", "C:\\Windows\\System32\\mousocoreworker.exe -Embedding", SYSTEM, t + 3, 900.0, dcom)
    d.proc("C:\\Windows\\servicing\\TrustedInstaller.exe", "C:\\Windows\\servicing\\TrustedInstaller.exe", SYSTEM, t + 60, 1500.0, services)
    d.proc("C:\\Windows\\WinSxS\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.17763.6224_none_5a3d7c0dd0ea1f8c\\TiWorker.exe",
           "C:\\Windows\\winsxs\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.17763.6224_none_5a3d7c0dd0ea1f8c\\TiWorker.exe -Embedding",
           SYSTEM, t + 62, 1400.0, dcom)
    ngen = d.proc(NET64 + "ngentask.exe", f'"{NET64}ngentask.exe" /RuntimeWide /StopEvent:1188', SYSTEM, t + 1700, 240.0, schedule)
    for i in range(3):
        d.proc(NET64 + "mscorsvw.exe", f"{NET64}mscorsvw.exe -StartupEventName mscorsvw{rng.getrandbits(32):x} -StartupEventHandle 2f4 -Comment \"NGen Worker Process\"",
               SYSTEM, ngen.start + 5 + i * 60, 55.0, ngen)
    for hour in (rng.uniform(1, 3), rng.uniform(9, 11), rng.uniform(17, 19)):
        version = f"1.421.{rng.randint(100, 999)}.0"
        patch = d.proc(f"C:\\Windows\\SoftwareDistribution\\Download\\Install\\AM_Delta_Patch_{version}.exe",
                       f'"C:\\Windows\\SoftwareDistribution\\Download\\Install\\AM_Delta_Patch_{version}.exe" WD /q',
                       SYSTEM, hour * 3600, 40.0, wuauserv)
        d.proc(SYS32 + "MpSigStub.exe", f"C:\\Windows\\system32\\MpSigStub.exe /stub 1.1.24090.1 /payload {version} /program C:\\Windows\\SoftwareDistribution\\Download\\Install\\AM_Delta_Patch_{version}.exe WD /q",
               SYSTEM, hour * 3600 + 0.4, 38.0, patch)

    # The administrator's session, 10:30-11:10.
    t = 10.5 * 3600
    userinit = d.proc(SYS32 + "userinit.exe", "C:\\Windows\\system32\\userinit.exe", ADMIN, t, 3.0, winlogon)
    explorer = d.proc("C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", ADMIN, t + 1.0, 2400.0, userinit)
    admin_cmd = d.console(SYS32 + "cmd.exe", '"C:\\Windows\\system32\\cmd.exe" ', ADMIN_HIGH, t + 120, 1900.0, explorer, creator=appinfo)
    for at, cmd in [(180, "appcmd  list apppool"), (240, "appcmd  list wp"),
                    (0.37 * 3600, 'appcmd  recycle apppool /apppool.name:"Api"')]:
        d.proc(SYS32 + "inetsrv\\appcmd.exe", cmd, ADMIN_HIGH, t + at, 0.4, admin_cmd)
    d.proc(SYS32 + "iisreset.exe", "iisreset  /status", ADMIN_HIGH, t + 300, 1.1, admin_cmd)
    d.proc(SYS32 + "tasklist.exe", 'tasklist  /fi "imagename eq w3wp.exe"', ADMIN_HIGH, t + 330, 0.3, admin_cmd)
    d.proc(SYS32 + "notepad.exe", '"C:\\Windows\\system32\\notepad.exe" C:\\inetpub\\api\\web.config', ADMIN_HIGH, t + 420, 200.0, admin_cmd)
    d.console(SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe", '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" ',
              ADMIN_HIGH, t + 700, 600.0, explorer, creator=appinfo)
    d.proc(SYS32 + "inetsrv\\InetMgr.exe", '"C:\\Windows\\system32\\inetsrv\\InetMgr.exe" ', ADMIN_HIGH, t + 1400, 500.0, explorer, creator=appinfo)
    return d


def assign_pids(d, rng):
    """pids in event order: multiples of 4, the lowest free ones reused first, as Windows tends to."""
    free = list(range(4000, 4, -4))  # popped from the end: smallest first
    rng.shuffle(free)
    events = []
    for p in d.procs:
        events.append((p.start, 0 if p.existing else 1, p))
        if p.end is not None and p.end < DAY:
            events.append((p.end, 2, p))
    events.sort(key=lambda e: (e[0], e[1]))
    order = []
    for t, kind, p in events:
        if kind == 2:
            free.append(p.pid)
        else:
            p.pid = 4 if p.image == "System" else free.pop()
        order.append((t, kind, p))
    return order


def lines(seed, date):
    d = build(seed)
    midnight = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    for t, kind, p in assign_pids(d, random.Random(seed + 1)):
        when = (midnight + timedelta(seconds=t)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if kind == 2:
            yield {"timestamp": when, "hostname": HOST, "action": "terminate", "pid": p.pid}
            continue
        user, sid, integrity = p.account
        line = {"timestamp": when, "hostname": HOST, "action": "existing" if kind == 0 else "create",
                "pid": p.pid, "ppid": p.parent.pid if p.parent else 0,
                "image_path": p.image}
        if p.cmd is not None:
            # A crash reporter names the crashed worker's pid.
            line["command_line"] = p.cmd.replace("{pid:%d}" % id(p.parent), str(p.parent.pid)) if p.parent else p.cmd
        line.update({"user": user, "sid": sid, "integrity_level": integrity})
        if kind == 1:
            line["creator_pid"] = (p.creator or p.parent).pid
        yield line


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="-")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--date", default="2026-03-10")
    args = parser.parse_args()
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines(args.seed, args.date))
    data = text.encode()
    if args.out == "-":
        sys.stdout.write(text)
    elif args.out.endswith(".gz"):
        with open(args.out, "wb") as f:
            buf = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
                gz.write(data)
            f.write(buf.getvalue())
    else:
        with open(args.out, "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
