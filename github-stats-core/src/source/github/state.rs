//! The poller's state file (`CLIENT_STATE_FILE`): what a restart needs to poll on time, cheaply,
//! and without counting an event twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::status::PollCounters;

/// The current format of the state file.
pub const STATE_VERSION: u32 = 1;

/// The JSON kept in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PollState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// When the next page-1 request may be sent; a restart waits for it.
    pub next_poll_time: Option<DateTime<Utc>>,
    /// The last `X-Poll-Interval`, in seconds.
    pub poll_interval: Option<u64>,
    /// The `ETag` of the last page 1 whose events were stored (sent as `If-None-Match`).
    pub etag: Option<String>,
    /// When a poll last succeeded (200 or 304).
    pub last_successful_poll: Option<DateTime<Utc>>,
    /// The ids of every event of the last stored poll: repeats are dropped and gaps detected
    /// across a restart too.
    pub last_poll_event_ids: Vec<u64>,
    /// Coverage counters so far.
    pub counters: PollCounters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::state_file::StateFile;

    #[test]
    fn state_round_trips_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file =
            StateFile::<PollState>::new(dir.path().join("nested/state.json"), "poller state");
        assert!(file.load_blocking().unwrap().is_none());
        let state = PollState {
            version: STATE_VERSION,
            etag: Some("W/\"abc\"".into()),
            poll_interval: Some(60),
            last_poll_event_ids: vec![1, 2, 3],
            ..PollState::default()
        };
        file.save_blocking(&state).unwrap();
        assert_eq!(file.load_blocking().unwrap(), Some(state));
        std::fs::write(dir.path().join("nested/state.json"), b"{\"etag\": ").unwrap();
        let error = file.load_blocking().unwrap_err();
        assert!(
            error.to_string().contains("is not valid poller state"),
            "{error}"
        );
    }
}
