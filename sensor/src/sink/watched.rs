//! An output watched on the terminal: `run -o FILE` on a terminal writes the file and
//! shows the same alerts in the terminal view. The view is for the people watching:
//! it shows what the output delivered, once delivered; its own failures are said on
//! stderr but are not the output's (no alert counts as lost for them), and its reader
//! going away (the terminal closed) ends the view, never the output.

use super::{Delivery, Hangups, Line, Sink, Stopped};
use std::io;

pub struct Watched {
    output: Box<dyn Sink>,
    view: Delivery,
}

impl Watched {
    pub fn new(output: Box<dyn Sink>, view: Box<dyn Sink>) -> Watched {
        Watched {
            output,
            view: Delivery::new(view, "alerts", Hangups::default()),
        }
    }
}

impl Sink for Watched {
    fn name(&self) -> &str {
        self.output.name()
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        let result = self.output.write(lines);
        let delivered = result
            .as_ref()
            .map_or_else(|stopped| stopped.delivered, |()| lines.len());
        for line in &lines[..delivered] {
            self.view.push(line.text.clone(), false);
        }
        self.view.flush();
        result
    }

    fn ended(&self, error: &io::Error) -> bool {
        self.output.ended(error)
    }

    fn reopen(&mut self) -> io::Result<bool> {
        self.output.reopen()
    }

    fn replaced(&self) -> bool {
        self.output.replaced()
    }

    fn unconfirmed(&mut self) -> io::Result<usize> {
        self.output.unconfirmed()
    }

    fn close(&mut self) -> u64 {
        self.output.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::lines;
    use crate::sink::Memory;

    #[test]
    fn the_view_shows_what_the_output_delivered_and_its_end_is_its_own() {
        let (output, view) = (Memory::default(), Memory::default());
        let mut watched = Watched::new(Box::new(output.clone()), Box::new(view.clone()));
        watched.write(&lines(&["one"])).unwrap();
        output.fail_with(Some(io::ErrorKind::StorageFull));
        let stopped = watched.write(&lines(&["two"])).unwrap_err();
        assert_eq!(stopped.delivered, 0);
        assert_eq!(view.lines(), ["one"], "not shown before it is written");
        output.fail_with(None);
        view.fail_with(Some(io::ErrorKind::BrokenPipe));
        watched.write(&lines(&["two", "three"])).unwrap();
        assert_eq!(
            output.lines(),
            ["one", "two", "three"],
            "the view's end is not the output's"
        );
        assert_eq!(view.lines(), ["one"]);
    }

    /// An output that holds lines of its own (several destinations, a spool).
    struct Holding;

    impl Sink for Holding {
        fn name(&self) -> &str {
            "holding"
        }
        fn write(&mut self, _: &[Line]) -> Result<(), Stopped> {
            Ok(())
        }
        fn unconfirmed(&mut self) -> io::Result<usize> {
            Ok(3)
        }
        fn close(&mut self) -> u64 {
            7
        }
    }

    /// The output's own delivery figures reach the pipeline through the view: what it
    /// has not confirmed, and what it lost at the end.
    #[test]
    fn the_outputs_unconfirmed_and_lost_lines_are_its_own_not_hidden_by_the_view() {
        let mut watched = Watched::new(Box::new(Holding), Box::new(Memory::default()));
        assert_eq!(watched.unconfirmed().unwrap(), 3);
        assert_eq!(watched.close(), 7);
    }
}
