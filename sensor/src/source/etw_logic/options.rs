//! Settings of the live ETW source (plain data, so the command line can build them on
//! every platform).

use super::join::JoinConfig;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtwOptions {
    /// How long one half of a process start waits for the other (see `join`).
    pub join_wait: Duration,
    /// Capacity of the channel between the ETW callbacks and the join thread; a full
    /// channel drops (and counts) rather than block ETW.
    pub queue_capacity: usize,
    /// ETW flush timer (whole seconds, at least 1): bounds latency on a quiet host.
    pub flush_timer: Duration,
    /// ETW buffer size in KB.
    pub buffer_kb: u32,
    /// Written into every event's `hostname`.
    pub hostname: Option<String>,
}

impl Default for EtwOptions {
    fn default() -> Self {
        EtwOptions {
            join_wait: JoinConfig::default().wait,
            queue_capacity: 65_536,
            flush_timer: Duration::from_secs(1),
            buffer_kb: 64,
            hostname: None,
        }
    }
}

impl EtwOptions {
    pub fn join_config(&self) -> JoinConfig {
        JoinConfig {
            wait: self.join_wait,
            hostname: self.hostname.clone(),
            ..JoinConfig::default()
        }
    }

    /// The flush timer as ETW takes it: whole seconds, at least one.
    pub fn flush_timer_secs(&self) -> u64 {
        self.flush_timer.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_join_config() {
        let o = EtwOptions {
            hostname: Some("h".into()),
            flush_timer: Duration::from_millis(300),
            ..EtwOptions::default()
        };
        assert_eq!(o.join_config().wait, Duration::from_millis(1500));
        // one default: a Joiner built without options waits as long as the live source
        assert_eq!(EtwOptions::default().join_config(), JoinConfig::default());
        assert_eq!(o.join_config().hostname.as_deref(), Some("h"));
        assert_eq!(o.flush_timer_secs(), 1);
        assert_eq!(EtwOptions::default().queue_capacity, 65_536);
    }
}
