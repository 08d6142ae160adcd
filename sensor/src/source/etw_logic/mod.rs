//! Platform-independent logic of the live ETW source, compiled and tested on every
//! platform. The Windows glue in `source::etw` only copies fields out of ETW records
//! into [`raw`] structs and calls Win32 APIs; everything else is here.

pub mod accounts;
pub mod errors;
pub mod join;
pub mod layout;
pub mod lifecycle;
pub mod options;
pub mod paths;
pub mod raw;
#[cfg(test)]
mod recorded_events;
pub mod sid;
pub mod snapshot;
pub mod stats;
pub mod strings;
pub mod time;
