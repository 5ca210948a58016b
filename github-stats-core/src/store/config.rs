//! Which store to open, and how ([`StoreConfig`]): one description of the store, one
//! [`open`](StoreConfig::open), for the server, the backfill and library users alike.

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "clickhouse")]
use super::clickhouse::{ClickHouseConfig, ClickHouseStore};
use super::memory::{MemoryStore, MemoryStoreOptions};
use super::{SharedStore, StoreError};

/// Which store to open, and how (`DATABASE_BACKEND` and the settings of that backend).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), github_stats_core::StoreError> {
/// use github_stats_core::StoreConfig;
/// let dir = tempfile::tempdir().unwrap();
/// let store = StoreConfig::memory(dir.path()).open().await?.shared();
/// assert_eq!(store.backend_name(), "memory");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The memory store ([`MemoryStore`]).
    Memory {
        /// Where it keeps its event file (`DATA_DIR`), locked against a second process; `None`
        /// keeps everything in memory only.
        data_dir: Option<PathBuf>,
        /// How it writes.
        options: MemoryStoreOptions,
    },
    /// ClickHouse ([`ClickHouseStore`]).
    #[cfg(feature = "clickhouse")]
    ClickHouse(ClickHouseConfig),
}

impl StoreConfig {
    /// The memory store persisted in `data_dir`, with the default options.
    pub fn memory(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig::Memory {
            data_dir: Some(data_dir.into()),
            options: MemoryStoreOptions::default(),
        }
    }

    /// The memory store without a data directory: nothing is written anywhere.
    pub fn in_memory() -> StoreConfig {
        StoreConfig::Memory {
            data_dir: None,
            options: MemoryStoreOptions::default(),
        }
    }

    /// `memory` or `clickhouse`, as [`EventStore::backend_name`](super::EventStore::backend_name)
    /// says once the store is open.
    pub fn backend_name(&self) -> &'static str {
        match self {
            StoreConfig::Memory { .. } => "memory",
            #[cfg(feature = "clickhouse")]
            StoreConfig::ClickHouse(_) => "clickhouse",
        }
    }

    /// Checks what can be checked before opening (see [`ClickHouseConfig::validate`]); every
    /// problem is one [`InvalidSetting`].
    pub fn validate(&self) -> Result<(), Vec<InvalidSetting>> {
        match self {
            StoreConfig::Memory { .. } => Ok(()),
            #[cfg(feature = "clickhouse")]
            StoreConfig::ClickHouse(config) => config.validate(),
        }
    }

    /// Opens the store, once: the memory store locks its directory and replays its event file
    /// (on a blocking thread); ClickHouse connects and applies pending migrations. An outage is
    /// a [`StoreError::Unavailable`] for the caller to retry or not; a bad setting is a
    /// [`StoreError::Config`].
    pub async fn open(&self) -> Result<OpenedStore, StoreError> {
        match self {
            StoreConfig::Memory { data_dir, options } => {
                let Some(dir) = data_dir.clone() else {
                    return Ok(OpenedStore::Memory(Arc::new(MemoryStore::new())));
                };
                let options = options.clone();
                let store =
                    tokio::task::spawn_blocking(move || MemoryStore::open_with(dir, options))
                        .await
                        .map_err(|e| {
                            StoreError::Backend(format!("opening the memory store failed: {e}"))
                        })??;
                Ok(OpenedStore::Memory(Arc::new(store)))
            }
            #[cfg(feature = "clickhouse")]
            StoreConfig::ClickHouse(config) => Ok(OpenedStore::ClickHouse(Arc::new(
                ClickHouseStore::connect(config.clone()).await?,
            ))),
        }
    }
}

impl Default for StoreConfig {
    /// The memory store in `data` (`DATA_DIR`'s default).
    fn default() -> StoreConfig {
        StoreConfig::memory("data")
    }
}

#[cfg(feature = "clickhouse")]
impl From<ClickHouseConfig> for StoreConfig {
    fn from(config: ClickHouseConfig) -> StoreConfig {
        StoreConfig::ClickHouse(config)
    }
}

/// A store [`StoreConfig::open`] opened, as its own type (for what only that store does: the
/// memory store's replay report, ClickHouse's recount) and as a [`SharedStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum OpenedStore {
    /// The memory store.
    Memory(Arc<MemoryStore>),
    /// ClickHouse.
    #[cfg(feature = "clickhouse")]
    ClickHouse(Arc<ClickHouseStore>),
}

impl OpenedStore {
    /// The store, shared.
    pub fn shared(&self) -> SharedStore {
        match self {
            OpenedStore::Memory(store) => Arc::clone(store) as SharedStore,
            #[cfg(feature = "clickhouse")]
            OpenedStore::ClickHouse(store) => Arc::clone(store) as SharedStore,
        }
    }

    /// The ClickHouse store, when it is one.
    #[cfg(feature = "clickhouse")]
    pub fn clickhouse(&self) -> Option<&Arc<ClickHouseStore>> {
        match self {
            OpenedStore::ClickHouse(store) => Some(store),
            OpenedStore::Memory(_) => None,
        }
    }
}

/// A setting whose value cannot work, named by its environment variable:
/// `invalid CLICKHOUSE_DATABASE '1db', expected ASCII letters, …`. A URL's value is shown
/// redacted ([`SecretUrl`](crate::SecretUrl)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting} '{value}', {expected}")]
#[non_exhaustive]
pub struct InvalidSetting {
    /// The environment variable (`CLICKHOUSE_URL`).
    pub setting: &'static str,
    /// The value given (a URL without its credentials).
    pub value: String,
    /// What is accepted (`expected an http:// or https:// URL`).
    pub expected: String,
}

impl InvalidSetting {
    /// `setting` refused with `value` (already safe to show), and what it expects.
    pub fn new(
        setting: &'static str,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> InvalidSetting {
        InvalidSetting {
            setting,
            value: value.into(),
            expected: expected.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_what_it_describes() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::memory(dir.path().join("data"));
        assert_eq!(config.backend_name(), "memory");
        assert_eq!(config.validate(), Ok(()));
        let opened = config.open().await.unwrap();
        assert!(matches!(&opened, OpenedStore::Memory(store) if store.data_dir().is_some()));
        assert_eq!(opened.shared().backend_name(), "memory");
        #[cfg(feature = "clickhouse")]
        assert!(opened.clickhouse().is_none());
        // The directory is locked while the first store is open.
        let err = config.open().await.unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        let in_memory = StoreConfig::in_memory().open().await.unwrap();
        assert!(matches!(&in_memory, OpenedStore::Memory(store) if store.data_dir().is_none()));
    }

    #[cfg(feature = "clickhouse")]
    #[tokio::test]
    async fn clickhouse_settings_are_checked_before_connecting() {
        let config = StoreConfig::from(ClickHouseConfig::default().with_database("1db"));
        assert_eq!(config.backend_name(), "clickhouse");
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].setting, "CLICKHOUSE_DATABASE");
        let err = config.open().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Config(m) if m.contains("CLICKHOUSE_DATABASE")),
            "{err}"
        );
    }
}
