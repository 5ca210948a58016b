//! The one retry policy of every component that waits out a failure: the ingest loop's store
//! retries, the poller's failed polls, the archive follower's downloads.

use std::time::Duration;

/// Jittered exponential backoff: the wait after `n` failures in a row is `min × 2^(n-1)`, capped
/// at `max`, of which half is fixed and half random ("equal jitter"), so that retries spread out
/// but never collapse to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure (before jitter).
    pub min: Duration,
    /// The longest wait (before jitter).
    pub max: Duration,
}

impl Backoff {
    /// A policy from `min` to `max`.
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max }
    }

    /// The wait after `failures` failures in a row (1 for the first), between half of the
    /// capped exponential and all of it.
    pub fn wait(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self.min.saturating_mul(1u32 << exp).min(self.max);
        base / 2 + base.mul_f64(fastrand::f64() / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_and_stop_at_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..100 {
            let first = backoff.wait(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff.wait(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let many = backoff.wait(u32::MAX);
            assert!(many >= Duration::from_millis(500) && many <= Duration::from_millis(1000));
        }
        // No failure yet counts as the first.
        assert!(backoff.wait(0) <= Duration::from_millis(100));
    }
}
