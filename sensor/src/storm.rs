//! Alert-storm suppression: a web shell in a loop can start thousands of processes a
//! minute. Per rule and incident (see [`crate::incident`]), the first `limit` alerts
//! within `window` pass; further ones are counted, and one summary line replaces them
//! when the window closes. Per incident rather than per parent: each `cmd /c whoami`
//! a web shell runs is a new parent, so a loop of them was never one storm.

use crate::incident::Sighting;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::collections::HashMap;

#[derive(Copy, Clone, Debug)]
pub struct StormLimits {
    /// Alerts per rule and incident that pass within one window; 0 turns suppression
    /// off.
    pub limit: u32,
    pub window: Duration,
}

impl Default for StormLimits {
    fn default() -> StormLimits {
        StormLimits {
            limit: 20,
            window: Duration::seconds(60),
        }
    }
}

/// Which alerts count together: one rule in one incident. The rest is what the
/// summary line says of the incident.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StormKey {
    pub rule: String,
    pub incident: String,
    pub hostname: Option<String>,
    /// The process the incident is grouped under.
    pub server_pid: u32,
    pub server_image: Option<String>,
}

impl StormKey {
    pub fn of(sighting: &Sighting) -> StormKey {
        let server = &sighting.server;
        StormKey {
            rule: sighting.rule.clone(),
            incident: sighting.incident.clone(),
            hostname: sighting.host.clone(),
            server_pid: server.pid,
            server_image: server.image_path.clone().or_else(|| server.exe.clone()),
        }
    }
}

#[derive(Debug)]
struct Window {
    opened: DateTime<Utc>,
    passed: u32,
    suppressed: u64,
    last: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct StormGuard {
    limits: StormLimits,
    windows: HashMap<StormKey, Window>,
    /// Alerts suppressed so far, for the stats line.
    pub suppressed_total: u64,
}

impl StormGuard {
    pub fn new(limits: StormLimits) -> StormGuard {
        StormGuard {
            limits,
            ..StormGuard::default()
        }
    }

    /// Whether the alert for `key` at `now` is written. Returns the summary line of a
    /// window this alert closes, if any, to be written before it.
    pub fn admit(&mut self, key: &StormKey, now: DateTime<Utc>) -> (bool, Option<String>) {
        if self.limits.limit == 0 {
            return (true, None);
        }
        let mut summary = None;
        if let Some(w) = self.windows.get(key) {
            if now - w.opened > self.limits.window {
                summary = self.close(key);
            }
        }
        let w = self.windows.entry(key.clone()).or_insert(Window {
            opened: now,
            passed: 0,
            suppressed: 0,
            last: now,
        });
        w.last = w.last.max(now);
        if w.passed < self.limits.limit {
            w.passed += 1;
            (true, summary)
        } else {
            w.suppressed += 1;
            self.suppressed_total += 1;
            (false, summary)
        }
    }

    /// Closes every window older than the limit at `now` (or all, with `None`) and
    /// returns their summary lines.
    pub fn close_expired(&mut self, now: Option<DateTime<Utc>>) -> Vec<String> {
        let window = self.limits.window;
        let expired: Vec<StormKey> = self
            .windows
            .iter()
            .filter(|(_, w)| now.is_none_or(|now| now - w.opened > window))
            .map(|(k, _)| k.clone())
            .collect();
        let mut lines: Vec<String> = expired.iter().filter_map(|k| self.close(k)).collect();
        lines.sort();
        lines
    }

    fn close(&mut self, key: &StormKey) -> Option<String> {
        let w = self.windows.remove(key)?;
        (w.suppressed > 0).then(|| {
            json!({
                "kind": "alert-summary",
                "hostname": key.hostname,
                "incident": key.incident,
                "rule": {"id": key.rule},
                "parent": {"pid": key.server_pid, "image_path": key.server_image},
                "suppressed": w.suppressed,
                "alerted": w.passed,
                "window_start": w.opened.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "last_suppressed": w.last.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "message": format!("{} more alerts of rule {} in this incident were suppressed after the first {}", w.suppressed, key.rule, w.passed),
            })
            .to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32) -> StormKey {
        StormKey {
            rule: "R".into(),
            incident: format!("h/{pid}/-"),
            hostname: Some("h".into()),
            server_pid: pid,
            server_image: None,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn past_the_limit_alerts_are_counted_and_summarised_once() {
        let mut g = StormGuard::new(StormLimits {
            limit: 3,
            window: Duration::seconds(60),
        });
        let passed = (0..1000).filter(|i| g.admit(&key(1), t(i / 100)).0).count();
        assert_eq!(passed, 3);
        assert_eq!(g.suppressed_total, 997);
        let lines = g.close_expired(None);
        assert_eq!(lines.len(), 1);
        let summary: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(summary["kind"], "alert-summary");
        assert_eq!(summary["suppressed"], 997);
        assert_eq!(summary["parent"]["pid"], 1);
        assert_eq!(summary["incident"], "h/1/-");
    }

    #[test]
    fn each_incident_has_its_own_budget_and_a_new_window_opens_after_the_old() {
        let mut g = StormGuard::new(StormLimits {
            limit: 1,
            window: Duration::seconds(10),
        });
        assert!(g.admit(&key(1), t(0)).0);
        assert!(g.admit(&key(2), t(0)).0, "another incident");
        assert!(!g.admit(&key(1), t(1)).0);
        let (passed, summary) = g.admit(&key(1), t(20));
        assert!(passed, "a new window");
        assert!(summary.unwrap().contains("\"suppressed\":1"));
        assert!(
            g.close_expired(Some(t(21))).is_empty(),
            "nothing suppressed in the open windows"
        );
    }

    #[test]
    fn limit_zero_turns_it_off() {
        let mut g = StormGuard::new(StormLimits {
            limit: 0,
            window: Duration::seconds(10),
        });
        assert!((0..100).all(|_| g.admit(&key(1), t(0)).0));
        assert!(g.close_expired(None).is_empty());
    }
}
