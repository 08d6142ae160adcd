//! Syslog outputs: RFC 5424 messages over TCP or TLS with octet-counting framing
//! (RFC 6587 3.4.1, RFC 5425), or one per UDP datagram (RFC 5426).
//!
//! A message: `<PRI>1 TIMESTAMP HOSTNAME spawnwatch PROCID KIND [spawnwatch@32473
//! rule="..." severity="..." incident="..."] ALERT-JSON`. The facility is local0; the
//! alert's severity maps to the syslog severity (critical 2, high 3, medium 4, low 5,
//! informational and lines without a rule 6). TIMESTAMP is the alert's own (the event's
//! time, cut to microseconds as RFC 5424 allows), HOSTNAME the alert's host. The
//! structured data's enterprise number is RFC 5612's documentation number: spawnwatch
//! has no registered one.
//!
//! TCP has no acknowledgement of its own: bytes written can still be lost when the
//! collector goes away. So a TCP or TLS line counts as delivered (and leaves the spool)
//! only once the peer's TCP has acknowledged its bytes (Linux: the socket's send queue,
//! SIOCOUTQ) and the connection was still up [`SETTLE`] later: a collector killed
//! meanwhile closes the connection, and those lines are sent again (duplicates, never
//! losses).

use super::{Line, Sink, Stopped};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// How long a connection must stay up after a line was written before the line counts
/// as delivered: the collector has read and stored it by then.
pub const SETTLE: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A datagram's payload cannot be larger.
const UDP_MAX: usize = 65_000;
const FACILITY_LOCAL0: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
    Udp,
}

/// The RFC 5424 message for one output line.
pub fn message(line: &str, default_host: &str, procid: u32) -> String {
    let alert: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_string);
    let severity = text(&alert["rule"]["severity"]);
    let pri = FACILITY_LOCAL0 * 8 + syslog_severity(severity.as_deref());
    let timestamp = text(&alert["timestamp"])
        .and_then(|t| timestamp(&t))
        .unwrap_or_else(|| "-".into());
    let host = text(&alert["hostname"]).unwrap_or_else(|| default_host.to_string());
    let kind = text(&alert["kind"]).unwrap_or_else(|| "-".into());
    let mut params = Vec::new();
    for (name, value) in [
        ("rule", text(&alert["rule"]["id"])),
        ("severity", severity),
        ("incident", value_text(&alert["incident"])),
    ] {
        if let Some(value) = value {
            params.push(format!(r#"{name}="{}""#, escape_param(&value)));
        }
    }
    let structured = if params.is_empty() {
        "-".to_string()
    } else {
        format!("[spawnwatch@32473 {}]", params.join(" "))
    };
    format!(
        "<{pri}>1 {timestamp} {} spawnwatch {procid} {} {structured} {line}",
        header_field(&host, 255),
        header_field(&kind, 32),
    )
}

/// A string as it is, a number or anything else as JSON.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn syslog_severity(severity: Option<&str>) -> u8 {
    match severity {
        Some("critical") => 2,
        Some("high") => 3,
        Some("medium") => 4,
        Some("low") => 5,
        _ => 6,
    }
}

/// RFC 3339 with at most six fraction digits (RFC 5424 6.2.3), in UTC.
fn timestamp(text: &str) -> Option<String> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(
        time.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

/// A header field: printable US-ASCII without spaces, at most `max` bytes; `-` when
/// empty.
fn header_field(text: &str, max: usize) -> String {
    let field: String = text
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if field.is_empty() {
        "-".into()
    } else {
        field
    }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped with a backslash (RFC 5424 6.3.3).
fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A syslog destination.
pub struct Syslog {
    name: String,
    address: String,
    transport: Transport,
    tls: Option<Secure>,
    default_host: String,
    procid: u32,
    connection: Option<Connection>,
    buffer: Vec<u8>,
}

/// Puts a TLS session over a new TCP connection, the handshake done (see
/// `super::tls`).
pub type Secure = Box<dyn Fn(Counting) -> io::Result<Box<dyn Stream>> + Send>;

/// A connection's byte stream: plain TCP ([`Counting`]), or TLS over it.
pub trait Stream: Write + Send {
    /// Bytes written to the TCP socket so far (with TLS: the encrypted bytes).
    fn written(&self) -> u64;
    /// Reads whatever the collector sent (nothing is expected) without waiting: an
    /// error when the connection is closed or broken.
    fn drain(&mut self) -> io::Result<()>;
    /// The TCP socket under it.
    fn socket(&self) -> &TcpStream;
    /// Ends the session the way its protocol says (TLS: a close_notify).
    fn end(&mut self) {}
}

enum Connection {
    Stream(Tracked),
    Udp(UdpSocket),
}

/// A stream, and what was written to it that is not yet known to be delivered.
struct Tracked {
    stream: Box<dyn Stream>,
    /// Per write call: the socket's byte count after it, when, and its lines.
    unsettled: VecDeque<(u64, Instant, usize)>,
}

/// A TcpStream that counts the bytes written to it (under TLS, the encrypted ones).
pub struct Counting {
    pub(super) stream: TcpStream,
    pub(super) written: u64,
}

impl Stream for Counting {
    fn written(&self) -> u64 {
        self.written
    }
    fn drain(&mut self) -> io::Result<()> {
        drain_plain(&self.stream)
    }
    fn socket(&self) -> &TcpStream {
        &self.stream
    }
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Syslog {
    /// A destination at `address` (`HOST:PORT`); nothing is connected before the
    /// first write. `tls` is required for [`Transport::Tls`], and only used there.
    pub fn new(
        name: String,
        address: String,
        transport: Transport,
        tls: Option<Secure>,
    ) -> Result<Syslog, String> {
        let tls = match (transport, tls) {
            (Transport::Tls, None) => {
                return Err(format!("{name}: syslog+tls:// without a TLS setup"))
            }
            (Transport::Tls, tls) => tls,
            _ => None,
        };
        Ok(Syslog {
            name,
            address,
            transport,
            tls,
            default_host: crate::host::hostname().unwrap_or_else(|| "-".into()),
            procid: std::process::id(),
            connection: None,
            buffer: Vec::new(),
        })
    }

    fn connect(&mut self) -> io::Result<Connection> {
        if self.transport == Transport::Udp {
            let target = self
                .address
                .to_socket_addrs()?
                .next()
                .ok_or_else(no_address)?;
            let local = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(target)?;
            return Ok(Connection::Udp(socket));
        }
        let stream = Counting {
            stream: connect_tcp(&self.address)?,
            written: 0,
        };
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(stream),
            Some(secure) => secure(stream)?,
        };
        Ok(Connection::Stream(Tracked::new(stream)))
    }

    fn send(&mut self, lines: &[Line]) -> io::Result<()> {
        if self.connection.is_none() {
            self.connection = Some(self.connect()?);
        }
        let (host, procid) = (&self.default_host, self.procid);
        let connection = self.connection.as_mut().expect("connected above");
        if let Connection::Udp(socket) = connection {
            for line in lines {
                let mut message = message(&line.text, host, procid);
                truncate_at_char(&mut message, UDP_MAX);
                socket.send(message.as_bytes())?;
            }
            return Ok(());
        }
        self.buffer.clear();
        for line in lines {
            let message = message(&line.text, host, procid);
            write!(self.buffer, "{} {message}", message.len()).expect("to a Vec");
        }
        if let Connection::Stream(tracked) = connection {
            tracked.stream.write_all(&self.buffer)?;
            tracked.stream.flush()?;
            tracked.wrote(lines.len());
        }
        Ok(())
    }

    fn unconfirmed_lines(&mut self) -> io::Result<usize> {
        match self.connection.as_mut() {
            None | Some(Connection::Udp(_)) => Ok(0),
            Some(Connection::Stream(tracked)) => {
                let alive = tracked.stream.drain();
                let unacked = alive.and_then(|()| unacked_bytes(tracked.stream.socket()));
                tracked.settle(unacked)
            }
        }
    }
}

impl Tracked {
    fn new(stream: Box<dyn Stream>) -> Tracked {
        Tracked {
            stream,
            unsettled: VecDeque::new(),
        }
    }

    fn wrote(&mut self, lines: usize) {
        self.unsettled
            .push_back((self.stream.written(), Instant::now(), lines));
    }

    /// Drops the writes the peer has had for [`SETTLE`] with the connection still up;
    /// the lines of those left.
    fn settle(&mut self, unacked: io::Result<u64>) -> io::Result<usize> {
        let acked = self.stream.written().saturating_sub(unacked?);
        let now = Instant::now();
        while let Some(&(end, at, _)) = self.unsettled.front() {
            if end > acked || now.duration_since(at) < SETTLE {
                break;
            }
            self.unsettled.pop_front();
        }
        Ok(self.unsettled.iter().map(|&(_, _, lines)| lines).sum())
    }
}

fn no_address() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address")
}

fn connect_tcp(address: &str) -> io::Result<TcpStream> {
    let mut last = no_address();
    for target in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

pub(super) fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the collector closed the connection",
    )
}

/// Reads whatever the collector sent (nothing is expected) without waiting: an error
/// when the connection is closed or broken.
fn drain_plain(stream: &TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    let mut scratch = [0u8; 512];
    let result = loop {
        match (&*stream).read(&mut scratch) {
            Ok(0) => break Err(closed()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    result
}

/// Bytes written to `stream` that its peer has not acknowledged yet. Only Linux says
/// (SIOCOUTQ); elsewhere the [`SETTLE`] time alone stands for it.
#[cfg(target_os = "linux")]
fn unacked_bytes(stream: &TcpStream) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to the pointer given.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(queued.max(0) as u64)
}

#[cfg(not(target_os = "linux"))]
fn unacked_bytes(_stream: &TcpStream) -> io::Result<u64> {
    Ok(0)
}

impl Sink for Syslog {
    fn name(&self) -> &str {
        &self.name
    }

    /// All or nothing: after an error the connection is dropped, and the caller sends
    /// everything not yet confirmed again.
    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        if lines.is_empty() {
            return Ok(());
        }
        self.send(lines).map_err(|error| {
            self.connection = None;
            Stopped {
                delivered: 0,
                error,
            }
        })
    }

    fn unconfirmed(&mut self) -> io::Result<usize> {
        self.unconfirmed_lines()
            .inspect_err(|_| self.connection = None)
    }

    /// A TLS connection ends with a close_notify, so the collector sees a clean end
    /// (rsyslog logs an error without one).
    fn close(&mut self) -> u64 {
        if let Some(Connection::Stream(tracked)) = self.connection.as_mut() {
            tracked.stream.end();
        }
        self.connection = None;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALERT: &str = r#"{"kind":"alert","timestamp":"2019-05-24T01:33:53.1124866Z","hostname":"IEWIN7","rule":{"id":"CAR-2021-02-001","severity":"high"},"incident":"IEWIN7:2580"}"#;

    #[test]
    fn an_alert_becomes_an_rfc5424_message_with_rule_and_incident_in_structured_data() {
        assert_eq!(
            message(ALERT, "sensor", 42),
            format!(
                r#"<131>1 2019-05-24T01:33:53.112486Z IEWIN7 spawnwatch 42 alert [spawnwatch@32473 rule="CAR-2021-02-001" severity="high" incident="IEWIN7:2580"] {ALERT}"#
            )
        );
    }

    #[test]
    fn severities_map_to_syslog_severities() {
        let pri = |severity: &str| {
            let line = format!(r#"{{"rule":{{"severity":"{severity}"}}}}"#);
            let m = message(&line, "h", 1);
            m[1..m.find('>').unwrap()].parse::<u8>().unwrap() - 128
        };
        let got: Vec<u8> = ["critical", "high", "medium", "low", "informational"]
            .iter()
            .map(|s| pri(s))
            .collect();
        assert_eq!(got, [2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_line_without_rule_time_or_host_uses_nil_values_and_this_host() {
        let stats = r#"{"kind":"stats","alerts":3}"#;
        assert_eq!(
            message(stats, "web01", 7),
            format!("<134>1 - web01 spawnwatch 7 stats - {stats}")
        );
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket_and_headers_have_no_spaces() {
        let line = r#"{"kind":"alert","hostname":"WEB 01","rule":{"id":"a\"b\\c]d"}}"#;
        let m = message(line, "h", 1);
        assert!(m.contains(r#"[spawnwatch@32473 rule="a\"b\\c\]d"]"#), "{m}");
        assert!(m.contains(" WEB_01 spawnwatch "), "{m}");
    }

    /// syslog+udp: one message per datagram, as RFC 5426 has it.
    #[test]
    fn over_udp_each_line_is_one_datagram() {
        let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
        collector
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let address = collector.local_addr().unwrap().to_string();
        let mut syslog = Syslog::new("udp".into(), address, Transport::Udp, None).unwrap();
        let lines = crate::sink::memory::lines(&[ALERT, r#"{"kind":"stats"}"#]);
        syslog.write(&lines).unwrap();
        assert_eq!(
            syslog.unconfirmed().unwrap(),
            0,
            "nothing to confirm over UDP"
        );
        let mut datagram = [0u8; 2048];
        for line in &lines {
            let n = collector.recv(&mut datagram).unwrap();
            let expected = message(&line.text, &syslog.default_host, std::process::id());
            assert_eq!(std::str::from_utf8(&datagram[..n]).unwrap(), expected);
        }
    }

    #[test]
    fn an_incident_number_is_written_as_text() {
        let m = message(r#"{"incident":17}"#, "h", 1);
        assert!(m.contains(r#"[spawnwatch@32473 incident="17"]"#), "{m}");
    }
}
