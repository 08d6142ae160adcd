//! How long alerts take inside the sensor: from an event's arrival in the pipeline
//! (before the process table) to its alert line written and flushed. The writer
//! records each alert; the live stats line reports and resets the figures.

use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

/// Samples kept per stats interval; past this only the count and the maximum grow,
/// so a storm cannot make the sensor's memory grow.
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Default)]
pub struct AlertLatency {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// Microseconds, in arrival order.
    samples: Vec<u64>,
    count: u64,
    max: u64,
}

impl AlertLatency {
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.count += 1;
        w.max = w.max.max(micros);
        if w.samples.len() < MAX_SAMPLES {
            w.samples.push(micros);
        }
    }

    /// The figures since the last call (`count`, `p50`, `p99`, `max`, in µs), and a
    /// fresh start; `null` when no alert was written.
    pub fn take(&self) -> Value {
        let mut w = std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()));
        if w.count == 0 {
            return Value::Null;
        }
        w.samples.sort_unstable();
        let at = |q: f64| w.samples[((w.samples.len() - 1) as f64 * q).round() as usize];
        json!({"count": w.count, "p50": at(0.50), "p99": at(0.99), "max": w.max})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_interval_then_a_fresh_start() {
        let latency = AlertLatency::default();
        assert_eq!(latency.take(), Value::Null);
        for micros in (1..=100).rev() {
            latency.record(Duration::from_micros(micros));
        }
        assert_eq!(
            latency.take(),
            json!({"count": 100, "p50": 51, "p99": 99, "max": 100})
        );
        latency.record(Duration::from_millis(3));
        assert_eq!(
            latency.take(),
            json!({"count": 1, "p50": 3000, "p99": 3000, "max": 3000})
        );
    }

    #[test]
    fn a_storm_keeps_counting_without_growing() {
        let latency = AlertLatency::default();
        for _ in 0..MAX_SAMPLES + 10 {
            latency.record(Duration::from_micros(5));
        }
        latency.record(Duration::from_secs(1));
        let figures = latency.take();
        assert_eq!(figures["count"], MAX_SAMPLES as u64 + 11);
        assert_eq!(figures["max"], 1_000_000);
        assert_eq!(figures["p99"], 5);
    }
}
