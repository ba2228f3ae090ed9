//! Progress output: a progress bar with the latest loss on a terminal, plain log lines
//! otherwise (CI logs, pipes), nothing when quiet; every line also goes to the run's `log.txt`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Reporter {
    verbose: bool,
    terminal: bool,
    bar: Option<ProgressBar>,
    log: Option<PathBuf>,
}

impl Reporter {
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            terminal: verbose && std::io::stdout().is_terminal(),
            bar: None,
            log: None,
        }
    }

    /// Appends every later line to `path` (the run folder's `log.txt`).
    pub fn log_to(&mut self, path: PathBuf) {
        self.log = Some(path);
    }

    /// A log line (above the bar on a terminal).
    pub fn line(&self, text: impl AsRef<str>) {
        if let Some(path) = &self.log {
            // The log is a convenience copy of the output: a failed append must not stop a run.
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| writeln!(file, "{}", text.as_ref()));
        }
        if !self.verbose {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text.as_ref()),
            None => println!("{}", text.as_ref()),
        }
    }

    /// Starts a bar for a stage of `total` steps, `done` of them already done.
    pub fn start(&mut self, label: &str, total: usize, done: usize) {
        if !self.terminal {
            return;
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.set_position(done as u64);
        self.bar = Some(bar);
    }

    /// Moves the bar to `step` with a short status (loss, rate).
    pub fn step(&self, step: usize, status: String) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            bar.set_message(status);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
