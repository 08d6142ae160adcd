//! Every line handed to a channel as it is written: selftest watches its own alerts
//! this way.

use super::{Line, Sink, Stopped};

/// A line nobody receives any more is dropped.
pub struct ChannelSink(pub crossbeam_channel::Sender<String>);

impl Sink for ChannelSink {
    fn name(&self) -> &str {
        "channel"
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        for line in lines {
            let _ = self.0.send(line.text.clone());
        }
        Ok(())
    }
}
