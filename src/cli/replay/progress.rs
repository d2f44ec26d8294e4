//! Progress on stderr (stdout may be the metric sink): on a terminal an `indicatif` bar with
//! the bytes read of the total (so the ETA is byte-based when every file's size is known), the
//! records and records/s; otherwise one plain line every interval (5 s by default) and a last
//! one at the end. Log lines go above the bar instead of through it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::args::Progress as Mode;
use crate::logging::Out;

/// The counters the replay advances and the display that shows them.
pub struct Progress {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    /// The ticker is a thread of its own, not a task: the replay runs on a current-thread
    /// runtime whose loop may not yield for seconds while it decodes local files.
    Lines {
        state: Arc<LineState>,
        stop: std::sync::mpsc::Sender<()>,
        ticker: std::thread::JoinHandle<()>,
    },
    Off,
}

/// What a progress line says, shared with the task that prints it.
struct LineState {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    total: Option<u64>,
    files: usize,
    file: Mutex<usize>,
    started: Instant,
}

impl LineState {
    fn line(&self) -> String {
        let records = self.records.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut line = format!("replay: {records} records ({:.0}/s), {}", records as f64 / elapsed, HumanBytes(bytes));
        if let Some(total) = self.total.filter(|t| *t > 0) {
            let done = bytes as f64 / total as f64;
            line.push_str(&format!(" of {} ({:.0}%)", HumanBytes(total), done * 100.0));
            if done > 0.0 && done < 1.0 {
                let eta = Duration::from_secs_f64(elapsed * (1.0 - done) / done);
                line.push_str(&format!(", ETA {}", HumanDuration(eta)));
            }
        }
        let file = *self.file.lock().unwrap_or_else(|p| p.into_inner());
        line.push_str(&format!(", file {file} of {}", self.files));
        line
    }
}

impl Progress {
    /// Starts the display: `total` bytes of `files` files (`None` when a size is unknown),
    /// lines every `interval`.
    pub fn start(mode: Mode, interval: Duration, total: Option<u64>, files: usize) -> Progress {
        let records = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let terminal = std::io::stderr().is_terminal();
        let shown = match mode {
            Mode::Off => Shown::Off,
            Mode::Bar | Mode::Auto if terminal || mode == Mode::Bar => Shown::Bar(bar(total, records.clone())),
            _ => {
                let state = Arc::new(LineState {
                    records: records.clone(),
                    bytes: bytes.clone(),
                    total,
                    files,
                    file: Mutex::new(0),
                    started: Instant::now(),
                });
                let ticking = state.clone();
                let (stop, stopped) = std::sync::mpsc::channel::<()>();
                let ticker = std::thread::spawn(move || {
                    // a line every interval until told to stop (or the sender is gone)
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                        eprintln!("{}", ticking.line());
                    }
                });
                Shown::Lines { state, stop, ticker }
            }
        };
        Progress { records, bytes, shown }
    }

    /// The counter of bytes read (the sources' [`super::sources::Counted`] streams add to it).
    pub fn bytes(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }

    /// `n` more records read.
    pub fn add_records(&self, n: usize) {
        self.records.fetch_add(n as u64, Ordering::Relaxed);
        if let Shown::Bar(bar) = &self.shown {
            bar.set_position(self.bytes.load(Ordering::Relaxed));
        }
    }

    /// File `index` (from 1) is being read.
    pub fn file(&self, index: usize, name: &str) {
        match &self.shown {
            Shown::Bar(bar) => bar.set_message(name.to_string()),
            Shown::Lines { state, .. } => *state.file.lock().unwrap_or_else(|p| p.into_inner()) = index,
            Shown::Off => {}
        }
    }

    /// Where log lines go: above the bar, else straight to stderr.
    pub fn log_out(&self) -> Out {
        match &self.shown {
            Shown::Bar(bar) => {
                let bar = bar.clone();
                Arc::new(move |line: &str| bar.suspend(|| eprintln!("{line}")))
            }
            _ => Arc::new(|line: &str| {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }),
        }
    }

    /// Stops the display; a last line in line mode.
    pub fn finish(self) {
        match self.shown {
            Shown::Bar(bar) => bar.finish_and_clear(),
            Shown::Lines { state, stop, ticker } => {
                let _ = stop.send(());
                let _ = ticker.join();
                eprintln!("{}", state.line());
            }
            Shown::Off => {}
        }
    }
}

fn bar(total: Option<u64>, records: Arc<AtomicU64>) -> ProgressBar {
    let rate = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let n = records.load(Ordering::Relaxed);
        let _ = write!(w, "{n} records ({:.0}/s)", n as f64 / state.elapsed().as_secs_f64().max(1e-9));
    };
    let template = match total {
        Some(_) => "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {records} ETA {eta} {msg:.dim}",
        None => "{spinner} [{elapsed_precise}] {bytes} {records} {msg:.dim}",
    };
    let style = ProgressStyle::with_template(template).expect("a valid template").with_key("records", rate);
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_records_rate_bytes_share_and_file() {
        let state = LineState {
            records: Arc::new(AtomicU64::new(1200)),
            bytes: Arc::new(AtomicU64::new(512 * 1024)),
            total: Some(1024 * 1024),
            files: 4,
            file: Mutex::new(2),
            started: Instant::now() - Duration::from_secs(2),
        };
        let line = state.line();
        assert!(line.starts_with("replay: 1200 records ("), "{line}");
        assert!(line.contains("512.00 KiB of 1.00 MiB (50%)"), "{line}");
        assert!(line.contains("ETA "), "{line}");
        assert!(line.ends_with("file 2 of 4"), "{line}");
    }
}
