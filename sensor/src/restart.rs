//! Restarting a live source that stopped on its own, and telling the SIEM.
//!
//! An attacker who stops the sensor's ETW session (`logman stop spawnwatch-kernel-process
//! -ets`), or a kernel socket that fails, leaves the sensor blind. The source reports the
//! end of its part at once ([`LiveSink::ended`](crate::source::live::LiveSink::ended)); the
//! run loop writes a `spawnwatch.source-stopped` sensor alert, stops what is left of the
//! source and starts it again: at once the first time, then after a doubling wait while
//! starts fail or the source keeps stopping soon after it started. When it runs again a
//! second alert of the same rule says how long the sensor was blind.

use crate::source::live::SourceEnd;
use serde_json::json;
use std::time::{Duration, Instant};

pub const RULE_ID: &str = "spawnwatch.source-stopped";
/// ATT&CK: Impair Defenses: Indicator Blocking (stopping an ETW session is its example).
const ATTACK: &str = "T1562.006";

/// How soon a stopped source is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first restart that did not hold; it doubles from there.
    pub first: Duration,
    /// The longest wait; a source that ran this long counts as healthy again.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before start number `attempt` of a run of failures (0: the first, at once).
    pub fn delay(&self, attempt: u32) -> Duration {
        match attempt {
            0 => Duration::ZERO,
            n => self
                .first
                .saturating_mul(1u32 << (n - 1).min(20))
                .min(self.max),
        }
    }
}

/// The source is down: since when, why, and when to try again.
#[derive(Debug)]
struct Outage {
    end: SourceEnd,
    /// Starts tried since the end.
    attempts: u32,
    next_try: Instant,
}

/// The restart bookkeeping of one run: pure, so the run loop's tests drive it fully.
#[derive(Debug)]
pub struct Restarts {
    backoff: Backoff,
    outage: Option<Outage>,
    /// Successful restarts (the stats line's `session_restarts`).
    count: u64,
    /// Starts that failed or did not hold, in a row: the backoff's position.
    failures: u32,
    last_start: Instant,
}

impl Restarts {
    pub fn new(backoff: Backoff, started: Instant) -> Restarts {
        Restarts {
            backoff,
            outage: None,
            count: 0,
            failures: 0,
            last_start: started,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// A part of the source ended: returns the sensor line to write. A source that
    /// stops again soon after its restart waits longer before the next one.
    pub fn ended(&mut self, end: SourceEnd, now: Instant) -> String {
        if end.at.saturating_duration_since(self.last_start) >= self.backoff.max {
            self.failures = 0;
        }
        let line = stopped_line(&end, now);
        eprintln!(
            "spawnwatch: warning: {} stopped ({}): the sensor is blind until it restarts",
            end.part, end.reason
        );
        self.outage = Some(Outage {
            end,
            attempts: 0,
            next_try: now + self.backoff.delay(self.failures),
        });
        line
    }

    /// Whether the source is down and its next start is due.
    pub fn due(&self, now: Instant) -> bool {
        self.outage.as_ref().is_some_and(|o| now >= o.next_try)
    }

    pub fn start_failed(&mut self, error: &str, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if let Some(outage) = self.outage.as_mut() {
            outage.attempts += 1;
            let wait = self.backoff.delay(self.failures);
            outage.next_try = now + wait;
            eprintln!(
                "spawnwatch: restarting {} failed: {error}; next try in {:.0} s",
                outage.end.part,
                wait.as_secs_f64()
            );
        }
    }

    /// The source runs again: returns the sensor line that says how long it was blind.
    pub fn started(&mut self, now: Instant) -> Option<String> {
        let outage = self.outage.take()?;
        self.count += 1;
        // Counted as a failure until it has run for a while (see `ended`).
        self.failures = self.failures.saturating_add(1);
        self.last_start = now;
        let blind = now.saturating_duration_since(outage.end.at);
        eprintln!(
            "spawnwatch: {} restarted; the sensor was blind for {:.1} s",
            outage.end.part,
            blind.as_secs_f64()
        );
        Some(restarted_line(&outage.end, outage.attempts + 1, blind))
    }
}

fn rule(title: &str) -> serde_json::Value {
    json!({"id": RULE_ID, "title": title, "severity": "high", "attack": [ATTACK]})
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn stopped_line(end: &SourceEnd, now: Instant) -> String {
    let utc_now = chrono::Utc::now();
    let since = chrono::Duration::from_std(now.saturating_duration_since(end.at))
        .map_or(utc_now, |ago| utc_now - ago);
    json!({
        "kind": "sensor",
        "timestamp": timestamp(utc_now),
        "hostname": crate::host::hostname(),
        "rule": rule("A live source stopped: the sensor is blind until it restarts"),
        "source": {
            "session": end.part,
            "state": "stopped",
            "reason": end.reason,
            "blind_since": timestamp(since),
        },
    })
    .to_string()
}

fn restarted_line(end: &SourceEnd, attempts: u32, blind: Duration) -> String {
    json!({
        "kind": "sensor",
        "timestamp": timestamp(chrono::Utc::now()),
        "hostname": crate::host::hostname(),
        "rule": rule("A live source stopped and was restarted: the sensor was blind"),
        "source": {
            "session": end.part,
            "state": "restarted",
            "reason": end.reason,
            "blind_ms": blind.as_millis() as u64,
            "attempts": attempts,
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn end(at: Instant) -> SourceEnd {
        SourceEnd {
            part: "spawnwatch-kernel-process".into(),
            reason: "stopped from outside".into(),
            at,
        }
    }

    #[test]
    fn backoff_starts_at_once_then_doubles_up_to_the_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.delay(u32::MAX), b.max);
    }

    #[test]
    fn an_end_is_restarted_at_once_and_both_lines_say_what_happened() {
        let t0 = Instant::now();
        let mut r = Restarts::new(Backoff::default(), t0);
        let at = t0 + Duration::from_secs(600);
        let stopped: Value = serde_json::from_str(&r.ended(end(at), at)).unwrap();
        assert_eq!(stopped["kind"], "sensor");
        assert_eq!(stopped["rule"]["id"], RULE_ID);
        assert_eq!(stopped["rule"]["severity"], "high");
        assert_eq!(stopped["source"]["session"], "spawnwatch-kernel-process");
        assert_eq!(stopped["source"]["state"], "stopped");
        assert!(r.due(at), "the first restart is tried at once");

        r.start_failed("access denied", at);
        assert!(!r.due(at + Duration::from_millis(999)));
        assert!(r.due(at + Duration::from_secs(1)));
        r.start_failed("access denied", at + Duration::from_secs(1));
        assert!(!r.due(at + Duration::from_millis(2999)));
        let back = at + Duration::from_secs(3);
        let restarted: Value = serde_json::from_str(&r.started(back).unwrap()).unwrap();
        assert_eq!(restarted["source"]["state"], "restarted");
        assert_eq!(restarted["source"]["blind_ms"], 3000);
        assert_eq!(restarted["source"]["attempts"], 3);
        assert_eq!(r.count(), 1);
        assert!(!r.due(back), "running again");
        assert!(r.started(back).is_none(), "nothing to restart");
    }

    #[test]
    fn a_source_that_keeps_stopping_waits_longer_each_time_until_it_holds() {
        let t0 = Instant::now();
        let mut r = Restarts::new(Backoff::default(), t0);
        // Ends seconds after each restart: 0, 1, 2, 4 s waits.
        let mut now = t0 + Duration::from_secs(3600);
        let mut waits = Vec::new();
        for _ in 0..4 {
            r.ended(end(now), now);
            let mut wait = 0;
            while !r.due(now + Duration::from_secs(wait)) {
                wait += 1;
            }
            waits.push(wait);
            now += Duration::from_secs(wait);
            r.started(now);
            now += Duration::from_secs(2);
        }
        assert_eq!(waits, [0, 1, 2, 4]);
        // Ran longer than the cap: healthy again, restarted at once.
        now += Duration::from_secs(61);
        r.ended(end(now), now);
        assert!(r.due(now));
        assert_eq!(r.count(), 4);
    }
}
