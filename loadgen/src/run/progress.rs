//! The live progress line of a run on a terminal: which point, how far, warming up or measuring,
//! the last second's operations and the errors so far, redrawn in place about four times a
//! second. Written to stderr so the summary on stdout stays clean.

use std::io::{IsTerminal, Write};

use crate::engine::Progress;

/// Draws the progress of one load point, or nothing when off.
pub struct ProgressLine {
    enabled: bool,
    label: String,
    total_s: f64,
}

impl ProgressLine {
    /// A line for point `label` lasting `total_s` seconds (warm-up included); drawn only when
    /// `wanted` and stderr is a terminal.
    pub fn new(wanted: bool, label: &str, total_s: f64) -> ProgressLine {
        ProgressLine {
            enabled: wanted && std::io::stderr().is_terminal(),
            label: label.to_string(),
            total_s,
        }
    }

    /// Redraws the line.
    pub fn show(&self, progress: &Progress) {
        if !self.enabled {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r\x1b[2K{}",
            render(&self.label, self.total_s, progress)
        );
        let _ = stderr.flush();
    }

    /// Ends the line so the next output starts on its own.
    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// `[3/10 (30%)]   4.2/12 s measuring  8123 ops/s  errors 0`.
fn render(label: &str, total_s: f64, progress: &Progress) -> String {
    format!(
        "[{label}] {:5.1}/{total_s:.0} s {}  {} ops/s  errors {}",
        progress.elapsed.as_secs_f64(),
        if progress.warming_up {
            "warm-up  "
        } else {
            "measuring"
        },
        progress.last_interval_ops,
        progress.errors_so_far
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_line_says_where_the_point_is() {
        let progress = Progress {
            elapsed: Duration::from_millis(4_200),
            warming_up: false,
            last_interval_ops: 8123,
            errors_so_far: 2,
        };
        assert_eq!(
            render("3/10 (30%)", 12.0, &progress),
            "[3/10 (30%)]   4.2/12 s measuring  8123 ops/s  errors 2"
        );
    }
}
