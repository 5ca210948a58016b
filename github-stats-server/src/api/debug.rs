//! `GET /debug/…`: counts that help to check what the store holds.

use github_stats_core::SharedStore;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::metrics::EventTypeCounts;
use super::{ApiError, ApiTags, AppState, repository};

/// Default of `limit` on `/debug/repos-by-event-count`.
pub const DEFAULT_TOP_LIMIT: u32 = 10;
/// Largest `limit` on `/debug/repos-by-event-count`.
pub const MAX_TOP_LIMIT: u32 = 1000;

/// Distinct stored events.
#[derive(Debug, Clone, Object)]
pub struct TotalEventsBody {
    /// Distinct stored events of the kept types.
    pub total_events: u64,
}

/// Stored events of one repository.
#[derive(Debug, Clone, Object)]
pub struct RepoEventsBody {
    /// `owner/name`.
    pub repository: String,
    /// All stored events of the repository (every type, every action).
    pub event_count: u64,
    /// The same, by type.
    pub by_type: EventTypeCounts,
}

/// One repository and its stored events.
#[derive(Debug, Clone, Object)]
pub struct RepoEventCountBody {
    /// `owner/name`.
    pub repository: String,
    /// Stored events of the kept types.
    pub event_count: u64,
}

/// Debug counts.
pub struct DebugApi {
    store: SharedStore,
}

impl DebugApi {
    /// The debug counts over `state`'s store.
    pub fn new(state: &AppState) -> DebugApi {
        DebugApi {
            store: state.store.clone(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Debug")]
impl DebugApi {
    /// Total stored events
    ///
    /// Distinct stored events of the three kept types.
    #[oai(path = "/debug/total-events", method = "get")]
    async fn total_events(&self) -> Result<Json<TotalEventsBody>, ApiError> {
        let total_events = self.store.total_events().await?;
        Ok(Json(TotalEventsBody { total_events }))
    }

    /// Stored events of a repository
    ///
    /// Every stored event of the repository, in total and by type; zeros for an unknown one.
    #[oai(path = "/debug/repo-events/:owner/:repo", method = "get")]
    async fn repo_events(
        &self,
        /// Repository owner.
        owner: Path<String>,
        /// Repository name.
        repo: Path<String>,
    ) -> Result<Json<RepoEventsBody>, ApiError> {
        let repo = repository(&owner, &repo)?;
        let counts = self.store.repo_event_counts(&repo).await?;
        Ok(Json(RepoEventsBody {
            event_count: counts.counts.total(),
            by_type: counts.counts.into(),
            repository: counts.repository,
        }))
    }

    /// Repositories with the most stored events
    ///
    /// Most events first; ties by name.
    #[oai(path = "/debug/repos-by-event-count", method = "get")]
    async fn repos_by_event_count(
        &self,
        /// How many repositories, 1 to 1000; default 10.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<Vec<RepoEventCountBody>>, ApiError> {
        let limit = limit.0.unwrap_or(DEFAULT_TOP_LIMIT);
        let top = self.store.top_repositories(limit as usize).await?;
        Ok(Json(
            top.into_iter()
                .map(|r| RepoEventCountBody {
                    repository: r.repository,
                    event_count: r.event_count,
                })
                .collect(),
        ))
    }
}
