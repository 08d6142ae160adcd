//! The live ETW source (Windows only): thin glue around ferrisetw and a few Win32 calls.
//!
//! Two sessions feed one join: Microsoft-Windows-Kernel-Process (full image path,
//! integrity level, real creator) and the kernel system logger (command line, user,
//! rundown of running processes). The callbacks only copy fields into
//! [`etw_logic::raw`](crate::source::etw_logic::raw) structs and hand them to a join thread
//! over a bounded channel; all logic lives in `etw_logic`, tested on every platform.
//!
//! ```text
//! let _one = InstanceLock::acquire(&SessionNames::SENSOR)?;     // one sensor per host
//! let source = EtwSource::start(sink, EtwOptions::default(), SessionNames::SENSOR)?;
//! for event in EtwSource::seed(hostname) { table.apply(&event, ..) } // or push into the sink
//! eprintln!("{}", source.stats().to_json());
//! source.stop();                                                  // flushes ETW's buffers first
//! ```

mod accounts;
mod admin;
mod devices;
mod instance;
mod session;
mod snapshot;
mod win;

pub use crate::source::etw_logic::options::EtwOptions;
pub use admin::{is_elevated, NEEDS_ADMIN};
pub use instance::InstanceLock;
pub use session::{EtwSource, SessionNames};
