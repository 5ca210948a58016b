//! ClickHouse store against a real server (`CLICKHOUSE_URL`): insert rows/s, and metric latency
//! at 1M and 10M events (issue 3: ≥ 500,000 rows/s inserted; each metric query < 20 ms at 10M).
//! Without `CLICKHOUSE_URL` it prints a notice and measures nothing. See `benches/README.md`.
//!
//! `GITHUB_STATS_BENCH_SIZES` (default `1000000,10000000`) chooses the store sizes. The filled
//! databases (`gs_bench_<n>`) are kept, and reused when they already hold `n` events.

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use github_stats_benches::recorded_kept_events;
use github_stats_core::{
    ArchiveHour, ArchiveStatus, Event, EventStore, MAX_WINDOW_MINUTES, MetricsQuery, RepoName,
    TimeWindow,
};
use github_stats_core::{ClickHouseConfig, ClickHouseStore};

/// Rows per `insert_events` call: what backfill sends.
const BATCH: usize = 100_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn url() -> Option<String> {
    let url = std::env::var("CLICKHOUSE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("notice: CLICKHOUSE_URL is not set; the ClickHouse benches measure nothing");
    }
    url
}

fn sizes() -> Vec<usize> {
    std::env::var("GITHUB_STATS_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

async fn connect(url: &str, database: &str) -> ClickHouseStore {
    ClickHouseStore::connect(
        ClickHouseConfig::new(url)
            .with_database(database)
            .with_request_timeout(Duration::from_secs(300)),
    )
    .await
    .expect("connect to CLICKHOUSE_URL")
}

async fn fresh(url: &str, database: &str) -> ClickHouseStore {
    connect(url, database).await.drop_database().await.unwrap();
    connect(url, database).await
}

/// Events `from..to` of an endless history: the recorded kept events repeated, each round with
/// fresh ids and times shifted by two hours (as `kept_events`, without holding them all).
fn events_range(base: &[Event], from: usize, to: usize) -> Vec<Event> {
    (from..to)
        .map(|i| {
            let round = (i / base.len()) as u64;
            let mut e = base[i % base.len()].clone();
            e.id += round * 100_000_000_000;
            e.created_at += chrono::Duration::hours(2 * round as i64);
            e
        })
        .collect()
}

async fn fill(store: &ClickHouseStore, base: &[Event], n: usize) -> Duration {
    let mut spent = Duration::ZERO;
    let mut from = 0;
    while from < n {
        let to = (from + BATCH).min(n);
        let batch = events_range(base, from, to);
        let started = Instant::now();
        store.insert_events(&batch).await.unwrap();
        spent += started.elapsed();
        from = to;
    }
    spent
}

fn insert(c: &mut Criterion) {
    let Some(url) = url() else { return };
    let rt = runtime();
    let base = recorded_kept_events();
    let n = 1_000_000;
    let batches: Vec<Vec<Event>> = (0..n)
        .step_by(BATCH)
        .map(|from| events_range(&base, from, (from + BATCH).min(n)))
        .collect();
    let mut group = c.benchmark_group("clickhouse_insert");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.bench_function("1M_events_in_100k_batches", |b| {
        b.iter_batched(
            || rt.block_on(fresh(&url, "gs_bench_insert")),
            |store| {
                rt.block_on(async {
                    for batch in &batches {
                        store.insert_events(batch).await.unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("1M_duplicates_in_100k_batches", |b| {
        // Everything already stored, and not in the cache of a new store: the existence
        // queries alone (a re-run backfill).
        b.iter_batched(
            || rt.block_on(connect(&url, "gs_bench_insert")),
            |store| {
                rt.block_on(async {
                    for batch in &batches {
                        let outcome = store.insert_events(batch).await.unwrap();
                        assert_eq!(outcome.inserted, 0);
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    rt.block_on(async {
        connect(&url, "gs_bench_insert")
            .await
            .drop_database()
            .await
            .unwrap()
    });
}

/// The repository with the most events that pass `keep` (ties: the first name).
fn busiest_repository(events: &[Event], keep: impl Fn(&Event) -> bool) -> RepoName {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for e in events.iter().filter(|e| keep(e)) {
        *counts.entry(e.repo_name.as_str()).or_default() += 1;
    }
    let (name, _) = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .expect("matching events in the recorded data");
    name.parse().expect("a valid repository name")
}

/// Archive records for every hour of the last year up to `newest`, all imported (once: kept in
/// the reused database).
async fn record_every_hour(store: &ClickHouseStore, newest: chrono::DateTime<chrono::Utc>) {
    if store.complete_run().await.unwrap().is_some() {
        return;
    }
    let last = github_stats_core::coverage::hour_floor(newest);
    let recorded = chrono::Utc::now();
    for h in 0..(MAX_WINDOW_MINUTES as i64 / 60) {
        let hour = last - chrono::Duration::hours(h);
        let record = ArchiveHour::new(hour, ArchiveStatus::Imported, 1000, 40, recorded);
        store.record_archive_hour(&record).await.unwrap();
    }
}

fn queries(c: &mut Criterion) {
    let Some(url) = url() else { return };
    let rt = runtime();
    let base = recorded_kept_events();
    // The repository with the most events, and the one with the most opened pull requests
    // (the largest id set to merge).
    let busiest = busiest_repository(&base, |_| true);
    let most_prs = busiest_repository(&base, Event::is_pull_request_opened);
    for n in sizes() {
        let database = format!("gs_bench_{n}");
        let store = rt.block_on(async {
            let started = Instant::now();
            let store = connect(&url, &database).await;
            // Connecting applies pending migrations: an upgrade reads the stored events once.
            eprintln!(
                "clickhouse bench: connected to {database} in {:.2} s (migrations included)",
                started.elapsed().as_secs_f64()
            );
            if store.total_events().await.unwrap() == n as u64 {
                eprintln!("clickhouse bench: reusing {database} ({n} events)");
                return store;
            }
            let store = fresh(&url, &database).await;
            let spent = fill(&store, &base, n).await;
            eprintln!(
                "clickhouse store with {n} events: filled in {:.1} s ({:.0} rows/s, \
                 deduplication included)",
                spent.as_secs_f64(),
                n as f64 / spent.as_secs_f64()
            );
            store
        });
        let newest = rt
            .block_on(store.health())
            .last_event_at
            .expect("a filled store");
        let label = if n % 1_000_000 == 0 {
            format!("{}M", n / 1_000_000)
        } else {
            n.to_string()
        };
        let mut group = c.benchmark_group(format!("clickhouse_query_{label}"));
        group.bench_function("event_counts_60min", |b| {
            let window = TimeWindow::last_minutes(newest, 60).unwrap();
            b.iter(|| rt.block_on(store.event_counts(window)).unwrap())
        });
        group.bench_function("timeline_60_buckets_1day", |b| {
            let window = TimeWindow::last_minutes(newest, 1440).unwrap();
            b.iter(|| rt.block_on(store.timeline(window, 1440)).unwrap())
        });
        group.bench_function("pr_average", |b| {
            b.iter(|| rt.block_on(store.pr_average(&most_prs)).unwrap())
        });
        group.bench_function("repo_event_counts", |b| {
            b.iter(|| rt.block_on(store.repo_event_counts(&busiest)).unwrap())
        });
        // Every event: whole hours from the hourly counts, the two partial ones from events.
        group.bench_function("event_counts_1year", |b| {
            let window = TimeWindow::last_minutes(newest, MAX_WINDOW_MINUTES).unwrap();
            b.iter(|| rt.block_on(store.event_counts(window)).unwrap())
        });
        group.bench_function("timeline_52_weekly_buckets_1year", |b| {
            // The server's default bucket for a year-long window: one week.
            let window = TimeWindow::last_minutes(newest, MAX_WINDOW_MINUTES).unwrap();
            b.iter(|| rt.block_on(store.timeline(window, 7 * 86_400)).unwrap())
        });
        // The PR average over a window: whole hours from the hourly PR states, the two partial
        // hours from `events` (windows not on whole hours, as users ask them).
        group.bench_function("pr_average_in_30days", |b| {
            let window = TimeWindow::last_minutes(newest, 30 * 1440 + 17).unwrap();
            b.iter(|| rt.block_on(store.pr_average_in(&most_prs, window)).unwrap())
        });
        group.bench_function("pr_average_in_1year", |b| {
            let window = TimeWindow::last_minutes(newest, MAX_WINDOW_MINUTES).unwrap();
            b.iter(|| rt.block_on(store.pr_average_in(&most_prs, window)).unwrap())
        });
        // What every window answer adds: the archive records of the hours it touches (one per
        // hour of the store's span here), and the latest complete run.
        rt.block_on(record_every_hour(&store, newest));
        group.bench_function("archive_hours_1year", |b| {
            let window = TimeWindow::last_minutes(newest, MAX_WINDOW_MINUTES).unwrap();
            b.iter(|| rt.block_on(store.archive_hours(window)).unwrap())
        });
        group.bench_function("complete_run", |b| {
            b.iter(|| rt.block_on(store.complete_run()).unwrap())
        });
        group.bench_function("total_events", |b| {
            b.iter(|| rt.block_on(store.total_events()).unwrap())
        });
        group.bench_function("health", |b| b.iter(|| rt.block_on(store.health())));
        group.bench_function("top_repositories_10", |b| {
            b.iter(|| rt.block_on(store.top_repositories(10)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, insert, queries);
criterion_main!(benches);
