//! A progress line on stderr for long runs: the search, its step out of
//! the most it can take, the offered rate and the last trial's loss. Drawn
//! only when stderr is a terminal; in a log it would be noise.

use std::io::{IsTerminal, Write};

pub struct Progress {
    on: bool,
    drawn: bool,
}

/// Cells of the bar.
const WIDTH: u32 = 20;

impl Progress {
    pub fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Redraws the line: `step` of at most `bound`, at `rate` frames a
    /// second, after a trial that lost `last_loss` (a fraction).
    pub fn show(&mut self, label: &str, step: u32, bound: u32, rate: f64, last_loss: Option<f64>) {
        if !self.on {
            return;
        }
        let line = line(label, step, bound, rate, last_loss);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Removes the line, so that ordinary output follows on a clean one.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// The line drawn: bar, step, offered rate, last loss.
pub fn line(label: &str, step: u32, bound: u32, rate: f64, last_loss: Option<f64>) -> String {
    let done = (step.saturating_sub(1) * WIDTH / bound.max(1)).min(WIDTH);
    let loss = last_loss.map_or("-".into(), |l| format!("{:.4}%", l * 100.0));
    format!(
        "[{}{}] {label}: step {step}/≤{bound} at {:.3} Mpps, last loss {loss}",
        "#".repeat(done as usize),
        "-".repeat((WIDTH - done) as usize),
        rate / 1e6,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_shows_step_rate_and_loss() {
        let l = super::line("nat 64 tgw", 3, 5, 2.5e6, Some(0.0123));
        assert!(l.starts_with("[########------------]"), "{l}");
        assert!(
            l.contains("step 3/≤5 at 2.500 Mpps, last loss 1.2300%"),
            "{l}"
        );
    }
}
