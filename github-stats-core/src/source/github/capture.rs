//! How much of GitHub's public stream the poller reads: the stream's rate, measured from polls
//! that overlap the previous one, and the loss of each gap estimated from it.
//!
//! A poll that shares an event with the previous one read everything published in between, so
//! its new events over the time since the previous poll are a sample of the stream's rate. A
//! poll that shares nothing (a gap) read `n` new events of the `rate × elapsed` published: the
//! rest, `rate × elapsed − n`, is its estimated loss. The rate is the ratio of the last
//! [`RATE_SAMPLES`] samples' sums (events over seconds), so it follows the day's changes within
//! minutes; gaps seen before any sample wait for the first one, and until it comes the share is
//! unknown (`None`), not a guess.
//!
//! A poll overlaps when fewer events than its pages hold (`depth`, 300) came since the one
//! before. Near that bound, whether it overlapped depends on the noise of the two polls'
//! timing, so the polls that did are those that happened to see fewer events: a sample there
//! would bias the rate low. Only overlapping polls that read under [`SAMPLE_SHARE`] of the
//! depth are samples.

use std::collections::VecDeque;

use serde::Serialize;

/// Overlapping polls the stream's rate is measured over.
pub const RATE_SAMPLES: usize = 32;

/// The share of the pages' depth under which an overlapping poll is a sample of the rate.
pub const SAMPLE_SHARE: f64 = 0.9;

/// Seconds in the window of [`CaptureSnapshot::seen_share_last_hour`].
const HOUR_SECS: f64 = 3600.0;

/// Buckets of the last hour (a minute each).
const BUCKET_SECS: f64 = 60.0;

/// What the poller reads of the stream, for `/health` (`poller.capture`) and Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CaptureSnapshot {
    /// `interval` or `adaptive` (`POLL_MODE`).
    pub mode: String,
    /// The stream's estimated rate, in events a second; `null` until two polls overlapped.
    pub stream_rate: Option<f64>,
    /// Estimated share of the stream read since the process started (0 to 1); `null` before
    /// anything was read, and while gaps wait for a first measure of the rate (a poller that
    /// never overlaps cannot tell how much it misses).
    pub seen_share: Option<f64>,
    /// The same over the last hour.
    pub seen_share_last_hour: Option<f64>,
    /// Estimated events published but not read since the process started.
    pub missed_estimate: u64,
    /// New events read since the process started (all types).
    pub seen_events: u64,
}

/// One minute of the last hour.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    minute: i64,
    seen: f64,
    missed: f64,
}

/// The estimator. Times are in seconds of GitHub's clock (scaled in tests), counted from any
/// fixed origin.
#[derive(Debug)]
pub struct CaptureEstimator {
    /// Events the pages of a poll hold.
    depth: f64,
    samples: VecDeque<(f64, f64)>,
    seen: f64,
    missed: f64,
    /// Gaps before the first rate sample: their seconds and events read, summed (a poller
    /// that never overlaps keeps one entry, not one a gap).
    pending: Option<(f64, f64)>,
    hour: VecDeque<Bucket>,
}

impl CaptureEstimator {
    /// An estimator for polls that read at most `depth` events.
    pub fn new(depth: u64) -> CaptureEstimator {
        CaptureEstimator {
            depth: depth as f64,
            samples: VecDeque::new(),
            seen: 0.0,
            missed: 0.0,
            pending: None,
            hour: VecDeque::new(),
        }
    }

    /// Records a poll at `at` that read `new` events not seen before. `since_previous` is the
    /// time since the previous poll (`None` for the first); `overlapped` whether it shared an
    /// event with it (`None` when either read nothing, which says nothing).
    pub fn record(
        &mut self,
        at: f64,
        since_previous: Option<f64>,
        new: u64,
        overlapped: Option<bool>,
    ) {
        let new = new as f64;
        self.add(at, new, 0.0);
        let Some(elapsed) = since_previous.filter(|e| e.is_finite() && *e > 0.0) else {
            return;
        };
        match overlapped {
            Some(true) if new >= SAMPLE_SHARE * self.depth => {}
            Some(true) => {
                self.samples.push_back((new, elapsed));
                if self.samples.len() > RATE_SAMPLES {
                    self.samples.pop_front();
                }
                if let Some((elapsed, read)) = self.pending.take() {
                    self.gap(at, elapsed, read);
                }
            }
            Some(false) => {
                if self.rate().is_some() {
                    self.gap(at, elapsed, new);
                } else {
                    let (e, r) = self.pending.get_or_insert((0.0, 0.0));
                    *e += elapsed;
                    *r += new;
                }
            }
            None => {}
        }
    }

    fn gap(&mut self, at: f64, elapsed: f64, read: f64) {
        let rate = self.rate().unwrap_or(0.0);
        let missed = (rate * elapsed - read).max(0.0);
        self.add(at, 0.0, missed);
    }

    fn add(&mut self, at: f64, seen: f64, missed: f64) {
        self.seen += seen;
        self.missed += missed;
        let minute = (at / BUCKET_SECS).floor() as i64;
        match self.hour.back_mut() {
            Some(last) if last.minute >= minute => {
                last.seen += seen;
                last.missed += missed;
            }
            _ => self.hour.push_back(Bucket {
                minute,
                seen,
                missed,
            }),
        }
        let oldest = minute - (HOUR_SECS / BUCKET_SECS) as i64;
        while self.hour.front().is_some_and(|b| b.minute <= oldest) {
            self.hour.pop_front();
        }
    }

    /// The stream's rate in events a second, from the recent overlapping polls.
    pub fn rate(&self) -> Option<f64> {
        let (events, secs) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(e, s), (ne, ns)| (e + ne, s + ns));
        (secs > 0.0).then(|| events / secs)
    }

    /// The figures, as of `now` (for the last hour).
    pub fn snapshot(&self, now: f64) -> CaptureSnapshot {
        let known = self.pending.is_none();
        let share =
            |seen: f64, missed: f64| (known && seen + missed > 0.0).then(|| seen / (seen + missed));
        let oldest = (now / BUCKET_SECS).floor() as i64 - (HOUR_SECS / BUCKET_SECS) as i64;
        let (seen, missed) = self
            .hour
            .iter()
            .filter(|b| b.minute > oldest)
            .fold((0.0, 0.0), |(s, m), b| (s + b.seen, m + b.missed));
        CaptureSnapshot {
            mode: String::new(),
            stream_rate: self.rate(),
            seen_share: share(self.seen, self.missed),
            seen_share_last_hour: share(seen, missed),
            missed_estimate: self.missed.round() as u64,
            seen_events: self.seen as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_rate_is_new_events_over_time_of_overlapping_polls_only() {
        let mut c = CaptureEstimator::new(300);
        c.record(0.0, None, 300, None);
        assert_eq!(c.rate(), None);
        c.record(1.0, Some(1.0), 100, Some(true));
        c.record(3.0, Some(2.0), 200, Some(true));
        // Near the depth, an overlap says little of the rate either.
        c.record(4.0, Some(1.0), 280, Some(true));
        // A gap's events say nothing of the rate.
        c.record(11.0, Some(7.0), 300, Some(false));
        assert!(close(c.rate().unwrap(), 100.0));
        let s = c.snapshot(11.0);
        assert!(close(s.stream_rate.unwrap(), 100.0));
        // The gap: 7 s at 100/s, 300 read.
        assert_eq!(s.missed_estimate, 400);
        assert!(close(s.seen_share.unwrap(), 1180.0 / 1580.0));
    }

    #[test]
    fn old_samples_leave_the_rate() {
        let mut c = CaptureEstimator::new(300);
        c.record(0.0, None, 10, None);
        for i in 0..RATE_SAMPLES {
            c.record(1.0 + i as f64, Some(1.0), 10, Some(true));
        }
        assert!(close(c.rate().unwrap(), 10.0));
        for i in 0..RATE_SAMPLES {
            c.record(100.0 + i as f64, Some(1.0), 50, Some(true));
        }
        assert!(close(c.rate().unwrap(), 50.0));
    }

    #[test]
    fn gaps_before_the_first_sample_are_counted_once_it_comes() {
        let mut c = CaptureEstimator::new(300);
        c.record(0.0, None, 300, None);
        c.record(5.0, Some(5.0), 300, Some(false));
        assert_eq!(c.snapshot(5.0).missed_estimate, 0);
        assert_eq!(c.snapshot(5.0).seen_share, None, "unknown, not 100%");
        c.record(6.0, Some(1.0), 100, Some(true));
        let s = c.snapshot(6.0);
        assert_eq!(s.missed_estimate, 200);
        assert!(close(s.seen_share.unwrap(), 700.0 / 900.0));
        // A gap that read more than the rate predicts lost nothing (not a negative loss).
        c.record(7.0, Some(1.0), 300, Some(false));
        assert_eq!(c.snapshot(7.0).missed_estimate, 200);
    }

    #[test]
    fn the_last_hour_forgets_older_minutes() {
        let mut c = CaptureEstimator::new(300);
        c.record(0.0, None, 100, None);
        c.record(1.0, Some(1.0), 100, Some(true));
        c.record(11.0, Some(10.0), 100, Some(false)); // 900 missed
        let s = c.snapshot(11.0);
        assert!(close(s.seen_share_last_hour.unwrap(), 300.0 / 1200.0));
        // An hour later only the new polls count; since start still holds the old ones.
        c.record(4000.0, Some(3989.0), 100, Some(true));
        c.record(4001.0, Some(1.0), 100, Some(true));
        let s = c.snapshot(4001.0);
        assert_eq!(s.seen_share_last_hour, Some(1.0));
        assert!(close(s.seen_share.unwrap(), 500.0 / 1400.0));
        // Nothing read in the last hour: no share rather than a made-up one.
        assert_eq!(c.snapshot(9000.0).seen_share_last_hour, None);
    }

    #[test]
    fn polls_without_elapsed_time_or_overlap_only_add_what_they_read() {
        let mut c = CaptureEstimator::new(300);
        c.record(0.0, None, 5, None);
        c.record(1.0, Some(0.0), 5, Some(false));
        c.record(2.0, Some(1.0), 0, None);
        let s = c.snapshot(2.0);
        assert_eq!(
            (s.seen_events, s.missed_estimate, s.stream_rate),
            (10, 0, None)
        );
    }
}
