//! The follower's state file: where a restart resumes, without downloading a committed hour
//! again and without measuring an event twice.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::status::ArchiveCounters;
use crate::coverage::ArchiveHour;

/// The current format of the state file.
pub const ARCHIVE_STATE_VERSION: u32 = 1;

/// The JSON kept in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ArchiveState {
    /// Format version ([`ARCHIVE_STATE_VERSION`]).
    pub version: u32,
    /// The first hour of the run that wrote the file. A configuration starting earlier starts
    /// over from its own first hour.
    pub from: Option<DateTime<Utc>>,
    /// The first hour not committed: every hour before it is stored and recorded.
    pub next_hour: Option<DateTime<Utc>>,
    /// How far the hour `next_hour` got before the process stopped.
    pub in_progress: Option<HourProgress>,
    /// Records of hours committed whose write to the store failed: written at the next
    /// commit, or at the next start.
    pub unrecorded: Vec<ArchiveHour>,
    /// The last hour imported whole.
    pub last_imported_hour: Option<DateTime<Utc>>,
    /// Counts so far, across restarts.
    pub counters: ArchiveCounters,
}

/// The committed part of an hour being imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HourProgress {
    /// The hour.
    pub hour: DateTime<Utc>,
    /// Kept events (repeats included), in file order, whose batches are stored: a resumed hour
    /// takes the first this many as seen and stored without measuring them again (the file is
    /// the same bytes when downloaded again).
    pub kept_read: u64,
    /// Of the hour's distinct kept events measured so far, those stored before the archive's
    /// copy arrived.
    pub polled_before_archive: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::state_file::{StateFile, StateFileError};

    #[test]
    fn state_round_trips_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/gharchive.json");
        let file = StateFile::<ArchiveState>::new(path.clone(), "archive follower state");
        assert!(file.load_blocking().unwrap().is_none());
        let hour: DateTime<Utc> = "2026-11-30T05:00:00Z".parse().unwrap();
        let state = ArchiveState {
            version: ARCHIVE_STATE_VERSION,
            from: Some(hour),
            next_hour: Some(hour),
            in_progress: Some(HourProgress {
                hour,
                kept_read: 12,
                polled_before_archive: 3,
            }),
            ..ArchiveState::default()
        };
        file.save_blocking(&state).unwrap();
        assert_eq!(file.load_blocking().unwrap(), Some(state));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
        std::fs::write(&path, b"{\"next_hour\": ").unwrap();
        assert!(matches!(
            file.load_blocking(),
            Err(StateFileError::Corrupt { .. })
        ));
    }
}
