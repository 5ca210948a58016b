//! `GET /metrics`: what Prometheus scrapes (its default path). The metrics themselves are in
//! [`crate::prometheus`]; `docs/operations.md` lists them.

use std::sync::Arc;

use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};

use super::{ApiTags, AppState, ErrorBody};
use crate::prometheus::Exporter;
use crate::store_monitor::StoreMonitor;

/// A scrape's answers.
#[derive(Debug, ApiResponse)]
pub enum ScrapeResponse {
    /// The metrics in Prometheus' text exposition format, version 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
    /// The metrics could not be written (not expected to happen).
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

/// The Prometheus endpoint.
pub struct ScrapeApi {
    store_health: StoreMonitor,
    exporter: Arc<Exporter>,
}

impl ScrapeApi {
    /// The metrics of `state`.
    pub fn new(state: &AppState) -> ScrapeApi {
        ScrapeApi {
            store_health: state.store_health.clone(),
            exporter: state.exporter.clone(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Health")]
impl ScrapeApi {
    /// Metrics for Prometheus
    ///
    /// The poller, the ingest loop, the store and the HTTP server, in Prometheus' text
    /// exposition format (names prefixed `github_stats_`; docs/operations.md lists them). Read
    /// from the same state as `/health`: the components' at the moment of the scrape, the
    /// store's from its last health check (`github_stats_store_health_age_seconds` old), so a
    /// scrape answers within 2 s however slow the store is. 200 even when the store cannot be
    /// reached: `github_stats_store_up` is then 0.
    #[oai(path = "/metrics", method = "get")]
    async fn scrape(&self) -> ScrapeResponse {
        let store = self.store_health.current().await;
        match self.exporter.encode(&store) {
            Ok(text) => ScrapeResponse::Ok(PlainText(text)),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the metrics");
                ScrapeResponse::Internal(Json(ErrorBody {
                    error: "cannot encode the metrics".to_owned(),
                }))
            }
        }
    }
}
