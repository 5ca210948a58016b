//! The one state file of every source that keeps a position across restarts (the poller's
//! `CLIENT_STATE_FILE`, the archive follower's `GHARCHIVE_STATE_FILE`): read with a bound, written
//! atomically and synced, on the blocking pool, in order.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{SourceError, write_atomically};

/// The largest state file read: states hold a few hundred bytes to a few kilobytes (a poll's
/// 300 event ids); a larger file is not one of ours.
pub(crate) const MAX_STATE_BYTES: u64 = 1 << 20;

/// Why a state file could not be used: the same words for every source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    /// The file exists but cannot be read.
    #[error("cannot read state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state of this source: too large, or not its JSON.
    #[error("state file {path} is not valid {what}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Whose state it should be.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file cannot be written.
    #[error("cannot write state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<StateFileError> for SourceError {
    fn from(error: StateFileError) -> SourceError {
        match error {
            StateFileError::Read { path, source } | StateFileError::Write { path, source } => {
                SourceError::File { path, source }
            }
            other => SourceError::Remote(other.to_string()),
        }
    }
}

/// A state of type `T` kept in a JSON file. Saves are serialised and numbered, so a save that
/// finishes late (its caller gone) never overwrites a newer one.
pub(crate) struct StateFile<T> {
    path: PathBuf,
    what: &'static str,
    /// The number of the last save begun, and of the last one written.
    order: Arc<Mutex<(u64, u64)>>,
    _state: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for StateFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> StateFile<T> {
    /// The state file at `path`, holding `what` (`"poller state"`).
    pub(crate) fn new(path: PathBuf, what: &'static str) -> StateFile<T> {
        StateFile {
            path,
            what,
            order: Arc::new(Mutex::new((0, 0))),
            _state: PhantomData,
        }
    }

    /// Reads the state: `Ok(None)` when there is none yet. At most [`MAX_STATE_BYTES`] are
    /// read; a larger file is corrupt. Blocking: for constructors and the blocking pool.
    pub(crate) fn load_blocking(&self) -> Result<Option<T>, StateFileError> {
        load(&self.path, self.what)
    }

    /// Writes `state` atomically and durably, now, on this thread.
    pub(crate) fn save_blocking(&self, state: &T) -> Result<(), StateFileError> {
        let number = {
            let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
            order.0 += 1;
            order.0
        };
        write_in_order(&self.path, &self.order, number, state)
    }

    /// Writes `state` atomically and durably on the blocking pool. The write runs to its end
    /// even if the caller goes away; a later save is never undone by it.
    pub(crate) async fn save(&self, state: T) -> Result<(), StateFileError> {
        let number = {
            let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
            order.0 += 1;
            order.0
        };
        let (path, order) = (self.path.clone(), Arc::clone(&self.order));
        tokio::task::spawn_blocking(move || write_in_order(&path, &order, number, &state))
            .await
            .unwrap_or_else(|e| {
                Err(StateFileError::Write {
                    path: self.path.clone(),
                    source: std::io::Error::other(e),
                })
            })
    }
}

/// Writes save `number` unless a later one was written already; one write at a time (they share
/// a temporary file name).
fn write_in_order<T: Serialize>(
    path: &Path,
    order: &Mutex<(u64, u64)>,
    number: u64,
    state: &T,
) -> Result<(), StateFileError> {
    let mut order = order.lock().unwrap_or_else(|e| e.into_inner());
    if order.1 > number {
        return Ok(());
    }
    let json = serde_json::to_vec_pretty(state).expect("a state serializes");
    write_atomically(path, &json).map_err(|source| StateFileError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    order.1 = number;
    Ok(())
}

fn load<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Option<T>, StateFileError> {
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
    let corrupt = |reason: String| StateFileError::Corrupt {
        path: path.to_path_buf(),
        what,
        reason,
    };
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(corrupt(format!("larger than {MAX_STATE_BYTES} bytes")));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Position {
        n: u64,
    }

    #[tokio::test]
    async fn states_round_trip_in_order_and_bad_files_are_corrupt_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        let file = StateFile::<Position>::new(path.clone(), "test state");
        assert!(file.load_blocking().unwrap().is_none());
        file.save_blocking(&Position { n: 1 }).unwrap();
        file.save(Position { n: 2 }).await.unwrap();
        assert_eq!(file.load_blocking().unwrap(), Some(Position { n: 2 }));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left");

        // A save numbered before one already written is dropped, not written over it.
        let stale = {
            let mut order = file.order.lock().unwrap();
            order.0 += 1;
            order.0
        };
        file.save_blocking(&Position { n: 3 }).unwrap();
        write_in_order(&path, &file.order, stale, &Position { n: 99 }).unwrap();
        assert_eq!(file.load_blocking().unwrap(), Some(Position { n: 3 }));

        std::fs::write(&path, b"{\"n\": ").unwrap();
        let broken = file.load_blocking().unwrap_err();
        let huge = format!(
            "{{\"n\": 1, \"x\": \"{}\"}}",
            "x".repeat(MAX_STATE_BYTES as usize)
        );
        std::fs::write(&path, huge).unwrap();
        let large = file.load_blocking().unwrap_err();
        for error in [&broken, &large] {
            assert!(matches!(error, StateFileError::Corrupt { .. }), "{error}");
            assert!(
                error.to_string().contains("is not valid test state"),
                "{error}"
            );
        }
        assert!(large.to_string().contains("larger than"), "{large}");
    }
}
