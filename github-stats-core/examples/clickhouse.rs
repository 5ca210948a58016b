//! The ClickHouse store from a program: connect (the schema is created when missing), insert
//! recorded events, ask for metrics.
//!
//! ```sh
//! CLICKHOUSE_URL=http://localhost:8123 cargo run -p github-stats-core --example clickhouse
//! ```

use github_stats_core::conformance::fixtures;
use github_stats_core::parse::{ParseStats, parse_json_lines};
use github_stats_core::{ClickHouseConfig, ClickHouseStore};
use github_stats_core::{EventStore, MetricsQuery, TimeWindow};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://localhost:8123".into());
    let database =
        std::env::var("CLICKHOUSE_DATABASE").unwrap_or_else(|_| "github_stats_example".into());
    let mut config = ClickHouseConfig::new(url).with_database(database);
    if let Ok(password) = std::env::var("CLICKHOUSE_PASSWORD") {
        let user = std::env::var("CLICKHOUSE_USER").unwrap_or_else(|_| "default".into());
        config = config.with_credentials(user, password);
    }
    let store = ClickHouseStore::connect(config).await?;

    let mut stats = ParseStats::default();
    let mut events = Vec::new();
    parse_json_lines(
        &fixtures::read("gharchive/2015-01-01-12.json.gz"),
        &mut stats,
        &mut events,
    );
    let outcome = store.insert_events(&events).await?;
    println!(
        "kept {} of {} events; inserted {}, {} already stored",
        stats.kept_total(),
        stats.records,
        outcome.inserted,
        outcome.duplicates
    );

    let newest = events
        .iter()
        .map(|e| e.created_at)
        .max()
        .ok_or("no events")?;
    let window = TimeWindow::last_minutes(newest + chrono::Duration::seconds(1), 60)?;
    println!("{:?}", store.event_counts(window).await?.counts);
    for row in store.top_repositories(5).await? {
        println!("{:>5}  {}", row.event_count, row.repository);
    }
    Ok(())
}
