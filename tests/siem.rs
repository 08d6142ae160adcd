//! End-to-end against a real collector: rsyslog (Debian packages rsyslog and
//! rsyslog-gnutls, installed by `.ci/run`) on a loopback port, with a TCP or a TLS
//! input whose certificates the test makes. What rsyslog wrote is compared with the
//! alerts; rsyslog and the sensor are killed (kill -9) mid-stream, and every alert must
//! arrive all the same. The duplicates (delivery is at least once) are counted and said.
// rcgen (the certificates) comes with the `tls` feature.
#![cfg(all(target_os = "linux", feature = "tls"))]

mod common;

use common::needs;
use common::sensor::{all, path, rules_in, Sensor, PATIENCE};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const GTLS: &str = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

fn have_rsyslog(tls: bool) -> bool {
    let mut packages = vec![("rsyslog", Path::new(RSYSLOGD).exists())];
    if tls {
        packages.push(("rsyslog-gnutls", Path::new(GTLS).exists()));
    }
    needs::met(&[needs::debian_packages(&packages)])
}

/// Waits up to [`PATIENCE`] for `condition`, checking it every few milliseconds.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A CA and a certificate for 127.0.0.1 it signed, as PEM files.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Certificates {
    fn new(dir: &Path) -> Certificates {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "spawnwatch test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let files = Certificates {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// rsyslogd in the foreground, writing the message part (the alert JSON) of everything
/// it receives, one per line, to `received`.
struct Rsyslog {
    dir: PathBuf,
    tls: bool,
    port: u16,
    received: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    /// Started on a port of its choosing.
    fn start(dir: &Path, certificates: Option<&Certificates>) -> Rsyslog {
        let mut rsyslog = Rsyslog::down(dir, 0);
        rsyslog.configure(certificates);
        rsyslog.run();
        rsyslog
    }

    /// Not started; `port` (0: any) is where it will listen.
    fn down(dir: &Path, port: u16) -> Rsyslog {
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(&dir).unwrap();
        Rsyslog {
            received: dir.join("received.log"),
            dir,
            tls: false,
            port,
            child: None,
        }
    }

    fn configure(&mut self, certificates: Option<&Certificates>) {
        self.tls = certificates.is_some();
        let dir = self.dir.display();
        let mut global = format!(r#"workDirectory="{dir}" maxMessageSize="256k""#);
        let mut module = String::new();
        if let Some(c) = certificates {
            global += &format!(
                r#" defaultNetstreamDriverCAFile="{}" defaultNetstreamDriverCertFile="{}" defaultNetstreamDriverKeyFile="{}""#,
                c.ca.display(),
                c.cert.display(),
                c.key.display()
            );
            module =
                r#" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon""#
                    .into();
        }
        let config = format!(
            r#"global({global})
module(load="imtcp"{module})
input(type="imtcp" address="127.0.0.1" port="{{PORT}}" listenPortFileName="{dir}/port")
template(name="message" type="string" string="%msg%\n")
action(type="omfile" file="{}" template="message")
"#,
            self.received.display()
        );
        std::fs::write(self.dir.join("rsyslog.conf.in"), config).unwrap();
    }

    /// Starts rsyslogd on its port, and waits until it listens.
    fn run(&mut self) {
        let config = std::fs::read_to_string(self.dir.join("rsyslog.conf.in")).unwrap();
        let config_path = self.dir.join("rsyslog.conf");
        std::fs::write(
            &config_path,
            config.replace("{PORT}", &self.port.to_string()),
        )
        .unwrap();
        let port_file = self.dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(RSYSLOGD)
            .args(["-n", "-f"])
            .arg(&config_path)
            .arg("-i")
            .arg(self.dir.join("pid"))
            .stdin(Stdio::null())
            .stderr(self.said_file())
            .spawn()
            .expect("rsyslogd starts");
        self.child = Some(child);
        if self.port != 0 {
            // rsyslog writes the port file only for a port of its choosing.
            let address = ("127.0.0.1", self.port);
            wait_until("rsyslogd to listen", || {
                std::net::TcpStream::connect(address).is_ok()
            });
            return;
        }
        wait_until("rsyslogd to listen", || {
            std::fs::read_to_string(&port_file).is_ok_and(|p| p.trim().parse::<u16>().is_ok())
        });
        self.port = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    }

    /// Where rsyslogd's complaints go, kept across restarts.
    fn said_file(&self) -> std::fs::File {
        let path = self.dir.join("rsyslogd.stderr");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    /// What rsyslogd said on stderr.
    fn said(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn destination(&self) -> String {
        let scheme = if self.tls { "tls" } else { "tcp" };
        format!("syslog+{scheme}://127.0.0.1:{}", self.port)
    }

    /// The alerts' pids in what rsyslog wrote, and how many lines are not whole: an
    /// rsyslogd killed in the middle of writing a line leaves it torn (and that alert
    /// is sent again: see `every_alert_arrived`).
    fn pids(&self) -> (Vec<u64>, usize) {
        let mut torn = 0;
        let pids = self
            .lines()
            .iter()
            .filter_map(|line| {
                let pid = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|alert| alert["process"]["pid"].as_u64());
                torn += usize::from(pid.is_none());
                pid
            })
            .collect();
        (pids, torn)
    }

    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.received).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How often each pid arrived; asserts that every one of `expected` did (and no
/// other), and says how many arrived twice or more.
fn every_alert_arrived(test: &str, rsyslog: &Rsyslog, expected: std::ops::Range<u32>) -> u64 {
    let (received, torn) = rsyslog.pids();
    let mut times: BTreeMap<u64, u64> = BTreeMap::new();
    for pid in received {
        *times.entry(pid).or_default() += 1;
    }
    assert_eq!(
        times.keys().copied().collect::<Vec<_>>(),
        all(expected.clone()),
        "every alert arrives"
    );
    let duplicates: u64 = times.values().map(|t| t - 1).sum();
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {} alerts, all arrived; {duplicates} duplicates; {torn} lines torn by rsyslogd's end",
        expected.len()
    );
    duplicates
}

/// The shared recordings replayed to rsyslog (over TCP, then TLS) and to a file at
/// once: rsyslog wrote the same alerts, byte for byte.
#[test]
fn replayed_alerts_reach_rsyslog_as_they_are_over_tcp_and_tls() {
    let Some(data) = common::shared_data("") else {
        return;
    };
    for tls in [false, true] {
        if !have_rsyslog(tls) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let certificates = tls.then(|| Certificates::new(dir.path()));
        let rsyslog = Rsyslog::start(dir.path(), certificates.as_ref());
        let copy = dir.path().join("alerts.jsonl");
        let spool = dir.path().join("spool");
        let mut command = common::spawnwatch();
        command.args(["replay", "-o", &rsyslog.destination(), "-o", path(&copy)]);
        command.args(["--spool-dir", path(&spool)]);
        if let Some(c) = &certificates {
            command.args(["--tls-ca", path(&c.ca)]);
        }
        common::stdout_of_success(command.arg(&data));
        let alerts: Vec<String> = std::fs::read_to_string(&copy)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert!(
            alerts.len() > 10,
            "the recordings hold alerts: {}",
            alerts.len()
        );
        wait_until("rsyslog to write every alert", || {
            rsyslog.lines().len() >= alerts.len()
        });
        assert_eq!(rsyslog.lines(), alerts, "tls: {tls}");
        // A TLS session ended without close_notify is an error to rsyslog.
        assert_eq!(rsyslog.said(), "", "tls: {tls}");
    }
}

/// Events that raise no alert, 200 KiB of them: replay reads stdin 128 KiB at a time,
/// so the alert events before them are read now, not at the end of the input.
fn push_through(sensor: &mut Sensor) {
    let line = format!(
        r#"{{"timestamp":"2026-11-27T10:00:00Z","action":"create","pid":1,"ppid":0,"exe":"notepad.exe","command_line":"{}"}}"#,
        "x".repeat(400)
    );
    let text = format!("{line}\n").repeat(200 * 1024 / line.len());
    sensor
        .stdin
        .as_mut()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn sensor_to(rsyslog: &Rsyslog, dir: &Path, input: &str) -> Sensor {
    let (rules, spool, copy) = (rules_in(dir), dir.join("spool"), dir.join("alerts.jsonl"));
    let destination = rsyslog.destination();
    let args = [
        "replay",
        "--rules",
        path(&rules),
        "-o",
        &destination,
        "-o",
        path(&copy),
        "--spool-dir",
        path(&spool),
        input,
    ];
    Sensor::start(&args, Stdio::null())
}

/// rsyslog killed in the middle of 10,000 alerts, alerts going on while it is down,
/// then started again: every alert arrives.
#[test]
fn rsyslog_killed_mid_stream_and_restarted_misses_no_alert() {
    if !have_rsyslog(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::start(dir.path(), None);
    let mut sensor = sensor_to(&rsyslog, dir.path(), "-");
    assert!(sensor.feed(0..5_000));
    wait_until("rsyslog to have 1,000 alerts", || {
        rsyslog.lines().len() >= 1_000
    });
    rsyslog.kill();
    assert!(sensor.feed(5_000..10_000));
    push_through(&mut sensor);
    sensor.wait_stderr("cannot send to syslog+tcp://");
    let copy = dir.path().join("alerts.jsonl");
    wait_until("all 10,000 alerts made while rsyslog is down", || {
        lines_in(&copy) >= 10_000
    });
    rsyslog.run();
    let (status, said) = sensor.finish();
    assert!(status.success(), "{said}");
    assert!(said.contains("sending to syslog+tcp://"), "{said}");
    every_alert_arrived("rsyslog killed", &rsyslog, 0..10_000);
}

/// The sensor killed (kill -9) while rsyslog is down, its spool full of alerts; started
/// again once rsyslog is up, it sends them first. No alert is lost.
#[test]
fn a_sensor_killed_while_rsyslog_is_down_sends_its_spool_when_started_again() {
    if !have_rsyslog(false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut rsyslog = Rsyslog::down(dir.path(), free_port);
    rsyslog.configure(None);
    let mut sensor = sensor_to(&rsyslog, dir.path(), "-");
    assert!(sensor.feed(0..10_000));
    push_through(&mut sensor);
    sensor.wait_stderr("cannot send to syslog+tcp://");
    let spool = dir.path().join("spool");
    wait_until("10,000 alerts in the spool", || {
        spooled_records(&spool) >= 10_000
    });
    // kill -9: std's Child::kill sends SIGKILL.
    sensor.child.kill().unwrap();
    sensor.child.wait().unwrap();

    rsyslog.run();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let (status, said) = sensor_to(&rsyslog, dir.path(), path(&empty)).finish();
    assert!(status.success(), "{said}");
    assert!(
        said.contains("10000 lines from before are in the spool"),
        "{said}"
    );
    every_alert_arrived("sensor killed", &rsyslog, 0..10_000);
}

/// Whole lines in `file` (counted, not parsed: the sensor may be writing the last).
fn lines_in(file: &Path) -> usize {
    std::fs::read(file).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

/// Records in the spool's segment files, acknowledged or not.
fn spooled_records(spool: &Path) -> usize {
    let Ok(destinations) = std::fs::read_dir(spool) else {
        return 0;
    };
    destinations
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|f| f.path().extension().is_some_and(|e| e == "seg"))
        .map(|f| lines_in(&f.path()))
        .sum()
}
