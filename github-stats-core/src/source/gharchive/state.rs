//! The follower's state file: where a restart resumes, without downloading a committed hour
//! again and without measuring an event twice.

use std::path::{Path, PathBuf};

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

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateFileError {
    #[error("cannot read state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not valid archive follower state: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Loads the state at `path`: `Ok(None)` when there is none yet. A file larger than a
/// megabyte is not a state file of ours (it holds a few hundred bytes).
pub(crate) fn load(path: &Path) -> Result<Option<ArchiveState>, StateFileError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(|source| StateFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateFileError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Saves `state` at `path` atomically.
pub(crate) fn save(path: &Path, state: &ArchiveState) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).expect("archive state serializes");
    crate::source::write_atomically(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/gharchive.json");
        assert!(load(&path).unwrap().is_none());
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
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");
        std::fs::write(&path, b"{\"next_hour\": ").unwrap();
        assert!(matches!(load(&path), Err(StateFileError::Corrupt { .. })));
    }
}
