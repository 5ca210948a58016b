//! Fills a memory store's data directory with N events for the API benchmark
//! (`benches/README.md`, section API): the recorded events of `testdata/`, repeated with
//! fresh ids and shifted by an hour per copy, so that the newest copy ends about now.
//!
//! ```text
//! cargo run --release -p github-stats-server --example fill_memory_store -- /tmp/bench-data 1000000
//! ```

use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use github_stats_core::conformance::fixtures;
use github_stats_core::parse::parse_document;
use github_stats_core::{Event, ParseStats};
use github_stats_core::{MemoryStore, MemoryStoreOptions};

const SOURCES: &[&str] = &[
    "gharchive/2015-01-01-12.json.gz",
    "gharchive/2015-01-01-0.json.gz",
];

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        bail!("usage: fill_memory_store DATA_DIR COUNT");
    };
    let count: usize = count.parse().context("COUNT must be a number")?;
    let mut base = Vec::new();
    for file in SOURCES {
        let mut stats = ParseStats::default();
        parse_document(&fixtures::read(file), &mut stats, &mut base);
    }
    if base.is_empty() {
        bail!(
            "no recorded events found under {}",
            fixtures::data_dir().display()
        );
    }
    let first = base.iter().map(Event::timestamp).min().unwrap_or_default();
    let span = base.iter().map(Event::timestamp).max().unwrap_or_default() - first;
    let copies = count.div_ceil(base.len()) as i64;
    // Copy k is shifted by k hours, so that the last copy's events end just before now.
    let anchor = Utc::now() - Duration::hours(copies - 1) - Duration::seconds(span + 60);
    let mut options = MemoryStoreOptions::default();
    options.sync_writes = false;
    let store =
        MemoryStore::open_with(&dir, options).with_context(|| format!("cannot open {dir}"))?;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(50_000);
    let mut inserted = 0;
    for i in 0..count {
        let copy = (i / base.len()) as i64;
        let template = &base[i % base.len()];
        let mut event = template.clone();
        event.id = 1_000_000_000_000 + i as u64;
        event.created_at =
            anchor + Duration::hours(copy) + Duration::seconds(template.timestamp() - first);
        batch.push(event);
        if batch.len() == batch.capacity() {
            inserted += store.insert_blocking(&batch)?.inserted;
            batch.clear();
        }
    }
    inserted += store.insert_blocking(&batch)?.inserted;
    flush(&store)?;
    eprintln!(
        "stored {inserted} events in {dir} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn flush(store: &MemoryStore) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(github_stats_core::EventStore::flush(store))?;
    Ok(())
}
