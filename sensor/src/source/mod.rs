//! Sources: where process events come from. Each produces [`crate::record::SourceEvent`]s;
//! everything after the source is shared by live and replay.

pub mod live;
pub mod replay;

#[cfg(windows)]
pub mod etw;

#[cfg(target_os = "linux")]
pub mod proc_connector;
