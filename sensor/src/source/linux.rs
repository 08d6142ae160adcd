//! Which of the two Linux live sources runs: the eBPF programs, which see every process
//! whole at its exec, where the kernel allows them; the process connector, which reads
//! `/proc` after each exec, where it does not (no BTF, no permission, a kernel older
//! than 5.8, a container). `auto` tries eBPF first and says on stderr, and in the stats
//! line, which source runs and why eBPF does not; `--source` forces one.

use super::ebpf::{self, EbpfSource};
use super::live::{Fallback, LiveSink, LiveSource};
use super::proc_connector::{self, seed, ProcConnector};
use super::Choice;
use crate::record::SourceEvent;
use serde_json::Value;

/// Starts the source `choice` names (a restart starts it again the same way), then
/// snapshots the processes already running.
pub fn start(
    choice: Choice,
    sink: LiveSink,
) -> Result<(Box<dyn LiveSource>, Vec<SourceEvent>), String> {
    let ebpf_sink = sink.clone();
    let source = choose(
        choice,
        move || EbpfSource::start(ebpf_sink),
        move || ProcConnector::start(sink),
    )?;
    Ok((source, seed()))
}

/// The choice between two ways to start, announced on stderr.
fn choose<E, C>(
    choice: Choice,
    ebpf: impl FnOnce() -> Result<E, String>,
    connector: impl FnOnce() -> Result<C, String>,
) -> Result<Box<dyn LiveSource>, String>
where
    E: LiveSource + 'static,
    C: LiveSource + 'static,
{
    let connector_because = |why: Option<String>| {
        let source = connector()?;
        match &why {
            Some(why) => eprintln!(
                "spawnwatch: source: proc-connector (the kernel's process connector and \
                 /proc), since eBPF cannot run: {why}"
            ),
            None => eprintln!(
                "spawnwatch: source: proc-connector (the kernel's process connector and /proc)"
            ),
        }
        Ok(Box::new(Connector { source, why }) as Box<dyn LiveSource>)
    };
    match choice {
        Choice::ProcConnector => connector_because(None),
        Choice::Ebpf => {
            let source = ebpf().map_err(|why| {
                format!(
                    "the eBPF source cannot run: {why} (`--source proc-connector` uses the \
                     kernel's process connector instead)"
                )
            })?;
            announce_ebpf();
            Ok(Box::new(source))
        }
        Choice::Auto => match ebpf() {
            Ok(source) => {
                announce_ebpf();
                Ok(Box::new(source))
            }
            Err(why) => connector_because(Some(why)),
        },
    }
}

fn announce_ebpf() {
    eprintln!(
        "spawnwatch: source: ebpf (programs on the kernel's exec, fork and exit tracepoints)"
    );
}

/// The connector, and why eBPF is not running in its place (in its stats).
struct Connector<C> {
    source: C,
    why: Option<String>,
}

impl<C> Connector<C> {
    /// The connector's figures, and why eBPF is not running.
    fn with_reason(&self, mut stats: Value) -> Value {
        if let (Some(why), Some(figures)) = (&self.why, stats.as_object_mut()) {
            figures.insert("ebpf_unavailable".into(), why.as_str().into());
        }
        stats
    }
}

impl<C: LiveSource> LiveSource for Connector<C> {
    fn stats(&self) -> Value {
        self.with_reason(self.source.stats())
    }

    fn stop(self: Box<Self>) -> Value {
        let Connector { source, why } = *self;
        let stats = Box::new(source).stop();
        Connector { source: (), why }.with_reason(stats)
    }

    fn fallback(&self) -> Option<Fallback> {
        Some(Fallback {
            running: proc_connector::SOURCE,
            instead_of: ebpf::SOURCE,
            reason: self.why.clone()?,
        })
    }
}

impl LiveSource for ProcConnector {
    fn stats(&self) -> Value {
        ProcConnector::stats(self).to_json()
    }
    fn stop(self: Box<Self>) -> Value {
        ProcConnector::stop(*self).to_json()
    }
}

impl LiveSource for EbpfSource {
    fn stats(&self) -> Value {
        EbpfSource::stats(self).to_json()
    }
    fn stop(self: Box<Self>) -> Value {
        EbpfSource::stop(*self).to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A source that only names itself.
    struct Named(&'static str);

    impl LiveSource for Named {
        fn stats(&self) -> Value {
            serde_json::json!({"kind": "stats", "source": self.0})
        }
        fn stop(self: Box<Self>) -> Value {
            self.stats()
        }
    }

    fn ebpf_ok() -> Result<Named, String> {
        Ok(Named("ebpf"))
    }

    fn ebpf_refused() -> Result<Named, String> {
        Err("the kernel has no BTF".into())
    }

    fn connector_ok() -> Result<Named, String> {
        Ok(Named("proc-connector"))
    }

    #[test]
    fn auto_takes_ebpf_where_it_runs() {
        let tried = Cell::new(false);
        let source = choose(Choice::Auto, ebpf_ok, || {
            tried.set(true);
            connector_ok()
        })
        .unwrap();
        assert_eq!(source.stats()["source"], "ebpf");
        assert!(!tried.get(), "the connector is not started beside it");
    }

    #[test]
    fn auto_falls_back_to_the_connector_and_says_why() {
        let source = choose(Choice::Auto, ebpf_refused, connector_ok).unwrap();
        let stats = source.stats();
        assert_eq!(stats["source"], "proc-connector");
        assert_eq!(stats["ebpf_unavailable"], "the kernel has no BTF");
        assert_eq!(
            source.fallback(),
            Some(Fallback {
                running: "proc-connector",
                instead_of: "ebpf",
                reason: "the kernel has no BTF".into()
            })
        );
    }

    #[test]
    fn a_forced_source_is_that_one_or_an_error() {
        let err = choose(Choice::Ebpf, ebpf_refused, connector_ok)
            .err()
            .expect("forced eBPF does not fall back");
        assert_eq!(
            err,
            "the eBPF source cannot run: the kernel has no BTF (`--source proc-connector` \
             uses the kernel's process connector instead)"
        );
        let source = choose(Choice::ProcConnector, ebpf_ok, connector_ok).unwrap();
        let stats = source.stats();
        assert_eq!(stats["source"], "proc-connector");
        assert_eq!(
            stats.get("ebpf_unavailable"),
            None,
            "asked for, not a fallback"
        );
        assert_eq!(source.fallback(), None);
        let refused = choose(Choice::Auto, ebpf_refused, || {
            Err::<Named, _>("no connector".to_string())
        });
        assert_eq!(refused.err().as_deref(), Some("no connector"));
    }
}
