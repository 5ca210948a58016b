//! Memory store: insert rate, query latency at 1M and 10M events, and bytes per event
//! (targets: ≥ 1M kept events/s, ≤ 100 bytes per event, queries < 1 ms at 10M), and inserts of
//! ids chosen to collide in the id set beside random ones.

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use github_stats_benches::{kept_events, kept_events_with};
use github_stats_core::conformance::event;
use github_stats_core::{
    Event, EventStore, EventType, MAX_WINDOW_MINUTES, MemoryStore, MemoryStoreOptions,
    MetricsQuery, RepoName, TimeWindow,
};

const BATCH: usize = 50_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn fill(store: &MemoryStore, events: &[Event]) {
    for chunk in events.chunks(BATCH) {
        store.insert_blocking(chunk).unwrap();
    }
}

/// Resident set size, from /proc (Linux), in bytes.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn insert(c: &mut Criterion) {
    let events = kept_events(1_000_000);
    let mut group = c.benchmark_group("memory_insert");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("1M_kept_events", |b| {
        b.iter_batched(
            MemoryStore::new,
            |store| fill(&store, &events),
            BatchSize::PerIteration,
        )
    });
    // Through the async trait, as the server and backfill insert.
    let rt = runtime();
    group.bench_function("1M_kept_events_insert_events", |b| {
        b.iter_batched(
            MemoryStore::new,
            |store| {
                rt.block_on(async {
                    for chunk in events.chunks(BATCH) {
                        store.insert_events(chunk).await.unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    // With a data directory (every batch appended to `events.log`, no fsync), as backfill.
    let root = std::env::temp_dir().join(format!("gs-bench-memory-{}", std::process::id()));
    group.bench_function("1M_kept_events_logged", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&root);
                let mut options = MemoryStoreOptions::default();
                options.sync_writes = false;
                MemoryStore::open_with(&root, options).unwrap()
            },
            |store| {
                rt.block_on(async {
                    for chunk in events.chunks(BATCH) {
                        store.insert_events(chunk).await.unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    let _ = std::fs::remove_dir_all(&root);
    group.finish();

    // Ids an attacker picked against a hash that multiplies the id: `(x << 29) | x` makes the
    // low bits of `(id ^ id >> 29) * K` zero, so every id lands in the same buckets. Beside
    // them, the same events with random ids: a seeded hash treats both alike.
    let mut group = c.benchmark_group("memory_insert_ids");
    let n = 100_000u64;
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    let events = kept_events(n as usize);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let random: Vec<Event> = events
        .iter()
        .map(|e| {
            // SplitMix64: distinct, well-spread ids, the same on every run.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Event {
                id: z ^ (z >> 31),
                ..e.clone()
            }
        })
        .collect();
    let adversarial: Vec<Event> = events
        .iter()
        .zip(0u64..)
        .map(|(e, x)| Event {
            id: (x << 29) | x,
            ..e.clone()
        })
        .collect();
    for (name, input) in [
        ("100k_random_ids", &random),
        ("100k_adversarial_ids", &adversarial),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                MemoryStore::new,
                |store| fill(&store, input),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// The ranking when a million repositories tie at one event each: every one of them is at the
/// cut-off of `top_repositories`.
fn ranking_ties(c: &mut Criterion) {
    let rt = runtime();
    let n = 1_000_000u64;
    // Names in no particular order, so that entry order and name order differ.
    let events: Vec<_> = (0..n)
        .map(|i| {
            let scrambled = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            event(
                i + 1,
                EventType::WatchEvent,
                &format!("owner-{scrambled:016x}/repo"),
                1_700_000_000 + (i % 3_600) as i64,
                "started",
            )
        })
        .collect();
    let store = MemoryStore::new();
    let started = Instant::now();
    fill(&store, &events);
    eprintln!(
        "memory store with {n} repositories of one event: filled in {:.2} s; index heap {:.1} bytes/event",
        started.elapsed().as_secs_f64(),
        store.heap_bytes() as f64 / n as f64,
    );
    drop(events);
    let mut group = c.benchmark_group("memory_ranking_1M_tied");
    group.sample_size(10);
    for limit in [10usize, 1000] {
        group.bench_function(format!("top_repositories_{limit}"), |b| {
            b.iter(|| rt.block_on(store.top_repositories(limit)).unwrap())
        });
    }
    group.finish();
}

fn queries(c: &mut Criterion) {
    let rt = runtime();
    for n in [1_000_000usize, 10_000_000] {
        let events = kept_events(n);
        let newest = events.iter().map(|e| e.created_at).max().unwrap();
        let busiest: RepoName = "sindresorhus/awesome".parse().unwrap();
        let rss_before = rss_bytes();
        let store = MemoryStore::new();
        let started = Instant::now();
        fill(&store, &events);
        let elapsed = started.elapsed();
        let rss_after = rss_bytes();
        drop(events);
        eprintln!(
            "memory store with {n} events: filled in {:.2} s ({:.0} events/s); index heap {:.1} bytes/event; RSS growth {:.1} bytes/event",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            store.heap_bytes() as f64 / n as f64,
            rss_after.saturating_sub(rss_before) as f64 / n as f64,
        );
        let label = format!("{}M", n / 1_000_000);
        let mut group = c.benchmark_group(format!("memory_query_{label}"));
        group.bench_function("event_counts_60min", |b| {
            let window = TimeWindow::last_minutes(newest, 60).unwrap();
            b.iter(|| rt.block_on(store.event_counts(window)).unwrap())
        });
        group.bench_function("event_counts_1year", |b| {
            let window = TimeWindow::last_minutes(newest, MAX_WINDOW_MINUTES).unwrap();
            b.iter(|| rt.block_on(store.event_counts(window)).unwrap())
        });
        group.bench_function("timeline_60_buckets_1year", |b| {
            let window = TimeWindow::last_minutes(newest, MAX_WINDOW_MINUTES).unwrap();
            b.iter(|| {
                rt.block_on(store.timeline(window, i64::from(MAX_WINDOW_MINUTES) * 60 / 60))
                    .unwrap()
            })
        });
        group.bench_function("pr_average", |b| {
            b.iter(|| rt.block_on(store.pr_average(&busiest)).unwrap())
        });
        group.bench_function("top_repositories_10", |b| {
            b.iter(|| rt.block_on(store.top_repositories(10)).unwrap())
        });
        group.bench_function("insert_duplicate_batch_1k", |b| {
            let again = kept_events(1_000);
            b.iter(|| rt.block_on(store.insert_events(&again)).unwrap())
        });
        group.finish();
    }
}

/// Bytes per event when every repetition brings new repositories (the worst case).
fn footprint_fresh_repositories(_: &mut Criterion) {
    let n = 10_000_000;
    let events = kept_events_with(n, true);
    let store = MemoryStore::new();
    let rss_before = rss_bytes();
    let started = Instant::now();
    fill(&store, &events);
    let elapsed = started.elapsed();
    let rss_after = rss_bytes();
    let repos: std::collections::HashSet<&str> =
        events.iter().map(|e| e.repo_name.as_str()).collect();
    eprintln!(
        "memory store with {n} events over {} repositories: filled in {:.2} s ({:.0} events/s); index heap {:.1} bytes/event; RSS growth {:.1} bytes/event",
        repos.len(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        store.heap_bytes() as f64 / n as f64,
        rss_after.saturating_sub(rss_before) as f64 / n as f64,
    );
}

criterion_group!(
    benches,
    insert,
    ranking_ties,
    queries,
    footprint_fresh_repositories
);
criterion_main!(benches);
