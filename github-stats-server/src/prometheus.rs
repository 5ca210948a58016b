//! The metrics of `GET /metrics`, in Prometheus' text exposition format (0.0.4), encoded by
//! the official client (`prometheus-client`). `docs/operations.md` lists every metric.
//!
//! Two kinds:
//! - the HTTP server's own ([`HttpMetrics`]), updated by the middleware on every request;
//! - the background components' (the GitHub poller, the GH Archive follower, the ingest loop)
//!   and the store's, read at scrape time from the same status snapshots that `/health` shows,
//!   so that the two never disagree and core carries no metrics code. A component is added in
//!   one place: an `encode_…` function below over its snapshot, and an `Exporter::register_…`
//!   call where `startup` spawns it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use github_stats_core::{
    ArchiveFollowerSnapshot, ArchiveFollowerStatus, DurationHistogram, IngestSnapshot,
    IngestStatus, PollerSnapshot, PollerStatus,
};
use poem::http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::listener::OpenConnections;
use crate::store_monitor::StoreReading;

/// The `route` label of a request that matched no route (an unknown path): one value for all of
/// them, so that random paths cannot create series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds, in seconds, of the request duration histogram: from 0.5 ms (most answers of
/// the memory store) to 30 s (the default request timeout).
pub const HTTP_DURATION_BOUNDS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Labels of `github_stats_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// Labels of `github_stats_http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The HTTP server's metrics: requests by method, route template and status, their durations,
/// the requests in progress. Cheap to clone (shared counters).
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    in_flight: Gauge,
}

impl Default for HttpMetrics {
    fn default() -> HttpMetrics {
        fn histogram() -> Histogram {
            Histogram::new(HTTP_DURATION_BOUNDS)
        }
        HttpMetrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
        }
    }
}

/// A request in progress: counted in `github_stats_http_requests_in_flight` until dropped (also
/// when the client goes away and the request is abandoned).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl HttpMetrics {
    /// Counts a request in progress until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records an answered request. `route` is a route template (see [`route_label`]), never a
    /// raw path: every label value comes from a bounded set.
    pub fn observe(&self, method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                method,
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// The method as a label: the standard ones by name, any other as `other` (hyper accepts
/// extension methods of any name).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

/// The `route` label of a request to `path`: the first of `templates` (the spec's paths, such as
/// `/metrics/pr-average/{owner}/{repo}`) that it fits; else the route poem matched (`pattern`:
/// the spec UI's); else [`UNMATCHED_ROUTE`]. The spec's own words come first because poem knows
/// its routes under generated names (`/metrics/pr-average/:param0/:param1`).
pub fn route_label(pattern: Option<&str>, path: &str, templates: &[String]) -> String {
    // Most requests name a route without parameters: a string comparison each, before the
    // segment-by-segment fit (a literal route is also the one poem routes such a path to).
    if let Some(template) = templates
        .iter()
        .find(|t| t.as_str() == path)
        .or_else(|| templates.iter().find(|t| fits(t, path)))
    {
        return template.clone();
    }
    match pattern.filter(|p| !p.is_empty()) {
        Some(pattern) => pattern
            .split('/')
            .map(|segment| match segment.strip_prefix(':') {
                Some(name) => Cow::Owned(format!("{{{name}}}")),
                None => Cow::Borrowed(segment),
            })
            .collect::<Vec<_>>()
            .join("/"),
        None => UNMATCHED_ROUTE.to_owned(),
    }
}

/// Whether `path` fits the spec-style `template` (`{name}` matches one non-empty segment).
fn fits(template: &str, path: &str) -> bool {
    let mut parts = path.split('/');
    for expected in template.split('/') {
        match parts.next() {
            Some(part) if expected.starts_with('{') && expected.ends_with('}') => {
                if part.is_empty() {
                    return false;
                }
            }
            Some(part) if part == expected => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// Every metric of the service, for `GET /metrics`.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    http: HttpMetrics,
}

impl Default for Exporter {
    fn default() -> Exporter {
        Exporter::new()
    }
}

impl Exporter {
    /// The HTTP metrics and the build information (`github_stats_start_time_seconds` is now);
    /// components are added with the `register_…` methods.
    pub fn new() -> Exporter {
        let http = HttpMetrics::default();
        let mut registry = Registry::default();
        registry.register(
            "github_stats_http_requests",
            "HTTP requests answered, by method, route template and status",
            http.requests.clone(),
        );
        registry.register(
            "github_stats_http_request_duration_seconds",
            "Time from receiving a request to its answer, by method and route template",
            http.durations.clone(),
        );
        registry.register(
            "github_stats_http_requests_in_flight",
            "HTTP requests being answered",
            http.in_flight.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector {
            started_at: Utc::now(),
        }));
        Exporter { registry, http }
    }

    /// The HTTP metrics, for the middleware.
    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// Adds the GitHub poller's metrics, read from `status` at each scrape. `started_at` is when
    /// the poller started: before its first success, the age of the last success counts from it.
    pub fn register_poller(&mut self, status: PollerStatus, started_at: DateTime<Utc>) {
        self.registry
            .register_collector(Box::new(PollerCollector { status, started_at }));
    }

    /// Adds the ingest loop's metrics, read from `status` at each scrape.
    pub fn register_ingest(&mut self, status: IngestStatus) {
        self.registry
            .register_collector(Box::new(IngestCollector { status }));
    }

    /// Adds the GH Archive follower's metrics, read from `status` at each scrape.
    pub fn register_archive_follower(&mut self, status: ArchiveFollowerStatus) {
        self.registry
            .register_collector(Box::new(ArchiveFollowerCollector { status }));
    }

    /// Adds the connection layer's metrics: connections open, and the cap.
    pub fn register_connections(&mut self, connections: OpenConnections) {
        self.registry
            .register_collector(Box::new(ConnectionsCollector { connections }));
    }

    /// Adds a component's metrics (for a component the server does not know yet).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    /// The text of a scrape: every registered metric, then the store's from `store` (the kept
    /// result of its health checks).
    pub fn encode(&self, store: &StoreReading) -> Result<String, fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry)?;
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(StoreCollector {
            reading: store.clone(),
        }));
        prometheus_text::encode(&mut text, &scrape)?;
        Ok(text)
    }
}

/// Writes a counter (the encoder appends `_total` to `name`).
fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, &sentence(help), None, metric.metric_type())?)
}

/// `help` ending with a period, as the registry writes the help of the metrics it holds.
fn sentence(help: &str) -> String {
    format!("{help}.")
}

/// Writes a gauge.
fn gauge<N>(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: N) -> fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, &sentence(help), None, metric.metric_type())?)
}

/// Writes a gauge with one sample per label set.
fn labelled_gauge<S: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(S, i64)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, &sentence(help), None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes a histogram from a core [`DurationHistogram`].
fn duration_histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    histogram: &DurationHistogram,
) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = histogram.bucket_counts().collect();
    encoder
        .encode_descriptor(name, &sentence(help), None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(histogram.sum_seconds, histogram.count, &buckets, None)
}

/// Seconds since the Unix epoch, as Prometheus timestamps are.
fn timestamp(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

#[derive(Debug)]
struct ProcessCollector {
    started_at: DateTime<Utc>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        labelled_gauge(
            &mut encoder,
            "github_stats_build_info",
            "Always 1; the version of the server in a label",
            &[([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        gauge(
            &mut encoder,
            "github_stats_start_time_seconds",
            "When the server started, in seconds since the Unix epoch",
            timestamp(self.started_at),
        )
    }
}

#[derive(Debug)]
struct ConnectionsCollector {
    connections: OpenConnections,
}

impl Collector for ConnectionsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        gauge(
            &mut encoder,
            "github_stats_http_connections_open",
            "HTTP connections open (idle keep-alive ones included)",
            self.connections.open() as i64,
        )?;
        gauge(
            &mut encoder,
            "github_stats_http_connections_max",
            "HTTP connections allowed at once (MAX_CONNECTIONS); more wait in the listen backlog",
            self.connections.max() as i64,
        )
    }
}

#[derive(Debug)]
struct PollerCollector {
    status: PollerStatus,
    started_at: DateTime<Utc>,
}

impl Collector for PollerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_poller(
            &self.status.snapshot(),
            self.started_at,
            Utc::now(),
            &mut encoder,
        )
    }
}

/// The GitHub poller's metrics, from its snapshot at `now`.
pub fn encode_poller(
    snapshot: &PollerSnapshot,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let c = &snapshot.counters;
    for (name, help, value) in [
        (
            "github_stats_poller_polls",
            "Polls GitHub answered (200 or 304 to the request of page 1)",
            c.polls,
        ),
        (
            "github_stats_poller_not_modified",
            "Polls answered 304 Not Modified: nothing new",
            c.not_modified,
        ),
        (
            "github_stats_poller_pages",
            "Pages of events answered 200 (page 1 and the following ones)",
            c.pages,
        ),
        (
            "github_stats_poller_events_seen",
            "Events in GitHub's answers, of every type, repeats included",
            c.events_seen,
        ),
        (
            "github_stats_poller_events_new",
            "Events not seen in an earlier answer",
            c.new_events,
        ),
        (
            "github_stats_poller_events_duplicate",
            "Events already seen in an earlier answer (overlapping polls), dropped",
            c.duplicate_events,
        ),
        (
            "github_stats_poller_events_kept",
            "New events of the kept types, handed to the store",
            c.kept_events,
        ),
        (
            "github_stats_poller_events_invalid",
            "New events of the kept types with a field no store may hold, skipped",
            c.invalid_events,
        ),
        (
            "github_stats_poller_overlapping_polls",
            "Polls sharing an event with the previous one: nothing missed in between",
            c.overlapping_polls,
        ),
        (
            "github_stats_poller_gaps",
            "Polls sharing no event with the previous one: events were missed in between",
            c.gaps,
        ),
        (
            "github_stats_poller_failed_polls",
            "Polls that failed (network, 5xx, bad JSON, refused), each retried with backoff",
            c.failed_polls,
        ),
        (
            "github_stats_poller_rate_limited",
            "Answers that said to wait for the rate limit (403 or 429)",
            c.rate_limited,
        ),
        (
            "github_stats_poller_missed_events_estimate",
            "Events estimated published but not read since the poller started: the stream's measured rate times each gap's time, minus what the gap's poll read",
            snapshot.capture.missed_estimate,
        ),
    ] {
        counter(encoder, name, help, value)?;
    }
    if let Some(share) = snapshot.capture.seen_share {
        gauge(
            encoder,
            "github_stats_poller_seen_share",
            "Estimated share of GitHub's public event stream read since the poller started (0 to 1; absent until the stream's rate is measured)",
            share,
        )?;
    }
    if let Some(rate) = snapshot.capture.stream_rate {
        gauge(
            encoder,
            "github_stats_poller_stream_events_per_second",
            "The public event stream's rate, measured from polls that overlap the previous one",
            rate,
        )?;
    }
    if let Some(remaining) = snapshot.rate_limit_remaining {
        gauge(
            encoder,
            "github_stats_poller_rate_limit_remaining",
            "Requests left in the rate limit window (X-RateLimit-Remaining of the last answer)",
            remaining as i64,
        )?;
    }
    if let Some(limit) = snapshot.rate_limit_limit {
        gauge(
            encoder,
            "github_stats_poller_rate_limit_limit",
            "Requests allowed per rate limit window (X-RateLimit-Limit of the last answer)",
            limit as i64,
        )?;
    }
    if let Some(reset) = snapshot.rate_limit_reset_at {
        gauge(
            encoder,
            "github_stats_poller_rate_limit_reset_timestamp_seconds",
            "When the rate limit window resets (X-RateLimit-Reset of the last answer)",
            timestamp(reset),
        )?;
    }
    if let Some(at) = snapshot.last_successful_poll_at {
        gauge(
            encoder,
            "github_stats_poller_last_success_timestamp_seconds",
            "When GitHub last answered a poll (200 or 304)",
            timestamp(at),
        )?;
    }
    let since = snapshot.last_successful_poll_at.unwrap_or(started_at);
    gauge(
        encoder,
        "github_stats_poller_seconds_since_last_success",
        "Seconds since GitHub last answered a poll, or since the poller started when it has not yet",
        ((now - since).num_milliseconds().max(0) as f64) / 1000.0,
    )?;
    gauge(
        encoder,
        "github_stats_poller_poll_interval_seconds",
        "The wait between polls GitHub asks for (X-Poll-Interval)",
        snapshot.poll_interval_seconds as i64,
    )?;
    gauge(
        encoder,
        "github_stats_poller_consecutive_failures",
        "Failed or rate-limited polls in a row (0 after a success)",
        i64::from(snapshot.consecutive_failures),
    )
}

#[derive(Debug)]
struct IngestCollector {
    status: IngestStatus,
}

impl Collector for IngestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_ingest(&self.status.snapshot(), &mut encoder)
    }
}

/// The ingest loop's metrics, from its snapshot.
pub fn encode_ingest(
    snapshot: &IngestSnapshot,
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    gauge(
        encoder,
        "github_stats_ingest_buffered_events",
        "Events waiting to be stored (the insert in flight included)",
        snapshot.buffered as i64,
    )?;
    gauge(
        encoder,
        "github_stats_ingest_buffer_capacity_events",
        "Events the buffer holds before the source is paused",
        snapshot.capacity as i64,
    )?;
    gauge(
        encoder,
        "github_stats_ingest_paused",
        "1 while pulling is paused because the buffer is full",
        i64::from(snapshot.paused),
    )?;
    for (name, help, value) in [
        (
            "github_stats_ingest_batches",
            "Batches received from the source",
            snapshot.batches,
        ),
        (
            "github_stats_ingest_received_events",
            "Kept events received from the source",
            snapshot.received,
        ),
        (
            "github_stats_ingest_invalid_events",
            "Events of the kept types the parser refused as invalid, never stored",
            snapshot.invalid,
        ),
        (
            "github_stats_ingest_read_bytes",
            "Input bytes the source read",
            snapshot.bytes,
        ),
        (
            "github_stats_ingest_inserted_events",
            "Events the store inserted (new ids)",
            snapshot.inserted,
        ),
        (
            "github_stats_ingest_duplicate_events",
            "Events the store already had",
            snapshot.duplicates,
        ),
        (
            "github_stats_ingest_rejected_events",
            "Events the store refused as invalid, dropped",
            snapshot.rejected,
        ),
        (
            "github_stats_ingest_store_failures",
            "Failed inserts, each retried with backoff (the events stay buffered)",
            snapshot.store_failures,
        ),
        (
            "github_stats_ingest_source_errors",
            "Errors of the source (failed polls)",
            snapshot.source_errors,
        ),
    ] {
        counter(encoder, name, help, value)?;
    }
    gauge(
        encoder,
        "github_stats_ingest_consecutive_store_failures",
        "Failed inserts in a row (0 after a success)",
        i64::from(snapshot.consecutive_store_failures),
    )?;
    if let Some(at) = snapshot.last_insert_at {
        gauge(
            encoder,
            "github_stats_ingest_last_insert_timestamp_seconds",
            "When an insert last succeeded",
            timestamp(at),
        )?;
    }
    duration_histogram(
        encoder,
        "github_stats_ingest_insert_duration_seconds",
        "How long the store took to answer an insert, failed ones included",
        &snapshot.insert_duration,
    )
}

#[derive(Debug)]
struct ArchiveFollowerCollector {
    status: ArchiveFollowerStatus,
}

impl Collector for ArchiveFollowerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_archive_follower(&self.status.snapshot(), &mut encoder)
    }
}

/// The GH Archive follower's metrics, from its snapshot.
pub fn encode_archive_follower(
    snapshot: &ArchiveFollowerSnapshot,
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let c = &snapshot.counters;
    let mut hours = encoder.encode_descriptor(
        "github_stats_archive_hours",
        &sentence(
            "GH Archive hours by what became of them: imported whole, missing from the archive, \
             damaged (not readable whole), skipped (recorded already), pending (given up for now)",
        ),
        None,
        MetricType::Counter,
    )?;
    for (status, value) in [
        ("imported", c.imported),
        ("missing", c.missing),
        ("damaged", c.damaged),
        ("skipped", c.skipped),
        ("pending", c.pending),
    ] {
        ConstCounter::new(value).encode(hours.encode_family(&[("status", status)])?)?;
    }
    gauge(
        encoder,
        "github_stats_archive_hours_behind",
        "Whole hours between the first hour not imported yet and the current hour (0 or 1 when \
         up to date: GH Archive publishes an hour an hour or two after it ends)",
        snapshot.hours_behind,
    )?;
    if let Some(next) = snapshot.next_hour {
        gauge(
            encoder,
            "github_stats_archive_next_hour_timestamp_seconds",
            "The first hour not imported yet: every hour before it is stored and recorded",
            timestamp(next),
        )?;
    }
    counter(
        encoder,
        "github_stats_archive_failed_downloads",
        "Downloads that failed (network, server errors, cut or corrupt files), each retried",
        snapshot.failed_downloads,
    )?;
    gauge(
        encoder,
        "github_stats_archive_consecutive_failures",
        "Failed downloads in a row (0 after a download read whole)",
        i64::from(snapshot.consecutive_failures),
    )
}

#[derive(Debug)]
struct StoreCollector {
    reading: StoreReading,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_store(&self.reading, &mut encoder)
    }
}

/// The store's metrics, from the kept result of its health checks. Totals are those of the last
/// check that answered (`github_stats_store_health_age_seconds` old), left out while it could
/// not count them (down, or a shard down) rather than reported as 0.
pub fn encode_store(reading: &StoreReading, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let health = reading.health();
    labelled_gauge(
        encoder,
        "github_stats_store_up",
        "1 when the store answers, 0 when it cannot be reached or its health check does not \
         answer in time; the backend in a label",
        &[(
            [("backend", health.backend.as_str())],
            i64::from(health.connected),
        )],
    )?;
    gauge(
        encoder,
        "github_stats_store_degraded",
        "1 when the store answers but part of it does not (a node of a ClickHouse cluster)",
        i64::from(health.degraded),
    )?;
    gauge(
        encoder,
        "github_stats_store_slow",
        "1 while the store's health check has not answered within its timeout",
        i64::from(reading.is_slow()),
    )?;
    gauge(
        encoder,
        "github_stats_store_health_age_seconds",
        "Seconds since the store last answered a health check (since the server started when it \
         has not yet): the age of the store's figures",
        reading.age().as_secs_f64(),
    )?;
    let Some(checked) = &reading.last else {
        return Ok(());
    };
    gauge(
        encoder,
        "github_stats_store_health_check_duration_seconds",
        "How long the store took to answer its last health check",
        checked.took.as_secs_f64(),
    )?;
    // Totals only when the store could count: a store down, or a cluster with a shard down,
    // reports 0, which is not the number of events stored.
    let counted = &checked.health;
    if counted.connected && counted.error.is_none() {
        gauge(
            encoder,
            "github_stats_store_events",
            "Distinct events stored",
            counted.total_events as i64,
        )?;
        if let Some(at) = counted.last_event_at {
            gauge(
                encoder,
                "github_stats_store_newest_event_timestamp_seconds",
                "created_at of the newest stored event",
                timestamp(at),
            )?;
        }
    }
    let detail = |key: &str| counted.details.get(key).and_then(|v| v.as_i64());
    if let (Some(total), Some(up)) = (detail("nodes_total"), detail("nodes_up")) {
        gauge(
            encoder,
            "github_stats_store_cluster_nodes",
            "ClickHouse cluster nodes (cluster mode)",
            total,
        )?;
        gauge(
            encoder,
            "github_stats_store_cluster_nodes_up",
            "ClickHouse cluster nodes that answer (cluster mode)",
            up,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_templates_never_raw_paths() {
        let templates = vec![
            "/metrics/pr-average/{owner}/{repo}".to_owned(),
            "/metrics/events".to_owned(),
        ];
        assert_eq!(
            route_label(
                Some("/metrics/pr-average/:param0/:param1"),
                "/metrics/pr-average/a/b",
                &templates
            ),
            "/metrics/pr-average/{owner}/{repo}"
        );
        assert_eq!(
            route_label(Some("/docs/:file"), "/docs/x.js", &templates),
            "/docs/{file}"
        );
        assert_eq!(
            route_label(None, "/metrics/pr-average/rust-lang/rust", &templates),
            "/metrics/pr-average/{owner}/{repo}"
        );
        assert_eq!(
            route_label(None, "/metrics/events", &templates),
            "/metrics/events"
        );
        for path in [
            "/metrics/pr-average/a",
            "/metrics/pr-average/a/b/c",
            "/metrics/pr-average//b",
            "/metrics/eventsx",
            "/wp-admin.php",
            "",
        ] {
            assert_eq!(
                route_label(None, path, &templates),
                UNMATCHED_ROUTE,
                "{path}"
            );
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
