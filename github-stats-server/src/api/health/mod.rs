//! `GET /health`: the store, and the poller and ingest loop when polling. Every object of the
//! answer is a type of this crate ([`store`], [`components`]), mapped from core's in one place.

pub mod components;
pub mod store;

use github_stats_core::{ArchiveFollowerSnapshot, IngestSnapshot, PollerSnapshot};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::time::UtcTime;
use super::{ApiTags, AppState, StatusProbe};
use crate::store_monitor::StoreMonitor;
pub use components::{ArchiveHealth, IngestHealth, PollerHealth};
pub use store::{StoreDetails, StoreStatus};

/// The overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The store answers and the poller (when running) is fine.
    Ok,
    /// The store answers, but the poller or the ingest loop reports trouble (errors, backlog).
    Degraded,
    /// The store cannot be reached, or its health check does not answer in time (`store.slow`).
    Unavailable,
}

/// Health of the service. The first four fields are the Python service's.
#[derive(Debug, Clone, Object)]
pub struct HealthBody {
    /// `ok`, `degraded` or `unavailable`.
    pub status: HealthStatus,
    /// Whether the store answers.
    pub is_connected: bool,
    /// `memory` or `clickhouse`.
    pub backend_type: String,
    /// Distinct stored events.
    pub total_events: u64,
    /// `created_at` of the newest stored event; `null` when empty.
    pub last_event_ts: Option<UtcTime>,
    /// The store: `degraded` (part of it does not answer), `slow`, when it was last checked,
    /// `error` (the store's words on what is wrong, when any) and the backend's own fields
    /// (data file, server version, cluster nodes, …).
    pub store: StoreStatus,
    /// The GitHub poller: last poll, poll interval, rate limit left, last error, coverage
    /// counters. Absent with `--no-poll`.
    #[oai(skip_serializing_if_is_none)]
    pub poller: Option<PollerHealth>,
    /// The ingest loop: buffered events, inserts, store errors. Absent with `--no-poll` and no
    /// archive follower.
    #[oai(skip_serializing_if_is_none)]
    pub ingest: Option<IngestHealth>,
    /// The GH Archive follower: the next hour, hours behind, hours imported, missing and
    /// damaged, the last error. Absent unless `GHARCHIVE_FROM` is set.
    #[oai(skip_serializing_if_is_none)]
    pub archive: Option<ArchiveHealth>,
    /// Why the status is not `ok`, when it is not.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// Health answers.
#[derive(Debug, ApiResponse)]
pub enum HealthResponse {
    /// The store answers (`status` is `ok` or `degraded`).
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    /// The store cannot be reached (`status` is `unavailable`; `error` says why).
    #[oai(status = 503)]
    Unavailable(Json<HealthBody>),
}

/// Health.
pub struct HealthApi {
    store_health: StoreMonitor,
    poller: Option<StatusProbe<PollerSnapshot>>,
    ingest: Option<StatusProbe<IngestSnapshot>>,
    archive: Option<StatusProbe<ArchiveFollowerSnapshot>>,
}

impl HealthApi {
    /// Health of `state`'s store and components.
    pub fn new(state: &AppState) -> HealthApi {
        HealthApi {
            store_health: state.store_health.clone(),
            poller: state.poller.clone(),
            ingest: state.ingest.clone(),
            archive: state.archive.clone(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Health of the store and the poller
    ///
    /// 200 while the store answers, 503 when it cannot be reached or its health check has not
    /// answered within its timeout (`store.slow`). The store's part comes from the last check
    /// that answered (`store.checked_at`), checked in the background: the answer never waits on
    /// a slow store.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> HealthResponse {
        let reading = self.store_health.current().await;
        if reading.panicked {
            // A bug in the store, answered as every handler's panic is: a plain 500.
            panic!("the store's health check panicked");
        }
        let store = reading.health();
        let poller = self.poller.as_ref().map(|probe| probe());
        let ingest = self.ingest.as_ref().map(|probe| probe());
        let archive = self.archive.as_ref().map(|probe| probe());
        let troubled: Vec<&str> = [
            ("poller", poller.as_ref().is_some_and(|s| s.degraded)),
            ("ingest loop", ingest.as_ref().is_some_and(|s| s.degraded)),
            (
                "archive follower",
                archive.as_ref().is_some_and(|s| s.degraded),
            ),
        ]
        .into_iter()
        .filter(|(_, troubled)| *troubled)
        .map(|(name, _)| name)
        .collect();
        // The store's own words on what is wrong, when it gave any.
        let reason = store
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        let (status, error) = if reading.is_slow() {
            (
                HealthStatus::Unavailable,
                Some(format!("the {} store is slow{reason}", store.backend)),
            )
        } else if !store.connected {
            (
                HealthStatus::Unavailable,
                Some(format!(
                    "the {} store cannot be reached{reason}",
                    store.backend
                )),
            )
        } else if store.degraded {
            // The store answers but not wholly: a cluster node down (queries needing it get
            // 503), a memory store that cannot write its data file. Its own words say which.
            (
                HealthStatus::Degraded,
                Some(format!("the {} store is degraded{reason}", store.backend)),
            )
        } else if !troubled.is_empty() {
            (
                HealthStatus::Degraded,
                Some(format!("{} reports trouble", troubled.join(" and "))),
            )
        } else {
            (HealthStatus::Ok, None)
        };
        let body = HealthBody {
            status,
            is_connected: store.connected,
            store: StoreStatus::new(&reading, &store),
            backend_type: store.backend,
            total_events: store.total_events,
            last_event_ts: store.last_event_at.map(UtcTime),
            poller: poller.as_ref().map(PollerHealth::from),
            ingest: ingest.as_ref().map(IngestHealth::from),
            archive: archive.as_ref().map(ArchiveHealth::from),
            error,
        };
        if status == HealthStatus::Unavailable {
            HealthResponse::Unavailable(Json(body))
        } else {
            HealthResponse::Ok(Json(body))
        }
    }
}
