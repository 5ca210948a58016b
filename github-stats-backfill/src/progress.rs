//! Progress while importing: an indicatif bar when stderr is a terminal, a log line every few
//! seconds otherwise.
//!
//! Progress is counted in uncompressed bytes. A gzip file's uncompressed size is estimated from
//! its trailer (ISIZE, the size modulo 2^32 of its last member), which is exact for GH Archive
//! hours; when the trailer is implausible, a typical ratio is assumed. Each finished file
//! replaces its estimate with the truth, so the estimate only ever affects the ETA.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::ProgressMode;
use crate::summary::{Summary, thousands};

/// Uncompressed/compressed ratio assumed for JSON when a gzip trailer tells nothing useful.
const ASSUMED_GZIP_RATIO: u64 = 7;

pub(crate) struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    /// Estimated uncompressed size of each file.
    estimates: Vec<u64>,
    /// Estimated bytes of the files done, then the bytes of the current file.
    done_estimate: u64,
    current_bytes: u64,
    files_done: usize,
    /// The file being read.
    current_file: usize,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, files: &[PathBuf]) -> Progress {
        let estimates: Vec<u64> = if mode == ProgressMode::Off {
            Vec::new()
        } else {
            files.iter().map(|p| estimate_uncompressed(p)).collect()
        };
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(estimates.iter().sum());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{bar:25}] {percent:>3}% · {msg} · {binary_bytes_per_sec} · ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Progress {
            mode,
            bar,
            started: Instant::now(),
            last_log: Instant::now(),
            estimates,
            done_estimate: 0,
            current_bytes: 0,
            files_done: 0,
            current_file: 0,
        };
        progress.set_message(0);
        progress
    }

    fn set_message(&self, kept: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "files {}/{} · {} kept · {} events/s",
                self.files_done,
                self.estimates.len(),
                thousands(kept),
                thousands(self.rate(kept) as u64)
            ));
        }
    }

    fn rate(&self, kept: u64) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 { kept as f64 / secs } else { 0.0 }
    }

    fn position(&self, file: usize) -> u64 {
        let cap = self.estimates.get(file).copied().unwrap_or(0);
        self.done_estimate + self.current_bytes.min(cap)
    }

    /// A chunk of `bytes` of `file` was parsed.
    pub(crate) fn chunk(&mut self, file: usize, bytes: u64, summary: &Summary) {
        if self.mode == ProgressMode::Off {
            return;
        }
        self.current_bytes += bytes;
        self.current_file = file;
        self.update(file, summary);
    }

    /// `file` is finished (read to its end).
    pub(crate) fn file_done(&mut self, file: usize, summary: &Summary) {
        if self.mode == ProgressMode::Off {
            return;
        }
        self.files_done += 1;
        self.done_estimate += self.estimates.get(file).copied().unwrap_or(0);
        self.current_bytes = 0;
        self.current_file = file + 1;
        self.update(file + 1, summary);
    }

    /// Time passed: a log line is due even when nothing moved (a long insert).
    pub(crate) fn tick(&mut self, summary: &Summary) {
        if matches!(self.mode, ProgressMode::Log { .. }) {
            self.update(self.current_file, summary);
        }
    }

    /// How often [`Progress::tick`] should be called.
    pub(crate) fn tick_every(&self) -> Duration {
        match self.mode {
            ProgressMode::Log { every } => every,
            _ => Duration::from_secs(3600),
        }
    }

    fn update(&mut self, file: usize, summary: &Summary) {
        let kept = summary.stats.kept_total();
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(self.position(file));
                }
                self.set_message(kept);
            }
            ProgressMode::Log { every } => {
                if self.last_log.elapsed() >= every {
                    self.last_log = Instant::now();
                    let total: u64 = self.estimates.iter().sum();
                    let done = self.position(file);
                    let secs = self.started.elapsed().as_secs_f64();
                    let eta = (done > 0 && total > done)
                        .then(|| secs * (total - done) as f64 / done as f64);
                    tracing::info!(
                        files_done = self.files_done,
                        files = self.estimates.len(),
                        percent = format!("{:.1}", 100.0 * done as f64 / total.max(1) as f64),
                        kept,
                        inserted = summary.inserted,
                        events_per_second = self.rate(kept) as u64,
                        mb_per_second =
                            format!("{:.1}", summary.bytes as f64 / 1e6 / secs.max(1e-9)),
                        eta_seconds = eta.map(|e| e as u64),
                        "backfill progress"
                    );
                }
            }
            ProgressMode::Off => {}
        }
    }

    /// Runs `f` (which logs) without tearing the bar.
    pub(crate) fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The uncompressed size of `path`, estimated (see the module documentation).
fn estimate_uncompressed(path: &Path) -> u64 {
    // Only regular files: opening a named pipe would block, and reading it would steal bytes.
    let len = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return 0,
    };
    let Ok(mut file) = File::open(path) else {
        return 0;
    };
    let mut magic = [0u8; 2];
    if len < 18 || file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return len;
    }
    let mut trailer = [0u8; 4];
    let isize = file
        .seek(SeekFrom::End(-4))
        .and_then(|_| file.read_exact(&mut trailer))
        .map(|_| u64::from(u32::from_le_bytes(trailer)));
    match isize {
        // One member (or the last of several) that expands the whole file: believable.
        Ok(size) if size >= len && size <= len.saturating_mul(100) => size,
        _ => len.saturating_mul(ASSUMED_GZIP_RATIO),
    }
}

/// Progress of a GH Archive import, in hours: a bar of hours done, or a log line every few
/// seconds, from the follower's and the ingest loop's status.
pub(crate) struct ArchiveProgress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Instant,
    hours: u64,
}

impl ArchiveProgress {
    pub(crate) fn new(mode: ProgressMode, hours: u64) -> ArchiveProgress {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(hours);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{bar:25}] {pos}/{len} hours · {msg} · ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        ArchiveProgress {
            mode,
            bar,
            started: Instant::now(),
            last_log: Instant::now(),
            hours,
        }
    }

    pub(crate) fn tick_every(&self) -> Duration {
        match self.mode {
            ProgressMode::Log { every } => every,
            ProgressMode::Bar => Duration::from_millis(200),
            ProgressMode::Off => Duration::from_secs(3600),
        }
    }

    pub(crate) fn update(
        &mut self,
        follower: &github_stats_core::ArchiveFollowerSnapshot,
        ingest: &github_stats_core::IngestSnapshot,
    ) {
        let c = &follower.counters;
        let done = c.imported + c.missing + c.damaged + c.skipped + c.pending;
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let current = follower
            .current_hour
            .as_ref()
            .map(|h| h.hour.format("%Y-%m-%dT%H").to_string())
            .unwrap_or_else(|| "-".into());
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                    bar.set_message(format!(
                        "{current} · {} kept · {} events/s · {:.1} MB/s{}",
                        thousands(ingest.received),
                        thousands((ingest.received as f64 / secs) as u64),
                        ingest.bytes as f64 / 1e6 / secs,
                        if follower.consecutive_failures > 0 {
                            format!(" · {} failures, retrying", follower.consecutive_failures)
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            ProgressMode::Log { every } => {
                if self.last_log.elapsed() >= every {
                    self.last_log = Instant::now();
                    let eta = (done > 0 && self.hours > done)
                        .then(|| secs * (self.hours - done) as f64 / done as f64);
                    tracing::info!(
                        hours_done = done,
                        hours = self.hours,
                        current_hour = %current,
                        kept = ingest.received,
                        inserted = ingest.inserted,
                        events_per_second = (ingest.received as f64 / secs) as u64,
                        mb_per_second = format!("{:.1}", ingest.bytes as f64 / 1e6 / secs),
                        failures = follower.consecutive_failures,
                        eta_seconds = eta.map(|e| e as u64),
                        "backfill progress"
                    );
                }
            }
            ProgressMode::Off => {}
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
