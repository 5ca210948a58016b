//! Integration tests of github-stats-core: one binary, a module per area.

mod adaptive;
#[cfg(feature = "clickhouse")]
mod clickhouse;
#[cfg(feature = "clickhouse")]
mod clickhouse_process;
#[cfg(feature = "clickhouse")]
mod cluster;
#[cfg(unix)]
mod damaged_files;
mod fake_stream;
mod gharchive;
mod ingest;
mod memory;
mod merged;
mod parse_real_data;
mod poller;
mod properties;
#[cfg(feature = "clickhouse")]
mod races;
#[cfg(feature = "clickhouse")]
mod replicated;

use github_stats_core::{EventBatch, EventSource, EventStore, SourceRecord, StoredBatch};

/// Stores `batch` by hand, as the ingest loop does: its events, then its records, then its
/// checkpoint back to `source` with what the insert did.
async fn store_by_hand(store: &dyn EventStore, source: &dyn EventSource, batch: EventBatch) {
    let outcome = store.insert_events(&batch.events).await.unwrap();
    for record in &batch.records {
        match record {
            SourceRecord::ArchiveHour(hour) => store.record_archive_hour(hour).await.unwrap(),
            other => panic!("unexpected record {other:?}"),
        }
    }
    let stored = StoredBatch::from_outcome(batch.events.len() as u64, &outcome);
    source.checkpoint(batch.checkpoint, stored).await.unwrap();
}
