//! Embeds github-stats-core: saved event files → the ingest loop → the memory store → metrics.
//!
//! ```sh
//! cargo run -p github-stats-core --example embed_memory -- testdata/gharchive/2015-01-01-12.json.gz
//! ```
//!
//! With no argument it reads the recorded GH Archive hour beside the repository.

use std::path::PathBuf;
use std::sync::Arc;

use github_stats_core::conformance::fixtures;
use github_stats_core::source::file::{FileSource, collect_event_files};
use github_stats_core::{EventStore, EventType, MemoryStore, MetricsQuery, RepoName, TimeWindow};
use github_stats_core::{Ingest, IngestConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut inputs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if inputs.is_empty() {
        inputs.push(fixtures::path("gharchive/2015-01-01-12.json.gz"));
    }
    let (files, errors) = collect_event_files(&inputs);
    for error in &errors {
        eprintln!("skipped: {error}");
    }

    // Purely in memory; `MemoryStore::open("data")` would persist to a directory instead.
    let store = Arc::new(MemoryStore::new());
    let source = Arc::new(FileSource::new(files));
    let report = Ingest::run(
        source,
        store.clone(),
        IngestConfig::default(),
        CancellationToken::new(),
    )
    .await;
    println!(
        "read {} records, kept {}, stored {} ({} duplicates)",
        report.stats.records,
        report.stats.kept_total(),
        report.inserted,
        report.duplicates
    );

    // Events by type in the last hour of the data.
    let newest = store
        .health()
        .await
        .last_event_at
        .ok_or("no events were stored")?;
    let window = TimeWindow::last_minutes(newest + chrono::Duration::seconds(1), 60)?;
    let counts = store.event_counts(window).await?;
    for t in EventType::ALL {
        println!("{t}: {}", counts.counts[t]);
    }

    // The PR average of the repository with the most events.
    if let Some(top) = store.top_repositories(1).await?.first() {
        let repo: RepoName = top.repository.parse()?;
        let average = store.pr_average(&repo).await?;
        match average.average_seconds() {
            Some(seconds) => println!("{repo}: a pull request every {seconds:.0} s"),
            None => println!("{repo}: fewer than two pull requests opened"),
        }
    }
    Ok(())
}
