//! `--output` values and the options of network destinations, and opening them all.

use super::delivery::say_on_stderr;
use super::fanout::{Fanout, OutputFigures};
use super::forward::{Forwarder, SendFigures, SpoolSink};
use super::http::{Format, Http};
use super::syslog::{Secure, Syslog, Transport};
use super::watched::Watched;
use super::{spool, Delivery, Hangups, Sink, Terminal};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Where `--output` sends alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
    /// `HOST:PORT`.
    Syslog(Transport, String),
    Http(String),
}

const FORMS: &str = "a file path (or file:PATH), - for stdout, syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT, syslog+udp://HOST:PORT, or an http:// or https:// URL";

impl FromStr for Destination {
    type Err = String;

    fn from_str(value: &str) -> Result<Destination, String> {
        if value == "-" {
            return Ok(Destination::Stdout);
        }
        if let Some(path) = value.strip_prefix("file:") {
            if path.is_empty() {
                return Err(
                    "file: needs a path after it, as in file:/var/log/spawnwatch.jsonl".into(),
                );
            }
            return Ok(Destination::File(path.into()));
        }
        let Some((scheme, rest)) = value.split_once("://") else {
            return Ok(Destination::File(value.into()));
        };
        let (transport, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "syslog+tcp" => (Transport::Tcp, 514),
            "syslog+tls" => (Transport::Tls, 6514),
            "syslog+udp" => (Transport::Udp, 514),
            "http" | "https" => return http_url(value),
            _ => {
                return Err(format!(
                    "`{scheme}://` is no destination spawnwatch knows; give {FORMS} (for example syslog+tcp://collector.example:514)"
                ))
            }
        };
        let address = syslog_address(rest, default_port).map_err(|why| {
            format!("{why}; give {scheme}://HOST:PORT, for example {scheme}://collector.example:{default_port} or {scheme}://[::1]:{default_port}")
        })?;
        Ok(Destination::Syslog(transport, address))
    }
}

/// `HOST[:PORT]`, an IPv6 address in brackets; the port defaults to the scheme's.
fn syslog_address(rest: &str, default_port: u16) -> Result<String, String> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err("the host is missing".into());
    }
    if rest.contains('/') {
        return Err(format!("`{rest}` has a path, which syslog has no use for"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(format!(
                    "`{rest}` looks like an IPv6 address: put it in brackets"
                ))
            }
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("the host is missing".into());
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("`{port}` is no port (1-65535)"))?,
    };
    Ok(format!("{host}:{port}"))
}

fn http_url(value: &str) -> Result<Destination, String> {
    let url = url::Url::parse(value).map_err(|e| {
        format!("`{value}` is no URL ({e}); for example https://splunk.example:8088/services/collector/event")
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{value}` has no host; for example https://elastic.example:9200/spawnwatch/_bulk"
        ));
    }
    Ok(Destination::Http(value.to_string()))
}

impl Destination {
    /// A file, reopened on SIGHUP.
    pub fn is_file(&self) -> bool {
        matches!(self, Destination::File(_))
    }

    fn is_network(&self) -> bool {
        matches!(self, Destination::Syslog(..) | Destination::Http(_))
    }

    fn needs_tls(&self) -> bool {
        match self {
            Destination::Syslog(transport, _) => *transport == Transport::Tls,
            Destination::Http(url) => url.to_ascii_lowercase().starts_with("https:"),
            _ => false,
        }
    }

    /// As messages and the stats line name it.
    fn name(&self) -> String {
        match self {
            Destination::Stdout => "stdout".into(),
            Destination::File(path) => path.display().to_string(),
            Destination::Syslog(transport, address) => {
                let scheme = match transport {
                    Transport::Tcp => "tcp",
                    Transport::Tls => "tls",
                    Transport::Udp => "udp",
                };
                format!("syslog+{scheme}://{address}")
            }
            Destination::Http(url) => url.clone(),
        }
    }
}

/// Options of the network destinations (syslog, HTTP).
#[derive(clap::Args, Clone, Debug)]
pub struct NetworkArgs {
    /// The body of HTTP outputs: `ndjson` (one alert per line), `splunk-hec` (Splunk's
    /// HTTP Event Collector: POST to .../services/collector/event), `elastic-bulk`
    /// (Elasticsearch's bulk API: POST to .../INDEX/_bulk).
    #[arg(long, value_enum, default_value_t = Format::Ndjson, value_name = "FORMAT")]
    pub http_format: Format,
    /// A header for HTTP outputs, as `Name: value`; repeat for several
    /// (`--http-header "Authorization: Splunk TOKEN"`).
    #[arg(long, value_name = "HEADER", value_parser = parse_header)]
    pub http_header: Vec<(String, String)>,
    /// Trust only the CA certificates in FILE (PEM) for syslog+tls:// and https://,
    /// instead of the Mozilla root set built in.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate chain (PEM) to present to TLS collectors; with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where network outputs spool alerts before sending them, a directory per
    /// destination. Default: /var/lib/spawnwatch/spool as root, else
    /// ~/.local/state/spawnwatch/spool; on Windows %ProgramData%\spawnwatch\spool.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// The size cap of each destination's spool (K, M, G: KiB, MiB, GiB); past it the
    /// oldest alerts are dropped and counted.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256M")]
    pub spool_max: u64,
}

fn parse_header(value: &str) -> Result<(String, String), String> {
    let (name, header_value) = value.split_once(':').ok_or_else(|| {
        format!(
            "`{value}` has no `:`; give `Name: value`, for example \"Authorization: Splunk TOKEN\""
        )
    })?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(format!(
            "`{name}` is no header name; give `Name: value`, for example \"Authorization: Splunk TOKEN\""
        ));
    }
    Ok((name.to_string(), header_value.trim().to_string()))
}

fn parse_size(value: &str) -> Result<u64, String> {
    let upper = value.trim().to_ascii_uppercase();
    let digits = upper.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &upper[digits.len()..];
    let shift = match unit {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("`{value}`: the unit is K, M or G, as in 256M")),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is no size; give a number and K, M or G, as in 256M"))?;
    n.checked_mul(1 << shift)
        .filter(|&bytes| bytes >= 4096)
        .ok_or_else(|| format!("`{value}`: a spool needs between 4K and 16E"))
}

/// The default spool directory (see `--spool-dir`).
fn default_spool_dir() -> PathBuf {
    if cfg!(windows) {
        let data = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        return Path::new(&data).join("spawnwatch").join("spool");
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty() && h != "/" && !is_root());
    match (std::env::var_os("XDG_STATE_HOME"), home) {
        (Some(state), _) if !state.is_empty() && !is_root() => {
            Path::new(&state).join("spawnwatch/spool")
        }
        (_, Some(home)) => Path::new(&home).join(".local/state/spawnwatch/spool"),
        _ => PathBuf::from("/var/lib/spawnwatch/spool"),
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// A destination's own spool directory: its name, made safe as a file name.
fn spool_subdir(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.len() <= 100 {
        return safe;
    }
    format!("{}-{:08x}", &safe[..90], crc32fast::hash(name.as_bytes()))
}

/// The opened outputs: one sink for the pipeline, and each destination's figures for
/// the stats line (none when the one output is a file or stdout, written as before).
pub struct Outputs {
    pub sink: Box<dyn Sink>,
    pub figures: Vec<Arc<OutputFigures>>,
}

/// Refuses a destination that needs TLS when spawnwatch was built without it
/// (`with_tls`: the `tls` feature).
fn refuse_without_tls(destination: &Destination, with_tls: bool) -> Result<(), String> {
    if with_tls || !destination.needs_tls() {
        return Ok(());
    }
    Err(format!(
        "{}: this spawnwatch was built without TLS (cargo --no-default-features), so it cannot send to syslog+tls:// or https://; build it with TLS (`cargo build --release`: the `tls` feature is on by default, or add `--features tls`), or give syslog+tcp:// or http://",
        destination.name()
    ))
}

/// The TLS client setup the network destinations share.
struct Tls {
    #[cfg(feature = "tls")]
    config: Option<Arc<rustls::ClientConfig>>,
}

impl Tls {
    /// Made once, when a destination needs it.
    fn new(destinations: &[Destination], network: &NetworkArgs) -> Result<Tls, String> {
        for destination in destinations {
            refuse_without_tls(destination, cfg!(feature = "tls"))?;
        }
        #[cfg(not(feature = "tls"))]
        let _ = network;
        Ok(Tls {
            #[cfg(feature = "tls")]
            config: destinations
                .iter()
                .any(Destination::needs_tls)
                .then(|| {
                    super::tls::client_config(
                        network.tls_ca.as_deref(),
                        network.tls_cert.as_deref(),
                        network.tls_key.as_deref(),
                    )
                })
                .transpose()?,
        })
    }

    /// TLS over the TCP connections to `address`, for syslog+tls://.
    fn syslog(&self, address: &str) -> Result<Option<Secure>, String> {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.config {
            return super::tls::syslog_session(config.clone(), address).map(Some);
        }
        let _ = address;
        Ok(None)
    }

    /// The HTTP client, for http:// and https://.
    fn http_agent(&self) -> ureq::AgentBuilder {
        let agent = ureq::AgentBuilder::new();
        #[cfg(feature = "tls")]
        if let Some(config) = &self.config {
            return agent.tls_config(config.clone());
        }
        agent
    }
}

/// Opens every destination (stdout when none is given). `view`, the terminal view,
/// is what stdout shows instead of JSON lines; without stdout among the destinations,
/// it shows their alerts beside them (see [`Watched`]). Files and network
/// destinations always get JSON.
pub fn open_outputs(
    destinations: &[Destination],
    network: &NetworkArgs,
    hangups: &Hangups,
    mut view: Option<Terminal>,
) -> Result<Outputs, String> {
    let stdout = [Destination::Stdout];
    let destinations = if destinations.is_empty() {
        &stdout[..]
    } else {
        destinations
    };
    let Outputs { sink, figures } = match destinations {
        [only] if !only.is_network() => Outputs {
            sink: open_local(only, &mut view)?,
            figures: Vec::new(),
        },
        _ => fan_out(destinations, network, hangups, &mut view)?,
    };
    Ok(Outputs {
        sink: match view {
            Some(view) => Box::new(Watched::new(sink, Box::new(view))),
            None => sink,
        },
        figures,
    })
}

/// Each destination with a thread and a queue of its own.
fn fan_out(
    destinations: &[Destination],
    network: &NetworkArgs,
    hangups: &Hangups,
    view: &mut Option<Terminal>,
) -> Result<Outputs, String> {
    let tls = Tls::new(destinations, network)?;
    let spool_dir = network.spool_dir.clone().unwrap_or_else(default_spool_dir);
    let mut deliveries = Vec::new();
    let mut figures = Vec::new();
    for destination in destinations {
        let name = destination.name();
        let (sink, network_figures) = if destination.is_network() {
            let dir = spool_dir.join(spool_subdir(&name));
            let (sink, spool, send) = open_network(destination, &name, &dir, network, &tls)?;
            (sink, Some((spool, send)))
        } else {
            (open_local(destination, view)?, None)
        };
        let delivery = Delivery::new(sink, "alerts", hangups.clone());
        figures.push(Arc::new(OutputFigures {
            name,
            delivery: delivery.figures(),
            network: network_figures,
        }));
        deliveries.push(delivery);
    }
    Ok(Outputs {
        sink: Box::new(Fanout::start(deliveries)),
        figures,
    })
}

/// A file, or stdout: the terminal view when there is one (it is taken), else JSON.
fn open_local(
    destination: &Destination,
    view: &mut Option<Terminal>,
) -> Result<Box<dyn Sink>, String> {
    let path = match destination {
        Destination::File(path) => Some(path.as_path()),
        _ => match view.take() {
            Some(view) => return Ok(Box::new(view)),
            None => None,
        },
    };
    super::open(path).map_err(|e| e.to_string())
}

type Opened = (Box<dyn Sink>, Arc<spool::SpoolFigures>, Arc<SendFigures>);

fn open_network(
    destination: &Destination,
    name: &str,
    dir: &Path,
    network: &NetworkArgs,
    tls: &Tls,
) -> Result<Opened, String> {
    let (writer, reader, recovered) =
        spool::open(dir, network.spool_max).map_err(|e| format!("{name}: {e}"))?;
    if recovered.records > 0 || recovered.damaged > 0 {
        eprintln!(
            "spawnwatch: {name}: {} lines from before are in the spool {} and are sent first{}",
            recovered.records,
            dir.display(),
            if recovered.damaged > 0 {
                format!(
                    "; {} damaged records in it (a write cut short by a crash) are skipped",
                    recovered.damaged
                )
            } else {
                String::new()
            }
        );
    }
    let send = Arc::new(SendFigures::default());
    let sink: Box<dyn Sink> = match destination {
        Destination::Syslog(transport, address) => {
            let secure = match transport {
                Transport::Tls => tls.syslog(address).map_err(|e| format!("{name}: {e}"))?,
                _ => None,
            };
            Box::new(Syslog::new(
                name.to_string(),
                address.clone(),
                *transport,
                secure,
            )?)
        }
        Destination::Http(url) => Box::new(Http::new(
            url.clone(),
            network.http_format,
            network.http_header.clone(),
            tls.http_agent(),
            send.rejected.clone(),
            say_on_stderr(),
        )),
        Destination::Stdout | Destination::File(_) => unreachable!("not a network destination"),
    };
    let spool_figures = writer.figures();
    let forwarder = Forwarder {
        reader,
        sink,
        figures: send.clone(),
        say: say_on_stderr(),
        spool: dir.display().to_string(),
    };
    Ok((
        Box::new(SpoolSink::start(writer, forwarder)),
        spool_figures,
        send,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Destination, String> {
        value.parse()
    }

    #[test]
    fn every_form_of_destination_is_read() {
        use Destination::*;
        assert_eq!(parse("-"), Ok(Stdout));
        assert_eq!(parse("alerts.jsonl"), Ok(File("alerts.jsonl".into())));
        assert_eq!(
            parse(r"C:\spawnwatch\alerts.jsonl"),
            Ok(File(r"C:\spawnwatch\alerts.jsonl".into()))
        );
        assert_eq!(parse("file:-"), Ok(File("-".into())));
        assert_eq!(
            parse("syslog+tcp://siem.example:1514"),
            Ok(Syslog(Transport::Tcp, "siem.example:1514".into()))
        );
        assert_eq!(
            parse("syslog+tls://siem.example"),
            Ok(Syslog(Transport::Tls, "siem.example:6514".into()))
        );
        assert_eq!(
            parse("syslog+udp://[::1]:514/"),
            Ok(Syslog(Transport::Udp, "[::1]:514".into()))
        );
        assert_eq!(
            parse("https://splunk:8088/services/collector/event"),
            Ok(Http("https://splunk:8088/services/collector/event".into()))
        );
    }

    #[test]
    fn a_wrong_destination_says_what_is_wrong_and_shows_a_right_one() {
        let cases = [
            ("syslog://siem:514", "`syslog://` is no destination spawnwatch knows"),
            ("syslog+tcp://siem:99999", "`99999` is no port (1-65535); give syslog+tcp://HOST:PORT, for example syslog+tcp://collector.example:514"),
            ("syslog+tcp://", "the host is missing"),
            ("syslog+tls://::1:6514", "looks like an IPv6 address: put it in brackets"),
            ("syslog+udp://siem/x", "has a path"),
            ("https://", "is no URL"),
            ("file:", "file: needs a path"),
        ];
        for (value, expected) in cases {
            let error = parse(value).unwrap_err();
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    /// Whatever this build has, the refusal a build without TLS gives.
    #[test]
    fn without_tls_tls_destinations_are_refused_with_how_to_build_with_it() {
        let refused = |value: &str| refuse_without_tls(&parse(value).unwrap(), false);
        let error = refused("syslog+tls://siem.example").unwrap_err();
        assert!(
            error.starts_with(
                "syslog+tls://siem.example:6514: this spawnwatch was built without TLS"
            ),
            "{error}"
        );
        assert!(error.contains("`cargo build --release`"), "{error}");
        assert!(refused("HTTPS://splunk:8088/services/collector/event").is_err());
        for plain in [
            "syslog+tcp://siem",
            "syslog+udp://siem",
            "http://siem/x",
            "-",
            "a.jsonl",
        ] {
            assert_eq!(refused(plain), Ok(()), "{plain}");
        }
        let https = parse("https://siem/x").unwrap();
        assert_eq!(refuse_without_tls(&https, true), Ok(()));
    }

    #[test]
    fn headers_and_sizes_are_read() {
        assert_eq!(
            parse_header("Authorization: Splunk 1234"),
            Ok(("Authorization".into(), "Splunk 1234".into()))
        );
        assert!(parse_header("Authorization Splunk")
            .unwrap_err()
            .contains("has no `:`"));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("1").unwrap_err().contains("between 4K"));
    }

    #[test]
    fn spool_directories_are_file_names() {
        assert_eq!(
            spool_subdir("syslog+tls://[::1]:6514"),
            "syslog_tls______1__6514"
        );
        let long = format!("https://h/{}", "a".repeat(200));
        assert_eq!(spool_subdir(&long).len(), 99);
    }
}
