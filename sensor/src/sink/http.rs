//! HTTP outputs: a batch of lines per POST, and a 2xx reply acknowledges them.
//!
//! Bodies, by `--http-format`:
//! - `ndjson`: the lines as they are, one per line (`application/x-ndjson`);
//! - `splunk-hec`: Splunk's HTTP Event Collector JSON events, concatenated: `{"time":
//!   EPOCH-SECONDS, "host": ..., "source": "spawnwatch", "sourcetype": "_json",
//!   "event": ALERT}` (POST to `/services/collector/event`, with `--http-header
//!   "Authorization: Splunk TOKEN"`);
//! - `elastic-bulk`: Elasticsearch's bulk API, `{"create":{}}` then the alert on the
//!   next line, every line ending in a newline (POST to `/INDEX/_bulk`; `create`
//!   works for indices and data streams alike).
//!
//! A reply of 400, 413 or 422 says the batch itself is bad: it is split in halves
//! until the line that is refused is found; that line is dropped and counted, the rest
//! go through. Any other failure (no connection, a timeout, 401, 429, 503) is retried
//! later with the whole batch. Elasticsearch answers 200 even when some documents
//! failed: those refused for good are dropped and counted; if any may succeed later
//! (429, 5xx), the whole batch is sent again, and the others arrive twice.

use super::{Line, Sink, Stopped};
use serde_json::Value;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    SplunkHec,
    ElasticBulk,
}

const TIMEOUT_CONNECT: Duration = Duration::from_secs(5);
/// A slow collector under load can take long to answer a batch.
const TIMEOUT_REPLY: Duration = Duration::from_secs(30);

pub struct Http {
    name: String,
    url: String,
    format: Format,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
    /// Lines the collector refused for good.
    rejected: Arc<AtomicU64>,
    say: super::delivery::Say,
    said_rejected: bool,
}

impl Http {
    pub fn new(
        url: String,
        format: Format,
        headers: Vec<(String, String)>,
        agent: ureq::AgentBuilder,
        rejected: Arc<AtomicU64>,
        say: super::delivery::Say,
    ) -> Http {
        let agent = agent
            .timeout_connect(TIMEOUT_CONNECT)
            .timeout_read(TIMEOUT_REPLY)
            .timeout_write(TIMEOUT_REPLY)
            .build();
        Http {
            name: url.clone(),
            url,
            format,
            headers,
            agent,
            rejected,
            say,
            said_rejected: false,
        }
    }

    /// Posts `lines`; lines refused for good are dropped here.
    fn post(&mut self, lines: &[Line]) -> io::Result<()> {
        let (content_type, body) = body(self.format, lines);
        let mut request = self.agent.post(&self.url).set("Content-Type", content_type);
        for (name, value) in &self.headers {
            request = request.set(name, value);
        }
        match request.send_bytes(&body) {
            Ok(reply) if self.format == Format::ElasticBulk => {
                let text = reply.into_string()?;
                self.bulk_result(&text)
            }
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, reply)) => {
                let text = reply.into_string().unwrap_or_default();
                let why = format!("HTTP {code}: {}", first_line(&text));
                if !matches!(code, 400 | 413 | 422) {
                    return Err(io::Error::other(why));
                }
                if let [line] = lines {
                    self.reject(1, &format!("{why}; the line: {}", first_line(&line.text)));
                    return Ok(());
                }
                let (first, second) = lines.split_at(lines.len() / 2);
                self.post(first)?;
                self.post(second)
            }
            Err(ureq::Error::Transport(e)) => Err(io::Error::other(e.to_string())),
        }
    }

    /// An Elasticsearch bulk reply: `errors` true when some items failed.
    fn bulk_result(&mut self, text: &str) -> io::Result<()> {
        let reply: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if reply["errors"] != Value::Bool(true) {
            return Ok(());
        }
        let items = reply["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let failed: Vec<&Value> = items
            .iter()
            .filter_map(|item| item.as_object()?.values().next())
            .filter(|result| result["status"].as_u64().unwrap_or(0) >= 300)
            .collect();
        let retry = failed.iter().find(|r| {
            let status = r["status"].as_u64().unwrap_or(0);
            status == 429 || status >= 500
        });
        if let Some(result) = retry {
            return Err(io::Error::other(format!(
                "Elasticsearch refused some documents for now ({}): the batch is sent again",
                result["error"]
            )));
        }
        if let Some(first) = failed.first() {
            self.reject(failed.len() as u64, &first["error"].to_string());
        }
        Ok(())
    }

    fn reject(&mut self, n: u64, why: &str) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
        if !self.said_rejected {
            self.said_rejected = true;
            (self.say)(format!(
                "{} refused {n} lines for good, which are dropped and counted (dropped in the stats line; only the first refusal is said): {why}",
                self.name
            ));
        }
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(300) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}

/// The content type and body of a batch.
fn body(format: Format, lines: &[Line]) -> (&'static str, Vec<u8>) {
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.text.len() + 100).sum());
    for line in lines {
        match format {
            Format::Ndjson => {}
            Format::ElasticBulk => body.extend_from_slice(b"{\"create\":{}}\n"),
            Format::SplunkHec => body.extend_from_slice(&hec_envelope(&line.text)),
        }
        body.extend_from_slice(line.text.as_bytes());
        body.extend_from_slice(if format == Format::SplunkHec {
            b"}\n"
        } else {
            b"\n"
        });
    }
    let content_type = match format {
        Format::SplunkHec => "application/json",
        Format::Ndjson | Format::ElasticBulk => "application/x-ndjson",
    };
    (content_type, body)
}

/// A HEC event up to its `event` value: the alert's time and host when it has them.
fn hec_envelope(line: &str) -> Vec<u8> {
    let alert: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    let mut envelope = String::from("{");
    let time = alert["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    if let Some(time) = time {
        let millis = time.timestamp_millis();
        envelope += &format!(
            "\"time\":{}.{:03},",
            millis.div_euclid(1000),
            millis.rem_euclid(1000)
        );
    }
    if let Some(host) = alert["hostname"].as_str() {
        envelope += &format!("\"host\":{},", Value::from(host));
    }
    envelope += "\"source\":\"spawnwatch\",\"sourcetype\":\"_json\",\"event\":";
    envelope.into_bytes()
}

impl Sink for Http {
    fn name(&self) -> &str {
        &self.name
    }

    /// All or nothing (less the lines refused for good).
    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        if lines.is_empty() {
            return Ok(());
        }
        self.post(lines).map_err(|error| Stopped {
            delivered: 0,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::lines;

    const ALERT: &str =
        r#"{"kind":"alert","timestamp":"2019-05-24T01:33:53.1124866Z","hostname":"IEWIN7"}"#;

    #[test]
    fn hec_events_carry_time_host_and_the_alert_as_event() {
        let (kind, body) = body(Format::SplunkHec, &lines(&[ALERT, r#"{"kind":"stats"}"#]));
        assert_eq!(kind, "application/json");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(
                "{{\"time\":1558661633.112,\"host\":\"IEWIN7\",\"source\":\"spawnwatch\",\"sourcetype\":\"_json\",\"event\":{ALERT}}}\n\
                 {{\"source\":\"spawnwatch\",\"sourcetype\":\"_json\",\"event\":{{\"kind\":\"stats\"}}}}\n"
            )
        );
    }

    #[test]
    fn a_bulk_body_has_an_action_line_before_each_alert_and_ends_in_a_newline() {
        let (kind, body) = body(Format::ElasticBulk, &lines(&[ALERT, ALERT]));
        assert_eq!(kind, "application/x-ndjson");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!("{{\"create\":{{}}}}\n{ALERT}\n{{\"create\":{{}}}}\n{ALERT}\n")
        );
    }
}

#[cfg(test)]
mod receiver_tests {
    use super::*;
    use crate::sink::collectors::HttpReceiver;
    use crate::sink::forward::tests::{wait_until, Sending};
    use crate::sink::forward::SendFigures;

    fn http(receiver: &HttpReceiver, format: Format) -> impl FnOnce(&SendFigures) -> Box<dyn Sink> {
        let headers = vec![("Authorization".to_string(), "Splunk 0000-token".to_string())];
        let url = receiver.url.clone();
        move |figures| {
            let say = crate::sink::delivery::say_on_stderr();
            Box::new(Http::new(
                url,
                format,
                headers,
                ureq::AgentBuilder::new(),
                figures.rejected.clone(),
                say,
            ))
        }
    }

    fn alert(body_line: &str) -> u64 {
        let v: Value = serde_json::from_str(body_line).unwrap();
        v["n"].as_u64().unwrap()
    }

    /// Splunk HEC: one JSON event per alert, the alert under `event`; a 503 keeps the
    /// batch, sent again whole until a 2xx acknowledges it.
    #[test]
    fn splunk_hec_events_are_sent_again_after_a_503_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = HttpReceiver::start("/services/collector/event");
        let mut sending = Sending::start(dir.path(), 1 << 20, http(&receiver, Format::SplunkHec));
        sending.write(0..3);
        let (request, reply) = receiver.next();
        assert_eq!(request.path, "/services/collector/event");
        assert_eq!(request.header("authorization"), Some("Splunk 0000-token"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let events: Vec<Value> = request
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.len(), 3, "{}", request.body);
        for (n, event) in events.iter().enumerate() {
            assert_eq!(event["source"], "spawnwatch");
            assert_eq!(event["sourcetype"], "_json");
            assert_eq!(event["event"]["n"], n);
        }
        reply
            .send((503, r#"{"text":"Server is busy","code":9}"#.into()))
            .unwrap();
        let said = sending.said("cannot send to ");
        assert!(said.contains("HTTP 503"), "{said}");
        let (again, reply) = receiver.next();
        assert_eq!(again.body, request.body, "the same batch again");
        reply
            .send((200, r#"{"text":"Success","code":0}"#.into()))
            .unwrap();
        assert_eq!(sending.sink.close(), 0);
        assert_eq!(Sending::load(&sending.spool.sent), 3);
        assert_eq!(Sending::load(&sending.send.failures), 1);
    }

    /// Elasticsearch bulk: an action line before each alert, a newline after the last.
    /// A document refused for good (400 in the reply's items) is dropped and counted,
    /// the rest are acknowledged.
    #[test]
    fn elastic_bulk_bodies_follow_the_bulk_api_and_a_refused_document_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = HttpReceiver::start("/spawnwatch/_bulk");
        let mut sending = Sending::start(dir.path(), 1 << 20, http(&receiver, Format::ElasticBulk));
        sending.write(0..2);
        let (request, reply) = receiver.next();
        assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
        assert!(request.body.ends_with('\n'));
        let lines: Vec<&str> = request.body.lines().collect();
        assert_eq!(lines.len(), 4, "{}", request.body);
        assert_eq!(
            (lines[0], lines[2]),
            (r#"{"create":{}}"#, r#"{"create":{}}"#)
        );
        assert_eq!((alert(lines[1]), alert(lines[3])), (0, 1));
        reply
            .send((
                200,
                r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#.into(),
            ))
            .unwrap();
        assert_eq!(sending.sink.close(), 1, "the refused document");
        assert_eq!(Sending::load(&sending.send.rejected), 1);
        assert_eq!(Sending::load(&sending.spool.queued), 0);
    }

    /// While the collector takes its time to answer, alerts keep going into the spool:
    /// the writer is never held back. They all go once it answers.
    #[test]
    fn a_slow_collector_holds_back_nothing_and_gets_everything() {
        let dir = tempfile::tempdir().unwrap();
        let receiver = HttpReceiver::start("/ingest");
        let mut sending = Sending::start(dir.path(), 1 << 20, http(&receiver, Format::Ndjson));
        sending.write(0..1);
        let (first, reply) = receiver.next();
        for n in 1..1000 {
            sending.write(n..n + 1);
        }
        assert_eq!(
            Sending::load(&sending.spool.queued),
            1000,
            "spooled while the reply waits"
        );
        reply.send((200, "{}".into())).unwrap();
        let mut got: Vec<u64> = first.body.lines().map(alert).collect();
        let replying = std::thread::spawn(move || {
            while got.len() < 1000 {
                let (request, reply) = receiver.next();
                got.extend(request.body.lines().map(alert));
                reply.send((200, "{}".into())).unwrap();
            }
            got
        });
        wait_until("the spool sent", || {
            Sending::load(&sending.spool.queued) == 0
        });
        assert_eq!(replying.join().unwrap(), (0..1000).collect::<Vec<_>>());
        assert_eq!(sending.sink.close(), 0);
    }
}
