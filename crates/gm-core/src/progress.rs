//! Progress of long work that is not a training loop (evaluation, sampling chains, AIS): a
//! progress bar when stderr is a terminal, a `tracing` line every 10 % otherwise.
//!
//! ```
//! let mut p = gm_core::progress::Progress::new("importance sampling", 100);
//! for _ in 0..100 {
//!     p.inc(1);
//! }
//! p.finish();
//! ```

use std::io::IsTerminal;
use std::time::Instant;

/// A counter of done units out of a known total.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    next_log: u64,
    start: Instant,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Starts counting `total` units of `label`.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} eta {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_message(label.to_string());
            b
        });
        Progress {
            label: label.to_string(),
            total: total.max(1),
            done: 0,
            next_log: total.max(1).div_ceil(10),
            start: Instant::now(),
            bar,
        }
    }

    /// Marks `n` more units done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(b) => b.set_position(self.done),
            None => {
                if self.done >= self.next_log && self.done < self.total {
                    let secs = self.start.elapsed().as_secs_f64();
                    let eta = secs * (self.total - self.done) as f64 / self.done as f64;
                    tracing::info!(
                        "{}: {}/{} ({:.0}%), {secs:.0}s elapsed, about {eta:.0}s left",
                        self.label,
                        self.done,
                        self.total,
                        100.0 * self.done as f64 / self.total as f64
                    );
                    self.next_log += self.total.div_ceil(10);
                }
            }
        }
    }

    /// Ends the bar.
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
