//! Reserved for the pictures issue: `GET /metrics/visualization`, `GET /metrics/visualization.svg`
//! and the dashboard at `GET /`.
//!
//! [`VisualizationApi`] is already registered in the service ([`super::Apis`]); its endpoints go in
//! the `#[OpenApi]` block below, tagged [`ApiTags::Visualization`](super::ApiTags). The dashboard
//! page and its assets are not part of the spec: add them as plain poem routes in
//! [`super::app`], before the API is nested at `/`. Until then these paths answer 404 JSON.

use github_stats_core::SharedStore;
use poem_openapi::OpenApi;

use super::AppState;

/// Timeline and charts (to be written).
pub struct VisualizationApi {
    #[allow(dead_code)]
    store: SharedStore,
}

impl VisualizationApi {
    /// The visualization endpoints over `state`'s store.
    pub fn new(state: &AppState) -> VisualizationApi {
        VisualizationApi {
            store: state.store.clone(),
        }
    }
}

#[OpenApi(tag = "super::ApiTags::Visualization")]
impl VisualizationApi {}
