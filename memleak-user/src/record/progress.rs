//! A one-line progress display on stderr while recording.
//!
//! A terminal that goes away must not stop the recording: indicatif drops
//! its draw errors (except in `set_tab_width`, which unwraps; not used).

use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The one-line progress shown on a terminal while recording.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Shown only when asked for and stderr is a terminal, so logs and CI
    /// output stay clean; and never while a command we started writes to
    /// that terminal (`with_command`): a redrawn line would erase or split
    /// the command's own output, which matters more than our spinner.
    pub fn new(enabled: bool, path: &Path, with_command: bool) -> Progress {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let shared = with_command && (terminal || std::io::stdout().is_terminal());
        if !enabled || !terminal || shared {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} recording to {prefix}: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(path.display().to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// Redraws the line (at most a few times a second).
    pub fn update(&mut self, elapsed: Duration, processes: usize, samples: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{:.1} s, {processes} processes, {samples} samples (Ctrl-C stops and keeps the data)",
                elapsed.as_secs_f64()
            ));
        }
    }

    /// Clears the line so the next output starts clean.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
