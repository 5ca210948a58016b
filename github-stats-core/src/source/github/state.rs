//! The poller's state file (`CLIENT_STATE_FILE`): what a restart needs to poll on time, cheaply,
//! and without counting an event twice.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::status::CoverageCounters;
use crate::source::write_atomically;

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
    pub counters: CoverageCounters,
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
    #[error("state file {path} is larger than {MAX_STATE_BYTES} bytes: not poller state")]
    TooLarge { path: PathBuf },
    #[error("state file {path} is not valid poller state: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The largest state file read: the state of a poll of 300 events is about 10 KB.
const MAX_STATE_BYTES: u64 = 1 << 20;

/// Loads the state at `path`: `Ok(None)` when there is none yet. A file over
/// [`MAX_STATE_BYTES`] is not read (it is not ours), but reported.
pub(crate) fn load(path: &Path) -> Result<Option<PollState>, StateFileError> {
    use std::io::Read;
    let read = |source| StateFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read(source)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(StateFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateFileError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Saves `state` at `path` atomically.
pub(crate) fn save(path: &Path, state: &PollState) -> Result<(), StateFileError> {
    let json = serde_json::to_vec_pretty(state).expect("poll state serializes");
    write_atomically(path, &json).map_err(|source| StateFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        assert!(load(&path).unwrap().is_none());
        let state = PollState {
            version: STATE_VERSION,
            etag: Some("W/\"abc\"".into()),
            poll_interval: Some(60),
            last_poll_event_ids: vec![1, 2, 3],
            ..PollState::default()
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        std::fs::write(&path, b"{\"etag\": ").unwrap();
        assert!(matches!(load(&path), Err(StateFileError::Corrupt { .. })));
        // Valid JSON, but far larger than any state: not read whole.
        let huge = format!("{{\"etag\": \"{}\"}}", "x".repeat(MAX_STATE_BYTES as usize));
        std::fs::write(&path, huge).unwrap();
        assert!(matches!(load(&path), Err(StateFileError::TooLarge { .. })));
    }
}
