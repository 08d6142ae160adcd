//! The ETW source's figures, as a JSON object for the stats line (the runner adds what
//! the pipeline counted: events received and dropped at its channel).

use super::join::JoinCounts;
use serde_json::{json, Value};

/// What `ControlTraceW(EVENT_TRACE_CONTROL_QUERY)` reports for one session.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionLoss {
    /// `EventsLost`: events ETW could not write (buffers full).
    pub events_lost: u64,
    /// `RealTimeBuffersLost`: whole buffers the consumer did not take in time.
    pub realtime_buffers_lost: u64,
}

impl SessionLoss {
    fn to_json(self) -> Value {
        json!({"events_lost": self.events_lost, "realtime_buffers_lost": self.realtime_buffers_lost})
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtwStats {
    /// Process events received from Microsoft-Windows-Kernel-Process.
    pub kernel_process_events: u64,
    /// Process events received from the kernel system logger.
    pub system_logger_events: u64,
    /// Events whose schema or required fields could not be read.
    pub unparsed: u64,
    /// System logger events read by their documented fixed layout because TDH could
    /// not give them whole (its MOF class definitions come from WMI).
    pub logger_fixed_layout: u64,
    /// Dropped between the ETW callbacks and the join thread (queue full).
    pub queue_dropped: u64,
    pub join: JoinCounts,
    /// `None` when the session could not be queried (not running).
    pub kernel_process_loss: Option<SessionLoss>,
    pub system_logger_loss: Option<SessionLoss>,
}

impl EtwStats {
    /// Events lost by ETW itself, both sessions.
    pub fn etw_events_lost(&self) -> u64 {
        self.losses().map(|l| l.events_lost).sum()
    }

    pub fn etw_buffers_lost(&self) -> u64 {
        self.losses().map(|l| l.realtime_buffers_lost).sum()
    }

    fn losses(&self) -> impl Iterator<Item = SessionLoss> {
        self.kernel_process_loss
            .into_iter()
            .chain(self.system_logger_loss)
    }

    pub fn to_json(&self) -> Value {
        let j = &self.join;
        json!({
            "kind": "stats",
            "source": "etw",
            "kernel_process_events": self.kernel_process_events,
            "system_logger_events": self.system_logger_events,
            "unparsed": self.unparsed,
            "logger_fixed_layout": self.logger_fixed_layout,
            "joined": j.joined,
            "joined_late": j.joined_late,
            "kernel_only": j.kernel_only,
            "logger_only": j.logger_only,
            "rundown": j.rundown,
            "terminated": j.terminated,
            "duplicate_terminations": j.duplicate_terminations,
            "path_misses": j.path_misses,
            "account_lookups": j.accounts.lookups,
            "account_lookups_failed": j.accounts.failed,
            "account_lookups_timed_out": j.accounts.timed_out,
            "account_lookups_skipped": j.accounts.skipped,
            "dropped_queue": self.queue_dropped,
            "etw_events_lost": self.etw_events_lost(),
            "etw_realtime_buffers_lost": self.etw_buffers_lost(),
            "sessions": {
                "kernel_process": self.kernel_process_loss.map(SessionLoss::to_json),
                "system_logger": self.system_logger_loss.map(SessionLoss::to_json),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::etw_logic::accounts::AccountCounts;

    fn sample() -> EtwStats {
        EtwStats {
            kernel_process_events: 120,
            system_logger_events: 131,
            unparsed: 1,
            logger_fixed_layout: 3,
            queue_dropped: 2,
            join: JoinCounts {
                joined: 118,
                joined_late: 1,
                kernel_only: 2,
                logger_only: 0,
                rundown: 85,
                terminated: 110,
                accounts: AccountCounts {
                    lookups: 5,
                    timed_out: 2,
                    ..AccountCounts::default()
                },
                ..JoinCounts::default()
            },
            kernel_process_loss: Some(SessionLoss {
                events_lost: 4,
                realtime_buffers_lost: 1,
            }),
            system_logger_loss: None,
        }
    }

    #[test]
    fn json_is_a_stats_record() {
        let v = sample().to_json();
        assert_eq!(v["kind"], "stats");
        assert_eq!(v["source"], "etw");
        assert_eq!(v["joined"], 118);
        assert_eq!(v["kernel_process_events"], 120);
        assert_eq!(v["logger_fixed_layout"], 3);
        assert_eq!(v["account_lookups"], 5);
        assert_eq!(v["account_lookups_timed_out"], 2);
        assert_eq!(v["account_lookups_skipped"], 0);
        assert_eq!(v["dropped_queue"], 2);
        assert_eq!(v["etw_events_lost"], 4);
        assert_eq!(v["sessions"]["kernel_process"]["realtime_buffers_lost"], 1);
        assert!(v["sessions"]["system_logger"].is_null());
    }
}
