//! The REST API (a contract, documented in `docs/api.md`), with poem-openapi: one
//! [`OpenApi`](trait@poem_openapi::OpenApi) implementation per area, every answer and error
//! documented in the generated spec.
//!
//! This layer maps core types to API types and nothing more: the metrics are computed by the
//! store ([`github_stats_core::MetricsQuery`]).
//!
//! Errors are JSON everywhere, `{"error": "..."}`: the handlers' own errors are [`ApiError`], and
//! [`middleware::serve`] turns everything else (parameter parse errors, unknown paths,
//! timeouts, panics) into the same shape. It also logs each request, counts it for `/metrics`
//! and adds the CORS headers ([`cors`]).

use std::sync::Arc;
use std::time::Duration;

use github_stats_core::{
    ArchiveFollowerSnapshot, IngestSnapshot, MemoryStore, PollerSnapshot, RepoName, SharedStore,
    StoreError,
};
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoEndpoint, Response, Route};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApiService, Tags};

pub mod cors;
pub mod coverage;
pub mod debug;
pub mod health;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod params;
pub mod scrape;
pub mod spec;
pub mod time;
pub mod visualization;

pub use cors::CorsPolicy;

use crate::prometheus::Exporter;
use crate::store_monitor::StoreMonitor;

/// The title of the generated spec.
pub const API_TITLE: &str = "github-stats";

/// Where the generated spec is committed, relative to the workspace.
pub const COMMITTED_SPEC: &str = "docs/openapi.json";

/// The error body of every answer that is not a success.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// What is wrong, for a human.
    pub error: String,
}

/// The errors a handler answers with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Bad input: a parameter is missing, malformed or out of range; the message names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The store answered with an error that retrying will not fix.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The store cannot be reached right now; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(Json(ErrorBody {
            error: message.into(),
        }))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        // The log has the whole error; a client never sees a backend's own text (a ClickHouse
        // exception names tables and quotes SQL).
        let body = |err: &StoreError| {
            Json(ErrorBody {
                error: err.public_message(),
            })
        };
        if err.is_unavailable() {
            tracing::warn!(error = %err, "store unavailable");
            ApiError::Unavailable(body(&err))
        } else if matches!(err, StoreError::InvalidQuery(_)) {
            ApiError::BadRequest(body(&err))
        } else {
            tracing::error!(error = %err, "store query failed");
            ApiError::Internal(body(&err))
        }
    }
}

/// The `{owner}/{repo}` path parameters as a validated repository name, or a 400 naming them.
pub fn repository(owner: &str, repo: &str) -> Result<RepoName, ApiError> {
    RepoName::new(owner, repo).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid repository {}: {e}; expected owner/name such as rust-lang/rust",
            params::quote(&format!("{owner}/{repo}"))
        ))
    })
}

/// Groups of endpoints in the spec.
#[derive(Tags)]
pub enum ApiTags {
    /// The metrics: PR average, events by type.
    Metrics,
    /// Timeline and charts.
    Visualization,
    /// Health of the store and the poller, and metrics for Prometheus.
    Health,
    /// Counts for debugging.
    Debug,
}

/// Reads a background component's current status snapshot (the poller's, the ingest loop's,
/// the archive follower's), shown in `/health` as the API's own types ([`health`]).
pub type StatusProbe<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store behind every metric.
    pub store: SharedStore,
    /// The store's health, checked in the background: what `/health` and `/metrics` show.
    pub store_health: StoreMonitor,
    /// The poller's status, when polling.
    pub poller: Option<StatusProbe<PollerSnapshot>>,
    /// The ingest loop's status, when polling or following GH Archive.
    pub ingest: Option<StatusProbe<IngestSnapshot>>,
    /// The GH Archive follower's status, when following (`GHARCHIVE_FROM`).
    pub archive: Option<StatusProbe<ArchiveFollowerSnapshot>>,
    /// The metrics of `GET /metrics`: the HTTP layer's, and the components' it was given.
    pub exporter: Arc<Exporter>,
}

impl AppState {
    /// A state with a store and no background components (`--no-poll`, tests).
    pub fn new(store: SharedStore) -> AppState {
        AppState {
            store_health: StoreMonitor::new(store.clone()),
            store,
            poller: None,
            ingest: None,
            archive: None,
            exporter: Arc::new(Exporter::new()),
        }
    }
}

/// How the HTTP layer treats every request.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// A request taking longer is answered with 503 (`REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// Cross-origin requests from browsers (`CORS_ALLOW_ORIGINS`).
    pub cors: CorsPolicy,
}

impl HttpSettings {
    /// `request_timeout`, and no CORS.
    pub fn new(request_timeout: Duration) -> HttpSettings {
        HttpSettings {
            request_timeout,
            cors: CorsPolicy::Disabled,
        }
    }
}

/// The endpoint groups of the service, their schemas made generator-friendly ([`spec`]).
pub type Apis = spec::GeneratorFriendly<(
    metrics::MetricsApi,
    coverage::CoverageApi,
    visualization::VisualizationApi,
    health::HealthApi,
    scrape::ScrapeApi,
    debug::DebugApi,
)>;

/// The OpenAPI service over `state`.
pub fn service(state: &AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        spec::GeneratorFriendly((
            metrics::MetricsApi::new(state),
            coverage::CoverageApi::new(state),
            visualization::VisualizationApi::new(state),
            health::HealthApi::new(state),
            scrape::ScrapeApi::new(state),
            debug::DebugApi::new(state),
        )),
        API_TITLE,
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Metrics over GitHub's public events (WatchEvent, PullRequestEvent, IssuesEvent). \
         Every error is JSON: `{\"error\": \"...\"}` with status 400 (bad input), 404 (unknown \
         path) or 503 (store unreachable).",
    )
}

/// The generated spec, pretty-printed, as committed in [`COMMITTED_SPEC`] (with a final newline).
pub fn spec_json() -> String {
    let state = AppState::new(Arc::new(MemoryStore::new()));
    let mut spec = service(&state).spec();
    spec.push('\n');
    spec
}

/// The whole HTTP application: the API, `/openapi.json`, `/docs`, with JSON errors, an access
/// log, a timeout per request, panics caught, and no CORS.
pub fn app(
    state: AppState,
    request_timeout: Duration,
) -> impl Endpoint<Output = Response> + 'static {
    app_with(state, HttpSettings::new(request_timeout))
}

/// [`app`] with every HTTP setting: the request timeout, CORS.
pub fn app_with(
    state: AppState,
    settings: HttpSettings,
) -> impl Endpoint<Output = Response> + 'static {
    let api = service(&state);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let layer = Arc::new(middleware::HttpLayer {
        request_timeout: settings.request_timeout,
        cors: settings.cors,
        metrics: state.exporter.http().clone(),
        routes: route_templates(&api.spec()),
    });
    Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/", api.into_endpoint())
        .with(CatchPanic::new().with_handler(middleware::panic_response))
        .around(move |ep, req| middleware::serve(ep, req, layer.clone()))
}

/// The paths of `spec` (`/metrics/pr-average/{owner}/{repo}` …), and those of the spec and its
/// UI: the route labels of requests whose route poem did not record.
fn route_templates(spec: &str) -> Vec<String> {
    let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
    let mut templates: Vec<String> = spec["paths"]
        .as_object()
        .map(|paths| paths.keys().cloned().collect())
        .unwrap_or_default();
    templates.extend(["/openapi.json".to_owned(), "/docs".to_owned()]);
    templates
}
